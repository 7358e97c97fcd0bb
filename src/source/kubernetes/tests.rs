//! Watcher events into the desired state: lists, re-lists, conversion at the border, readiness.

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::model::ServiceKey;
use crate::source::{ObjectIndex, ObjectState};

fn vs(name: &str, yaml: &str) -> VirtualService {
    let mut object = VirtualService::new(name, serde_yaml::from_str(yaml).unwrap());
    object.metadata.namespace = Some("prod".to_owned());
    object.metadata.generation = Some(3);
    object.metadata.creation_timestamp = Some(Time("2026-01-01T00:00:00Z".parse().unwrap()));
    object
}

fn endpoint(addr: &str, ready: Option<bool>, terminating: Option<bool>) -> Endpoint {
    Endpoint {
        addresses: vec![addr.to_owned()],
        conditions: Some(EndpointConditions { ready, serving: None, terminating }),
        ..Endpoint::default()
    }
}

fn endpoint_slice(name: &str, service: &str, endpoints: Vec<Endpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some("prod".to_owned()),
            labels: Some([(SERVICE_NAME_LABEL.to_owned(), service.to_owned())].into()),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        ports: Some(vec![EndpointPort { name: Some("http".to_owned()), port: Some(8080), ..EndpointPort::default() }]),
        endpoints: Some(endpoints),
    }
}

fn node(labels: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some("n1".to_owned()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        ..Node::default()
    }
}

const WEB: &str = "address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web, port: http}]\n";

fn key() -> ServiceKey {
    ServiceKey::tcp([192, 0, 2, 1].into(), 80)
}

fn backends(state: &DesiredState) -> Vec<String> {
    state.with_index(|index| {
        index
            .table()
            .services
            .get(&key())
            .map(|s| s.dests.keys().map(ToString::to_string).collect())
            .unwrap_or_default()
    })
}

/// Lists all three kinds: `objects`, `slices`, the node with `labels`.
fn list(feed: &mut KubeFeed, objects: Vec<VirtualService>, slices: Vec<EndpointSlice>, labels: &[(&str, &str)]) {
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Init)));
    for o in objects {
        feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitApply(o))));
    }
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitDone)));
    feed.on_event(KubeEvent::Slice(Box::new(Event::Init)));
    for s in slices {
        feed.on_event(KubeEvent::Slice(Box::new(Event::InitApply(s))));
    }
    feed.on_event(KubeEvent::Slice(Box::new(Event::InitDone)));
    feed.on_event(KubeEvent::Node(Box::new(Event::Init)));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitApply(node(labels)))));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitDone)));
}

#[test]
fn the_state_is_ready_only_once_every_kind_is_listed() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Init)));
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitApply(vs("web", WEB)))));
    assert_eq!(state.with_index(|i| i.len()), 0, "a list in progress is not applied");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitDone)));
    assert_eq!(state.with_index(|i| i.len()), 1);
    feed.on_event(KubeEvent::Slice(Box::new(Event::Init)));
    feed.on_event(KubeEvent::Slice(Box::new(Event::InitDone)));
    assert!(!state.is_ready(), "the Node is not listed yet");
    feed.on_event(KubeEvent::Node(Box::new(Event::Init)));
    feed.on_event(KubeEvent::Node(Box::new(Event::InitDone)));
    assert!(state.is_ready());
}

#[test]
fn objects_and_slices_make_the_desired_table() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1");
    let slice = endpoint_slice(
        "web-abc",
        "web",
        vec![
            endpoint("10.0.0.1", Some(true), None),
            endpoint("10.0.0.2", None, None),
            endpoint("10.0.0.3", Some(false), None),
            endpoint("10.0.0.4", Some(true), Some(true)),
        ],
    );
    list(&mut feed, vec![vs("web", WEB)], vec![slice], &[]);
    // Ready, and unknown readiness, are backends; not ready and terminating are not (they drain).
    assert_eq!(backends(&state), vec!["10.0.0.1:8080", "10.0.0.2:8080"]);
    let snapshot = state.take();
    assert_eq!(snapshot.table.services[&key()].origin.to_string(), "prod/web");

    feed.on_event(KubeEvent::Slice(Box::new(Event::Apply(endpoint_slice(
        "web-abc",
        "web",
        vec![endpoint("10.0.0.9", None, None)],
    )))));
    assert_eq!(backends(&state), vec!["10.0.0.9:8080"]);
    assert_eq!(state.take().changed.into_iter().collect::<Vec<_>>(), vec![key()]);
    feed.on_event(KubeEvent::Slice(Box::new(Event::Delete(endpoint_slice("web-abc", "web", Vec::new())))));
    assert_eq!(backends(&state), Vec::<String>::new());
}

#[test]
fn a_relist_removes_what_was_deleted_while_the_watch_was_down() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1");
    list(&mut feed, vec![vs("web", WEB), vs("api", "address: 192.0.2.2\nport: 80\n")], Vec::new(), &[]);
    assert_eq!(state.with_index(|i| i.len()), 2);
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Init)));
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitApply(vs("web", WEB)))));
    assert_eq!(state.with_index(|i| i.len()), 2, "nothing goes before the re-list is complete");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::InitDone)));
    assert_eq!(state.with_index(|i| i.len()), 1);
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Delete(vs("web", WEB)))));
    assert_eq!(state.with_index(|i| i.len()), 0);
}

#[test]
fn the_nodes_labels_drive_node_selectors() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1");
    let selective = "address: 192.0.2.1\nport: 80\nnodeSelector: {matchLabels: {role: lb}}\n";
    list(&mut feed, vec![vs("web", selective)], Vec::new(), &[("role", "web")]);
    assert!(state.take().table.services.is_empty());
    feed.on_event(KubeEvent::Node(Box::new(Event::Apply(node(&[("role", "lb")])))));
    assert_eq!(state.take().table.services.len(), 1);
    feed.on_event(KubeEvent::Node(Box::new(Event::Apply(node(&[])))));
    let snapshot = state.take();
    assert!(snapshot.table.services.is_empty());
    assert_eq!(snapshot.changed.into_iter().collect::<Vec<_>>(), vec![key()], "the node removes it");
}

#[test]
fn slices_are_converted_at_the_border() {
    let mut slice =
        endpoint_slice("s", "web", vec![endpoint("10.0.0.1", None, None), endpoint("not-an-ip", None, None)]);
    let ((namespace, service), name, converted) = slice_of(&slice).unwrap();
    assert_eq!((namespace.as_str(), service.as_str(), name.as_str()), ("prod", "web", "s"));
    assert_eq!(converted.family, Some(Family::V4));
    assert_eq!(converted.ports, vec![(Some("http".to_owned()), 8080)]);
    assert_eq!(converted.endpoints, vec![("10.0.0.1".parse().unwrap(), true)]);
    slice.address_type = "FQDN".to_owned();
    assert_eq!(slice_of(&slice).unwrap().2.family, None);
    slice.metadata.labels = None;
    assert!(slice_of(&slice).is_none(), "a slice of no Service is not ours");
}

#[test]
fn the_agents_own_status_writes_and_node_heartbeats_wake_nothing() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1");
    list(&mut feed, vec![vs("web", WEB)], Vec::new(), &[("role", "lb")]);
    let mut rx = state.subscribe();
    rx.mark_unchanged();
    let mut written = vs("web", WEB);
    written.status = Some(crate::api::v1alpha1::VirtualServiceStatus::default());
    written.metadata.resource_version = Some("99".to_owned());
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(written))));
    let mut heartbeat = node(&[("role", "lb")]);
    heartbeat.metadata.resource_version = Some("100".to_owned());
    feed.on_event(KubeEvent::Node(Box::new(Event::Apply(heartbeat))));
    assert!(!rx.has_changed().unwrap(), "a status write or a heartbeat must not start a pass");
}

#[test]
fn the_feed_tracks_which_objects_hold_an_entry_of_this_node() {
    use crate::api::v1alpha1::{NodeStatus, VirtualServiceStatus};
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state, "n1");
    let reported = feed.reported();
    let with_entry = |node: &str| {
        let mut object = vs("web", WEB);
        let entry = NodeStatus { node_name: node.to_owned(), reason: "Programmed".to_owned(), ..NodeStatus::default() };
        object.status = Some(VirtualServiceStatus { nodes: vec![entry], ..VirtualServiceStatus::default() });
        object
    };
    list(&mut feed, vec![with_entry("n1")], Vec::new(), &[]);
    let id = crate::api::ObjectId::kubernetes("prod", "web");
    assert_eq!(reported.lock().unwrap().get(&id).map(|e| e.node_name.as_str()), Some("n1"), "the entry itself");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(with_entry("n2")))));
    assert!(reported.lock().unwrap().get(&id).is_none(), "another node's entry is not ours");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(with_entry("n1")))));
    assert!(reported.lock().unwrap().take_renewed().is_empty(), "an edit is no renewal");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Delete(with_entry("n1")))));
    assert!(reported.lock().unwrap().get(&id).is_none(), "the deleted object's entry is gone");
    assert_eq!(reported.lock().unwrap().take_renewed(), [id.clone()].into(), "a deletion renews the object");
    assert!(reported.lock().unwrap().take_renewed().is_empty(), "taken once");

    // Deleted and created again while the watch was down: the relist shows another creation time.
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(with_entry("n1")))));
    let mut again = vs("web", WEB);
    again.metadata.creation_timestamp = Some(Time("2026-02-01T00:00:00Z".parse().unwrap()));
    list(&mut feed, vec![again], Vec::new(), &[]);
    assert_eq!(reported.lock().unwrap().take_renewed(), [id.clone()].into(), "a new creation time renews it");
    assert!(reported.lock().unwrap().get(&id).is_none(), "the new object holds no entry of this node");
}

/// The real watchers (kube-runtime) against kube's tower-test mock: what the agent does when the API fails.
fn pool(name: &str, cidr: &str, namespaces: &[&str]) -> VirtualServicePool {
    let spec = crate::api::pool::VirtualServicePoolSpec {
        addresses: vec![cidr.to_owned()],
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        ..Default::default()
    };
    VirtualServicePool::new(name, spec)
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

fn list_pools(feed: &mut KubeFeed, pools: Vec<VirtualServicePool>) {
    feed.on_event(KubeEvent::Pool(Box::new(Event::Init)));
    for p in pools {
        feed.on_event(KubeEvent::Pool(Box::new(Event::InitApply(p))));
    }
    feed.on_event(KubeEvent::Pool(Box::new(Event::InitDone)));
}

fn list_namespaces(feed: &mut KubeFeed, namespaces: Vec<Namespace>) {
    feed.on_event(KubeEvent::Namespace(Box::new(Event::Init)));
    for n in namespaces {
        feed.on_event(KubeEvent::Namespace(Box::new(Event::InitApply(n))));
    }
    feed.on_event(KubeEvent::Namespace(Box::new(Event::InitDone)));
}

const STATIC_WEB: &str = "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1}]\n";

fn services(state: &DesiredState) -> usize {
    state.with_index(|index| index.table().services.len())
}

#[test]
fn in_pools_mode_the_state_waits_for_the_pools_and_namespaces_and_admits_what_they_grant() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1").with_admission(AdmissionMode::Pools);
    list(&mut feed, vec![vs("web", STATIC_WEB)], Vec::new(), &[]);
    assert!(!state.is_ready(), "pools and namespaces are not listed yet");
    list_pools(&mut feed, vec![pool("edge", "192.0.2.0/24", &["prod"])]);
    assert!(!state.is_ready(), "namespaces are not listed yet");
    list_namespaces(&mut feed, vec![namespace("prod", &[])]);
    assert!(state.is_ready());
    assert_eq!(services(&state), 1);
    // The pool is narrowed: the object is no longer admitted.
    feed.on_event(KubeEvent::Pool(Box::new(Event::Apply(pool("edge", "198.51.100.0/24", &["prod"])))));
    assert_eq!(services(&state), 0);
    assert_eq!(state.with_index(ObjectIndex::not_admitted), 1);
    // Another pool grants it by label once the namespace has the label.
    let mut labelled = pool("tier", "192.0.2.0/24", &[]);
    labelled.spec.namespace_selector = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some([("tier".to_owned(), "edge".to_owned())].into()),
        match_expressions: None,
    });
    feed.on_event(KubeEvent::Pool(Box::new(Event::Apply(labelled))));
    assert_eq!(services(&state), 0);
    feed.on_event(KubeEvent::Namespace(Box::new(Event::Apply(namespace("prod", &[("tier", "edge")])))));
    assert_eq!(services(&state), 1);
    feed.on_event(KubeEvent::Pool(Box::new(Event::Delete(pool("tier", "192.0.2.0/24", &[])))));
    assert_eq!(services(&state), 0);
}

#[test]
fn a_missing_pool_crd_is_a_complete_view_that_admits_nothing() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1").with_admission(AdmissionMode::Pools);
    list(&mut feed, vec![vs("web", STATIC_WEB)], Vec::new(), &[]);
    list_namespaces(&mut feed, vec![namespace("prod", &[])]);
    feed.on_event(KubeEvent::PoolsMissing);
    assert!(state.is_ready(), "the agent stays up and says why");
    assert_eq!(services(&state), 0);
    let reports = state.with_index(ObjectIndex::reports);
    assert!(
        matches!(&reports[0].state, ObjectState::NotAdmitted { reason, .. } if reason.contains("CRD is not installed")),
        "{reports:?}"
    );
    // The CRD and a pool appear.
    list_pools(&mut feed, vec![pool("edge", "192.0.2.0/24", &["prod"])]);
    assert_eq!(services(&state), 1);
}

#[test]
fn in_open_mode_pools_are_not_waited_for() {
    let state = DesiredState::new();
    let mut feed = KubeFeed::new(state.clone(), "n1").with_admission(AdmissionMode::Open);
    list(&mut feed, vec![vs("web", STATIC_WEB)], Vec::new(), &[]);
    assert!(state.is_ready());
    assert_eq!(services(&state), 1);
}

mod against_a_mock_api {
    use std::time::Duration;

    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};

    use super::*;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn list(kind: &str, items: Vec<Value>, rv: u32) -> Value {
        json!({"apiVersion": "v1", "kind": format!("{kind}List"), "metadata": {"resourceVersion": rv.to_string()}, "items": items})
    }

    fn vs_json(name: &str) -> Value {
        json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService",
               "metadata": {"name": name, "namespace": "prod", "resourceVersion": "1", "generation": 1,
                            "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"address": "192.0.2.1", "port": if name == "web" { 80 } else { 81 }}})
    }

    fn node_json() -> Value {
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1", "resourceVersion": "1", "labels": {}}})
    }

    fn status(code: u16, reason: &str) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason})
    }

    /// Serves requests: `answer(kind, is_watch, n)` (n counts requests of that kind and mode) gives the status
    /// code and body, or `None` to leave the request hanging (an idle watch).
    fn serve(mut handle: Handle, answer: impl Fn(&str, bool, usize) -> Option<(u16, String)> + Send + 'static) {
        tokio::spawn(async move {
            let mut counts = std::collections::HashMap::new();
            let mut hanging = Vec::new();
            while let Some((request, send)) = handle.next_request().await {
                let uri = request.uri().to_string();
                // The pools' path contains "virtualservices": it is looked for first.
                let kinds = ["virtualservicepools", "virtualservices", "endpointslices", "nodes", "namespaces"];
                let kind = kinds.into_iter().find(|k| uri.contains(k)).unwrap_or("?");
                let watch = uri.contains("watch=true");
                let n = counts.entry((kind, watch)).or_insert(0usize);
                *n += 1;
                match answer(kind, watch, *n) {
                    Some((code, body)) => send
                        .send_response(Response::builder().status(code).body(Body::from(body.into_bytes())).unwrap()),
                    None => hanging.push(send),
                }
            }
        });
    }

    async fn until(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..600 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what}: not reached");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_list_changes_nothing_and_the_agent_converges_once_it_answers() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        serve(handle, |kind, watch, n| match (kind, watch) {
            (_, true) => None,
            ("virtualservices", false) if n == 1 => Some((500, status(500, "InternalError").to_string())),
            ("virtualservices", false) if n == 2 => Some((403, status(403, "Forbidden").to_string())),
            ("virtualservices", false) => Some((200, list("VirtualService", vec![vs_json("web")], 5).to_string())),
            ("endpointslices", false) => Some((200, list("EndpointSlice", Vec::new(), 5).to_string())),
            _ => Some((200, list("Node", vec![node_json()], 5).to_string())),
        });
        let state = DesiredState::new();
        let errors = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&errors);
        let client = Client::new(service, "default");
        tokio::spawn(follow(
            client,
            "n1".to_owned(),
            AdmissionMode::Open,
            state.clone(),
            Reported::default(),
            move |event| {
                if matches!(event, ApiSignal::Failed(_)) {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            },
        ));
        until("two failed lists", || errors.load(std::sync::atomic::Ordering::SeqCst) >= 2).await;
        assert!(!state.is_ready(), "a failed list is no view: the agent must not pass");
        until("ready after the list answers", || state.is_ready()).await;
        assert_eq!(state.with_index(|i| i.table().services.len()), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_answering_410_gone_relists_and_only_then_drops_what_went() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        serve(handle, |kind, watch, n| match (kind, watch) {
            ("virtualservices", false) if n == 1 => {
                Some((200, list("VirtualService", vec![vs_json("web"), vs_json("api")], 5).to_string()))
            }
            ("virtualservices", false) => Some((200, list("VirtualService", vec![vs_json("web")], 9).to_string())),
            // The first watch: the resourceVersion is too old.
            ("virtualservices", true) if n == 1 => {
                Some((200, json!({"type": "ERROR", "object": status(410, "Expired")}).to_string() + "\n"))
            }
            (_, true) => None,
            ("endpointslices", false) => Some((200, list("EndpointSlice", Vec::new(), 5).to_string())),
            _ => Some((200, list("Node", vec![node_json()], 5).to_string())),
        });
        let state = DesiredState::new();
        let client = Client::new(service, "default");
        let relists = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&relists);
        tokio::spawn(follow(
            client,
            "n1".to_owned(),
            AdmissionMode::Open,
            state.clone(),
            Reported::default(),
            move |event| {
                if let ApiSignal::Relisted(resource) = event {
                    seen.lock().unwrap().push(resource);
                }
            },
        ));
        until("ready", || state.is_ready()).await;
        until("the relist drops the object deleted meanwhile", || state.with_index(|i| i.len()) == 1).await;
        assert_eq!(*relists.lock().unwrap(), vec!["virtualservices"], "the relist is counted, the first lists not");
        let kept = state.with_index(|i| i.reports().into_iter().map(|r| r.id.to_string()).collect::<Vec<_>>());
        assert_eq!(kept, vec!["prod/web"]);
    }

    fn pool_json(name: &str) -> Value {
        json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualServicePool",
               "metadata": {"name": name, "resourceVersion": "1"},
               "spec": {"addresses": ["192.0.2.0/24"], "namespaces": ["prod"]}})
    }

    fn namespace_json() -> Value {
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "resourceVersion": "1"}})
    }

    /// The lists of every kind but the pools, for the tests of pools.
    fn others(kind: &str) -> Option<(u16, String)> {
        Some(match kind {
            "virtualservices" => (200, list("VirtualService", vec![vs_json("web")], 5).to_string()),
            "endpointslices" => (200, list("EndpointSlice", Vec::new(), 5).to_string()),
            "namespaces" => (200, list("Namespace", vec![namespace_json()], 5).to_string()),
            _ => (200, list("Node", vec![node_json()], 5).to_string()),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn without_the_pool_crd_the_agent_is_ready_admits_nothing_and_admits_once_it_appears() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        serve(handle, |kind, watch, n| match (kind, watch) {
            (_, true) => None,
            ("virtualservicepools", false) if n <= 3 => Some((404, status(404, "NotFound").to_string())),
            ("virtualservicepools", false) => {
                Some((200, list("VirtualServicePool", vec![pool_json("edge")], 7).to_string()))
            }
            (other, false) => others(other),
        });
        let state = DesiredState::new();
        let client = Client::new(service, "default");
        tokio::spawn(follow(client, "n1".to_owned(), AdmissionMode::Pools, state.clone(), Reported::default(), |_| {}));
        until("ready although the pools cannot be listed", || state.is_ready()).await;
        assert_eq!(state.with_index(|i| i.table().services.len()), 0);
        until("admitted once the CRD and a pool appear", || state.with_index(|i| i.table().services.len()) == 1).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_pool_deleted_during_an_api_outage_removes_nothing_until_the_api_answers_again() {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        serve(handle, |kind, watch, n| match (kind, watch) {
            ("virtualservicepools", false) if n == 1 => {
                Some((200, list("VirtualServicePool", vec![pool_json("edge")], 5).to_string()))
            }
            // The watch breaks (the API goes away), and the relists fail for a while.
            ("virtualservicepools", true) if n == 1 => {
                Some((200, json!({"type": "ERROR", "object": status(410, "Expired")}).to_string() + "\n"))
            }
            ("virtualservicepools", false) if n <= 5 => Some((503, status(503, "ServiceUnavailable").to_string())),
            // Back: the pool was deleted meanwhile.
            ("virtualservicepools", false) => Some((200, list("VirtualServicePool", Vec::new(), 9).to_string())),
            (_, true) => None,
            (other, false) => others(other),
        });
        let state = DesiredState::new();
        let failures = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&failures);
        let client = Client::new(service, "default");
        tokio::spawn(follow(
            client,
            "n1".to_owned(),
            AdmissionMode::Pools,
            state.clone(),
            Reported::default(),
            move |e| {
                if e == ApiSignal::Failed("virtualservicepools") {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            },
        ));
        until("ready and admitted", || state.is_ready() && state.with_index(|i| i.table().services.len()) == 1).await;
        until("the relists fail", || failures.load(std::sync::atomic::Ordering::SeqCst) >= 3).await;
        assert_eq!(state.with_index(|i| i.table().services.len()), 1, "a failed relist removes nothing");
        until("the relist that answers removes it", || state.with_index(|i| i.table().services.len()) == 0).await;
    }
}
