//! Which VirtualServices the cluster's `VirtualServicePool`s admit: the trust boundary between namespaces. A
//! VirtualService is namespaced but acts on every node it selects (it binds its VIP and forwards with NET_ADMIN),
//! so in `pools` mode an object is programmed only when one pool grants its address (or firewall mark) to its
//! namespace and, where that pool bounds them, its explicit backends and sorry server point inside the pool's
//! `backendCIDRs`.
//!
//! Pure: pools are converted at the border ([`Pool::from_resource`]); the decision depends only on the object's
//! namespace, its namespace's labels, its own declaration and the pools ([`Admission::decide`]).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use kube::core::{Selector, SelectorExt};

use crate::api::pool::VirtualServicePool;
use crate::model::ServiceKey;

/// Labels of a namespace.
pub type Labels = BTreeMap<String, String>;

/// How objects are admitted (`--admission`). The index's default is `Open` (files are the node owner's); the
/// agent's flag defaults to `Pools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AdmissionMode {
    /// Every object (address safety still applies): files, and single-tenant clusters.
    #[default]
    Open,
    /// Only objects a `VirtualServicePool` admits.
    Pools,
}

/// One pool, as admission needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Its name (messages).
    pub name: String,
    /// The virtual addresses it grants.
    pub addresses: Vec<IpNet>,
    /// The firewall marks it grants, as inclusive ranges.
    pub fwmarks: Vec<(u32, u32)>,
    /// Namespaces it admits by name.
    pub namespaces: Vec<String>,
    /// Namespaces it admits by label (`Some` of an empty selector: every namespace).
    pub namespace_selector: Option<Selector>,
    /// Where explicit backends and the sorry server may point; `None`: anywhere.
    pub backend_cidrs: Option<Vec<IpNet>>,
}

/// What an object asks of the pools: its namespace, its service key, and where it points explicitly.
#[derive(Debug, Clone, Copy)]
pub struct Claim<'a> {
    /// The object's namespace.
    pub namespace: &'a str,
    /// Its service (the address or firewall mark it takes).
    pub key: &'a ServiceKey,
    /// Its explicit backends (`spec.backends`) and sorry server, each with the field that names it.
    pub targets: &'a [(IpAddr, String)],
}

/// Why an object is not admitted (its status message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAdmitted(pub String);

impl fmt::Display for NotAdmitted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The admission of every object: the mode, the pools and the namespaces' labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    /// The mode.
    pub mode: AdmissionMode,
    /// The pools; `None` while the pool CRD is not installed (nothing is admitted in `pools` mode, and the
    /// message says why).
    pub pools: Option<BTreeMap<String, Pool>>,
    /// Namespaces' labels by name.
    pub namespaces: BTreeMap<String, Labels>,
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(AdmissionMode::default())
    }
}

impl Admission {
    /// Admission in `mode` with no pool and no namespace known yet.
    pub fn new(mode: AdmissionMode) -> Self {
        Admission { mode, pools: Some(BTreeMap::new()), namespaces: BTreeMap::new() }
    }

    /// Whether `claim` is admitted; if not, why. Open mode admits everything.
    pub fn decide(&self, claim: &Claim<'_>) -> Result<(), NotAdmitted> {
        if self.mode == AdmissionMode::Open {
            return Ok(());
        }
        let Some(pools) = &self.pools else {
            return Err(NotAdmitted(
                "the VirtualServicePool CRD is not installed, and --admission pools admits only what a pool grants"
                    .to_owned(),
            ));
        };
        let labels = self.namespaces.get(claim.namespace);
        let mut granting =
            pools.values().filter(|p| p.admits_namespace(claim.namespace, labels) && p.grants(claim.key));
        let Some(first) = granting.next() else {
            let what = match claim.key {
                ServiceKey::Addr { addr, .. } => addr.to_string(),
                ServiceKey::Fwmark { mark, .. } => format!("fwmark {mark}"),
            };
            let hint = if pools.is_empty() { " (there is no VirtualServicePool)" } else { "" };
            return Err(NotAdmitted(format!("no pool grants {what} to namespace {}{hint}", claim.namespace)));
        };
        let first_refusal = match first.outside_backends(claim.targets) {
            None => return Ok(()),
            Some(refusal) => refusal,
        };
        if granting.any(|pool| pool.outside_backends(claim.targets).is_none()) {
            return Ok(());
        }
        Err(first_refusal)
    }

    /// Whether anything in `pools` mode could be admitted at all (a pool exists), for the "no pool" signal.
    pub fn has_pools(&self) -> bool {
        self.pools.as_ref().is_some_and(|pools| !pools.is_empty())
    }
}

impl Pool {
    /// Converts a pool at the border. Entries that do not parse (the CRD's CEL refuses them, so only an older API
    /// server lets them through) grant nothing; they are returned for a log line.
    pub fn from_resource(pool: &VirtualServicePool) -> (Pool, Vec<String>) {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let mut problems = Vec::new();
        let mut cidrs = |field: &str, list: &[String]| -> Vec<IpNet> {
            list.iter()
                .enumerate()
                .filter_map(|(i, text)| match parse_cidr(text) {
                    Ok(net) => Some(net),
                    Err(why) => {
                        problems.push(format!("VirtualServicePool {name}: spec.{field}[{i}]: {why}"));
                        None
                    }
                })
                .collect()
        };
        let addresses = cidrs("addresses", &pool.spec.addresses);
        let backend_cidrs = pool.spec.backend_cidrs.as_deref().map(|list| cidrs("backendCIDRs", list));
        let mut fwmarks = Vec::new();
        for (i, range) in pool.spec.fwmarks.iter().enumerate() {
            match (u32::try_from(range.from), u32::try_from(range.to)) {
                (Ok(from), Ok(to)) if from <= to && from > 0 => fwmarks.push((from, to)),
                _ => problems.push(format!(
                    "VirtualServicePool {name}: spec.fwmarks[{i}]: {}-{} is not a range of marks 1-4294967295",
                    range.from, range.to
                )),
            }
        }
        let namespace_selector = match pool.spec.namespace_selector.clone().map(Selector::try_from).transpose() {
            Ok(selector) => selector,
            Err(e) => {
                // A selector that cannot be read selects nothing (safe), and says so.
                problems.push(format!("VirtualServicePool {name}: spec.namespaceSelector: {e}"));
                None
            }
        };
        let converted = Pool {
            name,
            addresses,
            fwmarks,
            namespaces: pool.spec.namespaces.clone(),
            namespace_selector,
            backend_cidrs,
        };
        (converted, problems)
    }

    /// Whether it admits namespace `namespace` (with `labels`, when known: an unknown namespace matches no
    /// selector).
    pub fn admits_namespace(&self, namespace: &str, labels: Option<&Labels>) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
            || self.namespace_selector.as_ref().zip(labels).is_some_and(|(selector, labels)| selector.matches(labels))
    }

    /// Whether it grants service `key` (its address, or its firewall mark).
    pub fn grants(&self, key: &ServiceKey) -> bool {
        match key {
            ServiceKey::Addr { addr, .. } => self.addresses.iter().any(|net| net.contains(addr)),
            ServiceKey::Fwmark { mark, .. } => self.fwmarks.iter().any(|(from, to)| (*from..=*to).contains(mark)),
        }
    }

    /// The first explicit target outside `backendCIDRs`, when the pool sets them.
    fn outside_backends(&self, targets: &[(IpAddr, String)]) -> Option<NotAdmitted> {
        let allowed = self.backend_cidrs.as_ref()?;
        let (addr, field) = targets.iter().find(|(addr, _)| !allowed.iter().any(|net| net.contains(addr)))?;
        Some(NotAdmitted(format!("{field} {addr} is outside backendCIDRs of pool {}", self.name)))
    }
}

/// A CIDR as the CRD's `isCIDR` takes it (IPv4-mapped IPv6 refused, as the Kubernetes CEL library does).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let net: IpNet = text.parse().map_err(|_| format!("`{text}` is not a CIDR such as 192.0.2.0/28"))?;
    if let IpNet::V6(v6) = net
        && v6.addr().to_ipv4_mapped().is_some()
    {
        return Err(format!("`{text}` is IPv4-mapped IPv6: write the IPv4 form"));
    }
    Ok(net)
}

#[cfg(test)]
mod tests;
