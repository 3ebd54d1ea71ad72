use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_service::Service;

use crate::{
    authenticate::{Authenticate, Authentication},
    dpop::{PendingReplay, Presented},
    error::AuthError,
    future::{Authenticating, ResponseFuture},
    principal::Principal,
    rejection::{HttpRejection, OnRejection},
    scope::ScopePolicy,
    token::{Scheme, TokenSource},
    trace::AuthSpan,
};

/// Settings shared by every clone of the service.
#[derive(Clone, Debug, Default)]
pub(crate) struct Config {
    pub(crate) source: TokenSource,
    pub(crate) optional: bool,
    pub(crate) required: Option<ScopePolicy>,
    pub(crate) dpop: crate::dpop::DpopConfig,
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
        crate::metrics::accepted(principal.issuer_shared());
        span.record(Ok((principal.issuer(), principal.key_id())));
        let extensions = req.extensions_mut();
        extensions.insert(principal.scopes().clone());
        extensions.insert(principal.user_authentication().clone());
        extensions.insert(principal.authorities().clone());
        extensions.insert(principal);
        Ok(())
    }
}

/// The end of an authentication that waited: the request, or the refusal recorded in the
/// span and decorated for DPoP.
fn settle<ReqB>(
    admitted: Result<(), AuthError>,
    req: Request<ReqB>,
    config: &Config,
    span: &AuthSpan,
    scheme: Scheme,
) -> Result<Request<ReqB>, AuthError> {
    admitted.map(|()| req).map_err(|error| {
        span.record(Err(&error));
        config.dpop.decorate(error, scheme)
    })
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
        let config = &self.config;
        let timer = crate::metrics::Timer::start();
        let span = AuthSpan::new();
        let (authentication, scheme, presented) =
            match config.source.credentials(req.headers(), req.uri()) {
                // The DPoP proof is checked against the request before the token: both are
                // decided on the spot.
                Ok(Some((token, scheme))) => match config.dpop.prepare(&req, &token, scheme) {
                    Ok(presented) => (
                        span.in_scope(|| self.auth.authenticate(&token)),
                        scheme,
                        Some(presented),
                    ),
                    Err(error) => (Authentication::Ready(Err(error)), scheme, None),
                },
                // A layer-wide scope requirement applies to anonymous requests too: they have none.
                Ok(None) if config.optional && config.required.is_none() => {
                    return ResponseFuture::called(self.inner.call(req));
                }
                Ok(None) => (
                    Authentication::Ready(Err(AuthError::missing_token())),
                    Scheme::Bearer,
                    None,
                ),
                Err(error) => (Authentication::Ready(Err(error)), Scheme::Bearer, None),
            };
        match authentication {
            Authentication::Ready(result) => {
                timer.stop();
                let confirmed = result.and_then(|principal| {
                    let pending = confirm(presented, &principal, &req, config)?;
                    Ok((principal, pending))
                });
                match confirmed {
                    Ok((principal, None)) => match config.admit(&mut req, principal, &span) {
                        Ok(()) => ResponseFuture::called(self.inner.call(req)),
                        Err(error) => {
                            span.record(Err(&error));
                            self.reject(error, scheme)
                        }
                    },
                    Ok((principal, Some(replay))) => {
                        let config = Arc::clone(config);
                        self.authenticating(Box::pin(async move {
                            let admitted = async {
                                replay.await?;
                                config.admit(&mut req, principal, &span)
                            }
                            .await;
                            settle(admitted, req, &config, &span, scheme)
                        }))
                    }
                    Err(error) => {
                        span.record(Err(&error));
                        self.reject(error, scheme)
                    }
                }
            }
            Authentication::Pending(pending) => {
                let config = Arc::clone(config);
                let pending = span.instrument(pending);
                self.authenticating(Box::pin(async move {
                    let admitted = async {
                        let principal = pending.await;
                        timer.stop();
                        let principal = principal?;
                        if let Some(replay) = confirm(presented, &principal, &req, &config)? {
                            replay.await?;
                        }
                        config.admit(&mut req, principal, &span)
                    }
                    .await;
                    settle(admitted, req, &config, &span, scheme)
                }))
            }
        }
    }
}

/// Checks the token's sender binding (DPoP key, client certificate) against the request.
fn confirm<C, ReqB>(
    presented: Option<Presented>,
    principal: &Principal<C>,
    req: &Request<ReqB>,
    config: &Config,
) -> Result<Option<PendingReplay>, AuthError> {
    match presented {
        Some(presented) => presented.confirm(principal, req.extensions(), &config.dpop),
        None => Ok(None),
    }
}

impl<S, A, R> BearerAuth<S, A, R> {
    fn reject<ReqB, ResB>(&mut self, error: AuthError, scheme: Scheme) -> ResponseFuture<S, ReqB, R>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        R: OnRejection<ResB>,
    {
        let error = self.config.dpop.decorate(error, scheme);
        ResponseFuture::rejected(&mut self.rejection, error)
    }

    fn authenticating<ReqB>(
        &mut self,
        authenticating: Authenticating<ReqB>,
    ) -> ResponseFuture<S, ReqB, R>
    where
        S: Service<Request<ReqB>> + Clone,
        R: Clone,
    {
        // The request leaves this call, so the service polled ready has to go with
        // it, leaving a clone behind. See "Be careful when cloning inner services":
        // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::authenticating(authenticating, ready, self.rejection.clone())
    }
}
