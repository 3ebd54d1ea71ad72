//! A small API protected by portcullis, for a real issuer (Keycloak, Auth0, Entra ID, …).
//!
//! ```text
//! cargo run --example protected_api -- \
//!     --issuer https://login.example.com/realms/main --audience https://api.example.com
//! ```
//!
//! | route | needs |
//! |---|---|
//! | `GET /health` | nothing (outside the auth layer) |
//! | `GET /ready` | nothing; `200` when every issuer has keys, else `503` with a JSON reason (the keys are fetched in the background from start-up) |
//! | `GET /me` | any valid token; answers its subject, scopes and claims |
//! | `GET /items` | scope `read` |
//! | `POST /items` | scope `write`; body `{"name": "…"}`, answers `201` |
//! | `GET /admin` | scope `admin` (or the roles of `--require-role`), and the step-up policy, if any |
//! | `GET /.well-known/oauth-protected-resource[/path]` | nothing; only with `--resource` |
//!
//! Then call it with an access token from your issuer:
//!
//! ```text
//! curl -i http://127.0.0.1:8080/me -H "Authorization: Bearer $ACCESS_TOKEN"
//! ```
//!
//! For issuers that hand out opaque tokens, add the introspection endpoint and the API's
//! own client credentials; JWT-shaped tokens are still validated locally:
//!
//! ```text
//!     --introspection-url https://login.example.com/oauth2/introspect \
//!     --client-id my-api --client-secret "$CLIENT_SECRET"
//! ```
//!
//! Introspection answers must name this API in `aud`; for an issuer that leaves `aud` out
//! of them, add `--introspection-missing-aud accept` (an `aud` that is present is still
//! checked).
//!
//! With `--resource https://api.example.com` (the API's canonical URI), the API publishes
//! its RFC 9728 metadata at `/.well-known/oauth-protected-resource` (path-suffixed for a
//! URI with a path), names it in every challenge, and accepts tokens whose `aud` is that
//! URI. `--require-acr VALUE` (repeatable) and `--max-auth-age SECONDS` add an RFC 9470
//! step-up policy to `/admin`: a token whose `acr` is not one of the values, or whose
//! `auth_time` is older, gets `401 insufficient_user_authentication`.
//!
//! Behind a company proxy or a private CA, add `--proxy URL` and `--ca-file PATH` (a PEM
//! bundle trusted for every call to the issuer). `--metrics-addr HOST:PORT` serves
//! portcullis' metrics in Prometheus text format at `/metrics` on that address.
//!
//! DPoP-bound tokens (RFC 9449) are accepted out of the box, with their proof:
//!
//! ```text
//! curl -i http://127.0.0.1:8080/me -H "Authorization: DPoP $ACCESS_TOKEN" -H "DPoP: $PROOF"
//! ```
//!
//! `--dpop-required` refuses plain bearer tokens, `--dpop-nonce` demands server nonces
//! (`DPoP-Nonce`), and `--public-url https://api.example.com` sets the external URL that
//! proofs name in `htu` when the API runs behind a proxy.
//!
//! Roles and clients: `--roles-claim realm_access.roles` (repeatable; a dotted path, a
//! string or an array) reads roles from the token, and `--require-role admin` (repeatable,
//! all required) guards `/admin` with them instead of the scope. `--allowed-client ID`
//! (repeatable) admits only tokens whose `azp`, `client_id` or `appid` is one of them.
//!
//! Multi-tenant (Entra ID): instead of, or besides, `--issuer`, trust every tenant of a
//! template, with the template's one key set; `--tenant ID` (repeatable) lists the allowed
//! tenants:
//!
//! ```text
//!     --issuer-template 'https://login.microsoftonline.com/{tenantid}/v2.0' \
//!     --template-jwks-uri https://login.microsoftonline.com/common/discovery/v2.0/keys \
//!     --tenant 72f988bf-86f1-41af-91ab-2d7cd011db47
//! ```
//!
//! Replicas behind a load balancer share their introspection answers and their record of
//! DPoP proofs through Redis with `--redis-url redis://host:6379/0` (built with
//! `--features redis`; every replica sets the same `PORTCULLIS_REDIS_SHARED_KEY`, at least
//! 32 bytes).
//!
//! Run with `--help` for every option. Logs go through `tracing-subscriber`; set `RUST_LOG`
//! to change the default `info,portcullis=debug` (rejections are logged by portcullis at
//! DEBUG under the target `portcullis::rejection`).

use std::{
    collections::HashMap,
    fmt::Write as _,
    process::ExitCode,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use axum::{
    Json, Router,
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use portcullis::{
    AuthError, Authenticate, AuthoritySource, BearerAuthLayer, HttpRejection, Introspection, Jwt,
    JwtOrIntrospection, Principal, RegisteredClaims, RequireRoleLayer, RequireScopeLayer,
    RequireStepUpLayer, StepUpPolicy,
    authz::{AuthorityPolicy, RequireClaimLayer},
    jwt::TenantIssuer,
    metadata::ProtectedResource,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let args = std::env::args().skip(1);
    let config = match Config::parse(args, |name| std::env::var(name).ok()) {
        Ok(Some(config)) => config,
        Ok(None) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("protected_api: {message}\nRun with --help for usage.");
            return ExitCode::from(2);
        }
    };

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,portcullis=debug")),
        )
        .init();

    // Trust the configured issuers (keys found through discovery) for the configured
    // audiences (the canonical `--resource` URI among them). Building checks the
    // configuration and does no I/O.
    let ca = match config.ca_file.as_deref().map(std::fs::read).transpose() {
        Ok(ca) => ca,
        Err(error) => {
            eprintln!("protected_api: cannot read {}: {error}", CA_FILE.flag);
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = &config.metrics_addr
        && let Err(error) = serve_metrics(addr).await
    {
        eprintln!("protected_api: {}: {error}", METRICS_ADDR.flag);
        return ExitCode::from(2);
    }
    let mut builder = Jwt::builder();
    if let Some(ca) = &ca {
        builder = builder.add_root_certificate_pem(ca.clone());
    }
    if let Some(proxy) = &config.proxy {
        builder = builder.proxy(proxy);
    }
    for issuer in &config.issuers {
        builder = builder.issuer(issuer);
    }
    for audience in config.audiences() {
        builder = builder.audience(audience);
    }
    if let Some(template) = &config.template {
        builder = builder.tenant_issuer(
            TenantIssuer::new(&template.template)
                .jwks_uri(&template.jwks_uri)
                .tenants(&template.tenants),
        );
    }
    for path in &config.roles_claims {
        builder = builder.authorities(AuthoritySource::path(path));
    }
    let jwt = match builder.build() {
        Ok(jwt) => jwt,
        Err(error) => {
            eprintln!("protected_api: {error}");
            return ExitCode::from(2);
        }
    };

    // With introspection flags, opaque tokens go to the first issuer's introspection
    // endpoint and JWT-shaped tokens stay local.
    let served = match &config.introspection {
        None => serve(&config, jwt.clone(), jwt).await,
        Some(intro) => {
            let Some(issuer) = config.issuers.first() else {
                eprintln!("protected_api: introspection needs an --issuer");
                return ExitCode::from(2);
            };
            let mut introspection = Introspection::builder().issuer(issuer);
            if let Some(ca) = &ca {
                introspection = introspection.add_root_certificate_pem(ca.clone());
            }
            if let Some(proxy) = &config.proxy {
                introspection = introspection.proxy(proxy);
            }
            let introspection = config.roles_claims.iter().fold(introspection, |b, path| {
                b.authorities(AuthoritySource::path(path))
            });
            let introspection = introspection
                .endpoint(&intro.url)
                .client_credentials(&intro.client_id, &intro.client_secret)
                .dangerous_accept_missing_audience(intro.accept_missing_aud);
            let introspection = match &config.redis {
                Some(store) => shared_introspection_cache(introspection, store),
                None => introspection,
            };
            let introspection = config
                .audiences()
                .fold(introspection, |b, audience| b.audience(audience))
                .build();
            match introspection {
                Ok(introspection) => {
                    let auth = JwtOrIntrospection::new(jwt.clone(), introspection);
                    serve(&config, jwt, auth).await
                }
                Err(error) => {
                    eprintln!("protected_api: {error}");
                    return ExitCode::from(2);
                }
            }
        }
    };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("protected_api: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve<A>(config: &Config, jwt: Jwt, auth: A) -> std::io::Result<()>
where
    A: Authenticate<Claims = RegisteredClaims> + Clone + Send + Sync + 'static,
{
    // With a canonical URI: its metadata document, named in every challenge.
    let resource = match &config.resource {
        Some(uri) => {
            let metadata = ProtectedResource::builder(uri)
                .authorization_servers_of(&jwt)
                .scopes_supported(["read", "write", "admin"])
                .resource_name("portcullis protected_api example")
                .build()
                .map_err(std::io::Error::other)?;
            Some(metadata)
        }
        None => None,
    };
    let rejection = resource
        .as_ref()
        .map_or_else(HttpRejection::new, ProtectedResource::rejection);
    let scope = |s: &str| RequireScopeLayer::all([s]).on_rejection(rejection.clone());

    // `/admin` needs scope `admin`, then the step-up policy if there is one.
    let mut admin_route = get(admin);
    if let Some(policy) = config.step_up().map_err(std::io::Error::other)? {
        admin_route = admin_route
            .route_layer(RequireStepUpLayer::new(policy).on_rejection(rejection.clone()));
    }
    // … or the roles of `--require-role` instead of the scope.
    let admin_route = match &config.required_roles {
        Some(policy) => admin_route
            .route_layer(RequireRoleLayer::new(policy.clone()).on_rejection(rejection.clone())),
        None => admin_route.route_layer(scope("admin")),
    };

    // Every route in `protected` needs a valid token; some need a scope on top, set per
    // method with `route_layer` (which covers only the methods added before it).
    let protected = Router::new()
        .route("/me", get(me))
        .route(
            "/items",
            get(list_items)
                .route_layer(scope("read"))
                .merge(post(create_item).route_layer(scope("write"))),
        )
        .route("/admin", admin_route);
    // With `--allowed-client`, only tokens issued to those clients get in: `azp` (OpenID
    // Connect, Keycloak, Entra v2), `client_id` (RFC 9068) or `appid` (Entra v1).
    let protected = match &config.allowed_clients {
        None => protected,
        Some(clients) => {
            let clients = Arc::clone(clients);
            protected.route_layer(
                RequireClaimLayer::from_predicate(move |claims: &RegisteredClaims| {
                    let extra = |name: &str| claims.extra.get(name).and_then(Value::as_str);
                    [claims.client_id.as_deref(), extra("azp"), extra("appid")]
                        .into_iter()
                        .flatten()
                        .any(|client| clients.iter().any(|allowed| allowed == client))
                })
                .on_rejection(rejection.clone()),
            )
        }
    };
    // `route_layer`, not `layer`: an unknown path stays `404` instead of becoming `401`.
    let protected =
        protected.route_layer(auth_layer(config, auth)?.on_rejection(rejection.clone()));

    let readiness = jwt.clone();
    let mut app = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(move || ready(readiness.clone())));
    if let Some(resource) = &resource {
        app = app.route_service(resource.well_known_path(), resource.service());
    }
    let app = app
        .merge(protected)
        .layer(middleware::from_fn(log_request))
        .with_state(Items::default());

    let listener = tokio::net::TcpListener::bind(&config.addr).await?;

    // Warm-up in the background: fetch the issuers' keys, retrying for a few seconds, while
    // the API already serves. `/ready` answers `503` until the keys are in (what a readiness
    // probe waits for); a request that comes first waits for the same fetch. A failure is
    // not fatal: `/ready` says why, requests get `503` while the keys are missing, and
    // portcullis retries on its own.
    let warming = jwt.clone();
    tokio::spawn(async move {
        if let Err(error) = warming.warm_up(Duration::from_secs(10)).await {
            tracing::warn!(%error, "serving without the issuers' keys");
        }
    });

    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
}

/// `200` when every issuer has keys; otherwise `503` and, per issuer without keys, why.
async fn ready(jwt: Jwt) -> (StatusCode, Json<Value>) {
    let missing: Vec<Value> = jwt
        .status()
        .iter()
        .filter(|status| !status.has_keys())
        .map(|status| json!({ "issuer": status.issuer(), "error": status.last_error() }))
        .collect();
    if missing.is_empty() {
        (StatusCode::OK, Json(json!({ "ready": true })))
    } else {
        let body =
            json!({ "ready": false, "reason": "no keys for some issuers", "issuers": missing });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

/// Installs a Prometheus recorder and serves its text at `http://{addr}/metrics`.
async fn serve_metrics(addr: &str) -> Result<(), String> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| error.to_string())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| error.to_string())?;
    let app = Router::new().route("/metrics", get(move || std::future::ready(handle.render())));
    println!(
        "metrics on http://{}/metrics",
        listener.local_addr().map_err(|e| e.to_string())?
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(())
}

/// The auth layer with the DPoP options of the command line.
fn auth_layer<A>(config: &Config, auth: A) -> std::io::Result<BearerAuthLayer<A>> {
    let layer = BearerAuthLayer::new(auth)
        .dpop_required(config.dpop_required)
        .dpop_nonces(config.dpop_nonce);
    let layer = match &config.redis {
        Some(store) => shared_replay_store(layer, store),
        None => layer,
    };
    match &config.public_url {
        None => Ok(layer),
        Some(url) => layer
            .dpop_public_url(url)
            .map_err(|e| std::io::Error::other(format!("{}: {e}", PUBLIC_URL.flag))),
    }
}

// ── Redis (feature `redis`) ──────────────────────────────────────────────────────────────

#[cfg(feature = "redis")]
type SharedStore = portcullis::RedisStore;
/// Without the feature there is no store: `--redis-url` is refused.
#[cfg(not(feature = "redis"))]
type SharedStore = std::convert::Infallible;

/// The store the replicas share, when `--redis-url` is given. Building does no I/O: the
/// connection is made by the first request that needs it.
#[cfg(feature = "redis")]
fn shared_store(url: Option<String>, key: Option<String>) -> Result<Option<SharedStore>, String> {
    let Some(url) = url else { return Ok(None) };
    let key = key.ok_or_else(|| {
        format!(
            "{} needs PORTCULLIS_REDIS_SHARED_KEY (at least 32 bytes, the same on every replica)",
            REDIS_URL.flag
        )
    })?;
    portcullis::RedisStore::builder()
        .url(url)
        .shared_key(key.into_bytes())
        .build()
        .map(Some)
        .map_err(|e| format!("{}: {e}", REDIS_URL.flag))
}

#[cfg(not(feature = "redis"))]
fn shared_store(url: Option<String>, _key: Option<String>) -> Result<Option<SharedStore>, String> {
    match url {
        None => Ok(None),
        Some(_) => Err(format!(
            "{} needs the `redis` feature: cargo run --features redis --example protected_api",
            REDIS_URL.flag
        )),
    }
}

/// DPoP proofs recorded in Redis: a proof accepted by one replica is refused by the others
/// (`503` while Redis cannot answer).
#[cfg(feature = "redis")]
fn shared_replay_store<A>(layer: BearerAuthLayer<A>, store: &SharedStore) -> BearerAuthLayer<A> {
    layer.dpop_replay_store(portcullis::store::RedisReplayStore::new(store.clone()))
}

#[cfg(not(feature = "redis"))]
fn shared_replay_store<A>(_layer: BearerAuthLayer<A>, store: &SharedStore) -> BearerAuthLayer<A> {
    match *store {}
}

/// Introspection answers cached in Redis behind each replica's own cache: a token is
/// introspected once for all replicas (each replica's own cache alone while Redis cannot
/// answer).
#[cfg(feature = "redis")]
fn shared_introspection_cache(
    builder: portcullis::IntrospectionBuilder,
    store: &SharedStore,
) -> portcullis::IntrospectionBuilder {
    builder.shared_cache(portcullis::store::RedisIntrospectionCache::new(
        store.clone(),
    ))
}

#[cfg(not(feature = "redis"))]
fn shared_introspection_cache(
    _builder: portcullis::IntrospectionBuilder,
    store: &SharedStore,
) -> portcullis::IntrospectionBuilder {
    match *store {}
}

// ── Handlers ─────────────────────────────────────────────────────────────────────────────

/// Any valid token: who is calling, with what scopes and roles, and every claim of the token.
async fn me(principal: Principal) -> Json<Value> {
    Json(json!({
        "iss": principal.issuer(),
        "sub": principal.subject(),
        "scopes": principal.scopes(),
        "dpop_jkt": principal.confirmation().and_then(|c| c.jwk_thumbprint()),
        "roles": principal.authorities().iter().collect::<Vec<_>>(),
        "claims": principal.claims(),
    }))
}

/// A toy in-memory store.
#[derive(Clone)]
struct Items(Arc<Mutex<Vec<Item>>>);

#[derive(Clone, Serialize)]
struct Item {
    id: u64,
    name: String,
    created_by: Option<String>,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

impl Items {
    fn lock(&self) -> MutexGuard<'_, Vec<Item>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Items {
    fn default() -> Self {
        let seed = ["apple", "pear"]
            .into_iter()
            .zip(1..)
            .map(|(name, id)| Item {
                id,
                name: name.to_owned(),
                created_by: None,
            });
        Self(Arc::new(Mutex::new(seed.collect())))
    }
}

/// Scope `read`.
async fn list_items(State(items): State<Items>) -> Json<Vec<Item>> {
    Json(items.lock().clone())
}

/// Scope `write`. Records the caller's subject as the item's creator.
async fn create_item(
    State(items): State<Items>,
    principal: Principal,
    Json(new): Json<NewItem>,
) -> (StatusCode, Json<Item>) {
    let mut items = items.lock();
    let item = Item {
        id: items.last().map_or(1, |last| last.id + 1),
        name: new.name,
        created_by: principal.subject().map(str::to_owned),
    };
    items.push(item.clone());
    (StatusCode::CREATED, Json(item))
}

/// Scope `admin` (or the `--require-role` roles).
async fn admin(principal: Principal) -> Json<Value> {
    Json(json!({ "message": "welcome, administrator", "sub": principal.subject() }))
}

// ── Plumbing ─────────────────────────────────────────────────────────────────────────────

/// One access-log line per request. A rejected request's response carries the
/// [`AuthError`] in its extensions, so the log says why without re-deriving it.
async fn log_request(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency = started.elapsed();
    let rejected = response
        .extensions()
        .get::<AuthError>()
        .map(tracing::field::display);
    tracing::info!(%method, %path, status, ?latency, rejected);
    response
}

/// Resolves on Ctrl-C (and SIGTERM on Unix); axum then stops accepting and lets in-flight
/// requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

// ── Command line ─────────────────────────────────────────────────────────────────────────

/// One option: its flag, its environment fallback, and its help. Adding an option (say
/// `--introspection-url`, `--client-id`, `--client-secret`) takes one `const Opt`, its
/// entry in [`OPTIONS`] and a field in [`Config`]; parsing and `--help` follow.
struct Opt {
    flag: &'static str,
    env: &'static str,
    value: &'static str,
    help: &'static str,
    /// Repeatable flag; the environment variable takes a comma-separated list.
    many: bool,
    default: Option<&'static str>,
}

const ISSUER: Opt = Opt {
    flag: "--issuer",
    env: "PORTCULLIS_ISSUER",
    value: "URL",
    help: "issuer to trust, found by OIDC discovery (RFC 8414 fallback); repeatable",
    many: true,
    default: None,
};
const AUDIENCE: Opt = Opt {
    flag: "--audience",
    env: "PORTCULLIS_AUDIENCE",
    value: "AUD",
    help: "audience tokens must name in `aud`; repeatable",
    many: true,
    default: None,
};
const ADDR: Opt = Opt {
    flag: "--addr",
    env: "PORTCULLIS_ADDR",
    value: "HOST:PORT",
    help: "address to listen on",
    many: false,
    default: Some("127.0.0.1:8080"),
};
const INTROSPECTION_URL: Opt = Opt {
    flag: "--introspection-url",
    env: "PORTCULLIS_INTROSPECTION_URL",
    value: "URL",
    help: "RFC 7662 endpoint for opaque tokens (of the first issuer)",
    many: false,
    default: None,
};
const CLIENT_ID: Opt = Opt {
    flag: "--client-id",
    env: "PORTCULLIS_CLIENT_ID",
    value: "ID",
    help: "this API's client id at the issuer, for introspection",
    many: false,
    default: None,
};
const CLIENT_SECRET: Opt = Opt {
    flag: "--client-secret",
    env: "PORTCULLIS_CLIENT_SECRET",
    value: "SECRET",
    help: "this API's client secret, for introspection (prefer the env variable)",
    many: false,
    default: None,
};
const MISSING_AUD: Opt = Opt {
    flag: "--introspection-missing-aud",
    env: "PORTCULLIS_INTROSPECTION_MISSING_AUD",
    value: "refuse|accept",
    help: "introspection answers without `aud`: refuse (the default), or accept (issuers that omit it)",
    many: false,
    default: None,
};
const RESOURCE: Opt = Opt {
    flag: "--resource",
    env: "PORTCULLIS_RESOURCE",
    value: "URL",
    help: "this API's canonical URI: an accepted audience, RFC 9728 metadata, named in challenges",
    many: false,
    default: None,
};
const REQUIRE_ACR: Opt = Opt {
    flag: "--require-acr",
    env: "PORTCULLIS_REQUIRE_ACR",
    value: "VALUE",
    help: "/admin needs a token whose `acr` is one of these (RFC 9470); repeatable",
    many: true,
    default: None,
};
const MAX_AUTH_AGE: Opt = Opt {
    flag: "--max-auth-age",
    env: "PORTCULLIS_MAX_AUTH_AGE",
    value: "SECONDS",
    help: "/admin needs a user authentication (`auth_time`) at most this old (RFC 9470)",
    many: false,
    default: None,
};
const CA_FILE: Opt = Opt {
    flag: "--ca-file",
    env: "PORTCULLIS_CA_FILE",
    value: "PATH",
    help: "PEM bundle of extra trusted roots for every call to the issuer",
    many: false,
    default: None,
};
const PROXY: Opt = Opt {
    flag: "--proxy",
    env: "PORTCULLIS_PROXY",
    value: "URL",
    help: "proxy for every call to the issuer (http:// or https://)",
    many: false,
    default: None,
};
const METRICS_ADDR: Opt = Opt {
    flag: "--metrics-addr",
    env: "PORTCULLIS_METRICS_ADDR",
    value: "HOST:PORT",
    help: "serve Prometheus metrics at http://HOST:PORT/metrics",
    many: false,
    default: None,
};
const DPOP_REQUIRED: Opt = Opt {
    flag: "--dpop-required",
    env: "PORTCULLIS_DPOP_REQUIRED",
    value: "",
    help: "refuse plain bearer tokens: every token must be DPoP-bound (RFC 9449)",
    many: false,
    default: None,
};
const DPOP_NONCE: Opt = Opt {
    flag: "--dpop-nonce",
    env: "PORTCULLIS_DPOP_NONCE",
    value: "",
    help: "demand server nonces in DPoP proofs (answers `use_dpop_nonce` + `DPoP-Nonce`)",
    many: false,
    default: None,
};
const PUBLIC_URL: Opt = Opt {
    flag: "--public-url",
    env: "PORTCULLIS_PUBLIC_URL",
    value: "URL",
    help: "external base URL clients call (behind a proxy), for DPoP `htu` checks",
    many: false,
    default: None,
};
const ROLES_CLAIM: Opt = Opt {
    flag: "--roles-claim",
    env: "PORTCULLIS_ROLES_CLAIM",
    value: "PATH",
    help: "claim (dotted path) the token's roles are read from; repeatable",
    many: true,
    default: None,
};
const REQUIRE_ROLE: Opt = Opt {
    flag: "--require-role",
    env: "PORTCULLIS_REQUIRE_ROLE",
    value: "ROLE",
    help: "role /admin requires instead of the scope `admin`; repeatable, all required",
    many: true,
    default: None,
};
const ALLOWED_CLIENT: Opt = Opt {
    flag: "--allowed-client",
    env: "PORTCULLIS_ALLOWED_CLIENT",
    value: "ID",
    help: "client (azp, client_id or appid) allowed to call; repeatable",
    many: true,
    default: None,
};
const ISSUER_TEMPLATE: Opt = Opt {
    flag: "--issuer-template",
    env: "PORTCULLIS_ISSUER_TEMPLATE",
    value: "URL",
    help: "multi-tenant issuer with one {tenantid} path segment; tid must match it",
    many: false,
    default: None,
};
const TEMPLATE_JWKS_URI: Opt = Opt {
    flag: "--template-jwks-uri",
    env: "PORTCULLIS_TEMPLATE_JWKS_URI",
    value: "URL",
    help: "the JWK Set every tenant of --issuer-template signs with",
    many: false,
    default: None,
};
const TENANT: Opt = Opt {
    flag: "--tenant",
    env: "PORTCULLIS_TENANT",
    value: "ID",
    help: "tenant allowed under --issuer-template (default: any); repeatable",
    many: true,
    default: None,
};
const REDIS_URL: Opt = Opt {
    flag: "--redis-url",
    env: "PORTCULLIS_REDIS_URL",
    value: "URL",
    help: "share introspection answers and DPoP proofs seen with the other replicas \
           through Redis (feature `redis`; shared key from PORTCULLIS_REDIS_SHARED_KEY)",
    many: false,
    default: None,
};
const OPTIONS: [&Opt; 23] = [
    &ISSUER,
    &AUDIENCE,
    &ADDR,
    &INTROSPECTION_URL,
    &CLIENT_ID,
    &CLIENT_SECRET,
    &MISSING_AUD,
    &RESOURCE,
    &REQUIRE_ACR,
    &MAX_AUTH_AGE,
    &CA_FILE,
    &PROXY,
    &METRICS_ADDR,
    &DPOP_REQUIRED,
    &DPOP_NONCE,
    &PUBLIC_URL,
    &ROLES_CLAIM,
    &REQUIRE_ROLE,
    &ALLOWED_CLIENT,
    &ISSUER_TEMPLATE,
    &TEMPLATE_JWKS_URI,
    &TENANT,
    &REDIS_URL,
];

/// A multi-tenant issuer template and its key set.
#[derive(Debug)]
struct TemplateConfig {
    template: String,
    jwks_uri: String,
    tenants: Vec<String>,
}

/// Where and as whom opaque tokens are introspected.
struct IntrospectionConfig {
    url: String,
    client_id: String,
    client_secret: String,
    accept_missing_aud: bool,
}

impl std::fmt::Debug for IntrospectionConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntrospectionConfig")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("accept_missing_aud", &self.accept_missing_aud)
            .finish()
    }
}

/// What the server runs with, from flags first, then environment, then defaults.
#[derive(Debug)]
struct Config {
    issuers: Vec<String>,
    audiences: Vec<String>,
    addr: String,
    introspection: Option<IntrospectionConfig>,
    resource: Option<String>,
    require_acr: Vec<String>,
    max_auth_age: Option<Duration>,
    ca_file: Option<String>,
    proxy: Option<String>,
    metrics_addr: Option<String>,
    dpop_required: bool,
    dpop_nonce: bool,
    public_url: Option<String>,
    template: Option<TemplateConfig>,
    roles_claims: Vec<String>,
    required_roles: Option<AuthorityPolicy>,
    allowed_clients: Option<Arc<[String]>>,
    redis: Option<SharedStore>,
}

impl Config {
    /// `Ok(None)` means `--help` was asked for.
    fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let redis_key = env("PORTCULLIS_REDIS_SHARED_KEY");
        let Some(values) = Values::parse(args, env)? else {
            return Ok(None);
        };
        let introspection = match values.optional(&INTROSPECTION_URL)? {
            // Introspection settings without an endpoint are a mistake, not something to
            // drop quietly.
            None if [&CLIENT_ID, &CLIENT_SECRET, &MISSING_AUD]
                .iter()
                .any(|opt| values.0.contains_key(opt.flag)) =>
            {
                return Err(format!(
                    "{}, {} and {} need {} URL (or {})",
                    CLIENT_ID.flag,
                    CLIENT_SECRET.flag,
                    MISSING_AUD.flag,
                    INTROSPECTION_URL.flag,
                    INTROSPECTION_URL.env
                ));
            }
            None => None,
            Some(url) => Some(IntrospectionConfig {
                url,
                client_id: values.single(&CLIENT_ID)?,
                client_secret: values.single(&CLIENT_SECRET)?,
                accept_missing_aud: match values.optional(&MISSING_AUD)?.as_deref() {
                    None | Some("refuse") => false,
                    Some("accept") => true,
                    Some(other) => {
                        return Err(format!(
                            "{} takes `refuse` or `accept`, not `{other}`",
                            MISSING_AUD.flag
                        ));
                    }
                },
            }),
        };
        let resource = values.optional(&RESOURCE)?;
        let max_auth_age = match values.optional(&MAX_AUTH_AGE)? {
            None => None,
            Some(secs) => Some(Duration::from_secs(secs.parse().map_err(|_| {
                format!(
                    "{} takes a number of seconds, not `{secs}`",
                    MAX_AUTH_AGE.flag
                )
            })?)),
        };
        let template = match values.optional(&ISSUER_TEMPLATE)? {
            None if [&TEMPLATE_JWKS_URI, &TENANT]
                .iter()
                .any(|opt| values.0.contains_key(opt.flag)) =>
            {
                return Err(format!(
                    "{} and {} need {}",
                    TEMPLATE_JWKS_URI.flag, TENANT.flag, ISSUER_TEMPLATE.flag
                ));
            }
            None => None,
            Some(template) => Some(TemplateConfig {
                template,
                jwks_uri: values.single(&TEMPLATE_JWKS_URI)?,
                tenants: values.list(&TENANT),
            }),
        };
        // A template stands in for `--issuer`; without one, an issuer is required.
        let issuers = match &template {
            Some(_) => values.list(&ISSUER),
            None => values.required_list(&ISSUER)?,
        };
        let required_roles = match values.list(&REQUIRE_ROLE) {
            roles if roles.is_empty() => None,
            roles => Some(
                AuthorityPolicy::try_all(roles)
                    .map_err(|e| format!("{}: {e}", REQUIRE_ROLE.flag))?,
            ),
        };
        if required_roles.is_some() && !values.0.contains_key(ROLES_CLAIM.flag) {
            return Err(format!(
                "{} needs {} (where the roles are)",
                REQUIRE_ROLE.flag, ROLES_CLAIM.flag
            ));
        }
        let allowed_clients = match values.list(&ALLOWED_CLIENT) {
            clients if clients.is_empty() => None,
            clients => Some(clients.into()),
        };
        Ok(Some(Self {
            issuers,
            template,
            roles_claims: values.list(&ROLES_CLAIM),
            required_roles,
            allowed_clients,
            // The canonical URI is an audience of its own; other audiences become optional.
            audiences: match (values.required_list(&AUDIENCE), &resource) {
                (Ok(list), _) => list,
                (Err(_), Some(_)) => Vec::new(),
                (Err(e), None) => return Err(e),
            },
            addr: values.single(&ADDR)?,
            introspection,
            require_acr: values.0.get(REQUIRE_ACR.flag).cloned().unwrap_or_default(),
            max_auth_age,
            resource,
            ca_file: values.optional(&CA_FILE)?,
            proxy: values.optional(&PROXY)?,
            metrics_addr: values.optional(&METRICS_ADDR)?,
            dpop_required: values.switch(&DPOP_REQUIRED)?,
            dpop_nonce: values.switch(&DPOP_NONCE)?,
            public_url: values.optional(&PUBLIC_URL)?,
            redis: shared_store(values.optional(&REDIS_URL)?, redis_key)?,
        }))
    }

    /// The configured audiences and the canonical URI.
    fn audiences(&self) -> impl Iterator<Item = &String> {
        self.audiences.iter().chain(&self.resource)
    }

    /// The step-up policy of `/admin`, if any option asks for one.
    fn step_up(&self) -> Result<Option<StepUpPolicy>, portcullis::ConfigError> {
        if self.require_acr.is_empty() && self.max_auth_age.is_none() {
            return Ok(None);
        }
        let mut builder = StepUpPolicy::builder().acr_values(self.require_acr.iter().cloned());
        if let Some(max_age) = self.max_auth_age {
            builder = builder.max_age(max_age);
        }
        builder.build().map(Some)
    }
}

/// Raw option values by flag: command-line values win over the environment as a whole
/// (one `--issuer` replaces every issuer from `PORTCULLIS_ISSUER`).
struct Values(HashMap<&'static str, Vec<String>>);

impl Values {
    fn parse(
        args: impl IntoIterator<Item = String>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, String> {
        let mut values: HashMap<&'static str, Vec<String>> = HashMap::new();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == "-h" || arg == "--help" {
                return Ok(None);
            }
            // Both `--flag value` and `--flag=value`.
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) => (flag, Some(value.to_owned())),
                None => (arg.as_str(), None),
            };
            let opt = OPTIONS
                .iter()
                .find(|opt| opt.flag == flag)
                .ok_or_else(|| format!("unknown argument `{arg}`"))?;
            let value = match inline {
                Some(value) => value,
                // A switch (no value) stands for itself.
                None if opt.value.is_empty() => "true".to_owned(),
                None => args
                    .next()
                    .ok_or_else(|| format!("{} needs a value ({})", opt.flag, opt.value))?,
            };
            if value.is_empty() {
                return Err(format!("{} needs a non-empty value", opt.flag));
            }
            values.entry(opt.flag).or_default().push(value);
        }
        for opt in OPTIONS {
            if values.contains_key(opt.flag) {
                continue;
            }
            let from_env: Vec<String> = match env(opt.env) {
                Some(value) if opt.many => value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect(),
                Some(value) if !value.trim().is_empty() => vec![value.trim().to_owned()],
                _ => Vec::new(),
            };
            let mut list = from_env;
            if list.is_empty() {
                list.extend(opt.default.map(str::to_owned));
            }
            if !list.is_empty() {
                values.insert(opt.flag, list);
            }
        }
        Ok(Some(Self(values)))
    }

    fn required_list(&self, opt: &Opt) -> Result<Vec<String>, String> {
        match self.0.get(opt.flag) {
            Some(list) if !list.is_empty() => Ok(list.clone()),
            _ => Err(missing(opt)),
        }
    }

    fn list(&self, opt: &Opt) -> Vec<String> {
        self.0.get(opt.flag).cloned().unwrap_or_default()
    }

    fn optional(&self, opt: &Opt) -> Result<Option<String>, String> {
        match self.0.get(opt.flag) {
            None => Ok(None),
            Some(_) => self.single(opt).map(Some),
        }
    }

    /// An on/off switch: given (or `true`/`1` in the environment) means on.
    fn switch(&self, opt: &Opt) -> Result<bool, String> {
        match self.optional(opt)?.as_deref() {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(format!("{} is a switch, not `{other}`", opt.flag)),
        }
    }

    fn single(&self, opt: &Opt) -> Result<String, String> {
        match self.0.get(opt.flag).map(Vec::as_slice) {
            Some([one]) => Ok(one.clone()),
            Some([]) | None => Err(missing(opt)),
            Some(_) => Err(format!("{} may be given only once", opt.flag)),
        }
    }
}

fn missing(opt: &Opt) -> String {
    format!("missing {} {} (or set {})", opt.flag, opt.value, opt.env)
}

fn usage() -> String {
    let mut text = String::from(
        "protected_api: an HTTP API behind portcullis (OAuth 2.0 bearer tokens)\n\n\
         Usage: protected_api --issuer URL (--audience AUD | --resource URL) [--addr HOST:PORT]\n         \x20      [--introspection-url URL --client-id ID --client-secret SECRET\n         \x20       [--introspection-missing-aud refuse|accept]]\n         \x20      [--require-acr VALUE] [--max-auth-age SECONDS]\n         \x20      [--dpop-required] [--dpop-nonce] [--public-url URL]\n         \x20      [--roles-claim PATH]... [--require-role ROLE]... [--allowed-client ID]...\n         \x20      [--issuer-template URL --template-jwks-uri URL [--tenant ID]...]\n         \x20      [--ca-file PATH] [--proxy URL] [--metrics-addr HOST:PORT]\n\nOptions:\n",
    );
    for opt in OPTIONS {
        let left = format!("{} {}", opt.flag, opt.value).trim_end().to_owned();
        let default = opt
            .default
            .map(|d| format!(" (default {d})"))
            .unwrap_or_default();
        let list = if opt.many { ", comma-separated" } else { "" };
        if left.len() >= 26 {
            let _ = writeln!(text, "  {left}");
            let _ = writeln!(text, "  {:<26}{}{default}", "", opt.help);
        } else {
            let _ = writeln!(text, "  {left:<26}{}{default}", opt.help);
        }
        let _ = writeln!(text, "  {:<26}[env: {}{list}]", "", opt.env);
    }
    text.push_str(
        "  -h, --help                print this help\n\n\
         Routes:\n\
         \x20 GET  /health         no token\n\
         \x20 GET  /ready          no token; 503 until every issuer has keys\n\
         \x20 GET  /me             any valid token\n\
         \x20 GET  /items          scope `read`\n\
         \x20 POST /items          scope `write`, body {\"name\": \"...\"}\n\
         \x20 GET  /admin          scope `admin` (or the --require-role roles), and the step-up policy, if any\n\
         \x20 GET  /.well-known/oauth-protected-resource[/path]   metadata (with --resource)\n\n\
         Logging: RUST_LOG (default info,portcullis=debug)\n",
    );
    text
}
