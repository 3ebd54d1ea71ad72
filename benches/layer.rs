//! Per-request cost of [`BearerAuthLayer`] on the hot path (keys cached, no I/O), next to
//! jsonwebtoken's own `decode` of the same token with the same key and equivalent rules.
//!
//! One criterion group per comparison, named `<subject>/<variant>`:
//!
//! - `introspection`: one `JwtOrIntrospection` layer; `cached` is an opaque token whose
//!   introspection answer is cached, `rs256_jwt` an RS256 JWT validated locally.
//! - `dpop`: `bearer` is an RS256 token sent as `Bearer`, `dpop` the same claims bound by
//!   `cnf.jkt` sent as `DPoP` with a fresh ES256 proof, `es256_verify` the proof's signature
//!   check alone (the floor of the extra cost).
//! - `rs256`, `es256`, `eddsa`: `raw_decode` is `jsonwebtoken::decode::<serde_json::Value>`
//!   (alg, `iss`, `aud`, `exp`/`nbf` checked; every claim delivered, as
//!   [`RegisteredClaims::extra`](portcullis::RegisteredClaims) does); `layer` is
//!   `oneshot` of a request with `Authorization: Bearer <token>` through the layer over a
//!   `service_fn` that answers `200` at once.
//!
//! Both variants run under the same driver (`to_async` on a current-thread tokio runtime,
//! `iter_batched` with the per-iteration input built outside the timed section), so the
//! ratio `layer / raw_decode` is the price of the middleware itself: token extraction,
//! header/claims parsing, the principal and scopes in the extensions, the service call.
//!
//! After each JWT group, under `cargo bench`, a paired measurement alternates blocks of the
//! two variants and prints the median ratio `layer / raw_decode` as `<name>/paired`: the
//! two criterion estimates are taken seconds apart, the paired ratio under the same
//! conditions.
//!
//! Adding a comparison: write one `fn(&mut Criterion)` that opens its own group (see
//! [`jwt_group`]) and list it in `criterion_group!` at the bottom. Reproduce with
//! `cargo bench --bench layer`; `BENCHMARKS.md` has the numbers and the machine.

use std::{
    convert::Infallible,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use jsonwebtoken::{
    DecodingKey, EncodingKey, Header, Validation,
    jwk::{Jwk, JwkSet},
};
use portcullis::{BearerAuthLayer, Introspection, Jwt, JwtOrIntrospection, Principal, Scopes};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

/// The same token, key and rules, for both variants of one algorithm.
struct Fixture {
    /// Group name.
    name: &'static str,
    token: String,
    /// `Bearer <token>`, cloned into each request outside the timed section.
    authorization: HeaderValue,
    /// The authenticator built from a static JWK Set holding the public key.
    jwt: Jwt,
    /// The same public key, from the same JWK, for jsonwebtoken's `decode`.
    key: DecodingKey,
    validation: Validation,
}

impl Fixture {
    fn new(
        name: &'static str,
        alg: jsonwebtoken::Algorithm,
        pem: &[u8],
        encoding_key: fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>,
    ) -> Self {
        // The backend the layer uses, before the JWK derivation: both variants verify alike.
        portcullis::__doc_support::install_crypto_provider();
        let kid = format!("bench-{name}");
        let encoding = encoding_key(pem).expect("test key PEM");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.clone());
        let jwks = serde_json::to_string(&JwkSet {
            keys: vec![jwk.clone()],
        })
        .expect("JWK Set JSON");

        let jwt = Jwt::builder()
            .issuer_with_jwks(ISSUER, jwks)
            .audience(AUDIENCE)
            .build()
            .expect("valid configuration");

        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        // An RFC 9068 access token; an hour is far longer than any run.
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": "user-1234",
            "aud": AUDIENCE,
            "exp": now + 3600,
            "iat": now,
            "jti": "0b7e6c5c-5d2b-4c2e-9a53-6c1f5f2f6a10",
            "client_id": "bench-client",
            "scope": "orders:read orders:write profile",
        });
        let token = jsonwebtoken::encode(&header, &claims, &encoding).expect("signed token");
        let authorization = HeaderValue::try_from(format!("Bearer {token}")).expect("header value");

        let mut validation = Validation::new(alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = 30; // portcullis' default leeway
        let key = DecodingKey::from_jwk(&jwk).expect("decoding key from the JWK");

        Self {
            name,
            token,
            authorization,
            jwt,
            key,
            validation,
        }
    }

    fn request(&self) -> Request<()> {
        let mut req = Request::new(());
        req.headers_mut()
            .insert(AUTHORIZATION, self.authorization.clone());
        req
    }

    fn raw_decode(
        &self,
    ) -> jsonwebtoken::errors::Result<jsonwebtoken::TokenData<serde_json::Value>> {
        jsonwebtoken::decode::<serde_json::Value>(&self.token, &self.key, &self.validation)
    }

    /// Fails loudly unless both variants take their success path, so no group can end up
    /// timing a rejection.
    fn assert_accepted(&self, rt: &Runtime) {
        let data = self.raw_decode().expect("raw decode accepts the token");
        assert_eq!(data.claims["sub"], "user-1234");

        // Through the layer, with an inner service that checks what the layer inserted.
        let checking = BearerAuthLayer::new(self.jwt.clone()).layer(service_fn(
            |req: Request<()>| async move {
                let ext = req.extensions();
                let ok = ext.get::<Principal>().and_then(Principal::subject) == Some("user-1234")
                    && ext
                        .get::<Scopes>()
                        .is_some_and(|s| s.contains("orders:read"));
                let mut response = Response::new(());
                if !ok {
                    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                }
                Ok::<_, Infallible>(response)
            },
        ));
        let response = rt
            .block_on(checking.oneshot(self.request()))
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "{}: layer", self.name);

        // The layer really checks: a signature with its first character changed is refused.
        let at = self.token.rfind('.').expect("compact JWS") + 1;
        let first = if self.token[at..].starts_with('A') {
            "B"
        } else {
            "A"
        };
        let mut tampered = self.token.clone();
        tampered.replace_range(at..=at, first);
        let mut req = Request::new(());
        req.headers_mut().insert(
            AUTHORIZATION,
            HeaderValue::try_from(format!("Bearer {tampered}")).expect("header value"),
        );
        let response = rt
            .block_on(
                BearerAuthLayer::new(self.jwt.clone())
                    .layer(service_fn(|_req: Request<()>| async {
                        Ok::<_, Infallible>(Response::new(()))
                    }))
                    .oneshot(req),
            )
            .expect("infallible");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{}: tampered token",
            self.name
        );
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `<name>/raw_decode` vs `<name>/layer` for one algorithm.
fn jwt_group(c: &mut Criterion, fixture: &Fixture) {
    let rt = runtime();
    fixture.assert_accepted(&rt);

    let service =
        BearerAuthLayer::new(fixture.jwt.clone()).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));

    let mut group = c.benchmark_group(fixture.name);
    group.bench_function("raw_decode", |b| {
        b.to_async(&rt).iter_batched(
            || (),
            |()| async { fixture.raw_decode().expect("accepted") },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("layer", |b| {
        b.to_async(&rt).iter_batched(
            || (service.clone(), fixture.request()),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    // Criterion times the two variants seconds apart, so a change in machine speed between
    // them lands in their ratio. The paired measurement alternates short blocks of each,
    // so both meet the same conditions. Only under `cargo bench` (not `cargo test`).
    if std::env::args().any(|arg| arg == "--bench") {
        paired(&rt, fixture, &service);
    }
}

/// Alternating blocks of `raw_decode` and `layer` calls, timed one block at a time (the order
/// within each pair alternates too); prints the median and quartiles of the per-pair ratios
/// `layer / raw_decode`.
fn paired<S>(rt: &Runtime, fixture: &Fixture, service: &S)
where
    S: tower::Service<Request<()>, Response = Response<()>, Error = Infallible> + Clone,
{
    const PAIRS: usize = 400;
    const BLOCK: usize = 50;
    let raw_block = || {
        let started = Instant::now();
        for _ in 0..BLOCK {
            black_box(fixture.raw_decode().expect("accepted"));
        }
        started.elapsed()
    };
    let layer_block = || {
        let requests: Vec<_> = (0..BLOCK)
            .map(|_| (service.clone(), fixture.request()))
            .collect();
        rt.block_on(async {
            let started = Instant::now();
            for (service, req) in requests {
                black_box(service.oneshot(req).await.expect("infallible"));
            }
            started.elapsed()
        })
    };
    let mut ratios: Vec<f64> = (0..PAIRS)
        .map(|i| {
            let (raw, layer) = if i % 2 == 0 {
                let raw = raw_block();
                (raw, layer_block())
            } else {
                let layer = layer_block();
                (raw_block(), layer)
            };
            layer.as_secs_f64() / raw.as_secs_f64()
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    println!(
        "{}/paired                layer / raw_decode: median {:.3}, quartiles [{:.3}, {:.3}] \
         ({PAIRS} pairs of {BLOCK}-call blocks)",
        fixture.name,
        at(0.5),
        at(0.25),
        at(0.75)
    );
}

fn rs256(c: &mut Criterion) {
    let fixture = Fixture::new(
        "rs256",
        jsonwebtoken::Algorithm::RS256,
        include_bytes!("../tests/keys/rsa-a.pem"),
        EncodingKey::from_rsa_pem,
    );
    jwt_group(c, &fixture);
}

fn es256(c: &mut Criterion) {
    let fixture = Fixture::new(
        "es256",
        jsonwebtoken::Algorithm::ES256,
        include_bytes!("../tests/keys/ec-p256.pem"),
        EncodingKey::from_ec_pem,
    );
    jwt_group(c, &fixture);
}

fn eddsa(c: &mut Criterion) {
    let fixture = Fixture::new(
        "eddsa",
        jsonwebtoken::Algorithm::EdDSA,
        include_bytes!("../tests/keys/ed25519.pem"),
        EncodingKey::from_ed_pem,
    );
    jwt_group(c, &fixture);
}

/// `introspection/cached` vs `introspection/rs256_jwt`: one `JwtOrIntrospection` layer, an
/// opaque token whose introspection answer is cached next to an RS256 JWT validated locally.
fn introspection(c: &mut Criterion) {
    let rt = runtime();
    let fixture = Fixture::new(
        "rs256",
        jsonwebtoken::Algorithm::RS256,
        include_bytes!("../tests/keys/rsa-a.pem"),
        EncodingKey::from_rsa_pem,
    );
    // A loopback introspection endpoint that counts its calls; it answers for one token.
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = rt.block_on(introspection_endpoint(Arc::clone(&calls)));
    let introspection = Introspection::builder()
        .issuer(ISSUER)
        .endpoint(endpoint)
        .client_credentials("bench-api", "bench-secret")
        .audience(AUDIENCE)
        // Longer than the measurement, so every timed request is a cache hit.
        .cache_max_ttl(Duration::from_secs(3600))
        .build()
        .expect("valid introspection configuration");
    let auth = JwtOrIntrospection::new(fixture.jwt.clone(), introspection);
    let service = BearerAuthLayer::new(auth).layer(service_fn(|req: Request<()>| async move {
        let mut response = Response::new(());
        if req.extensions().get::<Principal>().is_none() {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        Ok::<_, Infallible>(response)
    }));
    let opaque = HeaderValue::from_static("Bearer 2YotnFZFEjr1zCsicMWpAA");
    let opaque_request = || {
        let mut req = Request::new(());
        req.headers_mut().insert(AUTHORIZATION, opaque.clone());
        req
    };

    // Warm the cache; then both kinds of request must succeed, the opaque one with no call.
    for _ in 0..2 {
        let response = rt
            .block_on(service.clone().oneshot(opaque_request()))
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "opaque token");
    }
    let response = rt
        .block_on(service.clone().oneshot(fixture.request()))
        .expect("infallible");
    assert_eq!(response.status(), StatusCode::OK, "RS256 token");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the second opaque request hit the cache"
    );

    let mut group = c.benchmark_group("introspection");
    group.bench_function("rs256_jwt", |b| {
        b.to_async(&rt).iter_batched(
            || (service.clone(), fixture.request()),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("cached", |b| {
        b.to_async(&rt).iter_batched(
            || (service.clone(), opaque_request()),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "every timed request was a cache hit"
    );
}

/// Serves an RFC 7662 endpoint on `127.0.0.1:0` answering `active: true`; returns its URL.
async fn introspection_endpoint(calls: Arc<AtomicUsize>) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let answer = serde_json::json!({
        "active": true,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1234",
        "client_id": "bench-client",
        "scope": "orders:read orders:write profile",
        "token_type": "Bearer",
        "exp": now + 3600,
        "iat": now,
    });
    let app = axum::Router::new().route(
        "/introspect",
        axum::routing::post(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            async move { axum::Json(answer) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/introspect")
}

/// `dpop/bearer` vs `dpop/dpop` vs `dpop/es256_verify`: the same RS256 token claims through
/// one layer, unbound with `Authorization: Bearer`, and bound (`cnf.jkt`) with
/// `Authorization: DPoP` and a fresh ES256 proof per request (signed outside the timed
/// part); `es256_verify` is the proof's signature check alone, the floor of the extra cost.
fn dpop(c: &mut Criterion) {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use portcullis::dpop::InMemoryReplayStore;
    use sha2::{Digest, Sha256};

    let rt = runtime();
    portcullis::__doc_support::install_crypto_provider();
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("../tests/keys/rsa-a.pem")).expect("RSA");
    let mut rsa_jwk = Jwk::from_encoding_key(&rsa, jsonwebtoken::Algorithm::RS256).expect("JWK");
    rsa_jwk.common.key_id = Some("bench-dpop".to_owned());
    let jwks = serde_json::to_string(&JwkSet {
        keys: vec![rsa_jwk],
    })
    .expect("JWK Set");
    let jwt = Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks)
        .audience(AUDIENCE)
        .build()
        .expect("valid configuration");

    // The proof key (ES256) and its RFC 7638 thumbprint.
    let ec = EncodingKey::from_ec_pem(include_bytes!("../tests/keys/ec-p256.pem")).expect("EC");
    let ec_jwk = serde_json::to_value(
        Jwk::from_encoding_key(&ec, jsonwebtoken::Algorithm::ES256).expect("JWK"),
    )
    .expect("JWK JSON");
    let public =
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": ec_jwk["x"], "y": ec_jwk["y"]});
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        ec_jwk["x"].as_str().expect("x"),
        ec_jwk["y"].as_str().expect("y")
    );
    let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));

    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    };
    let mint = |cnf: bool| {
        let mut header = Header::new(jsonwebtoken::Algorithm::RS256);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some("bench-dpop".to_owned());
        let mut claims = serde_json::json!({
            "iss": ISSUER, "sub": "user-1234", "aud": AUDIENCE,
            "exp": now() + 3600, "iat": now(), "jti": "0b7e6c5c-5d2b-4c2e-9a53-6c1f5f2f6a10",
            "client_id": "bench-client", "scope": "orders:read orders:write profile",
        });
        if cnf {
            claims["cnf"] = serde_json::json!({ "jkt": jkt });
        }
        jsonwebtoken::encode(&header, &claims, &rsa).expect("signed token")
    };
    let bearer_token = mint(false);
    let bound_token = mint(true);
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(bound_token.as_bytes()));
    let htu = "http://api.example.com/orders";
    let proof_header = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public}))
            .expect("JSON"),
    );
    let serial = AtomicUsize::new(0);
    let proof = || {
        let claims = serde_json::json!({
            "jti": format!("bench-{}", serial.fetch_add(1, Ordering::Relaxed)),
            "htm": "GET", "htu": htu, "iat": now(), "ath": ath,
        });
        let message = format!(
            "{proof_header}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("JSON"))
        );
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &ec, jsonwebtoken::Algorithm::ES256)
                .expect("ES256");
        format!("{message}.{signature}")
    };
    let request = |scheme: &str, token: &str, proof: Option<String>| {
        let mut req = Request::get(htu).body(()).expect("request");
        let value = HeaderValue::try_from(format!("{scheme} {token}")).expect("header value");
        req.headers_mut().insert(AUTHORIZATION, value);
        if let Some(proof) = proof {
            req.headers_mut()
                .insert("dpop", HeaderValue::try_from(proof).expect("header value"));
        }
        req
    };

    // Each timed request records one proof: a store large enough for a run (criterion
    // makes at most a few hundred thousand calls here), with a short window so entries go.
    let service = BearerAuthLayer::new(jwt)
        .dpop_window(Duration::from_secs(5), Duration::from_secs(1))
        .dpop_replay_store(InMemoryReplayStore::new(2_000_000))
        .layer(service_fn(|req: Request<()>| async move {
            let mut response = Response::new(());
            if req.extensions().get::<Principal>().is_none() {
                *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            Ok::<_, Infallible>(response)
        }));

    // Both succeed; a replayed proof does not.
    let ok = |req| {
        rt.block_on(service.clone().oneshot(req))
            .expect("infallible")
            .status()
    };
    assert_eq!(
        ok(request("Bearer", &bearer_token, None)),
        StatusCode::OK,
        "bearer"
    );
    let once = proof();
    assert_eq!(
        ok(request("DPoP", &bound_token, Some(once.clone()))),
        StatusCode::OK,
        "dpop"
    );
    assert_eq!(
        ok(request("DPoP", &bound_token, Some(once.clone()))),
        StatusCode::UNAUTHORIZED,
        "replayed proof"
    );
    let (message, signature) = once.rsplit_once('.').expect("compact JWS");
    let ec_public = DecodingKey::from_ec_components(
        ec_jwk["x"].as_str().expect("x"),
        ec_jwk["y"].as_str().expect("y"),
    )
    .expect("EC public key");

    let mut group = c.benchmark_group("dpop");
    group.bench_function("bearer", |b| {
        b.to_async(&rt).iter_batched(
            || (service.clone(), request("Bearer", &bearer_token, None)),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("dpop", |b| {
        b.to_async(&rt).iter_batched(
            || {
                (
                    service.clone(),
                    request("DPoP", &bound_token, Some(proof())),
                )
            },
            |(service, req)| async move {
                let response = service.oneshot(req).await.expect("infallible");
                assert_eq!(response.status(), StatusCode::OK);
                black_box(response)
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("es256_verify", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::crypto::verify(
                    signature,
                    message.as_bytes(),
                    &ec_public,
                    jsonwebtoken::Algorithm::ES256,
                )
                .expect("verifies"),
            )
        });
    });
    group.finish();
}

criterion_group!(benches, rs256, es256, eddsa, introspection, dpop);
criterion_main!(benches);
