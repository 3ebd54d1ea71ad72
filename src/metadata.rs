//! OAuth 2.0 protected-resource metadata (RFC 9728): a document telling clients which
//! authorization servers issue tokens for this resource and which scopes it knows, served
//! at its well-known URL and named in every challenge.
//!
//! [`ProtectedResource`] is built from the resource's canonical URI (its *resource
//! identifier*); it knows the metadata URL (§3.1: `/.well-known/oauth-protected-resource`
//! inserted between the host and the path), serves the document ([`MetadataService`]) and
//! gives an [`HttpRejection`] whose challenges carry `resource_metadata="…"` (§5.1).
//!
//! **Audience binding.** A token is for this resource when its `aud` holds the resource
//! identifier: configure the authenticator with
//! [`audience(resource.resource())`](crate::JwtBuilder::audience) (and only that), and
//! tokens issued for other resources, even by the same issuer, are `invalid_token`. This is
//! what the Model Context Protocol's authorization rules ask of a server (RFC 8707 resource
//! indicators; no token passthrough).
//!
//! # Example
//!
//! ```
//! use axum::{Router, body::Body, routing::get};
//! use http::{Request, StatusCode};
//! use portcullis::{BearerAuthLayer, Jwt, metadata::ProtectedResource};
//! use tower::ServiceExt;
//! # use portcullis::__doc_support::JWKS as jwks;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let jwt = Jwt::builder()
//!     .issuer_with_jwks("https://issuer.example.com", jwks)
//!     .audience("https://api.example.com/v1")
//!     .build()?;
//! let resource = ProtectedResource::builder("https://api.example.com/v1")
//!     .authorization_servers_of(&jwt)
//!     .scopes_supported(["read", "write"])
//!     .build()?;
//!
//! let app: Router = Router::new()
//!     .route("/v1/items", get(|| async { "items" }))
//!     .layer(BearerAuthLayer::new(jwt).on_rejection(resource.rejection()))
//!     // Added after the auth layer: the metadata is public.
//!     .route_service(resource.well_known_path(), resource.service());
//!
//! let response = app.clone().oneshot(Request::get("/v1/items").body(Body::empty())?).await?;
//! assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     response.headers()["www-authenticate"],
//!     r#"Bearer realm="api", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#
//! );
//!
//! let metadata = app
//!     .oneshot(Request::get("/.well-known/oauth-protected-resource/v1").body(Body::empty())?)
//!     .await?;
//! assert_eq!(metadata.status(), StatusCode::OK);
//! assert_eq!(metadata.headers()["content-type"], "application/json");
//! # Ok(())
//! # }
//! ```

use std::{
    convert::Infallible,
    fmt,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use serde::{Deserialize, Serialize};
use tower_service::Service;

use crate::{
    alg::Algorithm, error::ConfigError, http_client::parse_url, jwt::Jwt, rejection::HttpRejection,
};

/// The well-known URI suffix of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// Default `Cache-Control: max-age` of the served document: 1 hour.
pub const DEFAULT_METADATA_MAX_AGE: Duration = Duration::from_secs(3600);

/// An RFC 9728 §2 metadata document. Empty lists and unset values are left out of the JSON.
///
/// Built by [`ProtectedResource::builder`]; deserializable too, for clients and tests.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ResourceMetadata {
    /// `resource`: the resource identifier. Required.
    pub resource: String,
    /// `authorization_servers`: issuer identifiers (RFC 8414) of servers issuing tokens
    /// for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// `jwks_uri`: the resource's own keys (for signed responses), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// `scopes_supported`: scopes used in authorization requests for this resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes_supported: Vec<String>,
    /// `bearer_methods_supported`: `header`, `body`, `query` (RFC 6750 §2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bearer_methods_supported: Vec<String>,
    /// `resource_signing_alg_values_supported`: algorithms the resource signs responses
    /// with. Not the algorithms of access tokens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_signing_alg_values_supported: Vec<String>,
    /// `resource_name`: a human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// `resource_documentation`: a URL of developer documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_documentation: Option<String>,
    /// `resource_policy_uri`: a URL of the data-use policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policy_uri: Option<String>,
    /// `resource_tos_uri`: a URL of the terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_tos_uri: Option<String>,
    /// `tls_client_certificate_bound_access_tokens` (RFC 8705).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// `authorization_details_types_supported` (RFC 9396).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details_types_supported: Vec<String>,
    /// `dpop_signing_alg_values_supported` (RFC 9449), when DPoP proofs are accepted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// `dpop_bound_access_tokens_required` (RFC 9449).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_bound_access_tokens_required: Option<bool>,
    /// Every other member.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A protected resource: its metadata document, where it is served and the challenges that
/// name it. Cheap to clone.
#[derive(Clone)]
pub struct ProtectedResource {
    inner: Arc<Inner>,
}

struct Inner {
    document: ResourceMetadata,
    json: Box<str>,
    metadata_url: Box<str>,
    path: Box<str>,
    at_root: bool,
    cache_control: HeaderValue,
}

impl fmt::Debug for ProtectedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProtectedResource")
            .field("resource", &self.inner.document.resource)
            .field("metadata_url", &self.inner.metadata_url)
            .finish_non_exhaustive()
    }
}

impl ProtectedResource {
    /// A builder for the resource identified by `resource`: an absolute `https` URL (or
    /// `http` on loopback) without query or fragment, exactly as tokens carry it in `aud`.
    pub fn builder(resource: impl Into<String>) -> ProtectedResourceBuilder {
        ProtectedResourceBuilder {
            document: ResourceMetadata {
                resource: resource.into(),
                bearer_methods_supported: vec!["header".to_owned()],
                ..ResourceMetadata::default()
            },
            max_age: DEFAULT_METADATA_MAX_AGE,
            at_root: false,
            allow_http: false,
        }
    }

    /// The resource identifier.
    pub fn resource(&self) -> &str {
        &self.inner.document.resource
    }

    /// The metadata document.
    pub fn document(&self) -> &ResourceMetadata {
        &self.inner.document
    }

    /// The absolute URL of the metadata document (RFC 9728 §3.1), as challenges name it.
    pub fn metadata_url(&self) -> &str {
        &self.inner.metadata_url
    }

    /// The path of the metadata document on this resource's host, e.g.
    /// `/.well-known/oauth-protected-resource/v1` for `https://api.example.com/v1`.
    pub fn well_known_path(&self) -> &str {
        &self.inner.path
    }

    /// An [`HttpRejection`] (realm `api`) whose challenges carry `resource_metadata`; set
    /// another realm with [`HttpRejection::realm`].
    pub fn rejection(&self) -> HttpRejection {
        HttpRejection::new().resource_metadata(self.metadata_url())
    }

    /// A service answering `GET`/`HEAD` on [`well_known_path`](Self::well_known_path) with
    /// the document.
    pub fn service(&self) -> MetadataService {
        MetadataService {
            resource: self.clone(),
        }
    }
}

/// Builds a [`ProtectedResource`]; checks happen at [`build`](Self::build).
#[derive(Clone, Debug)]
#[must_use]
pub struct ProtectedResourceBuilder {
    document: ResourceMetadata,
    max_age: Duration,
    at_root: bool,
    allow_http: bool,
}

impl ProtectedResourceBuilder {
    /// Adds an authorization server (its RFC 8414 issuer identifier). Repeat for more.
    /// Default: none.
    pub fn authorization_server(mut self, issuer: impl Into<String>) -> Self {
        push_new(&mut self.document.authorization_servers, issuer.into());
        self
    }

    /// Adds the issuers `jwt` trusts as authorization servers (its exact issuers; a tenant
    /// template names no one server: add tenants with `authorization_server`). Default: none.
    pub fn authorization_servers_of<C>(mut self, jwt: &Jwt<C>) -> Self {
        for issuer in jwt.issuer_names() {
            push_new(&mut self.document.authorization_servers, issuer.to_owned());
        }
        self
    }

    /// Adds scopes to `scopes_supported`. Default: none.
    pub fn scopes_supported<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        for scope in scopes {
            push_new(&mut self.document.scopes_supported, scope.into());
        }
        self
    }

    /// Sets `bearer_methods_supported`. Default: `["header"]`, what a
    /// [`BearerAuthLayer`](crate::BearerAuthLayer) reads unless told otherwise; add `query`
    /// if it also reads the query ([`token_from_query`](crate::BearerAuthLayer::token_from_query)).
    pub fn bearer_methods_supported<I>(mut self, methods: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.document.bearer_methods_supported = methods.into_iter().map(Into::into).collect();
        self
    }

    /// Sets `resource_signing_alg_values_supported`, for a resource that signs its
    /// responses. Default: none (portcullis signs nothing).
    pub fn resource_signing_alg_values_supported(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Self {
        self.document.resource_signing_alg_values_supported = algorithms
            .into_iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        self
    }

    /// Sets `dpop_signing_alg_values_supported` and `dpop_bound_access_tokens_required`,
    /// for a resource that accepts DPoP proofs (RFC 9449). Default: neither member.
    pub fn dpop(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
        bound_tokens_required: bool,
    ) -> Self {
        self.document.dpop_signing_alg_values_supported = algorithms
            .into_iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        self.document.dpop_bound_access_tokens_required = Some(bound_tokens_required);
        self
    }

    /// Sets `resource_name`. Default: none.
    pub fn resource_name(mut self, name: impl Into<String>) -> Self {
        self.document.resource_name = Some(name.into());
        self
    }

    /// Sets `resource_documentation` (a URL). Default: none.
    pub fn resource_documentation(mut self, url: impl Into<String>) -> Self {
        self.document.resource_documentation = Some(url.into());
        self
    }

    /// Sets `resource_policy_uri`. Default: none.
    pub fn resource_policy_uri(mut self, url: impl Into<String>) -> Self {
        self.document.resource_policy_uri = Some(url.into());
        self
    }

    /// Sets `resource_tos_uri`. Default: none.
    pub fn resource_tos_uri(mut self, url: impl Into<String>) -> Self {
        self.document.resource_tos_uri = Some(url.into());
        self
    }

    /// Adds a member not listed above (e.g. from a later extension). A name the builder
    /// sets itself is refused at `build()`. Default: none.
    pub fn member(mut self, name: impl Into<String>, value: serde_json::Value) -> Self {
        self.document.extra.insert(name.into(), value);
        self
    }

    /// `Cache-Control: public, max-age=…` of the served document. Default: 1 hour.
    pub fn cache_max_age(mut self, max_age: Duration) -> Self {
        self.max_age = max_age;
        self
    }

    /// Also serves the document at `/.well-known/oauth-protected-resource` itself for a
    /// resource with a path, for clients that only look there. Its `resource` stays the
    /// full identifier, so a client checking it (§3.3) against the host alone refuses it,
    /// as it should when several resources share a host. Default: off.
    pub fn also_at_root(mut self, also: bool) -> Self {
        self.at_root = also;
        self
    }

    /// Allows a plain-`http` resource identifier on hosts other than loopback. Default:
    /// off (only `https`, and `http` on `localhost`/`127.0.0.0/8`/`[::1]`).
    pub fn dangerous_allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Checks the document and prepares it for serving. Does no I/O.
    ///
    /// # Errors
    ///
    /// When the resource identifier or an authorization server is not an absolute
    /// `https` URL (or `http` on loopback), the identifier has a query or fragment, a scope
    /// has a character RFC 6749 does not allow, or an extra member shadows a known one.
    pub fn build(self) -> Result<ProtectedResource, ConfigError> {
        let document = self.document;
        let url = parse_url(&document.resource, self.allow_http)?;
        if url.query().is_some() || url.fragment().is_some() || document.resource.contains('#') {
            return Err(ConfigError::new(
                "a resource identifier has no query or fragment (RFC 9728 §1.2)",
            ));
        }
        if url.cannot_be_a_base() || !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::new(
                "a resource identifier is a plain https URL without credentials",
            ));
        }
        for server in &document.authorization_servers {
            let parsed = parse_url(server, self.allow_http)?;
            if parsed.query().is_some() || parsed.fragment().is_some() {
                return Err(ConfigError::new(
                    "an authorization server's issuer has no query or fragment (RFC 8414)",
                ));
            }
        }
        if document.scopes_supported.iter().any(|s| {
            s.is_empty()
                || !s
                    .bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        }) {
            return Err(ConfigError::new(
                "a supported scope is empty or has a character RFC 6749 does not allow",
            ));
        }
        // A member from `member` that repeats a named one would appear twice;
        // `signed_metadata` would need a signature portcullis does not make.
        const NAMED: &[&str] = &[
            "resource",
            "authorization_servers",
            "jwks_uri",
            "scopes_supported",
            "bearer_methods_supported",
            "resource_signing_alg_values_supported",
            "resource_name",
            "resource_documentation",
            "resource_policy_uri",
            "resource_tos_uri",
            "tls_client_certificate_bound_access_tokens",
            "authorization_details_types_supported",
            "dpop_signing_alg_values_supported",
            "dpop_bound_access_tokens_required",
            "signed_metadata",
        ];
        if document.extra.keys().any(|k| NAMED.contains(&k.as_str())) {
            return Err(ConfigError::new(
                "an extra metadata member repeats one the builder sets (or signed_metadata)",
            ));
        }
        let json = serde_json::to_string(&document)
            .map_err(|_| ConfigError::new("the metadata document cannot be serialized"))?;
        // §3.1: the well-known suffix goes between the host and the path; a path that is
        // only "/" is dropped.
        let path = match url.path() {
            "/" | "" => WELL_KNOWN.to_owned(),
            p => format!("{WELL_KNOWN}{p}"),
        };
        let metadata_url = format!("{}{path}", url.origin().ascii_serialization());
        let cache_control =
            HeaderValue::from_str(&format!("public, max-age={}", self.max_age.as_secs()))
                .map_err(|_| ConfigError::new("the cache max-age cannot be a header"))?;
        Ok(ProtectedResource {
            inner: Arc::new(Inner {
                document,
                json: json.into_boxed_str(),
                metadata_url: metadata_url.into_boxed_str(),
                path: path.into_boxed_str(),
                at_root: self.at_root,
                cache_control,
            }),
        })
    }
}

fn push_new(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Serves a [`ProtectedResource`]'s metadata: `200` with `application/json` and
/// `Cache-Control: public, max-age=…` (and `Access-Control-Allow-Origin: *`, as the
/// document is public and browser-based clients read it) on `GET`/`HEAD` at its
/// well-known path, `405` for other methods there, `404` elsewhere.
///
/// In axum: `router.route_service(resource.well_known_path(), resource.service())`, added
/// after (outside) the auth layer.
#[derive(Clone, Debug)]
pub struct MetadataService {
    resource: ProtectedResource,
}

impl MetadataService {
    fn respond<B>(&self, req: &Request<B>) -> Response<String> {
        let inner = &*self.resource.inner;
        let path = req.uri().path();
        let mut response = Response::new(String::new());
        if path != &*inner.path && !(inner.at_root && path == WELL_KNOWN) {
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        let headers = response.headers_mut();
        if req.method() != Method::GET && req.method() != Method::HEAD {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            return response;
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, inner.cache_control.clone());
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(inner.json.len()));
        if req.method() == Method::GET {
            *response.body_mut() = inner.json.to_string();
        }
        response
    }
}

impl<B> Service<Request<B>> for MetadataService {
    type Response = Response<String>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<String>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_urls_follow_section_3_1() {
        let table = [
            (
                "https://api.example.com",
                "https://api.example.com/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/",
                "https://api.example.com/.well-known/oauth-protected-resource",
                "/.well-known/oauth-protected-resource",
            ),
            (
                "https://api.example.com/mcp",
                "https://api.example.com/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource/mcp",
            ),
            (
                "https://api.example.com:8443/a/b/",
                "https://api.example.com:8443/.well-known/oauth-protected-resource/a/b/",
                "/.well-known/oauth-protected-resource/a/b/",
            ),
            (
                "http://127.0.0.1:9000/mcp",
                "http://127.0.0.1:9000/.well-known/oauth-protected-resource/mcp",
                "/.well-known/oauth-protected-resource/mcp",
            ),
        ];
        for (resource, url, path) in table {
            let r = ProtectedResource::builder(resource)
                .build()
                .expect(resource);
            assert_eq!(r.metadata_url(), url, "{resource}");
            assert_eq!(r.well_known_path(), path, "{resource}");
            assert_eq!(r.resource(), resource, "kept as given");
        }
    }

    #[test]
    fn every_member_serializes_under_its_rfc_9728_name() {
        let jwt = Jwt::builder()
            .issuer_with_jwks("https://login.example.com", crate::__doc_support::JWKS)
            .issuer_with_jwks("https://other.example.com", crate::__doc_support::JWKS)
            .audience("https://api.example.com/v1")
            .build()
            .expect("jwt");
        let r = ProtectedResource::builder("https://api.example.com/v1")
            .authorization_servers_of(&jwt)
            .authorization_server("https://login.example.com")
            .scopes_supported(["read", "write", "read"])
            .bearer_methods_supported(["header", "query"])
            .resource_signing_alg_values_supported([Algorithm::ES256])
            .dpop([Algorithm::ES256, Algorithm::PS256], true)
            .resource_name("Orders")
            .resource_documentation("https://docs.example.com/orders")
            .resource_policy_uri("https://example.com/policy")
            .resource_tos_uri("https://example.com/tos")
            .member("x_tier", "gold".into())
            .build()
            .expect("resource");
        let json: serde_json::Value = serde_json::from_str(&r.inner.json).expect("the served JSON");
        assert_eq!(
            json,
            serde_json::json!({
                "resource": "https://api.example.com/v1",
                "authorization_servers": ["https://login.example.com", "https://other.example.com"],
                "scopes_supported": ["read", "write"],
                "bearer_methods_supported": ["header", "query"],
                "resource_signing_alg_values_supported": ["ES256"],
                "dpop_signing_alg_values_supported": ["ES256", "PS256"],
                "dpop_bound_access_tokens_required": true,
                "resource_name": "Orders",
                "resource_documentation": "https://docs.example.com/orders",
                "resource_policy_uri": "https://example.com/policy",
                "resource_tos_uri": "https://example.com/tos",
                "x_tier": "gold",
            })
        );
        let parsed: ResourceMetadata = serde_json::from_value(json).expect("round trip");
        assert_eq!(&parsed, r.document());
        let minimal = ProtectedResource::builder("https://api.example.com")
            .build()
            .expect("resource");
        assert_eq!(
            &*minimal.inner.json,
            r#"{"resource":"https://api.example.com","bearer_methods_supported":["header"]}"#
        );
    }

    #[test]
    fn identifiers_that_are_refused() {
        for bad in [
            "api.example.com",
            "http://api.example.com/mcp",
            "ftp://api.example.com",
            "https://api.example.com/?x=1",
            "https://api.example.com/#top",
            "https://api.example.com/#",
            "https://user:pw@api.example.com/",
            "",
        ] {
            assert!(ProtectedResource::builder(bad).build().is_err(), "{bad}");
        }
        let build = |b: ProtectedResourceBuilder| b.build().is_ok();
        let base = || ProtectedResource::builder("https://api.example.com");
        assert!(!build(
            base().authorization_server("http://login.example.com")
        ));
        assert!(!build(
            base().authorization_server("https://login.example.com/?t=1")
        ));
        assert!(!build(base().scopes_supported(["read", ""])));
        assert!(!build(base().scopes_supported(["a\"b"])));
        assert!(!build(base().member("resource", "x".into())));
        assert!(!build(base().member("signed_metadata", "x".into())));
        assert!(build(base().member("x_custom", true.into())));
        assert!(build(
            ProtectedResource::builder("http://api.example.com").dangerous_allow_http(true)
        ));
    }

    #[test]
    fn the_service_answers_only_its_path_and_reads() {
        let r = ProtectedResource::builder("https://api.example.com/mcp")
            .also_at_root(false)
            .build()
            .expect("resource");
        let service = r.service();
        let call = |method: Method, path: &str| {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request");
            service.respond(&req)
        };
        let ok = call(Method::GET, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()[header::CACHE_CONTROL], "public, max-age=3600");
        let doc: serde_json::Value = serde_json::from_str(ok.body()).expect("json");
        assert_eq!(doc["resource"], "https://api.example.com/mcp");
        let head = call(Method::HEAD, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!((head.status().as_u16(), head.body().as_str()), (200, ""));
        assert_eq!(
            head.headers()[header::CONTENT_LENGTH],
            ok.body().len().to_string()
        );
        let post = call(Method::POST, "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(post.status(), 405);
        assert_eq!(post.headers()[header::ALLOW], "GET, HEAD");
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp/x",
            "/mcp",
        ] {
            assert_eq!(call(Method::GET, path).status(), 404, "{path}");
        }
        let rooted = ProtectedResource::builder("https://api.example.com/mcp")
            .also_at_root(true)
            .build()
            .expect("resource");
        let req = Request::get(WELL_KNOWN).body(()).expect("request");
        assert_eq!(rooted.service().respond(&req).status(), 200);
    }
}
