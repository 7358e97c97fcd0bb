//! The IPVS client against the real kernel, feature by feature: every scheduler and scheduler flag, every protocol and
//! family, persistence masks, every forwarding method and tunnel option, thresholds, edits, sync daemons, timeouts,
//! zeroing, flushing, and each refusal. Every test works in a fresh network namespace and cross-checks both ways with
//! ipvsadm (1.31), the reference client:
//! - what this client writes, `ipvsadm -Sn` and `ipvsadm -Ln` print exactly as expected, and the project's ipvsadm
//!   renderers print the same text, blank for blank, from what this client reads back;
//! - what ipvsadm writes, `read_table` returns as exactly the expected model values.
//!
//! `client.rs` holds the first round trip, batching and concurrency; this file fills in the feature matrix.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipvs_reconciler::cli::ipvsadm_format::{Columns, ListOptions, render, render_save, render_service};
use ipvs_reconciler::ipvs::{Ipvs, IpvsError};
use ipvs_reconciler::model::{
    ConnCounts, DaemonState, DestConfig, DestKey, Destination, Family, ForwardMethod, Netmask, Op, Protocol, Service,
    ServiceConfig, ServiceEntry, ServiceFlags, ServiceKey, Stats, SyncDaemon, Table, Timeouts, TunnelChecksum,
    TunnelConfig, TunnelType,
};

use crate::support::{Netns, binary};

// ---------------------------------------------------------------------------------------------------- builders

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tcp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::tcp(ip(addr), port)
}

fn udp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::udp(ip(addr), port)
}

fn sctp(addr: &str, port: u16) -> ServiceKey {
    ServiceKey::Addr { protocol: Protocol::Sctp, addr: ip(addr), port }
}

fn fwmark(family: Family, mark: u32) -> ServiceKey {
    ServiceKey::Fwmark { family, mark }
}

fn mask(m: &str) -> Netmask {
    Netmask::V4(m.parse().unwrap())
}

/// A service configuration, every field given.
fn config(scheduler: &str, flags: u32, timeout: u32, netmask: Netmask, pe: Option<&str>) -> ServiceConfig {
    ServiceConfig {
        scheduler: scheduler.to_owned(),
        flags: ServiceFlags(flags),
        timeout,
        netmask,
        pe_name: pe.map(str::to_owned),
    }
}

/// A destination without thresholds or tunnel options.
fn dest(addr: &str, port: u16, forward: ForwardMethod, weight: u32) -> Destination {
    Destination::new(DestKey::new(ip(addr), port), DestConfig { forward, ..DestConfig::masquerade(weight) })
}

/// A destination with connection thresholds.
fn limited(addr: &str, port: u16, weight: u32, upper: u32, lower: u32) -> Destination {
    let mut d = dest(addr, port, ForwardMethod::Masquerade, weight);
    d.config.upper_threshold = upper;
    d.config.lower_threshold = lower;
    d
}

/// A tunnelled destination.
fn tunnel(
    addr: &str,
    port: u16,
    weight: u32,
    kind: TunnelType,
    tun_port: u16,
    checksum: TunnelChecksum,
) -> Destination {
    let mut d = dest(addr, port, ForwardMethod::Tunnel, weight);
    d.config.tunnel = TunnelConfig { kind, port: tun_port, checksum };
    d
}

type Entries = Vec<(Service, Vec<Destination>)>;

fn table_of(entries: &Entries) -> Table {
    let mut t = Table::default();
    for (svc, dests) in entries {
        let e = t.insert_service(svc.clone());
        e.dests = dests.iter().map(|d| (d.key, d.clone())).collect();
    }
    t
}

fn ops_for(entries: &Entries) -> Vec<Op> {
    let mut ops = Vec::new();
    for (svc, dests) in entries {
        ops.push(Op::AddService(svc.clone()));
        ops.extend(dests.iter().map(|d| Op::AddDest(svc.key, d.clone())));
    }
    ops
}

/// The table without what only the kernel reports (counters and connection counts).
fn bare(table: &Table) -> Table {
    let mut t = table.clone();
    for e in t.services.values_mut() {
        e.service.stats = None;
        for d in e.dests.values_mut() {
            d.stats = None;
            d.conns = ConnCounts::default();
        }
    }
    t
}

// ---------------------------------------------------------------------------------------------------- checks

/// Applies `ops`, panicking with the first refusal.
async fn apply_ok(ipvs: &Ipvs, ops: &[Op]) {
    let results = ipvs.apply(ops).await;
    assert_eq!(results.len(), ops.len());
    for (op, r) in ops.iter().zip(&results) {
        if let Err(e) = r {
            panic!("{op} refused: {e}");
        }
    }
}

/// Panics unless two texts are identical, showing both in full and the first line that differs.
#[track_caller]
fn assert_text(what: &str, got: &str, want: &str) {
    if got == want {
        return;
    }
    let (g, w): (Vec<&str>, Vec<&str>) = (got.split('\n').collect(), want.split('\n').collect());
    let at = g.iter().zip(&w).position(|(a, b)| a != b).unwrap_or(g.len().min(w.len()));
    panic!(
        "{what}: texts differ at line {}\n  got:  {:?}\n  want: {:?}\n--- got\n{got}--- want\n{want}---",
        at + 1,
        g.get(at),
        w.get(at)
    );
}

/// Lines with ipvsadm's column padding removed.
fn trim_ends(text: &str) -> String {
    text.lines().map(|l| format!("{}\n", l.trim_end())).collect()
}

/// `ipvsadm -Ln` without its first line (the version and the connection table size, which the kernel chooses).
fn without_version_line(text: &str) -> String {
    text.lines().skip(1).map(|l| format!("{l}\n")).collect()
}

/// An ipvsadm listing (its arguments) and the renderer options that must print the same text.
type View = (&'static [&'static str], Columns, bool);

/// The plain listing.
const PLAIN: &[View] = &[(&["-Ln", "--exact"], Columns::Default, true)];

/// Every listing view. (`-Ln` differs from `-Ln --exact` only for counters above 10^8, which tests never reach.)
const EVERY_VIEW: &[View] = &[
    (&["-Ln", "--exact"], Columns::Default, true),
    (&["-Ln", "--stats", "--exact"], Columns::Stats, true),
    (&["-Ln", "--rate", "--exact"], Columns::Rate, true),
    (&["-Ln", "--thresholds"], Columns::Thresholds, false),
    (&["-Ln", "--persistent-conn"], Columns::PersistentConn, false),
    (&["-Ln", "--tun-info"], Columns::TunInfo, false),
];

/// `ipvsadm -Sn` and the listing `views` of ipvsadm agree, blank for blank, with the project's renderers fed with what
/// this client reads. (Each ipvsadm run costs the emulated VM most of a second: views are chosen per test.)
async fn renderers_match_ipvsadm(ns: &Netns, ipvs: &Ipvs, views: &[View]) -> Table {
    let table = ipvs.read_table().await.unwrap();
    let info = ipvs.info().await.unwrap();
    assert_text("ipvsadm -Sn vs render_save", &ns.ipvsadm(&["-Sn"]), &render_save(&table));
    for &(args, columns, exact) in views {
        let want = render(&table, &info, &ListOptions { columns, exact });
        assert_text(&format!("ipvsadm {args:?} vs render"), &ns.ipvsadm(args), &want);
    }
    table
}

/// Reads one service with `GET_SERVICE` and `GET_DEST` and checks that `ipvsadm -Ln -t|-u|--sctp-service|-f KEY`
/// prints what `render_service` makes of it.
async fn one_service_matches_ipvsadm(ns: &Netns, ipvs: &Ipvs, key: &ServiceKey, selector: &[&str]) -> ServiceEntry {
    let service = ipvs.service(key).await.unwrap().unwrap_or_else(|| panic!("{key} is missing"));
    let mut entry = ServiceEntry::new(service);
    entry.dests = ipvs.destinations(key).await.unwrap().into_iter().map(|d| (d.key, d)).collect();
    let mut args = vec!["-Ln"];
    args.extend_from_slice(selector);
    assert_text(&format!("ipvsadm {args:?}"), &ns.ipvsadm(&args), &render_service(&entry, &ListOptions::default()));
    entry
}

/// Feeds `rules` to `ipvsadm -R` inside the namespace.
fn ipvsadm_restore(ns: &Netns, rules: &str) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "ipvsadm", "-R"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(rules.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "ipvsadm -R failed: {}", String::from_utf8_lossy(&out.stderr));
}

// ---------------------------------------------------------------------------------------------------- schedulers

/// Every scheduler the kernel ships, with each combination of the flags of `sh` and `mh`, as (scheduler, flags, what
/// `ipvsadm -Sn` prints after the scheduler).
const SCHEDULERS: &[(&str, u32, &str)] = &[
    ("rr", 0, ""),
    ("wrr", 0, ""),
    ("lc", 0, ""),
    ("wlc", 0, ""),
    ("lblc", 0, ""),
    ("lblcr", 0, ""),
    ("dh", 0, ""),
    ("sh", 0, ""),
    ("sh", ServiceFlags::SCHED1, " -b sh-fallback"),
    ("sh", ServiceFlags::SCHED2, " -b sh-port"),
    ("sh", ServiceFlags::SCHED1 | ServiceFlags::SCHED2, " -b sh-fallback,sh-port"),
    ("sed", 0, ""),
    ("nq", 0, ""),
    ("fo", 0, ""),
    ("ovf", 0, ""),
    ("mh", 0, ""),
    ("mh", ServiceFlags::SCHED1, " -b mh-fallback"),
    ("mh", ServiceFlags::SCHED2, " -b mh-port"),
    ("mh", ServiceFlags::SCHED1 | ServiceFlags::SCHED2, " -b mh-fallback,mh-port"),
];

/// `SCHEDULERS[i]` on service `i`, shifted by `shift`, as services and the `-Sn` text ipvsadm must print.
fn scheduler_table(shift: usize) -> (Entries, String) {
    let mut entries = Vec::new();
    let mut save = String::new();
    for i in 0..SCHEDULERS.len() {
        let (scheduler, flags, shown) = SCHEDULERS[(i + shift) % SCHEDULERS.len()];
        let n = i + 1;
        let vip = format!("192.0.2.{n}");
        let svc = Service::new(tcp(&vip, 80), config(scheduler, flags, 0, Netmask::host(Family::V4), None));
        let weight = n as u32;
        entries.push((svc, vec![dest(&format!("10.1.0.{n}"), 8080, ForwardMethod::Masquerade, weight)]));
        save.push_str(&format!(
            "-A -t {vip}:80 -s {scheduler}{shown}\n-a -t {vip}:80 -r 10.1.0.{n}:8080 -m -w {weight}\n"
        ));
    }
    (entries, save)
}

/// Every scheduler, with every flag of `sh` and `mh`, is created (`NEW_SERVICE`) and changed into every other one
/// (`SET_SERVICE`), and both ipvsadm and the renderers read back exactly that.
#[tokio::test]
async fn every_scheduler_and_scheduler_flag_round_trips() {
    let ns = Netns::new("cm-sched");
    let ipvs = ns.ipvs().await;
    let (entries, save) = scheduler_table(0);
    apply_ok(&ipvs, &ops_for(&entries)).await;
    assert_eq!(bare(&ipvs.read_table().await.unwrap()), table_of(&entries));
    assert_text("ipvsadm -Sn", &ns.ipvsadm(&["-Sn"]), &save);
    renderers_match_ipvsadm(&ns, &ipvs, PLAIN).await;

    // Each service takes the next one's scheduler and flags: every scheduler replaces another in place.
    let (edited, save) = scheduler_table(1);
    let ops: Vec<Op> = edited.iter().map(|(svc, _)| Op::UpdateService(svc.clone())).collect();
    apply_ok(&ipvs, &ops).await;
    assert_eq!(bare(&ipvs.read_table().await.unwrap()), table_of(&edited));
    assert_text("ipvsadm -Sn after SET_SERVICE", &ns.ipvsadm(&["-Sn"]), &save);
    renderers_match_ipvsadm(&ns, &ipvs, PLAIN).await;
}

// ---------------------------------------------------------------------------------------------------- the matrix

/// Every protocol (TCP, UDP, SCTP, firewall marks) in both families, persistence with IPv4 masks and IPv6 prefixes, a
/// persistence engine, one-packet scheduling, every forwarding method, every tunnel type with every checksum mode,
/// mixed-family tunnels, thresholds and extreme weights.
fn matrix() -> Entries {
    use ForwardMethod::{DirectRoute, Local, Masquerade};
    use TunnelChecksum::{Checksum, None as NoCsum, RemoteChecksum};
    use TunnelType::{Gre, Gue, Ipip};
    const P: u32 = ServiceFlags::PERSISTENT;
    const OPS: u32 = ServiceFlags::ONEPACKET;
    const BOTH: u32 = ServiceFlags::SCHED1 | ServiceFlags::SCHED2;
    let host4 = Netmask::host(Family::V4);
    let host6 = Netmask::host(Family::V6);
    let s = Service::new;
    vec![
        (
            s(tcp("192.0.2.1", 80), config("wlc", 0, 0, host4, None)),
            vec![
                dest("10.1.1.1", 8080, Masquerade, 3),
                dest("10.1.1.2", 80, DirectRoute, 0),
                limited("10.1.1.3", 8080, (1 << 31) - 1, 100, 10),
                // The namespace's own address, forwarded locally.
                dest("10.255.255.254", 80, Local, 1),
            ],
        ),
        (
            s(tcp("192.0.2.5", 0), config("rr", P, 600, mask("255.255.0.0"), None)),
            vec![dest("10.1.5.1", 0, DirectRoute, 1)],
        ),
        (s(tcp("192.0.2.11", 80), config("lblc", P, 300, host4, None)), vec![]),
        (s(udp("192.0.2.2", 53), config("rr", OPS, 0, host4, None)), vec![dest("10.1.2.1", 53, Masquerade, 1)]),
        (
            s(udp("192.0.2.3", 5060), config("sh", P | OPS | BOTH, 60, mask("255.255.255.0"), Some("sip"))),
            vec![dest("10.1.3.1", 5060, Masquerade, 1), dest("10.1.3.2", 5060, Masquerade, 2)],
        ),
        (s(sctp("192.0.2.4", 3868), config("lc", 0, 0, host4, None)), vec![dest("10.1.4.1", 3868, Masquerade, 1)]),
        (
            s(tcp("2001:db8::6", 443), config("mh", P | BOTH, 120, Netmask::V6Prefix(64), None)),
            vec![
                dest("2001:db8:1::1", 8443, Masquerade, 1),
                dest("2001:db8:1::2", 443, DirectRoute, 2),
                tunnel("2001:db8:1::3", 443, 3, Ipip, 0, NoCsum),
                tunnel("10.1.6.1", 443, 4, Ipip, 0, NoCsum),
            ],
        ),
        (s(udp("2001:db8::7", 53), config("wrr", OPS, 0, host6, None)), vec![limited("2001:db8:1::7", 53, 5, 50, 5)]),
        (
            s(sctp("2001:db8::8", 3868), config("sed", 0, 0, host6, None)),
            vec![dest("2001:db8:1::8", 3868, Masquerade, 1)],
        ),
        (
            s(fwmark(Family::V4, 1), config("dh", 0, 0, host4, None)),
            vec![
                tunnel("10.1.9.1", 0, 1, Ipip, 0, NoCsum),
                tunnel("10.1.9.2", 0, 1, Gue, 6080, NoCsum),
                tunnel("10.1.9.3", 0, 1, Gue, 6081, Checksum),
                tunnel("10.1.9.4", 0, 1, Gue, 6082, RemoteChecksum),
                tunnel("10.1.9.5", 0, 1, Gre, 0, NoCsum),
                tunnel("10.1.9.6", 0, 1, Gre, 0, Checksum),
                tunnel("10.1.9.7", 0, 1, Gre, 0, RemoteChecksum),
                tunnel("2001:db8:1::9", 0, 1, Ipip, 0, NoCsum),
            ],
        ),
        (
            s(fwmark(Family::V6, 2), config("fo", P, 30, Netmask::V6Prefix(48), None)),
            vec![dest("2001:db8:1::a", 0, DirectRoute, 1), tunnel("2001:db8:1::b", 0, 2, Gue, 6080, Checksum)],
        ),
    ]
}

/// What `ipvsadm -Sn` prints for [`matrix`].
const MATRIX_SAVE: &str = "\
-A -t 192.0.2.1:80 -s wlc
-a -t 192.0.2.1:80 -r 10.1.1.1:8080 -m -w 3
-a -t 192.0.2.1:80 -r 10.1.1.2:80 -g -w 0
-a -t 192.0.2.1:80 -r 10.1.1.3:8080 -m -w 2147483647
-a -t 192.0.2.1:80 -r 10.255.255.254:80 -g -w 1
-A -t 192.0.2.5:0 -s rr -p 600 -M 255.255.0.0
-a -t 192.0.2.5:0 -r 10.1.5.1:0 -g -w 1
-A -t 192.0.2.11:80 -s lblc -p 300
-A -u 192.0.2.2:53 -s rr -o
-a -u 192.0.2.2:53 -r 10.1.2.1:53 -m -w 1
-A -u 192.0.2.3:5060 -s sh -p 60 -M 255.255.255.0 --pe sip -o -b sh-fallback,sh-port
-a -u 192.0.2.3:5060 -r 10.1.3.1:5060 -m -w 1
-a -u 192.0.2.3:5060 -r 10.1.3.2:5060 -m -w 2
-A --sctp-service 192.0.2.4:3868 -s lc
-a --sctp-service 192.0.2.4:3868 -r 10.1.4.1:3868 -m -w 1
-A -t [2001:db8::6]:443 -s mh -p 120 -M 64 -b mh-fallback,mh-port
-a -t [2001:db8::6]:443 -r 10.1.6.1:443 -i -w 4 --tun-type ipip
-a -t [2001:db8::6]:443 -r [2001:db8:1::1]:8443 -m -w 1
-a -t [2001:db8::6]:443 -r [2001:db8:1::2]:443 -g -w 2
-a -t [2001:db8::6]:443 -r [2001:db8:1::3]:443 -i -w 3 --tun-type ipip
-A -u [2001:db8::7]:53 -s wrr -o
-a -u [2001:db8::7]:53 -r [2001:db8:1::7]:53 -m -w 5
-A --sctp-service [2001:db8::8]:3868 -s sed
-a --sctp-service [2001:db8::8]:3868 -r [2001:db8:1::8]:3868 -m -w 1
-A -f 1 -s dh
-a -f 1 -r 10.1.9.1:0 -i -w 1 --tun-type ipip
-a -f 1 -r 10.1.9.2:0 -i -w 1 --tun-type gue --tun-port 6080 --tun-nocsum
-a -f 1 -r 10.1.9.3:0 -i -w 1 --tun-type gue --tun-port 6081 --tun-csum
-a -f 1 -r 10.1.9.4:0 -i -w 1 --tun-type gue --tun-port 6082 --tun-remcsum
-a -f 1 -r 10.1.9.5:0 -i -w 1 --tun-type gre --tun-nocsum
-a -f 1 -r 10.1.9.6:0 -i -w 1 --tun-type gre --tun-csum
-a -f 1 -r 10.1.9.7:0 -i -w 1 --tun-type gre --tun-remcsum
-a -f 1 -r [2001:db8:1::9]:0 -i -w 1 --tun-type ipip
-A -f 2 -6 -s fo -p 30 -M 48
-a -f 2 -6 -r [2001:db8:1::a]:0 -g -w 1
-a -f 2 -6 -r [2001:db8:1::b]:0 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
";

/// What `ipvsadm -Ln --tun-info` prints for [`matrix`] after its first line, column padding removed.
const MATRIX_TUN_INFO: &str = "\
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn
TCP  192.0.2.1:80 wlc
  -> 10.1.1.1:8080                Masq    n/a           3      0          0
  -> 10.1.1.2:80                  Route   n/a           0      0          0
  -> 10.1.1.3:8080                Masq    n/a           2147483647 0          0
  -> 10.255.255.254:80            Local   n/a           1      0          0
TCP  192.0.2.5:0 rr persistent 600 mask 255.255.0.0
  -> 10.1.5.1:0                   Route   n/a           1      0          0
TCP  192.0.2.11:80 lblc persistent 300
UDP  192.0.2.2:53 rr ops
  -> 10.1.2.1:53                  Masq    n/a           1      0          0
UDP  192.0.2.3:5060 sh (sh-fallback,sh-port) persistent 60 mask 255.255.255.0 pe sip ops
  -> 10.1.3.1:5060                Masq    n/a           1      0          0
  -> 10.1.3.2:5060                Masq    n/a           2      0          0
SCTP 192.0.2.4:3868 lc
  -> 10.1.4.1:3868                Masq    n/a           1      0          0
TCP  [2001:db8::6]:443 mh (mh-fallback,mh-port) persistent 120 mask 64
  -> 10.1.6.1:443                 Tunnel  ipip          4      0          0
  -> [2001:db8:1::1]:8443         Masq    n/a           1      0          0
  -> [2001:db8:1::2]:443          Route   n/a           2      0          0
  -> [2001:db8:1::3]:443          Tunnel  ipip          3      0          0
UDP  [2001:db8::7]:53 wrr ops
  -> [2001:db8:1::7]:53           Masq    n/a           5      0          0
SCTP [2001:db8::8]:3868 sed
  -> [2001:db8:1::8]:3868         Masq    n/a           1      0          0
FWM  1 dh
  -> 10.1.9.1:0                   Tunnel  ipip          1      0          0
  -> 10.1.9.2:0                   Tunnel  gue:6080:-c   1      0          0
  -> 10.1.9.3:0                   Tunnel  gue:6081:+c   1      0          0
  -> 10.1.9.4:0                   Tunnel  gue:6082:r+c  1      0          0
  -> 10.1.9.5:0                   Tunnel  gre:-c        1      0          0
  -> 10.1.9.6:0                   Tunnel  gre:+c        1      0          0
  -> 10.1.9.7:0                   Tunnel  gre:r+c       1      0          0
  -> [2001:db8:1::9]:0            Tunnel  ipip          1      0          0
FWM  2 IPv6 fo persistent 30 mask 48
  -> [2001:db8:1::a]:0            Route   n/a           1      0          0
  -> [2001:db8:1::b]:0            Tunnel  gue:6080:+c   2      0          0
";

/// What `ipvsadm -Ln --thresholds` prints for the services of [`matrix`] that have thresholds, padding removed.
const MATRIX_THRESHOLDS: &[&str] = &[
    "  -> 10.1.1.3:8080                100        10         0          0",
    "  -> [2001:db8:1::7]:53           50         5          0          0",
];

/// The whole matrix goes in through `NEW_SERVICE`/`NEW_DEST` and reads back identically through our dumps, our
/// single gets, `ipvsadm -Sn` and every `ipvsadm -Ln` view; then `FLUSH` empties it.
#[tokio::test]
async fn every_protocol_family_persistence_forwarding_and_tunnel_round_trips() {
    let ns = Netns::new("cm-matrix");
    let ipvs = ns.ipvs().await;
    let entries = matrix();
    apply_ok(&ipvs, &ops_for(&entries)).await;

    let read = ipvs.read_table().await.unwrap();
    let want = table_of(&entries);
    for (key, entry) in &want.services {
        assert_eq!(bare(&read).services.get(key), Some(entry), "{key}");
    }
    assert_eq!(bare(&read), want);

    assert_text("ipvsadm -Sn", &ns.ipvsadm(&["-Sn"]), MATRIX_SAVE);
    let tun_info = ns.ipvsadm(&["-Ln", "--tun-info"]);
    assert_text("ipvsadm -Ln --tun-info", &trim_ends(&without_version_line(&tun_info)), MATRIX_TUN_INFO);
    let thresholds = trim_ends(&ns.ipvsadm(&["-Ln", "--thresholds"]));
    for line in MATRIX_THRESHOLDS {
        assert!(thresholds.lines().any(|l| l == *line), "ipvsadm -Ln --thresholds lacks {line:?}:\n{thresholds}");
    }
    renderers_match_ipvsadm(&ns, &ipvs, EVERY_VIEW).await;

    // Single reads (GET_SERVICE, GET_DEST on one service) agree with ipvsadm's listing of that service.
    for (key, selector) in [
        (tcp("192.0.2.1", 80), vec!["-t", "192.0.2.1:80"]),
        (udp("192.0.2.3", 5060), vec!["-u", "192.0.2.3:5060"]),
        (sctp("2001:db8::8", 3868), vec!["--sctp-service", "[2001:db8::8]:3868"]),
        (fwmark(Family::V4, 1), vec!["-f", "1"]),
        (fwmark(Family::V6, 2), vec!["-f", "2", "-6"]),
    ] {
        let entry = one_service_matches_ipvsadm(&ns, &ipvs, &key, &selector).await;
        let mut entry = ServiceEntry { service: Service { stats: None, ..entry.service }, dests: entry.dests };
        for d in entry.dests.values_mut() {
            d.stats = None;
            d.conns = ConnCounts::default();
        }
        assert_eq!(&entry, &want.services[&key]);
    }

    ipvs.flush().await.unwrap();
    assert!(ipvs.read_table().await.unwrap().is_empty());
    assert_text("ipvsadm -Sn after FLUSH", &ns.ipvsadm(&["-Sn"]), "");
    // Flushing an empty table is no error.
    ipvs.flush().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------- edits

/// Six destinations of one service, `round` 0 as created, 1 and 2 after each batch of edits: every forwarding method
/// becomes another, tunnel options change or go, weights go to 0 and to the largest the kernel takes, thresholds come
/// and go.
fn edited_dests(round: usize) -> Vec<Destination> {
    use ForwardMethod::{DirectRoute, Local, Masquerade};
    use TunnelChecksum::{Checksum, None as NoCsum, RemoteChecksum};
    use TunnelType::{Gre, Gue, Ipip};
    let rounds = [
        [
            dest("10.1.0.1", 5060, Masquerade, 1),
            limited("10.1.0.2", 5060, 1, 1000, 900),
            dest("10.1.0.3", 5060, Masquerade, 1),
            tunnel("10.1.0.4", 5060, 1, Gue, 7000, Checksum),
            tunnel("10.1.0.5", 5060, 1, Gre, 0, Checksum),
            dest("10.1.0.6", 5060, Local, 1),
        ],
        [
            dest("10.1.0.1", 5060, Masquerade, 0),
            dest("10.1.0.2", 5060, DirectRoute, 5),
            tunnel("10.1.0.3", 5060, 5, Gue, 7000, RemoteChecksum),
            tunnel("10.1.0.4", 5060, 6, Ipip, 0, NoCsum),
            dest("10.1.0.5", 5060, Masquerade, 2),
            dest("10.1.0.6", 5060, DirectRoute, 3),
        ],
        [
            limited("10.1.0.1", 5060, (1 << 31) - 1, 1000, 900),
            dest("10.1.0.2", 5060, Local, 6),
            tunnel("10.1.0.3", 5060, 5, Gre, 0, Checksum),
            dest("10.1.0.4", 5060, Masquerade, 7),
            tunnel("10.1.0.5", 5060, 2, Gue, 6080, NoCsum),
            dest("10.1.0.6", 5060, DirectRoute, 3),
        ],
    ];
    rounds[round].to_vec()
}

/// Four services, `round` 0 as created, 1 and 2 after each batch of edits: schedulers, scheduler flags,
/// persistence, IPv4 masks, IPv6 prefixes, the persistence engine and one-packet scheduling come, change and go.
fn edited_services(round: usize) -> Vec<Service> {
    const P: u32 = ServiceFlags::PERSISTENT;
    const OPS: u32 = ServiceFlags::ONEPACKET;
    const S1: u32 = ServiceFlags::SCHED1;
    const S2: u32 = ServiceFlags::SCHED2;
    let (host4, host6) = (Netmask::host(Family::V4), Netmask::host(Family::V6));
    let keys = [udp("192.0.2.1", 5060), udp("192.0.2.2", 5060), tcp("2001:db8::1", 80), tcp("2001:db8::2", 80)];
    let configs = [
        [
            config("rr", 0, 0, host4, None),
            config("sh", P | OPS | S1 | S2, 60, mask("255.255.255.0"), Some("sip")),
            config("wlc", 0, 0, host6, None),
            config("mh", P, 120, Netmask::V6Prefix(64), None),
        ],
        [
            config("sh", P | S1, 300, mask("255.255.255.0"), None),
            config("wlc", 0, 0, host4, None),
            config("mh", P | S2, 120, Netmask::V6Prefix(64), None),
            config("lc", 0, 0, host6, None),
        ],
        [
            config("sh", P | OPS | S1 | S2, 60, mask("255.255.0.0"), Some("sip")),
            config("rr", 0, 0, host4, None),
            config("mh", P, 120, Netmask::V6Prefix(48), None),
            config("lc", 0, 0, host6, None),
        ],
    ];
    keys.into_iter().zip(configs[round].clone()).map(|(key, config)| Service::new(key, config)).collect()
}

fn edited_table(round: usize) -> Table {
    let services = edited_services(round);
    let mut entries: Entries = services.into_iter().map(|s| (s, vec![])).collect();
    entries[0].1 = edited_dests(round);
    table_of(&entries)
}

/// What `ipvsadm -Sn` prints after each round of edits.
const EDITED_SAVE: [&str; 2] = [
    "\
-A -u 192.0.2.1:5060 -s sh -p 300 -M 255.255.255.0 -b sh-fallback
-a -u 192.0.2.1:5060 -r 10.1.0.1:5060 -m -w 0
-a -u 192.0.2.1:5060 -r 10.1.0.2:5060 -g -w 5
-a -u 192.0.2.1:5060 -r 10.1.0.3:5060 -i -w 5 --tun-type gue --tun-port 7000 --tun-remcsum
-a -u 192.0.2.1:5060 -r 10.1.0.4:5060 -i -w 6 --tun-type ipip
-a -u 192.0.2.1:5060 -r 10.1.0.5:5060 -m -w 2
-a -u 192.0.2.1:5060 -r 10.1.0.6:5060 -g -w 3
-A -u 192.0.2.2:5060 -s wlc
-A -t [2001:db8::1]:80 -s mh -p 120 -M 64 -b mh-port
-A -t [2001:db8::2]:80 -s lc
",
    "\
-A -u 192.0.2.1:5060 -s sh -p 60 -M 255.255.0.0 --pe sip -o -b sh-fallback,sh-port
-a -u 192.0.2.1:5060 -r 10.1.0.1:5060 -m -w 2147483647
-a -u 192.0.2.1:5060 -r 10.1.0.2:5060 -g -w 6
-a -u 192.0.2.1:5060 -r 10.1.0.3:5060 -i -w 5 --tun-type gre --tun-csum
-a -u 192.0.2.1:5060 -r 10.1.0.4:5060 -m -w 7
-a -u 192.0.2.1:5060 -r 10.1.0.5:5060 -i -w 2 --tun-type gue --tun-port 6080 --tun-nocsum
-a -u 192.0.2.1:5060 -r 10.1.0.6:5060 -g -w 3
-A -u 192.0.2.2:5060 -s rr
-A -t [2001:db8::1]:80 -s mh -p 120 -M 48
-A -t [2001:db8::2]:80 -s lc
",
];

/// Every editable field of a service (`SET_SERVICE`) and of a destination (`SET_DEST`) changes in place, in two
/// batches of edits, and ipvsadm sees exactly each result; then `DEL_DEST` and `DEL_SERVICE` remove entries.
#[tokio::test]
async fn every_field_edits_in_place() {
    let ns = Netns::new("cm-edits");
    let ipvs = ns.ipvs().await;
    let services = edited_services(0);
    let mut ops: Vec<Op> = services.iter().cloned().map(Op::AddService).collect();
    ops.extend(edited_dests(0).into_iter().map(|d| Op::AddDest(services[0].key, d)));
    apply_ok(&ipvs, &ops).await;
    assert_eq!(bare(&ipvs.read_table().await.unwrap()), edited_table(0));

    for round in 1..=2 {
        let before = edited_table(round - 1);
        let after = edited_table(round);
        // Only what changed is sent, as the planner would.
        let mut ops = Vec::new();
        for (key, entry) in &after.services {
            let old = &before.services[key];
            if old.service != entry.service {
                ops.push(Op::UpdateService(entry.service.clone()));
            }
            for (dk, d) in &entry.dests {
                if old.dests[dk] != *d {
                    ops.push(Op::UpdateDest(*key, d.clone()));
                }
            }
        }
        apply_ok(&ipvs, &ops).await;
        assert_eq!(bare(&ipvs.read_table().await.unwrap()), after, "round {round}");
        assert_text(&format!("ipvsadm -Sn after round {round}"), &ns.ipvsadm(&["-Sn"]), EDITED_SAVE[round - 1]);
        renderers_match_ipvsadm(&ns, &ipvs, PLAIN).await;
    }
    // ipvsadm saves no thresholds; its listing shows them.
    let listing = ns.ipvsadm(&["-Ln", "--thresholds"]);
    let row = listing.lines().find(|l| l.starts_with("  -> 10.1.0.1:5060 ")).unwrap();
    assert_eq!(row.split_whitespace().skip(2).take(2).collect::<Vec<_>>(), ["1000", "900"], "{listing}");

    let (key, gone) = (udp("192.0.2.1", 5060), tcp("2001:db8::2", 80));
    apply_ok(&ipvs, &[Op::DeleteDest(key, DestKey::new(ip("10.1.0.1"), 5060)), Op::DeleteService(gone)]).await;
    let left: String = EDITED_SAVE[1]
        .lines()
        .filter(|l| !l.contains("10.1.0.1:5060") && !l.contains("[2001:db8::2]:80"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(left.lines().count(), 8);
    assert_text("ipvsadm -Sn after the deletes", &ns.ipvsadm(&["-Sn"]), &left);
    let read = ipvs.read_table().await.unwrap();
    assert_eq!((read.len(), read.services[&key].dests.len()), (3, 5));
}

// ---------------------------------------------------------------------------------------------------- ipvsadm writes

/// Rules covering every feature, in `ipvsadm -R` form, including what only ipvsadm fills in (default scheduler,
/// default persistence timeout, default weight, the service port copied to a destination given without one).
const IPVSADM_RULES: &str = "\
-A -t 192.0.2.1:80 -s wlc
-a -t 192.0.2.1:80 -r 10.1.1.1:8080 -m -w 3 -x 100 -y 10
-a -t 192.0.2.1:80 -r 10.1.1.2 -g
-a -t 192.0.2.1:80 -r 10.1.1.3:80 -i --tun-type gue --tun-port 6080 --tun-nocsum
-a -t 192.0.2.1:80 -r 10.1.1.4:80 -i --tun-type gue --tun-port 6081 --tun-csum -w 0
-a -t 192.0.2.1:80 -r 10.1.1.5:80 -i --tun-type gue --tun-port 6082 --tun-remcsum
-a -t 192.0.2.1:80 -r 10.1.1.6:80 -i --tun-type gre --tun-csum
-a -t 192.0.2.1:80 -r 10.1.1.7:80 -i
-A -t 192.0.2.2:443 -s sh -b sh-fallback,sh-port -p 300 -M 255.255.255.0
-a -t 192.0.2.2:443 -r 10.1.2.1 -g -w 2
-A -t 192.0.2.3:0 -p
-A -u 192.0.2.4:5060 -s rr -p 60 --pe sip -o
-a -u 192.0.2.4:5060 -r 10.1.4.1:5060 -m
-A -u 192.0.2.5:53 -s nq -o
-a -u 192.0.2.5:53 -r 10.1.5.1:5353 -m -w 7 -x 20 -y 0
-A --sctp-service 192.0.2.6:3868 -s ovf
-a --sctp-service 192.0.2.6:3868 -r 10.1.6.1:3868 -m -w 2 -x 5 -y 5
-A -t [2001:db8::1]:80 -s mh -b mh-fallback,mh-port -p 120 -M 64
-a -t [2001:db8::1]:80 -r [2001:db8:1::1]:8080 -m -w 5
-a -t [2001:db8::1]:80 -r [2001:db8:1::2]:80 -i --tun-type gue --tun-port 6080 --tun-csum
-A -f 7 -6 -s lblcr
-a -f 7 -6 -r 2001:db8:1::7 -g
-A -f 42 -s dh
-a -f 42 -r 10.1.42.1 -i
-a -f 42 -r 2001:db8:1::42 -i
";

/// A table written by ipvsadm (`-R`, then `-E`, `-e`, `-d`, `-D`) reads back as exactly the model values ipvsadm
/// sent, field by field; our renderers print what ipvsadm prints; and written again by this client into another
/// namespace it is the same table for ipvsadm.
#[tokio::test]
async fn a_table_written_by_ipvsadm_reads_back_as_the_expected_model() {
    use ForwardMethod::{DirectRoute, Masquerade};
    use TunnelChecksum::{Checksum, None as NoCsum, RemoteChecksum};
    use TunnelType::{Gre, Gue, Ipip};
    let ns = Netns::new("cm-ipvsadm");
    let ipvs = ns.ipvs().await;
    ipvsadm_restore(&ns, IPVSADM_RULES);
    let read = bare(&ipvs.read_table().await.unwrap());
    assert_eq!(read.len(), 9);
    assert_eq!(read.dest_count(), 16);

    // Field by field for the richest entries.
    let web = &read.services[&tcp("192.0.2.1", 80)];
    assert_eq!(web.service.config.scheduler, "wlc");
    assert_eq!(web.service.config.flags, ServiceFlags(0));
    assert_eq!(web.service.config.timeout, 0);
    assert_eq!(web.service.config.netmask, Netmask::V4("255.255.255.255".parse().unwrap()));
    assert_eq!(web.service.config.pe_name, None);
    let thresholds = &web.dests[&DestKey::new(ip("10.1.1.1"), 8080)].config;
    assert_eq!(thresholds.forward, Masquerade);
    assert_eq!((thresholds.weight, thresholds.upper_threshold, thresholds.lower_threshold), (3, 100, 10));
    assert_eq!(thresholds.tunnel, TunnelConfig::default());
    // `-r ADDR -g` without a port takes the service's port, with ipvsadm's default weight 1.
    let dr = &web.dests[&DestKey::new(ip("10.1.1.2"), 80)].config;
    assert_eq!((dr.forward, dr.weight), (DirectRoute, 1));
    let gue = &web.dests[&DestKey::new(ip("10.1.1.4"), 80)].config;
    assert_eq!(gue.forward, ForwardMethod::Tunnel);
    assert_eq!(gue.weight, 0);
    assert_eq!(gue.tunnel.kind, Gue);
    assert_eq!(gue.tunnel.port, 6081);
    assert_eq!(gue.tunnel.checksum, Checksum);

    let sh = &read.services[&tcp("192.0.2.2", 443)].service.config;
    assert_eq!(sh.scheduler, "sh");
    assert!(sh.flags.has(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1 | ServiceFlags::SCHED2));
    assert_eq!(sh.flags, ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1 | ServiceFlags::SCHED2));
    assert_eq!(sh.timeout, 300);
    assert_eq!(sh.netmask, mask("255.255.255.0"));
    assert_eq!(sh.netmask.prefix_len(), Some(24));

    let sip = &read.services[&udp("192.0.2.4", 5060)].service.config;
    assert_eq!(sip.pe_name.as_deref(), Some("sip"));
    assert_eq!(sip.flags, ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::ONEPACKET));
    assert_eq!(sip.timeout, 60);

    let v6 = &read.services[&tcp("2001:db8::1", 80)].service.config;
    assert_eq!(v6.netmask, Netmask::V6Prefix(64));
    assert_eq!(v6.flags, ServiceFlags(ServiceFlags::PERSISTENT | ServiceFlags::SCHED1 | ServiceFlags::SCHED2));

    // Then every entry, whole.
    let host4 = Netmask::host(Family::V4);
    let host6 = Netmask::host(Family::V6);
    let p = ServiceFlags::PERSISTENT;
    let both = ServiceFlags::SCHED1 | ServiceFlags::SCHED2;
    let expected: Entries = vec![
        (
            Service::new(tcp("192.0.2.1", 80), config("wlc", 0, 0, host4, None)),
            vec![
                limited("10.1.1.1", 8080, 3, 100, 10),
                dest("10.1.1.2", 80, DirectRoute, 1),
                tunnel("10.1.1.3", 80, 1, Gue, 6080, NoCsum),
                tunnel("10.1.1.4", 80, 0, Gue, 6081, Checksum),
                tunnel("10.1.1.5", 80, 1, Gue, 6082, RemoteChecksum),
                tunnel("10.1.1.6", 80, 1, Gre, 0, Checksum),
                tunnel("10.1.1.7", 80, 1, Ipip, 0, NoCsum),
            ],
        ),
        (
            Service::new(tcp("192.0.2.2", 443), config("sh", p | both, 300, mask("255.255.255.0"), None)),
            vec![dest("10.1.2.1", 443, DirectRoute, 2)],
        ),
        // ipvsadm's defaults: scheduler wlc, persistence 360 s.
        (Service::new(tcp("192.0.2.3", 0), config("wlc", p, 360, host4, None)), vec![]),
        (
            Service::new(udp("192.0.2.4", 5060), config("rr", p | ServiceFlags::ONEPACKET, 60, host4, Some("sip"))),
            vec![dest("10.1.4.1", 5060, Masquerade, 1)],
        ),
        (
            Service::new(udp("192.0.2.5", 53), config("nq", ServiceFlags::ONEPACKET, 0, host4, None)),
            vec![limited("10.1.5.1", 5353, 7, 20, 0)],
        ),
        (
            Service::new(sctp("192.0.2.6", 3868), config("ovf", 0, 0, host4, None)),
            vec![limited("10.1.6.1", 3868, 2, 5, 5)],
        ),
        (
            Service::new(tcp("2001:db8::1", 80), config("mh", p | both, 120, Netmask::V6Prefix(64), None)),
            vec![dest("2001:db8:1::1", 8080, Masquerade, 5), tunnel("2001:db8:1::2", 80, 1, Gue, 6080, Checksum)],
        ),
        (
            Service::new(fwmark(Family::V6, 7), config("lblcr", 0, 0, host6, None)),
            vec![dest("2001:db8:1::7", 0, DirectRoute, 1)],
        ),
        (
            Service::new(fwmark(Family::V4, 42), config("dh", 0, 0, host4, None)),
            vec![tunnel("10.1.42.1", 0, 1, Ipip, 0, NoCsum), tunnel("2001:db8:1::42", 0, 1, Ipip, 0, NoCsum)],
        ),
    ];
    let want = table_of(&expected);
    for (key, entry) in &want.services {
        assert_eq!(read.services.get(key), Some(entry), "{key}");
    }
    assert_eq!(read, want);
    let table = renderers_match_ipvsadm(&ns, &ipvs, EVERY_VIEW).await;

    // What this client reads, it writes back into another namespace as the same table, thresholds included.
    let copy = Netns::new("cm-ipvsadm2");
    let copy_ipvs = copy.ipvs().await;
    let ops: Vec<Op> = table
        .services
        .values()
        .flat_map(|e| {
            std::iter::once(Op::AddService(e.service.clone()))
                .chain(e.dests.values().map(|d| Op::AddDest(e.service.key, d.clone())))
        })
        .collect();
    apply_ok(&copy_ipvs, &ops).await;
    assert_eq!(bare(&copy_ipvs.read_table().await.unwrap()), read);
    assert_text("ipvsadm -Sn of the copy", &copy.ipvsadm(&["-Sn"]), &render_save(&table));

    // ipvsadm's edits and deletes read back too.
    ns.ipvsadm(&["-E", "-t", "192.0.2.2:443", "-s", "rr"]);
    ns.ipvsadm(&["-e", "-t", "192.0.2.1:80", "-r", "10.1.1.1:8080", "-m", "-w", "9", "-x", "0", "-y", "0"]);
    ns.ipvsadm(&["-e", "-t", "192.0.2.1:80", "-r", "10.1.1.3:80", "-g", "-w", "4"]);
    ns.ipvsadm(&["-d", "-t", "192.0.2.1:80", "-r", "10.1.1.7:80"]);
    ns.ipvsadm(&["-D", "-t", "192.0.2.3:0"]);
    let read = bare(&ipvs.read_table().await.unwrap());
    // `-E` without `-p` makes the service non-persistent, and without `-b` clears the scheduler flags.
    assert_eq!(read.services[&tcp("192.0.2.2", 443)].service.config, config("rr", 0, 0, host4, None));
    let edited = &read.services[&tcp("192.0.2.1", 80)];
    assert_eq!(edited.dests[&DestKey::new(ip("10.1.1.1"), 8080)], dest("10.1.1.1", 8080, Masquerade, 9));
    // A tunnel turned into direct routing loses its tunnel options.
    assert_eq!(edited.dests[&DestKey::new(ip("10.1.1.3"), 80)], dest("10.1.1.3", 80, DirectRoute, 4));
    assert!(!edited.dests.contains_key(&DestKey::new(ip("10.1.1.7"), 80)));
    assert!(!read.services.contains_key(&tcp("192.0.2.3", 0)));
    assert_eq!((read.len(), read.dest_count()), (8, 15));
}

// ---------------------------------------------------------------------------------------------------- globals

/// Master and backup sync daemons with every option start, list and stop through this client exactly as ipvsadm
/// shows them, and daemons started by ipvsadm with the kernel's defaults read back with those defaults.
#[tokio::test]
async fn sync_daemons_start_list_and_stop_both_ways() {
    let ns = Netns::new("cm-daemons");
    let ipvs = ns.ipvs().await;
    let master = SyncDaemon {
        state: DaemonState::Master,
        interface: "d0".into(),
        sync_id: 7,
        max_len: Some(1400),
        group: Some(ip("239.1.2.3")),
        port: Some(8849),
        ttl: Some(3),
    };
    let backup = SyncDaemon {
        state: DaemonState::Backup,
        interface: "d0".into(),
        sync_id: 8,
        max_len: Some(1200),
        group: Some(ip("ff15::1:2")),
        port: Some(9000),
        ttl: Some(4),
    };
    ipvs.start_daemon(&master).await.unwrap();
    ipvs.start_daemon(&backup).await.unwrap();
    let mut running = ipvs.daemons().await.unwrap();
    running.sort_by_key(|d| d.state);
    assert_eq!(running, vec![master.clone(), backup.clone()]);
    assert_text(
        "ipvsadm -L --daemon",
        &ns.ipvsadm(&["-L", "--daemon"]),
        "master sync daemon (mcast=d0, syncid=7, maxlen=1400, group=239.1.2.3, port=8849, ttl=3)\n\
         backup sync daemon (mcast=d0, syncid=8, maxlen=1200, group=ff15::1:2, port=9000, ttl=4)\n",
    );
    let again = ipvs.start_daemon(&master).await.unwrap_err();
    assert!(matches!(again, IpvsError::AlreadyExists(_)), "{again}");

    ipvs.stop_daemon(DaemonState::Master).await.unwrap();
    assert_eq!(ipvs.daemons().await.unwrap(), vec![backup]);
    assert_text(
        "ipvsadm -L --daemon after stopping the master",
        &ns.ipvsadm(&["-L", "--daemon"]),
        "backup sync daemon (mcast=d0, syncid=8, maxlen=1200, group=ff15::1:2, port=9000, ttl=4)\n",
    );
    ipvs.stop_daemon(DaemonState::Backup).await.unwrap();
    assert!(ipvs.daemons().await.unwrap().is_empty());
    assert_text("ipvsadm -L --daemon when none runs", &ns.ipvsadm(&["-L", "--daemon"]), "");

    // Started by ipvsadm with only an interface: the kernel reports its defaults, the message length from the
    // interface's MTU (minus the IPv4 and UDP headers).
    ns.ipvsadm(&["--start-daemon", "master", "--mcast-interface", "d0", "--syncid", "3"]);
    ns.ip(&["link", "set", "d0", "mtu", "9000"]);
    ns.ipvsadm(&["--start-daemon", "backup", "--mcast-interface", "d0", "--syncid", "4", "--mcast-port", "9999"]);
    let mut running = ipvs.daemons().await.unwrap();
    running.sort_by_key(|d| d.state);
    let default = |state, sync_id, mtu: u16, port| SyncDaemon {
        state,
        interface: "d0".into(),
        sync_id,
        max_len: Some(mtu - 20 - 8),
        group: Some(ip("224.0.0.81")),
        port: Some(port),
        ttl: Some(1),
    };
    assert_eq!(running, vec![default(DaemonState::Master, 3, 1500, 8848), default(DaemonState::Backup, 4, 9000, 9999)]);
    ns.ipvsadm(&["--stop-daemon", "master"]);
    ns.ipvsadm(&["--stop-daemon", "backup"]);
    assert!(ipvs.daemons().await.unwrap().is_empty());
}

/// Timeouts set by this client are what ipvsadm shows, and timeouts set by ipvsadm are what this client reads.
#[tokio::test]
async fn timeouts_set_by_either_tool_read_back_in_the_other() {
    let ns = Netns::new("cm-timeouts");
    let ipvs = ns.ipvs().await;
    ipvs.set_timeouts(&Timeouts { tcp: 3600, tcp_fin: 45, udp: 20 }).await.unwrap();
    assert_text("ipvsadm -L --timeout", &ns.ipvsadm(&["-L", "--timeout"]), "Timeout (tcp tcpfin udp): 3600 45 20\n");
    ns.ipvsadm(&["--set", "1200", "30", "90"]);
    assert_eq!(ipvs.timeouts().await.unwrap(), Timeouts { tcp: 1200, tcp_fin: 30, udp: 90 });
    // A zero leaves that timeout as it is, for both tools.
    ipvs.set_timeouts(&Timeouts { tcp: 0, tcp_fin: 0, udp: 5 }).await.unwrap();
    assert_text("ipvsadm -L --timeout", &ns.ipvsadm(&["-L", "--timeout"]), "Timeout (tcp tcpfin udp): 1200 30 5\n");
    ns.ipvsadm(&["--set", "0", "10", "0"]);
    assert_eq!(ipvs.timeouts().await.unwrap(), Timeouts { tcp: 1200, tcp_fin: 10, udp: 5 });
}

/// The counters of a service and its destinations, polled until `done` holds (the kernel folds its per-CPU counters
/// into what it reports every 2 seconds).
async fn wait_for_counters(ipvs: &Ipvs, what: &str, done: impl Fn(&Table) -> bool) -> Table {
    let start = Instant::now();
    loop {
        let table = ipvs.read_table().await.unwrap();
        if done(&table) {
            return table;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{what}: not reached; last read:\n{table:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn service_stats(table: &Table, key: &ServiceKey) -> Stats {
    *table.services[key].service.stats.clone().unwrap()
}

fn dest_stats(table: &Table, key: &ServiceKey) -> Vec<Stats> {
    table.services[key].dests.values().map(|d| *d.stats.clone().unwrap()).collect()
}

/// `ZERO` of one service resets its counters and its destinations' and nothing else; `ZERO` of everything resets
/// every counter. Traffic comes from the namespace itself: a UDP datagram to a virtual address is scheduled on its
/// way out.
#[tokio::test]
async fn zero_resets_the_counters_of_one_service_or_of_all() {
    let ns = Netns::new("cm-zero");
    let ipvs = ns.ipvs().await;
    let (a, b) = (udp("10.2.0.1", 53), udp("10.2.0.2", 53));
    let entries: Entries = vec![
        (
            Service::new(a, ServiceConfig::new(Family::V4, "rr")),
            vec![dest("10.3.0.1", 53, ForwardMethod::Masquerade, 1)],
        ),
        (
            Service::new(b, ServiceConfig::new(Family::V4, "rr")),
            vec![dest("10.3.0.2", 53, ForwardMethod::Masquerade, 1)],
        ),
    ];
    apply_ok(&ipvs, &ops_for(&entries)).await;
    for vip in ["10.2.0.1", "10.2.0.2"] {
        let out = ns.exec("bash", &["-c", &format!("echo hello > /dev/udp/{vip}/53")]);
        assert!(out.status.success(), "sending to {vip}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let counted = |t: &Table, k: &ServiceKey| {
        let s = service_stats(t, k);
        s.conns >= 1 && s.in_packets >= 1 && s.in_bytes > 0 && dest_stats(t, k).iter().all(|d| d.conns >= 1)
    };
    wait_for_counters(&ipvs, "both services count their datagram", |t| counted(t, &a) && counted(t, &b)).await;

    ipvs.zero(Some(&a)).await.unwrap();
    let after = ipvs.read_table().await.unwrap();
    assert_eq!(service_stats(&after, &a), Stats::default());
    assert_eq!(dest_stats(&after, &a), vec![Stats::default()]);
    assert!(counted(&after, &b), "zeroing {a} touched {b}: {:?}", service_stats(&after, &b));
    let listing = ns.ipvsadm(&["-Ln", "--stats", "--exact"]);
    let row = listing.lines().find(|l| l.starts_with("UDP  10.2.0.1:53")).unwrap();
    assert_eq!(row.split_whitespace().skip(2).collect::<Vec<_>>(), ["0"; 5], "{listing}");

    ipvs.zero(None).await.unwrap();
    let after = ipvs.read_table().await.unwrap();
    for key in [&a, &b] {
        assert_eq!(service_stats(&after, key), Stats::default(), "{key}");
        assert_eq!(dest_stats(&after, key), vec![Stats::default()], "{key}");
    }
    // Service rows (`UDP  VIP:PORT ...`) and destination rows (`  -> ADDR:PORT ...`) alike: five zeros.
    let listing = ns.ipvsadm(&["-Ln", "--stats", "--exact"]);
    let rows: Vec<&str> = listing.lines().skip(3).collect();
    assert_eq!(rows.len(), 4, "{listing}");
    for row in rows {
        assert_eq!(row.split_whitespace().skip(2).collect::<Vec<_>>(), ["0"; 5], "{listing}");
    }
}

// ---------------------------------------------------------------------------------------------------- refusals

/// Asserts the error's variant (by its metric label) and that its message names the operation, the entry and the
/// errno.
#[track_caller]
fn assert_refusal(result: Result<(), IpvsError>, label: &str, names: &[&str]) {
    let err = match result {
        Ok(()) => panic!("accepted; expected {label} naming {names:?}"),
        Err(e) => e,
    };
    let text = err.to_string();
    assert_eq!(err.metric_label(), label, "{text}");
    for name in names {
        assert!(text.contains(name), "{text:?} does not name {name:?}");
    }
}

/// Each kind of kernel refusal comes back as its typed error, and its message names the operation, the entry and the
/// kernel's errno. Refused writes leave nothing behind.
#[tokio::test]
async fn kernel_refusals_are_typed_and_name_the_operation_and_entry() {
    let ns = Netns::new("cm-refusals");
    let ipvs = ns.ipvs().await;
    let key = tcp("192.0.2.1", 80);
    let svc = Service::new(key, ServiceConfig::new(Family::V4, "rr"));
    let d = dest("10.1.0.1", 80, ForwardMethod::Masquerade, 1);
    ipvs.add_service(&svc).await.unwrap();
    ipvs.add_destination(&key, &d).await.unwrap();

    // Duplicates.
    assert_refusal(ipvs.add_service(&svc).await, "already_exists", &["add-service TCP 192.0.2.1:80", "EEXIST"]);
    assert_refusal(
        ipvs.add_destination(&key, &d).await,
        "already_exists",
        &["add-destination TCP 192.0.2.1:80 -> 10.1.0.1:80", "EEXIST"],
    );

    // A missing service, for each command that names one.
    let missing = udp("192.0.2.9", 53);
    let missing_svc = Service::new(missing, ServiceConfig::new(Family::V4, "rr"));
    assert_refusal(
        ipvs.delete_service(&missing).await,
        "no_such_service",
        &["delete-service UDP 192.0.2.9:53", "ESRCH"],
    );
    assert_refusal(ipvs.update_service(&missing_svc).await, "no_such_service", &["edit-service UDP 192.0.2.9:53"]);
    assert_refusal(
        ipvs.add_destination(&missing, &d).await,
        "no_such_service",
        &["add-destination UDP 192.0.2.9:53 -> 10.1.0.1:80", "ESRCH"],
    );
    assert_refusal(
        ipvs.update_destination(&missing, &d).await,
        "no_such_service",
        &["edit-destination UDP 192.0.2.9:53 -> 10.1.0.1:80"],
    );
    assert_refusal(
        ipvs.delete_destination(&missing, &d.key).await,
        "no_such_service",
        &["delete-destination UDP 192.0.2.9:53 -> 10.1.0.1:80"],
    );
    let fwm = fwmark(Family::V6, 99);
    assert_refusal(ipvs.delete_service(&fwm).await, "no_such_service", &["delete-service FWM 99 IPv6"]);
    assert_refusal(ipvs.zero(Some(&missing)).await, "no_such_service", &["zero UDP 192.0.2.9:53"]);

    // A missing destination of an existing service.
    let ghost = dest("10.1.0.99", 80, ForwardMethod::Masquerade, 1);
    assert_refusal(
        ipvs.delete_destination(&key, &ghost.key).await,
        "no_such_destination",
        &["delete-destination TCP 192.0.2.1:80 -> 10.1.0.99:80", "ENOENT"],
    );
    assert_refusal(
        ipvs.update_destination(&key, &ghost).await,
        "no_such_destination",
        &["edit-destination TCP 192.0.2.1:80 -> 10.1.0.99:80", "ENOENT"],
    );

    // Unknown scheduler or persistence engine, on creation and on edit.
    let nope = Service::new(tcp("192.0.2.2", 80), ServiceConfig::new(Family::V4, "nope"));
    assert_refusal(ipvs.add_service(&nope).await, "unknown_scheduler", &["add-service TCP 192.0.2.2:80", "ENOENT"]);
    let mut edit = svc.clone();
    edit.config.scheduler = "nope".into();
    assert_refusal(ipvs.update_service(&edit).await, "unknown_scheduler", &["edit-service TCP 192.0.2.1:80"]);
    let pe = Service::new(
        udp("192.0.2.3", 5060),
        config("rr", ServiceFlags::PERSISTENT, 60, Netmask::host(Family::V4), Some("nope")),
    );
    assert_refusal(ipvs.add_service(&pe).await, "unknown_scheduler", &["add-service UDP 192.0.2.3:5060", "ENOENT"]);

    // Values out of range: a weight of 2^31, a lower threshold above the upper one.
    let heavy = dest("10.1.0.2", 80, ForwardMethod::Masquerade, 1 << 31);
    assert_refusal(
        ipvs.add_destination(&key, &heavy).await,
        "out_of_range",
        &["add-destination TCP 192.0.2.1:80 -> 10.1.0.2:80", "ERANGE"],
    );
    let mut heavier = d.clone();
    heavier.config.weight = u32::MAX;
    assert_refusal(
        ipvs.update_destination(&key, &heavier).await,
        "out_of_range",
        &["edit-destination TCP 192.0.2.1:80 -> 10.1.0.1:80"],
    );
    let inverted = limited("10.1.0.3", 80, 1, 10, 20);
    assert_refusal(
        ipvs.add_destination(&key, &inverted).await,
        "out_of_range",
        &["add-destination TCP 192.0.2.1:80 -> 10.1.0.3:80", "ERANGE"],
    );

    // Invalid arguments: destination addresses that are not unicast (multicast, the broadcast address of a local
    // subnet, IPv6 multicast, a link-local address that is not local), a GUE tunnel without a port.
    let key6 = tcp("2001:db8::1", 80);
    ipvs.add_service(&Service::new(key6, ServiceConfig::new(Family::V6, "rr"))).await.unwrap();
    for (service, addr) in [(key, "224.0.0.5"), (key, "10.255.255.255"), (key6, "ff05::1"), (key6, "fe80::1")] {
        let bad = dest(addr, 80, ForwardMethod::Masquerade, 1);
        let entry = format!("add-destination {service} -> {}", bad.key);
        assert_refusal(ipvs.add_destination(&service, &bad).await, "invalid_argument", &[&entry, "EINVAL"]);
    }
    let portless = tunnel("10.1.0.4", 80, 1, TunnelType::Gue, 0, TunnelChecksum::None);
    assert_refusal(
        ipvs.add_destination(&key, &portless).await,
        "invalid_argument",
        &["add-destination TCP 192.0.2.1:80 -> 10.1.0.4:80", "EINVAL"],
    );
    let mut portless_edit = d.clone();
    portless_edit.config = portless.config;
    assert_refusal(
        ipvs.update_destination(&key, &portless_edit).await,
        "invalid_argument",
        &["edit-destination TCP 192.0.2.1:80 -> 10.1.0.1:80"],
    );

    // What the kernel does accept: a unicast address it has no route to (it checks the address type only).
    let unrouted = dest("192.0.2.99", 80, ForwardMethod::Masquerade, 1);
    ipvs.add_destination(&key, &unrouted).await.unwrap();

    // Nothing refused was kept, nothing accepted was changed.
    let want: Entries =
        vec![(svc, vec![d, unrouted]), (Service::new(key6, ServiceConfig::new(Family::V6, "rr")), vec![])];
    assert_eq!(bare(&ipvs.read_table().await.unwrap()), table_of(&want));
}

/// A root that is root only in its own user namespace has no `CAP_NET_ADMIN` where IPVS checks it: the CLI fails
/// with exit code 1 and one line that says so.
#[test]
fn a_user_namespace_root_is_refused_with_one_line_naming_cap_net_admin() {
    let ns = Netns::new("cm-userns");
    let bin = binary();
    let out = ns.exec("unshare", &["--user", "--map-root-user", bin.to_str().unwrap(), "dump"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line: {stderr}");
    let line = lines[0].to_lowercase();
    assert!(line.contains("permission denied"), "{stderr}");
    assert!(lines[0].contains("CAP_NET_ADMIN"), "{stderr}");
    assert!(lines[0].contains("EPERM"), "{stderr}");
}
