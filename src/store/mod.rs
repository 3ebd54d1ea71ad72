//! State that replicas share, in Redis or Valkey (feature `redis`): [`RedisStore`].
//!
//! ```
//! use std::time::Duration;
//! use portcullis::store::RedisStore;
//!
//! let store = RedisStore::builder()
//!     .url("redis://:s3cr3t@127.0.0.1:6379/2")
//!     .shared_key(*b"32 random bytes, from a vault...")
//!     .key_prefix("orders-api:")
//!     .timeout(Duration::from_millis(100))
//!     .build()?; // checks the configuration; connects on first use
//! assert_eq!(store.database(), 2);
//! let shown = format!("{store:?}");
//! assert!(!shown.contains("s3cr3t") && !shown.contains("vault"));
//! # Ok::<(), portcullis::ConfigError>(())
//! ```
//!
//! Two uses are built on it: [`RedisIntrospectionCache`] (feature `introspection`), the
//! introspection cache tier the replicas share, and [`RedisReplayStore`], the DPoP replay
//! store they share.
//!
//! One store (cheap to clone) serves every use in a process. It speaks to Redis through
//! the [`redis`](https://docs.rs/redis) crate's connection manager: one multiplexed
//! connection, remade after a failure. Each call is bounded by
//! [`timeout`](RedisStoreBuilder::timeout), connecting included.
//!
//! - **Authenticated values.** [`set`](RedisStore::set) stores a value with an
//!   HMAC-SHA-256 tag over the full Redis key and the value, under the
//!   [shared key](RedisStoreBuilder::shared_key). [`get`](RedisStore::get) reads at most
//!   [`max_value_bytes`](RedisStoreBuilder::max_value_bytes) plus the tag (`GETRANGE`), and
//!   answers "absent" for a value that is missing, oversized, of another Redis type, or
//!   whose tag does not verify: whoever can write to Redis without the shared key cannot
//!   make a replica trust a value.
//! - **Insert if absent.** [`insert_if_absent`](RedisStore::insert_if_absent) is one
//!   `SET … NX PX` command: of any number of concurrent callers, on any number of
//!   replicas, exactly one is told the key was absent.
//! - **Failures are fast and visible.** A call that fails or times out makes the store
//!   leave Redis alone for a [back-off](RedisStoreBuilder::backoff): the calls in between
//!   fail at once without I/O, then one call probes Redis, and the first success puts it
//!   back in use. Leaving Redis is logged once at WARN, its return at INFO (target
//!   `portcullis::redis`); [`RedisStore::in_use`] tells the current mode.
//!
//! Keys are `prefix` + the caller's key; the callers in portcullis use fixed-length hex
//! digests, never a token or a client-chosen string.

mod builder;
mod health;
#[cfg(feature = "introspection")]
mod introspection;
mod replay;
mod seal;

pub use builder::{
    DEFAULT_KEY_PREFIX, DEFAULT_MAX_VALUE_BYTES, DEFAULT_REDIS_BACKOFF, DEFAULT_REDIS_TIMEOUT,
    RedisStoreBuilder,
};
#[cfg(feature = "introspection")]
pub use introspection::RedisIntrospectionCache;
pub use replay::RedisReplayStore;
pub use seal::MIN_SHARED_KEY_LEN;

use std::{
    fmt,
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};

use redis::{Value, aio::ConnectionManager};

use health::{Admission, Change, Health};
use seal::Sealer;

/// A connection to Redis shared by the replicas of an application, holding authenticated
/// values under a key prefix. Built by [`RedisStore::builder`]; clones share the
/// connection and the mode.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    config: redis::aio::ConnectionManagerConfig,
    /// Made on the first call, which runs on the Tokio runtime the manager needs.
    connection: OnceLock<ConnectionManager>,
    shown_url: String,
    database: i64,
    prefix: Box<str>,
    sealer: Sealer,
    timeout: Duration,
    max_value_bytes: usize,
    health: Health,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisStore")
            .field("url", &inner.shown_url)
            .field("database", &inner.database)
            .field("prefix", &inner.prefix)
            .field("shared_key", &"<redacted>")
            .field("timeout", &inner.timeout)
            .field("max_value_bytes", &inner.max_value_bytes)
            .field("in_use", &inner.health.in_use())
            .finish()
    }
}

/// Why a call to Redis gave no answer: Redis could not be reached, did not answer in time,
/// refused the command, or is being left alone after a failure.
///
/// Its text is fixed and secret-free.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreError {
    reason: &'static str,
}

impl StoreError {
    fn new(reason: &'static str) -> Self {
        Self { reason }
    }

    /// What went wrong, in a few fixed words.
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Redis cannot be used: {}", self.reason)
    }
}

impl std::error::Error for StoreError {}

/// How a command's failure is read.
enum Failed {
    /// Redis was not reached, did not answer, or refused: counts against its health.
    Unavailable(StoreError),
    /// Redis answered with an error about this key (e.g. another type): not a failure of
    /// Redis.
    Answered,
}

impl RedisStore {
    /// A builder with the defaults; a URL and a shared key are required.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The logical database the store uses.
    pub fn database(&self) -> i64 {
        self.inner.database
    }

    /// Whether Redis is in use: `false` after a call failed, until a later call succeeds.
    pub fn in_use(&self) -> bool {
        self.inner.health.in_use()
    }

    /// The value stored under `key` (after the prefix), when there is one that was sealed
    /// with the shared key for this very key and is at most
    /// [`max_value_bytes`](RedisStoreBuilder::max_value_bytes) long. A missing, garbled,
    /// foreign, oversized or wrongly typed value is `Ok(None)`.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let full = self.full_key(key);
        let limit = self.inner.max_value_bytes + seal::OVERHEAD;
        // Only the first `limit + 1` bytes cross the network: enough to tell oversized.
        let mut cmd = redis::cmd("GETRANGE");
        cmd.arg(&full).arg(0).arg(limit);
        let sealed = match self.run(&cmd).await {
            Ok(Value::BulkString(bytes)) => bytes,
            Ok(_) | Err(Failed::Answered) => return Ok(None),
            Err(Failed::Unavailable(error)) => return Err(error),
        };
        if sealed.len() > limit {
            return Ok(None);
        }
        Ok(self
            .inner
            .sealer
            .open(full.as_bytes(), &sealed)
            .map(<[u8]>::to_vec))
    }

    /// Stores `value` under `key` (after the prefix) for `ttl` (rounded up to whole
    /// milliseconds), replacing any value. A zero `ttl` stores nothing; a value longer than
    /// [`max_value_bytes`](RedisStoreBuilder::max_value_bytes) is refused without I/O.
    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), StoreError> {
        if ttl.is_zero() {
            return Ok(());
        }
        if value.len() > self.inner.max_value_bytes {
            return Err(StoreError::new(
                "the value is larger than the store accepts",
            ));
        }
        let full = self.full_key(key);
        let sealed = self.inner.sealer.seal(full.as_bytes(), value);
        let mut cmd = redis::cmd("SET");
        cmd.arg(&full).arg(sealed).arg("PX").arg(ttl_millis(ttl));
        match self.run(&cmd).await {
            Ok(_) => Ok(()),
            Err(Failed::Answered) => Err(StoreError::new("Redis refused the command")),
            Err(Failed::Unavailable(error)) => Err(error),
        }
    }

    /// Records `key` (after the prefix) for `ttl` (rounded up to whole milliseconds, at
    /// least 1 ms) unless it is already recorded: `Ok(true)` when it was absent and is now
    /// recorded, `Ok(false)` when it was already there. One atomic `SET key v NX PX ttl`:
    /// of concurrent callers with the same key, on any replica, exactly one gets `true`.
    pub async fn insert_if_absent(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let full = self.full_key(key);
        let sealed = self.inner.sealer.seal(full.as_bytes(), b"");
        let mut cmd = redis::cmd("SET");
        cmd.arg(&full)
            .arg(sealed)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl).max(1));
        match self.run(&cmd).await {
            Ok(Value::Okay) => Ok(true),
            Ok(Value::SimpleString(s)) if s == "OK" => Ok(true),
            Ok(Value::Nil) => Ok(false),
            Ok(_) => Err(StoreError::new("Redis gave an unexpected answer")),
            Err(Failed::Answered) => Err(StoreError::new("Redis refused the command")),
            Err(Failed::Unavailable(error)) => Err(error),
        }
    }

    fn full_key(&self, key: &str) -> String {
        let mut full = String::with_capacity(self.inner.prefix.len() + key.len());
        full.push_str(&self.inner.prefix);
        full.push_str(key);
        full
    }

    fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let inner = &*self.inner;
        if let Some(connection) = inner.connection.get() {
            return Ok(connection.clone());
        }
        // Lazy: no I/O here; the first command connects. Two racing first calls may each
        // make a manager; one is kept, the other dropped unused.
        let made =
            ConnectionManager::new_lazy_with_config(inner.client.clone(), inner.config.clone())
                .map_err(|_| StoreError::new("the Redis client could not be set up"))?;
        Ok(inner.connection.get_or_init(|| made).clone())
    }

    /// Sends `cmd` within the timeout, unless Redis is being left alone, and keeps the
    /// mode up to date.
    async fn run(&self, cmd: &redis::Cmd) -> Result<Value, Failed> {
        let inner = &*self.inner;
        if inner.health.admit(Instant::now()) == Admission::Skip {
            return Err(Failed::Unavailable(StoreError::new(
                "Redis is left alone after a failure",
            )));
        }
        let outcome = match self.connection() {
            Ok(mut connection) => {
                tokio::time::timeout(inner.timeout, connection.send_packed_command(cmd)).await
            }
            Err(error) => return Err(Failed::Unavailable(error)),
        };
        // A server error may come back as a value: make it an error.
        let outcome = outcome.map(|sent| sent.and_then(Value::extract_error));
        let error = match outcome {
            Ok(Ok(value)) => {
                self.report(inner.health.succeeded(), None);
                return Ok(value);
            }
            Ok(Err(error)) if error.code() == Some("WRONGTYPE") => {
                self.report(inner.health.succeeded(), None);
                return Err(Failed::Answered);
            }
            Ok(Err(error)) if error.is_timeout() => StoreError::new("Redis did not answer in time"),
            Ok(Err(error)) if error.code().is_some() => {
                StoreError::new("Redis refused the command")
            }
            Ok(Err(_)) => StoreError::new("Redis cannot be reached"),
            Err(_elapsed) => StoreError::new("Redis did not answer in time"),
        };
        self.report(inner.health.failed(Instant::now()), Some(&error));
        Err(Failed::Unavailable(error))
    }

    fn report(&self, change: Option<Change>, _error: Option<&StoreError>) {
        let Some(change) = change else {
            return;
        };
        crate::metrics::redis_in_use(change == Change::Restored);
        #[cfg(feature = "tracing")]
        match change {
            Change::Left => tracing::warn!(
                target: "portcullis::redis",
                url = %self.inner.shown_url,
                error = _error.map(StoreError::reason).unwrap_or_default(),
                backoff = ?self.inner.health.backoff(),
                "Redis cannot be used: until a probe succeeds, introspection answers are not \
                 shared (each replica asks the endpoint) and shared DPoP replay checks fail \
                 (503, or pass unchecked with dangerous_fail_open)"
            ),
            Change::Restored => tracing::info!(
                target: "portcullis::redis",
                url = %self.inner.shown_url,
                "Redis is back: introspection answers and DPoP replay checks are shared again"
            ),
        }
    }
}

/// `prefix` followed by the lower-case hex of `bytes`: the keys portcullis writes.
fn hex_key(prefix: &str, bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(prefix.len() + 2 * bytes.len());
    out.push_str(prefix);
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// `ttl` in whole milliseconds, rounded up.
fn ttl_millis(ttl: Duration) -> u64 {
    let ms = ttl.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = *b"0123456789abcdef0123456789abcdef";

    #[test]
    fn ttls_round_up_to_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_micros(1)), 1);
        assert_eq!(ttl_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ttl_millis(Duration::from_nanos(1_000_001)), 2);
        assert_eq!(ttl_millis(Duration::ZERO), 0);
    }

    #[test]
    fn configuration_errors_surface_at_build_and_hide_the_password() {
        let ok = || {
            RedisStore::builder()
                .url("redis://127.0.0.1:6379")
                .shared_key(KEY)
        };
        assert!(ok().build().is_ok());
        let table: [(RedisStoreBuilder, &str); 7] = [
            (RedisStore::builder().shared_key(KEY), "needs a URL"),
            (
                RedisStore::builder().url("redis://127.0.0.1:6379"),
                "needs a shared key",
            ),
            (ok().shared_key(&KEY[..31]), "at least 32 bytes"),
            (
                ok().url("http://user:hunter2@127.0.0.1:6379"),
                "not a valid Redis URL",
            ),
            (ok().key_prefix("p".repeat(129)), "longer than 128"),
            (ok().timeout(Duration::ZERO), "timeout must not be zero"),
            (ok().max_value_bytes(0), "must not be zero bytes"),
        ];
        for (builder, expected) in table {
            let error = builder.build().expect_err(expected).to_string();
            assert!(error.contains(expected), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn the_database_comes_from_the_url_or_the_builder() {
        let store = |url: &str, db: Option<i64>| {
            let builder = RedisStore::builder().url(url).shared_key(KEY);
            let builder = match db {
                Some(db) => builder.database(db),
                None => builder,
            };
            builder.build().expect("valid").database()
        };
        assert_eq!(store("redis://127.0.0.1:6379", None), 0);
        assert_eq!(store("redis://127.0.0.1:6379/3", None), 3);
        assert_eq!(store("redis://127.0.0.1:6379/3", Some(5)), 5);
    }

    #[test]
    fn debug_shows_neither_password_nor_shared_key() {
        let secret_key = *b"S3CRETKEY-S3CRETKEY-S3CRETKEY-!!";
        let builder = RedisStore::builder()
            .url("rediss://app:hunter2@redis.internal:6380/1")
            .shared_key(secret_key);
        let shown_builder = format!("{builder:?}");
        let store = builder.build().expect("valid");
        let shown = format!("{store:?}");
        for text in [shown_builder, shown] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("S3CRETKEY"), "{text}");
            assert!(!text.contains("83, 51"), "{text}"); // the key's bytes as numbers
            assert!(text.contains("redis.internal"), "{text}");
        }
    }
}
