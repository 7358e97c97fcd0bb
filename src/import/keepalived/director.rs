//! `global_defs` (its `lvs_timeouts` and `lvs_sync_daemon` become director settings) and the VRRP sections (their
//! addresses are held by VRRP, so the services on them do not bind them; the rest stays keepalived's).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use super::parse::Node;
use super::values::{self, error, word};
use crate::director::{DirectorConfig, SyncDaemonConfig};
use crate::import::{ImportError, Note};
use crate::model::DaemonState;

/// What the VRRP sections say that the import uses.
#[derive(Debug, Default)]
pub struct Vrrp {
    /// Every address of a `virtual_ipaddress` or `virtual_ipaddress_excluded` block.
    pub addresses: HashSet<IpAddr>,
    /// Each `vrrp_instance`: its `state` (true: MASTER) and `virtual_router_id`.
    pub instances: HashMap<String, Instance>,
}

/// One `vrrp_instance`.
#[derive(Debug, Default, Clone)]
pub struct Instance {
    /// `state MASTER`.
    pub master: Option<bool>,
    /// `virtual_router_id`.
    pub router_id: Option<u32>,
}

/// Reads a `vrrp_instance` section into `vrrp`.
pub fn vrrp_instance(node: &Node, vrrp: &mut Vrrp) -> Result<(), ImportError> {
    let mut instance = Instance::default();
    for child in node.children() {
        match child.keyword() {
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                for entry in child.children() {
                    let text = entry.keyword();
                    let address = text.split_once('/').map(|(a, _)| a).unwrap_or(text);
                    vrrp.addresses.insert(values::ip(&entry.place, address, "virtual_ipaddress")?);
                }
            }
            "state" => instance.master = Some(word(child, 1, "state")?.eq_ignore_ascii_case("MASTER")),
            "virtual_router_id" => instance.router_id = Some(values::number_arg(child, 0, 255)? as u32),
            _ => {}
        }
    }
    if let Some(name) = node.word(1) {
        vrrp.instances.insert(name.to_owned(), instance);
    }
    Ok(())
}

/// Reads `global_defs` into `director`; every other item is a note.
pub fn global_defs(
    node: &Node,
    vrrp: &Vrrp,
    director: &mut Option<DirectorConfig>,
    notes: &mut Vec<Note>,
) -> Result<(), ImportError> {
    for child in node.children() {
        let place = Some(child.place.clone());
        match child.keyword() {
            "lvs_timeouts" => {
                let config = director.get_or_insert_with(DirectorConfig::default);
                let mut i = 1;
                while let Some(name) = child.word(i) {
                    let text = word(child, i + 1, "timeout")?;
                    let value = values::number(&child.place, text, name, 0, 2_678_400)? as u32;
                    let value = (value > 0).then_some(value);
                    match name {
                        "tcp" => config.timeouts.tcp = value,
                        "tcpfin" => config.timeouts.tcp_fin = value,
                        "udp" => config.timeouts.udp = value,
                        other => return Err(error(&child.place, format!("lvs_timeouts: unknown `{other}`"))),
                    }
                    i += 2;
                }
            }
            "lvs_sync_daemon" => {
                let daemon = sync_daemon(child, vrrp, notes)?;
                director.get_or_insert_with(DirectorConfig::default).sync_daemons.push(daemon);
            }
            other => notes.push(Note::adjusted(place, format!("ignored: global_defs {other}"))),
        }
    }
    Ok(())
}

/// `lvs_sync_daemon INTERFACE [INSTANCE | inst NAME] [id N] [maxlen N] [port N] [ttl N] [group IP]`.
fn sync_daemon(node: &Node, vrrp: &Vrrp, notes: &mut Vec<Note>) -> Result<SyncDaemonConfig, ImportError> {
    let place = &node.place;
    let interface = word(node, 1, "interface")?.to_owned();
    if interface.len() > 15 {
        return Err(error(place, format!("lvs_sync_daemon interface `{interface}` is longer than 15 characters")));
    }
    let mut daemon = SyncDaemonConfig {
        state: DaemonState::Backup,
        interface,
        sync_id: 0,
        group: None,
        port: None,
        ttl: None,
        max_length: None,
    };
    let mut instance_name = None;
    let mut sync_id = None;
    let mut i = 2;
    while let Some(option) = node.word(i) {
        let value = || word(node, i + 1, option);
        match option {
            "inst" => instance_name = Some(value()?.to_owned()),
            "id" => sync_id = Some(values::number(place, value()?, "id", 0, 255)? as u32),
            "maxlen" => daemon.max_length = Some(values::number(place, value()?, "maxlen", 1, 65535 - 28)? as u16),
            "port" => daemon.port = Some(values::number(place, value()?, "port", 1, 65535)? as u16),
            "ttl" => daemon.ttl = Some(values::number(place, value()?, "ttl", 1, 255)? as u8),
            "group" => {
                let group = values::ip(place, value()?, "group")?;
                if !group.is_multicast() {
                    return Err(error(place, format!("lvs_sync_daemon group {group} is not a multicast address")));
                }
                daemon.group = Some(group);
            }
            // The older form: INTERFACE INSTANCE [SYNC_ID].
            name if i == 2 => {
                instance_name = Some(name.to_owned());
                i += 1;
                continue;
            }
            id if i == 3 => {
                sync_id = Some(values::number(place, id, "sync id", 0, 255)? as u32);
                i += 1;
                continue;
            }
            other => return Err(error(place, format!("lvs_sync_daemon: unknown option `{other}`"))),
        }
        i += 2;
    }
    let instance = instance_name.as_ref().and_then(|name| vrrp.instances.get(name));
    daemon.sync_id = sync_id.or(instance.and_then(|i| i.router_id)).unwrap_or(0);
    let master = instance.and_then(|i| i.master).unwrap_or(false);
    daemon.state = if master { DaemonState::Master } else { DaemonState::Backup };
    let from = match (&instance_name, instance) {
        (Some(name), Some(_)) => format!("vrrp_instance {name}'s initial state"),
        (Some(name), None) => format!("vrrp_instance {name} is not in the file: backup"),
        (None, _) => "no vrrp_instance named: backup".into(),
    };
    notes.push(Note::adjusted(
        Some(place.clone()),
        format!(
            "lvs_sync_daemon runs as {} ({from}); keepalived switches it between master and backup with VRRP, this \
             program does not",
            if master { "master" } else { "backup" }
        ),
    ));
    Ok(daemon)
}

/// The note for a VRRP section or another top-level section that does not concern the IPVS table.
pub fn ignored_section(node: &Node) -> Note {
    let name = node.word(1).map(|n| format!(" {n}")).unwrap_or_default();
    let what = match node.keyword() {
        "vrrp_instance" => {
            "VRRP stays keepalived's or another tool's job; the services on its addresses get bindAddress false"
        }
        k if k.starts_with("vrrp_") => "VRRP stays keepalived's or another tool's job",
        _ => "not part of the IPVS table or its checks",
    };
    Note::adjusted(Some(node.place.clone()), format!("ignored: {}{name} ({what})", node.keyword()))
}

/// Whether a top-level keyword is one this module reports as ignored (VRRP, addresses and routes, tracking).
pub fn is_ignored_section(keyword: &str) -> bool {
    keyword.starts_with("vrrp_")
        || matches!(
            keyword,
            "static_ipaddress"
                | "static_routes"
                | "static_rules"
                | "linkbeat_interfaces"
                | "garp_group"
                | "track_file"
                | "track_process"
                | "bfd_instance"
                | "net_namespace"
                | "net_namespace_ipvs"
                | "instance"
                | "use_pid_dir"
        )
}
