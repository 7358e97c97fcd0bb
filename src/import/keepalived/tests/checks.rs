//! The checkers: each keyword, keepalived's defaults, and what is adjusted.

use super::{import_text, note_line, notes, spec};
use crate::api::v1alpha1::{DnsRecordType, HealthCheck, HealthCheckType};
use crate::import::{Imported, NoteKind};

/// The check of the one service of a configuration made of `checker` in a real server 10.0.0.1 80.
fn check_of(checker: &str) -> (HealthCheck, Imported) {
    let text = format!(
        "virtual_server 192.0.2.10 80 {{\n    protocol TCP\n    real_server 10.0.0.1 80 {{\n{checker}\n    }}\n}}\n"
    );
    let imported = import_text(&text);
    let check = spec(&imported, "tcp-192-0-2-10-80").health_check.clone().expect("a check");
    (check, imported)
}

#[test]
fn http_get() {
    let (check, imported) = check_of(
        "HTTP_GET {\n\
         url {\n path /health?full=1\n status_code 200 204 300-302\n virtualhost api.example.org\n digest 0123456789abcdef0123456789abcdef\n }\n\
         url {\n path /other\n }\n\
         virtualhost www.example.org\n\
         http_protocol 1.1\n\
         nb_get_retry 4\n\
         }",
    );
    assert_eq!(check.type_, HealthCheckType::Http);
    assert_eq!(check.path.as_deref(), Some("/health?full=1"));
    assert_eq!(check.expect_status, Some(vec!["200".into(), "204".into(), "300-302".into()]));
    assert_eq!(check.host.as_deref(), Some("api.example.org"), "the url's virtualhost first");
    assert_eq!(check.fall, Some(5));
    assert_eq!(check.insecure_skip_verify, None);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "digest"), 9);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "a further url"), 11);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "http_protocol"), 15);
    // HTTP's delay_before_retry default is 3 s.
    note_line(&imported, NoteKind::Adjusted, "delay_before_retry 3 s");
}

#[test]
fn http_get_defaults_and_inherited_virtualhost() {
    let text = "virtual_server 192.0.2.10 80 {\n protocol TCP\n virtualhost vs.example.org\n\
                real_server 10.0.0.1 80 {\n  virtualhost rs.example.org\n  HTTP_GET {\n   url {\n    path /\n   }\n  }\n }\n}\n";
    let imported = import_text(text);
    let check = spec(&imported, "tcp-192-0-2-10-80").health_check.clone().expect("check");
    assert_eq!(check.expect_status, None, "keepalived's default 200-299 is the API's");
    assert_eq!(check.host.as_deref(), Some("rs.example.org"));
    // A checker without a url with a path is dropped, as keepalived does.
    let text = "virtual_server 192.0.2.10 80 {\n protocol TCP\n real_server 10.0.0.1 80 {\n  HTTP_GET {\n   url {\n   }\n  }\n }\n}\n";
    let imported = import_text(text);
    assert_eq!(spec(&imported, "tcp-192-0-2-10-80").health_check, None);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "without a url with a path"), 4);
}

#[test]
fn ssl_get_does_not_verify_and_sends_the_virtualhost_as_sni() {
    let (check, _) = check_of("SSL_GET {\n url {\n path /\n }\n virtualhost secure.example.org\n enable_sni\n}");
    assert_eq!(check.type_, HealthCheckType::Https);
    assert_eq!(check.insecure_skip_verify, Some(true));
    assert_eq!(check.host.as_deref(), Some("secure.example.org"));
    assert_eq!(check.server_name.as_deref(), Some("secure.example.org"));
}

#[test]
fn dns_check_defaults() {
    let (check, imported) = check_of("DNS_CHECK {\n}");
    assert_eq!(check.type_, HealthCheckType::Dns);
    assert_eq!(check.query.as_deref(), Some("."));
    assert_eq!(check.query_type, Some(DnsRecordType::Soa));
    assert_eq!(check.fall, Some(4), "DNS_CHECK retries 3 times");
    // Its delay_before_retry is the delay_loop: nothing to say.
    assert!(!notes(&imported).contains("delay_before_retry"), "{}", notes(&imported));
    let (check, imported) = check_of("DNS_CHECK {\n type mx\n name ..bad\n type BOGUS\n}");
    assert_eq!(check.query_type, Some(DnsRecordType::Mx));
    assert_eq!(check.query.as_deref(), Some("."));
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "empty label"), 6);
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "BOGUS"), 7);
}

#[test]
fn udp_check() {
    let (check, _) = check_of("UDP_CHECK {\n}");
    assert_eq!(check.type_, HealthCheckType::Udp);
    assert_eq!(check.require_reply, Some(false), "no require_reply: silence passes");
    let (check, _) = check_of("UDP_CHECK {\n payload 01 02 0a0B\n require_reply 8 1\n}");
    assert_eq!(check.send.as_deref(), Some("01020a0b"));
    assert_eq!(check.expect_prefix.as_deref(), Some("0801"));
    assert_eq!(check.require_reply, None);
    let (check, imported) = check_of("UDP_CHECK {\n require_reply 8x\n min_reply_length 2\n}");
    assert_eq!((check.expect_prefix, check.require_reply), (None, None));
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "wildcard"), 5);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "min_reply_length"), 6);
}

#[test]
fn connection_options() {
    let (check, imported) =
        check_of("TCP_CHECK {\n connect_ip 10.9.0.1\n connect_port 9000\n bindto 192.0.2.1\n bind_if eth0\n}");
    assert_eq!(check.source_address.as_deref(), Some("192.0.2.1"));
    assert_eq!(check.port, Some(9000));
    let backend = &spec(&imported, "tcp-192-0-2-10-80").backends[0];
    assert_eq!(backend.health_check.as_ref().and_then(|h| h.address.as_deref()), Some("10.9.0.1"));
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "bind_if"), 8);
}

#[test]
fn timers() {
    // A checker's own delay_loop wins; the timeout is kept below it.
    let (check, imported) = check_of("TCP_CHECK {\n delay_loop 3\n connect_timeout 5\n retry 0\n warmup 10\n}");
    assert_eq!((check.interval_seconds, check.timeout_seconds, check.fall), (Some(3), Some(2), Some(1)));
    note_line(&imported, NoteKind::Adjusted, "timeout lowered to 2 s");
    assert_eq!(note_line(&imported, NoteKind::Adjusted, "warmup"), 8);
    assert!(!notes(&imported).contains("delay_before_retry"), "retry 0: no retries");
    let (check, imported) = check_of("TCP_CHECK {\n delay_loop 1\n connect_timeout 1\n}");
    assert_eq!((check.interval_seconds, check.timeout_seconds), (Some(2), Some(1)));
    note_line(&imported, NoteKind::Adjusted, "interval raised to 2 s");
    let (check, imported) = check_of("TCP_CHECK {\n delay_loop 2.5\n connect_timeout 0.5\n}");
    assert_eq!((check.interval_seconds, check.timeout_seconds), (Some(3), Some(1)));
    note_line(&imported, NoteKind::Adjusted, "rounded up to 3 s");
}

#[test]
fn virtualhost_on_another_checker_and_unknown_checker_keywords() {
    let (_, imported) = check_of("TCP_CHECK {\n virtualhost x.example.org\n frobnicate\n}");
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "virtualhost in TCP_CHECK"), 5);
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "frobnicate in TCP_CHECK"), 6);
    let (_, imported) = check_of("HTTP_GET {\n url {\n path /\n regex ok\n }\n}");
    assert_eq!(note_line(&imported, NoteKind::NotMapped, "regex in url"), 7);
}

#[test]
fn other_checkers_are_not_mapped() {
    for (checker, line) in
        [("SMTP_CHECK {\n}", 4), ("PING_CHECK {\n}", 4), ("BFD_CHECK {\n}", 4), ("FILE_CHECK {\n}", 4)]
    {
        let text = format!(
            "virtual_server 192.0.2.10 80 {{\n protocol TCP\n real_server 10.0.0.1 80 {{\n{checker}\n }}\n}}\n"
        );
        let imported = import_text(&text);
        let name = checker.split(' ').next().unwrap_or_default();
        assert_eq!(note_line(&imported, NoteKind::NotMapped, name), line);
        assert_eq!(spec(&imported, "tcp-192-0-2-10-80").health_check, None);
    }
}
