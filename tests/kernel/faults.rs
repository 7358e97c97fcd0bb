//! Injected netlink and state-file faults against the real kernel (issue 21): a faulted pass aborts or fails
//! naming what failed, without a delete the fault caused and without touching another program's service; the next
//! pass converges. The host sweep over every request index is `tests/fault_sweep.rs`; this is the same on the
//! kernel, through the client's fault layer (`ipvs::faults`: an error reply, ENOBUFS, the socket closed mid-batch,
//! a dump cut short), at `IPVS_FAULT_POINTS` random message indices per kind (default 2; `tests/faults --kind
//! netlink --budget N` runs N). The draws come from `IPVS_FAULT_SEED` (default: the clock), printed, so a failing
//! point replays.
//!
//! The state file: a full disk (a 64 KiB tmpfs) while `apply` saves, a read-only state directory, and an empty,
//! truncated, corrupt or missing file, all through the CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ipvs_reconciler::engine::ownership::Ownership;
use ipvs_reconciler::engine::{Engine, PassOptions};
use ipvs_reconciler::ipvs::faults::{Faults, NetlinkFault};
use ipvs_reconciler::ipvs::{ConnectOptions, Ipvs, NetnsSpec};
use ipvs_reconciler::model::{DestConfig, DestKey, Destination, ObjectId, Service, ServiceConfig, ServiceKey, Table};
use ipvs_reconciler::table::{DesiredService, DesiredTable};

use crate::support::{Netns, Workdir, path_str, rt, run_ok};

// ------------------------------------------------------------------------------------------- netlink faults

fn svc(last: u8) -> ServiceKey {
    ServiceKey::tcp(IpAddr::from([192, 0, 2, last]), 80)
}

fn dest(last: u8) -> DestKey {
    DestKey::new(IpAddr::from([10, 0, 0, last]), 80)
}

fn declared(key: ServiceKey, scheduler: &str, dests: &[(u8, u32)]) -> (ServiceKey, Arc<DesiredService>) {
    let service = DesiredService {
        service: Service::new(key, ServiceConfig::new(key.family(), scheduler)),
        dests: dests.iter().map(|&(d, w)| (dest(d), Destination::new(dest(d), DestConfig::masquerade(w)))).collect(),
        drain_timeout_secs: 0,
        origin: ObjectId::Kubernetes { namespace: "default".into(), name: format!("vs-{key}") },
        health: None,
        bind_address: false,
        withdraw_address_when_down: false,
    };
    (key, Arc::new(service))
}

/// Before: 1, 2, 3, 4. After (the faulted pass): 1 edited (a weight, a backend out, two in), 2 gone, 3 as it was,
/// 4 with another scheduler, 5 and 6 new.
fn before() -> DesiredTable {
    DesiredTable {
        services: [
            declared(svc(1), "wlc", &[(1, 1), (2, 1), (7, 1)]),
            declared(svc(2), "rr", &[(1, 1), (2, 2)]),
            declared(svc(3), "rr", &[(3, 2)]),
            declared(svc(4), "rr", &[(1, 1), (4, 1)]),
        ]
        .into(),
    }
}

fn after() -> DesiredTable {
    DesiredTable {
        services: [
            declared(svc(1), "wlc", &[(1, 5), (3, 1), (5, 1), (7, 1)]),
            declared(svc(3), "rr", &[(3, 2)]),
            declared(svc(4), "sh", &[(1, 1), (4, 1)]),
            declared(svc(5), "wrr", &[(4, 1), (5, 2), (6, 3)]),
            declared(svc(6), "rr", &[(6, 1)]),
        ]
        .into(),
    }
}

/// An empty table with another program's service in it.
const FOREIGN: &str =
    "ipvsadm -C && ipvsadm -A -t 192.0.2.9:80 -s rr && ipvsadm -a -t 192.0.2.9:80 -r 10.0.0.9:80 -m -w 7";

/// A table's configuration without counters: service config and its destinations' configs.
type Shape = BTreeMap<ServiceKey, (ServiceConfig, BTreeMap<DestKey, DestConfig>)>;

fn shape(table: &Table) -> Shape {
    table
        .services
        .iter()
        .map(|(k, e)| (*k, (e.service.config.clone(), e.dests.iter().map(|(d, v)| (*d, v.config)).collect())))
        .collect()
}

/// xorshift64 from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn points() -> usize {
    std::env::var("IPVS_FAULT_POINTS").ok().and_then(|v| v.parse().ok()).unwrap_or(2)
}

fn seed() -> u64 {
    std::env::var("IPVS_FAULT_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
    })
}

struct Bench {
    ns: Netns,
    dir: tempfile::TempDir,
}

impl Bench {
    fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn options(&self, sockets: usize, timeout: Duration) -> ConnectOptions {
        ConnectOptions {
            netns: NetnsSpec::Path(self.ns.path()),
            sockets,
            reply_timeout: timeout,
            ..ConnectOptions::default()
        }
    }

    async fn clean(&self) -> Ipvs {
        Ipvs::connect_with(self.options(2, Duration::from_secs(30))).await.expect("connect")
    }

    /// The table as a clean client reads it.
    async fn shape(&self) -> Shape {
        shape(&self.clean().await.read_table().await.expect("read the table"))
    }

    fn foreign_rules(&self) -> Vec<String> {
        self.ns.saved_rules().into_iter().filter(|l| l.contains("192.0.2.9:80")).collect()
    }

    /// Empties the table, puts the foreign service back, forgets the state, and makes `before()` with a clean pass.
    async fn reset(&self) {
        let out = self.ns.exec("sh", &["-c", FOREIGN]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let _ = std::fs::remove_file(self.state());
        let mut engine = Engine::new(self.clean().await, self.state()).expect("engine");
        let report = engine.reconcile_full(&before(), 0, &PassOptions::default()).await.expect("the first pass");
        assert!(report.is_success(), "the first pass failed: {:?}", report.failures);
    }
}

/// One kind's sweep: `IPVS_FAULT_POINTS` faults drawn by `draw` at random message indices of the pass from
/// `before()` to `after()`; every law checked at each. Prints the figures `tests/faults` records.
fn sweep(kind: &str, draw: impl Fn(&mut Rng) -> NetlinkFault) {
    let bench = Bench { ns: Netns::new(&format!("f-{kind}")), dir: tempfile::tempdir().unwrap() };
    let seed = seed();
    let mut rng = Rng(seed | 1);
    let rt = rt();
    let foreign = rt.block_on(async {
        bench.reset().await;
        bench.foreign_rules()
    });
    assert_eq!(foreign.len(), 2, "{foreign:?}");

    // The fault-free pass: how many messages it sends, and the table it ends with.
    let (messages, before_shape, converged) = rt.block_on(async {
        let before_shape = bench.shape().await;
        let counter = Arc::new(Faults::none());
        let ipvs = Ipvs::connect_with_faults(bench.options(1, Duration::from_secs(30)), Arc::clone(&counter))
            .await
            .expect("connect");
        let mut engine = Engine::new(ipvs, bench.state()).unwrap();
        let report = engine.reconcile_full(&after(), 0, &PassOptions::default()).await.unwrap();
        assert!(report.is_success(), "{:?}", report.failures);
        (counter.sent(), before_shape, bench.shape().await)
    });
    let declared: BTreeSet<ServiceKey> = after().services.keys().copied().collect();
    assert!(converged.keys().copied().collect::<BTreeSet<_>>().is_superset(&declared));

    let mut violations = Vec::new();
    let mut passes = 0;
    for point in 0..points() {
        let at = rng.below(messages as u64 + 2) as usize;
        let fault = draw(&mut rng);
        let sockets = [1, 4][rng.below(2) as usize];
        let restart = rng.below(2) == 0;
        let label =
            format!("{kind} point {point} (seed {seed}): {fault:?} at message {at} of {messages}, {sockets} socket(s)");
        let found = rt.block_on(one(&bench, at, fault, sockets, restart, &foreign, &before_shape, &converged));
        passes += 2;
        println!("{label}: {}", if found.is_empty() { "ok".to_owned() } else { found.join("; ") });
        violations.extend(found.into_iter().map(|v| format!("{label}: {v}")));
    }
    println!(
        "fault sweep (kernel): kind={kind} seed={seed} points={} passes={passes} violations={}",
        points(),
        violations.len()
    );
    assert!(violations.is_empty(), "{} violations:\n{}", violations.len(), violations.join("\n"));
}

#[allow(clippy::too_many_arguments)]
async fn one(
    bench: &Bench,
    at: usize,
    fault: NetlinkFault,
    sockets: usize,
    restart: bool,
    foreign: &[String],
    before_shape: &Shape,
    converged: &Shape,
) -> Vec<String> {
    let mut v = Vec::new();
    bench.reset().await;
    let faults = Arc::new(Faults::at(at, fault));
    // A short silence bound: a dump cut without DONE is waited for this long.
    let ipvs = Ipvs::connect_with_faults(bench.options(sockets, Duration::from_secs(3)), Arc::clone(&faults))
        .await
        .expect("connect");
    let mut engine = Engine::new(ipvs, bench.state()).unwrap();
    let outcome = engine.reconcile_full(&after(), 0, &PassOptions::default()).await;
    let fired = faults.fired();
    let now = bench.shape().await;

    // 1. nothing foreign
    if bench.foreign_rules() != foreign {
        v.push(format!("1 foreign changed: {:?}", bench.foreign_rules()));
    }
    // 2. nothing deleted that the fault-free pass keeps
    for (key, (_, dests)) in before_shape {
        let Some((_, kept)) = converged.get(key) else { continue };
        match now.get(key) {
            None => v.push(format!("2 service {key} deleted")),
            Some((_, have)) => {
                for d in dests.keys().filter(|d| kept.contains_key(d) && !have.contains_key(d)) {
                    v.push(format!("2 destination {d} of {key} deleted"));
                }
            }
        }
    }
    // 3. a failure names what failed; a success is the declared table
    let exempt = fired.iter().any(|f| {
        matches!(f.fault, NetlinkFault::CutDump { done: true, .. })
            || (matches!(f.fault, NetlinkFault::Refuse { errno } if errno == libc::ENOENT)
                && f.request.contains("Dest"))
    });
    match &outcome {
        Err(e) => {
            let text = e.to_string();
            if !(text.contains("read-") || text.contains("get-service") || text.contains("TCP 192.0.2.")) {
                v.push(format!("3 error names no request: {text}"));
            }
        }
        Ok(report) if report.is_success() => {
            if now != *converged && !exempt {
                v.push(format!("3 success without convergence (fired {fired:?})"));
            }
        }
        Ok(report) => {
            for f in &report.failures {
                let text = f.error.to_string();
                if !text.contains(&f.op.service_key().to_string()) {
                    v.push(format!("3 failure of {} does not name it: {text}", f.op));
                }
            }
        }
    }
    // 4. nothing of ours unknown to the state file
    match Ownership::load(&bench.state()) {
        Err(e) => v.push(format!("4 state unreadable: {e}")),
        Ok(state) => {
            for key in now.keys().filter(|k| **k != svc(9) && !state.owned.contains(k)) {
                v.push(format!("4 {key} in the kernel, not in the state file"));
            }
        }
    }
    // 5. the next pass converges, by a restart or over a new connection
    let clean = bench.clean().await;
    let mut engine = if restart {
        drop(engine);
        Engine::new(clean, bench.state()).unwrap()
    } else {
        engine.replace_kernel(clean);
        engine
    };
    match engine.reconcile_full(&after(), 1, &PassOptions::default()).await {
        Err(e) => v.push(format!("5 next pass failed: {e}")),
        Ok(report) if !report.is_success() => v.push(format!("5 next pass failures: {:?}", report.failures)),
        Ok(_) => {}
    }
    if bench.shape().await != *converged {
        v.push(format!("5 not converged: {:?}", bench.shape().await));
    }
    if bench.foreign_rules() != foreign {
        v.push(format!("5 foreign changed: {:?}", bench.foreign_rules()));
    }
    let declared: BTreeSet<ServiceKey> = after().services.keys().copied().collect();
    if engine.ownership().owned != declared {
        v.push(format!("5 owns {:?}", engine.ownership().owned));
    }
    match engine.plan_only(&after(), 1, &PassOptions::default()).await {
        Ok(plan) if plan.ops.is_empty() => {}
        other => v.push(format!("5 a plan after convergence: {other:?}")),
    }
    if fired.is_empty() && at < faults.sent() {
        v.push("the fault never fired".into());
    }
    v
}

const ERRNOS: [i32; 5] = [libc::EINVAL, libc::EEXIST, libc::ENOENT, libc::ENOBUFS, libc::ENOMEM];

/// The kernel refuses the N-th message (EINVAL, EEXIST, ENOENT, ENOBUFS, ENOMEM).
#[test]
fn netlink_error_replies() {
    sweep("refuse", |rng| NetlinkFault::Refuse { errno: ERRNOS[rng.below(ERRNOS.len() as u64) as usize] });
}

/// The receive buffer overflows (ENOBUFS on `recvmsg`) after 0 to 2 replies to the N-th message.
#[test]
fn netlink_enobufs() {
    sweep("overrun", |rng| NetlinkFault::Overrun { keep: rng.below(3) as usize });
}

/// The socket closes with the N-th message in flight: it and the rest of its datagram are carried out, unanswered.
#[test]
fn netlink_socket_closed_mid_batch() {
    sweep("close", |_| NetlinkFault::Close);
}

/// The N-th message's dump ends after 0 to 3 replies, with an early DONE or never.
#[test]
fn netlink_dump_cut_short() {
    sweep("cut", |rng| NetlinkFault::CutDump { keep: rng.below(4) as usize, done: rng.below(2) == 0 });
}

// ------------------------------------------------------------------------------------------ state-file faults

/// A small tmpfs mounted for the test, unmounted when it ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        run_ok("mount", &["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs", path_str(at)]);
        Tmpfs(at.to_owned())
    }

    fn remount(&self, option: &str) {
        run_ok("mount", &["-o", &format!("remount,{option}"), path_str(&self.0)]);
    }

    /// Fills it: a file written until the device is full.
    fn fill(&self) {
        let out = Command::new("dd")
            .args(["if=/dev/zero", &format!("of={}", self.0.join("filler").display()), "bs=4k"])
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"), "{out:?}");
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }

    /// Names in it other than the state, its lock and the filler (temporaries a save left).
    fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !["state.json", "state.json.lock", "filler"].contains(&n.as_str()))
            .collect()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// A VirtualService document: TCP `vip`:80, one masquerading backend of `weight`.
fn manifest(name: &str, vip: &str, weight: u32) -> String {
    format!(
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  address: {vip}\n  \
         port: 80\n  scheduler: rr\n  drainTimeoutSeconds: 0\n  backends:\n    - {{address: 10.0.0.1, port: 80, weight: \
         {weight}}}\n"
    )
}

/// `apply` of the work directory's manifests with the state file `state`.
fn apply(ns: &Netns, work: &Workdir, state: &Path) -> crate::support::CliRun {
    ns.cli_run(&["apply", "-f", path_str(&work.manifests()), "--state", path_str(state)])
}

fn foreign_setup(ns: &Netns) -> Vec<String> {
    ns.ipvsadm(&["-A", "-t", "192.0.2.9:80", "-s", "rr"]);
    ns.ipvsadm(&["-a", "-t", "192.0.2.9:80", "-r", "10.0.0.9:80", "-m", "-w", "7"]);
    ns.saved_rules()
}

/// A disk that fills up: `apply` of a new service fails naming the state file, changes nothing in the kernel,
/// leaves the previous state file whole and no temporary; an edit that needs no new memory still goes through; once
/// there is room, the next `apply` converges and remembers both services.
#[test]
fn a_full_disk_while_saving_fails_naming_the_file_and_changes_nothing() {
    let ns = Netns::new("diskfull");
    let work = Workdir::new();
    let disk = Tmpfs::mount(&work.path("state"), "64k");
    let state = work.path("state/state.json");
    let foreign = foreign_setup(&ns);
    work.write("a.yaml", &manifest("a", "192.0.2.1", 1));
    apply(&ns, &work, &state).expect_code(0);
    let first = ns.saved_rules();
    let saved = std::fs::read_to_string(&state).unwrap();

    disk.fill();
    work.write("b.yaml", &manifest("b", "192.0.2.2", 1));
    let full = apply(&ns, &work, &state);
    assert_ne!(full.code, Some(0), "{full}");
    assert!(full.stderr.contains(&format!("state file {}", state.display())), "{full}");
    assert!(full.stderr.contains("No space left on device"), "{full}");
    assert_eq!(ns.saved_rules(), first, "the kernel changed although its memory could not be saved");
    assert_eq!(std::fs::read_to_string(&state).unwrap(), saved, "the previous state file is whole");
    assert!(disk.leftovers().is_empty(), "{:?}", disk.leftovers());

    // A weight edit needs no new memory: it goes through on the full disk.
    work.remove("b.yaml");
    work.write("a.yaml", &manifest("a", "192.0.2.1", 3));
    apply(&ns, &work, &state).expect_code(0);
    assert!(
        ns.saved_rules().contains(&"-a -t 192.0.2.1:80 -r 10.0.0.1:80 -m -w 3".to_owned()),
        "{:?}",
        ns.saved_rules()
    );

    disk.free();
    work.write("b.yaml", &manifest("b", "192.0.2.2", 1));
    apply(&ns, &work, &state).expect_code(0);
    let owned = Ownership::load(&state).unwrap().owned;
    assert_eq!(owned, [svc(1), svc(2)].into());
    let rules = ns.saved_rules();
    assert!(rules.contains(&"-A -t 192.0.2.2:80 -s rr".to_owned()), "{rules:?}");
    for line in foreign.iter().filter(|l| l.contains("192.0.2.9")) {
        assert!(rules.contains(line), "foreign {line} changed: {rules:?}");
    }
}

/// A read-only state directory: `apply` is refused naming the state file (its lock cannot be made), the kernel is
/// unchanged; writable again, `apply` converges.
#[test]
fn a_read_only_state_directory_is_refused_naming_the_file() {
    let ns = Netns::new("rostate");
    let work = Workdir::new();
    let disk = Tmpfs::mount(&work.path("state"), "64k");
    let state = work.path("state/state.json");
    foreign_setup(&ns);
    work.write("a.yaml", &manifest("a", "192.0.2.1", 1));
    apply(&ns, &work, &state).expect_code(0);
    let first = ns.saved_rules();

    disk.remount("ro");
    work.write("b.yaml", &manifest("b", "192.0.2.2", 1));
    let refused = apply(&ns, &work, &state);
    assert_ne!(refused.code, Some(0), "{refused}");
    assert!(refused.stderr.contains(&format!("state file {}", state.display())), "{refused}");
    assert!(refused.stderr.contains("Read-only file system"), "{refused}");
    assert_eq!(ns.saved_rules(), first);

    disk.remount("rw");
    apply(&ns, &work, &state).expect_code(0);
    assert_eq!(Ownership::load(&state).unwrap().owned, [svc(1), svc(2)].into());
}

/// An empty, truncated, corrupt or binary state file stops `plan` and `apply` with an error naming it; the kernel
/// and the file are left as they were. A missing file is a first run: declared services found in the kernel are
/// adopted, and an owned service no longer declared is left in place (nobody knows it is ours: leaked, never
/// deleted).
#[test]
fn a_broken_state_file_stops_apply_and_a_missing_one_forgets_without_deleting() {
    let ns = Netns::new("badstate");
    let work = Workdir::new();
    let state = work.state();
    foreign_setup(&ns);
    work.write("a.yaml", &manifest("a", "192.0.2.1", 1));
    work.write("b.yaml", &manifest("b", "192.0.2.2", 1));
    work.apply(&ns).expect_code(0);
    let rules = ns.saved_rules();
    let whole = std::fs::read(&state).unwrap();
    work.remove("b.yaml");

    let cases: [(&str, Vec<u8>); 4] = [
        ("empty", Vec::new()),
        ("truncated", whole[..whole.len() / 2].to_vec()),
        ("corrupt", b"{\"version\": 1, \"owned\": [oops]}".to_vec()),
        ("binary", vec![0xff, 0xfe, 0, 1, 2]),
    ];
    for (what, bytes) in cases {
        std::fs::write(&state, &bytes).unwrap();
        for run in [work.plan(&ns), work.apply(&ns)] {
            assert_ne!(run.code, Some(0), "{what}: {run}");
            assert_ne!(run.code, Some(2), "{what}: {run}");
            assert!(run.stderr.contains(&format!("state file {}", state.display())), "{what}: {run}");
        }
        assert_eq!(ns.saved_rules(), rules, "{what}: the kernel changed");
        assert_eq!(std::fs::read(&state).unwrap(), bytes, "{what}: the file was rewritten");
    }

    std::fs::remove_file(&state).unwrap();
    let first_run = work.apply(&ns);
    first_run.expect_code(0);
    assert!(first_run.stdout.contains("adopted TCP 192.0.2.1:80"), "{first_run}");
    assert_eq!(ns.saved_rules(), rules, "nothing deleted: b is no longer known to be ours");
    assert_eq!(Ownership::load(&state).unwrap().owned, [svc(1)].into());
}
