//! `ipvsadm -Sn` rules import (`ipvs-reconciler import ipvsadm [FILE|-]`).
//!
//! The input is what `ipvsadm -Sn` (or `ipvsadm-save -n`) prints and `ipvsadm -R` reads: one command per line,
//! `-A` for a service and `-a` for a destination, short or long option names, IPv6 addresses in brackets. The
//! rules are read into a [`Table`] with ipvsadm's defaults (scheduler `wlc`, `-p` alone 300 s, forwarding `-g`,
//! weight 1, the destination port the service's, and the service's port for `-g`/`-i` destinations), then written
//! as objects by [`from_table`], the export `dump -o yaml` uses: a service the API cannot express comes back as
//! one not-mapped note at its `-A` line.
//!
//! Beside services, `ipvsadm -R` takes `--set TCP TCPFIN UDP` (connection timeouts, 0 leaves one unchanged) and
//! `--start-daemon master|backup --mcast-interface IF ...`: both become director settings. A `-C` (clear) before
//! the first service is skipped with a note. Every other command (`-E`, `-e`, `-D`, `-d`, `-Z`, `--stop-daemon`,
//! ...) is an error: the file is not a set of rules.
//!
//! The grammar is ipvsadm 1.31's (`parse_options`, `process_options`): `-6` only with `-f`, one command, service,
//! forwarding method per line, each option at most once; where ipvsadm is stricter than the kernel (weights above
//! 65535), the kernel's limit is taken, so that any table `render_save` writes reads back.
//!
//! Names are never resolved: `ipvsadm -S` without `-n` writes host and service names, and such an input is refused
//! as a whole. `ipvsadm -S` does not write destination thresholds (`-x`/`-y`); an input without any is imported
//! with a note saying so.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use super::{ImportError, Imported, Note, Place};
use crate::api::export::from_table;
use crate::director::{DirectorConfig, SyncDaemonConfig};
use crate::model::{
    DaemonState, DestConfig, DestKey, Destination, Family, ForwardMethod, Netmask, Protocol, Service, ServiceConfig,
    ServiceEntry, ServiceFlags, ServiceKey, Table, TunnelChecksum, TunnelConfig, TunnelType,
};

/// ipvsadm's scheduler when `-s` is not given.
const DEFAULT_SCHEDULER: &str = "wlc";
/// ipvsadm's persistence timeout for a bare `-p`.
const DEFAULT_PERSISTENCE: u32 = 300;
/// The longest persistence timeout ipvsadm takes (31 days).
const MAX_PERSISTENCE: u32 = 31 * 86_400;
/// The largest connection timeout the kernel takes (`INT_MAX / HZ` with HZ 1000).
const MAX_CONN_TIMEOUT: u32 = 2_147_483;
/// ipvsadm's sync interface when `--mcast-interface` is not given.
const DEFAULT_MCAST_IFN: &str = "eth0";
/// Weights and thresholds are the kernel's `int` (ipvsadm itself takes weights up to 65535 only; a table another
/// tool wrote may hold more, and `render_save` writes them).
const MAX_INT: u32 = i32::MAX as u32;

/// Converts the rules in `text`, read from `source` (a path, or `-` for standard input), into objects.
pub fn import(text: &str, source: &Path) -> Result<Imported, ImportError> {
    Ok(read(text, source)?.finish())
}

/// Reads every rule into the table and the director settings.
fn read<'a>(text: &str, source: &'a Path) -> Result<Reader<'a>, ImportError> {
    let mut reader = Reader {
        source,
        table: Table::default(),
        order: Vec::new(),
        notes: Vec::new(),
        director: None,
        set_line: None,
        dests: 0,
        thresholds_given: false,
    };
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        reader.line(index + 1, trimmed)?;
    }
    Ok(reader)
}

/// What a line's problem is: a syntax error at the line, or a reason to refuse the whole input.
enum Problem {
    Syntax(String),
    Name(String),
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem::Syntax(message)
    }
}

type Parsed<T> = Result<T, Problem>;

struct Reader<'a> {
    source: &'a Path,
    table: Table,
    /// Services in input order, with the line of their `-A`.
    order: Vec<(ServiceKey, usize)>,
    notes: Vec<Note>,
    director: Option<DirectorConfig>,
    /// Where `--set` was last given.
    set_line: Option<usize>,
    dests: usize,
    thresholds_given: bool,
}

impl Reader<'_> {
    fn place(&self, line: usize) -> Place {
        Place::new(self.source, line)
    }

    fn line(&mut self, number: usize, text: &str) -> Result<(), ImportError> {
        let result = tokenize(text).and_then(|line| self.command(number, line));
        result.map_err(|problem| match problem {
            Problem::Syntax(message) => ImportError::Syntax { place: self.place(number), message },
            Problem::Name(name) => ImportError::Refused(format!(
                "{}: line {number}: `{name}` is a name, not an address: save the rules with `ipvsadm -Sn` (numeric)",
                self.source.display()
            )),
        })
    }

    fn command(&mut self, number: usize, line: Line) -> Parsed<()> {
        let Some(command) = line.command.clone() else {
            return Err(Problem::Syntax("no command (-A, -a, --set, --start-daemon)".to_owned()));
        };
        match command.opt {
            Opt::AddService => self.add_service(number, &line),
            Opt::AddServer => self.add_server(number, &line),
            Opt::Set => self.set(number, &line),
            Opt::StartDaemon => self.start_daemon(number, &line, &command),
            Opt::Clear if self.order.is_empty() => {
                line.allow(&[])?;
                self.notes.push(Note::adjusted(
                    Some(self.place(number)),
                    "`-C` (clear the table) skipped: the import declares the services below, and applying them \
                     leaves other services alone",
                ));
                Ok(())
            }
            Opt::Clear => Err(Problem::Syntax(
                "`-C` (clear the table) after services: the rules above it would be lost; it may only come first"
                    .to_owned(),
            )),
            _ => Err(Problem::Syntax(format!(
                "`{}` is not part of saved rules: only -A, -a, --set, --start-daemon and a leading -C are imported",
                command.written
            ))),
        }
    }

    fn add_service(&mut self, number: usize, line: &Line) -> Parsed<()> {
        line.allow(&[
            Opt::Tcp,
            Opt::Udp,
            Opt::Sctp,
            Opt::Fwmark,
            Opt::Ipv6,
            Opt::Scheduler,
            Opt::Persistent,
            Opt::Netmask,
            Opt::Pe,
            Opt::Ops,
            Opt::SchedFlags,
        ])?;
        let key = service_key(line)?;
        let family = key.family();
        let scheduler = match line.value(Opt::Scheduler) {
            Some("") => return Err(Problem::Syntax("empty scheduler name".to_owned())),
            Some(name) => name.to_owned(),
            None => {
                self.notes.push(Note::adjusted(
                    Some(self.place(number)),
                    format!("{key}: no scheduler (-s): ipvsadm's default `{DEFAULT_SCHEDULER}` written"),
                ));
                DEFAULT_SCHEDULER.to_owned()
            }
        };
        let mut config = ServiceConfig::new(family, &scheduler);
        if let Some(given) = line.get(Opt::Persistent) {
            config.flags = config.flags.with(ServiceFlags::PERSISTENT, true);
            config.timeout = match &given.value {
                Some(value) => number_in(value, 1, MAX_PERSISTENCE, "persistence timeout")?,
                None => {
                    self.notes.push(Note::adjusted(
                        Some(self.place(number)),
                        format!("{key}: `-p` without a timeout: ipvsadm's default {DEFAULT_PERSISTENCE} s written"),
                    ));
                    DEFAULT_PERSISTENCE
                }
            };
        }
        if let Some(mask) = line.value(Opt::Netmask) {
            config.netmask = netmask(mask, family)?;
        }
        if let Some(pe) = line.value(Opt::Pe) {
            if pe.is_empty() || pe.len() > 15 {
                return Err(Problem::Syntax(format!("persistence engine `{pe}`: 1 to 15 characters")));
            }
            config.pe_name = Some(pe.to_owned());
        }
        if line.has(Opt::Ops) {
            if matches!(key, ServiceKey::Addr { protocol, .. } if protocol != Protocol::Udp) {
                return Err(Problem::Syntax(
                    "one-packet scheduling (-o) is only for UDP and firewall-mark services".to_owned(),
                ));
            }
            config.flags = config.flags.with(ServiceFlags::ONEPACKET, true);
        }
        if let Some(flags) = line.value(Opt::SchedFlags) {
            let explicit = line.value(Opt::Scheduler);
            config.flags = ServiceFlags(config.flags.0 | sched_flags(flags, explicit)?);
        }
        if matches!(key, ServiceKey::Addr { port: 0, .. }) && !config.flags.has(ServiceFlags::PERSISTENT) {
            return Err(Problem::Syntax("port 0 (every port) for a service without persistence (-p)".to_owned()));
        }
        if let Some((_, first)) = self.order.iter().find(|(k, _)| *k == key) {
            return Err(Problem::Syntax(format!("{key} is added twice (first at line {first})")));
        }
        self.table.services.insert(key, ServiceEntry::new(Service::new(key, config)));
        self.order.push((key, number));
        Ok(())
    }

    fn add_server(&mut self, number: usize, line: &Line) -> Parsed<()> {
        line.allow(&[
            Opt::Tcp,
            Opt::Udp,
            Opt::Sctp,
            Opt::Fwmark,
            Opt::Ipv6,
            Opt::RealServer,
            Opt::Masquerading,
            Opt::Gatewaying,
            Opt::Ipip,
            Opt::Weight,
            Opt::UThreshold,
            Opt::LThreshold,
            Opt::TunType,
            Opt::TunPort,
            Opt::TunNocsum,
            Opt::TunCsum,
            Opt::TunRemcsum,
        ])?;
        let key = service_key(line)?;
        let Some(real) = line.value(Opt::RealServer) else {
            return Err(Problem::Syntax("`-a` without a real server (-r ADDR[:PORT])".to_owned()));
        };
        let (addr, port) = addr_port(real)?;
        let Some(entry) = self.table.services.get_mut(&key) else {
            return Err(Problem::Syntax(format!(
                "a destination of {key}, which no `-A` line above adds (ipvsadm -R fails here too)"
            )));
        };
        let forward = if line.has(Opt::Masquerading) {
            ForwardMethod::Masquerade
        } else if line.has(Opt::Ipip) {
            ForwardMethod::Tunnel
        } else {
            if !line.has(Opt::Gatewaying) {
                self.notes.push(Note::adjusted(
                    Some(Place::new(self.source, number)),
                    format!("{key}: destination {real} without -g, -i or -m: ipvsadm's default -g (direct routing)"),
                ));
            }
            ForwardMethod::DirectRoute
        };
        let service_port = key.port();
        let port = match (key, forward, port) {
            (ServiceKey::Addr { .. }, ForwardMethod::DirectRoute | ForwardMethod::Tunnel, Some(port))
                if port != service_port =>
            {
                self.notes.push(Note::adjusted(
                    Some(Place::new(self.source, number)),
                    format!(
                        "{key}: destination {real}: ipvsadm uses the service's port {service_port} with -g and -i, \
                         not {port}"
                    ),
                ));
                service_port
            }
            (_, _, Some(port)) => port,
            (_, _, None) => service_port,
        };
        if Family::of(&addr) != key.family() && forward != ForwardMethod::Tunnel {
            return Err(Problem::Syntax(format!(
                "destination {real} is not of the service's family ({}); only tunnelling (-i) mixes families",
                key.family()
            )));
        }
        let weight = line.value(Opt::Weight).map(|w| number_in(w, 0, MAX_INT, "weight")).transpose()?.unwrap_or(1);
        let upper = line.value(Opt::UThreshold).map(|x| number_in(x, 0, MAX_INT, "upper threshold")).transpose()?;
        let lower = line.value(Opt::LThreshold).map(|y| number_in(y, 0, MAX_INT, "lower threshold")).transpose()?;
        self.thresholds_given |= upper.is_some() || lower.is_some();
        let (upper, lower) = (upper.unwrap_or(0), lower.unwrap_or(0));
        if lower > upper {
            return Err(Problem::Syntax(format!("lower threshold {lower} above upper threshold {upper}")));
        }
        let tunnel = tunnel(line, forward)?;
        let dest_key = DestKey::new(addr, port);
        if entry.dests.contains_key(&dest_key) {
            return Err(Problem::Syntax(format!("{key}: destination {dest_key} is added twice")));
        }
        let config = DestConfig { forward, weight, upper_threshold: upper, lower_threshold: lower, tunnel };
        entry.dests.insert(dest_key, Destination::new(dest_key, config));
        self.dests += 1;
        Ok(())
    }

    /// `--set TCP TCPFIN UDP`: 0 leaves a timeout as it is.
    fn set(&mut self, number: usize, line: &Line) -> Parsed<()> {
        line.allow(&[])?;
        let [tcp, tcp_fin, udp] = line.args.as_slice() else {
            return Err(Problem::Syntax(format!(
                "`--set` takes three timeouts (TCP TCPFIN UDP, seconds), not {}",
                line.args.len()
            )));
        };
        let mut values = [0; 3];
        for (value, (text, what)) in
            values.iter_mut().zip([(tcp, "TCP timeout"), (tcp_fin, "TCP FIN timeout"), (udp, "UDP timeout")])
        {
            *value = number_in(text, 0, MAX_CONN_TIMEOUT, what)?;
        }
        if let Some(first) = self.set_line {
            self.notes.push(Note::adjusted(
                Some(self.place(number)),
                format!("`--set` again: its non-zero timeouts replace those of line {first}"),
            ));
        }
        self.set_line = Some(number);
        let timeouts = &mut self.director.get_or_insert_with(DirectorConfig::default).timeouts;
        let some = |v: u32| (v != 0).then_some(v);
        timeouts.tcp = some(values[0]).or(timeouts.tcp);
        timeouts.tcp_fin = some(values[1]).or(timeouts.tcp_fin);
        timeouts.udp = some(values[2]).or(timeouts.udp);
        Ok(())
    }

    /// `--start-daemon master|backup --mcast-interface IF [--syncid N] [--sync-maxlen N] [--mcast-group ADDR]
    /// [--mcast-port N] [--mcast-ttl N]`.
    fn start_daemon(&mut self, number: usize, line: &Line, command: &Given) -> Parsed<()> {
        line.allow(&[
            Opt::McastInterface,
            Opt::SyncId,
            Opt::SyncMaxlen,
            Opt::McastGroup,
            Opt::McastPort,
            Opt::McastTtl,
        ])?;
        let state = match command.value.as_deref() {
            Some("master") => DaemonState::Master,
            Some("backup") => DaemonState::Backup,
            other => {
                return Err(Problem::Syntax(format!(
                    "`--start-daemon` takes master or backup, not `{}`",
                    other.unwrap_or("")
                )));
            }
        };
        let interface = match line.value(Opt::McastInterface) {
            Some(interface) => interface,
            None => {
                self.notes.push(Note::adjusted(
                    Some(self.place(number)),
                    format!("`--start-daemon` without `--mcast-interface`: ipvsadm's default `{DEFAULT_MCAST_IFN}`"),
                ));
                DEFAULT_MCAST_IFN
            }
        };
        if interface.is_empty() || interface.len() > 15 {
            return Err(Problem::Syntax(format!("interface `{interface}`: 1 to 15 characters")));
        }
        let sync_id = line.value(Opt::SyncId).map(|v| number_in(v, 0, 255, "sync id")).transpose()?.unwrap_or(0);
        let max_length = line
            .value(Opt::SyncMaxlen)
            .map(|v| number_in(v, 1, u32::from(u16::MAX), "sync message length"))
            .transpose()?
            .map(|v| v as u16);
        let group = line
            .value(Opt::McastGroup)
            .map(|v| match v.parse::<IpAddr>() {
                Ok(addr) if addr.is_multicast() => Ok(addr),
                _ => Err(Problem::Syntax(format!("multicast group `{v}` is not a multicast address"))),
            })
            .transpose()?;
        let port = line
            .value(Opt::McastPort)
            .map(|v| number_in(v, 1, u32::from(u16::MAX), "multicast port"))
            .transpose()?
            .map(|v| v as u16);
        let ttl =
            line.value(Opt::McastTtl).map(|v| number_in(v, 1, 255, "multicast TTL")).transpose()?.map(|v| v as u8);
        let director = self.director.get_or_insert_with(DirectorConfig::default);
        if director.sync_daemons.iter().any(|d| d.state == state) {
            return Err(Problem::Syntax(format!("a second {state:?} sync daemon")));
        }
        director.sync_daemons.push(SyncDaemonConfig {
            state,
            interface: interface.to_owned(),
            sync_id,
            group,
            port,
            ttl,
            max_length,
        });
        Ok(())
    }

    fn finish(self) -> Imported {
        let mut imported = Imported { objects: Vec::new(), director: self.director, notes: self.notes };
        if self.dests > 0 && !self.thresholds_given {
            imported.notes.push(Note::adjusted(
                None,
                "`ipvsadm -S` does not save destination thresholds (-x/-y) and the input gives none: the backends \
                 have no upperThreshold/lowerThreshold; `ipvsadm -Ln --thresholds` shows the kernel's, to add by hand",
            ));
        }
        let mut table = self.table;
        for (key, line) in self.order {
            let Some(entry) = table.services.remove(&key) else { continue };
            let one = Table { services: BTreeMap::from([(key, entry)]) };
            let mut export = from_table(&one);
            imported.objects.append(&mut export.objects);
            for skipped in export.skipped {
                imported.notes.push(Note::not_mapped(Some(Place::new(self.source, line)), skipped.to_string()));
            }
        }
        // In the order of the input (stable: a line's notes keep theirs); notes of no one place last.
        imported.notes.sort_by_key(|note| note.place.as_ref().map_or(usize::MAX, |place| place.line));
        imported
    }
}

/// The service of an `-A` or `-a` line.
fn service_key(line: &Line) -> Parsed<ServiceKey> {
    let mut kinds = [Opt::Tcp, Opt::Udp, Opt::Sctp, Opt::Fwmark].into_iter().filter_map(|opt| line.get(opt));
    let (Some(given), None) = (kinds.next(), kinds.next()) else {
        return Err(Problem::Syntax(
            "one service is needed: -t, -u or --sctp-service ADDR:PORT, or -f MARK".to_owned(),
        ));
    };
    let value = given.value.as_deref().unwrap_or("");
    let ipv6 = line.has(Opt::Ipv6);
    let protocol = match given.opt {
        Opt::Tcp => Protocol::Tcp,
        Opt::Udp => Protocol::Udp,
        Opt::Sctp => Protocol::Sctp,
        _ => {
            let mark = number_in(value, 1, u32::MAX, "firewall mark")?;
            let family = if ipv6 { Family::V6 } else { Family::V4 };
            return Ok(ServiceKey::Fwmark { family, mark });
        }
    };
    let (addr, port) = addr_port(value)?;
    if ipv6 {
        return Err(Problem::Syntax("-6 is only for firewall-mark services (-f MARK -6)".to_owned()));
    }
    Ok(ServiceKey::Addr { protocol, addr, port: port.unwrap_or(0) })
}

/// `192.0.2.1:80`, `192.0.2.1`, `[2001:db8::1]:80`, `[2001:db8::1]`, `2001:db8::1`; names are refused.
fn addr_port(text: &str) -> Parsed<(IpAddr, Option<u16>)> {
    let bad = || Problem::Syntax(format!("`{text}` is not ADDRESS[:PORT]"));
    if let Ok(addr) = text.parse::<IpAddr>() {
        return Ok((addr, None));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let addr = host.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or_else(bad)?),
        };
        (Ok(IpAddr::V6(addr)), port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => (host.parse::<Ipv4Addr>().map(IpAddr::V4), Some(port)),
            Some(_) => return Err(bad()),
            None => (text.parse::<Ipv4Addr>().map(IpAddr::V4), None),
        }
    };
    let host_name = host.is_err();
    let port = match port {
        None => None,
        Some(port) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            Some(port.parse::<u16>().map_err(|_| Problem::Syntax(format!("port {port} is above 65535")))?)
        }
        Some(port) if port.starts_with(|c: char| c.is_ascii_alphabetic()) && is_name(port) => {
            return Err(Problem::Name(text.to_owned()));
        }
        Some(_) => return Err(bad()),
    };
    match host {
        Ok(addr) => Ok((addr, port)),
        Err(_) if host_name && is_name(text.rsplit_once(':').map_or(text, |(h, _)| h)) => {
            Err(Problem::Name(text.to_owned()))
        }
        Err(_) => Err(bad()),
    }
}

/// Whether `text` looks like a host or service name (which `ipvsadm -S` without `-n` prints).
fn is_name(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.bytes().any(|b| b.is_ascii_alphabetic())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// A decimal number in `min..=max`.
fn number_in(text: &str, min: u32, max: u32, what: &str) -> Parsed<u32> {
    match text.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) && !text.starts_with('+') => Ok(n),
        _ => Err(Problem::Syntax(format!("{what} `{text}` is not a number in {min}-{max}"))),
    }
}

/// `-M`: a dotted mask for IPv4 services, a prefix length for IPv6 ones.
fn netmask(text: &str, family: Family) -> Parsed<Netmask> {
    match family {
        Family::V4 => text
            .parse::<Ipv4Addr>()
            .map(Netmask::V4)
            .map_err(|_| Problem::Syntax(format!("netmask `{text}` is not a dotted IPv4 mask (255.255.255.0)"))),
        Family::V6 => number_in(text, 1, 128, "IPv6 netmask (prefix length)").map(|len| Netmask::V6Prefix(len as u8)),
    }
}

/// `-b sh-fallback,sh-port`: the flag bits; a flag of another scheduler than an explicit `-s` is an error.
fn sched_flags(text: &str, scheduler: Option<&str>) -> Parsed<u32> {
    let mut bits = 0;
    for flag in text.split(',') {
        let (bit, owner) = match flag {
            "flag-1" => (ServiceFlags::SCHED1, None),
            "flag-2" => (ServiceFlags::SCHED2, None),
            "flag-3" => (ServiceFlags::SCHED3, None),
            "sh-fallback" => (ServiceFlags::SCHED1, Some("sh")),
            "sh-port" => (ServiceFlags::SCHED2, Some("sh")),
            "mh-fallback" => (ServiceFlags::SCHED1, Some("mh")),
            "mh-port" => (ServiceFlags::SCHED2, Some("mh")),
            _ => return Err(Problem::Syntax(format!("unknown scheduler flag `{flag}`"))),
        };
        if let (Some(owner), Some(scheduler)) = (owner, scheduler)
            && owner != scheduler
        {
            return Err(Problem::Syntax(format!("scheduler flag `{flag}` with scheduler `{scheduler}`")));
        }
        bits |= bit;
    }
    Ok(bits)
}

/// The tunnel options of a destination (only with `-i`).
fn tunnel(line: &Line, forward: ForwardMethod) -> Parsed<TunnelConfig> {
    let options = [Opt::TunType, Opt::TunPort, Opt::TunNocsum, Opt::TunCsum, Opt::TunRemcsum];
    if forward != ForwardMethod::Tunnel {
        if let Some(given) = options.iter().find_map(|opt| line.get(*opt)) {
            return Err(Problem::Syntax(format!("`{}` without tunnelling (-i)", given.written)));
        }
        return Ok(TunnelConfig::default());
    }
    let kind = match line.value(Opt::TunType) {
        None | Some("ipip") => TunnelType::Ipip,
        Some("gue") => TunnelType::Gue,
        Some("gre") => TunnelType::Gre,
        Some(other) => return Err(Problem::Syntax(format!("tunnel type `{other}`: ipip, gue or gre"))),
    };
    let port = line.value(Opt::TunPort).map(|p| number_in(p, 1, u32::from(u16::MAX), "tunnel port")).transpose()?;
    let checksum = if line.has(Opt::TunCsum) {
        TunnelChecksum::Checksum
    } else if line.has(Opt::TunRemcsum) {
        TunnelChecksum::RemoteChecksum
    } else {
        TunnelChecksum::None
    };
    let port = match (kind, port) {
        (TunnelType::Gue, Some(port)) => port as u16,
        (TunnelType::Gue, None) => return Err(Problem::Syntax("a GUE tunnel needs `--tun-port`".to_owned())),
        (_, Some(_)) => return Err(Problem::Syntax("`--tun-port` is only for GUE tunnels".to_owned())),
        (_, None) => 0,
    };
    match (kind, checksum) {
        (TunnelType::Ipip, TunnelChecksum::Checksum | TunnelChecksum::RemoteChecksum) => {
            Err(Problem::Syntax("tunnel checksum options are only for GUE and GRE tunnels".to_owned()))
        }
        (TunnelType::Gre, TunnelChecksum::RemoteChecksum) => {
            Err(Problem::Syntax("`--tun-remcsum` is only for GUE tunnels".to_owned()))
        }
        _ => Ok(TunnelConfig { kind, port, checksum }),
    }
}

// ---- the command line of one rule ----

/// ipvsadm's options (1.31), commands first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opt {
    AddService,
    EditService,
    DeleteService,
    Clear,
    List,
    Zero,
    AddServer,
    EditServer,
    DeleteServer,
    Set,
    Help,
    Version,
    Restore,
    Save,
    StartDaemon,
    StopDaemon,
    Tcp,
    Udp,
    Sctp,
    Fwmark,
    Scheduler,
    Persistent,
    Netmask,
    RealServer,
    Masquerading,
    Ipip,
    Gatewaying,
    Weight,
    UThreshold,
    LThreshold,
    Numeric,
    Connection,
    McastInterface,
    SyncId,
    Timeout,
    Daemon,
    Stats,
    Rate,
    Thresholds,
    PersistentConn,
    TunInfo,
    NoSort,
    Sort,
    Exact,
    Ipv6,
    Ops,
    Pe,
    SchedFlags,
    TunType,
    TunPort,
    TunNocsum,
    TunCsum,
    TunRemcsum,
    SyncMaxlen,
    McastGroup,
    McastPort,
    McastTtl,
}

/// Whether an option takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arg {
    No,
    Required,
    /// `-p [TIMEOUT]`: the next word when it is not an option.
    Optional,
}

use Arg::{No, Optional, Required};

/// Short name, long name, value, option.
const OPTIONS: &[(Option<char>, &str, Arg, Opt)] = &[
    (Some('A'), "add-service", No, Opt::AddService),
    (Some('E'), "edit-service", No, Opt::EditService),
    (Some('D'), "delete-service", No, Opt::DeleteService),
    (Some('C'), "clear", No, Opt::Clear),
    (Some('L'), "list", No, Opt::List),
    (Some('l'), "list", No, Opt::List),
    (Some('Z'), "zero", No, Opt::Zero),
    (Some('a'), "add-server", No, Opt::AddServer),
    (Some('e'), "edit-server", No, Opt::EditServer),
    (Some('d'), "delete-server", No, Opt::DeleteServer),
    (None, "set", No, Opt::Set),
    (Some('h'), "help", No, Opt::Help),
    (Some('v'), "version", No, Opt::Version),
    (Some('R'), "restore", No, Opt::Restore),
    (Some('S'), "save", No, Opt::Save),
    (None, "start-daemon", Required, Opt::StartDaemon),
    (None, "stop-daemon", Required, Opt::StopDaemon),
    (Some('t'), "tcp-service", Required, Opt::Tcp),
    (Some('u'), "udp-service", Required, Opt::Udp),
    (None, "sctp-service", Required, Opt::Sctp),
    (Some('f'), "fwmark-service", Required, Opt::Fwmark),
    (Some('s'), "scheduler", Required, Opt::Scheduler),
    (Some('p'), "persistent", Optional, Opt::Persistent),
    (Some('M'), "netmask", Required, Opt::Netmask),
    (Some('r'), "real-server", Required, Opt::RealServer),
    (Some('m'), "masquerading", No, Opt::Masquerading),
    (Some('i'), "ipip", No, Opt::Ipip),
    (Some('g'), "gatewaying", No, Opt::Gatewaying),
    (Some('w'), "weight", Required, Opt::Weight),
    (Some('x'), "u-threshold", Required, Opt::UThreshold),
    (Some('y'), "l-threshold", Required, Opt::LThreshold),
    (Some('n'), "numeric", No, Opt::Numeric),
    (Some('c'), "connection", No, Opt::Connection),
    (None, "mcast-interface", Required, Opt::McastInterface),
    (None, "syncid", Required, Opt::SyncId),
    (None, "timeout", No, Opt::Timeout),
    (None, "daemon", No, Opt::Daemon),
    (None, "stats", No, Opt::Stats),
    (None, "rate", No, Opt::Rate),
    (None, "thresholds", No, Opt::Thresholds),
    (None, "persistent-conn", No, Opt::PersistentConn),
    (None, "tun-info", No, Opt::TunInfo),
    (None, "nosort", No, Opt::NoSort),
    (None, "sort", No, Opt::Sort),
    (None, "exact", No, Opt::Exact),
    (Some('6'), "ipv6", No, Opt::Ipv6),
    (Some('o'), "ops", No, Opt::Ops),
    (None, "pe", Required, Opt::Pe),
    (Some('b'), "sched-flags", Required, Opt::SchedFlags),
    (None, "tun-type", Required, Opt::TunType),
    (None, "tun-port", Required, Opt::TunPort),
    (None, "tun-nocsum", No, Opt::TunNocsum),
    (None, "tun-csum", No, Opt::TunCsum),
    (None, "tun-remcsum", No, Opt::TunRemcsum),
    (None, "sync-maxlen", Required, Opt::SyncMaxlen),
    (None, "mcast-group", Required, Opt::McastGroup),
    (None, "mcast-port", Required, Opt::McastPort),
    (None, "mcast-ttl", Required, Opt::McastTtl),
];

/// Options ipvsadm counts as one (`multiple ... options specified`): the command, the service, the forwarding
/// method, the tunnel checksum mode.
fn group(opt: Opt) -> Option<&'static str> {
    use Opt::*;
    match opt {
        AddService | EditService | DeleteService | Clear | List | Zero | AddServer | EditServer | DeleteServer
        | Set | Help | Version | Restore | Save | StartDaemon | StopDaemon => Some("commands"),
        Tcp | Udp | Sctp | Fwmark => Some("services"),
        Masquerading | Ipip | Gatewaying => Some("forwarding methods"),
        TunNocsum | TunCsum | TunRemcsum => Some("tunnel checksum modes"),
        _ => None,
    }
}

fn is_command(opt: Opt) -> bool {
    group(opt) == Some("commands")
}

/// One option as written.
#[derive(Debug, Clone)]
struct Given {
    opt: Opt,
    /// As written (`-w`, `--weight`), for messages.
    written: String,
    value: Option<String>,
}

/// One rule: its command, its options, and its other words.
#[derive(Debug, Default)]
struct Line {
    command: Option<Given>,
    options: Vec<Given>,
    args: Vec<String>,
}

impl Line {
    fn get(&self, opt: Opt) -> Option<&Given> {
        self.options.iter().find(|given| given.opt == opt)
    }

    fn has(&self, opt: Opt) -> bool {
        self.get(opt).is_some()
    }

    fn value(&self, opt: Opt) -> Option<&str> {
        self.get(opt).and_then(|given| given.value.as_deref())
    }

    /// Refuses options the command does not take, and words after the options (but `--set`'s).
    fn allow(&self, allowed: &[Opt]) -> Parsed<()> {
        let command = self.command.as_ref().map_or("", |c| c.written.as_str());
        if let Some(given) = self.options.iter().find(|given| !allowed.contains(&given.opt)) {
            return Err(Problem::Syntax(format!("`{}` does not apply to `{command}`", given.written)));
        }
        if !self.args.is_empty() && !matches!(self.command.as_ref().map(|c| c.opt), Some(Opt::Set)) {
            return Err(Problem::Syntax(format!("unexpected `{}`", self.args.join(" "))));
        }
        Ok(())
    }

    fn push(&mut self, given: Given) -> Parsed<()> {
        let clash = |other: &Given| {
            other.opt == given.opt || (group(given.opt).is_some() && group(other.opt) == group(given.opt))
        };
        if let Some(other) = self.command.iter().chain(&self.options).find(|other| clash(other)) {
            return Err(Problem::Syntax(match group(given.opt) {
                Some(what) if other.opt != given.opt => {
                    format!("`{}` and `{}`: two {what} on one line", other.written, given.written)
                }
                _ => format!("`{}` given twice", given.written),
            }));
        }
        if is_command(given.opt) {
            self.command = Some(given);
        } else {
            self.options.push(given);
        }
        Ok(())
    }
}

/// Splits a rule into its command, options and words, the way ipvsadm's option parser (popt) does: `--name
/// VALUE`, `--name=VALUE`, `-x VALUE`, `-xVALUE`, grouped short flags (`-6o`).
fn tokenize(text: &str) -> Parsed<Line> {
    let mut line = Line::default();
    let mut words = text.split_whitespace().peekable();
    // A shell-style `ipvsadm -A ...` line is the same rule.
    if words.peek() == Some(&"ipvsadm") {
        words.next();
    }
    while let Some(word) = words.next() {
        if let Some(long) = word.strip_prefix("--") {
            let (name, attached) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let Some(&(_, _, arg, opt)) = OPTIONS.iter().find(|(_, n, _, _)| *n == name) else {
                return Err(Problem::Syntax(format!("unknown option `--{name}`")));
            };
            let written = format!("--{name}");
            let value = take_value(arg, attached, &mut words, &written)?;
            line.push(Given { opt, written, value })?;
        } else if let Some(shorts) = word.strip_prefix('-').filter(|s| !s.is_empty()) {
            for (at, c) in shorts.char_indices() {
                let Some(&(_, _, arg, opt)) = OPTIONS.iter().find(|(s, _, _, _)| *s == Some(c)) else {
                    return Err(Problem::Syntax(format!("unknown option `-{c}`")));
                };
                let written = format!("-{c}");
                let rest = &shorts[at + c.len_utf8()..];
                if arg == No {
                    line.push(Given { opt, written, value: None })?;
                    continue;
                }
                let attached = (!rest.is_empty()).then(|| rest.to_owned());
                let value = take_value(arg, attached, &mut words, &written)?;
                line.push(Given { opt, written, value })?;
                break;
            }
        } else {
            line.args.push(word.to_owned());
        }
    }
    Ok(line)
}

fn take_value<'a>(
    arg: Arg,
    attached: Option<String>,
    words: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    written: &str,
) -> Parsed<Option<String>> {
    match (arg, attached) {
        (No, Some(_)) => Err(Problem::Syntax(format!("`{written}` takes no value"))),
        (No, None) => Ok(None),
        (_, Some(value)) => Ok(Some(value)),
        (Optional, None) => Ok(words.next_if(|w| !w.starts_with('-')).map(str::to_owned)),
        (Required, None) => match words.next_if(|w| !w.starts_with('-') || w.len() == 1) {
            Some(value) => Ok(Some(value.to_owned())),
            None => Err(Problem::Syntax(format!("`{written}` needs a value"))),
        },
    }
}

#[cfg(test)]
mod tests;
