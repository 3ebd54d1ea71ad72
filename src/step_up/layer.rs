use super::StepUpPolicy;
use crate::{
    rejection::HttpRejection,
    require::{Require, RequireLayer},
};

crate::require::requirement!(StepUpPolicy, crate::principal::UserAuthentication);

/// Requires a [`StepUpPolicy`] on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// A request without a validated token in front (no auth layer, or an anonymous request
/// under optional authentication) is answered `401` without `error`.
///
/// Its rejections are its own: set the same `realm`, `resource_metadata` or custom
/// responder as on the `BearerAuthLayer` ([`realm`](Self::realm),
/// [`resource_metadata`](Self::resource_metadata), [`on_rejection`](Self::on_rejection)).
pub type RequireStepUpLayer<R = HttpRejection> = RequireLayer<StepUpPolicy, R>;

/// The service of [`RequireStepUpLayer`].
pub type RequireStepUp<S, R = HttpRejection> = Require<S, StepUpPolicy, R>;

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, time::Duration};

    use http::{Request, Response};
    use tower::{Layer, ServiceExt, service_fn};

    use super::*;
    use crate::{error::AuthError, principal::UserAuthentication};

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
