//! `ipvs.dev/v1alpha1` `VirtualService`: the declarative form of one IPVS virtual service and its backends.
//!
//! These types are the wire contract (YAML files and the Kubernetes API). Every spec struct rejects unknown fields,
//! so a typo is an error instead of a silently ignored setting. Numbers are read as `i64` so that an out-of-range
//! value reaches validation, which names the field and the allowed range, instead of failing inside the
//! deserializer. Only what validation cannot phrase better (a wrong type, an unknown enum value) fails there.
//!
//! Growing the API is additive: later fields (`backendsFrom`, `healthCheck`, `sorryServer`, `nodeSelector`) are new
//! `Option`s, and a status is added with `#[kube(status = ...)]`, which only adds an optional field.

use kube::CustomResource;
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
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ipvs.dev",
    version = "v1alpha1",
    kind = "VirtualService",
    namespaced,
    derive = "PartialEq",
    // Not "vs": Istio's VirtualService already uses that short name.
    shortname = "ipvs",
    category = "ipvs",
    doc = "An IPVS virtual service (address/port/protocol or firewall mark) and its backends.",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.address"),
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(name = "Fwmark", type_ = "integer", json_path = ".spec.fwmark", priority = 1),
    printcolumn(name = "Scheduler", type_ = "string", json_path = ".spec.scheduler"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
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
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
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
