//! The agent: the one layer that wires desired state, the engine and the kernel, and decides when a pass runs.
//!
//! ```text
//!   sources ──update──► DesiredState (index + changed keys) ──watch──► Agent loop ──► Engine ──► Kernel
//!   (files, Kubernetes)                                                  │  quiet period, maximum delay,
//!                                                                        │  resync, drain polling, retries,
//!                                                                        ▼  reconnects
//!                                                                   observer (CLI output, status, metrics)
//! ```
//!
//! Its inputs are plain: a [`DesiredState`] (snapshots plus the keys changed since the last one), a clock (tokio's,
//! so tests run on paused time), a [`Connector`] for new kernel connections, and a shutdown future. It knows
//! no source and prints nothing: each pass goes to an observer.

pub mod board;
pub mod metrics;
mod run_loop;
pub mod status;
pub mod takeover;
pub mod weights;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;

pub use run_loop::Agent;

use crate::engine::{EngineError, PassOptions, PassReport};
use crate::model::ServiceKey;
use crate::source::Snapshot;

/// An error of a connection attempt.
pub type ConnectError = Box<dyn std::error::Error + Send + Sync>;

/// Makes a new kernel connection, when the old one was lost. Any `FnMut() -> impl Future<Output = Result<K, _>>`
/// is one.
pub trait Connector<K>: Send {
    /// Connects.
    fn connect(&mut self) -> BoxFuture<'static, Result<K, ConnectError>>;
}

impl<K, F, Fut> Connector<K> for F
where
    F: FnMut() -> Fut + Send,
    Fut: Future<Output = Result<K, ConnectError>> + Send + 'static,
{
    fn connect(&mut self) -> BoxFuture<'static, Result<K, ConnectError>> {
        Box::pin(self())
    }
}

/// When passes run.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// After a change, wait until no other change came for this long (a burst of edits is one pass).
    pub quiet: Duration,
    /// ... but never delay a pass by more than this after the first change of a burst.
    pub max_delay: Duration,
    /// A full read and repair of drift made by other tools this often.
    pub resync: Duration,
    /// Draining backends are looked at this often (their connection counts decide when they go).
    pub drain_poll: Duration,
    /// First delay before a failed pass is tried again (doubling up to `resync`).
    pub retry: Duration,
    /// Let a pass delete more than half of the owned services.
    pub allow_mass_delete: bool,
    /// Seconds since the epoch, for drain deadlines (drains survive restarts, so wall-clock time; tests give a
    /// clock that follows tokio's paused time).
    pub wall_clock: fn() -> u64,
}

/// A burst of changes never delays a pass by more than this many quiet periods.
pub const MAX_DELAY_FACTOR: u32 = 10;

impl AgentConfig {
    /// The defaults of `run` and `agent`, with the given quiet period and resync interval.
    pub fn new(quiet: Duration, resync: Duration) -> Self {
        AgentConfig {
            quiet,
            max_delay: quiet * MAX_DELAY_FACTOR,
            resync: resync.max(Duration::from_secs(1)),
            drain_poll: Duration::from_secs(5),
            retry: Duration::from_secs(1),
            allow_mass_delete: false,
            wall_clock: crate::clock::unix_seconds,
        }
    }
}

/// Why a pass ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassKind {
    /// Desired state changed: only the changed services are re-read and planned.
    Change,
    /// The periodic full read (and the first pass).
    Resync,
    /// Draining backends are looked at.
    Drain,
    /// A failed pass (or one whose outcome is unknown) is tried again, reading everything.
    Retry,
    /// Health checks changed a backend's state, or a slow start takes a step: only the services using it.
    Health,
}

impl PassKind {
    /// A short label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            PassKind::Change => "change",
            PassKind::Resync => "resync",
            PassKind::Drain => "drain",
            PassKind::Retry => "retry",
            PassKind::Health => "health",
        }
    }
}

/// One pass as the agent hands it to its observer.
#[derive(Debug)]
pub struct PassRecord<'a, E: std::error::Error + 'static> {
    /// Why it ran.
    pub kind: PassKind,
    /// Whether it read the whole table.
    pub full: bool,
    /// The services it re-read and planned (all of them for a full pass).
    pub scope: Option<&'a BTreeSet<ServiceKey>>,
    /// The desired state it planned with.
    pub desired: &'a Snapshot,
    /// What happened.
    pub result: &'a Result<PassReport<E>, PassError<E>>,
    /// How long it took.
    pub duration: Duration,
    /// Services owned after it.
    pub owned: usize,
    /// Addresses on the VIP interface owned after it.
    pub owned_addresses: usize,
    /// What the checks say of each checked service's backends.
    pub health: &'a std::collections::BTreeMap<ServiceKey, weights::HealthSummary>,
}

/// Why a pass did not run to its end.
#[derive(Debug, thiserror::Error)]
pub enum PassError<E: std::error::Error + 'static> {
    /// The engine stopped it (failed read, state file, mass-delete guard).
    #[error(transparent)]
    Engine(#[from] EngineError<E>),
    /// There was no kernel connection and a new one could not be made.
    #[error("cannot connect to the kernel's IPVS: {0}")]
    Connect(ConnectError),
}

impl<E: std::error::Error + 'static> PassError<E> {
    /// A short stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PassError::Engine(e) => e.metric_label(),
            PassError::Connect(_) => "connect",
        }
    }
}

/// What a pass over `desired` must leave alone: frozen services of invalid objects, and every service deletion
/// while some invalid object names no service (it may be any of them).
pub fn pass_options(desired: &Snapshot, allow_mass_delete: bool) -> PassOptions {
    PassOptions {
        allow_mass_delete,
        hold_service_deletes: desired.hold_service_deletes,
        frozen: desired.frozen.clone(),
    }
}

#[cfg(test)]
mod pass_options_tests {
    use super::*;
    use crate::api::{Age, ObjectId, SourceObject, ValidationError};
    use crate::source::DesiredState;

    fn object(name: &str, created: i64, yaml: &str) -> SourceObject {
        SourceObject {
            id: ObjectId::kubernetes("default", name),
            age: Age::Created { seconds: created, nanos: 0 },
            spec: serde_yaml::from_str(yaml).unwrap(),
            generation: None,
        }
    }

    #[test]
    fn an_invalid_object_freezes_the_service_it_names() {
        let state = DesiredState::new();
        state.update(|index| (index.apply(object("good", 1, "address: 192.0.2.1\nport: 80\n")), ()));
        state.update(|index| (index.apply(object("bad", 2, "address: 192.0.2.2\nport: 80\nscheduler: nope\n")), ()));
        let opts = pass_options(&state.take(), false);
        let frozen: Vec<String> = opts.frozen.iter().map(ToString::to_string).collect();
        assert_eq!(frozen, vec!["TCP 192.0.2.2:80"]);
        // Its service is known, so other services may still be deleted.
        assert!(!opts.hold_service_deletes);
        assert!(!opts.allow_mass_delete);
        assert!(pass_options(&state.take(), true).allow_mass_delete);
    }

    #[test]
    fn an_object_that_names_no_service_holds_every_service_deletion() {
        let state = DesiredState::new();
        state.update(|index| (index.apply(object("good", 1, "address: 192.0.2.1\nport: 80\n")), ()));
        assert!(!pass_options(&state.take(), false).hold_service_deletes);
        let unreadable = ObjectId::document("web.yaml", 3);
        let error = ValidationError::new(unreadable.clone(), "spec.port", "not a number");
        state.update(|index| (index.apply_unreadable(unreadable, vec![error]), ()));
        let opts = pass_options(&state.take(), false);
        assert!(opts.hold_service_deletes);
        assert!(opts.frozen.is_empty());
    }
}
