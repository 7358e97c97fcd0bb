//! Services of ours that another program removed between two passes. The engine knows what the last pass left in
//! the kernel (its observed table, kept up to date with every change it made since); a full read that misses one of
//! those owned, still declared services means someone else deleted it. The pass adds it back like any missing
//! service; this says so, once per service: kube-proxy in IPVS mode deletes every IPVS service it did not create
//! unless its `--ipvs-exclude-cidrs` covers the address, and the service then flaps between its syncs and ours.

use std::collections::BTreeSet;

use tracing::warn;

use super::kernel::Kernel;
use super::reconcile::Engine;
use crate::model::ServiceKey;
use crate::table::DesiredTable;

impl<K: Kernel> Engine<K> {
    /// The owned services still declared that the engine last saw in the kernel (none before its first full read,
    /// nor after a change whose outcome is unknown: the observed table is then dropped).
    pub(super) fn expected_in_kernel(&self, desired: &DesiredTable) -> BTreeSet<ServiceKey> {
        let Some(observed) = &self.observed else { return BTreeSet::new() };
        observed
            .services
            .keys()
            .filter(|key| self.ownership.owned.contains(key) && desired.services.contains_key(key))
            .copied()
            .collect()
    }

    /// Those of `expected` that the fresh read did not find, each logged the first time.
    pub(super) fn vanished(&mut self, expected: BTreeSet<ServiceKey>) -> Vec<ServiceKey> {
        let Some(observed) = &self.observed else { return Vec::new() };
        let gone: Vec<ServiceKey> = expected.into_iter().filter(|key| !observed.services.contains_key(key)).collect();
        for key in &gone {
            if self.vanished_logged.insert(*key) {
                warn!(
                    service = %key,
                    "removed from the kernel by another program since the last pass; added back (kube-proxy in IPVS \
                     mode deletes IPVS services it did not create unless --ipvs-exclude-cidrs covers them)"
                );
            }
        }
        gone
    }
}
