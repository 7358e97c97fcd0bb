use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::api::VirtualServiceSpec;
use crate::api::v1alpha1::{MAX_BACKENDS, MAX_BACKENDS_FROM};

fn id() -> ObjectId {
    ObjectId::kubernetes("default", "web")
}

fn spec(yaml: &str) -> VirtualServiceSpec {
    serde_yaml::from_str(yaml).unwrap()
}

fn ok(yaml: &str) -> DesiredService {
    match validate(&id(), &spec(yaml)) {
        Ok(d) => (*d.service).clone(),
        Err(r) => panic!("unexpected errors: {:#?}", r.errors),
    }
}

fn rejected(yaml: &str) -> Rejected {
    validate(&id(), &spec(yaml)).expect_err("the object should be refused")
}

/// Asserts that `yaml` is refused with exactly one error, on `field`, whose message contains `fragment`, and that
/// the rendered message names the object and the field.
fn assert_error(yaml: &str, field: &str, fragment: &str) {
    let errors = rejected(yaml).errors;
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    let e = &errors[0];
    assert_eq!(e.object, id());
    assert_eq!(e.field, field, "{e}");
    assert!(e.message.contains(fragment), "`{}` does not contain `{fragment}`", e.message);
    assert!(e.to_string().starts_with(&format!("default/web: {field}: ")), "{e}");
}

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

const WEB: &str = "
address: 192.0.2.10
port: 80
backends:
  - address: 10.0.0.11
    port: 8080
  - address: 10.0.0.12
";

// ---- mapping to the model ----

#[test]
fn defaults_follow_ipvsadm() {
    let d = ok(WEB);
    assert_eq!(d.service.key, ServiceKey::tcp(v4("192.0.2.10"), 80));
    assert_eq!(d.service.config, ServiceConfig::new(Family::V4, "wlc"));
    assert_eq!(d.drain_timeout_secs, DEFAULT_DRAIN_TIMEOUT_SECS);
    assert_eq!(d.origin.to_string(), "default/web");
    let keys: Vec<_> = d.dests.keys().copied().collect();
    // The second backend takes the service's port.
    assert_eq!(keys, vec![DestKey::new(v4("10.0.0.11"), 8080), DestKey::new(v4("10.0.0.12"), 80)]);
    for dest in d.dests.values() {
        assert_eq!(dest.config, DestConfig::masquerade(1));
    }
}

#[test]
fn persistence_maps_to_flags_timeout_and_netmask() {
    let d = ok("address: 192.0.2.53\nport: 53\nprotocol: UDP\npersistence: {prefixLength: 24}\n");
    assert_eq!(d.service.key, ServiceKey::udp(v4("192.0.2.53"), 53));
    let c = &d.service.config;
    assert!(c.flags.has(ServiceFlags::PERSISTENT));
    assert_eq!(c.timeout, 300);
    assert_eq!(c.netmask, Netmask::V4(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(c.pe_name, None);

    let d = ok("address: 2001:db8::1\nport: 443\npersistence: {timeoutSeconds: 60, engine: sip}\n");
    let c = &d.service.config;
    assert_eq!((c.timeout, c.netmask, c.pe_name.as_deref()), (60, Netmask::V6Prefix(128), Some("sip")));
    let d = ok("address: 192.0.2.1\nport: 0\npersistence: {prefixLength: 0}\n");
    assert_eq!(d.service.config.netmask, Netmask::V4(Ipv4Addr::UNSPECIFIED));
}

#[test]
fn no_persistence_means_timeout_zero_and_host_netmask() {
    let d = ok("address: 2001:db8::1\nport: 80\n");
    assert_eq!(d.service.config.timeout, 0);
    assert_eq!(d.service.config.netmask, Netmask::host(Family::V6));
    assert!(!d.service.config.flags.has(ServiceFlags::PERSISTENT));
}

#[test]
fn scheduler_flags_and_one_packet_map_to_bits() {
    let d = ok("address: 192.0.2.1\nport: 53\nprotocol: UDP\nscheduler: sh\nschedulerFlags: [sh-port, sh-fallback]\n\
                onePacket: true\n");
    let want = ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::ONEPACKET;
    assert_eq!(d.service.config.flags, ServiceFlags(want));
    assert_eq!(d.service.config.scheduler, "sh");
    let d = ok("address: 192.0.2.1\nport: 80\nscheduler: mh\nschedulerFlags: [mh-port]\n");
    assert_eq!(d.service.config.flags, ServiceFlags(ServiceFlags::SCHED2));
}

#[test]
fn direct_routing_copies_the_service_port() {
    let d = ok("address: 192.0.2.1\nport: 80\nforwarding: {method: DirectRouting}\nbackends: [{address: 10.0.0.1}]\n");
    let dest = d.dests.values().next().unwrap();
    assert_eq!(dest.key, DestKey::new(v4("10.0.0.1"), 80));
    assert_eq!(dest.config.forward, ForwardMethod::DirectRoute);
}

#[test]
fn an_address_service_wants_its_vip_on_the_node_and_a_fwmark_service_has_none() {
    assert!(ok(WEB).bind_address);
    assert!(!ok("fwmark: 42\nfamily: IPv4\n").bind_address);
}

#[test]
fn bind_address_false_leaves_the_vip_to_something_else_and_withdrawal_needs_a_bound_address() {
    assert!(!ok(&format!("{WEB}bindAddress: false\n")).bind_address);
    let withdrawn = ok(&format!("{WEB}withdrawAddressWhenDown: true\n"));
    assert!(withdrawn.bind_address && withdrawn.withdraw_address_when_down);
    assert!(!ok(WEB).withdraw_address_when_down, "off by default");
    assert_error("fwmark: 42\nfamily: IPv4\nbindAddress: true\n", "spec.bindAddress", "only for address services");
    assert_error(
        &format!("{WEB}bindAddress: false\nwithdrawAddressWhenDown: true\n"),
        "spec.withdrawAddressWhenDown",
        "needs an address this program binds",
    );
}

#[test]
fn fwmark_backends_default_to_port_zero() {
    let d = ok("fwmark: 42\nfamily: IPv4\nbackends: [{address: 10.0.0.1}, {address: 10.0.0.2, port: 8080}]\n");
    assert_eq!(d.service.key, ServiceKey::Fwmark { family: Family::V4, mark: 42 });
    let keys: Vec<_> = d.dests.keys().map(|k| k.port).collect();
    assert_eq!(keys, vec![0, 8080]);
}

#[test]
fn tunnel_options_and_per_backend_override() {
    let d = ok("
address: 192.0.2.1
port: 80
forwarding: {method: Tunnel, tunnel: {type: GUE, port: 6080, checksum: RemoteChecksum}}
backends:
  - address: 10.0.0.1
    weight: 5
    upperThreshold: 100
    lowerThreshold: 50
  - address: fd00::2
  - address: 10.0.0.3
    forwarding: {method: Masquerade}
");
    let gue =
        TunnelConfig { kind: model::TunnelType::Gue, port: 6080, checksum: model::TunnelChecksum::RemoteChecksum };
    let d1 = &d.dests[&DestKey::new(v4("10.0.0.1"), 80)];
    assert_eq!(
        d1.config,
        DestConfig {
            forward: ForwardMethod::Tunnel,
            weight: 5,
            upper_threshold: 100,
            lower_threshold: 50,
            tunnel: gue
        }
    );
    // Another family is fine through a tunnel.
    let d2 = &d.dests[&DestKey::new("fd00::2".parse().unwrap(), 80)];
    assert_eq!(d2.config.tunnel, gue);
    let d3 = &d.dests[&DestKey::new(v4("10.0.0.3"), 80)];
    assert_eq!(d3.config, DestConfig::masquerade(1));
}

#[test]
fn gre_and_ipip_tunnels() {
    let d = ok("address: 192.0.2.1\nport: 80\nforwarding: {method: Tunnel, tunnel: {type: GRE, checksum: Checksum}}\n\
                backends: [{address: 10.0.0.1}, {address: 10.0.0.2, forwarding: {method: Tunnel}}]\n");
    let t: Vec<_> = d.dests.values().map(|d| d.config.tunnel).collect();
    assert_eq!(t[0], TunnelConfig { kind: model::TunnelType::Gre, port: 0, checksum: model::TunnelChecksum::Checksum });
    assert_eq!(t[1], TunnelConfig::default());
}

#[test]
fn drain_timeout_is_taken() {
    assert_eq!(ok("address: 192.0.2.1\nport: 80\ndrainTimeoutSeconds: 0\n").drain_timeout_secs, 0);
    assert_eq!(ok("address: 192.0.2.1\nport: 80\ndrainTimeoutSeconds: 30\n").drain_timeout_secs, 30);
}

#[test]
fn extreme_valid_values_are_accepted() {
    let d = ok("address: 192.0.2.1\nport: 65535\npersistence: {timeoutSeconds: 2678400}\n\
                backends: [{address: 10.0.0.1, weight: 2147483647, upperThreshold: 4294967295, lowerThreshold: 4294967295}, \
                {address: 10.0.0.2, weight: 0, port: 0}]\n");
    assert_eq!(d.service.config.timeout, MAX_PERSISTENCE_TIMEOUT_SECS);
    let first = d.dests.values().next().unwrap();
    assert_eq!((first.config.weight, first.config.upper_threshold), (MAX_WEIGHT, u32::MAX));
    assert_eq!(
        ok("fwmark: 4294967295\nfamily: IPv6\n").service.key,
        ServiceKey::Fwmark { family: Family::V6, mark: u32::MAX }
    );
}

// ---- one test per rule ----

#[test]
fn unparsable_service_address() {
    assert_error("address: 192.0.2.300\nport: 80\n", "spec.address", "`192.0.2.300` is not an IPv4 or IPv6 address");
}

#[test]
fn unparsable_backend_address() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1}, {address: web-1}]\n",
        "spec.backends[1].address",
        "`web-1` is not an IPv4 or IPv6 address",
    );
}

#[test]
fn backend_address_must_be_unicast() {
    for bad in ["0.0.0.0", "224.0.0.1", "255.255.255.255", "::", "ff02::1"] {
        let yaml =
            format!("address: 192.0.2.1\nport: 80\nbackends: [{{address: '{bad}', forwarding: {{method: Tunnel}}}}]\n");
        assert_error(&yaml, "spec.backends[0].address", "not a unicast address");
    }
}

#[test]
fn backend_port_out_of_range_names_object_and_field() {
    let errors = rejected(
        "address: 192.0.2.10\nport: 80\nbackends: [{address: 10.0.0.1}, {address: 10.0.0.2}, {address: 10.0.0.3, port: 70000}]\n",
    )
    .errors;
    let rendered: Vec<_> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(rendered, vec!["default/web: spec.backends[2].port: 70000 is out of range 0-65535"]);
}

#[test]
fn service_port_out_of_range() {
    assert_error("address: 192.0.2.1\nport: -1\n", "spec.port", "-1 is out of range 0-65535");
    assert_error("address: 192.0.2.1\nport: 65536\n", "spec.port", "65536 is out of range 0-65535");
}

#[test]
fn service_port_is_required_with_an_address() {
    assert_error("address: 192.0.2.1\n", "spec.port", "required");
}

#[test]
fn port_zero_needs_persistence() {
    assert_error("address: 192.0.2.1\nport: 0\n", "spec.port", "needs spec.persistence");
    ok("address: 192.0.2.1\nport: 0\npersistence: {}\n");
}

#[test]
fn address_required_without_fwmark() {
    assert_error("port: 80\n", "spec.address", "required unless spec.fwmark is set");
}

#[test]
fn address_and_fwmark_exclude_each_other() {
    assert_error("address: 192.0.2.1\nfwmark: 1\nfamily: IPv4\n", "spec.address", "not allowed with spec.fwmark");
}

#[test]
fn fwmark_needs_family_and_has_no_port_or_protocol() {
    assert_error("fwmark: 7\n", "spec.family", "required with spec.fwmark");
    assert_error("fwmark: 7\nfamily: IPv4\nport: 80\n", "spec.port", "not allowed with spec.fwmark");
    assert_error("fwmark: 7\nfamily: IPv4\nprotocol: UDP\n", "spec.protocol", "not allowed with spec.fwmark");
}

#[test]
fn fwmark_out_of_range() {
    assert_error("fwmark: 0\nfamily: IPv4\n", "spec.fwmark", "0 is out of range 1-4294967295");
    assert_error("fwmark: 4294967296\nfamily: IPv4\n", "spec.fwmark", "out of range");
}

#[test]
fn family_contradicting_address() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nfamily: IPv6\n",
        "spec.family",
        "IPv6 contradicts spec.address 192.0.2.1",
    );
    ok("address: 192.0.2.1\nport: 80\nfamily: IPv4\n");
}

#[test]
fn backend_of_other_family_needs_tunnel() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 'fd00::1'}]\n",
        "spec.backends[0].address",
        "fd00::1 is IPv6 but the service is IPv4: another family needs forwarding method Tunnel",
    );
    assert_error(
        "address: 2001:db8::1\nport: 80\nforwarding: {method: DirectRouting}\nbackends: [{address: 10.0.0.1}]\n",
        "spec.backends[0].address",
        "is IPv4 but the service is IPv6",
    );
}

#[test]
fn fwmark_family_applies_to_backends() {
    assert_error(
        "fwmark: 1\nfamily: IPv6\nbackends: [{address: 10.0.0.1}]\n",
        "spec.backends[0].address",
        "10.0.0.1 is IPv4 but the service is IPv6",
    );
    ok("fwmark: 1\nfamily: IPv6\nbackends: [{address: 10.0.0.1, forwarding: {method: Tunnel}}]\n");
}

#[test]
fn duplicate_backends_after_defaults() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1}, {address: 10.0.0.2}, {address: 10.0.0.1, port: 80}]\n",
        "spec.backends[2]",
        "duplicate of spec.backends[0] (10.0.0.1:80)",
    );
    // The same address written two ways is the same backend.
    assert_error(
        "address: 2001:db8::1\nport: 80\nbackends: [{address: 'fd00::1'}, {address: 'fd00:0:0::1'}]\n",
        "spec.backends[1]",
        "duplicate of spec.backends[0]",
    );
    ok("address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1}, {address: 10.0.0.1, port: 81}]\n");
}

#[test]
fn lower_threshold_above_upper() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, upperThreshold: 10, lowerThreshold: 11}]\n",
        "spec.backends[0].lowerThreshold",
        "11 is above upperThreshold 10",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, lowerThreshold: 1}]\n",
        "spec.backends[0].lowerThreshold",
        "1 is above upperThreshold 0",
    );
}

#[test]
fn thresholds_out_of_range() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, upperThreshold: 4294967296}]\n",
        "spec.backends[0].upperThreshold",
        "out of range 0-4294967295",
    );
}

#[test]
fn weight_out_of_range() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, weight: 2147483648}]\n",
        "spec.backends[0].weight",
        "2147483648 is out of range 0-2147483647",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, weight: -1}]\n",
        "spec.backends[0].weight",
        "out of range",
    );
}

#[test]
fn unknown_scheduler() {
    assert_error("address: 192.0.2.1\nport: 80\nscheduler: random\n", "spec.scheduler", "unknown scheduler `random`");
}

#[test]
fn scheduler_flags_must_belong_to_the_scheduler() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nschedulerFlags: [sh-port]\n",
        "spec.schedulerFlags[0]",
        "`sh-port` is a flag of scheduler sh, not of wlc",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nscheduler: sh\nschedulerFlags: [sh-port, mh-fallback]\n",
        "spec.schedulerFlags[1]",
        "flag of scheduler mh, not of sh",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nscheduler: mh\nschedulerFlags: [mh-port, sticky]\n",
        "spec.schedulerFlags[1]",
        "unknown scheduler flag `sticky`",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nscheduler: mh\nschedulerFlags: [mh-port, mh-port]\n",
        "spec.schedulerFlags[1]",
        "given twice",
    );
}

#[test]
fn one_packet_only_for_udp_and_fwmark() {
    assert_error("address: 192.0.2.1\nport: 80\nonePacket: true\n", "spec.onePacket", "not TCP");
    assert_error("address: 192.0.2.1\nport: 80\nprotocol: SCTP\nonePacket: true\n", "spec.onePacket", "not SCTP");
    ok("address: 192.0.2.1\nport: 53\nprotocol: UDP\nonePacket: true\n");
    let d = ok("fwmark: 3\nfamily: IPv4\nonePacket: true\n");
    assert!(d.service.config.flags.has(ServiceFlags::ONEPACKET));
}

#[test]
fn prefix_length_range_depends_on_family() {
    assert_error(
        "address: 192.0.2.1\nport: 80\npersistence: {prefixLength: 33}\n",
        "spec.persistence.prefixLength",
        "33 is out of range 0-32",
    );
    assert_error(
        "address: 2001:db8::1\nport: 80\npersistence: {prefixLength: 0}\n",
        "spec.persistence.prefixLength",
        "0 is out of range 1-128",
    );
    assert_error(
        "address: 2001:db8::1\nport: 80\npersistence: {prefixLength: 129}\n",
        "spec.persistence.prefixLength",
        "129 is out of range 1-128",
    );
    let d = ok("address: 2001:db8::1\nport: 80\npersistence: {prefixLength: 64}\n");
    assert_eq!(d.service.config.netmask, Netmask::V6Prefix(64));
}

#[test]
fn persistence_timeout_range() {
    assert_error(
        "address: 192.0.2.1\nport: 80\npersistence: {timeoutSeconds: 0}\n",
        "spec.persistence.timeoutSeconds",
        "0 is out of range 1-2678400",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\npersistence: {timeoutSeconds: 2678401}\n",
        "spec.persistence.timeoutSeconds",
        "out of range 1-2678400",
    );
}

#[test]
fn unknown_persistence_engine() {
    assert_error(
        "address: 192.0.2.1\nport: 80\npersistence: {engine: http}\n",
        "spec.persistence.engine",
        "unknown persistence engine `http` (known: sip)",
    );
}

#[test]
fn gue_needs_a_port() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: Tunnel, tunnel: {type: GUE}}\n",
        "spec.forwarding.tunnel.port",
        "required with type GUE",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, forwarding: {method: Tunnel, tunnel: {type: GUE, port: 0}}}]\n",
        "spec.backends[0].forwarding.tunnel.port",
        "0 is out of range 1-65535",
    );
}

#[test]
fn tunnel_port_only_for_gue() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: Tunnel, tunnel: {type: GRE, port: 6080}}\n",
        "spec.forwarding.tunnel.port",
        "only used by type GUE, not GRE",
    );
}

#[test]
fn tunnel_checksum_must_fit_the_encapsulation() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: Tunnel, tunnel: {checksum: Checksum}}\n",
        "spec.forwarding.tunnel.checksum",
        "IPIP has no checksum option",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: Tunnel, tunnel: {type: GRE, checksum: RemoteChecksum}}\n",
        "spec.forwarding.tunnel.checksum",
        "GUE option",
    );
}

#[test]
fn tunnel_options_need_method_tunnel() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: DirectRouting, tunnel: {type: IPIP}}\n",
        "spec.forwarding.tunnel",
        "only allowed with method Tunnel, not DirectRouting",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, forwarding: {tunnel: {type: GRE}}}]\n",
        "spec.backends[0].forwarding.tunnel",
        "not Masquerade",
    );
}

#[test]
fn direct_routing_and_tunnel_cannot_change_the_port() {
    assert_error(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: DirectRouting}\nbackends: [{address: 10.0.0.1, port: 8080}]\n",
        "spec.backends[0].port",
        "8080 differs from spec.port 80, but DirectRouting cannot change the port",
    );
    assert_error(
        "address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, port: 8080, forwarding: {method: Tunnel}}]\n",
        "spec.backends[0].port",
        "Tunnel cannot change the port",
    );
    // Matching ports are fine, and fwmark services have no service port to match.
    ok(
        "address: 192.0.2.1\nport: 80\nforwarding: {method: DirectRouting}\nbackends: [{address: 10.0.0.1, port: 80}]\n",
    );
    ok("fwmark: 1\nfamily: IPv4\nforwarding: {method: DirectRouting}\nbackends: [{address: 10.0.0.1, port: 80}]\n");
}

#[test]
fn negative_drain_timeout() {
    assert_error(
        "address: 192.0.2.1\nport: 80\ndrainTimeoutSeconds: -5\n",
        "spec.drainTimeoutSeconds",
        "-5 is out of range",
    );
}

// ---- all errors at once ----

#[test]
fn every_error_of_an_object_is_reported() {
    let r = rejected(
        "
address: 192.0.2.1
port: 70000
scheduler: fastest
persistence: {timeoutSeconds: 0, prefixLength: 40, engine: x}
backends:
  - address: nonsense
  - address: 10.0.0.2
    weight: 3000000000
    upperThreshold: 1
    lowerThreshold: 2
  - address: 10.0.0.3
    forwarding: {method: Masquerade, tunnel: {type: GUE}}
",
    );
    let fields: Vec<_> = r.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "spec.port",
            "spec.scheduler",
            "spec.persistence.timeoutSeconds",
            "spec.persistence.prefixLength",
            "spec.persistence.engine",
            "spec.backends[0].address",
            "spec.backends[1].weight",
            "spec.backends[1].lowerThreshold",
            "spec.backends[2].forwarding.tunnel",
        ]
    );
    // The port is invalid, so the service key cannot be told.
    assert_eq!(r.key, None);
}

#[test]
fn refused_object_still_names_its_key_when_readable() {
    let r = rejected("address: 192.0.2.1\nport: 80\nscheduler: nope\n");
    assert_eq!(r.key, Some(ServiceKey::tcp(v4("192.0.2.1"), 80)));
}

// ---- unknown fields ----

#[test]
fn unknown_fields_are_rejected_with_their_name() {
    for (yaml, name) in [
        ("address: 192.0.2.1\nport: 80\nschedular: rr\n", "schedular"),
        ("address: 192.0.2.1\nport: 80\npersistence: {timeout: 3}\n", "timeout"),
        ("address: 192.0.2.1\nport: 80\nforwarding: {mode: Tunnel}\n", "mode"),
        ("address: 192.0.2.1\nport: 80\nforwarding: {method: Tunnel, tunnel: {kind: GUE}}\n", "kind"),
        ("address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, wieght: 3}]\n", "wieght"),
    ] {
        let err = serde_yaml::from_str::<VirtualServiceSpec>(yaml).unwrap_err().to_string();
        assert!(err.contains(&format!("unknown field `{name}`")), "{err}");
    }
}

// ---- address safety ----

/// Every address that cannot be a virtual address, with the reason its error gives.
const DANGEROUS_VIPS: &[(&str, &str)] = &[
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("255.255.255.255", "broadcast"),
    ("224.0.0.251", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff05::1:3", "multicast"),
    ("127.0.0.1", "loopback"),
    ("127.1.2.3", "loopback"),
    ("::1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::10", "link-local"),
    ("febf::1", "link-local"),
];

#[test]
fn a_virtual_address_is_a_unicast_host_address() {
    for (vip, why) in DANGEROUS_VIPS {
        let errors = rejected(&format!("address: '{vip}'\nport: 80\n")).errors;
        let rendered: Vec<_> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            rendered,
            vec![format!(
                "default/web: spec.address: {vip} is {why}: a virtual address must be a unicast host address"
            )],
        );
    }
    // The neighbours of each range are ordinary addresses.
    for vip in [
        "0.0.0.1",
        "126.255.255.255",
        "128.0.0.1",
        "169.253.255.255",
        "169.255.0.1",
        "223.255.255.255",
        "255.255.255.254",
        "::2",
        "fec0::1",
        "fe7f::1",
        "fd00::1",
        "2001:db8::1",
    ] {
        ok(&format!("address: '{vip}'\nport: 80\n"));
    }
}

#[test]
fn an_ipv4_mapped_address_is_written_in_its_ipv4_form() {
    assert_error(
        "address: '::ffff:192.0.2.1'\nport: 80\n",
        "spec.address",
        "::ffff:192.0.2.1 is IPv4-mapped IPv6: write the IPv4 form 192.0.2.1",
    );
    // Whatever the IPv4 address is: its IPv4 form is then judged on its own.
    assert_error(
        "address: '::ffff:127.0.0.1'\nport: 80\n",
        "spec.address",
        "is IPv4-mapped IPv6: write the IPv4 form 127.0.0.1",
    );
    assert_error(
        "address: 2001:db8::1\nport: 80\nbackends: [{address: '::ffff:10.0.0.1'}]\n",
        "spec.backends[0].address",
        "::ffff:10.0.0.1 is IPv4-mapped IPv6: write the IPv4 form 10.0.0.1",
    );
    assert_error(
        "address: 2001:db8::1\nport: 80\nsorryServer: {address: '::ffff:10.0.0.1'}\n",
        "spec.sorryServer.address",
        "write the IPv4 form 10.0.0.1",
    );
}

#[test]
fn a_refused_virtual_address_still_names_its_service() {
    // Held as it is (not deleted) while the object is being fixed, like any other refused object with a key.
    let refused = rejected("address: 127.0.0.1\nport: 80\n");
    assert_eq!(refused.key, Some(ServiceKey::tcp(v4("127.0.0.1"), 80)));
}

/// A service on 192.0.2.1:80 (with `forwarding` as its default, if given) and one backend.
fn with_backend(forwarding: Option<&str>, backend: &str) -> String {
    let forwarding = forwarding.map(|m| format!("forwarding: {{method: {m}}}\n")).unwrap_or_default();
    format!("address: 192.0.2.1\nport: 80\n{forwarding}backends: [{backend}]\n")
}

#[test]
fn a_loopback_backend_needs_forwarding_local() {
    ok(&with_backend(Some("Local"), "{address: 127.0.0.1}"));
    ok(&with_backend(None, "{address: 127.0.0.1, forwarding: {method: Local}}"));
    ok(&with_backend(Some("Masquerade"), "{address: 127.0.0.2, forwarding: {method: Local}}"));
    ok("address: 2001:db8::1\nport: 80\nforwarding: {method: Local}\nbackends: [{address: '::1'}]\n");
    let refusals = [
        (None, "{address: 127.0.0.1}", "Masquerade"),
        (Some("Masquerade"), "{address: 127.0.0.1}", "Masquerade"),
        (Some("DirectRouting"), "{address: 127.0.0.1}", "DirectRouting"),
        (Some("Tunnel"), "{address: 127.0.0.1}", "Tunnel"),
        (Some("Local"), "{address: 127.0.0.1, forwarding: {method: Masquerade}}", "Masquerade"),
        (Some("Local"), "{address: 127.0.0.1, forwarding: {method: DirectRouting}}", "DirectRouting"),
        (None, "{address: 127.0.0.1, forwarding: {method: Tunnel}}", "Tunnel"),
    ];
    for (service, backend, method) in refusals {
        assert_error(
            &with_backend(service, backend),
            "spec.backends[0].address",
            &format!(
                "127.0.0.1 is loopback: only forwarding method Local delivers to the node's own sockets (the \
                 effective method is {method})"
            ),
        );
    }
    assert_error(
        "address: 2001:db8::1\nport: 80\nbackends: [{address: '::1'}]\n",
        "spec.backends[0].address",
        "::1 is loopback: only forwarding method Local",
    );
    // The sorry server follows the same rule, with its own forwarding or the service's.
    ok("address: 192.0.2.1\nport: 80\nsorryServer: {address: 127.0.0.1, forwarding: {method: Local}}\n");
    assert_error(
        "address: 192.0.2.1\nport: 80\nsorryServer: {address: 127.0.0.1}\n",
        "spec.sorryServer.address",
        "127.0.0.1 is loopback: only forwarding method Local",
    );
}

#[test]
fn a_link_local_ipv6_backend_is_refused_and_an_ipv4_one_allowed() {
    for method in ["Masquerade", "DirectRouting", "Tunnel", "Local"] {
        assert_error(
            &format!(
                "address: 2001:db8::1\nport: 80\nforwarding: {{method: {method}}}\nbackends: [{{address: 'fe80::1'}}]\n"
            ),
            "spec.backends[0].address",
            "fe80::1 is link-local: an IPVS destination has no interface (zone) to reach a link-local address through",
        );
    }
    assert_error(
        "address: 2001:db8::1\nport: 80\nsorryServer: {address: 'fe80::99'}\n",
        "spec.sorryServer.address",
        "fe80::99 is link-local",
    );
    // 169.254.0.0/16 is routed on-link like any subnet.
    let d = ok(&with_backend(None, "{address: 169.254.10.20}"));
    assert!(d.dests.keys().any(|k| k.addr == v4("169.254.10.20")));
}

#[test]
fn unspecified_broadcast_and_multicast_backends_say_what_they_are() {
    for (addr, what) in [
        ("0.0.0.0", "unspecified"),
        ("255.255.255.255", "broadcast"),
        ("224.0.0.251", "multicast"),
        ("::", "unspecified"),
        ("ff02::1", "multicast"),
    ] {
        let vip = if addr.contains(':') { "2001:db8::1" } else { "192.0.2.1" };
        for method in ["Masquerade", "Local", "Tunnel"] {
            assert_error(
                &format!(
                    "address: {vip}\nport: 80\nforwarding: {{method: {method}}}\nbackends: [{{address: '{addr}'}}]\n"
                ),
                "spec.backends[0].address",
                &format!("{addr} is {what}: not a unicast address; the kernel refuses it"),
            );
        }
    }
}

#[test]
fn over_long_values_are_refused_by_their_length() {
    let long = format!("2001:db8:{}::1", "0".repeat(40));
    let message = format!("{} characters long; at most 45", long.len());
    assert_error(&format!("address: '{long}'\nport: 80\n"), "spec.address", &message);
    assert_error(&with_backend(None, &format!("{{address: '{long}'}}")), "spec.backends[0].address", &message);
    let backends: Vec<String> =
        (0..=MAX_BACKENDS).map(|i| format!("{{address: 10.0.{}.{}}}", i / 256, i % 256)).collect();
    assert_error(
        &format!("address: 192.0.2.1\nport: 80\nbackends: [{}]\n", backends.join(", ")),
        "spec.backends",
        "1001 backends; at most 1000",
    );
    let from: Vec<String> = (0..=MAX_BACKENDS_FROM).map(|i| format!("{{service: s{i}}}")).collect();
    assert_error(
        &format!("address: 192.0.2.1\nport: 80\nbackendsFrom: [{}]\n", from.join(", ")),
        "spec.backendsFrom",
        "65 entries; at most 64",
    );
    assert_error(
        &format!("address: 192.0.2.1\nport: 80\nbackendsFrom: [{{service: web, port: {}}}]\n", "p".repeat(64)),
        "spec.backendsFrom[0].port",
        "64 characters long; at most 63",
    );
}

// ---- Kubernetes-only fields ----

fn declared(yaml: &str) -> Declared {
    validate(&id(), &spec(yaml)).unwrap_or_else(|r| panic!("unexpected errors: {:#?}", r.errors))
}

#[test]
fn backends_from_take_the_service_forwarding_and_their_weight() {
    let d = declared(
        "address: 192.0.2.10\nport: 80\nforwarding: {method: DirectRouting}\n\
         backendsFrom: [{service: web, port: http, weight: 3}, {service: api}]\n",
    );
    assert_eq!(d.backends_from.len(), 2);
    let first = &d.backends_from[0];
    assert_eq!(
        (first.field.as_str(), first.service.as_str(), first.port.as_deref()),
        ("spec.backendsFrom[0]", "web", Some("http"))
    );
    assert_eq!(first.config.weight, 3);
    assert_eq!(first.config.forward, ForwardMethod::DirectRoute);
    assert_eq!(d.backends_from[1].config.weight, DEFAULT_WEIGHT);
    assert_eq!(d.backends_from[1].port, None);
}

#[test]
fn bad_backends_from_name_their_field() {
    assert_error(
        "address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: Web_1}]\n",
        "spec.backendsFrom[0].service",
        "not a Service name",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: web, weight: -1}]\n",
        "spec.backendsFrom[0].weight",
        "",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: web, port: ''}]\n",
        "spec.backendsFrom[0].port",
        "empty",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: web}, {service: web}]\n",
        "spec.backendsFrom[1]",
        "duplicate of spec.backendsFrom[0]",
    );
}

#[test]
fn node_selectors_are_checked_and_matched() {
    use kube::core::SelectorExt;
    let d = declared(
        "address: 192.0.2.10\nport: 80\nnodeSelector:\n  matchLabels: {role: lb}\n  matchExpressions:\n    - {key: zone, operator: In, values: [a, b]}\n",
    );
    let selector = d.node_selector.expect("a selector");
    let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    assert!(selector.matches(&labels(&[("role", "lb"), ("zone", "a")])));
    assert!(!selector.matches(&labels(&[("role", "lb"), ("zone", "c")])));
    assert!(!selector.matches(&labels(&[("zone", "a")])));
    assert_eq!(declared(WEB).node_selector, None);

    let expr = |e: &str| format!("address: 192.0.2.10\nport: 80\nnodeSelector:\n  matchExpressions: [{e}]\n");
    assert_error(
        &expr("{key: zone, operator: In}"),
        "spec.nodeSelector.matchExpressions[0].values",
        "at least one value",
    );
    assert_error(
        &expr("{key: zone, operator: Exists, values: [a]}"),
        "spec.nodeSelector.matchExpressions[0].values",
        "no values",
    );
    assert_error(
        &expr("{key: zone, operator: Gt, values: ['1']}"),
        "spec.nodeSelector.matchExpressions[0].operator",
        "unknown operator",
    );
}

#[test]
fn kubernetes_only_fields_are_refused_in_files() {
    let file = ObjectId::document("web.yaml", 0);
    let rejected =
        validate(&file, &spec("address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: web}]\nnodeSelector: {}\n"))
            .expect_err("files cannot resolve them");
    let fields: Vec<&str> = rejected.errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["spec.backendsFrom", "spec.nodeSelector"]);
    // The key is still known: the service is held, not deleted.
    assert!(rejected.key.is_some());
}

#[test]
fn a_file_checked_for_a_cluster_may_use_them() {
    let file = ObjectId::document("web.yaml", 0);
    let spec = spec("address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: web, port: http}]\nnodeSelector: {}\n");
    let declared = validate_as(&file, &spec, true).unwrap_or_else(|r| panic!("{:#?}", r.errors));
    assert_eq!(declared.backends_from[0].service, "web");
    assert!(validate_as(&file, &spec, false).is_err(), "run and apply cannot resolve them");
}

#[test]
fn port_names_and_selector_keys_are_checked_as_kubernetes_would() {
    assert_error(
        "address: 192.0.2.10\nport: 80\nbackendsFrom: [{service: web, port: HTTP}]\n",
        "spec.backendsFrom[0].port",
        "not a Service port name",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nnodeSelector: {matchLabels: {'role/': edge}}\n",
        "spec.nodeSelector.matchLabels.role/",
        "not a label key",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nnodeSelector: {matchLabels: {role: 'edge node'}}\n",
        "spec.nodeSelector.matchLabels.role",
        "not a label value",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nnodeSelector:\n  matchExpressions: [{key: 'Zone.x/a', operator: Exists}]\n",
        "spec.nodeSelector.matchExpressions[0].key",
        "prefix",
    );
    assert_error(
        "address: 192.0.2.10\nport: 80\nnodeSelector:\n  matchExpressions: [{key: zone, operator: In, values: [a, -b]}]\n",
        "spec.nodeSelector.matchExpressions[0].values[1]",
        "not a label value",
    );
    declared("address: 192.0.2.10\nport: 80\nnodeSelector: {matchLabels: {node-role.kubernetes.io/edge: ''}}\n");
}

#[test]
fn service_names_are_dns_labels() {
    for good in ["web", "web-1", "a", "w0", &"a".repeat(63)] {
        assert!(is_dns_label(good), "{good}");
    }
    for bad in ["", "-web", "web-", "1web", "Web", "web_1", "web.1", &"a".repeat(64)] {
        assert!(!is_dns_label(bad), "{bad}");
    }
}

// ---- health checks and the sorry server ----

mod health_checks {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::health::{self, DnsQueryType, HttpMethod, HttpProbe, HttpsProbe, Probe, Schedule, StatusRange};
    use crate::table::{BackendCheck, HealthPolicy, OnFailure};

    fn policy(yaml: &str) -> HealthPolicy {
        let service = ok(yaml);
        let policy = service.health.expect("a health policy");
        (*policy).clone()
    }

    /// A service on 192.0.2.10:80 with two backends and `extra` (YAML lines) appended.
    fn web(extra: &str) -> String {
        format!("{WEB}{extra}")
    }

    fn check(extra: &str) -> String {
        web(&format!("healthCheck:\n{extra}"))
    }

    #[test]
    fn no_health_check_no_policy() {
        assert_eq!(ok(WEB).health, None);
    }

    #[test]
    fn a_full_http_check_maps_every_field() {
        let p = policy(
            "
address: 192.0.2.10
port: 80
backends:
  - address: 10.0.0.11
    port: 8080
    healthCheck: {port: 9100}
  - address: 10.0.0.12
    healthCheck: {disabled: true}
  - address: 10.0.0.13
    healthCheck: {disabled: false}
healthCheck:
  type: HTTP
  intervalSeconds: 10
  timeoutSeconds: 3
  rise: 1
  fall: 5
  port: 8081
  sourceAddress: 192.0.2.250
  path: /healthz?full=1
  host: web.example:8080
  method: GET
  expectStatus: ['200', '301-302']
  expectBody: ok
  onFailure: Remove
  slowStartSeconds: 30
  initialState: Unhealthy
sorryServer:
  address: 10.0.0.99
  port: 8080
  forwarding: {method: Local}
quorum: 4
hysteresis: 2
",
        );
        let http = HttpProbe::new("/healthz?full=1")
            .with_host("web.example:8080")
            .with_method(HttpMethod::Get)
            .with_status(vec![StatusRange::single(200).unwrap(), StatusRange::new(301, 302).unwrap()])
            .with_body("ok");
        let sorry = DestKey::new(v4("10.0.0.99"), 8080);
        let want = HealthPolicy {
            check: Some(health::Check::new(Probe::Http(http), Duration::from_secs(3))),
            schedule: Schedule { interval: Duration::from_secs(10), rise: 1, fall: 5, initial_healthy: false },
            port: Some(8081),
            source: Some(v4("192.0.2.250")),
            on_failure: OnFailure::Remove,
            slow_start: Some(Duration::from_secs(30)),
            sorry_server: Some(Destination::new(
                sorry,
                DestConfig { forward: ForwardMethod::Local, ..DestConfig::masquerade(1) },
            )),
            quorum: 4,
            hysteresis: 2,
            backends: BTreeMap::from([
                (DestKey::new(v4("10.0.0.11"), 8080), BackendCheck::port(9100)),
                (DestKey::new(v4("10.0.0.12"), 80), BackendCheck::Disabled),
            ]),
        };
        assert_eq!(p, want);
    }

    #[test]
    fn defaults_are_tcp_every_5s_timeout_2_rise_2_fall_3_inhibit_healthy() {
        let p = policy(&check("  type: TCP\n"));
        assert_eq!(
            p,
            HealthPolicy {
                check: Some(health::Check::new(Probe::Tcp, Duration::from_secs(2))),
                schedule: Schedule { interval: Duration::from_secs(5), rise: 2, fall: 3, initial_healthy: true },
                port: None,
                source: None,
                on_failure: OnFailure::Inhibit,
                slow_start: None,
                sorry_server: None,
                quorum: 1,
                hysteresis: 0,
                backends: BTreeMap::new(),
            }
        );
        let http = policy(&check("  type: HTTP\n"));
        assert_eq!(http.check.map(|c| c.probe), Some(Probe::Http(HttpProbe::new("/"))));
        let https = policy(&check("  type: HTTPS\n"));
        assert_eq!(https.check.map(|c| c.probe), Some(Probe::Https(HttpsProbe::new(HttpProbe::new("/")))));
    }

    #[test]
    fn each_probe_type_maps_its_fields() {
        let probe = |extra: &str| policy(&check(extra)).check.map(|c| c.probe);
        assert_eq!(
            probe("  type: HTTPS\n  serverName: web.example\n  insecureSkipVerify: true\n  method: HEAD\n"),
            Some(Probe::Https(
                HttpsProbe::new(HttpProbe::new("/").with_method(HttpMethod::Head))
                    .with_server_name("web.example")
                    .insecure()
            ))
        );
        assert_eq!(
            probe("  type: UDP\n  send: 'DEADbeef'\n  expectPrefix: ''\n"),
            Some(Probe::Udp { send: vec![0xde, 0xad, 0xbe, 0xef], expect_prefix: Vec::new(), silence_passes: false })
        );
        assert_eq!(
            probe("  type: UDP\n"),
            Some(Probe::Udp { send: Vec::new(), expect_prefix: Vec::new(), silence_passes: false })
        );
        assert_eq!(
            probe("  type: DNS\n  query: example.org\n"),
            Some(Probe::Dns { query: "example.org".to_owned(), query_type: DnsQueryType::A })
        );
        assert_eq!(
            probe("  type: DNS\n  query: _sip._udp.example.org.\n  queryType: SRV\n"),
            Some(Probe::Dns { query: "_sip._udp.example.org.".to_owned(), query_type: DnsQueryType::Srv })
        );
        assert_eq!(probe("  type: GRPC\n"), Some(Probe::Grpc { service: None }));
        assert_eq!(
            probe("  type: GRPC\n  service: shop.Cart\n"),
            Some(Probe::Grpc { service: Some("shop.Cart".to_owned()) })
        );
    }

    #[test]
    fn the_sorry_server_defaults_to_the_service_port_and_forwarding() {
        let p = policy(
            "address: 192.0.2.10\nport: 80\nforwarding: {method: DirectRouting}\nbackends: [{address: 10.0.0.11}]\n\
             sorryServer: {address: 10.0.0.99}\n",
        );
        assert_eq!(p.check, None, "a sorry server alone probes nothing");
        assert_eq!((p.quorum, p.hysteresis), (1, 0));
        let sorry = p.sorry_server.expect("a sorry server");
        assert_eq!(sorry.key, DestKey::new(v4("10.0.0.99"), 80));
        assert_eq!(sorry.config, DestConfig { forward: ForwardMethod::DirectRoute, ..DestConfig::masquerade(1) });

        // Its own port and forwarding, checked like a backend's.
        let p = policy(&web("sorryServer: {address: 10.0.0.99, port: 8080, forwarding: {method: Masquerade}}\n"));
        let sorry = p.sorry_server.expect("a sorry server");
        assert_eq!((sorry.key, sorry.config), (DestKey::new(v4("10.0.0.99"), 8080), DestConfig::masquerade(1)));
        let p = policy(&web("sorryServer: {address: 'fd00::99', forwarding: {method: Tunnel}}\n"));
        assert_eq!(p.sorry_server.map(|s| s.config.forward), Some(ForwardMethod::Tunnel));
    }

    #[test]
    fn the_sorry_server_is_checked_like_a_backend() {
        assert_error(&web("sorryServer: {address: sorry}\n"), "spec.sorryServer.address", "not an IPv4 or IPv6");
        assert_error(&web("sorryServer: {address: 10.0.0.99, port: 65536}\n"), "spec.sorryServer.port", "out of range");
        assert_error(
            &web("sorryServer: {address: 'fd00::99'}\n"),
            "spec.sorryServer.address",
            "another family needs forwarding method Tunnel",
        );
        assert_error(
            &web("sorryServer: {address: 10.0.0.99, port: 8080, forwarding: {method: DirectRouting}}\n"),
            "spec.sorryServer.port",
            "DirectRouting cannot change the port",
        );
        assert_error(
            &web("sorryServer: {address: 10.0.0.99, forwarding: {method: Tunnel, tunnel: {type: GUE}}}\n"),
            "spec.sorryServer.forwarding.tunnel.port",
            "required with type GUE",
        );
        assert_error(
            &web("sorryServer: {address: 10.0.0.12}\n"),
            "spec.sorryServer",
            "10.0.0.12:80 is spec.backends[1]: the sorry server must not be one of the backends",
        );
    }

    #[test]
    fn quorum_and_hysteresis_need_a_sorry_server_and_their_ranges() {
        assert_error(&web("quorum: 2\n"), "spec.quorum", "needs spec.sorryServer");
        assert_error(&web("hysteresis: 1\n"), "spec.hysteresis", "needs spec.sorryServer");
        let sorry = "sorryServer: {address: 10.0.0.99}\n";
        assert_error(&web(&format!("{sorry}quorum: 0\n")), "spec.quorum", "0 is out of range 1-");
        assert_error(&web(&format!("{sorry}hysteresis: -1\n")), "spec.hysteresis", "-1 is out of range 0-");
        let p = policy(&web(&format!("{sorry}quorum: 3\nhysteresis: 1\n")));
        assert_eq!((p.quorum, p.hysteresis), (3, 1));
    }

    #[test]
    fn timing_and_counts_are_ranged() {
        assert_error(
            &check("  type: TCP\n  intervalSeconds: 0\n"),
            "spec.healthCheck.intervalSeconds",
            "out of range 1-86400",
        );
        assert_error(
            &check("  type: TCP\n  timeoutSeconds: 0\n"),
            "spec.healthCheck.timeoutSeconds",
            "out of range 1-86400",
        );
        assert_error(&check("  type: TCP\n  rise: 0\n"), "spec.healthCheck.rise", "0 is out of range 1-4294967295");
        assert_error(&check("  type: TCP\n  fall: -1\n"), "spec.healthCheck.fall", "out of range");
        assert_error(&check("  type: TCP\n  port: 0\n"), "spec.healthCheck.port", "0 is out of range 1-65535");
        assert_error(
            &check("  type: TCP\n  slowStartSeconds: 0\n"),
            "spec.healthCheck.slowStartSeconds",
            "out of range 1-",
        );
    }

    #[test]
    fn the_timeout_is_below_the_interval_defaults_included() {
        assert_error(
            &check("  type: TCP\n  intervalSeconds: 3\n  timeoutSeconds: 3\n"),
            "spec.healthCheck.timeoutSeconds",
            "3 is not below intervalSeconds 3",
        );
        assert_error(
            &check("  type: TCP\n  timeoutSeconds: 5\n"),
            "spec.healthCheck.timeoutSeconds",
            "5 is not below intervalSeconds 5 (the default)",
        );
        let p = policy(&check("  type: TCP\n  intervalSeconds: 2\n  timeoutSeconds: 1\n"));
        assert_eq!(p.check.map(|c| c.timeout), Some(Duration::from_secs(1)));
        // Without a timeout: 2 s, or half the interval when that is shorter.
        let timeout = |yaml: &str| policy(&check(yaml)).check.map(|c| c.timeout);
        assert_eq!(timeout("  type: TCP\n"), Some(Duration::from_secs(2)));
        assert_eq!(timeout("  type: TCP\n  intervalSeconds: 3\n"), Some(Duration::from_millis(1500)));
        assert_eq!(timeout("  type: TCP\n  intervalSeconds: 1\n"), Some(Duration::from_millis(500)));
        assert_eq!(policy(&check("  type: TCP\n  intervalSeconds: 1\n")).schedule.interval, Duration::from_secs(1));
    }

    #[test]
    fn a_field_of_another_type_names_the_field_and_the_type() {
        for (extra, field, message) in [
            ("  type: TCP\n  path: /\n", "path", "only for types HTTP and HTTPS, not TCP"),
            ("  type: UDP\n  host: a\n", "host", "only for types HTTP and HTTPS, not UDP"),
            ("  type: DNS\n  query: a\n  method: GET\n", "method", "not DNS"),
            ("  type: GRPC\n  expectStatus: ['200']\n", "expectStatus", "not GRPC"),
            ("  type: TCP\n  expectBody: ok\n", "expectBody", "not TCP"),
            ("  type: HTTP\n  serverName: a\n", "serverName", "only for type HTTPS, not HTTP"),
            ("  type: HTTP\n  insecureSkipVerify: false\n", "insecureSkipVerify", "only for type HTTPS, not HTTP"),
            ("  type: TCP\n  send: '00'\n", "send", "only for type UDP, not TCP"),
            ("  type: DNS\n  query: a\n  expectPrefix: '00'\n", "expectPrefix", "only for type UDP, not DNS"),
            ("  type: HTTP\n  query: a\n", "query", "only for type DNS, not HTTP"),
            ("  type: TCP\n  queryType: A\n", "queryType", "only for type DNS, not TCP"),
            ("  type: HTTPS\n  service: a\n", "service", "only for type GRPC, not HTTPS"),
        ] {
            assert_error(&check(extra), &format!("spec.healthCheck.{field}"), message);
        }
    }

    #[test]
    fn http_fields_are_checked() {
        let http = |extra: &str| check(&format!("  type: HTTP\n{extra}"));
        assert_error(&http("  path: healthz\n"), "spec.healthCheck.path", "does not start with \"/\"");
        assert_error(&http("  path: /a b\n"), "spec.healthCheck.path", "not a request target");
        assert_error(&http("  host: 'a b'\n"), "spec.healthCheck.host", "not a host or host:port");
        assert_error(&http("  expectStatus: []\n"), "spec.healthCheck.expectStatus", "empty");
        for bad in ["2xx", "99", "600", "300-200", "200-600", "20-299", "200-", "-200", "0200"] {
            assert_error(
                &http(&format!("  expectStatus: ['200', '{bad}']\n")),
                "spec.healthCheck.expectStatus[1]",
                &format!("`{bad}` is not a status code or range"),
            );
        }
        assert_error(&http("  expectBody: ''\n"), "spec.healthCheck.expectBody", "empty");
        assert_error(&http("  method: HEAD\n  expectBody: ok\n"), "spec.healthCheck.expectBody", "use method GET");
        let https = |extra: &str| check(&format!("  type: HTTPS\n{extra}"));
        assert_error(&https("  serverName: 'bad name'\n"), "spec.healthCheck.serverName", "not a DNS name");
        assert_error(&https("  host: 'web..example:8443'\n"), "spec.healthCheck.host", "TLS server name");
        // An IPv6 literal host is an address, fine as the server name.
        policy(&https("  host: '[2001:db8::1]:8443'\n"));
    }

    #[test]
    fn udp_dns_and_grpc_fields_are_checked() {
        for bad in ["0", "abc", "zz", "+f", "0x00"] {
            assert_error(&check(&format!("  type: UDP\n  send: '{bad}'\n")), "spec.healthCheck.send", "not hex bytes");
        }
        assert_error(&check("  type: UDP\n  expectPrefix: 'g0'\n"), "spec.healthCheck.expectPrefix", "not hex bytes");
        assert_error(&check("  type: DNS\n"), "spec.healthCheck.query", "required with type DNS");
        assert_error(&check("  type: DNS\n  query: ''\n"), "spec.healthCheck.query", "empty");
        assert_error(
            &check(&format!("  type: DNS\n  query: {}.example\n", "a".repeat(64))),
            "spec.healthCheck.query",
            "not a DNS name",
        );
        assert_error(&check("  type: GRPC\n  service: ''\n"), "spec.healthCheck.service", "empty");
    }

    #[test]
    fn over_long_check_fields_are_refused_by_their_length() {
        let cases = [
            ("HTTP", "path", format!("/{}", "a".repeat(2048)), 2048),
            ("HTTP", "host", format!("{}.example", "a".repeat(252)), 259),
            ("HTTP", "expectBody", "x".repeat(1025), 1024),
            ("HTTPS", "serverName", format!("{}.example", "a".repeat(246)), 253),
            ("UDP", "send", "00".repeat(1025), 2048),
            ("UDP", "expectPrefix", "ff".repeat(1025), 2048),
            ("DNS", "query", format!("{}.example", "a".repeat(247)), 254),
            ("GRPC", "service", "s".repeat(513), 512),
        ];
        for (kind, field, value, max) in cases {
            assert_error(
                &check(&format!("  type: {kind}\n  {field}: '{value}'\n")),
                &format!("spec.healthCheck.{field}"),
                &format!("{} characters long; at most {max}", value.chars().count()),
            );
        }
        // At the bounds, accepted.
        policy(&check(&format!("  type: HTTP\n  path: '/{}'\n", "a".repeat(2047))));
        policy(&check(&format!("  type: UDP\n  send: '{}'\n", "00".repeat(1024))));
        let statuses = vec!["200"; 33].join(", ");
        assert_error(
            &check(&format!("  type: HTTP\n  expectStatus: [{statuses}]\n")),
            "spec.healthCheck.expectStatus",
            "33 entries; at most 32",
        );
    }

    #[test]
    fn the_source_address_is_a_unicast_address_of_the_backends_family() {
        assert_error(&check("  type: TCP\n  sourceAddress: node-1\n"), "spec.healthCheck.sourceAddress", "not an IPv4");
        assert_error(
            &check("  type: TCP\n  sourceAddress: 224.0.0.1\n"),
            "spec.healthCheck.sourceAddress",
            "not a unicast address",
        );
        assert_error(
            &check("  type: TCP\n  sourceAddress: 'fd00::1'\n"),
            "spec.healthCheck.sourceAddress",
            "fd00::1 is IPv6 but spec.backends[0] (10.0.0.11) is IPv4",
        );
    }

    #[test]
    fn backend_overrides_are_checked() {
        let with = |hc: &str| {
            format!(
                "address: 192.0.2.10\nport: 80\nhealthCheck: {{type: TCP}}\n\
                 backends: [{{address: 10.0.0.11}}, {{address: 10.0.0.12, healthCheck: {hc}}}]\n"
            )
        };
        assert_error(&with("{port: 0}"), "spec.backends[1].healthCheck.port", "0 is out of range 1-65535");
        assert_error(&with("{port: 9000, disabled: true}"), "spec.backends[1].healthCheck", "disabled excludes port");
        assert_error(&with("{address: 10.1.0.1, disabled: true}"), "spec.backends[1].healthCheck", "disabled excludes");
        assert_error(&with("{address: web}"), "spec.backends[1].healthCheck.address", "not an IPv4 or IPv6 address");
        assert_error(&with("{address: 224.0.0.1}"), "spec.backends[1].healthCheck.address", "cannot be probed");
        assert_error(&with("{}"), "spec.backends[1].healthCheck", "empty");
        assert_error(
            "address: 192.0.2.10\nport: 80\nbackends: [{address: 10.0.0.11, healthCheck: {disabled: true}}]\n",
            "spec.backends[0].healthCheck",
            "needs spec.healthCheck",
        );
        let p = policy(&with("{port: 9000}"));
        assert_eq!(p.backends, BTreeMap::from([(DestKey::new(v4("10.0.0.12"), 80), BackendCheck::port(9000))]));
        assert_eq!(p.target(&DestKey::new(v4("10.0.0.12"), 80)).map(|t| t.target.port()), Some(9000));
        assert_eq!(p.target(&DestKey::new(v4("10.0.0.11"), 80)).map(|t| t.target.port()), Some(80));

        // keepalived's connect_ip: another address, the service's port unless a port is given too
        let p = policy(&with("{address: 10.1.0.12}"));
        assert_eq!(
            p.target(&DestKey::new(v4("10.0.0.12"), 80)).map(|t| t.target),
            Some("10.1.0.12:80".parse().unwrap())
        );
        let p = policy(&with("{address: 10.1.0.12, port: 9000}"));
        assert_eq!(
            p.target(&DestKey::new(v4("10.0.0.12"), 80)).map(|t| t.target),
            Some("10.1.0.12:9000".parse().unwrap())
        );
    }

    #[test]
    fn a_udp_check_may_pass_on_silence() {
        let udp = |hc: &str| {
            format!(
                "address: 192.0.2.10\nport: 514\nprotocol: UDP\nhealthCheck: {hc}\nbackends: [{{address: 10.0.0.11}}]\n"
            )
        };
        let p = policy(&udp("{type: UDP, requireReply: false, send: '00'}"));
        assert_eq!(
            p.check.map(|c| c.probe),
            Some(Probe::Udp { send: vec![0], expect_prefix: Vec::new(), silence_passes: true })
        );
        assert_error(
            &udp("{type: UDP, requireReply: false, expectPrefix: '00'}"),
            "spec.healthCheck.expectPrefix",
            "not allowed with requireReply false",
        );
        assert_error(&udp("{type: TCP, requireReply: false}"), "spec.healthCheck.requireReply", "only for type UDP");
    }

    #[test]
    fn a_backend_on_port_0_needs_a_port_to_probe() {
        let fwmark = "fwmark: 7\nfamily: IPv4\nbackends: [{address: 10.0.0.1}, {address: 10.0.0.2, port: 8080}]\n";
        assert_error(
            &format!("{fwmark}healthCheck: {{type: TCP}}\n"),
            "spec.backends[0]",
            "port 0 leaves the health check nothing to probe",
        );
        let p = policy(&format!("{fwmark}healthCheck: {{type: TCP, port: 443}}\n"));
        assert_eq!(p.port, Some(443));
        policy(
            "fwmark: 7\nfamily: IPv4\nhealthCheck: {type: TCP}\n\
             backends: [{address: 10.0.0.1, healthCheck: {port: 443}}, {address: 10.0.0.2, healthCheck: {disabled: true}}]\n",
        );
        assert_error(
            "fwmark: 7\nfamily: IPv4\nhealthCheck: {type: TCP}\nbackends: [{address: 10.0.0.1, healthCheck: {disabled: false}}]\n",
            "spec.backends[0]",
            "nothing to probe",
        );
        // Endpoints keep port 0 with direct routing on a fwmark service: the check needs its own port.
        assert_error(
            "fwmark: 7\nfamily: IPv4\nforwarding: {method: DirectRouting}\nhealthCheck: {type: TCP}\n\
             backendsFrom: [{service: web}]\n",
            "spec.healthCheck.port",
            "the backends of spec.backendsFrom[0] keep the service's port 0 (DirectRouting)",
        );
    }

    #[test]
    fn every_health_problem_is_reported_at_once() {
        let r = rejected(
            "
address: 192.0.2.10
port: 80
backends:
  - address: 10.0.0.11
    healthCheck: {port: 70000}
healthCheck:
  type: TCP
  timeoutSeconds: 9
  rise: 0
  path: /
  sourceAddress: nowhere
sorryServer: {address: 10.0.0.11}
quorum: 0
",
        );
        let fields: Vec<_> = r.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "spec.backends[0].healthCheck.port",
                "spec.healthCheck.timeoutSeconds",
                "spec.healthCheck.rise",
                "spec.healthCheck.sourceAddress",
                "spec.healthCheck.path",
                "spec.sorryServer",
                "spec.quorum",
            ]
        );
        assert_eq!(r.key, Some(ServiceKey::tcp(v4("192.0.2.10"), 80)));
    }

    #[test]
    fn unknown_health_fields_are_rejected_with_their_name() {
        for (yaml, name) in [
            ("address: 192.0.2.1\nport: 80\nhealthCheck: {type: TCP, command: /bin/true}\n", "command"),
            ("address: 192.0.2.1\nport: 80\nsorryServer: {address: 10.0.0.1, weight: 2}\n", "weight"),
            ("address: 192.0.2.1\nport: 80\nbackends: [{address: 10.0.0.1, healthCheck: {path: /}}]\n", "path"),
        ] {
            let err = serde_yaml::from_str::<VirtualServiceSpec>(yaml).unwrap_err().to_string();
            assert!(err.contains(&format!("unknown field `{name}`")), "{err}");
        }
        let err = serde_yaml::from_str::<VirtualServiceSpec>("address: 192.0.2.1\nport: 80\nhealthCheck: {port: 80}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `type`"), "{err}");
        let err =
            serde_yaml::from_str::<VirtualServiceSpec>("address: 192.0.2.1\nport: 80\nhealthCheck: {type: ICMP}\n")
                .unwrap_err()
                .to_string();
        assert!(err.contains("unknown variant `ICMP`"), "{err}");
    }
}
