//! The claim rules shared by JWT validation and introspection answers: the strict reading
//! of the claims validation needs, the time rules, the audience rule and where scopes come
//! from.
//!
//! Validation reads the claims once ([`read`]): the typed claims, the members validation
//! needs ([`ClaimsView`]) and the authorities come out of one pass over the payload.

use std::{borrow::Cow, convert::identity, fmt, sync::Arc, time::Duration};

use serde::de::{
    self, Deserialize as _, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess,
    Visitor,
};

mod one_pass;

pub(crate) use one_pass::{Read, read};

use crate::{
    clock::system_time,
    error::AuthError,
    principal::{Principal, Scopes, UserAuthentication},
};

/// Default clock leeway for `exp`, `nbf` and `iat`: 30 seconds.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The largest leeway a builder accepts: 5 minutes.
pub const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Which claim carries the scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ScopeClaim {
    /// `scope` (space-delimited), else `scp` (string or array).
    Default,
    /// One named claim, a space-delimited string or an array.
    Named(Box<str>),
}

impl ScopeClaim {
    pub(crate) fn scopes(&self, view: &ClaimsView<'_>) -> Scopes {
        let list = match self {
            Self::Default => view.scope.as_ref().or(view.scp.as_ref()),
            Self::Named(_) => view.scope.as_ref(),
        };
        match list {
            None => Scopes::default(),
            Some(StrList::One(s)) => Scopes::from_space_delimited(s),
            Some(StrList::Many(v)) => v.iter().map(|s| s.as_ref()).collect(),
        }
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
pub(crate) struct Str<'de>(pub(crate) Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, kept when it is a string (`tid`: only a string can match a tenant).
struct AnyStr<'de>(Option<Cow<'de, str>>);

impl<'de> de::Deserialize<'de> for AnyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AnyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(AnyStr(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(AnyStr(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(AnyStr(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AnyStr(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A string or an array of strings (`aud`, `scp`).
#[derive(Debug, PartialEq)]
pub(crate) enum StrList<'de> {
    One(Cow<'de, str>),
    Many(Vec<Cow<'de, str>>),
}

impl StrList<'_> {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            Self::One(s) => (Some(s.as_ref()), &[][..]),
            Self::Many(v) => (None, v.as_slice()),
        };
        one.into_iter().chain(many.iter().map(|s| s.as_ref()))
    }
}

impl<'de> de::Deserialize<'de> for StrList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(StrList::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(StrList::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(Str(s)) = seq.next_element()? {
                    items.push(s);
                }
                Ok(StrList::Many(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// A NumericDate (RFC 7519 §2): a JSON number, never a string or null.
struct NumericDate(f64);

impl<'de> de::Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = NumericDate;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number of seconds")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(NumericDate(v as f64))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(NumericDate(v as f64))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(NumericDate(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The claims validation reads.
#[derive(Debug, Default)]
pub(crate) struct ClaimsView<'de> {
    pub(crate) iss: Option<Cow<'de, str>>,
    pub(crate) sub: Option<Cow<'de, str>>,
    pub(crate) aud: Option<StrList<'de>>,
    pub(crate) exp: Option<f64>,
    pub(crate) nbf: Option<f64>,
    pub(crate) iat: Option<f64>,
    /// The configured scope claim, or `scope` by default.
    pub(crate) scope: Option<StrList<'de>>,
    pub(crate) scp: Option<StrList<'de>>,
    pub(crate) active: Option<bool>,
    /// RFC 7662 `token_type`.
    pub(crate) token_type: Option<Cow<'de, str>>,
    /// The `cnf` (RFC 7800 confirmation) claim of a sender-constrained token.
    pub(crate) cnf: Option<crate::confirmation::Confirmation>,
    /// Whether a claim marks an ID token or a refresh token rather than an access token:
    /// see [`ClaimsView::not_an_access_token`].
    pub(crate) nonce: bool,
    pub(crate) id_token_hash: bool,
    /// The payload's own `typ` claim (Keycloak: `Bearer`, `ID`, `Refresh`, `Offline`).
    pub(crate) typ: Option<Cow<'de, str>>,
    /// `acr`, the authentication context class (OpenID Connect Core §2, RFC 9470).
    pub(crate) acr: Option<Cow<'de, str>>,
    /// `auth_time`, when the user last authenticated actively.
    pub(crate) auth_time: Option<f64>,
    /// `tid`, the tenant of a multi-tenant issuer, when it is a string.
    pub(crate) tid: Option<Cow<'de, str>>,
    /// Whether a `tid` member was read (of any type): a second one is refused.
    pub(crate) tid_seen: bool,
}

impl ClaimsView<'_> {
    /// The principal of a token (or introspection answer) that passed every check, with
    /// these claims: subject, scopes (read as `scope_claim` says), expiry, the user's
    /// authentication and the `cnf` binding, which the layer checks against the request.
    pub(crate) fn into_principal<C>(
        self,
        issuer: Arc<str>,
        scope_claim: &ScopeClaim,
        claims: C,
    ) -> Principal<C> {
        let scopes = scope_claim.scopes(&self);
        let user =
            UserAuthentication::new(self.acr.as_deref(), self.auth_time.and_then(system_time));
        Principal::new_confirmed(
            issuer,
            self.sub.map(|s| s.into_owned().into_boxed_str()),
            scopes,
            self.exp.and_then(system_time),
            user,
            claims,
            self.cnf,
        )
    }

    /// Whether the claims mark an OpenID Connect ID token (or a Keycloak refresh token), not
    /// an access token: `at_hash`, `c_hash` or `s_hash` (ID-token-only hashes, OIDC Core
    /// §3.1.3.6, §3.3.2.11, FAPI), a `typ` claim of `ID`, `Refresh` or `Offline`
    /// (Keycloak), or `nonce` (OIDC Core §2) unless the payload's `typ` is `Bearer`
    /// (Keycloak before version 25 also copied `nonce` into its access tokens).
    pub(crate) fn not_an_access_token(&self) -> bool {
        let typ = self.typ.as_deref();
        let is = |name: &str| typ.is_some_and(|t| t.eq_ignore_ascii_case(name));
        self.id_token_hash
            || is("ID")
            || is("Refresh")
            || is("Offline")
            || (self.nonce && !is("Bearer"))
    }
}

/// A member of the claims object that validation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Member {
    Iss,
    Sub,
    Aud,
    Exp,
    Nbf,
    Iat,
    Active,
    TokenType,
    Cnf,
    Typ,
    Nonce,
    IdTokenHash,
    Acr,
    AuthTime,
    Tid,
    Scope,
    Scp,
}

impl Member {
    /// The member `name` stands for, when validation reads it.
    pub(crate) fn of(name: &str, scope_claim: &ScopeClaim) -> Option<Self> {
        let named = match scope_claim {
            ScopeClaim::Default => "scope",
            ScopeClaim::Named(n) => n,
        };
        Some(match name {
            "iss" => Self::Iss,
            "sub" => Self::Sub,
            "aud" => Self::Aud,
            "exp" => Self::Exp,
            "nbf" => Self::Nbf,
            "iat" => Self::Iat,
            "active" => Self::Active,
            "token_type" => Self::TokenType,
            "cnf" => Self::Cnf,
            "typ" => Self::Typ,
            "nonce" => Self::Nonce,
            "at_hash" | "c_hash" | "s_hash" => Self::IdTokenHash,
            "acr" => Self::Acr,
            "auth_time" => Self::AuthTime,
            "tid" => Self::Tid,
            k if k == named => Self::Scope,
            "scp" if *scope_claim == ScopeClaim::Default => Self::Scp,
            _ => return None,
        })
    }

    /// Whether only the member's presence counts, not its value.
    pub(crate) fn is_marker(self) -> bool {
        matches!(self, Self::Nonce | Self::IdTokenHash)
    }

    /// Whether the value may be a JSON object (`cnf`, and `tid`, which takes any value).
    pub(crate) fn takes_objects(self) -> bool {
        matches!(self, Self::Cnf | Self::Tid)
    }
}

/// Reads a member's value from `d` as `T` into `slot`, as `into` turns it; a second value
/// for the same member is refused.
fn set<'de, T, U, D>(
    slot: &mut Option<U>,
    d: D,
    name: &'static str,
    into: impl FnOnce(T) -> U,
) -> Result<(), D::Error>
where
    T: de::Deserialize<'de>,
    D: Deserializer<'de>,
{
    if slot.is_some() {
        return Err(de::Error::duplicate_field(name));
    }
    *slot = Some(into(T::deserialize(d)?));
    Ok(())
}

impl<'de> ClaimsView<'de> {
    /// Reads one member's value from `d`: a duplicate of a member, or a wrong type for it,
    /// is an error.
    pub(crate) fn read<D: Deserializer<'de>>(
        &mut self,
        member: Member,
        d: D,
    ) -> Result<(), D::Error> {
        let text = |Str(s)| s;
        let date = |NumericDate(t)| t;
        match member {
            Member::Iss => set(&mut self.iss, d, "iss", text),
            Member::Sub => set(&mut self.sub, d, "sub", text),
            Member::Aud => set(&mut self.aud, d, "aud", identity),
            Member::Exp => set(&mut self.exp, d, "exp", date),
            Member::Nbf => set(&mut self.nbf, d, "nbf", date),
            Member::Iat => set(&mut self.iat, d, "iat", date),
            Member::Active => set(&mut self.active, d, "active", identity),
            Member::TokenType => set(&mut self.token_type, d, "token_type", text),
            Member::Cnf => set(&mut self.cnf, d, "cnf", identity),
            Member::Typ => set(&mut self.typ, d, "typ", text),
            Member::Nonce => {
                self.nonce = true;
                IgnoredAny::deserialize(d).map(drop)
            }
            Member::IdTokenHash => {
                self.id_token_hash = true;
                IgnoredAny::deserialize(d).map(drop)
            }
            Member::Acr => set(&mut self.acr, d, "acr", text),
            Member::AuthTime => set(&mut self.auth_time, d, "auth_time", date),
            Member::Tid => {
                if self.tid_seen {
                    return Err(de::Error::duplicate_field("tid"));
                }
                self.tid_seen = true;
                self.tid = AnyStr::deserialize(d)?.0;
                Ok(())
            }
            Member::Scope => set(&mut self.scope, d, "scope", identity),
            Member::Scp => set(&mut self.scp, d, "scp", identity),
        }
    }
}

/// Reads a [`ClaimsView`] from a JSON object; anything but an object, a duplicate of a
/// claim it reads, or a wrong type for one is an error.
pub(crate) struct ClaimsSeed<'s> {
    pub(crate) scope_claim: &'s ScopeClaim,
}

impl<'de> DeserializeSeed<'de> for ClaimsSeed<'_> {
    type Value = ClaimsView<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// One member's value, read into a view.
struct MemberSeed<'v, 'de> {
    view: &'v mut ClaimsView<'de>,
    member: Member,
}

impl<'de> DeserializeSeed<'de> for MemberSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        self.view.read(self.member, d)
    }
}

impl<'de> Visitor<'de> for ClaimsSeed<'_> {
    type Value = ClaimsView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut view = ClaimsView::default();
        while let Some(Str(key)) = map.next_key::<Str<'de>>()? {
            match Member::of(&key, self.scope_claim) {
                Some(member) => map.next_value_seed(MemberSeed {
                    view: &mut view,
                    member,
                })?,
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(view)
    }
}

pub(crate) fn parse<'de>(
    json: &'de [u8],
    scope_claim: &ScopeClaim,
) -> Result<ClaimsView<'de>, AuthError> {
    let malformed = || AuthError::invalid_token("the token's claims are malformed");
    // JSON is UTF-8 (RFC 8259 §8.1, RFC 7519 §7.2); serde_json checks it only in the strings
    // it reads, not in the members it skips.
    let json = std::str::from_utf8(json).map_err(|_| malformed())?;
    let mut de = serde_json::Deserializer::from_str(json);
    let view = ClaimsSeed { scope_claim }
        .deserialize(&mut de)
        .and_then(|v| de.end().map(|()| v))
        .map_err(|_| malformed())?;
    Ok(view)
}

/// Time and audience rules shared by JWT validation and introspection answers.
#[derive(Clone, Debug)]
pub(crate) struct TimeRules {
    pub(crate) leeway: f64,
}

impl TimeRules {
    /// `exp` not past, `nbf` and `iat` not in the future, each with the leeway.
    pub(crate) fn check(
        &self,
        view: &ClaimsView<'_>,
        now: f64,
        exp_required: bool,
    ) -> Result<(), AuthError> {
        match view.exp {
            Some(exp) if now > exp + self.leeway => {
                return Err(AuthError::invalid_token("the token has expired"));
            }
            None if exp_required => {
                return Err(AuthError::invalid_token("the token has no expiry"));
            }
            _ => {}
        }
        if view.nbf.is_some_and(|nbf| nbf > now + self.leeway) {
            return Err(AuthError::invalid_token("the token is not valid yet"));
        }
        if view.iat.is_some_and(|iat| iat > now + self.leeway) {
            return Err(AuthError::invalid_token(
                "the token was issued in the future",
            ));
        }
        Ok(())
    }
}

/// Whether any of the token's audiences is one of `expected`.
/// The claim rules a builder collects (audiences, leeway, scope claim), shared by the `Jwt`
/// and `Introspection` builders, whose setters delegate here.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRules {
    pub(crate) audiences: Vec<String>,
    pub(crate) leeway: Duration,
    pub(crate) scope_claim: ScopeClaim,
}

impl Default for ClaimRules {
    fn default() -> Self {
        Self {
            audiences: Vec::new(),
            leeway: DEFAULT_LEEWAY,
            scope_claim: ScopeClaim::Default,
        }
    }
}

/// [`ClaimRules`], checked.
#[derive(Debug)]
pub(crate) struct CheckedClaimRules {
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) time: TimeRules,
    pub(crate) scope_claim: ScopeClaim,
}

impl ClaimRules {
    pub(crate) fn audience(&mut self, audience: String) {
        self.audiences.push(audience);
    }

    pub(crate) fn scope_claim(&mut self, name: String) {
        self.scope_claim = ScopeClaim::Named(name.into_boxed_str());
    }

    /// Checks the rules: no empty audience, at least one when `audience_required`, a leeway
    /// of at most [`MAX_LEEWAY`], a non-empty scope claim name.
    pub(crate) fn check(
        self,
        audience_required: bool,
    ) -> Result<CheckedClaimRules, crate::error::ConfigError> {
        use crate::error::ConfigError;
        if self.audiences.iter().any(String::is_empty)
            || (audience_required && self.audiences.is_empty())
        {
            return Err(ConfigError::new(
                "at least one non-empty audience is required",
            ));
        }
        if self.leeway > MAX_LEEWAY {
            return Err(ConfigError::new("the leeway may not exceed 5 minutes"));
        }
        if let ScopeClaim::Named(name) = &self.scope_claim
            && name.is_empty()
        {
            return Err(ConfigError::new("the scope claim name is empty"));
        }
        Ok(CheckedClaimRules {
            audiences: self
                .audiences
                .into_iter()
                .map(String::into_boxed_str)
                .collect(),
            time: TimeRules {
                leeway: self.leeway.as_secs_f64(),
            },
            scope_claim: self.scope_claim,
        })
    }
}

pub(crate) fn audience_matches(aud: Option<&StrList<'_>>, expected: &[Box<str>]) -> bool {
    aud.is_some_and(|aud| aud.iter().any(|a| expected.iter().any(|e| **e == *a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(json: &str) -> Result<ClaimsView<'_>, AuthError> {
        parse(json.as_bytes(), &ScopeClaim::Default)
    }

    #[test]
    fn shapes_that_parse() {
        let v = view(r#"{"iss":"i","sub":"s","aud":"a","exp":10,"nbf":1.5,"iat":1,"scope":"read write","x":{"y":[1]}}"#)
            .expect("view");
        assert_eq!(v.iss.as_deref(), Some("i"));
        assert_eq!(v.aud, Some(StrList::One("a".into())));
        assert_eq!(v.exp, Some(10.0));
        assert_eq!(v.nbf, Some(1.5));
        let v = view(r#"{"aud":["a","b"],"scp":["read","write"]}"#).expect("view");
        assert_eq!(v.aud.as_ref().map(|a| a.iter().count()), Some(2));
        assert_eq!(
            ScopeClaim::Default.scopes(&v).iter().collect::<Vec<_>>(),
            ["read", "write"]
        );
        let v = view(r#"{"iss":"a\/b\u0041"}"#).expect("escaped");
        assert_eq!(v.iss.as_deref(), Some("a/bA"));
        let v = view(r#"{"acr":"urn:mace:incommon:iap:silver","auth_time":1700000000}"#)
            .expect("step-up claims");
        assert_eq!(v.acr.as_deref(), Some("urn:mace:incommon:iap:silver"));
        assert_eq!(v.auth_time, Some(1_700_000_000.0));
    }

    #[test]
    fn scope_claim_shapes() {
        let table: &[(&str, ScopeClaim, &[&str])] = &[
            (
                r#"{"scope":"read write"}"#,
                ScopeClaim::Default,
                &["read", "write"],
            ),
            (
                r#"{"scp":"read write"}"#,
                ScopeClaim::Default,
                &["read", "write"],
            ),
            (
                r#"{"scp":["read","write"]}"#,
                ScopeClaim::Default,
                &["read", "write"],
            ),
            (r#"{"scope":"a","scp":["b"]}"#, ScopeClaim::Default, &["a"]),
            (r#"{}"#, ScopeClaim::Default, &[]),
            (
                r#"{"roles":["admin"],"scope":"read"}"#,
                ScopeClaim::Named("roles".into()),
                &["admin"],
            ),
            (
                r#"{"scp":["admin"]}"#,
                ScopeClaim::Named("roles".into()),
                &[],
            ),
        ];
        for (json, claim, expected) in table {
            let v = parse(json.as_bytes(), claim).expect(json);
            assert_eq!(
                claim.scopes(&v).iter().collect::<Vec<_>>(),
                *expected,
                "{json}"
            );
        }
    }

    #[test]
    fn shapes_that_are_rejected() {
        let bad = [
            r#"[]"#,
            r#""claims""#,
            r#"42"#,
            r#"null"#,
            r#"{"exp":"10"}"#,
            r#"{"exp":null}"#,
            r#"{"exp":true}"#,
            r#"{"nbf":"1"}"#,
            r#"{"iat":[1]}"#,
            r#"{"iss":5}"#,
            r#"{"iss":null}"#,
            r#"{"aud":5}"#,
            r#"{"aud":[5]}"#,
            r#"{"aud":{"a":1}}"#,
            r#"{"sub":1}"#,
            r#"{"scope":1}"#,
            r#"{"scp":[1]}"#,
            r#"{"iss":"a","iss":"b"}"#,
            r#"{"exp":1,"exp":2}"#,
            r#"{"acr":1}"#,
            r#"{"acr":["a"]}"#,
            r#"{"acr":"a","acr":"b"}"#,
            r#"{"auth_time":"1700000000"}"#,
            r#"{"auth_time":null}"#,
            r#"{"auth_time":1,"auth_time":2}"#,
            r#"{"aud":"a"} trailing"#,
            r#"{"aud":"a""#,
            "",
        ];
        for json in bad {
            assert!(view(json).is_err(), "{json} should be rejected");
        }
    }

    #[test]
    fn claims_that_are_not_utf8_are_rejected() {
        // Found by `proptests::mutated_claims`: invalid UTF-8 in a member the parser skips
        // was accepted.
        let bad: &[&[u8]] = &[
            b"{\"exp\":1,\"x\":\"\xff\"}",
            b"{\"exp\":1,\"x\":[\"a\xc3\"]}",
        ];
        for json in bad {
            assert!(parse(json, &ScopeClaim::Default).is_err(), "{json:?}");
        }
        assert!(
            parse(
                "{\"exp\":1,\"x\":\"\u{e9}\"}".as_bytes(),
                &ScopeClaim::Default
            )
            .is_ok()
        );
    }

    #[test]
    fn time_rules() {
        let rules = TimeRules { leeway: 30.0 };
        let now = 1_000_000.0;
        let check = |json: &str| rules.check(&view(json).expect(json), now, true).is_ok();
        assert!(check(r#"{"exp":1000100}"#));
        assert!(check(r#"{"exp":999990}"#), "inside the leeway");
        assert!(!check(r#"{"exp":999960}"#), "past the leeway");
        assert!(!check(r#"{}"#), "exp required");
        assert!(check(r#"{"exp":1000100,"nbf":1000020}"#));
        assert!(!check(r#"{"exp":1000100,"nbf":1000040}"#));
        assert!(check(r#"{"exp":1000100,"iat":1000020}"#));
        assert!(!check(r#"{"exp":1000100,"iat":1000040}"#));
        assert!(rules.check(&view("{}").expect("view"), now, false).is_ok());
    }

    #[test]
    fn audience_table() {
        let expected: Vec<Box<str>> = vec!["api".into(), "api2".into()];
        let table = [
            (r#"{"aud":"api"}"#, true),
            (r#"{"aud":["x","api2"]}"#, true),
            (r#"{"aud":"API"}"#, false),
            (r#"{"aud":"api/"}"#, false),
            (r#"{"aud":[]}"#, false),
            (r#"{}"#, false),
        ];
        for (json, ok) in table {
            let v = view(json).expect(json);
            assert_eq!(audience_matches(v.aud.as_ref(), &expected), ok, "{json}");
        }
    }
}
