//! The desired table and the planner: pure functions over ordered maps, no sockets, no Kubernetes.

mod desired;

pub use desired::{DEFAULT_DRAIN_TIMEOUT_SECS, DesiredService, DesiredTable};
