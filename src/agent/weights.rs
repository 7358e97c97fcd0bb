//! Health into weights: what a service comes to in the kernel given its backends' health (pure).
//!
//! The declared service stays as the sources made it; the engine plans with the *effective* one this module makes
//! from it: an unhealthy backend gets weight 0 (`onFailure: Inhibit`, existing connections go on) or leaves the
//! service (`Remove`: drained like any removed backend); a backend that has just become healthy gets its weight
//! back in a few steps over `slowStartSeconds`; the sorry server joins while the healthy weight is below the
//! quorum and leaves once it is back at quorum + hysteresis. Each step is an ordinary change of the service's
//! table, so the engine applies it as minimal edits (SET_DEST) on that service alone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::health::{HealthView, Schedule, TargetKey, TargetSet};
use crate::model::ServiceKey;
use crate::table::{DesiredService, DesiredTable, HealthPolicy, OnFailure};

/// What the checks say of one probe target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetHealth {
    /// Whether it is healthy now.
    pub healthy: bool,
    /// When it last changed (seconds since the epoch); `None`: it still has the state it started with (a first
    /// sight or a restart), which is never a recovery and never slow-started.
    pub since: Option<u64>,
}

/// Slow start moves a weight in at most this many steps (one SET_DEST each).
pub const SLOW_START_STEPS: u64 = 10;

/// A service as the kernel should have it now, and what the next computation depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effective {
    /// The service to plan with (the declared one itself when health changes nothing).
    pub service: Arc<DesiredService>,
    /// Whether the sorry server is in (remembered for the hysteresis).
    pub sorry_active: bool,
    /// When a slow start takes its next step (seconds since the epoch): compute the service again then.
    pub next_step: Option<u64>,
}

/// The effective form of `declared` at `now`, given each target's health (`None`: unknown, taken as the policy's
/// initial state) and whether the sorry server was in.
pub fn effective(
    declared: &Arc<DesiredService>,
    health: impl Fn(&TargetKey) -> Option<TargetHealth>,
    now: u64,
    sorry_was_active: bool,
) -> Effective {
    let mut result = match declared.health.as_deref() {
        Some(policy) => weighed(declared, policy, health, now, sorry_was_active),
        None => Effective { service: Arc::clone(declared), sorry_active: false, next_step: None },
    };
    // Withdrawn while nothing takes new connections: routers that spread the address over several directors
    // then send it elsewhere. A sorry server in the table takes them, so it keeps the address.
    if declared.withdraw_address_when_down
        && result.service.bind_address
        && !result.service.dests.values().any(|dest| dest.config.weight > 0)
    {
        let mut service = DesiredService::clone(&result.service);
        service.bind_address = false;
        result.service = Arc::new(service);
    }
    result
}

/// The service with each backend weighed by its health, and the sorry server when needed.
fn weighed(
    declared: &Arc<DesiredService>,
    policy: &HealthPolicy,
    health: impl Fn(&TargetKey) -> Option<TargetHealth>,
    now: u64,
    sorry_was_active: bool,
) -> Effective {
    let mut service = DesiredService::clone(declared);
    let mut next_step: Option<u64> = None;
    let mut healthy_weight: u64 = 0;
    service.dests.retain(|key, dest| {
        let state = policy.target(key).map(|target| {
            health(&target).unwrap_or(TargetHealth { healthy: policy.schedule.initial_healthy, since: None })
        });
        match state {
            Some(TargetHealth { healthy: false, .. }) => match policy.on_failure {
                OnFailure::Inhibit => {
                    dest.config.weight = 0;
                    true
                }
                OnFailure::Remove => false,
            },
            Some(TargetHealth { healthy: true, since: Some(since) }) => {
                healthy_weight += u64::from(dest.config.weight);
                if let Some((weight, next)) = ramp(policy, dest.config.weight, since, now) {
                    dest.config.weight = weight;
                    next_step = Some(next_step.map_or(next, |n| n.min(next)));
                }
                true
            }
            _ => {
                healthy_weight += u64::from(dest.config.weight);
                true
            }
        }
    });
    let sorry_active = policy.sorry_server.is_some() && sorry_needed(policy, healthy_weight, sorry_was_active);
    if let (true, Some(sorry)) = (sorry_active, &policy.sorry_server) {
        service.dests.insert(sorry.key, sorry.clone());
    }
    let service = if service == **declared { Arc::clone(declared) } else { Arc::new(service) };
    Effective { service, sorry_active, next_step }
}

/// Whether the sorry server is needed with `healthy_weight` of healthy backends: below the quorum it comes in,
/// and once in it stays until the weight reaches quorum + hysteresis (so that one backend flapping at the edge
/// does not flap the sorry server too).
fn sorry_needed(policy: &HealthPolicy, healthy_weight: u64, was_active: bool) -> bool {
    let quorum = policy.quorum.max(1);
    if was_active { healthy_weight < quorum.saturating_add(policy.hysteresis) } else { healthy_weight < quorum }
}

/// The weight of a backend healthy since `since` during its slow start, and when it takes its next step; `None`
/// once the slow start is over (or there is none).
fn ramp(policy: &HealthPolicy, weight: u32, since: u64, now: u64) -> Option<(u32, u64)> {
    let duration = policy.slow_start?.as_secs();
    let elapsed = now.saturating_sub(since);
    if weight == 0 || duration == 0 || elapsed >= duration {
        return None;
    }
    // Steps of at least one second: the weight is recomputed on whole seconds of the wall clock.
    let steps = SLOW_START_STEPS.min(duration);
    let step_len = duration.div_ceil(steps);
    let step = (elapsed / step_len + 1).min(steps);
    let ramped = (u64::from(weight) * step).div_ceil(steps).max(1);
    let next = since + step * step_len;
    Some((u32::try_from(ramped).unwrap_or(weight).min(weight), next))
}

/// The health side of the agent's desired state: which probe targets each service wants, what the checks said of
/// each when last looked at, and the effective table the engine plans with. Pure: the agent feeds it the declared
/// table's changes and the scheduler's view, and hands its targets to the scheduler.
#[derive(Debug, Default)]
pub struct HealthTracker {
    /// The effective table: the declared services with health applied.
    effective: DesiredTable,
    /// Each checked service's targets (with its schedule).
    wants: BTreeMap<ServiceKey, Vec<(TargetKey, Schedule)>>,
    /// The services using each target.
    users: BTreeMap<TargetKey, BTreeSet<ServiceKey>>,
    /// Each target's health as last applied.
    seen: BTreeMap<TargetKey, TargetHealth>,
    /// Services whose sorry server is in.
    sorry: BTreeSet<ServiceKey>,
    /// Services in a slow start, and when they take their next step.
    steps: BTreeMap<ServiceKey, u64>,
    /// What the checks say of each checked service's backends (for its status entry).
    summaries: BTreeMap<ServiceKey, HealthSummary>,
}

/// What the checks say of one service's backends, as its status entry shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSummary {
    /// Checked backends that pass.
    pub healthy: usize,
    /// Checked backends that fail, with the last check error.
    pub unhealthy: Vec<(crate::model::DestKey, Option<String>)>,
}

/// The summary of `service`'s checked backends, from `view`.
fn summary(service: &DesiredService, policy: &HealthPolicy, view: &HealthView) -> HealthSummary {
    let mut out = HealthSummary::default();
    for key in service.dests.keys() {
        let Some(target) = policy.target(key) else { continue };
        match view.states.get(&target) {
            Some(state) if !state.healthy => out.unhealthy.push((*key, state.last_error.clone())),
            None if !policy.schedule.initial_healthy => out.unhealthy.push((*key, None)),
            _ => out.healthy += 1,
        }
    }
    out
}

fn health_in(view: &HealthView, key: &TargetKey) -> Option<TargetHealth> {
    view.states.get(key).map(|state| TargetHealth { healthy: state.healthy, since: state.last_transition })
}

impl HealthTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// The table to plan with.
    pub fn effective(&self) -> &DesiredTable {
        &self.effective
    }

    /// Every target wanted, with the smallest schedule of the services sharing it.
    pub fn targets(&self) -> BTreeMap<TargetKey, Schedule> {
        let mut set = TargetSet::new();
        for (key, schedule) in self.wants.values().flatten() {
            set.insert(key.clone(), *schedule);
        }
        set.into_inner()
    }

    /// Follows the declared table's change of `keys` (`None`: every key, a full pass): their targets and effective
    /// services. Returns whether the set of targets changed (the scheduler must then be told).
    pub fn declared(
        &mut self,
        declared: &DesiredTable,
        keys: Option<&BTreeSet<ServiceKey>>,
        view: &HealthView,
        now: u64,
    ) -> bool {
        let keys: Vec<ServiceKey> = match keys {
            Some(keys) => keys.iter().copied().collect(),
            None => {
                let mut all: BTreeSet<ServiceKey> = declared.services.keys().copied().collect();
                all.extend(self.effective.services.keys().copied());
                all.into_iter().collect()
            }
        };
        let mut targets_changed = false;
        for key in &keys {
            let wanted: Vec<(TargetKey, Schedule)> = declared
                .services
                .get(key)
                .and_then(|service| service.health.as_deref().map(|policy| (service, policy)))
                .map(|(service, policy)| {
                    service.dests.keys().filter_map(|d| policy.target(d)).map(|t| (t, policy.schedule)).collect()
                })
                .unwrap_or_default();
            let old = self.wants.remove(key).unwrap_or_default();
            if old != wanted {
                // A schedule changed, or a target gained its first user or lost its last: the scheduler's set moves.
                let before: BTreeMap<&TargetKey, &Schedule> = old.iter().map(|(t, s)| (t, s)).collect();
                targets_changed |= wanted.iter().any(|(t, s)| before.get(t).is_some_and(|b| *b != s));
                for (target, _) in &old {
                    if let Some(users) = self.users.get_mut(target) {
                        users.remove(key);
                        if users.is_empty() {
                            self.users.remove(target);
                            self.seen.remove(target);
                            targets_changed = true;
                        }
                    }
                }
                for (target, _) in &wanted {
                    let users = self.users.entry(target.clone()).or_default();
                    targets_changed |= users.is_empty();
                    users.insert(*key);
                }
            }
            if !wanted.is_empty() {
                self.wants.insert(*key, wanted);
            }
        }
        for key in &keys {
            self.recompute(declared, key, view, now);
        }
        targets_changed
    }

    /// Follows the checks: the services whose effective form changed since the last look, now recomputed.
    pub fn health_changed(&mut self, declared: &DesiredTable, view: &HealthView, now: u64) -> BTreeSet<ServiceKey> {
        let mut touched = BTreeSet::new();
        for (target, users) in &self.users {
            let health = health_in(view, target);
            if health != self.seen.get(target).copied() {
                touched.extend(users.iter().copied());
                // Remembered as applied, also when the change moves no weight.
                match health {
                    Some(health) => self.seen.insert(target.clone(), health),
                    None => self.seen.remove(target),
                };
            }
        }
        self.recompute_all(declared, &touched, view, now)
    }

    /// The services whose slow start takes a step at `now`, recomputed; those whose effective form changed.
    pub fn steps_due(&mut self, declared: &DesiredTable, view: &HealthView, now: u64) -> BTreeSet<ServiceKey> {
        let due: BTreeSet<ServiceKey> = self.steps.iter().filter(|(_, at)| **at <= now).map(|(k, _)| *k).collect();
        self.recompute_all(declared, &due, view, now)
    }

    /// What the checks say of each checked service.
    pub fn summaries(&self) -> &BTreeMap<ServiceKey, HealthSummary> {
        &self.summaries
    }

    /// The states of the targets in use, as `view` has them (what is saved across restarts).
    pub fn states(&self, view: &HealthView) -> BTreeMap<TargetKey, crate::health::HealthState> {
        self.users.keys().filter_map(|t| view.states.get(t).map(|s| (t.clone(), s.clone()))).collect()
    }

    /// When the next slow-start step is due (seconds since the epoch).
    pub fn next_step(&self) -> Option<u64> {
        self.steps.values().min().copied()
    }

    fn recompute_all(
        &mut self,
        declared: &DesiredTable,
        keys: &BTreeSet<ServiceKey>,
        view: &HealthView,
        now: u64,
    ) -> BTreeSet<ServiceKey> {
        keys.iter().filter(|key| self.recompute(declared, key, view, now)).copied().collect()
    }

    /// Recomputes `key`'s effective service; whether it changed.
    fn recompute(&mut self, declared: &DesiredTable, key: &ServiceKey, view: &HealthView, now: u64) -> bool {
        let Some(service) = declared.services.get(key) else {
            self.sorry.remove(key);
            self.steps.remove(key);
            self.summaries.remove(key);
            return self.effective.services.remove(key).is_some();
        };
        match service.health.as_deref().filter(|p| p.check.is_some()) {
            Some(policy) => self.summaries.insert(*key, summary(service, policy, view)),
            None => self.summaries.remove(key),
        };
        let result = effective(service, |target| health_in(view, target), now, self.sorry.contains(key));
        if result.sorry_active {
            self.sorry.insert(*key);
        } else {
            self.sorry.remove(key);
        }
        match result.next_step {
            Some(at) => self.steps.insert(*key, at),
            None => self.steps.remove(key),
        };
        let same = self.effective.services.get(key).is_some_and(|old| *old == result.service);
        self.effective.services.insert(*key, result.service);
        !same
    }
}

#[cfg(test)]
mod tests;
