//! One reconciliation pass: read, plan, guard, remember, apply, recover from races.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tracing::{info, warn};

use super::describe::describe;
use super::kernel::Kernel;
use super::state::{State, StateError};
use crate::model::{Op, ServiceKey, Table};
use crate::table::{DesiredTable, Drains, Plan, PlanInput, apply_op, plan};

/// A pass may delete at most this many owned services without `allow_mass_delete`, however small the table.
pub const MASS_DELETE_MIN: usize = 10;

/// How many times operations refused because another writer got there first are re-planned.
pub const RACE_ROUNDS: usize = 3;

/// Errors that stop a pass before the kernel is changed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Reading the kernel failed: nothing is planned, so nothing is deleted because of it.
    #[error("reading the IPVS table failed; nothing was changed: {0}")]
    Read(#[source] Box<dyn std::error::Error + Send + Sync>),
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

/// An operation the kernel refused.
#[derive(Debug, Clone)]
pub struct OpFailure {
    /// The operation.
    pub op: Op,
    /// The kernel's error, with its context.
    pub error: String,
}

/// What a pass did.
#[derive(Debug, Clone, Default)]
pub struct PassReport {
    /// The plan of the first round (what `plan` shows).
    pub plan: Plan,
    /// Operations the kernel accepted, every round included.
    pub applied: Vec<Op>,
    /// `applied`, described against the table as it was before each operation (see `engine::describe`).
    pub applied_lines: Vec<String>,
    /// Operations the kernel refused in the end.
    pub failures: Vec<OpFailure>,
    /// Services whose operations were held back because the sources had invalid objects.
    pub held: Vec<ServiceKey>,
    /// Rounds of re-planning after races with other writers.
    pub race_rounds: usize,
}

impl PassReport {
    /// Whether every planned operation was applied.
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The engine: a kernel, the ownership memory, and the table as last observed.
pub struct Engine<K> {
    kernel: K,
    state: State,
    state_path: PathBuf,
    /// The kernel's table as last read, kept up to date with what this engine applied since; `None` until the first
    /// full read. Incremental passes plan against it instead of reading the whole table again.
    observed: Option<Table>,
}

impl<K: Kernel> Engine<K> {
    /// An engine over `kernel`, remembering ownership in `state_path` (loaded now).
    pub fn new(kernel: K, state_path: PathBuf) -> Result<Self, EngineError> {
        let state = State::load(&state_path)?;
        Ok(Engine { kernel, state, state_path, observed: None })
    }

    /// The kernel.
    pub fn kernel(&self) -> &K {
        &self.kernel
    }

    /// What the engine remembers.
    pub fn state(&self) -> &State {
        &self.state
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
    ) -> Result<Plan, EngineError> {
        self.refresh_all().await?;
        let mut plan = self.plan_observed(desired, now, None);
        let held = hold_deletes(&mut plan, opts);
        self.guard(&plan, opts)?;
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
    ) -> Result<PassReport, EngineError> {
        self.refresh_all().await?;
        self.reconcile_observed(desired, now, opts, None).await
    }

    /// An incremental pass: re-read only `touched` services, plan against the observed table, apply. Falls back to
    /// a full read when nothing was observed yet.
    pub async fn reconcile_touched(
        &mut self,
        desired: &DesiredTable,
        touched: &BTreeSet<ServiceKey>,
        now: u64,
        opts: &PassOptions,
    ) -> Result<PassReport, EngineError> {
        if self.observed.is_none() {
            return self.reconcile_full(desired, now, opts).await;
        }
        self.refresh(touched).await?;
        self.reconcile_observed(desired, now, opts, Some(touched)).await
    }

    async fn refresh_all(&mut self) -> Result<(), EngineError> {
        self.observed = None;
        let table = self.kernel.read_table().await.map_err(|e| EngineError::Read(Box::new(e)))?;
        self.observed = Some(table);
        Ok(())
    }

    /// Re-reads some services into the observed table. On failure the observed table is dropped, so the next pass
    /// reads everything again rather than trusting a table we know is stale.
    async fn refresh(&mut self, keys: &BTreeSet<ServiceKey>) -> Result<(), EngineError> {
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
                    return Err(EngineError::Read(Box::new(e)));
                }
            }
        }
        Ok(())
    }

    /// Plans against the observed table: everything, or only the services in `scope` (an incremental pass costs
    /// the size of the change, not of the table). The returned drain state is complete either way.
    fn plan_observed(&self, desired: &DesiredTable, now: u64, scope: Option<&BTreeSet<ServiceKey>>) -> Plan {
        let empty = Table::default();
        let live = self.observed.as_ref().unwrap_or(&empty);
        let Some(scope) = scope else {
            return plan(&PlanInput { live, desired, owned: &self.state.owned, drains: &self.state.drains, now });
        };
        let live =
            Table { services: scope.iter().filter_map(|k| live.services.get(k).map(|e| (*k, e.clone()))).collect() };
        let desired = DesiredTable {
            services: scope.iter().filter_map(|k| desired.services.get(k).map(|s| (*k, s.clone()))).collect(),
        };
        let owned: BTreeSet<ServiceKey> = self.state.owned.intersection(scope).copied().collect();
        let (inside, mut outside): (Drains, Drains) =
            self.state.drains.iter().map(|(k, v)| (*k, *v)).partition(|((service, _), _)| scope.contains(service));
        let mut plan = plan(&PlanInput { live: &live, desired: &desired, owned: &owned, drains: &inside, now });
        outside.append(&mut plan.drains);
        plan.drains = outside;
        plan
    }

    fn guard(&self, plan: &Plan, opts: &PassOptions) -> Result<(), EngineError> {
        let deletes = plan.ops.iter().filter(|op| matches!(op, Op::DeleteService(_))).count();
        let owned = self.state.owned.len();
        if !opts.allow_mass_delete && deletes > MASS_DELETE_MIN && deletes * 2 > owned {
            return Err(EngineError::MassDelete { deletes, owned });
        }
        Ok(())
    }

    async fn reconcile_observed(
        &mut self,
        desired: &DesiredTable,
        now: u64,
        opts: &PassOptions,
        scope: Option<&BTreeSet<ServiceKey>>,
    ) -> Result<PassReport, EngineError> {
        let mut plan = self.plan_observed(desired, now, scope);
        let held = hold_deletes(&mut plan, opts);
        self.guard(&plan, opts)?;
        for key in &plan.adopted {
            info!(service = %key, "adopting a declared service that already exists in the kernel");
        }
        for (service, dest) in &plan.drains_started {
            info!(%service, %dest, "draining a removed backend (weight 0) until its connections end");
        }

        let mut report = PassReport { plan: plan.clone(), held, ..Default::default() };
        if plan.ops.is_empty() {
            self.state.drains = plan.drains.clone();
            return Ok(report);
        }

        // Remember before touching the kernel: a crash after the kernel changed must not leave services we created
        // but do not know we own.
        self.state.owned.extend(desired.services.keys().copied());
        self.state.drains = plan.drains.clone();
        self.state.save(&self.state_path)?;

        let mut ops = plan.ops;
        let mut round = 0;
        loop {
            let results = self.kernel.apply(&ops).await;
            let mut raced = BTreeSet::new();
            for (op, result) in ops.iter().zip(results.iter().map(Some).chain(std::iter::repeat(None))) {
                match result {
                    Some(Ok(())) => {
                        if let Some(observed) = &self.observed {
                            report.applied_lines.push(describe(op, observed));
                        }
                        self.record_applied(op);
                        report.applied.push(op.clone());
                    }
                    Some(Err(e)) if matches!(op, Op::DeleteService(_) | Op::DeleteDest(..)) && K::is_gone(e) => {
                        // Someone else deleted it already: the goal is reached.
                        self.record_applied(op);
                    }
                    Some(Err(e)) if K::is_race(e) && round < RACE_ROUNDS => {
                        raced.insert(*op.service_key());
                    }
                    Some(Err(e)) => {
                        warn!(op = %op, error = %e, "operation refused");
                        report.failures.push(OpFailure { op: op.clone(), error: e.to_string() });
                    }
                    None => report
                        .failures
                        .push(OpFailure { op: op.clone(), error: "no result from the kernel client".to_owned() }),
                }
            }
            if raced.is_empty() {
                break;
            }
            round += 1;
            report.race_rounds = round;
            info!(services = raced.len(), round, "another writer changed services under us: re-reading them");
            self.refresh(&raced).await?;
            ops = self.plan_observed(desired, now, Some(&raced)).ops;
            if ops.is_empty() {
                break;
            }
        }

        self.state.save(&self.state_path)?;
        Ok(report)
    }

    /// Keeps the observed table and the ownership memory in step with an operation the kernel accepted.
    fn record_applied(&mut self, op: &Op) {
        if let Op::DeleteService(key) = op {
            self.state.owned.remove(key);
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
fn hold_deletes(plan: &mut Plan, opts: &PassOptions) -> Vec<ServiceKey> {
    let mut held = Vec::new();
    plan.ops.retain(|op| {
        let key = op.service_key();
        let hold = opts.frozen.contains(key) || (opts.hold_service_deletes && matches!(op, Op::DeleteService(_)));
        if hold && !held.contains(key) {
            held.push(*key);
        }
        !hold
    });
    held
}
