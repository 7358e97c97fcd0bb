//! keepalived.conf import (`ipvs-reconciler import keepalived FILE`): keepalived 2.2.7's `virtual_server` sections
//! and their checkers as `VirtualService` objects, `global_defs`' `lvs_timeouts` and `lvs_sync_daemon` as director
//! settings.
//!
//! The modules, in the order the input goes through them:
//! - `parse`: the reader (comments, quotes, braces, `include` globs, `$NAME` definitions) and the statement tree,
//!   every statement with its file and line;
//! - `values`: the values of keywords (addresses, ports, numbers, timers), a syntax error otherwise;
//! - `servers`: `virtual_server`, `virtual_server_group`, `real_server` and `sorry_server` in keepalived's terms;
//! - `checkers`: the checkers, and one real server's check with keepalived's defaults;
//! - `map`: one virtual server into the objects of the services keepalived makes of it;
//! - `director`: `global_defs` and the VRRP sections.
//!
//! The import follows what keepalived itself does with the file, read from its source (each module names the
//! functions): its defaults are written out wherever this program's differ (UDP when no protocol is given, a
//! check every 60 s with a 5 s timeout, rise 1, fall retry + 1, real servers removed on failure unless
//! `inhibit_on_failure`, persistence 360 s), and what keepalived ignores or corrects is ignored or corrected the
//! same way, with a note.
//!
//! Notes, by one rule: a `NotMapped` note (the import is partial, exit 3) for what shapes the IPVS table or the
//! checks and is not converted: checkers this program cannot run (`MISC_CHECK`, `SMTP_CHECK`, `PING_CHECK`,
//! `BFD_CHECK`, `FILE_CHECK`), `digest` and `regex`, a checker's further urls, further checkers of a real server,
//! real servers whose checks differ from the service's (one check per service), options the API lacks, and any
//! unknown keyword inside `virtual_server`, `real_server` or a checker. An `Adjusted` note (converted with a
//! documented change; the import stays complete) for everything else: values changed to fit the API (a timeout
//! below the interval, `delay_before_retry` and `warmup` that have no field), what keepalived itself ignores, and
//! what is not this program's job, each as "ignored: ...": VRRP sections (one note each; VRRP stays keepalived's
//! or another tool's job, and a service on one of their addresses gets `bindAddress: false`), `global_defs` items
//! other than `lvs_timeouts` and `lvs_sync_daemon` (mail, router id, ...), notification scripts (`notify_up`,
//! `notify_down`, `quorum_up`, `quorum_down`), static addresses and routes.
//!
//! Every object is validated as `run` would before it is returned; one that would be refused (an address keepalived
//! takes and the API does not) is left out with a `NotMapped` note giving validation's reasons.
//!
//! Errors (nothing is imported): a file that cannot be read, unbalanced braces, a `virtual_server` without an
//! address, a value that is not one (address, port, number), an include loop. No input makes the import panic.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{ImportError, Imported, Note, Place};

mod checkers;
mod director;
mod map;
mod parse;
mod servers;
mod values;

#[cfg(test)]
mod tests;

/// Reads `path` (and what it includes) and converts its `virtual_server` sections.
pub fn import(path: &Path) -> Result<Imported, ImportError> {
    let config = parse::read(path)?;
    convert(config)
}

fn convert(config: parse::Config) -> Result<Imported, ImportError> {
    let mut notes = config.notes;
    let nodes = config.nodes;

    // First what other sections refer to: groups and VRRP addresses and instances, wherever they are.
    let mut groups = HashMap::new();
    let mut vrrp = director::Vrrp::default();
    for node in &nodes {
        match node.keyword() {
            "virtual_server_group" => {
                let (name, group) = servers::group(node)?;
                groups.insert(name, group);
            }
            "vrrp_instance" => director::vrrp_instance(node, &mut vrrp)?,
            _ => {}
        }
    }
    let context = map::Context { groups: &groups, vrrp_addresses: &vrrp.addresses };

    let mut imported = Imported::default();
    let mut names: HashSet<String> = HashSet::new();
    for node in &nodes {
        let place = Some(node.place.clone());
        match node.keyword() {
            "virtual_server" => {
                let vs = servers::virtual_server(node, &mut notes)?;
                for object in map::objects(&vs, &context, &mut notes)? {
                    let name = object.metadata.name.clone().unwrap_or_default();
                    // A last word: what `run` would refuse is reported, not printed.
                    let id = crate::api::ObjectId::document(node.place.file.clone(), imported.objects.len());
                    if let Err(rejected) = crate::api::validate(&id, &object.spec) {
                        let problems: Vec<String> =
                            rejected.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                        notes.push(Note::not_mapped(
                            place.clone(),
                            format!("service {name} left out: it would be invalid ({})", problems.join("; ")),
                        ));
                        continue;
                    }
                    if names.insert(name.clone()) {
                        imported.objects.push(object);
                    } else {
                        notes.push(Note::not_mapped(
                            place.clone(),
                            format!("service {name} is already made by an earlier virtual_server: skipped"),
                        ));
                    }
                }
            }
            "virtual_server_group" => {}
            "global_defs" => director::global_defs(node, &vrrp, &mut imported.director, &mut notes)?,
            "SSL" => notes.push(Note::not_mapped(
                place,
                "SSL (the checkers' client certificate and CA): HTTPS checks present no certificate and verify none",
            )),
            keyword if director::is_ignored_section(keyword) => notes.push(director::ignored_section(node)),
            other => notes.push(Note::not_mapped(place, format!("unknown keyword: {other}"))),
        }
    }
    if let Some(config) = &imported.director
        && let Err(e) = config.check("keepalived")
    {
        notes.push(Note::not_mapped(None, format!("director settings left out: {e}")));
        imported.director = None;
    }

    // One note per place and message (group expansion repeats them), in the order of the input.
    let mut seen = HashSet::new();
    notes.retain(|note| seen.insert((note.place.clone(), note.kind, note.message.clone())));
    let mut order = Vec::new();
    input_order(&nodes, &mut order);
    notes.sort_by_key(|note| position(&order, note.place.as_ref()));
    imported.notes = notes;
    Ok(imported)
}

/// Every statement's place, in the order of the input.
fn input_order(nodes: &[parse::Node], order: &mut Vec<Place>) {
    for node in nodes {
        order.push(node.place.clone());
        input_order(node.children(), order);
    }
}

/// Where a note's place comes in the input: the last statement of its file at or before its line (a place that is
/// no statement, such as an `include` line, goes after what precedes it); notes without a place last.
fn position(order: &[Place], place: Option<&Place>) -> usize {
    let Some(place) = place else { return usize::MAX };
    let mut best = None;
    for (i, known) in order.iter().enumerate() {
        if known.file == place.file && known.line <= place.line {
            best = Some(i);
        }
    }
    best.map(|i| i + 1).unwrap_or(0)
}
