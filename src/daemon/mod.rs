//! The one layer that wires: a source, the engine and the kernel, the agent loop, the health checks, metrics and
//! status board, the HTTP endpoint and the signals, for the two long-running modes (`run` on files, `agent` on
//! Kubernetes), which differ only in their source and in what they report back. The one-shot commands take the
//! kernel pieces ([`connect`], [`open_engine`]) from here too.
//!
//! ```text
//!   source::file::follow ────────┐                         ┌──► Equipment: checks, metrics, /status, HTTP
//!   source::kubernetes::follow ──┴──► DesiredState ──► Agent loop ──► Engine ──► kernel (IPVS, ipvs0, director)
//!                                                          └──► observer: metrics, printed report, status writer
//! ```
//!
//! `anyhow` is used here and in the CLI only: these are the edges where errors become a line for the operator.

mod api_client;
mod equipment;
mod kernel;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use tokio::sync::watch;
use tracing::info;

pub use equipment::{Equipment, observe_pass};
pub use kernel::{connect, connector, open_engine, shutdown_signal};

use crate::agent::status::{KernelOutcome, KernelOutcomes, Reported, StatusReport, StatusWriter, write_status};
use crate::agent::{Agent, AgentConfig, PassRecord};
use crate::director::DirectorConfig;
use crate::engine::PassReport;
use crate::engine::state_lock::StateLock;
use crate::ipvs::{IpvsError, NetnsSpec};
use crate::source::admission::AdmissionMode;
use crate::source::kubernetes::{self, ApiSignal};
use crate::source::{DesiredState, Snapshot};

/// Prints what a pass did (the CLI's rendering; this layer prints nothing itself).
pub type Printer = fn(&PassReport<IpvsError>, &Snapshot);

/// What both long-running modes need, whatever their source.
pub struct Settings {
    /// The network namespace whose IPVS table is kept.
    pub netns: NetnsSpec,
    /// The ownership memory.
    pub state: PathBuf,
    /// The interface that holds the VIPs; `None`: addresses are not bound.
    pub vip_interface: Option<String>,
    /// Timeouts, sysctls, sync daemons.
    pub director: DirectorConfig,
    /// When passes run.
    pub agent: AgentConfig,
    /// How a pass's changes are shown.
    pub print: Printer,
}

/// `run`: keeps the table as the manifests under `manifests` say until SIGTERM or SIGINT; serves the metrics and
/// `/status` on `listen` when given.
pub async fn run_files(settings: Settings, manifests: PathBuf, listen: Option<SocketAddr>) -> Result<()> {
    // Held until the process ends: a second `run`, an `apply` or a `cleanup` on this state file is refused.
    let _lock = StateLock::acquire(&settings.state, "run")?;
    let engine =
        open_engine(&settings.netns, settings.state, settings.vip_interface.as_deref(), settings.director).await?;
    let desired = DesiredState::new();
    // inotify can overflow and miss events: the directory is listed again at every resync.
    let rescan = settings.agent.resync.max(std::time::Duration::from_secs(1));
    let follow = crate::source::file::follow(manifests.clone(), desired.clone(), rescan)?;
    let files = tokio::spawn(follow);

    let equipment = Equipment::start(settings.agent.resync)?;
    let http = match listen {
        Some(listen) => Some(equipment.serve(listen).await?),
        None => None,
    };
    let metrics = Arc::clone(&equipment.metrics);
    let print = settings.print;
    let observer = Box::new(move |record: &PassRecord<'_, IpvsError>| observe_pass(&metrics, record, print));
    let agent = equipment.equip(Agent::new(engine, connector(&settings.netns), desired, settings.agent, observer));

    let shutdown = shutdown_signal()?;
    info!(manifests = %manifests.display(), "running; SIGTERM leaves the IPVS table as it is");
    agent.run(shutdown).await;
    files.abort();
    if let Some(http) = http {
        http.abort();
    }
    Ok(())
}

/// What only the Kubernetes agent needs.
pub struct AgentSettings {
    /// This node's name (the Node it reads labels from, and its entry in each object's status).
    pub node_name: String,
    /// Which status entries it keeps.
    pub status_report: StatusReport,
    /// Where the metrics, probes and `/status` are served.
    pub listen: SocketAddr,
    /// Which objects are programmed (`--admission`).
    pub admission: AdmissionMode,
    /// The election of the agent that writes the conditions; `None`: this one takes no part.
    pub verdict: Option<crate::verdict::VerdictSettings>,
}

/// `agent`: keeps the table as the cluster's VirtualServices say for this node, and reports each object's entry
/// for this node in its status, until SIGTERM or SIGINT.
pub async fn run_agent(settings: Settings, node: AgentSettings) -> Result<()> {
    // Held until the process ends, as `run` holds it.
    let _lock = StateLock::acquire(&settings.state, "agent")?;
    let client = api_client::api_client().await?;
    let engine =
        open_engine(&settings.netns, settings.state, settings.vip_interface.as_deref(), settings.director).await?;
    let desired = DesiredState::new();
    let equipment = Equipment::start(settings.agent.resync)?;
    let metrics = Arc::clone(&equipment.metrics);
    let http = equipment.serve(node.listen).await?;
    let api_metrics = Arc::clone(&metrics);
    let reported = Reported::default();
    let on_api = move |signal: ApiSignal| match signal {
        ApiSignal::Event => api_metrics.api_event(),
        ApiSignal::Relisted(resource) => api_metrics.watch_restart(resource),
        ApiSignal::Failed(resource) => api_metrics.watch_error(resource),
    };
    let follow = kubernetes::follow(
        client.clone(),
        node.node_name.clone(),
        node.admission,
        desired.clone(),
        Arc::clone(&reported),
        on_api,
    );
    let follow = tokio::spawn(follow);

    // The election ends with the agent: the leader releases the Lease, so another takes over at once.
    let (stop_verdict, verdict_stopped) = tokio::sync::oneshot::channel::<()>();
    let verdict = node.verdict.clone().map(|settings| {
        let stopped = async move {
            let _ = verdict_stopped.await;
        };
        tokio::spawn(crate::verdict::run(client.clone(), settings, Arc::clone(&metrics), stopped))
    });

    let (outcome_tx, outcome_rx) = watch::channel(KernelOutcome::default());
    let writer = StatusWriter::new(client, node.node_name.clone(), node.status_report, reported);
    let status = tokio::spawn(write_status(writer, desired.clone(), outcome_rx, Arc::clone(&metrics)));

    let mut outcomes = KernelOutcomes::default();
    let print = settings.print;
    let observer = Box::new(move |record: &PassRecord<'_, IpvsError>| {
        observe_pass(&metrics, record, print);
        outcome_tx.send_replace(outcomes.after(record));
    });
    let agent = equipment.equip(Agent::new(engine, connector(&settings.netns), desired, settings.agent, observer));

    let shutdown = shutdown_signal()?;
    info!(
        node = %node.node_name,
        listen = %node.listen,
        admission = ?node.admission,
        "agent running; SIGTERM leaves the IPVS table as it is"
    );
    agent.run(shutdown).await;
    follow.abort();
    status.abort();
    let _ = stop_verdict.send(());
    if let Some(verdict) = verdict {
        // Releasing the Lease is one or two requests; an unreachable API must not hold the exit.
        if tokio::time::timeout(std::time::Duration::from_secs(5), verdict).await.is_err() {
            tracing::warn!("the status Lease was not released in time (it expires by itself)");
        }
    }
    http.abort();
    Ok(())
}
