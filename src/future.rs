//! The response future shared by the auth and scope services.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::{error::AuthError, rejection::OnRejection};

/// Authentication that needed I/O; yields the request with the principal inserted.
pub(crate) type Authenticating<ReqB> =
    Pin<Box<dyn Future<Output = Result<Request<ReqB>, AuthError>> + Send + 'static>>;

pin_project! {
    /// Response future of [`BearerAuth`](crate::BearerAuth) and
    /// [`RequireScope`](crate::RequireScope).
    pub struct ResponseFuture<S, ReqB, R>
    where
        S: Service<Request<ReqB>>,
    {
        #[pin]
        kind: Kind<S, ReqB, R>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<S, ReqB, R>
    where
        S: Service<Request<ReqB>>,
    {
        // The inner service was called.
        Called {
            #[pin]
            future: S::Future,
        },
        // Rejected before reaching the inner service.
        Rejected {
            response: Option<S::Response>,
        },
        // Waiting on I/O; then the inner service (the one polled ready) is called.
        Authenticating {
            authenticating: Authenticating<ReqB>,
            inner: Option<S>,
            rejection: R,
        },
    }
}

impl<S, ReqB, R> ResponseFuture<S, ReqB, R>
where
    S: Service<Request<ReqB>>,
{
    pub(crate) fn called(future: S::Future) -> Self {
        Self {
            kind: Kind::Called { future },
        }
    }

    pub(crate) fn rejected<ResB>(rejection: &mut R, error: AuthError) -> Self
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
        R: OnRejection<ResB>,
    {
        Self {
            kind: Kind::Rejected {
                response: Some(reject(rejection, error)),
            },
        }
    }

    pub(crate) fn authenticating(
        authenticating: Authenticating<ReqB>,
        inner: S,
        rejection: R,
    ) -> Self {
        Self {
            kind: Kind::Authenticating {
                authenticating,
                inner: Some(inner),
                rejection,
            },
        }
    }
}

/// The rejection response, with the error in its extensions; logged at DEBUG.
pub(crate) fn reject<ResB, R: OnRejection<ResB>>(
    rejection: &mut R,
    error: AuthError,
) -> Response<ResB> {
    #[cfg(feature = "tracing")]
    tracing::debug!(
        target: "portcullis::rejection",
        kind = ?error.kind(),
        status = error.status().as_u16(),
        reason = error.description(),
        required_scope = error.required_scope(),
        "request rejected"
    );
    crate::metrics::rejected(&error);
    let mut response = rejection.on_rejection(&error);
    response.extensions_mut().insert(error);
    response
}

impl<S, ReqB, R, ResB> Future for ResponseFuture<S, ReqB, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    R: OnRejection<ResB>,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            let next = match this.kind.as_mut().project() {
                KindProj::Called { future } => return future.poll(cx),
                KindProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response));
                }
                KindProj::Authenticating {
                    authenticating,
                    inner,
                    rejection,
                } => match ready!(authenticating.as_mut().poll(cx)) {
                    Ok(req) => {
                        let mut inner = inner
                            .take()
                            .expect("ResponseFuture polled after completion");
                        Kind::Called {
                            future: inner.call(req),
                        }
                    }
                    Err(error) => Kind::Rejected {
                        response: Some(reject(rejection, error)),
                    },
                },
            };
            this.kind.set(next);
        }
    }
}

impl<S, ReqB, R> fmt::Debug for ResponseFuture<S, ReqB, R>
where
    S: Service<Request<ReqB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.kind {
            Kind::Called { .. } => "Called",
            Kind::Rejected { .. } => "Rejected",
            Kind::Authenticating { .. } => "Authenticating",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
