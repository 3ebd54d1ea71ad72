//! Turning an [`AuthError`] into a response: [`OnRejection`], with [`HttpRejection`]
//! (RFC 6750 §3) as the default and `GrpcRejection` (feature `tonic`) for gRPC services.

mod http;

#[cfg(feature = "tonic")]
mod grpc;

use ::http::Response;

use crate::error::AuthError;

#[cfg(feature = "tonic")]
pub use grpc::GrpcRejection;
pub use http::{DEFAULT_REALM, HttpRejection};

/// Builds the response for a rejected request.
///
/// Implemented by [`HttpRejection`] (the default) and by any
/// `FnMut(&AuthError) -> Response<B> + Clone` closure. Whatever it returns, the layer puts a
/// clone of the [`AuthError`] into the response's extensions.
pub trait OnRejection<B> {
    /// The response for `error`.
    fn on_rejection(&mut self, error: &AuthError) -> Response<B>;
}

impl<B, F> OnRejection<B> for F
where
    F: FnMut(&AuthError) -> Response<B>,
{
    fn on_rejection(&mut self, error: &AuthError) -> Response<B> {
        self(error)
    }
}
