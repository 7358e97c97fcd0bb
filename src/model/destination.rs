//! A real server (destination) of a virtual service.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::key::Family;
use super::stats::Stats;

/// How packets reach a destination (`IP_VS_CONN_F_*` forwarding bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ForwardMethod {
    /// NAT (`-m`), 0.
    Masquerade,
    /// Local node (`Local`), 1.
    Local,
    /// IP-in-IP / GUE / GRE tunnelling (`-i`), 2.
    Tunnel,
    /// Direct routing (`-g`), 3.
    DirectRoute,
    /// Bypass, 4 (kernel-internal, shown for completeness).
    Bypass,
    /// Any other value of the 3 forwarding bits (the kernel does not validate them).
    Other(u32),
}

impl ForwardMethod {
    /// The kernel's forwarding value.
    pub fn to_raw(self) -> u32 {
        match self {
            ForwardMethod::Masquerade => 0,
            ForwardMethod::Local => 1,
            ForwardMethod::Tunnel => 2,
            ForwardMethod::DirectRoute => 3,
            ForwardMethod::Bypass => 4,
            ForwardMethod::Other(n) => n,
        }
    }

    /// From the kernel's value (only the low 3 bits count, as in the kernel).
    pub fn from_raw(raw: u32) -> Self {
        match raw & 0x7 {
            0 => ForwardMethod::Masquerade,
            1 => ForwardMethod::Local,
            2 => ForwardMethod::Tunnel,
            3 => ForwardMethod::DirectRoute,
            4 => ForwardMethod::Bypass,
            n => ForwardMethod::Other(n),
        }
    }
}

/// Tunnel encapsulation for `ForwardMethod::Tunnel` (`IP_VS_CONN_F_TUNNEL_TYPE_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TunnelType {
    /// IP-in-IP, 0 (the default).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation, 1 (needs a port).
    Gue,
    /// GRE, 2 (since 5.3).
    Gre,
    /// An unknown value.
    Other(u8),
}

impl TunnelType {
    /// The kernel's value.
    pub fn to_raw(self) -> u8 {
        match self {
            TunnelType::Ipip => 0,
            TunnelType::Gue => 1,
            TunnelType::Gre => 2,
            TunnelType::Other(n) => n,
        }
    }

    /// From the kernel's value.
    pub fn from_raw(raw: u8) -> Self {
        match raw {
            0 => TunnelType::Ipip,
            1 => TunnelType::Gue,
            2 => TunnelType::Gre,
            n => TunnelType::Other(n),
        }
    }
}

/// Tunnel checksum mode (`IP_VS_TUNNEL_ENCAP_FLAG_*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum TunnelChecksum {
    /// No checksum, 0 (the default).
    #[default]
    None,
    /// Checksum, 1.
    Checksum,
    /// Remote checksum offload, 2.
    RemoteChecksum,
    /// An unknown value.
    Other(u16),
}

impl TunnelChecksum {
    /// The kernel's value.
    pub fn to_raw(self) -> u16 {
        match self {
            TunnelChecksum::None => 0,
            TunnelChecksum::Checksum => 1,
            TunnelChecksum::RemoteChecksum => 2,
            TunnelChecksum::Other(n) => n,
        }
    }

    /// From the kernel's value.
    pub fn from_raw(raw: u16) -> Self {
        match raw {
            0 => TunnelChecksum::None,
            1 => TunnelChecksum::Checksum,
            2 => TunnelChecksum::RemoteChecksum,
            n => TunnelChecksum::Other(n),
        }
    }
}

/// Tunnel options of a destination. The kernel keeps them (all zero) for every forwarding method.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TunnelConfig {
    /// Encapsulation.
    pub kind: TunnelType,
    /// UDP port for GUE (0 otherwise).
    pub port: u16,
    /// Checksum mode.
    pub checksum: TunnelChecksum,
}

/// A destination's identity within its service: its own family (mixed families need tunnelling), address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DestKey {
    /// Real server address; its family is the destination's family.
    pub addr: IpAddr,
    /// Real server port (0 = the packet's port).
    pub port: u16,
}

impl DestKey {
    /// A destination key.
    pub fn new(addr: IpAddr, port: u16) -> Self {
        DestKey { addr, port }
    }

    /// The destination's family.
    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }
}

/// Formats like ipvsadm: `10.0.0.1:80`, `[2001:db8::1]:80`.
impl fmt::Display for DestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// What `SET_DEST` can change on an existing destination (it replaces all of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DestConfig {
    /// Forwarding method.
    pub forward: ForwardMethod,
    /// Weight; 0 quiesces. The kernel refuses values >= 2^31.
    pub weight: u32,
    /// Upper connection threshold, 0 = none.
    pub upper_threshold: u32,
    /// Lower connection threshold, 0 = none.
    pub lower_threshold: u32,
    /// Tunnel options.
    pub tunnel: TunnelConfig,
}

impl DestConfig {
    /// A masquerading destination with weight `weight`, as `ipvsadm -a -m -w WEIGHT` creates it.
    pub fn masquerade(weight: u32) -> Self {
        DestConfig {
            forward: ForwardMethod::Masquerade,
            weight,
            upper_threshold: 0,
            lower_threshold: 0,
            tunnel: TunnelConfig::default(),
        }
    }
}

/// Connection counts the kernel reports for a destination (read only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConnCounts {
    /// Established connections.
    pub active: u32,
    /// Other connections.
    pub inactive: u32,
    /// Persistence templates.
    pub persistent: u32,
}

/// A destination: key, configuration, and what the kernel reports about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Destination {
    /// Identity within the service.
    pub key: DestKey,
    /// Editable configuration.
    pub config: DestConfig,
    /// Connection counts (zero on destinations not read from the kernel).
    #[serde(default)]
    pub conns: ConnCounts,
    /// Counters, present only on destinations read from the kernel (boxed: a desired table of 100,000 backends
    /// never carries counters, and an inline `Option<Stats>` would cost it 88 bytes each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Box<Stats>>,
}

impl Destination {
    /// A destination with no counters.
    pub fn new(key: DestKey, config: DestConfig) -> Self {
        Destination { key, config, conns: ConnCounts::default(), stats: None }
    }
}
