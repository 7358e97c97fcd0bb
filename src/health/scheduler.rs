//! One scheduler for every check: when to probe which target, how many at once, and what their results mean.
//!
//! Probe targets are keyed by [`TargetKey`] (address, source, check definition), never by service: backends shared
//! by several services with the same definition are probed once per interval, not once per service (keepalived
//! probes per service, its issue #2111). The caller hands over the whole desired set at once
//! ([`HealthScheduler::set_targets`]); a target that stays keeps its counters and its timing, a removed one stops
//! being probed, and a changed definition is a different key, so its counters start again.
//!
//! One driver task keeps every target's next due time in one ordered queue (no task or timer per target, so 10,000
//! targets cost one sleeping task), starts due probes as tasks (dropping the scheduler aborts them all), and
//! bounds how many run at once with a semaphore. A target's first probe is offset within its interval by a hash
//! of its key, so a large set does not probe in one burst, and a test can compute when.
//!
//! A probe runs under its check's timeout, kept in a second ordered queue of the same driver rather than as a
//! tokio timer per probe: registering a timer while the runtime is busy wakes its I/O driver (an eventfd write),
//! two per probe with a timer of each, a cost that counted at 10,000 probes a second. The driver aborts a probe
//! that reaches its deadline and counts a timeout. A target whose previous probe is still running (or still
//! waiting for a permit) skips that tick: probes of one target never pile up behind a slow backend.
//!
//! Results go into a [`HealthView`] on a `tokio::sync::watch` channel: every result updates the target's counters
//! in place, and only changes of health (a transition, a target added or removed) bump its generation and wake the
//! receivers, so the agent loop wakes on health changes and not on every probe.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::check::ProbeKind;
use super::error::{OK_LABEL, OUTCOME_LABELS, ProbeError};
use super::probe::Prober;
use super::state::{HealthState, Transition};
use super::targets::{Schedule, TargetKey};
use crate::clock::unix_seconds;

/// The shortest interval the scheduler accepts; shorter ones (zero, from a caller that skipped validation) are
/// raised to it so that a target cannot spin the driver.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// Runs one probe for a key. The scheduler's only contact with the network, a trait so that tests can script
/// results on paused time.
pub trait ProbeRunner: Send + Sync + 'static {
    /// Probes `key` once; returns why it failed, if it did. It need not bound itself nor time itself: the
    /// scheduler ends it at `key.check.timeout` (and counts a timeout), and measures its latency.
    fn probe(&self, key: &TargetKey) -> impl Future<Output = Result<(), ProbeError>> + Send;
}

impl ProbeRunner for Prober {
    fn probe(&self, key: &TargetKey) -> impl Future<Output = Result<(), ProbeError>> + Send {
        self.exchange(&key.check.probe, key.target, key.source)
    }
}

/// Every target's state, published on the scheduler's watch channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthView {
    /// Bumped when a target changes health or the set of targets changes; not by results that only move counters.
    pub generation: u64,
    /// Every target's state, counters as of its last result.
    pub states: BTreeMap<Arc<TargetKey>, HealthState>,
}

impl HealthView {
    /// Whether `key` is currently healthy (`None`: not a target).
    pub fn healthy(&self, key: &TargetKey) -> Option<bool> {
        self.states.get(key).map(|state| state.healthy)
    }
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchedulerConfig {
    /// Probes running at once, at most. Due probes beyond it wait for a permit (their target skips ticks
    /// meanwhile).
    pub max_in_flight: usize,
}

impl Default for SchedulerConfig {
    /// 256 probes in flight: enough for 10,000 targets every second at a few milliseconds each, few enough to keep
    /// the node's sockets and the backends' accept queues quiet.
    fn default() -> Self {
        SchedulerConfig { max_in_flight: 256 }
    }
}

/// Plain counters for metrics, read by whoever exports them (`agent::metrics` at each scrape).
#[derive(Debug)]
pub struct SchedulerCounters {
    /// Results by probe type ([`ProbeKind::ALL`] order) and outcome (`ok`, then [`OUTCOME_LABELS`] order).
    results: Vec<AtomicU64>,
    /// Ticks skipped because the target's previous probe was still running.
    skipped: AtomicU64,
    /// Transitions to healthy.
    became_healthy: AtomicU64,
    /// Transitions to unhealthy.
    became_unhealthy: AtomicU64,
    /// Probes holding a permit right now.
    in_flight: AtomicU64,
    /// Latencies of successful probes: one count per [`LATENCY_BOUNDS`] bucket, then one beyond the last.
    latency_buckets: Vec<AtomicU64>,
    /// Sum of those latencies, in microseconds.
    latency_sum_micros: AtomicU64,
}

/// Upper bounds of the latency buckets (a Prometheus histogram's `le`), from 1 ms to 10 s: local health endpoints
/// answer in about a millisecond, and a timeout is a failure, not a latency.
pub const LATENCY_BOUNDS: &[Duration] = &[
    Duration::from_millis(1),
    Duration::from_micros(2_500),
    Duration::from_millis(5),
    Duration::from_millis(10),
    Duration::from_millis(25),
    Duration::from_millis(50),
    Duration::from_millis(100),
    Duration::from_millis(250),
    Duration::from_millis(500),
    Duration::from_secs(1),
    Duration::from_micros(2_500_000),
    Duration::from_secs(5),
    Duration::from_secs(10),
];

/// The latencies of successful probes so far, for a histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatencyCounts {
    /// Probes per bucket (not cumulative): `buckets[i]` for latencies ≤ `LATENCY_BOUNDS[i]` and above the bound
    /// before it, the last one for latencies beyond every bound.
    pub buckets: Vec<u64>,
    /// Sum of every latency counted.
    pub sum: Duration,
}

impl LatencyCounts {
    /// Probes counted.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }
}

impl SchedulerCounters {
    fn new() -> Self {
        let cells = ProbeKind::ALL.len() * (1 + OUTCOME_LABELS.len());
        SchedulerCounters {
            results: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            skipped: AtomicU64::new(0),
            became_healthy: AtomicU64::new(0),
            became_unhealthy: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            latency_buckets: (0..=LATENCY_BOUNDS.len()).map(|_| AtomicU64::new(0)).collect(),
            latency_sum_micros: AtomicU64::new(0),
        }
    }

    fn count_latency(&self, latency: Duration) {
        let bucket = LATENCY_BOUNDS.iter().position(|bound| latency <= *bound).unwrap_or(LATENCY_BOUNDS.len());
        if let Some(cell) = self.latency_buckets.get(bucket) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The latencies of successful probes so far.
    pub fn latency(&self) -> LatencyCounts {
        LatencyCounts {
            buckets: self.latency_buckets.iter().map(|cell| cell.load(Ordering::Relaxed)).collect(),
            sum: Duration::from_micros(self.latency_sum_micros.load(Ordering::Relaxed)),
        }
    }

    fn cell(kind: ProbeKind, outcome: &str) -> Option<usize> {
        let outcome = if outcome == OK_LABEL { 0 } else { 1 + OUTCOME_LABELS.iter().position(|l| *l == outcome)? };
        Some(kind.index() * (1 + OUTCOME_LABELS.len()) + outcome)
    }

    fn count_result(&self, kind: ProbeKind, outcome: &str) {
        if let Some(cell) = Self::cell(kind, outcome).and_then(|cell| self.results.get(cell)) {
            cell.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Probe results of type `kind` with outcome `outcome` (`ok`, `refused`, ...); 0 for an unknown outcome.
    pub fn results_of(&self, kind: ProbeKind, outcome: &str) -> u64 {
        Self::cell(kind, outcome).and_then(|cell| self.results.get(cell)).map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// [`results_of`](Self::results_of) by the type's label (`tcp`, ...); 0 for unknown labels.
    pub fn results(&self, kind: &str, outcome: &str) -> u64 {
        ProbeKind::from_label(kind).map_or(0, |kind| self.results_of(kind, outcome))
    }

    /// Ticks skipped because the target's previous probe had not finished.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Transitions to healthy and to unhealthy, in that order.
    pub fn transitions(&self) -> (u64, u64) {
        (self.became_healthy.load(Ordering::Relaxed), self.became_unhealthy.load(Ordering::Relaxed))
    }

    /// Probes running right now (holding a concurrency permit).
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }
}

/// The offset of a target's first probe within its interval: a hash of the key, so a large set spreads over the
/// interval instead of probing in one burst, and the same key always starts at the same offset (tests compute it).
/// Whole milliseconds: tokio's timers have millisecond resolution, so a finer offset would only be rounded.
pub fn start_offset(key: &TargetKey, interval: Duration) -> Duration {
    let interval = interval.max(MIN_INTERVAL);
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
    Duration::from_millis(hasher.finish() % millis)
}

/// Runs every target's probes on a task of its own; dropping it stops the driver and every probe in flight.
pub struct HealthScheduler {
    shared: Arc<Shared>,
    view: watch::Receiver<HealthView>,
    driver: tokio::task::AbortHandle,
}

struct Shared {
    inner: Mutex<Inner>,
    view: watch::Sender<HealthView>,
    /// Wakes the driver when the target set changed (its next due time may be earlier).
    changed: Notify,
    permits: Arc<Semaphore>,
    counters: Arc<SchedulerCounters>,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<Arc<TargetKey>, Entry>,
    /// Every entry's next due time; the driver sleeps until the first.
    queue: BTreeSet<(Instant, Arc<TargetKey>)>,
    /// Keys with a probe started and not finished, whatever entry started it: a key removed and added again while
    /// its probe runs must not get a second one.
    running: BTreeMap<Arc<TargetKey>, Flight>,
    /// The deadlines of the probes holding a permit, with their flight numbers: the driver aborts a probe still
    /// running at its deadline.
    deadlines: BTreeSet<(Instant, u64, Arc<TargetKey>)>,
    /// When the driver wakes next on its own (`None`: only when notified). A probe whose deadline is earlier
    /// notifies it, so that the driver's sleep is rearmed only then, not for every probe.
    armed: Option<Instant>,
    next_id: u64,
    next_flight: u64,
}

/// One probe started and not finished.
struct Flight {
    /// Tells this probe from a later one of the same key.
    number: u64,
    /// The entry that started it ([`Entry::id`]), for its result.
    entry: u64,
    /// Its deadline, once it holds a permit.
    deadline: Option<Instant>,
    abort: AbortHandle,
}

struct Entry {
    /// Tells this entry from an earlier one of the same key (removed and added again), so that a result of the
    /// earlier one's probe is not counted into the fresh counters.
    id: u64,
    schedule: Schedule,
    next_due: Instant,
}

impl HealthScheduler {
    /// Starts an empty scheduler probing through `runner` on the current tokio runtime (tests drive it on paused
    /// time this way). Must be called within a tokio runtime.
    pub fn spawn<R: ProbeRunner>(runner: R, config: SchedulerConfig) -> Self {
        let (shared, view) = Shared::new(config);
        let driver = tokio::spawn(drive(Arc::clone(&shared), Arc::new(runner))).abort_handle();
        HealthScheduler { shared, view, driver }
    }

    /// Starts an empty scheduler on a thread of its own running a single-threaded runtime: the driver and every
    /// probe. Thousands of probes a second are small tasks that mostly wait on sockets; on a multi-threaded
    /// runtime each one's spawn and wake-up also wakes other workers (futex calls, and cross-CPU interrupts in a
    /// VM), which cost a third of the checks' CPU at 10,000 a second (benches/tools/health_load.rs, `--workers`).
    /// It also keeps a burst of results from delaying the reconcile loop's tasks. Dropping the scheduler ends the
    /// thread. Fails only when the thread or its runtime cannot be started.
    pub fn spawn_dedicated<R: ProbeRunner>(runner: R, config: SchedulerConfig) -> std::io::Result<Self> {
        let (shared, view) = Shared::new(config);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let driver = runtime.spawn(drive(Arc::clone(&shared), Arc::new(runner)));
        let abort = driver.abort_handle();
        std::thread::Builder::new().name("health-checks".into()).spawn(move || {
            // Returns once the driver is aborted (the scheduler dropped); the runtime then drops every probe.
            let _ = runtime.block_on(driver);
        })?;
        Ok(HealthScheduler { shared, view, driver: abort })
    }

    /// Replaces the set of targets. Targets that stay keep their state and their timing (a shorter interval takes
    /// effect within it); new ones start with their initial state at their hashed offset; removed ones stop
    /// being probed and leave the view (a result of a probe still in flight is dropped).
    pub fn set_targets(&self, targets: BTreeMap<TargetKey, Schedule>) {
        self.set_targets_restoring(targets, &BTreeMap::new());
    }

    /// [`set_targets`](Self::set_targets), with the states a new target starts from when `restored` has one for
    /// its key instead of its initial state: after a restart, the states saved with the engine's state file, so
    /// that a backend that was unhealthy stays out (and a healthy one in) until its checks say otherwise. Targets
    /// already known keep their live state; restored states of keys not in `targets` are ignored.
    pub fn set_targets_restoring(
        &self,
        targets: BTreeMap<TargetKey, Schedule>,
        restored: &BTreeMap<TargetKey, HealthState>,
    ) {
        let now = Instant::now();
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let removed: Vec<Arc<TargetKey>> =
            inner.entries.keys().filter(|key| !targets.contains_key(key.as_ref())).cloned().collect();
        for key in &removed {
            if let Some(entry) = inner.entries.remove(key) {
                inner.queue.remove(&(entry.next_due, Arc::clone(key)));
            }
        }
        let mut added = Vec::new();
        for (key, mut schedule) in targets {
            schedule.interval = schedule.interval.max(MIN_INTERVAL);
            match inner.entries.get_mut(&key) {
                Some(entry) => {
                    entry.schedule = schedule;
                    let latest = now + schedule.interval;
                    if entry.next_due > latest
                        && let Some((_, key)) = inner.queue.take(&(entry.next_due, Arc::new(key)))
                    {
                        entry.next_due = latest;
                        inner.queue.insert((latest, key));
                    }
                }
                None => {
                    let key = Arc::new(key);
                    let next_due = now + start_offset(&key, schedule.interval);
                    inner.next_id += 1;
                    inner.entries.insert(Arc::clone(&key), Entry { id: inner.next_id, schedule, next_due });
                    inner.queue.insert((next_due, Arc::clone(&key)));
                    let state = match restored.get(key.as_ref()) {
                        Some(state) => state.clone(),
                        None => HealthState::new(schedule.initial_healthy),
                    };
                    added.push((key, state));
                }
            }
        }
        if !removed.is_empty() || !added.is_empty() {
            self.shared.view.send_modify(|view| {
                for key in &removed {
                    view.states.remove(key);
                }
                view.states.extend(added);
                view.generation += 1;
            });
        }
        drop(guard);
        self.shared.changed.notify_one();
    }

    /// A receiver of the view, woken on every health change (see [`HealthView::generation`]).
    pub fn subscribe(&self) -> watch::Receiver<HealthView> {
        self.view.clone()
    }

    /// Every target's current state (for `/status`).
    pub fn snapshot(&self) -> HealthView {
        self.view.borrow().clone()
    }

    /// The counters for metrics.
    pub fn counters(&self) -> &SchedulerCounters {
        &self.shared.counters
    }

    /// The counters, for an exporter that outlives this borrow (the HTTP server's).
    pub fn shared_counters(&self) -> Arc<SchedulerCounters> {
        Arc::clone(&self.shared.counters)
    }
}

impl Drop for HealthScheduler {
    fn drop(&mut self) {
        self.driver.abort();
        for flight in self.shared.lock().running.values() {
            flight.abort.abort();
        }
    }
}

impl std::fmt::Debug for HealthScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthScheduler").finish_non_exhaustive()
    }
}

impl Shared {
    fn new(config: SchedulerConfig) -> (Arc<Self>, watch::Receiver<HealthView>) {
        let (view_tx, view) = watch::channel(HealthView::default());
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            view: view_tx,
            changed: Notify::new(),
            permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
            counters: Arc::new(SchedulerCounters::new()),
        });
        (shared, view)
    }

    /// The inner state; a panic elsewhere while holding it leaves consistent data (every update is a few map
    /// operations), so a poisoned lock is used as is rather than stopping all health checking.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a finished probe into its target's state, unless the entry that started it is gone.
    fn record(&self, key: &Arc<TargetKey>, id: u64, result: Result<Duration, ProbeError>) {
        let outcome = result.as_ref().map_or_else(ProbeError::outcome_label, |_| OK_LABEL);
        self.counters.count_result(key.check.probe.kind(), outcome);
        if let Ok(latency) = result {
            self.counters.count_latency(latency);
        }
        let inner = self.lock();
        let Some(entry) = inner.entries.get(key).filter(|entry| entry.id == id) else { return };
        let Schedule { rise, fall, .. } = entry.schedule;
        self.view.send_if_modified(|view| {
            let Some(state) = view.states.get_mut(key) else { return false };
            let Some(transition) = state.record(result.as_ref().copied(), rise, fall, unix_seconds) else {
                return false;
            };
            view.generation += 1;
            let counter = match transition {
                Transition::BecameHealthy => &self.counters.became_healthy,
                Transition::BecameUnhealthy => &self.counters.became_unhealthy,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                target = %key.target,
                source = ?key.source,
                check = key.check.probe.kind_label(),
                healthy = transition.healthy(),
                last_error = state.last_error.as_deref().unwrap_or(""),
                "health check transition"
            );
            true
        });
        drop(inner);
    }

    /// Ends the probes whose deadline passed (counted as timeouts), starts the probes due at `now` and moves their
    /// targets to their next tick; returns when the driver should wake next.
    fn start_due<R: ProbeRunner>(self: &Arc<Self>, now: Instant, runner: &Arc<R>) -> Option<Instant> {
        let mut timed_out = Vec::new();
        let mut guard = self.lock();
        let inner = &mut *guard;
        while inner.deadlines.first().is_some_and(|(deadline, ..)| *deadline <= now) {
            let Some((_, number, key)) = inner.deadlines.pop_first() else { break };
            if let Some(flight) = inner.take_flight(&key, number) {
                flight.abort.abort();
                timed_out.push((key, flight.entry));
            }
        }
        let mut next_due = None;
        while let Some((due, key)) = inner.queue.first().cloned() {
            if due > now {
                next_due = Some(due);
                break;
            }
            inner.queue.remove(&(due, Arc::clone(&key)));
            let Some(entry) = inner.entries.get_mut(&key) else { continue };
            if inner.running.contains_key(&key) {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
            } else {
                inner.next_flight += 1;
                let number = inner.next_flight;
                // The task cannot record anything before this flight is in `running`: it takes the lock first.
                let task =
                    tokio::spawn(probe_once(Arc::clone(self), Arc::clone(runner), Arc::clone(&key), number, now));
                inner.running.insert(
                    Arc::clone(&key),
                    Flight { number, entry: entry.id, deadline: None, abort: task.abort_handle() },
                );
            }
            entry.next_due = next_tick(entry.next_due, entry.schedule.interval, now);
            inner.queue.insert((entry.next_due, key));
        }
        let next_deadline = inner.deadlines.first().map(|(deadline, ..)| *deadline);
        inner.armed = match (next_due, next_deadline) {
            (Some(due), Some(deadline)) => Some(due.min(deadline)),
            (due, deadline) => due.or(deadline),
        };
        let armed = inner.armed;
        drop(guard);
        for (key, entry) in timed_out {
            self.record(&key, entry, Err(ProbeError::Timeout(key.check.timeout)));
        }
        armed
    }

    /// Gives flight `number` of `key` its deadline (it holds a permit now); wakes the driver when that is earlier
    /// than its next wake. `false` when the flight is gone (the target removed, or the scheduler dropped).
    fn start_clock(&self, key: &Arc<TargetKey>, number: u64, deadline: Instant) -> bool {
        let mut inner = self.lock();
        let Some(flight) = inner.running.get_mut(key).filter(|flight| flight.number == number) else { return false };
        flight.deadline = Some(deadline);
        inner.deadlines.insert((deadline, number, Arc::clone(key)));
        let earlier = inner.armed.is_none_or(|armed| deadline < armed);
        if earlier {
            inner.armed = Some(deadline);
        }
        drop(inner);
        if earlier {
            self.changed.notify_one();
        }
        true
    }

    /// Takes flight `number` of `key` off the books; returns the entry that started it, or `None` when the driver
    /// already ended it (its timeout is counted) or it is not the key's current flight.
    fn land(&self, key: &Arc<TargetKey>, number: u64) -> Option<u64> {
        self.lock().take_flight(key, number).map(|flight| flight.entry)
    }
}

impl Inner {
    /// Removes flight `number` of `key` and its deadline, if it is the key's current flight.
    fn take_flight(&mut self, key: &Arc<TargetKey>, number: u64) -> Option<Flight> {
        if self.running.get(key).is_none_or(|flight| flight.number != number) {
            return None;
        }
        let flight = self.running.remove(key)?;
        if let Some(deadline) = flight.deadline {
            self.deadlines.remove(&(deadline, number, Arc::clone(key)));
        }
        Some(flight)
    }
}

/// The first tick after `now` on the grid `due + k × interval`: ticks keep their phase (no drift by the time it
/// takes to start a probe), and ticks missed while the runtime was stalled are skipped, not run in a burst.
fn next_tick(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if next > now {
        return next;
    }
    let behind = now.duration_since(next).as_nanos();
    let step = interval.as_nanos().max(1);
    let skip = u32::try_from(behind / step + 1).unwrap_or(u32::MAX);
    next + interval.saturating_mul(skip)
}

/// One probe, started by the driver at `due`: waits for a permit, starts its deadline's clock, runs, and counts
/// its result and latency unless the driver has ended it at its deadline (then the driver counted a timeout).
async fn probe_once<R: ProbeRunner>(
    shared: Arc<Shared>,
    runner: Arc<R>,
    key: Arc<TargetKey>,
    number: u64,
    due: Instant,
) {
    let mut flying =
        Landing { shared: Arc::clone(&shared), key: Arc::clone(&key), number, permitted: false, landed: false };
    // A free permit starts the clock at the driver's time; only a probe that waited for one reads the clock (in a
    // VM without a usable TSC every reading is a system call).
    let (_permit, start) = match Arc::clone(&shared.permits).try_acquire_owned() {
        Ok(permit) => (permit, due),
        Err(_) => match Arc::clone(&shared.permits).acquire_owned().await {
            Ok(permit) => (permit, Instant::now()),
            Err(_closed) => return,
        },
    };
    shared.counters.in_flight.fetch_add(1, Ordering::Relaxed);
    flying.permitted = true;
    if !shared.start_clock(&key, number, start + key.check.timeout) {
        return;
    }
    let result = runner.probe(&key).await.map(|()| Instant::now().saturating_duration_since(start));
    let entry = shared.land(&key, number);
    flying.landed = true;
    if let Some(entry) = entry {
        shared.record(&key, entry, result);
    }
}

/// Takes a probe off the books when its task ends in any way: finished, aborted at its deadline or with the
/// scheduler, or panicked, so that a key is never left unprobeable and the in-flight count stays right.
struct Landing {
    shared: Arc<Shared>,
    key: Arc<TargetKey>,
    number: u64,
    /// It holds a permit (counted in flight).
    permitted: bool,
    /// The probe finished and took itself off the books: nothing left to take.
    landed: bool,
}

impl Drop for Landing {
    fn drop(&mut self) {
        if self.permitted {
            self.shared.counters.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        if !self.landed {
            // Aborted (at its deadline, with its target, with the scheduler) or panicked; a no-op after the
            // driver's timeout took it.
            let _ = self.shared.land(&self.key, self.number);
        }
    }
}

/// The driver: ends probes at their deadlines, starts due probes, and sleeps until the next of either or a
/// change (of targets, or an earlier deadline). Its one timer is rearmed only when that time changes.
async fn drive<R: ProbeRunner>(shared: Arc<Shared>, runner: Arc<R>) {
    let sleep = tokio::time::sleep_until(Instant::now());
    tokio::pin!(sleep);
    loop {
        let next = shared.start_due(Instant::now(), &runner);
        if let Some(next) = next
            && (sleep.is_elapsed() || sleep.deadline() != next)
        {
            sleep.as_mut().reset(next);
        }
        tokio::select! {
            () = &mut sleep, if next.is_some() => {}
            () = shared.changed.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests;
