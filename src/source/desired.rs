//! Desired state shared between the sources that feed it and the agent that applies it.
//!
//! Sources change the [`ObjectIndex`] through [`DesiredState::update`]; the keys each change reports accumulate until
//! the agent takes them with [`DesiredState::take`], together with the desired table as it is at that moment. Changes
//! are published on a `tokio::sync::watch` channel (a generation counter), so the agent wakes once however many
//! changes came, and coalescing is free. Keys and table are taken under one lock: a key is never taken without the
//! table that includes its change.
//!
//! A change pass must cost what changed, not the size of the table, so the agent keeps its snapshot and
//! [`DesiredState::take_into`] patches it with the changed keys' entries; full passes take a whole copy.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::index::{Changed, ObjectIndex, ReportChange, ReportsWanted};
use crate::api::ObjectId;
use crate::model::ServiceKey;
use crate::table::DesiredTable;

/// The shared desired state. Clones share it.
#[derive(Clone)]
pub struct DesiredState {
    shared: Arc<Mutex<Shared>>,
    generation: Arc<watch::Sender<u64>>,
}

struct Shared {
    index: ObjectIndex,
    /// Keys changed since the last `take`.
    changed: Changed,
    /// Whether every source has delivered a complete first view (a pass on a partial view would delete).
    ready: bool,
    generation: u64,
}

/// What the agent plans with: the desired table, what changed since the last take, and what must be left alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Counts updates; grows by one per update that changed anything.
    pub generation: u64,
    /// The desired table.
    pub table: DesiredTable,
    /// Keys whose desired entry (or held state) changed since the previous take.
    pub changed: Changed,
    /// Services of invalid objects: to be left exactly as they are.
    pub frozen: BTreeSet<ServiceKey>,
    /// Some invalid object names no service: no service may be deleted.
    pub hold_service_deletes: bool,
    /// The destinations of every service of `table` (kept as the table is patched, for the metrics).
    pub destinations: usize,
    /// Objects no pool admits (for the metrics).
    pub not_admitted: usize,
    /// Objects are decided by pools and no pool exists: nothing can be admitted (for the metrics).
    pub lacks_pools: bool,
}

impl Snapshot {
    /// The object that asks for `key`, or that holds it while invalid.
    pub fn origin(&self, key: &ServiceKey) -> Option<&ObjectId> {
        self.table.services.get(key).map(|s| &s.origin)
    }
}

impl Default for DesiredState {
    fn default() -> Self {
        Self::new()
    }
}

impl DesiredState {
    /// An empty state, not ready.
    pub fn new() -> Self {
        let shared = Shared { index: ObjectIndex::new(), changed: Changed::new(), ready: false, generation: 0 };
        DesiredState { shared: Arc::new(Mutex::new(shared)), generation: Arc::new(watch::Sender::new(0)) }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding the lock leaves a consistent index (each change is applied whole or not at all
        // before any key is reported), so the poison flag is not a reason to stop.
        self.shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the index with `change`, which returns the keys its changes reported (the index's methods return
    /// them). Publishes only if the index really changed (a re-sent object, such as the watch event of a status
    /// write or a Node heartbeat, wakes nobody).
    pub fn update<R>(&self, change: impl FnOnce(&mut ObjectIndex) -> (Changed, R)) -> R {
        let mut shared = self.lock();
        let before = shared.index.revision();
        let (mut changed, result) = change(&mut shared.index);
        shared.changed.append(&mut changed);
        if shared.index.revision() == before && changed.is_empty() {
            return result;
        }
        shared.generation += 1;
        let generation = shared.generation;
        // Sent under the lock, so that generations are published in order.
        self.generation.send_replace(generation);
        result
    }

    /// Declares that the sources have delivered a complete view; wakes the agent.
    pub fn mark_ready(&self) {
        let mut shared = self.lock();
        if !shared.ready {
            shared.ready = true;
            shared.generation += 1;
            let generation = shared.generation;
            self.generation.send_replace(generation);
        }
    }

    /// Whether the sources have delivered a complete view.
    pub fn is_ready(&self) -> bool {
        self.lock().ready
    }

    /// A receiver that wakes on every publication.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// The desired table now and the keys changed since the last take (which are then forgotten).
    pub fn take(&self) -> Snapshot {
        let mut shared = self.lock();
        let changed = std::mem::take(&mut shared.changed);
        snapshot(&shared, changed)
    }

    /// Like [`DesiredState::take`], but brings `snapshot`, an earlier take, up to date by changing only the
    /// entries of the changed keys (what a change pass costs), or with `whole` by copying everything (a full pass,
    /// which reads everything anyway). The index reports exactly the keys whose entry or held state changed, so
    /// both give the same snapshot.
    pub fn take_into(&self, snapshot: &mut Snapshot, whole: bool) {
        let mut shared = self.lock();
        let changed = std::mem::take(&mut shared.changed);
        if whole {
            *snapshot = self::snapshot(&shared, changed);
            return;
        }
        let index = &shared.index;
        for key in &changed {
            if let Some(old) = snapshot.table.services.remove(key) {
                snapshot.destinations -= old.dests.len();
            }
            if let Some(new) = index.table().services.get(key) {
                snapshot.destinations += new.dests.len();
                snapshot.table.services.insert(*key, Arc::clone(new));
            }
            if index.held().contains_key(key) {
                snapshot.frozen.insert(*key);
            } else {
                snapshot.frozen.remove(key);
            }
        }
        snapshot.generation = shared.generation;
        snapshot.hold_service_deletes = index.has_keyless_problems();
        snapshot.not_admitted = index.not_admitted();
        snapshot.lacks_pools = index.lacks_pools();
        snapshot.changed = changed;
    }

    /// Like [`DesiredState::take`], but leaves the changed keys for the next take.
    #[cfg(any(test, feature = "testing"))]
    pub fn peek(&self) -> Snapshot {
        let shared = self.lock();
        snapshot(&shared, shared.changed.clone())
    }

    /// The reports that may have changed since the last call, and those `wanted` asks for (see
    /// [`ObjectIndex::changed_reports`]; the first call gives all).
    pub fn changed_reports(&self, wanted: &ReportsWanted) -> Vec<ReportChange> {
        self.lock().index.changed_reports(wanted)
    }

    /// Reads the index (for status and tests).
    pub fn with_index<R>(&self, read: impl FnOnce(&ObjectIndex) -> R) -> R {
        read(&self.lock().index)
    }
}

fn snapshot(shared: &Shared, changed: Changed) -> Snapshot {
    let index = &shared.index;
    Snapshot {
        generation: shared.generation,
        table: index.table().clone(),
        changed,
        frozen: index.held().keys().copied().collect(),
        hold_service_deletes: index.has_keyless_problems(),
        destinations: index.table().services.values().map(|s| s.dests.len()).sum(),
        not_admitted: index.not_admitted(),
        lacks_pools: index.lacks_pools(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Age, SourceObject, ValidationError};

    fn web(port: u16) -> SourceObject {
        SourceObject {
            id: ObjectId::kubernetes("d", "web"),
            age: Age::Created { seconds: 1, nanos: 0 },
            spec: serde_yaml::from_str(&format!("address: 192.0.2.1\nport: {port}\n")).unwrap(),
            generation: None,
        }
    }

    #[test]
    fn changes_accumulate_until_taken_and_wake_the_subscriber() {
        let state = DesiredState::new();
        let mut rx = state.subscribe();
        assert!(!rx.has_changed().unwrap());
        state.update(|index| (index.apply(web(80)), ()));
        state.update(|index| (index.apply(web(81)), ()));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        let taken = state.take();
        let keys: Vec<String> = taken.changed.iter().map(ToString::to_string).collect();
        // Port 80 was claimed then released: both keys changed since the last take.
        assert_eq!(keys, vec!["TCP 192.0.2.1:80", "TCP 192.0.2.1:81"]);
        assert_eq!(taken.table.services.len(), 1);
        assert_eq!(taken.generation, 2);
        let key = *taken.table.services.keys().next().unwrap();
        assert_eq!(taken.origin(&key), Some(&ObjectId::kubernetes("d", "web")), "the CLI names who declared it");
        assert!(state.take().changed.is_empty(), "taken keys are forgotten");
        state.update(|index| (index.apply(web(82)), ()));
        assert_eq!(state.peek().changed.len(), 2);
        assert_eq!(state.take().changed.len(), 2, "peek leaves the keys");
    }

    #[test]
    fn a_patched_snapshot_is_the_whole_one() {
        let state = DesiredState::new();
        state.update(|index| (index.apply(web(80)), ()));
        let mut kept = state.take();
        let mut other = web(90);
        other.id = ObjectId::kubernetes("d", "other");
        let mut bad = web(81);
        bad.id = ObjectId::kubernetes("d", "bad");
        bad.spec.scheduler = Some("nope".into());
        for change in [other.clone(), bad, web(82)] {
            state.update(|index| (index.apply(change), ()));
            state.take_into(&mut kept, false);
            let whole = state.peek();
            assert_eq!(
                (&kept.table, &kept.frozen, kept.destinations),
                (&whole.table, &whole.frozen, whole.destinations)
            );
        }
        assert_eq!(kept.frozen.len(), 1, "the invalid object's key is frozen");
        assert_eq!(kept.changed.len(), 2, "web moved from 80 to 82");
        state.update(|index| (index.delete(&other.id), ()));
        state.take_into(&mut kept, false);
        assert_eq!(kept.table.services.len(), 1);
        state.take_into(&mut kept, true);
        assert_eq!((kept.table.services.len(), kept.changed.len()), (1, 0));
    }

    #[test]
    fn an_object_sent_again_unchanged_wakes_nobody() {
        let state = DesiredState::new();
        state.update(|index| (index.apply(web(80)), ()));
        let mut rx = state.subscribe();
        rx.mark_unchanged();
        // What the watch delivers after a status write: the same spec, the same generation.
        state.update(|index| (index.apply(web(80)), ()));
        state.update(|index| (index.set_node_labels(None), ()));
        assert!(!rx.has_changed().unwrap());
        state.update(|index| (index.set_node_labels(Some(Default::default())), ()));
        assert!(rx.has_changed().unwrap(), "a real change publishes, even one that moves no service");
    }

    #[test]
    fn readiness_is_published_once() {
        let state = DesiredState::new();
        let mut rx = state.subscribe();
        assert!(!state.is_ready());
        state.mark_ready();
        assert!(state.is_ready() && rx.has_changed().unwrap());
        rx.mark_unchanged();
        state.mark_ready();
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn invalid_objects_freeze_their_service_and_keyless_ones_hold_deletions() {
        let state = DesiredState::new();
        let mut bad = web(80);
        bad.spec.scheduler = Some("nope".into());
        state.update(|index| (index.apply(bad), ()));
        let snap = state.take();
        assert_eq!(snap.frozen.iter().map(ToString::to_string).collect::<Vec<_>>(), vec!["TCP 192.0.2.1:80"]);
        assert!(!snap.hold_service_deletes);
        let id = ObjectId::document("x.yaml", 0);
        state.update(|index| (index.apply_unreadable(id.clone(), vec![ValidationError::new(id, "", "bad")]), ()));
        assert!(state.take().hold_service_deletes);
    }
}
