//! Shared fixtures for kernel tests: throwaway network namespaces, ipvsadm, the CLI binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use ipvs_reconciler::ipvs::Ipvs;

/// A fresh network namespace (`ip netns add`), deleted on drop. Loopback is up and a dummy interface carries
/// routes to the backend ranges used by tests and examples (the kernel refuses a destination that is not routable).
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
