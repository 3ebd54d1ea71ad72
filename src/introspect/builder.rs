//! [`IntrospectionBuilder`]: the configuration of an [`Introspection`] authenticator,
//! checked at `build()`.

use std::{
    fmt,
    marker::PhantomData,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Semaphore;

use super::{
    Inner, Introspection,
    backoff::{Breaker, DEFAULT_FAILURE_BACKOFF, DEFAULT_FAILURE_THRESHOLD},
    cache::Answers,
    client::{AssertionKey, Client, ClientAuth, Credentials, Secret},
    decision::Rules,
    shared::SharedCache,
};
use crate::{
    alg::Algorithm,
    authorities::{AuthorityClaims, AuthoritySource},
    claims::ClaimRules,
    error::ConfigError,
    http_client::{HttpOptions, http_option_setters, parse_url},
    principal::RegisteredClaims,
};

/// Default longest life of a cached active answer: 60 seconds (never past the token's `exp`).
pub const DEFAULT_CACHE_MAX_TTL: Duration = Duration::from_secs(60);
/// Default life of a cached refusal: 10 seconds.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Default number of cached active answers: 10 000.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default number of cached refusals: 10 000, apart from the active answers.
pub const DEFAULT_NEGATIVE_CACHE_CAPACITY: u64 = 10_000;
/// Default cap on an introspection response body: 64 KiB.
pub const DEFAULT_MAX_INTROSPECTION_BYTES: usize = 64 * 1024;
/// Default number of introspection calls under way at once: 16.
pub const DEFAULT_MAX_CONCURRENT_CALLS: usize = 16;

/// The credentials as configured, checked at `build()`.
enum CredentialConfig {
    Secret(Secret),
    PrivateKey {
        pem: Secret,
        alg: Algorithm,
        kid: Option<String>,
    },
    Tls,
}

impl fmt::Debug for CredentialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(_) => f.write_str("ClientSecret([redacted])"),
            Self::PrivateKey { alg, kid, .. } => f
                .debug_struct("PrivateKeyJwt")
                .field("alg", alg)
                .field("kid", kid)
                .field("key", &"[redacted]")
                .finish(),
            Self::Tls => f.write_str("TlsClientAuth"),
        }
    }
}

/// Builds an [`Introspection`] authenticator. Building does no I/O.
#[must_use]
pub struct IntrospectionBuilder<C = RegisteredClaims> {
    issuer: Option<String>,
    endpoint: Option<String>,
    client: Option<(String, CredentialConfig)>,
    client_auth: ClientAuth,
    claim_rules: ClaimRules,
    authorities: Vec<AuthoritySource>,
    max_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    negative_capacity: u64,
    max_concurrent: usize,
    failure_threshold: u32,
    failure_backoff: Duration,
    http: HttpOptions,
    endpoint_hosts: Vec<String>,
    any_audience: bool,
    accept_missing_aud: bool,
    shared: Option<Box<dyn SharedCache>>,
    _claims: PhantomData<fn() -> C>,
}

impl Default for IntrospectionBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            endpoint: None,
            client: None,
            client_auth: ClientAuth::default(),
            claim_rules: ClaimRules::default(),
            authorities: Vec::new(),
            max_ttl: DEFAULT_CACHE_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            capacity: DEFAULT_CACHE_CAPACITY,
            negative_capacity: DEFAULT_NEGATIVE_CACHE_CAPACITY,
            max_concurrent: DEFAULT_MAX_CONCURRENT_CALLS,
            failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            failure_backoff: DEFAULT_FAILURE_BACKOFF,
            http: HttpOptions::new(DEFAULT_MAX_INTROSPECTION_BYTES),
            endpoint_hosts: Vec::new(),
            any_audience: false,
            accept_missing_aud: false,
            shared: None,
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for IntrospectionBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint.as_ref().map(|_| "[set]"))
            .field("client", &self.client)
            .field("http", &self.http)
            .field("shared_cache", &self.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl<C> IntrospectionBuilder<C> {
    /// The issuer whose tokens are introspected. Required. An answer's `iss`, when present,
    /// must equal it exactly; without [`endpoint`](Self::endpoint), the endpoint is found
    /// through the issuer's discovery document (`introspection_endpoint`).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// The introspection endpoint. Default: discovered from the issuer on first use, and
    /// then only accepted on the issuer's own host (see
    /// [`allow_introspection_host`](Self::allow_introspection_host)).
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Also accepts a discovered `introspection_endpoint` on `host` (a bare host name, as
    /// with `JwtBuilder::allow_jwks_host`). Tokens and the client's credentials are sent
    /// there. Repeatable. Default: only the issuer's own host; an endpoint elsewhere makes
    /// every call fail (`503`). A configured [`endpoint`](Self::endpoint) is always used as
    /// given.
    pub fn allow_introspection_host(mut self, host: impl Into<String>) -> Self {
        self.endpoint_hosts.push(host.into());
        self
    }

    /// The resource server's own client id and secret at the issuer, sent as
    /// [`client_auth`](Self::client_auth) says. One way of client authentication is
    /// required; the last one configured wins.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        let secret = Secret(client_secret.into().into_boxed_str());
        self.client = Some((client_id.into(), CredentialConfig::Secret(secret)));
        self
    }

    /// Authenticates with `private_key_jwt` (RFC 7523, OpenID Connect Core §9): each call
    /// carries a fresh assertion signed with the PEM private key `key_pem` (PKCS#8, or
    /// PKCS#1/SEC1 for RSA/EC) under `algorithm`, with `iss` = `sub` = `client_id`, `aud`
    /// the issuer, a one-minute `exp` and a unique `jti`; `kid`, when given, goes in its
    /// header. The key never appears in `Debug` output. Default: not used.
    pub fn client_private_key_jwt(
        mut self,
        client_id: impl Into<String>,
        key_pem: impl Into<String>,
        algorithm: Algorithm,
        kid: Option<String>,
    ) -> Self {
        let pem = Secret(key_pem.into().into_boxed_str());
        let config = CredentialConfig::PrivateKey {
            pem,
            alg: algorithm,
            kid,
        };
        self.client = Some((client_id.into(), config));
        self
    }

    /// Authenticates with `tls_client_auth` (RFC 8705 §2): the client certificate is the
    /// one on the [`http_client`](Self::http_client) (required with this method, e.g. built
    /// with `reqwest::Identity`); only `client_id` goes in the form. Default: not used.
    pub fn client_tls_auth(mut self, client_id: impl Into<String>) -> Self {
        self.client = Some((client_id.into(), CredentialConfig::Tls));
        self
    }

    /// How a client secret is sent. Default: [`ClientAuth::ClientSecretBasic`].
    pub fn client_auth(mut self, method: ClientAuth) -> Self {
        self.client_auth = method;
        self
    }

    /// Requires an answer's `aud` to contain `audience`. Repeat to accept several.
    /// Required, unless [`dangerous_accept_any_audience`](Self::dangerous_accept_any_audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.claim_rules.audience(audience.into());
        self
    }

    /// Lets the authenticator be built without an [`audience`](Self::audience), accepting
    /// answers whatever their `aud`, for issuers whose introspection answers omit it.
    /// Dangerous: a token issued for another API is then accepted here too, if the issuer
    /// tells this API about it. Configured audiences are always checked, and an answer
    /// without `aud` still needs a `token_type` of an access token (see
    /// [`dangerous_accept_missing_audience`](Self::dangerous_accept_missing_audience)).
    /// Default: `false`.
    pub fn dangerous_accept_any_audience(mut self, accept: bool) -> Self {
        self.any_audience = accept;
        self
    }

    /// Accepts an answer that carries no `aud` member at all, for issuers that leave it out
    /// of their introspection answers (RFC 7662 makes it optional). An answer that does
    /// carry `aud` (even `[]` or `null`) must still contain a configured
    /// [`audience`](Self::audience). Dangerous: with an issuer that never sends `aud`, a
    /// token issued for another API is accepted here too, as with
    /// [`dangerous_accept_any_audience`](Self::dangerous_accept_any_audience). Default:
    /// `false`: an answer without `aud` is refused, as a JWT without `aud` is.
    ///
    /// Whatever the audience settings, only bearer access tokens are accepted. Refused:
    /// - a `token_type` other than `Bearer`, `access_token` or
    ///   `urn:ietf:params:oauth:token-type:access_token`, compared ignoring case (so
    ///   `refresh_token`, `urn:ietf:params:oauth:token-type:refresh_token`, `DPoP`, `N_A`);
    /// - a `token_use` other than `access_token` or `access` (e.g. `refresh_token`, `id`);
    /// - a `typ` of `Refresh` or `Offline` (refresh tokens at Keycloak);
    /// - any `cnf` member (a sender-constrained token);
    /// - an answer with neither `token_type` nor `aud`, which is how some providers
    ///   (`oidc-provider` among them) describe a refresh token: neither audience waiver
    ///   applies to it.
    pub fn dangerous_accept_missing_audience(mut self, accept: bool) -> Self {
        self.accept_missing_aud = accept;
        self
    }

    /// Longest life of a cached active answer; it never outlives the token's `exp`.
    /// Default: 60 seconds. Revocation takes effect within this time.
    pub fn cache_max_ttl(mut self, ttl: Duration) -> Self {
        self.max_ttl = ttl;
        self
    }

    /// Life of a cached inactive or refused answer, so a flood of bad tokens does not flood
    /// the issuer. Default: 10 seconds.
    pub fn cache_negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = ttl;
        self
    }

    /// Most active answers kept. Default: 10 000.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self
    }

    /// Most refusals kept, in a space of their own: a flood of bad tokens never evicts an
    /// active answer. Default: 10 000.
    pub fn negative_cache_capacity(mut self, entries: u64) -> Self {
        self.negative_capacity = entries;
        self
    }

    /// A cache tier shared with the other replicas of the API, asked when the in-process
    /// cache has no answer and before the endpoint is called: in the steady state each token
    /// is introspected once for all replicas. An answer found there is decided again with
    /// this builder's rules; active answers are shared for as long as they are cached here,
    /// refusals for the [`cache_negative_ttl`](Self::cache_negative_ttl). When the tier
    /// cannot be used, the endpoint is called as without it. While the endpoint is left
    /// alone after failures, requests still look in the shared tier before getting `503`.
    /// Default: none. See [`RedisIntrospectionCache`](crate::store::RedisIntrospectionCache)
    /// (feature `redis`).
    pub fn shared_cache(mut self, cache: impl SharedCache) -> Self {
        self.shared = Some(Box::new(cache));
        self
    }

    /// Most introspection calls under way at once; further requests for uncached tokens
    /// wait up to the [`http_timeout`](Self::http_timeout) for a slot, then get `503`.
    /// Default: 16; at least 1.
    pub fn max_concurrent_calls(mut self, calls: usize) -> Self {
        self.max_concurrent = calls;
        self
    }

    /// Consecutive failed calls (discovery or the endpoint unreachable, non-`200`,
    /// timeout, not JSON) after which the endpoint is left alone for the
    /// [`failure_backoff`](Self::failure_backoff). Default: 3; at least 1.
    pub fn failure_threshold(mut self, failures: u32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How long the endpoint is left alone once [`failure_threshold`](Self::failure_threshold)
    /// is reached: requests get `503` with `Retry-After` at once. Then one probe call is let
    /// through; if it fails, the back-off doubles (up to 16 times this). Default: 5 seconds;
    /// between 1 second and 10 minutes.
    pub fn failure_backoff(mut self, backoff: Duration) -> Self {
        self.failure_backoff = backoff;
        self
    }

    /// Timeout of each call (discovery, introspection). Default: 5 seconds; at most 10 minutes.
    /// Without an [`endpoint`](Self::endpoint), the first call also discovers it (up to two
    /// metadata calls), so it can take up to three times this.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http.timeout = timeout;
        self
    }

    /// Largest introspection or discovery answer accepted, in bytes. Default: 64 KiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.http.max_bytes = bytes;
        self
    }

    http_option_setters!();

    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default: 30 seconds; at most 5 minutes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.claim_rules.leeway = leeway;
        self
    }

    /// Reads scopes from the member `name` instead of `scope`. Default: `scope` (RFC 7662).
    pub fn scope_claim(mut self, name: impl Into<String>) -> Self {
        self.claim_rules.scope_claim(name.into());
        self
    }

    /// Reads roles or other authorities from `source` in the introspection answer into the
    /// principal's [`Authorities`](crate::Authorities). Repeat to merge several sources.
    /// Default: none, and the answer is not read for them.
    pub fn authorities(mut self, source: AuthoritySource) -> Self {
        self.authorities.push(source);
        self
    }

    /// Deserializes the introspection answer into `T` instead of [`RegisteredClaims`].
    pub fn claims<T>(self) -> IntrospectionBuilder<T> {
        IntrospectionBuilder {
            issuer: self.issuer,
            endpoint: self.endpoint,
            client: self.client,
            client_auth: self.client_auth,
            claim_rules: self.claim_rules,
            authorities: self.authorities,
            max_ttl: self.max_ttl,
            negative_ttl: self.negative_ttl,
            capacity: self.capacity,
            negative_capacity: self.negative_capacity,
            max_concurrent: self.max_concurrent,
            failure_threshold: self.failure_threshold,
            failure_backoff: self.failure_backoff,
            http: self.http,
            endpoint_hosts: self.endpoint_hosts,
            any_audience: self.any_audience,
            accept_missing_aud: self.accept_missing_aud,
            shared: self.shared,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the authenticator.
    pub fn build(self) -> Result<Introspection<C>, ConfigError>
    where
        C: Send + Sync + 'static,
    {
        crate::crypto::install_provider();
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ConfigError::new("an issuer is required"))?;
        let (client_id, credentials) = self
            .client
            .filter(|(id, _)| !id.is_empty())
            .ok_or_else(|| ConfigError::new("client credentials are required"))?;
        if self.claim_rules.audiences.is_empty() && !self.any_audience {
            return Err(ConfigError::new(
                "at least one non-empty audience is required (or dangerous_accept_any_audience)",
            ));
        }
        let rules = self.claim_rules.check(false)?;
        if self.max_concurrent == 0
            || self.failure_threshold == 0
            || self.failure_backoff < Duration::from_secs(1)
            || self.failure_backoff > Duration::from_secs(600)
        {
            return Err(ConfigError::new(
                "concurrent calls and the failure threshold must be positive, the failure back-off between 1 second and 10 minutes",
            ));
        }
        let other_hosts: Box<[Box<str>]> = self
            .endpoint_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase().into_boxed_str())
            .collect();
        if other_hosts
            .iter()
            .any(|h| h.is_empty() || h.contains(['/', ':', '@']))
        {
            return Err(ConfigError::new(
                "an allowed introspection host must be a bare host name, without scheme, port or path",
            ));
        }
        let credentials = match credentials {
            CredentialConfig::Secret(secret) => Credentials::Secret(secret, self.client_auth),
            CredentialConfig::PrivateKey { pem, alg, kid } => {
                Credentials::PrivateKeyJwt(AssertionKey::from_pem(pem.0.as_bytes(), alg, kid)?)
            }
            CredentialConfig::Tls if self.http.client.is_none() => {
                return Err(ConfigError::new(
                    "tls_client_auth needs the http_client that holds the client certificate",
                ));
            }
            CredentialConfig::Tls => Credentials::TlsClientAuth,
        };
        let http = self.http.build()?;
        let endpoint = self
            .endpoint
            .map(|e| parse_url(&e, self.http.allow_http))
            .transpose()?;
        let issuer_url = match endpoint {
            Some(_) => None,
            None => Some(parse_url(&issuer, self.http.allow_http)?),
        };
        let issuer: Arc<str> = issuer.into();
        Ok(Introspection {
            inner: Arc::new(Inner {
                rules: Rules {
                    issuer: Arc::clone(&issuer),
                    audiences: rules.audiences,
                    accept_missing_aud: self.accept_missing_aud,
                    time: rules.time,
                    scope_claim: rules.scope_claim,
                    authorities: AuthorityClaims::new(&self.authorities)?,
                    max_ttl: self.max_ttl,
                },
                client: Client {
                    http,
                    issuer: issuer.as_ref().into(),
                    issuer_url,
                    endpoint: Mutex::new(endpoint),
                    allow_http: self.http.allow_http,
                    other_hosts,
                    client_id: client_id.into_boxed_str(),
                    credentials,
                },
                answers: Answers::new(self.capacity, self.negative_capacity, self.negative_ttl),
                breaker: Breaker::new(self.failure_threshold, self.failure_backoff),
                calls: Semaphore::new(self.max_concurrent),
                shared: self.shared,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_debug() {
        let introspection = Introspection::builder()
            .issuer("https://login.example.com")
            .endpoint("https://login.example.com/introspect")
            .client_credentials("api", "very-secret-value")
            .audience("https://api.example.com")
            .proxy("http://user:proxy-password@127.0.0.1:3128")
            .build()
            .expect("config");
        let shown = format!("{introspection:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(!shown.contains("proxy-password"), "{shown}");
        assert!(shown.contains("[redacted]"));
        let builder = Introspection::builder()
            .endpoint("https://user:endpoint-password@login.example.com/introspect")
            .proxy("http://user:proxy-password@127.0.0.1:3128")
            .client_credentials("api", "very-secret-value");
        let shown = format!("{builder:?}");
        for secret in ["very-secret-value", "proxy-password", "endpoint-password"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        let builder = Introspection::builder().client_private_key_jwt(
            "api",
            "-----BEGIN PRIVATE KEY-----\nsecret-key-material\n-----END PRIVATE KEY-----",
            Algorithm::ES256,
            None,
        );
        assert!(!format!("{builder:?}").contains("secret-key-material"));
    }

    #[test]
    fn configuration_is_checked() {
        let base = || {
            Introspection::builder()
                .issuer("https://login.example.com")
                .client_credentials("api", "secret")
                .audience("https://api.example.com")
        };
        assert!(base().build().is_ok());
        let no_audience = || {
            Introspection::builder()
                .issuer("https://login.example.com")
                .client_credentials("api", "secret")
        };
        assert!(no_audience().build().is_err(), "an audience is required");
        assert!(
            no_audience()
                .dangerous_accept_any_audience(true)
                .build()
                .is_ok()
        );
        assert!(
            Introspection::builder()
                .client_credentials("a", "b")
                .build()
                .is_err()
        );
        assert!(
            Introspection::builder()
                .issuer("https://x")
                .build()
                .is_err()
        );
        assert!(
            base()
                .endpoint("http://idp.internal/introspect")
                .build()
                .is_err()
        );
        assert!(base().leeway(Duration::from_secs(600)).build().is_err());
        assert!(base().max_concurrent_calls(0).build().is_err());
        assert!(base().failure_threshold(0).build().is_err());
        assert!(base().failure_backoff(Duration::ZERO).build().is_err());
        assert!(base().http_timeout(Duration::ZERO).build().is_err());
        assert!(base().max_response_bytes(0).build().is_err());
        assert!(base().add_root_certificate_pem("not pem").build().is_err());
        let client = reqwest::Client::new();
        assert!(
            base()
                .http_client(client.clone())
                .proxy("http://127.0.0.1:1")
                .build()
                .is_err(),
            "a proxy belongs on the supplied client"
        );
        assert!(
            base().client_tls_auth("api").build().is_err(),
            "tls_client_auth needs the application's client"
        );
        assert!(
            base()
                .client_tls_auth("api")
                .http_client(client)
                .build()
                .is_ok()
        );
        assert!(
            base()
                .client_private_key_jwt("api", "not a key", Algorithm::RS256, None)
                .build()
                .is_err()
        );
    }
}
