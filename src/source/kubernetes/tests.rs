//! Watcher events into the desired state: lists, re-lists, conversion at the border, readiness.

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

use super::*;
use crate::model::ServiceKey;

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
        object.status = Some(VirtualServiceStatus { nodes: vec![entry] });
        object
    };
    list(&mut feed, vec![with_entry("n1")], Vec::new(), &[]);
    let id = crate::api::ObjectId::kubernetes("prod", "web");
    assert!(reported.lock().unwrap().contains(&id));
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(with_entry("n2")))));
    assert!(!reported.lock().unwrap().contains(&id), "another node's entry is not ours");
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Apply(with_entry("n1")))));
    feed.on_event(KubeEvent::VirtualService(Box::new(Event::Delete(with_entry("n1")))));
    assert!(reported.lock().unwrap().is_empty());
}
