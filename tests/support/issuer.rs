//! Test keys, token minting (well formed and hand-crafted), an in-process issuer (discovery
//! + JWKS) on `127.0.0.1:0`, and a small axum application behind the layer.

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk};
use portcullis::{AuthError, BearerAuthLayer, Jwt, Principal, RequireScopeLayer, Scopes};
use serde_json::{Value, json};

/// The issuer of the static key sets.
pub const ISSUER: &str = "https://issuer.example.com";
/// A second issuer, for multi-issuer tests.
pub const ISSUER_B: &str = "https://other-issuer.example.com";
/// The audience every test API accepts.
pub const AUDIENCE: &str = "https://api.example.com";

/// Upper bound for any single request in the tests.
pub const REQUEST_BOUND: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// A private test key with its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

/// The bytes of `tests/keys/<file>`.
pub fn key_file(file: &str) -> Vec<u8> {
    let path = format!("{}/tests/keys/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// The DER inside a PEM document.
pub fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).expect("PEM is ASCII");
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::trim)
        .collect();
    STANDARD.decode(b64).expect("PEM body is base64")
}

impl TestKey {
    /// Loads `tests/keys/<file>` as a key for `alg`, named `kid`.
    pub fn load(file: &str, kid: &str, alg: Algorithm) -> Self {
        portcullis::__doc_support::install_crypto_provider();
        let pem = key_file(file);
        let encoding = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => EncodingKey::from_rsa_pem(&pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
            other => panic!("no test key for {other:?}"),
        }
        .unwrap_or_else(|e| panic!("loading {file}: {e}"));
        let mut jwk = Jwk::from_encoding_key(&encoding, alg)
            .unwrap_or_else(|e| panic!("public JWK of {file}: {e}"));
        jwk.common.key_id = Some(kid.to_owned());
        let mut jwk = serde_json::to_value(&jwk).expect("JWK serializes");
        jwk["use"] = json!("sig");
        Self {
            kid: kid.to_owned(),
            alg,
            encoding,
            jwk,
        }
    }

    /// RSA 2048 key A, RS256, `kid` `rsa-a`.
    pub fn rsa_a() -> Self {
        Self::load("rsa-a.pem", "rsa-a", Algorithm::RS256)
    }

    /// RSA 2048 key B, RS256, `kid` `rsa-b`.
    pub fn rsa_b() -> Self {
        Self::load("rsa-b.pem", "rsa-b", Algorithm::RS256)
    }

    /// RSA key A published a second time for PS256, `kid` `rsa-a-ps`.
    pub fn rsa_a_ps256() -> Self {
        Self::load("rsa-a.pem", "rsa-a-ps", Algorithm::PS256)
    }

    /// P-256 key, ES256, `kid` `ec-p256`.
    pub fn ec_p256() -> Self {
        Self::load("ec-p256.pem", "ec-p256", Algorithm::ES256)
    }

    /// P-384 key, ES384, `kid` `ec-p384`.
    pub fn ec_p384() -> Self {
        Self::load("ec-p384.pem", "ec-p384", Algorithm::ES384)
    }

    /// Ed25519 key, EdDSA, `kid` `ed25519`.
    pub fn ed25519() -> Self {
        Self::load("ed25519.pem", "ed25519", Algorithm::EdDSA)
    }

    /// The same key under another `kid`.
    pub fn with_kid(&self, kid: &str) -> Self {
        let mut key = self.clone();
        key.kid = kid.to_owned();
        key.jwk["kid"] = json!(kid);
        key
    }
}

/// A JWK Set document holding the public keys of `keys`.
pub fn jwks(keys: &[&TestKey]) -> String {
    json!({ "keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }).to_string()
}

// ---------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// `iss`, `aud`, `sub`, `exp` (now + 300 s), `iat` (now), `scope` `read write`.
pub fn default_claims(issuer: &str, audience: &str) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "aud": audience,
        "sub": "user-1",
        "exp": now + 300,
        "iat": now,
        "scope": "read write",
    })
}

/// base64url without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JOSE header `mint` uses: `alg`, `kid`, `typ` `at+jwt`.
pub fn header_for(key: &TestKey) -> Value {
    json!({ "alg": alg_name(key.alg), "kid": key.kid, "typ": "at+jwt" })
}

/// The `alg` name of a jsonwebtoken algorithm.
pub fn alg_name(alg: Algorithm) -> String {
    serde_json::to_value(alg)
        .expect("alg serializes")
        .as_str()
        .expect("alg is a string")
        .to_owned()
}

/// A JWS signed by `key` with header `alg`/`kid`/`typ: at+jwt`.
pub fn mint(key: &TestKey, claims: Value) -> String {
    Raw::json(&header_for(key), &claims).sign(key).build()
}

/// A JWS with an arbitrary JSON header, signed by `key` with `key.alg`.
pub fn mint_with_header(key: &TestKey, header: Value, claims: Value) -> String {
    Raw::json(&header, &claims).sign(key).build()
}

/// A hand-built compact JWS: any header, payload and signature segments.
#[derive(Clone, Debug)]
pub struct Raw {
    pub header: String,
    pub payload: String,
    pub signature: String,
}

impl Raw {
    /// Header and payload as JSON values, no signature yet.
    pub fn json(header: &Value, payload: &Value) -> Self {
        Self::bytes(header.to_string(), payload.to_string())
    }

    /// Header and payload as raw bytes (any content), no signature yet.
    pub fn bytes(header: impl AsRef<[u8]>, payload: impl AsRef<[u8]>) -> Self {
        Self {
            header: b64(header),
            payload: b64(payload),
            signature: String::new(),
        }
    }

    /// The signing input `header.payload`.
    pub fn signing_input(&self) -> String {
        format!("{}.{}", self.header, self.payload)
    }

    /// Signs the current segments with `key` and `key.alg`.
    pub fn sign(self, key: &TestKey) -> Self {
        self.sign_as(&key.encoding, key.alg)
    }

    /// Signs the current segments with `key` under `alg`.
    pub fn sign_as(mut self, key: &EncodingKey, alg: Algorithm) -> Self {
        portcullis::__doc_support::install_crypto_provider();
        self.signature = jsonwebtoken::crypto::sign(self.signing_input().as_bytes(), key, alg)
            .unwrap_or_else(|e| panic!("signing with {alg:?}: {e}"));
        self
    }

    /// Sets the signature to these bytes.
    pub fn signature_bytes(mut self, bytes: impl AsRef<[u8]>) -> Self {
        self.signature = b64(bytes);
        self
    }

    /// Sets the raw signature segment.
    pub fn signature_segment(mut self, segment: impl Into<String>) -> Self {
        self.signature = segment.into();
        self
    }

    /// `header.payload.signature`.
    pub fn build(&self) -> String {
        format!("{}.{}.{}", self.header, self.payload, self.signature)
    }
}

/// The public key of an RSA test key file: (SubjectPublicKeyInfo DER, PKCS#1 DER, PEM).
pub fn rsa_public_key(file: &str) -> (Vec<u8>, Vec<u8>, String) {
    use aws_lc_rs::{
        encoding::AsDer,
        signature::{KeyPair, RsaKeyPair},
    };
    let pair = RsaKeyPair::from_pkcs8(&pem_to_der(&key_file(file))).expect("RSA PKCS#8 key");
    let spki = pair
        .public_key()
        .as_der()
        .expect("SPKI DER")
        .as_ref()
        .to_vec();
    let pkcs1 = pair.public_key().as_ref().to_vec();
    let body = STANDARD.encode(&spki);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    (spki, pkcs1, pem)
}

// ---------------------------------------------------------------------------------------
// The in-process issuer
// ---------------------------------------------------------------------------------------

/// Which discovery document the issuer serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// `/.well-known/openid-configuration` only.
    Oidc,
    /// `/.well-known/oauth-authorization-server` only (RFC 8414); OIDC answers 404.
    Rfc8414,
    /// OIDC answers `200` with a body that is not metadata; RFC 8414 serves the metadata.
    BrokenOidc,
}

/// How the JWKS endpoint answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksMode {
    /// `200` with the current key set.
    Normal,
    /// `500`.
    Fail,
    /// Waits this long, then answers normally (longer than the client timeout: a stall).
    Delay(Duration),
    /// The current key set followed by whitespace up to this many bytes (still valid JSON),
    /// with a `Content-Length`.
    Oversized(usize),
    /// Like `Oversized`, streamed in chunks without a `Content-Length`.
    OversizedChunked(usize),
    /// `302 Found` to this URL.
    Redirect(String),
}

/// Shared, mutable state of an [`IssuerServer`].
pub struct IssuerState {
    base: String,
    discovery: Discovery,
    jwks: Mutex<String>,
    mode: Mutex<JwksMode>,
    cache_control: Mutex<Option<String>>,
    discovered_issuer: Mutex<Option<String>>,
    discovered_jwks_uri: Mutex<Option<String>>,
    oidc_hits: AtomicUsize,
    oauth_hits: AtomicUsize,
    jwks_hits: AtomicUsize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A discovery + JWKS server on `127.0.0.1:0`; the server task stops when it drops.
pub struct IssuerServer {
    state: Arc<IssuerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for IssuerServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl IssuerServer {
    /// An OpenID Connect issuer serving `jwks`.
    pub async fn start(jwks: String) -> Self {
        Self::start_with(Discovery::Oidc, jwks).await
    }

    /// An issuer with the given discovery flavour serving `jwks`.
    pub async fn start_with(discovery: Discovery, jwks: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(IssuerState {
            base: format!("http://{addr}"),
            discovery,
            jwks: Mutex::new(jwks),
            mode: Mutex::new(JwksMode::Normal),
            cache_control: Mutex::new(None),
            discovered_issuer: Mutex::new(None),
            discovered_jwks_uri: Mutex::new(None),
            oidc_hits: AtomicUsize::new(0),
            oauth_hits: AtomicUsize::new(0),
            jwks_hits: AtomicUsize::new(0),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(oidc_metadata))
            .route(
                "/.well-known/oauth-authorization-server",
                get(oauth_metadata),
            )
            .route("/jwks", get(jwks_endpoint))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { state, task }
    }

    /// The issuer identifier: `http://127.0.0.1:<port>` (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.state.base
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.state.base)
    }

    /// Replaces the key set served from now on (key rotation).
    pub fn set_jwks(&self, jwks: String) {
        *lock(&self.state.jwks) = jwks;
    }

    /// Changes how the JWKS endpoint answers.
    pub fn set_mode(&self, mode: JwksMode) {
        *lock(&self.state.mode) = mode;
    }

    /// Sets (or clears) the `Cache-Control` header of JWKS answers.
    pub fn set_cache_control(&self, value: Option<&str>) {
        *lock(&self.state.cache_control) = value.map(str::to_owned);
    }

    /// Makes the discovery documents name another `issuer` (or its own again with `None`).
    pub fn set_discovered_issuer(&self, issuer: Option<&str>) {
        *lock(&self.state.discovered_issuer) = issuer.map(str::to_owned);
    }

    /// Makes the discovery documents name another `jwks_uri` (or its own again with `None`).
    pub fn set_discovered_jwks_uri(&self, uri: Option<&str>) {
        *lock(&self.state.discovered_jwks_uri) = uri.map(str::to_owned);
    }

    /// Requests to `/.well-known/openid-configuration`.
    pub fn oidc_hits(&self) -> usize {
        self.state.oidc_hits.load(Ordering::SeqCst)
    }

    /// Requests to `/.well-known/oauth-authorization-server`.
    pub fn oauth_hits(&self) -> usize {
        self.state.oauth_hits.load(Ordering::SeqCst)
    }

    /// Requests to either discovery document.
    pub fn discovery_hits(&self) -> usize {
        self.oidc_hits() + self.oauth_hits()
    }

    /// Requests to `/jwks`.
    pub fn jwks_hits(&self) -> usize {
        self.state.jwks_hits.load(Ordering::SeqCst)
    }

    /// Every request the issuer received.
    pub fn total_hits(&self) -> usize {
        self.discovery_hits() + self.jwks_hits()
    }
}

fn metadata(state: &IssuerState) -> Json<Value> {
    let issuer = lock(&state.discovered_issuer)
        .clone()
        .unwrap_or_else(|| state.base.clone());
    Json(json!({
        "issuer": issuer,
        "jwks_uri": lock(&state.discovered_jwks_uri)
            .clone()
            .unwrap_or_else(|| format!("{}/jwks", state.base)),
        "token_endpoint": format!("{}/token", state.base),
        "response_types_supported": ["code"],
    }))
}

async fn oidc_metadata(State(state): State<Arc<IssuerState>>) -> Response<Body> {
    state.oidc_hits.fetch_add(1, Ordering::SeqCst);
    match state.discovery {
        Discovery::Oidc => metadata(&state).into_response(),
        Discovery::Rfc8414 => StatusCode::NOT_FOUND.into_response(),
        Discovery::BrokenOidc => "<html>not metadata</html>".into_response(),
    }
}

async fn oauth_metadata(State(state): State<Arc<IssuerState>>) -> Response<Body> {
    state.oauth_hits.fetch_add(1, Ordering::SeqCst);
    match state.discovery {
        Discovery::Oidc => StatusCode::NOT_FOUND.into_response(),
        Discovery::Rfc8414 | Discovery::BrokenOidc => metadata(&state).into_response(),
    }
}

async fn jwks_endpoint(State(state): State<Arc<IssuerState>>) -> Response<Body> {
    state.jwks_hits.fetch_add(1, Ordering::SeqCst);
    let mode = lock(&state.mode).clone();
    if let JwksMode::Delay(delay) = mode {
        tokio::time::sleep(delay).await;
    }
    let body = lock(&state.jwks).clone();
    let padded = |size: usize| {
        let mut body = body.clone();
        let pad = size.saturating_sub(body.len());
        body.push_str(&" ".repeat(pad));
        body
    };
    let mut response = match mode {
        JwksMode::Normal | JwksMode::Delay(_) => Response::new(Body::from(body.clone())),
        JwksMode::Fail => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        JwksMode::Redirect(to) => {
            return (StatusCode::FOUND, [(header::LOCATION, to)]).into_response();
        }
        JwksMode::Oversized(size) => Response::new(Body::from(padded(size))),
        JwksMode::OversizedChunked(size) => {
            let bytes = Bytes::from(padded(size));
            let chunks: Vec<Result<Bytes, Infallible>> = (0..bytes.len())
                .step_by(1024)
                .map(|at| Ok(bytes.slice(at..(at + 1024).min(bytes.len()))))
                .collect();
            Response::new(Body::from_stream(futures_util::stream::iter(chunks)))
        }
    };
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(cc) = lock(&state.cache_control).clone() {
        response.headers_mut().insert(
            header::CACHE_CONTROL,
            HeaderValue::from_str(&cc).expect("cache-control value"),
        );
    }
    response
}

/// A URL on loopback where nothing listens (the port was just released).
pub async fn closed_port_url(path: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    format!("http://{addr}{path}")
}

// ---------------------------------------------------------------------------------------
// The test application
// ---------------------------------------------------------------------------------------

/// `sub`, `iss` and scopes of the principal.
async fn me(principal: Principal, scopes: Scopes) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "iss": principal.issuer(),
        "scopes": scopes.iter().collect::<Vec<_>>(),
        "principal_scopes": principal.scopes().iter().collect::<Vec<_>>(),
    }))
}

/// The principal when there is one, else `{"anonymous": true}`.
async fn whoami(principal: Option<Principal>) -> Json<Value> {
    match principal {
        Some(p) => Json(json!({ "sub": p.subject(), "anonymous": false })),
        None => Json(json!({ "anonymous": true })),
    }
}

/// Routes without any auth layer: `/me` and `/whoami` (any valid token), `/read` (scope
/// `read`), `/admin` (scope `admin`), `/read-and-admin` (both), `/admin-or-write` (either).
pub fn routes() -> Router {
    let read = Router::new()
        .route("/read", get(|| async { "read ok" }))
        .route_layer(RequireScopeLayer::all(["read"]));
    let admin = Router::new()
        .route("/admin", get(|| async { "admin ok" }))
        .route_layer(RequireScopeLayer::all(["admin"]));
    let both = Router::new()
        .route("/read-and-admin", get(|| async { "both ok" }))
        .route_layer(RequireScopeLayer::all(["read", "admin"]));
    let either = Router::new()
        .route("/admin-or-write", get(|| async { "either ok" }))
        .route_layer(RequireScopeLayer::any(["admin", "write"]));
    let either_missing = Router::new()
        .route("/admin-or-root", get(|| async { "either ok" }))
        .route_layer(RequireScopeLayer::any(["admin", "root"]));
    Router::new()
        .route("/me", get(me))
        .route("/whoami", get(whoami))
        .merge(read)
        .merge(admin)
        .merge(both)
        .merge(either)
        .merge(either_missing)
}

/// [`routes`] behind `BearerAuthLayer::new(jwt)`.
pub fn app(jwt: Jwt) -> Router {
    routes().layer(BearerAuthLayer::new(jwt))
}

/// A `Jwt` for [`ISSUER`]/[`AUDIENCE`] with a static key set of `keys`.
pub fn static_jwt(keys: &[&TestKey]) -> Jwt {
    Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(keys))
        .audience(AUDIENCE)
        .build()
        .expect("valid configuration")
}

/// `GET path` with `Authorization: Bearer <token>` when a token is given.
pub fn get_request(path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).expect("request")
}

/// A response with its body read.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub error: Option<AuthError>,
    pub body: Bytes,
}

impl Answer {
    /// Reads `response` (body capped at 1 MiB).
    pub async fn read(response: Response<Body>) -> Self {
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .expect("response body");
        Self {
            status: parts.status,
            error: parts.extensions.get::<AuthError>().cloned(),
            headers: parts.headers,
            body,
        }
    }

    /// The `WWW-Authenticate` header, if any.
    pub fn challenge(&self) -> Option<&str> {
        self.header(header::WWW_AUTHENTICATE.as_str())
    }

    /// A header as a string.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    /// The `error` attribute of the challenge.
    pub fn error_code(&self) -> Option<&str> {
        challenge_param(self.challenge()?, "error")
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Retry-After` as seconds.
    pub fn retry_after(&self) -> Option<u64> {
        self.header(header::RETRY_AFTER.as_str())
            .map(|v| v.parse().expect("Retry-After is delta-seconds"))
    }
}

/// The value of a quoted auth-param of a challenge, e.g. `error="invalid_token"`.
pub fn challenge_param<'a>(challenge: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("{name}=\"");
    let mut rest = challenge;
    loop {
        let at = rest.find(&needle)?;
        // Only a whole parameter name: preceded by a space or a comma.
        let boundary = at == 0 || matches!(rest.as_bytes()[at - 1], b' ' | b',');
        let value = &rest[at + needle.len()..];
        if boundary {
            return value.find('"').map(|end| &value[..end]);
        }
        rest = value;
    }
}

/// Sends `request` through `app`, bounded by [`REQUEST_BOUND`].
pub async fn send(app: &Router, request: Request<Body>) -> Answer {
    use tower::ServiceExt as _;
    let response = tokio::time::timeout(REQUEST_BOUND, app.clone().oneshot(request))
        .await
        .expect("the request finished in time")
        .expect("axum routers are infallible");
    Answer::read(response).await
}

/// `GET path` through `app` with an optional bearer token.
pub async fn call(app: &Router, path: &str, token: Option<&str>) -> Answer {
    send(app, get_request(path, token)).await
}

// ---------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------

/// Everything `tracing` logged in this test binary (see [`logs`]).
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Everything logged so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&lock(&self.0)).into_owned()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs (once) a process-wide subscriber recording every `portcullis` event at any
/// level, and returns its log. Process-wide because a thread-local one misses events under
/// parallel tests (callsite interest is cached globally); tests running in parallel share
/// it, so look for strings unique to the test (an issuer URL, a token).
pub fn logs() -> Logs {
    static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Logs::default();
        let sink = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("portcullis=trace"))
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in the test binary");
        logs
    })
    .clone()
}
