//! The agent's loop on the in-memory kernel and paused tokio time: when passes run, what they read, and how they
//! recover.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::{Instant, sleep};

use super::*;
use crate::api::{Age, ObjectId, SourceObject, ValidationError};
use crate::engine::{Engine, FakeKernel};
use crate::model::{ConnCounts, DestKey, ServiceKey};
use crate::source::DesiredState;

const QUIET: Duration = Duration::from_millis(300);
const RESYNC: Duration = Duration::from_secs(60);
/// A little past a deadline: a timer and the test's own sleep due at the same instant wake in no fixed order.
const TICK: Duration = Duration::from_millis(1);

/// One observed pass.
#[derive(Debug, Clone)]
struct Seen {
    kind: PassKind,
    full: bool,
    at: Duration,
    applied: usize,
    ok: bool,
    scope: Vec<ServiceKey>,
}

struct Fixture {
    state: DesiredState,
    kernel: Arc<FakeKernel>,
    /// The VIP interface (every fixture's engine manages addresses).
    addresses: Arc<crate::engine::FakeAddresses>,
    seen: Arc<Mutex<Vec<Seen>>>,
    connects: Arc<AtomicUsize>,
    start: Instant,
    stop: Option<oneshot::Sender<()>>,
    agent: Option<tokio::task::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

fn vip(last: u8) -> ServiceKey {
    ServiceKey::tcp(IpAddr::from([192, 0, 2, last]), 80)
}

fn backend(last: u8) -> DestKey {
    DestKey::new(IpAddr::from([10, 0, 0, last]), 80)
}

/// `VirtualService` `d/web<last>` on `192.0.2.<last>:80` with backends `10.0.0.<b>` for each `b` (weight `w`).
fn web(last: u8, backends: &[(u8, u32)]) -> SourceObject {
    let list: Vec<String> = backends.iter().map(|(b, w)| format!("{{address: 10.0.0.{b}, weight: {w}}}")).collect();
    let yaml =
        format!("address: 192.0.2.{last}\nport: 80\ndrainTimeoutSeconds: 600\nbackends: [{}]\n", list.join(", "));
    SourceObject {
        id: ObjectId::kubernetes("d", format!("web{last}")),
        age: Age::Created { seconds: i64::from(last), nanos: 0 },
        spec: serde_yaml::from_str(&yaml).unwrap(),
        generation: None,
    }
}

impl Fixture {
    fn start(config: AgentConfig) -> Fixture {
        Self::start_with(config, None, tempfile::tempdir().unwrap(), Arc::new(FakeKernel::default()))
    }

    /// An agent running `health`'s checks (if any), its state file in `dir`, over `kernel`.
    fn start_with(
        config: AgentConfig,
        health: Option<crate::health::HealthScheduler>,
        dir: tempfile::TempDir,
        kernel: Arc<FakeKernel>,
    ) -> Fixture {
        let state = DesiredState::new();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let connects = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let addresses = Arc::new(crate::engine::FakeAddresses::watching(Arc::clone(&kernel)));
        let engine = Engine::new(Arc::clone(&kernel), dir.path().join("state.json"))
            .unwrap()
            .with_addresses(Box::new(Arc::clone(&addresses)));
        let connector = {
            let (kernel, connects) = (Arc::clone(&kernel), Arc::clone(&connects));
            move || {
                let (kernel, connects) = (Arc::clone(&kernel), Arc::clone(&connects));
                async move {
                    connects.fetch_add(1, Ordering::SeqCst);
                    kernel.reopen();
                    Ok::<_, ConnectError>(kernel)
                }
            }
        };
        let observer = {
            let seen = Arc::clone(&seen);
            Box::new(move |record: &PassRecord<'_, crate::engine::FakeError>| {
                let (applied, ok) = match record.result {
                    Ok(report) => (report.applied.len(), report.is_success()),
                    Err(_) => (0, false),
                };
                let scope = record.scope.map(|s| s.iter().copied().collect()).unwrap_or_default();
                let at = Instant::now() - start;
                seen.lock().unwrap().push(Seen { kind: record.kind, full: record.full, at, applied, ok, scope });
            })
        };
        let mut agent = Agent::new(engine, connector, state.clone(), config, observer);
        if let Some(health) = health {
            agent = agent.with_health(health);
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            agent
                .run(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Fixture { state, kernel, addresses, seen, connects, start, stop: Some(stop), agent: Some(handle), dir }
    }

    fn apply(&self, object: SourceObject) {
        self.state.update(|index| (index.apply(object), ()));
    }

    fn delete(&self, last: u8) {
        let id = ObjectId::kubernetes("d", format!("web{last}"));
        self.state.update(|index| (index.delete(&id), ()));
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }

    fn weight(&self, last: u8, dest: u8) -> Option<u32> {
        let table = self.kernel.snapshot();
        table.services.get(&vip(last))?.dests.get(&backend(dest)).map(|d| d.config.weight)
    }

    fn now(&self) -> Duration {
        Instant::now() - self.start
    }

    async fn stop(self) {
        self.stop_keeping().await;
    }

    /// Stops the agent; gives back its state directory and kernel (for a restart).
    async fn stop_keeping(mut self) -> (tempfile::TempDir, Arc<FakeKernel>) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(agent) = self.agent.take() {
            agent.await.unwrap();
        }
        (self.dir, self.kernel)
    }
}

/// Lets the agent run until `d` has passed (paused time jumps from timer to timer).
async fn wait(d: Duration) {
    sleep(d).await;
}

/// Wall-clock seconds that follow tokio's (paused) time, so that drain deadlines pass in tests.
fn paused_wall_clock() -> u64 {
    static START: std::sync::OnceLock<(Instant, u64)> = std::sync::OnceLock::new();
    let (start, base) = START.get_or_init(|| (Instant::now(), 1_700_000_000));
    base + (Instant::now() - *start).as_secs()
}

fn config() -> AgentConfig {
    AgentConfig { wall_clock: paused_wall_clock, ..AgentConfig::new(QUIET, RESYNC) }
}

#[tokio::test(start_paused = true)]
async fn nothing_runs_before_the_sources_are_ready_then_a_full_pass_does() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    wait(Duration::from_secs(30)).await;
    assert!(f.seen().is_empty(), "a pass on a partial view would delete: {:?}", f.seen());
    assert!(f.kernel.snapshot().is_empty());

    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [s] if s.kind == PassKind::Resync && s.full && s.applied == 2), "{seen:?}");
    assert_eq!(f.weight(1, 1), Some(1));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_change_waits_for_the_quiet_period_and_reads_only_its_service() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.apply(web(2, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    f.take_seen();
    let reads = f.kernel.full_reads.load(Ordering::SeqCst);

    let changed_at = f.now();
    f.apply(web(2, &[(1, 5)]));
    wait(QUIET - Duration::from_millis(10)).await;
    assert!(f.seen().is_empty(), "passed before the quiet period ended");
    wait(Duration::from_millis(20)).await;
    let seen = f.take_seen();
    let [pass] = seen.as_slice() else { panic!("{seen:?}") };
    assert_eq!((pass.kind, pass.full, pass.applied), (PassKind::Change, false, 1));
    assert_eq!(pass.scope, vec![vip(2)]);
    assert_eq!(pass.at - changed_at, QUIET);
    assert_eq!(f.kernel.full_reads.load(Ordering::SeqCst), reads, "a change pass does not read the whole table");
    assert_eq!(f.weight(2, 1), Some(5));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_changes_is_one_pass_delayed_at_most_the_maximum() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    f.take_seen();

    // A change every half quiet period, for three times the maximum delay.
    let first = f.now();
    let max = config().max_delay;
    let mut weight = 1;
    while f.now() - first < max * 3 {
        weight += 1;
        f.apply(web(1, &[(1, weight)]));
        wait(QUIET / 2).await;
    }
    let seen = f.take_seen();
    assert!(!seen.is_empty(), "a steady stream of changes starved the loop");
    assert!(seen.iter().all(|s| s.kind == PassKind::Change), "{seen:?}");
    assert_eq!(seen[0].at - first, max, "the first pass comes at the maximum delay: {seen:?}");
    assert!(seen.len() <= 3, "one pass per maximum delay, not per change: {seen:?}");
    wait(QUIET + TICK).await;
    assert_eq!(f.weight(1, 1), Some(weight));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn resyncs_read_everything_and_repair_drift() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1), (2, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    f.take_seen();
    // Another tool edits a weight behind our back.
    if let Some(entry) = f.kernel.table.lock().unwrap().services.get_mut(&vip(1)) {
        entry.dests.get_mut(&backend(2)).unwrap().config.weight = 9;
    }
    wait(RESYNC - Duration::from_millis(2)).await;
    assert!(f.seen().is_empty());
    assert_eq!(f.weight(1, 2), Some(9));
    wait(Duration::from_millis(2)).await;
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [s] if s.kind == PassKind::Resync && s.full && s.applied == 1), "{seen:?}");
    assert_eq!(f.weight(1, 2), Some(1));
    wait(RESYNC).await;
    assert!(matches!(f.take_seen().as_slice(), [s] if s.kind == PassKind::Resync && s.applied == 0));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn draining_backends_are_polled_until_their_connections_end() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1), (2, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    // Backend 2 has a connection when it is removed: weight 0, kept while it lasts.
    if let Some(entry) = f.kernel.table.lock().unwrap().services.get_mut(&vip(1)) {
        entry.dests.get_mut(&backend(2)).unwrap().conns = ConnCounts { active: 1, inactive: 0, persistent: 0 };
    }
    f.apply(web(1, &[(1, 1)]));
    wait(QUIET + TICK).await;
    assert_eq!(f.weight(1, 2), Some(0));
    f.take_seen();

    let poll = config().drain_poll;
    wait(poll).await;
    let seen = f.take_seen();
    assert!(
        matches!(seen.as_slice(), [s] if s.kind == PassKind::Drain && !s.full && s.scope == vec![vip(1)]),
        "{seen:?}"
    );
    assert_eq!(f.weight(1, 2), Some(0), "still connected: kept");

    if let Some(entry) = f.kernel.table.lock().unwrap().services.get_mut(&vip(1)) {
        entry.dests.get_mut(&backend(2)).unwrap().conns = ConnCounts::default();
    }
    wait(poll).await;
    assert_eq!(f.weight(1, 2), None, "deleted once its connections ended");
    f.take_seen();
    wait(poll * 3).await;
    assert!(f.seen().iter().all(|s| s.kind != PassKind::Drain), "no polling without drains: {:?}", f.seen());
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_closed_connection_is_replaced_before_the_next_pass() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    assert_eq!(f.connects.load(Ordering::SeqCst), 0);
    f.take_seen();

    f.kernel.closed.store(true, Ordering::SeqCst);
    f.apply(web(1, &[(1, 4)]));
    let reads = f.kernel.full_reads.load(Ordering::SeqCst);
    wait(QUIET + TICK).await;
    assert_eq!(f.connects.load(Ordering::SeqCst), 1, "reconnected");
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [s] if s.ok && s.applied == 1), "{seen:?}");
    // The new connection starts with a full read (nothing was observed through it yet).
    assert_eq!(f.kernel.full_reads.load(Ordering::SeqCst), reads + 1);
    assert_eq!(f.weight(1, 1), Some(4));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_write_is_retried_with_a_full_read_on_a_new_connection() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    f.take_seen();

    // The write is carried out, but its answer is lost with the connection.
    f.kernel.close_on_next_apply.store(true, Ordering::SeqCst);
    f.apply(web(1, &[(1, 3)]));
    wait(QUIET + TICK).await;
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [s] if s.kind == PassKind::Change && !s.ok), "{seen:?}");

    wait(config().retry).await;
    let seen = f.take_seen();
    let [retry] = seen.as_slice() else { panic!("{seen:?}") };
    assert_eq!((retry.kind, retry.full, retry.ok, retry.applied), (PassKind::Retry, true, true, 0));
    assert_eq!(f.connects.load(Ordering::SeqCst), 1);
    assert_eq!(f.weight(1, 1), Some(3));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_read_loses_no_change_and_backs_off() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    f.take_seen();

    f.kernel.fail_reads.store(true, Ordering::SeqCst);
    f.apply(web(1, &[(1, 8)]));
    wait(QUIET + TICK).await;
    let retry = config().retry;
    wait(retry * 3).await;
    let seen = f.take_seen();
    let kinds: Vec<(PassKind, bool)> = seen.iter().map(|s| (s.kind, s.ok)).collect();
    assert_eq!(kinds, vec![(PassKind::Change, false), (PassKind::Retry, false), (PassKind::Retry, false)]);
    assert_eq!(seen[2].at - seen[1].at, retry * 2, "the retry delay doubles: {seen:?}");
    assert_eq!(f.weight(1, 1), Some(1), "nothing changed while reads fail");

    f.kernel.fail_reads.store(false, Ordering::SeqCst);
    wait(retry * 4 + TICK).await;
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [s] if s.kind == PassKind::Retry && s.ok && s.applied == 1), "{seen:?}");
    assert_eq!(f.weight(1, 1), Some(8), "the change taken by the failed pass was not lost");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn deletions_held_for_an_unreadable_object_are_made_once_it_is_fixed() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.apply(web(2, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;

    let broken = ObjectId::document("broken.yaml", 0);
    f.state.update(|index| {
        (index.apply_unreadable(broken.clone(), vec![ValidationError::new(broken.clone(), "spec", "bad")]), ())
    });
    f.delete(1);
    wait(QUIET + TICK).await;
    assert!(f.kernel.snapshot().services.contains_key(&vip(1)), "deleted while an object names no service");

    // Fixing the broken object changes no service key, yet the held deletion must now happen.
    f.state.update(|index| (index.delete(&broken), ()));
    wait(QUIET + TICK).await;
    assert!(!f.kernel.snapshot().services.contains_key(&vip(1)), "{:?}", f.seen());
    assert!(f.kernel.snapshot().services.contains_key(&vip(2)));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_frozen_service_is_left_as_it_is() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    let mut bad = web(1, &[(1, 7)]);
    bad.spec.scheduler = Some("nope".into());
    f.apply(bad);
    wait(QUIET + TICK).await;
    wait(RESYNC).await;
    assert_eq!(f.weight(1, 1), Some(1), "an invalid object's service keeps its last good configuration");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_ends_the_loop_and_leaves_the_table() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(Duration::from_millis(1)).await;
    let kernel = Arc::clone(&f.kernel);
    f.stop().await;
    assert_eq!(kernel.snapshot().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn drain_polls_look_at_the_draining_services_not_the_last_change() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1), (2, 1)]));
    f.apply(web(2, &[(1, 1)]));
    f.state.mark_ready();
    wait(TICK).await;
    if let Some(entry) = f.kernel.table.lock().unwrap().services.get_mut(&vip(1)) {
        entry.dests.get_mut(&backend(2)).unwrap().conns = ConnCounts { active: 1, inactive: 0, persistent: 0 };
    }
    f.apply(web(1, &[(1, 1)]));
    wait(QUIET + TICK).await;
    // The last change is to another service; the drain poll must still look at web1.
    f.apply(web(2, &[(1, 3)]));
    wait(QUIET + TICK).await;
    f.take_seen();
    wait(config().drain_poll).await;
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [s] if s.kind == PassKind::Drain && s.scope == vec![vip(1)]), "{seen:?}");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_drain_ends_at_its_deadline_even_with_connections() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1), (2, 1)]));
    f.state.mark_ready();
    wait(TICK).await;
    if let Some(entry) = f.kernel.table.lock().unwrap().services.get_mut(&vip(1)) {
        entry.dests.get_mut(&backend(2)).unwrap().conns = ConnCounts { active: 1, inactive: 0, persistent: 0 };
    }
    f.apply(web(1, &[(1, 1)]));
    wait(QUIET + TICK).await;
    assert_eq!(f.weight(1, 2), Some(0));
    // drainTimeoutSeconds is 600 in these objects.
    wait(Duration::from_secs(590)).await;
    assert_eq!(f.weight(1, 2), Some(0), "kept before its deadline");
    wait(Duration::from_secs(20)).await;
    assert_eq!(f.weight(1, 2), None, "deleted at its deadline although still connected");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_connection_is_replaced_even_when_only_its_errors_tell() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(TICK).await;
    f.kernel.hide_closed.store(true, Ordering::SeqCst);
    f.kernel.close_on_next_apply.store(true, Ordering::SeqCst);
    f.apply(web(1, &[(1, 2)]));
    wait(QUIET + TICK).await;
    wait(config().retry).await;
    assert_eq!(f.connects.load(Ordering::SeqCst), 1, "{:?}", f.seen());
    assert_eq!(f.weight(1, 1), Some(2));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn refused_operations_are_tried_again_without_waiting_for_the_resync() {
    let f = Fixture::start(config());
    f.kernel.refuse_services.lock().unwrap().insert(vip(1));
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(TICK).await;
    assert!(f.kernel.snapshot().is_empty());
    // The kernel would take it now (a module loaded, say).
    f.kernel.refuse_services.lock().unwrap().clear();
    wait(config().retry + TICK).await;
    assert_eq!(f.weight(1, 1), Some(1), "{:?}", f.seen());
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn changes_do_not_postpone_the_resync() {
    let f = Fixture::start(config());
    f.apply(web(1, &[(1, 1)]));
    f.state.mark_ready();
    wait(TICK).await;
    f.take_seen();
    // A change half way through the resync period.
    wait(RESYNC / 2).await;
    f.apply(web(1, &[(1, 2)]));
    wait(RESYNC / 2).await;
    let seen = f.take_seen();
    let kinds: Vec<PassKind> = seen.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![PassKind::Change, PassKind::Resync], "drift is repaired on schedule: {seen:?}");
    f.stop().await;
}

/// Health checks answered from a script: a backend address in `down` refuses, every other one answers at once.
#[derive(Clone, Default)]
struct Checks {
    down: Arc<Mutex<std::collections::BTreeSet<IpAddr>>>,
}

impl Checks {
    fn set_down(&self, last: u8, down: bool) {
        let addr = IpAddr::from([10, 0, 0, last]);
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(addr);
        } else {
            set.remove(&addr);
        }
    }

    fn scheduler(&self) -> crate::health::HealthScheduler {
        crate::health::HealthScheduler::spawn(self.clone(), crate::health::SchedulerConfig::default())
    }
}

impl crate::health::ProbeRunner for Checks {
    fn probe(
        &self,
        key: &crate::health::TargetKey,
    ) -> impl Future<Output = Result<(), crate::health::ProbeError>> + Send {
        let down = self.down.lock().unwrap().contains(&key.target.ip());
        async move { if down { Err(crate::health::ProbeError::Refused) } else { Ok(()) } }
    }
}

/// `object` with one more line of spec (`key: value`).
fn extended(mut object: SourceObject, line: &str) -> SourceObject {
    let yaml = format!("{}{line}\n", serde_yaml::to_string(&object.spec).unwrap());
    object.spec = serde_yaml::from_str(&yaml).unwrap();
    object
}

/// `d/web<last>` with TCP checks every 2 s, rise 2, fall 2, and backends `10.0.0.<b>` of weight `w`.
fn checked(last: u8, backends: &[(u8, u32)], extra: &str) -> SourceObject {
    let check = format!("healthCheck: {{type: TCP, intervalSeconds: 2, timeoutSeconds: 1, rise: 2, fall: 2{extra}}}");
    extended(web(last, backends), &check)
}

#[tokio::test(start_paused = true)]
async fn a_failing_backend_gets_weight_zero_and_its_weight_back_once_it_recovers() {
    let checks = Checks::default();
    let f = Fixture::start_with(config(), Some(checks.scheduler()), tempfile::tempdir().unwrap(), Arc::default());
    f.apply(checked(1, &[(1, 5), (2, 3)], ""));
    f.apply(web(2, &[(1, 7)]));
    f.state.mark_ready();
    wait(Duration::from_millis(10)).await;
    assert_eq!((f.weight(1, 1), f.weight(1, 2)), (Some(5), Some(3)), "backends start healthy (the default)");
    f.take_seen();
    let reads = f.kernel.full_reads.load(Ordering::SeqCst);

    checks.set_down(1, true);
    // Two failed checks, two seconds apart, then the pass: within fall × interval.
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!((f.weight(1, 1), f.weight(1, 2)), (Some(0), Some(3)), "only the failing backend is out");
    assert_eq!(f.weight(2, 1), Some(7), "a service without checks is left alone, though it shares the backend");
    let seen = f.take_seen();
    let [pass] = seen.as_slice() else { panic!("one health pass: {seen:?}") };
    assert_eq!((pass.kind, pass.full, pass.applied, pass.scope.clone()), (PassKind::Health, false, 1, vec![vip(1)]));
    assert_eq!(f.kernel.full_reads.load(Ordering::SeqCst), reads, "a health pass reads only its service");

    checks.set_down(1, false);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!(f.weight(1, 1), Some(5), "back after rise × interval");
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [p] if p.kind == PassKind::Health && p.applied == 1), "{seen:?}");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn removal_on_failure_drains_the_backend_and_a_sorry_server_answers_when_none_is_left() {
    let checks = Checks::default();
    let f = Fixture::start_with(config(), Some(checks.scheduler()), tempfile::tempdir().unwrap(), Arc::default());
    f.apply(extended(checked(1, &[(1, 1), (2, 1)], ", onFailure: Remove"), "sorryServer: {address: 10.0.0.9}"));
    f.state.mark_ready();
    wait(Duration::from_millis(10)).await;
    assert_eq!(f.weight(1, 9), None, "no sorry server while the backends are healthy");
    checks.set_down(1, true);
    wait(Duration::from_secs(4) + TICK).await;
    // Removed like a backend that left the spec: drained while it has connections (it has none here).
    assert_eq!((f.weight(1, 1), f.weight(1, 2), f.weight(1, 9)), (None, Some(1), None));
    checks.set_down(2, true);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!(f.weight(1, 9), Some(1), "no healthy backend left: the sorry server is in");
    checks.set_down(2, false);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!((f.weight(1, 2), f.weight(1, 9)), (Some(1), None), "one back: the sorry server is withdrawn");
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_takeover_keeps_every_live_weight_until_the_backends_own_checks_decide() {
    // keepalived built the table: web1 (alpha: backends start down) serves on 1 at weight 5, keepalived inhibited
    // 2 (weight 0); web3 (remove on failure) lost 4, which keepalived removed. No state file: a first start.
    let kernel = Arc::new(FakeKernel::with_table(crate::table::fixtures::live([
        crate::table::fixtures::live_entry(vip(1), "wlc", &[(backend(1), 5, 0, 0), (backend(2), 0, 0, 0)]),
        crate::table::fixtures::live_entry(vip(3), "wlc", &[(backend(3), 1, 0, 0)]),
    ])));
    let checks = Checks::default();
    checks.set_down(2, true);
    checks.set_down(4, true);
    let f = Fixture::start_with(config(), Some(checks.scheduler()), tempfile::tempdir().unwrap(), kernel);
    f.apply(checked(1, &[(1, 5), (2, 3)], ", initialState: Unhealthy"));
    f.apply(checked(3, &[(3, 1), (4, 1)], ", onFailure: Remove"));
    f.state.mark_ready();
    wait(Duration::from_millis(10)).await;
    let seen = f.take_seen();
    assert!(matches!(seen.as_slice(), [p] if p.full && p.ok && p.applied == 0), "adopted, nothing changed: {seen:?}");
    assert_eq!((f.weight(1, 1), f.weight(1, 2)), (Some(5), Some(0)), "alpha does not drop a serving backend");
    assert_eq!((f.weight(3, 3), f.weight(3, 4)), (Some(1), None), "a removed backend is not put back untested");

    // Then the checks decide: 1 fails (fall 2), 2 and 4 recover (rise 2).
    checks.set_down(1, true);
    checks.set_down(2, false);
    checks.set_down(4, false);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!((f.weight(1, 1), f.weight(1, 2)), (Some(0), Some(3)));
    assert_eq!(f.weight(3, 4), Some(1));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_keeps_every_backend_where_its_checks_left_it() {
    let checks = Checks::default();
    let f = Fixture::start_with(config(), Some(checks.scheduler()), tempfile::tempdir().unwrap(), Arc::default());
    f.apply(checked(1, &[(1, 5), (2, 3)], ""));
    f.state.mark_ready();
    wait(Duration::from_millis(10)).await;
    checks.set_down(1, true);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!(f.weight(1, 1), Some(0));
    let (dir, kernel) = f.stop_keeping().await;

    // The same kernel and state file; the backend is still down. Its initial state would be healthy, but the
    // saved one says it is not: the first pass must not put it back, even for a moment.
    let f = Fixture::start_with(config(), Some(checks.scheduler()), dir, kernel);
    f.apply(checked(1, &[(1, 5), (2, 3)], ""));
    f.state.mark_ready();
    wait(Duration::from_millis(10)).await;
    let seen = f.take_seen();
    assert!(
        matches!(seen.as_slice(), [p] if p.full && p.applied == 0),
        "nothing to change after the restart: {seen:?}"
    );
    assert_eq!((f.weight(1, 1), f.weight(1, 2)), (Some(0), Some(3)));
    checks.set_down(1, false);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!(f.weight(1, 1), Some(5));
    f.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_service_with_every_backend_down_withdraws_its_vip_and_gets_it_back_on_recovery() {
    let checks = Checks::default();
    let f = Fixture::start_with(config(), Some(checks.scheduler()), tempfile::tempdir().unwrap(), Arc::default());
    f.apply(extended(checked(1, &[(1, 5), (2, 3)], ""), "withdrawAddressWhenDown: true"));
    f.apply(web(2, &[(1, 7)]));
    f.state.mark_ready();
    wait(Duration::from_millis(10)).await;
    let vips = |lasts: &[u8]| lasts.iter().map(|l| IpAddr::from([192, 0, 2, *l])).collect::<BTreeSet<_>>();
    assert_eq!(f.addresses.addrs(), vips(&[1, 2]));

    checks.set_down(1, true);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!(f.addresses.addrs(), vips(&[1, 2]), "one backend left: the VIP stays");
    checks.set_down(2, true);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!((f.weight(1, 1), f.weight(1, 2)), (Some(0), Some(0)));
    assert_eq!(f.addresses.addrs(), vips(&[2]), "nothing takes connections: withdrawn; the other service keeps its");
    assert!(f.kernel.snapshot().services.contains_key(&vip(1)), "the service itself stays, ready for recovery");

    checks.set_down(2, false);
    wait(Duration::from_secs(4) + TICK).await;
    assert_eq!(f.addresses.addrs(), vips(&[1, 2]), "back with the first healthy backend");
    let events = f.addresses.take_events();
    let last = events.last().expect("address events");
    assert!(last.added && last.addr == IpAddr::from([192, 0, 2, 1]), "{events:?}");
    f.stop().await;
}
