//! The test helpers of feature `test-util`: a [`TestIssuer`] on loopback, through a real
//! `Jwt` (discovery, key fetch, key cache) behind the real layer in an axum application.

use std::time::{Duration, SystemTime};

use axum::{
    Json, Router,
    body::Body,
    http::{Request, StatusCode, header},
    routing::get,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis::{
    AuthError, BearerAuthLayer, ErrorKind, Jwt, Principal, RequireScopeLayer,
    testing::{TestIssuer, TestIssuerError},
};
use serde::Serialize;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const AUDIENCE: &str = "https://api.example.com";
/// Upper bound for any single request.
const BOUND: Duration = Duration::from_secs(5);

/// The principal's subject, issuer, scopes and full claims.
async fn me(principal: Principal<Value>) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "iss": principal.issuer(),
        "scopes": principal.scopes().iter().collect::<Vec<_>>(),
        "claims": principal.claims(),
    }))
}

/// `/me` for any valid token, `/orders` for scope `orders:read`.
fn app(jwt: Jwt<Value>) -> Router {
    let orders = Router::new()
        .route("/orders", get(|| async { "orders" }))
        .route_layer(RequireScopeLayer::all(["orders:read"]));
    Router::new()
        .route("/me", get(me))
        .merge(orders)
        .layer(BearerAuthLayer::new(jwt))
}

async fn started() -> TestIssuer {
    TestIssuer::start().await.expect("the test issuer starts")
}

fn jwt_for(issuer: &TestIssuer) -> Jwt<Value> {
    issuer
        .jwt()
        .audience(AUDIENCE)
        .claims::<Value>()
        .build()
        .expect("valid configuration")
}

struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    error: Option<AuthError>,
    body: Value,
}

async fn call(app: &Router, path: &str, token: &str) -> Answer {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = tokio::time::timeout(BOUND, app.clone().oneshot(request))
        .await
        .expect("the request finished in time")
        .expect("axum routers are infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
    Answer {
        status: parts.status,
        challenge: parts
            .headers
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("ASCII challenge").to_owned()),
        error: parts.extensions.get::<AuthError>().cloned(),
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// Asserts a 401 `invalid_token` refusal for `reason` (the server-side description).
fn assert_invalid_token(answer: &Answer, reason: &str) {
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let challenge = answer
        .challenge
        .as_deref()
        .expect("a WWW-Authenticate header");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "challenge: {challenge}"
    );
    let error = answer.error.as_ref().expect("the AuthError in extensions");
    assert_eq!(error.kind(), ErrorKind::InvalidToken);
    assert_eq!(error.description(), reason);
}

/// The decoded JOSE header and claims of a compact JWS.
fn decode(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut segment = || {
        let text = parts.next().expect("a JWS segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(text).expect("base64url")).expect("JSON")
    };
    let header = segment();
    let claims = segment();
    assert_eq!(token.split('.').count(), 3);
    (header, claims)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

#[tokio::test]
async fn minted_token_is_accepted_with_its_subject_scopes_and_extra_claims() {
    #[derive(Serialize)]
    struct Tenant {
        tenant: &'static str,
        plan: &'static str,
    }
    let issuer = started().await;
    let app = app(jwt_for(&issuer));
    let token = issuer
        .token()
        .subject("alice")
        .audience(AUDIENCE)
        .scopes(["orders:read", "orders:write"])
        .claim("roles", ["admin", "auditor"])
        .claims(Tenant {
            tenant: "acme",
            plan: "gold",
        })
        .sign();

    let me = call(&app, "/me", &token).await;
    assert_eq!(me.status, StatusCode::OK, "error: {:?}", me.error);
    assert_eq!(me.body["sub"], "alice");
    assert_eq!(me.body["iss"], issuer.issuer());
    assert_eq!(me.body["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(me.body["claims"]["roles"], json!(["admin", "auditor"]));
    assert_eq!(me.body["claims"]["tenant"], "acme");
    assert_eq!(me.body["claims"]["plan"], "gold");

    let orders = call(&app, "/orders", &token).await;
    assert_eq!(orders.status, StatusCode::OK);

    // The same issuer without the scope: the route's scope policy answers 403.
    let no_scope = issuer.token().subject("bob").audience(AUDIENCE).sign();
    let orders = call(&app, "/orders", &no_scope).await;
    assert_eq!(orders.status, StatusCode::FORBIDDEN);
    assert!(
        orders
            .challenge
            .as_deref()
            .is_some_and(|c| c.contains(r#"scope="orders:read""#))
    );
}

#[tokio::test]
async fn token_header_and_default_claims_follow_rfc_9068() {
    let issuer = started().await;
    let before = now();
    let token = issuer.token().subject("alice").audience(AUDIENCE).sign();
    let (header, claims) = decode(&token);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], issuer.key_id().as_str());
    assert_eq!(claims["iss"], issuer.issuer());
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], AUDIENCE);
    assert!(claims.get("scope").is_none());
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert!((before..=now()).contains(&iat));
    assert_eq!(exp - iat, 3600);
    let jti = claims["jti"].as_str().expect("jti");
    let (_, other) = decode(&issuer.token().sign());
    assert_ne!(
        other["jti"].as_str(),
        Some(jti),
        "each token has its own jti"
    );

    // A Jwt requiring RFC 9068's `typ` accepts it; a `typ` of `JWT` is then refused.
    let strict = issuer
        .jwt()
        .audience(AUDIENCE)
        .strict_rfc9068(true)
        .claims::<Value>()
        .build()
        .expect("valid configuration");
    let app = app(strict);
    assert_eq!(call(&app, "/me", &token).await.status, StatusCode::OK);
    let plain = issuer
        .token()
        .subject("alice")
        .audience(AUDIENCE)
        .typ(Some("JWT"))
        .sign();
    assert_eq!(decode(&plain).0["typ"], "JWT");
    assert_eq!(
        call(&app, "/me", &plain).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn several_audiences_are_an_array_and_any_configured_one_is_enough() {
    let issuer = started().await;
    let app = app(jwt_for(&issuer));
    let token = issuer
        .token()
        .subject("alice")
        .audiences(["https://other.example.com", AUDIENCE])
        .sign();
    assert_eq!(
        decode(&token).1["aud"],
        json!(["https://other.example.com", AUDIENCE])
    );
    assert_eq!(call(&app, "/me", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let issuer = started().await;
    let app = app(jwt_for(&issuer));
    let token = issuer
        .token()
        .subject("alice")
        .audience("https://another-api.example.com")
        .sign();
    let answer = call(&app, "/me", &token).await;
    assert_invalid_token(&answer, "the token is not meant for this audience");
}

#[tokio::test]
async fn expired_token_is_refused() {
    let issuer = started().await;
    let app = app(jwt_for(&issuer));
    let token = issuer
        .token()
        .subject("alice")
        .audience(AUDIENCE)
        .expired()
        .sign();
    let claims = decode(&token).1;
    let exp = claims["exp"].as_i64().expect("exp");
    assert!(exp <= now() - 3600 + 1, "expired an hour ago");
    assert!(claims["iat"].as_i64().expect("iat") < exp);
    let answer = call(&app, "/me", &token).await;
    assert_invalid_token(&answer, "the token has expired");

    // A token that expires in one second is accepted now and refused once it has expired
    // beyond the leeway, set to one second here.
    let jwt = issuer
        .jwt()
        .audience(AUDIENCE)
        .leeway(Duration::from_secs(1))
        .claims::<Value>()
        .build()
        .expect("valid configuration");
    let short_app = self::app(jwt);
    let short = issuer
        .token()
        .audience(AUDIENCE)
        .expires_in(Duration::from_secs(1))
        .sign();
    assert_eq!(call(&short_app, "/me", &short).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_invalid_token(
        &call(&short_app, "/me", &short).await,
        "the token has expired",
    );
}

#[tokio::test]
async fn future_not_before_is_refused() {
    let issuer = started().await;
    let app = app(jwt_for(&issuer));
    let token = issuer
        .token()
        .subject("alice")
        .audience(AUDIENCE)
        .not_before_in(Duration::from_secs(600))
        .sign();
    let nbf = decode(&token).1["nbf"].as_i64().expect("nbf");
    assert!(nbf >= now() + 599);
    assert_invalid_token(
        &call(&app, "/me", &token).await,
        "the token is not valid yet",
    );

    // An `nbf` in the past is fine.
    let token = issuer
        .token()
        .audience(AUDIENCE)
        .not_before(SystemTime::now() - Duration::from_secs(60))
        .sign();
    assert_eq!(call(&app, "/me", &token).await.status, StatusCode::OK);
}

#[tokio::test]
async fn token_of_another_local_issuer_is_refused() {
    let issuer = started().await;
    let other = started().await;
    assert_ne!(issuer.issuer(), other.issuer());
    assert_ne!(issuer.key_id(), other.key_id());
    let app = app(jwt_for(&issuer));

    // The other issuer's own token: its `iss` is not trusted here.
    let foreign = other.token().subject("alice").audience(AUDIENCE).sign();
    assert_invalid_token(
        &call(&app, "/me", &foreign).await,
        "the token's issuer is not trusted",
    );

    // The other issuer's key claiming to be this issuer: no key of this issuer verifies it.
    let forged = other
        .token()
        .subject("alice")
        .audience(AUDIENCE)
        .claim("iss", issuer.issuer())
        .sign();
    assert_eq!(decode(&forged).1["iss"], issuer.issuer());
    assert_invalid_token(
        &call(&app, "/me", &forged).await,
        "no trusted key matches the token",
    );

    // A genuine token still passes afterwards.
    let genuine = issuer.token().subject("alice").audience(AUDIENCE).sign();
    assert_eq!(call(&app, "/me", &genuine).await.status, StatusCode::OK);
}

#[tokio::test]
async fn served_documents_hold_the_issuer_and_only_public_key_material() {
    let issuer = started().await;
    let client = reqwest::Client::new();
    let get = |url: String| {
        let client = client.clone();
        async move {
            let response = client.get(url).send().await.expect("GET");
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"].to_str().expect("ASCII"),
                "application/json"
            );
            response.json::<Value>().await.expect("JSON")
        }
    };
    let discovery = get(format!(
        "{}/.well-known/openid-configuration",
        issuer.issuer()
    ))
    .await;
    assert_eq!(discovery["issuer"], issuer.issuer());
    let jwks_uri = discovery["jwks_uri"].as_str().expect("jwks_uri").to_owned();
    assert_eq!(Some(jwks_uri.clone()), issuer.jwks_uri());
    let rfc8414 = get(format!(
        "{}/.well-known/oauth-authorization-server",
        issuer.issuer()
    ))
    .await;
    assert_eq!(rfc8414, discovery);

    issuer.rotate_key().expect("rotation");
    let jwks = get(jwks_uri).await;
    let served: Value = serde_json::from_str(&issuer.jwks()).expect("JSON");
    assert_eq!(jwks, served);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "the current and the previous key");
    for key in keys {
        let mut members: Vec<&str> = key
            .as_object()
            .expect("a JWK")
            .keys()
            .map(String::as_str)
            .collect();
        members.sort_unstable();
        assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
        assert!(key.get("d").is_none());
        assert_eq!(key["kty"], "EC");
        assert_eq!(key["crv"], "P-256");
    }
    assert_eq!(keys[0]["kid"], issuer.key_id().as_str());

    // Anything else: 404; anything but GET/HEAD: 405.
    let missing = client
        .get(format!("{}/token", issuer.issuer()))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    let post = client
        .post(issuer.jwks_uri().expect("served"))
        .send()
        .await
        .expect("POST");
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn rotated_keys_are_fetched_and_retired_keys_stop_verifying() {
    let issuer = started().await;
    let jwt = issuer
        .jwt()
        .audience(AUDIENCE)
        .jwks_refresh_cooldown(Duration::ZERO)
        .claims::<Value>()
        .build()
        .expect("valid configuration");
    let app = app(jwt.clone());
    let old = issuer.token().subject("alice").audience(AUDIENCE).sign();
    assert_eq!(call(&app, "/me", &old).await.status, StatusCode::OK);
    let old_kid = issuer.key_id();

    issuer.rotate_key().expect("rotation");
    assert_ne!(issuer.key_id(), old_kid);
    let new = issuer.token().subject("alice").audience(AUDIENCE).sign();
    assert_eq!(decode(&new).0["kid"], issuer.key_id().as_str());
    // The unknown `kid` makes the Jwt fetch the keys again.
    assert_eq!(call(&app, "/me", &new).await.status, StatusCode::OK);
    assert_eq!(call(&app, "/me", &old).await.status, StatusCode::OK);

    issuer.retire_old_keys();
    let published: Value = serde_json::from_str(&issuer.jwks()).expect("JSON");
    assert_eq!(published["keys"].as_array().map(Vec::len), Some(1));
    jwt.refresh().await.expect("keys fetched again");
    assert_invalid_token(
        &call(&app, "/me", &old).await,
        "no trusted key matches the token",
    );
    assert_eq!(call(&app, "/me", &new).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_issuer_without_server_works_through_its_static_key_set() {
    let issuer = TestIssuer::without_server("https://issuer.test").expect("key generated");
    assert_eq!(issuer.issuer(), "https://issuer.test");
    assert_eq!(issuer.jwks_uri(), None);
    let app = app(jwt_for(&issuer));
    let token = issuer.token().subject("carol").audience(AUDIENCE).sign();
    let me = call(&app, "/me", &token).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["sub"], "carol");
    assert_eq!(me.body["iss"], "https://issuer.test");

    let other = TestIssuer::without_server("https://issuer.test").expect("key generated");
    let foreign = other.token().subject("carol").audience(AUDIENCE).sign();
    assert_invalid_token(
        &call(&app, "/me", &foreign).await,
        "no trusted key matches the token",
    );
}

#[tokio::test]
async fn dropping_the_issuer_stops_its_server() {
    let issuer = started().await;
    let addr = issuer
        .issuer()
        .strip_prefix("http://")
        .expect("an http issuer")
        .to_owned();
    // An open keep-alive connection from a client, too.
    let client = reqwest::Client::new();
    let jwks_uri = issuer.jwks_uri().expect("served");
    assert_eq!(
        client.get(&jwks_uri).send().await.expect("GET").status(),
        200
    );

    drop(issuer);
    let deadline = tokio::time::Instant::now() + BOUND;
    loop {
        let refused = tokio::net::TcpStream::connect(&addr).await.is_err();
        let pooled_failed = client.get(&jwks_uri).send().await.is_err();
        if refused && pooled_failed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server still answers after the issuer was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_claim_that_does_not_serialize_fails_signing() {
    let issuer = TestIssuer::without_server("https://issuer.test").expect("key generated");
    let error: TestIssuerError = issuer
        .token()
        .claims(["not", "an", "object"])
        .try_sign()
        .expect_err("an array is no claim set");
    assert_eq!(error.to_string(), "claims must serialize to a JSON object");

    // A map with non-string keys cannot become JSON.
    let bad = std::collections::BTreeMap::from([((1, 2), "value")]);
    let error = issuer
        .token()
        .claim("bad", bad)
        .try_sign()
        .expect_err("not serializable");
    assert_eq!(error.to_string(), "a claim does not serialize");
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn debug_output_shows_no_key_material() {
    let issuer = TestIssuer::without_server("https://issuer.test").expect("key generated");
    let shown = format!("{issuer:?}");
    assert!(shown.contains("https://issuer.test"), "{shown}");
    assert!(shown.contains(&issuer.key_id()), "{shown}");
    let published: Value = serde_json::from_str(&issuer.jwks()).expect("JSON");
    // Not even the public coordinates; the private scalar is never reachable.
    let x = published["keys"][0]["x"].as_str().expect("x");
    assert!(!shown.contains(x), "{shown}");
    let token = issuer.token().subject("alice");
    assert!(!format!("{token:?}").contains("alice"));
}
