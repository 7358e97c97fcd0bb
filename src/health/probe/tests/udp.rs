//! UDP probes against an echo server on loopback.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use tokio::net::UdpSocket;

use super::*;

/// Echoes every datagram back to its sender.
async fn echo_server() -> SocketAddr {
    recording_echo_server().await.0
}

/// Echoes every datagram back to its sender, and records the senders.
async fn recording_echo_server() -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let log = peers.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((len, peer)) = socket.recv_from(&mut buf).await {
            log.lock().unwrap().push(peer);
            let _ = socket.send_to(&buf[..len], peer).await;
        }
    });
    (addr, peers)
}

/// Receives datagrams and never answers (kept open until the test ends).
async fn silent_server() -> (SocketAddr, UdpSocket) {
    let socket = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    (socket.local_addr().unwrap(), socket)
}

fn udp(send: &[u8], expect_prefix: &[u8]) -> Probe {
    Probe::Udp { send: send.to_vec(), expect_prefix: expect_prefix.to_vec(), silence_passes: false }
}

#[tokio::test]
async fn udp_reply_with_the_prefix_is_ok() {
    let addr = echo_server().await;
    assert_ok(&udp(b"ping", b"pi"), addr).await;
    assert_ok(&udp(b"ping", b"ping"), addr).await;
    assert_ok(&udp(b"ping", b""), addr).await;
    // A reply longer than the receive buffer is truncated, not refused: only the prefix counts.
    assert_ok(&udp(&[7u8; 2000], &[7u8; 3]), addr).await;
}

#[tokio::test]
async fn udp_reply_without_the_prefix_is_unexpected() {
    let addr = echo_server().await;
    for expect in [&b"pong"[..], b"pingpong"] {
        match run(&udp(b"ping", expect), addr, None, GENEROUS).await {
            Err(err @ ProbeError::UnexpectedReply(_)) => {
                assert_eq!(err.outcome_label(), "unexpected_reply");
                assert!(err.to_string().contains("reply starts with 70696e67"), "{err}");
            }
            other => panic!("{expect:?}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn udp_no_reply_times_out() {
    let (addr, _socket) = silent_server().await;
    assert_times_out(&udp(b"ping", b"ping"), addr).await;
}

#[tokio::test]
async fn udp_silence_passes_when_no_reply_is_required_but_a_closed_port_still_fails() {
    // keepalived's UDP_CHECK without require_reply: only an ICMP error fails.
    let quiet = Probe::Udp { send: b"ping".to_vec(), expect_prefix: Vec::new(), silence_passes: true };
    let (addr, _socket) = silent_server().await;
    let short = std::time::Duration::from_millis(300);
    assert!(run(&quiet, addr, None, short).await.is_ok(), "silence within the timeout passes");
    assert_ok(&quiet, echo_server().await).await;
    assert_refused(&quiet, closed_udp_port().await).await;
}

#[tokio::test]
async fn udp_closed_port_is_refused() {
    // The kernel answers with ICMP port unreachable, which a connected socket reports as ECONNREFUSED.
    assert_refused(&udp(b"ping", b"ping"), closed_udp_port().await).await;
}

#[tokio::test]
async fn udp_binds_the_source_address() {
    let (addr, peers) = recording_echo_server().await;
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
    run(&udp(b"ping", b"ping"), addr, Some(source), GENEROUS).await.unwrap();
    let peers = peers.lock().unwrap().clone();
    assert_eq!(peers.iter().map(SocketAddr::ip).collect::<Vec<_>>(), vec![source]);
}
