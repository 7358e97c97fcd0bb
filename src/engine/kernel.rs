//! The kernel side as the engine sees it: read the table, read some services, apply operations.
//!
//! A trait so that the engine's decisions (ownership, guards, races, incremental passes) are tested against an
//! in-memory table in milliseconds; the real client implements it in `engine::ipvs_kernel`, and the VM tests prove
//! that what the fake stands in for holds on the real kernel.

use std::future::Future;
use std::sync::Mutex;

use crate::model::{Op, ServiceEntry, ServiceKey, Table};
use crate::table::{ApplyError, apply_op};

/// What the engine needs from the kernel.
pub trait Kernel: Send + Sync {
    /// Error type of every call.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Reads every service with its destinations. Must fail rather than return a partial table.
    fn read_table(&self) -> impl Future<Output = Result<Table, Self::Error>> + Send;

    /// Reads one service and its destinations; `Ok(None)` when the kernel has no such service.
    fn read_service(&self, key: &ServiceKey) -> impl Future<Output = Result<Option<ServiceEntry>, Self::Error>> + Send;

    /// Applies operations in order; one result per operation. A failure does not stop the operations after it.
    fn apply(&self, ops: &[Op]) -> impl Future<Output = Vec<Result<(), Self::Error>>> + Send;

    /// Whether an error means another writer changed the entry under us (already exists, no such service or
    /// destination): the engine then re-reads that service and plans again.
    fn is_race(error: &Self::Error) -> bool;

    /// Whether an error of a delete means the entry is already gone (so it is no longer ours to remember).
    fn is_gone(error: &Self::Error) -> bool;
}

/// Why the in-memory kernel refused something.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The same refusal the kernel would give.
    #[error(transparent)]
    Refused(#[from] ApplyError),
    /// A read that fails (to test that failed reads never lead to deletes).
    #[error("read failed (injected)")]
    ReadFailed,
}

/// A change made by another writer, injected into the fake kernel.
pub type OtherWriter = Box<dyn FnOnce(&mut Table) + Send>;

/// An in-memory kernel with the real kernel's refusals, for fast engine tests.
#[derive(Default)]
pub struct FakeKernel {
    /// The table, as the kernel would hold it.
    pub table: Mutex<Table>,
    /// When set, every read fails.
    pub fail_reads: std::sync::atomic::AtomicBool,
    /// Every operation applied, in order, successful or not.
    pub log: Mutex<Vec<Op>>,
    /// Full-table reads made.
    pub full_reads: std::sync::atomic::AtomicUsize,
    /// Run once at the start of the next `apply`: another writer acting between our read and our write.
    pub before_next_apply: Mutex<Option<OtherWriter>>,
}

impl std::fmt::Debug for FakeKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKernel").field("table", &self.table).finish_non_exhaustive()
    }
}

impl FakeKernel {
    /// A fake kernel holding `table`.
    pub fn with_table(table: Table) -> Self {
        FakeKernel { table: Mutex::new(table), ..Default::default() }
    }

    /// A copy of the current table.
    pub fn snapshot(&self) -> Table {
        self.table.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Takes the operation log.
    pub fn take_log(&self) -> Vec<Op> {
        self.log.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
    }

    fn reads_fail(&self) -> bool {
        self.fail_reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Kernel for FakeKernel {
    type Error = FakeError;

    async fn read_table(&self) -> Result<Table, FakeError> {
        if self.reads_fail() {
            return Err(FakeError::ReadFailed);
        }
        self.full_reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.snapshot())
    }

    async fn read_service(&self, key: &ServiceKey) -> Result<Option<ServiceEntry>, FakeError> {
        if self.reads_fail() {
            return Err(FakeError::ReadFailed);
        }
        Ok(self.snapshot().services.get(key).cloned())
    }

    async fn apply(&self, ops: &[Op]) -> Vec<Result<(), FakeError>> {
        let Ok(mut table) = self.table.lock() else { return Vec::new() };
        if let Some(other_writer) = self.before_next_apply.lock().ok().and_then(|mut hook| hook.take()) {
            other_writer(&mut table);
        }
        if let Ok(mut log) = self.log.lock() {
            log.extend(ops.iter().cloned());
        }
        ops.iter().map(|op| apply_op(&mut table, op).map_err(FakeError::from)).collect()
    }

    fn is_race(error: &FakeError) -> bool {
        matches!(error, FakeError::Refused(_))
    }

    fn is_gone(error: &FakeError) -> bool {
        matches!(error, FakeError::Refused(ApplyError::NoSuchService { .. } | ApplyError::NoSuchDest { .. }))
    }
}
