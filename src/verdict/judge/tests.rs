//! The verdict, from node entries, expected nodes and agent pods: each decided edge case of the conditions.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::Selector;
use proptest::prelude::*;
use tokio::time::Instant;

use super::*;
use crate::agent::status::{NO_BACKENDS, PROGRAMMED as ENTRY_PROGRAMMED};

const DEADLINE: Duration = Duration::from_secs(60);

fn rules() -> Rules {
    Rules { report: StatusReport::All, progress_deadline: DEADLINE }
}

fn fleet(nodes: &[(&str, &str, bool)]) -> (Fleet, Instant) {
    let start = Instant::now();
    let mut fleet = Fleet::default();
    for (name, role, ready) in nodes {
        fleet.nodes.insert((*name).to_owned(), BTreeMap::from([("role".to_owned(), (*role).to_owned())]));
        fleet.agents.insert((*name).to_owned(), NodeAgent { ready: *ready, since: start });
    }
    (fleet, start)
}

fn entry(node: &str, generation: i64, programmed: bool, reason: &str, message: Option<&str>) -> NodeStatus {
    NodeStatus {
        node_name: node.to_owned(),
        observed_generation: Some(generation),
        programmed,
        reason: reason.to_owned(),
        message: message.map(str::to_owned),
        ..NodeStatus::default()
    }
}

fn subject<'a>(entries: &'a [NodeStatus], selector: Option<&'a Selector>, since: Instant) -> Subject<'a> {
    Subject { generation: Some(2), selector: Ok(selector), entries, since, judged_before: false }
}

fn get<'a>(verdict: &'a Verdict, type_: &str) -> &'a Judged {
    verdict.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

/// (status, reason) of Ready, Reconciling, Stalled.
fn shape(verdict: &Verdict) -> [(bool, &'static str); 3] {
    [READY, RECONCILING, STALLED].map(|t| {
        let c = get(verdict, t);
        (c.status, c.reason)
    })
}

#[test]
fn ready_only_when_every_expected_node_programmed_the_current_generation() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "lb", true)]);
    let one = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None)];
    let verdict = judge(&subject(&one, None, start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(false, PROGRESSING), (true, PROGRESSING), (false, NO_REFUSALS)]);
    assert_eq!(verdict.summary, "1/2 programmed");
    assert!(get(&verdict, RECONCILING).message.contains("node-b has not reported it"), "{verdict:?}");
    assert_eq!(verdict.next_deadline, Some(start + DEADLINE));

    // An entry of an older generation is not the current one.
    let old = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None), entry("node-b", 1, true, ENTRY_PROGRAMMED, None)];
    let verdict = judge(&subject(&old, None, start), &fleet, &rules(), start);
    assert_eq!(verdict.summary, "1/2 programmed");
    assert!(get(&verdict, RECONCILING).message.contains("node-b still reports generation 1"), "{verdict:?}");

    // NoBackends is programmed (the service is there, its EndpointSlices may not be yet).
    let both = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None), entry("node-b", 2, true, NO_BACKENDS, None)];
    let verdict = judge(&subject(&both, None, start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(true, PROGRAMMED), (false, REPORTED), (false, NO_REFUSALS)]);
    assert_eq!(verdict.summary, "2/2 programmed");
    assert_eq!(verdict.observed_generation, Some(2));
    assert_eq!(verdict.next_deadline, None);
}

#[test]
fn one_refusing_node_stalls_the_object_and_is_named() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "lb", true)]);
    let entries = [
        entry("node-a", 2, true, ENTRY_PROGRAMMED, None),
        entry("node-b", 2, false, KERNEL_REFUSED, Some("add service: No such file or directory")),
    ];
    let verdict = judge(&subject(&entries, None, start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(false, KERNEL_REFUSED), (false, REPORTED), (true, KERNEL_REFUSED)]);
    assert_eq!(get(&verdict, STALLED).message, "KernelRefused on node-b: add service: No such file or directory");
    assert_eq!(verdict.summary, "1/2 programmed");
    // A refusal of an older generation says nothing of the current one: that node is still to report.
    let old = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None), entry("node-b", 1, false, INVALID, Some("x"))];
    let verdict = judge(&subject(&old, None, start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(false, PROGRESSING), (true, PROGRESSING), (false, NO_REFUSALS)]);
}

#[test]
fn the_first_refusal_in_order_is_the_reason_and_every_kind_is_in_the_message() {
    let nodes: Vec<(String, &str, bool)> = (0..8).map(|i| (format!("node-{i}"), "lb", i != 7)).collect::<Vec<_>>();
    let named: Vec<(&str, &str, bool)> = nodes.iter().map(|(n, r, ready)| (n.as_str(), *r, *ready)).collect();
    let (fleet, start) = fleet(&named);
    let entries = [
        entry("node-0", 2, false, KERNEL_REFUSED, Some("refused")),
        entry("node-1", 2, false, CONFLICT, Some("claimed by prod/old")),
        entry("node-2", 2, false, NOT_ADMITTED, Some("no pool")),
        entry("node-3", 2, false, CONFLICT, None),
        entry("node-4", 2, false, CONFLICT, None),
        entry("node-5", 2, false, CONFLICT, None),
        entry("node-6", 2, true, ENTRY_PROGRAMMED, None),
    ];
    let verdict = judge(&subject(&entries, None, start), &fleet, &rules(), start);
    assert_eq!(get(&verdict, STALLED).reason, NOT_ADMITTED);
    assert_eq!(get(&verdict, READY).reason, NOT_ADMITTED);
    assert_eq!(
        get(&verdict, STALLED).message,
        "NotAdmitted on node-2: no pool; Conflict on node-1, node-3, node-4 and 1 more: claimed by prod/old; \
         KernelRefused on node-0: refused; AgentNotReady on node-7: its agent pod is not Ready"
    );
    assert_eq!(verdict.summary, "1/8 programmed");
    // Invalid comes before everything.
    let mut invalid = entries.to_vec();
    invalid[5] = entry("node-5", 2, false, INVALID, Some("spec.port: 70000 is out of range"));
    let verdict = judge(&subject(&invalid, None, start), &fleet, &rules(), start);
    assert_eq!(get(&verdict, STALLED).reason, INVALID);
    assert!(get(&verdict, STALLED).message.starts_with("Invalid on node-5: spec.port"), "{verdict:?}");
}

#[test]
fn an_agent_pod_not_ready_stalls_its_objects_and_counts_as_not_programmed() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "lb", false)]);
    // node-b's entry says programmed, but its agent is not Ready: nothing keeps its table.
    let entries = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None), entry("node-b", 2, true, ENTRY_PROGRAMMED, None)];
    let verdict = judge(&subject(&entries, None, start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(false, AGENT_NOT_READY), (false, REPORTED), (true, AGENT_NOT_READY)]);
    assert_eq!(get(&verdict, STALLED).message, "AgentNotReady on node-b: its agent pod is not Ready");
    assert_eq!(verdict.summary, "1/2 programmed");
}

#[test]
fn a_ready_agent_that_does_not_report_within_the_deadline_is_not_reporting() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "lb", true)]);
    let entries = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None)];
    let before = judge(&subject(&entries, None, start), &fleet, &rules(), start + DEADLINE - Duration::from_secs(1));
    assert_eq!(shape(&before), [(false, PROGRESSING), (true, PROGRESSING), (false, NO_REFUSALS)]);
    assert_eq!(before.next_deadline, Some(start + DEADLINE));
    let after = judge(&subject(&entries, None, start), &fleet, &rules(), start + DEADLINE);
    assert_eq!(shape(&after), [(false, NOT_REPORTING), (false, REPORTED), (true, NOT_REPORTING)]);
    assert_eq!(get(&after, STALLED).message, "NotReporting on node-b: has not reported it");
    assert_eq!(after.next_deadline, None);
    // The deadline counts from the later of the generation's arrival and the agent becoming Ready.
    let mut late = fleet.clone();
    late.agents.insert("node-b".to_owned(), NodeAgent { ready: true, since: start + DEADLINE });
    let verdict = judge(&subject(&entries, None, start), &late, &rules(), start + DEADLINE);
    assert!(get(&verdict, RECONCILING).status);
    assert_eq!(verdict.next_deadline, Some(start + DEADLINE * 2));
    // A node whose kernel cannot be read says so, and is waited for.
    let pending = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None), entry("node-b", 2, false, PENDING, Some("EPERM"))];
    let verdict = judge(&subject(&pending, None, start), &fleet, &rules(), start);
    assert!(get(&verdict, RECONCILING).message.contains("node-b cannot program it yet: EPERM"), "{verdict:?}");
}

#[test]
fn no_selected_node_is_not_ready_and_neither_reconciling_nor_stalled() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "web", true)]);
    let selector: Selector = [("role", "edge")].into_iter().collect();
    let verdict = judge(&subject(&[], Some(&selector), start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(false, NO_NODES_SELECTED), (false, NO_NODES_SELECTED), (false, NO_NODES_SELECTED)]);
    assert_eq!(verdict.summary, "0/0 programmed");
    assert!(get(&verdict, READY).message.contains("spec.nodeSelector"));
    // A node without an agent pod is not expected, whatever its labels.
    let mut no_agent = fleet.clone();
    no_agent.agents.clear();
    let verdict = judge(&subject(&[], None, start), &no_agent, &rules(), start);
    assert_eq!(get(&verdict, READY).reason, NO_NODES_SELECTED);
}

#[test]
fn the_node_selector_decides_which_nodes_count() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "web", true)]);
    let selector: Selector = [("role", "lb")].into_iter().collect();
    let entries = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None), entry("node-b", 1, false, INVALID, None)];
    let verdict = judge(&subject(&entries, Some(&selector), start), &fleet, &rules(), start);
    assert_eq!(shape(&verdict), [(true, PROGRAMMED), (false, REPORTED), (false, NO_REFUSALS)]);
    assert_eq!(verdict.summary, "1/1 programmed");
    // A selector the agents refuse selects every node, so that their Invalid entries are seen.
    let invalid =
        [entry("node-a", 2, false, INVALID, Some("spec.nodeSelector: bad")), entry("node-b", 2, false, INVALID, None)];
    let subject =
        Subject { generation: Some(2), selector: Err(()), entries: &invalid, since: start, judged_before: false };
    let verdict = judge(&subject, &fleet, &rules(), start);
    assert_eq!(get(&verdict, STALLED).message, "Invalid on node-a, node-b: spec.nodeSelector: bad");
}

#[test]
fn reporting_only_failures_counts_silence_as_programmed_once_a_pass_had_time() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "lb", true), ("node-c", "lb", false)]);
    let failures = Rules { report: StatusReport::Failures, ..rules() };
    let settled = start + FAILURES_SETTLE;
    let verdict = judge(&subject(&[], None, start), &fleet, &failures, settled);
    // node-c's agent is not Ready: that is still seen.
    assert_eq!(get(&verdict, STALLED).reason, AGENT_NOT_READY);
    assert_eq!(verdict.summary, "2/3 programmed");
    let mut all_ready = fleet.clone();
    all_ready.agents.get_mut("node-c").unwrap().ready = true;
    // Right after a new generation, silence may hide a refusal not yet written: Reconciling until it settles.
    let early = judge(&subject(&[], None, start), &all_ready, &failures, start);
    assert_eq!(shape(&early), [(false, PROGRESSING), (true, PROGRESSING), (false, NO_REFUSALS)]);
    assert!(get(&early, RECONCILING).message.contains("may still report a refusal"), "{early:?}");
    assert_eq!(early.next_deadline, Some(settled));
    let verdict = judge(&subject(&[], None, start), &all_ready, &failures, settled);
    assert_eq!(shape(&verdict), [(true, PROGRAMMED), (false, REPORTED), (false, NO_REFUSALS)]);
    // A generation a predecessor already judged is not new: a new leader does not wait again.
    let known = Subject { judged_before: true, ..subject(&[], None, start) };
    assert_eq!(judge(&known, &all_ready, &failures, start).summary, "3/3 programmed");
    assert!(get(&verdict, READY).message.contains("does not prove"), "{verdict:?}");
    assert!(get(&verdict, RECONCILING).message.contains("no node reported a refusal"), "{verdict:?}");
    // A failure entry of the current generation stalls; one of an older generation is waited for.
    let entries = [entry("node-a", 2, false, CONFLICT, Some("x")), entry("node-b", 1, false, CONFLICT, Some("y"))];
    let verdict = judge(&subject(&entries, None, start), &all_ready, &failures, settled);
    assert_eq!(shape(&verdict), [(false, CONFLICT), (true, PROGRESSING), (true, CONFLICT)]);
    assert_eq!(get(&verdict, STALLED).message, "Conflict on node-a: x");
}

#[test]
fn reporting_nothing_judges_only_the_agents_and_says_so() {
    let (fleet, start) = fleet(&[("node-a", "lb", true), ("node-b", "lb", true)]);
    let none = Rules { report: StatusReport::None, ..rules() };
    let verdict = judge(&subject(&[], None, start), &fleet, &none, start);
    assert_eq!(shape(&verdict), [(true, PROGRAMMED), (false, REPORTED), (false, NO_REFUSALS)]);
    assert!(get(&verdict, READY).message.contains("proves neither"), "{verdict:?}");
    assert!(get(&verdict, RECONCILING).message.contains("--status-report none"), "{verdict:?}");
}

#[test]
fn messages_name_a_few_nodes_then_a_count_and_stay_short() {
    let names: Vec<String> = (0..500).map(|i| format!("node-{i:03}")).collect();
    let nodes: Vec<(&str, &str, bool)> = names.iter().map(|n| (n.as_str(), "lb", true)).collect();
    let (fleet, start) = fleet(&nodes);
    let long = "x".repeat(5000);
    let entries: Vec<NodeStatus> = names.iter().map(|n| entry(n, 2, false, INVALID, Some(&long))).collect();
    let verdict = judge(&subject(&entries, None, start), &fleet, &rules(), start);
    let message = &get(&verdict, STALLED).message;
    assert!(message.starts_with("Invalid on node-000, node-001, node-002 and 497 more: xxx"), "{message}");
    assert_eq!(message.chars().count(), MESSAGE_LIMIT);
}

#[test]
fn transition_times_move_only_when_a_status_changes() {
    let (fleet, start) = fleet(&[("node-a", "lb", true)]);
    let then = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
    let now = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
    let waiting = judge(&subject(&[], None, start), &fleet, &rules(), start);
    let first = with_transition_times(&waiting, &[], &then);
    assert!(first.iter().all(|c| c.last_transition_time == then && c.observed_generation == Some(2)));
    // Same statuses, other message: times kept.
    let still: Vec<Condition> = with_transition_times(&waiting, &first, &now);
    assert_eq!(still, first);
    let done = [entry("node-a", 2, true, ENTRY_PROGRAMMED, None)];
    let ready = judge(&subject(&done, None, start), &fleet, &rules(), start);
    let next = with_transition_times(&ready, &first, &now);
    let time = |t: &str| next.iter().find(|c| c.type_ == t).unwrap().last_transition_time.clone();
    assert_eq!(time(READY), now);
    assert_eq!(time(RECONCILING), now);
    assert_eq!(time(STALLED), then, "Stalled stayed False");
}

proptest! {
    /// Whatever the nodes report: exactly the three conditions; Ready is True exactly when every expected node
    /// counts as programmed; Stalled and Ready=True never together; the summary counts what Ready says.
    #[test]
    fn the_conditions_agree_with_each_other(
        nodes in proptest::collection::vec((any::<bool>(), 0u8..8, any::<bool>()), 0..12),
        report in prop_oneof![Just(StatusReport::All), Just(StatusReport::Failures)],
        elapsed in 0u64..120,
    ) {
        const REASONS: [&str; 8] =
            [ENTRY_PROGRAMMED, NO_BACKENDS, INVALID, CONFLICT, KERNEL_REFUSED, NOT_ADMITTED, PENDING, "Future"];
        let names: Vec<String> = (0..nodes.len()).map(|i| format!("n{i}")).collect();
        let spec: Vec<(&str, &str, bool)> =
            names.iter().zip(&nodes).map(|(n, (ready, _, _))| (n.as_str(), "lb", *ready)).collect();
        let (fleet, start) = fleet(&spec);
        let entries: Vec<NodeStatus> = names
            .iter()
            .zip(&nodes)
            .filter(|(_, (_, reason, _))| *reason < 7)
            .map(|(n, (_, reason, current))| {
                let reason = REASONS[usize::from(*reason)];
                let programmed = reason == ENTRY_PROGRAMMED || reason == NO_BACKENDS;
                entry(n, if *current { 2 } else { 1 }, programmed, reason, None)
            })
            .collect();
        let rules = Rules { report, progress_deadline: DEADLINE };
        let verdict = judge(&subject(&entries, None, start), &fleet, &rules, start + Duration::from_secs(elapsed));
        let types: Vec<&str> = verdict.conditions.iter().map(|c| c.type_).collect();
        prop_assert_eq!(types, vec![READY, RECONCILING, STALLED]);
        let (ready, reconciling, stalled) =
            (get(&verdict, READY), get(&verdict, RECONCILING), get(&verdict, STALLED));
        let total = nodes.len();
        let programmed: usize = verdict.summary.split('/').next().unwrap().parse().unwrap();
        prop_assert_eq!(&verdict.summary, &format!("{programmed}/{total} programmed"));
        prop_assert_eq!(ready.status, total > 0 && programmed == total);
        prop_assert!(!(ready.status && (stalled.status || reconciling.status)));
        if stalled.status {
            prop_assert_eq!(ready.reason, stalled.reason);
        }
        if total == 0 {
            prop_assert_eq!(ready.reason, NO_NODES_SELECTED);
        }
    }
}
