//! Without a `tracing` subscriber, the `authenticate` span still reaches a `log` logger that
//! takes DEBUG (through `tracing`'s `log` feature), and stays out of one that does not.
//! One test in its own binary: the `log` logger is global to the process.

mod support;

use std::sync::{Mutex, PoisonError};

use axum::{Router, http::StatusCode, routing::get};
use portcullis::{
    __doc_support::{JWKS, TOKEN},
    BearerAuthLayer, Jwt,
};
use support::introspection::send;

/// Every record as `target: message`.
struct Captured(Mutex<Vec<String>>);

impl log::Log for Captured {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(format!("{}: {}", record.target(), record.args()));
    }
    fn flush(&self) {}
}

static LOGGER: Captured = Captured(Mutex::new(Vec::new()));

fn taken() -> Vec<String> {
    std::mem::take(&mut *LOGGER.0.lock().unwrap_or_else(PoisonError::into_inner))
}

async fn status(app: &Router, token: &str) -> StatusCode {
    send(app, "/", token).await.status
}

#[tokio::test]
async fn the_authenticate_span_reaches_a_log_logger_only_when_it_takes_debug() {
    log::set_logger(&LOGGER).expect("the only logger of this binary");
    let jwt = Jwt::builder()
        .issuer_with_jwks("https://issuer.example.com", JWKS)
        .audience("https://api.example.com")
        .build()
        .expect("config");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    let of_the_span = |records: &[String]| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.starts_with("portcullis::authenticate: "))
            .cloned()
            .collect()
    };

    log::set_max_level(log::LevelFilter::Debug);
    assert_eq!(status(&app, TOKEN).await, StatusCode::OK);
    assert_eq!(status(&app, "not-a-token").await, StatusCode::UNAUTHORIZED);
    let records = taken();
    let span = of_the_span(&records);
    // One record per field, in the order the layer records them.
    for field in [
        "outcome=\"ok\"",
        "issuer=\"https://issuer.example.com\"",
        "kid=\"doc\"",
    ] {
        assert!(
            span.iter()
                .any(|r| r.ends_with(&format!("authenticate; {field}"))),
            "the admitted request's {field}: {records:#?}"
        );
    }
    assert!(
        span.iter().any(|r| r.contains("outcome=InvalidToken")),
        "the refused request's outcome: {records:#?}"
    );
    assert!(
        records.iter().all(|r| !r.contains(TOKEN)),
        "never the token: {records:#?}"
    );

    log::set_max_level(log::LevelFilter::Info);
    assert_eq!(status(&app, TOKEN).await, StatusCode::OK);
    assert_eq!(status(&app, "not-a-token").await, StatusCode::UNAUTHORIZED);
    let records = taken();
    assert!(
        records.iter().all(|r| !r.contains("authenticate")),
        "nothing of the span at INFO: {records:#?}"
    );
}
