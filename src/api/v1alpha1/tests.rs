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

/// A service on 192.0.2.1:80 with one backend and `extra` merged into its spec.
fn with(extra: Value) -> Value {
    let mut spec = json!({"address": "192.0.2.1", "port": 80, "backends": [{"address": "10.0.0.1"}]});
    if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
        spec.extend(extra.clone());
    }
    spec
}

fn check(hc: Value) -> Value {
    with(json!({"healthCheck": hc}))
}

#[test]
fn good_health_checks_pass() {
    accepted(check(json!({"type": "TCP"})));
    accepted(check(json!({"type": "HTTP", "intervalSeconds": 10, "timeoutSeconds": 9, "rise": 1, "fall": 1,
        "port": 8081, "sourceAddress": "192.0.2.250", "path": "/healthz", "host": "web.example", "method": "GET",
        "expectStatus": ["200", "301-302"], "expectBody": "ok", "onFailure": "Remove", "slowStartSeconds": 30,
        "initialState": "Unhealthy"})));
    accepted(check(
        json!({"type": "HTTPS", "serverName": "web.example", "insecureSkipVerify": true, "method": "HEAD"}),
    ));
    accepted(check(json!({"type": "UDP", "send": "00ff", "expectPrefix": ""})));
    accepted(check(json!({"type": "DNS", "query": "example.org", "queryType": "SOA"})));
    accepted(check(json!({"type": "GRPC", "service": "shop.Cart"})));
    accepted(with(json!({"sorryServer": {"address": "10.0.0.99"}, "quorum": 2, "hysteresis": 1})));
    accepted(with(json!({"healthCheck": {"type": "TCP"},
        "backends": [{"address": "10.0.0.1", "healthCheck": {"port": 9000}},
                     {"address": "10.0.0.2", "healthCheck": {"disabled": true}}]})));
    accepted(json!({"fwmark": 7, "family": "IPv4", "healthCheck": {"type": "TCP", "port": 443},
        "backends": [{"address": "10.0.0.1"}]}));
}

#[test]
fn the_timeout_is_below_the_interval_with_the_defaults() {
    let message = "timeoutSeconds must be below intervalSeconds (default 5)";
    refused(check(json!({"type": "TCP", "timeoutSeconds": 5})), message);
    refused(check(json!({"type": "TCP", "intervalSeconds": 4, "timeoutSeconds": 4})), message);
    accepted(check(json!({"type": "TCP", "intervalSeconds": 2, "timeoutSeconds": 1})));
    // Without a timeout the default follows the interval (half of it when below 2 s): every second is fine.
    accepted(check(json!({"type": "TCP", "intervalSeconds": 1})));
    accepted(check(json!({"type": "TCP", "intervalSeconds": 2})));
    accepted(check(json!({"type": "TCP", "timeoutSeconds": 4})));
}

#[test]
fn probe_fields_only_with_their_type() {
    let http = "path, host, method, expectStatus and expectBody are only for types HTTP and HTTPS";
    for (field, value) in [
        ("path", json!("/")),
        ("host", json!("a")),
        ("method", json!("GET")),
        ("expectStatus", json!(["200"])),
        ("expectBody", json!("ok")),
    ] {
        let mut hc = json!({"type": "TCP"});
        hc[field] = value;
        refused(check(hc), http);
    }
    let https = "serverName and insecureSkipVerify are only for type HTTPS";
    refused(check(json!({"type": "HTTP", "serverName": "a"})), https);
    refused(check(json!({"type": "HTTP", "insecureSkipVerify": false})), https);
    let udp = "send, expectPrefix and requireReply are only for type UDP";
    refused(check(json!({"type": "TCP", "send": "00"})), udp);
    refused(check(json!({"type": "DNS", "query": "a", "expectPrefix": "00"})), udp);
    refused(check(json!({"type": "TCP", "requireReply": false})), udp);
    accepted(check(json!({"type": "UDP", "requireReply": false, "send": "00"})));
    accepted(check(json!({"type": "UDP", "requireReply": true, "expectPrefix": "00"})));
    refused(
        check(json!({"type": "UDP", "requireReply": false, "expectPrefix": "00"})),
        "expectPrefix needs a reply: it is not allowed with requireReply false",
    );
    let dns = "query and queryType are only for type DNS";
    refused(check(json!({"type": "HTTP", "query": "a"})), dns);
    refused(check(json!({"type": "TCP", "queryType": "A"})), dns);
    refused(check(json!({"type": "HTTPS", "service": "a"})), "service is only for type GRPC");
}

#[test]
fn dns_needs_a_query_and_head_reads_no_body() {
    refused(check(json!({"type": "DNS"})), "query is required with type DNS");
    refused(check(json!({"type": "DNS", "queryType": "A"})), "query is required with type DNS");
    refused(check(json!({"type": "HTTP", "method": "HEAD", "expectBody": "ok"})), "expectBody needs method GET");
}

#[test]
fn bind_address_is_for_address_services_and_withdrawal_for_bound_addresses() {
    accepted(with(json!({"bindAddress": false})));
    accepted(with(json!({"withdrawAddressWhenDown": true})));
    accepted(with(json!({"bindAddress": true, "withdrawAddressWhenDown": true})));
    accepted(with(json!({"bindAddress": false, "withdrawAddressWhenDown": false})));
    refused(json!({"fwmark": 7, "family": "IPv4", "bindAddress": true}), "bindAddress is only for address services");
    refused(
        with(json!({"bindAddress": false, "withdrawAddressWhenDown": true})),
        "withdrawAddressWhenDown needs an address this program binds",
    );
}

#[test]
fn quorum_and_hysteresis_need_a_sorry_server() {
    refused(with(json!({"quorum": 2})), "quorum and hysteresis need sorryServer");
    refused(with(json!({"hysteresis": 0})), "quorum and hysteresis need sorryServer");
}

#[test]
fn a_backend_health_check_is_a_port_an_address_or_disabled_and_needs_the_service_check() {
    let backend = |bhc: Value| {
        with(json!({"healthCheck": {"type": "TCP"}, "backends": [{"address": "10.0.0.1", "healthCheck": bhc}]}))
    };
    let message = "give port and/or address, or disabled alone";
    refused(backend(json!({"port": 9000, "disabled": true})), message);
    refused(backend(json!({"port": 9000, "disabled": false})), message);
    refused(backend(json!({"address": "10.1.0.1", "disabled": true})), message);
    refused(backend(json!({})), message);
    accepted(backend(json!({"disabled": false})));
    accepted(backend(json!({"address": "10.1.0.1"})));
    accepted(backend(json!({"address": "10.1.0.1", "port": 9000})));
    refused(backend(json!({"address": "web"})), "healthCheck.address must be an IPv4 or IPv6 address");
    refused(
        with(json!({"backends": [{"address": "10.0.0.1", "healthCheck": {"disabled": true}}]})),
        "backends[].healthCheck needs healthCheck",
    );
}

#[test]
fn a_backend_on_port_zero_needs_a_port_to_probe() {
    let message = "a backend on port 0 needs healthCheck.port or its own healthCheck";
    let fwmark =
        |backend: Value| json!({"fwmark": 7, "family": "IPv4", "healthCheck": {"type": "TCP"}, "backends": [backend]});
    refused(fwmark(json!({"address": "10.0.0.1"})), message);
    refused(fwmark(json!({"address": "10.0.0.1", "port": 0})), message);
    refused(fwmark(json!({"address": "10.0.0.1", "healthCheck": {"disabled": false}})), message);
    refused(fwmark(json!({"address": "10.0.0.1", "healthCheck": {"address": "10.1.0.1"}})), message);
    accepted(fwmark(json!({"address": "10.0.0.1", "port": 443})));
    accepted(fwmark(json!({"address": "10.0.0.1", "healthCheck": {"port": 443}})));
    accepted(fwmark(json!({"address": "10.0.0.1", "healthCheck": {"disabled": true}})));
    refused(
        json!({"address": "192.0.2.1", "port": 0, "persistence": {}, "healthCheck": {"type": "TCP"},
            "backends": [{"address": "10.0.0.1"}]}),
        message,
    );
}

// ---- address safety (the CEL IP library: Kubernetes 1.31 or later) ----

#[test]
fn a_virtual_address_is_a_unicast_host_address() {
    let unicast = "address must be a unicast host address";
    for vip in [
        "0.0.0.0",
        "::",
        "255.255.255.255",
        "224.0.0.251",
        "239.255.255.250",
        "ff02::1",
        "ff05::1:3",
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "169.254.169.254",
        "169.254.0.1",
        "fe80::10",
        "febf::1",
    ] {
        refused(json!({"address": vip, "port": 80}), unicast);
    }
    let syntax =
        "address must be an IPv4 or IPv6 address (an IPv4-mapped IPv6 address is refused: write the IPv4 form)";
    // The schema took any string until now: the API server accepted these.
    refused(json!({"address": "192.0.2.999", "port": 80}), syntax);
    refused(json!({"address": "web.example", "port": 80}), syntax);
    refused(json!({"address": "::ffff:192.0.2.1", "port": 80}), syntax);
    refused(json!({"address": "fe80::1%eth0", "port": 80}), syntax);
    for vip in ["0.0.0.1", "128.0.0.1", "169.253.255.255", "169.255.0.1", "255.255.255.254", "fec0::1", "fd00::1"] {
        accepted(json!({"address": vip, "port": 80}));
    }
}

/// A service on 192.0.2.1:80 with `forwarding` (absent: Masquerade) and `backend`.
fn backend(forwarding: Option<&str>, backend: Value) -> Value {
    let mut spec = json!({"address": "192.0.2.1", "port": 80, "backends": [backend]});
    if let Some(method) = forwarding {
        spec["forwarding"] = json!({"method": method});
    }
    spec
}

#[test]
fn a_loopback_backend_needs_forwarding_local() {
    let message = "a loopback backend needs forwarding method Local";
    accepted(backend(Some("Local"), json!({"address": "127.0.0.1"})));
    accepted(backend(None, json!({"address": "127.0.0.1", "forwarding": {"method": "Local"}})));
    accepted(backend(Some("DirectRouting"), json!({"address": "127.0.0.1", "forwarding": {"method": "Local"}})));
    refused(backend(None, json!({"address": "127.0.0.1"})), message);
    for method in ["Masquerade", "DirectRouting", "Tunnel"] {
        refused(backend(Some(method), json!({"address": "127.0.0.1"})), message);
        refused(backend(Some("Local"), json!({"address": "127.0.0.1", "forwarding": {"method": method}})), message);
    }
    // A forwarding given without a method is the default, Masquerade (the API server fills it in).
    refused(backend(Some("Local"), json!({"address": "127.0.0.1", "forwarding": {}})), message);
    refused(json!({"address": "2001:db8::1", "port": 80, "backends": [{"address": "::1"}]}), message);
    accepted(json!({"address": "2001:db8::1", "port": 80, "forwarding": {"method": "Local"},
        "backends": [{"address": "::1"}]}));

    let sorry = "a loopback sorryServer needs forwarding method Local";
    refused(with(json!({"sorryServer": {"address": "127.0.0.1"}})), sorry);
    refused(with(json!({"sorryServer": {"address": "127.0.0.1", "forwarding": {"method": "DirectRouting"}}})), sorry);
    accepted(with(json!({"sorryServer": {"address": "127.0.0.1", "forwarding": {"method": "Local"}}})));
}

#[test]
fn a_destination_is_unicast_and_not_ipv6_link_local() {
    let v6 = |address: &str| {
        json!({"address": "2001:db8::1", "port": 80, "forwarding": {"method": "Local"},
            "backends": [{"address": address}]})
    };
    let link_local = "address must not be IPv6 link-local (fe80::/10)";
    refused(v6("fe80::1"), link_local);
    refused(backend(Some("Tunnel"), json!({"address": "fe80::1"})), link_local);
    refused(with(json!({"sorryServer": {"address": "fe80::99", "forwarding": {"method": "Tunnel"}}})), link_local);
    // IPv4 link-local is routed on-link like any subnet.
    accepted(backend(None, json!({"address": "169.254.10.20"})));

    let unicast = "address must be a unicast address: not unspecified, broadcast or multicast";
    for address in ["0.0.0.0", "255.255.255.255", "224.0.0.251"] {
        refused(backend(Some("Local"), json!({"address": address})), unicast);
        refused(with(json!({"sorryServer": {"address": address, "forwarding": {"method": "Local"}}})), unicast);
    }
    for address in ["::", "ff02::1"] {
        refused(v6(address), unicast);
    }

    let syntax = "an IPv4-mapped IPv6 address is refused: write the IPv4 form";
    refused(v6("::ffff:10.0.0.1"), syntax);
    refused(backend(None, json!({"address": "10.0.0.300"})), syntax);
    refused(with(json!({"sorryServer": {"address": "::ffff:10.0.0.99"}})), syntax);
}

/// The schema's closed sets: what `validate_cel` does not evaluate (it runs the rules, not `enum`), the API server
/// refuses by the schema; `api::validate` refuses the same values for files, naming the field.
#[test]
fn closed_sets_are_schema_enums() {
    let schema = serde_json::to_value(crate::api::crd().spec.versions[0].schema.clone()).unwrap();
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(spec["scheduler"]["enum"], json!(validate::SCHEDULERS));
    assert_eq!(spec["schedulerFlags"]["items"]["enum"], json!(["sh-fallback", "sh-port", "mh-fallback", "mh-port"]));
    assert_eq!(spec["persistence"]["properties"]["engine"]["enum"], json!(validate::PERSISTENCE_ENGINES));
    let refused_by_validation = |spec: Value| {
        let parsed: VirtualServiceSpec = serde_json::from_value(spec.clone()).unwrap();
        assert!(validate(&ObjectId::kubernetes("t", "t"), &parsed).is_err(), "{spec}");
    };
    refused_by_validation(json!({"address": "192.0.2.1", "port": 80, "scheduler": "roundrobin"}));
    refused_by_validation(json!({"address": "192.0.2.1", "port": 80, "persistence": {"engine": "ftp"}}));
}
