//! Readiness per issuer, before and after the first fetch and during an outage, and the
//! bounded warm-up retry, against a JWKS endpoint on 127.0.0.1 that can be switched off.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use portcullis::{__doc_support::JWKS, Jwt};
use tokio::net::TcpListener;

const ISSUER: &str = "https://issuer.example.com";

#[derive(Clone, Default)]
struct Switch {
    down: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
}

async fn jwks_server() -> (SocketAddr, Switch) {
    let switch = Switch::default();
    let app = Router::new()
        .route(
            "/jwks",
            get(|State(s): State<Switch>| async move {
                s.hits.fetch_add(1, Ordering::SeqCst);
                if s.down.load(Ordering::SeqCst) {
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                } else {
                    JWKS.into_response()
                }
            }),
        )
        .with_state(switch.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });
    (addr, switch)
}

#[tokio::test]
async fn status_before_and_after_the_first_fetch_and_during_an_outage() {
    let (addr, switch) = jwks_server().await;
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, format!("http://{addr}/jwks"))
        .audience("https://api.example.com")
        .jwks_ttl(Duration::from_millis(200))
        .jwks_refresh_cooldown(Duration::from_millis(100))
        .jwks_max_stale(Duration::from_secs(1))
        .build()
        .expect("config");

    let before = &jwt.status()[0];
    assert!(!jwt.is_ready());
    assert_eq!(before.issuer(), ISSUER);
    assert!(!before.has_keys() && !before.serving_stale());
    assert_eq!(before.since_last_fetch(), None);
    assert_eq!(before.last_error(), None);

    jwt.warm_up(Duration::from_secs(5)).await.expect("warm");
    let after = &jwt.status()[0];
    assert!(jwt.is_ready());
    assert!(after.has_keys() && !after.serving_stale());
    assert!(
        after
            .since_last_fetch()
            .is_some_and(|d| d < Duration::from_secs(1))
    );
    assert_eq!(after.last_error(), None);

    // Outage: past the TTL the fetch fails; the stale keys still serve.
    switch.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(jwt.refresh().await.is_ok(), "stale keys are still usable");
    let outage = &jwt.status()[0];
    assert!(jwt.is_ready());
    assert!(outage.has_keys() && outage.serving_stale());
    assert_eq!(
        outage.last_error(),
        Some("unexpected status 500 Internal Server Error")
    );

    // Past the stale period: not ready any more.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let gone = &jwt.status()[0];
    assert!(!jwt.is_ready());
    assert!(!gone.has_keys());
    assert!(
        gone.since_last_fetch()
            .is_some_and(|d| d >= Duration::from_secs(1))
    );
}

#[tokio::test]
async fn warm_up_retries_within_its_bound_and_names_the_issuer() {
    let (addr, switch) = jwks_server().await;
    switch.down.store(true, Ordering::SeqCst);
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, format!("http://{addr}/jwks"))
        .issuer_with_jwks("https://static.example.com", JWKS)
        .audience("https://api.example.com")
        .jwks_refresh_cooldown(Duration::from_millis(300))
        .build()
        .expect("config");
    let started = Instant::now();
    let error = jwt
        .warm_up(Duration::from_millis(1000))
        .await
        .expect_err("the issuer is down");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "bounded: {took:?}");
    let hits = switch.hits.load(Ordering::SeqCst);
    assert!(
        (2..=4).contains(&hits),
        "retried, a bounded number of times: {hits}"
    );
    assert_eq!(error.issuers().len(), 1, "the static issuer is ready");
    assert_eq!(
        error.to_string(),
        format!("no keys for issuer `{ISSUER}`: unexpected status 500 Internal Server Error")
    );

    // The issuer comes back: a warm-up succeeds.
    switch.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    jwt.warm_up(Duration::from_secs(2)).await.expect("warm");
    assert!(jwt.is_ready());
}
