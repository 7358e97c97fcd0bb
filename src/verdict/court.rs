//! The leader's bookkeeping, without the API: the fleet from Nodes and agent pods (and since when each node's
//! agent is Ready), since when each object's generation is known, and which verdicts must be written — only those
//! that differ from what the object shows and from what this leader already sent. A new leader starts a new
//! court: it trusts none of the conditions it finds, it recomputes them (and writes only those that are wrong).

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::core::Selector;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::judge::{Fleet, NodeAgent, Rules, Subject, Verdict, judge, with_transition_times};
use crate::api::ObjectId;
use crate::api::v1alpha1::{API_VERSION, KIND, VirtualService};

/// One status write the leader owes.
#[derive(Debug, Clone, PartialEq)]
pub struct Write {
    /// The object.
    pub id: ObjectId,
    /// Its namespace and name.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// What is written (kept as sent once the write succeeds).
    pub verdict: Verdict,
    /// The server-side apply body: apiVersion, kind, `status.observedGeneration`, `status.conditions`,
    /// `status.summary` — never the nodes' entries, which their agents own.
    pub body: Value,
    /// The object's resourceVersion when it was judged: until the watch shows a newer one, the write cannot
    /// have been seen.
    pub judged_version: Option<String>,
}

/// What an agent pod tells: the node it runs on and whether it is Ready.
pub fn agent_pod(pod: &Pod) -> Option<(&str, bool)> {
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    let status = pod.status.as_ref();
    // A pod that ended (a failed or completed one left behind) is no agent.
    if matches!(status.and_then(|s| s.phase.as_deref()), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    Some((node, ready))
}

/// The leader's memory for one term.
#[derive(Debug, Default)]
pub struct Court {
    /// Each object's generation, since when this leader has known it, and whether its verdict was already
    /// written when this term first saw it.
    generations: HashMap<ObjectId, (Option<i64>, Instant, bool)>,
    /// Each node's agent readiness and since when this leader has seen it so.
    agents: BTreeMap<String, NodeAgent>,
    /// The verdicts written (without deadline) whose write the watch has not shown yet, with the object's
    /// resourceVersion they were judged on.
    sent: HashMap<ObjectId, (Verdict, Option<String>)>,
    /// When each object's verdict changes by itself (a waiting node's deadline), for the objects where it will:
    /// kept per object, so that judging others does not lose it.
    deadlines: HashMap<ObjectId, Instant>,
}

impl Court {
    /// A court that has seen nothing.
    pub fn new() -> Self {
        Court::default()
    }

    /// The fleet from every Node's labels and the agent pods: a node has an agent when one of them is scheduled on
    /// it, and a Ready one when any of them is (two during a rolling update count once).
    pub fn fleet<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = (String, BTreeMap<String, String>)>,
        pods: impl IntoIterator<Item = &'a Pod>,
        now: Instant,
    ) -> Fleet {
        let mut ready: BTreeMap<String, bool> = BTreeMap::new();
        for (node, is_ready) in pods.into_iter().filter_map(agent_pod) {
            *ready.entry(node.to_owned()).or_default() |= is_ready;
        }
        let agents = ready
            .into_iter()
            .map(|(node, ready)| {
                let since = match self.agents.get(&node) {
                    Some(seen) if seen.ready == ready => seen.since,
                    _ => now,
                };
                (node, NodeAgent { ready, since })
            })
            .collect();
        self.agents = agents;
        Fleet { nodes: nodes.into_iter().collect(), agents: self.agents.clone() }
    }

    /// Forgets a deleted object.
    pub fn forget(&mut self, id: &ObjectId) {
        self.generations.remove(id);
        self.sent.remove(id);
        self.deadlines.remove(id);
    }

    /// The earliest instant at which some object's verdict changes by itself.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.values().min().copied()
    }

    /// Forgets every object not in `live`.
    pub fn retain(&mut self, live: &std::collections::HashSet<ObjectId>) {
        self.generations.retain(|id, _| live.contains(id));
        self.sent.retain(|id, _| live.contains(id));
        self.deadlines.retain(|id, _| live.contains(id));
    }

    /// The verdict on `object` and the write it needs, if any; and when its verdict changes by itself.
    pub fn judge(
        &mut self,
        object: &VirtualService,
        fleet: &Fleet,
        rules: &Rules,
        now: Instant,
        wall: &Time,
    ) -> (Option<Write>, Option<Instant>) {
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        let id = ObjectId::kubernetes(&namespace, &name);
        let generation = object.metadata.generation;
        let status = object.status.clone().unwrap_or_default();
        let (since, judged_before) = match self.generations.get(&id) {
            Some((seen, since, before)) if *seen == generation => (*since, *before),
            _ => {
                // First sight in this term of a generation whose verdict is already written (a predecessor's):
                // not a change this leader saw happen.
                let first_in_term = !self.generations.contains_key(&id);
                let before = first_in_term && generation.is_some() && status.observed_generation == generation;
                self.generations.insert(id.clone(), (generation, now, before));
                (now, before)
            }
        };
        let parsed = object.spec.node_selector.as_ref().map(|s: &LabelSelector| Selector::try_from(s.clone()));
        let selector = match &parsed {
            None => Ok(None),
            Some(Ok(selector)) => Ok(Some(selector)),
            Some(Err(_)) => Err(()),
        };
        let subject = Subject { generation, selector, entries: &status.nodes, since, judged_before };
        let mut verdict = judge(&subject, fleet, rules, now);
        let next_deadline = verdict.next_deadline.take();
        match next_deadline {
            Some(at) => self.deadlines.insert(id.clone(), at),
            None => self.deadlines.remove(&id),
        };
        let conditions = with_transition_times(&verdict, &status.conditions, wall);
        let shown = status.observed_generation == verdict.observed_generation
            && status.summary.as_deref() == Some(verdict.summary.as_str())
            && same_conditions(&status.conditions, &conditions);
        if shown {
            self.sent.remove(&id);
            return (None, next_deadline);
        }
        let version = object.metadata.resource_version.clone();
        if self.sent.get(&id).is_some_and(|(sent, judged)| *sent == verdict && *judged == version) {
            // Written, and the watch has shown nothing newer of the object yet. Once it shows a newer version
            // without this verdict, someone else changed the conditions after the write: they are written again.
            return (None, next_deadline);
        }
        let mut status = json!({ "conditions": conditions, "summary": verdict.summary });
        if let Some(generation) = verdict.observed_generation {
            status["observedGeneration"] = json!(generation);
        }
        let body = json!({ "apiVersion": API_VERSION, "kind": KIND, "status": status });
        (Some(Write { id, namespace, name, verdict, body, judged_version: version }), next_deadline)
    }

    /// Records that `write` was applied.
    pub fn written(&mut self, write: Write) {
        self.sent.insert(write.id, (write.verdict, write.judged_version));
    }
}

/// Whether two condition lists say the same, in any order.
fn same_conditions(shown: &[Condition], wanted: &[Condition]) -> bool {
    shown.len() == wanted.len() && wanted.iter().all(|w| shown.iter().any(|s| s == w))
}

#[cfg(test)]
#[path = "court/tests.rs"]
mod tests;
