//! Taking over a table another program built (keepalived, or a node whose state file was lost): the state each
//! checked backend starts from, read off the live table, so that no live backend's weight moves before its own
//! checks decide (pure).
//!
//! Without it, a backend with no saved health starts from its policy's initial state: under keepalived's `alpha`
//! (`initialState: Unhealthy`) every backend serving traffic would drop to weight 0 (or be removed) at the first
//! pass, and under `onFailure: Remove` a backend keepalived had taken out for failing would come back in before
//! its first probe. Here a backend already in the kernel with a weight starts healthy, one the kernel holds at
//! weight 0 although it is declared with a weight starts unhealthy (inhibited), and one missing from a live
//! service whose policy removes failed backends starts unhealthy (removed): each keeps what it had until its own
//! `rise` or `fall` results change it. States saved in the state file take precedence over these.

use std::collections::BTreeMap;

use crate::health::{HealthState, TargetKey};
use crate::model::Table;
use crate::table::{DesiredTable, OnFailure};

/// The starting state of each checked backend of a declared service that the live table already holds. A target
/// shared by several services starts healthy when any of them has it serving (its traffic never drops).
pub fn live_states(desired: &DesiredTable, live: &Table) -> BTreeMap<TargetKey, HealthState> {
    let mut states: BTreeMap<TargetKey, HealthState> = BTreeMap::new();
    for (key, declared) in &desired.services {
        let Some(policy) = declared.health.as_deref().filter(|policy| policy.check.is_some()) else { continue };
        let Some(entry) = live.services.get(key) else { continue };
        for dest in declared.dests.values() {
            let Some(target) = policy.target(&dest.key) else { continue };
            let healthy = match entry.dests.get(&dest.key) {
                Some(live) if live.config.weight > 0 => true,
                // Declared with a weight, held at 0: inhibited for failing.
                Some(_) if dest.config.weight > 0 && policy.on_failure == OnFailure::Inhibit => false,
                // Declared at 0 (or removal is the policy and someone set 0): the weight says nothing of health.
                Some(_) => continue,
                None if policy.on_failure == OnFailure::Remove => false,
                None => continue,
            };
            states
                .entry(target)
                .and_modify(|state| state.healthy |= healthy)
                .or_insert_with(|| HealthState::new(healthy));
        }
    }
    states
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{DestKey, ServiceKey};
    use crate::table::fixtures::{desired, desired_service, dest, live, live_entry, svc, tcp_policy};

    fn checked(
        key: ServiceKey,
        dests: &[(DestKey, u32)],
        on_failure: OnFailure,
        initial_healthy: bool,
    ) -> DesiredTable {
        let mut service = desired_service(key, "wlc", dests, 0);
        let mut policy = tcp_policy();
        policy.on_failure = on_failure;
        policy.schedule.initial_healthy = initial_healthy;
        service.health = Some(Arc::new(policy));
        desired([service])
    }

    fn healthy_of(states: &BTreeMap<TargetKey, HealthState>, dest: DestKey) -> Option<bool> {
        states.iter().find(|(key, _)| key.target.ip() == dest.addr).map(|(_, state)| state.healthy)
    }

    #[test]
    fn a_serving_backend_starts_healthy_even_under_alpha() {
        let table = checked(svc(1), &[(dest(1), 3), (dest(2), 3)], OnFailure::Inhibit, false);
        let kernel = live([live_entry(svc(1), "wlc", &[(dest(1), 3, 0, 0), (dest(2), 0, 0, 0)])]);
        let states = live_states(&table, &kernel);
        assert_eq!(healthy_of(&states, dest(1)), Some(true), "keeps its weight until its checks decide");
        assert_eq!(healthy_of(&states, dest(2)), Some(false), "inhibited by keepalived: stays at 0");
        assert!(states.values().all(|s| s.last_transition.is_none()), "a started state, not a recovery");
    }

    #[test]
    fn a_backend_keepalived_removed_stays_out_under_remove() {
        let table = checked(svc(1), &[(dest(1), 1), (dest(2), 1)], OnFailure::Remove, true);
        let kernel = live([live_entry(svc(1), "wlc", &[(dest(1), 1, 0, 0)])]);
        let states = live_states(&table, &kernel);
        assert_eq!(healthy_of(&states, dest(2)), Some(false));
        assert_eq!(healthy_of(&states, dest(1)), Some(true));
        // Under Inhibit, a missing backend is simply new: it starts from the policy's initial state.
        let table = checked(svc(1), &[(dest(1), 1), (dest(2), 1)], OnFailure::Inhibit, true);
        assert_eq!(healthy_of(&live_states(&table, &kernel), dest(2)), None);
    }

    #[test]
    fn services_the_kernel_does_not_hold_start_from_their_policy() {
        let table = checked(svc(1), &[(dest(1), 1)], OnFailure::Remove, false);
        assert!(live_states(&table, &live([])).is_empty());
        let unchecked = desired([desired_service(svc(1), "wlc", &[(dest(1), 1)], 0)]);
        let kernel = live([live_entry(svc(1), "wlc", &[(dest(1), 1, 0, 0)])]);
        assert!(live_states(&unchecked, &kernel).is_empty());
    }
}
