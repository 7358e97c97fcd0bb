//! The Kubernetes agent process end to end: the real binary, the real kernel (a fresh network namespace), and a
//! stateful stand-in for the API server that the test starts (`tests/kube-fake/apiserver.py`: list/watch of
//! VirtualServices, EndpointSlices, Nodes, VirtualServicePools and Namespaces, server-side apply of status with
//! per-manager list-map entries, a kind whose CRD is missing, an outage).

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
