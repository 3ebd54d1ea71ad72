//! Whether Redis is in use: after a failed call the store stops calling Redis for a
//! back-off, then lets one call through as a probe; the first call that succeeds puts it back
//! in use. Each change of mode is logged once (WARN when Redis is left, INFO when it is back).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

/// The mode shared by the clones of one store. Lock-free: two atomics, read on every call.
#[derive(Debug)]
pub(super) struct Health {
    /// Origin of the millisecond clock below.
    epoch: Instant,
    /// `0` while Redis is in use; otherwise the time (ms after `epoch`, at least 1) from
    /// which the next call may probe it.
    retry_at: AtomicU64,
    backoff: Duration,
}

/// What [`Health::admit`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// Redis is in use: call it.
    Call,
    /// Redis was left; this call is the one probe of this back-off period.
    Probe,
    /// Redis was left and the back-off has not passed: do not call it.
    Skip,
}

/// A mode change, for the caller to report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Change {
    /// Redis was in use and a call failed: it is left for the back-off.
    Left,
    /// Redis was left and a call succeeded: it is in use again.
    Restored,
}

impl Health {
    pub(super) fn new(backoff: Duration) -> Self {
        Self {
            epoch: Instant::now(),
            retry_at: AtomicU64::new(0),
            backoff,
        }
    }

    fn millis(&self, at: Instant) -> u64 {
        let ms = at.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms).unwrap_or(u64::MAX - 1).saturating_add(1)
    }

    fn backoff_millis(&self) -> u64 {
        u64::try_from(self.backoff.as_millis()).unwrap_or(u64::MAX / 2)
    }

    /// How long Redis is left alone after a failure.
    #[cfg_attr(not(feature = "tracing"), allow(dead_code))]
    pub(super) fn backoff(&self) -> Duration {
        self.backoff
    }

    /// Whether Redis is in use (no call has failed since the last success).
    pub(super) fn in_use(&self) -> bool {
        self.retry_at.load(Ordering::Acquire) == 0
    }

    /// Whether a call may go to Redis at `now`.
    pub(super) fn admit(&self, now: Instant) -> Admission {
        let retry_at = self.retry_at.load(Ordering::Acquire);
        if retry_at == 0 {
            return Admission::Call;
        }
        let now = self.millis(now);
        if now < retry_at {
            return Admission::Skip;
        }
        // One probe per period: the call that moves the deadline on is the probe.
        let next = now.saturating_add(self.backoff_millis());
        match self
            .retry_at
            .compare_exchange(retry_at, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Admission::Probe,
            Err(_) => Admission::Skip,
        }
    }

    /// A call reached Redis and got an answer.
    pub(super) fn succeeded(&self) -> Option<Change> {
        (self.retry_at.swap(0, Ordering::AcqRel) != 0).then_some(Change::Restored)
    }

    /// A call could not reach Redis, or got no answer in time, at `now`.
    pub(super) fn failed(&self, now: Instant) -> Option<Change> {
        let next = self.millis(now).saturating_add(self.backoff_millis());
        (self.retry_at.swap(next, Ordering::AcqRel) == 0).then_some(Change::Left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_leaves_redis_for_the_backoff_then_one_probe_decides() {
        let health = Health::new(Duration::from_secs(2));
        let t0 = health.epoch;
        assert!(health.in_use());
        assert_eq!(health.admit(t0), Admission::Call);
        assert_eq!(health.failed(t0), Some(Change::Left));
        assert_eq!(health.failed(t0), None, "reported once");
        assert!(!health.in_use());
        assert_eq!(
            health.admit(t0 + Duration::from_millis(1999)),
            Admission::Skip
        );
        let later = t0 + Duration::from_secs(2);
        assert_eq!(health.admit(later), Admission::Probe);
        assert_eq!(health.admit(later), Admission::Skip, "one probe at a time");
        // The probe fails: another back-off.
        assert_eq!(health.failed(later), None);
        assert_eq!(
            health.admit(later + Duration::from_secs(1)),
            Admission::Skip
        );
        let again = later + Duration::from_secs(2);
        assert_eq!(health.admit(again), Admission::Probe);
        assert_eq!(health.succeeded(), Some(Change::Restored));
        assert_eq!(health.succeeded(), None, "reported once");
        assert!(health.in_use());
        assert_eq!(health.admit(again), Admission::Call);
    }
}
