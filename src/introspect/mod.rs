//! RFC 7662 token introspection for opaque tokens, with a coalescing cache bounded by the
//! token's `exp` (feature `introspection`).
//!
//! A cached answer is decided without I/O; concurrent requests for the same uncached token
//! share one call to the endpoint, and at most
//! [`max_concurrent_calls`](IntrospectionBuilder::max_concurrent_calls) calls run at once.
//! The cache key is a SHA-256 digest of the token, never the token itself. Refusals are
//! cached apart from active answers, so a flood of bad tokens cannot evict good ones.
//!
//! After [`DEFAULT_FAILURE_THRESHOLD`] consecutive failures (discovery or the endpoint
//! unreachable, a non-`200` answer, a timeout), the endpoint is left alone for a back-off:
//! requests get `503` with `Retry-After` at once, then one probe call is let through; a
//! failed probe doubles the back-off.
//!
//! Replicas of an API can share answers through a second tier behind the in-process cache
//! ([`IntrospectionBuilder::shared_cache`], e.g. Redis with feature `redis`): a token is
//! then introspected once for all of them.
//!
//! Only bearer access tokens are accepted; refresh tokens, ID tokens and sender-constrained
//! tokens are refused by the markers listed under
//! [`IntrospectionBuilder::dangerous_accept_missing_audience`].
//!
//! # Example
//!
//! ```
//! use portcullis::{BearerAuthLayer, Introspection};
//!
//! let introspection = Introspection::builder()
//!     .issuer("https://login.example.com")
//!     .endpoint("https://login.example.com/oauth2/introspect")
//!     .client_credentials("my-api", "s3cr3t")
//!     .audience("https://api.example.com")
//!     .build()?;
//! let layer = BearerAuthLayer::new(introspection);
//! # let _ = layer;
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

mod backoff;
mod builder;
mod cache;
mod client;
mod decision;
mod routing;
mod shared;

pub use backoff::{DEFAULT_FAILURE_BACKOFF, DEFAULT_FAILURE_THRESHOLD};
pub use builder::{
    DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_MAX_TTL, DEFAULT_MAX_CONCURRENT_CALLS,
    DEFAULT_MAX_INTROSPECTION_BYTES, DEFAULT_NEGATIVE_CACHE_CAPACITY, DEFAULT_NEGATIVE_TTL,
    IntrospectionBuilder,
};
pub use client::ClientAuth;
pub use routing::JwtOrIntrospection;
pub use shared::{SharedCache, SharedCacheError, SharedFuture, SharedKey};

use std::{
    fmt,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use crate::{
    authenticate::{Authenticate, Authentication},
    clock::unix_now,
    error::AuthError,
    principal::{Principal, RegisteredClaims},
};
use backoff::Breaker;
use cache::{Answers, Digest, Failure, digest};
use decision::{Active, Rules};

/// `Retry-After` sent when a call fails without opening the circuit.
const RETRY_AFTER: Duration = Duration::from_secs(5);

struct Inner<C> {
    rules: Rules,
    client: client::Client,
    answers: Answers<C>,
    breaker: Breaker,
    calls: Semaphore,
    shared: Option<Box<dyn SharedCache>>,
}

/// Validates tokens through the issuer's RFC 7662 introspection endpoint, caching answers.
///
/// Cheap to clone: clones share the cache. Build one with [`Introspection::builder`].
pub struct Introspection<C = RegisteredClaims> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Introspection<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for Introspection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client = &self.inner.client;
        f.debug_struct("Introspection")
            .field("issuer", &self.inner.rules.issuer)
            .field("client_id", &client.client_id)
            .field("credentials", &client.credentials)
            .field("http", &client.http)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// A builder with the defaults; an issuer and client credentials are required.
    pub fn builder() -> IntrospectionBuilder {
        IntrospectionBuilder::default()
    }
}

fn unavailable(retry_after: Duration) -> AuthError {
    // Whole seconds, at least one, so `Retry-After` never says "now".
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    AuthError::unavailable(
        "the token introspection endpoint cannot be used",
        Duration::from_secs(secs.max(1)),
    )
}

impl<C> Introspection<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// The decision for `token`: from the shared tier when it has the answer, otherwise
    /// from one call to the endpoint, whose answer is then shared.
    async fn resolve(&self, token: &str, key: &Digest) -> Result<Active<C>, Failure> {
        let inner = &*self.inner;
        let issuer = &*inner.rules.issuer;
        let shared = inner
            .shared
            .as_deref()
            .map(|tier| (tier, SharedKey::new(issuer, key)));
        if let Some((tier, shared_key)) = &shared {
            match tier.get(shared_key).await {
                Ok(Some(body)) => {
                    crate::metrics::introspection_shared(issuer, "hit");
                    return decision::decide(&body, &inner.rules, unix_now())
                        .map_err(Failure::Refused);
                }
                Ok(None) => crate::metrics::introspection_shared(issuer, "miss"),
                Err(_) => crate::metrics::introspection_shared(issuer, "error"),
            }
        }
        let body = self.call(token).await?;
        let decided = decision::decide(&body, &inner.rules, unix_now());
        let result = if decided.is_ok() {
            "active"
        } else {
            "inactive"
        };
        crate::metrics::introspection_call(issuer, result);
        if let Some((tier, shared_key)) = &shared {
            let ttl = decided
                .as_ref()
                .map_or_else(|_| inner.answers.refused_ttl(), |active| active.ttl);
            // A failed write only costs other replicas a call of their own.
            let _ = tier.put(shared_key, body, ttl).await;
        }
        decided.map_err(Failure::Refused)
    }

    /// One upstream call for `token`, within the concurrency bound and the circuit: the
    /// answer body, not yet decided.
    async fn call(&self, token: &str) -> Result<Vec<u8>, Failure> {
        let inner = &*self.inner;
        let Ok(Ok(_permit)) =
            tokio::time::timeout(inner.client.http.timeout, inner.calls.acquire()).await
        else {
            return Err(Failure::Unavailable(RETRY_AFTER));
        };
        let issuer = &*inner.rules.issuer;
        let ticket = inner.breaker.admit(Instant::now()).map_err(|wait| {
            crate::metrics::introspection_call(issuer, "circuit_open");
            Failure::Unavailable(wait)
        })?;
        let call = inner.client.introspect(token);
        match crate::trace::outbound("introspection", issuer, call).await {
            Ok(body) => {
                ticket.succeeded();
                Ok(body)
            }
            Err(_error) => {
                // Only the request that makes the call logs its failure; the requests that
                // share the call get the same 503 without another WARN line.
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "portcullis::introspection",
                    issuer = %inner.rules.issuer,
                    error = %_error,
                    "token introspection failed"
                );
                crate::metrics::introspection_call(issuer, "error");
                let backoff = ticket.failed(Instant::now());
                Err(Failure::Unavailable(backoff.unwrap_or(RETRY_AFTER)))
            }
        }
    }
}

impl<C> Authenticate for Introspection<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Claims = C;

    fn authenticate(&self, token: &str) -> Authentication<C> {
        let key = digest(token);
        let issuer = &*self.inner.rules.issuer;
        let cached = self.inner.answers.get(&key);
        crate::metrics::introspection_cache(issuer, cached.is_some());
        if let Some(outcome) = cached {
            // A cached answer gets no leeway: it never serves past the token's `exp`.
            return Authentication::Ready(still_valid(outcome, Duration::ZERO));
        }
        // With a shared tier, an answer another replica holds can still be served while
        // the endpoint is left alone; without one, the wait is answered at once.
        if self.inner.shared.is_none()
            && let Some(wait) = self.inner.breaker.closed_for(Instant::now())
        {
            crate::metrics::introspection_call(issuer, "circuit_open");
            return Authentication::Ready(Err(unavailable(wait)));
        }
        let this = self.clone();
        let token = token.to_owned();
        Authentication::Pending(Box::pin(async move {
            let leeway = Duration::from_secs_f64(this.inner.rules.time.leeway);
            let mut called = false;
            let call = async {
                called = true;
                this.resolve(&token, &key).await
            };
            let outcome = this.inner.answers.get_with(key, call).await;
            if !called {
                crate::metrics::introspection_coalesced(&this.inner.rules.issuer);
            }
            match outcome {
                Ok(active) => still_valid(Ok(active.principal), leeway),
                Err(failure) => match &*failure {
                    Failure::Refused(error) => Err(error.clone()),
                    Failure::Unavailable(wait) => Err(unavailable(*wait)),
                },
            }
        }))
    }
}

/// A principal past its `exp` (and `leeway`) is expired, whatever the cache still holds.
fn still_valid<C>(
    outcome: Result<Principal<C>, AuthError>,
    leeway: Duration,
) -> Result<Principal<C>, AuthError> {
    match outcome {
        Ok(principal)
            if principal
                .expires_at()
                .and_then(|exp| exp.checked_add(leeway))
                .is_some_and(|end| end <= SystemTime::now()) =>
        {
            Err(AuthError::invalid_token("the token has expired"))
        }
        outcome => outcome,
    }
}
