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

mod audiences;
mod builder;
pub(crate) mod cache;
pub(crate) mod header;
mod tenant;
mod tenant_keys;

use std::{
    fmt,
    marker::PhantomData,
    mem::MaybeUninit,
    sync::Arc,
    time::{Duration, Instant},
};

use serde::de::DeserializeOwned;

use crate::{
    alg::AlgSet,
    authenticate::{Authenticate, Authentication},
    authorities::AuthorityClaims,
    base64url,
    claims::{self, ScopeClaim, TimeRules},
    clock::unix_now,
    error::AuthError,
    jwks::{JwksCache, Keys},
    principal::{Principal, RegisteredClaims},
};
use cache::TokenCache;
use header::TypPolicy;

pub use builder::JwtBuilder;
pub use cache::{DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_CACHE_MAX_BYTES};
pub use tenant::{TENANT_PLACEHOLDER, TenantIssuer};
pub use tenant_keys::DEFAULT_MAX_TENANTS;

pub use crate::claims::{DEFAULT_LEEWAY, MAX_LEEWAY};

/// Validates JWT access tokens locally against the keys of the configured issuers.
///
/// Cheap to clone: clones share the key caches. Build one with [`Jwt::builder`].
pub struct Jwt<C = RegisteredClaims> {
    inner: Arc<Inner>,
    verified: Option<TokenCache<C>>,
    _claims: PhantomData<fn() -> C>,
}

struct Inner {
    /// The exact issuers first, then one cache per tenant template.
    issuers: Box<[JwksCache]>,
    /// How many of `issuers` are exact.
    exact: usize,
    templates: Box<[tenant::TemplateCache]>,
    audiences: Box<[Box<str>]>,
    /// The audiences per key cache (aligned with `issuers`).
    audiences_by_issuer: Box<[audiences::Audiences]>,
    allowed: AlgSet,
    typ: TypPolicy,
    accept_id_tokens: bool,
    time: TimeRules,
    scope_claim: ScopeClaim,
    authorities: AuthorityClaims,
    cooldown: Duration,
}

impl<C> Jwt<C> {
    /// The key caches, one per issuer (for readiness).
    pub(crate) fn issuers(&self) -> &[JwksCache] {
        &self.inner.issuers
    }
}

impl<C> Clone for Jwt<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            verified: self.verified.clone(),
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
                    .map(|i| crate::redact::url(i.issuer()))
                    .collect::<Vec<_>>(),
            )
            .field("audiences", &self.inner.audiences)
            .finish_non_exhaustive()
    }
}

impl<C> Jwt<C> {
    /// The trusted exact issuers, in configuration order.
    pub(crate) fn issuer_names(&self) -> impl Iterator<Item = &str> {
        // Exact issuers only: a tenant template is no authorization server's name.
        self.inner.issuers[..self.inner.exact]
            .iter()
            .map(|c| &**c.issuer())
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
    Refresh(tenant::Found),
    /// A tenant only the template's resolver can judge: (template, tenant).
    Resolve(usize, Box<str>),
}

impl From<AuthError> for Step {
    fn from(e: AuthError) -> Self {
        Self::Reject(e)
    }
}

fn b64(part: &str) -> Result<Vec<u8>, AuthError> {
    base64url::decode(part)
        .ok_or_else(|| AuthError::invalid_token("the token is not valid base64url"))
}

/// Room for the longest signature a key can verify (RSA 8192 bits).
const MAX_SIGNATURE_LEN: usize = 1024;

/// Splits a JWS compact serialization into its three parts.
fn split(token: &str) -> Result<(&str, &str, &str), AuthError> {
    match base64url::split(token) {
        Some((h, p, s)) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(AuthError::invalid_token(
            "the token is not a signed JWT in compact form",
        )),
    }
}

impl<C> Jwt<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    fn validate(&self, token: &str, may_refresh: bool) -> Result<Principal<C>, Step> {
        let probe = self.verified.as_ref().map(|cache| cache.probe(token));
        if let (Some(verified), Some(probe)) = (&self.verified, &probe)
            && let Some(principal) = self.cached(verified, probe)?
        {
            return Ok(principal);
        }
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
        // The typed claims are read here too, in the same pass, before the signature is
        // checked (their `Deserialize` runs on unverified claims); nothing of them is used
        // unless the signature verifies, and their error is returned only then.
        let claims::Read {
            view,
            claims,
            authorities,
            ..
        } = claims::read::<C>(&payload, &inner.scope_claim, &inner.authorities)
            .map_err(|_| AuthError::invalid_token("the token's claims are malformed"))?;
        let iss = view
            .iss
            .as_deref()
            .ok_or_else(|| AuthError::invalid_token("the token has no issuer"))?;
        let (found, templated) = match inner.issuers[..inner.exact]
            .iter()
            .position(|c| **c.issuer() == *iss)
        {
            Some(index) => (tenant::Found::exact(index), false),
            None => (
                tenant::find(&inner.templates, iss, view.tid.as_deref())?,
                true,
            ),
        };
        if view.not_an_access_token() && !inner.accept_id_tokens {
            return Err(AuthError::invalid_token(
                "the token is an ID token or a refresh token, not an access token",
            )
            .into());
        }
        inner.time.check(&view, unix_now(), true)?;
        if !claims::audience_matches(view.aud.as_ref(), &inner.audiences_by_issuer[found.index]) {
            return Err(
                AuthError::invalid_token("the token is not meant for this audience").into(),
            );
        }
        let cache = found.cache(&inner.issuers);
        let kid = header.kid.as_deref();
        let now = Instant::now();
        let (keys, refetch) = match cache.current(now) {
            Keys::Ready { keys, refetch } => (keys, refetch),
            Keys::MustRefresh if may_refresh => return Err(Step::Refresh(found.clone())),
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
        let mut signature = [MaybeUninit::uninit(); MAX_SIGNATURE_LEN];
        // Longer than any key can verify, or not base64url: no key verifies it.
        let signature = base64url::decode_into(s64, &mut signature);
        let verified_by = keys.candidates(kid, header.alg).find(|key| {
            tried = true;
            signature.is_some_and(|sig| key.verifier.verify(header.alg, message.as_bytes(), sig))
        });
        let Some(verified_by) = verified_by else {
            // A token that names no known `kid` (an unknown one, or none) may be signed with
            // a key the issuer added since the last fetch: fetch once, within the cooldown.
            // A known `kid` never causes a fetch: a failure under it is an attack or a
            // corrupted token, not a rotation.
            let known = kid.is_some_and(|k| keys.has_kid(k));
            let refetch = may_refresh && refetch.unwrap_or_else(|| cache.may_refetch(now, &keys));
            return Err(if !known && refetch {
                Step::Refresh(found.clone())
            } else if !known && cache.last_fetch_failed() {
                // The issuer may hold the key but cannot be asked: not the token's fault.
                AuthError::unavailable("the issuer's keys cannot be fetched", inner.cooldown).into()
            } else if tried {
                AuthError::invalid_token("the token's signature does not verify").into()
            } else {
                AuthError::invalid_token("no trusted key matches the token").into()
            });
        };
        if let Some(step) = found.undecided() {
            return Err(step);
        }
        let claims = claims?;
        let authorities = authorities?;
        let issuer = if templated {
            Arc::from(iss)
        } else {
            Arc::clone(cache.issuer())
        };
        let times = (view.exp, view.nbf, view.iat);
        let principal = view
            .into_principal(issuer, &inner.scope_claim, claims)
            .with_authorities(authorities)
            .with_key_id(verified_by.kid.as_ref());
        // Tokens of a tenant template are not remembered: their keys live in per-tenant
        // caches the entry could not be checked against.
        if let (Some(verified), Some(probe), false) = (&self.verified, probe, templated) {
            let key = verified_by.verifier.id();
            verified.insert(
                probe,
                principal.clone(),
                found.index,
                key,
                times,
                payload.len(),
            );
        }
        Ok(principal)
    }

    /// A hit in the verified-token cache, after the time claims are checked again and the
    /// key that verified the token is found still in its issuer's set. A hit whose key is
    /// gone (or whose issuer has no usable keys now) is dropped: the caller validates the
    /// token in full, as on a miss.
    fn cached(
        &self,
        verified: &TokenCache<C>,
        probe: &cache::Probe<'_>,
    ) -> Result<Option<Principal<C>>, AuthError> {
        // One reading of the clock for the lookup and the re-check.
        let now = unix_now();
        let outcome = match verified.get(probe, now) {
            None => Ok(None),
            Some(hit) => self.recheck(hit, now).inspect(|principal| {
                if principal.is_none() {
                    verified.remove(probe);
                }
            }),
        };
        // A hit is the cache answering, a rejection included; a miss, a full validation.
        crate::metrics::token_cache(!matches!(outcome, Ok(None)));
        outcome
    }

    /// A remembered token's principal, after the time claims are checked again (the same
    /// rule, on the same values, as for a token seen the first time) and its key is found
    /// still in its issuer's set; `None` when the key has gone.
    fn recheck(
        &self,
        hit: cache::Verified<C>,
        now: f64,
    ) -> Result<Option<Principal<C>>, AuthError> {
        let times = claims::ClaimsView {
            exp: hit.exp,
            nbf: hit.nbf,
            iat: hit.iat,
            ..Default::default()
        };
        self.inner.time.check(&times, now, true)?;
        let key_present = self.inner.issuers[..self.inner.exact]
            .get(hit.issuer)
            .is_some_and(|cache| {
                matches!(cache.current(Instant::now()), Keys::Ready { keys, .. } if keys.has_key(hit.key))
            });
        Ok(key_present.then_some(hit.principal))
    }

    /// The answer when a retry still cannot decide.
    fn give_up(&self, step: Step) -> AuthError {
        match step {
            Step::Reject(e) => e,
            Step::Refresh(_) | Step::Resolve(..) => {
                AuthError::unavailable("the issuer's keys cannot be fetched", self.inner.cooldown)
            }
        }
    }

    /// Fetches the keys of every issuer that fetches keys, all at once: an explicit warm-up
    /// before serving. Without it the first request fetches them. A failure is logged at
    /// WARN (feature `tracing`) with the issuer and the cause.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when any issuer still has no
    /// usable keys afterwards; the others are warmed all the same. Its `Display` names each
    /// such issuer (URL redacted) with the cause of its last failure (unreachable, timed out,
    /// an unexpected status, too large, a malformed discovery document or JWK Set, ...).
    pub async fn refresh(&self) -> Result<(), AuthError> {
        let fetching = || self.inner.issuers.iter().filter(|c| c.fetches_keys());
        futures_util::future::join_all(fetching().map(|cache| cache.refresh())).await;
        let now = Instant::now();
        let mut failed = fetching()
            .filter(|cache| matches!(cache.current(now), Keys::MustRefresh | Keys::Unavailable(_)))
            .peekable();
        if failed.peek().is_none() {
            return Ok(());
        }
        let mut detail = String::new();
        for cache in failed {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            cache.describe_failure(now, &mut detail);
        }
        Err(
            AuthError::unavailable("the issuer's keys cannot be fetched", self.inner.cooldown)
                .with_detail(detail),
        )
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
            Err(Step::Refresh(found)) => {
                let refresh = found.cache(&self.inner.issuers).refresh();
                let this = self.clone();
                let token = token.to_owned();
                Authentication::Pending(Box::pin(async move {
                    refresh.await;
                    this.validate(&token, false)
                        .map_err(|step| this.give_up(step))
                }))
            }
            Err(Step::Resolve(at, tenant)) => {
                let this = self.clone();
                let token = token.to_owned();
                Authentication::Pending(Box::pin(async move {
                    tenant::resolve(&this.inner.templates, at, tenant).await;
                    // A tenant just accepted may still need its keys fetched.
                    match this.validate(&token, true) {
                        Err(Step::Refresh(found)) => {
                            found.cache(&this.inner.issuers).refresh().await;
                            this.validate(&token, false)
                        }
                        other => other,
                    }
                    .map_err(|step| this.give_up(step))
                }))
            }
        }
    }
}
