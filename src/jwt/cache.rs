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

    /// Applies pending evictions now, so tests read exact figures.
    #[cfg(test)]
    pub(crate) fn settle(&self) {
        self.cache.run_pending_tasks();
    }

    /// Entries and total weight (estimated bytes) after [`settle`](Self::settle).
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (u64, u64) {
        (self.cache.entry_count(), self.cache.weighted_size())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{
        __doc_support::{JWKS, TOKEN},
        authenticate::{Authenticate, Authentication},
        clock::test_clock,
        error::ErrorKind,
        jwt::Jwt,
        principal::Scopes,
    };

    fn principal() -> Principal<()> {
        Principal::new(
            Arc::from("https://issuer.example.com"),
            None,
            Scopes::default(),
            None,
            (),
        )
    }

    fn digest_of(i: u64) -> TokenDigest {
        TokenCache::<()>::digest(&format!("token-{i}"))
    }

    fn far_exp() -> Option<f64> {
        Some(crate::clock::unix_now() + 3600.0)
    }

    #[test]
    fn the_entry_bound_holds_under_200_000_distinct_tokens() {
        let config = TokenCacheConfig {
            enabled: true,
            capacity: 1_000,
            max_bytes: DEFAULT_TOKEN_CACHE_MAX_BYTES,
        };
        let cache = TokenCache::<()>::new(config).expect("enabled");
        for i in 0..200_000u64 {
            cache.insert(
                digest_of(i),
                principal(),
                0,
                1,
                (far_exp(), None, None),
                300,
            );
            if i % 20_000 == 19_999 {
                cache.settle();
                let (entries, bytes) = cache.usage();
                assert!(entries <= 1_000, "{entries} entries after {i} tokens");
                assert!(bytes <= config.max_bytes, "{bytes} bytes after {i} tokens");
            }
        }
        cache.settle();
        let (entries, _) = cache.usage();
        assert!(entries > 500, "the cache still serves: {entries} entries");
    }

    #[test]
    fn the_byte_bound_holds_when_claims_are_large() {
        // 100 000 entries would be allowed by count; 1 MiB allows about 60 of these.
        let config = TokenCacheConfig {
            enabled: true,
            capacity: 100_000,
            max_bytes: 1024 * 1024,
        };
        let cache = TokenCache::<()>::new(config).expect("enabled");
        for i in 0..200_000u64 {
            cache.insert(
                digest_of(i),
                principal(),
                0,
                1,
                (far_exp(), None, None),
                8_000,
            );
        }
        cache.settle();
        let (entries, bytes) = cache.usage();
        assert!(bytes <= config.max_bytes, "{bytes} bytes");
        assert!(entries <= 1024 * 1024 / (2 * 8_000), "{entries} entries");
    }

    #[test]
    fn an_entry_never_outlives_exp() {
        let cache = TokenCache::<()>::new(TokenCacheConfig::default()).expect("enabled");
        let now = crate::clock::unix_now();
        cache.insert(
            digest_of(1),
            principal(),
            0,
            1,
            (Some(now - 1.0), None, None),
            300,
        );
        cache.insert(
            digest_of(2),
            principal(),
            0,
            1,
            (Some(now + 3600.0), None, None),
            300,
        );
        assert!(cache.get(&digest_of(1)).is_none(), "already expired");
        assert!(cache.get(&digest_of(2)).is_some());
    }

    #[test]
    fn a_disabled_or_empty_cache_is_none() {
        for config in [
            TokenCacheConfig {
                enabled: false,
                ..TokenCacheConfig::default()
            },
            TokenCacheConfig {
                capacity: 0,
                ..TokenCacheConfig::default()
            },
            TokenCacheConfig {
                max_bytes: 0,
                ..TokenCacheConfig::default()
            },
        ] {
            assert!(TokenCache::<()>::new(config).is_none(), "{config:?}");
        }
    }

    fn decide(jwt: &Jwt, token: &str) -> Result<(), ErrorKind> {
        match jwt.authenticate(token) {
            Authentication::Ready(result) => result.map(drop).map_err(|e| e.kind()),
            Authentication::Pending(_) => panic!("a static key set never waits"),
        }
    }

    #[test]
    fn a_hit_checks_exp_again_when_the_wall_clock_jumps() {
        let jwt = Jwt::builder()
            .issuer_with_jwks("https://issuer.example.com", JWKS)
            .audience("https://api.example.com")
            .build()
            .expect("config");
        let verified = jwt.verified.clone().expect("on by default");
        assert_eq!(decide(&jwt, TOKEN), Ok(()));
        verified.settle();
        assert_eq!(verified.usage().0, 1, "the token is remembered");
        // The token expires in 2100. The entry's lifetime runs on the monotonic clock, so
        // after this jump only the re-check on the hit can refuse the token.
        test_clock::jump(100.0 * 365.0 * 86_400.0);
        assert!(verified.get(&TokenCache::<()>::digest(TOKEN)).is_some());
        assert_eq!(decide(&jwt, TOKEN), Err(ErrorKind::InvalidToken));
    }

    #[test]
    fn one_changed_signature_byte_is_another_entry() {
        let jwt = Jwt::builder()
            .issuer_with_jwks("https://issuer.example.com", JWKS)
            .audience("https://api.example.com")
            .build()
            .expect("config");
        assert_eq!(decide(&jwt, TOKEN), Ok(()));
        let at = TOKEN.len() - 10;
        let flipped = if TOKEN.as_bytes()[at] == b'A' {
            "B"
        } else {
            "A"
        };
        let forged = format!("{}{flipped}{}", &TOKEN[..at], &TOKEN[at + 1..]);
        assert_ne!(
            TokenCache::<()>::digest(&forged),
            TokenCache::<()>::digest(TOKEN)
        );
        assert_eq!(decide(&jwt, &forged), Err(ErrorKind::InvalidToken));
        // Failures are not remembered.
        let verified = jwt.verified.clone().expect("on by default");
        verified.settle();
        assert_eq!(verified.usage().0, 1);
        assert_eq!(decide(&jwt, TOKEN), Ok(()));
    }
}
