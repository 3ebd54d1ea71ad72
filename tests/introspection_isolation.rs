//! Introspection failure isolation, against the in-process RFC 7662 endpoint: bounded
//! concurrent calls, the failure back-off and its half-open probe, refusals cached apart
//! from active answers, and the host check on a discovered endpoint.

mod support;

use std::time::{Duration, Instant};

use futures_util::{StreamExt, future::join_all, stream};
use portcullis::{Introspection, introspect::DEFAULT_MAX_CONCURRENT_CALLS};
use serde_json::json;
use support::introspection::{
    CLIENT_ID, CLIENT_SECRET, active, app, assert_accepted, assert_invalid_token,
    assert_unavailable, build, builder, send,
    server::{IntrospectionServer, Mode},
};

#[tokio::test]
async fn concurrent_calls_are_bounded() {
    let server = IntrospectionServer::start().await;
    server.set_mode(Mode::Stall);
    let api = app(build(
        builder(&server)
            .max_concurrent_calls(2)
            .http_timeout(Duration::from_millis(1500)),
    ));
    let requests = (0..10).map(|i| {
        let api = api.clone();
        tokio::spawn(async move { send(&api, "/me", &format!("stalled-{i}")).await })
    });
    let requests: Vec<_> = requests.collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        server.calls(),
        2,
        "two calls in flight, eight waiting for a slot"
    );
    for reply in join_all(requests).await {
        assert_unavailable(&reply.expect("request task"), "stalled endpoint");
    }
}

#[tokio::test]
async fn an_outage_opens_the_circuit_and_a_probe_closes_it() {
    let server = IntrospectionServer::start().await;
    server.set_mode(Mode::ServerError);
    let api = app(build(
        builder(&server).failure_backoff(Duration::from_secs(1)),
    ));

    // 1 000 distinct tokens at once during the outage: a handful of calls, all 503.
    let replies = join_all((0..1000).map(|i| {
        let api = api.clone();
        async move { send(&api, "/me", &format!("outage-{i}")).await }
    }))
    .await;
    for (i, reply) in replies.iter().enumerate() {
        assert_unavailable(reply, &format!("request {i} during the outage"));
    }
    let calls = server.calls();
    assert!(
        (3..=DEFAULT_MAX_CONCURRENT_CALLS).contains(&calls),
        "{calls} upstream calls for 1 000 requests"
    );

    // While the circuit is open, no call at all, and the answer comes at once.
    let started = Instant::now();
    for i in 0..100 {
        assert_unavailable(&send(&api, "/me", &format!("open-{i}")).await, "open");
    }
    assert!(started.elapsed() < Duration::from_millis(900));
    assert_eq!(server.calls(), calls, "no call while the circuit is open");

    // After the back-off, one probe; the endpoint is back, so the circuit closes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    server.set_mode(Mode::Normal);
    server.answer("after", active("alice", "read"));
    assert_accepted(&send(&api, "/me", "after").await, "the probe");
    assert_eq!(server.calls(), calls + 1);
    server.answer("after-2", active("bob", "read"));
    assert_accepted(&send(&api, "/me", "after-2").await, "closed again");
}

#[tokio::test]
async fn a_failed_probe_doubles_the_back_off() {
    let server = IntrospectionServer::start().await;
    server.set_mode(Mode::ServerError);
    let api = app(build(
        builder(&server)
            .failure_threshold(1)
            .failure_backoff(Duration::from_secs(1)),
    ));
    assert_unavailable(&send(&api, "/me", "a").await, "first failure");
    assert_eq!(server.calls(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let probe = send(&api, "/me", "b").await;
    assert_unavailable(&probe, "failed probe");
    assert_eq!(server.calls(), 2, "one probe");
    assert_eq!(probe.header(axum::http::header::RETRY_AFTER), Some("2"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_unavailable(&send(&api, "/me", "c").await, "still open");
    assert_eq!(server.calls(), 2, "the doubled back-off holds");
}

#[tokio::test]
async fn a_flood_of_inactive_tokens_leaves_an_active_answer_cached() {
    const FLOOD: usize = 50_000;
    const FLOOD_BOUND: Duration = Duration::from_secs(600);
    let server = IntrospectionServer::start().await;
    server.answer("good", active("alice", "read"));
    let api = app(build(
        builder(&server)
            .cache_capacity(100)
            .cache_max_ttl(Duration::from_secs(3600))
            .negative_cache_capacity(1_000)
            .max_concurrent_calls(64),
    ));
    assert_accepted(&send(&api, "/me", "good").await, "the active token");
    assert_eq!(server.calls(), 1);

    let flood = stream::iter(0..FLOOD)
        .map(|i| {
            let api = api.clone();
            async move { send(&api, "/me", &format!("junk-{i}")).await.status }
        })
        .buffer_unordered(64)
        .filter(|status| std::future::ready(*status == axum::http::StatusCode::UNAUTHORIZED))
        .count();
    let refused = tokio::time::timeout(FLOOD_BOUND, flood)
        .await
        .unwrap_or_else(|_| panic!("the flood did not finish within {FLOOD_BOUND:?}"));
    assert_eq!(refused, FLOOD);
    assert_eq!(server.calls(), 1 + FLOOD);

    assert_accepted(&send(&api, "/me", "good").await, "after the flood");
    assert_eq!(server.calls(), 1 + FLOOD, "still answered from the cache");
}

#[tokio::test]
async fn a_discovered_endpoint_on_another_host_needs_an_opt_in() {
    let server = IntrospectionServer::start().await;
    let issuer = server.base.clone();
    // The same listener under another host name: a different host to the issuer's.
    let elsewhere = server.endpoint().replace("127.0.0.1", "localhost");
    server.serve_discovery(json!({ "issuer": issuer, "introspection_endpoint": elsewhere }));
    let mut answer = active("alice", "read");
    answer["iss"] = json!(issuer);
    server.answer("t", answer);
    let configure = || {
        Introspection::builder()
            .issuer(&issuer)
            .client_credentials(CLIENT_ID, CLIENT_SECRET)
            .dangerous_accept_any_audience(true)
            .http_timeout(Duration::from_secs(2))
    };

    let strict = app(configure().build().expect("valid configuration"));
    assert_unavailable(&send(&strict, "/me", "t").await, "endpoint on another host");
    assert_eq!(server.calls(), 0, "the token was not sent there");

    let opted_in = app(configure()
        .allow_introspection_host("localhost")
        .build()
        .expect("valid configuration"));
    assert_accepted(&send(&opted_in, "/me", "t").await, "opted in");
    assert_eq!(server.calls(), 1);
}

#[tokio::test]
async fn refusals_are_cached_and_shared() {
    let server = IntrospectionServer::start().await;
    let api = app(build(builder(&server)));
    let replies = join_all((0..20).map(|_| send(&api, "/me", "inactive"))).await;
    for reply in &replies {
        assert_invalid_token(reply, "inactive");
    }
    assert_eq!(server.calls(), 1, "one call for twenty concurrent requests");
    assert_invalid_token(&send(&api, "/me", "inactive").await, "cached refusal");
    assert_eq!(server.calls(), 1);
}
