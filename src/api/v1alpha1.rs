//! `ipvs.dev/v1alpha1` `VirtualService`: the declarative form of one IPVS virtual service and its backends.
//!
//! These types are the wire contract (YAML files and the Kubernetes API). Every spec struct rejects unknown fields,
//! so a typo is an error instead of a silently ignored setting. Numbers are read as `i64` so that an out-of-range
//! value reaches validation, which names the field and the allowed range, instead of failing inside the
//! deserializer. Only what validation cannot phrase better (a wrong type, an unknown enum value) fails there.
//!
//! Growing the API is additive: later fields (`healthCheck`, `sorryServer`) are new `Option`s.
//!
//! Cross-field rules are also declared as CEL (`x-kubernetes-validations`), so that the API server refuses a bad spec
//! at `kubectl apply` time; `api::validate` checks the same rules (and more: address syntax, known schedulers) for
//! files and as the agent's last word, naming the field.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
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
    category = "ipvs",
    doc = "An IPVS virtual service (address/port/protocol or firewall mark) and its backends, programmed by the \
           ipvs-reconciler agent of every node it selects.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address", description = "Virtual IP"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port", description = "Virtual port"),
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol", description = "TCP, UDP or SCTP"),
    printcolumn(name = "Fwmark", type_ = "integer", json_path = ".spec.fwmark", priority = 1, description = "Firewall mark"),
    printcolumn(name = "Scheduler", type_ = "string", json_path = ".spec.scheduler", description = "IPVS scheduler"),
    printcolumn(
        name = "Nodes",
        type_ = "string",
        json_path = ".status.nodes[*].nodeName",
        description = "Nodes reporting on this service"
    ),
    printcolumn(
        name = "Programmed",
        type_ = "string",
        json_path = ".status.nodes[*].programmed",
        priority = 1,
        description = "Whether each reporting node programmed it"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[x_kube(
    cel,
    validation = Rule::new("has(self.address) != has(self.fwmark)").message("exactly one of address and fwmark must be set"),
    validation = Rule::new("!has(self.address) || has(self.port)").message("port is required with address"),
    validation = Rule::new("!has(self.fwmark) || has(self.family)").message("family is required with fwmark"),
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
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VirtualServiceSpec {
    /// Virtual IP (IPv4 or IPv6). Required unless `fwmark` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// Scheduler flags: sh-fallback, sh-port (scheduler sh); mh-fallback, mh-port (scheduler mh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    /// The real servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<Backend>,
    /// Backends from the endpoints of Services in this namespace (their EndpointSlices): ready endpoints are backends,
    /// terminating or not-ready ones are drained like a removed backend. Combinable with `backends`; the same
    /// address and port from two origins is an error. Kubernetes only (files have no EndpointSlices).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Backend address (IPv4 or IPv6). A family other than the service's needs forwarding method Tunnel.
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
    pub port: Option<String>,
    /// Weight of every backend from this Service, 0 to 2147483647. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub weight: Option<i64>,
}

/// What the agents report: one entry per node.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VirtualServiceStatus {
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
    /// When `programmed` or `reason` last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,
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
manifest_names!(TunnelChecksum { NoChecksum => "None", Checksum => "Checksum", RemoteChecksum => "RemoteChecksum" });

#[cfg(test)]
mod cel_tests;
