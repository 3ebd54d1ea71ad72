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
/// responder as on the `BearerAuthLayer` ([`realm`](Self::realm),
/// [`resource_metadata`](Self::resource_metadata), [`on_rejection`](Self::on_rejection)).
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

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, time::Duration};

    use tower::{ServiceExt, service_fn};

    use super::*;

    #[tokio::test]
    async fn the_layer_checks_the_user_authentication_the_auth_layer_left() {
        let policy = StepUpPolicy::builder()
            .acr_values(["mfa"])
            .max_age(Duration::from_secs(60))
            .build()
            .expect("policy");
        let service = RequireStepUpLayer::new(policy)
            .realm("notes")
            .resource_metadata("https://api.example.com/.well-known/oauth-protected-resource")
            .layer(service_fn(|_: Request<()>| async {
                Ok::<_, Infallible>(Response::new(()))
            }));
        let call = |user: Option<UserAuthentication>| {
            let mut request = Request::new(());
            if let Some(user) = user {
                request.extensions_mut().insert(user);
            }
            service.clone().oneshot(request)
        };
        let challenge = |r: &Response<()>| {
            r.headers()
                .get(http::header::WWW_AUTHENTICATE)
                .map(|v| v.to_str().expect("ascii").to_owned())
        };

        let strong = UserAuthentication::new(Some("mfa"), Some(std::time::SystemTime::now()));
        let ok = call(Some(strong)).await.expect("infallible");
        assert_eq!((ok.status().as_u16(), challenge(&ok)), (200, None));

        let weak = call(Some(UserAuthentication::new(Some("pwd"), None)))
            .await
            .expect("infallible");
        assert_eq!(weak.status(), 401);
        assert_eq!(
            challenge(&weak).as_deref(),
            Some(
                r#"Bearer realm="notes", error="insufficient_user_authentication", error_description="the user's authentication context does not satisfy this resource", acr_values="mfa", max_age="60", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#
            )
        );
        let error = weak.extensions().get::<AuthError>().expect("the error");
        assert_eq!(error.acr_values(), Some("mfa"));

        let anonymous = call(None).await.expect("infallible");
        assert_eq!(anonymous.status(), 401);
        assert_eq!(
            challenge(&anonymous).as_deref(),
            Some(
                r#"Bearer realm="notes", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource""#
            )
        );
    }
}
