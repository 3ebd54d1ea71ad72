//! The one HTTP client every outbound call goes through, with its limits: a timeout, a
//! response size cap, no redirects, `200 OK` only.

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
    Invalid(&'static str),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => write!(f, "transport error: {e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(s) => write!(f, "unexpected status {s}"),
            Self::TooLarge => f.write_str("response larger than the configured cap"),
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
    pub(crate) fn new(timeout: Duration, max_bytes: usize) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| ConfigError::new("the HTTP client could not be built"))?;
        Ok(Self {
            client,
            timeout,
            max_bytes,
        })
    }

    /// GET a JSON document.
    pub(crate) async fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        let request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/json");
        self.send(request, self.max_bytes).await
    }

    /// Sends `request` and reads a `200 OK` body of at most `max_bytes`.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        max_bytes: usize,
    ) -> Result<Fetched, FetchError> {
        let call = async {
            let mut response = request.send().await?;
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
