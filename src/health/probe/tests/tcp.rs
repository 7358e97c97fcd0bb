//! TCP probes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::*;

#[tokio::test]
async fn tcp_listener_is_ok() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    assert_ok(&Probe::Tcp, listener.local_addr().unwrap()).await;
}

#[tokio::test]
async fn tcp_closed_port_is_refused() {
    assert_refused(&Probe::Tcp, closed_tcp_port().await).await;
}

#[tokio::test]
async fn tcp_full_accept_queue_times_out() {
    // A listener that never accepts, its queue filled: Linux drops further SYNs, so a connect hangs as it would
    // towards a host that does not answer.
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((LOCALHOST, 0).into()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut queued = Vec::new();
    let mut full = false;
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await {
            Ok(stream) => queued.push(stream.unwrap()),
            Err(_) => {
                full = true;
                break;
            }
        }
    }
    assert!(full, "the accept queue never filled after {} connections", queued.len());
    assert_times_out(&Probe::Tcp, addr).await;
}

#[tokio::test]
async fn tcp_binds_the_source_address() {
    // All of 127.0.0.0/8 is local on Linux: a probe from 127.0.0.2 arrives from 127.0.0.2.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let target = listener.local_addr().unwrap();
    let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let (probed, accepted) = tokio::join!(run(&Probe::Tcp, target, Some(source), GENEROUS), listener.accept());
    probed.unwrap();
    assert_eq!(accepted.unwrap().1.ip(), source);
}

#[tokio::test]
async fn tcp_source_of_the_other_family_is_an_invalid_check() {
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let result =
        run(&Probe::Tcp, listener.local_addr().unwrap(), Some(IpAddr::V6(Ipv6Addr::LOCALHOST)), GENEROUS).await;
    assert!(matches!(result, Err(ProbeError::InvalidCheck(_))), "{result:?}");
}

#[tokio::test]
async fn tcp_source_not_on_this_host_is_a_bind_error() {
    // Binding fails locally (EADDRNOTAVAIL): no packet leaves, and the error names the operation.
    let listener = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let not_local = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let result = run(&Probe::Tcp, listener.local_addr().unwrap(), Some(not_local), GENEROUS).await;
    match result {
        Err(err @ ProbeError::Io { op: "bind", .. }) => assert_eq!(err.outcome_label(), "io"),
        other => panic!("{other:?}"),
    }
}
