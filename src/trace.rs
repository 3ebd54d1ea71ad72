//! Tracing spans (feature `tracing`): one `authenticate` span per request carrying the
//! outcome and, for an accepted token, its (configured) issuer and, for a JWT, the `kid` of
//! the key that verified it; outbound calls (JWKS fetch, introspection) as child spans. No token, secret or other claim value is ever
//! recorded. Without the feature everything here is empty.

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
