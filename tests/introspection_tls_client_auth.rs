//! `tls_client_auth` (RFC 8705 §2) towards the introspection endpoint, end to end: an
//! in-process endpoint on 127.0.0.1 served over rustls that demands a client certificate
//! from a CA generated in the test (rcgen), and the application's own `reqwest::Client`
//! carrying that certificate. portcullis sends only `client_id` in the form.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Form, Json, Router,
    extract::State,
    http::{HeaderMap, header},
    routing::post,
};
use axum_server::tls_rustls::RustlsConfig;
use portcullis::{Introspection, IntrospectionBuilder};
use rustls::{ServerConfig, pki_types::CertificateDer, server::WebPkiClientVerifier};
use serde_json::Value;
use support::introspection::{
    AUDIENCE, ISSUER, active, app, assert_accepted, assert_unavailable, lock, send,
};
use support::pki::{Leaf, TestCa, provider, root_store};

const CLIENT_ID: &str = "tls-resource-server";
const TOKEN: &str = "opaque-token-for-tls-client-auth";

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all from the CA.
struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    server: Leaf,
    /// The client's certificate and private key, PEM, as `reqwest::Identity` reads them.
    client_identity_pem: String,
}

fn pki() -> Pki {
    let ca = TestCa::new();
    Pki {
        ca_der: ca.der(),
        ca_pem: ca.pem(),
        server: ca.server(&["127.0.0.1"]),
        client_identity_pem: ca.client(&["tls-resource-server.example"]).identity_pem(),
    }
}

/// What the endpoint received: the form fields and whether an `Authorization` header came.
#[derive(Default)]
struct Seen {
    calls: Vec<(HashMap<String, String>, bool)>,
}

/// The introspection endpoint over TLS on 127.0.0.1; a handshake without a client
/// certificate from the CA fails, so only authenticated clients reach the handler.
async fn serve_endpoint(pki: &Pki) -> (String, Arc<Mutex<Seen>>) {
    let verifier = WebPkiClientVerifier::builder_with_provider(root_store(&pki.ca_der), provider())
        .build()
        .expect("client verifier (certificates required)");
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.cert.clone()], pki.server.key())
        .expect("server certificate");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let endpoint = Router::new()
        .route(
            "/introspect",
            post(
                |State(seen): State<Arc<Mutex<Seen>>>,
                 headers: HeaderMap,
                 Form(form): Form<HashMap<String, String>>| async move {
                    let active_token = form.get("token").map(String::as_str) == Some(TOKEN);
                    lock(&seen)
                        .calls
                        .push((form, headers.contains_key(header::AUTHORIZATION)));
                    let mut answer = active("svc", "read");
                    answer["aud"] = Value::from(AUDIENCE);
                    if !active_token {
                        answer = serde_json::json!({"active": false});
                    }
                    Json(answer)
                },
            ),
        )
        .with_state(Arc::clone(&seen));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local address").port();
    let server =
        axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(config)));
    tokio::spawn(async move { server.serve(endpoint.into_make_service()).await });
    (format!("https://127.0.0.1:{port}/introspect"), seen)
}

/// The application's client: trusts only the test CA, and presents `identity` if given.
fn client(pki: &Pki, identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("CA PEM");
    let mut builder = reqwest::Client::builder().tls_certs_only([ca]);
    if let Some(pem) = identity {
        builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    builder.build().expect("client")
}

fn introspection(endpoint: &str, http: reqwest::Client) -> IntrospectionBuilder {
    Introspection::builder()
        .issuer(ISSUER)
        .endpoint(endpoint)
        .client_tls_auth(CLIENT_ID)
        .http_client(http)
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(5))
}

#[tokio::test]
async fn with_the_client_certificate_the_token_is_accepted_and_no_secret_is_sent() {
    let pki = pki();
    let (endpoint, seen) = serve_endpoint(&pki).await;
    let auth = introspection(&endpoint, client(&pki, Some(&pki.client_identity_pem)))
        .build()
        .expect("config");
    let app = app(auth);

    let answer = assert_accepted(&send(&app, "/me", TOKEN).await, "client certificate");
    assert_eq!(answer["sub"], "svc");
    assert_eq!(answer["iss"], ISSUER);

    let seen = lock(&seen);
    assert_eq!(seen.calls.len(), 1, "one introspection call");
    let (form, authorization) = &seen.calls[0];
    assert_eq!(form.get("token").map(String::as_str), Some(TOKEN));
    assert_eq!(form.get("client_id").map(String::as_str), Some(CLIENT_ID));
    for field in ["client_secret", "client_assertion", "client_assertion_type"] {
        assert!(!form.contains_key(field), "{field} sent: {form:?}");
    }
    assert!(!authorization, "an Authorization header was sent");
}

#[tokio::test]
async fn without_the_client_certificate_the_endpoint_refuses_the_handshake_503() {
    let pki = pki();
    let (endpoint, seen) = serve_endpoint(&pki).await;
    let auth = introspection(&endpoint, client(&pki, None))
        .build()
        .expect("config");
    let app = app(auth);

    assert_unavailable(&send(&app, "/me", TOKEN).await, "no client certificate");
    assert!(
        lock(&seen).calls.is_empty(),
        "the endpoint's handler was reached without a certificate"
    );
}
