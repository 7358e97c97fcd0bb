//! Identity of a virtual service, as the kernel keys it.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Address family of a service or destination (`AF_INET` / `AF_INET6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    /// IPv4, `AF_INET` (2).
    #[serde(rename = "IPv4")]
    V4,
    /// IPv6, `AF_INET6` (10).
    #[serde(rename = "IPv6")]
    V6,
}

impl Family {
    /// `AF_INET`
    pub const AF_INET: u16 = 2;
    /// `AF_INET6`
    pub const AF_INET6: u16 = 10;

    /// The family of an address.
    pub fn of(addr: &IpAddr) -> Family {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The kernel's `AF_*` number.
    pub fn to_af(self) -> u16 {
        match self {
            Family::V4 => Self::AF_INET,
            Family::V6 => Self::AF_INET6,
        }
    }

    /// Parses a kernel `AF_*` number; `None` for anything but IPv4 and IPv6.
    pub fn from_af(af: u16) -> Option<Family> {
        match af {
            Self::AF_INET => Some(Family::V4),
            Self::AF_INET6 => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// Transport protocol of an address-keyed service.
///
/// The netlink path of the kernel does not validate the protocol number, so a table written by another tool may
/// hold any number: it is kept as `Other` rather than refused, so that reading a table never fails on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// TCP (6)
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP (17)
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP (132)
    #[serde(rename = "SCTP")]
    Sctp,
    /// Any other IP protocol number.
    Other(u16),
}

impl Protocol {
    /// The IP protocol number.
    pub fn number(self) -> u16 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Other(n) => n,
        }
    }

    /// From an IP protocol number.
    pub fn from_number(n: u16) -> Protocol {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            n => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Tcp => f.write_str("TCP"),
            Protocol::Udp => f.write_str("UDP"),
            Protocol::Sctp => f.write_str("SCTP"),
            Protocol::Other(n) => write!(f, "proto-{n}"),
        }
    }
}

/// The kernel's key of a virtual service: (family, protocol, address, port) or (family, firewall mark).
///
/// The ordering is total and stable, so tables keyed by it iterate deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ServiceKey {
    /// A service on a virtual address and port. The family is the address's.
    Addr {
        /// TCP, UDP or SCTP.
        protocol: Protocol,
        /// The virtual IP.
        addr: IpAddr,
        /// The virtual port; 0 means every port (persistent services only).
        port: u16,
    },
    /// A firewall-mark service: packets marked `mark` by netfilter are balanced.
    Fwmark {
        /// Which family of packets this mark service matches.
        family: Family,
        /// The mark.
        mark: u32,
    },
}

impl ServiceKey {
    /// A TCP service key.
    pub fn tcp(addr: IpAddr, port: u16) -> Self {
        ServiceKey::Addr { protocol: Protocol::Tcp, addr, port }
    }

    /// A UDP service key.
    pub fn udp(addr: IpAddr, port: u16) -> Self {
        ServiceKey::Addr { protocol: Protocol::Udp, addr, port }
    }

    /// The service's address family.
    pub fn family(&self) -> Family {
        match self {
            ServiceKey::Addr { addr, .. } => Family::of(addr),
            ServiceKey::Fwmark { family, .. } => *family,
        }
    }

    /// The service's virtual address (`None` for fwmark services).
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            ServiceKey::Addr { addr, .. } => Some(*addr),
            ServiceKey::Fwmark { .. } => None,
        }
    }

    /// The service's port (0 for fwmark services).
    pub fn port(&self) -> u16 {
        match self {
            ServiceKey::Addr { port, .. } => *port,
            ServiceKey::Fwmark { .. } => 0,
        }
    }

    /// The protocol the kernel records: fwmark services are forced to TCP by the kernel.
    pub fn protocol(&self) -> Protocol {
        match self {
            ServiceKey::Addr { protocol, .. } => *protocol,
            ServiceKey::Fwmark { .. } => Protocol::Tcp,
        }
    }
}

/// Formats like ipvsadm: `TCP 192.0.2.1:80`, `UDP [2001:db8::1]:53`, `FWM 42` (IPv6 marks: `FWM 42 IPv6`).
impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceKey::Addr { protocol, addr: IpAddr::V4(a), port } => write!(f, "{protocol} {a}:{port}"),
            ServiceKey::Addr { protocol, addr: IpAddr::V6(a), port } => write!(f, "{protocol} [{a}]:{port}"),
            ServiceKey::Fwmark { family: Family::V4, mark } => write!(f, "FWM {mark}"),
            ServiceKey::Fwmark { family: Family::V6, mark } => write!(f, "FWM {mark} IPv6"),
        }
    }
}
