//! Multi-tenant issuers: an issuer URL with one `{tenantid}` placeholder (Entra ID's
//! `https://login.microsoftonline.com/{tenantid}/v2.0`), matched strictly.

use std::{fmt, sync::Arc};

use crate::{
    alg::AlgSet,
    error::{AuthError, ConfigError},
    http_client::{HttpClient, parse_url},
    jwks::{CachePolicy, JwksCache, Source, keys},
};

/// The placeholder a [`TenantIssuer`] template holds exactly once.
pub const TENANT_PLACEHOLDER: &str = "{tenantid}";

/// The longest tenant value accepted in an `iss`.
const MAX_TENANT_LEN: usize = 128;

/// Trusts every issuer of one shape, `https://login.microsoftonline.com/{tenantid}/v2.0`
/// say, for multi-tenant APIs; add it with
/// [`JwtBuilder::tenant_issuer`](crate::JwtBuilder::tenant_issuer).
///
/// A token is accepted under the template only when:
/// - its `iss` is the template with the placeholder replaced by a tenant, and nothing else
///   changed: same scheme, host and path, no extra path segment;
/// - the tenant is a GUID or a DNS name: ASCII letters, digits, `-` and single inner dots,
///   at most 128 characters (so never `/`, `..`, `%`, `?`, `#`, `@` or `:`);
/// - its `tid` claim equals that tenant (Entra ID puts the tenant in both; a token whose
///   `tid` differs from its `iss` is refused);
/// - the tenant is allowed, when [`tenants`](Self::tenants) lists any.
///
/// Its keys come from the one JWK Set the template names ([`jwks_uri`](Self::jwks_uri),
/// Entra ID's common keys, or a fixed [`jwks`](Self::jwks) document); tokens of every
/// tenant are checked against them, so no tenant a token makes up can cause a fetch of
/// its own. The principal's [`issuer`](crate::Principal::issuer) is the token's own `iss`.
///
/// ```
/// use portcullis::{Jwt, jwt::TenantIssuer};
///
/// let jwt = Jwt::builder()
///     .tenant_issuer(
///         TenantIssuer::new("https://login.microsoftonline.com/{tenantid}/v2.0")
///             .jwks_uri("https://login.microsoftonline.com/common/discovery/v2.0/keys")
///             .tenants(["72f988bf-86f1-41af-91ab-2d7cd011db47"]),
///     )
///     .audience("api://my-api")
///     .build()?;
/// # Ok::<_, portcullis::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct TenantIssuer {
    pub(crate) template: String,
    pub(crate) keys: TenantKeys,
    pub(crate) tenants: Vec<String>,
}

#[derive(Clone, Debug)]
pub(crate) enum TenantKeys {
    None,
    JwksUri(String),
    Static(String),
}

impl TenantIssuer {
    /// A template holding [`TENANT_PLACEHOLDER`] once, in its path. A key source is
    /// required: [`jwks_uri`](Self::jwks_uri) or [`jwks`](Self::jwks).
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            keys: TenantKeys::None,
            tenants: Vec::new(),
        }
    }

    /// Fetches the keys for every tenant from `jwks_uri`, cached and refreshed like any
    /// issuer's. No default.
    pub fn jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.keys = TenantKeys::JwksUri(jwks_uri.into());
        self
    }

    /// Checks every tenant's tokens against a fixed JWK Set document (JSON), never fetched.
    /// No default.
    pub fn jwks(mut self, jwks: impl Into<String>) -> Self {
        self.keys = TenantKeys::Static(jwks.into());
        self
    }

    /// Accepts only these tenants (exact match). Repeat or pass several. Default: every
    /// tenant whose tokens fit the template.
    pub fn tenants<I>(mut self, tenants: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.tenants.extend(tenants.into_iter().map(Into::into));
        self
    }
}

impl fmt::Debug for TenantIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TenantIssuer")
            .field("template", &self.template)
            .field("tenants", &self.tenants)
            .finish_non_exhaustive()
    }
}

/// A checked template: what comes before and after the tenant, and the allowlist.
#[derive(Clone, Debug)]
pub(crate) struct Template {
    prefix: Box<str>,
    suffix: Box<str>,
    allowed: Box<[Box<str>]>,
}

impl Template {
    pub(crate) fn new(config: &TenantIssuer, allow_http: bool) -> Result<Self, ConfigError> {
        let template = config.template.as_str();
        let shown = crate::redact::url(template);
        let (prefix, suffix) = template.split_once(TENANT_PLACEHOLDER).ok_or_else(|| {
            ConfigError::new(format!(
                "the issuer template `{shown}` has no {TENANT_PLACEHOLDER}"
            ))
        })?;
        if suffix.contains(TENANT_PLACEHOLDER) {
            return Err(ConfigError::new(format!(
                "the issuer template `{shown}` has more than one {TENANT_PLACEHOLDER}"
            )));
        }
        // The placeholder must be a whole path segment: after the host's `/`, and followed
        // by `/` or the end. Then a tenant can change nothing but its own segment.
        let after_scheme = prefix.split_once("://").map_or("", |(_, rest)| rest);
        let in_path = after_scheme.contains('/') && prefix.ends_with('/');
        if !in_path || !(suffix.is_empty() || suffix.starts_with('/')) {
            return Err(ConfigError::new(format!(
                "the {TENANT_PLACEHOLDER} of `{shown}` must be a whole path segment"
            )));
        }
        if suffix.contains(['?', '#']) {
            return Err(ConfigError::new(format!(
                "the issuer template `{shown}` may not have a query or a fragment"
            )));
        }
        // Checks the scheme and that the rest is a URL, with a sample tenant in place.
        let sample = parse_url(&template.replace(TENANT_PLACEHOLDER, "tenant"), allow_http)?;
        if !sample.username().is_empty() || sample.password().is_some() {
            return Err(ConfigError::new(format!(
                "the issuer template `{shown}` may not hold credentials"
            )));
        }
        let mut allowed = Vec::with_capacity(config.tenants.len());
        for tenant in &config.tenants {
            if !is_tenant(tenant) {
                return Err(ConfigError::new(format!(
                    "the allowed tenant `{tenant}` is not a GUID or DNS name"
                )));
            }
            allowed.push(tenant.as_str().into());
        }
        Ok(Self {
            prefix: prefix.into(),
            suffix: suffix.into(),
            allowed: allowed.into(),
        })
    }

    /// The template's text, for logs and `Debug`.
    pub(crate) fn describe(&self) -> String {
        format!("{}{TENANT_PLACEHOLDER}{}", self.prefix, self.suffix)
    }

    /// The tenant of `iss` when `iss` fits the template exactly.
    pub(crate) fn tenant<'a>(&self, iss: &'a str) -> Option<&'a str> {
        let tenant = iss
            .strip_prefix(&*self.prefix)?
            .strip_suffix(&*self.suffix)?;
        is_tenant(tenant).then_some(tenant)
    }

    /// Checks a token whose `iss` fits the template: `tid` must name the same tenant, and
    /// the tenant must be allowed.
    pub(crate) fn admit(&self, tenant: &str, tid: Option<&str>) -> Result<(), AuthError> {
        if tid != Some(tenant) {
            return Err(AuthError::invalid_token(
                "the token's tenant (tid) does not match its issuer",
            ));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|t| **t == *tenant) {
            return Err(AuthError::invalid_token(
                "the token's tenant is not trusted",
            ));
        }
        Ok(())
    }
}

/// A template and the index of its key cache among the authenticator's caches.
#[derive(Debug)]
pub(crate) struct TemplateCache {
    template: Template,
    cache: usize,
}

/// Checks each template and appends one key cache per template to `issuers`.
pub(crate) fn caches(
    configs: &[TenantIssuer],
    issuers: &mut Vec<JwksCache>,
    http: &HttpClient,
    policy: CachePolicy,
    allowed: AlgSet,
) -> Result<Box<[TemplateCache]>, ConfigError> {
    let mut templates = Vec::with_capacity(configs.len());
    for config in configs {
        let template = Template::new(config, policy.allow_http)?;
        let name: Arc<str> = template.describe().into();
        if templates
            .iter()
            .any(|t: &TemplateCache| t.template.describe() == *name)
        {
            return Err(ConfigError::new(format!(
                "the issuer template `{}` is listed twice",
                crate::redact::url(&name)
            )));
        }
        let (source, initial) = match &config.keys {
            TenantKeys::None => {
                return Err(ConfigError::new(format!(
                    "the issuer template `{}` needs a jwks_uri or a JWK Set",
                    crate::redact::url(&name)
                )));
            }
            TenantKeys::JwksUri(uri) => (Source::JwksUri(parse_url(uri, policy.allow_http)?), None),
            TenantKeys::Static(json) => {
                let set = keys::parse(json.as_bytes(), allowed).map_err(|e| {
                    ConfigError::new(format!(
                        "the JWK Set of `{}` is invalid: {}",
                        crate::redact::url(&name),
                        e.0
                    ))
                })?;
                if set.keys.is_empty() {
                    return Err(ConfigError::new(format!(
                        "the JWK Set of `{}` has no usable key",
                        crate::redact::url(&name)
                    )));
                }
                (Source::Static, Some(set))
            }
        };
        templates.push(TemplateCache {
            template,
            cache: issuers.len(),
        });
        issuers.push(JwksCache::new(
            name,
            source,
            initial,
            http.clone(),
            policy,
            allowed,
        ));
    }
    Ok(templates.into())
}

/// The key cache for a token whose `iss` no exact issuer has: the first template it fits,
/// when its `tid` and the allowlist agree.
pub(crate) fn find(
    templates: &[TemplateCache],
    iss: &str,
    tid: Option<&str>,
) -> Result<usize, AuthError> {
    for t in templates {
        if let Some(tenant) = t.template.tenant(iss) {
            t.template.admit(tenant, tid)?;
            return Ok(t.cache);
        }
    }
    Err(AuthError::invalid_token(
        "the token's issuer is not trusted",
    ))
}

/// A GUID or a DNS name: ASCII letters, digits and `-` in dot-separated, non-empty labels.
fn is_tenant(tenant: &str) -> bool {
    !tenant.is_empty()
        && tenant.len() <= MAX_TENANT_LEN
        && tenant.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENTRA_V2: &str = "https://login.microsoftonline.com/{tenantid}/v2.0";
    const ENTRA_V1: &str = "https://sts.windows.net/{tenantid}/";
    const TID: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";

    fn template(t: &str) -> Template {
        Template::new(&TenantIssuer::new(t).jwks("{}"), false).expect(t)
    }

    #[test]
    fn issuers_that_fit() {
        let v2 = template(ENTRA_V2);
        assert_eq!(
            v2.tenant(&format!("https://login.microsoftonline.com/{TID}/v2.0")),
            Some(TID)
        );
        assert_eq!(
            v2.tenant("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0"),
            Some("contoso.onmicrosoft.com")
        );
        let v1 = template(ENTRA_V1);
        assert_eq!(
            v1.tenant(&format!("https://sts.windows.net/{TID}/")),
            Some(TID)
        );
    }

    #[test]
    fn issuers_that_only_look_like_the_template() {
        let v2 = template(ENTRA_V2);
        let v1 = template(ENTRA_V1);
        for iss in [
            format!("https://login.microsoftonline.com/{TID}/extra/v2.0"),
            format!("https://login.microsoftonline.com/{TID}/v2.0/"),
            format!("https://login.microsoftonline.com/{TID}/v2.0/extra"),
            format!("https://login.microsoftonline.com/a/{TID}/v2.0"),
            "https://login.microsoftonline.com/../v2.0".to_owned(),
            "https://login.microsoftonline.com/a..b/v2.0".to_owned(),
            "https://login.microsoftonline.com/./v2.0".to_owned(),
            "https://login.microsoftonline.com//v2.0".to_owned(),
            "https://login.microsoftonline.com/a%2Fb/v2.0".to_owned(),
            "https://login.microsoftonline.com/a?b/v2.0".to_owned(),
            "https://login.microsoftonline.com/a@b/v2.0".to_owned(),
            "https://login.microsoftonline.com/-a/v2.0".to_owned(),
            format!("https://login.microsoftonline.com/{}/v2.0", "a".repeat(129)),
            format!("https://login.microsoftonline.com.evil.example/{TID}/v2.0"),
            format!("https://evil.example/{TID}/v2.0"),
            format!("http://login.microsoftonline.com/{TID}/v2.0"),
            format!("https://LOGIN.microsoftonline.com/{TID}/v2.0"),
            format!("https://login.microsoftonline.com/{TID}/V2.0"),
            "https://login.microsoftonline.com/{tenantid}/v2.0".to_owned(),
        ] {
            assert_eq!(v2.tenant(&iss), None, "{iss}");
        }
        assert_eq!(v1.tenant(&format!("https://sts.windows.net/{TID}")), None);
        assert_eq!(
            v1.tenant(&format!("https://sts.windows.net/{TID}/x/")),
            None
        );
    }

    #[test]
    fn tid_and_allowlist() {
        let open = template(ENTRA_V2);
        assert!(open.admit(TID, Some(TID)).is_ok());
        assert!(open.admit(TID, None).is_err());
        assert!(open.admit(TID, Some("other")).is_err());
        assert!(open.admit(TID, Some(&TID.to_uppercase())).is_err());
        let listed = Template::new(
            &TenantIssuer::new(ENTRA_V2).jwks("{}").tenants([TID]),
            false,
        )
        .expect("valid");
        assert!(listed.admit(TID, Some(TID)).is_ok());
        assert!(listed.admit("other", Some("other")).is_err());
    }

    #[test]
    fn templates_that_are_refused() {
        for bad in [
            "https://login.microsoftonline.com/v2.0",
            "https://login.microsoftonline.com/{tenantid}/{tenantid}",
            "https://{tenantid}.example.com/",
            "https://login.example.com/t-{tenantid}/v2.0",
            "https://login.example.com/{tenantid}x/v2.0",
            "https://login.example.com/{tenantid}?x=1",
            "https://user:pw@login.example.com/{tenantid}/v2.0",
            "http://login.example.com/{tenantid}/v2.0",
            "{tenantid}",
            "login.example.com/{tenantid}",
        ] {
            assert!(
                Template::new(&TenantIssuer::new(bad).jwks("{}"), false).is_err(),
                "{bad}"
            );
        }
        assert!(
            Template::new(
                &TenantIssuer::new(ENTRA_V2).jwks("{}").tenants(["a/b"]),
                false
            )
            .is_err()
        );
        assert!(
            Template::new(&TenantIssuer::new(ENTRA_V2).jwks("{}").tenants([""]), false).is_err()
        );
    }
}
