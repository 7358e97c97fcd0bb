//! The HTTP endpoints, through the router (no socket).

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use super::*;
use crate::agent::{PassError, PassKind};
use crate::engine::{FakeError, PassReport};
use crate::source::Snapshot;

async fn get(metrics: &Arc<Metrics>, path: &str) -> (StatusCode, String) {
    let response = router(Arc::clone(metrics)).oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

static NO_HEALTH: std::collections::BTreeMap<crate::model::ServiceKey, crate::agent::weights::HealthSummary> =
    std::collections::BTreeMap::new();

fn record<'a>(
    desired: &'a Snapshot,
    result: &'a Result<PassReport<FakeError>, PassError<FakeError>>,
) -> PassRecord<'a, FakeError> {
    PassRecord {
        kind: PassKind::Resync,
        full: true,
        scope: None,
        desired,
        result,
        duration: Duration::from_millis(3),
        owned: 2,
        owned_addresses: 1,
        health: &NO_HEALTH,
    }
}

#[tokio::test]
async fn ready_after_complete_sources_and_a_successful_pass_and_it_stays_so_during_an_api_outage() {
    let metrics = Metrics::new(Duration::from_secs(60));
    assert_eq!(get(&metrics, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(get(&metrics, "/healthz").await.0, StatusCode::OK);
    metrics.sources_ready();
    let (code, body) = get(&metrics, "/readyz").await;
    assert_eq!((code, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "waiting for a successful kernel pass\n"));

    let desired = Snapshot::default();
    let failed: Result<PassReport<FakeError>, PassError<FakeError>> =
        Err(PassError::Engine(crate::engine::EngineError::Read(FakeError::ReadFailed)));
    metrics.pass(&record(&desired, &failed), Duration::from_millis(3), 2);
    assert_eq!(get(&metrics, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    let ok: Result<PassReport<FakeError>, PassError<FakeError>> = Ok(PassReport::default());
    metrics.pass(&record(&desired, &ok), Duration::from_millis(3), 2);
    assert_eq!(get(&metrics, "/readyz").await, (StatusCode::OK, "ready\n".to_owned()));

    metrics.watch_error("virtualservices");
    let (code, body) = get(&metrics, "/readyz").await;
    assert_eq!(code, StatusCode::OK, "the data plane does not depend on the API");
    assert!(body.contains("the API is unavailable"), "{body}");
    metrics.api_event();
    assert_eq!(get(&metrics, "/readyz").await.1, "ready\n");
}

#[tokio::test]
async fn metrics_count_passes_operations_and_state() {
    let metrics = Metrics::new(Duration::from_secs(60));
    let desired = Snapshot::default();
    let mut report = PassReport::default();
    report.addresses.added = vec!["192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap()];
    report.director.contradictions = vec![crate::director::Contradiction {
        sysctl: crate::director::Sysctl::IpForward,
        found: 0,
        wanted: 1,
        why: "NAT",
        services: vec![crate::model::ServiceKey::tcp([192, 0, 2, 1].into(), 80)],
    }];
    report.director.kube_proxy_ipvs = Some(true);
    report.vanished = vec![crate::model::ServiceKey::tcp([192, 0, 2, 1].into(), 80)];
    let ok: Result<PassReport<FakeError>, PassError<FakeError>> = Ok(report);
    metrics.pass(&record(&desired, &ok), Duration::from_millis(3), 2);
    let failed: Result<PassReport<FakeError>, PassError<FakeError>> = Err(PassError::Connect("no netlink".into()));
    metrics.pass(&record(&desired, &failed), Duration::from_millis(3), 2);
    metrics.status_write(true);
    metrics.watch_error("endpointslices");
    metrics.watch_restart("virtualservices");
    let (code, text) = get(&metrics, "/metrics").await;
    assert_eq!(code, StatusCode::OK);
    for line in [
        "ipvs_reconciler_passes_total{trigger=\"resync\",result=\"ok\"} 1",
        "ipvs_reconciler_passes_total{trigger=\"resync\",result=\"connect\"} 1",
        "ipvs_reconciler_owned_services 2",
        "ipvs_reconciler_owned_addresses 1",
        "ipvs_reconciler_sysctl_contradictions{sysctl=\"net.ipv4.ip_forward\"} 1",
        "ipvs_reconciler_sysctl_contradictions{sysctl=\"net.ipv4.vs.conntrack\"} 0",
        "ipvs_reconciler_sysctl_contradictions{sysctl=\"net.ipv4.conf.all.arp_ignore\"} 0",
        "ipvs_reconciler_kube_proxy_ipvs 1",
        "ipvs_reconciler_services_removed_by_others_total 1",
        "ipvs_reconciler_operations_total{verb=\"add_address\",result=\"ok\"} 2",
        "ipvs_reconciler_status_writes_total{result=\"ok\"} 1",
        "ipvs_reconciler_watch_errors_total{resource=\"endpointslices\"} 1",
        "ipvs_reconciler_watch_restarts_total{resource=\"virtualservices\"} 1",
        "ipvs_reconciler_api_available 0",
        "ipvs_reconciler_ready 0",
        "ipvs_reconciler_pass_duration_seconds_count{trigger=\"resync\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn objects_not_admitted_and_the_lack_of_pools_are_exported() {
    let metrics = Metrics::new(Duration::from_secs(60));
    let ok: Result<PassReport<FakeError>, PassError<FakeError>> = Ok(PassReport::default());
    let lacking = Snapshot { not_admitted: 3, lacks_pools: true, ..Snapshot::default() };
    metrics.pass(&record(&lacking, &ok), Duration::from_millis(3), 0);
    let (_, text) = get(&metrics, "/metrics").await;
    for line in ["ipvs_reconciler_objects_not_admitted 3", "ipvs_reconciler_admission_no_pool 1"] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    let admitted = Snapshot::default();
    metrics.pass(&record(&admitted, &ok), Duration::from_millis(3), 0);
    let (_, text) = get(&metrics, "/metrics").await;
    for line in ["ipvs_reconciler_objects_not_admitted 0", "ipvs_reconciler_admission_no_pool 0"] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn build_info_names_this_version() {
    let metrics = Metrics::new(Duration::from_secs(60));
    let (_, text) = get(&metrics, "/metrics").await;
    let line =
        format!("ipvs_reconciler_build_info{{version=\"{}\",revision=\"{REVISION}\"}} 1", env!("CARGO_PKG_VERSION"));
    assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
}

#[tokio::test]
async fn services_whose_checked_backends_all_fail_are_counted() {
    use crate::agent::weights::HealthSummary;
    use crate::model::{DestKey, ServiceKey};
    let metrics = Metrics::new(Duration::from_secs(60));
    let dest = |last: u8| DestKey::new([10, 0, 0, last].into(), 8080);
    let health = std::collections::BTreeMap::from([
        // Every checked backend down: counted.
        (
            ServiceKey::tcp([192, 0, 2, 1].into(), 80),
            HealthSummary { healthy: 0, unhealthy: vec![(dest(1), Some("refused".into())), (dest(2), None)] },
        ),
        // One of two up: not counted.
        (ServiceKey::tcp([192, 0, 2, 2].into(), 80), HealthSummary { healthy: 1, unhealthy: vec![(dest(3), None)] }),
        // Nothing checked (every backend's check disabled): not counted.
        (ServiceKey::tcp([192, 0, 2, 3].into(), 80), HealthSummary::default()),
    ]);
    let desired = Snapshot::default();
    let ok: Result<PassReport<FakeError>, PassError<FakeError>> = Ok(PassReport::default());
    let mut pass = record(&desired, &ok);
    pass.health = &health;
    metrics.pass(&pass, Duration::from_millis(3), 3);
    let (_, text) = get(&metrics, "/metrics").await;
    let line = "ipvs_reconciler_services_without_healthy_backends 1";
    assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
}

/// Answers every check: refused for port 1, up otherwise, after 3 ms.
struct Scripted;

impl crate::health::ProbeRunner for Scripted {
    fn probe(
        &self,
        key: &crate::health::TargetKey,
    ) -> impl Future<Output = Result<(), crate::health::ProbeError>> + Send {
        let refused = key.target.port() == 1;
        async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            if refused { Err(crate::health::ProbeError::Refused) } else { Ok(()) }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn health_checks_are_exported_by_type_outcome_and_state() {
    use crate::health::{Check, HealthScheduler, Probe, Schedule, SchedulerConfig, TargetKey};
    let scheduler = HealthScheduler::spawn(Scripted, SchedulerConfig::default());
    let schedule = Schedule { interval: Duration::from_secs(1), rise: 1, fall: 1, initial_healthy: true };
    let check = Check::new(Probe::Tcp, Duration::from_millis(500));
    scheduler.set_targets(
        [
            (TargetKey::new("10.0.0.1:80".parse().unwrap(), check.clone()), schedule),
            (TargetKey::new("10.0.0.2:1".parse().unwrap(), check), schedule),
        ]
        .into(),
    );
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let collector = HealthCollector::new(scheduler.shared_counters(), scheduler.subscribe());
    let metrics = Metrics::with_health(Duration::from_secs(60), Some(collector));
    let (_, body) = get(&metrics, "/metrics").await;
    let line = |prefix: &str| body.lines().find(|l| l.starts_with(prefix)).map(str::to_owned);
    assert_eq!(
        line("ipvs_reconciler_health_checks_total{type=\"tcp\",outcome=\"ok\"}"),
        Some("ipvs_reconciler_health_checks_total{type=\"tcp\",outcome=\"ok\"} 2".into()),
        "{body}"
    );
    assert!(line("ipvs_reconciler_health_checks_total{type=\"tcp\",outcome=\"refused\"}").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_transitions_total{to=\"unhealthy\"} 1").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_targets{state=\"healthy\"} 1").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_targets{state=\"unhealthy\"} 1").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_check_duration_seconds_count 2").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_check_duration_seconds_bucket{le=\"0.0025\"} 0").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_check_duration_seconds_bucket{le=\"0.005\"} 2").is_some(), "{body}");
    assert!(line("ipvs_reconciler_health_check_duration_seconds_bucket{le=\"+Inf\"} 2").is_some(), "{body}");
}
