//! Global IPVS settings: version info, timeouts and connection-sync daemons.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// `GET_INFO`: the kernel's IPVS version and connection table size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Info {
    /// Version code, e.g. 0x010201 for 1.2.1.
    pub version: u32,
    /// Number of buckets of the connection hash table.
    pub conn_table_size: u32,
}

impl Info {
    /// The version as `major.minor.patch`.
    pub fn version_string(&self) -> String {
        format!("{}.{}.{}", (self.version >> 16) & 0xff, (self.version >> 8) & 0xff, self.version & 0xff)
    }
}

/// Connection timeouts of the namespace, in seconds. On write, 0 leaves a value unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// TCP established.
    pub tcp: u32,
    /// TCP after FIN.
    pub tcp_fin: u32,
    /// UDP.
    pub udp: u32,
}

/// Role of a connection-sync daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DaemonState {
    /// Sends connection updates (1).
    Master,
    /// Receives them (2).
    Backup,
}

impl DaemonState {
    /// The kernel's value.
    pub fn to_raw(self) -> u32 {
        match self {
            DaemonState::Master => 1,
            DaemonState::Backup => 2,
        }
    }

    /// From the kernel's value.
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(DaemonState::Master),
            2 => Some(DaemonState::Backup),
            _ => None,
        }
    }
}

/// A connection-synchronisation daemon (`ipvsadm --start-daemon`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDaemon {
    /// Master or backup.
    pub state: DaemonState,
    /// Multicast interface name.
    pub interface: String,
    /// Sync id (0..=255 is what ipvsadm accepts).
    pub sync_id: u32,
    /// Maximum sync message length; `None` lets the kernel choose.
    pub max_len: Option<u16>,
    /// Multicast group (IPv4 or IPv6); `None` = 224.0.0.81.
    pub group: Option<IpAddr>,
    /// UDP port; `None` = 8848.
    pub port: Option<u16>,
    /// Multicast TTL; `None` = 1.
    pub ttl: Option<u8>,
}
