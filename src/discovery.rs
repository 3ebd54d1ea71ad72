//! Authorization-server metadata: OpenID Connect Discovery 1.0, then RFC 8414.

use reqwest::Url;
use serde::Deserialize;

use crate::http_client::{FetchError, HttpClient};

/// The metadata members portcullis reads.
#[derive(Debug, Deserialize)]
pub(crate) struct Metadata {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) jwks_uri: Option<String>,
    #[cfg_attr(not(feature = "introspection"), allow(dead_code))]
    #[serde(default)]
    pub(crate) introspection_endpoint: Option<String>,
}

/// The two well-known locations for `issuer`, OpenID's first.
pub(crate) fn well_known_urls(issuer: &Url) -> [Url; 2] {
    let mut oidc = issuer.clone();
    let path = issuer.path().trim_end_matches('/');
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    let mut oauth = issuer.clone();
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    for url in [&mut oidc, &mut oauth] {
        url.set_query(None);
        url.set_fragment(None);
    }
    [oidc, oauth]
}

/// Fetches the metadata and checks that its `issuer` is exactly the configured one.
pub(crate) async fn discover(
    http: &HttpClient,
    issuer_url: &Url,
    issuer: &str,
) -> Result<Metadata, FetchError> {
    let mut first_error = None;
    for url in well_known_urls(issuer_url) {
        match http.get(&url).await {
            Ok(fetched) => match serde_json::from_slice::<Metadata>(&fetched.body) {
                Ok(metadata) if metadata.issuer == issuer => return Ok(metadata),
                // Try the other location before giving up.
                Ok(_) => {
                    first_error.get_or_insert(FetchError::Invalid(
                        "discovery document names another issuer",
                    ));
                }
                Err(_) => {
                    first_error.get_or_insert(FetchError::Invalid(
                        "discovery document is not valid metadata",
                    ));
                }
            },
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(FetchError::Invalid("no discovery document")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_locations() {
        let table = [
            (
                "https://idp.example.com",
                "https://idp.example.com/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server",
            ),
            (
                "https://idp.example.com/realms/main/",
                "https://idp.example.com/realms/main/.well-known/openid-configuration",
                "https://idp.example.com/.well-known/oauth-authorization-server/realms/main",
            ),
            (
                "http://127.0.0.1:8080/t/v2.0",
                "http://127.0.0.1:8080/t/v2.0/.well-known/openid-configuration",
                "http://127.0.0.1:8080/.well-known/oauth-authorization-server/t/v2.0",
            ),
        ];
        for (issuer, oidc, oauth) in table {
            let [a, b] = well_known_urls(&Url::parse(issuer).expect("url"));
            assert_eq!(a.as_str(), oidc);
            assert_eq!(b.as_str(), oauth);
        }
    }
}
