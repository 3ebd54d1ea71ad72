//! The findings of the outside audit, each tried the way the attacker tried it. Every test
//! here failed before its fix.

mod support;

use axum::http::StatusCode;
use portcullis::{Jwt, RequireScopeLayer, ScopePolicy};
use serde_json::{Value, json};
use support::{
    idp::{self, Idp, jwt_parts},
    issuer::{
        AUDIENCE, ISSUER, TestKey, app, call, default_claims, jwks, mint, mint_with_header,
        static_jwt,
    },
};

fn claims_with(extra: Value) -> Value {
    let mut claims = default_claims(ISSUER, AUDIENCE);
    for (name, value) in extra.as_object().expect("an object of claims") {
        claims[name] = value.clone();
    }
    claims
}

// ── Finding 2: empty scope requirements ────────────────────────────────────────────────────

#[test]
fn a_scope_policy_that_requires_nothing_is_refused_when_it_is_built() {
    // What an unset environment variable gives.
    let unset = std::env::var("PORTCULLIS_TEST_UNSET_SCOPE").unwrap_or_default();
    assert!(ScopePolicy::try_all([unset.as_str()]).is_err());
    assert!(ScopePolicy::try_any([" "]).is_err());
    let built = std::panic::catch_unwind(|| RequireScopeLayer::all([""]));
    assert!(
        built.is_err(),
        "RequireScopeLayer::all([\"\"]) must not build"
    );
}

// ── Finding 5: ID tokens as access tokens ──────────────────────────────────────────────────

#[tokio::test]
async fn tokens_marked_as_id_or_refresh_tokens_are_refused_unless_configured() {
    let key = TestKey::rsa_a();
    let plain = |key: &TestKey, claims: Value| {
        // Lenient typ mode: `JWT`, as ID tokens carry it.
        mint_with_header(
            key,
            json!({ "alg": "RS256", "kid": key.kid, "typ": "JWT" }),
            claims,
        )
    };
    let app = app(static_jwt(&[&key]));
    let lenient = support::issuer::routes().layer(portcullis::BearerAuthLayer::new(
        Jwt::builder()
            .issuer_with_jwks(ISSUER, jwks(&[&key]))
            .audience(AUDIENCE)
            .dangerous_accept_id_tokens(true)
            .build()
            .expect("config"),
    ));
    // (extra claims, refused by default?)
    let table = [
        (json!({}), false),
        (json!({ "nonce": "n-0S6_WzA2Mj" }), true),
        (json!({ "at_hash": "77QmUPtjPfzWtF2AnpK9RQ" }), true),
        (json!({ "c_hash": "LDktKdoQak3Pk0cnXxCltA" }), true),
        (json!({ "s_hash": "LDktKdoQak3Pk0cnXxCltA" }), true),
        (json!({ "typ": "ID" }), true),
        (json!({ "typ": "Refresh" }), true),
        (json!({ "typ": "Offline" }), true),
        // Keycloak's own access-token marker; Keycloak before 25 also copied `nonce` there.
        (json!({ "typ": "Bearer" }), false),
        (json!({ "typ": "Bearer", "nonce": "n" }), false),
        (json!({ "typ": "Bearer", "at_hash": "x" }), true),
    ];
    for (extra, refused) in table {
        let token = plain(&key, claims_with(extra.clone()));
        let answer = call(&app, "/me", Some(&token)).await;
        if refused {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{extra}");
            assert_eq!(answer.error_code(), Some("invalid_token"), "{extra}");
        } else {
            assert_eq!(answer.status, StatusCode::OK, "{extra}: {:?}", answer.error);
        }
        let answer = call(&lenient, "/me", Some(&token)).await;
        assert_eq!(answer.status, StatusCode::OK, "opted in: {extra}");
    }
    // Also under at+jwt: an issuer's `typ` header does not make an ID token an access token.
    let token = mint(&key, claims_with(json!({ "at_hash": "x" })));
    assert_eq!(
        call(&app, "/me", Some(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn an_id_token_from_the_real_provider_is_not_an_access_token() {
    let idp = Idp::start().await;
    let response = idp
        .authorization_code_response("alice", "openid read", idp::API)
        .await;
    let id_token = response["id_token"]
        .as_str()
        .expect("an ID token for an openid request");
    let (_, claims) = jwt_parts(id_token);
    assert_eq!(claims["aud"], idp::CLIENT_ID, "{claims}");
    assert!(claims.get("at_hash").is_some() || claims.get("nonce").is_some());

    // The API's audience equals the client id: only the markers tell the tokens apart.
    let jwt = |accept: bool| {
        Jwt::builder()
            .issuer(&idp.issuer)
            .audience(idp::CLIENT_ID)
            .dangerous_accept_id_tokens(accept)
            .build()
            .expect("config")
    };
    let strict = app(jwt(false));
    let answer = call(&strict, "/me", Some(id_token)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        answer.error
    );
    assert_eq!(answer.error_code(), Some("invalid_token"));

    let opted_in = app(jwt(true));
    let answer = call(&opted_in, "/me", Some(id_token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
}

// ── Finding 6: one array item is one scope ─────────────────────────────────────────────────

#[tokio::test]
async fn one_scp_array_item_never_grants_two_scopes() {
    let key = TestKey::rsa_a();
    let app = app(static_jwt(&[&key]));
    let mut claims = default_claims(ISSUER, AUDIENCE);
    claims.as_object_mut().expect("object").remove("scope");
    claims["scp"] = json!(["read admin"]);
    let token = mint(&key, claims.clone());
    let answer = call(&app, "/admin", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.error_code(), Some("insufficient_scope"));
    assert_eq!(
        call(&app, "/read", Some(&token)).await.status,
        StatusCode::FORBIDDEN
    );

    claims["scp"] = json!(["read", "admin"]);
    let token = mint(&key, claims);
    assert_eq!(
        call(&app, "/read-and-admin", Some(&token)).await.status,
        StatusCode::OK
    );
}

// ── Finding 6: what a caller learns from a rejection ───────────────────────────────────────

#[tokio::test]
async fn every_invalid_token_is_described_alike_to_the_caller() {
    let (key, stranger) = (TestKey::rsa_a(), TestKey::rsa_b());
    let app = app(static_jwt(&[&key]));
    let now = support::issuer::now();
    let unknown_kid = stranger.with_kid("no-such-kid");
    let cases = [
        mint(
            &key,
            claims_with(json!({ "iss": "https://untrusted.example" })),
        ),
        mint(&unknown_kid, default_claims(ISSUER, AUDIENCE)),
        mint(
            &stranger.with_kid(&key.kid),
            default_claims(ISSUER, AUDIENCE),
        ),
        mint(&key, claims_with(json!({ "exp": now - 3600 }))),
        mint(&key, claims_with(json!({ "aud": "https://other.example" }))),
        "not-a-jwt".to_owned(),
    ];
    let mut reasons = Vec::new();
    for token in &cases {
        let answer = call(&app, "/me", Some(token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        let challenge = answer.challenge().expect("a challenge");
        assert_eq!(
            support::issuer::challenge_param(challenge, "error_description"),
            Some("the access token is expired, revoked, malformed, or not valid for this resource"),
            "{challenge}"
        );
        // The precise reason stays with the server (extensions, logs).
        let error = answer
            .error
            .expect("the error in the response's extensions");
        reasons.push(error.description().to_owned());
    }
    reasons.sort();
    reasons.dedup();
    assert_eq!(
        reasons.len(),
        cases.len(),
        "each case has its own logged reason: {reasons:?}"
    );
}

#[test]
fn debug_output_and_configuration_errors_never_show_secrets() {
    let private_jwk = json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k",
        "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        "d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"
    }]});
    let builder = Jwt::builder()
        .issuer_with_jwks("https://login.example.com", private_jwk.to_string())
        .issuer_with_jwks_uri(
            "https://admin:s3cret@issuer.example.com",
            "https://keys:s3cret@keys.example.com/jwks?api_key=s3cret",
        )
        .audience(AUDIENCE);
    let shown = format!("{builder:?}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(!shown.contains("jpsQnnGQmL"), "the private d: {shown}");
    assert!(
        shown.contains("keys.example.com"),
        "still says which: {shown}"
    );

    for (issuer, jwks_uri) in [
        ("http://admin:s3cret@idp.internal.example", None),
        (
            "https://idp.example.com",
            Some("ftp://keys:s3cret@idp.example.com/jwks"),
        ),
        (
            "https://idp.example.com",
            Some("https://keys:s3cret@idp.example.com:99999/"),
        ),
    ] {
        let builder = match jwks_uri {
            None => Jwt::builder().issuer(issuer),
            Some(uri) => Jwt::builder().issuer_with_jwks_uri(issuer, uri),
        };
        let error = builder.audience(AUDIENCE).build().expect_err("refused");
        assert!(!error.to_string().contains("s3cret"), "{error}");
        assert!(!format!("{error:?}").contains("s3cret"), "{error:?}");
    }
}

#[tokio::test]
async fn a_key_set_of_300_000_junk_entries_writes_one_warning() {
    let logs = support::issuer::logs();
    let key = TestKey::rsa_a();
    let good: Value = serde_json::from_str(&jwks(&[&key])).expect("jwks");
    let mut members = vec!["{}"; 300_000].join(",");
    members.push(',');
    members.push_str(&good["keys"][0].to_string());
    let server = support::issuer::IssuerServer::start(format!(r#"{{"keys":[{members}]}}"#)).await;
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(server.issuer(), server.jwks_uri())
        .audience(AUDIENCE)
        .max_response_bytes(4 * 1024 * 1024)
        .build()
        .expect("config");
    jwt.refresh().await.expect("the one good key loads");
    let app = app(jwt);
    let token = mint(&key, default_claims(server.issuer(), AUDIENCE));
    assert_eq!(call(&app, "/me", Some(&token)).await.status, StatusCode::OK);

    let text = logs.text();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("skipped=300000"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("malformed key"),
        "{lines:?}"
    );
    assert!(!text.contains("skipping a JWK"), "no line per key");
}

// ── Finding 6: keys from another host ──────────────────────────────────────────────────────

#[tokio::test]
async fn a_discovered_jwks_uri_on_another_host_needs_consent() {
    let key = TestKey::rsa_a();
    let server = support::issuer::IssuerServer::start(jwks(&[&key])).await;
    // Same server, another host name: `localhost` instead of `127.0.0.1`.
    let elsewhere = server.jwks_uri().replace("127.0.0.1", "localhost");
    assert_ne!(elsewhere, server.jwks_uri());
    server.set_discovered_jwks_uri(Some(&elsewhere));
    let token = mint(&key, default_claims(server.issuer(), AUDIENCE));

    let refused = Jwt::builder()
        .issuer(server.issuer())
        .audience(AUDIENCE)
        .build()
        .expect("config");
    let error = refused.refresh().await.expect_err("keys on another host");
    assert_eq!(error.kind(), portcullis::ErrorKind::Unavailable);
    assert_eq!(server.jwks_hits(), 0, "nothing fetched from the other host");
    let answer = call(&app(refused), "/me", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);

    let allowed = Jwt::builder()
        .issuer(server.issuer())
        .allow_jwks_host("LocalHost")
        .audience(AUDIENCE)
        .build()
        .expect("config");
    allowed.refresh().await.expect("keys from the allowed host");
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(
        call(&app(allowed), "/me", Some(&token)).await.status,
        StatusCode::OK
    );

    for bad in ["", "https://localhost", "localhost:8080", "localhost/jwks"] {
        assert!(
            Jwt::builder()
                .issuer(server.issuer())
                .allow_jwks_host(bad)
                .audience(AUDIENCE)
                .build()
                .is_err(),
            "{bad:?}"
        );
    }
}
