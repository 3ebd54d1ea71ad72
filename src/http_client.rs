//! The one HTTP client every outbound call goes through, with its limits: a timeout, a
//! response size cap, no redirects, `200 OK` only; and the outbound options both builders
//! share ([`HttpOptions`]).

use std::{fmt, time::Duration};

use http::{HeaderMap, StatusCode, header};
use reqwest::Url;

use crate::error::ConfigError;

/// Default timeout for each call to the issuer: 5 seconds.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest timeout a builder accepts: 10 minutes.
pub(crate) const MAX_HTTP_TIMEOUT: Duration = Duration::from_secs(600);
/// Default cap on a discovery or JWKS response body: 1 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why an outbound call failed. Logged, never sent to the client.
#[derive(Debug)]
pub(crate) enum FetchError {
    Transport(reqwest::Error),
    Timeout,
    Status(StatusCode),
    TooLarge,
    Redirected,
    Invalid(&'static str),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport error: {e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(s) => write!(f, "unexpected status {s}"),
            Self::TooLarge => f.write_str("response larger than the configured cap"),
            Self::Redirected => f.write_str("the server answered with a redirect"),
            Self::Invalid(why) => f.write_str(why),
        }
    }
}

impl From<reqwest::Error> for FetchError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else {
            Self::Transport(e.without_url())
        }
    }
}

/// A `200 OK` body with its headers.
pub(crate) struct Fetched {
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// The shared client and its limits.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: reqwest::Client,
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// The client portcullis builds itself: no redirects, no proxy unless configured.
    fn own(options: &HttpOptions) -> Result<reqwest::Client, ConfigError> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")));
        for pem in &options.roots {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|_| {
                ConfigError::new("an extra root certificate is not a PEM certificate")
            })?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    "an extra root certificate is not a PEM certificate",
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(proxy) = &options.proxy {
            // The URL may carry credentials: it is never echoed.
            let proxy = reqwest::Proxy::all(&**proxy)
                .map_err(|_| ConfigError::new("the proxy is not a usable URL"))?;
            builder = builder.proxy(proxy);
        }
        builder
            .build()
            .map_err(|_| ConfigError::new("the HTTP client could not be built"))
    }

    /// GET a JSON document.
    pub(crate) async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        let request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/json");
        self.send(request, url, self.max_bytes).await
    }

    /// Sends `request` (made for `url`) and reads a `200 OK` body of at most `max_bytes`.
    ///
    /// A user-supplied client may follow redirects itself: an answer from any other URL
    /// than the one asked is refused like a `3xx`.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &Url,
        max_bytes: usize,
    ) -> Result<Fetched, FetchError> {
        let call = async {
            let mut response = request.timeout(self.timeout).send().await?;
            if response.status().is_redirection() || response.url() != url {
                return Err(FetchError::Redirected);
            }
            if response.status() != StatusCode::OK {
                return Err(FetchError::Status(response.status()));
            }
            if response
                .content_length()
                .is_some_and(|len| len > max_bytes as u64)
            {
                return Err(FetchError::TooLarge);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > max_bytes {
                    return Err(FetchError::TooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched {
                headers: std::mem::take(response.headers_mut()),
                body,
            })
        };
        // reqwest's own timeout covers the body too; this one also bounds slow trickles.
        tokio::time::timeout(self.timeout, call)
            .await
            .unwrap_or(Err(FetchError::Timeout))
    }

    #[cfg(feature = "introspection")]
    pub(crate) fn post(&self, url: &Url) -> reqwest::RequestBuilder {
        self.client.post(url.clone())
    }
}

/// The outbound HTTP options of a builder, shared by `Jwt` and `Introspection`: both
/// builders keep one of these and delegate their HTTP setters to it.
#[derive(Clone)]
pub(crate) struct HttpOptions {
    pub(crate) timeout: Duration,
    pub(crate) max_bytes: usize,
    pub(crate) allow_http: bool,
    pub(crate) client: Option<reqwest::Client>,
    pub(crate) roots: Vec<Vec<u8>>,
    pub(crate) proxy: Option<Box<str>>,
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The proxy URL may carry credentials: only whether one is set is shown.
        f.debug_struct("HttpOptions")
            .field("timeout", &self.timeout)
            .field("max_bytes", &self.max_bytes)
            .field("allow_http", &self.allow_http)
            .field("own_client", &self.client.is_some())
            .field("extra_roots", &self.roots.len())
            .field("proxy", &self.proxy.is_some())
            .finish()
    }
}

impl HttpOptions {
    /// The defaults, with `max_bytes` as the response cap.
    pub(crate) fn new(max_bytes: usize) -> Self {
        Self {
            timeout: DEFAULT_HTTP_TIMEOUT,
            max_bytes,
            allow_http: false,
            client: None,
            roots: Vec::new(),
            proxy: None,
        }
    }

    /// Checks the options and builds the client every call of one authenticator uses.
    pub(crate) fn build(&self) -> Result<HttpClient, ConfigError> {
        if self.timeout.is_zero() || self.timeout > MAX_HTTP_TIMEOUT || self.max_bytes == 0 {
            return Err(ConfigError::new(
                "the HTTP timeout must be positive and at most 10 minutes, the response cap positive",
            ));
        }
        let client = match &self.client {
            Some(_) if !self.roots.is_empty() || self.proxy.is_some() => {
                return Err(ConfigError::new(
                    "extra root certificates and a proxy belong on the supplied HTTP client",
                ));
            }
            Some(client) => client.clone(),
            None => HttpClient::own(self)?,
        };
        Ok(HttpClient {
            client,
            timeout: self.timeout,
            max_bytes: self.max_bytes,
        })
    }
}

/// Parses an issuer-side URL; plain `http` only for loopback hosts unless allowed.
pub(crate) fn parse_url(url: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let shown = || crate::redact::url(url);
    let parsed =
        Url::parse(url).map_err(|_| ConfigError::new(format!("`{}` is not a URL", shown())))?;
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if allow_http || is_loopback(&parsed) => Ok(parsed),
        "http" => Err(ConfigError::new(format!(
            "`{}` is plain http; use https (http is accepted for loopback hosts, or with dangerous_allow_http)",
            shown()
        ))),
        _ => Err(ConfigError::new(format!(
            "`{}` is not an http(s) URL",
            shown()
        ))),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// `Cache-Control: max-age` of a response, ignoring it when `no-store` or `no-cache` is set.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let value = value.to_str().ok()?;
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = directive.split_once('=').unwrap_or((directive, ""));
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                max_age = arg
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    max_age
}

/// The outbound-HTTP setters both builders share, each delegating to their `http:
/// HttpOptions` field, so the two builders cannot drift apart.
macro_rules! http_option_setters {
    () => {
        /// Sends every outbound call (discovery, keys, introspection) through `client`:
        /// a client built by the application, with its own proxies, root certificates,
        /// client certificate (mTLS towards the issuer, e.g. `tls_client_auth`) or DNS
        /// overrides. Default: a client portcullis builds itself.
        ///
        /// Portcullis keeps its own rules on every call made with it: the
        /// [`http_timeout`](Self::http_timeout), the [`max_response_bytes`](Self::max_response_bytes)
        /// cap, `200 OK` only, and no redirect: a `3xx`, or an answer from another URL than
        /// the one asked (the client followed a redirect), is refused. Build the client with
        /// `redirect::Policy::none()` so that a request is never repeated elsewhere.
        /// Cannot be combined with [`add_root_certificate_pem`](Self::add_root_certificate_pem)
        /// or [`proxy`](Self::proxy): configure those on the client.
        pub fn http_client(mut self, client: reqwest::Client) -> Self {
            self.http.client = Some(client);
            self
        }

        /// Trusts the certificates of a PEM bundle as extra roots for every outbound call,
        /// besides the built-in ones (e.g. a company CA). Repeat to add several bundles. A
        /// bundle without a certificate is a [`ConfigError`](crate::ConfigError) at `build()`.
        /// Default: none.
        pub fn add_root_certificate_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
            self.http.roots.push(pem.into());
            self
        }

        /// Sends every outbound call through the proxy at `url` (`http://` or `https://`;
        /// credentials in the URL are allowed and never shown in `Debug` or errors).
        /// Default: no proxy; the `HTTP(S)_PROXY` environment variables are not read.
        pub fn proxy(mut self, url: impl Into<String>) -> Self {
            self.http.proxy = Some(url.into().into_boxed_str());
            self
        }

        /// Allows plain-`http` URLs (configured or discovered) on hosts other than
        /// loopback. Default: off (only `https`, and `http` on `localhost`/`127.0.0.0/8`/`[::1]`).
        pub fn dangerous_allow_http(mut self, allow: bool) -> Self {
            self.http.allow_http = allow;
            self
        }
    };
}
pub(crate) use http_option_setters;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_policy() {
        assert!(parse_url("https://login.example.com/t", false).is_ok());
        assert!(parse_url("http://127.0.0.1:8080", false).is_ok());
        assert!(parse_url("http://localhost/x", false).is_ok());
        assert!(parse_url("http://[::1]:1/", false).is_ok());
        assert!(parse_url("http://idp.internal/", false).is_err());
        assert!(parse_url("http://idp.internal/", true).is_ok());
        assert!(parse_url("ftp://127.0.0.1/", true).is_err());
        assert!(parse_url("not a url", true).is_err());
    }

    #[test]
    fn cache_control_table() {
        let table = [
            ("max-age=300", Some(300)),
            ("public, max-age=60, must-revalidate", Some(60)),
            ("MAX-AGE=\"10\"", Some(10)),
            ("no-store", Some(0)),
            ("max-age=60, no-cache", Some(0)),
            ("max-age=abc", None),
            ("public", None),
        ];
        for (value, expected) in table {
            let mut headers = HeaderMap::new();
            headers.insert(header::CACHE_CONTROL, value.parse().expect("value"));
            assert_eq!(
                max_age(&headers),
                expected.map(Duration::from_secs),
                "{value}"
            );
        }
        assert_eq!(max_age(&HeaderMap::new()), None);
    }
}
