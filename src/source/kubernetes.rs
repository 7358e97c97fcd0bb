//! The Kubernetes source: VirtualServices (all namespaces), EndpointSlices and this node's Node, from kube-runtime
//! watchers into the [`DesiredState`].
//!
//! Objects are converted at the border ([`SourceObject`], [`Slice`], the node's labels); nothing of the API types is
//! kept. A watcher's (re-)list arrives as `Init`, `InitApply`..., `InitDone`: the listed objects are buffered and
//! replace everything of their kind at `InitDone` (objects deleted while the watch was down disappear only then, and
//! never before the whole list is in). The state is marked ready once all three kinds have been listed, so the agent
//! never passes on a partial view (which would delete live services).

use std::collections::BTreeMap;
use std::net::IpAddr;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tracing::{info, warn};

use super::desired::DesiredState;
use super::endpoints::{ServiceRef, ServiceSlices, Slice};
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
}

/// Applies watcher events to the desired state.
pub struct KubeFeed {
    state: DesiredState,
    node_name: String,
    /// Objects of a (re-)list in progress, per kind.
    listing_objects: Option<Vec<SourceObject>>,
    listing_slices: Option<BTreeMap<ServiceRef, ServiceSlices>>,
    listing_node: Option<Option<BTreeMap<String, String>>>,
    /// Which kinds have been listed at least once: objects, slices, node.
    listed: [bool; 3],
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
            listed: [false; 3],
            reported: Reported::default(),
        }
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
        }
        if self.listed.iter().all(|l| *l) && !self.state.is_ready() {
            info!("VirtualServices, EndpointSlices and the Node are listed: reconciling");
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
                self.listed[0] = true;
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
                self.listed[1] = true;
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
                self.listed[2] = true;
            }
            Event::Apply(node) => self.set_labels(Some(labels(&node))),
            Event::Delete(_) => self.set_labels(None),
        }
    }

    fn set_labels(&mut self, labels: Option<BTreeMap<String, String>>) {
        self.state.update(|index| (index.set_node_labels(labels), ()));
    }
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
            _ => None,
        }
    }
}

/// The three watchers, merged. Each retries with backoff on its own; errors are yielded for logging.
pub fn watch(client: Client, node_name: &str) -> impl Stream<Item = Result<KubeEvent, WatchError>> + Send {
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
        Api::<Node>::all(client),
        watcher::Config::default().fields(&format!("metadata.name={node_name}")),
    )
    .default_backoff()
    .map(|e| e.map(|e| KubeEvent::Node(Box::new(e))).map_err(|e| ("nodes", e)));
    futures::stream::select_all([objects.boxed(), slices.boxed(), node.boxed()])
}

/// Follows the cluster until the streams end (they do not, short of a panic in kube). `api` hears of every event
/// (see [`ApiSignal`]); after a failed list or watch nothing is changed: the table stays as it is until the watcher
/// has a consistent view again.
pub async fn follow(
    client: Client,
    node_name: String,
    state: DesiredState,
    reported: Reported,
    api: impl Fn(ApiSignal) + Send,
) {
    let mut feed = KubeFeed::new(state, node_name.clone());
    feed.reported = reported;
    let mut listed: Vec<&'static str> = Vec::new();
    let mut events = std::pin::pin!(watch(client, &node_name));
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
