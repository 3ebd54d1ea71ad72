//! A second cache tier that replicas share, behind the in-process cache: [`SharedCache`].
//!
//! What a shared tier holds is the endpoint's answer body itself, as received (at most
//! [`max_response_bytes`](super::IntrospectionBuilder::max_response_bytes)). A replica that
//! finds it decides it with its own rules, exactly as if the endpoint had just answered, so
//! a shared answer can never grant more than a fresh call would: `exp`, audience, token type
//! and scopes are checked again, against the clock of the reading replica.

use std::{future::Future, pin::Pin, time::Duration};

use sha2::{Digest as _, Sha256};

use super::cache::Digest;

/// The future a [`SharedCache`] returns.
pub type SharedFuture<T> = Pin<Box<dyn Future<Output = Result<T, SharedCacheError>> + Send>>;

/// A cache of introspection answers shared by the replicas of an API (for instance
/// [`RedisIntrospectionCache`](crate::store::RedisIntrospectionCache), feature `redis`).
///
/// It is asked only when the in-process cache has no answer, by the one request that would
/// otherwise call the endpoint (concurrent requests for the same token wait for it). An
/// implementation must return only values that were [`put`](Self::put) under the same key
/// by a party it trusts, and must bound the time each call takes: the request waits for it.
///
/// **Failure policy.** A `get` that fails is a miss (the endpoint is called) and a `put` that
/// fails is ignored: while the shared tier cannot be used, answers stay correct and only
/// the number of calls to the endpoint grows.
pub trait SharedCache: Send + Sync + 'static {
    /// The answer body stored under `key`, or `None`.
    fn get(&self, key: &SharedKey) -> SharedFuture<Option<Vec<u8>>>;

    /// Stores `answer` under `key` for `ttl`, replacing any value.
    fn put(&self, key: &SharedKey, answer: Vec<u8>, ttl: Duration) -> SharedFuture<()>;
}

/// Where a token's answer is shared: a SHA-256 digest of the issuer and of the token's own
/// digest. Neither the token nor the issuer can be read back from it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SharedKey([u8; 32]);

impl SharedKey {
    pub(super) fn new(issuer: &str, token: &Digest) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"portcullis introspection answer\0");
        hash.update(issuer.as_bytes());
        hash.update([0]);
        hash.update(token);
        Self(hash.finalize().into())
    }

    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for SharedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedKey(..)")
    }
}

/// Why a shared cache could not answer. Its text is fixed and secret-free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedCacheError {
    reason: &'static str,
}

impl SharedCacheError {
    /// An error saying `reason`, in a few fixed words.
    pub fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// What went wrong.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl std::fmt::Display for SharedCacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the shared introspection cache cannot be used: {}",
            self.reason
        )
    }
}

impl std::error::Error for SharedCacheError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_issuer_and_token() {
        let token = [7; 32];
        let a = SharedKey::new("https://a.example", &token);
        assert_eq!(a, SharedKey::new("https://a.example", &token));
        assert_ne!(a, SharedKey::new("https://b.example", &token));
        assert_ne!(a, SharedKey::new("https://a.example", &[8; 32]));
        assert_eq!(format!("{a:?}"), "SharedKey(..)");
    }
}
