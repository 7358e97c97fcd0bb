//! Following manifest files: the file source's counterpart of `source::kubernetes::follow`. Feeds the desired state
//! at the start, on every file event (reading only the files the events name, when they are known files) and every
//! `rescan` (listing everything: inotify can overflow and miss events), marks it ready after the first good load,
//! and logs each problem of the objects once, when it appears.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use thiserror::Error;
use tokio::sync::mpsc;
use tracing::{error, warn};

use super::FileSource;
use crate::source::{Changed, DesiredState, ProblemLog};

/// The file watcher could not be started: nothing would notice a change.
#[derive(Debug, Error)]
pub enum FollowError {
    /// inotify could not be set up (limits reached, no inotify).
    #[error("starting the file watcher: {0}")]
    Start(#[source] notify::Error),
    /// The manifest directory (or file) cannot be watched.
    #[error("watching {}: {source}", path.display())]
    Watch {
        /// What was to be watched.
        path: PathBuf,
        /// Why it cannot be.
        #[source]
        source: notify::Error,
    },
}

/// Starts watching `manifests` and returns the future that feeds `desired` from it until dropped or aborted (it
/// keeps the watcher). Starting is synchronous so that a watcher that cannot start is an error of the command, not
/// a silent loop that never notices a change.
pub fn follow(
    manifests: PathBuf,
    desired: DesiredState,
    rescan: Duration,
) -> Result<impl Future<Output = ()> + Send + 'static, FollowError> {
    let (tx, events) = mpsc::channel::<()>(1);
    let changes: Arc<Mutex<Changes>> = Arc::default();
    let noted = Arc::clone(&changes);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(mut pending) = noted.lock() else { return };
        match res {
            Ok(event) if wakes(&event.kind) => {
                // Overflowed queues and events without paths say "something changed": list everything.
                if event.need_rescan() || event.paths.is_empty() {
                    pending.everything = true;
                }
                pending.paths.extend(event.paths);
            }
            Ok(_) => return,
            Err(_) => pending.everything = true,
        }
        // A full channel already holds a wake-up: coalescing is the point.
        let _ = tx.try_send(());
    })
    .map_err(FollowError::Start)?;
    watcher
        .watch(&manifests, RecursiveMode::Recursive)
        .map_err(|source| FollowError::Watch { path: manifests.clone(), source })?;
    let source = FileSource::new(vec![manifests]);
    Ok(follow_files(watcher, source, desired, events, changes, rescan))
}

/// What the file watcher saw since the last reload.
#[derive(Debug, Default)]
struct Changes {
    /// Paths of the events.
    paths: BTreeSet<PathBuf>,
    /// Something changed that the paths do not tell (an overflow): list everything again.
    everything: bool,
}

/// The loop of [`follow`]. A load that fails (unreadable directory) changes nothing, so nothing is deleted because
/// of it, and the next round lists everything again.
async fn follow_files(
    _watcher: RecommendedWatcher,
    mut source: FileSource,
    desired: DesiredState,
    mut events: mpsc::Receiver<()>,
    changes: Arc<Mutex<Changes>>,
    rescan: Duration,
) {
    let mut problems = ProblemLog::default();
    let mut everything = true;
    loop {
        let paths = match changes.lock() {
            Ok(mut pending) => {
                everything |= std::mem::take(&mut pending.everything);
                std::mem::take(&mut pending.paths)
            }
            Err(_) => {
                everything = true;
                BTreeSet::new()
            }
        };
        let reload = desired.update(|index| {
            let reload = if everything { source.reload_into(index) } else { source.reload_paths_into(index, &paths) };
            match reload {
                Ok(reload) => (reload.changed.clone(), Ok(reload)),
                Err(e) => (Changed::new(), Err(e)),
            }
        });
        everything = false;
        match reload {
            Ok(reload) => {
                for w in &reload.warnings {
                    warn!("{w}");
                }
                problems.report_new(&desired);
                desired.mark_ready();
            }
            Err(e) => {
                // Try everything again next time: what failed must not be forgotten.
                everything = true;
                error!("cannot read the manifests; nothing is changed until they can be read: {e}");
            }
        }
        tokio::select! {
            event = events.recv() => if event.is_none() { return },
            () = tokio::time::sleep(rescan) => everything = true,
        }
    }
}

/// Whether a file event may mean changed manifests. Reading them (the directory listing, the changed files) raises
/// open/read/close events: waking on those would reload again after every pass, once per quiet period, forever. A
/// close after writing still counts (some writers are seen only by it).
fn wakes(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{CreateKind, ModifyKind, RemoveKind, RenameMode};

    use super::*;

    #[test]
    fn reading_the_manifests_does_not_wake_the_loop_but_changing_them_does() {
        for own_read in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert!(!wakes(&own_read), "{own_read:?}");
        }
        for change in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            EventKind::Modify(ModifyKind::Any),
            EventKind::Remove(RemoveKind::File),
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            EventKind::Any,
            EventKind::Other,
        ] {
            assert!(wakes(&change), "{change:?}");
        }
    }

    #[tokio::test]
    async fn follow_loads_the_directory_marks_ready_and_sees_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let web = "apiVersion: ipvs.dev/v1alpha1\nkind: VirtualService\nmetadata: {name: web}\n\
                   spec: {address: 192.0.2.1, port: 80, backends: [{address: 10.0.0.1}]}\n";
        std::fs::write(dir.path().join("web.yaml"), web).unwrap();
        let desired = DesiredState::new();
        let mut seen = desired.subscribe();
        let task = tokio::spawn(follow(dir.path().to_owned(), desired.clone(), Duration::from_secs(3600)).unwrap());
        let services = |desired: &DesiredState| desired.with_index(|index| index.table().services.len());
        tokio::time::timeout(Duration::from_secs(10), async {
            while !desired.is_ready() {
                seen.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
        assert_eq!(services(&desired), 1);
        let dns = web.replace("web", "dns").replace("192.0.2.1", "192.0.2.2");
        std::fs::write(dir.path().join("dns.yaml"), dns).unwrap();
        tokio::time::timeout(Duration::from_secs(10), async {
            while services(&desired) < 2 {
                seen.changed().await.unwrap();
            }
        })
        .await
        .unwrap();
        task.abort();
    }

    #[test]
    fn an_unwatchable_path_is_an_error_of_the_command() {
        let missing = PathBuf::from("/nonexistent/ipvs-reconciler-manifests");
        let e = follow(missing, DesiredState::new(), Duration::from_secs(1)).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ipvs-reconciler-manifests"), "{e}");
    }
}
