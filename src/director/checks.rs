//! The sysctls against the declared services: the combinations under which the services do not work as declared.
//! Reported (a metric and one log line), never "fixed" behind the operator's back: only configured sysctls are set.

use std::collections::BTreeMap;

use super::Sysctl;
use crate::model::{Family, ForwardMethod, ServiceFlags, ServiceKey};
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
