//! `virtual_server`, `virtual_server_group`, `real_server` and `sorry_server` read into keepalived's own terms
//! (`check/check_parser.c`, `check/check_data.c` of 2.2.7), before anything is mapped: what is set where, and what
//! is left to keepalived's defaults.

use std::net::IpAddr;

use super::checkers::{self, Checker};
use super::parse::Node;
use super::values::{self, error, word};
use crate::api::v1alpha1::{AddressFamily, Forwarding, ForwardingMethod, Protocol, Tunnel, TunnelChecksum, TunnelType};
use crate::import::{ImportError, Note, Place};

/// Settings a virtual server gives its real servers and a real server its checkers, when they do not set their own
/// (`validate_check_config` in `check_data.c` hands them down).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inherited {
    /// `alpha`: start as failed.
    pub alpha: Option<bool>,
    /// `inhibit_on_failure`.
    pub inhibit: Option<bool>,
    /// `retry`.
    pub retry: Option<u64>,
    /// `delay_before_retry`, microseconds, and where.
    pub delay_before_retry: Option<(u64, Place)>,
    /// `warmup`, microseconds, and where.
    pub warmup: Option<(u64, Place)>,
    /// `connect_timeout`, microseconds.
    pub connect_timeout: Option<u64>,
    /// `delay_loop`, microseconds.
    pub delay_loop: Option<u64>,
    /// `virtualhost` (the HTTP checkers' Host).
    pub virtualhost: Option<String>,
}

impl Inherited {
    /// Reads one of the inherited keywords; false when `node` is none of them.
    pub fn read(&mut self, node: &Node) -> Result<bool, ImportError> {
        match node.keyword() {
            "alpha" => self.alpha = Some(values::flag(node)?),
            "inhibit_on_failure" => self.inhibit = Some(values::flag(node)?),
            "retry" => self.retry = Some(values::number_arg(node, 0, u64::from(u32::MAX))?),
            "delay_before_retry" => self.delay_before_retry = Some((values::timer(node)?, node.place.clone())),
            "warmup" => self.warmup = Some((values::timer(node)?, node.place.clone())),
            "connect_timeout" => self.connect_timeout = Some(values::timer(node)?),
            "delay_loop" => self.delay_loop = Some(values::timer(node)?),
            "virtualhost" => self.virtualhost = Some(word(node, 1, "name")?.to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// What a `virtual_server` names.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `virtual_server IP PORT`.
    Address(IpAddr, u16),
    /// `virtual_server fwmark N`.
    Fwmark(u32),
    /// `virtual_server group NAME`.
    Group(String),
}

/// One `virtual_server` section.
#[derive(Debug, Clone)]
pub struct VirtualServer {
    /// Where it starts.
    pub place: Place,
    /// What it balances.
    pub target: Target,
    /// `ip_family`.
    pub family: Option<AddressFamily>,
    /// `protocol`.
    pub protocol: Option<Protocol>,
    /// `lvs_sched` / `lb_algo`.
    pub scheduler: Option<String>,
    /// Scheduler flags in the API's names (`sh-port`, ...).
    pub flags: Vec<String>,
    /// `ops`.
    pub one_packet: bool,
    /// `lvs_method` / `lb_kind`.
    pub forwarding: Option<Forwarding>,
    /// `persistence_timeout` (seconds).
    pub persistence_timeout: Option<u64>,
    /// `persistence_granularity` as a prefix length.
    pub persistence_prefix: Option<u8>,
    /// `persistence_engine`.
    pub persistence_engine: Option<String>,
    /// `quorum`.
    pub quorum: Option<u64>,
    /// `hysteresis`.
    pub hysteresis: Option<u64>,
    /// `weight`: the real servers' default weight.
    pub weight: Option<u64>,
    /// `sorry_server`.
    pub sorry: Option<SorryServer>,
    /// Settings for the real servers.
    pub inherited: Inherited,
    /// `real_server` sections.
    pub real_servers: Vec<RealServer>,
}

/// `sorry_server IP PORT` and `sorry_server_lvs_method`.
#[derive(Debug, Clone)]
pub struct SorryServer {
    /// Its address.
    pub address: IpAddr,
    /// Its port (0: none given).
    pub port: u16,
    /// Its own forwarding.
    pub forwarding: Option<Forwarding>,
}

/// One `real_server` section.
#[derive(Debug, Clone)]
pub struct RealServer {
    /// Where it starts.
    pub place: Place,
    /// Its address.
    pub address: IpAddr,
    /// The port configured (0: none given).
    pub port: u16,
    /// `weight`.
    pub weight: Option<u64>,
    /// `lvs_method`: its own forwarding.
    pub forwarding: Option<Forwarding>,
    /// `uthreshold`.
    pub upper_threshold: Option<u64>,
    /// `lthreshold`.
    pub lower_threshold: Option<u64>,
    /// Settings for its checkers.
    pub inherited: Inherited,
    /// Its checkers, in order (every kind, mapped or not).
    pub checkers: Vec<Checker>,
}

/// `virtual_server_group NAME { ... }`: the services it stands for.
#[derive(Debug, Clone)]
pub struct Group {
    /// Its entries: address services (the port may be 0) and fwmarks (with a family when given).
    pub entries: Vec<GroupEntry>,
}

/// One service of a group.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupEntry {
    /// An address and port.
    Address(IpAddr, u16),
    /// A firewall mark, with `inet`/`inet6` when given.
    Fwmark(u32, Option<AddressFamily>),
}

/// Most addresses one group entry may stand for: every address is a service (an object), and a /16 is not meant.
const MAX_RANGE: u128 = 256;

/// Reads a `virtual_server_group` section.
pub fn group(node: &Node) -> Result<(String, Group), ImportError> {
    let name = word(node, 1, "group name")?.to_owned();
    let mut entries = Vec::new();
    for entry in node.children() {
        let place = &entry.place;
        if entry.keyword() == "fwmark" {
            let mark = values::number_arg(entry, 0, u64::from(u32::MAX))? as u32;
            let family = match entry.word(2) {
                None => None,
                Some("inet") => Some(AddressFamily::IPv4),
                Some("inet6") => Some(AddressFamily::IPv6),
                Some(other) => return Err(error(place, format!("fwmark family `{other}` is not inet or inet6"))),
            };
            entries.push(GroupEntry::Fwmark(mark, family));
            continue;
        }
        let port = match entry.word(1) {
            None => 0,
            Some(text) => values::port(place, text, "port")?,
        };
        for address in address_range(place, entry.keyword())? {
            entries.push(GroupEntry::Address(address, port));
        }
    }
    Ok((name, Group { entries }))
}

/// `IP`, `IP-LAST` (last octet, or last hextet in hex), `IP-IP` or `IP/PREFIX`, as keepalived expands them.
fn address_range(place: &Place, text: &str) -> Result<Vec<IpAddr>, ImportError> {
    let bad = |why: &str| error(place, format!("virtual_server_group entry `{text}`: {why}"));
    let (start, end) = if let Some((addr, prefix)) = text.split_once('/') {
        let start = values::ip(place, addr, "address")?;
        let bits = if start.is_ipv4() { 32 } else { 128 };
        let prefix: u32 = prefix.parse().ok().filter(|p| (1..=bits).contains(p)).ok_or_else(|| bad("bad prefix"))?;
        let host_bits = bits - prefix;
        let value = ip_value(start);
        let mask = if host_bits >= 128 { u128::MAX } else { (1u128 << host_bits) - 1 };
        if value & mask != 0 {
            return Err(bad("host bits set below the prefix"));
        }
        (start, ip_from(start, value | mask))
    } else if let Some((addr, last)) = text.split_once('-') {
        let start = values::ip(place, addr, "address")?;
        let end = if (start.is_ipv4() && last.contains('.')) || (start.is_ipv6() && last.contains(':')) {
            values::ip(place, last, "range end")?
        } else if start.is_ipv4() {
            let last: u8 = last.parse().map_err(|_| bad("the range end is not an octet"))?;
            ip_from(start, (ip_value(start) & !0xff) | u128::from(last))
        } else {
            let last = u16::from_str_radix(last, 16).map_err(|_| bad("the range end is not a hextet"))?;
            ip_from(start, (ip_value(start) & !0xffff) | u128::from(last))
        };
        (start, end)
    } else {
        let address = values::ip(place, text, "address")?;
        (address, address)
    };
    if start.is_ipv4() != end.is_ipv4() {
        return Err(bad("the range ends in another family"));
    }
    let (low, high) = (ip_value(start), ip_value(end));
    if high < low {
        return Err(bad("the range ends before it starts"));
    }
    if high - low >= MAX_RANGE {
        return Err(bad(&format!("more than {MAX_RANGE} addresses (one service each)")));
    }
    Ok((low..=high).map(|v| ip_from(start, v)).collect())
}

fn ip_value(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn ip_from(family_of: IpAddr, value: u128) -> IpAddr {
    match family_of {
        IpAddr::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(value as u32)),
        IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(value)),
    }
}

/// Reads a `virtual_server` section; notes go to `notes`.
pub fn virtual_server(node: &Node, notes: &mut Vec<Note>) -> Result<VirtualServer, ImportError> {
    let place = &node.place;
    let first = word(node, 1, "address, `fwmark N` or `group NAME`")?;
    let target = match first {
        "group" => Target::Group(word(node, 2, "group name")?.to_owned()),
        "fwmark" => {
            let mark = word(node, 2, "fwmark")?;
            Target::Fwmark(values::number(place, mark, "fwmark", 1, u64::from(u32::MAX))? as u32)
        }
        address => {
            let address = values::ip(place, address, "virtual server address")?;
            let port = match node.word(2) {
                None => 0,
                Some(text) => values::port(place, text, "virtual server port")?,
            };
            Target::Address(address, port)
        }
    };
    let mut vs = VirtualServer {
        place: place.clone(),
        target,
        family: None,
        protocol: None,
        scheduler: None,
        flags: Vec::new(),
        one_packet: false,
        forwarding: None,
        persistence_timeout: None,
        persistence_prefix: None,
        persistence_engine: None,
        quorum: None,
        hysteresis: None,
        weight: None,
        sorry: None,
        inherited: Inherited::default(),
        real_servers: Vec::new(),
    };
    for child in node.children() {
        virtual_server_keyword(&mut vs, child, notes)?;
    }
    Ok(vs)
}

fn virtual_server_keyword(vs: &mut VirtualServer, node: &Node, notes: &mut Vec<Note>) -> Result<(), ImportError> {
    let place = Some(node.place.clone());
    if vs.inherited.read(node)? {
        return Ok(());
    }
    match node.keyword() {
        "ip_family" => {
            vs.family = match word(node, 1, "family")? {
                "inet" => Some(AddressFamily::IPv4),
                "inet6" => Some(AddressFamily::IPv6),
                other => return Err(error(&node.place, format!("ip_family `{other}` is not inet or inet6"))),
            }
        }
        "protocol" => {
            vs.protocol = Some(match word(node, 1, "protocol")?.to_ascii_uppercase().as_str() {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                "SCTP" => Protocol::Sctp,
                other => return Err(error(&node.place, format!("protocol `{other}` is not TCP, UDP or SCTP"))),
            })
        }
        "lvs_sched" | "lb_algo" => {
            let name = word(node, 1, "scheduler")?;
            if !crate::api::validate::SCHEDULERS.contains(&name) {
                return Err(error(&node.place, format!("{} `{name}` is not a scheduler", node.keyword())));
            }
            vs.scheduler = Some(name.to_owned());
            if node.words.len() > 2 {
                notes.push(Note::adjusted(
                    place,
                    format!(
                        "ignored, as keepalived 2.2.7 does: `{}` after the scheduler (a flag is a keyword of its own \
                         line)",
                        node.words[2..].join(" ")
                    ),
                ));
            }
        }
        "ops" => vs.one_packet = true,
        "hashed" => notes.push(Note::adjusted(place, "ignored: hashed (the kernel hashes every service)")),
        "flag-1" | "flag-2" | "flag-3" | "sh-port" | "sh-fallback" | "mh-port" | "mh-fallback" => {
            scheduler_flag(vs, node, notes)
        }
        "lb_kind" | "lvs_method" => vs.forwarding = Some(forwarding(node)?),
        "persistence_timeout" => {
            vs.persistence_timeout = Some(match node.word(1) {
                None => 360,
                Some(_) => values::number_arg(node, 1, 2_678_400)?,
            })
        }
        "persistence_granularity" => {
            let text = word(node, 1, "netmask or prefix length")?;
            let ipv6 = match (&vs.target, vs.family) {
                (Target::Address(ip, _), _) => ip.is_ipv6(),
                (_, Some(family)) => family == AddressFamily::IPv6,
                _ => !text.contains('.'),
            };
            let prefix = if ipv6 {
                values::number(&node.place, text, "persistence_granularity", 1, 128)? as u8
            } else {
                let mask: std::net::Ipv4Addr = text
                    .parse()
                    .map_err(|_| error(&node.place, format!("persistence_granularity `{text}` is not a netmask")))?;
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return Err(error(
                        &node.place,
                        format!("persistence_granularity {text} is not a contiguous netmask (the API takes a prefix)"),
                    ));
                }
                bits.leading_ones() as u8
            };
            vs.persistence_prefix = Some(prefix);
            // keepalived: a granularity without a timeout turns persistence on with the default timeout.
            vs.persistence_timeout.get_or_insert(360);
        }
        "persistence_engine" => vs.persistence_engine = Some(word(node, 1, "engine")?.to_owned()),
        "quorum" => vs.quorum = Some(values::number_arg(node, 1, u64::from(u32::MAX))?),
        "hysteresis" => vs.hysteresis = Some(values::number_arg(node, 0, u64::from(u32::MAX))?),
        "weight" => vs.weight = Some(values::number_arg(node, 1, i32::MAX as u64)?),
        "sorry_server" => {
            let address = values::ip(&node.place, word(node, 1, "address")?, "sorry server address")?;
            let port = match node.word(2) {
                None => 0,
                Some(text) => values::port(&node.place, text, "sorry server port")?,
            };
            vs.sorry = Some(SorryServer { address, port, forwarding: None });
        }
        "sorry_server_lvs_method" => {
            let fwd = forwarding(node)?;
            match &mut vs.sorry {
                Some(sorry) => sorry.forwarding = Some(fwd),
                None => notes.push(Note::adjusted(
                    place,
                    "ignored, as keepalived does: sorry_server_lvs_method before or without sorry_server",
                )),
            }
        }
        "sorry_server_inhibit" => notes.push(Note::not_mapped(
            place,
            "sorry_server_inhibit: the sorry server is added and withdrawn, never kept at weight 0",
        )),
        "real_server" => vs.real_servers.push(real_server(node, notes)?),
        "omega" | "quorum_up" | "quorum_down" | "smtp_alert" | "snmp_name" | "ha_suspend" => {
            notes.push(Note::adjusted(
                place,
                format!("ignored: {} (notifications and VRRP coupling stay keepalived's)", node.keyword()),
            ))
        }
        other => notes.push(Note::not_mapped(place, format!("unknown keyword in virtual_server: {other}"))),
    }
    Ok(())
}

/// `flag-N` and the named flags, as `lbflags_handler` takes them: a named flag counts only when the scheduler read
/// so far is the one it is for.
fn scheduler_flag(vs: &mut VirtualServer, node: &Node, notes: &mut Vec<Note>) {
    let place = Some(node.place.clone());
    let keyword = node.keyword();
    let scheduler = vs.scheduler.as_deref().unwrap_or("");
    let name = match (keyword, scheduler) {
        ("flag-1", "sh" | "mh") => format!("{scheduler}-fallback"),
        ("flag-2", "sh" | "mh") => format!("{scheduler}-port"),
        ("flag-1" | "flag-2" | "flag-3", _) => {
            notes.push(Note::not_mapped(
                place,
                format!("{keyword}: the API names scheduler flags only for sh and mh (flag-1, flag-2)"),
            ));
            return;
        }
        (named, _) if named.starts_with(scheduler) && !scheduler.is_empty() => named.to_owned(),
        (named, _) => {
            notes.push(Note::adjusted(
                place,
                format!(
                    "ignored, as keepalived does: {named} read while the scheduler is not {} (lvs_sched must come \
                     first)",
                    &named[..2]
                ),
            ));
            return;
        }
    };
    if !vs.flags.contains(&name) {
        vs.flags.push(name);
    }
}

/// `lvs_method NAT|DR|TUN [type ipip|gue|gre] [port N] [nocsum|csum|remcsum]`.
pub fn forwarding(node: &Node) -> Result<Forwarding, ImportError> {
    let place = &node.place;
    let method = match word(node, 1, "method")? {
        "NAT" => ForwardingMethod::Masquerade,
        "DR" => ForwardingMethod::DirectRouting,
        "TUN" => ForwardingMethod::Tunnel,
        other => return Err(error(place, format!("{} `{other}` is not NAT, DR or TUN", node.keyword()))),
    };
    let mut tunnel = Tunnel::default();
    let mut any = false;
    let mut i = 2;
    while let Some(option) = node.word(i) {
        any = true;
        match option {
            "type" => {
                tunnel.type_ = match word(node, i + 1, "tunnel type")? {
                    "ipip" => TunnelType::Ipip,
                    "gue" => TunnelType::Gue,
                    "gre" => TunnelType::Gre,
                    other => return Err(error(place, format!("tunnel type `{other}` is not ipip, gue or gre"))),
                };
                i += 1;
            }
            "port" => {
                tunnel.port =
                    Some(values::number(place, word(node, i + 1, "tunnel port")?, "tunnel port", 1, 65535)? as i64);
                i += 1;
            }
            "nocsum" => tunnel.checksum = None,
            "csum" => tunnel.checksum = Some(TunnelChecksum::Checksum),
            "remcsum" => tunnel.checksum = Some(TunnelChecksum::RemoteChecksum),
            other => return Err(error(place, format!("unknown tunnel option `{other}`"))),
        }
        i += 1;
    }
    if any && method != ForwardingMethod::Tunnel {
        return Err(error(place, "tunnel options are only for TUN"));
    }
    if (tunnel.type_ == TunnelType::Gue) != tunnel.port.is_some() {
        return Err(error(place, "a gue tunnel needs a port, and only a gue tunnel has one"));
    }
    let tunnel = (method == ForwardingMethod::Tunnel && tunnel != Tunnel::default()).then_some(tunnel);
    Ok(Forwarding { method, tunnel })
}

fn real_server(node: &Node, notes: &mut Vec<Note>) -> Result<RealServer, ImportError> {
    let place = &node.place;
    let address = values::ip(place, word(node, 1, "address")?, "real server address")?;
    let port = match node.word(2) {
        None => 0,
        Some(text) => values::port(place, text, "real server port")?,
    };
    let mut rs = RealServer {
        place: place.clone(),
        address,
        port,
        weight: None,
        forwarding: None,
        upper_threshold: None,
        lower_threshold: None,
        inherited: Inherited::default(),
        checkers: Vec::new(),
    };
    for child in node.children() {
        if rs.inherited.read(child)? {
            continue;
        }
        let note_place = Some(child.place.clone());
        match child.keyword() {
            "weight" => rs.weight = Some(values::number_arg(child, 0, i32::MAX as u64)?),
            "lvs_method" => rs.forwarding = Some(forwarding(child)?),
            "uthreshold" => rs.upper_threshold = Some(values::number_arg(child, 0, u64::from(u32::MAX))?),
            "lthreshold" => rs.lower_threshold = Some(values::number_arg(child, 0, u64::from(u32::MAX))?),
            "notify_up" | "notify_down" | "smtp_alert" | "snmp_name" => notes.push(Note::adjusted(
                note_place,
                format!("ignored: {} (notifications stay keepalived's)", child.keyword()),
            )),
            keyword => match checkers::read(child, notes)? {
                Some(checker) => rs.checkers.push(checker),
                None => notes.push(Note::not_mapped(note_place, format!("unknown keyword in real_server: {keyword}"))),
            },
        }
    }
    Ok(rs)
}
