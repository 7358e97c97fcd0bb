//! The desired IPVS table, as computed from declarative sources.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::HealthPolicy;
use crate::model::{DestMap, ObjectId, Service, ServiceKey};

/// How long a removed backend is drained (weight 0) before it is deleted, when the object does not say.
pub const DEFAULT_DRAIN_TIMEOUT_SECS: u64 = 300;

/// One service the sources ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredService {
    /// The service (no statistics).
    pub service: Service,
    /// Its destinations (no counters).
    pub dests: DestMap,
    /// Seconds a backend that leaves this service keeps receiving its existing connections (weight 0) before it is
    /// deleted; 0 deletes at once.
    pub drain_timeout_secs: u64,
    /// Which object asked for it: messages, failures and status name it.
    pub origin: ObjectId,
    /// How its backends are health checked; `None`: they are not (always healthy).
    pub health: Option<Arc<HealthPolicy>>,
    /// Whether the node must hold the service's address as its own (`spec.bindAddress`, default true; a fwmark
    /// service has no address).
    pub bind_address: bool,
    /// Whether the address is withdrawn while no backend takes new connections and no sorry server stands in
    /// (`spec.withdrawAddressWhenDown`; applied with the backends' health).
    pub withdraw_address_when_down: bool,
}

/// Every service the sources ask for, by kernel key. Entries are shared (`Arc`): a copy of the table, which the
/// agent takes for every pass, costs a pointer per service, not the services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredTable {
    /// Services by key.
    pub services: BTreeMap<ServiceKey, Arc<DesiredService>>,
}

impl DesiredTable {
    /// Every service that binds its VIP on the node, with that address, in key order: the one place of the rule
    /// (the address planner, and the failures that name the services needing an address, ask it here). An address
    /// service binds its key's address unless its object says `bindAddress: false`; a fwmark service has no address.
    pub fn vip_bindings(&self) -> impl Iterator<Item = (IpAddr, ServiceKey)> + '_ {
        self.services
            .iter()
            .filter(|(_, service)| service.bind_address)
            .filter_map(|(key, _)| key.addr().map(|addr| (addr, *key)))
    }
}
