//! Planning cost on a large table: 10,000 services × 10 destinations, live and desired differing by 1 %.
//!
//! Run with `cargo bench --bench plan`.

use std::collections::BTreeSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ipvs_reconciler::model::{
    ConnCounts, DestConfig, DestKey, Destination, Service, ServiceConfig, ServiceEntry, ServiceKey, Stats, Table,
};
use ipvs_reconciler::table::{DesiredService, DesiredTable, Drains, PlanInput, plan};

const SERVICES: u32 = 10_000;
const DESTS: u32 = 10;

fn service_key(i: u32) -> ServiceKey {
    ServiceKey::tcp(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), 80)
}

fn dest_key(i: u32, j: u32) -> DestKey {
    DestKey::new(IpAddr::V4(Ipv4Addr::from(0xac10_0000 + i * 16 + j)), 8080)
}

fn desired_service(i: u32) -> DesiredService {
    let key = service_key(i);
    DesiredService {
        service: Service::new(key, ServiceConfig::new(key.family(), "wlc")),
        dests: (0..DESTS)
            .map(|j| (dest_key(i, j), Destination::new(dest_key(i, j), DestConfig::masquerade(1))))
            .collect(),
        drain_timeout_secs: 300,
        origin: ipvs_reconciler::model::ObjectId::kubernetes("bench", format!("svc-{i}")),
        health: None,
        bind_address: true,
        withdraw_address_when_down: false,
    }
}

/// The live view of a desired service, with the counters a kernel dump carries.
fn live_entry(want: &DesiredService) -> ServiceEntry {
    let mut service = want.service.clone();
    service.stats = Some(Box::new(Stats { conns: 1234, in_packets: 99_999, ..Stats::default() }));
    let mut entry = ServiceEntry::new(service);
    for (key, dest) in &want.dests {
        let mut dest = dest.clone();
        dest.conns = ConnCounts { active: 3, inactive: 5, persistent: 0 };
        dest.stats = Some(Box::new(Stats { conns: 77, ..Stats::default() }));
        entry.dests.insert(*key, dest);
    }
    entry
}

/// Live and desired tables of `SERVICES` services that are equal.
fn equal_tables() -> (Table, DesiredTable) {
    let desired =
        DesiredTable { services: (0..SERVICES).map(|i| (service_key(i), Arc::new(desired_service(i)))).collect() };
    let live = Table { services: desired.services.iter().map(|(k, want)| (*k, live_entry(want))).collect() };
    (live, desired)
}

/// Changes 1 % of the services of `desired`: a weight, a replaced backend, a scheduler, removed and new services.
fn differ_by_one_percent(desired: &mut DesiredTable) {
    for i in (0..SERVICES).step_by(100) {
        let key = service_key(i);
        match (i / 100) % 5 {
            0 => {
                if let Some(dest) =
                    desired.services.get_mut(&key).map(Arc::make_mut).and_then(|s| s.dests.get_mut(&dest_key(i, 0)))
                {
                    dest.config.weight = 5;
                }
            }
            1 => {
                if let Some(service) = desired.services.get_mut(&key).map(Arc::make_mut) {
                    service.dests.remove(&dest_key(i, 1));
                    service.dests.insert(dest_key(i, 15), Destination::new(dest_key(i, 15), DestConfig::masquerade(1)));
                }
            }
            2 => {
                if let Some(service) = desired.services.get_mut(&key).map(Arc::make_mut) {
                    service.service.config.scheduler = "rr".to_owned();
                }
            }
            3 => {
                desired.services.remove(&key);
            }
            _ => {
                let new = SERVICES + i;
                desired.services.insert(service_key(new), Arc::new(desired_service(new)));
            }
        }
    }
}

fn bench_plan(c: &mut Criterion) {
    let (live, mut desired) = equal_tables();
    let owned: BTreeSet<ServiceKey> = live.services.keys().copied().collect();
    let drains = Drains::new();

    let unchanged = plan(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &drains, now: 1 });
    assert!(unchanged.ops.is_empty(), "equal tables must plan nothing");
    c.bench_function("plan 10k services x 10 dests, no difference", |b| {
        b.iter(|| {
            plan(black_box(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &drains, now: 1 }))
        })
    });

    differ_by_one_percent(&mut desired);
    let changed = plan(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &drains, now: 1 });
    // 20 weights + 20 replaced backends (add + drain) + 20 schedulers + 20 deletions + 20 × 11 additions.
    assert_eq!(changed.ops.len(), 20 + 40 + 20 + 20 + 20 * 11, "the 1 % difference is not what the bench means");
    c.bench_function("plan 10k services x 10 dests, 1% differ", |b| {
        b.iter(|| {
            plan(black_box(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &drains, now: 1 }))
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = bench_plan
}
criterion_main!(benches);
