//! Failure isolation for the introspection endpoint: after repeated failures, stop calling
//! it for a back-off (requests get `503` with `Retry-After` at once), then let one probe
//! through; its success closes the circuit, its failure doubles the back-off (up to a cap).

use std::{
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Default number of consecutive failures that open the circuit: 3.
pub const DEFAULT_FAILURE_THRESHOLD: u32 = 3;
/// Default first back-off once the circuit opens: 5 seconds (doubling up to 16 times it).
pub const DEFAULT_FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// The back-off grows up to this multiple of the configured one.
const MAX_BACKOFF_FACTOR: u32 = 16;

#[derive(Debug)]
struct State {
    failures: u32,
    open_until: Option<Instant>,
    probing: bool,
    backoff: Duration,
}

/// The circuit of one endpoint. Its lock is never held across an `.await`.
#[derive(Debug)]
pub(super) struct Breaker {
    state: Mutex<State>,
    threshold: u32,
    base: Duration,
}

/// Leave to make one call; report how it went with [`Ticket::succeeded`] or
/// [`Ticket::failed`]. Dropped unreported (the request went away), a probe frees its slot.
pub(super) struct Ticket<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    pub(super) fn new(threshold: u32, base: Duration) -> Self {
        Self {
            state: Mutex::new(State {
                failures: 0,
                open_until: None,
                probing: false,
                backoff: base,
            }),
            threshold,
            base,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// How long to wait when no call may be made now: the circuit is open, or half-open with
    /// its probe under way.
    pub(super) fn closed_for(&self, now: Instant) -> Option<Duration> {
        let st = self.state();
        match st.open_until {
            Some(until) if now < until => Some(until - now),
            Some(_) if st.probing => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// A ticket for one call, or how long to wait.
    pub(super) fn admit(&self, now: Instant) -> Result<Ticket<'_>, Duration> {
        let mut st = self.state();
        let probe = match st.open_until {
            None => false,
            Some(until) if now < until => return Err(until - now),
            Some(_) if st.probing => return Err(Duration::from_secs(1)),
            Some(_) => {
                st.probing = true;
                true
            }
        };
        Ok(Ticket {
            breaker: self,
            probe,
            reported: false,
        })
    }
}

impl Ticket<'_> {
    /// The endpoint answered.
    pub(super) fn succeeded(mut self) {
        self.reported = true;
        let mut st = self.breaker.state();
        st.failures = 0;
        st.open_until = None;
        st.probing = false;
        st.backoff = self.breaker.base;
    }

    /// The endpoint could not be used; returns the back-off now in force, if any.
    pub(super) fn failed(mut self, now: Instant) -> Option<Duration> {
        self.reported = true;
        let breaker = self.breaker;
        let mut st = breaker.state();
        st.failures = st.failures.saturating_add(1);
        if self.probe {
            st.probing = false;
            st.backoff = (st.backoff * 2).min(breaker.base * MAX_BACKOFF_FACTOR);
            st.open_until = now.checked_add(st.backoff);
        } else if st.open_until.is_none() && st.failures >= breaker.threshold {
            st.open_until = now.checked_add(st.backoff);
        }
        st.open_until
            .map(|until| until.saturating_duration_since(now))
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            self.breaker.state().probing = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(5);

    #[test]
    fn opens_after_the_threshold_then_probes_once() {
        let breaker = Breaker::new(3, BASE);
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(breaker.admit(t0).expect("closed").failed(t0), None);
        }
        assert_eq!(breaker.admit(t0).expect("closed").failed(t0), Some(BASE));
        assert_eq!(breaker.closed_for(t0), Some(BASE));
        assert!(breaker.admit(t0 + Duration::from_secs(4)).is_err());
        // Half-open: one probe at a time.
        let later = t0 + BASE;
        let probe = breaker.admit(later).expect("probe");
        assert!(breaker.admit(later).is_err());
        // A failed probe doubles the back-off.
        assert_eq!(probe.failed(later), Some(BASE * 2));
        assert!(breaker.admit(later + BASE).is_err());
        let probe = breaker.admit(later + BASE * 2).expect("probe");
        probe.succeeded();
        assert_eq!(breaker.closed_for(later + BASE * 2), None);
        // Closed again, with the threshold and back-off reset.
        let t1 = later + BASE * 2;
        for _ in 0..2 {
            assert_eq!(breaker.admit(t1).expect("closed").failed(t1), None);
        }
        assert_eq!(breaker.admit(t1).expect("closed").failed(t1), Some(BASE));
    }

    #[test]
    fn back_off_is_capped_and_an_abandoned_probe_frees_its_slot() {
        let breaker = Breaker::new(1, BASE);
        let mut now = Instant::now();
        assert_eq!(breaker.admit(now).expect("closed").failed(now), Some(BASE));
        let mut last = BASE;
        for _ in 0..10 {
            now += last;
            last = breaker
                .admit(now)
                .expect("probe")
                .failed(now)
                .expect("open");
        }
        assert_eq!(last, BASE * MAX_BACKOFF_FACTOR);
        now += last;
        drop(breaker.admit(now).expect("probe"));
        assert!(
            breaker.admit(now).is_ok(),
            "the abandoned probe's slot is free"
        );
    }

    #[test]
    fn a_success_in_between_resets_the_count() {
        let breaker = Breaker::new(2, BASE);
        let now = Instant::now();
        assert_eq!(breaker.admit(now).expect("closed").failed(now), None);
        breaker.admit(now).expect("closed").succeeded();
        assert_eq!(breaker.admit(now).expect("closed").failed(now), None);
        assert_eq!(breaker.closed_for(now), None);
    }
}
