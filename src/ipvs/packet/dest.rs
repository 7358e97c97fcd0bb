//! `IPVS_DEST_ATTR_*`: the destination nest, and its conversion from and to [`Destination`].

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, Parseable};

use super::stats::{Stats64Attr, StatsAttr, decode_stats, decode_stats64, encode_stats, encode_stats64};
use super::value::{InetAddr, be16_of, nested, required, u8_of, u16_of, u32_of, unknown};
use crate::model::{
    ConnCounts, DestConfig, DestKey, Destination, Family, ForwardMethod, TunnelChecksum, TunnelConfig, TunnelType,
};

const ADDR: u16 = 1;
const PORT: u16 = 2;
const FWD_METHOD: u16 = 3;
const WEIGHT: u16 = 4;
const U_THRESH: u16 = 5;
const L_THRESH: u16 = 6;
const ACTIVE_CONNS: u16 = 7;
const INACT_CONNS: u16 = 8;
const PERSIST_CONNS: u16 = 9;
const STATS: u16 = 10;
const ADDR_FAMILY: u16 = 11;
const STATS64: u16 = 12;
const TUN_TYPE: u16 = 13;
const TUN_PORT: u16 = 14;
const TUN_FLAGS: u16 = 15;

const NEST: &str = "destination (IPVS_CMD_ATTR_DEST)";

/// An attribute of the destination nest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DestAttr {
    /// `IPVS_DEST_ATTR_ADDR`
    Address(InetAddr),
    /// `IPVS_DEST_ATTR_PORT` (network order on the wire; host value here).
    Port(u16),
    /// `IPVS_DEST_ATTR_FWD_METHOD`: `IP_VS_CONN_F_*` forwarding bits.
    ForwardMethod(u32),
    /// `IPVS_DEST_ATTR_WEIGHT`
    Weight(u32),
    /// `IPVS_DEST_ATTR_U_THRESH`
    UpperThreshold(u32),
    /// `IPVS_DEST_ATTR_L_THRESH`
    LowerThreshold(u32),
    /// `IPVS_DEST_ATTR_ACTIVE_CONNS` (output only).
    ActiveConns(u32),
    /// `IPVS_DEST_ATTR_INACT_CONNS` (output only).
    InactiveConns(u32),
    /// `IPVS_DEST_ATTR_PERSIST_CONNS` (output only).
    PersistentConns(u32),
    /// `IPVS_DEST_ATTR_STATS` (output only).
    Stats(Vec<StatsAttr>),
    /// `IPVS_DEST_ATTR_ADDR_FAMILY` (3.18+).
    AddressFamily(u16),
    /// `IPVS_DEST_ATTR_STATS64` (output only, 4.1+).
    Stats64(Vec<Stats64Attr>),
    /// `IPVS_DEST_ATTR_TUN_TYPE` (5.2+).
    TunnelType(u8),
    /// `IPVS_DEST_ATTR_TUN_PORT` (5.2+, network order on the wire; host value here).
    TunnelPort(u16),
    /// `IPVS_DEST_ATTR_TUN_FLAGS` (5.3+).
    TunnelFlags(u16),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for DestAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::Address(_) => InetAddr::LEN,
            Self::Port(_) | Self::AddressFamily(_) | Self::TunnelPort(_) | Self::TunnelFlags(_) => 2,
            Self::TunnelType(_) => 1,
            Self::ForwardMethod(_)
            | Self::Weight(_)
            | Self::UpperThreshold(_)
            | Self::LowerThreshold(_)
            | Self::ActiveConns(_)
            | Self::InactiveConns(_)
            | Self::PersistentConns(_) => 4,
            Self::Stats(attrs) => attrs.as_slice().buffer_len(),
            Self::Stats64(attrs) => attrs.as_slice().buffer_len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::Address(_) => ADDR,
            Self::Port(_) => PORT,
            Self::ForwardMethod(_) => FWD_METHOD,
            Self::Weight(_) => WEIGHT,
            Self::UpperThreshold(_) => U_THRESH,
            Self::LowerThreshold(_) => L_THRESH,
            Self::ActiveConns(_) => ACTIVE_CONNS,
            Self::InactiveConns(_) => INACT_CONNS,
            Self::PersistentConns(_) => PERSIST_CONNS,
            Self::Stats(_) => STATS,
            Self::AddressFamily(_) => ADDR_FAMILY,
            Self::Stats64(_) => STATS64,
            Self::TunnelType(_) => TUN_TYPE,
            Self::TunnelPort(_) => TUN_PORT,
            Self::TunnelFlags(_) => TUN_FLAGS,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::Address(a) => buffer.copy_from_slice(&a.0),
            Self::Port(v) | Self::TunnelPort(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            Self::AddressFamily(v) | Self::TunnelFlags(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::TunnelType(v) => buffer.copy_from_slice(&[*v]),
            Self::ForwardMethod(v)
            | Self::Weight(v)
            | Self::UpperThreshold(v)
            | Self::LowerThreshold(v)
            | Self::ActiveConns(v)
            | Self::InactiveConns(v)
            | Self::PersistentConns(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Stats(attrs) => attrs.as_slice().emit(buffer),
            Self::Stats64(attrs) => attrs.as_slice().emit(buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for DestAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            ADDR => Self::Address(InetAddr::parse(v, "IPVS_DEST_ATTR_ADDR")?),
            PORT => Self::Port(be16_of(v, "IPVS_DEST_ATTR_PORT")?),
            FWD_METHOD => Self::ForwardMethod(u32_of(v, "IPVS_DEST_ATTR_FWD_METHOD")?),
            WEIGHT => Self::Weight(u32_of(v, "IPVS_DEST_ATTR_WEIGHT")?),
            U_THRESH => Self::UpperThreshold(u32_of(v, "IPVS_DEST_ATTR_U_THRESH")?),
            L_THRESH => Self::LowerThreshold(u32_of(v, "IPVS_DEST_ATTR_L_THRESH")?),
            ACTIVE_CONNS => Self::ActiveConns(u32_of(v, "IPVS_DEST_ATTR_ACTIVE_CONNS")?),
            INACT_CONNS => Self::InactiveConns(u32_of(v, "IPVS_DEST_ATTR_INACT_CONNS")?),
            PERSIST_CONNS => Self::PersistentConns(u32_of(v, "IPVS_DEST_ATTR_PERSIST_CONNS")?),
            STATS => Self::Stats(nested(v, "IPVS_DEST_ATTR_STATS")?),
            ADDR_FAMILY => Self::AddressFamily(u16_of(v, "IPVS_DEST_ATTR_ADDR_FAMILY")?),
            STATS64 => Self::Stats64(nested(v, "IPVS_DEST_ATTR_STATS64")?),
            TUN_TYPE => Self::TunnelType(u8_of(v, "IPVS_DEST_ATTR_TUN_TYPE")?),
            TUN_PORT => Self::TunnelPort(be16_of(v, "IPVS_DEST_ATTR_TUN_PORT")?),
            TUN_FLAGS => Self::TunnelFlags(u16_of(v, "IPVS_DEST_ATTR_TUN_FLAGS")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}

/// The attributes that name a destination within its service: address, port and family.
///
/// The family is always sent: without it the kernel assumes the service's, which is wrong for the mixed-family
/// tunnelled destinations.
pub fn key_attrs(key: &DestKey) -> Vec<DestAttr> {
    vec![
        DestAttr::Address(InetAddr::from_ip(key.addr)),
        DestAttr::Port(key.port),
        DestAttr::AddressFamily(key.family().to_af()),
    ]
}

/// Everything `NEW_DEST` and `SET_DEST` need: the key, forwarding, weight, thresholds, and the tunnel options
/// always (`SET_DEST` resets omitted tunnel options to zero).
pub fn request_attrs(key: &DestKey, config: &DestConfig) -> Vec<DestAttr> {
    let mut attrs = key_attrs(key);
    attrs.extend([
        DestAttr::ForwardMethod(config.forward.to_raw()),
        DestAttr::Weight(config.weight),
        DestAttr::UpperThreshold(config.upper_threshold),
        DestAttr::LowerThreshold(config.lower_threshold),
        DestAttr::TunnelType(config.tunnel.kind.to_raw()),
        DestAttr::TunnelPort(config.tunnel.port),
        DestAttr::TunnelFlags(config.tunnel.checksum.to_raw()),
    ]);
    attrs
}

/// The nest as the kernel replies it for `dest`: request attributes, connection counts, and both counter nests
/// when the destination has counters. Useful to build replies for tests and fakes.
pub fn reply_attrs(dest: &Destination) -> Vec<DestAttr> {
    let mut attrs = request_attrs(&dest.key, &dest.config);
    attrs.extend([
        DestAttr::ActiveConns(dest.conns.active),
        DestAttr::InactiveConns(dest.conns.inactive),
        DestAttr::PersistentConns(dest.conns.persistent),
    ]);
    if let Some(stats) = &dest.stats {
        attrs.push(DestAttr::Stats(encode_stats(stats)));
        attrs.push(DestAttr::Stats64(encode_stats64(stats)));
    }
    attrs
}

/// A destination from a `NEW_DEST` reply nest.
///
/// `service_family` is used when the kernel predates `ADDR_FAMILY` (before 3.18 every destination had its
/// service's family). Tunnel options absent (before 5.2/5.3) read as zero, counters prefer the 64-bit nest.
pub fn decode_destination(attrs: &[DestAttr], service_family: Family) -> Result<Destination, DecodeError> {
    let (mut addr, mut port, mut af, mut fwd, mut weight, mut upper, mut lower) =
        (None, None, None, None, None, None, None);
    let mut conns = ConnCounts::default();
    let mut tunnel = TunnelConfig::default();
    let (mut stats, mut stats64) = (None, None);
    for attr in attrs {
        match attr {
            DestAttr::Address(v) => addr = Some(*v),
            DestAttr::Port(v) => port = Some(*v),
            DestAttr::AddressFamily(v) => af = Some(*v),
            DestAttr::ForwardMethod(v) => fwd = Some(*v),
            DestAttr::Weight(v) => weight = Some(*v),
            DestAttr::UpperThreshold(v) => upper = Some(*v),
            DestAttr::LowerThreshold(v) => lower = Some(*v),
            DestAttr::ActiveConns(v) => conns.active = *v,
            DestAttr::InactiveConns(v) => conns.inactive = *v,
            DestAttr::PersistentConns(v) => conns.persistent = *v,
            DestAttr::TunnelType(v) => tunnel.kind = TunnelType::from_raw(*v),
            DestAttr::TunnelPort(v) => tunnel.port = *v,
            DestAttr::TunnelFlags(v) => tunnel.checksum = TunnelChecksum::from_raw(*v),
            DestAttr::Stats(v) => stats = Some(decode_stats(v)),
            DestAttr::Stats64(v) => stats64 = Some(decode_stats64(v)),
            DestAttr::Other(_) => {}
        }
    }
    let family = match af {
        None => service_family,
        Some(af) => Family::from_af(af)
            .ok_or_else(|| DecodeError::from(format!("IPVS_DEST_ATTR_ADDR_FAMILY: unknown address family {af}")))?,
    };
    let key = DestKey {
        addr: required(addr, NEST, "IPVS_DEST_ATTR_ADDR")?.to_ip(family),
        port: required(port, NEST, "IPVS_DEST_ATTR_PORT")?,
    };
    let config = DestConfig {
        forward: ForwardMethod::from_raw(required(fwd, NEST, "IPVS_DEST_ATTR_FWD_METHOD")?),
        weight: required(weight, NEST, "IPVS_DEST_ATTR_WEIGHT")?,
        upper_threshold: required(upper, NEST, "IPVS_DEST_ATTR_U_THRESH")?,
        lower_threshold: required(lower, NEST, "IPVS_DEST_ATTR_L_THRESH")?,
        tunnel,
    };
    Ok(Destination { key, config, conns, stats: stats64.or(stats).map(Box::new) })
}
