//! The health scheduler alone, natively on the host: N targets checked every second against local listeners
//! (benches/tools/check_targets.rs), and what that costs this process. The VM benchmark (tests/vm/bench/health)
//! compares ours with keepalived under emulation, where every system call costs many times what it costs here;
//! this gives the figure for the machine itself.
//!
//! `cargo build --release --examples && target/release/examples/check-targets --tcp 0.0.0.0:18080 --counts c.json &
//! target/release/examples/health-load --targets 10000 --type tcp --port 18080`
//!
//! Targets are 127.1.0.1, 127.1.0.2, ...: all of 127.0.0.0/8 is local on Linux, so one wildcard listener answers
//! for every one of them. Prints one JSON line: CPU (user + system, of this whole process), peak RSS, and the
//! results the scheduler counted in the window.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use ipvs_reconciler::health::{Check, HealthScheduler, HttpProbe, Probe, Prober, Schedule, SchedulerConfig, TargetKey};

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Tcp,
    Http,
}

#[derive(Parser)]
#[command(about = "CPU and memory of the health scheduler checking N local targets every second")]
struct Args {
    /// How many targets.
    #[arg(long, default_value_t = 10_000)]
    targets: u32,
    /// The check.
    #[arg(long, value_enum, default_value_t = Kind::Tcp)]
    r#type: Kind,
    /// The port of the listeners.
    #[arg(long)]
    port: u16,
    /// Seconds before the window (every target started).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// The measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    window: u64,
    /// Worker threads of the main runtime (as `ipvs-reconciler`'s: 2).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Run the scheduler on the main runtime's workers instead of its own thread (`run` and `agent` give it
    /// its own thread; this shows what that saves).
    #[arg(long)]
    shared_runtime: bool,
}

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF);
    usage.map_or(0.0, |u| {
        let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        tv(u.user_time()) + tv(u.system_time())
    })
}

fn peak_rss_mib() -> f64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map_or(0.0, |u| u.max_rss() as f64 / 1024.0)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let (probe, kind) = match args.r#type {
            Kind::Tcp => (Probe::Tcp, "tcp"),
            Kind::Http => (Probe::Http(HttpProbe::new("/healthz")), "http"),
        };
        let check = Check::new(probe, Duration::from_millis(500));
        let schedule = Schedule { interval: Duration::from_secs(1), rise: 2, fall: 3, initial_healthy: true };
        let base = u32::from(Ipv4Addr::new(127, 1, 0, 1));
        let targets = (0..args.targets)
            .map(|i| (TargetKey::new(SocketAddr::from((Ipv4Addr::from(base + i), args.port)), check.clone()), schedule))
            .collect();
        let scheduler = if args.shared_runtime {
            HealthScheduler::spawn(Prober::new(), SchedulerConfig::default())
        } else {
            HealthScheduler::spawn_dedicated(Prober::new(), SchedulerConfig::default())
                .context("starting the scheduler's thread")?
        };
        scheduler.set_targets(targets);
        tokio::time::sleep(Duration::from_secs(args.warmup)).await;
        let counters = scheduler.counters();
        let ok0 = counters.results(kind, "ok");
        let all0: u64 = all_results(counters, kind);
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        tokio::time::sleep(Duration::from_secs(args.window)).await;
        let (cpu1, elapsed) = (cpu_seconds(), t0.elapsed().as_secs_f64());
        let ok = counters.results(kind, "ok") - ok0;
        let failed = all_results(counters, kind) - all0 - ok;
        println!(
            "{}",
            serde_json::json!({
                "targets": args.targets, "type": kind, "workers": args.workers,
                "scheduler": if args.shared_runtime { "main runtime" } else { "own thread" }, "window_seconds": elapsed,
                "cpu_cores": (cpu1 - cpu0) / elapsed, "peak_rss_mib": peak_rss_mib(),
                "checks_ok_per_second": ok as f64 / elapsed, "checks_failed": failed,
                "skipped": counters.skipped(),
            })
        );
        Ok::<(), anyhow::Error>(())
    })
}

fn all_results(counters: &ipvs_reconciler::health::SchedulerCounters, kind: &str) -> u64 {
    ipvs_reconciler::health::OUTCOME_LABELS.iter().map(|outcome| counters.results(kind, outcome)).sum::<u64>()
        + counters.results(kind, "ok")
}
