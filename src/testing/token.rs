//! [`TokenBuilder`]: the claims and header of a token a [`TestIssuer`] signs.

use std::{
    fmt,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{TestIssuer, TestIssuerError, key};

/// The lifetime of a token without [`TokenBuilder::expires_in`] or
/// [`TokenBuilder::expires_at`]: one hour.
const DEFAULT_LIFETIME: i64 = 3600;

/// How long ago an [`expired`](TokenBuilder::expired) token expired: one hour, far beyond
/// any leeway a [`Jwt`](crate::Jwt) accepts (at most 5 minutes).
const EXPIRED_AGO: i64 = 3600;

/// A token being minted by a [`TestIssuer`]; [`sign`](Self::sign) finishes it.
///
/// By default the token carries `iss` (the issuer), `iat` (now), `exp` (in one hour) and a
/// random `jti`, and its header `alg` `ES256`, the current `kid` and `typ` `at+jwt`. No
/// `sub`, `aud` or `scope` unless set.
#[must_use]
pub struct TokenBuilder<'a> {
    issuer: &'a TestIssuer,
    subject: Option<String>,
    audience: Option<Value>,
    scope: Option<String>,
    expires_at: Option<i64>,
    not_before: Option<i64>,
    issued_at: Option<i64>,
    typ: Option<String>,
    extra: Map<String, Value>,
    error: Option<TestIssuerError>,
}

/// Shows which claims are set, not their values.
impl fmt::Debug for TokenBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("issuer", &self.issuer.issuer())
            .field("extra_claims", &self.extra.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> TokenBuilder<'a> {
    pub(super) fn new(issuer: &'a TestIssuer) -> Self {
        Self {
            issuer,
            subject: None,
            audience: None,
            scope: None,
            expires_at: None,
            not_before: None,
            issued_at: None,
            typ: Some("at+jwt".to_owned()),
            extra: Map::new(),
            error: None,
        }
    }

    /// `sub`. Default: none.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// `aud` as a single string (replacing any audience set before). Default: none, which
    /// every [`Jwt`](crate::Jwt) refuses.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(Value::String(audience.into()));
        self
    }

    /// `aud` as an array of these audiences (replacing any audience set before). Default:
    /// none.
    pub fn audiences<I>(mut self, audiences: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let list = audiences
            .into_iter()
            .map(|a| Value::String(a.into()))
            .collect();
        self.audience = Some(Value::Array(list));
        self
    }

    /// `scope`: these scopes joined by spaces (RFC 9068 §2.2.3). An empty list leaves
    /// `scope` out. Default: none.
    pub fn scopes<I>(mut self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut joined = String::new();
        for scope in scopes {
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(scope.as_ref());
        }
        self.scope = (!joined.is_empty()).then_some(joined);
        self
    }

    /// `exp` this long from now. Default: one hour from signing.
    pub fn expires_in(mut self, lifetime: Duration) -> Self {
        self.expires_at = Some(now().saturating_add(seconds(lifetime)));
        self
    }

    /// `exp` at this time. Default: one hour from signing.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(unix(at));
        self
    }

    /// A token that expired an hour ago (and was issued an hour before that, unless
    /// [`issued_at`](Self::issued_at) says otherwise): refused by every [`Jwt`](crate::Jwt)
    /// whatever its leeway.
    pub fn expired(mut self) -> Self {
        self.expires_at = Some(now().saturating_sub(EXPIRED_AGO));
        self
    }

    /// `nbf` this long from now: a token not yet valid when the delay exceeds the
    /// [`Jwt`](crate::Jwt)'s leeway (30 s by default). Default: no `nbf`.
    pub fn not_before_in(mut self, delay: Duration) -> Self {
        self.not_before = Some(now().saturating_add(seconds(delay)));
        self
    }

    /// `nbf` at this time. Default: no `nbf`.
    pub fn not_before(mut self, at: SystemTime) -> Self {
        self.not_before = Some(unix(at));
        self
    }

    /// `iat` at this time. Default: the signing time, or an hour before `exp` when `exp`
    /// is already past.
    pub fn issued_at(mut self, at: SystemTime) -> Self {
        self.issued_at = Some(unix(at));
        self
    }

    /// Sets any claim to any serializable value; set last, it overrides the claims above
    /// (`iss` included, e.g. to claim another issuer). Default: no extra claims.
    ///
    /// A value that fails to serialize makes [`try_sign`](Self::try_sign) fail.
    pub fn claim(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        match serde_json::to_value(value) {
            Ok(value) => {
                self.extra.insert(name.into(), value);
            }
            Err(e) => {
                self.error.get_or_insert_with(|| {
                    TestIssuerError::with_source("a claim does not serialize", e)
                });
            }
        }
        self
    }

    /// Sets every member of `claims` (a struct or a map that serializes to a JSON object)
    /// as with [`claim`](Self::claim). Default: no extra claims.
    ///
    /// Anything but an object makes [`try_sign`](Self::try_sign) fail.
    pub fn claims(mut self, claims: impl Serialize) -> Self {
        match serde_json::to_value(claims) {
            Ok(Value::Object(members)) => self.extra.extend(members),
            Ok(_) => {
                self.error.get_or_insert_with(|| {
                    TestIssuerError::new("claims must serialize to a JSON object")
                });
            }
            Err(e) => {
                self.error.get_or_insert_with(|| {
                    TestIssuerError::with_source("the claims do not serialize", e)
                });
            }
        }
        self
    }

    /// The header's `typ`; `None` leaves it out. Default: `at+jwt` (RFC 9068).
    pub fn typ(mut self, typ: Option<&str>) -> Self {
        self.typ = typ.map(str::to_owned);
        self
    }

    /// Signs the token with the issuer's current key.
    ///
    /// # Panics
    ///
    /// When [`try_sign`](Self::try_sign) fails: a claim that did not serialize, or a failure
    /// of the crypto backend or of the system's random generator.
    pub fn sign(self) -> String {
        match self.try_sign() {
            Ok(token) => token,
            Err(e) => panic!("portcullis::testing: the token cannot be signed: {e}"),
        }
    }

    /// Signs the token with the issuer's current key.
    ///
    /// # Errors
    ///
    /// A claim that did not serialize (see [`claim`](Self::claim)), or a failure of the
    /// crypto backend or of the system's random generator.
    pub fn try_sign(self) -> Result<String, TestIssuerError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        let now = now();
        let exp = self
            .expires_at
            .unwrap_or_else(|| now.saturating_add(DEFAULT_LIFETIME));
        let iat = self.issued_at.unwrap_or(if exp > now {
            now
        } else {
            exp.saturating_sub(DEFAULT_LIFETIME)
        });
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.issuer().into());
        if let Some(sub) = self.subject {
            claims.insert("sub".into(), sub.into());
        }
        if let Some(aud) = self.audience {
            claims.insert("aud".into(), aud);
        }
        if let Some(scope) = self.scope {
            claims.insert("scope".into(), scope.into());
        }
        claims.insert("iat".into(), iat.into());
        if let Some(nbf) = self.not_before {
            claims.insert("nbf".into(), nbf.into());
        }
        claims.insert("exp".into(), exp.into());
        claims.insert("jti".into(), key::random_b64(16)?.into());
        claims.extend(self.extra);

        let key = self.issuer.signing_key();
        let mut header = Header::new(Algorithm::ES256);
        header.typ = self.typ;
        header.kid = Some(key.kid.clone());
        crate::crypto::install_provider();
        jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| TestIssuerError::with_source("the crypto backend could not sign", e))
    }
}

/// Seconds since the Unix epoch, now.
fn now() -> i64 {
    unix(SystemTime::now())
}

/// Seconds since the Unix epoch (negative before it), saturating.
fn unix(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => seconds(after),
        Err(before) => seconds(before.duration()).saturating_neg(),
    }
}

fn seconds(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;

    fn claims_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).expect("a payload segment");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
    }

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn times_are_as_set_and_default_as_documented() {
        let issuer = TestIssuer::without_server("https://issuer.test").expect("issuer");
        // name, builder, then the expected `exp`, `iat` and `nbf`.
        type Case<'a> = (
            &'static str,
            TokenBuilder<'a>,
            Option<i64>,
            Option<i64>,
            Option<i64>,
        );
        let cases: [Case<'_>; 5] = [
            (
                "explicit times",
                issuer
                    .token()
                    .issued_at(at(1_000))
                    .not_before(at(1_100))
                    .expires_at(at(2_000)),
                Some(2_000),
                Some(1_000),
                Some(1_100),
            ),
            (
                "past exp without iat: issued an hour before exp",
                issuer.token().expires_at(at(50_000)),
                Some(50_000),
                Some(50_000 - DEFAULT_LIFETIME),
                None,
            ),
            (
                "a claim overrides the computed one",
                issuer.token().expires_at(at(9_000)).claim("exp", 7),
                Some(7),
                Some(9_000 - DEFAULT_LIFETIME),
                None,
            ),
            (
                "before the epoch: negative",
                issuer
                    .token()
                    .issued_at(UNIX_EPOCH - Duration::from_secs(5))
                    .expires_at(at(1)),
                Some(1),
                Some(-5),
                None,
            ),
            (
                "a date in 2100",
                issuer
                    .token()
                    .issued_at(at(0))
                    .expires_at(at(4_102_444_800)),
                Some(4_102_444_800),
                Some(0),
                None,
            ),
        ];
        for (name, builder, exp, iat, nbf) in cases {
            let claims = claims_of(&builder.sign());
            assert_eq!(claims["exp"].as_i64(), exp, "{name}");
            assert_eq!(claims["iat"].as_i64(), iat, "{name}");
            assert_eq!(claims["nbf"].as_i64(), nbf, "{name}");
        }

        let before = now();
        let claims = claims_of(
            &issuer
                .token()
                .expires_in(Duration::from_secs(90))
                .not_before_in(Duration::from_secs(30))
                .sign(),
        );
        let after = now();
        let exp = claims["exp"].as_i64().expect("exp");
        let nbf = claims["nbf"].as_i64().expect("nbf");
        let iat = claims["iat"].as_i64().expect("iat");
        assert!((before + 90..=after + 90).contains(&exp));
        assert!((before + 30..=after + 30).contains(&nbf));
        assert!((before..=after).contains(&iat));
    }

    #[test]
    fn scopes_and_audiences_take_their_json_shapes() {
        let issuer = TestIssuer::without_server("https://issuer.test").expect("issuer");
        let claims = claims_of(
            &issuer
                .token()
                .audience("first")
                .audiences(["a", "b"])
                .scopes(vec!["read".to_owned(), "write".to_owned()])
                .sign(),
        );
        assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
        assert_eq!(claims["scope"], "read write");

        let claims = claims_of(
            &issuer
                .token()
                .audiences(["a"])
                .audience("only")
                .scopes(["x"])
                .scopes(Vec::<&str>::new())
                .sign(),
        );
        assert_eq!(claims["aud"], "only");
        assert!(
            claims.get("scope").is_none(),
            "an empty list leaves scope out"
        );
        assert!(claims.get("sub").is_none());
        assert_eq!(claims["iss"], "https://issuer.test");
    }

    #[test]
    fn typ_can_be_changed_or_left_out() {
        let issuer = TestIssuer::without_server("https://issuer.test").expect("issuer");
        let header = |token: String| -> Value {
            let segment = token
                .split('.')
                .next()
                .expect("a header segment")
                .to_owned();
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).expect("base64url"))
                .expect("JSON")
        };
        assert_eq!(header(issuer.token().sign())["typ"], "at+jwt");
        assert_eq!(
            header(issuer.token().typ(Some("application/at+jwt")).sign())["typ"],
            "application/at+jwt"
        );
        assert!(header(issuer.token().typ(None).sign()).get("typ").is_none());
    }
}
