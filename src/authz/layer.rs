use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::AuthorityPolicy;
use crate::authorities::Authorities;
use crate::{
    error::AuthError,
    future::ResponseFuture,
    rejection::{HttpRejection, OnRejection},
};

/// Requires roles or other authorities on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer) whose authenticator reads
/// [`AuthoritySource`](super::AuthoritySource)s.
///
/// A request without authorities in its extensions (no auth layer in front, or an
/// anonymous request under optional authentication) is answered `401`; a token that lacks
/// them, `403` (see [`AuthorityPolicy`]). Set the same `realm` or responder as on the
/// `BearerAuthLayer` here: [`realm`](Self::realm), [`on_rejection`](Self::on_rejection)
/// (`GrpcRejection` for tonic).
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireAuthorityLayer<R = HttpRejection> {
    policy: AuthorityPolicy,
    rejection: R,
}

/// [`RequireAuthorityLayer`] under the name most APIs use for it.
pub type RequireRoleLayer<R = HttpRejection> = RequireAuthorityLayer<R>;

impl RequireAuthorityLayer {
    /// Requires every authority in `names`.
    ///
    /// # Panics
    ///
    /// As [`AuthorityPolicy::all`]; build the policy with [`AuthorityPolicy::try_all`] and
    /// use [`new`](Self::new) for names read from configuration.
    #[track_caller]
    pub fn all<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(AuthorityPolicy::all(names))
    }

    /// Requires at least one authority in `names`.
    ///
    /// # Panics
    ///
    /// As [`AuthorityPolicy::any`].
    #[track_caller]
    pub fn any<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(AuthorityPolicy::any(names))
    }

    /// Requires `policy`, rejecting with [`HttpRejection`] (realm `api`).
    pub fn new(policy: AuthorityPolicy) -> Self {
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
}

impl<R> RequireAuthorityLayer<R> {
    /// Answers rejections with `rejection` instead. Default: [`HttpRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> RequireAuthorityLayer<R2> {
        RequireAuthorityLayer {
            policy: self.policy,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireAuthorityLayer<R> {
    type Service = RequireAuthority<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireAuthority {
            inner,
            policy: self.policy.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service of [`RequireAuthorityLayer`].
#[derive(Clone, Debug)]
pub struct RequireAuthority<S, R = HttpRejection> {
    inner: S,
    policy: AuthorityPolicy,
    rejection: R,
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for RequireAuthority<S, R>
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
        let verdict = match req.extensions().get::<Authorities>() {
            Some(granted) => self.policy.check(granted),
            None => Err(AuthError::missing_token()),
        };
        match verdict {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}
