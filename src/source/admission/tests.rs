//! Admission as a pure function: examples with their messages, and properties over random pools and objects.

use proptest::prelude::*;

use super::*;
use crate::model::{Family, Protocol};

fn pool(name: &str, addresses: &[&str], namespaces: &[&str]) -> Pool {
    Pool {
        name: name.to_owned(),
        addresses: addresses.iter().map(|a| parse_cidr(a).unwrap()).collect(),
        fwmarks: Vec::new(),
        namespaces: namespaces.iter().map(|n| (*n).to_owned()).collect(),
        namespace_selector: None,
        backend_cidrs: None,
    }
}

fn pools(list: Vec<Pool>) -> Admission {
    let mut admission = Admission::new(AdmissionMode::Pools);
    admission.pools = Some(list.into_iter().map(|p| (p.name.clone(), p)).collect());
    admission
}

fn vip(addr: &str) -> ServiceKey {
    ServiceKey::tcp(addr.parse().unwrap(), 80)
}

fn claim<'a>(namespace: &'a str, key: &'a ServiceKey, targets: &'a [(IpAddr, String)]) -> Claim<'a> {
    Claim { namespace, key, targets }
}

fn selector(labels: &[(&str, &str)]) -> Selector {
    let selector = k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
        match_labels: Some(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
        match_expressions: None,
    };
    Selector::try_from(selector).unwrap()
}

#[test]
fn a_pool_grants_its_addresses_to_its_namespaces_only() {
    let admission = pools(vec![pool("edge", &["192.0.2.0/28", "2001:db8:1::/120"], &["team-a"])]);
    let (inside, v6, outside) = (vip("192.0.2.10"), vip("2001:db8:1::10"), vip("192.0.2.16"));
    assert_eq!(admission.decide(&claim("team-a", &inside, &[])), Ok(()));
    assert_eq!(admission.decide(&claim("team-a", &v6, &[])), Ok(()));
    assert_eq!(
        admission.decide(&claim("team-b", &inside, &[])),
        Err(NotAdmitted("no pool grants 192.0.2.10 to namespace team-b".to_owned()))
    );
    assert_eq!(
        admission.decide(&claim("team-a", &outside, &[])),
        Err(NotAdmitted("no pool grants 192.0.2.16 to namespace team-a".to_owned()))
    );
}

#[test]
fn namespaces_and_the_selector_are_a_union_and_an_empty_selector_selects_every_namespace() {
    let mut edge = pool("edge", &["192.0.2.0/24"], &["team-a"]);
    edge.namespace_selector = Some(selector(&[("tier", "edge")]));
    let mut admission = pools(vec![edge]);
    admission.namespaces.insert("team-b".to_owned(), [("tier".to_owned(), "edge".to_owned())].into());
    admission.namespaces.insert("team-c".to_owned(), Labels::new());
    let key = vip("192.0.2.1");
    assert_eq!(admission.decide(&claim("team-a", &key, &[])), Ok(()), "by name");
    assert_eq!(admission.decide(&claim("team-b", &key, &[])), Ok(()), "by label");
    assert!(admission.decide(&claim("team-c", &key, &[])).is_err(), "neither");
    assert!(admission.decide(&claim("unknown", &key, &[])).is_err(), "a namespace not seen matches no selector");

    let mut everyone = pool("shared", &["192.0.2.0/24"], &[]);
    everyone.namespace_selector = Some(selector(&[]));
    let admission = pools(vec![everyone]);
    let mut with_labels = admission.clone();
    with_labels.namespaces.insert("team-c".to_owned(), Labels::new());
    assert_eq!(with_labels.decide(&claim("team-c", &key, &[])), Ok(()));
    assert!(pools(vec![pool("none", &["192.0.2.0/24"], &[])]).decide(&claim("team-c", &key, &[])).is_err());
}

#[test]
fn fwmarks_are_granted_by_range() {
    let mut marks = pool("marks", &["192.0.2.0/24"], &["team-a"]);
    marks.fwmarks = vec![(100, 199)];
    let admission = pools(vec![marks]);
    let inside = ServiceKey::Fwmark { family: Family::V4, mark: 150 };
    let outside = ServiceKey::Fwmark { family: Family::V4, mark: 200 };
    assert_eq!(admission.decide(&claim("team-a", &inside, &[])), Ok(()));
    assert_eq!(
        admission.decide(&claim("team-a", &outside, &[])),
        Err(NotAdmitted("no pool grants fwmark 200 to namespace team-a".to_owned()))
    );
}

#[test]
fn explicit_backends_and_the_sorry_server_must_fall_in_the_backend_cidrs_of_a_granting_pool() {
    let mut edge = pool("edge", &["192.0.2.0/24"], &["team-a"]);
    edge.backend_cidrs = Some(vec![parse_cidr("10.0.0.0/8").unwrap()]);
    let key = vip("192.0.2.1");
    let good = [("10.1.2.3".parse().unwrap(), "backend".to_owned())];
    let bad = [
        ("10.1.2.3".parse().unwrap(), "backend".to_owned()),
        ("172.16.0.9".parse().unwrap(), "sorry server".to_owned()),
    ];
    let admission = pools(vec![edge.clone()]);
    assert_eq!(admission.decide(&claim("team-a", &key, &good)), Ok(()));
    assert_eq!(
        admission.decide(&claim("team-a", &key, &bad)),
        Err(NotAdmitted("sorry server 172.16.0.9 is outside backendCIDRs of pool edge".to_owned()))
    );
    // Another pool granting the same address without bounds admits it: either pool admits.
    let open = pool("open", &["192.0.2.0/24"], &["team-a"]);
    assert_eq!(pools(vec![edge, open]).decide(&claim("team-a", &key, &bad)), Ok(()));
}

#[test]
fn without_pools_nothing_is_admitted_and_the_message_says_why() {
    let key = vip("192.0.2.1");
    let none = pools(vec![]);
    let refused = none.decide(&claim("team-a", &key, &[])).unwrap_err();
    assert!(refused.0.contains("there is no VirtualServicePool"), "{refused}");
    let missing = Admission { pools: None, ..Admission::new(AdmissionMode::Pools) };
    let refused = missing.decide(&claim("team-a", &key, &[])).unwrap_err();
    assert!(refused.0.contains("CRD is not installed"), "{refused}");
    assert_eq!(Admission::new(AdmissionMode::Open).decide(&claim("team-a", &key, &[])), Ok(()));
}

#[test]
fn cidrs_are_parsed_as_the_crd_takes_them() {
    assert!(parse_cidr("192.0.2.0/28").is_ok());
    assert!(parse_cidr("2001:db8:1::/120").is_ok());
    assert!(parse_cidr("192.0.2.1").is_err(), "a CIDR needs its prefix length");
    assert!(parse_cidr("192.0.2.0/33").is_err());
    assert!(parse_cidr("::ffff:192.0.2.0/120").unwrap_err().contains("IPv4 form"));
}

#[test]
fn a_pool_resource_converts_and_names_what_it_cannot_read() {
    use crate::api::pool::{FwmarkRange, VirtualServicePoolSpec};
    let spec = VirtualServicePoolSpec {
        addresses: vec!["192.0.2.0/28".to_owned(), "bogus".to_owned()],
        fwmarks: vec![FwmarkRange { from: 100, to: 199 }, FwmarkRange { from: 9, to: 1 }],
        namespaces: vec!["team-a".to_owned()],
        namespace_selector: None,
        backend_cidrs: Some(vec!["10.0.0.0/8".to_owned()]),
    };
    let resource = VirtualServicePool::new("edge", spec);
    let (converted, problems) = Pool::from_resource(&resource);
    assert_eq!(converted.addresses, vec![parse_cidr("192.0.2.0/28").unwrap()]);
    assert_eq!(converted.fwmarks, vec![(100, 199)]);
    assert_eq!(converted.backend_cidrs, Some(vec![parse_cidr("10.0.0.0/8").unwrap()]));
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems[0].contains("VirtualServicePool edge: spec.addresses[1]"), "{problems:?}");
    assert!(problems[1].contains("spec.fwmarks[1]"), "{problems:?}");
}

// Random pools over a small space of addresses, marks and namespaces, so that grants and claims meet often.

fn any_net() -> impl Strategy<Value = IpNet> {
    (0u8..4, 24u8..=32).prop_map(|(third, len)| IpNet::new([192, 0, third, 0].into(), len).unwrap().trunc())
}

const NAMESPACES: [&str; 3] = ["a", "b", "c"];

fn any_pool() -> impl Strategy<Value = Pool> {
    (
        "[a-z]{1,3}",
        proptest::collection::vec(any_net(), 0..3),
        proptest::collection::vec((1u32..20, 0u32..5), 0..2),
        proptest::collection::vec(0usize..3, 0..2),
        proptest::option::of(any::<bool>()),
        proptest::option::of(proptest::collection::vec(
            (0u8..3).prop_map(|n| IpNet::new([10, n, 0, 0].into(), 16).unwrap()),
            0..2,
        )),
    )
        .prop_map(|(name, addresses, marks, namespaces, by_label, backend_cidrs)| Pool {
            name,
            addresses,
            fwmarks: marks.into_iter().map(|(from, len)| (from, from + len)).collect(),
            namespaces: namespaces.into_iter().map(|i| NAMESPACES[i].to_owned()).collect(),
            namespace_selector: by_label.map(|edge| if edge { selector(&[("tier", "edge")]) } else { selector(&[]) }),
            backend_cidrs,
        })
}

fn any_key() -> impl Strategy<Value = ServiceKey> {
    prop_oneof![
        (0u8..4, 0u8..=255).prop_map(|(third, last)| ServiceKey::Addr {
            protocol: Protocol::Tcp,
            addr: [192, 0, third, last].into(),
            port: 80
        }),
        (1u32..30).prop_map(|mark| ServiceKey::Fwmark { family: Family::V4, mark }),
    ]
}

fn any_targets() -> impl Strategy<Value = Vec<(IpAddr, String)>> {
    proptest::collection::vec(
        (0u8..4, 0u8..=255).prop_map(|(n, last)| ([10, n, 0, last].into(), "backend".to_owned())),
        0..3,
    )
}

fn any_namespace_labels() -> impl Strategy<Value = BTreeMap<String, Labels>> {
    proptest::collection::vec(any::<bool>(), 3).prop_map(|edge| {
        NAMESPACES
            .iter()
            .zip(edge)
            .map(|(ns, edge)| {
                let labels = if edge { [("tier".to_owned(), "edge".to_owned())].into() } else { Labels::new() };
                ((*ns).to_owned(), labels)
            })
            .collect()
    })
}

fn admission_of(list: &[Pool], namespaces: &BTreeMap<String, Labels>) -> Admission {
    let mut admission = pools(list.to_vec());
    admission.namespaces = namespaces.clone();
    admission
}

proptest! {
    #[test]
    fn adding_a_pool_never_un_admits_an_object(
        list in proptest::collection::vec(any_pool(), 0..4),
        extra in any_pool(),
        namespaces in any_namespace_labels(),
        key in any_key(),
        targets in any_targets(),
        ns in 0usize..3,
    ) {
        let before = admission_of(&list, &namespaces);
        let mut more = list.clone();
        more.retain(|p| p.name != extra.name);
        let had_same_name = more.len() != list.len();
        more.push(extra);
        let after = admission_of(&more, &namespaces);
        let claim = claim(NAMESPACES[ns], &key, &targets);
        if before.decide(&claim).is_ok() && !had_same_name {
            prop_assert!(after.decide(&claim).is_ok());
        }
    }

    #[test]
    fn without_any_pool_nothing_is_admitted_in_pools_mode(
        namespaces in any_namespace_labels(),
        key in any_key(),
        targets in any_targets(),
        ns in 0usize..3,
    ) {
        let admission = admission_of(&[], &namespaces);
        prop_assert!(admission.decide(&claim(NAMESPACES[ns], &key, &targets)).is_err());
        let missing = Admission { pools: None, ..admission };
        prop_assert!(missing.decide(&claim(NAMESPACES[ns], &key, &targets)).is_err());
    }

    #[test]
    fn an_objects_admission_depends_only_on_its_namespaces_labels_its_spec_and_the_pools(
        list in proptest::collection::vec(any_pool(), 0..4),
        namespaces in any_namespace_labels(),
        other_labels in any_namespace_labels(),
        key in any_key(),
        targets in any_targets(),
        ns in 0usize..3,
    ) {
        let namespace = NAMESPACES[ns];
        // Other namespaces' labels may change at will; this one's are kept.
        let mut changed = other_labels.clone();
        changed.insert(namespace.to_owned(), namespaces[namespace].clone());
        let claim = claim(namespace, &key, &targets);
        prop_assert_eq!(admission_of(&list, &namespaces).decide(&claim), admission_of(&list, &changed).decide(&claim));
        // Pool order does not matter (names are unique, as in the API).
        let mut seen = std::collections::BTreeSet::new();
        let mut list = list;
        list.retain(|p| seen.insert(p.name.clone()));
        let mut reversed = list.clone();
        reversed.reverse();
        prop_assert_eq!(admission_of(&list, &namespaces).decide(&claim), admission_of(&reversed, &namespaces).decide(&claim));
    }
}
