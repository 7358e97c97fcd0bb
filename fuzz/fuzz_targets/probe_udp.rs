//! Arbitrary bytes as the reply datagram to the UDP health probe (`health::probe::replay::udp`: what the probe's
//! buffer receives of it, compared with the expected prefix). The first input byte gives the prefix length (up
//! to 63), the prefix follows, the rest is the reply.
//!
//! Oracle: nothing panics; healthy exactly when the reply starts with the prefix; a mismatch message stays short
//! (at most 16 reply bytes shown, whatever the reply's size).
#![no_main]

use ipvs_reconciler::health::probe::replay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((len, rest)) = data.split_first() else { return };
    let len = usize::from(len % 64).min(rest.len());
    let (prefix, reply) = rest.split_at(len);
    match replay::udp(reply, prefix) {
        Ok(()) => assert!(reply.starts_with(prefix), "healthy although the reply does not start with the prefix"),
        Err(e) => {
            assert!(!reply.starts_with(prefix), "unhealthy although the reply starts with the prefix: {e}");
            let shown = e.to_string().len();
            assert!(shown <= 120 + 2 * prefix.len(), "a {shown}-character message for a mismatch");
        }
    }
});
