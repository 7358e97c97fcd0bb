//! The scheduler on paused tokio time with a scripted prober: when probes run, how often, how many at once, and
//! which ticks publish transitions. Time only moves when every task waits, so the instants asserted are exact.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, sleep_until};

use super::*;
use crate::health::TargetSet;
use crate::health::check::{Check, HttpProbe, Probe};

/// A prober answering from a script: targets are up unless marked down, each probe takes the target's delay.
#[derive(Default)]
struct Fake {
    down: Mutex<BTreeSet<SocketAddr>>,
    delay: Mutex<BTreeMap<SocketAddr, Duration>>,
    calls: Mutex<BTreeMap<TargetKey, u32>>,
    running: Mutex<BTreeMap<TargetKey, u32>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    max_per_key: AtomicUsize,
}

impl Fake {
    fn set_down(&self, target: SocketAddr, down: bool) {
        let mut set = self.down.lock().unwrap();
        if down {
            set.insert(target);
        } else {
            set.remove(&target);
        }
    }

    fn set_delay(&self, target: SocketAddr, delay: Duration) {
        self.delay.lock().unwrap().insert(target, delay);
    }

    fn calls(&self, key: &TargetKey) -> u32 {
        self.calls.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

struct FakeRunner(Arc<Fake>);

impl ProbeRunner for FakeRunner {
    fn probe(&self, key: &TargetKey) -> impl Future<Output = Result<(), ProbeError>> + Send {
        let fake = Arc::clone(&self.0);
        let key = key.clone();
        async move {
            *fake.calls.lock().unwrap().entry(key.clone()).or_default() += 1;
            let now = fake.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            fake.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let same_key = {
                let mut running = fake.running.lock().unwrap();
                let count = running.entry(key.clone()).or_default();
                *count += 1;
                *count as usize
            };
            fake.max_per_key.fetch_max(same_key, Ordering::SeqCst);
            let delay = fake.delay.lock().unwrap().get(&key.target).copied().unwrap_or_default();
            // Leaves the counts consistent when the scheduler's timeout drops this future mid-sleep.
            let _done = Done(Arc::clone(&fake), key.clone());
            tokio::time::sleep(delay).await;
            if fake.down.lock().unwrap().contains(&key.target) { Err(ProbeError::Refused) } else { Ok(()) }
        }
    }
}

struct Done(Arc<Fake>, TargetKey);

impl Drop for Done {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(count) = self.0.running.lock().unwrap().get_mut(&self.1) {
            *count -= 1;
        }
    }
}

fn start(config: SchedulerConfig) -> (HealthScheduler, Arc<Fake>) {
    let fake = Arc::new(Fake::default());
    (HealthScheduler::spawn(FakeRunner(Arc::clone(&fake)), config), fake)
}

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 80))
}

fn tcp(n: u8) -> TargetKey {
    TargetKey::new(addr(n), Check::new(Probe::Tcp, Duration::from_millis(500)))
}

const SECOND: Duration = Duration::from_secs(1);

fn every(interval: Duration, rise: u32, fall: u32) -> Schedule {
    Schedule { interval, rise, fall, initial_healthy: true }
}

fn set(targets: &[(&TargetKey, Schedule)]) -> BTreeMap<TargetKey, Schedule> {
    targets.iter().map(|(key, schedule)| ((*key).clone(), *schedule)).collect()
}

/// Probes started by `elapsed` after the targets were set, for ticks at `offset + k × interval`.
fn ticks_by(key: &TargetKey, interval: Duration, elapsed: Duration) -> u32 {
    let offset = start_offset(key, interval);
    if elapsed < offset { 0 } else { u32::try_from((elapsed - offset).as_nanos() / interval.as_nanos()).unwrap() + 1 }
}

/// Asserts that `key` was probed once per tick by `elapsed`. Offsets are whole milliseconds, so a key may tick at
/// the very instant the test wakes, before or after the test looks: that last tick may or may not be counted.
fn assert_ticked(fake: &Fake, key: &TargetKey, interval: Duration, elapsed: Duration) {
    let calls = fake.calls(key);
    let due = ticks_by(key, interval, elapsed);
    let before = ticks_by(key, interval, elapsed - Duration::from_millis(1));
    assert!((before..=due).contains(&calls), "{key:?}: {calls} probes, {before} to {due} due");
}

#[tokio::test(start_paused = true)]
async fn probes_run_every_interval_from_a_hashed_offset() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = tcp(1);
    let offset = start_offset(&key, SECOND);
    assert!(offset < SECOND);
    assert_eq!(offset, start_offset(&key, SECOND), "the offset is a function of the key");
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, every(SECOND, 2, 3))]));
    if offset > Duration::from_millis(1) {
        sleep_until(t0 + offset - Duration::from_millis(1)).await;
        assert_eq!(fake.calls(&key), 0, "nothing before the offset");
    }
    sleep_until(t0 + offset + Duration::from_millis(500)).await;
    assert_eq!(fake.calls(&key), 1);
    sleep_until(t0 + offset + Duration::from_millis(9_500)).await;
    assert_eq!(fake.calls(&key), 10);
    assert_eq!(scheduler.counters().results("tcp", "ok"), 10);
    assert_eq!(scheduler.counters().latency().count(), 10);
    let view = scheduler.snapshot();
    let state = &view.states[&key];
    assert!(state.healthy);
    assert_eq!(state.consecutive_ok, 10);
    assert_eq!(view.generation, 1, "results that flip nothing do not bump the generation");
}

#[test]
fn offsets_spread_over_the_interval() {
    let offsets: BTreeSet<Duration> = (1..=50).map(|n| start_offset(&tcp(n), SECOND)).collect();
    // Millisecond buckets: a few of 50 keys share one (birthday odds), most do not.
    assert!(offsets.len() >= 40, "{}", offsets.len());
    assert!(offsets.iter().any(|o| *o < SECOND / 2) && offsets.iter().any(|o| *o >= SECOND / 2));
}

#[tokio::test(start_paused = true)]
async fn a_shared_probe_runs_once_for_every_service() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let shared = tcp(1);
    let http = TargetKey::new(addr(1), Check::new(Probe::Http(HttpProbe::new("/")), Duration::from_millis(500)));
    let mut targets = TargetSet::new();
    // Three services: two share backend 10.0.0.1 with the same TCP check, one checks it over HTTP.
    assert!(targets.insert(shared.clone(), every(SECOND, 2, 3)));
    assert!(targets.insert(tcp(2), every(SECOND, 2, 3)));
    assert!(targets.insert(shared.clone(), every(SECOND, 2, 3)), "same schedule: no conflict");
    assert!(targets.insert(http.clone(), every(SECOND, 2, 3)));
    assert_eq!(targets.len(), 3);
    let t0 = Instant::now();
    scheduler.set_targets(targets.into_inner());
    let elapsed = Duration::from_millis(5_500);
    sleep_until(t0 + elapsed).await;
    for key in [&shared, &tcp(2), &http] {
        assert_ticked(&fake, key, SECOND, elapsed);
        assert!(fake.calls(key) >= 5);
    }
}

#[tokio::test(start_paused = true)]
async fn rise_and_fall_transitions_are_published_at_the_right_ticks() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = tcp(1);
    let offset = start_offset(&key, SECOND);
    let mut health = scheduler.subscribe();
    fake.set_down(key.target, true);
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, every(SECOND, 2, 3))]));
    assert_eq!(health.borrow_and_update().generation, 1, "adding a target is a change");

    health.changed().await.unwrap();
    assert_eq!(Instant::now() - t0, offset + 2 * SECOND, "the third failure (fall = 3) flips it");
    {
        let view = health.borrow_and_update();
        assert_eq!(view.generation, 2);
        let state = &view.states[&key];
        assert!(!state.healthy);
        assert_eq!(state.consecutive_fail, 3);
        assert_eq!(state.last_error.as_deref(), Some("connection refused"));
        assert!(state.last_transition.is_some());
    }
    assert_eq!(scheduler.counters().transitions(), (0, 1));
    assert_eq!(scheduler.counters().results("tcp", "refused"), 3);

    fake.set_down(key.target, false);
    health.changed().await.unwrap();
    assert_eq!(Instant::now() - t0, offset + 4 * SECOND, "the second success (rise = 2) flips it back");
    assert_eq!(health.borrow_and_update().healthy(&key), Some(true));
    assert_eq!(scheduler.counters().transitions(), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_target_starting_unhealthy_needs_rise_successes() {
    let (scheduler, _fake) = start(SchedulerConfig::default());
    let key = tcp(1);
    let mut health = scheduler.subscribe();
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, Schedule { initial_healthy: false, ..every(SECOND, 3, 1) })]));
    assert_eq!(health.borrow_and_update().healthy(&key), Some(false));
    health.changed().await.unwrap();
    assert_eq!(Instant::now() - t0, start_offset(&key, SECOND) + 2 * SECOND);
    assert_eq!(health.borrow().healthy(&key), Some(true));
}

#[tokio::test(start_paused = true)]
async fn a_new_target_set_keeps_the_state_and_timing_of_targets_that_stay() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let stays = tcp(1);
    let removed = tcp(2);
    let edited = tcp(3);
    let edited_check = TargetKey { check: Check::new(Probe::Tcp, Duration::from_millis(700)), ..edited.clone() };
    let added = tcp(4);
    fake.set_down(stays.target, true);
    fake.set_down(edited.target, true);
    let offset = start_offset(&stays, SECOND);
    let t0 = Instant::now();
    scheduler.set_targets(set(&[
        (&stays, every(SECOND, 2, 3)),
        (&removed, every(SECOND, 2, 3)),
        (&edited, every(SECOND, 2, 3)),
    ]));
    sleep_until(t0 + offset + Duration::from_millis(1_500)).await;
    assert_eq!(scheduler.snapshot().states[&stays].consecutive_fail, 2);
    let edited_fails = scheduler.snapshot().states[&edited].consecutive_fail;
    assert!(edited_fails >= 1);

    // Another set: `stays` with other thresholds (not part of its key), `removed` gone, `edited` with another
    // timeout (another key), `added` new.
    scheduler.set_targets(set(&[
        (&stays, every(SECOND, 5, 3)),
        (&edited_check, every(SECOND, 2, 3)),
        (&added, every(SECOND, 2, 3)),
    ]));
    let view = scheduler.snapshot();
    assert_eq!(view.states.len(), 3);
    assert_eq!(view.states[&stays].consecutive_fail, 2, "counters kept");
    assert!(!view.states.contains_key(&removed));
    assert!(!view.states.contains_key(&edited));
    assert_eq!(view.states[&edited_check], HealthState::new(true), "a changed check starts again");
    assert_eq!(view.states[&added], HealthState::new(true));
    let removed_calls = fake.calls(&removed);

    // `stays` keeps its ticks: its third failure is at offset + 2 s, as if nothing had changed.
    let mut health = scheduler.subscribe();
    health.wait_for(|view| view.healthy(&stays) == Some(false)).await.unwrap();
    assert_eq!(Instant::now() - t0, offset + 2 * SECOND);

    sleep_until(t0 + Duration::from_secs(10)).await;
    assert_eq!(fake.calls(&removed), removed_calls, "a removed target is not probed any more");
    assert!(fake.calls(&added) >= 5 && fake.calls(&edited_check) >= 5);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded() {
    let (scheduler, fake) = start(SchedulerConfig { max_in_flight: 3 });
    let keys: Vec<TargetKey> = (1..=40).map(tcp).collect();
    for key in &keys {
        fake.set_delay(key.target, Duration::from_millis(200));
    }
    scheduler.set_targets(keys.iter().map(|key| (key.clone(), every(SECOND, 1, 1))).collect());
    let mut seen_in_flight = 0;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        seen_in_flight = seen_in_flight.max(scheduler.counters().in_flight());
    }
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 3, "the bound is reached and never exceeded");
    assert!(seen_in_flight <= 3);
    assert_eq!(fake.max_per_key.load(Ordering::SeqCst), 1);
    // 3 at a time for 200 ms each: 15 probes a second at most, fewer than the 40 due; the rest skip ticks.
    let total: u32 = keys.iter().map(|key| fake.calls(key)).sum();
    assert!((60..=80).contains(&total), "{total}");
    assert!(scheduler.counters().skipped() > 0);
    assert!(keys.iter().all(|key| fake.calls(key) >= 1), "every target gets its turn");
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_is_not_stacked() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = TargetKey::new(addr(1), Check::new(Probe::Tcp, Duration::from_secs(5)));
    fake.set_delay(key.target, Duration::from_millis(2_500));
    let offset = start_offset(&key, SECOND);
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, every(SECOND, 1, 1))]));
    // Probes start at offset + 0, 3, 6, 9 s; the ticks at 1, 2, 4, 5, 7, 8 s find the previous one running.
    sleep_until(t0 + offset + Duration::from_millis(9_500)).await;
    assert_eq!(fake.calls(&key), 4);
    assert_eq!(scheduler.counters().skipped(), 6);
    assert_eq!(fake.max_per_key.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_probe_never_outlives_its_timeout() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = TargetKey::new(addr(1), Check::new(Probe::Tcp, Duration::from_millis(300)));
    fake.set_delay(key.target, Duration::from_secs(60));
    let offset = start_offset(&key, SECOND);
    let mut health = scheduler.subscribe();
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, every(SECOND, 1, 1))]));
    health.wait_for(|view| view.healthy(&key) == Some(false)).await.unwrap();
    assert_eq!(Instant::now() - t0, offset + Duration::from_millis(300));
    assert_eq!(scheduler.snapshot().states[&key].last_error.as_deref(), Some("timed out after 300ms"));
    assert_eq!(fake.in_flight.load(Ordering::SeqCst), 0, "the timed-out probe is gone");
    sleep_until(t0 + offset + Duration::from_millis(1_100)).await;
    assert_eq!(fake.calls(&key), 2, "the next tick probes again");
    assert_eq!(scheduler.counters().skipped(), 0);
    assert_eq!(scheduler.counters().results("tcp", "timeout"), 1);
}

/// A probe's timeout runs from when it holds a permit: waiting behind other probes in a saturated scheduler is not
/// the backend's slowness, and must not fail it.
#[tokio::test(start_paused = true)]
async fn waiting_for_a_permit_does_not_count_into_the_timeout() {
    let (scheduler, fake) = start(SchedulerConfig { max_in_flight: 1 });
    let check = Check::new(Probe::Tcp, Duration::from_millis(300));
    let keys: Vec<TargetKey> = (1..=3).map(|n| TargetKey::new(addr(n), check.clone())).collect();
    for key in &keys {
        fake.set_delay(key.target, Duration::from_millis(200));
    }
    // Due every 10 ms, three probes of 200 ms share one permit: each waits up to 400 ms for it, beyond its timeout.
    scheduler.set_targets(keys.iter().map(|key| (key.clone(), every(Duration::from_millis(10), 1, 1))).collect());
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(scheduler.counters().results("tcp", "timeout"), 0, "200 ms probes, one at a time, never time out");
    assert!(scheduler.counters().results("tcp", "ok") >= 10);
    assert!(keys.iter().all(|key| scheduler.snapshot().healthy(key) == Some(true)));
    assert_eq!(fake.max_in_flight.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn a_result_of_a_removed_target_is_dropped() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = tcp(1);
    fake.set_delay(key.target, Duration::from_millis(400));
    fake.set_down(key.target, true);
    let offset = start_offset(&key, SECOND);
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, every(SECOND, 1, 1))]));
    sleep_until(t0 + offset + Duration::from_millis(100)).await;
    assert_eq!(fake.calls(&key), 1);
    // Removed and added again while its probe runs: the fresh entry must not count the old probe's failure,
    // and must not start a second probe beside it.
    scheduler.set_targets(BTreeMap::new());
    scheduler.set_targets(set(&[(&key, every(SECOND, 1, 1))]));
    sleep_until(t0 + offset + Duration::from_millis(450)).await;
    assert_eq!(scheduler.snapshot().states[&key], HealthState::new(true));
    assert_eq!(fake.max_per_key.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_scheduler_stops_every_probe() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = TargetKey::new(addr(1), Check::new(Probe::Tcp, Duration::from_secs(5)));
    fake.set_delay(key.target, Duration::from_secs(4));
    scheduler.set_targets(set(&[(&key, every(SECOND, 1, 1))]));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(fake.in_flight.load(Ordering::SeqCst), 1);
    drop(scheduler);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(fake.in_flight.load(Ordering::SeqCst), 0);
    let calls = fake.calls(&key);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(fake.calls(&key), calls);
}

#[test]
fn missed_ticks_are_skipped_on_the_same_grid() {
    let t0 = Instant::now();
    assert_eq!(next_tick(t0, SECOND, t0), t0 + SECOND);
    assert_eq!(next_tick(t0, SECOND, t0 + Duration::from_millis(500)), t0 + SECOND);
    assert_eq!(next_tick(t0, SECOND, t0 + SECOND), t0 + 2 * SECOND);
    assert_eq!(next_tick(t0, SECOND, t0 + Duration::from_millis(3_200)), t0 + 4 * SECOND);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_interval_takes_effect_within_it() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let key = tcp(1);
    let slow = Duration::from_secs(60);
    let t0 = Instant::now();
    scheduler.set_targets(set(&[(&key, every(slow, 1, 1))]));
    sleep_until(t0 + start_offset(&key, slow) + Duration::from_millis(1)).await;
    assert_eq!(fake.calls(&key), 1);
    let edited = Instant::now();
    scheduler.set_targets(set(&[(&key, every(SECOND, 1, 1))]));
    sleep_until(edited + SECOND + Duration::from_millis(1)).await;
    assert_eq!(fake.calls(&key), 2, "the next probe comes within the new interval, not after the old one");
    sleep_until(edited + 3 * SECOND + Duration::from_millis(1)).await;
    assert_eq!(fake.calls(&key), 4);
}

#[test]
fn every_probe_type_and_outcome_has_a_counter() {
    let counters = SchedulerCounters::new();
    // Every probe has a kind (an exhaustive match) and every kind is in ALL (one list makes both): counting each
    // cell once and reading 1 back shows that every kind and outcome has a cell of its own.
    for kind in ProbeKind::ALL {
        for outcome in std::iter::once(&OK_LABEL).chain(OUTCOME_LABELS) {
            counters.count_result(*kind, outcome);
            assert_eq!(counters.results(kind.label(), outcome), 1, "{} {outcome}", kind.label());
            assert_eq!(counters.results_of(*kind, outcome), 1, "{} {outcome}", kind.label());
        }
    }
    assert_eq!(counters.results("icmp", "ok"), 0, "unknown labels count nothing");
}

#[test]
fn latencies_fall_into_their_buckets() {
    let counters = SchedulerCounters::new();
    counters.count_latency(Duration::from_micros(300));
    counters.count_latency(Duration::from_millis(1));
    counters.count_latency(Duration::from_millis(7));
    counters.count_latency(Duration::from_secs(30));
    let latency = counters.latency();
    assert_eq!(latency.buckets.len(), LATENCY_BOUNDS.len() + 1);
    assert_eq!(latency.buckets[0], 2, "a bound is inclusive");
    assert_eq!(latency.buckets[3], 1, "7 ms is in the 10 ms bucket");
    assert_eq!(latency.buckets[LATENCY_BOUNDS.len()], 1, "beyond every bound");
    assert_eq!(latency.count(), 4);
    assert_eq!(latency.sum, Duration::from_micros(30_008_300));
}

/// The scheduler with the real prober on loopback (real time): a listening port turns up, a closed one down.
#[tokio::test]
async fn the_real_prober_drives_real_targets() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    };
    let check = Check::new(Probe::Tcp, Duration::from_secs(2));
    let up = TargetKey::new(listener.local_addr().unwrap(), check.clone());
    let down = TargetKey::new(closed, check);
    let scheduler = HealthScheduler::spawn(Prober::new(), SchedulerConfig::default());
    let fast = Duration::from_millis(50);
    scheduler.set_targets(set(&[
        (&up, Schedule { initial_healthy: false, ..every(fast, 2, 1) }),
        (&down, every(fast, 2, 1)),
    ]));
    let mut health = scheduler.subscribe();
    tokio::time::timeout(
        Duration::from_secs(10),
        health.wait_for(|view| view.healthy(&up) == Some(true) && view.healthy(&down) == Some(false)),
    )
    .await
    .expect("both targets settle")
    .unwrap();
    let view = scheduler.snapshot();
    assert_eq!(view.states[&down].last_error.as_deref(), Some("connection refused"));
    assert!(scheduler.counters().results("tcp", "ok") >= 2);
    drop(listener);
}

/// On its own thread (as `run` and `agent` start it), the scheduler probes real targets, and dropping it stops
/// every probe: the listener sees no connection once the drop has settled.
#[tokio::test]
async fn a_scheduler_on_its_own_thread_probes_until_dropped() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let up = TargetKey::new(listener.local_addr().unwrap(), Check::new(Probe::Tcp, Duration::from_secs(2)));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let scheduler = HealthScheduler::spawn_dedicated(Prober::new(), SchedulerConfig::default()).unwrap();
    scheduler.set_targets(set(&[(&up, Schedule { initial_healthy: false, ..every(Duration::from_millis(20), 2, 1) })]));
    let mut health = scheduler.subscribe();
    tokio::time::timeout(Duration::from_secs(10), health.wait_for(|view| view.healthy(&up) == Some(true)))
        .await
        .expect("the target turns healthy")
        .unwrap();
    drop(health);
    drop(scheduler);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let after_drop = accepted.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted.load(Ordering::SeqCst), after_drop, "no probe after the scheduler is dropped");
}

/// Ten thousand targets every second: each is probed once per tick, none skips, the load spreads over the interval.
#[tokio::test(start_paused = true)]
async fn ten_thousand_targets_are_each_probed_once_a_second() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let keys: Vec<TargetKey> = (0..10_000u32)
        .map(|n| {
            let [_, _, hi, lo] = n.to_be_bytes();
            TargetKey::new(SocketAddr::from(([10, 1, hi, lo], 80)), Check::new(Probe::Tcp, Duration::from_millis(500)))
        })
        .collect();
    for key in &keys {
        fake.set_delay(key.target, Duration::from_millis(2));
    }
    let t0 = Instant::now();
    scheduler.set_targets(keys.iter().map(|key| (key.clone(), every(SECOND, 2, 3))).collect());
    sleep_until(t0 + Duration::from_millis(5_500)).await;
    let elapsed = Duration::from_millis(5_500);
    for key in &keys {
        assert_ticked(&fake, key, SECOND, elapsed);
    }
    assert_eq!(scheduler.counters().skipped(), 0);
    assert!(fake.max_in_flight.load(Ordering::SeqCst) <= 256);
}

#[tokio::test(start_paused = true)]
async fn restored_states_replace_the_initial_state_of_new_targets_only() {
    let (scheduler, fake) = start(SchedulerConfig::default());
    let known = tcp(1);
    let returning = tcp(2);
    fake.set_down(known.target, true);
    let set_at = Instant::now();
    scheduler.set_targets(set(&[(&known, every(SECOND, 2, 3))]));
    sleep_until(set_at + start_offset(&known, SECOND) + Duration::from_millis(500)).await;
    let live = scheduler.snapshot().states[&known].clone();
    assert_eq!(live.consecutive_fail, 1);

    let saved_down = HealthState {
        healthy: false,
        consecutive_ok: 0,
        consecutive_fail: 7,
        last_error: Some("connection refused".into()),
        last_transition: Some(1_700_000_000),
    };
    let restored: BTreeMap<TargetKey, HealthState> = [
        (known.clone(), HealthState::new(true)),
        (returning.clone(), saved_down.clone()),
        (tcp(9), saved_down.clone()),
    ]
    .into_iter()
    .collect();
    // `returning` comes back with the saved state although its schedule says it starts healthy.
    scheduler
        .set_targets_restoring(set(&[(&known, every(SECOND, 2, 3)), (&returning, every(SECOND, 2, 3))]), &restored);
    let view = scheduler.snapshot();
    assert_eq!(view.states[&known], live, "a known target keeps its live state");
    assert_eq!(view.states[&returning], saved_down);
    assert!(!view.states.contains_key(&tcp(9)), "restored states do not add targets");

    // It stays down until `rise` successes in a row, like any unhealthy target.
    let mut health = scheduler.subscribe();
    let t0 = Instant::now();
    health.wait_for(|view| view.healthy(&returning) == Some(true)).await.unwrap();
    assert_eq!(Instant::now() - t0, start_offset(&returning, SECOND) + SECOND);
}
