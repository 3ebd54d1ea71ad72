//! Quick start: an axum API behind portcullis, end to end, on your own machine.
//!
//! ```text
//! cargo run --example quickstart
//! ```
//!
//! The example plays all three roles of OAuth 2.0 at once, over real HTTP on `127.0.0.1`:
//!
//! 1. an **issuer** (authorization server) that publishes its discovery document and its
//!    public key, and signs access tokens with the private key;
//! 2. the **resource server**: an axum API whose routes are guarded by [`BearerAuthLayer`]
//!    and [`RequireScopeLayer`];
//! 3. a **client** that calls the API with good tokens, bad tokens and no token, and checks
//!    that each answer is the one RFC 6750 prescribes.
//!
//! In a real deployment only the resource server is yours: the issuer is Keycloak, Auth0, Entra ID, …
//! and `.issuer(…)` points at it. See `examples/protected_api.rs` for that server.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair},
};
use axum::{Json, Router, routing::get};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use portcullis::{BearerAuthLayer, Jwt, Principal, RequireScopeLayer};
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The audience of our API: tokens must name it in `aud`.
const AUDIENCE: &str = "https://api.example.com";
/// The id of the issuer's signing key, sent in each token's header and in the JWK Set.
const KID: &str = "quickstart-key";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // ── 1. The issuer's address. ─────────────────────────────────────────────────────────
    // Bound first: its URL, with the port the OS chose, is the issuer's identity.
    let issuer_listener = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", issuer_listener.local_addr()?);

    // ── 2. The resource server's authenticator. ──────────────────────────────────────────
    // It trusts one issuer (keys found through OpenID Connect discovery) and accepts tokens
    // for one audience. `build()` does no I/O. (It also installs jsonwebtoken's crypto
    // backend, which the toy issuer's signing below relies on.)
    let jwt = Jwt::builder().issuer(&issuer).audience(AUDIENCE).build()?;

    // ── 3. A toy issuer. ─────────────────────────────────────────────────────────────────
    // A fresh ES256 (P-256) key pair; the public half is published as a JWK.
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())?;
    let signing_key = EncodingKey::from_ec_der(pkcs8.as_ref());
    let mut public_jwk = Jwk::from_encoding_key(&signing_key, Algorithm::ES256)?;
    public_jwk.common.key_id = Some(KID.to_owned());

    let issuer_app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(Json(
                json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") }),
            )),
        )
        .route("/jwks", get(Json(json!({ "keys": [public_jwk] }))));
    tokio::spawn(async move { axum::serve(issuer_listener, issuer_app).await });

    // Optional warm-up: fetch the discovery document and the keys now, so a misconfigured
    // issuer fails at startup. Without it the first request would fetch them.
    jwt.refresh().await?;

    // ── 4. The protected API. ────────────────────────────────────────────────────────────
    // `BearerAuthLayer` guards every route: no valid token, no handler (`route_layer`, so an
    // unknown path still answers 404). `RequireScopeLayer` adds a scope requirement to one
    // route: `route_layer` on that route's method router.
    let api = Router::new()
        .route("/me", get(me))
        .route(
            "/items",
            get(items).route_layer(RequireScopeLayer::all(["read"])),
        )
        .route(
            "/admin",
            get(admin).route_layer(RequireScopeLayer::all(["admin"])),
        )
        .route_layer(BearerAuthLayer::new(jwt));
    let api_listener = TcpListener::bind("127.0.0.1:0").await?;
    let api_url = format!("http://{}", api_listener.local_addr()?);
    tokio::spawn(async move { axum::serve(api_listener, api).await });

    // ── 5. A client. ─────────────────────────────────────────────────────────────────────
    // Tokens as the issuer would mint them. `good` grants `read` but not `admin`.
    let now = unix_now();
    let claims = |aud: &str, issued_at: u64| {
        json!({
            "iss": issuer, "sub": "alice", "aud": aud, "client_id": "quickstart",
            "scope": "read", "iat": issued_at, "exp": issued_at + 300,
        })
    };
    let good = sign(&signing_key, &claims(AUDIENCE, now))?;
    let expired = sign(&signing_key, &claims(AUDIENCE, now - 3600))?;
    let other_audience = sign(&signing_key, &claims("https://other.example.com", now))?;
    let bearer = |token: &str| format!("Bearer {token}");

    // (case, path, Authorization header values, expected status)
    #[rustfmt::skip]
    let cases: [(&str, &str, Vec<String>, u16); 7] = [
        ("valid token, GET /me",                "/me",    vec![bearer(&good)],                200),
        ("valid token with `read`, GET /items", "/items", vec![bearer(&good)],                200),
        ("expired token",                       "/me",    vec![bearer(&expired)],             401),
        ("token for another audience",          "/me",    vec![bearer(&other_audience)],      401),
        ("token without `admin`, GET /admin",   "/admin", vec![bearer(&good)],                403),
        ("no token",                            "/me",    vec![],                             401),
        ("two Authorization headers",           "/me",    vec![bearer(&good), bearer(&good)], 400),
    ];

    // Talk to 127.0.0.1 directly, whatever proxy the environment configures.
    let client = reqwest::Client::builder().no_proxy().build()?;
    let total = cases.len();
    let mut failed = Vec::new();
    let mut me_body = String::new();
    println!(
        "{:<38} {:>8} {:>4}  WWW-Authenticate",
        "case", "expected", "got"
    );
    for (name, path, authorization, expected) in cases {
        let mut request = client.get(format!("{api_url}{path}"));
        for value in authorization {
            request = request.header(AUTHORIZATION, value); // appends: two values, two headers
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let challenge = match response.headers().get(WWW_AUTHENTICATE) {
            Some(value) => value.to_str().unwrap_or("(not text)").to_owned(),
            None => "-".to_owned(),
        };
        if path == "/me" && status == 200 {
            me_body = response.text().await?;
        }
        println!("{name:<38} {expected:>8} {status:>4}  {challenge}");
        if status != expected {
            failed.push(name);
        }
    }
    println!("\nGET /me answered: {me_body}");

    if failed.is_empty() {
        println!("all {total} cases answered as expected");
        Ok(())
    } else {
        println!("unexpected answers: {}", failed.join("; "));
        std::process::exit(1);
    }
}

/// Any valid token: the handler reads the validated caller from the `Principal` extractor.
async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "scopes": principal.scopes(),
        "client_id": principal.claims().client_id,
    }))
}

/// Needs the scope `read`; the handler itself checks nothing.
async fn items() -> Json<Value> {
    Json(json!(["apple", "pear"]))
}

/// Needs the scope `admin`.
async fn admin() -> &'static str {
    "welcome, administrator"
}

/// Signs `claims` as the issuer does: ES256, `typ: at+jwt` (RFC 9068) and the key's `kid`.
fn sign(key: &EncodingKey, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = Some("at+jwt".to_owned());
    header.kid = Some(KID.to_owned());
    jsonwebtoken::encode(&header, claims, key)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}
