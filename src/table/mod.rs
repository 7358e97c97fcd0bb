//! The desired table and the planners (the IPVS table's, and the node's virtual addresses'): pure functions over
//! ordered maps, no sockets, no Kubernetes.

mod apply;
mod desired;
mod health_policy;
mod plan;
mod vips;

#[cfg(test)]
pub(crate) mod fixtures;

pub use apply::{ApplyError, apply_op, apply_ops};
pub use desired::{DEFAULT_DRAIN_TIMEOUT_SECS, DesiredService, DesiredTable};
pub use health_policy::{BackendCheck, HealthPolicy, OnFailure};
pub use plan::{Drains, Plan, PlanInput, plan};
pub use vips::{VipPlan, needed_vips, plan_vips};
