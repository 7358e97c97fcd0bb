//! The leader end to end against the stateful fake API (Leases, watches, server-side apply), on paused time: two
//! candidates, one writer; writes only on change, with the fixed field manager, forced; a killed leader's writes
//! pass to the other once the lease expires; a leader that cannot renew stops writing before anyone takes over.

use std::time::Duration;

use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::*;
use crate::agent::metrics::Metrics;
use crate::agent::status::StatusReport;
use crate::verdict::election::ElectionConfig;
use crate::verdict::fake_api::FakeApi;
use crate::verdict::judge::Rules;

fn settings(identity: &str) -> VerdictSettings {
    VerdictSettings {
        election: ElectionConfig {
            lease_name: LEASE_NAME.to_owned(),
            namespace: "ipvs-system".to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        },
        agent_selector: DEFAULT_AGENT_SELECTOR.to_owned(),
        rules: Rules { report: StatusReport::All, progress_deadline: Duration::from_secs(600) },
    }
}

fn entry(node: &str, generation: i64, reason: &str) -> Value {
    json!({"nodeName": node, "observedGeneration": generation, "programmed": reason == "Programmed", "reason": reason})
}

/// A fleet of two nodes with Ready agents, and `prod/web` programmed by both at generation 1.
fn cluster() -> FakeApi {
    let api = FakeApi::default();
    for node in ["node-a", "node-b"] {
        api.put(
            "nodes",
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "labels": {"role": "lb"}}}),
        );
        api.put(
            "pods",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("agent-{node}"), "namespace": "ipvs-system",
                    "labels": {"app.kubernetes.io/name": "ipvs-reconciler"}},
                "spec": {"nodeName": node, "containers": []},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
        );
    }
    // Another namespace's pod with the same label is no agent.
    api.put(
        "pods",
        json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "impostor", "namespace": "default", "labels": {"app.kubernetes.io/name": "ipvs-reconciler"}},
            "spec": {"nodeName": "node-c", "containers": []},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}),
    );
    api.put(
        "virtualservices",
        json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"address": "192.0.2.1", "port": 80},
            "status": {"nodes": [entry("node-a", 1, "Programmed"), entry("node-b", 1, "Programmed")]}}),
    );
    api
}

/// Starts candidate `identity`; the sender stops it (releasing its Lease), aborting the task kills it.
fn start(api: &FakeApi, identity: &str) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        let _ = stopped.await;
    };
    let task =
        tokio::spawn(run(api.client(identity), settings(identity), Metrics::new(Duration::from_secs(60)), shutdown));
    (stop, task)
}

/// Node `node`'s agent reports `reason` at `generation` (its own field manager, as the real agent).
async fn report(api: &FakeApi, node: &str, generation: i64, reason: &str) {
    let vs: Api<VirtualService> = Api::namespaced(api.client(node), "prod");
    let body = json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService",
        "status": {"nodes": [entry(node, generation, reason)]}});
    let params = PatchParams::apply(&format!("ipvs-reconciler/{node}")).force();
    vs.patch_status("web", &params, &Patch::Apply(&body)).await.unwrap();
}

/// The conditions of `prod/web` as the API shows them: type -> (status, reason).
fn conditions(api: &FakeApi) -> Vec<(String, String, String)> {
    let web = api.get("virtualservices", "prod/web").unwrap();
    let mut listed: Vec<(String, String, String)> = web["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let field = |f: &str| c[f].as_str().unwrap_or_default().to_owned();
            (field("type"), field("status"), field("reason"))
        })
        .collect();
    listed.sort();
    listed
}

fn ready(api: &FakeApi) -> Option<(String, String)> {
    conditions(api).into_iter().find(|(t, _, _)| t == "Ready").map(|(_, s, r)| (s, r))
}

/// The verdict writes: (client, time of arrival in the order received).
fn verdict_writes(api: &FakeApi) -> Vec<crate::verdict::fake_api::Applied> {
    api.applied().into_iter().filter(|a| a.manager == FIELD_MANAGER).collect()
}

async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn holder(api: &FakeApi) -> String {
    let lease = api.get("leases", &format!("ipvs-system/{LEASE_NAME}")).unwrap_or_default();
    lease["spec"]["holderIdentity"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(start_paused = true)]
async fn one_leader_writes_each_verdict_once_and_again_only_when_it_changes() {
    let api = cluster();
    let (_stop_a, _a) = start(&api, "agent-a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_stop_b, _b) = start(&api, "agent-b");
    until("Ready", Duration::from_secs(10), || ready(&api) == Some(("True".into(), "Programmed".into()))).await;
    let web = api.get("virtualservices", "prod/web").unwrap();
    assert_eq!(web["status"]["summary"], "2/2 programmed");
    assert_eq!(web["status"]["observedGeneration"], 1);
    assert_eq!(web["status"]["nodes"].as_array().unwrap().len(), 2, "the nodes' entries are left as they were");
    let writes = verdict_writes(&api);
    assert_eq!(writes.len(), 1, "{writes:?}");
    assert_eq!((writes[0].client.as_str(), writes[0].force), ("agent-a", true));
    assert_eq!(writes[0].object, "prod/web");
    assert!(writes[0].body["status"].get("nodes").is_none(), "the leader never sends the nodes' entries");

    // Time passes, leases are renewed, nothing changes: nothing is written.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(verdict_writes(&api).len(), 1);

    // node-b's kernel refuses it: one write, Stalled naming node-b.
    report(&api, "node-b", 1, "KernelRefused").await;
    until("Stalled", Duration::from_secs(10), || ready(&api) == Some(("False".into(), "KernelRefused".into()))).await;
    let web = api.get("virtualservices", "prod/web").unwrap();
    let stalled = web["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Stalled").unwrap();
    assert_eq!(stalled["status"], "True");
    assert!(stalled["message"].as_str().unwrap().contains("node-b"), "{stalled}");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let writes = verdict_writes(&api);
    assert_eq!(writes.len(), 2);
    assert!(writes.iter().all(|w| w.client == "agent-a" && w.force), "only the leader writes: {writes:?}");

    // A spec change: Reconciling at generation 2 until both report it.
    let mut edited = api.get("virtualservices", "prod/web").unwrap();
    edited["spec"]["port"] = json!(81);
    api.put("virtualservices", edited);
    until("Reconciling", Duration::from_secs(10), || {
        conditions(&api).contains(&("Reconciling".into(), "True".into(), "Progressing".into()))
    })
    .await;
    assert_eq!(api.get("virtualservices", "prod/web").unwrap()["status"]["observedGeneration"], 2);
    report(&api, "node-a", 2, "Programmed").await;
    report(&api, "node-b", 2, "Programmed").await;
    until("Ready again", Duration::from_secs(10), || ready(&api) == Some(("True".into(), "Programmed".into()))).await;
}

#[tokio::test(start_paused = true)]
async fn a_killed_leaders_writes_pass_to_the_other_once_its_lease_expires() {
    let api = cluster();
    let (_stop_a, a) = start(&api, "agent-a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_stop_b, _b) = start(&api, "agent-b");
    until("Ready", Duration::from_secs(10), || ready(&api).is_some()).await;
    assert_eq!(holder(&api), "agent-a");

    a.abort(); // kill -9: no release
    let killed = Instant::now();
    report(&api, "node-b", 1, "Conflict").await;
    until("the survivor's verdict", Duration::from_secs(25), || {
        ready(&api) == Some(("False".into(), "Conflict".into()))
    })
    .await;
    // Not before the lease expired (15 s after agent-b last saw it renewed, at most 2 s before the kill).
    assert!(killed.elapsed() >= Duration::from_secs(13), "{:?}", killed.elapsed());
    assert_eq!(holder(&api), "agent-b");
    let writes = verdict_writes(&api);
    assert_eq!(writes.last().map(|w| w.client.as_str()), Some("agent-b"));
    assert!(writes.iter().all(|w| w.manager == FIELD_MANAGER && w.force), "one field manager across leaders");
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_renew_stops_writing_before_another_can_take_over() {
    let api = cluster();
    let (_stop_a, _a) = start(&api, "agent-a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_stop_b, _b) = start(&api, "agent-b");
    until("Ready", Duration::from_secs(10), || ready(&api).is_some()).await;
    assert_eq!(holder(&api), "agent-a");

    // agent-a can no longer reach the Lease, but can still write VirtualServices.
    api.cut_off("agent-a", "leases", true);
    let cut = Instant::now();
    // Wait past agent-a's renew deadline (10 s) but before the lease can expire for agent-b (15 s).
    tokio::time::sleep(Duration::from_secs(11)).await;
    let before = verdict_writes(&api).len();
    report(&api, "node-a", 1, "Invalid").await;
    until("agent-b's verdict", Duration::from_secs(20), || ready(&api) == Some(("False".into(), "Invalid".into())))
        .await;
    assert!(cut.elapsed() >= Duration::from_secs(13), "{:?}", cut.elapsed());
    let late: Vec<String> = verdict_writes(&api)[before..].iter().map(|w| w.client.clone()).collect();
    assert!(late.iter().all(|c| c == "agent-b"), "a stale holder wrote: {late:?}");
    assert_eq!(holder(&api), "agent-b");
}

#[tokio::test(start_paused = true)]
async fn a_stopped_leader_releases_its_lease_and_the_other_takes_over_at_once() {
    let api = cluster();
    let (stop_a, a) = start(&api, "agent-a");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_stop_b, _b) = start(&api, "agent-b");
    until("Ready", Duration::from_secs(10), || ready(&api).is_some()).await;
    stop_a.send(()).unwrap();
    a.await.unwrap();
    let stopped = Instant::now();
    until("agent-b holds the lease", Duration::from_secs(4), || holder(&api) == "agent-b").await;
    assert!(stopped.elapsed() <= Duration::from_secs(3));
}
