//! Connection-sync daemons: the minimal stops and starts from the running ones to the configured ones, with the
//! IPVS table's ownership rules. A daemon this program did not start is never stopped (if it is what the
//! configuration asks for, it is used; if not, it is reported); a change to one it started is a stop and a start
//! (the kernel edits no daemon in place).

use crate::model::{DaemonState, SyncDaemon};

/// What to do to the daemons.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DaemonPlan {
    /// Daemons to stop, first.
    pub stop: Vec<DaemonState>,
    /// Daemons to start, after the stops.
    pub start: Vec<SyncDaemon>,
    /// Running daemons started by someone else that differ from the configured ones: left alone, reported.
    pub foreign: Vec<SyncDaemon>,
    /// What this program has started once the plan is applied.
    pub owned_after: Vec<SyncDaemon>,
}

impl DaemonPlan {
    /// Whether nothing is to be done.
    pub fn is_empty(&self) -> bool {
        self.stop.is_empty() && self.start.is_empty()
    }
}

/// Whether the running daemon `have` is the configured `want`: the same role, interface and id, and every field
/// `want` sets (the kernel reports its defaults for the others).
pub fn satisfies(want: &SyncDaemon, have: &SyncDaemon) -> bool {
    fn same<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
        want.is_none() || want == have
    }
    want.state == have.state
        && want.interface == have.interface
        && want.sync_id == have.sync_id
        && same(&want.max_len, &have.max_len)
        && same(&want.group, &have.group)
        && same(&want.port, &have.port)
        && same(&want.ttl, &have.ttl)
}

/// The changes from `running` (as just read) to `wanted`, given what this program started (`owned`).
pub fn plan_daemons(wanted: &[SyncDaemon], running: &[SyncDaemon], owned: &[SyncDaemon]) -> DaemonPlan {
    let mut plan = DaemonPlan::default();
    for state in [DaemonState::Master, DaemonState::Backup] {
        let of = |list: &[SyncDaemon]| list.iter().find(|d| d.state == state).cloned();
        let (want, have, mine) = (of(wanted), of(running), of(owned));
        // The running daemon is ours when it is still the one we started.
        let ours = matches!((&have, &mine), (Some(have), Some(mine)) if satisfies(mine, have));
        match (want, have) {
            (Some(want), None) => {
                plan.start.push(want.clone());
                plan.owned_after.push(want);
            }
            (Some(want), Some(have)) if satisfies(&want, &have) => {
                if ours {
                    plan.owned_after.push(mine.unwrap_or(want));
                }
            }
            (Some(want), Some(_)) if ours => {
                plan.stop.push(state);
                plan.start.push(want.clone());
                plan.owned_after.push(want);
            }
            (Some(_), Some(have)) => plan.foreign.push(have),
            (None, Some(_)) if ours => plan.stop.push(state),
            (None, _) => {}
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn daemon(state: DaemonState, interface: &str, id: u32) -> SyncDaemon {
        SyncDaemon {
            state,
            interface: interface.into(),
            sync_id: id,
            max_len: None,
            group: None,
            port: None,
            ttl: None,
        }
    }

    /// As the kernel reports a daemon: every default filled in.
    fn reported(d: &SyncDaemon) -> SyncDaemon {
        SyncDaemon {
            max_len: d.max_len.or(Some(1472)),
            group: d.group.or(Some("224.0.0.81".parse().unwrap())),
            port: d.port.or(Some(8848)),
            ttl: d.ttl.or(Some(1)),
            ..d.clone()
        }
    }

    #[test]
    fn a_configured_daemon_starts_once_and_a_change_restarts_only_ours() {
        let master = daemon(DaemonState::Master, "eth1", 7);
        let plan = plan_daemons(std::slice::from_ref(&master), &[], &[]);
        assert!(!plan.is_empty());
        assert_eq!((plan.stop.clone(), plan.start.clone()), (vec![], vec![master.clone()]));
        let running = vec![reported(&master)];
        assert!(plan_daemons(std::slice::from_ref(&master), &running, &plan.owned_after).is_empty(), "defaults match");

        let moved = daemon(DaemonState::Master, "eth2", 7);
        let plan = plan_daemons(std::slice::from_ref(&moved), &running, std::slice::from_ref(&master));
        assert!(!plan.is_empty());
        assert_eq!((plan.stop, plan.start), (vec![DaemonState::Master], vec![moved.clone()]), "stop, then start");

        // A field set explicitly must match what runs: a port other than the running default is a restart.
        let other_port = SyncDaemon { port: Some(9000), ..master.clone() };
        assert!(!satisfies(&other_port, &running[0]));
        let plan = plan_daemons(std::slice::from_ref(&other_port), &running, std::slice::from_ref(&master));
        assert_eq!((plan.stop, plan.start), (vec![DaemonState::Master], vec![other_port]));

        // Someone else's master: used when it is what we want, reported (never stopped) when it is not.
        let theirs = vec![reported(&master)];
        let plan = plan_daemons(std::slice::from_ref(&master), &theirs, &[]);
        assert!(plan.is_empty() && plan.owned_after.is_empty() && plan.foreign.is_empty());
        let plan = plan_daemons(std::slice::from_ref(&moved), &theirs, &[]);
        assert!(plan.is_empty());
        assert_eq!(plan.foreign, theirs);
        assert!(plan_daemons(&[], &theirs, &[]).is_empty(), "not ours: not stopped");
        assert_eq!(plan_daemons(&[], &theirs, std::slice::from_ref(&master)).stop, vec![DaemonState::Master]);
    }

    fn any_daemon(state: DaemonState) -> impl Strategy<Value = Option<SyncDaemon>> {
        prop::option::of(
            (prop::sample::select(vec!["eth0", "eth1"]), 0u32..3, prop::option::of(1u8..3))
                .prop_map(move |(interface, id, ttl)| SyncDaemon { ttl, ..daemon(state, interface, id) }),
        )
    }

    fn pair() -> impl Strategy<Value = Vec<SyncDaemon>> {
        (any_daemon(DaemonState::Master), any_daemon(DaemonState::Backup))
            .prop_map(|(m, b)| m.into_iter().chain(b).collect())
    }

    proptest! {
        /// Applied, a plan never stops a daemon it does not own, runs every wanted daemon unless someone else's
        /// holds its role, and a second plan is empty.
        #[test]
        fn plans_converge_and_never_stop_a_foreign_daemon(wanted in pair(), running in pair(), owned in pair()) {
            let running: Vec<SyncDaemon> = running.iter().map(reported).collect();
            let plan = plan_daemons(&wanted, &running, &owned);
            for state in &plan.stop {
                let mine = owned.iter().find(|d| d.state == *state);
                let have = running.iter().find(|d| d.state == *state);
                prop_assert!(matches!((mine, have), (Some(m), Some(h)) if satisfies(m, h)), "stopped a foreign {state:?}");
            }
            let mut after: Vec<SyncDaemon> = running.iter().filter(|d| !plan.stop.contains(&d.state)).cloned().collect();
            for start in &plan.start {
                prop_assert!(!after.iter().any(|d| d.state == start.state), "started over a running {:?}", start.state);
                after.push(reported(start));
            }
            for want in &wanted {
                let have = after.iter().find(|d| d.state == want.state);
                prop_assert!(have.is_some_and(|h| satisfies(want, h)) || plan.foreign.iter().any(|f| f.state == want.state));
            }
            let again = plan_daemons(&wanted, &after, &plan.owned_after);
            prop_assert!(again.is_empty(), "{again:?}");
        }
    }
}
