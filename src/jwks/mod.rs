//! The key cache of one issuer: discovery, a snapshot read without I/O on the hot path,
//! one shared refresh at a time, a cooldown for unknown `kid`s, and stale keys during an
//! outage.

pub(crate) mod keys;
pub(crate) mod verifier;

use std::{
    ops::Deref,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use arc_swap::{ArcSwap, Guard};

use futures_util::{
    FutureExt,
    future::{BoxFuture, Shared},
};
use reqwest::Url;

use crate::{
    alg::AlgSet,
    discovery,
    http_client::{FetchError, HttpClient, max_age, parse_url},
};
use keys::KeySet;

/// Default time keys are used before they are fetched again: 10 minutes.
pub const DEFAULT_JWKS_TTL: Duration = Duration::from_secs(600);
/// Default minimum time between two fetches caused by unknown `kid`s or failures: 30 s.
pub const DEFAULT_REFRESH_COOLDOWN: Duration = Duration::from_secs(30);
/// Default time keys keep serving past their TTL while the issuer cannot be reached: 1 hour.
pub const DEFAULT_MAX_STALE: Duration = Duration::from_secs(3600);
/// Bounds of a `Cache-Control: max-age` from the JWKS endpoint; the configured TTL still caps it.
pub(crate) const MAX_AGE_BOUNDS: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(24 * 3600));

/// Where an issuer's keys come from.
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// Discovery from the issuer URL, then its `jwks_uri`, which must be on the issuer's
    /// host or on one of `other_hosts`.
    Discovery {
        issuer: Url,
        other_hosts: Arc<[Box<str>]>,
    },
    /// A `jwks_uri` given directly.
    JwksUri(Url),
    /// Keys given at build time; never fetched.
    Static,
}

/// Refresh policy, shared by all issuers of an authenticator.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CachePolicy {
    pub(crate) ttl: Duration,
    pub(crate) cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) allow_http: bool,
}

/// The longest TTL, cooldown or stale period a builder accepts: 30 days.
pub(crate) const MAX_POLICY_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl CachePolicy {
    pub(crate) fn check(&self) -> Result<(), crate::error::ConfigError> {
        if [self.ttl, self.cooldown, self.max_stale]
            .iter()
            .any(|d| *d > MAX_POLICY_DURATION)
        {
            return Err(crate::error::ConfigError::new(
                "JWKS TTL, cooldown and stale period may not exceed 30 days",
            ));
        }
        Ok(())
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_JWKS_TTL,
            cooldown: DEFAULT_REFRESH_COOLDOWN,
            max_stale: DEFAULT_MAX_STALE,
            allow_http: false,
        }
    }
}

type Refresh = Shared<BoxFuture<'static, ()>>;

/// The keys in use and how long they may be, swapped whole when a fetch succeeds, so the
/// hot path reads them without a lock.
struct Published {
    keys: Option<KeySet>,
    fresh_until: Instant,
    usable_until: Instant,
}

/// The keys of a snapshot that has keys, held without a reference count (arc-swap's
/// guard) while a request uses them.
pub(crate) struct Snapshot(Guard<Arc<Published>>);

impl Deref for Snapshot {
    type Target = KeySet;

    fn deref(&self) -> &KeySet {
        // `current` hands out only snapshots that have keys; an empty set verifies nothing.
        static EMPTY: KeySet = KeySet { keys: Vec::new() };
        self.0.keys.as_ref().unwrap_or(&EMPTY)
    }
}

/// Fetch bookkeeping, changed only under its lock and never read on the hot path of a
/// token that verifies.
struct State {
    last_attempt: Option<Instant>,
    last_failed: bool,
    inflight: Option<Refresh>,
    /// For readiness: the last successful fetch and the cause of the last failure.
    last_success: Option<Instant>,
    last_error: Option<Arc<str>>,
}

struct Inner {
    issuer: Arc<str>,
    source: Source,
    http: HttpClient,
    policy: CachePolicy,
    allowed: AlgSet,
    discovered: Mutex<Option<Url>>,
    published: ArcSwap<Published>,
    state: RwLock<State>,
}

/// The state of one issuer's keys, for readiness.
pub(crate) struct Health {
    pub(crate) issuer: Arc<str>,
    pub(crate) has_keys: bool,
    pub(crate) serving_stale: bool,
    pub(crate) since_last_fetch: Option<Duration>,
    pub(crate) last_error: Option<Arc<str>>,
}

/// What the hot path may do with the keys right now.
pub(crate) enum Keys {
    /// Use these keys; `refetch` says whether an unknown `kid` may wait for a refresh
    /// (`None`: ask [`JwksCache::may_refetch`], only if it matters).
    Ready {
        keys: Snapshot,
        refetch: Option<bool>,
    },
    /// No usable keys: wait for a refresh.
    MustRefresh,
    /// No usable keys and a fetch is not allowed yet.
    Unavailable(Duration),
}

/// The keys of one issuer. Cloning shares the cache.
#[derive(Clone)]
pub(crate) struct JwksCache {
    inner: Arc<Inner>,
}

impl JwksCache {
    pub(crate) fn new(
        issuer: Arc<str>,
        source: Source,
        initial: Option<KeySet>,
        http: HttpClient,
        policy: CachePolicy,
        allowed: AlgSet,
    ) -> Self {
        let now = Instant::now();
        let published = Published {
            keys: initial,
            fresh_until: now,
            usable_until: now,
        };
        let state = State {
            last_attempt: None,
            last_failed: false,
            inflight: None,
            last_success: None,
            last_error: None,
        };
        Self {
            inner: Arc::new(Inner {
                issuer,
                source,
                http,
                policy,
                allowed,
                discovered: Mutex::new(None),
                published: ArcSwap::from_pointee(published),
                state: RwLock::new(state),
            }),
        }
    }

    pub(crate) fn issuer(&self) -> &Arc<str> {
        &self.inner.issuer
    }

    /// The keys to use now. Never does I/O and never blocks on one; fresh keys are read
    /// without taking a lock.
    pub(crate) fn current(&self, now: Instant) -> Keys {
        let inner = &self.inner;
        let published = inner.published.load();
        let fixed = matches!(inner.source, Source::Static);
        if published.keys.is_some() && (fixed || now < published.fresh_until) {
            return Keys::Ready {
                keys: Snapshot(published),
                refetch: if fixed { Some(false) } else { None },
            };
        }
        if fixed {
            return Keys::Unavailable(inner.policy.cooldown);
        }
        // Keys are published under the state lock: read both as one.
        let (published, may_fetch, retry_after, inflight) = {
            let st = read(&inner.state);
            let (may_fetch, retry_after) = inner.may_fetch(&st, now);
            (
                inner.published.load(),
                may_fetch,
                retry_after,
                st.inflight.is_some(),
            )
        };
        let has_keys = published.keys.is_some();
        if has_keys && now < published.fresh_until {
            // Replaced while this request looked.
            Keys::Ready {
                keys: Snapshot(published),
                refetch: Some(may_fetch),
            }
        } else if has_keys && now < published.usable_until {
            // Stale but usable: serve now, refresh in the background.
            // With a fetch under way already, join it only if a kid is unknown.
            let refetch = inflight || (may_fetch && self.refresh_in_background());
            Keys::Ready {
                keys: Snapshot(published),
                refetch: Some(refetch),
            }
        } else if may_fetch {
            Keys::MustRefresh
        } else {
            Keys::Unavailable(retry_after)
        }
    }

    /// Whether a token with an unknown `kid`, checked against `seen`, may wait for a fetch
    /// now: one within the cooldown, the one under way, or none at all when the keys were
    /// replaced since `seen` was read (the waiter then checks the new ones).
    pub(crate) fn may_refetch(&self, now: Instant, seen: &Snapshot) -> bool {
        if !self.fetches_keys() {
            return false;
        }
        // Keys are published under the state lock: both are read as one here.
        let st = read(&self.inner.state);
        let replaced = !Arc::ptr_eq(&self.inner.published.load(), &seen.0);
        replaced || self.inner.may_fetch(&st, now).0
    }

    /// Starts a refresh that runs as its own task; `false` outside a Tokio runtime.
    fn refresh_in_background(&self) -> bool {
        if tokio::runtime::Handle::try_current().is_err() {
            return false;
        }
        drop(self.refresh());
        true
    }

    /// What readiness reports for this issuer; cheap, no I/O.
    pub(crate) fn health(&self, now: Instant) -> Health {
        let st = read(&self.inner.state);
        let published = self.inner.published.load();
        let fetched = self.fetches_keys();
        let has = published.keys.is_some();
        Health {
            issuer: Arc::clone(&self.inner.issuer),
            has_keys: has && (!fetched || now < published.usable_until),
            serving_stale: fetched && has && now >= published.fresh_until,
            since_last_fetch: st.last_success.map(|at| now.saturating_duration_since(at)),
            last_error: st.last_error.clone(),
        }
    }

    /// Appends "issuer `URL`: cause of the last failure" (URL redacted) to `out`, for an
    /// operator-facing error.
    pub(crate) fn describe_failure(&self, now: Instant, out: &mut String) {
        use std::fmt::Write;
        let health = self.health(now);
        let _ = write!(
            out,
            "issuer `{}`: {}",
            crate::redact::url(&self.inner.issuer),
            health.last_error.as_deref().unwrap_or("not fetched yet")
        );
    }

    /// Whether the latest fetch failed: an unknown `kid` then says nothing about the token.
    pub(crate) fn last_fetch_failed(&self) -> bool {
        read(&self.inner.state).last_failed
    }

    /// Whether keys are fetched at all (not a static key set).
    pub(crate) fn fetches_keys(&self) -> bool {
        !matches!(self.inner.source, Source::Static)
    }

    /// Starts a fetch, or joins the one under way. The fetch runs as its own task, so it
    /// completes even if every waiter goes away.
    ///
    /// Fetching needs a Tokio runtime; outside one nothing is fetched.
    pub(crate) fn refresh(&self) -> Refresh {
        let done = || futures_util::future::ready(()).boxed().shared();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return done();
        };
        if !self.fetches_keys() {
            return done();
        }
        let mut st = write(&self.inner.state);
        if let Some(inflight) = &st.inflight {
            return inflight.clone();
        }
        // Another fetch may have finished since the caller looked: keep to one per cooldown.
        if st
            .last_attempt
            .is_some_and(|at| at.elapsed() < self.inner.policy.cooldown)
        {
            return done();
        }
        st.last_attempt = Some(Instant::now());
        let inner = Arc::clone(&self.inner);
        let issuer = Arc::clone(&inner.issuer);
        let task = crate::trace::outbound("jwks_fetch", &issuer, async move {
            let result = inner.fetch().await;
            inner.install(result);
        });
        let join = handle.spawn(task);
        let inner = Arc::clone(&self.inner);
        let shared = async move {
            if join.await.is_err() {
                // The task was cancelled (runtime shutting down): let a later request try.
                write(&inner.state).inflight = None;
            }
        }
        .boxed()
        .shared();
        st.inflight = Some(shared.clone());
        shared
    }
}

impl Inner {
    /// Whether a fetch may start (or be joined) now, and otherwise when it may.
    fn may_fetch(&self, st: &State, now: Instant) -> (bool, Duration) {
        if st.inflight.is_some() {
            return (true, Duration::ZERO);
        }
        match st.last_attempt {
            Some(at) => match at.checked_add(self.policy.cooldown) {
                Some(next) => (now >= next, next.saturating_duration_since(now)),
                None => (false, self.policy.cooldown),
            },
            None => (true, Duration::ZERO),
        }
    }

    async fn jwks_uri(&self) -> Result<Url, FetchError> {
        let (issuer_url, other_hosts) = match &self.source {
            Source::JwksUri(url) => return Ok(url.clone()),
            Source::Discovery {
                issuer,
                other_hosts,
            } => (issuer, other_hosts),
            Source::Static => return Err(FetchError::Invalid("static key set")),
        };
        if let Some(url) = lock(&self.discovered).clone() {
            return Ok(url);
        }
        let metadata = discovery::discover(&self.http, issuer_url, &self.issuer).await?;
        let uri = metadata
            .jwks_uri
            .ok_or(FetchError::Invalid("discovery document has no jwks_uri"))?;
        let uri = parse_url(&uri, self.policy.allow_http)
            .map_err(|_| FetchError::Invalid("discovery document has an unusable jwks_uri"))?;
        // Keys from another host would let that host mint tokens for this issuer: only
        // with the user's consent.
        let host = uri.host_str().unwrap_or_default();
        if uri.host_str() != issuer_url.host_str()
            && !other_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
        {
            return Err(FetchError::Invalid(
                "the discovered jwks_uri is on another host than the issuer (see JwtBuilder::allow_jwks_host)",
            ));
        }
        *lock(&self.discovered) = Some(uri.clone());
        Ok(uri)
    }

    async fn fetch(&self) -> Result<(KeySet, Option<Duration>), FetchError> {
        let url = self.jwks_uri().await?;
        let fetched = match self.http.get(&url).await {
            Ok(fetched) => fetched,
            Err(e) => {
                // The issuer may have moved its keys: discover again next time.
                *lock(&self.discovered) = None;
                return Err(e);
            }
        };
        let set = keys::parse(&fetched.body, self.allowed).map_err(|e| FetchError::Invalid(e.0))?;
        if set.keys.is_empty() {
            return Err(FetchError::Invalid("the key set has no usable key"));
        }
        Ok((set, max_age(&fetched.headers)))
    }

    fn install(&self, result: Result<(KeySet, Option<Duration>), FetchError>) {
        let now = Instant::now();
        let mut st = write(&self.state);
        st.inflight = None;
        st.last_failed = result.is_err();
        match result {
            Ok((set, max_age)) => {
                st.last_success = Some(now);
                st.last_error = None;
                // The configured TTL is an upper bound: a longer `max-age` never keeps a
                // removed key alive past it; a shorter one (at least a minute) is honoured.
                let ttl = max_age
                    .map(|age| age.clamp(MAX_AGE_BOUNDS.0, MAX_AGE_BOUNDS.1))
                    .map_or(self.policy.ttl, |age| age.min(self.policy.ttl));
                // Durations are bounded at build time (30 days), so these cannot overflow.
                let fresh_until = now + ttl;
                let loaded = set.keys.len();
                // Stored under the state lock: fetches publish one after the other.
                self.published.store(Arc::new(Published {
                    keys: Some(set),
                    fresh_until,
                    usable_until: fresh_until + self.policy.max_stale,
                }));
                crate::metrics::jwks_fetched(&self.issuer, Some(loaded), false);
            }
            Err(error) => {
                st.last_error = Some(error.to_string().into());
                let published = self.published.load();
                let stale = published.keys.is_some()
                    && now >= published.fresh_until
                    && now < published.usable_until;
                crate::metrics::jwks_fetched(&self.issuer, None, stale);
                #[cfg(feature = "tracing")]
                tracing::warn!(
                    target: "portcullis::jwks",
                    issuer = %self.issuer,
                    error = %error,
                    serving_stale = stale,
                    "could not refresh the issuer's keys"
                );
            }
        }
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}
