//! keepalived's checkers (`TCP_CHECK`, `HTTP_GET`, `SSL_GET`, `DNS_CHECK`, `UDP_CHECK`; the others are reported)
//! read as written, then turned into one real server's `healthCheck` with keepalived's defaults made explicit.
//!
//! Defaults, from keepalived 2.2.7's source:
//! - `delay_loop` 60 s and `connect_timeout` 5 s (`alloc_vs`, `check_data.c`), handed down virtual server → real
//!   server → checker (`validate_check_config`);
//! - `retry` 1 (`queue_checker`, `check_api.c`), 3 for `DNS_CHECK` (`DNS_DEFAULT_RETRY`); a server goes down when
//!   the first failure and `retry` more have failed (`tcp_epilog`: down once `retry_it >= retry`): fall = retry + 1;
//!   one success brings it up: rise 1; (at start keepalived takes a server down on its first failure, `retry_it =
//!   retry` in `validate_check_config`; this program's `fall` counts from the start too: the one difference left);
//! - `delay_before_retry` 1 s, 3 s for `HTTP_GET`/`SSL_GET` (`http_get_handler`), `delay_loop` for `DNS_CHECK`;
//! - HTTP status codes 200-299 when none is given (`url_check`, `HTTP_DEFAULT_STATUS_CODE_MIN/MAX`); the Host is
//!   the url's `virtualhost`, else the checker's, the real server's, the virtual server's (`http_request_thread`);
//!   SNI (with `enable_sni`) the same without the real server's (`ssl_connect`); certificates are not verified
//!   (`init_ssl_ctx` sets no `SSL_VERIFY_PEER`);
//! - `DNS_CHECK`: type SOA and the root name (`DNS_DEFAULT_TYPE`, `DNS_DEFAULT_NAME` ""); a checker's name may
//!   not have an empty label;
//! - `UDP_CHECK`: without `require_reply` the probe passes unless an ICMP error comes back.

use std::net::IpAddr;

use super::parse::Node;
use super::servers::{Inherited, RealServer, VirtualServer};
use super::values::{self, error, word};
use crate::api::v1alpha1::{
    DnsRecordType, FailureAction, HealthCheck, HealthCheckType, InitialState, MAX_EXPECT_STATUS,
};
use crate::import::{ImportError, Note, Place};

/// keepalived's `delay_loop` default, microseconds.
const DEFAULT_DELAY_LOOP: u64 = 60_000_000;
/// keepalived's `connect_timeout` default, microseconds.
const DEFAULT_CONNECT_TIMEOUT: u64 = 5_000_000;
/// The longest interval and timeout the API takes.
const MAX_SECONDS: u64 = crate::api::validate::MAX_HEALTH_SECS;

/// The kind of a checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// `TCP_CHECK`.
    Tcp,
    /// `HTTP_GET`.
    Http,
    /// `SSL_GET`.
    Ssl,
    /// `DNS_CHECK`.
    Dns,
    /// `UDP_CHECK`.
    Udp,
    /// A checker this program cannot run (`MISC_CHECK`, ...), by its keyword.
    Other(String),
}

/// One `url` block of an HTTP checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    /// Where.
    pub place: Place,
    /// `path`.
    pub path: Option<String>,
    /// `status_code` entries (`200`, `200-299`).
    pub status: Vec<String>,
    /// `virtualhost`.
    pub virtualhost: Option<String>,
}

/// A checker as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Checker {
    /// Where it starts.
    pub place: Place,
    /// Which.
    pub kind: Kind,
    /// `connect_ip`.
    pub connect_ip: Option<IpAddr>,
    /// `connect_port`.
    pub connect_port: Option<u16>,
    /// `bindto`.
    pub bindto: Option<IpAddr>,
    /// Timers and flags it sets itself.
    pub own: Inherited,
    /// HTTP: `virtualhost` of the checker.
    pub virtualhost: Option<String>,
    /// HTTP: `enable_sni`.
    pub enable_sni: bool,
    /// HTTP: `url` blocks.
    pub urls: Vec<Url>,
    /// DNS: `type`.
    pub dns_type: Option<DnsRecordType>,
    /// DNS: `name`.
    pub dns_name: Option<String>,
    /// UDP: `payload`, as hex digits.
    pub payload: Option<String>,
    /// UDP: `require_reply`, with its expected bytes as hex digits when given.
    pub require_reply: Option<Option<String>>,
}

/// Reads a checker section; `None` when `node` is not a checker keyword.
pub fn read(node: &Node, notes: &mut Vec<Note>) -> Result<Option<Checker>, ImportError> {
    let kind = match node.keyword() {
        "TCP_CHECK" => Kind::Tcp,
        "HTTP_GET" => Kind::Http,
        "SSL_GET" => Kind::Ssl,
        "DNS_CHECK" => Kind::Dns,
        "UDP_CHECK" => Kind::Udp,
        other @ ("MISC_CHECK" | "SMTP_CHECK" | "PING_CHECK" | "BFD_CHECK" | "FILE_CHECK" | "track_file"
        | "track_bfd") => Kind::Other(other.to_owned()),
        _ => return Ok(None),
    };
    let mut checker = Checker {
        place: node.place.clone(),
        kind: kind.clone(),
        connect_ip: None,
        connect_port: None,
        bindto: None,
        own: Inherited::default(),
        virtualhost: None,
        enable_sni: false,
        urls: Vec::new(),
        dns_type: None,
        dns_name: None,
        payload: None,
        require_reply: None,
    };
    if let Kind::Other(name) = &kind {
        let why = match name.as_str() {
            "MISC_CHECK" => "this program runs no commands",
            "track_file" | "FILE_CHECK" => "this program reads no files for health",
            "BFD_CHECK" | "track_bfd" => "this program has no BFD",
            _ => "this program has no such check",
        };
        notes.push(Note::not_mapped(Some(node.place.clone()), format!("{name}: {why}")));
        return Ok(Some(checker));
    }
    for child in node.children() {
        keyword(&mut checker, child, notes)?;
    }
    Ok(Some(checker))
}

fn keyword(checker: &mut Checker, node: &Node, notes: &mut Vec<Note>) -> Result<(), ImportError> {
    let place = &node.place;
    let name = node.keyword();
    let http = matches!(checker.kind, Kind::Http | Kind::Ssl);
    match name {
        "connect_ip" => checker.connect_ip = Some(values::ip(place, word(node, 1, "address")?, "connect_ip")?),
        "connect_port" => {
            checker.connect_port = Some(values::number(place, word(node, 1, "port")?, "connect_port", 1, 65535)? as u16)
        }
        "bindto" => checker.bindto = Some(values::ip(place, word(node, 1, "address")?, "bindto")?),
        "retry" | "delay_before_retry" | "warmup" | "delay_loop" | "alpha" | "connect_timeout" => {
            checker.own.read(node)?;
        }
        "nb_get_retry" if http => checker.own.retry = Some(values::number_arg(node, 0, u64::from(u32::MAX))?),
        "log_all_failures" => notes.push(Note::adjusted(Some(place.clone()), "ignored: log_all_failures (logging)")),
        "virtualhost" if http => checker.virtualhost = Some(word(node, 1, "name")?.to_owned()),
        "enable_sni" if http => checker.enable_sni = values::flag(node)?,
        "http_protocol" if http => notes.push(Note::adjusted(
            Some(place.clone()),
            "ignored: http_protocol (probes speak HTTP/1.1 and close the connection)",
        )),
        "url" if http => checker.urls.push(url(node, notes)?),
        "type" if checker.kind == Kind::Dns => {
            let text = word(node, 1, "type")?;
            match dns_type(text) {
                Some(t) => checker.dns_type = Some(t),
                None => notes.push(Note::adjusted(
                    Some(place.clone()),
                    format!("ignored, as keepalived does: DNS type `{text}` is unknown (SOA is asked)"),
                )),
            }
        }
        "name" if checker.kind == Kind::Dns => {
            let text = word(node, 1, "name")?;
            let empty_label = (text.starts_with('.') && text != ".") || text.contains("..");
            if empty_label {
                notes.push(Note::adjusted(
                    Some(place.clone()),
                    format!("ignored, as keepalived does: DNS name `{text}` has an empty label"),
                ));
            } else if checker.dns_name.is_none() {
                checker.dns_name = Some(text.to_owned());
            }
        }
        "payload" if checker.kind == Kind::Udp => {
            let text = node.words[1..].join(" ");
            match hex(&text) {
                Some(Hex::Plain(hex)) => checker.payload = Some(hex),
                _ => return Err(error(place, format!("payload `{text}` is not hex digits"))),
            }
        }
        "require_reply" if checker.kind == Kind::Udp => {
            let text = node.words[1..].join(" ");
            checker.require_reply = Some(if text.is_empty() {
                None
            } else {
                match hex(&text) {
                    Some(Hex::Plain(hex)) => Some(hex),
                    Some(Hex::Masked) => {
                        notes.push(Note::not_mapped(
                            Some(place.clone()),
                            "require_reply with wildcard digits (x): any reply is accepted",
                        ));
                        None
                    }
                    None => return Err(error(place, format!("require_reply `{text}` is not hex digits"))),
                }
            });
        }
        "virtualhost" => notes.push(Note::not_mapped(
            Some(place.clone()),
            format!("virtualhost in {}: only HTTP_GET and SSL_GET send a Host", checker_name(&checker.kind)),
        )),
        other => notes.push(Note::not_mapped(
            Some(place.clone()),
            format!("{other} in {}: not mapped", checker_name(&checker.kind)),
        )),
    }
    Ok(())
}

fn url(node: &Node, notes: &mut Vec<Note>) -> Result<Url, ImportError> {
    let mut url = Url { place: node.place.clone(), path: None, status: Vec::new(), virtualhost: None };
    for child in node.children() {
        let place = &child.place;
        match child.keyword() {
            "path" => url.path = Some(word(child, 1, "path")?.to_owned()),
            "status_code" => {
                for text in &child.words[1..] {
                    let (low, high) = text.split_once('-').unwrap_or((text, text));
                    let code = |t: &str| t.parse::<u16>().ok().filter(|c| (100..=599).contains(c));
                    match (code(low), code(high)) {
                        (Some(l), Some(h)) if l <= h => url.status.push(text.clone()),
                        _ => return Err(error(place, format!("status_code `{text}` is not a code or range 100-599"))),
                    }
                }
            }
            "virtualhost" => url.virtualhost = Some(word(child, 1, "name")?.to_owned()),
            "digest" => notes.push(Note::not_mapped(
                Some(place.clone()),
                "digest: the body's MD5 is not compared (only the status is checked)",
            )),
            other => {
                notes.push(Note::not_mapped(Some(place.clone()), format!("{other} in url: not mapped")));
            }
        }
    }
    Ok(url)
}

fn checker_name(kind: &Kind) -> &str {
    match kind {
        Kind::Tcp => "TCP_CHECK",
        Kind::Http => "HTTP_GET",
        Kind::Ssl => "SSL_GET",
        Kind::Dns => "DNS_CHECK",
        Kind::Udp => "UDP_CHECK",
        Kind::Other(name) => name,
    }
}

fn dns_type(text: &str) -> Option<DnsRecordType> {
    Some(match text.to_ascii_uppercase().as_str() {
        "A" => DnsRecordType::A,
        "AAAA" => DnsRecordType::Aaaa,
        "CNAME" => DnsRecordType::Cname,
        "MX" => DnsRecordType::Mx,
        "NS" => DnsRecordType::Ns,
        "PTR" => DnsRecordType::Ptr,
        "SOA" => DnsRecordType::Soa,
        "SRV" => DnsRecordType::Srv,
        "TXT" => DnsRecordType::Txt,
        _ => return None,
    })
}

enum Hex {
    Plain(String),
    Masked,
}

/// keepalived's hex strings (`read_hex_str`): pairs of digits, blanks between bytes, a lone digit before a blank a
/// byte of its own; `x` a wildcard digit where a mask is allowed.
fn hex(text: &str) -> Option<Hex> {
    let mut out = String::new();
    let mut masked = false;
    for group in text.split_whitespace() {
        let digits: Vec<char> = group.chars().collect();
        for pair in digits.chunks(2) {
            for c in pair {
                if c.eq_ignore_ascii_case(&'x') {
                    masked = true;
                } else if !c.is_ascii_hexdigit() {
                    return None;
                }
            }
            if pair.len() == 1 {
                out.push('0');
            }
            out.extend(pair.iter().map(|c| c.to_ascii_lowercase()));
        }
    }
    if out.is_empty() {
        return None;
    }
    Some(if masked { Hex::Masked } else { Hex::Plain(out) })
}

/// One real server's check: the definition shared by the service (no port), and what is this server's own.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    /// The check, without `port`.
    pub check: HealthCheck,
    /// The port probed.
    pub port: u16,
    /// `connect_ip`, when given.
    pub address: Option<IpAddr>,
    /// Where the checker is.
    pub place: Place,
}

/// The check keepalived runs for `checker` of `rs` in `vs`, with every default of keepalived's written out;
/// `probe_port` is the port keepalived connects to without `connect_port`. `None` (with a note) when keepalived
/// would drop the checker.
pub fn probe(
    vs: &VirtualServer,
    rs: &RealServer,
    checker: &Checker,
    probe_port: u16,
    notes: &mut Vec<Note>,
) -> Option<Probe> {
    let place = Some(checker.place.clone());
    let type_ = match checker.kind {
        Kind::Tcp => HealthCheckType::Tcp,
        Kind::Http => HealthCheckType::Http,
        Kind::Ssl => HealthCheckType::Https,
        Kind::Dns => HealthCheckType::Dns,
        Kind::Udp => HealthCheckType::Udp,
        Kind::Other(_) => return None,
    };
    let pick = |f: &dyn Fn(&Inherited) -> Option<u64>| f(&checker.own).or(f(&rs.inherited)).or(f(&vs.inherited));
    let delay_loop = pick(&|i| i.delay_loop).unwrap_or(DEFAULT_DELAY_LOOP);
    let connect_timeout = pick(&|i| i.connect_timeout).unwrap_or(DEFAULT_CONNECT_TIMEOUT);
    let default_retry = if checker.kind == Kind::Dns { 3 } else { 1 };
    let retry = pick(&|i| i.retry).unwrap_or(default_retry);
    let alpha = checker.own.alpha.or(rs.inherited.alpha).or(vs.inherited.alpha).unwrap_or(false);
    let inhibit = rs.inherited.inhibit.or(vs.inherited.inhibit).unwrap_or(false);
    let pick_placed = |f: &dyn Fn(&Inherited) -> Option<(u64, Place)>| {
        f(&checker.own).or_else(|| f(&rs.inherited)).or_else(|| f(&vs.inherited))
    };
    let default_dbr = match checker.kind {
        Kind::Http | Kind::Ssl => 3_000_000,
        Kind::Dns => delay_loop,
        _ => 1_000_000,
    };
    let delay_before_retry = pick_placed(&|i| i.delay_before_retry.clone());

    let mut check = HealthCheck {
        type_,
        interval_seconds: None,
        timeout_seconds: None,
        rise: Some(1),
        fall: Some(retry.saturating_add(1).min(u64::from(u32::MAX)) as i64),
        port: None,
        source_address: checker.bindto.map(|a| a.to_string()),
        path: None,
        host: None,
        method: None,
        expect_status: None,
        expect_body: None,
        server_name: None,
        insecure_skip_verify: None,
        send: None,
        expect_prefix: None,
        require_reply: None,
        query: None,
        query_type: None,
        service: None,
        on_failure: Some(if inhibit { FailureAction::Inhibit } else { FailureAction::Remove }),
        slow_start_seconds: None,
        initial_state: alpha.then_some(InitialState::Unhealthy),
    };

    // Interval and timeout: whole seconds, the timeout below the interval.
    let (mut interval, rounded) = values::whole_seconds(delay_loop);
    if rounded {
        notes.push(Note::adjusted(
            place.clone(),
            format!("delay_loop rounded up to {interval} s (the API counts whole seconds)"),
        ));
    }
    if interval > MAX_SECONDS {
        notes.push(Note::adjusted(place.clone(), format!("delay_loop lowered to {MAX_SECONDS} s, the API's longest")));
        interval = MAX_SECONDS;
    }
    let (mut timeout, _) = values::whole_seconds(connect_timeout);
    timeout = timeout.max(1);
    if timeout >= interval {
        if interval == 1 {
            notes.push(Note::adjusted(
                place.clone(),
                format!(
                    "connect_timeout {timeout} s is not below delay_loop 1 s: interval raised to 2 s, timeout 1 s \
                     (keepalived waits for a probe before the next; this program starts probes at a fixed interval)"
                ),
            ));
            interval = 2;
            timeout = 1;
        } else {
            notes.push(Note::adjusted(
                place.clone(),
                format!(
                    "connect_timeout {timeout} s is not below delay_loop {interval} s: timeout lowered to {} s \
                     (keepalived waits for a probe before the next; this program starts probes at a fixed interval)",
                    interval - 1
                ),
            ));
            timeout = interval - 1;
        }
    }
    check.interval_seconds = Some(interval as i64);
    check.timeout_seconds = Some(timeout as i64);

    let dbr = delay_before_retry.as_ref().map(|(t, _)| *t).unwrap_or(default_dbr);
    if retry > 0 && dbr != delay_loop {
        let dbr_place = delay_before_retry.as_ref().map(|(_, p)| p.clone()).or(place.clone());
        let keepalived = delay_loop.saturating_add(retry.saturating_mul(dbr)) as f64 / 1e6;
        let fall = retry + 1;
        notes.push(Note::adjusted(
            dbr_place,
            format!(
                "delay_before_retry {} s: no such field; retries come every interval, so a failing server is down \
                 after up to fall × interval = {fall} × {interval} = {} s instead of delay_loop + retry × \
                 delay_before_retry = {keepalived} s",
                dbr as f64 / 1e6,
                fall * interval,
            ),
        ));
    }
    if let Some((_, warmup_place)) = pick_placed(&|i| i.warmup.clone()) {
        notes.push(Note::adjusted(
            Some(warmup_place),
            "warmup: no such field; the scheduler already spreads the first probes over the interval",
        ));
    }

    match checker.kind {
        Kind::Http | Kind::Ssl => {
            let Some(first) = checker.urls.iter().position(|u| u.path.is_some()) else {
                notes.push(Note::adjusted(
                    place,
                    format!("ignored, as keepalived does: {} without a url with a path", checker_name(&checker.kind)),
                ));
                return None;
            };
            let url = &checker.urls[first];
            for extra in checker.urls.iter().skip(first + 1).filter(|u| u.path.is_some()) {
                notes.push(Note::not_mapped(
                    Some(extra.place.clone()),
                    "a further url: only the first url of a checker is probed",
                ));
            }
            check.path = url.path.clone();
            if !url.status.is_empty() {
                let mut status = url.status.clone();
                if status.len() > MAX_EXPECT_STATUS {
                    notes.push(Note::not_mapped(
                        Some(url.place.clone()),
                        format!("status_code: only the first {MAX_EXPECT_STATUS} entries are taken (the API's most)"),
                    ));
                    status.truncate(MAX_EXPECT_STATUS);
                }
                check.expect_status = Some(status);
            }
            let host = url
                .virtualhost
                .clone()
                .or(checker.virtualhost.clone())
                .or(rs.inherited.virtualhost.clone())
                .or(vs.inherited.virtualhost.clone());
            check.host = host.clone();
            if checker.kind == Kind::Ssl {
                check.insecure_skip_verify = Some(true);
                let sni = url.virtualhost.clone().or(checker.virtualhost.clone()).or(vs.inherited.virtualhost.clone());
                if checker.enable_sni {
                    check.server_name = sni;
                } else if host.is_some() {
                    notes.push(Note::adjusted(
                        place,
                        "SSL_GET with a virtualhost but without enable_sni: keepalived sends no SNI, this check \
                         sends the Host name as SNI",
                    ));
                }
            }
        }
        Kind::Dns => {
            check.query = Some(checker.dns_name.clone().unwrap_or_else(|| ".".into()));
            check.query_type = Some(checker.dns_type.unwrap_or(DnsRecordType::Soa));
        }
        Kind::Udp => {
            check.send = checker.payload.clone();
            match &checker.require_reply {
                None => check.require_reply = Some(false),
                Some(prefix) => check.expect_prefix = prefix.clone(),
            }
        }
        Kind::Tcp | Kind::Other(_) => {}
    }
    Some(Probe {
        check,
        port: checker.connect_port.unwrap_or(probe_port),
        address: checker.connect_ip,
        place: checker.place.clone(),
    })
}
