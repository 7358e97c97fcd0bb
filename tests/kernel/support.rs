//! Shared fixtures for kernel tests: throwaway network namespaces, ipvsadm, the CLI binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ipvs_reconciler::ipvs::Ipvs;

/// A fresh network namespace (`ip netns add`), deleted on drop. Loopback is up and a dummy interface carries
/// routes to the backend ranges used by tests and examples (with loopback down the kernel refuses every
/// destination as not unicast; unicast addresses without a route are accepted).
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    /// Creates a namespace whose name starts with `tag`.
    pub fn new(tag: &str) -> Netns {
        assert!(
            std::env::var_os("IPVS_RECONCILER_VM").is_some(),
            "kernel tests must run inside the VM: use tests/vm/run (tests/all does)"
        );
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("t{}-{}-{n}", std::process::id(), tag.chars().take(12).collect::<String>());
        run_ok("ip", &["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "add", "d0", "type", "dummy"]);
        ns.ip(&["link", "set", "d0", "up"]);
        ns.ip(&["addr", "add", "10.255.255.254/8", "dev", "d0"]);
        ns.ip(&["-6", "addr", "add", "fd00::fffe/16", "dev", "d0", "nodad"]);
        ns.ip(&["route", "add", "172.16.0.0/12", "dev", "d0"]);
        ns.ip(&["-6", "route", "add", "2001:db8::/32", "dev", "d0"]);
        ns
    }

    /// The namespace file.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// A client in this namespace.
    pub async fn ipvs(&self) -> Ipvs {
        Ipvs::connect_in_netns(&self.path()).await.expect("connect to IPVS in the test namespace")
    }

    /// `ip ARGS` in this namespace; panics on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ok("ip", &full);
    }

    /// Runs a command inside the namespace.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        let mut full = vec!["netns", "exec", self.name.as_str(), program];
        full.extend_from_slice(args);
        Command::new("ip").args(&full).output().expect("run ip netns exec")
    }

    /// `ipvsadm ARGS` inside the namespace; panics unless it succeeds; returns stdout.
    pub fn ipvsadm(&self, args: &[&str]) -> String {
        let out = self.exec("ipvsadm", args);
        assert!(out.status.success(), "ipvsadm {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ipvsadm -Sn`, lines sorted (ipvsadm lists in hash order).
    pub fn saved_rules(&self) -> Vec<String> {
        let mut lines: Vec<String> = self.ipvsadm(&["-Sn"]).lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }

    /// Runs `f` on a thread that has joined this namespace: sockets it makes (a listener, a client's
    /// connection) live in the namespace, whichever thread uses them afterwards.
    pub fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = self.path();
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open the namespace file");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("join the namespace");
            f()
        })
        .join()
        .expect("the thread in the namespace panicked")
    }

    /// Writes a sysctl of this namespace (`net.ipv4.ip_forward` and the like are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        let out = self.exec("sysctl", &["-qw", &format!("{key}={value}")]);
        assert!(out.status.success(), "sysctl {key}={value}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A veth pair: `here` in this namespace with `here_cidr`, `there` in `peer` with `there_cidr` (empty: no
    /// address), both up.
    pub fn veth(&self, here: &str, here_cidr: &str, peer: &Netns, there: &str, there_cidr: &str) {
        self.ip(&["link", "add", here, "type", "veth", "peer", "name", there, "netns", &peer.name]);
        for (ns, dev, cidr) in [(self, here, here_cidr), (peer, there, there_cidr)] {
            if !cidr.is_empty() {
                ns.ip(&["addr", "add", cidr, "dev", dev]);
            }
            ns.ip(&["link", "set", dev, "up"]);
        }
    }

    /// `ip -o addr show dev DEV` in this namespace: one line per address.
    pub fn addresses_of(&self, dev: &str) -> String {
        let out = self.exec("ip", &["-o", "addr", "show", "dev", dev]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs the `ipvs-reconciler` binary with `--netns` set to this namespace.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(binary()).arg("--netns").arg(&self.name).args(args).output().expect("run ipvs-reconciler")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// The CLI binary under test: `IPVS_RECONCILER_BIN`, else the one cargo built beside this test.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("IPVS_RECONCILER_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_ipvs-reconciler"))
}

/// Runs a host command; panics unless it succeeds.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A current-thread tokio runtime for a test.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime")
}

/// What one run of the CLI did: exit code and both outputs, printable in assertion messages.
#[derive(Debug, Clone)]
pub struct CliRun {
    /// The exit code; `None` when a signal ended the process.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliRun {
    fn from_output(out: Output) -> CliRun {
        CliRun {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The operation lines (`+ `, `~ `, `- ` prefixed, as `plan` and `apply` print them), in order.
    pub fn op_lines(&self) -> Vec<String> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with("+ ") || l.starts_with("~ ") || l.starts_with("- "))
            .map(str::to_owned)
            .collect()
    }

    /// Panics (showing both outputs) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &CliRun {
        assert_eq!(self.code, Some(code), "unexpected exit code\n{self}");
        self
    }
}

impl std::fmt::Display for CliRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit code {:?}\n--- stdout\n{}--- stderr\n{}---", self.code, self.stdout, self.stderr)
    }
}

impl Netns {
    /// Runs the CLI in this namespace and collects what it did.
    pub fn cli_run(&self, args: &[&str]) -> CliRun {
        CliRun::from_output(self.cli(args))
    }

    /// The CLI as a command in this namespace, for callers that spawn it (long-running or killed runs).
    pub fn cli_command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command.arg("--netns").arg(&self.name).args(args);
        command
    }
}

/// A scratch directory for one test: a manifest directory (`manifests/`) and a state file beside it, so that no two
/// tests share ownership memory.
pub struct Workdir {
    dir: tempfile::TempDir,
}

impl Default for Workdir {
    fn default() -> Self {
        Workdir::new()
    }
}

impl Workdir {
    /// An empty manifest directory and no state file yet.
    pub fn new() -> Workdir {
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::create_dir(dir.path().join("manifests")).expect("create the manifest directory");
        Workdir { dir }
    }

    /// The manifest directory.
    pub fn manifests(&self) -> PathBuf {
        self.dir.path().join("manifests")
    }

    /// The state file.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    /// Another path in the scratch directory (outside the manifest directory).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes (or replaces) a manifest file.
    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.manifests().join(file), text).expect("write a manifest");
    }

    /// Removes a manifest file.
    pub fn remove(&self, file: &str) {
        std::fs::remove_file(self.manifests().join(file)).expect("remove a manifest");
    }

    /// `ipvs-reconciler --netns NS COMMAND -f MANIFESTS --state STATE EXTRA...` (COMMAND is plan or apply).
    pub fn pass(&self, ns: &Netns, command: &str, extra: &[&str]) -> CliRun {
        let manifests = self.manifests();
        let state = self.state();
        let mut args = vec![command, "-f", path_str(&manifests), "--state", path_str(&state)];
        args.extend_from_slice(extra);
        ns.cli_run(&args)
    }

    /// `plan` over the manifest directory with this state file.
    pub fn plan(&self, ns: &Netns) -> CliRun {
        self.pass(ns, "plan", &[])
    }

    /// `apply` over the manifest directory with this state file.
    pub fn apply(&self, ns: &Netns) -> CliRun {
        self.pass(ns, "apply", &[])
    }
}

/// A path as `&str` (test paths are always UTF-8).
pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Panics unless running inside the test VM (whose kernel has IPVS), for tests that need no namespace of their own.
pub fn require_vm() {
    assert!(
        std::env::var_os("IPVS_RECONCILER_VM").is_some(),
        "kernel tests must run inside the VM: use tests/vm/run (tests/all does)"
    );
}

/// Polls `check` every 100 ms until it returns `Ok`, for at most `limit`; panics with the last `Err` description
/// otherwise. Bounds a wait for an asynchronous effect without asserting how fast it is.
#[track_caller]
pub fn eventually(limit: std::time::Duration, what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let start = std::time::Instant::now();
    loop {
        match check() {
            Ok(()) => return,
            Err(last) if start.elapsed() >= limit => panic!("{what}: not reached within {limit:?}; last seen:\n{last}"),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples")
}

/// Lines sorted, as owned strings (tables compare as sorted `ipvsadm -Sn` rules).
pub fn sorted(lines: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    v.sort();
    v
}

/// A child process killed (and reaped) when the test ends, passed or failed.
pub struct KillOnDrop(pub Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
