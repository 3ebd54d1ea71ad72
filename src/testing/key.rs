//! The signing keys of a test issuer: ES256 on P-256, generated at start with the crate's
//! crypto backend (aws-lc-rs, or RustCrypto's `p256` when only `rust-crypto` is on).

use std::fmt;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{
    Algorithm, EncodingKey,
    jwk::{AlgorithmParameters, Jwk},
};
use serde_json::{Value, json};

use super::TestIssuerError;

/// A private signing key, its `kid` and its public JWK.
pub(super) struct SigningKey {
    pub(super) kid: String,
    pub(super) encoding: EncodingKey,
    /// The public members only: `kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`.
    pub(super) public: Value,
}

/// Never shows the private key.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh P-256 key under a random `kid`.
    pub(super) fn generate() -> Result<Self, TestIssuerError> {
        crate::crypto::install_provider();
        let der = p256_pkcs8()
            .map_err(|()| TestIssuerError::new("the crypto backend could not generate a key"))?;
        let encoding = EncodingKey::from_ec_der(&der);
        let kid = format!("test-{}", random_b64(9)?);
        let jwk = Jwk::from_encoding_key(&encoding, Algorithm::ES256)
            .map_err(|_| TestIssuerError::new("the generated key has no public JWK"))?;
        let AlgorithmParameters::EllipticCurve(ec) = jwk.algorithm else {
            return Err(TestIssuerError::new(
                "the generated key is not an elliptic-curve key",
            ));
        };
        // Built member by member so that nothing private can slip into the published set.
        let public = json!({
            "kty": "EC",
            "crv": "P-256",
            "x": ec.x,
            "y": ec.y,
            "kid": kid,
            "use": "sig",
            "alg": "ES256",
        });
        Ok(Self {
            kid,
            encoding,
            public,
        })
    }
}

/// `len` random bytes from the system's generator, base64url without padding.
pub(super) fn random_b64(len: usize) -> Result<String, TestIssuerError> {
    let mut bytes = [0u8; 32];
    let bytes = bytes
        .get_mut(..len)
        .ok_or_else(|| TestIssuerError::new("at most 32 random bytes at once"))?;
    getrandom::getrandom(bytes)
        .map_err(|_| TestIssuerError::new("the system's random generator failed"))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new P-256 private key as PKCS#8 DER (what jsonwebtoken's EC signers read).
#[cfg(feature = "aws-lc-rs")]
fn p256_pkcs8() -> Result<Vec<u8>, ()> {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).map_err(|_| ())?;
    let document = pair.to_pkcs8v1().map_err(|_| ())?;
    Ok(document.as_ref().to_vec())
}

/// A new P-256 private key as PKCS#8 DER (what jsonwebtoken's EC signers read).
#[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
fn p256_pkcs8() -> Result<Vec<u8>, ()> {
    use p256::pkcs8::EncodePrivateKey as _;
    // A uniformly random scalar is valid unless it is zero or at least the group order,
    // which happens with probability below 2^-32: a few draws are plenty.
    for _ in 0..8 {
        let mut bytes = p256::FieldBytes::default();
        getrandom::getrandom(&mut bytes).map_err(|_| ())?;
        if let Ok(secret) = p256::SecretKey::from_bytes(&bytes) {
            let der = secret.to_pkcs8_der().map_err(|_| ())?;
            return Ok(der.as_bytes().to_vec());
        }
    }
    Err(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ_and_publish_no_private_member() {
        let a = SigningKey::generate().expect("key A");
        let b = SigningKey::generate().expect("key B");
        assert_ne!(a.kid, b.kid);
        assert_ne!(a.public["x"], b.public["x"]);
        for key in [&a, &b] {
            let mut members: Vec<&str> = key
                .public
                .as_object()
                .expect("a JWK is an object")
                .keys()
                .map(String::as_str)
                .collect();
            members.sort_unstable();
            assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
            // P-256 coordinates are 32 bytes each.
            for c in ["x", "y"] {
                let text = key.public[c].as_str().expect("coordinate is a string");
                assert_eq!(URL_SAFE_NO_PAD.decode(text).expect("base64url").len(), 32);
            }
        }
        assert!(!format!("{a:?}").contains("encoding"));
    }

    #[test]
    fn random_b64_is_random_and_bounded() {
        assert_ne!(
            random_b64(16).expect("16 bytes"),
            random_b64(16).expect("16 bytes")
        );
        assert_eq!(random_b64(9).expect("9 bytes").len(), 12);
        assert!(random_b64(33).is_err());
    }
}
