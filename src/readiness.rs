//! Readiness: a cheap status per issuer (keys loaded? serving stale keys? the last fetch's
//! error), for an application's readiness endpoint, and a start-up warm-up with a bounded
//! retry.
//!
//! # Example
//!
//! ```
//! use portcullis::Jwt;
//!
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", portcullis::__doc_support::JWKS)
//!     .audience("https://api.example.com")
//!     .build()?;
//! assert!(jwt.is_ready());
//! let status = &jwt.status()[0];
//! assert_eq!(status.issuer(), "https://issuer.example.com");
//! assert!(status.has_keys() && !status.serving_stale());
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

use std::{
    error::Error,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::de::DeserializeOwned;

use crate::{jwks::Health, jwt::Jwt};

/// The state of one issuer's keys, as [`Jwt::status`] reports it.
#[derive(Clone, Debug)]
pub struct IssuerStatus {
    issuer: Arc<str>,
    has_keys: bool,
    serving_stale: bool,
    since_last_fetch: Option<Duration>,
    last_error: Option<Arc<str>>,
}

impl From<Health> for IssuerStatus {
    fn from(health: Health) -> Self {
        Self {
            issuer: health.issuer,
            has_keys: health.has_keys,
            serving_stale: health.serving_stale,
            since_last_fetch: health.since_last_fetch,
            last_error: health.last_error,
        }
    }
}

impl IssuerStatus {
    /// The issuer, as configured.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Whether tokens of this issuer can be verified now (fresh keys, stale keys within
    /// `jwks_max_stale`, or a static key set).
    pub fn has_keys(&self) -> bool {
        self.has_keys
    }

    /// Whether the keys in use are past their TTL (the issuer could not be reached since).
    pub fn serving_stale(&self) -> bool {
        self.serving_stale
    }

    /// Time since the last successful fetch; `None` before the first one (and for a static
    /// key set).
    pub fn since_last_fetch(&self) -> Option<Duration> {
        self.since_last_fetch
    }

    /// Why the latest fetch failed (no token, secret or URL in it); `None` when it
    /// succeeded or none was made.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

/// The issuers still without keys when [`Jwt::warm_up`] gave up; `Display` names each
/// issuer and why.
#[derive(Clone, Debug)]
pub struct NotReady {
    issuers: Vec<IssuerStatus>,
}

impl NotReady {
    /// The issuers without keys.
    pub fn issuers(&self) -> &[IssuerStatus] {
        &self.issuers
    }
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no keys for ")?;
        for (i, status) in self.issuers.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(
                f,
                "issuer `{}`: {}",
                crate::redact::url(&status.issuer),
                status.last_error().unwrap_or("not fetched yet")
            )?;
        }
        Ok(())
    }
}

impl Error for NotReady {}

impl<C> Jwt<C> {
    /// The state of every issuer's keys. Cheap (no I/O, no waiting): fit for a readiness
    /// endpoint polled often.
    pub fn status(&self) -> Vec<IssuerStatus> {
        let now = Instant::now();
        self.issuers()
            .iter()
            .map(|c| c.health(now).into())
            .collect()
    }

    /// Whether every issuer has keys to verify tokens with.
    pub fn is_ready(&self) -> bool {
        let now = Instant::now();
        self.issuers().iter().all(|c| c.health(now).has_keys)
    }
}

impl<C> Jwt<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// Fetches every issuer's keys, retrying the ones that fail (at most once per
    /// `jwks_refresh_cooldown`) until all have keys or `within` has passed: a start-up
    /// warm-up with a bounded retry. Building does no I/O; call this before serving.
    ///
    /// # Errors
    ///
    /// [`NotReady`], naming each issuer still without keys and the cause of its last
    /// failure. The others are warmed all the same; requests for the missing issuers get
    /// `503` until their keys arrive.
    pub async fn warm_up(&self, within: Duration) -> Result<(), NotReady> {
        let deadline = Instant::now() + within.min(Duration::from_secs(3600));
        // Each retry is a new fetch only once the cooldown allows; in between, refresh
        // returns at once.
        let mut pause = Duration::from_millis(100);
        loop {
            if self.refresh().await.is_ok() {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                let issuers = self
                    .issuers()
                    .iter()
                    .map(|c| IssuerStatus::from(c.health(now)))
                    .filter(|s| !s.has_keys)
                    .collect();
                return Err(NotReady { issuers });
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}
