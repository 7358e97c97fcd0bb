//! The IPVS generic-netlink codec: bytes to typed messages and back, and typed messages to and from the
//! [`model`](crate::model) types. Pure: no sockets, no async.
//!
//! One module per nest, each with its attribute enum (`#[non_exhaustive]`, an `Other` catch-all so that a newer
//! kernel's attributes decode instead of failing) and its conversions:
//!
//! ```text
//!   IpvsMessage { cmd: IpvsCmd, attrs: IpvsAttrs }        message.rs  (implements GenlFamily for "IPVS")
//!     ├─ CmdAttr::Service(Vec<ServiceAttr>)               service.rs  ⇄ model::Service / ServiceKey
//!     │     └─ Stats(Vec<StatsAttr>) / Stats64(..)        stats.rs    ⇄ model::Stats
//!     ├─ CmdAttr::Dest(Vec<DestAttr>)                     dest.rs     ⇄ model::Destination / DestKey
//!     ├─ CmdAttr::Daemon(Vec<DaemonAttr>)                 daemon.rs   ⇄ model::SyncDaemon
//!     ├─ CmdAttr::Timeout*(u32)                           attr.rs     ⇄ model::Timeouts
//!     └─ (SET_INFO only) InfoAttr                         attr.rs     ⇄ model::Info
//! ```
//!
//! Decoding a reply that lacks an attribute the kernel always sends is a [`DecodeError`] naming it.
//!
//! [`DecodeError`]: netlink_packet_core::DecodeError

mod attr;
pub mod daemon;
pub mod dest;
mod message;
pub mod service;
pub mod stats;
mod value;

pub use attr::{CmdAttr, InfoAttr};
pub use daemon::DaemonAttr;
pub use dest::DestAttr;
pub use message::{FAMILY_NAME, FAMILY_VERSION, IpvsAttrs, IpvsCmd, IpvsMessage};
pub use service::ServiceAttr;
pub use stats::{Stats64Attr, StatsAttr};
pub use value::{FlagsMask, InetAddr};

#[cfg(test)]
mod tests;
