//! A virtual service and its editable configuration.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::key::{Family, ServiceKey};
use super::stats::Stats;

/// Service flags (`IP_VS_SVC_F_*`) as the kernel stores them, minus the kernel-internal `HASHED` bit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ServiceFlags(pub u32);

impl ServiceFlags {
    /// Connections from one client stick to one destination (`-p`).
    pub const PERSISTENT: u32 = 0x1;
    /// Kernel-internal: the service is in the hash table. Always set in replies; never compared.
    pub const HASHED: u32 = 0x2;
    /// Schedule every UDP datagram on its own (`-o`).
    pub const ONEPACKET: u32 = 0x4;
    /// Scheduler flag 1: `sh-fallback` / `mh-fallback`.
    pub const SCHED1: u32 = 0x8;
    /// Scheduler flag 2: `sh-port` / `mh-port`.
    pub const SCHED2: u32 = 0x10;
    /// Scheduler flag 3 (no scheduler uses it today).
    pub const SCHED3: u32 = 0x20;

    /// Flags as read from the kernel, with `HASHED` removed so that they compare equal to what was written.
    pub fn from_kernel(raw: u32) -> Self {
        ServiceFlags(raw & !Self::HASHED)
    }

    /// Whether every bit of `bit` is set.
    pub fn has(self, bit: u32) -> bool {
        self.0 & bit == bit
    }

    /// This set with `bit` set or cleared.
    pub fn with(self, bit: u32, on: bool) -> Self {
        if on { ServiceFlags(self.0 | bit) } else { ServiceFlags(self.0 & !bit) }
    }
}

/// The persistence netmask exactly as the kernel holds it.
///
/// For IPv4 it is a mask (ipvsadm accepts any dotted mask, contiguous or not); for IPv6 a prefix length 1..=128.
/// Kept raw so that a table read back compares equal to what was written, whatever wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Netmask {
    /// An IPv4 mask, e.g. 255.255.255.0.
    V4(Ipv4Addr),
    /// An IPv6 prefix length.
    V6Prefix(u8),
}

impl Netmask {
    /// The default ipvsadm sends: /32 for IPv4, /128 for IPv6.
    pub fn host(family: Family) -> Netmask {
        match family {
            Family::V4 => Netmask::V4(Ipv4Addr::BROADCAST),
            Family::V6 => Netmask::V6Prefix(128),
        }
    }

    /// A netmask from a prefix length (IPv4 0..=32, IPv6 0..=128; larger values are clamped).
    pub fn from_prefix(family: Family, len: u8) -> Netmask {
        match family {
            Family::V4 => {
                let len = u32::from(len.min(32));
                let bits = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                Netmask::V4(Ipv4Addr::from(bits))
            }
            Family::V6 => Netmask::V6Prefix(len.min(128)),
        }
    }

    /// The prefix length, when the mask is contiguous.
    pub fn prefix_len(&self) -> Option<u8> {
        match self {
            Netmask::V4(mask) => {
                let bits = u32::from(*mask);
                let len = bits.leading_ones();
                // Contiguous only when every one bit is in front.
                (bits.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
            }
            Netmask::V6Prefix(len) => Some(*len),
        }
    }
}

impl fmt::Display for Netmask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Netmask::V4(mask) => write!(f, "{mask}"),
            Netmask::V6Prefix(len) => write!(f, "{len}"),
        }
    }
}

/// What `SET_SERVICE` can change on an existing service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceConfig {
    /// Scheduler name (`rr`, `wlc`, `mh`, ...). The kernel reports `none` when unset.
    pub scheduler: String,
    /// Flags, without `HASHED`.
    pub flags: ServiceFlags,
    /// Persistence timeout in seconds (meaningful with `PERSISTENT`).
    pub timeout: u32,
    /// Persistence granularity.
    pub netmask: Netmask,
    /// Persistence engine (`sip`), if any.
    pub pe_name: Option<String>,
}

impl ServiceConfig {
    /// A non-persistent service with `scheduler`, as `ipvsadm -A -s SCHED` creates it.
    pub fn new(family: Family, scheduler: &str) -> Self {
        ServiceConfig {
            scheduler: scheduler.to_owned(),
            flags: ServiceFlags::default(),
            timeout: 0,
            netmask: Netmask::host(family),
            pe_name: None,
        }
    }
}

/// A virtual service: its key, its configuration and (when read from the kernel) its statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// Identity.
    pub key: ServiceKey,
    /// Editable configuration.
    pub config: ServiceConfig,
    /// Counters, present only on services read from the kernel (boxed: desired tables hold many entries and never
    /// carry counters, so they pay a pointer rather than 88 bytes per entry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<Box<Stats>>,
}

impl Service {
    /// A service with the given key and configuration, no statistics.
    pub fn new(key: ServiceKey, config: ServiceConfig) -> Self {
        Service { key, config, stats: None }
    }
}
