//! The validated caller: [`Principal`], its [`Scopes`], how the user authenticated
//! ([`UserAuthentication`]) and the default claims type [`RegisteredClaims`].

use std::{fmt, sync::Arc, time::SystemTime};

use serde::{Deserialize, Deserializer, Serialize};

use crate::authorities::Authorities;
use crate::confirmation::Confirmation;

/// The caller behind a validated token, put into the request's extensions by the layer.
///
/// Cloning is cheap (one reference count). `C` is the typed claims; the default,
/// [`RegisteredClaims`], keeps the registered claims and every other claim.
pub struct Principal<C = RegisteredClaims> {
    inner: Arc<Inner<C>>,
}

struct Inner<C> {
    issuer: Arc<str>,
    subject: Option<Box<str>>,
    scopes: Scopes,
    authorities: Authorities,
    expires_at: Option<SystemTime>,
    user: UserAuthentication,
    claims: C,
    confirmation: Option<Confirmation>,
}

impl<C> Principal<C> {
    #[cfg(all(test, feature = "tonic"))]
    pub(crate) fn new(
        issuer: Arc<str>,
        subject: Option<Box<str>>,
        scopes: Scopes,
        expires_at: Option<SystemTime>,
        user: UserAuthentication,
        claims: C,
    ) -> Self {
        Self::new_confirmed(issuer, subject, scopes, expires_at, user, claims, None)
    }

    /// A principal whose token is bound by `confirmation` (its `cnf` claim).
    pub(crate) fn new_confirmed(
        issuer: Arc<str>,
        subject: Option<Box<str>>,
        scopes: Scopes,
        expires_at: Option<SystemTime>,
        user: UserAuthentication,
        claims: C,
        confirmation: Option<Confirmation>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer,
                subject,
                scopes,
                authorities: Authorities::default(),
                expires_at,
                user,
                claims,
                confirmation,
            }),
        }
    }

    /// How and when the user authenticated (`acr`, `auth_time`), as the token says.
    pub fn user_authentication(&self) -> &UserAuthentication {
        &self.inner.user
    }

    /// What the token is bound to (its `cnf` claim): a DPoP key or a client certificate.
    /// `None` for a plain bearer token. The layer has checked the binding before the
    /// principal reaches the handler.
    pub fn confirmation(&self) -> Option<&Confirmation> {
        self.inner.confirmation.as_ref()
    }

    /// The issuer that vouched for the token (one of the configured issuers).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The `sub` claim, when the token has one.
    pub fn subject(&self) -> Option<&str> {
        self.inner.subject.as_deref()
    }

    /// The scopes the token grants.
    pub fn scopes(&self) -> &Scopes {
        &self.inner.scopes
    }

    /// The roles and other authorities the token grants, from the authenticator's
    /// [`AuthoritySource`](crate::AuthoritySource)s; none when it has no source.
    pub fn authorities(&self) -> &Authorities {
        &self.inner.authorities
    }

    /// Sets the authorities of a principal just built (not yet shared).
    pub(crate) fn with_authorities(mut self, authorities: Authorities) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.authorities = authorities;
        }
        self
    }

    /// When the token expires (`exp`), when it says.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }

    /// The typed claims.
    pub fn claims(&self) -> &C {
        &self.inner.claims
    }
}

impl<C> Clone for Principal<C> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<C> fmt::Debug for Principal<C> {
    // The subject and the claims stay out of Debug output: they may carry personal data.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("issuer", &self.issuer())
            .field("scopes", &self.scopes())
            .field("expires_at", &self.expires_at())
            .field("confirmation", &self.confirmation())
            .finish_non_exhaustive()
    }
}

/// How and when the user behind a token authenticated: the `acr` and `auth_time` claims
/// (OpenID Connect Core §2), read from JWT claims and introspection answers alike.
///
/// Cloning is cheap. The layer puts a copy into the request's extensions on its own, so
/// step-up checks ([`RequireStepUpLayer`](crate::RequireStepUpLayer)) work whatever the
/// claims type.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserAuthentication {
    acr: Option<Arc<str>>,
    auth_time: Option<SystemTime>,
}

impl UserAuthentication {
    pub(crate) fn new(acr: Option<&str>, auth_time: Option<SystemTime>) -> Self {
        Self {
            acr: acr.map(Arc::from),
            auth_time,
        }
    }

    /// The authentication context class reference (`acr`), when the token has one.
    pub fn acr(&self) -> Option<&str> {
        self.acr.as_deref()
    }

    /// When the user last authenticated actively (`auth_time`), when the token says.
    pub fn auth_time(&self) -> Option<SystemTime> {
        self.auth_time
    }
}

impl fmt::Debug for UserAuthentication {
    // `acr` names an assurance level, not the user; it is safe to print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAuthentication")
            .field("acr", &self.acr)
            .field("auth_time", &self.auth_time)
            .finish()
    }
}

/// The scopes granted to a token, in the order the token lists them.
///
/// Read from `scope` (space-delimited) or `scp` (string or array) by default. Cloning is
/// cheap. The layer also puts a copy into the request's extensions on its own, so scope
/// checks work whatever the claims type.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Scopes(Option<Arc<str>>);

impl Scopes {
    /// Scopes from a space-delimited list (RFC 6749 §3.3); empty items, and items with a
    /// character a scope cannot have, are dropped.
    pub fn from_space_delimited(list: &str) -> Self {
        Self::from_iter(list.split(' '))
    }

    /// Whether `scope` is granted (exact, case-sensitive match).
    pub fn contains(&self, scope: &str) -> bool {
        self.iter().any(|s| s == scope)
    }

    /// The granted scopes.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
    }

    /// How many scopes are granted.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Whether no scope is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// The scopes as one space-delimited string.
    pub fn as_str(&self) -> &str {
        self.0.as_deref().unwrap_or("")
    }
}

/// Whether `s` is one RFC 6749 §3.3 `scope-token`: `1*( %x21 / %x23-5B / %x5D-7E )`.
pub(crate) fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
}

impl<'a> FromIterator<&'a str> for Scopes {
    /// Each item must be one scope: an item that is not a single RFC 6749 `scope-token`
    /// (empty, or with a space, a quote, a backslash or a control character) is dropped, so
    /// the array item `"read admin"` grants neither `read` nor `admin`.
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut joined = String::new();
        for item in iter {
            if !is_scope_token(item) {
                continue;
            }
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push_str(item);
        }
        Self((!joined.is_empty()).then(|| joined.into()))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Serialize for Scopes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

/// The default claims type: the registered claims (RFC 7519 §4.1, RFC 9068 §2.2) and every
/// other claim in [`extra`](Self::extra).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `iss`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `sub`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `aud`, a string or an array in the token; always a list here.
    #[serde(
        default,
        deserialize_with = "one_or_many",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub aud: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub exp: Option<i64>,
    /// `nbf`, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub nbf: Option<i64>,
    /// `iat`, seconds since the Unix epoch.
    #[serde(
        default,
        deserialize_with = "numeric_date",
        skip_serializing_if = "Option::is_none"
    )]
    pub iat: Option<i64>,
    /// `jti`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `client_id` (RFC 9068, RFC 7662).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Every other claim, `scope`/`scp` included.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

fn numeric_date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let n = f64::deserialize(d)?;
    // Fractional seconds are allowed by RFC 7519; they are truncated here.
    Ok(Some(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_shapes() {
        let table: &[(Scopes, &[&str])] = &[
            (
                Scopes::from_space_delimited("read write"),
                &["read", "write"],
            ),
            (
                Scopes::from_space_delimited("  read   write "),
                &["read", "write"],
            ),
            (Scopes::from_space_delimited(""), &[]),
            (Scopes::from_iter(["read", "write"]), &["read", "write"]),
            // One array item is one scope: an item with a space grants nothing.
            (Scopes::from_iter(["read write", "admin"]), &["admin"]),
            (Scopes::from_iter(["read admin"]), &[]),
            (
                Scopes::from_iter(["re\"ad", "a\\b", "tab\t", "ok"]),
                &["ok"],
            ),
            (
                Scopes::from_space_delimited("read\tadmin write"),
                &["write"],
            ),
            (Scopes::from_iter(["", ""]), &[]),
        ];
        for (scopes, expected) in table {
            assert_eq!(scopes.iter().collect::<Vec<_>>(), *expected);
            assert_eq!(scopes.len(), expected.len());
            assert_eq!(scopes.is_empty(), expected.is_empty());
        }
    }

    #[test]
    fn contains_is_exact() {
        let s = Scopes::from_space_delimited("read:items write");
        assert!(s.contains("read:items"));
        assert!(s.contains("write"));
        assert!(!s.contains("read"));
        assert!(!s.contains("Write"));
        assert!(!s.contains(""));
    }

    #[test]
    fn registered_claims_accept_both_aud_shapes_and_keep_extras() {
        let a: RegisteredClaims =
            serde_json::from_str(r#"{"aud":"x","exp":10.7,"scope":"read","tid":"t"}"#)
                .expect("claims");
        assert_eq!(a.aud, vec!["x".to_owned()]);
        assert_eq!(a.exp, Some(10));
        assert_eq!(a.extra.get("tid").and_then(|v| v.as_str()), Some("t"));
        let b: RegisteredClaims = serde_json::from_str(r#"{"aud":["x","y"]}"#).expect("claims");
        assert_eq!(b.aud, vec!["x".to_owned(), "y".to_owned()]);
        assert!(serde_json::from_str::<RegisteredClaims>(r#"{"exp":"10"}"#).is_err());
    }
}
