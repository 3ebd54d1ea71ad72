use http::Response;
use tonic::{Code, Status, metadata::MetadataValue};

use super::OnRejection;
use crate::error::{AuthError, ErrorKind};

/// gRPC rejections: a trailers-only response (HTTP `200`, `content-type: application/grpc`)
/// whose `grpc-status` follows the error's kind and whose `grpc-message` is its fixed,
/// secret-free [`public_description`](AuthError::public_description), percent-encoded.
///
/// | [`ErrorKind`] | `grpc-status` |
/// |---|---|
/// | `MissingToken`, `InvalidRequest`, `InvalidToken` | `16` `UNAUTHENTICATED` |
/// | `InsufficientUserAuthentication` | `16` `UNAUTHENTICATED`, with `www-authenticate` |
/// | `InsufficientScope` | `7` `PERMISSION_DENIED` |
/// | `Unavailable` | `14` `UNAVAILABLE`, with `grpc-retry-pushback-ms` |
///
/// `UNAVAILABLE` carries the error's [`retry_after`](AuthError::retry_after) as
/// `grpc-retry-pushback-ms`, which gRPC clients with a retry policy honour (gRFC A6).
/// A step-up rejection (RFC 9470) carries its challenge in the `www-authenticate` metadata:
/// `Bearer error="insufficient_user_authentication"` with `acr_values` and/or `max_age`.
///
/// Chosen with [`BearerAuthLayer::grpc`](crate::BearerAuthLayer::grpc); the default of
/// [`MethodScopesLayer`](crate::grpc::MethodScopesLayer).
#[derive(Clone, Debug, Default)]
pub struct GrpcRejection {
    _private: (),
}

impl GrpcRejection {
    /// gRPC rejections.
    pub fn new() -> Self {
        Self::default()
    }

    /// The status answering `error`.
    pub fn status(&self, error: &AuthError) -> Status {
        let code = match error.kind() {
            ErrorKind::MissingToken
            | ErrorKind::InvalidRequest
            | ErrorKind::InvalidToken
            | ErrorKind::InsufficientUserAuthentication => Code::Unauthenticated,
            ErrorKind::InvalidDpopProof | ErrorKind::UseDpopNonce => Code::Unauthenticated,
            ErrorKind::InsufficientScope => Code::PermissionDenied,
            ErrorKind::Unavailable => Code::Unavailable,
        };
        let mut status = Status::new(code, error.public_description());
        if let Some(after) = error.retry_after() {
            let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
            status
                .metadata_mut()
                .insert("grpc-retry-pushback-ms", MetadataValue::from(millis));
        }
        if error.kind() == ErrorKind::InsufficientUserAuthentication {
            let mut challenge = String::from("Bearer error=\"insufficient_user_authentication\"");
            super::http::push_step_up(&mut challenge, error);
            if let Ok(value) = MetadataValue::try_from(challenge.as_str()) {
                status.metadata_mut().insert("www-authenticate", value);
            }
        }
        // RFC 9449 §8 over gRPC: the fresh nonce travels as `dpop-nonce` metadata.
        if let Some(nonce) = error
            .dpop_nonce()
            .and_then(|n| MetadataValue::try_from(n).ok())
        {
            status.metadata_mut().insert("dpop-nonce", nonce);
        }
        status
    }
}

impl<B: Default> OnRejection<B> for GrpcRejection {
    fn on_rejection(&mut self, error: &AuthError) -> Response<B> {
        self.status(error).into_http()
    }
}

/// The status [`GrpcRejection`] answers with, so that a handler can return an
/// [`AuthError`] with `?`, e.g. from [`ScopePolicy::check`](crate::ScopePolicy::check).
impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        GrpcRejection::new().status(&error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn error_to_status_table() {
        let table: Vec<(AuthError, &str, &str, Option<&str>)> = vec![
            (
                AuthError::missing_token(),
                "16",
                "no bearer token in the request",
                None,
            ),
            (
                AuthError::invalid_request("two tokens"),
                "16",
                "two tokens",
                None,
            ),
            (
                AuthError::invalid_token("the token has expired"),
                "16",
                "the access token is expired, revoked, malformed, or not valid for this resource",
                None,
            ),
            (
                AuthError::insufficient_scope("read write".into()),
                "7",
                "the token lacks a scope this resource requires",
                None,
            ),
            (
                AuthError::unavailable(
                    "the issuer's keys cannot be fetched",
                    Duration::from_secs(30),
                ),
                "14",
                "the issuer's keys cannot be fetched",
                Some("30000"),
            ),
        ];
        for (error, code, message, pushback) in table {
            let response: Response<()> = GrpcRejection::new().on_rejection(&error);
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .map(|v| v.to_str().expect("ascii").to_owned())
            };
            assert_eq!(response.status(), 200, "{error:?}");
            assert_eq!(header("content-type").as_deref(), Some("application/grpc"));
            assert_eq!(header("grpc-status").as_deref(), Some(code), "{error:?}");
            let encoded = header("grpc-message").expect("a grpc-message");
            let decoded = percent_decode(&encoded);
            assert_eq!(decoded, message, "{error:?}");
            assert_eq!(header("grpc-retry-pushback-ms").as_deref(), pushback);
            assert_eq!(header("www-authenticate"), None);
        }
    }

    #[test]
    fn step_up_is_unauthenticated_with_the_challenge() {
        use crate::error::StepUpDetail;
        use std::sync::Arc;
        let error = AuthError::insufficient_user_authentication(
            "stronger authentication is required",
            Arc::new(StepUpDetail {
                acr_values: Some("mfa".into()),
                max_age: Some(60),
            }),
        );
        let response: Response<()> = GrpcRejection::new().on_rejection(&error);
        assert_eq!(response.headers()["grpc-status"], "16");
        assert_eq!(
            percent_decode(response.headers()["grpc-message"].to_str().expect("ascii")),
            "stronger authentication is required"
        );
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer error="insufficient_user_authentication", acr_values="mfa", max_age="60""#
        );
    }

    #[test]
    fn grpc_message_is_percent_encoded() {
        let error = AuthError::new(ErrorKind::InvalidRequest, "50% off\r\nnot ascii: é");
        let response: Response<()> = GrpcRejection::new().on_rejection(&error);
        let raw = response.headers()["grpc-message"].to_str().expect("ascii");
        assert_eq!(raw, "50%25%20off%0D%0Anot%20ascii:%20%C3%A9");
        assert_eq!(percent_decode(raw), "50% off\r\nnot ascii: é");
    }

    #[test]
    fn auth_errors_convert_to_statuses() {
        let status = Status::from(AuthError::insufficient_scope("admin".into()));
        assert_eq!(status.code(), Code::PermissionDenied);
        assert_eq!(
            status.message(),
            "the token lacks a scope this resource requires"
        );
    }

    fn percent_decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("hex");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }
}
