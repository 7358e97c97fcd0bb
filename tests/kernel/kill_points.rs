//! kill -9 at random points of a large `apply` and of a `run` pass after a change: the next start converges, no
//! foreign entry changes, no VIP is left that nobody owns, and the state file says what the kernel holds (issue 21).
//!
//! Each mode first measures one unkilled run (which must pass the same checks), then kills `IPVS_KILL_POINTS` runs
//! (default 1: each point is two 3,000-service passes, about 45 s of VM time) at a delay drawn uniformly over that measured duration, each in a fresh namespace that holds foreign
//! IPVS services (made with ipvsadm) and foreign addresses (on `ipvs0` made beforehand in odd trials, on another
//! interface in every trial). The draws come from `IPVS_KILL_SEED` (default: from the clock), printed with every
//! point, so a failing point is replayed with the same seed (and at least as many points). A trial's violations are
//! collected and the test fails at the end with all of them: a full run (`tests/faults --kind kill --budget N`)
//! reports every failing point, not the first.
//!
//! `engine::kill_9_during_a_large_apply_then_the_next_run_converges` kills one apply at a chosen point (a quarter of
//! the services made) and checks the operation count of the next run; this module spreads the point over the whole
//! run (before the first change, between a state save and its kernel change, during address changes, after the
//! last) and over `run`'s change passes, which add, edit and delete services and addresses.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use ipvs_reconciler::engine::ownership::Ownership;
use ipvs_reconciler::model::ServiceKey;

use crate::support::{CliRun, KillOnDrop, Netns, path_str};

/// Services declared by each version of the manifests.
const SERVICES: usize = 3000;
/// Manifest files the services are spread over.
const FILES: usize = 10;
/// How long a pass or an exit may take before the test gives up. Generous: a 3,000-service pass on the VM's
/// emulated CPU takes tens of seconds; the bound only turns a hang into a failure, it measures nothing.
const PATIENCE: Duration = Duration::from_secs(900);

/// A scratch directory (manifests, state file, logs) on a filesystem of the VM's own: the VM's `/tmp` is the
/// host's, over 9p, where inotify never reports the guest's own changes, so `run` would see a change only at its
/// next resync (measured: not at all within ten minutes with `--resync-seconds 3600`).
struct Workdir {
    dir: tempfile::TempDir,
}

impl Workdir {
    fn new() -> Workdir {
        let local = Path::new("/dev/shm");
        let dir = if local.is_dir() { tempfile::tempdir_in(local) } else { tempfile::tempdir() };
        let dir = dir.expect("temporary directory");
        fs::create_dir(dir.path().join("manifests")).expect("create the manifest directory");
        Workdir { dir }
    }

    fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `COMMAND -f MANIFESTS --state STATE` (plan or apply) in `ns`.
    fn pass(&self, ns: &Netns, command: &str) -> CliRun {
        let (manifests, state) = (self.manifests(), self.state());
        ns.cli_run(&[command, "-f", path_str(&manifests), "--state", path_str(&state)])
    }

    fn plan(&self, ns: &Netns) -> CliRun {
        self.pass(ns, "plan")
    }

    fn apply(&self, ns: &Netns) -> CliRun {
        self.pass(ns, "apply")
    }
}

// ------------------------------------------------------------------------------------------- the manifests

/// The two versions of the manifests: `V1` is applied (or made by `run`'s first pass); `V2` is the change a `run`
/// pass is killed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One declared TCP service.
struct Declared {
    /// The VIP's number (names the object).
    v: usize,
    vip: IpAddr,
    port: u16,
    scheduler: &'static str,
    bind: bool,
    backends: Vec<(IpAddr, u16, u32)>,
}

/// VIP number `v`: IPv4 in 198.18.0.0/15, every 50th an IPv6 address (its /128 path).
fn vip(v: usize) -> IpAddr {
    if v % 50 == 7 {
        format!("2001:db8:18::{:x}", v + 1).parse().unwrap()
    } else {
        IpAddr::from([198, 18, (v / 250) as u8, (v % 250 + 1) as u8])
    }
}

/// Backend `b` of VIP `v`, of the VIP's family.
fn backend(v: usize, b: u8) -> IpAddr {
    if v % 50 == 7 {
        format!("fd00::a:{v:x}:{b}").parse().unwrap()
    } else {
        IpAddr::from([10, (1 + v / 250) as u8, (v % 250) as u8, b])
    }
}

/// What `version` declares: two services (ports 80 and 443) on each of 1,500 VIPs, every tenth VIP with
/// `bindAddress: false`. V2 deletes a sixth of V1's VIPs (500 services, their addresses), replaces a backend and
/// changes weights on another sixth, the scheduler on another, and adds 250 new VIPs (500 services): a pass that
/// does every kind of operation, under the mass-delete guard's limit.
fn declared(version: Version) -> Vec<Declared> {
    let vips: Vec<usize> = match version {
        Version::V1 => (0..1500).collect(),
        Version::V2 => (0..1750).filter(|v| *v >= 1500 || v % 6 != 1).collect(),
    };
    let mut out = Vec::with_capacity(SERVICES);
    for v in vips {
        for port in [80, 443] {
            let edited = version == Version::V2 && v < 1500;
            let backends = if edited && v % 6 == 2 {
                vec![(backend(v, 1), 8080, 3), (backend(v, 3), 8080, 1)]
            } else {
                vec![(backend(v, 1), 8080, 1 + u32::from(port == 443)), (backend(v, 2), 8080, 1)]
            };
            out.push(Declared {
                v,
                vip: vip(v),
                port,
                scheduler: if edited && v % 6 == 3 { "wlc" } else { "rr" },
                bind: v % 10 != 9,
                backends,
            });
        }
    }
    assert_eq!(out.len(), SERVICES);
    out
}

/// `address:port` as ipvsadm writes it (IPv6 in brackets).
fn socket(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// Writes `version`'s manifests (replacing the files of another version: the same names, so that `run` sees edits).
fn write_manifests(work: &Workdir, version: Version) {
    let mut files = vec![String::new(); FILES];
    for (i, s) in declared(version).iter().enumerate() {
        let text = &mut files[(i / 2) % FILES];
        let _ = write!(
            text,
            "---\napiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: vs-{}-{}}}\nspec:\n  address: \
             \"{}\"\n  port: {}\n  scheduler: {}\n  drainTimeoutSeconds: 0\n",
            s.v, s.port, s.vip, s.port, s.scheduler
        );
        if !s.bind {
            text.push_str("  bindAddress: false\n");
        }
        text.push_str("  backends:\n");
        for (addr, port, weight) in &s.backends {
            let _ = writeln!(text, "    - {{address: \"{addr}\", port: {port}, weight: {weight}}}");
        }
    }
    // Each file is written beside the directory and renamed in: `run` never reads a half-written file.
    for (n, text) in files.iter().enumerate() {
        let staged = work.path("staged.yaml");
        fs::write(&staged, text).unwrap();
        fs::rename(&staged, work.manifests().join(format!("s{n:02}.yaml"))).unwrap();
    }
}

/// The `ipvsadm -Sn` lines of `version`'s services.
fn desired_rules(version: Version) -> Vec<String> {
    let mut lines = Vec::new();
    for s in declared(version) {
        let service = socket(s.vip, s.port);
        lines.push(format!("-A -t {service} -s {}", s.scheduler));
        for (addr, port, weight) in &s.backends {
            lines.push(format!("-a -t {service} -r {} -m -w {weight}", socket(*addr, *port)));
        }
    }
    lines
}

/// The VIPs `version` asks to be bound.
fn bound_vips(version: Version) -> BTreeSet<IpAddr> {
    declared(version).iter().filter(|s| s.bind).map(|s| s.vip).collect()
}

// -------------------------------------------------------------------------------------------- foreign entries

/// What was in the namespace before the program first ran, to be found byte for byte unchanged.
struct Foreign {
    /// The whole `ipvsadm -Sn` listing (sorted) before the program ran: only foreign services.
    rules: Vec<String>,
    /// `ip -o addr` lines of every interface but `ipvs0`.
    elsewhere: Vec<String>,
    /// `ip -o addr` lines of `ipvs0` (when it was made beforehand).
    on_ipvs0: Vec<String>,
    /// Their addresses.
    ipvs0_addrs: BTreeSet<IpAddr>,
}

/// Makes foreign IPVS services (TCP, fwmark, UDP on a declared VIP, IPv6) and foreign addresses: on another
/// interface (one of them a declared VIP: used there, never bound again on ipvs0), and, with `ipvs0_first`,
/// on an `ipvs0` made beforehand (one a declared VIP: used, never adopted).
fn add_foreign(ns: &Netns, ipvs0_first: bool) -> Foreign {
    for args in [
        &["-A", "-t", "192.0.2.99:80", "-s", "rr"][..],
        &["-a", "-t", "192.0.2.99:80", "-r", "10.0.0.99:80", "-m", "-w", "1"],
        &["-A", "-f", "99", "-s", "wlc"],
        &["-a", "-f", "99", "-r", "10.0.0.98", "-g", "-w", "2"],
        &["-A", "-u", "198.18.0.1:53", "-s", "sh"],
        &["-a", "-u", "198.18.0.1:53", "-r", "10.0.0.97:53", "-m", "-w", "5"],
        &["-A", "-t", "[2001:db8::99]:80", "-s", "rr"],
        &["-a", "-t", "[2001:db8::99]:80", "-r", "[fd00::99]:80", "-m", "-w", "3"],
    ] {
        ns.ipvsadm(args);
    }
    ns.ip(&["link", "add", "other0", "type", "dummy"]);
    ns.ip(&["link", "set", "other0", "up"]);
    ns.ip(&["addr", "add", "192.0.2.98/32", "dev", "other0"]);
    ns.ip(&["addr", "add", "198.18.0.3/32", "dev", "other0"]);
    if ipvs0_first {
        ns.ip(&["link", "add", "ipvs0", "type", "dummy"]);
        ns.ip(&["link", "set", "ipvs0", "up"]);
        ns.ip(&["addr", "add", "192.0.2.99/32", "dev", "ipvs0"]);
        ns.ip(&["addr", "add", "198.18.0.1/32", "dev", "ipvs0"]);
        ns.ip(&["-6", "addr", "add", "2001:db8::99/128", "dev", "ipvs0", "nodad"]);
    }
    let (on_ipvs0, elsewhere) = address_lines(ns);
    let rules = ns.saved_rules();
    assert_eq!(rules.len(), 8, "{rules:?}");
    Foreign {
        rules,
        elsewhere,
        ipvs0_addrs: on_ipvs0.iter().filter_map(|l| line_addr(l).map(|a| a.0)).collect(),
        on_ipvs0,
    }
}

/// `ip -o addr` of the namespace, split into `ipvs0`'s lines and the others'; the kernel's IPv6 link-local
/// addresses are left out (an interface gets one when it comes up; they are nobody's VIP).
fn address_lines(ns: &Netns) -> (Vec<String>, Vec<String>) {
    let out = ns.exec("ip", &["-o", "addr", "show"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (mut ipvs0, mut others) = (Vec::new(), Vec::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if line.contains(" fe80:") {
            continue;
        }
        if line.split_whitespace().nth(1) == Some("ipvs0") {
            ipvs0.push(line.to_owned())
        } else {
            others.push(line.to_owned())
        }
    }
    ipvs0.sort();
    others.sort();
    (ipvs0, others)
}

/// The address and prefix length of one `ip -o addr` line.
fn line_addr(line: &str) -> Option<(IpAddr, u8)> {
    let cidr = line.split_whitespace().nth(3)?;
    let (addr, len) = cidr.split_once('/')?;
    Some((addr.parse().ok()?, len.parse().ok()?))
}

/// `ipvs0`'s interface index, when it exists.
fn ipvs0_index(ns: &Netns) -> Option<u32> {
    let out = ns.exec("ip", &["-o", "link", "show", "dev", "ipvs0"]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).split(':').next()?.trim().parse().ok()
}

// --------------------------------------------------------------------------------------------- the checks

/// Everything a converged start must leave, as a list of violations (empty: all good).
fn check_converged(ns: &Netns, work: &Workdir, foreign: &Foreign, version: Version, ipvs0_first: bool) -> Vec<String> {
    let mut bad = Vec::new();

    // The kernel's table is exactly the desired one beside the foreign one. ipvsadm's dump may step over services
    // while another namespace is torn down (the kernel resumes a dump by a position counted over every namespace);
    // a listing that is short is read again, a service really missing stays missing.
    let mut want = desired_rules(version);
    want.extend(foreign.rules.iter().cloned());
    want.sort();
    let mut rules = ns.saved_rules();
    for _ in 0..5 {
        if rules == want {
            break;
        }
        sleep(Duration::from_millis(500));
        rules = ns.saved_rules();
    }
    if rules != want {
        let have: BTreeSet<&String> = rules.iter().collect();
        let wanted: BTreeSet<&String> = want.iter().collect();
        let missing: Vec<&&String> = wanted.difference(&have).take(10).collect();
        let extra: Vec<&&String> = have.difference(&wanted).take(10).collect();
        bad.push(format!(
            "the table is not the desired one beside the foreign one: {} rules, {} wanted; missing (first 10) \
             {missing:?}; unexpected (first 10) {extra:?}",
            rules.len(),
            want.len()
        ));
    }
    let foreign_now: Vec<&String> = rules.iter().filter(|l| foreign.rules.contains(l)).collect();
    if foreign_now.len() != foreign.rules.len() {
        bad.push(format!(
            "a foreign service or destination changed: before {:?}, after {foreign_now:?}",
            foreign.rules
        ));
    }

    // Addresses: other interfaces byte for byte; on ipvs0 the foreign ones byte for byte, and besides them only
    // the desired VIPs, each as a host prefix.
    let (on_ipvs0, elsewhere) = address_lines(ns);
    if elsewhere != foreign.elsewhere {
        bad.push(format!("another interface's addresses changed: before {:?}, after {elsewhere:?}", foreign.elsewhere));
    }
    for line in &foreign.on_ipvs0 {
        if !on_ipvs0.contains(line) {
            bad.push(format!("a foreign address on ipvs0 changed or went: {line}"));
        }
    }
    // A desired VIP the node already has on another interface is used there, never bound again on ipvs0 (nor
    // owned): only the others are wanted on ipvs0.
    let node_addrs: BTreeSet<IpAddr> = foreign.elsewhere.iter().filter_map(|l| line_addr(l)).map(|(a, _)| a).collect();
    let wanted_vips: BTreeSet<IpAddr> = bound_vips(version).difference(&node_addrs).copied().collect();
    let mut listed = BTreeSet::new();
    for line in &on_ipvs0 {
        let Some((addr, len)) = line_addr(line) else {
            bad.push(format!("unreadable ipvs0 address line: {line}"));
            continue;
        };
        listed.insert(addr);
        if foreign.ipvs0_addrs.contains(&addr) {
            continue;
        }
        if !wanted_vips.contains(&addr) {
            bad.push(format!("{addr} is on ipvs0 but neither desired nor foreign: a VIP nobody owns"));
        } else if len != if addr.is_ipv4() { 32 } else { 128 } {
            bad.push(format!("VIP {addr} is on ipvs0 as /{len}, not a host prefix"));
        }
    }
    let missing_vips: Vec<&IpAddr> = wanted_vips.difference(&listed).collect();
    if !missing_vips.is_empty() {
        bad.push(format!("desired VIPs not on ipvs0: {missing_vips:?}"));
    }

    // The state file: readable, and it owns exactly the desired services and the VIPs it added.
    match Ownership::load(&work.state()) {
        Err(e) => bad.push(format!("the state file is unreadable: {e}")),
        Ok(own) => {
            let keys: BTreeSet<ServiceKey> = declared(version).iter().map(|s| ServiceKey::tcp(s.vip, s.port)).collect();
            if own.owned != keys {
                let extra: Vec<_> = own.owned.difference(&keys).take(10).collect();
                let missing: Vec<_> = keys.difference(&own.owned).take(10).collect();
                bad.push(format!(
                    "state owns other services than the desired ones: extra {extra:?}, missing {missing:?}"
                ));
            }
            let added: BTreeSet<IpAddr> = wanted_vips.difference(&foreign.ipvs0_addrs).copied().collect();
            if own.vips.addrs != added {
                let extra: Vec<_> = own.vips.addrs.difference(&added).take(10).collect();
                let missing: Vec<_> = added.difference(&own.vips.addrs).take(10).collect();
                bad.push(format!("state owns other VIPs than those it added: extra {extra:?}, missing {missing:?}"));
            }
            if own.vips.interface.as_deref() != Some("ipvs0") {
                bad.push(format!("state names VIP interface {:?}", own.vips.interface));
            }
            if !own.drains.is_empty() {
                bad.push(format!("state keeps {} drains with drainTimeoutSeconds 0", own.drains.len()));
            }
            // An ipvs0 made beforehand is someone else's; one the program made is recorded with its index, except
            // after a kill between making it and saving that (documented in `engine::vip_pass`: it is then left
            // in place by cleanup, never removed wrongly), which is not a violation.
            let index = ipvs0_index(ns);
            match (ipvs0_first, own.vips.created) {
                (true, Some(i)) => bad.push(format!("state says it made ipvs0 (index {i}), which existed before")),
                (false, Some(i)) if Some(i) != index => {
                    bad.push(format!("state says it made ipvs0 with index {i}; ipvs0 has index {index:?}"));
                }
                (false, None) => eprintln!("  note: ipvs0 made by a killed run is not recorded as made (documented)"),
                _ => {}
            }
        }
    }
    let leftovers: Vec<String> = fs::read_dir(work.state().parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with(".state.json.tmp"))
        .collect();
    if !leftovers.is_empty() {
        bad.push(format!("temporary state files left beside the state file: {leftovers:?}"));
    }

    // Nothing more to do.
    let plan = work.plan(ns);
    if plan.code != Some(0) || !plan.stdout.contains("no changes") {
        let ops = plan.op_lines();
        bad.push(format!(
            "plan after the converging start: exit {:?}, {} operations (first: {:?}); stderr {}",
            plan.code,
            ops.len(),
            ops.iter().take(5).collect::<Vec<_>>(),
            plan.stderr.lines().last().unwrap_or_default()
        ));
    }
    bad
}

// ------------------------------------------------------------------------------------------ the kill points

/// splitmix64: a tiny seeded generator, so that a printed seed replays the same points without a dependency.
fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Where in the measured run trial `k` of `mode` kills, as a fraction in [0, 1): a function of the seed, the mode
/// and `k` alone, so that one point is replayed by its seed whatever the other points were.
fn fraction(seed: u64, mode: u64, k: u64) -> f64 {
    (splitmix(seed ^ splitmix(mode ^ splitmix(k))) >> 11) as f64 / (1u64 << 53) as f64
}

/// The number of kill points and the seed, from the environment; the seed is printed so a failure can be replayed.
fn settings(mode: &str) -> (u64, u64) {
    let points = std::env::var("IPVS_KILL_POINTS").ok().map_or(1, |v| v.parse().expect("IPVS_KILL_POINTS: a number"));
    let seed = match std::env::var("IPVS_KILL_SEED") {
        Ok(v) => v.parse().expect("IPVS_KILL_SEED: a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    };
    eprintln!("kill_points {mode}: {points} points, IPVS_KILL_SEED={seed}");
    (points, seed)
}

/// Waits for `child` to end, for at most `limit`; kills it and panics otherwise.
fn wait_exit(child: &mut KillOnDrop, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    let process = child.0.as_mut().unwrap();
    loop {
        if let Some(status) = process.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "{what}: not ended within {limit:?}");
        sleep(Duration::from_millis(20));
    }
}

/// The outcome of every trial of one mode, and the failure naming each bad point.
#[derive(Default)]
struct Tally {
    killed: usize,
    finished_first: usize,
    violations: Vec<String>,
}

impl Tally {
    fn record(&mut self, point: &str, bad: Vec<String>) {
        if bad.is_empty() {
            eprintln!("  {point}: converged");
        }
        for b in bad {
            eprintln!("  {point}: VIOLATION {b}");
            self.violations.push(format!("{point}: {b}"));
        }
    }

    #[track_caller]
    fn finish(self, mode: &str, points: u64, seed: u64, calibrated: Duration, started: Instant) {
        eprintln!(
            "kill_points {mode}: {points} points (seed {seed}, unkilled run {:.1} s): {} killed, {} finished before \
             the kill, {} violations, {:.0} s in all",
            calibrated.as_secs_f64(),
            self.killed,
            self.finished_first,
            self.violations.len(),
            started.elapsed().as_secs_f64()
        );
        assert!(self.violations.is_empty(), "{} violations:\n{}", self.violations.len(), self.violations.join("\n"));
    }
}

/// A fresh namespace with foreign entries (`ipvs0` made beforehand in odd trials) and V1's manifests.
fn trial_setup(tag: &str, k: u64) -> (Netns, Workdir, Foreign, bool) {
    let ns = Netns::new(tag);
    let ipvs0_first = k % 2 == 1;
    let foreign = add_foreign(&ns, ipvs0_first);
    let work = Workdir::new();
    write_manifests(&work, Version::V1);
    (ns, work, foreign, ipvs0_first)
}

/// Empties the namespace's IPVS table before the namespace goes, so that its deletion (asynchronous, in the
/// kernel) has no services to tear down while the next trial's dumps run.
fn clear(ns: &Netns) {
    ns.ipvsadm(&["-C"]);
}

/// kill -9 at random points of `apply` of 3,000 services (with their VIPs) from an empty table: the next `apply`
/// converges, adopts nothing (the killed run saved what it made before making it), and leaves the foreign entries.
#[test]
fn kill_9_at_random_points_of_a_large_apply_then_the_next_apply_converges() {
    let started = Instant::now();
    let (points, seed) = settings("apply");
    let mut tally = Tally::default();
    let mut calibrated = Duration::ZERO;
    // Trial 0 is the unkilled run that measures the duration the points are drawn over.
    for k in 0..=points {
        let (ns, work, foreign, ipvs0_first) = trial_setup("kill-apply", k);
        let manifests = work.manifests();
        let state = work.state();
        let log = fs::File::create(work.path("killed.log")).unwrap();
        let spawned = Instant::now();
        let mut child = KillOnDrop(Some(
            ns.cli_command(&["apply", "-f", path_str(&manifests), "--state", path_str(&state)])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        ));
        let point = if k == 0 {
            let status = wait_exit(&mut child, PATIENCE, "the unkilled apply");
            calibrated = spawned.elapsed();
            assert_eq!(status.code(), Some(0), "the unkilled apply failed: {}", read(&work.path("killed.log")));
            format!("apply unkilled ({:.1} s, ipvs0 made before: {ipvs0_first})", calibrated.as_secs_f64())
        } else {
            let f = fraction(seed, 1, k);
            let delay = calibrated.mul_f64(f);
            sleep(delay.saturating_sub(spawned.elapsed()));
            let _ = child.0.as_mut().unwrap().kill();
            let status = wait_exit(&mut child, PATIENCE, "the killed apply");
            if status.code().is_none() {
                tally.killed += 1
            } else {
                tally.finished_first += 1
            }
            format!(
                "apply point {k} (seed {seed}, at {f:.4} of the run = {:.2} s, {}, ipvs0 made before: {ipvs0_first})",
                delay.as_secs_f64(),
                if status.code().is_none() { "killed".to_owned() } else { format!("ended first: {status}") }
            )
        };
        eprintln!("{point}");
        let mut bad = Vec::new();
        if k > 0 {
            let again = work.apply(&ns);
            if again.code != Some(0) {
                bad.push(format!("the next apply failed: {again}"));
            }
            if again.stdout.contains("adopted") {
                bad.push("the next apply adopted services the killed one made: they were not saved first".to_owned());
            }
        }
        bad.extend(check_converged(&ns, &work, &foreign, Version::V1, ipvs0_first));
        tally.record(&point, bad);
        clear(&ns);
    }
    tally.finish("apply", points, seed, calibrated, started);
}

/// Starts `run` over `work`'s manifests, its log (JSON lines) in `log`.
fn start_run(ns: &Netns, work: &Workdir, log: &str) -> KillOnDrop {
    let manifests = work.manifests();
    let state = work.state();
    let file = fs::File::create(work.path(log)).unwrap();
    KillOnDrop(Some(
        ns.cli_command(&[
            "--log-format",
            "json",
            "run",
            "--manifests",
            path_str(&manifests),
            "--state",
            path_str(&state),
            // No resync within a trial: every pass after the first is the change's.
            "--resync-seconds",
            "3600",
            "--quiet-ms",
            "100",
        ])
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap(),
    ))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// The log lines of completed passes (`reconciled`), in order.
fn passes(work: &Workdir, log: &str) -> Vec<String> {
    read(&work.path(log)).lines().filter(|l| l.contains("\"reconciled\"")).map(str::to_owned).collect()
}

/// Waits until `run`'s log shows `count` completed passes; panics if it exits first or takes longer than the
/// patience.
fn wait_passes(child: &mut KillOnDrop, work: &Workdir, log: &str, count: usize) -> Vec<String> {
    let start = Instant::now();
    loop {
        let seen = passes(work, log);
        if seen.len() >= count {
            return seen;
        }
        if let Some(status) = child.0.as_mut().unwrap().try_wait().unwrap() {
            panic!("run ended ({status}) before pass {count}:\n{}", read(&work.path(log)));
        }
        assert!(start.elapsed() < PATIENCE, "run made no pass {count} within {PATIENCE:?}:\n{}", read(&work.path(log)));
        sleep(Duration::from_millis(20));
    }
}

/// Whether a `reconciled` line reports no failed operation.
fn clean(pass: &str) -> bool {
    pass.contains("\"failed\":0,") || pass.contains("\"failed\":0}")
}

/// Ends `run` with SIGTERM, as an operator would, and returns its exit code.
fn terminate(child: &mut KillOnDrop) -> Option<i32> {
    let pid = child.0.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    wait_exit(child, PATIENCE, "run after SIGTERM").code()
}

/// kill -9 at random points of `run`'s pass after a change (V1 to V2: services and VIPs added, edited, deleted),
/// measured from the change: the next `run`'s first pass converges to V2.
#[test]
fn kill_9_at_random_points_of_a_run_pass_then_the_next_run_converges() {
    let started = Instant::now();
    let (points, seed) = settings("run");
    let mut tally = Tally::default();
    let mut calibrated = Duration::ZERO;
    for k in 0..=points {
        let (ns, work, foreign, ipvs0_first) = trial_setup("kill-run", k);
        let mut child = start_run(&ns, &work, "first.log");
        let first = wait_passes(&mut child, &work, "first.log", 1);
        assert!(clean(&first[0]), "run's first pass failed: {}", read(&work.path("first.log")));
        write_manifests(&work, Version::V2);
        let changed = Instant::now();
        let point = if k == 0 {
            // Measured to the end of the first pass after the change (the files are renamed in within the quiet
            // period, so that pass normally takes them all).
            let seen = wait_passes(&mut child, &work, "first.log", 2);
            calibrated = changed.elapsed();
            assert!(clean(&seen[1]), "the unkilled change pass failed: {}", read(&work.path("first.log")));
            let _ = child.0.as_mut().unwrap().kill();
            format!("run unkilled (change pass {:.1} s, ipvs0 made before: {ipvs0_first})", calibrated.as_secs_f64())
        } else {
            let f = fraction(seed, 2, k);
            let delay = calibrated.mul_f64(f);
            sleep(delay.saturating_sub(changed.elapsed()));
            let _ = child.0.as_mut().unwrap().kill();
            tally.killed += 1;
            let during = passes(&work, "first.log").len() - 1;
            format!(
                "run point {k} (seed {seed}, at {f:.4} of the change pass = {:.2} s, {during} change passes done, \
                 ipvs0 made before: {ipvs0_first})",
                delay.as_secs_f64()
            )
        };
        let status = wait_exit(&mut child, PATIENCE, "the killed run");
        assert_eq!(status.code(), None, "run was not ended by the signal: {status}");
        eprintln!("{point}");

        // The next start: run to its first completed pass, then SIGTERM.
        let mut bad = Vec::new();
        let mut again = start_run(&ns, &work, "next.log");
        let seen = wait_passes(&mut again, &work, "next.log", 1);
        if !clean(&seen[0]) {
            bad.push(format!("the next run's first pass failed operations: {}", seen[0]));
        }
        let code = terminate(&mut again);
        if code != Some(0) {
            bad.push(format!("the next run exited {code:?} on SIGTERM: {}", read(&work.path("next.log"))));
        }
        if read(&work.path("next.log")).contains("adopting") {
            bad.push("the next run adopted services the killed one made: they were not saved first".to_owned());
        }
        bad.extend(check_converged(&ns, &work, &foreign, Version::V2, ipvs0_first));
        tally.record(&point, bad);
        clear(&ns);
    }
    tally.finish("run", points, seed, calibrated, started);
}
