//! Arbitrary bytes as the reply datagram to the DNS health probe's query: hickory-proto's message decoder, then
//! the probe's verdict (`health::probe::replay::dns`: a response to our id, NOERROR, at least one answer).
//!
//! Oracle: nothing panics; a healthy verdict is checked against the raw header, independently of the decoder:
//! the message id is the query's, the QR bit says response, the RCODE is 0 and ANCOUNT is not.
#![no_main]

use ipvs_reconciler::health::probe::replay;
use libfuzzer_sys::fuzz_target;

const ID: u16 = 0x1234;

fuzz_target!(|data: &[u8]| {
    if replay::dns(data, ID).is_ok() {
        assert!(data.len() >= 12, "healthy on a reply shorter than a DNS header");
        assert_eq!(u16::from_be_bytes([data[0], data[1]]), ID, "healthy on another query's id");
        assert!(data[2] & 0x80 != 0, "healthy on a query, not a response");
        assert_eq!(data[3] & 0x0f, 0, "healthy with an error RCODE");
        assert_ne!(u16::from_be_bytes([data[6], data[7]]), 0, "healthy without an answer");
    }
});
