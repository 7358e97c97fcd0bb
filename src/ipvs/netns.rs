//! Network namespaces: which one the IPVS sockets are opened in.
//!
//! IPVS state is per network namespace, and a netlink socket acts on the namespace it was created in, whatever
//! thread later uses it. So to talk to another namespace the sockets are created by a short-lived thread that
//! first joins it (`setns`), and the thread ends: no thread of the runtime ever changes namespace.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sched::{CloneFlags, setns};

use super::IpvsError;

/// Where named namespaces live (`ip netns add NAME` creates `/run/netns/NAME`).
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// A network namespace to open IPVS sockets in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub enum NetnsSpec {
    /// The namespace of the calling process.
    #[default]
    Current,
    /// A namespace file: `/run/netns/NAME`, `/proc/PID/ns/net`, a bind mount...
    Path(PathBuf),
}

/// Why a namespace argument is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network namespace {given:?}: {reason}")]
pub struct NetnsSpecError {
    /// The argument.
    pub given: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl NetnsSpec {
    /// Parses a namespace argument: a path (anything with a `/`) is used as is, a bare name means
    /// `/run/netns/NAME` as `ip netns` names it.
    pub fn parse(s: &str) -> Result<Self, NetnsSpecError> {
        let err = |reason| NetnsSpecError { given: s.to_owned(), reason };
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains('/') {
            return Ok(NetnsSpec::Path(PathBuf::from(s)));
        }
        if s == "." || s == ".." || s.contains('\0') {
            return Err(err("not a namespace name"));
        }
        Ok(NetnsSpec::Path(Path::new(NETNS_RUN_DIR).join(s)))
    }

    /// The namespace file, or `None` for the current namespace.
    pub fn path(&self) -> Option<&Path> {
        match self {
            NetnsSpec::Current => None,
            NetnsSpec::Path(p) => Some(p),
        }
    }
}

impl FromStr for NetnsSpec {
    type Err = NetnsSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetnsSpec::parse(s)
    }
}

impl fmt::Display for NetnsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetnsSpec::Current => f.write_str("current network namespace"),
            NetnsSpec::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Runs `make` in a fresh thread that has joined the namespace at `path`, inside the runtime `rt` (so that
/// tokio sockets it creates register with that runtime), and returns what it made.
pub(crate) async fn run_in_netns<T, F>(path: &Path, make: F) -> Result<T, IpvsError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, IpvsError> + Send + 'static,
{
    run_in_netns_with(path, make, |path, source| IpvsError::Netns { path, source }).await
}

/// [`run_in_netns`] for any error type: `netns_err` makes one from a namespace that cannot be opened or joined
/// (the rtnetlink sockets of `crate::netif` use it with their own error).
pub(crate) async fn run_in_netns_with<T, E, F>(
    path: &Path,
    make: F,
    netns_err: fn(PathBuf, io::Error) -> E,
) -> Result<T, E>
where
    T: Send + 'static,
    E: Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    let file = File::open(path).map_err(|source| netns_err(path.to_owned(), source))?;
    let rt = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = path.to_owned();
    std::thread::Builder::new()
        .name("ipvs-netns".into())
        .spawn(move || {
            let result = setns(&file, CloneFlags::CLONE_NEWNET)
                .map_err(|e| netns_err(owned, io::Error::from(e)))
                .and_then(|()| {
                    let _guard = rt.enter();
                    make()
                });
            // The receiver only goes away if the caller was cancelled; nothing to report then.
            let _ = tx.send(result);
        })
        .map_err(|source| netns_err(path.to_owned(), source))?;
    rx.await.map_err(|_| netns_err(path.to_owned(), io::Error::other("namespace thread ended without an answer")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_names_live_in_run_netns_and_paths_are_kept() {
        assert_eq!(NetnsSpec::parse("blue").unwrap().path(), Some(Path::new("/run/netns/blue")));
        assert_eq!(NetnsSpec::parse("/proc/1/ns/net").unwrap().path(), Some(Path::new("/proc/1/ns/net")));
        assert_eq!(NetnsSpec::parse("./ns").unwrap().path(), Some(Path::new("./ns")));
        assert!(NetnsSpec::parse("").is_err());
        assert!(NetnsSpec::parse("..").is_err());
        assert_eq!(NetnsSpec::Current.path(), None);
    }

    #[tokio::test]
    async fn a_missing_namespace_file_is_a_netns_error_naming_it() {
        let err = run_in_netns(Path::new("/nonexistent/netns"), || Ok(())).await.unwrap_err();
        assert!(matches!(err, IpvsError::Netns { .. }), "{err}");
        assert!(err.to_string().contains("/nonexistent/netns"), "{err}");
    }

    #[tokio::test]
    async fn the_work_runs_in_the_namespace_thread() {
        // Joining our own namespace is allowed to root and proves the thread ran `make` after setns.
        let own = Path::new("/proc/self/ns/net");
        match run_in_netns(own, || Ok(std::thread::current().name().map(str::to_owned))).await {
            Ok(name) => assert_eq!(name.as_deref(), Some("ipvs-netns")),
            Err(IpvsError::Netns { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::EPERM), "only a missing privilege may stop it")
            }
            Err(e) => panic!("{e}"),
        }
    }
}
