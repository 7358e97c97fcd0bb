//! A stateful stand-in for the API server behind `kube::Client`, for the election's and the leader's tests:
//!
//! - Leases with the API's optimistic concurrency (a replace with a stale resourceVersion is 409 Conflict, a create
//!   of an existing one 409 AlreadyExists);
//! - list and watch (a streaming body, JSON lines) of VirtualServices (all namespaces), Nodes and Pods (one
//!   namespace, label selector `k=v`), with resourceVersions;
//! - server-side apply of `virtualservices/status`, merged per field manager as the list-maps are (`nodes` by
//!   `nodeName`, `conditions` by `type`, other fields from their last sender), recorded with the client that sent it.
//!
//! Several clients share one [`FakeApi`], as several agents share one API server; each client has a name, and
//! [`FakeApi::cut_off`] makes one client's requests of one kind fail (a partition), or all clients' ([`FakeApi::set_outage`]).

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::watch;

/// One status apply the fake received.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The client that sent it.
    pub client: String,
    /// `namespace/name`.
    pub object: String,
    /// The `fieldManager` query parameter.
    pub manager: String,
    /// Whether `force=true` was given.
    pub force: bool,
    /// The body.
    pub body: Value,
}

#[derive(Default)]
struct State {
    /// kind ("leases", "virtualservices", "nodes", "pods") -> "namespace/name" -> object.
    objects: BTreeMap<&'static str, BTreeMap<String, Value>>,
    /// Every change: (resourceVersion, kind, type, object).
    events: Vec<(u64, &'static str, &'static str, Value)>,
    version: u64,
    applied: Vec<Applied>,
    /// Per object, per field manager: the status it applied last.
    owners: BTreeMap<String, BTreeMap<String, Value>>,
    outage: bool,
    /// (client, kind) pairs whose requests fail.
    cut: BTreeSet<(String, &'static str)>,
}

/// The shared API server state; [`FakeApi::client`] makes a client of it.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    /// Bumped on every change, to wake the watches.
    changes: watch::Sender<u64>,
}

impl Default for FakeApi {
    fn default() -> Self {
        FakeApi { state: Arc::default(), changes: watch::channel(0).0 }
    }
}

type Answer = Response<UnsyncBoxBody<Bytes, Infallible>>;

fn full(code: StatusCode, body: &Value) -> Answer {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut response = Response::new(Full::new(bytes).boxed_unsync());
    *response.status_mut() = code;
    response
}

fn status(code: StatusCode, reason: &str) -> Answer {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
        "message": reason, "code": code.as_u16()});
    full(code, &body)
}

/// `%2F` and friends, as clients encode query values.
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let parsed = std::str::from_utf8(hex).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                out.push(parsed.unwrap_or(b'%'));
                i += if parsed.is_some() { 3 } else { 1 };
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('='))).map(decode)
}

fn key_of(object: &Value) -> String {
    let meta = &object["metadata"];
    format!("{}/{}", meta["namespace"].as_str().unwrap_or_default(), meta["name"].as_str().unwrap_or_default())
}

/// Whether `object` is in `namespace` (all when `None`) and has every `k=v` of `selector`.
fn selected(object: &Value, namespace: Option<&str>, selector: Option<&str>) -> bool {
    let meta = &object["metadata"];
    if namespace.is_some_and(|ns| meta["namespace"].as_str() != Some(ns)) {
        return false;
    }
    selector.into_iter().flat_map(|s| s.split(',')).filter(|t| !t.is_empty()).all(|term| match term.split_once('=') {
        Some((k, v)) => meta["labels"][k].as_str() == Some(v),
        None => !meta["labels"][term].is_null(),
    })
}

/// Which kind a path names, with its namespace and object name (if any).
fn route(path: &[&str]) -> Option<(&'static str, Option<String>, Option<String>)> {
    let owned = |s: &&str| (*s).to_owned();
    match path {
        ["apis", "coordination.k8s.io", "v1", "namespaces", ns, "leases", rest @ ..] => {
            Some(("leases", Some(owned(ns)), rest.first().map(owned)))
        }
        ["apis", "ipvs.dev", "v1alpha1", "virtualservices"] => Some(("virtualservices", None, None)),
        ["apis", "ipvs.dev", "v1alpha1", "namespaces", ns, "virtualservices", rest @ ..] => {
            Some(("virtualservices", Some(owned(ns)), rest.first().map(owned)))
        }
        ["api", "v1", "nodes", rest @ ..] => Some(("nodes", None, rest.first().map(owned))),
        ["api", "v1", "namespaces", ns, "pods", rest @ ..] => Some(("pods", Some(owned(ns)), rest.first().map(owned))),
        _ => None,
    }
}

impl State {
    fn bump(&mut self, kind: &'static str, type_: &'static str, mut object: Value) -> Value {
        self.version += 1;
        object["metadata"]["resourceVersion"] = json!(self.version.to_string());
        self.events.push((self.version, kind, type_, object.clone()));
        object
    }

    fn put(&mut self, kind: &'static str, object: Value) -> Value {
        let key = key_of(&object);
        let existed = self.objects.get(kind).is_some_and(|o| o.contains_key(&key));
        let object = self.bump(kind, if existed { "MODIFIED" } else { "ADDED" }, object);
        self.objects.entry(kind).or_default().insert(key, object.clone());
        object
    }
}

impl FakeApi {
    /// A client of this API server named `name` (namespace `default`).
    pub fn client(&self, name: &str) -> Client {
        let api = self.clone();
        let name = name.to_owned();
        let service = tower::service_fn(move |request: Request<Body>| {
            let api = api.clone();
            let name = name.clone();
            async move { Ok::<_, Infallible>(api.answer(&name, request).await) }
        });
        Client::new(service, "default")
    }

    /// Every status apply received, in order.
    pub fn applied(&self) -> Vec<Applied> {
        self.state.lock().map(|s| s.applied.clone()).unwrap_or_default()
    }

    /// An object of `kind` (`namespace/name`; `/name` for Nodes).
    pub fn get(&self, kind: &str, key: &str) -> Option<Value> {
        self.state.lock().ok().and_then(|s| s.objects.get(kind).and_then(|o| o.get(key).cloned()))
    }

    /// Creates or replaces an object of `kind` (as a user or the kubelet would); a VirtualService's generation
    /// moves with each replace, its status is kept.
    pub fn put(&self, kind: &'static str, mut object: Value) {
        if let Ok(mut state) = self.state.lock() {
            if kind == "virtualservices" {
                let old = state.objects.get(kind).and_then(|o| o.get(&key_of(&object))).cloned();
                let generation = old.as_ref().and_then(|o| o["metadata"]["generation"].as_i64()).unwrap_or(0);
                object["metadata"]["generation"] = json!(generation + 1);
                match old {
                    Some(old) => object["status"] = old["status"].clone(),
                    // A status given at creation is as if each node's agent had applied its entry.
                    None => {
                        let owners = state.owners.entry(key_of(&object)).or_default();
                        for entry in object["status"]["nodes"].as_array().into_iter().flatten() {
                            let node = entry["nodeName"].as_str().unwrap_or_default();
                            owners.insert(format!("ipvs-reconciler/{node}"), json!({"nodes": [entry]}));
                        }
                    }
                }
            }
            state.put(kind, object);
        }
        self.changes.send_modify(|v| *v += 1);
    }

    /// Takes the API down for everyone (every request 503) or brings it back.
    pub fn set_outage(&self, down: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.outage = down;
        }
    }

    /// Makes client `client`'s requests of `kind` fail (503), or succeed again.
    pub fn cut_off(&self, client: &str, kind: &'static str, cut: bool) {
        if let Ok(mut state) = self.state.lock() {
            let entry = (client.to_owned(), kind);
            if cut {
                state.cut.insert(entry);
            } else {
                state.cut.remove(&entry);
            }
        }
    }

    async fn answer(&self, client: &str, request: Request<Body>) -> Answer {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let Ok(collected) = request.into_body().collect().await else {
            return status(StatusCode::BAD_REQUEST, "BadRequest");
        };
        let body: Value = serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null);
        let path: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        let query = uri.query().unwrap_or_default().to_owned();
        let Some((kind, namespace, name)) = route(&path) else { return status(StatusCode::NOT_FOUND, "NotFound") };
        let watching = matches!(param(&query, "watch").as_deref(), Some("true" | "1"));
        let answer = {
            let Ok(mut state) = self.state.lock() else { return status(StatusCode::INTERNAL_SERVER_ERROR, "Poisoned") };
            if state.outage || state.cut.contains(&(client.to_owned(), kind)) {
                return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
            }
            if watching {
                drop(state);
                return self.watch(kind, namespace, param(&query, "labelSelector"), &query);
            }
            let key = format!("{}/{}", namespace.clone().unwrap_or_default(), name.clone().unwrap_or_default());
            match (method, name.is_some(), path.last() == Some(&"status")) {
                (Method::GET, true, _) => match state.objects.get(kind).and_then(|o| o.get(&key)) {
                    Some(object) => full(StatusCode::OK, object),
                    None => status(StatusCode::NOT_FOUND, "NotFound"),
                },
                (Method::GET, false, _) => {
                    let selector = param(&query, "labelSelector");
                    let items: Vec<Value> = state
                        .objects
                        .get(kind)
                        .into_iter()
                        .flat_map(|o| o.values())
                        .filter(|o| selected(o, namespace.as_deref(), selector.as_deref()))
                        .cloned()
                        .collect();
                    let list = json!({"kind": "List", "apiVersion": "v1",
                        "metadata": {"resourceVersion": state.version.to_string()}, "items": items});
                    full(StatusCode::OK, &list)
                }
                (Method::POST, false, _) if kind == "leases" => {
                    let mut lease = body;
                    lease["metadata"]["namespace"] = json!(namespace);
                    if state.objects.get(kind).is_some_and(|o| o.contains_key(&key_of(&lease))) {
                        return status(StatusCode::CONFLICT, "AlreadyExists");
                    }
                    full(StatusCode::CREATED, &state.put(kind, lease))
                }
                (Method::PUT, true, _) if kind == "leases" => {
                    let Some(current) = state.objects.get(kind).and_then(|o| o.get(&key)) else {
                        return status(StatusCode::NOT_FOUND, "NotFound");
                    };
                    let sent = &body["metadata"]["resourceVersion"];
                    if !sent.is_null() && *sent != current["metadata"]["resourceVersion"] {
                        return status(StatusCode::CONFLICT, "Conflict");
                    }
                    full(StatusCode::OK, &state.put(kind, body))
                }
                (Method::PATCH, true, true) if kind == "virtualservices" => {
                    let Some(mut object) = state.objects.get(kind).and_then(|o| o.get(&key)).cloned() else {
                        return status(StatusCode::NOT_FOUND, "NotFound");
                    };
                    let manager = param(&query, "fieldManager").unwrap_or_default();
                    state.applied.push(Applied {
                        client: client.to_owned(),
                        object: key.clone(),
                        manager: manager.clone(),
                        force: param(&query, "force").as_deref() == Some("true"),
                        body: body.clone(),
                    });
                    let owners = state.owners.entry(key.clone()).or_default();
                    owners.insert(manager, body["status"].clone());
                    object["status"] = merged(owners);
                    full(StatusCode::OK, &state.put(kind, object))
                }
                _ => status(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed"),
            }
        };
        self.changes.send_modify(|v| *v += 1);
        answer
    }

    /// A watch: every event of `kind` after the query's resourceVersion, as JSON lines, until the client goes.
    fn watch(&self, kind: &'static str, namespace: Option<String>, selector: Option<String>, query: &str) -> Answer {
        let since: u64 = param(query, "resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
        let state = Arc::clone(&self.state);
        let changes = self.changes.subscribe();
        let stream = futures::stream::unfold((since, changes), move |(mut sent, mut changes)| {
            let state = Arc::clone(&state);
            let (namespace, selector) = (namespace.clone(), selector.clone());
            async move {
                loop {
                    let lines: Vec<u8> = {
                        let state = state.lock().ok()?;
                        if state.outage {
                            return None;
                        }
                        let mut lines = Vec::new();
                        let after = sent;
                        for (version, k, type_, object) in state.events.iter().filter(|e| e.0 > after) {
                            sent = *version;
                            if *k == kind && selected(object, namespace.as_deref(), selector.as_deref()) {
                                let line = json!({"type": type_, "object": object});
                                lines.extend(serde_json::to_vec(&line).unwrap_or_default());
                                lines.push(b'\n');
                            }
                        }
                        lines
                    };
                    if !lines.is_empty() {
                        return Some((Ok::<_, Infallible>(Frame::data(Bytes::from(lines))), (sent, changes)));
                    }
                    changes.changed().await.ok()?;
                }
            }
        });
        Response::new(BodyExt::boxed_unsync(StreamBody::new(stream.boxed())))
    }
}

/// The status the managers' last applies make together: `nodes` merged by `nodeName`, `conditions` by `type`,
/// every other field from the last manager that sent it.
fn merged(owners: &BTreeMap<String, Value>) -> Value {
    let mut status = serde_json::Map::new();
    let mut lists: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
    for applied in owners.values() {
        for (field, value) in applied.as_object().into_iter().flatten() {
            let key = match field.as_str() {
                "nodes" => "nodeName",
                "conditions" => "type",
                _ => {
                    status.insert(field.clone(), value.clone());
                    continue;
                }
            };
            for entry in value.as_array().into_iter().flatten() {
                let id = entry[key].as_str().unwrap_or_default().to_owned();
                lists.entry(if key == "type" { "conditions" } else { "nodes" }).or_default().insert(id, entry.clone());
            }
        }
    }
    for (field, entries) in lists {
        status.insert(field.to_owned(), Value::Array(entries.into_values().collect()));
    }
    Value::Object(status)
}
