//! The planner: the minimal list of kernel operations that turns the live table into the desired one.
//!
//! `plan` is a pure function of its input (no clock, no sockets): the caller passes the time and the drain state of
//! the previous pass, and gets back the operations plus the drain state to pass next time.
//!
//! Rules, in the order they are applied:
//! - Only services in `owned ∪ desired` are looked at; every other live service is left alone, destinations included.
//! - An owned service the sources no longer ask for is deleted at once with one `DeleteService` (its destinations go
//!   with it in the kernel). There is no drain for whole services: a service leaving the declaration is an explicit
//!   decision, and draining it would need a weight-0 destination per backend for minutes with nothing to send to.
//! - A desired service missing from the live table is added, followed by one `AddDest` per destination.
//! - A desired service already live but not owned is adopted (reported) and then reconciled like an owned one.
//! - Only configuration is compared (`ServiceConfig`, `DestConfig`): counters and connection counts never cause an
//!   operation.
//! - A destination that leaves a kept service is drained: set to weight 0, remembered with the time the drain started,
//!   and deleted once its active + inactive connections reach 0 or the service's drain timeout has passed.
//!
//! Operations come out in an order that is valid when applied one after the other: every `DeleteService` first, then
//! service by service (key order) the service operation before its destination operations, additions and edits before
//! deletions so that a backend being replaced is never the only one missing.

use std::collections::{BTreeMap, BTreeSet};

use itertools::{EitherOrBoth, Itertools};

use super::desired::{DesiredService, DesiredTable};
use crate::model::{DestConfig, DestKey, Destination, Op, Service, ServiceEntry, ServiceKey, Table};

/// Destinations being drained, with the unix time (seconds) their drain started.
pub type Drains = BTreeMap<(ServiceKey, DestKey), u64>;

/// Everything one planning pass looks at.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The table as read from the kernel.
    pub live: &'a Table,
    /// The table the sources ask for.
    pub desired: &'a DesiredTable,
    /// Services this reconciler created or adopted earlier; only these (and desired ones) may change.
    pub owned: &'a BTreeSet<ServiceKey>,
    /// Drain state returned by the previous pass (`Plan::drains`); empty on the first pass.
    pub drains: &'a Drains,
    /// Current unix time in seconds.
    pub now: u64,
}

/// The result of one planning pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Operations to apply, in order.
    pub ops: Vec<Op>,
    /// Desired services found live without being owned: they become owned by this pass.
    pub adopted: Vec<ServiceKey>,
    /// Drain state to pass to the next pass: every destination still draining, plus those whose drain ends with a
    /// `DeleteDest` in this plan (so that a delete that fails is retried at once instead of restarting the drain).
    /// Entries whose destination is gone, or back in the desired table, are dropped by the next pass.
    pub drains: Drains,
    /// Destinations whose drain starts in this pass (weight set to 0), to be reported.
    pub drains_started: Vec<(ServiceKey, DestKey)>,
    /// Destinations still draining once this plan is applied, including those started in this pass.
    pub draining: Vec<(ServiceKey, DestKey)>,
    /// Draining destinations that are desired again and are restored to their desired configuration.
    pub restored: Vec<(ServiceKey, DestKey)>,
    /// Earliest unix time at which a drain times out, so that the caller can plan again then without polling.
    pub next_drain_deadline: Option<u64>,
}

impl Plan {
    /// Whether the plan changes nothing in the kernel.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// Computes the operations that bring the services in `owned ∪ desired` of `live` to `desired`.
///
/// After a successful apply, the owned set is exactly the desired keys.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let mut out = Plan::default();
    let mut deletions = Vec::new();

    // One ordered walk over both tables: a lookup per key would cost a tree descent each on 10,000s of services.
    let both = input.live.services.iter().merge_join_by(&input.desired.services, |(l, _), (d, _)| l.cmp(d));
    for pair in both {
        match pair {
            EitherOrBoth::Left((key, _)) => {
                if input.owned.contains(key) {
                    deletions.push(Op::DeleteService(*key));
                }
            }
            EitherOrBoth::Right((key, want)) => add_service(*key, want, &mut out),
            EitherOrBoth::Both((key, have), (_, want)) => {
                if !input.owned.contains(key) {
                    out.adopted.push(*key);
                }
                if have.service.config != want.service.config {
                    out.ops.push(Op::UpdateService(service_of(*key, want)));
                }
                reconcile_dests(input, *key, have, want, &mut out);
            }
        }
    }

    // Whole services go first: no later op depends on them, and it keeps "delete, then add" for a moved service.
    deletions.append(&mut out.ops);
    out.ops = deletions;
    out
}

/// The service to send for `key`: the map key wins over the key stored inside, and no counters are sent.
fn service_of(key: ServiceKey, want: &DesiredService) -> Service {
    Service::new(key, want.service.config.clone())
}

fn add_service(key: ServiceKey, want: &DesiredService, out: &mut Plan) {
    out.ops.push(Op::AddService(service_of(key, want)));
    for (dest_key, dest) in &want.dests {
        out.ops.push(Op::AddDest(key, Destination::new(*dest_key, dest.config)));
    }
}

fn reconcile_dests(input: &PlanInput<'_>, key: ServiceKey, have: &ServiceEntry, want: &DesiredService, out: &mut Plan) {
    // Leaving destinations are handled after the others, so that a replaced backend is added before the old one goes.
    let mut leaving = Vec::new();
    for pair in have.dests.iter().merge_join_by(&want.dests, |(l, _), (d, _)| l.cmp(d)) {
        match pair {
            EitherOrBoth::Left((_, live)) => leaving.push(live),
            EitherOrBoth::Right((dest_key, dest)) => {
                out.ops.push(Op::AddDest(key, Destination::new(*dest_key, dest.config)));
            }
            EitherOrBoth::Both((dest_key, live), (_, dest)) => {
                if input.drains.contains_key(&(key, *dest_key)) {
                    out.restored.push((key, *dest_key));
                }
                if live.config != dest.config {
                    out.ops.push(Op::UpdateDest(key, Destination::new(*dest_key, dest.config)));
                }
            }
        }
    }
    for live in leaving {
        drain_dest(input, key, live, want.drain_timeout_secs, out);
    }
}

/// A live destination that left its (kept) service: quiesce it, or delete it once drained or timed out.
fn drain_dest(input: &PlanInput<'_>, key: ServiceKey, live: &Destination, timeout: u64, out: &mut Plan) {
    let id = (key, live.key);
    let started = input.drains.get(&id).copied();
    let connections = u64::from(live.conns.active) + u64::from(live.conns.inactive);
    let since = started.unwrap_or(input.now);
    // A clock that went backwards counts as no time elapsed, never as a huge one.
    let elapsed = input.now.saturating_sub(since);

    if timeout == 0 || connections == 0 || elapsed >= timeout {
        out.ops.push(Op::DeleteDest(key, live.key));
        if let Some(since) = started {
            out.drains.insert(id, since);
        }
        return;
    }

    if started.is_none() {
        out.drains_started.push(id);
    }
    if live.config.weight != 0 {
        let quiesced = DestConfig { weight: 0, ..live.config };
        out.ops.push(Op::UpdateDest(key, Destination::new(live.key, quiesced)));
    }
    out.drains.insert(id, since);
    out.draining.push(id);
    let deadline = since.saturating_add(timeout);
    out.next_drain_deadline = Some(out.next_drain_deadline.map_or(deadline, |d| d.min(deadline)));
}

#[cfg(test)]
mod tests;
