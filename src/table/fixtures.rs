//! Test-only constructors for live and desired tables.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::desired::{DesiredService, DesiredTable};
use crate::model::{
    ConnCounts, DestConfig, DestKey, Destination, ObjectId, Service, ServiceConfig, ServiceEntry, ServiceKey, Stats,
    Table,
};

/// `TCP 192.0.2.<last>:80`
pub fn svc(last: u8) -> ServiceKey {
    ServiceKey::tcp(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), 80)
}

/// `10.0.0.<last>:80`
pub fn dest(last: u8) -> DestKey {
    DestKey::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 80)
}

/// A live service: `dests` are (key, weight, active, inactive); counters are set so that they differ from desired.
pub fn live_entry(key: ServiceKey, scheduler: &str, dests: &[(DestKey, u32, u32, u32)]) -> ServiceEntry {
    let mut service = Service::new(key, ServiceConfig::new(key.family(), scheduler));
    service.stats = Some(Box::new(Stats { conns: 42, in_packets: 1000, ..Stats::default() }));
    let mut entry = ServiceEntry::new(service);
    for &(dest_key, weight, active, inactive) in dests {
        let mut dest = Destination::new(dest_key, DestConfig::masquerade(weight));
        dest.conns = ConnCounts { active, inactive, persistent: 0 };
        dest.stats = Some(Box::new(Stats { conns: u64::from(active), ..Stats::default() }));
        entry.dests.insert(dest_key, dest);
    }
    entry
}

/// A desired service: `dests` are (key, weight).
pub fn desired_service(key: ServiceKey, scheduler: &str, dests: &[(DestKey, u32)], drain: u64) -> DesiredService {
    DesiredService {
        service: Service::new(key, ServiceConfig::new(key.family(), scheduler)),
        dests: dests.iter().map(|&(k, w)| (k, Destination::new(k, DestConfig::masquerade(w)))).collect(),
        drain_timeout_secs: drain,
        origin: ObjectId::kubernetes("test", key.to_string()),
        health: None,
        bind_address: matches!(key, ServiceKey::Addr { .. }),
        withdraw_address_when_down: false,
    }
}

/// A health policy for tests: TCP checks every 2 s (1 s timeout), rise 2, fall 3, starting healthy, weight 0 on
/// failure, no slow start, no sorry server.
pub fn tcp_policy() -> crate::table::HealthPolicy {
    use std::time::Duration;

    use crate::health::{Check, Probe, Schedule};
    crate::table::HealthPolicy {
        check: Some(Check::new(Probe::Tcp, Duration::from_secs(1))),
        schedule: Schedule { interval: Duration::from_secs(2), rise: 2, fall: 3, initial_healthy: true },
        port: None,
        source: None,
        on_failure: crate::table::OnFailure::Inhibit,
        slow_start: None,
        sorry_server: None,
        quorum: 1,
        hysteresis: 0,
        backends: BTreeMap::new(),
    }
}

/// A live table from entries.
pub fn live(entries: impl IntoIterator<Item = ServiceEntry>) -> Table {
    Table { services: entries.into_iter().map(|e| (e.service.key, e)).collect::<BTreeMap<_, _>>() }
}

/// A desired table from services.
pub fn desired(services: impl IntoIterator<Item = DesiredService>) -> DesiredTable {
    DesiredTable { services: services.into_iter().map(|s| (s.service.key, std::sync::Arc::new(s))).collect() }
}
