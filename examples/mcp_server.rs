//! A Model Context Protocol server (rmcp, streamable HTTP on axum) protected by portcullis:
//! an OAuth 2.0 resource server as the MCP authorization rules describe it.
//!
//! - It publishes its RFC 9728 metadata at `/.well-known/oauth-protected-resource/mcp` and
//!   names it in every `401`/`403` challenge, so an MCP client that knows only the server
//!   URL finds the authorization server and the scopes on its own.
//! - It accepts only tokens whose `aud` is its own canonical URI (no token passthrough).
//! - `read_notes` needs scope `mcp:read`, `add_note` needs `mcp:write`: a call without it
//!   answers `403` with `error="insufficient_scope", scope="mcp:write"`, so the client can
//!   ask for more.
//!
//! ```text
//! cargo run --example mcp_server -- --issuer https://login.example.com/ \
//!     [--resource http://127.0.0.1:8090/mcp] [--listen 127.0.0.1:8090]
//! ```
//!
//! The issuer must support resource indicators (RFC 8707) so that tokens carry the
//! resource URI in `aud`, and know the scopes `mcp:read` and `mcp:write`.

use std::sync::{Arc, Mutex};

use axum::{
    Router,
    body::{Body, to_bytes},
    extract::Request,
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use portcullis::{
    BearerAuthLayer, HttpRejection, Jwt, OnRejection, Principal, ScopePolicy, Scopes,
    metadata::ProtectedResource,
};
use rmcp::{
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Deserialize;

/// The scope each tool needs; a tool not listed needs none beyond a valid token.
pub const TOOL_SCOPES: &[(&str, &str)] = &[("read_notes", "mcp:read"), ("add_note", "mcp:write")];

/// Largest MCP request read, in bytes.
const MAX_BODY: usize = 256 * 1024;

/// The MCP server: a shared list of notes.
#[derive(Clone)]
pub struct Notes {
    notes: Arc<Mutex<Vec<String>>>,
    tool_router: ToolRouter<Self>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[schemars(crate = "rmcp::schemars")]
pub struct AddNote {
    /// The text of the note.
    text: String,
}

#[tool_router]
impl Notes {
    fn new(notes: Arc<Mutex<Vec<String>>>) -> Self {
        Self {
            notes,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(description = "Lists the notes (scope mcp:read).")]
    async fn read_notes(&self, Extension(parts): Extension<axum::http::request::Parts>) -> String {
        // portcullis put the principal into the HTTP request; rmcp hands its parts over.
        let caller = parts
            .extensions
            .get::<Principal>()
            .and_then(|p| p.subject())
            .unwrap_or("nobody");
        let notes = self.notes.lock().map(|n| n.join("\n")).unwrap_or_default();
        format!("notes for {caller}:\n{notes}")
    }

    #[tool(description = "Adds a note (scope mcp:write).")]
    async fn add_note(&self, Parameters(AddNote { text }): Parameters<AddNote>) -> String {
        match self.notes.lock() {
            Ok(mut notes) => {
                notes.push(text);
                format!("{} notes", notes.len())
            }
            Err(_) => "the notes are unavailable".to_owned(),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl rmcp::ServerHandler for Notes {}

/// The whole application: the MCP endpoint at the resource's path behind portcullis, and
/// the public metadata document.
pub fn app(resource: &ProtectedResource, jwt: Jwt) -> Router {
    let url = url::Url::parse(resource.resource()).expect("the resource identifier is a URL");
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.clone(),
    };
    let notes = Arc::new(Mutex::new(Vec::new()));
    let mcp = StreamableHttpService::new(
        move || Ok(Notes::new(Arc::clone(&notes))),
        LocalSessionManager::default().into(),
        StreamableHttpServerConfig::default().with_allowed_hosts([host, authority]),
    );
    let rejection = resource.rejection();
    let policies: Arc<[(&'static str, ScopePolicy)]> = TOOL_SCOPES
        .iter()
        .map(|(tool, scope)| (*tool, ScopePolicy::all([*scope])))
        .collect();
    let tool_scopes = {
        let rejection = rejection.clone();
        move |req: Request, next: Next| {
            require_tool_scope(Arc::clone(&policies), rejection.clone(), req, next)
        }
    };
    Router::new()
        .route_service(url.path(), mcp)
        .route_layer(middleware::from_fn(tool_scopes))
        .layer(BearerAuthLayer::new(jwt).on_rejection(rejection))
        .route_service(resource.well_known_path(), resource.service())
}

/// Reads the JSON-RPC request and, for `tools/call`, requires the tool's scope, answering
/// `403 insufficient_scope` at the HTTP level as the MCP authorization rules ask.
async fn require_tool_scope(
    policies: Arc<[(&'static str, ScopePolicy)]>,
    mut rejection: HttpRejection,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let granted = parts
        .extensions
        .get::<Scopes>()
        .cloned()
        .unwrap_or_default();
    for tool in called_tools(&bytes) {
        let policy = policies.iter().find(|(name, _)| *name == tool);
        if let Some((_, policy)) = policy
            && let Err(error) = policy.check(&granted)
        {
            return rejection.on_rejection(&error);
        }
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// The names of the tools a JSON-RPC message (or batch) calls.
fn called_tools(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Message {
        method: Option<String>,
        params: Option<serde_json::Value>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrBatch {
        One(Message),
        Batch(Vec<Message>),
    }
    let messages = match serde_json::from_slice(body) {
        Ok(OneOrBatch::One(m)) => vec![m],
        Ok(OneOrBatch::Batch(b)) => b,
        Err(_) => Vec::new(),
    };
    messages
        .into_iter()
        .filter(|m| m.method.as_deref() == Some("tools/call"))
        .filter_map(|m| Some(m.params?.get("name")?.as_str()?.to_owned()))
        .collect()
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut issuer = None;
    let mut resource = None;
    let mut listen = "127.0.0.1:8090".to_owned();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--issuer" => issuer = Some(value()?),
            "--resource" => resource = Some(value()?),
            "--listen" => listen = value()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let issuer = issuer.ok_or("--issuer URL is required")?;
    let resource = resource.unwrap_or_else(|| format!("http://{listen}/mcp"));

    // Only tokens for this server's own URI are accepted.
    let jwt = Jwt::builder().issuer(&issuer).audience(&resource).build()?;
    let metadata = ProtectedResource::builder(&resource)
        .authorization_servers_of(&jwt)
        .scopes_supported(["mcp:read", "mcp:write"])
        .resource_name("portcullis notes (MCP)")
        .build()?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "MCP server {resource}, metadata at {}",
        metadata.metadata_url()
    );
    axum::serve(listener, app(&metadata, jwt)).await?;
    Ok(())
}
