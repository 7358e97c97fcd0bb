//! deploy/monitoring: every metric the alert rules and the dashboard use is one the binary exports, with labels it
//! (or the scrape) gives. The exported names come from the registry the binary serves (`daemon::Equipment`, which
//! `run` and `agent` start), rendered after exercising it, not from a list kept here; the expressions are parsed as
//! PromQL, so a syntax error fails here rather than when Prometheus loads the rules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipvs_reconciler::agent::{PassError, PassKind, PassRecord};
use ipvs_reconciler::daemon::Equipment;
use ipvs_reconciler::engine::PassReport;
use ipvs_reconciler::ipvs::IpvsError;
use ipvs_reconciler::source::Snapshot;
use promql_parser::parser::{self, Expr};
use serde_yaml::Value;

/// Labels a series gets from the scrape rather than from the binary: Prometheus's own, the Operator's for a
/// PodMonitor, and `node`, which deploy/monitoring/podmonitor.yaml adds.
const TARGET_LABELS: [&str; 7] = ["job", "instance", "namespace", "pod", "container", "endpoint", "node"];

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/monitoring")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

/// What the binary exports: each sample name, with the label names seen on its samples (`None`: no sample was
/// rendered, only the family's `# TYPE`, so its labels are unknown here).
struct Exported(BTreeMap<String, Option<BTreeSet<String>>>);

impl Exported {
    /// The metrics of a long-running process, after a pass and the calls the sources and the leader make.
    fn from_the_binary() -> Self {
        let equipment = Equipment::start(Duration::from_secs(60)).unwrap();
        let metrics = &equipment.metrics;
        let desired = Snapshot { not_admitted: 1, ..Snapshot::default() };
        let mut report = PassReport::default();
        report.addresses.added = vec!["192.0.2.1".parse().unwrap()];
        let ok: Result<PassReport<IpvsError>, PassError<IpvsError>> = Ok(report);
        let health = BTreeMap::new();
        let record = PassRecord {
            kind: PassKind::Resync,
            full: true,
            scope: None,
            desired: &desired,
            result: &ok,
            duration: Duration::from_millis(1),
            owned: 1,
            owned_addresses: 1,
            health: &health,
        };
        metrics.pass(&record, record.duration, record.owned);
        metrics.sources_ready();
        metrics.status_write(false);
        metrics.condition_write(false);
        metrics.set_leading(true);
        metrics.watch_error("virtualservices");
        metrics.watch_restart("virtualservices");
        Self::parse(&metrics.render())
    }

    /// Reads the text exposition: `# TYPE` lines give the sample names of every family (a counter's samples end in
    /// `_total`, a histogram's in `_bucket`, `_sum` and `_count`), sample lines their labels.
    fn parse(text: &str) -> Self {
        let mut names: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (family, kind) = rest.split_once(' ').unwrap();
                let suffixes: &[&str] = match kind {
                    "counter" => &["_total"],
                    "histogram" => &["_bucket", "_sum", "_count"],
                    "summary" => &["", "_sum", "_count"],
                    "info" => &["_info"],
                    _ => &[""],
                };
                for suffix in suffixes {
                    names.entry(format!("{family}{suffix}")).or_insert(None);
                }
            } else if !line.starts_with('#') && !line.trim().is_empty() {
                let (name, labels) = sample(line);
                names.entry(name.clone()).or_insert(None).get_or_insert_with(BTreeSet::new).extend(labels);
            }
        }
        Exported(names)
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The labels `name`'s samples carry, with the scrape's; `None` when none was rendered.
    fn labels(&self, name: &str) -> Option<BTreeSet<String>> {
        let mut labels = self.0.get(name)?.clone()?;
        labels.extend(TARGET_LABELS.map(str::to_owned));
        Some(labels)
    }
}

/// The name and label names of one sample line, `name{a="x",b="y, \"z\""} 1`.
fn sample(line: &str) -> (String, Vec<String>) {
    let Some((name, rest)) = line.split_once('{') else {
        return (line.split_whitespace().next().unwrap().to_owned(), Vec::new());
    };
    let mut labels = Vec::new();
    let (mut key, mut in_value, mut escaped) = (String::new(), false, false);
    for c in rest.chars() {
        match (in_value, c) {
            (true, _) if escaped => escaped = false,
            (true, '\\') => escaped = true,
            (true, '"') => in_value = false,
            (true, _) => {}
            (false, '"') => {
                in_value = true;
                labels.push(key.trim().trim_end_matches('=').trim_start_matches(',').trim().to_owned());
                key.clear();
            }
            (false, '}') => break,
            (false, c) => key.push(c),
        }
    }
    (name.to_owned(), labels)
}

/// What an expression uses: each selector's metric name and matcher labels, and each aggregation's grouping labels
/// with the metrics under it.
#[derive(Default)]
struct Uses {
    selectors: Vec<(Option<String>, Vec<String>)>,
    groupings: Vec<(Vec<String>, Vec<String>)>,
}

fn walk(expr: &Expr, uses: &mut Uses) -> Vec<String> {
    match expr {
        Expr::VectorSelector(vs) => selector(vs, uses),
        Expr::MatrixSelector(ms) => selector(&ms.vs, uses),
        Expr::Aggregate(agg) => {
            let mut inner = walk(&agg.expr, uses);
            if let Some(param) = &agg.param {
                inner.extend(walk(param, uses));
            }
            if let Some(modifier) = &agg.modifier {
                uses.groupings.push((modifier.labels().labels.clone(), inner.clone()));
            }
            inner
        }
        Expr::Unary(u) => walk(&u.expr, uses),
        Expr::Binary(b) => {
            let mut names = walk(&b.lhs, uses);
            names.extend(walk(&b.rhs, uses));
            names
        }
        Expr::Paren(p) => walk(&p.expr, uses),
        Expr::Subquery(s) => walk(&s.expr, uses),
        Expr::Call(call) => call.args.args.iter().flat_map(|a| walk(a, uses)).collect(),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) => Vec::new(),
        Expr::Extension(_) => panic!("the parser makes no extension node"),
    }
}

fn selector(vs: &parser::VectorSelector, uses: &mut Uses) -> Vec<String> {
    let labels = vs.matchers.matchers.iter().map(|m| m.name.clone()).filter(|n| n != "__name__").collect();
    uses.selectors.push((vs.name.clone(), labels));
    vs.name.iter().cloned().collect()
}

/// Every metric of `expr` is exported, with the labels it is selected and grouped by; `where_` names it in
/// failures. Returns the metric names it uses.
fn check_expr(exported: &Exported, where_: &str, expr: &str) -> Vec<String> {
    let ast = parser::parse(expr).unwrap_or_else(|e| panic!("{where_}: not PromQL ({e}): {expr}"));
    let mut uses = Uses::default();
    let names = walk(&ast, &mut uses);
    assert!(!names.is_empty(), "{where_}: uses no metric: {expr}");
    for (name, labels) in &uses.selectors {
        let name = name.as_deref().unwrap_or_else(|| panic!("{where_}: a selector without a metric name: {expr}"));
        assert!(exported.has(name), "{where_}: {name} is not exported by the binary: {expr}");
        if let Some(known) = exported.labels(name) {
            for label in labels {
                assert!(known.contains(label), "{where_}: {name} has no label {label} (it has {known:?}): {expr}");
            }
        }
    }
    for (grouping, under) in &uses.groupings {
        let known: Option<BTreeSet<String>> = under
            .iter()
            .map(|n| exported.labels(n))
            .collect::<Option<Vec<_>>>()
            .map(|sets| sets.into_iter().flatten().collect());
        if let Some(mut known) = known {
            known.insert("le".to_owned());
            for label in grouping {
                assert!(known.contains(label), "{where_}: grouping by {label}, which {under:?} lack: {expr}");
            }
        }
    }
    names
}

#[test]
fn the_exported_names_come_from_the_registry() {
    let exported = Exported::from_the_binary();
    for name in [
        "ipvs_reconciler_build_info",
        "ipvs_reconciler_passes_total",
        "ipvs_reconciler_pass_duration_seconds_bucket",
        "ipvs_reconciler_health_checks_total",
        "ipvs_reconciler_health_targets",
        "ipvs_reconciler_leader",
    ] {
        assert!(exported.has(name), "{name} missing from {:?}", exported.0.keys());
    }
    let passes = exported.labels("ipvs_reconciler_passes_total").unwrap();
    assert!(passes.contains("trigger") && passes.contains("result"), "{passes:?}");
    assert!(exported.labels("ipvs_reconciler_build_info").unwrap().contains("version"));
}

#[test]
fn every_alert_uses_exported_metrics_and_tells_what_to_do() {
    let exported = Exported::from_the_binary();
    let docs = yaml_documents(&monitoring().join("prometheusrule.yaml"));
    assert_eq!(docs.len(), 1);
    let rule = &docs[0];
    assert_eq!(rule["kind"], "PrometheusRule");
    let mut alerts = BTreeSet::new();
    let mut used = BTreeSet::new();
    for group in rule["spec"]["groups"].as_sequence().unwrap() {
        for r in group["rules"].as_sequence().unwrap() {
            let alert = r["alert"].as_str().expect("alerting rules only").to_owned();
            let expr = r["expr"].as_str().unwrap();
            used.extend(check_expr(&exported, &alert, expr));
            assert!(r["for"].as_str().is_some_and(|f| !f.is_empty()), "{alert}: no `for` (a blip would page)");
            let severity = r["labels"]["severity"].as_str().unwrap_or_default();
            assert!(["critical", "warning", "info"].contains(&severity), "{alert}: severity {severity:?}");
            for annotation in ["summary", "description"] {
                let text = r["annotations"][annotation].as_str().unwrap_or_default();
                assert!(text.len() > 20, "{alert}: {annotation} too short to help: {text:?}");
            }
            assert!(alerts.insert(alert.clone()), "{alert} twice");
        }
    }
    // The conditions the issue asks to alert on, each by its metric.
    for metric in [
        "ipvs_reconciler_objects_not_admitted",
        "ipvs_reconciler_operations_total",
        "ipvs_reconciler_passes_total",
        "ipvs_reconciler_last_successful_pass_timestamp_seconds",
        "ipvs_reconciler_watch_errors_total",
        "ipvs_reconciler_services_without_healthy_backends",
        "ipvs_reconciler_sysctl_contradictions",
        "ipvs_reconciler_services_removed_by_others_total",
        "ipvs_reconciler_leader",
    ] {
        assert!(used.contains(metric), "no alert on {metric}; alerts: {alerts:?}");
    }
}

/// Every `expr` of the dashboard's panels (rows' collapsed panels too).
fn panel_exprs(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
    for panel in panels.as_array().into_iter().flatten() {
        let title = panel["title"].as_str().unwrap_or_default().to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            out.push((title.clone(), target["expr"].as_str().unwrap().to_owned()));
        }
        panel_exprs(&panel["panels"], out);
    }
}

/// Grafana's variables replaced by what they stand for, so that the expression parses as PromQL.
fn without_variables(expr: &str) -> String {
    let mut out = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m").replace("$__range", "1h");
    // Template variables are used in label values only ("$node"): any string does.
    while let Some(start) = out.find('$') {
        let end = out[start + 1..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '{' || c == '}'))
            .map_or(out.len(), |i| start + 1 + i);
        out.replace_range(start..end, "x");
    }
    out
}

#[test]
fn every_dashboard_query_uses_exported_metrics() {
    let exported = Exported::from_the_binary();
    let path = monitoring().join("dashboard.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(dashboard["uid"], "ipvs-reconciler");
    let mut exprs = Vec::new();
    panel_exprs(&dashboard["panels"], &mut exprs);
    assert!(exprs.len() > 10, "{exprs:?}");
    let mut used = BTreeSet::new();
    for (title, expr) in &exprs {
        used.extend(check_expr(&exported, title, &without_variables(expr)));
    }
    // Template variables: label_values(METRIC, LABEL).
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let Some(definition) = variable["definition"].as_str() else { continue };
        let inner = definition.strip_prefix("label_values(").and_then(|d| d.strip_suffix(')')).unwrap();
        let (metric, label) = inner.split_once(',').unwrap();
        let known = exported.labels(metric.trim()).unwrap_or_else(|| panic!("{definition}: not exported"));
        assert!(known.contains(label.trim()), "{definition}: no label {label}");
    }
    let mut ids = BTreeSet::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel id twice: {panel}");
        if panel["type"] != "row" {
            assert_eq!(panel["datasource"]["uid"], "${datasource}", "{}", panel["title"]);
        }
    }
    // Most of what the binary exports is on the dashboard.
    let families: BTreeSet<&String> =
        exported.0.keys().filter(|n| !n.ends_with("_sum") && !n.ends_with("_count")).collect();
    let missing: Vec<&&String> = families.iter().filter(|n| !used.contains(n.as_str())).collect();
    assert!(missing.len() <= 2, "not on the dashboard: {missing:?}");
}

#[test]
fn the_pod_monitor_scrapes_the_daemonset_port_and_the_component_stays_out_of_the_default_install() {
    let daemonset = yaml_documents(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/daemonset.yaml"));
    let daemonset = daemonset.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let pod = &daemonset["spec"]["template"];
    let monitor = &yaml_documents(&monitoring().join("podmonitor.yaml"))[0];
    assert_eq!(monitor["kind"], "PodMonitor");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][key], value, "the selector matches the agent pods");
    }
    let endpoint = &monitor["spec"]["podMetricsEndpoints"][0];
    let ports = pod["spec"]["containers"][0]["ports"].as_sequence().unwrap();
    assert!(ports.iter().any(|p| p["name"] == endpoint["port"]), "port {:?} is the agent's", endpoint["port"]);
    assert_eq!(endpoint["path"], "/metrics");
    let relabel = endpoint["relabelings"].as_sequence().unwrap();
    assert!(
        relabel.iter().any(|r| r["targetLabel"] == "node" && r["sourceLabels"][0] == "__meta_kubernetes_pod_node_name"),
        "the alerts name the node"
    );

    let component = &yaml_documents(&monitoring().join("kustomization.yaml"))[0];
    assert_eq!(component["kind"], "Component");
    assert_eq!(component["namespace"], "ipvs-system");
    assert_eq!(monitor["spec"]["namespaceSelector"]["matchNames"][0], "ipvs-system");
    let generator = &component["configMapGenerator"][0];
    assert_eq!(generator["options"]["labels"]["grafana_dashboard"], "1", "Grafana's sidecar label");
    let default = yaml_documents(&Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kustomization.yaml"));
    let default = serde_yaml::to_string(&default[0]).unwrap();
    assert!(!default.contains("monitoring"), "deploy/ must install without the Prometheus Operator's CRDs");
}
