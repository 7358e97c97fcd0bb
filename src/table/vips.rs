//! Which virtual addresses the node must hold as its own, and the minimal changes to the addresses of the
//! program's dummy interface that get it there. Pure: the caller lists the interface's addresses (one listing per
//! pass) and applies the plan over rtnetlink.
//!
//! IPVS sits in the input path: a service receives only the packets the node accepts as local, so every address
//! service's VIP (whatever its forwarding: the director accepts the packet before it masquerades, routes or
//! tunnels it) must be an address of the node, unless the VirtualService says `bindAddress: false` (VRRP,
//! kube-vip or a BGP speaker binds it). kube-proxy binds its VIPs to `kube-ipvs0` the same way.
//!
//! The safety rules are the IPVS table's:
//! - only addresses this program added (`owned`) are ever removed; an address someone else put on the interface
//!   stays, also when a service wants it (it is then used, not adopted: it stays theirs);
//! - a wanted address is added when missing, also one it had added and someone removed;
//! - the caller plans only from a listing that succeeded: a failed read removes nothing.
//!
//! Order around the IPVS changes (the caller's): addresses are added before the services that need them, and
//! removed after the services that needed them are gone.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::desired::DesiredTable;
use crate::model::{ServiceKey, Table};

/// The addresses the node must keep: every address a declared service binds (see [`DesiredTable::vip_bindings`]),
/// and that of every owned service still in `live` that no object declares any more (its deletion is held back, or
/// failed: it still serves, so its address stays until it is gone). With `among`, only those addresses are looked at (an
/// incremental pass looks at the addresses of the services it touched; the scans stay in memory).
pub fn needed_vips(
    desired: &DesiredTable,
    live: &Table,
    owned: &BTreeSet<ServiceKey>,
    among: Option<&BTreeSet<IpAddr>>,
) -> BTreeSet<IpAddr> {
    let looked_at = |addr: &IpAddr| among.is_none_or(|among| among.contains(addr));
    let declared = desired.vip_bindings().map(|(addr, _)| addr);
    let still_served = live
        .services
        .keys()
        .filter(|key| owned.contains(key) && !desired.services.contains_key(key))
        .filter_map(ServiceKey::addr);
    declared.chain(still_served).filter(looked_at).collect()
}

/// What to change on the interface, and what the program owns afterwards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VipPlan {
    /// Addresses to add (each as a /32 or /128).
    pub add: BTreeSet<IpAddr>,
    /// Owned addresses to remove: no service wants them any more.
    pub remove: BTreeSet<IpAddr>,
    /// Wanted addresses that are on the interface but were put there by someone else: used, never removed.
    pub foreign: BTreeSet<IpAddr>,
    /// What the program owns once the plan is applied: the owned addresses it keeps, and those it adds.
    pub owned_after: BTreeSet<IpAddr>,
}

impl VipPlan {
    /// Whether the interface is already as wanted.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The minimal changes from `live` (the interface's addresses, as just listed) to a node holding every `wanted`
/// address, given what the program added before (`owned`, from its state file). `elsewhere` are the node's
/// addresses on its other interfaces (keepalived's VRRP put the VIP on `eth0`, an operator put it on `lo`): the
/// node already takes their packets, so they are used as they are, never added again on the interface, and never
/// owned.
pub fn plan_vips(
    wanted: &BTreeSet<IpAddr>,
    live: &BTreeSet<IpAddr>,
    elsewhere: &BTreeSet<IpAddr>,
    owned: &BTreeSet<IpAddr>,
) -> VipPlan {
    let add: BTreeSet<IpAddr> =
        wanted.iter().filter(|addr| !live.contains(addr) && !elsewhere.contains(addr)).copied().collect();
    let remove: BTreeSet<IpAddr> =
        owned.iter().filter(|addr| live.contains(addr) && !wanted.contains(addr)).copied().collect();
    let foreign: BTreeSet<IpAddr> = wanted
        .iter()
        .filter(|addr| {
            (live.contains(addr) && !owned.contains(addr)) || (!live.contains(addr) && elsewhere.contains(addr))
        })
        .copied()
        .collect();
    // Owned and no longer on the interface (someone removed it): forgotten unless wanted, then added again.
    let owned_after: BTreeSet<IpAddr> =
        owned.iter().filter(|addr| live.contains(addr) && wanted.contains(addr)).chain(add.iter()).copied().collect();
    VipPlan { add, remove, foreign, owned_after }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::Ipv4Addr;

    use proptest::prelude::*;

    use super::*;
    use crate::model::DestKey;
    use crate::table::fixtures::desired_service;

    fn ip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn set(lasts: &[u8]) -> BTreeSet<IpAddr> {
        lasts.iter().map(|&last| ip(last)).collect()
    }

    #[test]
    fn every_address_service_wants_its_vip_unless_it_binds_it_elsewhere() {
        let dest = [(DestKey::new(ip(100), 8080), 1)];
        let web = ServiceKey::tcp(ip(1), 80);
        let web_tls = ServiceKey::tcp(ip(1), 443);
        let announced = ServiceKey::tcp(ip(2), 80);
        let mark = ServiceKey::Fwmark { family: crate::model::Family::V4, mark: 7 };
        let mut unbound = desired_service(announced, "wlc", &dest, 0);
        unbound.bind_address = false;
        let table = DesiredTable {
            services: [
                (web, desired_service(web, "wlc", &dest, 0)),
                (web_tls, desired_service(web_tls, "wlc", &dest, 0)),
                (announced, unbound),
                (mark, desired_service(mark, "wlc", &dest, 0)),
            ]
            .into_iter()
            .map(|(key, service)| (key, std::sync::Arc::new(service)))
            .collect(),
        };
        // Grouped by address: the services that need each one.
        let mut wanted: BTreeMap<IpAddr, Vec<ServiceKey>> = BTreeMap::new();
        for (addr, key) in table.vip_bindings() {
            wanted.entry(addr).or_default().push(key);
        }
        assert_eq!(wanted.keys().copied().collect::<BTreeSet<_>>(), set(&[1]), "one address for two ports");
        assert_eq!(wanted[&ip(1)], vec![web, web_tls]);
        assert_eq!(needed_vips(&table, &Table::default(), &BTreeSet::new(), None), set(&[1]), "the planner's rule");
    }

    #[test]
    fn only_owned_addresses_leave_and_a_foreign_one_is_used_not_adopted() {
        // 1: wanted, owned, present. 2: wanted, present, someone else's. 3: owned, no longer wanted. 4: someone
        // else's, not wanted. 5: wanted, missing. 6: owned, wanted, but someone removed it.
        let plan = plan_vips(&set(&[1, 2, 5, 6]), &set(&[1, 2, 3, 4]), &BTreeSet::new(), &set(&[1, 3, 6]));
        assert_eq!(plan.add, set(&[5, 6]));
        assert_eq!(plan.remove, set(&[3]));
        assert_eq!(plan.foreign, set(&[2]));
        assert_eq!(plan.owned_after, set(&[1, 5, 6]));
    }

    #[test]
    fn an_address_the_node_has_elsewhere_is_used_as_it_is() {
        // 7: wanted, on eth0 (VRRP's): neither added nor owned. 8: wanted, owned on the interface and also on
        // eth0: kept as it is. 9: owned, removed from the interface by someone, now on eth0: forgotten, not added.
        let plan = plan_vips(&set(&[7, 8, 9]), &set(&[8]), &set(&[7, 8, 9]), &set(&[8, 9]));
        assert_eq!(plan.add, BTreeSet::new());
        assert_eq!(plan.remove, BTreeSet::new());
        assert_eq!(plan.foreign, set(&[7, 9]));
        assert_eq!(plan.owned_after, set(&[8]));
        assert!(plan.is_empty(), "nothing to show in a plan");
    }

    fn addrs() -> impl Strategy<Value = BTreeSet<IpAddr>> {
        prop::collection::btree_set(0u8..16, 0..10).prop_map(|lasts| lasts.into_iter().map(ip).collect())
    }

    proptest! {
        /// Applied, a plan leaves every wanted address on the interface, every foreign address where it was, and
        /// no owned address nobody wants; it owns exactly what it added or kept; planning again changes nothing.
        #[test]
        fn a_plan_reaches_the_wanted_addresses_and_touches_nothing_foreign(
            wanted in addrs(), live in addrs(), elsewhere in addrs(), owned in addrs(),
        ) {
            let plan = plan_vips(&wanted, &live, &elsewhere, &owned);
            prop_assert!(plan.add.is_disjoint(&elsewhere), "never binds again what the node has elsewhere");
            prop_assert!(plan.remove.is_subset(&owned), "removes only what it owns");
            prop_assert!(plan.remove.is_disjoint(&wanted), "never removes a wanted address");
            prop_assert!(plan.add.is_disjoint(&live), "adds only what is missing");
            let after: BTreeSet<IpAddr> = live.difference(&plan.remove).chain(plan.add.iter()).copied().collect();
            let node: BTreeSet<IpAddr> = after.union(&elsewhere).copied().collect();
            prop_assert!(wanted.is_subset(&node), "every wanted address is the node's");
            let foreign_before: BTreeSet<IpAddr> = live.difference(&owned).copied().collect();
            prop_assert!(foreign_before.is_subset(&after), "every address it does not own stays");
            prop_assert!(plan.owned_after.is_subset(&after) && plan.owned_after.is_subset(&wanted));
            prop_assert!(plan.owned_after.is_disjoint(&foreign_before), "a foreign address never becomes owned");
            let again = plan_vips(&wanted, &after, &elsewhere, &plan.owned_after);
            prop_assert!(again.is_empty(), "a second pass changes nothing: {again:?}");
            prop_assert_eq!(again.owned_after, plan.owned_after);
        }
    }
}
