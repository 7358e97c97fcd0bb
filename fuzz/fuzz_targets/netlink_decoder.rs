//! Arbitrary bytes as the kernel's replies to one table read: the service dump, then one destination dump per
//! service read, each a run of netlink datagrams, separated in the input by [`SEPARATOR`].
//!
//! They go through the read's own path (`ipvs::replay_read`): the socket codec's framing (`CaptureCodec`, `Wire`),
//! the answer collection by sequence number (each dump is request 1), the reply decoding into services and
//! destinations, and the read's consistency checks (a service or destination seen twice).
//!
//! Oracle:
//! - nothing panics, whatever the bytes;
//! - every IPVS message that decoded re-encodes to bytes that decode to the same message (the codec's round trip);
//! - every message that reads as a service, destination, daemon, timeouts or info re-encodes from the model value
//!   (the replies the fakes build, `reply_attrs`) to a message that reads back as the same value;
//! - a read that succeeds holds each service once, under its own key, with destinations under their own keys.
#![no_main]

use ipvs_reconciler::ipvs::packet::{CmdAttr, IpvsCmd, IpvsMessage, daemon, dest, service};
use ipvs_reconciler::model::Family;
use libfuzzer_sys::fuzz_target;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

/// Splits the input into dumps (the service dump first).
const SEPARATOR: &[u8] = b"\n--dump--\n";

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(&rest[..at]);
        rest = &rest[at + SEPARATOR.len()..];
    }
    parts.push(rest);
    parts
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

/// The message framed as the kernel would send it, decoded again.
fn round_trip(msg: &IpvsMessage) -> IpvsMessage {
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(0x20);
    let mut nl = NetlinkMessage::from(genl);
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    let back = NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&buf)
        .unwrap_or_else(|e| panic!("a decoded message does not decode once re-encoded: {e}\n{msg:?}"));
    match back.payload {
        NetlinkPayload::InnerMessage(genl) => genl.payload,
        other => panic!("re-encoded {msg:?} came back as {other:?}"),
    }
}

fn check_message(msg: &IpvsMessage) {
    let again = round_trip(msg);
    assert_eq!(&again, msg, "the codec does not round-trip");

    if let Ok(svc) = msg.to_service() {
        let reply = IpvsMessage::new(IpvsCmd::NewService, vec![CmdAttr::Service(service::reply_attrs(&svc))]);
        assert_eq!(round_trip(&reply).to_service().ok().as_ref(), Some(&svc), "service model round trip");
    }
    for family in [Family::V4, Family::V6] {
        if let Ok(d) = msg.to_destination(family) {
            let reply = IpvsMessage::new(IpvsCmd::NewDest, vec![CmdAttr::Dest(dest::reply_attrs(&d))]);
            assert_eq!(
                round_trip(&reply).to_destination(family).ok().as_ref(),
                Some(&d),
                "destination model round trip"
            );
        }
    }
    if let Ok(d) = msg.to_daemon() {
        let reply = IpvsMessage::new(IpvsCmd::NewDaemon, vec![CmdAttr::Daemon(daemon::request_attrs(&d))]);
        assert_eq!(round_trip(&reply).to_daemon().ok().as_ref(), Some(&d), "daemon model round trip");
    }
    if let Ok(t) = msg.to_timeouts() {
        assert_eq!(
            round_trip(&IpvsMessage::set_config(&t)).to_timeouts().ok().as_ref(),
            Some(&t),
            "timeouts round trip"
        );
    }
    if let Ok(info) = msg.to_info() {
        assert_eq!(round_trip(&IpvsMessage::info_reply(&info)).to_info().ok().as_ref(), Some(&info), "info round trip");
    }
}

fuzz_target!(|data: &[u8]| {
    let parts = split(data);
    let (services, dests) = parts.split_first().map_or((&[][..], &[][..]), |(first, rest)| (*first, rest));
    let replayed = runtime()
        .block_on(ipvs_reconciler::ipvs::replay_read(services, |i| dests.get(i).map_or_else(Vec::new, |d| d.to_vec())));
    for msg in &replayed.messages {
        check_message(msg);
    }
    if let Ok(table) = &replayed.outcome {
        for (key, entry) in &table.services {
            assert_eq!(&entry.service.key, key, "a service under another key");
            for (dk, d) in &entry.dests {
                assert_eq!(&d.key, dk, "a destination under another key");
            }
        }
    }
});
