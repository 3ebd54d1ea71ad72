//! axum extractors (feature `axum`): [`Principal`], [`Scopes`] and [`Authorities`], each
//! also as `Option`.
//!
//! `Principal<C>` must name the claims type the authenticator was built with; a handler
//! asking for another `C` finds no principal. Without a principal (no auth layer in front,
//! or an anonymous request under optional authentication) the plain extractors answer
//! `500`, a configuration mistake to fix, while the `Option` forms give `None`.

use std::fmt;

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, Response},
};
use http::{StatusCode, request::Parts};

use crate::{
    authorities::Authorities,
    principal::{Principal, Scopes},
};

/// Rejection of the [`Principal`], [`Scopes`] and [`Authorities`] extractors: the request carries no
/// validated principal of the requested type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingPrincipal;

impl fmt::Display for MissingPrincipal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "no authenticated principal in the request: is the route behind a BearerAuthLayer \
             with the same claims type?",
        )
    }
}

impl std::error::Error for MissingPrincipal {}

impl IntoResponse for MissingPrincipal {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "missing authenticated principal",
        )
            .into_response()
    }
}

impl<S, C> FromRequestParts<S> for Principal<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = MissingPrincipal;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal<C>>()
            .cloned()
            .ok_or(MissingPrincipal)
    }
}

impl<S, C> OptionalFromRequestParts<S> for Principal<C>
where
    S: Send + Sync,
    C: Send + Sync + 'static,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Principal<C>>().cloned())
    }
}

/// The extractors of a value the auth layer puts into the request's extensions: required
/// (`MissingPrincipal` when absent) and optional.
macro_rules! extension_extractors {
    ($($ty:ty),+) => {$(
        impl<S> FromRequestParts<S> for $ty
        where
            S: Send + Sync,
        {
            type Rejection = MissingPrincipal;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &S,
            ) -> Result<Self, Self::Rejection> {
                parts.extensions.get::<$ty>().cloned().ok_or(MissingPrincipal)
            }
        }

        impl<S> OptionalFromRequestParts<S> for $ty
        where
            S: Send + Sync,
        {
            type Rejection = std::convert::Infallible;

            async fn from_request_parts(
                parts: &mut Parts,
                _state: &S,
            ) -> Result<Option<Self>, Self::Rejection> {
                Ok(parts.extensions.get::<$ty>().cloned())
            }
        }
    )+};
}

extension_extractors!(Scopes, Authorities);
