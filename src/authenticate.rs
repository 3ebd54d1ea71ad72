//! The [`Authenticate`] trait: turns a token into a [`Principal`], now or after I/O.

use std::{fmt, future::Future, pin::Pin};

use crate::{error::AuthError, principal::Principal};

/// A future that finishes an authentication which needed I/O (a key refresh, an
/// introspection call).
pub type PendingAuthentication<C> =
    Pin<Box<dyn Future<Output = Result<Principal<C>, AuthError>> + Send + 'static>>;

/// The outcome of [`Authenticate::authenticate`].
///
/// A token checked against cached keys or a cached introspection answer is decided on the
/// spot ([`Authentication::Ready`]); only when I/O is needed does the layer wait on a future.
pub enum Authentication<C> {
    /// Decided without I/O.
    Ready(Result<Principal<C>, AuthError>),
    /// Needs I/O first.
    Pending(PendingAuthentication<C>),
}

impl<C> fmt::Debug for Authentication<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(Ok(p)) => f.debug_tuple("Ready").field(p).finish(),
            Self::Ready(Err(e)) => f.debug_tuple("Ready").field(e).finish(),
            Self::Pending(_) => f.write_str("Pending"),
        }
    }
}

/// Validates a bearer token.
///
/// Implemented by [`Jwt`](crate::Jwt) (local validation against the issuer's keys), by
/// [`Introspection`](crate::Introspection) (RFC 7662) and by [`JwtOrIntrospection`](crate::JwtOrIntrospection),
/// which routes between the two.
pub trait Authenticate {
    /// The typed claims put into the principal.
    type Claims: Send + Sync + 'static;

    /// Validates `token`, which has already passed the length cap and the `b64token` grammar.
    fn authenticate(&self, token: &str) -> Authentication<Self::Claims>;
}
