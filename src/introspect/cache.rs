//! Cached answers: active answers live until the token's `exp` (at most the max TTL);
//! refusals live in their own, separately bounded space, so a flood of bad tokens cannot
//! evict the good ones. Keys are SHA-256 digests of tokens, never tokens.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::FutureExt;
use moka::{Expiry, future::Cache, notification::RemovalCause};
use sha2::{Digest as _, Sha256};

use super::decision::Active;
use crate::{error::AuthError, principal::Principal};

pub(super) type Digest = [u8; 32];

pub(super) fn digest(token: &str) -> Digest {
    Sha256::digest(token.as_bytes()).into()
}

/// Why a call produced no active answer; shared by every request that waited for it.
#[derive(Debug)]
pub(super) enum Failure {
    /// The endpoint answered: the token is refused.
    Refused(AuthError),
    /// The endpoint could not be used; retry after this long.
    Unavailable(Duration),
}

struct ActiveTtl;

impl<C> Expiry<Digest, Active<C>> for ActiveTtl {
    fn expire_after_create(&self, _: &Digest, active: &Active<C>, _: Instant) -> Option<Duration> {
        Some(active.ttl)
    }
}

/// Counts answers evicted for room, not those that expired or were replaced.
fn evicted(cause: RemovalCause, space: &'static str) {
    if cause == RemovalCause::Size {
        crate::metrics::introspection_evicted(space);
    }
}

/// The two answer caches.
pub(super) struct Answers<C> {
    active: Cache<Digest, Active<C>>,
    refused: Cache<Digest, AuthError>,
}

impl<C: Send + Sync + 'static> Answers<C> {
    pub(super) fn new(active_capacity: u64, refused_capacity: u64, refused_ttl: Duration) -> Self {
        Self {
            active: Cache::builder()
                .max_capacity(active_capacity)
                .expire_after(ActiveTtl)
                .eviction_listener(|_, _, cause| evicted(cause, "active"))
                .build(),
            refused: Cache::builder()
                .max_capacity(refused_capacity)
                .time_to_live(refused_ttl)
                .eviction_listener(|_, _, cause| evicted(cause, "refused"))
                .build(),
        }
    }

    /// How long a refusal is kept (the shared tier keeps it as long).
    pub(super) fn refused_ttl(&self) -> Duration {
        self.refused.policy().time_to_live().unwrap_or_default()
    }

    /// A cached decision for `key`, without waiting.
    pub(super) fn get(&self, key: &Digest) -> Option<Result<Principal<C>, AuthError>> {
        if let Some(active) = self.active.get(key).now_or_never().flatten() {
            return Some(Ok(active.principal));
        }
        self.refused.get(key).now_or_never().flatten().map(Err)
    }

    /// The active answer for `key`, from the cache or from `call`; concurrent requests for
    /// the same key share one `call`. A refusal from `call` is cached in the refused space.
    pub(super) async fn get_with(
        &self,
        key: Digest,
        call: impl Future<Output = Result<Active<C>, Failure>>,
    ) -> Result<Active<C>, Arc<Failure>> {
        let init = async {
            let result = call.await;
            if let Err(Failure::Refused(error)) = &result {
                self.refused.insert(key, error.clone()).await;
            }
            result
        };
        self.active.try_get_with(key, init).await
    }
}
