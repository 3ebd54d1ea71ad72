//! The `cnf` (confirmation, RFC 7800) claim of a sender-constrained token: the key a DPoP
//! proof must be signed with (RFC 9449 §6) or the client certificate the request must
//! arrive with (RFC 8705 §3).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};

/// The longest thumbprint read from `cnf`; a SHA-256 thumbprint is 43 characters.
const MAX_THUMBPRINT_LEN: usize = 128;

/// What a sender-constrained token is bound to, read from its `cnf` claim (a JWT claim or a
/// member of an introspection answer).
///
/// A token with a `cnf` claim is only accepted when the request proves the binding: a DPoP
/// proof signed by the key with [`jwk_thumbprint`](Self::jwk_thumbprint), a client
/// certificate with [`certificate_thumbprint`](Self::certificate_thumbprint), or both when
/// the token names both. A `cnf` claim with any other member (`jwk`, `jku`, `kid`, …) is
/// refused, since that binding could not be checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Confirmation {
    jkt: Option<Box<str>>,
    x5t_s256: Option<Box<str>>,
}

impl Confirmation {
    /// `cnf.jkt`: the base64url SHA-256 thumbprint (RFC 7638) of the DPoP proof key.
    pub fn jwk_thumbprint(&self) -> Option<&str> {
        self.jkt.as_deref()
    }

    /// `cnf["x5t#S256"]`: the base64url SHA-256 thumbprint of the client certificate's DER.
    pub fn certificate_thumbprint(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }
}

impl fmt::Debug for Confirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Confirmation")
            .field("jkt", &self.jkt)
            .field("x5t#S256", &self.x5t_s256)
            .finish()
    }
}

/// A thumbprint: a non-empty base64url string of bounded length.
fn thumbprint<E: de::Error>(value: String) -> Result<Box<str>, E> {
    let valid = !value.is_empty()
        && value.len() <= MAX_THUMBPRINT_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(value.into_boxed_str())
    } else {
        Err(E::custom("a cnf thumbprint is not a base64url string"))
    }
}

impl<'de> Deserialize<'de> for Confirmation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Confirmation;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a cnf object with jkt and/or x5t#S256")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut cnf = Confirmation {
                    jkt: None,
                    x5t_s256: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    let slot = match key.as_str() {
                        "jkt" => &mut cnf.jkt,
                        "x5t#S256" => &mut cnf.x5t_s256,
                        _ => return Err(de::Error::custom("unsupported confirmation method")),
                    };
                    if slot.is_some() {
                        return Err(de::Error::custom("repeated confirmation member"));
                    }
                    *slot = Some(thumbprint(map.next_value::<String>()?)?);
                }
                if cnf.jkt.is_none() && cnf.x5t_s256.is_none() {
                    return Err(de::Error::custom("empty confirmation"));
                }
                Ok(cnf)
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cnf_shapes() {
        let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
        let ok: Confirmation = serde_json::from_str(&format!(r#"{{"jkt":"{jkt}"}}"#)).expect("jkt");
        assert_eq!(ok.jwk_thumbprint(), Some(jkt));
        assert_eq!(ok.certificate_thumbprint(), None);
        let both: Confirmation =
            serde_json::from_str(&format!(r#"{{"x5t#S256":"{jkt}","jkt":"{jkt}"}}"#))
                .expect("both");
        assert_eq!(both.certificate_thumbprint(), Some(jkt));
        let bad = [
            "{}".to_owned(),
            "null".to_owned(),
            r#""jkt""#.to_owned(),
            r#"{"jkt":5}"#.to_owned(),
            r#"{"jkt":""}"#.to_owned(),
            r#"{"jkt":"a+b/c="}"#.to_owned(),
            format!(r#"{{"jkt":"{}"}}"#, "a".repeat(MAX_THUMBPRINT_LEN + 1)),
            format!(r#"{{"jkt":"{jkt}","jkt":"{jkt}"}}"#),
            format!(r#"{{"jkt":"{jkt}","jwk":{{"kty":"EC"}}}}"#),
            r#"{"jwk":{"kty":"EC"}}"#.to_owned(),
            r#"{"kid":"k"}"#.to_owned(),
            r#"{"x5t":"abc"}"#.to_owned(),
        ];
        for json in bad {
            assert!(
                serde_json::from_str::<Confirmation>(&json).is_err(),
                "{json} should be refused"
            );
        }
    }
}
