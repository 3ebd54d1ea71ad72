use std::{fmt, sync::Arc};

use crate::authorities::Authorities;
use crate::error::{AuthError, ConfigError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// Which authorities (roles, permissions) a resource needs: all of a list, or any one of it.
///
/// Names are compared exactly, prefix included: a policy over a source with prefix `role:`
/// names `role:admin`. A missing authority is a `403` with `error="insufficient_scope"`
/// (the token is valid but does not grant enough; a new token of the same kind would not
/// help either) and no `scope` attribute, since no scope would grant it; under gRPC it is
/// `PERMISSION_DENIED`.
#[derive(Clone)]
pub struct AuthorityPolicy {
    mode: Mode,
    names: Arc<[Box<str>]>,
}

impl AuthorityPolicy {
    /// Every authority in `names` is required.
    ///
    /// # Panics
    ///
    /// When the list is empty or a name is empty or has whitespace (an unset environment
    /// variable, say): such a policy would require nothing, or something no token grants.
    /// Use [`try_all`](Self::try_all) for names read from configuration.
    #[track_caller]
    pub fn all<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::All, names).unwrap_or_else(|e| panic!("{e}"))
    }

    /// At least one authority in `names` is required.
    ///
    /// # Panics
    ///
    /// As [`all`](Self::all); use [`try_any`](Self::try_any) for names read from
    /// configuration.
    #[track_caller]
    pub fn any<I>(names: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::Any, names).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`all`](Self::all), with a [`ConfigError`] instead of a panic.
    ///
    /// # Errors
    ///
    /// When the list is empty or a name is empty or has whitespace or control characters.
    pub fn try_all<I>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::All, names)
    }

    /// [`any`](Self::any), with a [`ConfigError`] instead of a panic.
    ///
    /// # Errors
    ///
    /// As [`try_all`](Self::try_all).
    pub fn try_any<I>(names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::Any, names)
    }

    fn new<I>(mode: Mode, names: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let mut list = Vec::new();
        for name in names {
            let name: String = name.into();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    "a required role or authority is empty or has whitespace (an unset variable?)",
                ));
            }
            list.push(name.into_boxed_str());
        }
        if list.is_empty() {
            return Err(ConfigError::new(
                "an authority policy needs at least one role or authority",
            ));
        }
        Ok(Self {
            mode,
            names: list.into(),
        })
    }

    /// Whether `granted` satisfies the policy.
    pub fn is_satisfied_by(&self, granted: &Authorities) -> bool {
        let mut required = self.names.iter();
        match self.mode {
            Mode::All => required.all(|n| granted.contains(n)),
            Mode::Any => required.any(|n| granted.contains(n)),
        }
    }

    /// `Ok` when satisfied, else the `403` error.
    pub fn check(&self, granted: &Authorities) -> Result<(), AuthError> {
        if self.is_satisfied_by(granted) {
            Ok(())
        } else {
            Err(AuthError::forbidden(
                "the token lacks a role or authority this resource requires",
            ))
        }
    }
}

impl fmt::Debug for AuthorityPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorityPolicy")
            .field("mode", &self.mode)
            .field("names", &self.names)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn policy_table() {
        let granted: Authorities = ["role:admin", "read:items"].into_iter().collect();
        let table = [
            (AuthorityPolicy::all(["role:admin"]), true),
            (AuthorityPolicy::all(["role:admin", "read:items"]), true),
            (AuthorityPolicy::all(["role:admin", "write:items"]), false),
            (AuthorityPolicy::all(["admin"]), false),
            (AuthorityPolicy::all(["role:Admin"]), false),
            (AuthorityPolicy::any(["write:items", "read:items"]), true),
            (AuthorityPolicy::any(["write:items", "role:root"]), false),
        ];
        for (policy, ok) in table {
            assert_eq!(policy.is_satisfied_by(&granted), ok, "{policy:?}");
            assert_eq!(policy.check(&granted).is_ok(), ok, "{policy:?}");
        }
        assert!(!AuthorityPolicy::any(["x"]).is_satisfied_by(&Authorities::default()));
    }

    #[test]
    fn policies_that_require_nothing_are_refused() {
        let bad: [&[&str]; 5] = [&[], &[""], &[" "], &["admin", "two words"], &["a\n"]];
        for names in bad {
            assert!(
                AuthorityPolicy::try_all(names.iter().copied()).is_err(),
                "{names:?}"
            );
            assert!(
                AuthorityPolicy::try_any(names.iter().copied()).is_err(),
                "{names:?}"
            );
        }
        let panicked = std::panic::catch_unwind(|| AuthorityPolicy::all([""]));
        assert!(panicked.is_err());
    }

    #[test]
    fn rejection_is_403_without_a_scope() {
        let err = AuthorityPolicy::all(["admin"])
            .check(&Authorities::default())
            .expect_err("missing");
        assert_eq!(err.kind(), ErrorKind::InsufficientScope);
        assert_eq!(err.status().as_u16(), 403);
        assert_eq!(err.required_scope(), None);
    }
}
