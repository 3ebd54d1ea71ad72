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
#[derive(Clone, Debug)]
pub struct HttpRejection {
    realm: Arc<str>,
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
        }
    }

    /// Sets the `realm` of the challenge. Characters that cannot appear in a header are
    /// dropped, quotes and backslashes escaped. Default: `api`.
    #[must_use]
    pub fn realm(mut self, realm: &str) -> Self {
        self.realm = realm.into();
        self
    }

    /// The `WWW-Authenticate` value for `error`.
    pub fn challenge(&self, error: &AuthError) -> HeaderValue {
        let mut value = String::from("Bearer realm=\"");
        push_quoted(&mut value, &self.realm);
        value.push('"');
        if let Some(code) = error.kind().error_code() {
            let _ = write!(value, ", error=\"{code}\", error_description=\"");
            push_quoted(&mut value, error.public_description());
            value.push('"');
        }
        if let Some(scope) = error.required_scope() {
            value.push_str(", scope=\"");
            push_quoted(&mut value, scope);
            value.push('"');
        }
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Bearer"))
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
            headers.insert(header::WWW_AUTHENTICATE, self.challenge(error));
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
