//! The values of keepalived's keywords: addresses, ports, numbers, timers and booleans, each refused with its file
//! and line when it is not one.

use std::net::IpAddr;

use super::parse::Node;
use crate::import::{ImportError, Place};

/// A syntax error at `place`.
pub fn error(place: &Place, message: impl Into<String>) -> ImportError {
    ImportError::Syntax { place: place.clone(), message: message.into() }
}

/// Word `i` of `node`, or an error naming what is missing.
pub fn word<'a>(node: &'a Node, i: usize, what: &str) -> Result<&'a str, ImportError> {
    node.word(i).ok_or_else(|| error(&node.place, format!("{}: {what} missing", node.keyword())))
}

/// An IPv4 or IPv6 address (an IPv6 address may carry a `%zone`, which is refused: IPVS has none).
pub fn ip(place: &Place, text: &str, what: &str) -> Result<IpAddr, ImportError> {
    text.parse().map_err(|_| error(place, format!("{what} `{text}` is not an IP address")))
}

/// A port, 0-65535.
pub fn port(place: &Place, text: &str, what: &str) -> Result<u16, ImportError> {
    text.parse().map_err(|_| error(place, format!("{what} `{text}` is not a port (0-65535)")))
}

/// An unsigned number between `min` and `max`.
pub fn number(place: &Place, text: &str, what: &str, min: u64, max: u64) -> Result<u64, ImportError> {
    match text.parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(error(place, format!("{what} `{text}` is not a number {min}-{max}"))),
    }
}

/// Word 1 of `node` as a number between `min` and `max`.
pub fn number_arg(node: &Node, min: u64, max: u64) -> Result<u64, ImportError> {
    let text = word(node, 1, "value")?;
    number(&node.place, text, node.keyword(), min, max)
}

/// A timer in seconds (keepalived takes decimals: `1.5`), in microseconds.
pub fn timer(node: &Node) -> Result<u64, ImportError> {
    let text = word(node, 1, "value")?;
    let bad = || error(&node.place, format!("{} `{text}` is not a number of seconds", node.keyword()));
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| bad())? };
    let mut micros = 0u64;
    for (i, digit) in fraction.bytes().take(6).enumerate() {
        micros += u64::from(digit - b'0') * 10u64.pow(5 - i as u32);
    }
    whole
        .checked_mul(1_000_000)
        .and_then(|w| w.checked_add(micros))
        .filter(|&t| t <= u64::from(u32::MAX) * 1_000_000)
        .ok_or_else(bad)
}

/// keepalived's optional boolean after a flag keyword (`inhibit_on_failure [true|false]`): absent means true.
pub fn flag(node: &Node) -> Result<bool, ImportError> {
    match node.word(1) {
        None => Ok(true),
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "true" | "on" | "yes" => Ok(true),
            "false" | "off" | "no" => Ok(false),
            _ => Err(error(&node.place, format!("{} `{text}` is not true or false", node.keyword()))),
        },
    }
}

/// Whole seconds from microseconds, rounded up, and whether rounding changed it.
pub fn whole_seconds(micros: u64) -> (u64, bool) {
    let seconds = micros.div_ceil(1_000_000);
    (seconds, !micros.is_multiple_of(1_000_000))
}
