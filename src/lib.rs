//! # ipvs-reconciler
//!
//! Declarative Linux IPVS load balancing: `VirtualService` objects (from files or Kubernetes) in, the minimal set of
//! generic-netlink changes out.
//!
//! # Layout
//!
//! ```text
//!   cli ──► daemon ──► agent ──► engine ──► table (desired table, planner) ──► model (plain IPVS values, ObjectId)
//!    │        │          │          ├─────► ipvs (generic-netlink client + codec) ─┘
//!    │        │          │          └─────► netif (VIP interface) · director (settings)
//!    │        │          └──► health (probes, scheduler)
//!    │        └──► source (files, Kubernetes, admission, the index) ──► api (VirtualService, pools, validation)
//!    └── one-shot commands: daemon::open_engine, source::file, engine
//! ```
//!
//! - [`model`]: plain values for services, destinations, stats, daemons, and who asked for them; the shared vocabulary.
//! - [`ipvs`]: the kernel client. `ipvs::packet` is the pure codec; the rest is the async transport.
//! - [`table`]: the pure planner: `plan(&PlanInput { live, desired, owned, drains, now }) -> Plan`, the VIP plan,
//!   and `apply_ops` (an op's effect on a table in memory). Knows nothing of sockets, sources or the scheduler.
//! - [`api`]: the `VirtualService` and `VirtualServicePool` types (they derive the CRDs) and the validation of one
//!   object.
//! - [`source`]: where desired state comes from (files, Kubernetes; each with a `follow`), which objects the pools
//!   admit, and the one place it is merged: sources feed the `ObjectIndex` (conflicts, held keys, admission,
//!   changed keys), shared with the agent as a `DesiredState`. Produces desired state only.
//! - [`engine`]: one pass: read, plan, guard, apply, remember ownership. Takes a desired table and options; knows
//!   no source. With a VIP interface it keeps the node's addresses as the services need them, and with the
//!   director's settings it keeps timeouts, sysctls and sync daemons on full passes.
//! - [`netif`]: the dummy interface that holds the VIPs, over rtnetlink (list, add, remove host addresses).
//! - [`director`]: the director's own settings, pure: configuration, the checks of sysctls against the services,
//!   the sync-daemon plan.
//! - [`agent`]: the loop (when passes run: quiet period, resync, drains, retries, reconnects), health into weights,
//!   the status board, metrics, and each node's status entries. Knows no source.
//! - [`daemon`]: the one layer that wires a source, the engine, the kernel, the loop, checks, metrics, HTTP and
//!   signals, for `run` and `agent`.
//! - [`health`]: health probes (TCP, HTTP(S), UDP, DNS, gRPC) against one backend, and their scheduler; knows
//!   nothing of Kubernetes or the table.
//! - [`verdict`]: one verdict per object over all nodes (kstatus conditions), written by the agent elected with a
//!   Lease.
//! - [`clock`]: the wall clock.
//! - [`cli`]: the command line: parses, calls, prints.
#![forbid(unsafe_code)]

pub mod agent;
pub mod api;
pub mod cli;
pub mod clock;
pub mod daemon;
pub mod director;
pub mod engine;
pub mod health;
pub mod import;
pub mod ipvs;
pub mod model;
pub mod netif;
pub mod source;
pub mod table;
pub mod verdict;
