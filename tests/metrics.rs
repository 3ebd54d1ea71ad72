//! Metrics through the `metrics` facade, recorded by `metrics-util`'s debugging recorder and
//! checked by name, labels and value. Servers (JWKS, introspection) are on 127.0.0.1.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Form, Json, Router,
    body::Body,
    extract::State,
    http::{Request, StatusCode, header},
    routing::{get, post},
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use portcullis::{
    __doc_support::{JWKS, ROLES_TOKEN, TOKEN},
    BearerAuthLayer, Introspection, Jwt,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;

mod support;

use support::metrics::{counter, gauge, key, values};

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });
    addr
}

async fn status(app: &Router, token: Option<&str>) -> StatusCode {
    let mut request = Request::get("/");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request.body(Body::empty()).expect("request");
    tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(request))
        .await
        .expect("an answer within 10 s")
        .expect("infallible")
        .status()
}

#[tokio::test(flavor = "current_thread")]
async fn requests_keys_and_introspection_are_measured() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    // JWT: keys from a JWKS endpoint.
    let jwks = serve(Router::new().route("/jwks", get(|| async { JWKS }))).await;
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, format!("http://{jwks}/jwks"))
        .audience(AUDIENCE)
        .build()
        .expect("config");
    jwt.refresh().await.expect("keys");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    assert_eq!(status(&app, Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(status(&app, Some(TOKEN)).await, StatusCode::OK);
    assert_eq!(status(&app, None).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status(&app, Some("not-a-jwt")).await,
        StatusCode::UNAUTHORIZED
    );

    // Introspection: `good` is active, anything else inactive; calls are counted.
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = serve(
        Router::new()
            .route(
                "/introspect",
                post(
                    |State(calls): State<Arc<AtomicUsize>>,
                     Form(form): Form<HashMap<String, String>>| async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let active = form.get("token").map(String::as_str) == Some("good");
                        Json::<Value>(if active {
                            json!({"active": true, "token_type": "Bearer", "aud": AUDIENCE})
                        } else {
                            json!({"active": false})
                        })
                    },
                ),
            )
            .with_state(Arc::clone(&calls)),
    )
    .await;
    let introspection = Introspection::builder()
        .issuer("https://idp.example.com")
        .endpoint(format!("http://{endpoint}/introspect"))
        .client_credentials("api", "secret")
        .audience(AUDIENCE)
        .build()
        .expect("config");
    let opaque = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(introspection));
    // Ten requests for one new token share one call.
    let shared =
        futures_util::future::join_all((0..10).map(|_| status(&opaque, Some("good")))).await;
    assert!(shared.iter().all(|s| *s == StatusCode::OK), "{shared:?}");
    assert_eq!(status(&opaque, Some("good")).await, StatusCode::OK);
    assert_eq!(status(&opaque, Some("bad")).await, StatusCode::UNAUTHORIZED);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    let v = values(&snapshotter);
    let idp = "https://idp.example.com";
    assert_eq!(
        counter(
            &v,
            "portcullis_requests_total",
            &[("outcome", "ok"), ("issuer", ISSUER)]
        ),
        2
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_requests_total",
            &[("outcome", "ok"), ("issuer", idp)]
        ),
        11
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_requests_total",
            &[("outcome", "missing_token")]
        ),
        1
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_requests_total",
            &[("outcome", "invalid_token")]
        ),
        2
    );
    match v.get(&key("portcullis_authentication_duration_seconds", &[])) {
        Some(DebugValue::Histogram(samples)) => {
            assert_eq!(samples.len(), 4 + 12, "one sample per request");
            assert!(
                samples
                    .iter()
                    .all(|s| s.into_inner() >= 0.0 && s.into_inner() < 10.0)
            );
        }
        other => panic!("histogram: {other:?}"),
    }
    assert_eq!(
        counter(
            &v,
            "portcullis_jwks_fetches_total",
            &[("issuer", ISSUER), ("result", "ok")]
        ),
        1
    );
    assert_eq!(
        gauge(&v, "portcullis_jwks_keys", &[("issuer", ISSUER)]),
        1.0
    );
    assert_eq!(
        gauge(&v, "portcullis_jwks_stale", &[("issuer", ISSUER)]),
        0.0
    );
    assert!(
        gauge(
            &v,
            "portcullis_jwks_last_success_timestamp_seconds",
            &[("issuer", ISSUER)]
        ) > 1.7e9
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_introspection_calls_total",
            &[("issuer", idp), ("result", "active")]
        ),
        1
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_introspection_calls_total",
            &[("issuer", idp), ("result", "inactive")]
        ),
        1
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_introspection_cache_total",
            &[("issuer", idp), ("result", "miss")]
        ),
        11
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_introspection_cache_total",
            &[("issuer", idp), ("result", "hit")]
        ),
        1
    );
    assert_eq!(
        counter(
            &v,
            "portcullis_introspection_coalesced_total",
            &[("issuer", idp)]
        ),
        9
    );
    // The verified-token cache: the first JWT and the malformed one were looked up in vain,
    // the repeated JWT was answered from the cache.
    assert_eq!(
        counter(&v, "portcullis_token_cache_total", &[("result", "miss")]),
        2
    );
    assert_eq!(
        counter(&v, "portcullis_token_cache_total", &[("result", "hit")]),
        1
    );
    // Bounded labels: no token or subject ever appears.
    for (_, labels) in v.keys() {
        for (_, value) in labels {
            assert!(
                !["good", "bad", TOKEN, "alice"].contains(&value.as_str()),
                "{labels:?}"
            );
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_token_cache_counts_hits_misses_and_evictions_for_room() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _guard = metrics::set_default_local_recorder(&recorder);

    // Room for one verified token: each new token evicts the other.
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, JWKS)
        .audience(AUDIENCE)
        .token_cache_capacity(1)
        .build()
        .expect("config");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    // miss (stored), hit, miss (evicts TOKEN), hit, miss (evicts ROLES_TOKEN).
    for token in [TOKEN, TOKEN, ROLES_TOKEN, ROLES_TOKEN, TOKEN] {
        assert_eq!(status(&app, Some(token)).await, StatusCode::OK);
    }
    let v = values(&snapshotter);
    assert_eq!(
        counter(&v, "portcullis_token_cache_total", &[("result", "hit")]),
        2
    );
    assert_eq!(
        counter(&v, "portcullis_token_cache_total", &[("result", "miss")]),
        3
    );
    assert_eq!(
        counter(&v, "portcullis_token_cache_evictions_total", &[]),
        2,
        "ROLES_TOKEN evicted TOKEN, then TOKEN evicted ROLES_TOKEN"
    );
}
