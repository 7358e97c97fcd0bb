//! `run`: the long-running standalone mode. Watches a manifest directory, reconciles after a quiet period, resyncs
//! periodically to repair drift, follows draining backends, and leaves the table as it is on SIGTERM.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::{error, info, warn};

use super::EXIT_OK;
use super::args::RunArgs;
use super::commands::{connect, now, pass_options, print_report};
use crate::api::DesiredOutcome;
use crate::engine::{Engine, Kernel, KernelFailure, PassReport};
use crate::ipvs::NetnsSpec;
use crate::model::ServiceKey;
use crate::source::FileSource;
use crate::table::DesiredTable;

/// How often draining backends are looked at again (their connection counts decide when they go).
const DRAIN_POLL: Duration = Duration::from_secs(5);

/// A burst of file events never delays a pass by more than this many quiet periods.
const MAX_DELAY_FACTOR: u32 = 10;

/// Runs until SIGTERM or SIGINT.
pub async fn run(netns: &NetnsSpec, state: PathBuf, args: &RunArgs) -> Result<i32> {
    let ipvs = connect(netns).await?;
    let mut engine = Engine::new(ipvs, state)?;

    let mut source = FileSource::new(vec![args.manifests.clone()]);
    let (tx, mut events) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok_and(|event| wakes(&event.kind)) {
            // A full channel already holds a wake-up: coalescing is the point.
            let _ = tx.try_send(());
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&args.manifests, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", args.manifests.display()))?;

    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let quiet = Duration::from_millis(args.quiet_ms);
    let resync = Duration::from_secs(args.resync_seconds.max(1));

    let mut last: Option<DesiredOutcome> = None;
    let mut pending: Option<(Instant, Instant)> = None; // (fire at, give up waiting for quiet at)
    let mut next_resync = Instant::now(); // the first pass is a full one
    let mut next_drain_check: Option<Instant> = None;
    info!(manifests = %args.manifests.display(), "running; SIGTERM leaves the IPVS table as it is");

    loop {
        let fire = pending.map(|(at, _)| at);
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(()) = events.recv() => {
                let now_i = Instant::now();
                let limit = pending.map(|(_, l)| l).unwrap_or(now_i + quiet * MAX_DELAY_FACTOR);
                pending = Some(((now_i + quiet).min(limit), limit));
            }
            _ = sleep_until(fire.unwrap_or_else(far_future)), if fire.is_some() => {
                pending = None;
                if let Some(outcome) = reload(&mut source) {
                    let touched = touched(last.as_ref().map(|o| &o.table), &outcome);
                    let opts = pass_options(&outcome, args.allow_mass_delete);
                    let result = engine.reconcile_touched(&outcome.table, &touched, now(), &opts).await;
                    finish("change", result, &outcome);
                    next_drain_check = drain_check(&engine);
                    last = Some(outcome);
                }
            }
            _ = sleep_until(next_resync) => {
                next_resync = Instant::now() + resync;
                if let Some(outcome) = reload(&mut source) {
                    let opts = pass_options(&outcome, args.allow_mass_delete);
                    let result = engine.reconcile_full(&outcome.table, now(), &opts).await;
                    finish("resync", result, &outcome);
                    next_drain_check = drain_check(&engine);
                    last = Some(outcome);
                }
            }
            _ = sleep_until(next_drain_check.unwrap_or_else(far_future)), if next_drain_check.is_some() => {
                next_drain_check = None;
                if let Some(outcome) = &last {
                    let draining: BTreeSet<ServiceKey> = engine.state().drains.keys().map(|(s, _)| *s).collect();
                    let opts = pass_options(outcome, args.allow_mass_delete);
                    let result = engine.reconcile_touched(&outcome.table, &draining, now(), &opts).await;
                    finish("drain", result, outcome);
                    next_drain_check = drain_check(&engine);
                }
            }
        }
    }
    info!("stopping; the IPVS table is left as it is");
    Ok(EXIT_OK)
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

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

/// Reads and validates the manifests (only files changed since the last time). On a load failure (unreadable
/// directory), logs and returns `None`: the pass is skipped, never run against "no objects".
fn reload(source: &mut FileSource) -> Option<DesiredOutcome> {
    match source.reload_desired() {
        Ok((outcome, warnings)) => {
            for w in &warnings {
                warn!("{w}");
            }
            for e in &outcome.errors {
                warn!("{e}");
            }
            for c in &outcome.conflicts {
                warn!("{c}");
            }
            Some(outcome)
        }
        Err(e) => {
            error!("cannot read the manifests, skipping this pass (nothing is deleted): {e}");
            None
        }
    }
}

/// Services whose desired entry changed between two outcomes (or whose frozen state did).
fn touched(before: Option<&DesiredTable>, after: &DesiredOutcome) -> BTreeSet<ServiceKey> {
    let empty = DesiredTable::default();
    let before = before.unwrap_or(&empty);
    let mut keys: BTreeSet<ServiceKey> = after.held.keys().copied().collect();
    for (key, want) in &after.table.services {
        if before.services.get(key) != Some(want) {
            keys.insert(*key);
        }
    }
    for key in before.services.keys() {
        if !after.table.services.contains_key(key) {
            keys.insert(*key);
        }
    }
    keys
}

/// When to look at draining backends again (their connection counts decide when they go), if any drain.
fn drain_check<K: Kernel>(engine: &Engine<K>) -> Option<Instant> {
    (!engine.state().drains.is_empty()).then(|| Instant::now() + DRAIN_POLL)
}

/// Logs a pass.
fn finish<K: KernelFailure, E: std::fmt::Display>(
    what: &str,
    result: Result<PassReport<K>, E>,
    outcome: &DesiredOutcome,
) {
    match result {
        Ok(report) => {
            if !report.applied.is_empty() || !report.failures.is_empty() {
                print_report(&report, outcome);
            }
            info!(
                pass = what,
                applied = report.applied.len(),
                failed = report.failures.len(),
                draining = report.plan.draining.len(),
                "reconciled"
            );
        }
        Err(e) => error!(pass = what, "pass failed: {e:#}"),
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
