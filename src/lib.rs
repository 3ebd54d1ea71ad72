//! OAuth 2.0 resource-server middleware for [tower]: bearer tokens in, a validated
//! [`Principal`] out, RFC 6750 answers for everything else.
//!
//! ```text
//! request → token source → authenticator (JWT against cached keys, or introspection)
//!         → principal in extensions → scope policy → handler
//!         (any failure → rejection: RFC 6750 response, or gRPC status under tonic)
//! ```
//!
//! - **Token source**: `Authorization: Bearer` (scheme case-insensitive, `b64token` grammar);
//!   a named header, a cookie or the `access_token` query parameter only when enabled.
//! - **[`Jwt`]**: local validation of JWT access tokens against the issuer's JWK Set, found
//!   through OpenID Connect discovery or RFC 8414, cached and refreshed safely.
//! - **Sender-constrained tokens**: a token bound by `cnf` needs its DPoP proof (RFC 9449:
//!   `Authorization: DPoP` and a `DPoP` header, checked with replay protection and optional
//!   server nonces) or its TLS client certificate (RFC 8705, handed over as a
//!   [`ClientCertificate`] extension); see the [`dpop`] module. The binding is on
//!   [`Principal::confirmation`].
//! - **Scopes**: [`RequireScopeLayer`] per route, or [`BearerAuthLayer::require_scopes`]
//!   for every request.
//! - **Roles and claims** ([`authz`]): authorities read from claim paths
//!   ([`AuthoritySource`]), [`RequireRoleLayer`] per route, [`RequireClaimLayer`](authz::RequireClaimLayer)
//!   conditions on claims.
//! - **Multi-tenant issuers**: [`TenantIssuer`](jwt::TenantIssuer) templates such as
//!   `https://login.microsoftonline.com/{tenantid}/v2.0`, and audiences per issuer.
//! - **Rejections**: `401`/`400`/`403` with `WWW-Authenticate`, `503` with `Retry-After`
//!   when the issuer cannot be reached; [`OnRejection`] to answer differently.
//! - **Step-up** (RFC 9470): [`RequireStepUpLayer`] per route requires an `acr` value
//!   and/or a recent `auth_time`, answering `error="insufficient_user_authentication"`.
//! - **Resource metadata** (RFC 9728): [`metadata::ProtectedResource`] serves the
//!   document clients discover issuers and scopes from, and names it in every challenge.
//! - **gRPC** (feature `tonic`): `BearerAuthLayer::grpc` answers with gRPC statuses, the
//!   `grpc` module adds per-method scopes and a one-call principal lookup for handlers.
//!
//! # Quick start (axum)
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use portcullis::{BearerAuthLayer, Jwt, Principal, RequireScopeLayer};
//!
//! async fn me(principal: Principal) -> String {
//!     format!("hello {}", principal.subject().unwrap_or("?"))
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer("https://login.example.com/")
//!     .audience("https://api.example.com")
//!     .build()?;
//! jwt.refresh().await?; // optional warm-up; otherwise the first request fetches the keys
//!
//! let app = Router::new()
//!     .route("/items", get(|| async { "items" }))
//!     .route_layer(RequireScopeLayer::all(["read"]))
//!     .route("/me", get(me))
//!     .layer(BearerAuthLayer::new(jwt));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Feature flags
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | extractors for [`Principal`], [`Scopes`] and [`Authorities`] |
//! | `introspection` | yes | RFC 7662 introspection for opaque tokens |
//! | `tracing` | yes | an `authenticate` span per request (`outcome`; `issuer` and the verifying key's `kid` once accepted) with JWKS/introspection calls as child spans; rejections at DEBUG (`portcullis::rejection`), issuer failures at WARN |
//! | `metrics` | yes | counters, gauges and a histogram through the `metrics` facade (names in the README) |
//! | `aws-lc-rs` | yes | signature checks through aws-lc-rs |
//! | `rust-crypto` | no | signature checks through RustCrypto (aws-lc-rs wins when both are on) |
//! | `tonic` | no | gRPC rejections and per-method scopes |
//! | `redis` | no | [`RedisStore`]: state shared by replicas in Redis or Valkey, the shared introspection cache [`store::RedisIntrospectionCache`] and DPoP replay store [`store::RedisReplayStore`] |
//! | `test-util` | no | [`testing::TestIssuer`]: a local issuer on loopback that mints tokens, for an application's own tests |
//!
//! # Security notes
//!
//! - An issuer and an audience are always required; `iss` must match exactly and `aud`
//!   must contain a configured audience. `exp` is required; `nbf` and `iat` may not lie in
//!   the future; the leeway is 30 s by default and at most 5 minutes.
//! - Only asymmetric algorithms exist in [`Algorithm`]: `none` and HMAC cannot be
//!   configured. Each key accepts only the algorithms of its type (and its `alg`), narrowed
//!   by the allowlist; RSA keys under 2048 bits, keys with private members, keys not for
//!   signatures are skipped.
//! - Keys are only ever taken from the issuer's own JWK Set by exact `kid` (a token without
//!   `kid` is tried against at most 4 keys that fit its `alg`): the header's `jku`, `x5u`,
//!   `jwk` and `x5c` are ignored. `crit`, `b64`, JWE headers and token types
//!   other than access tokens (`typ`) are rejected.
//! - A token with `cnf` is accepted only with its proof of possession: `cnf.jkt` needs a
//!   DPoP proof by that key (a bound token sent as `Bearer` is refused as a downgrade),
//!   `cnf["x5t#S256"]` the matching client certificate; any other `cnf` member is refused.
//!   Proofs: asymmetric allowlisted `alg` only, a public `jwk` only, `htm`/`htu`/`ath` must
//!   match, `iat` within 2 minutes (10 s leeway), each `jti` accepted once (a bounded
//!   in-process store by default; a full or failing store answers `503`, never accepts).
//! - Introspection requires an audience too and refuses answers without `aud` (unless
//!   `dangerous_accept_any_audience` / `dangerous_accept_missing_audience`, which apply only
//!   to answers typed as access tokens), accepts only `active: true` and refuses refresh
//!   tokens by every common marker (see [`IntrospectionBuilder::dangerous_accept_missing_audience`]);
//!   a `cnf` in the answer binds the token as in a JWT (RFC 9449 §6.2). After repeated
//!   endpoint failures it stops calling for a back-off and answers `503`.
//! - A resource with a canonical URI (RFC 9728, RFC 8707, MCP) accepts only tokens for it
//!   when that URI is its only audience: see [`metadata`].
//! - With several issuers, the token's `iss` picks the issuer before any key is looked
//!   at, and only that issuer's keys can verify it. An issuer template matches only its
//!   exact shape with a GUID or DNS-name tenant, and only when `tid` names that tenant.
//! - Outbound calls (also through an application's own `http_client`) refuse redirects and
//!   non-`200` answers, time out (5 s) and cap bodies (1 MiB for discovery and key sets,
//!   64 KiB for introspection answers); issuer URLs must be `https` except on loopback.
//! - Tokens and secrets never appear in logs, `Debug` output or error bodies. Claim values
//!   never appear in portcullis' logs or error bodies, nor in a [`Principal`]'s `Debug`
//!   output; the claims type itself is the application's to print or not.
//! - Keys are fetched by tasks on the Tokio runtime; outside a runtime nothing is fetched.
//! - A JWT that passed every check is remembered (the whole token, compared in full on a
//!   hit) so the same token skips the signature check next time; its `exp`, `nbf` and
//!   `iat` are checked on every request and it is validated in full again once its key
//!   leaves the JWK Set. See [`JwtBuilder::token_cache`].
//!
//! [tower]: https://docs.rs/tower

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![forbid(unsafe_code)]

mod alg;
mod authenticate;
mod authorities;
mod base64url;
mod claims;
mod clock;
mod confirmation;
mod crypto;
mod discovery;
mod error;
mod http_client;
mod jwks;
mod layer;
mod metrics;
mod mtls;
mod principal;
mod readiness;
mod redact;
mod rejection;
mod service;
mod token;
mod trace;

#[cfg(test)]
mod proptests;

pub mod authz;
pub mod dpop;
pub mod future;
pub mod jwt;
pub mod metadata;
pub mod require;
pub mod scope;
pub mod step_up;

#[cfg(feature = "axum")]
pub mod extract;
#[cfg(feature = "tonic")]
pub mod grpc;
#[cfg(feature = "introspection")]
pub mod introspect;
#[cfg(feature = "redis")]
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;

pub use alg::Algorithm;
pub use authenticate::{Authenticate, Authentication, PendingAuthentication};
pub use authz::{Authorities, AuthoritySource, RequireAuthorityLayer, RequireRoleLayer};
pub use confirmation::Confirmation;
pub use error::{AuthError, ConfigError, ErrorKind};
pub use http_client::{DEFAULT_HTTP_TIMEOUT, DEFAULT_MAX_RESPONSE_BYTES};
#[cfg(feature = "introspection")]
pub use introspect::{ClientAuth, Introspection, IntrospectionBuilder, JwtOrIntrospection};
pub use jwks::{DEFAULT_JWKS_TTL, DEFAULT_MAX_STALE, DEFAULT_REFRESH_COOLDOWN};
pub use jwt::{DEFAULT_TOKEN_CACHE_CAPACITY, DEFAULT_TOKEN_CACHE_MAX_BYTES, Jwt, JwtBuilder};
pub use layer::BearerAuthLayer;
pub use mtls::ClientCertificate;
pub use principal::{Principal, RegisteredClaims, Scopes, UserAuthentication};
pub use readiness::{IssuerStatus, NotReady};
pub use rejection::{DEFAULT_REALM, HttpRejection, OnRejection};
pub use scope::{RequireScope, RequireScopeLayer, ScopePolicy};
pub use service::BearerAuth;
pub use step_up::{RequireStepUpLayer, StepUpPolicy};
#[cfg(feature = "redis")]
pub use store::RedisStore;
pub use token::DEFAULT_MAX_TOKEN_LEN;

#[doc(hidden)]
pub mod __doc_support {
    //! A public test key and a token it verifies, for the documentation examples, and the
    //! crypto backend selection for the crate's tests and benches. Not part of the API.

    /// Installs jsonwebtoken's crypto backend as portcullis selects it, for code that
    /// signs or builds keys with jsonwebtoken before any authenticator is built (the
    /// crate's own tests and benches).
    pub fn install_crypto_provider() {
        crate::crypto::install_provider();
    }

    /// A JWK Set with one RSA public key (`kid` `doc`).
    pub const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"doc","use":"sig","n":"iJ7q_3xSFQSkS7eeyptbSzlb7DiaJdlm9_GZlxfUtKz_1azP31wcc2xGrCrroiD0sz2pxjJBYdxbv-lke-1yeb5gfKCdR0ZobFyYEyu2QHbBjWNqf-m8fzf_NYoRl8QBdrSyJbNrbzrU5zH8DJA9PZoQ-q4JWG1Ens-dRRb_PUEYz_pQ-uVknVCgo-NsU6N7o5T1BTBiorKkAXy8XiRj87aAbaDAniMZkW9_rNMGYbr-LU7nSP3tkXQ-Eby8k3bmWiY3T6yi4oWQW1gBlAv9lytr2HVbjHTiCqKJRGJl-yjpcXNlCFubtaAZsVpUsWRujOj1cS5FE2VbKYzDbR6eAQ","e":"AQAB"}]}"#;

    /// A token for issuer `https://issuer.example.com`, audience `https://api.example.com`,
    /// subject `alice`, scope `read`, valid until 2100, signed by the key in [`JWKS`].
    pub const TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRvYyIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLmNvbSIsImF1ZCI6Imh0dHBzOi8vYXBpLmV4YW1wbGUuY29tIiwic3ViIjoiYWxpY2UiLCJzY29wZSI6InJlYWQiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.dpg_HGFH2NbTvr7lKUv0qMQjpU-YIa9pTL--TSCxJYZcvaZc0CCja9s4Lydg9s2aqUtDjIz6zAClUNWiaBMmH4-EPZiRQy1HGcVTEq8XDGqprEmUQJuqlrdVK_1GYgw2WSTpRsHTYO8O9cik1pw1rSH8DrXx_8IcUg2Jz6rahcPi1yZZt2sbhsDDQxOUL_kveO9k-ewsxC4mt-G1VjmybpxDPuF3Czh1oM_fHieu18WlmTvEUvscc1jlRaCZibzHlYRehwTe6nOv-WELtCEUFH9XwOyaY6AVO5ooGJPNm_v1K06RgfmXch-hMncTUl7hxhhh4AzCPphfWdYSLB5Q7A";

    /// A token like [`TOKEN`] for subject `bob`, without scopes, with `azp` `web-app`,
    /// `email_verified` `true` and the Keycloak-style realm roles `admin` and `user`
    /// (`realm_access.roles`).
    pub const ROLES_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImRvYyIsInR5cCI6ImF0K2p3dCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5leGFtcGxlLmNvbSIsImF1ZCI6Imh0dHBzOi8vYXBpLmV4YW1wbGUuY29tIiwic3ViIjoiYm9iIiwiYXpwIjoid2ViLWFwcCIsImVtYWlsX3ZlcmlmaWVkIjp0cnVlLCJyZWFsbV9hY2Nlc3MiOnsicm9sZXMiOlsiYWRtaW4iLCJ1c2VyIl19LCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.fqrJcEHyUE34nzd6X5uLTDnFf-NSsf88CvfE-wuj07unRRhDE3eQAChNzdm9jGVbxbaZ8sJOUVVXwvEje7RrgiXy4X7C_ljR9VUY6-t38O9AsIVANlgc3s6C6tJln5JTjufLMhAMREW2WhC9oYAAATiGxuNzx2-DOEnMmCOjY8kLUw1hbPOWvL6iLpAVSciyYG68MH7ZYzs6deaJIIrmPutNOTuSodbMqM302CtS5hzOZxYiB4wQ5F3iqjbN2SrUl3XBbQpdQiA5P1JoCCyw1SU2p69YwXcjH89HtNQWk8WhDBhhSGruFtSZ2KtLmJvgzIPW5LJYEfHpOgzbZN9yTQ";
}
