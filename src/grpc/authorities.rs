//! [`MethodAuthoritiesLayer`]: roles or other authorities per gRPC method, as
//! [`MethodScopesLayer`](super::MethodScopesLayer) does for scopes.

use super::methods::{MethodPolicy, MethodPolicyLayer};
#[cfg(doc)]
use crate::authorities::Authorities;
use crate::{authz::AuthorityPolicy, error::AuthError, rejection::GrpcRejection};

/// Requires roles or other [`Authorities`] per gRPC method or per service; place it inside
/// a [`BearerAuthLayer`](crate::BearerAuthLayer) whose authenticator reads
/// [`AuthoritySource`](crate::AuthoritySource)s.
///
/// Lookup and defaults are those of [`MethodScopesLayer`](super::MethodScopesLayer): an
/// exact [`method`](Self::method) entry first, then the [`service`](Self::service) entry;
/// **unmapped methods are denied** (`PERMISSION_DENIED`) unless
/// [`allow_unmapped`](Self::allow_unmapped); a missing authority is `PERMISSION_DENIED`, a
/// request without authorities in its extensions `UNAUTHENTICATED`.
///
/// ```
/// use portcullis::{authz::AuthorityPolicy, grpc::MethodAuthoritiesLayer};
///
/// let layer = MethodAuthoritiesLayer::new()
///     .service("inventory.v1.Inventory", AuthorityPolicy::any(["role:clerk", "role:admin"]))
///     .method("/inventory.v1.Inventory/Restock", AuthorityPolicy::all(["role:admin"]));
/// ```
pub type MethodAuthoritiesLayer<R = GrpcRejection> = MethodPolicyLayer<AuthorityPolicy, R>;

/// The service of [`MethodAuthoritiesLayer`].
pub type MethodAuthorities<S, R = GrpcRejection> = MethodPolicy<S, AuthorityPolicy, R>;

impl Default for MethodAuthoritiesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MethodAuthoritiesLayer {
    /// A layer with no method mapped (every method denied until mapped), answering with
    /// [`GrpcRejection`].
    pub fn new() -> Self {
        MethodPolicyLayer::denying_unmapped_with(AuthError::forbidden(
            "no role or authority grants access to this method",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorities::Authorities;
    use crate::error::ErrorKind;

    #[test]
    fn method_then_service_then_unmapped() {
        let layer = MethodAuthoritiesLayer::new()
            .service("shop.v1.Shop", AuthorityPolicy::any(["clerk", "admin"]))
            .method("/shop.v1.Shop/Restock", AuthorityPolicy::all(["admin"]));
        let clerk: Authorities = ["clerk"].into_iter().collect();
        let admin: Authorities = ["admin"].into_iter().collect();
        let table = [
            ("/shop.v1.Shop/Get", &clerk, true),
            ("/shop.v1.Shop/Restock", &clerk, false),
            ("/shop.v1.Shop/Restock", &admin, true),
            ("/shop.v1.Shop/Get/x", &admin, false),
            ("/shop.v1.Shop//Get", &admin, false),
            ("/other.Svc/Get", &admin, false),
        ];
        for (path, granted, ok) in table {
            let verdict = layer.check_path(path, Some(granted));
            assert_eq!(verdict.is_ok(), ok, "{path}");
            if let Err(e) = verdict {
                assert_eq!(e.kind(), ErrorKind::InsufficientScope, "{path}");
            }
        }
        let open = layer.allow_unmapped(true);
        assert!(open.check_path("/other.Svc/Get", Some(&clerk)).is_ok());
        assert!(open.check_path("/other.Svc/Get/x", Some(&clerk)).is_err());
        assert_eq!(
            open.check_path("/shop.v1.Shop/Get", None)
                .map_err(|e| e.kind()),
            Err(ErrorKind::MissingToken)
        );
    }
}
