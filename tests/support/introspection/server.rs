//! An RFC 7662 introspection endpoint and an OpenID discovery document, in-process.

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, Response, StatusCode, Uri, header},
    response::IntoResponse,
    routing::{get, post},
};
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinHandle};

use super::{ISSUER, lock};

/// How long the stalling endpoint sleeps before it answers; far past any client timeout the
/// tests configure.
pub const STALL: Duration = Duration::from_secs(3);

/// How the introspection endpoint answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `200` with the token's answer from the table (`{"active":false}` for unknown tokens).
    Normal,
    /// `500` whose body would accept the token if the status were ignored.
    ServerError,
    /// `401` (the resource server's own credentials refused), same trap body.
    Unauthorized,
    /// Sleeps for [`STALL`], then answers an active token.
    Stall,
    /// `200` with an HTML page.
    NotJson,
    /// `200` with an active answer larger than 64 KiB, with a `Content-Length`.
    Oversized,
    /// The same oversized answer streamed in chunks, without a `Content-Length`.
    OversizedChunked,
}

/// One request as the endpoint received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub uri: Uri,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    /// The raw form body.
    pub body: String,
}

impl Recorded {
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    /// The single value of the form field `name`; panics when it is repeated.
    pub fn field(&self, name: &str) -> Option<String> {
        let mut values = self.form().into_iter().filter(|(k, _)| k == name);
        let first = values.next().map(|(_, v)| v);
        assert!(
            values.next().is_none(),
            "`{name}` repeated in {}",
            self.body
        );
        first
    }
}

struct ServerState {
    introspection_endpoint: String,
    calls: AtomicUsize,
    discovery_calls: AtomicUsize,
    /// Raw JSON answers by token.
    answers: Mutex<HashMap<String, String>>,
    mode: Mutex<Mode>,
    /// Extra time before every answer, to keep many requests in flight.
    delay: Mutex<Duration>,
    last: Mutex<Option<Recorded>>,
    /// The discovery document, or `None` for `404`.
    discovery: Mutex<Option<Value>>,
}

/// An introspection endpoint at `{base}/introspect` and a discovery document at
/// `{base}/.well-known/openid-configuration`. The server task is aborted on drop.
pub struct IntrospectionServer {
    /// `http://127.0.0.1:{port}`.
    pub base: String,
    state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl IntrospectionServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        Self::serve(listener)
    }

    /// Serves on `addr`, a port known to be free.
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("rebind {addr}: {e}"));
        Self::serve(listener)
    }

    fn serve(listener: TcpListener) -> Self {
        super::capture_logs();
        let addr = listener.local_addr().expect("local address");
        let base = format!("http://{addr}");
        let state = Arc::new(ServerState {
            introspection_endpoint: format!("{base}/introspect"),
            calls: AtomicUsize::new(0),
            discovery_calls: AtomicUsize::new(0),
            answers: Mutex::default(),
            mode: Mutex::new(Mode::Normal),
            delay: Mutex::default(),
            last: Mutex::default(),
            discovery: Mutex::default(),
        });
        let app = Router::new()
            .route("/introspect", post(introspect))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { base, state, task }
    }

    pub fn endpoint(&self) -> String {
        self.state.introspection_endpoint.clone()
    }

    /// From now on, `token` is answered with `answer` (in [`Mode::Normal`]).
    pub fn answer(&self, token: &str, answer: Value) {
        self.answer_raw(token, &answer.to_string());
    }

    /// Like [`answer`](Self::answer), with any body, JSON or not.
    pub fn answer_raw(&self, token: &str, answer: &str) {
        lock(&self.state.answers).insert(token.to_owned(), answer.to_owned());
    }

    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.state.mode) = mode;
    }

    pub fn set_delay(&self, delay: Duration) {
        *lock(&self.state.delay) = delay;
    }

    pub fn serve_discovery(&self, document: Value) {
        *lock(&self.state.discovery) = Some(document);
    }

    /// Requests received by the introspection endpoint so far.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// Requests received by the discovery document so far.
    pub fn discovery_calls(&self) -> usize {
        self.state.discovery_calls.load(Ordering::SeqCst)
    }

    pub fn last_request(&self) -> Recorded {
        lock(&self.state.last)
            .clone()
            .expect("the endpoint received a request")
    }
}

impl Drop for IntrospectionServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An active answer that would let the token in, the body of every failure mode, so that a
/// client ignoring the failure would accept the token and fail the test.
fn trap_answer() -> Value {
    json!({"active": true, "iss": ISSUER, "sub": "must-not-be-accepted", "scope": "read"})
}

fn oversized_answer() -> String {
    let mut answer = trap_answer();
    answer["padding"] = Value::String("x".repeat(70 * 1024));
    answer.to_string()
}

fn json_response(body: impl Into<Body>) -> Response<Body> {
    let mut response = Response::new(body.into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

async fn introspect(
    State(state): State<Arc<ServerState>>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response<Body> {
    state.calls.fetch_add(1, Ordering::SeqCst);
    let text = |name| {
        headers
            .get(name)
            .map(|v: &HeaderValue| v.to_str().expect("ASCII header").to_owned())
    };
    let recorded = Recorded {
        uri,
        authorization: text(header::AUTHORIZATION),
        content_type: text(header::CONTENT_TYPE),
        body,
    };
    let token = recorded.field("token");
    *lock(&state.last) = Some(recorded);
    let mode = *lock(&state.mode);
    let delay = *lock(&state.delay);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match mode {
        Mode::Normal => json_response(
            token
                .and_then(|t| lock(&state.answers).get(&t).cloned())
                .unwrap_or_else(|| r#"{"active":false}"#.to_owned()),
        ),
        Mode::ServerError => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(trap_answer())).into_response()
        }
        Mode::Unauthorized => (StatusCode::UNAUTHORIZED, Json(trap_answer())).into_response(),
        Mode::Stall => {
            tokio::time::sleep(STALL).await;
            Json(trap_answer()).into_response()
        }
        Mode::NotJson => (
            [(header::CONTENT_TYPE, "text/html")],
            "<html><body>active: true</body></html>",
        )
            .into_response(),
        Mode::Oversized => json_response(oversized_answer()),
        Mode::OversizedChunked => {
            let answer = Bytes::from(oversized_answer());
            let chunks: Vec<Result<Bytes, Infallible>> = answer
                .chunks(4096)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            json_response(Body::from_stream(futures_util::stream::iter(chunks)))
        }
    }
}

async fn discovery(State(state): State<Arc<ServerState>>) -> Response<Body> {
    state.discovery_calls.fetch_add(1, Ordering::SeqCst);
    match lock(&state.discovery).clone() {
        Some(document) => Json(document).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
