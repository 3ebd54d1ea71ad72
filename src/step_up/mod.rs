//! Step-up authentication (RFC 9470): per-route requirements on *how* and *how recently*
//! the user authenticated, read from the token's `acr` and `auth_time`.
//!
//! The auth layer puts the token's [`UserAuthentication`](crate::UserAuthentication) into
//! the request's extensions; [`RequireStepUpLayer`] checks it against a [`StepUpPolicy`].
//! A token that falls short is a `401` with `error="insufficient_user_authentication"` and
//! the policy's `acr_values` and/or `max_age`, which the client turns into a new
//! authorization request (`acr_values`, `max_age`) so that the user authenticates again.
//! Under tonic (`GrpcRejection`), the answer is `UNAUTHENTICATED` with the same challenge
//! in the `www-authenticate` metadata.
//!
//! As with scopes, add the layer with axum's `route_layer`, one group per policy.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//!
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{BearerAuthLayer, Jwt, RequireStepUpLayer, StepUpPolicy};
//! use tower::ServiceExt;
//! # use portcullis::__doc_support::{JWKS as jwks, TOKEN as token};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//! let mfa = StepUpPolicy::builder()
//!     .acr_values(["urn:example:mfa"])
//!     .max_age(Duration::from_secs(300))
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/items", get(|| async { "items" }))
//!     .merge(
//!         Router::new()
//!             .route("/admin", get(|| async { "admin" }))
//!             .route_layer(RequireStepUpLayer::new(mfa)),
//!     )
//!     .layer(BearerAuthLayer::new(jwt));
//!
//! let get = |path: &str| {
//!     Request::get(path)
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(Body::empty())
//! };
//! assert_eq!(app.clone().oneshot(get("/items")?).await?.status(), StatusCode::OK);
//! // The token has no `acr`: the user must authenticate again, more strongly.
//! let admin = app.oneshot(get("/admin")?).await?;
//! assert_eq!(admin.status(), StatusCode::UNAUTHORIZED);
//! let challenge = admin.headers()["www-authenticate"].to_str()?;
//! assert!(challenge.contains(r#"error="insufficient_user_authentication""#));
//! assert!(challenge.contains(r#"acr_values="urn:example:mfa", max_age="300""#));
//! # Ok(())
//! # }
//! ```

mod layer;
mod policy;

pub use layer::{RequireStepUp, RequireStepUpLayer};
pub use policy::{StepUpPolicy, StepUpPolicyBuilder};
