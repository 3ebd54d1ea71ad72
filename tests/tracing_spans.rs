//! Tracing spans: one `authenticate` span per request with its outcome and, once the token
//! is verified, its issuer and the `kid` of the key that verified it; the JWKS fetch and the introspection call as child spans; never
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
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
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
    // The second one is served from the verified-token cache: the same span fields.
    assert_eq!(status(&app, TOKEN).await, StatusCode::OK);
    assert_eq!(status(&app, "not-a-token").await, StatusCode::UNAUTHORIZED);
    // Rejected tokens naming a key id: an unknown one chosen by the sender, and the real
    // one over a forged signature. Neither `kid` is recorded.
    let (_, payload_and_signature) = TOKEN.split_once('.').expect("a JWS");
    let attacker_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"attacker-chosen-kid"}"#);
    let attacker = format!("{attacker_header}.{payload_and_signature}");
    assert_eq!(status(&app, &attacker).await, StatusCode::UNAUTHORIZED);
    let forged = format!("{}AAAA", &TOKEN[..TOKEN.len() - 4]);
    assert_eq!(status(&app, &forged).await, StatusCode::UNAUTHORIZED);

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
    let accepted = "authenticate{outcome=\"ok\" issuer=\"https://issuer.example.com\" kid=\"doc\"}";
    assert_eq!(
        text.matches(accepted).count(),
        2,
        "both accepted JWTs (verified, then cached) carry the verifying key's kid: {text}"
    );
    assert_eq!(
        text.matches("authenticate{outcome=InvalidToken}").count(),
        3,
        "three rejected JWTs, none with a kid: {text}"
    );
    assert!(!text.contains("attacker-chosen-kid"), "{text}");
    for line in text.lines().filter(|l| l.contains("InvalidToken")) {
        assert!(
            !line.contains("kid="),
            "a rejected token's kid was recorded: {line}"
        );
    }
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
