//! `IPVS_DAEMON_ATTR_*`: the connection-sync daemon nest, and its conversion from and to [`SyncDaemon`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::{DecodeError, DefaultNla, Nla, NlaBuffer, Parseable};

use super::value::{emit_string, ipv4_of, ipv6_of, required, string_len, string_of, u8_of, u16_of, u32_of, unknown};
use crate::model::{DaemonState, SyncDaemon};

const STATE: u16 = 1;
const MCAST_IFN: u16 = 2;
const SYNC_ID: u16 = 3;
const SYNC_MAXLEN: u16 = 4;
const MCAST_GROUP: u16 = 5;
const MCAST_GROUP6: u16 = 6;
const MCAST_PORT: u16 = 7;
const MCAST_TTL: u16 = 8;

const NEST: &str = "daemon (IPVS_CMD_ATTR_DAEMON)";

/// An attribute of the sync-daemon nest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DaemonAttr {
    /// `IPVS_DAEMON_ATTR_STATE`: 1 master, 2 backup.
    State(u32),
    /// `IPVS_DAEMON_ATTR_MCAST_IFN`: multicast interface name.
    Interface(String),
    /// `IPVS_DAEMON_ATTR_SYNC_ID`
    SyncId(u32),
    /// `IPVS_DAEMON_ATTR_SYNC_MAXLEN` (4.3+).
    MaxLen(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP`: an IPv4 group, its 4 bytes in network order (4.3+).
    Group(Ipv4Addr),
    /// `IPVS_DAEMON_ATTR_MCAST_GROUP6` (4.3+).
    Group6(Ipv6Addr),
    /// `IPVS_DAEMON_ATTR_MCAST_PORT`: host byte order, unlike the service and destination ports (4.3+).
    Port(u16),
    /// `IPVS_DAEMON_ATTR_MCAST_TTL` (4.3+).
    Ttl(u8),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for DaemonAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::State(_) | Self::SyncId(_) | Self::Group(_) => 4,
            Self::Interface(s) => string_len(s),
            Self::MaxLen(_) | Self::Port(_) => 2,
            Self::Group6(_) => 16,
            Self::Ttl(_) => 1,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::State(_) => STATE,
            Self::Interface(_) => MCAST_IFN,
            Self::SyncId(_) => SYNC_ID,
            Self::MaxLen(_) => SYNC_MAXLEN,
            Self::Group(_) => MCAST_GROUP,
            Self::Group6(_) => MCAST_GROUP6,
            Self::Port(_) => MCAST_PORT,
            Self::Ttl(_) => MCAST_TTL,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::State(v) | Self::SyncId(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Interface(s) => emit_string(buffer, s),
            Self::MaxLen(v) | Self::Port(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Group(a) => buffer.copy_from_slice(&a.octets()),
            Self::Group6(a) => buffer.copy_from_slice(&a.octets()),
            Self::Ttl(v) => buffer.copy_from_slice(&[*v]),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DaemonAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            STATE => Self::State(u32_of(v, "IPVS_DAEMON_ATTR_STATE")?),
            MCAST_IFN => Self::Interface(string_of(v, "IPVS_DAEMON_ATTR_MCAST_IFN")?),
            SYNC_ID => Self::SyncId(u32_of(v, "IPVS_DAEMON_ATTR_SYNC_ID")?),
            SYNC_MAXLEN => Self::MaxLen(u16_of(v, "IPVS_DAEMON_ATTR_SYNC_MAXLEN")?),
            MCAST_GROUP => Self::Group(ipv4_of(v, "IPVS_DAEMON_ATTR_MCAST_GROUP")?),
            MCAST_GROUP6 => Self::Group6(ipv6_of(v, "IPVS_DAEMON_ATTR_MCAST_GROUP6")?),
            MCAST_PORT => Self::Port(u16_of(v, "IPVS_DAEMON_ATTR_MCAST_PORT")?),
            MCAST_TTL => Self::Ttl(u8_of(v, "IPVS_DAEMON_ATTR_MCAST_TTL")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}

/// Everything `NEW_DAEMON` takes: state, interface and sync id, and the optional settings that are set.
pub fn request_attrs(daemon: &SyncDaemon) -> Vec<DaemonAttr> {
    let mut attrs = vec![
        DaemonAttr::State(daemon.state.to_raw()),
        DaemonAttr::Interface(daemon.interface.clone()),
        DaemonAttr::SyncId(daemon.sync_id),
    ];
    if let Some(len) = daemon.max_len {
        attrs.push(DaemonAttr::MaxLen(len));
    }
    match daemon.group {
        Some(IpAddr::V4(g)) => attrs.push(DaemonAttr::Group(g)),
        Some(IpAddr::V6(g)) => attrs.push(DaemonAttr::Group6(g)),
        None => {}
    }
    if let Some(port) = daemon.port {
        attrs.push(DaemonAttr::Port(port));
    }
    if let Some(ttl) = daemon.ttl {
        attrs.push(DaemonAttr::Ttl(ttl));
    }
    attrs
}

/// What `DEL_DAEMON` takes: the state only.
pub fn state_attrs(state: DaemonState) -> Vec<DaemonAttr> {
    vec![DaemonAttr::State(state.to_raw())]
}

/// A daemon from a `NEW_DAEMON` reply nest. Settings the kernel did not report (before 4.3) are `None`.
pub fn decode_daemon(attrs: &[DaemonAttr]) -> Result<SyncDaemon, DecodeError> {
    let (mut state, mut interface, mut sync_id) = (None, None, None);
    let (mut max_len, mut group, mut port, mut ttl) = (None, None, None, None);
    for attr in attrs {
        match attr {
            DaemonAttr::State(v) => state = Some(*v),
            DaemonAttr::Interface(v) => interface = Some(v.clone()),
            DaemonAttr::SyncId(v) => sync_id = Some(*v),
            DaemonAttr::MaxLen(v) => max_len = Some(*v),
            DaemonAttr::Group(v) => group = Some(IpAddr::V4(*v)),
            DaemonAttr::Group6(v) => group = Some(IpAddr::V6(*v)),
            DaemonAttr::Port(v) => port = Some(*v),
            DaemonAttr::Ttl(v) => ttl = Some(*v),
            DaemonAttr::Other(_) => {}
        }
    }
    let raw_state = required(state, NEST, "IPVS_DAEMON_ATTR_STATE")?;
    let state = DaemonState::from_raw(raw_state)
        .ok_or_else(|| DecodeError::from(format!("IPVS_DAEMON_ATTR_STATE: unknown daemon state {raw_state}")))?;
    Ok(SyncDaemon {
        state,
        interface: required(interface, NEST, "IPVS_DAEMON_ATTR_MCAST_IFN")?,
        sync_id: required(sync_id, NEST, "IPVS_DAEMON_ATTR_SYNC_ID")?,
        max_len,
        group,
        port,
        ttl,
    })
}
