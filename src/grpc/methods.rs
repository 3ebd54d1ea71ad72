//! Policies per gRPC method or per service: one layer, [`MethodPolicyLayer`], generic over
//! the [`Requirement`] checked ([`MethodScopesLayer`] for scopes,
//! [`MethodAuthoritiesLayer`](super::MethodAuthoritiesLayer) for authorities).

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::{AuthError, ErrorKind},
    future::ResponseFuture,
    rejection::{GrpcRejection, OnRejection},
    require::Requirement,
    scope::ScopePolicy,
};

/// Requires scopes per gRPC method or per service; place it inside a
/// [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// The request's path (`/package.Service/Method`) picks the policy: an exact
/// [`method`](Self::method) entry first, then the [`service`](Self::service) entry of its
/// service. The check happens once, when the call starts, so it guards unary and streaming
/// methods alike.
///
/// **Unmapped methods are denied** (`PERMISSION_DENIED`) by default, so a method added to the
/// `.proto` later is closed until someone decides who may call it;
/// [`allow_unmapped`](Self::allow_unmapped) opens them to any authenticated caller instead.
/// A request without validated scopes in its extensions (no auth layer in front, or an
/// anonymous request under optional authentication) is answered `UNAUTHENTICATED`.
///
/// Rejections are [`GrpcRejection`]s unless [`on_rejection`](Self::on_rejection) says
/// otherwise. See the [module documentation](super) for an example.
pub type MethodScopesLayer<R = GrpcRejection> = MethodPolicyLayer<ScopePolicy, R>;

/// The service of [`MethodScopesLayer`].
pub type MethodScopes<S, R = GrpcRejection> = MethodPolicy<S, ScopePolicy, R>;

impl Default for MethodScopesLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MethodScopesLayer {
    /// A layer with no method mapped (so every method is denied until mapped), answering
    /// with [`GrpcRejection`].
    pub fn new() -> Self {
        MethodPolicyLayer::denying_unmapped_with(AuthError::new(
            ErrorKind::InsufficientScope,
            "no scope grants access to this method",
        ))
    }
}

/// A [`Requirement`] per gRPC method or per service; usually named by its aliases
/// [`MethodScopesLayer`] and [`MethodAuthoritiesLayer`](super::MethodAuthoritiesLayer),
/// whose `new()` builds one.
///
/// The request's path (`/package.Service/Method`) picks the policy: an exact
/// [`method`](Self::method) entry first, then the [`service`](Self::service) entry of its
/// service. The check happens once, when the call starts, so it guards unary and streaming
/// methods alike. Unmapped methods are denied (`PERMISSION_DENIED`) unless
/// [`allow_unmapped`](Self::allow_unmapped); a request without the value the policies read
/// (no auth layer in front, or an anonymous request under optional authentication) is
/// answered `UNAUTHENTICATED`.
#[derive(Clone, Debug)]
#[must_use]
pub struct MethodPolicyLayer<P, R = GrpcRejection> {
    map: Arc<MethodMap<P>>,
    rejection: R,
}

#[derive(Clone, Debug)]
struct MethodMap<P> {
    /// Keyed by the full path, `/package.Service/Method`.
    methods: HashMap<Box<str>, P>,
    /// Keyed by the service name, `package.Service`.
    services: HashMap<Box<str>, P>,
    allow_unmapped: bool,
    /// The answer for a method no entry maps.
    unmapped: AuthError,
}

impl<P: Requirement> MethodMap<P> {
    /// The policy for `path`, if it is mapped.
    fn policy(&self, path: &str) -> Option<&P> {
        self.methods
            .get(path)
            .or_else(|| self.services.get(split_path(path)?.0))
    }

    fn check(&self, path: &str, granted: Option<&P::Granted>) -> Result<(), AuthError> {
        let Some(granted) = granted else {
            return Err(AuthError::missing_token());
        };
        match self.policy(path) {
            Some(policy) => policy.check(granted),
            // Only a well-formed method path can be "unmapped": `/pkg.Svc/Method/x` or
            // `/pkg.Svc//Method` must not slip past a service's policy.
            None if self.allow_unmapped && split_path(path).is_some() => Ok(()),
            None => Err(self.unmapped.clone()),
        }
    }
}

/// `/package.Service/Method` → (`package.Service`, `Method`), both non-empty, no extra `/`.
pub(super) fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

impl<P> MethodPolicyLayer<P> {
    /// No method mapped, unmapped methods answered with `unmapped`, rejections by
    /// [`GrpcRejection`].
    pub(super) fn denying_unmapped_with(unmapped: AuthError) -> Self {
        Self {
            map: Arc::new(MethodMap {
                methods: HashMap::new(),
                services: HashMap::new(),
                allow_unmapped: false,
                unmapped,
            }),
            rejection: GrpcRejection::new(),
        }
    }
}

impl<P: Clone, R> MethodPolicyLayer<P, R> {
    fn map(&mut self) -> &mut MethodMap<P> {
        Arc::make_mut(&mut self.map)
    }

    /// Requires `policy` for the method at `path`, written `/package.Service/Method` as in
    /// the request's `:path` (case-sensitive). A method entry takes precedence over its
    /// service's entry; mapping a path twice keeps the last policy. Default: none.
    ///
    /// # Panics
    ///
    /// When `path` is not of the form `/package.Service/Method`: a typo here would otherwise
    /// leave the method unmapped without a word.
    pub fn method(mut self, path: impl Into<String>, policy: P) -> Self {
        let path = path.into();
        assert!(
            split_path(&path).is_some(),
            "gRPC method paths look like `/package.Service/Method`, got {path:?}"
        );
        self.map().methods.insert(path.into_boxed_str(), policy);
        self
    }

    /// Requires `policy` for every method of the service `name`, its fully qualified name
    /// `package.Service` (the generated server's `NamedService::NAME`), unless a
    /// [`method`](Self::method) entry says otherwise. Default: none.
    ///
    /// # Panics
    ///
    /// When `name` is empty or contains a `/`.
    pub fn service(mut self, name: impl Into<String>, policy: P) -> Self {
        let name = name.into();
        assert!(
            !name.is_empty() && !name.contains('/'),
            "gRPC service names look like `package.Service`, got {name:?}"
        );
        self.map().services.insert(name.into_boxed_str(), policy);
        self
    }

    /// When `true`, a method with neither a method nor a service entry is open to any
    /// authenticated caller, whatever it was granted. Default: `false`, such a method is
    /// denied with `PERMISSION_DENIED`.
    pub fn allow_unmapped(mut self, allow: bool) -> Self {
        self.map().allow_unmapped = allow;
        self
    }
}

#[cfg(test)]
impl<P: Requirement, R> MethodPolicyLayer<P, R> {
    /// The verdict for a request at `path` with `granted` in its extensions.
    pub(super) fn check_path(
        &self,
        path: &str,
        granted: Option<&P::Granted>,
    ) -> Result<(), AuthError> {
        self.map.check(path, granted)
    }
}

impl<P, R> MethodPolicyLayer<P, R> {
    /// Answers rejections with `rejection`: an [`OnRejection`], such as a closure
    /// `FnMut(&AuthError) -> Response<B> + Clone`. Default: [`GrpcRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> MethodPolicyLayer<P, R2> {
        MethodPolicyLayer {
            map: self.map,
            rejection,
        }
    }
}

impl<S, P, R: Clone> Layer<S> for MethodPolicyLayer<P, R> {
    type Service = MethodPolicy<S, P, R>;

    fn layer(&self, inner: S) -> Self::Service {
        MethodPolicy {
            inner,
            map: Arc::clone(&self.map),
            rejection: self.rejection.clone(),
        }
    }
}

/// The service of [`MethodPolicyLayer`].
#[derive(Clone, Debug)]
pub struct MethodPolicy<S, P, R = GrpcRejection> {
    inner: S,
    map: Arc<MethodMap<P>>,
    rejection: R,
}

impl<S, P, R> MethodPolicy<S, P, R> {
    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, P, R, ReqB, ResB> Service<Request<ReqB>> for MethodPolicy<S, P, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    P: Requirement,
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
            .check(req.uri().path(), req.extensions().get::<P::Granted>())
        {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Scopes;

    const GET: &str = "/inventory.v1.Inventory/GetItem";
    const RESTOCK: &str = "/inventory.v1.Inventory/Restock";
    const AUDIT: &str = "/inventory.v1.Audit/List";
    const HEALTH: &str = "/grpc.health.v1.Health/Check";

    fn layer() -> MethodScopesLayer {
        MethodScopesLayer::new()
            .method(GET, ScopePolicy::all(["read"]))
            .method(RESTOCK, ScopePolicy::any(["write", "admin"]))
            .service("inventory.v1.Audit", ScopePolicy::all(["audit"]))
            .method("/inventory.v1.Audit/Export", ScopePolicy::all(["admin"]))
    }

    fn kind(map: &MethodMap<ScopePolicy>, path: &str, granted: Option<&str>) -> Option<ErrorKind> {
        let granted = granted.map(Scopes::from_space_delimited);
        map.check(path, granted.as_ref()).err().map(|e| e.kind())
    }

    #[test]
    fn malformed_paths_are_never_unmapped_methods() {
        let open = layer().allow_unmapped(true);
        let table = [
            (HEALTH, None),
            ("/other.Svc/Anything", None),
            (
                "/inventory.v1.Audit/List/x",
                Some(ErrorKind::InsufficientScope),
            ),
            (
                "/inventory.v1.Audit//List",
                Some(ErrorKind::InsufficientScope),
            ),
            ("/inventory.v1.Audit/", Some(ErrorKind::InsufficientScope)),
            ("//List", Some(ErrorKind::InsufficientScope)),
            (
                "inventory.v1.Audit/List",
                Some(ErrorKind::InsufficientScope),
            ),
            ("/", Some(ErrorKind::InsufficientScope)),
        ];
        for (path, expected) in table {
            assert_eq!(kind(&open.map, path, Some("read")), expected, "{path}");
        }
    }

    #[test]
    fn method_map_table() {
        use ErrorKind::{InsufficientScope as Denied, MissingToken as Anonymous};
        let layer = layer();
        let table: [(&str, Option<&str>, Option<ErrorKind>); 14] = [
            (GET, Some("read"), None),
            (GET, Some("write"), Some(Denied)),
            (GET, Some(""), Some(Denied)),
            (GET, None, Some(Anonymous)),
            (RESTOCK, Some("admin"), None),
            (RESTOCK, Some("read"), Some(Denied)),
            (AUDIT, Some("audit"), None),
            (AUDIT, Some("read"), Some(Denied)),
            ("/inventory.v1.Audit/Export", Some("audit"), Some(Denied)),
            ("/inventory.v1.Audit/Export", Some("admin"), None),
            (HEALTH, Some("read write audit admin"), Some(Denied)),
            (
                "/inventory.v1.Inventory/getitem",
                Some("read"),
                Some(Denied),
            ),
            (
                "/inventory.v1.Inventory/GetItem/x",
                Some("read"),
                Some(Denied),
            ),
            ("/inventory.v1.Audit/List/x", Some("audit"), Some(Denied)),
        ];
        for (path, granted, expected) in table {
            assert_eq!(
                kind(&layer.map, path, granted),
                expected,
                "{path} {granted:?}"
            );
        }
    }

    #[test]
    fn unmapped_methods_can_be_opened_to_any_authenticated_caller() {
        let layer = layer().allow_unmapped(true);
        assert_eq!(kind(&layer.map, HEALTH, Some("")), None);
        assert_eq!(
            kind(&layer.map, HEALTH, None),
            Some(ErrorKind::MissingToken)
        );
        // Mapped methods keep their policy.
        assert_eq!(
            kind(&layer.map, GET, Some("")),
            Some(ErrorKind::InsufficientScope)
        );
    }

    #[test]
    fn denial_names_the_required_scopes() {
        let err = layer()
            .map
            .check(RESTOCK, Some(&Scopes::from_space_delimited("read")))
            .expect_err("write or admin needed");
        assert_eq!(err.required_scope(), Some("write admin"));
        let err = layer()
            .map
            .check(HEALTH, Some(&Scopes::default()))
            .expect_err("unmapped");
        assert_eq!(err.required_scope(), None);
    }

    #[test]
    #[should_panic(expected = "/package.Service/Method")]
    fn malformed_method_paths_panic() {
        let _ = MethodScopesLayer::new()
            .method("inventory.v1.Inventory/GetItem", ScopePolicy::all(["read"]));
    }

    #[test]
    fn malformed_paths_are_refused() {
        for path in [
            "",
            "/",
            "//",
            "/svc",
            "/svc/",
            "//method",
            "/a/b/c",
            "svc/method",
        ] {
            let result = std::panic::catch_unwind(|| {
                MethodScopesLayer::new().method(path, ScopePolicy::all(["read"]))
            });
            assert!(result.is_err(), "{path:?} accepted");
        }
        for name in ["", "/inventory.v1.Inventory", "a/b"] {
            let result = std::panic::catch_unwind(|| {
                MethodScopesLayer::new().service(name, ScopePolicy::all(["read"]))
            });
            assert!(result.is_err(), "{name:?} accepted");
        }
    }
}
