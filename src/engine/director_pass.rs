//! The director part of a full pass: the configured timeouts and sysctls are set where they differ, every
//! sysctl is checked against the declared services, and the configured sync daemons are started, restarted or
//! stopped, with the IPVS table's ownership rules (a daemon another tool started is never stopped).
//!
//! It runs after the IPVS changes of a full pass (a pass the mass-delete guard refuses changes nothing here
//! either). A failure is reported and retried with the pass; it never stops the IPVS part. Contradictions and
//! foreign daemons are logged once, when they appear, and counted in every report.

use tracing::{info, warn};

use super::director_kernel::{DirectorError, DirectorKernel};
use super::kernel::Kernel;
use super::ownership::StateError;
use super::reconcile::Engine;
use crate::director::{Contradiction, DirectorConfig, Sysctl, arp_contradiction, contradictions, plan_daemons};
use crate::model::{SyncDaemon, Timeouts};
use crate::netif::KUBE_PROXY_INTERFACE;
use crate::table::DesiredTable;

/// The director's kernel and configuration, held by the engine.
pub(super) struct Director {
    kernel: Box<dyn DirectorKernel>,
    config: DirectorConfig,
    /// What was last logged, so that a standing contradiction is one log line, not one per pass.
    logged: Vec<(Sysctl, u32)>,
    logged_foreign: Vec<SyncDaemon>,
    logged_kube_proxy: bool,
}

/// What the director part of a pass did and found.
#[derive(Debug, Default)]
pub struct DirectorReport {
    /// Changes made, one line each (`net.ipv4.ip_forward 0 -> 1`, `started sync daemon Master on eth1 id 7`).
    pub changes: Vec<String>,
    /// What failed.
    pub failures: Vec<DirectorFailure>,
    /// Sysctls that contradict the declared services (empty when they were not read).
    pub contradictions: Vec<Contradiction>,
    /// Daemons started by someone else that differ from the configured ones (left alone).
    pub foreign_daemons: Vec<SyncDaemon>,
    /// Whether kube-proxy runs in IPVS mode on the node (its `kube-ipvs0` exists); `None` when the interfaces could
    /// not be listed.
    pub kube_proxy_ipvs: Option<bool>,
}

/// A director setting that could not be read or changed.
#[derive(Debug)]
pub struct DirectorFailure {
    /// What was being done.
    pub what: String,
    /// Why it failed.
    pub error: DirectorError,
}

impl<K: Kernel> Engine<K> {
    /// The same engine, keeping the director's settings as `config` says on every full pass (and checking the
    /// sysctls against the services).
    pub fn with_director(mut self, kernel: Box<dyn DirectorKernel>, config: DirectorConfig) -> Self {
        self.director =
            Some(Director { kernel, config, logged: Vec::new(), logged_foreign: Vec::new(), logged_kube_proxy: false });
        self
    }

    pub(super) async fn director_pass(
        &mut self,
        desired: &DesiredTable,
        report: &mut DirectorReport,
    ) -> Result<(), StateError> {
        let Some(mut director) = self.director.take() else { return Ok(()) };
        let result = self.director_steps(&director, desired, report).await;
        director.log_findings(report);
        self.director = Some(director);
        result
    }

    async fn director_steps(
        &mut self,
        director: &Director,
        desired: &DesiredTable,
        report: &mut DirectorReport,
    ) -> Result<(), StateError> {
        let kernel = director.kernel.as_ref();
        let config = &director.config;
        let fail = |report: &mut DirectorReport, what: &str, error: DirectorError| {
            warn!(%error, "{what} failed");
            report.failures.push(DirectorFailure { what: what.to_owned(), error });
        };

        let wanted = config.timeouts();
        if wanted != Timeouts::default() {
            match kernel.timeouts().await {
                Ok(have) => {
                    let differs = |want: u32, have: u32| if want != 0 && want != have { want } else { 0 };
                    let change = Timeouts {
                        tcp: differs(wanted.tcp, have.tcp),
                        tcp_fin: differs(wanted.tcp_fin, have.tcp_fin),
                        udp: differs(wanted.udp, have.udp),
                    };
                    if change != Timeouts::default() {
                        match kernel.set_timeouts(change).await {
                            Ok(()) => report.changes.push(format!(
                                "timeouts tcp {} tcpfin {} udp {} -> {} {} {}",
                                have.tcp,
                                have.tcp_fin,
                                have.udp,
                                if change.tcp != 0 { change.tcp } else { have.tcp },
                                if change.tcp_fin != 0 { change.tcp_fin } else { have.tcp_fin },
                                if change.udp != 0 { change.udp } else { have.udp },
                            )),
                            Err(e) => fail(report, "setting the IPVS timeouts", e),
                        }
                    }
                }
                Err(e) => fail(report, "reading the IPVS timeouts", e),
            }
        }

        let mut arp_ignore = None;
        match kernel.read_sysctls(Sysctl::ALL.to_vec()).await {
            Ok(mut values) => {
                for (sysctl, value) in config.sysctl_values() {
                    let Some(&old) = values.get(&sysctl) else {
                        fail(
                            report,
                            &format!("setting {sysctl}"),
                            DirectorError::Sysctl {
                                op: "write",
                                sysctl,
                                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such sysctl here"),
                            },
                        );
                        continue;
                    };
                    if old == value {
                        continue;
                    }
                    match kernel.write_sysctl(sysctl, value).await {
                        Ok(()) => {
                            report.changes.push(format!("{sysctl} {old} -> {value}"));
                            values.insert(sysctl, value);
                        }
                        Err(e) => fail(report, &format!("setting {sysctl}"), e),
                    }
                }
                report.contradictions = contradictions(desired, &values);
                arp_ignore = values.get(&Sysctl::ArpIgnore).copied();
            }
            Err(e) => fail(report, "reading the sysctls", e),
        }

        // What shares the node: kube-proxy in IPVS mode, and the subnets on which the VIPs are answered for.
        match kernel.node_links().await {
            Ok(links) => {
                report.kube_proxy_ipvs = Some(links.iter().any(|link| link.name == KUBE_PROXY_INTERFACE));
                let vip_interface = self.addresses.as_ref().map(|a| a.interface());
                if let (Some(all), Some(vip_interface)) = (arp_ignore, vip_interface)
                    && let Some(found) = arp_contradiction(desired, all, vip_interface, &links)
                {
                    report.contradictions.push(found);
                }
            }
            Err(e) => fail(report, "listing the node's interfaces", e),
        }

        let wanted = config.daemons();
        if wanted.is_empty() && self.ownership.daemons.is_empty() {
            return Ok(());
        }
        let running = match kernel.daemons().await {
            Ok(running) => running,
            Err(e) => {
                // Nothing is known to be running: nothing is stopped, nothing started.
                fail(report, "reading the sync daemons", e);
                return Ok(());
            }
        };
        let plan = plan_daemons(&wanted, &running, &self.ownership.daemons);
        report.foreign_daemons = plan.foreign.clone();
        // Daemons we started that are gone, or replaced by someone else's, are forgotten.
        let before = self.ownership.daemons.clone();
        self.ownership.daemons.retain(|d| plan.stop.contains(&d.state) || plan.owned_after.contains(d));
        if self.ownership.daemons != before {
            self.save_ownership()?;
        }
        let mut stop_failed = Vec::new();
        for state in &plan.stop {
            match kernel.stop_daemon(*state).await {
                Ok(()) => {
                    report.changes.push(format!("stopped sync daemon {state:?}"));
                    self.ownership.daemons.retain(|d| d.state != *state);
                    self.save_ownership()?;
                }
                Err(e) => {
                    stop_failed.push(*state);
                    fail(report, &format!("stopping the {state:?} sync daemon"), e);
                }
            }
        }
        for daemon in plan.start {
            if stop_failed.contains(&daemon.state) {
                continue;
            }
            // Remembered first: a crash after the start must not leave a daemon nobody knows is ours.
            self.ownership.daemons.retain(|d| d.state != daemon.state);
            self.ownership.daemons.push(daemon.clone());
            self.save_ownership()?;
            let line = format!("started sync daemon {:?} on {} id {}", daemon.state, daemon.interface, daemon.sync_id);
            match kernel.start_daemon(daemon.clone()).await {
                Ok(()) => report.changes.push(line),
                Err(e) => {
                    let refused = matches!(&e, DirectorError::Ipvs { source, .. } if source.errno().is_some());
                    if refused {
                        self.ownership.daemons.retain(|d| d.state != daemon.state);
                        self.save_ownership()?;
                    }
                    fail(report, &format!("starting the {:?} sync daemon on {}", daemon.state, daemon.interface), e);
                }
            }
        }
        Ok(())
    }
}

impl Director {
    /// The director's kernel (for `cleanup`, which only stops the daemons this program started).
    pub(super) fn kernel(&self) -> &dyn DirectorKernel {
        self.kernel.as_ref()
    }

    /// Logs contradictions and foreign daemons that are new since the last pass, and those that went away.
    fn log_findings(&mut self, report: &DirectorReport) {
        let now: Vec<(Sysctl, u32)> = report.contradictions.iter().map(|c| (c.sysctl, c.found)).collect();
        for contradiction in &report.contradictions {
            if !self.logged.contains(&(contradiction.sysctl, contradiction.found)) {
                warn!(sysctl = %contradiction.sysctl, "{contradiction}");
            }
        }
        for (sysctl, _) in self.logged.iter().filter(|old| !now.contains(old)) {
            info!(%sysctl, "no longer contradicts the declared services");
        }
        self.logged = now;
        for daemon in &report.foreign_daemons {
            if !self.logged_foreign.contains(daemon) {
                warn!(
                    state = ?daemon.state,
                    interface = %daemon.interface,
                    sync_id = daemon.sync_id,
                    "a sync daemon started by another tool differs from the configured one: left alone"
                );
            }
        }
        self.logged_foreign = report.foreign_daemons.clone();
        match report.kube_proxy_ipvs {
            Some(true) if !self.logged_kube_proxy => {
                warn!(
                    interface = KUBE_PROXY_INTERFACE,
                    "kube-proxy runs in IPVS mode on this node: it deletes IPVS services it did not create unless its \
                     --ipvs-exclude-cidrs (ipvs.excludeCIDRs) covers their addresses; see docs/kubernetes.md"
                );
                self.logged_kube_proxy = true;
            }
            Some(false) => self.logged_kube_proxy = false,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
