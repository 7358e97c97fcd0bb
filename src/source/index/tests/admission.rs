//! The index in `pools` admission mode: what is not admitted claims nothing, and pool or namespace changes
//! re-decide only the objects they concern and report exactly the keys they change.

use super::*;
use crate::source::admission::{AdmissionMode, Labels, Pool, parse_cidr};

fn pool(name: &str, cidr: &str, namespaces: &[&str]) -> Pool {
    Pool {
        name: name.to_owned(),
        addresses: vec![parse_cidr(cidr).unwrap()],
        fwmarks: Vec::new(),
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        namespace_selector: None,
        backend_cidrs: None,
    }
}

fn pools_index() -> ObjectIndex {
    let mut index = ObjectIndex::new();
    index.set_admission_mode(AdmissionMode::Pools);
    index
}

fn state(index: &ObjectIndex, ns: &str, name: &str) -> ObjectState {
    let id = ObjectId::kubernetes(ns, name);
    index.reports().into_iter().find(|r| r.id == id).map(|r| r.state).unwrap()
}

#[test]
fn without_a_pool_nothing_is_programmed_and_each_object_says_why() {
    let mut index = pools_index();
    index.apply(kube("team-a", "web", 1, A));
    assert!(index.table().services.is_empty());
    assert!(index.lacks_pools());
    assert_eq!(index.not_admitted(), 1);
    let ObjectState::NotAdmitted { key, reason } = state(&index, "team-a", "web") else { panic!() };
    assert_eq!(key, tcp("192.0.2.1", 80));
    assert_eq!(reason, "no pool grants 192.0.2.1 to namespace team-a (there is no VirtualServicePool)");
    // Not admitted is not a problem of the object's declaration: no error, and deletions are not held.
    assert!(index.errors().is_empty());
    assert!(!index.has_keyless_problems());
}

#[test]
fn a_pool_admits_its_namespace_and_its_revocation_removes_exactly_that_service() {
    let mut index = pools_index();
    index.apply(kube("team-a", "web", 1, A));
    index.apply(kube("team-b", "other", 2, B));
    let granted = index.set_pool("edge", Some(pool("edge", "192.0.2.0/31", &["team-a"])));
    assert_eq!(granted, keys(&[tcp("192.0.2.1", 80)]));
    assert_eq!(state(&index, "team-a", "web"), ObjectState::Desired { key: tcp("192.0.2.1", 80), backends: 1 });
    let ObjectState::NotAdmitted { reason, .. } = state(&index, "team-b", "other") else { panic!() };
    assert_eq!(reason, "no pool grants 192.0.2.2 to namespace team-b");
    assert!(!index.lacks_pools());

    // Narrowing the pool to another range revokes web's address.
    let revoked = index.set_pool("edge", Some(pool("edge", "198.51.100.0/24", &["team-a"])));
    assert_eq!(revoked, keys(&[tcp("192.0.2.1", 80)]));
    assert!(index.table().services.is_empty());
    // A pool deleted: nothing more to revoke.
    assert_eq!(index.set_pool("edge", None), Changed::new());
    assert_eq!(index.set_pool("edge", None), Changed::new(), "deleting an unknown pool changes nothing");
}

#[test]
fn an_object_that_is_not_admitted_never_blocks_an_admitted_one_on_the_same_key() {
    let mut index = pools_index();
    index.set_pool("edge", Some(pool("edge", "192.0.2.0/24", &["team-a"])));
    // The squatter is older, and even invalid (an invalid object otherwise holds its key).
    index.apply(kube("team-b", "squatter", 1, BROKEN_A));
    index.apply(kube("team-b", "copy", 2, A));
    index.apply(kube("team-a", "web", 3, A));
    assert_eq!(origin(&index, tcp("192.0.2.1", 80)), "team-a/web");
    assert!(index.held().is_empty());
    assert!(index.conflicts().is_empty());
    assert!(matches!(state(&index, "team-b", "squatter"), ObjectState::Invalid { key: Some(_), .. }));
    assert!(matches!(state(&index, "team-b", "copy"), ObjectState::NotAdmitted { .. }));
    // Admitted, the invalid object holds its key again (it is older than web).
    let changed = index.set_pool("edge", Some(pool("edge", "192.0.2.0/24", &["team-a", "team-b"])));
    assert_eq!(changed, keys(&[tcp("192.0.2.1", 80)]));
    assert_eq!(index.held().get(&tcp("192.0.2.1", 80)), Some(&ObjectId::kubernetes("team-b", "squatter")));
}

#[test]
fn a_namespace_label_change_re_decides_only_that_namespaces_objects() {
    let mut index = pools_index();
    let mut edge = pool("edge", "192.0.2.0/24", &[]);
    let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some([("tier".to_owned(), "edge".to_owned())].into()),
        match_expressions: None,
    };
    edge.namespace_selector = Some(kube::core::Selector::try_from(selector).unwrap());
    index.set_pool("edge", Some(edge));
    index.reset_namespaces([("team-a".to_owned(), Labels::new()), ("team-b".to_owned(), Labels::new())].into());
    index.apply(kube("team-a", "web", 1, A));
    index.apply(kube("team-b", "other", 2, B));
    assert!(index.table().services.is_empty());
    index.changed_reports(&ReportsWanted::default());

    let labelled: Labels = [("tier".to_owned(), "edge".to_owned())].into();
    assert_eq!(index.set_namespace("team-b", Some(labelled.clone())), keys(&[tcp("192.0.2.2", 80)]));
    let reports: Vec<ObjectId> =
        index.changed_reports(&ReportsWanted::default()).into_iter().map(|(id, _)| id).collect();
    assert_eq!(reports, vec![ObjectId::kubernetes("team-b", "other")], "only that namespace's objects");
    assert_eq!(index.set_namespace("team-b", Some(labelled)), Changed::new(), "the same labels change nothing");
    assert_eq!(index.set_namespace("team-b", None), keys(&[tcp("192.0.2.2", 80)]), "a deleted namespace");
}

#[test]
fn explicit_backends_outside_the_pools_backend_cidrs_are_not_admitted() {
    let mut index = pools_index();
    let mut edge = pool("edge", "192.0.2.0/24", &["team-a"]);
    edge.backend_cidrs = Some(vec![parse_cidr("10.0.0.0/30").unwrap()]);
    index.set_pool("edge", Some(edge));
    index.apply(kube("team-a", "web", 1, A));
    index.apply(kube("team-a", "far", 2, "address: 192.0.2.2\nport: 80\nbackends: [{address: 10.9.9.9}]\n"));
    assert_eq!(index.table().services.keys().copied().collect::<Vec<_>>(), vec![tcp("192.0.2.1", 80)]);
    let ObjectState::NotAdmitted { reason, .. } = state(&index, "team-a", "far") else { panic!() };
    assert_eq!(reason, "backend 10.9.9.9 is outside backendCIDRs of pool edge");
}

#[test]
fn the_pool_crd_missing_admits_nothing_and_a_relist_restores_what_was_admitted() {
    let mut index = pools_index();
    index.set_pool("edge", Some(pool("edge", "192.0.2.0/24", &["team-a"])));
    index.apply(kube("team-a", "web", 1, A));
    assert_eq!(index.reset_pools(None), keys(&[tcp("192.0.2.1", 80)]));
    let ObjectState::NotAdmitted { reason, .. } = state(&index, "team-a", "web") else { panic!() };
    assert!(reason.contains("CRD is not installed"), "{reason}");
    let back = index.reset_pools(Some([("edge".to_owned(), pool("edge", "192.0.2.0/24", &["team-a"]))].into()));
    assert_eq!(back, keys(&[tcp("192.0.2.1", 80)]));
    assert_eq!(
        index.reset_pools(Some([("edge".to_owned(), pool("edge", "192.0.2.0/24", &["team-a"]))].into())),
        Changed::new()
    );
}

#[test]
fn files_are_the_node_owners_and_are_never_decided_by_pools() {
    let mut index = pools_index();
    let file = object(ObjectId::File { path: "web.yaml".into() }, Age::Loaded { file: 0, document: 0 }, A);
    index.apply(file);
    assert_eq!(index.table().services.len(), 1);
    assert_eq!(index.not_admitted(), 0);
}
