//! What a long-running process runs beside the agent loop: the health checks, the metrics over them and over every
//! pass, the `/status` board, and the HTTP server that shows them.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

use super::Printer;
use crate::agent::board::SharedBoard;
use crate::agent::metrics::{HealthCollector, Metrics, router, status_router};
use crate::agent::{Agent, Connector, PassRecord};
use crate::engine::Kernel;
use crate::health::{HealthScheduler, Prober, SchedulerConfig};
use crate::ipvs::IpvsError;

/// The checks, the metrics and the board of one long-running process.
pub struct Equipment {
    /// Runs every health check, from this process's network namespace (whatever `--netns` the table is in).
    pub checks: HealthScheduler,
    /// The metrics, the checks' included.
    pub metrics: Arc<Metrics>,
    /// What `/status` shows.
    pub board: SharedBoard,
}

impl Equipment {
    /// Starts the checks (no target yet, on their own thread) for a loop that resyncs every `resync`.
    pub fn start(resync: Duration) -> Result<Self> {
        let checks = HealthScheduler::spawn_dedicated(Prober::new(), SchedulerConfig::default())
            .context("starting the health checks' thread")?;
        let collector = HealthCollector::new(checks.shared_counters(), checks.subscribe());
        let metrics = Metrics::with_health(resync, Some(collector));
        Ok(Equipment { checks, metrics, board: SharedBoard::default() })
    }

    /// Serves `/metrics`, `/healthz`, `/readyz` and `/status` on `listen` (`--listen`).
    pub async fn serve(&self, listen: SocketAddr) -> Result<JoinHandle<std::io::Result<()>>> {
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen} (--listen)"))?;
        let routes =
            router(Arc::clone(&self.metrics)).merge(status_router(Arc::clone(&self.board), self.checks.subscribe()));
        Ok(tokio::spawn(axum::serve(listener, routes).into_future()))
    }

    /// Gives `agent` the checks and the board.
    pub fn equip<K: Kernel, C: Connector<K>>(self, agent: Agent<K, C>) -> Agent<K, C> {
        agent.with_health(self.checks).with_board(self.board)
    }
}

/// What every pass tells the operator: the metrics, and (through `print`) the operations it applied or that failed.
pub fn observe_pass(metrics: &Metrics, record: &PassRecord<'_, IpvsError>, print: Printer) {
    metrics.sources_ready();
    metrics.pass(record, record.duration, record.owned);
    if let Ok(report) = record.result
        && (!report.applied.is_empty()
            || !report.failures.is_empty()
            || !report.unanswered.is_empty()
            || !report.addresses.added.is_empty()
            || !report.addresses.removed.is_empty()
            || !report.addresses.failures.is_empty()
            || !report.director.changes.is_empty()
            || !report.director.failures.is_empty())
    {
        print(report, record.desired);
    }
}
