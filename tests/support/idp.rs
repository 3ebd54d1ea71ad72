//! Drives the real OpenID provider fixture in `tests/idp` (node, `oidc-provider`).
//!
//! [`Idp::start`] runs `node tests/idp/server.mjs` on a loopback port and waits until it serves
//! its discovery document. The helpers then get tokens the way a client would: the client
//! credentials grant, or the authorization code flow with PKCE, playing the user's browser
//! headlessly. Dropping the [`Idp`] stops the provider; so does the end of the test process, even
//! a killed one, because the provider exits when its stdin (a pipe held by this process) closes.
//!
//! The fixture needs Node.js >= 20 and its packages: `npm ci --prefix tests/idp`.
//!
//! What the provider offers (see `tests/idp/server.mjs`):
//! - resources [`API`] (JWT, RS256), [`API_ES`] (JWT, ES256), [`OTHER`] (JWT, RS256, another
//!   audience), [`SHORT`] (JWT, RS256, expires after [`SHORT_TTL_SECS`]) and [`OPAQUE`] (opaque
//!   tokens), each with the scopes `read write admin` and its own indicator as audience;
//! - the client [`CLIENT_ID`] (authorization code with PKCE S256, client credentials) and the
//!   resource-server clients [`RS_CLIENT_ID`] (`client_secret_basic`) and [`RS_POST_CLIENT_ID`]
//!   (`client_secret_post`), which may introspect any token;
//! - `POST /admin/rotate` and `GET /admin/jwks-hits`, behind [`Idp::rotate_key`] and
//!   [`Idp::jwks_hits`].

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::{StatusCode, Url};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Resource indicator (and audience) of JWT access tokens signed with RS256.
pub const API: &str = "urn:portcullis:api";
/// Resource indicator (and audience) of JWT access tokens signed with ES256.
pub const API_ES: &str = "urn:portcullis:api-es";
/// Resource indicator (and audience) of JWT access tokens meant for another API (RS256).
pub const OTHER: &str = "urn:portcullis:other";
/// Resource indicator (and audience) of opaque access tokens, to be introspected.
pub const OPAQUE: &str = "urn:portcullis:opaque";
/// Resource indicator (and audience) of JWT access tokens (RS256) carrying `acr` and
/// `auth_time`; the user authenticates at the first level of the request's `acr_values`.
pub const STEP_UP: &str = "urn:portcullis:step-up";
/// As [`STEP_UP`], with opaque access tokens whose introspection answers carry `acr` and
/// `auth_time`.
pub const STEP_UP_OPAQUE: &str = "urn:portcullis:step-up-opaque";
/// Resource indicator (and audience) of JWT access tokens (RS256) living [`SHORT_TTL_SECS`].
pub const SHORT: &str = "urn:portcullis:short";
/// Lifetime of the access tokens issued for [`SHORT`].
pub const SHORT_TTL_SECS: u64 = 3;
/// Lifetime of every other access token.
pub const ACCESS_TOKEN_TTL_SECS: u64 = 300;

/// The application: authorization code flow (PKCE S256) and client credentials grant.
pub const CLIENT_ID: &str = "portcullis-client";
pub const CLIENT_SECRET: &str = "portcullis-secret";
/// The redirect URI registered for [`CLIENT_ID`]; nothing listens there.
pub const REDIRECT_URI: &str = "http://127.0.0.1/callback";
/// The resource server's client for introspection, authenticating with `client_secret_basic`.
pub const RS_CLIENT_ID: &str = "portcullis-rs";
/// The resource server's client for introspection, authenticating with `client_secret_post`.
pub const RS_POST_CLIENT_ID: &str = "portcullis-rs-post";
/// The secret of both [`RS_CLIENT_ID`] and [`RS_POST_CLIENT_ID`].
pub const RS_CLIENT_SECRET: &str = "rs-secret";
/// The resource server authenticating with `private_key_jwt`, signing with
/// [`RS_JWT_CLIENT_KEY`] (`kid` `rs-jwt`, ES256).
pub const RS_JWT_CLIENT_ID: &str = "portcullis-rs-jwt";
/// The private key of [`RS_JWT_CLIENT_ID`] (PKCS#8 PEM).
pub const RS_JWT_CLIENT_KEY: &str = include_str!("../keys/introspection-client-es256.pem");

const SETUP_HINT: &str = "the OpenID provider fixture needs Node.js >= 20 and its packages: \
                          run `npm ci --prefix tests/idp`";
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A running OpenID provider on 127.0.0.1, stopped when dropped.
pub struct Idp {
    /// `http://127.0.0.1:PORT`, the `iss` of every token it issues.
    pub issuer: String,
    discovery: Value,
    http: reqwest::Client,
    child: Child,
    // Held open on purpose: the provider exits when this pipe closes.
    _stdin: ChildStdin,
    stderr: Arc<Mutex<String>>,
}

impl Idp {
    /// Starts a provider (about a second) and waits until it serves its discovery document.
    ///
    /// Panics with a hint when Node.js or the fixture's packages are missing, and with the
    /// provider's stderr when it does not come up within 20 seconds.
    pub async fn start() -> Idp {
        let dir = fixture_dir();
        check_prerequisites(&dir);

        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&dir)
            .env_remove("IDP_PORT")
            .env_remove("IDP_IGNORE_STDIN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot run `node server.mjs` in {}: {err}; {SETUP_HINT}",
                    dir.display()
                )
            });

        let stdin = child.stdin.take().expect("the child's stdin is piped");
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let stderr_pipe = child.stderr.take().expect("the child's stderr is piped");

        // Collect stderr for panic messages; draining it also keeps the provider from blocking
        // on a full pipe.
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_thread = spawn_stderr_collector(stderr_pipe, Arc::clone(&stderr));

        // The first stdout line announces the issuer; later lines (none expected) are drained.
        let (issuer_tx, issuer_rx) = tokio::sync::oneshot::channel::<String>();
        std::thread::Builder::new()
            .name("idp-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let mut issuer_tx = Some(issuer_tx);
                while let Some(Ok(line)) = lines.next() {
                    if let Some(issuer) = line.strip_prefix("ISSUER ")
                        && let Some(tx) = issuer_tx.take()
                    {
                        let _ = tx.send(issuer.trim().to_owned());
                    }
                }
            })
            .expect("cannot spawn the thread reading the provider's stdout");

        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let issuer = match tokio::time::timeout(STARTUP_TIMEOUT, issuer_rx).await {
            Ok(Ok(issuer)) => issuer,
            outcome => {
                let why = if outcome.is_err() {
                    "did not announce its issuer within 20 s"
                } else {
                    "exited before announcing its issuer"
                };
                let _ = child.kill();
                let status = child.wait();
                let _ = stderr_thread.join();
                panic!(
                    "the OpenID provider fixture {why} (exit: {status:?}); {SETUP_HINT}\n--- provider stderr ---\n{}",
                    stderr.lock().map(|s| s.clone()).unwrap_or_default()
                );
            }
        };

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("cannot build the HTTP client for the provider");

        // From here on, a panic drops `idp`, which stops the provider.
        let mut idp = Idp {
            issuer,
            discovery: Value::Null,
            http,
            child,
            _stdin: stdin,
            stderr,
        };
        idp.discovery = idp.wait_for_discovery(deadline).await;
        idp
    }

    async fn wait_for_discovery(&self, deadline: Instant) -> Value {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let mut last = String::from("no attempt");
        while Instant::now() < deadline {
            match self.http.get(&url).send().await {
                Ok(resp) if resp.status() == StatusCode::OK => {
                    let discovery: Value = resp.json().await.unwrap_or_else(|err| {
                        self.fail(&format!("the discovery document is not JSON: {err}"))
                    });
                    assert_eq!(
                        discovery["issuer"].as_str(),
                        Some(self.issuer.as_str()),
                        "the discovery document names another issuer"
                    );
                    return discovery;
                }
                Ok(resp) => last = format!("status {}", resp.status()),
                Err(err) => last = err.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.fail(&format!(
            "{url} did not answer 200 within 20 s (last: {last})"
        ))
    }

    /// The provider's discovery document (`/.well-known/openid-configuration`).
    pub fn discovery(&self) -> &Value {
        &self.discovery
    }

    fn endpoint(&self, name: &str) -> String {
        self.discovery[name]
            .as_str()
            .unwrap_or_else(|| panic!("the discovery document has no {name}"))
            .to_owned()
    }

    pub fn jwks_uri(&self) -> String {
        self.endpoint("jwks_uri")
    }

    pub fn token_endpoint(&self) -> String {
        self.endpoint("token_endpoint")
    }

    pub fn authorization_endpoint(&self) -> String {
        self.endpoint("authorization_endpoint")
    }

    pub fn introspection_endpoint(&self) -> String {
        self.endpoint("introspection_endpoint")
    }

    pub fn revocation_endpoint(&self) -> String {
        self.endpoint("revocation_endpoint")
    }

    /// What the provider wrote on stderr so far (errors only, unless `IDP_DEBUG=1`).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Panics with `message` and the provider's stderr.
    fn fail(&self, message: &str) -> ! {
        panic!("{message}\n--- provider stderr ---\n{}", self.stderr())
    }

    /// The whole token response of the client credentials grant for [`CLIENT_ID`].
    pub async fn client_credentials_response(&self, resource: &str, scope: &str) -> Value {
        let resp = self
            .http
            .post(self.token_endpoint())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", scope),
            ])
            .send()
            .await
            .unwrap_or_else(|err| self.fail(&format!("client credentials request failed: {err}")));
        self.token_json(resp, "client credentials").await
    }

    /// An access token from the client credentials grant for [`CLIENT_ID`] (`sub` is the
    /// client id) for `resource`, with the `scope` values the resource defines.
    pub async fn client_credentials(&self, resource: &str, scope: &str) -> String {
        access_token(&self.client_credentials_response(resource, scope).await)
    }

    /// An access token issued to [`CLIENT_ID`] on behalf of `user` (its `sub`) for `resource`,
    /// through the authorization code flow with PKCE: the user signs in and consents to `scope`
    /// (e.g. `"openid read"`), and the token carries the scopes of `scope` that `resource`
    /// defines.
    pub async fn authorization_code(&self, user: &str, scope: &str, resource: &str) -> String {
        access_token(
            &self
                .authorization_code_response(user, scope, resource)
                .await,
        )
    }

    /// The whole token response of [`Idp::authorization_code`] (with an `id_token` when `scope`
    /// has `openid`).
    pub async fn authorization_code_response(
        &self,
        user: &str,
        scope: &str,
        resource: &str,
    ) -> Value {
        self.authorization_code_response_with(user, scope, resource, &[])
            .await
    }

    /// [`Idp::authorization_code_response`] with more authorization request parameters
    /// (e.g. `acr_values`).
    pub async fn authorization_code_response_with(
        &self,
        user: &str,
        scope: &str,
        resource: &str,
        extra: &[(&str, &str)],
    ) -> Value {
        let verifier = random_token(); // 43 characters of base64url
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let state = random_token();
        let nonce = random_token();

        let mut auth_url = Url::parse(&self.authorization_endpoint())
            .expect("the authorization endpoint is a URL");
        auth_url
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", REDIRECT_URI)
            .append_pair("scope", scope)
            .append_pair("resource", resource)
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra);
        if scope.split(' ').any(|s| s == "offline_access") {
            // The provider grants offline_access (a refresh token) only with an explicit consent.
            auth_url.query_pairs_mut().append_pair("prompt", "consent");
        }
        if scope.split(' ').any(|s| s == "openid") {
            // A nonce belongs to OpenID Connect requests only; the provider refuses it otherwise.
            auth_url.query_pairs_mut().append_pair("nonce", &nonce);
        }

        let callback = self.play_user(auth_url, user).await;

        let params: HashMap<String, String> = callback.query_pairs().into_owned().collect();
        if let Some(error) = params.get("error") {
            self.fail(&format!(
                "the authorization request for {user} ({scope}, {resource}) was refused: {error}: {}",
                params.get("error_description").map(String::as_str).unwrap_or("")
            ));
        }
        assert_eq!(
            params.get("state"),
            Some(&state),
            "the authorization response carries another state: {callback}"
        );
        assert_eq!(
            params.get("iss"),
            Some(&self.issuer),
            "the authorization response names another issuer: {callback}"
        );
        let code = params.get("code").unwrap_or_else(|| {
            self.fail(&format!(
                "the authorization response has no code: {callback}"
            ))
        });

        let resp = self
            .http
            .post(self.token_endpoint())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier.as_str()),
                ("resource", resource),
            ])
            .send()
            .await
            .unwrap_or_else(|err| self.fail(&format!("authorization code exchange failed: {err}")));
        let response = self.token_json(resp, "authorization code").await;
        if let Some(id_token) = response["id_token"].as_str() {
            let (_, claims) = jwt_parts(id_token);
            assert_eq!(
                claims["nonce"].as_str(),
                Some(nonce.as_str()),
                "the ID token carries another nonce: {claims}"
            );
            assert_eq!(
                claims["sub"].as_str(),
                Some(user),
                "the ID token is about someone else: {claims}"
            );
        }
        response
    }

    /// Plays the user through an authorization request someone else built (an MCP client,
    /// say) that redirects to [`REDIRECT_URI`]: signs in as `user`, consents, and returns the
    /// URL the provider redirected to.
    pub async fn sign_in(&self, auth_url: &str, user: &str) -> Url {
        let url = Url::parse(auth_url)
            .unwrap_or_else(|err| self.fail(&format!("{auth_url} is not a URL: {err}")));
        self.play_user(url, user).await
    }

    /// Plays the user agent from the authorization request to the redirect back to
    /// [`REDIRECT_URI`]: follows redirects by hand, keeps cookies, signs in as `user` and
    /// consents. Returns the URL the provider redirected to.
    async fn play_user(&self, auth_url: Url, user: &str) -> Url {
        let mut jar = CookieJar::default();
        let mut next = auth_url;
        for _ in 0..12 {
            let resp = jar
                .attach(self.http.get(next.clone()), &next)
                .send()
                .await
                .unwrap_or_else(|err| self.fail(&format!("GET {next} failed: {err}")));
            jar.store(&resp);
            let status = resp.status();

            if status.is_redirection() {
                let location = self.location(&next, &resp);
                if location.as_str().starts_with(REDIRECT_URI) {
                    return location;
                }
                next = location;
                continue;
            }

            let page = resp.text().await.unwrap_or_default();
            if status != StatusCode::OK {
                self.fail(&format!("GET {next} answered {status}: {page}"));
            }
            // An interaction page: the login form (field `login`) or the consent form.
            let action = form_action(&page).unwrap_or_else(|| {
                self.fail(&format!(
                    "GET {next} returned a page without a form: {page}"
                ))
            });
            let action = next
                .join(&action)
                .expect("the form action is a URL reference");
            let form: Vec<(&str, &str)> = if page.contains("name=\"login\"") {
                vec![("login", user), ("password", "any password")]
            } else if action.path().ends_with("/confirm") {
                Vec::new()
            } else {
                self.fail(&format!("unexpected interaction page at {next}: {page}"))
            };
            let resp = jar
                .attach(self.http.post(action.clone()), &action)
                .form(&form)
                .send()
                .await
                .unwrap_or_else(|err| self.fail(&format!("POST {action} failed: {err}")));
            jar.store(&resp);
            if !resp.status().is_redirection() {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                self.fail(&format!(
                    "POST {action} answered {status} instead of a redirect: {body}"
                ));
            }
            next = self.location(&action, &resp);
        }
        self.fail("the authorization flow did not reach the redirect URI within 12 requests")
    }

    fn location(&self, base: &Url, resp: &reqwest::Response) -> Url {
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| {
                self.fail(&format!(
                    "{base} answered {} without a Location",
                    resp.status()
                ))
            });
        base.join(location).unwrap_or_else(|err| {
            self.fail(&format!(
                "{base} redirected to an invalid Location {location:?}: {err}"
            ))
        })
    }

    async fn token_json(&self, resp: reqwest::Response, grant: &str) -> Value {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            self.fail(&format!(
                "the {grant} token request answered {status}: {body}"
            ));
        }
        serde_json::from_str(&body).unwrap_or_else(|err| {
            self.fail(&format!(
                "the {grant} token response is not JSON ({err}): {body}"
            ))
        })
    }

    /// Revokes `token` at the revocation endpoint, as [`CLIENT_ID`] (the client it was issued to).
    pub async fn revoke(&self, token: &str) {
        let resp = self
            .http
            .post(self.revocation_endpoint())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap_or_else(|err| self.fail(&format!("revocation request failed: {err}")));
        let status = resp.status();
        if status != StatusCode::OK {
            let body = resp.text().await.unwrap_or_default();
            self.fail(&format!(
                "the revocation endpoint answered {status}: {body}"
            ));
        }
    }

    /// The introspection response for `token`, asked as [`RS_CLIENT_ID`] with HTTP Basic.
    pub async fn introspect(&self, token: &str) -> Value {
        let resp = self
            .http
            .post(self.introspection_endpoint())
            .basic_auth(RS_CLIENT_ID, Some(RS_CLIENT_SECRET))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap_or_else(|err| self.fail(&format!("introspection request failed: {err}")));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            self.fail(&format!(
                "the introspection endpoint answered {status}: {body}"
            ));
        }
        serde_json::from_str(&body).unwrap_or_else(|err| {
            self.fail(&format!(
                "the introspection response is not JSON ({err}): {body}"
            ))
        })
    }

    /// The provider's JWKS, fetched from the jwks_uri (this counts as a hit in
    /// [`Idp::jwks_hits`]).
    pub async fn jwks(&self) -> Value {
        let url = self.jwks_uri();
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|err| self.fail(&format!("GET {url} failed: {err}")));
        let status = resp.status();
        if status != StatusCode::OK {
            self.fail(&format!("GET {url} answered {status}"));
        }
        resp.json()
            .await
            .unwrap_or_else(|err| self.fail(&format!("the JWKS is not JSON: {err}")))
    }

    /// Makes the provider sign RS256 tokens with a new key (published first in the JWKS; the old
    /// keys stay published) and returns its `kid`. ES256 tokens keep their key.
    pub async fn rotate_key(&self) -> String {
        let body = self.admin(reqwest::Method::POST, "/admin/rotate").await;
        body["kid"]
            .as_str()
            .unwrap_or_else(|| self.fail(&format!("/admin/rotate answered without a kid: {body}")))
            .to_owned()
    }

    /// How many requests the JWKS endpoint has answered since the provider started.
    pub async fn jwks_hits(&self) -> u64 {
        let body = self.admin(reqwest::Method::GET, "/admin/jwks-hits").await;
        body["hits"].as_u64().unwrap_or_else(|| {
            self.fail(&format!(
                "/admin/jwks-hits answered without a count: {body}"
            ))
        })
    }

    async fn admin(&self, method: reqwest::Method, path: &str) -> Value {
        let url = format!("{}{path}", self.issuer);
        let resp = self
            .http
            .request(method.clone(), &url)
            .send()
            .await
            .unwrap_or_else(|err| self.fail(&format!("{method} {url} failed: {err}")));
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        if status != StatusCode::OK {
            self.fail(&format!("{method} {url} answered {status}: {body}"));
        }
        serde_json::from_str(&body)
            .unwrap_or_else(|err| self.fail(&format!("{method} {url} is not JSON ({err}): {body}")))
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded JOSE header and claims of a compact JWS, without checking the signature.
///
/// Panics when `token` is not three base64url parts whose first two are JSON objects.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "not a compact JWS (expected 3 dot-separated parts): {token}"
    );
    let decode = |part: &str, what: &str| -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(part)
            .unwrap_or_else(|err| panic!("the JWT {what} is not base64url ({err}): {token}"));
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("the JWT {what} is not JSON ({err}): {token}"));
        assert!(
            value.is_object(),
            "the JWT {what} is not a JSON object: {value}"
        );
        value
    };
    (decode(parts[0], "header"), decode(parts[1], "payload"))
}

fn access_token(response: &Value) -> String {
    response["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("the token response has no access_token: {response}"))
        .to_owned()
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("idp")
}

fn check_prerequisites(dir: &Path) {
    let output = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|err| panic!("cannot run `node` ({err}): {SETUP_HINT}"));
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major: Option<u32> = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok());
    match major {
        Some(major) if major >= 20 => {}
        _ => panic!("`node --version` says {version:?}: {SETUP_HINT}"),
    }
    let package = dir
        .join("node_modules")
        .join("oidc-provider")
        .join("package.json");
    assert!(
        package.is_file(),
        "{} is missing: {SETUP_HINT}",
        package.display()
    );
}

fn spawn_stderr_collector(
    pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<String>>,
) -> JoinHandle<()> {
    std::thread::Builder::new()
        .name("idp-stderr".into())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = String::new();
            loop {
                line.clear();
                match reader.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if let Ok(mut sink) = sink.lock() {
                            // Keep the panic messages readable: the last 64 KiB are enough.
                            if sink.len() > 64 * 1024 {
                                let cut = sink.len() - 32 * 1024;
                                let cut = (cut..sink.len())
                                    .find(|&i| sink.is_char_boundary(i))
                                    .unwrap_or(0);
                                sink.drain(..cut);
                            }
                            sink.push_str(&line);
                        }
                    }
                }
            }
        })
        .expect("cannot spawn the thread reading the provider's stderr")
}

/// 32 unpredictable-enough bytes as 43 base64url characters, for PKCE verifiers, `state` and
/// `nonce`. `RandomState` is seeded from the operating system's randomness; the counter makes
/// each call differ. Not for cryptography outside tests.
fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut bytes = Vec::with_capacity(32);
    for lane in 0..4u64 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(count);
        hasher.write_u64(lane);
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        bytes.extend_from_slice(&hasher.finish().to_le_bytes());
    }
    URL_SAFE_NO_PAD.encode(&bytes)
}

/// The `action` of the first `<form>` on an interaction page.
fn form_action(page: &str) -> Option<String> {
    let form = &page[page.find("<form")?..];
    let rest = &form[form.find("action=\"")? + "action=\"".len()..];
    let action = &rest[..rest.find('"')?];
    Some(action.replace("&amp;", "&"))
}

/// Just enough of a cookie jar for one provider on one host: cookies by name, with their path.
#[derive(Default)]
struct CookieJar {
    cookies: HashMap<String, (String, String)>, // name -> (value, path)
}

impl CookieJar {
    fn store(&mut self, resp: &reqwest::Response) {
        for header in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            let Ok(header) = header.to_str() else {
                continue;
            };
            let mut attributes = header.split(';').map(str::trim);
            let Some((name, value)) = attributes.next().and_then(|pair| pair.split_once('='))
            else {
                continue;
            };
            let mut path = String::from("/");
            let mut expired = value.is_empty();
            for attribute in attributes {
                let (key, val) = attribute.split_once('=').unwrap_or((attribute, ""));
                match key.to_ascii_lowercase().as_str() {
                    "path" => path = val.to_owned(),
                    "max-age" => expired |= val.trim().starts_with('-') || val.trim() == "0",
                    "expires" => expired |= val.contains("1970"),
                    _ => {}
                }
            }
            if expired {
                self.cookies.remove(name);
            } else {
                self.cookies
                    .insert(name.to_owned(), (value.to_owned(), path));
            }
        }
    }

    /// Adds a `Cookie` header with the cookies whose path covers `url`, if any.
    fn attach(&self, request: reqwest::RequestBuilder, url: &Url) -> reqwest::RequestBuilder {
        let header = self
            .cookies
            .iter()
            .filter(|(_, (_, path))| url.path().starts_with(path.as_str()))
            .map(|(name, (value, _))| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ");
        if header.is_empty() {
            request
        } else {
            request.header(reqwest::header::COOKIE, header)
        }
    }
}
