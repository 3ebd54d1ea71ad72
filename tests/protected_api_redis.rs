//! `examples/protected_api.rs --redis-url`, run as two processes (two replicas) on one real
//! `redis-server`: an opaque token used on both is introspected once, and a refusal is
//! shared too. The issuer (discovery + JWKS) and the introspection endpoint are in-process
//! servers on 127.0.0.1.
//!
//! `cargo test` builds the example; `cargo test --test protected_api_redis` alone does not
//! (build it first with `cargo build --all-features --example protected_api`). Both
//! processes are killed when the test ends, passed or failed.

mod support;

use std::time::Duration;

use reqwest::{Client, StatusCode, header};
use serde_json::json;
use support::{
    example::ExampleServer,
    introspection::{now_secs, server::IntrospectionServer},
    issuer::{AUDIENCE, IssuerServer, TestKey, jwks},
    redis::{RedisServer, Reply},
};

const SHARED_KEY: &str = "the key every API replica holds, 32+ bytes";

async fn status(http: &Client, example: &ExampleServer, token: &str) -> StatusCode {
    http.get(format!("{}/me", example.url))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET /me: {e}\n{}", example.stderr()))
        .status()
}

#[tokio::test]
async fn two_replicas_share_introspection_answers_through_redis() {
    let redis = RedisServer::start();
    let issuer = IssuerServer::start(jwks(&[&TestKey::rsa_a()])).await;
    let endpoint = IntrospectionServer::start().await;
    endpoint.answer(
        "opaque-token-of-alice",
        json!({
            "active": true,
            "token_type": "Bearer",
            "iss": issuer.issuer(),
            "aud": AUDIENCE,
            "sub": "alice",
            "scope": "read",
            "exp": now_secs() + 600,
        }),
    );
    let introspection = endpoint.endpoint();
    let redis_url = redis.url();
    let flags = [
        "--introspection-url",
        introspection.as_str(),
        "--client-id",
        "the-api",
        "--client-secret",
        "the-api-secret",
        "--redis-url",
        redis_url.as_str(),
    ];
    let env = [("PORTCULLIS_REDIS_SHARED_KEY", SHARED_KEY)];
    let a = ExampleServer::start_with_env(issuer.issuer(), AUDIENCE, &flags, &env).await;
    let b = ExampleServer::start_with_env(issuer.issuer(), AUDIENCE, &flags, &env).await;
    let http = Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("client");

    for example in [&a, &b, &a, &b] {
        assert_eq!(
            status(&http, example, "opaque-token-of-alice").await,
            StatusCode::OK,
            "{}",
            example.stderr()
        );
    }
    assert_eq!(
        endpoint.calls(),
        1,
        "one introspection call for both replicas"
    );

    // Unknown to the endpoint, so refused: B takes A's refusal from Redis.
    assert_eq!(status(&http, &a, "revoked").await, StatusCode::UNAUTHORIZED);
    assert_eq!(status(&http, &b, "revoked").await, StatusCode::UNAUTHORIZED);
    assert_eq!(endpoint.calls(), 2, "the refusal was shared");

    // Both answers live in Redis under the example's default prefix, named by digests.
    let Reply::Array(keys) = redis.command(&[b"KEYS", b"portcullis:introspect:*"]) else {
        panic!("KEYS gave no array");
    };
    assert_eq!(keys.len(), 2, "{keys:?}");
}
