//! This node's entry in each VirtualService's `status.nodes`: what became of the object here (pure), and the writer
//! that sends only the entries that changed, by server-side apply with a field manager of this node's own (so that
//! each node owns its entry of the list-map and never touches another's).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::warn;

use super::PassRecord;
use super::metrics::Metrics;
use super::weights::HealthSummary;
use crate::api::ObjectId;
use crate::api::v1alpha1::{API_VERSION, KIND, NodeStatus, UnhealthyBackend, VirtualService};
use crate::model::ServiceKey;
use crate::source::{DesiredState, ObjectReport, ObjectState, ReportChange, ReportsWanted};

/// `reason` of a service programmed with at least one backend.
pub const PROGRAMMED: &str = "Programmed";
/// `reason` of a service programmed without any backend (its EndpointSlices may not exist yet).
pub const NO_BACKENDS: &str = "NoBackends";
/// `reason` of an object that lost its service key to an older one.
pub const CONFLICT: &str = "Conflict";
/// `reason` of an invalid object (its service, if any, is left as it was).
pub const INVALID: &str = "Invalid";
/// `reason` of a service some operation of which the kernel refused.
pub const KERNEL_REFUSED: &str = "KernelRefused";
/// `reason` while the last pass could not run (the kernel could not be read).
pub const PENDING: &str = "Pending";
/// Reason: no `VirtualServicePool` admits the object (its address, fwmark or backends).
pub const NOT_ADMITTED: &str = "NotAdmitted";

/// Which entries a node keeps in `status.nodes` (`--status-report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum StatusReport {
    /// An entry for every VirtualService that selects the node.
    #[default]
    All,
    /// An entry only while the service is not programmed on the node (a healthy fleet writes nothing).
    Failures,
    /// No entries: this node's are withdrawn and none are written.
    None,
}

/// What the last pass found on the kernel side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelOutcome {
    /// Services with an operation the kernel refused, and why.
    pub refused: BTreeMap<ServiceKey, String>,
    /// Why the last pass did not run to its end, if it did not.
    pub pass_failed: Option<String>,
    /// What the checks say of each checked service's backends.
    pub health: BTreeMap<ServiceKey, HealthSummary>,
    /// Services another program removed from the kernel since this agent started (each was added back).
    pub removed_by_others: BTreeSet<ServiceKey>,
    /// Whether kube-proxy runs in IPVS mode on this node, as last seen.
    pub kube_proxy_ipvs: bool,
}

/// The kernel side of the status across passes: a pass that looked at only some services (a change pass) leaves
/// what earlier passes found of the others.
#[derive(Debug, Default)]
pub struct KernelOutcomes {
    refused: BTreeMap<ServiceKey, String>,
    /// Kept for the agent's lifetime: the entry says it once (one write), not once per removal.
    removed_by_others: BTreeSet<ServiceKey>,
    kube_proxy_ipvs: bool,
}

impl KernelOutcomes {
    /// What a pass tells the status: the refusals of the services it looked at (a full pass looked at all of them;
    /// the others keep what an earlier pass found), or why it could not run.
    pub fn after<E: std::error::Error + 'static>(&mut self, record: &PassRecord<'_, E>) -> KernelOutcome {
        // Only checked services have a summary (a copy per pass costs their number, not the table's).
        let health = record.health.clone();
        let report = match record.result {
            Ok(report) => report,
            Err(e) => {
                return KernelOutcome {
                    refused: self.refused.clone(),
                    pass_failed: Some(e.to_string()),
                    health,
                    removed_by_others: self.removed_by_others.clone(),
                    kube_proxy_ipvs: self.kube_proxy_ipvs,
                };
            }
        };
        self.removed_by_others.extend(report.vanished.iter().copied());
        if let Some(found) = report.director.kube_proxy_ipvs {
            self.kube_proxy_ipvs = found;
        }
        match record.scope {
            None => self.refused.clear(),
            Some(scope) => self.refused.retain(|key, _| !scope.contains(key)),
        }
        for failure in &report.failures {
            self.refused.insert(*failure.op.service_key(), format!("{}: {}", failure.op, failure.error));
        }
        for op in &report.unanswered {
            self.refused.insert(*op.service_key(), format!("{op}: no answer from the kernel (outcome unknown)"));
        }
        // A service whose VIP could not be added is in the kernel but receives nothing: not programmed.
        for failure in report.addresses.failures.iter().filter(|f| f.adding) {
            for key in &failure.services {
                self.refused.insert(*key, format!("adding its address {} failed: {}", failure.addr, failure.error));
            }
        }
        KernelOutcome {
            refused: self.refused.clone(),
            pass_failed: None,
            health,
            removed_by_others: self.removed_by_others.clone(),
            kube_proxy_ipvs: self.kube_proxy_ipvs,
        }
    }
}

/// The failing backends an entry names, at most: a status entry must stay small (every write of it is a watch
/// event for every agent); the counts say how many there are.
pub const MAX_UNHEALTHY_LISTED: usize = 20;

/// The entry node `node` reports for `report`; `None` when it reports nothing (the object does not select it, or is
/// not a Kubernetes object). `lastTransitionTime` is kept from `previous` unless `programmed` or `reason` change.
pub fn entry(
    report: &ObjectReport,
    node: &str,
    kernel: &KernelOutcome,
    previous: Option<&NodeStatus>,
    now: &Time,
) -> Option<NodeStatus> {
    if !matches!(report.id, ObjectId::Kubernetes { .. }) {
        return None;
    }
    let (programmed, reason, message, backends) = match &report.state {
        ObjectState::NotSelected | ObjectState::Unreadable { .. } => return None,
        ObjectState::Invalid { errors, .. } => {
            let problems: Vec<String> = errors.iter().map(|e| problem(e.field.as_str(), &e.message)).collect();
            (false, INVALID, Some(problems.join("; ")), None)
        }
        ObjectState::Conflict { key, winner } => {
            (false, CONFLICT, Some(format!("service {key} is claimed by {winner}, which is older")), None)
        }
        ObjectState::NotAdmitted { reason, .. } => (false, NOT_ADMITTED, Some(reason.clone()), None),
        ObjectState::Desired { key, backends } => match (kernel.refused.get(key), &kernel.pass_failed) {
            (Some(why), _) => (false, KERNEL_REFUSED, Some(why.clone()), None),
            (None, Some(why)) => (false, PENDING, Some(why.clone()), None),
            (None, None) if *backends == 0 => (true, NO_BACKENDS, removed_by_others(kernel, key), Some(0)),
            (None, None) => (true, PROGRAMMED, removed_by_others(kernel, key), i64::try_from(*backends).ok()),
        },
    };
    let unchanged = previous.is_some_and(|p| p.programmed == programmed && p.reason == reason);
    let last_transition_time = match previous {
        Some(p) if unchanged => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    let health = match &report.state {
        ObjectState::Desired { key, .. } => kernel.health.get(key),
        _ => None,
    };
    let count = |n: usize| Some(i64::try_from(n).unwrap_or(i64::MAX));
    Some(NodeStatus {
        node_name: node.to_owned(),
        observed_generation: report.generation,
        programmed,
        reason: reason.to_owned(),
        message,
        backends,
        healthy_backends: health.and_then(|h| count(h.healthy)),
        unhealthy_backends: health.and_then(|h| count(h.unhealthy.len())),
        unhealthy: health
            .map(|h| {
                let listed = h.unhealthy.iter().take(MAX_UNHEALTHY_LISTED);
                listed
                    .map(|(dest, error)| UnhealthyBackend { address: dest.to_string(), error: error.clone() })
                    .collect()
            })
            .unwrap_or_default(),
        last_transition_time,
    })
}

/// The message of a programmed service that another program removed from the kernel (and this agent added back).
fn removed_by_others(kernel: &KernelOutcome, key: &ServiceKey) -> Option<String> {
    if !kernel.removed_by_others.contains(key) {
        return None;
    }
    let who = if kernel.kube_proxy_ipvs {
        "kube-proxy runs in IPVS mode on this node and deletes IPVS services it did not create unless its \
         --ipvs-exclude-cidrs covers their addresses"
    } else {
        "something else on this node deletes IPVS services (kube-proxy in IPVS mode, ipvsadm -C, another balancer)"
    };
    Some(format!("removed from the kernel by another program and added back: {who}"))
}

fn problem(field: &str, message: &str) -> String {
    if field.is_empty() { message.to_owned() } else { format!("{field}: {message}") }
}

/// The entry `mode` keeps of `entry`.
pub fn kept(mode: StatusReport, entry: Option<NodeStatus>) -> Option<NodeStatus> {
    match mode {
        StatusReport::All => entry,
        StatusReport::Failures => entry.filter(|e| !e.programmed),
        StatusReport::None => None,
    }
}

/// This node's entry in each object's status, as the watch shows it (the source fills it): what an earlier run sent.
/// Entries left by an earlier run that are no longer wanted (another `--status-report` mode, or the object stopped
/// selecting the node while the agent was down) are withdrawn, and those still right are left alone.
pub use crate::source::kubernetes::Reported;

/// Whether `reason` is a failure an Event is emitted for.
fn is_failure(reason: &str) -> bool {
    matches!(reason, CONFLICT | INVALID | KERNEL_REFUSED | NOT_ADMITTED)
}

/// The Event for a change of this node's entry from `previous` to `next` reasons, if it is a transition into a
/// failure (or from one failure to another) or out of one; `None` otherwise (Events are for people: never one per
/// pass).
pub fn transition_event(previous: Option<&str>, next: &NodeStatus) -> Option<Event> {
    if is_failure(&next.reason) && previous != Some(next.reason.as_str()) {
        let note = format!("on node {}: {}", next.node_name, next.message.as_deref().unwrap_or(&next.reason));
        return Some(Event {
            type_: EventType::Warning,
            reason: next.reason.clone(),
            note: Some(note.chars().take(1000).collect()),
            action: "Program".to_owned(),
            secondary: None,
        });
    }
    if previous.is_some_and(is_failure) && next.programmed {
        return Some(Event {
            type_: EventType::Normal,
            reason: next.reason.clone(),
            note: Some(format!("programmed on node {} again", next.node_name)),
            action: "Program".to_owned(),
            secondary: None,
        });
    }
    None
}

/// The writer's bookkeeping without the API: the entry this node last sent for each object and the reason last
/// computed (for Events), and from them what a pass must send. Kept apart from [`StatusWriter`] and pure because
/// these decisions set the API load of a whole fleet (every write is a watch event for every agent): unit tests and
/// `benches/api_load.rs` (many agents against a model of the API server) run exactly this code.
#[derive(Debug, Clone)]
pub struct StatusBook {
    node: String,
    mode: StatusReport,
    /// The reason of each object's entry as last computed (before `--status-report` filtering), for Events.
    reasons: BTreeMap<ObjectId, String>,
    /// The entry last sent for each object (`None`: an empty list was sent, withdrawing ours).
    sent: BTreeMap<ObjectId, Option<NodeStatus>>,
}

/// What one object needs from the API after a pass: an Event, a status write, or both.
pub struct Due {
    /// The object (always a Kubernetes one).
    pub id: ObjectId,
    /// The Event of a transition of its entry.
    pub event: Option<Event>,
    /// The entry to apply: `Some(None)` is an empty list, withdrawing this node's entry; `None`, no write.
    pub write: Option<Option<NodeStatus>>,
}

impl StatusBook {
    /// The bookkeeping of node `node`, keeping the entries `mode` says; nothing sent yet.
    pub fn new(node: impl Into<String>, mode: StatusReport) -> Self {
        StatusBook { node: node.into(), mode, reasons: BTreeMap::new(), sent: BTreeMap::new() }
    }

    /// The node.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The field manager of this node's agent: each node owns its own entry.
    pub fn field_manager(&self) -> String {
        format!("ipvs-reconciler/{}", self.node)
    }

    /// What a pass over `reports` must send, in their order; objects that need nothing are left out. Objects gone
    /// from `reports` (gone from the API) are forgotten. `listed` gives this node's entry in an object's status as
    /// the watch shows it; it is asked only about objects this run has sent nothing for, and stands for what an
    /// earlier run sent: a restarted agent finds its entries in place and rewrites none that is still right (nor
    /// moves its `lastTransitionTime`, nor repeats its Event). A write is recorded as sent only by
    /// [`StatusBook::written`], so one that fails is due again at the next pass.
    pub fn due(
        &mut self,
        reports: &[ObjectReport],
        kernel: &KernelOutcome,
        now: &Time,
        listed: impl Fn(&ObjectId) -> Option<NodeStatus>,
    ) -> Vec<Due> {
        let live: std::collections::BTreeSet<&ObjectId> = reports.iter().map(|r| &r.id).collect();
        // Objects gone from the API have no status left to write.
        self.sent.retain(|id, _| live.contains(id));
        self.reasons.retain(|id, _| live.contains(id));
        self.due_for(reports.iter(), kernel, now, listed)
    }

    /// Like [`StatusBook::due`], but over only the reports that may have changed since the last call (what
    /// [`crate::source::ObjectIndex::changed_reports`] gives: `None` for an object gone), so that a pass costs what
    /// changed. The caller adds the objects whose entry the kernel's outcome may have changed.
    pub fn due_changed(
        &mut self,
        changes: &[ReportChange],
        kernel: &KernelOutcome,
        now: &Time,
        listed: impl Fn(&ObjectId) -> Option<NodeStatus>,
    ) -> Vec<Due> {
        let gone = changes.iter().filter(|(_, report)| report.is_none()).map(|(id, _)| id.clone());
        self.forget(gone);
        self.due_for(changes.iter().filter_map(|(_, report)| report.as_ref()), kernel, now, listed)
    }

    fn due_for<'a>(
        &mut self,
        reports: impl Iterator<Item = &'a ObjectReport>,
        kernel: &KernelOutcome,
        now: &Time,
        listed: impl Fn(&ObjectId) -> Option<NodeStatus>,
    ) -> Vec<Due> {
        let mut due = Vec::new();
        for report in reports {
            if !matches!(report.id, ObjectId::Kubernetes { .. }) {
                continue;
            }
            let shown;
            let sent = match self.sent.get(&report.id) {
                Some(sent) => sent.as_ref(),
                None => {
                    shown = listed(&report.id);
                    shown.as_ref()
                }
            };
            let full = entry(report, &self.node, kernel, sent, now);
            let event = transition(&mut self.reasons, &report.id, full.as_ref(), sent.map(|s| s.reason.as_str()));
            let wanted = kept(self.mode, full);
            let write = (sent != wanted.as_ref()).then_some(wanted);
            if event.is_some() || write.is_some() {
                due.push(Due { id: report.id.clone(), event, write });
            }
        }
        due
    }

    /// Records that `entry` was written for `id` (`None`: the empty list).
    pub fn written(&mut self, id: ObjectId, entry: Option<NodeStatus>) {
        self.sent.insert(id, entry);
    }

    /// Forgets what was sent to objects that were deleted (and maybe created again): their status starts afresh.
    pub fn forget(&mut self, ids: impl IntoIterator<Item = ObjectId>) {
        for id in ids {
            self.sent.remove(&id);
            self.reasons.remove(&id);
        }
    }
}

/// The Event of the change of object `id`'s entry to `entry`, if it is a transition; `reasons` remembers its reason.
/// `shown` is the reason of the entry sent (or, before this run sent any, the one the watch shows), for an object
/// this run has computed no entry for yet.
fn transition(
    reasons: &mut BTreeMap<ObjectId, String>,
    id: &ObjectId,
    entry: Option<&NodeStatus>,
    shown: Option<&str>,
) -> Option<Event> {
    let Some(entry) = entry else {
        reasons.remove(id);
        return None;
    };
    match reasons.get_mut(id) {
        Some(reason) if *reason == entry.reason => transition_event(Some(&entry.reason), entry),
        Some(reason) => {
            let previous = std::mem::replace(reason, entry.reason.clone());
            transition_event(Some(&previous), entry)
        }
        None => {
            reasons.insert(id.clone(), entry.reason.clone());
            transition_event(shown, entry)
        }
    }
}

/// The server-side apply body of this node's entry (`None`: an empty list, which withdraws it): apiVersion, kind
/// and the status, never managedFields.
pub fn apply_body(entry: Option<&NodeStatus>) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": API_VERSION,
        "kind": KIND,
        "status": { "nodes": entry.into_iter().collect::<Vec<_>>() },
    })
}

/// What must be reported again because the kernel's side changed from `previous` to `next`: everything when
/// whether the pass ran changed (every programmed entry says so), else the keys whose refusal changed.
pub fn kernel_changes(previous: &KernelOutcome, next: &KernelOutcome) -> ReportsWanted {
    if previous.pass_failed != next.pass_failed {
        return ReportsWanted { all: true, ..ReportsWanted::default() };
    }
    let refused = previous.refused.keys().chain(next.refused.keys());
    let mut keys: BTreeSet<ServiceKey> =
        refused.filter(|key| previous.refused.get(key) != next.refused.get(key)).copied().collect();
    let checked = previous.health.keys().chain(next.health.keys());
    keys.extend(checked.filter(|key| previous.health.get(key) != next.health.get(key)).copied());
    ReportsWanted { keys, ..ReportsWanted::default() }
}

/// Sends this node's entries, each only when it changed (the decisions are [`StatusBook`]'s).
pub struct StatusWriter {
    client: Client,
    recorder: Recorder,
    book: StatusBook,
    reported: Reported,
    /// The kernel's outcome at the last write, to tell which entries a new one changes.
    kernel: KernelOutcome,
    /// Objects whose write failed: due again at the next call.
    failed: BTreeSet<ObjectId>,
}

impl StatusWriter {
    /// A writer for node `node`, keeping the entries `mode` says; `reported` tells which objects hold an entry of
    /// this node already.
    pub fn new(client: Client, node: impl Into<String>, mode: StatusReport, reported: Reported) -> Self {
        let book = StatusBook::new(node, mode);
        let reporter = Reporter { controller: "ipvs-reconciler".to_owned(), instance: Some(book.node().to_owned()) };
        let recorder = Recorder::new(client.clone(), reporter);
        StatusWriter { client, recorder, book, reported, kernel: KernelOutcome::default(), failed: BTreeSet::new() }
    }

    /// The field manager of this node's agent: each node owns its own entry.
    pub fn field_manager(&self) -> String {
        self.book.field_manager()
    }

    /// Brings every object's entry up to date after a pass whose outcome is `kernel`: looks only at the objects
    /// whose report changed since the last call (the first call looks at all), those the new outcome changes, and
    /// those whose write failed last time; returns the writes made and failed.
    pub async fn write(&mut self, desired: &DesiredState, kernel: &KernelOutcome, now: &Time) -> (usize, usize) {
        let renewed = self.reported.lock().map(|mut r| r.take_renewed()).unwrap_or_default();
        let mut wanted = kernel_changes(&self.kernel, kernel);
        wanted.objects = std::mem::take(&mut self.failed);
        wanted.objects.extend(renewed.iter().cloned());
        self.kernel = kernel.clone();
        self.book.forget(renewed);
        let changes = desired.changed_reports(&wanted);
        self.send(&changes, kernel, now).await
    }

    /// Brings the entries of the objects of `changes` up to date (see [`StatusBook::due_changed`]); returns the
    /// writes made and failed. A failed write is due again at the next call.
    pub async fn send(&mut self, changes: &[ReportChange], kernel: &KernelOutcome, now: &Time) -> (usize, usize) {
        let (mut written, mut failed) = (0, 0);
        let reported = &self.reported;
        let listed = |id: &ObjectId| reported.lock().ok().and_then(|r| r.get(id).cloned());
        for due in self.book.due_changed(changes, kernel, now, listed) {
            let ObjectId::Kubernetes { namespace, name } = &due.id else { continue };
            if let Some(event) = &due.event {
                self.publish(&due.id, namespace, name, event).await;
            }
            let Some(wanted) = due.write else { continue };
            match self.patch(namespace, name, wanted.as_ref()).await {
                Ok(()) => {
                    written += 1;
                    self.book.written(due.id, wanted);
                }
                Err(e) => {
                    failed += 1;
                    warn!(object = %due.id, "status write failed (tried again after the next pass): {e}");
                    self.failed.insert(due.id);
                }
            }
        }
        (written, failed)
    }

    /// Publishes the Event of a transition of this object's entry.
    async fn publish(&self, id: &ObjectId, namespace: &str, name: &str, event: &Event) {
        let reference = ObjectReference {
            api_version: Some(API_VERSION.to_owned()),
            kind: Some(KIND.to_owned()),
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectReference::default()
        };
        if let Err(e) = self.recorder.publish(event, &reference).await {
            warn!(object = %id, "Event not recorded: {e}");
        }
    }

    async fn patch(&self, namespace: &str, name: &str, entry: Option<&NodeStatus>) -> Result<(), kube::Error> {
        let body = apply_body(entry);
        let api: Api<VirtualService> = Api::namespaced(self.client.clone(), namespace);
        let params = PatchParams::apply(&self.field_manager()).force();
        api.patch_status(name, &params, &Patch::Apply(&body)).await.map(|_| ())
    }
}

/// Writes status after each pass (each new outcome on `outcomes`), from the index's reports and what the pass
/// found, until the sender is dropped; counts the writes in `metrics`.
pub async fn write_status(
    mut writer: StatusWriter,
    desired: DesiredState,
    mut outcomes: watch::Receiver<KernelOutcome>,
    metrics: Arc<Metrics>,
) {
    while outcomes.changed().await.is_ok() {
        let outcome = outcomes.borrow_and_update().clone();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let (written, failed) = writer.write(&desired, &outcome, &now).await;
        (0..written).for_each(|_| metrics.status_write(true));
        (0..failed).for_each(|_| metrics.status_write(false));
    }
}

#[cfg(test)]
mod tests;
