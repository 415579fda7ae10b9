//! The two names of a logical cluster: its opaque [`LogicalClusterName`] (`2x7gqk3o1xq8p9ab`,
//! `root`) and the [`WorkspacePath`] people use (`root:acme:team-a`).
//!
//! The rules are kcp's (github.com/kcp-dev/logicalcluster): a name is a DNS-1123 label of
//! at least two characters (or anything under `system:`); a path is one or more DNS-1123
//! labels joined by `:`, the first of which may be a logical cluster name and the rest
//! workspace names. Each segment is checked by [`canopy_core::validation::is_dns1123_label`],
//! so labels are validated (and worded) in one place.

use std::fmt;
use std::str::FromStr;

use canopy_core::validation::is_dns1123_label;

/// kcp's pattern of a workspace path (the `+kubebuilder:validation:Pattern` on
/// `WorkspaceTypeReference.path`).
pub const PATH_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(:[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// kcp's pattern of a logical cluster name (`logicalcluster.Name.IsValid`).
pub const NAME_PATTERN: &str = "^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$";

/// Why a string is not a logical cluster name or a workspace path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid logical cluster name {value:?}: {message}")]
    ClusterName { value: String, message: String },
    #[error("invalid workspace path {value:?}: {message}")]
    Path { value: String, message: String },
}

/// The separator of a path's segments.
pub const SEPARATOR: char = ':';

const SYSTEM_PREFIX: &str = "system:";

/// The name of a logical cluster: kcp's `^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$`, or a
/// `system:` name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LogicalClusterName(String);

impl LogicalClusterName {
    /// The root logical cluster.
    pub fn root() -> LogicalClusterName {
        LogicalClusterName("root".into())
    }

    pub fn new(value: impl Into<String>) -> Result<LogicalClusterName, NameError> {
        let value = value.into();
        if value.starts_with(SYSTEM_PREFIX) {
            return Ok(LogicalClusterName(value));
        }
        let mut errs = is_dns1123_label(&value);
        if errs.is_empty() && value.len() < 2 {
            errs.push("must be at least 2 characters".into());
        }
        if errs.is_empty() {
            Ok(LogicalClusterName(value))
        } else {
            Err(NameError::ClusterName {
                value,
                message: errs.join("; "),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path that names this logical cluster alone (kcp's `Name.Path()`).
    pub fn to_path(&self) -> WorkspacePath {
        WorkspacePath(self.0.clone())
    }
}

/// A workspace path: `root`, `root:acme:team-a`, or a logical cluster name followed by
/// workspace names (`2x7gqk3o1xq8p9ab:team-a`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspacePath(String);

impl WorkspacePath {
    /// `root`.
    pub fn root() -> WorkspacePath {
        WorkspacePath("root".into())
    }

    pub fn new(value: impl Into<String>) -> Result<WorkspacePath, NameError> {
        let value = value.into();
        let err = |message: String| NameError::Path {
            value: value.clone(),
            message,
        };
        if value.is_empty() {
            return Err(err("must not be empty".into()));
        }
        for seg in value.split(SEPARATOR) {
            let errs = is_dns1123_label(seg);
            if !errs.is_empty() {
                return Err(err(format!("segment {seg:?}: {}", errs.join("; "))));
            }
        }
        Ok(WorkspacePath(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is `root`.
    pub fn is_root(&self) -> bool {
        self.0 == "root"
    }

    /// The segments, first to last.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split(SEPARATOR)
    }

    /// The first segment: the logical cluster the path starts from.
    pub fn first(&self) -> &str {
        self.0.split(SEPARATOR).next().unwrap_or(&self.0)
    }

    /// The path without its last segment (`None` for a one-segment path).
    pub fn parent(&self) -> Option<WorkspacePath> {
        self.split().map(|(p, _)| p)
    }

    /// (parent, last segment), `None` for a one-segment path.
    pub fn split(&self) -> Option<(WorkspacePath, &str)> {
        let (p, n) = self.0.rsplit_once(SEPARATOR)?;
        Some((WorkspacePath(p.to_string()), n))
    }

    /// The last segment.
    pub fn base(&self) -> &str {
        self.0.rsplit(SEPARATOR).next().unwrap_or(&self.0)
    }

    /// The child `name` of this path; `name` must be one valid segment.
    pub fn join(&self, name: &str) -> Result<WorkspacePath, NameError> {
        let errs = is_dns1123_label(name);
        if !errs.is_empty() {
            return Err(NameError::Path {
                value: format!("{}{SEPARATOR}{name}", self.0),
                message: format!("segment {name:?}: {}", errs.join("; ")),
            });
        }
        Ok(WorkspacePath(format!("{}{SEPARATOR}{name}", self.0)))
    }

    /// Whether `other` is this path or one of its ancestors (segment-wise).
    pub fn has_prefix(&self, other: &WorkspacePath) -> bool {
        self.0 == other.0
            || self
                .0
                .strip_prefix(&other.0)
                .is_some_and(|rest| rest.starts_with(SEPARATOR))
    }

    /// `/clusters/<path>`.
    pub fn request_path(&self) -> String {
        format!("/clusters/{}", self.0)
    }

    /// The logical cluster name this path is, when it has one segment.
    pub fn as_cluster_name(&self) -> Option<LogicalClusterName> {
        if self.0.contains(SEPARATOR) {
            return None;
        }
        LogicalClusterName::new(self.0.clone()).ok()
    }
}

macro_rules! string_newtype {
    ($t:ident) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl FromStr for $t {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                $t::new(s)
            }
        }
        impl TryFrom<String> for $t {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                $t::new(s)
            }
        }
        impl TryFrom<&str> for $t {
            type Error = NameError;
            fn try_from(s: &str) -> Result<Self, NameError> {
                $t::new(s)
            }
        }
        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.0
            }
        }
        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $t::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_newtype!(LogicalClusterName);
string_newtype!(WorkspacePath);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        for ok in [
            "root",
            "ab",
            "2x7gqk3o1xq8p9ab",
            "a-b",
            "system:admin",
            "tenant-a",
        ] {
            assert!(LogicalClusterName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a", "-ab", "ab-", "A1", "a_b", "a:b", &"a".repeat(64)] {
            let e = LogicalClusterName::new(bad).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid logical cluster name"),
                "{e}"
            );
        }
        assert_eq!(
            LogicalClusterName::new("a").unwrap_err().to_string(),
            "invalid logical cluster name \"a\": must be at least 2 characters"
        );
    }

    #[test]
    fn paths() {
        let p: WorkspacePath = "root:acme:team-a".parse().unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "root:acme");
        assert_eq!(p.base(), "team-a");
        assert_eq!(p.first(), "root");
        assert!(!p.is_root());
        assert!(WorkspacePath::root().is_root());
        assert_eq!(WorkspacePath::root().parent(), None);
        assert_eq!(p.join("x").unwrap().as_str(), "root:acme:team-a:x");
        assert!(p.join("X").is_err() && p.join("a:b").is_err() && p.join("").is_err());
        assert!(p.has_prefix(&"root:acme".parse().unwrap()));
        assert!(!p.has_prefix(&"root:ac".parse().unwrap()));
        assert_eq!(p.request_path(), "/clusters/root:acme:team-a");
        assert_eq!(p.as_cluster_name(), None);
        assert_eq!(
            WorkspacePath::root().as_cluster_name(),
            Some(LogicalClusterName::root())
        );
        for bad in [
            "", ":", "root:", ":root", "root::a", "Root", "root:a_b", "root:-a",
        ] {
            assert!(WorkspacePath::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            WorkspacePath::new("root:A").unwrap_err().to_string(),
            "invalid workspace path \"root:A\": segment \"A\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
        );
        assert_eq!(
            WorkspacePath::new("").unwrap_err().to_string(),
            "invalid workspace path \"\": must not be empty"
        );
    }

    #[test]
    fn serde_validates() {
        let p: WorkspacePath = serde_json::from_value(serde_json::json!("root:a")).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!("root:a")
        );
        assert!(serde_json::from_value::<WorkspacePath>(serde_json::json!("root:A")).is_err());
        assert!(serde_json::from_value::<LogicalClusterName>(serde_json::json!("x")).is_err());
    }

    const SEG: &str = "[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?";

    /// kcp's regular expression, spelled out by hand: the reference the parser is
    /// compared against.
    fn kcp_valid_path(s: &str) -> bool {
        !s.is_empty()
            && s.split(':').all(|seg| {
                let b = seg.as_bytes();
                let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
                !b.is_empty()
                    && b.len() <= 63
                    && b.first().is_some_and(alnum)
                    && b.last().is_some_and(alnum)
                    && b.iter().all(|c| alnum(c) || *c == b'-')
            })
    }

    proptest! {
        #[test]
        fn valid_paths_round_trip(segs in proptest::collection::vec(SEG, 1..6)) {
            let s = segs.join(":");
            let p = WorkspacePath::new(s.clone()).unwrap();
            prop_assert_eq!(p.to_string(), s.clone());
            prop_assert_eq!(p.segments().collect::<Vec<_>>(), segs.iter().map(String::as_str).collect::<Vec<_>>());
            let back: WorkspacePath = serde_json::from_value(serde_json::to_value(&p).unwrap()).unwrap();
            prop_assert_eq!(&back, &p);
            match p.split() {
                Some((parent, base)) => {
                    prop_assert_eq!(parent.join(base).unwrap(), p.clone());
                    prop_assert!(p.has_prefix(&parent));
                }
                None => prop_assert_eq!(segs.len(), 1),
            }
        }

        #[test]
        fn parser_agrees_with_kcp(s in "[a-zA-Z0-9:_-]{0,20}") {
            prop_assert_eq!(WorkspacePath::new(s.clone()).is_ok(), kcp_valid_path(&s));
            let name_ok = kcp_valid_path(&s) && !s.contains(':') && s.len() >= 2;
            prop_assert_eq!(LogicalClusterName::new(s.clone()).is_ok(), name_ok || s.starts_with("system:"));
        }

        #[test]
        fn join_then_parent(base in SEG, name in SEG) {
            let p = WorkspacePath::new(base).unwrap();
            let c = p.join(&name).unwrap();
            prop_assert_eq!(c.parent(), Some(p));
            prop_assert_eq!(c.base(), name.as_str());
        }
    }
}
