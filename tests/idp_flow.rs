//! End to end against a real OpenID provider: tokens obtained the way clients obtain them
//! (authorization code with PKCE, client credentials) from the `oidc-provider` fixture in
//! `tests/idp`, sent over real HTTP to an axum API guarded by portcullis on 127.0.0.1.
//!
//! Each test starts its own provider, so tests can rotate keys and revoke tokens without
//! disturbing one another. Needs Node.js >= 20 and `npm ci --prefix tests/idp`. The last test
//! runs `examples/protected_api.rs` as a process; `cargo test` builds it (so does
//! `cargo build --examples`).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::{
    Json, Router,
    routing::{get, post},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use portcullis::{
    Authenticate, BearerAuthLayer, ClientAuth, Introspection, Jwt, JwtOrIntrospection, Principal,
    RegisteredClaims, RequireScopeLayer,
};
use reqwest::{
    RequestBuilder, StatusCode,
    header::{AUTHORIZATION, WWW_AUTHENTICATE},
};
use serde_json::{Value, json};
use support::example::{ExampleServer, example_binary};
use support::idp::{self, Idp, jwt_parts};
use tokio::net::TcpListener;

/// Longest wait for one HTTP answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

// ── The API under test ─────────────────────────────────────────────────────────────────────

/// An API guarded by `auth`: `GET /me` for any valid token, `POST /items` needs `write`.
fn api<A>(auth: A) -> Router
where
    A: Authenticate<Claims = RegisteredClaims> + Clone + Send + Sync + 'static,
{
    Router::new()
        .route(
            "/items",
            post(|| async { "created" }).route_layer(RequireScopeLayer::all(["write"])),
        )
        .route("/me", get(me))
        .layer(BearerAuthLayer::new(auth))
}

async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "sub": principal.subject(),
        "scopes": principal.scopes(),
        "client_id": principal.claims().client_id,
    }))
}

/// Serves `app` on 127.0.0.1 (a port the OS picks) until the test's runtime shuts down and
/// returns its base URL.
async fn serve(app: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("cannot bind the API to 127.0.0.1");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("the API has a local address")
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("the API failed") });
    url
}

/// A JWT authenticator for `audience` that finds the provider's keys through discovery, warmed
/// up so that requests are decided from cached keys.
async fn warm_jwt(idp: &Idp, audience: &str) -> Jwt {
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(audience)
        .build()
        .expect("a valid JWT configuration");
    jwt.refresh().await.expect("the provider's keys load");
    jwt
}

// ── The client ─────────────────────────────────────────────────────────────────────────────

/// A client for 127.0.0.1, whatever proxy the environment configures.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("cannot build the HTTP client")
}

/// What the API answered.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    challenge: Option<String>,
    body: String,
}

impl Answer {
    /// The value of the `WWW-Authenticate` auth-param `name`, if any.
    fn param(&self, name: &str) -> Option<String> {
        challenge_param(self.challenge.as_deref()?, name)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("the body is not JSON ({err}): {self:?}"))
    }

    #[track_caller]
    fn assert_ok(&self, what: &str) -> &Self {
        assert_eq!(self.status, StatusCode::OK, "{what}: {self:?}");
        self
    }

    #[track_caller]
    fn assert_invalid_token(&self, what: &str) -> &Self {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{what}: {self:?}");
        assert_eq!(
            self.param("error").as_deref(),
            Some("invalid_token"),
            "{what}: {self:?}"
        );
        self
    }

    #[track_caller]
    fn assert_insufficient_scope(&self, scope: &str, what: &str) -> &Self {
        assert_eq!(self.status, StatusCode::FORBIDDEN, "{what}: {self:?}");
        assert_eq!(
            self.param("error").as_deref(),
            Some("insufficient_scope"),
            "{what}: {self:?}"
        );
        assert_eq!(
            self.param("scope").as_deref(),
            Some(scope),
            "{what}: {self:?}"
        );
        self
    }
}

/// Sends `request`, with `token` as a bearer token when given.
async fn send(request: RequestBuilder, token: Option<&str>) -> Answer {
    let request = match token {
        Some(token) => request.header(AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    };
    let response = request.send().await.expect("the API answers");
    let status = response.status();
    let challenge = response
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("WWW-Authenticate is text").to_owned());
    let body = response.text().await.expect("the API sends a body");
    Answer {
        status,
        challenge,
        body,
    }
}

/// The value of the auth-param `name` in a `Bearer` challenge (RFC 6750 §3: quoted strings).
fn challenge_param(challenge: &str, name: &str) -> Option<String> {
    let mut rest = challenge.strip_prefix("Bearer")?.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let after = after.strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => value.push(chars.next()?.1),
                (_, c) => value.push(c),
            }
        };
        if key.trim() == name {
            return Some(value);
        }
        rest = after[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
    }
    None
}

/// `token` with one character of its part `index` (0 header, 1 payload, 2 signature) changed.
/// The character is taken from the middle, so the part stays valid base64url and no padding
/// bits are involved.
fn flip_char(token: &str, index: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let part = &mut parts[index];
    let middle = part.len() / 2;
    let replacement = if &part[middle..=middle] == "A" {
        "B"
    } else {
        "A"
    };
    part.replace_range(middle..=middle, replacement);
    parts.join(".")
}

/// `token` with its payload replaced by `claims`, the original signature kept.
fn with_payload(token: &str, claims: &Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims.to_string());
    parts.join(".")
}

fn scope_list(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("scopes are not a list: {value}"))
        .iter()
        .map(|s| s.as_str().expect("a scope is a string").to_owned())
        .collect()
}

// ── 1. Authorization code with PKCE ────────────────────────────────────────────────────────

#[tokio::test]
async fn authorization_code_token_reaches_the_api_with_its_user_and_scopes() {
    let idp = Idp::start().await;
    let url = serve(api(warm_jwt(&idp, idp::API).await)).await;
    let http = client();

    let token = idp
        .authorization_code("alice", "openid read", idp::API)
        .await;

    let answer = send(http.get(format!("{url}/me")), Some(&token)).await;
    let me = answer.assert_ok("GET /me with alice's token").json();
    assert_eq!(me["sub"], "alice", "{me}");
    assert_eq!(me["client_id"], idp::CLIENT_ID, "{me}");
    let scopes = scope_list(&me["scopes"]);
    assert!(scopes.iter().any(|s| s == "read"), "{me}");
    assert!(!scopes.iter().any(|s| s == "write"), "{me}");

    send(http.post(format!("{url}/items")), Some(&token))
        .await
        .assert_insufficient_scope("write", "POST /items with a read-only token");

    // Tampered copies: the signature no longer covers what the token says.
    let (_, claims) = jwt_parts(&token);
    let mut escalated = claims.clone();
    escalated["scope"] = json!("read write admin");
    let mut impersonating = claims;
    impersonating["sub"] = json!("mallory");
    let tampered = [
        ("a character of the payload changed", flip_char(&token, 1)),
        ("a character of the signature changed", flip_char(&token, 2)),
        (
            "scopes added to the payload",
            with_payload(&token, &escalated),
        ),
        (
            "another subject in the payload",
            with_payload(&token, &impersonating),
        ),
    ];
    for (what, forged) in tampered {
        assert_ne!(forged, token, "{what}: the token did not change");
        send(http.get(format!("{url}/me")), Some(&forged))
            .await
            .assert_invalid_token(what);
        send(http.post(format!("{url}/items")), Some(&forged))
            .await
            .assert_invalid_token(what);
    }

    // The genuine token still works: nothing was poisoned by the forgeries.
    send(http.get(format!("{url}/me")), Some(&token))
        .await
        .assert_ok("GET /me with alice's token after the forgeries");
}

// ── 2. Client credentials, RS256 and ES256 ─────────────────────────────────────────────────

#[tokio::test]
async fn client_credentials_tokens_signed_rs256_and_es256_are_accepted_for_their_audiences() {
    let idp = Idp::start().await;
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(idp::API)
        .audience(idp::API_ES)
        .build()
        .expect("a valid JWT configuration");
    let url = serve(api(jwt)).await;
    let http = client();

    for (resource, alg) in [(idp::API, "RS256"), (idp::API_ES, "ES256")] {
        let token = idp.client_credentials(resource, "read write").await;
        let (header, _) = jwt_parts(&token);
        assert_eq!(header["alg"], alg, "{header}");

        let answer = send(http.get(format!("{url}/me")), Some(&token)).await;
        let me = answer
            .assert_ok(&format!("GET /me with an {alg} token"))
            .json();
        assert_eq!(me["sub"], idp::CLIENT_ID, "{me}");
        assert_eq!(scope_list(&me["scopes"]), ["read", "write"], "{me}");
        send(http.post(format!("{url}/items")), Some(&token))
            .await
            .assert_ok(&format!("POST /items with an {alg} token granting write"));
    }

    // Genuine, signed by the trusted issuer, but meant for another API.
    let other = idp.client_credentials(idp::OTHER, "read write").await;
    let answer = send(http.get(format!("{url}/me")), Some(&other)).await;
    answer.assert_invalid_token("GET /me with a token for another audience");
}

// ── 3. Key rotation while the API runs ─────────────────────────────────────────────────────

// On several threads, so that the API really decides the requests in parallel.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_signing_key_is_fetched_once_for_many_concurrent_requests() {
    const COOLDOWN: Duration = Duration::from_millis(100);
    const CONCURRENT: usize = 20;

    let idp = Idp::start().await;
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(idp::API)
        .jwks_refresh_cooldown(COOLDOWN)
        .build()
        .expect("a valid JWT configuration");
    jwt.refresh().await.expect("the provider's keys load");
    let warmed_at = Instant::now();
    let url = serve(api(jwt)).await;
    let http = client();

    let hits_before = idp.jwks_hits().await;
    let old_token = idp.client_credentials(idp::API, "read").await;
    send(http.get(format!("{url}/me")), Some(&old_token))
        .await
        .assert_ok("GET /me before the rotation");

    // An unknown kid may trigger a fetch only once the cooldown since the warm-up is over.
    tokio::time::sleep((warmed_at + COOLDOWN * 2).saturating_duration_since(Instant::now())).await;
    let new_kid = idp.rotate_key().await;
    let new_token = idp.client_credentials(idp::API, "read").await;
    let (header, _) = jwt_parts(&new_token);
    assert_eq!(header["kid"], new_kid.as_str(), "{header}");

    // All at once, through one barrier, so that they meet the unknown kid together.
    let barrier = Arc::new(tokio::sync::Barrier::new(CONCURRENT));
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..CONCURRENT {
        let request = http.get(format!("{url}/me"));
        let (token, barrier) = (new_token.clone(), Arc::clone(&barrier));
        requests.spawn(async move {
            barrier.wait().await;
            send(request, Some(&token)).await
        });
    }
    let answers = requests.join_all().await;
    let failed: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status != StatusCode::OK)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {CONCURRENT} requests with the new key failed: {failed:?}",
        failed.len()
    );

    // Tokens signed with the old key stay valid: the provider still publishes it.
    send(http.get(format!("{url}/me")), Some(&old_token))
        .await
        .assert_ok("GET /me with a token signed before the rotation");

    let hits_after = idp.jwks_hits().await;
    assert_eq!(
        hits_after - hits_before,
        1,
        "the API should fetch the JWKS exactly once for the new kid \
         ({hits_before} fetches before, {hits_after} after)"
    );
}

// ── 4. Expiry ──────────────────────────────────────────────────────────────────────────────

#[tokio::test]
async fn a_token_is_refused_once_it_has_expired() {
    let idp = Idp::start().await;
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(idp::SHORT)
        .leeway(Duration::ZERO)
        .build()
        .expect("a valid JWT configuration");
    jwt.refresh().await.expect("the provider's keys load");
    let url = serve(api(jwt)).await;
    let http = client();

    let token = idp.client_credentials(idp::SHORT, "read").await;
    let (_, claims) = jwt_parts(&token);
    let exp = claims["exp"].as_u64().expect("an exp claim");

    send(http.get(format!("{url}/me")), Some(&token))
        .await
        .assert_ok("GET /me with a fresh short-lived token");

    // Until a second past `exp`, and never longer than the token's whole life and that second.
    let expired_at = UNIX_EPOCH + Duration::from_secs(exp + 1);
    let wait = expired_at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .min(Duration::from_secs(idp::SHORT_TTL_SECS + 1));
    tokio::time::sleep(wait).await;

    let answer = send(http.get(format!("{url}/me")), Some(&token)).await;
    answer.assert_invalid_token("GET /me with an expired token");
    // The caller learns that the token is not valid, not which check failed.
    assert_eq!(
        answer.param("error_description").as_deref(),
        Some("the access token is expired, revoked, malformed, or not valid for this resource"),
        "{answer:?}"
    );
}

// ── 5. Opaque tokens through introspection ─────────────────────────────────────────────────

#[tokio::test]
async fn an_opaque_token_is_introspected_and_refused_after_revocation_once_the_cache_expires() {
    const CACHE_TTL: Duration = Duration::from_secs(1);

    let idp = Idp::start().await;
    let introspection = Introspection::builder()
        .issuer(&idp.issuer) // the endpoint is discovered
        .client_credentials(idp::RS_CLIENT_ID, idp::RS_CLIENT_SECRET)
        .audience(idp::OPAQUE)
        .cache_max_ttl(CACHE_TTL)
        .build()
        .expect("a valid introspection configuration");
    let jwt = warm_jwt(&idp, idp::API).await;
    let url = serve(api(JwtOrIntrospection::new(jwt, introspection))).await;
    let http = client();

    let opaque = idp.client_credentials(idp::OPAQUE, "read write").await;
    assert!(!opaque.contains('.'), "not an opaque token: {opaque}");

    let answer = send(http.get(format!("{url}/me")), Some(&opaque)).await;
    let cached_at = Instant::now();
    let me = answer.assert_ok("GET /me with an opaque token").json();
    assert_eq!(me["client_id"], idp::CLIENT_ID, "{me}");
    assert_eq!(scope_list(&me["scopes"]), ["read", "write"], "{me}");
    send(http.post(format!("{url}/items")), Some(&opaque))
        .await
        .assert_ok("POST /items with an opaque token granting write");

    // A JWT through the same authenticator is validated locally.
    let jwt_token = idp.client_credentials(idp::API, "read").await;
    send(http.get(format!("{url}/me")), Some(&jwt_token))
        .await
        .assert_ok("GET /me with a JWT next to introspection");

    idp.revoke(&opaque).await;
    let introspected = idp.introspect(&opaque).await;
    assert_eq!(introspected["active"], false, "{introspected}");

    // Still accepted from the cache, as long as the cached answer is surely fresh.
    let answer = send(http.get(format!("{url}/me")), Some(&opaque)).await;
    if cached_at.elapsed() < CACHE_TTL / 2 {
        answer.assert_ok("GET /me with a revoked token whose answer is cached");
    }

    tokio::time::sleep(
        (cached_at + CACHE_TTL + Duration::from_millis(200))
            .saturating_duration_since(Instant::now()),
    )
    .await;
    send(http.get(format!("{url}/me")), Some(&opaque))
        .await
        .assert_invalid_token("GET /me with a revoked token after the cache expired");
}

#[tokio::test]
async fn introspection_authenticates_with_client_secret_post() {
    let idp = Idp::start().await;
    let introspection = Introspection::builder()
        .issuer(&idp.issuer)
        .endpoint(idp.introspection_endpoint())
        .client_credentials(idp::RS_POST_CLIENT_ID, idp::RS_CLIENT_SECRET)
        .client_auth(ClientAuth::ClientSecretPost)
        .audience(idp::OPAQUE)
        .build()
        .expect("a valid introspection configuration");
    let url = serve(api(introspection)).await;
    let http = client();

    let opaque = idp
        .authorization_code("carol", "openid read", idp::OPAQUE)
        .await;
    let answer = send(http.get(format!("{url}/me")), Some(&opaque)).await;
    let me = answer.assert_ok("GET /me with an opaque token").json();
    assert_eq!(me["sub"], "carol", "{me}");
    send(http.post(format!("{url}/items")), Some(&opaque))
        .await
        .assert_insufficient_scope("write", "POST /items with an opaque read-only token");

    send(
        http.get(format!("{url}/me")),
        Some("not-a-token-the-provider-issued"),
    )
    .await
    .assert_invalid_token("GET /me with an unknown opaque token");
}

// ── 6. examples/protected_api.rs as a process ──────────────────────────────────────────────

#[tokio::test]
async fn the_protected_api_example_serves_real_tokens() {
    let idp = Idp::start().await;
    let example = ExampleServer::start(&idp.issuer, idp::API, &[]).await;
    let url = &example.url;
    let http = client();
    let context = |what: &str| format!("{what}\n--- example stderr ---\n{}", example.stderr());

    send(http.get(format!("{url}/health")), None)
        .await
        .assert_ok(&context("GET /health without a token"));

    let answer = send(http.get(format!("{url}/me")), None).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        context(&format!("{answer:?}"))
    );

    let reader = idp.client_credentials(idp::API, "read").await;
    let answer = send(http.get(format!("{url}/me")), Some(&reader)).await;
    let me = answer
        .assert_ok(&context("GET /me with a read token"))
        .json();
    assert_eq!(me["sub"], idp::CLIENT_ID, "{me}");
    assert_eq!(scope_list(&me["scopes"]), ["read"], "{me}");
    let aud = &me["claims"]["aud"];
    assert!(
        aud == idp::API
            || aud
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == idp::API)),
        "{me}"
    );

    send(http.get(format!("{url}/items")), Some(&reader))
        .await
        .assert_ok(&context("GET /items with a read token"));
    send(http.post(format!("{url}/items")), Some(&reader))
        .await
        .assert_insufficient_scope("write", &context("POST /items with a read token"));
    send(http.get(format!("{url}/admin")), Some(&reader))
        .await
        .assert_insufficient_scope("admin", &context("GET /admin with a read token"));

    let admin = idp
        .authorization_code("alice", "openid read admin", idp::API)
        .await;
    let answer = send(http.get(format!("{url}/admin")), Some(&admin)).await;
    answer.assert_ok(&context("GET /admin with alice's admin token"));

    let other = idp.client_credentials(idp::OTHER, "read").await;
    send(http.get(format!("{url}/me")), Some(&other))
        .await
        .assert_invalid_token(&context("GET /me with a token for another audience"));
}

#[tokio::test]
async fn the_protected_api_example_introspects_opaque_tokens_and_keeps_validating_jwts() {
    let idp = Idp::start().await;
    let endpoint = idp.introspection_endpoint();
    let example = ExampleServer::start(
        &idp.issuer,
        idp::API,
        &[
            "--audience",
            idp::OPAQUE,
            "--introspection-url",
            &endpoint,
            "--client-id",
            idp::RS_CLIENT_ID,
            "--client-secret",
            idp::RS_CLIENT_SECRET,
        ],
    )
    .await;
    let url = &example.url;
    let http = client();
    let context = |what: &str| format!("{what}\n--- example stderr ---\n{}", example.stderr());

    let opaque = idp.client_credentials(idp::OPAQUE, "read write").await;
    assert_eq!(opaque.split('.').count(), 1, "an opaque token, not a JWT");
    let me = send(http.get(format!("{url}/me")), Some(&opaque))
        .await
        .assert_ok(&context("GET /me with an opaque token"))
        .json();
    assert_eq!(scope_list(&me["scopes"]), ["read", "write"], "{me}");
    send(http.get(format!("{url}/items")), Some(&opaque))
        .await
        .assert_ok(&context("GET /items with an opaque read token"));
    let created = send(
        http.post(format!("{url}/items"))
            .json(&serde_json::json!({ "name": "plum" })),
        Some(&opaque),
    )
    .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "{}",
        context(&format!("{created:?}"))
    );
    send(http.get(format!("{url}/admin")), Some(&opaque))
        .await
        .assert_insufficient_scope("admin", &context("GET /admin with an opaque token"));

    let jwt = idp.client_credentials(idp::API, "read").await;
    send(http.get(format!("{url}/me")), Some(&jwt))
        .await
        .assert_ok(&context("GET /me with a JWT next to introspection"));

    let unknown = "definitely-not-an-issued-token";
    send(http.get(format!("{url}/me")), Some(unknown))
        .await
        .assert_invalid_token("GET /me with an unknown opaque token");
}

#[test]
fn the_protected_api_example_refuses_client_credentials_without_an_endpoint() {
    let binary = example_binary("protected_api");
    let output = std::process::Command::new(&binary)
        .args(["--issuer", "https://login.example.com", "--audience", "api"])
        .args(["--client-id", "my-api", "--client-secret", "s3cr3t-value"])
        .env_remove("PORTCULLIS_INTROSPECTION_URL")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", binary.display()));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--introspection-url"), "{stderr}");
    assert!(
        !stderr.contains("s3cr3t-value"),
        "the secret is echoed: {stderr}"
    );
}

// ── 7. examples/protected_api.rs with --resource and a step-up policy ────────────────────────

#[tokio::test]
async fn the_protected_api_example_publishes_its_metadata_and_steps_up_admin() {
    let idp = Idp::start().await;
    // The canonical URI is a name tokens carry in `aud`; the example listens elsewhere.
    let resource = "http://127.0.0.1:1/api";
    let metadata_url = "http://127.0.0.1:1/.well-known/oauth-protected-resource/api";
    let mfa = "urn:portcullis:mfa";
    let example = ExampleServer::start(
        &idp.issuer,
        idp::API,
        &[
            "--resource",
            resource,
            "--require-acr",
            mfa,
            "--max-auth-age",
            "300",
        ],
    )
    .await;
    let url = &example.url;
    let http = client();
    let context = |what: &str| format!("{what}\n--- example stderr ---\n{}", example.stderr());
    let get = |path: &str, token: Option<&str>| {
        let request = http.get(format!("{url}{path}"));
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        async move {
            let response = request.send().await.expect("GET");
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| v.to_str().expect("ascii").to_owned());
            (
                response.status(),
                challenge,
                response.text().await.unwrap_or_default(),
            )
        }
    };

    let (status, _, body) = get("/.well-known/oauth-protected-resource/api", None).await;
    assert_eq!(status, StatusCode::OK, "{}", context("GET metadata"));
    let document: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        document,
        serde_json::json!({
            "resource": resource,
            "authorization_servers": [idp.issuer],
            "scopes_supported": ["read", "write", "admin"],
            "bearer_methods_supported": ["header"],
            "resource_name": "portcullis protected_api example",
        })
    );

    let (status, challenge, _) = get("/me", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge.as_deref(),
        Some(format!(r#"Bearer realm="api", resource_metadata="{metadata_url}""#).as_str())
    );

    // A token for the canonical URI is accepted; `/admin` wants a stronger sign-in.
    let token = |extra: &'static [(&'static str, &'static str)]| {
        let idp = &idp;
        async move {
            let response = idp
                .authorization_code_response_with("alice", "openid read admin", resource, extra)
                .await;
            response["access_token"]
                .as_str()
                .expect("a token")
                .to_owned()
        }
    };
    let plain = token(&[]).await;
    let (status, _, _) = get("/me", Some(&plain)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        context("GET /me for the resource")
    );
    let (status, challenge, _) = get("/admin", Some(&plain)).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        context("GET /admin")
    );
    assert_eq!(
        challenge.as_deref(),
        Some(
            format!(
                r#"Bearer realm="api", error="insufficient_user_authentication", error_description="the user's authentication context does not satisfy this resource", acr_values="{mfa}", max_age="300", resource_metadata="{metadata_url}""#
            )
            .as_str()
        )
    );
    let stepped_up = token(&[("acr_values", "urn:portcullis:mfa")]).await;
    let (status, _, _) = get("/admin", Some(&stepped_up)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        context("GET /admin after step-up")
    );

    // Still scope-checked: a token without `admin` is 403 naming it, with the metadata.
    let reader = idp.client_credentials(idp::API, "read").await;
    let (status, challenge, _) = get("/admin", Some(&reader)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = challenge.unwrap_or_default();
    assert!(challenge.contains(r#"scope="admin""#), "{challenge}");
    assert!(challenge.contains(metadata_url), "{challenge}");
}

// ── 8. examples/protected_api.rs with DPoP flags ───────────────────────────────────────────

#[tokio::test]
async fn the_protected_api_example_demands_dpop_and_nonces_when_asked() {
    use support::dpop::{DpopKey, dpop_token};

    let idp = Idp::start().await;
    let key = DpopKey::generate();
    let bound = dpop_token(&idp, &key, idp::API, "read").await;
    let bearer = idp.client_credentials(idp::API, "read").await;
    let example = ExampleServer::start(
        &idp.issuer,
        idp::API,
        &[
            "--dpop-required",
            "--dpop-nonce",
            "--public-url",
            "https://api.example.com/v1",
        ],
    )
    .await;
    let me = format!("{}/me", example.url);
    let htu = "https://api.example.com/v1/me";
    let http = client();
    let context = |what: &str| format!("{what}\n--- example stderr ---\n{}", example.stderr());
    let dpop_get = |token: &str, proof: String| {
        http.get(&me)
            .header(AUTHORIZATION, format!("DPoP {token}"))
            .header("dpop", proof)
    };

    // --dpop-required: a plain bearer token is refused, only DPoP is offered.
    let answer = send(http.get(&me), Some(&bearer)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        context(&format!("{answer:?}"))
    );

    // --dpop-nonce: the first proof is answered with a nonce, the retry with it passes.
    let first = dpop_get(&bound, key.proof("GET", htu, Some(&bound)))
        .send()
        .await
        .expect("the example answers");
    assert_eq!(
        first.status(),
        StatusCode::UNAUTHORIZED,
        "{}",
        context("no nonce")
    );
    let challenge = first.headers()[WWW_AUTHENTICATE]
        .to_str()
        .expect("ASCII")
        .to_owned();
    assert!(
        challenge.starts_with("DPoP ") && challenge.contains("use_dpop_nonce"),
        "{challenge}"
    );
    let nonce = first.headers()["dpop-nonce"]
        .to_str()
        .expect("ASCII")
        .to_owned();
    let mut claims = key.claims("GET", htu, Some(&bound));
    claims["nonce"] = json!(nonce);
    let ok = dpop_get(&bound, key.sign(&key.header(), &claims))
        .send()
        .await
        .expect("the example answers");
    assert_eq!(ok.status(), StatusCode::OK, "{}", context("with the nonce"));
    let body: Value = ok.json().await.expect("JSON");
    assert_eq!(body["dpop_jkt"], key.thumbprint(), "{body}");
}

// ── 9. The example's roles, clients and tenant flags (an in-process issuer, no node) ────────

/// `--roles-claim`, `--require-role`, `--allowed-client`, `--issuer-template` with
/// `--template-jwks-uri` and `--tenant`, end to end through the example process, with
/// tokens minted by an in-process issuer on `127.0.0.1:0`.
#[tokio::test]
async fn the_protected_api_example_enforces_roles_clients_and_tenants() {
    use support::issuer::{IssuerServer, TestKey, jwks, mint, now};

    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const AUD: &str = "api://orders";
    let key = TestKey::rsa_a();
    let issuer = IssuerServer::start(jwks(&[&key])).await;
    let template = format!("{}/{{tenantid}}/v2.0", issuer.issuer());
    let jwks_uri = issuer.jwks_uri();
    let example = ExampleServer::start(
        issuer.issuer(),
        AUD,
        &[
            "--roles-claim",
            "realm_access.roles",
            "--roles-claim",
            "roles",
            "--require-role",
            "admin",
            "--allowed-client",
            "web",
            "--allowed-client",
            "cli",
            "--issuer-template",
            &template,
            "--template-jwks-uri",
            &jwks_uri,
            "--tenant",
            TENANT,
        ],
    )
    .await;
    let url = &example.url;
    let http = client();
    let token = |iss: String, extra: Value| {
        let mut claims =
            json!({ "iss": iss, "aud": AUD, "sub": "u", "exp": now() + 300, "iat": now() });
        if let (Value::Object(c), Value::Object(e)) = (&mut claims, extra) {
            c.extend(e);
        }
        mint(&key, claims)
    };
    let tenant_iss = |tenant: &str| format!("{}/{tenant}/v2.0", issuer.issuer());
    let context = |what: &str| format!("{what}\n--- example stderr ---\n{}", example.stderr());

    // Keycloak-shaped, exact issuer, allowed client, realm role `admin`.
    let keycloak = token(
        issuer.issuer().to_owned(),
        json!({ "azp": "web", "realm_access": { "roles": ["admin"] } }),
    );
    send(http.get(format!("{url}/admin")), Some(&keycloak))
        .await
        .assert_ok(&context("GET /admin with the realm role"));
    let me = send(http.get(format!("{url}/me")), Some(&keycloak)).await;
    assert_eq!(me.json()["roles"], json!(["admin"]), "{me:?}");

    // Entra-shaped, through the template, app role `admin` (`roles`), v1 client claim.
    let entra = token(
        tenant_iss(TENANT),
        json!({ "tid": TENANT, "appid": "cli", "roles": ["admin"] }),
    );
    send(http.get(format!("{url}/admin")), Some(&entra))
        .await
        .assert_ok(&context("GET /admin as an allowed tenant"));
    let me = send(http.get(format!("{url}/me")), Some(&entra)).await;
    assert_eq!(me.json()["iss"], json!(tenant_iss(TENANT)), "{me:?}");

    // No role: 403 on /admin, fine elsewhere.
    let user = token(
        issuer.issuer().to_owned(),
        json!({ "azp": "web", "roles": ["user"] }),
    );
    let answer = send(http.get(format!("{url}/admin")), Some(&user)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");
    assert_eq!(answer.param("error").as_deref(), Some("insufficient_scope"));
    send(http.get(format!("{url}/me")), Some(&user))
        .await
        .assert_ok(&context("GET /me without the role"));

    // A client that is not allowed: 403 everywhere behind the auth layer.
    let stranger = token(
        issuer.issuer().to_owned(),
        json!({ "azp": "other", "roles": ["admin"] }),
    );
    let answer = send(http.get(format!("{url}/me")), Some(&stranger)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{answer:?}");

    // A tenant outside `--tenant`, and a `tid` that is not the tenant of `iss`.
    let other = "3c2a1b0e-0000-4000-8000-00000000abcd";
    let outsider = token(tenant_iss(other), json!({ "tid": other, "azp": "web" }));
    send(http.get(format!("{url}/me")), Some(&outsider))
        .await
        .assert_invalid_token("a tenant outside the allowlist");
    let mismatched = token(tenant_iss(TENANT), json!({ "tid": other, "azp": "web" }));
    send(http.get(format!("{url}/me")), Some(&mismatched))
        .await
        .assert_invalid_token("tid differs from the tenant in iss");
}
