//! Service behaviour of `BearerAuthLayer` and `RequireScopeLayer` through `oneshot`, with keys
//! from static JWK Sets (no network), except the readiness tests, which need the I/O path and
//! use the in-process issuer.

mod support;

use std::time::Duration;

use axum::{
    Json, Router,
    body::Body,
    http::{HeaderName, HeaderValue, Request, Response, StatusCode, header},
    routing::get,
};
use futures_util::FutureExt as _;
use portcullis::{
    AuthError, BearerAuthLayer, ErrorKind, Jwt, Principal, RegisteredClaims, ScopePolicy, Scopes,
};
use serde::Deserialize;
use serde_json::{Value, json};
use support::issuer::{
    AUDIENCE, Answer, ISSUER, ISSUER_B, IssuerServer, REQUEST_BOUND, TestKey, app, call,
    closed_port_url, default_claims, get_request, jwks, mint, routes, send, static_jwt,
};
use tower::{Layer as _, Service, ServiceExt as _};

fn token_with(key: &TestKey, edit: impl FnOnce(&mut Value)) -> String {
    let mut claims = default_claims(ISSUER, AUDIENCE);
    edit(&mut claims);
    mint(key, claims)
}

fn good_token(key: &TestKey) -> String {
    token_with(key, |_| {})
}

fn scoped_token(key: &TestKey, scope: &str) -> String {
    token_with(key, |c| c["scope"] = json!(scope))
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_principal() {
    let key = TestKey::rsa_a();
    let app = app(static_jwt(&[&key]));

    let answer = call(&app, "/me", Some(&good_token(&key))).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!({
            "sub": "user-1",
            "iss": ISSUER,
            "scopes": ["read", "write"],
            "principal_scopes": ["read", "write"],
        })
    );
    assert!(answer.error.is_none());
    assert!(answer.challenge().is_none());
}

#[tokio::test]
async fn a_token_with_a_long_header_and_large_claims_is_read_whole() {
    // Decoded, the header is over 256 bytes and the claims over 4 KiB.
    let key = TestKey::rsa_a().with_kid(&"k".repeat(240));
    let app = app(static_jwt(&[&key]));
    let token = token_with(&key, |c| {
        c["sub"] = json!("user-long");
        c["note"] = json!("n".repeat(4096));
    });

    let answer = call(&app, "/me", Some(&token)).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["sub"], "user-long");
}

#[tokio::test]
async fn the_layer_over_a_service_fn_puts_principal_and_scopes_into_the_extensions() {
    let key = TestKey::ec_p256();
    let inner = tower::service_fn(|req: Request<Body>| async move {
        let principal = req
            .extensions()
            .get::<Principal>()
            .expect("principal in the extensions");
        let scopes = req
            .extensions()
            .get::<Scopes>()
            .expect("scopes in the extensions");
        let body = json!({
            "sub": principal.subject(),
            "iss": principal.issuer(),
            "scopes": scopes.as_str(),
            "jti": principal.claims().jti,
            "exp_known": principal.expires_at().is_some(),
        });
        Ok::<_, std::convert::Infallible>(Response::new(Body::from(body.to_string())))
    });
    let svc = BearerAuthLayer::new(static_jwt(&[&key])).layer(inner);
    let token = token_with(&key, |c| c["jti"] = json!("id-42"));

    let response = svc
        .oneshot(get_request("/", Some(&token)))
        .await
        .expect("infallible");
    let answer = Answer::read(response).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json(),
        json!({
            "sub": "user-1",
            "iss": ISSUER,
            "scopes": "read write",
            "jti": "id-42",
            "exp_known": true,
        })
    );
}

#[derive(Debug, Deserialize)]
struct MyClaims {
    sub: String,
    tenant: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[tokio::test]
async fn typed_claims_are_deserialized_into_the_custom_type() {
    let key = TestKey::rsa_a();
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .claims::<MyClaims>()
        .build()
        .expect("valid configuration");
    let app =
        Router::new()
            .route(
                "/tenant",
                get(|p: Principal<MyClaims>| async move {
                    Json(json!({
                        "sub": p.claims().sub,
                        "tenant": p.claims().tenant,
                        "roles": p.claims().roles,
                        "scopes": p.scopes().as_str(),
                    }))
                }),
            )
            .route(
                "/registered",
                get(|p: Principal<RegisteredClaims>| async move {
                    p.subject().unwrap_or("").to_owned()
                }),
            )
            .layer(BearerAuthLayer::new(jwt));

    let token = token_with(&key, |c| {
        c["tenant"] = json!("acme");
        c["roles"] = json!(["owner"]);
    });
    let answer = call(&app, "/tenant", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!({"sub": "user-1", "tenant": "acme", "roles": ["owner"], "scopes": "read write"})
    );

    // Claims that do not fit the type are an invalid token, not a handler error.
    let answer = call(&app, "/tenant", Some(&good_token(&key))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), Some("invalid_token"));

    // A handler asking for another claims type finds no principal (documented: 500).
    let answer = call(&app, "/registered", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn a_missing_token_gets_a_bare_challenge() {
    let key = TestKey::rsa_a();
    let app = app(static_jwt(&[&key]));

    for request in [
        get_request("/me", None),
        Request::builder()
            .uri("/me")
            .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
            .body(Body::empty())
            .expect("request"),
    ] {
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
        assert!(answer.body.is_empty());
        let error = answer.error.expect("AuthError in the extensions");
        assert_eq!(error.kind(), ErrorKind::MissingToken);
        assert_eq!(error.status(), StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn a_custom_realm_is_used_in_every_challenge() {
    let key = TestKey::rsa_a();
    let app = routes().layer(BearerAuthLayer::new(static_jwt(&[&key])).realm("orders"));

    let answer = call(&app, "/me", None).await;
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="orders""#));

    let answer = call(&app, "/me", Some("not.a.jwt")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let challenge = answer.challenge().expect("challenge");
    assert!(
        challenge.starts_with(r#"Bearer realm="orders", error="invalid_token""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn per_route_scopes_all_and_any() {
    let key = TestKey::rsa_a();
    let app = app(static_jwt(&[&key]));
    let read_write = scoped_token(&key, "read write");
    let admin = scoped_token(&key, "admin");

    // (path, token, status, scope attribute of the challenge)
    let table: &[(&str, &str, StatusCode, Option<&str>)] = &[
        ("/me", &read_write, StatusCode::OK, None),
        ("/read", &read_write, StatusCode::OK, None),
        ("/admin", &read_write, StatusCode::FORBIDDEN, Some("admin")),
        (
            "/read-and-admin",
            &read_write,
            StatusCode::FORBIDDEN,
            Some("read admin"),
        ),
        ("/admin-or-write", &read_write, StatusCode::OK, None),
        (
            "/admin-or-root",
            &read_write,
            StatusCode::FORBIDDEN,
            Some("admin root"),
        ),
        ("/admin", &admin, StatusCode::OK, None),
        ("/read", &admin, StatusCode::FORBIDDEN, Some("read")),
        ("/admin-or-root", &admin, StatusCode::OK, None),
        (
            "/read-and-admin",
            &admin,
            StatusCode::FORBIDDEN,
            Some("read admin"),
        ),
    ];
    for (path, token, status, scope) in table {
        let answer = call(&app, path, Some(token)).await;
        assert_eq!(answer.status, *status, "{path} {}", answer.text());
        match scope {
            Some(scope) => {
                assert_eq!(answer.error_code(), Some("insufficient_scope"), "{path}");
                let challenge = answer.challenge().expect("challenge");
                assert!(
                    challenge.starts_with(r#"Bearer realm="api""#),
                    "{challenge}"
                );
                assert_eq!(
                    support::issuer::challenge_param(challenge, "scope"),
                    Some(*scope),
                    "{path}: {challenge}"
                );
                let error = answer.error.expect("AuthError in the extensions");
                assert_eq!(error.kind(), ErrorKind::InsufficientScope);
                assert_eq!(error.required_scope(), Some(*scope));
            }
            None => assert!(answer.challenge().is_none(), "{path}"),
        }
    }

    // Without a principal in front, a scope check is a missing token.
    let bare = routes();
    let answer = call(&bare, "/read", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
}

#[tokio::test]
async fn layer_wide_required_scopes_apply_to_every_route() {
    let key = TestKey::rsa_a();
    let layer =
        BearerAuthLayer::new(static_jwt(&[&key])).require_scopes(ScopePolicy::all(["write"]));
    let app = routes().layer(layer);

    let answer = call(&app, "/me", Some(&scoped_token(&key, "read"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let challenge = answer.challenge().expect("challenge");
    assert_eq!(
        support::issuer::challenge_param(challenge, "scope"),
        Some("write")
    );
    assert_eq!(answer.error_code(), Some("insufficient_scope"));

    let answer = call(&app, "/me", Some(&scoped_token(&key, "read write"))).await;
    assert_eq!(answer.status, StatusCode::OK);

    // Both the layer-wide policy and the route's apply.
    let answer = call(&app, "/admin", Some(&scoped_token(&key, "write"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        support::issuer::challenge_param(answer.challenge().expect("challenge"), "scope"),
        Some("admin")
    );
    let answer = call(&app, "/admin", Some(&scoped_token(&key, "admin"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    let answer = call(&app, "/admin", Some(&scoped_token(&key, "admin write"))).await;
    assert_eq!(answer.status, StatusCode::OK);

    // An "any" policy.
    let layer =
        BearerAuthLayer::new(static_jwt(&[&key])).require_scopes(ScopePolicy::any(["x", "read"]));
    let app = routes().layer(layer);
    assert_eq!(
        call(&app, "/me", Some(&scoped_token(&key, "read")))
            .await
            .status,
        StatusCode::OK
    );
    let answer = call(&app, "/me", Some(&scoped_token(&key, "write"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        support::issuer::challenge_param(answer.challenge().expect("challenge"), "scope"),
        Some("x read")
    );
}

#[tokio::test]
async fn optional_mode_lets_anonymous_requests_through_but_not_bad_tokens() {
    let key = TestKey::rsa_a();
    let app = routes().layer(BearerAuthLayer::new(static_jwt(&[&key])).optional(true));

    let answer = call(&app, "/whoami", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"anonymous": true}));

    let answer = call(&app, "/whoami", Some(&good_token(&key))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"sub": "user-1", "anonymous": false}));

    let expired = token_with(&key, |c| c["exp"] = json!(support::issuer::now() - 3600));
    let answer = call(&app, "/whoami", Some(&expired)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), Some("invalid_token"));

    let answer = call(&app, "/whoami", Some("garbage")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // An anonymous request still cannot pass a scope check.
    let answer = call(&app, "/read", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));

    // Without optional mode, the same anonymous request is rejected.
    let strict = support::issuer::app(static_jwt(&[&key]));
    assert_eq!(
        call(&strict, "/whoami", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn optional_mode_with_layer_wide_scopes_rejects_anonymous_requests() {
    let key = TestKey::rsa_a();
    let app = routes().layer(
        BearerAuthLayer::new(static_jwt(&[&key]))
            .optional(true)
            .require_scopes(ScopePolicy::all(["read"])),
    );

    // No token means no scope: the layer-wide requirement cannot be met anonymously.
    let answer = call(&app, "/whoami", None).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));

    let answer = call(&app, "/whoami", Some(&scoped_token(&key, "read"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let answer = call(&app, "/whoami", Some(&scoped_token(&key, "write"))).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_sender_constrained_jwt_is_not_a_bearer_token() {
    let key = TestKey::rsa_a();
    let app = support::issuer::app(static_jwt(&[&key]));
    let bound = token_with(&key, |c| {
        c["cnf"] = json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})
    });
    let answer = call(&app, "/me", Some(&bound)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), Some("invalid_token"));
    // The same token without `cnf` is fine: the refusal is about the binding.
    let answer = call(&app, "/me", Some(&good_token(&key))).await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// A `Jwt` whose issuer cannot be reached (nothing listens on the JWKS port).
async fn unreachable_jwt() -> Jwt {
    Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, closed_port_url("/jwks").await)
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
        .jwks_refresh_cooldown(Duration::from_secs(30))
        .build()
        .expect("valid configuration")
}

/// Where the keys of a rejection case come from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keys {
    Static,
    Unreachable,
}

/// One request per rejection kind.
type RejectionCase = (&'static str, Keys, Request<Body>, ErrorKind, StatusCode);

/// One request per rejection kind: (name, keys, request, kind, status).
fn rejection_cases(key: &TestKey) -> Vec<RejectionCase> {
    let two_headers = {
        let mut r = get_request("/me", Some(&good_token(key)));
        r.headers_mut().append(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        r
    };
    vec![
        (
            "missing",
            Keys::Static,
            get_request("/me", None),
            ErrorKind::MissingToken,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "two headers",
            Keys::Static,
            two_headers,
            ErrorKind::InvalidRequest,
            StatusCode::BAD_REQUEST,
        ),
        (
            "bad token",
            Keys::Static,
            get_request("/me", Some("a.b.c")),
            ErrorKind::InvalidToken,
            StatusCode::UNAUTHORIZED,
        ),
        (
            "scope",
            Keys::Static,
            get_request("/me", Some(&scoped_token(key, "read"))),
            ErrorKind::InsufficientScope,
            StatusCode::FORBIDDEN,
        ),
        (
            "unavailable",
            Keys::Unreachable,
            get_request("/me", Some(&good_token(key))),
            ErrorKind::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
        ),
    ]
}

#[tokio::test]
async fn a_custom_rejection_closure_answers_and_the_error_is_in_the_extensions() {
    let key = TestKey::rsa_a();
    let on_rejection = |error: &AuthError| {
        let body = json!({
            "kind": format!("{:?}", error.kind()),
            "status": error.status().as_u16(),
            "scope": error.required_scope(),
        });
        let mut response = Response::new(Body::from(body.to_string()));
        *response.status_mut() = StatusCode::IM_A_TEAPOT;
        response
            .headers_mut()
            .insert("x-rejected", HeaderValue::from_static("yes"));
        response
    };
    let policy = ScopePolicy::all(["write"]);
    let static_app = routes().layer(
        BearerAuthLayer::new(static_jwt(&[&key]))
            .require_scopes(policy.clone())
            .on_rejection(on_rejection),
    );
    let unreachable_app = routes().layer(
        BearerAuthLayer::new(unreachable_jwt().await)
            .require_scopes(policy)
            .on_rejection(on_rejection),
    );

    for (name, which, request, kind, status) in rejection_cases(&key) {
        let app = if which == Keys::Static {
            &static_app
        } else {
            &unreachable_app
        };
        let answer = send(app, request).await;
        assert_eq!(answer.status, StatusCode::IM_A_TEAPOT, "{name}");
        assert_eq!(answer.header("x-rejected"), Some("yes"), "{name}");
        assert!(
            answer.challenge().is_none(),
            "{name}: the closure decides the headers"
        );
        let body = answer.json();
        assert_eq!(body["kind"], format!("{kind:?}"), "{name}");
        assert_eq!(body["status"], status.as_u16(), "{name}");
        let error = answer
            .error
            .unwrap_or_else(|| panic!("{name}: AuthError in the extensions"));
        assert_eq!(error.kind(), kind, "{name}");
        assert_eq!(error.status(), status, "{name}");
        assert!(!error.description().is_empty(), "{name}");
        match kind {
            ErrorKind::InsufficientScope => {
                assert_eq!(error.required_scope(), Some("write"), "{name}");
                assert_eq!(body["scope"], "write", "{name}");
            }
            ErrorKind::Unavailable => {
                let after = error.retry_after().expect("retry_after on Unavailable");
                assert!(after >= Duration::from_secs(1), "{name}: {after:?}");
            }
            _ => {
                assert_eq!(error.required_scope(), None, "{name}");
                assert_eq!(error.retry_after(), None, "{name}");
            }
        }
    }
}

#[tokio::test]
async fn default_rejections_follow_rfc6750_and_carry_the_error() {
    let key = TestKey::rsa_a();
    let policy = ScopePolicy::all(["write"]);
    let static_app =
        routes().layer(BearerAuthLayer::new(static_jwt(&[&key])).require_scopes(policy.clone()));
    let unreachable_app =
        routes().layer(BearerAuthLayer::new(unreachable_jwt().await).require_scopes(policy));

    for (name, which, request, kind, status) in rejection_cases(&key) {
        let app = if which == Keys::Static {
            &static_app
        } else {
            &unreachable_app
        };
        let answer = send(app, request).await;
        assert_eq!(answer.status, status, "{name}");
        let error = answer
            .error
            .clone()
            .unwrap_or_else(|| panic!("{name}: AuthError in the extensions"));
        assert_eq!(error.kind(), kind, "{name}");
        match kind {
            ErrorKind::Unavailable => {
                assert!(answer.challenge().is_none(), "{name}");
                let after = answer.retry_after().expect("Retry-After");
                assert!((1..=30).contains(&after), "{name}: Retry-After {after}");
            }
            ErrorKind::MissingToken => {
                assert_eq!(answer.challenge(), Some(r#"Bearer realm="api""#));
            }
            _ => {
                assert_eq!(answer.error_code(), kind_code(kind), "{name}");
                assert!(answer.retry_after().is_none(), "{name}");
            }
        }
    }
}

fn kind_code(kind: ErrorKind) -> Option<&'static str> {
    match kind {
        ErrorKind::InvalidRequest => Some("invalid_request"),
        ErrorKind::InvalidToken => Some("invalid_token"),
        ErrorKind::InsufficientScope => Some("insufficient_scope"),
        _ => None,
    }
}

fn with_headers(uri: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn tokens_from_cookie_header_and_query_only_when_enabled() {
    let key = TestKey::rsa_a();
    let token = good_token(&key);
    let enabled = routes().layer(
        BearerAuthLayer::new(static_jwt(&[&key]))
            .token_from_cookie("at")
            .token_from_header(HeaderName::from_static("x-access-token"))
            .token_from_query(),
    );
    let disabled = app(static_jwt(&[&key]));

    let cookie = format!("theme=dark; at={token}; lang=en");
    let query = format!("/me?x=1&access_token={token}");
    let bearer = format!("Bearer {token}");
    let sources: &[(&str, Request<Body>)] = &[
        ("cookie", with_headers("/me", &[("cookie", &cookie)])),
        ("header", with_headers("/me", &[("x-access-token", &token)])),
        ("query", with_headers(&query, &[])),
    ];
    for (name, request) in sources {
        let answer = send(&enabled, clone_request(request)).await;
        assert_eq!(answer.status, StatusCode::OK, "{name} enabled");
        assert_eq!(answer.json()["sub"], "user-1", "{name}");
        let answer = send(&disabled, clone_request(request)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name} disabled");
        assert_eq!(
            answer.challenge(),
            Some(r#"Bearer realm="api""#),
            "{name} disabled: no token at all"
        );
    }

    // A disabled place is not a second token: Authorization alone decides.
    let request = with_headers(
        &query,
        &[
            ("authorization", &bearer),
            ("cookie", &cookie),
            ("x-access-token", &token),
        ],
    );
    assert_eq!(send(&disabled, request).await.status, StatusCode::OK);

    // A token in two enabled places is a malformed request.
    let two_places: &[(&str, Request<Body>)] = &[
        (
            "authorization + cookie",
            with_headers("/me", &[("authorization", &bearer), ("cookie", &cookie)]),
        ),
        (
            "authorization + query",
            with_headers(&query, &[("authorization", &bearer)]),
        ),
        (
            "header + cookie",
            with_headers("/me", &[("x-access-token", &token), ("cookie", &cookie)]),
        ),
        (
            "cookie + query",
            with_headers(&query, &[("cookie", &cookie)]),
        ),
        (
            "cookie twice",
            with_headers(
                "/me",
                &[
                    ("cookie", &format!("at={token}")),
                    ("cookie", &format!("at={token}")),
                ],
            ),
        ),
        (
            "query twice",
            with_headers(&format!("{query}&access_token={token}"), &[]),
        ),
    ];
    for (name, request) in two_places {
        let answer = send(&enabled, clone_request(request)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(answer.error_code(), Some("invalid_request"), "{name}");
    }
}

fn clone_request(request: &Request<Body>) -> Request<Body> {
    let mut builder = Request::builder()
        .method(request.method())
        .uri(request.uri());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    builder.body(Body::empty()).expect("request")
}

#[tokio::test]
async fn scope_claim_shapes() {
    let key = TestKey::rsa_a();
    let app = app(static_jwt(&[&key]));
    let token = |scopes: Value| {
        let mut claims = default_claims(ISSUER, AUDIENCE);
        claims.as_object_mut().expect("object").remove("scope");
        for (name, value) in scopes.as_object().expect("object") {
            claims[name] = value.clone();
        }
        mint(&key, claims)
    };

    // (claims, scopes seen, /admin status)
    let table = [
        (
            json!({"scope": "read admin"}),
            json!(["read", "admin"]),
            200,
        ),
        (
            json!({"scp": ["read", "admin"]}),
            json!(["read", "admin"]),
            200,
        ),
        (json!({"scp": "read admin"}), json!(["read", "admin"]), 200),
        (
            json!({"scope": "read", "scp": ["admin"]}),
            json!(["read"]),
            403,
        ),
        (json!({"scope": ""}), json!([]), 403),
        (json!({}), json!([]), 403),
        (json!({"roles": ["admin"]}), json!([]), 403),
    ];
    for (claims, scopes, admin) in table {
        let t = token(claims.clone());
        let me = call(&app, "/me", Some(&t)).await;
        assert_eq!(me.status, StatusCode::OK, "{claims}");
        assert_eq!(me.json()["scopes"], scopes, "{claims}");
        assert_eq!(
            call(&app, "/admin", Some(&t)).await.status,
            admin,
            "{claims}"
        );
    }

    // A named scope claim replaces `scope`/`scp`.
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key]))
        .audience(AUDIENCE)
        .scope_claim("roles")
        .build()
        .expect("valid configuration");
    let app = support::issuer::app(jwt);
    let t = token(json!({"roles": ["admin", "read"], "scope": "write"}));
    let me = call(&app, "/me", Some(&t)).await;
    assert_eq!(me.json()["scopes"], json!(["admin", "read"]));
    assert_eq!(call(&app, "/admin", Some(&t)).await.status, StatusCode::OK);
    let t = token(json!({"scope": "admin", "scp": ["admin"]}));
    assert_eq!(
        call(&app, "/admin", Some(&t)).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn several_issuers_each_verify_only_their_own_tokens() {
    // Both issuers publish a key under the same kid.
    let key_a = TestKey::rsa_a().with_kid("k1");
    let key_b = TestKey::rsa_b().with_kid("k1");
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks(&[&key_a]))
        .issuer_with_jwks(ISSUER_B, jwks(&[&key_b]))
        .audience(AUDIENCE)
        .build()
        .expect("valid configuration");
    let app = support::issuer::app(jwt);
    let token = |key: &TestKey, iss: &str| mint(key, default_claims(iss, AUDIENCE));

    let answer = call(&app, "/me", Some(&token(&key_a, ISSUER))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["iss"], ISSUER);
    let answer = call(&app, "/me", Some(&token(&key_b, ISSUER_B))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["iss"], ISSUER_B);

    for (key, iss) in [(&key_b, ISSUER), (&key_a, ISSUER_B)] {
        let answer = call(&app, "/me", Some(&token(key, iss))).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{iss} signed by {}",
            key.kid
        );
        assert_eq!(answer.error_code(), Some("invalid_token"));
    }
    let answer = call(
        &app,
        "/me",
        Some(&token(&key_a, "https://third.example.com")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

type MockRequest = Request<Body>;
type MockResponse = Response<Body>;

#[tokio::test]
async fn the_io_path_calls_the_inner_service_that_was_polled_ready() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, server.jwks_uri())
        .audience(AUDIENCE)
        .build()
        .expect("valid configuration");
    let (mock, mut handle) = tower_test::mock::pair::<MockRequest, MockResponse>();
    let mut svc = BearerAuthLayer::new(jwt).layer(mock);

    // tower-test's mock panics ("service not ready") when a clone that was not polled ready
    // is called: only the instance polled below may receive the request.
    svc.ready().await.expect("ready");
    let future = svc.call(get_request("/", Some(&good_token(&key))));
    assert!(
        handle.next_request().now_or_never().is_none(),
        "no keys yet: the inner service must not be called before they are fetched"
    );
    let inner = tokio::spawn(async move {
        let (request, respond) = handle.next_request().await.expect("a request");
        let principal = request
            .extensions()
            .get::<Principal>()
            .expect("principal")
            .clone();
        respond.send_response(Response::new(Body::from("from inner")));
        (principal, handle)
    });
    let response = tokio::time::timeout(REQUEST_BOUND, future)
        .await
        .expect("in time")
        .expect("the inner service answered");
    let answer = Answer::read(response).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.text(), "from inner");
    let (principal, mut handle) = inner.await.expect("inner task");
    assert_eq!(principal.subject(), Some("user-1"));
    assert_eq!(server.jwks_hits(), 1, "the first request fetched the keys");

    // The clone left behind must be polled ready again before the next call, and then the
    // keys are cached: the next request reaches the inner service during `call` itself.
    svc.ready().await.expect("ready");
    let future = svc.call(get_request("/", Some(&good_token(&key))));
    let (_, respond) = handle
        .next_request()
        .now_or_never()
        .expect("called synchronously")
        .expect("a request");
    respond.send_response(Response::new(Body::from("second")));
    let response = tokio::time::timeout(REQUEST_BOUND, future)
        .await
        .expect("in time")
        .expect("ok");
    assert_eq!(Answer::read(response).await.text(), "second");
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn the_sync_path_calls_the_inner_service_directly_and_rejections_never_do() {
    let key = TestKey::rsa_a();
    let (mock, mut handle) = tower_test::mock::pair::<MockRequest, MockResponse>();
    let mut svc = BearerAuthLayer::new(static_jwt(&[&key])).layer(mock);

    svc.ready().await.expect("ready");
    let future = svc.call(get_request("/", Some(&good_token(&key))));
    // The request reached the mock during `call`, before the response future was polled.
    let (request, respond) = handle
        .next_request()
        .now_or_never()
        .expect("the inner service was called synchronously")
        .expect("a request");
    assert!(request.extensions().get::<Principal>().is_some());
    assert_eq!(
        request
            .extensions()
            .get::<Scopes>()
            .map(|s| s.as_str().to_owned()),
        Some("read write".to_owned())
    );
    respond.send_response(Response::new(Body::from("direct")));
    let response = future.await.expect("ok");
    assert_eq!(Answer::read(response).await.text(), "direct");

    // A rejection answers without calling the inner service.
    svc.ready().await.expect("ready");
    let response = svc
        .call(get_request("/", Some("bad.token.here")))
        .await
        .expect("a rejection is a response");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        handle.next_request().now_or_never().is_none(),
        "the inner service saw no request"
    );
}

#[tokio::test]
async fn debug_output_carries_no_token_and_no_extra_claims() {
    let key = TestKey::rsa_a();
    let marker = "claim-marker-51d0";
    let token = token_with(&key, |c| {
        c["jti"] = json!(marker);
        c["email"] = json!(marker);
    });
    let inner = tower::service_fn(|req: Request<Body>| async move {
        let principal = req
            .extensions()
            .get::<Principal>()
            .expect("principal")
            .clone();
        Ok::<_, std::convert::Infallible>(Response::new(Body::from(format!(
            "{principal:?} {:?}",
            req.extensions().get::<Scopes>()
        ))))
    });
    let layer = BearerAuthLayer::new(static_jwt(&[&key]));
    let svc = layer.clone().layer(inner);
    let response = svc
        .oneshot(get_request("/", Some(&token)))
        .await
        .expect("infallible");
    let debug = Answer::read(response).await.text();
    // The subject is personal data too: it stays out, while the issuer shows.
    assert!(!debug.contains("user-1"), "{debug}");
    assert!(debug.contains("Principal"), "{debug}");
    let layer_debug = format!("{layer:?}");
    for text in [&debug, &layer_debug] {
        assert!(!text.contains(marker), "{text}");
        assert!(!text.contains(&token), "{text}");
    }
}
