//! The kernel side as the engine sees it: read the table, read some services, apply operations.
//!
//! A trait so that the engine's decisions (ownership, guards, races, incremental passes) are tested against an
//! in-memory table in milliseconds; the real client implements it in `engine::ipvs_kernel`, and the VM tests prove
//! that what the fake stands in for holds on the real kernel.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Mutex;

use crate::model::{Op, ServiceEntry, ServiceKey, Table};
use crate::table::{ApplyError, apply_op};

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

/// Why the in-memory kernel refused something.
#[derive(Debug, thiserror::Error)]
pub enum FakeError {
    /// The same refusal the kernel would give.
    #[error(transparent)]
    Refused(#[from] ApplyError),
    /// A read that fails (to test that failed reads never lead to deletes).
    #[error("read failed (injected)")]
    ReadFailed,
    /// The connection closed before the answer came (injected): the operation may or may not have been applied.
    #[error("connection closed (injected)")]
    ConnectionClosed,
    /// The kernel refused an argument (injected; EINVAL): not a race, so it is not retried.
    #[error("{0}: invalid argument (injected)")]
    InvalidArgument(String),
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
    /// Services the full read's dump steps over, as the kernel's can when another namespace deletes services
    /// during the dump; like the real client, the read still returns those the caller expects.
    pub dump_skips: Mutex<BTreeSet<ServiceKey>>,
    /// Run once at the start of the next `apply`: another writer acting between our read and our write.
    pub before_next_apply: Mutex<Option<OtherWriter>>,
    /// Operations on these services are refused as invalid (EINVAL), as the kernel refuses what it cannot hold.
    pub refuse_services: Mutex<std::collections::BTreeSet<ServiceKey>>,
    /// Operations on these services are refused as races (EEXIST), every time: another writer that keeps winning.
    pub race_services: Mutex<std::collections::BTreeSet<ServiceKey>>,
    /// When set, the connection is closed: reads fail, and writes are carried out but answered with
    /// `ConnectionClosed` (the worst case: done, and not known to be done).
    pub closed: std::sync::atomic::AtomicBool,
    /// When set, `is_connected` says yes even while closed (a connection whose loss only its errors tell).
    pub hide_closed: std::sync::atomic::AtomicBool,
    /// When set, the next `apply` closes the connection as it starts (the ops are still carried out).
    pub close_on_next_apply: std::sync::atomic::AtomicBool,
    /// `apply` answers only this many operations (the rest get no result at all), when set.
    pub answer_at_most: Mutex<Option<usize>>,
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

    fn reads_fail(&self) -> Option<FakeError> {
        if self.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Some(FakeError::ConnectionClosed);
        }
        self.fail_reads.load(std::sync::atomic::Ordering::SeqCst).then_some(FakeError::ReadFailed)
    }
}

impl Kernel for FakeKernel {
    type Error = FakeError;

    async fn read_table(&self, expected: &BTreeSet<ServiceKey>) -> Result<Table, FakeError> {
        if let Some(e) = self.reads_fail() {
            return Err(e);
        }
        self.full_reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut table = self.snapshot();
        let skips = self.dump_skips.lock().map(|s| s.clone()).unwrap_or_default();
        table.services.retain(|key, _| !skips.contains(key) || expected.contains(key));
        Ok(table)
    }

    async fn read_service(&self, key: &ServiceKey) -> Result<Option<ServiceEntry>, FakeError> {
        if let Some(e) = self.reads_fail() {
            return Err(e);
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
        let refused = self.refuse_services.lock().map(|r| r.clone()).unwrap_or_default();
        let raced = self.race_services.lock().map(|r| r.clone()).unwrap_or_default();
        if self.close_on_next_apply.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let closed = self.closed.load(std::sync::atomic::Ordering::SeqCst);
        let mut results: Vec<Result<(), FakeError>> = ops
            .iter()
            .map(|op| {
                if refused.contains(op.service_key()) {
                    return Err(FakeError::InvalidArgument(op.to_string()));
                }
                if raced.contains(op.service_key()) {
                    return Err(FakeError::Refused(ApplyError::ServiceExists { service: *op.service_key() }));
                }
                let result = apply_op(&mut table, op).map_err(FakeError::from);
                if closed { Err(FakeError::ConnectionClosed) } else { result }
            })
            .collect();
        if let Some(most) = self.answer_at_most.lock().ok().and_then(|m| *m) {
            results.truncate(most);
        }
        results
    }

    fn is_connected(&self) -> bool {
        self.hide_closed.load(std::sync::atomic::Ordering::SeqCst)
            || !self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl FakeKernel {
    /// Opens the connection again (what a reconnect finds).
    pub fn reopen(&self) {
        self.closed.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl KernelFailure for FakeError {
    fn is_race(&self) -> bool {
        matches!(self, FakeError::Refused(_))
    }

    fn is_gone(&self) -> bool {
        matches!(self, FakeError::Refused(ApplyError::NoSuchService { .. } | ApplyError::NoSuchDest { .. }))
    }

    fn outcome_unknown(&self) -> bool {
        matches!(self, FakeError::ConnectionClosed)
    }

    fn connection_lost(&self) -> bool {
        matches!(self, FakeError::ConnectionClosed)
    }

    fn errno(&self) -> Option<i32> {
        match self {
            FakeError::Refused(ApplyError::ServiceExists { .. } | ApplyError::DestExists { .. }) => Some(libc::EEXIST),
            FakeError::Refused(ApplyError::NoSuchService { .. }) => Some(libc::ESRCH),
            FakeError::Refused(ApplyError::NoSuchDest { .. }) => Some(libc::ENOENT),
            FakeError::InvalidArgument(_) => Some(libc::EINVAL),
            _ => None,
        }
    }

    fn metric_label(&self) -> &'static str {
        match self {
            FakeError::Refused(ApplyError::ServiceExists { .. } | ApplyError::DestExists { .. }) => "already_exists",
            FakeError::Refused(ApplyError::NoSuchService { .. }) => "no_such_service",
            FakeError::Refused(ApplyError::NoSuchDest { .. }) => "no_such_destination",
            FakeError::ReadFailed => "read_failed",
            FakeError::InvalidArgument(_) => "invalid_argument",
            FakeError::ConnectionClosed => "connection_closed",
        }
    }
}
