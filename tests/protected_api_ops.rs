//! The operations side of `examples/protected_api.rs`, run as a process: `GET /ready`
//! (`503` with a JSON reason while an issuer has no keys, `200` once they load) and
//! `--metrics-addr` (Prometheus text with `portcullis_requests_total` by outcome), against
//! an in-process issuer (discovery + JWKS) on 127.0.0.1.
//!
//! `cargo test` builds the example; `cargo test --test protected_api_ops` alone does not
//! (build it first with `cargo build --all-features --example protected_api`). Each wait is
//! bounded, and the example is killed when the test ends, passed or failed.

mod support;

use std::time::{Duration, Instant};

use axum::{Json, Router, extract::State, routing};
use reqwest::{Client, StatusCode, header};
use serde_json::{Value, json};
use support::{
    example::ExampleServer,
    issuer::{AUDIENCE, TestKey, closed_port_url, default_claims, jwks, mint},
};
use tokio::sync::watch;

/// Longest wait for one HTTP answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for the example's state to change (keys loading, a fetch failing).
const STATE_TIMEOUT: Duration = Duration::from_secs(20);

fn client() -> Client {
    Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .no_proxy()
        .build()
        .expect("client")
}

/// An issuer on 127.0.0.1 (OpenID discovery + JWKS) whose JWKS endpoint holds every answer
/// until the gate is opened (`send(true)`), so the test sees the example before its keys
/// load whatever the machine's speed. Returns the issuer identifier and the gate.
async fn gated_issuer(jwks: String) -> (String, watch::Sender<bool>) {
    #[derive(Clone)]
    struct Issuer {
        base: String,
        jwks: String,
        gate: watch::Receiver<bool>,
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let (open, gate) = watch::channel(false);
    let state = Issuer {
        base: base.clone(),
        jwks,
        gate,
    };
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            routing::get(|State(issuer): State<Issuer>| async move {
                Json(json!({
                    "issuer": issuer.base,
                    "jwks_uri": format!("{}/jwks", issuer.base),
                }))
            }),
        )
        .route(
            "/jwks",
            routing::get(|State(mut issuer): State<Issuer>| async move {
                // Closed for good (sender gone) counts as open.
                let _ = issuer.gate.wait_for(|open| *open).await;
                ([(header::CONTENT_TYPE, "application/json")], issuer.jwks)
            }),
        )
        .with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, open)
}

/// `GET url`, with a bearer token if given: the status and the body.
async fn get(http: &Client, url: &str, token: Option<&str>) -> (StatusCode, String) {
    let mut request = http.get(url);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = response.status();
    let body = response.text().await.expect("body");
    (status, body)
}

/// `GET {example}/ready`: the status and the JSON body.
async fn ready(http: &Client, example: &ExampleServer) -> (StatusCode, Value) {
    let (status, body) = get(http, &format!("{}/ready", example.url), None).await;
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("/ready answered {status} with no JSON ({e}): {body}"));
    (status, json)
}

/// Polls `/ready` until `done` holds for its answer, within [`STATE_TIMEOUT`].
async fn ready_until(
    http: &Client,
    example: &ExampleServer,
    what: &str,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> (StatusCode, Value) {
    let deadline = Instant::now() + STATE_TIMEOUT;
    loop {
        let (status, body) = ready(http, example).await;
        if done(status, &body) {
            return (status, body);
        }
        assert!(
            Instant::now() < deadline,
            "/ready never showed {what} within {STATE_TIMEOUT:?}; last {status} {body}\n--- example stderr ---\n{}",
            example.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `/metrics` URL the example announced on stdout.
fn metrics_url(example: &ExampleServer) -> String {
    let stdout = example.stdout();
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("metrics on "))
        .unwrap_or_else(|| panic!("no `metrics on URL` line in the example's stdout:\n{stdout}"))
        .trim()
        .to_owned()
}

/// The value of the `portcullis_requests_total` sample whose labels are exactly `labels`.
fn requests_total(text: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter_map(|line| line.strip_prefix("portcullis_requests_total{"))
        .find_map(|rest| {
            let (set, value) = rest.split_once("} ")?;
            let mut found: Vec<&str> = set.split(',').collect();
            let mut wanted: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            found.sort_unstable();
            wanted.sort_unstable();
            (found == wanted).then(|| value.trim().parse().ok())?
        })
}

#[tokio::test]
async fn ready_turns_200_once_the_keys_load_and_metrics_count_each_outcome() {
    let key = TestKey::rsa_a();
    // The example's first key fetch waits at the gate: it serves meanwhile, not ready yet.
    let (issuer, gate) = gated_issuer(jwks(&[&key])).await;
    let example = ExampleServer::start(&issuer, AUDIENCE, &["--metrics-addr", "127.0.0.1:0"]).await;
    let http = client();
    let context = || format!("--- example stderr ---\n{}", example.stderr());

    let (status, body) = ready(&http, &example).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{body}\n{}",
        context()
    );
    assert_eq!(body["ready"], false, "{body}");
    assert!(
        body["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a reason: {body}"
    );
    assert_eq!(body["issuers"][0]["issuer"], issuer.as_str(), "{body}");
    assert_eq!(body["issuers"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(
        body["issuers"][0]["error"].is_null(),
        "no fetch has failed yet: {body}"
    );

    gate.send(true).expect("the issuer is up");
    let (_, body) = ready_until(&http, &example, "200", |status, _| status == StatusCode::OK).await;
    assert_eq!(body["ready"], true, "{body}");

    // One accepted and one rejected request through the auth layer.
    let me = format!("{}/me", example.url);
    let token = mint(&key, default_claims(&issuer, AUDIENCE));
    let (status, body) = get(&http, &me, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", context());
    let forged = format!("{}AAAA", &token[..token.len() - 4]);
    let (status, _) = get(&http, &me, Some(&forged)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{}", context());

    let (status, text) = get(&http, &metrics_url(&example), None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        requests_total(&text, &[("outcome", "ok"), ("issuer", &issuer)]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests_total(&text, &[("outcome", "invalid_token")]),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        requests_total(&text, &[("outcome", "unavailable")]),
        None,
        "no request was turned away for want of keys: {text}"
    );
    assert!(!text.contains(&token[..40]), "no token in the metrics");
}

#[tokio::test]
async fn an_unreachable_issuer_keeps_the_example_unready_with_the_cause() {
    let key = TestKey::rsa_a();
    // Nothing listens there.
    let issuer = closed_port_url("").await;
    let example = ExampleServer::start(&issuer, AUDIENCE, &["--metrics-addr", "127.0.0.1:0"]).await;
    let http = client();

    let (status, body) = ready_until(&http, &example, "the fetch error", |_, body| {
        !body["issuers"][0]["error"].is_null()
    })
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["issuers"][0]["issuer"], issuer.as_str(), "{body}");
    let error = body["issuers"][0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("transport error"), "the cause: {body}");

    // A valid-looking token cannot be checked: 503 with Retry-After, counted as such.
    let token = mint(&key, default_claims(&issuer, AUDIENCE));
    let response = http
        .get(format!("{}/me", example.url))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .send()
        .await
        .expect("GET /me");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key(header::RETRY_AFTER));

    let (_, text) = get(&http, &metrics_url(&example), None).await;
    assert_eq!(
        requests_total(&text, &[("outcome", "unavailable")]),
        Some(1.0),
        "{text}"
    );
}
