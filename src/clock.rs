//! The wall clock, in one place. Drain deadlines, check transitions and metrics timestamps survive restarts or
//! leave the process, so they are Unix time, not a monotonic instant; a clock set before 1970 reads as 0.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn unix_seconds() -> u64 {
    since_epoch().as_secs()
}

/// Seconds since the Unix epoch with their fraction (Prometheus timestamps).
pub fn unix_seconds_f64() -> f64 {
    since_epoch().as_secs_f64()
}

fn since_epoch() -> std::time::Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_readings_agree_and_are_after_2020() {
        let whole = unix_seconds();
        let fraction = unix_seconds_f64();
        assert!(whole > 1_577_836_800, "{whole}");
        assert!((fraction - whole as f64).abs() < 5.0, "{whole} vs {fraction}");
    }
}
