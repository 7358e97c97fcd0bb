//! The election: the pure decision (client-go's rules), then candidates against one stateful fake API on paused
//! time (acquire, hold, take over after expiry, release, a holder cut off from the API).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use tokio::sync::watch;
use tokio::time::Instant;

use super::*;
use crate::verdict::fake_api::FakeApi;

const LEASE: &str = "ipvs-reconciler-status";

fn config(identity: &str) -> ElectionConfig {
    ElectionConfig {
        lease_name: LEASE.to_owned(),
        namespace: "ipvs-system".to_owned(),
        identity: identity.to_owned(),
        lease_duration: Duration::from_secs(15),
        renew_deadline: Duration::from_secs(10),
        retry_period: Duration::from_secs(2),
    }
}

fn wall(second: i64) -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + second).unwrap())
}

fn held_by(step: &Step) -> Option<&str> {
    match step {
        Step::Create(lease) | Step::Replace(lease) => lease.spec.as_ref()?.holder_identity.as_deref(),
        Step::Held { .. } => None,
    }
}

fn lease_of(step: Step) -> Lease {
    match step {
        Step::Create(lease) | Step::Replace(lease) => lease,
        Step::Held { by } => panic!("held by {by}"),
    }
}

#[test]
fn the_timings_are_checked_as_client_go_does() {
    assert!(config("a").check().is_ok());
    let short = ElectionConfig { lease_duration: Duration::from_secs(10), ..config("a") };
    assert!(short.check().unwrap_err().contains("--lease-duration"));
    let tight = ElectionConfig { renew_deadline: Duration::from_secs(2), ..config("a") };
    assert!(tight.check().unwrap_err().contains("--retry-period"));
    assert!(config("").check().unwrap_err().contains("POD_NAME"));
}

#[tokio::test(start_paused = true)]
async fn a_lease_is_taken_only_when_absent_free_or_unchanged_for_its_duration() {
    let start = Instant::now();
    let mut a = Candidate::new(config("agent-a"));
    let mut b = Candidate::new(config("agent-b"));
    // Absent: created, held by A, no transitions yet.
    let created = lease_of(a.step(None, start, wall(0)));
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("agent-a"));
    assert_eq!((spec.lease_duration_seconds, spec.lease_transitions), (Some(15), Some(0)));
    assert_eq!(created.metadata.namespace.as_deref(), Some("ipvs-system"));
    a.written(&created, start);

    // B sees it held, and keeps seeing it held while the record does not change for less than 15 s.
    assert_eq!(b.step(Some(&created), start, wall(0)), Step::Held { by: "agent-a".to_owned() });
    let later = start + Duration::from_secs(14);
    assert!(matches!(b.step(Some(&created), later, wall(14)), Step::Held { .. }));
    // A renews: acquireTime and transitions kept, renewTime moves.
    let renewed = lease_of(a.step(Some(&created), start + Duration::from_secs(2), wall(2)));
    let spec = renewed.spec.clone().unwrap();
    assert_eq!((spec.acquire_time, spec.renew_time), (Some(wall(0)), Some(wall(2))));
    assert_eq!(spec.lease_transitions, Some(0));
    // A changed record restarts B's count: 14 s after the renewal it is still held.
    assert!(matches!(b.step(Some(&renewed), later, wall(14)), Step::Held { .. }));
    assert!(matches!(b.step(Some(&renewed), later + Duration::from_secs(14), wall(28)), Step::Held { .. }));
    // 15 s after B saw the last change, the lease has expired: B takes it, a transition.
    let taken = b.step(Some(&renewed), later + Duration::from_secs(15), wall(29));
    assert_eq!(held_by(&taken), Some("agent-b"));
    let spec = lease_of(taken).spec.unwrap();
    assert_eq!((spec.acquire_time, spec.lease_transitions), (Some(wall(29)), Some(1)));
}

#[tokio::test(start_paused = true)]
async fn a_lease_without_holder_is_taken_at_once_and_only_its_holder_releases_it() {
    let start = Instant::now();
    let mut a = Candidate::new(config("agent-a"));
    let mut b = Candidate::new(config("agent-b"));
    let created = lease_of(a.step(None, start, wall(0)));
    assert_eq!(b.release(&created, wall(1)), None, "not B's to release");
    let released = a.release(&created, wall(1)).expect("A holds it");
    let spec = released.spec.clone().unwrap();
    assert_eq!((spec.holder_identity, spec.lease_duration_seconds), (None, Some(1)));
    assert_eq!(held_by(&b.step(Some(&released), start, wall(1))), Some("agent-b"));
}

/// Runs a candidate; its leadership and a switch that stops it (releasing) — or drop the handle's task to kill it.
fn candidate(
    api: &FakeApi,
    identity: &str,
    config: ElectionConfig,
) -> (Leadership, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let leases: Api<Lease> = Api::namespaced(api.client(identity), "ipvs-system");
    let (tx, rx) = watch::channel(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = ElectionConfig { identity: identity.to_owned(), ..config };
    let task = tokio::spawn(run(leases, Candidate::new(config), tx, async move {
        let _ = stopped.await;
    }));
    (rx, stop, task)
}

fn holder(api: &FakeApi) -> Option<String> {
    api.get("leases", &format!("ipvs-system/{LEASE}"))?["spec"]["holderIdentity"].as_str().map(str::to_owned)
}

#[tokio::test(start_paused = true)]
async fn one_leader_at_a_time_and_a_killed_leader_is_replaced_after_the_lease_expires() {
    let api = FakeApi::default();
    let (a, _stop_a, task_a) = candidate(&api, "agent-a", config("x"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (b, _stop_b, _task_b) = candidate(&api, "agent-b", config("x"));
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(leads(&a) && !leads(&b), "A leads, B never does while A renews");
    }
    assert_eq!(holder(&api).as_deref(), Some("agent-a"));
    let transitions = |api: &FakeApi| {
        api.get("leases", &format!("ipvs-system/{LEASE}")).unwrap()["spec"]["leaseTransitions"].as_i64()
    };
    assert_eq!(transitions(&api), Some(0));

    // kill -9: no release. B takes over once the lease has gone unrenewed for its duration (plus a retry).
    task_a.abort();
    let killed = Instant::now();
    while !leads(&b) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(killed.elapsed() < Duration::from_secs(15 + 3), "B did not take over");
    }
    assert!(
        killed.elapsed() >= Duration::from_secs(13),
        "B took over before the lease expired: {:?}",
        killed.elapsed()
    );
    assert_eq!(holder(&api).as_deref(), Some("agent-b"));
    assert_eq!(transitions(&api), Some(1));
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_stops_releases_and_the_next_takes_over_within_a_retry() {
    let api = FakeApi::default();
    let (a, stop_a, task_a) = candidate(&api, "agent-a", config("x"));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (b, _stop_b, _task_b) = candidate(&api, "agent-b", config("x"));
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(leads(&a));
    stop_a.send(()).unwrap();
    task_a.await.unwrap();
    assert!(!leads(&a), "a stopped candidate does not lead");
    let stopped = Instant::now();
    while !leads(&b) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stopped.elapsed() <= Duration::from_secs(3), "took {:?}", stopped.elapsed());
}

#[tokio::test(start_paused = true)]
async fn a_leader_cut_off_from_the_api_stops_leading_before_anyone_could_take_over() {
    let api = FakeApi::default();
    let (a, _stop, _task) = candidate(&api, "agent-a", config("x"));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(leads(&a));
    api.set_outage(true);
    let cut = Instant::now();
    while leads(&a) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It stops within the renew deadline of its last renewal (at most one retry period before the cut), which is
    // before the lease (15 s from that renewal) could expire for anyone else.
    assert!(cut.elapsed() <= Duration::from_secs(10), "{:?}", cut.elapsed());
    assert!(cut.elapsed() >= Duration::from_secs(7), "{:?}", cut.elapsed());
    api.set_outage(false);
    while !leads(&a) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder(&api).as_deref(), Some("agent-a"), "it renews its own lease again");
}
