//! Per-route scope enforcement: [`RequireScopeLayer`] after the auth layer.
//!
//! The auth layer puts the token's [`Scopes`](crate::Scopes) into the request's extensions;
//! this layer checks them against a [`ScopePolicy`]. In axum, add it with `route_layer` so
//! unmatched routes still answer 404.
//!
//! axum's `Router::route_layer` wraps every route added *before* it. Give each scope its
//! own group, e.g. `Router::new().route(..).route_layer(read).merge(Router::new().route(..)
//! .route_layer(admin))`; for different scopes per method on one path, use
//! `get(h).route_layer(read).merge(post(h2).route_layer(write))`.
//!
//! # Example
//!
//! ```
//! use axum::{Router, routing::get};
//! use portcullis::{BearerAuthLayer, Jwt, RequireScopeLayer};
//! # let jwks = portcullis::__doc_support::JWKS;
//!
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/items", get(|| async { "items" }))
//!     .route_layer(RequireScopeLayer::all(["read"]))
//!     .route("/me", get(|| async { "me" }))
//!     .layer(BearerAuthLayer::new(jwt));
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

mod layer;
mod policy;

pub use layer::{RequireScope, RequireScopeLayer};
pub use policy::ScopePolicy;
