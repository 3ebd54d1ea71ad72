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
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{BearerAuthLayer, Jwt, RequireScopeLayer};
//! use tower::ServiceExt;
//! # use portcullis::__doc_support::{JWKS as jwks, TOKEN as token};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/items", get(|| async { "items" }))
//!     .route_layer(RequireScopeLayer::all(["read"]))
//!     .merge(
//!         Router::new()
//!             .route("/admin", get(|| async { "admin" }))
//!             .route_layer(RequireScopeLayer::all(["admin"])),
//!     )
//!     .layer(BearerAuthLayer::new(jwt));
//!
//! let get = |path: &str| {
//!     Request::get(path)
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(Body::empty())
//! };
//! // The token grants `read` only.
//! let items = app.clone().oneshot(get("/items")?).await?;
//! assert_eq!(items.status(), StatusCode::OK);
//! let admin = app.oneshot(get("/admin")?).await?;
//! assert_eq!(admin.status(), StatusCode::FORBIDDEN);
//! assert!(admin.headers()["www-authenticate"].to_str()?.contains(r#"scope="admin""#));
//! # Ok(())
//! # }
//! ```

mod layer;
mod policy;

pub use layer::{RequireScope, RequireScopeLayer};
pub use policy::ScopePolicy;
