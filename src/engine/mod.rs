//! The engine: one reconciliation pass over the kernel. It takes a desired table and pass options (plain values: it
//! knows no source), reads the kernel through the [`Kernel`] trait, plans with `table::plan`, guards, remembers what it
//! owns, applies and recovers from races. What runs passes, and when, is the agent's business (`crate::agent`).

mod ipvs_kernel;
pub mod kernel;
pub mod reconcile;
pub mod state;

pub use kernel::{FakeError, FakeKernel, Kernel, KernelFailure};
pub use reconcile::{Engine, EngineError, EngineErrorOf, OpFailure, PassOptions, PassReport, PassReportOf};

#[cfg(test)]
mod tests;
