//! The agent's loop: one pass at a time, never two at once, each started by a change, a timer or a retry.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};
use tracing::{info, warn};

use super::board::SharedBoard;
use super::weights::HealthTracker;
use super::{AgentConfig, Connector, PassError, PassKind, PassRecord, pass_options};
use crate::engine::{Engine, EngineError, Kernel, KernelFailure, PassReport};
use crate::health::{HealthScheduler, HealthState, HealthView, TargetKey};
use crate::model::ServiceKey;
use crate::source::{DesiredState, Snapshot};

/// Something the agent tells its observer about each pass.
pub type Observer<E> = Box<dyn FnMut(&PassRecord<'_, E>) + Send>;

/// The per-node (or per-host) agent: owns the engine and the loop.
pub struct Agent<K: Kernel, C> {
    engine: Engine<K>,
    connector: C,
    state: DesiredState,
    config: AgentConfig,
    observer: Observer<K::Error>,
    /// The desired state of the last pass that took one (drain passes plan with it).
    desired: Snapshot,
    /// The next pass must read everything (first pass, after a failure or an unknown outcome, or when held
    /// deletions are released).
    need_full: bool,
    /// The connection was lost: connect again before the next pass.
    disconnected: bool,
    /// Current retry delay after failures.
    backoff: Duration,
    /// The health checks, when the services' checks are run (`run`, `agent`); without them every backend counts
    /// as its policy's initial state.
    health: Option<Health>,
    /// Health applied to the desired table: what the engine plans with.
    tracker: HealthTracker,
    /// What `/status` shows, when something serves it.
    board: Option<SharedBoard>,
}

/// The scheduler running the checks, and its view.
struct Health {
    scheduler: HealthScheduler,
    view: watch::Receiver<HealthView>,
    /// Whether the scheduler has had the saved states (the first target set only).
    restored: bool,
    /// The targets' health may have changed since it was saved.
    save: bool,
}

/// The loop's timers.
#[derive(Debug, Default)]
struct Timers {
    /// (fire at, give up waiting for quiet at)
    change: Option<(Instant, Instant)>,
    resync: Option<Instant>,
    drain: Option<Instant>,
    retry: Option<Instant>,
    /// The next slow-start step.
    step: Option<Instant>,
}

impl<K: Kernel, C: Connector<K>> Agent<K, C> {
    /// An agent over `engine` (whose kernel connection `connector` can renew), following `state`.
    pub fn new(
        engine: Engine<K>,
        connector: C,
        state: DesiredState,
        config: AgentConfig,
        observer: Observer<K::Error>,
    ) -> Self {
        let backoff = config.retry;
        Agent {
            engine,
            connector,
            state,
            config,
            observer,
            desired: Snapshot::default(),
            need_full: true,
            disconnected: false,
            backoff,
            health: None,
            tracker: HealthTracker::new(),
            board: None,
        }
    }

    /// The same agent, keeping `board` up to date after each pass (for `/status`).
    pub fn with_board(mut self, board: SharedBoard) -> Self {
        self.board = Some(board);
        self
    }

    /// The same agent, running the services' health checks on `scheduler`: its targets follow the desired
    /// table, and every health change is a pass over the services it touches.
    pub fn with_health(mut self, scheduler: HealthScheduler) -> Self {
        let view = scheduler.subscribe();
        self.health = Some(Health { scheduler, view, restored: false, save: false });
        self
    }

    /// The engine (for tests and status).
    pub fn engine(&self) -> &Engine<K> {
        &self.engine
    }

    /// Runs until `shutdown` completes, between passes (a pass under way is finished first). The kernel's table is
    /// left as it is.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Self {
        let mut changes = self.state.subscribe();
        // Seen before readiness is asked: sources that become ready after the question still wake the loop (the
        // other way round, a source marked ready in between was never seen, and the first pass waited for the
        // next change or rescan).
        changes.mark_unchanged();
        let mut timers = Timers::default();
        if self.state.is_ready() {
            // The first pass is a full one, as soon as the sources are ready.
            timers.resync = Some(Instant::now());
        }
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                changed = changes.changed() => {
                    if changed.is_err() {
                        // Cannot happen while this agent holds the state; stop rather than spin.
                        break;
                    }
                    if !self.state.is_ready() {
                        continue;
                    }
                    if self.need_full && timers.resync.is_none() && timers.retry.is_none() {
                        // Ready for the first time: the first pass reads everything at once.
                        timers.resync = Some(Instant::now());
                        continue;
                    }
                    let now = Instant::now();
                    let limit = timers.change.map(|(_, limit)| limit).unwrap_or(now + self.config.max_delay);
                    timers.change = Some(((now + self.config.quiet).min(limit), limit));
                }
                () = sleep_until(at(timers.change.map(|(fire, _)| fire))), if timers.change.is_some() => {
                    timers.change = None;
                    self.pass(PassKind::Change, &mut timers).await;
                }
                () = sleep_until(at(timers.resync)), if timers.resync.is_some() => {
                    timers.resync = None;
                    self.pass(PassKind::Resync, &mut timers).await;
                }
                () = sleep_until(at(timers.retry)), if timers.retry.is_some() => {
                    timers.retry = None;
                    self.pass(PassKind::Retry, &mut timers).await;
                }
                () = sleep_until(at(timers.drain)), if timers.drain.is_some() => {
                    timers.drain = None;
                    self.pass(PassKind::Drain, &mut timers).await;
                }
                changed = health_changed(&mut self.health) => {
                    if changed.is_err() {
                        // The scheduler is gone: no more health changes, the loop goes on without them.
                        self.health = None;
                        continue;
                    }
                    if self.state.is_ready() && !self.need_full {
                        self.pass(PassKind::Health, &mut timers).await;
                    }
                }
                () = sleep_until(at(timers.step)), if timers.step.is_some() => {
                    timers.step = None;
                    self.pass(PassKind::Health, &mut timers).await;
                }
            }
        }
        info!("stopping; the IPVS table is left as it is");
        self
    }

    /// One pass of `kind`; sets the timers that follow from it.
    async fn pass(&mut self, kind: PassKind, timers: &mut Timers) {
        let wall = (self.config.wall_clock)();
        let mut health_scope = None;
        if kind == PassKind::Health {
            // What the checks changed, and the slow-start steps now due; the declared state is not taken (its
            // changes wait for their own pass).
            let empty = HealthView::default();
            let mut guard = None;
            if let Some(health) = self.health.as_mut() {
                health.save = true;
                guard = Some(health.view.borrow_and_update());
            }
            // Read in place (a copy of the view would cost every target's state).
            let view = guard.as_deref().unwrap_or(&empty);
            let mut touched = self.tracker.health_changed(&self.desired.table, view, wall);
            touched.extend(self.tracker.steps_due(&self.desired.table, view, wall));
            drop(guard);
            if touched.is_empty() {
                // A transition that moves no weight (another check's backend, or a state the table already has).
                timers.step = self.step_timer(wall);
                return;
            }
            health_scope = Some(touched);
        }
        if kind != PassKind::Drain && kind != PassKind::Health {
            let was_holding = self.desired.hold_service_deletes;
            // A full pass copies the whole desired table (it reads the whole kernel table anyway); a change pass
            // patches its copy with the changed keys, so that it costs the size of the change.
            let whole = self.need_full || matches!(kind, PassKind::Resync | PassKind::Retry);
            self.state.take_into(&mut self.desired, whole);
            // Deletions held back while an object named no service were never planned again: look at everything.
            if was_holding && !self.desired.hold_service_deletes {
                self.need_full = true;
            }
            // A change pass takes every change so far: a pending quiet timer has nothing left to wait for.
            timers.change = None;
        }
        let full = self.need_full || matches!(kind, PassKind::Resync | PassKind::Retry);
        let scope: Option<BTreeSet<ServiceKey>> = match kind {
            _ if full => None,
            PassKind::Drain => Some(self.engine.ownership().drains.keys().map(|(service, _)| *service).collect()),
            PassKind::Health => health_scope,
            _ => Some(self.desired.changed.clone()),
        };
        if kind != PassKind::Drain && kind != PassKind::Health {
            let taken_over = self.live_states().await;
            self.follow_declared(full, wall, &taken_over);
        }
        timers.step = self.step_timer(wall);
        let started = Instant::now();
        let result = if scope.as_ref().is_some_and(BTreeSet::is_empty) {
            // Nothing to re-read or plan (a change that moved no service, e.g. a new conflicting object); the
            // observer still hears of it (status follows every change).
            Ok(PassReport::default())
        } else {
            self.run_engine(scope.as_ref()).await
        };
        self.after(&result, full, timers);
        let record = PassRecord {
            kind,
            full,
            scope: scope.as_ref(),
            desired: &self.desired,
            result: &result,
            duration: started.elapsed(),
            owned: self.engine.ownership().owned.len(),
            owned_addresses: self.engine.ownership().vips.addrs.len(),
            health: self.tracker.summaries(),
        };
        log_pass(&record);
        (self.observer)(&record);
        self.save_health();
        if let Some(board) = &self.board {
            let mut board = board.write().unwrap_or_else(|poisoned| poisoned.into_inner());
            board.update(&self.desired.table, self.tracker.effective(), scope.as_ref());
        }
    }

    async fn run_engine(
        &mut self,
        scope: Option<&BTreeSet<ServiceKey>>,
    ) -> Result<PassReport<K::Error>, PassError<K::Error>> {
        if self.disconnected || !self.engine.kernel().is_connected() {
            let kernel = self.connector.connect().await.map_err(PassError::Connect)?;
            info!("connected to the kernel's IPVS again");
            self.engine.replace_kernel(kernel);
            self.disconnected = false;
        }
        let opts = pass_options(&self.desired, self.config.allow_mass_delete);
        let now = (self.config.wall_clock)();
        let table = self.tracker.effective();
        let result = match scope {
            None => self.engine.reconcile_full(table, now, &opts).await,
            Some(keys) => self.engine.reconcile_touched(table, keys, now, &opts).await,
        };
        Ok(result?)
    }

    /// When the next slow-start step is due, on tokio's clock.
    fn step_timer(&self, wall: u64) -> Option<Instant> {
        self.tracker.next_step().map(|at| Instant::now() + Duration::from_secs(at.saturating_sub(wall)))
    }

    /// Brings the health side up to date with the declared state just taken (everything on a full pass). When the
    /// targets changed the scheduler is told first (the first time with the states saved before a restart, so
    /// that a backend that was down stays out and one that was up stays in), and the services are computed again
    /// with the targets' states.
    /// Before the first target set only: the states the backends the kernel already holds start from (a
    /// takeover from keepalived, see `agent::takeover`), read off one table read. A failed read starts them from
    /// their policies (the pass then fails on its own read and is retried).
    async fn live_states(&mut self) -> BTreeMap<TargetKey, HealthState> {
        if self.health.as_ref().is_none_or(|health| health.restored) {
            return BTreeMap::new();
        }
        let checked: BTreeSet<ServiceKey> = self
            .desired
            .table
            .services
            .iter()
            .filter(|(_, service)| service.health.as_ref().is_some_and(|policy| policy.check.is_some()))
            .map(|(key, _)| *key)
            .collect();
        if checked.is_empty() || self.disconnected || !self.engine.kernel().is_connected() {
            return BTreeMap::new();
        }
        match self.engine.kernel().read_table(&checked).await {
            Ok(live) => crate::agent::takeover::live_states(&self.desired.table, &live),
            Err(error) => {
                warn!(%error, "reading the table to start the checks from it failed: backends start from their policies");
                BTreeMap::new()
            }
        }
    }

    fn follow_declared(&mut self, full: bool, wall: u64, taken_over: &BTreeMap<TargetKey, HealthState>) {
        let keys = (!full).then_some(&self.desired.changed);
        let empty = HealthView::default();
        let guard = self.health.as_ref().map(|h| h.view.borrow());
        let changed = self.tracker.declared(&self.desired.table, keys, guard.as_deref().unwrap_or(&empty), wall);
        drop(guard);
        if !changed {
            return;
        }
        let Some(health) = self.health.as_mut() else { return };
        if health.restored {
            health.scheduler.set_targets(self.tracker.targets());
        } else {
            // Saved states first; the live table's for the backends they do not cover.
            let mut restored = self.engine.ownership().health.clone();
            for (key, state) in taken_over {
                restored.entry(key.clone()).or_insert_with(|| state.clone());
            }
            health.scheduler.set_targets_restoring(self.tracker.targets(), &restored);
            health.restored = true;
        }
        let view = health.view.borrow_and_update();
        self.tracker.health_changed(&self.desired.table, &view, wall);
        drop(view);
        health.save = true;
    }

    /// Saves the targets' health with the engine's state, after a pass that may have changed it.
    fn save_health(&mut self) {
        let Some(health) = self.health.as_mut().filter(|h| h.save) else { return };
        health.save = false;
        let states = self.tracker.states(&health.view.borrow());
        if let Err(e) = self.engine.remember_health(states) {
            warn!("saving the backends' health failed (a restart starts them from their initial state): {e}");
        }
    }

    /// What follows from a pass: a retry after a failure (every failure is retried with a full read, so the
    /// changes a failed pass took are never lost), a reconnect after a lost connection, the next resync and drain.
    fn after(&mut self, result: &Result<PassReport<K::Error>, PassError<K::Error>>, full: bool, timers: &mut Timers) {
        let now = Instant::now();
        let failed = match result {
            Ok(report) => {
                self.disconnected |= report.connection_lost();
                // Refused operations are retried too: the kernel may accept them later (a module loaded, another
                // writer gone), and a refusal must not wait for the next resync to be seen again.
                report.outcome_unknown() || !report.is_success()
            }
            Err(PassError::Engine(EngineError::Read(e))) => {
                self.disconnected |= e.connection_lost();
                true
            }
            Err(_) => true,
        };
        if failed {
            self.need_full = true;
            timers.retry = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(self.config.resync);
        } else {
            self.backoff = self.config.retry;
            timers.retry = None;
            if full {
                self.need_full = false;
            }
        }
        // A good full pass is a resync: the next one is due a whole period later.
        if (full && !failed) || timers.resync.is_none() {
            timers.resync = Some(now + self.config.resync);
        }
        timers.drain = (!self.engine.ownership().drains.is_empty()).then(|| now + self.config.drain_poll);
    }
}

fn log_pass<E: KernelFailure>(record: &PassRecord<'_, E>) {
    let pass = record.kind.label();
    match record.result {
        Ok(report) => info!(
            pass,
            full = record.full,
            applied = report.applied.len(),
            failed = report.failures.len() + report.unanswered.len(),
            draining = report.plan.draining.len(),
            // Milliseconds with a fraction: the pass's own share of a change's latency (apart from the API's).
            duration_ms = record.duration.as_secs_f64() * 1000.0,
            "reconciled"
        ),
        Err(e) => warn!(pass, full = record.full, reason = e.metric_label(), "pass failed: {e}"),
    }
}

/// Waits for the next health change; never, without health checks.
async fn health_changed(health: &mut Option<Health>) -> Result<(), watch::error::RecvError> {
    match health {
        Some(health) => health.view.changed().await,
        None => std::future::pending().await,
    }
}

fn at(instant: Option<Instant>) -> Instant {
    instant.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
}
