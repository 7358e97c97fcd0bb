//! Health probes: does a backend answer a check right now?
//!
//! This layer knows nothing of Kubernetes, the IPVS table or the engine. It takes a check definition, a target
//! address and an optional source address, and answers with a latency or a typed error. Deciding when to probe,
//! counting rise and fall, and turning health into weights belong to the scheduler above it.
//!
//! # Layout
//!
//! - [`check`]: the definitions, plain hashable values ([`Check`], [`Probe`], ...). The scheduler keys check state
//!   by (service key, backend, definition) and makes identical probes once.
//! - [`probe`]: running one probe ([`Prober::run`], [`run`]): a fresh connection each time, one timeout around
//!   the whole exchange, kept libraries for every protocol (hyper, rustls, hickory-proto, tonic-health).
//! - [`ProbeError`]: why a probe failed, with a stable label for metrics and a line for a status table.
//!
//! No probe runs a command: definitions come from resource fields, and those must never run anything on a node.

pub mod check;
mod error;
pub mod probe;
pub mod state;

#[cfg(test)]
mod tests;

pub use check::{Check, DnsQueryType, HttpMethod, HttpProbe, HttpsProbe, MAX_BODY_BYTES, Probe, StatusRange};
pub use error::{OK_LABEL, OUTCOME_LABELS, ProbeError};
pub use probe::{Prober, run};
pub use state::{HealthState, Transition};
