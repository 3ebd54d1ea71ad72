//! RFC 7662 token introspection for opaque tokens, with a coalescing cache bounded by the
//! token's `exp` (feature `introspection`).
//!
//! A cached answer is decided without I/O; concurrent requests for the same uncached token
//! share one call to the endpoint. The cache key is a SHA-256 digest of the token, never the
//! token itself.
//!
//! # Example
//!
//! ```
//! use portcullis::{BearerAuthLayer, Introspection};
//!
//! let introspection = Introspection::builder()
//!     .issuer("https://login.example.com")
//!     .endpoint("https://login.example.com/oauth2/introspect")
//!     .client_credentials("my-api", "s3cr3t")
//!     .audience("https://api.example.com")
//!     .build()?;
//! let layer = BearerAuthLayer::new(introspection);
//! # let _ = layer;
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

mod routing;

pub use routing::JwtOrIntrospection;

use std::{
    fmt,
    marker::PhantomData,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use base64::{Engine, engine::general_purpose::STANDARD};
use futures_util::FutureExt;
use http::header;
use moka::{Expiry, future::Cache};
use reqwest::Url;
use serde::de::{DeserializeOwned, IgnoredAny};
use sha2::{Digest, Sha256};

use crate::{
    authenticate::{Authenticate, Authentication},
    authorities::{AuthorityClaims, AuthoritySource},
    claims::{self, DEFAULT_LEEWAY, MAX_LEEWAY, ScopeClaim, TimeRules},
    clock::{system_time, unix_now},
    discovery,
    error::{AuthError, ConfigError},
    http_client::{DEFAULT_HTTP_TIMEOUT, FetchError, HttpClient, MAX_HTTP_TIMEOUT, parse_url},
    principal::{Principal, RegisteredClaims, UserAuthentication},
};

/// Default longest life of a cached active answer: 60 seconds (never past the token's `exp`).
pub const DEFAULT_CACHE_MAX_TTL: Duration = Duration::from_secs(60);
/// Default life of a cached inactive answer: 10 seconds.
pub const DEFAULT_NEGATIVE_TTL: Duration = Duration::from_secs(10);
/// Default number of cached answers: 10 000.
pub const DEFAULT_CACHE_CAPACITY: u64 = 10_000;
/// Default cap on an introspection response body: 64 KiB.
pub const DEFAULT_MAX_INTROSPECTION_BYTES: usize = 64 * 1024;
/// `Retry-After` sent when the introspection endpoint cannot be used.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// How the resource server authenticates to the introspection endpoint (RFC 7662 §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A client secret; `Debug` never shows it.
#[derive(Clone)]
struct Secret(Box<str>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

type Digest256 = [u8; 32];

/// A cached decision and how long it may be reused.
struct Entry<C> {
    ttl: Duration,
    outcome: Result<Principal<C>, AuthError>,
}

impl<C> Clone for Entry<C> {
    fn clone(&self) -> Self {
        Self {
            ttl: self.ttl,
            outcome: self.outcome.clone(),
        }
    }
}

struct EntryTtl;

impl<C> Expiry<Digest256, Entry<C>> for EntryTtl {
    fn expire_after_create(
        &self,
        _key: &Digest256,
        entry: &Entry<C>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

struct Inner<C> {
    issuer: Arc<str>,
    issuer_url: Option<Url>,
    endpoint: Mutex<Option<Url>>,
    client_id: Box<str>,
    client_secret: Secret,
    client_auth: ClientAuth,
    audiences: Box<[Box<str>]>,
    accept_missing_aud: bool,
    http: HttpClient,
    cache: Cache<Digest256, Entry<C>>,
    max_ttl: Duration,
    negative_ttl: Duration,
    time: TimeRules,
    scope_claim: ScopeClaim,
    authorities: AuthorityClaims,
    allow_http: bool,
}

/// Validates tokens through the issuer's RFC 7662 introspection endpoint, caching answers.
///
/// Cheap to clone: clones share the cache. Build one with [`Introspection::builder`].
pub struct Introspection<C = RegisteredClaims> {
    inner: Arc<Inner<C>>,
}

impl<C> Clone for Introspection<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for Introspection<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Introspection")
            .field("issuer", &self.inner.issuer)
            .field("client_id", &self.inner.client_id)
            .field("client_secret", &self.inner.client_secret)
            .field("client_auth", &self.inner.client_auth)
            .finish_non_exhaustive()
    }
}

impl Introspection {
    /// A builder with the defaults; an issuer and client credentials are required.
    pub fn builder() -> IntrospectionBuilder {
        IntrospectionBuilder::default()
    }
}

fn digest(token: &str) -> Digest256 {
    Sha256::digest(token.as_bytes()).into()
}

fn unavailable() -> AuthError {
    AuthError::unavailable(
        "the token introspection endpoint cannot be used",
        RETRY_AFTER,
    )
}

impl<C> Introspection<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    /// A cached, still valid decision for `key`, without waiting.
    fn cached(&self, key: &Digest256) -> Option<Result<Principal<C>, AuthError>> {
        let entry = self.inner.cache.get(key).now_or_never()??;
        // A cached answer gets no leeway: it never serves past the token's `exp`.
        Some(still_valid(entry.outcome, Duration::ZERO))
    }

    async fn endpoint(&self) -> Result<Url, FetchError> {
        let inner = &*self.inner;
        if let Some(url) = lock(&inner.endpoint).clone() {
            return Ok(url);
        }
        let issuer_url = inner
            .issuer_url
            .as_ref()
            .ok_or(FetchError::Invalid("no introspection endpoint"))?;
        let metadata = discovery::discover(&inner.http, issuer_url, &inner.issuer).await?;
        let url = metadata.introspection_endpoint.ok_or(FetchError::Invalid(
            "discovery document has no introspection_endpoint",
        ))?;
        let url = parse_url(&url, inner.allow_http).map_err(|_| {
            FetchError::Invalid("discovery document has an unusable introspection_endpoint")
        })?;
        *lock(&inner.endpoint) = Some(url.clone());
        Ok(url)
    }

    /// Calls the endpoint and turns its answer into a cacheable decision.
    async fn introspect(&self, token: &str) -> Result<Entry<C>, FetchError> {
        let inner = &*self.inner;
        let endpoint = self.endpoint().await?;
        let credentials = match inner.client_auth {
            ClientAuth::ClientSecretBasic => None,
            ClientAuth::ClientSecretPost => Some((&*inner.client_id, &*inner.client_secret.0)),
        };
        let body = form_body(token, credentials);
        let mut request = inner
            .http
            .post(&endpoint)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if inner.client_auth == ClientAuth::ClientSecretBasic {
            request = request.header(
                header::AUTHORIZATION,
                basic_auth(&inner.client_id, &inner.client_secret.0)?,
            );
        }
        let fetched = inner
            .http
            .send(request.body(body), inner.http.max_bytes)
            .await?;
        serde_json::from_slice::<IgnoredAny>(&fetched.body)
            .map_err(|_| FetchError::Invalid("introspection answer is not JSON"))?;
        Ok(self.decide(&fetched.body))
    }

    fn decide(&self, body: &[u8]) -> Entry<C> {
        let inner = &*self.inner;
        let negative = |error| Entry {
            ttl: inner.negative_ttl,
            outcome: Err(error),
        };
        let view = match claims::parse(body, &inner.scope_claim) {
            Ok(view) => view,
            Err(_) => {
                return negative(AuthError::invalid_token(
                    "the introspection answer is malformed",
                ));
            }
        };
        if view.active != Some(true) {
            return negative(AuthError::invalid_token("the token is not active"));
        }
        // A refresh token is no access token. A `DPoP` one must name its key (RFC 9449 §6.2);
        // any `cnf` binding travels with the principal and the layer checks it.
        let access = view.token_type.as_deref().is_none_or(|t| {
            t.eq_ignore_ascii_case("bearer")
                || t.eq_ignore_ascii_case("access_token")
                || (t.eq_ignore_ascii_case("dpop")
                    && view
                        .cnf
                        .as_ref()
                        .is_some_and(|c| c.jwk_thumbprint().is_some()))
        });
        if !access {
            return negative(AuthError::invalid_token(
                "the token is not a bearer access token",
            ));
        }
        if view.iss.as_deref().is_some_and(|iss| iss != &*inner.issuer) {
            return negative(AuthError::invalid_token(
                "the token's issuer is not trusted",
            ));
        }
        let aud_waived = view.aud.is_none() && inner.accept_missing_aud;
        if !inner.audiences.is_empty()
            && !aud_waived
            && !claims::audience_matches(view.aud.as_ref(), &inner.audiences)
        {
            return negative(AuthError::invalid_token(
                "the token is not meant for this audience",
            ));
        }
        let now = unix_now();
        if let Err(error) = inner.time.check(&view, now, false) {
            return negative(error);
        }
        let claims: C = match serde_json::from_slice(body) {
            Ok(claims) => claims,
            Err(_) => {
                return negative(AuthError::invalid_token(
                    "the token's claims do not have the expected shape",
                ));
            }
        };
        // Cached up to the token's `exp` (without the leeway), and never past the max TTL.
        let ttl = match view.exp {
            Some(exp) if exp <= now => Duration::ZERO,
            Some(exp) => Duration::try_from_secs_f64(exp - now)
                .map_or(inner.max_ttl, |left| left.min(inner.max_ttl)),
            None => inner.max_ttl,
        };
        let scopes = inner.scope_claim.scopes(&view);
        let authorities = match inner.authorities.extract(body) {
            Ok(authorities) => authorities,
            Err(error) => return negative(error),
        };
        Entry {
            ttl,
            outcome: Ok(Principal::new_confirmed(
                Arc::clone(&inner.issuer),
                view.sub.map(|s| s.into_owned().into_boxed_str()),
                scopes,
                view.exp.and_then(system_time),
                UserAuthentication::new(view.acr.as_deref(), view.auth_time.and_then(system_time)),
                claims,
                view.cnf,
            )
            .with_authorities(authorities)),
        }
    }
}

impl<C> Authenticate for Introspection<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Claims = C;

    fn authenticate(&self, token: &str) -> Authentication<C> {
        let key = digest(token);
        if let Some(outcome) = self.cached(&key) {
            return Authentication::Ready(outcome);
        }
        let this = self.clone();
        let token = token.to_owned();
        Authentication::Pending(Box::pin(async move {
            // Only the request that makes the call logs its failure; the requests that
            // share the call get the same 503 without another WARN line.
            let init = async {
                let entry = this.introspect(&token).await;
                #[cfg(feature = "tracing")]
                if let Err(error) = &entry {
                    tracing::warn!(
                        target: "portcullis::introspection",
                        issuer = %this.inner.issuer,
                        %error,
                        "token introspection failed"
                    );
                }
                entry
            };
            let leeway = Duration::from_secs_f64(this.inner.time.leeway);
            match this.inner.cache.try_get_with(key, init).await {
                Ok(entry) => still_valid(entry.outcome, leeway),
                Err(_) => Err(unavailable()),
            }
        }))
    }
}

/// A principal past its `exp` (and `leeway`) is expired, whatever the cache still holds.
fn still_valid<C>(
    outcome: Result<Principal<C>, AuthError>,
    leeway: Duration,
) -> Result<Principal<C>, AuthError> {
    match outcome {
        Ok(principal)
            if principal
                .expires_at()
                .and_then(|exp| exp.checked_add(leeway))
                .is_some_and(|end| end <= SystemTime::now()) =>
        {
            Err(AuthError::invalid_token("the token has expired"))
        }
        outcome => outcome,
    }
}

/// The RFC 7662 §2.1 form: the token, its type hint and, for `client_secret_post`, the
/// client credentials.
fn form_body(token: &str, credentials: Option<(&str, &str)>) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("token", token)
        .append_pair("token_type_hint", "access_token");
    if let Some((id, secret)) = credentials {
        form.append_pair("client_id", id)
            .append_pair("client_secret", secret);
    }
    form.finish()
}

/// `Basic` credentials with the id and secret form-encoded first (RFC 6749 §2.3.1).
fn basic_auth(id: &str, secret: &str) -> Result<http::HeaderValue, FetchError> {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(id), encode(secret));
    let mut value = http::HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
        .map_err(|_| FetchError::Invalid("client credentials do not fit a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds an [`Introspection`] authenticator. Building does no I/O.
#[must_use]
pub struct IntrospectionBuilder<C = RegisteredClaims> {
    issuer: Option<String>,
    endpoint: Option<String>,
    client: Option<(String, Secret)>,
    client_auth: ClientAuth,
    audiences: Vec<String>,
    max_ttl: Duration,
    negative_ttl: Duration,
    capacity: u64,
    http_timeout: Duration,
    max_response_bytes: usize,
    leeway: Duration,
    scope_claim: ScopeClaim,
    authorities: Vec<AuthoritySource>,
    allow_http: bool,
    any_audience: bool,
    accept_missing_aud: bool,
    _claims: PhantomData<fn() -> C>,
}

impl Default for IntrospectionBuilder {
    fn default() -> Self {
        Self {
            issuer: None,
            endpoint: None,
            client: None,
            client_auth: ClientAuth::default(),
            audiences: Vec::new(),
            max_ttl: DEFAULT_CACHE_MAX_TTL,
            negative_ttl: DEFAULT_NEGATIVE_TTL,
            capacity: DEFAULT_CACHE_CAPACITY,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_INTROSPECTION_BYTES,
            leeway: DEFAULT_LEEWAY,
            scope_claim: ScopeClaim::Default,
            authorities: Vec::new(),
            allow_http: false,
            any_audience: false,
            accept_missing_aud: false,
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for IntrospectionBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntrospectionBuilder")
            .field("issuer", &self.issuer)
            .field("endpoint", &self.endpoint)
            .field("client", &self.client)
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

    /// The introspection endpoint. Default: discovered from the issuer on first use.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// The resource server's own client credentials at the issuer. Required.
    pub fn client_credentials(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        self.client = Some((
            client_id.into(),
            Secret(client_secret.into().into_boxed_str()),
        ));
        self
    }

    /// How the client credentials are sent. Default: [`ClientAuth::ClientSecretBasic`].
    pub fn client_auth(mut self, method: ClientAuth) -> Self {
        self.client_auth = method;
        self
    }

    /// Requires an answer's `aud` to contain `audience`. Repeat to accept several.
    /// Required, unless [`dangerous_accept_any_audience`](Self::dangerous_accept_any_audience).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Lets the authenticator be built without an [`audience`](Self::audience), accepting
    /// answers whatever their `aud`, for issuers whose introspection answers omit it.
    /// Dangerous: a token issued for another API is then accepted here too, if the issuer
    /// tells this API about it. Configured audiences are always checked. Default: `false`.
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

    /// Most answers kept. Default: 10 000.
    pub fn cache_capacity(mut self, entries: u64) -> Self {
        self.capacity = entries;
        self
    }

    /// Timeout of each call (discovery, introspection). Default: 5 seconds; at most 10 minutes.
    /// Without an [`endpoint`](Self::endpoint), the first call also discovers it (up to two
    /// metadata calls), so it can take up to three times this.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Largest introspection or discovery answer accepted, in bytes. Default: 64 KiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Clock skew tolerated on `exp` and `nbf`. Default: 30 seconds; at most 5 minutes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Reads scopes from the member `name` instead of `scope`. Default: `scope` (RFC 7662).
    pub fn scope_claim(mut self, name: impl Into<String>) -> Self {
        self.scope_claim = ScopeClaim::Named(name.into().into_boxed_str());
        self
    }

    /// Reads roles or other authorities from `source` in the introspection answer into the
    /// principal's [`Authorities`](crate::Authorities). Repeat to merge several sources.
    /// Default: none, and the answer is not read for them.
    pub fn authorities(mut self, source: AuthoritySource) -> Self {
        self.authorities.push(source);
        self
    }

    /// Allows plain-`http` URLs on hosts other than loopback. Default: off.
    pub fn dangerous_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Deserializes the introspection answer into `T` instead of [`RegisteredClaims`].
    pub fn claims<T>(self) -> IntrospectionBuilder<T> {
        IntrospectionBuilder {
            issuer: self.issuer,
            endpoint: self.endpoint,
            client: self.client,
            client_auth: self.client_auth,
            audiences: self.audiences,
            max_ttl: self.max_ttl,
            negative_ttl: self.negative_ttl,
            capacity: self.capacity,
            http_timeout: self.http_timeout,
            max_response_bytes: self.max_response_bytes,
            leeway: self.leeway,
            scope_claim: self.scope_claim,
            authorities: self.authorities,
            allow_http: self.allow_http,
            any_audience: self.any_audience,
            accept_missing_aud: self.accept_missing_aud,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the authenticator.
    pub fn build(self) -> Result<Introspection<C>, ConfigError>
    where
        C: Send + Sync + 'static,
    {
        let issuer = self
            .issuer
            .filter(|i| !i.is_empty())
            .ok_or_else(|| ConfigError::new("an issuer is required"))?;
        let (client_id, client_secret) = self
            .client
            .filter(|(id, _)| !id.is_empty())
            .ok_or_else(|| ConfigError::new("client credentials are required"))?;
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new("the leeway may not exceed 5 minutes"));
        }
        if self.audiences.iter().any(String::is_empty)
            || (self.audiences.is_empty() && !self.any_audience)
        {
            return Err(ConfigError::new(
                "at least one non-empty audience is required (or dangerous_accept_any_audience)",
            ));
        }
        if self.http_timeout.is_zero()
            || self.http_timeout > MAX_HTTP_TIMEOUT
            || self.max_response_bytes == 0
        {
            return Err(ConfigError::new(
                "the HTTP timeout must be positive and at most 10 minutes, the response cap positive",
            ));
        }
        let endpoint = self
            .endpoint
            .map(|e| parse_url(&e, self.allow_http))
            .transpose()?;
        let issuer_url = match endpoint {
            Some(_) => None,
            None => Some(parse_url(&issuer, self.allow_http)?),
        };
        let cache = Cache::builder()
            .max_capacity(self.capacity)
            .expire_after(EntryTtl)
            .build();
        Ok(Introspection {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                issuer_url,
                endpoint: Mutex::new(endpoint),
                client_id: client_id.into_boxed_str(),
                client_secret,
                client_auth: self.client_auth,
                audiences: self
                    .audiences
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
                accept_missing_aud: self.accept_missing_aud,
                http: HttpClient::new(self.http_timeout, self.max_response_bytes)?,
                cache,
                max_ttl: self.max_ttl,
                negative_ttl: self.negative_ttl,
                time: TimeRules {
                    leeway: self.leeway.as_secs_f64(),
                },
                scope_claim: self.scope_claim,
                authorities: AuthorityClaims::new(&self.authorities)?,
                allow_http: self.allow_http,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_and_basic_credentials_are_encoded() {
        assert_eq!(
            form_body("a+b/c=", None),
            "token=a%2Bb%2Fc%3D&token_type_hint=access_token"
        );
        assert_eq!(
            form_body("t", Some(("my api", "s&cret"))),
            "token=t&token_type_hint=access_token&client_id=my+api&client_secret=s%26cret"
        );
        let value = basic_auth("my api", "p:ss").expect("header");
        // base64("my+api:p%3Ass")
        assert_eq!(value, "Basic bXkrYXBpOnAlM0Fzcw==");
        assert!(value.is_sensitive());
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let introspection = Introspection::builder()
            .issuer("https://login.example.com")
            .endpoint("https://login.example.com/introspect")
            .client_credentials("api", "very-secret-value")
            .audience("https://api.example.com")
            .build()
            .expect("config");
        let shown = format!("{introspection:?}");
        assert!(!shown.contains("very-secret-value"), "{shown}");
        assert!(shown.contains("[redacted]"));
        let builder = Introspection::builder().client_credentials("api", "very-secret-value");
        assert!(!format!("{builder:?}").contains("very-secret-value"));
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
    }
}
