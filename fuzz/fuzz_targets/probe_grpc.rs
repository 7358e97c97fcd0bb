//! Arbitrary bytes as a backend's answer to the gRPC health probe: HTTP/2 frames (the server's preface first)
//! read by hyper's HTTP/2 client under tonic-health's generated client (the probe's own `exchange`), over a stream
//! that yields the bytes, then closes (`health::probe::replay::grpc`). The first input byte picks the service
//! asked about (the server as a whole, or a named one).
//!
//! Oracle: nothing panics; every verdict comes within 10 s (the stream never blocks, so a wait is a hang).
#![no_main]

use std::time::Duration;

use ipvs_reconciler::health::probe::replay;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Some((settings, response)) = data.split_first() else { return };
    let service = (settings % 2 == 1).then_some("grpc.health.v1.Health");
    runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), replay::grpc(response, service)).await })
        .unwrap_or_else(|_| panic!("the gRPC probe hangs on a response that has ended"))
        .ok();
});
