//! The elected agent's work: while it holds the Lease, it watches every VirtualService, every Node's labels and the
//! agent pods, judges each object ([`super::judge`]) and writes the verdicts that changed by server-side apply
//! with one fixed field manager (forced), so that a take-over never leaves conditions co-owned. Each term starts
//! from nothing: stores listed afresh, every object judged again.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{self, BoxStream, StreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

use super::court::{Court, Write};
use super::election::{self, Candidate, ElectionConfig, Leadership, leads};
use super::judge::Rules;
use crate::agent::metrics::Metrics;
use crate::api::ObjectId;
use crate::api::v1alpha1::VirtualService;

/// The field manager of the conditions, the same for every leader: a new leader's forced apply takes over the
/// fields its predecessor owned instead of adding a second owner.
pub const FIELD_MANAGER: &str = "ipvs-reconciler-status";
/// The Lease the agents elect their leader with.
pub const LEASE_NAME: &str = "ipvs-reconciler-status";
/// The default `--agent-selector`: the DaemonSet's pod label.
pub const DEFAULT_AGENT_SELECTOR: &str = "app.kubernetes.io/name=ipvs-reconciler";

/// After a change, wait this long for more (a rollout's reports come in bursts)...
const QUIET: Duration = Duration::from_millis(500);
/// ... but judge at least this often while changes keep coming.
const MAX_DELAY: Duration = Duration::from_secs(3);
/// Writes in flight at once (a change of the fleet can change every object's verdict).
const WRITES_IN_FLIGHT: usize = 8;

/// What the leader needs.
#[derive(Debug, Clone)]
pub struct VerdictSettings {
    /// The election: Lease, namespace (the agents' own), identity (this pod), timings.
    pub election: ElectionConfig,
    /// The agent pods in that namespace (a label selector).
    pub agent_selector: String,
    /// How the verdict is judged.
    pub rules: Rules,
}

/// Takes part in the election until `shutdown`, and writes the conditions while leading.
pub async fn run(
    client: Client,
    settings: VerdictSettings,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), &settings.election.namespace);
    let (tx, mut leadership) = watch::channel(None);
    // One future, not a spawned task: whatever ends this one (shutdown, or a caller dropping it) ends the
    // candidacy too, so no orphaned election keeps renewing a Lease nobody acts on.
    let election = election::run(leases, Candidate::new(settings.election.clone()), tx, shutdown);
    let terms = async {
        loop {
            // Wait to lead (the election ends first at shutdown).
            while !leads(&leadership) {
                if leadership.changed().await.is_err() {
                    return;
                }
            }
            metrics.set_leading(true);
            lead(&client, &settings, &mut leadership, &metrics).await;
            metrics.set_leading(false);
            info!("no longer leading: the conditions are left to the next leader");
        }
    };
    // The election ends at shutdown, after releasing the Lease; the terms end with it.
    tokio::select! {
        () = election => {}
        () = terms => {}
    }
    metrics.set_leading(false);
}

/// A change the watches saw.
enum Seen {
    /// One object changed (or was deleted).
    Object(ObjectId),
    /// The fleet changed (a Node or an agent pod), or a store was listed afresh: judge everything.
    All,
    /// A store has its first complete list.
    Listed(&'static str),
    /// A watch failed (it retries with backoff).
    Failed(&'static str, String),
}

fn seen_of<K: kube::Resource>(
    what: &'static str,
    targeted: bool,
) -> impl FnMut(Result<Event<K>, watcher::Error>) -> Seen {
    move |event| match event {
        Ok(Event::Apply(object) | Event::Delete(object)) if targeted => Seen::Object(ObjectId::kubernetes(
            object.meta().namespace.as_deref().unwrap_or_default(),
            object.meta().name.as_deref().unwrap_or_default(),
        )),
        Ok(Event::InitDone) => Seen::Listed(what),
        Ok(_) => Seen::All,
        Err(e) => Seen::Failed(what, e.to_string()),
    }
}

/// One term: until leadership is lost.
async fn lead(client: &Client, settings: &VerdictSettings, leadership: &mut Leadership, metrics: &Metrics) {
    let (objects, objects_writer) = reflector::store::<VirtualService>();
    let (nodes, nodes_writer) = reflector::store();
    let (pods, pods_writer) = reflector::store::<Pod>();
    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &settings.election.namespace);
    let pods_config = watcher::Config::default().labels(&settings.agent_selector);
    let streams: Vec<BoxStream<'static, Seen>> = vec![
        watcher::watcher(Api::<VirtualService>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(|o| o.metadata.managed_fields = None)
            .reflect(objects_writer)
            .map(seen_of("virtualservices", true))
            .boxed(),
        // Labels only: Node objects are large, and a cluster has many.
        watcher::watcher(Api::<PartialObjectMeta<Node>>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .modify(|o| o.metadata.managed_fields = None)
            .reflect(nodes_writer)
            .map(seen_of("nodes", false))
            .boxed(),
        watcher::watcher(pods_api, pods_config)
            .default_backoff()
            .reflect(pods_writer)
            .map(seen_of("pods", false))
            .boxed(),
    ];
    let mut seen = stream::select_all(streams);
    let mut listed: BTreeSet<&'static str> = BTreeSet::new();
    let mut court = Court::new();
    let mut dirty: HashSet<ObjectId> = HashSet::new();
    let mut all = true;
    let mut burst: Option<(Instant, Instant)> = None; // (first change, last change)
    let mut deadline: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(3600);
    loop {
        let wake = match burst {
            Some((first, last)) => (last + QUIET).min(first + MAX_DELAY),
            None => deadline.unwrap_or_else(far),
        };
        tokio::select! {
            next = seen.next() => {
                let Some(next) = next else { return };
                match next {
                    Seen::Object(id) => { dirty.insert(id); }
                    Seen::All => all = true,
                    Seen::Listed(what) => { listed.insert(what); all = true; }
                    Seen::Failed(what, e) => { warn!(resource = what, "leader's watch failed (retrying): {e}"); continue; }
                }
                let now = Instant::now();
                burst = Some(burst.map_or((now, now), |(first, _)| (first, now)));
            }
            () = tokio::time::sleep_until(wake) => {
                // Judge only with complete stores: a partial one would judge objects against a fleet without
                // nodes and write wrong verdicts for all of them.
                if listed.len() < 3 {
                    burst = None;
                    continue;
                }
                let targets = if all || burst.is_none() { None } else { Some(std::mem::take(&mut dirty)) };
                all = false;
                dirty.clear();
                burst = None;
                let writes;
                (writes, deadline) = judge_all(&mut court, &objects, &nodes, &pods, settings, targets);
                match write(client, &mut court, writes, leadership, metrics).await {
                    None => return,
                    // Failed writes are due again: judge everything after a retry period.
                    Some(0) => {}
                    Some(_) => {
                        let retry = Instant::now() + settings.election.retry_period;
                        deadline = Some(deadline.map_or(retry, |d| d.min(retry)));
                    }
                }
            }
            changed = leadership.changed() => {
                if changed.is_err() || !leads(leadership) {
                    return;
                }
            }
        }
        if !leads(leadership) {
            return;
        }
    }
}

/// Judges the objects `targets` names (all of them when `None`), and returns the writes due and when some
/// object's verdict next changes by itself.
fn judge_all(
    court: &mut Court,
    objects: &Store<VirtualService>,
    nodes: &Store<PartialObjectMeta<Node>>,
    pods: &Store<Pod>,
    settings: &VerdictSettings,
    targets: Option<HashSet<ObjectId>>,
) -> (Vec<Write>, Option<Instant>) {
    let now = Instant::now();
    let wall = Time(k8s_openapi::jiff::Timestamp::now());
    let node_labels = nodes.state().into_iter().filter_map(|node| {
        let name = node.metadata.name.clone()?;
        Some((name, node.metadata.labels.clone().unwrap_or_else(BTreeMap::new)))
    });
    let pods = pods.state();
    let fleet = court.fleet(node_labels, pods.iter().map(|p| p.as_ref()), now);
    let judged: Vec<Arc<VirtualService>> = match targets {
        None => {
            let all = objects.state();
            let live: HashSet<ObjectId> = all
                .iter()
                .map(|o| {
                    ObjectId::kubernetes(
                        o.metadata.namespace.as_deref().unwrap_or_default(),
                        o.metadata.name.as_deref().unwrap_or_default(),
                    )
                })
                .collect();
            court.retain(&live);
            all
        }
        Some(ids) => ids
            .into_iter()
            .filter_map(|id| {
                let ObjectId::Kubernetes { namespace, name } = &id else { return None };
                let found = objects.get(&ObjectRef::new(name).within(namespace));
                if found.is_none() {
                    court.forget(&id);
                }
                found
            })
            .collect(),
    };
    let mut writes = Vec::new();
    for object in &judged {
        let (write, _) = court.judge(object, &fleet, &settings.rules, now, &wall);
        writes.extend(write);
    }
    // Over every object, not only those just judged: another's deadline must not be lost.
    (writes, court.next_deadline())
}

/// Applies `writes` (a few at a time) while this agent leads; how many failed, or `None` once it does not lead.
async fn write(
    client: &Client,
    court: &mut Court,
    writes: Vec<Write>,
    leadership: &Leadership,
    metrics: &Metrics,
) -> Option<usize> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let results: Vec<(Write, Result<(), kube::Error>)> = stream::iter(writes)
        .map(|write| {
            let params = params.clone();
            async move {
                // Checked before each write: a leader whose lease may have passed to another writes nothing.
                if !leads(leadership) {
                    return (write, Ok(()));
                }
                let api: Api<VirtualService> = Api::namespaced(client.clone(), &write.namespace);
                let result = api.patch_status(&write.name, &params, &Patch::Apply(&write.body)).await.map(|_| ());
                (write, result)
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    if !leads(leadership) {
        return None;
    }
    let mut failed = 0;
    for (write, result) in results {
        match result {
            Ok(()) => {
                metrics.condition_write(true);
                court.written(write);
            }
            // Not recorded as sent: the next judgement (the next change or deadline) writes it again.
            Err(e) => {
                failed += 1;
                metrics.condition_write(false);
                warn!(object = %write.id, "writing the conditions failed: {e}");
            }
        }
    }
    Some(failed)
}

#[cfg(test)]
#[path = "leader/tests.rs"]
mod tests;
