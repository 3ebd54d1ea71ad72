//! Local validation of JWT access tokens (RFC 7519, RFC 8725, RFC 9068) against the keys of
//! one or more trusted issuers.
//!
//! # Example
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response, StatusCode};
//! use portcullis::{BearerAuthLayer, Jwt, Principal};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! # use portcullis::__doc_support::{JWKS as jwks, TOKEN as token};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//!
//! let service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(jwt))
//!     .service(service_fn(|req: Request<()>| async move {
//!         let principal = req.extensions().get::<Principal>().expect("set by the layer");
//!         Ok::<_, Infallible>(Response::new(principal.subject().unwrap_or("").to_owned()))
//!     }));
//!
//! let request = Request::builder()
//!     .header("authorization", format!("Bearer {token}"))
//!     .body(())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! assert_eq!(response.body(), "alice");
//! # Ok(())
//! # }
//! ```

pub(crate) mod alg;
pub(crate) mod claims;
pub(crate) mod header;

use std::{
    fmt,
    marker::PhantomData,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::de::DeserializeOwned;

use crate::{
    authenticate::{Authenticate, Authentication},
    error::{AuthError, ConfigError},
    http_client::{
        DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES, HttpClient, MAX_HTTP_TIMEOUT, parse_url,
    },
    jwks::{CachePolicy, JwksCache, Keys, Source, keys},
    principal::{Principal, RegisteredClaims, system_time},
};
use alg::AlgSet;
pub use alg::Algorithm;
use claims::{ScopeClaim, TimeRules};
use header::TypPolicy;

/// Default clock leeway for `exp`, `nbf` and `iat`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway a builder accepts: 5 minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Validates JWT access tokens locally against the keys of the configured issuers.
///
/// Cheap to clone: clones share the key caches. Build one with [`Jwt::builder`].
pub struct Jwt<C = RegisteredClaims> {
    inner: Arc<Inner>,
    _claims: PhantomData<fn() -> C>,
}

struct Inner {
    issuers: Box<[JwksCache]>,
    audiences: Box<[Box<str>]>,
    allowed: AlgSet,
    typ: TypPolicy,
    time: TimeRules,
    scope_claim: ScopeClaim,
    cooldown: Duration,
}

impl<C> Clone for Jwt<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for Jwt<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwt")
            .field(
                "issuers",
                &self
                    .inner
                    .issuers
                    .iter()
                    .map(|i| i.issuer())
                    .collect::<Vec<_>>(),
            )
            .field("audiences", &self.inner.audiences)
            .finish_non_exhaustive()
    }
}

impl Jwt {
    /// A builder with the secure defaults; an issuer and an audience are required.
    pub fn builder() -> JwtBuilder {
        JwtBuilder::default()
    }
}

/// Why the first attempt could not decide.
enum Step {
    Reject(AuthError),
    Refresh(usize),
}

impl From<AuthError> for Step {
    fn from(e: AuthError) -> Self {
        Self::Reject(e)
    }
}

fn b64(part: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| AuthError::invalid_token("the token is not valid base64url"))
}

/// Splits a JWS compact serialization into its three parts.
fn split(token: &str) -> Result<(&str, &str, &str), AuthError> {
    let mut parts = token.splitn(4, '.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(AuthError::invalid_token(
            "the token is not a signed JWT in compact form",
        )),
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl<C> Jwt<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    fn validate(&self, token: &str, may_refresh: bool) -> Result<Principal<C>, Step> {
        let inner = &*self.inner;
        let (h64, p64, s64) = split(token)?;
        if s64.is_empty() {
            return Err(AuthError::invalid_token("the token has no signature").into());
        }
        let header_json = b64(h64)?;
        let header = header::parse(&header_json, inner.typ)?;
        if !inner.allowed.contains(header.alg) {
            return Err(AuthError::invalid_token("the token's algorithm is not accepted").into());
        }
        let payload = b64(p64)?;
        let view = claims::parse(&payload, &inner.scope_claim)?;
        let iss = view
            .iss
            .as_deref()
            .ok_or_else(|| AuthError::invalid_token("the token has no issuer"))?;
        let index = inner
            .issuers
            .iter()
            .position(|c| **c.issuer() == *iss)
            .ok_or_else(|| AuthError::invalid_token("the token's issuer is not trusted"))?;
        if view.cnf {
            return Err(AuthError::invalid_token(
                "the token is bound to a key (cnf) and cannot be used as a bearer token",
            )
            .into());
        }
        inner.time.check(&view, unix_now(), true)?;
        if !claims::audience_matches(view.aud.as_ref(), &inner.audiences) {
            return Err(
                AuthError::invalid_token("the token is not meant for this audience").into(),
            );
        }
        let cache = &inner.issuers[index];
        let kid = header.kid.as_deref();
        let (keys, refetch) = match cache.current(Instant::now()) {
            Keys::Ready { keys, refetch } => (keys, refetch && may_refresh),
            Keys::MustRefresh if may_refresh => return Err(Step::Refresh(index)),
            Keys::MustRefresh => {
                return Err(AuthError::unavailable(
                    "the issuer's keys cannot be fetched",
                    inner.cooldown,
                )
                .into());
            }
            Keys::Unavailable(retry_after) => {
                return Err(AuthError::unavailable(
                    "the issuer's keys cannot be fetched",
                    retry_after,
                )
                .into());
            }
        };
        let message = &token[..h64.len() + 1 + p64.len()];
        // One candidate with a `kid`; a few without (see `MAX_KIDLESS_CANDIDATES`).
        let mut tried = false;
        let verified = keys.candidates(kid, header.alg).any(|key| {
            tried = true;
            jsonwebtoken::crypto::verify(
                s64,
                message.as_bytes(),
                &key.key,
                header.alg.to_jsonwebtoken(),
            )
            .unwrap_or(false)
        });
        if !verified {
            // A token that names no known `kid` (an unknown one, or none) may be signed with
            // a key the issuer added since the last fetch: fetch once, within the cooldown.
            // A known `kid` never causes a fetch: a failure under it is an attack or a
            // corrupted token, not a rotation.
            let known = kid.is_some_and(|k| keys.has_kid(k));
            return Err(if refetch && !known {
                Step::Refresh(index)
            } else if !known && cache.last_fetch_failed() {
                // The issuer may hold the key but cannot be asked: not the token's fault.
                AuthError::unavailable("the issuer's keys cannot be fetched", inner.cooldown).into()
            } else if tried {
                AuthError::invalid_token("the token's signature does not verify").into()
            } else {
                AuthError::invalid_token("no trusted key matches the token").into()
            });
        }
        let claims: C = serde_json::from_slice(&payload).map_err(|_| {
            AuthError::invalid_token("the token's claims do not have the expected shape")
        })?;
        let scopes = inner.scope_claim.scopes(&view);
        Ok(Principal::new(
            Arc::clone(cache.issuer()),
            view.sub.map(|s| s.into_owned().into_boxed_str()),
            scopes,
            view.exp.and_then(system_time),
            claims,
        ))
    }

    /// Fetches the keys of every issuer that fetches keys, all at once: an explicit warm-up
    /// before serving. Without it the first request fetches them. A failure is logged at
    /// WARN (feature `tracing`) with the issuer and the cause.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when any issuer still has no
    /// usable keys afterwards; the others are warmed all the same.
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let fetching = || self.inner.issuers.iter().filter(|c| c.fetches_keys());
        futures_util::future::join_all(fetching().map(|cache| cache.refresh())).await;
        let now = Instant::now();
        if fetching()
            .any(|cache| matches!(cache.current(now), Keys::MustRefresh | Keys::Unavailable(_)))
        {
            return Err(AuthError::unavailable(
                "the issuer's keys cannot be fetched",
                self.inner.cooldown,
            ));
        }
        Ok(())
    }
}

impl<C> Authenticate for Jwt<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Claims = C;

    fn authenticate(&self, token: &str) -> Authentication<C> {
        match self.validate(token, true) {
            Ok(principal) => Authentication::Ready(Ok(principal)),
            Err(Step::Reject(e)) => Authentication::Ready(Err(e)),
            Err(Step::Refresh(index)) => {
                let refresh = self.inner.issuers[index].refresh();
                let this = self.clone();
                let token = token.to_owned();
                Authentication::Pending(Box::pin(async move {
                    refresh.await;
                    this.validate(&token, false).map_err(|step| match step {
                        Step::Reject(e) => e,
                        Step::Refresh(_) => AuthError::unavailable(
                            "the issuer's keys cannot be fetched",
                            this.inner.cooldown,
                        ),
                    })
                }))
            }
        }
    }
}

#[derive(Clone, Debug)]
enum IssuerConfig {
    Discover(String),
    JwksUri(String, String),
    Static(String, String),
}

impl IssuerConfig {
    fn issuer(&self) -> &str {
        match self {
            Self::Discover(i) | Self::JwksUri(i, _) | Self::Static(i, _) => i,
        }
    }
}

/// Builds a [`Jwt`] authenticator. Building does no I/O.
///
/// At least one issuer and one audience are required.
#[must_use]
pub struct JwtBuilder<C = RegisteredClaims> {
    issuers: Vec<IssuerConfig>,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    strict_typ: bool,
    scope_claim: ScopeClaim,
    policy: CachePolicy,
    http_timeout: Duration,
    max_response_bytes: usize,
    _claims: PhantomData<fn() -> C>,
}

impl Default for JwtBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            audiences: Vec::new(),
            algorithms: Algorithm::ALL.to_vec(),
            leeway: DEFAULT_LEEWAY,
            strict_typ: false,
            scope_claim: ScopeClaim::Default,
            policy: CachePolicy::default(),
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for JwtBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .finish_non_exhaustive()
    }
}

impl<C> JwtBuilder<C> {
    /// Trusts `issuer`, finding its keys through OpenID Connect discovery
    /// (`/.well-known/openid-configuration`), falling back to RFC 8414
    /// (`/.well-known/oauth-authorization-server`). The discovered `issuer` must equal this
    /// value exactly, and tokens must carry it exactly in `iss`.
    ///
    /// Repeat to trust several issuers. No issuer is trusted by default.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuers.push(IssuerConfig::Discover(issuer.into()));
        self
    }

    /// Trusts `issuer`, fetching its keys from `jwks_uri` without discovery.
    pub fn issuer_with_jwks_uri(
        mut self,
        issuer: impl Into<String>,
        jwks_uri: impl Into<String>,
    ) -> Self {
        self.issuers
            .push(IssuerConfig::JwksUri(issuer.into(), jwks_uri.into()));
        self
    }

    /// Trusts `issuer` with a fixed JWK Set document (JSON), never fetched.
    pub fn issuer_with_jwks(mut self, issuer: impl Into<String>, jwks: impl Into<String>) -> Self {
        self.issuers
            .push(IssuerConfig::Static(issuer.into(), jwks.into()));
        self
    }

    /// Accepts tokens whose `aud` (a string or an array) contains `audience`. Repeat to
    /// accept several. Required: there is no default.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// The signature algorithms accepted. Each key still accepts only the algorithms its
    /// type (and its `alg` member) allows. Default: [`Algorithm::ALL`] (RS256/384/512,
    /// PS256/384/512, ES256, ES384, EdDSA).
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.algorithms = algorithms.into_iter().collect();
        self
    }

    /// Clock skew tolerated on `exp`, `nbf` and `iat`. Default: 30 seconds; at most 5 minutes.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Accept only `typ` `at+jwt` / `application/at+jwt` (RFC 9068 §4). Default: off, which
    /// also accepts `JWT` or no `typ` (as many issuers send) and rejects every other type.
    pub fn strict_rfc9068(mut self, strict: bool) -> Self {
        self.strict_typ = strict;
        self
    }

    /// Reads scopes from the claim `name` (a space-delimited string or an array of strings).
    /// Default: `scope`, else `scp`.
    pub fn scope_claim(mut self, name: impl Into<String>) -> Self {
        self.scope_claim = ScopeClaim::Named(name.into().into_boxed_str());
        self
    }

    /// How long fetched keys are used before they are fetched again. A
    /// `Cache-Control: max-age` from the JWKS endpoint replaces it, bounded to 1 minute …
    /// 24 hours. Default: 10 minutes; at most 30 days.
    pub fn jwks_ttl(mut self, ttl: Duration) -> Self {
        self.policy.ttl = ttl;
        self
    }

    /// Minimum time between two key fetches caused by an unknown `kid` or a failure; all
    /// requests waiting meanwhile share one fetch. Default: 30 seconds; at most 30 days.
    pub fn jwks_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.policy.cooldown = cooldown;
        self
    }

    /// How long keys keep serving past their TTL while the issuer cannot be reached. After
    /// that, requests get `503`. Default: 1 hour; at most 30 days.
    pub fn jwks_max_stale(mut self, max_stale: Duration) -> Self {
        self.policy.max_stale = max_stale;
        self
    }

    /// Timeout of each call to the issuer (discovery, JWKS). Default: 5 seconds; at most
    /// 10 minutes. A first fetch through discovery makes up to three calls (OpenID
    /// metadata, RFC 8414 metadata, the key set), so it can take up to three times this.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// Largest discovery or JWKS response accepted, in bytes. Default: 1 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Allows plain-`http` issuer and JWKS URLs on hosts other than loopback. Default: off
    /// (only `https`, and `http` on `localhost`/`127.0.0.0/8`/`[::1]`).
    pub fn dangerous_allow_http(mut self, allow: bool) -> Self {
        self.policy.allow_http = allow;
        self
    }

    /// Deserializes the claims into `T` instead of [`RegisteredClaims`]. A token whose
    /// claims do not fit `T` is rejected as `invalid_token`.
    pub fn claims<T>(self) -> JwtBuilder<T> {
        JwtBuilder {
            issuers: self.issuers,
            audiences: self.audiences,
            algorithms: self.algorithms,
            leeway: self.leeway,
            strict_typ: self.strict_typ,
            scope_claim: self.scope_claim,
            policy: self.policy,
            http_timeout: self.http_timeout,
            max_response_bytes: self.max_response_bytes,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the authenticator. Static key sets are parsed
    /// here; nothing is fetched.
    pub fn build(self) -> Result<Jwt<C>, ConfigError> {
        crate::crypto::install_provider();
        if self.issuers.is_empty() {
            return Err(ConfigError::new("at least one issuer is required"));
        }
        if self.audiences.is_empty() || self.audiences.iter().any(String::is_empty) {
            return Err(ConfigError::new(
                "at least one non-empty audience is required",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new("the leeway may not exceed 5 minutes"));
        }
        if self.http_timeout.is_zero()
            || self.http_timeout > MAX_HTTP_TIMEOUT
            || self.max_response_bytes == 0
        {
            return Err(ConfigError::new(
                "the HTTP timeout must be positive and at most 10 minutes, the response cap positive",
            ));
        }
        self.policy.check()?;
        let allowed = AlgSet::of(self.algorithms.iter().copied());
        if allowed.is_empty() {
            return Err(ConfigError::new("at least one algorithm must be allowed"));
        }
        if let ScopeClaim::Named(name) = &self.scope_claim
            && name.is_empty()
        {
            return Err(ConfigError::new("the scope claim name is empty"));
        }
        let http = HttpClient::new(self.http_timeout, self.max_response_bytes)?;
        let mut issuers = Vec::with_capacity(self.issuers.len());
        for config in self.issuers {
            let issuer: Arc<str> = config.issuer().into();
            if issuer.is_empty() {
                return Err(ConfigError::new("an issuer is empty"));
            }
            if issuers.iter().any(|c: &JwksCache| *c.issuer() == issuer) {
                return Err(ConfigError::new(format!(
                    "issuer `{issuer}` is listed twice"
                )));
            }
            let allow_http = self.policy.allow_http;
            let (source, initial) = match config {
                IssuerConfig::Discover(i) => (Source::Discovery(parse_url(&i, allow_http)?), None),
                IssuerConfig::JwksUri(_, uri) => {
                    (Source::JwksUri(parse_url(&uri, allow_http)?), None)
                }
                IssuerConfig::Static(_, json) => {
                    let set = keys::parse(json.as_bytes(), allowed).map_err(|e| {
                        ConfigError::new(format!("the JWK Set of `{issuer}` is invalid: {}", e.0))
                    })?;
                    if set.keys.is_empty() {
                        return Err(ConfigError::new(format!(
                            "the JWK Set of `{issuer}` has no usable key"
                        )));
                    }
                    (Source::Static, Some(set))
                }
            };
            issuers.push(JwksCache::new(
                issuer,
                source,
                initial,
                http.clone(),
                self.policy,
                allowed,
            ));
        }
        Ok(Jwt {
            inner: Arc::new(Inner {
                issuers: issuers.into_boxed_slice(),
                audiences: self
                    .audiences
                    .into_iter()
                    .map(String::into_boxed_str)
                    .collect(),
                allowed,
                typ: if self.strict_typ {
                    TypPolicy::Strict
                } else {
                    TypPolicy::Lenient
                },
                time: TimeRules {
                    leeway: self.leeway.as_secs_f64(),
                },
                scope_claim: self.scope_claim,
                cooldown: self.policy.cooldown,
            }),
            _claims: PhantomData,
        })
    }
}
