use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_service::Service;

use crate::{
    authenticate::{Authenticate, Authentication},
    error::AuthError,
    future::ResponseFuture,
    principal::Principal,
    rejection::{HttpRejection, OnRejection},
    scope::ScopePolicy,
    token::TokenSource,
    trace::AuthSpan,
};

/// Settings shared by every clone of the service.
#[derive(Clone, Debug, Default)]
pub(crate) struct Config {
    pub(crate) source: TokenSource,
    pub(crate) optional: bool,
    pub(crate) required: Option<ScopePolicy>,
}

/// The service of [`BearerAuthLayer`](crate::BearerAuthLayer).
#[derive(Clone, Debug)]
pub struct BearerAuth<S, A, R = HttpRejection> {
    inner: S,
    auth: A,
    config: Arc<Config>,
    rejection: R,
}

impl<S, A, R> BearerAuth<S, A, R> {
    pub(crate) fn new(inner: S, auth: A, config: Arc<Config>, rejection: R) -> Self {
        Self {
            inner,
            auth,
            config,
            rejection,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl Config {
    /// Applies the layer-wide scope policy, then hands the principal to the request.
    fn admit<ReqB, C: Send + Sync + 'static>(
        &self,
        req: &mut Request<ReqB>,
        principal: Principal<C>,
        span: &AuthSpan,
    ) -> Result<(), AuthError> {
        if let Some(policy) = &self.required {
            policy.check(principal.scopes())?;
        }
        crate::metrics::accepted(principal.issuer());
        span.record(Ok(principal.issuer()));
        let extensions = req.extensions_mut();
        extensions.insert(principal.scopes().clone());
        extensions.insert(principal.user_authentication().clone());
        extensions.insert(principal);
        Ok(())
    }
}

impl<S, A, R, ReqB, ResB> Service<Request<ReqB>> for BearerAuth<S, A, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    A: Authenticate,
    R: OnRejection<ResB> + Clone,
    ReqB: Send + 'static,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let timer = crate::metrics::Timer::start();
        let span = AuthSpan::new();
        let authentication = match self.config.source.extract(req.headers(), req.uri()) {
            Ok(Some(token)) => span.in_scope(|| self.auth.authenticate(&token)),
            // A layer-wide scope requirement applies to anonymous requests too: they have none.
            Ok(None) if self.config.optional && self.config.required.is_none() => {
                return ResponseFuture::called(self.inner.call(req));
            }
            Ok(None) => Authentication::Ready(Err(AuthError::missing_token())),
            Err(error) => Authentication::Ready(Err(error)),
        };
        match authentication {
            Authentication::Ready(result) => {
                timer.stop();
                match result.and_then(|principal| self.config.admit(&mut req, principal, &span)) {
                    Ok(()) => ResponseFuture::called(self.inner.call(req)),
                    Err(error) => {
                        span.record(Err(&error));
                        ResponseFuture::rejected(&mut self.rejection, error)
                    }
                }
            }
            Authentication::Pending(pending) => {
                // The request leaves this call, so the service polled ready has to go with
                // it, leaving a clone behind. See "Be careful when cloning inner services":
                // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let config = Arc::clone(&self.config);
                let pending = span.instrument(pending);
                let authenticating = Box::pin(async move {
                    let principal = pending.await;
                    timer.stop();
                    let admitted =
                        principal.and_then(|principal| config.admit(&mut req, principal, &span));
                    if let Err(error) = &admitted {
                        span.record(Err(error));
                    }
                    admitted.map(|()| req)
                });
                ResponseFuture::authenticating(authenticating, ready, self.rejection.clone())
            }
        }
    }
}
