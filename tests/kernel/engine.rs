//! The whole program against the real kernel: the `ipvs-reconciler` binary applies manifests in a fresh network
//! namespace and `ipvsadm` (the reference client) checks what the kernel holds. Each test proves one behaviour a user
//! relies on: the examples load as documented, edits stay edits, other tools' services are never touched, a kill -9
//! never leaks or forgets a service, `run` repairs drift, bad input never deletes, and `dump -o yaml` imports a table.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipvs_reconciler::model::ServiceKey;

use crate::support::{KillOnDrop, Netns, Workdir, binary, eventually, examples_dir, path_str, require_vm, rt, sorted};

/// How long an asynchronous effect (a `run` pass, a process exit) may take before the test fails. Generous: the VM
/// emulates its CPU; the bound only turns a hang into a failure, it measures nothing.
const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------- helpers

/// The `-Sn` lines of `ns` that mention `needle`.
fn rules_with(ns: &Netns, needle: &str) -> Vec<String> {
    ns.saved_rules().into_iter().filter(|l| l.contains(needle)).collect()
}

/// Lines of a text with trailing blanks removed (ipvsadm pads its columns).
fn trimmed_lines(text: &str) -> Vec<String> {
    text.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// The `Conns` counter of one TCP service as `ipvsadm -Ln --stats --exact` shows it: it counts every connection the
/// kernel object has scheduled since it was created, so it stays put across edits and restarts at 0 when the object
/// is deleted and made again.
fn service_conns(ns: &Netns, vip_port: &str) -> u64 {
    let listing = ns.ipvsadm(&["-Ln", "--stats", "--exact", "-t", vip_port]);
    let line = listing
        .lines()
        .find(|l| l.starts_with("TCP ") && l.split_whitespace().nth(1) == Some(vip_port))
        .unwrap_or_else(|| panic!("no service line for {vip_port} in\n{listing}"));
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// Opens one TCP connection from inside the namespace to `vip`:`port` and returns the service's `Conns` counter
/// afterwards. The virtual IP routes to a dummy interface, so the SYN goes nowhere, but IPVS schedules it on the way
/// out (local clients are balanced too) and counts it. Tries a few times: on the loaded VM the client may not even
/// start before `timeout` ends it.
fn knock(ns: &Netns, vip: &str, port: u16) -> u64 {
    ns.ip(&["route", "replace", &format!("{vip}/32"), "dev", "d0"]);
    let vip_port = format!("{vip}:{port}");
    let mut outputs = Vec::new();
    for _ in 0..5 {
        // `timeout` ends the connect that never completes; its exit code is irrelevant.
        let out = ns.exec("timeout", &["3", "bash", "-c", &format!("exec 3<>/dev/tcp/{vip}/{port}")]);
        let conns = service_conns(ns, &vip_port);
        if conns > 0 {
            return conns;
        }
        outputs.push(format!("{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    panic!("IPVS never scheduled a test connection to {vip_port}: {outputs:#?}");
}

/// A `VirtualService` document for TCP 192.0.2.10:`port` (drain timeout 0: a removed backend goes at once).
fn web(port: u16, scheduler: &str, extra: &str, backends: &[&str]) -> String {
    let mut yaml = format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: web, namespace: default}}\nspec:\n  \
         address: 192.0.2.10\n  port: {port}\n  scheduler: {scheduler}\n  drainTimeoutSeconds: 0\n{extra}  backends:\n"
    );
    for b in backends {
        yaml.push_str(&format!("    - {b}\n"));
    }
    yaml
}

/// A minimal `VirtualService` document: TCP `vip`:80 with masquerading backends `(address, port, weight)`.
fn simple(name: &str, vip: &str, scheduler: &str, backends: &[(&str, u16, i64)]) -> String {
    let mut yaml = format!(
        "---\napiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  address: {vip}\n  \
         port: 80\n  scheduler: {scheduler}\n  drainTimeoutSeconds: 0\n  backends:\n"
    );
    for (addr, port, weight) in backends {
        yaml.push_str(&format!("    - {{address: {addr}, port: {port}, weight: {weight}}}\n"));
    }
    yaml
}

/// Writes `file`, then checks that `plan` lists exactly `expected` (exit 2), that `apply` does exactly that (exit 0),
/// and that a plan afterwards has nothing to do.
#[track_caller]
fn change(ns: &Netns, work: &Workdir, file: &str, yaml: &str, expected: &[&str]) {
    work.write(file, yaml);
    let plan = work.plan(ns);
    plan.expect_code(2);
    assert_eq!(plan.op_lines(), expected, "plan\n{plan}");
    let apply = work.apply(ns);
    apply.expect_code(0);
    assert_eq!(apply.op_lines(), expected, "apply\n{apply}");
    let again = work.plan(ns);
    again.expect_code(0);
    assert!(again.stdout.contains("no changes"), "{again}");
}

/// Asserts that no operation line deletes anything.
#[track_caller]
fn assert_no_delete(lines: &[&str]) {
    assert!(lines.iter().all(|l| !l.starts_with('-')), "an edit planned a delete: {lines:?}");
}

// ------------------------------------------------------------------------------------------------------ tests

/// The bundled examples apply as the README says, read back the same through ipvsadm, and need nothing more.
#[test]
fn examples_apply_and_read_back_like_ipvsadm() {
    let ns = Netns::new("examples");
    let work = Workdir::new();
    let examples = examples_dir();
    let state = work.state();
    let args = |cmd| vec![cmd, "-f", path_str(&examples), "--state", path_str(&state)];

    let apply = ns.cli_run(&args("apply"));
    apply.expect_code(0);

    let rules = ns.saved_rules();
    let dump = ns.cli_run(&["dump", "-o", "rules"]);
    dump.expect_code(0);
    let mut ours: Vec<String> = dump.stdout.lines().map(str::to_owned).collect();
    ours.sort();
    assert_eq!(ours, rules, "dump -o rules differs from ipvsadm -Sn");

    for line in [
        "-A -t 192.0.2.10:80 -s wlc",
        "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 3",
        "-a -t 192.0.2.10:80 -r 10.0.0.13:8080 -m -w 1",
        "-A -u 198.51.100.53:53 -s rr -p 60 -M 255.255.255.0",
        "-A -u 198.51.100.14:514 -s rr -o",
        "-A -t 203.0.113.20:443 -s sh -b sh-fallback",
        "-a -t 203.0.113.20:443 -r 10.0.1.23:443 -g -w 2",
        "-A -f 42 -s lc -p 600",
        "-a -f 42 -r 10.0.2.31:0 -m -w 1",
        "-A -t [2001:db8::10]:80 -s wrr",
        "-a -t [2001:db8::10]:80 -r [fd00::11]:8080 -m -w 2",
        "-a -t 203.0.113.40:80 -r 10.0.3.41:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum",
        "-a -t 203.0.113.40:80 -r 10.0.3.43:80 -i -w 1 --tun-type ipip",
    ] {
        assert!(rules.iter().any(|r| r == line), "missing {line:?} in\n{}", rules.join("\n"));
    }
    assert_eq!(rules.iter().filter(|l| l.starts_with("-A ")).count(), 9, "{rules:#?}");
    assert_eq!(rules.iter().filter(|l| l.starts_with("-a ")).count(), 21, "{rules:#?}");

    let plan = ns.cli_run(&args("plan"));
    plan.expect_code(0);
    assert!(plan.stdout.contains("no changes"), "{plan}");
    assert!(plan.op_lines().is_empty(), "{plan}");

    let listing = ns.cli_run(&["dump"]);
    listing.expect_code(0);
    assert_eq!(trimmed_lines(&listing.stdout), trimmed_lines(&ns.ipvsadm(&["-Ln"])), "dump differs from ipvsadm -Ln");
}

/// Each kind of change becomes exactly the operation it needs: edits in place (the kernel object and its counters
/// stay), a key change deletes and re-adds, a backend set change adds and removes just those backends.
#[test]
fn changes_become_minimal_operations_and_edits_never_delete() {
    let ns = Netns::new("edits");
    let work = Workdir::new();
    let b1 = "{address: 10.0.0.11, port: 8080, weight: 3}";
    let b2 = "{address: 10.0.0.12}";
    work.write("web.yaml", &web(80, "wlc", "", &[b1, b2]));
    work.apply(&ns).expect_code(0);
    assert_eq!(
        ns.saved_rules(),
        sorted(&[
            "-A -t 192.0.2.10:80 -s wlc",
            "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 3",
            "-a -t 192.0.2.10:80 -r 10.0.0.12:80 -m -w 1",
        ])
    );
    let conns = knock(&ns, "192.0.2.10", 80);

    // (a) a backend's weight
    let b1 = "{address: 10.0.0.11, port: 8080, weight: 5}";
    let a = ["~   TCP 192.0.2.10:80 -> 10.0.0.11:8080 weight 3 -> 5"];
    assert_no_delete(&a);
    change(&ns, &work, "web.yaml", &web(80, "wlc", "", &[b1, b2]), &a);
    assert!(rules_with(&ns, "10.0.0.11:8080").contains(&"-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 5".to_owned()));
    assert_eq!(service_conns(&ns, "192.0.2.10:80"), conns, "the weight edit replaced the service");

    // (b) the scheduler
    let b = ["~ service TCP 192.0.2.10:80 scheduler wlc -> rr"];
    assert_no_delete(&b);
    change(&ns, &work, "web.yaml", &web(80, "rr", "", &[b1, b2]), &b);
    assert!(ns.saved_rules().contains(&"-A -t 192.0.2.10:80 -s rr".to_owned()));
    assert_eq!(service_conns(&ns, "192.0.2.10:80"), conns, "the scheduler edit replaced the service");

    // (c) persistence on
    let persistence = "  persistence: {timeoutSeconds: 300, prefixLength: 24}\n";
    let c = ["~ service TCP 192.0.2.10:80 persistent - -> 300s, netmask - -> 255.255.255.0"];
    assert_no_delete(&c);
    change(&ns, &work, "web.yaml", &web(80, "rr", persistence, &[b1, b2]), &c);
    assert!(ns.saved_rules().contains(&"-A -t 192.0.2.10:80 -s rr -p 300 -M 255.255.255.0".to_owned()));
    assert_eq!(service_conns(&ns, "192.0.2.10:80"), conns, "the persistence edit replaced the service");

    // (d) a backend's forwarding method, same port
    let b2 = "{address: 10.0.0.12, forwarding: {method: DirectRouting}}";
    let d = ["~   TCP 192.0.2.10:80 -> 10.0.0.12:80 forward masq -> route"];
    assert_no_delete(&d);
    change(&ns, &work, "web.yaml", &web(80, "rr", persistence, &[b1, b2]), &d);
    assert_eq!(service_conns(&ns, "192.0.2.10:80"), conns, "the forwarding edit replaced the service");
    assert_eq!(
        ns.saved_rules(),
        sorted(&[
            "-A -t 192.0.2.10:80 -s rr -p 300 -M 255.255.255.0",
            "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 5",
            "-a -t 192.0.2.10:80 -r 10.0.0.12:80 -g -w 1",
        ])
    );

    // (e) a backend's port: a new destination, and the old one deleted (drain timeout 0)
    let b1 = "{address: 10.0.0.11, port: 8081, weight: 5}";
    change(
        &ns,
        &work,
        "web.yaml",
        &web(80, "rr", persistence, &[b1, b2]),
        &["+   TCP 192.0.2.10:80 -> 10.0.0.11:8081 forward=masq weight=5", "-   TCP 192.0.2.10:80 -> 10.0.0.11:8080"],
    );
    assert_eq!(rules_with(&ns, "10.0.0.11:"), vec!["-a -t 192.0.2.10:80 -r 10.0.0.11:8081 -m -w 5".to_owned()]);

    // (f) the service's port: a key change deletes the service and adds it again with its backends
    change(
        &ns,
        &work,
        "web.yaml",
        &web(8000, "rr", persistence, &[b1, b2]),
        &[
            "- service TCP 192.0.2.10:80",
            "+ service TCP 192.0.2.10:8000 scheduler=rr persistent=300s netmask=255.255.255.0",
            "+   TCP 192.0.2.10:8000 -> 10.0.0.11:8081 forward=masq weight=5",
            "+   TCP 192.0.2.10:8000 -> 10.0.0.12:8000 forward=route weight=1",
        ],
    );
    assert_eq!(
        ns.saved_rules(),
        sorted(&[
            "-A -t 192.0.2.10:8000 -s rr -p 300 -M 255.255.255.0",
            "-a -t 192.0.2.10:8000 -r 10.0.0.11:8081 -m -w 5",
            "-a -t 192.0.2.10:8000 -r 10.0.0.12:8000 -g -w 1",
        ])
    );

    // (g) the backend set: one added, one removed
    let b3 = "{address: 10.0.0.13, port: 8080}";
    change(
        &ns,
        &work,
        "web.yaml",
        &web(8000, "rr", persistence, &[b2, b3]),
        &[
            "+   TCP 192.0.2.10:8000 -> 10.0.0.13:8080 forward=masq weight=1",
            "-   TCP 192.0.2.10:8000 -> 10.0.0.11:8081",
        ],
    );
    assert_eq!(
        ns.saved_rules(),
        sorted(&[
            "-A -t 192.0.2.10:8000 -s rr -p 300 -M 255.255.255.0",
            "-a -t 192.0.2.10:8000 -r 10.0.0.12:8000 -g -w 1",
            "-a -t 192.0.2.10:8000 -r 10.0.0.13:8080 -m -w 1",
        ])
    );
}

/// A backend removed while it still has connections is drained (weight 0) instead of cut, stays so while its
/// connections last, and comes back with an edit (not an add) when it is declared again.
#[test]
fn a_removed_backend_with_connections_is_drained_not_cut() {
    let ns = Netns::new("drain");
    let work = Workdir::new();
    let spec =
        |backends: &[&str]| web(80, "rr", "", backends).replace("drainTimeoutSeconds: 0", "drainTimeoutSeconds: 300");
    let b1 = "{address: 10.0.0.11, port: 8080, weight: 1}";
    // Weight 0: never scheduled, so the test connection lands on b1.
    let b2 = "{address: 10.0.0.12, port: 8080, weight: 0}";
    work.write("web.yaml", &spec(&[b1, b2]));
    work.apply(&ns).expect_code(0);
    knock(&ns, "192.0.2.10", 80);

    work.write("web.yaml", &spec(&[b2]));
    let drain = ["~   TCP 192.0.2.10:80 -> 10.0.0.11:8080 weight 1 -> 0 (drain)"];
    let plan = work.plan(&ns);
    plan.expect_code(2);
    assert_eq!(plan.op_lines(), drain, "{plan}");
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert_eq!(apply.op_lines(), drain, "{apply}");
    assert!(apply.stdout.contains("1 backend(s) draining"), "{apply}");
    let drained = "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 0".to_owned();
    assert!(ns.saved_rules().contains(&drained), "{:?}", ns.saved_rules());

    // Its connection (a SYN that will not be answered) lasts a minute: until then nothing more is to be done.
    let plan = work.plan(&ns);
    plan.expect_code(0);
    assert!(plan.stdout.contains("no changes"), "{plan}");
    work.apply(&ns).expect_code(0);
    assert!(ns.saved_rules().contains(&drained), "a draining backend with connections was deleted");

    work.write("web.yaml", &spec(&[b1, b2]));
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert_eq!(apply.op_lines(), ["~   TCP 192.0.2.10:80 -> 10.0.0.11:8080 weight 0 -> 1"], "{apply}");
    assert!(ns.saved_rules().contains(&"-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 1".to_owned()));
}

/// Services made by another tool are never touched: not by applying, changing, emptying the manifests, nor planning.
#[test]
fn services_of_other_tools_survive_every_pass() {
    let ns = Netns::new("foreign");
    ns.ipvsadm(&["-A", "-t", "192.0.2.99:80", "-s", "rr"]);
    ns.ipvsadm(&["-a", "-t", "192.0.2.99:80", "-r", "10.0.0.99:80", "-m", "-w", "1"]);
    ns.ipvsadm(&["-A", "-f", "99", "-s", "wlc"]);
    ns.ipvsadm(&["-a", "-f", "99", "-r", "10.0.0.98", "-g", "-w", "2"]);
    let foreign = ns.saved_rules();
    assert_eq!(foreign.len(), 4, "{foreign:?}");
    let foreign_now = || -> Vec<String> {
        ns.saved_rules().into_iter().filter(|l| l.contains(" 192.0.2.99:80 ") || l.contains(" -f 99 ")).collect()
    };

    let work = Workdir::new();
    for entry in fs::read_dir(examples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            fs::copy(&path, work.manifests().join(path.file_name().unwrap())).unwrap();
        }
    }
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert_eq!(ns.saved_rules().iter().filter(|l| l.starts_with("-A ")).count(), 2 + 9);
    assert_eq!(foreign_now(), foreign, "apply touched a foreign service");

    // Changes: an edit and a removed file.
    let web = fs::read_to_string(work.manifests().join("web.yaml")).unwrap();
    work.write("web.yaml", &web.replace("scheduler: wlc", "scheduler: rr"));
    work.remove("syslog.yaml");
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert_eq!(
        apply.op_lines(),
        ["- service UDP 198.51.100.14:514", "~ service TCP 192.0.2.10:80 scheduler wlc -> rr"]
    );
    assert_eq!(foreign_now(), foreign, "a changing apply touched a foreign service");

    let plan = work.plan(&ns);
    plan.expect_code(0);
    assert_eq!(foreign_now(), foreign, "plan touched a foreign service");

    // Every manifest gone: everything we own goes, nothing else.
    for entry in fs::read_dir(work.manifests()).unwrap() {
        fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert_eq!(apply.op_lines().len(), 8, "{apply}");
    assert_eq!(ns.saved_rules(), foreign, "emptying the manifests touched a foreign service");
    let plan = work.plan(&ns);
    plan.expect_code(0);
    assert!(plan.stdout.contains("no changes"), "{plan}");
    assert_eq!(ns.saved_rules(), foreign);
}

/// A declared service that already exists (made by hand) is adopted, reconciled to the manifest, and from then on
/// owned: removing its manifest deletes it.
#[test]
fn an_existing_declared_service_is_adopted_then_owned() {
    let ns = Netns::new("adopt");
    ns.ipvsadm(&["-A", "-t", "192.0.2.10:80", "-s", "rr"]);
    ns.ipvsadm(&["-a", "-t", "192.0.2.10:80", "-r", "10.0.0.11:8080", "-m", "-w", "1"]);
    ns.ipvsadm(&["-a", "-t", "192.0.2.10:80", "-r", "10.0.0.19:8080", "-m", "-w", "1"]);
    let work = Workdir::new();
    let backends = ["{address: 10.0.0.11, port: 8080, weight: 3}", "{address: 10.0.0.12, port: 8080, weight: 3}"];
    work.write("web.yaml", &web(80, "wlc", "", &backends));
    let expected_ops = [
        "~ service TCP 192.0.2.10:80 scheduler rr -> wlc",
        "~   TCP 192.0.2.10:80 -> 10.0.0.11:8080 weight 1 -> 3",
        "+   TCP 192.0.2.10:80 -> 10.0.0.12:8080 forward=masq weight=3",
        "-   TCP 192.0.2.10:80 -> 10.0.0.19:8080",
    ];

    let plan = work.plan(&ns);
    plan.expect_code(2);
    assert!(plan.stdout.lines().any(|l| l.starts_with("adopt TCP 192.0.2.10:80 ")), "{plan}");
    assert_eq!(plan.op_lines(), expected_ops, "{plan}");

    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert!(apply.stdout.lines().any(|l| l.starts_with("adopted TCP 192.0.2.10:80 ")), "{apply}");
    assert_eq!(apply.op_lines(), expected_ops, "{apply}");
    assert_eq!(
        ns.saved_rules(),
        sorted(&[
            "-A -t 192.0.2.10:80 -s wlc",
            "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 3",
            "-a -t 192.0.2.10:80 -r 10.0.0.12:8080 -m -w 3",
        ])
    );
    let plan = work.plan(&ns);
    plan.expect_code(0);
    assert!(!plan.stdout.contains("adopt"), "adopted twice: {plan}");

    work.remove("web.yaml");
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert_eq!(apply.op_lines(), ["- service TCP 192.0.2.10:80"], "{apply}");
    assert!(ns.saved_rules().is_empty(), "{:?}", ns.saved_rules());
}

/// `apply` killed with SIGKILL in the middle of a 10,000-operation pass: the next run converges, and the state
/// file remembers every service the killed run may have created (they all go when the manifests are removed).
#[test]
fn kill_9_during_a_large_apply_then_the_next_run_converges() {
    const SERVICES: usize = 1000;
    const BACKENDS: usize = 9;
    const FILES: usize = 10;
    let ns = Netns::new("kill9");
    let work = Workdir::new();
    for file in 0..FILES {
        let mut text = String::new();
        for i in (file * SERVICES / FILES)..((file + 1) * SERVICES / FILES) {
            let (hi, lo) = (i / 250, i % 250);
            text.push_str(&format!(
                "---\napiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: s{i}}}\nspec:\n  \
                 address: 192.168.{hi}.{}\n  port: 80\n  scheduler: rr\n  backends:\n",
                lo + 1
            ));
            for b in 1..=BACKENDS {
                text.push_str(&format!("    - {{address: 10.{}.{lo}.{b}, port: 8080}}\n", hi + 1));
            }
        }
        work.write(&format!("s{file:02}.yaml"), &text);
    }
    let total_ops = SERVICES * (BACKENDS + 1);
    // Every service the manifests declare. The test's own reads confirm these: the kernel's service dump steps over
    // services while another namespace (a test running beside this one) deletes some, and counting a skipped
    // service as not done would blame the converging run.
    let declared: BTreeSet<ServiceKey> = (0..SERVICES)
        .map(|i| ServiceKey::tcp(IpAddr::from([192, 168, (i / 250) as u8, (i % 250 + 1) as u8]), 80))
        .collect();

    let rt = rt();
    let ipvs = rt.block_on(ns.ipvs());
    let manifests = work.manifests();
    let state = work.state();
    let mut child = ns
        .cli_command(&["apply", "-f", path_str(&manifests), "--state", path_str(&state)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill once a quarter of the services are in the kernel: a fixed delay would be too early or too late on a loaded
    // machine.
    let start = Instant::now();
    loop {
        let seen = rt.block_on(ipvs.services()).unwrap().len();
        if seen >= SERVICES / 4 {
            child.kill().unwrap();
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("apply ended ({status}) before it could be killed ({seen} services seen): use more services");
        }
        assert!(start.elapsed() < PATIENCE * 5, "apply made no visible progress");
        sleep(Duration::from_millis(2));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), None, "apply was not killed by the signal: {status}");
    let partial = rt.block_on(ipvs.read_table_confirming(&declared)).unwrap();
    let done = partial.len() + partial.dest_count();
    eprintln!("killed after {done} of {total_ops} operations ({} services)", partial.len());
    assert!(done > 0 && done < total_ops, "the kill was not in the middle: {done} of {total_ops} operations done");
    assert!(state.exists(), "the ownership memory was not written before the kernel was changed");

    // The next run finds the killed run's services already owned (none adopted: the state file was written before
    // the kernel changed) and sends exactly the operations that are missing, all additions.
    let apply = work.apply(&ns);
    apply.expect_code(0);
    assert!(!apply.stdout.contains("adopted"), "the killed run's services were not remembered as owned");
    let ops = apply.op_lines();
    assert_eq!(ops.len(), total_ops - done, "{}", apply.stdout.lines().last().unwrap_or_default());
    assert!(ops.iter().all(|l| l.starts_with("+ ")), "{:?}", ops.iter().find(|l| !l.starts_with("+ ")));
    let plan = work.plan(&ns);
    plan.expect_code(0);
    assert!(plan.stdout.contains("no changes"), "{plan}");
    let table = rt.block_on(ipvs.read_table_confirming(&declared)).unwrap();
    assert_eq!((table.len(), table.dest_count()), (SERVICES, SERVICES * BACKENDS));
    // ipvsadm reads through the same service dump, with nothing to confirm against: a listing that a deletion in
    // another namespace shortened is read again (a service really missing never comes back, and still fails).
    eventually(PATIENCE, "ipvsadm lists every service and backend", || {
        let rules = ns.saved_rules();
        let count = |prefix: &str| rules.iter().filter(|l| l.starts_with(prefix)).count();
        let counts = (count("-A "), count("-a "));
        if counts == (SERVICES, SERVICES * BACKENDS) { Ok(()) } else { Err(format!("{counts:?}")) }
    });

    // All manifests gone: the guard refuses at first, then everything owned goes (the killed run's services too).
    for file in 0..FILES {
        work.remove(&format!("s{file:02}.yaml"));
    }
    let refused = work.apply(&ns);
    refused.expect_code(1);
    assert!(refused.stderr.contains("--allow-mass-delete"), "{refused}");
    assert_eq!(
        rt.block_on(ipvs.read_table_confirming(&declared)).unwrap().len(),
        SERVICES,
        "a refused pass deleted services"
    );
    work.pass(&ns, "apply", &["--allow-mass-delete"]).expect_code(0);
    assert!(ns.saved_rules().is_empty(), "services left behind: {}", ns.saved_rules().len());
}

/// `run` keeps the kernel in line: it repairs changes made behind its back, follows manifest edits, and on SIGTERM
/// exits 0 leaving the table as it is.
#[test]
fn run_repairs_drift_follows_edits_and_leaves_the_table_on_sigterm() {
    let ns = Netns::new("run");
    let work = Workdir::new();
    work.write("a.yaml", &simple("a", "192.0.2.10", "rr", &[("10.0.0.11", 8080, 2), ("10.0.0.12", 8080, 2)]));
    work.write("b.yaml", &simple("b", "192.0.2.20", "wlc", &[("10.0.0.21", 80, 1), ("10.0.0.22", 80, 1)]));
    let programmed = sorted(&[
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 2",
        "-a -t 192.0.2.10:80 -r 10.0.0.12:8080 -m -w 2",
        "-A -t 192.0.2.20:80 -s wlc",
        "-a -t 192.0.2.20:80 -r 10.0.0.21:80 -m -w 1",
        "-a -t 192.0.2.20:80 -r 10.0.0.22:80 -m -w 1",
    ]);
    let manifests = work.manifests();
    let state = work.state();
    let log = fs::File::create(work.path("run.log")).unwrap();
    let child = ns
        .cli_command(&[
            "run",
            "--manifests",
            path_str(&manifests),
            "--state",
            path_str(&state),
            "--resync-seconds",
            "2",
            "--quiet-ms",
            "100",
        ])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    let child = guard.0.as_mut().unwrap();
    let log_text = || fs::read_to_string(work.path("run.log")).unwrap_or_default();
    let mut table_is = |want: &Vec<String>| {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("run exited on its own ({status})\n{}", log_text());
        }
        let rules = ns.saved_rules();
        if &rules == want { Ok(()) } else { Err(format!("{}\n--- run log\n{}", rules.join("\n"), log_text())) }
    };

    eventually(PATIENCE, "run programs the table", || table_is(&programmed));

    // Drift: an owned backend edited, another deleted, behind the program's back. A resync may come between the two
    // commands or right after them, so the drift itself is not looked at; the repairs show in the log.
    ns.ipvsadm(&["-e", "-t", "192.0.2.10:80", "-r", "10.0.0.11:8080", "-m", "-w", "7"]);
    ns.ipvsadm(&["-d", "-t", "192.0.2.20:80", "-r", "10.0.0.22:80"]);
    let repairs = [
        "~   TCP 192.0.2.10:80 -> 10.0.0.11:8080 weight 7 -> 2",
        "+   TCP 192.0.2.20:80 -> 10.0.0.22:80 forward=masq weight=1",
    ];
    eventually(PATIENCE, "run repairs the drift", || {
        table_is(&programmed)?;
        let log = log_text();
        match repairs.iter().find(|r| !log.lines().any(|l| l == **r)) {
            Some(missing) => Err(format!("repair {missing:?} not in the run log:\n{log}")),
            None => Ok(()),
        }
    });

    // A manifest edit: the kernel follows.
    work.write(
        "a.yaml",
        &simple("a", "192.0.2.10", "rr", &[("10.0.0.11", 8080, 2), ("10.0.0.12", 8080, 4), ("10.0.0.13", 8080, 1)]),
    );
    let edited = sorted(&[
        "-A -t 192.0.2.10:80 -s rr",
        "-a -t 192.0.2.10:80 -r 10.0.0.11:8080 -m -w 2",
        "-a -t 192.0.2.10:80 -r 10.0.0.12:8080 -m -w 4",
        "-a -t 192.0.2.10:80 -r 10.0.0.13:8080 -m -w 1",
        "-A -t 192.0.2.20:80 -s wlc",
        "-a -t 192.0.2.20:80 -r 10.0.0.21:80 -m -w 1",
        "-a -t 192.0.2.20:80 -r 10.0.0.22:80 -m -w 1",
    ]);
    eventually(PATIENCE, "run follows the manifest edit", || table_is(&edited));

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut exit = None;
    eventually(PATIENCE, "run exits on SIGTERM", || match child.try_wait().unwrap() {
        Some(status) => {
            exit = Some(status);
            Ok(())
        }
        None => Err(log_text()),
    });
    let exit = exit.unwrap();
    assert_eq!(exit.code(), Some(0), "run did not exit cleanly on SIGTERM\n{}", log_text());
    assert_eq!(ns.saved_rules(), edited, "SIGTERM changed the table");
}

/// A bad file next to good ones: the good services are applied, the bad file is named with its field, and the run
/// fails (exit 1).
#[test]
fn a_bad_file_is_reported_and_the_good_ones_are_applied() {
    let ns = Netns::new("badfile");
    let work = Workdir::new();
    let good = simple("one", "192.0.2.21", "rr", &[("10.0.0.21", 80, 1)])
        + &simple("two", "192.0.2.22", "rr", &[("10.0.0.22", 80, 1)]);
    work.write("good.yaml", &good);
    work.write("bad.yaml", &simple("bad", "192.0.2.23", "rr", &[("10.0.0.23", 80, -5)]));
    work.write("broken.yaml", "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nspec: [address: 192.0.2.24\n");

    let apply = work.apply(&ns);
    apply.expect_code(1);
    let bad_line = apply.stderr.lines().find(|l| l.contains("bad.yaml")).unwrap_or_else(|| panic!("{apply}"));
    assert!(bad_line.contains("spec.backends[0].weight"), "the field is not named: {bad_line}");
    assert!(bad_line.contains("bad.yaml#0 (default/bad): "), "the document is not named by where and what: {bad_line}");
    assert!(apply.stderr.lines().any(|l| l.contains("broken.yaml")), "{apply}");
    assert_eq!(
        ns.saved_rules(),
        sorted(&[
            "-A -t 192.0.2.21:80 -s rr",
            "-a -t 192.0.2.21:80 -r 10.0.0.21:80 -m -w 1",
            "-A -t 192.0.2.22:80 -s rr",
            "-a -t 192.0.2.22:80 -r 10.0.0.22:80 -m -w 1",
        ])
    );
    let plan = work.plan(&ns);
    plan.expect_code(1);
}

/// A service already applied whose object turns invalid is frozen as it is (not deleted) and reported as held,
/// while the other services still follow their manifests; fixing the object releases it.
#[test]
fn an_applied_service_whose_object_turns_invalid_is_held_not_deleted() {
    let ns = Netns::new("frozen");
    let work = Workdir::new();
    work.write("one.yaml", &simple("one", "192.0.2.21", "rr", &[("10.0.0.21", 80, 1)]));
    work.write("two.yaml", &simple("two", "192.0.2.22", "rr", &[("10.0.0.22", 80, 1)]));
    work.apply(&ns).expect_code(0);
    let two_before = rules_with(&ns, "192.0.2.22:80");
    assert_eq!(two_before.len(), 2);

    work.write("one.yaml", &simple("one", "192.0.2.21", "wlc", &[("10.0.0.21", 80, 1)]));
    work.write("two.yaml", &simple("two", "192.0.2.22", "wlc", &[("10.0.0.22", 80, -5)]));
    let apply = work.apply(&ns);
    apply.expect_code(1);
    assert!(apply.stderr.lines().any(|l| l.contains("two.yaml") && l.contains("spec.backends[0].weight")), "{apply}");
    assert!(apply.stderr.lines().any(|l| l.starts_with("held: TCP 192.0.2.22:80")), "{apply}");
    assert_eq!(apply.op_lines(), ["~ service TCP 192.0.2.21:80 scheduler rr -> wlc"], "{apply}");
    assert_eq!(rules_with(&ns, "192.0.2.22:80"), two_before, "the frozen service changed");

    // A file that no longer parses at all names no service: no service is deleted while it is broken.
    work.write("two.yaml", "spec: {address: [\n");
    let apply = work.apply(&ns);
    apply.expect_code(1);
    assert_eq!(rules_with(&ns, "192.0.2.22:80"), two_before, "a service was deleted because its file broke");

    work.write("two.yaml", &simple("two", "192.0.2.22", "wlc", &[("10.0.0.22", 80, 4)]));
    work.apply(&ns).expect_code(0);
    assert_eq!(
        rules_with(&ns, "192.0.2.22:80"),
        sorted(&["-A -t 192.0.2.22:80 -s wlc", "-a -t 192.0.2.22:80 -r 10.0.0.22:80 -m -w 4"])
    );
}

/// A table built with ipvsadm, exported with `dump -o yaml` and applied to another namespace, is the same table.
#[test]
fn a_table_made_by_ipvsadm_imports_through_dump_yaml() {
    let source = Netns::new("import-src");
    for args in [
        "-A -t 192.0.2.1:80 -s wlc",
        "-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 1",
        "-a -t 192.0.2.1:80 -r 10.0.0.2:8080 -m -w 3 -x 100 -y 10",
        "-A -u 192.0.2.1:53 -s rr -o",
        "-a -u 192.0.2.1:53 -r 10.0.0.4:53 -m -w 2",
        "-A -t 192.0.2.2:443 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0",
        "-a -t 192.0.2.2:443 -r 10.0.0.5 -g -w 1",
        "-a -t 192.0.2.2:443 -r 10.0.0.6 -g -w 2",
        "-A -u 192.0.2.4:5060 -s rr -p 60 --pe sip",
        "-a -u 192.0.2.4:5060 -r 10.0.0.7:5060 -m -w 1",
        "-A -t [2001:db8::1]:80 -s mh -b mh-port -p 120 -M 64",
        "-a -t [2001:db8::1]:80 -r [2001:db8::10]:8080 -m -w 5",
        "-A -f 42 -s rr -p 600",
        "-a -f 42 -r 10.0.0.8 -g -w 1",
        "-a -f 42 -r 10.0.0.9 -i -w 1 --tun-type gue --tun-port 6080 --tun-remcsum",
        "-A -f 7 -6 -s lc",
        "-a -f 7 -6 -r 2001:db8::11 -g -w 1",
        "-A --sctp-service 192.0.2.5:3868 -s rr",
        "-a --sctp-service 192.0.2.5:3868 -r 10.0.0.10:3868 -m",
    ] {
        source.ipvsadm(&args.split(' ').collect::<Vec<_>>());
    }
    let work = Workdir::new();
    let dump = source.cli_run(&["dump", "-o", "yaml"]);
    dump.expect_code(0);
    assert!(!dump.stderr.contains("not exported"), "{dump}");
    work.write("imported.yaml", &dump.stdout);

    let target = Netns::new("import-dst");
    let apply = work.apply(&target);
    apply.expect_code(0);
    assert_eq!(target.saved_rules(), source.saved_rules());
    assert_eq!(target.ipvsadm(&["-Ln", "--thresholds"]), source.ipvsadm(&["-Ln", "--thresholds"]));
    assert_eq!(target.ipvsadm(&["-Ln", "--tun-info"]), source.ipvsadm(&["-Ln", "--tun-info"]));
    assert_eq!(target.saved_rules().iter().filter(|l| l.starts_with("-A ")).count(), 8);
}

/// `plan` in a namespace that does not exist fails with exit 1 and one readable line naming it.
#[test]
fn plan_in_a_missing_netns_fails_with_one_readable_line() {
    require_vm();
    let work = Workdir::new();
    let examples = examples_dir();
    let state = work.state();
    let name = format!("no-such-netns-{}", std::process::id());
    let out = Command::new(binary())
        .args(["--netns", &name, "plan", "-f", path_str(&examples), "--state", path_str(&state)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr}");
    assert!(lines[0].contains(&name), "the namespace is not named: {}", lines[0]);
    let parts: Vec<&str> = lines[0].split(": ").collect();
    let mut unique = parts.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), parts.len(), "the message repeats itself: {}", lines[0]);
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(!state.exists(), "a failed plan wrote the state file");
}
