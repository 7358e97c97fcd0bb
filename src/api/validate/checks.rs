//! `spec.healthCheck`, `spec.sorryServer`, `spec.quorum`, `spec.hysteresis` and the backends' `healthCheck` into a
//! [`HealthPolicy`]. The defaults are keepalived's where it has them (a backend seen first is healthy, an unhealthy
//! one is inhibited: weight 0) and the otherwise (every 5 s, 2 s timeout, rise 2, fall 3).

use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use hyper::http::uri::{Authority, PathAndQuery};
use rustls::pki_types::ServerName;

use super::{Backends, DestContext, DestSpec, EndpointsRef, Problems};
use crate::api::v1alpha1::{
    BackendHealthCheck, DnsRecordType, FailureAction, HealthCheck, HealthCheckMethod, HealthCheckType, InitialState,
    MAX_DNS_NAME_LENGTH, MAX_EXPECT_BODY_LENGTH, MAX_EXPECT_STATUS, MAX_GRPC_SERVICE_LENGTH, MAX_HEX_LENGTH,
    MAX_HOST_LENGTH, MAX_PATH_LENGTH, SorryServer, VirtualServiceSpec,
};
use crate::health::{self, HttpProbe, HttpsProbe, Probe, Schedule, StatusRange};
use crate::model::{Destination, Family, ForwardMethod};
use crate::table::{BackendCheck, HealthPolicy, OnFailure};

/// Seconds between two probes of a backend when `intervalSeconds` is not given.
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// Seconds a probe may take when `timeoutSeconds` is not given (half the interval when that is shorter).
pub const DEFAULT_TIMEOUT_SECS: u64 = 2;
/// Successes in a row that make an unhealthy backend healthy, when `rise` is not given.
pub const DEFAULT_RISE: u32 = 2;
/// Failures in a row that make a healthy backend unhealthy, when `fall` is not given.
pub const DEFAULT_FALL: u32 = 3;
/// The longest interval, timeout and slow start accepted: a day.
pub const MAX_HEALTH_SECS: u64 = 86_400;
/// The quorum when `quorum` is not given: the sorry server stands in when no backend is healthy.
pub const DEFAULT_QUORUM: u64 = 1;

const FIELD: &str = "spec.healthCheck";
const HTTP_TYPES: &[HealthCheckType] = &[HealthCheckType::Http, HealthCheckType::Https];

/// `spec.healthCheck` without the per-backend parts.
struct Probing {
    check: health::Check,
    schedule: Schedule,
    port: Option<u16>,
    source: Option<IpAddr>,
    on_failure: OnFailure,
    slow_start: Option<Duration>,
}

impl Problems<'_> {
    /// The service's health policy: `Some(None)` when it declares none, `None` when it has a problem (reported).
    pub(super) fn health(
        &mut self,
        spec: &VirtualServiceSpec,
        ctx: &DestContext,
        backends: &Backends,
        backends_from: Option<&[EndpointsRef]>,
    ) -> Option<Option<HealthPolicy>> {
        let errors_before = self.errors.len();
        let probing = spec.health_check.as_ref().map(|hc| self.health_check(hc, spec, ctx, backends, backends_from));
        let sorry = spec.sorry_server.as_ref().map(|s| self.sorry_server(s, ctx, backends));
        let (quorum, hysteresis) = self.quorum(spec);
        if self.errors.len() != errors_before {
            return None;
        }
        let probing = match probing {
            None => None,
            Some(probing) => Some(probing?),
        };
        let sorry_server = match sorry {
            None => None,
            Some(sorry) => Some(sorry?),
        };
        if probing.is_none() && sorry_server.is_none() {
            return Some(None);
        }
        let (quorum, hysteresis) = (quorum?, hysteresis?);
        let policy = match probing {
            Some(p) => HealthPolicy {
                check: Some(p.check),
                schedule: p.schedule,
                port: p.port,
                source: p.source,
                on_failure: p.on_failure,
                slow_start: p.slow_start,
                sorry_server,
                quorum,
                hysteresis,
                backends: backends.checks.clone(),
            },
            // A sorry server alone: nothing is probed, every backend counts as healthy.
            None => HealthPolicy {
                check: None,
                schedule: default_schedule(),
                port: None,
                source: None,
                on_failure: OnFailure::Inhibit,
                slow_start: None,
                sorry_server,
                quorum,
                hysteresis,
                backends: backends.checks.clone(),
            },
        };
        Some(Some(policy))
    }

    /// A backend's `healthCheck` at `field` (`spec.backends[1]`): `Some(None)` when it changes nothing.
    pub(super) fn backend_check(
        &mut self,
        field: &str,
        spec: &VirtualServiceSpec,
        given: &BackendHealthCheck,
    ) -> Option<Option<BackendCheck>> {
        let field = format!("{field}.healthCheck");
        if spec.health_check.is_none() {
            self.error(field, "needs spec.healthCheck: there is no check to change");
            return None;
        }
        let changes = given.port.is_some() || given.address.is_some();
        match given.disabled {
            Some(_) if changes => {
                self.error(field, "disabled excludes port and address: give disabled alone, or port and/or address");
                None
            }
            Some(true) => Some(Some(BackendCheck::Disabled)),
            Some(false) => Some(None),
            None if !changes => {
                self.error(field, "empty: give port and/or address, or disabled");
                None
            }
            None => {
                let port = match given.port {
                    Some(port) => Some(self.range::<u16>(&format!("{field}.port"), port, 1, 65535)?),
                    None => None,
                };
                let address = match &given.address {
                    Some(text) => {
                        let field = format!("{field}.address");
                        let address = self.address(&field, text)?;
                        self.probe_address(&field, &address)?;
                        Some(address)
                    }
                    None => None,
                };
                Some(Some(BackendCheck::Probe { address, port }))
            }
        }
    }

    /// An address a probe is sent to must be one a node can reach: a unicast address, in its IPv4 form.
    fn probe_address(&mut self, field: &str, address: &IpAddr) -> Option<()> {
        let refused = match address {
            IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast() || v6.to_ipv4_mapped().is_some(),
        };
        if refused {
            self.error(field, format!("{address} cannot be probed: give a unicast address (IPv4 in its IPv4 form)"));
            return None;
        }
        Some(())
    }

    fn health_check(
        &mut self,
        hc: &HealthCheck,
        spec: &VirtualServiceSpec,
        ctx: &DestContext,
        backends: &Backends,
        backends_from: Option<&[EndpointsRef]>,
    ) -> Option<Probing> {
        let errors_before = self.errors.len();
        let secs = |this: &mut Self, name: &str, given: Option<i64>, default: u64, min: i64| match given {
            None => Some(default),
            Some(v) => this.range::<u64>(&format!("{FIELD}.{name}"), v, min, MAX_HEALTH_SECS as i64),
        };
        let interval = secs(self, "intervalSeconds", hc.interval_seconds, DEFAULT_INTERVAL_SECS, 1);
        let given_timeout = match hc.timeout_seconds {
            None => Some(None),
            Some(v) => self.range::<u64>(&format!("{FIELD}.timeoutSeconds"), v, 1, MAX_HEALTH_SECS as i64).map(Some),
        };
        if let (Some(interval), Some(Some(timeout))) = (interval, given_timeout)
            && timeout >= interval
        {
            let default = if hc.interval_seconds.is_none() { " (the default)" } else { "" };
            self.error(
                format!("{FIELD}.timeoutSeconds"),
                format!("{timeout} is not below intervalSeconds {interval}{default}"),
            );
        }
        // Not given: 2 s, or half the interval when that is shorter (checks every second time out after 500 ms).
        let timeout = match (interval, given_timeout) {
            (_, Some(Some(timeout))) => Some(Duration::from_secs(timeout)),
            (Some(interval), Some(None)) => {
                Some(Duration::from_secs(DEFAULT_TIMEOUT_SECS).min(Duration::from_millis(interval * 500)))
            }
            _ => None,
        };
        let count = |this: &mut Self, name: &str, given: Option<i64>, default: u32| match given {
            None => Some(default),
            Some(v) => this.range::<u32>(&format!("{FIELD}.{name}"), v, 1, i64::from(u32::MAX)),
        };
        let rise = count(self, "rise", hc.rise, DEFAULT_RISE);
        let fall = count(self, "fall", hc.fall, DEFAULT_FALL);
        let port = match hc.port {
            None => Some(None),
            Some(p) => self.range::<u16>(&format!("{FIELD}.port"), p, 1, 65535).map(Some),
        };
        if hc.port.is_none() {
            self.endpoints_have_a_port(ctx, backends_from);
        }
        let source = match &hc.source_address {
            None => Some(None),
            Some(text) => self.source_address(text, spec, ctx, backends).map(Some),
        };

        self.foreign_fields(hc);
        let probe = if self.lengths(hc) { self.probe(hc) } else { None };

        let slow_start = match hc.slow_start_seconds {
            None => Some(None),
            Some(s) => self
                .range::<u64>(&format!("{FIELD}.slowStartSeconds"), s, 1, MAX_HEALTH_SECS as i64)
                .map(|s| Some(Duration::from_secs(s))),
        };
        let on_failure = match hc.on_failure {
            None | Some(FailureAction::Inhibit) => OnFailure::Inhibit,
            Some(FailureAction::Remove) => OnFailure::Remove,
        };
        let initial_healthy = hc.initial_state != Some(InitialState::Unhealthy);

        let (interval, timeout, rise, fall) = (interval?, timeout?, rise?, fall?);
        let (port, source, probe, slow_start) = (port?, source?, probe?, slow_start?);
        (self.errors.len() == errors_before).then(|| Probing {
            check: health::Check::new(probe, timeout),
            schedule: Schedule { interval: Duration::from_secs(interval), rise, fall, initial_healthy },
            port,
            source,
            on_failure,
            slow_start,
        })
    }

    /// Endpoints of a service on port 0 (fwmark, or every port) keep that port with DirectRouting and Tunnel: the
    /// check then needs a port of its own.
    fn endpoints_have_a_port(&mut self, ctx: &DestContext, backends_from: Option<&[EndpointsRef]>) {
        if ctx.service_port != Some(0) {
            return;
        }
        let kept = backends_from
            .into_iter()
            .flatten()
            .find(|r| matches!(r.config.forward, ForwardMethod::DirectRoute | ForwardMethod::Tunnel));
        if let Some(from) = kept {
            self.error(
                format!("{FIELD}.port"),
                format!(
                    "required: the backends of {} keep the service's port 0 ({}), which leaves nothing to probe",
                    from.field,
                    if from.config.forward == ForwardMethod::Tunnel { "Tunnel" } else { "DirectRouting" }
                ),
            );
        }
    }

    /// `sourceAddress`: a unicast address of the family of every backend it probes.
    fn source_address(
        &mut self,
        text: &str,
        spec: &VirtualServiceSpec,
        ctx: &DestContext,
        backends: &Backends,
    ) -> Option<IpAddr> {
        let field = format!("{FIELD}.sourceAddress");
        let source = self.address(&field, text)?;
        if !super::is_unicast(&source) {
            self.error(field, format!("{source} is not a unicast address: probes cannot be sent from it"));
            return None;
        }
        let family = Family::of(&source);
        if let Some(service) = ctx.family
            && service != family
            && !spec.backends_from.is_empty()
        {
            self.error(
                field,
                format!(
                    "{source} is {family} but the service, and so its backends from spec.backendsFrom, is {service}"
                ),
            );
            return None;
        }
        for (i, backend) in spec.backends.iter().enumerate() {
            let Ok(mut addr) = backend.address.parse::<IpAddr>() else { continue };
            let own = backends.index.iter().find(|(_, at)| **at == i).and_then(|(key, _)| backends.checks.get(key));
            let disabled = own == Some(&BackendCheck::Disabled);
            if let Some(BackendCheck::Probe { address: Some(probed), .. }) = own {
                addr = *probed;
            }
            if Family::of(&addr) != family && !disabled {
                self.error(
                    field,
                    format!(
                        "{source} is {family} but spec.backends[{i}] ({addr}) is {}: it cannot be probed from it",
                        Family::of(&addr)
                    ),
                );
                return None;
            }
        }
        Some(source)
    }

    /// A field of another probe type than `type` is an error naming both.
    fn foreign_fields(&mut self, hc: &HealthCheck) {
        let fields: [(&str, bool, &[HealthCheckType]); 13] = [
            ("path", hc.path.is_some(), HTTP_TYPES),
            ("host", hc.host.is_some(), HTTP_TYPES),
            ("method", hc.method.is_some(), HTTP_TYPES),
            ("expectStatus", hc.expect_status.is_some(), HTTP_TYPES),
            ("expectBody", hc.expect_body.is_some(), HTTP_TYPES),
            ("serverName", hc.server_name.is_some(), &[HealthCheckType::Https]),
            ("insecureSkipVerify", hc.insecure_skip_verify.is_some(), &[HealthCheckType::Https]),
            ("send", hc.send.is_some(), &[HealthCheckType::Udp]),
            ("expectPrefix", hc.expect_prefix.is_some(), &[HealthCheckType::Udp]),
            ("requireReply", hc.require_reply.is_some(), &[HealthCheckType::Udp]),
            ("query", hc.query.is_some(), &[HealthCheckType::Dns]),
            ("queryType", hc.query_type.is_some(), &[HealthCheckType::Dns]),
            ("service", hc.service.is_some(), &[HealthCheckType::Grpc]),
        ];
        for (name, given, types) in fields {
            if given && !types.contains(&hc.type_) {
                let owners: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
                let plural = if owners.len() > 1 { "s" } else { "" };
                self.error(
                    format!("{FIELD}.{name}"),
                    format!("only for type{plural} {}, not {}", owners.join(" and "), hc.type_),
                );
            }
        }
    }

    /// Whether every string and list of the check is within the schema's bounds (each one that is not reported).
    fn lengths(&mut self, hc: &HealthCheck) -> bool {
        let strings = [
            ("path", &hc.path, MAX_PATH_LENGTH),
            ("host", &hc.host, MAX_HOST_LENGTH),
            ("expectBody", &hc.expect_body, MAX_EXPECT_BODY_LENGTH),
            ("serverName", &hc.server_name, MAX_DNS_NAME_LENGTH),
            ("send", &hc.send, MAX_HEX_LENGTH),
            ("expectPrefix", &hc.expect_prefix, MAX_HEX_LENGTH),
            // The root's trailing dot may be written.
            ("query", &hc.query, MAX_DNS_NAME_LENGTH + 1),
            ("service", &hc.service, MAX_GRPC_SERVICE_LENGTH),
        ];
        let mut ok = true;
        for (name, value, max) in strings {
            if let Some(text) = value {
                ok &= self.length(&format!("{FIELD}.{name}"), text, max);
            }
        }
        if let Some(list) = &hc.expect_status
            && list.len() > MAX_EXPECT_STATUS
        {
            self.error(
                format!("{FIELD}.expectStatus"),
                format!("{} entries; at most {MAX_EXPECT_STATUS} (a range such as 200-399 takes many)", list.len()),
            );
            ok = false;
        }
        ok
    }

    /// The probe of `type` from its own fields (the others are reported by `foreign_fields`).
    fn probe(&mut self, hc: &HealthCheck) -> Option<Probe> {
        match hc.type_ {
            HealthCheckType::Tcp => Some(Probe::Tcp),
            HealthCheckType::Http => self.http_probe(hc).map(Probe::Http),
            HealthCheckType::Https => {
                let http = self.http_probe(hc);
                let server_name = match (&hc.server_name, &hc.host) {
                    (Some(name), _) => self.server_name("serverName", name, name),
                    // The probe falls back on the Host header's host: it must be a name (or address) too.
                    (None, Some(host)) => match Authority::from_str(host) {
                        Ok(authority) => {
                            let name = authority.host().trim_start_matches('[').trim_end_matches(']');
                            self.server_name("host", host, name).map(|_| None)
                        }
                        Err(_) => Some(None), // reported by http_probe
                    },
                    (None, None) => Some(None),
                };
                let mut probe = HttpsProbe::new(http?);
                probe.server_name = server_name?;
                probe.insecure_skip_verify = hc.insecure_skip_verify == Some(true);
                Some(Probe::Https(probe))
            }
            HealthCheckType::Udp => {
                let send = self.hex("send", hc.send.as_deref());
                let expect_prefix = self.hex("expectPrefix", hc.expect_prefix.as_deref());
                let silence_passes = hc.require_reply == Some(false);
                if silence_passes && hc.expect_prefix.is_some() {
                    self.error(
                        format!("{FIELD}.expectPrefix"),
                        "needs a reply: it is not allowed with requireReply false",
                    );
                    return None;
                }
                Some(Probe::Udp { send: send?, expect_prefix: expect_prefix?, silence_passes })
            }
            HealthCheckType::Dns => {
                let field = format!("{FIELD}.query");
                let query = match hc.query.as_deref() {
                    None => {
                        self.error(field, "required with type DNS");
                        None
                    }
                    Some("") => {
                        self.error(field, "empty: give the name to ask for");
                        None
                    }
                    Some(q) => match hickory_proto::rr::Name::from_ascii(q) {
                        Ok(_) => Some(q.to_owned()),
                        Err(e) => {
                            self.error(field, format!("`{q}` is not a DNS name: {e}"));
                            None
                        }
                    },
                };
                let query_type = dns_type_of(hc.query_type.unwrap_or(DnsRecordType::A));
                Some(Probe::Dns { query: query?, query_type })
            }
            HealthCheckType::Grpc => match hc.service.as_deref() {
                Some("") => {
                    self.error(format!("{FIELD}.service"), "empty: omit it to ask about the server as a whole");
                    None
                }
                service => Some(Probe::Grpc { service: service.map(str::to_owned) }),
            },
        }
    }

    fn http_probe(&mut self, hc: &HealthCheck) -> Option<HttpProbe> {
        let errors_before = self.errors.len();
        let path = hc.path.as_deref().unwrap_or("/");
        if !path.starts_with('/') {
            self.error(format!("{FIELD}.path"), format!("`{path}` does not start with \"/\""));
        } else if let Err(e) = PathAndQuery::from_str(path) {
            self.error(format!("{FIELD}.path"), format!("`{path}` is not a request target: {e}"));
        }
        if let Some(host) = &hc.host
            && let Err(e) = Authority::from_str(host)
        {
            self.error(format!("{FIELD}.host"), format!("`{host}` is not a host or host:port: {e}"));
        }
        let method = match hc.method {
            None | Some(HealthCheckMethod::Get) => health::HttpMethod::Get,
            Some(HealthCheckMethod::Head) => health::HttpMethod::Head,
        };
        let expect_status = match &hc.expect_status {
            None => vec![StatusRange::SUCCESS],
            Some(list) if list.is_empty() => {
                self.error(format!("{FIELD}.expectStatus"), "empty: omit it to accept 200-299");
                Vec::new()
            }
            Some(list) => list
                .iter()
                .enumerate()
                .filter_map(|(i, text)| {
                    let range = status_range(text);
                    if range.is_none() {
                        self.error(
                            format!("{FIELD}.expectStatus[{i}]"),
                            format!(
                                "`{text}` is not a status code or range: NNN or NNN-MMM within 100-599, the first \
                                 not above the last"
                            ),
                        );
                    }
                    range
                })
                .collect(),
        };
        match hc.expect_body.as_deref() {
            Some("") => self.error(format!("{FIELD}.expectBody"), "empty: omit it not to read the body"),
            Some(_) if method == health::HttpMethod::Head => {
                self.error(format!("{FIELD}.expectBody"), "a HEAD response has no body to search: use method GET")
            }
            _ => {}
        }
        if self.errors.len() != errors_before {
            return None;
        }
        let mut probe = HttpProbe::new(path).with_method(method).with_status(expect_status);
        probe.host = hc.host.clone();
        probe.expect_body = hc.expect_body.clone();
        Some(probe)
    }

    /// Whether `name` (from field `name_field`, written `given`) can be sent as SNI.
    fn server_name(&mut self, name_field: &str, given: &str, name: &str) -> Option<Option<String>> {
        match ServerName::try_from(name) {
            Ok(_) => Some(Some(given.to_owned())),
            Err(e) => {
                let why = if name_field == "host" { " (the TLS server name when serverName is not given)" } else { "" };
                self.error(format!("{FIELD}.{name_field}"), format!("`{name}` is not a DNS name or address{why}: {e}"));
                None
            }
        }
    }

    /// The bytes of hex field `name` (absent: none).
    fn hex(&mut self, name: &str, text: Option<&str>) -> Option<Vec<u8>> {
        let Some(text) = text else { return Some(Vec::new()) };
        let bytes = decode_hex(text);
        if bytes.is_none() {
            self.error(
                format!("{FIELD}.{name}"),
                format!("`{text}` is not hex bytes (two of 0-9 a-f A-F per byte, an even number of digits)"),
            );
        }
        bytes
    }

    /// The sorry server as a destination, checked like a backend (and refused if it is one).
    fn sorry_server(&mut self, given: &SorryServer, ctx: &DestContext, backends: &Backends) -> Option<Destination> {
        let field = "spec.sorryServer";
        let dest = DestSpec {
            address: &given.address,
            port: given.port,
            weight: None,
            upper_threshold: None,
            lower_threshold: None,
            forwarding: given.forwarding.as_ref(),
        };
        let (key, dest) = self.destination(field, ctx, &dest);
        if let Some(key) = key
            && let Some(i) = backends.index.get(&key)
        {
            self.error(field, format!("{key} is spec.backends[{i}]: the sorry server must not be one of the backends"));
            return None;
        }
        dest
    }

    /// `quorum` and `hysteresis` (with their defaults), which need a sorry server.
    fn quorum(&mut self, spec: &VirtualServiceSpec) -> (Option<u64>, Option<u64>) {
        let mut value = |name: &str, given: Option<i64>, default: u64, min: i64| {
            let field = format!("spec.{name}");
            match given {
                None => Some(default),
                Some(_) if spec.sorry_server.is_none() => {
                    self.error(field, "needs spec.sorryServer (it does nothing without one)");
                    None
                }
                Some(v) => self.range::<u64>(&field, v, min, i64::MAX),
            }
        };
        (value("quorum", spec.quorum, DEFAULT_QUORUM, 1), value("hysteresis", spec.hysteresis, 0, 0))
    }
}

/// The schedule of a policy without a check (it is never used).
fn default_schedule() -> Schedule {
    Schedule {
        interval: Duration::from_secs(DEFAULT_INTERVAL_SECS),
        rise: DEFAULT_RISE,
        fall: DEFAULT_FALL,
        initial_healthy: true,
    }
}

/// `NNN` or `NNN-MMM`, within 100-599, first not above last.
fn status_range(text: &str) -> Option<StatusRange> {
    let code = |s: &str| match s.len() == 3 && s.bytes().all(|b| b.is_ascii_digit()) {
        true => s.parse::<u16>().ok(),
        false => None,
    };
    match text.split_once('-') {
        None => StatusRange::single(code(text)?),
        Some((first, last)) => StatusRange::new(code(first)?, code(last)?),
    }
}

/// Hex digits, two per byte; `None` for an odd length or a non-digit.
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    // Digits only: `from_str_radix` alone would take a sign (`+f`).
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

fn dns_type_of(kind: DnsRecordType) -> health::DnsQueryType {
    match kind {
        DnsRecordType::A => health::DnsQueryType::A,
        DnsRecordType::Aaaa => health::DnsQueryType::Aaaa,
        DnsRecordType::Cname => health::DnsQueryType::Cname,
        DnsRecordType::Mx => health::DnsQueryType::Mx,
        DnsRecordType::Ns => health::DnsQueryType::Ns,
        DnsRecordType::Ptr => health::DnsQueryType::Ptr,
        DnsRecordType::Soa => health::DnsQueryType::Soa,
        DnsRecordType::Srv => health::DnsQueryType::Srv,
        DnsRecordType::Txt => health::DnsQueryType::Txt,
    }
}
