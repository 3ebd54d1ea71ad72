//! The verified-token cache through the layer, against a real (in-process) issuer on
//! `127.0.0.1:0`: a remembered token is refused once it expires, once the key that
//! verified it leaves the JWK Set, and never answers for a token that differs from it.

mod support;

use std::time::Duration;

use axum::http::StatusCode;
use portcullis::{ErrorKind, Jwt};
use serde_json::json;
use support::issuer::{
    AUDIENCE, ISSUER, IssuerServer, TestKey, app, call, default_claims, jwks, mint, now,
};

#[tokio::test]
async fn a_remembered_token_is_refused_with_401_once_it_expires() {
    let key = TestKey::ed25519();
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .leeway(Duration::ZERO)
        .build()
        .expect("config");
    let app = app(jwt);
    let mut claims = default_claims(ISSUER, AUDIENCE);
    claims["exp"] = json!(now() + 2);
    let token = mint(&key, claims);

    for _ in 0..3 {
        let answer = call(&app, "/me", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
        assert_eq!(answer.json()["sub"], "user-1");
        assert_eq!(answer.json()["scopes"], json!(["read", "write"]));
        assert_eq!(answer.json()["principal_scopes"], json!(["read", "write"]));
    }
    // Past `exp` (whole seconds) with no leeway.
    tokio::time::sleep(Duration::from_millis(3_100)).await;
    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), Some("invalid_token"));
    assert_eq!(
        answer.error.as_ref().map(|e| e.kind()),
        Some(ErrorKind::InvalidToken)
    );
}

/// A `Jwt` fetching `server`'s key set with a refresh `cooldown`, its keys already loaded.
async fn warm_jwt(server: &IssuerServer, cooldown: Duration) -> Jwt {
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(server.issuer(), server.jwks_uri())
        .audience(AUDIENCE)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    jwt
}

#[tokio::test]
async fn a_key_removed_from_the_jwk_set_fails_its_remembered_tokens_on_next_use() {
    let leaving = TestKey::rsa_a().with_kid("leaving");
    let staying = TestKey::ec_p256().with_kid("staying");
    let server = IssuerServer::start(jwks(&[&leaving, &staying])).await;
    let cooldown = Duration::from_millis(100);
    let jwt = warm_jwt(&server, cooldown).await;
    let app = app(jwt.clone());
    let old = mint(&leaving, default_claims(server.issuer(), AUDIENCE));
    let kept = mint(&staying, default_claims(server.issuer(), AUDIENCE));
    for token in [&old, &kept, &old, &kept] {
        let answer = call(&app, "/me", Some(token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    }

    // The issuer revokes the key; the next fetch sees the set without it.
    server.set_jwks(jwks(&[&staying]));
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    jwt.refresh().await.expect("refetch");
    assert_eq!(server.jwks_hits(), 2);

    let answer = call(&app, "/me", Some(&old)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        answer.error
    );
    assert_eq!(answer.error_code(), Some("invalid_token"));
    // A token of the key that stayed is still accepted (and still remembered).
    let answer = call(&app, "/me", Some(&kept)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
}

#[tokio::test]
async fn a_key_that_changes_its_algorithms_fails_its_remembered_tokens() {
    // Same material and kid, but the issuer restricts it to PS256 from now on: a remembered
    // RS256 token must not outlive the change.
    let rs = TestKey::rsa_a().with_kid("k");
    let server = IssuerServer::start(jwks(&[&rs])).await;
    let cooldown = Duration::from_millis(100);
    let jwt = warm_jwt(&server, cooldown).await;
    let app = app(jwt.clone());
    let token = mint(&rs, default_claims(server.issuer(), AUDIENCE));
    assert_eq!(call(&app, "/me", Some(&token)).await.status, StatusCode::OK);

    let mut jwk = rs.jwk.clone();
    jwk["alg"] = json!("PS256");
    server.set_jwks(json!({ "keys": [jwk] }).to_string());
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    jwt.refresh().await.expect("refetch");

    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        answer.error
    );
}

#[tokio::test]
async fn tokens_that_differ_in_one_signature_byte_never_share_an_entry() {
    for key in [TestKey::rsa_a(), TestKey::ec_p256(), TestKey::ed25519()] {
        let jwt = Jwt::builder()
            .issuer_with_jwks(ISSUER, jwks(&[&key]))
            .audience(AUDIENCE)
            .build()
            .expect("config");
        let app = app(jwt);
        let token = mint(&key, default_claims(ISSUER, AUDIENCE));
        for _ in 0..2 {
            assert_eq!(call(&app, "/me", Some(&token)).await.status, StatusCode::OK);
        }
        // Change one character in the middle of the signature: one byte of it.
        let at = token.rfind('.').expect("three parts") + 12;
        let replacement = if token.as_bytes()[at] == b'Q' {
            "R"
        } else {
            "Q"
        };
        let forged = format!("{}{replacement}{}", &token[..at], &token[at + 1..]);
        assert_ne!(forged, token);
        for _ in 0..2 {
            let answer = call(&app, "/me", Some(&forged)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", key.alg);
            assert_eq!(answer.error_code(), Some("invalid_token"));
        }
        // The good token is still remembered and accepted.
        assert_eq!(call(&app, "/me", Some(&token)).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn with_the_cache_off_every_request_is_validated_in_full() {
    let leaving = TestKey::rsa_a().with_kid("leaving");
    let server = IssuerServer::start(jwks(&[&leaving])).await;
    let cooldown = Duration::from_millis(100);
    for builder in [
        Jwt::builder().token_cache(false),
        Jwt::builder().token_cache_capacity(0),
    ] {
        let jwt = builder
            .issuer_with_jwks_uri(server.issuer(), server.jwks_uri())
            .audience(AUDIENCE)
            .jwks_refresh_cooldown(cooldown)
            .build()
            .expect("config");
        jwt.refresh().await.expect("warm-up");
        let app = app(jwt);
        let token = mint(&leaving, default_claims(server.issuer(), AUDIENCE));
        for _ in 0..3 {
            let answer = call(&app, "/me", Some(&token)).await;
            assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
            assert_eq!(answer.json()["scopes"], json!(["read", "write"]));
        }
        tokio::time::sleep(cooldown + Duration::from_millis(50)).await;
    }
}
