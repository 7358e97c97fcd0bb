//! The leader's bookkeeping: the fleet from Nodes and agent pods, and writes only when the verdict shown is wrong.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::ObjectMeta;
use tokio::time::Instant;

use super::*;
use crate::agent::status::{KERNEL_REFUSED, PROGRAMMED as ENTRY_PROGRAMMED, StatusReport};
use crate::api::v1alpha1::{NodeStatus, VirtualServiceSpec, VirtualServiceStatus};
use crate::verdict::judge::{READY, RECONCILING, STALLED};

fn pod(name: &str, node: Option<&str>, ready: bool, phase: &str) -> Pod {
    Pod {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        spec: Some(PodSpec { node_name: node.map(str::to_owned), ..PodSpec::default() }),
        status: Some(PodStatus {
            phase: Some(phase.to_owned()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".to_owned(),
                status: if ready { "True" } else { "False" }.to_owned(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn nodes(names: &[&str]) -> Vec<(String, BTreeMap<String, String>)> {
    names.iter().map(|n| ((*n).to_owned(), BTreeMap::from([("role".to_owned(), "lb".to_owned())]))).collect()
}

fn object(
    generation: i64,
    entries: Vec<NodeStatus>,
    conditions: Vec<Condition>,
    summary: Option<&str>,
) -> VirtualService {
    let spec: VirtualServiceSpec = serde_yaml::from_str("address: 192.0.2.1\nport: 80\n").unwrap();
    let mut object = VirtualService::new("web", spec);
    object.metadata.namespace = Some("prod".to_owned());
    object.metadata.generation = Some(generation);
    object.status = Some(VirtualServiceStatus {
        observed_generation: (!conditions.is_empty()).then_some(generation),
        conditions,
        summary: summary.map(str::to_owned),
        nodes: entries,
    });
    object
}

fn programmed(node: &str, generation: i64) -> NodeStatus {
    NodeStatus {
        node_name: node.to_owned(),
        observed_generation: Some(generation),
        programmed: true,
        reason: ENTRY_PROGRAMMED.to_owned(),
        ..NodeStatus::default()
    }
}

fn rules() -> Rules {
    Rules { report: StatusReport::All, progress_deadline: Duration::from_secs(60) }
}

fn wall(second: i64) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(1_700_000_000 + second).unwrap())
}

/// What the API server shows after applying `write` to `object` (the leader's fields replaced).
fn shown_after(object: &VirtualService, write: &Write) -> VirtualService {
    let mut next = object.clone();
    let status: VirtualServiceStatus = serde_json::from_value(write.body["status"].clone()).unwrap();
    let current = next.status.get_or_insert_with(VirtualServiceStatus::default);
    current.observed_generation = status.observed_generation;
    current.conditions = status.conditions;
    current.summary = status.summary;
    next
}

#[test]
fn agent_pods_make_the_fleet_and_two_on_one_node_count_once() {
    let mut court = Court::new();
    let now = Instant::now();
    let pods = [
        pod("a-old", Some("node-a"), false, "Running"),
        pod("a-new", Some("node-a"), true, "Running"),
        pod("b", Some("node-b"), false, "Running"),
        pod("c-done", Some("node-c"), true, "Failed"),
        pod("unscheduled", None, false, "Pending"),
    ];
    let fleet = court.fleet(nodes(&["node-a", "node-b", "node-c"]), pods.iter(), now);
    let agents: Vec<(&str, bool)> = fleet.agents.iter().map(|(n, a)| (n.as_str(), a.ready)).collect();
    assert_eq!(agents, vec![("node-a", true), ("node-b", false)], "node-c's pod ended: no agent there");
    assert_eq!(fleet.nodes.len(), 3);

    // Readiness keeps its `since` while it holds, and restarts it when it changes.
    let later = now + Duration::from_secs(5);
    let fleet = court.fleet(nodes(&["node-a", "node-b"]), pods.iter(), later);
    assert_eq!(fleet.agents["node-a"].since, now);
    let ready_b = [pod("a-new", Some("node-a"), true, "Running"), pod("b", Some("node-b"), true, "Running")];
    let fleet = court.fleet(nodes(&["node-a", "node-b"]), ready_b.iter(), later);
    assert_eq!((fleet.agents["node-b"].ready, fleet.agents["node-b"].since), (true, later));
}

#[test]
fn a_verdict_is_written_once_with_the_leaders_fields_only() {
    let mut court = Court::new();
    let now = Instant::now();
    let pods = [pod("a", Some("node-a"), true, "Running"), pod("b", Some("node-b"), true, "Running")];
    let fleet = court.fleet(nodes(&["node-a", "node-b"]), pods.iter(), now);
    let web = object(3, vec![programmed("node-a", 3)], vec![], None);
    let (write, deadline) = court.judge(&web, &fleet, &rules(), now, &wall(0));
    let write = write.expect("nothing shown yet");
    assert_eq!(deadline, Some(now + Duration::from_secs(60)), "node-b's deadline");
    assert_eq!((write.namespace.as_str(), write.name.as_str()), ("prod", "web"));
    assert_eq!(write.body["apiVersion"], "ipvs.dev/v1alpha1");
    assert_eq!(write.body["kind"], "VirtualService");
    let status = write.body["status"].as_object().unwrap();
    let mut fields: Vec<&str> = status.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["conditions", "observedGeneration", "summary"], "never the nodes' entries");
    assert_eq!(status["summary"], "1/2 programmed");
    assert_eq!(status["observedGeneration"], 3);
    assert_eq!(status["conditions"][0]["type"], READY);
    assert_eq!(status["conditions"][0]["observedGeneration"], 3);

    // Sent, not yet shown by the watch: not written again.
    court.written(write.clone());
    assert_eq!(court.judge(&web, &fleet, &rules(), now, &wall(1)).0, None);
    // Shown: nothing to write, and nothing is remembered as in flight.
    let shown = shown_after(&web, &write);
    assert_eq!(court.judge(&shown, &fleet, &rules(), now, &wall(2)).0, None);
    // Someone else changes the conditions afterwards: the leader puts them right.
    let mut tampered = shown.clone();
    tampered.metadata.resource_version = Some("12".to_owned());
    tampered.status.as_mut().unwrap().conditions[0].status = "True".to_owned();
    assert!(court.judge(&tampered, &fleet, &rules(), now, &wall(3)).0.is_some());
}

#[test]
fn conditions_changed_by_someone_else_before_the_write_is_seen_are_written_again() {
    let mut court = Court::new();
    let now = Instant::now();
    let pods = [pod("a", Some("node-a"), true, "Running")];
    let fleet = court.fleet(nodes(&["node-a"]), pods.iter(), now);
    let mut web = object(1, vec![programmed("node-a", 1)], vec![], None);
    web.metadata.resource_version = Some("10".to_owned());
    let (write, _) = court.judge(&web, &fleet, &rules(), now, &wall(0));
    let write = write.unwrap();
    court.written(write.clone());
    // The same version again (an echo of nothing new): not written twice.
    assert_eq!(court.judge(&web, &fleet, &rules(), now, &wall(1)).0, None);
    // The next version the watch shows has other conditions (someone wrote over the leader's before its write
    // was seen): written again, not mistaken for the leader's write in flight.
    let mut overwritten = shown_after(&web, &write);
    overwritten.metadata.resource_version = Some("12".to_owned());
    let status = overwritten.status.as_mut().unwrap();
    status.conditions[0].status = "False".to_owned();
    status.conditions[0].reason = "Manual".to_owned();
    let (again, _) = court.judge(&overwritten, &fleet, &rules(), now, &wall(2));
    assert_eq!(again.unwrap().body["status"]["conditions"][0]["status"], "True");
}

#[test]
fn a_change_of_any_node_entry_or_of_the_generation_is_a_new_write_keeping_unchanged_times() {
    let mut court = Court::new();
    let now = Instant::now();
    let pods = [pod("a", Some("node-a"), true, "Running"), pod("b", Some("node-b"), true, "Running")];
    let fleet = court.fleet(nodes(&["node-a", "node-b"]), pods.iter(), now);
    let web = object(3, vec![programmed("node-a", 3), programmed("node-b", 3)], vec![], None);
    let (write, _) = court.judge(&web, &fleet, &rules(), now, &wall(0));
    let write = write.unwrap();
    court.written(write.clone());
    let shown = shown_after(&web, &write);
    let ready = &shown.status.as_ref().unwrap().conditions;
    assert_eq!((ready[0].type_.as_str(), ready[0].status.as_str()), (READY, "True"));

    // node-b's kernel refuses it: Stalled, Ready False; Reconciling stays False with its old time.
    let mut refused = shown.clone();
    let entry = &mut refused.status.as_mut().unwrap().nodes[1];
    entry.programmed = false;
    entry.reason = KERNEL_REFUSED.to_owned();
    entry.message = Some("add service: ENOENT".to_owned());
    let (write, _) = court.judge(&refused, &fleet, &rules(), now, &wall(10));
    let body = &write.expect("a new verdict").body["status"];
    let by_type = |t: &str| body["conditions"].as_array().unwrap().iter().find(|c| c["type"] == t).unwrap().clone();
    assert_eq!(by_type(STALLED)["reason"], KERNEL_REFUSED);
    assert_eq!(by_type(STALLED)["lastTransitionTime"], serde_json::to_value(wall(10)).unwrap());
    assert_eq!(by_type(RECONCILING)["lastTransitionTime"], serde_json::to_value(wall(0)).unwrap());

    // A new generation: judged again, the deadline counting from now.
    let later = now + Duration::from_secs(30);
    let mut edited = shown.clone();
    edited.metadata.generation = Some(4);
    let (write, deadline) = court.judge(&edited, &fleet, &rules(), later, &wall(30));
    assert_eq!(write.unwrap().body["status"]["observedGeneration"], 4);
    assert_eq!(deadline, Some(later + Duration::from_secs(60)));
}

#[test]
fn a_new_leader_writes_only_the_verdicts_that_are_wrong() {
    let now = Instant::now();
    let pods = [pod("a", Some("node-a"), true, "Running")];
    let mut old = Court::new();
    let fleet = old.fleet(nodes(&["node-a"]), pods.iter(), now);
    let web = object(1, vec![programmed("node-a", 1)], vec![], None);
    let (write, _) = old.judge(&web, &fleet, &rules(), now, &wall(0));
    let shown = shown_after(&web, &write.unwrap());
    // The predecessor's verdict is right: its successor finds nothing to write.
    let mut new = Court::new();
    let fleet = new.fleet(nodes(&["node-a"]), pods.iter(), now);
    assert_eq!(new.judge(&shown, &fleet, &rules(), now, &wall(5)).0, None);
    // A verdict left stale (the predecessor died before writing node-a's loss of its agent): rewritten.
    let not_ready = [pod("a", Some("node-a"), false, "Running")];
    let fleet = new.fleet(nodes(&["node-a"]), not_ready.iter(), now);
    let (write, _) = new.judge(&shown, &fleet, &rules(), now, &wall(6));
    assert_eq!(write.unwrap().body["status"]["conditions"][2]["reason"], "AgentNotReady");
}

#[test]
fn forgotten_objects_start_afresh() {
    let mut court = Court::new();
    let now = Instant::now();
    let pods = [pod("a", Some("node-a"), true, "Running")];
    let fleet = court.fleet(nodes(&["node-a"]), pods.iter(), now);
    let web = object(1, vec![], vec![], None);
    let (write, _) = court.judge(&web, &fleet, &rules(), now, &wall(0));
    court.written(write.unwrap());
    court.retain(&std::collections::HashSet::new());
    // Deleted and created again with the same name: written, its deadline counting from now.
    let later = now + Duration::from_secs(10);
    let (write, deadline) = court.judge(&web, &fleet, &rules(), later, &wall(10));
    assert!(write.is_some());
    assert_eq!(deadline, Some(later + Duration::from_secs(60)));
}

#[test]
fn a_waiting_objects_deadline_is_kept_while_others_are_judged() {
    let mut court = Court::new();
    let now = Instant::now();
    let pods = [pod("a", Some("node-a"), true, "Running"), pod("b", Some("node-b"), true, "Running")];
    let fleet = court.fleet(nodes(&["node-a", "node-b"]), pods.iter(), now);
    // web waits for node-b; its deadline is the court's next.
    let web = object(1, vec![programmed("node-a", 1)], vec![], None);
    court.judge(&web, &fleet, &rules(), now, &wall(0));
    assert_eq!(court.next_deadline(), Some(now + Duration::from_secs(60)));
    // Another object, fully programmed, judged later: web's deadline stays.
    let mut api = object(1, vec![programmed("node-a", 1), programmed("node-b", 1)], vec![], None);
    api.metadata.name = Some("api".to_owned());
    court.judge(&api, &fleet, &rules(), now + Duration::from_secs(5), &wall(5));
    assert_eq!(court.next_deadline(), Some(now + Duration::from_secs(60)));
    // web programmed everywhere: no deadline left; deleted objects take theirs with them.
    let done = object(1, vec![programmed("node-a", 1), programmed("node-b", 1)], vec![], None);
    court.judge(&done, &fleet, &rules(), now, &wall(6));
    assert_eq!(court.next_deadline(), None);
    court.judge(&web, &fleet, &rules(), now, &wall(7));
    court.forget(&ObjectId::kubernetes("prod", "web"));
    assert_eq!(court.next_deadline(), None);
}
