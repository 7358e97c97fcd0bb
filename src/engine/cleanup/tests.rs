//! `cleanup` against the in-memory kernel, interface and director: only what the state lists goes (services,
//! addresses, daemons, the interface it made), a dry run changes nothing, a failed read removes nothing, and a
//! failed removal keeps the state for a second run.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{CleanupReport, InterfaceFate};
use crate::director::DirectorConfig;
use crate::engine::fake::{FakeAddresses, FakeDirector, FakeKernel};
use crate::engine::ownership::Ownership;
use crate::engine::reconcile::{Engine, EngineError, PassOptions};
use crate::model::{DaemonState, ServiceKey, SyncDaemon, Table};
use crate::table::fixtures::{desired, desired_service, dest, live_entry, svc};

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn ip(last: u8) -> IpAddr {
    IpAddr::from([192, 0, 2, last])
}

fn link_local() -> IpAddr {
    "fe80::1c2d:3eff:fe4f:5a6b".parse().unwrap()
}

fn daemon(state: DaemonState, id: u32) -> SyncDaemon {
    SyncDaemon { state, interface: "eth1".into(), sync_id: id, max_len: None, group: None, port: None, ttl: None }
}

/// A node as `apply` left it: services 192.0.2.1 and .2 with their VIPs on an `ipvs0` it made, a master sync
/// daemon it started; beside them someone else's service (.9), address on `ipvs0` (.99) and backup daemon.
struct Node {
    kernel: Arc<FakeKernel>,
    addresses: Arc<FakeAddresses>,
    director: Arc<FakeDirector>,
    dir: tempfile::TempDir,
}

impl Node {
    fn applied(foreign_address: bool) -> Node {
        let dir = tempfile::tempdir().unwrap();
        let kernel = Arc::new(FakeKernel::with_table(Table::default()));
        let addresses = Arc::new(FakeAddresses::watching(Arc::clone(&kernel)));
        addresses.absent.store(true, Ordering::SeqCst);
        let director = Arc::new(FakeDirector::default());
        let config =
            DirectorConfig::parse("syncDaemons: [{state: Master, interface: eth1, syncId: 7}]\n", "test").unwrap();
        let node = Node { kernel, addresses, director, dir };
        let mut engine = node.engine().with_director(Box::new(Arc::clone(&node.director)), config);
        let wanted = desired([1, 2].map(|last| desired_service(svc(last), "rr", &[(dest(1), 1)], 0)));
        let report = run(engine.reconcile_full(&wanted, 0, &PassOptions::default())).unwrap();
        assert!(report.is_success(), "{report:?}");
        assert_eq!(node.saved().vips.created, node.addresses.index(), "the pass made ipvs0 and remembered its index");
        assert_eq!(node.addresses.index(), Some(2));

        node.kernel.table.lock().unwrap().services.insert(svc(9), live_entry(svc(9), "wlc", &[(dest(2), 1, 0, 0)]));
        if foreign_address {
            node.addresses.listing.lock().unwrap().insert(ip(99), 32);
        }
        node.addresses.listing.lock().unwrap().insert(link_local(), 64);
        node.director.daemons.lock().unwrap().push(daemon(DaemonState::Backup, 3));
        node.director.take_log();
        node.kernel.take_log();
        node
    }

    fn state(&self) -> std::path::PathBuf {
        self.dir.path().join("state.json")
    }

    fn saved(&self) -> Ownership {
        Ownership::load(&self.state()).unwrap()
    }

    /// An engine over this node's state file and interface, without a director.
    fn engine(&self) -> Engine<Arc<FakeKernel>> {
        Engine::new(Arc::clone(&self.kernel), self.state())
            .unwrap()
            .with_addresses(Box::new(Arc::clone(&self.addresses)))
    }

    /// What `cleanup` opens: the engine with the director and nothing configured.
    fn cleanup(&self, dry_run: bool) -> CleanupReport {
        let mut engine = self.engine().with_director(Box::new(Arc::clone(&self.director)), DirectorConfig::default());
        run(engine.cleanup(dry_run, 0)).unwrap()
    }

    fn picture(&self) -> Picture {
        Picture {
            table: self.kernel.snapshot(),
            listing: self.addresses.listing.lock().unwrap().clone().into_iter().collect(),
            index: self.addresses.index(),
            daemons: self.director.daemons.lock().unwrap().clone(),
            state: std::fs::read_to_string(self.state()).unwrap_or_default(),
        }
    }
}

/// Everything cleanup could change.
#[derive(Debug, PartialEq)]
struct Picture {
    table: Table,
    listing: Vec<(IpAddr, u8)>,
    index: Option<u32>,
    daemons: Vec<SyncDaemon>,
    state: String,
}

#[test]
fn a_dry_run_lists_what_is_ours_and_changes_nothing() {
    let node = Node::applied(true);
    let before = node.picture();
    let report = node.cleanup(true);
    assert!(report.is_success(), "{report:?}");
    assert!(report.dry_run && !report.state_removed);
    assert_eq!(report.services, vec![svc(1), svc(2)]);
    assert_eq!(report.addresses, vec![ip(1), ip(2)]);
    assert_eq!(report.daemons, vec![daemon(DaemonState::Master, 7)]);
    assert_eq!(report.interface, InterfaceFate::Kept("ipvs0".into(), vec![ip(99)]));
    assert_eq!(report.foreign_services, vec![svc(9)]);
    assert_eq!(node.picture(), before, "nothing changed, the state file included");
    assert!(node.kernel.take_log().is_empty());
    assert!(node.director.take_log().is_empty());
}

#[test]
fn only_what_is_ours_goes_and_the_interface_stays_for_a_foreign_address() {
    let node = Node::applied(true);
    let report = node.cleanup(false);
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.services, vec![svc(1), svc(2)]);
    assert_eq!(report.addresses, vec![ip(1), ip(2)]);
    assert_eq!(report.daemons, vec![daemon(DaemonState::Master, 7)]);
    assert_eq!(report.interface, InterfaceFate::Kept("ipvs0".into(), vec![ip(99)]));
    assert_eq!(node.kernel.snapshot().services.keys().copied().collect::<Vec<_>>(), vec![svc(9)]);
    assert_eq!(node.addresses.addrs(), [ip(99), link_local()].into());
    assert_eq!(node.addresses.index(), Some(2), "ipvs0 holds someone else's address: kept");
    assert_eq!(*node.director.daemons.lock().unwrap(), vec![daemon(DaemonState::Backup, 3)]);
    assert!(report.state_removed && !node.state().exists(), "everything it listed is gone: so is the state file");

    // A second cleanup finds nothing of its own.
    let again = node.cleanup(false);
    assert!(again.is_success() && again.services.is_empty() && again.addresses.is_empty() && again.daemons.is_empty());
    assert_eq!(again.interface, InterfaceFate::Untouched);
}

#[test]
fn the_interface_it_made_goes_once_only_the_kernels_link_local_address_is_left() {
    let node = Node::applied(false);
    let dry = node.cleanup(true);
    assert_eq!(dry.interface, InterfaceFate::Removed("ipvs0".into()));
    assert_eq!(node.addresses.index(), Some(2), "a dry run deletes nothing");
    let report = node.cleanup(false);
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.interface, InterfaceFate::Removed("ipvs0".into()));
    assert_eq!(node.addresses.index(), None);
}

#[test]
fn an_interface_it_did_not_make_or_that_was_made_again_by_someone_else_stays() {
    // Found, not made: never remembered as ours.
    let dir = tempfile::tempdir().unwrap();
    let kernel = Arc::new(FakeKernel::with_table(Table::default()));
    let addresses = Arc::new(FakeAddresses::watching(Arc::clone(&kernel)));
    let mut engine = Engine::new(Arc::clone(&kernel), dir.path().join("state.json"))
        .unwrap()
        .with_addresses(Box::new(Arc::clone(&addresses)))
        .with_director(Box::new(Arc::new(FakeDirector::default())), DirectorConfig::default());
    let wanted = desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 0)]);
    run(engine.reconcile_full(&wanted, 0, &PassOptions::default())).unwrap();
    assert_eq!(engine.ownership().vips.created, None);
    let report = run(engine.cleanup(false, 0)).unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.interface, InterfaceFate::Untouched);
    assert_eq!(addresses.index(), Some(1));

    // Made by this program, then deleted and made again by someone else: another interface, theirs.
    let node = Node::applied(false);
    node.addresses.absent.store(true, Ordering::SeqCst);
    node.addresses.made.store(5, Ordering::SeqCst);
    node.addresses.absent.store(false, Ordering::SeqCst);
    let report = node.cleanup(false);
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.interface, InterfaceFate::Replaced("ipvs0".into()));
    assert_eq!(node.addresses.index(), Some(6));
}

#[test]
fn a_failed_read_or_listing_removes_nothing() {
    let node = Node::applied(true);
    let before = node.picture();
    node.kernel.fail_reads.store(true, Ordering::SeqCst);
    let mut engine = node.engine().with_director(Box::new(Arc::clone(&node.director)), DirectorConfig::default());
    assert!(matches!(run(engine.cleanup(false, 0)), Err(EngineError::Read(_))));
    node.kernel.fail_reads.store(false, Ordering::SeqCst);
    node.addresses.fail_list.store(true, Ordering::SeqCst);
    assert!(matches!(run(engine.cleanup(false, 0)), Err(EngineError::Addresses(_))));
    assert_eq!(node.picture(), before);
    assert!(node.director.take_log().is_empty());
}

#[test]
fn a_failed_removal_keeps_the_state_with_what_is_left_for_a_second_run() {
    let node = Node::applied(false);
    node.kernel.refuse_services.lock().unwrap().insert(svc(2));
    let report = node.cleanup(false);
    assert!(!report.is_success());
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].what, format!("remove service {}", svc(2)));
    assert_eq!(report.services, vec![svc(1)]);
    assert_eq!(report.interface, InterfaceFate::Untouched, "its address is still in use");
    assert_eq!(report.daemons, vec![daemon(DaemonState::Master, 7)], "the daemons go regardless");
    let left = node.saved();
    assert_eq!(left.owned, [svc(2)].into());
    assert_eq!(left.vips.addrs, [ip(2)].into());
    assert_eq!(left.vips.created, Some(2));
    assert!(left.daemons.is_empty());

    node.kernel.refuse_services.lock().unwrap().clear();
    let second = node.cleanup(false);
    assert!(second.is_success(), "{second:?}");
    assert_eq!((second.services, second.addresses), (vec![svc(2)], vec![ip(2)]));
    assert_eq!(second.interface, InterfaceFate::Removed("ipvs0".into()));
    assert!(!node.state().exists());
    let _: Vec<ServiceKey> = second.gone;
}

#[test]
fn a_daemon_no_longer_running_as_started_is_forgotten_not_stopped() {
    let node = Node::applied(false);
    // Someone stopped ours and started their own master.
    *node.director.daemons.lock().unwrap() = vec![daemon(DaemonState::Master, 9)];
    let report = node.cleanup(false);
    assert!(report.is_success(), "{report:?}");
    assert!(report.daemons.is_empty());
    assert_eq!(report.gone_daemons, vec![daemon(DaemonState::Master, 7)]);
    assert_eq!(*node.director.daemons.lock().unwrap(), vec![daemon(DaemonState::Master, 9)]);
}
