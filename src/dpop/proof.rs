//! One DPoP proof (RFC 9449 §4): parsed strictly, its signature checked under the public key
//! in its own header, its claims checked against the request.

use std::borrow::Cow;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use http::Method;
use serde::{Deserialize, Deserializer, de::IgnoredAny};
use sha2::{Digest, Sha256};

use super::{nonce::Nonces, replay::ReplayKey};
use crate::{
    alg::{AlgSet, Algorithm},
    base64url,
    error::{AuthError, ErrorKind},
    jwks::{
        keys::{self, RawJwk},
        verifier::Verifier,
    },
};

/// The longest `jti` accepted.
const MAX_JTI_LEN: usize = 256;

pub(crate) fn invalid(description: &'static str) -> AuthError {
    AuthError::new(ErrorKind::InvalidDpopProof, description)
}

/// What the proof must match.
pub(crate) struct Expected<'a> {
    pub(crate) method: &'a Method,
    /// The request's target URI without query and fragment, normalized.
    pub(crate) htu: &'a str,
    /// The access token the proof must be bound to (`ath`).
    pub(crate) token: &'a str,
    pub(crate) algs: AlgSet,
    pub(crate) now: f64,
    pub(crate) max_age: f64,
    pub(crate) leeway: f64,
    pub(crate) nonces: Option<&'a Nonces>,
}

/// A proof that passed every check but the replay check and the key binding.
#[derive(Debug)]
pub(crate) struct Verified {
    /// The RFC 7638 SHA-256 thumbprint of the proof key, base64url.
    pub(crate) jkt: String,
    pub(crate) replay: ReplayKey,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    typ: Cow<'a, str>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    jwk: RawJwk,
    #[serde(default, deserialize_with = "present")]
    crit: bool,
    #[serde(default, deserialize_with = "present")]
    b64: bool,
    #[serde(default, deserialize_with = "present")]
    enc: bool,
    #[serde(default, deserialize_with = "present")]
    zip: bool,
}

#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(borrow)]
    jti: Cow<'a, str>,
    #[serde(borrow)]
    htm: Cow<'a, str>,
    #[serde(borrow)]
    htu: Cow<'a, str>,
    iat: f64,
    #[serde(default, borrow)]
    ath: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    nonce: Option<Cow<'a, str>>,
}

/// A JSON object (serde's derive would also take an array).
fn object<'de, T: Deserialize<'de>>(json: &'de [u8]) -> Option<T> {
    if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    serde_json::from_slice(json).ok()
}

/// The proof key's verifier for `alg` and its RFC 7638 thumbprint input, through the JWK
/// reading of key sets: the same checks (no private members, RSA of at least 2048 bits,
/// P-256, P-384, Ed25519) and the crate's crypto backend.
fn key(jwk: &RawJwk, alg: Algorithm) -> Result<(Verifier, String), AuthError> {
    let (algs, material) = keys::material(jwk).map_err(|reason| {
        if reason == keys::PRIVATE_MATERIAL {
            invalid("the DPoP proof key carries private members")
        } else {
            invalid("the DPoP proof key is not a usable public key")
        }
    })?;
    if !algs.contains(alg) {
        return Err(invalid("the DPoP proof's algorithm does not fit its key"));
    }
    let canonical = jwk
        .thumbprint_input()
        .ok_or_else(|| invalid("the DPoP proof key is not a usable public key"))?;
    let verifier = Verifier::new(&material, None, AlgSet::one(alg))
        .map_err(|_| invalid("the DPoP proof key is not a usable public key"))?;
    Ok((verifier, canonical))
}

/// The base64url SHA-256 of `input`.
pub(crate) fn sha256_b64(input: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(input))
}

/// Checks the proof; the nonce check comes last so that a proof failing anything else is
/// reported as such.
pub(crate) fn verify(proof: &str, expected: &Expected<'_>) -> Result<Verified, AuthError> {
    let Some((h64, p64, s64)) = base64url::split(proof) else {
        return Err(invalid("the DPoP proof is not a compact JWS"));
    };
    if h64.is_empty() || p64.is_empty() || s64.is_empty() {
        return Err(invalid("the DPoP proof is not a compact JWS"));
    }
    let header_json =
        base64url::decode(h64).ok_or_else(|| invalid("the DPoP proof is not valid base64url"))?;
    let header: RawHeader<'_> =
        object(&header_json).ok_or_else(|| invalid("the DPoP proof header is malformed"))?;
    if header.crit || header.b64 || header.enc || header.zip {
        return Err(invalid(
            "the DPoP proof header uses an unsupported extension",
        ));
    }
    if !header.typ.eq_ignore_ascii_case("dpop+jwt") {
        return Err(invalid("the DPoP proof's typ is not dpop+jwt"));
    }
    // `none` and HMAC have no `Algorithm`: they never get past this line.
    let alg = Algorithm::from_name(&header.alg)
        .filter(|a| expected.algs.contains(*a))
        .ok_or_else(|| invalid("the DPoP proof's algorithm is not accepted"))?;
    let (key, canonical) = key(&header.jwk, alg)?;
    let message = &proof[..h64.len() + 1 + p64.len()];
    let verified = base64url::decode(s64)
        .is_some_and(|signature| key.verify(alg, message.as_bytes(), &signature));
    if !verified {
        return Err(invalid("the DPoP proof's signature does not verify"));
    }
    let payload =
        base64url::decode(p64).ok_or_else(|| invalid("the DPoP proof is not valid base64url"))?;
    let claims: RawClaims<'_> =
        object(&payload).ok_or_else(|| invalid("the DPoP proof's claims are malformed"))?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_JTI_LEN {
        return Err(invalid("the DPoP proof's jti is missing or too long"));
    }
    if claims.htm != expected.method.as_str() {
        return Err(invalid("the DPoP proof is for another method"));
    }
    if super::htu::normalize(&claims.htu).as_deref() != Some(expected.htu) {
        return Err(invalid("the DPoP proof is for another URI"));
    }
    if !claims.iat.is_finite() || claims.iat > expected.now + expected.leeway {
        return Err(invalid("the DPoP proof was issued in the future"));
    }
    if claims.iat < expected.now - expected.max_age - expected.leeway {
        return Err(invalid("the DPoP proof is too old"));
    }
    let ath = sha256_b64(expected.token.as_bytes());
    if claims.ath.as_deref() != Some(ath.as_str()) {
        return Err(invalid("the DPoP proof is not bound to this access token"));
    }
    if let Some(nonces) = expected.nonces {
        let now = expected.now.max(0.0) as u64;
        if !claims
            .nonce
            .as_deref()
            .is_some_and(|n| nonces.is_valid(n, now))
        {
            return Err(AuthError::new(
                ErrorKind::UseDpopNonce,
                "the DPoP proof lacks a valid server nonce",
            ));
        }
    }
    let jkt = sha256_b64(canonical.as_bytes());
    let replay = ReplayKey::new(&jkt, &claims.jti);
    Ok(Verified { jkt, replay })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // The RSA key of RFC 7638 §3.1 and its published thumbprint.
        let jwk: RawJwk = serde_json::from_str(
            r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
        )
        .expect("jwk");
        let (_, canonical) = key(&jwk, Algorithm::RS256).expect("key");
        assert!(
            key(&jwk, Algorithm::PS256).is_ok(),
            "an RSA key verifies PS256 too"
        );
        assert!(key(&jwk, Algorithm::ES256).is_err());
        assert_eq!(
            sha256_b64(canonical.as_bytes()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn private_and_unusable_keys_are_refused() {
        let ec = r#""crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0""#;
        let ok: RawJwk = serde_json::from_str(&format!(r#"{{"kty":"EC",{ec}}}"#)).expect("jwk");
        assert!(key(&ok, Algorithm::ES256).is_ok());
        for bad in [
            format!(r#"{{"kty":"EC",{ec},"d":"AAAA"}}"#),
            format!(r#"{{"kty":"EC",{ec},"d":null}}"#),
            r#"{"kty":"oct","k":"c2VjcmV0"}"#.to_owned(),
            r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#.to_owned(),
            r#"{"kty":"RSA","n":"AQAB","e":"AQAB"}"#.to_owned(),
            r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA"}"#.to_owned(),
        ] {
            let jwk: RawJwk = serde_json::from_str(&bad).expect("jwk json");
            for alg in [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA] {
                assert!(key(&jwk, alg).is_err(), "{bad} {alg:?}");
            }
        }
    }
}
