//! The director's own settings, beside its services: IPVS connection timeouts, the sysctls an IPVS director needs,
//! and connection-sync daemons. Pure: the configuration (`--director-config FILE`, the agent's ConfigMap, and
//! flags), the checks of the sysctls against the declared services, and the minimal daemon changes. The engine
//! reads and writes them (`engine::director_pass`); this module knows no socket.

mod checks;
mod config;
mod daemons;

pub use checks::{Contradiction, arp_contradiction, contradictions};
pub use config::{ConfigError, DirectorConfig, SyncDaemonConfig, TimeoutConfig};
pub use daemons::{DaemonPlan, plan_daemons, satisfies};

use std::fmt;

use serde::{Deserialize, Serialize};

/// A sysctl an IPVS director needs; all are per network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Sysctl {
    /// `net.ipv4.vs.conntrack`: keep netfilter conntrack entries for IPVS connections (needed when iptables or
    /// nftables NAT or conntrack rules apply to them).
    Conntrack,
    /// `net.ipv4.vs.expire_nodest_conn`: expire a connection whose backend was deleted at its next packet,
    /// instead of dropping its packets until it times out.
    ExpireNodestConn,
    /// `net.ipv4.vs.expire_quiescent_template`: expire a persistence template whose backend has weight 0, so
    /// that persistent clients stop reaching a drained or unhealthy backend.
    ExpireQuiescentTemplate,
    /// `net.ipv4.vs.conn_reuse_mode`: how a connection reusing a recent source port is rescheduled.
    ConnReuseMode,
    /// `net.ipv4.ip_forward`: NAT replies pass through the director, which must forward them.
    IpForward,
    /// `net.ipv6.conf.all.forwarding`: the same for IPv6.
    Ipv6Forwarding,
    /// `net.ipv4.conf.all.arp_ignore`: which ARP requests the node answers. 0 (the kernel's default) answers for
    /// any local address on any interface, the VIPs on `ipvs0` included; 1 only for addresses of the interface the
    /// request came in on (the kernel takes the higher of `all` and the interface's own).
    ArpIgnore,
}

impl Sysctl {
    /// Every one, in a fixed order.
    pub const ALL: [Sysctl; 7] = [
        Sysctl::Conntrack,
        Sysctl::ExpireNodestConn,
        Sysctl::ExpireQuiescentTemplate,
        Sysctl::ConnReuseMode,
        Sysctl::IpForward,
        Sysctl::Ipv6Forwarding,
        Sysctl::ArpIgnore,
    ];

    /// Its dotted name, as `sysctl` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Sysctl::Conntrack => "net.ipv4.vs.conntrack",
            Sysctl::ExpireNodestConn => "net.ipv4.vs.expire_nodest_conn",
            Sysctl::ExpireQuiescentTemplate => "net.ipv4.vs.expire_quiescent_template",
            Sysctl::ConnReuseMode => "net.ipv4.vs.conn_reuse_mode",
            Sysctl::IpForward => "net.ipv4.ip_forward",
            Sysctl::Ipv6Forwarding => "net.ipv6.conf.all.forwarding",
            Sysctl::ArpIgnore => "net.ipv4.conf.all.arp_ignore",
        }
    }

    /// Its file under `/proc/sys`.
    pub fn proc_path(self) -> String {
        format!("/proc/sys/{}", self.name().replace('.', "/"))
    }

    /// The key of a `--sysctl KEY=VALUE` flag: the last part of the name (`ip_forward`, `expire_nodest_conn`),
    /// `ipv6_forwarding` for IPv6.
    pub fn flag_key(self) -> &'static str {
        match self {
            Sysctl::Ipv6Forwarding => "ipv6_forwarding",
            other => other.name().rsplit('.').next().unwrap_or_default(),
        }
    }

    /// The values the kernel accepts.
    pub fn max_value(self) -> u32 {
        match self {
            // Bit 0: reschedule on reuse; bit 1: also for persistent (conntrack) cases.
            Sysctl::ConnReuseMode => 3,
            // 0-3 and 8 (ignore every request); the kernel takes 4-7 as 0.
            Sysctl::ArpIgnore => 8,
            _ => 1,
        }
    }
}

impl fmt::Display for Sysctl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
