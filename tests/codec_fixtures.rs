//! The codec against bytes captured from the real kernel (see tests/fixtures/ipvs/README.md): every message
//! parses, decodes to what the kernel was told, and emits back to the identical bytes. The captures are from a
//! little-endian machine, and netlink integers are in host order.
#![cfg(target_endian = "little")]

use std::net::{IpAddr, Ipv4Addr};

use ipvs_reconciler::ipvs::packet::{IpvsCmd, IpvsMessage};
use ipvs_reconciler::model::{
    ConnCounts, DaemonState, DestConfig, DestKey, Destination, Family, ForwardMethod, Info, Netmask, Protocol, Service,
    ServiceConfig, ServiceFlags, ServiceKey, Stats, SyncDaemon, Timeouts, TunnelChecksum, TunnelConfig, TunnelType,
};
use netlink_packet_core::{NLM_F_CAPPED, NLM_F_MULTIPART, NetlinkBuffer, NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

type Msg = NetlinkMessage<GenlMessage<IpvsMessage>>;

/// Splits a fixture into messages, parses each, and checks that each emits back to its bytes.
fn parse(name: &str) -> Vec<Msg> {
    let path = format!("{}/tests/fixtures/ipvs/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let mut rest = &bytes[..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        let len = NetlinkBuffer::new_checked(rest).unwrap().length() as usize;
        let (one, tail) = rest.split_at(len);
        let msg = Msg::deserialize(one).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut emitted = vec![0; msg.buffer_len()];
        msg.serialize(&mut emitted);
        assert_eq!(emitted, one, "{name}: message {} does not emit back to its bytes", out.len());
        out.push(msg);
        rest = tail;
    }
    out
}

/// The IPVS payloads of a dump, checking that it is multipart and ends with DONE.
fn dump(name: &str) -> Vec<IpvsMessage> {
    let mut msgs = parse(name);
    let done = msgs.pop().unwrap();
    assert!(matches!(done.payload, NetlinkPayload::Done(ref d) if d.code == 0), "{name} ends with DONE");
    msgs.into_iter()
        .map(|m| {
            assert_ne!(m.header.flags & NLM_F_MULTIPART, 0);
            match m.payload {
                NetlinkPayload::InnerMessage(genl) => genl.payload,
                other => panic!("{name}: {other:?}"),
            }
        })
        .collect()
}

fn single(name: &str) -> IpvsMessage {
    let mut msgs = parse(name);
    assert_eq!(msgs.len(), 1);
    match msgs.remove(0).payload {
        NetlinkPayload::InnerMessage(genl) => genl.payload,
        other => panic!("{name}: {other:?}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn service_dump_decodes_every_kind_of_service() {
    let services: Vec<Service> = dump("service_dump.bin").iter().map(|m| m.to_service().unwrap()).collect();
    let configs: Vec<(ServiceKey, ServiceConfig)> = services.iter().map(|s| (s.key, s.config.clone())).collect();
    let expected = [
        (
            ServiceKey::tcp(ip("192.0.2.1"), 80),
            ServiceConfig {
                scheduler: "wlc".into(),
                flags: ServiceFlags(ServiceFlags::PERSISTENT),
                timeout: 300,
                netmask: Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)),
                pe_name: None,
            },
        ),
        (ServiceKey::udp(ip("2001:db8::1"), 53), ServiceConfig::new(Family::V6, "rr")),
        (
            ServiceKey::Fwmark { family: Family::V4, mark: 42 },
            ServiceConfig {
                flags: ServiceFlags(ServiceFlags::SCHED1 | ServiceFlags::SCHED2),
                ..ServiceConfig::new(Family::V4, "mh")
            },
        ),
        (
            ServiceKey::udp(ip("192.0.2.2"), 5060),
            ServiceConfig {
                flags: ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::ONEPACKET),
                timeout: 60,
                pe_name: Some("sip".into()),
                ..ServiceConfig::new(Family::V4, "sh")
            },
        ),
        (
            ServiceKey::Addr { protocol: Protocol::Sctp, addr: ip("192.0.2.3"), port: 3868 },
            ServiceConfig::new(Family::V4, "lc"),
        ),
    ];
    assert_eq!(configs.len(), expected.len());
    for e in &expected {
        assert!(configs.contains(e), "missing {e:?} in {configs:?}");
    }
    assert!(services.iter().all(|s| s.stats.as_deref() == Some(&Stats::default())), "fresh services count nothing");
}

#[test]
fn destination_dump_carries_tunnel_options_newest_first() {
    let dests: Vec<Destination> =
        dump("dest_dump_fwmark_tunnel.bin").iter().map(|m| m.to_destination(Family::V4).unwrap()).collect();
    let gue = DestConfig {
        forward: ForwardMethod::Tunnel,
        weight: 1,
        upper_threshold: 0,
        lower_threshold: 0,
        tunnel: TunnelConfig { kind: TunnelType::Gue, port: 6080, checksum: TunnelChecksum::Checksum },
    };
    let dr = DestConfig { forward: ForwardMethod::DirectRoute, ..DestConfig::masquerade(5) };
    let got: Vec<_> = dests.iter().map(|d| (d.key, d.config)).collect();
    assert_eq!(got, [(DestKey::new(ip("198.51.100.21"), 443), gue), (DestKey::new(ip("198.51.100.20"), 0), dr)]);
}

#[test]
fn counters_come_from_stats64() {
    let expected = Stats {
        conns: 1,
        in_packets: 1,
        out_packets: 1,
        in_bytes: 60,
        out_bytes: 40,
        cps: 0,
        in_pps: 0,
        out_pps: 0,
        in_bps: 7,
        out_bps: 5,
    };
    let svc = dump("service_dump_counters.bin")[0].to_service().unwrap();
    assert_eq!(svc.key, ServiceKey::tcp(ip("192.0.2.1"), 80));
    assert_eq!(svc.stats.as_deref(), Some(&expected));
    let dest = dump("dest_dump_counters.bin")[0].to_destination(Family::V4).unwrap();
    assert_eq!(dest.key, DestKey::new(ip("192.0.2.1"), 8080));
    assert_eq!(dest.config, DestConfig::masquerade(1));
    assert_eq!(dest.conns, ConnCounts { active: 0, inactive: 1, persistent: 0 });
    assert_eq!(dest.stats.as_deref(), Some(&expected));
}

#[test]
fn info_config_and_daemon_replies() {
    let info = single("get_info_reply.bin");
    assert_eq!(info.cmd, IpvsCmd::SetInfo);
    assert_eq!(info.to_info().unwrap(), Info { version: 0x010201, conn_table_size: 4096 });
    let config = single("get_config_reply.bin");
    assert_eq!(config.to_timeouts().unwrap(), Timeouts { tcp: 900, tcp_fin: 120, udp: 300 });
    let daemons: Vec<SyncDaemon> = dump("get_daemon_dump.bin").iter().map(|m| m.to_daemon().unwrap()).collect();
    assert_eq!(
        daemons,
        [SyncDaemon {
            state: DaemonState::Backup,
            interface: "lo".into(),
            sync_id: 9,
            max_len: Some(65507),
            group: Some(ip("224.0.0.81")),
            port: Some(8848),
            ttl: Some(1),
        }]
    );
}

#[test]
fn errors_and_acks_are_capped() {
    let err = parse("error_eexist_capped.bin").remove(0);
    assert_ne!(err.header.flags & NLM_F_CAPPED, 0);
    let NetlinkPayload::Error(e) = err.payload else { panic!("not an error") };
    assert_eq!(e.raw_code(), -17);
    assert_eq!(e.header.len(), 16, "only the request's header is echoed");
    let ack = parse("ack_capped.bin").remove(0);
    let NetlinkPayload::Error(e) = ack.payload else { panic!("not an ack") };
    assert_eq!(e.code, None);
}
