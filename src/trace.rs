//! Tracing spans (feature `tracing`): one `authenticate` span per request carrying the
//! outcome and, for an accepted token, its (configured) issuer and, for a JWT, the `kid` of
//! the key that verified it; outbound calls (JWKS fetch, introspection) as child spans. No token, secret or other claim value is ever
//! recorded. A warning for a failure that recurs on every request is logged at most once per
//! [`WARN_EVERY`](throttle::WARN_EVERY), with the count of those left out. Without the
//! feature everything here is empty.

use std::future::Future;

use crate::error::AuthError;

/// The span of one authentication.
pub(crate) struct AuthSpan(#[cfg(feature = "tracing")] tracing::Span);

impl AuthSpan {
    pub(crate) fn new() -> Self {
        #[cfg(feature = "tracing")]
        {
            let span = tracing::debug_span!(
                target: "portcullis::authenticate",
                "authenticate",
                outcome = tracing::field::Empty,
                issuer = tracing::field::Empty,
                kid = tracing::field::Empty,
            );
            // A span no subscriber wants still costs its field lookups, records and
            // enter/exit on every request, for the sake of `tracing`'s `log` output. When
            // no `log` logger takes DEBUG either, nothing would ever see them: the empty
            // span does none of that work.
            if span.is_disabled() && log::max_level() < log::LevelFilter::Debug {
                return Self(tracing::Span::none());
            }
            Self(span)
        }
        #[cfg(not(feature = "tracing"))]
        Self()
    }

    /// Runs `f` inside the span (so calls it starts become children).
    pub(crate) fn in_scope<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tracing")]
        return self.0.in_scope(f);
        #[cfg(not(feature = "tracing"))]
        f()
    }

    /// Records how the authentication ended: for an admitted request, the issuer and the
    /// `kid` of the key that verified the token (a JWT's, when the key has one). A rejected
    /// token's `kid` is never recorded: it is whatever the sender chose.
    pub(crate) fn record(&self, outcome: Result<(&str, Option<&str>), &AuthError>) {
        #[cfg(feature = "tracing")]
        match outcome {
            Ok((issuer, kid)) => {
                self.0.record("outcome", "ok");
                self.0.record("issuer", issuer);
                if let Some(kid) = kid {
                    self.0.record("kid", kid);
                }
            }
            Err(error) => {
                self.0
                    .record("outcome", tracing::field::debug(error.kind()));
            }
        }
        #[cfg(not(feature = "tracing"))]
        let _ = outcome;
    }

    /// `future`, polled inside the span.
    pub(crate) fn instrument<F: Future>(
        &self,
        future: F,
    ) -> impl Future<Output = F::Output> + use<F> {
        #[cfg(feature = "tracing")]
        return tracing::Instrument::instrument(future, self.0.clone());
        #[cfg(not(feature = "tracing"))]
        future
    }
}

/// `future`, polled inside a child span named `name` for `issuer`.
pub(crate) fn outbound<F: Future>(
    name: &'static str,
    issuer: &str,
    future: F,
) -> impl Future<Output = F::Output> + use<F> {
    #[cfg(feature = "tracing")]
    return tracing::Instrument::instrument(
        future,
        tracing::debug_span!(target: "portcullis::outbound", "outbound", call = name, issuer),
    );
    #[cfg(not(feature = "tracing"))]
    {
        let _ = (name, issuer);
        future
    }
}

/// A warning for a failure that can recur on every request, shared by clones: logged at
/// most once every [`WARN_EVERY`](throttle::WARN_EVERY). Empty without `tracing`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recurring(#[cfg(feature = "tracing")] std::sync::Arc<throttle::Throttle>);

impl Recurring {
    /// Calls `warn` with the number of occurrences left out since the last one logged,
    /// when this one is to be logged.
    pub(crate) fn warn(&self, warn: impl FnOnce(u64)) {
        #[cfg(feature = "tracing")]
        if let Some(left_out) = self.0.admit() {
            warn(left_out);
        }
        #[cfg(not(feature = "tracing"))]
        let _ = warn;
    }
}

/// Warnings for a recurring failure, thinned out.
#[cfg(feature = "tracing")]
pub(crate) mod throttle {
    use std::{
        sync::atomic::{AtomicU64, Ordering::Relaxed},
        time::{Duration, Instant},
    };

    /// At most one warning per period for one recurring failure (a replay store down during
    /// an outage fails every request that needs it): the first occurrence is logged, the ones
    /// after it are left out until the period has passed, and the next warning logged says
    /// how many were left out.
    #[derive(Debug)]
    pub(crate) struct Throttle {
        origin: Instant,
        period_ms: u64,
        /// Milliseconds after `origin` until which occurrences are left out.
        quiet_until: AtomicU64,
        left_out: AtomicU64,
    }

    /// The period of [`Throttle::new`]: 10 seconds.
    pub(crate) const WARN_EVERY: Duration = Duration::from_secs(10);

    impl Throttle {
        /// One warning per [`WARN_EVERY`].
        pub(crate) fn new() -> Self {
            Self::every(WARN_EVERY)
        }

        /// One warning per `period`.
        pub(crate) fn every(period: Duration) -> Self {
            Self {
                origin: Instant::now(),
                period_ms: millis(period),
                quiet_until: AtomicU64::new(0),
                left_out: AtomicU64::new(0),
            }
        }

        /// `Some(n)` when this occurrence is to be logged, `n` the occurrences left out since
        /// the last one logged; `None` when it is to be left out. Lock-free: of two threads
        /// at the end of a period, one logs.
        pub(crate) fn admit(&self) -> Option<u64> {
            let now = millis(self.origin.elapsed());
            let until = self.quiet_until.load(Relaxed);
            if now >= until
                && self
                    .quiet_until
                    .compare_exchange(until, now.saturating_add(self.period_ms), Relaxed, Relaxed)
                    .is_ok()
            {
                return Some(self.left_out.swap(0, Relaxed));
            }
            self.left_out.fetch_add(1, Relaxed);
            None
        }
    }

    impl Default for Throttle {
        fn default() -> Self {
            Self::new()
        }
    }

    fn millis(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    #[cfg(test)]
    mod tests {
        use std::time::Duration;

        use super::{Relaxed, Throttle};

        #[test]
        fn a_throttle_logs_once_per_period_and_counts_what_it_left_out() {
            let throttle = Throttle::every(Duration::from_millis(300));
            assert_eq!(throttle.admit(), Some(0), "the first occurrence is logged");
            for _ in 0..4 {
                assert_eq!(
                    throttle.admit(),
                    None,
                    "the next ones in the period are not"
                );
            }
            std::thread::sleep(Duration::from_millis(350));
            assert_eq!(
                throttle.admit(),
                Some(4),
                "after the period: logged, with the count"
            );
            assert_eq!(throttle.admit(), None, "and a new period starts");
            std::thread::sleep(Duration::from_millis(350));
            assert_eq!(throttle.admit(), Some(1));
        }

        #[test]
        fn of_many_threads_at_once_one_logs() {
            let throttle = Throttle::every(Duration::from_secs(60));
            let logged: usize = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| s.spawn(|| (0..100).filter(|_| throttle.admit().is_some()).count()))
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
            });
            assert_eq!(logged, 1);
            assert_eq!(throttle.left_out.load(Relaxed), 799);
        }
    }
}
