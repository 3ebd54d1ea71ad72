//! [`MethodAuthoritiesLayer`]: roles or other authorities per gRPC method, as
//! [`MethodScopesLayer`](super::MethodScopesLayer) does for scopes.

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::methods::split_path;
use crate::{
    authorities::Authorities,
    authz::AuthorityPolicy,
    error::AuthError,
    future::ResponseFuture,
    rejection::{GrpcRejection, OnRejection},
};

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
#[derive(Clone, Debug)]
#[must_use]
pub struct MethodAuthoritiesLayer<R = GrpcRejection> {
    map: Arc<AuthorityMap>,
    rejection: R,
}

#[derive(Clone, Debug, Default)]
struct AuthorityMap {
    methods: HashMap<Box<str>, AuthorityPolicy>,
    services: HashMap<Box<str>, AuthorityPolicy>,
    allow_unmapped: bool,
}

impl AuthorityMap {
    fn check(&self, path: &str, granted: Option<&Authorities>) -> Result<(), AuthError> {
        let Some(granted) = granted else {
            return Err(AuthError::missing_token());
        };
        let policy = self
            .methods
            .get(path)
            .or_else(|| self.services.get(split_path(path)?.0));
        match policy {
            Some(policy) => policy.check(granted),
            None if self.allow_unmapped && split_path(path).is_some() => Ok(()),
            None => Err(AuthError::forbidden(
                "no role or authority grants access to this method",
            )),
        }
    }
}

impl Default for MethodAuthoritiesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MethodAuthoritiesLayer {
    /// A layer with no method mapped (every method denied until mapped), answering with
    /// [`GrpcRejection`].
    pub fn new() -> Self {
        Self {
            map: Arc::default(),
            rejection: GrpcRejection::new(),
        }
    }
}

impl<R> MethodAuthoritiesLayer<R> {
    fn map(&mut self) -> &mut AuthorityMap {
        Arc::make_mut(&mut self.map)
    }

    /// Requires `policy` for the method at `path` (`/package.Service/Method`). A method
    /// entry takes precedence over its service's; mapping a path twice keeps the last.
    /// Default: none.
    ///
    /// # Panics
    ///
    /// When `path` is not of the form `/package.Service/Method`.
    pub fn method(mut self, path: impl Into<String>, policy: AuthorityPolicy) -> Self {
        let path = path.into();
        assert!(
            split_path(&path).is_some(),
            "gRPC method paths look like `/package.Service/Method`, got {path:?}"
        );
        self.map().methods.insert(path.into_boxed_str(), policy);
        self
    }

    /// Requires `policy` for every method of the service `name` (`package.Service`) that has
    /// no [`method`](Self::method) entry. Default: none.
    ///
    /// # Panics
    ///
    /// When `name` is empty or contains a `/`.
    pub fn service(mut self, name: impl Into<String>, policy: AuthorityPolicy) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty() && !name.contains('/'),
            "gRPC service names look like `package.Service`, got {name:?}"
        );
        self.map().services.insert(name.into_boxed_str(), policy);
        self
    }

    /// When `true`, a method with neither a method nor a service entry is open to any
    /// authenticated caller. Default: `false` (denied with `PERMISSION_DENIED`).
    pub fn allow_unmapped(mut self, allow: bool) -> Self {
        self.map().allow_unmapped = allow;
        self
    }

    /// Answers rejections with `rejection` instead. Default: [`GrpcRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> MethodAuthoritiesLayer<R2> {
        MethodAuthoritiesLayer {
            map: self.map,
            rejection,
        }
    }
}

impl<S, R: Clone> Layer<S> for MethodAuthoritiesLayer<R> {
    type Service = MethodAuthorities<S, R>;

    fn layer(&self, inner: S) -> Self::Service {
        MethodAuthorities {
            inner,
            map: Arc::clone(&self.map),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service of [`MethodAuthoritiesLayer`].
#[derive(Clone, Debug)]
pub struct MethodAuthorities<S, R = GrpcRejection> {
    inner: S,
    map: Arc<AuthorityMap>,
    rejection: R,
}

impl<S, R> MethodAuthorities<S, R> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, R, ReqB, ResB> Service<Request<ReqB>> for MethodAuthorities<S, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    R: OnRejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        match self
            .map
            .check(req.uri().path(), req.extensions().get::<Authorities>())
        {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            let verdict = layer.map.check(path, Some(granted));
            assert_eq!(verdict.is_ok(), ok, "{path}");
            if let Err(e) = verdict {
                assert_eq!(e.kind(), ErrorKind::InsufficientScope, "{path}");
            }
        }
        let open = layer.allow_unmapped(true);
        assert!(open.map.check("/other.Svc/Get", Some(&clerk)).is_ok());
        assert!(open.map.check("/other.Svc/Get/x", Some(&clerk)).is_err());
        assert_eq!(
            open.map
                .check("/shop.v1.Shop/Get", None)
                .map_err(|e| e.kind()),
            Err(ErrorKind::MissingToken)
        );
    }
}
