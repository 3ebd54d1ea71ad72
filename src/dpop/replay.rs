//! Remembering DPoP proofs already used: [`ReplayStore`] and its bounded in-process default,
//! [`InMemoryReplayStore`].

use std::{
    collections::{HashSet, VecDeque},
    fmt,
    future::Future,
    pin::Pin,
    sync::{Mutex, PoisonError},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

/// The default capacity of [`InMemoryReplayStore`]: 100 000 proofs.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// Identifies one DPoP proof: a SHA-256 digest of the proof key's thumbprint and the
/// proof's `jti`, so that a `jti` is scoped by the key that signed it and the store never
/// holds client-chosen strings of unbounded length.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReplayKey([u8; 32]);

impl ReplayKey {
    pub(crate) fn new(jkt: &str, jti: &str) -> Self {
        let mut hash = Sha256::new();
        hash.update(jkt.as_bytes());
        hash.update([0]);
        hash.update(jti.as_bytes());
        Self(hash.finalize().into())
    }

    /// The 32 bytes of the digest, e.g. to build a key in a shared store.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ReplayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReplayKey(")?;
        for b in &self.0[..4] {
            write!(f, "{b:02x}")?;
        }
        f.write_str("…)")
    }
}

/// Whether a proof was seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// First use: the proof is now recorded.
    First,
    /// Already recorded: a replay.
    Replayed,
}

/// A replay store could not answer (it is full, or a shared store cannot be reached).
///
/// The layer fails closed on it: the request is answered `503` with `Retry-After`, since
/// accepting a proof that cannot be checked for replay would break RFC 9449 §11.1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayStoreError {
    reason: &'static str,
}

impl ReplayStoreError {
    /// An error with a fixed, secret-free reason.
    pub fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// The reason given.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for ReplayStoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DPoP replay store unavailable: {}", self.reason)
    }
}

impl std::error::Error for ReplayStoreError {}

/// The answer of a replay store: decided now (an in-process store) or after I/O (a shared
/// store).
pub enum ReplayCheck {
    /// Decided without I/O.
    Ready(Result<Freshness, ReplayStoreError>),
    /// Needs I/O first.
    Pending(Pin<Box<dyn Future<Output = Result<Freshness, ReplayStoreError>> + Send + 'static>>),
}

impl fmt::Debug for ReplayCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// Records the DPoP proofs already accepted, so that each is accepted once.
///
/// [`check_and_insert`](Self::check_and_insert) must be atomic: of two concurrent calls
/// with the same key, exactly one may answer [`Freshness::First`]. An entry must be kept at
/// least `ttl`, the longest time the proof could still pass the `iat` check. A store shared
/// by replicas (e.g. "set if absent, with expiry" in Redis) answers
/// [`ReplayCheck::Pending`]; an error makes the layer answer `503`.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` unless it is already recorded, and says which it was.
    fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck;
}

/// The default replay store: in process, bounded, each entry forgotten once its `ttl` has
/// passed.
///
/// An entry is a 32-byte key in a hash set and the key with its deadline in a queue:
/// about 100 bytes with the tables' overhead, so the default cap of
/// [`DEFAULT_REPLAY_CAPACITY`] entries stays near 10 MiB. Expired entries are dropped as
/// new ones arrive. When the store is full of unexpired entries a new proof is not
/// recorded and the request is answered `503`: forgetting a live entry would let its proof
/// be replayed. One lock, held for a hash-set insert and never across an `.await`.
///
/// It protects one process only: replicas behind a load balancer need a shared store.
pub struct InMemoryReplayStore {
    capacity: usize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    seen: HashSet<ReplayKey>,
    // Every `ttl` the layer passes is the same, so deadlines are in insertion order.
    order: VecDeque<(Instant, ReplayKey)>,
}

impl InMemoryReplayStore {
    /// A store holding at most `capacity` unexpired proofs.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::default(),
        }
    }

    /// How many proofs are recorded, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .seen
            .len()
    }

    /// Whether no proof is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(
        &self,
        key: ReplayKey,
        ttl: Duration,
        now: Instant,
    ) -> Result<Freshness, ReplayStoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State { seen, order } = &mut *state;
        while let Some((deadline, old)) = order.front() {
            if *deadline > now {
                break;
            }
            seen.remove(old);
            order.pop_front();
        }
        if seen.contains(&key) {
            return Ok(Freshness::Replayed);
        }
        if seen.len() >= self.capacity {
            return Err(ReplayStoreError::new("the in-process replay store is full"));
        }
        seen.insert(key);
        order.push_back((now + ttl, key));
        Ok(Freshness::First)
    }
}

impl Default for InMemoryReplayStore {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

impl fmt::Debug for InMemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ReplayStore for InMemoryReplayStore {
    fn check_and_insert(&self, key: ReplayKey, ttl: Duration) -> ReplayCheck {
        ReplayCheck::Ready(self.insert(key, ttl, Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_then_replayed_then_forgotten_after_ttl() {
        let store = InMemoryReplayStore::new(10);
        let key = ReplayKey::new("thumb", "jti-1");
        let t0 = Instant::now();
        let ttl = Duration::from_secs(60);
        assert_eq!(store.insert(key, ttl, t0), Ok(Freshness::First));
        assert_eq!(
            store.insert(key, ttl, t0 + Duration::from_secs(59)),
            Ok(Freshness::Replayed)
        );
        assert_eq!(
            store.insert(key, ttl, t0 + Duration::from_secs(61)),
            Ok(Freshness::First),
            "forgotten once expired"
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn jti_is_scoped_by_key() {
        assert_ne!(ReplayKey::new("a", "x"), ReplayKey::new("b", "x"));
        assert_ne!(ReplayKey::new("ab", "c"), ReplayKey::new("a", "bc"));
    }

    #[test]
    fn full_store_fails_closed_until_entries_expire() {
        let store = InMemoryReplayStore::new(2);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(10);
        for jti in ["1", "2"] {
            assert_eq!(
                store.insert(ReplayKey::new("k", jti), ttl, t0),
                Ok(Freshness::First)
            );
        }
        assert!(store.insert(ReplayKey::new("k", "3"), ttl, t0).is_err());
        // A recorded proof is still recognised as a replay when the store is full.
        assert_eq!(
            store.insert(ReplayKey::new("k", "1"), ttl, t0),
            Ok(Freshness::Replayed)
        );
        assert_eq!(
            store.insert(ReplayKey::new("k", "3"), ttl, t0 + ttl),
            Ok(Freshness::First)
        );
        assert_eq!(store.len(), 1);
    }
}
