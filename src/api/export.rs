//! The reverse mapping, for `dump -o yaml`: a table (usually the live one) written as `VirtualService` manifests
//! that, applied, reproduce it exactly.
//!
//! Names are derived from the service key (`tcp-192-0-2-10-80`, `udp-2001-db8--1-53`, `fwm-42`, `fwm-42-ipv6`), so
//! a dump is stable and two services never share a name. No namespace is set: `kubectl apply` puts the objects
//! in the current namespace, and the file source ignores namespaces. Defaults are left out (backend weight 1,
//! ports equal to the service's, the most common forwarding written once on the service), except the protocol,
//! the scheduler and the persistence timeout, which a reader wants to see.
//!
//! A service the API cannot express exactly (a non-contiguous IPv4 netmask, Bypass forwarding, an unknown protocol
//! number, tunnel options on a non-tunnel destination, ...) is not written at all: it is reported with every
//! reason, never silently changed.

use thiserror::Error;

use super::v1alpha1::{
    AddressFamily, Backend, Forwarding, ForwardingMethod, MAX_BACKENDS, Persistence, Protocol, Tunnel, TunnelChecksum,
    TunnelType, VirtualService, VirtualServiceSpec,
};
use super::validate::{
    DEFAULT_PREFIX_V4, DEFAULT_PREFIX_V6, DEFAULT_WEIGHT, MAX_PERSISTENCE_TIMEOUT_SECS, MAX_WEIGHT,
    PERSISTENCE_ENGINES, SCHEDULER_FLAGS, SCHEDULERS, destination_refused, virtual_address_refused,
};
use crate::model::{
    self, Destination, Family, ForwardMethod, Netmask, ServiceEntry, ServiceFlags, ServiceKey, Table, TunnelConfig,
};

/// Manifests for a table, and the services that could not be written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableExport {
    /// One object per expressible service, in key order.
    pub objects: Vec<VirtualService>,
    /// Services left out, in key order.
    pub skipped: Vec<Unexpressible>,
}

/// A service the API cannot express exactly, with every reason.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key}: cannot be written as a VirtualService: {}", reasons.join("; "))]
pub struct Unexpressible {
    /// The service.
    pub key: ServiceKey,
    /// What the API has no way to say.
    pub reasons: Vec<String>,
}

/// Writes `table` as manifests; see the module documentation.
pub fn from_table(table: &Table) -> TableExport {
    let mut export = TableExport::default();
    for (key, entry) in &table.services {
        match export_service(entry) {
            Ok(spec) => export.objects.push(VirtualService::new(&object_name(key), spec)),
            Err(reasons) => export.skipped.push(Unexpressible { key: *key, reasons }),
        }
    }
    export
}

/// The object name for a service key: lower case, `.` and `:` turned into `-`, protocol first, port last.
pub fn object_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            let protocol = match protocol {
                model::Protocol::Other(n) => format!("proto{n}"),
                known => known.to_string().to_lowercase(),
            };
            let addr = addr.to_string().replace(['.', ':'], "-");
            format!("{protocol}-{addr}-{port}")
        }
        ServiceKey::Fwmark { family: Family::V4, mark } => format!("fwm-{mark}"),
        ServiceKey::Fwmark { family: Family::V6, mark } => format!("fwm-{mark}-ipv6"),
    }
}

fn export_service(entry: &ServiceEntry) -> Result<VirtualServiceSpec, Vec<String>> {
    let key = entry.service.key;
    let config = &entry.service.config;
    let family = key.family();
    let mut reasons = Vec::new();
    let mut spec = VirtualServiceSpec::default();

    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            if let Some(what) = virtual_address_refused(&addr) {
                reasons.push(format!("virtual address {addr} is {what}, which the API refuses"));
            }
            spec.address = Some(addr.to_string());
            spec.port = Some(i64::from(port));
            spec.protocol = match protocol {
                model::Protocol::Tcp => Some(Protocol::Tcp),
                model::Protocol::Udp => Some(Protocol::Udp),
                model::Protocol::Sctp => Some(Protocol::Sctp),
                model::Protocol::Other(n) => {
                    reasons.push(format!("protocol number {n} is not TCP, UDP or SCTP"));
                    None
                }
            };
        }
        ServiceKey::Fwmark { family, mark } => {
            spec.fwmark = Some(i64::from(mark));
            spec.family = Some(match family {
                Family::V4 => AddressFamily::IPv4,
                Family::V6 => AddressFamily::IPv6,
            });
            if mark == 0 {
                reasons.push("firewall mark 0 is not a mark".to_owned());
            }
        }
    }

    if SCHEDULERS.contains(&config.scheduler.as_str()) {
        spec.scheduler = Some(config.scheduler.clone());
    } else {
        reasons.push(format!("scheduler `{}` is not one the API knows", config.scheduler));
    }

    let flags = config.flags;
    let known_bits = ServiceFlags::PERSISTENT | ServiceFlags::ONEPACKET | ServiceFlags::SCHED1 | ServiceFlags::SCHED2;
    if flags.0 & !known_bits != 0 {
        reasons.push(format!("service flags {:#x} have no field", flags.0 & !known_bits));
    }
    for bit in [ServiceFlags::SCHED1, ServiceFlags::SCHED2] {
        if !flags.has(bit) {
            continue;
        }
        match SCHEDULER_FLAGS.iter().find(|(_, owner, b)| *owner == config.scheduler && *b == bit) {
            Some((name, _, _)) => spec.scheduler_flags.push((*name).to_owned()),
            None => reasons.push(format!("scheduler flag {bit:#x} means nothing to scheduler {}", config.scheduler)),
        }
    }
    if flags.has(ServiceFlags::ONEPACKET) {
        if matches!(key, ServiceKey::Addr { protocol, .. } if protocol != model::Protocol::Udp) {
            reasons.push(format!("one-packet scheduling on a {} service", key.protocol()));
        }
        spec.one_packet = Some(true);
    }

    if flags.has(ServiceFlags::PERSISTENT) {
        let mut persistence = Persistence::default();
        if (1..=MAX_PERSISTENCE_TIMEOUT_SECS).contains(&config.timeout) {
            persistence.timeout_seconds = Some(i64::from(config.timeout));
        } else {
            reasons.push(format!("persistence timeout {} is outside 1-{MAX_PERSISTENCE_TIMEOUT_SECS}", config.timeout));
        }
        match (family, config.netmask, config.netmask.prefix_len()) {
            (Family::V4, Netmask::V4(_), Some(len)) => {
                persistence.prefix_length = (len != DEFAULT_PREFIX_V4).then_some(i64::from(len));
            }
            (Family::V6, Netmask::V6Prefix(len), _) if (1..=128).contains(&len) => {
                persistence.prefix_length = (len != DEFAULT_PREFIX_V6).then_some(i64::from(len));
            }
            (_, netmask, _) => reasons.push(format!("persistence netmask {netmask} is not an {family} prefix length")),
        }
        match &config.pe_name {
            None => {}
            Some(pe) if PERSISTENCE_ENGINES.contains(&pe.as_str()) => persistence.engine = Some(pe.clone()),
            Some(pe) => reasons.push(format!("persistence engine `{pe}` is not one the API knows")),
        }
        spec.persistence = Some(persistence);
    } else {
        if config.timeout != 0 {
            reasons.push(format!("persistence timeout {} without persistence", config.timeout));
        }
        if config.netmask != Netmask::host(family) {
            reasons.push(format!("persistence netmask {} without persistence", config.netmask));
        }
        if let Some(pe) = &config.pe_name {
            reasons.push(format!("persistence engine `{pe}` without persistence"));
        }
        if matches!(key, ServiceKey::Addr { port: 0, .. }) {
            reasons.push("port 0 (every port) without persistence".to_owned());
        }
    }

    if entry.dests.len() > MAX_BACKENDS {
        reasons.push(format!("{} destinations; one object holds at most {MAX_BACKENDS}", entry.dests.len()));
    }
    let mut backends = Vec::new();
    for dest in entry.dests.values() {
        match export_dest(key, dest) {
            Ok(backend) => backends.push(backend),
            Err(mut why) => reasons.append(&mut why),
        }
    }
    if !reasons.is_empty() {
        return Err(reasons);
    }

    // The most common forwarding is written once on the service; ties go to the one met first (in key order).
    let mut counts: Vec<(Forwarding, usize)> = Vec::new();
    for (_, fwd) in &backends {
        match counts.iter_mut().find(|(f, _)| f == fwd) {
            Some((_, n)) => *n += 1,
            None => counts.push((fwd.clone(), 1)),
        }
    }
    let mut default = Forwarding::default();
    let mut best = 0;
    for (fwd, n) in counts {
        if n > best {
            (default, best) = (fwd, n);
        }
    }
    spec.backends = backends
        .into_iter()
        .map(|(mut backend, fwd)| {
            backend.forwarding = (fwd != default).then_some(fwd);
            backend
        })
        .collect();
    spec.forwarding = (default != Forwarding::default()).then_some(default);
    Ok(spec)
}

/// A backend (without its forwarding) and its forwarding, or why the destination cannot be written.
fn export_dest(key: ServiceKey, dest: &Destination) -> Result<(Backend, Forwarding), Vec<String>> {
    let mut reasons = Vec::new();
    let at = dest.key;
    let config = &dest.config;
    let method = match config.forward {
        ForwardMethod::Masquerade => Some(ForwardingMethod::Masquerade),
        ForwardMethod::Local => Some(ForwardingMethod::Local),
        ForwardMethod::Tunnel => Some(ForwardingMethod::Tunnel),
        ForwardMethod::DirectRoute => Some(ForwardingMethod::DirectRouting),
        ForwardMethod::Bypass | ForwardMethod::Other(_) => {
            reasons.push(format!("destination {at}: forwarding {:?} has no method in the API", config.forward));
            None
        }
    };
    let tunnel = if config.forward == ForwardMethod::Tunnel {
        export_tunnel(&config.tunnel).map_err(|why| reasons.push(format!("destination {at}: {why}"))).ok().flatten()
    } else {
        if config.tunnel != TunnelConfig::default() {
            reasons.push(format!("destination {at}: tunnel options on a {:?} destination", config.forward));
        }
        None
    };

    if let Some(what) = destination_refused(&at.addr, config.forward) {
        reasons.push(format!("destination {at}: {what} address, which the API refuses with {:?}", config.forward));
    }
    if Family::of(&at.addr) != key.family() && config.forward != ForwardMethod::Tunnel {
        reasons.push(format!("destination {at}: another family than the service's without tunnelling"));
    }
    let default_port = key.port();
    if matches!(key, ServiceKey::Addr { .. })
        && matches!(config.forward, ForwardMethod::DirectRoute | ForwardMethod::Tunnel)
        && at.port != default_port
    {
        reasons.push(format!("destination {at}: port differs from the service's with {:?}", config.forward));
    }
    if config.weight > MAX_WEIGHT {
        reasons.push(format!("destination {at}: weight {} above {MAX_WEIGHT}", config.weight));
    }
    if config.lower_threshold > config.upper_threshold {
        reasons.push(format!(
            "destination {at}: lower threshold {} above upper threshold {}",
            config.lower_threshold, config.upper_threshold
        ));
    }
    match method {
        Some(method) if reasons.is_empty() => {
            let backend = Backend {
                address: at.addr.to_string(),
                port: (at.port != default_port).then_some(i64::from(at.port)),
                weight: (config.weight != DEFAULT_WEIGHT).then_some(i64::from(config.weight)),
                upper_threshold: (config.upper_threshold != 0).then_some(i64::from(config.upper_threshold)),
                lower_threshold: (config.lower_threshold != 0).then_some(i64::from(config.lower_threshold)),
                forwarding: None,
                health_check: None,
            };
            Ok((backend, Forwarding { method, tunnel }))
        }
        _ => Err(reasons),
    }
}

/// Tunnel options as the API writes them (`None`: the defaults), or why they cannot be written.
fn export_tunnel(tunnel: &TunnelConfig) -> Result<Option<Tunnel>, String> {
    let type_ = match tunnel.kind {
        model::TunnelType::Ipip => TunnelType::Ipip,
        model::TunnelType::Gue => TunnelType::Gue,
        model::TunnelType::Gre => TunnelType::Gre,
        model::TunnelType::Other(n) => return Err(format!("tunnel type {n} is not IPIP, GUE or GRE")),
    };
    let checksum = match tunnel.checksum {
        model::TunnelChecksum::None => TunnelChecksum::NoChecksum,
        model::TunnelChecksum::Checksum => TunnelChecksum::Checksum,
        model::TunnelChecksum::RemoteChecksum => TunnelChecksum::RemoteChecksum,
        model::TunnelChecksum::Other(n) => return Err(format!("tunnel checksum mode {n} is not one the API knows")),
    };
    match (type_, tunnel.port, checksum) {
        (TunnelType::Gue, 0, _) => return Err("GUE tunnel without a port".to_owned()),
        (TunnelType::Ipip | TunnelType::Gre, port @ 1.., _) => return Err(format!("{type_} tunnel with port {port}")),
        (TunnelType::Ipip, _, TunnelChecksum::Checksum | TunnelChecksum::RemoteChecksum) => {
            return Err(format!("IPIP tunnel with checksum mode {checksum}"));
        }
        (TunnelType::Gre, _, TunnelChecksum::RemoteChecksum) => {
            return Err("GRE tunnel with remote checksum offload".to_owned());
        }
        _ => {}
    }
    if *tunnel == TunnelConfig::default() {
        return Ok(None);
    }
    Ok(Some(Tunnel {
        type_,
        port: (tunnel.port != 0).then_some(i64::from(tunnel.port)),
        checksum: (checksum != TunnelChecksum::NoChecksum).then_some(checksum),
    }))
}

#[cfg(test)]
mod tests;
