use std::{fmt, marker::PhantomData, sync::Arc};

use serde_json::{Map, Value};

use crate::{
    error::{AuthError, ConfigError},
    principal::{Principal, RegisteredClaims},
    rejection::HttpRejection,
    require::{Require, RequireLayer, Requirement},
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
pub type RequireClaimLayer<P, C = RegisteredClaims, R = HttpRejection> =
    RequireLayer<ClaimRequirement<P, C>, R>;

/// The service of [`RequireClaimLayer`].
pub type RequireClaim<S, P, C = RegisteredClaims, R = HttpRejection> =
    Require<S, ClaimRequirement<P, C>, R>;

/// A [`ClaimPredicate`] over claims of type `C`, as the [`Requirement`] of a
/// [`RequireClaimLayer`]: it reads the request's [`Principal<C>`].
pub struct ClaimRequirement<P, C> {
    predicate: P,
    _claims: PhantomData<fn() -> C>,
}

impl<P: Clone, C> Clone for ClaimRequirement<P, C> {
    fn clone(&self) -> Self {
        Self {
            predicate: self.predicate.clone(),
            _claims: PhantomData,
        }
    }
}

impl<P, C> fmt::Debug for ClaimRequirement<P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimRequirement").finish_non_exhaustive()
    }
}

impl<P, C> crate::require::sealed::Sealed for ClaimRequirement<P, C> {}

impl<P, C> Requirement for ClaimRequirement<P, C>
where
    P: ClaimPredicate<C> + Clone,
    C: Send + Sync + 'static,
{
    type Granted = Principal<C>;

    fn check(&self, principal: &Principal<C>) -> Result<(), AuthError> {
        if self.predicate.check(principal.claims()) {
            Ok(())
        } else {
            Err(AuthError::forbidden(
                "the token's claims do not admit it to this resource",
            ))
        }
    }
}

impl RequireLayer<ClaimRequirement<ClaimIn, RegisteredClaims>> {
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

impl<P, C> RequireLayer<ClaimRequirement<P, C>>
where
    P: ClaimPredicate<C> + Clone,
    C: Send + Sync + 'static,
{
    /// Requires `predicate`, rejecting with [`HttpRejection`] (realm `api`). A closure
    /// names its claims type: `RequireClaimLayer::from_predicate(|c: &MyClaims| c.verified)`.
    pub fn from_predicate(predicate: P) -> Self {
        Self::new(ClaimRequirement {
            predicate,
            _claims: PhantomData,
        })
    }
}

impl<P, C, R> RequireLayer<ClaimRequirement<P, C>, R> {
    /// Checks claims of type `C2` (the authenticator's `claims::<C2>()`) instead; the stock
    /// predicates need `C2: ClaimLookup`. Default: [`RegisteredClaims`].
    pub fn claims<C2>(self) -> RequireLayer<ClaimRequirement<P, C2>, R> {
        self.map_policy(|policy| ClaimRequirement {
            predicate: policy.predicate,
            _claims: PhantomData,
        })
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
