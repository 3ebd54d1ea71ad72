//! The shared DPoP replay store: [`RedisReplayStore`], a [`ReplayStore`] in Redis, so that a
//! proof accepted by one replica is refused by every other.

use std::{fmt, time::Duration};

use super::{RedisStore, hex_key};
use crate::{
    dpop::{Freshness, ReplayCheck, ReplayKey, ReplayStore, ReplayStoreError},
    trace::Recurring,
};

/// A [`ReplayStore`] shared by the replicas through a [`RedisStore`].
///
/// Each proof is one key, `dpop:` + the hex of its [`ReplayKey`] (a digest of the proof
/// key's thumbprint and the `jti`), recorded with one atomic `SET … NX PX` for as long as
/// the proof could pass the `iat` check: of any number of replicas receiving the same
/// proof, exactly one accepts it.
///
/// **Failure policy.** When Redis cannot answer (down, slow past the store's timeout, in
/// its back-off), the check fails and the layer answers `503` with `Retry-After`: accepting
/// a proof that cannot be checked for replay would break RFC 9449 §11.1. With
/// [`dangerous_fail_open`](Self::dangerous_fail_open) such proofs are accepted instead,
/// unchecked for replay, for deployments that prefer availability; they are logged at WARN,
/// at most once every 10 seconds with the count of those accepted since the last warning.
///
/// ```
/// use portcullis::{BearerAuthLayer, Jwt, store::{RedisReplayStore, RedisStore}};
/// # use portcullis::__doc_support::JWKS as jwks;
///
/// let store = RedisStore::builder()
///     .url("redis://127.0.0.1:6379")
///     .shared_key(*b"32 random bytes, from a vault...")
///     .build()?;
/// let jwt = Jwt::builder()
///     .issuer_with_jwks("https://issuer.example.com", jwks)
///     .audience("https://api.example.com")
///     .build()?;
/// let layer = BearerAuthLayer::new(jwt).dpop_replay_store(RedisReplayStore::new(store));
/// # let _ = layer;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    store: RedisStore,
    fail_open: bool,
    /// The fail-open warning.
    unchecked: Recurring,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("store", &self.store)
            .field("fail_open", &self.fail_open)
            .finish()
    }
}

impl RedisReplayStore {
    /// A replay store in `store`; fails closed (`503`) when Redis cannot answer.
    pub fn new(store: RedisStore) -> Self {
        Self {
            store,
            fail_open: false,
            unchecked: Recurring::default(),
        }
    }

    /// Accept proofs unchecked for replay while Redis cannot answer, instead of answering
    /// `503`. Default: `false` (fail closed, as RFC 9449 requires). A proof captured during
    /// an outage can then be replayed until it is older than the DPoP window.
    pub fn dangerous_fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }
}

impl ReplayStore for RedisReplayStore {
    fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck {
        let store = self.store.clone();
        let fail_open = self.fail_open;
        let unchecked = self.unchecked.clone();
        ReplayCheck::Pending(Box::pin(async move {
            match store
                .insert_if_absent(&hex_key("dpop:", key.as_bytes()), ttl)
                .await
            {
                Ok(true) => Ok(Freshness::First),
                Ok(false) => Ok(Freshness::Replayed),
                Err(_error) if fail_open => {
                    unchecked.warn(|_left_out| {
                        #[cfg(feature = "tracing")]
                        tracing::warn!(
                            target: "portcullis::redis",
                            error = %_error,
                            left_out = _left_out,
                            "DPoP proof accepted without a replay check (fail-open; \
                             left_out: proofs accepted unchecked since the last such warning)"
                        );
                    });
                    Ok(Freshness::First)
                }
                Err(_) => Err(ReplayStoreError::new(
                    "the shared replay store (Redis) cannot be used",
                )),
            }
        }))
    }
}
