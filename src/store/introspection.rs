//! The shared tier of the introspection cache: the issuer's answers, kept in Redis behind
//! each replica's in-process cache, so that a token is introspected once for all replicas.
//!
//! An entry is the answer's body exactly as the endpoint sent it, sealed by the store, under
//! `introspect:` + a digest of the issuer + the token's SHA-256 digest (never the token).
//! Each replica decides what a shared answer means with its own rules, as if it had made the
//! call: a replica with another audience or issuer is not bound by another's decision.
//! Active answers live as long as the replica's own cache would keep them (up to `exp`, at
//! most the max TTL), refused ones for the negative TTL.
//!
//! Redis failing never fails a request: a read that fails is a miss, a write that fails is
//! skipped, and the store's back-off keeps the requests from waiting on a Redis that is down.

use std::{fmt::Write as _, time::Duration};

use sha2::{Digest as _, Sha256};

use super::RedisStore;

/// The shared answers of one introspection configuration.
#[derive(Clone, Debug)]
pub(crate) struct SharedAnswers {
    store: RedisStore,
    /// `introspect:<issuer digest>:`
    namespace: String,
    negative_ttl: Duration,
}

fn hex(bytes: &[u8], out: &mut String) {
    for b in bytes {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
}

impl SharedAnswers {
    pub(crate) fn new(store: RedisStore, issuer: &str, negative_ttl: Duration) -> Self {
        let mut namespace = String::from("introspect:");
        // Answers of one issuer never stand for another's, whatever the answer's `iss` says.
        hex(&Sha256::digest(issuer.as_bytes())[..8], &mut namespace);
        namespace.push(':');
        Self {
            store,
            namespace,
            negative_ttl,
        }
    }

    fn key(&self, token_digest: &[u8; 32]) -> String {
        let mut key = String::with_capacity(self.namespace.len() + 64);
        key.push_str(&self.namespace);
        hex(token_digest, &mut key);
        key
    }

    /// Whether Redis is in use now.
    pub(crate) fn in_use(&self) -> bool {
        self.store.in_use()
    }

    /// The shared answer for the token, when one is there and authentic.
    pub(crate) async fn get(&self, token_digest: &[u8; 32]) -> Option<Vec<u8>> {
        self.store.get(&self.key(token_digest)).await.ok().flatten()
    }

    /// Shares an answer the replica accepted, for `ttl`.
    pub(crate) async fn put_active(&self, token_digest: &[u8; 32], body: &[u8], ttl: Duration) {
        let _ = self.store.set(&self.key(token_digest), body, ttl).await;
    }

    /// Shares an answer the replica refused, for the negative TTL.
    pub(crate) async fn put_refused(&self, token_digest: &[u8; 32], body: &[u8]) {
        let _ = self
            .store
            .set(&self.key(token_digest), body, self.negative_ttl)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(issuer: &str) -> SharedAnswers {
        let store = RedisStore::builder()
            .url("redis://127.0.0.1:1/")
            .shared_key([7; 32])
            .build()
            .expect("valid");
        SharedAnswers::new(store, issuer, Duration::from_secs(10))
    }

    #[test]
    fn keys_are_scoped_by_issuer_and_hold_no_token() {
        let digest = [0xab; 32];
        let a = answers("https://a.example").key(&digest);
        let b = answers("https://b.example").key(&digest);
        assert_ne!(a, b);
        assert!(
            a.starts_with("introspect:") && a.ends_with(&"ab".repeat(32)),
            "{a}"
        );
        assert_eq!(a.len(), "introspect:".len() + 16 + 1 + 64);
    }
}
