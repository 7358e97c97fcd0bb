//! Codec laws: every nest round-trips model → bytes → model, unknown attributes survive as `Other`, and
//! malformed input is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DefaultNla, Emitable, NetlinkMessage, NetlinkPayload, Nla, NlaBuffer, Parseable};
use netlink_packet_generic::GenlMessage;
use proptest::prelude::*;

use super::*;
use crate::model::{
    ConnCounts, DaemonState, DestConfig, DestKey, Destination, Family, ForwardMethod, Info, Netmask, Protocol, Service,
    ServiceConfig, ServiceFlags, ServiceKey, Stats, SyncDaemon, Timeouts, TunnelChecksum, TunnelConfig, TunnelType,
};

const FAMILY_ID: u16 = 0x24;

fn to_bytes(msg: IpvsMessage) -> Vec<u8> {
    let mut genl = GenlMessage::from_payload(msg);
    genl.set_resolved_family_id(FAMILY_ID);
    let mut nl = NetlinkMessage::from(genl);
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    buf
}

fn from_bytes(bytes: &[u8]) -> Result<IpvsMessage, String> {
    let nl = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(bytes).map_err(|e| e.to_string())?;
    match nl.payload {
        NetlinkPayload::InnerMessage(genl) => Ok(genl.payload),
        other => Err(format!("not an IPVS message: {other:?}")),
    }
}

fn round_trip(msg: IpvsMessage) -> IpvsMessage {
    from_bytes(&to_bytes(msg)).unwrap()
}

/// Emits one attribute on its own, for byte-level checks.
fn attr_bytes<T: Emitable>(attr: &T) -> Vec<u8> {
    let mut buf = vec![0xee; attr.buffer_len()];
    attr.emit(&mut buf);
    buf
}

// ---- strategies -------------------------------------------------------------------------------------------

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|b| IpAddr::V4(Ipv4Addr::from(b))),
        any::<[u8; 16]>().prop_map(|b| IpAddr::V6(Ipv6Addr::from(b))),
    ]
}

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![Just(Family::V4), Just(Family::V6)]
}

fn protocol() -> impl Strategy<Value = Protocol> {
    prop_oneof![
        Just(Protocol::Tcp),
        Just(Protocol::Udp),
        Just(Protocol::Sctp),
        any::<u16>().prop_map(Protocol::from_number),
    ]
}

fn service_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (protocol(), ip(), any::<u16>()).prop_map(|(protocol, addr, port)| ServiceKey::Addr { protocol, addr, port }),
        (family(), any::<u32>()).prop_map(|(family, mark)| ServiceKey::Fwmark { family, mark }),
    ]
}

fn stats() -> impl Strategy<Value = Stats> {
    (any::<[u64; 5]>(), any::<[u64; 5]>()).prop_map(|(a, b)| Stats {
        conns: a[0],
        in_packets: a[1],
        out_packets: a[2],
        in_bytes: a[3],
        out_bytes: a[4],
        cps: b[0],
        in_pps: b[1],
        out_pps: b[2],
        in_bps: b[3],
        out_bps: b[4],
    })
}

fn name() -> impl Strategy<Value = String> {
    "[a-z0-9_-]{1,15}"
}

fn service() -> impl Strategy<Value = Service> {
    service_key().prop_flat_map(|key| {
        let netmask = match key.family() {
            Family::V4 => any::<[u8; 4]>().prop_map(|m| Netmask::V4(Ipv4Addr::from(m))).boxed(),
            Family::V6 => any::<u8>().prop_map(Netmask::V6Prefix).boxed(),
        };
        (name(), any::<u32>(), any::<u32>(), netmask, proptest::option::of(name()), proptest::option::of(stats()))
            .prop_map(move |(scheduler, flags, timeout, netmask, pe_name, stats)| Service {
                key,
                config: ServiceConfig { scheduler, flags: ServiceFlags::from_kernel(flags), timeout, netmask, pe_name },
                stats: stats.map(Box::new),
            })
    })
}

fn dest_config() -> impl Strategy<Value = DestConfig> {
    (0u32..8, any::<u32>(), any::<u32>(), any::<u32>(), any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
        |(fwd, weight, upper_threshold, lower_threshold, kind, port, checksum)| DestConfig {
            forward: ForwardMethod::from_raw(fwd),
            weight,
            upper_threshold,
            lower_threshold,
            tunnel: TunnelConfig {
                kind: TunnelType::from_raw(kind),
                port,
                checksum: TunnelChecksum::from_raw(checksum),
            },
        },
    )
}

fn destination() -> impl Strategy<Value = Destination> {
    (ip(), any::<u16>(), dest_config(), any::<[u32; 3]>(), proptest::option::of(stats())).prop_map(
        |(addr, port, config, c, stats)| Destination {
            key: DestKey::new(addr, port),
            config,
            conns: ConnCounts { active: c[0], inactive: c[1], persistent: c[2] },
            stats: stats.map(Box::new),
        },
    )
}

fn daemon() -> impl Strategy<Value = SyncDaemon> {
    (
        prop_oneof![Just(DaemonState::Master), Just(DaemonState::Backup)],
        name(),
        any::<u32>(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(ip()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<u8>()),
    )
        .prop_map(|(state, interface, sync_id, max_len, group, port, ttl)| SyncDaemon {
            state,
            interface,
            sync_id,
            max_len,
            group,
            port,
            ttl,
        })
}

fn service_reply(service: &Service) -> IpvsMessage {
    IpvsMessage::new(IpvsCmd::NewService, vec![CmdAttr::Service(service::reply_attrs(service))])
}

fn dest_reply(dest: &Destination) -> IpvsMessage {
    IpvsMessage::new(IpvsCmd::NewDest, vec![CmdAttr::Dest(dest::reply_attrs(dest))])
}

fn daemon_reply(daemon: &SyncDaemon) -> IpvsMessage {
    IpvsMessage::new(IpvsCmd::NewDaemon, vec![CmdAttr::Daemon(daemon::request_attrs(daemon))])
}

// ---- round trips ------------------------------------------------------------------------------------------

proptest! {
    #[test]
    fn service_nest_round_trips(svc in service()) {
        let decoded = round_trip(service_reply(&svc)).to_service().unwrap();
        prop_assert_eq!(decoded, svc);
    }

    #[test]
    fn service_request_round_trips_without_stats(svc in service()) {
        let msg = round_trip(IpvsMessage::new_service(&svc));
        prop_assert_eq!(msg.cmd, IpvsCmd::NewService);
        // A request parses with the reply reader, less the counters it does not carry.
        let as_reply = IpvsMessage { cmd: IpvsCmd::NewService, attrs: msg.attrs };
        prop_assert_eq!(as_reply.to_service().unwrap(), Service { stats: None, ..svc });
    }

    #[test]
    fn service_key_round_trips_in_key_only_commands(key in service_key()) {
        let msg = round_trip(IpvsMessage::del_service(&key));
        let CmdAttr::Service(nest) = &msg.cmd_attrs()[0] else { panic!("no service nest") };
        prop_assert_eq!(service::decode_key(nest).unwrap(), key);
    }

    #[test]
    fn destination_nest_round_trips(dest in destination(), svc_family in family()) {
        let decoded = round_trip(dest_reply(&dest)).to_destination(svc_family).unwrap();
        prop_assert_eq!(decoded, dest);
    }

    #[test]
    fn destination_without_address_family_takes_the_service_family(dest in destination()) {
        let attrs: Vec<DestAttr> = dest::reply_attrs(&dest)
            .into_iter()
            .filter(|a| !matches!(a, DestAttr::AddressFamily(_)))
            .collect();
        let decoded = dest::decode_destination(&attrs, dest.key.family()).unwrap();
        prop_assert_eq!(decoded, dest);
    }

    #[test]
    fn daemon_nest_round_trips(d in daemon()) {
        prop_assert_eq!(round_trip(daemon_reply(&d)).to_daemon().unwrap(), d);
    }

    #[test]
    fn timeouts_round_trip(tcp in any::<u32>(), tcp_fin in any::<u32>(), udp in any::<u32>()) {
        let t = Timeouts { tcp, tcp_fin, udp };
        let mut msg = round_trip(IpvsMessage::set_config(&t));
        prop_assert_eq!(msg.cmd, IpvsCmd::SetConfig);
        msg.cmd = IpvsCmd::SetConfig;
        prop_assert_eq!(msg.to_timeouts().unwrap(), t);
    }

    #[test]
    fn info_round_trips(version in any::<u32>(), conn_table_size in any::<u32>()) {
        let info = Info { version, conn_table_size };
        prop_assert_eq!(round_trip(IpvsMessage::info_reply(&info)).to_info().unwrap(), info);
    }

    #[test]
    fn stats_nests_round_trip(s in stats()) {
        let bytes = attr_bytes(&ServiceAttr::Stats64(stats::encode_stats64(&s)));
        let parsed = ServiceAttr::parse(&NlaBuffer::new_checked(&bytes[..]).unwrap()).unwrap();
        let ServiceAttr::Stats64(attrs) = parsed else { panic!("not stats64") };
        prop_assert_eq!(stats::decode_stats64(&attrs), s);

        // The 32-bit nest keeps the byte counters whole and truncates the others, as the kernel does.
        let bytes = attr_bytes(&DestAttr::Stats(stats::encode_stats(&s)));
        let parsed = DestAttr::parse(&NlaBuffer::new_checked(&bytes[..]).unwrap()).unwrap();
        let DestAttr::Stats(attrs) = parsed else { panic!("not stats") };
        let got = stats::decode_stats(&attrs);
        prop_assert_eq!(got.in_bytes, s.in_bytes);
        prop_assert_eq!(got.out_bytes, s.out_bytes);
        prop_assert_eq!(got.conns, s.conns & 0xffff_ffff);
        prop_assert_eq!(got.out_bps, s.out_bps & 0xffff_ffff);
    }

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = from_bytes(&bytes);
        // Also as an attribute stream after a valid header, the most exposed path.
        let mut msg = to_bytes(IpvsMessage::get_info());
        msg.extend_from_slice(&bytes);
        let len = msg.len() as u32;
        msg[..4].copy_from_slice(&len.to_ne_bytes());
        if let Ok(m) = from_bytes(&msg) {
            let _ = m.to_service();
            let _ = m.to_destination(Family::V4);
            let _ = m.to_daemon();
            let _ = m.to_timeouts();
        }
    }

    #[test]
    fn every_truncation_is_an_error_or_a_shorter_message(svc in service(), cut in 0usize..400) {
        let bytes = to_bytes(service_reply(&svc));
        let cut = cut.min(bytes.len());
        let mut short = bytes[..cut].to_vec();
        if short.len() >= 4 {
            // Make the header claim the truncated length, so the attribute parser sees the cut.
            let len = short.len() as u32;
            short[..4].copy_from_slice(&len.to_ne_bytes());
        }
        if let Ok(msg) = from_bytes(&short) {
            // What parses is a prefix; reading it either works or names what is missing.
            if let Err(e) = msg.to_service() {
                prop_assert!(e.to_string().contains("missing") || e.to_string().contains("expected"), "{}", e);
            }
        }
    }
}

// ---- wire format facts ------------------------------------------------------------------------------------

#[test]
#[cfg(target_endian = "little")]
fn ports_are_big_endian_and_families_native() {
    let key = ServiceKey::tcp("192.0.2.1".parse().unwrap(), 8080);
    let attrs = service::key_attrs(&key);
    assert_eq!(attr_bytes(&attrs[0]), [6, 0, 1, 0, 2, 0, 0, 0]); // AF_INET, host order, padded
    assert_eq!(attr_bytes(&attrs[1]), [6, 0, 2, 0, 6, 0, 0, 0]); // TCP
    let mut addr = vec![20, 0, 3, 0, 192, 0, 2, 1];
    addr.extend([0; 12]);
    assert_eq!(attr_bytes(&attrs[2]), addr); // 16 bytes, IPv4 first
    assert_eq!(attr_bytes(&attrs[3]), [6, 0, 4, 0, 0x1f, 0x90, 0, 0]); // port 8080 in network order
}

#[test]
fn ipv4_netmask_is_the_mask_bytes_and_ipv6_a_prefix_length() {
    let v4 = Service::new(
        ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80),
        ServiceConfig {
            netmask: Netmask::V4("255.255.255.0".parse().unwrap()),
            ..ServiceConfig::new(Family::V4, "rr")
        },
    );
    let mask = service::request_attrs(&v4).into_iter().find(|a| matches!(a, ServiceAttr::Netmask(_))).unwrap();
    assert_eq!(attr_bytes(&mask), [8, 0, 9, 0, 255, 255, 255, 0]);

    let v6 = Service::new(ServiceKey::tcp("2001:db8::1".parse().unwrap(), 80), ServiceConfig::new(Family::V6, "rr"));
    let mask = service::request_attrs(&v6).into_iter().find(|a| matches!(a, ServiceAttr::Netmask(_))).unwrap();
    assert_eq!(attr_bytes(&mask), [8, 0, 9, 0].into_iter().chain(128u32.to_ne_bytes()).collect::<Vec<_>>());
}

#[test]
fn new_service_replaces_all_flags_and_always_sends_the_required_attributes() {
    let svc = Service::new(ServiceKey::udp("192.0.2.1".parse().unwrap(), 53), ServiceConfig::new(Family::V4, "wlc"));
    let attrs = service::request_attrs(&svc);
    assert!(attrs.contains(&ServiceAttr::Flags(FlagsMask { flags: 0, mask: u32::MAX })));
    assert!(attrs.contains(&ServiceAttr::SchedulerName("wlc".into())));
    assert!(attrs.contains(&ServiceAttr::Timeout(0)));
    assert!(attrs.iter().any(|a| matches!(a, ServiceAttr::Netmask(_))));
    // No engine: no PE_NAME attribute, which is how SET_SERVICE removes an engine.
    assert!(!attrs.iter().any(|a| matches!(a, ServiceAttr::PersistenceEngine(_))));
    let with_pe = Service { config: ServiceConfig { pe_name: Some("sip".into()), ..svc.config.clone() }, ..svc };
    assert!(service::request_attrs(&with_pe).contains(&ServiceAttr::PersistenceEngine("sip".into())));
}

#[test]
fn fwmark_keys_carry_only_family_and_mark() {
    let key = ServiceKey::Fwmark { family: Family::V6, mark: 42 };
    assert_eq!(service::key_attrs(&key), vec![ServiceAttr::AddressFamily(10), ServiceAttr::Fwmark(42)]);
    // The kernel's reply for a mark service: AF + FWMARK and the configuration, no protocol/address/port.
    let reply = vec![
        ServiceAttr::AddressFamily(2),
        ServiceAttr::Fwmark(7),
        ServiceAttr::SchedulerName("rr".into()),
        ServiceAttr::Flags(FlagsMask { flags: ServiceFlags::HASHED, mask: u32::MAX }),
        ServiceAttr::Timeout(0),
        ServiceAttr::Netmask(u32::MAX),
    ];
    let svc = service::decode_service(&reply).unwrap();
    assert_eq!(svc.key, ServiceKey::Fwmark { family: Family::V4, mark: 7 });
    assert_eq!(svc.config.flags, ServiceFlags(0), "HASHED is removed on read");
    assert_eq!(svc.config.netmask, Netmask::V4(Ipv4Addr::BROADCAST));
}

#[test]
fn destination_requests_always_carry_family_and_tunnel_options() {
    let dest = Destination::new(DestKey::new("10.0.0.1".parse().unwrap(), 80), DestConfig::masquerade(1));
    let key = ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80);
    for msg in [IpvsMessage::new_dest(&key, &dest), IpvsMessage::set_dest(&key, &dest)] {
        let CmdAttr::Dest(attrs) = &msg.cmd_attrs()[1] else { panic!("no dest nest") };
        assert!(attrs.contains(&DestAttr::AddressFamily(2)));
        assert!(attrs.contains(&DestAttr::TunnelType(0)));
        assert!(attrs.contains(&DestAttr::TunnelPort(0)));
        assert!(attrs.contains(&DestAttr::TunnelFlags(0)));
        for required in [DestAttr::ForwardMethod(0), DestAttr::Weight(1), DestAttr::UpperThreshold(0)] {
            assert!(attrs.contains(&required), "{required:?} missing");
        }
    }
    let del = IpvsMessage::del_dest(&key, &dest.key);
    let CmdAttr::Dest(attrs) = &del.cmd_attrs()[1] else { panic!("no dest nest") };
    assert_eq!(attrs.len(), 3, "DEL_DEST sends the key only: {attrs:?}");
}

#[test]
fn stats64_is_preferred_over_stats() {
    let old = Stats { conns: 1, ..Stats::default() };
    let new = Stats { conns: 1 << 40, ..Stats::default() };
    let dest = Destination::new(DestKey::new("10.0.0.1".parse().unwrap(), 80), DestConfig::masquerade(1));
    let mut attrs = dest::request_attrs(&dest.key, &dest.config);
    // Order must not matter: the 64-bit set wins wherever it is.
    attrs.insert(0, DestAttr::Stats64(stats::encode_stats64(&new)));
    attrs.push(DestAttr::Stats(stats::encode_stats(&old)));
    assert_eq!(dest::decode_destination(&attrs, Family::V4).unwrap().stats, Some(Box::new(new)));
}

#[test]
fn unknown_attributes_decode_as_other_and_emit_unchanged() {
    let unknown_top = DefaultNla::new(99, vec![1, 2, 3, 4]);
    let unknown_svc = DefaultNla::new(42, vec![9, 9]);
    let unknown_stat = DefaultNla::new(11, vec![]); // IPVS_STATS_ATTR_PAD
    let svc = Service::new(ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80), ServiceConfig::new(Family::V4, "rr"));
    let mut nest = service::request_attrs(&svc);
    nest.push(ServiceAttr::Other(unknown_svc.clone()));
    nest.push(ServiceAttr::Stats64(vec![Stats64Attr::Other(unknown_stat.clone()), Stats64Attr::Conns(5)]));
    let msg = IpvsMessage::new(IpvsCmd::NewService, vec![CmdAttr::Service(nest), CmdAttr::Other(unknown_top.clone())]);
    let bytes = to_bytes(msg.clone());
    let parsed = from_bytes(&bytes).unwrap();
    assert_eq!(parsed, msg);
    assert_eq!(to_bytes(parsed.clone()), bytes);
    let read = parsed.to_service().unwrap();
    assert_eq!(read.stats.map(|s| s.conns), Some(5));
}

#[test]
#[cfg(target_endian = "little")]
fn nested_flag_is_accepted_on_input() {
    let svc = Service::new(ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80), ServiceConfig::new(Family::V4, "rr"));
    let mut bytes = to_bytes(service_reply(&svc));
    // The service nest starts after nlmsghdr (16) and genlmsghdr (4); its type is at offset 2 of the attribute.
    bytes[23] |= 0x80; // NLA_F_NESTED is bit 15 of the little-endian type at offset 22
    assert_eq!(from_bytes(&bytes).unwrap().to_service().unwrap(), svc);
}

#[test]
fn info_attributes_are_read_in_the_info_namespace_only_for_set_info() {
    let info = Info { version: 0x010201, conn_table_size: 4096 };
    let bytes = to_bytes(IpvsMessage::info_reply(&info));
    let parsed = from_bytes(&bytes).unwrap();
    assert_eq!(parsed.attrs, IpvsAttrs::Info(vec![InfoAttr::Version(0x010201), InfoAttr::ConnTableSize(4096)]));
    assert_eq!(parsed.to_info().unwrap().version_string(), "1.2.1");
    // The same numbers under another command are command attributes: 1 would be a service nest.
    let mut other = bytes.clone();
    other[16] = u8::from(IpvsCmd::SetConfig);
    assert!(from_bytes(&other).is_err(), "a 4-byte value is not a valid service nest");
}

#[test]
fn missing_required_attributes_are_named() {
    let svc = Service::new(ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80), ServiceConfig::new(Family::V4, "rr"));
    for (drop, name) in [
        (6u16, "IPVS_SVC_ATTR_SCHED_NAME"),
        (7, "IPVS_SVC_ATTR_FLAGS"),
        (8, "IPVS_SVC_ATTR_TIMEOUT"),
        (9, "IPVS_SVC_ATTR_NETMASK"),
        (1, "IPVS_SVC_ATTR_AF"),
        (4, "IPVS_SVC_ATTR_PORT"),
    ] {
        let nest: Vec<_> = service::request_attrs(&svc).into_iter().filter(|a| a.kind() != drop).collect();
        let err = service::decode_service(&nest).unwrap_err().to_string();
        assert!(err.contains(name), "dropping {drop}: {err}");
    }
    let dest = Destination::new(DestKey::new("10.0.0.1".parse().unwrap(), 80), DestConfig::masquerade(1));
    for (drop, name) in [(1u16, "IPVS_DEST_ATTR_ADDR"), (3, "IPVS_DEST_ATTR_FWD_METHOD"), (4, "IPVS_DEST_ATTR_WEIGHT")]
    {
        let nest: Vec<_> = dest::reply_attrs(&dest).into_iter().filter(|a| a.kind() != drop).collect();
        let err = dest::decode_destination(&nest, Family::V4).unwrap_err().to_string();
        assert!(err.contains(name), "dropping {drop}: {err}");
    }
    let err = IpvsMessage::new(IpvsCmd::NewService, vec![]).to_service().unwrap_err().to_string();
    assert!(err.contains("IPVS_CMD_ATTR_SERVICE"), "{err}");
    let err = IpvsMessage::new(IpvsCmd::SetConfig, vec![CmdAttr::TimeoutTcp(1)]).to_timeouts().unwrap_err();
    assert!(err.to_string().contains("IPVS_CMD_ATTR_TIMEOUT_TCP_FIN"), "{err}");
    let err = IpvsMessage::get_info().to_info().unwrap_err().to_string();
    assert!(err.contains("expected an IPVS_CMD_SET_INFO reply"), "{err}");
}

#[test]
fn wrong_sized_values_are_errors_naming_the_attribute() {
    // A service nest whose PORT attribute holds 4 bytes.
    let bad_port = [8u8, 0, 4, 0, 0, 80, 0, 0];
    let err = ServiceAttr::parse(&NlaBuffer::new_checked(&bad_port[..]).unwrap()).unwrap_err().to_string();
    assert!(err.contains("IPVS_SVC_ATTR_PORT"), "{err}");
    let bad_af = [5u8, 0, 11, 0, 2, 0, 0, 0];
    let err = DestAttr::parse(&NlaBuffer::new_checked(&bad_af[..]).unwrap()).unwrap_err().to_string();
    assert!(err.contains("IPVS_DEST_ATTR_ADDR_FAMILY"), "{err}");
}

#[test]
fn unknown_commands_parse() {
    let mut bytes = to_bytes(IpvsMessage::flush());
    bytes[16] = 99;
    assert_eq!(from_bytes(&bytes).unwrap().cmd, IpvsCmd::Other(99));
    assert_eq!(IpvsCmd::Other(99).to_string(), "IPVS_CMD_99");
    for n in 1..=17u8 {
        assert_eq!(u8::from(IpvsCmd::from(n)), n);
        assert!(!matches!(IpvsCmd::from(n), IpvsCmd::Other(_)));
    }
}

#[test]
fn the_genl_header_names_the_command_and_version_1() {
    let bytes = to_bytes(IpvsMessage::get_service(None));
    assert_eq!(u16::from_ne_bytes([bytes[4], bytes[5]]), FAMILY_ID);
    assert_eq!(bytes[16], 4, "IPVS_CMD_GET_SERVICE");
    assert_eq!(bytes[17], 1, "version");
    assert_eq!(bytes.len(), 20, "a dump request carries no attributes");
}
