//! Requests per second over loopback HTTP/1.1, and the memory of the verified-token cache.
//!
//! Throughput: an axum 0.8 server on `127.0.0.1:0`, on a tokio runtime with 1 and then 2
//! worker threads, answers `GET /` with `200`. A small load generator in the same process
//! (one thread of its own, [`CONNECTIONS`] keep-alive connections, a fixed number of
//! requests, only to that loopback address) sends, in [`ROUNDS`] rounds that each run every
//! variant once (the order rotating), the ratios taken within each round:
//!
//! - `no_auth`: no middleware, the same `Authorization` header all the same;
//! - `repeated`: `BearerAuthLayer` with the defaults, one RS256 token on every request
//!   (verified-token cache hits after the first);
//! - `distinct`: the same layer, a different RS256 token on every request (all misses:
//!   each is a full validation plus a cache insertion).
//!
//! Memory: the resident set size (`VmRSS` of `/proc/self/status`, Linux) before and after
//! 100 000 distinct valid tokens through the layer, with the default cache capacity, and
//! again with a capacity that keeps them all, which gives the bytes per remembered token.
//!
//! Run with `cargo bench --bench throughput`. Under `cargo test --benches` it runs once with
//! small counts, as a check that every request gets its expected answer.

use std::{
    convert::Infallible,
    net::SocketAddr,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{Router, routing::get};
use http::{Request, Response, StatusCode, header::AUTHORIZATION};
use jsonwebtoken::{
    EncodingKey, Header,
    jwk::{Jwk, JwkSet},
};
use portcullis::{BearerAuthLayer, Jwt};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use tower::{Layer, ServiceExt, service_fn};

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com";
/// Keep-alive connections of the load generator.
const CONNECTIONS: usize = 16;

struct Signer {
    header: Header,
    encoding: EncodingKey,
    jwks: String,
}

impl Signer {
    fn new(alg: jsonwebtoken::Algorithm, pem: &[u8], kid: &str) -> Self {
        portcullis::__doc_support::install_crypto_provider();
        let encoding = match alg {
            jsonwebtoken::Algorithm::EdDSA => EncodingKey::from_ed_pem(pem),
            _ => EncodingKey::from_rsa_pem(pem),
        }
        .expect("test key PEM");
        let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("public JWK");
        jwk.common.key_id = Some(kid.to_owned());
        let jwks = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("JWK Set JSON");
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid.to_owned());
        Self {
            header,
            encoding,
            jwks,
        }
    }

    /// `n` RFC 9068 access tokens, each with its own `jti`.
    fn tokens(&self, n: usize) -> Vec<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs();
        (0..n)
            .map(|i| {
                let claims = serde_json::json!({
                    "iss": ISSUER,
                    "sub": "user-1234",
                    "aud": AUDIENCE,
                    "exp": now + 3600,
                    "iat": now,
                    "jti": format!("{now}-{i:08}-0b7e6c5c-5d2b-4c2e-9a53"),
                    "client_id": "bench-client",
                    "scope": "orders:read orders:write profile",
                });
                jsonwebtoken::encode(&self.header, &claims, &self.encoding).expect("token")
            })
            .collect()
    }

    fn jwt(&self) -> portcullis::JwtBuilder {
        Jwt::builder()
            .issuer_with_jwks(ISSUER, self.jwks.clone())
            .audience(AUDIENCE)
    }
}

/// Starts the server on `workers` worker threads; returns its address and the runtime.
fn serve(workers: usize, app: Router) -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("server runtime");
    let listener = rt
        .block_on(TcpListener::bind("127.0.0.1:0"))
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    rt.spawn(async move { axum::serve(listener, app).await });
    (addr, rt)
}

/// Sends `requests[i]` (raw HTTP/1.1 requests) over [`CONNECTIONS`] keep-alive
/// connections, each connection one request at a time; every answer must be `200`.
/// Returns requests per second.
fn load(addr: SocketAddr, requests: Vec<Vec<u8>>) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let total = requests.len();
    let mut shares: Vec<Vec<Vec<u8>>> = vec![Vec::new(); CONNECTIONS];
    for (i, r) in requests.into_iter().enumerate() {
        shares[i % CONNECTIONS].push(r);
    }
    rt.block_on(async move {
        let mut streams = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            let stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            streams.push(stream);
        }
        let started = Instant::now();
        let tasks: Vec<_> = streams
            .into_iter()
            .zip(shares)
            .map(|(mut stream, share)| {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for request in share {
                        stream.write_all(&request).await.expect("write");
                        read_response(&mut stream, &mut buf).await;
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(120), task)
                .await
                .expect("the load finishes in bounded time")
                .expect("connection task");
        }
        total as f64 / started.elapsed().as_secs_f64()
    })
}

/// Reads one response with an empty body and asserts it is `200`.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) {
    let mut len = 0;
    loop {
        let n = stream.read(&mut buf[len..]).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        len += n;
        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        assert!(len < buf.len(), "response head too large");
    }
    let head = std::str::from_utf8(&buf[..len]).expect("ASCII head");
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "unexpected answer: {head}"
    );
    assert!(
        head.to_ascii_lowercase().contains("content-length: 0"),
        "an empty body: {head}"
    );
}

fn raw_request(token: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {token}\r\n\r\n")
        .into_bytes()
}

fn routes() -> Router {
    Router::new().route("/", get(|| async { StatusCode::OK }))
}

/// Rounds per worker count; each round runs every variant once, in a rotating order, so
/// that the ratios compare runs made under the same conditions.
const ROUNDS: usize = 15;

fn throughput(requests: usize, rounds: usize) {
    let signer = Signer::new(
        jsonwebtoken::Algorithm::RS256,
        include_bytes!("../tests/keys/rsa-a.pem"),
        "bench-rs256",
    );
    let one = signer.tokens(1).remove(0);
    let distinct = signer.tokens(requests);
    let variants = ["no_auth", "repeated", "distinct"];
    for workers in [1, 2] {
        let mut rates = vec![Vec::new(); variants.len()];
        let mut ratios = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let mut rps = [0.0; 3];
            for step in 0..variants.len() {
                let index = (round + step) % variants.len();
                // A new server and authenticator per run: every distinct token is a first
                // request.
                let app = match index {
                    0 => routes(),
                    _ => routes().layer(BearerAuthLayer::new(signer.jwt().build().expect("jwt"))),
                };
                let (addr, server) = serve(workers, app);
                let batch: Vec<Vec<u8>> = match index {
                    2 => distinct.iter().map(|t| raw_request(t)).collect(),
                    _ => (0..requests).map(|_| raw_request(&one)).collect(),
                };
                // A short warm-up (connections, allocator) with the repeated token, which
                // leaves the distinct ones unseen.
                load(
                    addr,
                    (0..requests / 20).map(|_| raw_request(&one)).collect(),
                );
                rps[index] = load(addr, batch);
                rates[index].push(rps[index]);
                server.shutdown_timeout(Duration::from_secs(1));
            }
            ratios.0.push(rps[1] / rps[0]);
            ratios.1.push(rps[2] / rps[0]);
        }
        for (variant, rates) in variants.iter().zip(&mut rates) {
            println!(
                "throughput/{workers}w/{variant:<9} {:>9.0} requests/s (median of {rounds})",
                median(rates)
            );
        }
        println!(
            "throughput/{workers}w  repeated / no_auth {:.3}, distinct / no_auth {:.3} (medians of the per-round ratios)",
            median(&mut ratios.0),
            median(&mut ratios.1)
        );
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status (Linux)");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line");
    kib * 1024
}

fn memory(tokens: usize) {
    let signer = Signer::new(
        jsonwebtoken::Algorithm::EdDSA,
        include_bytes!("../tests/keys/ed25519.pem"),
        "bench-eddsa",
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let pass = |jwt: Jwt, tokens: &[String]| {
        let service = BearerAuthLayer::new(jwt).layer(service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(()))
        }));
        for token in tokens {
            let req = Request::builder()
                .header(AUTHORIZATION, format!("Bearer {token}"))
                .body(())
                .expect("request");
            let response = rt
                .block_on(service.clone().oneshot(req))
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::OK);
        }
        service
    };
    let before = rss();
    let batch = signer.tokens(tokens);
    let minted = rss();
    let default_jwt = signer.jwt().build().expect("jwt");
    let kept_default = pass(default_jwt, &batch);
    let after_default = rss();
    let roomy = signer
        .jwt()
        .token_cache_capacity(tokens as u64 * 2)
        .token_cache_max_bytes(1 << 30)
        .build()
        .expect("jwt");
    let kept_all = pass(roomy, &batch);
    let after_all = rss();
    println!(
        "memory/rss  start {:.1} MiB, {tokens} tokens minted {:.1} MiB, after them through the \
         default cache {:.1} MiB (+{:.1} MiB), through a cache that keeps all {:.1} MiB (+{:.1} MiB)",
        mib(before),
        mib(minted),
        mib(after_default),
        mib(after_default.saturating_sub(minted)),
        mib(after_all),
        mib(after_all.saturating_sub(after_default)),
    );
    println!(
        "memory/per_token  {:.0} bytes per remembered token",
        after_all.saturating_sub(after_default) as f64 / tokens as f64
    );
    drop((kept_default, kept_all));
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (requests, rounds, tokens) = if bench {
        (10_000, ROUNDS, 100_000)
    } else {
        (200, 1, 1_000)
    };
    throughput(requests, rounds);
    memory(tokens);
}
