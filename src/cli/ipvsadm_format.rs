//! Renders a table the way `ipvsadm -Ln` (and its `--stats`, `--rate`, `--thresholds`, `--persistent-conn`,
//! `--tun-info`, `--exact` variants) and `ipvsadm -Sn` print it, so that output can be compared with ipvsadm's
//! line by line and existing scripts keep parsing it.
//!
//! The layout follows ipvsadm 1.31 (`print_title`, `print_service_entry`, `print_largenum` in ipvsadm.c), including
//! its column widths and trailing blanks. Deliberate differences, each for a value ipvsadm cannot print sensibly:
//! - ipvsadm compares services and destinations by subtracting addresses into an `int`, which misorders addresses
//!   more than 2^31 apart; services are sorted here the way ipvsadm means to (firewall mark, family, protocol,
//!   address, port) and destinations by address then port.
//! - The bypass forwarding method (4) is shown as `Bypass` where ipvsadm prints `(null)`; the other values it has no
//!   name for (5 to 7) are shown as `(null)` like ipvsadm.
//! - Names are never resolved: this is always the numeric (`-n`) form.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{
    DestKey, Destination, Family, ForwardMethod, Info, Netmask, Protocol, ServiceEntry, ServiceFlags, ServiceKey,
    Stats, Table, TunnelChecksum, TunnelType,
};

/// Which columns a listing shows (ipvsadm's listing options).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Columns {
    /// Forwarding method, weight, active and inactive connections (`ipvsadm -Ln`).
    #[default]
    Default,
    /// Traffic counters (`--stats`).
    Stats,
    /// Traffic rates (`--rate`).
    Rate,
    /// Connection thresholds (`--thresholds`).
    Thresholds,
    /// Persistence templates per destination (`--persistent-conn`).
    PersistentConn,
    /// Tunnel encapsulation of each destination (`--tun-info`).
    TunInfo,
}

impl Columns {
    /// The view ipvsadm picks when several listing options are given: the first set of stats, rate, thresholds,
    /// persistent-conn, tun-info.
    pub fn from_flags(stats: bool, rate: bool, thresholds: bool, persistent_conn: bool, tun_info: bool) -> Self {
        [
            (stats, Columns::Stats),
            (rate, Columns::Rate),
            (thresholds, Columns::Thresholds),
            (persistent_conn, Columns::PersistentConn),
            (tun_info, Columns::TunInfo),
        ]
        .into_iter()
        .find_map(|(set, columns)| set.then_some(columns))
        .unwrap_or_default()
    }
}

/// How to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Which columns.
    pub columns: Columns,
    /// Print counters and rates in full (`--exact`) instead of abbreviating large ones with K, M, G, T.
    pub exact: bool,
}

/// The whole table as `ipvsadm -Ln` prints it: version line, column titles, then every service and its destinations.
pub fn render(table: &Table, info: &Info, opts: &ListOptions) -> String {
    let mut out = format!("IP Virtual Server version {} (size={})\n", info.version_string(), info.conn_table_size);
    out.push_str(&title(opts.columns));
    for entry in sorted(table) {
        list_entry(&mut out, entry, opts);
    }
    out
}

/// One service as `ipvsadm -Ln -t VIP:PORT` prints it: column titles, the service and its destinations.
pub fn render_service(entry: &ServiceEntry, opts: &ListOptions) -> String {
    let mut out = title(opts.columns);
    list_entry(&mut out, entry, opts);
    out
}

/// The whole table as `ipvsadm -Sn` prints it: one `-A` line per service followed by one `-a` line per destination.
///
/// Like ipvsadm's, this format does not carry destination thresholds.
pub fn render_save(table: &Table) -> String {
    let mut out = String::new();
    for entry in sorted(table) {
        save_entry(&mut out, entry);
    }
    out
}

/// Services in ipvsadm's order: address services before mark services, then family, protocol, address, port.
fn sorted(table: &Table) -> Vec<&ServiceEntry> {
    let mut entries: Vec<&ServiceEntry> = table.services.values().collect();
    entries.sort_by_key(|entry| {
        let key = entry.service.key;
        let (mark, addr) = match key {
            ServiceKey::Addr { addr, .. } => (0, Some(addr)),
            ServiceKey::Fwmark { mark, .. } => (mark, None),
        };
        (mark, key.family().to_af(), key.protocol().number(), addr, key.port())
    });
    entries
}

fn title(columns: Columns) -> String {
    const SERVICE: &str = "Prot LocalAddress:Port";
    const DEST: &str = "  -> RemoteAddress:Port";
    match columns {
        Columns::Stats => {
            format!(
                "{SERVICE:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{DEST}\n",
                "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
            )
        }
        Columns::Rate => {
            format!(
                "{SERVICE:<33} {:>8} {:>8} {:>8} {:>8} {:>8}\n{DEST}\n",
                "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
            )
        }
        Columns::Thresholds => format!(
            "{SERVICE:<33} {:<10} {:<10} {:<10} {:<10}\n{DEST}\n",
            "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        Columns::PersistentConn => {
            format!(
                "{SERVICE:<33} {:<9} {:<11} {:<10} {:<10}\n{DEST}\n",
                "Weight", "PersistConn", "ActiveConn", "InActConn"
            )
        }
        Columns::TunInfo => {
            format!("{SERVICE} Scheduler Flags\n{DEST}           Forward TunnelInfo    Weight ActiveConn InActConn\n")
        }
        Columns::Default => {
            format!("{SERVICE} Scheduler Flags\n{DEST}           Forward Weight ActiveConn InActConn\n")
        }
    }
}

fn list_entry(out: &mut String, entry: &ServiceEntry, opts: &ListOptions) {
    let service = &entry.service;
    let name = list_name(&service.key);
    let stats = service.stats.as_deref().copied().unwrap_or_default();
    match opts.columns {
        Columns::Stats => {
            let _ = write!(out, "{name:<33}");
            counters(out, &stats, opts.exact);
        }
        Columns::Rate => {
            let _ = write!(out, "{name:<33}");
            for n in [stats.cps, stats.in_pps, stats.out_pps, stats.in_bps, stats.out_bps] {
                largenum(out, n, opts.exact);
            }
        }
        _ => {
            let config = &service.config;
            let _ = write!(out, "{name} {}", config.scheduler);
            if has_sched_flags(config.flags) {
                let _ = write!(out, " ({})", sched_flags(&config.scheduler, config.flags));
            }
            if config.flags.has(ServiceFlags::PERSISTENT) {
                let _ = write!(out, " persistent {}", config.timeout);
                if let Some(mask) = non_host_mask(service.key.family(), &config.netmask) {
                    let _ = write!(out, " mask {mask}");
                }
                if let Some(pe) = &config.pe_name {
                    let _ = write!(out, " pe {pe}");
                }
            }
            if config.flags.has(ServiceFlags::ONEPACKET) {
                out.push_str(" ops");
            }
        }
    }
    out.push('\n');

    for dest in entry.dests.values() {
        list_dest(out, dest, opts);
    }
}

fn list_dest(out: &mut String, dest: &Destination, opts: &ListOptions) {
    let name = addr_port(&dest.key);
    let config = &dest.config;
    // ipvsadm prints the kernel's int.
    let weight = config.weight as i32;
    let (active, inactive) = (dest.conns.active, dest.conns.inactive);
    let stats = dest.stats.as_deref().copied().unwrap_or_default();
    let _ = match opts.columns {
        Columns::Stats => {
            let _ = write!(out, "  -> {name:<28}");
            counters(out, &stats, opts.exact);
            writeln!(out)
        }
        Columns::Rate => {
            // ipvsadm abbreviates only the byte rates of destinations.
            let _ = write!(out, "  -> {name:<28} {:>8} {:>8} {:>8}", stats.cps, stats.in_pps, stats.out_pps);
            largenum(out, stats.in_bps, opts.exact);
            largenum(out, stats.out_bps, opts.exact);
            writeln!(out)
        }
        Columns::Thresholds => writeln!(
            out,
            "  -> {name:<28} {:<10} {:<10} {active:<10} {inactive:<10}",
            config.upper_threshold, config.lower_threshold
        ),
        Columns::PersistentConn => {
            writeln!(out, "  -> {name:<28} {weight:<9} {:<11} {active:<10} {inactive:<10}", dest.conns.persistent)
        }
        Columns::TunInfo => {
            let info = tunnel_info(dest).unwrap_or_else(|| "n/a".to_owned());
            let forward = forward_name(config.forward);
            writeln!(out, "  -> {name:<28} {forward:<7} {info:<13} {weight:<6} {active:<10} {inactive:<10}")
        }
        Columns::Default => {
            let forward = forward_name(config.forward);
            writeln!(out, "  -> {name:<28} {forward:<7} {weight:<6} {active:<10} {inactive:<10}")
        }
    };
}

fn counters(out: &mut String, stats: &Stats, exact: bool) {
    for n in [stats.conns, stats.in_packets, stats.out_packets, stats.in_bytes, stats.out_bytes] {
        largenum(out, n, exact);
    }
}

/// A counter in a 9-wide column: in full with `exact` (wider when needed), else abbreviated past 100 million.
fn largenum(out: &mut String, n: u64, exact: bool) {
    let _ = if exact {
        let width = n.to_string().len().max(8) + 1;
        write!(out, "{n:>width$}")
    } else if n < 100_000_000 {
        write!(out, "{n:>9}")
    } else if n < 1_000_000_000 {
        write!(out, "{:>8}K", n / 1_000)
    } else if n < 100_000_000_000 {
        write!(out, "{:>8}M", n / 1_000_000)
    } else if n < 100_000_000_000_000 {
        write!(out, "{:>8}G", n / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", n / 1_000_000_000_000)
    };
}

/// `TCP  192.0.2.1:80`, `UDP  [2001:db8::1]:53`, `FWM  42`, `FWM  42 IPv6`.
fn list_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            let protocol = match protocol {
                Protocol::Tcp => "TCP",
                Protocol::Udp => "UDP",
                Protocol::Sctp => "SCTP",
                Protocol::Other(_) => "?",
            };
            format!("{protocol:<4} {}", addr_port(&DestKey::new(*addr, *port)))
        }
        ServiceKey::Fwmark { family: Family::V4, mark } => format!("FWM  {mark}"),
        ServiceKey::Fwmark { family: Family::V6, mark } => format!("FWM  {mark} IPv6"),
    }
}

/// `-t 192.0.2.1:80`, `-u [2001:db8::1]:53`, `-f 42`, `-f 42 -6`.
fn save_name(key: &ServiceKey) -> String {
    match key {
        ServiceKey::Addr { protocol, addr, port } => {
            let option = match protocol {
                Protocol::Tcp => "-t",
                Protocol::Udp => "-u",
                Protocol::Sctp => "--sctp-service",
                Protocol::Other(_) => "--xxx-service",
            };
            format!("{option} {}", addr_port(&DestKey::new(*addr, *port)))
        }
        ServiceKey::Fwmark { family: Family::V4, mark } => format!("-f {mark}"),
        ServiceKey::Fwmark { family: Family::V6, mark } => format!("-f {mark} -6"),
    }
}

fn addr_port(key: &DestKey) -> String {
    match key.addr {
        IpAddr::V4(a) => format!("{a}:{}", key.port),
        IpAddr::V6(a) => format!("[{a}]:{}", key.port),
    }
}

fn has_sched_flags(flags: ServiceFlags) -> bool {
    flags.0 & (ServiceFlags::SCHED1 | ServiceFlags::SCHED2 | ServiceFlags::SCHED3) != 0
}

/// Scheduler flags by the names the scheduler gives them: `sh-fallback,sh-port`, or `flag-1,...` for others.
fn sched_flags(scheduler: &str, flags: ServiceFlags) -> String {
    let names: &[(u32, &str)] = match scheduler {
        "sh" => &[(ServiceFlags::SCHED1, "sh-fallback"), (ServiceFlags::SCHED2, "sh-port")],
        "mh" => &[(ServiceFlags::SCHED1, "mh-fallback"), (ServiceFlags::SCHED2, "mh-port")],
        _ => &[(ServiceFlags::SCHED1, "flag-1"), (ServiceFlags::SCHED2, "flag-2"), (ServiceFlags::SCHED3, "flag-3")],
    };
    names.iter().filter(|(bit, _)| flags.has(*bit)).map(|(_, name)| *name).collect::<Vec<_>>().join(",")
}

/// The persistence mask when it is not the whole address (ipvsadm omits /32 and /128).
fn non_host_mask(family: Family, mask: &Netmask) -> Option<String> {
    (*mask != Netmask::host(family)).then(|| mask.to_string())
}

fn forward_name(forward: ForwardMethod) -> &'static str {
    match forward {
        ForwardMethod::Masquerade => "Masq",
        ForwardMethod::Local => "Local",
        ForwardMethod::Tunnel => "Tunnel",
        ForwardMethod::DirectRoute => "Route",
        ForwardMethod::Bypass => "Bypass",
        ForwardMethod::Other(_) => "(null)",
    }
}

fn forward_switch(forward: ForwardMethod) -> &'static str {
    match forward {
        ForwardMethod::Masquerade => "-m",
        ForwardMethod::Tunnel => "-i",
        ForwardMethod::Local | ForwardMethod::DirectRoute => "-g",
        // ipvsadm has no option for these; its (null) makes `ipvsadm -R` refuse the line rather than guess.
        ForwardMethod::Bypass | ForwardMethod::Other(_) => "(null)",
    }
}

fn tunnel_name(kind: TunnelType) -> Option<&'static str> {
    match kind {
        TunnelType::Ipip => Some("ipip"),
        TunnelType::Gue => Some("gue"),
        TunnelType::Gre => Some("gre"),
        TunnelType::Other(_) => None,
    }
}

fn checksum_short(checksum: TunnelChecksum) -> &'static str {
    match checksum {
        TunnelChecksum::None => "-c",
        TunnelChecksum::Checksum => "+c",
        TunnelChecksum::RemoteChecksum => "r+c",
        TunnelChecksum::Other(_) => "?",
    }
}

fn checksum_option(checksum: TunnelChecksum) -> &'static str {
    match checksum {
        TunnelChecksum::None => "--tun-nocsum",
        TunnelChecksum::Checksum => "--tun-csum",
        TunnelChecksum::RemoteChecksum => "--tun-remcsum",
        TunnelChecksum::Other(_) => "",
    }
}

/// `ipip`, `gue:6080:-c`, `gre:+c` for tunnelled destinations; `None` (shown `n/a`) otherwise.
fn tunnel_info(dest: &Destination) -> Option<String> {
    if dest.config.forward != ForwardMethod::Tunnel {
        return None;
    }
    let tunnel = &dest.config.tunnel;
    let name = tunnel_name(tunnel.kind)?;
    Some(match tunnel.kind {
        TunnelType::Gue => format!("{name}:{}:{}", tunnel.port, checksum_short(tunnel.checksum)),
        TunnelType::Gre => format!("{name}:{}", checksum_short(tunnel.checksum)),
        _ => name.to_owned(),
    })
}

fn save_entry(out: &mut String, entry: &ServiceEntry) {
    let service = &entry.service;
    let config = &service.config;
    let name = save_name(&service.key);
    let _ = write!(out, "-A {name} -s {}", config.scheduler);
    if config.flags.has(ServiceFlags::PERSISTENT) {
        let _ = write!(out, " -p {}", config.timeout);
        if let Some(mask) = non_host_mask(service.key.family(), &config.netmask) {
            let _ = write!(out, " -M {mask}");
        }
    }
    if let Some(pe) = &config.pe_name {
        let _ = write!(out, " --pe {pe}");
    }
    if config.flags.has(ServiceFlags::ONEPACKET) {
        out.push_str(" -o");
    }
    if has_sched_flags(config.flags) {
        let _ = write!(out, " -b {}", sched_flags(&config.scheduler, config.flags));
    }
    out.push('\n');

    for dest in entry.dests.values() {
        let config = &dest.config;
        let weight = config.weight as i32;
        let _ = write!(out, "-a {name} -r {} {} -w {weight}", addr_port(&dest.key), forward_switch(config.forward));
        if config.forward == ForwardMethod::Tunnel {
            let tunnel = &config.tunnel;
            if let Some(kind) = tunnel_name(tunnel.kind) {
                let _ = write!(out, " --tun-type {kind}");
            }
            let _ = match tunnel.kind {
                TunnelType::Gue => write!(out, " --tun-port {} {}", tunnel.port, checksum_option(tunnel.checksum)),
                TunnelType::Gre => write!(out, " {}", checksum_option(tunnel.checksum)),
                _ => Ok(()),
            };
        }
        out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::model::{ConnCounts, DestConfig, Service, ServiceConfig, TunnelConfig};

    const INFO: Info = Info { version: 0x010201, conn_table_size: 4096 };

    fn v4(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
    }

    fn vip(last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
    }

    fn v6(last: u16) -> IpAddr {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last))
    }

    fn dest(addr: IpAddr, port: u16, forward: ForwardMethod, weight: u32) -> DestConfigBuilder {
        DestConfigBuilder {
            key: DestKey::new(addr, port),
            config: DestConfig { forward, ..DestConfig::masquerade(weight) },
        }
    }

    struct DestConfigBuilder {
        key: DestKey,
        config: DestConfig,
    }

    impl DestConfigBuilder {
        fn thresholds(mut self, upper: u32, lower: u32) -> Self {
            self.config.upper_threshold = upper;
            self.config.lower_threshold = lower;
            self
        }

        fn tunnel(mut self, kind: TunnelType, port: u16, checksum: TunnelChecksum) -> Self {
            self.config.tunnel = TunnelConfig { kind, port, checksum };
            self
        }
    }

    fn service(
        table: &mut Table,
        key: ServiceKey,
        scheduler: &str,
        edit: impl FnOnce(&mut ServiceConfig),
    ) -> ServiceKey {
        let mut config = ServiceConfig::new(key.family(), scheduler);
        edit(&mut config);
        table.insert_service(Service::new(key, config));
        key
    }

    fn add(table: &mut Table, key: ServiceKey, dest: DestConfigBuilder) {
        if let Some(entry) = table.services.get_mut(&key) {
            entry.dests.insert(dest.key, Destination::new(dest.key, dest.config));
        }
    }

    fn persistent(timeout: u32) -> impl FnOnce(&mut ServiceConfig) {
        move |c| {
            c.flags = c.flags.with(ServiceFlags::PERSISTENT, true);
            c.timeout = timeout;
        }
    }

    /// The table `testdata/capture.sh` builds with ipvsadm, as the kernel reports it.
    fn captured_table() -> Table {
        use ForwardMethod::{DirectRoute, Masquerade, Tunnel};
        let mut t = Table::default();
        let web = service(&mut t, ServiceKey::tcp(vip(1), 80), "wlc", |_| {});
        add(&mut t, web, dest(v4(1), 80, Masquerade, 1));
        add(&mut t, web, dest(v4(2), 8080, Masquerade, 3).thresholds(100, 10));
        add(&mut t, web, dest(v4(3), 80, DirectRoute, 0));
        let dns = service(&mut t, ServiceKey::udp(vip(1), 53), "rr", |c| {
            c.flags = c.flags.with(ServiceFlags::ONEPACKET, true);
        });
        add(&mut t, dns, dest(v4(4), 53, Masquerade, 2));
        let sh = service(&mut t, ServiceKey::tcp(vip(2), 443), "sh", |c| {
            persistent(300)(c);
            c.flags = c.flags.with(ServiceFlags::SCHED1 | ServiceFlags::SCHED2, true);
            c.netmask = Netmask::from_prefix(Family::V4, 24);
        });
        add(&mut t, sh, dest(v4(5), 443, DirectRoute, 1));
        service(&mut t, ServiceKey::tcp(vip(3), 0), "rr", persistent(600));
        service(&mut t, ServiceKey::udp(vip(4), 5060), "rr", |c| {
            persistent(60)(c);
            c.pe_name = Some("sip".to_owned());
        });
        service(&mut t, ServiceKey::tcp(vip(6), 80), "rr", |c| {
            c.flags = c.flags.with(ServiceFlags::SCHED1 | ServiceFlags::SCHED3, true);
        });
        let mh = service(&mut t, ServiceKey::tcp(v6(1), 80), "mh", |c| {
            persistent(120)(c);
            c.flags = c.flags.with(ServiceFlags::SCHED2, true);
            c.netmask = Netmask::V6Prefix(64);
        });
        add(&mut t, mh, dest(v6(0x10), 8080, Masquerade, 5));
        let mark = service(&mut t, ServiceKey::Fwmark { family: Family::V4, mark: 42 }, "rr", |_| {});
        add(&mut t, mark, dest(v4(6), 0, Tunnel, 1));
        add(&mut t, mark, dest(v4(7), 0, Tunnel, 1).tunnel(TunnelType::Gue, 6080, TunnelChecksum::RemoteChecksum));
        add(&mut t, mark, dest(v4(8), 0, Tunnel, 1).tunnel(TunnelType::Gre, 0, TunnelChecksum::Checksum));
        add(&mut t, mark, dest(v6(0x20), 0, Tunnel, 4));
        let mark6 = service(&mut t, ServiceKey::Fwmark { family: Family::V6, mark: 7 }, "lc", |_| {});
        add(&mut t, mark6, dest(v6(0x11), 0, DirectRoute, 1));
        let sctp =
            service(&mut t, ServiceKey::Addr { protocol: Protocol::Sctp, addr: vip(5), port: 3868 }, "rr", |_| {});
        add(&mut t, sctp, dest(v4(9), 3868, Masquerade, 1));
        t
    }

    fn listing(columns: Columns, exact: bool) -> String {
        render(&captured_table(), &INFO, &ListOptions { columns, exact })
    }

    #[test]
    fn list_matches_ipvsadm() {
        assert_eq!(listing(Columns::Default, false), include_str!("ipvsadm_format/testdata/ipvsadm_Ln.txt"));
    }

    #[test]
    fn stats_and_rate_match_ipvsadm() {
        assert_eq!(listing(Columns::Stats, false), include_str!("ipvsadm_format/testdata/ipvsadm_Ln_stats.txt"));
        assert_eq!(listing(Columns::Stats, true), include_str!("ipvsadm_format/testdata/ipvsadm_Ln_stats_exact.txt"));
        assert_eq!(listing(Columns::Rate, false), include_str!("ipvsadm_format/testdata/ipvsadm_Ln_rate.txt"));
    }

    #[test]
    fn thresholds_persistent_conn_and_tunnel_views_match_ipvsadm() {
        assert_eq!(
            listing(Columns::Thresholds, false),
            include_str!("ipvsadm_format/testdata/ipvsadm_Ln_thresholds.txt")
        );
        assert_eq!(
            listing(Columns::PersistentConn, false),
            include_str!("ipvsadm_format/testdata/ipvsadm_Ln_persistent_conn.txt")
        );
        assert_eq!(listing(Columns::TunInfo, false), include_str!("ipvsadm_format/testdata/ipvsadm_Ln_tun_info.txt"));
    }

    #[test]
    fn one_service_matches_ipvsadm() {
        let table = captured_table();
        let entry = &table.services[&ServiceKey::tcp(vip(1), 80)];
        let opts = ListOptions::default();
        assert_eq!(render_service(entry, &opts), include_str!("ipvsadm_format/testdata/ipvsadm_Ln_t19202180.txt"));
    }

    #[test]
    fn save_matches_ipvsadm() {
        assert_eq!(render_save(&captured_table()), include_str!("ipvsadm_format/testdata/ipvsadm_Sn.txt"));
    }

    /// A service whose counters cross each abbreviation boundary, and a destination with large rates.
    fn busy_table() -> Table {
        let mut table = Table::default();
        let key = ServiceKey::tcp(vip(1), 80);
        let mut service = Service::new(key, ServiceConfig::new(Family::V4, "rr"));
        service.stats = Some(Box::new(Stats {
            conns: 99_999_999,
            in_packets: 100_000_000,
            out_packets: 99_999_999_999,
            in_bytes: 123_456_789_012,
            out_bytes: 500_000_000_000_000,
            ..Stats::default()
        }));
        let entry = table.insert_service(service);
        let mut dest = Destination::new(DestKey::new(v4(1), 80), DestConfig::masquerade(1));
        dest.stats = Some(Box::new(Stats { cps: 123_456_789, in_bps: 2_000_000_000, ..Stats::default() }));
        dest.conns = ConnCounts { active: 12, inactive: 3, persistent: 7 };
        entry.dests.insert(dest.key, dest);
        table
    }

    #[test]
    fn large_counters_are_abbreviated_unless_exact() {
        let table = busy_table();
        let line = |exact| render(&table, &INFO, &ListOptions { columns: Columns::Stats, exact });
        assert_eq!(
            line(false).lines().nth(3),
            Some("TCP  192.0.2.1:80                 99999999  100000K   99999M     123G     500T")
        );
        assert_eq!(
            line(true).lines().nth(3),
            Some("TCP  192.0.2.1:80                 99999999 100000000 99999999999 123456789012 500000000000000")
        );
    }

    #[test]
    fn destination_rates_abbreviate_only_bytes() {
        let out = render(&busy_table(), &INFO, &ListOptions { columns: Columns::Rate, exact: false });
        assert_eq!(
            out.lines().nth(4),
            Some("  -> 10.0.0.1:80                  123456789        0        0    2000M        0")
        );
    }

    #[test]
    fn connection_counts_fill_their_columns() {
        let table = busy_table();
        let out = render(&table, &INFO, &ListOptions::default());
        assert_eq!(out.lines().nth(4), Some("  -> 10.0.0.1:80                  Masq    1      12         3         "));
        let out = render(&table, &INFO, &ListOptions { columns: Columns::PersistentConn, exact: false });
        assert_eq!(
            out.lines().nth(4),
            Some("  -> 10.0.0.1:80                  1         7           12         3         ")
        );
    }

    #[test]
    fn forwarding_methods_ipvsadm_cannot_name() {
        let mut table = Table::default();
        let key = service(&mut table, ServiceKey::tcp(vip(1), 80), "rr", |_| {});
        add(&mut table, key, dest(v4(1), 80, ForwardMethod::Bypass, 1));
        add(&mut table, key, dest(v4(2), 80, ForwardMethod::Other(6), 1));
        add(&mut table, key, dest(v4(3), 80, ForwardMethod::Local, 1));
        let out = render(&table, &INFO, &ListOptions::default());
        let forwards: Vec<&str> = out.lines().skip(4).filter_map(|l| l.split_whitespace().nth(2)).collect();
        assert_eq!(forwards, vec!["Bypass", "(null)", "Local"]);
        let save = render_save(&table);
        assert_eq!(
            save.lines().skip(1).collect::<Vec<_>>(),
            vec![
                "-a -t 192.0.2.1:80 -r 10.0.0.1:80 (null) -w 1",
                "-a -t 192.0.2.1:80 -r 10.0.0.2:80 (null) -w 1",
                "-a -t 192.0.2.1:80 -r 10.0.0.3:80 -g -w 1",
            ]
        );
    }

    #[test]
    fn unknown_protocols_keep_their_place() {
        let mut table = Table::default();
        service(&mut table, ServiceKey::Addr { protocol: Protocol::Other(33), addr: vip(1), port: 5 }, "rr", |_| {});
        service(&mut table, ServiceKey::tcp(vip(9), 1), "rr", |_| {});
        let out = render(&table, &INFO, &ListOptions::default());
        assert_eq!(out.lines().skip(3).collect::<Vec<_>>(), vec!["TCP  192.0.2.9:1 rr", "?    192.0.2.1:5 rr"]);
        assert_eq!(render_save(&table).lines().nth(1), Some("-A --xxx-service 192.0.2.1:5 -s rr"));
    }

    #[test]
    fn ipvsadm_option_precedence_picks_the_columns() {
        assert_eq!(Columns::from_flags(false, false, false, false, false), Columns::Default);
        assert_eq!(Columns::from_flags(true, true, true, true, true), Columns::Stats);
        assert_eq!(Columns::from_flags(false, true, true, false, true), Columns::Rate);
        assert_eq!(Columns::from_flags(false, false, true, true, true), Columns::Thresholds);
        assert_eq!(Columns::from_flags(false, false, false, true, true), Columns::PersistentConn);
        assert_eq!(Columns::from_flags(false, false, false, false, true), Columns::TunInfo);
    }

    #[test]
    fn an_empty_table_prints_the_headers_only() {
        let out =
            render(&Table::default(), &Info { version: 0x010201, conn_table_size: 1 << 20 }, &ListOptions::default());
        assert_eq!(
            out,
            "IP Virtual Server version 1.2.1 (size=1048576)\nProt LocalAddress:Port Scheduler Flags\n  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        );
        assert_eq!(render_save(&Table::default()), "");
    }
}
