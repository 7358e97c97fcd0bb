//! `cleanup`: removes what this program made on the node, and nothing else, then forgets it.
//!
//! What it made is what the state file says: the services it owns, the addresses it added to the VIP interface,
//! that interface when it made it, the sync daemons it started. The removal is a pass like any other, with an
//! empty desired table: the same read (which must find every owned service, or nothing is done), the same plan
//! (only owned services are deleted), the same address rules (only addresses it added, only as host prefixes,
//! after the services), and the daemon plan of the director pass with nothing configured (only daemons it started
//! and that still run as it started them). So a foreign IPVS service, a foreign address on the interface and a
//! foreign interface survive by the rules every pass keeps, not by rules of its own.
//!
//! Beyond a pass: the interface is deleted when the state records that this program made it, it still has the
//! index recorded then (one deleted and made again by someone else is theirs), and it holds no address but IPv6
//! link-local ones (the kernel's own). A dry run reads the same and changes nothing. A failed read changes
//! nothing; a failed removal keeps the state file (it then lists what is left), so a second run finishes the job.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::kernel::Kernel;
use super::ownership::{Ownership, StateError};
use super::reconcile::{Engine, EngineErrorOf, PassOptions};
use crate::director::plan_daemons;
use crate::model::{Op, ServiceKey, SyncDaemon};
use crate::netif::is_ipv6_link_local;
use crate::table::DesiredTable;

/// What `cleanup` removed (or, in a dry run, would remove), and what it left.
#[derive(Debug, Default)]
pub struct CleanupReport {
    /// Whether nothing was changed: every entry is what a real run would do.
    pub dry_run: bool,
    /// Services removed, in order.
    pub services: Vec<ServiceKey>,
    /// Addresses removed from the VIP interface.
    pub addresses: Vec<IpAddr>,
    /// Sync daemons stopped, as they were started.
    pub daemons: Vec<SyncDaemon>,
    /// What became of the VIP interface.
    pub interface: InterfaceFate,
    /// Owned services no longer in the kernel (someone removed them): forgotten.
    pub gone: Vec<ServiceKey>,
    /// Sync daemons this program started that no longer run as it started them: forgotten.
    pub gone_daemons: Vec<SyncDaemon>,
    /// Services in the kernel that this program did not make: left as they are.
    pub foreign_services: Vec<ServiceKey>,
    /// What could not be removed.
    pub failures: Vec<CleanupFailure>,
    /// Whether the state file was removed (everything it listed is gone).
    pub state_removed: bool,
}

/// What became of the VIP interface.
#[derive(Debug, Default, PartialEq, Eq)]
pub enum InterfaceFate {
    /// Left as it is: this program did not make it, no interface is managed, or something of this program's
    /// could not be removed (a second run decides).
    #[default]
    Untouched,
    /// Made by this program and now empty: deleted (or would be).
    Removed(String),
    /// Made by this program, but it holds addresses this program did not add: left, with them.
    Kept(String, Vec<IpAddr>),
    /// Not the interface this program made any more (deleted, or made again by someone else): left, forgotten.
    Replaced(String),
}

/// One thing that could not be removed.
#[derive(Debug)]
pub struct CleanupFailure {
    /// What was being done (`remove service TCP 192.0.2.1:80`).
    pub what: String,
    /// Why it failed.
    pub error: Box<dyn std::error::Error + Send + Sync>,
}

impl CleanupReport {
    /// Whether everything this program made is gone (or, in a dry run, would be).
    pub fn is_success(&self) -> bool {
        self.failures.is_empty()
    }

    fn fail(&mut self, what: String, error: impl std::error::Error + Send + Sync + 'static) {
        self.failures.push(CleanupFailure { what, error: Box::new(error) });
    }
}

impl<K: Kernel> Engine<K> {
    /// Removes everything the state file lists, then the state file itself; with `dry_run`, reports what it
    /// would remove and changes nothing. The engine must have the VIP interface the state names (if any) and a
    /// director (for the daemons) attached. An error is returned before anything changed (a failed read or
    /// listing); failures after that are in the report.
    pub async fn cleanup(&mut self, dry_run: bool, now: u64) -> Result<CleanupReport, EngineErrorOf<K>> {
        let nothing = DesiredTable::default();
        // Read as a plan does: the VIP interface is never made here.
        self.refresh_all(&nothing, false).await?;
        let mut report = CleanupReport { dry_run, ..Default::default() };
        if let Some(live) = &self.observed {
            let owned = &self.ownership.owned;
            report.foreign_services = live.services.keys().filter(|key| !owned.contains(key)).copied().collect();
            report.gone = owned.iter().filter(|key| !live.services.contains_key(key)).copied().collect();
        }
        if dry_run {
            let plan = self.plan_observed(&nothing, now, None);
            report.services = deleted_services(&plan.ops);
            report.addresses =
                self.planned_addresses(&nothing, &plan.ops).map(|p| p.remove.into_iter().collect()).unwrap_or_default();
        } else {
            // Every owned service goes: the mass-delete guard is for a pass that did not mean it.
            let opts = PassOptions { allow_mass_delete: true, ..Default::default() };
            let pass = self.reconcile_observed(&nothing, now, &opts, None).await?;
            report.services = deleted_services(&pass.applied);
            report.addresses = pass.addresses.removed;
            for failure in pass.failures {
                report.fail(format!("remove service {}", failure.op.service_key()), failure.error);
            }
            for op in pass.unanswered {
                report.fail(format!("remove service {}", op.service_key()), NoAnswer);
            }
            for failure in pass.addresses.failures {
                report.fail(format!("remove address {}", failure.addr), failure.error);
            }
        }
        // A service or an address of ours still there keeps the interface (and its address) in use.
        if report.failures.is_empty() {
            self.cleanup_interface(&mut report).await?;
        }
        self.cleanup_daemons(&mut report).await?;
        if !dry_run && report.is_success() {
            Ownership::remove(&self.state_path)?;
            self.ownership = Ownership::default();
            report.state_removed = true;
        }
        Ok(report)
    }

    /// Stops the sync daemons this program started that still run as it started them; forgets the others.
    async fn cleanup_daemons(&mut self, report: &mut CleanupReport) -> Result<(), StateError> {
        if self.ownership.daemons.is_empty() {
            return Ok(());
        }
        let Some(director) = self.director.take() else {
            report.fail("stop the sync daemons".into(), NoDirector);
            return Ok(());
        };
        let result = self.stop_daemons(director.kernel(), report).await;
        self.director = Some(director);
        result
    }

    async fn stop_daemons(
        &mut self,
        kernel: &dyn super::DirectorKernel,
        report: &mut CleanupReport,
    ) -> Result<(), StateError> {
        let running = match kernel.daemons().await {
            Ok(running) => running,
            Err(error) => {
                // Nothing is known to run: nothing is stopped, nothing forgotten.
                report.fail("read the sync daemons".into(), error);
                return Ok(());
            }
        };
        let plan = plan_daemons(&[], &running, &self.ownership.daemons);
        let (ours, gone): (Vec<SyncDaemon>, Vec<SyncDaemon>) =
            self.ownership.daemons.iter().cloned().partition(|d| plan.stop.contains(&d.state));
        report.gone_daemons = gone;
        if report.dry_run {
            report.daemons = ours;
            return Ok(());
        }
        if ours.len() != self.ownership.daemons.len() {
            self.ownership.daemons = ours.clone();
            self.ownership.save(&self.state_path)?;
        }
        for daemon in ours {
            match kernel.stop_daemon(daemon.state).await {
                Ok(()) => {
                    self.ownership.daemons.retain(|d| d.state != daemon.state);
                    self.ownership.save(&self.state_path)?;
                    report.daemons.push(daemon);
                }
                Err(error) => report.fail(format!("stop the {:?} sync daemon", daemon.state), error),
            }
        }
        Ok(())
    }

    /// Deletes the VIP interface when this program made it and nothing but link-local addresses is left on it.
    async fn cleanup_interface(&mut self, report: &mut CleanupReport) -> Result<(), StateError> {
        let (Some(made), Some(addresses)) = (self.ownership.vips.created, &self.addresses) else { return Ok(()) };
        let name = addresses.interface().to_owned();
        // A fresh listing: what is on it now decides, not what was before the addresses were removed.
        let listing = match addresses.list(false).await {
            Ok(listing) => listing,
            Err(error) => {
                report.fail(format!("list the addresses of {name}"), error);
                return Ok(());
            }
        };
        if listing.index != Some(made) {
            report.interface = InterfaceFate::Replaced(name);
            if !report.dry_run {
                self.ownership.vips.created = None;
                self.ownership.save(&self.state_path)?;
            }
            return Ok(());
        }
        let removed: BTreeSet<IpAddr> = report.addresses.iter().copied().collect();
        let left: Vec<IpAddr> = listing
            .addresses
            .keys()
            .filter(|addr| !is_ipv6_link_local(addr))
            // A dry run removed nothing: what it would remove is not left.
            .filter(|addr| !(report.dry_run && removed.contains(addr)))
            .copied()
            .collect();
        if !left.is_empty() {
            report.interface = InterfaceFate::Kept(name, left);
            return Ok(());
        }
        if report.dry_run {
            report.interface = InterfaceFate::Removed(name);
            return Ok(());
        }
        match addresses.delete_interface(made).await {
            Ok(deleted) => {
                report.interface = if deleted { InterfaceFate::Removed(name) } else { InterfaceFate::Replaced(name) };
                self.ownership.vips.created = None;
                self.ownership.save(&self.state_path)?;
            }
            Err(error) => report.fail(format!("delete the interface {name}"), error),
        }
        Ok(())
    }
}

/// The services `ops` delete, in order.
fn deleted_services(ops: &[Op]) -> Vec<ServiceKey> {
    ops.iter()
        .filter_map(|op| match op {
            Op::DeleteService(key) => Some(*key),
            _ => None,
        })
        .collect()
}

/// An operation the kernel client gave no answer for.
#[derive(Debug, thiserror::Error)]
#[error("no answer from the kernel (its outcome is unknown)")]
struct NoAnswer;

/// The engine was opened without the director's kernel.
#[derive(Debug, thiserror::Error)]
#[error("the director's settings are not managed by this engine")]
struct NoDirector;

#[cfg(test)]
mod tests;
