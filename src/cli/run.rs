//! `run`: the long-running standalone mode. Wires the file source (inotify plus a periodic re-scan) to the agent,
//! which reconciles after a quiet period, resyncs periodically to repair drift, follows draining backends, and leaves
//! the table as it is on SIGTERM.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use super::EXIT_OK;
use super::args::RunArgs;
use super::commands::{connector, open_engine, shutdown_signal};
use super::operations::{Operations, observe_pass};
use crate::agent::{Agent, PassRecord};
use crate::ipvs::{IpvsError, NetnsSpec};
use crate::source::{Changed, DesiredState, FileSource};

/// Runs until SIGTERM or SIGINT.
pub async fn run(netns: &NetnsSpec, state: PathBuf, args: &RunArgs) -> Result<i32> {
    let engine = open_engine(netns, state, &args.common.addresses, &args.common.director).await?;
    let desired = DesiredState::new();

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
    .context("starting the file watcher")?;
    watcher
        .watch(&args.manifests, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", args.manifests.display()))?;
    let rescan = Duration::from_secs(args.common.resync_seconds.max(1));
    let source = FileSource::new(vec![args.manifests.clone()]);
    let files = tokio::spawn(follow_files(source, desired.clone(), events, changes, rescan));

    let config = args.common.config();
    let connector = connector(netns);
    let ops = Operations::start(args.common.resync_seconds)?;
    let http = match args.listen {
        Some(listen) => Some(ops.serve(listen).await?),
        None => None,
    };
    let metrics = Arc::clone(&ops.metrics);
    let observer = Box::new(move |record: &PassRecord<'_, IpvsError>| observe_pass(&metrics, record));
    let agent = ops.equip(Agent::new(engine, connector, desired, config, observer));

    let shutdown = shutdown_signal()?;
    info!(manifests = %args.manifests.display(), "running; SIGTERM leaves the IPVS table as it is");
    agent.run(shutdown).await;
    files.abort();
    if let Some(http) = http {
        http.abort();
    }
    drop(watcher);
    Ok(EXIT_OK)
}

/// What the file watcher saw since the last reload.
#[derive(Debug, Default)]
struct Changes {
    /// Paths of the events.
    paths: BTreeSet<PathBuf>,
    /// Something changed that the paths do not tell (an overflow): list everything again.
    everything: bool,
}

/// Feeds the desired state from the manifests: at the start, on every file event (reading only the files the
/// events name, when they are known files), and every `rescan` (listing everything: inotify can overflow and miss
/// events). The state is marked ready after the first good load; a load that fails (unreadable directory) changes
/// nothing, so nothing is deleted because of it.
async fn follow_files(
    mut source: FileSource,
    desired: DesiredState,
    mut events: mpsc::Receiver<()>,
    changes: Arc<Mutex<Changes>>,
    rescan: Duration,
) {
    let mut reported = BTreeSet::new();
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
                report_new_problems(&desired, &mut reported);
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

/// Logs each problem of the sources once, when it appears (not at every reload).
fn report_new_problems(desired: &DesiredState, reported: &mut BTreeSet<String>) {
    let now: BTreeSet<String> = desired.with_index(|index| {
        let errors = index.errors().into_iter().map(|e| e.to_string());
        errors.chain(index.conflicts().into_iter().map(|c| c.to_string())).collect()
    });
    for problem in now.difference(reported) {
        warn!("{problem}");
    }
    *reported = now;
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
}
