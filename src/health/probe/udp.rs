//! UDP: one datagram out, one reply back that starts with the expected bytes.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::connect_udp;
use crate::health::error::ProbeError;

/// How much of a mismatched reply is shown in the error, in bytes.
const SHOWN_BYTES: usize = 16;

/// Sends `send` and compares the reply's first bytes with `expect_prefix`. The socket is connected, so a closed
/// port (ICMP port unreachable) comes back as [`ProbeError::Refused`] and a silent one as a timeout. Only the
/// prefix is received: a longer reply is truncated by the kernel, never buffered whole.
pub(super) async fn probe(
    send: &[u8],
    expect_prefix: &[u8],
    target: SocketAddr,
    source: Option<IpAddr>,
) -> Result<(), ProbeError> {
    let socket = connect_udp(target, source).await?;
    socket.send(send).await.map_err(|err| ProbeError::socket("send", err))?;
    let mut reply = vec![0u8; receive_len(expect_prefix)];
    let received = socket.recv(&mut reply).await.map_err(|err| ProbeError::socket("recv", err))?;
    verdict(&reply[..received], expect_prefix)
}

/// How much of a reply is received: enough for the prefix, and for what an error shows.
pub(super) fn receive_len(expect_prefix: &[u8]) -> usize {
    expect_prefix.len().max(SHOWN_BYTES)
}

/// The verdict on the received part of a reply (at most [`receive_len`] bytes).
pub(super) fn verdict(reply: &[u8], expect_prefix: &[u8]) -> Result<(), ProbeError> {
    if reply.starts_with(expect_prefix) {
        Ok(())
    } else {
        Err(ProbeError::UnexpectedReply(format!(
            "reply starts with {}, expected {}",
            hex(&reply[..reply.len().min(SHOWN_BYTES)]),
            hex(expect_prefix)
        )))
    }
}

/// Lower-case hex, as the API writes payloads (`send`, `expectPrefix`); `""` shows as `(empty)`.
fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "(empty)".to_owned();
    }
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, byte| {
        let _ = write!(out, "{byte:02x}");
        out
    })
}
