//! Address safety, always on: which addresses a service may take as its virtual address, and which its backends and
//! sorry server may point at. The same rules are the CRD's CEL rules (`api::v1alpha1`), so that files and the
//! cluster refuse the same objects.
//!
//! A virtual address is bound to the node and answered for: an unspecified, broadcast or multicast one is no
//! host's, a loopback or link-local one would expose (or shadow) what only the node itself or its link may reach,
//! the cloud metadata address 169.254.169.254 among them. A destination is refused where the kernel or the
//! forwarding method cannot deliver to it.

use std::net::{IpAddr, Ipv4Addr};

use super::Problems;
use crate::model::ForwardMethod;

/// What makes an address special, as messages name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Special {
    /// `0.0.0.0`, `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 127.0.0.0/8, `::1`.
    Loopback,
    /// 169.254.0.0/16.
    LinkLocalV4,
    /// fe80::/10.
    LinkLocalV6,
    /// `::ffff:a.b.c.d`: an IPv4 address written as IPv6.
    Ipv4Mapped(Ipv4Addr),
}

impl Special {
    fn of(addr: &IpAddr) -> Option<Special> {
        match addr {
            IpAddr::V4(a) if a.is_unspecified() => Some(Special::Unspecified),
            IpAddr::V4(a) if a.is_broadcast() => Some(Special::Broadcast),
            IpAddr::V4(a) if a.is_multicast() => Some(Special::Multicast),
            IpAddr::V4(a) if a.is_loopback() => Some(Special::Loopback),
            IpAddr::V4(a) if a.is_link_local() => Some(Special::LinkLocalV4),
            IpAddr::V4(_) => None,
            // First: the kernel takes it for an IPv6 address, which no IPv4 host has (and Rust's predicates below
            // would not see ::ffff:127.0.0.1 as loopback).
            IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => a.to_ipv4_mapped().map(Special::Ipv4Mapped),
            IpAddr::V6(a) if a.is_unspecified() => Some(Special::Unspecified),
            IpAddr::V6(a) if a.is_multicast() => Some(Special::Multicast),
            IpAddr::V6(a) if a.is_loopback() => Some(Special::Loopback),
            IpAddr::V6(a) if a.is_unicast_link_local() => Some(Special::LinkLocalV6),
            IpAddr::V6(_) => None,
        }
    }

    /// Whether a destination of this kind is reachable forwarded with `method` (`None`: the method is invalid,
    /// which is reported elsewhere, so a loopback destination is not blamed on it). IPv4 link-local is routed
    /// on-link like any subnet; loopback only through Local.
    fn reachable_with(self, method: Option<ForwardMethod>) -> bool {
        match self {
            Special::LinkLocalV4 => true,
            Special::Loopback => method.is_none_or(|method| method == ForwardMethod::Local),
            _ => false,
        }
    }

    /// "`addr` is ..." in a message.
    fn name(self) -> &'static str {
        match self {
            Special::Unspecified => "unspecified",
            Special::Broadcast => "broadcast",
            Special::Multicast => "multicast",
            Special::Loopback => "loopback",
            Special::LinkLocalV4 | Special::LinkLocalV6 => "link-local",
            Special::Ipv4Mapped(_) => "IPv4-mapped IPv6",
        }
    }
}

impl Problems<'_> {
    /// Reports `addr`, at `field` (`spec.address`), unless it may be a virtual address: a unicast host address.
    pub(super) fn virtual_address(&mut self, field: &str, addr: &IpAddr) {
        match Special::of(addr) {
            None => {}
            Some(Special::Ipv4Mapped(v4)) => {
                self.error(field, format!("{addr} is IPv4-mapped IPv6: write the IPv4 form {v4}"))
            }
            Some(special) => self.error(
                field,
                format!("{addr} is {}: a virtual address must be a unicast host address", special.name()),
            ),
        }
    }

    /// Reports `addr`, at `field` (`spec.backends[0].address`), unless a destination (backend, sorry server)
    /// forwarded with `method` may point at it (the effective method; `None` when it is invalid, which is reported
    /// elsewhere).
    pub(super) fn destination_address(&mut self, field: &str, addr: &IpAddr, method: Option<ForwardMethod>) {
        let Some(special) = Special::of(addr).filter(|special| !special.reachable_with(method)) else { return };
        let why = match special {
            // The kernel drops masqueraded packets to a loopback address (it stops DNAT to loopback), and
            // DirectRouting and Tunnel are for other hosts.
            Special::Loopback => format!(
                "only forwarding method Local delivers to the node's own sockets (the effective method is {})",
                method.map_or("another method", forward_name)
            ),
            Special::Unspecified | Special::Broadcast | Special::Multicast => {
                "not a unicast address; the kernel refuses it".to_owned()
            }
            Special::LinkLocalV6 => {
                "an IPVS destination has no interface (zone) to reach a link-local address through".to_owned()
            }
            Special::Ipv4Mapped(v4) => format!("write the IPv4 form {v4}"),
            // Reachable with every method: filtered out above.
            Special::LinkLocalV4 => return,
        };
        self.error(field, format!("{addr} is {}: {why}", special.name()));
    }
}

/// Why a destination forwarded with `method` cannot point at `addr`, if it cannot: for `dump -o yaml`, which writes
/// only what validation takes back.
pub(crate) fn destination_refused(addr: &IpAddr, method: ForwardMethod) -> Option<&'static str> {
    Special::of(addr).filter(|special| !special.reachable_with(Some(method))).map(Special::name)
}

/// Why `addr` cannot be a virtual address, if it cannot (for `dump -o yaml`).
pub(crate) fn virtual_address_refused(addr: &IpAddr) -> Option<&'static str> {
    Special::of(addr).map(Special::name)
}

/// The method as manifests name it.
fn forward_name(method: ForwardMethod) -> &'static str {
    match method {
        ForwardMethod::Masquerade => "Masquerade",
        ForwardMethod::DirectRoute => "DirectRouting",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::Local => "Local",
        ForwardMethod::Bypass | ForwardMethod::Other(_) => "another method",
    }
}
