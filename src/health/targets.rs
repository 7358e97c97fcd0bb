//! What the checks are asked to probe, as plain values: a target ([`TargetKey`]: definition, address, source),
//! how often and how strictly it is judged ([`Schedule`]), and the desired set of both ([`TargetSet`]). The table
//! layer declares targets with these and the agent builds the set; neither needs the scheduler that runs them
//! (`health::scheduler`, which spawns tasks), so they live apart from it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::check::Check;

/// What is probed: one definition against one address from one source. Identical keys are one probe and one
/// state, whoever asked for them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct TargetKey {
    /// The backend's address and the port the check connects to.
    pub target: SocketAddr,
    /// The local address probes are sent from (`None`: the kernel's choice).
    pub source: Option<IpAddr>,
    /// The check definition.
    pub check: Check,
}

impl TargetKey {
    /// `check` against `target`, from the kernel's choice of source address.
    pub fn new(target: SocketAddr, check: Check) -> Self {
        TargetKey { target, source: None, check }
    }

    /// The same key probing from `source`.
    pub fn with_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }
}

/// How often a target is probed and how many results in a row flip it. Not part of the key: changing these
/// keeps the target's counters and timing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Schedule {
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// Consecutive successes that make an unhealthy target healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy target unhealthy.
    pub fall: u32,
    /// The state of a target seen for the first time (keepalived's `alpha` starts it unhealthy).
    pub initial_healthy: bool,
}

/// A desired set of targets, built from the services that want them: services sharing a key share its probe.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetSet {
    targets: BTreeMap<TargetKey, Schedule>,
}

impl TargetSet {
    /// An empty set.
    pub fn new() -> Self {
        TargetSet::default()
    }

    /// Adds `key` wanted with `schedule`. When the key is already wanted with another schedule, the smaller of
    /// the two by `Schedule`'s order is kept (the shorter interval first), so the result does not depend on the
    /// order services are added in; returns `false` in that case so that the caller can report the conflict.
    pub fn insert(&mut self, key: TargetKey, schedule: Schedule) -> bool {
        match self.targets.get_mut(&key) {
            None => {
                self.targets.insert(key, schedule);
                true
            }
            Some(existing) => {
                let agrees = *existing == schedule;
                *existing = (*existing).min(schedule);
                agrees
            }
        }
    }

    /// How many distinct probes the set holds.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The targets and their schedules.
    pub fn into_inner(self) -> BTreeMap<TargetKey, Schedule> {
        self.targets
    }
}

#[cfg(test)]
mod tests;
