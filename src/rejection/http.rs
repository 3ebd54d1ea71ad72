//! RFC 6750 §3 rejections: [`HttpRejection`].

use std::{fmt::Write as _, sync::Arc};

use http::{HeaderValue, Response, header};

use super::OnRejection;
use crate::error::{AuthError, ErrorKind};

/// Default realm of the `WWW-Authenticate` challenge.
pub const DEFAULT_REALM: &str = "api";

/// RFC 6750 rejections: the status code of the error's kind, a `WWW-Authenticate: Bearer`
/// challenge with `realm`, `error`, `error_description` and `scope` where they apply,
/// `Retry-After` on `503`, and an empty body.
///
/// A step-up rejection (RFC 9470) adds `acr_values` and/or `max_age`; with
/// [`resource_metadata`](Self::resource_metadata) set, every challenge names the resource's
/// RFC 9728 metadata URL.
#[derive(Clone, Debug)]
pub struct HttpRejection {
    realm: Arc<str>,
    resource_metadata: Option<Arc<str>>,
}

impl Default for HttpRejection {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpRejection {
    /// Rejections with the realm `api`.
    pub fn new() -> Self {
        Self {
            realm: DEFAULT_REALM.into(),
            resource_metadata: None,
        }
    }

    /// Sets the `realm` of the challenge. Characters that cannot appear in a header are
    /// dropped, quotes and backslashes escaped. Default: `api`.
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = realm.into();
        self
    }

    /// Adds `resource_metadata="<url>"` (RFC 9728 §5.1) to every challenge, so that a client
    /// can find the resource's metadata and, through it, the authorization server. `url`
    /// should be the absolute URL of the metadata document, as
    /// [`ProtectedResource::metadata_url`](crate::metadata::ProtectedResource::metadata_url)
    /// gives it; characters that cannot appear in a header are dropped. Default: none.
    #[must_use]
    pub fn resource_metadata(mut self, url: &str) -> Self {
        self.resource_metadata = Some(url.into());
        self
    }

    /// The `WWW-Authenticate: Bearer` value for `error`.
    pub fn challenge(&self, error: &AuthError) -> HeaderValue {
        self.challenge_with("Bearer realm=\"", error, true)
    }

    /// The `WWW-Authenticate: DPoP` value for `error` (RFC 9449 §7.1), when the layer
    /// accepts DPoP: the realm, the proof algorithms and, when the error concerns the DPoP
    /// request, the `error` attributes.
    pub fn dpop_challenge(&self, error: &AuthError) -> Option<HeaderValue> {
        let dpop = error.dpop_challenge()?;
        let start = format!("DPoP algs=\"{}\", realm=\"", dpop.algs);
        Some(self.challenge_with(&start, error, dpop.on_dpop))
    }

    fn challenge_with(&self, start: &str, error: &AuthError, with_error: bool) -> HeaderValue {
        let mut value = String::from(start);
        push_quoted(&mut value, &self.realm);
        value.push('"');
        let error_code = error.kind().error_code().filter(|_| with_error);
        if let Some(code) = error_code {
            let _ = write!(value, ", error=\"{code}\", error_description=\"");
            push_quoted(&mut value, error.public_description());
            value.push('"');
        }
        if let Some(scope) = error.required_scope().filter(|_| with_error) {
            value.push_str(", scope=\"");
            push_quoted(&mut value, scope);
            value.push('"');
        }
        if with_error {
            push_step_up(&mut value, error);
        }
        if let Some(url) = &self.resource_metadata {
            value.push_str(", resource_metadata=\"");
            push_quoted(&mut value, url);
            value.push('"');
        }
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
    }
}

/// Appends the RFC 9470 §3 parameters of a step-up error, if any.
pub(super) fn push_step_up(out: &mut String, error: &AuthError) {
    if let Some(acr) = error.acr_values() {
        out.push_str(", acr_values=\"");
        push_quoted(out, acr);
        out.push('"');
    }
    if let Some(max_age) = error.max_age() {
        let _ = write!(out, ", max_age=\"{}\"", max_age.as_secs());
    }
}

/// Appends `s` as the inside of an HTTP quoted-string.
fn push_quoted(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
}

impl<B: Default> OnRejection<B> for HttpRejection {
    fn on_rejection(&mut self, error: &AuthError) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = error.status();
        let headers = response.headers_mut();
        if error.kind() != ErrorKind::Unavailable {
            let dpop = error.dpop_challenge();
            // With DPoP required only the `DPoP` challenge is offered (RFC 9449 §7.1).
            if dpop.is_none_or(|d| d.bearer) {
                let bearer = match dpop {
                    Some(d) => self.challenge_with("Bearer realm=\"", error, !d.on_dpop),
                    None => self.challenge(error),
                };
                headers.append(header::WWW_AUTHENTICATE, bearer);
            }
            if let Some(challenge) = self.dpop_challenge(error) {
                headers.append(header::WWW_AUTHENTICATE, challenge);
            }
            if let Some(nonce) = error
                .dpop_nonce()
                .and_then(|n| HeaderValue::from_str(n).ok())
            {
                headers.insert(crate::dpop::DPOP_NONCE.clone(), nonce);
            }
        }
        if let Some(after) = error.retry_after() {
            // Rounded up: a client waiting exactly this long must find the cooldown over.
            let seconds = after
                .as_secs()
                .saturating_add(u64::from(after.subsec_nanos() > 0));
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn respond(error: AuthError) -> Response<()> {
        HttpRejection::new().realm("orders").on_rejection(&error)
    }

    #[test]
    fn error_to_response_table() {
        let table: Vec<(AuthError, u16, Option<&str>, Option<&str>)> = vec![
            (
                AuthError::missing_token(),
                401,
                Some(r#"Bearer realm="orders""#),
                None,
            ),
            (
                AuthError::invalid_request("two tokens"),
                400,
                Some(
                    r#"Bearer realm="orders", error="invalid_request", error_description="two tokens""#,
                ),
                None,
            ),
            (
                AuthError::invalid_token("the token has expired"),
                401,
                Some(
                    r#"Bearer realm="orders", error="invalid_token", error_description="the access token is expired, revoked, malformed, or not valid for this resource""#,
                ),
                None,
            ),
            (
                AuthError::insufficient_scope("read write".into()),
                403,
                Some(
                    r#"Bearer realm="orders", error="insufficient_scope", error_description="the token lacks a scope this resource requires", scope="read write""#,
                ),
                None,
            ),
            (
                AuthError::unavailable("down", Duration::from_secs(30)),
                503,
                None,
                Some("30"),
            ),
            (
                AuthError::unavailable("down", Duration::from_millis(1_999)),
                503,
                None,
                Some("2"),
            ),
        ];
        for (error, status, challenge, retry) in table {
            let response = respond(error.clone());
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().expect("ascii").to_owned())
            };
            assert_eq!(
                header(header::WWW_AUTHENTICATE).as_deref(),
                challenge,
                "{error:?}"
            );
            assert_eq!(header(header::RETRY_AFTER).as_deref(), retry, "{error:?}");
        }
    }

    #[test]
    fn step_up_and_resource_metadata_table() {
        use crate::error::StepUpDetail;
        let metadata = "https://api.example.com/.well-known/oauth-protected-resource/v1";
        let step_up = |acr: Option<&str>, max_age: Option<u64>| {
            AuthError::insufficient_user_authentication(
                "stronger authentication is required",
                Arc::new(StepUpDetail {
                    acr_values: acr.map(Arc::from),
                    max_age,
                }),
            )
        };
        let table: Vec<(AuthError, u16, &str)> = vec![
            (
                AuthError::missing_token(),
                401,
                r#"Bearer realm="api", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#,
            ),
            (
                AuthError::invalid_token("the token has expired"),
                401,
                r#"Bearer realm="api", error="invalid_token", error_description="the access token is expired, revoked, malformed, or not valid for this resource", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#,
            ),
            (
                AuthError::insufficient_scope("mcp:write".into()),
                403,
                r#"Bearer realm="api", error="insufficient_scope", error_description="the token lacks a scope this resource requires", scope="mcp:write", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#,
            ),
            (
                step_up(Some("urn:example:mfa phr"), None),
                401,
                r#"Bearer realm="api", error="insufficient_user_authentication", error_description="stronger authentication is required", acr_values="urn:example:mfa phr", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#,
            ),
            (
                step_up(None, Some(300)),
                401,
                r#"Bearer realm="api", error="insufficient_user_authentication", error_description="stronger authentication is required", max_age="300", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#,
            ),
            (
                step_up(Some("mfa"), Some(0)),
                401,
                r#"Bearer realm="api", error="insufficient_user_authentication", error_description="stronger authentication is required", acr_values="mfa", max_age="0", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/v1""#,
            ),
        ];
        let mut rejection = HttpRejection::new().resource_metadata(metadata);
        for (error, status, challenge) in table {
            let response: Response<()> = rejection.on_rejection(&error);
            assert_eq!(response.status().as_u16(), status, "{error:?}");
            assert_eq!(
                response.headers()[header::WWW_AUTHENTICATE],
                challenge,
                "{error:?}"
            );
        }
        let down: Response<()> =
            rejection.on_rejection(&AuthError::unavailable("down", Duration::from_secs(1)));
        assert_eq!(down.headers().get(header::WWW_AUTHENTICATE), None);
        let injected = HttpRejection::new().resource_metadata("https://a/\"x\r\n");
        assert_eq!(
            injected.challenge(&AuthError::missing_token()),
            r#"Bearer realm="api", resource_metadata="https://a/\"x""#
        );
    }

    #[test]
    fn realm_is_quoted_safely() {
        let r = HttpRejection::new().realm("a\"b\\c\r\nd");
        assert_eq!(
            r.challenge(&AuthError::missing_token()),
            r#"Bearer realm="a\"b\\cd""#
        );
    }

    #[test]
    fn closures_are_responders() {
        let mut custom = |e: &AuthError| {
            let mut r = Response::new(e.description().to_owned());
            *r.status_mut() = e.status();
            r
        };
        let r = custom.on_rejection(&AuthError::missing_token());
        assert_eq!(r.status(), 401);
        assert_eq!(r.body(), "no bearer token in the request");
    }
}
