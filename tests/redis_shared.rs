//! Two instances of a protected API sharing one real Redis (`redis-server` on loopback):
//! the shared introspection tier (a token is introspected once for both, refusals
//! included, and nothing in Redis is trusted without the shared key's seal), the shared
//! DPoP replay store (a proof accepted by one instance is refused by the other), and a Redis
//! outage (introspection falls back to each instance's own cache, DPoP fails closed or
//! open as configured, sharing resumes by itself).

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
    store::{RedisIntrospectionCache, RedisReplayStore, RedisStore},
};
use serde_json::json;
use tower::ServiceExt as _;

use support::{
    dpop::DpopKey,
    introspection::{
        Reply as HttpReply, active, assert_invalid_token, builder, captured_logs, now_secs, send,
        server::IntrospectionServer,
    },
    redis::{RedisServer, Reply},
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
    let introspection: Introspection = builder(endpoint)
        .shared_cache(RedisIntrospectionCache::new(store.clone()))
        .build()
        .expect("valid introspection");
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
    for _ in 0..3 {
        let (status, _) = send_dpop(&a, "bound", &fresh()).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "fail closed by default"
        );
        let (status, _) = send_dpop(&open, "bound", &fresh()).await;
        assert_eq!(status, StatusCode::OK, "fail open when chosen");
    }
    #[cfg(feature = "tracing")]
    {
        let logs = captured_logs();
        assert!(
            logs.contains("Redis cannot be used"),
            "the change of mode is logged"
        );
        // Three refusals and three unchecked proofs within seconds: one warning each.
        assert_eq!(
            logs.matches("DPoP replay store failed; refusing the request")
                .count(),
            1,
            "{logs}"
        );
        assert_eq!(
            logs.matches("DPoP proof accepted without a replay check")
                .count(),
            1,
            "{logs}"
        );
    }

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

// ── The shared introspection tier ───────────────────────────────────────────────────────

/// The introspection keys in Redis, with their values.
fn introspection_entries(redis: &RedisServer) -> Vec<(Vec<u8>, Vec<u8>)> {
    let pattern = format!("{PREFIX}introspect:*");
    let Reply::Array(keys) = redis.command(&[b"KEYS", pattern.as_bytes()]) else {
        panic!("KEYS gave no array");
    };
    keys.into_iter()
        .map(|key| {
            let Reply::Bulk(key) = key else {
                panic!("a key that is not a string: {key:?}")
            };
            let value = match redis.command(&[b"GET", &key]) {
                Reply::Bulk(value) => value,
                other => panic!("GET gave {other:?}"),
            };
            (key, value)
        })
        .collect()
}

/// The one introspection key in Redis.
fn only_entry(redis: &RedisServer) -> Vec<u8> {
    let entries = introspection_entries(redis);
    assert_eq!(entries.len(), 1, "one shared answer expected");
    entries.into_iter().next().map(|(key, _)| key).expect("one")
}

fn pttl(redis: &RedisServer, key: &[u8]) -> i64 {
    match redis.command(&[b"PTTL", key]) {
        Reply::Int(ms) => ms,
        other => panic!("PTTL gave {other:?}"),
    }
}

/// Sends requests with new opaque tokens to `app` (each one a use of its store) until its
/// store uses Redis again, within 15 s.
async fn back_in_use(app: &Router, store: &RedisStore) {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut probe = 0;
    while !store.in_use() {
        assert!(
            Instant::now() < deadline,
            "Redis not used again within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        probe += 1;
        let _ = send(app, "/me", &format!("probe-{probe}")).await;
    }
}

#[tokio::test]
async fn a_token_used_100_times_on_each_instance_is_introspected_once() {
    let redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    let token = "opaque-token-shared-by-two-replicas";
    let mut answer = active("alice", "read");
    answer["exp"] = json!(now_secs() + 30);
    endpoint.answer(token, answer);
    let (a, _) = instance(&endpoint, &redis);
    let (b, _) = instance(&endpoint, &redis);

    assert_eq!(send(&a, "/me", token).await.status, StatusCode::OK);
    // The other 199 uses, both instances at once.
    let uses = (0..99)
        .map(|_| send(&a, "/me", token))
        .chain((0..100).map(|_| send(&b, "/me", token)));
    let replies: Vec<HttpReply> = futures_util::future::join_all(uses).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
        assert_eq!(&reply.body[..], b"alice");
    }
    assert_eq!(endpoint.calls(), 1, "one call for both instances");

    // What Redis holds: one key, named by digests only, living no longer than the token.
    let entries = introspection_entries(&redis);
    assert_eq!(entries.len(), 1);
    let (key, value) = &entries[0];
    let name = std::str::from_utf8(key).expect("an ASCII key");
    let digest = name
        .strip_prefix(&format!("{PREFIX}introspect:"))
        .expect("the prefix");
    assert!(
        digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let token_bytes = token.as_bytes();
    assert!(
        !value.windows(token_bytes.len()).any(|w| w == token_bytes),
        "the token is never written"
    );
    let ttl = pttl(&redis, key);
    assert!(
        0 < ttl && ttl <= 30_000,
        "TTL {ttl} ms within the token's exp"
    );
}

#[tokio::test]
async fn a_refusal_is_shared_for_the_negative_ttl() {
    let redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    // Unknown to the endpoint: `{"active":false}`, as for a revoked token.
    let token = "revoked-token";
    let (a, _) = instance(&endpoint, &redis);
    let (b, _) = instance(&endpoint, &redis);
    assert_invalid_token(&send(&a, "/me", token).await, "A");
    assert_invalid_token(&send(&b, "/me", token).await, "B");
    assert_eq!(endpoint.calls(), 1, "B took A's refusal from Redis");
    let ttl = pttl(&redis, &only_entry(&redis));
    assert!(
        0 < ttl && ttl <= 10_000,
        "a refusal lives the negative TTL (10 s), not {ttl} ms"
    );
}

#[tokio::test]
async fn values_without_the_shared_keys_seal_are_misses() {
    let redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    let (first, _) = instance(&endpoint, &redis);

    // The endpoint refuses `revoked`; an attacker who can write to Redis wants it accepted.
    assert_invalid_token(&send(&first, "/me", "revoked").await, "the refusal");
    let revoked_key = only_entry(&redis);
    // A genuine sealed answer, for another token.
    endpoint.answer("good", active("alice", "read"));
    assert_eq!(send(&first, "/me", "good").await.status, StatusCode::OK);
    let sealed_active = introspection_entries(&redis)
        .into_iter()
        .find(|(key, _)| *key != revoked_key)
        .map(|(_, value)| value)
        .expect("the answer for `good`");

    let forged = active("mallory", "read admin").to_string().into_bytes();
    let mut forged_with_fake_tag = forged.clone();
    forged_with_fake_tag.extend_from_slice(&[0x5a; 32]);
    let plants: [(&str, Vec<u8>); 5] = [
        ("an active answer without a seal", forged),
        ("an active answer with a made-up tag", forged_with_fake_tag),
        ("garbage", b"\x00\xff not an answer".to_vec()),
        ("an oversized value", vec![b'{'; 200 * 1024]),
        ("another token's sealed answer", sealed_active),
    ];
    for (what, value) in plants {
        redis.command(&[b"SET", &revoked_key, &value]);
        let calls = endpoint.calls();
        // A new instance: nothing cached in process, so only Redis could answer.
        let (fresh, _) = instance(&endpoint, &redis);
        let reply = send(&fresh, "/me", "revoked").await;
        assert_invalid_token(&reply, what);
        assert_eq!(
            endpoint.calls(),
            calls + 1,
            "{what}: the endpoint was asked"
        );
    }
    // A key of another Redis type.
    redis.command(&[b"DEL", &revoked_key]);
    redis.command(&[b"RPUSH", &revoked_key, b"{\"active\":true}"]);
    let calls = endpoint.calls();
    let (fresh, _) = instance(&endpoint, &redis);
    assert_invalid_token(&send(&fresh, "/me", "revoked").await, "a list");
    assert_eq!(
        endpoint.calls(),
        calls + 1,
        "a list: the endpoint was asked"
    );
}

#[tokio::test]
async fn during_an_outage_introspection_stays_correct_and_sharing_resumes() {
    let mut redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    let (a, store_a) = instance(&endpoint, &redis);
    let (b, store_b) = instance(&endpoint, &redis);

    redis.stop();
    endpoint.answer("during", active("erin", "read"));
    for (app, name) in [(&a, "A"), (&b, "B")] {
        for _ in 0..3 {
            let reply = send(app, "/me", "during").await;
            assert_eq!(reply.status, StatusCode::OK, "{name}: {reply:?}");
        }
    }
    assert_eq!(
        endpoint.calls(),
        2,
        "without Redis each instance asks once, then uses its own cache"
    );
    assert_invalid_token(&send(&a, "/me", "unknown").await, "refusals stay refusals");
    assert!(!store_a.in_use() && !store_b.in_use());

    redis.restart();
    // No restart of the API: after its back-off each store probes Redis on its next use
    // and uses it again.
    back_in_use(&a, &store_a).await;
    back_in_use(&b, &store_b).await;
    endpoint.answer("after", active("frank", "read"));
    let calls = endpoint.calls();
    assert_eq!(send(&a, "/me", "after").await.status, StatusCode::OK);
    assert_eq!(send(&b, "/me", "after").await.status, StatusCode::OK);
    assert_eq!(
        endpoint.calls(),
        calls + 1,
        "B used A's answer: sharing resumed"
    );
}

#[cfg(feature = "metrics")]
#[tokio::test(flavor = "current_thread")]
async fn shared_lookups_and_the_redis_mode_are_measured() {
    use metrics_util::debugging::DebuggingRecorder;
    use support::{
        introspection::ISSUER,
        metrics::{counter, gauge, values},
    };

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);
    let mut redis = RedisServer::start();
    let endpoint = IntrospectionServer::start().await;
    endpoint.answer("measured", active("grace", "read"));
    let (a, store_a) = instance(&endpoint, &redis);
    let (b, _) = instance(&endpoint, &redis);
    assert_eq!(send(&a, "/me", "measured").await.status, StatusCode::OK);
    assert_eq!(send(&b, "/me", "measured").await.status, StatusCode::OK);
    let shared = "portcullis_introspection_shared_total";
    let by = |result| [("issuer", ISSUER), ("result", result)];
    let seen = values(&snapshotter);
    assert_eq!(counter(&seen, shared, &by("miss")), 1, "A missed");
    assert_eq!(counter(&seen, shared, &by("hit")), 1, "B found A's answer");
    assert_eq!(
        counter(&seen, "portcullis_introspection_calls_total", &by("active")),
        1
    );
    assert_eq!(gauge(&seen, "portcullis_redis_in_use", &[]), 1.0);

    redis.stop();
    assert_eq!(
        send(&a, "/me", "other").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(!store_a.in_use());
    let seen = values(&snapshotter);
    assert_eq!(counter(&seen, shared, &by("error")), 1);
    assert_eq!(
        gauge(&seen, "portcullis_redis_in_use", &[]),
        0.0,
        "Redis left"
    );

    redis.restart();
    back_in_use(&a, &store_a).await;
    let seen = values(&snapshotter);
    assert_eq!(
        gauge(&seen, "portcullis_redis_in_use", &[]),
        1.0,
        "Redis back"
    );
}
