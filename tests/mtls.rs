//! Certificate-bound tokens (RFC 8705 §3) over real TLS on 127.0.0.1: certificates generated
//! in the test (rcgen), a rustls server asking for client certificates that hands the
//! verified one to portcullis as a `ClientCertificate` extension (the glue of
//! `examples/mtls_api.rs`), and a rustls client presenting the right, another or no
//! certificate.

mod support;

use std::{sync::Arc, time::Duration};

use axum::{Json, Router, body::Body, routing::get};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use http::{Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use portcullis::{BearerAuthLayer, ClientCertificate, Jwt, Principal};
use rustls::{
    ClientConfig, ServerConfig,
    pki_types::{CertificateDer, ServerName},
    server::WebPkiClientVerifier,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{
    dpop::{DpopKey, now},
    pki::{Leaf, TestCa, provider, root_store},
};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tower::ServiceExt;

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";
const TIMEOUT: Duration = Duration::from_secs(10);

fn thumbprint(leaf: &Leaf) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(leaf.cert.as_ref()))
}

struct Pki {
    ca: CertificateDer<'static>,
    server: Leaf,
    client_a: Leaf,
    client_b: Leaf,
}

fn pki() -> Pki {
    let ca = TestCa::new();
    Pki {
        ca: ca.der(),
        server: ca.server(&["127.0.0.1"]),
        client_a: ca.client(&["client-a.example"]),
        client_b: ca.client(&["client-b.example"]),
    }
}

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "x5t#S256": principal.confirmation().and_then(|c| c.certificate_thumbprint()),
    }))
}

/// An HTTPS API on 127.0.0.1 that asks for (but does not demand) client certificates and
/// hands the verified one to the layer. Returns its port.
async fn serve_tls(pki: &Pki, jwt: Jwt) -> u16 {
    let verifier = WebPkiClientVerifier::builder_with_provider(root_store(&pki.ca), provider())
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server.cert.clone()], pki.server.key())
        .expect("server certificate");
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let app = Router::new()
        .route("/me", get(me))
        .layer(BearerAuthLayer::new(jwt));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let certificate = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .map(|cert| ClientCertificate::from_der(cert.as_ref()));
                let service = hyper::service::service_fn(move |mut req| {
                    if let Some(certificate) = &certificate {
                        req.extensions_mut().insert(certificate.clone());
                    }
                    app.clone().oneshot(req)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

/// `GET /me` over TLS with `token`, presenting `client` as the client certificate.
async fn get_me(
    pki: &Pki,
    port: u16,
    client: Option<&Leaf>,
    token: &str,
) -> (StatusCode, String, String) {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(root_store(&pki.ca));
    let config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.cert.clone()], leaf.key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    let exchange = async {
        let tcp = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .expect("TLS handshake");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("HTTP handshake");
        tokio::spawn(connection);
        let request = Request::get("/me")
            .header(header::HOST, format!("127.0.0.1:{port}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request");
        let response = sender.send_request(request).await.expect("response");
        let status = response.status();
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .map(|v| v.to_str().expect("ASCII").to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(Body::new(response.into_body()), 64 * 1024)
            .await
            .expect("body");
        (
            status,
            challenge,
            String::from_utf8_lossy(&body).into_owned(),
        )
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .expect("answered in time")
}

/// A JWT issuer of its own: an ES256 key made here, its JWK Set, and tokens it signs.
struct Issuer {
    key: DpopKey,
}

impl Issuer {
    fn jwt(&self) -> Jwt {
        let mut jwk = self.key.jwk.clone();
        jwk["kid"] = json!("mtls-test");
        jwk["alg"] = json!("ES256");
        Jwt::builder()
            .issuer_with_jwks(ISSUER, json!({ "keys": [jwk] }).to_string())
            .audience(AUDIENCE)
            .build()
            .expect("JWT configuration")
    }

    fn token(&self, cnf: Option<Value>) -> String {
        let header = json!({"alg": "ES256", "kid": "mtls-test", "typ": "at+jwt"});
        let mut claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "client-a",
            "iat": now(), "exp": now() + 300,
        });
        if let Some(cnf) = cnf {
            claims["cnf"] = cnf;
        }
        self.key.sign(&header, &claims)
    }
}

#[tokio::test]
async fn certificate_bound_token_needs_its_certificate() {
    let pki = pki();
    let issuer = Issuer {
        key: DpopKey::generate(),
    };
    let port = serve_tls(&pki, issuer.jwt()).await;
    let bound = issuer.token(Some(json!({"x5t#S256": thumbprint(&pki.client_a)})));

    let (status, _, body) = get_me(&pki, port, Some(&pki.client_a), &bound).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body["x5t#S256"], thumbprint(&pki.client_a));

    for (what, client) in [
        ("another certificate", Some(&pki.client_b)),
        ("no certificate", None),
    ] {
        let (status, challenge, _) = get_me(&pki, port, client, &bound).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
    }

    // An unbound token does not need a certificate.
    let unbound = issuer.token(None);
    let (status, _, body) = get_me(&pki, port, None, &unbound).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = get_me(&pki, port, Some(&pki.client_b), &unbound).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
