//! The call to the introspection endpoint: where it is (configured, or discovered from the
//! issuer), how the resource server authenticates to it (RFC 7662 §2.1), and the form sent.

use std::{
    collections::hash_map::RandomState,
    fmt,
    hash::BuildHasher,
    sync::{
        Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use base64::{Engine, engine::general_purpose::STANDARD};
use http::header;
use jsonwebtoken::{EncodingKey, Header};
use reqwest::Url;
use serde::{Serialize, de::IgnoredAny};

use crate::{
    alg::Algorithm,
    clock::unix_now,
    discovery,
    error::ConfigError,
    http_client::{FetchError, HttpClient, parse_url},
};

/// How a client secret is sent to the introspection endpoint (RFC 7662 §2.1).
///
/// Other methods have their own builder methods:
/// [`client_private_key_jwt`](super::IntrospectionBuilder::client_private_key_jwt) and
/// [`client_tls_auth`](super::IntrospectionBuilder::client_tls_auth).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with the form-encoded client id and secret (RFC 6749 §2.3.1).
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
}

/// A client secret; `Debug` never shows it.
#[derive(Clone)]
pub(super) struct Secret(pub(super) Box<str>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// A private key for `private_key_jwt`; `Debug` shows only its algorithm and `kid`.
#[derive(Clone)]
pub(super) struct AssertionKey {
    pub(super) key: EncodingKey,
    pub(super) alg: Algorithm,
    pub(super) kid: Option<Box<str>>,
}

impl fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AssertionKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl AssertionKey {
    /// Reads a PEM private key of the family `alg` needs.
    pub(super) fn from_pem(
        pem: &[u8],
        alg: Algorithm,
        kid: Option<String>,
    ) -> Result<Self, ConfigError> {
        use Algorithm as A;
        let key = match alg {
            A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512 => {
                EncodingKey::from_rsa_pem(pem)
            }
            A::ES256 | A::ES384 => EncodingKey::from_ec_pem(pem),
            A::EdDSA => EncodingKey::from_ed_pem(pem),
        }
        .map_err(|_| {
            ConfigError::new("the private_key_jwt key is not a PEM private key for its algorithm")
        })?;
        Ok(Self {
            key,
            alg,
            kid: kid.map(String::into_boxed_str),
        })
    }
}

/// How the resource server proves who it is.
#[derive(Clone, Debug)]
pub(super) enum Credentials {
    Secret(Secret, ClientAuth),
    PrivateKeyJwt(AssertionKey),
    /// The client certificate is on the application's HTTP client.
    TlsClientAuth,
}

/// The endpoint, the HTTP client and the client authentication.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) http: HttpClient,
    pub(super) issuer: Box<str>,
    /// Set when the endpoint is discovered rather than configured.
    pub(super) issuer_url: Option<Url>,
    pub(super) endpoint: Mutex<Option<Url>>,
    pub(super) allow_http: bool,
    /// Hosts besides the issuer's a discovered endpoint may be on.
    pub(super) other_hosts: Box<[Box<str>]>,
    pub(super) client_id: Box<str>,
    pub(super) credentials: Credentials,
}

impl Client {
    async fn endpoint(&self) -> Result<Url, FetchError> {
        if let Some(url) = lock(&self.endpoint).clone() {
            return Ok(url);
        }
        let issuer_url = self
            .issuer_url
            .as_ref()
            .ok_or(FetchError::Invalid("no introspection endpoint"))?;
        let metadata = discovery::discover(&self.http, issuer_url, &self.issuer).await?;
        let url = metadata.introspection_endpoint.ok_or(FetchError::Invalid(
            "discovery document has no introspection_endpoint",
        ))?;
        let url = parse_url(&url, self.allow_http).map_err(|_| {
            FetchError::Invalid("discovery document has an unusable introspection_endpoint")
        })?;
        // Tokens and the client's credentials would go there: another host needs an opt-in.
        let host = url.host_str().unwrap_or_default();
        if url.host_str() != issuer_url.host_str()
            && !self
                .other_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(host))
        {
            return Err(FetchError::Invalid(
                "the discovered introspection_endpoint is on another host than the issuer (see allow_introspection_host)",
            ));
        }
        *lock(&self.endpoint) = Some(url.clone());
        Ok(url)
    }

    /// The RFC 7662 §2.1 request: the token, its type hint and the client authentication.
    fn request(&self, endpoint: &Url, token: &str) -> Result<reqwest::RequestBuilder, FetchError> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("token", token)
            .append_pair("token_type_hint", "access_token");
        let mut request = self
            .http
            .post(endpoint)
            .header(header::ACCEPT, "application/json")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        match &self.credentials {
            Credentials::Secret(secret, ClientAuth::ClientSecretBasic) => {
                request = request.header(
                    header::AUTHORIZATION,
                    basic_auth(&self.client_id, &secret.0)?,
                );
            }
            Credentials::Secret(secret, ClientAuth::ClientSecretPost) => {
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_secret", &secret.0);
            }
            Credentials::PrivateKeyJwt(key) => {
                let assertion = assertion(key, &self.client_id, &self.issuer)?;
                form.append_pair("client_id", &self.client_id)
                    .append_pair("client_assertion_type", ASSERTION_TYPE)
                    .append_pair("client_assertion", &assertion);
            }
            Credentials::TlsClientAuth => {
                form.append_pair("client_id", &self.client_id);
            }
        }
        Ok(request.body(form.finish()))
    }

    /// Asks the endpoint about `token`; the answer is a `200 OK` JSON body.
    pub(super) async fn introspect(&self, token: &str) -> Result<Vec<u8>, FetchError> {
        let endpoint = self.endpoint().await?;
        let request = self.request(&endpoint, token)?;
        let fetched = self
            .http
            .send(request, &endpoint, self.http.max_bytes)
            .await?;
        serde_json::from_slice::<IgnoredAny>(&fetched.body)
            .map_err(|_| FetchError::Invalid("introspection answer is not JSON"))?;
        Ok(fetched.body)
    }
}

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Life of a client assertion.
const ASSERTION_LIFETIME: u64 = 60;

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

/// A fresh RFC 7523 client assertion: `iss` = `sub` = the client id, `aud` the issuer, a
/// one-minute life and a `jti` never repeated by this process.
fn assertion(key: &AssertionKey, client_id: &str, issuer: &str) -> Result<String, FetchError> {
    let now = unix_now() as u64;
    let mut header = Header::new(key.alg.to_jsonwebtoken());
    header.kid = key.kid.as_deref().map(str::to_owned);
    let claims = AssertionClaims {
        iss: client_id,
        sub: client_id,
        aud: issuer,
        iat: now,
        exp: now + ASSERTION_LIFETIME,
        jti: unique_id(),
    };
    jsonwebtoken::encode(&header, &claims, &key.key)
        .map_err(|_| FetchError::Invalid("the client assertion could not be signed"))
}

/// 128 bits from two randomly keyed hashes of a process-wide counter: unique within the
/// process, unpredictable outside it.
fn unique_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let (a, b) = (
        RandomState::new().hash_one(n),
        RandomState::new().hash_one(n),
    );
    format!("{a:016x}{b:016x}{n:x}")
}

/// `Basic` credentials with the id and secret form-encoded first (RFC 6749 §2.3.1).
fn basic_auth(id: &str, secret: &str) -> Result<http::HeaderValue, FetchError> {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let credentials = format!("{}:{}", encode(id), encode(secret));
    let mut value = http::HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
        .map_err(|_| FetchError::Invalid("client credentials do not fit a header"))?;
    value.set_sensitive(true);
    Ok(value)
}

fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_encoded() {
        let value = basic_auth("my api", "p:ss").expect("header");
        // base64("my+api:p%3Ass")
        assert_eq!(value, "Basic bXkrYXBpOnAlM0Fzcw==");
        assert!(value.is_sensitive());
    }

    #[test]
    fn ids_do_not_repeat() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| unique_id()).collect();
        assert_eq!(ids.len(), 1000);
    }
}
