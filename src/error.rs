//! Why a request was rejected ([`AuthError`]) and why a configuration was refused
//! ([`ConfigError`]).

use std::{borrow::Cow, fmt, sync::Arc, time::Duration};

use http::StatusCode;

/// The class of a rejection; it decides the status code and the RFC 6750 `error` code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request carries no bearer token: `401` with a bare `WWW-Authenticate: Bearer`
    /// challenge and no `error` attribute (RFC 6750 §3.1).
    MissingToken,
    /// The request is malformed: two credentials, a token that does not fit the `b64token`
    /// grammar, a repeated `Authorization` header. `400`, `error="invalid_request"`.
    InvalidRequest,
    /// The token is expired, revoked, malformed, for another audience or issuer, or its
    /// signature does not verify. `401`, `error="invalid_token"`.
    InvalidToken,
    /// The token is valid but lacks a scope the resource needs.
    /// `403`, `error="insufficient_scope"` with `scope="…"`.
    InsufficientScope,
    /// The issuer (discovery, JWKS or introspection endpoint) could not be reached or gave
    /// an unusable answer and no cached answer can stand in. `503` with `Retry-After`:
    /// the client's token is not at fault.
    Unavailable,
    /// The token is valid but the user's authentication is too weak or too old for the
    /// resource (RFC 9470 step-up). `401`, `error="insufficient_user_authentication"` with
    /// `acr_values="…"` and/or `max_age="…"`.
    InsufficientUserAuthentication,
    /// The DPoP proof (RFC 9449) is missing, repeated, malformed, signed badly, for another
    /// request, too old, replayed or signed by another key than the token is bound to.
    /// `401`, `error="invalid_dpop_proof"` on the `DPoP` challenge.
    InvalidDpopProof,
    /// The DPoP proof lacks a valid server nonce (RFC 9449 §9). `401`,
    /// `error="use_dpop_nonce"` with a fresh `DPoP-Nonce` header.
    UseDpopNonce,
}

impl ErrorKind {
    /// The HTTP status code for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::InsufficientUserAuthentication => {
                StatusCode::UNAUTHORIZED
            }
            Self::InvalidDpopProof | Self::UseDpopNonce => StatusCode::UNAUTHORIZED,
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::InsufficientScope => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The RFC 6750 `error` code, when the kind has one.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::MissingToken | Self::Unavailable => None,
            Self::InvalidRequest => Some("invalid_request"),
            Self::InvalidToken => Some("invalid_token"),
            Self::InsufficientScope => Some("insufficient_scope"),
            Self::InsufficientUserAuthentication => Some("insufficient_user_authentication"),
            Self::InvalidDpopProof => Some("invalid_dpop_proof"),
            Self::UseDpopNonce => Some("use_dpop_nonce"),
        }
    }
}

/// The one `error_description` of every `invalid_token` rejection.
const INVALID_TOKEN_PUBLIC: &str =
    "the access token is expired, revoked, malformed, or not valid for this resource";

/// What a rejection adds for DPoP (RFC 9449 §7.1): set by the layer when it accepts DPoP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DpopChallenge {
    /// The proof algorithms, space-separated.
    pub(crate) algs: Arc<str>,
    /// A fresh server nonce, when nonces are demanded.
    pub(crate) nonce: Option<Box<str>>,
    /// Whether plain bearer tokens are accepted too (a `Bearer` challenge is sent as well).
    pub(crate) bearer: bool,
    /// Whether the `error` attributes belong on the `DPoP` challenge: the request used the
    /// `DPoP` scheme, or the error is about the proof.
    pub(crate) on_dpop: bool,
}

/// Why a request was rejected.
///
/// Every rejection response carries a clone of it in its extensions, so logging and metrics
/// layers outside the auth layer can see why a request was turned away. Its description is
/// fixed text chosen by portcullis: it never contains the token, a claim value or a secret,
/// and what the caller sees of it is [`AuthError::public_description`].
///
/// The error of [`Jwt::refresh`](crate::Jwt::refresh), which no caller is sent, says more in
/// its `Display`: each issuer still without keys (its URL redacted) and the cause of its last
/// fetch failure.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthError {
    kind: ErrorKind,
    description: &'static str,
    scope: Option<Arc<str>>,
    retry_after: Option<Duration>,
    step_up: Option<Arc<StepUpDetail>>,
    dpop: Option<Arc<DpopChallenge>>,
    /// Operator-facing detail beyond the fixed description (which issuer, which cause), for
    /// errors no caller is ever sent (a warm-up's); shown by `Display`, never to a client.
    detail: Option<Arc<String>>,
}

/// What an `insufficient_user_authentication` error asks of the user (RFC 9470 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StepUpDetail {
    /// Space-separated acceptable `acr` values, in order of preference.
    pub(crate) acr_values: Option<Arc<str>>,
    /// The largest acceptable age of `auth_time`, in seconds.
    pub(crate) max_age: Option<u64>,
}

impl AuthError {
    /// A new error of `kind` with a fixed, secret-free description.
    pub fn new(kind: ErrorKind, description: &'static str) -> Self {
        Self {
            kind,
            description,
            scope: None,
            retry_after: None,
            step_up: None,
            dpop: None,
            detail: None,
        }
    }

    pub(crate) fn missing_token() -> Self {
        Self::new(ErrorKind::MissingToken, "no bearer token in the request")
    }

    pub(crate) fn invalid_request(description: &'static str) -> Self {
        Self::new(ErrorKind::InvalidRequest, description)
    }

    pub(crate) fn invalid_token(description: &'static str) -> Self {
        Self::new(ErrorKind::InvalidToken, description)
    }

    pub(crate) fn insufficient_scope(scope: Arc<str>) -> Self {
        Self {
            scope: Some(scope),
            ..Self::new(
                ErrorKind::InsufficientScope,
                "the token lacks a scope this resource requires",
            )
        }
    }

    /// A valid token that a policy other than scopes refuses (roles, claim conditions):
    /// `403 insufficient_scope` without a `scope` attribute.
    pub(crate) fn forbidden(description: &'static str) -> Self {
        Self::new(ErrorKind::InsufficientScope, description)
    }

    pub(crate) fn unavailable(description: &'static str, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after.max(Duration::from_secs(1))),
            ..Self::new(ErrorKind::Unavailable, description)
        }
    }

    pub(crate) fn insufficient_user_authentication(
        description: &'static str,
        detail: Arc<StepUpDetail>,
    ) -> Self {
        Self {
            step_up: Some(detail),
            ..Self::new(ErrorKind::InsufficientUserAuthentication, description)
        }
    }

    /// The class of this rejection.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status code this rejection answers with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// Why the request was rejected, precisely: a short, fixed, secret-free text for logs
    /// and metrics (for example "the token's issuer is not trusted"). Callers are sent
    /// [`public_description`](Self::public_description) instead.
    pub fn description(&self) -> &str {
        self.description
    }

    /// What the caller is told (`error_description`, `grpc-message`): for
    /// [`ErrorKind::InvalidToken`] one text whatever the reason, so that an unauthenticated
    /// caller cannot learn which issuers are trusted, which key ids exist or which check
    /// failed first; for the other kinds, [`description`](Self::description).
    pub fn public_description(&self) -> &str {
        match self.kind {
            ErrorKind::InvalidToken => INVALID_TOKEN_PUBLIC,
            _ => self.description,
        }
    }

    /// For [`ErrorKind::InsufficientScope`]: the space-separated scopes the resource requires.
    pub fn required_scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// For [`ErrorKind::InsufficientUserAuthentication`]: the space-separated `acr` values
    /// that would satisfy the resource (RFC 9470 `acr_values`).
    pub fn acr_values(&self) -> Option<&str> {
        self.step_up.as_ref()?.acr_values.as_deref()
    }

    /// For [`ErrorKind::InsufficientUserAuthentication`]: how recent the user's
    /// authentication must be (RFC 9470 `max_age`).
    pub fn max_age(&self) -> Option<Duration> {
        self.step_up.as_ref()?.max_age.map(Duration::from_secs)
    }

    /// For [`ErrorKind::Unavailable`]: how long the client should wait before retrying.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// When the layer accepts DPoP: the space-separated proof algorithms for the
    /// `DPoP algs="…"` challenge (RFC 9449 §7.1).
    pub fn dpop_algs(&self) -> Option<&str> {
        self.dpop.as_deref().map(|c| &*c.algs)
    }

    /// When the layer demands DPoP nonces: a fresh nonce for the `DPoP-Nonce` header.
    pub fn dpop_nonce(&self) -> Option<&str> {
        self.dpop.as_deref().and_then(|c| c.nonce.as_deref())
    }

    pub(crate) fn dpop_challenge(&self) -> Option<&DpopChallenge> {
        self.dpop.as_deref()
    }

    /// Adds an operator-facing detail (secret-free: configured issuers, fetch causes) that
    /// `Display` appends; the client-facing descriptions stay fixed.
    pub(crate) fn with_detail(mut self, detail: String) -> Self {
        self.detail = Some(Arc::new(detail));
        self
    }

    pub(crate) fn with_dpop_challenge(mut self, challenge: DpopChallenge) -> Self {
        self.dpop = Some(Arc::new(challenge));
        self
    }
}

impl fmt::Debug for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthError")
            .field("kind", &self.kind)
            .field("description", &self.description)
            .field("scope", &self.scope)
            .field("retry_after", &self.retry_after)
            .field("step_up", &self.step_up)
            .field("dpop", &self.dpop)
            .field("detail", &self.detail)
            .finish()
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind.error_code() {
            Some(code) => write!(f, "{code}: {}", self.description)?,
            None => f.write_str(self.description)?,
        }
        match &self.detail {
            Some(detail) => write!(f, " ({detail})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for AuthError {}

/// A configuration the builder refused; returned by `build()`, never at request time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    message: Cow<'static, str>,
}

impl ConfigError {
    pub(crate) fn new(message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid portcullis configuration: {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_rfc6750_status_and_code() {
        let table = [
            (ErrorKind::MissingToken, 401, None),
            (ErrorKind::InvalidRequest, 400, Some("invalid_request")),
            (ErrorKind::InvalidToken, 401, Some("invalid_token")),
            (
                ErrorKind::InsufficientScope,
                403,
                Some("insufficient_scope"),
            ),
            (ErrorKind::Unavailable, 503, None),
            (
                ErrorKind::InsufficientUserAuthentication,
                401,
                Some("insufficient_user_authentication"),
            ),
            (ErrorKind::InvalidDpopProof, 401, Some("invalid_dpop_proof")),
            (ErrorKind::UseDpopNonce, 401, Some("use_dpop_nonce")),
        ];
        for (kind, status, code) in table {
            assert_eq!(kind.status().as_u16(), status, "{kind:?}");
            assert_eq!(kind.error_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn a_detail_shows_in_display_but_never_in_what_a_caller_is_told() {
        let plain = AuthError::unavailable("the issuer's keys cannot be fetched", Duration::ZERO);
        let detailed = plain
            .clone()
            .with_detail("issuer `https://a.example`: timed out".to_owned());
        assert_eq!(plain.to_string(), "the issuer's keys cannot be fetched");
        assert_eq!(
            detailed.to_string(),
            "the issuer's keys cannot be fetched (issuer `https://a.example`: timed out)"
        );
        assert_eq!(detailed.description(), plain.description());
        assert_eq!(detailed.public_description(), plain.public_description());
        assert_ne!(detailed, plain);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        let e = AuthError::unavailable("down", Duration::from_millis(10));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    }
}
