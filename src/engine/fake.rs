//! The in-memory stand-ins for the engine's three seams ([`super::Kernel`], [`super::NodeAddresses`],
//! [`super::DirectorKernel`]), with the real kernel's refusals and hooks to inject failures and other writers.
//! The engine's and agent's decisions are tested against them in milliseconds; the VM tests (tests/kernel) hold the
//! real implementations to the same rules.
//!
//! Not part of the shipped program: compiled for the crate's own tests, and for other targets (benches, tools) only
//! with the `testing` feature (see Cargo.toml).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use super::addresses::{InterfaceListing, Listing, NodeAddresses};
use super::director_kernel::{DirectorError, DirectorKernel};
use super::kernel::{Kernel, KernelFailure};
use crate::director::Sysctl;
use crate::model::{DaemonState, Op, ServiceEntry, ServiceKey, SyncDaemon, Table, Timeouts};
use crate::netif::{NetifError, host_prefix};
use crate::table::{ApplyError, apply_op};

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

/// One change to the fake interface, with the IPVS services that existed when it was made (to check the order
/// of address and service changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEvent {
    /// Added (`true`) or removed.
    pub added: bool,
    /// The address.
    pub addr: IpAddr,
    /// The kernel's services at that moment.
    pub services: BTreeSet<ServiceKey>,
}

/// An in-memory interface for engine and agent tests.
#[derive(Default)]
pub struct FakeAddresses {
    /// The interface's addresses and their prefix lengths.
    pub listing: Mutex<Listing>,
    /// When set, listings fail.
    pub fail_list: AtomicBool,
    /// Adds and removals of these addresses are refused (EINVAL).
    pub refuse: Mutex<BTreeSet<IpAddr>>,
    /// Every change made, in order.
    pub events: Mutex<Vec<AddressEvent>>,
    /// Listings made.
    pub listings: std::sync::atomic::AtomicUsize,
    /// The kernel whose services each event records, when set.
    pub kernel: Option<Arc<FakeKernel>>,
    /// The interface is missing: a listing that may make it does (a new index), one that may not lists nothing.
    pub absent: AtomicBool,
    /// How many times the interface was made here: its index is one more.
    pub made: std::sync::atomic::AtomicU32,
    /// The node's addresses on other interfaces (a VIP VRRP put on `eth0`).
    pub elsewhere: Mutex<BTreeSet<IpAddr>>,
}

impl FakeAddresses {
    /// A fake interface whose events record the services of `kernel`.
    pub fn watching(kernel: Arc<FakeKernel>) -> Self {
        FakeAddresses { kernel: Some(kernel), ..Default::default() }
    }

    /// The addresses now on the interface.
    pub fn addrs(&self) -> BTreeSet<IpAddr> {
        self.listing.lock().map(|l| l.keys().copied().collect()).unwrap_or_default()
    }

    /// The interface's index now (`None`: missing).
    pub fn index(&self) -> Option<u32> {
        (!self.absent.load(Ordering::SeqCst)).then(|| self.made.load(Ordering::SeqCst) + 1)
    }

    /// Takes the events so far.
    pub fn take_events(&self) -> Vec<AddressEvent> {
        self.events.lock().map(|mut e| std::mem::take(&mut *e)).unwrap_or_default()
    }

    fn change(&self, addr: IpAddr, added: bool) -> Result<(), NetifError> {
        let op = if added { "add" } else { "remove" };
        if self.refuse.lock().is_ok_and(|r| r.contains(&addr)) {
            return Err(refusal(op, Some(addr), libc::EINVAL));
        }
        let Ok(mut listing) = self.listing.lock() else { return Err(refusal(op, Some(addr), libc::EIO)) };
        if added {
            if listing.contains_key(&addr) {
                return Err(refusal(op, Some(addr), libc::EEXIST));
            }
            listing.insert(addr, host_prefix(addr));
        } else if listing.get(&addr) == Some(&host_prefix(addr)) {
            listing.remove(&addr);
        } else {
            return Err(refusal(op, Some(addr), libc::EADDRNOTAVAIL));
        }
        let services = self.kernel.as_ref().map(|k| k.snapshot().services.into_keys().collect()).unwrap_or_default();
        if let Ok(mut events) = self.events.lock() {
            events.push(AddressEvent { added, addr, services });
        }
        Ok(())
    }
}

/// A kernel refusal with errno `errno`, as rtnetlink reports one.
fn refusal(op: &'static str, addr: Option<IpAddr>, errno: i32) -> NetifError {
    let mut message = netlink_packet_core::ErrorMessage::default();
    message.code = std::num::NonZeroI32::new(-errno);
    NetifError::Netlink { name: "ipvs0".into(), op, addr, source: Box::new(rtnetlink::Error::NetlinkError(message)) }
}

impl NodeAddresses for FakeAddresses {
    fn interface(&self) -> &str {
        "ipvs0"
    }

    fn list(&self, create: bool) -> BoxFuture<'_, Result<InterfaceListing, NetifError>> {
        let result = if self.fail_list.load(Ordering::SeqCst) {
            Err(NetifError::Netlink {
                name: "ipvs0".into(),
                op: "list addresses",
                addr: None,
                source: Box::new(rtnetlink::Error::RequestFailed),
            })
        } else {
            self.listings.fetch_add(1, Ordering::SeqCst);
            let made = create && self.absent.swap(false, Ordering::SeqCst);
            if made {
                self.made.fetch_add(1, Ordering::SeqCst);
            }
            let addresses = match self.index() {
                Some(_) => self.listing.lock().map(|l| l.clone()).unwrap_or_default(),
                None => Listing::new(),
            };
            let elsewhere = self.elsewhere.lock().map(|e| e.clone()).unwrap_or_default();
            Ok(InterfaceListing { index: self.index(), made, addresses, elsewhere })
        };
        Box::pin(std::future::ready(result))
    }

    fn add(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(std::future::ready(self.change(addr, true)))
    }

    fn remove(&self, addr: IpAddr) -> BoxFuture<'_, Result<(), NetifError>> {
        Box::pin(std::future::ready(self.change(addr, false)))
    }

    fn delete_interface(&self, index: u32) -> BoxFuture<'_, Result<bool, NetifError>> {
        let deleted = self.index() == Some(index);
        if deleted {
            // Its addresses go with it, as in the kernel.
            self.absent.store(true, Ordering::SeqCst);
            if let Ok(mut listing) = self.listing.lock() {
                listing.clear();
            }
        }
        Box::pin(std::future::ready(Ok(deleted)))
    }
}

/// In-memory director settings for engine tests.
#[derive(Debug)]
pub struct FakeDirector {
    /// The timeouts.
    pub timeouts: Mutex<Timeouts>,
    /// The running daemons.
    pub daemons: Mutex<Vec<SyncDaemon>>,
    /// The sysctls.
    pub sysctls: Mutex<BTreeMap<Sysctl, u32>>,
    /// Every change, in order (`set-timeouts`, `start Master`, `stop Backup`, `sysctl NAME=V`).
    pub log: Mutex<Vec<String>>,
    /// When set, reads of the daemons fail.
    pub fail_daemon_reads: std::sync::atomic::AtomicBool,
    /// The node's interfaces.
    pub links: Mutex<Vec<crate::netif::NodeLink>>,
}

impl Default for FakeDirector {
    fn default() -> Self {
        FakeDirector {
            timeouts: Mutex::new(Timeouts { tcp: 900, tcp_fin: 120, udp: 300 }),
            daemons: Mutex::default(),
            sysctls: Mutex::new(Sysctl::ALL.into_iter().map(|s| (s, 0)).collect()),
            log: Mutex::default(),
            fail_daemon_reads: Default::default(),
            links: Mutex::default(),
        }
    }
}

impl FakeDirector {
    fn note(&self, what: String) {
        if let Ok(mut log) = self.log.lock() {
            log.push(what);
        }
    }

    /// Takes the change log.
    pub fn take_log(&self) -> Vec<String> {
        self.log.lock().map(|mut l| std::mem::take(&mut *l)).unwrap_or_default()
    }
}

fn ready<T: Send + 'static>(value: Result<T, DirectorError>) -> BoxFuture<'static, Result<T, DirectorError>> {
    Box::pin(std::future::ready(value))
}

fn poisoned() -> DirectorError {
    DirectorError::Injected("poisoned".into())
}

impl DirectorKernel for FakeDirector {
    fn timeouts(&self) -> BoxFuture<'_, Result<Timeouts, DirectorError>> {
        ready(self.timeouts.lock().map(|t| *t).map_err(|_| poisoned()))
    }

    fn set_timeouts(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<(), DirectorError>> {
        self.note(format!("set-timeouts {} {} {}", timeouts.tcp, timeouts.tcp_fin, timeouts.udp));
        let keep = |new: u32, old: u32| if new != 0 { new } else { old };
        let result = self.timeouts.lock().map_err(|_| poisoned()).map(|mut t| {
            *t = Timeouts {
                tcp: keep(timeouts.tcp, t.tcp),
                tcp_fin: keep(timeouts.tcp_fin, t.tcp_fin),
                udp: keep(timeouts.udp, t.udp),
            };
        });
        ready(result)
    }

    fn daemons(&self) -> BoxFuture<'_, Result<Vec<SyncDaemon>, DirectorError>> {
        if self.fail_daemon_reads.load(std::sync::atomic::Ordering::SeqCst) {
            return ready(Err(DirectorError::Injected("read the sync daemons".into())));
        }
        ready(self.daemons.lock().map(|d| d.clone()).map_err(|_| poisoned()))
    }

    fn start_daemon(&self, daemon: SyncDaemon) -> BoxFuture<'_, Result<(), DirectorError>> {
        self.note(format!("start {:?} {}", daemon.state, daemon.interface));
        let result = self.daemons.lock().map_err(|_| poisoned()).and_then(|mut running| {
            if running.iter().any(|d| d.state == daemon.state) {
                return Err(DirectorError::Injected(format!("{:?} already running", daemon.state)));
            }
            running.push(SyncDaemon { port: daemon.port.or(Some(8848)), ttl: daemon.ttl.or(Some(1)), ..daemon });
            Ok(())
        });
        ready(result)
    }

    fn stop_daemon(&self, state: DaemonState) -> BoxFuture<'_, Result<(), DirectorError>> {
        self.note(format!("stop {state:?}"));
        ready(self.daemons.lock().map_err(|_| poisoned()).map(|mut running| running.retain(|d| d.state != state)))
    }

    fn read_sysctls(&self, sysctls: Vec<Sysctl>) -> BoxFuture<'_, Result<BTreeMap<Sysctl, u32>, DirectorError>> {
        let result = self
            .sysctls
            .lock()
            .map(|values| sysctls.iter().filter_map(|s| values.get(s).map(|v| (*s, *v))).collect())
            .map_err(|_| poisoned());
        ready(result)
    }

    fn write_sysctl(&self, sysctl: Sysctl, value: u32) -> BoxFuture<'_, Result<(), DirectorError>> {
        self.note(format!("sysctl {sysctl}={value}"));
        ready(self.sysctls.lock().map_err(|_| poisoned()).map(|mut values| {
            values.insert(sysctl, value);
        }))
    }

    fn node_links(&self) -> BoxFuture<'_, Result<Vec<crate::netif::NodeLink>, DirectorError>> {
        ready(self.links.lock().map(|links| links.clone()).map_err(|_| poisoned()))
    }
}
