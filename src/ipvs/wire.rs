//! What travels on an IPVS socket, and the codec that frames it (with an optional capture of raw bytes).

use std::fmt::Debug;
use std::io;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use netlink_packet_core::{
    DecodeError, NetlinkBuffer, NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkSerializable, NlasIterator,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::constants::GENL_ID_CTRL;
use netlink_packet_generic::ctrl::GenlCtrl;
use netlink_proto::NetlinkMessageCodec;

use super::packet::IpvsMessage;

/// Environment variable naming a directory where every netlink message sent and received is written, one file
/// each, to make test fixtures from a real kernel.
pub const CAPTURE_DIR_ENV: &str = "IPVS_RECONCILER_CAPTURE_DIR";

/// `CTRL_ATTR_FAMILY_ID`
const CTRL_ATTR_FAMILY_ID: u16 = 1;

/// A message on an IPVS socket.
///
/// Decoding never fails: a reply that does not parse becomes `Malformed`, so that the request waiting for it
/// learns why, instead of netlink-proto dropping it and the request waiting forever (or, for a dump, silently
/// missing an entry).
#[derive(Debug)]
pub(crate) enum Wire {
    /// An IPVS message, either way.
    Ipvs(GenlMessage<IpvsMessage>),
    /// A request to the generic-netlink controller (the family lookup).
    CtrlRequest(GenlMessage<GenlCtrl>),
    /// The controller's answer, reduced to what is used. Parsed leniently: the controller's attribute set grows
    /// with kernel versions.
    CtrlReply {
        /// `CTRL_ATTR_FAMILY_ID`, if present.
        family_id: Option<u16>,
    },
    /// A received message that did not decode.
    Malformed(DecodeError),
}

impl NetlinkSerializable for Wire {
    fn message_type(&self) -> u16 {
        match self {
            Wire::Ipvs(m) => m.message_type(),
            Wire::CtrlRequest(m) => m.message_type(),
            Wire::CtrlReply { .. } | Wire::Malformed(_) => GENL_ID_CTRL,
        }
    }

    fn buffer_len(&self) -> usize {
        match self {
            Wire::Ipvs(m) => NetlinkSerializable::buffer_len(m),
            Wire::CtrlRequest(m) => NetlinkSerializable::buffer_len(m),
            // Received-only variants are never sent.
            Wire::CtrlReply { .. } | Wire::Malformed(_) => 0,
        }
    }

    fn serialize(&self, buffer: &mut [u8]) {
        match self {
            Wire::Ipvs(m) => m.serialize(buffer),
            Wire::CtrlRequest(m) => m.serialize(buffer),
            Wire::CtrlReply { .. } | Wire::Malformed(_) => {}
        }
    }
}

impl NetlinkDeserializable for Wire {
    type Error = DecodeError;

    fn deserialize(header: &NetlinkHeader, payload: &[u8]) -> Result<Self, Self::Error> {
        if header.message_type == GENL_ID_CTRL {
            // genlmsghdr is 4 bytes; attributes follow.
            let Some(attrs) = payload.get(4..) else {
                return Ok(Wire::Malformed(DecodeError::from("controller message shorter than its header")));
            };
            let family_id = NlasIterator::new(attrs)
                .filter_map(Result::ok)
                .find(|nla| nla.kind() == CTRL_ATTR_FAMILY_ID)
                .and_then(|nla| <[u8; 2]>::try_from(nla.value()).ok())
                .map(u16::from_ne_bytes);
            return Ok(Wire::CtrlReply { family_id });
        }
        Ok(match GenlMessage::<IpvsMessage>::deserialize(header, payload) {
            Ok(m) => Wire::Ipvs(m),
            Err(e) => Wire::Malformed(e),
        })
    }
}

/// Where captures go, read once.
fn capture_dir() -> Option<&'static PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| std::env::var_os(CAPTURE_DIR_ENV).map(PathBuf::from)).as_ref()
}

/// Writes one message to the capture directory, if capturing. Named `PID-N-DIRECTION-tTYPE-sSEQ.bin`, with
/// `N` counting every message of the process so that a listing sorts in wire order.
fn capture(direction: &str, bytes: &[u8]) {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let Some(dir) = capture_dir() else { return };
    let Ok(buf) = NetlinkBuffer::new_checked(bytes) else { return };
    let n = COUNT.fetch_add(1, Ordering::Relaxed);
    let name =
        format!("{}-{n:06}-{direction}-t{}-s{}.bin", std::process::id(), buf.message_type(), buf.sequence_number());
    if let Err(e) = std::fs::write(dir.join(&name), bytes) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot write netlink capture");
    }
}

/// netlink-proto's framing, plus the capture hook.
pub(crate) struct CaptureCodec;

impl NetlinkMessageCodec for CaptureCodec {
    fn decode<T>(src: &mut BytesMut) -> io::Result<Option<NetlinkMessage<T>>>
    where
        T: NetlinkDeserializable + Debug,
    {
        loop {
            if src.is_empty() {
                return Ok(None);
            }
            let len = match NetlinkBuffer::new_checked(src.as_ref()) {
                Ok(buf) => buf.length() as usize,
                Err(e) => {
                    tracing::error!(error = %e, "undecodable netlink datagram dropped");
                    src.clear();
                    return Ok(None);
                }
            };
            let bytes = src.split_to(len);
            capture("recv", &bytes);
            match NetlinkMessage::<T>::deserialize(&bytes) {
                Ok(msg) => return Ok(Some(msg)),
                // Only the netlink header or an NLMSG_ERROR/DONE shorter than its code gets here (`Wire` itself
                // never fails); the waiting request then ends with a timeout naming it.
                Err(e) => tracing::error!(error = %e, "undecodable netlink message dropped"),
            }
        }
    }

    fn encode<T>(msg: NetlinkMessage<T>, buf: &mut BytesMut) -> io::Result<()>
    where
        T: NetlinkSerializable + Debug,
    {
        let start = buf.len();
        let len = msg.buffer_len();
        buf.resize(start + len, 0);
        msg.serialize(&mut buf[start..]);
        if capture_dir().is_some() {
            capture("sent", &buf[start..]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{NLM_F_MULTIPART, NetlinkPayload};

    use super::*;
    use crate::ipvs::packet::{CmdAttr, IpvsCmd};
    use crate::model::{Family, Service, ServiceConfig, ServiceKey};

    fn framed(msg: IpvsMessage, seq: u32) -> Vec<u8> {
        let mut genl = GenlMessage::from_payload(msg);
        genl.set_resolved_family_id(0x23);
        let mut nl = NetlinkMessage::new(
            NetlinkHeader::default(),
            netlink_packet_core::NetlinkPayload::InnerMessage(Wire::Ipvs(genl)),
        );
        nl.header.sequence_number = seq;
        nl.header.flags = NLM_F_MULTIPART;
        nl.finalize();
        let mut buf = BytesMut::new();
        CaptureCodec::encode(nl, &mut buf).unwrap();
        buf.to_vec()
    }

    #[test]
    fn a_reply_that_does_not_parse_is_delivered_as_malformed_with_its_sequence_number() {
        let svc = Service::new(ServiceKey::tcp("192.0.2.1".parse().unwrap(), 80), ServiceConfig::new(Family::V4, "rr"));
        let good = framed(
            IpvsMessage::new(
                IpvsCmd::NewService,
                vec![CmdAttr::Service(crate::ipvs::packet::service::reply_attrs(&svc))],
            ),
            7,
        );
        let mut bad = framed(IpvsMessage::new(IpvsCmd::NewService, vec![CmdAttr::TimeoutTcp(5)]), 8);
        // Make the u32 timeout attribute claim 3 bytes of value: too short for a u32.
        bad[20] = 7;
        let mut src = BytesMut::from(&[good.clone(), bad].concat()[..]);
        let first = CaptureCodec::decode::<Wire>(&mut src).unwrap().unwrap();
        assert!(matches!(first.payload, NetlinkPayload::InnerMessage(Wire::Ipvs(_))));
        let second = CaptureCodec::decode::<Wire>(&mut src).unwrap().unwrap();
        assert_eq!(second.header.sequence_number, 8);
        let NetlinkPayload::InnerMessage(Wire::Malformed(e)) = second.payload else { panic!("{second:?}") };
        assert!(e.to_string().contains("IPVS_CMD_ATTR_TIMEOUT_TCP"), "{e}");
        assert!(CaptureCodec::decode::<Wire>(&mut src).unwrap().is_none());
    }

    #[test]
    fn controller_replies_yield_the_family_id_whatever_else_they_hold() {
        // genlmsghdr, an unknown attribute 99, then CTRL_ATTR_FAMILY_ID = 0x2a.
        let payload = [3u8, 2, 0, 0, 8, 0, 99, 0, 1, 2, 3, 4, 6, 0, 1, 0, 0x2a, 0, 0, 0];
        let mut header = NetlinkHeader::default();
        header.message_type = GENL_ID_CTRL;
        let Wire::CtrlReply { family_id } = Wire::deserialize(&header, &payload).unwrap() else { panic!() };
        assert_eq!(family_id, Some(0x2a));
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn the_kernels_family_lookup_reply_yields_the_ipvs_family_id() {
        // Captured from the kernel (tests/fixtures/ipvs/README.md): CTRL_CMD_NEWFAMILY for "IPVS", id 0x20.
        let bytes = include_bytes!("../../tests/fixtures/ipvs/ctrl_getfamily_reply.bin");
        let mut src = BytesMut::from(&bytes[..]);
        let msg = CaptureCodec::decode::<Wire>(&mut src).unwrap().unwrap();
        let NetlinkPayload::InnerMessage(Wire::CtrlReply { family_id }) = msg.payload else { panic!("{msg:?}") };
        assert_eq!(family_id, Some(0x20));
    }
}
