//! Certificate-bound access tokens (RFC 8705 §3): the TLS acceptor hands the client's
//! certificate to the layer as a [`ClientCertificate`] request extension.
//!
//! The layer never sees TLS. Whatever terminates it (tokio-rustls, axum-server, hyper-util)
//! must insert the peer's end-entity certificate into each request's extensions; a token
//! whose `cnf` carries `x5t#S256` is then accepted only when that certificate's SHA-256
//! thumbprint matches. Without the extension, or with another certificate, it is
//! `401 invalid_token`. Unbound tokens are not affected.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// The TLS client certificate of the connection a request arrived on, as a request
/// extension. Only its SHA-256 thumbprint is kept; cloning is cheap.
///
/// The TLS acceptor inserts it into every request of the connection; a token whose `cnf`
/// carries `x5t#S256` (RFC 8705 §3) is then accepted only when it matches.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
///
/// use http::{Request, Response, StatusCode};
/// use portcullis::{BearerAuthLayer, ClientCertificate, Jwt};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// # use portcullis::__doc_support::{JWKS as jwks, TOKEN as token};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let jwt = Jwt::builder()
///     .issuer_with_jwks("https://issuer.example.com", jwks)
///     .audience("https://api.example.com")
///     .build()?;
/// let service = ServiceBuilder::new()
///     .layer(BearerAuthLayer::new(jwt))
///     .service(service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(())) }));
///
/// // In a TLS server: the DER of `tls_stream.get_ref().1.peer_certificates()[0]`.
/// let der: &[u8] = b"a certificate's DER bytes";
/// let mut request = Request::builder()
///     .header("authorization", format!("Bearer {token}"))
///     .body(())?;
/// request.extensions_mut().insert(ClientCertificate::from_der(der));
/// // The token is not certificate-bound, so the certificate changes nothing here.
/// assert_eq!(service.oneshot(request).await?.status(), StatusCode::OK);
/// # Ok(())
/// # }
/// ```
///
/// With tokio-rustls and hyper-util, per connection (see `examples/mtls_api.rs`):
///
/// ```text
/// let tls = acceptor.accept(tcp).await?;
/// let cert = tls.get_ref().1.peer_certificates()
///     .and_then(|c| c.first())
///     .map(|c| ClientCertificate::from_der(c.as_ref()));
/// let service = hyper::service::service_fn(move |mut req| {
///     if let Some(cert) = &cert { req.extensions_mut().insert(cert.clone()); }
///     app.clone().oneshot(req)
/// });
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    thumbprint: [u8; 32],
}

impl ClientCertificate {
    /// The end-entity certificate, DER-encoded, as the TLS library verified it.
    pub fn from_der(der: &[u8]) -> Self {
        Self {
            thumbprint: Sha256::digest(der).into(),
        }
    }

    /// The SHA-256 thumbprint of the DER, as in `cnf["x5t#S256"]` (base64url, no padding).
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.thumbprint)
    }

    /// Whether `x5t_s256` (a base64url SHA-256 thumbprint) names this certificate.
    pub(crate) fn matches(&self, x5t_s256: &str) -> bool {
        let mut room = [std::mem::MaybeUninit::uninit(); 32];
        crate::base64url::decode_into(x5t_s256, &mut room) == Some(&self.thumbprint[..])
    }
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_matches_only_its_certificate() {
        let cert = ClientCertificate::from_der(b"certificate one");
        let thumbprint = cert.thumbprint();
        assert_eq!(thumbprint.len(), 43);
        assert!(cert.matches(&thumbprint));
        assert!(!ClientCertificate::from_der(b"certificate two").matches(&thumbprint));
        assert!(!cert.matches(""));
        assert!(!cert.matches(&thumbprint[..42]));
        assert!(!cert.matches(&format!("{thumbprint}A")));
    }
}
