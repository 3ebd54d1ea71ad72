//! [`RedisStoreBuilder`]: where Redis is, the shared key, the key prefix and the bounds.

use std::{fmt, sync::Arc, time::Duration};

use super::{Inner, RedisStore, health::Health, seal};
use crate::{error::ConfigError, redact};

/// The default key prefix: `portcullis:`.
pub const DEFAULT_KEY_PREFIX: &str = "portcullis:";
/// The default bound on one call to Redis, connecting included: 250 ms.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(250);
/// The default time Redis is left alone after a failed call before one call probes it: 1 s.
pub const DEFAULT_REDIS_BACKOFF: Duration = Duration::from_secs(1);
/// The default largest value read or written, before sealing: 64 KiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 64 * 1024;

/// The longest key prefix accepted.
const MAX_PREFIX_LEN: usize = 128;

/// Configures a [`RedisStore`]; [`build`](Self::build) checks it without connecting.
#[must_use]
pub struct RedisStoreBuilder {
    url: Option<String>,
    database: Option<i64>,
    shared_key: Option<Vec<u8>>,
    prefix: String,
    timeout: Duration,
    backoff: Duration,
    max_value_bytes: usize,
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        Self {
            url: None,
            database: None,
            shared_key: None,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_REDIS_TIMEOUT,
            backoff: DEFAULT_REDIS_BACKOFF,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("url", &self.url.as_deref().map(redact::url))
            .field("database", &self.database)
            .field(
                "shared_key",
                &self.shared_key.as_ref().map(|_| "<redacted>"),
            )
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("backoff", &self.backoff)
            .field("max_value_bytes", &self.max_value_bytes)
            .finish()
    }
}

impl RedisStoreBuilder {
    /// Where Redis (or Valkey) is. Required; no default.
    ///
    /// The client's own URL syntax: `redis://[[user]:password@]host[:port][/db]`,
    /// `rediss://…` for TLS (server certificate checked against the system's roots; add
    /// `#insecure` only in a lab), `redis+unix:///path?db=N&pass=…` for a Unix socket.
    /// The password never appears in `Debug` output or errors.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// The logical database, overriding the one in the URL. Default: the URL's, else `0`.
    pub fn database(mut self, database: i64) -> Self {
        self.database = Some(database);
        self
    }

    /// The key every replica shares, at least [`MIN_SHARED_KEY_LEN`](super::MIN_SHARED_KEY_LEN)
    /// (32) random bytes. Required; no default.
    ///
    /// Every value is stored with an HMAC-SHA-256 tag over its Redis key and its bytes under
    /// this key; a value whose tag does not verify (written by anything that can reach
    /// Redis but does not hold the key, moved from another key, garbled) is read as absent.
    /// Keep it as secret as the introspection client secret; it never appears in `Debug`.
    pub fn shared_key(mut self, key: impl Into<Vec<u8>>) -> Self {
        self.shared_key = Some(key.into());
        self
    }

    /// Prepended to every key, so that several applications (or several configurations of
    /// one) can share a Redis. Default: [`DEFAULT_KEY_PREFIX`] (`portcullis:`); at most
    /// 128 bytes.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest one call may take, connecting included; a call that takes longer counts
    /// as a failure. Default: [`DEFAULT_REDIS_TIMEOUT`] (250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// After a failed call, how long no call is sent to Redis before one call probes it
    /// again (the calls in between fail at once, without I/O). Default:
    /// [`DEFAULT_REDIS_BACKOFF`] (1 s).
    pub fn backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The largest value read or written (before sealing); a larger value in Redis is read
    /// as absent, and only its first bytes cross the network. Default:
    /// [`DEFAULT_MAX_VALUE_BYTES`] (64 KiB).
    pub fn max_value_bytes(mut self, max: usize) -> Self {
        self.max_value_bytes = max;
        self
    }

    /// Checks the configuration and builds the store. Does no I/O: the connection is made
    /// by the first call (on the Tokio runtime), and remade after a failure.
    pub fn build(self) -> Result<RedisStore, ConfigError> {
        let url = self
            .url
            .ok_or_else(|| ConfigError::new("a Redis store needs a URL"))?;
        let shown = redact::url(&url).into_owned();
        let client = redis::Client::open(url.as_str()).map_err(|_| {
            ConfigError::new(format!("the Redis URL `{shown}` is not a valid Redis URL"))
        })?;
        let client = match self.database {
            None => client,
            Some(db) => {
                let info = client.get_connection_info().clone();
                let settings = info.redis_settings().clone().set_db(db);
                redis::Client::open(info.set_redis_settings(settings))
                    .map_err(|_| ConfigError::new("the Redis database cannot be set on this URL"))?
            }
        };
        let database = client.get_connection_info().redis_settings().db();
        let key = self
            .shared_key
            .ok_or_else(|| ConfigError::new("a Redis store needs a shared key"))?;
        let sealer = seal::Sealer::new(&key).ok_or_else(|| {
            ConfigError::new("the Redis store's shared key must have at least 32 bytes")
        })?;
        if self.prefix.len() > MAX_PREFIX_LEN {
            return Err(ConfigError::new(
                "the Redis key prefix is longer than 128 bytes",
            ));
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::new("the Redis timeout must not be zero"));
        }
        if self.max_value_bytes == 0 {
            return Err(ConfigError::new(
                "the largest Redis value must not be zero bytes",
            ));
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            // One attempt per reconnection: the back-off and the probes are the store's.
            .set_number_of_retries(0);
        crate::metrics::redis_in_use(true);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                client,
                config,
                connection: std::sync::OnceLock::new(),
                shown_url: shown,
                database,
                prefix: self.prefix.into_boxed_str(),
                sealer,
                timeout: self.timeout,
                max_value_bytes: self.max_value_bytes,
                health: Health::new(self.backoff),
            }),
        })
    }
}
