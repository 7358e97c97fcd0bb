//! Running one probe against one target: a fresh connection (or socket) every time, bound to the optional source
//! address, the whole exchange under one timeout.
//!
//! Each protocol lives in its own file and uses a kept library for its wire format: hyper for HTTP/1.1 and HTTP/2,
//! rustls (ring provider) through tokio-rustls for TLS, hickory-proto for DNS messages, tonic-health's generated
//! client for gRPC. The sockets are ours (tokio's `TcpSocket` / `UdpSocket`), so that binding the source address
//! and the timeout stay in one place instead of in each library's connector.

mod dns;
mod grpc;
mod http;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub mod replay;
mod tcp;
mod tls;
mod udp;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::FutureExt;
use rustls::RootCertStore;
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::time::Instant;

use super::check::Probe;
use super::error::ProbeError;

/// Runs probes. Holds what is expensive to build and the same for every probe: the TLS client configurations
/// (the node's trust store is read once, not per probe). Cheap to clone; one is shared by all checks.
#[derive(Clone)]
pub struct Prober {
    tls: Arc<tls::TlsConfigs>,
}

impl Prober {
    /// A prober that verifies certificates against the node's trust store (the system's CA bundle, as OpenSSL
    /// finds it). A trust store that cannot be read is logged and leaves verified HTTPS probes failing with an
    /// unknown issuer, never passing.
    pub fn new() -> Self {
        Prober { tls: Arc::new(tls::TlsConfigs::new(tls::native_roots())) }
    }

    /// A prober that trusts exactly `roots` (a private CA; tests).
    pub fn with_roots(roots: RootCertStore) -> Self {
        Prober { tls: Arc::new(tls::TlsConfigs::new(roots)) }
    }

    /// The prober [`run`] uses, built on first use.
    pub fn shared() -> &'static Prober {
        static SHARED: OnceLock<Prober> = OnceLock::new();
        SHARED.get_or_init(Prober::new)
    }

    /// Runs `probe` against `target` from `source` (the kernel's choice when `None`) and returns how long it took.
    ///
    /// The whole probe — connect, TLS handshake, request, reply and body read — is bounded by `timeout`, so a slow
    /// backend costs at most one timeout per probe and probes cannot pile up behind it. Every probe opens its own
    /// connection and closes it before returning: a health check must exercise what a new client would get, not a
    /// pooled connection that was accepted before the backend broke.
    pub async fn run(
        &self,
        probe: &Probe,
        target: SocketAddr,
        source: Option<IpAddr>,
        timeout: Duration,
    ) -> Result<Duration, ProbeError> {
        let start = Instant::now();
        match tokio::time::timeout(timeout, self.exchange(probe, target, source)).await {
            Ok(result) => result.map(|()| start.elapsed()),
            // A UDP service that answers nothing passes when silence is what it is expected to say; an ICMP error
            // within the timeout has already failed the exchange above.
            Err(_elapsed) if matches!(probe, Probe::Udp { silence_passes: true, .. }) => Ok(start.elapsed()),
            Err(_elapsed) => Err(ProbeError::Timeout(timeout)),
        }
    }

    /// [`run`](Self::run) without the timeout and without timing itself, for a caller that does both: the
    /// scheduler keeps every probe's deadline in its own queue instead of a timer per probe.
    pub async fn exchange(&self, probe: &Probe, target: SocketAddr, source: Option<IpAddr>) -> Result<(), ProbeError> {
        // The protocol exchanges are boxed: their state machines (TLS, HTTP/2) reach kilobytes, and unboxed they
        // would make every probe's task that large, a TCP check's included, copied at each of thousands of spawns
        // a second.
        match probe {
            Probe::Tcp => tcp::probe(target, source).await,
            Probe::Http(http) => Box::pin(http::probe_plain(http, target, source)).await,
            Probe::Https(https) => Box::pin(http::probe_tls(https, &self.tls, target, source)).await,
            Probe::Udp { send, expect_prefix, .. } => Box::pin(udp::probe(send, expect_prefix, target, source)).await,
            Probe::Dns { query, query_type } => Box::pin(dns::probe(query, *query_type, target, source)).await,
            Probe::Grpc { service } => Box::pin(grpc::probe(service.as_deref(), target, source)).await,
        }
    }
}

impl Default for Prober {
    fn default() -> Self {
        Prober::new()
    }
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober").finish_non_exhaustive()
    }
}

/// Runs `probe` against `target` with the [shared](Prober::shared) prober; see [`Prober::run`].
pub async fn run(
    probe: &Probe,
    target: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<Duration, ProbeError> {
    Prober::shared().run(probe, target, source, timeout).await
}

/// The source address refused when its family is not the target's: the kernel would fail the bind or connect
/// with a less telling error.
fn check_family(source: IpAddr, target: SocketAddr) -> Result<(), ProbeError> {
    if source.is_ipv4() == target.is_ipv4() {
        Ok(())
    } else {
        Err(ProbeError::InvalidCheck(format!("source address {source} is not of the family of target {target}")))
    }
}

/// A new TCP connection to `target`, bound to `source` first when given.
async fn connect_tcp(target: SocketAddr, source: Option<IpAddr>) -> Result<TcpStream, ProbeError> {
    let socket = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
        .map_err(|err| ProbeError::Io { op: "socket", source: err })?;
    if let Some(source) = source {
        check_family(source, target)?;
        socket.bind(SocketAddr::new(source, 0)).map_err(|err| ProbeError::Io { op: "bind", source: err })?;
    }
    socket.connect(target).await.map_err(|err| ProbeError::socket("connect", err))
}

/// A UDP socket connected to `target` (so that an ICMP port unreachable comes back as ECONNREFUSED, and only the
/// target's datagrams are received), bound to `source` when given, else to the family's unspecified address.
async fn connect_udp(target: SocketAddr, source: Option<IpAddr>) -> Result<UdpSocket, ProbeError> {
    let local = match source {
        Some(source) => {
            check_family(source, target)?;
            source
        }
        None if target.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket =
        UdpSocket::bind(SocketAddr::new(local, 0)).await.map_err(|err| ProbeError::Io { op: "bind", source: err })?;
    socket.connect(target).await.map_err(|err| ProbeError::socket("connect", err))?;
    Ok(socket)
}

/// Drives a hyper client connection and the exchange made over it in the same task, so that nothing outlives the
/// probe (no spawned connection task to leak on timeout). The exchange's result wins; a connection error is
/// reported only when the exchange failed too (it then tells more than the exchange's "connection closed", or
/// tonic's "connection error").
async fn drive<T>(
    connection: impl Future<Output = Result<(), hyper::Error>>,
    exchange: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    tokio::pin!(connection);
    tokio::pin!(exchange);
    tokio::select! {
        biased;
        result = &mut exchange => result.map_err(|err| match (&mut connection).now_or_never() {
            Some(Err(broken)) => ProbeError::Http(broken),
            _ => err,
        }),
        ended = &mut connection => match ended {
            // The connection finished (the server closed after its reply): what it delivered is still queued
            // for the exchange.
            Ok(()) => exchange.await,
            Err(err) => exchange.await.map_err(|_| ProbeError::Http(err)),
        },
    }
}

#[cfg(test)]
mod tests;
