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
//! `cargo bench --bench api_load` (release profile; about a second at 100 × 100, tens at 1,000 × 1,000). `API_LOAD_SIZES=100x100,1000x1000` chooses sizes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use ipvs_reconciler::agent::status::{Due, KernelOutcome, StatusBook, StatusReport, apply_body};
use ipvs_reconciler::api::ObjectId;
use ipvs_reconciler::api::v1alpha1::{NodeStatus, VirtualService};
use ipvs_reconciler::source::kubernetes::{SERVICE_NAME_LABEL, object_of, slice_of};
use ipvs_reconciler::source::{ObjectIndex, ObjectReport};

const NAMESPACE: &str = "default";
/// The label `vs-0001`'s node selector asks for.
const LB_LABEL: &str = "ipvs.dev/lb";
/// Rounds after which the simulation counts as a write storm.
const MAX_ROUNDS: usize = 8;

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
}

/// Why a watch event was sent.
#[derive(Clone, Copy, PartialEq)]
enum Cause {
    Spec,
    Status,
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
        self.events.push((i, stored.base_len + stored.status_len, cause));
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
}

struct Fleet {
    mode: StatusReport,
    server: Server,
    classes: Vec<Class>,
    agents: Vec<Agent>,
    clock: i64,
    load: Load,
}

impl Fleet {
    /// `nodes` agents, all labelled for `vs-0001`, each having listed `services` VirtualServices (empty status) and
    /// the EndpointSlice of `svc-2` with 3 ready endpoints; nobody has passed yet.
    fn new(nodes: usize, services: usize, mode: StatusReport) -> Self {
        let objects: Vec<VirtualService> = (0..services).map(|i| virtual_service(i, i, 1)).collect();
        let server = Server::new(objects.clone(), managed_fields_len(&node_name(0)));
        let labels: BTreeMap<String, String> = [(LB_LABEL.to_owned(), "true".to_owned())].into();
        let mut index = ObjectIndex::new();
        index.reset(objects.iter().map(object_of).collect(), Vec::new());
        let (service, slice_name, slice) = slice_of(&slice(3)).unwrap();
        index.set_slice(service, &slice_name, Some(slice));
        index.set_node_labels(Some(labels.clone()));
        let reports = index.reports();
        let agents =
            (0..nodes).map(|n| Agent { class: 0, book: StatusBook::new(node_name(n), mode), woken: true }).collect();
        Fleet { mode, server, classes: vec![Class { labels, index, reports }], agents, clock: 0, load: Load::default() }
    }

    /// Runs passes and delivers their writes until a round writes nothing, then a resync pass of every agent;
    /// returns what it cost since the last call.
    fn settle(&mut self) -> Load {
        self.deliver();
        let mut everyone = false;
        loop {
            assert!(
                self.load.rounds < MAX_ROUNDS,
                "{:?}: no fixed point after {MAX_ROUNDS} rounds: a write storm",
                self.mode
            );
            if !self.agents.iter().any(|a| a.woken) {
                if everyone {
                    break;
                }
                // The resync: every agent passes again, later.
                self.agents.iter_mut().for_each(|a| a.woken = true);
            }
            everyone = self.agents.iter().all(|a| a.woken);
            self.load.rounds += 1;
            let writes = self.round();
            self.deliver();
            if writes == 0 && everyone {
                break;
            }
        }
        std::mem::take(&mut self.load)
    }

    /// One pass of every woken agent (in parallel: they are independent), then their writes, in agent order.
    fn round(&mut self) -> usize {
        self.clock += 1;
        let now = at(self.clock);
        let kernel = KernelOutcome::default();
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
                                if !std::mem::take(&mut agent.woken) {
                                    return Vec::new();
                                }
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
        let mut writes = 0;
        for (agent, dues) in self.agents.iter_mut().zip(dues) {
            let manager = agent.book.field_manager();
            for due in dues {
                self.load.k8s_events += u64::from(due.event.is_some());
                let Some(wanted) = due.write else { continue };
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
        let mut changed: BTreeMap<usize, Cause> = BTreeMap::new();
        for (i, _, cause) in &events {
            let c = changed.entry(*i).or_insert(*cause);
            if *cause == Cause::Spec {
                *c = Cause::Spec;
            }
        }
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
        self.agents.iter_mut().for_each(|a| a.woken = true);
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
        self.load.other_events += 1;
    }

    /// An EndpointSlice change: a watch event for every agent.
    fn set_slice(&mut self, changed: &EndpointSlice) {
        let (service, slice_name, slice) = slice_of(changed).unwrap();
        for class in &mut self.classes {
            class.index.set_slice(service.clone(), &slice_name, Some(slice.clone()));
            class.reports = class.index.reports();
        }
        self.agents.iter_mut().for_each(|a| a.woken = true);
        self.load.other_events += self.agents.len() as u64;
    }

    /// Every agent restarts: a new writer, whose watch lists the objects as they are.
    fn restart(&mut self) {
        for agent in &mut self.agents {
            agent.book = StatusBook::new(agent.book.node().to_owned(), self.mode);
            agent.woken = true;
        }
    }

    /// Entries in the status of every object.
    fn entries(&self) -> usize {
        self.server.objects.iter().map(|o| o.nodes.len()).sum()
    }

    /// The JSON size of the largest object (etcd refuses one above 1.5 MiB by default).
    fn largest(&self) -> usize {
        self.server.objects.iter().map(|o| o.base_len + o.status_len).max().unwrap_or(0)
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
/// table rows.
fn scenarios(nodes: usize, services: usize, mode: StatusReport) -> Vec<(String, Load, usize, usize)> {
    let mut fleet = Fleet::new(nodes, services, mode);
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
    row("f) every agent restarts (rolling update)", &mut fleet);
    rows
}

fn main() {
    let sizes = std::env::var("API_LOAD_SIZES").unwrap_or_else(|_| "100x100,1000x1000".to_owned());
    for size in sizes.split(',') {
        let (nodes, services) = size.split_once('x').unwrap();
        let (nodes, services): (usize, usize) = (nodes.parse().unwrap(), services.parse().unwrap());
        let started = std::time::Instant::now();
        println!("\n{nodes} nodes × {services} VirtualServices\n");
        println!(
            "| scenario | mode | status writes | of which no-ops | VS watch events delivered | bytes written | bytes \
             delivered (approx.) | Node/EndpointSlice events | Events (events.k8s.io) | rounds | entries after | largest object |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        for mode in [StatusReport::All, StatusReport::Failures, StatusReport::None] {
            for (what, load, entries, largest) in scenarios(nodes, services, mode) {
                println!(
                    "| {what} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    mode_name(mode),
                    count(load.patches),
                    count(load.noops),
                    count(load.vs_events),
                    human(load.patch_bytes),
                    human(load.vs_event_bytes),
                    count(load.other_events),
                    count(load.k8s_events),
                    load.rounds,
                    count(entries as u64),
                    human(largest as u64),
                );
            }
        }
        println!("\n({nodes}×{services} simulated in {:.1} s)", started.elapsed().as_secs_f64());
    }
}
