//! The sysctls against the declared services: the combinations under which the services do not work as declared.
//! Reported (a metric and one log line), never "fixed" behind the operator's back: only configured sysctls are set.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use super::Sysctl;
use crate::model::{Family, ForwardMethod, ServiceFlags, ServiceKey};
use crate::netif::NodeLink;
use crate::table::{DesiredService, DesiredTable, OnFailure};

/// A sysctl whose value contradicts some declared services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    /// The sysctl.
    pub sysctl: Sysctl,
    /// Its value.
    pub found: u32,
    /// The value the services need.
    pub wanted: u32,
    /// What goes wrong.
    pub why: &'static str,
    /// The services concerned (the first few name it in messages; all count in the metric).
    pub services: Vec<ServiceKey>,
}

impl std::fmt::Display for Contradiction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<String> = self.services.iter().take(3).map(ToString::to_string).collect();
        let more = self.services.len().saturating_sub(shown.len());
        write!(
            f,
            "{} is {} but {} service(s) need {}: {} ({}",
            self.sysctl,
            self.found,
            self.services.len(),
            self.wanted,
            self.why,
            shown.join(", ")
        )?;
        if more > 0 {
            write!(f, " and {more} more")?;
        }
        f.write_str(")")
    }
}

/// A sysctl, the value the services need, why, and which services need it.
type Rule = (Sysctl, u32, &'static str, fn(&ServiceKey, &DesiredService) -> bool);

/// Every contradiction between `values` (the sysctls as read; one missing is not checked) and `desired`.
pub fn contradictions(desired: &DesiredTable, values: &BTreeMap<Sysctl, u32>) -> Vec<Contradiction> {
    let rules: [Rule; 4] = [
        (
            Sysctl::IpForward,
            1,
            "NAT replies come back through the director, which must forward them",
            |key, service| key.family() == Family::V4 && masquerades(service),
        ),
        (
            Sysctl::Ipv6Forwarding,
            1,
            "NAT replies come back through the director, which must forward them",
            |key, service| key.family() == Family::V6 && masquerades(service),
        ),
        (
            Sysctl::ExpireQuiescentTemplate,
            1,
            "persistent clients keep reaching a backend at weight 0 (drained or unhealthy) through their templates",
            |_, service| service.service.config.flags.has(ServiceFlags::PERSISTENT) && may_quiesce(service),
        ),
        (
            Sysctl::ExpireNodestConn,
            1,
            "the connections of a backend deleted at once (drainTimeoutSeconds: 0) hang until they time out",
            |_, service| service.drain_timeout_secs == 0,
        ),
    ];
    let mut found = Vec::new();
    for (sysctl, wanted, why, needs) in rules {
        let Some(&value) = values.get(&sysctl) else { continue };
        if value == wanted {
            continue;
        }
        let services: Vec<ServiceKey> =
            desired.services.iter().filter(|(key, service)| needs(key, service)).map(|(key, _)| *key).collect();
        if !services.is_empty() {
            found.push(Contradiction { sysctl, found: value, wanted, why, services });
        }
    }
    found
}

/// Why a VIP in a subnet of the node must not be answered for by every node.
const ARP_WHY: &str = "the node answers ARP for the VIPs on the VIP interface that lie inside a subnet of another \
                       interface, so every director on that segment claims them (with 1 it answers only for the \
                       receiving interface's own addresses; announce the VIPs by BGP, or let one owner answer)";

/// The contradiction of `arp_ignore` (`all`, the value of `net.ipv4.conf.all.arp_ignore`) with the declared
/// services whose VIP is on `vip_interface` inside a subnet of another interface that is up: an ARP request for the
/// VIP on that segment is answered by every node that holds it (the kernel answers for any local address on any
/// interface unless `arp_ignore` says otherwise), so on L2 the directors take the address from each other in turn.
/// IPv4 only: IPv6 neighbour discovery answers only for the receiving interface's own addresses.
pub fn arp_contradiction(
    desired: &DesiredTable,
    all: u32,
    vip_interface: &str,
    links: &[NodeLink],
) -> Option<Contradiction> {
    let vips: Vec<Ipv4Addr> = links.iter().find(|l| l.name == vip_interface)?.ipv4.iter().map(|(a, _)| *a).collect();
    // The effective value of the first interface that answers for each VIP.
    let answered = |vip: &Ipv4Addr| {
        links
            .iter()
            .filter(|link| link.up && link.name != vip_interface && link.name != "lo")
            .filter(|link| link.ipv4.iter().any(|(addr, prefix)| *prefix < 32 && in_subnet(vip, addr, *prefix)))
            .map(|link| all.max(link.arp_ignore.unwrap_or(0)))
            .find(|effective| !matches!(effective, 1 | 2 | 8))
    };
    let mut found = None;
    let mut services = Vec::new();
    for key in desired.services.keys() {
        let Some(IpAddr::V4(addr)) = key.addr() else { continue };
        if !vips.contains(&addr) {
            continue;
        }
        if let Some(effective) = answered(&addr) {
            found.get_or_insert(effective);
            services.push(*key);
        }
    }
    Some(Contradiction { sysctl: Sysctl::ArpIgnore, found: found?, wanted: 1, why: ARP_WHY, services })
}

/// Whether `addr` lies in `network`/`prefix`.
fn in_subnet(addr: &Ipv4Addr, network: &Ipv4Addr, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
    u32::from(*addr) & mask == u32::from(*network) & mask
}

fn masquerades(service: &DesiredService) -> bool {
    service.dests.values().any(|dest| dest.config.forward == ForwardMethod::Masquerade)
}

/// Whether a backend of the service may sit at weight 0: drained when removed, inhibited when unhealthy.
fn may_quiesce(service: &DesiredService) -> bool {
    service.drain_timeout_secs > 0
        || service.health.as_deref().is_some_and(|p| p.check.is_some() && p.on_failure == OnFailure::Inhibit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DestConfig;
    use crate::table::fixtures::{desired, desired_service, dest, svc};

    fn values(list: &[(Sysctl, u32)]) -> BTreeMap<Sysctl, u32> {
        list.iter().copied().collect()
    }

    #[test]
    fn nat_without_forwarding_is_reported_with_its_services_and_direct_routing_is_not() {
        let nat = desired_service(svc(1), "rr", &[(dest(1), 1)], 300);
        let mut dr = desired_service(svc(2), "rr", &[(dest(2), 1)], 300);
        for d in dr.dests.values_mut() {
            d.config = DestConfig { forward: ForwardMethod::DirectRoute, ..d.config };
        }
        let table = desired([nat, dr]);
        let found = contradictions(&table, &values(&[(Sysctl::IpForward, 0), (Sysctl::Ipv6Forwarding, 0)]));
        let [one] = found.as_slice() else { panic!("{found:?}") };
        assert_eq!((one.sysctl, one.found, one.wanted, one.services.clone()), (Sysctl::IpForward, 0, 1, vec![svc(1)]));
        assert!(one.to_string().starts_with("net.ipv4.ip_forward is 0 but 1 service(s) need 1: NAT replies"), "{one}");
        assert!(contradictions(&table, &values(&[(Sysctl::IpForward, 1)])).is_empty());
        assert!(contradictions(&table, &BTreeMap::new()).is_empty(), "an unread sysctl is not judged");
    }

    #[test]
    fn persistence_with_drains_needs_quiescent_templates_expired_and_instant_deletes_need_nodest_expiry() {
        let mut persistent = desired_service(svc(1), "rr", &[(dest(1), 1)], 300);
        persistent.service.config.flags = persistent.service.config.flags.with(ServiceFlags::PERSISTENT, true);
        let instant = desired_service(svc(2), "rr", &[(dest(1), 1)], 0);
        // Persistent, but nothing ever sits at weight 0 (deleted at once, no check): its templates are no concern.
        let mut never_quiesced = desired_service(svc(3), "rr", &[(dest(1), 1)], 0);
        never_quiesced.service.config.flags = never_quiesced.service.config.flags.with(ServiceFlags::PERSISTENT, true);
        let table = desired([persistent, instant, never_quiesced]);
        let found = contradictions(
            &table,
            &values(&[(Sysctl::ExpireQuiescentTemplate, 0), (Sysctl::ExpireNodestConn, 0), (Sysctl::IpForward, 1)]),
        );
        let sysctls: Vec<(Sysctl, Vec<ServiceKey>)> = found.iter().map(|c| (c.sysctl, c.services.clone())).collect();
        assert_eq!(
            sysctls,
            vec![(Sysctl::ExpireQuiescentTemplate, vec![svc(1)]), (Sysctl::ExpireNodestConn, vec![svc(2), svc(3)])]
        );
    }

    #[test]
    fn a_checked_service_quiesces_its_backends_only_when_failure_inhibits_them() {
        use crate::table::OnFailure;
        use crate::table::fixtures::tcp_policy;
        // Deleted at once (drain 0), so only health could leave a backend at weight 0.
        let persistent = |i: u8, policy: Option<crate::table::HealthPolicy>| {
            let mut service = desired_service(svc(i), "rr", &[(dest(1), 1)], 0);
            service.service.config.flags = service.service.config.flags.with(ServiceFlags::PERSISTENT, true);
            service.health = policy.map(std::sync::Arc::new);
            service
        };
        let inhibit = tcp_policy();
        let remove = crate::table::HealthPolicy { on_failure: OnFailure::Remove, ..tcp_policy() };
        let unchecked = crate::table::HealthPolicy { check: None, ..tcp_policy() };
        let table =
            desired([persistent(1, Some(inhibit)), persistent(2, Some(remove)), persistent(3, Some(unchecked))]);
        let found = contradictions(&table, &values(&[(Sysctl::ExpireQuiescentTemplate, 0)]));
        let services: Vec<Vec<ServiceKey>> = found.iter().map(|c| c.services.clone()).collect();
        assert_eq!(services, vec![vec![svc(1)]], "only the inhibiting check leaves weight-0 backends");
    }

    fn link(name: &str, up: bool, ipv4: &[(&str, u8)], arp_ignore: Option<u32>) -> NodeLink {
        let ipv4 = ipv4.iter().map(|(a, p)| (a.parse().unwrap(), *p)).collect();
        NodeLink { name: name.into(), up, kind: None, ipv4, arp_ignore }
    }

    #[test]
    fn a_vip_on_ipvs0_inside_a_connected_subnet_is_answered_by_every_node_unless_arp_ignore_says_no() {
        use crate::model::ServiceKey;
        let on_lan = ServiceKey::tcp([192, 168, 1, 100].into(), 80);
        let routed = ServiceKey::tcp([203, 0, 113, 10].into(), 80);
        let elsewhere = ServiceKey::tcp([192, 168, 1, 101].into(), 80); // in the subnet, but not on ipvs0
        let table = desired([on_lan, routed, elsewhere].map(|key| desired_service(key, "rr", &[(dest(1), 1)], 300)));
        let links = |eth0_arp_ignore| {
            vec![
                link("lo", true, &[("127.0.0.1", 8)], None),
                link("eth0", true, &[("192.168.1.5", 24)], eth0_arp_ignore),
                link("ipvs0", true, &[("192.168.1.100", 32), ("203.0.113.10", 32)], None),
            ]
        };

        let found = arp_contradiction(&table, 0, "ipvs0", &links(Some(0))).expect("answered on eth0");
        assert_eq!(
            (found.sysctl, found.found, found.wanted, found.services.clone()),
            (Sysctl::ArpIgnore, 0, 1, vec![on_lan])
        );
        assert!(
            found
                .to_string()
                .starts_with("net.ipv4.conf.all.arp_ignore is 0 but 1 service(s) need 1: the node answers ARP"),
            "{found}"
        );
        // The kernel takes the higher of `all` and the interface's own: either one at 1 (or 2, or 8) is enough.
        assert_eq!(arp_contradiction(&table, 1, "ipvs0", &links(Some(0))), None);
        assert_eq!(arp_contradiction(&table, 0, "ipvs0", &links(Some(2))), None);
        assert_eq!(arp_contradiction(&table, 8, "ipvs0", &links(None)), None);
        // 3 still answers for addresses of global scope, which the VIPs are.
        assert_eq!(arp_contradiction(&table, 0, "ipvs0", &links(Some(3))).map(|c| c.found), Some(3));

        // A down interface answers nothing; a host route (/32) is no subnet; no VIP interface, nothing to judge.
        let mut down = links(Some(0));
        down[1].up = false;
        assert_eq!(arp_contradiction(&table, 0, "ipvs0", &down), None);
        let mut host = links(Some(0));
        host[1].ipv4 = vec![("192.168.1.5".parse().unwrap(), 32)];
        assert_eq!(arp_contradiction(&table, 0, "ipvs0", &host), None);
        assert_eq!(arp_contradiction(&table, 0, "vips", &links(Some(0))), None);
    }

    #[test]
    fn subnets_by_prefix() {
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(in_subnet(&a("10.1.2.3"), &a("10.1.0.1"), 16));
        assert!(!in_subnet(&a("10.2.2.3"), &a("10.1.0.1"), 16));
        assert!(in_subnet(&a("1.2.3.4"), &a("9.9.9.9"), 0));
        assert!(!in_subnet(&a("10.1.0.2"), &a("10.1.0.1"), 32));
    }

    #[test]
    fn a_contradiction_names_three_services_and_counts_the_rest() {
        let services = (1..=5).map(|i| desired_service(svc(i), "rr", &[(dest(1), 1)], 300));
        let found = contradictions(&desired(services), &values(&[(Sysctl::IpForward, 0)]));
        let [one] = found.as_slice() else { panic!("{found:?}") };
        let shown = one.to_string();
        assert!(shown.starts_with("net.ipv4.ip_forward is 0 but 5 service(s) need 1"), "{shown}");
        assert!(shown.ends_with(&format!("({}, {}, {} and 2 more)", svc(1), svc(2), svc(3))), "{shown}");

        let three = (1..=3).map(|i| desired_service(svc(i), "rr", &[(dest(1), 1)], 300));
        let found = contradictions(&desired(three), &values(&[(Sysctl::IpForward, 0)]));
        let shown = found[0].to_string();
        assert!(shown.ends_with(&format!("({}, {}, {})", svc(1), svc(2), svc(3))), "all three, no count: {shown}");
    }
}
