//! The director configuration: a YAML file (the agent's ConfigMap mounts one) and the flags that override it.
//! Every problem names the file and the field.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Sysctl;
use crate::model::{DaemonState, SyncDaemon, Timeouts};

/// The largest timeout the kernel takes (`INT_MAX / HZ` seconds with the largest HZ, 1000).
const MAX_TIMEOUT: u32 = 2_147_483;

/// The director's settings. Anything absent is left as the kernel has it (and checked, for the sysctls).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DirectorConfig {
    /// IPVS connection timeouts of the namespace.
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    /// Sysctls by their `--sysctl` key (`ip_forward`, `expire_nodest_conn`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, u32>,
    /// Connection-sync daemons: at most one master and one backup.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_daemons: Vec<SyncDaemonConfig>,
}

/// Connection timeouts, seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeoutConfig {
    /// TCP established (kernel default 900).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u32>,
    /// TCP after FIN (kernel default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_fin: Option<u32>,
    /// UDP (kernel default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<u32>,
}

/// One connection-sync daemon, as `ipvsadm --start-daemon` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SyncDaemonConfig {
    /// `Master` (sends this director's connections) or `Backup` (receives them).
    pub state: DaemonState,
    /// The interface the sync messages go out or come in on.
    pub interface: String,
    /// Sync id, 0-255: a backup takes only messages of its id. Default 0.
    #[serde(default)]
    pub sync_id: u32,
    /// Multicast group, IPv4 or IPv6. Default 224.0.0.81.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<IpAddr>,
    /// UDP port. Default 8848.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Multicast TTL, 1-255. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u8>,
    /// Largest sync message, bytes. Default: from the interface's MTU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u16>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("director config {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A field is wrong.
    #[error("director config {origin}: {field}: {reason}")]
    Invalid {
        /// The file, or `flags`.
        origin: String,
        /// The field (`sysctls.ip_forward`, `syncDaemons[0].group`).
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl DirectorConfig {
    /// Reads and checks a YAML file.
    pub fn load(path: &Path) -> Result<DirectorConfig, ConfigError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: origin.clone(), source })?;
        Self::parse(&text, &origin)
    }

    /// Parses and checks YAML text from `origin` (for messages). An empty document is the empty configuration.
    pub fn parse(text: &str, origin: &str) -> Result<DirectorConfig, ConfigError> {
        if text.trim().is_empty() {
            return Ok(DirectorConfig::default());
        }
        let deserializer = serde_yaml::Deserializer::from_str(text);
        let config: DirectorConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let field = e.path().to_string();
            ConfigError::Invalid { origin: origin.to_owned(), field, reason: e.into_inner().to_string() }
        })?;
        config.check(origin)?;
        Ok(config)
    }

    /// Sets `key` (a `--sysctl` key) to `value`, over what the file said.
    pub fn set_sysctl(&mut self, key: &str, value: u32) {
        self.sysctls.insert(key.to_owned(), value);
    }

    /// Checks every field; `origin` names the file or `flags`.
    pub fn check(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |field: String, reason: String| ConfigError::Invalid { origin: origin.to_owned(), field, reason };
        for (field, value) in [
            ("timeouts.tcp", self.timeouts.tcp),
            ("timeouts.tcpFin", self.timeouts.tcp_fin),
            ("timeouts.udp", self.timeouts.udp),
        ] {
            if let Some(value) = value
                && !(1..=MAX_TIMEOUT).contains(&value)
            {
                return Err(invalid(field.into(), format!("{value} is not 1-{MAX_TIMEOUT} seconds")));
            }
        }
        for (key, value) in &self.sysctls {
            let field = format!("sysctls.{key}");
            let Some(sysctl) = Sysctl::ALL.into_iter().find(|s| s.flag_key() == key) else {
                let known: Vec<&str> = Sysctl::ALL.iter().map(|s| s.flag_key()).collect();
                return Err(invalid(field, format!("unknown; one of {}", known.join(", "))));
            };
            if *value > sysctl.max_value() {
                return Err(invalid(field, format!("{value} is not 0-{}", sysctl.max_value())));
            }
        }
        let mut seen = Vec::new();
        for (i, daemon) in self.sync_daemons.iter().enumerate() {
            let field = |name: &str| format!("syncDaemons[{i}].{name}");
            if seen.contains(&daemon.state) {
                return Err(invalid(
                    field("state"),
                    format!("a second {:?}: one master and one backup at most", daemon.state),
                ));
            }
            seen.push(daemon.state);
            if daemon.interface.is_empty() || daemon.interface.len() > 15 || daemon.interface.contains('/') {
                return Err(invalid(field("interface"), format!("{:?} is not an interface name", daemon.interface)));
            }
            if daemon.sync_id > 255 {
                return Err(invalid(field("syncId"), format!("{} is not 0-255", daemon.sync_id)));
            }
            if let Some(group) = daemon.group
                && !group.is_multicast()
            {
                return Err(invalid(field("group"), format!("{group} is not a multicast address")));
            }
            if daemon.ttl == Some(0) {
                return Err(invalid(field("ttl"), "0 is not 1-255".into()));
            }
            if daemon.port == Some(0) {
                return Err(invalid(field("port"), "0 is not a port".into()));
            }
        }
        Ok(())
    }

    /// The configured sysctls, typed.
    pub fn sysctl_values(&self) -> BTreeMap<Sysctl, u32> {
        Sysctl::ALL
            .into_iter()
            .filter_map(|sysctl| self.sysctls.get(sysctl.flag_key()).map(|value| (sysctl, *value)))
            .collect()
    }

    /// The configured timeouts as `SET_CONFIG` takes them (0: leave unchanged).
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            tcp: self.timeouts.tcp.unwrap_or(0),
            tcp_fin: self.timeouts.tcp_fin.unwrap_or(0),
            udp: self.timeouts.udp.unwrap_or(0),
        }
    }

    /// The configured daemons, as the kernel takes them.
    pub fn daemons(&self) -> Vec<SyncDaemon> {
        self.sync_daemons
            .iter()
            .map(|d| SyncDaemon {
                state: d.state,
                interface: d.interface.clone(),
                sync_id: d.sync_id,
                max_len: d.max_length,
                group: d.group,
                port: d.port,
                ttl: d.ttl,
            })
            .collect()
    }

    /// Whether anything is configured.
    pub fn is_empty(&self) -> bool {
        *self == DirectorConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = "
timeouts: {tcp: 900, tcpFin: 30, udp: 60}
sysctls: {ip_forward: 1, expire_nodest_conn: 1, conn_reuse_mode: 0}
syncDaemons:
  - {state: Master, interface: eth1, syncId: 7, group: 239.1.1.1, port: 8848, ttl: 2, maxLength: 1400}
  - {state: Backup, interface: eth1, syncId: 7}
";

    fn error(text: &str) -> String {
        DirectorConfig::parse(text, "/etc/d.yaml").unwrap_err().to_string()
    }

    #[test]
    fn a_full_config_reads_into_kernel_values() {
        let config = DirectorConfig::parse(FULL, "/etc/d.yaml").unwrap();
        assert_eq!(config.timeouts(), Timeouts { tcp: 900, tcp_fin: 30, udp: 60 });
        assert_eq!(
            config.sysctl_values(),
            [(Sysctl::ExpireNodestConn, 1), (Sysctl::ConnReuseMode, 0), (Sysctl::IpForward, 1)].into()
        );
        let daemons = config.daemons();
        assert_eq!(daemons[0].group, Some("239.1.1.1".parse().unwrap()));
        assert_eq!((daemons[1].state, daemons[1].sync_id, daemons[1].port), (DaemonState::Backup, 7, None));
        assert!(DirectorConfig::parse("", "x").unwrap().is_empty());
    }

    #[test]
    fn every_bad_field_is_named_with_the_file() {
        assert!(error("sysctls: {ip_forwarding: 1}").contains("/etc/d.yaml: sysctls.ip_forwarding: unknown; one of"));
        assert!(error("sysctls: {ip_forward: 2}").contains("sysctls.ip_forward: 2 is not 0-1"));
        assert!(error("timeouts: {tcp: 0}").contains("timeouts.tcp: 0 is not 1-"));
        assert!(error("timeouts: {tcp: -1}").contains("timeouts.tcp"));
        assert!(error("timeout: {}").contains("unknown field"));
        let daemon = |extra: &str| format!("syncDaemons: [{{state: Master, interface: eth0{extra}}}]");
        assert!(error(&daemon(", group: 10.0.0.1")).contains("syncDaemons[0].group: 10.0.0.1 is not a multicast"));
        assert!(error(&daemon(", syncId: 256")).contains("syncDaemons[0].syncId"));
        assert!(error(&daemon(", ttl: 0")).contains("syncDaemons[0].ttl"));
        assert!(error("syncDaemons: [{state: Master, interface: averyveryverylongname}]").contains(".interface"));
        assert!(
            error("syncDaemons: [{state: Backup, interface: a}, {state: Backup, interface: b}]")
                .contains("syncDaemons[1].state: a second Backup")
        );
    }
}
