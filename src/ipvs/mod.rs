//! The kernel's IPVS over generic netlink: a pure codec and an async client.
//!
//! ```text
//!   Ipvs (client.rs)  connect / connect_in_netns / connect_with(ConnectOptions)
//!    │  single ops, info, timeouts, daemons, zero, flush
//!    ├─ apply.rs      apply(&[Op]): batches in one datagram each, several in flight, one result per op
//!    ├─ read.rs       read_table(): service dump + destination dumps on a socket pool, retried if the table moved
//!    ├─ connection.rs one socket: options (buffer, CAP_ACK, EXT_ACK), netlink-proto task, answers by sequence
//!    ├─ wire.rs       what travels on the socket; the codec with the capture hook (IPVS_RECONCILER_CAPTURE_DIR)
//!    ├─ netns.rs      sockets created in another network namespace (setns in a short-lived thread)
//!    ├─ error.rs      IpvsError: typed kernel refusals with the request they answered
//!    └─ packet/       the pure codec: IpvsMessage (GenlFamily "IPVS"), one attribute enum per nest
//! ```
//!
//! Every IPVS command needs `CAP_NET_ADMIN` in the initial user namespace; without it every call fails with
//! [`IpvsError::PermissionDenied`]. A kernel without IPVS fails [`Ipvs::connect`] with
//! [`IpvsError::Unavailable`]; it is never mistaken for an empty table.
pub mod packet;

mod apply;
mod client;
mod connection;
mod error;
// Injected netlink faults for tests (left out of the shipped program, as `engine::fake`).
#[cfg(any(test, feature = "testing"))]
pub mod faults;
pub(crate) mod netns;
mod read;
mod wire;

pub use client::{ConnectOptions, Ipvs};
pub use error::{IpvsError, KernelError, Request};
pub use netns::{NETNS_RUN_DIR, NetnsSpec, NetnsSpecError};
pub use wire::CAPTURE_DIR_ENV;

/// The read's decode path fed with raw replies (the fuzz target `netlink_decoder`); not part of the API.
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use read::{Replayed, replay_read};
