//! One change to the kernel's table: the unit the planner emits and the client sends.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::destination::{DestKey, Destination};
use super::key::ServiceKey;
use super::service::Service;

/// A mutation of the IPVS table, one netlink request each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `NEW_SERVICE`
    AddService(Service),
    /// `SET_SERVICE`: scheduler, flags, timeout, netmask, engine.
    UpdateService(Service),
    /// `DEL_SERVICE` (its destinations go with it).
    DeleteService(ServiceKey),
    /// `NEW_DEST`
    AddDest(ServiceKey, Destination),
    /// `SET_DEST`: forwarding, weight, thresholds, tunnel.
    UpdateDest(ServiceKey, Destination),
    /// `DEL_DEST`
    DeleteDest(ServiceKey, DestKey),
}

impl Op {
    /// The service this operation is about.
    pub fn service_key(&self) -> &ServiceKey {
        match self {
            Op::AddService(s) | Op::UpdateService(s) => &s.key,
            Op::DeleteService(k) => k,
            Op::AddDest(k, _) | Op::UpdateDest(k, _) | Op::DeleteDest(k, _) => k,
        }
    }

    /// The destination this operation is about, if any.
    pub fn dest_key(&self) -> Option<&DestKey> {
        match self {
            Op::AddDest(_, d) | Op::UpdateDest(_, d) => Some(&d.key),
            Op::DeleteDest(_, k) => Some(k),
            _ => None,
        }
    }

    /// Short name of the operation, for logs, errors and metric labels.
    pub fn verb(&self) -> &'static str {
        match self {
            Op::AddService(_) => "add-service",
            Op::UpdateService(_) => "edit-service",
            Op::DeleteService(_) => "delete-service",
            Op::AddDest(..) => "add-destination",
            Op::UpdateDest(..) => "edit-destination",
            Op::DeleteDest(..) => "delete-destination",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::AddService(s) | Op::UpdateService(s) => write!(f, "{} {}", self.verb(), s.key),
            Op::DeleteService(k) => write!(f, "{} {k}", self.verb()),
            Op::AddDest(k, d) | Op::UpdateDest(k, d) => write!(f, "{} {k} -> {}", self.verb(), d.key),
            Op::DeleteDest(k, d) => write!(f, "{} {k} -> {d}", self.verb()),
        }
    }
}
