//! Arbitrary live, desired and owned tables (and drain state, and the time) through the planner, with its laws as
//! the oracle. The tables are built from small fuzz-side mirror structs whose keys are picked from a few values,
//! so that live, desired, owned and draining entries often meet on one key (as in the planner's proptests,
//! `src/table/plan/tests/props.rs`).
//!
//! Oracle, for every input:
//! - nothing foreign is touched: every operation names a service of `owned ∪ desired`, and only owned services
//!   that are no longer desired are deleted;
//! - the plan is valid in sequence: `table::apply_ops` (the kernel's rules in memory) accepts it on the live table;
//! - after it, every service outside `owned ∪ desired` is exactly as it was (counters included), every desired
//!   service has its desired configuration and destinations, and a destination beyond those is one the plan
//!   leaves draining, at weight 0;
//! - planning again at the same time, from the table the plan made, with the drain state it returned and the
//!   desired services as the owned ones (what the engine keeps after a successful pass), gives no operation.
#![no_main]

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arbitrary::Arbitrary;
use ipvs_reconciler::model::{
    ConnCounts, DestConfig, DestKey, Destination, Family, ForwardMethod, Netmask, ObjectId, Protocol, Service,
    ServiceConfig, ServiceFlags, ServiceKey, Stats, Table, TunnelChecksum, TunnelConfig, TunnelType,
};
use ipvs_reconciler::table::{DesiredService, DesiredTable, Drains, PlanInput, apply_ops, plan};
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000;

#[derive(Debug, Arbitrary)]
struct Input {
    live: Vec<LiveService>,
    desired: Vec<WantedService>,
    owned: Vec<KeyPick>,
    drains: Vec<(KeyPick, DestPick, i16)>,
    now: i16,
}

/// One of a few service keys (IPv4, IPv6, TCP, UDP, fwmark).
#[derive(Debug, Clone, Copy, Arbitrary)]
struct KeyPick(u8);

impl KeyPick {
    fn key(self) -> ServiceKey {
        let v4 = |last| IpAddr::V4(Ipv4Addr::new(192, 0, 2, last));
        match self.0 % 7 {
            0 => ServiceKey::tcp(v4(1), 80),
            1 => ServiceKey::tcp(v4(1), 443),
            2 => ServiceKey::udp(v4(1), 80),
            3 => ServiceKey::tcp(v4(2), 80),
            4 => ServiceKey::Addr {
                protocol: Protocol::Sctp,
                addr: IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                port: 80,
            },
            5 => ServiceKey::Fwmark { family: Family::V4, mark: 1 },
            _ => ServiceKey::Fwmark { family: Family::V6, mark: 1 },
        }
    }
}

/// One of a few destination keys.
#[derive(Debug, Clone, Copy, Arbitrary)]
struct DestPick(u8);

impl DestPick {
    fn key(self) -> DestKey {
        match self.0 % 5 {
            0 => DestKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 80),
            1 => DestKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 8080),
            2 => DestKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 80),
            3 => DestKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3)), 0),
            _ => DestKey::new(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)), 80),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct ConfigPick {
    scheduler: u8,
    flags: u8,
    timeout: u8,
    prefix: u8,
    pe: bool,
}

impl ConfigPick {
    fn config(&self, family: Family) -> ServiceConfig {
        let mut config = ServiceConfig::new(family, ["rr", "wlc", "sh", "mh"][usize::from(self.scheduler % 4)]);
        config.flags = ServiceFlags(u32::from(self.flags % 8));
        config.timeout = u32::from(self.timeout % 3) * 300;
        if self.prefix % 3 == 1 {
            config.netmask = Netmask::from_prefix(family, 24);
        }
        config.pe_name = self.pe.then(|| "sip".to_owned());
        config
    }
}

#[derive(Debug, Arbitrary)]
struct DestConfigPick {
    forward: u8,
    weight: u8,
    upper: u8,
    lower: u8,
    tunnel: u8,
}

impl DestConfigPick {
    fn config(&self) -> DestConfig {
        let forward = match self.forward % 4 {
            0 => ForwardMethod::Masquerade,
            1 => ForwardMethod::DirectRoute,
            2 => ForwardMethod::Tunnel,
            _ => ForwardMethod::Local,
        };
        let tunnel = match self.tunnel % 3 {
            0 => TunnelConfig::default(),
            1 => TunnelConfig { kind: TunnelType::Gue, port: 6080, checksum: TunnelChecksum::Checksum },
            _ => TunnelConfig { kind: TunnelType::Gre, port: 0, checksum: TunnelChecksum::None },
        };
        DestConfig {
            forward,
            weight: u32::from(self.weight % 4),
            upper_threshold: u32::from(self.upper % 2) * 100,
            lower_threshold: u32::from(self.lower % 2) * 10,
            tunnel,
        }
    }
}

#[derive(Debug, Arbitrary)]
struct LiveService {
    key: KeyPick,
    config: ConfigPick,
    stats: Option<u32>,
    dests: Vec<LiveDest>,
}

#[derive(Debug, Arbitrary)]
struct LiveDest {
    key: DestPick,
    config: DestConfigPick,
    active: u8,
    inactive: u8,
    persistent: u8,
    stats: Option<u32>,
}

#[derive(Debug, Arbitrary)]
struct WantedService {
    key: KeyPick,
    config: ConfigPick,
    dests: Vec<(DestPick, DestConfigPick)>,
    drain_timeout: u8,
}

fn stats(n: Option<u32>) -> Option<Box<Stats>> {
    n.map(|n| Box::new(Stats { conns: u64::from(n), in_bytes: u64::from(n) * 100, ..Stats::default() }))
}

fn at(offset: i16) -> u64 {
    NOW.saturating_add_signed(i64::from(offset))
}

fn live_table(services: &[LiveService]) -> Table {
    let mut table = Table::default();
    for s in services {
        let key = s.key.key();
        let service = Service { key, config: s.config.config(key.family()), stats: stats(s.stats) };
        let entry = table.insert_service(service);
        for d in &s.dests {
            let dk = d.key.key();
            let conns = ConnCounts {
                active: u32::from(d.active % 4),
                inactive: u32::from(d.inactive % 4),
                persistent: u32::from(d.persistent % 2),
            };
            entry.dests.insert(dk, Destination { key: dk, config: d.config.config(), conns, stats: stats(d.stats) });
        }
    }
    table
}

fn desired_table(services: &[WantedService]) -> DesiredTable {
    let mut table = DesiredTable::default();
    for s in services {
        let key = s.key.key();
        let dests = s.dests.iter().map(|(dk, c)| (dk.key(), Destination::new(dk.key(), c.config()))).collect();
        let drain_timeout_secs = [0, 30, 300, u64::MAX][usize::from(s.drain_timeout % 4)];
        let service = DesiredService {
            service: Service::new(key, s.config.config(key.family())),
            dests,
            drain_timeout_secs,
            origin: ObjectId::kubernetes("fuzz", key.to_string()),
            health: None,
            bind_address: matches!(key, ServiceKey::Addr { .. }),
            withdraw_address_when_down: false,
        };
        table.services.insert(key, Arc::new(service));
    }
    table
}

fuzz_target!(|input: Input| {
    let live = live_table(&input.live);
    let desired = desired_table(&input.desired);
    let owned: BTreeSet<ServiceKey> = input.owned.iter().map(|k| k.key()).collect();
    let drains: Drains = input.drains.iter().map(|(k, d, t)| ((k.key(), d.key()), at(*t))).collect();
    let now = at(input.now);

    let first = plan(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &drains, now });

    // Nothing foreign touched.
    let touchable: BTreeSet<ServiceKey> = owned.iter().chain(desired.services.keys()).copied().collect();
    for op in &first.ops {
        assert!(touchable.contains(op.service_key()), "{op} outside owned ∪ desired");
        if let ipvs_reconciler::model::Op::DeleteService(key) = op {
            assert!(owned.contains(key) && !desired.services.contains_key(key), "{op}: not owned, or desired");
        }
    }

    // Valid in sequence, and it reaches the desired table.
    let mut after = live.clone();
    if let Err(e) = apply_ops(&mut after, &first.ops) {
        panic!("the plan does not apply: {e}\nops: {:?}", first.ops);
    }
    for (key, entry) in live.services.iter().filter(|(k, _)| !touchable.contains(k)) {
        assert_eq!(after.services.get(key), Some(entry), "foreign service {key} changed");
    }
    let draining: BTreeSet<(ServiceKey, DestKey)> = first.draining.iter().copied().collect();
    for (key, want) in &desired.services {
        let Some(got) = after.services.get(key) else { panic!("desired {key} missing after the plan") };
        assert_eq!(got.service.config, want.service.config, "service {key}");
        for (dk, d) in &want.dests {
            assert_eq!(got.dests.get(dk).map(|g| g.config), Some(d.config), "{key} -> {dk}");
        }
        for (dk, d) in got.dests.iter().filter(|(dk, _)| !want.dests.contains_key(dk)) {
            assert!(draining.contains(&(*key, *dk)), "{key} -> {dk} kept without draining");
            assert_eq!(d.config.weight, 0, "{key} -> {dk} draining at a non-zero weight");
        }
    }
    for key in owned.iter().filter(|k| !desired.services.contains_key(k)) {
        assert!(!after.services.contains_key(key), "owned {key} not deleted");
    }

    // A second plan from there has nothing to do.
    let owned_after: BTreeSet<ServiceKey> = desired.services.keys().copied().collect();
    let again = plan(&PlanInput { live: &after, desired: &desired, owned: &owned_after, drains: &first.drains, now });
    assert!(again.ops.is_empty(), "second plan not empty: {:?}\nfirst: {:?}", again.ops, first.ops);
});
