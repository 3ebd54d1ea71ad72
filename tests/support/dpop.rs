//! A DPoP client for the tests (RFC 9449): a key generated in the test, proofs signed with
//! it, and DPoP-bound tokens from the provider fixture.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{
    rand::{SecureRandom, SystemRandom},
    signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair},
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, jwk::Jwk};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::idp::{CLIENT_ID, CLIENT_SECRET, Idp};

/// A P-256 key pair made for one test, with its public JWK.
pub struct DpopKey {
    pub encoding: EncodingKey,
    /// The public JWK: `kty`, `crv`, `x`, `y` only.
    pub jwk: Value,
    /// The PKCS#8 document, for tests that need the private members.
    pub pkcs8: Vec<u8>,
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// A random `jti`.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system has a random source");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(`token`)): the `ath` claim.
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

pub fn b64_json(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("JSON"))
}

impl DpopKey {
    pub fn generate() -> Self {
        portcullis::__doc_support::install_crypto_provider();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .expect("P-256 key generation")
                .as_ref()
                .to_vec();
        let encoding = EncodingKey::from_ec_der(&pkcs8);
        let full = serde_json::to_value(
            Jwk::from_encoding_key(&encoding, Algorithm::ES256).expect("public JWK"),
        )
        .expect("JWK JSON");
        let jwk = json!({"kty": "EC", "crv": full["crv"], "x": full["x"], "y": full["y"]});
        assert!(jwk["x"].is_string() && jwk["y"].is_string(), "{full}");
        Self {
            encoding,
            jwk,
            pkcs8,
        }
    }

    /// The RFC 7638 thumbprint, computed here independently of portcullis.
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().expect("x"),
            self.jwk["y"].as_str().expect("y")
        );
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }

    /// The header of a well-formed proof.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk})
    }

    /// The claims of a fresh proof for `method` `htu`, bound to `token` when given.
    pub fn claims(&self, method: &str, htu: &str, token: Option<&str>) -> Value {
        let mut claims = json!({"jti": random_id(), "htm": method, "htu": htu, "iat": now()});
        if let Some(token) = token {
            claims["ath"] = json!(ath(token));
        }
        claims
    }

    /// A compact JWS of `header` and `claims`, signed with this key (ES256).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64_json(header), b64_json(claims));
        let signature =
            jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, Algorithm::ES256)
                .expect("ES256 signature");
        format!("{message}.{signature}")
    }

    /// A fresh, well-formed proof.
    pub fn proof(&self, method: &str, htu: &str, token: Option<&str>) -> String {
        self.sign(&self.header(), &self.claims(method, htu, token))
    }
}

/// The client credentials token response for [`CLIENT_ID`] with a DPoP proof of `key`: a
/// token bound to `key`.
pub async fn dpop_token_response(idp: &Idp, key: &DpopKey, resource: &str, scope: &str) -> Value {
    let endpoint = idp.token_endpoint();
    let resp = reqwest::Client::new()
        .post(&endpoint)
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .header("dpop", key.proof("POST", &endpoint, None))
        .form(&[
            ("grant_type", "client_credentials"),
            ("resource", resource),
            ("scope", scope),
        ])
        .send()
        .await
        .expect("the token endpoint answers");
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "DPoP token request: {body}\n{}", idp.stderr());
    let response: Value = serde_json::from_str(&body).expect("token response JSON");
    assert_eq!(response["token_type"], "DPoP", "{response}");
    response
}

/// A token bound to `key`, from the client credentials grant.
pub async fn dpop_token(idp: &Idp, key: &DpopKey, resource: &str, scope: &str) -> String {
    dpop_token_response(idp, key, resource, scope).await["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}
