//! Outbound HTTP the application controls: its own `reqwest::Client` (with portcullis' rules
//! kept on every call), an explicit proxy, and an extra root certificate for an issuer
//! whose TLS certificate comes from a private CA. Every server is on 127.0.0.1.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use portcullis::{__doc_support::JWKS, ErrorKind, Jwt, JwtBuilder};
use tokio::net::TcpListener;

mod support;

use support::pki::TestCa;

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

/// Serves `app` on 127.0.0.1 until the test's runtime stops.
async fn serve(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await.expect("server") });
    addr
}

/// `/jwks` serves a key set, `/moved` redirects there with a `302`; calls are counted.
async fn key_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/jwks",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                ([(header::CONTENT_TYPE, "application/json")], JWKS)
            }),
        )
        .route("/moved", get(|| async { Redirect::to("/jwks") }))
        .with_state(Arc::clone(&hits));
    (serve(app).await, hits)
}

fn jwt(jwks_uri: &str) -> JwtBuilder {
    Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, jwks_uri)
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
}

async fn refresh(jwt: &Jwt) -> Result<(), ErrorKind> {
    tokio::time::timeout(Duration::from_secs(10), jwt.refresh())
        .await
        .expect("refresh within 10 s")
        .map_err(|e| e.kind())
}

#[tokio::test]
async fn a_302_is_refused_even_when_the_applications_client_follows_it() {
    let (addr, hits) = key_server().await;
    let following = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .expect("client");

    let direct = jwt(&format!("http://{addr}/jwks"))
        .http_client(following.clone())
        .build()
        .expect("config");
    assert_eq!(
        refresh(&direct).await,
        Ok(()),
        "the same client, no redirect"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let redirected = jwt(&format!("http://{addr}/moved"))
        .http_client(following)
        .build()
        .expect("config");
    assert_eq!(refresh(&redirected).await, Err(ErrorKind::Unavailable));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "the client did follow the redirect"
    );

    // portcullis' own client does not follow it at all.
    let own = jwt(&format!("http://{addr}/moved"))
        .build()
        .expect("config");
    assert_eq!(refresh(&own).await, Err(ErrorKind::Unavailable));
    assert_eq!(
        hits.load(Ordering::SeqCst),
        2,
        "no call to the redirect's target"
    );
}

/// A forward proxy for plain-`http` targets: it counts the requests it gets (in absolute
/// form) and answers them from `upstream`, whatever host they name.
async fn counting_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    #[derive(Clone)]
    struct Proxy {
        upstream: SocketAddr,
        calls: Arc<AtomicUsize>,
        http: reqwest::Client,
    }
    async fn forward(State(proxy): State<Proxy>, uri: Uri) -> Response {
        proxy.calls.fetch_add(1, Ordering::SeqCst);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        match proxy
            .http
            .get(format!("http://{}{path}", proxy.upstream))
            .send()
            .await
        {
            Ok(answer) => {
                let status = answer.status();
                let body = answer.bytes().await.unwrap_or_default();
                (status, body).into_response()
            }
            Err(_) => StatusCode::BAD_GATEWAY.into_response(),
        }
    }
    let calls = Arc::new(AtomicUsize::new(0));
    let state = Proxy {
        upstream,
        calls: Arc::clone(&calls),
        http: reqwest::Client::new(),
    };
    let app = Router::new().fallback(forward).with_state(state);
    (serve(app).await, calls)
}

#[tokio::test]
async fn every_call_goes_through_the_configured_proxy() {
    let (keys, hits) = key_server().await;
    let (proxy, calls) = counting_proxy(keys).await;
    // A host name that does not resolve: only the proxy can reach it.
    let jwt = jwt("http://keys.invalid/jwks")
        .dangerous_allow_http(true)
        .proxy(format!("http://{proxy}"))
        .build()
        .expect("config");
    assert_eq!(refresh(&jwt).await, Ok(()));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "one call through the proxy"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let direct = jwt_without_proxy();
    assert_eq!(refresh(&direct).await, Err(ErrorKind::Unavailable));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "no proxy configured, none used"
    );
}

fn jwt_without_proxy() -> Jwt {
    jwt("http://keys.invalid/jwks")
        .dangerous_allow_http(true)
        .http_timeout(Duration::from_millis(500))
        .build()
        .expect("config")
}

#[tokio::test]
async fn a_tls_issuer_with_a_private_ca_needs_the_extra_root() {
    // A CA made for this test, and a certificate it signed for `localhost` and 127.0.0.1.
    let ca = TestCa::new();
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let hits = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route(
            "/jwks",
            get(|State(hits): State<Arc<AtomicUsize>>| async move {
                hits.fetch_add(1, Ordering::SeqCst);
                ([(header::CONTENT_TYPE, "application/json")], JWKS)
            }),
        )
        .with_state(Arc::clone(&hits));
    let config = axum_server::tls_rustls::RustlsConfig::from_pem(
        server.cert_pem.into_bytes(),
        server.key_pem.into_bytes(),
    )
    .await
    .expect("TLS configuration");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let server = axum_server::from_tcp_rustls(listener, config);
    tokio::spawn(async move { server.serve(app.into_make_service()).await });
    let jwks_uri = format!("https://localhost:{}/jwks", addr.port());

    let untrusted = jwt(&jwks_uri).build().expect("config");
    assert_eq!(refresh(&untrusted).await, Err(ErrorKind::Unavailable));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the handshake failed");

    let trusted = jwt(&jwks_uri)
        .add_root_certificate_pem(ca.pem())
        .build()
        .expect("config");
    assert_eq!(refresh(&trusted).await, Ok(()));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
