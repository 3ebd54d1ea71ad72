//! Test helpers for an application's own tests (feature `test-util`): a local issuer that
//! mints access tokens and serves its keys on loopback, so protected handlers can be tested
//! in a few lines without an identity provider.
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{BearerAuthLayer, Principal, testing::TestIssuer};
//! use tower::ServiceExt;
//!
//! async fn me(principal: Principal) -> String {
//!     principal.subject().unwrap_or("?").to_owned()
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = TestIssuer::start().await?;
//! let jwt = issuer.jwt().audience("https://api.example.com").build()?;
//! let app = Router::new()
//!     .route("/me", get(me))
//!     .layer(BearerAuthLayer::new(jwt));
//! let get = |token: &str| {
//!     Request::get("/me")
//!         .header("authorization", format!("Bearer {token}"))
//!         .body(Body::empty())
//! };
//!
//! let token = issuer
//!     .token()
//!     .subject("alice")
//!     .audience("https://api.example.com")
//!     .scopes(["orders:read"])
//!     .sign();
//! let ok = app.clone().oneshot(get(&token)?).await?;
//! assert_eq!(ok.status(), StatusCode::OK);
//!
//! let expired = issuer
//!     .token()
//!     .subject("alice")
//!     .audience("https://api.example.com")
//!     .expired()
//!     .sign();
//! let refused = app.oneshot(get(&expired)?).await?;
//! assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
//! assert!(refused.headers()["www-authenticate"].to_str()?.contains("invalid_token"));
//! # Ok(())
//! # }
//! ```
//!
//! # What the issuer does
//!
//! [`TestIssuer::start`] generates an ES256 (P-256) signing key with the crate's crypto
//! backend (aws-lc-rs, or RustCrypto when only `rust-crypto` is on), binds `127.0.0.1` on a
//! free port and serves from a task on the current Tokio runtime:
//!
//! | path | answer |
//! |---|---|
//! | `/.well-known/openid-configuration` | discovery: `issuer` and `jwks_uri` |
//! | `/.well-known/oauth-authorization-server` | the same document (RFC 8414) |
//! | `/jwks` | the JWK Set: public members only (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`) |
//!
//! The server stops, and its open connections close, when the issuer is dropped. The issuer
//! identifier is `http://127.0.0.1:<port>`; a [`Jwt`] accepts plain `http` for loopback
//! hosts, so [`TestIssuer::jwt`] configures nothing a real issuer would not need (it is
//! `Jwt::builder().issuer(issuer.issuer())`), and the keys go through discovery, fetching
//! and caching exactly as in production.
//!
//! [`TestIssuer::without_server`] is the same issuer without the server: its JWK Set is
//! handed to [`JwtBuilder::issuer_with_jwks`], no runtime or port needed.
//!
//! # Tokens
//!
//! [`TestIssuer::token`] mints a JWT access token in the shape of RFC 9068: header `alg`
//! `ES256`, `kid` of the current key, `typ` `at+jwt`; claims `iss` (the issuer), `iat`
//! (now), `exp` (in one hour) and a random `jti`, plus whatever the [`TokenBuilder`] adds
//! (`sub`, `aud`, `scope`, `nbf`, any other claim such as `client_id`). There is no default
//! audience: set the one the [`Jwt`] expects.
//!
//! # Key rotation
//!
//! [`TestIssuer::rotate_key`] signs with a new key from then on and keeps publishing the
//! previous ones, as issuers do; [`TestIssuer::retire_old_keys`] publishes only the current
//! key. A [`Jwt`] that already holds the keys fetches them again at most once per refresh
//! cooldown (30 s by default), for an unknown `kid` or a call of [`Jwt::refresh`], and
//! otherwise when their TTL ends: a test that rotates sets
//! [`JwtBuilder::jwks_refresh_cooldown`] to zero, so that a token signed by the new key is
//! accepted at once and [`Jwt::refresh`] drops the retired keys at once.
//!
//! These helpers are for tests: the keys live in memory and the issuer speaks plain
//! `http`. Nothing here is needed, or meant, in production.

mod key;
mod server;
mod token;

use std::{
    borrow::Cow,
    error::Error as StdError,
    fmt,
    sync::{Arc, Mutex, PoisonError},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use serde_json::json;

pub use token::TokenBuilder;

use self::{key::SigningKey, server::Server};
use crate::jwt::{Jwt, JwtBuilder};

/// A local issuer for tests: a signing key generated at start, tokens minted on demand,
/// and (after [`start`](Self::start)) discovery and the JWK Set served on loopback until it
/// is dropped. See the [module documentation](self).
pub struct TestIssuer {
    shared: Arc<Shared>,
    server: Option<Server>,
}

// Tests may keep an issuer in a shared place and use it from any thread.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<TestIssuer>();
    send_sync::<TestIssuerError>();
};

/// What the issuer and its server share.
struct Shared {
    issuer: String,
    keys: ArcSwap<KeyRing>,
    /// Serializes rotations, so that none is lost between reading and swapping the ring.
    rotation: Mutex<()>,
}

/// The signing key and the published set, swapped whole on rotation.
struct KeyRing {
    signing: Arc<SigningKey>,
    /// Newest first; always holds `signing`.
    published: Vec<Arc<SigningKey>>,
    /// The JWK Set document of `published`.
    jwks: Bytes,
}

impl KeyRing {
    fn new(signing: Arc<SigningKey>, published: Vec<Arc<SigningKey>>) -> Self {
        let keys: Vec<_> = published.iter().map(|k| &k.public).collect();
        let jwks = Bytes::from(json!({ "keys": keys }).to_string());
        Self {
            signing,
            published,
            jwks,
        }
    }
}

impl fmt::Debug for TestIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ring = self.shared.keys.load();
        f.debug_struct("TestIssuer")
            .field("issuer", &self.shared.issuer)
            .field("key_id", &ring.signing.kid)
            .field("published_keys", &ring.published.len())
            .field("serving", &self.server.is_some())
            .finish()
    }
}

impl TestIssuer {
    /// Generates a signing key and serves discovery and the JWK Set on `127.0.0.1` (a free
    /// port) from a task on the current Tokio runtime, until the issuer is dropped.
    ///
    /// The server is a task on the runtime that started it and also stops when that runtime
    /// shuts down: with `#[tokio::test]` (one runtime per test), start one issuer per test.
    ///
    /// # Errors
    ///
    /// When no loopback port can be bound or the crypto backend cannot generate a key.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub async fn start() -> Result<Self, TestIssuerError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| TestIssuerError::with_source("cannot bind 127.0.0.1:0", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| TestIssuerError::with_source("the bound address is unknown", e))?;
        let shared = Arc::new(Shared::new(format!("http://{addr}"))?);
        let server = Server::spawn(listener, Arc::clone(&shared));
        Ok(Self {
            shared,
            server: Some(server),
        })
    }

    /// Generates a signing key for the issuer identifier `issuer` (any string, e.g.
    /// `https://issuer.test`), without a server: [`jwt`](Self::jwt) hands the JWK Set to
    /// [`JwtBuilder::issuer_with_jwks`]. No runtime is needed.
    ///
    /// # Errors
    ///
    /// When the crypto backend cannot generate a key.
    pub fn without_server(issuer: impl Into<String>) -> Result<Self, TestIssuerError> {
        Ok(Self {
            shared: Arc::new(Shared::new(issuer.into())?),
            server: None,
        })
    }

    /// The issuer identifier, the `iss` of every token: `http://127.0.0.1:<port>` (no
    /// trailing slash) for a started issuer.
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// Where the JWK Set is served; `None` without a server.
    pub fn jwks_uri(&self) -> Option<String> {
        self.server
            .as_ref()
            .map(|_| format!("{}{}", self.shared.issuer, server::JWKS_PATH))
    }

    /// The JWK Set document published now (public keys only), as served at
    /// [`jwks_uri`](Self::jwks_uri).
    pub fn jwks(&self) -> String {
        String::from_utf8_lossy(&self.shared.keys.load().jwks).into_owned()
    }

    /// The `kid` of the key that signs new tokens.
    pub fn key_id(&self) -> String {
        self.shared.keys.load().signing.kid.clone()
    }

    /// A [`JwtBuilder`] that trusts this issuer: `Jwt::builder().issuer(..)` (discovery)
    /// for a started issuer, `Jwt::builder().issuer_with_jwks(..)` with the current keys
    /// without a server. Add at least an audience, then `build()`.
    pub fn jwt(&self) -> JwtBuilder {
        match self.server {
            Some(_) => Jwt::builder().issuer(self.shared.issuer.as_str()),
            None => Jwt::builder().issuer_with_jwks(self.shared.issuer.as_str(), self.jwks()),
        }
    }

    /// Starts a token signed by the current key; see [`TokenBuilder`] for its claims.
    pub fn token(&self) -> TokenBuilder<'_> {
        TokenBuilder::new(self)
    }

    /// Signs new tokens with a newly generated key; the previous keys stay published (a
    /// token they signed keeps verifying) until [`retire_old_keys`](Self::retire_old_keys).
    ///
    /// # Errors
    ///
    /// When the crypto backend cannot generate a key; the keys are then unchanged.
    pub fn rotate_key(&self) -> Result<(), TestIssuerError> {
        let new = Arc::new(SigningKey::generate()?);
        let _rotating = self
            .shared
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.shared.keys.load();
        let mut published = Vec::with_capacity(current.published.len() + 1);
        published.push(Arc::clone(&new));
        published.extend(current.published.iter().cloned());
        self.shared
            .keys
            .store(Arc::new(KeyRing::new(new, published)));
        Ok(())
    }

    /// Publishes only the current signing key from now on: tokens signed by earlier keys
    /// stop verifying once a [`Jwt`] fetches the keys again.
    pub fn retire_old_keys(&self) {
        let _rotating = self
            .shared
            .rotation
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let signing = Arc::clone(&self.shared.keys.load().signing);
        let published = vec![Arc::clone(&signing)];
        self.shared
            .keys
            .store(Arc::new(KeyRing::new(signing, published)));
    }

    fn signing_key(&self) -> Arc<SigningKey> {
        Arc::clone(&self.shared.keys.load().signing)
    }
}

impl Shared {
    fn new(issuer: String) -> Result<Self, TestIssuerError> {
        let signing = Arc::new(SigningKey::generate()?);
        let published = vec![Arc::clone(&signing)];
        Ok(Self {
            issuer,
            keys: ArcSwap::from_pointee(KeyRing::new(signing, published)),
            rotation: Mutex::new(()),
        })
    }
}

/// Why a [`TestIssuer`] could not start, rotate or sign.
#[derive(Debug)]
pub struct TestIssuerError {
    message: Cow<'static, str>,
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl TestIssuerError {
    fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    fn with_source(
        message: impl Into<Cow<'static, str>>,
        source: impl StdError + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

impl fmt::Display for TestIssuerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for TestIssuerError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
