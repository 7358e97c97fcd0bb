//! API load of a fleet (issue 6, item 8): N nodes × V VirtualServices, one change at a time, for each
//! `--status-report` mode: status writes (server-side apply PATCHes), how many of them changed nothing, the
//! VirtualService watch events the agents receive, and the bytes involved.
//!
//! Why a simulation and not a formula: the figures depend on the exact decisions of the status logic (which entries
//! change when a generation moves, when a withdrawal is sent, whether another node's write can change ours), and a
//! formula would only restate what we believe it does. So every agent here runs the real code: its index is the
//! real `ObjectIndex`, fed the real conversion of the VirtualServices (`source::kubernetes::object_of`), the
//! EndpointSlices (`slice_of`) and its Node's labels; its status decisions are the real `StatusBook` (`entry`, `kept`,
//! write only when the entry differs from the one sent or, before this run sent any, from the one the watch shows);
//! the patch body is the real `apply_body`.
//! Only the API server is a model, as small as the load question allows:
//!
//! - objects with `generation` and `resourceVersion`; `status.nodes` is a list-map keyed by `nodeName`, merged per
//!   field manager (an applier owns the entries it sends; an entry it stops sending is removed unless another manager
//!   owns it; `force` takes ownership);
//! - a write that changes the object bumps `resourceVersion` and is one MODIFIED watch event, delivered to every
//!   agent (each watches all VirtualServices, no server-side filtering by node); a write that changes nothing is a
//!   no-op: no new `resourceVersion`, no event (the API server skips such updates);
//! - agents run in rounds: every agent that received an event in a round runs a pass over its reports (more often
//!   than the real agent, which passes only when its index's revision moves, so a status-only event costs it no
//!   pass); the writes of a round are delivered before the next. The simulation must reach a fixed point, a round
//!   without writes, within a few rounds: another node's write, or an agent's own, must never change an entry (no
//!   write storm). A last pass of every agent at a later clock (a resync) must write nothing either.
//!
//! Nodes with the same labels see the same objects, slices and labels, so they share one index (its reports are
//! the same for each); every agent keeps its own `StatusBook`, and its watch's view of its own entry is the server's
//! (rounds deliver everything before the next pass). Watch bytes are approximate: the JSON of the object's spec and
//! metadata, its status entries, and per manager an estimate of its `managedFields` entry.
//!
//! Not counted: PATCH responses, LISTs and re-lists, EndpointSlice and Node traffic beyond the scenarios' own
//! events, kubelet and kube-proxy traffic, the API server's CPU and etcd (see BENCHMARKS.md, "API load model").
//!
//! The leader (issue 19): one agent also holds the Lease and writes each object's `observedGeneration`, `conditions`
//! and `summary`. It runs the real `verdict::court::Court` (`fleet`, `judge`, `written`: the real judgement, the
//! real "only when it differs from what the object shows and from what this leader sent"), fed what its watches
//! would show: each object as the model holds it (spec, metadata and every status field), every Node's labels and
//! one agent pod per node (`spec.nodeName`, a Ready condition). Its writes go through the same model API server
//! (field manager `ipvs-reconciler-status`, forced: the fields it sends replace those it owned): one that changes the
//! object is one MODIFIED event to every agent. Timing, as the rounds allow: the real leader judges after a quiet
//! period of 0.5 s, at most 3 s after the first change of a burst; here it judges once per round, concurrently with
//! the agents' passes (both see what the round before delivered), the objects changed since its last judgement
//! (every object after a Node or agent pod event, a new term, or the resync). A round is one second of the court's
//! clock (`tokio::time::Instant`), so the 60 s progress deadline never passes (asserted). `API_LOAD_SPREADS` (default
//! `1,5`) spreads the nodes' passes over K rounds: node n passes first in round 1 + n mod K of each scenario, i.e. a
//! rollout whose reports arrive over K of the leader's windows. Asserted besides the fixed point: an agent woken
//! only by the leader's writes writes nothing, and a leader write never moves an agent's index.
//!
//! `cargo bench --bench api_load` (release profile; about a second at 100 × 100, minutes at 1,000 × 1,000).
//! `API_LOAD_SIZES=100x100,1000x1000` chooses sizes. Under `cargo test --all-targets` (CI) it runs 100 × 100 only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use tokio::time::Instant;

use ipvs_reconciler::agent::status::{Due, KernelOutcome, StatusBook, StatusReport, apply_body};
use ipvs_reconciler::api::ObjectId;
use ipvs_reconciler::api::v1alpha1::{API_VERSION, NodeStatus, VirtualService, VirtualServiceStatus};
use ipvs_reconciler::source::kubernetes::{SERVICE_NAME_LABEL, object_of, slice_of};
use ipvs_reconciler::source::{ObjectIndex, ObjectReport};
use ipvs_reconciler::verdict::FIELD_MANAGER;
use ipvs_reconciler::verdict::court::{Court, Write};
use ipvs_reconciler::verdict::judge::Rules;

const NAMESPACE: &str = "default";
/// The label `vs-0001`'s node selector asks for.
const LB_LABEL: &str = "ipvs.dev/lb";
/// Rounds after which the simulation counts as a write storm (plus the spread's rounds).
const MAX_ROUNDS: usize = 8;
/// The court's clock moves this much per round: one of the leader's windows (0.5 s quiet, 3 s at most).
const ROUND: Duration = Duration::from_secs(1);
/// `--progress-deadline`'s default.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(60);
/// The agents' namespace and pod label (the DaemonSet's).
const AGENT_NAMESPACE: &str = "ipvs-system";
const AGENT_LABEL: (&str, &str) = ("app.kubernetes.io/name", "ipvs-reconciler");

/// The VirtualServices of the fleet: `vs-0001` selects nodes by label, `vs-0002` takes its backends from Service
/// `svc-2`'s EndpointSlice, the others have two static backends and select every node.
fn virtual_service(i: usize, address_of: usize, weight: i64) -> VirtualService {
    let mut spec = serde_json::json!({
        "address": address(address_of), "port": 80,
        "backends": [{"address": "10.0.0.1", "port": 8080, "weight": weight}, {"address": "10.0.0.2", "port": 8080}],
    });
    if i == 1 {
        spec["nodeSelector"] = serde_json::json!({"matchLabels": {LB_LABEL: "true"}});
    }
    if i == 2 {
        spec["backends"] = serde_json::json!([]);
        spec["backendsFrom"] = serde_json::json!([{"service": "svc-2", "port": "http"}]);
    }
    let mut object = VirtualService::new(&name(i), serde_json::from_value(spec).unwrap());
    object.metadata.namespace = Some(NAMESPACE.to_owned());
    object.metadata.generation = Some(1);
    // Older objects win a conflict: vs-0000 is the oldest.
    let created = k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + i as i64).unwrap();
    object.metadata.creation_timestamp = Some(Time(created));
    object
}

fn name(i: usize) -> String {
    format!("vs-{i:04}")
}

fn address(i: usize) -> String {
    format!("198.18.{}.{}", i / 250, i % 250 + 1)
}

/// Service `svc-2`'s one EndpointSlice, with `ready` ready endpoints.
fn slice(ready: usize) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some("svc-2-abcde".to_owned()),
            namespace: Some(NAMESPACE.to_owned()),
            labels: Some([(SERVICE_NAME_LABEL.to_owned(), "svc-2".to_owned())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        ports: Some(vec![EndpointPort { name: Some("http".to_owned()), port: Some(8080), ..EndpointPort::default() }]),
        endpoints: Some(
            (0..ready)
                .map(|d| Endpoint {
                    addresses: vec![format!("10.1.0.{}", d + 1)],
                    conditions: Some(EndpointConditions { ready: Some(true), ..EndpointConditions::default() }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
    }
}

fn node_name(n: usize) -> String {
    format!("node-{n:04}")
}

fn at(second: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000 + second).unwrap())
}

/// JSON size of `value`.
fn json_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).unwrap().len()
}

/// An estimate of the `managedFields` entry a node's field manager holds for its one entry.
fn managed_fields_len(node: &str) -> usize {
    json_len(&serde_json::json!({
        "manager": format!("ipvs-reconciler/{node}"), "operation": "Apply", "apiVersion": "ipvs.dev/v1alpha1",
        "time": "2027-01-15T08:00:00Z", "fieldsType": "FieldsV1", "subresource": "status",
        "fieldsV1": {"f:status": {"f:nodes": {format!("k:{{\"nodeName\":\"{node}\"}}"): {
            ".": {}, "f:backends": {}, "f:lastTransitionTime": {}, "f:nodeName": {}, "f:observedGeneration": {},
            "f:programmed": {}, "f:reason": {}}}}},
    })) + 1
}

/// An estimate of the `managedFields` entry of the leader's field manager: `observedGeneration`, `summary` and the
/// three conditions.
fn verdict_managed_len() -> usize {
    let condition = serde_json::json!({".": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:observedGeneration": {},
        "f:reason": {}, "f:status": {}, "f:type": {}});
    let conditions: serde_json::Map<String, serde_json::Value> = ["Ready", "Reconciling", "Stalled"]
        .into_iter()
        .map(|t| (format!("k:{{\"type\":\"{t}\"}}"), condition.clone()))
        .collect();
    json_len(&serde_json::json!({
        "manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": API_VERSION,
        "time": "2027-01-15T08:00:00Z", "fieldsType": "FieldsV1", "subresource": "status",
        "fieldsV1": {"f:status": {"f:observedGeneration": {}, "f:summary": {}, "f:conditions": conditions}},
    })) + 1
}

/// Node `n`'s agent pod, Ready or not.
fn agent_pod(n: usize, ready: bool) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("ipvs-reconciler-{n:04}")),
            namespace: Some(AGENT_NAMESPACE.to_owned()),
            labels: Some([(AGENT_LABEL.0.to_owned(), AGENT_LABEL.1.to_owned())].into()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec { node_name: Some(node_name(n)), ..PodSpec::default() }),
        status: Some(PodStatus {
            phase: Some("Running".to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

/// One VirtualService as the API server holds it.
struct Stored {
    /// Spec and metadata (`generation`, `resourceVersion`); the status is `nodes`.
    object: VirtualService,
    /// `status.nodes`, by `nodeName`: the entry, its JSON size and the field managers that own it.
    nodes: BTreeMap<String, (NodeStatus, usize, BTreeSet<String>)>,
    /// The entries each field manager owns.
    managers: BTreeMap<String, BTreeSet<String>>,
    /// JSON size of spec and metadata.
    base_len: usize,
    /// JSON size of the status entries and of the managers' `managedFields` entries.
    status_len: usize,
    /// The leader's fields: `observedGeneration`, `conditions`, `summary` (`nodes` stays empty here).
    verdict: VirtualServiceStatus,
    /// Their JSON size and the leader's `managedFields` entry (0 before its first write).
    verdict_len: usize,
}

/// Why a watch event was sent.
#[derive(Clone, Copy, PartialEq)]
enum Cause {
    Spec,
    /// A node's entry.
    Status,
    /// The leader's fields.
    Verdict,
}

/// The API server: VirtualServices, and the watch events not yet delivered.
struct Server {
    objects: Vec<Stored>,
    by_id: HashMap<ObjectId, usize>,
    resource_version: u64,
    /// One per write that changed an object: the object and its JSON size then.
    events: Vec<(usize, usize, Cause)>,
    /// The `managedFields` estimate of one manager (node names have one length).
    managed_len: usize,
    /// JSON size of the apply body with an empty list.
    empty_body_len: usize,
    /// The leader's `managedFields` estimate.
    verdict_managed_len: usize,
}

impl Server {
    fn new(objects: Vec<VirtualService>, managed_len: usize) -> Self {
        let mut server = Server {
            objects: Vec::new(),
            by_id: HashMap::new(),
            resource_version: 1,
            events: Vec::new(),
            managed_len,
            empty_body_len: json_len(&apply_body(None)),
            verdict_managed_len: verdict_managed_len(),
        };
        for object in objects {
            let id = object_of(&object).id;
            server.by_id.insert(id, server.objects.len());
            let base_len = json_len(&object);
            server.objects.push(Stored {
                object,
                nodes: BTreeMap::new(),
                managers: BTreeMap::new(),
                base_len,
                status_len: 0,
                verdict: VirtualServiceStatus::default(),
                verdict_len: 0,
            });
        }
        server
    }

    /// A user's update of the spec: a new generation.
    fn update_spec(&mut self, i: usize, object: VirtualService) {
        let stored = &mut self.objects[i];
        let generation = stored.object.metadata.generation.unwrap_or(0) + 1;
        stored.object.spec = object.spec;
        stored.object.metadata.generation = Some(generation);
        stored.base_len = json_len(&stored.object);
        self.bump(i, Cause::Spec);
    }

    fn bump(&mut self, i: usize, cause: Cause) {
        self.resource_version += 1;
        let stored = &mut self.objects[i];
        stored.object.metadata.resource_version = Some(self.resource_version.to_string());
        self.events.push((i, stored.base_len + stored.status_len + stored.verdict_len, cause));
    }

    /// Object `i` as a watch shows it: spec, metadata and the whole status.
    fn seen(&self, i: usize) -> VirtualService {
        let stored = &self.objects[i];
        let mut object = stored.object.clone();
        let mut status = stored.verdict.clone();
        status.nodes = stored.nodes.values().map(|(entry, _, _)| entry.clone()).collect();
        object.status = Some(status);
        object
    }

    /// The leader's server-side apply of `write` (its one field manager, forced): the fields it sends replace the
    /// ones it owned, the nodes' entries stay. Returns whether the object changed.
    fn apply_verdict(&mut self, write: &Write) -> bool {
        let i = self.by_id[&write.id];
        let sent: VirtualServiceStatus = serde_json::from_value(write.body["status"].clone()).unwrap();
        assert!(sent.nodes.is_empty(), "the leader sent node entries");
        let stored = &mut self.objects[i];
        if stored.verdict == sent {
            return false;
        }
        stored.verdict_len = json_len(&sent) + self.verdict_managed_len;
        stored.verdict = sent;
        self.bump(i, Cause::Verdict);
        true
    }

    /// `node`'s entry in object `id`'s status (what that node's watch shows).
    fn shown(&self, id: &ObjectId, node: &str) -> Option<NodeStatus> {
        self.by_id.get(id).and_then(|i| self.objects[*i].nodes.get(node)).map(|(entry, _, _)| entry.clone())
    }

    /// Server-side apply of `status.nodes = entries` by `manager`, forced, in a body of `body_len` bytes; returns
    /// whether the object changed (its entries, or who owns them).
    fn apply_status(&mut self, id: &ObjectId, manager: &str, entries: Vec<NodeStatus>, body_len: usize) -> bool {
        let i = self.by_id[id];
        let (managed_len, empty_body_len) = (self.managed_len, self.empty_body_len);
        let stored = &mut self.objects[i];
        let sent: BTreeSet<String> = entries.iter().map(|e| e.node_name.clone()).collect();
        let before = stored.managers.remove(manager).unwrap_or_default();
        let mut changed = before != sent;
        if !before.is_empty() {
            stored.status_len -= managed_len;
        }
        // Entries this manager stops sending go, unless another manager owns them too.
        for gone in before.difference(&sent) {
            let Some((_, len, owners)) = stored.nodes.get_mut(gone) else { continue };
            owners.remove(manager);
            if owners.is_empty() {
                stored.status_len -= *len;
                stored.nodes.remove(gone);
            }
        }
        // What the entries add to the empty list, and a comma each.
        let len = (body_len - empty_body_len) / entries.len().max(1) + 1;
        for entry in entries {
            let name = entry.node_name.clone();
            match stored.nodes.get_mut(&name) {
                Some((held, held_len, owners)) => {
                    // Forced: the entry's other owners lose it.
                    for other in owners.iter().filter(|o| *o != manager) {
                        changed = true;
                        if let Some(owned) = stored.managers.get_mut(other) {
                            owned.remove(&name);
                        }
                    }
                    *owners = [manager.to_owned()].into();
                    if *held != entry {
                        changed = true;
                        stored.status_len = stored.status_len - *held_len + len;
                        (*held, *held_len) = (entry, len);
                    }
                }
                None => {
                    changed = true;
                    stored.status_len += len;
                    stored.nodes.insert(name, (entry, len, [manager.to_owned()].into()));
                }
            }
        }
        if !sent.is_empty() {
            stored.status_len += managed_len;
            stored.managers.insert(manager.to_owned(), sent);
        }
        if changed {
            self.bump(i, Cause::Status);
        }
        changed
    }
}

/// Nodes with the same labels: one index (the real one) and its reports.
struct Class {
    labels: BTreeMap<String, String>,
    index: ObjectIndex,
    reports: Vec<ObjectReport>,
}

struct Agent {
    class: usize,
    book: StatusBook,
    /// Received an event since its last pass.
    woken: bool,
    /// ... and every event it received since was a leader's write: its pass must write nothing.
    by_verdict_only: bool,
}

/// The elected agent's verdict work (its node's status work is one of the agents').
struct Leader {
    court: Court,
    rules: Rules,
    /// The agent pods, one per node (its pod watch).
    pods: Vec<Pod>,
    /// Objects changed since its last judgement.
    dirty: BTreeSet<usize>,
    /// Judge every object: a Node or agent pod changed, a new term, a resync.
    all: bool,
    /// When each object's verdict changes by itself (a waiting node's deadline), as `Court::judge` returns it.
    deadlines: HashMap<usize, Instant>,
}

/// What one scenario cost.
#[derive(Default)]
struct Load {
    patches: u64,
    noops: u64,
    patch_bytes: u64,
    /// VirtualService watch events, summed over the agents that received them.
    vs_events: u64,
    vs_event_bytes: u64,
    /// Node and EndpointSlice watch events received.
    other_events: u64,
    /// Events (events.k8s.io) published: a create, or a patch of a repeated one.
    k8s_events: u64,
    rounds: usize,
    /// Times the model woke the leader at a verdict's deadline (the settling time of `failures`).
    deadline_wakes: usize,
    /// The leader's status writes, those that changed nothing, their bodies' bytes.
    verdict_writes: u64,
    verdict_noops: u64,
    verdict_bytes: u64,
    /// The watch events its writes caused, summed over the agents, and their bytes (part of `vs_events`).
    verdict_events: u64,
    verdict_event_bytes: u64,
    /// Objects the leader judged, and its judgements (rounds in which it judged any).
    judged: u64,
    judgements: u64,
    /// Node and pod events the leader's own watches received.
    leader_inputs: u64,
    /// Agents' passes woken only by the leader's writes (each must write nothing).
    verdict_only_passes: u64,
}

struct Fleet {
    mode: StatusReport,
    server: Server,
    classes: Vec<Class>,
    agents: Vec<Agent>,
    leader: Leader,
    clock: i64,
    /// The court's clock at `clock` 0.
    start: Instant,
    /// Node n passes first in round 1 + n mod `spread` of a scenario.
    spread: usize,
    load: Load,
}

impl Fleet {
    /// `nodes` agents, all labelled for `vs-0001`, each having listed `services` VirtualServices (empty status) and
    /// the EndpointSlice of `svc-2` with 3 ready endpoints; nobody has passed yet.
    fn new(nodes: usize, services: usize, mode: StatusReport, spread: usize) -> Self {
        let objects: Vec<VirtualService> = (0..services).map(|i| virtual_service(i, i, 1)).collect();
        let server = Server::new(objects.clone(), managed_fields_len(&node_name(0)));
        let labels: BTreeMap<String, String> = [(LB_LABEL.to_owned(), "true".to_owned())].into();
        let mut index = ObjectIndex::new();
        index.reset(objects.iter().map(object_of).collect(), Vec::new());
        let (service, slice_name, slice) = slice_of(&slice(3)).unwrap();
        index.set_slice(service, &slice_name, Some(slice));
        index.set_node_labels(Some(labels.clone()));
        let reports = index.reports();
        let agents = (0..nodes)
            .map(|n| Agent { class: 0, book: StatusBook::new(node_name(n), mode), woken: true, by_verdict_only: false })
            .collect();
        let leader = Leader {
            court: Court::new(),
            rules: Rules { report: mode, progress_deadline: PROGRESS_DEADLINE },
            pods: (0..nodes).map(|n| agent_pod(n, true)).collect(),
            dirty: BTreeSet::new(),
            all: true,
            deadlines: HashMap::new(),
        };
        Fleet {
            mode,
            server,
            classes: vec![Class { labels, index, reports }],
            agents,
            leader,
            clock: 0,
            start: Instant::now(),
            spread: spread.max(1),
            load: Load::default(),
        }
    }

    /// The court's clock now.
    fn instant(&self) -> Instant {
        self.start + ROUND * u32::try_from(self.clock).unwrap()
    }

    /// Runs passes and delivers their writes until a round writes nothing, then a resync pass of every agent;
    /// returns what it cost since the last call.
    fn settle(&mut self) -> Load {
        self.deliver();
        loop {
            assert!(
                self.load.rounds < MAX_ROUNDS + self.spread + self.load.deadline_wakes,
                "{:?}: no fixed point after {} rounds: a write storm",
                self.mode,
                self.load.rounds
            );
            let leader_due = self.leader.all || !self.leader.dirty.is_empty();
            if !self.agents.iter().any(|a| a.woken) && !leader_due {
                // The resync: every agent passes again, later, and the leader judges every object.
                self.agents.iter_mut().for_each(|a| (a.woken, a.by_verdict_only) = (true, false));
                self.leader.all = true;
            }
            self.load.rounds += 1;
            let (writes, everyone) = self.round();
            self.deliver();
            if writes == 0 && everyone {
                // With `--status-report failures` a new generation's verdict waits a settling time for refusals
                // (judge::FAILURES_SETTLE): the real leader wakes at that deadline and judges again; so does the model.
                let Some(first) = self.leader.deadlines.values().min().copied() else { break };
                let ticks = i64::try_from((first - self.start).as_secs().div_ceil(ROUND.as_secs())).unwrap();
                self.clock = self.clock.max(ticks - 1);
                self.leader.all = true;
                self.load.deadline_wakes += 1;
                assert!(self.load.deadline_wakes <= 3, "{:?}: deadlines keep coming", self.mode);
            }
        }
        assert!(
            self.leader.deadlines.is_empty(),
            "{:?}: a fixed point with a verdict still waiting for its deadline",
            self.mode
        );
        std::mem::take(&mut self.load)
    }

    /// One pass of every woken agent (in parallel: they are independent) and the leader's judgement, on the same
    /// state; then the agents' writes, in agent order, and the leader's. Returns the writes and whether every agent
    /// passed and the leader judged every object.
    fn round(&mut self) -> (usize, bool) {
        self.clock += 1;
        let now = at(self.clock);
        let kernel = KernelOutcome::default();
        let round = self.load.rounds;
        let spread = self.spread;
        let everyone = round >= spread && self.agents.iter().all(|a| a.woken) && self.leader.all;
        let (classes, server) = (&self.classes, &self.server);
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = self.agents.len().div_ceil(threads).max(1);
        let dues: Vec<Vec<Due>> = std::thread::scope(|scope| {
            let workers: Vec<_> = self
                .agents
                .chunks_mut(chunk)
                .map(|agents| {
                    let now = &now;
                    let kernel = &kernel;
                    scope.spawn(move || {
                        agents
                            .iter_mut()
                            .map(|agent| {
                                // Node n's first pass of a scenario comes in round 1 + n mod spread.
                                let n: usize = agent.book.node()["node-".len()..].parse().unwrap();
                                if !agent.woken || round < 1 + n % spread {
                                    return Vec::new();
                                }
                                agent.woken = false;
                                let node = agent.book.node().to_owned();
                                let reports = &classes[agent.class].reports;
                                agent.book.due(reports, kernel, now, |id| server.shown(id, &node))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
        });
        let verdicts = self.judge();
        let mut writes = 0;
        for (agent, dues) in self.agents.iter_mut().zip(dues) {
            let manager = agent.book.field_manager();
            let by_verdict_only = !agent.woken && std::mem::take(&mut agent.by_verdict_only);
            self.load.verdict_only_passes += u64::from(by_verdict_only);
            for due in dues {
                self.load.k8s_events += u64::from(due.event.is_some());
                let Some(wanted) = due.write else { continue };
                assert!(
                    !by_verdict_only,
                    "{:?}: {} writes {} after only the leader's writes: a storm between leader and agents",
                    self.mode,
                    agent.book.node(),
                    due.id
                );
                writes += 1;
                self.load.patches += 1;
                let body_len = json_len(&apply_body(wanted.as_ref()));
                self.load.patch_bytes += body_len as u64;
                if !self.server.apply_status(&due.id, &manager, wanted.clone().into_iter().collect(), body_len) {
                    self.load.noops += 1;
                }
                agent.book.written(due.id, wanted);
            }
        }
        for write in verdicts {
            writes += 1;
            self.load.verdict_writes += 1;
            self.load.verdict_bytes += json_len(&write.body) as u64;
            if !self.server.apply_verdict(&write) {
                self.load.verdict_noops += 1;
            }
            self.leader.court.written(write);
        }
        (writes, everyone)
    }

    /// The leader's judgement of the objects changed since the last one (all of them after a fleet event), with the
    /// real court; returns the writes it owes.
    fn judge(&mut self) -> Vec<Write> {
        let now = self.instant();
        let leader = &mut self.leader;
        let targets: Vec<usize> = if std::mem::take(&mut leader.all) {
            leader.dirty.clear();
            (0..self.server.objects.len()).collect()
        } else {
            std::mem::take(&mut leader.dirty).into_iter().collect()
        };
        if targets.is_empty() {
            return Vec::new();
        }
        let wall = at(self.clock);
        // Only `failures`' settling time may pass (the model wakes the leader for it); the progress deadline must not.
        if let Some(first) = leader.deadlines.values().min() {
            let settling = leader.rules.report == StatusReport::Failures;
            assert!(*first > now || settling, "{:?}: the progress deadline passed in the model", self.mode);
        }
        let nodes = self.agents.iter().map(|a| (a.book.node().to_owned(), self.classes[a.class].labels.clone()));
        let fleet = leader.court.fleet(nodes, leader.pods.iter(), now);
        self.load.judgements += 1;
        self.load.judged += targets.len() as u64;
        let mut writes = Vec::new();
        for i in targets {
            let (write, deadline) = leader.court.judge(&self.server.seen(i), &fleet, &leader.rules, now, &wall);
            writes.extend(write);
            match deadline {
                Some(deadline) => leader.deadlines.insert(i, deadline),
                None => leader.deadlines.remove(&i),
            };
        }
        writes
    }

    /// Delivers the pending watch events to every agent: each class's index takes the objects as converted (a
    /// status-only change must leave it as it was), and every agent is woken.
    fn deliver(&mut self) {
        let events = std::mem::take(&mut self.server.events);
        if events.is_empty() {
            return;
        }
        let agents = self.agents.len() as u64;
        self.load.vs_events += events.len() as u64 * agents;
        self.load.vs_event_bytes += events.iter().map(|(_, len, _)| *len as u64).sum::<u64>() * agents;
        let verdicts: Vec<usize> = events.iter().filter(|e| e.2 == Cause::Verdict).map(|e| e.1).collect();
        self.load.verdict_events += verdicts.len() as u64 * agents;
        self.load.verdict_event_bytes += verdicts.iter().map(|len| *len as u64).sum::<u64>() * agents;
        let only_verdicts = verdicts.len() == events.len();
        let mut changed: BTreeMap<usize, Cause> = BTreeMap::new();
        for (i, _, cause) in &events {
            let c = changed.entry(*i).or_insert(*cause);
            if *cause == Cause::Spec {
                *c = Cause::Spec;
            }
        }
        // The leader's watch sees every change, its own writes included.
        self.leader.dirty.extend(changed.keys());
        for class in &mut self.classes {
            let revision = class.index.revision();
            for (i, cause) in &changed {
                let moved = class.index.revision();
                class.index.apply(object_of(&self.server.objects[*i].object));
                assert!(
                    *cause == Cause::Spec || class.index.revision() == moved,
                    "a status-only change of {} re-resolved the index",
                    name(*i)
                );
            }
            if class.index.revision() != revision {
                class.reports = class.index.reports();
            }
        }
        for agent in &mut self.agents {
            agent.by_verdict_only = only_verdicts && (agent.by_verdict_only || !agent.woken);
            agent.woken = true;
        }
    }

    /// Agent `n`'s Node gets `labels` (its own Node watch event; its index re-evaluates the node selectors).
    fn relabel(&mut self, n: usize, labels: BTreeMap<String, String>) {
        let class = match self.classes.iter().position(|c| c.labels == labels) {
            Some(class) => class,
            None => {
                let mut index = self.classes[self.agents[n].class].index.clone();
                index.set_node_labels(Some(labels.clone()));
                let reports = index.reports();
                self.classes.push(Class { labels, index, reports });
                self.classes.len() - 1
            }
        };
        self.agents[n].class = class;
        self.agents[n].woken = true;
        self.agents[n].by_verdict_only = false;
        self.load.other_events += 1;
        // The leader watches every Node's labels.
        self.leader.all = true;
        self.load.leader_inputs += 1;
    }

    /// An EndpointSlice change: a watch event for every agent.
    fn set_slice(&mut self, changed: &EndpointSlice) {
        let (service, slice_name, slice) = slice_of(changed).unwrap();
        for class in &mut self.classes {
            class.index.set_slice(service.clone(), &slice_name, Some(slice.clone()));
            class.reports = class.index.reports();
        }
        self.agents.iter_mut().for_each(|a| (a.woken, a.by_verdict_only) = (true, false));
        self.load.other_events += self.agents.len() as u64;
    }

    /// Every agent restarts: a new writer, whose watch lists the objects as they are; the leader too: a new term,
    /// a new court that judges every object (its pods' readiness is left out here: see `set_pod`).
    fn restart(&mut self) {
        for agent in &mut self.agents {
            agent.book = StatusBook::new(agent.book.node().to_owned(), self.mode);
            (agent.woken, agent.by_verdict_only) = (true, false);
        }
        self.leader.court = Court::new();
        self.leader.deadlines.clear();
        self.leader.all = true;
    }

    /// Node `n`'s agent pod: Ready, not Ready, or gone (`None`); one event for the leader's pod watch. The agents
    /// do not watch pods.
    fn set_pod(&mut self, n: usize, ready: Option<bool>) {
        let name = node_name(n);
        self.leader.pods.retain(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) != Some(name.as_str()));
        if let Some(ready) = ready {
            self.leader.pods.push(agent_pod(n, ready));
        }
        self.leader.all = true;
        self.load.leader_inputs += 1;
    }

    /// Entries in the status of every object.
    fn entries(&self) -> usize {
        self.server.objects.iter().map(|o| o.nodes.len()).sum()
    }

    /// The JSON size of the largest object (etcd refuses one above 1.5 MiB by default).
    fn largest(&self) -> usize {
        self.server.objects.iter().map(|o| o.base_len + o.status_len + o.verdict_len).max().unwrap_or(0)
    }
}

fn mode_name(mode: StatusReport) -> &'static str {
    match mode {
        StatusReport::All => "all",
        StatusReport::Failures => "failures",
        StatusReport::None => "none",
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000_000_000 => format!("{:.0} TB", b as f64 / 1e12),
        b if b >= 10_000_000_000 => format!("{:.0} GB", b as f64 / 1e9),
        b if b >= 1_000_000_000 => format!("{:.1} GB", b as f64 / 1e9),
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} B"),
    }
}

fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs every scenario on one fleet, in order (each starts from the fixed point of the one before); returns the
/// table rows. The agent pod events (g–i) only with `spread` 1: the agents write nothing in them.
fn scenarios(nodes: usize, services: usize, mode: StatusReport, spread: usize) -> Vec<(String, Load, usize, usize)> {
    let mut fleet = Fleet::new(nodes, services, mode, spread);
    let mut rows = Vec::new();
    let mut row = |what: &str, fleet: &mut Fleet| {
        let load = fleet.settle();
        rows.push((what.to_owned(), load, fleet.entries(), fleet.largest()));
    };
    row("a) start, empty status → fixed point", &mut fleet);

    // vs-0003: another weight, programmed everywhere still.
    fleet.server.update_spec(3, virtual_service(3, 3, 5));
    row("b) spec change, still programmed (vs-0003 weight)", &mut fleet);

    // vs-0004 takes vs-0000's address: the older vs-0000 keeps it, vs-0004 conflicts on every node.
    fleet.server.update_spec(4, virtual_service(4, 0, 1));
    row("c) spec change → Conflict on every node (vs-0004)", &mut fleet);
    fleet.server.update_spec(4, virtual_service(4, 4, 1));
    row("c) its revert", &mut fleet);

    // Every 10th node loses the label vs-0001 selects.
    for n in (0..nodes).step_by(10) {
        fleet.relabel(n, [(LB_LABEL.to_owned(), "false".to_owned())].into());
    }
    row("d) 10 % of nodes relabelled: vs-0001 stops selecting them", &mut fleet);

    fleet.set_slice(&slice(4));
    row("e) EndpointSlice: one ready endpoint more (vs-0002)", &mut fleet);

    fleet.restart();
    row("f) every agent restarts (rolling update), the leader too (new term)", &mut fleet);

    if spread == 1 && nodes > 1 {
        // node-0001: every object selects it.
        fleet.set_pod(1, Some(false));
        row("g) one agent pod not Ready (node-0001)", &mut fleet);
        fleet.set_pod(1, Some(true));
        row("h) Ready again", &mut fleet);
        // Its replacement, each step in its own window of the leader: the old pod gone, the new one not Ready,
        // then Ready.
        fleet.set_pod(1, None);
        row("i) one agent pod replaced: 1. the old pod gone", &mut fleet);
        fleet.set_pod(1, Some(false));
        row("i) 2. the new pod, not Ready", &mut fleet);
        fleet.set_pod(1, Some(true));
        row("i) 3. Ready", &mut fleet);
    }
    rows
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` (CI) does not: there a short sample checks that the
    // model still reaches its fixed points, and the 1,000 × 1,000 figures are left to `cargo bench`.
    let benching = std::env::args().any(|a| a == "--bench");
    let default_sizes = if benching { "100x100,1000x1000" } else { "100x100" };
    let sizes = std::env::var("API_LOAD_SIZES").unwrap_or_else(|_| default_sizes.to_owned());
    let spreads = std::env::var("API_LOAD_SPREADS").unwrap_or_else(|_| "1,5".to_owned());
    let spreads: Vec<usize> = spreads.split(',').map(|k| k.parse().unwrap()).collect();
    for size in sizes.split(',') {
        let (nodes, services) = size.split_once('x').unwrap();
        let (nodes, services): (usize, usize) = (nodes.parse().unwrap(), services.parse().unwrap());
        let started = std::time::Instant::now();
        let mut runs = Vec::new();
        for &spread in &spreads {
            for mode in [StatusReport::All, StatusReport::Failures, StatusReport::None] {
                runs.push((spread, mode, scenarios(nodes, services, mode, spread)));
            }
        }
        println!("\n{nodes} nodes × {services} VirtualServices: the agents' status writes (K = {})\n", spreads[0]);
        println!(
            "| scenario | mode | status writes | of which no-ops | VS watch events delivered | bytes written | bytes \
             delivered (approx.) | Node/EndpointSlice events | Events (events.k8s.io) | rounds | entries after | largest object |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (_, mode, rows) in runs.iter().filter(|r| r.0 == spreads[0]) {
            for (what, load, entries, largest) in rows {
                // The leader's writes and their events are in the table below.
                println!(
                    "| {what} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    mode_name(*mode),
                    count(load.patches),
                    count(load.noops),
                    count(load.vs_events - load.verdict_events),
                    human(load.patch_bytes),
                    human(load.vs_event_bytes - load.verdict_event_bytes),
                    count(load.other_events),
                    count(load.k8s_events),
                    load.rounds,
                    count(*entries as u64),
                    human(*largest as u64),
                );
            }
        }
        println!(
            "\n{nodes} nodes × {services} VirtualServices: the leader's writes (nodes' passes spread over K rounds)\n"
        );
        println!(
            "| scenario | mode | K | leader writes | of which no-ops | VS watch events they cause | bytes written | \
             bytes delivered (approx.) | agents' status writes | judgements (objects judged) | Node/pod events to the \
             leader | agents' passes woken only by leader writes (wrote nothing) | rounds |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (spread, mode, rows) in &runs {
            for (what, load, _, _) in rows {
                println!(
                    "| {what} | {} | {spread} | {} | {} | {} | {} | {} | {} | {} ({}) | {} | {} | {} |",
                    mode_name(*mode),
                    count(load.verdict_writes),
                    count(load.verdict_noops),
                    count(load.verdict_events),
                    human(load.verdict_bytes),
                    human(load.verdict_event_bytes),
                    count(load.patches),
                    count(load.judgements),
                    count(load.judged),
                    count(load.leader_inputs),
                    count(load.verdict_only_passes),
                    load.rounds,
                );
            }
        }
        println!("\n({nodes}×{services} simulated in {:.1} s)", started.elapsed().as_secs_f64());
    }
}
