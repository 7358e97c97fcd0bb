//! What a health check is: plain values, no I/O.
//!
//! A [`Check`] is hashable and totally ordered because it is a key: the scheduler keys check state by
//! (backend address, source address, check) and makes identical probes once, so two services sharing a backend
//! with the same definition share one probe and one set of counters, and changing any field of the definition is
//! a new check (its counters start again). Everything that changes what goes on the wire belongs here; how often
//! and how many results flip the state (interval, rise, fall) do not, and belong to the target's
//! [`Schedule`](super::Schedule).
//!
//! There is deliberately no "run a command" probe: definitions come from resource fields, and a resource field
//! must never make a node run a command.

use std::fmt;
use std::time::Duration;

/// One check: what to send and how long the whole exchange may take.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// The protocol exchange.
    pub probe: Probe,
    /// Bound on the whole probe: connect, TLS handshake, request and the body read together.
    pub timeout: Duration,
}

impl Check {
    /// A check of `probe` bounded by `timeout`.
    pub fn new(probe: Probe, timeout: Duration) -> Self {
        Check { probe, timeout }
    }
}

/// The protocol exchange of a check. The target (address and port) is not part of it: the same definition is
/// run against every backend of a service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Probe {
    /// A TCP connection is accepted (and closed at once).
    Tcp,
    /// An HTTP/1.1 request over a fresh TCP connection.
    Http(HttpProbe),
    /// An HTTP/1.1 request over TLS on a fresh TCP connection.
    Https(HttpsProbe),
    /// One datagram sent; one reply expected, starting with `expect_prefix` (empty: any reply). With
    /// `silence_passes`, no reply within the timeout passes too, and only an ICMP error (port or host unreachable)
    /// fails: keepalived's `UDP_CHECK` without `require_reply`, for services that answer no probe (syslog, statsd).
    Udp {
        /// The datagram sent (may be empty).
        send: Vec<u8>,
        /// The bytes the reply must start with.
        expect_prefix: Vec<u8>,
        /// No reply within the timeout is a success. Left out of the state file when false, so the checks saved
        /// before the field existed keep their keys.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        silence_passes: bool,
    },
    /// One DNS query over UDP; the answer must be NOERROR with at least one answer record.
    Dns {
        /// The name asked for (absolute or not: it is sent as given, with a trailing dot added).
        query: String,
        /// The record type asked for.
        query_type: DnsQueryType,
    },
    /// The standard `grpc.health.v1.Health/Check` over plaintext HTTP/2 (h2c). Only `SERVING` is healthy.
    Grpc {
        /// The service asked about; `None` asks about the server as a whole (the empty service name).
        service: Option<String>,
    },
}

impl Probe {
    /// The probe's type. An exhaustive match: a new variant does not compile until it has a kind, and so a
    /// metric.
    pub fn kind(&self) -> ProbeKind {
        match self {
            Probe::Tcp => ProbeKind::Tcp,
            Probe::Http(_) => ProbeKind::Http,
            Probe::Https(_) => ProbeKind::Https,
            Probe::Udp { .. } => ProbeKind::Udp,
            Probe::Dns { .. } => ProbeKind::Dns,
            Probe::Grpc { .. } => ProbeKind::Grpc,
        }
    }

    /// The probe's type as a short stable label (metrics, logs).
    pub fn kind_label(&self) -> &'static str {
        self.kind().label()
    }
}

/// Declares [`ProbeKind`], its [`ProbeKind::ALL`] and its labels from one list, so that a kind cannot be left out
/// of `ALL` (whose order the scheduler's counters and the metrics follow) nor lack a label.
macro_rules! probe_kinds {
    ($($(#[$doc:meta])* $kind:ident => $label:literal,)+) => {
        /// A probe's type, without its parameters: the `type` label of the check metrics.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ProbeKind {
            $($(#[$doc])* $kind,)+
        }

        impl ProbeKind {
            /// Every kind, in declaration order; [`ProbeKind::index`] is a kind's position here.
            pub const ALL: &[ProbeKind] = &[$(ProbeKind::$kind,)+];

            /// The kind as a short stable label (metrics, logs).
            pub fn label(self) -> &'static str {
                match self {
                    $(ProbeKind::$kind => $label,)+
                }
            }
        }
    };
}

probe_kinds! {
    /// [`Probe::Tcp`].
    Tcp => "tcp",
    /// [`Probe::Http`].
    Http => "http",
    /// [`Probe::Https`].
    Https => "https",
    /// [`Probe::Udp`].
    Udp => "udp",
    /// [`Probe::Dns`].
    Dns => "dns",
    /// [`Probe::Grpc`].
    Grpc => "grpc",
}

impl ProbeKind {
    /// The kind's position in [`ProbeKind::ALL`]: its discriminant, since `ALL` lists the variants in declaration
    /// order.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kind labelled `label`, if any.
    pub fn from_label(label: &str) -> Option<ProbeKind> {
        ProbeKind::ALL.iter().copied().find(|kind| kind.label() == label)
    }
}

/// An HTTP request and what its response must look like.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct HttpProbe {
    /// The request target in origin form (`/healthz?full=1`).
    pub path: String,
    /// The `Host` header; `None` sends the target's address (`10.0.0.5:8080`, the port left out when it is the
    /// scheme's default).
    pub host: Option<String>,
    /// GET or HEAD.
    pub method: HttpMethod,
    /// Accepted status codes; healthy when any range holds the response's status. Never empty when built by
    /// [`HttpProbe::new`]; an empty list accepts nothing.
    pub expect_status: Vec<StatusRange>,
    /// A substring the body must contain (searched in the first [`MAX_BODY_BYTES`] bytes). `None`: the body is
    /// not read.
    pub expect_body: Option<String>,
}

/// How much of a response body is read when looking for `expect_body`: health endpoints answer small bodies,
/// and a check must not stream a large one every interval.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

impl HttpProbe {
    /// A GET of `path`, any 2xx status accepted, the body not read.
    pub fn new(path: impl Into<String>) -> Self {
        HttpProbe {
            path: path.into(),
            host: None,
            method: HttpMethod::Get,
            expect_status: vec![StatusRange::SUCCESS],
            expect_body: None,
        }
    }

    /// The same probe with another `Host` header.
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The same probe with another method.
    pub fn with_method(mut self, method: HttpMethod) -> Self {
        self.method = method;
        self
    }

    /// The same probe accepting exactly `ranges`.
    pub fn with_status(mut self, ranges: Vec<StatusRange>) -> Self {
        self.expect_status = ranges;
        self
    }

    /// The same probe requiring the body to contain `needle`.
    pub fn with_body(mut self, needle: impl Into<String>) -> Self {
        self.expect_body = Some(needle.into());
        self
    }

    /// Whether `status` is accepted.
    pub fn accepts(&self, status: u16) -> bool {
        self.expect_status.iter().any(|range| range.contains(status))
    }
}

impl Default for HttpProbe {
    fn default() -> Self {
        HttpProbe::new("/")
    }
}

/// An HTTP probe over TLS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct HttpsProbe {
    /// The request and what its response must look like.
    pub http: HttpProbe,
    /// The name sent as SNI and checked against the certificate. `None`: the `Host` header's host if set, else the
    /// target's IP address (no SNI is sent for an address; the certificate must name the address).
    pub server_name: Option<String>,
    /// Accept any certificate (the handshake is still made and the server must still prove it holds the key of the
    /// certificate it sent). For backends with self-signed certificates.
    pub insecure_skip_verify: bool,
}

impl HttpsProbe {
    /// `http` over TLS, the certificate verified against the node's trust store.
    pub fn new(http: HttpProbe) -> Self {
        HttpsProbe { http, server_name: None, insecure_skip_verify: false }
    }

    /// The same probe with another SNI / verified name.
    pub fn with_server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The same probe accepting any certificate.
    pub fn insecure(mut self) -> Self {
        self.insecure_skip_verify = true;
        self
    }
}

/// The HTTP methods a check may use: both safe, neither changes the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub enum HttpMethod {
    /// GET: the body is read when `expect_body` is set.
    #[default]
    Get,
    /// HEAD: no body is ever read.
    Head,
}

impl HttpMethod {
    /// The method as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
        }
    }
}

/// An inclusive range of HTTP status codes (`200-299`, or a single code `204-204`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct StatusRange {
    first: u16,
    last: u16,
}

impl StatusRange {
    /// 200-299, the default.
    pub const SUCCESS: StatusRange = StatusRange { first: 200, last: 299 };

    /// `first..=last`; `None` unless 100 ≤ first ≤ last ≤ 599.
    pub fn new(first: u16, last: u16) -> Option<Self> {
        ((100..=599).contains(&first) && (first..=599).contains(&last)).then_some(StatusRange { first, last })
    }

    /// A single code; `None` outside 100-599.
    pub fn single(code: u16) -> Option<Self> {
        StatusRange::new(code, code)
    }

    /// The lowest code accepted.
    pub fn first(self) -> u16 {
        self.first
    }

    /// The highest code accepted.
    pub fn last(self) -> u16 {
        self.last
    }

    /// Whether `status` is in the range.
    pub fn contains(self, status: u16) -> bool {
        (self.first..=self.last).contains(&status)
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last { write!(f, "{}", self.first) } else { write!(f, "{}-{}", self.first, self.last) }
    }
}

/// The DNS record types a check may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize)]
pub enum DnsQueryType {
    /// IPv4 address.
    #[default]
    A,
    /// IPv6 address.
    Aaaa,
    /// Canonical name.
    Cname,
    /// Mail exchanger.
    Mx,
    /// Name server.
    Ns,
    /// Pointer (reverse lookups).
    Ptr,
    /// Start of authority: every authoritative zone answers it.
    Soa,
    /// Service locator.
    Srv,
    /// Text.
    Txt,
}

impl DnsQueryType {
    /// The type's mnemonic (`A`, `AAAA`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DnsQueryType::A => "A",
            DnsQueryType::Aaaa => "AAAA",
            DnsQueryType::Cname => "CNAME",
            DnsQueryType::Mx => "MX",
            DnsQueryType::Ns => "NS",
            DnsQueryType::Ptr => "PTR",
            DnsQueryType::Soa => "SOA",
            DnsQueryType::Srv => "SRV",
            DnsQueryType::Txt => "TXT",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn status_ranges_are_bounded_and_inclusive() {
        assert_eq!(StatusRange::new(300, 200), None);
        assert_eq!(StatusRange::new(99, 200), None);
        assert_eq!(StatusRange::new(200, 600), None);
        let range = StatusRange::new(200, 204).unwrap();
        assert!(range.contains(200) && range.contains(204));
        assert!(!range.contains(199) && !range.contains(205));
        assert_eq!(range.to_string(), "200-204");
        assert_eq!(StatusRange::single(503).unwrap().to_string(), "503");
    }

    #[test]
    fn http_probe_defaults_accept_2xx_only() {
        let probe = HttpProbe::default();
        assert_eq!(probe.path, "/");
        assert_eq!(probe.method, HttpMethod::Get);
        assert!(probe.accepts(200) && probe.accepts(299));
        assert!(!probe.accepts(301) && !probe.accepts(500));
        assert!(!HttpProbe::new("/").with_status(vec![]).accepts(200), "an empty list accepts nothing");
    }

    #[test]
    fn probe_kinds_are_listed_in_order_with_distinct_labels() {
        for (position, kind) in ProbeKind::ALL.iter().enumerate() {
            assert_eq!(kind.index(), position, "{kind:?}: the counters index ALL by discriminant");
            assert_eq!(ProbeKind::from_label(kind.label()), Some(*kind), "{kind:?}: labels are distinct");
        }
        assert_eq!(ProbeKind::from_label("icmp"), None);
        let probe = Probe::Dns { query: "example.org".into(), query_type: DnsQueryType::A };
        assert_eq!((probe.kind(), probe.kind_label()), (ProbeKind::Dns, "dns"));
    }

    #[test]
    fn identical_definitions_are_one_key_and_any_change_is_another() {
        let timeout = Duration::from_secs(2);
        let base = Check::new(Probe::Http(HttpProbe::new("/healthz")), timeout);
        let variants = [
            Check::new(Probe::Http(HttpProbe::new("/health")), timeout),
            Check::new(Probe::Http(HttpProbe::new("/healthz").with_host("a.example")), timeout),
            Check::new(Probe::Http(HttpProbe::new("/healthz").with_method(HttpMethod::Head)), timeout),
            Check::new(Probe::Http(HttpProbe::new("/healthz").with_body("ok")), timeout),
            Check::new(
                Probe::Http(HttpProbe::new("/healthz").with_status(vec![StatusRange::single(200).unwrap()])),
                timeout,
            ),
            Check::new(Probe::Https(HttpsProbe::new(HttpProbe::new("/healthz"))), timeout),
            Check::new(Probe::Http(HttpProbe::new("/healthz")), Duration::from_secs(3)),
        ];
        let mut keys: HashSet<Check> = HashSet::new();
        assert!(keys.insert(base.clone()));
        assert!(!keys.insert(base.clone()), "an identical definition is the same key");
        for variant in &variants {
            assert_ne!(variant, &base);
            assert!(keys.insert(variant.clone()), "{variant:?} must be a key of its own");
        }
        let mut sorted: Vec<_> = keys.into_iter().collect();
        sorted.sort();
        assert_eq!(sorted.len(), variants.len() + 1);
    }
}
