//! The desired table and the planner: pure functions over ordered maps, no sockets, no Kubernetes.

mod desired;
mod health;
mod plan;
mod simulate;

#[cfg(test)]
pub(crate) mod fixtures;

#[cfg(test)]
mod plan_props;

pub use desired::{DEFAULT_DRAIN_TIMEOUT_SECS, DesiredService, DesiredTable};
pub use health::{BackendCheck, HealthPolicy, OnFailure};
pub use plan::{Drains, Plan, PlanInput, plan};
pub use simulate::{ApplyError, apply_op, apply_ops};
