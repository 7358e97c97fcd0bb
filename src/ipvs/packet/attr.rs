//! The top-level attributes of an IPVS message: `IPVS_CMD_ATTR_*` for every command but `SET_INFO`, whose
//! reply carries `IPVS_INFO_ATTR_*` under the same numbers.

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, Parseable};

use super::daemon::DaemonAttr;
use super::dest::DestAttr;
use super::service::ServiceAttr;
use super::value::{nested, u32_of, unknown};

const SERVICE: u16 = 1;
const DEST: u16 = 2;
const DAEMON: u16 = 3;
const TIMEOUT_TCP: u16 = 4;
const TIMEOUT_TCP_FIN: u16 = 5;
const TIMEOUT_UDP: u16 = 6;

const INFO_VERSION: u16 = 1;
const INFO_CONN_TAB_SIZE: u16 = 2;

/// A command-level attribute (`IPVS_CMD_ATTR_*`).
///
/// Nests are emitted without `NLA_F_NESTED`, as the kernel and ipvsadm do; the kernel accepts both.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CmdAttr {
    /// `IPVS_CMD_ATTR_SERVICE`
    Service(Vec<ServiceAttr>),
    /// `IPVS_CMD_ATTR_DEST`
    Dest(Vec<DestAttr>),
    /// `IPVS_CMD_ATTR_DAEMON`
    Daemon(Vec<DaemonAttr>),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP`, seconds.
    TimeoutTcp(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_TCP_FIN`, seconds.
    TimeoutTcpFin(u32),
    /// `IPVS_CMD_ATTR_TIMEOUT_UDP`, seconds.
    TimeoutUdp(u32),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for CmdAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Service(attrs) => attrs.as_slice().buffer_len(),
            Self::Dest(attrs) => attrs.as_slice().buffer_len(),
            Self::Daemon(attrs) => attrs.as_slice().buffer_len(),
            Self::TimeoutTcp(_) | Self::TimeoutTcpFin(_) | Self::TimeoutUdp(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Service(_) => SERVICE,
            Self::Dest(_) => DEST,
            Self::Daemon(_) => DAEMON,
            Self::TimeoutTcp(_) => TIMEOUT_TCP,
            Self::TimeoutTcpFin(_) => TIMEOUT_TCP_FIN,
            Self::TimeoutUdp(_) => TIMEOUT_UDP,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Service(attrs) => attrs.as_slice().emit(buffer),
            Self::Dest(attrs) => attrs.as_slice().emit(buffer),
            Self::Daemon(attrs) => attrs.as_slice().emit(buffer),
            Self::TimeoutTcp(v) | Self::TimeoutTcpFin(v) | Self::TimeoutUdp(v) => {
                buffer.copy_from_slice(&v.to_ne_bytes())
            }
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for CmdAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            SERVICE => Self::Service(nested(v, "IPVS_CMD_ATTR_SERVICE")?),
            DEST => Self::Dest(nested(v, "IPVS_CMD_ATTR_DEST")?),
            DAEMON => Self::Daemon(nested(v, "IPVS_CMD_ATTR_DAEMON")?),
            TIMEOUT_TCP => Self::TimeoutTcp(u32_of(v, "IPVS_CMD_ATTR_TIMEOUT_TCP")?),
            TIMEOUT_TCP_FIN => Self::TimeoutTcpFin(u32_of(v, "IPVS_CMD_ATTR_TIMEOUT_TCP_FIN")?),
            TIMEOUT_UDP => Self::TimeoutUdp(u32_of(v, "IPVS_CMD_ATTR_TIMEOUT_UDP")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}

/// An attribute of the `SET_INFO` reply (`IPVS_INFO_ATTR_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InfoAttr {
    /// `IPVS_INFO_ATTR_VERSION`, e.g. 0x010201.
    Version(u32),
    /// `IPVS_INFO_ATTR_CONN_TAB_SIZE`
    ConnTableSize(u32),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for InfoAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Version(_) | Self::ConnTableSize(_) => 4,
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Version(_) => INFO_VERSION,
            Self::ConnTableSize(_) => INFO_CONN_TAB_SIZE,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Version(v) | Self::ConnTableSize(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for InfoAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            INFO_VERSION => Self::Version(u32_of(v, "IPVS_INFO_ATTR_VERSION")?),
            INFO_CONN_TAB_SIZE => Self::ConnTableSize(u32_of(v, "IPVS_INFO_ATTR_CONN_TAB_SIZE")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}
