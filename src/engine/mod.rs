//! The engine: one reconciliation pass over the kernel. It takes a desired table and pass options (plain values: it
//! knows no source), reads the kernel through the [`Kernel`] trait, plans with `table::plan`, guards, remembers what it
//! owns, applies and recovers from races; with a VIP interface, it keeps the node's addresses as the services need
//! them (added before their services, removed after). What runs passes, and when, is the agent's business (`crate::agent`).

pub mod addresses;
pub mod cleanup;
pub mod director_kernel;
mod director_pass;
// Test doubles: left out of the shipped program (see the `testing` feature in Cargo.toml).
#[cfg(any(test, feature = "testing"))]
pub mod fake;
mod ipvs_kernel;
pub mod kernel;
pub mod ownership;
pub mod reconcile;
pub mod state_lock;
mod vanished;
mod vip_pass;

pub use addresses::{InterfaceListing, NodeAddresses, NodeVips};
pub use cleanup::{CleanupReport, InterfaceFate};
pub use director_kernel::{DirectorError, DirectorKernel, IpvsDirector};
pub use director_pass::{DirectorFailure, DirectorReport};
#[cfg(any(test, feature = "testing"))]
pub use fake::{FakeAddresses, FakeDirector, FakeError, FakeKernel};
pub use kernel::{Kernel, KernelFailure};
pub use reconcile::{
    AddressFailure, AddressReport, Engine, EngineError, EngineErrorOf, OpFailure, PassOptions, PassReport, PassReportOf,
};
pub use state_lock::{LockError, StateLock};

#[cfg(test)]
mod tests;
