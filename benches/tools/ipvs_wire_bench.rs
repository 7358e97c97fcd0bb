//! `ipvs-wire-bench`: times the IPVS client itself (no YAML, no planner, no state file) on the benchmark table of
//! `tests/vm/bench/generate`: programming it from empty with one [`Ipvs::apply`] call, then reading it back with
//! [`Ipvs::read_table`]. Prints one JSON object on stdout.
//!
//! ```text
//! ipvs-wire-bench --netns NAME --services N --dests M [--read-only] [--reads K] [--service-dumps K]
//!                 [--sockets S] [--receive-buffer B] [--dumps-per-batch D] [--batch-max-ops O]
//!                 [--batches-in-flight F] [--current-thread]
//! ```
//!
//! The table is the generator's, address for address (4 TCP services per VIP on ports 80/443/8080/8443 from
//! 198.18.0.0/15, `wlc`, masquerading destinations of weight 1 on port 8080, one distinct 10.0.0.0/8 address each),
//! so `ipvsadm -Sn` of a programmed namespace equals the generated `ipvsadm.rules`. Without `--read-only` the
//! namespace must hold no service; with it, the table must already be there (programmed by any tool) and is only
//! read. Exit status: 0 when every operation succeeded and every read saw exactly the table, 1 otherwise, 2 on bad
//! usage.
#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use ipvs_reconciler::ipvs::{ConnectOptions, Ipvs, NetnsSpec};
use ipvs_reconciler::model::{DestConfig, DestKey, Destination, Family, Op, Service, ServiceConfig, ServiceKey, Table};

/// The generator's virtual ports, cycled over the services of one VIP.
const PORTS: [u16; 4] = [80, 443, 8080, 8443];
/// Port of every destination.
const BACKEND_PORT: u16 = 8080;
/// Scheduler of every service.
const SCHEDULER: &str = "wlc";
/// Weight of every destination.
const WEIGHT: u32 = 1;

/// Times `Ipvs::apply` and `Ipvs::read_table` on the benchmark table; the tuning options default to the client's.
#[derive(Debug, Parser)]
#[command(name = "ipvs-wire-bench")]
struct Args {
    /// Network namespace (a name under /run/netns or a path); the current one when absent.
    #[arg(long)]
    netns: Option<String>,
    /// Number of services.
    #[arg(long, default_value_t = 10_000)]
    services: usize,
    /// Destinations per service.
    #[arg(long, default_value_t = 10)]
    dests: usize,
    /// Only read the table (it must already be programmed).
    #[arg(long)]
    read_only: bool,
    /// How many times to read the table (each read is timed); 0 to time programming alone.
    #[arg(long, default_value_t = 1)]
    reads: usize,
    /// Also time one dump of the services alone (the first step of every read), this many times.
    #[arg(long, default_value_t = 0)]
    service_dumps: usize,
    /// Tuning, to find what limits the client: `ConnectOptions::sockets` [default: the client's default].
    #[arg(long)]
    sockets: Option<usize>,
    /// `ConnectOptions::receive_buffer`, bytes.
    #[arg(long)]
    receive_buffer: Option<usize>,
    /// `ConnectOptions::dumps_per_batch`.
    #[arg(long)]
    dumps_per_batch: Option<usize>,
    /// `ConnectOptions::batch_max_ops`.
    #[arg(long)]
    batch_max_ops: Option<usize>,
    /// `ConnectOptions::batches_in_flight`.
    #[arg(long)]
    batches_in_flight: Option<usize>,
    /// Run on tokio's current-thread runtime instead of the CLI's multi-threaded one (2 workers): every wake-up
    /// stays on one thread.
    #[arg(long)]
    current_thread: bool,
}

impl Args {
    /// The client's defaults, with the tuning arguments given.
    fn options(&self, netns: NetnsSpec) -> ConnectOptions {
        let d = ConnectOptions::default();
        ConnectOptions {
            netns,
            sockets: self.sockets.unwrap_or(d.sockets),
            receive_buffer: self.receive_buffer.unwrap_or(d.receive_buffer),
            dumps_per_batch: self.dumps_per_batch.unwrap_or(d.dumps_per_batch),
            batch_max_ops: self.batch_max_ops.unwrap_or(d.batch_max_ops),
            batches_in_flight: self.batches_in_flight.unwrap_or(d.batches_in_flight),
            ..d
        }
    }
}

/// Splits `index` into base-250 digits so that the last octet is never 0 or 255 (as the generator does).
fn octets_250(index: usize) -> (usize, usize, usize) {
    (index / 62_500, (index / 250) % 250, index % 250 + 1)
}

/// The virtual address of service `i`.
fn vip(i: usize) -> Result<Ipv4Addr> {
    let (hi, mid, lo) = octets_250(i / PORTS.len());
    ensure!(hi <= 1, "too many services for 198.18.0.0/15");
    Ok(Ipv4Addr::new(198, 18 + hi as u8, mid as u8, lo as u8))
}

/// The address of destination `j` of service `i`.
fn backend(i: usize, j: usize, dests: usize) -> Result<Ipv4Addr> {
    let (hi, mid, lo) = octets_250(i * dests + j);
    ensure!(hi <= 254, "too many destinations for 10.0.0.0/8");
    Ok(Ipv4Addr::new(10, hi as u8, mid as u8, lo as u8))
}

/// The key of service `i`.
fn service_key(i: usize) -> Result<ServiceKey> {
    Ok(ServiceKey::tcp(IpAddr::V4(vip(i)?), PORTS[i % PORTS.len()]))
}

/// Every operation that builds the table from empty: each service followed by its destinations.
fn build_ops(services: usize, dests: usize) -> Result<Vec<Op>> {
    let mut ops = Vec::with_capacity(services * (dests + 1));
    for i in 0..services {
        let key = service_key(i)?;
        ops.push(Op::AddService(Service::new(key, ServiceConfig::new(Family::V4, SCHEDULER))));
        for j in 0..dests {
            let dest = DestKey::new(IpAddr::V4(backend(i, j, dests)?), BACKEND_PORT);
            ops.push(Op::AddDest(key, Destination::new(dest, DestConfig::masquerade(WEIGHT))));
        }
    }
    Ok(ops)
}

/// Checks that `table` is exactly the benchmark table (keys, scheduler, destinations and their configuration).
fn check_table(table: &Table, services: usize, dests: usize) -> Result<()> {
    ensure!(table.len() == services, "read {} services, expected {services}", table.len());
    ensure!(
        table.dest_count() == services * dests,
        "read {} destinations, expected {}",
        table.dest_count(),
        services * dests
    );
    for i in 0..services {
        let key = service_key(i)?;
        let Some(entry) = table.services.get(&key) else { bail!("service {key} missing from the read") };
        ensure!(
            entry.service.config.scheduler == SCHEDULER,
            "service {key}: scheduler {}",
            entry.service.config.scheduler
        );
        for j in 0..dests {
            let dest = DestKey::new(IpAddr::V4(backend(i, j, dests)?), BACKEND_PORT);
            let Some(d) = entry.dests.get(&dest) else { bail!("destination {dest} of {key} missing from the read") };
            ensure!(d.config == DestConfig::masquerade(WEIGHT), "destination {dest} of {key}: {:?}", d.config);
        }
    }
    Ok(())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

async fn bench(args: &Args) -> Result<serde_json::Value> {
    let netns = match &args.netns {
        Some(name) => NetnsSpec::parse(name)?,
        None => NetnsSpec::Current,
    };
    let options = args.options(netns);
    let t0 = Instant::now();
    let ipvs = Ipvs::connect_with(options.clone()).await.context("connecting to IPVS")?;
    let connect = t0.elapsed();

    let mut report = serde_json::json!({
        "services": args.services,
        "dests_per_service": args.dests,
        "sockets": options.sockets,
        "receive_buffer": options.receive_buffer,
        "dumps_per_batch": options.dumps_per_batch,
        "batch_max_ops": options.batch_max_ops,
        "batches_in_flight": options.batches_in_flight,
        "runtime": if args.current_thread { "current_thread" } else { "multi_thread(2)" },
        "connect_seconds": secs(connect),
    });

    if !args.read_only {
        let before = ipvs.services().await.context("listing services before programming")?;
        ensure!(
            before.is_empty(),
            "the namespace already holds {} services: programming must start empty",
            before.len()
        );
        let t = Instant::now();
        let ops = build_ops(args.services, args.dests)?;
        let build = t.elapsed();
        let t = Instant::now();
        let results = ipvs.apply(&ops).await;
        let apply = t.elapsed();
        let failed: Vec<String> =
            results.iter().zip(&ops).filter_map(|(r, op)| r.as_ref().err().map(|e| format!("{op}: {e}"))).collect();
        report["ops"] = ops.len().into();
        report["build_ops_seconds"] = secs(build).into();
        report["apply_seconds"] = secs(apply).into();
        report["ops_failed"] = failed.len().into();
        if let Some(first) = failed.first() {
            bail!("{} of {} operations failed; first: {first}", failed.len(), ops.len());
        }
    }

    let mut reads = Vec::with_capacity(args.reads);
    for _ in 0..args.reads {
        let t = Instant::now();
        let table = ipvs.read_table().await.context("reading the table")?;
        reads.push(secs(t.elapsed()));
        check_table(&table, args.services, args.dests)?;
    }
    report["read_seconds"] = reads.first().copied().into();
    report["read_seconds_all"] = reads.into();

    let mut service_dumps = Vec::with_capacity(args.service_dumps);
    for _ in 0..args.service_dumps {
        let t = Instant::now();
        let services = ipvs.services().await.context("dumping the services")?;
        service_dumps.push(secs(t.elapsed()));
        ensure!(services.len() == args.services, "dumped {} services, expected {}", services.len(), args.services);
    }
    if !service_dumps.is_empty() {
        report["service_dump_seconds_all"] = service_dumps.into();
    }
    report["total_seconds"] = secs(t0.elapsed()).into();
    Ok(report)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut builder = if args.current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(2);
        b
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ipvs-wire-bench: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench(&args)) {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ipvs-wire-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
