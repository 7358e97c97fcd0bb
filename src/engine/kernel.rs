//! The kernel side as the engine sees it: read the table, read some services, apply operations.
//!
//! A trait so that the engine's decisions (ownership, guards, races, incremental passes) are tested against an
//! in-memory table in milliseconds (`engine::fake::FakeKernel`); the real client implements it in
//! `engine::ipvs_kernel`, and the VM tests prove that what the fake stands in for holds on the real kernel.

use std::collections::BTreeSet;
use std::future::Future;

use crate::model::{Op, ServiceEntry, ServiceKey, Table};

/// What the engine needs to know of a kernel error to decide, and what status, Events and metrics say of it.
pub trait KernelFailure: std::error::Error + Send + Sync + 'static {
    /// Whether another writer changed the entry under us (already exists, no such service or destination): the
    /// engine then re-reads that service and plans again.
    fn is_race(&self) -> bool;

    /// Whether a delete failed because the entry is already gone (so it is no longer ours to remember).
    fn is_gone(&self) -> bool;

    /// Whether the request may have been carried out although it failed: the answer never came (connection
    /// closed, reply lost, timeout). The engine's picture of the table is then unknown and must be read again.
    fn outcome_unknown(&self) -> bool;

    /// Whether the connection to the kernel is gone: a new one is needed before anything else can work.
    fn connection_lost(&self) -> bool;

    /// The errno of a kernel refusal, if it is one.
    fn errno(&self) -> Option<i32>;

    /// A short stable label for metrics and status reasons (`invalid_argument`, `timeout`, ...).
    fn metric_label(&self) -> &'static str;
}

/// What the engine needs from the kernel.
pub trait Kernel: Send + Sync {
    /// Error type of every call.
    type Error: KernelFailure;

    /// Reads every service with its destinations. Must fail rather than return a partial table, and must hold
    /// every service of `expected` that exists: the engine decides from absence (an owned service absent is not
    /// deleted, a desired one absent is added), and the kernel's service dump alone can skip services while any
    /// namespace deletes some (see `ipvs::read`).
    fn read_table(&self, expected: &BTreeSet<ServiceKey>) -> impl Future<Output = Result<Table, Self::Error>> + Send;

    /// Reads one service and its destinations; `Ok(None)` when the kernel has no such service.
    fn read_service(&self, key: &ServiceKey) -> impl Future<Output = Result<Option<ServiceEntry>, Self::Error>> + Send;

    /// Applies operations in order; one result per operation. A failure does not stop the operations after it.
    fn apply(&self, ops: &[Op]) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send;

    /// Whether the connection still works; when it does not, a new one is needed.
    fn is_connected(&self) -> bool {
        true
    }
}

/// A shared kernel (tests keep a handle on the fake while the agent runs it).
impl<K: Kernel> Kernel for std::sync::Arc<K> {
    type Error = K::Error;

    fn read_table(&self, expected: &BTreeSet<ServiceKey>) -> impl Future<Output = Result<Table, Self::Error>> + Send {
        K::read_table(self, expected)
    }

    fn read_service(&self, key: &ServiceKey) -> impl Future<Output = Result<Option<ServiceEntry>, Self::Error>> + Send {
        K::read_service(self, key)
    }

    fn apply(&self, ops: &[Op]) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send {
        K::apply(self, ops)
    }

    fn is_connected(&self) -> bool {
        K::is_connected(self)
    }
}
