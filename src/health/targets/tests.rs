//! The desired set of targets: services sharing a probe end up with one schedule, whatever their order.

use std::net::SocketAddr;
use std::time::Duration;

use super::*;
use crate::health::check::Probe;

const SECOND: Duration = Duration::from_secs(1);

fn tcp(n: u8) -> TargetKey {
    TargetKey::new(SocketAddr::from(([10, 0, 0, n], 80)), Check::new(Probe::Tcp, Duration::from_millis(500)))
}

fn every(interval: Duration, rise: u32, fall: u32) -> Schedule {
    Schedule { interval, rise, fall, initial_healthy: true }
}

#[test]
fn conflicting_schedules_of_a_shared_probe_keep_the_smaller_whatever_the_order() {
    let fast = every(SECOND, 3, 3);
    let slow = every(SECOND * 5, 1, 1);
    let mut one = TargetSet::new();
    assert!(one.insert(tcp(1), slow));
    assert!(!one.insert(tcp(1), fast), "a conflict is reported");
    let mut other = TargetSet::new();
    other.insert(tcp(1), fast);
    other.insert(tcp(1), slow);
    assert_eq!(one, other);
    assert_eq!(one.into_inner()[&tcp(1)], fast);
}
