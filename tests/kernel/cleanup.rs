//! `cleanup` against the real kernel: it removes exactly what `apply` made (services, VIPs, the sync daemon it
//! started, `ipvs0` when it made it and nothing else is on it) and leaves a foreign IPVS service, a foreign address
//! on `ipvs0`, a foreign interface and a foreign daemon; `--dry-run` changes nothing; it refuses while a `run`
//! holds the state file and goes on with `--force`; a state file of the format written before cleanup existed is
//! cleaned up with its meaning, and one of a newer format stops `cleanup` and `run` before they change anything.

use std::fs;
use std::process::Command;
use std::time::Duration;

use crate::support::{CliRun, KillOnDrop, Netns, Workdir, eventually, path_str, sorted};

/// How long an asynchronous effect may take before the test fails (the VM emulates its CPU; this only turns a hang
/// into a failure).
const PATIENCE: Duration = Duration::from_secs(60);

/// A VirtualService for TCP `vip`:80, or UDP `vip`:53 for an IPv6 `vip`, with one backend in the routed ranges.
fn service(name: &str, vip: &str) -> String {
    let (protocol, port, backend) =
        if vip.contains(':') { ("UDP", 53, "2001:db8:1::1") } else { ("TCP", 80, "172.16.0.1") };
    format!(
        "---\napiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  address: {vip}\n  \
         port: {port}\n  protocol: {protocol}\n  scheduler: rr\n  backends:\n    - {{address: {backend}, port: {port}}}\n"
    )
}

/// `cleanup --state STATE EXTRA...` in `ns`.
fn cleanup(ns: &Netns, work: &Workdir, extra: &[&str]) -> CliRun {
    let state = work.state();
    let mut args = vec!["cleanup", "--state", path_str(&state)];
    args.extend_from_slice(extra);
    ns.cli_run(&args)
}

/// Everything `cleanup` could change, as the reference tools show it: the IPVS rules, every address of every
/// interface, the sync daemons, and the state file.
fn node(ns: &Netns, work: &Workdir) -> (Vec<String>, String, String, Option<String>) {
    let addresses = ns.exec("ip", &["-o", "addr", "show"]);
    let daemons = ns.ipvsadm(&["-L", "--daemon"]);
    let state = fs::read_to_string(work.state()).ok();
    (ns.saved_rules(), String::from_utf8_lossy(&addresses.stdout).into_owned(), daemons, state)
}

/// Whether `dev` exists in `ns`.
fn has_link(ns: &Netns, dev: &str) -> bool {
    ns.exec("ip", &["link", "show", dev]).status.success()
}

/// The non-link-local addresses of `dev`, as `ADDR/PREFIX`, sorted.
fn addresses(ns: &Netns, dev: &str) -> Vec<String> {
    let mut out: Vec<String> = ns
        .addresses_of(dev)
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace().skip_while(|w| *w != "inet" && *w != "inet6");
            words.next()?;
            words.next().map(str::to_owned)
        })
        .filter(|addr| !addr.starts_with("fe80:"))
        .collect();
    out.sort();
    out
}

#[test]
fn cleanup_removes_exactly_what_apply_made_and_a_dry_run_changes_nothing() {
    let ns = Netns::new("cleanup");
    // A link for the sync daemons (veth: multicast-capable).
    let peer = Netns::new("cleanup-peer");
    ns.veth("s0", "10.74.0.1/24", &peer, "s0", "10.74.0.2/24");
    let work = Workdir::new();
    work.write("web.yaml", &service("web", "192.0.2.60"));
    work.write("dns.yaml", &service("dns", "2001:db8::60"));
    let config = work.path("director.yaml");
    fs::write(&config, "syncDaemons: [{state: Master, interface: s0, syncId: 5}]\n").unwrap();
    let apply = work.pass(&ns, "apply", &["--director-config", path_str(&config)]).expect_code(0).clone();
    assert!(apply.stdout.contains("started sync daemon Master on s0 id 5"), "{apply}");
    assert_eq!(addresses(&ns, "ipvs0"), ["192.0.2.60/32", "2001:db8::60/128"], "{apply}");

    // Someone else's service, address on ipvs0, interface and sync daemon.
    ns.ipvsadm(&["-A", "-t", "192.0.2.61:80", "-s", "rr"]);
    ns.ip(&["addr", "add", "192.0.2.99/32", "dev", "ipvs0"]);
    ns.ip(&["link", "add", "other0", "type", "dummy"]);
    ns.ip(&["addr", "add", "192.0.2.98/32", "dev", "other0"]);
    ns.ipvsadm(&["--start-daemon", "backup", "--mcast-interface", "s0", "--syncid", "3"]);
    let before = node(&ns, &work);
    assert!(before.2.contains("master sync daemon") && before.2.contains("backup sync daemon"), "{}", before.2);

    let dry = cleanup(&ns, &work, &["--dry-run"]).expect_code(0).clone();
    for line in [
        "would remove service TCP 192.0.2.60:80",
        "would remove service UDP [2001:db8::60]:53",
        "would remove address 192.0.2.60/32 from ipvs0",
        "would remove address 2001:db8::60/128 from ipvs0",
        "would stop sync daemon Master on s0 id 5",
        "kept interface ipvs0: it holds addresses this program did not add (192.0.2.99)",
        "left alone: 1 IPVS service(s) this program did not make",
        &format!("would remove state file {}", work.state().display()),
    ] {
        assert!(dry.stdout.lines().any(|l| l == line), "missing {line:?}\n{dry}");
    }
    assert!(!dry.stdout.contains("61") && !dry.stdout.contains(".98") && !dry.stdout.contains("id 3"), "{dry}");
    assert_eq!(node(&ns, &work), before, "a dry run changes nothing, the state file included");

    let done = cleanup(&ns, &work, &[]).expect_code(0).clone();
    for line in [
        "removed service TCP 192.0.2.60:80",
        "removed service UDP [2001:db8::60]:53",
        "removed address 192.0.2.60/32 from ipvs0",
        "removed address 2001:db8::60/128 from ipvs0",
        "stopped sync daemon Master on s0 id 5",
        "kept interface ipvs0: it holds addresses this program did not add (192.0.2.99)",
        &format!("removed state file {}", work.state().display()),
    ] {
        assert!(done.stdout.lines().any(|l| l == line), "missing {line:?}\n{done}");
    }
    assert_eq!(ns.saved_rules(), sorted(&["-A -t 192.0.2.61:80 -s rr"]), "only the foreign service is left");
    assert_eq!(addresses(&ns, "ipvs0"), ["192.0.2.99/32"], "the foreign address stays, and so does ipvs0");
    assert_eq!(addresses(&ns, "other0"), ["192.0.2.98/32"], "the foreign interface is untouched");
    let daemons = ns.ipvsadm(&["-L", "--daemon"]);
    assert!(!daemons.contains("master sync daemon") && daemons.contains("syncid=3"), "{daemons}");
    assert!(!work.state().exists(), "the state file is removed");
    assert!(!work.path("state.json.lock").exists(), "the lock file goes with it");

    let again = cleanup(&ns, &work, &[]).expect_code(0).clone();
    assert!(again.stdout.starts_with("nothing to clean up"), "{again}");
}

#[test]
fn the_vip_interface_goes_only_when_this_program_made_it() {
    // Made by apply: removed once our addresses are gone (the kernel's link-local address does not count).
    let ns = Netns::new("cleanup-made");
    ns.ip(&["link", "add", "other0", "type", "dummy"]);
    let work = Workdir::new();
    work.write("web.yaml", &service("web", "192.0.2.62"));
    work.apply(&ns).expect_code(0);
    assert!(has_link(&ns, "ipvs0"));
    let done = cleanup(&ns, &work, &[]).expect_code(0).clone();
    assert!(done.stdout.contains("removed interface ipvs0 (made by this program, nothing else on it)"), "{done}");
    assert!(!has_link(&ns, "ipvs0"), "{done}");
    assert!(has_link(&ns, "other0"), "a foreign interface stays");
    assert!(ns.saved_rules().is_empty());

    // There before apply: someone else's, left (emptied of our address only).
    let ns = Netns::new("cleanup-found");
    ns.ip(&["link", "add", "ipvs0", "type", "dummy"]);
    ns.ip(&["link", "set", "ipvs0", "up"]);
    let work = Workdir::new();
    work.write("web.yaml", &service("web", "192.0.2.63"));
    work.apply(&ns).expect_code(0);
    assert_eq!(addresses(&ns, "ipvs0"), ["192.0.2.63/32"]);
    let done = cleanup(&ns, &work, &[]).expect_code(0).clone();
    assert!(done.stdout.contains("removed address 192.0.2.63/32 from ipvs0"), "{done}");
    assert!(!done.stdout.contains("interface"), "{done}");
    assert!(has_link(&ns, "ipvs0"), "not made by this program: left");
    assert!(addresses(&ns, "ipvs0").is_empty());
}

#[test]
fn cleanup_refuses_while_run_holds_the_state_file_and_goes_on_with_force() {
    let ns = Netns::new("cleanup-lock");
    let work = Workdir::new();
    work.write("web.yaml", &service("web", "192.0.2.64"));
    let (manifests, state) = (work.manifests(), work.state());
    // A long resync: nothing but this test's steps should make the run act while they go on.
    let run_args = [
        "run",
        "--manifests",
        path_str(&manifests),
        "--state",
        path_str(&state),
        "--quiet-ms",
        "100",
        "--resync-seconds",
        "600",
    ];
    let log = fs::File::create(work.path("run.log")).unwrap();
    let child = ns.cli_command(&run_args).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap();
    let pid = child.id();
    let mut guard = KillOnDrop(Some(child));
    let log_text = || fs::read_to_string(work.path("run.log")).unwrap_or_default();
    let programmed = sorted(&["-A -t 192.0.2.64:80 -s rr", "-a -t 192.0.2.64:80 -r 172.16.0.1:80 -m -w 1"]);
    eventually(PATIENCE, "run programs the table", || {
        let rules = ns.saved_rules();
        if rules == programmed { Ok(()) } else { Err(format!("{rules:?}\n--- run log\n{}", log_text())) }
    });

    let holder = format!("is in use by a running ipvs-reconciler run, pid {pid}");
    let refused = cleanup(&ns, &work, &[]).expect_code(1).clone();
    assert!(refused.stderr.contains(&format!("state file {} {holder}", state.display())), "{refused}");
    assert!(refused.stderr.contains("or pass --force"), "{refused}");
    assert_eq!(ns.saved_rules(), programmed, "a refused cleanup removes nothing");

    // A second `run` on the same state file, and an `apply`, are refused too.
    let second = ns.cli_run(&run_args).expect_code(1).clone();
    assert!(second.stderr.contains(&holder) && second.stderr.contains("its own --state"), "{second}");
    let apply = work.apply(&ns).expect_code(1).clone();
    assert!(apply.stderr.contains(&holder), "{apply}");
    // plan only reads: it works beside the run.
    work.plan(&ns).expect_code(0);

    let forced = cleanup(&ns, &work, &["--force"]).expect_code(0).clone();
    assert!(forced.stderr.contains("cleaning up anyway (--force)"), "{forced}");
    assert!(forced.stdout.contains("removed service TCP 192.0.2.64:80"), "{forced}");
    assert!(forced.stdout.contains("removed interface ipvs0"), "{forced}");
    assert!(!ns.saved_rules().iter().any(|l| l.contains("192.0.2.64")), "{forced}");

    // Once the run has stopped, its lock is gone with it: what it put back in the meantime (if anything) goes
    // without --force.
    let child = guard.0.as_mut().unwrap();
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
    eventually(PATIENCE, "run exits on SIGTERM", || match child.try_wait() {
        Ok(Some(_)) => Ok(()),
        other => Err(format!("{other:?}")),
    });
    cleanup(&ns, &work, &[]).expect_code(0);
    assert!(ns.saved_rules().is_empty(), "{:?}", ns.saved_rules());
}

#[test]
fn a_state_file_written_before_cleanup_existed_is_cleaned_up_with_its_meaning() {
    let ns = Netns::new("cleanup-v1");
    let work = Workdir::new();
    // tests/fixtures/state/v1.json owns TCP 192.0.2.10:80, UDP [2001:db8::53]:53, SCTP 192.0.2.11:0 (persistent)
    // and fwmark 42 (IPv4), and added 192.0.2.10, 192.0.2.11 and 2001:db8::53 to ipvs0 (which it did not record
    // as made); its sync daemons are not running here.
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state/v1.json");
    fs::copy(fixture, work.state()).unwrap();
    for rule in [
        &["-A", "-t", "192.0.2.10:80", "-s", "wlc"][..],
        &["-A", "-u", "[2001:db8::53]:53", "-s", "wlc"],
        &["-A", "--sctp-service", "192.0.2.11:0", "-s", "wlc", "-p", "300"],
        &["-A", "-f", "42", "-s", "wlc"],
        &["-A", "-t", "192.0.2.12:80", "-s", "wlc"],
    ] {
        ns.ipvsadm(rule);
    }
    ns.ip(&["link", "add", "ipvs0", "type", "dummy"]);
    ns.ip(&["link", "set", "ipvs0", "up"]);
    for addr in ["192.0.2.10/32", "192.0.2.11/32", "192.0.2.12/32"] {
        ns.ip(&["addr", "add", addr, "dev", "ipvs0"]);
    }
    ns.ip(&["-6", "addr", "add", "2001:db8::53/128", "dev", "ipvs0", "nodad"]);

    let done = cleanup(&ns, &work, &[]).expect_code(0).clone();
    for line in [
        "removed service TCP 192.0.2.10:80",
        "removed service SCTP 192.0.2.11:0",
        "removed service UDP [2001:db8::53]:53",
        "removed address 192.0.2.10/32 from ipvs0",
        "removed address 192.0.2.11/32 from ipvs0",
        "removed address 2001:db8::53/128 from ipvs0",
        "forgot sync daemon Master: no longer running as this program started it",
        "forgot sync daemon Backup: no longer running as this program started it",
    ] {
        assert!(done.stdout.lines().any(|l| l == line), "missing {line:?}\n{done}");
    }
    assert!(done.stdout.lines().any(|l| l == "removed service FWM 42"), "{done}");
    assert_eq!(ns.saved_rules(), sorted(&["-A -t 192.0.2.12:80 -s wlc"]));
    assert_eq!(addresses(&ns, "ipvs0"), ["192.0.2.12/32"]);
    assert!(!work.state().exists());
}

#[test]
fn a_state_file_of_a_newer_format_stops_cleanup_and_run_before_they_change_anything() {
    let ns = Netns::new("cleanup-new");
    let work = Workdir::new();
    work.write("web.yaml", &service("web", "192.0.2.65"));
    work.apply(&ns).expect_code(0);
    // What a newer binary might write: this one knows neither the format nor its shape.
    let newer = r#"{"version": 2, "owned": {"by_object": {}}, "interfaces": []}"#;
    fs::write(work.state(), newer).unwrap();
    work.remove("web.yaml");
    let before = node(&ns, &work);

    let message = format!("state file {} has format 2; this binary reads formats up to 1", work.state().display());
    for run in [
        cleanup(&ns, &work, &[]),
        cleanup(&ns, &work, &["--dry-run"]),
        ns.cli_run(&["run", "--manifests", path_str(&work.manifests()), "--state", path_str(&work.state())]),
        work.apply(&ns),
    ] {
        run.expect_code(1);
        assert!(run.stderr.contains(&message), "{run}");
    }
    assert_eq!(node(&ns, &work), before, "nothing changed, the state file included");
}
