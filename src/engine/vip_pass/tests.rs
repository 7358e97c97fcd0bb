//! The address part of a pass against the in-memory kernel and interface: order around the services, ownership,
//! failed listings, held deletions, shared and unbound addresses.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::engine::fake::{AddressEvent, FakeAddresses, FakeKernel};
use crate::engine::ownership::Ownership;
use crate::engine::reconcile::{Engine, EngineError, PassOptions};
use crate::model::{ServiceKey, Table};
use crate::table::DesiredTable;
use crate::table::fixtures::{desired, desired_service, dest, live, live_entry, svc};

struct Fixture {
    kernel: Arc<FakeKernel>,
    addresses: Arc<FakeAddresses>,
    engine: Engine<Arc<FakeKernel>>,
    dir: tempfile::TempDir,
}

fn fixture(table: Table) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::with_table(table));
    let addresses = Arc::new(FakeAddresses::watching(Arc::clone(&kernel)));
    let engine = Engine::new(Arc::clone(&kernel), dir.path().join("state.json"))
        .unwrap()
        .with_addresses(Box::new(Arc::clone(&addresses)));
    Fixture { kernel, addresses, engine, dir }
}

impl Fixture {
    fn full(&mut self, desired: &DesiredTable) -> crate::engine::PassReportOf<Arc<FakeKernel>> {
        run(self.engine.reconcile_full(desired, 0, &PassOptions::default())).unwrap()
    }

    fn touched(&mut self, desired: &DesiredTable, keys: &[ServiceKey]) -> crate::engine::PassReportOf<Arc<FakeKernel>> {
        let keys: BTreeSet<ServiceKey> = keys.iter().copied().collect();
        run(self.engine.reconcile_touched(desired, &keys, 0, &PassOptions::default())).unwrap()
    }

    fn saved(&self) -> Ownership {
        Ownership::load(&self.dir.path().join("state.json")).unwrap()
    }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

fn addrs(lasts: &[u8]) -> BTreeSet<IpAddr> {
    lasts.iter().map(|&last| ip(last)).collect()
}

fn web(lasts: &[u8]) -> DesiredTable {
    desired(lasts.iter().map(|&last| desired_service(svc(last), "wlc", &[(dest(1), 1)], 0)))
}

#[test]
fn a_vip_is_added_before_its_service_and_removed_after_it() {
    let mut f = fixture(Table::default());
    let report = f.full(&web(&[1]));
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.addresses.added, vec![ip(1)]);
    assert_eq!(f.addresses.addrs(), addrs(&[1]));
    assert_eq!(
        f.addresses.take_events(),
        vec![AddressEvent { added: true, addr: ip(1), services: BTreeSet::new() }],
        "added while the service did not exist yet"
    );
    assert_eq!(f.saved().vips.addrs, addrs(&[1]), "ownership is on disk");
    assert_eq!(f.saved().vips.interface.as_deref(), Some("ipvs0"));

    let again = f.full(&web(&[1]));
    assert!(again.addresses.added.is_empty() && again.addresses.removed.is_empty(), "{:?}", again.addresses);
    assert!(f.addresses.take_events().is_empty());

    let gone = f.full(&DesiredTable::default());
    assert_eq!(gone.addresses.removed, vec![ip(1)]);
    assert_eq!(
        f.addresses.take_events(),
        vec![AddressEvent { added: false, addr: ip(1), services: BTreeSet::new() }],
        "removed once the service was gone"
    );
    assert!(f.addresses.addrs().is_empty());
    assert!(f.saved().vips.addrs.is_empty());
}

#[test]
fn an_address_someone_else_put_on_the_interface_is_used_and_never_removed() {
    let mut f = fixture(Table::default());
    // 2 is wanted and already there (someone else's), 9 is not wanted; a /24 of 3 is not even a host address.
    f.addresses.listing.lock().unwrap().extend([(ip(2), 32), (ip(9), 32), (ip(3), 24)]);
    let report = f.full(&web(&[1, 2]));
    assert_eq!(report.addresses.added, vec![ip(1)], "only the missing one is added");
    assert_eq!(f.saved().vips.addrs, addrs(&[1]), "a foreign address is not adopted");
    f.full(&DesiredTable::default());
    assert_eq!(f.addresses.addrs(), addrs(&[2, 3, 9]), "every foreign address survives");
    assert!(f.kernel.snapshot().services.is_empty());
}

#[test]
fn a_vip_the_node_has_on_another_interface_is_used_as_it_is() {
    // keepalived's VRRP put 1 on eth0: neither plan nor pass binds it again on ipvs0, and it is never owned, so
    // it outlives our services. 2 is ours to add.
    let mut f = fixture(Table::default());
    f.addresses.elsewhere.lock().unwrap().insert(ip(1));
    let plan = run(f.engine.plan_only(&web(&[1]), 0, &PassOptions::default())).unwrap();
    let planned = f.engine.planned_addresses(&web(&[1]), &plan.ops).unwrap();
    assert!(planned.is_empty(), "plan shows no address change: {planned:?}");
    assert_eq!(planned.foreign, addrs(&[1]));
    let report = f.full(&web(&[1, 2]));
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.addresses.added, vec![ip(2)]);
    assert_eq!(f.addresses.addrs(), addrs(&[2]), "not bound again on ipvs0");
    assert_eq!(f.saved().vips.addrs, addrs(&[2]), "not owned");
    f.full(&DesiredTable::default());
    assert!(f.addresses.take_events().iter().all(|e| e.addr != ip(1)), "never touched");
}

#[test]
fn a_failed_listing_changes_nothing() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1]));
    f.kernel.take_log();
    f.addresses.take_events();
    f.addresses.fail_list.store(true, Ordering::SeqCst);
    let err = run(f.engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::Addresses(_)), "{err}");
    assert_eq!(err.metric_label(), "address_read");
    assert!(err.to_string().contains("nothing was changed"), "{err}");
    assert!(f.kernel.take_log().is_empty(), "no IPVS change either: the service keeps its address");
    assert!(f.addresses.take_events().is_empty());
    assert_eq!(f.addresses.addrs(), addrs(&[1]));
    assert_eq!(f.saved().vips.addrs, addrs(&[1]));
}

#[test]
fn incremental_passes_list_nothing_and_follow_their_services() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1]));
    let listings = f.addresses.listings.load(Ordering::SeqCst);
    let report = f.touched(&web(&[1, 2]), &[svc(2)]);
    assert_eq!(report.addresses.added, vec![ip(2)]);
    let report = f.touched(&web(&[2]), &[svc(1)]);
    assert_eq!(report.addresses.removed, vec![ip(1)]);
    assert_eq!(f.addresses.listings.load(Ordering::SeqCst), listings, "incremental passes plan from the last listing");
    assert_eq!(f.addresses.addrs(), addrs(&[2]));
    assert_eq!(f.saved().vips.addrs, addrs(&[2]));
}

#[test]
fn two_services_on_one_vip_keep_it_until_the_last_is_gone() {
    let mut f = fixture(Table::default());
    let both = desired([
        desired_service(svc(1), "wlc", &[(dest(1), 1)], 0),
        desired_service(ServiceKey::tcp(ip(1), 443), "wlc", &[(dest(1), 1)], 0),
    ]);
    assert_eq!(f.full(&both).addresses.added, vec![ip(1)], "one address for both ports");
    let report = f.touched(&web(&[1]), &[ServiceKey::tcp(ip(1), 443)]);
    assert!(report.addresses.removed.is_empty(), "port 80 still needs it");
    assert_eq!(f.addresses.addrs(), addrs(&[1]));
    let report = f.touched(&DesiredTable::default(), &[svc(1)]);
    assert_eq!(report.addresses.removed, vec![ip(1)]);
}

#[test]
fn a_service_whose_deletion_is_held_keeps_its_vip() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1, 2]));
    let hold = PassOptions { hold_service_deletes: true, ..Default::default() };
    let report = run(f.engine.reconcile_full(&web(&[2]), 0, &hold)).unwrap();
    assert_eq!(report.held, vec![svc(1)]);
    assert!(report.addresses.removed.is_empty(), "{:?}", report.addresses);
    assert_eq!(f.addresses.addrs(), addrs(&[1, 2]));
    let report = f.full(&web(&[2]));
    assert_eq!(report.addresses.removed, vec![ip(1)], "released with the deletion");
}

#[test]
fn an_unbound_service_adds_no_address_and_unbinding_removes_the_owned_one() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1]));
    let mut unbound = desired_service(svc(1), "wlc", &[(dest(1), 1)], 0);
    unbound.bind_address = false;
    let report = f.full(&desired([unbound]));
    assert!(report.applied.is_empty(), "the service itself is unchanged: {:?}", report.applied);
    assert_eq!(report.addresses.removed, vec![ip(1)]);
    assert!(f.kernel.snapshot().services.contains_key(&svc(1)));
    assert!(f.addresses.addrs().is_empty());
}

#[test]
fn a_refused_address_is_reported_with_its_object_and_the_service_still_programmed() {
    let mut f = fixture(Table::default());
    f.addresses.refuse.lock().unwrap().insert(ip(1));
    let report = f.full(&web(&[1]));
    assert!(!report.is_success());
    let [failure] = report.addresses.failures.as_slice() else { panic!("{:?}", report.addresses) };
    assert_eq!((failure.addr, failure.adding), (ip(1), true));
    assert_eq!(failure.services, vec![svc(1)]);
    assert_eq!(failure.error.metric_label(), "address_refused");
    assert!(f.kernel.snapshot().services.contains_key(&svc(1)));
    assert!(f.saved().vips.addrs.is_empty(), "a refused address is not owned");
    f.addresses.refuse.lock().unwrap().clear();
    assert_eq!(f.full(&web(&[1])).addresses.added, vec![ip(1)], "the next pass adds it");
}

#[test]
fn an_owned_vip_someone_removed_is_added_again() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1]));
    f.addresses.listing.lock().unwrap().clear();
    assert_eq!(f.full(&web(&[1])).addresses.added, vec![ip(1)]);
    assert_eq!(f.saved().vips.addrs, addrs(&[1]));
}

#[test]
fn an_owned_vip_turned_into_another_prefix_is_left_alone_and_forgotten() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1]));
    f.addresses.listing.lock().unwrap().insert(ip(1), 24);
    let report = f.full(&DesiredTable::default());
    assert!(report.addresses.removed.is_empty());
    assert_eq!(f.addresses.listing.lock().unwrap().get(&ip(1)), Some(&24));
    assert!(f.saved().vips.addrs.is_empty());
}

#[test]
fn a_restart_removes_the_vip_of_a_service_removed_while_it_was_down() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1, 2]));
    let path = f.dir.path().join("state.json");
    let mut restarted =
        Engine::new(Arc::clone(&f.kernel), path).unwrap().with_addresses(Box::new(Arc::clone(&f.addresses)));
    let report = run(restarted.reconcile_full(&web(&[2]), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.addresses.removed, vec![ip(1)]);
    assert_eq!(f.addresses.addrs(), addrs(&[2]));
}

#[test]
fn a_vip_of_a_foreign_service_is_not_touched_and_plan_shows_the_changes() {
    // A service of another tool on 9 (without our address); ours on 1 planned but not applied.
    let mut f = fixture(live([live_entry(svc(9), "rr", &[(dest(9), 1, 0, 0)])]));
    f.full(&web(&[2]));
    let plan = run(f.engine.plan_only(&web(&[1]), 0, &PassOptions::default())).unwrap();
    let addresses = f.engine.planned_addresses(&web(&[1]), &plan.ops).unwrap();
    assert_eq!(addresses.add, addrs(&[1]));
    assert_eq!(addresses.remove, addrs(&[2]));
    assert_eq!(f.addresses.addrs(), addrs(&[2]), "plan changes nothing");
}

#[test]
fn a_new_interface_name_forgets_the_addresses_added_to_the_old_one() {
    let mut f = fixture(Table::default());
    f.full(&web(&[1]));
    let mut state = f.saved();
    state.vips.interface = Some("lb0".into());
    state.save(&f.dir.path().join("state.json")).unwrap();
    let mut restarted = Engine::new(Arc::clone(&f.kernel), f.dir.path().join("state.json"))
        .unwrap()
        .with_addresses(Box::new(Arc::clone(&f.addresses)));
    let report = run(restarted.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert!(report.addresses.removed.is_empty(), "not ours on this interface");
    assert_eq!(f.addresses.addrs(), addrs(&[1]));
}
