//! A whole IPVS table: services with their destinations, in deterministic order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dests::DestMap;
use super::key::ServiceKey;
use super::service::Service;

/// One service and its destinations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// The service.
    pub service: Service,
    /// Its destinations by key.
    pub dests: DestMap,
}

impl ServiceEntry {
    /// A service with no destinations.
    pub fn new(service: Service) -> Self {
        ServiceEntry { service, dests: DestMap::new() }
    }
}

/// An IPVS table (live, as read, or desired, as computed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// Services by key.
    pub services: BTreeMap<ServiceKey, ServiceEntry>,
}

impl Table {
    /// Number of services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether the table has no service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// Total number of destinations.
    pub fn dest_count(&self) -> usize {
        self.services.values().map(|e| e.dests.len()).sum()
    }

    /// Inserts (or replaces) a service, keeping destinations already present.
    pub fn insert_service(&mut self, service: Service) -> &mut ServiceEntry {
        let entry = self.services.entry(service.key).or_insert_with(|| ServiceEntry::new(service.clone()));
        entry.service = service;
        entry
    }
}
