//! The CEL rules of the CRD (what the API server refuses at `kubectl apply` time), evaluated here with kube's CEL
//! evaluator, and checked to agree with `api::validate` on the same specs.

use serde_json::{Value, json};

use super::*;
use crate::api::{ObjectId, validate};

/// The CEL messages a spec is refused with (empty: accepted).
fn refusals(spec: &Value) -> Vec<String> {
    match VirtualServiceSpec::validate_cel(spec, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.to_string().lines().map(str::to_owned).collect(),
    }
}

fn accepted(spec: Value) {
    assert_eq!(refusals(&spec), Vec::<String>::new(), "{spec}");
    let parsed: VirtualServiceSpec = serde_json::from_value(spec.clone()).unwrap();
    let validated = validate(&ObjectId::kubernetes("t", "t"), &parsed);
    assert!(validated.is_ok(), "CEL accepts what validation refuses: {spec} {validated:?}");
}

/// Refused by CEL with `message`, and by `api::validate` too (files get the same rule, with a field path).
fn refused(spec: Value, message: &str) {
    let found = refusals(&spec);
    assert!(found.iter().any(|m| m.contains(message)), "{spec}: expected {message:?}, got {found:?}");
    let parsed: VirtualServiceSpec = serde_json::from_value(spec.clone()).unwrap();
    assert!(validate(&ObjectId::kubernetes("t", "t"), &parsed).is_err(), "validation accepts what CEL refuses: {spec}");
}

#[test]
fn good_specs_pass() {
    accepted(json!({"address": "192.0.2.1", "port": 80}));
    accepted(json!({"fwmark": 7, "family": "IPv4", "onePacket": true}));
    accepted(json!({"address": "192.0.2.1", "port": 0, "persistence": {}}));
    accepted(json!({"address": "192.0.2.1", "port": 53, "protocol": "UDP", "onePacket": true}));
    accepted(json!({"address": "192.0.2.1", "port": 80, "scheduler": "sh", "schedulerFlags": ["sh-port"]}));
    accepted(json!({"address": "2001:db8::1", "port": 80, "persistence": {"prefixLength": 64}}));
    accepted(json!({"address": "192.0.2.1", "port": 80,
        "forwarding": {"method": "Tunnel", "tunnel": {"type": "GUE", "port": 6080, "checksum": "RemoteChecksum"}},
        "backends": [{"address": "10.0.0.1", "upperThreshold": 10, "lowerThreshold": 5}]}));
}

#[test]
fn address_xor_fwmark() {
    refused(json!({"port": 80}), "exactly one of address and fwmark");
    refused(
        json!({"address": "192.0.2.1", "port": 80, "fwmark": 1, "family": "IPv4"}),
        "exactly one of address and fwmark",
    );
    refused(json!({"address": "192.0.2.1"}), "port is required with address");
    refused(json!({"fwmark": 1}), "family is required with fwmark");
    refused(json!({"fwmark": 1, "family": "IPv4", "protocol": "TCP"}), "protocol is not allowed with fwmark");
}

#[test]
fn port_zero_needs_persistence() {
    refused(json!({"address": "192.0.2.1", "port": 0}), "port 0 (every port) requires persistence");
}

#[test]
fn one_packet_only_for_udp_and_fwmark() {
    refused(json!({"address": "192.0.2.1", "port": 80, "onePacket": true}), "onePacket is only for UDP and fwmark");
    accepted(json!({"address": "192.0.2.1", "port": 80, "onePacket": false}));
}

#[test]
fn scheduler_flags_need_their_scheduler() {
    let message = "schedulerFlags sh-fallback and sh-port need scheduler sh";
    refused(json!({"address": "192.0.2.1", "port": 80, "schedulerFlags": ["sh-port"]}), message);
    refused(json!({"address": "192.0.2.1", "port": 80, "scheduler": "mh", "schedulerFlags": ["sh-port"]}), message);
    refused(json!({"address": "192.0.2.1", "port": 80, "scheduler": "sh", "schedulerFlags": ["bogus"]}), message);
}

#[test]
fn an_ipv4_persistence_prefix_is_at_most_32() {
    refused(json!({"address": "192.0.2.1", "port": 80, "persistence": {"prefixLength": 64}}), "at most 32");
}

#[test]
fn tunnel_options_follow_the_tunnel_type() {
    let svc = |forwarding: Value| json!({"address": "192.0.2.1", "port": 80, "forwarding": forwarding});
    refused(svc(json!({"method": "Tunnel", "tunnel": {"type": "GUE"}})), "port is required with type GUE");
    refused(svc(json!({"method": "Tunnel", "tunnel": {"type": "IPIP", "port": 1}})), "port is required with type GUE");
    refused(svc(json!({"method": "Tunnel", "tunnel": {"checksum": "Checksum"}})), "checksum is only for GUE and GRE");
    refused(
        svc(json!({"method": "Tunnel", "tunnel": {"type": "GRE", "checksum": "RemoteChecksum"}})),
        "RemoteChecksum is only for GUE",
    );
    refused(svc(json!({"method": "Masquerade", "tunnel": {}})), "tunnel options are only for method Tunnel");
}

#[test]
fn a_lower_threshold_is_not_above_the_upper_one() {
    let svc = |backend: Value| json!({"address": "192.0.2.1", "port": 80, "backends": [backend]});
    refused(svc(json!({"address": "10.0.0.1", "upperThreshold": 5, "lowerThreshold": 6})), "lowerThreshold is above");
    refused(svc(json!({"address": "10.0.0.1", "lowerThreshold": 1})), "lowerThreshold is above");
    accepted(svc(json!({"address": "10.0.0.1", "upperThreshold": 5, "lowerThreshold": 5})));
}
