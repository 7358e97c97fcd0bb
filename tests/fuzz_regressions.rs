//! Inputs the fuzz targets (`fuzz/`, run by `tests/fuzz`) found failing, kept under `tests/fixtures/fuzz/TARGET/`
//! and checked here with the target's oracle, so that the normal suite keeps them fixed. See
//! docs/testing.md#fuzzing.

use std::path::PathBuf;

use ipvs_reconciler::ipvs::packet::IpvsMessage;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_generic::GenlMessage;

/// The inputs kept for `target`, with their names.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| (p.display().to_string(), std::fs::read(&p).unwrap())).collect()
}

/// The dumps of a `netlink_decoder` input (its separator, see fuzz/fuzz_targets/netlink_decoder.rs).
fn dumps(data: &[u8]) -> Vec<Vec<u8>> {
    const SEPARATOR: &[u8] = b"\n--dump--\n";
    let mut parts = Vec::new();
    let mut rest = data;
    while let Some(at) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        parts.push(rest[..at].to_vec());
        rest = &rest[at + SEPARATOR.len()..];
    }
    parts.push(rest.to_vec());
    parts
}

fn round_trip(msg: &IpvsMessage) -> IpvsMessage {
    let mut genl = GenlMessage::from_payload(msg.clone());
    genl.set_resolved_family_id(0x20);
    let mut nl = NetlinkMessage::from(genl);
    nl.finalize();
    let mut buf = vec![0; nl.buffer_len()];
    nl.serialize(&mut buf);
    match NetlinkMessage::<GenlMessage<IpvsMessage>>::deserialize(&buf).unwrap().payload {
        NetlinkPayload::InnerMessage(genl) => genl.payload,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn netlink_decoder_findings_round_trip() {
    for (name, data) in inputs("netlink_decoder") {
        let parts = dumps(&data);
        let replayed =
            ipvs_reconciler::ipvs::replay_read(&parts[0], |i| parts.get(i + 1).cloned().unwrap_or_default()).await;
        assert!(!replayed.messages.is_empty(), "{name}: nothing decoded");
        for msg in &replayed.messages {
            assert_eq!(&round_trip(msg), msg, "{name}");
        }
    }
}
