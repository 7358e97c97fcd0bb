use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::model::{DestConfig, DestKey, Service, ServiceConfig};
use crate::source::ObjectIndex;
use crate::source::file::parse_documents;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Writes the export as one multi-document YAML file, loads it back like `-f` would, and returns the table it asks
/// for. Any error or conflict on the way fails the test.
fn reapply(export: &TableExport) -> Table {
    let text: String = export.objects.iter().map(|o| format!("---\n{}", serde_yaml::to_string(o).unwrap())).collect();
    let load = parse_documents(Path::new("dump.yaml"), 0, &text);
    assert!(load.errors.is_empty(), "{:#?}\n{text}", load.errors);
    let outcome = ObjectIndex::from_objects(load.objects).outcome();
    assert!(outcome.is_clean(), "{:#?}\n{:#?}\n{text}", outcome.errors, outcome.conflicts);
    let mut table = Table::default();
    for (key, desired) in outcome.table.services {
        table.services.insert(key, ServiceEntry { service: desired.service.clone(), dests: desired.dests.clone() });
    }
    table
}

fn entry(key: ServiceKey, config: ServiceConfig, dests: &[(IpAddr, u16, DestConfig)]) -> ServiceEntry {
    let mut entry = ServiceEntry::new(Service::new(key, config));
    for (addr, port, config) in dests {
        let key = DestKey::new(*addr, *port);
        entry.dests.insert(key, Destination::new(key, *config));
    }
    entry
}

fn table(entries: Vec<ServiceEntry>) -> Table {
    Table { services: entries.into_iter().map(|e| (e.service.key, e)).collect() }
}

fn dr(weight: u32) -> DestConfig {
    DestConfig { forward: ForwardMethod::DirectRoute, ..DestConfig::masquerade(weight) }
}

#[test]
fn names_come_from_the_key() {
    assert_eq!(object_name(&ServiceKey::tcp(ip("192.0.2.10"), 80)), "tcp-192-0-2-10-80");
    assert_eq!(object_name(&ServiceKey::udp(ip("2001:db8::1"), 53)), "udp-2001-db8--1-53");
    let sctp = ServiceKey::Addr { protocol: model::Protocol::Sctp, addr: ip("::1"), port: 0 };
    assert_eq!(object_name(&sctp), "sctp---1-0");
    assert_eq!(object_name(&ServiceKey::Fwmark { family: Family::V4, mark: 42 }), "fwm-42");
    assert_eq!(object_name(&ServiceKey::Fwmark { family: Family::V6, mark: 42 }), "fwm-42-ipv6");
}

#[test]
fn a_service_is_written_with_defaults_left_out() {
    let key = ServiceKey::tcp(ip("192.0.2.10"), 80);
    let mut config = ServiceConfig::new(Family::V4, "rr");
    config.flags = ServiceFlags(ServiceFlags::PERSISTENT);
    config.timeout = 300;
    config.netmask = Netmask::from_prefix(Family::V4, 24);
    let t = table(vec![entry(
        key,
        config,
        &[(ip("10.0.0.1"), 80, dr(1)), (ip("10.0.0.2"), 80, dr(3)), (ip("10.0.0.3"), 8080, DestConfig::masquerade(1))],
    )]);
    let export = from_table(&t);
    assert!(export.skipped.is_empty());
    let object = &export.objects[0];
    assert_eq!(object.metadata.name.as_deref(), Some("tcp-192-0-2-10-80"));
    assert_eq!(object.metadata.namespace, None);
    let yaml = serde_yaml::to_string(&object.spec).unwrap();
    let expected = "address: 192.0.2.10
port: 80
protocol: TCP
scheduler: rr
persistence:
  timeoutSeconds: 300
  prefixLength: 24
forwarding:
  method: DirectRouting
backends:
- address: 10.0.0.1
- address: 10.0.0.2
  weight: 3
- address: 10.0.0.3
  port: 8080
  forwarding:
    method: Masquerade
";
    assert_eq!(yaml, expected);
    assert_eq!(reapply(&export), t);
}

#[test]
fn what_the_api_cannot_say_is_reported_not_changed() {
    let v4 = ServiceConfig::new(Family::V4, "wlc");
    let mut odd_mask = v4.clone();
    odd_mask.flags = ServiceFlags(ServiceFlags::PERSISTENT);
    odd_mask.timeout = 60;
    odd_mask.netmask = Netmask::V4(Ipv4Addr::new(255, 0, 255, 0));
    let bypass = DestConfig { forward: ForwardMethod::Bypass, ..DestConfig::masquerade(1) };
    let stray_tunnel = DestConfig {
        tunnel: TunnelConfig { kind: model::TunnelType::Gue, port: 6080, checksum: model::TunnelChecksum::None },
        ..DestConfig::masquerade(1)
    };
    let good =
        entry(ServiceKey::tcp(ip("192.0.2.9"), 80), v4.clone(), &[(ip("10.0.0.1"), 80, DestConfig::masquerade(1))]);
    let t = table(vec![
        entry(ServiceKey::tcp(ip("192.0.2.1"), 80), odd_mask, &[]),
        entry(ServiceKey::tcp(ip("192.0.2.2"), 80), v4.clone(), &[(ip("10.0.0.1"), 80, bypass)]),
        entry(
            ServiceKey::Addr { protocol: model::Protocol::Other(47), addr: ip("192.0.2.3"), port: 80 },
            v4.clone(),
            &[],
        ),
        entry(ServiceKey::tcp(ip("192.0.2.4"), 80), v4.clone(), &[(ip("10.0.0.1"), 80, stray_tunnel)]),
        entry(ServiceKey::tcp(ip("192.0.2.5"), 80), ServiceConfig::new(Family::V4, "none"), &[]),
        good.clone(),
    ]);
    let export = from_table(&t);
    let reasons: Vec<_> = export.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        vec![
            "TCP 192.0.2.1:80: cannot be written as a VirtualService: persistence netmask 255.0.255.0 is not an IPv4 \
             prefix length",
            "TCP 192.0.2.2:80: cannot be written as a VirtualService: destination 10.0.0.1:80: forwarding Bypass has \
             no method in the API",
            "TCP 192.0.2.4:80: cannot be written as a VirtualService: destination 10.0.0.1:80: tunnel options on a \
             Masquerade destination",
            "TCP 192.0.2.5:80: cannot be written as a VirtualService: scheduler `none` is not one the API knows",
            "proto-47 192.0.2.3:80: cannot be written as a VirtualService: protocol number 47 is not TCP, UDP or SCTP",
        ]
    );
    assert_eq!(export.objects.len(), 1);
    assert_eq!(reapply(&export), table(vec![good]));
}

#[test]
fn addresses_validation_refuses_are_reported_not_written() {
    let v4 = ServiceConfig::new(Family::V4, "wlc");
    let local = DestConfig { forward: ForwardMethod::Local, ..DestConfig::masquerade(1) };
    let good = entry(ServiceKey::tcp(ip("192.0.2.9"), 80), v4.clone(), &[(ip("127.0.0.1"), 8080, local)]);
    let t = table(vec![
        entry(ServiceKey::tcp(ip("127.0.0.1"), 80), v4.clone(), &[]),
        entry(ServiceKey::tcp(ip("169.254.169.254"), 80), v4.clone(), &[]),
        entry(ServiceKey::tcp(ip("192.0.2.1"), 80), v4.clone(), &[(ip("127.0.0.1"), 8080, DestConfig::masquerade(1))]),
        good.clone(),
    ]);
    let export = from_table(&t);
    let reasons: Vec<_> = export.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        reasons,
        vec![
            "TCP 127.0.0.1:80: cannot be written as a VirtualService: virtual address 127.0.0.1 is loopback, which the \
             API refuses",
            "TCP 169.254.169.254:80: cannot be written as a VirtualService: virtual address 169.254.169.254 is \
             link-local, which the API refuses",
            "TCP 192.0.2.1:80: cannot be written as a VirtualService: destination 127.0.0.1:8080: loopback address, \
             which the API refuses with Masquerade",
        ]
    );
    // A loopback destination forwarded Local is written, and validation takes it back.
    assert_eq!(reapply(&export), table(vec![good]));
}

// ---- random tables ----

const PORTS: [u16; 4] = [0, 80, 8080, 65535];

fn vip(family: Family, n: u8) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, n)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(n))),
    }
}

fn backend_addr(family: Family, n: u8) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::new(10, 0, 0, n)),
        Family::V6 => IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n))),
    }
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::V4), Just(Family::V6)]
}

fn valid_key() -> impl Strategy<Value = ServiceKey> {
    let protocol = prop_oneof![Just(model::Protocol::Tcp), Just(model::Protocol::Udp), Just(model::Protocol::Sctp)];
    prop_oneof![
        (protocol, family(), 1u8..4, prop::sample::select(&PORTS[..]))
            .prop_map(|(protocol, family, n, port)| ServiceKey::Addr { protocol, addr: vip(family, n), port }),
        (family(), prop_oneof![1u32..4, Just(u32::MAX)]).prop_map(|(family, mark)| ServiceKey::Fwmark { family, mark }),
    ]
}

/// Raw choices for one destination, made valid by `valid_dest`.
type RawDest = (bool, u8, u16, u8, (u8, u16, u8), u32, u32, u32);

fn raw_dest() -> impl Strategy<Value = RawDest> {
    (
        any::<bool>(),
        1u8..4,
        prop::sample::select(&PORTS[..]),
        0u8..4,
        (0u8..3, 1u16..=65535, 0u8..3),
        0..=MAX_WEIGHT,
        prop_oneof![Just(0u32), any::<u32>()],
        prop_oneof![Just(0u32), any::<u32>()],
    )
}

fn valid_dest(key: ServiceKey, raw: RawDest) -> Destination {
    let (same_family, n, port, method, (kind, tun_port, checksum), weight, upper, lower) = raw;
    let forward = [ForwardMethod::Masquerade, ForwardMethod::Local, ForwardMethod::Tunnel, ForwardMethod::DirectRoute]
        [usize::from(method)];
    let family = match (forward, same_family, key.family()) {
        (ForwardMethod::Tunnel, false, Family::V4) => Family::V6,
        (ForwardMethod::Tunnel, false, Family::V6) => Family::V4,
        (_, _, f) => f,
    };
    let tunnel = if forward == ForwardMethod::Tunnel {
        let kind = model::TunnelType::from_raw(kind);
        let (port, checksum) = match kind {
            model::TunnelType::Gue => (tun_port, model::TunnelChecksum::from_raw(u16::from(checksum))),
            model::TunnelType::Gre => (0, model::TunnelChecksum::from_raw(u16::from(checksum % 2))),
            _ => (0, model::TunnelChecksum::None),
        };
        TunnelConfig { kind, port, checksum }
    } else {
        TunnelConfig::default()
    };
    let port = match (key, forward) {
        (ServiceKey::Addr { port: service_port, .. }, ForwardMethod::DirectRoute | ForwardMethod::Tunnel) => {
            service_port
        }
        _ => port,
    };
    let key = DestKey::new(backend_addr(family, n), port);
    let config = DestConfig { forward, weight, upper_threshold: upper, lower_threshold: lower.min(upper), tunnel };
    Destination::new(key, config)
}

fn valid_entry() -> impl Strategy<Value = ServiceEntry> {
    (
        valid_key(),
        prop::sample::select(SCHEDULERS),
        (any::<bool>(), any::<bool>()),
        (any::<bool>(), any::<bool>(), 1..=MAX_PERSISTENCE_TIMEOUT_SECS, 0u8..=128, any::<bool>()),
        prop::collection::vec(raw_dest(), 0..5),
    )
        .prop_map(|(key, scheduler, (sched1, sched2), (persistent, one_packet, timeout, prefix, sip), raw)| {
            let family = key.family();
            let persistent = persistent || key.port() == 0 && matches!(key, ServiceKey::Addr { .. });
            let mut config = ServiceConfig::new(family, scheduler);
            let mut flags = config.flags;
            if matches!(scheduler, "sh" | "mh") {
                flags = flags.with(ServiceFlags::SCHED1, sched1).with(ServiceFlags::SCHED2, sched2);
            }
            let udp_or_mark = matches!(key, ServiceKey::Fwmark { .. }) || key.protocol() == model::Protocol::Udp;
            flags = flags.with(ServiceFlags::ONEPACKET, one_packet && udp_or_mark);
            if persistent {
                flags = flags.with(ServiceFlags::PERSISTENT, true);
                config.timeout = timeout;
                config.netmask = match family {
                    Family::V4 => Netmask::from_prefix(family, prefix % 33),
                    Family::V6 => Netmask::from_prefix(family, 1 + prefix % 128),
                };
                config.pe_name = sip.then(|| "sip".to_owned());
            }
            config.flags = flags;
            let mut entry = ServiceEntry::new(Service::new(key, config));
            for raw in raw {
                let dest = valid_dest(key, raw);
                entry.dests.insert(dest.key, dest);
            }
            entry
        })
}

/// Changes one thing of a valid service, picked by `what`, to a value that may or may not be expressible.
fn perturb(entry: &mut ServiceEntry, what: u8, value: u32) {
    let config = &mut entry.service.config;
    match what {
        0 => config.netmask = Netmask::V4(Ipv4Addr::from(value)),
        1 => config.netmask = Netmask::V6Prefix(value as u8),
        2 => config.scheduler = ["none", "weird", "sh", "rr"][value as usize % 4].to_owned(),
        3 => config.flags = ServiceFlags::from_kernel(value & 0x3f),
        4 => config.timeout = [0, 1, MAX_PERSISTENCE_TIMEOUT_SECS + 1, value][value as usize % 4],
        5 => config.pe_name = [None, Some("sip"), Some("other")][value as usize % 3].map(str::to_owned),
        6 => {
            let key = &mut entry.service.key;
            *key = match *key {
                ServiceKey::Addr { addr, port, .. } => {
                    ServiceKey::Addr { protocol: model::Protocol::from_number(value as u16 % 140), addr, port }
                }
                ServiceKey::Fwmark { family, .. } => ServiceKey::Fwmark { family, mark: value % 2 },
            };
        }
        _ => {
            let Some(mut dest) = entry.dests.values().next().cloned() else { return };
            entry.dests.remove(&dest.key);
            let c = &mut dest.config;
            match what {
                7 => c.forward = ForwardMethod::from_raw(value),
                8 => {
                    c.tunnel = TunnelConfig {
                        kind: model::TunnelType::from_raw(value as u8 % 4),
                        port: [0, 6080][(value as usize >> 2) % 2],
                        checksum: model::TunnelChecksum::from_raw((value >> 3) as u16 % 4),
                    }
                }
                9 => c.weight = [0, MAX_WEIGHT, MAX_WEIGHT + 1, value][value as usize % 4],
                10 => (c.upper_threshold, c.lower_threshold) = (value % 3, value % 5),
                11 => dest.key.addr = [ip("0.0.0.0"), ip("224.0.0.1"), ip("::"), ip("fd00::9")][value as usize % 4],
                _ => dest.key.port = [0, 80, 8080][value as usize % 3],
            }
            entry.dests.insert(dest.key, dest);
        }
    }
}

/// Any service: a valid one with up to three things changed, so both outcomes of the export are common.
fn any_entry() -> impl Strategy<Value = ServiceEntry> {
    (valid_entry(), prop::collection::vec((0u8..13, any::<u32>()), 0..4)).prop_map(|(mut entry, changes)| {
        for (what, value) in changes {
            perturb(&mut entry, what, value);
        }
        entry
    })
}

fn tables(entry: impl Strategy<Value = ServiceEntry>) -> impl Strategy<Value = Table> {
    prop::collection::vec(entry, 0..6).prop_map(table)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// A valid table, written as manifests and applied again, is the same table.
    #[test]
    fn valid_tables_round_trip(t in tables(valid_entry())) {
        let export = from_table(&t);
        prop_assert!(export.skipped.is_empty(), "{:#?}", export.skipped);
        prop_assert_eq!(reapply(&export), t);
    }

    /// Any table: every service is either written so that it comes back exactly, or reported; never changed.
    #[test]
    fn any_table_is_reproduced_or_reported(t in tables(any_entry())) {
        let export = from_table(&t);
        let skipped: BTreeSet<_> = export.skipped.iter().map(|u| u.key).collect();
        prop_assert!(export.skipped.iter().all(|u| !u.reasons.is_empty()));
        prop_assert_eq!(export.objects.len() + skipped.len(), t.len());
        let expected = Table {
            services: t.services.iter().filter(|(k, _)| !skipped.contains(k)).map(|(k, e)| (*k, e.clone())).collect(),
        };
        prop_assert_eq!(reapply(&export), expected);
    }

    /// The perturbed services are not all refused nor all accepted: the property above tests both paths.
    #[test]
    fn perturbations_reach_both_outcomes(entries in prop::collection::vec(any_entry(), 64)) {
        let export = from_table(&Table { services: entries.into_iter().map(|e| (e.service.key, e)).collect() });
        prop_assert!(!export.objects.is_empty() && !export.skipped.is_empty());
    }
}
