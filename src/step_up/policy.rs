use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

use crate::{
    error::{AuthError, ConfigError, StepUpDetail},
    principal::UserAuthentication,
};

/// How strongly, and how recently, the user must have authenticated (RFC 9470): an `acr`
/// from a set and/or an `auth_time` no older than a maximum age.
///
/// A token that fails the policy is a `401` with `error="insufficient_user_authentication"`
/// naming the policy's `acr_values` and `max_age`, which the client passes on to the
/// authorization server to have the user authenticate again.
#[derive(Clone)]
pub struct StepUpPolicy {
    acr: Arc<[Box<str>]>,
    max_age: Option<Duration>,
    detail: Arc<StepUpDetail>,
}

impl StepUpPolicy {
    /// A builder requiring nothing yet; [`build`](StepUpPolicyBuilder::build) refuses a
    /// policy that stays that way.
    pub fn builder() -> StepUpPolicyBuilder {
        StepUpPolicyBuilder::default()
    }

    /// The `acr` values accepted, in order of preference.
    pub fn acr_values(&self) -> impl Iterator<Item = &str> {
        self.acr.iter().map(|a| &**a)
    }

    /// The largest accepted age of `auth_time`.
    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// `Ok` when `user` satisfies the policy now, else the `insufficient_user_authentication`
    /// error naming what the policy requires.
    pub fn check(&self, user: &UserAuthentication) -> Result<(), AuthError> {
        self.check_at(user, SystemTime::now())
    }

    pub(crate) fn check_at(
        &self,
        user: &UserAuthentication,
        now: SystemTime,
    ) -> Result<(), AuthError> {
        if !self.acr.is_empty()
            && !user
                .acr()
                .is_some_and(|a| self.acr.iter().any(|r| **r == *a))
        {
            return Err(
                self.reject("the user's authentication context does not satisfy this resource")
            );
        }
        if let Some(max_age) = self.max_age {
            let Some(auth_time) = user.auth_time() else {
                return Err(self.reject("the token does not say when the user authenticated"));
            };
            // An `auth_time` ahead of this clock is skew, not age: it counts as now.
            let age = now.duration_since(auth_time).unwrap_or(Duration::ZERO);
            if age > max_age {
                return Err(self.reject("the user's authentication is too old for this resource"));
            }
        }
        Ok(())
    }

    fn reject(&self, description: &'static str) -> AuthError {
        AuthError::insufficient_user_authentication(description, Arc::clone(&self.detail))
    }
}

impl fmt::Debug for StepUpPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepUpPolicy")
            .field("acr_values", &self.acr)
            .field("max_age", &self.max_age)
            .finish()
    }
}

/// Builds a [`StepUpPolicy`]; at least one of `acr_values` and `max_age` is required.
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct StepUpPolicyBuilder {
    acr: Vec<String>,
    max_age: Option<Duration>,
}

impl StepUpPolicyBuilder {
    /// Requires the token's `acr` to be one of `values` (exact, case-sensitive), listed in
    /// the challenge in this order. Repeat to add more. Default: any `acr`, or none.
    pub fn acr_values<I>(mut self, values: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.acr.extend(values.into_iter().map(Into::into));
        self
    }

    /// Requires the token's `auth_time` to be at most `max_age` old; a token without
    /// `auth_time` fails. Whole seconds count (the challenge's `max_age` is in seconds);
    /// the rest is dropped. Default: no limit.
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(Duration::from_secs(max_age.as_secs()));
        self
    }

    /// Checks the policy.
    ///
    /// # Errors
    ///
    /// When it requires nothing, or an `acr` value is empty or has a space, a quote, a
    /// backslash or a character outside printable ASCII (it could not be named in the
    /// challenge).
    pub fn build(self) -> Result<StepUpPolicy, ConfigError> {
        if self.acr.is_empty() && self.max_age.is_none() {
            return Err(ConfigError::new(
                "a step-up policy needs acr values, a maximum authentication age or both",
            ));
        }
        if self.acr.iter().any(|a| {
            a.is_empty()
                || !a
                    .bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5B | 0x5D..=0x7E))
        }) {
            return Err(ConfigError::new(
                "an acr value is empty or has a character a challenge cannot carry",
            ));
        }
        let acr: Arc<[Box<str>]> = self.acr.into_iter().map(String::into_boxed_str).collect();
        let detail = Arc::new(StepUpDetail {
            acr_values: (!acr.is_empty()).then(|| acr.join(" ").into()),
            max_age: self.max_age.map(|d| d.as_secs()),
        });
        Ok(StepUpPolicy {
            acr,
            max_age: self.max_age,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    const NOW: u64 = 1_800_000_000;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    fn user(acr: Option<&str>, auth_time: Option<u64>) -> UserAuthentication {
        UserAuthentication::new(acr, auth_time.map(at))
    }

    #[test]
    fn policy_table() {
        let mfa = StepUpPolicy::builder()
            .acr_values(["urn:example:mfa", "urn:example:phr"])
            .build()
            .expect("policy");
        let recent = StepUpPolicy::builder()
            .max_age(Duration::from_millis(300_900))
            .build()
            .expect("policy");
        let both = StepUpPolicy::builder()
            .acr_values(["urn:example:mfa"])
            .max_age(Duration::from_secs(60))
            .build()
            .expect("policy");
        let table = [
            (&mfa, user(Some("urn:example:mfa"), None), true),
            (&mfa, user(Some("urn:example:phr"), None), true),
            (&mfa, user(Some("urn:example:pwd"), None), false),
            (&mfa, user(Some("URN:EXAMPLE:MFA"), None), false),
            (&mfa, user(None, Some(NOW)), false),
            (&recent, user(None, Some(NOW - 300)), true),
            (&recent, user(None, Some(NOW - 301)), false),
            (&recent, user(None, Some(NOW + 30)), true),
            (&recent, user(Some("urn:example:mfa"), None), false),
            (&both, user(Some("urn:example:mfa"), Some(NOW - 10)), true),
            (&both, user(Some("urn:example:mfa"), Some(NOW - 61)), false),
            (&both, user(Some("urn:example:pwd"), Some(NOW)), false),
        ];
        for (policy, user, ok) in table {
            let verdict = policy.check_at(&user, at(NOW));
            assert_eq!(verdict.is_ok(), ok, "{policy:?} {user:?}");
            if let Err(e) = verdict {
                assert_eq!(e.kind(), ErrorKind::InsufficientUserAuthentication);
                assert_eq!(e.status(), 401);
            }
        }
    }

    #[test]
    fn rejections_name_what_the_policy_requires() {
        let both = StepUpPolicy::builder()
            .acr_values(["mfa", "phr"])
            .max_age(Duration::from_secs(60))
            .build()
            .expect("policy");
        let e = both
            .check_at(&user(Some("pwd"), Some(NOW)), at(NOW))
            .expect_err("weak acr");
        assert_eq!(e.acr_values(), Some("mfa phr"));
        assert_eq!(e.max_age(), Some(Duration::from_secs(60)));
        let acr_only = StepUpPolicy::builder()
            .acr_values(["mfa"])
            .build()
            .expect("policy");
        let e = acr_only
            .check_at(&user(None, None), at(NOW))
            .expect_err("no acr");
        assert_eq!((e.acr_values(), e.max_age()), (Some("mfa"), None));
    }

    #[test]
    fn policies_that_cannot_be_stated_are_refused() {
        assert!(StepUpPolicy::builder().build().is_err());
        for bad in ["", "a b", "a\"b", "a\\b", "é", "a\r\n"] {
            assert!(
                StepUpPolicy::builder().acr_values([bad]).build().is_err(),
                "{bad:?}"
            );
        }
        assert!(
            StepUpPolicy::builder()
                .max_age(Duration::ZERO)
                .build()
                .is_ok()
        );
    }
}
