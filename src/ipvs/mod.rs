//! The kernel's IPVS over generic netlink.
//!
//! - [`packet`]: the pure codec (messages, attributes, model conversions).
pub mod packet;

mod error;

pub use error::{IpvsError, KernelError, Request};
