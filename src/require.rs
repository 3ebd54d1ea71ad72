//! Per-route requirements checked after the auth layer: one layer and one service, generic
//! over what is required ([`Requirement`]): scopes (`RequireScopeLayer`), authorities
//! (`RequireAuthorityLayer`) or the user's authentication (`RequireStepUpLayer`), each an
//! alias of [`RequireLayer`] with its policy.
//!
//! ```
//! use axum::{Router, routing::get};
//! use portcullis::{BearerAuthLayer, Jwt, RequireScopeLayer};
//! # use portcullis::__doc_support::JWKS as jwks;
//!
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com")
//!     .build()?;
//! let app: Router = Router::new()
//!     .route("/orders", get(|| async { "orders" }))
//!     .route_layer(RequireScopeLayer::all(["orders:read"]).realm("orders"))
//!     .layer(BearerAuthLayer::new(jwt).realm("orders"));
//! # let _ = app;
//! # Ok::<(), portcullis::ConfigError>(())
//! ```

use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::AuthError,
    future::ResponseFuture,
    rejection::{HttpRejection, OnRejection},
};

pub(crate) mod sealed {
    pub trait Sealed {}
}

/// What a [`RequireLayer`] checks: a policy over one value the auth layer put into the
/// request's extensions. Implemented by the scope, authority and step-up policies; sealed.
pub trait Requirement: sealed::Sealed + Clone {
    /// The extension the policy reads (the granted scopes, authorities or user
    /// authentication).
    type Granted: Send + Sync + 'static;

    /// `Ok` when `granted` satisfies the policy; otherwise the rejection to answer with.
    fn check(&self, granted: &Self::Granted) -> Result<(), AuthError>;
}

/// Makes a policy with an inherent `check(&self, &Granted)` a [`Requirement`]; invoked next
/// to each policy, so that this module names none of them.
macro_rules! requirement {
    ($policy:ty, $granted:ty) => {
        impl $crate::require::sealed::Sealed for $policy {}

        impl $crate::require::Requirement for $policy {
            type Granted = $granted;

            fn check(&self, granted: &$granted) -> Result<(), $crate::error::AuthError> {
                <$policy>::check(self, granted)
            }
        }
    };
}
pub(crate) use requirement;

/// Requires a [`Requirement`] on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer). Usually named by its aliases:
/// `RequireScopeLayer`, `RequireAuthorityLayer` (`RequireRoleLayer`), `RequireStepUpLayer`.
///
/// A request without the value the policy reads in its extensions (no auth layer in front,
/// or an anonymous request under optional authentication) is answered `401`; one that does
/// not satisfy the policy gets the policy's rejection (`403 insufficient_scope`, `401
/// insufficient_user_authentication`, ...).
///
/// Its rejections are its own: a `realm`, `resource_metadata` or custom responder set on the
/// `BearerAuthLayer` does not carry over, so set the same ones here with
/// [`realm`](Self::realm), [`resource_metadata`](Self::resource_metadata) or
/// [`on_rejection`](Self::on_rejection) (`GrpcRejection` for tonic).
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireLayer<P, R = HttpRejection> {
    policy: P,
    rejection: R,
}

impl<P: Requirement> RequireLayer<P> {
    /// Requires `policy`, rejecting with [`HttpRejection`] (realm `api`).
    pub fn new(policy: P) -> Self {
        Self {
            policy,
            rejection: HttpRejection::new(),
        }
    }

    /// Sets the `realm` of the `WWW-Authenticate` challenge. Default: `api`.
    pub fn realm(mut self, realm: &str) -> Self {
        self.rejection = self.rejection.realm(realm);
        self
    }

    /// Names the resource's RFC 9728 metadata URL in every challenge
    /// ([`HttpRejection::resource_metadata`]). Default: none.
    pub fn resource_metadata(mut self, url: &str) -> Self {
        self.rejection = self.rejection.resource_metadata(url);
        self
    }
}

impl<P, R> RequireLayer<P, R> {
    /// Answers rejections with `rejection` instead, e.g. an [`HttpRejection`] with the
    /// realm and `resource_metadata` of the auth layer, or `GrpcRejection` (feature
    /// `tonic`). Default: [`HttpRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> RequireLayer<P, R2> {
        RequireLayer {
            policy: self.policy,
            rejection,
        }
    }
}

impl<P, R> RequireLayer<P, R> {
    /// The same layer with its policy turned into another by `f`.
    pub(crate) fn map_policy<P2>(self, f: impl FnOnce(P) -> P2) -> RequireLayer<P2, R> {
        RequireLayer {
            policy: f(self.policy),
            rejection: self.rejection,
        }
    }
}

impl<S, P: Clone, R: Clone> Layer<S> for RequireLayer<P, R> {
    type Service = Require<S, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        Require {
            inner,
            policy: self.policy.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service of [`RequireLayer`].
#[derive(Clone, Debug)]
pub struct Require<S, P, R = HttpRejection> {
    inner: S,
    policy: P,
    rejection: R,
}

impl<S, P, R, ReqB, ResB> Service<Request<ReqB>> for Require<S, P, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    P: Requirement,
    R: OnRejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let verdict = match req.extensions().get::<P::Granted>() {
            Some(granted) => self.policy.check(granted),
            None => Err(AuthError::missing_token()),
        };
        match verdict {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}
