//! The listeners the health-check benchmark probes (tests/vm/bench/health): one process answering every backend.
//!
//! The benchmark gives a whole /16 to `lo` as a local route, so one socket bound to the wildcard address answers
//! for 10,000 distinct backend addresses, and the checkers under test (ours and keepalived's) make 10,000 distinct
//! probes. It counts what it served, the neutral measure of how many checks each checker really made.
//!
//! - `--tcp ADDR`: accepts and closes (a TCP check needs only the handshake);
//! - `--http ADDR`: HTTP/1.1, `200 ok` to every request, one request per connection as the checkers send;
//! - `--counts FILE`: `{"tcp_accepted": N, "http_requests": M}`, rewritten (by rename) every 200 ms.
//!
//! Built as an example (`cargo build --release --example check-targets`) so that the product binary does not carry
//! it; it runs on a current-thread runtime so that it takes at most one of the VM's two CPUs from the checker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use clap::Parser;
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "TCP and HTTP listeners that count what they served (for the health-check benchmark)")]
struct Args {
    /// Accept TCP connections here and close them at once.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    /// Answer every HTTP request here with 200 and "ok".
    #[arg(long)]
    http: Option<SocketAddr>,
    /// Where the counts are written.
    #[arg(long)]
    counts: PathBuf,
    /// The listen backlog: a second's worth of checks may arrive in a burst.
    #[arg(long, default_value_t = 4096)]
    backlog: u32,
}

#[derive(Default)]
struct Counts {
    tcp_accepted: AtomicU64,
    http_requests: AtomicU64,
}

fn listen(addr: SocketAddr, backlog: u32) -> anyhow::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr).with_context(|| format!("binding {addr}"))?;
    socket.listen(backlog).with_context(|| format!("listening on {addr}"))
}

async fn serve_tcp(listener: TcpListener, counts: Arc<Counts>) {
    loop {
        // Errors such as EMFILE under a burst are transient: the checker sees a refused or timed-out check,
        // and the counts show it.
        if let Ok((stream, _)) = listener.accept().await {
            counts.tcp_accepted.fetch_add(1, Ordering::Relaxed);
            drop(stream);
        }
    }
}

async fn ok(State(counts): State<Arc<Counts>>) -> &'static str {
    counts.http_requests.fetch_add(1, Ordering::Relaxed);
    "ok"
}

async fn write_counts(path: PathBuf, counts: Arc<Counts>) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tick.tick().await;
        let text = serde_json::json!({
            "tcp_accepted": counts.tcp_accepted.load(Ordering::Relaxed),
            "http_requests": counts.http_requests.load(Ordering::Relaxed),
        })
        .to_string();
        tokio::fs::write(&tmp, text).await.with_context(|| format!("writing {}", tmp.display()))?;
        tokio::fs::rename(&tmp, &path).await.with_context(|| format!("renaming to {}", path.display()))?;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let counts = Arc::new(Counts::default());
    if let Some(addr) = args.tcp {
        tokio::spawn(serve_tcp(listen(addr, args.backlog)?, counts.clone()));
    }
    if let Some(addr) = args.http {
        let app = Router::new().fallback(ok).with_state(counts.clone());
        let listener = listen(addr, args.backlog)?;
        tokio::spawn(async move { axum::serve(listener, app).await });
    }
    write_counts(args.counts, counts).await
}
