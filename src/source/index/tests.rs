//! The index: conflict rules, held keys, and exactly which keys each change reports.

use std::collections::BTreeMap;
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;
use crate::api::VirtualServiceSpec;
use crate::source::admission::{AdmissionMode, Pool};

fn object(id: ObjectId, age: Age, yaml: &str) -> SourceObject {
    SourceObject { id, age, spec: serde_yaml::from_str(yaml).unwrap(), generation: None }
}

fn kube(ns: &str, name: &str, created: i64, yaml: &str) -> SourceObject {
    object(ObjectId::kubernetes(ns, name), Age::Created { seconds: created, nanos: 0 }, yaml)
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::tcp(addr.parse::<IpAddr>().unwrap(), port)
}

fn keys(keys: &[ServiceKey]) -> Changed {
    keys.iter().copied().collect()
}

fn origin(index: &ObjectIndex, key: ServiceKey) -> String {
    index.table().services[&key].origin.to_string()
}

const A: &str = "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1}]\n";
const A_OTHER_BACKENDS: &str = "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.9}]\n";
const B: &str = "address: 192.0.2.2\nport: 80\n";
const BAD: &str = "address: 192.0.2.3\nport: 80\nscheduler: nope\nbackends: [{address: x}]\n";
const BAD_KEY: &str = "address: nowhere\nport: 80\n";
const BROKEN_A: &str = "address: 192.0.2.1\nport: 80\nscheduler: typo\n";

#[test]
fn a_bad_object_does_not_stop_the_good_ones() {
    let index = ObjectIndex::from_objects([
        kube("default", "a", 1, A),
        kube("default", "bad", 2, BAD),
        kube("default", "b", 3, B),
    ]);
    let out = index.outcome();
    assert_eq!(
        out.table.services.keys().copied().collect::<Vec<_>>(),
        vec![tcp("192.0.2.1", 80), tcp("192.0.2.2", 80)]
    );
    assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "default/a");
    let rendered: Vec<_> = out.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        vec![
            "default/bad: spec.scheduler: unknown scheduler `nope` (known: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos)",
            "default/bad: spec.backends[0].address: `x` is not an IPv4 or IPv6 address",
        ]
    );
    // The bad object's service is held, not dropped; it names its service, so other deletions may go on.
    assert_eq!(out.held.get(&tcp("192.0.2.3", 80)), Some(&ObjectId::kubernetes("default", "bad")));
    assert!(!out.keyless_problems);
    assert!(out.conflicts.is_empty());
    assert!(!out.is_clean());
}

#[test]
fn the_older_object_wins_a_conflict_whatever_the_arrival_order() {
    let older = kube("zzz", "late-name", 100, A);
    let younger = kube("aaa", "early-name", 200, A_OTHER_BACKENDS);
    for objects in [vec![older.clone(), younger.clone()], vec![younger.clone(), older.clone()]] {
        let index = ObjectIndex::from_objects(objects);
        assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "zzz/late-name");
        let conflicts = index.conflicts();
        assert_eq!(
            conflicts,
            vec![Conflict { key: tcp("192.0.2.1", 80), object: younger.id.clone(), claimed_by: older.id.clone() }]
        );
        assert_eq!(
            conflicts[0].to_string(),
            "aaa/early-name: service TCP 192.0.2.1:80 is already claimed by zzz/late-name, which is older; this \
             object is ignored"
        );
    }
}

#[test]
fn equal_ages_fall_back_to_namespace_then_name() {
    let index =
        ObjectIndex::from_objects([kube("b", "a", 5, A_OTHER_BACKENDS), kube("a", "z", 5, A), kube("a", "y", 5, B)]);
    assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "a/z");
    let conflicts = index.conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].object, ObjectId::kubernetes("b", "a"));
}

#[test]
fn unknown_creation_time_counts_as_newest() {
    let unknown = object(ObjectId::kubernetes("a", "a"), Age::created(None), A);
    let known = kube("z", "z", 1_700_000_000, A_OTHER_BACKENDS);
    let index = ObjectIndex::from_objects([unknown, known]);
    assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "z/z");
}

#[test]
fn in_files_the_earlier_file_then_document_wins() {
    let doc = |file, path: &str, index| object(ObjectId::document(path, index), Age::loaded(file, index), A);
    // File order is load order, not path order.
    let index = ObjectIndex::from_objects([doc(1, "a.yaml", 0), doc(0, "z.yaml", 3), doc(0, "z.yaml", 1)]);
    assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "z.yaml#1");
    let losers: Vec<_> = index.conflicts().iter().map(|c| c.object.to_string()).collect();
    assert_eq!(losers, vec!["z.yaml#3", "a.yaml#0"]);
}

#[test]
fn an_invalid_older_object_keeps_its_key() {
    let index = ObjectIndex::from_objects([kube("d", "old", 1, BROKEN_A), kube("d", "new", 2, A)]);
    assert!(index.table().services.is_empty());
    assert_eq!(index.held().get(&tcp("192.0.2.1", 80)), Some(&ObjectId::kubernetes("d", "old")));
    assert_eq!(index.conflicts().len(), 1);
    assert_eq!(index.conflicts()[0].object, ObjectId::kubernetes("d", "new"));
}

#[test]
fn an_invalid_younger_object_is_reported_and_conflicting() {
    let index = ObjectIndex::from_objects([kube("d", "old", 1, A), kube("d", "new", 2, BROKEN_A)]);
    assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "d/old");
    assert_eq!(index.errors().len(), 1);
    assert_eq!(index.conflicts().len(), 1);
    assert!(index.held().is_empty());
    // It names its service: no reason to hold other deletions.
    assert!(!index.has_keyless_problems());
}

#[test]
fn problems_that_name_no_service_are_flagged_until_fixed() {
    let mut index = ObjectIndex::new();
    index.apply(kube("d", "a", 1, A));
    assert_eq!(index.apply(kube("d", "lost", 2, BAD_KEY)), Changed::new());
    assert!(index.has_keyless_problems());
    let unreadable = ObjectId::document("web.yaml", 3);
    index.apply_unreadable(unreadable.clone(), vec![ValidationError::new(unreadable.clone(), "spec.port", "bad")]);
    index.delete(&ObjectId::kubernetes("d", "lost"));
    assert!(index.has_keyless_problems(), "the unreadable document is still there");
    index.delete(&unreadable);
    assert!(!index.has_keyless_problems());
}

#[test]
fn each_change_reports_exactly_the_keys_it_changed() {
    let (a, b) = (tcp("192.0.2.1", 80), tcp("192.0.2.2", 80));
    let mut index = ObjectIndex::new();
    assert_eq!(index.apply(kube("d", "web", 1, A)), keys(&[a]));
    assert_eq!(index.apply(kube("d", "web", 1, A)), Changed::new(), "the same object again changes nothing");
    assert_eq!(index.apply(kube("d", "web", 1, A_OTHER_BACKENDS)), keys(&[a]), "new backends");
    // A younger object claiming the same key loses: nothing desired changes.
    assert_eq!(index.apply(kube("d", "young", 2, A)), Changed::new());
    // The winner goes: the key passes to the younger object, which asks for other backends.
    assert_eq!(index.delete(&ObjectId::kubernetes("d", "web")), keys(&[a]));
    assert_eq!(origin(&index, a), "d/young");
    // A key change touches both keys.
    assert_eq!(index.apply(kube("d", "young", 2, B)), keys(&[a, b]));
    assert!(!index.table().services.contains_key(&a));
    // An object turning invalid holds its key: the key's state changed (desired → held).
    assert_eq!(index.apply(kube("d", "young", 2, &B.replace("port: 80", "port: 80\nscheduler: nope"))), keys(&[b]));
    assert_eq!(index.held().get(&b), Some(&ObjectId::kubernetes("d", "young")));
    // Turning unreadable it names no key: the key is released.
    let id = ObjectId::kubernetes("d", "young");
    assert_eq!(index.apply_unreadable(id.clone(), vec![ValidationError::new(id.clone(), "spec", "bad")]), keys(&[b]));
    assert!(index.held().is_empty());
    assert_eq!(index.delete(&id), Changed::new());
    assert_eq!(index.delete(&id), Changed::new(), "deleting an unknown object changes nothing");
}

#[test]
fn a_new_age_can_hand_a_key_to_another_object() {
    let a = tcp("192.0.2.1", 80);
    let first = object(ObjectId::document("a.yaml", 0), Age::loaded(0, 0), A);
    let second = object(ObjectId::document("b.yaml", 0), Age::loaded(1, 0), A_OTHER_BACKENDS);
    let mut index = ObjectIndex::from_objects([first, second]);
    assert_eq!(origin(&index, a), "a.yaml#0");
    assert_eq!(index.reage(&ObjectId::document("a.yaml", 0), Age::loaded(0, 0)), Changed::new());
    assert_eq!(index.reage(&ObjectId::document("a.yaml", 0), Age::loaded(2, 0)), keys(&[a]));
    assert_eq!(origin(&index, a), "b.yaml#0");
}

#[test]
fn reset_replaces_everything_and_reports_the_net_change() {
    let (a, b) = (tcp("192.0.2.1", 80), tcp("192.0.2.2", 80));
    let mut index = ObjectIndex::from_objects([kube("d", "a", 1, A), kube("d", "b", 2, B)]);
    let broken = ObjectId::kubernetes("d", "broken");
    // "a" unchanged, "b" gone, one unreadable object new.
    let changed = index.reset(vec![kube("d", "a", 1, A)], vec![ValidationError::new(broken, "", "bad")]);
    assert_eq!(changed, keys(&[b]));
    assert_eq!(index.outcome().errors.len(), 1);
    assert_eq!(index.reset(Vec::new(), Vec::new()), keys(&[a]));
    assert!(index.is_empty());
    assert!(index.table().services.is_empty());
}

fn any_spec() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        A,
        A_OTHER_BACKENDS,
        B,
        BAD,
        BAD_KEY,
        BROKEN_A,
        "fwmark: 1\nfamily: IPv4\n",
        "port: 1\n",
        "address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web, port: http}]\n",
        "address: 192.0.2.2\nport: 80\nbackends: [{address: 10.0.0.1, port: 8080}]\nbackendsFrom: [{service: web, port: http}]\n",
        "address: 192.0.2.1\nport: 80\nnodeSelector: {matchLabels: {role: lb}}\n",
    ])
}

fn any_object() -> impl Strategy<Value = SourceObject> {
    (0..2u8, 0..3u8, 0..3i64, any_spec()).prop_map(|(ns, name, created, yaml)| {
        let spec: VirtualServiceSpec = serde_yaml::from_str(yaml).unwrap();
        SourceObject {
            id: ObjectId::kubernetes(format!("ns{ns}"), format!("n{name}")),
            age: Age::Created { seconds: created, nanos: 0 },
            spec,
            generation: None,
        }
    })
}

#[derive(Debug, Clone)]
enum Step {
    Apply(Box<SourceObject>),
    Unreadable(ObjectId),
    Delete(ObjectId),
    Reset(Vec<SourceObject>),
    /// The `web` Service's one slice: absent, or with 10.0.0.1 ready or not.
    Slice(Option<bool>),
    /// The node's labels: unknown, or role=lb or not.
    Labels(Option<bool>),
    /// Pool `p{n}` set or deleted (it matters in pools mode only).
    Pool(u8, Option<Pool>),
    /// Namespace `ns{n}`'s labels: gone, or tier=edge or not.
    Namespace(u8, Option<bool>),
}

fn any_pool() -> impl Strategy<Value = Pool> {
    let cidrs = prop::sample::subsequence(vec!["192.0.2.0/31", "192.0.2.2/32", "192.0.2.0/24", "2001:db8::/64"], 0..3);
    let namespaces = prop::sample::subsequence(vec!["ns0", "ns1"], 0..2);
    (cidrs, namespaces, any::<bool>(), any::<bool>(), prop::option::of(any::<bool>())).prop_map(
        |(cidrs, namespaces, by_label, marks, backends)| Pool {
            name: String::new(),
            addresses: cidrs.into_iter().map(|c| crate::source::admission::parse_cidr(c).unwrap()).collect(),
            fwmarks: if marks { vec![(1, 1)] } else { Vec::new() },
            namespaces: namespaces.into_iter().map(str::to_owned).collect(),
            namespace_selector: by_label.then(|| {
                kube::core::Selector::try_from(k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some([("tier".to_owned(), "edge".to_owned())].into()),
                    match_expressions: None,
                })
                .unwrap()
            }),
            // 10.0.0.1 is inside both, 10.0.0.9 inside the wider only.
            backend_cidrs: backends.map(|wide| {
                vec![crate::source::admission::parse_cidr(if wide { "10.0.0.0/24" } else { "10.0.0.0/29" }).unwrap()]
            }),
        },
    )
}

fn namespace_labels(edge: Option<bool>) -> Option<crate::source::admission::Labels> {
    edge.map(|edge| if edge { [("tier".to_owned(), "edge".to_owned())].into() } else { Default::default() })
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => any_object().prop_map(|o| Step::Apply(Box::new(o))),
        1 => any_object().prop_map(|o| Step::Unreadable(o.id)),
        2 => any_object().prop_map(|o| Step::Delete(o.id)),
        1 => prop::collection::vec(any_object(), 0..4).prop_map(Step::Reset),
        1 => prop::option::of(any::<bool>()).prop_map(Step::Slice),
        1 => prop::option::of(any::<bool>()).prop_map(Step::Labels),
        1 => (0..2u8, prop::option::of(any_pool())).prop_map(|(n, pool)| {
            Step::Pool(n, pool.map(|p| Pool { name: format!("p{n}"), ..p }))
        }),
        1 => (0..2u8, prop::option::of(any::<bool>())).prop_map(|(n, edge)| Step::Namespace(n, edge)),
    ]
}

/// What every key resolves to, for comparing before and after a step.
fn resolution(index: &ObjectIndex) -> BTreeMap<ServiceKey, Option<Resolved>> {
    let keys = index.table().services.keys().chain(index.held().keys());
    keys.map(|k| (*k, index.resolved(k))).collect()
}

proptest! {
    /// Whatever the sequence of events, (1) each step reports exactly the keys whose resolution it changed, (2) a
    /// copy of the table and held keys patched with only the reported keys (what a change pass does) stays equal to
    /// the index's, (3) a follower of `changed_reports` (the status writer) always has every object's report, and
    /// (4) the index ends where a fresh index of the surviving objects, applied in any order, starts. In pools
    /// admission too, where a pool or namespace change re-decides only the objects it concerns.
    #[test]
    fn steps_report_exact_changes_and_end_as_a_fresh_index(
        steps in prop::collection::vec(any_step(), 0..12),
        seed in any::<u64>(),
        pools_mode in any::<bool>(),
    ) {
        let mode = if pools_mode { AdmissionMode::Pools } else { AdmissionMode::Open };
        let mut index = ObjectIndex::new();
        index.set_admission_mode(mode);
        let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
        let mut namespaces: BTreeMap<String, crate::source::admission::Labels> = BTreeMap::new();
        let mut patched = DesiredTable::default();
        let mut patched_held: BTreeMap<ServiceKey, ObjectId> = BTreeMap::new();
        let mut followed: BTreeMap<ObjectId, ObjectReport> = BTreeMap::new();
        prop_assert!(index.changed_reports(&ReportsWanted::default()).is_empty());
        let mut alive: BTreeMap<ObjectId, Option<SourceObject>> = BTreeMap::new();
        let (mut web_slice, mut node_labels) = (None, None);
        let labels_of = |lb: Option<bool>| lb.map(|lb| {
            BTreeMap::from([("role".to_owned(), if lb { "lb" } else { "web" }.to_owned())])
        });
        for step in steps {
            let before = resolution(&index);
            let reported = match step {
                Step::Apply(o) => { alive.insert(o.id.clone(), Some(*o.clone())); index.apply(*o) }
                Step::Unreadable(id) => {
                    alive.insert(id.clone(), None);
                    index.apply_unreadable(id.clone(), vec![ValidationError::new(id, "spec", "unreadable")])
                }
                Step::Delete(id) => { alive.remove(&id); index.delete(&id) }
                Step::Reset(objects) => {
                    let unique: BTreeMap<ObjectId, SourceObject> = objects.into_iter().map(|o| (o.id.clone(), o)).collect();
                    alive = unique.iter().map(|(id, o)| (id.clone(), Some(o.clone()))).collect();
                    index.reset(unique.into_values().collect(), Vec::new())
                }
                Step::Slice(ready) => {
                    web_slice = ready.map(|r| slice(&[("10.0.0.1", r)]));
                    index.set_slice(web_ref(), "web-1", web_slice.clone())
                }
                Step::Labels(lb) => { node_labels = labels_of(lb); index.set_node_labels(node_labels.clone()) }
                Step::Pool(n, pool) => {
                    let name = format!("p{n}");
                    match &pool {
                        Some(pool) => { pools.insert(name.clone(), pool.clone()); }
                        None => { pools.remove(&name); }
                    }
                    index.set_pool(&name, pool)
                }
                Step::Namespace(n, edge) => {
                    let name = format!("ns{n}");
                    let labels = namespace_labels(edge);
                    match &labels {
                        Some(labels) => { namespaces.insert(name.clone(), labels.clone()); }
                        None => { namespaces.remove(&name); }
                    }
                    index.set_namespace(&name, labels)
                }
            };
            let after = resolution(&index);
            let mut expected = Changed::new();
            for key in before.keys().chain(after.keys()) {
                if before.get(key) != after.get(key) {
                    expected.insert(*key);
                }
            }
            for key in &reported {
                match index.table().services.get(key) {
                    Some(service) => patched.services.insert(*key, Arc::clone(service)),
                    None => patched.services.remove(key),
                };
                match index.held().get(key) {
                    Some(id) => patched_held.insert(*key, id.clone()),
                    None => patched_held.remove(key),
                };
            }
            prop_assert_eq!(&patched, index.table());
            prop_assert_eq!(&patched_held, index.held());
            prop_assert_eq!(reported, expected);
            for (id, report) in index.changed_reports(&ReportsWanted::default()) {
                match report {
                    Some(report) => followed.insert(id, report),
                    None => followed.remove(&id),
                };
            }
            let all: BTreeMap<ObjectId, ObjectReport> = index.reports().into_iter().map(|r| (r.id.clone(), r)).collect();
            prop_assert_eq!(&followed, &all);
        }
        // A fresh index of the same objects, in a scrambled order.
        let mut survivors: Vec<(ObjectId, Option<SourceObject>)> = alive.into_iter().collect();
        let len = survivors.len().max(1);
        survivors.rotate_left((seed as usize) % len);
        if seed % 2 == 0 { survivors.reverse(); }
        let mut fresh = ObjectIndex::new();
        fresh.set_admission_mode(mode);
        if seed % 3 == 0 {
            fresh.set_slice(web_ref(), "web-1", web_slice.clone());
            fresh.set_node_labels(node_labels.clone());
            fresh.reset_pools(Some(pools.clone()));
            fresh.reset_namespaces(namespaces.clone());
        }
        for (id, object) in survivors {
            match object {
                Some(o) => { fresh.apply(o); }
                None => { fresh.apply_unreadable(id.clone(), vec![ValidationError::new(id, "spec", "unreadable")]); }
            }
        }
        if seed % 3 != 0 {
            // Slices and labels arriving after the objects end in the same place.
            fresh.set_slice(web_ref(), "web-1", web_slice);
            fresh.set_node_labels(node_labels);
            fresh.reset_pools(Some(pools));
            fresh.reset_namespaces(namespaces);
        }
        prop_assert_eq!(index.outcome(), fresh.outcome());
        prop_assert_eq!(index.reports(), fresh.reports());
        prop_assert_eq!(index.not_admitted(), fresh.not_admitted());
    }
}

fn slice(endpoints: &[(&str, bool)]) -> Slice {
    Slice {
        family: Some(crate::model::Family::V4),
        ports: vec![(Some("http".to_owned()), 8080)],
        endpoints: endpoints.iter().map(|(a, ready)| (a.parse().unwrap(), *ready)).collect(),
    }
}

fn web_ref() -> (String, String) {
    ("d".to_owned(), "web".to_owned())
}

fn dests(index: &ObjectIndex, key: ServiceKey) -> Vec<String> {
    index.table().services.get(&key).map(|s| s.dests.keys().map(ToString::to_string).collect()).unwrap_or_default()
}

const FROM_WEB: &str = "address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web, port: http}]\n";

#[test]
fn endpoint_slices_feed_the_objects_that_use_them() {
    let a = tcp("192.0.2.1", 80);
    let mut index = ObjectIndex::new();
    // No slices yet: the service is desired, with no backend.
    assert_eq!(index.apply(kube("d", "vs", 1, FROM_WEB)), keys(&[a]));
    assert_eq!(dests(&index, a), Vec::<String>::new());
    assert_eq!(
        index.set_slice(web_ref(), "web-1", Some(slice(&[("10.0.0.1", true), ("10.0.0.2", false)]))),
        keys(&[a])
    );
    assert_eq!(dests(&index, a), vec!["10.0.0.1:8080"]);
    // The same slice again changes nothing; a slice of another Service touches no key.
    assert_eq!(
        index.set_slice(web_ref(), "web-1", Some(slice(&[("10.0.0.1", true), ("10.0.0.2", false)]))),
        Changed::new()
    );
    assert_eq!(
        index.set_slice(("d".to_owned(), "other".to_owned()), "o", Some(slice(&[("10.0.0.9", true)]))),
        Changed::new()
    );
    // The not-ready endpoint becomes ready.
    assert_eq!(index.set_slice(web_ref(), "web-1", Some(slice(&[("10.0.0.1", true), ("10.0.0.2", true)]))), keys(&[a]));
    assert_eq!(dests(&index, a), vec!["10.0.0.1:8080", "10.0.0.2:8080"]);
    // Same name in another namespace is another Service.
    assert_eq!(
        index.set_slice(("e".to_owned(), "web".to_owned()), "w", Some(slice(&[("10.0.0.7", true)]))),
        Changed::new()
    );
    assert_eq!(index.set_slice(web_ref(), "web-1", None), keys(&[a]));
    assert_eq!(dests(&index, a), Vec::<String>::new());
    // An object that stops using the Service is no longer refreshed by it.
    index.apply(kube("d", "vs", 1, "address: 192.0.2.1\nport: 80\n"));
    assert_eq!(index.set_slice(web_ref(), "web-1", Some(slice(&[("10.0.0.1", true)]))), Changed::new());
}

#[test]
fn a_backend_from_two_origins_holds_the_service() {
    let a = tcp("192.0.2.1", 80);
    let mut index = ObjectIndex::new();
    index.apply(kube("d", "vs", 1, "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, port: 8080}]\nbackendsFrom: [{service: web, port: http}]\n"));
    assert_eq!(index.set_slice(web_ref(), "s", Some(slice(&[("10.0.0.1", true)]))), keys(&[a]));
    assert_eq!(index.held().get(&a), Some(&ObjectId::kubernetes("d", "vs")));
    assert!(index.errors()[0].to_string().contains("is also in spec.backends"), "{:?}", index.errors());
    assert!(!index.has_keyless_problems());
}

#[test]
fn node_selectors_decide_what_this_node_programs() {
    let a = tcp("192.0.2.1", 80);
    let selective = "address: 192.0.2.1\nport: 80\nnodeSelector: {matchLabels: {role: lb}}\n";
    let mut index = ObjectIndex::new();
    // Labels unknown: a selector selects nothing (the agent does not pass before it knows its Node).
    assert_eq!(index.apply(kube("d", "vs", 1, selective)), Changed::new());
    let labels = |pairs: &[(&str, &str)]| Some(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    assert_eq!(index.set_node_labels(labels(&[("role", "lb")])), keys(&[a]));
    assert_eq!(origin(&index, a), "d/vs");
    assert_eq!(index.set_node_labels(labels(&[("role", "lb")])), Changed::new());
    // The node's label changes: the service goes from this node.
    assert_eq!(index.set_node_labels(labels(&[("role", "web")])), keys(&[a]));
    assert!(index.table().services.is_empty());
    assert!(!index.has_keyless_problems(), "not selected is no problem");
    // A younger object for the same key that selects every node takes it while the older one does not select.
    index.apply(kube("d", "everywhere", 2, A));
    assert_eq!(origin(&index, a), "d/everywhere");
    assert!(index.conflicts().is_empty());
    assert_eq!(index.set_node_labels(labels(&[("role", "lb")])), keys(&[a]));
    assert_eq!(origin(&index, a), "d/vs");
    assert_eq!(index.conflicts().len(), 1);
}

#[test]
fn each_object_reports_what_became_of_it() {
    let mut index = ObjectIndex::new();
    index.apply(SourceObject { generation: Some(4), ..kube("d", "old", 1, A) });
    index.apply(kube("d", "young", 2, A_OTHER_BACKENDS));
    index.apply(kube("d", "bad", 3, BAD));
    index.apply(kube("d", "elsewhere", 4, "address: 192.0.2.9\nport: 80\nnodeSelector: {matchLabels: {role: lb}}\n"));
    let reports: BTreeMap<String, ObjectReport> = index.reports().into_iter().map(|r| (r.id.to_string(), r)).collect();
    assert_eq!(reports["d/old"].state, ObjectState::Desired { key: tcp("192.0.2.1", 80), backends: 1 });
    assert_eq!(reports["d/old"].generation, Some(4));
    assert_eq!(
        reports["d/young"].state,
        ObjectState::Conflict { key: tcp("192.0.2.1", 80), winner: ObjectId::kubernetes("d", "old") }
    );
    assert!(matches!(&reports["d/bad"].state, ObjectState::Invalid { key: Some(_), errors } if errors.len() == 2));
    assert_eq!(reports["d/elsewhere"].state, ObjectState::NotSelected);
}

mod admission;

fn doc(path: &str, file: usize, index: usize, name: &str, yaml: &str) -> SourceObject {
    let id = ObjectId::document(path, index).named(None, Some(name));
    object(id, Age::loaded(file, index), yaml)
}

#[test]
fn a_second_document_with_one_name_is_the_younger_ones_error_whatever_the_order() {
    let first = doc("a.yaml", 0, 0, "web", A);
    let second = doc("b.yaml", 1, 0, "web", B);
    for order in [[first.clone(), second.clone()], [second.clone(), first.clone()]] {
        let index = ObjectIndex::from_objects(order);
        let out = index.outcome();
        assert_eq!(out.table.services.keys().copied().collect::<Vec<_>>(), [tcp("192.0.2.1", 80)]);
        let rendered: Vec<_> = out.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            ["b.yaml#0 (default/web): metadata.name: default/web is also declared by a.yaml#0 (default/web), which \
              comes first: kubectl apply would keep only the last one applied; this document is ignored"]
        );
        // It names its service, which it holds (left as it is) rather than letting it be deleted.
        assert_eq!(out.held.get(&tcp("192.0.2.2", 80)), Some(&second.id));
        assert!(!out.keyless_problems);
    }
}

#[test]
fn when_the_first_of_two_namesakes_goes_the_second_counts() {
    let mut index = ObjectIndex::from_objects([doc("a.yaml", 0, 0, "web", A), doc("b.yaml", 1, 0, "web", B)]);
    let changed = index.delete(&ObjectId::document("a.yaml", 0).named(None, Some("web")));
    assert_eq!(changed, keys(&[tcp("192.0.2.1", 80), tcp("192.0.2.2", 80)]));
    let out = index.outcome();
    assert!(out.is_clean(), "{:?}", out.errors);
    assert_eq!(out.table.services.keys().copied().collect::<Vec<_>>(), [tcp("192.0.2.2", 80)]);
    // Other namespaces, and Kubernetes objects, are other names.
    let mut index = ObjectIndex::from_objects([doc("a.yaml", 0, 0, "web", A)]);
    let prod = object(ObjectId::document("b.yaml", 0).named(Some("prod"), Some("web")), Age::loaded(1, 0), B);
    index.apply(prod);
    index.apply(kube("default", "web", 1, "address: 192.0.2.9\nport: 80\n"));
    assert!(index.outcome().is_clean(), "{:?}", index.outcome().errors);
}

#[test]
fn a_file_moving_ahead_in_the_load_takes_the_name() {
    let mut index = ObjectIndex::from_objects([doc("a.yaml", 0, 0, "web", A), doc("b.yaml", 1, 0, "web", B)]);
    index.batch(|index| {
        index.reage(&ObjectId::document("a.yaml", 0).named(None, Some("web")), Age::loaded(1, 0));
        index.reage(&ObjectId::document("b.yaml", 0).named(None, Some("web")), Age::loaded(0, 0));
    });
    let out = index.outcome();
    assert_eq!(out.table.services.keys().copied().collect::<Vec<_>>(), [tcp("192.0.2.2", 80)]);
    assert_eq!(out.errors.len(), 1);
    assert!(out.errors[0].to_string().starts_with("a.yaml#0 (default/web): metadata.name:"), "{}", out.errors[0]);
}

#[test]
fn unread_fields_make_the_object_invalid_and_hide_nothing_else() {
    let mut index = ObjectIndex::new();
    let id = ObjectId::document("a.yaml", 0).named(None, Some("web"));
    let unread = vec![ValidationError::new(id.clone(), "spec.backends[0].weight", "expected an integer")];
    index.apply_read(
        object(
            id.clone(),
            Age::loaded(0, 0),
            "address: 192.0.2.1\nport: 80\nscheduler: nope\nbackends: [{address: 10.0.0.1}]\n",
        ),
        unread,
    );
    let out = index.outcome();
    let fields: Vec<_> = out.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["spec.backends[0].weight", "spec.scheduler"]);
    assert_eq!(out.held.get(&tcp("192.0.2.1", 80)), Some(&id), "its key was read: held");
    // An unread key field names no service: every deletion waits.
    let unread = vec![ValidationError::new(id.clone(), "spec.port", "out of range")];
    index.apply_read(object(id.clone(), Age::loaded(0, 0), "address: 192.0.2.1\n"), unread);
    let out = index.outcome();
    assert_eq!(out.errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>(), ["spec.port"]);
    assert!(out.held.is_empty() && out.keyless_problems);
}
