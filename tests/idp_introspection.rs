//! Introspection against the real OpenID provider fixture (`tests/idp`): refresh tokens are
//! refused whatever the audience settings, and `private_key_jwt` client authentication is
//! accepted by the provider. Needs Node.js >= 20 and `npm ci --prefix tests/idp`.

mod support;

use portcullis::{Algorithm, Introspection, IntrospectionBuilder};
use support::{
    idp::{self, Idp},
    introspection::{app, assert_accepted, assert_invalid_token, assert_unavailable, send},
};

/// Issuer and endpoint of `idp`; no credentials, no audience yet.
fn builder(idp: &Idp) -> IntrospectionBuilder {
    Introspection::builder()
        .issuer(&idp.issuer)
        .endpoint(idp.introspection_endpoint())
}

#[tokio::test]
async fn a_refresh_token_is_refused_whatever_the_audience_waivers() {
    let idp = Idp::start().await;
    let tokens = idp
        .authorization_code_response("dave", "openid offline_access read", idp::OPAQUE)
        .await;
    let refresh = tokens["refresh_token"]
        .as_str()
        .unwrap_or_else(|| panic!("the provider issued no refresh token: {tokens}"));
    let access = tokens["access_token"].as_str().expect("an access token");

    // The provider vouches for the refresh token with nothing that names its type or its
    // audience: this is what the refusal has to go on.
    let answer = idp.introspect(refresh).await;
    assert_eq!(answer["active"], true, "{answer}");
    assert!(answer.get("token_type").is_none(), "{answer}");
    assert!(answer.get("aud").is_none(), "{answer}");

    let lenient = [
        builder(&idp).dangerous_accept_any_audience(true),
        builder(&idp)
            .audience(idp::OPAQUE)
            .dangerous_accept_missing_audience(true),
        builder(&idp)
            .dangerous_accept_any_audience(true)
            .dangerous_accept_missing_audience(true),
    ];
    for (i, config) in lenient.into_iter().enumerate() {
        let introspection = config
            .client_credentials(idp::RS_CLIENT_ID, idp::RS_CLIENT_SECRET)
            .build()
            .expect("a valid introspection configuration");
        let api = app(introspection);
        assert_invalid_token(
            &send(&api, "/me", refresh).await,
            &format!("configuration {i}: the refresh token"),
        );
        let me = assert_accepted(
            &send(&api, "/me", access).await,
            &format!("configuration {i}: the access token of the same grant"),
        );
        assert_eq!(me["sub"], "dave", "{me}");
    }
}

#[tokio::test]
async fn introspection_authenticates_with_private_key_jwt() {
    let idp = Idp::start().await;
    let introspection = builder(&idp)
        .audience(idp::OPAQUE)
        .client_private_key_jwt(
            idp::RS_JWT_CLIENT_ID,
            idp::RS_JWT_CLIENT_KEY,
            Algorithm::ES256,
            Some("rs-jwt".into()),
        )
        .build()
        .expect("a valid introspection configuration");
    let api = app(introspection);
    // Each call carries a fresh assertion: the provider refuses a replayed `jti`.
    for user in ["erin", "frank", "grace"] {
        let token = idp
            .authorization_code(user, "openid read", idp::OPAQUE)
            .await;
        let me = assert_accepted(&send(&api, "/me", &token).await, user);
        assert_eq!(me["sub"], user, "{me}");
    }

    // The provider checks the signature: another key is refused (the endpoint answers 401,
    // which the resource server reports as 503, not as the caller's fault).
    let wrong_key = include_str!("keys/ec-p256.pem");
    let introspection = builder(&idp)
        .audience(idp::OPAQUE)
        .client_private_key_jwt(idp::RS_JWT_CLIENT_ID, wrong_key, Algorithm::ES256, None)
        .build()
        .expect("a valid introspection configuration");
    let token = idp
        .authorization_code("heidi", "openid read", idp::OPAQUE)
        .await;
    assert_unavailable(&send(&app(introspection), "/me", &token).await, "wrong key");
}
