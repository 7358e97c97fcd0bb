//! TCP: the backend accepts a connection.

use std::net::{IpAddr, SocketAddr};

use super::connect_tcp;
use crate::health::error::ProbeError;

/// Connects and closes at once. The close is an abortive one (`SO_LINGER` 0, a RST instead of a FIN), as HAProxy
/// does for its plain TCP checks: the handshake is all a TCP check needs, and a graceful close would leave a
/// TIME_WAIT entry on the node for every probe (at 10,000 backends a second, more than the kernel keeps).
pub(super) async fn probe(target: SocketAddr, source: Option<IpAddr>) -> Result<(), ProbeError> {
    let stream = connect_tcp(target, source).await?;
    stream.set_zero_linger().map_err(|err| ProbeError::Io { op: "setsockopt SO_LINGER", source: err })?;
    drop(stream);
    Ok(())
}
