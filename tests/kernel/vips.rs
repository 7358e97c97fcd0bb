//! The VIP interface against the real kernel: the dummy interface is created when missing, host addresses are
//! added (IPv6 without DAD) and removed, the planner's rules hold on a real listing, and nothing it does not own
//! is touched: another address on the interface, another interface, an interface of the name that is not a dummy.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipvs_reconciler::ipvs::NetnsSpec;
use ipvs_reconciler::netif::{NetifError, VipInterface};
use ipvs_reconciler::table::plan_vips;

use crate::support::Netns;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// `ip -o addr show dev NAME` in `ns`: one line per address, as iproute2 prints it.
fn shown(ns: &Netns, dev: &str) -> String {
    let out = ns.exec("ip", &["-o", "addr", "show", "dev", dev]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn open(ns: &Netns, name: &str) -> VipInterface {
    VipInterface::open(&NetnsSpec::Path(ns.path()), name).await.expect("rtnetlink in the test namespace")
}

#[tokio::test]
async fn vips_go_on_a_dummy_interface_it_creates_and_only_its_own_leave() {
    let ns = Netns::new("vip-basic");
    // Someone else's interface and address, which no pass may touch.
    ns.ip(&["link", "add", "other0", "type", "dummy"]);
    ns.ip(&["addr", "add", "192.0.2.200/32", "dev", "other0"]);
    let vips = open(&ns, "ipvs0").await;

    let index = vips.ensure().await.expect("ipvs0 created");
    assert_eq!(vips.ensure().await.expect("found again"), index, "ensure is idempotent");
    let link = ns.exec("ip", &["-d", "-o", "link", "show", "ipvs0"]);
    let link = String::from_utf8_lossy(&link.stdout).into_owned();
    assert!(link.contains("dummy") && link.contains(",UP"), "a dummy interface, up: {link}");

    // Someone else puts an address on ipvs0 too.
    ns.ip(&["addr", "add", "192.0.2.99/32", "dev", "ipvs0"]);

    let wanted: BTreeSet<IpAddr> = [ip("192.0.2.1"), ip("192.0.2.99"), ip("2001:db8::1")].into();
    let listed = vips.addresses(index).await.expect("listing");
    let live: BTreeSet<IpAddr> = listed.keys().copied().collect();
    let plan = plan_vips(&wanted, &live, &BTreeSet::new(), &BTreeSet::new());
    assert_eq!(plan.add, [ip("192.0.2.1"), ip("2001:db8::1")].into());
    assert_eq!(plan.foreign, [ip("192.0.2.99")].into(), "used, not adopted");
    for addr in &plan.add {
        vips.add(index, *addr).await.expect("add");
    }
    let text = shown(&ns, "ipvs0");
    assert!(text.contains("inet 192.0.2.1/32"), "{text}");
    assert!(text.contains("inet6 2001:db8::1/128"), "{text}");
    // A dummy interface (NOARP) skips DAD anyway; the flag keeps a VIP usable at once on any interface.
    let v6 = text.lines().find(|line| line.contains("2001:db8::1/128")).unwrap_or_default();
    assert!(v6.contains("nodad") && !v6.contains("tentative"), "IPv6 VIPs are added without DAD: {v6}");

    // The services go: only what it added leaves.
    let owned = plan.owned_after;
    let listed = vips.addresses(index).await.expect("listing");
    let live: BTreeSet<IpAddr> = listed.keys().copied().collect();
    let plan = plan_vips(&BTreeSet::new(), &live, &BTreeSet::new(), &owned);
    assert_eq!(plan.remove, [ip("192.0.2.1"), ip("2001:db8::1")].into());
    for addr in &plan.remove {
        vips.remove(*addr, &listed[addr]).await.expect("remove");
    }
    let text = shown(&ns, "ipvs0");
    assert!(!text.contains("192.0.2.1/") && !text.contains("2001:db8::1/"), "{text}");
    assert!(text.contains("192.0.2.99/32"), "someone else's address stays: {text}");
    assert!(shown(&ns, "other0").contains("192.0.2.200/32"), "another interface is untouched");

    // A second pass over what is left changes nothing.
    let listed = vips.addresses(index).await.expect("listing");
    let live: BTreeSet<IpAddr> = listed.keys().copied().collect();
    assert!(plan_vips(&BTreeSet::new(), &live, &BTreeSet::new(), &plan.owned_after).is_empty());
}

#[tokio::test]
async fn an_interface_of_the_name_that_is_not_a_dummy_is_refused_and_left_alone() {
    let ns = Netns::new("vip-foreign");
    ns.ip(&["link", "add", "ipvs0", "type", "veth", "peer", "name", "ipvs0-peer"]);
    ns.ip(&["addr", "add", "192.0.2.7/24", "dev", "ipvs0"]);
    let vips = open(&ns, "ipvs0").await;
    match vips.ensure().await {
        Err(NetifError::NotDummy { name, kind }) => {
            assert_eq!(name, "ipvs0");
            assert_eq!(kind, "veth");
        }
        other => panic!("a veth named ipvs0 must be refused, got {other:?}"),
    }
    assert!(shown(&ns, "ipvs0").contains("192.0.2.7/24"), "its address stays");
}

#[tokio::test]
async fn an_address_that_is_not_a_host_prefix_is_never_removed() {
    let ns = Netns::new("vip-prefix");
    let vips = open(&ns, "ipvs0").await;
    let index = vips.ensure().await.expect("ipvs0 created");
    ns.ip(&["addr", "add", "192.0.2.50/24", "dev", "ipvs0"]);
    let listed = vips.addresses(index).await.expect("listing");
    let addr = ip("192.0.2.50");
    match vips.remove(addr, &listed[&addr]).await {
        Err(NetifError::NotOurs { prefix_len: 24, .. }) => {}
        other => panic!("a /24 is not ours to remove, got {other:?}"),
    }
    assert!(shown(&ns, "ipvs0").contains("192.0.2.50/24"));
}

/// A VIP the node already has on another interface (VRRP put it on eth0, an operator on lo) is used as it is:
/// `plan` shows no address change, `apply` binds nothing on ipvs0 for it and does not own it, and cleanup leaves it.
#[test]
fn a_vip_already_on_another_interface_is_used_as_it_is() {
    let ns = Netns::new("vip-elsewhere");
    ns.ip(&["link", "add", "eth0", "type", "dummy"]);
    ns.ip(&["addr", "add", "192.0.2.10/24", "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns.ip(&["addr", "add", "192.0.2.11/32", "dev", "lo"]);
    let work = crate::support::Workdir::new();
    work.write(
        "web.yaml",
        "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: vrrp}\n\
         spec: {address: 192.0.2.10, port: 80, backends: [{address: 10.0.0.1}]}\n---\n\
         apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: lo}\n\
         spec: {address: 192.0.2.11, port: 80, backends: [{address: 10.0.0.1}]}\n---\n\
         apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: ours}\n\
         spec: {address: 192.0.2.12, port: 80, backends: [{address: 10.0.0.1}]}\n",
    );
    let plan = work.plan(&ns);
    plan.expect_code(2);
    let address_lines: Vec<&str> = plan.stdout.lines().filter(|l| l.contains("address")).collect();
    assert_eq!(address_lines, vec!["add address 192.0.2.12/32 to ipvs0"], "{plan}");
    work.apply(&ns).expect_code(0);
    let on_ipvs0 = ns.addresses_of("ipvs0");
    assert!(on_ipvs0.contains("192.0.2.12/32"), "{on_ipvs0}");
    assert!(!on_ipvs0.contains("192.0.2.10") && !on_ipvs0.contains("192.0.2.11"), "not bound again: {on_ipvs0}");
    let owned = ipvs_reconciler::engine::ownership::Ownership::load(&work.state()).expect("state file").vips.addrs;
    assert_eq!(owned, BTreeSet::from([ip("192.0.2.12")]), "only the address it added is owned");
    work.plan(&ns).expect_code(0);
    ns.cli_run(&["cleanup", "--state", crate::support::path_str(&work.state())]).expect_code(0);
    assert!(ns.addresses_of("eth0").contains("192.0.2.10/24"), "VRRP's address stays");
    assert!(ns.addresses_of("lo").contains("192.0.2.11/32"), "the operator's address stays");
}
