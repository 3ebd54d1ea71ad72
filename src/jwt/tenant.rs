//! Multi-tenant issuers: an issuer URL with one `{tenantid}` placeholder (Entra ID's
//! `https://login.microsoftonline.com/{tenantid}/v2.0`), matched strictly.

use std::{fmt, future::Future, sync::Arc, time::Instant};

use futures_util::{FutureExt, future::BoxFuture};

use super::{
    Step,
    tenant_keys::{DEFAULT_MAX_TENANTS, Decisions, TenantKeySets},
};
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
/// Entra ID's common keys, or a fixed [`jwks`](Self::jwks) document), so no tenant a
/// token makes up can cause a fetch of its own; or from each tenant's own discovery
/// document ([`keys_per_tenant`](Self::keys_per_tenant)), in a bounded cache. A
/// [`resolver`](Self::resolver) can accept tenants the allowlist does not name. The
/// principal's [`issuer`](crate::Principal::issuer) is the token's own `iss`.
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
    pub(crate) resolver: Option<Resolver>,
}

/// An application's async answer to "is this tenant a customer?".
pub(crate) type Resolver = Arc<dyn Fn(String) -> BoxFuture<'static, bool> + Send + Sync>;

#[derive(Clone, Debug)]
pub(crate) enum TenantKeys {
    None,
    JwksUri(String),
    Static(String),
    /// Each tenant's own keys, through discovery at its issuer URL, at most this many.
    PerTenant(usize),
}

impl TenantIssuer {
    /// A template holding [`TENANT_PLACEHOLDER`] once, in its path. A key source is
    /// required: [`jwks_uri`](Self::jwks_uri), [`jwks`](Self::jwks) or
    /// [`keys_per_tenant`](Self::keys_per_tenant).
    pub fn new(template: impl Into<String>) -> Self {
        Self {
            template: template.into(),
            keys: TenantKeys::None,
            tenants: Vec::new(),
            resolver: None,
        }
    }

    /// Finds each tenant's keys through OpenID Connect discovery at the tenant's own issuer
    /// URL (the token's `iss`; the discovered `issuer` must equal it, and its `jwks_uri` must
    /// be on the same host unless [`allow_jwks_host`](crate::JwtBuilder::allow_jwks_host)
    /// names another), keeping the key sets of at most `max_tenants` tenants (default
    /// [`DEFAULT_MAX_TENANTS`](crate::jwt::DEFAULT_MAX_TENANTS) with
    /// [`keys_per_tenant_default`](Self::keys_per_tenant_default)). Once that many are
    /// cached, a new tenant pushes out the least recently used one at most once per
    /// [`jwks_refresh_cooldown`](crate::JwtBuilder::jwks_refresh_cooldown) and is answered
    /// `503` meanwhile, so made-up tenants cannot cause more than `max_tenants` discovery
    /// fetches plus one per cooldown. List [`tenants`](Self::tenants) or set a
    /// [`resolver`](Self::resolver) to refuse unknown tenants before any fetch.
    pub fn keys_per_tenant(mut self, max_tenants: usize) -> Self {
        self.keys = TenantKeys::PerTenant(max_tenants);
        self
    }

    /// [`keys_per_tenant`](Self::keys_per_tenant) with its default bound, 100 tenants.
    pub fn keys_per_tenant_default(self) -> Self {
        self.keys_per_tenant(DEFAULT_MAX_TENANTS)
    }

    /// Asks `resolver` whether a tenant outside [`tenants`](Self::tenants) is accepted (a
    /// lookup in the application's customer list, say). It runs off the request's fast path,
    /// once per tenant: answers are reused for 5 minutes, at most 4096 of them kept. Only
    /// tokens whose `iss` fits the template and whose `tid` matches reach it; with shared
    /// keys, only once their signature has verified (with per-tenant keys it must be asked
    /// before the tenant's keys are fetched). Default: none
    /// (without an allowlist every tenant is accepted; with one, only those listed).
    pub fn resolver<F, Fut>(mut self, resolver: F) -> Self
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        self.resolver = Some(Arc::new(move |tenant| resolver(tenant).boxed()));
        self
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

    /// Accepts only these tenants (exact match), and those a [`resolver`](Self::resolver)
    /// accepts. Repeat or pass several. Default: every tenant whose tokens fit the template
    /// (unless a resolver is set, which then decides about every tenant).
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
            .field("resolver", &self.resolver.is_some())
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

    /// Whether the allowlist names `tenant`.
    pub(crate) fn lists(&self, tenant: &str) -> bool {
        self.allowed.iter().any(|t| **t == *tenant)
    }

    /// Checks a token whose `iss` fits the template: `tid` must name the same tenant; then
    /// whether the allowlist admits the tenant (`Some`) or leaves it to a resolver (`None`,
    /// only for tenants a non-empty allowlist does not list).
    pub(crate) fn admit(&self, tenant: &str, tid: Option<&str>) -> Result<Option<()>, AuthError> {
        if tid != Some(tenant) {
            return Err(AuthError::invalid_token(
                "the token's tenant (tid) does not match its issuer",
            ));
        }
        if self.allowed.is_empty() || self.allowed.iter().any(|t| **t == *tenant) {
            Ok(Some(()))
        } else {
            Ok(None)
        }
    }
}

/// A template, the index of its slot among the authenticator's caches (its shared keys, or
/// an empty placeholder when keys are per tenant), its per-tenant key sets and its resolver.
pub(crate) struct TemplateCache {
    template: Template,
    cache: usize,
    per_tenant: Option<TenantKeySets>,
    resolver: Option<Resolver>,
    decisions: Decisions,
}

impl fmt::Debug for TemplateCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemplateCache")
            .field("template", &self.template)
            .field("per_tenant", &self.per_tenant)
            .finish_non_exhaustive()
    }
}

/// Where a token's keys are: an issuer's or template's slot (`index`, also the key of its
/// audiences), and for a per-tenant template the tenant's own cache.
#[derive(Clone)]
pub(crate) struct Found {
    pub(crate) index: usize,
    tenant_keys: Option<JwksCache>,
    /// A tenant the resolver must judge once the signature has verified (shared keys):
    /// (template, tenant).
    undecided: Option<(usize, Box<str>)>,
}

impl Found {
    pub(crate) fn exact(index: usize) -> Self {
        Self {
            index,
            tenant_keys: None,
            undecided: None,
        }
    }

    /// For a verified token whose tenant only the resolver can judge, the step that asks it.
    pub(crate) fn undecided(&self) -> Option<Step> {
        let (at, tenant) = self.undecided.as_ref()?;
        Some(Step::Resolve(*at, tenant.clone()))
    }

    pub(crate) fn cache<'a>(&'a self, issuers: &'a [JwksCache]) -> &'a JwksCache {
        self.tenant_keys.as_ref().unwrap_or(&issuers[self.index])
    }
}

/// Checks each template and appends one key cache per template to `issuers`.
pub(crate) fn caches(
    configs: &[TenantIssuer],
    issuers: &mut Vec<JwksCache>,
    http: &HttpClient,
    policy: CachePolicy,
    allowed: AlgSet,
    other_hosts: &Arc<[Box<str>]>,
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
        let mut per_tenant = None;
        let (source, initial) = match &config.keys {
            TenantKeys::PerTenant(0) => {
                return Err(ConfigError::new(
                    "keys_per_tenant needs a bound of at least 1",
                ));
            }
            TenantKeys::PerTenant(max) => {
                per_tenant = Some(TenantKeySets::new(
                    http.clone(),
                    policy,
                    allowed,
                    Arc::clone(other_hosts),
                    *max,
                ));
                (Source::Static, None)
            }
            TenantKeys::None => {
                return Err(ConfigError::new(format!(
                    "the issuer template `{}` needs a jwks_uri, a JWK Set or keys_per_tenant",
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
            per_tenant,
            resolver: config.resolver.clone(),
            decisions: Decisions::default(),
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

/// Where the keys are for a token whose `iss` no exact issuer has: the first template it
/// fits, when its `tid` agrees and the allowlist, or the resolver's remembered answer,
/// accepts the tenant. A tenant only the resolver can judge yields `Step::Resolve`.
pub(super) fn find(
    templates: &[TemplateCache],
    iss: &str,
    tid: Option<&str>,
) -> Result<Found, Step> {
    let Some((at, t, tenant)) = templates
        .iter()
        .enumerate()
        .find_map(|(at, t)| Some((at, t, t.template.tenant(iss)?)))
    else {
        return Err(AuthError::invalid_token("the token's issuer is not trusted").into());
    };
    let now = Instant::now();
    let admitted = t.template.admit(tenant, tid)?.is_some();
    // With a resolver, every tenant the allowlist does not name is the resolver's to judge.
    let unlisted = match &t.resolver {
        Some(_) => !t.template.lists(tenant),
        None => !admitted,
    };
    let mut undecided = None;
    if unlisted {
        match (&t.resolver, t.decisions.get(tenant, now)) {
            (_, Some(true)) => {}
            // With per-tenant keys the resolver is asked before any fetch; with shared keys,
            // after the signature verifies, so forged tokens never reach it.
            (Some(_), None) if t.per_tenant.is_some() => {
                return Err(Step::Resolve(at, tenant.into()));
            }
            (Some(_), None) => undecided = Some((at, tenant.into())),
            (_, Some(false)) | (None, None) => {
                return Err(AuthError::invalid_token("the token's tenant is not trusted").into());
            }
        }
    }
    let tenant_keys = match &t.per_tenant {
        Some(sets) => Some(sets.get(iss, now)?),
        None => None,
    };
    Ok(Found {
        index: t.cache,
        tenant_keys,
        undecided,
    })
}

/// Asks the template's resolver about `tenant` and remembers the answer.
pub(super) async fn resolve(templates: &[TemplateCache], at: usize, tenant: Box<str>) {
    let Some(t) = templates.get(at) else { return };
    if let Some(resolver) = &t.resolver {
        let allowed = resolver(tenant.clone().into_string()).await;
        t.decisions.put(&tenant, allowed, Instant::now());
    }
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
        assert_eq!(open.admit(TID, Some(TID)), Ok(Some(())));
        assert!(open.admit(TID, None).is_err());
        assert!(open.admit(TID, Some("other")).is_err());
        assert!(open.admit(TID, Some(&TID.to_uppercase())).is_err());
        let listed = Template::new(
            &TenantIssuer::new(ENTRA_V2).jwks("{}").tenants([TID]),
            false,
        )
        .expect("valid");
        assert_eq!(listed.admit(TID, Some(TID)), Ok(Some(())));
        assert_eq!(
            listed.admit("other", Some("other")),
            Ok(None),
            "left to a resolver"
        );
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
