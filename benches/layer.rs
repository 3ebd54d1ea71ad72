//! Per-request cost of [`BearerAuthLayer`] on the hot path (keys cached, no I/O), next to the
//! physical limit (the bare signature check), jsonwebtoken's own `decode`, a request with no
//! auth at all, and the way axum users validate tokens today.
//!
//! One criterion group per comparison, named `<subject>/<variant>`:
//!
//! - `rs256`, `es256`, `eddsa`, one per algorithm:
//!   - `floor`: the signature check alone, with an aws-lc-rs `ParsedPublicKey` built once,
//!     on the token's signing input: nothing can validate the token for less.
//!   - `raw_decode`: `jsonwebtoken::decode::<serde_json::Value>` (alg, `iss`, `aud`,
//!     `exp`/`nbf` checked; every claim delivered, as
//!     [`RegisteredClaims::extra`](portcullis::RegisteredClaims) does).
//!   - `layer_miss`: `oneshot` of a request with `Authorization: Bearer <token>` through the
//!     layer, with the verified-token cache off, so every request is validated in full.
//!   - `layer_hit`: the same, with the cache on (the default): the token is remembered.
//!   - `no_auth`: the same request and inner service without the layer.
//! - `axum`: an axum 0.8 `Router` with one route, RS256: `no_auth`, `portcullis_miss`,
//!   `portcullis_hit`, and two peers that check the token in full on every request:
//!   `peer`, a hand-written `middleware::from_fn` that calls `jsonwebtoken::decode` and puts
//!   the claims in the extensions, as applications do (same crypto backend as the layer);
//!   `peer_crate`, the resource-server crate `axum-jwt-auth` 0.7 as shipped (its `Claims`
//!   extractor and `LocalDecoder`, over jsonwebtoken 10 with the RustCrypto backend). In the
//!   paired rounds, `rustcrypto_verify` is the RustCrypto signature check alone (`rsa`,
//!   key parsed once): the part of `peer_crate` that is its crypto backend.
//! - `introspection`: one `JwtOrIntrospection` layer; `cached` is an opaque token whose
//!   introspection answer is cached, `rs256_jwt` an RS256 JWT.
//! - `introspection_tiers`: where an opaque token's answer comes from, each request through
//!   a `BearerAuthLayer` over `Introspection`: `in_process` (the instance's own cache),
//!   `endpoint_call` (an instance with an empty cache calls the loopback endpoint, over a
//!   warm connection), and with `--features redis`, `redis_tier` (an instance with an empty
//!   cache finds the answer in the shared tier of a `redis-server` on loopback, started by
//!   the bench). A new instance is built for each request outside the timed section.
//!
//! Every variant runs under the same driver (`to_async` on a current-thread tokio runtime,
//! `iter_batched` with the per-iteration input built outside the timed section).
//!
//! After each group, under `cargo bench`, a paired measurement alternates short blocks of
//! every variant (the order rotating from round to round) and prints the median per-call
//! time of each and the median of the per-round ratios as `<group>/paired`. Criterion times
//! the variants seconds apart, and the speed of a shared machine drifts in between; the
//! paired figures meet the same conditions. There the miss variants use a fresh token for
//! every call (minted beforehand), with the cache on: the true first request of a token,
//! digest and cache insertion included. The variants that check a token every time (the
//! floor, `decode`, the axum peer) take the same fresh tokens in the same round, so that
//! none of them is timed on one token over and over. The algorithm groups also time
//! `miss_no_cache` there: the same fresh tokens through the layer with the cache off, so
//! that `layer_miss` − `miss_no_cache` is what remembering a token costs on its first use.
//!
//! Reproduce with `cargo bench --bench layer`; `BENCHMARKS.md` has the numbers and the
//! machine.

use std::{
    convert::Infallible,
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use axum::{
    Router,
    body::Body,
    extract::State,
    middleware::{self, Next},
    routing::get,
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response, StatusCode, header::AUTHORIZATION};
use jsonwebtoken::{
    DecodingKey, EncodingKey, Header, Validation,
    jwk::{AlgorithmParameters, Jwk, JwkSet},
};
use portcullis::{BearerAuthLayer, Introspection, Jwt, JwtOrIntrospection, Principal, Scopes};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";

/// The layer's rules on a jsonwebtoken `Validation` (of whichever version: the peer crate
/// is built on another): `iss`, `aud`, `exp` required, `nbf` checked, portcullis' default
/// leeway of 30 s.
macro_rules! layer_rules {
    ($validation:ident) => {
        $validation.set_issuer(&[ISSUER]);
        $validation.set_audience(&[AUDIENCE]);
        $validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        $validation.validate_nbf = true;
        $validation.leeway = 30;
    };
}

/// The same token, key and rules, for every variant of one algorithm.
struct Fixture {
    /// Group name.
    name: &'static str,
    token: String,
    /// `Bearer <token>`, cloned into each request outside the timed section.
    authorization: HeaderValue,
    /// The authenticator built from a static JWK Set holding the public key (cache on).
    jwt: Jwt,
    /// The same, with the verified-token cache off.
    jwt_uncached: Jwt,
    /// The public JWK every variant's key comes from.
    jwk: Jwk,
    /// The same public key, from the same JWK, for jsonwebtoken's `decode`.
    key: DecodingKey,
    validation: Validation,
    /// The same public key parsed once by aws-lc-rs: the floor's key.
    parsed: ParsedPublicKey,
    /// The token's signing input and its signature: the floor's input.
    signed: Signed,
    header: Header,
    encoding: EncodingKey,
    claims: serde_json::Value,
}

impl Fixture {
    fn new(
        name: &'static str,
        alg: jsonwebtoken::Algorithm,
        pem: &[u8],
        encoding_key: fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>,
    ) -> Self {
        // The backend the layer uses, before the JWK derivation: every variant verifies alike.
        portcullis::__doc_support::install_crypto_provider();
        let kid = format!("bench-{name}");
        let encoding = encoding_key(pem).expect("test key PEM");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.clone());
        let jwks = serde_json::to_string(&JwkSet {
            keys: vec![jwk.clone()],
        })
        .expect("JWK Set JSON");

        let builder = || {
            Jwt::builder()
                .issuer_with_jwks(ISSUER, jwks.clone())
                .audience(AUDIENCE)
        };
        let jwt = builder().build().expect("valid configuration");
        let jwt_uncached = builder()
            .token_cache(false)
            .build()
            .expect("valid configuration");

        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid);
        // An RFC 9068 access token; an hour is far longer than any run.
        let now = unix_now();
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
        layer_rules!(validation);
        let key = DecodingKey::from_jwk(&jwk).expect("decoding key from the JWK");

        let b = |s: &str| URL_SAFE_NO_PAD.decode(s).expect("base64url");
        let parsed = match &jwk.algorithm {
            AlgorithmParameters::RSA(p) => RsaPublicKeyComponents {
                n: b(&p.n),
                e: b(&p.e),
            }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .expect("RSA key"),
            AlgorithmParameters::EllipticCurve(p) => {
                let mut point = vec![0x04];
                point.extend(b(&p.x));
                point.extend(b(&p.y));
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).expect("P-256 key")
            }
            AlgorithmParameters::OctetKeyPair(p) => {
                ParsedPublicKey::new(&ED25519, b(&p.x)).expect("Ed25519 key")
            }
            _ => unreachable!("asymmetric bench keys"),
        };
        let signed = Signed::of(&token);

        Self {
            name,
            token,
            authorization,
            jwt,
            jwt_uncached,
            key,
            jwk,
            validation,
            parsed,
            signed,
            header,
            encoding,
            claims,
        }
    }

    fn request(&self) -> Request<()> {
        let mut req = Request::new(());
        req.headers_mut()
            .insert(AUTHORIZATION, self.authorization.clone());
        req
    }

    /// `n` tokens, each different (`jti`), otherwise like [`Fixture::token`].
    fn fresh_tokens(&self, n: usize) -> Vec<HeaderValue> {
        let nonce = unix_now();
        (0..n)
            .map(|i| {
                let mut claims = self.claims.clone();
                claims["jti"] = format!("{nonce}-{i}").into();
                let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)
                    .expect("signed token");
                HeaderValue::try_from(format!("Bearer {token}")).expect("header value")
            })
            .collect()
    }

    /// The floor on `signed`: the signature check alone.
    fn floor(&self, signed: &Signed) -> bool {
        self.parsed
            .verify_sig(&signed.message, &signed.signature)
            .is_ok()
    }

    fn raw_decode(
        &self,
        token: &str,
    ) -> jsonwebtoken::errors::Result<jsonwebtoken::TokenData<serde_json::Value>> {
        jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation)
    }

    /// Fails loudly unless every variant takes its success path, so no group can end up
    /// timing a rejection.
    fn assert_accepted(&self, rt: &Runtime) {
        assert!(self.floor(&self.signed), "{}: floor", self.name);
        let data = self
            .raw_decode(&self.token)
            .expect("raw decode accepts the token");
        assert_eq!(data.claims["sub"], "user-1234");

        for jwt in [&self.jwt, &self.jwt_uncached, &self.jwt] {
            // Through the layer, with an inner service that checks what the layer inserted.
            let checking = BearerAuthLayer::new(jwt.clone()).layer(service_fn(
                |req: Request<()>| async move {
                    let ext = req.extensions();
                    let ok = ext.get::<Principal>().and_then(Principal::subject)
                        == Some("user-1234")
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
        }

        // The layer really checks, remembered token or not: a signature with its first
        // character changed is refused.
        let tampered = tamper(&self.token);
        for jwt in [&self.jwt, &self.jwt_uncached] {
            let mut req = Request::new(());
            req.headers_mut().insert(
                AUTHORIZATION,
                HeaderValue::try_from(format!("Bearer {tampered}")).expect("header value"),
            );
            let response = rt
                .block_on(
                    BearerAuthLayer::new(jwt.clone())
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
}

/// A token's signing input and its decoded signature.
struct Signed {
    message: Vec<u8>,
    signature: Vec<u8>,
}

impl Signed {
    fn of(token: &str) -> Self {
        let dot = token.rfind('.').expect("compact JWS");
        Self {
            message: token.as_bytes()[..dot].to_vec(),
            signature: URL_SAFE_NO_PAD
                .decode(&token[dot + 1..])
                .expect("base64url"),
        }
    }
}

/// The token of a `Bearer <token>` header value.
fn bearer(value: &HeaderValue) -> &str {
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .expect("a Bearer header value")
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn under_cargo_bench() -> bool {
    std::env::args().any(|arg| arg == "--bench")
}

fn ok_service() -> impl tower::Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<()>, Infallible>> + Send,
> + Clone {
    service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) })
}

/// Times `BLOCK` calls of a service, each with its own request built before the clock starts;
/// every call must answer `200`, so that no block times a rejection.
fn time_block<S, Req, B>(rt: &Runtime, service: &S, requests: Vec<Req>) -> Duration
where
    S: tower::Service<Req, Response = Response<B>, Error = Infallible> + Clone,
{
    let prepared: Vec<_> = requests.into_iter().map(|r| (service.clone(), r)).collect();
    rt.block_on(async {
        let started = Instant::now();
        for (service, req) in prepared {
            let response = service.oneshot(req).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::OK);
            black_box(response);
        }
        started.elapsed()
    })
}

/// The items of one round's block.
fn block<T>(items: &[T], round: usize) -> &[T] {
    &items[round * BLOCK..(round + 1) * BLOCK]
}

/// Rounds of one block per variant, the order rotating each round; returns the block
/// durations per variant, in seconds per call.
fn rounds(
    rounds: usize,
    block: usize,
    variants: &mut [&mut dyn FnMut(usize) -> Duration],
) -> Vec<Vec<f64>> {
    let n = variants.len();
    let mut per_call = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let v = (round + k) % n;
            let elapsed = variants[v](round);
            per_call[v].push(elapsed.as_secs_f64() / block as f64);
        }
    }
    per_call
}

fn quartiles(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    (at(0.25), at(0.5), at(0.75))
}

/// Prints the median per-call time of each variant and the per-round ratios asked for.
fn report(group: &str, names: &[&str], per_call: &[Vec<f64>], ratios: &[(usize, usize)]) {
    for (name, times) in names.iter().zip(per_call) {
        let (_, median, _) = quartiles(times.clone());
        println!(
            "{group}/paired  {name:<16} median {:>9.3} µs/call",
            median * 1e6
        );
    }
    for &(a, b) in ratios {
        let r: Vec<f64> = per_call[a]
            .iter()
            .zip(&per_call[b])
            .map(|(x, y)| x / y)
            .collect();
        let (q1, median, q3) = quartiles(r);
        println!(
            "{group}/paired  {} / {}: median {median:.3}, quartiles [{q1:.3}, {q3:.3}]",
            names[a], names[b]
        );
    }
    let diffs: Vec<f64> = (0..per_call[0].len())
        .map(|i| per_call[names.len() - 2][i] - per_call[names.len() - 1][i])
        .collect();
    let (_, median, _) = quartiles(diffs);
    println!(
        "{group}/paired  {} - {}: median {:.0} ns/call",
        names[names.len() - 2],
        names[names.len() - 1],
        median * 1e9
    );
}

const ROUNDS: usize = 200;
const BLOCK: usize = 20;

/// `<name>/{floor, raw_decode, layer_miss, layer_hit, no_auth}` for one algorithm.
fn jwt_group(c: &mut Criterion, fixture: &Fixture) {
    let rt = runtime();
    fixture.assert_accepted(&rt);

    let hit = BearerAuthLayer::new(fixture.jwt.clone()).layer(ok_service());
    let miss = BearerAuthLayer::new(fixture.jwt_uncached.clone()).layer(ok_service());
    let none = ok_service();

    let mut group = c.benchmark_group(fixture.name);
    group.bench_function("floor", |b| {
        b.to_async(&rt).iter_batched(
            || (),
            |()| async { assert!(black_box(fixture.floor(&fixture.signed))) },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("raw_decode", |b| {
        b.to_async(&rt).iter_batched(
            || (),
            |()| async { black_box(fixture.raw_decode(&fixture.token).expect("accepted")) },
            BatchSize::SmallInput,
        );
    });
    for (name, service) in [("layer_miss", &miss), ("layer_hit", &hit)] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || (service.clone(), fixture.request()),
                |(service, req)| async move {
                    black_box(service.oneshot(req).await.expect("infallible"))
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.bench_function("no_auth", |b| {
        b.to_async(&rt).iter_batched(
            || (none.clone(), fixture.request()),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();

    if !under_cargo_bench() {
        return;
    }
    // The paired measurement: the miss variant gets a fresh token per call, cache on, and
    // the floor and `decode` get the same tokens, so that no variant is timed on one token
    // over and over (its bytes in the core's caches, the branches of its check learned).
    let fresh = fixture.fresh_tokens(ROUNDS * BLOCK);
    let texts: Vec<&str> = fresh.iter().map(bearer).collect();
    let signed: Vec<Signed> = texts.iter().map(|token| Signed::of(token)).collect();
    let fresh_service = BearerAuthLayer::new(fixture.jwt.clone()).layer(ok_service());
    let with = |value: &HeaderValue| {
        let mut req = Request::new(());
        req.headers_mut().insert(AUTHORIZATION, value.clone());
        req
    };
    let per_call = rounds(
        ROUNDS,
        BLOCK,
        &mut [
            &mut |round| {
                let started = Instant::now();
                for signed in block(&signed, round) {
                    assert!(black_box(fixture.floor(signed)));
                }
                started.elapsed()
            },
            &mut |round| {
                let started = Instant::now();
                for token in block(&texts, round) {
                    black_box(fixture.raw_decode(token).expect("accepted"));
                }
                started.elapsed()
            },
            &mut |round| {
                time_block(
                    &rt,
                    &fresh_service,
                    block(&fresh, round).iter().map(with).collect(),
                )
            },
            &mut |round| time_block(&rt, &miss, block(&fresh, round).iter().map(with).collect()),
            &mut |_| time_block(&rt, &hit, (0..BLOCK).map(|_| fixture.request()).collect()),
            &mut |_| time_block(&rt, &none, (0..BLOCK).map(|_| fixture.request()).collect()),
        ],
    );
    report(
        fixture.name,
        &[
            "floor",
            "raw_decode",
            "layer_miss",
            "miss_no_cache",
            "layer_hit",
            "no_auth",
        ],
        &per_call,
        &[(2, 0), (2, 1), (3, 0), (4, 5)],
    );
}

fn rs256_fixture() -> Fixture {
    Fixture::new(
        "rs256",
        jsonwebtoken::Algorithm::RS256,
        include_bytes!("../tests/keys/rsa-a.pem"),
        EncodingKey::from_rsa_pem,
    )
}

fn rs256(c: &mut Criterion) {
    jwt_group(c, &rs256_fixture());
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

/// What the peer middleware shares with each request.
#[derive(Clone)]
struct PeerState(Arc<(DecodingKey, Validation)>);

/// The usual hand-written axum middleware: `Bearer` prefix, `jsonwebtoken::decode`, the
/// claims into the extensions, `401` otherwise.
async fn peer_auth(
    State(state): State<PeerState>,
    mut req: Request<Body>,
    next: Next,
) -> Result<axum::response::Response, StatusCode> {
    let token = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(StatusCode::UNAUTHORIZED)?;
    let (key, validation) = &*state.0;
    let data = jsonwebtoken::decode::<serde_json::Value>(token, key, validation)
        .map_err(|_| StatusCode::UNAUTHORIZED)?;
    req.extensions_mut().insert(data.claims);
    Ok(next.run(req).await)
}

/// The peer crate, `axum-jwt-auth` 0.7, set up as its documentation shows, with the
/// fixture's RSA JWK and the layer's rules; and the same public key parsed once by the
/// RustCrypto `rsa` crate, its crypto backend.
struct PeerCrate {
    decoder: axum_jwt_auth::Decoder<serde_json::Value>,
    rsa: rsa::RsaPublicKey,
}

impl PeerCrate {
    fn new(jwk: &Jwk) -> Self {
        let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
            unreachable!("the RS256 fixture's JWK is an RSA key")
        };
        let key = jsonwebtoken10::DecodingKey::from_rsa_components(&rsa.n, &rsa.e)
            .expect("RSA components");
        let uint = |b64: &str| {
            rsa::BigUint::from_bytes_be(&URL_SAFE_NO_PAD.decode(b64).expect("base64url"))
        };
        let public = rsa::RsaPublicKey::new(uint(&rsa.n), uint(&rsa.e)).expect("RSA key");
        let mut validation = jsonwebtoken10::Validation::new(jsonwebtoken10::Algorithm::RS256);
        layer_rules!(validation);
        let decoder = axum_jwt_auth::LocalDecoder::builder()
            .keys(vec![key])
            .validation(validation)
            .build()
            .expect("axum-jwt-auth decoder");
        Self {
            decoder: Arc::new(decoder),
            rsa: public,
        }
    }

    /// One route whose handler takes the crate's `Claims` extractor.
    fn router(&self) -> Router {
        Router::new()
            .route(
                "/",
                get(
                    |claims: axum_jwt_auth::Claims<serde_json::Value>| async move {
                        black_box(claims.claims);
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&self.decoder))
    }

    /// The RustCrypto signature check alone (RSASSA-PKCS1-v1_5 with SHA-256).
    fn verify(&self, signed: &Signed) -> bool {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(&signed.message);
        self.rsa
            .verify(
                rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                &digest,
                &signed.signature,
            )
            .is_ok()
    }
}

/// `token` with the first character of its signature changed.
fn tamper(token: &str) -> String {
    let at = token.rfind('.').expect("compact JWS") + 1;
    let first = if token[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    let mut tampered = token.to_owned();
    tampered.replace_range(at..=at, first);
    tampered
}

/// `axum/{no_auth, peer, peer_crate, portcullis_miss, portcullis_hit}`: one axum 0.8 route,
/// RS256.
fn axum_peer(c: &mut Criterion) {
    let rt = runtime();
    let fixture = rs256_fixture();
    let routes = || Router::new().route("/", get(|| async { StatusCode::OK }));
    let no_auth = routes();
    let peer = routes().route_layer(middleware::from_fn_with_state(
        PeerState(Arc::new((fixture.key.clone(), fixture.validation.clone()))),
        peer_auth,
    ));
    let peer_crate = PeerCrate::new(&fixture.jwk);
    let crate_routes = peer_crate.router();
    let miss = routes().route_layer(BearerAuthLayer::new(fixture.jwt_uncached.clone()));
    let hit = routes().route_layer(BearerAuthLayer::new(fixture.jwt.clone()));
    let request = |value: &HeaderValue| {
        Request::builder()
            .uri("/")
            .header(AUTHORIZATION, value.clone())
            .body(Body::empty())
            .expect("request")
    };
    let unsigned = HeaderValue::from_static("Bearer e30.e30.AAAA");
    let tampered =
        HeaderValue::try_from(format!("Bearer {}", tamper(&fixture.token))).expect("header value");
    for (name, router, good) in [
        ("no_auth", &no_auth, StatusCode::OK),
        ("peer", &peer, StatusCode::OK),
        ("peer_crate", &crate_routes, StatusCode::OK),
        ("portcullis_miss", &miss, StatusCode::OK),
        ("portcullis_hit", &hit, StatusCode::OK),
    ] {
        let response = rt
            .block_on(router.clone().oneshot(request(&fixture.authorization)))
            .expect("infallible");
        assert_eq!(response.status(), good, "axum/{name}");
        if name != "no_auth" {
            let response = rt
                .block_on(router.clone().oneshot(request(&tampered)))
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "axum/{name}");
        }
        if name != "no_auth" {
            let response = rt
                .block_on(router.clone().oneshot(request(&unsigned)))
                .expect("infallible");
            if name == "peer_crate" {
                // Refused, though not with 401: `axum-jwt-auth` answers 500 when the JOSE
                // header cannot be read.
                assert_eq!(
                    response.status(),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "axum/{name}"
                );
            } else {
                assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "axum/{name}");
            }
        }
    }
    assert!(
        peer_crate.verify(&Signed::of(&fixture.token)),
        "rustcrypto_verify"
    );
    assert!(
        !peer_crate.verify(&Signed::of(&tamper(&fixture.token))),
        "rustcrypto_verify"
    );

    let mut group = c.benchmark_group("axum");
    for (name, router) in [
        ("no_auth", &no_auth),
        ("peer", &peer),
        ("peer_crate", &crate_routes),
        ("portcullis_miss", &miss),
        ("portcullis_hit", &hit),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_batched(
                || (router.clone(), request(&fixture.authorization)),
                |(router, req)| async move {
                    black_box(router.oneshot(req).await.expect("infallible"))
                },
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();

    if !under_cargo_bench() {
        return;
    }
    let fresh = fixture.fresh_tokens(ROUNDS * BLOCK);
    let signed: Vec<Signed> = fresh
        .iter()
        .map(|value| Signed::of(bearer(value)))
        .collect();
    let fresh_router = routes().route_layer(BearerAuthLayer::new(fixture.jwt.clone()));
    let same = || {
        (0..BLOCK)
            .map(|_| request(&fixture.authorization))
            .collect()
    };
    let per_call = rounds(
        ROUNDS,
        BLOCK,
        &mut [
            &mut |round| {
                time_block(
                    &rt,
                    &peer,
                    block(&fresh, round).iter().map(request).collect(),
                )
            },
            &mut |round| {
                time_block(
                    &rt,
                    &fresh_router,
                    block(&fresh, round).iter().map(request).collect(),
                )
            },
            &mut |round| {
                time_block(
                    &rt,
                    &crate_routes,
                    block(&fresh, round).iter().map(request).collect(),
                )
            },
            &mut |round| {
                let started = Instant::now();
                for signed in block(&signed, round) {
                    assert!(black_box(peer_crate.verify(signed)));
                }
                started.elapsed()
            },
            &mut |_| time_block(&rt, &hit, same()),
            &mut |_| time_block(&rt, &no_auth, same()),
        ],
    );
    report(
        "axum",
        &[
            "peer",
            "portcullis_miss",
            "peer_crate",
            "rustcrypto_verify",
            "portcullis_hit",
            "no_auth",
        ],
        &per_call,
        &[(0, 1), (2, 1), (2, 3), (0, 4), (2, 4), (4, 5)],
    );
}

/// `introspection/cached` vs `introspection/rs256_jwt`: one `JwtOrIntrospection` layer, an
/// opaque token whose introspection answer is cached next to an RS256 JWT validated locally.
fn introspection(c: &mut Criterion) {
    let rt = runtime();
    let fixture = rs256_fixture();
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

#[cfg(feature = "redis")]
#[allow(dead_code)]
#[path = "../tests/support/redis.rs"]
mod redis_server;

/// `introspection_tiers/*`: an opaque token answered from the instance's own cache, from the
/// endpoint, and (feature `redis`) from the shared Redis tier.
fn introspection_tiers(c: &mut Criterion) {
    let rt = runtime();
    let calls = Arc::new(AtomicUsize::new(0));
    let endpoint = rt.block_on(introspection_endpoint(Arc::clone(&calls)));
    // One HTTP client for every instance, so calls reuse a warm loopback connection.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let builder = || {
        Introspection::builder()
            .issuer(ISSUER)
            .endpoint(endpoint.clone())
            .client_credentials("bench-api", "bench-secret")
            .audience(AUDIENCE)
            .cache_max_ttl(Duration::from_secs(3600))
            .http_client(http.clone())
    };
    let ok = |req: Request<()>| async move {
        let mut response = Response::new(());
        if req.extensions().get::<Principal>().is_none() {
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        }
        Ok::<_, Infallible>(response)
    };
    let fresh = |builder: portcullis::IntrospectionBuilder| {
        let introspection = builder.build().expect("valid introspection configuration");
        BearerAuthLayer::new(introspection).layer(service_fn(ok))
    };
    let opaque = HeaderValue::from_static("Bearer 2YotnFZFEjr1zCsicMWpAA");
    let request = || {
        let mut req = Request::new(());
        req.headers_mut().insert(AUTHORIZATION, opaque.clone());
        req
    };
    let send = |service: portcullis::BearerAuth<_, Introspection>| {
        let response: Response<()> = rt.block_on(service.oneshot(request())).expect("infallible");
        assert_eq!(response.status(), StatusCode::OK, "the opaque token");
    };

    let warm = fresh(builder());
    send(warm.clone());
    send(fresh(builder()));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "each new instance calls");

    #[cfg(feature = "redis")]
    let (_redis, shared) = {
        let redis = redis_server::RedisServer::start();
        let store = portcullis::store::RedisStore::builder()
            .url(redis.url())
            .shared_key(*b"bench shared key, 32 bytes long!")
            .build()
            .expect("valid store");
        let shared = move || {
            builder().shared_cache(portcullis::store::RedisIntrospectionCache::new(
                store.clone(),
            ))
        };
        let before = calls.load(Ordering::SeqCst);
        send(fresh(shared()));
        send(fresh(shared()));
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before + 1,
            "the second instance found the answer in Redis"
        );
        (redis, shared)
    };

    let mut group = c.benchmark_group("introspection_tiers");
    group.bench_function("in_process", |b| {
        b.to_async(&rt).iter_batched(
            || (warm.clone(), request()),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("endpoint_call", |b| {
        b.to_async(&rt).iter_batched(
            || (fresh(builder()), request()),
            |(service, req)| async move {
                black_box(service.oneshot(req).await.expect("infallible"))
            },
            BatchSize::PerIteration,
        );
    });
    #[cfg(feature = "redis")]
    {
        let before = calls.load(Ordering::SeqCst);
        group.bench_function("redis_tier", |b| {
            b.to_async(&rt).iter_batched(
                || (fresh(shared()), request()),
                |(service, req)| async move {
                    black_box(service.oneshot(req).await.expect("infallible"))
                },
                BatchSize::PerIteration,
            );
        });
        assert_eq!(
            calls.load(Ordering::SeqCst),
            before,
            "every redis_tier request was answered by Redis"
        );
    }
    group.finish();
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
    let verify = || {
        jsonwebtoken::crypto::verify(
            signature,
            message.as_bytes(),
            &ec_public,
            jsonwebtoken::Algorithm::ES256,
        )
        .expect("verifies")
    };
    group.bench_function("es256_verify", |b| {
        b.iter(|| black_box(verify()));
    });
    group.finish();

    if !under_cargo_bench() {
        return;
    }
    // Paired: a block of each variant per round, the order rotating; the figure is the
    // per-round (dpop − bearer) / es256_verify. Proofs are signed before each block's clock
    // starts.
    let per_call = rounds(
        ROUNDS,
        BLOCK,
        &mut [
            &mut |_| {
                let started = Instant::now();
                for _ in 0..BLOCK {
                    black_box(verify());
                }
                started.elapsed()
            },
            &mut |_| {
                time_block(
                    &rt,
                    &service,
                    (0..BLOCK)
                        .map(|_| request("DPoP", &bound_token, Some(proof())))
                        .collect(),
                )
            },
            &mut |_| {
                time_block(
                    &rt,
                    &service,
                    (0..BLOCK)
                        .map(|_| request("Bearer", &bearer_token, None))
                        .collect(),
                )
            },
        ],
    );
    report("dpop", &["es256_verify", "dpop", "bearer"], &per_call, &[]);
    let extra: Vec<f64> = (0..ROUNDS)
        .map(|i| (per_call[1][i] - per_call[2][i]) / per_call[0][i])
        .collect();
    let (q1, median, q3) = quartiles(extra);
    println!(
        "dpop/paired  (dpop - bearer) / es256_verify: median {median:.3}, quartiles [{q1:.3}, {q3:.3}]"
    );
}

criterion_group!(
    benches,
    rs256,
    es256,
    eddsa,
    axum_peer,
    introspection,
    introspection_tiers,
    dpop
);
criterion_main!(benches);
