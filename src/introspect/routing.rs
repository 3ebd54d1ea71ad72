use std::borrow::Cow;

use serde::{Deserialize, de::DeserializeOwned};

use super::Introspection;
use crate::{
    authenticate::{Authenticate, Authentication},
    base64url,
    jwt::Jwt,
};

/// Sends JWT-shaped tokens to local validation and every other token to introspection.
///
/// A token is JWT-shaped when it has the full JWS compact shape: three dot-separated parts,
/// each of base64url characters only, the first decoding to a JSON object with a
/// non-empty string `alg` (a JOSE header), the second not empty. A JWT that fails local validation is
/// rejected; it is not retried through introspection. With
/// [`introspect_all`](Self::introspect_all), every token is introspected.
///
/// # Example
///
/// ```
/// use portcullis::{BearerAuthLayer, Introspection, Jwt, JwtOrIntrospection};
/// # let jwks = portcullis::__doc_support::JWKS;
///
/// let jwt = Jwt::builder()
///     .issuer_with_jwks("https://login.example.com", jwks)
///     .audience("https://api.example.com")
///     .build()?;
/// let introspection = Introspection::builder()
///     .issuer("https://login.example.com")
///     .endpoint("https://login.example.com/oauth2/introspect")
///     .client_credentials("my-api", "s3cr3t")
///     .audience("https://api.example.com")
///     .build()?;
/// let layer = BearerAuthLayer::new(JwtOrIntrospection::new(jwt, introspection));
/// # let _ = layer;
/// # Ok::<(), portcullis::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct JwtOrIntrospection<C = crate::RegisteredClaims> {
    jwt: Jwt<C>,
    introspection: Introspection<C>,
    introspect_all: bool,
}

impl<C> JwtOrIntrospection<C> {
    /// Routes JWT-shaped tokens to `jwt`, others to `introspection`.
    pub fn new(jwt: Jwt<C>, introspection: Introspection<C>) -> Self {
        Self {
            jwt,
            introspection,
            introspect_all: false,
        }
    }

    /// When `true`, every token, JWTs included, goes to introspection, so a revoked JWT is
    /// refused within the cache's TTL. Default: `false`.
    #[must_use]
    pub fn introspect_all(mut self, all: bool) -> Self {
        self.introspect_all = all;
        self
    }
}

/// The JWS compact shape: three base64url parts, the first a JSON object with a non-empty
/// string `alg`, the second not empty.
pub(crate) fn is_jwt_shaped(token: &str) -> bool {
    #[derive(Deserialize)]
    struct JoseHeader<'a> {
        #[serde(borrow)]
        alg: Cow<'a, str>,
    }
    let Some((header, payload, signature)) = base64url::split(token) else {
        return false;
    };
    let alphabet = |part: &str| {
        part.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    // A header this long is no header: do not decode it to find out.
    if header.is_empty()
        || header.len() > 4096
        || payload.is_empty()
        || ![header, payload, signature].into_iter().all(alphabet)
    {
        return false;
    }
    base64url::decode(header)
        .and_then(|json| {
            serde_json::from_slice::<JoseHeader<'_>>(&json)
                .ok()
                .map(|h| !h.alg.is_empty())
        })
        .unwrap_or(false)
}

impl<C> Authenticate for JwtOrIntrospection<C>
where
    C: DeserializeOwned + Send + Sync + 'static,
{
    type Claims = C;

    fn authenticate(&self, token: &str) -> Authentication<C> {
        if !self.introspect_all && is_jwt_shaped(token) {
            self.jwt.authenticate(token)
        } else {
            self.introspection.authenticate(token)
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    #[test]
    fn jwt_shape_table() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#);
        let not_object = URL_SAFE_NO_PAD.encode("[1]");
        let no_alg = URL_SAFE_NO_PAD.encode(r#"{"typ":"JWT"}"#);
        let alg_number = URL_SAFE_NO_PAD.encode(r#"{"alg":256}"#);
        let table = [
            (format!("{header}.e30.sig"), true),
            (format!("{header}.e30."), true),
            (format!("{header}.e30"), false),
            (format!("{header}.e30.a.b.c"), false),
            (format!("{not_object}.e30.sig"), false),
            (format!("{no_alg}.e30.sig"), false),
            (format!("{alg_number}.e30.sig"), false),
            (format!("{header}..sig"), false),
            (format!("{header}.e30+.sig"), false),
            (format!("{header}.e30.si/g"), false),
            (format!("{header}=.e30.sig"), false),
            (format!("{header}.e30.s g"), false),
            ("2YotnFZFEjr1zCsicMWpAA".to_owned(), false),
            ("a.b.c".to_owned(), false),
            ("..".to_owned(), false),
            ("mF_9.B5f-4.1JqM".to_owned(), false),
        ];
        for (token, jwt) in table {
            assert_eq!(is_jwt_shaped(&token), jwt, "{token}");
        }
    }
}
