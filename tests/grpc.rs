//! portcullis in front of a real tonic server on 127.0.0.1, called by a real tonic client.
//!
//! Tokens are signed with the committed test key `tests/keys/rsa-a.pem`; the server trusts
//! its public half through a static JWK Set, so only the "issuer down" case needs a network
//! (a closed port on loopback).

use std::{
    net::SocketAddr,
    pin::Pin,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use futures_util::{Stream, stream};
use jsonwebtoken::{Algorithm, EncodingKey, Header, jwk::Jwk};
use portcullis::{
    Authenticate, BearerAuthLayer, Jwt, Principal, ScopePolicy,
    grpc::{self, GrpcRejection, MethodScopesLayer},
};
use serde_json::json;
use tonic::{
    Code, Request, Response, Status,
    transport::{Channel, Server, server::TcpIncoming},
};
use tower_layer::Layer;

#[allow(clippy::all, missing_docs, unreachable_pub)]
mod proto {
    include!("../examples/proto/inventory.v1.rs");
}

use proto::{
    GetItemRequest, Item, RestockProgress, RestockRequest,
    inventory_client::InventoryClient,
    inventory_server::{Inventory, InventoryServer},
};

const ISSUER: &str = "https://issuer.portcullis.test";
const AUDIENCE: &str = "https://inventory.portcullis.test";
const KID: &str = "rsa-a";
const GET_ITEM: &str = "/inventory.v1.Inventory/GetItem";
const RESTOCK: &str = "/inventory.v1.Inventory/Restock";
const LACKS_SCOPE: &str = "the token lacks a scope this resource requires";
/// What every unauthenticated caller with a bad token is told, whatever the reason.
const INVALID_TOKEN: &str =
    "the access token is expired, revoked, malformed, or not valid for this resource";

// ---------------------------------------------------------------------------------------
// Tokens

fn signing_key() -> EncodingKey {
    portcullis::__doc_support::install_crypto_provider();
    let pem = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa-a.pem"))
        .expect("tests/keys/rsa-a.pem");
    EncodingKey::from_rsa_pem(&pem).expect("an RSA private key")
}

/// The JWK Set with the public half of the signing key.
fn jwks() -> String {
    let mut jwk = Jwk::from_encoding_key(&signing_key(), Algorithm::RS256).expect("a JWK");
    jwk.common.key_id = Some(KID.to_owned());
    json!({ "keys": [jwk] }).to_string()
}

fn now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    i64::try_from(secs).expect("in range")
}

/// An access token for `sub` with `scope`, expiring `exp_in` seconds from now.
fn token_with(sub: &str, scope: &str, exp_in: i64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    header.typ = Some("at+jwt".to_owned());
    let now = now();
    let claims = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": sub,
        "client_id": "grpc-tests",
        "scope": scope,
        "iat": now.min(now + exp_in) - 60,
        "exp": now + exp_in,
        "jti": format!("{sub}-{now}-{exp_in}"),
    });
    jsonwebtoken::encode(&header, &claims, &signing_key()).expect("a signed token")
}

fn token(scope: &str) -> String {
    token_with("alice", scope, 300)
}

fn jwt() -> Jwt {
    Jwt::builder()
        .issuer_with_jwks(ISSUER, jwks())
        .audience(AUDIENCE)
        .build()
        .expect("a valid configuration")
}

// ---------------------------------------------------------------------------------------
// The service

/// Echoes the caller's subject, as the handler sees it, in every answer.
struct Shop;

type RestockStream = Pin<Box<dyn Stream<Item = Result<RestockProgress, Status>> + Send>>;

#[tonic::async_trait]
impl Inventory for Shop {
    async fn get_item(&self, request: Request<GetItemRequest>) -> Result<Response<Item>, Status> {
        let principal: Principal = grpc::principal(&request)?;
        let scopes = grpc::scopes(&request)?;
        assert_eq!(principal.scopes(), &scopes);
        Ok(Response::new(Item {
            id: request.get_ref().id.clone(),
            name: "apples".to_owned(),
            quantity: 12,
            requested_by: principal.subject().unwrap_or_default().to_owned(),
        }))
    }

    type RestockStream = RestockStream;

    async fn restock(
        &self,
        request: Request<RestockRequest>,
    ) -> Result<Response<Self::RestockStream>, Status> {
        let principal: Principal = grpc::principal(&request)?;
        let requested_by = principal.subject().unwrap_or_default().to_owned();
        let RestockRequest { id, units } = request.into_inner();
        let progress = stream::iter((1..=units).map(move |quantity| {
            Ok(RestockProgress {
                id: id.clone(),
                quantity,
                requested_by: requested_by.clone(),
            })
        }));
        Ok(Response::new(Box::pin(progress)))
    }
}

/// The example's policy: `read` for the unary method, `write` for the streaming one.
fn scopes_layer() -> MethodScopesLayer {
    MethodScopesLayer::new()
        .method(GET_ITEM, ScopePolicy::all(["read"]))
        .method(RESTOCK, ScopePolicy::all(["write"]))
}

async fn listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("a local address");
    (listener, addr)
}

/// Serves `Shop` with the two layers around the whole server (`Server::layer`); the task
/// ends with the test's runtime.
async fn serve<A>(auth: BearerAuthLayer<A, GrpcRejection>, scopes: MethodScopesLayer) -> SocketAddr
where
    A: Authenticate + Clone + Send + Sync + 'static,
{
    let (listener, addr) = listener().await;
    tokio::spawn(
        Server::builder()
            .layer(auth)
            .layer(scopes)
            .add_service(InventoryServer::new(Shop))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

/// Serves `Shop` with the layers wrapped around the service itself before `add_service`.
async fn serve_wrapped(
    auth: BearerAuthLayer<Jwt, GrpcRejection>,
    scopes: MethodScopesLayer,
) -> SocketAddr {
    let (listener, addr) = listener().await;
    let service = auth.layer(scopes.layer(InventoryServer::new(Shop)));
    tokio::spawn(
        Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    addr
}

async fn client(addr: SocketAddr) -> InventoryClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a URI")
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("the server accepts connections");
    InventoryClient::new(channel)
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("ASCII");
        request.metadata_mut().insert("authorization", value);
    }
    request
}

async fn get_item(addr: SocketAddr, token: Option<&str>) -> Result<Item, Status> {
    let request = with_token(
        GetItemRequest {
            id: "apples".to_owned(),
        },
        token,
    );
    let response = client(addr).await.get_item(request).await?;
    Ok(response.into_inner())
}

async fn restock(
    addr: SocketAddr,
    token: Option<&str>,
    units: u32,
) -> Result<Vec<RestockProgress>, Status> {
    let request = with_token(
        RestockRequest {
            id: "pears".to_owned(),
            units,
        },
        token,
    );
    let mut stream = client(addr).await.restock(request).await?.into_inner();
    let mut messages = Vec::new();
    while let Some(message) = stream.message().await? {
        messages.push(message);
    }
    Ok(messages)
}

/// Checks the code and that the message is the fixed description, never the token.
fn assert_status(
    result: Result<impl std::fmt::Debug, Status>,
    code: Code,
    message: &str,
    token: Option<&str>,
) -> Status {
    let status = result.expect_err("the call should be rejected");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(status.message(), message, "{status:?}");
    if let Some(token) = token {
        let rendered = format!("{status:?}");
        for part in token.split('.') {
            assert!(
                !rendered.contains(part),
                "the status leaks the token: {rendered}"
            );
        }
    }
    status
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_principal() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    let item = get_item(addr, Some(&token("read"))).await.expect("OK");
    assert_eq!(item.id, "apples");
    assert_eq!(item.requested_by, "alice");
}

#[tokio::test]
async fn a_missing_token_is_unauthenticated() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    assert_status(
        get_item(addr, None).await,
        Code::Unauthenticated,
        "no bearer token in the request",
        None,
    );
}

#[tokio::test]
async fn an_expired_token_is_unauthenticated() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    let expired = token_with("alice", "read write", -600);
    assert_status(
        get_item(addr, Some(&expired)).await,
        Code::Unauthenticated,
        INVALID_TOKEN,
        Some(&expired),
    );
}

#[tokio::test]
async fn malformed_and_foreign_tokens_are_unauthenticated() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    let truncated = token("read");
    let table = [
        ("not-a-jwt", INVALID_TOKEN),
        ("a.b.c", INVALID_TOKEN),
        (&truncated[..40], INVALID_TOKEN),
    ];
    for (bad, message) in table {
        assert_status(
            get_item(addr, Some(bad)).await,
            Code::Unauthenticated,
            message,
            // The fixed message is compared whole; the leak check needs a long token.
            (bad.len() > 20).then_some(bad),
        );
    }
    // Signed by the right key, but for another audience.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let claims = json!({ "iss": ISSUER, "aud": "https://other.test", "sub": "alice", "scope": "read", "exp": now() + 300 });
    let foreign = jsonwebtoken::encode(&header, &claims, &signing_key()).expect("a token");
    assert_status(
        get_item(addr, Some(&foreign)).await,
        Code::Unauthenticated,
        INVALID_TOKEN,
        Some(&foreign),
    );
}

#[tokio::test]
async fn a_missing_scope_is_permission_denied() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    let writer = token("write");
    assert_status(
        get_item(addr, Some(&writer)).await,
        Code::PermissionDenied,
        "the token lacks a scope this resource requires",
        Some(&writer),
    );
}

#[tokio::test]
async fn an_unreachable_jwks_endpoint_is_unavailable() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("a local address");
    let jwt = Jwt::builder()
        .issuer_with_jwks_uri(ISSUER, format!("http://{closed}/jwks"))
        .audience(AUDIENCE)
        .http_timeout(Duration::from_millis(500))
        .build()
        .expect("a valid configuration");
    let addr = serve(BearerAuthLayer::new(jwt).grpc(), scopes_layer()).await;
    let reader = token("read");
    let status = assert_status(
        get_item(addr, Some(&reader)).await,
        Code::Unavailable,
        "the issuer's keys cannot be fetched",
        Some(&reader),
    );
    let pushback = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .expect("a retry pushback")
        .to_str()
        .expect("ASCII");
    assert!(
        pushback.parse::<u64>().expect("milliseconds") >= 1000,
        "{pushback}"
    );

    // A token that cannot be valid whatever the keys is still the client's fault.
    let status = get_item(addr, None).await.expect_err("no token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_streaming_call_is_guarded_the_same_way() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;

    let messages = restock(addr, Some(&token("write")), 3).await.expect("OK");
    assert_eq!(
        messages.iter().map(|m| m.quantity).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert!(
        messages.iter().all(|m| m.requested_by == "alice"),
        "{messages:?}"
    );

    assert_status(
        restock(addr, None, 3).await,
        Code::Unauthenticated,
        "no bearer token in the request",
        None,
    );
    let reader = token("read");
    assert_status(
        restock(addr, Some(&reader), 3).await,
        Code::PermissionDenied,
        "the token lacks a scope this resource requires",
        Some(&reader),
    );
    let expired = token_with("alice", "write", -600);
    assert_status(
        restock(addr, Some(&expired), 3).await,
        Code::Unauthenticated,
        INVALID_TOKEN,
        Some(&expired),
    );
}

#[tokio::test]
async fn an_unmapped_method_is_denied() {
    let only_get = MethodScopesLayer::new().method(GET_ITEM, ScopePolicy::all(["read"]));
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), only_get.clone()).await;
    let everything = token("read write admin");
    assert_status(
        restock(addr, Some(&everything), 1).await,
        Code::PermissionDenied,
        "no scope grants access to this method",
        Some(&everything),
    );
    get_item(addr, Some(&everything)).await.expect("mapped");

    // Opened on purpose: any authenticated caller, whatever its scopes.
    let addr = serve(
        BearerAuthLayer::new(jwt()).grpc(),
        only_get.allow_unmapped(true),
    )
    .await;
    assert_eq!(
        restock(addr, Some(&token("")), 1).await.expect("OK").len(),
        1
    );
    assert_status(
        restock(addr, None, 1).await,
        Code::Unauthenticated,
        "no bearer token in the request",
        None,
    );
}

#[tokio::test]
async fn a_service_entry_covers_its_methods_unless_a_method_entry_overrides_it() {
    let layer = MethodScopesLayer::new()
        .service(
            "inventory.v1.Inventory",
            ScopePolicy::any(["inventory", "admin"]),
        )
        .method(RESTOCK, ScopePolicy::all(["admin"]));
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), layer).await;
    get_item(addr, Some(&token("inventory")))
        .await
        .expect("service entry");
    assert_status(
        restock(addr, Some(&token("inventory")), 1).await,
        Code::PermissionDenied,
        LACKS_SCOPE,
        None,
    );
    restock(addr, Some(&token("admin")), 1)
        .await
        .expect("admin");
}

#[tokio::test]
async fn layers_can_wrap_a_single_service() {
    let addr = serve_wrapped(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    let item = get_item(addr, Some(&token("read"))).await.expect("OK");
    assert_eq!(item.requested_by, "alice");
    assert_status(
        get_item(addr, None).await,
        Code::Unauthenticated,
        "no bearer token in the request",
        None,
    );
    assert_status(
        restock(addr, Some(&token("read")), 1).await,
        Code::PermissionDenied,
        LACKS_SCOPE,
        None,
    );
}

#[tokio::test]
async fn a_layer_wide_scope_requirement_is_permission_denied_too() {
    let auth = BearerAuthLayer::new(jwt())
        .require_scopes(ScopePolicy::all(["inventory"]))
        .grpc();
    let addr = serve(auth, scopes_layer().allow_unmapped(true)).await;
    assert_status(
        get_item(addr, Some(&token("read"))).await,
        Code::PermissionDenied,
        LACKS_SCOPE,
        None,
    );
    get_item(addr, Some(&token("inventory read")))
        .await
        .expect("OK");
}

#[cfg(feature = "introspection")]
#[tokio::test]
async fn an_unreachable_introspection_endpoint_is_unavailable() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("a local address");
    let introspection = portcullis::Introspection::builder()
        .issuer(ISSUER)
        .endpoint(format!("http://{closed}/introspect"))
        .client_credentials("inventory-api", "inventory-secret")
        .audience(AUDIENCE)
        .http_timeout(Duration::from_millis(500))
        .build()
        .expect("a valid configuration");
    let addr = serve(BearerAuthLayer::new(introspection).grpc(), scopes_layer()).await;
    let opaque = "2YotnFZFEjr1zCsicMWpAA";
    assert_status(
        get_item(addr, Some(opaque)).await,
        Code::Unavailable,
        "the token introspection endpoint cannot be used",
        Some(opaque),
    );
}

/// The rejection's wire shape, seen by a plain HTTP/2 client: a trailers-only gRPC answer
/// (HTTP 200, `application/grpc`, `grpc-status` and `grpc-message` in the headers, no body).
#[tokio::test]
async fn rejections_are_trailers_only_grpc_answers_on_the_wire() {
    let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("an HTTP/2 client");
    // One empty, uncompressed gRPC message: flag 0, length 0.
    let frame = vec![0u8; 5];
    let call = |path: &str, token: Option<String>| {
        let mut request = http
            .post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(frame.clone());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };

    let cases = [
        (GET_ITEM, None, "16", "no bearer token in the request"),
        (RESTOCK, Some(token("read")), "7", LACKS_SCOPE),
    ];
    for (path, token, code, message) in cases {
        let response = call(path, token).await.expect("an HTTP/2 answer");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(response.status(), reqwest::StatusCode::OK, "{path}");
        assert_eq!(header("content-type").as_deref(), Some("application/grpc"));
        assert_eq!(header("grpc-status").as_deref(), Some(code), "{path}");
        // tonic reads the status from the headers the way a client does, decoding the
        // percent-encoded `grpc-message`.
        let status = Status::from_header_map(response.headers()).expect("a gRPC status");
        assert_eq!(status.message(), message, "{path}");
        let body = response.bytes().await.expect("a body");
        assert!(
            body.is_empty(),
            "{path}: a trailers-only answer has no body"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Step-up (RFC 9470) under tonic

/// A `read` token for alice with `acr` (when given) and `auth_time` `age` seconds ago.
fn token_with_acr(acr: Option<&str>, age: i64) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let now = now();
    let mut claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "scope": "read",
        "iat": now - 10, "exp": now + 300, "auth_time": now - age,
    });
    if let Some(acr) = acr {
        claims["acr"] = json!(acr);
    }
    jsonwebtoken::encode(&header, &claims, &signing_key()).expect("a signed token")
}

#[tokio::test]
async fn a_step_up_failure_is_unauthenticated_with_the_challenge_in_the_metadata() {
    let policy = portcullis::StepUpPolicy::builder()
        .acr_values(["urn:example:mfa"])
        .max_age(Duration::from_secs(600))
        .build()
        .expect("a valid policy");
    let (listener, addr) = listener().await;
    tokio::spawn(
        Server::builder()
            .layer(BearerAuthLayer::new(jwt()).grpc())
            .layer(portcullis::RequireStepUpLayer::new(policy).on_rejection(GrpcRejection::new()))
            .add_service(InventoryServer::new(Shop))
            .serve_with_incoming(TcpIncoming::from(listener)),
    );
    let challenge = r#"Bearer error="insufficient_user_authentication", acr_values="urn:example:mfa", max_age="600""#;

    for (token, message) in [
        (
            token_with_acr(None, 5),
            "the user's authentication context does not satisfy this resource",
        ),
        (
            token_with_acr(Some("urn:example:pwd"), 5),
            "the user's authentication context does not satisfy this resource",
        ),
        (
            token_with_acr(Some("urn:example:mfa"), 601),
            "the user's authentication is too old for this resource",
        ),
    ] {
        let status = assert_status(
            get_item(addr, Some(&token)).await,
            Code::Unauthenticated,
            message,
            Some(&token),
        );
        let got = status
            .metadata()
            .get("www-authenticate")
            .expect("the challenge")
            .to_str()
            .expect("ASCII");
        assert_eq!(got, challenge);
    }
    let item = get_item(addr, Some(&token_with_acr(Some("urn:example:mfa"), 5)))
        .await
        .expect("a strong, recent authentication passes");
    assert_eq!(item.id, "apples");
}

// ---------------------------------------------------------------------------------------
// DPoP (RFC 9449) under gRPC: `htu` is the gRPC request's URI, `htm` is `POST`.

mod dpop {
    use super::*;
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
    use sha2::{Digest, Sha256};

    /// The committed P-256 test key as the client's proof key, with its public JWK and
    /// RFC 7638 thumbprint.
    struct ProofKey {
        key: EncodingKey,
        jwk: serde_json::Value,
        jkt: String,
    }

    fn proof_key() -> ProofKey {
        portcullis::__doc_support::install_crypto_provider();
        let pem = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/keys/ec-p256.pem"
        ))
        .expect("tests/keys/ec-p256.pem");
        let key = EncodingKey::from_ec_pem(&pem).expect("an EC private key");
        let full =
            serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::ES256).expect("JWK"))
                .expect("JWK JSON");
        let (x, y) = (
            full["x"].as_str().expect("x"),
            full["y"].as_str().expect("y"),
        );
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        ProofKey {
            jkt: URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())),
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            key,
        }
    }

    fn b64(value: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
    }

    impl ProofKey {
        fn proof(&self, htu: &str, token: &str, nonce: Option<&str>) -> String {
            let mut claims = json!({
                "jti": format!("{}-{htu}-{nonce:?}", now()),
                "htm": "POST",
                "htu": htu,
                "iat": now(),
                "ath": URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes())),
            });
            if let Some(nonce) = nonce {
                claims["nonce"] = json!(nonce);
            }
            let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
            let message = format!("{}.{}", b64(&header), b64(&claims));
            let signature =
                jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, Algorithm::ES256)
                    .expect("ES256");
            format!("{message}.{signature}")
        }
    }

    /// A `read` token bound to `jkt`.
    fn bound_token(jkt: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID.to_owned());
        header.typ = Some("at+jwt".to_owned());
        let claims = json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "scope": "read",
            "iat": now(), "exp": now() + 300, "cnf": {"jkt": jkt},
        });
        jsonwebtoken::encode(&header, &claims, &signing_key()).expect("a signed token")
    }

    async fn call(
        addr: SocketAddr,
        scheme: &str,
        token: &str,
        proof: Option<String>,
    ) -> Result<Item, Status> {
        let mut request = Request::new(GetItemRequest {
            id: "apples".to_owned(),
        });
        let metadata = request.metadata_mut();
        metadata.insert(
            "authorization",
            format!("{scheme} {token}").parse().expect("ASCII"),
        );
        if let Some(proof) = proof {
            metadata.insert("dpop", proof.parse().expect("ASCII"));
        }
        Ok(client(addr).await.get_item(request).await?.into_inner())
    }

    #[tokio::test]
    async fn dpop_bound_tokens_need_a_proof_for_the_grpc_method() {
        let key = proof_key();
        let token = bound_token(&key.jkt);
        let addr = serve(BearerAuthLayer::new(jwt()).grpc(), scopes_layer()).await;
        let htu = format!("http://{addr}{GET_ITEM}");

        let item = call(addr, "DPoP", &token, Some(key.proof(&htu, &token, None)))
            .await
            .expect("a valid proof for this method");
        assert_eq!(item.requested_by, "alice");

        let other = format!("http://{addr}{RESTOCK}");
        let status = call(addr, "DPoP", &token, Some(key.proof(&other, &token, None))).await;
        assert_status(
            status,
            Code::Unauthenticated,
            "the DPoP proof is for another URI",
            Some(&token),
        );
        let status = call(addr, "Bearer", &token, None).await;
        assert_status(status, Code::Unauthenticated, INVALID_TOKEN, Some(&token));
    }

    #[tokio::test]
    async fn the_dpop_nonce_travels_as_metadata() {
        let key = proof_key();
        let token = bound_token(&key.jkt);
        let addr = serve(
            BearerAuthLayer::new(jwt()).dpop_nonces(true).grpc(),
            scopes_layer(),
        )
        .await;
        let htu = format!("http://{addr}{GET_ITEM}");

        let status = call(addr, "DPoP", &token, Some(key.proof(&htu, &token, None))).await;
        let status = assert_status(
            status,
            Code::Unauthenticated,
            "the DPoP proof lacks a valid server nonce",
            Some(&token),
        );
        let nonce = status
            .metadata()
            .get("dpop-nonce")
            .expect("a dpop-nonce in the status metadata")
            .to_str()
            .expect("ASCII")
            .to_owned();
        let item = call(
            addr,
            "DPoP",
            &token,
            Some(key.proof(&htu, &token, Some(&nonce))),
        )
        .await
        .expect("the proof with the server's nonce");
        assert_eq!(item.requested_by, "alice");
    }
}
