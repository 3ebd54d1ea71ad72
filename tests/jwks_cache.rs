//! The key cache against a real (in-process) issuer on `127.0.0.1:0`: discovery, rotation,
//! single-flight refetches, the cooldown, stale keys during outages, timeouts and size caps.
//!
//! Timings use short TTLs and cooldowns set in the builder, with margins of at least 100 ms.

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use portcullis::{ErrorKind, Jwt, JwtBuilder};
use support::issuer::{
    AUDIENCE, Answer, Discovery, IssuerServer, JwksMode, TestKey, app, call, closed_port_url,
    default_claims, jwks, mint,
};

/// Trusts `server` through its `jwks_uri` (no discovery).
fn with_jwks_uri(server: &IssuerServer) -> JwtBuilder {
    Jwt::builder()
        .issuer_with_jwks_uri(server.issuer(), server.jwks_uri())
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
}

/// Trusts `server` through discovery.
fn discovering(server: &IssuerServer) -> JwtBuilder {
    Jwt::builder()
        .issuer(server.issuer())
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
}

fn token(server: &IssuerServer, key: &TestKey) -> String {
    mint(key, default_claims(server.issuer(), AUDIENCE))
}

/// Waits (bounded) until `condition` holds.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(3);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn assert_unavailable(answer: &Answer, max_retry_after: u64) {
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        answer.error
    );
    let after = answer.retry_after().expect("Retry-After on 503");
    assert!(
        (1..=max_retry_after).contains(&after),
        "Retry-After {after} not in 1..={max_retry_after}"
    );
    assert!(
        answer.challenge().is_none(),
        "the client's token is not at fault"
    );
    assert_eq!(
        answer.error.as_ref().map(|e| e.kind()),
        Some(ErrorKind::Unavailable)
    );
}

#[tokio::test]
async fn keys_are_found_through_openid_discovery() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let app = app(discovering(&server).build().expect("config"));

    let answer = call(&app, "/me", Some(&token(&server, &key))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(answer.json()["iss"], server.issuer());
    assert_eq!(
        (server.oidc_hits(), server.oauth_hits(), server.jwks_hits()),
        (1, 0, 1)
    );

    // Cached: no more requests to the issuer.
    for _ in 0..3 {
        assert_eq!(
            call(&app, "/me", Some(&token(&server, &key))).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(server.total_hits(), 2);
}

#[tokio::test]
async fn discovery_falls_back_to_rfc8414_metadata() {
    // OIDC answers 404, or 200 with a body that is not metadata: RFC 8414 is asked next.
    for (discovery, why) in [
        (Discovery::Rfc8414, "OIDC first (404), then RFC 8414"),
        (
            Discovery::BrokenOidc,
            "OIDC first (not metadata), then RFC 8414",
        ),
    ] {
        let key = TestKey::ec_p256();
        let server = IssuerServer::start_with(discovery, jwks(&[&key])).await;
        let app = app(discovering(&server).build().expect("config"));

        let answer = call(&app, "/me", Some(&token(&server, &key))).await;
        assert_eq!(answer.status, StatusCode::OK, "{why}: {:?}", answer.error);
        assert_eq!(
            (server.oidc_hits(), server.oauth_hits(), server.jwks_hits()),
            (1, 1, 1),
            "{why}"
        );
    }
}

#[tokio::test]
async fn a_discovery_document_for_another_issuer_yields_no_keys() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    // The trailing-slash variant of our own issuer: close, but not equal.
    let other = format!("{}/", server.issuer());
    server.set_discovered_issuer(Some(&other));

    let jwt = discovering(&server).build().expect("config");
    let error = jwt.refresh().await.expect_err("no keys");
    assert_eq!(error.kind(), ErrorKind::Unavailable);

    let app = app(discovering(&server).build().expect("config"));
    let answer = call(&app, "/me", Some(&token(&server, &key))).await;
    assert_unavailable(&answer, 30);
    assert_eq!(
        server.jwks_hits(),
        0,
        "keys of an issuer that is not ours are never fetched"
    );
    assert!(server.discovery_hits() >= 1);
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch() {
    let old = TestKey::rsa_a().with_kid("2024");
    let new = TestKey::rsa_b().with_kid("2025");
    let server = IssuerServer::start(jwks(&[&old])).await;
    let cooldown = Duration::from_millis(200);
    let jwt = with_jwks_uri(&server)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);

    assert_eq!(
        call(&app, "/me", Some(&token(&server, &old))).await.status,
        StatusCode::OK
    );
    assert_eq!(server.jwks_hits(), 1);

    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    server.set_jwks(jwks(&[&new]));
    let answer = call(&app, "/me", Some(&token(&server, &new))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(server.jwks_hits(), 2, "exactly one refetch");

    // The retired key is gone with the old set.
    let answer = call(&app, "/me", Some(&token(&server, &old))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), Some("invalid_token"));
    assert_eq!(server.jwks_hits(), 2);
}

async fn concurrent_requests(app: &axum::Router, token: &str, n: usize) -> Vec<StatusCode> {
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let app = app.clone();
        let token = token.to_owned();
        tasks.push(tokio::spawn(async move {
            call(&app, "/me", Some(&token)).await.status
        }));
    }
    let mut statuses = Vec::with_capacity(n);
    for task in tasks {
        statuses.push(task.await.expect("request task"));
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_a_new_kid_share_one_fetch() {
    let old = TestKey::rsa_a().with_kid("old");
    let new = TestKey::ec_p256().with_kid("new");
    let server = IssuerServer::start(jwks(&[&old])).await;
    // No cooldown at all: only the sharing of the in-flight fetch can keep the count at one.
    let jwt = with_jwks_uri(&server)
        .jwks_refresh_cooldown(Duration::ZERO)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);
    assert_eq!(server.jwks_hits(), 1);

    server.set_jwks(jwks(&[&old, &new]));
    // Slow enough that every request arrives while the fetch is in flight.
    server.set_mode(JwksMode::Delay(Duration::from_millis(300)));
    let statuses = concurrent_requests(&app, &token(&server, &new), 50).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(server.jwks_hits(), 2, "50 requests, one fetch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_first_requests_share_one_discovery_and_one_fetch() {
    let key = TestKey::ed25519();
    let server = IssuerServer::start(jwks(&[&key])).await;
    server.set_mode(JwksMode::Delay(Duration::from_millis(200)));
    let app = app(discovering(&server)
        .jwks_refresh_cooldown(Duration::ZERO)
        .build()
        .expect("config"));

    let statuses = concurrent_requests(&app, &token(&server, &key), 50).await;

    assert!(
        statuses.iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_cooldown() {
    let known = TestKey::rsa_a();
    let x = TestKey::rsa_b().with_kid("x");
    let y = TestKey::ec_p256().with_kid("y");
    let server = IssuerServer::start(jwks(&[&known])).await;
    let cooldown = Duration::from_millis(400);
    let jwt = with_jwks_uri(&server)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);
    let status = |answer: Answer| answer.status;

    // Within the cooldown of the warm-up: no fetch.
    let answer = call(&app, "/me", Some(&token(&server, &x))).await;
    assert_eq!(answer.error_code(), Some("invalid_token"));
    assert_eq!(server.jwks_hits(), 1);

    // After the cooldown: one fetch (x is still unknown).
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    assert_eq!(
        status(call(&app, "/me", Some(&token(&server, &x))).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.jwks_hits(), 2);

    // A second unknown kid right after: no new fetch, even once the issuer has it.
    assert_eq!(
        status(call(&app, "/me", Some(&token(&server, &y))).await),
        StatusCode::UNAUTHORIZED
    );
    server.set_jwks(jwks(&[&known, &y]));
    assert_eq!(
        status(call(&app, "/me", Some(&token(&server, &y))).await),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(server.jwks_hits(), 2);

    // Once the cooldown has passed again: fetched, and accepted.
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    assert_eq!(
        status(call(&app, "/me", Some(&token(&server, &y))).await),
        StatusCode::OK
    );
    assert_eq!(server.jwks_hits(), 3);
    // Known keys never needed a fetch.
    assert_eq!(
        status(call(&app, "/me", Some(&token(&server, &known))).await),
        StatusCode::OK
    );
    assert_eq!(server.jwks_hits(), 3);
}

#[tokio::test]
async fn a_bad_signature_under_a_known_kid_never_fetches() {
    let known = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&known])).await;
    let cooldown = Duration::from_millis(100);
    let jwt = with_jwks_uri(&server)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);
    // Past the cooldown: a fetch would be allowed now.
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;

    let forged = [
        // Another RSA key claiming the known kid.
        TestKey::rsa_b().with_kid(&known.kid),
        // Another key type (ES256) claiming the known kid.
        TestKey::ec_p256().with_kid(&known.kid),
    ];
    for signer in &forged {
        let answer = call(&app, "/me", Some(&token(&server, signer))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{:?}", signer.alg);
        assert_eq!(answer.error_code(), Some("invalid_token"));
    }
    assert_eq!(server.jwks_hits(), 1, "no fetch for a known kid");

    // Control: an unknown kid at this point does fetch.
    let unknown = TestKey::rsa_b().with_kid("unknown");
    call(&app, "/me", Some(&token(&server, &unknown))).await;
    assert_eq!(server.jwks_hits(), 2);
}

#[tokio::test]
async fn stale_keys_serve_during_an_outage_until_max_stale() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let ttl = Duration::from_millis(300);
    let max_stale = Duration::from_millis(700);
    let cooldown = Duration::from_millis(100);
    let jwt = with_jwks_uri(&server)
        .jwks_ttl(ttl)
        .jwks_max_stale(max_stale)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let loaded = Instant::now();
    let app = app(jwt);
    let token = token(&server, &key);

    server.set_mode(JwksMode::Fail);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    // Past the TTL, the issuer failing: the stale keys still serve, a refresh is tried.
    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    eventually("a background refresh was tried", || server.jwks_hits() >= 2).await;
    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);

    // Past max_stale: 503.
    tokio::time::sleep((loaded + ttl + max_stale + Duration::from_millis(150)) - Instant::now())
        .await;
    let answer = call(&app, "/me", Some(&token)).await;
    assert_unavailable(&answer, 1);

    // The issuer is back: after the cooldown, the next request fetches and passes.
    server.set_mode(JwksMode::Normal);
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let before = server.jwks_hits();
    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(server.jwks_hits(), before + 1);
}

#[tokio::test]
async fn stale_keys_answer_at_once_while_the_refresh_runs_in_the_background() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let ttl = Duration::from_millis(200);
    let jwt = with_jwks_uri(&server)
        .jwks_ttl(ttl)
        .jwks_refresh_cooldown(Duration::from_millis(50))
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);
    let token = token(&server, &key);

    let delay = Duration::from_millis(1500);
    server.set_mode(JwksMode::Delay(delay));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;

    let started = Instant::now();
    let answer = call(&app, "/me", Some(&token)).await;
    let took = started.elapsed();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        took < delay / 2,
        "the request waited for the refresh: {took:?}"
    );
    eventually("the background refresh reached the issuer", || {
        server.jwks_hits() == 2
    })
    .await;
}

#[tokio::test]
async fn no_keys_and_the_issuer_down_is_503_without_hammering_it() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    server.set_mode(JwksMode::Fail);
    let app = app(with_jwks_uri(&server)
        .jwks_refresh_cooldown(Duration::from_secs(5))
        .build()
        .expect("config"));
    let token = token(&server, &key);

    let answer = call(&app, "/me", Some(&token)).await;
    assert_unavailable(&answer, 5);
    assert_eq!(server.jwks_hits(), 1);

    // Within the cooldown: answered at once, the issuer is left alone.
    for _ in 0..3 {
        let answer = call(&app, "/me", Some(&token)).await;
        assert_unavailable(&answer, 5);
    }
    assert_eq!(server.jwks_hits(), 1);

    // The issuer is back, but the cooldown still holds.
    server.set_mode(JwksMode::Normal);
    assert_unavailable(&call(&app, "/me", Some(&token)).await, 5);
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn an_issuer_nobody_listens_on_is_503() {
    let key = TestKey::rsa_a();
    let issuer = closed_port_url("").await;
    let app = app(Jwt::builder()
        .issuer(issuer.clone())
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
        .build()
        .expect("config"));
    let started = Instant::now();
    let answer = call(
        &app,
        "/me",
        Some(&mint(&key, default_claims(&issuer, AUDIENCE))),
    )
    .await;
    assert_unavailable(&answer, 30);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn a_stalled_issuer_times_out_into_503() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    server.set_mode(JwksMode::Delay(Duration::from_secs(30)));
    let timeout = Duration::from_millis(300);
    let app = app(with_jwks_uri(&server)
        .http_timeout(timeout)
        .build()
        .expect("config"));

    let started = Instant::now();
    let answer = call(&app, "/me", Some(&token(&server, &key))).await;
    let took = started.elapsed();
    assert_unavailable(&answer, 30);
    assert!(took >= timeout, "answered before the timeout: {took:?}");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert_eq!(server.jwks_hits(), 1);
}

#[tokio::test]
async fn an_oversized_key_set_is_refused() {
    let key = TestKey::rsa_a();
    for mode in [
        JwksMode::Oversized(8 * 1024),
        JwksMode::OversizedChunked(8 * 1024),
    ] {
        let server = IssuerServer::start(jwks(&[&key])).await;
        server.set_mode(mode.clone());
        let token = token(&server, &key);

        let small = app(with_jwks_uri(&server)
            .max_response_bytes(4 * 1024)
            .build()
            .expect("config"));
        let answer = call(&small, "/me", Some(&token)).await;
        assert_unavailable(&answer, 30);

        // Control: the same document under a larger cap is accepted.
        let large = app(with_jwks_uri(&server)
            .max_response_bytes(16 * 1024)
            .build()
            .expect("config"));
        let answer = call(&large, "/me", Some(&token)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{mode:?}: {:?}",
            answer.error
        );
    }
}

#[tokio::test]
async fn a_redirect_from_the_jwks_endpoint_is_not_followed() {
    let attacker_key = TestKey::rsa_b().with_kid("attacker");
    let attacker = IssuerServer::start(jwks(&[&attacker_key])).await;
    let server = IssuerServer::start(jwks(&[&TestKey::rsa_a()])).await;
    server.set_mode(JwksMode::Redirect(attacker.jwks_uri()));
    let app = app(with_jwks_uri(&server).build().expect("config"));

    let answer = call(&app, "/me", Some(&token(&server, &attacker_key))).await;
    assert_unavailable(&answer, 30);
    assert_eq!(server.jwks_hits(), 1);
    assert_eq!(attacker.total_hits(), 0, "the redirect was followed");
}

#[tokio::test]
async fn an_empty_or_invalid_key_set_counts_as_a_failure() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let token = token(&server, &key);
    for body in [
        r#"{"keys":[]}"#,
        r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#,
        "<html>",
        "",
    ] {
        server.set_jwks(body.to_owned());
        let app = app(with_jwks_uri(&server).build().expect("config"));
        let answer = call(&app, "/me", Some(&token)).await;
        assert_unavailable(&answer, 30);
    }
}

#[tokio::test]
async fn the_configured_ttl_bounds_cache_control_max_age() {
    let key = TestKey::rsa_a();
    let short = Duration::from_millis(200);
    let long = Duration::from_secs(3600);
    // (configured TTL, Cache-Control, refetched 300 ms later?)
    let table = [
        (short, None, true),
        // A longer max-age never extends the configured TTL.
        (short, Some("public, max-age=86400"), true),
        (short, Some("max-age=1"), true),
        // A shorter one is honoured down to a 60 s floor, so it causes no refetch storm.
        (long, Some("max-age=1"), false),
        (long, None, false),
    ];
    for (ttl, cache_control, refetch) in table {
        let server = IssuerServer::start(jwks(&[&key])).await;
        server.set_cache_control(cache_control);
        let jwt = with_jwks_uri(&server)
            .jwks_ttl(ttl)
            .jwks_refresh_cooldown(Duration::ZERO)
            .build()
            .expect("config");
        jwt.refresh().await.expect("warm-up");
        let app = app(jwt);
        tokio::time::sleep(short + Duration::from_millis(100)).await;

        let answer = call(&app, "/me", Some(&token(&server, &key))).await;
        assert_eq!(answer.status, StatusCode::OK);
        if refetch {
            eventually("the keys were refetched after the TTL", || {
                server.jwks_hits() == 2
            })
            .await;
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            assert_eq!(server.jwks_hits(), 1, "{cache_control:?}");
        }
    }
}

#[tokio::test]
async fn a_removed_key_stops_verifying_after_the_configured_ttl_whatever_max_age_says() {
    let (old, new) = (TestKey::rsa_a(), TestKey::rsa_b());
    let server = IssuerServer::start(jwks(&[&old, &new])).await;
    server.set_cache_control(Some("public, max-age=86400"));
    let ttl = Duration::from_millis(300);
    let jwt = with_jwks_uri(&server)
        .jwks_ttl(ttl)
        .jwks_refresh_cooldown(Duration::ZERO)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);
    let old_token = token(&server, &old);
    assert_eq!(
        call(&app, "/me", Some(&old_token)).await.status,
        StatusCode::OK
    );

    // The issuer revokes the old key; the day-long max-age must not keep it alive.
    server.set_jwks(jwks(&[&new]));
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let _first = call(&app, "/me", Some(&old_token)).await; // may be served stale while refetching
    eventually("the key set was refetched", || server.jwks_hits() == 2).await;
    let answer = call(&app, "/me", Some(&old_token)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        answer.error
    );
    assert_eq!(answer.error_code(), Some("invalid_token"));
    assert_eq!(
        call(&app, "/me", Some(&token(&server, &new))).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn refresh_warms_the_cache_so_the_first_request_needs_no_fetch() {
    let key = TestKey::ec_p384();
    let server = IssuerServer::start(jwks(&[&key])).await;
    let jwt = discovering(&server).build().expect("config");

    jwt.refresh().await.expect("warm-up");
    assert_eq!((server.discovery_hits(), server.jwks_hits()), (1, 1));

    let app = app(jwt);
    let started = Instant::now();
    let answer = call(&app, "/me", Some(&token(&server, &key))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(server.total_hits(), 2, "the first request fetched nothing");

    // A warm-up against a failing issuer reports it.
    let down = IssuerServer::start(jwks(&[&key])).await;
    down.set_mode(JwksMode::Fail);
    let error = with_jwks_uri(&down)
        .build()
        .expect("config")
        .refresh()
        .await
        .expect_err("the issuer is failing");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(error.retry_after().is_some());
}

#[tokio::test]
async fn a_client_honouring_retry_after_is_not_turned_away_by_the_cooldown() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    server.set_mode(JwksMode::Fail);
    let cooldown = Duration::from_secs(2);
    let app = app(with_jwks_uri(&server)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config"));
    let token = token(&server, &key);

    let answer = call(&app, "/me", Some(&token)).await;
    assert_unavailable(&answer, 2);
    let after = answer.retry_after().expect("Retry-After");
    let exact = answer
        .error
        .as_ref()
        .and_then(|e| e.retry_after())
        .expect("retry_after");

    // The issuer recovers; the client waits exactly as long as it was told to.
    server.set_mode(JwksMode::Normal);
    tokio::time::sleep(Duration::from_secs(after)).await;
    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "told to retry after {after} s (the cooldown had {exact:?} left), but turned away again"
    );
}

#[tokio::test]
async fn warming_up_a_static_issuer_logs_no_failure() {
    let logs = support::issuer::logs();
    let key = TestKey::rsa_a();
    let issuer = "https://static-warm-up.example.com";
    let jwt = Jwt::builder()
        .issuer_with_jwks(issuer, jwks(&[&key]))
        .audience(AUDIENCE)
        .build()
        .expect("config");

    jwt.refresh().await.expect("static keys are always there");
    // Leave any task the warm-up spawned time to finish.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = logs.text();
    assert!(
        !text.contains(issuer),
        "a warm-up of fixed keys logged something for the on-call engineer:\n{text}"
    );

    // Control: a failing issuer's warm-up is logged, with the issuer.
    let server = IssuerServer::start(jwks(&[&key])).await;
    server.set_mode(JwksMode::Fail);
    let jwt = with_jwks_uri(&server).build().expect("config");
    jwt.refresh().await.expect_err("the issuer is failing");
    let text = logs.text();
    assert!(
        text.lines()
            .any(|l| l.contains("WARN") && l.contains(server.issuer())),
        "no warning naming {} in:\n{text}",
        server.issuer()
    );
}

#[tokio::test]
async fn a_fetch_completes_even_when_every_waiter_gives_up() {
    let key = TestKey::rsa_a();
    let server = IssuerServer::start(jwks(&[&key])).await;
    server.set_mode(JwksMode::Delay(Duration::from_millis(300)));
    // No cooldown: if the abandoned fetch did not install the keys, the next request would
    // fetch again.
    let app = app(with_jwks_uri(&server)
        .jwks_refresh_cooldown(Duration::ZERO)
        .build()
        .expect("config"));
    let token = token(&server, &key);

    let gave_up =
        tokio::time::timeout(Duration::from_millis(100), call(&app, "/me", Some(&token))).await;
    assert!(gave_up.is_err(), "the request should still be waiting");
    eventually("the fetch reached the issuer", || server.jwks_hits() == 1).await;

    tokio::time::sleep(Duration::from_millis(400)).await;
    let answer = call(&app, "/me", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(
        server.jwks_hits(),
        1,
        "the abandoned fetch installed the keys"
    );
}

/// A token of `server` for `sub`, signed by `key`, whose header names no `kid`.
fn kidless_token(server: &IssuerServer, key: &TestKey, sub: &str) -> String {
    let header = serde_json::json!({ "alg": support::issuer::alg_name(key.alg), "typ": "at+jwt" });
    let mut claims = default_claims(server.issuer(), AUDIENCE);
    claims["sub"] = serde_json::json!(sub);
    support::issuer::mint_with_header(key, header, claims)
}

#[tokio::test]
async fn a_token_without_kid_is_checked_against_each_key_that_fits_its_alg() {
    // Mid-rotation: two RSA keys and an EC key, the token names none of them.
    let old = TestKey::rsa_a().with_kid("old");
    let new = TestKey::rsa_b().with_kid("new");
    let ec = TestKey::ec_p256();
    let server = IssuerServer::start(jwks(&[&old, &new, &ec])).await;
    let app = app(with_jwks_uri(&server).build().expect("config"));
    let kidless = |key: &TestKey, sub: &str| kidless_token(&server, key, sub);

    for key in [&old, &new, &ec] {
        let answer = call(&app, "/me", Some(&kidless(key, "user-1"))).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{}: {:?}",
            key.kid,
            answer.error
        );
        assert_eq!(answer.json()["sub"], "user-1");
    }
    // Another subject under a signature made for the first: no key verifies it.
    let genuine = kidless(&old, "user-1");
    let forged_claims = kidless(&new, "mallory");
    let (Some(signature), Some(payload)) =
        (genuine.rsplit('.').next(), forged_claims.split('.').nth(1))
    else {
        panic!("compact tokens");
    };
    let header = genuine.split('.').next().unwrap_or_default();
    let forged = format!("{header}.{payload}.{signature}");
    let answer = call(&app, "/me", Some(&forged)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.error_code(), Some("invalid_token"));
    assert_eq!(
        server.jwks_hits(),
        1,
        "no refetch within the cooldown after the first fetch"
    );
}

#[tokio::test]
async fn a_token_without_kid_from_a_key_not_yet_fetched_refetches_once() {
    let old = TestKey::rsa_a().with_kid("old");
    let server = IssuerServer::start(jwks(&[&old])).await;
    let app = app(with_jwks_uri(&server)
        // Long enough for five slow (debug, RustCrypto) forged requests to fit in one.
        .jwks_refresh_cooldown(Duration::from_secs(1))
        .build()
        .expect("config"));
    let kidless = |key: &TestKey| kidless_token(&server, key, "user-1");
    let answer = call(&app, "/me", Some(&kidless(&old))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(server.jwks_hits(), 1);

    // The issuer starts signing with a new RSA key, without `kid`.
    let new = TestKey::rsa_b().with_kid("new");
    server.set_jwks(jwks(&[&old, &new]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let answer = call(&app, "/me", Some(&kidless(&new))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(server.jwks_hits(), 2, "one refetch found the new key");

    // A forged kid-less token refetches at most once per cooldown, not once per request.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = std::time::Instant::now();
    let mut forged = kidless(&new);
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    for _ in 0..5 {
        let answer = call(&app, "/me", Some(&forged)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "the five requests took longer than the cooldown; the count below would not hold"
    );
    assert_eq!(server.jwks_hits(), 3, "one refetch for five forged tokens");
}

#[tokio::test]
async fn a_warm_up_warms_every_issuer_even_when_one_fails() {
    let key_a = TestKey::rsa_a();
    let key_b = TestKey::ec_p256();
    let a = IssuerServer::start(jwks(&[&key_a])).await;
    let b = IssuerServer::start(jwks(&[&key_b])).await;
    // The first issuer fails: the second must be warmed all the same.
    a.set_mode(JwksMode::Fail);
    let jwt = Jwt::builder()
        .issuer(a.issuer())
        .issuer(b.issuer())
        .audience(AUDIENCE)
        .build()
        .expect("config");

    let error = jwt.refresh().await.expect_err("issuer A is failing");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert_eq!((a.jwks_hits(), b.jwks_hits()), (1, 1), "both were asked");

    let app = app(jwt);
    let answer = call(&app, "/me", Some(&token(&b, &key_b))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(b.total_hits(), 2, "B's keys were cached by the warm-up");
}

#[tokio::test]
async fn a_failed_warm_up_names_each_failing_issuer_and_why() {
    let key = TestKey::rsa_a();
    let failing = IssuerServer::start(jwks(&[&key])).await;
    failing.set_mode(JwksMode::Fail);
    let malformed = IssuerServer::start(r#"{"keys": "not a list"}"#.to_owned()).await;
    let healthy = IssuerServer::start(jwks(&[&key])).await;
    let unreachable_jwks = closed_port_url("/jwks").await;
    let unreachable = unreachable_jwks.trim_end_matches("/jwks").to_owned();
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(failing.issuer(), failing.jwks_uri())
        .issuer_with_jwks_uri(malformed.issuer(), malformed.jwks_uri())
        .issuer_with_jwks_uri(healthy.issuer(), healthy.jwks_uri())
        .issuer_with_jwks_uri(&unreachable, &unreachable_jwks)
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
        .build()
        .expect("config");

    let error = jwt.refresh().await.expect_err("three issuers are failing");
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    assert!(error.retry_after().is_some());
    let message = error.to_string();
    for (issuer, cause) in [
        (failing.issuer(), "unexpected status 500"),
        (malformed.issuer(), "not a JWK Set document"),
        (unreachable.as_str(), "transport error"),
    ] {
        let named = format!("issuer `{issuer}`: {cause}");
        assert!(
            message.contains(&named),
            "{named:?} missing from {message:?}"
        );
    }
    assert!(
        !message.contains(healthy.issuer()),
        "the healthy issuer is not blamed: {message:?}"
    );
    assert_eq!(healthy.jwks_hits(), 1, "the healthy issuer was warmed");
    // The detail is for the operator: what a client would be told stays fixed.
    assert!(!error.public_description().contains("127.0.0.1"));
    assert!(!error.description().contains("127.0.0.1"));
}

#[tokio::test]
async fn a_failed_warm_up_shows_issuer_urls_redacted() {
    let key = TestKey::rsa_a();
    let failing = IssuerServer::start(jwks(&[&key])).await;
    failing.set_mode(JwksMode::Fail);
    // An issuer identifier carrying credentials: they never reach the message.
    let port = failing.issuer().rsplit(':').next().expect("a port");
    let issuer = format!("http://user:s3cret@127.0.0.1:{port}");
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(&issuer, failing.jwks_uri())
        .audience(AUDIENCE)
        .http_timeout(Duration::from_secs(2))
        .build()
        .expect("config");

    let message = jwt.refresh().await.expect_err("failing").to_string();
    assert!(
        message.contains(&format!(
            "issuer `http://***@127.0.0.1:{port}/`: unexpected status 500"
        )),
        "{message}"
    );
    assert!(
        !message.contains("s3cret") && !message.contains("user:"),
        "{message}"
    );
    // The same for the bounded warm-up's error.
    let not_ready = jwt
        .warm_up(Duration::ZERO)
        .await
        .expect_err("failing")
        .to_string();
    assert!(
        not_ready.contains(&format!("issuer `http://***@127.0.0.1:{port}/`")),
        "{not_ready}"
    );
    assert!(!not_ready.contains("s3cret"), "{not_ready}");
}

#[tokio::test]
async fn each_issuer_has_its_own_keys_and_cache() {
    let key_a = TestKey::rsa_a().with_kid("shared-kid");
    let key_b = TestKey::ec_p256().with_kid("shared-kid");
    let a = IssuerServer::start(jwks(&[&key_a])).await;
    let b = IssuerServer::start_with(Discovery::Rfc8414, jwks(&[&key_b])).await;
    let jwt = Jwt::builder()
        .issuer(a.issuer())
        .issuer(b.issuer())
        .audience(AUDIENCE)
        .jwks_refresh_cooldown(Duration::from_millis(100))
        .build()
        .expect("config");
    let app = app(jwt);

    let answer = call(&app, "/me", Some(&token(&a, &key_a))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(answer.json()["iss"], a.issuer());
    assert_eq!((a.jwks_hits(), b.total_hits()), (1, 0), "only A was asked");

    let answer = call(&app, "/me", Some(&token(&b, &key_b))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(answer.json()["iss"], b.issuer());
    assert_eq!((a.jwks_hits(), b.jwks_hits()), (1, 1));

    // Issuer A's claim with issuer B's key (same kid): rejected, and no fetch anywhere.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let answer = call(&app, "/me", Some(&token(&a, &key_b))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    let answer = call(&app, "/me", Some(&token(&b, &key_a))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!((a.jwks_hits(), b.jwks_hits()), (1, 1));

    // An unknown kid for B refetches B only.
    let unknown = TestKey::rsa_b().with_kid("unknown");
    call(&app, "/me", Some(&token(&b, &unknown))).await;
    assert_eq!((a.jwks_hits(), b.jwks_hits()), (1, 2));
}

#[tokio::test]
async fn an_unknown_kid_during_an_outage_is_unavailable_not_invalid() {
    let old = TestKey::rsa_a().with_kid("old");
    let new = TestKey::rsa_b().with_kid("new");
    let server = IssuerServer::start(jwks(&[&old])).await;
    let cooldown = Duration::from_millis(200);
    let jwt = with_jwks_uri(&server)
        .jwks_refresh_cooldown(cooldown)
        .build()
        .expect("config");
    jwt.refresh().await.expect("warm-up");
    let app = app(jwt);
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;

    // The issuer rotated to a key we cannot fetch: the token may well be good.
    server.set_mode(JwksMode::Fail);
    let answer = call(&app, "/me", Some(&token(&server, &new))).await;
    assert_unavailable(&answer, 1);
    assert_eq!(server.jwks_hits(), 2, "one refetch was tried");

    // Known keys keep working meanwhile, and a known kid never turns into a 503.
    let answer = call(&app, "/me", Some(&token(&server, &old))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);

    // Once the issuer is back, the new key is fetched and accepted.
    server.set_mode(JwksMode::Normal);
    server.set_jwks(jwks(&[&old, &new]));
    tokio::time::sleep(cooldown + Duration::from_millis(100)).await;
    let answer = call(&app, "/me", Some(&token(&server, &new))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
}

#[test]
fn a_warm_up_outside_a_runtime_fetches_nothing_and_breaks_nothing() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let key = TestKey::rsa_a();
    let server = runtime.block_on(IssuerServer::start(jwks(&[&key])));
    let jwt = with_jwks_uri(&server).build().expect("config");

    // Polled outside any Tokio runtime: no fetch can run, so it reports no keys.
    {
        let mut warm_up = std::pin::pin!(jwt.refresh());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match warm_up.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(Err(error)) => {
                assert_eq!(error.kind(), ErrorKind::Unavailable)
            }
            other => panic!("expected an immediate Unavailable, got {other:?}"),
        }
    }
    assert_eq!(server.jwks_hits(), 0);

    // Inside the runtime afterwards, keys are fetched and tokens accepted.
    let app = app(jwt);
    let answer = runtime.block_on(call(&app, "/me", Some(&token(&server, &key))));
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.error);
    assert_eq!(server.jwks_hits(), 1);
}

#[test]
fn cache_durations_are_bounded_at_build_time() {
    let base = || {
        Jwt::builder()
            .issuer_with_jwks_uri(
                "https://issuer.example.com",
                "https://issuer.example.com/jwks",
            )
            .audience(AUDIENCE)
    };
    assert!(base().build().is_ok());
    for builder in [
        base().jwks_ttl(Duration::MAX),
        base().jwks_refresh_cooldown(Duration::MAX),
        base().jwks_max_stale(Duration::MAX),
        base().http_timeout(Duration::MAX),
        base().http_timeout(Duration::ZERO),
    ] {
        assert!(builder.build().is_err());
    }
    assert!(
        base()
            .jwks_max_stale(Duration::from_secs(30 * 24 * 3600))
            .build()
            .is_ok()
    );
}
