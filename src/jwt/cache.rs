//! The verified-token cache: a token whose signature and claims were checked is remembered,
//! so the next request with the same token skips the cryptography and the parsing.
//!
//! - The key is the SHA-256 digest of the whole token: a token that differs in any byte
//!   (one signature byte included) has another key, and the token itself is not kept.
//! - A hit re-checks `exp`, `nbf` and `iat` against the clock, with the leeway, and that the
//!   key which verified the token is still in the issuer's JWK Set (same material, `kid`
//!   and algorithms); otherwise the entry is dropped and the token is validated in full.
//! - An entry expires at the token's `exp` at the latest.
//! - The cache is bounded in entries and in (estimated) bytes: every entry weighs at least
//!   `max_bytes / capacity`, and more when its claims are large. Eviction keeps the
//!   entries used most (moka's TinyLFU), so a flood of distinct tokens cannot push the
//!   memory past the bound.
//! - Only successes are stored. The cache belongs to one [`Jwt`](super::Jwt): building a
//!   new one (another configuration) starts empty.

use std::time::{Duration, Instant};

use moka::{Expiry, sync::Cache};
use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Default number of verified tokens remembered: 10 000.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;
/// Default bound on the estimated memory of the verified-token cache: 32 MiB.
pub const DEFAULT_TOKEN_CACHE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Longest an entry lives when the token has no `exp` (never, with the default rules).
const MAX_TTL: Duration = Duration::from_secs(3600);

/// Estimated bytes an entry costs beyond its claims: the digest, the cache's node and
/// indexes, the principal's fixed part (measured, see `BENCHMARKS.md`).
pub(crate) const ENTRY_OVERHEAD: u64 = 320;

pub(crate) type TokenDigest = [u8; 32];

/// The verified-token cache settings of a builder.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TokenCacheConfig {
    pub(crate) enabled: bool,
    pub(crate) capacity: u64,
    pub(crate) max_bytes: u64,
}

impl Default for TokenCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            capacity: DEFAULT_TOKEN_CACHE_CAPACITY,
            max_bytes: DEFAULT_TOKEN_CACHE_MAX_BYTES,
        }
    }
}

/// A token verified earlier, with what a hit must re-check.
pub(crate) struct Verified<C> {
    pub(crate) principal: Principal<C>,
    /// Index of the issuer whose key verified the token.
    pub(crate) issuer: usize,
    /// [`Verifier::id`](crate::jwks::verifier::Verifier::id) of that key.
    pub(crate) key: u64,
    pub(crate) exp: Option<f64>,
    pub(crate) nbf: Option<f64>,
    pub(crate) iat: Option<f64>,
    weight: u32,
}

impl<C> Clone for Verified<C> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            issuer: self.issuer,
            key: self.key,
            exp: self.exp,
            nbf: self.nbf,
            iat: self.iat,
            weight: self.weight,
        }
    }
}

struct UntilExp;

impl<C> Expiry<TokenDigest, Verified<C>> for UntilExp {
    fn expire_after_create(
        &self,
        _key: &TokenDigest,
        entry: &Verified<C>,
        _created_at: Instant,
    ) -> Option<Duration> {
        let ttl = match entry.exp {
            Some(exp) => {
                let left = exp - crate::clock::unix_now();
                if left.is_nan() || left <= 0.0 {
                    Duration::ZERO
                } else {
                    Duration::try_from_secs_f64(left).unwrap_or(MAX_TTL)
                }
            }
            None => MAX_TTL,
        };
        Some(ttl)
    }
}

/// Verified tokens of one authenticator. Cloning shares the cache.
pub(crate) struct TokenCache<C> {
    cache: Cache<TokenDigest, Verified<C>>,
    min_weight: u64,
}

impl<C> Clone for TokenCache<C> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            min_weight: self.min_weight,
        }
    }
}

impl<C: Send + Sync + 'static> TokenCache<C> {
    /// `None` when the configuration turns the cache off.
    pub(crate) fn new(config: TokenCacheConfig) -> Option<Self> {
        if !config.enabled || config.capacity == 0 || config.max_bytes == 0 {
            return None;
        }
        let min_weight = (config.max_bytes / config.capacity).max(1);
        let cache = Cache::builder()
            .max_capacity(config.max_bytes)
            .weigher(|_: &TokenDigest, entry: &Verified<C>| entry.weight)
            .expire_after(UntilExp)
            .build();
        Some(Self { cache, min_weight })
    }

    pub(crate) fn digest(token: &str) -> TokenDigest {
        Sha256::digest(token.as_bytes()).into()
    }

    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<Verified<C>> {
        self.cache.get(digest)
    }

    pub(crate) fn remove(&self, digest: &TokenDigest) {
        self.cache.invalidate(digest);
    }

    /// Remembers a verified token; `claims_len` is the size of its decoded claims, which
    /// stands for the size of its typed claims in the weight.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &self,
        digest: TokenDigest,
        principal: Principal<C>,
        issuer: usize,
        key: u64,
        times: (Option<f64>, Option<f64>, Option<f64>),
        claims_len: usize,
    ) {
        let estimate = ENTRY_OVERHEAD.saturating_add(2 * claims_len as u64);
        let weight = u32::try_from(estimate.max(self.min_weight)).unwrap_or(u32::MAX);
        let (exp, nbf, iat) = times;
        self.cache.insert(
            digest,
            Verified {
                principal,
                issuer,
                key,
                exp,
                nbf,
                iat,
                weight,
            },
        );
    }

    /// Applies pending evictions now (tests and benches read exact figures after it).
    pub(crate) fn settle(&self) {
        self.cache.run_pending_tasks();
    }

    /// Entries and total weight (estimated bytes) after [`settle`](Self::settle).
    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}
