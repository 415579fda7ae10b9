//! The validating admission chain run on every write a *user* makes (creates, updates,
//! patches, applies, deletes; never on the system's own writes, which go through
//! `rest::*_system`). Each plug-in sees the operation, the old and new objects and who
//! asks, and may refuse with a `Status`; none changes the object (mutation is the
//! strategy's `admit`).
//!
//! The chain is the server's ([`crate::plugin::Plugins::with_validating`]), composed by
//! whoever builds the server (a shard: `shard::plugins`). This module holds the generic
//! plug-ins:
//! - [`ReservedMetadata`] — labels and annotations of kcp's and Canopy's domains
//!   (`*.kcp.io/...`, `*.canopy.dev/...`) are the system's: a user may not add, change
//!   or remove them on any object (kcp's `reservedmetadata`).
//! - [`RbacEscalation`] — kube's escalation check: a Role/ClusterRole may only grant
//!   what its writer holds (or the writer has `escalate`); a binding may only grant a
//!   role whose permissions its writer holds (or the writer has `bind` on it).
//!
//! Plug-ins add their own (kcp tenancy: the objects routing and placement trust).
//!
//! Superusers (`system:masters`, `system:kcp:admin`) pass every plug-in, as they pass
//! authorization.

use canopy_auth::rbac::{self, Attributes, PolicyRule};
use canopy_auth::UserInfo;
use canopy_core::{meta, ApiError, Subject};
use canopy_storage::Store;
use serde_json::Value;

use crate::registry::Resource;

/// What a user's write does.
#[derive(Clone, Copy, Debug)]
pub enum Operation<'a> {
    Create(&'a Value),
    Update { new: &'a Value, old: &'a Value },
    Delete(&'a Value),
}

impl<'a> Operation<'a> {
    fn new_object(&self) -> Option<&'a Value> {
        match *self {
            Operation::Create(o) => Some(o),
            Operation::Update { new, .. } => Some(new),
            Operation::Delete(_) => None,
        }
    }
    fn old_object(&self) -> Option<&'a Value> {
        match *self {
            Operation::Create(_) => None,
            Operation::Update { old, .. } => Some(old),
            Operation::Delete(o) => Some(o),
        }
    }
    fn name(&self) -> &'a str {
        self.new_object()
            .or(self.old_object())
            .map(meta::name)
            .unwrap_or("")
    }
}

/// One admission request.
pub struct Request<'a> {
    pub user: &'a UserInfo,
    pub store: &'a Store,
    /// The logical cluster written to.
    pub cluster: &'a str,
    pub resource: &'a Resource,
    /// `status`, `finalize`, `scale` or empty.
    pub subresource: &'a str,
    pub namespace: &'a str,
    pub op: Operation<'a>,
}

impl Request<'_> {
    pub fn subject(&self) -> Subject<'_> {
        Subject {
            group: &self.resource.desc.group,
            resource: &self.resource.desc.plural,
            name: self.op.name(),
        }
    }
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.resource.desc.group == group && self.resource.desc.plural == plural
    }
}

/// A validating admission plug-in.
pub trait Validating: Send + Sync {
    fn validate(&self, req: &Request<'_>) -> Result<(), ApiError>;
}

/// Runs `chain` (the server's, [`crate::plugin::Plugins::validating`]); superusers pass.
pub fn validate(
    chain: &[std::sync::Arc<dyn Validating>],
    req: &Request<'_>,
) -> Result<(), ApiError> {
    if crate::authz::is_superuser(req.user) {
        return Ok(());
    }
    for plugin in chain {
        plugin.validate(req)?;
    }
    Ok(())
}

/// Whether a label or annotation key belongs to kcp or Canopy.
pub fn is_reserved_key(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    let prefix = prefix.to_ascii_lowercase();
    ["kcp.io", "canopy.dev"]
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")))
}

fn reserved_entries<'a>(obj: Option<&'a Value>, field: &str) -> Vec<(&'a str, &'a Value)> {
    obj.and_then(|o| o.pointer(&format!("/metadata/{field}")))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| is_reserved_key(k))
                .map(|(k, v)| (k.as_str(), v))
                .collect()
        })
        .unwrap_or_default()
}

/// Reserved labels and annotations are the system's, except the keys a capability lets
/// users set ([`ReservedMetadata::allow`]).
#[derive(Clone, Debug, Default)]
pub struct ReservedMetadata {
    /// Reserved keys users may set anyway: exact keys, or prefixes ending in `*`.
    allowed: Vec<String>,
}

impl ReservedMetadata {
    /// Lets users set and change `keys` (exact, or a prefix ending in `*`), e.g. the
    /// annotations by which a user asks a capability for something.
    pub fn allow<S: AsRef<str>>(mut self, keys: &[S]) -> Self {
        self.allowed
            .extend(keys.iter().map(|k| k.as_ref().to_string()));
        self
    }

    fn is_allowed(&self, key: &str) -> bool {
        self.allowed.iter().any(|a| match a.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => a == key,
        })
    }
}

impl Validating for ReservedMetadata {
    fn validate(&self, req: &Request<'_>) -> Result<(), ApiError> {
        let Some(new) = req.op.new_object() else {
            return Ok(());
        };
        let old = req.op.old_object();
        for field in ["annotations", "labels"] {
            let mut before = reserved_entries(old, field);
            let mut after = reserved_entries(Some(new), field);
            before.retain(|(k, _)| !self.is_allowed(k));
            after.retain(|(k, _)| !self.is_allowed(k));
            let changed = after
                .iter()
                .find(|(k, v)| !before.iter().any(|(bk, bv)| bk == k && bv == v))
                .or_else(|| {
                    before
                        .iter()
                        .find(|(k, _)| !after.iter().any(|(ak, _)| ak == k))
                });
            if let Some((key, _)) = changed {
                return Err(ApiError::admission_forbidden(
                    req.subject(),
                    &format!(
                        "modification of reserved {} {key:?} is not allowed",
                        field.trim_end_matches('s')
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// No privilege escalation through RBAC objects.
pub struct RbacEscalation;

const RBAC: &str = canopy_core::resource::RBAC_GROUP;

impl Validating for RbacEscalation {
    fn validate(&self, req: &Request<'_>) -> Result<(), ApiError> {
        if req.resource.desc.group != RBAC {
            return Ok(());
        }
        let Some(new) = req.op.new_object() else {
            return Ok(());
        };
        let plural = req.resource.desc.plural.as_str();
        let namespace = match plural {
            "roles" | "rolebindings" => req.namespace,
            _ => "",
        };
        match plural {
            "roles" | "clusterroles" => {
                if may(req, "escalate", plural, meta::name(new)) {
                    return Ok(());
                }
                if plural == "clusterroles"
                    && new
                        .get("aggregationRule")
                        .is_some_and(|a| !a.is_null() && a != &serde_json::json!({}))
                {
                    // kube: aggregation may gather anything, so it needs every permission
                    let all = vec![PolicyRule {
                        verbs: vec!["*".into()],
                        api_groups: vec!["*".into()],
                        resources: vec!["*".into()],
                        ..Default::default()
                    }];
                    let changed = req.op.old_object().and_then(|o| o.get("aggregationRule"))
                        != new.get("aggregationRule");
                    if changed {
                        check_covered(req, namespace, &all)?;
                    }
                }
                check_covered(req, namespace, &PolicyRule::from_role(new))
            }
            "rolebindings" | "clusterrolebindings" => {
                let kind = new
                    .pointer("/roleRef/kind")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let name = new
                    .pointer("/roleRef/name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let role_resource = if kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                };
                if may(req, "bind", role_resource, name) {
                    return Ok(());
                }
                let role_rules = referenced_rules(req, kind, name);
                check_covered(req, namespace, &role_rules)
            }
            _ => Ok(()),
        }
    }
}

/// Whether the user has `verb` (escalate, bind) on the RBAC object `name`.
fn may(req: &Request<'_>, verb: &str, resource: &str, name: &str) -> bool {
    let attrs = Attributes {
        user: req.user,
        verb,
        is_resource_request: true,
        namespace: if resource == "roles" {
            req.namespace
        } else {
            ""
        },
        api_group: RBAC,
        resource,
        subresource: "",
        name,
        path: "",
    };
    crate::authz::allowed(req.store, req.cluster, &attrs).is_some()
}

/// The rules of the role a binding refers to (none when it does not exist yet: then a
/// binding grants nothing, as in kube).
fn referenced_rules(req: &Request<'_>, kind: &str, name: &str) -> Vec<PolicyRule> {
    let (resource, ns) = match kind {
        "Role" => ("rbac.authorization.k8s.io/roles", req.namespace),
        _ => ("rbac.authorization.k8s.io/clusterroles", ""),
    };
    req.store
        .get(&canopy_storage::ObjectKey::new(
            resource,
            req.cluster,
            ns,
            name,
        ))
        .map(|o| PolicyRule::from_role(&o.value))
        .unwrap_or_default()
}

fn check_covered(req: &Request<'_>, namespace: &str, rules: &[PolicyRule]) -> Result<(), ApiError> {
    let held = crate::authz::rules(req.store, req.cluster, req.user, namespace);
    let missing = rbac::uncovered(&held, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = req.user.groups.iter().map(|g| format!("{g:?}")).collect();
    let list: Vec<String> = missing.iter().map(rbac::compact).collect();
    Err(ApiError::admission_forbidden(
        req.subject(),
        &format!(
            "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
            req.user.name,
            groups.join(" "),
            list.join("\n")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_keys() {
        for k in [
            "kcp.io/path",
            "kcp.io/cluster",
            "internal.tenancy.kcp.io/shard",
            "experimental.tenancy.kcp.io/owner",
            "canopy.dev/logical-clusters",
            "x.CANOPY.dev/y",
        ] {
            assert!(is_reserved_key(k), "{k}");
        }
        for k in [
            "app",
            "example.com/x",
            "notkcp.io/x",
            "kcp.io.example.com/x",
        ] {
            assert!(!is_reserved_key(k), "{k}");
        }
    }

    #[test]
    fn allowed_reserved_keys() {
        let r = ReservedMetadata::default().allow(&["a.kcp.io/skip", "extra.kcp.io/*"]);
        assert!(r.is_allowed("a.kcp.io/skip"));
        assert!(r.is_allowed("extra.kcp.io/anything"));
        assert!(!r.is_allowed("a.kcp.io/skip2"));
        assert!(!r.is_allowed("b.kcp.io/skip"));
        assert!(!ReservedMetadata::default().is_allowed("a.kcp.io/skip"));
    }
}
