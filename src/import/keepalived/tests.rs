//! Tests of the keepalived import: every object of every test configuration is validated as `run` would.

use std::path::{Path, PathBuf};

use super::import;
use super::parse;
use crate::api::v1alpha1::{
    AddressFamily, DnsRecordType, FailureAction, ForwardingMethod, HealthCheckType, InitialState, Protocol,
    TunnelChecksum, TunnelType, VirtualService, VirtualServiceSpec,
};
use crate::api::{ObjectId, validate};
use crate::import::{ImportError, Imported, NoteKind};
use crate::model::DaemonState;

mod checks;
mod reader;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived").join(path)
}

/// Imports `text` as a file `keepalived.conf`, and checks that every object validates.
fn import_text(text: &str) -> Imported {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keepalived.conf");
    std::fs::write(&path, text).expect("write");
    let imported = import(&path).unwrap_or_else(|e| panic!("import failed: {e}"));
    assert_valid(&imported);
    imported
}

/// The error of importing `text`, as `file:line: message`, with the temporary directory cut off.
fn import_error(text: &str) -> String {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keepalived.conf");
    std::fs::write(&path, text).expect("write");
    match import(&path) {
        Ok(imported) => panic!("imported: {:?}", imported.objects),
        Err(e) => e.to_string().replace(&format!("{}/", dir.path().display()), ""),
    }
}

fn assert_valid(imported: &Imported) {
    let mut names = std::collections::HashSet::new();
    for (i, object) in imported.objects.iter().enumerate() {
        let name = object.metadata.name.clone().unwrap_or_default();
        assert!(names.insert(name.clone()), "duplicate name {name}");
        if let Err(rejected) = validate(&ObjectId::document("imported.yaml", i), &object.spec) {
            panic!("{name} is invalid: {:?}\n{}", rejected.errors, yaml(object));
        }
        // What is printed reads back the same (the API refuses unknown fields).
        let text = yaml(object);
        let back: VirtualService = serde_yaml::from_str(&text).expect("reads back");
        assert_eq!(back.spec, object.spec);
    }
}

fn yaml(object: &VirtualService) -> String {
    serde_yaml::to_string(object).expect("yaml")
}

fn spec<'a>(imported: &'a Imported, name: &str) -> &'a VirtualServiceSpec {
    let names: Vec<_> = imported.objects.iter().filter_map(|o| o.metadata.name.clone()).collect();
    &imported
        .objects
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no object {name} in {names:?}"))
        .spec
}

/// The note of `kind` whose message contains `fragment`, with its line.
fn note_line(imported: &Imported, kind: NoteKind, fragment: &str) -> usize {
    imported
        .notes
        .iter()
        .find(|n| n.kind == kind && n.message.contains(fragment))
        .unwrap_or_else(|| panic!("no {kind:?} note with `{fragment}` in:\n{}", notes(imported)))
        .place
        .as_ref()
        .map(|p| p.line)
        .unwrap_or(0)
}

fn notes(imported: &Imported) -> String {
    imported.notes.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("\n")
}

#[test]
fn defaults_of_keepalived_are_written_out() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   real_server 10.0.0.1 80 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let spec = spec(&imported, "udp-192-0-2-10-80");
    assert_eq!(spec.protocol, Some(Protocol::Udp), "no protocol is UDP in keepalived 2.2.7");
    assert_eq!(spec.scheduler.as_deref(), Some("wlc"));
    assert_eq!(spec.forwarding.as_ref().map(|f| f.method), Some(ForwardingMethod::Masquerade));
    assert_eq!(spec.persistence, None);
    let check = spec.health_check.as_ref().expect("check");
    assert_eq!(check.type_, HealthCheckType::Tcp);
    assert_eq!(check.interval_seconds, Some(60));
    assert_eq!(check.timeout_seconds, Some(5));
    assert_eq!(check.rise, Some(1));
    assert_eq!(check.fall, Some(2), "retry 1: the first failure and one more");
    assert_eq!(check.on_failure, Some(FailureAction::Remove));
    assert_eq!(check.initial_state, None);
    assert_eq!(check.port, None);
    assert_eq!(spec.backends.len(), 1);
    assert_eq!(spec.backends[0].port, None);
    assert_eq!(spec.backends[0].health_check, None);
    note_line(&imported, NoteKind::Adjusted, "no protocol: UDP");
    // The default delay_before_retry (1 s) differs from delay_loop: reported.
    note_line(&imported, NoteKind::Adjusted, "delay_before_retry 1 s");
    assert!(!imported.is_partial(), "{}", notes(&imported));
}

#[test]
fn virtual_server_keywords() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   protocol TCP\n\
         \x20   lvs_sched sh\n\
         \x20   sh-port\n\
         \x20   sh-fallback\n\
         \x20   lvs_method NAT\n\
         \x20   persistence_timeout\n\
         \x20   persistence_granularity 255.255.255.0\n\
         \x20   persistence_engine sip\n\
         \x20   delay_loop 10\n\
         \x20   connect_timeout 3\n\
         \x20   retry 2\n\
         \x20   delay_before_retry 4\n\
         \x20   inhibit_on_failure\n\
         \x20   alpha\n\
         \x20   weight 3\n\
         \x20   sorry_server 10.0.9.9 8080\n\
         \x20   quorum 4\n\
         \x20   hysteresis 1\n\
         \x20   real_server 10.0.0.1 8080 {\n\
         \x20       uthreshold 100\n\
         \x20       lthreshold 50\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.2 8080 {\n\
         \x20       weight 5\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let spec = spec(&imported, "tcp-192-0-2-10-80");
    assert_eq!(spec.protocol, Some(Protocol::Tcp));
    assert_eq!(spec.scheduler.as_deref(), Some("sh"));
    assert_eq!(spec.scheduler_flags, vec!["sh-port".to_owned(), "sh-fallback".to_owned()]);
    let persistence = spec.persistence.as_ref().expect("persistence");
    assert_eq!(persistence.timeout_seconds, Some(360), "a bare persistence_timeout is 360 s");
    assert_eq!(persistence.prefix_length, Some(24));
    assert_eq!(persistence.engine.as_deref(), Some("sip"));
    let check = spec.health_check.as_ref().expect("check");
    assert_eq!((check.interval_seconds, check.timeout_seconds, check.fall), (Some(10), Some(3), Some(3)));
    assert_eq!(check.on_failure, Some(FailureAction::Inhibit));
    assert_eq!(check.initial_state, Some(InitialState::Unhealthy));
    let b = &spec.backends;
    assert_eq!(
        (b[0].port, b[0].weight, b[0].upper_threshold, b[0].lower_threshold),
        (Some(8080), Some(3), Some(100), Some(50))
    );
    assert_eq!(b[1].weight, Some(5));
    let sorry = spec.sorry_server.as_ref().expect("sorry server");
    assert_eq!((sorry.address.as_str(), sorry.port), ("10.0.9.9", Some(8080)));
    // keepalived: in below quorum - hysteresis (3), out at quorum + hysteresis (5).
    assert_eq!((spec.quorum, spec.hysteresis), (Some(3), Some(2)));
    note_line(&imported, NoteKind::Adjusted, "delay_before_retry 4 s");
    assert!(!imported.is_partial(), "{}", notes(&imported));
}

#[test]
fn scheduler_flags_follow_the_parser() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   protocol UDP\n\
         \x20   mh-port\n\
         \x20   lvs_sched mh mh-fallback\n\
         \x20   flag-2\n\
         \x20   ops\n\
         \x20   real_server 10.0.0.1 80 {\n\
         \x20   }\n\
         }\n",
    );
    let spec = spec(&imported, "udp-192-0-2-10-80");
    // mh-port came before lvs_sched: keepalived ignores it; flag-2 is mh-port for mh; words after the scheduler
    // on its line are ignored.
    assert_eq!(spec.scheduler_flags, vec!["mh-port".to_owned()]);
    assert_eq!(spec.one_packet, Some(true));
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "mh-port read while"), 3);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "`mh-fallback` after the scheduler"), 4);
    // No checker: not checked at all.
    assert_eq!(spec.health_check, None);
    let partial = import_text(
        "virtual_server 192.0.2.10 80 {\n protocol TCP\n lvs_sched rr\n flag-3\n real_server 10.0.0.1 80 {\n }\n}\n",
    );
    assert_eq!(note_line(&partial, NoteKind::NotMapped, "flag-3"), 4);
}

#[test]
fn direct_routing_and_tunnel_keep_the_service_port_and_probe_the_written_one() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   protocol TCP\n\
         \x20   lb_kind DR\n\
         \x20   real_server 10.0.0.1 8080 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.2 8080 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         }\n\
         virtual_server fwmark 42 {\n\
         \x20   lvs_method TUN type gue port 6080 csum\n\
         \x20   persistence_timeout 600\n\
         \x20   real_server 10.0.0.3 443 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.4 8443 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let dr = spec(&imported, "tcp-192-0-2-10-80");
    assert_eq!(dr.forwarding.as_ref().map(|f| f.method), Some(ForwardingMethod::DirectRouting));
    assert!(dr.backends.iter().all(|b| b.port.is_none()), "programmed on the service's port");
    assert_eq!(dr.health_check.as_ref().and_then(|c| c.port), Some(8080), "probed on the written port");
    assert!(dr.backends.iter().all(|b| b.health_check.is_none()));

    let tun = spec(&imported, "fwm-42");
    assert_eq!(tun.family, Some(AddressFamily::IPv4));
    assert_eq!(tun.protocol, None);
    let forwarding = tun.forwarding.as_ref().expect("forwarding");
    let tunnel = forwarding.tunnel.as_ref().expect("tunnel");
    assert_eq!(
        (forwarding.method, tunnel.type_, tunnel.port, tunnel.checksum),
        (ForwardingMethod::Tunnel, TunnelType::Gue, Some(6080), Some(TunnelChecksum::Checksum))
    );
    assert!(tun.backends.iter().all(|b| b.port.is_none()), "port 0 under a fwmark");
    assert_eq!(tun.health_check.as_ref().and_then(|c| c.port), None, "the probed ports differ");
    let ports: Vec<_> = tun.backends.iter().map(|b| b.health_check.as_ref().and_then(|h| h.port)).collect();
    assert_eq!(ports, vec![Some(443), Some(8443)]);
}

#[test]
fn a_real_server_with_its_own_forwarding() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   protocol TCP\n\
         \x20   real_server 10.0.0.1 8080 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.2 9090 {\n\
         \x20       lvs_method DR\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let spec = spec(&imported, "tcp-192-0-2-10-80");
    assert_eq!(spec.backends[0].port, Some(8080));
    assert_eq!(spec.backends[1].port, None);
    assert_eq!(spec.backends[1].forwarding.as_ref().map(|f| f.method), Some(ForwardingMethod::DirectRouting));
    assert_eq!(spec.health_check.as_ref().and_then(|c| c.port), None);
    assert_eq!(spec.backends[0].health_check, None, "probed on its own port");
    assert_eq!(spec.backends[1].health_check.as_ref().and_then(|h| h.port), Some(9090));
}

#[test]
fn groups_expand_into_one_object_per_service() {
    let imported = import_text(
        "virtual_server_group web {\n\
         \x20   192.0.2.1-3 80\n\
         \x20   2001:db8::a-c 80\n\
         \x20   fwmark 7\n\
         \x20   fwmark 8 inet6\n\
         }\n\
         virtual_server group web {\n\
         \x20   protocol TCP\n\
         \x20   lvs_method TUN\n\
         \x20   real_server 10.0.0.1 80 {\n\
         \x20       HTTP_GET {\n\
         \x20           url {\n\
         \x20               path /health\n\
         \x20           }\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.2 80 {\n\
         \x20       HTTP_GET {\n\
         \x20           url {\n\
         \x20               path /health\n\
         \x20           }\n\
         \x20       }\n\
         \x20   }\n\
         }\n",
    );
    let names: Vec<_> = imported.objects.iter().filter_map(|o| o.metadata.name.clone()).collect();
    assert_eq!(
        names,
        vec![
            "tcp-192-0-2-1-80",
            "tcp-192-0-2-2-80",
            "tcp-192-0-2-3-80",
            "tcp-2001-db8--a-80",
            "tcp-2001-db8--b-80",
            "tcp-2001-db8--c-80",
            "fwm-7",
            "fwm-8-ipv6"
        ]
    );
    let first = spec(&imported, "tcp-192-0-2-1-80");
    for object in &imported.objects {
        assert_eq!(object.spec.backends.len(), 2);
        assert_eq!(
            object.spec.health_check.as_ref().map(|c| c.path.clone()),
            first.health_check.as_ref().map(|c| c.path.clone())
        );
    }
    // Under the fwmarks the tunnelled backends are on port 0 and probed on 80.
    let fwm = spec(&imported, "fwm-7");
    assert_eq!(fwm.health_check.as_ref().and_then(|c| c.port), Some(80));
    let error = import_error("virtual_server group nope {\n real_server 10.0.0.1 80 {\n }\n}\n");
    assert_eq!(error, "keepalived.conf:1: no virtual_server_group named nope");
}

#[test]
fn a_group_range_or_prefix_of_too_many_addresses_is_refused() {
    let error = import_error("virtual_server_group g {\n 10.0.0.0/16 80\n}\n");
    assert!(error.starts_with("keepalived.conf:2: "), "{error}");
    let ok = import_text(
        "virtual_server_group g {\n 192.0.2.8/30 80\n 192.0.2.20-192.0.2.21 80\n}\n\
         virtual_server group g {\n protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n",
    );
    assert_eq!(ok.objects.len(), 6);
}

#[test]
fn vrrp_addresses_are_not_bound() {
    let imported = import_text(
        "vrrp_instance VI_1 {\n\
         \x20   state BACKUP\n\
         \x20   interface eth0\n\
         \x20   virtual_router_id 51\n\
         \x20   virtual_ipaddress {\n\
         \x20       192.0.2.10/24 dev eth0\n\
         \x20   }\n\
         \x20   virtual_ipaddress_excluded {\n\
         \x20       2001:db8::10\n\
         \x20   }\n\
         }\n\
         virtual_server 192.0.2.10 80 {\n protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n\
         virtual_server 2001:db8::10 80 {\n protocol TCP\n real_server 2001:db8::1 80 {\n }\n}\n\
         virtual_server 192.0.2.11 80 {\n protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n",
    );
    assert_eq!(spec(&imported, "tcp-192-0-2-10-80").bind_address, Some(false));
    assert_eq!(spec(&imported, "tcp-2001-db8--10-80").bind_address, Some(false));
    assert_eq!(spec(&imported, "tcp-192-0-2-11-80").bind_address, None);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: vrrp_instance VI_1"), 1);
    assert!(!imported.is_partial(), "{}", notes(&imported));
}

#[test]
fn global_defs_make_the_director_settings() {
    let imported = import_text(
        "global_defs {\n\
         \x20   router_id LVS_1\n\
         \x20   notification_email {\n\
         \x20       ops@example.org\n\
         \x20   }\n\
         \x20   lvs_timeouts tcp 7200 tcpfin 120 udp 300\n\
         \x20   lvs_sync_daemon eth1 VI_1 maxlen 1400 port 8849 ttl 2 group 239.0.0.81\n\
         }\n\
         vrrp_instance VI_1 {\n\
         \x20   state MASTER\n\
         \x20   virtual_router_id 51\n\
         }\n\
         vrrp_sync_group G {\n\
         \x20   group {\n\
         \x20       VI_1\n\
         \x20   }\n\
         }\n\
         vrrp_script chk {\n\
         \x20   script /bin/true\n\
         }\n",
    );
    let director = imported.director.as_ref().expect("director settings");
    assert_eq!(
        (director.timeouts.tcp, director.timeouts.tcp_fin, director.timeouts.udp),
        (Some(7200), Some(120), Some(300))
    );
    let daemon = &director.sync_daemons[0];
    assert_eq!(daemon.state, DaemonState::Master);
    assert_eq!(daemon.interface, "eth1");
    assert_eq!(daemon.sync_id, 51, "keepalived's default: the instance's virtual_router_id");
    assert_eq!((daemon.max_length, daemon.port, daemon.ttl), (Some(1400), Some(8849), Some(2)));
    assert_eq!(daemon.group, Some("239.0.0.81".parse().expect("address")));
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "switches it between master and backup"), 7);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: global_defs router_id"), 2);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: global_defs notification_email"), 3);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: vrrp_sync_group G"), 13);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: vrrp_script chk"), 18);
    assert!(imported.objects.is_empty());
    assert!(!imported.is_partial(), "{}", notes(&imported));
}

#[test]
fn what_does_not_map_is_reported_with_its_line() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   protocol TCP\n\
         \x20   quorum_up /bin/up\n\
         \x20   frobnicate 3\n\
         \x20   real_server 10.0.0.1 80 {\n\
         \x20       notify_up /bin/up\n\
         \x20       MISC_CHECK {\n\
         \x20           misc_path /bin/check\n\
         \x20       }\n\
         \x20       wobble\n\
         \x20   }\n\
         \x20   real_server 10.0.0.2 80 {\n\
         \x20       TCP_CHECK {\n\
         \x20           bind_port 1000\n\
         \x20       }\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         }\n\
         static_routes {\n\
         \x20   10.1.0.0/16 via 192.0.2.1\n\
         }\n\
         unheard_of {\n\
         }\n",
    );
    assert!(imported.is_partial());
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: quorum_up"), 3);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "frobnicate"), 4);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: notify_up"), 6);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "MISC_CHECK"), 7);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "wobble"), 10);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "bind_port"), 14);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "a further checker"), 16);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "ignored: static_routes"), 20);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "unknown keyword: unheard_of"), 23);
    let spec = spec(&imported, "tcp-192-0-2-10-80");
    // The MISC_CHECK server is not checked here.
    assert_eq!(spec.backends[0].health_check.as_ref().and_then(|h| h.disabled), Some(true));
    assert_eq!(spec.backends[1].health_check, None);
}

#[test]
fn real_servers_that_disagree_take_the_majority() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n\
         \x20   protocol TCP\n\
         \x20   real_server 10.0.0.1 80 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.2 80 {\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.3 80 {\n\
         \x20       inhibit_on_failure\n\
         \x20       TCP_CHECK {\n\
         \x20       }\n\
         \x20   }\n\
         \x20   real_server 10.0.0.4 80 {\n\
         \x20   }\n\
         }\n",
    );
    let spec = spec(&imported, "tcp-192-0-2-10-80");
    assert_eq!(spec.health_check.as_ref().and_then(|c| c.on_failure), Some(FailureAction::Remove));
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "real server 10.0.0.3: its check differs"), 13);
    assert!(notes(&imported).contains("onFailure"), "{}", notes(&imported));
    assert_eq!(spec.backends[3].health_check.as_ref().and_then(|h| h.disabled), Some(true));
}

#[test]
fn keepalived_corrections_are_followed() {
    let imported = import_text(
        "virtual_server 192.0.2.10 0 {\n\
         \x20   protocol TCP\n\
         \x20   real_server 10.0.0.1 0 {\n\
         \x20   }\n\
         \x20   real_server 10.0.0.1 0 {\n\
         \x20   }\n\
         \x20   real_server 2001:db8::1 80 {\n\
         \x20   }\n\
         }\n\
         virtual_server 192.0.2.11 80 {\n\
         \x20   protocol TCP\n\
         }\n",
    );
    let spec = spec(&imported, "tcp-192-0-2-10-0");
    assert_eq!(spec.persistence.as_ref().and_then(|p| p.timeout_seconds), Some(360));
    assert_eq!(spec.backends.len(), 1);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "duplicate real server"), 5);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "another family"), 7);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "without real servers"), 10);
    assert_eq!(imported.objects.len(), 1);
}

#[test]
fn a_service_made_twice_is_reported() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n\
         virtual_server 192.0.2.10 80 {\n protocol TCP\n real_server 10.0.0.2 80 {\n }\n}\n",
    );
    assert_eq!(imported.objects.len(), 1);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "already made"), 6);
}

#[test]
fn includes_globs_nested_and_definitions() {
    let imported = import(&fixture("includes/keepalived.conf")).expect("import");
    assert_valid(&imported);
    let web = spec(&imported, "tcp-192-0-2-10-80");
    assert_eq!(web.scheduler.as_deref(), Some("rr"));
    let addresses: Vec<_> = web.backends.iter().map(|b| b.address.as_str()).collect();
    assert_eq!(addresses, vec!["10.0.0.1", "10.0.0.2"]);
    assert_eq!(web.health_check.as_ref().and_then(|c| c.port), Some(8080));
    let dns = spec(&imported, "udp-192-0-2-10-53");
    let check = dns.health_check.as_ref().expect("check");
    assert_eq!((check.query.as_deref(), check.query_type), (Some("example.org"), Some(DnsRecordType::A)));
    // The glob matching nothing is reported where it is.
    let note = imported.notes.iter().find(|n| n.message.contains("matches no file")).expect("note");
    let place = note.place.as_ref().expect("place");
    assert_eq!((place.file.file_name().and_then(|f| f.to_str()), place.line), (Some("keepalived.conf"), 5));
    assert!(!imported.is_partial(), "{}", notes(&imported));
}

#[test]
fn an_include_loop_is_an_error_at_the_include() {
    let error = import(&fixture("loop/a.conf")).expect_err("a loop");
    match error {
        ImportError::Syntax { place, message } => {
            assert!(place.file.ends_with("loop/b.conf"), "{}", place.file.display());
            assert_eq!(place.line, 3);
            assert!(message.contains("include loop"), "{message}");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_missing_file_is_a_read_error() {
    let error = import(&fixture("no/such.conf")).expect_err("missing");
    assert!(matches!(error, ImportError::Read { .. }), "{error}");
    let error = import_error("include missing.conf\n");
    assert!(error.contains("missing.conf"), "{error}");
}

#[test]
fn malformed_input_is_an_error_with_file_and_line() {
    let cases = [
        (
            "virtual_server 192.0.2.10 80 {\n real_server 10.0.0.1 80 {\n }\n",
            "keepalived.conf:1: the block of `virtual_server 192.0.2.10 80` is not closed",
        ),
        ("virtual_server 192.0.2.10 80 {\n}\n}\n", "keepalived.conf:3: `}` without a matching `{`"),
        ("{\n}\n", "keepalived.conf:1: `{` without a keyword before it"),
        ("virtual_server {\n}\n", "keepalived.conf:1: virtual_server: address, `fwmark N` or `group NAME` missing"),
        (
            "virtual_server 192.0.2.300 80 {\n}\n",
            "keepalived.conf:1: virtual server address `192.0.2.300` is not an IP address",
        ),
        ("virtual_server 192.0.2.10 99999 {\n}\n", "keepalived.conf:1: virtual server port `99999` is not a port"),
        (
            "virtual_server 192.0.2.10 80 {\n delay_loop soon\n}\n",
            "keepalived.conf:2: delay_loop `soon` is not a number of seconds",
        ),
        (
            "virtual_server 192.0.2.10 80 {\n real_server 10.0.0.1 80 {\n  weight -1\n }\n}\n",
            "keepalived.conf:3: weight `-1` is not a number",
        ),
        ("virtual_server 192.0.2.10 80 {\n virtualhost \"unterminated\n}\n", "keepalived.conf:2: unmatched quote"),
        ("virtual_server fwmark 0 {\n}\n", "keepalived.conf:1: fwmark `0` is not a number"),
    ];
    for (text, expected) in cases {
        let error = import_error(text);
        assert!(error.starts_with(expected), "{text:?}: {error}");
    }
}

#[test]
fn no_input_panics() {
    // Cut and shuffled pieces of a configuration: every result is an import or an error, never a panic.
    let pieces = [
        "virtual_server",
        "192.0.2.10",
        "80",
        "{",
        "}",
        "\n",
        "real_server",
        "10.0.0.1",
        "fwmark",
        "group",
        "g",
        "virtual_server_group",
        "TCP_CHECK",
        "HTTP_GET",
        "url",
        "path",
        "/",
        "status_code",
        "200-",
        "$X=",
        "$X",
        "${X}",
        "\\",
        "\"",
        "#",
        "!",
        "include",
        "*",
        "lvs_method",
        "TUN",
        "type",
        "gue",
        "port",
        "0",
        "-1",
        "persistence_granularity",
        "::1",
        "lvs_sync_daemon",
        "global_defs",
        "lvs_timeouts",
        "tcp",
        "@x",
        "@^x",
        "UDP_CHECK",
        "payload",
        "require_reply",
        "x0",
        "DNS_CHECK",
        "name",
        "..",
        "sorry_server",
        "quorum",
        "10.0.0.1-300",
        "2001:db8::1-zz",
        "/33",
        "retry",
        "4294967296",
        "delay_loop",
        "0.0000001",
        "ip_family",
        "inet6",
        "protocol",
        "SCTP",
        "ops",
        "flag-1",
        "sh-port",
        "lvs_sched",
        "sh",
    ];
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keepalived.conf");
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..400 {
        let mut text = String::new();
        for _ in 0..60 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push_str(pieces[(state % pieces.len() as u64) as usize]);
            text.push(if state.is_multiple_of(5) { '\n' } else { ' ' });
        }
        std::fs::write(&path, &text).expect("write");
        if let Ok(imported) = import(&path) {
            for object in &imported.objects {
                let _ = validate(&ObjectId::document("fuzz.yaml", 0), &object.spec);
            }
        }
    }
}

#[test]
fn documentation_samples() {
    let imported = import(&fixture("samples/keepalived.conf")).expect("import");
    assert_valid(&imported);
    let names: Vec<_> = imported.objects.iter().filter_map(|o| o.metadata.name.clone()).collect();
    assert_eq!(
        names,
        vec![
            "tcp-10-10-10-2-1358",
            "tcp-192-168-200-16-443",
            "tcp-10-0-0-1-8080",
            "tcp-192-168-200-3-80",
            "tcp-192-168-200-4-80",
            "tcp-192-168-200-5-80",
            "fwm-1"
        ]
    );
    // keepalived.conf.sample: persistence 50, rr, NAT, a sorry server, HTTP_GET with retry 3.
    let sample = spec(&imported, "tcp-10-10-10-2-1358");
    assert_eq!(sample.persistence.as_ref().and_then(|p| p.timeout_seconds), Some(50));
    assert_eq!(sample.sorry_server.as_ref().map(|s| s.address.as_str()), Some("192.168.200.200"));
    let check = sample.health_check.as_ref().expect("check");
    assert_eq!(
        (check.type_, check.path.as_deref(), check.fall),
        (HealthCheckType::Http, Some("/testurl3/test.jsp"), Some(4))
    );
    assert_eq!((check.interval_seconds, check.timeout_seconds), (Some(6), Some(3)));
    // SSL_GET with the virtual server's virtualhost; its VIP is VRRP's.
    let ssl = spec(&imported, "tcp-192-168-200-16-443");
    assert_eq!(ssl.bind_address, Some(false));
    let check = ssl.health_check.as_ref().expect("check");
    assert_eq!(
        (check.type_, check.host.as_deref(), check.insecure_skip_verify),
        (HealthCheckType::Https, Some("www.firewall.loc"), Some(true))
    );
    assert_eq!(check.server_name, None, "no enable_sni");
    // The group, direct routing: every service has both backends, on the service's port, probed on 1358.
    let dr = spec(&imported, "tcp-192-168-200-4-80");
    assert!(dr.backends.iter().all(|b| b.port.is_none()));
    assert_eq!(dr.health_check.as_ref().and_then(|c| c.port), Some(1358));
    assert_eq!(dr.backends[0].health_check.as_ref().and_then(|h| h.disabled), Some(true), "MISC_CHECK");

    // Every item that does not map is reported.
    assert!(imported.is_partial());
    let expected = [
        (NoteKind::Adjusted, "ignored: global_defs notification_email", 6),
        (NoteKind::Adjusted, "ignored: global_defs notification_email_from", 9),
        (NoteKind::Adjusted, "ignored: global_defs smtp_server", 10),
        (NoteKind::Adjusted, "ignored: global_defs smtp_connect_timeout", 11),
        (NoteKind::Adjusted, "ignored: global_defs router_id", 12),
        (NoteKind::Adjusted, "ignored: vrrp_instance VI_1", 15),
        (NoteKind::NotMapped, "digest", 46),
        (NoteKind::Adjusted, "delay_before_retry 3 s", 50),
        (NoteKind::Adjusted, "keepalived sends no SNI", 66),
        (NoteKind::NotMapped, "digest", 69),
        (NoteKind::NotMapped, "a further url", 71),
        (NoteKind::NotMapped, "digest", 73),
        (NoteKind::Adjusted, "delay_before_retry 3 s", 77),
        (NoteKind::NotMapped, "MISC_CHECK", 97),
    ];
    for (kind, fragment, line) in expected {
        let found = imported
            .notes
            .iter()
            .any(|n| n.kind == kind && n.message.contains(fragment) && n.place.as_ref().map(|p| p.line) == Some(line));
        assert!(found, "no {kind:?} note `{fragment}` at line {line} in:\n{}", notes(&imported));
    }
}

#[test]
fn reader_splits_braces_and_keeps_places() {
    let config = parse::read_text("a { b 1 } ! comment\nc \"x { y\" # comment\nd\\#e\n", Path::new("/nowhere/k.conf"))
        .expect("read");
    let a = &config.nodes[0];
    assert_eq!(a.words, vec!["a"]);
    assert_eq!(a.children()[0].words, vec!["b", "1"]);
    assert_eq!(config.nodes[1].words, vec!["c", "x { y"]);
    assert_eq!(config.nodes[1].place.line, 2);
    assert_eq!(config.nodes[2].words, vec!["d#e"]);
}

#[test]
fn a_sorry_server_that_is_a_real_server_is_left_out() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n protocol TCP\n sorry_server 10.0.0.1 80\n real_server 10.0.0.1 80 {\n }\n}\n",
    );
    assert_eq!(spec(&imported, "tcp-192-0-2-10-80").sorry_server, None);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "is also a real server"), 1);
}

#[test]
fn without_a_sorry_server_quorum_is_ignored() {
    let imported =
        import_text("virtual_server 192.0.2.10 80 {\n protocol TCP\n quorum 2\n real_server 10.0.0.1 80 {\n }\n}\n");
    assert_eq!(spec(&imported, "tcp-192-0-2-10-80").quorum, None);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "without sorry_server"), 1);
    assert!(!imported.is_partial());
}

#[test]
fn a_sync_daemon_without_its_instance_is_a_backup() {
    let imported = import_text("global_defs {\n lvs_sync_daemon eth0 inst VI_9 id 7\n}\n");
    let daemon = &imported.director.as_ref().expect("director").sync_daemons[0];
    assert_eq!((daemon.state, daemon.sync_id), (DaemonState::Backup, 7));
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "VI_9 is not in the file"), 2);
}

#[test]
fn the_direct_routing_port_rule_is_noted() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n protocol TCP\n lvs_method DR\n real_server 10.0.0.1 8080 {\n  TCP_CHECK {\n  }\n }\n}\n",
    );
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "programmed on the service's port 80"), 4);
}

#[test]
fn an_object_validation_refuses_is_reported_not_printed() {
    // A multicast virtual address: keepalived takes it, the API does not.
    let imported = import_text("virtual_server 239.1.1.1 80 {\n protocol TCP\n real_server 10.0.0.1 80 {\n }\n}\n");
    assert!(imported.objects.is_empty());
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "left out: it would be invalid"), 1);
}

#[test]
fn a_sorry_server_of_another_family_is_ignored() {
    let imported = import_text(
        "virtual_server 192.0.2.10 80 {\n protocol TCP\n sorry_server 2001:db8::9 80\n real_server 10.0.0.1 80 {\n }\n}\n",
    );
    assert_eq!(spec(&imported, "tcp-192-0-2-10-80").sorry_server, None);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "sorry server of another family"), 1);
}
