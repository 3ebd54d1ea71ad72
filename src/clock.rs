//! The wall clock, as claims and introspection answers count time: seconds since the epoch.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now; `0` if the clock reads before the epoch.
pub(crate) fn unix_now() -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    #[cfg(test)]
    let now = now + test_clock::OFFSET.with(std::cell::Cell::get);
    now
}

/// Unit tests move this thread's wall clock (and only it) to see rules that depend on it.
#[cfg(test)]
pub(crate) mod test_clock {
    thread_local! {
        pub(super) static OFFSET: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
    }

    /// Moves this thread's wall clock by `seconds`, as a jump of the system clock would.
    pub(crate) fn jump(seconds: f64) {
        OFFSET.with(|o| o.set(o.get() + seconds));
    }
}

/// The instant `seconds` after the epoch, when it is a representable time.
pub(crate) fn system_time(seconds: f64) -> Option<SystemTime> {
    if seconds.is_finite() && seconds >= 0.0 {
        UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(seconds).ok()?)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finite_non_negative_seconds_are_times() {
        assert_eq!(system_time(0.0), Some(UNIX_EPOCH));
        assert_eq!(
            system_time(1.5),
            Some(UNIX_EPOCH + Duration::from_millis(1500))
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, f64::MAX] {
            assert_eq!(system_time(bad), None, "{bad}");
        }
        assert!(unix_now() > 1.7e9);
    }
}
