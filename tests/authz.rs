//! Authorization beyond scopes: roles from claim paths (Keycloak-, Entra- and Auth0-shaped
//! tokens), claim predicates, and multi-tenant issuer templates.

mod support;

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{Router, body::Body, routing::get};
use http::{Request, Response, StatusCode, header};
use portcullis::{
    Authorities, AuthoritySource, BearerAuthLayer, Jwt, Principal, RegisteredClaims,
    RequireAuthorityLayer, RequireRoleLayer,
    authz::{AuthorityPolicy, RequireClaimLayer},
    jwt::TenantIssuer,
};
use serde_json::{Value, json};
use support::issuer::{AUDIENCE, ISSUER, IssuerServer, TestKey, jwks, mint, now};
use tower::ServiceExt;

async fn call(app: &Router, path: &str, token: Option<&str>) -> Response<Body> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    tokio::time::timeout(
        Duration::from_secs(5),
        app.clone()
            .oneshot(request.body(Body::empty()).expect("request")),
    )
    .await
    .expect("answered in time")
    .expect("infallible")
}

fn challenge(response: &Response<Body>) -> String {
    response
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

fn assert_forbidden(response: &Response<Body>) {
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let challenge = challenge(response);
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        !challenge.contains("scope=\""),
        "no scope would help: {challenge}"
    );
}

fn assert_invalid_token(response: &Response<Body>) {
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let challenge = challenge(response);
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

fn claims(issuer: &str, extra: Value) -> Value {
    let mut claims = json!({
        "iss": issuer,
        "aud": AUDIENCE,
        "sub": "user-1",
        "exp": now() + 300,
        "iat": now(),
    });
    let (Value::Object(base), Value::Object(extra)) = (&mut claims, extra) else {
        panic!("objects");
    };
    base.extend(extra);
    claims
}

/// `/admin` needs `admin`, `/edit` any of `edit`/`owner`, `/me` nothing beyond a token.
fn app(jwt: Jwt, admin: &str, edit: [&str; 2]) -> Router {
    Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(RequireRoleLayer::all([admin]))
        .merge(
            Router::new()
                .route("/edit", get(|| async { "edit" }))
                .route_layer(RequireAuthorityLayer::any(edit)),
        )
        .merge(Router::new().route(
            "/me",
            get(|p: Principal, a: Authorities| async move {
                assert_eq!(
                    p.authorities(),
                    &a,
                    "the extension differs from the principal's"
                );
                format!("{} {}", p.issuer(), a.iter().collect::<Vec<_>>().join(","))
            }),
        ))
        .layer(BearerAuthLayer::new(jwt))
}

async fn body(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .expect("body");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test]
async fn keycloak_realm_and_client_roles() {
    let key = TestKey::rsa_a();
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .authorities(AuthoritySource::path("realm_access.roles").prefix("realm:"))
        .authorities(AuthoritySource::path("resource_access.my-api.roles").prefix("client:"))
        .build()
        .expect("valid");
    let app = app(jwt, "realm:admin", ["client:edit", "client:owner"]);

    let admin = mint(
        &key,
        claims(
            ISSUER,
            json!({
                "realm_access": { "roles": ["admin", "offline_access"] },
                "resource_access": {
                    "my-api": { "roles": ["edit"] },
                    "account": { "roles": ["manage-account"] }
                }
            }),
        ),
    );
    assert_eq!(
        call(&app, "/admin", Some(&admin)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "/edit", Some(&admin)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        body(call(&app, "/me", Some(&admin)).await).await,
        format!("{ISSUER} client:edit,realm:admin,realm:offline_access")
    );

    // Client roles of another client, and a realm role spelled as a client role, grant
    // nothing; neither does a bare `admin` without the source's prefix.
    let user = mint(
        &key,
        claims(
            ISSUER,
            json!({
                "realm_access": { "roles": ["user"] },
                "resource_access": { "other-api": { "roles": ["edit", "owner"] } },
                "roles": ["admin"],
            }),
        ),
    );
    assert_forbidden(&call(&app, "/admin", Some(&user)).await);
    assert_forbidden(&call(&app, "/edit", Some(&user)).await);
    assert_eq!(
        call(&app, "/me", Some(&user)).await.status(),
        StatusCode::OK
    );

    // No token: 401 without an error code, as everywhere.
    let anonymous = call(&app, "/admin", None).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert!(!challenge(&anonymous).contains("error="));
}

#[tokio::test]
async fn entra_app_roles_with_v1_and_v2_issuers() {
    let key = TestKey::rsa_a();
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let jwt = Jwt::builder()
        .tenant_issuer(
            TenantIssuer::new("https://login.microsoftonline.com/{tenantid}/v2.0")
                .jwks(jwks(&[&key])),
        )
        .tenant_issuer(TenantIssuer::new("https://sts.windows.net/{tenantid}/").jwks(jwks(&[&key])))
        .audience(AUDIENCE)
        .authorities(AuthoritySource::path("roles"))
        .build()
        .expect("valid");
    let app = app(jwt, "Orders.Admin", ["Orders.Write", "Orders.Owner"]);

    for iss in [
        format!("https://login.microsoftonline.com/{tenant}/v2.0"),
        format!("https://sts.windows.net/{tenant}/"),
    ] {
        let admin = mint(
            &key,
            claims(
                &iss,
                json!({ "tid": tenant, "roles": ["Orders.Admin"], "azp": "client-app", "ver": "2.0" }),
            ),
        );
        assert_eq!(
            call(&app, "/admin", Some(&admin)).await.status(),
            StatusCode::OK,
            "{iss}"
        );
        assert_forbidden(&call(&app, "/edit", Some(&admin)).await);
        // The principal names the token's own issuer, not the template.
        assert_eq!(
            body(call(&app, "/me", Some(&admin)).await).await,
            format!("{iss} Orders.Admin")
        );
        let reader = mint(
            &key,
            claims(&iss, json!({ "tid": tenant, "roles": "Orders.Read" })),
        );
        assert_forbidden(&call(&app, "/admin", Some(&reader)).await);
    }
}

#[tokio::test]
async fn auth0_permissions() {
    let key = TestKey::rsa_a();
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .authorities(AuthoritySource::path("permissions"))
        .build()
        .expect("valid");
    let app = app(jwt, "delete:orders", ["write:orders", "admin:orders"]);
    let writer = mint(
        &key,
        claims(
            ISSUER,
            json!({ "permissions": ["read:orders", "write:orders"], "scope": "openid" }),
        ),
    );
    assert_forbidden(&call(&app, "/admin", Some(&writer)).await);
    assert_eq!(
        call(&app, "/edit", Some(&writer)).await.status(),
        StatusCode::OK
    );
    let none = mint(&key, claims(ISSUER, json!({ "scope": "write:orders" })));
    assert_forbidden(&call(&app, "/edit", Some(&none)).await);
}

#[tokio::test]
async fn claim_predicates() {
    let key = TestKey::rsa_a();
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/clients", get(|| async { "ok" }))
        .route_layer(RequireClaimLayer::one_of("azp", ["web", "cli"]))
        .merge(
            Router::new()
                .route("/verified", get(|| async { "ok" }))
                .route_layer(RequireClaimLayer::equals("email_verified", true)),
        )
        .merge(
            Router::new()
                .route("/fn", get(|| async { "ok" }))
                .route_layer(RequireClaimLayer::from_predicate(|c: &RegisteredClaims| {
                    c.sub.as_deref().is_some_and(|s| s.starts_with("svc-"))
                })),
        )
        .layer(BearerAuthLayer::new(jwt));

    let good = mint(
        &key,
        claims(
            ISSUER,
            json!({ "azp": "cli", "email_verified": true, "sub": "svc-1" }),
        ),
    );
    for path in ["/clients", "/verified", "/fn"] {
        assert_eq!(
            call(&app, path, Some(&good)).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let bad = mint(
        &key,
        claims(
            ISSUER,
            json!({ "azp": "other", "email_verified": "true", "sub": "user-1" }),
        ),
    );
    for path in ["/clients", "/verified", "/fn"] {
        assert_forbidden(&call(&app, path, Some(&bad)).await);
    }
    let missing = mint(&key, claims(ISSUER, json!({})));
    assert_forbidden(&call(&app, "/clients", Some(&missing)).await);
    assert_eq!(
        call(&app, "/clients", None).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn role_policies_refuse_blank_names() {
    assert!(AuthorityPolicy::try_all([""]).is_err());
    assert!(AuthorityPolicy::try_any(["  "]).is_err());
    assert!(AuthorityPolicy::try_all(Vec::<String>::new()).is_err());
    let key = TestKey::rsa_a();
    let bad_path = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .authorities(AuthoritySource::path("realm_access..roles"))
        .build();
    assert!(bad_path.is_err());
}

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const OTHER_TENANT: &str = "3c2a1b0e-0000-4000-8000-00000000abcd";

#[tokio::test]
async fn template_refusals() {
    let key = TestKey::rsa_a();
    let jwt = Jwt::builder()
        .tenant_issuer(
            TenantIssuer::new("https://login.microsoftonline.com/{tenantid}/v2.0")
                .jwks(jwks(&[&key]))
                .tenants([TENANT, "contoso.onmicrosoft.com"]),
        )
        .audience(AUDIENCE)
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    let token = |iss: &str, tid: Value| mint(&key, claims(iss, json!({ "tid": tid })));
    let v2 = |tenant: &str| format!("https://login.microsoftonline.com/{tenant}/v2.0");

    assert_eq!(
        call(&app, "/", Some(&token(&v2(TENANT), json!(TENANT))))
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(
            &app,
            "/",
            Some(&token(
                &v2("contoso.onmicrosoft.com"),
                json!("contoso.onmicrosoft.com")
            ))
        )
        .await
        .status(),
        StatusCode::OK
    );

    let refused: Vec<(String, Value)> = vec![
        // tid differs from the tenant in iss (both allowed tenants).
        (v2(TENANT), json!("contoso.onmicrosoft.com")),
        (v2(TENANT), json!(TENANT.to_uppercase())),
        (v2(TENANT), Value::Null),
        (v2(TENANT), json!([TENANT])),
        // A well-formed tenant outside the allowlist.
        (v2(OTHER_TENANT), json!(OTHER_TENANT)),
        // Only looks like the template.
        (
            format!("https://login.microsoftonline.com/{TENANT}/extra/v2.0"),
            json!(TENANT),
        ),
        (
            format!("https://login.microsoftonline.com/{TENANT}/v2.0/"),
            json!(TENANT),
        ),
        (format!("https://evil.example/{TENANT}/v2.0"), json!(TENANT)),
        (
            format!("https://login.microsoftonline.com.evil.example/{TENANT}/v2.0"),
            json!(TENANT),
        ),
        (
            format!("http://login.microsoftonline.com/{TENANT}/v2.0"),
            json!(TENANT),
        ),
        (v2(&format!("{TENANT}/x")), json!(format!("{TENANT}/x"))),
        (v2(".."), json!("..")),
        (v2(&format!("{TENANT}/..")), json!(format!("{TENANT}/.."))),
        (v2("a%2F.."), json!("a%2F..")),
        (v2("{tenantid}"), json!("{tenantid}")),
    ];
    for (iss, tid) in refused {
        assert_invalid_token(&call(&app, "/", Some(&token(&iss, tid.clone()))).await);
    }
}

#[test]
fn templates_that_could_match_too_much_are_configuration_errors() {
    let key = TestKey::rsa_a();
    for template in [
        "https://login.microsoftonline.com/common/v2.0",
        "https://{tenantid}.example.com/",
        "https://login.example.com/{tenantid}/{tenantid}",
        "https://login.example.com/t{tenantid}/v2.0",
        "http://login.example.com/{tenantid}/v2.0",
    ] {
        let built = Jwt::builder()
            .tenant_issuer(TenantIssuer::new(template).jwks(jwks(&[&key])))
            .audience(AUDIENCE)
            .build();
        assert!(built.is_err(), "{template}");
    }
    let no_keys = Jwt::builder()
        .tenant_issuer(TenantIssuer::new(
            "https://login.example.com/{tenantid}/v2.0",
        ))
        .audience(AUDIENCE)
        .build();
    assert!(no_keys.is_err());
}

/// Made-up tenants share the template's one key set: a flood of them, each with a `kid` the
/// set does not have, causes at most the first fetch and one refetch per cooldown, never a
/// fetch per tenant; with an allowlist, they are refused before any key is looked at.
#[tokio::test]
async fn made_up_tenants_do_not_cause_fetches() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let template = format!("{}/{{tenantid}}/v2.0", server.issuer());
    let open = Jwt::builder()
        .tenant_issuer(TenantIssuer::new(&template).jwks_uri(server.jwks_uri()))
        .audience(AUDIENCE)
        .jwks_refresh_cooldown(Duration::from_secs(60))
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(open));
    let iss = |tenant: &str| format!("{}/{tenant}/v2.0", server.issuer());

    let real = mint(&key, claims(&iss(TENANT), json!({ "tid": TENANT })));
    assert_eq!(call(&app, "/", Some(&real)).await.status(), StatusCode::OK);
    assert_eq!(server.jwks_hits(), 1);

    let attacker = TestKey::rsa_b().with_kid("made-up");
    for i in 0..300 {
        let tenant = format!("tenant-{i}");
        let token = mint(&attacker, claims(&iss(&tenant), json!({ "tid": tenant })));
        assert_invalid_token(&call(&app, "/", Some(&token)).await);
    }
    assert!(
        server.jwks_hits() <= 2,
        "one refetch per cooldown at most, saw {}",
        server.jwks_hits()
    );
    // The real tenant still works with the cached keys.
    assert_eq!(call(&app, "/", Some(&real)).await.status(), StatusCode::OK);

    let listed = Jwt::builder()
        .tenant_issuer(
            TenantIssuer::new(&template)
                .jwks_uri(server.jwks_uri())
                .tenants([TENANT]),
        )
        .audience(AUDIENCE)
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(listed));
    let before = server.jwks_hits();
    for i in 0..100 {
        let tenant = format!("tenant-{i}");
        let token = mint(&attacker, claims(&iss(&tenant), json!({ "tid": tenant })));
        assert_invalid_token(&call(&app, "/", Some(&token)).await);
    }
    assert_eq!(server.jwks_hits(), before, "refused before any key lookup");
}

/// A key set of `key`, with roles read from the `roles` claim.
#[cfg(feature = "tonic")]
fn roles_jwt(key: &TestKey) -> Jwt {
    Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[key]))
        .audience(AUDIENCE)
        .authorities(AuthoritySource::path("roles"))
        .build()
        .expect("valid")
}

/// The `grpc-status` of a gRPC call to `path` with `token`; `None` when the call passed.
#[cfg(feature = "tonic")]
async fn grpc_status(app: &Router, path: &str, token: &str) -> Option<String> {
    let request = Request::post(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(Body::empty())
        .expect("request");
    let response = app.clone().oneshot(request).await.expect("infallible");
    response
        .headers()
        .get("grpc-status")
        .map(|v| v.to_str().expect("ascii").to_owned())
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_role_policy_answers_permission_denied() {
    use portcullis::grpc::GrpcRejection;

    let key = TestKey::rsa_a();
    let jwt = roles_jwt(&key);
    let app = Router::new()
        .route("/pkg.Svc/Method", axum::routing::post(|| async { "ok" }))
        .route_layer(RequireRoleLayer::all(["admin"]).on_rejection(GrpcRejection::new()))
        .layer(BearerAuthLayer::new(jwt).grpc());
    let token = mint(&key, claims(ISSUER, json!({ "roles": ["user"] })));
    assert_eq!(
        grpc_status(&app, "/pkg.Svc/Method", &token)
            .await
            .as_deref(),
        Some("7")
    );
}

/// Each issuer's tokens must name that issuer's own audience: a token from one issuer for
/// the other issuer's audience is refused, though the layer accepts both audiences.
#[tokio::test]
async fn per_issuer_audiences() {
    let key = TestKey::rsa_a();
    let other = "https://other-issuer.example.com";
    let template = "https://login.microsoftonline.com/{tenantid}/v2.0";
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .issuer_with_jwks(other, jwks(&[&key]))
        .tenant_issuer(TenantIssuer::new(template).jwks(jwks(&[&key])))
        .issuer_audience(ISSUER, "api://a")
        .issuer_audience(other, "api://b")
        .issuer_audience(other, "api://b2")
        .issuer_audience(template, "api://entra")
        .build()
        .expect("every issuer has an audience");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    let entra = format!("https://login.microsoftonline.com/{TENANT}/v2.0");
    let token = |iss: &str, aud: &str| {
        let mut c = claims(iss, json!({ "tid": TENANT }));
        c["aud"] = json!(aud);
        mint(&key, c)
    };
    let table = [
        (ISSUER, "api://a", true),
        (ISSUER, "api://b", false),
        (ISSUER, AUDIENCE, false),
        (other, "api://b", true),
        (other, "api://b2", true),
        (other, "api://a", false),
        (&entra, "api://entra", true),
        (&entra, "api://a", false),
    ];
    for (iss, aud, ok) in table {
        let response = call(&app, "/", Some(&token(iss, aud))).await;
        if ok {
            assert_eq!(response.status(), StatusCode::OK, "{iss} {aud}");
        } else {
            assert_invalid_token(&response);
        }
    }

    // An issuer with neither its own nor a global audience, or audiences for an issuer that
    // is not configured, are configuration errors.
    let missing = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .issuer_with_jwks(other, jwks(&[&key]))
        .issuer_audience(ISSUER, "api://a")
        .build();
    assert!(missing.is_err());
    let stray = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .issuer_audience("https://typo.example.com", "api://a")
        .build();
    assert!(stray.is_err());
    // With a global audience too, issuers without their own keep using it.
    let mixed = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .issuer_with_jwks(other, jwks(&[&key]))
        .audience(AUDIENCE)
        .issuer_audience(other, "api://b")
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(mixed));
    assert_eq!(
        call(&app, "/", Some(&token(ISSUER, AUDIENCE)))
            .await
            .status(),
        StatusCode::OK
    );
    assert_invalid_token(&call(&app, "/", Some(&token(other, AUDIENCE))).await);
}

/// An in-process multi-tenant issuer on `127.0.0.1:0`: each known tenant has its own
/// discovery document (`/{tenant}/v2.0/.well-known/openid-configuration`) and key set; every
/// tenant the server is asked about is recorded.
struct TenantIdp {
    base: String,
    asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TenantIdp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TenantIdp {
    async fn start(tenants: Vec<(&'static str, String)>) -> Self {
        use axum::{
            Json,
            extract::{Path, State},
        };
        type Shared = (
            String,
            Arc<HashMap<String, String>>,
            Arc<Mutex<Vec<String>>>,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let keys: HashMap<String, String> = tenants
            .into_iter()
            .map(|(t, k)| (t.to_owned(), k))
            .collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let state: Shared = (base.clone(), Arc::new(keys), Arc::clone(&asked));
        let app = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(
                    |State((base, keys, asked)): State<Shared>, Path(tenant): Path<String>| async move {
                        asked.lock().expect("lock").push(tenant.clone());
                        if !keys.contains_key(&tenant) {
                            return Err(StatusCode::BAD_REQUEST);
                        }
                        Ok(Json(json!({
                            "issuer": format!("{base}/{tenant}/v2.0"),
                            "jwks_uri": format!("{base}/{tenant}/keys"),
                        })))
                    },
                ),
            )
            .route(
                "/{tenant}/keys",
                get(
                    |State((_, keys, _)): State<Shared>, Path(tenant): Path<String>| async move {
                        keys.get(&tenant).cloned().ok_or(StatusCode::NOT_FOUND)
                    },
                ),
            )
            .with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, asked, task }
    }

    fn iss(&self, tenant: &str) -> String {
        format!("{}/{tenant}/v2.0", self.base)
    }

    /// The distinct tenants the server was asked about.
    fn asked(&self) -> HashSet<String> {
        self.asked.lock().expect("lock").iter().cloned().collect()
    }
}

/// Keys found per tenant through discovery: each tenant's tokens verify only with its own
/// keys, and a flood of made-up tenants reaches the issuer for at most the free slots of the
/// bounded cache plus one per cooldown.
#[tokio::test]
async fn keys_per_tenant_are_isolated_and_bounded() {
    let (key_a, key_b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let (a, b) = ("tenant-a", "tenant-b");
    let idp = TenantIdp::start(vec![(a, jwks(&[&key_a])), (b, jwks(&[&key_b]))]).await;
    let template = format!("{}/{{tenantid}}/v2.0", idp.base);
    let jwt = Jwt::builder()
        .tenant_issuer(TenantIssuer::new(&template).keys_per_tenant(3))
        .audience(AUDIENCE)
        .jwks_refresh_cooldown(Duration::from_secs(60))
        .build()
        .expect("valid");
    let app = Router::new()
        .route(
            "/",
            get(|p: Principal| async move { p.issuer().to_owned() }),
        )
        .layer(BearerAuthLayer::new(jwt));
    let token =
        |key: &TestKey, tenant: &str| mint(key, claims(&idp.iss(tenant), json!({ "tid": tenant })));

    let ok_a = call(&app, "/", Some(&token(&key_a, a))).await;
    assert_eq!(ok_a.status(), StatusCode::OK);
    assert_eq!(body(ok_a).await, idp.iss(a));
    assert_eq!(
        call(&app, "/", Some(&token(&key_b, b))).await.status(),
        StatusCode::OK
    );
    // Tenant A's key does not speak for tenant B.
    assert_invalid_token(&call(&app, "/", Some(&token(&key_a, b))).await);
    assert_eq!(idp.asked(), HashSet::from([a.to_owned(), b.to_owned()]));

    let attacker = TestKey::rsa_a().with_kid("made-up");
    let mut unavailable = 0;
    for i in 0..200 {
        let tenant = format!("made-up-{i}");
        let status = call(&app, "/", Some(&token(&attacker, &tenant)))
            .await
            .status();
        assert_ne!(status, StatusCode::OK, "{tenant}");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            unavailable += 1;
        }
    }
    assert_eq!(
        unavailable, 200,
        "an issuer that does not know the tenant cannot be asked"
    );
    let made_up = idp.asked().len() - 2;
    assert!(
        made_up <= 2,
        "one free slot plus one admission per cooldown, saw {made_up} made-up tenants asked"
    );
    // The tenant used last is still cached: it works without asking the issuer again.
    let asked_before = idp.asked.lock().expect("lock").len();
    assert_eq!(
        call(&app, "/", Some(&token(&key_b, b))).await.status(),
        StatusCode::OK
    );
    assert_eq!(idp.asked.lock().expect("lock").len(), asked_before);
}

/// A resolver decides about tenants outside the allowlist, once each; per-tenant discovery
/// runs only for tenants it accepts.
#[tokio::test]
async fn tenant_resolver() {
    let (key_a, key_b) = (TestKey::rsa_a(), TestKey::rsa_b());
    let (a, b) = ("tenant-a", "tenant-b");
    let idp = TenantIdp::start(vec![(a, jwks(&[&key_a])), (b, jwks(&[&key_b]))]).await;
    let template = format!("{}/{{tenantid}}/v2.0", idp.base);
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let jwt = Jwt::builder()
        .tenant_issuer(
            TenantIssuer::new(&template)
                .keys_per_tenant_default()
                .tenants([a])
                .resolver(move |tenant: String| {
                    let counted = Arc::clone(&counted);
                    async move {
                        counted.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        tenant == "tenant-b"
                    }
                }),
        )
        .audience(AUDIENCE)
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    let token =
        |key: &TestKey, tenant: &str| mint(key, claims(&idp.iss(tenant), json!({ "tid": tenant })));

    // Listed: no resolver call.
    assert_eq!(
        call(&app, "/", Some(&token(&key_a, a))).await.status(),
        StatusCode::OK
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // Accepted by the resolver, then its keys fetched; the answer is remembered.
    for _ in 0..3 {
        assert_eq!(
            call(&app, "/", Some(&token(&key_b, b))).await.status(),
            StatusCode::OK
        );
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // Refused by the resolver: never sent to the issuer, asked once per tenant.
    for round in 0..2 {
        for i in 0..20 {
            let tenant = format!("made-up-{i}");
            assert_invalid_token(&call(&app, "/", Some(&token(&key_a, &tenant))).await);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 21, "round {round}");
    }
    assert_eq!(idp.asked(), HashSet::from([a.to_owned(), b.to_owned()]));
    // The `tid` rule holds before the resolver is asked.
    let mismatched = mint(&key_b, claims(&idp.iss(b), json!({ "tid": "made-up-x" })));
    assert_invalid_token(&call(&app, "/", Some(&mismatched)).await);
    assert_eq!(calls.load(Ordering::SeqCst), 21);
}

/// Without an allowlist, a resolver judges every tenant; with shared keys, only tokens whose
/// signature verifies reach it.
#[tokio::test]
async fn tenant_resolver_without_allowlist_judges_every_tenant() {
    let key = TestKey::rsa_a();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&calls);
    let jwt = Jwt::builder()
        .tenant_issuer(
            TenantIssuer::new("https://login.microsoftonline.com/{tenantid}/v2.0")
                .jwks(jwks(&[&key]))
                .resolver(move |tenant: String| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async move { tenant == TENANT }
                }),
        )
        .audience(AUDIENCE)
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(BearerAuthLayer::new(jwt));
    let token = |tenant: &str| {
        let iss = format!("https://login.microsoftonline.com/{tenant}/v2.0");
        mint(&key, claims(&iss, json!({ "tid": tenant })))
    };
    assert_eq!(
        call(&app, "/", Some(&token(TENANT))).await.status(),
        StatusCode::OK
    );
    assert_invalid_token(&call(&app, "/", Some(&token(OTHER_TENANT))).await);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Forged tokens for made-up tenants never reach the resolver.
    let forger = TestKey::rsa_b().with_kid("rsa-a");
    for i in 0..20 {
        let tenant = format!("forged-{i}");
        let iss = format!("https://login.microsoftonline.com/{tenant}/v2.0");
        let forged = mint(&forger, claims(&iss, json!({ "tid": tenant })));
        assert_invalid_token(&call(&app, "/", Some(&forged)).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Introspection answers carry roles too (Keycloak puts `realm_access` in them).
#[tokio::test]
async fn roles_from_introspection_answers() {
    use support::introspection::{active, builder, server::IntrospectionServer};

    let server = IntrospectionServer::start().await;
    let introspection = builder(&server)
        .authorities(AuthoritySource::path("realm_access.roles").prefix("realm:"))
        .build()
        .expect("valid");
    let app = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .route_layer(RequireRoleLayer::all(["realm:admin"]))
        .layer(BearerAuthLayer::new(introspection));
    let mut admin = active("alice", "read");
    admin["realm_access"] = json!({ "roles": ["admin"] });
    server.answer("opaque-admin", admin);
    let mut user = active("bob", "read");
    user["realm_access"] = json!({ "roles": ["user"] });
    server.answer("opaque-user", user);
    let mut repeated = active("mallory", "read");
    repeated["realm_access"] = json!({ "roles": ["user"] });
    server.answer_raw(
        "opaque-repeated",
        &repeated.to_string().replacen(
            "\"roles\":[\"user\"]",
            "\"roles\":[\"user\"],\"roles\":[\"admin\"]",
            1,
        ),
    );

    assert_eq!(
        call(&app, "/admin", Some("opaque-admin")).await.status(),
        StatusCode::OK
    );
    assert_forbidden(&call(&app, "/admin", Some("opaque-user")).await);
    // A repeated roles member makes the answer unusable, not an admin.
    assert_invalid_token(&call(&app, "/admin", Some("opaque-repeated")).await);
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn grpc_roles_per_method() {
    use portcullis::grpc::MethodAuthoritiesLayer;

    let key = TestKey::rsa_a();
    let jwt = roles_jwt(&key);
    let app = Router::new()
        .route("/shop.v1.Shop/Get", axum::routing::post(|| async { "ok" }))
        .route(
            "/shop.v1.Shop/Restock",
            axum::routing::post(|| async { "ok" }),
        )
        .route("/shop.v1.Other/Get", axum::routing::post(|| async { "ok" }))
        .layer(
            MethodAuthoritiesLayer::new()
                .service("shop.v1.Shop", AuthorityPolicy::any(["clerk", "admin"]))
                .method("/shop.v1.Shop/Restock", AuthorityPolicy::all(["admin"])),
        )
        .layer(BearerAuthLayer::new(jwt).grpc());
    let clerk = mint(&key, claims(ISSUER, json!({ "roles": ["clerk"] })));
    assert_eq!(
        grpc_status(&app, "/shop.v1.Shop/Get", &clerk).await,
        None,
        "passed"
    );
    assert_eq!(
        grpc_status(&app, "/shop.v1.Shop/Restock", &clerk)
            .await
            .as_deref(),
        Some("7")
    );
    assert_eq!(
        grpc_status(&app, "/shop.v1.Other/Get", &clerk)
            .await
            .as_deref(),
        Some("7"),
        "unmapped"
    );
}
