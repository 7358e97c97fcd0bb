//! The director's settings as the engine sees them: the namespace's IPVS timeouts and sync daemons, and its
//! sysctls. A trait (as [`super::Kernel`]) so that the rules of the director pass are tested in memory;
//! [`IpvsDirector`] is the real one (its own IPVS connection, and `/proc/sys` read from a thread in the namespace).

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;

use futures::future::BoxFuture;

use crate::director::Sysctl;
use crate::ipvs::{Ipvs, IpvsError, NetnsSpec};
use crate::model::{DaemonState, SyncDaemon, Timeouts};
use crate::netif::{NetifError, NodeLink};

/// Why reading or changing a director setting failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectorError {
    /// An IPVS request failed.
    #[error("{op}: {source}")]
    Ipvs {
        /// What was asked.
        op: &'static str,
        /// The kernel's answer.
        #[source]
        source: IpvsError,
    },
    /// A sysctl could not be read or written.
    #[error("{op} {sysctl}: {source}")]
    Sysctl {
        /// Read or write.
        op: &'static str,
        /// Which.
        sysctl: Sysctl,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The namespace could not be entered.
    #[error("cannot enter network namespace {}: {source}", .path.display())]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The node's interfaces could not be listed.
    #[error("listing the node's interfaces: {0}")]
    Links(#[source] NetifError),
    /// Injected by a test.
    #[error("{0} (injected)")]
    Injected(String),
}

impl DirectorError {
    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DirectorError::Ipvs { source, .. } => source.metric_label(),
            DirectorError::Sysctl { .. } => "sysctl",
            DirectorError::Netns { .. } => "netns",
            DirectorError::Links(_) => "links",
            DirectorError::Injected(_) => "injected",
        }
    }
}

/// What the engine needs to read and set the director's settings.
pub trait DirectorKernel: Send + Sync {
    /// The timeouts (`GET_CONFIG`).
    fn timeouts(&self) -> BoxFuture<'_, Result<Timeouts, DirectorError>>;
    /// Sets the non-zero timeouts (`SET_CONFIG`).
    fn set_timeouts(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<(), DirectorError>>;
    /// The running sync daemons.
    fn daemons(&self) -> BoxFuture<'_, Result<Vec<SyncDaemon>, DirectorError>>;
    /// Starts a daemon.
    fn start_daemon(&self, daemon: SyncDaemon) -> BoxFuture<'_, Result<(), DirectorError>>;
    /// Stops the daemon of a role.
    fn stop_daemon(&self, state: DaemonState) -> BoxFuture<'_, Result<(), DirectorError>>;
    /// Reads `sysctls` (one missing from the kernel is left out).
    fn read_sysctls(&self, sysctls: Vec<Sysctl>) -> BoxFuture<'_, Result<BTreeMap<Sysctl, u32>, DirectorError>>;
    /// Writes one sysctl.
    fn write_sysctl(&self, sysctl: Sysctl, value: u32) -> BoxFuture<'_, Result<(), DirectorError>>;
    /// Every interface of the node with its IPv4 addresses and its own `arp_ignore`: what shares the node (kube-proxy's
    /// `kube-ipvs0`) and on which subnets it answers ARP.
    fn node_links(&self) -> BoxFuture<'_, Result<Vec<NodeLink>, DirectorError>>;
}

/// The real director settings of one namespace.
pub struct IpvsDirector {
    /// Its own IPVS connection, made again when lost.
    ipvs: tokio::sync::Mutex<Option<Ipvs>>,
    netns: NetnsSpec,
}

impl IpvsDirector {
    /// The settings of `netns`: IPVS requests over a connection of its own there, `/proc/sys` read and written
    /// there.
    pub fn new(netns: NetnsSpec) -> Self {
        IpvsDirector { ipvs: tokio::sync::Mutex::new(None), netns }
    }

    /// Runs `request` over the connection, connecting first when there is none (or it was lost).
    async fn with_ipvs<T>(
        &self,
        op: &'static str,
        request: impl AsyncFnOnce(&Ipvs) -> Result<T, IpvsError>,
    ) -> Result<T, DirectorError> {
        let mut guard = self.ipvs.lock().await;
        if !guard.as_ref().is_some_and(Ipvs::is_connected) {
            let connected = match self.netns.path() {
                Some(path) => Ipvs::connect_in_netns(path).await,
                None => Ipvs::connect().await,
            };
            *guard = Some(connected.map_err(ipvs_err(op))?);
        }
        let Some(ipvs) = guard.as_ref() else { return Err(DirectorError::Injected("no connection".into())) };
        request(ipvs).await.map_err(ipvs_err(op))
    }

    /// Runs `f` in the namespace (on a short-lived thread that joined it), or here for the current one.
    async fn in_netns<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, DirectorError> + Send + 'static,
    ) -> Result<T, DirectorError> {
        match self.netns.path() {
            None => f(),
            Some(path) => {
                crate::ipvs::netns::run_in_netns_with(path, f, |path, source| DirectorError::Netns { path, source })
                    .await
            }
        }
    }
}

fn ipvs_err(op: &'static str) -> impl FnOnce(IpvsError) -> DirectorError {
    move |source| DirectorError::Ipvs { op, source }
}

impl DirectorKernel for IpvsDirector {
    fn timeouts(&self) -> BoxFuture<'_, Result<Timeouts, DirectorError>> {
        Box::pin(self.with_ipvs("read the timeouts", async |ipvs| ipvs.timeouts().await))
    }

    fn set_timeouts(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<(), DirectorError>> {
        Box::pin(self.with_ipvs("set the timeouts", async move |ipvs| ipvs.set_timeouts(&timeouts).await))
    }

    fn daemons(&self) -> BoxFuture<'_, Result<Vec<SyncDaemon>, DirectorError>> {
        Box::pin(self.with_ipvs("read the sync daemons", async |ipvs| ipvs.daemons().await))
    }

    fn start_daemon(&self, daemon: SyncDaemon) -> BoxFuture<'_, Result<(), DirectorError>> {
        Box::pin(self.with_ipvs("start a sync daemon", async move |ipvs| ipvs.start_daemon(&daemon).await))
    }

    fn stop_daemon(&self, state: DaemonState) -> BoxFuture<'_, Result<(), DirectorError>> {
        Box::pin(self.with_ipvs("stop a sync daemon", async move |ipvs| ipvs.stop_daemon(state).await))
    }

    fn read_sysctls(&self, sysctls: Vec<Sysctl>) -> BoxFuture<'_, Result<BTreeMap<Sysctl, u32>, DirectorError>> {
        Box::pin(self.in_netns(move || {
            let mut values = BTreeMap::new();
            for sysctl in sysctls {
                let read = |source| DirectorError::Sysctl { op: "read", sysctl, source };
                let text = match std::fs::read_to_string(sysctl.proc_path()) {
                    Ok(text) => text,
                    // IPv6 disabled, or an older kernel without the knob: nothing to read, nothing to judge.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(read(e)),
                };
                let value = text.trim().parse::<u32>().map_err(|e| read(io::Error::other(e)))?;
                values.insert(sysctl, value);
            }
            Ok(values)
        }))
    }

    fn write_sysctl(&self, sysctl: Sysctl, value: u32) -> BoxFuture<'_, Result<(), DirectorError>> {
        Box::pin(self.in_netns(move || {
            std::fs::write(sysctl.proc_path(), format!("{value}\n")).map_err(|source| DirectorError::Sysctl {
                op: "write",
                sysctl,
                source,
            })
        }))
    }

    fn node_links(&self) -> BoxFuture<'_, Result<Vec<NodeLink>, DirectorError>> {
        Box::pin(async move {
            let links = crate::netif::node_links(&self.netns).await.map_err(DirectorError::Links)?;
            self.in_netns(move || Ok(links.into_iter().map(with_arp_ignore).collect())).await
        })
    }
}

/// `link` with its own `arp_ignore`, read from `/proc/sys` (of the namespace the calling thread is in). Only an
/// interface with a subnet needs it; one that cannot be read is left unknown (the check then goes by `all`'s).
fn with_arp_ignore(mut link: NodeLink) -> NodeLink {
    // Interface names never hold '/', but this one comes from the kernel's answer: it must not escape the directory.
    let subnet = link.ipv4.iter().any(|(_, prefix)| *prefix < 32);
    if subnet && !link.name.contains('/') && link.name != "." && link.name != ".." {
        let path = format!("/proc/sys/net/ipv4/conf/{}/arp_ignore", link.name);
        link.arp_ignore = std::fs::read_to_string(path).ok().and_then(|text| text.trim().parse().ok());
    }
    link
}

/// A shared fake (tests keep a handle while the engine holds it).
impl<D: DirectorKernel> DirectorKernel for std::sync::Arc<D> {
    fn timeouts(&self) -> BoxFuture<'_, Result<Timeouts, DirectorError>> {
        D::timeouts(self)
    }
    fn set_timeouts(&self, timeouts: Timeouts) -> BoxFuture<'_, Result<(), DirectorError>> {
        D::set_timeouts(self, timeouts)
    }
    fn daemons(&self) -> BoxFuture<'_, Result<Vec<SyncDaemon>, DirectorError>> {
        D::daemons(self)
    }
    fn start_daemon(&self, daemon: SyncDaemon) -> BoxFuture<'_, Result<(), DirectorError>> {
        D::start_daemon(self, daemon)
    }
    fn stop_daemon(&self, state: DaemonState) -> BoxFuture<'_, Result<(), DirectorError>> {
        D::stop_daemon(self, state)
    }
    fn read_sysctls(&self, sysctls: Vec<Sysctl>) -> BoxFuture<'_, Result<BTreeMap<Sysctl, u32>, DirectorError>> {
        D::read_sysctls(self, sysctls)
    }
    fn write_sysctl(&self, sysctl: Sysctl, value: u32) -> BoxFuture<'_, Result<(), DirectorError>> {
        D::write_sysctl(self, sysctl, value)
    }
    fn node_links(&self) -> BoxFuture<'_, Result<Vec<NodeLink>, DirectorError>> {
        D::node_links(self)
    }
}
