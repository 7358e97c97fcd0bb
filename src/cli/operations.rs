//! What the long-running modes (`run`, `agent`) share beside the loop: the health checks, the metrics over them,
//! the `/status` board, the HTTP server, and what every pass tells them.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

use super::commands::print_report;
use crate::agent::board::SharedBoard;
use crate::agent::metrics::{HealthCollector, Metrics, router, status_router};
use crate::agent::{Agent, Connector, PassRecord};
use crate::engine::Kernel;
use crate::health::{HealthScheduler, Prober, SchedulerConfig};
use crate::ipvs::IpvsError;

/// The checks, the metrics and the board of one long-running process.
pub struct Operations {
    /// Runs every health check, from this process's network namespace (whatever `--netns` the table is in).
    pub checks: HealthScheduler,
    /// The metrics, the checks' included.
    pub metrics: Arc<Metrics>,
    /// What `/status` shows.
    pub board: SharedBoard,
}

impl Operations {
    /// Starts the checks (no target yet, on their own thread) for a loop that resyncs every `resync_seconds`.
    pub fn start(resync_seconds: u64) -> Result<Self> {
        let checks = HealthScheduler::spawn_dedicated(Prober::new(), SchedulerConfig::default())
            .context("starting the health checks' thread")?;
        let collector = HealthCollector::new(checks.shared_counters(), checks.subscribe());
        let metrics = Metrics::with_health(Duration::from_secs(resync_seconds), Some(collector));
        Ok(Operations { checks, metrics, board: SharedBoard::default() })
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

/// What every pass tells the operator: the metrics, and the operations it applied or that failed.
pub fn observe_pass(metrics: &Metrics, record: &PassRecord<'_, IpvsError>) {
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
        print_report(report, record.desired);
    }
}
