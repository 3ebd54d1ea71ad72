//! Step-up authentication (RFC 9470) end to end: tokens from the OpenID provider fixture,
//! with and without the `acr` a route needs and with an `auth_time` that ages, sent over
//! HTTP to an axum API guarded by portcullis; the client follows the challenge back to the
//! provider and comes back with a token that passes.
//!
//! Needs Node.js >= 20 and `npm ci --prefix tests/idp`.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{Json, Router, routing::get};
use portcullis::{
    Authenticate, BearerAuthLayer, Introspection, Jwt, Principal, RequireStepUpLayer, StepUpPolicy,
};
use reqwest::{StatusCode, header::WWW_AUTHENTICATE};
use serde_json::{Value, json};
use support::idp::{self, Idp, jwt_parts};
use tokio::net::TcpListener;

const MFA: &str = "urn:portcullis:mfa";
const PWD: &str = "urn:portcullis:pwd";
const MAX_AGE_SECS: u64 = 2;

/// `/me` (any token) answers the principal's `acr` and `auth_time`; `/admin` needs `acr`
/// [`MFA`]; `/recent` an authentication at most [`MAX_AGE_SECS`] old.
async fn serve<A>(auth: A) -> String
where
    A: Authenticate<Claims = portcullis::RegisteredClaims> + Clone + Send + Sync + 'static,
{
    async fn me(principal: Principal) -> Json<Value> {
        let user = principal.user_authentication();
        let auth_time = user
            .auth_time()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs());
        Json(json!({"acr": user.acr(), "auth_time": auth_time}))
    }
    let mfa = StepUpPolicy::builder()
        .acr_values([MFA])
        .build()
        .expect("policy");
    let recent = StepUpPolicy::builder()
        .max_age(Duration::from_secs(MAX_AGE_SECS))
        .build()
        .expect("policy");
    let app = Router::new()
        .route("/me", get(me))
        .merge(
            Router::new()
                .route("/admin", get(|| async { "admin" }))
                .route_layer(RequireStepUpLayer::new(mfa)),
        )
        .merge(
            Router::new()
                .route("/recent", get(|| async { "recent" }))
                .route_layer(RequireStepUpLayer::new(recent)),
        )
        .layer(BearerAuthLayer::new(auth));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// A token for `resource` after the user signed in with `acr_values` (none when empty).
async fn sign_in(idp: &Idp, resource: &str, acr_values: &str) -> String {
    let extra: Vec<(&str, &str)> = if acr_values.is_empty() {
        Vec::new()
    } else {
        vec![("acr_values", acr_values)]
    };
    let response = idp
        .authorization_code_response_with("alice", "openid read", resource, &extra)
        .await;
    response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("an access token: {response}"))
        .to_owned()
}

async fn fetch(url: &str, path: &str, token: &str) -> (StatusCode, Option<String>, String) {
    let response = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    (
        response.status(),
        challenge,
        response.text().await.unwrap_or_default(),
    )
}

/// The value of `name="…"` in a challenge.
fn param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let start = challenge.find(&format!("{name}=\""))? + name.len() + 2;
    let len = challenge[start..].find('"')?;
    Some(&challenge[start..start + len])
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn a_weak_or_missing_acr_gets_the_challenge_and_the_stepped_up_token_passes() {
    let idp = Idp::start().await;
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(idp::STEP_UP)
        .build()
        .expect("jwt");
    let url = serve(jwt).await;
    let challenge = r#"Bearer realm="api", error="insufficient_user_authentication", error_description="the user's authentication context does not satisfy this resource", acr_values="urn:portcullis:mfa""#;

    // No acr at all, then a weaker one than the route needs.
    for acr_values in ["", PWD] {
        let token = sign_in(&idp, idp::STEP_UP, acr_values).await;
        let (_, claims) = jwt_parts(&token);
        assert_eq!(
            claims.get("acr").and_then(Value::as_str),
            (!acr_values.is_empty()).then_some(acr_values),
            "{claims}"
        );
        let (status, _, body) = fetch(&url, "/me", &token).await;
        assert_eq!(status, StatusCode::OK);
        let me: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(me["acr"], claims["acr"].clone());
        assert_eq!(me["auth_time"], claims["auth_time"], "{claims}");
        assert!(me["auth_time"].as_u64().is_some_and(|t| t + 60 > now()));

        let (status, got, _) = fetch(&url, "/admin", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "acr {acr_values:?}");
        assert_eq!(got.as_deref(), Some(challenge), "acr {acr_values:?}");
    }

    // The client follows the challenge: it asks the provider for the acr values named there.
    let asked = param(challenge, "acr_values").expect("acr_values");
    let token = sign_in(&idp, idp::STEP_UP, asked).await;
    assert_eq!(jwt_parts(&token).1["acr"], MFA);
    let (status, got, body) = fetch(&url, "/admin", &token).await;
    assert_eq!(
        (status, got, body.as_str()),
        (StatusCode::OK, None, "admin")
    );
}

#[tokio::test]
async fn an_authentication_older_than_max_age_gets_the_challenge_until_the_user_signs_in_again() {
    let idp = Idp::start().await;
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(idp::STEP_UP)
        .build()
        .expect("jwt");
    let url = serve(jwt).await;

    let token = sign_in(&idp, idp::STEP_UP, "").await;
    assert_eq!(fetch(&url, "/recent", &token).await.0, StatusCode::OK);

    tokio::time::sleep(Duration::from_secs(MAX_AGE_SECS + 1)).await;
    // The token itself is still valid; only the authentication behind it is too old.
    assert_eq!(fetch(&url, "/me", &token).await.0, StatusCode::OK);
    let (status, challenge, _) = fetch(&url, "/recent", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(
            r#"Bearer realm="api", error="insufficient_user_authentication", error_description="the user's authentication is too old for this resource", max_age="2""#
        )
    );

    // A new sign-in (the fixture starts a new session per authorization) passes.
    let fresh = sign_in(&idp, idp::STEP_UP, "").await;
    assert!(jwt_parts(&fresh).1["auth_time"].as_u64() > jwt_parts(&token).1["auth_time"].as_u64());
    assert_eq!(fetch(&url, "/recent", &fresh).await.0, StatusCode::OK);
}

#[tokio::test]
async fn introspection_answers_carry_acr_and_auth_time_too() {
    let idp = Idp::start().await;
    let introspection = Introspection::builder()
        .issuer(&idp.issuer)
        .client_credentials(idp::RS_CLIENT_ID, idp::RS_CLIENT_SECRET)
        .audience(idp::STEP_UP_OPAQUE)
        .build()
        .expect("introspection");
    let url = serve(introspection).await;

    let weak = sign_in(&idp, idp::STEP_UP_OPAQUE, "").await;
    assert_eq!(weak.split('.').count(), 1, "an opaque token");
    let (status, challenge, _) = fetch(&url, "/admin", &weak).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref().and_then(|c| param(c, "error")),
        Some("insufficient_user_authentication")
    );

    let strong = sign_in(&idp, idp::STEP_UP_OPAQUE, MFA).await;
    let (status, _, body) = fetch(&url, "/me", &strong).await;
    assert_eq!(status, StatusCode::OK);
    let me: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(me["acr"], MFA);
    assert!(me["auth_time"].as_u64().is_some_and(|t| t + 60 > now()));
    assert_eq!(fetch(&url, "/admin", &strong).await.0, StatusCode::OK);
}
