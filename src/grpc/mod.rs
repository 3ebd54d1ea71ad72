//! gRPC (feature `tonic`): rejections as gRPC statuses, scopes per method, and the
//! principal in handlers.
//!
//! - [`BearerAuthLayer::grpc`](crate::BearerAuthLayer::grpc) answers every rejection with a
//!   [`GrpcRejection`]: a trailers-only response with `grpc-status` `16`
//!   `UNAUTHENTICATED` (missing, malformed or invalid token), `7` `PERMISSION_DENIED`
//!   (missing scope) or `14` `UNAVAILABLE` (issuer unreachable). The mode is chosen when
//!   the layer is built, never guessed from the request.
//! - [`MethodScopesLayer`] maps methods (`/package.Service/Method`) and whole services to
//!   [`ScopePolicy`](crate::ScopePolicy)s. **Unmapped methods are denied** unless
//!   [`allow_unmapped`](MethodScopesLayer::allow_unmapped) is set.
//! - [`MethodAuthoritiesLayer`] does the same with roles or other
//!   [`Authorities`](crate::Authorities) and [`AuthorityPolicy`](crate::authz::AuthorityPolicy)s.
//! - [`principal`] and [`scopes`] read what the auth layer put into a handler's
//!   `tonic::Request`.
//!
//! Both layers keep the inner service's error type and body, so they go straight into
//! tonic's `Server::builder().layer(…)`, where they wrap every service, health and
//! reflection included (map those too, or allow unmapped methods). A layer can also wrap a
//! single service before `add_service`: the services forward tonic's `NamedService`.
//!
//! # Example
//!
//! ```no_run
//! # mod proto {
//! #     include!(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/proto/inventory.v1.rs"));
//! # }
//! # use proto::{inventory_server::{Inventory, InventoryServer}, *};
//! use portcullis::{BearerAuthLayer, Jwt, Principal, ScopePolicy, grpc::{self, MethodScopesLayer}};
//! use tonic::{Request, Response, Status, transport::Server};
//!
//! struct Shop;
//!
//! #[tonic::async_trait]
//! impl Inventory for Shop {
//!     async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
//!         let principal: Principal = grpc::principal(&request)?;
//!         Ok(Response::new(Item {
//!             requested_by: principal.subject().unwrap_or_default().to_owned(),
//!             ..Item::default()
//!         }))
//!     }
//!     // …
//! #   type RestockStream = futures_util::stream::Empty<Result<RestockProgress, Status>>;
//! #   async fn restock(&self, _: Request<RestockRequest>) -> Result<Response<Self::RestockStream>, Status> {
//! #       Ok(Response::new(futures_util::stream::empty()))
//! #   }
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer("https://login.example.com/")
//!     .audience("https://api.example.com")
//!     .build()?;
//!
//! Server::builder()
//!     .layer(BearerAuthLayer::new(jwt).grpc())
//!     .layer(
//!         MethodScopesLayer::new()
//!             .method("/inventory.v1.Inventory/GetItem", ScopePolicy::all(["read"]))
//!             .method("/inventory.v1.Inventory/Restock", ScopePolicy::all(["write"])),
//!     )
//!     .add_service(InventoryServer::new(Shop))
//!     .serve("127.0.0.1:50051".parse()?)
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! The same layers around any tower service of `http::Request`s, without a network:
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response};
//! use portcullis::{BearerAuthLayer, Jwt, ScopePolicy, grpc::MethodScopesLayer};
//! use tonic::body::Body;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let jwks = portcullis::__doc_support::JWKS;
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//! let service = ServiceBuilder::new()
//!     .layer(BearerAuthLayer::new(jwt).grpc())
//!     .layer(MethodScopesLayer::new().method("/inventory.v1.Inventory/GetItem", ScopePolicy::all(["read"])))
//!     .service(service_fn(|_: Request<Body>| async {
//!         Ok::<_, Infallible>(Response::new(Body::default()))
//!     }));
//!
//! let request = Request::post("/inventory.v1.Inventory/GetItem")
//!     .header("content-type", "application/grpc")
//!     .body(Body::default())?;
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 200); // gRPC errors travel in a successful HTTP response
//! assert_eq!(response.headers()["content-type"], "application/grpc");
//! assert_eq!(response.headers()["grpc-status"], "16"); // UNAUTHENTICATED: no token
//! # Ok(())
//! # }
//! ```

mod authorities;
mod methods;

pub use crate::rejection::GrpcRejection;
pub use authorities::{MethodAuthorities, MethodAuthoritiesLayer};
pub use methods::{MethodPolicy, MethodPolicyLayer, MethodScopes, MethodScopesLayer};

use tonic::{Request, Status, server::NamedService};

use crate::{
    principal::{Principal, Scopes},
    require::Require,
    service::BearerAuth,
};

/// The message of the status [`principal`] and [`scopes`] fail with.
const MISSING_PRINCIPAL: &str = "no authenticated principal in the request: is the service \
     behind a BearerAuthLayer, with the same claims type?";

/// The principal the auth layer validated for `request`.
///
/// `C` must be the claims type of the authenticator, [`RegisteredClaims`](crate::RegisteredClaims)
/// by default, usually inferred from the binding: `let principal: Principal = …`.
///
/// # Errors
///
/// `INTERNAL` when the request carries no principal of that type: the service is not
/// behind a [`BearerAuthLayer`](crate::BearerAuthLayer), the claims type differs, or the
/// layer is [`optional`](crate::BearerAuthLayer::optional) and the caller sent no token
/// (read `request.extensions().get::<Principal<C>>()` there instead).
pub fn principal<C, T>(request: &Request<T>) -> Result<Principal<C>, Status>
where
    C: Send + Sync + 'static,
{
    request
        .extensions()
        .get::<Principal<C>>()
        .cloned()
        .ok_or_else(|| Status::internal(MISSING_PRINCIPAL))
}

/// The scopes granted to the token of `request`.
///
/// # Errors
///
/// `INTERNAL` when the request carries no validated scopes, as for [`principal`].
pub fn scopes<T>(request: &Request<T>) -> Result<Scopes, Status> {
    request
        .extensions()
        .get::<Scopes>()
        .cloned()
        .ok_or_else(|| Status::internal(MISSING_PRINCIPAL))
}

// A layer wrapping a single service keeps the name tonic routes by.

impl<S: NamedService, A, R> NamedService for BearerAuth<S, A, R> {
    const NAME: &'static str = S::NAME;
}

impl<S: NamedService, P, R> NamedService for Require<S, P, R> {
    const NAME: &'static str = S::NAME;
}

impl<S: NamedService, P, R> NamedService for MethodPolicy<S, P, R> {
    const NAME: &'static str = S::NAME;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{RegisteredClaims, UserAuthentication};

    #[test]
    fn handlers_read_the_principal_and_scopes() {
        let scopes = Scopes::from_space_delimited("read write");
        let alice = Principal::new(
            "https://issuer.example.com".into(),
            Some("alice".into()),
            scopes.clone(),
            None,
            UserAuthentication::default(),
            RegisteredClaims::default(),
        );
        let mut request = Request::new(());
        request.extensions_mut().insert(alice);
        request.extensions_mut().insert(scopes.clone());

        let found: Principal = principal(&request).expect("a principal");
        assert_eq!(found.subject(), Some("alice"));
        assert_eq!(super::scopes(&request).expect("scopes"), scopes);
    }

    #[test]
    fn a_missing_principal_is_an_internal_error() {
        let request = Request::new(());
        let status = principal::<RegisteredClaims, _>(&request).expect_err("no principal");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(status.message().contains("BearerAuthLayer"), "{status:?}");
        assert_eq!(
            scopes(&request).expect_err("no scopes").code(),
            tonic::Code::Internal
        );

        // Another claims type is not found either.
        let mut request = Request::new(());
        request.extensions_mut().insert(Principal::new(
            "https://issuer.example.com".into(),
            None,
            Scopes::default(),
            None,
            UserAuthentication::default(),
            RegisteredClaims::default(),
        ));
        assert!(principal::<serde_json::Value, _>(&request).is_err());
    }
}
