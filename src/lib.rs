//! # ipvs-reconciler
//!
//! Declarative Linux IPVS load balancing: `VirtualService` objects (from files or Kubernetes) in, the minimal set of
//! generic-netlink changes out.
//!
//! # Layout
//!
//! ```text
//!   cli ──► engine ──► source (files, later Kubernetes) ──► api (VirtualService, validation)
//!              │                                                │
//!              ├──► ipvs (generic-netlink client + codec)       ▼
//!              └──► table (desired table, planner) ──────► model (plain IPVS types)
//! ```
//!
//! - [`model`]: plain values for services, destinations, stats, daemons; the shared vocabulary.
//! - [`ipvs`]: the kernel client. `ipvs::packet` is the pure codec; the rest is the async transport.
//! - [`table`]: the pure planner: `plan(live, desired, owned) -> ops`. Knows nothing of sockets.
//! - [`api`]: the `VirtualService` types (they derive the CRD) and their validation into desired table entries.
//! - [`source`]: where desired state comes from (manifest files; Kubernetes later). Produces desired state only.
//! - [`engine`]: the only layer that knows all others: read, plan, guard, apply, remember ownership.
//! - [`cli`]: the command line.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod engine;
pub mod ipvs;
pub mod model;
pub mod source;
pub mod table;
