//! `ipvs.dev/v1alpha1` `VirtualService`: the declarative form of one IPVS virtual service and its backends.
//!
//! These types are the wire contract (YAML files and the Kubernetes API). Every spec struct rejects unknown fields,
//! so a typo is an error instead of a silently ignored setting. Numbers are read as `i64` so that an out-of-range
//! value reaches validation, which names the field and the allowed range, instead of failing inside the
//! deserializer. Only what validation cannot phrase better (a wrong type, an unknown enum value) fails there.
//!
//! Growing the API is additive: later fields (`healthCheck`, `sorryServer`, ...) are new `Option`s.
//!
//! Cross-field rules are also declared as CEL (`x-kubernetes-validations`), so that the API server refuses a bad spec
//! at `kubectl apply` time; `api::validate` checks the same rules (and more: what CEL cannot express) for files and
//! as the agent's last word, naming the field. The address rules use the CEL IP library (Kubernetes 1.31 or later).
//! Every list and free string is bounded (`MAX_*` below): the API server estimates each rule's cost from those
//! bounds, and `api::validate` enforces the same ones.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of every kind of this crate.
pub const GROUP: &str = "ipvs.dev";
/// API version of these types.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` as it appears in manifests.
pub const API_VERSION: &str = "ipvs.dev/v1alpha1";
/// Kind name.
pub const KIND: &str = "VirtualService";

// Bounds of the lists and free strings of a spec. The API server needs them to admit the CEL rules (it estimates a
// rule's cost from the `maxItems` and `maxLength` of what the rule walks), and `api::validate` enforces the same
// ones, so that a file and the cluster accept the same objects.

/// Longest textual address: a full IPv6 address with an embedded IPv4 part
/// (`0000:0000:0000:0000:0000:ffff:255.255.255.255`); no address is written longer.
pub const MAX_ADDRESS_LENGTH: usize = 45;
/// Most static backends of one service: Kubernetes' own limit for the endpoints of one EndpointSlice (and of the
/// Endpoints API), far above any hand-written list; larger pools come from `backendsFrom`.
pub const MAX_BACKENDS: usize = 1000;
/// Most `backendsFrom` entries: a service spread over many Services of its namespace, not a list of endpoints.
pub const MAX_BACKENDS_FROM: usize = 64;
/// Longest port name in a Service or an EndpointSlice (a DNS label).
pub const MAX_PORT_NAME_LENGTH: usize = 63;
/// Most scheduler flags: every flag the API knows (a repeated one is refused anyway).
pub const MAX_SCHEDULER_FLAGS: usize = 4;
/// Most `expectStatus` entries: each is a code or a range, so a few cover every status a check would accept.
pub const MAX_EXPECT_STATUS: usize = 32;
/// Longest `expectStatus` entry: `NNN-MMM`.
pub const MAX_STATUS_RANGE_LENGTH: usize = 7;
/// Longest HTTP request target of a check: the request line limit of common servers is 8 KiB, and a health
/// endpoint's path is short; 2 KiB leaves room for a query string.
pub const MAX_PATH_LENGTH: usize = 2048;
/// Longest DNS name (RFC 1035: 253 characters written without the root's trailing dot).
pub const MAX_DNS_NAME_LENGTH: usize = 253;
/// Longest `Host` header value: a DNS name and `:65535`.
pub const MAX_HOST_LENGTH: usize = MAX_DNS_NAME_LENGTH + 6;
/// Longest `expectBody`: a marker searched in the body's first 64 KiB, not a copy of the page.
pub const MAX_EXPECT_BODY_LENGTH: usize = 1024;
/// Longest hex string of a UDP check (`send`, `expectPrefix`): 1024 bytes, two digits each.
pub const MAX_HEX_LENGTH: usize = 2048;
/// Longest gRPC service name asked about (a fully qualified protobuf service name such as `grpc.health.v1.Health`).
pub const MAX_GRPC_SERVICE_LENGTH: usize = 512;

/// CEL, on a destination's address (a backend's, the sorry server's): some unicast address. The CEL IP library has
/// no `isMulticast`: what is neither global unicast, loopback nor link-local unicast is unspecified, broadcast or
/// multicast, which the kernel refuses as destinations. Loopback is checked against the forwarding at the spec,
/// IPv6 link-local by the next rule.
const DESTINATION_IS_UNICAST: &str =
    "!isIP(self) || ip(self).isGlobalUnicast() || ip(self).isLoopback() || ip(self).isLinkLocalUnicast()";
const DESTINATION_IS_UNICAST_MESSAGE: &str =
    "address must be a unicast address: not unspecified, broadcast or multicast (the kernel refuses them)";
/// CEL: not IPv6 link-local. IPVS destinations carry no interface (zone), and fe80::/10 is on every interface.
/// IPv4 link-local (169.254/16) is routed on-link like any subnet and stays allowed.
const DESTINATION_IS_NOT_LINK_LOCAL_V6: &str =
    "!isIP(self) || !(ip(self).family() == 6 && ip(self).isLinkLocalUnicast())";
const DESTINATION_IS_NOT_LINK_LOCAL_V6_MESSAGE: &str =
    "address must not be IPv6 link-local (fe80::/10): an IPVS destination has no interface (zone) to reach it through";

/// One IPVS virtual service: a virtual address (or a firewall mark) balanced over backends.
// Several `printcolumn(...)` share argument names, which the lint takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "ipvs.dev",
    version = "v1alpha1",
    kind = "VirtualService",
    namespaced,
    status = "VirtualServiceStatus",
    derive = "PartialEq",
    // Not "vs": Istio's VirtualService already uses that short name.
    shortname = "ipvs",
    // Not "ipvs": kubectl expands a category before a short name, so `kubectl get ipvs` would list the pools too
    // and `kubectl get ipvs NAME` would be refused.
    category = "ipvs-reconciler",
    doc = "An IPVS virtual service (address/port/protocol or firewall mark) and its backends, programmed by the \
           ipvs-reconciler agent of every node it selects.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address", description = "Virtual IP"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port", description = "Virtual port"),
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol", description = "TCP, UDP or SCTP"),
    printcolumn(name = "Fwmark", type_ = "integer", json_path = ".spec.fwmark", priority = 1, description = "Firewall mark"),
    printcolumn(name = "Scheduler", type_ = "string", json_path = ".spec.scheduler", description = "IPVS scheduler"),
    // No column reads `[*]`: the API server's table printer shows only the first match, so a list column would
    // hide every node but one. The verdict over all nodes is the Ready condition and the summary.
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        description = "Whether every node that should program it has programmed its current generation"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason",
        priority = 1,
        description = "Why it is or is not Ready (Programmed, Progressing, Invalid, NotAdmitted, Conflict, AgentNotReady, ...)"
    ),
    printcolumn(
        name = "Programmed",
        type_ = "string",
        json_path = ".status.summary",
        description = "Nodes that programmed it over nodes that should"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.address) != has(self.fwmark)").message("exactly one of address and fwmark must be set"),
    validation = Rule::new("!has(self.address) || has(self.port)").message("port is required with address"),
    validation = Rule::new("!has(self.fwmark) || has(self.family)").message("family is required with fwmark"),
    validation = Rule::new("has(self.address) || !has(self.bindAddress)")
        .message("bindAddress is only for address services (a fwmark service has no address)"),
    validation = Rule::new(
        "!has(self.withdrawAddressWhenDown) || !self.withdrawAddressWhenDown || \
         (has(self.address) && (!has(self.bindAddress) || self.bindAddress))"
    )
    .message("withdrawAddressWhenDown needs an address this program binds (address set, bindAddress not false)"),
    validation = Rule::new("!has(self.fwmark) || !has(self.protocol)").message("protocol is not allowed with fwmark"),
    validation = Rule::new("!has(self.port) || self.port != 0 || has(self.persistence)")
        .message("port 0 (every port) requires persistence"),
    validation = Rule::new(
        "!has(self.onePacket) || !self.onePacket || has(self.fwmark) || (has(self.protocol) && self.protocol == 'UDP')"
    )
    .message("onePacket is only for UDP and fwmark services"),
    validation = Rule::new(
        "!has(self.schedulerFlags) || self.schedulerFlags.all(f, has(self.scheduler) && \
         ((f in ['sh-fallback', 'sh-port'] && self.scheduler == 'sh') || \
          (f in ['mh-fallback', 'mh-port'] && self.scheduler == 'mh')))"
    )
    .message("schedulerFlags sh-fallback and sh-port need scheduler sh; mh-fallback and mh-port need scheduler mh"),
    validation = Rule::new(
        "!has(self.persistence) || !has(self.persistence.prefixLength) || \
         (has(self.family) && self.family == 'IPv6') || (has(self.address) && self.address.contains(':')) || \
         self.persistence.prefixLength <= 32"
    )
    .message("persistence.prefixLength of an IPv4 service is at most 32"),
    validation = Rule::new("has(self.sorryServer) || !(has(self.quorum) || has(self.hysteresis))")
        .message("quorum and hysteresis need sorryServer"),
    validation = Rule::new("has(self.healthCheck) || !has(self.backends) || self.backends.all(b, !has(b.healthCheck))")
        .message("backends[].healthCheck needs healthCheck"),
    validation = Rule::new(
        "!has(self.healthCheck) || has(self.healthCheck.port) || !has(self.backends) || self.backends.all(b, \
         (has(b.healthCheck) && \
          (has(b.healthCheck.port) || (has(b.healthCheck.disabled) && b.healthCheck.disabled))) || \
         (has(b.port) ? b.port != 0 : (has(self.port) && self.port != 0)))"
    )
    .message(
        "a backend on port 0 needs healthCheck.port or its own healthCheck (port or disabled): the check has no port \
         to probe"
    ),
    // The effective forwarding is the backend's own, else the service's: so the rule is the spec's, not the
    // backend's. Masquerading to a loopback address is dropped by the kernel (it stops DNAT to loopback), and
    // DirectRouting and Tunnel mean another host: only Local says what a loopback backend is.
    validation = Rule::new(
        "!has(self.backends) || self.backends.all(b, !isIP(b.address) || !ip(b.address).isLoopback() || \
         (has(b.forwarding) ? b.forwarding.method == 'Local' : \
          (has(self.forwarding) && self.forwarding.method == 'Local')))"
    )
    .field_path(".backends")
    .message(
        "a loopback backend needs forwarding method Local (its own forwarding, else spec.forwarding): only Local \
         delivers to the node's own sockets"
    ),
    validation = Rule::new(
        "!has(self.sorryServer) || !isIP(self.sorryServer.address) || !ip(self.sorryServer.address).isLoopback() || \
         (has(self.sorryServer.forwarding) ? self.sorryServer.forwarding.method == 'Local' : \
          (has(self.forwarding) && self.forwarding.method == 'Local'))"
    )
    .field_path(".sorryServer.address")
    .message(
        "a loopback sorryServer needs forwarding method Local (its own forwarding, else spec.forwarding): only Local \
         delivers to the node's own sockets"
    ),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// Virtual IP (IPv4 or IPv6), a unicast host address: not unspecified, broadcast, multicast, loopback or
    /// link-local, and an IPv4 address in its IPv4 form (not IPv4-mapped IPv6). Required unless `fwmark` is set. The
    /// API server checks it with the CEL IP library: Kubernetes 1.31 or later.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ADDRESS_LENGTH))]
    #[x_kube(
        validation = Rule::new("isIP(self)").message(
            "address must be an IPv4 or IPv6 address (an IPv4-mapped IPv6 address is refused: write the IPv4 form)"
        ),
        validation = Rule::new("!isIP(self) || ip(self).isGlobalUnicast()").message(
            "address must be a unicast host address: not unspecified, broadcast, multicast, loopback or link-local"
        ),
    )]
    pub address: Option<String>,
    /// Whether the node holds `address` as its own: the program adds it as a /32 or /128 to its dummy interface
    /// (`ipvs0` unless configured otherwise) while the service exists, since IPVS receives only the packets the
    /// node takes as local. Set false when something else binds and announces the address (VRRP, kube-vip, a BGP
    /// speaker). Default true. Only with `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_address: Option<bool>,
    /// Remove the address from the node while no backend can take new connections (none left, or all unhealthy or
    /// at weight 0) and no sorry server stands in, so that routers spreading the address over several directors
    /// (anycast, ECMP) stop sending here; it comes back with the first healthy backend. Default false. Needs an
    /// address this program binds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdraw_address_when_down: Option<bool>,
    /// Virtual port; 0 means every port and requires `persistence` (as in ipvsadm). Required with `address`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i64>,
    /// Transport protocol of an address service. Default TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Balance packets carrying this firewall mark instead of an address/port/protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub fwmark: Option<i64>,
    /// Address family: required with `fwmark`, otherwise derived from `address` (and checked against it if given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<AddressFamily>,
    /// Scheduler: rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos. Default wlc (as ipvsadm).
    // A string (not an enum) so that `api::validate` names the field and the known schedulers in its message; the
    // schema still lists them, so that the API server refuses another one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = crate::api::validate::SCHEDULERS))]
    pub scheduler: Option<String>,
    /// Scheduler flags: sh-fallback, sh-port (scheduler sh); mh-fallback, mh-port (scheduler mh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = MAX_SCHEDULER_FLAGS),
        extend("items" = {"type": "string", "enum": crate::api::validate::scheduler_flag_names()})
    )]
    pub scheduler_flags: Vec<String>,
    /// Send every connection of one client (group) to the same backend for a while.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
    /// Schedule every datagram on its own (UDP and fwmark services only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_packet: Option<bool>,
    /// Default forwarding of every backend. Default: Masquerade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// The real servers (at most 1000; more come from `backendsFrom`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_BACKENDS))]
    pub backends: Vec<Backend>,
    /// Backends from the endpoints of Services in this namespace (their EndpointSlices): ready endpoints are backends,
    /// terminating or not-ready ones are drained like a removed backend. Combinable with `backends`; the same
    /// address and port from two origins is an error. Kubernetes only (files have no EndpointSlices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_BACKENDS_FROM))]
    pub backends_from: Vec<BackendsFrom>,
    /// Which nodes program this service: a label selector over Node labels. Absent: every node. A node that stops
    /// being selected removes the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<LabelSelector>,
    /// Seconds a removed backend keeps its existing connections (weight 0) before it is deleted; 0 deletes at once.
    /// Default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub drain_timeout_seconds: Option<i64>,
    /// How the backends are health checked. Absent: they are not (always healthy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    /// A server added to the service (weight 1) while the healthy backends' weights sum to less than `quorum`, i.e.
    /// by default while no backend is healthy; withdrawn when they reach `quorum + hysteresis` again. Works without
    /// `healthCheck` too (then every backend counts as healthy: the sorry server stands in while there are none, e.g.
    /// no ready endpoints). It must not be one of the backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sorry_server: Option<SorryServer>,
    /// The sum of the healthy backends' weights below which the sorry server is added. Default 1 (no healthy
    /// backend left). Needs `sorryServer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub quorum: Option<i64>,
    /// How far above `quorum` the healthy weight must come back before the sorry server is withdrawn, so that one
    /// flapping backend does not flip it in and out. Default 0. Needs `sorryServer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub hysteresis: Option<i64>,
}

/// Health checking of a service's backends: every backend (static or from endpoints) is probed from the node with
/// the same check; an unhealthy backend gets weight 0 (`onFailure: Inhibit`) or is removed. Only the built-in
/// probe types exist: no field of this API makes a node run a command (there is no MISC_CHECK).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new(
        "!has(self.timeoutSeconds) || self.timeoutSeconds < (has(self.intervalSeconds) ? self.intervalSeconds : 5)"
    )
    .message("timeoutSeconds must be below intervalSeconds (default 5)"),
    validation = Rule::new(
        "self.type in ['HTTP', 'HTTPS'] || \
         !(has(self.path) || has(self.host) || has(self.method) || has(self.expectStatus) || has(self.expectBody))"
    )
    .message("path, host, method, expectStatus and expectBody are only for types HTTP and HTTPS"),
    validation = Rule::new("self.type == 'HTTPS' || !(has(self.serverName) || has(self.insecureSkipVerify))")
        .message("serverName and insecureSkipVerify are only for type HTTPS"),
    validation = Rule::new("self.type == 'UDP' || !(has(self.send) || has(self.expectPrefix) || has(self.requireReply))")
        .message("send, expectPrefix and requireReply are only for type UDP"),
    validation = Rule::new("!has(self.requireReply) || self.requireReply || !has(self.expectPrefix)")
        .message("expectPrefix needs a reply: it is not allowed with requireReply false"),
    validation = Rule::new("self.type == 'DNS' || !(has(self.query) || has(self.queryType))")
        .message("query and queryType are only for type DNS"),
    validation = Rule::new("self.type != 'DNS' || has(self.query)").message("query is required with type DNS"),
    validation = Rule::new("self.type == 'GRPC' || !has(self.service)").message("service is only for type GRPC"),
    validation = Rule::new("!has(self.expectBody) || !has(self.method) || self.method != 'HEAD'")
        .message("expectBody needs method GET (a HEAD response has no body)"),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthCheck {
    /// The probe: TCP (a connection is accepted), HTTP, HTTPS, UDP (a datagram is answered), DNS (a query is
    /// answered NOERROR with records) or GRPC (the standard grpc.health.v1 check over plaintext HTTP/2 answers
    /// SERVING).
    #[serde(rename = "type")]
    pub type_: HealthCheckType,
    /// Seconds between the starts of two probes of a backend. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub interval_seconds: Option<i64>,
    /// Seconds one probe may take as a whole (connect, TLS, request, reply); below `intervalSeconds`. Default 2, or
    /// half the interval when that is shorter (checks every second time out after 500 ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub timeout_seconds: Option<i64>,
    /// Consecutive successes that make an unhealthy backend healthy. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub rise: Option<i64>,
    /// Consecutive failures that make a healthy backend unhealthy. Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub fall: Option<i64>,
    /// The port probed on every backend. Default: each backend's own port (a backend on port 0 then needs its own
    /// `healthCheck.port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// An address of the node the probes are sent from. Default: the kernel chooses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ADDRESS_LENGTH))]
    pub source_address: Option<String>,
    /// HTTP and HTTPS: the request target, starting with "/" (a query is allowed; at most 2048 characters).
    /// Default "/".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PATH_LENGTH))]
    pub path: Option<String>,
    /// HTTP and HTTPS: the Host header (host or host:port). Default: the backend's address and port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_HOST_LENGTH))]
    pub host: Option<String>,
    /// HTTP and HTTPS: GET or HEAD. Default GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<HealthCheckMethod>,
    /// HTTP and HTTPS: the accepted status codes, each "NNN" or "NNN-MMM" (100-599, first not above last).
    /// Default ["200-299"].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = MAX_EXPECT_STATUS), inner(length(max = MAX_STATUS_RANGE_LENGTH)))]
    pub expect_status: Option<Vec<String>>,
    /// HTTP and HTTPS: a substring the response body must contain (searched in its first 64 KiB; at most 1024
    /// characters); needs method GET. Default: the body is not read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_EXPECT_BODY_LENGTH))]
    pub expect_body: Option<String>,
    /// HTTPS: the name sent as SNI and verified in the certificate. Default: the host of `host` if set, else the
    /// backend's address (no SNI; the certificate must name the address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DNS_NAME_LENGTH))]
    pub server_name: Option<String>,
    /// HTTPS: accept any certificate (self-signed backends); the TLS handshake is still made. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// UDP: the datagram sent, as hex digits (two per byte, at most 1024 bytes; may be empty). Default empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_HEX_LENGTH))]
    pub send: Option<String>,
    /// UDP: the bytes the reply must start with, as hex digits (two per byte, at most 1024 bytes). Default empty:
    /// any reply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_HEX_LENGTH))]
    pub expect_prefix: Option<String>,
    /// UDP: whether a reply is required. false: no reply within `timeoutSeconds` passes too, and only an ICMP
    /// error (port or host unreachable) fails the probe, as keepalived's `UDP_CHECK` without `require_reply`; for
    /// services that answer no probe (syslog, statsd). Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_reply: Option<bool>,
    /// DNS: the name asked for (required with type DNS).
    // One more than a name's length: the root's trailing dot may be written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_DNS_NAME_LENGTH + 1))]
    pub query: Option<String>,
    /// DNS: the record type asked for: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT. Default A.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_type: Option<DnsRecordType>,
    /// GRPC: the service asked about. Default: the server as a whole (the empty service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_GRPC_SERVICE_LENGTH))]
    pub service: Option<String>,
    /// What an unhealthy backend becomes: Inhibit (weight 0: no new connections, existing ones continue) or Remove
    /// (deleted from the service). Default Inhibit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<FailureAction>,
    /// A backend that becomes healthy gets its weight back over this many seconds, in steps. Default: at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub slow_start_seconds: Option<i64>,
    /// The state of a backend seen for the first time, before its first `rise` or `fall` results: Healthy (the
    /// default, as keepalived) or Unhealthy (no traffic until it has passed `rise` probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<InitialState>,
}

/// The probe: TCP (a connection is accepted), HTTP, HTTPS, UDP (a datagram is answered), DNS (a query is answered
/// NOERROR with records) or GRPC (the standard grpc.health.v1 check over plaintext HTTP/2 answers SERVING).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum HealthCheckType {
    /// A TCP connection is accepted.
    #[serde(rename = "TCP")]
    Tcp,
    /// An HTTP/1.1 request is answered with an accepted status.
    #[serde(rename = "HTTP")]
    Http,
    /// An HTTP/1.1 request over TLS is answered with an accepted status.
    #[serde(rename = "HTTPS")]
    Https,
    /// A UDP datagram is answered.
    #[serde(rename = "UDP")]
    Udp,
    /// A DNS query over UDP is answered NOERROR with at least one record.
    #[serde(rename = "DNS")]
    Dns,
    /// The grpc.health.v1 check answers SERVING (plaintext HTTP/2).
    #[serde(rename = "GRPC")]
    Grpc,
}

/// HTTP and HTTPS: the request method, GET or HEAD. Default GET.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum HealthCheckMethod {
    /// GET (the default).
    #[serde(rename = "GET")]
    Get,
    /// HEAD: no body.
    #[serde(rename = "HEAD")]
    Head,
}

/// DNS: the record type asked for: A, AAAA, CNAME, MX, NS, PTR, SOA, SRV or TXT. Default A.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum DnsRecordType {
    /// IPv4 address (the default).
    A,
    /// IPv6 address.
    #[serde(rename = "AAAA")]
    Aaaa,
    /// Canonical name.
    #[serde(rename = "CNAME")]
    Cname,
    /// Mail exchanger.
    #[serde(rename = "MX")]
    Mx,
    /// Name server.
    #[serde(rename = "NS")]
    Ns,
    /// Pointer.
    #[serde(rename = "PTR")]
    Ptr,
    /// Start of authority.
    #[serde(rename = "SOA")]
    Soa,
    /// Service locator.
    #[serde(rename = "SRV")]
    Srv,
    /// Text.
    #[serde(rename = "TXT")]
    Txt,
}

/// What an unhealthy backend becomes: Inhibit (weight 0: no new connections, existing ones continue) or Remove
/// (deleted from the service). Default Inhibit.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum FailureAction {
    /// Weight 0: no new connections, the existing ones continue (the default).
    Inhibit,
    /// Deleted from the service.
    Remove,
}

/// The state of a backend seen for the first time, before its first `rise` or `fall` results: Healthy (the default,
/// as keepalived) or Unhealthy (no traffic until it has passed `rise` probes).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum InitialState {
    /// Healthy until `fall` probes fail (the default, as keepalived).
    Healthy,
    /// Unhealthy until `rise` probes pass.
    Unhealthy,
}

/// The server that stands in while the service has too few healthy backends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SorryServer {
    /// Its address (IPv4 or IPv6); another family than the service's needs forwarding method Tunnel. Not
    /// unspecified, broadcast, multicast or IPv6 link-local; loopback only with forwarding method Local; an IPv4
    /// address in its IPv4 form. The API server checks it with the CEL IP library: Kubernetes 1.31 or later.
    #[schemars(length(max = MAX_ADDRESS_LENGTH))]
    #[x_kube(
        validation = Rule::new("isIP(self)").message(
            "sorryServer.address must be an IPv4 or IPv6 address (an IPv4-mapped IPv6 address is refused: write the \
             IPv4 form)"
        ),
        validation = Rule::new(DESTINATION_IS_UNICAST).message(DESTINATION_IS_UNICAST_MESSAGE),
        validation = Rule::new(DESTINATION_IS_NOT_LINK_LOCAL_V6).message(DESTINATION_IS_NOT_LINK_LOCAL_V6_MESSAGE),
    )]
    pub address: String,
    /// Its port. Default: the service's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i64>,
    /// How packets reach it. Default: `spec.forwarding`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
}

/// One backend's own change to the service's health check.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.disabled) ? !(has(self.port) || has(self.address)) : (has(self.port) || has(self.address))")
        .message("give port and/or address, or disabled alone"),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendHealthCheck {
    /// Probe this backend on this port instead of `spec.healthCheck.port` or its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Probe this address instead of the backend's (keepalived's `connect_ip`): a management address, or the
    /// real server's own address where the backend is reached through another one. Of the backend's family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_ADDRESS_LENGTH))]
    #[x_kube(validation = Rule::new("isIP(self)").message("healthCheck.address must be an IPv4 or IPv6 address"))]
    pub address: Option<String>,
    /// true: do not check this backend; it is always healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled: Option<bool>,
}

/// Transport protocol of an address service: TCP (the default), UDP or SCTP. Not allowed with `fwmark`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum Protocol {
    /// TCP (the default).
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
    /// SCTP.
    #[serde(rename = "SCTP")]
    Sctp,
}

/// Address family: required with `fwmark`, otherwise derived from `address` (and checked against it if given).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum AddressFamily {
    /// IPv4.
    #[serde(rename = "IPv4")]
    IPv4,
    /// IPv6.
    #[serde(rename = "IPv6")]
    IPv6,
}

/// Client affinity: connections from one client (or client network) go to one backend while a template lives.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Persistence {
    /// Seconds a client stays with its backend after its last connection. Default 300 (as `ipvsadm -p`); 1 to
    /// 2678400 (31 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2678400))]
    pub timeout_seconds: Option<i64>,
    /// Clients are grouped by this prefix of their address: IPv4 0-32 (default 32), IPv6 1-128 (default 128).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 128))]
    pub prefix_length: Option<i64>,
    /// Persistence engine: `sip` (SIP Call-ID). Default none.
    // A string for the same reason as `scheduler`: validation names the known engines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = crate::api::validate::PERSISTENCE_ENGINES))]
    pub engine: Option<String>,
}

/// How packets reach the backends.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.tunnel) || (has(self.method) && self.method == 'Tunnel')")
        .message("tunnel options are only for method Tunnel"),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Forwarding {
    /// Forwarding method. Default Masquerade.
    #[serde(default)]
    pub method: ForwardingMethod,
    /// Encapsulation, with method Tunnel only. Default IPIP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
}

/// Forwarding method of a backend.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum ForwardingMethod {
    /// NAT: the destination address (and port) are rewritten (`ipvsadm -m`).
    #[default]
    Masquerade,
    /// Direct routing: the frame is sent to the backend's MAC unchanged (`ipvsadm -g`); the port cannot change.
    DirectRouting,
    /// Encapsulated to the backend (`ipvsadm -i`); the port cannot change.
    Tunnel,
    /// Delivered to a local socket.
    Local,
}

/// Tunnel encapsulation options.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("(has(self.type) && self.type == 'GUE') == has(self.port)")
        .message("port is required with type GUE and not allowed otherwise"),
    validation = Rule::new("!has(self.checksum) || self.checksum == 'None' || (has(self.type) && self.type != 'IPIP')")
        .message("checksum is only for GUE and GRE tunnels"),
    validation = Rule::new("!has(self.checksum) || self.checksum != 'RemoteChecksum' || (has(self.type) && self.type == 'GUE')")
        .message("checksum RemoteChecksum is only for GUE tunnels"),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tunnel {
    /// Encapsulation. Default IPIP.
    #[serde(rename = "type", default)]
    pub type_: TunnelType,
    /// UDP destination port; required with GUE, not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i64>,
    /// Checksum mode (GUE and GRE). Default None.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<TunnelChecksum>,
}

/// Tunnel encapsulation.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum TunnelType {
    /// IP in IP (the default).
    #[default]
    #[serde(rename = "IPIP")]
    Ipip,
    /// Generic UDP Encapsulation; needs a port.
    #[serde(rename = "GUE")]
    Gue,
    /// GRE (Linux 5.3+).
    #[serde(rename = "GRE")]
    Gre,
}

/// Tunnel checksum mode: None (the default), Checksum (GUE, GRE) or RemoteChecksum (GUE).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema)]
pub enum TunnelChecksum {
    /// No checksum (the default).
    #[default]
    #[serde(rename = "None")]
    NoChecksum,
    /// Outer checksum (GUE, GRE).
    Checksum,
    /// Remote checksum offload (GUE only).
    RemoteChecksum,
}

/// A real server.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[x_kube(
    cel,
    validation = Rule::new("!has(self.lowerThreshold) || self.lowerThreshold <= (has(self.upperThreshold) ? self.upperThreshold : 0)")
        .message("lowerThreshold is above upperThreshold (the kernel refuses it)"),
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backend {
    /// Backend address (IPv4 or IPv6). A family other than the service's needs forwarding method Tunnel. Not
    /// unspecified, broadcast, multicast or IPv6 link-local (IPVS cannot name the interface of a link-local
    /// destination); loopback only with forwarding method Local; an IPv4 address in its IPv4 form. The API server
    /// checks it with the CEL IP library: Kubernetes 1.31 or later.
    #[schemars(length(max = MAX_ADDRESS_LENGTH))]
    #[x_kube(
        validation = Rule::new("isIP(self)").message(
            "backends[].address must be an IPv4 or IPv6 address (an IPv4-mapped IPv6 address is refused: write the \
             IPv4 form)"
        ),
        validation = Rule::new(DESTINATION_IS_UNICAST).message(DESTINATION_IS_UNICAST_MESSAGE),
        validation = Rule::new(DESTINATION_IS_NOT_LINK_LOCAL_V6).message(DESTINATION_IS_NOT_LINK_LOCAL_V6_MESSAGE),
    )]
    pub address: String,
    /// Backend port. Default: the service's port (0 for fwmark services, meaning the packet's port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 65535))]
    pub port: Option<i64>,
    /// Relative weight, 0 (no new connections) to 2147483647. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub weight: Option<i64>,
    /// Stop sending new connections above this many; 0 = no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295_i64))]
    pub upper_threshold: Option<i64>,
    /// Resume below this many; 0 = none. Not above `upperThreshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4294967295_i64))]
    pub lower_threshold: Option<i64>,
    /// Forwarding of this backend; replaces `spec.forwarding` as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarding: Option<Forwarding>,
    /// This backend's change to `spec.healthCheck` (which it needs): another port to probe, or no check at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<BackendHealthCheck>,
}

/// Backends from the endpoints of a Service in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackendsFrom {
    /// Name of the Service; its EndpointSlices are those labelled `kubernetes.io/service-name: <service>`.
    #[schemars(length(min = 1, max = 63))]
    pub service: String,
    /// The Service port's name, as in the EndpointSlices' `ports[].name`; the backend port is that entry's port. May
    /// be omitted when the slices carry exactly one port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_PORT_NAME_LENGTH))]
    pub port: Option<String>,
    /// Weight of every backend from this Service, 0 to 2147483647. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub weight: Option<i64>,
}

/// What the agents report: one entry per node, and the elected agent's verdict over all of them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceStatus {
    /// The `metadata.generation` the conditions judge (written by the elected agent with the conditions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled` (kstatus), over every node that should program the service: written
    /// by the one agent that holds the `ipvs-reconciler-status` Lease (field manager `ipvs-reconciler-status`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"], "maxItems" = 8))]
    pub conditions: Vec<Condition>,
    /// Nodes that programmed the current generation over nodes that should (`2/3 programmed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// One entry per node that selects this service (or did, and has not yet withdrawn its entry), keyed by
    /// `nodeName`. Each node's agent owns its own entry (server-side apply, field manager per node).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["nodeName"]))]
    pub nodes: Vec<NodeStatus>,
}

/// What one node's agent did with a `VirtualService`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The node.
    pub node_name: String,
    /// The object's `metadata.generation` this entry speaks of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Whether the node's IPVS table holds the service as declared.
    pub programmed: bool,
    /// Why, in one CamelCase word: Programmed, NoBackends, Conflict, Invalid, KernelRefused, Pending.
    pub reason: String,
    /// Details for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Backends programmed on this node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<i64>,
    /// Of the health-checked backends, how many pass their checks from this node (absent without `healthCheck`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_backends: Option<i64>,
    /// How many fail them (they have weight 0, or are removed with `onFailure: Remove`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_backends: Option<i64>,
    /// The failing backends (at most 20), each with its last check error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unhealthy: Vec<UnhealthyBackend>,
    /// When `programmed` or `reason` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
}

/// A backend failing its health checks on one node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyBackend {
    /// Address and port (`10.0.0.5:8080`, `[2001:db8::5]:8080`).
    pub address: String,
    /// The last check's error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The name each enum value has in manifests, for messages.
macro_rules! manifest_names {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The value as written in manifests.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(<$ty>::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

manifest_names!(Protocol { Tcp => "TCP", Udp => "UDP", Sctp => "SCTP" });
manifest_names!(AddressFamily { IPv4 => "IPv4", IPv6 => "IPv6" });
manifest_names!(ForwardingMethod {
    Masquerade => "Masquerade",
    DirectRouting => "DirectRouting",
    Tunnel => "Tunnel",
    Local => "Local",
});
manifest_names!(TunnelType { Ipip => "IPIP", Gue => "GUE", Gre => "GRE" });
manifest_names!(HealthCheckType {
    Tcp => "TCP",
    Http => "HTTP",
    Https => "HTTPS",
    Udp => "UDP",
    Dns => "DNS",
    Grpc => "GRPC",
});
manifest_names!(TunnelChecksum { NoChecksum => "None", Checksum => "Checksum", RemoteChecksum => "RemoteChecksum" });

#[cfg(test)]
mod tests;
