//! RFC 7662 introspection against a real HTTP server on `127.0.0.1:0`: what is accepted,
//! what is cached and for how long, how the client authenticates, what happens when the
//! endpoint fails, discovery of the endpoint, routing between JWT and introspection, and
//! scope checks on introspected principals.
//!
//! The introspection server (`support::introspection::server`) is in-process (axum): it
//! counts calls, records the last request and answers from a per-token table that each test
//! changes at runtime.
#![cfg(all(feature = "introspection", feature = "axum"))]

mod support;

use std::time::{Duration, Instant};

use axum::{
    Router,
    http::{StatusCode, header},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use portcullis::{
    AuthError, BearerAuthLayer, ClientAuth, ErrorKind, Introspection, Jwt, JwtOrIntrospection,
    Principal,
};
use serde_json::{Value, json};
use support::introspection::{
    AUDIENCE, CLIENT_ID, CLIENT_SECRET, ISSUER, Signer, active, app, assert_accepted,
    assert_invalid_token, assert_unavailable, build, builder, now, now_secs, send,
    server::{IntrospectionServer, Mode, Recorded},
};
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------
// 1. What an answer must look like
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_active_answer_yields_its_principal() {
    let server = IntrospectionServer::start().await;
    let exp = now_secs() + 600;
    let mut answer = active("alice", "read write");
    answer["exp"] = json!(exp);
    server.answer("opaque-alice", answer);
    let app = app(build(builder(&server)));

    let body = assert_accepted(&send(&app, "/me", "opaque-alice").await, "active answer");
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["scopes"], json!(["read", "write"]));
    assert_eq!(body["iss"], ISSUER);
    assert_eq!(body["exp"], exp);
    assert_eq!(body["client_id"], "the-client");
    assert_eq!(server.calls(), 1);

    // RFC 7662 §2.2: only `active` is required; without `aud`, the audience waiver needs
    // `token_type` to tell an access token from a refresh token.
    server.answer(
        "opaque-bare",
        json!({"active": true, "token_type": "Bearer"}),
    );
    let body = assert_accepted(&send(&app, "/me", "opaque-bare").await, "bare answer");
    assert_eq!(body["sub"], Value::Null);
    assert_eq!(body["scopes"], json!([]));
    assert_eq!(body["iss"], ISSUER);
    assert_eq!(body["exp"], Value::Null);
}

#[tokio::test]
async fn anything_but_a_boolean_true_active_is_an_invalid_token() {
    let server = IntrospectionServer::start().await;
    let app = app(build(builder(&server)));
    let past = now_secs() - 3600;
    let future = now_secs() + 3600;
    let table: &[(&str, String)] = &[
        ("inactive", r#"{"active":false}"#.into()),
        (
            "inactive with claims",
            r#"{"active":false,"sub":"alice","scope":"read"}"#.into(),
        ),
        (
            "active as a string",
            r#"{"active":"true","sub":"alice"}"#.into(),
        ),
        ("active as a number", r#"{"active":1,"sub":"alice"}"#.into()),
        ("active null", r#"{"active":null,"sub":"alice"}"#.into()),
        ("active missing", r#"{"sub":"alice","scope":"read"}"#.into()),
        ("empty object", "{}".into()),
        ("an array", "[]".into()),
        ("an array holding an answer", r#"[{"active":true}]"#.into()),
        ("a bare true", "true".into()),
        ("null", "null".into()),
        (
            "exp as a string",
            r#"{"active":true,"token_type":"Bearer","exp":"x"}"#.into(),
        ),
        (
            "sub as a number",
            r#"{"active":true,"token_type":"Bearer","sub":5}"#.into(),
        ),
        (
            "active repeated",
            r#"{"active":false,"active":true}"#.into(),
        ),
        (
            "expired",
            format!(r#"{{"active":true,"token_type":"Bearer","exp":{past}}}"#),
        ),
        (
            "not yet valid",
            format!(r#"{{"active":true,"token_type":"Bearer","nbf":{future}}}"#),
        ),
        (
            "a refresh token",
            r#"{"active":true,"token_type":"refresh_token"}"#.into(),
        ),
        (
            "a DPoP-bound token",
            r#"{"active":true,"token_type":"DPoP","cnf":{"jkt":"abc"}}"#.into(),
        ),
        (
            "a certificate-bound token",
            r#"{"active":true,"token_type":"Bearer","cnf":{"x5t#S256":"abc"}}"#.into(),
        ),
    ];
    for (i, (case, answer)) in table.iter().enumerate() {
        let token = format!("opaque-{i}");
        server.answer_raw(&token, answer);
        let before = server.calls();
        let reply = send(&app, "/me", &token).await;
        assert_invalid_token(&reply, case);
        assert_eq!(server.calls(), before + 1, "{case}: one call");
    }
}

#[tokio::test]
async fn typed_claims_come_from_the_answer() {
    #[derive(serde::Deserialize)]
    struct TenantClaims {
        tenant: String,
    }

    let server = IntrospectionServer::start().await;
    let auth = builder(&server)
        .claims::<TenantClaims>()
        .build()
        .expect("valid configuration");
    let app = Router::new()
        .route(
            "/",
            get(|p: Principal<TenantClaims>| async move { p.claims().tenant.clone() }),
        )
        .layer(BearerAuthLayer::new(auth));

    let mut answer = active("alice", "read");
    answer["tenant"] = json!("acme");
    server.answer("with-tenant", answer);
    let reply = send(&app, "/", "with-tenant").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.body, "acme");

    // An answer the claims type cannot hold is refused, not half-read.
    server.answer("without-tenant", active("bob", "read"));
    assert_invalid_token(
        &send(&app, "/", "without-tenant").await,
        "answer without the typed claim",
    );
}

// ---------------------------------------------------------------------------------------
// 2. One call for many concurrent requests
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_for_a_new_token_share_one_call() {
    const WAVE: usize = 1000;
    let server = IntrospectionServer::start().await;
    server.answer("busy-token", active("alice", "read"));
    // Keeps the call open while all requests arrive.
    server.set_delay(Duration::from_millis(200));
    let app = app(build(builder(&server)));

    for wave in ["first", "second"] {
        let mut requests = JoinSet::new();
        for _ in 0..WAVE {
            let app = app.clone();
            requests.spawn(async move { send(&app, "/me", "busy-token").await });
        }
        let mut accepted = 0;
        while let Some(reply) = requests.join_next().await {
            let reply = reply.expect("request task");
            let body = assert_accepted(&reply, wave);
            assert_eq!(body["sub"], "alice");
            accepted += 1;
        }
        assert_eq!(accepted, WAVE);
        assert_eq!(server.calls(), 1, "{wave} wave: calls to the endpoint");
    }
}

#[cfg(feature = "tracing")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_call_shared_by_many_requests_is_logged_once() {
    // Its own issuer, so that its WARN lines can be told from the other tests'.
    const LOG_ISSUER: &str = "https://login.example.com/warn-once";
    let server = IntrospectionServer::start().await;
    server.set_mode(Mode::ServerError);
    // Long enough for all 50 requests to join the one call.
    server.set_delay(Duration::from_millis(1000));
    let app = app(build(builder(&server).issuer(LOG_ISSUER)));

    let mut requests = JoinSet::new();
    for _ in 0..50 {
        let app = app.clone();
        requests.spawn(async move { send(&app, "/me", "warn-once-token").await });
    }
    while let Some(reply) = requests.join_next().await {
        assert_unavailable(&reply.expect("request task"), "during the outage");
    }
    assert_eq!(server.calls(), 1, "the failed call is shared");
    let logs = support::introspection::captured_logs();
    let warnings = logs
        .lines()
        .filter(|line| line.contains("WARN") && line.contains(LOG_ISSUER))
        .count();
    assert_eq!(warnings, 1, "one WARN line for one failed call: {logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_during_an_outage_share_one_failed_call() {
    const WAVE: usize = 200;
    let server = IntrospectionServer::start().await;
    server.answer("outage-token", active("alice", "read"));
    server.set_mode(Mode::ServerError);
    server.set_delay(Duration::from_millis(200));
    let app = app(build(builder(&server)));

    let mut requests = JoinSet::new();
    for _ in 0..WAVE {
        let app = app.clone();
        requests.spawn(async move { send(&app, "/me", "outage-token").await });
    }
    while let Some(reply) = requests.join_next().await {
        assert_unavailable(&reply.expect("request task"), "during the outage");
    }
    assert_eq!(server.calls(), 1, "the failed call is shared");

    // The failure was not cached: once the endpoint is back, the token is accepted.
    server.set_mode(Mode::Normal);
    server.set_delay(Duration::ZERO);
    assert_accepted(&send(&app, "/me", "outage-token").await, "after the outage");
    assert_eq!(server.calls(), 2);
}

// ---------------------------------------------------------------------------------------
// 3. Positive entries live min(max TTL, exp − now)
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_cached_answer_expires_with_the_token() {
    let server = IntrospectionServer::start().await;
    let exp = now() + 2.0;
    server.answer(
        "short-lived",
        json!({"active": true, "token_type": "Bearer", "iss": ISSUER, "sub": "alice", "exp": exp}),
    );
    let app = app(build(
        builder(&server)
            .cache_max_ttl(Duration::from_secs(60))
            .leeway(Duration::ZERO),
    ));

    assert_accepted(&send(&app, "/me", "short-lived").await, "first request");
    assert_eq!(server.calls(), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_accepted(&send(&app, "/me", "short-lived").await, "before exp");
    assert_eq!(server.calls(), 1, "served from the cache before exp");

    // Past exp, well within the 60 s max TTL: the cached answer is gone, the endpoint is
    // asked again, and its (unchanged) answer is now expired.
    let past_exp = Duration::from_secs_f64((exp - now()).max(0.0)) + Duration::from_millis(300);
    tokio::time::sleep(past_exp).await;
    let reply = send(&app, "/me", "short-lived").await;
    assert_eq!(server.calls(), 2, "the endpoint is asked again after exp");
    assert_invalid_token(&reply, "after exp");
}

#[tokio::test]
async fn a_cached_answer_never_outlives_exp_even_with_the_leeway() {
    let server = IntrospectionServer::start().await;
    let exp = now() + 1.5;
    server.answer(
        "revoked-after-exp",
        json!({"active": true, "token_type": "Bearer", "iss": ISSUER, "sub": "alice", "exp": exp}),
    );
    // The default leeway (30 s) tolerates clock skew on a fresh answer; it must not stretch
    // the life of a cached one.
    let app = app(build(
        builder(&server).cache_max_ttl(Duration::from_secs(60)),
    ));

    assert_accepted(&send(&app, "/me", "revoked-after-exp").await, "before exp");
    assert_eq!(server.calls(), 1);
    // The issuer now calls the token inactive. Past exp, the cache must not answer for it.
    server.answer("revoked-after-exp", json!({"active": false}));
    let past_exp = Duration::from_secs_f64((exp - now()).max(0.0)) + Duration::from_millis(300);
    tokio::time::sleep(past_exp).await;
    let reply = send(&app, "/me", "revoked-after-exp").await;
    assert_eq!(server.calls(), 2, "the endpoint is asked again after exp");
    assert_invalid_token(&reply, "after exp, inactive at the issuer");
}

#[tokio::test]
async fn an_answer_with_a_far_future_exp_is_cached_for_the_max_ttl() {
    let server = IntrospectionServer::start().await;
    for (token, exp) in [
        ("far", json!(1e20)),
        ("year-9999", json!(253_402_300_799_i64)),
    ] {
        server.answer(
            token,
            json!({"active": true, "token_type": "Bearer", "iss": ISSUER, "sub": "alice", "exp": exp}),
        );
    }
    let app = app(build(builder(&server)));
    for token in ["far", "year-9999"] {
        let calls = server.calls();
        for _ in 0..3 {
            assert_accepted(&send(&app, "/me", token).await, token);
        }
        assert_eq!(server.calls(), calls + 1, "{token}: cached after one call");
    }
}

#[tokio::test]
async fn a_cached_answer_lives_at_most_the_max_ttl() {
    let server = IntrospectionServer::start().await;
    server.answer("revocable", active("alice", "read"));
    let app = app(build(
        builder(&server).cache_max_ttl(Duration::from_millis(300)),
    ));

    assert_accepted(&send(&app, "/me", "revocable").await, "first request");
    // Revoked at the issuer: still accepted from the cache until the max TTL has passed.
    server.answer("revocable", json!({"active": false}));
    assert_accepted(&send(&app, "/me", "revocable").await, "within the max TTL");
    assert_eq!(server.calls(), 1);

    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_invalid_token(&send(&app, "/me", "revocable").await, "after the max TTL");
    assert_eq!(server.calls(), 2);
}

// ---------------------------------------------------------------------------------------
// 4. Negative caching
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_inactive_answer_is_cached_for_the_negative_ttl() {
    let server = IntrospectionServer::start().await;
    server.answer("inactive", json!({"active": false}));
    let app = app(build(
        builder(&server).cache_negative_ttl(Duration::from_millis(300)),
    ));

    assert_invalid_token(&send(&app, "/me", "inactive").await, "first request");
    // Even if the issuer changes its mind, the refusal stands until the negative TTL ends.
    server.answer("inactive", active("alice", "read"));
    assert_invalid_token(&send(&app, "/me", "inactive").await, "second request");
    assert_eq!(server.calls(), 1, "the second refusal came from the cache");

    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_accepted(
        &send(&app, "/me", "inactive").await,
        "after the negative TTL",
    );
    assert_eq!(server.calls(), 2);
}

#[tokio::test]
async fn a_malformed_answer_is_cached_like_an_inactive_one() {
    let server = IntrospectionServer::start().await;
    server.answer_raw("malformed", "[]");
    let app = app(build(builder(&server)));
    for _ in 0..5 {
        assert_invalid_token(&send(&app, "/me", "malformed").await, "malformed answer");
    }
    assert_eq!(server.calls(), 1, "a refused answer is cached too");
}

// ---------------------------------------------------------------------------------------
// 5. The endpoint cannot be used → 503, nothing cached
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn an_unusable_endpoint_answers_503_and_nothing_is_cached() {
    let server = IntrospectionServer::start().await;
    let table = [
        (Mode::ServerError, "500"),
        (Mode::Unauthorized, "401"),
        (Mode::NotJson, "non-JSON"),
        (Mode::Oversized, "oversized"),
        (Mode::OversizedChunked, "oversized, chunked"),
        (Mode::Stall, "stalled"),
    ];
    for (mode, case) in table {
        let timeout = if mode == Mode::Stall {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(2)
        };
        let app = app(build(builder(&server).http_timeout(timeout)));
        let token = format!("token-{case}").replace([' ', ','], "-");
        server.answer(&token, active("alice", "read"));
        server.set_mode(mode);
        let before = server.calls();
        for attempt in 1..=2 {
            let started = Instant::now();
            let reply = send(&app, "/me", &token).await;
            assert_unavailable(&reply, &format!("{case}, attempt {attempt}"));
            assert!(
                started.elapsed() < Duration::from_secs(2),
                "{case}: took {:?}",
                started.elapsed()
            );
            assert_eq!(
                server.calls(),
                before + attempt,
                "{case}: the failure was not cached"
            );
        }
        server.set_mode(Mode::Normal);
        let body = assert_accepted(&send(&app, "/me", &token).await, case);
        assert_eq!(body["sub"], "alice", "{case}");
        assert_eq!(server.calls(), before + 3, "{case}");
    }
}

#[tokio::test]
async fn an_answer_just_under_the_size_cap_is_accepted() {
    let server = IntrospectionServer::start().await;
    let mut answer = active("alice", "read");
    answer["padding"] = Value::String("x".repeat(60 * 1024));
    assert!(answer.to_string().len() < 64 * 1024);
    server.answer("large", answer);
    let uncapped = app(build(builder(&server)));
    assert_accepted(&send(&uncapped, "/me", "large").await, "60 KiB answer");

    // A lower cap refuses the same answer.
    let capped = app(build(builder(&server).max_response_bytes(16 * 1024)));
    assert_unavailable(&send(&capped, "/me", "large").await, "over a 16 KiB cap");
}

#[tokio::test]
async fn a_closed_port_answers_503_and_nothing_is_cached() {
    let port_holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = port_holder.local_addr().expect("address");
    drop(port_holder);

    let auth = build(
        Introspection::builder()
            .issuer(ISSUER)
            .endpoint(format!("http://{addr}/introspect"))
            .client_credentials(CLIENT_ID, CLIENT_SECRET)
            .dangerous_accept_any_audience(true)
            .http_timeout(Duration::from_secs(2)),
    );
    let app = app(auth);
    for attempt in 1..=2 {
        assert_unavailable(
            &send(&app, "/me", "closed-port").await,
            &format!("connection refused, attempt {attempt}"),
        );
    }

    // The endpoint comes up on that port: the earlier failure was not cached.
    let server = IntrospectionServer::start_on(addr).await;
    server.answer("closed-port", active("alice", "read"));
    assert_accepted(&send(&app, "/me", "closed-port").await, "endpoint back up");
    assert_eq!(server.calls(), 1);
}

// ---------------------------------------------------------------------------------------
// 6. Issuer and audience of the answer
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_answers_issuer_and_audience_are_checked() {
    let server = IntrospectionServer::start().await;
    let with_audience = app(build(builder(&server).audience(AUDIENCE)));
    let without_audience = app(build(builder(&server)));

    let answer = |iss: Option<&str>, aud: Option<Value>| {
        let mut answer = active("alice", "read");
        match iss {
            Some(iss) => answer["iss"] = json!(iss),
            None => {
                answer.as_object_mut().expect("object").remove("iss");
            }
        }
        if let Some(aud) = aud {
            answer["aud"] = aud;
        }
        answer
    };

    // (case, answer, accepted with the audience configured, accepted without)
    let table = [
        (
            "matching",
            answer(Some(ISSUER), Some(json!(AUDIENCE))),
            true,
            true,
        ),
        (
            "audience in a list",
            answer(Some(ISSUER), Some(json!(["other", AUDIENCE]))),
            true,
            true,
        ),
        ("no iss", answer(None, Some(json!(AUDIENCE))), true, true),
        (
            "another issuer",
            answer(Some("https://evil.example.com"), Some(json!(AUDIENCE))),
            false,
            false,
        ),
        (
            "issuer with a trailing slash",
            answer(Some("https://login.example.com/"), Some(json!(AUDIENCE))),
            false,
            false,
        ),
        (
            "another audience",
            answer(Some(ISSUER), Some(json!("https://other.example.com"))),
            false,
            true,
        ),
        (
            "other audiences in a list",
            answer(Some(ISSUER), Some(json!(["a", "b"]))),
            false,
            true,
        ),
        ("no aud", answer(Some(ISSUER), None), false, true),
    ];
    for (i, (case, answer, with, without)) in table.into_iter().enumerate() {
        for (app, accepted, config) in [
            (&with_audience, with, "audience configured"),
            (&without_audience, without, "no audience configured"),
        ] {
            let token = format!("token-{i}-{}", config.len());
            server.answer(&token, answer.clone());
            let reply = send(app, "/me", &token).await;
            let context = format!("{case}, {config}");
            if accepted {
                assert_eq!(assert_accepted(&reply, &context)["sub"], "alice");
            } else {
                assert_invalid_token(&reply, &context);
                let why = reply.error.as_ref().map(AuthError::description);
                let expected = if case.contains("issuer") {
                    "issuer"
                } else {
                    "audience"
                };
                assert!(
                    why.is_some_and(|d| d.contains(expected)),
                    "{context}: refused for {why:?}, expected the {expected} check"
                );
            }
        }
    }
}

#[tokio::test]
async fn answers_without_aud_can_be_accepted_explicitly() {
    let server = IntrospectionServer::start().await;
    let lenient = app(build(
        builder(&server)
            .audience(AUDIENCE)
            .dangerous_accept_missing_audience(true),
    ));
    let strict = app(build(builder(&server).audience(AUDIENCE)));
    let with_aud = |aud: Option<Value>| {
        let mut answer = active("alice", "read");
        answer["iss"] = json!(ISSUER);
        if let Some(aud) = aud {
            answer["aud"] = aud;
        }
        answer
    };
    server.answer("no-aud", with_aud(None));
    server.answer("our-aud", with_aud(Some(json!([AUDIENCE]))));
    server.answer(
        "other-aud",
        with_aud(Some(json!("https://other.example.com"))),
    );
    server.answer("empty-aud", with_aud(Some(json!([]))));

    assert_accepted(&send(&lenient, "/me", "no-aud").await, "no aud");
    assert_accepted(&send(&lenient, "/me", "our-aud").await, "our aud");
    // A present `aud` is still checked.
    assert_invalid_token(&send(&lenient, "/me", "other-aud").await, "another aud");
    assert_invalid_token(
        &send(&lenient, "/me", "empty-aud").await,
        "an empty aud list",
    );
    // Without the option, an answer without `aud` is refused.
    assert_invalid_token(&send(&strict, "/me", "no-aud").await, "no aud, by default");
}

// ---------------------------------------------------------------------------------------
// 7. Client authentication and the request form
// ---------------------------------------------------------------------------------------

/// A token using every character of the `b64token` grammar that form encoding changes.
const ODD_TOKEN: &str = "abc+def/ghi.jkl_mno~pqr-stu==";

#[track_caller]
fn assert_form_carries_the_token(recorded: &Recorded) {
    assert_eq!(recorded.uri.path(), "/introspect");
    assert_eq!(recorded.uri.query(), None, "the token stays out of the URL");
    assert_eq!(
        recorded.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(recorded.field("token").as_deref(), Some(ODD_TOKEN));
    assert_eq!(
        recorded.field("token_type_hint").as_deref(),
        Some("access_token")
    );
}

#[tokio::test]
async fn client_secret_basic_sends_form_encoded_credentials_in_the_header() {
    let server = IntrospectionServer::start().await;
    server.answer(ODD_TOKEN, active("alice", "read"));
    // Basic is the default.
    let app = app(build(builder(&server)));
    assert_accepted(&send(&app, "/me", ODD_TOKEN).await, "basic");

    let recorded = server.last_request();
    assert_form_carries_the_token(&recorded);
    let authorization = recorded
        .authorization
        .clone()
        .expect("Authorization header");
    let encoded = authorization
        .strip_prefix("Basic ")
        .unwrap_or_else(|| panic!("not Basic: {authorization}"));
    let decoded = String::from_utf8(STANDARD.decode(encoded).expect("base64")).expect("UTF-8");
    // RFC 6749 §2.3.1: each part form-encoded before joining with ':'.
    assert_eq!(decoded, "resource+server:p%40ss%3Aword%26%3D%2B");
    let (id, secret) = decoded.split_once(':').expect("id:secret");
    let unform = |s: &str| {
        form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .expect("value")
            .1
            .into_owned()
    };
    assert_eq!(unform(id), CLIENT_ID);
    assert_eq!(unform(secret), CLIENT_SECRET);

    assert_eq!(recorded.field("client_secret"), None);
    assert!(
        !recorded.body.contains("p%40ss") && !recorded.body.contains(CLIENT_SECRET),
        "the secret is in the body: {}",
        recorded.body
    );

    // Stated explicitly, the same.
    let explicit = app_with(&server, ClientAuth::ClientSecretBasic);
    assert_accepted(&send(&explicit, "/me", ODD_TOKEN).await, "explicit basic");
    assert_eq!(server.last_request().authorization, Some(authorization));
}

fn app_with(server: &IntrospectionServer, method: ClientAuth) -> Router {
    app(build(builder(server).client_auth(method)))
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let server = IntrospectionServer::start().await;
    server.answer(ODD_TOKEN, active("alice", "read"));
    let app = app_with(&server, ClientAuth::ClientSecretPost);
    assert_accepted(&send(&app, "/me", ODD_TOKEN).await, "post");

    let recorded = server.last_request();
    assert_form_carries_the_token(&recorded);
    assert_eq!(recorded.authorization, None, "no Authorization header");
    assert_eq!(recorded.field("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(
        recorded.field("client_secret").as_deref(),
        Some(CLIENT_SECRET)
    );
}

// ---------------------------------------------------------------------------------------
// 8. Discovery of the endpoint
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn the_endpoint_is_discovered_from_the_issuer() {
    let server = IntrospectionServer::start().await;
    let issuer = server.base.clone();
    server.serve_discovery(json!({
        "issuer": issuer,
        "introspection_endpoint": server.endpoint(),
    }));
    let auth = Introspection::builder()
        .issuer(&issuer)
        .client_credentials(CLIENT_ID, CLIENT_SECRET)
        .dangerous_accept_any_audience(true)
        .http_timeout(Duration::from_secs(2))
        .build()
        .expect("valid configuration");
    let app = app(auth);

    for (i, token) in ["discovered-1", "discovered-2"].into_iter().enumerate() {
        let mut answer = active("alice", "read");
        answer["iss"] = json!(issuer);
        server.answer(token, answer);
        let body = assert_accepted(&send(&app, "/me", token).await, token);
        assert_eq!(body["iss"], issuer.as_str());
        assert_eq!(server.calls(), i + 1);
    }
    assert_eq!(server.discovery_calls(), 1, "the endpoint is remembered");
}

#[tokio::test]
async fn a_discovery_document_naming_another_issuer_answers_503() {
    let server = IntrospectionServer::start().await;
    let issuer = server.base.clone();
    server.serve_discovery(json!({
        "issuer": "https://evil.example.com",
        "introspection_endpoint": server.endpoint(),
    }));
    let mut answer = active("alice", "read");
    answer["iss"] = json!(issuer);
    server.answer("discovered", answer);
    let auth = Introspection::builder()
        .issuer(&issuer)
        .client_credentials(CLIENT_ID, CLIENT_SECRET)
        .dangerous_accept_any_audience(true)
        .http_timeout(Duration::from_secs(2))
        .build()
        .expect("valid configuration");
    let app = app(auth);

    assert_unavailable(&send(&app, "/me", "discovered").await, "issuer mismatch");
    assert!(server.discovery_calls() >= 1);
    assert_eq!(server.calls(), 0, "the named endpoint is not used");

    // A document without an endpoint cannot be used either.
    server.serve_discovery(json!({"issuer": issuer}));
    assert_unavailable(&send(&app, "/me", "discovered").await, "no endpoint");
    assert_eq!(server.calls(), 0);

    // Once the document is right, the same authenticator works: nothing bad was kept.
    server.serve_discovery(json!({
        "issuer": issuer,
        "introspection_endpoint": server.endpoint(),
    }));
    assert_accepted(&send(&app, "/me", "discovered").await, "document fixed");
    assert_eq!(server.calls(), 1);
}

// ---------------------------------------------------------------------------------------
// 9. Routing between local JWT validation and introspection
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn jwts_are_validated_locally_and_other_tokens_introspected() {
    let server = IntrospectionServer::start().await;
    let signer = Signer::new(include_bytes!("keys/rsa-a.pem"), "key-a");
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, signer.jwks())
        .audience(AUDIENCE)
        .build()
        .expect("valid configuration");
    let token = signer.token("jwt-user");
    // Were it introspected, the JWT would be answered for another subject.
    server.answer(&token, active("introspected-user", "read"));
    server.answer("opaque-token", active("opaque-user", "read"));

    let routed = app(JwtOrIntrospection::new(
        jwt.clone(),
        build(builder(&server)),
    ));
    let body = assert_accepted(&send(&routed, "/me", &token).await, "JWT");
    assert_eq!(body["sub"], "jwt-user");
    assert_eq!(server.calls(), 0, "a JWT never reaches the endpoint");

    let body = assert_accepted(&send(&routed, "/me", "opaque-token").await, "opaque");
    assert_eq!(body["sub"], "opaque-user");
    assert_eq!(server.calls(), 1);

    // A JWT that fails local validation is refused, not retried through introspection.
    let stranger = Signer::new(include_bytes!("keys/rsa-b.pem"), "key-a").token("jwt-user");
    server.answer(&stranger, active("introspected-user", "read"));
    assert_invalid_token(&send(&routed, "/me", &stranger).await, "JWT, wrong key");
    assert_eq!(server.calls(), 1);

    // Introspecting everything: the JWT goes to the endpoint too.
    let all = app(JwtOrIntrospection::new(jwt, build(builder(&server))).introspect_all(true));
    let body = assert_accepted(&send(&all, "/me", &token).await, "JWT, introspect_all");
    assert_eq!(body["sub"], "introspected-user");
    assert_eq!(server.calls(), 2);
    assert_eq!(server.last_request().field("token"), Some(token));
}

// ---------------------------------------------------------------------------------------
// 10. Per-route scopes on introspected principals
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn route_scopes_apply_to_introspected_principals() {
    let server = IntrospectionServer::start().await;
    server.answer("reader", active("alice", "read write"));
    server.answer("writer", active("bob", "write"));
    let app = app(build(builder(&server)));

    let body = assert_accepted(&send(&app, "/items", "reader").await, "reader on /items");
    assert_eq!(body["sub"], "alice");

    let reply = send(&app, "/items", "writer").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{reply:?}");
    let challenge = reply.header(header::WWW_AUTHENTICATE).expect("challenge");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="read""#),
        "{challenge}"
    );
    assert_eq!(
        reply.error.as_ref().map(AuthError::kind),
        Some(ErrorKind::InsufficientScope)
    );

    // The same principal passes where no scope is required, from the cache.
    let body = assert_accepted(&send(&app, "/me", "writer").await, "writer on /me");
    assert_eq!(body["sub"], "bob");
    assert_eq!(server.calls(), 2);
}

// ---------------------------------------------------------------------------------------
// 11. The token stays out of responses (and logs)
// ---------------------------------------------------------------------------------------
//
// That the cache key is a digest and not the token cannot be observed from outside the
// crate (the moka cache is private), so it is not tested here.

#[tokio::test]
async fn the_token_never_appears_in_responses_or_logs() {
    // Its own issuer, so that its WARN line can be told from the other tests'.
    const LOG_ISSUER: &str = "https://login.example.com/log-test";
    let server = IntrospectionServer::start().await;
    let app = app(build(builder(&server).issuer(LOG_ISSUER)));
    let tokens = [
        ("accepted", "SeCrEt-ToKeN-accepted-7f3a"),
        ("inactive", "SeCrEt-ToKeN-inactive-7f3a"),
        ("insufficient scope", "SeCrEt-ToKeN-scope-7f3a"),
        ("unavailable", "SeCrEt-ToKeN-outage-7f3a"),
    ];
    let answer = |sub: &str, scope: &str| {
        let mut answer = active(sub, scope);
        answer["iss"] = json!(LOG_ISSUER);
        answer
    };
    server.answer(tokens[0].1, answer("alice", "read"));
    server.answer(tokens[1].1, json!({"active": false}));
    server.answer(tokens[2].1, answer("bob", "write"));
    server.answer(tokens[3].1, answer("carol", "read"));

    let mut replies = Vec::new();
    for (i, case) in tokens.into_iter().enumerate() {
        if i == 3 {
            server.set_mode(Mode::ServerError);
        }
        replies.push((case, send(&app, "/items", case.1).await));
    }

    let statuses: Vec<u16> = replies.iter().map(|(_, r)| r.status.as_u16()).collect();
    assert_eq!(statuses, [200, 401, 403, 503], "each outcome is covered");
    for ((case, token), reply) in &replies {
        for (name, value) in &reply.headers {
            assert!(
                !String::from_utf8_lossy(value.as_bytes()).contains(token),
                "{case}: the token is in the {name} header"
            );
        }
        assert!(
            !String::from_utf8_lossy(&reply.body).contains(token),
            "{case}: the token is in the body"
        );
        let described = reply.error.as_ref().map(|e| format!("{e} {e:?}"));
        assert!(
            !described.is_some_and(|d| d.contains(token)),
            "{case}: the token is in the AuthError"
        );
    }

    #[cfg(feature = "tracing")]
    {
        let logs = support::introspection::captured_logs();
        assert!(
            logs.lines().any(|line| line.contains("WARN")
                && line.contains("token introspection failed")
                && line.contains(LOG_ISSUER)),
            "the failure was logged at WARN: {logs}"
        );
        assert!(
            logs.contains("request rejected"),
            "rejections were logged: {logs}"
        );
        for (case, token) in tokens {
            assert!(
                !logs.contains(token),
                "{case}: the token is in the logs: {logs}"
            );
        }
        assert!(
            !logs.contains("p@ss") && !logs.contains("p%40ss"),
            "the client secret is in the logs: {logs}"
        );
    }
}
