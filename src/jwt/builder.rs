//! [`JwtBuilder`]: the configuration of a [`Jwt`] authenticator, checked at `build()`.

use std::{fmt, marker::PhantomData, sync::Arc, time::Duration};

use super::{
    Inner, Jwt,
    cache::{TokenCache, TokenCacheConfig},
    header::TypPolicy,
    tenant::{self, TenantIssuer},
};
use crate::{
    alg::{AlgSet, Algorithm},
    authorities::{AuthorityClaims, AuthoritySource},
    claims::ClaimRules,
    error::ConfigError,
    http_client::{DEFAULT_MAX_RESPONSE_BYTES, HttpOptions, http_option_setters, parse_url},
    jwks::{CachePolicy, JwksCache, Source, keys},
    principal::RegisteredClaims,
    redact,
};

#[derive(Clone)]
enum IssuerConfig {
    Discover(String),
    JwksUri(String, String),
    Static(String, String),
}

/// Never shows credentials in URLs, nor a static key set (it may hold private members).
impl fmt::Debug for IssuerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Discover(issuer) => f
                .debug_tuple("Discover")
                .field(&redact::url(issuer))
                .finish(),
            Self::JwksUri(issuer, uri) => f
                .debug_tuple("JwksUri")
                .field(&redact::url(issuer))
                .field(&redact::url(uri))
                .finish(),
            Self::Static(issuer, json) => f
                .debug_tuple("Static")
                .field(&redact::url(issuer))
                .field(&format_args!("<JWK Set, {} bytes>", json.len()))
                .finish(),
        }
    }
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
    algorithms: Vec<Algorithm>,
    strict_typ: bool,
    accept_id_tokens: bool,
    jwks_hosts: Vec<String>,
    claim_rules: ClaimRules,
    policy: CachePolicy,
    http: HttpOptions,
    authorities: Vec<AuthoritySource>,
    tenant_issuers: Vec<TenantIssuer>,
    issuer_audiences: Vec<(String, String)>,
    token_cache: TokenCacheConfig,
    _claims: PhantomData<fn() -> C>,
}

impl Default for JwtBuilder {
    fn default() -> Self {
        Self {
            issuers: Vec::new(),
            algorithms: Algorithm::ALL.to_vec(),
            strict_typ: false,
            accept_id_tokens: false,
            jwks_hosts: Vec::new(),
            claim_rules: ClaimRules::default(),
            policy: CachePolicy::default(),
            http: HttpOptions::new(DEFAULT_MAX_RESPONSE_BYTES),
            authorities: Vec::new(),
            tenant_issuers: Vec::new(),
            issuer_audiences: Vec::new(),
            token_cache: TokenCacheConfig::default(),
            _claims: PhantomData,
        }
    }
}

impl<C> fmt::Debug for JwtBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtBuilder")
            .field("issuers", &self.issuers)
            .field("audiences", &self.claim_rules.audiences)
            .field("http", &self.http)
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

    /// Trusts every issuer that fits a multi-tenant template, checking `tid` against the
    /// tenant in `iss` (see [`TenantIssuer`]). Repeat for several templates (Entra ID's v1
    /// and v2 issuers, say). Exact issuers are matched first. None by default.
    pub fn tenant_issuer(mut self, tenant_issuer: TenantIssuer) -> Self {
        self.tenant_issuers.push(tenant_issuer);
        self
    }

    /// Tokens of `issuer` (an exact issuer, or a [`TenantIssuer`] template as written) must
    /// name `audience` (or another audience given for it here) instead of the
    /// [`audience`](Self::audience)s, so that a token one issuer minted for another API is
    /// refused even when a sibling issuer uses that API's audience. Repeat for several.
    /// Default: every issuer uses the `audience` list; an issuer without either is refused
    /// at `build()`.
    pub fn issuer_audience(
        mut self,
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Self {
        self.issuer_audiences.push((issuer.into(), audience.into()));
        self
    }

    /// Accepts tokens whose `aud` (a string or an array) contains `audience`. Repeat to
    /// accept several. Required: there is no default.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.claim_rules.audience(audience.into());
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
        self.claim_rules.leeway = leeway;
        self
    }

    /// Accept only `typ` `at+jwt` / `application/at+jwt` (RFC 9068 §4). Default: off, which
    /// also accepts `JWT` or no `typ` (as many issuers send) and rejects every other type.
    pub fn strict_rfc9068(mut self, strict: bool) -> Self {
        self.strict_typ = strict;
        self
    }

    /// Accepts tokens whose claims mark an OpenID Connect ID token or a refresh token:
    /// `at_hash`, `c_hash`, `s_hash`, a `typ` claim of `ID`, `Refresh` or `Offline`
    /// (Keycloak), or `nonce` without `typ: Bearer`. Such a token proves a login to a client,
    /// not a grant to this API; accepting it lets any client that holds an ID token whose
    /// audience is this API's audience call the API. Default: `false` (refused as
    /// `invalid_token`), whatever [`strict_rfc9068`](Self::strict_rfc9068) says.
    pub fn dangerous_accept_id_tokens(mut self, accept: bool) -> Self {
        self.accept_id_tokens = accept;
        self
    }

    /// Reads roles or other authorities from `source` into the principal's
    /// [`Authorities`](crate::Authorities), for
    /// [`RequireAuthorityLayer`](crate::RequireAuthorityLayer). Repeat to merge several
    /// sources. Default: none, and the claims are not read for them.
    pub fn authorities(mut self, source: AuthoritySource) -> Self {
        self.authorities.push(source);
        self
    }

    /// Also accepts a discovered `jwks_uri` on `host` (a bare host name, such as
    /// `www.googleapis.com` for Google's issuer `https://accounts.google.com`). Whoever
    /// serves the keys can mint tokens for the issuer, so by default a discovery document
    /// pointing its `jwks_uri` at another host is refused and the issuer's keys are
    /// unavailable. Repeat for several hosts. Default: only the issuer's own host.
    pub fn allow_jwks_host(mut self, host: impl Into<String>) -> Self {
        self.jwks_hosts.push(host.into());
        self
    }

    /// Reads scopes from the claim `name` (a space-delimited string or an array of strings).
    /// Default: `scope`, else `scp`.
    pub fn scope_claim(mut self, name: impl Into<String>) -> Self {
        self.claim_rules.scope_claim(name.into());
        self
    }

    /// The longest time fetched keys are used before they are fetched again: a key the
    /// issuer removed stops verifying tokens at most this long after the last fetch. A
    /// shorter `Cache-Control: max-age` from the JWKS endpoint (bounded below to 1 minute)
    /// shortens it; a longer one never extends it. Default: 10 minutes; at most 30 days.
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
        self.http.timeout = timeout;
        self
    }

    /// Largest discovery or JWKS response accepted, in bytes. Default: 1 MiB.
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.http.max_bytes = bytes;
        self
    }

    http_option_setters!();

    /// Remembers tokens that passed every check, so the same token on a later request
    /// skips the signature check and the parsing. A remembered token still has its `exp`,
    /// `nbf` and `iat` checked on every request, is forgotten at its `exp`, and is
    /// validated in full again once the key that verified it leaves the issuer's JWK Set.
    /// An entry holds the token, compared in full on a hit, in memory only and never
    /// logged. Default: on.
    pub fn token_cache(mut self, enabled: bool) -> Self {
        self.token_cache.enabled = enabled;
        self
    }

    /// How many verified tokens are remembered at most. Default:
    /// [`DEFAULT_TOKEN_CACHE_CAPACITY`](crate::DEFAULT_TOKEN_CACHE_CAPACITY) (10 000); `0` turns the cache off.
    pub fn token_cache_capacity(mut self, entries: u64) -> Self {
        self.token_cache.capacity = entries;
        self
    }

    /// Bound on the estimated memory of the remembered tokens, in bytes; tokens with
    /// large claims count for more. Default:
    /// [`DEFAULT_TOKEN_CACHE_MAX_BYTES`](crate::DEFAULT_TOKEN_CACHE_MAX_BYTES) (32 MiB).
    pub fn token_cache_max_bytes(mut self, bytes: u64) -> Self {
        self.token_cache.max_bytes = bytes;
        self
    }

    /// Deserializes the claims into `T` instead of [`RegisteredClaims`]. A token whose
    /// claims do not fit `T` is rejected as `invalid_token`.
    ///
    /// `T` is read in the same pass over the payload as the claims validation checks, when
    /// its `Deserialize` reads a map or a struct (derived structs, `serde_json::Value`, maps
    /// with string keys); a `T` read otherwise (a newtype, a raw value) costs separate
    /// passes. Either way `T`'s `Deserialize` runs before the signature is checked, on
    /// claims not yet verified (at most the token's length): it must not trust them, and a
    /// principal, `T` with it, is handed out only for a token that passed every check.
    pub fn claims<T>(self) -> JwtBuilder<T> {
        JwtBuilder {
            issuers: self.issuers,
            algorithms: self.algorithms,
            strict_typ: self.strict_typ,
            accept_id_tokens: self.accept_id_tokens,
            jwks_hosts: self.jwks_hosts,
            claim_rules: self.claim_rules,
            policy: self.policy,
            http: self.http,
            authorities: self.authorities,
            tenant_issuers: self.tenant_issuers,
            issuer_audiences: self.issuer_audiences,
            token_cache: self.token_cache,
            _claims: PhantomData,
        }
    }

    /// Checks the configuration and builds the authenticator. Static key sets are parsed
    /// here; nothing is fetched.
    pub fn build(self) -> Result<Jwt<C>, ConfigError>
    where
        C: Send + Sync + 'static,
    {
        crate::crypto::install_provider();
        if self.issuers.is_empty() && self.tenant_issuers.is_empty() {
            return Err(ConfigError::new("at least one issuer is required"));
        }
        // Per-issuer audiences can stand in for the global ones (checked per issuer below).
        let rules = self.claim_rules.check(self.issuer_audiences.is_empty())?;
        let http = self.http.build()?;
        let mut policy = self.policy;
        policy.allow_http = self.http.allow_http;
        policy.check()?;
        let allowed = AlgSet::of(self.algorithms.iter().copied());
        if allowed.is_empty() {
            return Err(ConfigError::new("at least one algorithm must be allowed"));
        }
        let mut issuers = Vec::with_capacity(self.issuers.len());
        let jwks_hosts: Arc<[Box<str>]> = self
            .jwks_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase().into_boxed_str())
            .collect();
        if jwks_hosts
            .iter()
            .any(|h| h.is_empty() || h.contains(['/', ':', '@']))
        {
            return Err(ConfigError::new(
                "an allowed JWKS host must be a bare host name, without scheme, port or path",
            ));
        }
        for config in self.issuers {
            let issuer: Arc<str> = config.issuer().into();
            if issuer.is_empty() {
                return Err(ConfigError::new("an issuer is empty"));
            }
            if issuers.iter().any(|c: &JwksCache| *c.issuer() == issuer) {
                return Err(ConfigError::new(format!(
                    "issuer `{}` is listed twice",
                    redact::url(&issuer)
                )));
            }
            let allow_http = policy.allow_http;
            let (source, initial) = match config {
                IssuerConfig::Discover(i) => (
                    Source::Discovery {
                        issuer: parse_url(&i, allow_http)?,
                        other_hosts: Arc::clone(&jwks_hosts),
                    },
                    None,
                ),
                IssuerConfig::JwksUri(_, uri) => {
                    (Source::JwksUri(parse_url(&uri, allow_http)?), None)
                }
                IssuerConfig::Static(_, json) => {
                    let set = keys::parse(json.as_bytes(), allowed).map_err(|e| {
                        ConfigError::new(format!(
                            "the JWK Set of `{}` is invalid: {}",
                            redact::url(&issuer),
                            e.0
                        ))
                    })?;
                    if set.keys.is_empty() {
                        return Err(ConfigError::new(format!(
                            "the JWK Set of `{}` has no usable key",
                            redact::url(&issuer)
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
                policy,
                allowed,
            ));
        }
        let exact = issuers.len();
        let templates = tenant::caches(
            &self.tenant_issuers,
            &mut issuers,
            &http,
            policy,
            allowed,
            &jwks_hosts,
        )?;
        let audiences_by_issuer =
            super::audiences::per_issuer(&issuers, &self.issuer_audiences, &rules.audiences)?;
        Ok(Jwt {
            inner: Arc::new(Inner {
                issuers: issuers.into_boxed_slice(),
                audiences_by_issuer,
                exact,
                templates,
                audiences: rules.audiences,
                allowed,
                accept_id_tokens: self.accept_id_tokens,
                typ: if self.strict_typ {
                    TypPolicy::Strict
                } else {
                    TypPolicy::Lenient
                },
                time: rules.time,
                scope_claim: rules.scope_claim,
                authorities: AuthorityClaims::new(&self.authorities)?,
                cooldown: policy.cooldown,
            }),
            verified: TokenCache::new(self.token_cache),
            _claims: PhantomData,
        })
    }
}
