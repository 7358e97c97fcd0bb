//! Human-readable lines for planned operations, like a diff: `+` adds, `~` edits (with old → new), `-` deletes.

use std::fmt::Write;

use crate::model::{DestConfig, ForwardMethod, Op, ServiceConfig, ServiceFlags, Table, TunnelType};
use crate::table::apply_op;

/// One line per applied operation, each described against the table as it was just before it: `before` holds the
/// touched services as they were before the first one (a pass report's `before`).
pub fn describe_applied(applied: &[Op], before: &Table) -> Vec<String> {
    let mut table = before.clone();
    applied
        .iter()
        .map(|op| {
            let line = describe(op, &table);
            // A refusal cannot happen for an operation the kernel accepted against this picture; if the picture was
            // incomplete the next lines merely lose their "old" values.
            let _ = apply_op(&mut table, op);
            line
        })
        .collect()
}

/// One line per operation; edits show what changes, compared with `live`.
pub fn describe(op: &Op, live: &Table) -> String {
    match op {
        Op::AddService(s) => format!("+ service {} {}", s.key, service_summary(&s.config)),
        Op::UpdateService(s) => {
            let old = live.services.get(&s.key).map(|e| &e.service.config);
            format!("~ service {} {}", s.key, service_diff(old, &s.config))
        }
        Op::DeleteService(k) => format!("- service {k}"),
        Op::AddDest(k, d) => format!("+   {k} -> {} {}", d.key, dest_summary(&d.config)),
        Op::UpdateDest(k, d) => {
            let old = live.services.get(k).and_then(|e| e.dests.get(&d.key)).map(|d| &d.config);
            let drain = if d.config.weight == 0 && old.is_some_and(|o| o.weight != 0) { " (drain)" } else { "" };
            format!("~   {k} -> {} {}{drain}", d.key, dest_diff(old, &d.config))
        }
        Op::DeleteDest(k, d) => format!("-   {k} -> {d}"),
    }
}

fn service_fields(c: &ServiceConfig) -> Vec<(&'static str, String)> {
    let mut f = vec![("scheduler", c.scheduler.clone())];
    let flag = |bit| c.flags.has(bit);
    if flag(ServiceFlags::PERSISTENT) {
        f.push(("persistent", format!("{}s", c.timeout)));
        f.push(("netmask", c.netmask.to_string()));
    }
    if flag(ServiceFlags::ONEPACKET) {
        f.push(("one-packet", "yes".into()));
    }
    let mut sched_flags = Vec::new();
    for (bit, name) in
        [(ServiceFlags::SCHED1, "flag-1"), (ServiceFlags::SCHED2, "flag-2"), (ServiceFlags::SCHED3, "flag-3")]
    {
        if flag(bit) {
            sched_flags.push(name);
        }
    }
    if !sched_flags.is_empty() {
        f.push(("flags", sched_flags.join(",")));
    }
    if let Some(pe) = &c.pe_name {
        f.push(("engine", pe.clone()));
    }
    f
}

fn service_summary(c: &ServiceConfig) -> String {
    service_fields(c).into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn service_diff(old: Option<&ServiceConfig>, new: &ServiceConfig) -> String {
    match old {
        Some(old) => diff(&service_fields(old), &service_fields(new)),
        None => service_summary(new),
    }
}

fn forward_name(f: ForwardMethod) -> String {
    match f {
        ForwardMethod::Masquerade => "masq".into(),
        ForwardMethod::Local => "local".into(),
        ForwardMethod::Tunnel => "tunnel".into(),
        ForwardMethod::DirectRoute => "route".into(),
        ForwardMethod::Bypass => "bypass".into(),
        ForwardMethod::Other(n) => format!("fwd-{n}"),
    }
}

fn dest_fields(c: &DestConfig) -> Vec<(&'static str, String)> {
    let mut f = vec![("forward", forward_name(c.forward)), ("weight", c.weight.to_string())];
    if c.upper_threshold != 0 || c.lower_threshold != 0 {
        f.push(("thresholds", format!("{}-{}", c.lower_threshold, c.upper_threshold)));
    }
    if c.forward == ForwardMethod::Tunnel || c.tunnel != Default::default() {
        let kind = match c.tunnel.kind {
            TunnelType::Ipip => "ipip".to_owned(),
            TunnelType::Gue => "gue".to_owned(),
            TunnelType::Gre => "gre".to_owned(),
            TunnelType::Other(n) => format!("tun-{n}"),
        };
        f.push(("tunnel", format!("{kind}:{}:{:?}", c.tunnel.port, c.tunnel.checksum)));
    }
    f
}

fn dest_summary(c: &DestConfig) -> String {
    dest_fields(c).into_iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

fn dest_diff(old: Option<&DestConfig>, new: &DestConfig) -> String {
    match old {
        Some(old) => diff(&dest_fields(old), &dest_fields(new)),
        None => dest_summary(new),
    }
}

/// `key old→new` for every field that differs, fields present on one side only included.
fn diff(old: &[(&'static str, String)], new: &[(&'static str, String)]) -> String {
    let mut out = String::new();
    let names = old.iter().chain(new).map(|(k, _)| *k);
    let mut seen = Vec::new();
    for name in names {
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let a = old.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or("-");
        let b = new.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str()).unwrap_or("-");
        if a != b {
            let _ = write!(out, "{}{name} {a} -> {b}", if out.is_empty() { "" } else { ", " });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestConfig, Destination};
    use crate::table::fixtures::{dest, live, live_entry, svc};

    #[test]
    fn edits_show_old_and_new_values() {
        let table = live([live_entry(svc(1), "rr", &[(dest(1), 1, 0, 0)])]);
        let mut cfg = table.services[&svc(1)].service.config.clone();
        cfg.scheduler = "wlc".into();
        let line = describe(&Op::UpdateService(crate::model::Service::new(svc(1), cfg)), &table);
        assert_eq!(line, "~ service TCP 192.0.2.1:80 scheduler rr -> wlc");
        let line = describe(&Op::UpdateDest(svc(1), Destination::new(dest(1), DestConfig::masquerade(0))), &table);
        assert_eq!(line, "~   TCP 192.0.2.1:80 -> 10.0.0.1:80 weight 1 -> 0 (drain)");
    }
}
