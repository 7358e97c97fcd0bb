//! The probes' response parsers fed with bytes instead of a backend: the same code a probe runs once its
//! connection is open (hyper's HTTP/1.1 and HTTP/2 clients, tonic's health client, hickory's DNS decoder, the UDP
//! prefix check), over a stream that answers with given bytes. For the fuzz targets (`fuzz/fuzz_targets/probe_*`);
//! built only with the `testing` feature, not part of the API.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{dns, grpc, http, udp};
use crate::health::check::HttpProbe;
use crate::health::error::ProbeError;

/// The target the replayed probes pretend to talk to (it only shows in the `Host` header and the gRPC origin).
const TARGET: &str = "192.0.2.1:8080";

/// A connection whose peer sends `reply`, then closes; whatever is written to it is accepted and dropped.
#[derive(Debug)]
pub struct Scripted {
    reply: Vec<u8>,
    read: usize,
}

impl Scripted {
    /// A stream that yields `reply`, then end of file.
    pub fn new(reply: &[u8]) -> Self {
        Scripted { reply: reply.to_vec(), read: 0 }
    }
}

impl AsyncRead for Scripted {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let rest = self.reply.get(self.read..).unwrap_or_default();
        let n = rest.len().min(buf.remaining());
        buf.put_slice(&rest[..n]);
        self.read += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn target() -> SocketAddr {
    SocketAddr::from(([192, 0, 2, 1], 8080))
}

/// The verdict of the HTTP probe `probe` on a server that answers `response`. Needs a tokio runtime.
pub async fn http(response: &[u8], probe: &HttpProbe) -> Result<(), ProbeError> {
    let request = http::request(probe, target(), 80)?;
    http::exchange(Scripted::new(response), request, probe).await
}

/// The verdict of the gRPC probe for `service` on a server that answers `response` (HTTP/2 frames, the server's
/// preface first). Needs a tokio runtime.
pub async fn grpc(response: &[u8], service: Option<&str>) -> Result<(), ProbeError> {
    let origin = format!("http://{TARGET}")
        .parse()
        .map_err(|err| ProbeError::InvalidCheck(format!("gRPC origin for {TARGET}: {err}")))?;
    grpc::exchange(Scripted::new(response), service, origin).await
}

/// The verdict of the DNS probe on `reply` to its query of message id `id`.
pub fn dns(reply: &[u8], id: u16) -> Result<(), ProbeError> {
    dns::verdict(reply, id)
}

/// The verdict of the UDP probe expecting `expect_prefix` on the datagram `reply`, of which it receives only what
/// the probe's buffer holds (the kernel truncates the rest).
pub fn udp(reply: &[u8], expect_prefix: &[u8]) -> Result<(), ProbeError> {
    let received = &reply[..reply.len().min(udp::receive_len(expect_prefix))];
    udp::verdict(received, expect_prefix)
}
