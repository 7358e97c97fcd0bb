//! `status`: what a running `run` or `agent` says of every service and backend (its `/status`), as a table.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

use super::EXIT_OK;
use super::args::StatusArgs;
use crate::agent::board::{BackendStatus, StatusReport};

/// How long the whole request may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Fetches `/status` and prints it.
pub async fn status(args: &StatusArgs) -> Result<i32> {
    let body = tokio::time::timeout(TIMEOUT, fetch(&args.url))
        .await
        .with_context(|| format!("{}/status: no answer within {TIMEOUT:?}", args.url))??;
    if args.json {
        println!("{body}");
        return Ok(EXIT_OK);
    }
    let report: StatusReport =
        serde_json::from_str(&body).with_context(|| format!("{}/status: not a status document", args.url))?;
    print!("{}", render(&report, crate::clock::unix_seconds()));
    Ok(EXIT_OK)
}

async fn fetch(url: &str) -> Result<String> {
    let authority = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs are served by --listen"))?
        .trim_end_matches('/');
    let stream = tokio::net::TcpStream::connect(authority)
        .await
        .with_context(|| format!("connecting to {authority} (is `run --listen` or `agent` running there?)"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let driver = tokio::spawn(connection);
    let request = hyper::Request::get("/status").header("host", authority).body(Empty::<Bytes>::new())?;
    let response = sender.send_request(request).await.with_context(|| format!("{url}/status"))?;
    let code = response.status();
    let bytes = response.into_body().collect().await.with_context(|| format!("{url}/status: reading"))?.to_bytes();
    driver.abort();
    if !code.is_success() {
        bail!("{url}/status answered {code}");
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The table an operator reads: one line per backend under its service.
pub fn render(report: &StatusReport, now: u64) -> String {
    let mut rows: Vec<[String; 6]> =
        vec![["BACKEND", "WEIGHT", "HEALTH", "CHECKS OK/FAIL", "SINCE", "LAST ERROR"].map(str::to_owned)];
    let mut out = String::new();
    for service in &report.services {
        rows.push([
            format!("{}  ({})", service.service, service.object),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        for backend in &service.backends {
            rows.push(row(backend, now));
        }
    }
    // A service's line stands alone; the columns are as wide as the header and the backends need.
    let is_service = |i: usize, row: &[String; 6]| i > 0 && !row[0].starts_with("  ");
    let widths: Vec<usize> = (0..6)
        .map(|c| {
            let cells = rows.iter().enumerate().filter(|(i, r)| !is_service(*i, r));
            cells.map(|(_, r)| r[c].chars().count()).max().unwrap_or(0)
        })
        .collect();
    for (i, row) in rows.iter().enumerate() {
        let is_service = is_service(i, row);
        let mut line = String::new();
        if is_service {
            line.push_str(&row[0]);
        } else {
            for (c, cell) in row.iter().enumerate() {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if report.services.is_empty() {
        out.push_str("(no services)\n");
    }
    out
}

fn row(backend: &BackendStatus, now: u64) -> [String; 6] {
    let weight = match backend.effective_weight {
        Some(w) if w == backend.weight => w.to_string(),
        Some(w) => format!("{w} of {}", backend.weight),
        None => format!("- of {}", backend.weight),
    };
    let health = match (backend.sorry_server, backend.healthy) {
        (true, _) => "sorry server (in)".to_owned(),
        (false, None) => "not checked".to_owned(),
        (false, Some(true)) => "healthy".to_owned(),
        (false, Some(false)) => "UNHEALTHY".to_owned(),
    };
    let counts = match (backend.consecutive_ok, backend.consecutive_fail) {
        (Some(ok), Some(fail)) => format!("{ok}/{fail}"),
        _ => String::new(),
    };
    let since = backend.last_transition.map(|t| ago(now.saturating_sub(t))).unwrap_or_default();
    let check = backend.check.as_deref().map(|c| format!(" [{c}]")).unwrap_or_default();
    [
        format!("  {}{check}", backend.address),
        weight,
        health,
        counts,
        since,
        backend.last_error.clone().unwrap_or_default(),
    ]
}

fn ago(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s ago"),
        s if s < 7200 => format!("{}m ago", s / 60),
        s if s < 172_800 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::board::ServiceStatus;

    #[test]
    fn the_table_shows_each_backend_with_its_health_under_its_service() {
        let report = StatusReport {
            services: vec![ServiceStatus {
                service: "TCP 192.0.2.1:80".into(),
                object: "web.yaml#0 (default/web)".into(),
                backends: vec![
                    BackendStatus {
                        address: "10.0.0.1:8080".into(),
                        weight: 5,
                        effective_weight: Some(5),
                        check: Some("http 10.0.0.1:8080".into()),
                        healthy: Some(true),
                        consecutive_ok: Some(12),
                        consecutive_fail: Some(0),
                        last_error: None,
                        last_transition: None,
                        sorry_server: false,
                    },
                    BackendStatus {
                        address: "10.0.0.2:8080".into(),
                        weight: 5,
                        effective_weight: Some(0),
                        check: Some("http 10.0.0.2:8080".into()),
                        healthy: Some(false),
                        consecutive_ok: Some(0),
                        consecutive_fail: Some(4),
                        last_error: Some("connection refused".into()),
                        last_transition: Some(1_000),
                        sorry_server: false,
                    },
                ],
            }],
        };
        let table = render(&report, 1_042);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("BACKEND"), "{table}");
        assert_eq!(lines[1], "TCP 192.0.2.1:80  (web.yaml#0 (default/web))");
        assert!(lines[2].contains("10.0.0.1:8080 [http 10.0.0.1:8080]") && lines[2].contains("healthy"), "{table}");
        assert!(lines[3].contains("0 of 5") && lines[3].contains("UNHEALTHY"), "{table}");
        assert!(lines[3].contains("0/4") && lines[3].contains("42s ago") && lines[3].ends_with("connection refused"));
        assert_eq!(render(&StatusReport::default(), 0).lines().last(), Some("(no services)"));
    }
}
