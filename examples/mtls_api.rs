//! An API that terminates TLS itself, asks clients for a certificate, and accepts
//! certificate-bound access tokens (RFC 8705 §3) next to plain bearer tokens.
//!
//! ```text
//! cargo run --example mtls_api -- --issuer https://login.example.com/ --audience https://api.example.com \
//!     --cert server.pem --key server-key.pem --client-ca clients-ca.pem [--addr 127.0.0.1:8443]
//! ```
//!
//! The glue is a few lines per connection: after the TLS handshake, the client's
//! end-entity certificate goes into every request of that connection as a
//! [`ClientCertificate`] extension; the layer compares its SHA-256 thumbprint with the
//! token's `cnf["x5t#S256"]`. Clients without a certificate are let in by TLS and can use
//! plain bearer tokens; a certificate-bound token without its certificate is refused.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use axum::{Json, Router, routing::get};
use hyper_util::rt::TokioIo;
use portcullis::{BearerAuthLayer, ClientCertificate, Jwt, Principal};
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

struct Args {
    issuer: String,
    audience: String,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    addr: SocketAddr,
}

fn args() -> Result<Args, String> {
    let mut issuer = None;
    let mut audience = None;
    let mut cert = None;
    let mut key = None;
    let mut client_ca = None;
    let mut addr: SocketAddr = ([127, 0, 0, 1], 8443).into();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--issuer" => issuer = Some(value()?),
            "--audience" => audience = Some(value()?),
            "--cert" => cert = Some(value()?.into()),
            "--key" => key = Some(value()?.into()),
            "--client-ca" => client_ca = Some(value()?.into()),
            "--addr" => addr = value()?.parse().map_err(|e| format!("--addr: {e}"))?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let missing = |name: &str| format!("{name} is required");
    Ok(Args {
        issuer: issuer.ok_or_else(|| missing("--issuer"))?,
        audience: audience.ok_or_else(|| missing("--audience"))?,
        cert: cert.ok_or_else(|| missing("--cert"))?,
        key: key.ok_or_else(|| missing("--key"))?,
        client_ca: client_ca.ok_or_else(|| missing("--client-ca"))?,
        addr,
    })
}

/// TLS 1.2/1.3 with optional client certificates issued by the CAs in `client_ca`.
fn tls_config(args: &Args) -> Result<Arc<ServerConfig>, Box<dyn std::error::Error>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&args.client_ca)? {
        roots.add(ca?)?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let chain = CertificateDer::pem_file_iter(&args.cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&args.key)?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "x5t#S256": principal.confirmation().and_then(|c| c.certificate_thumbprint()),
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = args().map_err(|e| format!("{e}\nusage: see the top of examples/mtls_api.rs"))?;
    let jwt = Jwt::builder()
        .issuer(&args.issuer)
        .audience(&args.audience)
        .build()?;
    let app = Router::new()
        .route("/me", get(me))
        .layer(BearerAuthLayer::new(jwt));
    let acceptor = TlsAcceptor::from(tls_config(&args)?);
    let listener = TcpListener::bind(args.addr).await?;
    println!("listening on https://{}", listener.local_addr()?);
    loop {
        let (tcp, _) = listener.accept().await?;
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            // The glue: the verified client certificate, once per connection.
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
}
