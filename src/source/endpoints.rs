//! Backends from EndpointSlices: the slices a source hands over (converted at its border, so this module knows no
//! Kubernetes types) and how a `spec.backendsFrom` entry turns them into destinations.
//!
//! - Only slices of the service's family count (`addressType` IPv4 or IPv6; FQDN slices are ignored).
//! - The port is the slice port named as in `spec.backendsFrom[].port`; without a name the slices must carry exactly
//!   one port. Direct routing and tunnel backends keep the service's port (those methods cannot change it).
//! - Ready endpoints are backends. Terminating and not-ready ones are left out, so the planner drains them like a
//!   removed static backend (weight 0 while their connections last, up to `drainTimeoutSeconds`).
//! - Of an endpoint's addresses only the first is used (they are fungible, as the EndpointSlice API says).
//! - The backends share the service's health policy (`DesiredService::health`, cloned with the service); an
//!   endpoint that is the sorry server is an error.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use crate::api::{Declared, EndpointsRef, ObjectId, ValidationError};
use crate::model::{DestKey, Destination, Family, ForwardMethod};
use crate::table::DesiredService;

/// One EndpointSlice, as far as backends are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// `addressType`: IPv4 or IPv6; `None` for FQDN (ignored).
    pub family: Option<Family>,
    /// `ports[]`: name (absent for an unnamed port) and number.
    pub ports: Vec<(Option<String>, u16)>,
    /// Each endpoint's first address, and whether it takes new connections (ready and not terminating).
    pub endpoints: Vec<(IpAddr, bool)>,
}

/// The slices of one Service, by slice name: a sorted vector (a Service has one slice, or a few), since a
/// `BTreeMap` allocates a node of eleven slots for its first entry.
pub type ServiceSlices = litemap::LiteMap<String, Slice>;

/// `(namespace, service name)`.
pub type ServiceRef = (String, String);

/// The service of `declared` (object `id`) with its static backends and those of its `backendsFrom` entries; every
/// problem found (a port that cannot be chosen, the same backend from two origins) names its field.
pub fn resolve(
    id: &ObjectId,
    declared: &Declared,
    slices: &BTreeMap<ServiceRef, ServiceSlices>,
) -> Result<Arc<DesiredService>, Vec<ValidationError>> {
    // Without backendsFrom the service is the declared one, shared rather than copied: at 180,000 objects the copy
    // was a third of the index's memory.
    if declared.backends_from.is_empty() {
        return Ok(Arc::clone(&declared.service));
    }
    let ObjectId::Kubernetes { namespace, .. } = id else {
        // Validation refuses backendsFrom outside Kubernetes; nothing to resolve against.
        return Ok(Arc::clone(&declared.service));
    };
    let mut service = (*declared.service).clone();
    let family = service.service.key.family();
    let service_port = match service.service.key {
        crate::model::ServiceKey::Addr { port, .. } => port,
        crate::model::ServiceKey::Fwmark { .. } => 0,
    };
    let mut errors = Vec::new();
    // Where each backend came from, for duplicate messages.
    let mut origin: BTreeMap<DestKey, String> = BTreeMap::new();
    for key in service.dests.keys() {
        origin.insert(*key, "in spec.backends".to_owned());
    }
    // The sorry server stands in for the backends; it cannot be one of them (validation checks the static ones).
    if let Some(sorry) = service.health.as_ref().and_then(|h| h.sorry_server.as_ref()) {
        origin.insert(sorry.key, "the sorry server (spec.sorryServer)".to_owned());
    }
    for from in &declared.backends_from {
        let Some(all) = slices.get(&(namespace.clone(), from.service.clone())) else { continue };
        for (slice_name, slice) in all {
            if slice.family != Some(family) {
                continue;
            }
            let port = match pick_port(from, slice) {
                Ok(Some(port)) => port,
                Ok(None) => continue,
                Err(message) => {
                    errors.push(ValidationError::new(id.clone(), port_field(from), message));
                    continue;
                }
            };
            let port = match from.config.forward {
                ForwardMethod::DirectRoute | ForwardMethod::Tunnel => service_port,
                _ => port,
            };
            for (addr, ready) in &slice.endpoints {
                if !ready || crate::model::Family::of(addr) != family {
                    continue;
                }
                let key = DestKey::new(*addr, port);
                let here = format!("{} (EndpointSlice {slice_name})", from.field);
                if let Some(first) = origin.get(&key) {
                    // The same endpoint in two slices of one Service is the API's normal churn: not a conflict.
                    if first.starts_with(&format!("from {} ", from.field)) {
                        continue;
                    }
                    errors.push(ValidationError::new(
                        id.clone(),
                        from.field.clone(),
                        format!("backend {key} from {here} is also {first}"),
                    ));
                    continue;
                }
                origin.insert(key, format!("from {here}"));
                service.dests.insert(key, Destination::new(key, from.config));
            }
        }
    }
    if errors.is_empty() { Ok(Arc::new(service)) } else { Err(errors) }
}

fn port_field(from: &EndpointsRef) -> String {
    format!("{}.port", from.field)
}

/// The slice port for `from`: `Ok(None)` when the slice does not carry the named port (another slice may).
fn pick_port(from: &EndpointsRef, slice: &Slice) -> Result<Option<u16>, String> {
    match &from.port {
        Some(name) => Ok(slice.ports.iter().find(|(n, _)| n.as_deref() == Some(name.as_str())).map(|(_, p)| *p)),
        None => match slice.ports.as_slice() {
            [(_, port)] => Ok(Some(*port)),
            [] => Ok(None),
            several => {
                let names: Vec<String> =
                    several.iter().map(|(n, p)| n.clone().unwrap_or_else(|| p.to_string())).collect();
                Err(format!(
                    "the EndpointSlices of Service {} carry several ports ({}): name one",
                    from.service,
                    names.join(", ")
                ))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{VirtualServiceSpec, validate};

    fn declared(yaml: &str) -> Declared {
        let spec: VirtualServiceSpec = serde_yaml::from_str(yaml).unwrap();
        validate(&id(), &spec).unwrap()
    }

    fn id() -> ObjectId {
        ObjectId::kubernetes("prod", "web")
    }

    fn v4(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn slice(ports: &[(Option<&str>, u16)], endpoints: &[(&str, bool)]) -> Slice {
        Slice {
            family: Some(Family::of(&v4(endpoints.first().map_or("10.0.0.1", |e| e.0)))),
            ports: ports.iter().map(|(n, p)| (n.map(str::to_owned), *p)).collect(),
            endpoints: endpoints.iter().map(|(a, r)| (v4(a), *r)).collect(),
        }
    }

    fn resolve_with(
        declared: &Declared,
        slices: &BTreeMap<ServiceRef, ServiceSlices>,
    ) -> Result<Vec<String>, Vec<String>> {
        resolve(&id(), declared, slices)
            .map(|s| s.dests.values().map(|d| format!("{} w{}", d.key, d.config.weight)).collect())
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn slices(entries: &[(&str, &str, Slice)]) -> BTreeMap<ServiceRef, ServiceSlices> {
        let mut out: BTreeMap<ServiceRef, ServiceSlices> = BTreeMap::new();
        for (service, name, slice) in entries {
            out.entry(("prod".to_owned(), (*service).to_owned()))
                .or_default()
                .insert((*name).to_owned(), slice.clone());
        }
        out
    }

    #[test]
    fn ready_endpoints_become_backends_on_the_named_port() {
        let d = declared("address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web, port: http, weight: 2}]\n");
        let s = slices(&[
            (
                "web",
                "web-a",
                slice(&[(Some("http"), 8080), (Some("metrics"), 9100)], &[("10.0.0.1", true), ("10.0.0.2", false)]),
            ),
            ("web", "web-b", slice(&[(Some("http"), 8080)], &[("10.0.0.3", true)])),
        ]);
        assert_eq!(resolve_with(&d, &s), Ok(vec!["10.0.0.1:8080 w2".to_owned(), "10.0.0.3:8080 w2".to_owned()]));
    }

    #[test]
    fn no_slices_yet_means_no_backends_not_an_error() {
        let d = declared("address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web}]\n");
        assert_eq!(resolve_with(&d, &BTreeMap::new()), Ok(Vec::new()));
    }

    #[test]
    fn an_unnamed_port_needs_slices_with_one_port() {
        let d = declared("address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web}]\n");
        let one = slices(&[("web", "a", slice(&[(None, 8080)], &[("10.0.0.1", true)]))]);
        assert_eq!(resolve_with(&d, &one), Ok(vec!["10.0.0.1:8080 w1".to_owned()]));
        let two = slices(&[("web", "a", slice(&[(Some("http"), 80), (Some("https"), 443)], &[("10.0.0.1", true)]))]);
        let errors = resolve_with(&d, &two).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "prod/web: spec.backendsFrom[0].port: the EndpointSlices of Service web carry several ports (http, https): name one"
            ]
        );
    }

    #[test]
    fn only_slices_of_the_service_family_count() {
        let d = declared("address: 2001:db8::1\nport: 80\nbackendsFrom: [{service: web}]\n");
        let mut v6 = slice(&[(None, 80)], &[]);
        v6.family = Some(Family::V6);
        v6.endpoints = vec![("fd00::1".parse().unwrap(), true)];
        let s = slices(&[("web", "v4", slice(&[(None, 80)], &[("10.0.0.1", true)])), ("web", "v6", v6)]);
        assert_eq!(resolve_with(&d, &s), Ok(vec!["[fd00::1]:80 w1".to_owned()]));
    }

    #[test]
    fn direct_routing_keeps_the_service_port() {
        let d = declared(
            "address: 192.0.2.1\nport: 80\nforwarding: {method: DirectRouting}\nbackendsFrom: [{service: web}]\n",
        );
        let s = slices(&[("web", "a", slice(&[(None, 8080)], &[("10.0.0.1", true)]))]);
        assert_eq!(resolve_with(&d, &s), Ok(vec!["10.0.0.1:80 w1".to_owned()]));
    }

    #[test]
    fn the_same_backend_from_two_origins_names_both() {
        let d = declared(
            "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, port: 8080}]\nbackendsFrom: [{service: web}]\n",
        );
        let s = slices(&[("web", "web-a", slice(&[(None, 8080)], &[("10.0.0.1", true), ("10.0.0.2", true)]))]);
        let errors = resolve_with(&d, &s).unwrap_err();
        assert_eq!(
            errors,
            vec![
                "prod/web: spec.backendsFrom[0]: backend 10.0.0.1:8080 from spec.backendsFrom[0] (EndpointSlice web-a) is also in spec.backends"
            ]
        );
        // The same endpoint in two slices of one Service (a slice being replaced) is one backend.
        let d = declared("address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web}]\n");
        let s = slices(&[
            ("web", "old", slice(&[(None, 8080)], &[("10.0.0.1", true)])),
            ("web", "new", slice(&[(None, 8080)], &[("10.0.0.1", true)])),
        ]);
        assert_eq!(resolve_with(&d, &s), Ok(vec!["10.0.0.1:8080 w1".to_owned()]));
    }

    #[test]
    fn endpoints_get_the_service_health_policy() {
        let d = declared(
            "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.9, port: 8080}]\nbackendsFrom: [{service: web}]\n\
             healthCheck: {type: HTTP, path: /healthz}\n",
        );
        let policy = d.service.health.clone().expect("a policy");
        let s = slices(&[("web", "a", slice(&[(None, 8080)], &[("10.0.0.1", true)]))]);
        let service = resolve(&id(), &d, &s).unwrap();
        assert!(service.health.as_ref().is_some_and(|h| std::sync::Arc::ptr_eq(h, &policy)), "the same policy");
        let endpoint = DestKey::new(v4("10.0.0.1"), 8080);
        assert!(service.dests.contains_key(&endpoint));
        let target = policy.target(&endpoint).expect("an endpoint is probed");
        assert_eq!(target.target, "10.0.0.1:8080".parse().unwrap());
        assert!(policy.backends.is_empty(), "endpoints have no overrides; they get the service's check");
    }

    #[test]
    fn an_endpoint_cannot_be_the_sorry_server() {
        let d = declared(
            "address: 192.0.2.1\nport: 80\nbackendsFrom: [{service: web}]\nsorryServer: {address: 10.0.0.2, port: 8080}\n",
        );
        let s = slices(&[("web", "web-a", slice(&[(None, 8080)], &[("10.0.0.1", true), ("10.0.0.2", true)]))]);
        assert_eq!(
            resolve_with(&d, &s).unwrap_err(),
            vec![
                "prod/web: spec.backendsFrom[0]: backend 10.0.0.2:8080 from spec.backendsFrom[0] (EndpointSlice web-a) is also the sorry server (spec.sorryServer)"
            ]
        );
    }
}
