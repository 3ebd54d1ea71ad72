//! An MCP server (`examples/mcp_server.rs`: rmcp over streamable HTTP on axum) protected by
//! portcullis, driven by rmcp's own client with its OAuth support against the OpenID
//! provider fixture: discovery from the `401` challenge through RFC 9728 metadata, dynamic
//! client registration, the authorization code flow with a resource indicator, tool calls,
//! and the refusals (a token for another resource, a missing scope).
//!
//! Needs Node.js >= 20 and `npm ci --prefix tests/idp`.

mod support;

#[path = "../examples/mcp_server.rs"]
#[allow(dead_code)]
mod mcp_server;

use std::error::Error as _;

use portcullis::{Jwt, metadata::ProtectedResource};
use reqwest::{StatusCode, header::WWW_AUTHENTICATE};
use rmcp::{
    RoleClient, ServiceExt,
    model::CallToolRequestParams,
    service::RunningService,
    transport::{
        AuthClient, StreamableHttpClientTransport,
        auth::{AuthorizationRequest, OAuthState},
        streamable_http_client::{InsufficientScopeError, StreamableHttpClientTransportConfig},
    },
};
use serde_json::{Value, json};
use support::idp::{self, Idp};

/// The MCP server on 127.0.0.1, trusting the fixture and accepting only tokens for its URI.
struct Server {
    /// The MCP endpoint and canonical URI, `http://127.0.0.1:PORT/mcp`.
    url: String,
    metadata_url: String,
}

async fn start_server(idp: &Idp) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    let url = format!("http://{addr}/mcp");
    let jwt = Jwt::builder()
        .issuer(&idp.issuer)
        .audience(&url)
        .build()
        .expect("jwt configuration");
    let resource = ProtectedResource::builder(&url)
        .authorization_servers_of(&jwt)
        .scopes_supported(["mcp:read", "mcp:write"])
        .resource_name("portcullis notes (MCP)")
        .build()
        .expect("resource configuration");
    let metadata_url = resource.metadata_url().to_owned();
    let app = mcp_server::app(&resource, jwt);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server { url, metadata_url }
}

/// rmcp's client from nothing but the URL: connects, takes the challenge of the `401`,
/// discovers, registers, has the user sign in at the fixture and returns the connected
/// client. `scopes` empty lets rmcp pick them (from the metadata).
async fn authorized_client(
    idp: &Idp,
    server: &Server,
    scopes: &[&str],
) -> RunningService<RoleClient, ()> {
    let refused =
        ().serve(StreamableHttpClientTransport::from_uri(server.url.as_str()))
            .await
            .expect_err("a client without a token is refused");
    let challenge = refused
        .auth_challenge()
        .unwrap_or_else(|| panic!("the refusal carries a challenge: {refused:?}"))
        .to_owned();
    assert_eq!(
        challenge,
        format!(
            r#"Bearer realm="api", resource_metadata="{}""#,
            server.metadata_url
        )
    );

    let mut oauth = OAuthState::new(server.url.as_str(), None)
        .await
        .expect("an OAuth state for the server");
    let mut request = AuthorizationRequest::new(idp::REDIRECT_URI)
        .with_client_name("portcullis MCP test")
        .with_challenge(challenge);
    if !scopes.is_empty() {
        request = request.with_scopes(scopes.iter().copied());
    }
    oauth
        .start_authorization(request)
        .await
        .unwrap_or_else(|e| panic!("discovery and registration: {e}\n{}", idp.stderr()));
    let auth_url = oauth
        .get_authorization_url()
        .await
        .expect("an authorization URL");
    let parsed = url::Url::parse(&auth_url).expect("a URL");
    assert!(
        auth_url.starts_with(&idp.authorization_endpoint()),
        "discovered the fixture's authorization endpoint: {auth_url}"
    );
    let resource = parsed
        .query_pairs()
        .find(|(k, _)| k == "resource")
        .map(|(_, v)| v.into_owned());
    assert_eq!(resource.as_deref(), Some(server.url.as_str()));

    let callback = idp.sign_in(&auth_url, "alice").await;
    oauth
        .handle_callback_url(callback.as_str())
        .await
        .unwrap_or_else(|e| panic!("code exchange: {e}\n{}", idp.stderr()));
    let manager = oauth
        .into_authorization_manager()
        .expect("authorized after the callback");
    let transport = StreamableHttpClientTransport::with_client(
        AuthClient::new(reqwest::Client::default(), manager),
        StreamableHttpClientTransportConfig::with_uri(server.url.as_str()),
    );
    ().serve(transport)
        .await
        .expect("the authorized client connects")
}

fn text(result: &rmcp::model::CallToolResult) -> String {
    let value = serde_json::to_value(result).expect("serializable result");
    value["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text result: {value}"))
        .to_owned()
}

#[tokio::test]
async fn an_mcp_client_with_only_the_url_discovers_authorizes_and_calls_both_tools() {
    let idp = Idp::start().await;
    let server = start_server(&idp).await;
    let client = authorized_client(&idp, &server, &[]).await;

    let mut names: Vec<String> = client
        .list_all_tools()
        .await
        .expect("tools/list")
        .into_iter()
        .map(|t| t.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["add_note", "read_notes"]);

    let added = client
        .call_tool(
            CallToolRequestParams::new("add_note").with_arguments(
                json!({"text": "buy milk"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .expect("add_note needs mcp:write, which rmcp asked for");
    assert_eq!(text(&added), "1 notes");
    let read = client
        .call_tool(CallToolRequestParams::new("read_notes"))
        .await
        .expect("read_notes needs mcp:read");
    assert_eq!(text(&read), "notes for alice:\nbuy milk");
    client.cancel().await.expect("close the session");
}

#[tokio::test]
async fn the_write_tool_without_mcp_write_is_403_naming_the_scope() {
    let idp = Idp::start().await;
    let server = start_server(&idp).await;
    let client = authorized_client(&idp, &server, &["mcp:read"]).await;

    let read = client
        .call_tool(CallToolRequestParams::new("read_notes"))
        .await
        .expect("read_notes with mcp:read");
    assert_eq!(text(&read), "notes for alice:\n");

    let refused = client
        .call_tool(
            CallToolRequestParams::new("add_note").with_arguments(
                json!({"text": "x"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
        )
        .await
        .expect_err("add_note needs mcp:write");
    assert_eq!(
        refused.auth_challenge(),
        Some(
            format!(
                r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a scope this resource requires", scope="mcp:write", resource_metadata="{}""#,
                server.metadata_url
            )
            .as_str()
        ),
        "{refused:?}"
    );
    // rmcp classifies the answer as a 403 (insufficient scope), not a 401.
    let mut cause: Option<&(dyn std::error::Error + 'static)> = refused.source();
    let mut saw_403 = false;
    while let Some(e) = cause {
        saw_403 |= e.downcast_ref::<InsufficientScopeError>().is_some();
        cause = e.source();
    }
    assert!(saw_403, "{refused:?}");
}

#[tokio::test]
async fn tokens_for_another_resource_are_refused() {
    let idp = Idp::start().await;
    let server = start_server(&idp).await;
    let http = reqwest::Client::new();
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}
    });
    // Same issuer, same scopes, another MCP server's URI; then a plain API's.
    for other in ["http://127.0.0.1:1/mcp", idp::API] {
        let scope = if other == idp::API {
            "read"
        } else {
            "mcp:read mcp:write"
        };
        let token = idp.authorization_code("alice", scope, other).await;
        let response = http
            .post(&server.url)
            .bearer_auth(&token)
            .header("accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
            .await
            .expect("POST /mcp");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{other}");
        assert_eq!(
            response.headers()[WWW_AUTHENTICATE],
            format!(
                r#"Bearer realm="api", error="invalid_token", error_description="the access token is expired, revoked, malformed, or not valid for this resource", resource_metadata="{}""#,
                server.metadata_url
            )
            .as_str(),
            "{other}"
        );
    }
    // The same request with a token for this server passes the auth layer.
    let token = idp
        .authorization_code("alice", "mcp:read", &server.url)
        .await;
    let response = http
        .post(&server.url)
        .bearer_auth(&token)
        .header("accept", "application/json, text/event-stream")
        .json(&initialize)
        .send()
        .await
        .expect("POST /mcp");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_metadata_document_follows_rfc_9728() {
    let idp = Idp::start().await;
    let server = start_server(&idp).await;
    let http = reqwest::Client::new();

    // §3.1: the well-known suffix between the host and the resource's path.
    let origin = server.url.trim_end_matches("/mcp");
    assert_eq!(
        server.metadata_url,
        format!("{origin}/.well-known/oauth-protected-resource/mcp")
    );
    let response = http
        .get(&server.metadata_url)
        .send()
        .await
        .expect("GET metadata");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["cache-control"], "public, max-age=3600");
    let document: Value = response.json().await.expect("JSON");
    // §2, member by member; §3.3: `resource` is the identifier the URL was built from.
    assert_eq!(
        document,
        json!({
            "resource": server.url,
            "authorization_servers": [idp.issuer],
            "scopes_supported": ["mcp:read", "mcp:write"],
            "bearer_methods_supported": ["header"],
            "resource_name": "portcullis notes (MCP)",
        })
    );
    // The authorization server it names is the one whose tokens the server accepts, and it
    // answers RFC 8414 / OpenID discovery with that issuer.
    let discovery: Value = http
        .get(format!("{}/.well-known/openid-configuration", idp.issuer))
        .send()
        .await
        .expect("discovery")
        .json()
        .await
        .expect("JSON");
    assert_eq!(discovery["issuer"], document["authorization_servers"][0]);

    // Not at the host's root (another resource could live there), not writable, and not
    // behind the bearer layer.
    let root = http
        .get(format!("{origin}/.well-known/oauth-protected-resource"))
        .send()
        .await
        .expect("GET root");
    assert_eq!(
        root.status(),
        StatusCode::UNAUTHORIZED,
        "unknown paths are behind the layer"
    );
    let post = http
        .post(&server.metadata_url)
        .send()
        .await
        .expect("POST metadata");
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}
