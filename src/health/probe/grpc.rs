//! gRPC: the standard `grpc.health.v1.Health/Check` (tonic-health's generated client) over plaintext HTTP/2
//! (hyper's client connection, over a socket we connected). Only `SERVING` is healthy.
//!
//! tonic's own transport (`Channel`) is not used: it would connect by itself (no source address without a custom
//! connector), pool and reconnect, and bring tower's balancing layers; a probe needs one request on one fresh
//! connection, which hyper's connection API gives directly.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper::{Request, Response, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::{connect_tcp, drive};
use crate::health::error::ProbeError;

/// Asks `target` about `service` (`None`: the server as a whole, the empty service name).
pub(super) async fn probe(service: Option<&str>, target: SocketAddr, source: Option<IpAddr>) -> Result<(), ProbeError> {
    let origin: Uri = format!("http://{target}")
        .parse()
        .map_err(|err| ProbeError::InvalidCheck(format!("gRPC origin for {target}: {err}")))?;
    let stream = connect_tcp(target, source).await?;
    exchange(stream, service, origin).await
}

/// The health check call over `io`, a connected stream to the server at `origin`.
pub(super) async fn exchange<S>(io: S, service: Option<&str>, origin: Uri) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let request = HealthCheckRequest { service: service.unwrap_or_default().to_owned() };
    let (sender, connection) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .map_err(ProbeError::Http)?;
    let mut client = HealthClient::with_origin(OneConnection(sender), origin);
    let exchange = async move {
        let response = client.check(request).await.map_err(grpc_status)?;
        check_status(response.into_inner().status)
    };
    drive(connection, exchange).await
}

/// A failed call. tonic reports transport failures as a status whose message is generic ("connection error");
/// the cause it keeps as the source is added.
fn grpc_status(status: tonic::Status) -> ProbeError {
    let mut message = status.message().to_owned();
    if let Some(cause) = std::error::Error::source(&status) {
        message = format!("{message}: {cause}");
    }
    ProbeError::GrpcStatus { code: format!("{:?}", status.code()), message }
}

/// The verdict on the `status` field of a `HealthCheckResponse`.
fn check_status(status: i32) -> Result<(), ProbeError> {
    match ServingStatus::try_from(status) {
        Ok(ServingStatus::Serving) => Ok(()),
        Ok(other) => Err(ProbeError::GrpcNotServing(other.as_str_name().to_owned())),
        Err(_) => Err(ProbeError::GrpcNotServing(format!("unknown status {status}"))),
    }
}

/// One HTTP/2 connection as the service tonic's client calls: requests go out on it as they come, and when it
/// closes, calls fail (nothing reconnects).
struct OneConnection(SendRequest<Body>);

impl Service<Request<Body>> for OneConnection {
    type Response = Response<Incoming>;
    type Error = hyper::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, hyper::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), hyper::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        Box::pin(self.0.send_request(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_serving_is_healthy() {
        assert!(check_status(ServingStatus::Serving as i32).is_ok());
        for (status, name) in [
            (ServingStatus::NotServing as i32, "NOT_SERVING"),
            (ServingStatus::Unknown as i32, "UNKNOWN"),
            (ServingStatus::ServiceUnknown as i32, "SERVICE_UNKNOWN"),
            (42, "unknown status 42"),
        ] {
            match check_status(status) {
                Err(ProbeError::GrpcNotServing(got)) => assert_eq!(got, name),
                other => panic!("status {status}: {other:?}"),
            }
        }
    }
}
