//! The planner's tests: scenarios asserted by their operations here, its laws on random tables in `props`.

mod props;

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
