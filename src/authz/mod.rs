//! Authorization beyond scopes: roles and permissions read from claim paths, and
//! conditions on claims.
//!
//! - [`AuthoritySource`]: where authorities come from — one or more claims, nested paths
//!   (Keycloak's `realm_access.roles`, `resource_access.<client>.roles`), Entra ID's app
//!   `roles`, Auth0's `permissions` — strings or arrays of strings, each source with an
//!   optional prefix. Configure them on the authenticator
//!   ([`JwtBuilder::authorities`](crate::JwtBuilder::authorities)); the merged
//!   [`Authorities`] are on the [`Principal`](crate::Principal) and in the request's
//!   extensions. The claims are read for them in one pass over the verified payload, and
//!   not at all when no source is configured. Scopes are unaffected.
//! - [`RequireAuthorityLayer`] (alias [`RequireRoleLayer`]): per-route `all`/`any` policies
//!   over them, as [`RequireScopeLayer`](crate::RequireScopeLayer) is over scopes. Under
//!   tonic, `grpc::MethodAuthoritiesLayer` (feature `tonic`) maps methods to policies.
//! - [`RequireClaimLayer`]: a claim with an exact value or from a set (`azp` allowlist, `tid`,
//!   `email_verified == true`), or any function over the typed claims.
//!
//! Both answer a token that does not pass with `403` and `error="insufficient_scope"`
//! (gRPC `PERMISSION_DENIED`): the token is valid, it only does not grant enough here, and a
//! fresh token would not change that. No `scope` attribute is sent, since no scope would help.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{
//!     BearerAuthLayer, Jwt,
//!     authz::{AuthoritySource, RequireClaimLayer, RequireRoleLayer},
//! };
//! use tower::ServiceExt;
//! # use portcullis::__doc_support::{JWKS as jwks, ROLES_TOKEN as token};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     // Keycloak-style realm roles, as `role:admin`, `role:user`, …
//!     .authorities(AuthoritySource::path("realm_access.roles").prefix("role:"))
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/admin", get(|| async { "admin" }))
//!     .route_layer(RequireRoleLayer::all(["role:admin"]))
//!     .merge(
//!         Router::new()
//!             .route("/billing", get(|| async { "billing" }))
//!             .route_layer(RequireRoleLayer::any(["role:billing", "role:owner"])),
//!     )
//!     .merge(
//!         Router::new()
//!             .route("/cli", get(|| async { "cli" }))
//!             .route_layer(RequireClaimLayer::one_of("azp", ["cli-tool"])),
//!     )
//!     .layer(BearerAuthLayer::new(jwt));
//!
//! let get = |path: &str| {
//!     Request::get(path)
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(Body::empty())
//! };
//! // The token has the realm roles `admin` and `user`, and `azp` `web-app`.
//! assert_eq!(app.clone().oneshot(get("/admin")?).await?.status(), StatusCode::OK);
//! assert_eq!(app.clone().oneshot(get("/billing")?).await?.status(), StatusCode::FORBIDDEN);
//! assert_eq!(app.oneshot(get("/cli")?).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```

mod claim;
mod layer;
mod policy;

pub use crate::authorities::{Authorities, AuthoritySource, MAX_AUTHORITIES};
pub use claim::{
    ClaimIn, ClaimLookup, ClaimPredicate, ClaimRequirement, RequireClaim, RequireClaimLayer,
};
pub use layer::{RequireAuthority, RequireAuthorityLayer, RequireRoleLayer};
pub use policy::AuthorityPolicy;
