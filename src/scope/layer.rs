use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::ScopePolicy;
use crate::{
    error::AuthError,
    future::ResponseFuture,
    principal::Scopes,
    rejection::{HttpRejection, OnRejection},
};

/// Requires scopes on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// A request without validated scopes in its extensions (no auth layer in front, or an
/// anonymous request under optional authentication) is answered `401`.
///
/// Its rejections are its own: a `realm` or a custom responder set on the
/// `BearerAuthLayer` does not carry over, so set the same ones here with
/// [`realm`](Self::realm) or [`on_rejection`](Self::on_rejection).
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireScopeLayer<R = HttpRejection> {
    policy: ScopePolicy,
    rejection: R,
}

impl RequireScopeLayer {
    /// Requires every scope in `scopes`.
    ///
    /// # Panics
    ///
    /// On a policy that would require nothing, as [`ScopePolicy::all`]; for scopes read
    /// from configuration, use `RequireScopeLayer::new(ScopePolicy::try_all(…)?)`.
    #[track_caller]
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(ScopePolicy::all(scopes))
    }

    /// Requires at least one scope in `scopes`.
    ///
    /// # Panics
    ///
    /// As [`all`](Self::all).
    #[track_caller]
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(ScopePolicy::any(scopes))
    }

    /// Requires `policy`, rejecting with [`HttpRejection`] (realm `api`).
    pub fn new(policy: ScopePolicy) -> Self {
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

impl<R> RequireScopeLayer<R> {
    /// Answers rejections with `rejection` instead. Default: [`HttpRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> RequireScopeLayer<R2> {
        RequireScopeLayer {
            policy: self.policy,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireScopeLayer<R> {
    type Service = RequireScope<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScope {
            inner,
            policy: self.policy.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service of [`RequireScopeLayer`].
#[derive(Clone, Debug)]
pub struct RequireScope<S, R = HttpRejection> {
    inner: S,
    policy: ScopePolicy,
    rejection: R,
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for RequireScope<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    R: OnRejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let verdict = match req.extensions().get::<Scopes>() {
            Some(granted) => self.policy.check(granted),
            None => Err(AuthError::missing_token()),
        };
        match verdict {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}
