use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::StepUpPolicy;
use crate::{
    error::AuthError,
    future::ResponseFuture,
    principal::UserAuthentication,
    rejection::{HttpRejection, OnRejection},
};

/// Requires a [`StepUpPolicy`] on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// A request without a validated token in front (no auth layer, or an anonymous request
/// under optional authentication) is answered `401` without `error`.
///
/// Its rejections are its own: set the same `realm`, `resource_metadata` or custom
/// responder as on the `BearerAuthLayer` with [`on_rejection`](Self::on_rejection).
#[derive(Clone, Debug)]
#[must_use]
pub struct RequireStepUpLayer<R = HttpRejection> {
    policy: StepUpPolicy,
    rejection: R,
}

impl RequireStepUpLayer {
    /// Requires `policy`, rejecting with [`HttpRejection`] (realm `api`).
    pub fn new(policy: StepUpPolicy) -> Self {
        Self {
            policy,
            rejection: HttpRejection::new(),
        }
    }
}

impl<R> RequireStepUpLayer<R> {
    /// Answers rejections with `rejection` instead, e.g. an [`HttpRejection`] with the
    /// realm and `resource_metadata` of the auth layer, or `GrpcRejection` (feature
    /// `tonic`). Default: [`HttpRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> RequireStepUpLayer<R2> {
        RequireStepUpLayer {
            policy: self.policy,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for RequireStepUpLayer<R> {
    type Service = RequireStepUp<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireStepUp {
            inner,
            policy: self.policy.clone(),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service of [`RequireStepUpLayer`].
#[derive(Clone, Debug)]
pub struct RequireStepUp<S, R = HttpRejection> {
    inner: S,
    policy: StepUpPolicy,
    rejection: R,
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for RequireStepUp<S, R>
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
        let verdict = match req.extensions().get::<UserAuthentication>() {
            Some(user) => self.policy.check(user),
            None => Err(AuthError::missing_token()),
        };
        match verdict {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}
