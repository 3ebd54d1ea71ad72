//! [`Authorities`] and where they come from: [`AuthoritySource`]s read in one pass over the
//! verified claims.

use std::{fmt, sync::Arc};

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::{AuthError, ConfigError};

/// The most authorities one token may carry; a token with more is rejected as malformed
/// rather than sorted at length on every request.
pub const MAX_AUTHORITIES: usize = 512;

/// The roles, permissions or other authorities a validated token grants, read from the
/// claims configured with [`AuthoritySource`]s and merged (prefixes applied, duplicates
/// removed).
///
/// Cloning is cheap. The auth layer puts a copy into the request's extensions, where
/// [`RequireAuthorityLayer`](crate::RequireAuthorityLayer) finds it; a token from an
/// authenticator without sources has none.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Authorities(Option<Arc<[Box<str>]>>);

impl Authorities {
    /// Whether `authority` is granted (exact, case-sensitive match, prefix included).
    pub fn contains(&self, authority: &str) -> bool {
        self.as_slice()
            .binary_search_by(|a| (**a).cmp(authority))
            .is_ok()
    }

    /// The granted authorities, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.as_slice().iter().map(|a| &**a)
    }

    /// How many authorities are granted.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether none is granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    fn as_slice(&self) -> &[Box<str>] {
        self.0.as_deref().unwrap_or(&[])
    }

    fn from_vec(mut list: Vec<Box<str>>) -> Self {
        list.sort_unstable();
        list.dedup();
        Self((!list.is_empty()).then(|| list.into()))
    }
}

impl<'a> FromIterator<&'a str> for Authorities {
    /// Empty items are dropped; the rest are kept as they are.
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        Self::from_vec(
            iter.into_iter()
                .filter(|a| !a.is_empty())
                .map(Box::from)
                .collect(),
        )
    }
}

impl fmt::Debug for Authorities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One place authorities are read from: a claim, or a path into nested objects, holding a
/// string or an array of strings, with an optional prefix put before each value.
///
/// ```
/// use portcullis::AuthoritySource;
///
/// // Keycloak realm roles, as `role:admin`, …
/// let realm = AuthoritySource::path("realm_access.roles").prefix("role:");
/// // … client roles of the client `my.api` (a name with a dot: give the segments).
/// let client = AuthoritySource::segments(["resource_access", "my.api", "roles"]);
/// ```
///
/// A string value is one authority (it is not split); an array's strings are one each, its
/// other members are ignored. A value of any other type, or a missing claim, grants
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthoritySource {
    segments: Vec<String>,
    prefix: String,
}

impl AuthoritySource {
    /// Reads the claim at `path`, nested objects separated by dots
    /// (`resource_access.my-api.roles`). No prefix by default.
    pub fn path(path: &str) -> Self {
        Self::segments(path.split('.'))
    }

    /// Reads the claim at the path given segment by segment, for claim names that contain
    /// a dot. No prefix by default.
    pub fn segments<I>(segments: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self {
            segments: segments.into_iter().map(Into::into).collect(),
            prefix: String::new(),
        }
    }

    /// Puts `prefix` before every value read from this source (`role:` makes `admin`
    /// `role:admin`), so that sources cannot grant each other's authorities. Default: none.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }
}

/// The most claim names read from one object (a bit each in a `u64`).
const MAX_CHILDREN: usize = 64;

fn node_count(node: &Node) -> usize {
    node.children
        .iter()
        .map(|(_, child)| node_count(child))
        .fold(node.children.len(), usize::max)
}

/// The configured sources, compiled into a tree of claim names read in one pass.
#[derive(Clone, Debug, Default)]
pub(crate) struct AuthorityClaims {
    root: Node,
}

#[derive(Clone, Debug, Default)]
struct Node {
    children: Vec<(Box<str>, Node)>,
    /// Prefixes of the sources that end here.
    prefixes: Vec<Box<str>>,
}

impl AuthorityClaims {
    pub(crate) fn new(sources: &[AuthoritySource]) -> Result<Self, ConfigError> {
        let mut root = Node::default();
        for source in sources {
            if source.segments.is_empty() || source.segments.iter().any(String::is_empty) {
                return Err(ConfigError::new(
                    "an authority claim path is empty or has an empty segment",
                ));
            }
            let mut node = &mut root;
            for segment in &source.segments {
                let at = match node.children.iter().position(|(k, _)| **k == **segment) {
                    Some(at) => at,
                    None => {
                        node.children
                            .push((segment.as_str().into(), Node::default()));
                        node.children.len() - 1
                    }
                };
                node = &mut node.children[at].1;
            }
            let prefix: Box<str> = source.prefix.as_str().into();
            if node.prefixes.contains(&prefix) {
                return Err(ConfigError::new("an authority source is listed twice"));
            }
            node.prefixes.push(prefix);
        }
        if node_count(&root) > MAX_CHILDREN {
            return Err(ConfigError::new(format!(
                "at most {MAX_CHILDREN} authority claims may share one object"
            )));
        }
        Ok(Self { root })
    }

    /// Whether any source is configured: without one, the claims are not read again.
    pub(crate) fn is_empty(&self) -> bool {
        self.root.children.is_empty()
    }

    /// Reads the authorities from a JSON object of claims. Claims off the configured paths
    /// are skipped without being built; a configured claim repeated in one object makes the
    /// claims malformed.
    pub(crate) fn extract(&self, json: &[u8]) -> Result<Authorities, AuthError> {
        if self.is_empty() {
            return Ok(Authorities::default());
        }
        let mut out = Vec::new();
        let mut de = serde_json::Deserializer::from_slice(json);
        let seed = Walk {
            node: &self.root,
            out: &mut out,
        };
        seed.deserialize(&mut de)
            .and_then(|()| de.end())
            .map_err(|_| AuthError::invalid_token("the token's claims are malformed"))?;
        Self::collect(out)
    }

    /// A reader of the authorities for a pass that walks the claims object itself and
    /// hands over the value of each top-level member this one reads.
    pub(crate) fn members(&self) -> Members<'_> {
        Members {
            children: &self.root.children,
            seen: 0,
            out: Vec::new(),
        }
    }

    /// The authorities read, unless there are more than a token may carry.
    fn collect(out: Vec<Box<str>>) -> Result<Authorities, AuthError> {
        if out.len() > MAX_AUTHORITIES {
            return Err(AuthError::invalid_token(
                "the token carries too many authorities",
            ));
        }
        Ok(Authorities::from_vec(out))
    }
}

/// The authorities of a claims object read member by member ([`AuthorityClaims::members`]),
/// under the same rules as [`AuthorityClaims::extract`]: a configured claim repeated in the
/// object is refused, and so are too many authorities.
pub(crate) struct Members<'a> {
    children: &'a [(Box<str>, Node)],
    seen: u64,
    out: Vec<Box<str>>,
}

impl Members<'_> {
    /// Where the top-level claim `name` is among the claims read.
    pub(crate) fn find(&self, name: &str) -> Option<usize> {
        self.children.iter().position(|(n, _)| **n == *name)
    }

    /// Reads the authorities under the top-level claim `at` (from [`find`](Self::find))
    /// out of that member's JSON value.
    pub(crate) fn read(&mut self, at: usize, value: &str) -> Result<(), serde_json::Error> {
        let Some((_, node)) = self.children.get(at) else {
            return Err(de::Error::custom("no such authority claim"));
        };
        repeat(&mut self.seen, at)?;
        let mut de = serde_json::Deserializer::from_str(value);
        Walk {
            node,
            out: &mut self.out,
        }
        .deserialize(&mut de)?;
        de.end()
    }

    /// The authorities read, unless there are more than a token may carry.
    pub(crate) fn finish(self) -> Result<Authorities, AuthError> {
        AuthorityClaims::collect(self.out)
    }
}

/// Marks the claim at `at` (below [`MAX_CHILDREN`]) as met in one object: meeting it again
/// is refused, since JSON parsers disagree on which of two equal names wins.
fn repeat<E: de::Error>(seen: &mut u64, at: usize) -> Result<(), E> {
    let bit = 1u64 << at;
    if *seen & bit != 0 {
        return Err(de::Error::custom("a claim is repeated"));
    }
    *seen |= bit;
    Ok(())
}

/// Visits the value at one node of the tree.
struct Walk<'a> {
    node: &'a Node,
    out: &'a mut Vec<Box<str>>,
}

impl Walk<'_> {
    fn push(&mut self, value: &str) {
        // Past the cap the token is refused anyway; stop growing.
        if value.is_empty() || self.out.len() > MAX_AUTHORITIES {
            return;
        }
        for prefix in &self.node.prefixes {
            let mut authority = String::with_capacity(prefix.len() + value.len());
            authority.push_str(prefix);
            authority.push_str(value);
            self.out.push(authority.into_boxed_str());
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// One string of an array at a leaf, anything else ignored.
struct Item<'a, 'b>(&'a mut Walk<'b>);

impl<'de> DeserializeSeed<'de> for Item<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Item<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        self.0.push(v);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// Finds an object's key among a node's children without copying it.
struct Key<'a>(&'a [(Box<str>, Node)]);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Option<usize>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a claim name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().position(|(name, _)| **name == *v))
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<(), E> {
        self.push(v);
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        if self.node.prefixes.is_empty() {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
        } else {
            while seq.next_element_seed(Item(&mut self))?.is_some() {}
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let children = &self.node.children;
        // Which configured names this object has had.
        let mut seen = 0u64;
        while let Some(found) = map.next_key_seed(Key(children))? {
            match found {
                Some(at) => {
                    repeat(&mut seen, at)?;
                    map.next_value_seed(Walk {
                        node: &children[at].1,
                        out: &mut *self.out,
                    })?;
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extract(sources: &[AuthoritySource], json: &str) -> Result<Vec<String>, AuthError> {
        let claims = AuthorityClaims::new(sources).expect("sources");
        Ok(claims
            .extract(json.as_bytes())?
            .iter()
            .map(str::to_owned)
            .collect())
    }

    #[test]
    fn shapes_and_paths() {
        let keycloak = [
            AuthoritySource::path("realm_access.roles").prefix("realm:"),
            AuthoritySource::path("resource_access.my-api.roles"),
        ];
        let table: &[(&[AuthoritySource], &str, &[&str])] = &[
            (
                &keycloak,
                r#"{"realm_access":{"roles":["admin","user"]},"resource_access":{"my-api":{"roles":["edit"]},"other":{"roles":["root"]}}}"#,
                &["edit", "realm:admin", "realm:user"],
            ),
            (&keycloak, r#"{"realm_access":{}}"#, &[]),
            (&keycloak, r#"{"realm_access":["admin"]}"#, &[]),
            (
                &keycloak,
                r#"{"realm_access":{"roles":"admin"}}"#,
                &["realm:admin"],
            ),
            (
                &keycloak,
                r#"{"realm_access":{"roles":[1,null,{"a":"b"},["x"],"ok",""]}}"#,
                &["realm:ok"],
            ),
            (&keycloak, r#"{"realm_access":{"roles":5}}"#, &[]),
            (
                &[AuthoritySource::path("roles")],
                r#"{"roles":["b","a","b"],"x":{"roles":["no"]}}"#,
                &["a", "b"],
            ),
            (
                &[
                    AuthoritySource::path("permissions"),
                    AuthoritySource::path("permissions").prefix("p:"),
                ],
                r#"{"permissions":["read:items"]}"#,
                &["p:read:items", "read:items"],
            ),
            (
                &[AuthoritySource::segments(["a.b", "c"])],
                r#"{"a.b":{"c":"x"},"a":{"b":{"c":"y"}}}"#,
                &["x"],
            ),
            (
                &[AuthoritySource::path("roles")],
                r#"{"rol\u0065s":["escaped"]}"#,
                &["escaped"],
            ),
        ];
        for (sources, json, expected) in table {
            assert_eq!(extract(sources, json).expect(json), *expected, "{json}");
        }
    }

    #[test]
    fn malformed_claims_are_refused() {
        let sources = [AuthoritySource::path("realm_access.roles")];
        for json in [
            r#"{"realm_access":{"roles":["a"],"roles":["admin"]}}"#,
            r#"{"realm_access":{"roles":["a"]},"realm_access":{"roles":["admin"]}}"#,
            r#"{"realm_access":{"roles":["a"]}} trailing"#,
            r#"{"realm_access":"#,
        ] {
            assert!(extract(&sources, json).is_err(), "{json}");
        }
        let many = format!(
            r#"{{"realm_access":{{"roles":[{}]}}}}"#,
            (0..=MAX_AUTHORITIES)
                .map(|i| format!("\"r{i}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        assert!(extract(&sources, &many).is_err());
    }

    #[test]
    fn bad_sources_are_configuration_errors() {
        for bad in [
            AuthoritySource::path(""),
            AuthoritySource::path("a..b"),
            AuthoritySource::path(".a"),
            AuthoritySource::segments(Vec::<String>::new()),
        ] {
            assert!(
                AuthorityClaims::new(std::slice::from_ref(&bad)).is_err(),
                "{bad:?}"
            );
        }
        let twice = [
            AuthoritySource::path("roles"),
            AuthoritySource::path("roles"),
        ];
        assert!(AuthorityClaims::new(&twice).is_err());
    }

    #[test]
    fn no_source_reads_nothing() {
        let none = AuthorityClaims::new(&[]).expect("empty");
        // Not even parsed: no source, no cost.
        assert!(none.extract(b"not json").expect("skipped").is_empty());
    }

    #[test]
    fn membership() {
        let a: Authorities = ["b", "a", "", "c"].into_iter().collect();
        assert!(a.contains("a") && a.contains("c"));
        assert!(!a.contains("") && !a.contains("A"));
        assert_eq!(a.len(), 3);
        assert!(Authorities::default().is_empty());
    }
}
