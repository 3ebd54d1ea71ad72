//! Per-issuer audiences: when one authenticator trusts several issuers, each may name the
//! audiences its tokens must carry for this API.

use crate::{error::ConfigError, jwks::JwksCache};

/// A list of accepted audiences.
pub(super) type Audiences = Box<[Box<str>]>;

/// The audiences each key cache's tokens must name, aligned with `caches`: the issuer's own
/// when [`JwtBuilder::issuer_audience`](crate::JwtBuilder::issuer_audience) set any, else
/// `global`.
///
/// Every issuer (or template) needs audiences from one or the other, and every issuer named
/// in `own` must be a configured one.
pub(super) fn per_issuer(
    caches: &[JwksCache],
    own: &[(String, String)],
    global: &[Box<str>],
) -> Result<Box<[Audiences]>, ConfigError> {
    if let Some((issuer, _)) = own
        .iter()
        .find(|(issuer, _)| !caches.iter().any(|c| **c.issuer() == **issuer))
    {
        return Err(ConfigError::new(format!(
            "`{}` has audiences but is not a configured issuer or template",
            crate::redact::url(issuer)
        )));
    }
    if own.iter().any(|(_, audience)| audience.is_empty()) {
        return Err(ConfigError::new("an issuer's audience is empty"));
    }
    caches
        .iter()
        .map(|cache| {
            let mine: Audiences = own
                .iter()
                .filter(|(issuer, _)| **cache.issuer() == **issuer)
                .map(|(_, audience)| audience.as_str().into())
                .collect();
            match (mine.is_empty(), global.is_empty()) {
                (false, _) => Ok(mine),
                (true, false) => Ok(global.into()),
                (true, true) => Err(ConfigError::new(format!(
                    "issuer `{}` has no audience: set one with audience() or issuer_audience()",
                    crate::redact::url(cache.issuer())
                ))),
            }
        })
        .collect()
}
