use std::sync::Arc;

use http::HeaderName;
use tower_layer::Layer;

use crate::{
    rejection::HttpRejection,
    scope::ScopePolicy,
    service::{BearerAuth, Config},
};

/// Validates the bearer token of every request before the inner service sees it.
///
/// `A` is the [`Authenticate`](crate::Authenticate) implementation ([`Jwt`](crate::Jwt),
/// [`Introspection`](crate::Introspection), [`JwtOrIntrospection`](crate::JwtOrIntrospection));
/// `R` builds rejection responses, [`HttpRejection`] (RFC 6750) by default.
///
/// On success the request's extensions hold the [`Principal`](crate::Principal) and its
/// [`Scopes`](crate::Scopes). The layer never adds an error type: every rejection is a
/// response, so it fits axum's `layer`/`route_layer` and tonic's `Server::layer` alike.
/// With axum's `layer`, every request is checked, unknown paths included (they answer `401`,
/// which does not reveal which routes exist); with `route_layer`, only matched routes are.
///
/// # Example
///
/// ```
/// use axum::{Router, body::Body, routing::get};
/// use http::{Request, StatusCode};
/// use portcullis::{BearerAuthLayer, Jwt};
/// use tower::ServiceExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let jwks = portcullis::__doc_support::JWKS;
/// let jwt = Jwt::builder()
///     .issuer_with_jwks("https://issuer.example.com", jwks)
///     .audience("https://api.example.com")
///     .build()?;
/// let app: Router = Router::new()
///     .route("/", get(|| async { "hello" }))
///     .layer(BearerAuthLayer::new(jwt).realm("example"));
///
/// let response = app.oneshot(Request::new(Body::empty())).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(response.headers()["www-authenticate"], r#"Bearer realm="example""#);
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct BearerAuthLayer<A, R = HttpRejection> {
    auth: A,
    config: Arc<Config>,
    rejection: R,
}

impl<A> BearerAuthLayer<A> {
    /// A layer validating tokens with `auth`, reading only `Authorization: Bearer`,
    /// requiring a token, and answering with [`HttpRejection`] (realm `api`).
    pub fn new(auth: A) -> Self {
        Self {
            auth,
            config: Arc::default(),
            rejection: HttpRejection::new(),
        }
    }

    /// Sets the `realm` of the `WWW-Authenticate` challenge. Default: `api`.
    pub fn realm(mut self, realm: &str) -> Self {
        self.rejection = self.rejection.realm(realm);
        self
    }

    /// Names the resource's RFC 9728 metadata URL in every challenge
    /// ([`HttpRejection::resource_metadata`]). Default: none.
    pub fn resource_metadata(mut self, url: &str) -> Self {
        self.rejection = self.rejection.resource_metadata(url);
        self
    }
}

impl<A, R> BearerAuthLayer<A, R> {
    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// Also reads the token from the header `name` (its whole value is the token).
    /// `Authorization` is always read as `Bearer` credentials; naming it here changes
    /// nothing. Default: off.
    pub fn token_from_header(mut self, name: HeaderName) -> Self {
        self.config().source.header = Some(name);
        self
    }

    /// Also reads the token from the cookie `name`. Default: off.
    ///
    /// # Cross-site request forgery
    ///
    /// A browser attaches cookies to every request to your site, including those a page on
    /// another site makes it send: a token in a cookie authenticates forged requests too,
    /// which a token in `Authorization` never does. Use this only together with a CSRF
    /// defence in front of state-changing routes — cookies with `SameSite=Strict` (or `Lax`
    /// and no state change on `GET`), the `__Host-` prefix, `Secure` and `HttpOnly`, plus an
    /// origin check such as tower-http's or a CSRF token — and never for cross-origin APIs
    /// that also answer CORS requests with credentials.
    pub fn token_from_cookie(mut self, name: impl Into<String>) -> Self {
        self.config().source.cookie = Some(name.into().into_boxed_str());
        self
    }

    /// Also reads the token from the `access_token` query parameter (RFC 6750 §2.3).
    /// Default: off. Discouraged: URLs end up in logs, histories and `Referer` headers.
    pub fn token_from_query(mut self) -> Self {
        self.config().source.query = true;
        self
    }

    /// Longest token accepted, in bytes; a longer one is `invalid_token` before any parsing.
    /// Default: 8 KiB ([`DEFAULT_MAX_TOKEN_LEN`](crate::DEFAULT_MAX_TOKEN_LEN)).
    pub fn max_token_len(mut self, bytes: usize) -> Self {
        self.config().source.max_len = bytes;
        self
    }

    /// When `true`, a request without a token reaches the inner service with no principal;
    /// a request with a bad token is still rejected. With
    /// [`require_scopes`](Self::require_scopes) set, requests without a token are rejected
    /// all the same (they have no scope). Default: `false`.
    pub fn optional(mut self, optional: bool) -> Self {
        self.config().optional = optional;
        self
    }

    /// Requires `policy` of every request through this layer, on top of any per-route
    /// [`RequireScopeLayer`](crate::RequireScopeLayer). Default: no scope required.
    pub fn require_scopes(mut self, policy: ScopePolicy) -> Self {
        self.config().required = Some(policy);
        self
    }

    /// When `true`, every token must be DPoP-bound (RFC 9449) and come with a valid proof:
    /// `Bearer` requests are refused and only the `DPoP` challenge is offered. Default:
    /// `false`: DPoP-bound tokens need their proof, unbound tokens work as bearer tokens.
    /// See the [`dpop`](crate::dpop) module.
    pub fn dpop_required(mut self, required: bool) -> Self {
        self.config().dpop.required = required;
        self
    }

    /// When `true`, DPoP proofs must carry a server nonce (RFC 9449 §9): a proof without a
    /// valid one is answered `401 use_dpop_nonce` with a fresh `DPoP-Nonce` header. Nonces
    /// are stateless (an HMAC over a one-minute time step, with a random secret drawn here)
    /// and accepted for two steps. Default: `false`.
    pub fn dpop_nonces(mut self, nonces: bool) -> Self {
        let secret = nonces.then(|| {
            let mut secret = [0u8; 32];
            // Without an OS random source no secret can be trusted: every nonce is then
            // refused (fail closed) until one is set with `dpop_nonce_secret`.
            if getrandom::getrandom(&mut secret).is_err() {
                #[cfg(feature = "tracing")]
                tracing::warn!(target: "portcullis::dpop", "no random source for DPoP nonces");
                return None;
            }
            Some(secret)
        });
        self.config().dpop.set_nonces(secret);
        self
    }

    /// Demands DPoP nonces (as [`dpop_nonces`](Self::dpop_nonces)) derived from `secret`,
    /// so that replicas sharing it accept each other's nonces. Default: off.
    pub fn dpop_nonce_secret(mut self, secret: [u8; 32]) -> Self {
        self.config().dpop.set_nonces(Some(Some(secret)));
        self
    }

    /// The algorithms a DPoP proof may be signed with (only asymmetric ones exist), also
    /// announced in the `DPoP algs="…"` challenge. Default: [`Algorithm::ALL`](crate::Algorithm::ALL).
    pub fn dpop_algorithms(mut self, algs: impl IntoIterator<Item = crate::Algorithm>) -> Self {
        self.config().dpop.set_algorithms(algs);
        self
    }

    /// How old a DPoP proof may be (its `iat`), and the clock skew tolerated both ways.
    /// Each proof's `jti` is remembered for `max_age + 2 × leeway`. Default: 2 minutes and
    /// 10 seconds ([`DEFAULT_DPOP_MAX_AGE`](crate::dpop::DEFAULT_DPOP_MAX_AGE),
    /// [`DEFAULT_DPOP_LEEWAY`](crate::dpop::DEFAULT_DPOP_LEEWAY)).
    pub fn dpop_window(
        mut self,
        max_age: std::time::Duration,
        leeway: std::time::Duration,
    ) -> Self {
        let dpop = &mut self.config().dpop;
        dpop.max_age = max_age;
        dpop.leeway = leeway;
        self
    }

    /// The external base URL clients address (behind a reverse proxy or TLS terminator),
    /// e.g. `https://api.example.com` or `https://example.com/api`: a proof's `htu` must
    /// equal it followed by the request's path. Default: none, the target URI is taken from
    /// the request (the scheme of an absolute request URI, as in HTTP/2, else `http`; the
    /// authority of the URI, else the `Host` header).
    ///
    /// # Errors
    ///
    /// When `url` is not an absolute `http`/`https` URL without query or fragment.
    pub fn dpop_public_url(mut self, url: &str) -> Result<Self, crate::ConfigError> {
        let origin = crate::dpop::Origin::fixed(url).ok_or_else(|| {
            crate::ConfigError::new("the DPoP public URL must be an absolute http(s) URL")
        })?;
        self.config().dpop.origin = origin;
        Ok(self)
    }

    /// Records DPoP proofs in `store` instead of the in-process
    /// [`InMemoryReplayStore`](crate::dpop::InMemoryReplayStore) (100 000 entries), e.g. a
    /// store shared by replicas. Default: a new in-process store per layer.
    pub fn dpop_replay_store(mut self, store: impl crate::dpop::ReplayStore) -> Self {
        self.config().dpop.store = Arc::new(store);
        self
    }

    /// Answers rejections with `rejection`: an [`OnRejection`](crate::OnRejection), such as
    /// a closure `FnMut(&AuthError) -> Response<B> + Clone`. Default: [`HttpRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> BearerAuthLayer<A, R2> {
        BearerAuthLayer {
            auth: self.auth,
            config: self.config,
            rejection,
        }
    }
}

#[cfg(feature = "tonic")]
impl<A, R> BearerAuthLayer<A, R> {
    /// Answers rejections as gRPC statuses (`UNAUTHENTICATED`, `PERMISSION_DENIED`,
    /// `UNAVAILABLE`) with [`GrpcRejection`](crate::grpc::GrpcRejection), for a layer in
    /// front of tonic services. Default: [`HttpRejection`] (RFC 6750).
    pub fn grpc(self) -> BearerAuthLayer<A, crate::rejection::GrpcRejection> {
        self.on_rejection(crate::rejection::GrpcRejection::new())
    }
}

impl<S, A: Clone, R: Clone> Layer<S> for BearerAuthLayer<A, R> {
    type Service = BearerAuth<S, A, R>;

    fn layer(&self, inner: S) -> Self::Service {
        BearerAuth::new(
            inner,
            self.auth.clone(),
            Arc::clone(&self.config),
            self.rejection.clone(),
        )
    }
}
