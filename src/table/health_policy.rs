//! What a service declares about the health of its backends: the check, how often it runs, and what an unhealthy
//! backend comes to in the table. Plain values; the probes themselves are `crate::health`'s, and turning health
//! into weights is `crate::agent::weights`'s.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::health::{Check, Schedule, TargetKey};
use crate::model::{DestKey, Destination};

/// One service's health checking, validated (`spec.healthCheck`, `spec.sorryServer`, `spec.quorum`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPolicy {
    /// What is sent and how long it may take; `None`: the backends are not checked (always healthy), and the policy
    /// is there for its sorry server alone (`spec.sorryServer` without `spec.healthCheck`).
    pub check: Option<Check>,
    /// How often, and how many results in a row flip a backend (and the state of a backend seen first).
    pub schedule: Schedule,
    /// The port probed; `None`: each backend's own port.
    pub port: Option<u16>,
    /// The node's address the probes are sent from; `None`: the kernel chooses.
    pub source: Option<IpAddr>,
    /// What an unhealthy backend becomes.
    pub on_failure: OnFailure,
    /// A backend that becomes healthy gets its weight back over this long, in a few steps; `None`: at once.
    pub slow_start: Option<Duration>,
    /// Added while the healthy backends' weight is below `quorum`, withdrawn when it reaches `quorum + hysteresis`.
    pub sorry_server: Option<Destination>,
    /// The healthy weight below which the service has lost its quorum (1: no healthy backend left).
    pub quorum: u64,
    /// How far above `quorum` the healthy weight must come back before the sorry server is withdrawn.
    pub hysteresis: u64,
    /// Per-backend changes to the check (static backends only).
    pub backends: BTreeMap<DestKey, BackendCheck>,
}

/// What an unhealthy backend becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Weight 0: no new connections, the existing ones go on (keepalived's `inhibit_on_failure`).
    #[default]
    Inhibit,
    /// Removed from the service (its connections are cut when they next send).
    Remove,
}

/// A backend's own change to its service's check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendCheck {
    /// Not checked: always healthy.
    Disabled,
    /// Checked at another address (keepalived's `connect_ip`) and/or port; `None` keeps the service's choice.
    Probe {
        /// The address probed instead of the backend's.
        address: Option<IpAddr>,
        /// The port probed instead of `spec.healthCheck.port` or the backend's own.
        port: Option<u16>,
    },
}

impl BackendCheck {
    /// Probed on `port` instead.
    pub fn port(port: u16) -> Self {
        BackendCheck::Probe { address: None, port: Some(port) }
    }
}

impl HealthPolicy {
    /// The probe target of backend `dest`; `None` when it is not checked (no check, disabled, or it has no port to
    /// probe: validation refuses that for static backends).
    pub fn target(&self, dest: &DestKey) -> Option<TargetKey> {
        let check = self.check.as_ref()?;
        let (address, port) = match self.backends.get(dest) {
            Some(BackendCheck::Disabled) => return None,
            Some(BackendCheck::Probe { address, port }) => {
                (address.unwrap_or(dest.addr), port.or(self.port).unwrap_or(dest.port))
            }
            None => (dest.addr, self.port.unwrap_or(dest.port)),
        };
        if port == 0 {
            return None;
        }
        let key = TargetKey::new(SocketAddr::new(address, port), check.clone());
        Some(match self.source {
            Some(source) => key.with_source(source),
            None => key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::table::fixtures::tcp_policy as policy;

    #[test]
    fn a_backend_is_probed_on_its_port_unless_told_otherwise() {
        let dest = DestKey::new([10, 0, 0, 1].into(), 8080);
        let mut p = policy();
        assert_eq!(p.target(&dest).map(|t| t.target), Some("10.0.0.1:8080".parse().unwrap()));
        p.port = Some(9000);
        assert_eq!(p.target(&dest).map(|t| t.target), Some("10.0.0.1:9000".parse().unwrap()));
        p.backends.insert(dest, BackendCheck::port(9100));
        assert_eq!(p.target(&dest).map(|t| t.target), Some("10.0.0.1:9100".parse().unwrap()));
        p.backends.insert(dest, BackendCheck::Probe { address: Some([192, 0, 2, 7].into()), port: None });
        assert_eq!(p.target(&dest).map(|t| t.target), Some("192.0.2.7:9000".parse().unwrap()), "connect_ip");
        p.backends.insert(dest, BackendCheck::Probe { address: Some([192, 0, 2, 7].into()), port: Some(81) });
        assert_eq!(p.target(&dest).map(|t| t.target), Some("192.0.2.7:81".parse().unwrap()));
        p.backends.insert(dest, BackendCheck::Disabled);
        assert_eq!(p.target(&dest), None);
        p.port = None;
        p.backends.clear();
        assert_eq!(p.target(&DestKey::new([10, 0, 0, 1].into(), 0)), None, "port 0: nothing to probe");
        p.source = Some([192, 0, 2, 9].into());
        assert_eq!(p.target(&dest).and_then(|t| t.source), Some([192, 0, 2, 9].into()));
        p.check = None;
        assert_eq!(p.target(&dest), None, "a policy without a check (a sorry server alone) probes nothing");
    }
}
