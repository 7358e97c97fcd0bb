//! Probes against real servers that the tests start on loopback (127.0.0.1, port 0): every outcome is asserted as
//! a specific variant, so a probe that stops telling causes apart fails here.
//!
//! Only loopback is ever a target. A TCP connect timeout is made on loopback too, by a listener whose accept queue
//! is full (the kernel then drops new SYNs), not by a non-routable address.

mod dns;
mod grpc;
mod http;
mod https;
mod tcp;
mod udp;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::{TcpListener, UdpSocket};

use super::{Probe, ProbeError, run};

/// The timeout of probes that should succeed: generous, so that a slow CI machine does not fail them.
const GENEROUS: Duration = Duration::from_secs(5);

/// The timeout of probes that must time out: short, so the suite stays fast.
const SHORT: Duration = Duration::from_millis(300);

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A loopback TCP port that nothing listens on (bound, then released).
async fn closed_tcp_port() -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// A loopback UDP port that nothing listens on (bound, then released).
async fn closed_udp_port() -> SocketAddr {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    drop(socket);
    addr
}

/// A TCP server that accepts connections and never says anything (held open until the test ends).
async fn silent_tcp_server() -> SocketAddr {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// Runs `probe` and asserts it timed out, within a margin of the timeout: the whole probe is bounded by it.
async fn assert_times_out(probe: &Probe, target: SocketAddr) {
    let start = std::time::Instant::now();
    let result = run(probe, target, None, SHORT).await;
    assert!(matches!(result, Err(ProbeError::Timeout(t)) if t == SHORT), "{probe:?}: {result:?}");
    let elapsed = start.elapsed();
    assert!(elapsed < SHORT + Duration::from_secs(1), "{probe:?} took {elapsed:?}, beyond its timeout");
    if let Err(err) = result {
        assert_eq!(err.outcome_label(), "timeout");
    }
}

/// Runs `probe` and asserts the connection was refused.
async fn assert_refused(probe: &Probe, target: SocketAddr) {
    let result = run(probe, target, None, GENEROUS).await;
    match result {
        Err(err @ ProbeError::Refused) => {
            assert_eq!(err.outcome_label(), "refused");
            assert_eq!(err.to_string(), "connection refused");
        }
        other => panic!("{probe:?} against a closed port: {other:?}"),
    }
}

/// Runs `probe` and asserts it succeeded within the timeout.
async fn assert_ok(probe: &Probe, target: SocketAddr) -> Duration {
    match run(probe, target, None, GENEROUS).await {
        Ok(latency) => {
            assert!(latency < GENEROUS, "latency {latency:?}");
            latency
        }
        Err(err) => panic!("{probe:?} against {target}: {err}"),
    }
}
