//! What shares the node with this program, against the real kernel: kube-proxy in IPVS mode (told by its
//! `kube-ipvs0`) and an owned service it deletes between two passes, a VIP on `ipvs0` that every node would answer
//! ARP for, and the agent on a host without any CA bundle talking to an `http://` API.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::{KillOnDrop, Netns, Workdir, eventually, path_str, sorted};

const PATIENCE: Duration = Duration::from_secs(60);

fn manifest(name: &str, vip: &str) -> String {
    format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  address: {vip}\n  \
         port: 80\n  scheduler: rr\n  drainTimeoutSeconds: 0\n  backends:\n    - {{address: 172.16.0.1, port: 8080}}\n"
    )
}

/// A plain HTTP GET on 127.0.0.1:`port`: the status line, headers and body.
fn http_get(port: u16, path: &str) -> String {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return "not listening".to_owned() };
    let _ = write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

fn has_line(text: &str, line: &str) -> Result<(), String> {
    if text.lines().any(|l| l == line) { Ok(()) } else { Err(format!("no line {line:?} in:\n{text}")) }
}

#[test]
fn kube_proxy_in_ipvs_mode_is_reported_once_and_a_service_it_deletes_comes_back_reported() {
    let ns = Netns::new("kube-proxy");
    // kube-proxy in IPVS mode: its dummy interface holding the Service addresses, and its own IPVS service.
    ns.ip(&["link", "add", "kube-ipvs0", "type", "dummy"]);
    ns.ip(&["addr", "add", "10.96.0.1/32", "dev", "kube-ipvs0"]);
    ns.ipvsadm(&["-A", "-t", "10.96.0.1:443", "-s", "rr"]);
    let work = Workdir::new();
    work.write("web.yaml", &manifest("web", "192.0.2.70"));

    let log = std::fs::File::create(work.path("run.log")).unwrap();
    let child = ns
        .cli_command(&["run", "--manifests", path_str(&work.manifests()), "--state", path_str(&work.state())])
        .args(["--resync-seconds", "1", "--quiet-ms", "50", "--listen", "127.0.0.1:19479"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(Some(child));
    let log_text = || std::fs::read_to_string(work.path("run.log")).unwrap_or_default();
    let ours = sorted(&["-A -t 192.0.2.70:80 -s rr", "-a -t 192.0.2.70:80 -r 172.16.0.1:8080 -m -w 1"]);
    let with_kube_proxy = |mut rules: Vec<String>| {
        rules.push("-A -t 10.96.0.1:443 -s rr".to_owned());
        rules.sort();
        rules
    };
    let table_is = |want: &[String]| {
        let rules = ns.saved_rules();
        if rules == want { Ok(()) } else { Err(format!("{}\n--- log\n{}", rules.join("\n"), log_text())) }
    };
    eventually(PATIENCE, "run programs its service beside kube-proxy's", || table_is(&with_kube_proxy(ours.clone())));
    eventually(PATIENCE, "kube-proxy's IPVS mode is reported", || {
        has_line(&http_get(19479, "/metrics"), "ipvs_reconciler_kube_proxy_ipvs 1")
    });
    assert_eq!(log_text().matches("kube-proxy runs in IPVS mode on this node").count(), 1, "{}", log_text());

    // kube-proxy's sync deletes the services it did not create (no --ipvs-exclude-cidrs).
    ns.ipvsadm(&["-D", "-t", "192.0.2.70:80"]);
    eventually(PATIENCE, "the next full pass adds it back and counts it", || {
        table_is(&with_kube_proxy(ours.clone()))?;
        has_line(&http_get(19479, "/metrics"), "ipvs_reconciler_services_removed_by_others_total 1")
    });
    ns.ipvsadm(&["-D", "-t", "192.0.2.70:80"]);
    eventually(PATIENCE, "each removal is counted", || {
        table_is(&with_kube_proxy(ours.clone()))?;
        has_line(&http_get(19479, "/metrics"), "ipvs_reconciler_services_removed_by_others_total 2")
    });
    // A few more resyncs: still one line for kube-proxy and one for the service (a log line per pass would flood).
    std::thread::sleep(Duration::from_secs(3));
    let text = log_text();
    assert_eq!(text.matches("kube-proxy runs in IPVS mode on this node").count(), 1, "{text}");
    assert_eq!(text.matches("removed from the kernel by another program").count(), 1, "{text}");
    assert!(text.contains("192.0.2.70"), "the line names the service: {text}");
    table_is(&with_kube_proxy(ours)).unwrap();
}

#[test]
fn a_vip_every_node_would_answer_arp_for_is_a_contradiction_until_arp_ignore_is_set() {
    let ns = Netns::new("arp");
    // The node's LAN: 192.0.2.0/24. The VIP 192.0.2.71 lies in it; 198.51.100.71 is routed, not on the segment.
    ns.ip(&["link", "add", "lan0", "type", "dummy"]);
    ns.ip(&["addr", "add", "192.0.2.200/24", "dev", "lan0"]);
    ns.ip(&["link", "set", "lan0", "up"]);
    let work = Workdir::new();
    work.write("lan.yaml", &manifest("lan", "192.0.2.71"));
    work.write("routed.yaml", &manifest("routed", "198.51.100.71"));

    let first = work.pass(&ns, "apply", &["--sysctl", "ip_forward=1"]).expect_code(0).clone();
    let arp = first.stderr.lines().find(|l| l.contains("arp_ignore is")).unwrap_or_else(|| panic!("{first}"));
    assert!(arp.contains("net.ipv4.conf.all.arp_ignore is 0 but 1 service(s) need 1: the node answers ARP"), "{arp}");
    assert!(arp.contains("(TCP 192.0.2.71:80)"), "the VIP in the LAN's subnet, not the routed one: {arp}");

    // The interface's own value counts too (the kernel takes the higher of `all` and it).
    ns.sysctl("net.ipv4.conf.lan0.arp_ignore", "1");
    let own = work.pass(&ns, "apply", &[]).expect_code(0).clone();
    assert!(!own.stderr.contains("arp_ignore"), "{own}");
    ns.sysctl("net.ipv4.conf.lan0.arp_ignore", "0");

    // Set by the director configuration: no longer a contradiction.
    let fixed = work.pass(&ns, "apply", &["--sysctl", "arp_ignore=1"]).expect_code(0).clone();
    assert!(fixed.stdout.contains("director: net.ipv4.conf.all.arp_ignore 0 -> 1"), "{fixed}");
    assert!(!fixed.stderr.contains("arp_ignore is"), "{fixed}");
}

/// The fake API server of `tests/kube-fake` (as `agent.rs` starts it), stopped on drop.
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

    fn put(&self, kind: &str, object: &serde_json::Value) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let body = object.to_string();
        write!(
            stream,
            "PUT /control/{kind} HTTP/1.0\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.0 2") || response.starts_with("HTTP/1.1 2"), "{response}");
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_agent_needs_no_ca_bundle_for_an_http_api() {
    let ns = Netns::new("no-ca");
    let work = Workdir::new();
    let api = FakeApi::start(&work);
    api.put("nodes", &serde_json::json!({"metadata": {"name": "n1", "labels": {}}}));
    api.put(
        "virtualservices",
        &serde_json::json!({
            "metadata": {"name": "web", "namespace": "prod", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"address": "192.0.2.72", "port": 80, "backends": [{"address": "172.16.0.2"}]},
        }),
    );
    let kubeconfig = work.path("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: fake, cluster: {{server: 'http://127.0.0.1:{}'}}}}]\n\
             users: [{{name: fake, user: {{}}}}]\ncontexts: [{{name: fake, context: {{cluster: fake, user: fake}}}}]\n\
             current-context: fake\n",
            api.port
        ),
    )
    .unwrap();
    // No CA certificate anywhere the agent's TLS libraries look: with SSL_CERT_FILE or SSL_CERT_DIR set,
    // rustls-native-certs reads those alone (not /etc/ssl/certs), as on a host without a CA bundle.
    let empty_file = work.path("no-ca.pem");
    std::fs::write(&empty_file, "").unwrap();
    let empty_dir = work.path("no-ca");
    std::fs::create_dir(&empty_dir).unwrap();

    let log = std::fs::File::create(work.path("agent.log")).unwrap();
    let child = ns
        .cli_command(&["agent", "--node-name", "n1", "--state", path_str(&work.state()), "--admission", "open"])
        .args(["--listen", "127.0.0.1:19489", "--quiet-ms", "100"])
        .env("KUBECONFIG", &kubeconfig)
        .env("SSL_CERT_FILE", &empty_file)
        .env("SSL_CERT_DIR", &empty_dir)
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(Some(child));
    let log_text = || std::fs::read_to_string(work.path("agent.log")).unwrap_or_default();
    let want = sorted(&["-A -t 192.0.2.72:80 -s wlc", "-a -t 192.0.2.72:80 -r 172.16.0.2:80 -m -w 1"]);
    eventually(PATIENCE, "the agent programs the cluster's service", || {
        let rules = ns.saved_rules();
        if rules == want { Ok(()) } else { Err(format!("{}\n--- agent log\n{}", rules.join("\n"), log_text())) }
    });
    // The health checks say that verified HTTPS checks would fail here; the API client has nothing to say.
    let text = log_text();
    assert!(!text.contains("No CA certificates") && !text.contains("certificate authority"), "{text}");
}
