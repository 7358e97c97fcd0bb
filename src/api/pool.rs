//! `ipvs.dev/v1alpha1` `VirtualServicePool`: which virtual addresses and firewall marks the VirtualServices of which
//! namespaces may claim, and where their explicit backends may point. Cluster-scoped: only cluster admins make
//! pools, while namespace editors make VirtualServices inside what the pools grant them.
//!
//! The CEL rules refuse what the API server can judge alone (CIDR syntax, `from > to`); `source::admission` decides
//! which objects a set of pools admits. List and string bounds keep every rule within the API server's CEL cost
//! budget (tested in `api::crd`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// Kind name.
pub const POOL_KIND: &str = "VirtualServicePool";

/// Most CIDRs, ranges or namespaces in one pool list: enough for any real allocation (a pool per team or
/// zone), small enough that the CEL rules over them stay within the API server's cost budget.
pub const MAX_POOL_ITEMS: usize = 256;

/// Longest CIDR text: a full IPv6 address with an embedded IPv4 part (45) and `/128`.
pub const MAX_CIDR_LENGTH: usize = 49;

/// Virtual addresses, firewall marks and backend ranges granted to the VirtualServices of some namespaces.
// Several `printcolumn(...)` share argument names, which the lint takes for repeated attributes.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "ipvs.dev",
    version = "v1alpha1",
    kind = "VirtualServicePool",
    derive = "PartialEq",
    shortname = "ipvspool",
    // Not "ipvs": kubectl expands a category before a short name, so `kubectl get ipvs` would list the pools too
    // and `kubectl get ipvs NAME` would be refused.
    category = "ipvs-reconciler",
    doc = "Virtual addresses and firewall marks that the VirtualServices of the selected namespaces may claim, and \
           where their explicit backends may point. A VirtualService is programmed only when a pool admits it \
           (agent flag --admission pools, the default).",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses", description = "Granted CIDRs"),
    printcolumn(
        name = "Namespaces",
        type_ = "string",
        json_path = ".spec.namespaces",
        description = "Namespaces named"
    ),
    printcolumn(
        name = "Selector",
        type_ = "string",
        json_path = ".spec.namespaceSelector",
        description = "Namespaces selected by label"
    ),
    printcolumn(
        name = "Fwmarks",
        type_ = "string",
        json_path = ".spec.fwmarks",
        priority = 1,
        description = "Granted firewall marks"
    ),
    printcolumn(
        name = "Backends",
        type_ = "string",
        json_path = ".spec.backendCIDRs",
        priority = 1,
        description = "Where explicit backends may point"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(cel)]
pub struct VirtualServicePoolSpec {
    /// Virtual addresses this pool grants, as CIDRs (`192.0.2.0/28`, `2001:db8:1::/120`; a single address is a /32
    /// or /128). A VirtualService's `spec.address` must fall in one of them.
    #[schemars(length(min = 1, max = MAX_POOL_ITEMS), inner(length(max = MAX_CIDR_LENGTH)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every address must be a CIDR such as 192.0.2.0/28 or 2001:db8::/120 (IPv4-mapped IPv6 is not allowed)"))]
    pub addresses: Vec<String>,
    /// Firewall-mark services this pool grants (`spec.fwmark` within one range); none when absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOL_ITEMS))]
    pub fwmarks: Vec<FwmarkRange>,
    /// Namespaces whose VirtualServices may use this pool, by name. A union with `namespaceSelector`: either
    /// admits. Neither set: no namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = MAX_POOL_ITEMS), inner(length(min = 1, max = 63)))]
    pub namespaces: Vec<String>,
    /// Namespaces whose VirtualServices may use this pool, by label; `{}` selects every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Where explicit backends (`spec.backends`) and the sorry server may point, as CIDRs; absent: anywhere address
    /// safety allows. Backends from `backendsFrom` are the namespace's own Service's endpoints and always allowed.
    #[serde(default, rename = "backendCIDRs", skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = MAX_POOL_ITEMS), inner(length(max = MAX_CIDR_LENGTH)))]
    #[x_kube(validation = Rule::new("self.all(c, isCIDR(c))").message("every backendCIDRs entry must be a CIDR such as 10.0.0.0/8"))]
    pub backend_cidrs: Option<Vec<String>>,
}

/// Firewall marks `from` to `to`, both included.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[x_kube(validation = Rule::new("self.from <= self.to").message("from must not be greater than to"))]
pub struct FwmarkRange {
    /// First mark (1 or more).
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub from: i64,
    /// Last mark (at most 4294967295).
    #[schemars(range(min = 1, max = 4294967295_i64))]
    pub to: i64,
}

#[cfg(test)]
mod tests;
