//! The Kubernetes agent process end to end: the real binary, the real kernel (a fresh network namespace), and a
//! stateful stand-in for the API server that the test starts (`tests/kube-fake/apiserver.py`: list/watch of
//! VirtualServices, EndpointSlices, Nodes, VirtualServicePools and Namespaces, server-side apply of status with
//! per-manager list-map entries, a kind whose CRD is missing, an outage).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{KillOnDrop, Netns, Workdir, eventually, path_str, sorted};

const PATIENCE: Duration = Duration::from_secs(60);

/// The fake API server, stopped on drop (its standard input closes).
struct FakeApi {
    child: Child,
    port: u16,
}

impl FakeApi {
    fn start(work: &Workdir) -> FakeApi {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kube-fake/apiserver.py");
        let port_file = work.path("apiserver.port");
        let child = Command::new("python3")
            .arg(&script)
            .arg(&port_file)
            .stdin(Stdio::piped())
            .stderr(std::fs::File::create(work.path("apiserver.log")).unwrap())
            .spawn()
            .expect("python3 runs the fake API server");
        let mut port = 0;
        eventually(PATIENCE, "the fake API server listens", || {
            port = std::fs::read_to_string(&port_file).ok().and_then(|p| p.trim().parse().ok()).ok_or("no port yet")?;
            Ok(())
        });
        FakeApi { child, port }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (_, body) = response.split_once("\r\n\r\n").unwrap_or(("", "null"));
        serde_json::from_str(body).unwrap_or(Value::Null)
    }

    fn put(&self, kind: &str, object: Value) {
        self.request("PUT", &format!("/control/{kind}"), Some(&object));
    }

    fn delete(&self, kind: &str, namespace: &str, name: &str) {
        self.request("DELETE", &format!("/control/{kind}/{namespace}/{name}"), None);
    }

    /// Makes `kind` answer 404, as when its CRD is not installed (or installs it again).
    fn hide(&self, kind: &str, hidden: bool) {
        self.request("PUT", &format!("/control/hidden/{kind}"), Some(&json!({"hidden": hidden})));
    }

    /// Takes the API down (every request 503, every watch ended) or brings it back.
    fn outage(&self, down: bool) {
        self.request("PUT", "/control/outage", Some(&json!({"outage": down})));
    }

    /// The last status entry list sent for `prod/<name>` by this node's manager, if any was sent.
    fn last_status(&self, name: &str) -> Option<Value> {
        self.last_status_in("prod", name)
    }

    /// The last status entry list sent for `<namespace>/<name>` by this node's manager, if any was sent.
    fn last_status_in(&self, namespace: &str, name: &str) -> Option<Value> {
        let patches = self.request("GET", "/control/patches", None);
        let mut mine = patches
            .as_array()?
            .iter()
            .filter(|p| p["namespace"] == namespace && p["name"] == name && p["manager"] == "ipvs-reconciler/n1");
        mine.next_back().map(|p| p["body"]["status"]["nodes"].clone())
    }

    fn kubeconfig(&self, work: &Workdir) -> PathBuf {
        let path = work.path("kubeconfig");
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{}'}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
             current-context: fake\n",
            self.port
        );
        std::fs::write(&path, config).unwrap();
        path
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET on 127.0.0.1:`port`: the status line, headers and body.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return "not listening".to_owned() };
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn virtual_service(name: &str, created: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "prod", "creationTimestamp": created}, "spec": spec})
}

fn slice(ready: &[(&str, bool)]) -> Value {
    let endpoints: Vec<Value> =
        ready.iter().map(|(addr, r)| json!({"addresses": [addr], "conditions": {"ready": r}})).collect();
    json!({
        "metadata": {"name": "web-abc", "namespace": "prod", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": endpoints,
    })
}

fn node(role: &str) -> Value {
    json!({"metadata": {"name": "n1", "labels": {"role": role}}})
}

#[test]
fn the_agent_programs_what_selects_its_node_follows_endpoints_and_reports_status() {
    let ns = Netns::new("agent");
    let work = Workdir::new();
    let api = FakeApi::start(&work);
    api.put("nodes", node("lb"));
    api.put("endpointslices", slice(&[("10.0.1.1", true), ("10.0.1.2", false)]));
    api.put(
        "virtualservices",
        virtual_service(
            "web",
            "2026-01-01T00:00:00Z",
            json!({"address": "192.0.2.50", "port": 80, "scheduler": "rr", "drainTimeoutSeconds": 0,
                   "backendsFrom": [{"service": "web", "port": "http"}]}),
        ),
    );
    let selective = json!({"address": "192.0.2.51", "port": 80, "drainTimeoutSeconds": 0,
        "nodeSelector": {"matchLabels": {"role": "lb"}}, "backends": [{"address": "10.0.0.5"}]});
    api.put("virtualservices", virtual_service("static", "2026-01-01T00:00:01Z", selective));
    let everywhere = json!({"address": "192.0.2.51", "port": 80, "drainTimeoutSeconds": 0,
        "backends": [{"address": "10.0.0.6"}]});
    api.put("virtualservices", virtual_service("young", "2026-01-02T00:00:00Z", everywhere));
    let elsewhere = json!({"address": "192.0.2.52", "port": 80, "nodeSelector": {"matchLabels": {"role": "db"}}});
    api.put("virtualservices", virtual_service("elsewhere", "2026-01-01T00:00:00Z", elsewhere));

    // The director settings as the DaemonSet passes them (its ConfigMap, mounted).
    let director = work.path("director.yaml");
    std::fs::write(&director, "timeouts: {tcp: 700, tcpFin: 60, udp: 40}\n").unwrap();

    let log = std::fs::File::create(work.path("agent.log")).unwrap();
    let child = ns
        .cli_command(&["agent", "--node-name", "n1", "--state", path_str(&work.state()), "--quiet-ms", "100"])
        .args(["--resync-seconds", "5", "--listen", "127.0.0.1:19469", "--admission", "open"])
        .args(["--director-config", path_str(&director)])
        .env("KUBECONFIG", api.kubeconfig(&work))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    let log_text = || std::fs::read_to_string(work.path("agent.log")).unwrap_or_default();
    let table_is = |want: &[String]| {
        let rules = ns.saved_rules();
        if rules == want { Ok(()) } else { Err(format!("{}\n--- agent log\n{}", rules.join("\n"), log_text())) }
    };

    // Ready endpoints are backends; the older selective object wins 192.0.2.51 on this node; "elsewhere" is not
    // for this node.
    let first = sorted(&[
        "-A -t 192.0.2.50:80 -s rr",
        "-a -t 192.0.2.50:80 -r 10.0.1.1:8080 -m -w 1",
        "-A -t 192.0.2.51:80 -s wlc",
        "-a -t 192.0.2.51:80 -r 10.0.0.5:80 -m -w 1",
    ]);
    eventually(PATIENCE, "the agent programs the selected services", || table_is(&first));
    eventually(PATIENCE, "the agent is ready", || {
        let ready = http_get(19469, "/readyz");
        if ready.starts_with("HTTP/1.1 200") { Ok(()) } else { Err(ready) }
    });
    // The VIPs of the services programmed here are bound on ipvs0; the one not for this node is not.
    let vips = ns.addresses_of("ipvs0");
    assert!(vips.contains("inet 192.0.2.50/32") && vips.contains("inet 192.0.2.51/32"), "{vips}\n{}", log_text());
    assert!(!vips.contains("192.0.2.52"), "a service not for this node binds nothing: {vips}");
    eventually(PATIENCE, "the ConfigMap's timeouts are set", || {
        let timeouts = ns.ipvsadm(&["-Ln", "--timeout"]);
        if timeouts.contains("700 60 40") { Ok(()) } else { Err(format!("{timeouts}\n{}", log_text())) }
    });
    let metrics = http_get(19469, "/metrics");
    assert!(metrics.contains("ipvs_reconciler_passes_total{trigger=\"resync\",result=\"ok\"}"), "{metrics}");
    assert!(metrics.contains("ipvs_reconciler_owned_services 2"), "{metrics}");

    let status_is = |name: &str, check: &dyn Fn(&Value) -> bool| match api.last_status(name) {
        Some(nodes) if check(&nodes) => Ok(()),
        other => Err(format!("{name}: {other:?}\n--- agent log\n{}", log_text())),
    };
    eventually(PATIENCE, "status: web programmed with one backend", || {
        status_is("web", &|n| n[0]["programmed"] == true && n[0]["reason"] == "Programmed" && n[0]["backends"] == 1)
    });
    eventually(PATIENCE, "status: young lost to the older object", || {
        status_is("young", &|n| n[0]["programmed"] == false && n[0]["reason"] == "Conflict")
    });
    assert_eq!(api.last_status("elsewhere"), None, "a node that is not selected reports nothing");
    let events = api.request("GET", "/control/events", None);
    let conflicts: Vec<&Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == "young" && e["reason"] == "Conflict")
        .collect();
    assert_eq!(conflicts.len(), 1, "one Event for the conflict: {events}");
    assert_eq!(api.last_status("web").unwrap()[0]["nodeName"], "n1");
    assert_eq!(api.last_status("web").unwrap()[0]["observedGeneration"], 1);

    // An endpoint becomes ready: it becomes a backend.
    api.put("endpointslices", slice(&[("10.0.1.1", true), ("10.0.1.2", true)]));
    let mut second = first.clone();
    second.push("-a -t 192.0.2.50:80 -r 10.0.1.2:8080 -m -w 1".to_owned());
    second.sort();
    eventually(PATIENCE, "the agent follows the EndpointSlice", || table_is(&second));

    // The node's label changes: "static" no longer selects it, so "young" (every node) takes 192.0.2.51 here, and
    // this node withdraws its entry from "static".
    api.put("nodes", node("web"));
    let third = sorted(&[
        "-A -t 192.0.2.50:80 -s rr",
        "-a -t 192.0.2.50:80 -r 10.0.1.1:8080 -m -w 1",
        "-a -t 192.0.2.50:80 -r 10.0.1.2:8080 -m -w 1",
        "-A -t 192.0.2.51:80 -s wlc",
        "-a -t 192.0.2.51:80 -r 10.0.0.6:80 -m -w 1",
    ]);
    eventually(PATIENCE, "the agent follows its node's labels", || table_is(&third));
    eventually(PATIENCE, "status: static withdrawn, young programmed", || {
        status_is("static", &|n| n.as_array().is_some_and(Vec::is_empty))?;
        status_is("young", &|n| n[0]["programmed"] == true)
    });

    // An edit the agent's validation refuses (it can get past the API server, e.g. with an older CRD installed):
    // web's service stays exactly as it is (frozen), its status says Invalid naming the field, one Event is
    // emitted, and a valid neighbour's edit is still programmed.
    let broken = json!({"address": "192.0.2.50", "port": 80, "scheduler": "nope", "drainTimeoutSeconds": 0,
        "backendsFrom": [{"service": "web", "port": "http"}]});
    api.put("virtualservices", virtual_service("web", "2026-01-01T00:00:00Z", broken));
    eventually(PATIENCE, "status: web invalid, naming the field", || {
        status_is("web", &|n| {
            n[0]["programmed"] == false
                && n[0]["reason"] == "Invalid"
                && n[0]["observedGeneration"] == 2
                && n[0]["message"].as_str().is_some_and(|m| m.contains("spec.scheduler: unknown scheduler `nope`"))
        })
    });
    let heavier = json!({"address": "192.0.2.51", "port": 80, "drainTimeoutSeconds": 0,
        "backends": [{"address": "10.0.0.6", "weight": 3}]});
    api.put("virtualservices", virtual_service("young", "2026-01-02T00:00:00Z", heavier));
    let mut frozen = third.clone();
    frozen.retain(|l| l != "-a -t 192.0.2.51:80 -r 10.0.0.6:80 -m -w 1");
    frozen.push("-a -t 192.0.2.51:80 -r 10.0.0.6:80 -m -w 3".to_owned());
    frozen.sort();
    eventually(PATIENCE, "the neighbour's edit is programmed beside the frozen service", || table_is(&frozen));
    // A resync (every 5 s here) leaves the frozen service as it is too.
    std::thread::sleep(Duration::from_secs(6));
    table_is(&frozen).unwrap();
    let events = api.request("GET", "/control/events", None);
    let invalid = events.as_array().into_iter().flatten().filter(|e| e["regarding"]["name"] == "web").count();
    assert_eq!(invalid, 1, "one Event for the invalid object: {events}");

    // A deleted VirtualService goes from the kernel, also while its service was frozen.
    api.delete("virtualservices", "prod", "web");
    let fourth = sorted(&["-A -t 192.0.2.51:80 -s wlc", "-a -t 192.0.2.51:80 -r 10.0.0.6:80 -m -w 3"]);
    eventually(PATIENCE, "the agent removes a deleted VirtualService", || table_is(&fourth));
    eventually(PATIENCE, "its VIP leaves ipvs0, the other stays", || {
        let vips = ns.addresses_of("ipvs0");
        if !vips.contains("192.0.2.50/") && vips.contains("inet 192.0.2.51/32") { Ok(()) } else { Err(vips) }
    });

    // SIGTERM: exit 0, table left as it is.
    let child = guard.0.as_mut().unwrap();
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let mut code = None;
    eventually(PATIENCE, "the agent exits on SIGTERM", || match child.try_wait().unwrap() {
        Some(status) => {
            code = status.code();
            Ok(())
        }
        None => Err(log_text()),
    });
    assert_eq!(code, Some(0), "{}", log_text());
    assert_eq!(ns.saved_rules(), fourth, "SIGTERM changed the table");
}

fn pool(name: &str, addresses: &[&str], namespaces: &[&str]) -> Value {
    json!({"metadata": {"name": name}, "spec": {"addresses": addresses, "namespaces": namespaces}})
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}})
}

fn in_namespace(namespace: &str, name: &str, spec: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": namespace, "creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": spec})
}

/// `--admission pools` (the default): only what a VirtualServicePool grants an object's namespace is programmed
/// and bound, in the real kernel; the rest reads NotAdmitted. Pools and namespace labels are followed, and an API
/// outage removes nothing.
#[test]
fn the_agent_programs_only_what_a_pool_admits_and_follows_the_pools() {
    let ns = Netns::new("pools");
    let work = Workdir::new();
    let api = FakeApi::start(&work);
    api.hide("virtualservicepools", true);
    api.put("nodes", node("lb"));
    api.put("namespaces", namespace("prod", json!({})));
    api.put("namespaces", namespace("team-b", json!({})));
    let web = json!({"address": "192.0.2.60", "port": 80, "drainTimeoutSeconds": 0,
        "backends": [{"address": "10.0.0.5"}]});
    api.put("virtualservices", in_namespace("prod", "web", web));
    let other = json!({"address": "192.0.2.61", "port": 80, "drainTimeoutSeconds": 0,
        "backends": [{"address": "10.0.0.6"}]});
    api.put("virtualservices", in_namespace("team-b", "other", other));

    let log = std::fs::File::create(work.path("agent.log")).unwrap();
    // No --admission: pools is the default.
    let child = ns
        .cli_command(&["agent", "--node-name", "n1", "--state", path_str(&work.state()), "--quiet-ms", "100"])
        .args(["--resync-seconds", "5", "--listen", "127.0.0.1:19470"])
        .env("KUBECONFIG", api.kubeconfig(&work))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(Some(child));
    let log_text = || std::fs::read_to_string(work.path("agent.log")).unwrap_or_default();
    let table_is = |want: &[String]| {
        let rules = ns.saved_rules();
        if rules == want { Ok(()) } else { Err(format!("{}\n--- agent log\n{}", rules.join("\n"), log_text())) }
    };
    let status_is =
        |namespace: &str, name: &str, check: &dyn Fn(&Value) -> bool| match api.last_status_in(namespace, name) {
            Some(nodes) if check(&nodes) => Ok(()),
            other => Err(format!("{namespace}/{name}: {other:?}\n--- agent log\n{}", log_text())),
        };
    let not_admitted = |nodes: &Value, why: &str| {
        nodes[0]["programmed"] == false
            && nodes[0]["reason"] == "NotAdmitted"
            && nodes[0]["message"].as_str().is_some_and(|m| m.contains(why))
    };

    // The pool CRD is not installed: the agent stays up (ready), programs nothing and says why.
    eventually(PATIENCE, "status: web not admitted, the CRD missing", || {
        status_is("prod", "web", &|n| not_admitted(n, "VirtualServicePool CRD is not installed"))
    });
    eventually(PATIENCE, "the agent is ready", || {
        let ready = http_get(19470, "/readyz");
        if ready.starts_with("HTTP/1.1 200") { Ok(()) } else { Err(ready) }
    });
    table_is(&[]).unwrap();
    assert!(!ns.addresses_of("ipvs0").contains("192.0.2.6"), "nothing bound: {}", ns.addresses_of("ipvs0"));
    let metrics = http_get(19470, "/metrics");
    assert!(metrics.contains("ipvs_reconciler_admission_no_pool 1"), "{metrics}");
    assert!(log_text().contains("VirtualServicePool CRD is not installed"), "{}", log_text());

    // The CRD and a pool for prod appear: web is programmed and bound; team-b's object is still refused.
    api.hide("virtualservicepools", false);
    api.put("virtualservicepools", pool("edge", &["192.0.2.60/32"], &["prod"]));
    let web_rules = sorted(&["-A -t 192.0.2.60:80 -s wlc", "-a -t 192.0.2.60:80 -r 10.0.0.5:80 -m -w 1"]);
    eventually(PATIENCE, "a pool admits web", || table_is(&web_rules));
    eventually(PATIENCE, "web's VIP is bound", || {
        let vips = ns.addresses_of("ipvs0");
        if vips.contains("inet 192.0.2.60/32") && !vips.contains("192.0.2.61") { Ok(()) } else { Err(vips) }
    });
    eventually(PATIENCE, "status: other not admitted, naming address and namespace", || {
        status_is("team-b", "other", &|n| not_admitted(n, "no pool grants 192.0.2.61 to namespace team-b"))
    });
    eventually(PATIENCE, "status: web programmed", || status_is("prod", "web", &|n| n[0]["programmed"] == true));
    let events = api.request("GET", "/control/events", None);
    let refused: Vec<&Value> = events
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["regarding"]["name"] == "other" && e["reason"] == "NotAdmitted")
        .collect();
    assert_eq!(refused.len(), 1, "one Event for the refusal: {events}");

    // A pool that selects namespaces by label, and team-b gets the label: other is admitted.
    let by_label = json!({"metadata": {"name": "tier"}, "spec": {"addresses": ["192.0.2.61/32"],
        "namespaceSelector": {"matchLabels": {"tier": "edge"}}}});
    api.put("virtualservicepools", by_label);
    std::thread::sleep(Duration::from_secs(2));
    table_is(&web_rules).unwrap();
    api.put("namespaces", namespace("team-b", json!({"tier": "edge"})));
    let both = sorted(&[
        "-A -t 192.0.2.60:80 -s wlc",
        "-a -t 192.0.2.60:80 -r 10.0.0.5:80 -m -w 1",
        "-A -t 192.0.2.61:80 -s wlc",
        "-a -t 192.0.2.61:80 -r 10.0.0.6:80 -m -w 1",
    ]);
    eventually(PATIENCE, "the namespace's label admits other", || table_is(&both));

    // A pool edit that revokes web's address removes its service, then its VIP.
    api.put("virtualservicepools", pool("edge", &["198.51.100.0/24"], &["prod"]));
    let other_rules = sorted(&["-A -t 192.0.2.61:80 -s wlc", "-a -t 192.0.2.61:80 -r 10.0.0.6:80 -m -w 1"]);
    eventually(PATIENCE, "the revoked service leaves the kernel", || table_is(&other_rules));
    eventually(PATIENCE, "and its VIP leaves ipvs0", || {
        let vips = ns.addresses_of("ipvs0");
        if !vips.contains("192.0.2.60/") && vips.contains("inet 192.0.2.61/32") { Ok(()) } else { Err(vips) }
    });

    // The API goes down and the "tier" pool is deleted meanwhile: nothing is removed (a resync passes too) ...
    api.outage(true);
    api.delete("virtualservicepools", "-", "tier");
    std::thread::sleep(Duration::from_secs(8));
    table_is(&other_rules).unwrap();
    assert!(ns.addresses_of("ipvs0").contains("inet 192.0.2.61/32"));
    // ... until the API answers again.
    api.outage(false);
    eventually(PATIENCE, "the pool's deletion is seen once the API is back", || table_is(&[]));
}

// ---- Two agents, one verdict per object (issue 19) ----
//
// Two agent processes (node-a, node-b), each in its own network namespace, against one fake API that also holds
// the two Nodes and the two agent pods. The agents elect a leader with the Lease; the leader writes each
// VirtualService's conditions and summary from both nodes' entries. Everything below is asserted on what the fake
// API serves (the object, the Lease, the status applies it received) and on both kernels.

/// The agents' namespace (POD_NAMESPACE): their pods and the Lease live there.
const AGENT_NAMESPACE: &str = "ipvs-system";
/// The leader's field manager and the Lease's name.
const VERDICT_MANAGER: &str = "ipvs-reconciler-status";
/// The election's timings, short so that a take-over fits in a quick test (the defaults are 15 s, 10 s, 2 s). The
/// progress deadline is long on purpose: no step here waits for NotReporting, and a slow VM must not turn "node-b
/// has not reported yet" into it.
const LEASE_SECONDS: u64 = 4;
const ELECTION_FLAGS: [&str; 8] =
    ["--lease-duration", "4s", "--renew-deadline", "3s", "--retry-period", "1s", "--progress-deadline", "45s"];
/// A test-side field manager that tampers with the conditions (as `kubectl edit --subresource status` could).
const INTRUDER: &str = "someone-else";

/// One node's agent process: its own network namespace, state file, log and HTTP port (the listener is in the
/// VM's namespace, so the two need distinct ports), as its DaemonSet pod would run it.
struct NodeAgent {
    node: &'static str,
    pod: &'static str,
    admission: &'static str,
    port: u16,
    ns: Netns,
    state: PathBuf,
    log: PathBuf,
    process: KillOnDrop,
}

impl NodeAgent {
    /// The agent of `node` (pod `pod`), not started yet.
    fn new(work: &Workdir, node: &'static str, pod: &'static str, admission: &'static str, port: u16) -> NodeAgent {
        NodeAgent {
            node,
            pod,
            admission,
            port,
            ns: Netns::new(node),
            state: work.path(&format!("state-{node}.json")),
            log: work.path(&format!("agent-{node}.log")),
            process: KillOnDrop(None),
        }
    }

    /// Starts (or restarts, as the kubelet would) the process; its output is appended to its log.
    fn start(&mut self, kubeconfig: &Path) {
        let mut log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        if log.metadata().unwrap().len() > 0 {
            writeln!(log, "----- restarted by the test, as the kubelet would -----").unwrap();
        }
        let child = self
            .ns
            .cli_command(&["agent", "--node-name", self.node, "--state", path_str(&self.state), "--quiet-ms", "100"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port), "--admission", self.admission])
            .args(ELECTION_FLAGS)
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAME", self.pod)
            .env("POD_NAMESPACE", AGENT_NAMESPACE)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.process = KillOnDrop(Some(child));
    }

    /// SIGKILL: no release of the Lease, no goodbye (a node that dies, an OOM kill).
    fn kill(&mut self) {
        let mut child = self.process.0.take().expect("the agent runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A value of its /metrics: the sum over the labels of `name` (None when it does not answer).
    fn metric(&self, name: &str) -> Option<f64> {
        let metrics = http_get(self.port, "/metrics");
        if !metrics.starts_with("HTTP/1.1 200") {
            return None;
        }
        let values = metrics.lines().filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name || key.strip_prefix(name).is_some_and(|rest| rest.starts_with('{'))).then_some(value)
        });
        Some(values.filter_map(|v| v.parse::<f64>().ok()).sum())
    }

    /// Whether it says it leads (its `ipvs_reconciler_leader` gauge).
    fn leads(&self) -> bool {
        self.metric("ipvs_reconciler_leader") == Some(1.0)
    }

    /// The condition writes it made while leading (ok and failed).
    fn condition_writes(&self) -> usize {
        self.metric("ipvs_reconciler_condition_writes_total").unwrap_or(0.0) as usize
    }

    /// How many terms it began (each logs this once).
    fn terms(&self) -> usize {
        self.log_text().matches("leading: this agent writes the conditions").count()
    }

    /// Its kernel's table, sorted `ipvsadm -Sn` lines.
    fn table(&self) -> Vec<String> {
        self.ns.saved_rules()
    }
}

/// Prints every agent's log when the test fails (any panic: an assertion or an `eventually`), so that a failure
/// explains itself.
struct LogsOnFailure<'a>(&'a [NodeAgent; 2], &'a Workdir);

impl Drop for LogsOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for agent in self.0 {
                eprintln!("--- log of the agent of {}\n{}", agent.node, agent.log_text());
            }
            let kubectl = std::fs::read_to_string(self.1.path("kubectl-wait.log")).unwrap_or_default();
            eprintln!("--- kubectl wait's output\n{kubectl}");
        }
    }
}

/// One condition as the API serves it.
#[derive(Debug)]
struct Cond {
    status: String,
    reason: String,
    message: String,
    observed_generation: Option<i64>,
}

/// The verdict on an object as the API serves it: its generation, and the status fields the leader writes.
#[derive(Debug)]
struct Shown {
    generation: Option<i64>,
    observed_generation: Option<i64>,
    summary: Option<String>,
    conditions: BTreeMap<String, Cond>,
}

impl Shown {
    fn of(object: &Value) -> Shown {
        let status = &object["status"];
        let conditions = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let text = |field: &str| c[field].as_str().unwrap_or_default().to_owned();
                let cond = Cond {
                    status: text("status"),
                    reason: text("reason"),
                    message: text("message"),
                    observed_generation: c["observedGeneration"].as_i64(),
                };
                (text("type"), cond)
            })
            .collect();
        Shown {
            generation: object["metadata"]["generation"].as_i64(),
            observed_generation: status["observedGeneration"].as_i64(),
            summary: status["summary"].as_str().map(str::to_owned),
            conditions,
        }
    }

    /// `Ok` when it says `want` about the object's current generation; else what it says.
    fn check(&self, want: &Want) -> Result<(), String> {
        let mut wrong = Vec::new();
        if self.generation.is_none() || self.observed_generation != self.generation {
            wrong.push("status.observedGeneration is not metadata.generation".to_owned());
        }
        if self.summary.as_deref() != Some(want.summary) {
            wrong.push(format!("summary is not `{}`", want.summary));
        }
        if self.conditions.len() != 3 {
            wrong.push("not exactly Ready, Reconciling and Stalled".to_owned());
        }
        for (type_, (status, reason)) in
            [("Ready", want.ready), ("Reconciling", want.reconciling), ("Stalled", want.stalled)]
        {
            match self.conditions.get(type_) {
                Some(c) if c.status == status && c.reason == reason && c.observed_generation == self.generation => {}
                _ => wrong.push(format!("{type_} is not {status} {reason} at the current generation")),
            }
        }
        for (type_, text) in &want.says {
            if !self.conditions.get(*type_).is_some_and(|c| c.message.contains(text)) {
                wrong.push(format!("{type_}'s message does not contain `{text}`"));
            }
        }
        if wrong.is_empty() { Ok(()) } else { Err(format!("{}\n{self:#?}", wrong.join("; "))) }
    }
}

/// The verdict a step expects on an object, for its current generation: each condition's status and reason, the
/// summary, and texts some messages contain.
struct Want {
    ready: (&'static str, &'static str),
    reconciling: (&'static str, &'static str),
    stalled: (&'static str, &'static str),
    summary: &'static str,
    says: Vec<(&'static str, &'static str)>,
}

impl Want {
    /// Programmed on every node that should.
    fn ready(summary: &'static str) -> Want {
        Want {
            ready: ("True", "Programmed"),
            reconciling: ("False", "Reported"),
            stalled: ("False", "NoRefusals"),
            summary,
            says: vec![],
        }
    }

    /// `node` has yet to report the current generation (nothing refuses it).
    fn waiting_for(node: &'static str, detail: &'static str, summary: &'static str) -> Want {
        Want {
            ready: ("False", "Progressing"),
            reconciling: ("True", "Progressing"),
            stalled: ("False", "NoRefusals"),
            summary,
            says: vec![("Reconciling", node), ("Reconciling", detail)],
        }
    }

    /// `node` refuses it (or cannot program it) for `reason`, the other node programmed it.
    fn stalled(reason: &'static str, node: &'static str) -> Want {
        Want {
            ready: ("False", reason),
            reconciling: ("False", "Reported"),
            stalled: ("True", reason),
            summary: "1/2 programmed",
            says: vec![("Stalled", node), ("Ready", node)],
        }
    }
}

impl FakeApi {
    /// The object as the API serves it (GET of the object, not a /control view).
    fn object(&self, name: &str) -> Value {
        self.request("GET", &format!("/apis/ipvs.dev/v1alpha1/namespaces/prod/virtualservices/{name}"), None)
    }

    fn shown(&self, name: &str) -> Shown {
        Shown::of(&self.object(name))
    }

    /// Waits until the object `name` shows `want` (within `PATIENCE`).
    #[track_caller]
    fn wait_verdict(&self, name: &str, what: &str, want: &Want) {
        eventually(PATIENCE, what, || self.shown(name).check(want));
    }

    /// The status Lease's holder and transitions, once it exists.
    fn lease(&self) -> Option<(String, i64)> {
        let leases = self.request("GET", "/control/leases", None);
        let lease = leases
            .as_array()?
            .iter()
            .find(|l| l["metadata"]["name"] == VERDICT_MANAGER && l["metadata"]["namespace"] == AGENT_NAMESPACE)?;
        let spec = &lease["spec"];
        Some((spec["holderIdentity"].as_str().unwrap_or_default().to_owned(), spec["leaseTransitions"].as_i64()?))
    }

    /// Every status apply the fake received, in order.
    fn patches(&self) -> Vec<Value> {
        self.request("GET", "/control/patches", None).as_array().cloned().unwrap_or_default()
    }

    /// How many status applies the leaders' field manager sent.
    fn verdict_writes(&self) -> usize {
        self.patches().iter().filter(|p| p["manager"] == VERDICT_MANAGER).count()
    }

    /// A server-side apply of `prod/<name>`'s status by `manager`, forced, as a client other than the agents sends
    /// it; the HTTP status code.
    fn apply_status(&self, name: &str, manager: &str, status: Value) -> u16 {
        let body = json!({"apiVersion": "ipvs.dev/v1alpha1", "kind": "VirtualService", "status": status}).to_string();
        let path = format!(
            "/apis/ipvs.dev/v1alpha1/namespaces/prod/virtualservices/{name}/status?fieldManager={manager}&force=true"
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PATCH {path} HTTP/1.0\r\nHost: x\r\nContent-Type: application/apply-patch+yaml\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }
}

/// `kubectl` on the guest's PATH (the VM sees the host's /usr/bin). Without it the kubectl steps cannot run: that
/// fails the test unless IPVS_TEST_NO_KUBECTL=1 says to check through the API only.
fn find_kubectl() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).map(|dir| dir.join("kubectl")).find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("IPVS_TEST_NO_KUBECTL").as_deref() == Ok("1"),
            "kubectl is not on PATH ({}): this test runs `kubectl wait` and `kubectl get` against the fake API. \
             Install kubectl, or set IPVS_TEST_NO_KUBECTL=1 (with tests/vm/run: IPVS_VM_ENV=\"IPVS_RECONCILER_BIN \
             IPVS_TEST_NO_KUBECTL\") to skip the kubectl steps and check the conditions through the API only",
            path.to_string_lossy()
        );
        eprintln!(
            "\n!!!!!!!! IPVS_TEST_NO_KUBECTL=1: kubectl is not installed; `kubectl wait` and `kubectl get` are NOT \
             tested, the conditions are checked through the API only !!!!!!!!\n"
        );
    }
    found
}

/// `kubectl ARGS` against the fake API (its discovery cache in the scratch directory: $HOME may be read-only in
/// the VM).
fn kubectl(kubectl: &Path, kubeconfig: &Path, work: &Workdir, args: &[&str]) -> Command {
    let mut command = Command::new(kubectl);
    command.args(["--kubeconfig", path_str(kubeconfig), "--cache-dir", path_str(&work.path("kube-cache"))]).args(args);
    command
}

/// `kubectl ARGS`' standard output; panics unless it succeeds.
fn kubectl_output(program: &Path, kubeconfig: &Path, work: &Workdir, args: &[&str]) -> String {
    let out = kubectl(program, kubeconfig, work, args).output().expect("run kubectl");
    assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn agent_pod(name: &str, node: &str, ready: bool) -> Value {
    json!({
        "metadata": {"name": name, "namespace": AGENT_NAMESPACE,
                     "labels": {"app.kubernetes.io/name": "ipvs-reconciler"}},
        "spec": {"nodeName": node, "containers": [{"name": "agent", "image": "ipvs-reconciler"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                   "containerStatuses": [{"name": "agent", "ready": ready, "restartCount": 0}]},
    })
}

fn labelled_node(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}})
}

/// Now, as a creationTimestamp (kubectl's AGE column counts from it).
fn timestamp_now() -> String {
    k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[test]
fn two_agents_elect_one_writer_of_each_objects_verdict_over_both_nodes() {
    let began = std::time::Instant::now();
    let step = |what: &str| eprintln!("[{:5.1} s] {what}", began.elapsed().as_secs_f64());
    let work = Workdir::new();
    let api = FakeApi::start(&work);
    let kubeconfig = api.kubeconfig(&work);
    step("the fake API is up");
    let kubectl_bin = find_kubectl();
    let created = timestamp_now();

    // Two nodes with an agent pod each (Ready, as the kubelet would say); node-b admits only what a pool grants,
    // and there is no pool yet.
    api.put("nodes", labelled_node("node-a", json!({"role": "lb", "zone": "a"})));
    api.put("nodes", labelled_node("node-b", json!({"role": "lb", "zone": "b"})));
    api.put("pods", agent_pod("agent-a", "node-a", true));
    api.put("pods", agent_pod("agent-b", "node-b", true));
    api.put("namespaces", namespace("prod", json!({})));
    // web selects both nodes; intranet only node-a (whatever happens to node-b, it stays Ready).
    let web = json!({"address": "192.0.2.70", "port": 80, "protocol": "TCP", "scheduler": "rr",
        "drainTimeoutSeconds": 0, "nodeSelector": {"matchLabels": {"role": "lb"}}, "backends": [{"address": "10.0.0.5"}]});
    api.put("virtualservices", virtual_service("web", &created, web.clone()));
    let intranet = json!({"address": "192.0.2.71", "port": 443, "protocol": "TCP", "scheduler": "wlc",
        "drainTimeoutSeconds": 0, "nodeSelector": {"matchLabels": {"zone": "a"}}, "backends": [{"address": "10.0.0.7"}]});
    api.put("virtualservices", virtual_service("intranet", &created, intranet));

    let mut agents = [
        NodeAgent::new(&work, "node-a", "agent-a", "open", 19471),
        NodeAgent::new(&work, "node-b", "agent-b", "pools", 19472),
    ];
    step("both network namespaces are made");
    let web_rules = sorted(&["-A -t 192.0.2.70:80 -s rr", "-a -t 192.0.2.70:80 -r 10.0.0.5:80 -m -w 1"]);
    let intranet_rules = ["-A -t 192.0.2.71:443 -s wlc", "-a -t 192.0.2.71:443 -r 10.0.0.7:443 -m -w 1"];
    let mut a_rules = web_rules.clone();
    a_rules.extend(intranet_rules.map(str::to_owned));
    a_rules.sort();
    let table_is = |agent: &NodeAgent, want: &[String]| {
        let rules = agent.table();
        if rules == want { Ok(()) } else { Err(format!("{}: {}", agent.node, rules.join("\n"))) }
    };

    // 1. Only node-a's agent runs; node-b's pod is Ready but its process has not started: web is programmed on
    //    one node of two, so not Ready, Reconciling (node-b has not reported); intranet, node-a's only, is Ready.
    step("1. node-a's agent alone");
    agents[0].start(&kubeconfig);
    {
        let _logs = LogsOnFailure(&agents, &work);
        api.wait_verdict(
            "web",
            "web waits for node-b",
            &Want::waiting_for("node-b", "has not reported it", "1/2 programmed"),
        );
        api.wait_verdict("intranet", "intranet is Ready on its only node", &Want::ready("1/1 programmed"));
        eventually(PATIENCE, "node-a's kernel has both services", || table_is(&agents[0], &a_rules));
        assert_eq!(api.lease(), Some(("agent-a".to_owned(), 0)), "the first agent created the Lease");
        assert!(agents[0].leads());
    }

    // 2. node-b's agent starts and refuses web (no VirtualServicePool admits it there): Stalled, naming node-b.
    step("2. node-b's agent starts, refuses web");
    agents[1].start(&kubeconfig);
    let mut kubectl_wait = None;
    {
        let _logs = LogsOnFailure(&agents, &work);
        let mut not_admitted = Want::stalled("NotAdmitted", "node-b");
        not_admitted.says.push(("Stalled", "no pool grants 192.0.2.70"));
        api.wait_verdict("web", "web is stalled: node-b does not admit it", &not_admitted);
        assert_eq!(agents[1].table(), Vec::<String>::new(), "node-b programs nothing it does not admit");
        eventually(PATIENCE, "node-b's agent follows (does not lead)", || {
            if agents[1].metric("ipvs_reconciler_leader") == Some(0.0) { Ok(()) } else { Err("no answer".into()) }
        });
        if let Some(program) = &kubectl_bin {
            step("web stalled");
            let wide = kubectl_output(program, &kubeconfig, &work, &["get", "ipvs", "-n", "prod", "-o", "wide"]);
            eprintln!("\n$ kubectl get ipvs -n prod -o wide   # node-b refuses web\n{wide}");
            // kubectl wait, started while web is Stalled: it must still be waiting when the fix comes.
            let log = std::fs::File::create(work.path("kubectl-wait.log")).unwrap();
            let args = ["wait", "--for=condition=Ready", "ipvs/web", "-n", "prod", "--timeout=60s"];
            let child = kubectl(program, &kubeconfig, &work, &args)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap();
            kubectl_wait = Some(KillOnDrop(Some(child)));
            // It has read web (not Ready) and watches it: its watch request is in the fake's log.
            eventually(PATIENCE, "kubectl wait watches web", || {
                let requests = std::fs::read_to_string(work.path("apiserver.log")).unwrap_or_default();
                let watching = requests.lines().any(|l| {
                    l.contains("/namespaces/prod/virtualservices?")
                        && l.contains("fieldSelector=metadata.name%3Dweb")
                        && l.contains("watch=true")
                });
                if watching { Ok(()) } else { Err("no watch of web yet".to_owned()) }
            });
            let still = kubectl_wait.as_mut().unwrap().0.as_mut().unwrap().try_wait().unwrap();
            assert_eq!(still, None, "kubectl wait returned while web is not Ready");
        }
    }

    // 3. A pool grants web's address to prod: node-b programs it too, and web is Ready on both nodes.
    step("3. a pool admits web on node-b");
    api.put("virtualservicepools", pool("edge", &["192.0.2.70/32"], &["prod"]));
    {
        let _logs = LogsOnFailure(&agents, &work);
        api.wait_verdict("web", "web is Ready on both nodes", &Want::ready("2/2 programmed"));
        eventually(PATIENCE, "node-b's kernel has web", || table_is(&agents[1], &web_rules));
        table_is(&agents[0], &a_rules).unwrap();
        if let Some(program) = &kubectl_bin {
            let child = kubectl_wait.as_mut().unwrap().0.as_mut().unwrap();
            let mut code = None;
            eventually(PATIENCE, "kubectl wait --for=condition=Ready returns", || {
                code = child.try_wait().unwrap().map(|status| status.code());
                code.map(|_| ()).ok_or_else(|| "still waiting".to_owned())
            });
            let said = std::fs::read_to_string(work.path("kubectl-wait.log")).unwrap_or_default();
            assert_eq!(code, Some(Some(0)), "kubectl wait failed: {said}");
            assert!(said.contains("condition met"), "{said}");
            let get = kubectl_output(program, &kubeconfig, &work, &["get", "ipvs", "-n", "prod"]);
            let wide = kubectl_output(program, &kubeconfig, &work, &["get", "ipvs", "-n", "prod", "-o", "wide"]);
            eprintln!("\n$ kubectl get ipvs -n prod\n{get}\n$ kubectl get ipvs -n prod -o wide\n{wide}");
            let web_row = get.lines().find(|l| l.starts_with("web ")).unwrap_or_default().to_owned();
            assert!(web_row.contains("True") && web_row.contains("2/2 programmed"), "{get}");
        }
        // Every verdict so far was written by node-a's agent, the only one that leads.
        eventually(PATIENCE, "the leader's writes are all the verdict writes", || {
            let (a, b, all) = (agents[0].condition_writes(), agents[1].condition_writes(), api.verdict_writes());
            if a == all && b == 0 && all > 0 { Ok(()) } else { Err(format!("a {a}, b {b}, applies {all}")) }
        });
    }

    // 4. node-b's agent pod is not Ready (as the kubelet reports a failing readiness probe): its objects are
    //    Stalled, naming it; node-a's own object is not affected. Ready again: web is Ready again.
    step("4. node-b's agent pod not Ready");
    api.put("pods", agent_pod("agent-b", "node-b", false));
    {
        let _logs = LogsOnFailure(&agents, &work);
        let mut not_ready = Want::stalled("AgentNotReady", "node-b");
        not_ready.says.push(("Stalled", "its agent pod is not Ready"));
        api.wait_verdict("web", "web is stalled: node-b's agent is not Ready", &not_ready);
        api.shown("intranet").check(&Want::ready("1/1 programmed")).unwrap();
        api.put("pods", agent_pod("agent-b", "node-b", true));
        api.wait_verdict("web", "web is Ready again with node-b's agent", &Want::ready("2/2 programmed"));
    }

    step("5. an intruder's forced apply of Ready");
    // 5. Someone else's forced apply says web is not Ready: the leader takes the condition back. Its applies are
    //    forced: without force the fake answers 409 (the intruder owns Ready now) and web would stay wrong.
    {
        let _logs = LogsOnFailure(&agents, &work);
        // At once, while the leader's last write may not have been seen by its watch yet: a newer version without
        // its verdict is someone else's change, not its own write in flight (Court::judge keeps the version).
        let generation = api.shown("web").generation;
        let tampered = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Manual",
            "message": "set by hand", "observedGeneration": generation, "lastTransitionTime": created}]});
        assert_eq!(api.apply_status("web", INTRUDER, tampered), 200);
        assert_eq!(api.shown("web").conditions["Ready"].reason, "Manual", "the fake took the intruder's apply");
        api.wait_verdict("web", "the leader writes web's Ready back", &Want::ready("2/2 programmed"));
    }

    // 6. The leader dies (SIGKILL: no release). Meanwhile web's spec changes (a second backend): only a leader can
    //    judge generation 2, so its verdict shows that the survivor took over, within the lease duration and a
    //    few retries.
    step("6. SIGKILL to the leader, web's spec changes");
    let (holder, transitions) = api.lease().unwrap();
    let leader = agents.iter().position(|a| a.pod == holder).expect("the Lease names one of the agents");
    let survivor = 1 - leader;
    assert!(agents[leader].leads() && !agents[survivor].leads(), "the Lease's holder is the one that leads");
    assert_eq!((agents[leader].terms(), agents[survivor].terms()), (1, 0), "one term so far, the holder's");
    let writes_before = api.verdict_writes();
    assert_eq!(agents[leader].condition_writes(), writes_before, "every verdict write so far was the leader's");
    agents[leader].kill();
    let killed = std::time::Instant::now();
    let mut web2 = web.clone();
    web2["backends"] = json!([{"address": "10.0.0.5"}, {"address": "10.0.0.6"}]);
    api.put("virtualservices", virtual_service("web", &created, web2));
    let (dead, alive) = (agents[leader].node, agents[survivor].node);
    {
        let _logs = LogsOnFailure(&agents, &work);
        assert_eq!(api.shown("web").generation, Some(2));
        let take_over = Duration::from_secs(LEASE_SECONDS + 10);
        eventually(take_over, "the survivor writes the verdict on generation 2", || {
            let shown = api.shown("web");
            if shown.observed_generation == Some(2) {
                Ok(())
            } else {
                Err(format!("{shown:#?}\nlease {:?}", api.lease()))
            }
        });
        let verdict_after = killed.elapsed();
        assert_eq!(api.lease(), Some((agents[survivor].pod.to_owned(), transitions + 1)), "one take-over");
        eprintln!(
            "\nthe survivor's first verdict on generation 2 came {verdict_after:?} after the leader's SIGKILL \
                   (lease {LEASE_SECONDS} s)"
        );
        // The dead node still shows generation 1: web waits for it.
        api.wait_verdict(
            "web",
            "web waits for the dead node",
            &Want::waiting_for(dead, "still reports generation 1", "1/2 programmed"),
        );
        assert!(agents[survivor].leads());
        assert_eq!(agents[survivor].terms(), 1);
    }

    // The dead agent comes back (the kubelet restarts it): it follows, programs generation 2, and web is Ready.
    step("6b. the killed agent restarts");
    let its_terms = agents[leader].terms(); // its log goes on: the terms of its first life are in it
    agents[leader].start(&kubeconfig);
    {
        let _logs = LogsOnFailure(&agents, &work);
        api.wait_verdict("web", "web is Ready at generation 2", &Want::ready("2/2 programmed"));
        let mut web2_rules = web_rules.clone();
        web2_rules.push("-a -t 192.0.2.70:80 -r 10.0.0.6:80 -m -w 1".to_owned());
        web2_rules.sort();
        let mut a2_rules = web2_rules.clone();
        a2_rules.extend(intranet_rules.map(str::to_owned));
        a2_rules.sort();
        let (a_want, b_want) = (a2_rules, web2_rules);
        eventually(PATIENCE, "both kernels have generation 2", || {
            table_is(&agents[0], &a_want)?;
            table_is(&agents[1], &b_want)
        });
        eventually(PATIENCE, "the restarted agent answers and follows", || {
            let gauge = agents[leader].metric("ipvs_reconciler_leader");
            if gauge == Some(0.0) { Ok(()) } else { Err(format!("its leader gauge: {gauge:?}")) }
        });
        assert!(agents[survivor].leads(), "{alive} still leads");
        assert_eq!(agents[leader].terms(), its_terms, "the restarted agent did not lead");
        assert_eq!(api.lease(), Some((agents[survivor].pod.to_owned(), transitions + 1)), "no other take-over");
        // Every verdict write since the kill is the survivor's: one writer at a time.
        eventually(PATIENCE, "the survivor's writes are all the verdict writes since the kill", || {
            let (mine, theirs, all) =
                (agents[survivor].condition_writes(), agents[leader].condition_writes(), api.verdict_writes());
            if mine > 0 && mine + writes_before == all && theirs == 0 {
                Ok(())
            } else {
                Err(format!("survivor {mine}, restarted {theirs}, before the kill {writes_before}, applies {all}"))
            }
        });
    }

    step("7. the audit of every status apply");
    // Over the whole test: the conditions, summary and observedGeneration were applied by the leaders' field
    // manager only (and the test's intruder, once); the nodes' managers applied their own entries only.
    let _logs = LogsOnFailure(&agents, &work);
    let patches = api.patches();
    let verdict_fields = ["conditions", "summary", "observedGeneration"];
    for patch in &patches {
        let manager = patch["manager"].as_str().unwrap_or_default();
        let fields: Vec<&String> = patch["body"]["status"].as_object().map(|s| s.keys().collect()).unwrap_or_default();
        match manager {
            VERDICT_MANAGER => assert!(fields.iter().all(|f| verdict_fields.contains(&f.as_str())), "{patch}"),
            INTRUDER => {}
            _ => {
                assert!(manager.starts_with("ipvs-reconciler/node-"), "an unexpected manager: {patch}");
                assert!(fields.iter().all(|f| *f == "nodes"), "a node's agent wrote more than its entries: {patch}");
            }
        }
    }
    assert_eq!(patches.iter().filter(|p| p["manager"] == INTRUDER).count(), 1);
    for agent in &agents {
        assert!(!agent.log_text().contains("lost the status lease"), "{} lost the lease", agent.node);
    }
    step("done");
}
