//! The address part of a pass: the VIP interface's addresses follow the services, with the IPVS table's rules.
//!
//! - One listing per full pass (and on the first incremental pass after a change whose outcome is unknown);
//!   incremental passes plan against the listing kept up to date with this program's own changes, as the IPVS
//!   table is. A failed listing fails the pass before anything changes.
//! - Only addresses this program added are removed, and only as host prefixes; an address someone else put
//!   there is used, never adopted.
//! - Order: addresses are added before the pass's IPVS changes and removed after them, once no service this
//!   program keeps needs them (a service whose deletion is held back keeps its address). When the IPVS outcome is
//!   unknown, no address is removed in that pass.
//! - Ownership is written to the state file before an address is added, as it is before a service is created.

use std::collections::BTreeSet;
use std::net::IpAddr;

use tracing::{info, warn};

use super::addresses::NodeAddresses;
use super::kernel::Kernel;
use super::ownership::StateError;
use super::reconcile::{AddressFailure, AddressReport, Engine, EngineError, EngineErrorOf};
use crate::model::Table;
use crate::netif::host_prefix;
use crate::table::{DesiredTable, VipPlan, needed_vips, plan_vips};

impl<K: Kernel> Engine<K> {
    /// The same engine, keeping the node's addresses on `addresses`' interface as the services need them. When
    /// the state file says the addresses it owns were added to another interface, they are left there and
    /// forgotten (with a warning naming them): this engine manages one interface.
    pub fn with_addresses(mut self, addresses: Box<dyn NodeAddresses>) -> Self {
        let name = addresses.interface().to_owned();
        let vips = &mut self.ownership.vips;
        if vips.interface.as_ref().is_some_and(|old| *old != name) {
            if !vips.addrs.is_empty() || vips.created.is_some() {
                let left: Vec<String> = vips.addrs.iter().map(ToString::to_string).collect();
                warn!(
                    old = vips.interface.as_deref().unwrap_or_default(),
                    new = %name,
                    addresses = %left.join(" "),
                    "the VIP interface changed: the old one and the addresses added to it are left there and no \
                     longer managed"
                );
            }
            vips.addrs.clear();
            // The index of an interface this program made names the old interface, not this one.
            vips.created = None;
        }
        vips.interface = Some(name);
        self.addresses = Some(addresses);
        self.listed = None;
        self
    }

    /// Lists the interface's addresses, when they are managed; with `create`, the interface is made when
    /// missing (a pass that may change things), and remembered as made by this program.
    pub(super) async fn list_addresses(&mut self, create: bool) -> Result<(), EngineErrorOf<K>> {
        self.listed = None;
        let Some(addresses) = &self.addresses else { return Ok(()) };
        let listing = addresses.list(create).await.map_err(EngineError::Addresses)?;
        self.listed = Some(listing.addresses);
        self.elsewhere = listing.elsewhere;
        if let (true, Some(index)) = (listing.made, listing.index) {
            // Remembered once made, as its index is known only then: a crash in between leaves an empty interface
            // that is not known to be ours, which cleanup leaves in place (never one it did not make).
            info!(interface = addresses.interface(), index, "made the VIP interface");
            self.ownership.vips.created = Some(index);
            self.save_ownership()?;
        }
        Ok(())
    }

    /// The address changes that take the interface from its listing to what `desired` and the services kept in
    /// `live` need, looking only at the addresses `among` (all of them: `None`).
    fn address_plan(&self, desired: &DesiredTable, live: &Table, among: Option<&BTreeSet<IpAddr>>) -> Option<VipPlan> {
        let listed = self.listed.as_ref()?;
        let looked_at = |addr: &&IpAddr| among.is_none_or(|among| among.contains(*addr));
        let needed = needed_vips(desired, live, &self.ownership.owned, among);
        let on_interface: BTreeSet<IpAddr> = listed.keys().filter(looked_at).copied().collect();
        let owned: BTreeSet<IpAddr> = self.ownership.vips.addrs.iter().filter(looked_at).copied().collect();
        let elsewhere: BTreeSet<IpAddr> = self.elsewhere.iter().filter(looked_at).copied().collect();
        Some(plan_vips(&needed, &on_interface, &elsewhere, &owned))
    }

    /// What a pass of `plan` would do to the addresses (the `plan` command): the additions before it, and the
    /// removals once its operations are applied. `None` when addresses are not managed.
    pub fn planned_addresses(&self, desired: &DesiredTable, ops: &[crate::model::Op]) -> Option<VipPlan> {
        let live = self.observed.clone().unwrap_or_default();
        let before = self.address_plan(desired, &live, None)?;
        let mut after_ops = live;
        for op in ops {
            // A refusal here is the kernel's to report when the pass runs; the plan only needs the table after.
            let _ = crate::table::apply_op(&mut after_ops, op);
        }
        let after = self.address_plan(desired, &after_ops, None)?;
        Some(VipPlan { add: before.add, remove: after.remove, foreign: before.foreign, owned_after: after.owned_after })
    }

    /// Adds the missing addresses the services need, before the IPVS changes.
    pub(super) async fn add_addresses(
        &mut self,
        desired: &DesiredTable,
        among: Option<&BTreeSet<IpAddr>>,
        report: &mut AddressReport,
    ) -> Result<(), StateError> {
        let empty = Table::default();
        let live = self.observed.as_ref().unwrap_or(&empty);
        let Some(plan) = self.address_plan(desired, live, among) else { return Ok(()) };
        if plan.add.is_empty() {
            return Ok(());
        }
        // Remember first: a crash after the address is added must not leave an address nobody knows is ours.
        self.ownership.vips.addrs.extend(plan.add.iter().copied());
        self.save_ownership()?;
        let mut forgotten = false;
        for addr in plan.add {
            let Some(addresses) = &self.addresses else { break };
            match addresses.add(addr).await {
                Ok(()) => {
                    if let Some(listed) = self.listed.as_mut() {
                        listed.insert(addr, host_prefix(addr));
                    }
                    report.added.push(addr);
                }
                Err(e) if e.is_exists() => {
                    // Someone else added it since the listing: it is theirs, and it serves our services as well.
                    info!(%addr, interface = addresses.interface(), "address added by someone else meanwhile: used, not owned");
                    self.ownership.vips.addrs.remove(&addr);
                    forgotten = true;
                    // Its prefix is unknown until the next listing: one that is not a host prefix is never removed.
                    self.listed = None;
                }
                Err(error) => {
                    warn!(%addr, interface = addresses.interface(), %error, "adding a VIP failed");
                    if error.is_refusal() {
                        // Not added: nothing to own.
                        self.ownership.vips.addrs.remove(&addr);
                        forgotten = true;
                    } else {
                        // Maybe added: it stays owned (harmless if absent: the next listing forgets it) and the
                        // next pass lists the interface again.
                        self.listed = None;
                    }
                    let services = services_binding(desired, addr);
                    report.failures.push(AddressFailure { addr, adding: true, services, error });
                }
            }
        }
        if forgotten {
            self.save_ownership()?;
        }
        Ok(())
    }

    /// Removes the owned addresses no service needs any more, after the IPVS changes. Owned addresses someone
    /// removed are forgotten.
    pub(super) async fn remove_addresses(
        &mut self,
        desired: &DesiredTable,
        among: Option<&BTreeSet<IpAddr>>,
        report: &mut AddressReport,
    ) -> Result<(), StateError> {
        // An unknown IPVS outcome (no observed table) or an unknown listing: nothing is known to be unneeded.
        let Some(live) = self.observed.as_ref() else { return Ok(()) };
        let Some(plan) = self.address_plan(desired, live, among) else { return Ok(()) };
        let owned_before = self.ownership.vips.addrs.clone();
        // Owned addresses no longer on the interface and not needed are forgotten; those still needed but missing
        // (an add that failed) stay owned until the next pass adds them.
        let looked_at = |addr: &IpAddr| among.is_none_or(|among| among.contains(addr));
        let listed = self.listed.clone().unwrap_or_default();
        self.ownership.vips.addrs.retain(|addr| {
            !looked_at(addr) || listed.contains_key(addr) || plan.add.contains(addr) || plan.remove.contains(addr)
        });
        for addr in plan.remove {
            let Some(addresses) = &self.addresses else { break };
            if listed.get(&addr) != Some(&host_prefix(addr)) {
                warn!(%addr, interface = addresses.interface(), "an owned VIP is no longer a host address: someone changed it; left alone and forgotten");
                self.ownership.vips.addrs.remove(&addr);
                continue;
            }
            match addresses.remove(addr).await {
                Ok(()) => {
                    self.ownership.vips.addrs.remove(&addr);
                    if let Some(listed) = self.listed.as_mut() {
                        listed.remove(&addr);
                    }
                    report.removed.push(addr);
                }
                Err(e) if e.is_gone() => {
                    self.ownership.vips.addrs.remove(&addr);
                    if let Some(listed) = self.listed.as_mut() {
                        listed.remove(&addr);
                    }
                }
                Err(error) => {
                    warn!(%addr, interface = addresses.interface(), %error, "removing a VIP failed");
                    if !error.is_refusal() {
                        self.listed = None;
                    }
                    report.failures.push(AddressFailure { addr, adding: false, services: Vec::new(), error });
                }
            }
        }
        if self.ownership.vips.addrs != owned_before {
            self.save_ownership()?;
        }
        Ok(())
    }
}

/// The declared services that bind `addr`.
fn services_binding(desired: &DesiredTable, addr: IpAddr) -> Vec<crate::model::ServiceKey> {
    desired.vip_bindings().filter(|(bound, _)| *bound == addr).map(|(_, key)| key).collect()
}

#[cfg(test)]
mod tests;
