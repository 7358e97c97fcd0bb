//! gRPC probes against tonic-health's own server, served over HTTP/2 (h2c) on loopback.

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

use super::*;

/// A health server: the server as a whole SERVING (tonic-health's default), `svc.up` SERVING, `svc.down`
/// NOT_SERVING, `svc.unknown` UNKNOWN; any other name is not registered.
async fn grpc_server() -> SocketAddr {
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter.set_service_status("svc.up", ServingStatus::Serving).await;
    reporter.set_service_status("svc.down", ServingStatus::NotServing).await;
    reporter.set_service_status("svc.unknown", ServingStatus::Unknown).await;
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _reporter = reporter;
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn grpc(service: Option<&str>) -> Probe {
    Probe::Grpc { service: service.map(str::to_owned) }
}

#[tokio::test]
async fn grpc_serving_is_ok() {
    let addr = grpc_server().await;
    assert_ok(&grpc(None), addr).await;
    assert_ok(&grpc(Some("svc.up")), addr).await;
}

#[tokio::test]
async fn grpc_not_serving_and_unknown_fail() {
    let addr = grpc_server().await;
    for (service, status) in [("svc.down", "NOT_SERVING"), ("svc.unknown", "UNKNOWN")] {
        match run(&grpc(Some(service)), addr, None, GENEROUS).await {
            Err(err @ ProbeError::GrpcNotServing(_)) => {
                assert_eq!(err.outcome_label(), "grpc_not_serving");
                assert_eq!(err.to_string(), format!("gRPC health status {status}"));
            }
            other => panic!("{service}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn grpc_unregistered_service_fails_with_not_found() {
    let addr = grpc_server().await;
    match run(&grpc(Some("svc.nope")), addr, None, GENEROUS).await {
        Err(err @ ProbeError::GrpcStatus { .. }) => {
            assert_eq!(err.outcome_label(), "grpc_status");
            assert!(matches!(&err, ProbeError::GrpcStatus { code, .. } if code == "NotFound"), "{err}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn grpc_against_an_http1_server_fails() {
    let (addr, _log) = super::http::http_server().await;
    let result = run(&grpc(None), addr, None, GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::Http(_))), "{result:?}");
}

#[tokio::test]
async fn grpc_server_that_never_answers_times_out() {
    assert_times_out(&grpc(None), silent_tcp_server().await).await;
}

#[tokio::test]
async fn grpc_closed_port_is_refused() {
    assert_refused(&grpc(None), closed_tcp_port().await).await;
}
