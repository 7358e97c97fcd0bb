//! Validation of one `VirtualServiceSpec` into the service the kernel will hold, reporting every problem at once.
//!
//! The defaults and checks follow ipvsadm where it has an opinion (scheduler `wlc`, persistence timeout 300 s,
//! port 0 only with persistence, one-packet only for UDP and fwmark services, the service port copied into direct
//! routing and tunnel backends) and the kernel otherwise (weight and threshold ranges, GUE needs a port, another
//! family than the service's only through a tunnel).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::error::ValidationError;
use super::object::ObjectId;
use super::v1alpha1::{
    AddressFamily, Forwarding, ForwardingMethod, MAX_ADDRESS_LENGTH, MAX_BACKENDS, MAX_BACKENDS_FROM,
    MAX_PORT_NAME_LENGTH, Protocol, TunnelChecksum, TunnelType, VirtualServiceSpec,
};
use crate::model::{
    self, DestConfig, DestKey, DestMap, Destination, Family, ForwardMethod, Netmask, Service, ServiceConfig,
    ServiceFlags, ServiceKey, TunnelConfig,
};
use crate::table::{BackendCheck, DEFAULT_DRAIN_TIMEOUT_SECS, DesiredService};
use kube::core::Selector;

mod addresses;
mod checks;
mod labels;

pub(crate) use addresses::{destination_refused, virtual_address_refused};
pub use checks::{
    DEFAULT_FALL, DEFAULT_INTERVAL_SECS, DEFAULT_QUORUM, DEFAULT_RISE, DEFAULT_TIMEOUT_SECS, MAX_HEALTH_SECS,
};
pub(crate) use labels::{dns_label_problem, dns_subdomain_problem, selector_problems};

/// Scheduler used when `spec.scheduler` is not given (as ipvsadm).
pub const DEFAULT_SCHEDULER: &str = "wlc";
/// Schedulers the kernel ships (`ip_vs_<name>` modules); `twos` needs Linux 6.7 or later.
pub const SCHEDULERS: &[&str] =
    &["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"];
/// Scheduler flags: name in manifests, the scheduler that reads it, and its `ServiceFlags` bit.
pub const SCHEDULER_FLAGS: &[(&str, &str, u32)] = &[
    ("sh-fallback", "sh", ServiceFlags::SCHED1),
    ("sh-port", "sh", ServiceFlags::SCHED2),
    ("mh-fallback", "mh", ServiceFlags::SCHED1),
    ("mh-port", "mh", ServiceFlags::SCHED2),
];
/// Persistence engines the kernel ships.
pub const PERSISTENCE_ENGINES: &[&str] = &["sip"];
/// Persistence timeout when `persistence` is given without one (ipvsadm's `-p` default).
pub const DEFAULT_PERSISTENCE_TIMEOUT_SECS: u32 = 300;
/// Longest persistence timeout ipvsadm accepts (31 days).
pub const MAX_PERSISTENCE_TIMEOUT_SECS: u32 = 31 * 86_400;
/// Largest weight the kernel accepts (it is a signed int there).
pub const MAX_WEIGHT: u32 = i32::MAX as u32;
/// Weight of a backend that does not give one.
pub const DEFAULT_WEIGHT: u32 = 1;
/// Persistence prefix length of an IPv4 service that does not give one.
pub const DEFAULT_PREFIX_V4: u8 = 32;
/// Persistence prefix length of an IPv6 service that does not give one.
pub const DEFAULT_PREFIX_V6: u8 = 128;

/// The names of [`SCHEDULER_FLAGS`], as the CRD's schema lists them.
pub fn scheduler_flag_names() -> Vec<&'static str> {
    SCHEDULER_FLAGS.iter().map(|(name, _, _)| *name).collect()
}

/// Why an object was refused: every problem found, and the service it asks for when that much is valid (so that
/// a caller can leave that service alone instead of deleting it while the object is being fixed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Every problem, in field order.
    pub errors: Vec<ValidationError>,
    /// The service key, if the fields that make it are valid.
    pub key: Option<ServiceKey>,
}

/// What one valid object declares: its service with the static backends, where more backends come from, and which
/// nodes it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// The service, its static backends (`spec.backends`), drain timeout and health policy.
    pub service: Arc<DesiredService>,
    /// Backends to take from EndpointSlices (`spec.backendsFrom`), in order.
    pub backends_from: Vec<EndpointsRef>,
    /// Which nodes program it (`spec.nodeSelector`); `None`: every node.
    pub node_selector: Option<Selector>,
}

/// One `spec.backendsFrom` entry, validated: the endpoints of a Service in the object's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointsRef {
    /// The entry's path, for messages: `spec.backendsFrom[0]`.
    pub field: String,
    /// The Service's name.
    pub service: String,
    /// The port's name in the EndpointSlices; `None`: the slices' only port.
    pub port: Option<String>,
    /// Forwarding and weight of every backend from it (no thresholds).
    pub config: DestConfig,
}

/// Validates `spec` (of object `id`) into what it declares: service, static destinations, drain timeout, health
/// policy (check, sorry server), endpoint references and node selector. A Kubernetes object may use the fields that
/// need the agent (`backendsFrom`, `nodeSelector`); a file's document may not.
pub fn validate(id: &ObjectId, spec: &VirtualServiceSpec) -> Result<Declared, Rejected> {
    validate_as(id, spec, matches!(id, ObjectId::Kubernetes { .. }))
}

/// [`validate`] for an object some of whose fields could not be read (`unread`: one problem each, found while
/// reading it; the fields were left out or stood in for): it is invalid, with every problem — the unread fields'
/// first, then validation's of the other fields — and names its service only when the fields making the key were
/// read.
pub fn validate_read(
    id: &ObjectId,
    spec: &VirtualServiceSpec,
    unread: Vec<ValidationError>,
) -> Result<Declared, Rejected> {
    validate_read_as(id, spec, unread, matches!(id, ObjectId::Kubernetes { .. }))
}

/// [`validate_read`] as [`validate_as`].
pub fn validate_read_as(
    id: &ObjectId,
    spec: &VirtualServiceSpec,
    unread: Vec<ValidationError>,
    kubernetes: bool,
) -> Result<Declared, Rejected> {
    let validated = validate_as(id, spec, kubernetes);
    if unread.is_empty() {
        return validated;
    }
    // A problem of an unread field is the reader's; what validation says of its stand-in is noise.
    let covered = |field: &str| {
        unread.iter().any(|p| {
            field.strip_prefix(p.field.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    };
    const KEY_FIELDS: &[&str] =
        &["", "spec", "spec.address", "spec.port", "spec.protocol", "spec.fwmark", "spec.family"];
    let key_unread = unread.iter().any(|p| KEY_FIELDS.contains(&p.field.as_str()));
    let (key, errors) = match validated {
        Ok(declared) => (Some(declared.service.service.key), Vec::new()),
        Err(rejected) => (rejected.key, rejected.errors),
    };
    // With a key field unread, what validation says of the other key fields (`spec.address: required unless
    // spec.fwmark is set`) follows from the stand-in, not from the object.
    let own: Vec<ValidationError> = errors
        .into_iter()
        .filter(|e| !(covered(&e.field) || key_unread && KEY_FIELDS.contains(&e.field.as_str())))
        .collect();
    let mut all = unread;
    all.extend(own);
    Err(Rejected { errors: all, key: key.filter(|_| !key_unread) })
}

/// [`validate`], for an object that the agent will read (`kubernetes`) or `run` and `apply` (not), whatever its
/// identity: `validate --kubernetes` checks files that a cluster will receive.
pub fn validate_as(id: &ObjectId, spec: &VirtualServiceSpec, kubernetes: bool) -> Result<Declared, Rejected> {
    let mut problems = Problems { id, kubernetes, errors: Vec::new() };
    let (key, family) = problems.key(spec);
    let config = problems.service_config(spec, family);
    let default_forwarding = match &spec.forwarding {
        Some(fwd) => problems.forwarding("spec.forwarding", fwd),
        None => Some((ForwardMethod::Masquerade, TunnelConfig::default())),
    };
    let ctx = DestContext::new(spec, family, default_forwarding);
    let backends = problems.backends(spec, &ctx);
    let backends_from = problems.backends_from(spec, default_forwarding);
    let node_selector = problems.node_selector(spec);
    let drain = match spec.drain_timeout_seconds {
        None => Some(DEFAULT_DRAIN_TIMEOUT_SECS),
        Some(d) => problems.range("spec.drainTimeoutSeconds", d, 0, i64::MAX),
    };
    let health = problems.health(spec, &ctx, &backends, backends_from.as_deref());
    let (bind_address, withdraw_address_when_down) = problems.binding(spec);
    match (key, config, backends.dests, drain, backends_from, node_selector, health) {
        (
            Some(key),
            Some(config),
            Some(dests),
            Some(drain_timeout_secs),
            Some(backends_from),
            Some(node_selector),
            Some(health),
        ) if problems.errors.is_empty() => {
            let service = DesiredService {
                service: Service::new(key, config),
                dests,
                drain_timeout_secs,
                origin: id.clone(),
                health: health.map(Arc::new),
                bind_address,
                withdraw_address_when_down,
            };
            Ok(Declared { service: Arc::new(service), backends_from, node_selector })
        }
        _ => {
            if problems.errors.is_empty() {
                // Every step that gives up reports why; this only guards against a step that forgot to.
                problems.error("spec", "incomplete (internal error: no reason recorded)");
            }
            Err(Rejected { errors: problems.errors, key })
        }
    }
}

/// What every destination of a service (backend or sorry server) is checked against.
struct DestContext {
    is_fwmark: bool,
    /// The service's port, when valid; fwmark services have none and their destinations default to 0.
    service_port: Option<u16>,
    /// The service's family, when it can be told.
    family: Option<Family>,
    /// `spec.forwarding`, or Masquerade; `None` when it is invalid (reported).
    default_forwarding: Option<(ForwardMethod, TunnelConfig)>,
}

impl DestContext {
    fn new(
        spec: &VirtualServiceSpec,
        family: Option<Family>,
        default_forwarding: Option<(ForwardMethod, TunnelConfig)>,
    ) -> Self {
        let is_fwmark = spec.fwmark.is_some();
        let service_port = if is_fwmark { Some(0) } else { spec.port.and_then(|p| u16::try_from(p).ok()) };
        DestContext { is_fwmark, service_port, family, default_forwarding }
    }
}

/// The fields of one destination as written (a backend's, or the sorry server's with the defaults).
struct DestSpec<'a> {
    address: &'a str,
    port: Option<i64>,
    weight: Option<i64>,
    upper_threshold: Option<i64>,
    lower_threshold: Option<i64>,
    forwarding: Option<&'a Forwarding>,
}

/// `spec.backends`, validated.
struct Backends {
    /// The destinations; `None` when any backend has a problem (each reported).
    dests: Option<DestMap>,
    /// The valid backends' health check overrides.
    checks: BTreeMap<DestKey, BackendCheck>,
    /// Which entry each valid key came from (the first, for duplicates).
    index: BTreeMap<DestKey, usize>,
}

/// Collects the problems of one object; its methods check one part of the spec each and report into it.
struct Problems<'a> {
    id: &'a ObjectId,
    /// Whether the object is the agent's (it may use `backendsFrom` and `nodeSelector`).
    kubernetes: bool,
    errors: Vec<ValidationError>,
}

impl Problems<'_> {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError::new(self.id.clone(), field, message));
    }

    /// `value` as a `T` if it is within `min..=max`, else an error on `field`.
    fn range<T: TryFrom<i64>>(&mut self, field: &str, value: i64, min: i64, max: i64) -> Option<T> {
        if (min..=max).contains(&value)
            && let Ok(v) = T::try_from(value)
        {
            return Some(v);
        }
        self.error(field, format!("{value} is out of range {min}-{max}"));
        None
    }

    /// Whether `text` at `field` is at most `max` characters long (as the schema's `maxLength` counts them); an
    /// over-long value is reported by its length, not echoed.
    fn length(&mut self, field: &str, text: &str, max: usize) -> bool {
        let length = text.chars().count();
        if length > max {
            self.error(field, format!("{length} characters long; at most {max}"));
        }
        length <= max
    }

    fn address(&mut self, field: &str, text: &str) -> Option<IpAddr> {
        if !self.length(field, text, MAX_ADDRESS_LENGTH) {
            return None;
        }
        match text.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(field, format!("`{text}` is not an IPv4 or IPv6 address"));
                None
            }
        }
    }

    /// The service key, and the service's family when it can be told even if the key cannot.
    fn key(&mut self, spec: &VirtualServiceSpec) -> (Option<ServiceKey>, Option<Family>) {
        let given_family = spec.family.map(family_of);
        if let Some(mark) = spec.fwmark {
            let mark = self.range::<u32>("spec.fwmark", mark, 1, i64::from(u32::MAX));
            if spec.address.is_some() {
                self.error("spec.address", "not allowed with spec.fwmark: a service is keyed by an address or a mark");
            }
            if spec.port.is_some() {
                self.error("spec.port", "not allowed with spec.fwmark: a fwmark service has no port");
            }
            if spec.protocol.is_some() {
                self.error("spec.protocol", "not allowed with spec.fwmark: a fwmark service has no protocol");
            }
            if given_family.is_none() {
                self.error("spec.family", "required with spec.fwmark (IPv4 or IPv6)");
            }
            let key = mark.zip(given_family).map(|(mark, family)| ServiceKey::Fwmark { family, mark });
            return (key, given_family);
        }

        // A refused address still makes the key: the object names the service it asks for, which is then held as
        // it is rather than deleted (and the backends are checked against its family).
        let addr = match &spec.address {
            Some(text) => {
                let addr = self.address("spec.address", text);
                if let Some(addr) = &addr {
                    self.virtual_address("spec.address", addr);
                }
                addr
            }
            None => {
                self.error("spec.address", "required unless spec.fwmark is set");
                None
            }
        };
        if let (Some(addr), Some(given)) = (addr, given_family)
            && Family::of(&addr) != given
        {
            self.error(
                "spec.family",
                format!("{given} contradicts spec.address {addr}, which is {}", Family::of(&addr)),
            );
        }
        let port = match spec.port {
            Some(port) => self.range::<u16>("spec.port", port, 0, 65535),
            None => {
                self.error("spec.port", "required with spec.address (0 = every port, with spec.persistence)");
                None
            }
        };
        if port == Some(0) && spec.persistence.is_none() {
            self.error("spec.port", "0 (every port) needs spec.persistence, as in ipvsadm");
        }
        let protocol = protocol_of(spec.protocol.unwrap_or(Protocol::Tcp));
        let key = addr.zip(port).map(|(addr, port)| ServiceKey::Addr { protocol, addr, port });
        (key, addr.as_ref().map(Family::of).or(given_family))
    }

    fn service_config(&mut self, spec: &VirtualServiceSpec, family: Option<Family>) -> Option<ServiceConfig> {
        let scheduler = spec.scheduler.as_deref().unwrap_or(DEFAULT_SCHEDULER);
        let scheduler_ok = SCHEDULERS.contains(&scheduler);
        if !scheduler_ok {
            self.error("spec.scheduler", format!("unknown scheduler `{scheduler}` (known: {})", SCHEDULERS.join(" ")));
        }

        let mut flags = ServiceFlags::default();
        let mut flags_ok = true;
        for (i, name) in spec.scheduler_flags.iter().enumerate() {
            let field = format!("spec.schedulerFlags[{i}]");
            match SCHEDULER_FLAGS.iter().find(|(n, _, _)| n == name) {
                None => {
                    let known: Vec<_> = SCHEDULER_FLAGS.iter().map(|(n, _, _)| *n).collect();
                    self.error(field, format!("unknown scheduler flag `{name}` (known: {})", known.join(" ")));
                    flags_ok = false;
                }
                Some((_, owner, _)) if *owner != scheduler => {
                    self.error(field, format!("`{name}` is a flag of scheduler {owner}, not of {scheduler}"));
                    flags_ok = false;
                }
                Some((_, _, bit)) if flags.has(*bit) => {
                    self.error(field, format!("`{name}` is given twice"));
                    flags_ok = false;
                }
                Some((_, _, bit)) => flags = flags.with(*bit, true),
            }
        }

        if spec.one_packet == Some(true) && spec.fwmark.is_none() {
            let protocol = spec.protocol.unwrap_or(Protocol::Tcp);
            if protocol != Protocol::Udp {
                self.error(
                    "spec.onePacket",
                    format!("only UDP and fwmark services schedule per packet, not {protocol}"),
                );
                flags_ok = false;
            }
        }
        flags = flags.with(ServiceFlags::ONEPACKET, spec.one_packet == Some(true));

        let (timeout, netmask, pe_name) = match &spec.persistence {
            None => (Some(0), family.map(Netmask::host), Some(None)),
            Some(p) => {
                flags = flags.with(ServiceFlags::PERSISTENT, true);
                let field = "spec.persistence.timeoutSeconds";
                let timeout = match p.timeout_seconds {
                    None => Some(DEFAULT_PERSISTENCE_TIMEOUT_SECS),
                    Some(t) => self.range(field, t, 1, i64::from(MAX_PERSISTENCE_TIMEOUT_SECS)),
                };
                let netmask = self.prefix(p.prefix_length, family);
                let pe_name = match &p.engine {
                    None => Some(None),
                    Some(e) if PERSISTENCE_ENGINES.contains(&e.as_str()) => Some(Some(e.clone())),
                    Some(e) => {
                        let known = PERSISTENCE_ENGINES.join(" ");
                        self.error(
                            "spec.persistence.engine",
                            format!("unknown persistence engine `{e}` (known: {known})"),
                        );
                        None
                    }
                };
                (timeout, netmask, pe_name)
            }
        };

        let (timeout, netmask, pe_name) = (timeout?, netmask?, pe_name?);
        (scheduler_ok && flags_ok).then(|| ServiceConfig {
            scheduler: scheduler.to_owned(),
            flags,
            timeout,
            netmask,
            pe_name,
        })
    }

    /// The persistence netmask from `prefixLength`.
    fn prefix(&mut self, given: Option<i64>, family: Option<Family>) -> Option<Netmask> {
        let field = "spec.persistence.prefixLength";
        match (family, given) {
            (Some(Family::V4), None) => Some(Netmask::from_prefix(Family::V4, DEFAULT_PREFIX_V4)),
            (Some(Family::V6), None) => Some(Netmask::from_prefix(Family::V6, DEFAULT_PREFIX_V6)),
            (Some(family @ Family::V4), Some(len)) => {
                self.range(field, len, 0, 32).map(|len| Netmask::from_prefix(family, len))
            }
            (Some(family @ Family::V6), Some(len)) => {
                self.range(field, len, 1, 128).map(|len| Netmask::from_prefix(family, len))
            }
            (None, Some(len)) => {
                // The family is already reported as unknown; still say whether the length could fit either family.
                self.range::<u8>(field, len, 0, 128);
                None
            }
            (None, None) => None,
        }
    }

    /// Forwarding method and tunnel options, checked.
    fn forwarding(&mut self, field: &str, fwd: &Forwarding) -> Option<(ForwardMethod, TunnelConfig)> {
        let method = forward_of(fwd.method);
        let Some(tunnel) = &fwd.tunnel else {
            return Some((method, TunnelConfig::default()));
        };
        if fwd.method != ForwardingMethod::Tunnel {
            self.error(format!("{field}.tunnel"), format!("only allowed with method Tunnel, not {}", fwd.method));
            return None;
        }
        let port = match (tunnel.type_, tunnel.port) {
            (TunnelType::Gue, None) => {
                self.error(format!("{field}.tunnel.port"), "required with type GUE");
                None
            }
            (TunnelType::Gue, Some(port)) => self.range::<u16>(&format!("{field}.tunnel.port"), port, 1, 65535),
            (other, Some(_)) => {
                self.error(format!("{field}.tunnel.port"), format!("only used by type GUE, not {other}"));
                None
            }
            (_, None) => Some(0),
        };
        let checksum = tunnel.checksum.unwrap_or_default();
        let checksum_ok = match (tunnel.type_, checksum) {
            (TunnelType::Ipip, TunnelChecksum::Checksum | TunnelChecksum::RemoteChecksum) => {
                self.error(format!("{field}.tunnel.checksum"), "IPIP has no checksum option (GUE and GRE have)");
                false
            }
            (TunnelType::Gre, TunnelChecksum::RemoteChecksum) => {
                self.error(format!("{field}.tunnel.checksum"), "RemoteChecksum is a GUE option; GRE has only Checksum");
                false
            }
            _ => true,
        };
        let config = TunnelConfig { kind: tunnel_type_of(tunnel.type_), port: port?, checksum: checksum_of(checksum) };
        checksum_ok.then_some((method, config))
    }

    /// The static backends (`spec.backends`) with their health check overrides.
    fn backends(&mut self, spec: &VirtualServiceSpec, ctx: &DestContext) -> Backends {
        let mut dests: Vec<Destination> = Vec::new();
        let mut checks = BTreeMap::new();
        let mut seen: BTreeMap<DestKey, usize> = BTreeMap::new();
        let mut all_ok = true;
        if spec.backends.len() > MAX_BACKENDS {
            self.error(
                "spec.backends",
                format!(
                    "{} backends; at most {MAX_BACKENDS} in one object (larger sets come from spec.backendsFrom)",
                    spec.backends.len()
                ),
            );
            all_ok = false;
        }
        for (i, backend) in spec.backends.iter().enumerate() {
            let field = format!("spec.backends[{i}]");
            let errors_before = self.errors.len();
            let given = DestSpec {
                address: &backend.address,
                port: backend.port,
                weight: backend.weight,
                upper_threshold: backend.upper_threshold,
                lower_threshold: backend.lower_threshold,
                forwarding: backend.forwarding.as_ref(),
            };
            let (key, dest) = self.destination(&field, ctx, &given);

            if let Some(key) = key {
                if let Some(first) = seen.get(&key) {
                    self.error(field.clone(), format!("duplicate of spec.backends[{first}] ({key})"));
                } else {
                    seen.insert(key, i);
                }
            }

            let check = match &backend.health_check {
                None => Some(None),
                Some(given) => self.backend_check(&field, spec, given),
            };
            let own_port = match check {
                Some(None) => None,
                Some(Some(BackendCheck::Probe { port, .. })) => port,
                _ => Some(1),
            };
            if let (Some(hc), Some(key)) = (&spec.health_check, key)
                && check.is_some()
                && own_port.is_none()
                && hc.port.is_none()
                && key.port == 0
            {
                self.error(
                    field.clone(),
                    "port 0 leaves the health check nothing to probe: set spec.healthCheck.port, or this backend's \
                     healthCheck.port or healthCheck.disabled",
                );
            }

            match (dest, check) {
                (Some(dest), Some(check)) if self.errors.len() == errors_before => {
                    if let Some(check) = check {
                        checks.insert(dest.key, check);
                    }
                    dests.push(dest);
                }
                _ => all_ok = false,
            }
        }
        // Collected: in key order, a later duplicate replacing an earlier one (they are refused above), no spare room.
        let dests = all_ok.then(|| dests.into_iter().map(|d| (d.key, d)).collect());
        Backends { dests, checks, index: seen }
    }

    /// One destination (a backend or the sorry server) at `field`: its key when address and port are valid, and the
    /// destination when everything is (each problem reported).
    fn destination(
        &mut self,
        field: &str,
        ctx: &DestContext,
        given: &DestSpec<'_>,
    ) -> (Option<DestKey>, Option<Destination>) {
        let errors_before = self.errors.len();
        let addr = self.address(&format!("{field}.address"), given.address);
        let forwarding = match given.forwarding {
            Some(fwd) => self.forwarding(&format!("{field}.forwarding"), fwd),
            None => ctx.default_forwarding,
        };
        let method = forwarding.map(|(method, _)| method);
        if let Some(addr) = &addr {
            self.destination_address(&format!("{field}.address"), addr, method);
        }

        let port = match given.port {
            None => ctx.service_port,
            Some(port) => {
                let port = self.range::<u16>(&format!("{field}.port"), port, 0, 65535);
                if let (Some(port), Some(service_port), Some(method)) = (port, ctx.service_port, method)
                    && !ctx.is_fwmark
                    && port != service_port
                    && matches!(method, ForwardMethod::DirectRoute | ForwardMethod::Tunnel)
                {
                    let name = if method == ForwardMethod::Tunnel { "Tunnel" } else { "DirectRouting" };
                    self.error(
                        format!("{field}.port"),
                        format!(
                            "{port} differs from spec.port {service_port}, but {name} cannot change the port \
                             (omit it to use the service's)"
                        ),
                    );
                }
                port
            }
        };

        if let (Some(addr), Some(family), Some(method)) = (addr, ctx.family, method)
            && Family::of(&addr) != family
            && method != ForwardMethod::Tunnel
        {
            self.error(
                format!("{field}.address"),
                format!(
                    "{addr} is {} but the service is {family}: another family needs forwarding method Tunnel",
                    Family::of(&addr)
                ),
            );
        }

        let weight = self.weight(&format!("{field}.weight"), given.weight);
        let upper = self.threshold(&format!("{field}.upperThreshold"), given.upper_threshold);
        let lower = self.threshold(&format!("{field}.lowerThreshold"), given.lower_threshold);
        if let (Some(upper), Some(lower)) = (upper, lower)
            && lower > upper
        {
            self.error(
                format!("{field}.lowerThreshold"),
                format!("{lower} is above upperThreshold {upper} (0 = no limit); the kernel refuses it"),
            );
        }

        let key = addr.zip(port).map(|(addr, port)| DestKey::new(addr, port));
        let dest = match (key, forwarding, weight, upper, lower) {
            (Some(key), Some((forward, tunnel)), Some(weight), Some(upper), Some(lower))
                if self.errors.len() == errors_before =>
            {
                let config = DestConfig { forward, weight, upper_threshold: upper, lower_threshold: lower, tunnel };
                Some(Destination::new(key, config))
            }
            _ => None,
        };
        (key, dest)
    }

    /// `spec.backendsFrom`, or `None` when an entry has a problem (each reported).
    fn backends_from(
        &mut self,
        spec: &VirtualServiceSpec,
        default_forwarding: Option<(ForwardMethod, TunnelConfig)>,
    ) -> Option<Vec<EndpointsRef>> {
        if spec.backends_from.is_empty() {
            return Some(Vec::new());
        }
        if !self.kubernetes {
            self.error(
                "spec.backendsFrom",
                "needs the Kubernetes agent (EndpointSlices); in files, list the backends in spec.backends",
            );
            return None;
        }
        let errors_before = self.errors.len();
        if spec.backends_from.len() > MAX_BACKENDS_FROM {
            self.error(
                "spec.backendsFrom",
                format!("{} entries; at most {MAX_BACKENDS_FROM}", spec.backends_from.len()),
            );
        }
        let mut refs = Vec::new();
        let mut seen: BTreeMap<(&str, Option<&str>), usize> = BTreeMap::new();
        for (i, from) in spec.backends_from.iter().enumerate() {
            let field = format!("spec.backendsFrom[{i}]");
            if !is_dns_label(&from.service) {
                self.error(
                    format!("{field}.service"),
                    format!("`{}` is not a Service name (lowercase letters, digits and '-', at most 63)", from.service),
                );
            }
            match from.port.as_deref() {
                Some("") => self.error(format!("{field}.port"), "empty; omit it to take the slices' only port"),
                Some(port) => {
                    if self.length(&format!("{field}.port"), port, MAX_PORT_NAME_LENGTH)
                        && let Some(why) = labels::port_name_problem(port)
                    {
                        self.error(format!("{field}.port"), why);
                    }
                }
                None => {}
            }
            let weight = self.weight(&format!("{field}.weight"), from.weight);
            if let Some(first) = seen.insert((from.service.as_str(), from.port.as_deref()), i) {
                self.error(field.clone(), format!("duplicate of spec.backendsFrom[{first}]"));
            }
            if let (Some(weight), Some((forward, tunnel))) = (weight, default_forwarding) {
                let config = DestConfig { forward, weight, upper_threshold: 0, lower_threshold: 0, tunnel };
                refs.push(EndpointsRef { field, service: from.service.clone(), port: from.port.clone(), config });
            }
        }
        (self.errors.len() == errors_before && refs.len() == spec.backends_from.len()).then_some(refs)
    }

    /// `spec.bindAddress` (default true for an address service) and `spec.withdrawAddressWhenDown`; a
    /// contradiction is reported, and the service then binds its address, without withdrawal.
    fn binding(&mut self, spec: &VirtualServiceSpec) -> (bool, bool) {
        if spec.address.is_none() && spec.bind_address.is_some() {
            self.error("spec.bindAddress", "only for address services (a fwmark service has no address)");
        }
        let bind = spec.address.is_some() && spec.bind_address.unwrap_or(true);
        let withdraw = spec.withdraw_address_when_down.unwrap_or(false);
        if withdraw && !bind {
            self.error(
                "spec.withdrawAddressWhenDown",
                "needs an address this program binds (spec.address set, spec.bindAddress not false)",
            );
            return (bind, false);
        }
        (bind, withdraw)
    }

    /// `spec.nodeSelector`: `Some(None)` when absent (every node), `None` when invalid (reported).
    fn node_selector(&mut self, spec: &VirtualServiceSpec) -> Option<Option<Selector>> {
        let Some(selector) = &spec.node_selector else { return Some(None) };
        if !self.kubernetes {
            self.error(
                "spec.nodeSelector",
                "needs the Kubernetes agent (Node labels); a file applies where it is used",
            );
            return None;
        }
        let errors_before = self.errors.len();
        for problem in labels::selector_problems(selector) {
            self.error(format!("spec.nodeSelector{}", problem.field), problem.message);
        }
        for (i, req) in selector.match_expressions.iter().flatten().enumerate() {
            let field = format!("spec.nodeSelector.matchExpressions[{i}]");
            let values = req.values.as_ref().map_or(0, Vec::len);
            match req.operator.as_str() {
                "In" | "NotIn" if values == 0 => {
                    self.error(format!("{field}.values"), format!("operator {} needs at least one value", req.operator))
                }
                "Exists" | "DoesNotExist" if values > 0 => {
                    self.error(format!("{field}.values"), format!("operator {} takes no values", req.operator))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => self.error(
                    format!("{field}.operator"),
                    format!("unknown operator `{other}` (In, NotIn, Exists, DoesNotExist)"),
                ),
            }
        }
        if self.errors.len() != errors_before {
            return None;
        }
        match Selector::try_from(selector.clone()) {
            Ok(selector) => Some(Some(selector)),
            Err(e) => {
                self.error("spec.nodeSelector", e.0);
                None
            }
        }
    }

    /// A destination's weight (a backend's, the sorry server's, a `backendsFrom` entry's): [`DEFAULT_WEIGHT`] when
    /// not given, else within the kernel's range.
    fn weight(&mut self, field: &str, value: Option<i64>) -> Option<u32> {
        match value {
            None => Some(DEFAULT_WEIGHT),
            Some(w) => self.range(field, w, 0, i64::from(MAX_WEIGHT)),
        }
    }

    fn threshold(&mut self, field: &str, value: Option<i64>) -> Option<u32> {
        match value {
            None => Some(0),
            Some(v) => self.range(field, v, 0, i64::from(u32::MAX)),
        }
    }
}

/// Whether `name` is a DNS-1035 label, as Service names are.
fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// Whether the kernel can send to `addr` (it refuses unspecified, multicast and broadcast destinations).
pub(crate) fn is_unicast(addr: &IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}

pub(crate) fn family_of(family: AddressFamily) -> Family {
    match family {
        AddressFamily::IPv4 => Family::V4,
        AddressFamily::IPv6 => Family::V6,
    }
}

pub(crate) fn protocol_of(protocol: Protocol) -> model::Protocol {
    match protocol {
        Protocol::Tcp => model::Protocol::Tcp,
        Protocol::Udp => model::Protocol::Udp,
        Protocol::Sctp => model::Protocol::Sctp,
    }
}

pub(crate) fn forward_of(method: ForwardingMethod) -> ForwardMethod {
    match method {
        ForwardingMethod::Masquerade => ForwardMethod::Masquerade,
        ForwardingMethod::DirectRouting => ForwardMethod::DirectRoute,
        ForwardingMethod::Tunnel => ForwardMethod::Tunnel,
        ForwardingMethod::Local => ForwardMethod::Local,
    }
}

pub(crate) fn tunnel_type_of(kind: TunnelType) -> model::TunnelType {
    match kind {
        TunnelType::Ipip => model::TunnelType::Ipip,
        TunnelType::Gue => model::TunnelType::Gue,
        TunnelType::Gre => model::TunnelType::Gre,
    }
}

pub(crate) fn checksum_of(checksum: TunnelChecksum) -> model::TunnelChecksum {
    match checksum {
        TunnelChecksum::NoChecksum => model::TunnelChecksum::None,
        TunnelChecksum::Checksum => model::TunnelChecksum::Checksum,
        TunnelChecksum::RemoteChecksum => model::TunnelChecksum::RemoteChecksum,
    }
}

#[cfg(test)]
mod tests;
