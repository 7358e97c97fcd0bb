//! `cleanup`: removes what this program made on the node, prints each thing it removes, then forgets it. The
//! decisions are the engine's (`engine::cleanup`); this is the lock, the wiring and the printing.

use anyhow::{Context, Result};

use super::args::CleanupArgs;
use super::commands::state_path;
use super::{EXIT_ERROR, EXIT_OK};
use crate::clock::unix_seconds;
use crate::daemon::connect;
use crate::director::DirectorConfig;
use crate::engine::cleanup::{CleanupReport, InterfaceFate};
use crate::engine::ownership::Ownership;
use crate::engine::state_lock::{LockError, StateLock};
use crate::engine::{Engine, IpvsDirector, NodeVips};
use crate::ipvs::NetnsSpec;
use crate::netif::{VipInterface, host_prefix};

/// Runs `cleanup`; the `Ok` value is the exit code (1 when something could not be removed).
pub async fn cleanup(netns: &NetnsSpec, netns_name: &Option<String>, args: &CleanupArgs) -> Result<i32> {
    let state = state_path(args.state.clone(), netns_name);
    let holder = StateLock::holder(&state);
    if !state.exists() && holder.is_none() {
        // Nothing was ever remembered here (or it was cleaned up): nothing of ours can be on the node. The
        // directory is not made for a lock nobody needs; a lock file left by an earlier run goes.
        println!("nothing to clean up: {} does not exist", state.display());
        if !args.dry_run && StateLock::path_for(&state).exists() {
            let path = StateLock::path_for(&state);
            let lock = StateLock::acquire(&state, "cleanup")?;
            lock.remove().with_context(|| format!("removing the lock file {}", path.display()))?;
        }
        return Ok(EXIT_OK);
    }
    // The lock before the state is read: a `run` or `agent` working on this state would put back what is removed,
    // and save over the state file this command removes.
    let lock = if args.dry_run {
        if let Some(holder) = holder {
            eprintln!(
                "note: state file {} is in use by {holder}: cleanup without --dry-run refuses unless --force",
                state.display()
            );
        }
        None
    } else {
        match StateLock::acquire(&state, "cleanup") {
            Ok(lock) => Some(lock),
            Err(LockError::Busy { holder, .. }) if args.force => {
                eprintln!(
                    "warning: state file {} is in use by {holder}; cleaning up anyway (--force): it puts back, at its \
                     next pass, what its sources still declare",
                    state.display()
                );
                None
            }
            Err(e) => return Err(e.into()),
        }
    };

    // A newer format is refused here, before the kernel is even asked: nothing is deleted from a guess.
    let ownership = Ownership::load(&state)?;
    let report = if ownership.is_empty() {
        if !args.dry_run {
            Ownership::remove(&state)?;
        }
        CleanupReport { dry_run: args.dry_run, state_removed: !args.dry_run, ..Default::default() }
    } else {
        let director = Box::new(IpvsDirector::new(netns.clone()));
        // Nothing configured: the director part only stops the daemons this program started.
        let mut engine =
            Engine::new(connect(netns).await?, state.clone())?.with_director(director, DirectorConfig::default());
        // The interface the addresses were added to, as the state file says (not a flag: it is where they are).
        if let Some(name) = &ownership.vips.interface {
            engine = engine.with_addresses(Box::new(NodeVips::new(VipInterface::open(netns, name).await?)));
        }
        engine.cleanup(args.dry_run, unix_seconds()).await?
    };
    print_report(&report, ownership.vips.interface.as_deref().unwrap_or_default());

    let would = if args.dry_run { "would remove" } else { "removed" };
    if report.is_success() {
        println!("{would} state file {}", state.display());
    } else {
        eprintln!("state file {} kept: it lists what is left; run cleanup again", state.display());
    }
    if let (true, Some(lock)) = (report.state_removed, lock) {
        // The lock file goes with the state, so that an uninstall leaves nothing behind but the directory.
        let path = StateLock::path_for(&state);
        if let Err(e) = lock.remove() {
            eprintln!("warning: lock file {} not removed: {e}", path.display());
        }
    }
    Ok(if report.is_success() { EXIT_OK } else { EXIT_ERROR })
}

/// One line per thing removed (or that would be), then what was left and why, then failures on stderr.
fn print_report(report: &CleanupReport, interface: &str) {
    let (remove, stop) = if report.dry_run { ("would remove", "would stop") } else { ("removed", "stopped") };
    for key in &report.services {
        println!("{remove} service {key}");
    }
    for addr in &report.addresses {
        println!("{remove} address {addr}/{} from {interface}", host_prefix(*addr));
    }
    for daemon in &report.daemons {
        println!("{stop} sync daemon {:?} on {} id {}", daemon.state, daemon.interface, daemon.sync_id);
    }
    match &report.interface {
        InterfaceFate::Untouched => {}
        InterfaceFate::Removed(name) => {
            println!("{remove} interface {name} (made by this program, nothing else on it)")
        }
        InterfaceFate::Kept(name, foreign) => {
            let foreign: Vec<String> = foreign.iter().map(ToString::to_string).collect();
            println!("kept interface {name}: it holds addresses this program did not add ({})", foreign.join(", "));
        }
        InterfaceFate::Replaced(name) => {
            println!("kept interface {name}: not the one this program made (it was deleted and made again since)");
        }
    }
    for key in &report.gone {
        println!("forgot service {key}: no longer in the kernel");
    }
    for daemon in &report.gone_daemons {
        println!("forgot sync daemon {:?}: no longer running as this program started it", daemon.state);
    }
    if !report.foreign_services.is_empty() {
        println!("left alone: {} IPVS service(s) this program did not make", report.foreign_services.len());
    }
    for failure in &report.failures {
        eprintln!("failed: {}: {}", failure.what, failure.error);
    }
}
