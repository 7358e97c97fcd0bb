//! What one VirtualService change costs the agent apart from the kernel, at 1,000 and 10,000 VirtualServices: the
//! watch event through the Kubernetes source into the index, the snapshot the agent's pass takes, and after the pass
//! the status writer's decisions (`--status-report all` and `none`). The kernel side of a change pass is scoped to
//! the changed service; this is what could grow with the number of objects. Target (issue 6): the same cost at both
//! sizes (the end-to-end ratio is measured in the VM by `tests/vm/bench/agent-latency`).
//!
//! With `--admission pools` (issue 18): the same change with 100 pools (one per namespace of 1% of the objects),
//! and what a pool edit costs (it re-decides the objects whose key the pool grants, and those not admitted).
//!
//! `cargo bench --bench agent_change`

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::watcher::Event;

use ipvs_reconciler::agent::status::{KernelOutcome, StatusBook, StatusReport};
use ipvs_reconciler::api::VirtualService;
use ipvs_reconciler::api::pool::{VirtualServicePool, VirtualServicePoolSpec};
use ipvs_reconciler::source::admission::AdmissionMode;
use ipvs_reconciler::source::kubernetes::{KubeEvent, KubeFeed};
use ipvs_reconciler::source::{DesiredState, ReportsWanted};

/// Pools mode: object `i` lives in namespace `team-{i % 100}`.
const TEAMS: usize = 100;

fn virtual_service(i: usize, weight: u32) -> VirtualService {
    let spec = serde_json::json!({
        "address": format!("198.18.{}.{}", i / 250, i % 250 + 1), "port": 80, "scheduler": "rr",
        "backends": [{"address": format!("10.{}.{}.1", i / 250 % 250, i % 250), "port": 8080, "weight": weight}],
    });
    let mut object = VirtualService::new(&format!("vs-{i}"), serde_json::from_value(spec).unwrap_or_default());
    object.metadata.namespace = Some("bench".to_owned());
    object.metadata.generation = Some(i64::from(weight));
    object.metadata.creation_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000).unwrap()));
    object
}

/// Object `i` of a pools-mode run: in its team's namespace.
fn team_service(i: usize, weight: u32) -> VirtualService {
    let mut object = virtual_service(i, weight);
    object.metadata.namespace = Some(format!("team-{}", i % TEAMS));
    object
}

/// Team `t`'s pool: the addresses of its objects (every `TEAMS`-th), as /32s; `wide` adds a range no object uses
/// (an edit that changes no admission).
fn pool(t: usize, n: usize, wide: bool) -> VirtualServicePool {
    let mut addresses: Vec<String> =
        (t..n).step_by(TEAMS).map(|i| format!("198.18.{}.{}/32", i / 250, i % 250 + 1)).collect();
    if wide {
        addresses.push("203.0.113.0/24".to_owned());
    }
    let spec = VirtualServicePoolSpec { addresses, namespaces: vec![format!("team-{t}")], ..Default::default() };
    VirtualServicePool::new(&format!("team-{t}"), spec)
}

/// A feed that has listed `n` VirtualServices and the Node, and whose first snapshot is taken.
fn listed(n: usize) -> (DesiredState, KubeFeed) {
    listed_with(n, AdmissionMode::Open)
}

/// The same in `mode`; in pools mode every object is admitted by its team's pool.
fn listed_with(n: usize, mode: AdmissionMode) -> (DesiredState, KubeFeed) {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1").with_admission(mode);
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Init)));
    for i in 0..n {
        let object = if mode == AdmissionMode::Pools { team_service(i, 1) } else { virtual_service(i, 1) };
        feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitApply(object))));
    }
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitDone)));
    if mode == AdmissionMode::Pools {
        feed.on_event(KubeEvent::Pool(Box::new(Event::Init)));
        for t in 0..TEAMS {
            feed.on_event(KubeEvent::Pool(Box::new(Event::InitApply(pool(t, n, false)))));
        }
        feed.on_event(KubeEvent::Pool(Box::new(Event::InitDone)));
        feed.on_event(KubeEvent::Namespace(Box::new(Event::Init)));
        feed.on_event(KubeEvent::Namespace(Box::new(Event::InitDone)));
    }
    feed.on_event(KubeEvent::Slice(Box::new(Event::Init)));
    feed.on_event(KubeEvent::Slice(Box::new(Event::InitDone)));
    feed.on_event(KubeEvent::Node(Box::new(Event::Init)));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitApply(Node::default()))));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitDone)));
    assert!(state.is_ready());
    assert_eq!(state.take().table.services.len(), n);
    (state, feed)
}

fn change(c: &mut Criterion) {
    let mut group = c.benchmark_group("agent_change");
    group.sample_size(30);
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap());
    let kernel = KernelOutcome::default();
    for n in [1_000usize, 10_000] {
        let (state, mut feed) = listed(n);
        let mut weight = 1;
        let mut edit = |feed: &mut KubeFeed| {
            weight = weight % 100 + 2;
            feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(virtual_service(7, weight)))));
        };
        // The agent keeps its snapshot and patches it (`take_into`); `state.take()` would copy the whole table.
        let mut snapshot = state.take();
        group.bench_with_input(BenchmarkId::new("event_to_snapshot", n), &n, |b, _| {
            b.iter(|| {
                edit(&mut feed);
                state.take_into(&mut snapshot, false);
                assert_eq!(snapshot.changed.len(), 1);
                snapshot.destinations
            })
        });
        let whole = state.take();
        assert_eq!((&snapshot.table, snapshot.destinations), (&whole.table, whole.destinations), "patched = whole");
        for mode in [StatusReport::All, StatusReport::None] {
            // A fresh index: the status writer is its only follower of reports.
            let (state, mut feed) = listed(n);
            let mut snapshot = state.take();
            let mut book = StatusBook::new("n1", mode);
            // The first call gives every report (the writer starts complete); later ones what changed.
            let changes = state.changed_reports(&ReportsWanted::default());
            assert_eq!(changes.len(), n);
            for due in book.due_changed(&changes, &kernel, &now, |_| None) {
                if let Some(entry) = due.write {
                    book.written(due.id, entry);
                }
            }
            let name = format!("status_after_change_{mode:?}").to_lowercase();
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    edit(&mut feed);
                    state.take_into(&mut snapshot, false);
                    let changes = state.changed_reports(&ReportsWanted::default());
                    let mut writes = 0;
                    for due in book.due_changed(&changes, &kernel, &now, |_| None) {
                        if let Some(entry) = due.write {
                            book.written(due.id, entry);
                            writes += 1;
                        }
                    }
                    assert!(writes <= 1);
                    writes
                })
            });
        }
    }
    group.finish();
}

fn pools(c: &mut Criterion) {
    let mut group = c.benchmark_group("agent_change_pools");
    group.sample_size(30);
    for n in [1_000usize, 10_000] {
        let (state, mut feed) = listed_with(n, AdmissionMode::Pools);
        let mut snapshot = state.take();
        let mut weight = 1;
        group.bench_with_input(BenchmarkId::new("event_to_snapshot", n), &n, |b, _| {
            b.iter(|| {
                weight = weight % 100 + 2;
                feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(team_service(7, weight)))));
                state.take_into(&mut snapshot, false);
                assert_eq!(snapshot.changed.len(), 1);
                snapshot.destinations
            })
        });
        // A pool edit that re-decides its team's objects (1% of them) and changes no admission.
        let mut wide = false;
        group.bench_with_input(BenchmarkId::new("pool_edit_to_snapshot", n), &n, |b, _| {
            b.iter(|| {
                wide = !wide;
                feed.on_event(KubeEvent::Pool(Box::new(Event::Apply(pool(7, n, wide)))));
                state.take_into(&mut snapshot, false);
                assert!(snapshot.changed.is_empty());
                snapshot.not_admitted
            })
        });
        // A pool deleted and created again: its team's objects leave the table and come back.
        group.bench_with_input(BenchmarkId::new("pool_revoke_and_grant", n), &n, |b, _| {
            b.iter(|| {
                feed.on_event(KubeEvent::Pool(Box::new(Event::Delete(pool(7, n, false)))));
                state.take_into(&mut snapshot, false);
                assert_eq!(snapshot.changed.len(), n / TEAMS);
                feed.on_event(KubeEvent::Pool(Box::new(Event::Apply(pool(7, n, false)))));
                state.take_into(&mut snapshot, false);
                assert_eq!(snapshot.table.services.len(), n);
                snapshot.not_admitted
            })
        });
    }
    group.finish();
}

criterion_group!(benches, change, pools);
criterion_main!(benches);
