//! The verified-token cache: a token whose signature and claims were checked is remembered,
//! so the next request with the same token skips the cryptography and the parsing.
//!
//! - An entry is found by a seeded rapidhash of the token's length and its last
//!   [`HASHED_TAIL`] bytes, its signature (a random seed per cache, random secrets per
//!   process), and holds the token itself, which a hit compares in full:
//!   a token that differs in any byte (one signature byte included) never hits another
//!   token's entry, so the hash needs no collision resistance, only speed and spread. Two tokens with the
//!   same hash share a slot, and the later one displaces the earlier one: only tokens that
//!   were verified are inserted, so the worst a collision can do is one more full
//!   validation. The token stays in memory only with its entry and is never logged.
//! - A hit re-checks `exp`, `nbf` and `iat` against the clock, with the leeway, and that the
//!   key which verified the token is still in the issuer's JWK Set (same material, `kid`
//!   and algorithms); otherwise the entry is dropped and the token is validated in full.
//! - An entry is never served past the token's `exp`: a lookup drops it, and each shard
//!   sweeps out expired entries every [`SWEEP_EVERY`] insertions.
//! - The cache is bounded in entries and in (estimated) bytes, per shard: inserting past
//!   either bound evicts with a second-chance clock (an entry hit since the hand last
//!   passed survives one more round), so a flood of distinct tokens cannot push the memory
//!   past the bound and cannot flush the tokens in steady use at once.
//! - Only successes are stored. The cache belongs to one [`Jwt`](super::Jwt): building a
//!   new one (another configuration) starts empty.
//!
//! Lookups (`hit`/`miss`) and evictions for room are counted (feature `metrics`; names in
//! the README), with static labels.
//!
//! A lookup or an insertion locks one of up to [`MAX_SHARDS`] shards, chosen by the
//! hash, for a few map operations; no lock is held across an `.await` or any I/O.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, BuildHasherDefault, Hash, Hasher},
    sync::{Arc, Mutex, PoisonError},
};

use crate::{clock::unix_now, principal::Principal};

/// Default number of verified tokens remembered: 10 000.
pub const DEFAULT_TOKEN_CACHE_CAPACITY: u64 = 10_000;
/// Default bound on the estimated memory of the verified-token cache: 32 MiB.
pub const DEFAULT_TOKEN_CACHE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// Estimated bytes an entry costs beyond its claims and its token: the hash (twice: map
/// and clock), the map slot, the principal's fixed part.
pub(crate) const ENTRY_OVERHEAD: u64 = 320;

/// The most shards; fewer when the capacity is small.
const MAX_SHARDS: usize = 32;
/// How many bytes at the end of a token its hash covers: signature, in a verified token.
const HASHED_TAIL: usize = 64;
/// A shard drops its expired entries every this many insertions.
const SWEEP_EVERY: u32 = 64;

/// Where a token's entry lives: its keyed hash, and the token, compared in full on a hit.
pub(crate) struct Probe<'t> {
    hash: u64,
    token: &'t str,
}

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
        }
    }
}

impl<C> Verified<C> {
    fn expired(&self, now: f64) -> bool {
        self.exp.is_some_and(|exp| now >= exp || exp.is_nan())
    }
}

/// A token's keyed hash used as a map key: already uniformly distributed, so it is its own
/// hash.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key(u64);

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0);
    }
}

/// Passes the one `u64` a [`Key`] writes through.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `Key`; fold anything else in, all the same.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

struct Slot<C> {
    /// The token, compared in full on a hit: two tokens with the same hash never share.
    token: Box<str>,
    verified: Verified<C>,
    weight: u32,
    /// Hit since the clock hand last passed.
    visited: bool,
}

struct Shard<C> {
    map: HashMap<Key, Slot<C>, BuildHasherDefault<PassThrough>>,
    /// Insertion order for the clock; may hold keys already removed (skipped, compacted).
    ring: VecDeque<Key>,
    bytes: u64,
    inserts: u32,
}

impl<C> Shard<C> {
    fn remove(&mut self, key: &Key) {
        if let Some(slot) = self.map.remove(key) {
            self.bytes -= u64::from(slot.weight);
        }
    }

    /// Evicts one entry with the second-chance clock; `false` when the shard is empty.
    fn evict_one(&mut self) -> bool {
        // Each live entry is passed at most twice (once to clear `visited`).
        let mut budget = 2 * self.ring.len() + 1;
        while let Some(key) = self.ring.pop_front() {
            budget = budget.saturating_sub(1);
            match self.map.get_mut(&key) {
                None => continue,
                Some(slot) if slot.visited && budget > 0 => {
                    slot.visited = false;
                    self.ring.push_back(key);
                }
                Some(_) => {
                    self.remove(&key);
                    return true;
                }
            }
        }
        false
    }

    fn sweep(&mut self, now: f64) {
        let mut freed = 0;
        self.map.retain(|_, slot| {
            let keep = !slot.verified.expired(now);
            if !keep {
                freed += u64::from(slot.weight);
            }
            keep
        });
        self.bytes -= freed;
        let map = &self.map;
        self.ring.retain(|key| map.contains_key(key));
    }
}

struct Shared<C> {
    shards: Box<[Mutex<Shard<C>>]>,
    hasher: rapidhash::quality::RandomState,
    entries_per_shard: usize,
    bytes_per_shard: u64,
    /// The weight every entry has at least, so the byte bound also bounds the count.
    min_weight: u64,
}

/// Verified tokens of one authenticator. Cloning shares the cache.
pub(crate) struct TokenCache<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for TokenCache<C> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C> TokenCache<C> {
    /// `None` when the configuration turns the cache off.
    pub(crate) fn new(config: TokenCacheConfig) -> Option<Self> {
        if !config.enabled || config.capacity == 0 || config.max_bytes == 0 {
            return None;
        }
        let shards = usize::try_from(config.capacity)
            .unwrap_or(usize::MAX)
            .clamp(1, MAX_SHARDS);
        let entries_per_shard =
            usize::try_from(config.capacity / shards as u64).unwrap_or(usize::MAX);
        let bytes_per_shard = config.max_bytes / shards as u64;
        let shards = (0..shards)
            .map(|_| {
                Mutex::new(Shard {
                    map: HashMap::default(),
                    ring: VecDeque::new(),
                    bytes: 0,
                    inserts: 0,
                })
            })
            .collect();
        Some(Self {
            shared: Arc::new(Shared {
                shards,
                hasher: rapidhash::quality::RandomState::new(),
                entries_per_shard,
                bytes_per_shard,
                min_weight: (config.max_bytes / config.capacity).max(1),
            }),
        })
    }

    /// Where `token`'s entry is, or would be.
    pub(crate) fn probe<'t>(&self, token: &'t str) -> Probe<'t> {
        // The hash only places the entry; the full comparison decides. Every token in the
        // cache was verified, so its tail is signature (86 characters at least), which no
        // two verified tokens share: the tail and the length spread the entries as well as
        // the whole token would, for a fraction of the hashing.
        let bytes = token.as_bytes();
        let tail = bytes
            .get(bytes.len().saturating_sub(HASHED_TAIL)..)
            .unwrap_or(bytes);
        let mut hasher = self.shared.hasher.build_hasher();
        hasher.write_usize(bytes.len());
        hasher.write(tail);
        Probe {
            hash: hasher.finish(),
            token,
        }
    }

    fn locate(&self, probe: &Probe<'_>) -> (&Mutex<Shard<C>>, Key) {
        let shared = &*self.shared;
        // The shard from the high half, the map's buckets from the whole hash.
        let index = ((probe.hash >> 32) % shared.shards.len() as u64) as usize;
        (&shared.shards[index], Key(probe.hash))
    }

    /// The entry for the token, unless it is absent or past its `exp` at `now` (seconds
    /// since the epoch; then dropped).
    pub(crate) fn get(&self, probe: &Probe<'_>, now: f64) -> Option<Verified<C>> {
        let (shard, key) = self.locate(probe);
        let mut shard = lock(shard);
        let slot = shard.map.get_mut(&key)?;
        if *slot.token != *probe.token {
            return None;
        }
        if slot.verified.expired(now) {
            shard.remove(&key);
            return None;
        }
        slot.visited = true;
        Some(slot.verified.clone())
    }

    /// Drops the token's entry (not another token's with the same hash).
    pub(crate) fn remove(&self, probe: &Probe<'_>) {
        let (shard, key) = self.locate(probe);
        let mut shard = lock(shard);
        if shard
            .map
            .get(&key)
            .is_some_and(|slot| *slot.token == *probe.token)
        {
            shard.remove(&key);
        }
    }

    /// Remembers a verified token; `claims_len` is the size of its decoded claims, which
    /// stands for the size of its typed claims in the weight.
    pub(crate) fn insert(
        &self,
        probe: Probe<'_>,
        principal: Principal<C>,
        issuer: usize,
        key: u64,
        times: (Option<f64>, Option<f64>, Option<f64>),
        claims_len: usize,
    ) {
        let (exp, nbf, iat) = times;
        let verified = Verified {
            principal,
            issuer,
            key,
            exp,
            nbf,
            iat,
        };
        let now = unix_now();
        if verified.expired(now) {
            return;
        }
        let shared = &*self.shared;
        let estimate = ENTRY_OVERHEAD
            .saturating_add(probe.token.len() as u64)
            .saturating_add(2 * claims_len as u64);
        let weight = estimate.max(shared.min_weight);
        if weight > shared.bytes_per_shard {
            return;
        }
        let weight = u32::try_from(weight).unwrap_or(u32::MAX);
        let (shard, key) = self.locate(&probe);
        let mut shard = lock(shard);
        let mut evicted = 0;
        shard.remove(&key);
        shard.inserts = shard.inserts.wrapping_add(1);
        if shard.inserts % SWEEP_EVERY == 0 || shard.ring.len() > 2 * shared.entries_per_shard + 8 {
            shard.sweep(now);
        }
        while shard.map.len() >= shared.entries_per_shard
            || shard.bytes + u64::from(weight) > shared.bytes_per_shard
        {
            if !shard.evict_one() {
                break;
            }
            evicted += 1;
        }
        shard.bytes += u64::from(weight);
        shard.map.insert(
            key,
            Slot {
                token: probe.token.into(),
                verified,
                weight,
                visited: false,
            },
        );
        shard.ring.push_back(key);
        drop(shard);
        if evicted > 0 {
            crate::metrics::token_cache_evicted(evicted);
        }
    }

    /// Nothing is deferred in this cache; kept so tests read like the bound they check.
    #[cfg(test)]
    pub(crate) fn settle(&self) {}

    /// Entries and total weight (estimated bytes).
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (u64, u64) {
        self.shared.shards.iter().fold((0, 0), |(n, b), shard| {
            let shard = lock(shard);
            (n + shard.map.len() as u64, b + shard.bytes)
        })
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        __doc_support::{JWKS, TOKEN},
        authenticate::{Authenticate, Authentication},
        clock::test_clock,
        error::ErrorKind,
        jwt::Jwt,
        principal::{Scopes, UserAuthentication},
    };

    fn principal() -> Principal<()> {
        Principal::new_confirmed(
            Arc::from("https://issuer.example.com"),
            None,
            Scopes::default(),
            None,
            UserAuthentication::default(),
            (),
            None,
        )
    }

    fn token_of(i: u64) -> String {
        format!("token-{i}")
    }

    /// Remembers `token` (verified by key 1 of issuer 0) until `exp`, its claims
    /// `claims_len` bytes long.
    fn remember(cache: &TokenCache<()>, token: &str, exp: Option<f64>, claims_len: usize) {
        cache.insert(
            cache.probe(token),
            principal(),
            0,
            1,
            (exp, None, None),
            claims_len,
        );
    }

    fn far_exp() -> Option<f64> {
        Some(crate::clock::unix_now() + 3600.0)
    }

    #[test]
    fn tokens_with_one_tail_share_a_slot_but_never_an_entry() {
        let cache = TokenCache::<()>::new(TokenCacheConfig::default()).expect("enabled");
        let tail = "s".repeat(HASHED_TAIL);
        let (a, b) = (format!("header-a.{tail}"), format!("header-b.{tail}"));
        assert_eq!(cache.probe(&a).hash, cache.probe(&b).hash, "one slot");
        remember(&cache, &a, far_exp(), 100);
        assert!(
            cache.get(&cache.probe(&b), unix_now()).is_none(),
            "b is not a"
        );
        assert!(cache.get(&cache.probe(&a), unix_now()).is_some());
        // The later verified token takes the slot: the earlier one is validated again.
        remember(&cache, &b, far_exp(), 100);
        assert!(cache.get(&cache.probe(&a), unix_now()).is_none());
        assert!(cache.get(&cache.probe(&b), unix_now()).is_some());
        // One byte more or one tail byte changed: another hash.
        assert_ne!(cache.probe(&a).hash, cache.probe(&format!("{a}s")).hash);
        let mut changed = a.clone().into_bytes();
        if let Some(last) = changed.last_mut() {
            *last = b't';
        }
        let changed = String::from_utf8(changed).expect("ASCII");
        assert_ne!(cache.probe(&a).hash, cache.probe(&changed).hash);
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
            remember(&cache, &token_of(i), far_exp(), 300);
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
    fn a_token_in_steady_use_survives_a_flood_of_distinct_tokens() {
        let config = TokenCacheConfig {
            enabled: true,
            capacity: 1_000,
            max_bytes: DEFAULT_TOKEN_CACHE_MAX_BYTES,
        };
        let cache = TokenCache::<()>::new(config).expect("enabled");
        remember(&cache, "hot", far_exp(), 300);
        for i in 0..50_000u64 {
            remember(&cache, &token_of(i), far_exp(), 300);
            if i % 100 == 0 {
                assert!(
                    cache.get(&cache.probe("hot"), unix_now()).is_some(),
                    "evicted after {i} other tokens"
                );
            }
        }
        let cold = token_of(0);
        assert!(
            cache.get(&cache.probe(&cold), unix_now()).is_none(),
            "a token used once was evicted"
        );
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
            remember(&cache, &token_of(i), far_exp(), 8_000);
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
        remember(&cache, &token_of(1), Some(now - 1.0), 300);
        remember(&cache, &token_of(2), Some(now + 3600.0), 300);
        assert!(
            cache.get(&cache.probe(&token_of(1)), unix_now()).is_none(),
            "already expired"
        );
        assert!(cache.get(&cache.probe(&token_of(2)), unix_now()).is_some());
    }

    #[test]
    fn a_token_with_the_same_hash_is_not_a_hit() {
        let cache = TokenCache::<()>::new(TokenCacheConfig::default()).expect("enabled");
        let stored = token_of(1);
        remember(&cache, &stored, far_exp(), 300);
        // Another token that lands on the same hash (which an outsider cannot aim at, the
        // hash being seeded) is compared in full and misses; nor can it remove the entry.
        let other = Probe {
            hash: cache.probe(&stored).hash,
            token: "another-token",
        };
        assert!(cache.get(&other, unix_now()).is_none());
        cache.remove(&other);
        assert!(cache.get(&cache.probe(&stored), unix_now()).is_some());
        cache.remove(&cache.probe(&stored));
        assert!(cache.get(&cache.probe(&stored), unix_now()).is_none());
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
        // The token expires in 2100: nothing but the clock tells that it has expired.
        test_clock::jump(100.0 * 365.0 * 86_400.0);
        assert_eq!(decide(&jwt, TOKEN), Err(ErrorKind::InvalidToken));
        assert_eq!(verified.usage().0, 0, "the expired entry is gone");
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
        assert_eq!(decide(&jwt, &forged), Err(ErrorKind::InvalidToken));
        // Failures are not remembered.
        let verified = jwt.verified.clone().expect("on by default");
        verified.settle();
        assert_eq!(verified.usage().0, 1);
        assert_eq!(decide(&jwt, TOKEN), Ok(()));
    }
}
