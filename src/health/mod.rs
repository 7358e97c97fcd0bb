//! Health checking: does a backend answer a check, and has it answered (or failed) often enough in a row to
//! change its health?
//!
//! This layer knows nothing of Kubernetes, the IPVS table or the engine. It takes probe targets (a check
//! definition, a target address and an optional source address) with their interval and rise/fall thresholds, probes
//! them, and publishes every target's health. Turning health into weights belongs to the layers above it.
//!
//! ```text
//!  set_targets(TargetKey -> Schedule) ──> HealthScheduler ── due probes, ≤ max_in_flight ──> ProbeRunner (Prober)
//!                                              │  results: HealthState::record (rise / fall)
//!                                              └──> watch<HealthView>: woken on transitions; snapshot() for /status
//! ```
//!
//! # Layout
//!
//! - [`check`]: the definitions, plain hashable values ([`Check`], [`Probe`], ...), and [`ProbeKind`], a probe's
//!   type: the one list the metrics' `type` label and the scheduler's counters follow. The scheduler keys check state
//!   by (backend address, source address, definition), so identical probes are made once.
//! - [`probe`]: running one probe ([`Prober::run`], [`run`]): a fresh connection each time, one timeout around
//!   the whole exchange, kept libraries for every protocol (hyper, rustls, hickory-proto, tonic-health).
//! - [`ProbeError`]: why a probe failed, with a stable label for metrics and a line for a status table.
//! - [`state`]: [`HealthState`], one target's rise/fall counting, pure and serializable.
//! - [`targets`]: what is asked for, plain values: [`TargetKey`] (definition, address, source), [`Schedule`]
//!   (interval, rise, fall) and [`TargetSet`]; the table layer and the agent describe targets with these alone.
//! - [`scheduler`]: [`HealthScheduler`], one driver for all targets keyed by [`TargetKey`] (identical probes made
//!   once), jittered starts, bounded concurrency, no stacking behind a slow probe, plain counters for metrics.
//!
//! No probe runs a command: definitions come from resource fields, and those must never run anything on a node.

pub mod check;
mod error;
pub mod probe;
pub mod scheduler;
pub mod state;
pub mod targets;

pub use check::{
    Check, DnsQueryType, HttpMethod, HttpProbe, HttpsProbe, MAX_BODY_BYTES, Probe, ProbeKind, StatusRange,
};
pub use error::{OK_LABEL, OUTCOME_LABELS, ProbeError};
pub use probe::{Prober, run};
pub use scheduler::{HealthScheduler, HealthView, LatencyCounts, ProbeRunner, SchedulerConfig, SchedulerCounters};
pub use state::{HealthState, Transition};
pub use targets::{Schedule, TargetKey, TargetSet};
