use super::ScopePolicy;
use crate::{
    rejection::HttpRejection,
    require::{Require, RequireLayer},
};

crate::require::requirement!(ScopePolicy, crate::principal::Scopes);

/// Requires scopes on the routes it wraps; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// A request without validated scopes in its extensions (no auth layer in front, or an
/// anonymous request under optional authentication) is answered `401`.
///
/// Its rejections are its own: a `realm` or a custom responder set on the
/// `BearerAuthLayer` does not carry over, so set the same ones here with
/// [`realm`](Self::realm) or [`on_rejection`](Self::on_rejection).
pub type RequireScopeLayer<R = HttpRejection> = RequireLayer<ScopePolicy, R>;

/// The service of [`RequireScopeLayer`].
pub type RequireScope<S, R = HttpRejection> = Require<S, ScopePolicy, R>;

impl RequireLayer<ScopePolicy> {
    /// Requires every scope in `scopes`.
    ///
    /// # Panics
    ///
    /// On a policy that would require nothing, as [`ScopePolicy::all`]; for scopes read
    /// from configuration, use `RequireScopeLayer::new(ScopePolicy::try_all(…)?)`.
    #[track_caller]
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(ScopePolicy::all(scopes))
    }

    /// Requires at least one scope in `scopes`.
    ///
    /// # Panics
    ///
    /// As [`all`](Self::all).
    #[track_caller]
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(ScopePolicy::any(scopes))
    }
}
