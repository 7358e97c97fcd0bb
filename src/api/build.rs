//! The desired table from many objects: each validated on its own, conflicts settled by age.

use std::collections::BTreeMap;

use super::error::{Conflict, ValidationError};
use super::object::{Age, ObjectId, SourceObject};
use super::validate::{Rejected, validate};
use crate::model::ServiceKey;
use crate::table::{DesiredService, DesiredTable};

/// What a set of objects asks for, and what was wrong with them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredOutcome {
    /// The services of every valid object that won its key.
    pub table: DesiredTable,
    /// Every problem of every invalid object, objects oldest first, fields in order.
    pub errors: Vec<ValidationError>,
    /// Objects ignored because an older object asks for the same service.
    pub conflicts: Vec<Conflict>,
    /// Services asked for by objects that are invalid, by the object that holds them. They are not in `table`;
    /// a caller should leave them as they are rather than delete them while the object is being fixed.
    pub held: BTreeMap<ServiceKey, ObjectId>,
}

impl DesiredOutcome {
    /// Whether every object was valid and none conflicted.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty() && self.conflicts.is_empty()
    }
}

/// One object and the result of its validation: what sources may keep between reloads, so that an unchanged
/// object is not validated again.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    /// The object.
    pub id: ObjectId,
    /// Its age, for conflicts.
    pub age: Age,
    /// What it asks for, or every problem it has.
    pub result: Result<DesiredService, Rejected>,
}

/// Validates one object.
pub fn validate_object(object: &SourceObject) -> Validated {
    Validated { id: object.id.clone(), age: object.age, result: validate(&object.id, &object.spec) }
}

/// Builds the desired table from `objects`.
///
/// One bad object never stops the others. Objects are taken oldest first ([`Age`](super::Age), then
/// [`ObjectId`]); the first to ask for a service key keeps it, later ones are reported as conflicting. An invalid
/// object whose key is readable still claims it (as `held`), so fixing a typo in the older object never hands its
/// service to a younger one for a while. The result depends only on the set of objects, not on their order.
pub fn build_desired(objects: Vec<SourceObject>) -> DesiredOutcome {
    let validated: Vec<Validated> = objects.iter().map(validate_object).collect();
    merge(validated.iter())
}

/// The desired table from objects validated already (see [`build_desired`] for the rules).
pub fn merge<'a>(objects: impl IntoIterator<Item = &'a Validated>) -> DesiredOutcome {
    let mut objects: Vec<&Validated> = objects.into_iter().collect();
    objects.sort_by(|a, b| (a.age, &a.id).cmp(&(b.age, &b.id)));
    let mut outcome = DesiredOutcome::default();
    // Which object claimed each key first.
    let mut claims: BTreeMap<ServiceKey, ObjectId> = BTreeMap::new();
    for object in objects {
        let (key, errors) = match &object.result {
            Ok(desired) => (Some(desired.service.key), None),
            Err(Rejected { errors, key }) => (*key, Some(errors)),
        };
        if let Some(errors) = errors {
            outcome.errors.extend(errors.iter().cloned());
        }
        let Some(key) = key else { continue };
        if let Some(owner) = claims.get(&key) {
            outcome.conflicts.push(Conflict { key, object: object.id.clone(), claimed_by: owner.clone() });
            continue;
        }
        claims.insert(key, object.id.clone());
        match &object.result {
            Ok(desired) => {
                outcome.table.services.insert(key, desired.clone());
            }
            Err(_) => {
                outcome.held.insert(key, object.id.clone());
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use proptest::prelude::*;

    use super::*;
    use crate::api::{Age, VirtualServiceSpec};

    fn object(id: ObjectId, age: Age, yaml: &str) -> SourceObject {
        SourceObject { id, age, spec: serde_yaml::from_str(yaml).unwrap() }
    }

    fn kube(ns: &str, name: &str, created: i64, yaml: &str) -> SourceObject {
        object(ObjectId::kubernetes(ns, name), Age::Created { seconds: created, nanos: 0 }, yaml)
    }

    fn tcp(addr: &str, port: u16) -> ServiceKey {
        ServiceKey::tcp(addr.parse::<IpAddr>().unwrap(), port)
    }

    const A: &str = "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1}]\n";
    const A_OTHER_BACKENDS: &str = "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.9}]\n";
    const B: &str = "address: 192.0.2.2\nport: 80\n";
    const BAD: &str = "address: 192.0.2.3\nport: 80\nscheduler: nope\nbackends: [{address: x}]\n";

    #[test]
    fn a_bad_object_does_not_stop_the_good_ones() {
        let out =
            build_desired(vec![kube("default", "a", 1, A), kube("default", "bad", 2, BAD), kube("default", "b", 3, B)]);
        assert_eq!(
            out.table.services.keys().copied().collect::<Vec<_>>(),
            vec![tcp("192.0.2.1", 80), tcp("192.0.2.2", 80)]
        );
        assert_eq!(out.table.services[&tcp("192.0.2.1", 80)].origin.to_string(), "default/a");
        let rendered: Vec<_> = out.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![
                "default/bad: spec.scheduler: unknown scheduler `nope` (known: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)",
                "default/bad: spec.backends[0].address: `x` is not an IPv4 or IPv6 address",
            ]
        );
        // The bad object's service is held, not dropped.
        assert_eq!(out.held.get(&tcp("192.0.2.3", 80)), Some(&ObjectId::kubernetes("default", "bad")));
        assert!(out.conflicts.is_empty());
        assert!(!out.is_clean());
    }

    #[test]
    fn the_older_object_wins_a_conflict_whatever_the_input_order() {
        let older = kube("zzz", "late-name", 100, A);
        let younger = kube("aaa", "early-name", 200, A_OTHER_BACKENDS);
        for objects in [vec![older.clone(), younger.clone()], vec![younger.clone(), older.clone()]] {
            let out = build_desired(objects);
            let svc = &out.table.services[&tcp("192.0.2.1", 80)];
            assert_eq!(svc.origin.to_string(), "zzz/late-name");
            assert_eq!(
                out.conflicts,
                vec![Conflict { key: tcp("192.0.2.1", 80), object: younger.id.clone(), claimed_by: older.id.clone() }]
            );
            assert_eq!(
                out.conflicts[0].to_string(),
                "aaa/early-name: service TCP 192.0.2.1:80 is already claimed by zzz/late-name, which is older; \
                 this object is ignored"
            );
        }
    }

    #[test]
    fn equal_ages_fall_back_to_namespace_then_name() {
        let out = build_desired(vec![kube("b", "a", 5, A_OTHER_BACKENDS), kube("a", "z", 5, A), kube("a", "y", 5, B)]);
        assert_eq!(out.table.services[&tcp("192.0.2.1", 80)].origin.to_string(), "a/z");
        assert_eq!(out.conflicts.len(), 1);
        assert_eq!(out.conflicts[0].object, ObjectId::kubernetes("b", "a"));
    }

    #[test]
    fn unknown_creation_time_counts_as_newest() {
        let unknown = object(ObjectId::kubernetes("a", "a"), Age::created(None), A);
        let known = kube("z", "z", 1_700_000_000, A_OTHER_BACKENDS);
        let out = build_desired(vec![unknown, known]);
        assert_eq!(out.table.services[&tcp("192.0.2.1", 80)].origin.to_string(), "z/z");
    }

    #[test]
    fn in_files_the_earlier_file_then_document_wins() {
        let doc = |file, path: &str, index| object(ObjectId::document(path, index), Age::loaded(file, index), A);
        // File order is load order, not path order.
        let out = build_desired(vec![doc(1, "a.yaml", 0), doc(0, "z.yaml", 3), doc(0, "z.yaml", 1)]);
        assert_eq!(out.table.services[&tcp("192.0.2.1", 80)].origin.to_string(), "z.yaml#1");
        let losers: Vec<_> = out.conflicts.iter().map(|c| c.object.to_string()).collect();
        assert_eq!(losers, vec!["z.yaml#3", "a.yaml#0"]);
    }

    #[test]
    fn an_invalid_older_object_keeps_its_key() {
        let broken_a = "address: 192.0.2.1\nport: 80\nscheduler: typo\n";
        let out = build_desired(vec![kube("d", "old", 1, broken_a), kube("d", "new", 2, A)]);
        assert!(out.table.services.is_empty());
        assert_eq!(out.held.get(&tcp("192.0.2.1", 80)), Some(&ObjectId::kubernetes("d", "old")));
        assert_eq!(out.conflicts.len(), 1);
        assert_eq!(out.conflicts[0].object, ObjectId::kubernetes("d", "new"));
    }

    #[test]
    fn an_invalid_younger_object_is_reported_and_conflicting() {
        let broken_a = "address: 192.0.2.1\nport: 80\nscheduler: typo\n";
        let out = build_desired(vec![kube("d", "old", 1, A), kube("d", "new", 2, broken_a)]);
        assert_eq!(out.table.services[&tcp("192.0.2.1", 80)].origin.to_string(), "d/old");
        assert_eq!(out.errors.len(), 1);
        assert_eq!(out.conflicts.len(), 1);
        assert!(out.held.is_empty());
    }

    fn any_object() -> impl Strategy<Value = SourceObject> {
        let specs = prop::sample::select(vec![A, A_OTHER_BACKENDS, B, BAD, "fwmark: 1\nfamily: IPv4\n", "port: 1\n"]);
        (0..3u8, 0..3u8, 0..3i64, specs).prop_map(|(ns, name, created, yaml)| {
            let spec: VirtualServiceSpec = serde_yaml::from_str(yaml).unwrap();
            SourceObject {
                id: ObjectId::kubernetes(format!("ns{ns}"), format!("n{name}")),
                age: Age::Created { seconds: created, nanos: 0 },
                spec,
            }
        })
    }

    /// Objects with distinct identities (as a source's index guarantees), and the same objects in another order.
    fn objects_and_shuffled() -> impl Strategy<Value = (Vec<SourceObject>, Vec<SourceObject>)> {
        prop::collection::vec(any_object(), 0..8).prop_flat_map(|objects| {
            let unique: BTreeMap<ObjectId, SourceObject> = objects.into_iter().map(|o| (o.id.clone(), o)).collect();
            let objects: Vec<_> = unique.into_values().collect();
            (Just(objects.clone()), Just(objects).prop_shuffle())
        })
    }

    proptest! {
        /// The outcome depends on the set of objects only, never on the order a watch delivered them in.
        #[test]
        fn outcome_does_not_depend_on_input_order((objects, shuffled) in objects_and_shuffled()) {
            prop_assert_eq!(build_desired(objects), build_desired(shuffled));
        }
    }
}
