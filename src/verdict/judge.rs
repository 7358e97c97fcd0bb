//! The verdict over one object, pure: which nodes should program it, what each of them reports, and from that the
//! kstatus conditions (`Ready`, `Reconciling`, `Stalled`) and the summary. No API, no clock of its own: the leader
//! passes the instants it observed, so every rule here is a unit test.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::core::{Selector, SelectorExt};
use tokio::time::Instant;

use crate::agent::status::{CONFLICT, INVALID, KERNEL_REFUSED, NOT_ADMITTED, PENDING, StatusReport};
use crate::api::v1alpha1::NodeStatus;

/// Condition type: every node that should program the object has programmed its current generation.
pub const READY: &str = "Ready";
/// Condition type (kstatus): a node that should program the object has not yet reported its current generation.
pub const RECONCILING: &str = "Reconciling";
/// Condition type (kstatus): some node refuses the object, or cannot: it will not progress without a change.
pub const STALLED: &str = "Stalled";

/// Reason: the object is programmed on every node that should program it.
pub const PROGRAMMED: &str = "Programmed";
/// Reason: no node with an agent is selected by the object's `nodeSelector`.
pub const NO_NODES_SELECTED: &str = "NoNodesSelected";
/// Reason: the agent pod of a node that should program the object is not Ready.
pub const AGENT_NOT_READY: &str = "AgentNotReady";
/// Reason: a Ready agent has not reported the current generation within the progress deadline.
pub const NOT_REPORTING: &str = "NotReporting";
/// Reason of `Reconciling` (and of `Ready=False` while nothing refuses): nodes have yet to report.
pub const PROGRESSING: &str = "Progressing";
/// Reason of `Reconciling=False`: every node reported the current generation.
pub const REPORTED: &str = "Reported";
/// Reason of `Stalled=False`: no node refuses the object.
pub const NO_REFUSALS: &str = "NoRefusals";

/// The refusals a `Stalled` condition may give as its reason, first the one that wins when several apply: what
/// the object's owner must fix comes before what the cluster's operators must.
const REFUSAL_ORDER: [&str; 6] = [INVALID, NOT_ADMITTED, CONFLICT, KERNEL_REFUSED, AGENT_NOT_READY, NOT_REPORTING];

/// With `--status-report failures`, how long after a new generation a node's silence
/// still may hide a refusal it has yet to write: an agent's pass runs within its quiet period (at most ten of them,
/// 3 s by default) of a change, and writes a refusal at once.
pub const FAILURES_SETTLE: Duration = Duration::from_secs(10);

/// A condition's message names at most this many nodes for each reason, then a count.
pub const NODES_NAMED: usize = 3;
/// A condition's message is cut to this many characters (it is shown by `kubectl describe`, and every write of it
/// is a watch event for every agent).
pub const MESSAGE_LIMIT: usize = 1024;

/// The agent pods of one node, as the leader sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeAgent {
    /// Whether any of its agent pods is Ready (two during a rolling update count once).
    pub ready: bool,
    /// Since when, as the leader observed it: the deadline for reporting counts from here.
    pub since: Instant,
}

/// What the leader knows of the cluster, for every object alike.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// Every Node's labels, by node name.
    pub nodes: BTreeMap<String, BTreeMap<String, String>>,
    /// The nodes on which an agent pod is scheduled.
    pub agents: BTreeMap<String, NodeAgent>,
}

/// How the verdict is judged, the same for every object.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// What healthy nodes write (`--status-report`): with `failures` or `none` a node that programmed the object
    /// writes nothing, so silence counts as programmed and only refusals are seen.
    pub report: StatusReport,
    /// How long a Ready agent may take to report a new generation before it is `NotReporting`.
    pub progress_deadline: Duration,
}

/// One object, as the leader sees it.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `spec.nodeSelector`: `Ok(None)` selects every node; `Err(())` is a selector the agents refuse (they report
    /// the object Invalid), judged as selecting every node so their refusals are seen.
    pub selector: Result<Option<&'a Selector>, ()>,
    /// `status.nodes`.
    pub entries: &'a [NodeStatus],
    /// Since when the leader has seen this generation (the deadline for reporting counts from here).
    pub since: Instant,
    /// The generation was judged before this leader saw it (its `status.observedGeneration` already names it:
    /// a predecessor's verdict), so it is not new: with `--status-report failures` its silence has settled.
    pub judged_before: bool,
}

/// What became of the object on one node that should program it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOutcome {
    /// Programmed at the current generation (or, without per-node reports of success, not refused).
    Programmed,
    /// Refused: the reason (one of the refusal order) and the node's message.
    Refused { reason: &'static str, message: Option<String> },
    /// Not reported yet; `overdue` once the progress deadline has passed; `detail` says what the node shows.
    Waiting { overdue: bool, detail: String },
}

/// The whole verdict: what the leader writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The generation judged.
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling`, `Stalled`, in that order, without transition times (see [`with_transition_times`]).
    pub conditions: Vec<Judged>,
    /// `2/3 programmed`.
    pub summary: String,
    /// When the verdict changes by itself (a waiting node's deadline passes), if it will.
    pub next_deadline: Option<Instant>,
}

/// One condition as judged, before its transition time is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// Ready, Reconciling, Stalled.
    pub type_: &'static str,
    /// True or False.
    pub status: bool,
    /// CamelCase.
    pub reason: &'static str,
    /// For people.
    pub message: String,
}

/// The nodes that should program an object: those its selector selects on which an agent pod is scheduled.
pub fn expected_nodes<'a>(subject: &Subject<'_>, fleet: &'a Fleet) -> Vec<&'a str> {
    let selects = |node: &str| match subject.selector {
        Ok(Some(selector)) => fleet.nodes.get(node).is_some_and(|labels| selector.matches(labels)),
        Ok(None) | Err(()) => true,
    };
    fleet.agents.keys().map(String::as_str).filter(|node| fleet.nodes.contains_key(*node) && selects(node)).collect()
}

/// What became of the object on `node`, whose agent is `agent`, given its entry (if any).
pub fn node_outcome(
    subject: &Subject<'_>,
    agent: NodeAgent,
    entry: Option<&NodeStatus>,
    rules: &Rules,
    now: Instant,
) -> (NodeOutcome, Option<Instant>) {
    if !agent.ready {
        let message = Some("its agent pod is not Ready".to_owned());
        return (NodeOutcome::Refused { reason: AGENT_NOT_READY, message }, None);
    }
    let current = entry.filter(|e| e.observed_generation == subject.generation);
    let detail = match (current, entry) {
        (Some(entry), _) => {
            if entry.programmed {
                return (NodeOutcome::Programmed, None);
            }
            if let Some(reason) = refusal(&entry.reason) {
                return (NodeOutcome::Refused { reason, message: entry.message.clone() }, None);
            }
            // Pending (its kernel could not be read) or a reason this version does not know: not programmed yet.
            match &entry.message {
                Some(message) if entry.reason == PENDING => format!("cannot program it yet: {message}"),
                _ => format!("reports {}", entry.reason),
            }
        }
        // With `--status-report none` a node writes nothing at all: only its agent's readiness is known.
        (None, None) if rules.report == StatusReport::None => return (NodeOutcome::Programmed, None),
        // With `failures` a node that programmed the object writes nothing; one that refuses it writes within a
        // pass. Silence counts as programmed once a pass has had time to run.
        (None, None) if rules.report == StatusReport::Failures => {
            // An agent turning Ready has passed once already (readiness waits for a pass), so only a new
            // generation has to settle.
            let settled = subject.since + FAILURES_SETTLE.min(rules.progress_deadline);
            if subject.judged_before || now >= settled {
                return (NodeOutcome::Programmed, None);
            }
            return (
                NodeOutcome::Waiting { overdue: false, detail: "may still report a refusal".to_owned() },
                Some(settled),
            );
        }
        (None, None) => "has not reported it".to_owned(),
        (None, Some(old)) => match old.observed_generation {
            Some(generation) => format!("still reports generation {generation}"),
            None => "reports no generation".to_owned(),
        },
    };
    let deadline = subject.since.max(agent.since) + rules.progress_deadline;
    let overdue = now >= deadline;
    (NodeOutcome::Waiting { overdue, detail }, (!overdue).then_some(deadline))
}

/// The refusal `reason` is, as one of the order's names.
fn refusal(reason: &str) -> Option<&'static str> {
    REFUSAL_ORDER.into_iter().find(|r| *r == reason)
}

/// The verdict over `subject`.
pub fn judge(subject: &Subject<'_>, fleet: &Fleet, rules: &Rules, now: Instant) -> Verdict {
    let expected = expected_nodes(subject, fleet);
    let generation = subject.generation;
    if expected.is_empty() {
        let why = match subject.selector {
            Ok(Some(_)) => "no node with an agent pod matches spec.nodeSelector",
            _ => "no agent pod is scheduled on any node",
        };
        return Verdict {
            observed_generation: generation,
            conditions: vec![
                condition(READY, false, NO_NODES_SELECTED, why.to_owned()),
                condition(RECONCILING, false, NO_NODES_SELECTED, why.to_owned()),
                condition(STALLED, false, NO_NODES_SELECTED, why.to_owned()),
            ],
            summary: "0/0 programmed".to_owned(),
            next_deadline: None,
        };
    }
    let entries: BTreeMap<&str, &NodeStatus> = subject.entries.iter().map(|e| (e.node_name.as_str(), e)).collect();
    let mut programmed = 0;
    let mut refused: BTreeMap<&'static str, Vec<(&str, Option<String>)>> = BTreeMap::new();
    let mut waiting: Vec<(&str, String)> = Vec::new();
    let mut next_deadline: Option<Instant> = None;
    for node in &expected {
        let Some(agent) = fleet.agents.get(*node) else { continue };
        let (outcome, deadline) = node_outcome(subject, *agent, entries.get(node).copied(), rules, now);
        next_deadline = match (next_deadline, deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match outcome {
            NodeOutcome::Programmed => programmed += 1,
            NodeOutcome::Refused { reason, message } => refused.entry(reason).or_default().push((node, message)),
            NodeOutcome::Waiting { overdue: true, detail } => {
                refused.entry(NOT_REPORTING).or_default().push((node, Some(detail)))
            }
            NodeOutcome::Waiting { overdue: false, detail } => waiting.push((node, detail)),
        }
    }
    let total = expected.len();
    let summary = format!("{programmed}/{total} programmed");
    let generation_text = generation.map_or_else(String::new, |g| format!(" generation {g}"));

    let stalled = stalled_message(&refused);
    let reconciling = (!waiting.is_empty()).then(|| {
        let nodes: Vec<String> = waiting.iter().map(|(node, detail)| format!("{node} {detail}")).collect();
        cut(format!("waiting for {} of {total} nodes to program{generation_text}: {}", waiting.len(), named(&nodes)))
    });
    let first_refusal = REFUSAL_ORDER.into_iter().find(|r| refused.contains_key(r));

    let ready = if programmed == total {
        let how = match rules.report {
            StatusReport::All => format!("programmed{generation_text} on all {total} nodes that should"),
            StatusReport::Failures => format!(
                "no node reports a refusal of{generation_text} and all {total} agents are Ready (nodes report only \
                 failures, so this does not prove each programmed it)"
            ),
            StatusReport::None => format!(
                "all {total} agents are Ready (nodes report nothing, --status-report none: this proves neither that \
                 they programmed{generation_text} nor that none refuses it)"
            ),
        };
        condition(READY, true, PROGRAMMED, how)
    } else if let (Some(reason), Some(message)) = (first_refusal, &stalled) {
        condition(READY, false, reason, message.clone())
    } else {
        condition(READY, false, PROGRESSING, reconciling.clone().unwrap_or_else(|| summary.clone()))
    };
    let reconciling = match reconciling {
        Some(message) => condition(RECONCILING, true, PROGRESSING, message),
        None => {
            let message = match rules.report {
                StatusReport::All => format!("every node reported{generation_text}"),
                StatusReport::Failures => {
                    format!("no node reported a refusal of{generation_text} within {} s", FAILURES_SETTLE.as_secs())
                }
                StatusReport::None => "nodes report nothing (--status-report none)".to_owned(),
            };
            condition(RECONCILING, false, REPORTED, message)
        }
    };
    let stalled = match (first_refusal, stalled) {
        (Some(reason), Some(message)) => condition(STALLED, true, reason, message),
        _ => condition(STALLED, false, NO_REFUSALS, "no node refuses it".to_owned()),
    };
    Verdict { observed_generation: generation, conditions: vec![ready, reconciling, stalled], summary, next_deadline }
}

/// `Invalid on node-a, node-b: spec.port: ...; AgentNotReady on node-c`: each reason in the refusal order, its
/// nodes (a few, then a count) and the first node's message.
fn stalled_message(refused: &BTreeMap<&'static str, Vec<(&str, Option<String>)>>) -> Option<String> {
    let parts: Vec<String> = REFUSAL_ORDER
        .into_iter()
        .filter_map(|reason| {
            let nodes = refused.get(reason)?;
            let names: Vec<String> = nodes.iter().map(|(node, _)| (*node).to_owned()).collect();
            let mut part = format!("{reason} on {}", named(&names));
            if let Some((_, Some(message))) = nodes.first() {
                part.push_str(": ");
                part.push_str(message);
            }
            Some(part)
        })
        .collect();
    (!parts.is_empty()).then(|| cut(parts.join("; ")))
}

/// `a, b, c and 4 more`.
fn named(items: &[String]) -> String {
    let shown = items.iter().take(NODES_NAMED).cloned().collect::<Vec<_>>().join(", ");
    match items.len().saturating_sub(NODES_NAMED) {
        0 => shown,
        more => format!("{shown} and {more} more"),
    }
}

/// `message` cut to [`MESSAGE_LIMIT`] characters.
fn cut(message: String) -> String {
    if message.chars().count() <= MESSAGE_LIMIT {
        return message;
    }
    let mut cut: String = message.chars().take(MESSAGE_LIMIT - 1).collect();
    cut.push('…');
    cut
}

fn condition(type_: &'static str, status: bool, reason: &'static str, message: String) -> Judged {
    Judged { type_, status, reason, message }
}

/// The conditions of `verdict` as written: each keeps the `lastTransitionTime` of the same type in `previous` while
/// its status is unchanged (the Kubernetes convention), else takes `now`.
pub fn with_transition_times(verdict: &Verdict, previous: &[Condition], now: &Time) -> Vec<Condition> {
    verdict
        .conditions
        .iter()
        .map(|judged| {
            let status = if judged.status { "True" } else { "False" };
            let kept = previous.iter().find(|p| p.type_ == judged.type_ && p.status == status);
            Condition {
                type_: judged.type_.to_owned(),
                status: status.to_owned(),
                reason: judged.reason.to_owned(),
                message: judged.message.clone(),
                observed_generation: verdict.observed_generation,
                last_transition_time: kept.map_or_else(|| now.clone(), |p| p.last_transition_time.clone()),
            }
        })
        .collect()
}

#[cfg(test)]
#[path = "judge/tests.rs"]
mod tests;
