//! `validate --kubernetes`: the documents as a cluster will receive them. VirtualServices are validated as the agent
//! validates them (`backendsFrom` and `nodeSelector` allowed, their names and selector checked as Kubernetes
//! would); VirtualServicePools as the agent converts them and as the CRD's rules judge them; every object needs a
//! name the API server takes, and one kind, namespace and name may appear once (applying both keeps only the last).
//!
//! Conflicts are judged without ages (the cluster's creation times decide which one wins): two objects that claim
//! the same service on every node (no `nodeSelector`) conflict; with a selector they may select different nodes,
//! which only the cluster knows.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_yaml::Value;
use tracing::warn;

use super::{Input, Kind, Outcome, each_document};
use crate::api::pool::{POOL_KIND, VirtualServicePool, VirtualServicePoolSpec};
use crate::api::v1alpha1::KIND;
use crate::api::validate::{dns_label_problem, dns_subdomain_problem, selector_problems, validate_read_as};
use crate::api::{ObjectId, ValidationError};
use crate::model::ServiceKey;
use crate::source::admission::Pool;
use crate::source::file::{Document, read_value, schema_error};

/// What the documents hold so far.
#[derive(Default)]
struct Cluster {
    errors: Vec<ValidationError>,
    /// Valid VirtualServices: the service each claims, whether on every node, and by whom.
    services: Vec<(ServiceKey, bool, ObjectId)>,
    backends: usize,
    backends_from: usize,
    pools: usize,
    /// The first document of each kind, namespace and name.
    names: BTreeMap<(&'static str, String, String), ObjectId>,
    skipped: usize,
}

/// Checks every document of `inputs` as a cluster will receive it.
pub(super) fn check(inputs: Vec<Input>) -> Outcome {
    let mut cluster = Cluster::default();
    let mut unreadable = Vec::new();
    each_document(
        inputs,
        |id, _, kind, value| match kind {
            Kind::Empty => warn!("{id}: empty document, skipped"),
            Kind::Other { .. } | Kind::List(_) => cluster.skipped += 1,
            Kind::Pool => cluster.pool(id, value),
            Kind::VirtualService | Kind::Refused => cluster.virtual_service(id, value),
        },
        &mut unreadable,
    );
    cluster.errors.extend(unreadable);
    let conflicts = cluster.conflicts();
    Outcome {
        valid: format!(
            "{} valid VirtualService(s) with {} backend(s) and {} backendsFrom reference(s), {} valid \
             VirtualServicePool(s)",
            cluster.services.len(),
            cluster.backends,
            cluster.backends_from,
            cluster.pools
        ),
        errors: cluster.errors,
        conflicts,
        skipped: cluster.skipped,
    }
}

impl Cluster {
    fn error(&mut self, id: &ObjectId, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(id.clone(), field, message));
    }

    fn virtual_service(&mut self, id: ObjectId, value: Value) {
        let (object, problems) = match read_value(&id, value) {
            Document::Object { object, problems } => (object, problems),
            Document::Unreadable(errors) => return self.errors.extend(errors),
            Document::Empty => return,
        };
        let before = self.errors.len();
        // The name's problems are checked below, against every kind's names.
        let problems: Vec<_> = problems.into_iter().filter(|p| !p.field.starts_with("metadata.")).collect();
        let meta = &object.metadata;
        self.metadata(&id, KIND, meta.namespace.as_deref(), meta.name.as_deref());
        match validate_read_as(&id, &object.spec, problems, true) {
            Ok(declared) if self.errors.len() == before => {
                self.backends += declared.service.dests.len();
                self.backends_from += declared.backends_from.len();
                let every_node = declared.node_selector.is_none();
                self.services.push((declared.service.service.key, every_node, id));
            }
            Ok(_) => {}
            Err(rejected) => self.errors.extend(rejected.errors),
        }
    }

    fn pool(&mut self, id: ObjectId, mut value: Value) {
        // Cluster-scoped: named by its name alone, not `default/name`.
        let id = match id {
            ObjectId::Document { path, index, .. } => {
                let name = value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str);
                ObjectId::Document { path, index, name: name.map(Arc::from) }
            }
            other => other,
        };
        // A missing metadata is the name's problem, reported as such below, not the schema's.
        if let Value::Mapping(mapping) = &mut value
            && !mapping.contains_key("metadata")
        {
            mapping.insert(Value::from("metadata"), Value::Mapping(Default::default()));
        }
        let pool: VirtualServicePool = match serde_path_to_error::deserialize(&value) {
            Ok(pool) => pool,
            Err(e) => {
                let (field, message) = schema_error(&e, &value);
                return self.error(&id, field, message);
            }
        };
        let before = self.errors.len();
        self.metadata(&id, POOL_KIND, None, pool.metadata.name.as_deref());
        let (_, problems) = Pool::from_resource(&pool);
        let prefix = format!("{POOL_KIND} {}: ", pool.metadata.name.as_deref().unwrap_or_default());
        for problem in &problems {
            let problem = problem.strip_prefix(&prefix).unwrap_or(problem);
            let (field, message) = problem.split_once(": ").unwrap_or(("", problem));
            self.error(&id, field, message);
        }
        for (i, namespace) in pool.spec.namespaces.iter().enumerate() {
            if let Some(why) = dns_label_problem(namespace) {
                self.error(&id, format!("spec.namespaces[{i}]"), why);
            }
        }
        for problem in pool.spec.namespace_selector.as_ref().map(selector_problems).unwrap_or_default() {
            self.error(&id, format!("spec.namespaceSelector{}", problem.field), problem.message);
        }
        // The CRD's rules, as the API server runs them (the conversion above reports the same things it can
        // read; the rules are run only when it found nothing, so that one mistake is one error).
        if self.errors.len() == before {
            match serde_json::to_value(&pool.spec).map(|spec| VirtualServicePoolSpec::validate_cel(&spec, None)) {
                Ok(Ok(())) => {}
                Ok(Err(refused)) => {
                    for line in refused.to_string().lines().filter(|l| !l.trim().is_empty()) {
                        self.error(&id, "spec", format!("the API server refuses it: {line}"));
                    }
                }
                Err(e) => self.error(&id, "spec", format!("cannot be checked: {e}")),
            }
        }
        if self.errors.len() == before {
            self.pools += 1;
        }
    }

    /// The object's name and namespace as the API server takes them, and its first appearance.
    fn metadata(&mut self, id: &ObjectId, kind: &'static str, namespace: Option<&str>, name: Option<&str>) {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return self.error(id, "metadata.name", "required: the API server refuses an object without a name");
        };
        if let Some(why) = dns_subdomain_problem(name) {
            self.error(id, "metadata.name", why);
        }
        if let Some(why) = namespace.and_then(dns_label_problem) {
            self.error(id, "metadata.namespace", why);
        }
        // Without a namespace, kubectl uses its context's: the same one for every such document.
        let key = (kind, namespace.unwrap_or_default().to_owned(), name.to_owned());
        if let Some(first) = self.names.get(&key) {
            let shown = match namespace {
                Some(namespace) => format!("{namespace}/{name}"),
                None => name.to_owned(),
            };
            let message =
                format!("{kind} {shown} is also declared by {first}: applying both keeps only the last one applied");
            return self.error(id, "metadata.name", message);
        }
        self.names.insert(key, id.clone());
    }

    /// Objects that claim the service of an earlier one on every node.
    fn conflicts(&self) -> Vec<String> {
        let mut first: BTreeMap<ServiceKey, &ObjectId> = BTreeMap::new();
        let mut found = Vec::new();
        for (key, every_node, id) in &self.services {
            if !every_node {
                continue;
            }
            match first.get(key) {
                Some(other) => found.push(format!(
                    "{id}: service {key} is also claimed by {other} on every node: only the older object is \
                     programmed"
                )),
                None => {
                    first.insert(*key, id);
                }
            }
        }
        found
    }
}
