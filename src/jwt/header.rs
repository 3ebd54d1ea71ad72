//! The JOSE header, parsed strictly and only for what validation needs.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, de::IgnoredAny};

use crate::error::AuthError;
use crate::{alg::Algorithm, jwks::keys::MAX_KID_LEN};

/// How the `typ` header is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TypPolicy {
    /// `at+jwt`, `application/at+jwt`, `JWT` or absent.
    Lenient,
    /// `at+jwt` or `application/at+jwt` only (RFC 9068 §4).
    Strict,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    // `null` is not a string: a present `kid` or `typ` must be one.
    #[serde(default, borrow, deserialize_with = "string")]
    kid: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "string")]
    typ: Option<Cow<'a, str>>,
    // Present at all, whatever its value (`null` included), means an extension we do not
    // implement: reject.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    // JWE members: an encrypted token is not a signed one.
    #[serde(default, deserialize_with = "present")]
    enc: bool,
    #[serde(default, deserialize_with = "present")]
    zip: bool,
    // RFC 7797 unencoded payloads change the signing input: never accepted.
    #[serde(default, deserialize_with = "present")]
    b64: bool,
    // `jku`, `x5u`, `jwk`, `x5c` and other members are ignored: a key is only ever found
    // in the issuer's own key set, by `kid`.
}

/// A string that borrows from the input when it has no escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn string<'de: 'a, 'a, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Text::deserialize(d).map(|text| Some(text.0))
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

/// The parts of the header validation uses.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Cow<'a, str>>,
}

pub(crate) fn parse(json: &[u8], typ_policy: TypPolicy) -> Result<Header<'_>, AuthError> {
    // RFC 7515 §4: the header is a JSON object. serde's derive would also take an array.
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(AuthError::invalid_token(
            "the token header is not a valid JOSE header",
        ));
    }
    // RFC 7515 §5.2: UTF-8 throughout; serde_json checks it only in the strings it reads.
    let raw: RawHeader<'_> = std::str::from_utf8(json)
        .ok()
        .and_then(|json| serde_json::from_str(json).ok())
        .ok_or_else(|| AuthError::invalid_token("the token header is not a valid JOSE header"))?;
    if raw.crit || raw.b64 {
        return Err(AuthError::invalid_token(
            "the token header names an unsupported critical extension",
        ));
    }
    if raw.enc || raw.zip {
        return Err(AuthError::invalid_token(
            "encrypted tokens are not accepted",
        ));
    }
    let alg = Algorithm::from_name(&raw.alg)
        .ok_or_else(|| AuthError::invalid_token("the token's algorithm is not accepted"))?;
    if !typ_allowed(raw.typ.as_deref(), typ_policy) {
        return Err(AuthError::invalid_token(
            "the token's type is not an access token",
        ));
    }
    if raw.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
        return Err(AuthError::invalid_token("the token's key id is too long"));
    }
    Ok(Header { alg, kid: raw.kid })
}

fn typ_allowed(typ: Option<&str>, policy: TypPolicy) -> bool {
    let Some(typ) = typ else {
        return policy == TypPolicy::Lenient;
    };
    let typ = strip_prefix_ignore_case(typ, "application/").unwrap_or(typ);
    // RFC 7515 §4.1.9: the "application/" prefix may be omitted, so both spellings count.
    typ.eq_ignore_ascii_case("at+jwt")
        || (policy == TypPolicy::Lenient && typ.eq_ignore_ascii_case("jwt"))
}

fn strip_prefix_ignore_case<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn typ_table() {
        use TypPolicy::*;
        let table = [
            (None, Lenient, true),
            (Some("at+jwt"), Lenient, true),
            (Some("AT+JWT"), Lenient, true),
            (Some("application/at+jwt"), Lenient, true),
            (Some("Application/AT+JWT"), Lenient, true),
            (Some("JWT"), Lenient, true),
            (Some("jwt"), Lenient, true),
            (Some("application/jwt"), Lenient, true),
            (Some("dpop+jwt"), Lenient, false),
            (Some("logout+jwt"), Lenient, false),
            (Some("secevent+jwt"), Lenient, false),
            (Some("JOSE"), Lenient, false),
            (Some(""), Lenient, false),
            (None, Strict, false),
            (Some("JWT"), Strict, false),
            (Some("at+jwt"), Strict, true),
            (Some("application/at+jwt"), Strict, true),
        ];
        for (typ, policy, expected) in table {
            assert_eq!(typ_allowed(typ, policy), expected, "{typ:?} {policy:?}");
        }
    }

    #[test]
    fn header_table() {
        let ok_bytes = |json: &[u8]| parse(json, TypPolicy::Lenient).map(|h| h.alg);
        let ok = |json: &str| ok_bytes(json.as_bytes());
        assert_eq!(
            ok(r#"{"alg":"RS256","kid":"a"}"#).ok(),
            Some(Algorithm::RS256)
        );
        assert_eq!(
            ok(r#"{"alg":"ES256","jku":"http://evil","x5u":"http://evil","jwk":{"kty":"EC"},"x5c":["AA"]}"#).ok(),
            Some(Algorithm::ES256)
        );
        let bad = [
            r#"{"alg":"none"}"#,
            r#"{"alg":"None"}"#,
            r#"{"alg":"HS256"}"#,
            r#"{"alg":"RS256","crit":["exp"]}"#,
            r#"{"alg":"RS256","crit":[]}"#,
            r#"{"alg":"RS256","crit":null}"#,
            r#"{"alg":"RS256","b64":null}"#,
            r#"{"alg":"RS256","enc":null}"#,
            r#"{"alg":"RS256","zip":null}"#,
            r#"{"alg":"RS256","zip":"DEF"}"#,
            r#"{"alg":"RS256","kid":null}"#,
            r#"{"alg":"RS256","typ":null}"#,
            r#"{"alg":"RS256","typ":["at+jwt"]}"#,
            r#"{"alg":"RS256","b64":false,"crit":["b64"]}"#,
            r#"{"alg":"RS256","enc":"A128GCM"}"#,
            r#"{"alg":"RS256","typ":"dpop+jwt"}"#,
            r#"{"alg":"RS256","alg":"RS256"}"#,
            r#"{"alg":"RS256","kid":5}"#,
            r#"{"kid":"a"}"#,
            r#"["alg","RS256"]"#,
            r#"["RS256","kid","at+jwt"]"#,
            r#" ["RS256"]"#,
            r#""RS256""#,
            r#"{"alg":"RS256"} x"#,
            "",
        ];
        for json in bad {
            let err = ok(json).expect_err(json);
            assert_eq!(err.kind(), ErrorKind::InvalidToken, "{json}");
        }
        // Invalid UTF-8 in a member the parser skips (found by `proptests`).
        assert!(ok_bytes(b"{\"alg\":\"RS256\",\"x\":\"\xff\"}").is_err());
        let escaped =
            parse(br#"{"alg":"RS256","kid":"a\/b"}"#, TypPolicy::Lenient).expect("escaped kid");
        assert_eq!(escaped.kid.as_deref(), Some("a/b"));
        let long_kid = format!(
            r#"{{"alg":"RS256","kid":"{}"}}"#,
            "k".repeat(MAX_KID_LEN + 1)
        );
        assert!(ok(&long_kid).is_err());
    }
}
