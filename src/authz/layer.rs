use super::AuthorityPolicy;
use crate::{
    rejection::HttpRejection,
    require::{Require, RequireLayer},
};

crate::require::requirement!(AuthorityPolicy, crate::authorities::Authorities);

/// Requires roles or other authorities on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer) whose authenticator reads
/// [`AuthoritySource`](super::AuthoritySource)s.
///
/// A request without authorities in its extensions (no auth layer in front, or an
/// anonymous request under optional authentication) is answered `401`; a token that lacks
/// them, `403` (see [`AuthorityPolicy`]). Set the same `realm` or responder as on the
/// `BearerAuthLayer` here: [`realm`](Self::realm), [`on_rejection`](Self::on_rejection)
/// (`GrpcRejection` for tonic).
pub type RequireAuthorityLayer<R = HttpRejection> = RequireLayer<AuthorityPolicy, R>;

/// [`RequireAuthorityLayer`] under the name most APIs use for it.
pub type RequireRoleLayer<R = HttpRejection> = RequireAuthorityLayer<R>;

/// The service of [`RequireAuthorityLayer`].
pub type RequireAuthority<S, R = HttpRejection> = Require<S, AuthorityPolicy, R>;

impl RequireLayer<AuthorityPolicy> {
    /// Requires every authority in `names`.
    ///
    /// # Panics
    ///
    /// As [`AuthorityPolicy::all`]; build the policy with [`AuthorityPolicy::try_all`] and
    /// use [`new`](Self::new) for names read from configuration.
    #[track_caller]
    pub fn all<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(AuthorityPolicy::all(names))
    }

    /// Requires at least one authority in `names`.
    ///
    /// # Panics
    ///
    /// As [`AuthorityPolicy::any`].
    #[track_caller]
    pub fn any<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(AuthorityPolicy::any(names))
    }
}
