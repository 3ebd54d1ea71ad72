//! Metrics through the `metrics` facade (feature `metrics`): the application installs the
//! recorder/exporter it wants. Without the feature every function here is empty.
//!
//! Names follow Prometheus conventions (`_total` counters, `_seconds` units). Labels are
//! bounded: `issuer` is always a configured issuer, the others come from fixed lists; never
//! a token, a subject, a key id or a URL path.
//!
//! | name | kind | labels |
//! |---|---|---|
//! | `portcullis_requests_total` | counter | `outcome` (`ok`, `missing_token`, `invalid_request`, `invalid_token`, `insufficient_scope`, `insufficient_user_authentication`, `unavailable`), `issuer` (on `ok` only) |
//! | `portcullis_authentication_duration_seconds` | histogram | — |
//! | `portcullis_jwks_fetches_total` | counter | `issuer`, `result` (`ok`, `error`) |
//! | `portcullis_jwks_keys` | gauge | `issuer` |
//! | `portcullis_jwks_last_success_timestamp_seconds` | gauge | `issuer` |
//! | `portcullis_jwks_stale` | gauge (0/1) | `issuer` |
//! | `portcullis_introspection_calls_total` | counter | `issuer`, `result` (`active`, `inactive`, `error`, `circuit_open`) |
//! | `portcullis_introspection_cache_total` | counter | `issuer`, `result` (`hit`, `miss`) |
//! | `portcullis_introspection_coalesced_total` | counter | `issuer` |
//! | `portcullis_introspection_cache_evictions_total` | counter | `space` (`active`, `refused`) |
//! | `portcullis_introspection_shared_total` | counter | `issuer`, `result` (`hit`, `miss`, `error`): lookups in the shared tier |
//! | `portcullis_redis_in_use` | gauge (0/1) | — (1 while Redis is used, 0 while it is left after a failure) |
//! | `portcullis_token_cache_total` | counter | `result` (`hit`: answered from the verified-token cache; `miss`: validated in full) |
//! | `portcullis_token_cache_evictions_total` | counter | — (entries evicted for room; expired ones are not counted) |

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

#[cfg(feature = "metrics")]
use std::time::{Duration, Instant};

use crate::error::AuthError;
#[cfg(feature = "metrics")]
use crate::error::ErrorKind;

/// Starts timing an authentication (a no-op without the feature).
#[derive(Clone, Copy)]
pub(crate) struct Timer(#[cfg(feature = "metrics")] Instant);

impl Timer {
    pub(crate) fn start() -> Self {
        Self(
            #[cfg(feature = "metrics")]
            Instant::now(),
        )
    }

    pub(crate) fn stop(self) {
        #[cfg(feature = "metrics")]
        metrics::histogram!("portcullis_authentication_duration_seconds")
            .record(self.0.elapsed().as_secs_f64());
    }
}

/// An authenticated request admitted (scopes included).
pub(crate) fn accepted(issuer: &std::sync::Arc<str>) {
    #[cfg(feature = "metrics")]
    accepted::count(issuer);
}

/// `portcullis_requests_total{outcome="ok", issuer}`, on every admitted request. Each thread
/// keeps the key (its labels and its hash) of the issuer it counted last, so a run of
/// requests from one issuer builds it once; a request from another issuer builds it anew.
#[cfg(feature = "metrics")]
mod accepted {
    use std::{cell::RefCell, sync::Arc};

    use metrics::{Key, Label, Level, Metadata};

    // The target and module the `counter!` macro gives the other counters of this module.
    static METADATA: Metadata<'static> = Metadata::new(
        "portcullis::metrics",
        Level::INFO,
        Some("portcullis::metrics"),
    );

    thread_local! {
        /// The key of the issuer this thread counted last (requests of one thread mostly
        /// name the same issuer).
        static LAST: RefCell<Option<(Arc<str>, Key)>> = const { RefCell::new(None) };
    }

    pub(super) fn count(issuer: &Arc<str>) {
        LAST.with(|last| {
            let mut last = last.borrow_mut();
            let (_, key) = match &mut *last {
                Some(entry) if *entry.0 == **issuer => entry,
                slot => slot.insert((
                    Arc::clone(issuer),
                    Key::from_parts(
                        "portcullis_requests_total",
                        vec![
                            Label::new("outcome", "ok"),
                            Label::new("issuer", Arc::clone(issuer)),
                        ],
                    ),
                )),
            };
            metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
                .increment(1);
        });
    }
}

/// A rejected request.
pub(crate) fn rejected(error: &AuthError) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_requests_total", "outcome" => outcome(error.kind())).increment(1);
}

#[cfg(feature = "metrics")]
fn outcome(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::MissingToken => "missing_token",
        ErrorKind::InvalidRequest => "invalid_request",
        ErrorKind::InvalidToken => "invalid_token",
        ErrorKind::InsufficientScope => "insufficient_scope",
        ErrorKind::InsufficientUserAuthentication => "insufficient_user_authentication",
        ErrorKind::InvalidDpopProof => "invalid_dpop_proof",
        ErrorKind::UseDpopNonce => "use_dpop_nonce",
        ErrorKind::Unavailable => "unavailable",
    }
}

/// A JWKS fetch finished; `keys` is the number of keys loaded when it succeeded.
pub(crate) fn jwks_fetched(issuer: &str, keys: Option<usize>, stale: bool) {
    #[cfg(feature = "metrics")]
    {
        let issuer = issuer.to_owned();
        let result = if keys.is_some() { "ok" } else { "error" };
        metrics::counter!("portcullis_jwks_fetches_total", "issuer" => issuer.clone(), "result" => result)
            .increment(1);
        if let Some(keys) = keys {
            metrics::gauge!("portcullis_jwks_keys", "issuer" => issuer.clone()).set(keys as f64);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or(Duration::ZERO);
            metrics::gauge!("portcullis_jwks_last_success_timestamp_seconds", "issuer" => issuer.clone())
                .set(now.as_secs_f64());
        }
        metrics::gauge!("portcullis_jwks_stale", "issuer" => issuer).set(if stale {
            1.0
        } else {
            0.0
        });
    }
}

#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
/// The outcome of one introspection call: `active`, `inactive`, `error` or
/// `circuit_open` (not made).
pub(crate) fn introspection_call(issuer: &str, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_introspection_calls_total", "issuer" => issuer.to_owned(), "result" => result)
        .increment(1);
}

#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
/// An introspection cache lookup on the request path.
pub(crate) fn introspection_cache(issuer: &str, hit: bool) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "portcullis_introspection_cache_total",
        "issuer" => issuer.to_owned(),
        "result" => if hit { "hit" } else { "miss" }
    )
    .increment(1);
}

#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
/// A request that waited for another request's introspection call.
pub(crate) fn introspection_coalesced(issuer: &str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_introspection_coalesced_total", "issuer" => issuer.to_owned())
        .increment(1);
}

#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
/// An answer evicted for room (`active` or `refused` space).
pub(crate) fn introspection_evicted(space: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_introspection_cache_evictions_total", "space" => space)
        .increment(1);
}

#[cfg_attr(not(feature = "introspection"), allow(dead_code))]
/// A lookup in the shared introspection tier: `hit`, `miss` or `error`.
pub(crate) fn introspection_shared(issuer: &str, result: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_introspection_shared_total", "issuer" => issuer.to_owned(), "result" => result)
        .increment(1);
}

#[cfg_attr(not(feature = "redis"), allow(dead_code))]
/// Whether Redis is in use (set when a store is built and at each change of mode).
pub(crate) fn redis_in_use(in_use: bool) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("portcullis_redis_in_use").set(if in_use { 1.0 } else { 0.0 });
}

/// A lookup in the verified-token cache of [`Jwt`](crate::Jwt): `hit` when it answered,
/// `miss` when the token is validated in full. Static labels: no allocation per request.
pub(crate) fn token_cache(hit: bool) {
    #[cfg(feature = "metrics")]
    if hit {
        metrics::counter!("portcullis_token_cache_total", "result" => "hit").increment(1);
    } else {
        metrics::counter!("portcullis_token_cache_total", "result" => "miss").increment(1);
    }
}

/// Entries the verified-token cache evicted for room.
pub(crate) fn token_cache_evicted(entries: u64) {
    #[cfg(feature = "metrics")]
    metrics::counter!("portcullis_token_cache_evictions_total").increment(entries);
}
