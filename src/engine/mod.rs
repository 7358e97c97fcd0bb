//! The engine: the only layer that knows sources, the planner and the kernel. It reads, plans, guards, applies and
//! remembers what it owns.

pub mod describe;
mod ipvs_kernel;
pub mod kernel;
pub mod reconcile;
pub mod state;

pub use kernel::{FakeKernel, Kernel};
pub use reconcile::{Engine, EngineError, OpFailure, PassOptions, PassReport};

#[cfg(test)]
mod tests;
