//! Checks the OpenID provider fixture itself (tests/idp), so that a failure in the resource
//! server tests that use it points at portcullis and not at the fixture.
//!
//! Needs Node.js >= 20 and `npm ci --prefix tests/idp`.

mod support;

use serde_json::Value;
use support::idp::{self, Idp, jwt_parts};

fn scopes(claims: &Value) -> Vec<String> {
    claims["scope"]
        .as_str()
        .unwrap_or_else(|| panic!("no scope claim in {claims}"))
        .split(' ')
        .map(str::to_owned)
        .collect()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("the JWKS has no keys array: {jwks}"))
        .iter()
        .map(|key| {
            key["kid"]
                .as_str()
                .unwrap_or_else(|| panic!("a JWK without kid: {key}"))
                .to_owned()
        })
        .collect()
}

/// Checks the header and the claims every JWT access token of the fixture has.
fn assert_access_token(idp: &Idp, token: &str, alg: &str, audience: &str) -> (Value, Value) {
    let (header, claims) = jwt_parts(token);
    assert_eq!(header["typ"], "at+jwt", "JOSE header {header}");
    assert_eq!(header["alg"], alg, "JOSE header {header}");
    assert!(
        header["kid"].is_string(),
        "JOSE header without kid: {header}"
    );
    assert_eq!(claims["iss"], idp.issuer.as_str(), "claims {claims}");
    assert_eq!(claims["aud"], audience, "claims {claims}");
    assert_eq!(claims["client_id"], idp::CLIENT_ID, "claims {claims}");
    let iat = claims["iat"]
        .as_u64()
        .unwrap_or_else(|| panic!("no iat in {claims}"));
    let exp = claims["exp"]
        .as_u64()
        .unwrap_or_else(|| panic!("no exp in {claims}"));
    assert!(exp > iat, "exp {exp} is not after iat {iat}");
    assert!(claims["jti"].is_string(), "no jti in {claims}");
    (header, claims)
}

#[tokio::test]
async fn the_fixture_issues_what_the_resource_server_tests_expect() {
    let idp = Idp::start().await;
    assert!(
        idp.issuer.starts_with("http://127.0.0.1:"),
        "issuer {}",
        idp.issuer
    );

    let jwks = idp.jwks().await;
    let initial_kids = kids(&jwks);
    assert_eq!(initial_kids.len(), 2, "one RS256 and one ES256 key: {jwks}");

    // Client credentials, RS256.
    let token = idp.client_credentials(idp::API, "read write").await;
    let (header, claims) = assert_access_token(&idp, &token, "RS256", idp::API);
    assert_eq!(claims["sub"], idp::CLIENT_ID, "claims {claims}");
    assert_eq!(scopes(&claims), ["read", "write"], "claims {claims}");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        idp::ACCESS_TOKEN_TTL_SECS
    );
    let rs256_kid = header["kid"].as_str().unwrap().to_owned();
    assert!(
        initial_kids.contains(&rs256_kid),
        "kid {rs256_kid} is not in the JWKS {jwks}"
    );

    // Client credentials, ES256.
    let token = idp.client_credentials(idp::API_ES, "read").await;
    let (header, claims) = assert_access_token(&idp, &token, "ES256", idp::API_ES);
    assert_eq!(scopes(&claims), ["read"], "claims {claims}");
    let es256_kid = header["kid"].as_str().unwrap().to_owned();
    assert!(
        initial_kids.contains(&es256_kid),
        "kid {es256_kid} is not in the JWKS {jwks}"
    );
    assert_ne!(es256_kid, rs256_kid);

    // Another API's audience, and a short-lived token.
    let token = idp.client_credentials(idp::OTHER, "read").await;
    assert_access_token(&idp, &token, "RS256", idp::OTHER);
    let token = idp.client_credentials(idp::SHORT, "read").await;
    let (_, claims) = assert_access_token(&idp, &token, "RS256", idp::SHORT);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        idp::SHORT_TTL_SECS
    );

    // Authorization code flow as alice, granted `read` only.
    let token = idp
        .authorization_code("alice", "openid read", idp::API)
        .await;
    let (_, claims) = assert_access_token(&idp, &token, "RS256", idp::API);
    assert_eq!(claims["sub"], "alice", "claims {claims}");
    let granted = scopes(&claims);
    assert!(granted.iter().any(|s| s == "read"), "claims {claims}");
    assert!(
        !granted.iter().any(|s| s == "write" || s == "admin"),
        "claims {claims}"
    );

    // A second user with more scopes, through ES256, in the same provider.
    let token = idp
        .authorization_code("bob", "openid read write admin", idp::API_ES)
        .await;
    let (_, claims) = assert_access_token(&idp, &token, "ES256", idp::API_ES);
    assert_eq!(claims["sub"], "bob", "claims {claims}");
    assert_eq!(
        scopes(&claims),
        ["read", "write", "admin"],
        "claims {claims}"
    );

    // Opaque token: introspected active, then inactive once revoked.
    let opaque = idp.client_credentials(idp::OPAQUE, "read write").await;
    assert_eq!(
        opaque.matches('.').count(),
        0,
        "an opaque token should not look like a JWT: {opaque}"
    );
    let introspection = idp.introspect(&opaque).await;
    assert_eq!(
        introspection["active"], true,
        "introspection {introspection}"
    );
    assert_eq!(
        introspection["client_id"],
        idp::CLIENT_ID,
        "introspection {introspection}"
    );
    assert_eq!(
        introspection["aud"],
        idp::OPAQUE,
        "introspection {introspection}"
    );
    assert_eq!(
        introspection["iss"],
        idp.issuer.as_str(),
        "introspection {introspection}"
    );
    assert_eq!(
        introspection["scope"], "read write",
        "introspection {introspection}"
    );
    idp.revoke(&opaque).await;
    let introspection = idp.introspect(&opaque).await;
    assert_eq!(
        introspection["active"], false,
        "introspection after revocation {introspection}"
    );

    // An opaque token from the authorization code flow introspects with the user as sub.
    let opaque = idp
        .authorization_code("carol", "openid write", idp::OPAQUE)
        .await;
    let introspection = idp.introspect(&opaque).await;
    assert_eq!(
        introspection["active"], true,
        "introspection {introspection}"
    );
    assert_eq!(
        introspection["sub"], "carol",
        "introspection {introspection}"
    );
    assert_eq!(
        introspection["scope"], "write",
        "introspection {introspection}"
    );

    // Key rotation: new tokens carry the new kid, the JWKS lists it first and keeps the old keys.
    let hits_before = idp.jwks_hits().await;
    let new_kid = idp.rotate_key().await;
    assert!(
        !initial_kids.contains(&new_kid),
        "rotation returned an old kid {new_kid}"
    );
    let token = idp.client_credentials(idp::API, "read").await;
    let (header, _) = assert_access_token(&idp, &token, "RS256", idp::API);
    assert_eq!(
        header["kid"],
        new_kid.as_str(),
        "JOSE header after rotation {header}"
    );
    let jwks = idp.jwks().await;
    let rotated_kids = kids(&jwks);
    assert_eq!(
        rotated_kids.first(),
        Some(&new_kid),
        "the new key should come first: {jwks}"
    );
    for kid in &initial_kids {
        assert!(
            rotated_kids.contains(kid),
            "old key {kid} dropped from the JWKS {jwks}"
        );
    }
    assert_eq!(
        idp.jwks_hits().await,
        hits_before + 1,
        "jwks_hits counts JWKS requests"
    );

    // ES256 tokens keep their key, and the user flow works across the rotation.
    let token = idp.client_credentials(idp::API_ES, "read").await;
    let (header, _) = assert_access_token(&idp, &token, "ES256", idp::API_ES);
    assert_eq!(header["kid"], es256_kid.as_str());
    let token = idp
        .authorization_code("alice", "openid read", idp::API)
        .await;
    let (header, claims) = assert_access_token(&idp, &token, "RS256", idp::API);
    assert_eq!(header["kid"], new_kid.as_str());
    assert_eq!(claims["sub"], "alice");
}

#[tokio::test]
async fn the_fixture_refuses_what_it_should() {
    let idp = Idp::start().await;

    // Unknown resource indicator.
    let resp = reqwest::Client::new()
        .post(idp.token_endpoint())
        .basic_auth(idp::CLIENT_ID, Some(idp::CLIENT_SECRET))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", "urn:portcullis:nope"),
            ("scope", "read"),
        ])
        .send()
        .await
        .expect("the token endpoint answers");
    assert_eq!(resp.status(), reqwest::StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.expect("an OAuth error is JSON");
    assert_eq!(body["error"], "invalid_target", "{body}");

    // Introspection with wrong resource-server credentials.
    let resp = reqwest::Client::new()
        .post(idp.introspection_endpoint())
        .basic_auth(idp::RS_CLIENT_ID, Some("wrong"))
        .form(&[("token", "whatever")])
        .send()
        .await
        .expect("the introspection endpoint answers");
    assert_eq!(resp.status(), reqwest::StatusCode::UNAUTHORIZED);

    // The client_secret_post resource-server client introspects too.
    let opaque = idp.client_credentials(idp::OPAQUE, "admin").await;
    let resp = reqwest::Client::new()
        .post(idp.introspection_endpoint())
        .form(&[
            ("token", opaque.as_str()),
            ("client_id", idp::RS_POST_CLIENT_ID),
            ("client_secret", idp::RS_CLIENT_SECRET),
        ])
        .send()
        .await
        .expect("the introspection endpoint answers");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let body: Value = resp
        .json()
        .await
        .expect("an introspection response is JSON");
    assert_eq!(body["active"], true, "{body}");
    assert_eq!(body["scope"], "admin", "{body}");

    // The authorization code flow also works without `openid` (plain OAuth 2.0).
    let token = idp.authorization_code("dave", "read", idp::OTHER).await;
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["sub"], "dave", "claims {claims}");
    assert_eq!(claims["aud"], idp::OTHER, "claims {claims}");
    assert_eq!(claims["scope"], "read", "claims {claims}");

    // A short-lived token expires within its lifetime from now.
    let short = idp.client_credentials(idp::SHORT, "read").await;
    let (_, claims) = jwt_parts(&short);
    let exp = claims["exp"].as_u64().expect("exp");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    assert!(
        exp <= now + idp::SHORT_TTL_SECS + 1,
        "exp {exp} is too far from now {now}"
    );
}
