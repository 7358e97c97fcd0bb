//! The ownership state file under faults, on the host (issue 21): missing, empty, truncated at every byte, corrupt,
//! not a file, unwritable, and a save that fails. What the program does in each case is in docs/testing.md
//! ("Fault injection: netlink and state file"); the full disk and the read-only directory are also run through
//! `apply` in the VM (`tests/kernel/faults.rs`).
//!
//! The rules: a state that cannot be read stops the program with an error naming the file (never "owns nothing");
//! a failed save changes nothing in the kernel, leaves the previous file whole and no temporary beside it, and the
//! next save still holds what the failed one was to add.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use ipvs_reconciler::engine::ownership::{Ownership, StateError};
use ipvs_reconciler::engine::{Engine, EngineError, FakeKernel, PassOptions};
use ipvs_reconciler::model::{DestConfig, DestKey, Destination, ObjectId, Service, ServiceConfig, ServiceKey, Table};
use ipvs_reconciler::table::{DesiredService, DesiredTable};

fn svc(last: u8) -> ServiceKey {
    ServiceKey::tcp(IpAddr::from([192, 0, 2, last]), 80)
}

fn declared(keys: &[u8]) -> DesiredTable {
    let services = keys.iter().map(|&k| {
        let key = svc(k);
        let dest = DestKey::new(IpAddr::from([10, 0, 0, k]), 80);
        let service = DesiredService {
            service: Service::new(key, ServiceConfig::new(key.family(), "rr")),
            dests: [(dest, Destination::new(dest, DestConfig::masquerade(1)))].into(),
            drain_timeout_secs: 0,
            origin: ObjectId::Kubernetes { namespace: "default".into(), name: format!("vs-{k}") },
            health: None,
            bind_address: false,
            withdraw_address_when_down: false,
        };
        (key, Arc::new(service))
    });
    DesiredTable { services: services.collect() }
}

fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

/// A state file owning 192.0.2.1:80 and 192.0.2.2:80, as `save` writes it.
fn saved(path: &Path) -> String {
    let state = Ownership { owned: [svc(1), svc(2)].into(), ..Ownership::default() };
    state.save(path).unwrap();
    fs::read_to_string(path).unwrap()
}

/// Files beside `path` other than it (temporaries a save left).
fn leftovers(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap();
    fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != name)
        .map(|n| n.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_missing_file_is_a_first_run_that_owns_nothing() {
    let dir = tempfile::tempdir().unwrap();
    assert!(Ownership::load(&dir.path().join("state.json")).unwrap().is_empty());
}

#[test]
fn an_empty_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::write(&path, "").unwrap();
    let err = Ownership::load(&path).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with(&format!("state file {} is unreadable", path.display())), "{message}");
    assert!(message.contains("removing forgets which services this program owns"), "{message}");
}

#[test]
fn a_file_cut_at_any_byte_is_refused_never_read_as_owning_less() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let whole = saved(&path);
    for len in 0..whole.len() {
        fs::write(&path, &whole[..len]).unwrap();
        match Ownership::load(&path) {
            Err(StateError::Corrupt { path: named, .. }) => assert_eq!(named, path),
            other => panic!("cut at {len} of {}: {other:?}", whole.len()),
        }
    }
    fs::write(&path, &whole).unwrap();
    assert_eq!(Ownership::load(&path).unwrap().owned, [svc(1), svc(2)].into());
}

#[test]
fn corrupt_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let cases: [&[u8]; 7] = [
        b"{not json",
        b"null",
        b"[]",
        br#"{"version": 1, "owned": "192.0.2.1:80"}"#,
        br#"{"version": 1, "owned": [{"tcp": "nonsense"}]}"#,
        b"{\"version\": 1, \"owned\": []}\0\0\0\0",
        b"\xff\xfe\x00garbage",
    ];
    for bytes in cases {
        fs::write(&path, bytes).unwrap();
        let err = Ownership::load(&path).unwrap_err();
        assert!(
            matches!(&err, StateError::Corrupt { path: p, .. } | StateError::Io { path: p, .. } if *p == path),
            "{:?}: {err:?}",
            String::from_utf8_lossy(bytes)
        );
        assert!(err.to_string().contains(&path.display().to_string()), "{err}");
    }
}

#[test]
fn a_directory_in_place_of_the_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::create_dir(&path).unwrap();
    let err = Ownership::load(&path).unwrap_err();
    assert!(matches!(&err, StateError::Io { path: p, .. } if *p == path), "{err:?}");
}

#[test]
fn an_unreadable_state_stops_the_engine_before_it_reads_the_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    let whole = saved(&path);
    fs::write(&path, &whole[..whole.len() / 2]).unwrap();
    let Err(err) = Engine::new(FakeKernel::default(), path.clone()) else { panic!("a truncated state was accepted") };
    assert!(matches!(err, EngineError::State(StateError::Corrupt { .. })), "{err:?}");
    assert_eq!(fs::read_to_string(&path).unwrap(), whole[..whole.len() / 2], "the file is left for a human");
}

/// A save into a directory that cannot be written (here: its parent is a file, which stops root too) fails naming
/// the state file and leaves no temporary.
#[test]
fn a_save_that_cannot_write_fails_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("not-a-dir"), "").unwrap();
    let path = dir.path().join("not-a-dir/state.json");
    let err = Ownership::default().save(&path).unwrap_err();
    assert!(matches!(&err, StateError::Io { path: p, .. } if *p == path), "{err:?}");
    assert!(err.to_string().starts_with(&format!("state file {}", path.display())), "{err}");
}

/// A save that fails after its temporary was made (here the rename: the target is a non-empty directory) removes
/// the temporary: on a full disk each would otherwise hold space, one per process that tried.
#[test]
fn a_failed_save_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.json");
    fs::create_dir(&path).unwrap();
    fs::write(path.join("keep"), "").unwrap();
    let err = Ownership::default().save(&path).unwrap_err();
    assert!(matches!(&err, StateError::Io { path: p, .. } if *p == path), "{err:?}");
    assert!(leftovers(&path).is_empty(), "{:?}", leftovers(&path));
}

/// A pass whose save fails changes nothing in the kernel and fails naming the file; the previous file is whole;
/// once the file can be written, the next pass remembers and makes what the failed one was to add.
#[test]
fn a_pass_whose_save_fails_changes_nothing_and_the_next_one_remembers() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let path = state_dir.join("state.json");
    let mut foreign = Table::default();
    foreign.insert_service(Service::new(svc(9), ServiceConfig::new(svc(9).family(), "rr")));
    let kernel = Arc::new(FakeKernel::with_table(foreign.clone()));
    let mut engine = Engine::new(Arc::clone(&kernel), path.clone()).unwrap();
    assert!(run(engine.reconcile_full(&declared(&[1]), 0, &PassOptions::default())).unwrap().is_success());
    let before = fs::read_to_string(&path).unwrap();
    let table_before = kernel.snapshot();
    kernel.take_log();

    // The directory becomes unwritable for anyone: a file stands where it was (as a full or read-only disk, the
    // save fails; the VM test runs those for real).
    let moved = dir.path().join("moved");
    fs::rename(&state_dir, &moved).unwrap();
    fs::write(&state_dir, "").unwrap();
    let err = run(engine.reconcile_full(&declared(&[1, 2]), 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(&err, EngineError::State(StateError::Io { path: p, .. }) if *p == path), "{err:?}");
    assert_eq!(err.metric_label(), "state");
    assert!(kernel.take_log().is_empty(), "the kernel was changed without the memory of it");
    assert_eq!(kernel.snapshot(), table_before);
    fs::remove_file(&state_dir).unwrap();
    fs::rename(&moved, &state_dir).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), before, "the previous file is whole");

    // Writable again: the same engine (a `run` retrying) saves first, then adds.
    assert!(run(engine.reconcile_full(&declared(&[1, 2]), 0, &PassOptions::default())).unwrap().is_success());
    assert_eq!(Ownership::load(&path).unwrap().owned, [svc(1), svc(2)].into());
    assert!(kernel.snapshot().services.contains_key(&svc(2)));
    assert_eq!(kernel.snapshot().services.get(&svc(9)), foreign.services.get(&svc(9)), "foreign untouched");
    assert!(leftovers(&path).is_empty(), "{:?}", leftovers(&path));
}

/// A save after deletions that fails leaves the deleted services listed (the safe direction: owned, absent); the
/// next full pass forgets them, so that the key is not claimed for ever.
#[test]
fn a_failed_save_after_deletions_is_healed_by_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let path = state_dir.join("state.json");
    let kernel = Arc::new(FakeKernel::default());
    let mut engine = Engine::new(Arc::clone(&kernel), path.clone()).unwrap();
    assert!(run(engine.reconcile_full(&declared(&[1, 2]), 0, &PassOptions::default())).unwrap().is_success());
    // The save after the deletion fails: the kernel changed, the file still lists 192.0.2.2:80.
    let moved = dir.path().join("moved");
    let failing = {
        let (state_dir, moved) = (state_dir.clone(), moved.clone());
        move |_: &mut Table| {
            fs::rename(&state_dir, &moved).unwrap();
            fs::write(&state_dir, "").unwrap();
        }
    };
    *kernel.before_next_apply.lock().unwrap() = Some(Box::new(failing));
    let err = run(engine.reconcile_full(&declared(&[1]), 0, &PassOptions::default())).unwrap_err();
    assert!(matches!(err, EngineError::State(_)), "{err:?}");
    assert!(!kernel.snapshot().services.contains_key(&svc(2)), "deleted");
    fs::remove_file(&state_dir).unwrap();
    fs::rename(&moved, &state_dir).unwrap();
    assert!(Ownership::load(&path).unwrap().owned.contains(&svc(2)), "still listed: the save failed");

    // A restart from that file: the service is absent and undeclared, so it is forgotten.
    let mut engine = Engine::new(Arc::clone(&kernel), path.clone()).unwrap();
    assert!(run(engine.reconcile_full(&declared(&[1]), 1, &PassOptions::default())).unwrap().is_success());
    assert_eq!(Ownership::load(&path).unwrap().owned, [svc(1)].into());
}
