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
mod tests {
    use super::*;
    use crate::model::ServiceConfig;
    use crate::table::apply::apply_ops;
    use crate::table::fixtures::{desired, desired_service, dest, live, live_entry, svc};

    fn run(live: &Table, desired: &DesiredTable, owned: &[ServiceKey], drains: &Drains, now: u64) -> Plan {
        let owned: BTreeSet<ServiceKey> = owned.iter().copied().collect();
        plan(&PlanInput { live, desired, owned: &owned, drains, now })
    }

    fn masq(key: DestKey, weight: u32) -> Destination {
        Destination::new(key, DestConfig::masquerade(weight))
    }

    #[test]
    fn adopts_a_desired_service_found_live_and_reconciles_it() {
        let live = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0), (dest(2), 1, 0, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[(dest(1), 2)], 0)]);
        let plan = run(&live, &desired, &[], &Drains::new(), 0);
        assert_eq!(plan.adopted, vec![svc(1)]);
        assert_eq!(plan.ops, vec![Op::UpdateDest(svc(1), masq(dest(1), 2)), Op::DeleteDest(svc(1), dest(2))]);
    }

    #[test]
    fn a_plan_is_empty_exactly_when_it_has_no_operation() {
        assert!(Plan::default().is_empty());
        let desired = desired([desired_service(svc(1), "rr", &[], 0)]);
        let plan = run(&Table::default(), &desired, &[], &Drains::new(), 0);
        assert_eq!(plan.ops.len(), 1);
        assert!(!plan.is_empty());
    }

    #[test]
    fn owned_services_are_not_reported_as_adopted() {
        let live = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 0)]);
        let plan = run(&live, &desired, &[svc(1)], &Drains::new(), 0);
        assert_eq!(plan, Plan::default());
    }

    #[test]
    fn never_touches_a_service_neither_owned_nor_desired() {
        let foreign = live_entry(svc(9), "wlc", &[(dest(1), 1, 5, 5), (dest(2), 0, 0, 0)]);
        let live = live([foreign, live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0)])]);
        // svc(2) is owned but already gone: nothing to do for it either.
        let plan = run(&live, &DesiredTable::default(), &[svc(1), svc(2)], &Drains::new(), 0);
        assert_eq!(plan.ops, vec![Op::DeleteService(svc(1))]);
    }

    #[test]
    fn a_removed_service_is_deleted_whole_and_its_drains_dropped() {
        let live = live([live_entry(svc(1), "rr", &[(dest(1), 1, 3, 0), (dest(2), 0, 3, 0)])]);
        let drains = Drains::from([((svc(1), dest(2)), 10)]);
        let plan = run(&live, &DesiredTable::default(), &[svc(1)], &drains, 20);
        assert_eq!(plan.ops, vec![Op::DeleteService(svc(1))]);
        assert!(plan.drains.is_empty());
        assert!(plan.draining.is_empty());
    }

    #[test]
    fn a_new_service_is_added_before_its_destinations() {
        let desired = desired([desired_service(svc(1), "wlc", &[(dest(2), 3), (dest(1), 1)], 0)]);
        let plan = run(&Table::default(), &desired, &[], &Drains::new(), 0);
        assert_eq!(
            plan.ops,
            vec![
                Op::AddService(Service::new(svc(1), ServiceConfig::new(svc(1).family(), "wlc"))),
                Op::AddDest(svc(1), masq(dest(1), 1)),
                Op::AddDest(svc(1), masq(dest(2), 3)),
            ]
        );
        assert!(plan.adopted.is_empty());
    }

    #[test]
    fn a_key_change_is_a_delete_and_an_add() {
        let live = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0)])]);
        let desired = desired([desired_service(svc(2), "rr", &[(dest(1), 1)], 0)]);
        let plan = run(&live, &desired, &[svc(1)], &Drains::new(), 0);
        let verbs: Vec<_> = plan.ops.iter().map(|op| (op.verb(), *op.service_key())).collect();
        assert_eq!(verbs, vec![("delete-service", svc(1)), ("add-service", svc(2)), ("add-destination", svc(2))]);
    }

    #[test]
    fn a_changed_scheduler_is_one_update_before_the_destination_ops() {
        let live = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0), (dest(3), 1, 0, 0)])]);
        let desired = desired([desired_service(svc(1), "wlc", &[(dest(1), 1), (dest(2), 1)], 0)]);
        let plan = run(&live, &desired, &[svc(1)], &Drains::new(), 0);
        assert_eq!(
            plan.ops,
            vec![
                Op::UpdateService(Service::new(svc(1), ServiceConfig::new(svc(1).family(), "wlc"))),
                // The new backend goes in before the old one goes out.
                Op::AddDest(svc(1), masq(dest(2), 1)),
                Op::DeleteDest(svc(1), dest(3)),
            ]
        );
    }

    #[test]
    fn counters_and_connection_counts_never_cause_an_operation() {
        let live = live([live_entry(svc(1), "rr", &[(dest(1), 1, 100, 200)])]);
        let desired = desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 300)]);
        assert_eq!(run(&live, &desired, &[svc(1)], &Drains::new(), 0), Plan::default());
    }

    #[test]
    fn a_removed_backend_drains_until_its_timeout_then_is_deleted() {
        let mut table = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0), (dest(2), 4, 2, 7)])]);
        let desired = desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 60)]);
        let owned = [svc(1)];

        let first = run(&table, &desired, &owned, &Drains::new(), 1000);
        assert_eq!(first.ops, vec![Op::UpdateDest(svc(1), masq(dest(2), 0))]);
        assert_eq!(first.drains_started, vec![(svc(1), dest(2))]);
        assert_eq!(first.draining, vec![(svc(1), dest(2))]);
        assert_eq!(first.drains, Drains::from([((svc(1), dest(2)), 1000)]));
        assert_eq!(first.next_drain_deadline, Some(1060));
        apply_ops(&mut table, &first.ops).unwrap();

        let waiting = run(&table, &desired, &owned, &first.drains, 1059);
        assert!(waiting.ops.is_empty(), "{:?}", waiting.ops);
        assert!(waiting.drains_started.is_empty(), "a drain is reported once");
        assert_eq!(waiting.draining, vec![(svc(1), dest(2))]);
        assert_eq!(waiting.drains, first.drains);

        let expired = run(&table, &desired, &owned, &waiting.drains, 1060);
        assert_eq!(expired.ops, vec![Op::DeleteDest(svc(1), dest(2))]);
        assert!(expired.draining.is_empty());
        assert_eq!(expired.next_drain_deadline, None);
        apply_ops(&mut table, &expired.ops).unwrap();

        let after = run(&table, &desired, &owned, &expired.drains, 1061);
        assert_eq!(after.ops, Vec::<Op>::new());
        assert!(after.drains.is_empty(), "the entry of a deleted destination is dropped");
    }

    #[test]
    fn a_failed_drain_delete_is_retried_without_restarting_the_timer() {
        let table = live([live_entry(svc(1), "rr", &[(dest(2), 0, 2, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[], 60)]);
        let drains = Drains::from([((svc(1), dest(2)), 1000)]);
        let expired = run(&table, &desired, &[svc(1)], &drains, 1100);
        assert_eq!(expired.ops, vec![Op::DeleteDest(svc(1), dest(2))]);
        // Suppose the delete failed and the table did not change: the next pass deletes again.
        let retry = run(&table, &desired, &[svc(1)], &expired.drains, 1101);
        assert_eq!(retry.ops, vec![Op::DeleteDest(svc(1), dest(2))]);
    }

    #[test]
    fn a_drain_ends_when_the_connections_reach_zero() {
        let desired = desired([desired_service(svc(1), "rr", &[], 600)]);
        let busy = live([live_entry(svc(1), "rr", &[(dest(2), 0, 1, 0)])]);
        let first = run(&busy, &desired, &[svc(1)], &Drains::new(), 10);
        assert!(first.ops.is_empty(), "already at weight 0: {:?}", first.ops);
        assert_eq!(first.drains_started, vec![(svc(1), dest(2))]);

        let idle = live([live_entry(svc(1), "rr", &[(dest(2), 0, 0, 0)])]);
        let second = run(&idle, &desired, &[svc(1)], &first.drains, 11);
        assert_eq!(second.ops, vec![Op::DeleteDest(svc(1), dest(2))]);
    }

    #[test]
    fn an_idle_or_zero_timeout_backend_is_deleted_at_once() {
        let table = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0), (dest(2), 1, 9, 9)])]);
        let idle = desired([desired_service(svc(1), "rr", &[(dest(2), 1)], 600)]);
        let plan = run(&table, &idle, &[svc(1)], &Drains::new(), 0);
        assert_eq!(plan.ops, vec![Op::DeleteDest(svc(1), dest(1))]);
        assert!(plan.drains_started.is_empty());

        let no_drain = desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 0)]);
        let plan = run(&table, &no_drain, &[svc(1)], &Drains::new(), 0);
        assert_eq!(plan.ops, vec![Op::DeleteDest(svc(1), dest(2))]);
        assert!(plan.drains.is_empty());
    }

    #[test]
    fn a_draining_backend_that_comes_back_is_restored() {
        let table = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0), (dest(2), 0, 5, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[(dest(1), 1), (dest(2), 3)], 60)]);
        let drains = Drains::from([((svc(1), dest(2)), 1000)]);
        let plan = run(&table, &desired, &[svc(1)], &drains, 1010);
        assert_eq!(plan.ops, vec![Op::UpdateDest(svc(1), masq(dest(2), 3))]);
        assert_eq!(plan.restored, vec![(svc(1), dest(2))]);
        assert!(plan.drains.is_empty());
        assert!(plan.draining.is_empty());
    }

    #[test]
    fn drain_entries_for_vanished_things_are_dropped() {
        let table = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 60)]);
        let drains = Drains::from([((svc(1), dest(7)), 1), ((svc(5), dest(1)), 1), ((svc(1), dest(1)), 1)]);
        let plan = run(&table, &desired, &[svc(1)], &drains, 2);
        assert!(plan.drains.is_empty());
        assert!(plan.ops.is_empty());
    }

    #[test]
    fn a_clock_going_backwards_does_not_end_a_drain() {
        let table = live([live_entry(svc(1), "rr", &[(dest(2), 0, 1, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[], 60)]);
        let drains = Drains::from([((svc(1), dest(2)), 5000)]);
        let plan = run(&table, &desired, &[svc(1)], &drains, 10);
        assert!(plan.ops.is_empty());
        assert_eq!(plan.drains, drains);
        assert_eq!(plan.next_drain_deadline, Some(5060));
    }

    #[test]
    fn the_earliest_drain_deadline_is_reported() {
        let table =
            live([live_entry(svc(1), "rr", &[(dest(1), 0, 1, 0)]), live_entry(svc(2), "rr", &[(dest(1), 0, 1, 0)])]);
        let desired = desired([desired_service(svc(1), "rr", &[], 600), desired_service(svc(2), "rr", &[], 30)]);
        let plan = run(&table, &desired, &[svc(1), svc(2)], &Drains::new(), 100);
        assert_eq!(plan.next_drain_deadline, Some(130));
    }

    #[test]
    fn the_map_key_wins_over_a_mismatched_key_inside_the_service() {
        let mut service = desired_service(svc(1), "rr", &[], 0);
        service.service.key = svc(2);
        let desired = DesiredTable { services: [(svc(1), std::sync::Arc::new(service))].into() };
        let plan = run(&Table::default(), &desired, &[], &Drains::new(), 0);
        assert_eq!(plan.ops.iter().map(|op| *op.service_key()).collect::<Vec<_>>(), vec![svc(1)]);
    }
}
