//! HTTP probes against an axum server on loopback that records what it was sent.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;
use crate::health::{HttpMethod, HttpProbe, MAX_BODY_BYTES, StatusRange};

/// What one request carried.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub method: Method,
    pub path: String,
    pub host: Option<String>,
    pub user_agent: Option<String>,
    pub connection: Option<String>,
}

/// Requests the server received, in order.
pub(super) type Log = Arc<Mutex<Vec<Seen>>>;

/// The body of `/ok`.
pub(super) const OK_BODY: &str = "status: ok";

/// An HTTP/1.1 server on loopback:
/// - `/ok`: 200 with [`OK_BODY`];
/// - `/status/{code}`: that status;
/// - `/slow`: 200 after 5 s;
/// - `/big`: 200 with 128 KiB of `x`, then `needle-late`; `needle-early` at its start;
/// - anything else: 404.
pub(super) async fn http_server() -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let app = Router::new().fallback(respond).with_state(log.clone());
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, log)
}

async fn respond(State(log): State<Log>, method: Method, uri: Uri, headers: HeaderMap) -> (StatusCode, String) {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
    log.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        host: header("host"),
        user_agent: header("user-agent"),
        connection: header("connection"),
    });
    let path = uri.path();
    if path == "/ok" {
        (StatusCode::OK, OK_BODY.to_owned())
    } else if let Some(code) = path.strip_prefix("/status/") {
        (code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).unwrap(), format!("status {code}"))
    } else if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(5)).await;
        (StatusCode::OK, OK_BODY.to_owned())
    } else if path == "/big" {
        (StatusCode::OK, format!("needle-early{}needle-late", "x".repeat(128 * 1024)))
    } else {
        (StatusCode::NOT_FOUND, "not found".to_owned())
    }
}

fn http(probe: HttpProbe) -> Probe {
    Probe::Http(probe)
}

fn range(first: u16, last: u16) -> StatusRange {
    StatusRange::new(first, last).unwrap()
}

#[tokio::test]
async fn http_2xx_is_ok_and_the_request_is_as_documented() {
    let (addr, log) = http_server().await;
    assert_ok(&http(HttpProbe::new("/ok")), addr).await;
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(seen[0].path, "/ok");
    assert_eq!(seen[0].host.as_deref(), Some(addr.to_string().as_str()), "the default Host is the target's address");
    assert_eq!(seen[0].user_agent.as_deref(), Some("ipvs-reconciler-health"));
    assert_eq!(seen[0].connection.as_deref(), Some("close"));
}

#[tokio::test]
async fn http_sends_the_configured_host_header() {
    let (addr, log) = http_server().await;
    assert_ok(&http(HttpProbe::new("/ok").with_host("shop.example")), addr).await;
    assert_eq!(log.lock().unwrap()[0].host.as_deref(), Some("shop.example"));
}

#[tokio::test]
async fn http_wrong_status_is_bad_status() {
    let (addr, _log) = http_server().await;
    let result = run(&http(HttpProbe::new("/status/503")), addr, None, GENEROUS).await;
    match result {
        Err(err @ ProbeError::BadStatus { got: 503, .. }) => {
            assert_eq!(err.outcome_label(), "bad_status");
            assert_eq!(err.to_string(), "HTTP status 503, expected 200-299");
        }
        other => panic!("{other:?}"),
    }
    let result = run(&http(HttpProbe::new("/missing")), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::BadStatus { got: 404, .. })), "{result:?}");
}

#[tokio::test]
async fn http_status_ranges_accept_exactly_their_codes() {
    let (addr, _log) = http_server().await;
    let ranges = vec![range(301, 302), StatusRange::single(404).unwrap()];
    let probe = |path: &str| http(HttpProbe::new(path).with_status(ranges.clone()));
    assert_ok(&probe("/status/301"), addr).await;
    assert_ok(&probe("/status/302"), addr).await;
    assert_ok(&probe("/status/404"), addr).await;
    for (path, got) in [("/status/303", 303), ("/ok", 200), ("/status/500", 500)] {
        match run(&probe(path), addr, None, GENEROUS).await {
            Err(ProbeError::BadStatus { got: status, expected }) => {
                assert_eq!(status, got);
                assert_eq!(expected, "301-302,404");
            }
            other => panic!("{path}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn http_body_found_is_ok() {
    let (addr, _log) = http_server().await;
    assert_ok(&http(HttpProbe::new("/ok").with_body("ok")), addr).await;
    assert_ok(&http(HttpProbe::new("/big").with_body("needle-early")), addr).await;
}

#[tokio::test]
async fn http_wrong_body_is_body_mismatch() {
    let (addr, _log) = http_server().await;
    let result = run(&http(HttpProbe::new("/ok").with_body("healthy")), addr, None, GENEROUS).await;
    match result {
        Err(err @ ProbeError::BodyMismatch { .. }) => {
            assert_eq!(err.outcome_label(), "body_mismatch");
            assert!(
                matches!(&err, ProbeError::BodyMismatch { expected, read } if expected == "healthy" && *read == OK_BODY.len())
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn http_body_is_searched_only_within_the_bound() {
    let (addr, _log) = http_server().await;
    let result = run(&http(HttpProbe::new("/big").with_body("needle-late")), addr, None, GENEROUS).await;
    assert!(
        matches!(result, Err(ProbeError::BodyMismatch { read, .. }) if read == MAX_BODY_BYTES),
        "the needle lies beyond {MAX_BODY_BYTES} bytes: {result:?}"
    );
}

#[tokio::test]
async fn http_bad_status_is_reported_before_the_body() {
    let (addr, _log) = http_server().await;
    let result = run(&http(HttpProbe::new("/status/500").with_body("status 500")), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::BadStatus { got: 500, .. })), "{result:?}");
}

#[tokio::test]
async fn http_head_is_ok_and_sent_as_head() {
    let (addr, log) = http_server().await;
    assert_ok(&http(HttpProbe::new("/ok").with_method(HttpMethod::Head)), addr).await;
    let result = run(&http(HttpProbe::new("/status/500").with_method(HttpMethod::Head)), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::BadStatus { got: 500, .. })), "{result:?}");
    let seen = log.lock().unwrap().clone();
    assert!(seen.iter().all(|s| s.method == Method::HEAD), "{seen:?}");
}

#[tokio::test]
async fn http_slow_response_times_out() {
    let (addr, _log) = http_server().await;
    assert_times_out(&http(HttpProbe::new("/slow")), addr).await;
}

#[tokio::test]
async fn http_server_that_never_answers_times_out() {
    assert_times_out(&http(HttpProbe::new("/ok")), silent_tcp_server().await).await;
}

#[tokio::test]
async fn http_closed_port_is_refused() {
    assert_refused(&http(HttpProbe::new("/ok")), closed_tcp_port().await).await;
}

/// A server that answers every connection with `reply` and closes.
async fn canned_server(reply: &'static [u8]) -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(reply).await;
            let _ = stream.shutdown().await;
        }
    });
    addr
}

#[tokio::test]
async fn http_reply_that_is_not_http_is_an_http_error() {
    for reply in [&b"SSH-2.0-OpenSSH_9.2\r\n"[..], b""] {
        let addr = canned_server(reply).await;
        match run(&http(HttpProbe::new("/ok")), addr, None, GENEROUS).await {
            Err(err @ ProbeError::Http(_)) => {
                assert_eq!(err.outcome_label(), "http");
                assert!(err.to_string().starts_with("HTTP: "), "{err}");
            }
            other => panic!("reply {reply:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn http_invalid_definition_sends_nothing() {
    let (addr, log) = http_server().await;
    let result = run(&http(HttpProbe::new("no-slash")), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::InvalidCheck(_))), "{result:?}");
    assert!(log.lock().unwrap().is_empty());
}
