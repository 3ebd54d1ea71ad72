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
    /// The `kid` of the key that verified the token (JWT only), shared with the key set.
    key_id: Option<Arc<str>>,
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
                key_id: None,
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

    /// The issuer, shared.
    pub(crate) fn issuer_shared(&self) -> &Arc<str> {
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

    /// Sets the `kid` of the key that verified the token, on a principal just built (not yet
    /// shared): a reference count, no copy.
    pub(crate) fn with_key_id(mut self, key_id: Option<&Arc<str>>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.key_id = key_id.cloned();
        }
        self
    }

    /// The `kid` of the key that verified the token; `None` for a key without one and for
    /// an introspected token.
    pub(crate) fn key_id(&self) -> Option<&str> {
        self.inner.key_id.as_deref()
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
        // Already as kept (scope-tokens, one space apart), as issuers write it: one copy.
        if list.split(' ').all(is_scope_token) {
            return Self(Some(Arc::from(list)));
        }
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
///
/// Deserialized in one pass over the JSON object: `aud` as a string or an array of strings,
/// the dates as numbers (fractions truncated), a repeated registered claim refused.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RegisteredClaims {
    /// `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// `sub`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// `aud`, a string or an array in the token; always a list here.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// `exp`, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// `nbf`, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// `iat`, seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// `jti`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// `client_id` (RFC 9068, RFC 7662).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Every other claim, `scope`/`scp` included.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for RegisteredClaims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(registered::ClaimsVisitor)
    }
}

/// The one-pass reading of [`RegisteredClaims`]: member names matched without allocating,
/// other members read straight into `extra` (serde's `flatten` would buffer them all first).
mod registered {
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    use super::RegisteredClaims;

    enum Field {
        Iss,
        Sub,
        Aud,
        Exp,
        Nbf,
        Iat,
        Jti,
        ClientId,
        Other(String),
    }

    struct FieldVisitor;

    impl Visitor<'_> for FieldVisitor {
        type Value = Field;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a claim name")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<Field, E> {
            Ok(match name {
                "iss" => Field::Iss,
                "sub" => Field::Sub,
                "aud" => Field::Aud,
                "exp" => Field::Exp,
                "nbf" => Field::Nbf,
                "iat" => Field::Iat,
                "jti" => Field::Jti,
                "client_id" => Field::ClientId,
                other => Field::Other(other.to_owned()),
            })
        }
    }

    impl<'de> Deserialize<'de> for Field {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_identifier(FieldVisitor)
        }
    }

    /// `aud`: one string, or an array of strings.
    struct Audience(Vec<String>);

    impl<'de> Deserialize<'de> for Audience {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct AudienceVisitor;

            impl<'de> Visitor<'de> for AudienceVisitor {
                type Value = Audience;

                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a string or an array of strings")
                }

                fn visit_str<E: de::Error>(self, one: &str) -> Result<Audience, E> {
                    Ok(Audience(vec![one.to_owned()]))
                }

                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Audience, A::Error> {
                    let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
                    while let Some(one) = seq.next_element()? {
                        all.push(one);
                    }
                    Ok(Audience(all))
                }
            }

            d.deserialize_any(AudienceVisitor)
        }
    }

    /// Stores the next value in `slot`, refusing a second one.
    fn once<'de, T, A>(
        slot: &mut Option<T>,
        map: &mut A,
        name: &'static str,
    ) -> Result<(), A::Error>
    where
        T: Deserialize<'de>,
        A: MapAccess<'de>,
    {
        if slot.is_some() {
            return Err(de::Error::duplicate_field(name));
        }
        *slot = Some(map.next_value()?);
        Ok(())
    }

    /// A NumericDate in whole seconds: fractions truncated (RFC 7519 allows them).
    fn date(seconds: Option<f64>) -> Option<i64> {
        seconds.map(|s| s as i64)
    }

    pub(super) struct ClaimsVisitor;

    impl<'de> Visitor<'de> for ClaimsVisitor {
        type Value = RegisteredClaims;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of claims")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RegisteredClaims, A::Error> {
            let (mut iss, mut sub, mut jti, mut client_id) = (None, None, None, None);
            let (mut exp, mut nbf, mut iat) = (None::<f64>, None::<f64>, None::<f64>);
            let mut aud: Option<Audience> = None;
            let mut extra = serde_json::Map::new();
            // `null` reads as absent for the string claims, as `Option` does.
            while let Some(field) = map.next_key::<Field>()? {
                match field {
                    Field::Iss => once::<Option<String>, _>(&mut iss, &mut map, "iss")?,
                    Field::Sub => once::<Option<String>, _>(&mut sub, &mut map, "sub")?,
                    Field::Jti => once::<Option<String>, _>(&mut jti, &mut map, "jti")?,
                    Field::ClientId => {
                        once::<Option<String>, _>(&mut client_id, &mut map, "client_id")?
                    }
                    Field::Aud => once(&mut aud, &mut map, "aud")?,
                    Field::Exp => once(&mut exp, &mut map, "exp")?,
                    Field::Nbf => once(&mut nbf, &mut map, "nbf")?,
                    Field::Iat => once(&mut iat, &mut map, "iat")?,
                    Field::Other(name) => {
                        extra.insert(name, map.next_value()?);
                    }
                }
            }
            Ok(RegisteredClaims {
                iss: iss.flatten(),
                sub: sub.flatten(),
                aud: aud.map(|a| a.0).unwrap_or_default(),
                exp: date(exp),
                nbf: date(nbf),
                iat: date(iat),
                jti: jti.flatten(),
                client_id: client_id.flatten(),
                extra,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_space_delimited_list_reads_as_its_items() {
        // The list as issuers write it is kept as it is; any other list is read item by
        // item; both give what the items give.
        for list in [
            "read write",
            "orders:read orders:write profile",
            "a",
            "",
            " ",
            " read",
            "read ",
            "read  write",
            "read \"x\" write",
            "read\twrite",
            "r\u{e9}ad write",
            "read \\ write",
        ] {
            let items: Scopes = list.split(' ').collect();
            let got = Scopes::from_space_delimited(list);
            assert_eq!(got.as_str(), items.as_str(), "{list:?}");
            assert_eq!(got.is_empty(), items.is_empty(), "{list:?}");
        }
    }

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
