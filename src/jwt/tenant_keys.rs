//! Per-tenant key sets for an issuer template: each tenant's keys found through discovery
//! at its own issuer URL, in a bounded cache that a flood of made-up tenants cannot grow or
//! churn faster than one new tenant per cooldown once full.

use std::{
    collections::HashMap,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    alg::AlgSet,
    error::AuthError,
    http_client::{HttpClient, parse_url},
    jwks::{CachePolicy, JwksCache, Source},
};

/// Default bound on the tenants whose key sets one template keeps: 100.
pub const DEFAULT_MAX_TENANTS: usize = 100;

pub(crate) struct TenantKeySets {
    http: HttpClient,
    policy: CachePolicy,
    allowed: AlgSet,
    other_hosts: Arc<[Box<str>]>,
    max: usize,
    tick: AtomicU64,
    sets: RwLock<Sets>,
}

#[derive(Default)]
struct Sets {
    by_issuer: HashMap<Box<str>, Entry>,
    /// When a tenant was last let in by pushing another out.
    last_eviction: Option<Instant>,
}

struct Entry {
    cache: JwksCache,
    last_used: AtomicU64,
}

impl TenantKeySets {
    pub(crate) fn new(
        http: HttpClient,
        policy: CachePolicy,
        allowed: AlgSet,
        other_hosts: Arc<[Box<str>]>,
        max: usize,
    ) -> Self {
        Self {
            http,
            policy,
            allowed,
            other_hosts,
            max,
            tick: AtomicU64::new(0),
            sets: RwLock::new(Sets::default()),
        }
    }

    /// The key cache of the tenant whose issuer is `iss` (already matched to the template),
    /// created empty when the tenant is new. Once `max` tenants are cached, a new one gets in
    /// only by pushing out the least recently used, at most once per cooldown; until then it
    /// is answered `503`. No lock is held past this call.
    pub(crate) fn get(&self, iss: &str, now: Instant) -> Result<JwksCache, AuthError> {
        let tick = self.tick.fetch_add(1, Ordering::Relaxed);
        {
            let sets = self.sets.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = sets.by_issuer.get(iss) {
                entry.last_used.store(tick, Ordering::Relaxed);
                return Ok(entry.cache.clone());
            }
        }
        let mut sets = self.sets.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = sets.by_issuer.get(iss) {
            return Ok(entry.cache.clone());
        }
        if sets.by_issuer.len() >= self.max {
            let cooldown = self.policy.cooldown;
            if let Some(at) = sets.last_eviction
                && now.saturating_duration_since(at) < cooldown
            {
                return Err(AuthError::unavailable(
                    "too many tenants' keys are cached; try again later",
                    cooldown.saturating_sub(now.saturating_duration_since(at)),
                ));
            }
            let oldest = sets
                .by_issuer
                .iter()
                .min_by_key(|(_, e)| e.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                sets.by_issuer.remove(&oldest);
            }
            sets.last_eviction = Some(now);
        }
        let url = parse_url(iss, self.policy.allow_http)
            .map_err(|_| AuthError::invalid_token("the token's issuer is not trusted"))?;
        let cache = JwksCache::new(
            iss.into(),
            Source::Discovery {
                issuer: url,
                other_hosts: Arc::clone(&self.other_hosts),
            },
            None,
            self.http.clone(),
            self.policy,
            self.allowed,
        );
        sets.by_issuer.insert(
            iss.into(),
            Entry {
                cache: cache.clone(),
                last_used: AtomicU64::new(tick),
            },
        );
        Ok(cache)
    }

    /// How many tenants' key sets are cached.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.sets
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .by_issuer
            .len()
    }
}

impl std::fmt::Debug for TenantKeySets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKeySets")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// How long a resolver's answer about a tenant is reused.
pub(crate) const DECISION_TTL: Duration = Duration::from_secs(300);
/// The most resolver answers kept; past it they are all dropped and asked again.
pub(crate) const MAX_DECISIONS: usize = 4096;

/// A resolver's recent answers, by tenant.
#[derive(Debug, Default)]
pub(crate) struct Decisions(RwLock<HashMap<Box<str>, (bool, Instant)>>);

impl Decisions {
    pub(crate) fn get(&self, tenant: &str, now: Instant) -> Option<bool> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        map.get(tenant)
            .filter(|(_, at)| now.saturating_duration_since(*at) < DECISION_TTL)
            .map(|(allowed, _)| *allowed)
    }

    pub(crate) fn put(&self, tenant: &str, allowed: bool, now: Instant) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_DECISIONS {
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < DECISION_TTL);
            if map.len() >= MAX_DECISIONS {
                map.clear();
            }
        }
        map.insert(tenant.into(), (allowed, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(max: usize, cooldown: Duration) -> TenantKeySets {
        let policy = CachePolicy {
            cooldown,
            ..CachePolicy::default()
        };
        TenantKeySets::new(
            {
                let mut options = crate::http_client::HttpOptions::new(1024);
                options.timeout = Duration::from_secs(1);
                options.build().expect("client")
            },
            policy,
            AlgSet::of(crate::alg::Algorithm::ALL.iter().copied()),
            Arc::default(),
            max,
        )
    }

    #[test]
    fn bounded_with_one_admission_per_cooldown_when_full() {
        let sets = sets(3, Duration::from_secs(60));
        let t0 = Instant::now();
        let iss = |i: usize| format!("https://login.example.com/t{i}/v2.0");
        for i in 0..3 {
            assert!(sets.get(&iss(i), t0).is_ok());
        }
        // Touch t0 so that t1 is the least recently used.
        assert!(sets.get(&iss(0), t0).is_ok());
        assert!(sets.get(&iss(3), t0).is_ok(), "one admission when full");
        assert_eq!(sets.len(), 3);
        for i in 4..100 {
            let refused = sets.get(&iss(i), t0).err().map(|e| e.kind());
            assert_eq!(refused, Some(crate::error::ErrorKind::Unavailable), "{i}");
        }
        assert_eq!(sets.len(), 3);
        // Cached tenants still get their cache; t1 was pushed out.
        assert!(sets.get(&iss(0), t0).is_ok());
        assert!(sets.get(&iss(3), t0).is_ok());
        assert!(sets.get(&iss(1), t0).is_err());
        let later = t0 + Duration::from_secs(61);
        assert!(sets.get(&iss(1), later).is_ok());
        assert_eq!(sets.len(), 3);
    }

    #[test]
    fn decisions_expire_and_stay_bounded() {
        let d = Decisions::default();
        let t0 = Instant::now();
        d.put("a", true, t0);
        d.put("b", false, t0);
        assert_eq!(d.get("a", t0), Some(true));
        assert_eq!(d.get("b", t0), Some(false));
        assert_eq!(d.get("c", t0), None);
        assert_eq!(d.get("a", t0 + DECISION_TTL), None);
        for i in 0..MAX_DECISIONS * 2 {
            d.put(&format!("t{i}"), false, t0);
        }
        assert!(d.0.read().expect("lock").len() <= MAX_DECISIONS);
    }
}
