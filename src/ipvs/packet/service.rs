//! `IPVS_SVC_ATTR_*`: the service nest, and its conversion from and to [`Service`].

use std::net::Ipv4Addr;

use netlink_packet_core::{DecodeError, DefaultNla, Emitable, Nla, NlaBuffer, Parseable};

use super::stats::{Stats64Attr, StatsAttr, decode_stats, decode_stats64, encode_stats, encode_stats64};
use super::value::{
    FlagsMask, InetAddr, be16_of, emit_string, nested, required, string_len, string_of, u16_of, u32_of, unknown,
};
use crate::model::{Family, Netmask, Protocol, Service, ServiceConfig, ServiceFlags, ServiceKey};

const AF: u16 = 1;
const PROTOCOL: u16 = 2;
const ADDR: u16 = 3;
const PORT: u16 = 4;
const FWMARK: u16 = 5;
const SCHED_NAME: u16 = 6;
const FLAGS: u16 = 7;
const TIMEOUT: u16 = 8;
const NETMASK: u16 = 9;
const STATS: u16 = 10;
const PE_NAME: u16 = 11;
const STATS64: u16 = 12;

const NEST: &str = "service (IPVS_CMD_ATTR_SERVICE)";

/// An attribute of the service nest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServiceAttr {
    /// `IPVS_SVC_ATTR_AF`: `AF_INET` or `AF_INET6`.
    AddressFamily(u16),
    /// `IPVS_SVC_ATTR_PROTOCOL`: IP protocol number.
    Protocol(u16),
    /// `IPVS_SVC_ATTR_ADDR`
    Address(InetAddr),
    /// `IPVS_SVC_ATTR_PORT` (network order on the wire; host value here).
    Port(u16),
    /// `IPVS_SVC_ATTR_FWMARK`
    Fwmark(u32),
    /// `IPVS_SVC_ATTR_SCHED_NAME`
    SchedulerName(String),
    /// `IPVS_SVC_ATTR_FLAGS`
    Flags(FlagsMask),
    /// `IPVS_SVC_ATTR_TIMEOUT`: persistence timeout in seconds.
    Timeout(u32),
    /// `IPVS_SVC_ATTR_NETMASK`, the raw native-endian `u32`: for IPv4 its bytes are the mask in network order,
    /// for IPv6 it is the prefix length.
    Netmask(u32),
    /// `IPVS_SVC_ATTR_STATS` (output only).
    Stats(Vec<StatsAttr>),
    /// `IPVS_SVC_ATTR_PE_NAME`
    PersistenceEngine(String),
    /// `IPVS_SVC_ATTR_STATS64` (output only).
    Stats64(Vec<Stats64Attr>),
    /// Anything else.
    Other(DefaultNla),
}

impl Nla for ServiceAttr {
    fn value_len(&self) -> usize {
        match self {
            Self::AddressFamily(_) | Self::Protocol(_) | Self::Port(_) => 2,
            Self::Fwmark(_) | Self::Timeout(_) | Self::Netmask(_) => 4,
            Self::Address(_) => InetAddr::LEN,
            Self::Flags(_) => FlagsMask::LEN,
            Self::SchedulerName(s) | Self::PersistenceEngine(s) => string_len(s),
            Self::Stats(attrs) => attrs.as_slice().buffer_len(),
            Self::Stats64(attrs) => attrs.as_slice().buffer_len(),
            Self::Other(nla) => nla.value_len(),
        }
    }

    fn kind(&self) -> u16 {
        match self {
            Self::AddressFamily(_) => AF,
            Self::Protocol(_) => PROTOCOL,
            Self::Address(_) => ADDR,
            Self::Port(_) => PORT,
            Self::Fwmark(_) => FWMARK,
            Self::SchedulerName(_) => SCHED_NAME,
            Self::Flags(_) => FLAGS,
            Self::Timeout(_) => TIMEOUT,
            Self::Netmask(_) => NETMASK,
            Self::Stats(_) => STATS,
            Self::PersistenceEngine(_) => PE_NAME,
            Self::Stats64(_) => STATS64,
            Self::Other(nla) => nla.kind(),
        }
    }

    fn emit_value(&self, buffer: &mut [u8]) {
        match self {
            Self::AddressFamily(v) | Self::Protocol(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Port(v) => buffer.copy_from_slice(&v.to_be_bytes()),
            Self::Fwmark(v) | Self::Timeout(v) | Self::Netmask(v) => buffer.copy_from_slice(&v.to_ne_bytes()),
            Self::Address(a) => buffer.copy_from_slice(&a.0),
            Self::Flags(f) => f.emit(buffer),
            Self::SchedulerName(s) | Self::PersistenceEngine(s) => emit_string(buffer, s),
            Self::Stats(attrs) => attrs.as_slice().emit(buffer),
            Self::Stats64(attrs) => attrs.as_slice().emit(buffer),
            Self::Other(nla) => nla.emit_value(buffer),
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Parseable<NlaBuffer<&'a T>> for ServiceAttr {
    fn parse(buf: &NlaBuffer<&'a T>) -> Result<Self, DecodeError> {
        let v = buf.value();
        Ok(match buf.kind() {
            AF => Self::AddressFamily(u16_of(v, "IPVS_SVC_ATTR_AF")?),
            PROTOCOL => Self::Protocol(u16_of(v, "IPVS_SVC_ATTR_PROTOCOL")?),
            ADDR => Self::Address(InetAddr::parse(v, "IPVS_SVC_ATTR_ADDR")?),
            PORT => Self::Port(be16_of(v, "IPVS_SVC_ATTR_PORT")?),
            FWMARK => Self::Fwmark(u32_of(v, "IPVS_SVC_ATTR_FWMARK")?),
            SCHED_NAME => Self::SchedulerName(string_of(v, "IPVS_SVC_ATTR_SCHED_NAME")?),
            FLAGS => Self::Flags(FlagsMask::parse(v, "IPVS_SVC_ATTR_FLAGS")?),
            TIMEOUT => Self::Timeout(u32_of(v, "IPVS_SVC_ATTR_TIMEOUT")?),
            NETMASK => Self::Netmask(u32_of(v, "IPVS_SVC_ATTR_NETMASK")?),
            STATS => Self::Stats(nested(v, "IPVS_SVC_ATTR_STATS")?),
            PE_NAME => Self::PersistenceEngine(string_of(v, "IPVS_SVC_ATTR_PE_NAME")?),
            STATS64 => Self::Stats64(nested(v, "IPVS_SVC_ATTR_STATS64")?),
            _ => Self::Other(unknown(buf)),
        })
    }
}

/// The attributes that name a service: `AF` and either `FWMARK` or `PROTOCOL` + `ADDR` + `PORT`.
///
/// This is all `DEL_SERVICE`, `GET_SERVICE`, `ZERO` and the destination commands read.
pub fn key_attrs(key: &ServiceKey) -> Vec<ServiceAttr> {
    match *key {
        ServiceKey::Addr { protocol, addr, port } => vec![
            ServiceAttr::AddressFamily(key.family().to_af()),
            ServiceAttr::Protocol(protocol.number()),
            ServiceAttr::Address(InetAddr::from_ip(addr)),
            ServiceAttr::Port(port),
        ],
        ServiceKey::Fwmark { family, mark } => {
            vec![ServiceAttr::AddressFamily(family.to_af()), ServiceAttr::Fwmark(mark)]
        }
    }
}

/// The raw netmask attribute value of `netmask`.
fn netmask_raw(netmask: Netmask) -> u32 {
    match netmask {
        // The kernel keeps the IPv4 mask as a `__be32` and copies the attribute's bytes into it.
        Netmask::V4(mask) => u32::from_ne_bytes(mask.octets()),
        Netmask::V6Prefix(len) => u32::from(len),
    }
}

/// Everything `NEW_SERVICE` and `SET_SERVICE` need: the key, scheduler, flags (mask all ones, so the flags are
/// replaced, not merged), timeout, netmask (always, as ipvsadm: the kernel requires it), and the persistence
/// engine when there is one (omitting it removes the engine).
pub fn request_attrs(service: &Service) -> Vec<ServiceAttr> {
    let config = &service.config;
    let mut attrs = key_attrs(&service.key);
    attrs.extend([
        ServiceAttr::SchedulerName(config.scheduler.clone()),
        ServiceAttr::Flags(FlagsMask { flags: config.flags.0, mask: u32::MAX }),
        ServiceAttr::Timeout(config.timeout),
        ServiceAttr::Netmask(netmask_raw(config.netmask)),
    ]);
    if let Some(pe) = &config.pe_name {
        attrs.push(ServiceAttr::PersistenceEngine(pe.clone()));
    }
    attrs
}

/// The nest as the kernel replies it for `service`: the request attributes plus both counter nests when the
/// service has counters. Useful to build replies for tests and fakes.
pub fn reply_attrs(service: &Service) -> Vec<ServiceAttr> {
    let mut attrs = request_attrs(service);
    if let Some(stats) = &service.stats {
        attrs.push(ServiceAttr::Stats(encode_stats(stats)));
        attrs.push(ServiceAttr::Stats64(encode_stats64(stats)));
    }
    attrs
}

/// Reads the family of a nest.
fn family_of(af: u16, attr: &str) -> Result<Family, DecodeError> {
    Family::from_af(af).ok_or_else(|| DecodeError::from(format!("{attr}: unknown address family {af}")))
}

/// The service key of a nest. Replies for fwmark services carry only `AF` and `FWMARK`.
pub fn decode_key(attrs: &[ServiceAttr]) -> Result<ServiceKey, DecodeError> {
    let (mut af, mut protocol, mut addr, mut port, mut fwmark) = (None, None, None, None, None);
    for attr in attrs {
        match attr {
            ServiceAttr::AddressFamily(v) => af = Some(*v),
            ServiceAttr::Protocol(v) => protocol = Some(*v),
            ServiceAttr::Address(v) => addr = Some(*v),
            ServiceAttr::Port(v) => port = Some(*v),
            ServiceAttr::Fwmark(v) => fwmark = Some(*v),
            _ => {}
        }
    }
    let family = family_of(required(af, NEST, "IPVS_SVC_ATTR_AF")?, "IPVS_SVC_ATTR_AF")?;
    // The kernel decides the same way: a FWMARK attribute makes it a mark service whatever else is present.
    if let Some(mark) = fwmark {
        return Ok(ServiceKey::Fwmark { family, mark });
    }
    let protocol = Protocol::from_number(required(protocol, NEST, "IPVS_SVC_ATTR_PROTOCOL (or FWMARK)")?);
    let addr = required(addr, NEST, "IPVS_SVC_ATTR_ADDR")?.to_ip(family);
    let port = required(port, NEST, "IPVS_SVC_ATTR_PORT")?;
    Ok(ServiceKey::Addr { protocol, addr, port })
}

/// A service from a `NEW_SERVICE` reply nest: key, configuration (flags without `HASHED`), and counters
/// (64-bit ones preferred). Fails, naming the attribute, when one the kernel always sends is missing.
pub fn decode_service(attrs: &[ServiceAttr]) -> Result<Service, DecodeError> {
    let key = decode_key(attrs)?;
    let (mut sched, mut flags, mut timeout, mut netmask, mut pe) = (None, None, None, None, None);
    let (mut stats, mut stats64) = (None, None);
    for attr in attrs {
        match attr {
            ServiceAttr::SchedulerName(v) => sched = Some(v.clone()),
            ServiceAttr::Flags(v) => flags = Some(*v),
            ServiceAttr::Timeout(v) => timeout = Some(*v),
            ServiceAttr::Netmask(v) => netmask = Some(*v),
            ServiceAttr::PersistenceEngine(v) => pe = Some(v.clone()),
            ServiceAttr::Stats(v) => stats = Some(decode_stats(v)),
            ServiceAttr::Stats64(v) => stats64 = Some(decode_stats64(v)),
            _ => {}
        }
    }
    let raw_mask = required(netmask, NEST, "IPVS_SVC_ATTR_NETMASK")?;
    let netmask = match key.family() {
        Family::V4 => Netmask::V4(Ipv4Addr::from(raw_mask.to_ne_bytes())),
        Family::V6 => Netmask::V6Prefix(u8::try_from(raw_mask).map_err(|_| {
            DecodeError::from(format!("IPVS_SVC_ATTR_NETMASK: IPv6 prefix length {raw_mask} out of range"))
        })?),
    };
    let config = ServiceConfig {
        scheduler: required(sched, NEST, "IPVS_SVC_ATTR_SCHED_NAME")?,
        flags: ServiceFlags::from_kernel(required(flags, NEST, "IPVS_SVC_ATTR_FLAGS")?.flags),
        timeout: required(timeout, NEST, "IPVS_SVC_ATTR_TIMEOUT")?,
        netmask,
        pe_name: pe,
    };
    Ok(Service { key, config, stats: stats64.or(stats).map(Box::new) })
}
