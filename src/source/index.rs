//! The one merge point of desired state: every source feeds it, and it alone decides which object's service is
//! desired.
//!
//! Sources hand it objects through `apply` / `apply_unreadable` / `delete` / `reset` (a watch's events, or the
//! documents of changed files). Each object is validated once, when it is applied. The index keeps, per service key,
//! every object that claims it ordered by age; the oldest claimant wins (an invalid one still claims its key, which
//! is then *held*: left as it is in the kernel until the object is fixed), the others are conflicts. Every change
//! returns the service keys whose desired entry (or held state) it changed — exactly those, so that a pass can
//! re-read and plan only them.
//!
//! In `pools` admission mode (the Kubernetes agent's default) an object is also decided against the
//! `VirtualServicePool`s ([`super::admission`]): one that is not admitted claims nothing, so it is never programmed
//! and never blocks an admitted object claiming the same key (no squatting), not even while it is invalid.
//!
//! The result depends only on the set of objects, never on the order in which they arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use kube::core::SelectorExt;

use super::admission::{Admission, AdmissionMode, Claim, Labels, NotAdmitted, Pool};
use super::endpoints::{ServiceRef, ServiceSlices, Slice, resolve};
use crate::api::{Age, Conflict, Declared, ObjectId, Rejected, SourceObject, ValidationError, validate_read};
use crate::model::ServiceKey;
use crate::table::{DesiredService, DesiredTable};

/// Service keys whose desired entry or held state changed.
pub type Changed = BTreeSet<ServiceKey>;

/// A set that almost always holds one element (the claimants of a key, the objects using a Service): a sorted
/// vector, since a `BTreeSet` allocates a whole node (eleven slots) for its first element, which at 10,000 objects
/// was most of the index's memory.
type SmallSet<T> = litemap::LiteMap<T, ()>;

/// A new [`SmallSet`] with room for one: a vector's first growth makes room for four, which for the claimants'
/// `(Age, ObjectId)` was 320 bytes per object, most of it never used.
fn one<T: Ord>() -> SmallSet<T> {
    SmallSet::with_capacity(1)
}

/// What an object turned out to be.
#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// Read and validated: what it declares, or every problem it has; and what that resolves to on this node.
    /// (`Rejected` boxed as well as `Declared`: an entry of every object sits in the index's map.)
    Validated {
        age: Age,
        generation: Option<i64>,
        declared: Result<Box<Declared>, Box<Rejected>>,
        resolution: Resolution,
    },
    /// Seen, but not readable as a `VirtualService` (bad YAML, wrong kind, wrong field types).
    Unreadable(Vec<ValidationError>),
}

/// What a valid declaration comes to here, given the node's labels and the EndpointSlices.
#[derive(Debug, Clone, PartialEq)]
enum Resolution {
    /// Its node selector does not select this node: it asks for nothing here.
    NotSelected,
    /// The service with every backend.
    Desired(Arc<DesiredService>),
    /// Its backends cannot be made (a port that cannot be chosen, a backend from two origins).
    Invalid(Vec<ValidationError>),
    /// No pool admits it here (`pools` admission): it asks for nothing, and says why.
    NotAdmitted(NotAdmitted),
    /// The declaration itself is invalid; `holds`: it still holds the key it names (left as it is in the kernel),
    /// which only an object admitted to that key may do.
    Rejected {
        /// Whether it holds its key.
        holds: bool,
    },
    /// A file's document with the namespace/name of an older one (`kubectl apply` would merge the two): ignored,
    /// every problem it has with the duplicate first; it holds the key it names, as an invalid object does.
    Duplicate(Vec<ValidationError>),
}

impl Entry {
    /// The service key it claims here, if it names one.
    fn key(&self) -> Option<ServiceKey> {
        match self {
            Entry::Validated { resolution: Resolution::Duplicate(_), .. } => named_key(self),
            Entry::Validated { declared: Err(rejected), resolution: Resolution::Rejected { holds: true }, .. } => {
                rejected.key
            }
            Entry::Validated { declared: Err(_), .. } => None,
            Entry::Validated { resolution: Resolution::NotSelected | Resolution::NotAdmitted(_), .. } => None,
            Entry::Validated { declared: Ok(declared), .. } => Some(declared.service.service.key),
            Entry::Unreadable(_) => None,
        }
    }

    fn age(&self) -> Option<Age> {
        match self {
            Entry::Validated { age, .. } => Some(*age),
            Entry::Unreadable(_) => None,
        }
    }

    fn errors(&self) -> &[ValidationError] {
        match self {
            Entry::Validated { resolution: Resolution::Duplicate(errors), .. } => errors,
            Entry::Validated { declared: Err(rejected), .. } => &rejected.errors,
            Entry::Validated { resolution: Resolution::Invalid(errors), .. } => errors,
            Entry::Validated { .. } => &[],
            Entry::Unreadable(errors) => errors,
        }
    }

    /// The Services whose EndpointSlices it takes backends from.
    fn uses(&self, id: &ObjectId) -> Vec<ServiceRef> {
        match (self, id) {
            (Entry::Validated { declared: Ok(declared), .. }, ObjectId::Kubernetes { namespace, .. }) => {
                declared.backends_from.iter().map(|from| (namespace.clone(), from.service.clone())).collect()
            }
            _ => Vec::new(),
        }
    }

    fn is_not_admitted(&self) -> bool {
        matches!(self, Entry::Validated { resolution: Resolution::NotAdmitted(_), .. })
    }

    fn has_node_selector(&self) -> bool {
        matches!(self, Entry::Validated { declared: Ok(declared), .. } if declared.node_selector.is_some())
    }
}

/// What one service key resolves to: the winner's service, or the invalid winner holding it.
#[derive(Debug, Clone, PartialEq)]
enum Resolved {
    Desired(Arc<DesiredService>),
    Held(ObjectId),
}

/// What became of one object on this node (for its status entry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectState {
    /// Its node selector does not select this node.
    NotSelected,
    /// No `VirtualServicePool` admits it: never programmed here.
    NotAdmitted {
        /// The service it asks for.
        key: ServiceKey,
        /// Why (`no pool grants 192.0.2.10 to namespace team-b`).
        reason: String,
    },
    /// It could not be read at all.
    Unreadable {
        /// Why.
        errors: Vec<ValidationError>,
    },
    /// It is invalid (or its backends cannot be made); its service, if it names one it holds, is left as it is.
    Invalid {
        /// The service it names, if that much is valid.
        key: Option<ServiceKey>,
        /// Every problem.
        errors: Vec<ValidationError>,
    },
    /// An older object claims the same service.
    Conflict {
        /// The service.
        key: ServiceKey,
        /// The older object that has it.
        winner: ObjectId,
    },
    /// Its service is desired here, with this many backends.
    Desired {
        /// The service.
        key: ServiceKey,
        /// Backends desired (static and from EndpointSlices).
        backends: usize,
    },
}

/// One object's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectReport {
    /// The object.
    pub id: ObjectId,
    /// Its `metadata.generation`, when the source has one.
    pub generation: Option<i64>,
    /// What became of it.
    pub state: ObjectState,
}

/// Everything the index says at one moment: the desired table and every problem, in one value for tests (the
/// commands and passes read the index's parts directly).
#[cfg(any(test, feature = "testing"))]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredOutcome {
    /// The services of every valid object that won its key.
    pub table: DesiredTable,
    /// Every problem of every object (see [`ObjectIndex::errors`]).
    pub errors: Vec<ValidationError>,
    /// Objects ignored because an older object asks for the same service.
    pub conflicts: Vec<Conflict>,
    /// Services asked for by invalid objects, by the object that holds them; not in `table`.
    pub held: BTreeMap<ServiceKey, ObjectId>,
    /// Whether some object with problems names no service (see [`ObjectIndex::has_keyless_problems`]).
    pub keyless_problems: bool,
}

#[cfg(any(test, feature = "testing"))]
impl DesiredOutcome {
    /// Whether every object was valid and none conflicted.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.conflicts.is_empty()
    }
}

/// Objects by identity, and the desired table they make.
#[derive(Debug, Clone, Default)]
pub struct ObjectIndex {
    objects: BTreeMap<ObjectId, Entry>,
    /// Every claimant of each key, oldest first.
    claims: BTreeMap<ServiceKey, SmallSet<(Age, ObjectId)>>,
    /// The winners' services.
    table: DesiredTable,
    /// Keys whose oldest claimant is invalid, by that claimant.
    held: BTreeMap<ServiceKey, ObjectId>,
    /// Objects with problems that name no service (unreadable, or their key fields invalid).
    keyless_problems: BTreeSet<ObjectId>,
    /// During [`ObjectIndex::batch`]: the resolution of every key touched, as it was when the batch began.
    batch: Option<BTreeMap<ServiceKey, Option<Resolved>>>,
    /// EndpointSlices by Service.
    slices: BTreeMap<ServiceRef, ServiceSlices>,
    /// Which objects take backends from each Service.
    users: BTreeMap<ServiceRef, SmallSet<ObjectId>>,
    /// This node's labels, for node selectors; `None` until known (selectors then select nothing).
    node_labels: Option<BTreeMap<String, String>>,
    /// Which objects may claim which keys (the pools, the namespaces' labels); open by default (files).
    admission: Admission,
    /// The objects not admitted (kept as entries change: a snapshot reads their count at every pass, and a pool
    /// change re-decides them).
    not_admitted: BTreeSet<ObjectId>,
    /// Every object that names a service (valid or not, admitted or not) by its VIP, and by its firewall mark: a
    /// pool change re-decides the objects in the ranges it grants without looking at the others.
    by_vip: BTreeMap<IpAddr, SmallSet<ObjectId>>,
    by_mark: BTreeMap<u32, SmallSet<ObjectId>>,
    /// File documents by their `namespace/name`, oldest first: only the oldest of each name counts.
    namesakes: BTreeMap<Arc<str>, SmallSet<(Age, ObjectId)>>,
    /// Counts changes that had an effect (an object, slice or label set that differs from what was there); a
    /// re-sent object (a status write, a Node heartbeat) does not move it.
    revision: u64,
    /// Objects whose report may have changed since [`ObjectIndex::changed_reports`] last ran; `None` until it first
    /// runs (nobody follows the reports, so nothing is tracked).
    report_changes: Option<BTreeSet<ObjectId>>,
}

/// Which reports [`ObjectIndex::changed_reports`] must give besides those of the objects that changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportsWanted {
    /// Every object's (something every report depends on changed, such as whether the last pass ran).
    pub all: bool,
    /// These objects' (a write that failed, an object deleted and created again).
    pub objects: BTreeSet<ObjectId>,
    /// The objects claiming these keys (the kernel's answer for the key changed).
    pub keys: BTreeSet<ServiceKey>,
}

/// A report that may have changed: the object's report now, or `None` when the object is gone.
pub type ReportChange = (ObjectId, Option<ObjectReport>);

impl ObjectIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces an object, validating it.
    pub fn apply(&mut self, object: SourceObject) -> Changed {
        self.apply_read(object, Vec::new())
    }

    /// [`ObjectIndex::apply`] for an object of which some fields could not be read (`unread`: their problems; the
    /// object is invalid while there are any, and names its service only if its key fields were read).
    pub fn apply_read(&mut self, object: SourceObject, unread: Vec<ValidationError>) -> Changed {
        let declared = validate_read(&object.id, &object.spec, unread).map(Box::new).map_err(Box::new);
        let resolution = self.resolve(&object.id, object.age, &declared);
        let entry = Entry::Validated { age: object.age, generation: object.generation, declared, resolution };
        self.insert(object.id, entry)
    }

    /// Sets (or with `None` removes) one EndpointSlice of Service `service`; re-resolves the objects using it.
    pub fn set_slice(&mut self, service: ServiceRef, name: &str, slice: Option<Slice>) -> Changed {
        let slices = self.slices.entry(service.clone()).or_default();
        let changed = match slice {
            Some(slice) => slices.insert(name.to_owned(), slice.clone()).as_ref() != Some(&slice),
            None => slices.remove(name).is_some(),
        };
        if slices.is_empty() {
            self.slices.remove(&service);
        }
        if !changed {
            return Changed::new();
        }
        self.revision += 1;
        let users: Vec<ObjectId> = self.users.get(&service).into_iter().flat_map(|u| u.keys()).cloned().collect();
        self.batch(|index| users.iter().for_each(|id| index.refresh(id)))
    }

    /// Replaces every EndpointSlice at once (a complete re-list).
    pub fn reset_slices(&mut self, slices: BTreeMap<ServiceRef, ServiceSlices>) -> Changed {
        if self.slices == slices {
            return Changed::new();
        }
        self.revision += 1;
        self.slices = slices;
        let users: BTreeSet<ObjectId> = self.users.values().flat_map(|u| u.keys()).cloned().collect();
        self.batch(|index| users.iter().for_each(|id| index.refresh(id)))
    }

    /// Sets this node's labels (`None`: unknown); re-evaluates every node selector.
    pub fn set_node_labels(&mut self, labels: Option<BTreeMap<String, String>>) -> Changed {
        if self.node_labels == labels {
            return Changed::new();
        }
        self.revision += 1;
        self.node_labels = labels;
        let selecting: Vec<ObjectId> =
            self.objects.iter().filter(|(_, e)| e.has_node_selector()).map(|(id, _)| id.clone()).collect();
        self.batch(|index| selecting.iter().for_each(|id| index.refresh(id)))
    }

    /// Resolves a declaration against the node's labels, the pools and the slices.
    fn resolve(&self, id: &ObjectId, age: Age, declared: &Result<Box<Declared>, Box<Rejected>>) -> Resolution {
        if let Some(first) = self.older_namesake(id, age) {
            let message = format!(
                "{} is also declared by {first}, which comes first: kubectl apply would keep only the last one \
                 applied; this document is ignored",
                name_of(id).unwrap_or_default()
            );
            let mut errors = vec![ValidationError::new(id.clone(), "metadata.name", message)];
            if let Err(rejected) = declared {
                errors.extend(rejected.errors.iter().cloned());
            }
            return Resolution::Duplicate(errors);
        }
        let declared = match declared {
            Ok(declared) => declared,
            Err(rejected) => {
                // An invalid object holds its key only where it may claim it: otherwise any namespace could freeze
                // another's service with a broken object.
                let holds = rejected.key.is_some_and(|key| self.admit(id, &key, Vec::new).is_ok());
                return Resolution::Rejected { holds };
            }
        };
        if let Some(selector) = &declared.node_selector {
            let selected = self.node_labels.as_ref().is_some_and(|labels| selector.matches(labels));
            if !selected {
                return Resolution::NotSelected;
            }
        }
        if let Err(refused) = self.admit(id, &declared.service.service.key, || explicit_targets(declared)) {
            return Resolution::NotAdmitted(refused);
        }
        match resolve(id, declared, &self.slices) {
            Ok(service) => Resolution::Desired(service),
            Err(errors) => Resolution::Invalid(errors),
        }
    }

    /// Whether object `id` may claim `key` pointing at `targets`: Kubernetes objects are decided by the pools
    /// (in `pools` mode); files are the node owner's and always admitted.
    fn admit(
        &self,
        id: &ObjectId,
        key: &ServiceKey,
        targets: impl FnOnce() -> Vec<(std::net::IpAddr, String)>,
    ) -> Result<(), NotAdmitted> {
        let ObjectId::Kubernetes { namespace, .. } = id else { return Ok(()) };
        // Open admission decides nothing: the targets are not even listed (a reload resolves every object).
        if self.admission.mode == AdmissionMode::Open {
            return Ok(());
        }
        self.admission.decide(&Claim { namespace, key, targets: &targets() })
    }

    /// Sets the admission mode (the agent's `--admission`, before anything is applied); re-decides every object.
    pub fn set_admission_mode(&mut self, mode: AdmissionMode) -> Changed {
        if self.admission.mode == mode {
            return Changed::new();
        }
        self.admission.mode = mode;
        self.revision += 1;
        self.refresh_all()
    }

    /// Replaces every pool at once (a complete re-list); `None`: the pool CRD is not installed. Re-decides every
    /// object.
    pub fn reset_pools(&mut self, pools: Option<BTreeMap<String, Pool>>) -> Changed {
        if self.admission.pools == pools {
            return Changed::new();
        }
        self.admission.pools = pools;
        self.revision += 1;
        self.refresh_all()
    }

    /// Sets (or with `None` removes) one pool; re-decides only the objects it may change: those whose key the old
    /// or the new pool grants, and those not admitted (their message may change).
    pub fn set_pool(&mut self, name: &str, pool: Option<Pool>) -> Changed {
        let pools = self.admission.pools.get_or_insert_with(BTreeMap::new);
        let old = match &pool {
            Some(pool) if pools.get(name) == Some(pool) => return Changed::new(),
            Some(pool) => pools.insert(name.to_owned(), pool.clone()),
            None => match pools.remove(name) {
                Some(old) => Some(old),
                None => return Changed::new(),
            },
        };
        self.revision += 1;
        let mut concerned = self.not_admitted.clone();
        for pool in old.iter().chain(pool.as_ref()) {
            concerned.extend(self.granted_by(pool));
        }
        self.batch(|index| concerned.iter().for_each(|id| index.refresh(id)))
    }

    /// Sets (or with `None` forgets) the labels of namespace `name`; re-decides the objects of that namespace.
    pub fn set_namespace(&mut self, name: &str, labels: Option<Labels>) -> Changed {
        if self.admission.namespaces.get(name) == labels.as_ref() {
            return Changed::new();
        }
        match labels {
            Some(labels) => self.admission.namespaces.insert(name.to_owned(), labels),
            None => self.admission.namespaces.remove(name),
        };
        self.revision += 1;
        let ids = self.objects_in(name);
        self.batch(|index| ids.iter().for_each(|id| index.refresh(id)))
    }

    /// The objects of namespace `namespace` (a range of the ordered identities).
    fn objects_in(&self, namespace: &str) -> Vec<ObjectId> {
        let first = ObjectId::kubernetes(namespace, "");
        let in_namespace = |id: &&ObjectId| matches!(id, ObjectId::Kubernetes { namespace: ns, .. } if ns == namespace);
        self.objects.range(first..).map(|(id, _)| id).take_while(in_namespace).cloned().collect()
    }

    /// Replaces every namespace's labels at once (a complete re-list); re-decides the objects of the namespaces
    /// whose labels changed.
    pub fn reset_namespaces(&mut self, namespaces: BTreeMap<String, Labels>) -> Changed {
        if self.admission.namespaces == namespaces {
            return Changed::new();
        }
        let old = std::mem::replace(&mut self.admission.namespaces, namespaces);
        self.revision += 1;
        let fresh = &self.admission.namespaces;
        let changed: BTreeSet<String> =
            old.keys().chain(fresh.keys()).filter(|ns| old.get(*ns) != fresh.get(*ns)).cloned().collect();
        let ids: Vec<ObjectId> = changed.iter().flat_map(|ns| self.objects_in(ns)).collect();
        self.batch(|index| ids.iter().for_each(|id| index.refresh(id)))
    }

    /// How many objects no pool admits.
    pub fn not_admitted(&self) -> usize {
        self.not_admitted.len()
    }

    /// Whether objects are decided by pools and no pool exists (nothing can be admitted): the agent says so.
    pub fn lacks_pools(&self) -> bool {
        self.admission.mode == AdmissionMode::Pools && !self.admission.has_pools()
    }

    /// Resolves every object again, as one batch (the mode or every pool changed).
    fn refresh_all(&mut self) -> Changed {
        let ids: Vec<ObjectId> = self.objects.keys().cloned().collect();
        self.batch(|index| ids.iter().for_each(|id| index.refresh(id)))
    }

    /// Resolves object `id` again (its slices, the node's labels or its admission changed).
    fn refresh(&mut self, id: &ObjectId) {
        let Some(Entry::Validated { age, generation, declared, resolution }) = self.objects.get(id) else { return };
        let fresh = self.resolve(id, *age, declared);
        if fresh != *resolution {
            let entry =
                Entry::Validated { age: *age, generation: *generation, declared: declared.clone(), resolution: fresh };
            self.insert(id.clone(), entry);
        }
    }

    /// Records that object `id` exists but could not be read; it replaces any earlier version of it.
    pub fn apply_unreadable(&mut self, id: ObjectId, errors: Vec<ValidationError>) -> Changed {
        self.insert(id, Entry::Unreadable(errors))
    }

    /// Forgets an object.
    pub fn delete(&mut self, id: &ObjectId) -> Changed {
        let Some(old) = self.objects.remove(id) else { return Changed::new() };
        self.revision += 1;
        self.unlist(id, &old);
        self.keyless_problems.remove(id);
        self.forget_uses(id, &old);
        self.report_changed(id);
        let mut changes = Changes::default();
        if let Some(key) = old.key() {
            self.note(&mut changes, key);
            self.unclaim(key, &old, id);
            self.claimants_changed(key);
        }
        let mut changed = changes.finish(self);
        changed.extend(self.batch(|index| index.refresh_namesakes(id)));
        changed
    }

    /// Changes the age of an object (a file that moved in the load order); nothing when it is unknown.
    pub fn reage(&mut self, id: &ObjectId, age: Age) -> Changed {
        match self.objects.get(id) {
            Some(Entry::Validated { age: old, generation, declared, .. }) if *old != age => {
                let (generation, declared) = (*generation, declared.clone());
                // Which of two namesakes comes first may change with the age.
                let resolution = self.resolve(id, age, &declared);
                self.insert(id.clone(), Entry::Validated { age, generation, declared, resolution })
            }
            _ => Changed::new(),
        }
    }

    /// Replaces everything at once (a complete re-list): objects not given are gone. Returns what changed between
    /// before and after, not what changed on the way.
    pub fn reset(&mut self, objects: Vec<SourceObject>, unreadable: Vec<ValidationError>) -> Changed {
        let mut given: BTreeSet<ObjectId> = objects.iter().map(|o| o.id.clone()).collect();
        given.extend(unreadable.iter().map(|e| e.object.clone()));
        let gone: Vec<ObjectId> = self.objects.keys().filter(|id| !given.contains(*id)).cloned().collect();
        let mut errors_by_object: BTreeMap<ObjectId, Vec<ValidationError>> = BTreeMap::new();
        for error in unreadable {
            errors_by_object.entry(error.object.clone()).or_default().push(error);
        }
        self.batch(|index| {
            for id in &gone {
                index.delete(id);
            }
            for (id, errors) in errors_by_object {
                index.apply_unreadable(id, errors);
            }
            for object in objects {
                index.apply(object);
            }
        })
    }

    /// Runs several changes as one: returns the keys whose resolution differs between before and after (a key that
    /// changes and changes back on the way is not reported).
    pub fn batch(&mut self, changes: impl FnOnce(&mut Self)) -> Changed {
        let outer = self.batch.replace(BTreeMap::new());
        changes(self);
        let before = std::mem::replace(&mut self.batch, outer).unwrap_or_default();
        let changed: Changed =
            before.iter().filter(|(key, was)| **was != self.resolved(key)).map(|(key, _)| *key).collect();
        // An enclosing batch must know the state before this one too.
        if let Some(outer) = self.batch.as_mut() {
            for (key, was) in before {
                outer.entry(key).or_insert(was);
            }
        }
        changed
    }

    /// When object `id` was created (its place among claimants), if the index holds it.
    pub fn age_of(&self, id: &ObjectId) -> Option<Age> {
        self.objects.get(id).and_then(Entry::age)
    }

    /// Counts effective changes (see the field); sources publish only when it moves.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// An index of `objects` (identities distinct; a later one replaces an earlier one of the same identity).
    #[cfg(any(test, feature = "testing"))]
    pub fn from_objects(objects: impl IntoIterator<Item = SourceObject>) -> Self {
        let mut index = ObjectIndex::new();
        for object in objects {
            index.apply(object);
        }
        index
    }

    /// The table and every problem, as of now.
    #[cfg(any(test, feature = "testing"))]
    pub fn outcome(&self) -> DesiredOutcome {
        DesiredOutcome {
            table: self.table.clone(),
            errors: self.errors(),
            conflicts: self.conflicts(),
            held: self.held.clone(),
            keyless_problems: self.has_keyless_problems(),
        }
    }

    /// The desired table: every winning valid object's service.
    pub fn table(&self) -> &DesiredTable {
        &self.table
    }

    /// Services claimed by invalid objects, to be left as they are, by the object that holds each.
    pub fn held(&self) -> &BTreeMap<ServiceKey, ObjectId> {
        &self.held
    }

    /// Whether some object with problems names no service: it may be any service, so no service should be deleted
    /// until it is fixed.
    pub fn has_keyless_problems(&self) -> bool {
        !self.keyless_problems.is_empty()
    }

    /// Every problem of every object: unreadable objects first (by identity), then invalid ones oldest first, each
    /// object's fields in order.
    pub fn errors(&self) -> Vec<ValidationError> {
        let unreadable = self.objects.values().filter(|e| matches!(e, Entry::Unreadable(_)));
        let mut invalid: Vec<(&Age, &ObjectId, &Entry)> = self
            .objects
            .iter()
            .filter_map(|(id, e)| match e {
                Entry::Validated { age, .. } if !e.errors().is_empty() => Some((age, id, e)),
                _ => None,
            })
            .collect();
        invalid.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        unreadable.chain(invalid.into_iter().map(|(_, _, e)| e)).flat_map(|e| e.errors().iter().cloned()).collect()
    }

    /// Objects ignored because an older object claims the same service, oldest loser first per key.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let mut out = Vec::new();
        for (key, claimants) in &self.claims {
            let mut claimants = claimants.keys();
            let Some((_, winner)) = claimants.next() else { continue };
            for (_, loser) in claimants {
                out.push(Conflict { key: *key, object: loser.clone(), claimed_by: winner.clone() });
            }
        }
        out
    }

    /// What became of every object, by identity.
    pub fn reports(&self) -> Vec<ObjectReport> {
        self.objects.iter().map(|(id, entry)| self.report(id, entry)).collect()
    }

    /// The reports that may have changed since the last call, and those `wanted` asks for, by identity; `None`
    /// for an object that is gone. The first call gives every report: a follower (the status writer) starts
    /// complete, and then costs what changed, not the number of objects.
    pub fn changed_reports(&mut self, wanted: &ReportsWanted) -> Vec<ReportChange> {
        let Some(changed) = self.report_changes.replace(BTreeSet::new()) else {
            return self.reports().into_iter().map(|r| (r.id.clone(), Some(r))).collect();
        };
        if wanted.all {
            let mut out: Vec<ReportChange> = self.reports().into_iter().map(|r| (r.id.clone(), Some(r))).collect();
            out.extend(changed.into_iter().filter(|id| !self.objects.contains_key(id)).map(|id| (id, None)));
            out.sort_by(|a, b| a.0.cmp(&b.0));
            return out;
        }
        let mut ids = changed;
        ids.extend(wanted.objects.iter().cloned());
        for key in &wanted.keys {
            ids.extend(self.claims.get(key).into_iter().flat_map(|c| c.keys()).map(|(_, id)| id.clone()));
        }
        ids.into_iter()
            .map(|id| {
                let report = self.objects.get(&id).map(|entry| self.report(&id, entry));
                (id, report)
            })
            .collect()
    }

    /// Notes that object `id`'s report may have changed (when reports are followed).
    fn report_changed(&mut self, id: &ObjectId) {
        if let Some(changed) = self.report_changes.as_mut() {
            changed.insert(id.clone());
        }
    }

    /// Notes that the reports of `key`'s claimants may have changed (its winner may have).
    fn claimants_changed(&mut self, key: ServiceKey) {
        if let (Some(changed), Some(claimants)) = (self.report_changes.as_mut(), self.claims.get(&key)) {
            changed.extend(claimants.keys().map(|(_, id)| id.clone()));
        }
    }

    fn report(&self, id: &ObjectId, entry: &Entry) -> ObjectReport {
        let (generation, state) = match entry {
            Entry::Unreadable(errors) => (None, ObjectState::Unreadable { errors: errors.clone() }),
            Entry::Validated { generation, resolution, .. } => {
                let key = entry.key();
                let winner = key.and_then(|k| self.claims.get(&k)).and_then(|c| c.first()).map(|((_, w), ())| w);
                let state = match (resolution, key) {
                    (Resolution::Duplicate(errors), _) => {
                        ObjectState::Invalid { key: named_key(entry), errors: errors.clone() }
                    }
                    (Resolution::NotSelected, _) => ObjectState::NotSelected,
                    (Resolution::NotAdmitted(refused), _) => match named_key(entry) {
                        Some(key) => ObjectState::NotAdmitted { key, reason: refused.to_string() },
                        None => ObjectState::NotSelected,
                    },
                    (Resolution::Rejected { .. }, _) => ObjectState::Invalid {
                        key: match entry {
                            Entry::Validated { declared: Err(rejected), .. } => rejected.key,
                            _ => key,
                        },
                        errors: entry.errors().to_vec(),
                    },
                    (Resolution::Invalid(_), key) => ObjectState::Invalid { key, errors: entry.errors().to_vec() },
                    (Resolution::Desired(_), Some(key)) if winner.is_some_and(|w| w != id) => {
                        ObjectState::Conflict { key, winner: winner.cloned().unwrap_or_else(|| id.clone()) }
                    }
                    (Resolution::Desired(desired), Some(key)) => {
                        ObjectState::Desired { key, backends: desired.dests.len() }
                    }
                    (Resolution::Desired(_), None) => ObjectState::NotSelected,
                };
                (*generation, state)
            }
        };
        ObjectReport { id: id.clone(), generation, state }
    }

    /// Number of objects, readable or not.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the index holds no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Whether object `id` is known.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.objects.contains_key(id)
    }

    fn insert(&mut self, id: ObjectId, entry: Entry) -> Changed {
        if self.objects.get(&id) == Some(&entry) {
            return Changed::new();
        }
        self.revision += 1;
        self.report_changed(&id);
        let mut changes = Changes::default();
        let new_key = entry.key();
        if new_key.is_none() && (matches!(entry, Entry::Unreadable(_)) || !entry.errors().is_empty()) {
            self.keyless_problems.insert(id.clone());
        } else {
            self.keyless_problems.remove(&id);
        }
        if let Some(old) = self.objects.remove(&id) {
            self.unlist(&id, &old);
            self.forget_uses(&id, &old);
            if let Some(old_key) = old.key() {
                self.note(&mut changes, old_key);
                self.unclaim(old_key, &old, &id);
                self.claimants_changed(old_key);
            }
        }
        self.list(&id, &entry);
        for service in entry.uses(&id) {
            self.users.entry(service).or_insert_with(one).insert(id.clone(), ());
        }
        if let (Some(key), Some(age)) = (new_key, entry.age()) {
            self.note(&mut changes, key);
            self.claims.entry(key).or_insert_with(one).insert((age, id.clone()), ());
        }
        self.objects.insert(id.clone(), entry);
        if let Some(key) = new_key {
            self.settle(key);
            self.claimants_changed(key);
        }
        let mut changed = changes.finish(self);
        changed.extend(self.batch(|index| index.refresh_namesakes(&id)));
        changed
    }

    /// The oldest other file document with `id`'s namespace/name, if it is older than `age`.
    fn older_namesake(&self, id: &ObjectId, age: Age) -> Option<&ObjectId> {
        let holders = self.namesakes.get(name_of(id)?)?;
        let (first, other) = holders.keys().find(|(_, other)| other != id)?;
        ((*first, other) < (age, id)).then_some(other)
    }

    /// Resolves again the other documents with `id`'s namespace/name (which of them comes first may have changed).
    fn refresh_namesakes(&mut self, id: &ObjectId) {
        let Some(holders) = name_of(id).and_then(|name| self.namesakes.get(name)) else { return };
        let others: Vec<ObjectId> = holders.keys().map(|(_, other)| other.clone()).filter(|o| o != id).collect();
        for other in others {
            self.refresh(&other);
        }
    }

    /// Lists `entry` under its VIP or mark, and among those not admitted.
    fn list(&mut self, id: &ObjectId, entry: &Entry) {
        if entry.is_not_admitted() {
            self.not_admitted.insert(id.clone());
        }
        if let (ObjectId::Document { name: Some(name), .. }, Some(age)) = (id, entry.age()) {
            // The identity's own name, shared.
            self.namesakes.entry(Arc::clone(name)).or_insert_with(one).insert((age, id.clone()), ());
        }
        match named_key(entry) {
            Some(ServiceKey::Addr { addr, .. }) => {
                self.by_vip.entry(addr).or_insert_with(one).insert(id.clone(), ());
            }
            Some(ServiceKey::Fwmark { mark, .. }) => {
                self.by_mark.entry(mark).or_insert_with(one).insert(id.clone(), ());
            }
            None => {}
        }
    }

    /// Undoes [`ObjectIndex::list`] for the entry `id` had.
    fn unlist(&mut self, id: &ObjectId, old: &Entry) {
        self.not_admitted.remove(id);
        if let (Some(name), Some(age)) = (name_of(id), old.age())
            && let Some(holders) = self.namesakes.get_mut(name)
        {
            holders.remove(&(age, id.clone()));
            if holders.is_empty() {
                self.namesakes.remove(name);
            }
        }
        fn drop_from<K: Ord>(map: &mut BTreeMap<K, SmallSet<ObjectId>>, key: K, id: &ObjectId) {
            if let Some(ids) = map.get_mut(&key) {
                ids.remove(id);
                if ids.is_empty() {
                    map.remove(&key);
                }
            }
        }
        match named_key(old) {
            Some(ServiceKey::Addr { addr, .. }) => drop_from(&mut self.by_vip, addr, id),
            Some(ServiceKey::Fwmark { mark, .. }) => drop_from(&mut self.by_mark, mark, id),
            None => {}
        }
    }

    /// The objects whose VIP or mark `pool` grants.
    fn granted_by(&self, pool: &Pool) -> BTreeSet<ObjectId> {
        let vips = pool.addresses.iter().flat_map(|net| self.by_vip.range(net.network()..=net.broadcast()));
        let marks = pool.fwmarks.iter().flat_map(|(from, to)| self.by_mark.range(from..=to));
        let ids = vips.map(|(_, ids)| ids).chain(marks.map(|(_, ids)| ids));
        ids.flat_map(|ids| ids.keys().cloned()).collect()
    }

    fn forget_uses(&mut self, id: &ObjectId, old: &Entry) {
        for service in old.uses(id) {
            if let Some(users) = self.users.get_mut(&service) {
                users.remove(id);
                if users.is_empty() {
                    self.users.remove(&service);
                }
            }
        }
    }

    fn unclaim(&mut self, key: ServiceKey, old: &Entry, id: &ObjectId) {
        if let (Some(claimants), Some(age)) = (self.claims.get_mut(&key), old.age()) {
            claimants.remove(&(age, id.clone()));
            if claimants.is_empty() {
                self.claims.remove(&key);
            }
        }
        self.settle(key);
    }

    /// Recomputes what `key` resolves to from its claimants.
    fn settle(&mut self, key: ServiceKey) {
        let winner = self.claims.get(&key).and_then(|c| c.first()).map(|((_, id), ())| id);
        let entry = winner.and_then(|id| self.objects.get(id).map(|e| (id, e)));
        match entry {
            Some((_, Entry::Validated { resolution: Resolution::Desired(desired), .. })) => {
                self.table.services.insert(key, Arc::clone(desired));
                self.held.remove(&key);
            }
            Some((id, _)) => {
                let id = id.clone();
                self.table.services.remove(&key);
                self.held.insert(key, id);
            }
            None => {
                self.table.services.remove(&key);
                self.held.remove(&key);
            }
        }
    }

    /// Records what `key` resolves to before a change (for the change and for an enclosing batch).
    fn note(&mut self, changes: &mut Changes, key: ServiceKey) {
        if changes.before.contains_key(&key) {
            return;
        }
        let now = self.resolved(&key);
        if let Some(batch) = self.batch.as_mut() {
            batch.entry(key).or_insert_with(|| now.clone());
        }
        changes.before.insert(key, now);
    }

    fn resolved(&self, key: &ServiceKey) -> Option<Resolved> {
        if let Some(desired) = self.table.services.get(key) {
            return Some(Resolved::Desired(Arc::clone(desired)));
        }
        self.held.get(key).map(|id| Resolved::Held(id.clone()))
    }
}

/// The `namespace/name` of a file's document, when it has one (Kubernetes objects are unique by construction).
fn name_of(id: &ObjectId) -> Option<&str> {
    match id {
        ObjectId::Document { name: Some(name), .. } => Some(name.as_ref()),
        _ => None,
    }
}

/// The key an object names, valid or not, whatever it resolves to here.
fn named_key(entry: &Entry) -> Option<ServiceKey> {
    match entry {
        Entry::Validated { declared: Ok(declared), .. } => Some(declared.service.service.key),
        Entry::Validated { declared: Err(rejected), .. } => rejected.key,
        Entry::Unreadable(_) => None,
    }
}

/// Where a declaration points explicitly, for the pools' `backendCIDRs`: its static backends and its sorry server
/// (backends from `backendsFrom` are its own namespace's endpoints).
fn explicit_targets(declared: &Declared) -> Vec<(std::net::IpAddr, String)> {
    let backends = declared.service.dests.keys().map(|dest| (dest.addr, "backend".to_owned()));
    let sorry = declared.service.health.as_ref().and_then(|h| h.sorry_server.as_ref());
    backends.chain(sorry.map(|s| (s.key.addr, "sorry server".to_owned()))).collect()
}

/// The resolution of keys before a change, to report only the keys whose resolution really changed.
#[derive(Default)]
struct Changes {
    before: BTreeMap<ServiceKey, Option<Resolved>>,
}

impl Changes {
    fn finish(self, index: &ObjectIndex) -> Changed {
        self.before.into_iter().filter(|(key, was)| *was != index.resolved(key)).map(|(key, _)| key).collect()
    }
}

#[cfg(test)]
mod tests;
