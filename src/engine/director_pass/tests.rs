//! The director part of a full pass against in-memory settings: configured values set once, contradictions
//! reported, sync daemons started, restarted and stopped only when ours, and a failed read stopping nothing.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::director::{DirectorConfig, Sysctl};
use crate::engine::fake::{FakeDirector, FakeKernel};
use crate::engine::ownership::Ownership;
use crate::engine::reconcile::{Engine, PassOptions};
use crate::model::{DaemonState, SyncDaemon, Table, Timeouts};
use crate::table::DesiredTable;
use crate::table::fixtures::{desired, desired_service, dest, svc};

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

fn engine(dir: &tempfile::TempDir, director: &Arc<FakeDirector>, config: &str) -> Engine<FakeKernel> {
    let config = DirectorConfig::parse(config, "test").unwrap();
    Engine::new(FakeKernel::with_table(Table::default()), dir.path().join("state.json"))
        .unwrap()
        .with_director(Box::new(Arc::clone(director)), config)
}

fn nat() -> DesiredTable {
    desired([desired_service(svc(1), "rr", &[(dest(1), 1)], 300)])
}

fn daemon(state: DaemonState, interface: &str) -> SyncDaemon {
    SyncDaemon { state, interface: interface.into(), sync_id: 7, max_len: None, group: None, port: None, ttl: None }
}

#[test]
fn configured_settings_are_set_once_and_contradictions_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let director = Arc::new(FakeDirector::default());
    let mut engine = engine(&dir, &director, "timeouts: {tcp: 600}\nsysctls: {expire_nodest_conn: 1}\n");
    let report = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(report.is_success(), "{report:?}");
    assert_eq!(
        director.take_log(),
        vec!["set-timeouts 600 0 0".to_owned(), "sysctl net.ipv4.vs.expire_nodest_conn=1".to_owned()]
    );
    assert_eq!(
        report.director.changes,
        vec!["timeouts tcp 900 tcpfin 120 udp 300 -> 600 120 300", "net.ipv4.vs.expire_nodest_conn 0 -> 1"]
    );
    assert_eq!(*director.timeouts.lock().unwrap(), Timeouts { tcp: 600, tcp_fin: 120, udp: 300 });
    // ip_forward is not configured and is 0 while a NAT service is declared: reported, not changed.
    let found: Vec<Sysctl> = report.director.contradictions.iter().map(|c| c.sysctl).collect();
    assert_eq!(found, vec![Sysctl::IpForward]);
    assert_eq!(director.sysctls.lock().unwrap()[&Sysctl::IpForward], 0);

    let again = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(director.take_log().is_empty(), "a second pass changes nothing");
    assert!(again.director.changes.is_empty());
    assert_eq!(again.director.contradictions.len(), 1, "still reported while it lasts");
}

#[test]
fn daemons_start_restart_on_change_and_stop_only_when_ours() {
    let dir = tempfile::tempdir().unwrap();
    let director = Arc::new(FakeDirector::default());
    let master = "syncDaemons: [{state: Master, interface: eth1, syncId: 7}]\n";
    let mut first = engine(&dir, &director, master);
    let report = run(first.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.director.changes, vec!["started sync daemon Master on eth1 id 7"]);
    assert_eq!(
        Ownership::load(&dir.path().join("state.json")).unwrap().daemons,
        vec![daemon(DaemonState::Master, "eth1")]
    );
    run(first.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert_eq!(
        director.take_log(),
        vec!["start Master eth1"],
        "the running one, with its defaults, satisfies the config"
    );

    // A restart with another interface: stop, then start.
    let mut moved = engine(&dir, &director, "syncDaemons: [{state: Master, interface: eth2, syncId: 7}]\n");
    run(moved.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert_eq!(director.take_log(), vec!["stop Master", "start Master eth2"]);

    // Someone else's backup, unlike the configured one: reported, never stopped, also once no longer configured.
    director.daemons.lock().unwrap().push(daemon(DaemonState::Backup, "eth9"));
    let both =
        "syncDaemons: [{state: Master, interface: eth2, syncId: 7}, {state: Backup, interface: eth1, syncId: 7}]\n";
    let mut with_backup = engine(&dir, &director, both);
    let report = run(with_backup.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.director.foreign_daemons, vec![daemon(DaemonState::Backup, "eth9")]);
    assert!(director.take_log().is_empty());

    let mut none = engine(&dir, &director, "");
    run(none.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert_eq!(director.take_log(), vec!["stop Master"], "ours stops; theirs stays");
    assert_eq!(director.daemons.lock().unwrap().clone(), vec![daemon(DaemonState::Backup, "eth9")]);
    assert!(Ownership::load(&dir.path().join("state.json")).unwrap().daemons.is_empty());
}

#[test]
fn a_failed_daemon_read_stops_nothing_and_the_services_are_still_programmed() {
    let dir = tempfile::tempdir().unwrap();
    let director = Arc::new(FakeDirector::default());
    let mut engine = engine(&dir, &director, "syncDaemons: [{state: Master, interface: eth1, syncId: 7}]\n");
    run(engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    director.take_log();
    director.fail_daemon_reads.store(true, Ordering::SeqCst);
    let mut unconfigured = {
        let config = DirectorConfig::default();
        Engine::new(FakeKernel::with_table(Table::default()), dir.path().join("state.json"))
            .unwrap()
            .with_director(Box::new(Arc::clone(&director)), config)
    };
    drop(engine);
    let report = run(unconfigured.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(!report.is_success());
    assert_eq!(report.director.failures.len(), 1, "{:?}", report.director.failures);
    assert!(director.take_log().is_empty(), "nothing stopped on a failed read");
    assert!(unconfigured.kernel().snapshot().services.contains_key(&svc(1)), "the IPVS part went on");
}

fn link(name: &str, ipv4: &[(&str, u8)]) -> crate::netif::NodeLink {
    let ipv4 = ipv4.iter().map(|(a, p)| (a.parse().unwrap(), *p)).collect();
    crate::netif::NodeLink { name: name.into(), up: true, kind: Some("dummy".into()), ipv4, arp_ignore: None }
}

#[test]
fn kube_proxy_in_ipvs_mode_is_told_by_its_interface() {
    let dir = tempfile::tempdir().unwrap();
    let director = Arc::new(FakeDirector::default());
    let mut engine = engine(&dir, &director, "{}");
    let report = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.director.kube_proxy_ipvs, Some(false));
    director.links.lock().unwrap().push(link("kube-ipvs0", &[("10.96.0.1", 32)]));
    let report = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.director.kube_proxy_ipvs, Some(true));
    assert!(report.is_success(), "a finding, not a failure: {report:?}");
}

#[test]
fn a_vip_answered_on_a_connected_subnet_is_a_contradiction_of_arp_ignore() {
    use crate::engine::fake::FakeAddresses;
    let dir = tempfile::tempdir().unwrap();
    let director = Arc::new(FakeDirector::default());
    director.sysctls.lock().unwrap().insert(Sysctl::IpForward, 1);
    // The node's LAN is 192.0.2.0/24; the service's VIP 192.0.2.1 is on ipvs0.
    director.links.lock().unwrap().extend([link("eth0", &[("192.0.2.200", 24)]), link("ipvs0", &[("192.0.2.1", 32)])]);
    let mut bound = engine(&dir, &director, "{}").with_addresses(Box::new(Arc::new(FakeAddresses::default())));
    let report = run(bound.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    let found: Vec<(Sysctl, Vec<crate::model::ServiceKey>)> =
        report.director.contradictions.iter().map(|c| (c.sysctl, c.services.clone())).collect();
    assert_eq!(found, vec![(Sysctl::ArpIgnore, vec![svc(1)])]);

    director.sysctls.lock().unwrap().insert(Sysctl::ArpIgnore, 1);
    let report = run(bound.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(report.director.contradictions.is_empty(), "{:?}", report.director.contradictions);

    // `--no-bind-addresses`: the VIPs are someone else's to bind and announce; nothing to judge here.
    director.sysctls.lock().unwrap().insert(Sysctl::ArpIgnore, 0);
    let other = tempfile::tempdir().unwrap();
    let mut unbound = engine(&other, &director, "{}");
    let report = run(unbound.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(report.director.contradictions.is_empty(), "{:?}", report.director.contradictions);
}

#[test]
fn an_owned_service_removed_by_another_program_is_reported_once_and_added_back() {
    let dir = tempfile::tempdir().unwrap();
    let director = Arc::new(FakeDirector::default());
    let kernel = Arc::new(FakeKernel::with_table(Table::default()));
    let mut engine = Engine::new(Arc::clone(&kernel), dir.path().join("state.json"))
        .unwrap()
        .with_director(Box::new(Arc::clone(&director)), DirectorConfig::default());
    let first = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(first.vanished.is_empty(), "nothing was in the kernel before");
    assert!(kernel.snapshot().services.contains_key(&svc(1)));

    // kube-proxy's sync: every IPVS service it did not create is deleted.
    kernel.table.lock().unwrap().services.clear();
    let second = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert_eq!(second.vanished, vec![svc(1)]);
    assert!(kernel.snapshot().services.contains_key(&svc(1)), "added back");

    let third = run(engine.reconcile_full(&nat(), 0, &PassOptions::default())).unwrap();
    assert!(third.vanished.is_empty());
    // A service no longer declared that disappears is no news: it was to be deleted anyway.
    kernel.table.lock().unwrap().services.clear();
    let fourth = run(engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert!(fourth.vanished.is_empty());
}
