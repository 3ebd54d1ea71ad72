use std::{
    fmt,
    marker::PhantomData,
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use serde_json::{Map, Value};
use tower_layer::Layer;
use tower_service::Service;

use crate::{
    error::{AuthError, ConfigError},
    future::ResponseFuture,
    principal::{Principal, RegisteredClaims},
    rejection::{HttpRejection, OnRejection},
};

/// Claims types whose top-level claims can be looked up by name, for the stock predicates
/// of [`RequireClaimLayer`] ([`equals`](RequireClaimLayer::equals),
/// [`one_of`](RequireClaimLayer::one_of)).
pub trait ClaimLookup {
    /// Whether the claim `name` is present and equal to `expected` (JSON equality: the
    /// string `"true"` is not the boolean `true`). For a list claim (`aud` of
    /// [`RegisteredClaims`]), whether the list contains `expected`.
    fn claim_equals(&self, name: &str, expected: &Value) -> bool;
}

impl ClaimLookup for RegisteredClaims {
    fn claim_equals(&self, name: &str, expected: &Value) -> bool {
        let string = |field: &Option<String>| {
            field
                .as_deref()
                .is_some_and(|v| expected.as_str() == Some(v))
        };
        let number = |field: &Option<i64>| field.is_some_and(|v| expected.as_i64() == Some(v));
        match name {
            "iss" => string(&self.iss),
            "sub" => string(&self.sub),
            "jti" => string(&self.jti),
            "client_id" => string(&self.client_id),
            "aud" => self.aud.iter().any(|a| expected.as_str() == Some(a)),
            "exp" => number(&self.exp),
            "nbf" => number(&self.nbf),
            "iat" => number(&self.iat),
            _ => self.extra.claim_equals(name, expected),
        }
    }
}

impl ClaimLookup for Map<String, Value> {
    fn claim_equals(&self, name: &str, expected: &Value) -> bool {
        self.get(name).is_some_and(|v| v == expected)
    }
}

impl ClaimLookup for Value {
    fn claim_equals(&self, name: &str, expected: &Value) -> bool {
        self.get(name).is_some_and(|v| v == expected)
    }
}

/// A condition on a validated token's claims of type `C`.
///
/// Implemented for closures `Fn(&C) -> bool` and for [`ClaimIn`].
pub trait ClaimPredicate<C> {
    /// Whether `claims` pass.
    fn check(&self, claims: &C) -> bool;
}

impl<C, F> ClaimPredicate<C> for F
where
    F: Fn(&C) -> bool,
{
    fn check(&self, claims: &C) -> bool {
        self(claims)
    }
}

/// The predicate "claim `name` equals one of these values".
#[derive(Clone)]
pub struct ClaimIn {
    name: Arc<str>,
    values: Arc<[Value]>,
}

impl ClaimIn {
    /// Claim `name` must equal one of `values`.
    ///
    /// # Errors
    ///
    /// When `name` is empty, or `values` is empty or holds an empty string or a `null`
    /// (an unset variable would otherwise admit tokens without the claim's value).
    pub fn new<I>(name: impl Into<String>, values: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        let name: String = name.into();
        if name.trim().is_empty() {
            return Err(ConfigError::new("a required claim has an empty name"));
        }
        let values: Arc<[Value]> = values.into_iter().map(Into::into).collect();
        if values.is_empty() {
            return Err(ConfigError::new(
                "a required claim needs at least one accepted value",
            ));
        }
        if values
            .iter()
            .any(|v| v.is_null() || v.as_str().is_some_and(|s| s.trim().is_empty()))
        {
            return Err(ConfigError::new(
                "an accepted claim value is null, empty or only spaces (an unset variable?)",
            ));
        }
        Ok(Self {
            name: name.into(),
            values,
        })
    }
}

impl<C: ClaimLookup> ClaimPredicate<C> for ClaimIn {
    fn check(&self, claims: &C) -> bool {
        self.values
            .iter()
            .any(|v| claims.claim_equals(&self.name, v))
    }
}

impl fmt::Debug for ClaimIn {
    // The accepted values are configuration, not token data; still, only their count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimIn")
            .field("name", &self.name)
            .field("values", &self.values.len())
            .finish()
    }
}

/// Requires the validated token's claims to pass a [`ClaimPredicate`]: an exact value
/// (`email_verified` is `true`), a value from a set (`azp` or `client_id` among the allowed
/// clients, `tid` among the allowed tenants), or any function over the typed claims. Place
/// it inside a [`BearerAuthLayer`](crate::BearerAuthLayer).
///
/// A token that fails is answered **`403` with `error="insufficient_scope"`** (gRPC
/// `PERMISSION_DENIED`), not `401 invalid_token`: the token is authentic and valid, it
/// just does not admit its bearer here. `invalid_token` would tell the client to fetch a new
/// token, which carries the same claims and fails the same way. A request without a
/// [`Principal<C>`] in its extensions (no auth layer in front, an anonymous request under
/// optional authentication, or an authenticator with another claims type than `C`) is
/// answered `401`.
///
/// The predicate runs on every request it guards, synchronously: keep it cheap, and do no
/// I/O in it.
#[must_use]
pub struct RequireClaimLayer<P, C = RegisteredClaims, R = HttpRejection> {
    predicate: P,
    rejection: R,
    _claims: PhantomData<fn() -> C>,
}

impl RequireClaimLayer<ClaimIn> {
    /// Claim `name` must equal `value`.
    ///
    /// # Panics
    ///
    /// When [`ClaimIn::new`] would fail; for values read from configuration, use
    /// [`ClaimIn::new`] with [`from_predicate`](Self::from_predicate).
    #[track_caller]
    pub fn equals(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Self::one_of(name, [value.into()])
    }

    /// Claim `name` must equal one of `values`.
    ///
    /// # Panics
    ///
    /// As [`ClaimIn::new`] fails.
    #[track_caller]
    pub fn one_of<I>(name: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<Value>,
    {
        Self::from_predicate(ClaimIn::new(name, values).unwrap_or_else(|e| panic!("{e}")))
    }
}

impl<P, C> RequireClaimLayer<P, C> {
    /// Requires `predicate`, rejecting with [`HttpRejection`] (realm `api`). A closure
    /// names its claims type: `RequireClaimLayer::from_predicate(|c: &MyClaims| c.verified)`.
    pub fn from_predicate(predicate: P) -> Self
    where
        P: ClaimPredicate<C>,
    {
        Self {
            predicate,
            rejection: HttpRejection::new(),
            _claims: PhantomData,
        }
    }

    /// Sets the `realm` of the `WWW-Authenticate` challenge. Default: `api`.
    pub fn realm(mut self, realm: &str) -> Self {
        self.rejection = self.rejection.realm(realm);
        self
    }
}

impl<P, C, R> RequireClaimLayer<P, C, R> {
    /// Answers rejections with `rejection` instead. Default: [`HttpRejection`].
    pub fn on_rejection<R2>(self, rejection: R2) -> RequireClaimLayer<P, C, R2> {
        RequireClaimLayer {
            predicate: self.predicate,
            rejection,
            _claims: PhantomData,
        }
    }

    /// Checks claims of type `C2` (the authenticator's `claims::<C2>()`) instead; the stock
    /// predicates need `C2: ClaimLookup`. Default: [`RegisteredClaims`].
    pub fn claims<C2>(self) -> RequireClaimLayer<P, C2, R> {
        RequireClaimLayer {
            predicate: self.predicate,
            rejection: self.rejection,
            _claims: PhantomData,
        }
    }
}

impl<P: Clone, C, R: Clone> Clone for RequireClaimLayer<P, C, R> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
            rejection: self.rejection.clone(),
            _claims: PhantomData,
        }
    }
}

impl<P, C, R> fmt::Debug for RequireClaimLayer<P, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClaimLayer").finish_non_exhaustive()
    }
}

impl<S, P: Clone, C, R: Clone> Layer<S> for RequireClaimLayer<P, C, R> {
    type Service = RequireClaim<S, P, C, R>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireClaim {
            inner,
            predicate: self.predicate.clone(),
            rejection: self.rejection.clone(),
            _claims: PhantomData,
        }
    }
}

/// The service of [`RequireClaimLayer`].
pub struct RequireClaim<S, P, C = RegisteredClaims, R = HttpRejection> {
    inner: S,
    predicate: P,
    rejection: R,
    _claims: PhantomData<fn() -> C>,
}

impl<S: Clone, P: Clone, C, R: Clone> Clone for RequireClaim<S, P, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            predicate: self.predicate.clone(),
            rejection: self.rejection.clone(),
            _claims: PhantomData,
        }
    }
}

impl<S: fmt::Debug, P, C, R> fmt::Debug for RequireClaim<S, P, C, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireClaim")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S, P, C, R, ReqB, ResB> Service<Request<ReqB>> for RequireClaim<S, P, C, R>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    P: ClaimPredicate<C>,
    C: Send + Sync + 'static,
    R: OnRejection<ResB>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, R>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let verdict = match req.extensions().get::<Principal<C>>() {
            Some(principal) if self.predicate.check(principal.claims()) => Ok(()),
            Some(_) => Err(AuthError::forbidden(
                "the token's claims do not admit it to this resource",
            )),
            None => Err(AuthError::missing_token()),
        };
        match verdict {
            Ok(()) => ResponseFuture::called(self.inner.call(req)),
            Err(error) => ResponseFuture::rejected(&mut self.rejection, error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(json: &str) -> RegisteredClaims {
        serde_json::from_str(json).expect(json)
    }

    #[test]
    fn lookup_table() {
        let c = claims(
            r#"{"iss":"i","sub":"s","aud":["a","b"],"client_id":"c","exp":10,"azp":"web","email_verified":true,"tid":"t1"}"#,
        );
        let table: &[(&str, Value, bool)] = &[
            ("iss", "i".into(), true),
            ("sub", "x".into(), false),
            ("aud", "b".into(), true),
            ("aud", "c".into(), false),
            ("client_id", "c".into(), true),
            ("exp", 10.into(), true),
            ("exp", "10".into(), false),
            ("azp", "web".into(), true),
            ("azp", "Web".into(), false),
            ("email_verified", true.into(), true),
            ("email_verified", "true".into(), false),
            ("tid", "t1".into(), true),
            ("missing", "x".into(), false),
        ];
        for (name, value, ok) in table {
            assert_eq!(c.claim_equals(name, value), *ok, "{name} = {value}");
        }
    }

    #[test]
    fn one_of() {
        let p = ClaimIn::new("azp", ["web", "cli"]).expect("valid");
        assert!(p.check(&claims(r#"{"azp":"cli"}"#)));
        assert!(!p.check(&claims(r#"{"azp":"other"}"#)));
        assert!(!p.check(&claims(r#"{}"#)));
        assert!(!p.check(&claims(r#"{"azp":["web"]}"#)));
    }

    #[test]
    fn predicates_that_admit_anything_are_refused() {
        assert!(ClaimIn::new("", ["x"]).is_err());
        assert!(ClaimIn::new("azp", Vec::<String>::new()).is_err());
        assert!(ClaimIn::new("azp", [""]).is_err());
        assert!(ClaimIn::new("azp", ["  "]).is_err());
        assert!(ClaimIn::new("azp", [Value::Null]).is_err());
    }
}
