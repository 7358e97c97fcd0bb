//! One reconciliation pass: read, plan, guard, remember, apply, recover from races.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::PathBuf;

use tracing::{info, warn};

use super::addresses::{Listing, NodeAddresses};
use super::kernel::{Kernel, KernelFailure};
use super::ownership::{Ownership, StateError};
use crate::health::{HealthState, TargetKey};
use crate::model::{ObjectId, Op, ServiceKey, Table};
use crate::netif::NetifError;
use crate::table::{DesiredTable, Drains, Plan, PlanInput, apply_op, plan};

/// A pass may delete at most this many owned services without `allow_mass_delete`, however small the table.
pub const MASS_DELETE_MIN: usize = 10;

/// How many times operations refused because another writer got there first are re-planned.
pub const RACE_ROUNDS: usize = 3;

/// Errors that stop a pass. `E` is the kernel's error type, kept whole (errno, metric label) for status and metrics.
#[derive(Debug, thiserror::Error)]
pub enum EngineError<E: std::error::Error + 'static> {
    /// Reading the kernel failed: nothing is planned, so nothing is deleted because of it.
    #[error("reading the IPVS table failed; nothing was changed: {0}")]
    Read(#[source] E),
    /// Listing the VIP interface's addresses failed: nothing is planned, so nothing is changed because of it.
    #[error("listing the VIP interface's addresses failed; nothing was changed: {0}")]
    Addresses(#[source] NetifError),
    /// The ownership memory could not be read or written; changing the kernel without it could leak or steal services.
    #[error(transparent)]
    State(#[from] StateError),
    /// The pass would delete most of what this program owns: likely an emptied or truncated source.
    #[error(
        "refusing to delete {deletes} of the {owned} services this program owns in one pass (more than half): if this is \
         intended, run again with --allow-mass-delete"
    )]
    MassDelete {
        /// Services the pass would delete.
        deletes: usize,
        /// Services owned before the pass.
        owned: usize,
    },
}

/// Knobs of a pass.
#[derive(Debug, Clone, Default)]
pub struct PassOptions {
    /// Let a pass delete more than half of the owned services.
    pub allow_mass_delete: bool,
    /// Do not delete whole services in this pass (set when the sources had an object so broken that the service it
    /// asks for is unknown: that service must keep running on its last good configuration, not vanish).
    pub hold_service_deletes: bool,
    /// Services left exactly as they are in this pass: those of objects that are invalid for now (the object still
    /// names its service, so only that service is frozen).
    pub frozen: BTreeSet<ServiceKey>,
}

impl<E: std::error::Error + 'static> EngineError<E> {
    /// A short stable label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            EngineError::Read(_) => "read",
            EngineError::Addresses(_) => "address_read",
            EngineError::State(_) => "state",
            EngineError::MassDelete { .. } => "mass_delete",
        }
    }
}

/// An operation the kernel refused, with the object that asked for it.
#[derive(Debug)]
pub struct OpFailure<E> {
    /// The operation.
    pub op: Op,
    /// The object whose service it belongs to (`None` for a service no object asks for any more: its deletion).
    pub object: Option<ObjectId>,
    /// The kernel's error, with its context.
    pub error: E,
}

/// What a pass did.
#[derive(Debug)]
pub struct PassReport<E> {
    /// The plan of the first round (what `plan` shows).
    pub plan: Plan,
    /// Operations the kernel accepted, every round included, in the order they were applied.
    pub applied: Vec<Op>,
    /// The services `applied` touched, as they were observed before the pass changed them (absent: the service did
    /// not exist). Replaying `applied` over it gives each operation's "before", for describing edits.
    pub before: Table,
    /// Operations the kernel refused in the end.
    pub failures: Vec<OpFailure<E>>,
    /// Operations the kernel client gave no answer for (their outcome is unknown).
    pub unanswered: Vec<Op>,
    /// Services whose operations were held back because the sources had invalid objects.
    pub held: Vec<ServiceKey>,
    /// Rounds of re-planning after races with other writers.
    pub race_rounds: usize,
    /// What the pass did to the VIP interface's addresses.
    pub addresses: AddressReport,
    /// What a full pass did to the director's settings and found of them.
    pub director: super::director_pass::DirectorReport,
    /// Owned services the last pass left in the kernel that a full read found missing: another program removed
    /// them in between (this pass adds them back).
    pub vanished: Vec<ServiceKey>,
}

/// What a pass did to the VIP interface's addresses.
#[derive(Debug, Default)]
pub struct AddressReport {
    /// Addresses added, in order.
    pub added: Vec<IpAddr>,
    /// Addresses removed, in order.
    pub removed: Vec<IpAddr>,
    /// Changes the kernel refused or did not answer.
    pub failures: Vec<AddressFailure>,
}

/// An address change that failed, with the objects whose services need the address.
#[derive(Debug)]
pub struct AddressFailure {
    /// The address.
    pub addr: IpAddr,
    /// Whether it was being added (else removed).
    pub adding: bool,
    /// The declared services that need it (none when it was being removed).
    pub services: Vec<ServiceKey>,
    /// Why.
    pub error: NetifError,
}

impl<E> Default for PassReport<E> {
    fn default() -> Self {
        PassReport {
            plan: Plan::default(),
            applied: Vec::new(),
            before: Table::default(),
            failures: Vec::new(),
            unanswered: Vec::new(),
            held: Vec::new(),
            race_rounds: 0,
            addresses: AddressReport::default(),
            director: Default::default(),
            vanished: Vec::new(),
        }
    }
}

impl<E: KernelFailure> PassReport<E> {
    /// Whether every planned operation was applied.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
            && self.unanswered.is_empty()
            && self.addresses.failures.is_empty()
            && self.director.failures.is_empty()
    }

    /// Whether some operation may or may not have been applied (no answer came): the kernel must be read again
    /// before the next plan.
    pub fn outcome_unknown(&self) -> bool {
        !self.unanswered.is_empty() || self.failures.iter().any(|f| f.error.outcome_unknown())
    }

    /// Whether the connection to the kernel was lost during the pass.
    pub fn connection_lost(&self) -> bool {
        self.failures.iter().any(|f| f.error.connection_lost())
    }
}

/// The engine: a kernel, the ownership memory, and the table as last observed.
pub struct Engine<K> {
    kernel: K,
    pub(super) ownership: Ownership,
    pub(super) state_path: PathBuf,
    /// The kernel's table as last read, kept up to date with what this engine applied since; `None` until the first
    /// full read. Incremental passes plan against it instead of reading the whole table again.
    pub(super) observed: Option<Table>,
    /// The VIP interface, when this engine manages the node's addresses.
    pub(super) addresses: Option<Box<dyn NodeAddresses>>,
    /// The interface's addresses as last listed, kept up to date with the changes made since (as `observed`);
    /// `None` until the first listing and whenever a change's outcome is unknown.
    pub(super) listed: Option<Listing>,
    /// The node's addresses on its other interfaces, as of the last listing: VIPs among them are used as they are.
    pub(super) elsewhere: BTreeSet<IpAddr>,
    /// The director's settings, when this engine keeps them.
    pub(super) director: Option<super::director_pass::Director>,
    /// The services already logged as removed by another program (each is logged once).
    pub(super) vanished_logged: BTreeSet<ServiceKey>,
    /// A save of the ownership failed since the last one that succeeded: the file may lack what memory holds (a
    /// service remembered for a pass that then failed to save). The next pass saves before it changes the kernel,
    /// whatever it finds new, or it would create what only memory knows it owns.
    unsaved: bool,
}

/// The engine's error for kernel `K`.
pub type EngineErrorOf<K> = EngineError<<K as Kernel>::Error>;
/// The engine's report for kernel `K`.
pub type PassReportOf<K> = PassReport<<K as Kernel>::Error>;

impl<K: Kernel> Engine<K> {
    /// An engine over `kernel`, remembering ownership in `state_path` (loaded now).
    pub fn new(kernel: K, state_path: PathBuf) -> Result<Self, EngineErrorOf<K>> {
        let ownership = Ownership::load(&state_path)?;
        Ok(Engine {
            kernel,
            ownership,
            state_path,
            observed: None,
            addresses: None,
            listed: None,
            elsewhere: BTreeSet::new(),
            director: None,
            vanished_logged: BTreeSet::new(),
            unsaved: false,
        })
    }

    /// The kernel.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// Replaces the kernel connection (after the old one was lost). The observed table is dropped: the next pass
    /// reads everything through the new connection.
    pub fn replace_kernel(&mut self, kernel: K) {
        self.kernel = kernel;
        self.observed = None;
    }

    /// What the engine remembers (and saves in the state file).
    pub fn ownership(&self) -> &Ownership {
        &self.ownership
    }

    /// Remembers the health of every target in use, written at once when it differs from what the state file
    /// holds (a transition, a target added or gone), so that a restart starts each target where it was.
    pub fn remember_health(&mut self, health: BTreeMap<TargetKey, HealthState>) -> Result<(), StateError> {
        // Counters move with every probe; only what a restart starts from (health, when it last flipped) is
        // worth a write.
        let same = |a: &HealthState, b: &HealthState| a.healthy == b.healthy && a.last_transition == b.last_transition;
        if self.ownership.health.len() == health.len()
            && self.ownership.health.iter().zip(&health).all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        {
            return Ok(());
        }
        self.ownership.health = health;
        self.save_ownership()
    }

    /// Saves the ownership, noting a failure for the next pass (see `unsaved`).
    pub(super) fn save_ownership(&mut self) -> Result<(), StateError> {
        let saved = self.ownership.save(&self.state_path);
        self.unsaved = saved.is_err();
        saved
    }

    /// The table as last observed, if any.
    pub fn observed(&self) -> Option<&Table> {
        self.observed.as_ref()
    }

    /// Reads the whole table and plans against it, changing nothing (the `plan` command).
    pub async fn plan_only(
        &mut self,
        desired: &DesiredTable,
        now: u64,
        opts: &PassOptions,
    ) -> Result<Plan, EngineErrorOf<K>> {
        self.refresh_all(desired, false).await?;
        let mut plan = self.plan_observed(desired, now, None);
        let held = hold_deletes(&mut plan.ops, opts);
        Self::guard(&plan.ops, 0, self.ownership.owned.len(), opts)?;
        if !held.is_empty() {
            info!(count = held.len(), "service deletions held back: the sources have invalid objects");
        }
        Ok(plan)
    }

    /// A full pass: read the whole table, plan, apply.
    pub async fn reconcile_full(
        &mut self,
        desired: &DesiredTable,
        now: u64,
        opts: &PassOptions,
    ) -> Result<PassReportOf<K>, EngineErrorOf<K>> {
        let expected = self.expected_in_kernel(desired);
        self.refresh_all(desired, true).await?;
        let vanished = self.vanished(expected);
        let mut report = self.reconcile_observed(desired, now, opts, None).await?;
        report.vanished = vanished;
        self.director_pass(desired, &mut report.director).await?;
        Ok(report)
    }

    /// An incremental pass: re-read only `touched` services, plan against the observed table, apply. Falls back to
    /// a full read when nothing was observed yet.
    pub async fn reconcile_touched(
        &mut self,
        desired: &DesiredTable,
        touched: &BTreeSet<ServiceKey>,
        now: u64,
        opts: &PassOptions,
    ) -> Result<PassReportOf<K>, EngineErrorOf<K>> {
        if self.observed.is_none() {
            return self.reconcile_full(desired, now, opts).await;
        }
        self.refresh(touched).await?;
        if self.listed.is_none() {
            self.list_addresses(true).await?;
        }
        self.reconcile_observed(desired, now, opts, Some(touched)).await
    }

    /// Reads the whole table. The services this pass may act on (owned or desired) are passed along: the read
    /// must find each of them that exists, since a plan decides from absence.
    /// The VIP interface's addresses are listed with it (one listing per full pass); `change` says whether the
    /// pass may change things (only then is a missing VIP interface made).
    pub(super) async fn refresh_all(&mut self, desired: &DesiredTable, change: bool) -> Result<(), EngineErrorOf<K>> {
        self.observed = None;
        let expected: BTreeSet<ServiceKey> =
            self.ownership.owned.iter().chain(desired.services.keys()).copied().collect();
        let table = self.kernel.read_table(&expected).await.map_err(EngineError::Read)?;
        self.observed = Some(table);
        self.list_addresses(change).await
    }

    /// Re-reads some services into the observed table. On failure the observed table is dropped, so the next pass
    /// reads everything again rather than trusting a table we know is stale.
    async fn refresh(&mut self, keys: &BTreeSet<ServiceKey>) -> Result<(), EngineErrorOf<K>> {
        for key in keys {
            match self.kernel.read_service(key).await {
                Ok(entry) => {
                    if let Some(observed) = self.observed.as_mut() {
                        match entry {
                            Some(entry) => {
                                observed.services.insert(*key, entry);
                            }
                            None => {
                                observed.services.remove(key);
                            }
                        }
                    }
                }
                Err(e) => {
                    self.observed = None;
                    return Err(EngineError::Read(e));
                }
            }
        }
        Ok(())
    }

    /// Plans against the observed table: everything, or only the services in `scope` (an incremental pass costs
    /// the size of the change, not of the table). The returned drain state is complete either way.
    pub(super) fn plan_observed(&self, desired: &DesiredTable, now: u64, scope: Option<&BTreeSet<ServiceKey>>) -> Plan {
        let empty = Table::default();
        let live = self.observed.as_ref().unwrap_or(&empty);
        let Some(scope) = scope else {
            return plan(&PlanInput {
                live,
                desired,
                owned: &self.ownership.owned,
                drains: &self.ownership.drains,
                now,
            });
        };
        let live =
            Table { services: scope.iter().filter_map(|k| live.services.get(k).map(|e| (*k, e.clone()))).collect() };
        let desired = DesiredTable {
            services: scope.iter().filter_map(|k| desired.services.get(k).map(|s| (*k, s.clone()))).collect(),
        };
        let owned: BTreeSet<ServiceKey> = self.ownership.owned.intersection(scope).copied().collect();
        let (inside, mut outside): (Drains, Drains) =
            self.ownership.drains.iter().map(|(k, v)| (*k, *v)).partition(|((service, _), _)| scope.contains(service));
        let mut plan = plan(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &inside, now });
        outside.append(&mut plan.drains);
        plan.drains = outside;
        plan
    }

    /// The mass-delete guard over `ops`: `already` services were deleted earlier in this pass, `owned` were owned
    /// when it began.
    fn guard(ops: &[Op], already: usize, owned: usize, opts: &PassOptions) -> Result<(), EngineErrorOf<K>> {
        let deletes = already + ops.iter().filter(|op| matches!(op, Op::DeleteService(_))).count();
        if !opts.allow_mass_delete && deletes > MASS_DELETE_MIN && deletes * 2 > owned {
            return Err(EngineError::MassDelete { deletes, owned });
        }
        Ok(())
    }

    pub(super) async fn reconcile_observed(
        &mut self,
        desired: &DesiredTable,
        now: u64,
        opts: &PassOptions,
        scope: Option<&BTreeSet<ServiceKey>>,
    ) -> Result<PassReportOf<K>, EngineErrorOf<K>> {
        let owned_at_start = self.ownership.owned.len();
        // The addresses of the services in scope (every address, on a full pass).
        let among: Option<BTreeSet<IpAddr>> = scope.map(|keys| keys.iter().filter_map(ServiceKey::addr).collect());
        let mut plan = self.plan_observed(desired, now, scope);
        let held = hold_deletes(&mut plan.ops, opts);
        Self::guard(&plan.ops, 0, owned_at_start, opts)?;
        for key in &plan.adopted {
            info!(service = %key, "adopting a declared service that already exists in the kernel");
        }
        for (service, dest) in &plan.drains_started {
            info!(%service, %dest, "draining a removed backend (weight 0) until its connections end");
        }

        let mut report = PassReport { plan: plan.clone(), held, ..Default::default() };
        // Remember before touching the kernel: a crash after the kernel changed must not leave services we created
        // but do not know we own. What is new to remember: the declared services this pass creates or edits, and
        // those it found already there (adopted). Nothing new, nothing written: a pass costs the size of its change,
        // not of the state file.
        let new_owned: Vec<ServiceKey> = plan
            .ops
            .iter()
            .map(|op| *op.service_key())
            .chain(plan.adopted.iter().copied())
            .filter(|key| desired.services.contains_key(key) && !self.ownership.owned.contains(key))
            .collect();
        let drains_changed = self.ownership.drains != plan.drains;
        let forgotten = self.forget_absent(desired, opts, scope);
        self.ownership.owned.extend(new_owned.iter().copied());
        self.ownership.drains = plan.drains.clone();
        if self.unsaved || !new_owned.is_empty() || forgotten || (drains_changed && !plan.ops.is_empty()) {
            self.save_ownership()?;
        }
        // Addresses before the services that need them: a service is reachable from its first packet on.
        self.add_addresses(desired, among.as_ref(), &mut report.addresses).await?;
        if plan.ops.is_empty() {
            self.remove_addresses(desired, among.as_ref(), &mut report.addresses).await?;
            return Ok(report);
        }
        let saved = (self.ownership.owned.len(), self.ownership.drains.clone());

        let mut ops = plan.ops;
        let mut deleted = 0;
        let mut round = 0;
        loop {
            self.remember_before(&ops, &mut report.before);
            let mut results = self.kernel.apply(&ops).await.into_iter();
            let mut raced = BTreeSet::new();
            for op in ops {
                let Some(result) = results.next() else {
                    warn!(op = %op, "the kernel client gave no answer for this operation; its outcome is unknown");
                    report.unanswered.push(op);
                    continue;
                };
                match result {
                    Ok(()) => {
                        deleted += usize::from(matches!(op, Op::DeleteService(_)));
                        self.record_applied(&op);
                        report.applied.push(op);
                    }
                    Err(e) if matches!(op, Op::DeleteService(_) | Op::DeleteDest(..)) && e.is_gone() => {
                        // Someone else deleted it already: the goal is reached.
                        self.record_applied(&op);
                    }
                    Err(e) if e.is_race() && round < RACE_ROUNDS => {
                        raced.insert(*op.service_key());
                    }
                    Err(error) => {
                        warn!(op = %op, %error, "operation refused");
                        let object = desired.services.get(op.service_key()).map(|s| s.origin.clone());
                        report.failures.push(OpFailure { op, object, error });
                    }
                }
            }
            if report.outcome_unknown() {
                // Some operation may or may not have happened: the observed table cannot be trusted any more.
                self.observed = None;
                break;
            }
            if raced.is_empty() {
                break;
            }
            round += 1;
            report.race_rounds = round;
            info!(services = raced.len(), round, "another writer changed services under us: re-reading them");
            self.refresh(&raced).await?;
            // Every round obeys the same rules as the first: frozen services and held deletions stay untouched,
            // and the mass-delete guard counts the deletions of the whole pass.
            let mut replanned = self.plan_observed(desired, now, Some(&raced));
            for key in hold_deletes(&mut replanned.ops, opts) {
                if !report.held.contains(&key) {
                    report.held.push(key);
                }
            }
            if let Err(e) = Self::guard(&replanned.ops, deleted, owned_at_start, opts) {
                self.save_ownership()?;
                return Err(e);
            }
            ops = replanned.ops;
            if ops.is_empty() {
                break;
            }
        }

        // Deletions and ended drains change the memory during the pass.
        if self.unsaved || (self.ownership.owned.len(), &self.ownership.drains) != (saved.0, &saved.1) {
            self.save_ownership()?;
        }
        // Addresses after the services that needed them are gone.
        self.remove_addresses(desired, among.as_ref(), &mut report.addresses).await?;
        Ok(report)
    }

    /// Forgets the owned services (in `scope`, if given) that the kernel, as just read, does not have and no source
    /// declares: a delete whose answer was lost (a connection closed mid-batch, a kill before the save) leaves one.
    /// Remembered, it would claim whatever another program later makes under that key, and a pass would delete it.
    /// Frozen services stay as they are. Returns whether anything was forgotten.
    fn forget_absent(
        &mut self,
        desired: &DesiredTable,
        opts: &PassOptions,
        scope: Option<&BTreeSet<ServiceKey>>,
    ) -> bool {
        let Some(observed) = &self.observed else { return false };
        let absent: Vec<ServiceKey> = self
            .ownership
            .owned
            .iter()
            .filter(|key| scope.is_none_or(|scope| scope.contains(key)))
            .filter(|key| {
                !observed.services.contains_key(key)
                    && !desired.services.contains_key(key)
                    && !opts.frozen.contains(key)
            })
            .copied()
            .collect();
        for key in &absent {
            info!(service = %key, "forgetting an owned service that is no longer in the kernel nor declared");
            self.ownership.owned.remove(key);
            self.ownership.drains.retain(|(service, _), _| service != key);
        }
        !absent.is_empty()
    }

    /// Copies into `before` the observed state of the services `ops` touch, unless already there.
    fn remember_before(&self, ops: &[Op], before: &mut Table) {
        let Some(observed) = &self.observed else { return };
        for op in ops {
            let key = op.service_key();
            if let (false, Some(entry)) = (before.services.contains_key(key), observed.services.get(key)) {
                before.services.insert(*key, entry.clone());
            }
        }
    }

    /// Keeps the observed table and the ownership memory in step with an operation the kernel accepted.
    fn record_applied(&mut self, op: &Op) {
        match op {
            Op::DeleteService(key) => {
                self.ownership.owned.remove(key);
                self.ownership.drains.retain(|(service, _), _| service != key);
            }
            // A drained backend deleted is done draining: no need to look at it again.
            Op::DeleteDest(service, dest) => {
                self.ownership.drains.remove(&(*service, *dest));
            }
            _ => {}
        }
        if let Some(observed) = self.observed.as_mut() {
            // A refusal here means our picture was stale; drop it so that the next pass reads everything.
            if apply_op(observed, op).is_err() {
                self.observed = None;
            }
        }
    }
}

/// Removes the operations held back by `opts` (frozen services; whole-service deletions when asked); returns the
/// services concerned.
fn hold_deletes(ops: &mut Vec<Op>, opts: &PassOptions) -> Vec<ServiceKey> {
    let mut held = Vec::new();
    ops.retain(|op| {
        let key = op.service_key();
        let hold = opts.frozen.contains(key) || (opts.hold_service_deletes && matches!(op, Op::DeleteService(_)));
        if hold && !held.contains(key) {
            held.push(*key);
        }
        !hold
    });
    held
}
