//! Arbitrary bytes as a backend's answer to the HTTP health probe: hyper's HTTP/1.1 client (the probe's own
//! `exchange`: handshake, request, response head, body search for `expectBody`) over a stream that yields the
//! bytes, then closes (`health::probe::replay::http`). The first input byte picks the probe's settings (method,
//! accepted statuses, body needle); the rest is the response.
//!
//! Oracle: nothing panics; every verdict comes within 10 s (the stream never blocks, so a wait is a hang); a
//! healthy verdict needs a status line in the bytes.
#![no_main]

use std::time::Duration;

use ipvs_reconciler::health::check::{HttpMethod, HttpProbe, StatusRange};
use ipvs_reconciler::health::probe::replay;
use libfuzzer_sys::fuzz_target;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime"))
}

fn probe(settings: u8) -> HttpProbe {
    let mut probe = HttpProbe::new("/healthz");
    probe = match settings % 3 {
        0 => probe,
        1 => probe.with_status(StatusRange::new(200, 399).into_iter().collect()),
        _ => probe.with_status(StatusRange::single(503).into_iter().collect()),
    };
    match (settings / 3) % 4 {
        0 => probe,
        1 => probe.with_method(HttpMethod::Head),
        2 => probe.with_body("ok"),
        _ => probe.with_body("healthy"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((settings, response)) = data.split_first() else { return };
    let probe = probe(*settings);
    let verdict = runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), replay::http(response, &probe)).await })
        .unwrap_or_else(|_| panic!("the HTTP probe hangs on a response that has ended"));
    if verdict.is_ok() {
        assert!(response.windows(7).any(|w| w == b"HTTP/1."), "healthy without a status line");
    }
});
