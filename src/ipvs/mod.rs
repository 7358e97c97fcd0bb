//! The kernel's IPVS over generic netlink.
//!
//! - [`packet`]: the pure codec (messages, attributes, model conversions).
//! - [`Ipvs`]: the async client (one handle, a few sockets, batched writes, consistent reads).
pub mod packet;

mod connection;
mod error;
mod netns;
mod wire;

pub use error::{IpvsError, KernelError, Request};
pub use netns::{NETNS_RUN_DIR, NetnsSpec, NetnsSpecError};
pub use wire::CAPTURE_DIR_ENV;

mod client;

pub use client::{ConnectOptions, Ipvs};
mod apply;
mod read;
