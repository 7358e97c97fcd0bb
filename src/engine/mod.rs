//! The engine: the only layer that knows sources, the planner and the kernel. It reads, plans, guards, applies and
//! remembers what it owns.

pub mod state;
