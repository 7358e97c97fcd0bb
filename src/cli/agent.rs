//! `agent`: the Kubernetes agent of one node. Wires the Kubernetes source (watchers) and the status writer to the
//! agent loop; the loop itself is the same as `run`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::watch;
use tracing::info;

use super::EXIT_OK;
use super::args::AgentArgs;
use super::commands::{connector, open_engine, shutdown_signal};
use super::operations::{Operations, observe_pass};
use crate::agent::metrics::Metrics;
use crate::agent::status::{KernelOutcome, Reported, StatusWriter};
use crate::agent::{Agent, PassRecord};
use crate::ipvs::{IpvsError, NetnsSpec};
use crate::model::ServiceKey;
use crate::source::DesiredState;
use crate::source::kubernetes::{self, ApiSignal};

/// Runs until SIGTERM or SIGINT.
pub async fn agent(netns: &NetnsSpec, state: PathBuf, args: &AgentArgs) -> Result<i32> {
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API (KUBECONFIG, ~/.kube/config, or the in-cluster service account)")?;
    let engine = open_engine(netns, state, &args.common.addresses, &args.common.director).await?;
    let desired = DesiredState::new();
    let node = args.node_name.clone();
    let ops = Operations::start(args.common.resync_seconds)?;
    let metrics = Arc::clone(&ops.metrics);
    let http = ops.serve(args.listen).await?;
    let api_metrics = Arc::clone(&metrics);
    let reported = Reported::default();
    let on_api = move |signal: ApiSignal| match signal {
        ApiSignal::Event => api_metrics.api_event(),
        ApiSignal::Relisted(resource) => api_metrics.watch_restart(resource),
        ApiSignal::Failed(resource) => api_metrics.watch_error(resource),
    };
    let follow =
        tokio::spawn(kubernetes::follow(client.clone(), node.clone(), desired.clone(), Arc::clone(&reported), on_api));

    let (outcome_tx, outcome_rx) = watch::channel(KernelOutcome::default());
    let writer = StatusWriter::new(client, node.clone(), args.status_report, reported);
    let status = tokio::spawn(write_status(writer, desired.clone(), outcome_rx, Arc::clone(&metrics)));

    let config = args.common.config();
    let connector = connector(netns);
    let mut refused: BTreeMap<ServiceKey, String> = BTreeMap::new();
    let pass_metrics = Arc::clone(&metrics);
    let observer = Box::new(move |record: &PassRecord<'_, IpvsError>| {
        observe_pass(&pass_metrics, record);
        outcome_tx.send_replace(outcome_of(record, &mut refused));
    });
    let agent = ops.equip(Agent::new(engine, connector, desired, config, observer));

    let shutdown = shutdown_signal()?;
    info!(node = %node, listen = %args.listen, "agent running; SIGTERM leaves the IPVS table as it is");
    agent.run(shutdown).await;
    follow.abort();
    status.abort();
    http.abort();
    Ok(EXIT_OK)
}

/// What a pass tells the status: the refusals of the services it looked at (a full pass looked at all of them;
/// the others keep what an earlier pass found), or why it could not run.
fn outcome_of(record: &PassRecord<'_, IpvsError>, refused: &mut BTreeMap<ServiceKey, String>) -> KernelOutcome {
    // Only checked services have a summary (a copy per pass costs their number, not the table's).
    let health = record.health.clone();
    let report = match record.result {
        Ok(report) => report,
        Err(e) => return KernelOutcome { refused: refused.clone(), pass_failed: Some(e.to_string()), health },
    };
    match record.scope {
        None => refused.clear(),
        Some(scope) => refused.retain(|key, _| !scope.contains(key)),
    }
    for failure in &report.failures {
        refused.insert(*failure.op.service_key(), format!("{}: {}", failure.op, failure.error));
    }
    for op in &report.unanswered {
        refused.insert(*op.service_key(), format!("{op}: no answer from the kernel (outcome unknown)"));
    }
    // A service whose VIP could not be added is in the kernel but receives nothing: not programmed.
    for failure in report.addresses.failures.iter().filter(|f| f.adding) {
        for key in &failure.services {
            refused.insert(*key, format!("adding its address {} failed: {}", failure.addr, failure.error));
        }
    }
    KernelOutcome { refused: refused.clone(), pass_failed: None, health }
}

/// Writes status after each pass, from the index's reports and what the pass found.
async fn write_status(
    mut writer: StatusWriter,
    desired: DesiredState,
    mut outcomes: watch::Receiver<KernelOutcome>,
    metrics: Arc<Metrics>,
) {
    while outcomes.changed().await.is_ok() {
        let outcome = outcomes.borrow_and_update().clone();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let (written, failed) = writer.write(&desired, &outcome, &now).await;
        (0..written).for_each(|_| metrics.status_write(true));
        (0..failed).for_each(|_| metrics.status_write(false));
    }
}
