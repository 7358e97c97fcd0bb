//! A stateful stand-in for the API server behind `kube::Client`, for the election's and the leader's tests: Leases
//! with the API's optimistic concurrency (a replace with a stale resourceVersion is 409 Conflict, a create of an
//! existing one 409 AlreadyExists), and server-side apply of `virtualservices/status`, recorded. Several clients
//! share one [`FakeApi`], as several agents share one API server. An outage answers every request 503.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Method, Request, Response, StatusCode};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

/// One status apply the fake received.
#[derive(Debug, Clone)]
pub struct Applied {
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
    /// name -> Lease (JSON), with metadata.resourceVersion.
    leases: BTreeMap<String, Value>,
    version: u64,
    applied: Vec<Applied>,
    outage: bool,
}

/// The shared API server state; [`FakeApi::client`] makes a client of it.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn status(code: StatusCode, reason: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason,
        "message": reason, "code": code.as_u16()});
    let mut response = Response::new(Body::from(serde_json::to_vec(&body).unwrap_or_default()));
    *response.status_mut() = code;
    response
}

fn ok(code: StatusCode, body: &Value) -> Response<Body> {
    let mut response = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = code;
    response
}

impl FakeApi {
    /// A client of this API server (namespace `default`).
    pub fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let api = api.clone();
            async move { Ok::<_, std::convert::Infallible>(api.answer(request).await) }
        });
        Client::new(service, "default")
    }

    /// Every status apply received, in order.
    pub fn applied(&self) -> Vec<Applied> {
        self.state.lock().map(|s| s.applied.clone()).unwrap_or_default()
    }

    /// The Lease `name`, if it exists.
    pub fn lease(&self, name: &str) -> Option<Value> {
        self.state.lock().ok().and_then(|s| s.leases.get(name).cloned())
    }

    /// Takes the API down (every request 503) or brings it back.
    pub fn set_outage(&self, down: bool) {
        if let Ok(mut state) = self.state.lock() {
            state.outage = down;
        }
    }

    async fn answer(&self, request: Request<Body>) -> Response<Body> {
        use http_body_util::BodyExt;
        let method = request.method().clone();
        let uri = request.uri().clone();
        let Ok(collected) = request.into_body().collect().await else {
            return status(StatusCode::BAD_REQUEST, "BadRequest");
        };
        let body: Value = serde_json::from_slice(&collected.to_bytes()).unwrap_or(Value::Null);
        let Ok(mut state) = self.state.lock() else { return status(StatusCode::INTERNAL_SERVER_ERROR, "Poisoned") };
        if state.outage {
            return status(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable");
        }
        let path: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
        let query = uri.query().unwrap_or_default();
        match (method, path.as_slice()) {
            (Method::GET, ["apis", "coordination.k8s.io", "v1", "namespaces", _, "leases", name]) => {
                match state.leases.get(*name) {
                    Some(lease) => ok(StatusCode::OK, lease),
                    None => status(StatusCode::NOT_FOUND, "NotFound"),
                }
            }
            (Method::POST, ["apis", "coordination.k8s.io", "v1", "namespaces", _, "leases"]) => {
                let name = body["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                if state.leases.contains_key(&name) {
                    return status(StatusCode::CONFLICT, "AlreadyExists");
                }
                state.version += 1;
                let mut lease = body;
                lease["metadata"]["resourceVersion"] = json!(state.version.to_string());
                state.leases.insert(name, lease.clone());
                ok(StatusCode::CREATED, &lease)
            }
            (Method::PUT, ["apis", "coordination.k8s.io", "v1", "namespaces", _, "leases", name]) => {
                let Some(current) = state.leases.get(*name) else { return status(StatusCode::NOT_FOUND, "NotFound") };
                let sent = &body["metadata"]["resourceVersion"];
                if !sent.is_null() && *sent != current["metadata"]["resourceVersion"] {
                    return status(StatusCode::CONFLICT, "Conflict");
                }
                state.version += 1;
                let mut lease = body;
                lease["metadata"]["resourceVersion"] = json!(state.version.to_string());
                state.leases.insert((*name).to_owned(), lease.clone());
                ok(StatusCode::OK, &lease)
            }
            (
                Method::PATCH,
                ["apis", "ipvs.dev", "v1alpha1", "namespaces", namespace, "virtualservices", name, "status"],
            ) => {
                let param =
                    |key: &str| query.split('&').find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')));
                let applied = Applied {
                    object: format!("{namespace}/{name}"),
                    manager: param("fieldManager").unwrap_or_default().to_owned(),
                    force: param("force") == Some("true"),
                    body: body.clone(),
                };
                state.applied.push(applied);
                let mut object = body;
                object["metadata"] = json!({"name": name, "namespace": namespace});
                ok(StatusCode::OK, &object)
            }
            _ => status(StatusCode::NOT_FOUND, "NotFound"),
        }
    }
}
