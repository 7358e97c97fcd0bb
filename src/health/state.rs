//! The health of one probe target as rise/fall counting: pure, no I/O, no clock of its own.
//!
//! A healthy target becomes unhealthy after `fall` consecutive failed probes, an unhealthy one healthy after `rise`
//! consecutive successes (keepalived's semantics). Any other result only moves the counters, so a target whose
//! probes alternate never flips when rise and fall are both at least 2: one lost probe must not take a backend out.
//! The state is serde-serializable so that it can be kept with the engine's state file across restarts.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ProbeError;

/// The health of one target and the counts that decide its next transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// Whether the target is currently considered healthy.
    pub healthy: bool,
    /// Successful probes in a row (reset by a failure).
    pub consecutive_ok: u32,
    /// Failed probes in a row (reset by a success).
    pub consecutive_fail: u32,
    /// The most recent failure's message, kept after the target recovers so that a status table can say why it
    /// last went down (`None`: no probe has failed yet).
    pub last_error: Option<String>,
    /// When the state last flipped, in seconds since the Unix epoch (`None`: never, it still has its initial
    /// state). Wall-clock seconds, not an `Instant`, because it is shown to operators and saved across restarts.
    pub last_transition: Option<u64>,
}

/// A flip of a target's health, returned by [`HealthState::record`] exactly when one happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transition {
    /// The target was unhealthy and has had `rise` successes in a row.
    BecameHealthy,
    /// The target was healthy and has had `fall` failures in a row.
    BecameUnhealthy,
}

impl Transition {
    /// Whether the target is healthy after this transition.
    pub fn healthy(self) -> bool {
        matches!(self, Transition::BecameHealthy)
    }
}

impl HealthState {
    /// A target seen for the first time, healthy or not as configured (keepalived's `alpha` starts it down), with
    /// no result counted yet.
    pub fn new(initial_healthy: bool) -> Self {
        HealthState {
            healthy: initial_healthy,
            consecutive_ok: 0,
            consecutive_fail: 0,
            last_error: None,
            last_transition: None,
        }
    }

    /// Counts one probe result and returns the transition it causes, if any.
    ///
    /// `rise` and `fall` below 1 count as 1 (validation upstream refuses them; a threshold of 0 would otherwise
    /// mean "flip without any result"). `now` (the wall clock, in seconds) is called only when the state flips,
    /// for `last_transition`: thousands of results a second need no clock. Counters saturate instead of wrapping,
    /// so a target that stays up for years never reads as freshly recovered.
    pub fn record(
        &mut self,
        result: Result<Duration, &ProbeError>,
        rise: u32,
        fall: u32,
        now: impl FnOnce() -> u64,
    ) -> Option<Transition> {
        let transition = match result {
            Ok(_latency) => {
                self.consecutive_ok = self.consecutive_ok.saturating_add(1);
                self.consecutive_fail = 0;
                (!self.healthy && self.consecutive_ok >= rise.max(1)).then_some(Transition::BecameHealthy)
            }
            Err(error) => {
                self.consecutive_fail = self.consecutive_fail.saturating_add(1);
                self.consecutive_ok = 0;
                self.last_error = Some(error.to_string());
                (self.healthy && self.consecutive_fail >= fall.max(1)).then_some(Transition::BecameUnhealthy)
            }
        };
        if let Some(transition) = transition {
            self.healthy = transition.healthy();
            self.last_transition = Some(now());
        }
        transition
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const OK: Result<Duration, &ProbeError> = Ok(Duration::from_millis(3));

    fn fail() -> ProbeError {
        ProbeError::Refused
    }

    #[test]
    fn a_healthy_target_needs_fall_failures_in_a_row() {
        let mut state = HealthState::new(true);
        let err = fail();
        assert_eq!(state.record(Err(&err), 2, 3, || 10), None);
        assert_eq!(state.record(Err(&err), 2, 3, || 11), None);
        assert_eq!(state.consecutive_fail, 2);
        assert!(state.healthy);
        assert_eq!(state.last_error.as_deref(), Some("connection refused"));
        assert_eq!(state.record(Err(&err), 2, 3, || 12), Some(Transition::BecameUnhealthy));
        assert!(!state.healthy);
        assert_eq!(state.last_transition, Some(12));
        // Further failures are no new transition.
        assert_eq!(state.record(Err(&err), 2, 3, || 13), None);
        assert_eq!(state.consecutive_fail, 4);
    }

    #[test]
    fn an_unhealthy_target_needs_rise_successes_in_a_row() {
        let mut state = HealthState::new(false);
        let err = fail();
        assert_eq!(state.record(OK, 2, 3, || 1), None);
        assert_eq!(state.record(Err(&err), 2, 3, || 2), None, "a failure resets the successes");
        assert_eq!(state.consecutive_ok, 0);
        assert_eq!(state.record(OK, 2, 3, || 3), None);
        assert_eq!(state.record(OK, 2, 3, || 4), Some(Transition::BecameHealthy));
        assert!(state.healthy);
        assert_eq!(state.last_transition, Some(4));
        assert_eq!(state.last_error.as_deref(), Some("connection refused"), "the last error is kept for status");
        assert_eq!(state.record(OK, 2, 3, || 5), None);
    }

    #[test]
    fn a_success_resets_the_failures() {
        let mut state = HealthState::new(true);
        let err = fail();
        state.record(Err(&err), 1, 2, || 0);
        state.record(OK, 1, 2, || 1);
        assert_eq!(state.consecutive_fail, 0);
        assert_eq!(state.record(Err(&err), 1, 2, || 2), None);
        assert_eq!(state.record(Err(&err), 1, 2, || 3), Some(Transition::BecameUnhealthy));
    }

    #[test]
    fn thresholds_of_zero_count_as_one() {
        let mut state = HealthState::new(true);
        assert_eq!(state.record(OK, 0, 0, || 0), None, "a success never takes a healthy target down");
        assert_eq!(state.record(Err(&fail()), 0, 0, || 1), Some(Transition::BecameUnhealthy));
        assert_eq!(state.record(OK, 0, 0, || 2), Some(Transition::BecameHealthy));
    }

    #[test]
    fn counters_saturate() {
        let mut state = HealthState { consecutive_ok: u32::MAX, ..HealthState::new(true) };
        assert_eq!(state.record(OK, 1, 1, || 0), None);
        assert_eq!(state.consecutive_ok, u32::MAX);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut state = HealthState::new(true);
        state.record(Err(&ProbeError::Timeout(Duration::from_secs(1))), 1, 1, || 1_700_000_000);
        let json = serde_json::to_string(&state).unwrap();
        let back: HealthState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
    }

    proptest! {
        /// Replays results and checks every step against the definition: a flip happens exactly when the run of
        /// same results ending at this step reaches the threshold of the state before it, and never otherwise.
        #[test]
        fn flips_exactly_when_a_run_reaches_its_threshold(
            initial in any::<bool>(),
            rise in 1u32..5,
            fall in 1u32..5,
            results in proptest::collection::vec(any::<bool>(), 0..60),
        ) {
            let err = fail();
            let mut state = HealthState::new(initial);
            let mut run_ok = 0u32;
            let mut run_fail = 0u32;
            for (step, ok) in results.iter().copied().enumerate() {
                let before = state.healthy;
                if ok { run_ok += 1; run_fail = 0; } else { run_fail += 1; run_ok = 0; }
                let transition = state.record(if ok { OK } else { Err(&err) }, rise, fall, || step as u64);
                let expected = match (before, ok) {
                    (false, true) if run_ok >= rise => Some(Transition::BecameHealthy),
                    (true, false) if run_fail >= fall => Some(Transition::BecameUnhealthy),
                    _ => None,
                };
                prop_assert_eq!(transition, expected, "step {}", step);
                prop_assert_eq!(state.healthy, expected.map_or(before, Transition::healthy));
                prop_assert_eq!((state.consecutive_ok, state.consecutive_fail), (run_ok, run_fail));
                if transition.is_some() {
                    prop_assert_eq!(state.last_transition, Some(step as u64));
                }
            }
        }

        /// Alternating results (or any sequence without `min(rise, fall)` equal results in a row) never flip a
        /// target when both thresholds are at least 2.
        #[test]
        fn alternating_results_never_flip(
            initial in any::<bool>(),
            rise in 2u32..6,
            fall in 2u32..6,
            first_ok in any::<bool>(),
            len in 0usize..100,
        ) {
            let err = fail();
            let mut state = HealthState::new(initial);
            for step in 0..len {
                let ok = (step % 2 == 0) == first_ok;
                let transition = state.record(if ok { OK } else { Err(&err) }, rise, fall, || step as u64);
                prop_assert_eq!(transition, None);
                prop_assert_eq!(state.healthy, initial);
            }
            prop_assert_eq!(state.last_transition, None);
        }
    }
}
