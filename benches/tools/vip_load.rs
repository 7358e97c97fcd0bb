//! The address path of the engine alone, against the real kernel: N services, each with its own VIP, reconciled by
//! the engine over an in-memory IPVS table (so that only the addresses touch the kernel) and the real VIP
//! interface (rtnetlink). tests/vm/bench/vips runs it inside the VM, in a namespace of its own, beside `ip -batch`
//! doing the same.
//!
//! Phases, each timed (wall and this process's CPU):
//! - `add`: the first pass, N addresses added (one listing, then one add each);
//! - `noop`: `--rounds` passes over an unchanged table (each one listing and a plan that finds nothing to do);
//! - `remove`: a pass with no service left, N addresses removed.
//!
//! Prints one JSON object.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, bail};
use clap::Parser;
use ipvs_reconciler::engine::{Engine, FakeKernel, NodeVips, PassOptions};
use ipvs_reconciler::ipvs::NetnsSpec;
use ipvs_reconciler::model::{DestConfig, DestKey, Destination, ObjectId, Service, ServiceConfig, ServiceKey};
use ipvs_reconciler::netif::VipInterface;
use ipvs_reconciler::table::{DesiredService, DesiredTable};

#[derive(Parser)]
#[command(about = "Time and CPU of the engine binding N VIPs, a no-op address pass, and removing them")]
struct Args {
    /// How many services (one VIP each).
    #[arg(long, default_value_t = 10_000)]
    count: u32,
    /// The dummy interface.
    #[arg(long, default_value = "ipvs0")]
    interface: String,
    /// No-op passes to time.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// 10.200.0.1, 10.200.0.2, ...
fn vip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0ac8_0000 + 1 + i))
}

fn table(count: u32) -> DesiredTable {
    let services = (0..count)
        .map(|i| {
            let key = ServiceKey::tcp(vip(i), 80);
            let dest = DestKey::new(IpAddr::V4(Ipv4Addr::new(172, 16, 0, 1)), 8080);
            let service = DesiredService {
                service: Service::new(key, ServiceConfig::new(key.family(), "rr")),
                dests: [(dest, Destination::new(dest, DestConfig::masquerade(1)))].into(),
                drain_timeout_secs: 0,
                origin: ObjectId::kubernetes("bench", format!("svc-{i}")),
                health: None,
                bind_address: true,
                withdraw_address_when_down: false,
            };
            (key, Arc::new(service))
        })
        .collect();
    DesiredTable { services }
}

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    usage
        .map(|u| {
            let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
            t(u.user_time()) + t(u.system_time())
        })
        .unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir().context("a directory for the state file")?;
    let interface = VipInterface::open(&NetnsSpec::Current, &args.interface).await?;
    let mut engine = Engine::new(FakeKernel::default(), dir.path().join("state.json"))?
        .with_addresses(Box::new(NodeVips::new(interface)));
    let opts = PassOptions { allow_mass_delete: true, ..Default::default() };
    let desired = table(args.count);

    let timed = async |engine: &mut Engine<FakeKernel>, desired: &DesiredTable| -> anyhow::Result<(f64, f64, usize)> {
        let (wall, cpu) = (Instant::now(), cpu_seconds());
        let report = engine.reconcile_full(desired, 0, &opts).await?;
        if !report.is_success() {
            bail!("the pass failed: {:?}", report.addresses.failures.first());
        }
        let changes = report.addresses.added.len() + report.addresses.removed.len();
        Ok((wall.elapsed().as_secs_f64(), cpu_seconds() - cpu, changes))
    };

    let add = timed(&mut engine, &desired).await?;
    if add.2 != args.count as usize {
        bail!("{} addresses added, {} expected", add.2, args.count);
    }
    let mut noop = Vec::new();
    for _ in 0..args.rounds {
        let round = timed(&mut engine, &desired).await?;
        if round.2 != 0 {
            bail!("a pass over an unchanged table changed {} addresses", round.2);
        }
        noop.push(round);
    }
    let remove = timed(&mut engine, &DesiredTable::default()).await?;
    if remove.2 != args.count as usize {
        bail!("{} addresses removed, {} expected", remove.2, args.count);
    }
    let mut noop_wall: Vec<f64> = noop.iter().map(|r| r.0).collect();
    noop_wall.sort_by(f64::total_cmp);
    let median = noop_wall.get(noop_wall.len() / 2).copied().unwrap_or(f64::NAN);
    let noop_cpu: Vec<f64> = noop.iter().map(|r| r.1).collect();
    println!(
        "{}",
        serde_json::json!({
            "count": args.count,
            "add_s": add.0, "add_cpu_s": add.1,
            "noop_s": noop_wall, "noop_median_s": median, "noop_cpu_s": noop_cpu,
            "remove_s": remove.0, "remove_cpu_s": remove.1,
        })
    );
    Ok(())
}
