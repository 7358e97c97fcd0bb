//! HTTP and HTTPS: one HTTP/1.1 request on a fresh connection (hyper's client connection, over a socket we
//! connected), the status checked against the accepted ranges, the body searched only when asked to.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HOST, USER_AGENT};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use itertools::Itertools;
use tokio::io::{AsyncRead, AsyncWrite};

use super::tls::{self, TlsConfigs};
use super::{connect_tcp, drive};
use crate::health::check::{HttpMethod, HttpProbe, HttpsProbe, MAX_BODY_BYTES};
use crate::health::error::ProbeError;

/// The `User-Agent` of every HTTP probe, so that backends can tell checks from traffic in their logs.
pub(super) const USER_AGENT_VALUE: &str = "ipvs-reconciler-health";

/// An HTTP probe over plain TCP.
pub(super) async fn probe_plain(
    probe: &HttpProbe,
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<(), ProbeError> {
    let request = request(probe, target, 80)?;
    let stream = connect_tcp(target, source).await?;
    exchange(stream, request, probe).await
}

/// An HTTP probe over TLS.
pub(super) async fn probe_tls(
    probe: &HttpsProbe,
    configs: &TlsConfigs,
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<(), ProbeError> {
    let request = request(&probe.http, target, 443)?;
    let server_name = tls::server_name(probe.server_name.as_deref(), probe.http.host.as_deref(), target)?;
    let stream = connect_tcp(target, source).await?;
    let stream = configs.connect(stream, server_name, probe.insecure_skip_verify).await?;
    exchange(stream, request, &probe.http).await
}

/// The request: built before connecting, so that a definition that cannot be sent never opens a connection.
/// `Connection: close` tells the server this connection carries one request; the probe closes it anyway.
pub(super) fn request(
    probe: &HttpProbe,
    target: SocketAddr,
    default_port: u16,
) -> Result<Request<Empty<Bytes>>, ProbeError> {
    if !probe.path.starts_with('/') {
        return Err(ProbeError::InvalidCheck(format!("HTTP path {:?} does not start with '/'", probe.path)));
    }
    if probe.method == HttpMethod::Head && probe.expect_body.is_some() {
        return Err(ProbeError::InvalidCheck("a HEAD request has no body to look for expect_body in".to_owned()));
    }
    let host = match &probe.host {
        Some(host) => host.clone(),
        None => default_host(target, default_port),
    };
    let method = match probe.method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Head => Method::HEAD,
    };
    Request::builder()
        .method(method)
        .uri(probe.path.as_str())
        .header(HOST, host)
        .header(USER_AGENT, USER_AGENT_VALUE)
        .header(CONNECTION, "close")
        .body(Empty::new())
        .map_err(|err| ProbeError::InvalidCheck(format!("HTTP request for {:?}: {err}", probe.path)))
}

/// The `Host` header when none is configured: the target's address, its port left out when it is the scheme's
/// default (as a browser would send it).
fn default_host(target: SocketAddr, default_port: u16) -> String {
    match target {
        SocketAddr::V4(v4) if v4.port() == default_port => v4.ip().to_string(),
        SocketAddr::V6(v6) if v6.port() == default_port => format!("[{}]", v6.ip()),
        _ => target.to_string(),
    }
}

/// Sends `request` over `io` and checks the response.
pub(super) async fn exchange<S>(io: S, request: Request<Empty<Bytes>>, probe: &HttpProbe) -> Result<(), ProbeError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(io)).await.map_err(ProbeError::Http)?;
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(ProbeError::Http)?;
        check_response(response, probe).await
    };
    drive(connection, exchange).await
}

/// The status first (a bad status is reported without reading the body), then the body, only when it must
/// contain something and only up to [`MAX_BODY_BYTES`].
async fn check_response(response: Response<Incoming>, probe: &HttpProbe) -> Result<(), ProbeError> {
    let status = response.status().as_u16();
    if !probe.accepts(status) {
        return Err(ProbeError::BadStatus { got: status, expected: probe.expect_status.iter().join(",") });
    }
    let Some(needle) = probe.expect_body.as_deref() else { return Ok(()) };
    let needle = needle.as_bytes();
    if needle.is_empty() {
        return Ok(());
    }
    let mut body = response.into_body();
    let mut seen: Vec<u8> = Vec::new();
    while seen.len() < MAX_BODY_BYTES {
        let Some(frame) = body.frame().await else { break };
        let Ok(data) = frame.map_err(ProbeError::Http)?.into_data() else { continue };
        // Search only where a match can end in the new bytes: the tail of what was seen plus the new data.
        let search_from = seen.len().saturating_sub(needle.len().saturating_sub(1));
        let room = MAX_BODY_BYTES - seen.len();
        seen.extend_from_slice(&data[..data.len().min(room)]);
        if contains(&seen[search_from..], needle) {
            return Ok(());
        }
    }
    Err(ProbeError::BodyMismatch { expected: String::from_utf8_lossy(needle).into_owned(), read: seen.len() })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_host_leaves_out_the_default_port() {
        assert_eq!(default_host("10.0.0.1:80".parse().unwrap(), 80), "10.0.0.1");
        assert_eq!(default_host("10.0.0.1:8080".parse().unwrap(), 80), "10.0.0.1:8080");
        assert_eq!(default_host("[2001:db8::1]:443".parse().unwrap(), 443), "[2001:db8::1]");
        assert_eq!(default_host("[2001:db8::1]:8443".parse().unwrap(), 443), "[2001:db8::1]:8443");
    }

    #[test]
    fn requests_carry_host_agent_and_close() {
        let probe = HttpProbe::new("/healthz?full=1").with_method(HttpMethod::Head);
        let request = request(&probe, "10.0.0.1:8080".parse().unwrap(), 80).unwrap();
        assert_eq!(request.method(), Method::HEAD);
        assert_eq!(request.uri(), "/healthz?full=1");
        assert_eq!(request.headers()[HOST], "10.0.0.1:8080");
        assert_eq!(request.headers()[USER_AGENT], USER_AGENT_VALUE);
        assert_eq!(request.headers()[CONNECTION], "close");
    }

    #[test]
    fn definitions_that_cannot_be_sent_are_invalid_checks() {
        let target = "10.0.0.1:80".parse().unwrap();
        for probe in [
            HttpProbe::new("healthz"),
            HttpProbe::new("/a b"),
            HttpProbe::new("/").with_host("bad\nhost"),
            HttpProbe::new("/").with_method(HttpMethod::Head).with_body("ok"),
        ] {
            assert!(matches!(request(&probe, target, 80), Err(ProbeError::InvalidCheck(_))), "{probe:?}");
        }
    }

    #[test]
    fn contains_finds_substrings() {
        assert!(contains(b"status: ok\n", b"ok"));
        assert!(!contains(b"status: ko\n", b"ok"));
        assert!(!contains(b"o", b"ok"));
    }
}
