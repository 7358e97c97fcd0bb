//! Engine decisions against the in-memory kernel: ownership, guards, failed reads, races, incremental passes.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use super::fake::{FakeError, FakeKernel};
use super::kernel::KernelFailure;
use super::ownership::Ownership;
use super::reconcile::{Engine, EngineError, PassOptions};
use crate::model::{DestConfig, Op, ServiceKey, Table};
use crate::table::fixtures::{desired, desired_service, dest, live, live_entry, svc};
use crate::table::{DesiredTable, apply_ops};

fn engine(table: Table, dir: &tempfile::TempDir) -> Engine<FakeKernel> {
    Engine::new(FakeKernel::with_table(table), state_path(dir)).unwrap()
}

fn state_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("state.json")
}

fn web(weight: u32) -> DesiredTable {
    desired([desired_service(svc(1), "wlc", &[(dest(1), weight), (dest(2), 1)], 0)])
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

#[test]
fn apply_then_a_fresh_read_plans_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    let report = run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    assert!(report.is_success());
    assert_eq!(report.applied.len(), 3);
    let again = run(engine.plan_only(&web(1), 0, &PassOptions::default())).unwrap();
    assert!(again.ops.is_empty(), "{:?}", again.ops);
}

#[test]
fn services_made_by_others_are_never_touched() {
    let dir = tempfile::tempdir().unwrap();
    let foreign = live_entry(svc(9), "rr", &[(dest(9), 3, 0, 0)]);
    let mut engine = engine(live([foreign.clone()]), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    run(engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    let table = engine.kernel().snapshot();
    assert_eq!(table.services.keys().collect::<Vec<_>>(), vec![&svc(9)]);
    assert_eq!(table.services[&svc(9)], foreign);
}

#[test]
fn a_failed_read_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    engine.kernel().take_log();
    engine.kernel().fail_reads.store(true, Ordering::SeqCst);
    let err = run(engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::Read(_)), "{err}");
    assert_eq!(err.metric_label(), "read");
    let touched: BTreeSet<ServiceKey> = [svc(1)].into();
    let err =
        run(engine.reconcile_touched(&DesiredTable::default(), &touched, 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::Read(_)), "{err}");
    assert!(engine.kernel().take_log().is_empty());
    assert_eq!(engine.kernel().snapshot().len(), 1);
}

#[test]
fn services_the_dump_skips_are_still_seen_when_owned_or_desired() {
    // The kernel's service dump steps over services while another namespace deletes some; the engine must still
    // see the services it decides about, or `plan` wants to add a service that is there and a removed one stays.
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    let two = desired([
        desired_service(svc(1), "wlc", &[(dest(1), 1)], 0),
        desired_service(svc(2), "wlc", &[(dest(2), 1)], 0),
    ]);
    run(engine.reconcile_full(&two, 0, &PassOptions::default())).unwrap();
    let foreign = live_entry(svc(9), "rr", &[(dest(9), 3, 0, 0)]);
    engine.kernel().table.lock().unwrap().services.insert(svc(9), foreign.clone());
    *engine.kernel().dump_skips.lock().unwrap() = [svc(1), svc(2), svc(9)].into();
    engine.kernel().take_log();

    let plan = run(engine.plan_only(&two, 0, &PassOptions::default())).unwrap();
    assert!(plan.ops.is_empty(), "a skipped desired service was planned again: {:?}", plan.ops);
    assert!(plan.adopted.is_empty(), "{:?}", plan.adopted);
    // svc(2) leaves the sources: still owned, skipped by the dump, and deleted all the same.
    let one = desired([desired_service(svc(1), "wlc", &[(dest(1), 1)], 0)]);
    let report = run(engine.reconcile_full(&one, 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied, [Op::DeleteService(svc(2))]);
    assert_eq!(engine.ownership().owned, [svc(1)].into());
    assert_eq!(engine.kernel().snapshot().services.get(&svc(9)), Some(&foreign), "a foreign service was touched");
}

#[test]
fn a_service_removed_while_down_is_removed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = engine(Table::default(), &dir);
    run(first.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    let table = first.kernel().snapshot();
    drop(first);

    let mut second = engine(table, &dir);
    assert!(second.ownership().owned.contains(&svc(1)));
    let report = run(second.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied, vec![Op::DeleteService(svc(1))]);
    assert!(second.kernel().snapshot().is_empty());
    assert!(second.ownership().owned.is_empty());
}

#[test]
fn ownership_is_saved_before_the_kernel_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    // What a kill -9 between the kernel's change and the end of the pass would leave on disk: the state file as it
    // is when the first operation reaches the kernel.
    let seen: Arc<Mutex<Option<Ownership>>> = Arc::default();
    let (path, slot) = (state_path(&dir), Arc::clone(&seen));
    *engine.kernel().before_next_apply.lock().unwrap() = Some(Box::new(move |_: &mut Table| {
        *slot.lock().unwrap() = Some(Ownership::load(&path).unwrap());
    }));
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    let at_apply = seen.lock().unwrap().take().expect("the pass applied something");
    assert_eq!(at_apply.owned, [svc(1)].into());
    assert_eq!(Ownership::load(&state_path(&dir)).unwrap().owned, [svc(1)].into());
}

#[test]
fn a_failed_partial_read_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    assert!(engine.observed().is_some(), "a successful full pass leaves an observed table");
    engine.kernel().take_log();
    // The service's re-read fails: planning against the stale observed table would delete svc(1).
    engine.kernel().fail_reads.store(true, Ordering::SeqCst);
    let touched: BTreeSet<ServiceKey> = [svc(1)].into();
    let err =
        run(engine.reconcile_touched(&DesiredTable::default(), &touched, 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::Read(_)), "{err}");
    assert_eq!(engine.kernel().take_log(), Vec::<Op>::new());
    assert_eq!(engine.kernel().snapshot().len(), 1);
    assert!(engine.observed().is_none(), "a failed re-read drops the stale table, so the next pass reads it all");
}

fn many(n: u8) -> DesiredTable {
    desired((1..=n).map(|i| desired_service(svc(i), "rr", &[(dest(1), 1)], 0)))
}

#[test]
fn deleting_most_of_what_it_owns_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&many(20), 0, &PassOptions::default())).unwrap();
    engine.kernel().take_log();

    let err = run(engine.reconcile_full(&many(5), 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::MassDelete { deletes: 15, owned: 20 }), "{err}");
    assert!(err.to_string().contains("--allow-mass-delete"));
    assert!(engine.kernel().take_log().is_empty());

    // Up to half is a normal change.
    run(engine.reconcile_full(&many(10), 0, &PassOptions::default())).unwrap();
    assert_eq!(engine.kernel().snapshot().len(), 10);

    let allow = PassOptions { allow_mass_delete: true, ..Default::default() };
    run(engine.reconcile_full(&DesiredTable::default(), 0, &allow)).unwrap();
    assert!(engine.kernel().snapshot().is_empty());
}

#[test]
fn small_tables_may_be_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&many(10), 0, &PassOptions::default())).unwrap();
    run(engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert!(engine.kernel().snapshot().is_empty());
}

#[test]
fn held_deletes_keep_the_service_and_its_ownership() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    let hold = PassOptions { hold_service_deletes: true, ..Default::default() };
    let report = run(engine.reconcile_full(&DesiredTable::default(), 0, &hold)).unwrap();
    assert_eq!(report.held, vec![svc(1)]);
    assert!(report.applied.is_empty());
    assert_eq!(engine.kernel().snapshot().len(), 1);
    assert!(engine.ownership().owned.contains(&svc(1)));
}

#[test]
fn races_with_other_writers_are_replanned_from_a_fresh_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    // Another writer removes a backend between our read and our write.
    *engine.kernel().before_next_apply.lock().unwrap() = Some(Box::new(|table: &mut Table| {
        apply_ops(table, &[Op::DeleteDest(svc(1), dest(1))]).unwrap();
    }));
    engine.kernel().take_log();

    let report = run(engine.reconcile_full(&web(5), 0, &PassOptions::default())).unwrap();
    assert!(report.is_success(), "{:?}", report.failures);
    assert_eq!(report.race_rounds, 1);
    let dest1 = &engine.kernel().snapshot().services[&svc(1)].dests[&dest(1)];
    assert_eq!(dest1.config, DestConfig::masquerade(5));
    // The refused edit, then the add planned from the fresh read.
    let log = engine.kernel().take_log();
    assert!(matches!(log.as_slice(), [Op::UpdateDest(..), Op::AddDest(..)]), "{log:?}");
}

#[test]
fn incremental_passes_plan_only_the_touched_services() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&many(3), 0, &PassOptions::default())).unwrap();
    // Drift on svc(1) is not looked at by a pass about svc(2); the next full pass repairs it.
    *engine.kernel().table.lock().unwrap().services.get_mut(&svc(1)).unwrap().dests.get_mut(&dest(1)).unwrap() =
        crate::model::Destination::new(dest(1), DestConfig::masquerade(9));
    let mut next = many(3);
    if let Some(s) = next.services.get_mut(&svc(2)).map(std::sync::Arc::make_mut) {
        s.service.config.scheduler = "sh".into();
    }
    let touched: BTreeSet<ServiceKey> = [svc(2)].into();
    let report = run(engine.reconcile_touched(&next, &touched, 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied.len(), 1);
    let report = run(engine.reconcile_full(&next, 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied.len(), 1, "{:?}", report.applied);
}

#[test]
fn incremental_passes_do_not_read_the_whole_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&many(20), 0, &PassOptions::default())).unwrap();
    let reads = engine.kernel().full_reads.load(Ordering::SeqCst);
    let mut changed = many(20);
    if let Some(s) = changed.services.get_mut(&svc(3)).map(std::sync::Arc::make_mut) {
        s.service.config.scheduler = "sh".into();
    }
    let touched: BTreeSet<ServiceKey> = [svc(3)].into();
    let report = run(engine.reconcile_touched(&changed, &touched, 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(engine.kernel().full_reads.load(Ordering::SeqCst), reads);
    assert_eq!(engine.kernel().snapshot().services[&svc(3)].service.config.scheduler, "sh");
}

#[test]
fn frozen_services_are_left_exactly_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&many(3), 0, &PassOptions::default())).unwrap();
    // svc(2)'s object turned invalid: it is missing from desired, and another service changes.
    let mut next = many(3);
    next.services.remove(&svc(2));
    if let Some(s) = next.services.get_mut(&svc(3)).map(std::sync::Arc::make_mut) {
        s.service.config.scheduler = "wrr".into();
    }
    let frozen = PassOptions { frozen: [svc(2)].into(), ..Default::default() };
    let report = run(engine.reconcile_full(&next, 0, &frozen)).unwrap();
    assert_eq!(report.held, vec![svc(2)], "{report:?}");
    assert_eq!(report.applied.len(), 1);
    assert_eq!(engine.kernel().snapshot().len(), 3);
    assert!(engine.ownership().owned.contains(&svc(2)));
}

#[test]
fn a_refused_operation_names_its_object_and_keeps_the_kernel_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    engine.kernel().refuse_services.lock().unwrap().insert(svc(2));
    let report = run(engine.reconcile_full(&many(3), 0, &PassOptions::default())).unwrap();
    assert!(!report.is_success());
    // Both operations of svc(2) were refused, the other services were made.
    assert_eq!(report.failures.len(), 2, "{:?}", report.failures);
    for failure in &report.failures {
        assert_eq!(failure.op.service_key(), &svc(2));
        assert_eq!(failure.object, Some(crate::model::ObjectId::kubernetes("test", svc(2).to_string())));
        assert_eq!(failure.error.errno(), Some(libc::EINVAL));
        assert_eq!(failure.error.metric_label(), "invalid_argument");
    }
    assert_eq!(engine.kernel().snapshot().len(), 2);
    assert!(!report.outcome_unknown());
}

#[test]
fn a_connection_lost_during_a_write_makes_the_next_pass_read_everything_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    let touched: BTreeSet<ServiceKey> = [svc(1)].into();

    // The kernel carries out the edit, but the connection closes before its answer comes.
    engine.kernel().close_on_next_apply.store(true, Ordering::SeqCst);
    let report = run(engine.reconcile_touched(&web(7), &touched, 0, &PassOptions::default())).unwrap();
    assert!(report.outcome_unknown() && report.connection_lost(), "{report:?}");
    assert!(matches!(report.failures.as_slice(), [f] if f.error.metric_label() == "connection_closed"));
    assert!(engine.observed().is_none(), "the observed table cannot be trusted after an unanswered write");

    // While the connection is down every pass fails before planning.
    let err = run(engine.reconcile_touched(&web(7), &touched, 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::Read(FakeError::ConnectionClosed)), "{err}");

    // Back up, the next pass (even an incremental one) reads everything and finds the edit already made.
    engine.kernel().closed.store(false, Ordering::SeqCst);
    let reads = engine.kernel().full_reads.load(Ordering::SeqCst);
    engine.kernel().take_log();
    let report = run(engine.reconcile_touched(&web(7), &touched, 0, &PassOptions::default())).unwrap();
    assert_eq!(engine.kernel().full_reads.load(Ordering::SeqCst), reads + 1);
    assert_eq!(report.applied, Vec::<Op>::new());
    assert_eq!(engine.kernel().take_log(), Vec::<Op>::new());
}

#[test]
fn operations_left_unanswered_are_reported_and_the_table_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    engine.kernel().answer_at_most.lock().unwrap().replace(1);
    let report = run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(report.unanswered.len(), 2);
    assert!(report.outcome_unknown() && !report.is_success());
    assert!(engine.observed().is_none());
}

#[test]
fn a_report_holds_the_touched_services_as_they_were_before() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&many(3), 0, &PassOptions::default())).unwrap();
    let mut next = many(3);
    if let Some(s) = next.services.get_mut(&svc(2)).map(std::sync::Arc::make_mut) {
        s.service.config.scheduler = "sh".into();
    }
    let report = run(engine.reconcile_full(&next, 0, &PassOptions::default())).unwrap();
    assert_eq!(report.before.services.keys().collect::<Vec<_>>(), vec![&svc(2)]);
    assert_eq!(report.before.services[&svc(2)].service.config.scheduler, "rr");
}

#[test]
fn plan_only_shows_the_operations_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    let plan = run(engine.plan_only(&web(1), 0, &PassOptions::default())).unwrap();
    assert_eq!(plan.ops.len(), 3, "{:?}", plan.ops);
    assert!(matches!(plan.ops[0], Op::AddService(_)));
    assert!(engine.kernel().take_log().is_empty());
    assert!(engine.kernel().snapshot().is_empty());
    assert!(!state_path(&dir).exists(), "planning remembers nothing");
}

#[test]
fn the_mass_delete_guard_starts_just_above_its_limits() {
    // Refused only with more than MASS_DELETE_MIN (10) deletions AND more than half of what is owned.
    let pass = |owned: u8, kept: u8| {
        let dir = tempfile::tempdir().unwrap();
        let mut e = engine(Table::default(), &dir);
        run(e.reconcile_full(&many(owned), 0, &PassOptions::default())).unwrap();
        run(e.reconcile_full(&many(kept), 0, &PassOptions::default())).map(|_| e.kernel().snapshot().len())
    };
    // 10 of 15: more than half, but not more than 10.
    assert_eq!(pass(15, 5).unwrap(), 5);
    // 11 of 22: more than 10, but exactly half.
    assert_eq!(pass(22, 11).unwrap(), 11);
    // 11 of 21: both.
    let err = pass(21, 10).unwrap_err();
    assert!(matches!(err, EngineError::MassDelete { deletes: 11, owned: 21 }), "{err}");
    assert_eq!(err.metric_label(), "mass_delete");
}

#[test]
fn a_report_carries_its_plan() {
    let dir = tempfile::tempdir().unwrap();
    let existing = live([live_entry(svc(1), "wlc", &[(dest(1), 1, 0, 0), (dest(2), 1, 0, 0)])]);
    let mut engine = engine(existing, &dir);
    let report = run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.plan.adopted, vec![svc(1)], "the CLI prints adoptions from the report's plan");
    assert!(report.applied.is_empty());
}

#[test]
fn deleting_what_another_writer_deleted_first_is_done_without_a_race_round() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    *engine.kernel().before_next_apply.lock().unwrap() = Some(Box::new(|table: &mut Table| {
        apply_ops(table, &[Op::DeleteService(svc(1))]).unwrap();
    }));
    let report = run(engine.reconcile_full(&DesiredTable::default(), 0, &PassOptions::default())).unwrap();
    assert!(report.is_success());
    assert_eq!(report.race_rounds, 0);
    assert!(!engine.ownership().owned.contains(&svc(1)), "gone, so no longer ours");
}

#[test]
fn a_writer_that_keeps_winning_is_given_up_on_after_the_race_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    engine.kernel().race_services.lock().unwrap().insert(svc(1));
    let report = run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.race_rounds, super::reconcile::RACE_ROUNDS);
    assert!(!report.is_success());
    // Each round re-plans the whole service (3 ops); the last round's refusals are reported.
    assert_eq!(report.failures.len(), 3, "{:?}", report.failures);
    assert_eq!(engine.kernel().take_log().len(), 3 * (super::reconcile::RACE_ROUNDS + 1));
}

#[test]
fn an_unreadable_state_file_stops_the_engine_instead_of_forgetting_ownership() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: reading fails with something other than "not found".
    std::fs::create_dir(state_path(&dir)).unwrap();
    let err = Engine::new(FakeKernel::default(), state_path(&dir)).err().expect("refused");
    assert!(matches!(err, EngineError::State(_)), "{err}");
    assert_eq!(err.metric_label(), "state");
}

#[test]
fn the_state_file_is_written_only_when_what_it_remembers_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = engine(Table::default(), &dir);
    run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    let written = || std::fs::metadata(state_path(&dir)).unwrap().modified().unwrap();
    let first = written();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // An edit of an owned service: nothing new to remember.
    let report = run(engine.reconcile_full(&web(4), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.applied.len(), 1);
    assert_eq!(written(), first, "the state file was rewritten for an edit");
    // A new service is remembered before it is created (see ownership_is_saved_before_the_kernel_changes).
    let mut more = web(4);
    more.services.extend(many(3).services.into_iter().filter(|(k, _)| *k != svc(1)));
    run(engine.reconcile_full(&more, 0, &PassOptions::default())).unwrap();
    assert_ne!(written(), first);
    assert_eq!(Ownership::load(&state_path(&dir)).unwrap().owned.len(), 3);
}

#[test]
fn a_declared_service_found_already_there_is_owned_even_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    let existing = live([live_entry(svc(1), "wlc", &[(dest(1), 1, 0, 0), (dest(2), 1, 0, 0)])]);
    let mut engine = engine(existing, &dir);
    let report = run(engine.reconcile_full(&web(1), 0, &PassOptions::default())).unwrap();
    assert_eq!(report.plan.adopted, vec![svc(1)]);
    assert!(report.applied.is_empty());
    assert_eq!(Ownership::load(&state_path(&dir)).unwrap().owned, [svc(1)].into(), "adopted once, remembered");
    let again = run(engine.plan_only(&web(1), 0, &PassOptions::default())).unwrap();
    assert!(again.adopted.is_empty(), "not adopted twice");
}

#[test]
fn deleting_a_service_drops_its_drains_only() {
    let dir = tempfile::tempdir().unwrap();
    // Two services, each with a connected backend that is being removed: both drain.
    let busy = live([
        live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0), (dest(2), 1, 4, 0)]),
        live_entry(svc(2), "rr", &[(dest(1), 1, 0, 0), (dest(2), 1, 4, 0)]),
    ]);
    let mut engine = engine(busy, &dir);
    let both = desired([
        desired_service(svc(1), "rr", &[(dest(1), 1)], 600),
        desired_service(svc(2), "rr", &[(dest(1), 1)], 600),
    ]);
    run(engine.reconcile_full(&both, 0, &PassOptions::default())).unwrap();
    assert_eq!(engine.ownership().drains.len(), 2);
    // svc(1) goes: its drain goes with it, svc(2)'s stays.
    let one = desired([desired_service(svc(2), "rr", &[(dest(1), 1)], 600)]);
    run(engine.reconcile_full(&one, 1, &PassOptions::default())).unwrap();
    let left: Vec<_> = engine.ownership().drains.keys().copied().collect();
    assert_eq!(left, vec![(svc(2), dest(2))]);
}
