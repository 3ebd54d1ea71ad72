//! DPoP (RFC 9449) end to end: DPoP-bound tokens issued by the real OpenID provider fixture
//! (`tests/idp`, DPoP enabled), a JWT and an opaque token (introspection), sent with proofs
//! made by a key generated in the test to an axum API guarded by portcullis on 127.0.0.1.
//!
//! Needs Node.js >= 20 and `npm ci --prefix tests/idp`.

mod support;

use std::time::Duration;

use axum::{Json, Router, routing::get};
use portcullis::{Authenticate, BearerAuthLayer, Introspection, Jwt, Principal, RegisteredClaims};
use reqwest::{StatusCode, header::WWW_AUTHENTICATE};
use serde_json::{Value, json};
use support::{
    dpop::{DpopKey, b64_json, dpop_token, dpop_token_response, now},
    idp::{self, Idp, jwt_parts},
};
use tokio::net::TcpListener;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "jkt": principal.confirmation().and_then(|c| c.jwk_thumbprint()),
    }))
}

/// Serves `GET /me` and `POST /me` behind `layer` on 127.0.0.1; returns the base URL.
async fn serve<A>(layer: BearerAuthLayer<A>) -> String
where
    A: Authenticate<Claims = RegisteredClaims> + Clone + Send + Sync + 'static,
{
    let app = Router::new().route("/me", get(me).post(me)).layer(layer);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot bind the API to 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the API failed") });
    url
}

async fn warm_jwt(idp: &Idp) -> Jwt {
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(idp::API)
        .build()
        .expect("a valid JWT configuration");
    jwt.refresh().await.expect("the provider's keys load");
    jwt
}

fn introspection(idp: &Idp) -> Introspection {
    Introspection::builder()
        .issuer(&idp.issuer)
        .endpoint(idp.introspection_endpoint())
        .client_credentials(idp::RS_CLIENT_ID, idp::RS_CLIENT_SECRET)
        .audience(idp::OPAQUE)
        .build()
        .expect("a valid introspection configuration")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("cannot build the HTTP client")
}

/// What the API answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenges: Vec<String>,
    nonce: Option<String>,
    body: String,
}

impl Answer {
    /// The `DPoP` challenge.
    fn dpop(&self) -> &str {
        self.challenges
            .iter()
            .find(|c| c.starts_with("DPoP "))
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no DPoP challenge in {self:?}"))
    }

    fn bearer(&self) -> Option<&str> {
        self.challenges
            .iter()
            .find(|c| c.starts_with("Bearer "))
            .map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {self:?}"))
    }
}

/// Sends `method` `url` with `Authorization: {scheme} {token}` and each of `proofs` as a
/// `DPoP` header.
/// `GET url` with `Authorization: DPoP token` and one `DPoP` proof.
async fn get_dpop(url: &str, token: &str, proof: &str) -> Answer {
    send("GET", url, "DPoP", token, &[proof]).await
}

async fn send(method: &str, url: &str, scheme: &str, token: &str, proofs: &[&str]) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = client()
        .request(method, url)
        .header("authorization", format!("{scheme} {token}"));
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    let resp = request.send().await.expect("the API answers");
    Answer {
        status: resp.status(),
        challenges: resp
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .map(|v| v.to_str().expect("ASCII challenge").to_owned())
            .collect(),
        nonce: resp
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().expect("ASCII nonce").to_owned()),
        body: resp.text().await.unwrap_or_default(),
    }
}

/// (what, scheme, proofs, expected status, expected code on the DPoP challenge or `None`)
type Case<'a> = (&'a str, &'a str, Vec<String>, StatusCode, Option<&'a str>);

/// A fresh, valid DPoP request for `token` bound to `key` is accepted, then each attack of
/// the issue's list is refused with the right status and code.
async fn accepted_then_attacks_refused(url: &str, token: &str, key: &DpopKey, label: &str) {
    let me = format!("{url}/me");

    // Accepted, and the principal names the key.
    let proof = key.proof("GET", &me, Some(token));
    let ok = get_dpop(&me, token, &proof).await;
    assert_eq!(ok.status, StatusCode::OK, "{label}: {ok:?}");
    assert_eq!(ok.json()["jkt"], key.thumbprint(), "{label}");

    // The same proof again: a replay.
    let replay = get_dpop(&me, token, &proof).await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "{label}: {replay:?}"
    );
    assert!(
        replay.dpop().contains(r#"error="invalid_dpop_proof""#),
        "{label}: {replay:?}"
    );
    assert!(
        replay.dpop().contains("already used"),
        "{label}: {replay:?}"
    );

    let other_key = DpopKey::generate();
    let other_token = format!("{token}x");
    let mut private_jwk = key.header();
    private_jwk["jwk"]["d"] = json!("c29tZSBwcml2YXRlIGtleSBtYXRlcmlhbA");
    let mut none_header = key.header();
    none_header["alg"] = json!("none");
    let none_proof = format!(
        "{}.{}.",
        b64_json(&none_header),
        b64_json(&key.claims("GET", &me, Some(token)))
    );
    let mut hs_header = key.header();
    hs_header["alg"] = json!("HS256");
    let hs_message = format!(
        "{}.{}",
        b64_json(&hs_header),
        b64_json(&key.claims("GET", &me, Some(token)))
    );
    let hs_signature = jsonwebtoken::crypto::sign(
        hs_message.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret the attacker picked"),
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("HS256");
    let hs_proof = format!("{hs_message}.{hs_signature}");
    let with_iat = |iat: i64| {
        let mut claims = key.claims("GET", &me, Some(token));
        claims["iat"] = json!(iat);
        key.sign(&key.header(), &claims)
    };

    let cases: Vec<Case<'_>> = vec![
        (
            "proof for another method",
            "DPoP",
            vec![key.proof("POST", &me, Some(token))],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "proof for another URI",
            "DPoP",
            vec![key.proof("GET", &format!("{url}/other"), Some(token))],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "proof older than the window",
            "DPoP",
            vec![with_iat(now() - 600)],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "proof from the future",
            "DPoP",
            vec![with_iat(now() + 600)],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "proof signed by another key",
            "DPoP",
            vec![other_key.proof("GET", &me, Some(token))],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "proof with the ath of another token",
            "DPoP",
            vec![key.proof("GET", &me, Some(&other_token))],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "jwk with private members",
            "DPoP",
            vec![key.sign(&private_jwk, &key.claims("GET", &me, Some(token)))],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "alg none",
            "DPoP",
            vec![none_proof],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "HS256",
            "DPoP",
            vec![hs_proof],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "missing proof",
            "DPoP",
            vec![],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "two proof headers",
            "DPoP",
            vec![
                key.proof("GET", &me, Some(token)),
                key.proof("GET", &me, Some(token)),
            ],
            StatusCode::UNAUTHORIZED,
            Some("invalid_dpop_proof"),
        ),
        (
            "bound token sent as Bearer",
            "Bearer",
            vec![],
            StatusCode::UNAUTHORIZED,
            None,
        ),
        (
            "bound token sent as Bearer with a valid proof",
            "Bearer",
            vec![key.proof("GET", &me, Some(token))],
            StatusCode::UNAUTHORIZED,
            None,
        ),
    ];
    for (what, scheme, proofs, status, code) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let answer = send("GET", &me, scheme, token, &proofs).await;
        assert_eq!(answer.status, status, "{label}, {what}: {answer:?}");
        match code {
            Some(code) => {
                assert!(
                    answer.dpop().contains(&format!(r#"error="{code}""#)),
                    "{label}, {what}: {answer:?}"
                );
                let bearer = answer.bearer().expect("bearer tokens are accepted too");
                assert!(!bearer.contains("error="), "{label}, {what}: {answer:?}");
            }
            None => {
                // A downgrade: the token is refused on the Bearer challenge it came with.
                let bearer = answer.bearer().expect("a Bearer challenge");
                assert!(
                    bearer.contains(r#"error="invalid_token""#),
                    "{label}, {what}: {answer:?}"
                );
                assert!(answer.dpop().starts_with(r#"DPoP algs=""#), "{answer:?}");
            }
        }
    }

    // After all that, a fresh proof still works.
    let fresh = get_dpop(&me, token, &key.proof("GET", &me, Some(token))).await;
    assert_eq!(fresh.status, StatusCode::OK, "{label}: {fresh:?}");
}

#[tokio::test]
async fn dpop_bound_jwt_from_the_provider_is_accepted_and_attacks_are_refused() {
    let idp = Idp::start().await;
    let key = DpopKey::generate();
    let token = dpop_token(&idp, &key, idp::API, "read").await;
    let (_, claims) = jwt_parts(&token);
    assert_eq!(claims["cnf"]["jkt"], key.thumbprint(), "{claims}");

    let url = serve(BearerAuthLayer::new(warm_jwt(&idp).await)).await;
    accepted_then_attacks_refused(&url, &token, &key, "JWT").await;

    // A plain bearer token from the same provider keeps working as one.
    let bearer = idp.client_credentials(idp::API, "read").await;
    let answer = send("GET", &format!("{url}/me"), "Bearer", &bearer, &[]).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    assert_eq!(answer.json()["jkt"], Value::Null);
    // …but not under the DPoP scheme.
    let me = format!("{url}/me");
    let answer = get_dpop(&me, &bearer, &key.proof("GET", &me, Some(&bearer))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert!(
        answer.dpop().contains(r#"error="invalid_token""#),
        "{answer:?}"
    );
}

#[tokio::test]
async fn dpop_bound_opaque_token_is_accepted_through_introspection_and_attacks_are_refused() {
    let idp = Idp::start().await;
    let key = DpopKey::generate();
    let response = dpop_token_response(&idp, &key, idp::OPAQUE, "read").await;
    let token = response["access_token"].as_str().expect("token").to_owned();
    let answer = idp.introspect(&token).await;
    assert_eq!(answer["token_type"], "DPoP", "{answer}");
    assert_eq!(answer["cnf"]["jkt"], key.thumbprint(), "{answer}");

    let url = serve(BearerAuthLayer::new(introspection(&idp))).await;
    accepted_then_attacks_refused(&url, &token, &key, "opaque").await;
}

#[tokio::test]
async fn nonce_round_trip() {
    let idp = Idp::start().await;
    let key = DpopKey::generate();
    let token = dpop_token(&idp, &key, idp::API, "read").await;
    let url = serve(BearerAuthLayer::new(warm_jwt(&idp).await).dpop_nonces(true)).await;
    let me = format!("{url}/me");

    // No nonce: use_dpop_nonce with a fresh DPoP-Nonce.
    let first = get_dpop(&me, &token, &key.proof("GET", &me, Some(&token))).await;
    assert_eq!(first.status, StatusCode::UNAUTHORIZED, "{first:?}");
    assert!(
        first.dpop().contains(r#"error="use_dpop_nonce""#),
        "{first:?}"
    );
    let nonce = first.nonce.clone().expect("a DPoP-Nonce header");

    // A made-up nonce: the same answer.
    let mut claims = key.claims("GET", &me, Some(&token));
    claims["nonce"] = json!("bm90IGEgbm9uY2UgZnJvbSB0aGlzIHNlcnZlcg");
    let forged = get_dpop(&me, &token, &key.sign(&key.header(), &claims)).await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED, "{forged:?}");
    assert!(
        forged.dpop().contains(r#"error="use_dpop_nonce""#),
        "{forged:?}"
    );

    // The server's nonce: accepted.
    let mut claims = key.claims("GET", &me, Some(&token));
    claims["nonce"] = json!(nonce);
    let ok = get_dpop(&me, &token, &key.sign(&key.header(), &claims)).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(ok.json()["jkt"], key.thumbprint());
}

#[tokio::test]
async fn dpop_required_refuses_bearer_tokens_and_offers_only_dpop() {
    let idp = Idp::start().await;
    let key = DpopKey::generate();
    let bound = dpop_token(&idp, &key, idp::API, "read").await;
    let bearer = idp.client_credentials(idp::API, "read").await;
    let url = serve(BearerAuthLayer::new(warm_jwt(&idp).await).dpop_required(true)).await;
    let me = format!("{url}/me");

    let refused = send("GET", &me, "Bearer", &bearer, &[]).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
    assert_eq!(refused.bearer(), None, "{refused:?}");
    assert!(
        refused.dpop().contains(r#"error="invalid_token""#),
        "{refused:?}"
    );

    let ok = get_dpop(&me, &bound, &key.proof("GET", &me, Some(&bound))).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
}

#[tokio::test]
async fn public_url_is_the_htu_behind_a_proxy() {
    let idp = Idp::start().await;
    let key = DpopKey::generate();
    let token = dpop_token(&idp, &key, idp::API, "read").await;
    let layer = BearerAuthLayer::new(warm_jwt(&idp).await)
        .dpop_public_url("https://API.example.com/base/")
        .expect("a valid public URL");
    let url = serve(layer).await;
    let me = format!("{url}/me");

    let public = "https://api.example.com:443/base/me?ignored=1";
    let ok = get_dpop(&me, &token, &key.proof("GET", public, Some(&token))).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    let local = get_dpop(&me, &token, &key.proof("GET", &me, Some(&token))).await;
    assert_eq!(local.status, StatusCode::UNAUTHORIZED, "{local:?}");
    assert!(local.dpop().contains("another URI"), "{local:?}");
}
