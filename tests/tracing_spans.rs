//! Tracing spans: one `authenticate` span per request with its outcome and, once the token
//! is verified, its issuer; the JWKS fetch and the introspection call as child spans; never
//! the token. Captured with a `tracing-subscriber` fmt layer that prints closed spans.

use std::{
    collections::HashMap,
    io::Write,
    net::SocketAddr,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use axum::{
    Form, Json, Router,
    body::Body,
    http::{Request, StatusCode, header},
    routing::{get, post},
};
use portcullis::{
    __doc_support::{JWKS, TOKEN},
    BearerAuthLayer, Introspection, Jwt,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
    }
}

async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });
    addr
}

async fn status(app: &Router, token: &str) -> StatusCode {
    let request = Request::get("/")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    tokio::time::timeout(Duration::from_secs(10), app.clone().oneshot(request))
        .await
        .expect("an answer within 10 s")
        .expect("infallible")
        .status()
}

#[tokio::test]
async fn spans_carry_the_outcome_and_issuer_and_nest_the_outbound_calls() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis=trace"))
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let jwks = serve(Router::new().route("/jwks", get(|| async { JWKS }))).await;
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri("https://issuer.example.com", format!("http://{jwks}/jwks"))
        .audience("https://api.example.com")
        .build()
        .expect("config");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    // The first request waits for the keys: the fetch is a child of its span.
    assert_eq!(status(&app, TOKEN).await, StatusCode::OK);
    assert_eq!(status(&app, "not-a-token").await, StatusCode::UNAUTHORIZED);

    let endpoint = serve(Router::new().route(
        "/introspect",
        post(|Form(form): Form<HashMap<String, String>>| async move {
            let active = form.get("token").map(String::as_str) == Some("opaque-good");
            Json::<Value>(
                json!({"active": active, "token_type": "Bearer", "aud": "https://api.example.com"}),
            )
        }),
    ))
    .await;
    let introspection = Introspection::builder()
        .issuer("https://idp.example.com")
        .endpoint(format!("http://{endpoint}/introspect"))
        .client_credentials("api", "very-secret")
        .audience("https://api.example.com")
        .build()
        .expect("config");
    let opaque = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(introspection));
    assert_eq!(status(&opaque, "opaque-good").await, StatusCode::OK);

    let text = logs.text();
    assert!(
        text.contains("authenticate{outcome=\"ok\" issuer=\"https://issuer.example.com\"}"),
        "{text}"
    );
    assert!(
        text.contains("authenticate{outcome=InvalidToken}"),
        "{text}"
    );
    assert!(
        text.contains(
            "authenticate:outbound{call=\"jwks_fetch\" issuer=\"https://issuer.example.com\"}"
        ),
        "the JWKS fetch is a child of the authentication: {text}"
    );
    assert!(
        text.contains(
            "authenticate:outbound{call=\"introspection\" issuer=\"https://idp.example.com\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("authenticate{outcome=\"ok\" issuer=\"https://idp.example.com\"}"),
        "{text}"
    );
    for secret in [TOKEN, "opaque-good", "very-secret", "alice"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
}
