//! One verdict per object: the agents elect one of them with a Lease, and it writes each VirtualService's kstatus
//! conditions (`Ready`, `Reconciling`, `Stalled`), `observedGeneration` and summary from every node's entry, the
//! Nodes the object selects and the agent pods that run there.
//!
//! ```text
//!   node agents ──status.nodes[] (one entry each, own field manager)──► VirtualService
//!                                                                          │ watch
//!   Nodes (labels) · agent pods (Ready) ──watch──► leader: court ─► judge ─┴─► status.conditions, summary
//!                                                    ▲                         (field manager ipvs-reconciler-status)
//!                         Lease ipvs-reconciler-status (election)
//! ```
//!
//! - [`judge`]: pure: one object, the fleet and the rules in; conditions and summary out.
//! - [`court`]: the leader's memory for one term: since when generations and agents are known, and what must be
//!   written (only what changed).
//! - [`election`]: the Lease, by client-go's rules.
//! - [`leader`]: the watches and writes of a term, and the loop over terms.

pub mod court;
pub mod election;
pub mod judge;
pub mod leader;

#[cfg(test)]
mod fake_api;

pub use leader::{DEFAULT_AGENT_SELECTOR, FIELD_MANAGER, LEASE_NAME, VerdictSettings, run};
