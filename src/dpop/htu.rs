//! The `htu` comparison (RFC 9449 §4.3): both sides normalized per RFC 3986 §6.2.2–6.2.3
//! (case of scheme and host, default port, dot segments, empty path) and cut before the
//! query.

use http::{HeaderMap, Uri, header};
use url::{Position, Url};

use super::proof::invalid;
use crate::error::AuthError;

/// An `http`/`https` URI without query and fragment, normalized; `None` when it is not one.
pub(crate) fn normalize(uri: &str) -> Option<String> {
    let url = Url::parse(uri).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    Some(url[..Position::AfterPath].to_owned())
}

/// Where the request's target URI comes from.
#[derive(Clone, Debug, Default)]
pub(crate) enum Origin {
    /// The request itself: the scheme of an absolute request URI (HTTP/2, gRPC) or `http`,
    /// the authority of the request URI or else the `Host` header.
    #[default]
    Request,
    /// A fixed external base URL (behind a proxy): scheme, authority and path prefix,
    /// normalized, without a trailing `/`.
    Fixed(Box<str>),
}

impl Origin {
    /// A fixed base URL; `None` when `base` is not an absolute `http`/`https` URL without
    /// query or fragment.
    pub(crate) fn fixed(base: &str) -> Option<Self> {
        let url = Url::parse(base).ok()?;
        if url.query().is_some() || url.fragment().is_some() {
            return None;
        }
        let normalized = normalize(base)?;
        Some(Self::Fixed(normalized.trim_end_matches('/').into()))
    }

    /// The request's target URI without query, normalized.
    pub(crate) fn target(&self, uri: &Uri, headers: &HeaderMap) -> Result<String, AuthError> {
        let unknown = || invalid("the request's target URI cannot be determined");
        let raw = match self {
            Self::Fixed(base) => format!("{base}{}", uri.path()),
            Self::Request => {
                let scheme = uri.scheme_str().unwrap_or("http");
                let authority = match uri.authority() {
                    Some(authority) => authority.as_str(),
                    None => {
                        let mut hosts = headers.get_all(header::HOST).iter();
                        match (hosts.next(), hosts.next()) {
                            (Some(host), None) => host.to_str().map_err(|_| unknown())?,
                            _ => return Err(unknown()),
                        }
                    }
                };
                format!("{scheme}://{authority}{}", uri.path())
            }
        };
        normalize(&raw).ok_or_else(unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_table() {
        let table = [
            (
                "https://api.example.com/items",
                Some("https://api.example.com/items"),
            ),
            (
                "HTTPS://API.Example.COM:443/items?x=1#f",
                Some("https://api.example.com/items"),
            ),
            (
                "http://127.0.0.1:80/a/./b/../c",
                Some("http://127.0.0.1/a/c"),
            ),
            ("http://127.0.0.1:8080", Some("http://127.0.0.1:8080/")),
            ("ftp://example.com/x", None),
            ("/items", None),
            ("", None),
        ];
        for (input, expected) in table {
            assert_eq!(normalize(input).as_deref(), expected, "{input}");
        }
    }

    #[test]
    fn target_from_request_or_fixed_base() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "API.example.com:8443".parse().expect("host"));
        let origin = Origin::Request;
        let uri: Uri = "/items?page=2".parse().expect("uri");
        assert_eq!(
            origin.target(&uri, &headers).expect("target"),
            "http://api.example.com:8443/items"
        );
        let absolute: Uri = "https://grpc.example.com/pkg.Svc/Get".parse().expect("uri");
        assert_eq!(
            origin.target(&absolute, &HeaderMap::new()).expect("target"),
            "https://grpc.example.com/pkg.Svc/Get"
        );
        assert!(origin.target(&uri, &HeaderMap::new()).is_err(), "no host");
        let fixed = Origin::fixed("https://Public.example.com/api/").expect("base");
        assert_eq!(
            fixed.target(&uri, &headers).expect("target"),
            "https://public.example.com/api/items"
        );
        assert!(Origin::fixed("/relative").is_none());
        assert!(Origin::fixed("https://x.example/?q=1").is_none());
    }
}
