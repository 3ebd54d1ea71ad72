use std::{fmt, sync::Arc};

use crate::{error::AuthError, principal::Scopes};

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
    /// Every scope in `scopes` is required. An empty list requires nothing.
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::All, scopes)
    }

    /// At least one scope in `scopes` is required. An empty list is never satisfied.
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::Any, scopes)
    }

    fn new<I>(mode: Mode, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        // Entries are split on spaces, as granted scopes are, so "read write" means both.
        let scopes: Arc<[Box<str>]> = scopes
            .into_iter()
            .flat_map(|s| {
                let s: String = s.into();
                s.split(' ')
                    .filter(|item| !item.is_empty())
                    .map(Box::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        let joined = scopes.join(" ").into();
        Self {
            mode,
            scopes,
            joined,
        }
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
            (ScopePolicy::all(Vec::<String>::new()), true),
            (ScopePolicy::any(["admin", "write"]), true),
            (ScopePolicy::any(["admin", "root"]), false),
            (ScopePolicy::any(Vec::<String>::new()), false),
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
    fn rejection_names_the_required_scopes() {
        let err = ScopePolicy::all(["read", "admin"])
            .check(&Scopes::from_space_delimited("read"))
            .expect_err("admin missing");
        assert_eq!(err.kind(), ErrorKind::InsufficientScope);
        assert_eq!(err.required_scope(), Some("read admin"));
    }
}
