//! gRPC (feature `tonic`): rejections as gRPC statuses.
//!
//! [`BearerAuthLayer::grpc`](crate::BearerAuthLayer::grpc) answers every rejection with a
//! [`GrpcRejection`]: a trailers-only response with `grpc-status` `16` `UNAUTHENTICATED`
//! (missing, malformed or invalid token), `7` `PERMISSION_DENIED` (missing scope) or `14`
//! `UNAVAILABLE` (issuer unreachable). The mode is chosen when the layer is built, never
//! guessed from the request.

mod rejection;

pub use rejection::GrpcRejection;
