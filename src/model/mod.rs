//! Plain data types for everything the kernel's IPVS holds.
//!
//! This module is the vocabulary shared by the wire codec (`crate::ipvs`), the planner (`crate::table`) and the
//! declarative API (`crate::api`). It knows nothing of sockets, netlink or Kubernetes: every type here is a value
//! that can be built in a unit test.

mod daemon;
mod destination;
mod key;
mod op;
mod service;
mod stats;
mod table;

pub use daemon::{DaemonState, Info, SyncDaemon, Timeouts};
pub use destination::{
    ConnCounts, DestConfig, DestKey, Destination, ForwardMethod, TunnelChecksum, TunnelConfig, TunnelType,
};
pub use key::{Family, Protocol, ServiceKey};
pub use op::Op;
pub use service::{Netmask, Service, ServiceConfig, ServiceFlags};
pub use stats::Stats;
pub use table::{ServiceEntry, Table};
