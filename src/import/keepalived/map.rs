//! One `virtual_server` into the `VirtualService` objects of the IPVS services keepalived would make of it: one for
//! an address or a fwmark, one per address (and fwmark) of a `virtual_server_group`, each with the same backends
//! and checks.
//!
//! What keepalived 2.2.7 does, and so the objects (`check_data.c` `validate_check_config`, `ipvswrapper.c`):
//! - no `protocol` is UDP ("the kernel defaults to UDP, so set it explicitly"); no `lvs_sched` is wlc; no
//!   `lvs_method` is NAT; port 0 without persistence turns persistence on, 360 s (`IPVS_SVC_PERSISTENT_TIMEOUT`),
//!   as does a bare `persistence_timeout`;
//! - a DR or TUN real server is programmed on the virtual server's port (0 under a fwmark) whatever its own, while
//!   its checkers probe the port written (they copied the address before the port was reset): the backend takes
//!   the service's port, the check the written one;
//! - a NAT real server without a port takes the virtual server's;
//! - a virtual server without real servers is not programmed; a real server of another family than the virtual
//!   server's (not tunnelled) is skipped; a second real server of the same address and port is dropped;
//! - the sorry server comes in while the live weight is below `quorum - hysteresis` and goes at `quorum +
//!   hysteresis`: the API's quorum (added below it) is keepalived's `quorum - hysteresis`, its hysteresis twice
//!   keepalived's; a quorum above the real servers' total weight is lowered to it, a hysteresis not below the quorum
//!   to quorum - 1; without a sorry server, quorum only drives the `quorum_up`/`quorum_down` scripts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;

use super::checkers::{self, Kind, Probe};
use super::servers::{Group, GroupEntry, RealServer, Target, VirtualServer};
use super::values::error;
use crate::api::export::object_name;
use crate::api::v1alpha1::{
    AddressFamily, Backend, BackendHealthCheck, Forwarding, ForwardingMethod, HealthCheck, Persistence, Protocol,
    SorryServer, VirtualService, VirtualServiceSpec,
};
use crate::import::{ImportError, Note};
use crate::model::{self, Family, ServiceKey};

/// keepalived's persistence timeout when none is given (`IPVS_SVC_PERSISTENT_TIMEOUT`, 6 minutes).
pub const KEEPALIVED_PERSISTENCE_SECS: u64 = 360;

/// One service keepalived makes of a virtual server.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Service {
    Address(IpAddr, u16),
    Fwmark(u32, AddressFamily),
}

/// What the objects of a configuration share: its groups and the addresses VRRP holds.
pub struct Context<'a> {
    /// `virtual_server_group`s by name.
    pub groups: &'a HashMap<String, Group>,
    /// Addresses of `virtual_ipaddress` and `virtual_ipaddress_excluded` blocks.
    pub vrrp_addresses: &'a HashSet<IpAddr>,
}

/// The objects of `vs`; notes go to `notes`.
pub fn objects(
    vs: &VirtualServer,
    context: &Context<'_>,
    notes: &mut Vec<Note>,
) -> Result<Vec<VirtualService>, ImportError> {
    let place = Some(vs.place.clone());
    if vs.real_servers.is_empty() {
        notes.push(Note::adjusted(place, "ignored, as keepalived does: a virtual_server without real servers"));
        return Ok(Vec::new());
    }
    let services = services(vs, context)?;
    let is_fwmark_only = services.iter().all(|s| matches!(s, Service::Fwmark(..)));
    let has_address = services.iter().any(|s| matches!(s, Service::Address(..)));
    let protocol = match vs.protocol {
        Some(protocol) => protocol,
        None => {
            if has_address {
                notes.push(Note::adjusted(
                    place.clone(),
                    "no protocol: UDP, as keepalived 2.2.7 makes it (write `protocol TCP` if TCP was meant)",
                ));
            }
            Protocol::Udp
        }
    };
    if vs.protocol.is_some() && is_fwmark_only {
        notes.push(Note::adjusted(place.clone(), "ignored, as keepalived does: protocol of a fwmark service"));
    }
    let one_packet = vs.one_packet && (protocol == Protocol::Udp || !has_address);
    if vs.one_packet && !one_packet {
        notes.push(Note::adjusted(place.clone(), "ignored, as keepalived does: ops (one-packet) needs UDP"));
    }
    let forwarding = vs.forwarding.clone().unwrap_or_default();

    // The real servers keepalived keeps, and their effective forwarding.
    let family = service_family(&services, vs);
    let mut kept: Vec<(&RealServer, Forwarding)> = Vec::new();
    for rs in &vs.real_servers {
        let fwd = rs.forwarding.clone().unwrap_or_else(|| forwarding.clone());
        let rs_family = if rs.address.is_ipv4() { AddressFamily::IPv4 } else { AddressFamily::IPv6 };
        if rs_family != family && fwd.method != ForwardingMethod::Tunnel {
            notes.push(Note::adjusted(
                Some(rs.place.clone()),
                "ignored, as keepalived does: a real server of another family than the virtual server's",
            ));
            continue;
        }
        if kept.iter().any(|(other, _)| other.address == rs.address && other.port == rs.port) {
            notes.push(Note::adjusted(Some(rs.place.clone()), "ignored, as keepalived does: a duplicate real server"));
            continue;
        }
        kept.push((rs, fwd));
    }
    if kept.is_empty() {
        notes.push(Note::adjusted(place, "ignored, as keepalived does: no real server left"));
        return Ok(Vec::new());
    }

    // Persistence, as the first service needs it (port 0 turns it on).
    let needs_persistence = services.iter().any(|s| matches!(s, Service::Address(_, 0)));
    let mut timeout = vs.persistence_timeout;
    if timeout.is_none() && needs_persistence {
        notes.push(Note::adjusted(
            place.clone(),
            format!(
                "port 0 without persistence_timeout: persistence {KEEPALIVED_PERSISTENCE_SECS} s, as keepalived sets"
            ),
        ));
        timeout = Some(KEEPALIVED_PERSISTENCE_SECS);
    }
    let persistence = timeout.map(|timeout| Persistence {
        timeout_seconds: Some(timeout as i64),
        prefix_length: vs.persistence_prefix.map(i64::from),
        engine: vs.persistence_engine.clone(),
    });
    if persistence.is_none() && (vs.persistence_engine.is_some()) {
        notes.push(Note::not_mapped(
            place.clone(),
            "persistence_engine without persistence_timeout: the API takes an engine only with persistence",
        ));
    }

    let weights: u64 = kept.iter().map(|(rs, _)| rs.weight.or(vs.weight).unwrap_or(1)).sum();
    let mut objects = Vec::new();
    for service in services {
        let service_port = match service {
            Service::Address(_, port) => port,
            Service::Fwmark(..) => 0,
        };
        let mut spec = VirtualServiceSpec {
            scheduler: Some(vs.scheduler.clone().unwrap_or_else(|| "wlc".into())),
            scheduler_flags: vs.flags.clone(),
            persistence: persistence.clone(),
            forwarding: Some(forwarding.clone()),
            ..VirtualServiceSpec::default()
        };
        let key = match service {
            Service::Address(address, port) => {
                spec.address = Some(address.to_string());
                spec.port = Some(i64::from(port));
                spec.protocol = Some(protocol);
                if context.vrrp_addresses.contains(&address) {
                    spec.bind_address = Some(false);
                }
                ServiceKey::Addr { protocol: model_protocol(protocol), addr: address, port }
            }
            Service::Fwmark(mark, family) => {
                spec.fwmark = Some(i64::from(mark));
                spec.family = Some(family);
                let family = if family == AddressFamily::IPv4 { Family::V4 } else { Family::V6 };
                ServiceKey::Fwmark { family, mark }
            }
        };
        if one_packet {
            spec.one_packet = Some(true);
        }

        // Backends and their probes.
        let mut probes: Vec<Option<Probe>> = Vec::new();
        for (rs, fwd) in &kept {
            let routed = matches!(fwd.method, ForwardingMethod::DirectRouting | ForwardingMethod::Tunnel);
            // The port keepalived programs, and the one its checker probes.
            let (programmed, probe_port) = if routed {
                (service_port, if rs.port == 0 { service_port } else { rs.port })
            } else if rs.port == 0 && matches!(service, Service::Address(..)) {
                (service_port, service_port)
            } else {
                (rs.port, rs.port)
            };
            if routed && rs.port != 0 && rs.port != service_port {
                notes.push(Note::adjusted(
                    Some(rs.place.clone()),
                    format!(
                        "real server {} port {}: programmed on the service's port {service_port} (DR and TUN cannot \
                         change it; keepalived resets it too), checked on {}",
                        rs.address, rs.port, rs.port
                    ),
                ));
            }
            let mut backend = Backend { address: rs.address.to_string(), ..Backend::default() };
            if programmed != service_port {
                backend.port = Some(i64::from(programmed));
            }
            let weight = rs.weight.or(vs.weight).unwrap_or(1);
            if weight != 1 {
                backend.weight = Some(weight as i64);
            }
            backend.upper_threshold = rs.upper_threshold.map(|t| t as i64);
            backend.lower_threshold = rs.lower_threshold.map(|t| t as i64);
            if *fwd != forwarding {
                backend.forwarding = Some(fwd.clone());
            }
            spec.backends.push(backend);
            probes.push(real_server_probe(vs, rs, probe_port, notes));
        }
        apply_checks(&mut spec, &kept, probes, service_port, notes);

        let sorry_fwd = vs.sorry.as_ref().map(|s| s.forwarding.clone().unwrap_or_else(|| forwarding.clone()));
        if let (Some(sorry), Some(fwd)) = (&vs.sorry, &sorry_fwd)
            && sorry.address.is_ipv6() != (family == AddressFamily::IPv6)
            && fwd.method != ForwardingMethod::Tunnel
        {
            notes.push(Note::adjusted(
                place.clone(),
                "ignored, as keepalived does: a sorry server of another family than the virtual server's",
            ));
        } else if let Some(sorry) = &vs.sorry
            && let Some(duplicate) = kept.iter().find(|(rs, _)| {
                rs.address == sorry.address && (rs.port == sorry.port || rs.port == 0 || sorry.port == 0)
            })
        {
            notes.push(Note::not_mapped(
                place.clone(),
                format!(
                    "sorry_server {} is also a real server: the API's sorry server is none of the backends; left out",
                    duplicate.0.address
                ),
            ));
        } else if let Some(sorry) = &vs.sorry {
            let fwd = sorry.forwarding.clone().unwrap_or_else(|| forwarding.clone());
            let routed = matches!(fwd.method, ForwardingMethod::DirectRouting | ForwardingMethod::Tunnel);
            let port = if routed || sorry.port == 0 { service_port } else { sorry.port };
            spec.sorry_server = Some(SorryServer {
                address: sorry.address.to_string(),
                port: (port != service_port).then_some(i64::from(port)),
                forwarding: (fwd != forwarding).then_some(fwd),
            });
            let mut quorum = vs.quorum.unwrap_or(1);
            if quorum > weights && weights > 0 {
                notes.push(Note::adjusted(
                    place.clone(),
                    format!("quorum {quorum} lowered to {weights}, the real servers' total weight, as keepalived does"),
                ));
                quorum = weights;
            }
            let mut hysteresis = vs.hysteresis.unwrap_or(0);
            if hysteresis >= quorum {
                notes.push(Note::adjusted(
                    place.clone(),
                    format!("hysteresis {hysteresis} lowered to {}, below the quorum, as keepalived does", quorum - 1),
                ));
                hysteresis = quorum.saturating_sub(1);
            }
            if quorum != 1 || hysteresis != 0 {
                spec.quorum = Some((quorum - hysteresis) as i64);
                if hysteresis > 0 {
                    spec.hysteresis = Some((2 * hysteresis) as i64);
                }
            }
        } else if vs.quorum.is_some() || vs.hysteresis.is_some() {
            notes.push(Note::adjusted(
                place.clone(),
                "ignored: quorum and hysteresis without sorry_server (they only drive quorum_up/quorum_down scripts)",
            ));
        }
        objects.push(VirtualService::new(&object_name(&key), spec));
    }
    Ok(objects)
}

/// The services keepalived makes of `vs`.
fn services(vs: &VirtualServer, context: &Context<'_>) -> Result<Vec<Service>, ImportError> {
    let family = fwmark_family(vs);
    Ok(match &vs.target {
        Target::Address(address, port) => {
            if let Some(f) = vs.family
                && (f == AddressFamily::IPv6) != address.is_ipv6()
            {
                return Err(error(&vs.place, "ip_family differs from the virtual server address's family"));
            }
            vec![Service::Address(*address, *port)]
        }
        Target::Fwmark(mark) => vec![Service::Fwmark(*mark, family)],
        Target::Group(name) => {
            let Some(group) = context.groups.get(name) else {
                return Err(error(&vs.place, format!("no virtual_server_group named {name}")));
            };
            group
                .entries
                .iter()
                .map(|entry| match entry {
                    GroupEntry::Address(address, port) => Service::Address(*address, *port),
                    GroupEntry::Fwmark(mark, given) => Service::Fwmark(*mark, given.unwrap_or(family)),
                })
                .collect()
        }
    })
}

/// The family of a fwmark service, as keepalived finds it: `ip_family`, else the first real (or sorry) server not
/// tunnelled, else IPv4.
fn fwmark_family(vs: &VirtualServer) -> AddressFamily {
    if let Some(family) = vs.family {
        return family;
    }
    let default = vs.forwarding.as_ref().map(|f| f.method).unwrap_or_default();
    let first = vs
        .real_servers
        .iter()
        .find(|rs| rs.forwarding.as_ref().map(|f| f.method).unwrap_or(default) != ForwardingMethod::Tunnel)
        .map(|rs| rs.address)
        .or(vs.sorry.as_ref().map(|s| s.address));
    match first {
        Some(IpAddr::V6(_)) => AddressFamily::IPv6,
        _ => AddressFamily::IPv4,
    }
}

fn service_family(services: &[Service], vs: &VirtualServer) -> AddressFamily {
    match services.first() {
        Some(Service::Address(IpAddr::V6(_), _)) => AddressFamily::IPv6,
        Some(Service::Address(IpAddr::V4(_), _)) => AddressFamily::IPv4,
        Some(Service::Fwmark(_, family)) => *family,
        None => fwmark_family(vs),
    }
}

fn model_protocol(protocol: Protocol) -> model::Protocol {
    match protocol {
        Protocol::Tcp => model::Protocol::Tcp,
        Protocol::Udp => model::Protocol::Udp,
        Protocol::Sctp => model::Protocol::Sctp,
    }
}

/// The check of one real server: its first checker this program can run; the others are reported.
fn real_server_probe(vs: &VirtualServer, rs: &RealServer, probe_port: u16, notes: &mut Vec<Note>) -> Option<Probe> {
    let mut chosen = None;
    for checker in &rs.checkers {
        if matches!(checker.kind, Kind::Other(_)) {
            continue;
        }
        if chosen.is_some() {
            notes.push(Note::not_mapped(
                Some(checker.place.clone()),
                "a further checker on one real server: only the first is run (keepalived needs all to pass)",
            ));
            continue;
        }
        chosen = checkers::probe(vs, rs, checker, probe_port, notes);
    }
    chosen
}

/// Puts the probes on the spec: the most common check (ports and addresses aside) as `healthCheck`, each backend's
/// port and address where its own differs; real servers without a check are not checked; a check unlike the
/// service's is reported and replaced.
fn apply_checks(
    spec: &mut VirtualServiceSpec,
    kept: &[(&RealServer, Forwarding)],
    probes: Vec<Option<Probe>>,
    service_port: u16,
    notes: &mut Vec<Note>,
) {
    // Count the definitions, first seen first.
    let mut counts: Vec<(HealthCheck, usize)> = Vec::new();
    for probe in probes.iter().flatten() {
        match counts.iter_mut().find(|(check, _)| *check == probe.check) {
            Some((_, n)) => *n += 1,
            None => counts.push((probe.check.clone(), 1)),
        }
    }
    let Some(best) = counts.iter().map(|(_, n)| *n).max() else { return };
    let Some((chosen, _)) = counts.iter().find(|(_, n)| *n == best).cloned() else { return };
    for (probe, (rs, _)) in probes.iter().zip(kept) {
        if let Some(probe) = probe
            && probe.check != chosen
        {
            notes.push(Note::not_mapped(
                Some(probe.place.clone()),
                format!(
                    "real server {}: its check differs from the other real servers' in {}; it is probed with \
                     theirs (one check per service)",
                    rs.address,
                    differing_fields(&probe.check, &chosen)
                ),
            ));
        }
    }
    // The port: one for all when the probed ports agree, else each backend's own.
    let programmed = |backend: &Backend| backend.port.map(|p| p as u16).unwrap_or(service_port);
    let probed: Vec<u16> = probes.iter().flatten().map(|p| p.port).collect();
    let common = probed.first().copied().filter(|first| probed.iter().all(|p| p == first));
    let mut check = chosen;
    if let Some(port) = common
        && port != 0
        && spec.backends.iter().zip(&probes).any(|(b, p)| p.is_some() && programmed(b) != port)
    {
        check.port = Some(i64::from(port));
    }
    for (backend, probe) in spec.backends.iter_mut().zip(&probes) {
        let Some(probe) = probe else {
            backend.health_check = Some(BackendHealthCheck { disabled: Some(true), ..BackendHealthCheck::default() });
            continue;
        };
        let effective = check.port.map(|p| p as u16).unwrap_or(programmed(backend));
        let mut own = BackendHealthCheck::default();
        if probe.port != effective {
            if probe.port == 0 {
                notes.push(Note::not_mapped(
                    Some(probe.place.clone()),
                    format!("real server {}: no port to probe (give connect_port); not checked", backend.address),
                ));
                backend.health_check =
                    Some(BackendHealthCheck { disabled: Some(true), ..BackendHealthCheck::default() });
                continue;
            }
            own.port = Some(i64::from(probe.port));
        }
        if let Some(address) = probe.address
            && address.to_string() != backend.address
        {
            own.address = Some(address.to_string());
        }
        if own != BackendHealthCheck::default() {
            backend.health_check = Some(own);
        }
    }
    spec.health_check = Some(check);
}

/// The fields two checks differ in, by their manifest names.
fn differing_fields(a: &HealthCheck, b: &HealthCheck) -> String {
    let to_map = |c: &HealthCheck| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(c) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (to_map(a), to_map(b));
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let differing: Vec<&str> = keys.into_iter().filter(|k| a.get(*k) != b.get(*k)).map(String::as_str).collect();
    differing.join(", ")
}
