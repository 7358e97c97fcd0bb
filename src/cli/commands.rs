//! One-shot commands: dump, validate, plan, apply, crd.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tracing::warn;

use super::args::{AddressArgs, ApplyArgs, Cli, Command, DumpArgs, LoopArgs, Output};
use super::describe::{describe, describe_applied};
use super::ipvsadm_format::{self, Columns, ListOptions};
use super::{EXIT_CHANGES, EXIT_ERROR, EXIT_OK};
use crate::agent::pass_options;
use crate::api::{self, Conflict, ValidationError};
use crate::clock::unix_seconds;
use crate::daemon::{self, AgentSettings, Settings, connect};
use crate::engine::ownership::{DEFAULT_STATE_PATH, Ownership};
use crate::engine::state_lock::StateLock;
use crate::engine::{Engine, KernelFailure, PassReport};
use crate::ipvs::{Ipvs, NetnsSpec};
use crate::netif::VipInterface;
use crate::source::{Changed, DesiredState, FileSource, Snapshot};

/// The election and verdict settings the flags give: `None` without POD_NAME and POD_NAMESPACE (outside a pod).
fn verdict_settings(
    args: &crate::cli::args::VerdictArgs,
    report: crate::agent::status::StatusReport,
) -> Result<Option<crate::verdict::VerdictSettings>> {
    use crate::verdict::election::ElectionConfig;
    let (Some(identity), Some(namespace)) = (&args.pod_name, &args.pod_namespace) else {
        tracing::warn!(
            "POD_NAME or POD_NAMESPACE is not set: this agent takes no part in the election of the one that writes \
             each VirtualService's conditions (the DaemonSet sets both from the Downward API)"
        );
        return Ok(None);
    };
    let election = ElectionConfig {
        lease_name: crate::verdict::LEASE_NAME.to_owned(),
        namespace: namespace.clone(),
        identity: identity.clone(),
        lease_duration: args.lease_duration,
        renew_deadline: args.renew_deadline,
        retry_period: args.retry_period,
    };
    election.check().map_err(anyhow::Error::msg)?;
    // The API server parses the selector (a bad one fails the leader's watch, loudly); an empty one would take
    // every pod of the namespace for an agent.
    if args.agent_selector.trim().is_empty() {
        anyhow::bail!(
            "--agent-selector is empty: it must select the agent pods (e.g. {})",
            crate::verdict::DEFAULT_AGENT_SELECTOR
        );
    }
    let rules = crate::verdict::judge::Rules { report, progress_deadline: args.progress_deadline };
    Ok(Some(crate::verdict::VerdictSettings { election, agent_selector: args.agent_selector.clone(), rules }))
}

/// Runs the parsed command line; the `Ok` value is the exit code.
pub async fn dispatch(cli: Cli) -> Result<i32> {
    let netns = match &cli.netns {
        Some(s) => NetnsSpec::parse(s)?,
        None => NetnsSpec::Current,
    };
    match cli.command {
        Command::Dump(args) if args.addresses => dump_addresses(&netns, &cli.netns, &args).await,
        Command::Dump(args) => dump(&netns, &args).await,
        Command::Validate(args) => super::validate::validate(&args),
        Command::Status(args) => super::status::status(&args).await,
        Command::Plan(args) => plan(&netns, &cli.netns, &args).await,
        Command::Apply(args) => apply(&netns, &cli.netns, &args).await,
        Command::Run(args) => {
            let settings = daemon_settings(netns, &cli.netns, &args.common)?;
            daemon::run_files(settings, args.manifests, args.listen).await?;
            Ok(EXIT_OK)
        }
        Command::Cleanup(args) => super::cleanup::cleanup(&netns, &cli.netns, &args).await,
        Command::Agent(args) => {
            let settings = daemon_settings(netns, &cli.netns, &args.common)?;
            let verdict = verdict_settings(&args.verdict, args.status_report)?;
            let node = AgentSettings {
                node_name: args.node_name,
                status_report: args.status_report,
                listen: args.listen,
                admission: args.admission,
                verdict,
            };
            daemon::run_agent(settings, node).await?;
            Ok(EXIT_OK)
        }
        Command::Import(args) => super::import::import(&args),
        Command::Crd => {
            print!("{}", api::crd_yaml());
            Ok(EXIT_OK)
        }
        Command::Completions(args) => super::generate::completions(&args),
        Command::Man(args) => super::generate::man(&args),
    }
}

/// What the long-running modes share, from their flags.
fn daemon_settings(netns: NetnsSpec, netns_name: &Option<String>, args: &LoopArgs) -> Result<Settings> {
    Ok(Settings {
        netns,
        state: state_path(args.state.clone(), netns_name),
        vip_interface: vip_interface(&args.addresses),
        director: args.director.config()?,
        agent: args.config(),
        print: print_report,
    })
}

/// The VIP interface to bind addresses on, unless `--no-bind-addresses`.
fn vip_interface(args: &AddressArgs) -> Option<String> {
    (!args.no_bind_addresses).then(|| args.vip_interface.clone())
}

/// Opens the engine of `plan` and `apply`.
async fn open_engine(netns: &NetnsSpec, state: PathBuf, args: &ApplyArgs) -> Result<Engine<Ipvs>> {
    daemon::open_engine(netns, state, vip_interface(&args.addresses).as_deref(), args.director.config()?).await
}

/// The state file: the one given, else the default, made per namespace when a named namespace is targeted so that
/// two namespaces never share (and confuse) their ownership memory.
pub fn state_path(given: Option<PathBuf>, netns: &Option<String>) -> PathBuf {
    if let Some(path) = given {
        return path;
    }
    let default = Path::new(DEFAULT_STATE_PATH);
    match netns {
        Some(name) => {
            let safe: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
            default.with_file_name(format!("state-{safe}.json"))
        }
        None => default.to_owned(),
    }
}

async fn dump(netns: &NetnsSpec, args: &DumpArgs) -> Result<i32> {
    let ipvs = connect(netns).await?;
    let table = ipvs.read_table().await?;
    let mut out = std::io::stdout().lock();
    match args.output {
        Output::Table => {
            let info = ipvs.info().await?;
            let opts = ListOptions {
                columns: Columns::from_flags(
                    args.stats,
                    args.rate,
                    args.thresholds,
                    args.persistent_conn,
                    args.tun_info,
                ),
                exact: args.exact,
            };
            out.write_all(ipvsadm_format::render(&table, &info, &opts).as_bytes())?;
        }
        Output::Rules => out.write_all(ipvsadm_format::render_save(&table).as_bytes())?,
        Output::Json => {
            serde_json::to_writer_pretty(&mut out, &JsonTable::of(&table))?;
            writeln!(out)?;
        }
        Output::Yaml => {
            let exported = api::from_table(&table);
            for skipped in &exported.skipped {
                eprintln!("warning: not exported: {skipped}");
            }
            for object in &exported.objects {
                writeln!(out, "---")?;
                out.write_all(serde_yaml::to_string(object)?.as_bytes())?;
            }
        }
    }
    Ok(EXIT_OK)
}

/// `dump --addresses`: the VIP interface's addresses, each marked as this program's (from the state file) or not.
async fn dump_addresses(netns: &NetnsSpec, netns_name: &Option<String>, args: &DumpArgs) -> Result<i32> {
    let state = Ownership::load(&state_path(args.state.clone(), netns_name))?;
    let interface = VipInterface::open(netns, &args.vip_interface).await?;
    let Some(index) = interface.lookup().await? else {
        println!("{}: no such interface (no address added yet)", args.vip_interface);
        return Ok(EXIT_OK);
    };
    let listed = interface.addresses(index).await?;
    let ours = state.vips.interface.as_deref() == Some(args.vip_interface.as_str());
    println!("{} ({} address(es))", args.vip_interface, listed.len());
    for (addr, address) in &listed {
        let owner = if ours && state.vips.addrs.contains(addr) { "owned" } else { "not owned" };
        println!("  {addr}/{}  {owner}", address.prefix_len);
    }
    Ok(EXIT_OK)
}

/// `dump -o json`: services with their destinations, as lists.
#[derive(serde::Serialize)]
struct JsonTable<'a> {
    services: Vec<JsonService<'a>>,
}

impl<'a> JsonTable<'a> {
    /// JSON objects need string keys: the table goes out as lists, in key order.
    fn of(table: &'a crate::model::Table) -> Self {
        let services = table
            .services
            .values()
            .map(|e| JsonService { service: &e.service, destinations: e.dests.values().collect() })
            .collect();
        JsonTable { services }
    }
}

#[derive(serde::Serialize)]
struct JsonService<'a> {
    #[serde(flatten)]
    service: &'a crate::model::Service,
    destinations: Vec<&'a crate::model::Destination>,
}

/// Loads the manifests through the same pipeline as `run` (file source → index → snapshot). An unreadable path is an
/// error, never "no objects"; documents that do not parse are in `errors` (those that name no service make passes
/// hold every service deletion until they are fixed).
pub fn load(paths: &[PathBuf]) -> Result<Loaded> {
    let state = DesiredState::new();
    let mut source = FileSource::new(paths.to_vec());
    let reload = state
        .update(|index| match source.reload_into(index) {
            Ok(reload) => (reload.changed.clone(), Ok(reload)),
            Err(e) => (Changed::new(), Err(e)),
        })
        .context("reading manifests")?;
    for w in &reload.warnings {
        warn!("{w}");
    }
    let (errors, conflicts) = state.with_index(|index| (index.errors(), index.conflicts()));
    Ok(Loaded { desired: state.take(), errors, conflicts })
}

/// What [`load`] found: the desired state and every problem.
pub struct Loaded {
    /// What a pass plans with.
    pub desired: Snapshot,
    /// Every problem of every object.
    pub errors: Vec<ValidationError>,
    /// Objects that lost a service key to an older one.
    pub conflicts: Vec<Conflict>,
}

/// Prints every problem with the sources to stderr; returns whether any object was invalid.
fn report_problems(loaded: &Loaded) -> bool {
    for e in &loaded.errors {
        eprintln!("error: {e}");
    }
    for c in &loaded.conflicts {
        eprintln!("conflict: {c}");
    }
    !loaded.errors.is_empty()
}

async fn plan(netns: &NetnsSpec, netns_name: &Option<String>, args: &ApplyArgs) -> Result<i32> {
    let loaded = load(&args.source.files)?;
    let bad = report_problems(&loaded);
    let desired = loaded.desired;
    let opts = pass_options(&desired, args.allow_mass_delete);
    let mut engine = open_engine(netns, state_path(args.state.clone(), netns_name), args).await?;
    let plan = engine.plan_only(&desired.table, unix_seconds(), &opts).await?;
    let addresses = engine.planned_addresses(&desired.table, &plan.ops).unwrap_or_default();
    let live = engine.observed().cloned().unwrap_or_default();
    let interface = &args.addresses.vip_interface;
    for key in &plan.adopted {
        println!("adopt {key} (exists in the kernel, declared by {})", origin(&desired, key));
    }
    // In the order a pass makes them: addresses first, then the services, then the addresses no longer needed.
    for addr in &addresses.add {
        println!("add address {addr}/{} to {interface}", crate::netif::host_prefix(*addr));
    }
    for op in &plan.ops {
        println!("{}", describe(op, &live));
    }
    for addr in &addresses.remove {
        println!("remove address {addr}/{} from {interface}", crate::netif::host_prefix(*addr));
    }
    let unchanged = plan.ops.is_empty() && addresses.is_empty();
    if unchanged {
        println!("no changes");
    }
    Ok(if bad {
        EXIT_ERROR
    } else if unchanged {
        EXIT_OK
    } else {
        EXIT_CHANGES
    })
}

fn origin(desired: &Snapshot, key: &crate::model::ServiceKey) -> String {
    desired.origin(key).map(ToString::to_string).unwrap_or_default()
}

async fn apply(netns: &NetnsSpec, netns_name: &Option<String>, args: &ApplyArgs) -> Result<i32> {
    let loaded = load(&args.source.files)?;
    let bad = report_problems(&loaded);
    let desired = loaded.desired;
    let opts = pass_options(&desired, args.allow_mass_delete);
    let state = state_path(args.state.clone(), netns_name);
    // apply writes the state file: it holds the lock for its pass, so that it is refused beside a running `run` or
    // `agent` (whose next save would drop what apply remembered) and two applies never interleave. `plan` only
    // reads the file (replaced atomically at every save) and takes no lock: it works beside a running `run`.
    let _lock = StateLock::acquire(&state, "apply")?;
    let mut engine = open_engine(netns, state, args).await?;
    let report = engine.reconcile_full(&desired.table, unix_seconds(), &opts).await?;
    print_report(&report, &desired);
    Ok(if bad || !report.is_success() { EXIT_ERROR } else { EXIT_OK })
}

/// Prints what a pass did: one line per applied operation, then failures and held services.
fn print_report<E: KernelFailure>(report: &PassReport<E>, desired: &Snapshot) {
    for key in &report.plan.adopted {
        println!("adopted {key} (declared by {})", origin(desired, key));
    }
    for addr in &report.addresses.added {
        println!("added address {addr}/{}", crate::netif::host_prefix(*addr));
    }
    for line in describe_applied(&report.applied, &report.before) {
        println!("{line}");
    }
    for addr in &report.addresses.removed {
        println!("removed address {addr}/{}", crate::netif::host_prefix(*addr));
    }
    for change in &report.director.changes {
        println!("director: {change}");
    }
    for f in &report.director.failures {
        eprintln!("failed: {}: {}", f.what, f.error);
    }
    for f in &report.addresses.failures {
        let verb = if f.adding { "add" } else { "remove" };
        let needed: Vec<String> = f.services.iter().map(|key| format!("{key} of {}", origin(desired, key))).collect();
        if needed.is_empty() {
            eprintln!("failed: {verb} address {}: {}", f.addr, f.error);
        } else {
            eprintln!("failed: {verb} address {} (needed by {}): {}", f.addr, needed.join(", "), f.error);
        }
    }
    for f in &report.failures {
        match &f.object {
            Some(object) => eprintln!("failed: {object}: {}: {}", f.op, f.error),
            None => eprintln!("failed: {}: {}", f.op, f.error),
        }
    }
    for op in &report.unanswered {
        eprintln!("failed: {op}: no answer from the kernel client (outcome unknown)");
    }
    for key in &report.held {
        eprintln!("held: {key} left as it is until its object is valid again");
    }
    let draining = report.plan.draining.len();
    if draining > 0 {
        println!("{draining} backend(s) draining (weight 0) until their connections end");
    }
    println!(
        "{} operation(s) applied, {} failed",
        report.applied.len() + report.addresses.added.len() + report.addresses.removed.len(),
        report.failures.len() + report.addresses.failures.len() + report.director.failures.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DestConfig, DestKey, Destination, Service, ServiceConfig, ServiceEntry, ServiceKey, Table};

    #[test]
    fn json_dump_has_string_keys_and_every_entry() {
        let key = ServiceKey::tcp([192, 0, 2, 1].into(), 80);
        let mut entry = ServiceEntry::new(Service::new(key, ServiceConfig::new(key.family(), "rr")));
        let dest = DestKey::new([10, 0, 0, 1].into(), 8080);
        entry.dests.insert(dest, Destination::new(dest, DestConfig::masquerade(3)));
        let table = Table { services: [(key, entry)].into() };
        let json = serde_json::to_value(JsonTable::of(&table)).unwrap();
        assert_eq!(json["services"][0]["config"]["scheduler"], "rr");
        assert_eq!(json["services"][0]["destinations"][0]["config"]["weight"], 3);
        assert_eq!(json["services"][0]["key"]["Addr"]["port"], 80);
    }
}
