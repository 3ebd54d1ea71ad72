//! gRPC (feature `tonic`): rejections as gRPC statuses and scopes per method.
//!
//! - [`BearerAuthLayer::grpc`](crate::BearerAuthLayer::grpc) answers every rejection with a
//!   [`GrpcRejection`]: a trailers-only response with `grpc-status` `16`
//!   `UNAUTHENTICATED` (missing, malformed or invalid token), `7` `PERMISSION_DENIED`
//!   (missing scope) or `14` `UNAVAILABLE` (issuer unreachable). The mode is chosen when
//!   the layer is built, never guessed from the request.
//! - [`MethodScopesLayer`] maps methods (`/package.Service/Method`) and whole services to
//!   [`ScopePolicy`](crate::ScopePolicy)s. **Unmapped methods are denied** unless
//!   [`allow_unmapped`](MethodScopesLayer::allow_unmapped) is set.

mod methods;
mod rejection;

pub use methods::{MethodScopes, MethodScopesLayer};
pub use rejection::GrpcRejection;
