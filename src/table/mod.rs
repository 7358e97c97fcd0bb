//! The desired table and the planner: pure functions over ordered maps, no sockets, no Kubernetes.

mod desired;

pub use desired::{DesiredService, DesiredTable, DEFAULT_DRAIN_TIMEOUT_SECS};
