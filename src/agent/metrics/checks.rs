//! The health checks' metrics, read from the scheduler's counters and view at each scrape (a collector): the
//! scheduler counts with plain atomics and knows nothing of Prometheus.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::sync::watch;

use crate::health::scheduler::LATENCY_BOUNDS;
use crate::health::{HealthView, OK_LABEL, OUTCOME_LABELS, ProbeKind, SchedulerCounters};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    r#type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToLabels {
    to: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

/// Exports the checks: results by type and outcome, latency of successful checks, transitions, skipped ticks,
/// checks in flight, and targets by health.
#[derive(Debug)]
pub struct HealthCollector {
    counters: Arc<SchedulerCounters>,
    view: watch::Receiver<HealthView>,
}

impl HealthCollector {
    /// A collector over a scheduler's counters and view.
    pub fn new(counters: Arc<SchedulerCounters>, view: watch::Receiver<HealthView>) -> Self {
        HealthCollector { counters, view }
    }
}

impl Collector for HealthCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let c = &self.counters;
        let mut family = encoder.encode_descriptor(
            "health_checks",
            "Health check results by type and outcome",
            None,
            MetricType::Counter,
        )?;
        for kind in ProbeKind::ALL {
            for outcome in std::iter::once(&OK_LABEL).chain(OUTCOME_LABELS) {
                let count = c.results_of(*kind, outcome);
                if count > 0 {
                    let labels = CheckLabels { r#type: kind.label(), outcome };
                    ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
                }
            }
        }
        let latency = c.latency();
        // Per bucket, not cumulative: the encoder adds them up (the last bound is written as +Inf).
        let bounds = LATENCY_BOUNDS.iter().map(|b| b.as_secs_f64()).chain(std::iter::once(f64::MAX));
        let buckets: Vec<(f64, u64)> = bounds.zip(latency.buckets.iter().copied()).collect();
        let histogram = encoder.encode_descriptor(
            "health_check_duration_seconds",
            "Duration of successful health checks",
            None,
            MetricType::Histogram,
        )?;
        encode_histogram(histogram, latency.sum.as_secs_f64(), latency.count(), &buckets)?;
        let (healthy, unhealthy) = c.transitions();
        let mut family = encoder.encode_descriptor(
            "health_transitions",
            "Backends that became healthy or unhealthy",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(healthy).encode(family.encode_family(&ToLabels { to: "healthy" })?)?;
        ConstCounter::new(unhealthy).encode(family.encode_family(&ToLabels { to: "unhealthy" })?)?;
        let skipped = encoder.encode_descriptor(
            "health_checks_skipped",
            "Checks not started because the previous one of the same target was still running",
            None,
            MetricType::Counter,
        )?;
        ConstCounter::new(c.skipped()).encode(skipped)?;
        let in_flight = encoder.encode_descriptor(
            "health_checks_in_flight",
            "Health checks running now",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(i64::try_from(c.in_flight()).unwrap_or(i64::MAX)).encode(in_flight)?;
        let (up, down) = {
            let view = self.view.borrow();
            let up = view.states.values().filter(|s| s.healthy).count();
            (up, view.states.len() - up)
        };
        let mut family = encoder.encode_descriptor(
            "health_targets",
            "Checked targets (backend, port, check) by health",
            None,
            MetricType::Gauge,
        )?;
        let gauge = |n: usize| ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
        gauge(up).encode(family.encode_family(&StateLabels { state: "healthy" })?)?;
        gauge(down).encode(family.encode_family(&StateLabels { state: "unhealthy" })?)?;
        Ok(())
    }
}

fn encode_histogram(
    mut encoder: prometheus_client::encoding::MetricEncoder<'_>,
    sum: f64,
    count: u64,
    buckets: &[(f64, u64)],
) -> Result<(), std::fmt::Error> {
    encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, buckets, None)
}
