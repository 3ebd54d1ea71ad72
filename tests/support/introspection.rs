//! For the introspection tests: the introspection server ([`server`]), the resource
//! server under test ([`app`]), requests through it ([`send`]), a JWT signer and a capture
//! of portcullis' logs.

pub mod server;

use std::{
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    http::{HeaderMap, Request, StatusCode, header},
    routing::get,
};
use jsonwebtoken::{
    EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use portcullis::{
    AuthError, Authenticate, BearerAuthLayer, ErrorKind, Introspection, IntrospectionBuilder,
    Principal, RegisteredClaims, RequireScopeLayer, Scopes,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use server::IntrospectionServer;

pub const ISSUER: &str = "https://login.example.com";
pub const AUDIENCE: &str = "https://api.example.com";
pub const CLIENT_ID: &str = "resource server";
/// Needs form-encoding inside the Basic credentials (RFC 6749 §2.3.1).
pub const CLIENT_SECRET: &str = "p@ss:word&=+";
/// Every request through the layer must finish within this time.
pub const REQUEST_BOUND: Duration = Duration::from_secs(10);

pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

pub fn now_secs() -> u64 {
    now() as u64
}

/// An active answer from [`ISSUER`] for a bearer access token, valid for an hour.
pub fn active(sub: &str, scope: &str) -> Value {
    json!({
        "active": true,
        "token_type": "Bearer",
        "iss": ISSUER,
        "sub": sub,
        "scope": scope,
        "client_id": "the-client",
        "exp": now_secs() + 3600,
        "iat": now_secs(),
    })
}

/// The endpoint of `server`, the test credentials, a 2 s timeout. Most answers here carry
/// no `aud`; the audience tests configure one on top, which is then checked.
pub fn builder(server: &IntrospectionServer) -> IntrospectionBuilder {
    Introspection::builder()
        .issuer(ISSUER)
        .endpoint(server.endpoint())
        .client_credentials(CLIENT_ID, CLIENT_SECRET)
        .dangerous_accept_any_audience(true)
        .http_timeout(Duration::from_secs(2))
}

pub fn build(builder: IntrospectionBuilder) -> Introspection {
    builder.build().expect("valid configuration")
}

// ---------------------------------------------------------------------------------------
// The resource server under test
// ---------------------------------------------------------------------------------------

/// What the handler saw: the principal and the scopes the layer put into the extensions.
async fn whoami(principal: Principal, scopes: Scopes) -> Json<Value> {
    assert_eq!(
        principal.scopes(),
        &scopes,
        "the Scopes extension differs from the principal's"
    );
    Json(json!({
        "sub": principal.subject(),
        "scopes": scopes.iter().collect::<Vec<_>>(),
        "iss": principal.issuer(),
        "exp": principal
            .expires_at()
            .map(|t| t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()),
        "client_id": principal.claims().client_id,
    }))
}

/// `/items` requires the scope `read`; `/me` only a valid token. Both answer what
/// [`whoami`] saw.
pub fn app<A>(auth: A) -> Router
where
    A: Authenticate<Claims = RegisteredClaims> + Clone + Send + Sync + 'static,
{
    capture_logs();
    Router::new()
        .route("/items", get(whoami))
        .route_layer(RequireScopeLayer::all(["read"]))
        .route("/me", get(whoami))
        .layer(BearerAuthLayer::new(auth))
}

/// A response, read to the end.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The rejection the layer attached, if any.
    pub error: Option<AuthError>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
}

/// `GET path` with `Authorization: Bearer token` through a clone of `app`.
pub async fn send(app: &Router, path: &str, token: &str) -> Reply {
    let request = Request::get(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("request");
    let response = tokio::time::timeout(REQUEST_BOUND, app.clone().oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("no answer within {REQUEST_BOUND:?}"))
        .unwrap_or_else(|never| match never {});
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .expect("response body");
    Reply {
        status: parts.status,
        error: parts.extensions.get::<AuthError>().cloned(),
        headers: parts.headers,
        body,
    }
}

/// `200`; returns what the handler saw.
#[track_caller]
pub fn assert_accepted(reply: &Reply, context: &str) -> Value {
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "{context}: {:?} {:?}",
        reply.error,
        reply.headers
    );
    reply.json()
}

/// `401` with `error="invalid_token"`.
#[track_caller]
pub fn assert_invalid_token(reply: &Reply, context: &str) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "{context}: {reply:?}"
    );
    let challenge = reply
        .header(header::WWW_AUTHENTICATE)
        .unwrap_or_else(|| panic!("{context}: no WWW-Authenticate"));
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
        "{context}: {challenge}"
    );
    assert_eq!(
        reply.error.as_ref().map(AuthError::kind),
        Some(ErrorKind::InvalidToken),
        "{context}"
    );
}

/// `503` with a `Retry-After` of at least a second.
#[track_caller]
pub fn assert_unavailable(reply: &Reply, context: &str) {
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{context}: {reply:?}"
    );
    let retry_after: u64 = reply
        .header(header::RETRY_AFTER)
        .unwrap_or_else(|| panic!("{context}: no Retry-After"))
        .parse()
        .unwrap_or_else(|e| panic!("{context}: Retry-After is not delay-seconds: {e}"));
    assert!(retry_after >= 1, "{context}: Retry-After {retry_after}");
    assert_eq!(
        reply.error.as_ref().map(AuthError::kind),
        Some(ErrorKind::Unavailable),
        "{context}"
    );
}

// ---------------------------------------------------------------------------------------
// JWTs for the routing tests
// ---------------------------------------------------------------------------------------

/// Signs RS256 access tokens for [`ISSUER`] and [`AUDIENCE`] with a test key.
pub struct Signer {
    key: EncodingKey,
    kid: &'static str,
}

impl Signer {
    pub fn new(pem: &[u8], kid: &'static str) -> Self {
        portcullis::__doc_support::install_crypto_provider();
        Self {
            key: EncodingKey::from_rsa_pem(pem).expect("test key PEM"),
            kid,
        }
    }

    /// A static JWK Set holding the public key.
    pub fn jwks(&self) -> String {
        let mut jwk =
            Jwk::from_encoding_key(&self.key, jsonwebtoken::Algorithm::RS256).expect("public JWK");
        jwk.common.key_id = Some(self.kid.to_owned());
        serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("JWK Set JSON")
    }

    /// An RFC 9068 access token for `sub` with the scope `read`, valid for 10 minutes.
    pub fn token(&self, sub: &str) -> String {
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(self.kid.to_owned());
        let claims = json!({
            "iss": ISSUER,
            "sub": sub,
            "aud": AUDIENCE,
            "exp": now_secs() + 600,
            "iat": now_secs(),
            "scope": "read",
        });
        jsonwebtoken::encode(&header, &claims, &self.key).expect("signed token")
    }
}

// ---------------------------------------------------------------------------------------
// portcullis' logs
// ---------------------------------------------------------------------------------------

/// Installs, once per test binary, a global subscriber keeping everything portcullis logs.
///
/// Global rather than per test: tracing caches whether a call site is enabled, and a
/// thread-local subscriber on one test thread races with the threads of the other tests,
/// losing events now and then. It is installed before any test sends a request.
pub fn capture_logs() {
    #[cfg(feature = "tracing")]
    let _ = logs::captured();
}

/// Everything portcullis has logged so far, in this test binary.
#[cfg(feature = "tracing")]
pub fn captured_logs() -> String {
    logs::captured().text()
}

#[cfg(feature = "tracing")]
mod logs {
    use std::sync::{Arc, Mutex, OnceLock};

    use super::lock;

    #[derive(Clone, Default)]
    pub struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&lock(&self.0)).into_owned()
        }
    }

    pub fn captured() -> &'static Captured {
        static LOGS: OnceLock<Captured> = OnceLock::new();
        LOGS.get_or_init(|| {
            use tracing_subscriber::util::SubscriberInitExt as _;
            let logs = Captured::default();
            let writer = logs.clone();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis=trace"))
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish()
                .try_init()
                .expect("no other global subscriber in this test binary");
            logs
        })
    }
}
