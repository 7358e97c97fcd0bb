//! What the agent tells operators over HTTP (`--listen`): Prometheus metrics, liveness and readiness.
//!
//! - `/metrics`: passes by trigger and result, pass duration, netlink operations by verb and result, owned and
//!   desired services and destinations, status writes, watch errors, the time of the last successful pass, readiness.
//! - `/healthz`: the loop is alive (a pass ran within a few resync periods).
//! - `/readyz`: the sources delivered a complete view and one kernel pass succeeded. It stays ready during a later
//!   API outage (the data plane does not depend on the API), and says so in its body and in a metric.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use checks::HealthCollector;

use tokio::sync::watch;

use super::PassRecord;
use super::board::SharedBoard;
use crate::clock::{unix_seconds, unix_seconds_f64};
use crate::engine::KernelFailure;
use crate::health::HealthView;

mod checks;

/// The default `--listen` port: 9469 collides with no common node agent (node-exporter 9100, kube-proxy 10249 and
/// 10256, kubelet 10250).
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9469";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PassLabels {
    trigger: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    trigger: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OpLabels {
    verb: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SysctlLabels {
    sysctl: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabels {
    resource: &'static str,
}

/// The labels of `build_info`: which build answers (an alert or a dashboard shows which nodes run which version
/// during a rolling upgrade).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    /// The source revision when the build said it (`IPVS_RECONCILER_REVISION` at compile time), else "unknown".
    revision: &'static str,
}

/// This build's version and revision, as `build_info` and the first log line of `run` and `agent` give them.
/// The revision comes from the build's environment rather than from a build script running git: a build script
/// watching `.git` would rebuild the crate at every commit, and a source tarball or image build has no `.git`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// See [`VERSION`].
pub const REVISION: &str = match option_env!("IPVS_RECONCILER_REVISION") {
    Some(revision) => revision,
    None => "unknown",
};

/// The agent's metrics and health, shared by the loop, the sources and the HTTP server.
pub struct Metrics {
    registry: Registry,
    passes: Family<PassLabels, Counter>,
    pass_seconds: Family<TriggerLabels, Histogram>,
    operations: Family<OpLabels, Counter>,
    owned_services: Gauge,
    owned_addresses: Gauge,
    contradictions: Family<SysctlLabels, Gauge>,
    kube_proxy_ipvs: Gauge,
    removed_by_others: Counter,
    desired_services: Gauge,
    desired_destinations: Gauge,
    objects_not_admitted: Gauge,
    admission_no_pool: Gauge,
    without_healthy: Gauge,
    status_writes: Family<ResultLabels, Counter>,
    condition_writes: Family<ResultLabels, Counter>,
    leading: Gauge,
    watch_errors: Family<ResourceLabels, Counter>,
    watch_restarts: Family<ResourceLabels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    ready_gauge: Gauge,
    api_ok_gauge: Gauge,
    /// A kernel pass has succeeded since the start.
    passed: AtomicBool,
    /// The sources delivered a complete view.
    sources_ready: AtomicBool,
    /// The API answers (no watch error since the last good event).
    api_ok: AtomicBool,
    /// Unix seconds of the last pass, for liveness.
    last_pass: AtomicU64,
    /// A pass this long ago means the loop is stuck.
    stale_after: Duration,
}

impl Metrics {
    /// Metrics for an agent that resyncs every `resync`.
    pub fn new(resync: Duration) -> Arc<Self> {
        Self::with_health(resync, None)
    }

    /// Metrics for an agent that resyncs every `resync`, with its health checks' when it runs them.
    pub fn with_health(resync: Duration, health: Option<HealthCollector>) -> Arc<Self> {
        let mut registry = Registry::with_prefix("ipvs_reconciler");
        if let Some(health) = health {
            registry.register_collector(Box::new(health));
        }
        let metrics = Metrics {
            passes: Family::default(),
            pass_seconds: Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.001, 4.0, 10))),
            operations: Family::default(),
            owned_services: Gauge::default(),
            owned_addresses: Gauge::default(),
            contradictions: Family::default(),
            kube_proxy_ipvs: Gauge::default(),
            removed_by_others: Counter::default(),
            desired_services: Gauge::default(),
            desired_destinations: Gauge::default(),
            objects_not_admitted: Gauge::default(),
            admission_no_pool: Gauge::default(),
            without_healthy: Gauge::default(),
            status_writes: Family::default(),
            condition_writes: Family::default(),
            leading: Gauge::default(),
            watch_errors: Family::default(),
            watch_restarts: Family::default(),
            last_success: Gauge::default(),
            ready_gauge: Gauge::default(),
            api_ok_gauge: Gauge::default(),
            passed: AtomicBool::new(false),
            sources_ready: AtomicBool::new(false),
            api_ok: AtomicBool::new(true),
            last_pass: AtomicU64::new(unix_seconds()),
            stale_after: resync * 3 + Duration::from_secs(60),
            registry: Registry::default(),
        };
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: VERSION, revision: REVISION }).set(1);
        registry.register("build_info", "Always 1; the labels say which build this is", build_info);
        registry.register("passes", "Reconciliation passes by trigger and result", metrics.passes.clone());
        registry.register("pass_duration_seconds", "Duration of passes", metrics.pass_seconds.clone());
        registry.register("operations", "Netlink operations by verb and result", metrics.operations.clone());
        registry.register("owned_services", "IPVS services this program owns", metrics.owned_services.clone());
        registry.register(
            "owned_addresses",
            "Addresses this program added to the VIP interface",
            metrics.owned_addresses.clone(),
        );
        registry.register(
            "sysctl_contradictions",
            "Declared services a sysctl's value contradicts (NAT without forwarding, ...), by sysctl; one log line \
             when it appears",
            metrics.contradictions.clone(),
        );
        registry.register(
            "kube_proxy_ipvs",
            "1 while kube-proxy runs in IPVS mode on this node (its kube-ipvs0 exists): it deletes IPVS services it \
             did not create unless --ipvs-exclude-cidrs covers them",
            metrics.kube_proxy_ipvs.clone(),
        );
        registry.register(
            "services_removed_by_others",
            "Owned services another program removed from the kernel between two passes (each was added back)",
            metrics.removed_by_others.clone(),
        );
        registry.register("desired_services", "Services the sources ask for here", metrics.desired_services.clone());
        registry.register(
            "desired_destinations",
            "Destinations the sources ask for here",
            metrics.desired_destinations.clone(),
        );
        registry.register(
            "objects_not_admitted",
            "VirtualServices no VirtualServicePool admits (never programmed; status reason NotAdmitted)",
            metrics.objects_not_admitted.clone(),
        );
        registry.register(
            "admission_no_pool",
            "1 when --admission pools and no VirtualServicePool exists (or its CRD is not installed): nothing is \
             admitted",
            metrics.admission_no_pool.clone(),
        );
        registry.register(
            "services_without_healthy_backends",
            "Health-checked services none of whose checked backends passes (a sorry server, if any, answers)",
            metrics.without_healthy.clone(),
        );
        registry.register("status_writes", "Status entries written, by result", metrics.status_writes.clone());
        registry.register(
            "condition_writes",
            "Conditions and summaries written by this agent while it leads, by result",
            metrics.condition_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this agent holds the ipvs-reconciler-status Lease and writes every object's conditions",
            metrics.leading.clone(),
        );
        registry.register("watch_errors", "Failed lists and watches, by resource", metrics.watch_errors.clone());
        registry.register(
            "watch_restarts",
            "Lists started again after the first (expired or restarted watches), by resource",
            metrics.watch_restarts.clone(),
        );
        registry.register(
            "last_successful_pass_timestamp_seconds",
            "When the last pass succeeded",
            metrics.last_success.clone(),
        );
        registry.register(
            "ready",
            "1 once the sources are complete and a kernel pass succeeded",
            metrics.ready_gauge.clone(),
        );
        registry.register("api_available", "0 while lists or watches of the API fail", metrics.api_ok_gauge.clone());
        metrics.api_ok_gauge.set(1);
        Arc::new(Metrics { registry, ..metrics })
    }

    /// Records a pass.
    pub fn pass<E: KernelFailure>(&self, record: &PassRecord<'_, E>, duration: Duration, owned: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let trigger = record.kind.label();
        let result = match record.result {
            Ok(report) if report.is_success() => "ok",
            Ok(_) => "refused",
            Err(e) => e.metric_label(),
        };
        self.passes.get_or_create(&PassLabels { trigger, result }).inc();
        self.pass_seconds.get_or_create(&TriggerLabels { trigger }).observe(duration.as_secs_f64());
        if let Ok(report) = record.result {
            for op in &report.applied {
                self.operations.get_or_create(&OpLabels { verb: op.verb(), result: "ok" }).inc();
            }
            for failure in &report.failures {
                let result = failure.error.metric_label();
                self.operations.get_or_create(&OpLabels { verb: failure.op.verb(), result }).inc();
            }
            for op in &report.unanswered {
                self.operations.get_or_create(&OpLabels { verb: op.verb(), result: "unanswered" }).inc();
            }
            let addresses = &report.addresses;
            for (verb, count) in [("add_address", addresses.added.len()), ("remove_address", addresses.removed.len())] {
                if count > 0 {
                    self.operations.get_or_create(&OpLabels { verb, result: "ok" }).inc_by(count as u64);
                }
            }
            for failure in &addresses.failures {
                let verb = if failure.adding { "add_address" } else { "remove_address" };
                self.operations.get_or_create(&OpLabels { verb, result: failure.error.metric_label() }).inc();
            }
            // Only full passes look at the sysctls: the gauges keep the last full pass's findings.
            if record.full {
                for sysctl in crate::director::Sysctl::ALL {
                    let services = report
                        .director
                        .contradictions
                        .iter()
                        .filter(|c| c.sysctl == sysctl)
                        .map(|c| c.services.len())
                        .sum::<usize>();
                    self.contradictions.get_or_create(&SysctlLabels { sysctl: sysctl.name() }).set(gauge(services));
                }
                if let Some(found) = report.director.kube_proxy_ipvs {
                    self.kube_proxy_ipvs.set(i64::from(found));
                }
            }
            self.removed_by_others.inc_by(report.vanished.len() as u64);
            if report.is_success() {
                self.passed.store(true, Ordering::SeqCst);
                self.last_success.set(unix_seconds_f64());
            }
        }
        self.owned_services.set(gauge(owned));
        self.owned_addresses.set(gauge(record.owned_addresses));
        self.desired_services.set(gauge(record.desired.table.services.len()));
        self.desired_destinations.set(gauge(record.desired.destinations));
        self.objects_not_admitted.set(gauge(record.desired.not_admitted));
        self.admission_no_pool.set(i64::from(record.desired.lacks_pools));
        // The tracker's summaries cover every checked service after any pass, so a count over them is exact; one
        // gauge rather than one series per service keeps the cardinality flat at 10,000 services (`/status` and
        // `ipvs-reconciler status` name them).
        let without_healthy = record.health.values().filter(|s| s.healthy == 0 && !s.unhealthy.is_empty()).count();
        self.without_healthy.set(gauge(without_healthy));
        self.last_pass.store(unix_seconds(), Ordering::SeqCst);
        self.update_ready();
    }

    /// Records that the sources delivered a complete view.
    pub fn sources_ready(&self) {
        self.sources_ready.store(true, Ordering::SeqCst);
        self.update_ready();
    }

    /// Records a status write.
    pub fn status_write(&self, ok: bool) {
        self.status_writes.get_or_create(&ResultLabels { result: if ok { "ok" } else { "error" } }).inc();
    }

    /// Records a write of an object's conditions by the leader.
    pub fn condition_write(&self, ok: bool) {
        self.condition_writes.get_or_create(&ResultLabels { result: if ok { "ok" } else { "error" } }).inc();
    }

    /// Records whether this agent leads (writes the conditions).
    pub fn set_leading(&self, leading: bool) {
        self.leading.set(i64::from(leading));
    }

    /// Records a failed list or watch of `resource`; the API counts as unavailable until [`Metrics::api_event`].
    pub fn watch_error(&self, resource: &'static str) {
        self.watch_errors.get_or_create(&ResourceLabels { resource }).inc();
        self.api_ok.store(false, Ordering::SeqCst);
        self.api_ok_gauge.set(0);
    }

    /// Records that the watcher of `resource` lists again.
    pub fn watch_restart(&self, resource: &'static str) {
        self.watch_restarts.get_or_create(&ResourceLabels { resource }).inc();
    }

    /// Records a good event from the API.
    pub fn api_event(&self) {
        if !self.api_ok.swap(true, Ordering::SeqCst) {
            self.api_ok_gauge.set(1);
        }
    }

    fn update_ready(&self) {
        self.ready_gauge.set(i64::from(self.is_ready()));
    }

    /// Ready: complete sources and one successful pass (not withdrawn by a later API outage).
    pub fn is_ready(&self) -> bool {
        self.sources_ready.load(Ordering::SeqCst) && self.passed.load(Ordering::SeqCst)
    }

    /// Alive: a pass ran recently enough.
    pub fn is_alive(&self) -> bool {
        let last = self.last_pass.load(Ordering::SeqCst);
        unix_seconds().saturating_sub(last) < self.stale_after.as_secs()
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    fn readiness(&self) -> (StatusCode, String) {
        let api = if self.api_ok.load(Ordering::SeqCst) { "" } else { " (the API is unavailable; the table is kept)" };
        match (self.sources_ready.load(Ordering::SeqCst), self.passed.load(Ordering::SeqCst)) {
            (true, true) => (StatusCode::OK, format!("ready{api}\n")),
            (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "waiting for a complete view of the sources\n".to_owned()),
            (true, false) => (StatusCode::SERVICE_UNAVAILABLE, "waiting for a successful kernel pass\n".to_owned()),
        }
    }
}

/// `/status`: every service and backend with its health, as JSON (see [`crate::agent::board`]).
pub fn status_router(board: SharedBoard, view: watch::Receiver<HealthView>) -> Router {
    Router::new().route(
        "/status",
        get(move || {
            let report = {
                let board = board.read().unwrap_or_else(|poisoned| poisoned.into_inner());
                board.report(&view.borrow())
            };
            // Serializing plain strings and numbers cannot fail; an empty object would say "no services".
            let body = serde_json::to_string_pretty(&report).unwrap_or_else(|_| "{}".to_owned());
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    )
}

/// The HTTP routes.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State(m): State<Arc<Metrics>>| async move {
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.render())
            }),
        )
        .route(
            "/healthz",
            get(|State(m): State<Arc<Metrics>>| async move {
                if m.is_alive() {
                    (StatusCode::OK, "ok\n").into_response()
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "no pass for too long\n").into_response()
                }
            }),
        )
        .route("/readyz", get(|State(m): State<Arc<Metrics>>| async move { m.readiness() }))
        .with_state(metrics)
}

#[cfg(test)]
mod tests;
