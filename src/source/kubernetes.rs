//! The Kubernetes source: VirtualServices (all namespaces), EndpointSlices and this node's Node, from kube-runtime
//! watchers into the [`DesiredState`].
//!
//! Objects are converted at the border ([`SourceObject`], [`Slice`], the node's labels); nothing of the API types is
//! kept. A watcher's (re-)list arrives as `Init`, `InitApply`..., `InitDone`: the listed objects are buffered and
//! replace everything of their kind at `InitDone` (objects deleted while the watch was down disappear only then, and
//! never before the whole list is in). The state is marked ready once every kind has been listed, so the agent
//! never passes on a partial view (which would delete live services).
//!
//! In `pools` admission mode two more kinds are watched: `VirtualServicePool`s and Namespaces (their labels, for
//! the pools' `namespaceSelector`). A pool list answered 404 means the pool CRD is not installed: nothing is
//! admitted, and the state may still become ready (the agent stays up and says why); the watcher keeps trying, and
//! the pools count from the first list that succeeds. Any other failure changes nothing.

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Node};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{info, warn};

use super::admission::{AdmissionMode, Labels, Pool};
use super::desired::DesiredState;
use super::endpoints::{ServiceRef, ServiceSlices, Slice};
use crate::api::pool::VirtualServicePool;
use crate::api::v1alpha1::NodeStatus;
use crate::api::{SourceObject, VirtualService};
use crate::model::Family;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One watcher event of any of the three kinds.
#[derive(Debug)]
pub enum KubeEvent {
    /// A VirtualService event.
    VirtualService(Box<Event<VirtualService>>),
    /// An EndpointSlice event.
    Slice(Box<Event<EndpointSlice>>),
    /// An event of this node's Node.
    Node(Box<Event<Node>>),
    /// A VirtualServicePool event (`pools` admission).
    Pool(Box<Event<VirtualServicePool>>),
    /// The pool list was answered 404: the VirtualServicePool CRD is not installed.
    PoolsMissing,
    /// A Namespace event (`pools` admission: the labels of namespaces).
    Namespace(Box<Event<Namespace>>),
}

/// Which kinds have been listed, by index in [`KubeFeed::listed`].
const OBJECTS: usize = 0;
const SLICES: usize = 1;
const NODE: usize = 2;
const POOLS: usize = 3;
const NAMESPACES: usize = 4;

/// Applies watcher events to the desired state.
pub struct KubeFeed {
    state: DesiredState,
    node_name: String,
    /// Objects of a (re-)list in progress, per kind.
    listing_objects: Option<Vec<SourceObject>>,
    listing_slices: Option<BTreeMap<ServiceRef, ServiceSlices>>,
    listing_node: Option<Option<BTreeMap<String, String>>>,
    listing_pools: Option<BTreeMap<String, Pool>>,
    listing_namespaces: Option<BTreeMap<String, Labels>>,
    /// Which kinds have been listed at least once: objects, slices, node, pools, namespaces (the last two only
    /// matter in `pools` admission, and count as listed otherwise).
    listed: [bool; 5],
    /// Whether the pools are known to be missing (so that it is logged once, not at every retry).
    pools_missing: bool,
    /// This node's entry in each object's status (for the status writer).
    reported: Reported,
}

/// What the watch shows of this node's status entries, shared with the status writer.
pub type Reported = std::sync::Arc<std::sync::Mutex<Shown>>;

/// This node's entry in the status of each object that holds one, as the watch last showed it; and the objects
/// that were deleted, or deleted and created again, since the writer last looked (what it sent them went with
/// them: a VirtualService replaced within one quiet period, as `kubectl replace --force` or a GitOps "replace"
/// sync does, would otherwise never get this node's entry again).
#[derive(Debug, Default)]
pub struct Shown {
    entries: BTreeMap<crate::api::ObjectId, NodeStatus>,
    renewed: std::collections::BTreeSet<crate::api::ObjectId>,
}

impl Shown {
    /// This node's entry in `id`'s status.
    pub fn get(&self, id: &crate::api::ObjectId) -> Option<&NodeStatus> {
        self.entries.get(id)
    }

    /// Records this node's entry in `id`'s status.
    pub fn insert(&mut self, id: crate::api::ObjectId, entry: NodeStatus) {
        self.entries.insert(id, entry);
    }

    /// Records that `id`'s status holds no entry of this node.
    pub fn remove(&mut self, id: &crate::api::ObjectId) {
        self.entries.remove(id);
    }

    /// Records that `id` was deleted (and maybe created again): it starts with no entry of this node.
    pub fn renew(&mut self, id: &crate::api::ObjectId) {
        self.entries.remove(id);
        self.renewed.insert(id.clone());
    }

    /// The objects renewed since the last call.
    pub fn take_renewed(&mut self) -> std::collections::BTreeSet<crate::api::ObjectId> {
        std::mem::take(&mut self.renewed)
    }
}

impl KubeFeed {
    /// A feed into `state` for node `node_name`.
    pub fn new(state: DesiredState, node_name: impl Into<String>) -> Self {
        KubeFeed {
            state,
            node_name: node_name.into(),
            listing_objects: None,
            listing_slices: None,
            listing_node: None,
            listing_pools: None,
            listing_namespaces: None,
            listed: [false, false, false, true, true],
            pools_missing: false,
            reported: Reported::default(),
        }
    }

    /// Decides objects by `mode` (`pools`: the feed waits for the pools and namespaces to be listed too).
    pub fn with_admission(mut self, mode: AdmissionMode) -> Self {
        self.state.update(|index| (index.set_admission_mode(mode), ()));
        let pools = mode == AdmissionMode::Pools;
        self.listed[POOLS] = !pools;
        self.listed[NAMESPACES] = !pools;
        self
    }

    /// This node's entry in each object's status, kept up to date by this feed.
    pub fn reported(&self) -> Reported {
        std::sync::Arc::clone(&self.reported)
    }

    fn note_status(&self, object: &VirtualService, id: &crate::api::ObjectId) {
        let mine = object.status.as_ref().and_then(|s| s.nodes.iter().find(|n| n.node_name == self.node_name));
        if let Ok(mut reported) = self.reported.lock() {
            match mine {
                Some(entry) => {
                    reported.insert(id.clone(), entry.clone());
                }
                None => {
                    reported.remove(id);
                }
            }
        }
    }

    /// An object known under the same name but created at another time was deleted and created again while the
    /// watch was not looking (its deletion came as no event, e.g. during a relist).
    fn note_recreated(&self, object: &SourceObject) {
        let known = self.state.with_index(|index| index.age_of(&object.id));
        if known.is_some_and(|age| age != object.age)
            && let Ok(mut reported) = self.reported.lock()
        {
            reported.renew(&object.id);
        }
    }

    /// Applies one event.
    pub fn on_event(&mut self, event: KubeEvent) {
        match event {
            KubeEvent::VirtualService(e) => self.on_virtual_service(*e),
            KubeEvent::Slice(e) => self.on_slice(*e),
            KubeEvent::Node(e) => self.on_node(*e),
            KubeEvent::Pool(e) => self.on_pool(*e),
            KubeEvent::PoolsMissing => self.on_pools_missing(),
            KubeEvent::Namespace(e) => self.on_namespace(*e),
        }
        if self.listed.iter().all(|l| *l) && !self.state.is_ready() {
            info!("every watched kind is listed: reconciling");
            self.state.mark_ready();
        }
    }

    fn on_virtual_service(&mut self, event: Event<VirtualService>) {
        match event {
            Event::Init => self.listing_objects = Some(Vec::new()),
            Event::InitApply(object) => {
                let converted = object_of(&object);
                self.note_recreated(&converted);
                self.note_status(&object, &converted.id);
                self.listing_objects.get_or_insert_with(Vec::new).push(converted);
            }
            Event::InitDone => {
                let objects = self.listing_objects.take().unwrap_or_default();
                self.state.update(|index| (index.reset(objects, Vec::new()), ()));
                self.listed[OBJECTS] = true;
            }
            Event::Apply(object) => {
                let converted = object_of(&object);
                self.note_recreated(&converted);
                self.note_status(&object, &converted.id);
                let object = converted;
                self.state.update(|index| (index.apply(object), ()));
            }
            Event::Delete(object) => {
                let id = object_of(&object).id;
                if let Ok(mut reported) = self.reported.lock() {
                    reported.renew(&id);
                }
                self.state.update(|index| (index.delete(&id), ()));
            }
        }
    }

    fn on_slice(&mut self, event: Event<EndpointSlice>) {
        match event {
            Event::Init => self.listing_slices = Some(BTreeMap::new()),
            Event::InitApply(slice) => {
                if let Some((service, name, slice)) = slice_of(&slice) {
                    let all = self.listing_slices.get_or_insert_with(BTreeMap::new);
                    all.entry(service).or_default().insert(name, slice);
                }
            }
            Event::InitDone => {
                let slices = self.listing_slices.take().unwrap_or_default();
                self.state.update(|index| (index.reset_slices(slices), ()));
                self.listed[SLICES] = true;
            }
            Event::Apply(slice) => {
                if let Some((service, name, slice)) = slice_of(&slice) {
                    self.state.update(|index| (index.set_slice(service, &name, Some(slice)), ()));
                }
            }
            Event::Delete(slice) => {
                if let Some((service, name, _)) = slice_of(&slice) {
                    self.state.update(|index| (index.set_slice(service, &name, None), ()));
                }
            }
        }
    }

    fn on_node(&mut self, event: Event<Node>) {
        let labels = |node: &Node| node.metadata.labels.clone().unwrap_or_default();
        match event {
            Event::Init => self.listing_node = Some(None),
            Event::InitApply(node) => self.listing_node = Some(Some(labels(&node))),
            Event::InitDone => {
                let node = self.listing_node.take().flatten();
                if node.is_none() {
                    warn!(
                        node = %self.node_name,
                        "this node's Node object was not found: VirtualServices with a nodeSelector are not programmed"
                    );
                }
                self.set_labels(node);
                self.listed[NODE] = true;
            }
            Event::Apply(node) => self.set_labels(Some(labels(&node))),
            Event::Delete(_) => self.set_labels(None),
        }
    }

    fn on_pool(&mut self, event: Event<VirtualServicePool>) {
        match event {
            Event::Init => self.listing_pools = Some(BTreeMap::new()),
            Event::InitApply(pool) => {
                let (name, pool) = pool_of(&pool);
                self.listing_pools.get_or_insert_with(BTreeMap::new).insert(name, pool);
            }
            Event::InitDone => {
                let pools = self.listing_pools.take().unwrap_or_default();
                if pools.is_empty() {
                    warn!("no VirtualServicePool exists: with --admission pools no VirtualService is programmed");
                } else if self.pools_missing {
                    info!(pools = pools.len(), "VirtualServicePools are listed: admitting what they grant");
                }
                self.pools_missing = false;
                self.state.update(|index| (index.reset_pools(Some(pools)), ()));
                self.listed[POOLS] = true;
            }
            Event::Apply(pool) => {
                let (name, pool) = pool_of(&pool);
                self.state.update(|index| (index.set_pool(&name, Some(pool)), ()));
            }
            Event::Delete(pool) => {
                let name = pool.metadata.name.clone().unwrap_or_default();
                self.state.update(|index| (index.set_pool(&name, None), ()));
            }
        }
    }

    /// The pool CRD is not installed (a list answered 404): nothing is admitted, which is a complete view.
    fn on_pools_missing(&mut self) {
        if !self.pools_missing {
            warn!(
                "the VirtualServicePool CRD is not installed: with --admission pools no VirtualService is programmed \
                 until it and a pool exist (kubectl apply -k crds/)"
            );
        }
        self.pools_missing = true;
        self.listing_pools = None;
        self.state.update(|index| (index.reset_pools(None), ()));
        self.listed[POOLS] = true;
    }

    fn on_namespace(&mut self, event: Event<Namespace>) {
        let labels = |ns: &Namespace| ns.metadata.labels.clone().unwrap_or_default();
        let name = |ns: &Namespace| ns.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => self.listing_namespaces = Some(BTreeMap::new()),
            Event::InitApply(ns) => {
                self.listing_namespaces.get_or_insert_with(BTreeMap::new).insert(name(&ns), labels(&ns));
            }
            Event::InitDone => {
                let namespaces = self.listing_namespaces.take().unwrap_or_default();
                self.state.update(|index| (index.reset_namespaces(namespaces), ()));
                self.listed[NAMESPACES] = true;
            }
            Event::Apply(ns) => {
                let (name, labels) = (name(&ns), labels(&ns));
                self.state.update(|index| (index.set_namespace(&name, Some(labels)), ()));
            }
            Event::Delete(ns) => {
                let name = name(&ns);
                self.state.update(|index| (index.set_namespace(&name, None), ()));
            }
        }
    }

    fn set_labels(&mut self, labels: Option<BTreeMap<String, String>>) {
        self.state.update(|index| (index.set_node_labels(labels), ()));
    }
}

/// A pool as admission takes it; what cannot be read of it grants nothing and is logged.
pub fn pool_of(pool: &VirtualServicePool) -> (String, Pool) {
    let (converted, problems) = Pool::from_resource(pool);
    for problem in problems {
        warn!("{problem} (it grants nothing)");
    }
    (converted.name.clone(), converted)
}

/// A VirtualService as the index takes it.
pub fn object_of(object: &VirtualService) -> SourceObject {
    SourceObject::from_resource(object)
}

/// An EndpointSlice as the index takes it: its Service, its name, and what backends need. `None` for a slice without
/// the service-name label or a name (not one of a Service's).
pub fn slice_of(slice: &EndpointSlice) -> Option<(ServiceRef, String, Slice)> {
    let meta = &slice.metadata;
    let service = meta.labels.as_ref()?.get(SERVICE_NAME_LABEL)?.clone();
    let namespace = meta.namespace.clone()?;
    let name = meta.name.clone()?;
    let family = match slice.address_type.as_str() {
        "IPv4" => Some(Family::V4),
        "IPv6" => Some(Family::V6),
        _ => None,
    };
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| Some((p.name.clone().filter(|n| !n.is_empty()), u16::try_from(p.port?).ok()?)))
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .flatten()
        .filter_map(|e| {
            let addr: IpAddr = e.addresses.first()?.parse().ok()?;
            let conditions = e.conditions.as_ref();
            // An unknown readiness counts as ready (the EndpointSlice API's advice); terminating never takes new
            // connections.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            Some((addr, ready && !terminating))
        })
        .collect();
    Some(((namespace, service), name, Slice { family, ports, endpoints }))
}

/// A failed list or watch, and of which resource.
pub type WatchError = (&'static str, watcher::Error);

/// What [`follow`] tells its observer about the API side, for metrics and readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiSignal {
    /// A good event (the API answers).
    Event,
    /// A watcher of `resource` started listing again after its first list (a watch that expired with 410 Gone, or
    /// one that failed and was restarted): its objects are replaced whole once the new list is in.
    Relisted(&'static str),
    /// A list or watch of `resource` failed (retried with backoff; nothing is changed meanwhile).
    Failed(&'static str),
}

impl KubeEvent {
    /// The resource whose (re-)list this event starts, if it starts one.
    fn list_started(&self) -> Option<&'static str> {
        match self {
            KubeEvent::VirtualService(e) if matches!(**e, Event::Init) => Some("virtualservices"),
            KubeEvent::Slice(e) if matches!(**e, Event::Init) => Some("endpointslices"),
            KubeEvent::Node(e) if matches!(**e, Event::Init) => Some("nodes"),
            KubeEvent::Pool(e) if matches!(**e, Event::Init) => Some("virtualservicepools"),
            KubeEvent::Namespace(e) if matches!(**e, Event::Init) => Some("namespaces"),
            _ => None,
        }
    }
}

/// The watchers, merged: VirtualServices, EndpointSlices and the Node, and in `pools` admission the pools and the
/// Namespaces. Each retries with backoff on its own; errors are yielded for logging.
pub fn watch(
    client: Client,
    node_name: &str,
    admission: AdmissionMode,
) -> impl Stream<Item = Result<KubeEvent, WatchError>> + Send {
    let objects = watcher::watcher(Api::<VirtualService>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .map(|e| e.map(|e| KubeEvent::VirtualService(Box::new(e))).map_err(|e| ("virtualservices", e)));
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(SERVICE_NAME_LABEL),
    )
    .default_backoff()
    .map(|e| e.map(|e| KubeEvent::Slice(Box::new(e))).map_err(|e| ("endpointslices", e)));
    let node = watcher::watcher(
        Api::<Node>::all(client.clone()),
        watcher::Config::default().fields(&format!("metadata.name={node_name}")),
    )
    .default_backoff()
    .map(|e| e.map(|e| KubeEvent::Node(Box::new(e))).map_err(|e| ("nodes", e)));
    let mut streams = vec![objects.boxed(), slices.boxed(), node.boxed()];
    if admission == AdmissionMode::Pools {
        let pools = watcher::watcher(Api::<VirtualServicePool>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map(|e| match e {
                Ok(e) => Ok(KubeEvent::Pool(Box::new(e))),
                Err(e) if is_not_found(&e) => Ok(KubeEvent::PoolsMissing),
                Err(e) => Err((POOLS_RESOURCE, e)),
            });
        let namespaces = watcher::watcher(Api::<Namespace>::all(client), watcher::Config::default())
            .default_backoff()
            .map(|e| e.map(|e| KubeEvent::Namespace(Box::new(e))).map_err(|e| ("namespaces", e)));
        streams.push(pools.boxed());
        streams.push(namespaces.boxed());
    }
    futures::stream::select_all(streams)
}

/// The resource name of the pools, in logs and metrics.
const POOLS_RESOURCE: &str = "virtualservicepools";

/// Whether a list failed because the resource does not exist (its CRD is not installed).
fn is_not_found(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 404,
        _ => false,
    }
}

/// Follows the cluster until the streams end (they do not, short of a panic in kube). `api` hears of every event
/// (see [`ApiSignal`]); after a failed list or watch nothing is changed: the table stays as it is until the watcher
/// has a consistent view again.
pub async fn follow(
    client: Client,
    node_name: String,
    admission: AdmissionMode,
    state: DesiredState,
    reported: Reported,
    api: impl Fn(ApiSignal) + Send,
) {
    let mut feed = KubeFeed::new(state, node_name.clone()).with_admission(admission);
    feed.reported = reported;
    let mut listed: Vec<&'static str> = Vec::new();
    let mut events = std::pin::pin!(watch(client, &node_name, admission));
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                api(ApiSignal::Event);
                if let Some(resource) = event.list_started() {
                    if listed.contains(&resource) {
                        info!(resource, "listing again (the watch expired or was restarted)");
                        api(ApiSignal::Relisted(resource));
                    } else {
                        listed.push(resource);
                    }
                }
                feed.on_event(event);
            }
            Err((resource, e)) => {
                api(ApiSignal::Failed(resource));
                warn!(resource, "list or watch failed (retried with backoff; nothing is deleted): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests;
