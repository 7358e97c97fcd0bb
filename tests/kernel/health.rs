//! Health checks end to end with real traffic: `run` in a director namespace, two HTTP backends and a sorry server
//! in namespaces of their own (NAT: their replies route back through the director), and a client namespace asking
//! the VIP. Stopping a backend's server takes it out (weight 0, every new connection lands on the survivor);
//! starting it again brings it back; a restart of `run` flaps nothing; with both down the sorry server answers.
//! With slow start, a recovered backend's weight climbs in steps, each an edit of the same destination. With
//! withdrawAddressWhenDown, the VIP leaves the director's ipvs0 while no backend is healthy and comes back with one.
//!
//! ```text
//!   client 192.168.78.2 ── 192.168.78.1 [director: VIP 192.168.80.1 on lo, IPVS NAT] 192.168.71.1 ── b1 192.168.71.2:8080
//!                                                                                   192.168.72.1 ── b2 192.168.72.2:8080
//!                                                                                   192.168.79.1 ── sorry 192.168.79.2:8080
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{KillOnDrop, Netns, Workdir, binary, eventually, path_str};

const VIP: &str = "192.168.80.1";
const PATIENCE: Duration = Duration::from_secs(60);

/// A director namespace with its backends and client, each joined to it by a veth pair.
struct Lab {
    director: Netns,
    backends: Vec<(Netns, &'static str)>,
    client: Netns,
}

fn link(director: &Netns, other: &Netns, name: &str, net: u8) {
    let here = format!("{name}-d");
    director.ip(&["link", "add", &here, "type", "veth", "peer", "name", "eth1", "netns", &other.name]);
    director.ip(&["addr", "add", &format!("192.168.{net}.1/24"), "dev", &here]);
    director.ip(&["link", "set", &here, "up"]);
    other.ip(&["addr", "add", &format!("192.168.{net}.2/24"), "dev", "eth1"]);
    other.ip(&["link", "set", "eth1", "up"]);
    other.ip(&["route", "add", "default", "via", &format!("192.168.{net}.1")]);
}

impl Lab {
    fn new() -> Lab {
        let director = Netns::new("hc-lb");
        let backends =
            vec![(Netns::new("hc-b1"), "b1"), (Netns::new("hc-b2"), "b2"), (Netns::new("hc-sorry"), "sorry")];
        let client = Netns::new("hc-cl");
        for ((ns, name), net) in backends.iter().zip([71u8, 72, 79]) {
            link(&director, ns, name, net);
        }
        link(&director, &client, "cl", 78);
        director.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "lo"]);
        let forward = director.exec("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
        assert!(forward.status.success(), "{}", String::from_utf8_lossy(&forward.stderr));
        Lab { director, backends, client }
    }

    /// Starts backend `i`'s HTTP server: `/name` answers its name.
    fn serve(&self, work: &Workdir, i: usize) -> KillOnDrop {
        let (ns, name) = &self.backends[i];
        let root = work.path(name);
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("name"), name).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-m", "http.server", "8080", "--bind", "0.0.0.0"])
            .current_dir(&root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = KillOnDrop(Some(child));
        let address = format!("192.168.{}.2:8080", [71, 72, 79][i]);
        eventually(PATIENCE, &format!("{name} serves"), || {
            let out = self.director.exec("python3", &["-c", &fetch_script(&format!("http://{address}/name"), 1)]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.trim() == *name { Ok(()) } else { Err(text) }
        });
        server
    }

    /// `n` requests from the client to the VIP, each on a new connection: the answers (`b1`, `b2`, `sorry`, or
    /// `error: ...`).
    fn ask(&self, n: usize) -> Vec<String> {
        let out = self.client.exec("python3", &["-c", &fetch_script(&format!("http://{VIP}/name"), n)]);
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
    }

    /// The weight the kernel gives backend `i` (`None`: not in the service).
    fn weight(&self, i: usize) -> Option<u32> {
        self.dest_column(i, &["-Ln"], 3)
    }

    /// The connections the kernel has counted for backend `i` since its destination was added: a destination
    /// deleted and added again starts from 0.
    fn conns(&self, i: usize) -> Option<u64> {
        self.dest_column(i, &["-Ln", "--stats"], 2)
    }

    /// Column `column` of backend `i`'s line in `ipvsadm <flags> -t VIP:80`.
    fn dest_column<T: std::str::FromStr>(&self, i: usize, flags: &[&str], column: usize) -> Option<T> {
        let dest = format!("192.168.{}.2:8080", [71, 72, 79][i]);
        let vip = format!("{VIP}:80");
        let mut args = flags.to_vec();
        args.extend(["-t", &vip]);
        // Before the first pass the service does not exist (ipvsadm fails): no value yet.
        let out = self.director.exec("ipvsadm", &args);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find(|line| line.contains(&dest))
            .and_then(|line| line.split_whitespace().nth(column))
            .and_then(|w| w.parse().ok())
    }
}

/// A Python one-liner making `n` GETs of `url`, one connection each, printing each answer or the error.
fn fetch_script(url: &str, n: usize) -> String {
    format!(
        "import urllib.request\nfor _ in range({n}):\n    try:\n        print(urllib.request.urlopen('{url}', timeout=3).read().decode())\n    except Exception as e:\n        print('error:', e)\n"
    )
}

const MANIFEST: &str = r#"apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata: {name: web}
spec:
  address: 192.168.80.1
  port: 80
  scheduler: rr
  drainTimeoutSeconds: 0
  backends:
    - {address: 192.168.71.2, port: 8080}
    - {address: 192.168.72.2, port: 8080}
  healthCheck: {type: HTTP, path: /name, intervalSeconds: 2, timeoutSeconds: 1, rise: 2, fall: 2}
  sorryServer: {address: 192.168.79.2, port: 8080}
"#;

/// `run` in the director's namespace (so its checks go out from there), with `/status` on 127.0.0.1:19470.
fn start_run(lab: &Lab, work: &Workdir, log: &str) -> KillOnDrop {
    let log = std::fs::File::create(work.path(log)).unwrap();
    let manifests = work.manifests();
    let child: Child = Command::new("ip")
        .args(["netns", "exec", &lab.director.name])
        .arg(binary())
        .args(["run", "--manifests", path_str(&manifests), "--state", path_str(&work.state())])
        .args(["--quiet-ms", "100", "--resync-seconds", "3600", "--listen", "127.0.0.1:19470"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    KillOnDrop(Some(child))
}

fn stop_gracefully(mut run: KillOnDrop) {
    if let Some(mut child) = run.0.take() {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let status = child.wait().unwrap();
        assert!(status.success(), "run exits 0 on SIGTERM: {status}");
    }
}

#[test]
fn health_checks_take_a_dead_backend_out_bring_it_back_and_call_the_sorry_server() {
    let lab = Lab::new();
    let work = Workdir::new();
    let servers: Vec<Option<KillOnDrop>> = (0..3).map(|i| Some(lab.serve(&work, i))).collect();
    let mut servers = servers;
    work.write("web.yaml", MANIFEST);
    let run = start_run(&lab, &work, "run.log");
    let log = || std::fs::read_to_string(work.path("run.log")).unwrap_or_default();
    let weights = |want: [Option<u32>; 3]| {
        let got = [lab.weight(0), lab.weight(1), lab.weight(2)];
        if got == want { Ok(()) } else { Err(format!("weights {got:?}\n--- run log\n{}", log())) }
    };
    eventually(PATIENCE, "both backends programmed, no sorry server", || weights([Some(1), Some(1), None]));
    let answers = lab.ask(6);
    assert!(answers.iter().any(|a| a == "b1") && answers.iter().any(|a| a == "b2"), "{answers:?}");

    // b1's server stops: its checks fail, it gets weight 0, and every new connection lands on b2.
    servers[0] = None;
    let stopped = Instant::now();
    eventually(PATIENCE, "b1 out", || weights([Some(0), Some(1), None]));
    let out_after = stopped.elapsed();
    let answers = lab.ask(6);
    assert!(answers.iter().all(|a| a == "b2"), "every request on the survivor: {answers:?}");

    // b1 comes back: after rise checks its weight returns.
    servers[0] = Some(lab.serve(&work, 0));
    eventually(PATIENCE, "b1 back", || weights([Some(1), Some(1), None]));
    let answers = lab.ask(6);
    assert!(answers.iter().any(|a| a == "b1"), "{answers:?}");

    // A restart while b1 is down again: the saved health keeps it out from the first pass on.
    servers[0] = None;
    eventually(PATIENCE, "b1 out again", || weights([Some(0), Some(1), None]));
    stop_gracefully(run);
    assert_eq!([lab.weight(0), lab.weight(1)], [Some(0), Some(1)], "SIGTERM leaves the table as it is");
    let run = start_run(&lab, &work, "run2.log");
    let restarted = Instant::now();
    // Watch the table from before the new run's first pass until well after it (its first checks included).
    while restarted.elapsed() < Duration::from_secs(8) {
        assert_eq!([lab.weight(0), lab.weight(1)], [Some(0), Some(1)], "nothing flaps across a restart");
        std::thread::sleep(Duration::from_millis(100));
    }
    let log2 = std::fs::read_to_string(work.path("run2.log")).unwrap_or_default();
    assert!(log2.contains("reconciled"), "the restarted run made its first pass: {log2}");

    // Both down: the sorry server answers. b2 back: the sorry server goes.
    servers[1] = None;
    eventually(PATIENCE, "the sorry server in", || weights([Some(0), Some(0), Some(1)]));
    let answers = lab.ask(4);
    assert!(answers.iter().all(|a| a == "sorry"), "{answers:?}");
    let status = Command::new("ip")
        .args(["netns", "exec", &lab.director.name])
        .arg(binary())
        .args(["status", "--url", "http://127.0.0.1:19470"])
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    assert!(table.contains("TCP 192.168.80.1:80"), "{table}");
    assert!(table.lines().filter(|l| l.contains("UNHEALTHY")).count() == 2, "{table}");
    assert!(table.contains("sorry server (in)"), "{table}");
    println!("ipvs-reconciler status with both backends down:\n{table}");
    servers[1] = Some(lab.serve(&work, 1));
    eventually(PATIENCE, "the sorry server out", || weights([Some(0), Some(1), None]));
    let answers = lab.ask(4);
    assert!(answers.iter().all(|a| a == "b2"), "{answers:?}");
    println!("a stopped backend was out {out_after:?} after its server stopped (checks every 2 s, fall 2)");
    stop_gracefully(run);
}

const SLOW_START_MANIFEST: &str = r#"apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata: {name: web}
spec:
  address: 192.168.80.1
  port: 80
  scheduler: wrr
  backends:
    - {address: 192.168.71.2, port: 8080, weight: 10}
    - {address: 192.168.72.2, port: 8080, weight: 10}
  healthCheck: {type: HTTP, path: /name, intervalSeconds: 1, rise: 2, fall: 2, slowStartSeconds: 20}
"#;

#[test]
fn slow_start_brings_a_recovered_backend_back_in_steps_without_recreating_it() {
    let lab = Lab::new();
    let work = Workdir::new();
    let b1 = lab.serve(&work, 0);
    let _b2 = lab.serve(&work, 1);
    work.write("web.yaml", SLOW_START_MANIFEST);
    let run = start_run(&lab, &work, "run.log");
    let log = || std::fs::read_to_string(work.path("run.log")).unwrap_or_default();
    let weights = |want: [Option<u32>; 2]| {
        let got = [lab.weight(0), lab.weight(1)];
        if got == want { Ok(()) } else { Err(format!("weights {got:?}\n--- run log\n{}", log())) }
    };
    // Backends healthy from the start keep their weight: no ramp for them.
    eventually(PATIENCE, "both backends at full weight", || weights([Some(10), Some(10)]));
    let answers = lab.ask(6);
    assert!(answers.iter().any(|a| a == "b1"), "{answers:?}");
    // The kernel folds its per-CPU counters into what it reports every 2 s (its rate estimator's timer).
    eventually(PATIENCE, "the kernel counted b1's connections", || match lab.conns(0) {
        Some(conns) if conns > 0 => Ok(()),
        other => Err(format!("b1's connections: {other:?}")),
    });
    let counted = lab.conns(0).unwrap_or(0);

    drop(b1);
    eventually(PATIENCE, "b1 out", || weights([Some(0), Some(10)]));
    let _b1 = lab.serve(&work, 0);

    // Back up (its server takes seconds to start under emulation, so the first steps may pass unseen; steps of
    // 2 s leave several to see): the weight climbs in steps (one SET_DEST each) to 10; the destination is never deleted and added
    // again (its connection count never restarts from 0), and b2 is untouched.
    let mut seen = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline && seen.last() != Some(&10) {
        let weight = lab.weight(0).expect("b1 stays in the service while it ramps");
        let conns = lab.conns(0).expect("b1's counters");
        assert!(conns >= counted, "b1 recreated during slow start: {conns} connections counted, {counted} before");
        assert_eq!(lab.weight(1), Some(10), "b2 untouched");
        if seen.last() != Some(&weight) {
            seen.push(weight);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(seen.last(), Some(&10), "b1 back at full weight: {seen:?}\n{}", log());
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "the weight only climbs: {seen:?}");
    let steps: Vec<u32> = seen.iter().copied().filter(|w| (1..10).contains(w)).collect();
    assert!(steps.len() >= 3, "slow start shows intermediate weights, not a jump: {seen:?}");
    println!("b1's weights after it recovered (slow start over 20 s: 10 steps of 2 s): {seen:?}");
    stop_gracefully(run);
}

const WITHDRAW_MANIFEST: &str = r#"apiVersion: ipvs.dev/v1alpha1
kind: VirtualService
metadata: {name: web}
spec:
  address: 192.168.80.1
  port: 80
  scheduler: rr
  withdrawAddressWhenDown: true
  backends:
    - {address: 192.168.71.2, port: 8080}
  healthCheck: {type: HTTP, path: /name, intervalSeconds: 1, rise: 2, fall: 2}
"#;

#[test]
fn a_vip_whose_backends_are_all_down_leaves_the_node_and_comes_back_with_them() {
    let lab = Lab::new();
    // Here `run` alone binds the VIP, on ipvs0.
    lab.director.ip(&["addr", "del", &format!("{VIP}/32"), "dev", "lo"]);
    let work = Workdir::new();
    let b1 = lab.serve(&work, 0);
    work.write("web.yaml", WITHDRAW_MANIFEST);
    let run = start_run(&lab, &work, "run.log");
    let log = || std::fs::read_to_string(work.path("run.log")).unwrap_or_default();
    let bound = |want: bool| {
        // Until run's first pass, ipvs0 does not exist (ip fails): nothing bound yet.
        let out = lab.director.exec("ip", &["-o", "addr", "show", "dev", "ipvs0"]);
        let shown = String::from_utf8_lossy(&out.stdout);
        if shown.contains(&format!("inet {VIP}/32")) == want { Ok(()) } else { Err(format!("{shown}\n{}", log())) }
    };
    eventually(PATIENCE, "the VIP bound while b1 is healthy", || bound(true));
    assert_eq!(lab.ask(2), ["b1", "b1"]);

    drop(b1);
    eventually(PATIENCE, "the VIP withdrawn once b1 is down", || bound(false));
    assert_eq!(lab.weight(0), Some(0), "the service stays, its backend at weight 0");
    assert!(lab.ask(1)[0].starts_with("error"), "nothing answers for the VIP on this director");

    let b1 = lab.serve(&work, 0);
    eventually(PATIENCE, "the VIP back with b1", || bound(true));
    assert_eq!(lab.ask(2), ["b1", "b1"]);
    drop(b1);
    stop_gracefully(run);
}
