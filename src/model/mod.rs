//! Plain data types for everything the kernel's IPVS holds.
//!
//! This module is the vocabulary shared by the wire codec (`crate::ipvs`), the planner (`crate::table`) and the
//! declarative API (`crate::api`). It knows nothing of sockets, netlink or Kubernetes: every type here is a value
//! that can be built in a unit test. [`ObjectId`] names who asked for an entry (a Kubernetes object or a file
//! document), so that every layer can say which declaration a service, an error or a failure belongs to.

mod daemon;
mod destination;
mod dests;
mod key;
mod object;
mod op;
mod service;
mod stats;
mod table;

pub use daemon::{DaemonState, Info, SyncDaemon, Timeouts};
pub use destination::{
    ConnCounts, DestConfig, DestKey, Destination, ForwardMethod, TunnelChecksum, TunnelConfig, TunnelType,
};
pub use dests::DestMap;
pub use key::{Family, Protocol, ServiceKey};
pub use object::ObjectId;
pub use op::Op;
pub use service::{Netmask, Service, ServiceConfig, ServiceFlags};
pub use stats::Stats;
pub use table::{ServiceEntry, Table};
