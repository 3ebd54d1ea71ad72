//! The loopback HTTP server of a test issuer: OpenID Connect discovery, RFC 8414 metadata
//! and the JWK Set, read from the issuer's current keys on every request.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::{net::TcpListener, task::JoinSet};

use super::Shared;

/// Where the OpenID Connect discovery document is served.
pub(super) const OIDC_PATH: &str = "/.well-known/openid-configuration";
/// Where the RFC 8414 authorization server metadata is served (the same document).
pub(super) const RFC8414_PATH: &str = "/.well-known/oauth-authorization-server";
/// Where the JWK Set is served.
pub(super) const JWKS_PATH: &str = "/jwks";

/// The running server; dropping it stops the accept loop and every open connection.
#[derive(Debug)]
pub(super) struct Server {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves `shared` on `listener` from a task on the current Tokio runtime.
    pub(super) fn spawn(listener: TcpListener, shared: Arc<Shared>) -> Self {
        let discovery = Bytes::from(
            json!({
                "issuer": shared.issuer,
                "jwks_uri": format!("{}{JWKS_PATH}", shared.issuer),
                "response_types_supported": ["token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            })
            .to_string(),
        );
        let task = tokio::spawn(accept_loop(listener, shared, discovery));
        Self { task }
    }
}

/// Accepts connections until aborted. The connections live in a `JoinSet` owned by this
/// task, so aborting it closes them too (a client's pooled keep-alive connection included).
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, discovery: Bytes) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors and the like: wait a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let discovery = discovery.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let response = respond(&shared, &discovery, &request);
                async move { Ok::<_, Infallible>(response) }
            });
            // A connection error concerns that client only.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn respond<B>(shared: &Shared, discovery: &Bytes, request: &Request<B>) -> Response<Full<Bytes>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = empty(StatusCode::METHOD_NOT_ALLOWED);
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        OIDC_PATH | RFC8414_PATH => json_response(discovery.clone()),
        JWKS_PATH => json_response(shared.keys.load().jwks.clone()),
        _ => empty(StatusCode::NOT_FOUND),
    }
}

fn json_response(body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
