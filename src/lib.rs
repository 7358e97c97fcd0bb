//! # ipvs-reconciler
//!
//! Declarative Linux IPVS load balancing: `VirtualService` objects (from files or Kubernetes) in, the minimal set of
//! generic-netlink changes out.
//!
//! # Layout
//!
//! ```text
//!   cli ──► agent ──► engine ──► table (desired table, planner) ──► model (plain IPVS values, ObjectId)
//!             │          └─────► ipvs (generic-netlink client + codec) ─┘
//!             └──► source (files, later Kubernetes) ──► api (VirtualService, validation)
//! ```
//!
//! - [`model`]: plain values for services, destinations, stats, daemons, and who asked for them; the shared vocabulary.
//! - [`ipvs`]: the kernel client. `ipvs::packet` is the pure codec; the rest is the async transport.
//! - [`table`]: the pure planner: `plan(live, desired, owned) -> ops`. Knows nothing of sockets or sources.
//! - [`api`]: the `VirtualService` types (they derive the CRD) and the validation of one object.
//! - [`source`]: where desired state comes from, and the one place it is merged: sources feed the `ObjectIndex`
//!   (conflicts, held keys, changed keys), shared with the agent as a `DesiredState`. Produces desired state only.
//! - [`engine`]: one pass: read, plan, guard, apply, remember ownership. Takes a desired table and options; knows
//!   no source. With a VIP interface it keeps the node's addresses as the services need them, and with the
//!   director's settings it keeps timeouts, sysctls and sync daemons on full passes.
//! - [`netif`]: the dummy interface that holds the VIPs, over rtnetlink (list, add, remove host addresses).
//! - [`director`]: the director's own settings, pure: configuration, the checks of sysctls against the services,
//!   the sync-daemon plan.
//! - [`agent`]: the only layer that wires sources, engine and kernel: when passes run (quiet period, resync, drains,
//!   retries, reconnects).
//! - [`health`]: health probes (TCP, HTTP(S), UDP, DNS, gRPC) against one backend; knows nothing of Kubernetes or
//!   the table.
//! - [`cli`]: the command line; wires the agent and prints.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod director;
pub mod engine;
pub mod health;
pub mod ipvs;
pub mod model;
pub mod netif;
pub mod source;
pub mod table;
