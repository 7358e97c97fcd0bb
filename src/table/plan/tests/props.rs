//! Laws of the planner, checked on small random tables whose keys often collide.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::sample::select;

use crate::model::{
    ConnCounts, DestConfig, DestKey, Destination, Family, ForwardMethod, Netmask, Op, Protocol, Service, ServiceConfig,
    ServiceEntry, ServiceFlags, ServiceKey, Stats, Table, TunnelConfig,
};
use crate::table::apply::apply_ops;
use crate::table::desired::{DesiredService, DesiredTable};
use crate::table::plan::{Drains, Plan, PlanInput, plan};

const NOW: u64 = 1_700_000_000;

fn service_key() -> impl Strategy<Value = ServiceKey> {
    let addrs = vec![
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    ];
    prop_oneof![
        (select(vec![Protocol::Tcp, Protocol::Udp]), select(addrs), select(vec![80u16, 443]))
            .prop_map(|(protocol, addr, port)| ServiceKey::Addr { protocol, addr, port }),
        (select(vec![Family::V4, Family::V6]), 1u32..3).prop_map(|(family, mark)| ServiceKey::Fwmark { family, mark }),
    ]
}

/// Service configuration, built once the key (and so the family) is known.
#[derive(Debug, Clone)]
struct ConfigParts {
    scheduler: &'static str,
    persistent: bool,
    narrow_mask: bool,
    pe: bool,
}

impl ConfigParts {
    fn build(&self, family: Family) -> ServiceConfig {
        let mut config = ServiceConfig::new(family, self.scheduler);
        config.flags = ServiceFlags::default().with(ServiceFlags::PERSISTENT, self.persistent);
        config.timeout = if self.persistent { 300 } else { 0 };
        if self.narrow_mask {
            config.netmask = match family {
                Family::V4 => Netmask::from_prefix(family, 24),
                Family::V6 => Netmask::V6Prefix(64),
            };
        }
        config.pe_name = self.pe.then(|| "sip".to_owned());
        config
    }
}

fn config_parts() -> impl Strategy<Value = ConfigParts> {
    (select(vec!["rr", "wlc"]), any::<bool>(), any::<bool>(), any::<bool>())
        .prop_map(|(scheduler, persistent, narrow_mask, pe)| ConfigParts { scheduler, persistent, narrow_mask, pe })
}

fn dest_key() -> impl Strategy<Value = DestKey> {
    let addrs = vec![
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
    ];
    (select(addrs), select(vec![80u16, 8080])).prop_map(|(addr, port)| DestKey::new(addr, port))
}

fn dest_config() -> impl Strategy<Value = DestConfig> {
    let forwards = vec![ForwardMethod::Masquerade, ForwardMethod::DirectRoute, ForwardMethod::Tunnel];
    (select(forwards), 0u32..3, select(vec![0u32, 100]), select(vec![0u32, 10])).prop_map(
        |(forward, weight, upper_threshold, lower_threshold)| DestConfig {
            forward,
            weight,
            upper_threshold,
            lower_threshold,
            tunnel: TunnelConfig::default(),
        },
    )
}

/// Connection counts of live destinations, from `min_active` up.
fn conns(min_active: u32) -> impl Strategy<Value = ConnCounts> {
    (min_active..4, 0u32..4, 0u32..2).prop_map(|(active, inactive, persistent)| ConnCounts {
        active,
        inactive,
        persistent,
    })
}

fn stats() -> impl Strategy<Value = Option<Stats>> {
    proptest::option::of((0u64..1000, 0u64..1000).prop_map(|(conns, in_bytes)| Stats {
        conns,
        in_bytes,
        ..Stats::default()
    }))
}

/// A live table; every destination has at least `min_active` active connections.
fn live_table(min_active: u32) -> impl Strategy<Value = Table> {
    let dests = prop::collection::btree_map(dest_key(), (dest_config(), conns(min_active), stats()), 0..5);
    prop::collection::btree_map(service_key(), (config_parts(), stats(), dests), 0..6).prop_map(|services| {
        let services = services
            .into_iter()
            .map(|(key, (parts, stats, dests))| {
                let service = Service { key, config: parts.build(key.family()), stats: stats.map(Box::new) };
                let dests = dests
                    .into_iter()
                    .map(|(dk, (config, conns, stats))| {
                        (dk, Destination { key: dk, config, conns, stats: stats.map(Box::new) })
                    })
                    .collect();
                (key, ServiceEntry { service, dests })
            })
            .collect();
        Table { services }
    })
}

fn desired_table() -> impl Strategy<Value = DesiredTable> {
    let dests = prop::collection::btree_map(dest_key(), dest_config(), 0..5);
    prop::collection::btree_map(service_key(), (config_parts(), dests, select(vec![0u64, 30, 300])), 0..6).prop_map(
        |services| {
            let services = services
                .into_iter()
                .map(|(key, (parts, dests, drain_timeout_secs))| {
                    let dests = dests.into_iter().map(|(dk, config)| (dk, Destination::new(dk, config))).collect();
                    let service = Service::new(key, parts.build(key.family()));
                    (
                        key,
                        std::sync::Arc::new(DesiredService {
                            service,
                            dests,
                            drain_timeout_secs,
                            origin: crate::model::ObjectId::kubernetes("prop", key.to_string()),
                            health: None,
                            bind_address: matches!(key, ServiceKey::Addr { .. }),
                            withdraw_address_when_down: false,
                        }),
                    )
                })
                .collect();
            DesiredTable { services }
        },
    )
}

fn owned_set() -> impl Strategy<Value = BTreeSet<ServiceKey>> {
    prop::collection::btree_set(service_key(), 0..6)
}

fn with_drain_timeout(mut desired: DesiredTable, secs: u64) -> DesiredTable {
    for service in desired.services.values_mut() {
        std::sync::Arc::make_mut(service).drain_timeout_secs = secs;
    }
    desired
}

fn run(live: &Table, desired: &DesiredTable, owned: &BTreeSet<ServiceKey>, drains: &Drains, now: u64) -> Plan {
    plan(&PlanInput { live, desired, owned, drains, now })
}

type ConfigView = (ServiceConfig, BTreeMap<DestKey, DestConfig>);

fn live_view(entry: &ServiceEntry) -> ConfigView {
    (entry.service.config.clone(), entry.dests.iter().map(|(k, d)| (*k, d.config)).collect())
}

fn desired_view(service: &DesiredService) -> ConfigView {
    (service.service.config.clone(), service.dests.iter().map(|(k, d)| (*k, d.config)).collect())
}

/// Checks that `after` holds exactly `desired` on `owned ∪ desired` and is identical to `before` elsewhere.
fn assert_reaches_desired(
    before: &Table,
    after: &Table,
    desired: &DesiredTable,
    owned: &BTreeSet<ServiceKey>,
) -> Result<(), TestCaseError> {
    for (key, want) in &desired.services {
        let got = after.services.get(key).map(live_view);
        prop_assert_eq!(got, Some(desired_view(want)), "service {}", key);
    }
    for key in owned.iter().filter(|k| !desired.services.contains_key(k)) {
        prop_assert!(!after.services.contains_key(key), "owned {} not deleted", key);
    }
    for (key, entry) in before.services.iter().filter(|(k, _)| !owned.contains(k) && !desired.services.contains_key(k))
    {
        prop_assert_eq!(after.services.get(key), Some(entry), "foreign service {} changed", key);
    }
    prop_assert_eq!(
        after.services.keys().filter(|k| !before.services.contains_key(k)).count(),
        desired.services.keys().filter(|k| !before.services.contains_key(k)).count(),
        "unexpected new services"
    );
    Ok(())
}

/// Counts entries that differ between `live` and `desired` on `owned ∪ desired`, by set union rather than by the
/// planner's walk: a service added counts with its destinations, a service removed counts once.
fn differing_entries(live: &Table, desired: &DesiredTable, owned: &BTreeSet<ServiceKey>) -> usize {
    let keys: BTreeSet<&ServiceKey> = owned.iter().chain(desired.services.keys()).collect();
    let mut count = 0;
    for key in keys {
        match (live.services.get(key), desired.services.get(key)) {
            (None, None) => {}
            (Some(_), None) => count += 1,
            (None, Some(want)) => count += 1 + want.dests.len(),
            (Some(have), Some(want)) => {
                let (have_config, have_dests) = live_view(have);
                let (want_config, want_dests) = desired_view(want);
                count += usize::from(have_config != want_config);
                let dest_keys: BTreeSet<&DestKey> = have_dests.keys().chain(want_dests.keys()).collect();
                count += dest_keys.into_iter().filter(|k| have_dests.get(k) != want_dests.get(k)).count();
            }
        }
    }
    count
}

proptest! {
    /// (1) With nothing to drain, one plan brings owned ∪ desired to exactly the desired table, touches nothing else,
    /// is valid in sequence, and a second pass has nothing left to do.
    #[test]
    fn one_pass_reaches_desired_when_nothing_needs_draining(
        live in live_table(0),
        desired in desired_table(),
        owned in owned_set(),
        timeout in select(vec![0u64, 300]),
    ) {
        // A positive timeout drains nothing only when no live destination has a connection.
        let live = if timeout == 0 { live } else { without_connections(live) };
        let desired = with_drain_timeout(desired, timeout);
        let plan = run(&live, &desired, &owned, &Drains::new(), NOW);
        let mut after = live.clone();
        apply_ops(&mut after, &plan.ops).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_reaches_desired(&live, &after, &desired, &owned)?;
        prop_assert!(plan.draining.is_empty());

        let touched: BTreeSet<ServiceKey> = owned.iter().chain(desired.services.keys()).copied().collect();
        for op in &plan.ops {
            prop_assert!(touched.contains(op.service_key()), "{} outside owned ∪ desired", op);
        }

        let owned_after: BTreeSet<ServiceKey> = desired.services.keys().copied().collect();
        let again = run(&after, &desired, &owned_after, &plan.drains, NOW);
        prop_assert!(again.ops.is_empty(), "second pass: {:?}", again.ops);
    }

    /// (2) A live table equal to the desired one in configuration (whatever its counters) gives no operation.
    #[test]
    fn desired_as_live_gives_no_ops(
        desired in desired_table(),
        owned in owned_set(),
        counters in stats(),
        connections in conns(0),
    ) {
        let mut live = Table::default();
        for (key, want) in &desired.services {
            let mut service = want.service.clone();
            service.stats = counters.map(Box::new);
            let entry = live.insert_service(service);
            for (dk, dest) in &want.dests {
                entry.dests.insert(*dk, Destination { conns: connections, stats: counters.map(Box::new), ..dest.clone() });
            }
            prop_assert_eq!(&entry.service.key, key);
        }
        // Owned keys outside the desired table are not live here: nothing to delete.
        let plan = run(&live, &desired, &owned, &Drains::new(), NOW);
        prop_assert!(plan.ops.is_empty(), "{:?}", plan.ops);
        let expected: Vec<ServiceKey> = desired.services.keys().filter(|k| !owned.contains(k)).copied().collect();
        prop_assert_eq!(plan.adopted, expected);
    }

    /// (3) One operation per differing entry, no more.
    #[test]
    fn op_count_equals_differing_entries(live in live_table(0), desired in desired_table(), owned in owned_set()) {
        let desired = with_drain_timeout(desired, 0);
        let plan = run(&live, &desired, &owned, &Drains::new(), NOW);
        prop_assert_eq!(plan.ops.len(), differing_entries(&live, &desired, &owned), "{:?}", plan.ops);
    }

    /// (4) A deleted service never also gets destination deletions, and only owned services are deleted.
    #[test]
    fn no_dest_deletion_in_a_deleted_service(
        live in live_table(0),
        desired in desired_table(),
        owned in owned_set(),
        drains_from in 0u64..2,
    ) {
        // Also with stale drain entries for every live destination.
        let drains: Drains = live.services.iter()
            .flat_map(|(k, e)| e.dests.keys().map(move |d| ((*k, *d), NOW - drains_from * 1000)))
            .collect();
        let plan = run(&live, &desired, &owned, &drains, NOW);
        let deleted: BTreeSet<ServiceKey> = plan.ops.iter().filter_map(|op| match op {
            Op::DeleteService(k) => Some(*k),
            _ => None,
        }).collect();
        for key in &deleted {
            prop_assert!(owned.contains(key), "deleted {} is not owned", key);
        }
        for op in &plan.ops {
            if let Op::DeleteDest(k, _) = op {
                prop_assert!(!deleted.contains(k), "{} in a deleted service", op);
            }
        }
        for (key, _) in plan.drains.keys() {
            prop_assert!(desired.services.contains_key(key), "drain kept for {} which is not desired", key);
        }
    }

    /// (5) A backend with connections leaving a kept service is quiesced and kept until the timeout, then deleted.
    #[test]
    fn busy_removed_backends_drain_until_the_timeout(
        live in live_table(1),
        desired in desired_table(),
        owned in owned_set(),
        timeout in 1u64..1000,
    ) {
        let desired = with_drain_timeout(desired, timeout);
        let removed: BTreeSet<(ServiceKey, DestKey)> = desired.services.iter()
            .filter_map(|(k, want)| live.services.get(k).map(|have| (k, want, have)))
            .flat_map(|(k, want, have)| have.dests.keys().filter(|d| !want.dests.contains_key(d)).map(move |d| (*k, *d)))
            .collect();

        let first = run(&live, &desired, &owned, &Drains::new(), NOW);
        for op in &first.ops {
            if let Op::DeleteDest(k, d) = op {
                prop_assert!(!removed.contains(&(*k, *d)), "{} deleted before draining", op);
            }
        }
        prop_assert_eq!(first.drains_started.iter().copied().collect::<BTreeSet<_>>(), removed.clone());
        prop_assert_eq!(first.drains.keys().copied().collect::<BTreeSet<_>>(), removed.clone());
        prop_assert!(first.drains.values().all(|started| *started == NOW));
        let mut table = live.clone();
        apply_ops(&mut table, &first.ops).map_err(|e| TestCaseError::fail(e.to_string()))?;
        for (k, d) in &removed {
            prop_assert_eq!(table.services[k].dests[d].config.weight, 0, "{} -> {} not quiesced", k, d);
        }

        let owned_after: BTreeSet<ServiceKey> = desired.services.keys().copied().collect();
        let waiting = run(&table, &desired, &owned_after, &first.drains, NOW + timeout - 1);
        prop_assert!(waiting.ops.is_empty(), "before the timeout: {:?}", waiting.ops);
        prop_assert!(waiting.drains_started.is_empty());

        let expired = run(&table, &desired, &owned_after, &waiting.drains, NOW + timeout);
        let deleted: BTreeSet<(ServiceKey, DestKey)> = expired.ops.iter().map(|op| match op {
            Op::DeleteDest(k, d) => Ok((*k, *d)),
            other => Err(TestCaseError::fail(format!("unexpected {other}"))),
        }).collect::<Result<_, _>>()?;
        prop_assert_eq!(deleted, removed);
        apply_ops(&mut table, &expired.ops).map_err(|e| TestCaseError::fail(e.to_string()))?;
        assert_reaches_desired(&live, &table, &desired, &owned)?;
    }
}

fn without_connections(mut table: Table) -> Table {
    for dest in table.services.values_mut().flat_map(|e| e.dests.values_mut()) {
        dest.conns = ConnCounts::default();
    }
    table
}
