use std::{fmt, sync::Arc};

use crate::{
    error::{AuthError, ConfigError},
    principal::{Scopes, is_scope_token},
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

/// Which scopes a resource needs: all of a list, or any one of it.
///
/// A missing scope is a `403` with `error="insufficient_scope"` and `scope="…"` listing the
/// policy's scopes (for an "any of" policy, the alternatives).
#[derive(Clone)]
pub struct ScopePolicy {
    mode: Mode,
    scopes: Arc<[Box<str>]>,
    joined: Arc<str>,
}

impl ScopePolicy {
    /// Every scope in `scopes` is required. An entry may hold several space-separated
    /// scopes (`"read write"` requires both).
    ///
    /// # Panics
    ///
    /// When the list is empty, an entry is empty or only spaces (an unset environment
    /// variable, say), or a scope has a character RFC 6749 §3.3 does not allow: such a policy
    /// would require nothing, or something no token can grant. Use
    /// [`try_all`](Self::try_all) for scopes read from configuration.
    #[track_caller]
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::All, scopes).unwrap_or_else(|e| panic!("{e}"))
    }

    /// At least one scope in `scopes` is required.
    ///
    /// # Panics
    ///
    /// As [`all`](Self::all); use [`try_any`](Self::try_any) for scopes read from
    /// configuration.
    #[track_caller]
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::Any, scopes).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`all`](Self::all), with a [`ConfigError`] instead of a panic.
    ///
    /// # Errors
    ///
    /// When the list is empty, an entry is empty or only spaces, or a scope has a character
    /// outside RFC 6749 §3.3's `scope-token`.
    pub fn try_all<I>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::All, scopes)
    }

    /// [`any`](Self::any), with a [`ConfigError`] instead of a panic.
    ///
    /// # Errors
    ///
    /// As [`try_all`](Self::try_all).
    pub fn try_any<I>(scopes: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::Any, scopes)
    }

    fn new<I>(mode: Mode, entries: I) -> Result<Self, ConfigError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        // Entries are split on spaces, as granted scopes are, so "read write" means both.
        let mut scopes = Vec::new();
        for entry in entries {
            let entry: String = entry.into();
            let before = scopes.len();
            for scope in entry.split(' ').filter(|s| !s.is_empty()) {
                if !is_scope_token(scope) {
                    return Err(ConfigError::new(
                        "a required scope has a character RFC 6749 does not allow in a scope",
                    ));
                }
                scopes.push(Box::<str>::from(scope));
            }
            if scopes.len() == before {
                return Err(ConfigError::new(
                    "a required scope is empty or only spaces (an unset variable?)",
                ));
            }
        }
        if scopes.is_empty() {
            return Err(ConfigError::new("a scope policy needs at least one scope"));
        }
        let scopes: Arc<[Box<str>]> = scopes.into();
        let joined = scopes.join(" ").into();
        Ok(Self {
            mode,
            scopes,
            joined,
        })
    }

    /// Whether `granted` satisfies the policy.
    pub fn is_satisfied_by(&self, granted: &Scopes) -> bool {
        let mut required = self.scopes.iter();
        match self.mode {
            Mode::All => required.all(|s| granted.contains(s)),
            Mode::Any => required.any(|s| granted.contains(s)),
        }
    }

    /// `Ok` when satisfied, else the `insufficient_scope` error naming the policy's scopes.
    pub fn check(&self, granted: &Scopes) -> Result<(), AuthError> {
        if self.is_satisfied_by(granted) {
            Ok(())
        } else {
            Err(AuthError::insufficient_scope(Arc::clone(&self.joined)))
        }
    }
}

impl fmt::Debug for ScopePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopePolicy")
            .field("mode", &self.mode)
            .field("scopes", &self.scopes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn policy_table() {
        let granted = Scopes::from_space_delimited("read write");
        let table = [
            (ScopePolicy::all(["read"]), true),
            (ScopePolicy::all(["read", "write"]), true),
            (ScopePolicy::all(["read", "admin"]), false),
            (ScopePolicy::any(["admin", "write"]), true),
            (ScopePolicy::any(["admin", "root"]), false),
            (ScopePolicy::all(["rea"]), false),
            (ScopePolicy::all(["read write"]), true),
            (ScopePolicy::all([" read  "]), true),
            (ScopePolicy::any(["admin root", "write"]), true),
        ];
        for (policy, ok) in table {
            assert_eq!(policy.is_satisfied_by(&granted), ok, "{policy:?}");
            assert_eq!(policy.check(&granted).is_ok(), ok, "{policy:?}");
        }
        assert!(!ScopePolicy::all(["read"]).is_satisfied_by(&Scopes::default()));
    }

    #[test]
    fn policies_that_would_require_nothing_are_configuration_errors() {
        let bad: &[&[&str]] = &[
            &[],
            &[""],
            &[" "],
            &["   "],
            &["read", ""],
            &["read", "  "],
            &["rea\"d"],
            &["re\\ad"],
            &["read\twrite"],
            &["read\n"],
            &["lecture-é"],
        ];
        for entries in bad {
            assert!(
                ScopePolicy::try_all(entries.iter().copied()).is_err(),
                "{entries:?}"
            );
            assert!(
                ScopePolicy::try_any(entries.iter().copied()).is_err(),
                "{entries:?}"
            );
            let panicked = std::panic::catch_unwind(|| ScopePolicy::all(entries.iter().copied()));
            assert!(panicked.is_err(), "all({entries:?}) must panic");
        }
        let ok = ScopePolicy::try_all(["read", " write  admin "]).expect("valid scopes");
        assert_eq!(
            ok.check(&Scopes::default())
                .expect_err("none granted")
                .required_scope(),
            Some("read write admin")
        );
        assert!(ScopePolicy::try_any(["urn:example:read", "a!#[]~"]).is_ok());
    }

    #[test]
    fn rejection_names_the_required_scopes() {
        let err = ScopePolicy::all(["read", "admin"])
            .check(&Scopes::from_space_delimited("read"))
            .expect_err("admin missing");
        assert_eq!(err.kind(), ErrorKind::InsufficientScope);
        assert_eq!(err.required_scope(), Some("read admin"));
    }
}
