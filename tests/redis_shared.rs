//! Two instances of a protected API sharing one real Redis (`redis-server` on loopback):
//! the shared DPoP replay store (a proof accepted by one instance is refused by the other),
//! and a Redis outage (DPoP fails closed or open as configured, sharing resumes by itself).

mod support;

use std::time::{Duration, Instant};

use axum::{
    Router,
    body::Body,
    http::{Request, StatusCode, header},
    routing::get,
};
use portcullis::{
    BearerAuthLayer, Introspection, Principal,
    store::{RedisReplayStore, RedisStore},
};
use serde_json::json;
use tower::ServiceExt as _;

use support::{
    dpop::DpopKey,
    introspection::{active, builder, captured_logs, server::IntrospectionServer},
    redis::RedisServer,
};

const SHARED_KEY: [u8; 32] = *b"the key every API replica holds!";
const PREFIX: &str = "orders-api:";
/// The URL clients see, in front of both instances.
const PUBLIC_URL: &str = "https://api.example.com";

fn store(redis: &RedisServer) -> RedisStore {
    RedisStore::builder()
        .url(redis.url())
        .shared_key(SHARED_KEY)
        .key_prefix(PREFIX)
        .timeout(Duration::from_millis(500))
        .backoff(Duration::from_millis(200))
        .build()
        .expect("valid store")
}

/// One instance of the API: its own introspection cache, its own Redis connection.
fn instance(endpoint: &IntrospectionServer, redis: &RedisServer) -> (Router, RedisStore) {
    instance_with(endpoint, redis, false)
}

fn instance_with(
    endpoint: &IntrospectionServer,
    redis: &RedisServer,
    fail_open: bool,
) -> (Router, RedisStore) {
    let store = store(redis);
    let introspection: Introspection = builder(endpoint).build().expect("valid introspection");
    let replay = RedisReplayStore::new(store.clone()).dangerous_fail_open(fail_open);
    let layer = BearerAuthLayer::new(introspection)
        .dpop_public_url(PUBLIC_URL)
        .expect("valid public URL")
        .dpop_replay_store(replay);
    let app = Router::new()
        .route(
            "/me",
            get(|principal: Principal| async move {
                principal.subject().unwrap_or_default().to_owned()
            }),
        )
        .layer(layer);
    (app, store)
}

/// `GET /me` with a DPoP-bound token and a proof.
async fn send_dpop(app: &Router, token: &str, proof: &str) -> (StatusCode, Option<String>) {
    let request = Request::get("/me")
        .header(header::AUTHORIZATION, format!("DPoP {token}"))
        .header("dpop", proof)
        .body(Body::empty())
        .expect("request");
    let response = tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(request))
        .await
        .expect("an answer within 10 s")
        .unwrap_or_else(|never| match never {});
    let challenges: Vec<&str> = response
        .headers()
        .get_all(header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let www = (!challenges.is_empty()).then(|| challenges.join(", "));
    (response.status(), www)
}

#[tokio::test]
async fn a_dpop_proof_accepted_by_a_is_refused_by_b() {
    let redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    let key = DpopKey::generate();
    let mut answer = active("carol", "read");
    answer["token_type"] = json!("DPoP");
    answer["cnf"] = json!({"jkt": key.thumbprint()});
    endpoint.answer("bound-token", answer);
    let (a, _) = instance(&endpoint, &redis);
    let (b, _) = instance(&endpoint, &redis);
    let htu = format!("{PUBLIC_URL}/me");
    let proof = key.proof("GET", &htu, Some("bound-token"));
    let (status, _) = send_dpop(&a, "bound-token", &proof).await;
    assert_eq!(status, StatusCode::OK, "A accepts a fresh proof");
    let (status, www) = send_dpop(&b, "bound-token", &proof).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "B refuses the replayed proof"
    );
    assert!(
        www.as_deref()
            .is_some_and(|w| w.contains("invalid_dpop_proof")),
        "{www:?}"
    );
    let (status, _) = send_dpop(&a, "bound-token", &proof).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "nor does A take it twice");
    // A new proof from the same key works on B.
    let fresh = key.proof("GET", &htu, Some("bound-token"));
    assert_eq!(send_dpop(&b, "bound-token", &fresh).await.0, StatusCode::OK);
}

#[tokio::test]
async fn during_an_outage_dpop_fails_closed_or_open_as_chosen_and_recovers() {
    let mut redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    let key = DpopKey::generate();
    let mut bound = active("dave", "read");
    bound["token_type"] = json!("DPoP");
    bound["cnf"] = json!({"jkt": key.thumbprint()});
    endpoint.answer("bound", bound);
    let (a, store_a) = instance(&endpoint, &redis);
    let (b, _) = instance(&endpoint, &redis);
    let (open, _) = instance_with(&endpoint, &redis, true);
    let htu = format!("{PUBLIC_URL}/me");
    let fresh = || key.proof("GET", &htu, Some("bound"));
    assert_eq!(send_dpop(&a, "bound", &fresh()).await.0, StatusCode::OK);
    assert_eq!(send_dpop(&open, "bound", &fresh()).await.0, StatusCode::OK);

    redis.stop();
    let (status, _) = send_dpop(&a, "bound", &fresh()).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "fail closed by default"
    );
    let (status, _) = send_dpop(&open, "bound", &fresh()).await;
    assert_eq!(status, StatusCode::OK, "fail open when chosen");
    #[cfg(feature = "tracing")]
    assert!(
        captured_logs().contains("Redis cannot be used"),
        "the change of mode is logged"
    );

    redis.restart();
    // No restart of the API: the store probes Redis after its back-off and uses it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while send_dpop(&a, "bound", &fresh()).await.0 != StatusCode::OK {
        assert!(
            Instant::now() < deadline,
            "Redis not used again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(store_a.in_use());
    let proof = fresh();
    assert_eq!(send_dpop(&a, "bound", &proof).await.0, StatusCode::OK);
    assert_eq!(
        send_dpop(&b, "bound", &proof).await.0,
        StatusCode::UNAUTHORIZED,
        "replays are refused across instances again"
    );
    #[cfg(feature = "tracing")]
    assert!(
        captured_logs().contains("Redis is back"),
        "the return is logged"
    );
}
