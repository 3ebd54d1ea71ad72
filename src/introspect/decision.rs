//! The RFC 7662 decision: what an introspection answer means for the request. Pure: no
//! I/O, no clock of its own, no cache.

use std::{borrow::Cow, sync::Arc, time::Duration};

use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    authorities::AuthorityClaims,
    claims::{self, ScopeClaim, TimeRules},
    error::AuthError,
    principal::Principal,
};

/// The rules an answer is held to; fixed at `build()`.
#[derive(Debug)]
pub(super) struct Rules {
    pub(super) issuer: Arc<str>,
    /// Empty only with `dangerous_accept_any_audience`.
    pub(super) audiences: Box<[Box<str>]>,
    pub(super) accept_missing_aud: bool,
    pub(super) time: TimeRules,
    pub(super) scope_claim: ScopeClaim,
    /// Where roles and other authorities are read from, if anywhere.
    pub(super) authorities: AuthorityClaims,
    /// Longest life of a cached active answer.
    pub(super) max_ttl: Duration,
}

/// An active answer: the principal, and how long the answer may be reused.
pub(super) struct Active<C> {
    pub(super) principal: Principal<C>,
    pub(super) ttl: Duration,
}

impl<C> Clone for Active<C> {
    fn clone(&self) -> Self {
        Self {
            principal: self.principal.clone(),
            ttl: self.ttl,
        }
    }
}

/// `token_type` values of a bearer access token (compared ignoring ASCII case).
const ACCESS_TOKEN_TYPES: [&str; 3] = [
    "bearer",
    "access_token",
    "urn:ietf:params:oauth:token-type:access_token",
];

/// `token_use` values of an access token (Ory Hydra, Amazon Cognito).
const ACCESS_TOKEN_USES: [&str; 2] = ["access_token", "access"];

/// `typ` values of Keycloak's refresh and offline tokens (compared ignoring ASCII case).
const REFRESH_TYPS: [&str; 2] = ["refresh", "offline"];

/// The members beyond [`claims::ClaimsView`] that say what kind of token was introspected.
#[derive(Deserialize)]
struct Markers<'a> {
    #[serde(borrow, default)]
    token_use: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
}

/// Decides what `body` (a JSON introspection answer) means at the time `now` (seconds
/// since the epoch).
///
/// Refused, besides inactive, malformed, expired, foreign-issuer and wrong-audience
/// answers: anything that is not a bearer access token, namely
/// - a `token_type` other than `Bearer`, `access_token` or
///   `urn:ietf:params:oauth:token-type:access_token` (so `refresh_token`,
///   `urn:ietf:params:oauth:token-type:refresh_token`, `N_A`, …), except `DPoP` when a `cnf`
///   names the proof key (RFC 9449 §6.2);
/// - a `token_use` other than `access_token`/`access` (e.g. `refresh_token`, `id`);
/// - a `typ` of `Refresh` or `Offline` (Keycloak's refresh tokens);
/// - an answer with neither `token_type` nor `aud` (what some providers, the reference
///   `oidc-provider` among them, answer for a refresh token): the audience waivers
///   (`dangerous_accept_any_audience`, `dangerous_accept_missing_audience`) only apply to
///   answers whose `token_type` says they are access tokens.
///
/// A `cnf` binding travels with the principal; the layer checks it against the request.
pub(super) fn decide<C: DeserializeOwned>(
    body: &[u8],
    rules: &Rules,
    now: f64,
) -> Result<Active<C>, AuthError> {
    let malformed = || AuthError::invalid_token("the introspection answer is malformed");
    let claims::Read {
        view,
        claims,
        authorities,
        ..
    } = claims::read::<C>(body, &rules.scope_claim, &rules.authorities).map_err(|_| malformed())?;
    if view.active != Some(true) {
        return Err(AuthError::invalid_token("the token is not active"));
    }
    let markers: Markers<'_> = serde_json::from_slice(body).map_err(|_| malformed())?;
    let not_access = || AuthError::invalid_token("the token is not a bearer access token");
    let is_one_of = |value: &str, list: &[&str]| list.iter().any(|t| value.eq_ignore_ascii_case(t));
    let names_proof_key = view
        .cnf
        .as_ref()
        .is_some_and(|c| c.jwk_thumbprint().is_some());
    let typed_access = match view.token_type.as_deref() {
        Some(t) if is_one_of(t, &ACCESS_TOKEN_TYPES) => true,
        Some(t) if t.eq_ignore_ascii_case("dpop") && names_proof_key => true,
        Some(_) => return Err(not_access()),
        None => false,
    };
    if markers
        .token_use
        .as_deref()
        .is_some_and(|u| !is_one_of(u, &ACCESS_TOKEN_USES))
        || markers
            .typ
            .as_deref()
            .is_some_and(|t| is_one_of(t, &REFRESH_TYPS))
    {
        return Err(not_access());
    }
    if view.iss.as_deref().is_some_and(|iss| iss != &*rules.issuer) {
        return Err(AuthError::invalid_token(
            "the token's issuer is not trusted",
        ));
    }
    let audience_ok = if view.aud.is_none() && !typed_access {
        // Nothing in the answer tells an access token from a refresh token.
        false
    } else if rules.audiences.is_empty() {
        true
    } else {
        (view.aud.is_none() && rules.accept_missing_aud)
            || claims::audience_matches(view.aud.as_ref(), &rules.audiences)
    };
    if !audience_ok {
        return Err(AuthError::invalid_token(
            "the token is not meant for this audience",
        ));
    }
    rules.time.check(&view, now, false)?;
    let claims = claims?;
    // Reused up to the token's `exp` (without the leeway), and never past the max TTL.
    let ttl = match view.exp {
        Some(exp) if exp <= now => Duration::ZERO,
        Some(exp) => Duration::try_from_secs_f64(exp - now)
            .map_or(rules.max_ttl, |left| left.min(rules.max_ttl)),
        None => rules.max_ttl,
    };
    let authorities = authorities?;
    Ok(Active {
        ttl,
        principal: view
            .into_principal(Arc::clone(&rules.issuer), &rules.scope_claim, claims)
            .with_authorities(authorities),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::RegisteredClaims;

    const NOW: f64 = 1_700_000_000.0;

    fn rules(audiences: &[&str], accept_missing_aud: bool) -> Rules {
        Rules {
            issuer: "https://idp.example".into(),
            audiences: audiences.iter().map(|a| (*a).into()).collect(),
            accept_missing_aud,
            time: TimeRules { leeway: 30.0 },
            scope_claim: ScopeClaim::Default,
            authorities: AuthorityClaims::default(),
            max_ttl: Duration::from_secs(60),
        }
    }

    /// `None` when the answer is accepted, else the refusal's description.
    fn outcome(body: &str, rules: &Rules) -> Option<String> {
        decide::<RegisteredClaims>(body.as_bytes(), rules, NOW)
            .err()
            .map(|e| e.description().to_owned())
    }

    #[test]
    fn decision_table() {
        let api = rules(&["api"], false);
        let any = rules(&[], false);
        let missing = rules(&["api"], true);
        const NOT_ACCESS: &str = "the token is not a bearer access token";
        const AUD: &str = "the token is not meant for this audience";
        let table: &[(&str, &Rules, Option<&str>)] = &[
            (r#"{"active":true,"aud":"api"}"#, &api, None),
            (
                r#"{"active":true,"aud":["x","api"],"token_type":"Bearer"}"#,
                &api,
                None,
            ),
            (
                r#"{"active":true,"aud":"api","token_type":"access_token"}"#,
                &api,
                None,
            ),
            (
                r#"{"active":true,"aud":"api","token_type":"urn:ietf:params:oauth:token-type:access_token"}"#,
                &api,
                None,
            ),
            (
                r#"{"active":true,"aud":"api","token_use":"access_token","typ":"Bearer"}"#,
                &api,
                None,
            ),
            (
                r#"{"active":false,"aud":"api"}"#,
                &api,
                Some("the token is not active"),
            ),
            (r#"{"aud":"api"}"#, &api, Some("the token is not active")),
            (
                r#"{"active":"true","aud":"api"}"#,
                &api,
                Some("the introspection answer is malformed"),
            ),
            (
                r#"[1]"#,
                &api,
                Some("the introspection answer is malformed"),
            ),
            // Refresh tokens, by every marker.
            (
                r#"{"active":true,"aud":"api","token_type":"refresh_token"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","token_type":"urn:ietf:params:oauth:token-type:refresh_token"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","token_use":"refresh_token"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","typ":"Refresh"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","typ":"Offline"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","token_use":"id"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","token_type":"N_A"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                r#"{"active":true,"aud":"api","token_use":7}"#,
                &api,
                Some("the introspection answer is malformed"),
            ),
            // Sender-constrained: a DPoP token names its proof key (RFC 9449 §6.2); the binding
            // travels with the principal and the layer checks it.
            (
                r#"{"active":true,"aud":"api","token_type":"DPoP","cnf":{"jkt":"x"}}"#,
                &api,
                None,
            ),
            (
                r#"{"active":true,"aud":"api","token_type":"DPoP"}"#,
                &api,
                Some(NOT_ACCESS),
            ),
            (
                // A confirmation that names no key is malformed (see `claims`).
                r#"{"active":true,"aud":"api","token_type":"Bearer","cnf":{}}"#,
                &api,
                Some("the introspection answer is malformed"),
            ),
            // Issuer and audience.
            (
                r#"{"active":true,"aud":"api","iss":"https://other"}"#,
                &api,
                Some("the token's issuer is not trusted"),
            ),
            (r#"{"active":true,"aud":"other"}"#, &api, Some(AUD)),
            (
                r#"{"active":true,"aud":[],"token_type":"Bearer"}"#,
                &missing,
                Some(AUD),
            ),
            (r#"{"active":true,"token_type":"Bearer"}"#, &api, Some(AUD)),
            (r#"{"active":true,"token_type":"Bearer"}"#, &missing, None),
            (r#"{"active":true,"token_type":"Bearer"}"#, &any, None),
            (r#"{"active":true,"aud":"whatever"}"#, &any, None),
            // Neither a type nor an audience: what a refresh token looks like at some
            // providers; no waiver applies.
            (r#"{"active":true,"scope":"read"}"#, &any, Some(AUD)),
            (r#"{"active":true,"scope":"read"}"#, &missing, Some(AUD)),
            // Time.
            (
                r#"{"active":true,"aud":"api","exp":1699999900}"#,
                &api,
                Some("the token has expired"),
            ),
            (
                r#"{"active":true,"aud":"api","exp":1699999990}"#,
                &api,
                None,
            ),
            (
                r#"{"active":true,"aud":"api","nbf":1700000100}"#,
                &api,
                Some("the token is not valid yet"),
            ),
        ];
        for (body, rules, expected) in table {
            assert_eq!(outcome(body, rules).as_deref(), *expected, "{body}");
        }
    }

    #[test]
    fn reuse_is_bounded_by_exp_and_the_max_ttl() {
        let api = rules(&["api"], false);
        let ttl = |body: &str| {
            decide::<RegisteredClaims>(body.as_bytes(), &api, NOW)
                .map(|a| a.ttl)
                .ok()
        };
        assert_eq!(
            ttl(r#"{"active":true,"aud":"api","exp":1700000010}"#),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            ttl(r#"{"active":true,"aud":"api","exp":1800000000}"#),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            ttl(r#"{"active":true,"aud":"api"}"#),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            ttl(r#"{"active":true,"aud":"api","exp":1699999995}"#),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn the_principal_carries_issuer_subject_and_scopes() {
        let api = rules(&["api"], false);
        let active = decide::<RegisteredClaims>(
            br#"{"active":true,"aud":"api","sub":"alice","scope":"read write"}"#,
            &api,
            NOW,
        )
        .map_err(|e| e.description().to_owned())
        .expect("active");
        assert_eq!(active.principal.issuer(), "https://idp.example");
        assert_eq!(active.principal.subject(), Some("alice"));
        assert!(active.principal.scopes().contains("write"));
    }
}
