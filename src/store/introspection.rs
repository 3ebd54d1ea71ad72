//! The shared introspection tier: [`RedisIntrospectionCache`], a [`SharedCache`] in Redis, so
//! that a token is introspected once for all the replicas of an API.

use std::{fmt, time::Duration};

use super::{RedisStore, hex_key};
use crate::introspect::{SharedCache, SharedCacheError, SharedFuture, SharedKey};

/// A [`SharedCache`] of introspection answers in a [`RedisStore`].
///
/// Each answer is one key, `introspect:` + the hex of its [`SharedKey`] (a digest of the
/// issuer and of the token's SHA-256: the token is never written), holding the endpoint's
/// answer body sealed with the store's shared key, for as long as the answer may be
/// cached: until the token's `exp`, at most the
/// [`cache_max_ttl`](crate::IntrospectionBuilder::cache_max_ttl) for an active answer, the
/// [`cache_negative_ttl`](crate::IntrospectionBuilder::cache_negative_ttl) for a refusal.
/// A value that does not carry a valid seal for its own key (planted by whoever can write
/// to Redis without the shared key, garbled, oversized, of another Redis type) is a miss:
/// the endpoint is asked, as without the tier.
///
/// Answers are authenticated, not encrypted: anyone who can read the Redis database can
/// read the claims of the answers it holds (never the tokens). Keep Redis private, as for
/// any cache of user data.
///
/// **Failure policy.** When Redis cannot answer (down, slow past the store's timeout, in
/// its back-off), the in-process cache and the endpoint serve as if the tier were absent:
/// answers stay correct and only the number of calls to the endpoint grows. Sharing
/// resumes by itself once Redis answers again.
///
/// ```
/// use portcullis::{Introspection, store::{RedisIntrospectionCache, RedisStore}};
///
/// let store = RedisStore::builder()
///     .url("redis://127.0.0.1:6379")
///     .shared_key(*b"32 random bytes, from a vault...")
///     .build()?;
/// let introspection = Introspection::builder()
///     .issuer("https://login.example.com")
///     .client_credentials("orders-api", "s3cr3t")
///     .audience("https://api.example.com")
///     .shared_cache(RedisIntrospectionCache::new(store))
///     .build()?;
/// # let _ = introspection;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisIntrospectionCache {
    store: RedisStore,
}

impl fmt::Debug for RedisIntrospectionCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisIntrospectionCache")
            .field("store", &self.store)
            .finish()
    }
}

impl RedisIntrospectionCache {
    /// A shared introspection tier in `store`.
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }
}

fn unusable(_: super::StoreError) -> SharedCacheError {
    SharedCacheError::new("Redis cannot be used")
}

impl SharedCache for RedisIntrospectionCache {
    fn get(&self, key: &SharedKey) -> SharedFuture<Option<Vec<u8>>> {
        let store = self.store.clone();
        let key = hex_key("introspect:", key.as_bytes());
        Box::pin(async move { store.get(&key).await.map_err(unusable) })
    }

    fn put(&self, key: &SharedKey, answer: Vec<u8>, ttl: Duration) -> SharedFuture<()> {
        let store = self.store.clone();
        let key = hex_key("introspect:", key.as_bytes());
        Box::pin(async move { store.set(&key, &answer, ttl).await.map_err(unusable) })
    }
}
