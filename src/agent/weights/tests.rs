//! Health into weights, on plain values: inhibited and removed backends, slow start, the sorry server's quorum
//! and hysteresis, withdrawal of the address, and the tracker's shared targets and slow-start steps.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::health::Schedule;
use crate::model::{DestConfig, DestKey, Destination, ServiceKey};
use crate::table::{BackendCheck, fixtures};

fn dest(last: u8) -> DestKey {
    DestKey::new([10, 0, 0, last].into(), 8080)
}

use crate::table::fixtures::tcp_policy as policy;

fn service(policy: Option<HealthPolicy>, weights: &[(u8, u32)]) -> Arc<DesiredService> {
    let dests: Vec<(DestKey, u32)> = weights.iter().map(|(d, w)| (dest(*d), *w)).collect();
    let mut service = fixtures::desired_service(ServiceKey::tcp([192, 0, 2, 1].into(), 80), "rr", &dests, 0);
    service.health = policy.map(Arc::new);
    Arc::new(service)
}

/// Health of each backend by its last address byte: `(healthy, since)`.
fn states(list: &[(u8, bool, Option<u64>)]) -> impl Fn(&TargetKey) -> Option<TargetHealth> + '_ {
    move |target| {
        list.iter()
            .find(|(d, ..)| dest(*d).addr == target.target.ip())
            .map(|(_, healthy, since)| TargetHealth { healthy: *healthy, since: *since })
    }
}

fn weights(e: &Effective) -> Vec<(String, u32)> {
    e.service.dests.values().map(|d| (d.key.to_string(), d.config.weight)).collect()
}

#[test]
fn without_a_policy_or_with_everything_healthy_the_declared_service_is_used_as_it_is() {
    let plain = service(None, &[(1, 5)]);
    let e = effective(&plain, |_| None, 100, false);
    assert!(Arc::ptr_eq(&e.service, &plain));
    let checked = service(Some(policy()), &[(1, 5), (2, 3)]);
    let e = effective(&checked, states(&[(1, true, None), (2, true, Some(10))]), 100, false);
    assert!(Arc::ptr_eq(&e.service, &checked), "no copy when health changes nothing");
    assert_eq!((e.sorry_active, e.next_step), (false, None));
}

#[test]
fn an_unhealthy_backend_gets_weight_zero_or_leaves() {
    let checked = service(Some(policy()), &[(1, 5), (2, 3)]);
    let e = effective(&checked, states(&[(1, false, Some(10)), (2, true, None)]), 100, false);
    assert_eq!(weights(&e), vec![("10.0.0.1:8080".into(), 0), ("10.0.0.2:8080".into(), 3)]);
    let removing = service(Some(HealthPolicy { on_failure: OnFailure::Remove, ..policy() }), &[(1, 5), (2, 3)]);
    let e = effective(&removing, states(&[(1, false, Some(10)), (2, true, None)]), 100, false);
    assert_eq!(weights(&e), vec![("10.0.0.2:8080".into(), 3)]);
}

#[test]
fn the_address_is_withdrawn_while_nothing_takes_connections_and_kept_by_a_sorry_server() {
    let withdrawing = |policy: Option<HealthPolicy>, weights: &[(u8, u32)]| {
        let mut s = DesiredService::clone(&service(policy, weights));
        s.withdraw_address_when_down = true;
        Arc::new(s)
    };
    let checked = withdrawing(Some(policy()), &[(1, 5), (2, 3)]);
    let one_up = effective(&checked, states(&[(1, false, Some(10)), (2, true, None)]), 100, false);
    assert!(one_up.service.bind_address);
    let all_down = effective(&checked, states(&[(1, false, Some(10)), (2, false, Some(10))]), 100, false);
    assert!(!all_down.service.bind_address, "withdrawn");
    assert_eq!(weights(&all_down).len(), 2, "the backends stay, at weight 0");
    let sorry = Destination::new(DestKey::new([10, 9, 9, 9].into(), 8080), DestConfig::masquerade(1));
    let covered = withdrawing(Some(HealthPolicy { sorry_server: Some(sorry), ..policy() }), &[(1, 5)]);
    let e = effective(&covered, states(&[(1, false, Some(10))]), 100, false);
    assert!(e.sorry_active && e.service.bind_address, "the sorry server takes the connections: kept");
    let empty = withdrawing(None, &[]);
    assert!(!effective(&empty, |_| None, 100, false).service.bind_address, "no backend at all, no checks");
    let not_asked = service(Some(policy()), &[(1, 5)]);
    assert!(effective(&not_asked, states(&[(1, false, Some(10))]), 100, false).service.bind_address);
}

#[test]
fn unknown_targets_take_the_initial_state_and_unchecked_backends_are_healthy() {
    let down_first = HealthPolicy {
        schedule: Schedule { initial_healthy: false, ..policy().schedule },
        backends: [(dest(2), BackendCheck::Disabled)].into(),
        ..policy()
    };
    let checked = service(Some(down_first), &[(1, 5), (2, 3)]);
    let e = effective(&checked, |_| None, 100, false);
    assert_eq!(weights(&e), vec![("10.0.0.1:8080".into(), 0), ("10.0.0.2:8080".into(), 3)]);
}

#[test]
fn a_recovered_backend_ramps_its_weight_in_steps() {
    let slow = HealthPolicy { slow_start: Some(Duration::from_secs(20)), ..policy() };
    let checked = service(Some(slow), &[(1, 100)]);
    let at = |now| effective(&checked, states(&[(1, true, Some(1000))]), now, false);
    // Ten steps of two seconds: 10 %, 20 %, ... of the weight, each until the next step.
    assert_eq!((weights(&at(1000))[0].1, at(1000).next_step), (10, Some(1002)));
    assert_eq!((weights(&at(1001))[0].1, at(1001).next_step), (10, Some(1002)));
    assert_eq!((weights(&at(1002))[0].1, at(1002).next_step), (20, Some(1004)));
    assert_eq!((weights(&at(1019))[0].1, at(1019).next_step), (100, Some(1020)));
    assert_eq!((weights(&at(1020))[0].1, at(1020).next_step), (100, None));
    // A backend that has been healthy since the start (or a restart) is never slow-started.
    let e = effective(&checked, states(&[(1, true, None)]), 1000, false);
    assert_eq!((weights(&e)[0].1, e.next_step), (100, None));
    // A weight of 1 stays 1; a short slow start has one-second steps.
    let short = HealthPolicy { slow_start: Some(Duration::from_secs(3)), ..policy() };
    let one = service(Some(short), &[(1, 1), (2, 9)]);
    let e = effective(&one, states(&[(1, true, Some(1000)), (2, true, Some(1000))]), 1001, false);
    assert_eq!(weights(&e), vec![("10.0.0.1:8080".into(), 1), ("10.0.0.2:8080".into(), 6)]);
    assert_eq!(e.next_step, Some(1002));
}

#[test]
fn the_sorry_server_comes_in_below_quorum_and_leaves_above_quorum_plus_hysteresis() {
    let sorry = Destination::new(DestKey::new([10, 9, 9, 9].into(), 8080), DestConfig::masquerade(1));
    let with_sorry = HealthPolicy { sorry_server: Some(sorry), quorum: 4, hysteresis: 2, ..policy() };
    let checked = service(Some(with_sorry), &[(1, 3), (2, 3)]);
    let run =
        |one: bool, two: bool, was| effective(&checked, states(&[(1, one, Some(1)), (2, two, Some(1))]), 100, was);
    // Both healthy: 6 ≥ 4, no sorry server.
    assert!(!run(true, true, false).sorry_active);
    // One down: 3 < 4, it comes in next to the survivor.
    let e = run(true, false, false);
    assert!(e.sorry_active);
    assert_eq!(weights(&e).len(), 3);
    assert!(e.service.dests.contains_key(&DestKey::new([10, 9, 9, 9].into(), 8080)));
    // Back to 6: 6 ≥ 4 + 2, it leaves; at 5 it would stay.
    assert!(!run(true, true, true).sorry_active);
    let five = service(checked.health.as_deref().cloned(), &[(1, 3), (2, 2)]);
    let e = effective(&five, states(&[(1, true, Some(1)), (2, true, Some(1))]), 100, true);
    assert!(e.sorry_active, "5 < quorum 4 + hysteresis 2: still in");
    let e = effective(&five, states(&[(1, true, Some(1)), (2, true, Some(1))]), 100, false);
    assert!(!e.sorry_active, "5 ≥ 4: not needed when it was out");
}

proptest! {
    /// Whatever the health, every backend is kept or dropped as its health says, weights never grow beyond
    /// what was declared, and a slow start's next step is in the future.
    #[test]
    fn health_only_lowers_weights(
        weights in prop::collection::vec(0u32..1000, 1..6),
        health in prop::collection::vec((any::<bool>(), prop::option::of(0u64..100)), 6),
        now in 0u64..200,
        slow in prop::option::of(1u64..60),
        remove in any::<bool>(),
    ) {
        let p = HealthPolicy {
            slow_start: slow.map(Duration::from_secs),
            on_failure: if remove { OnFailure::Remove } else { OnFailure::Inhibit },
            ..policy()
        };
        let list: Vec<(u8, u32)> = weights.iter().enumerate().map(|(i, w)| (i as u8 + 1, *w)).collect();
        let declared = service(Some(p), &list);
        let table: Vec<(u8, bool, Option<u64>)> =
            health.iter().enumerate().map(|(i, (h, s))| (i as u8 + 1, *h, s.map(|s| s.min(now)))).collect();
        let e = effective(&declared, states(&table), now, false);
        for (i, (d, w)) in list.iter().enumerate() {
            let got = e.service.dests.get(&dest(*d)).map(|x| x.config.weight);
            match (table[i].1, remove) {
                (false, true) => prop_assert_eq!(got, None),
                (false, false) => prop_assert_eq!(got, Some(0)),
                (true, _) => prop_assert!(got.is_some_and(|g| g <= *w && (g > 0 || *w == 0))),
            }
        }
        if let Some(next) = e.next_step {
            prop_assert!(next > now);
        }
    }
}

fn view(list: &[(u8, bool, Option<u64>)]) -> HealthView {
    let p = policy();
    let states = list
        .iter()
        .filter_map(|(d, healthy, since)| {
            let mut state = crate::health::HealthState::new(*healthy);
            state.last_transition = *since;
            p.target(&dest(*d)).map(|t| (Arc::new(t), state))
        })
        .collect();
    HealthView { generation: 1, states }
}

fn table(services: &[(u8, Arc<DesiredService>)]) -> DesiredTable {
    let mut table = DesiredTable::default();
    for (last, service) in services {
        let key = ServiceKey::tcp([192, 0, 2, *last].into(), 80);
        let mut service = DesiredService::clone(service);
        service.service.key = key;
        table.services.insert(key, Arc::new(service));
    }
    table
}

#[test]
fn a_shared_backend_is_one_target_and_its_transition_touches_every_service_using_it() {
    let declared = table(&[(1, service(Some(policy()), &[(1, 5), (2, 5)])), (2, service(Some(policy()), &[(1, 7)]))]);
    let mut tracker = HealthTracker::new();
    let healthy = view(&[(1, true, None), (2, true, None)]);
    assert!(tracker.declared(&declared, None, &healthy, 100), "first sight: targets to probe");
    assert_eq!(tracker.targets().len(), 2, "10.0.0.1 is probed once for both services");
    assert!(tracker.health_changed(&declared, &healthy, 100).is_empty(), "nothing moved a weight");
    let one_down = view(&[(1, false, Some(101)), (2, true, None)]);
    let touched = tracker.health_changed(&declared, &one_down, 101);
    assert_eq!(touched.len(), 2);
    for service in tracker.effective().services.values() {
        assert_eq!(service.dests[&dest(1)].config.weight, 0);
    }
    assert!(tracker.health_changed(&declared, &one_down, 102).is_empty(), "seen once");
    let key1 = ServiceKey::tcp([192, 0, 2, 1].into(), 80);
    let summary = &tracker.summaries()[&key1];
    assert_eq!((summary.healthy, summary.unhealthy.len()), (1, 1), "{summary:?}");
    assert_eq!(summary.unhealthy[0].0, dest(1));
    // A weight edit keeps the targets; a new backend adds one; a service gone drops its own.
    let edited = table(&[(1, service(Some(policy()), &[(1, 9), (2, 5)])), (2, service(Some(policy()), &[(1, 7)]))]);
    assert!(!tracker.declared(&edited, Some(&[key1].into()), &one_down, 103));
    assert_eq!(tracker.effective().services[&key1].dests[&dest(1)].config.weight, 0, "still down");
    let grown =
        table(&[(1, service(Some(policy()), &[(1, 9), (2, 5), (3, 1)])), (2, service(Some(policy()), &[(1, 7)]))]);
    assert!(tracker.declared(&grown, Some(&[key1].into()), &one_down, 104));
    assert_eq!(tracker.targets().len(), 3);
    let key2 = ServiceKey::tcp([192, 0, 2, 2].into(), 80);
    let mut shrunk = grown.clone();
    shrunk.services.remove(&key2);
    assert!(!tracker.declared(&shrunk, Some(&[key2].into()), &one_down, 105), "10.0.0.1 is still used by 1");
    assert!(!tracker.effective().services.contains_key(&key2));
}

#[test]
fn slow_start_steps_come_due_until_the_weight_is_back() {
    let slow = HealthPolicy { slow_start: Some(Duration::from_secs(4)), ..policy() };
    let declared = table(&[(1, service(Some(slow), &[(1, 8)]))]);
    let key = ServiceKey::tcp([192, 0, 2, 1].into(), 80);
    let mut tracker = HealthTracker::new();
    tracker.declared(&declared, None, &view(&[(1, false, Some(10))]), 50);
    assert_eq!(tracker.next_step(), None);
    let up = view(&[(1, true, Some(100))]);
    assert_eq!(tracker.health_changed(&declared, &up, 100).len(), 1);
    let weight = |t: &HealthTracker| t.effective().services[&key].dests[&dest(1)].config.weight;
    assert_eq!((weight(&tracker), tracker.next_step()), (2, Some(101)));
    assert!(tracker.steps_due(&declared, &up, 100).is_empty(), "not due yet");
    for (now, expected) in [(101, 4), (102, 6), (103, 8)] {
        assert_eq!(tracker.steps_due(&declared, &up, now).len(), 1);
        assert_eq!(weight(&tracker), expected);
    }
    // The weight is whole since the last step; its end only stops the steps.
    assert!(tracker.steps_due(&declared, &up, 104).is_empty());
    assert_eq!((weight(&tracker), tracker.next_step()), (8, None));
}
