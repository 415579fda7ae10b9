//! Impersonation policy, as kcp's `WithImpersonationGatekeeper` and
//! `WithImpersonationScoping` filters: who may become whom, which extras are reserved,
//! and the scope an impersonated identity is confined to. Pure: no HTTP, no storage.
//!
//! RBAC (`impersonate` on users/groups/uids/userextras) is checked by the caller in the
//! logical cluster the request targets; the rules here come on top of it, because
//! RBAC inside a tenant's own workspace is the tenant's to write:
//!
//! - **Gatekeeper.** Nobody may impersonate a privileged identity they do not hold
//!   already: a `system:` group other than the plain ones every user has
//!   ([`is_privileged_group`]), or a `system:` user name other than a service account
//!   or `system:anonymous` unless they are a superuser.
//! - **Reserved extras.** Extras whose key belongs to kcp or Canopy (scopes, warrants,
//!   credential ids) are set by the system only; a non-superuser may not impersonate them.
//! - **Scoping.** An impersonated identity gets [`SCOPES_EXTRA`] = `cluster:<name>` of the
//!   logical cluster the impersonation was authorized in, and [`in_scope`] refuses it
//!   everywhere else.

use crate::{UserInfo, SUPERUSER_GROUPS};

/// The user extra that confines an identity to logical clusters (kcp's key).
pub const SCOPES_EXTRA: &str = "authentication.kcp.io/scopes";

/// Groups every authenticated identity may carry, so impersonating them grants nothing.
const PLAIN_GROUPS: [&str; 3] = [
    "system:authenticated",
    "system:unauthenticated",
    "system:serviceaccounts",
];

/// Whether impersonating `group` could grant more than an ordinary user has: every
/// `system:` group except the plain ones (`system:authenticated`,
/// `system:serviceaccounts`, `system:serviceaccounts:<namespace>`).
pub fn is_privileged_group(group: &str) -> bool {
    if !group.starts_with("system:") {
        return false;
    }
    if PLAIN_GROUPS.contains(&group) {
        return false;
    }
    match group.strip_prefix("system:serviceaccounts:") {
        // a namespace's service accounts: plain, unless the "namespace" smuggles more
        Some(ns) => ns.is_empty() || ns.contains(':'),
        None => true,
    }
}

/// Whether a user name is a system identity (a shard, the front-proxy, a controller).
pub fn is_privileged_user(name: &str) -> bool {
    name.starts_with("system:") && name != "system:anonymous" && !is_service_account(name)
}

fn is_service_account(name: &str) -> bool {
    name.strip_prefix("system:serviceaccount:")
        .and_then(|r| r.split_once(':'))
        .is_some_and(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'))
}

/// Whether an extra key is reserved for the system: kcp's (`*.kcp.io/...`, scopes and
/// warrants), Canopy's (`*.canopy.dev/...`), and the credential id tokens carry (it ties
/// self-issued tokens to the token they were issued with).
pub fn is_reserved_extra(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    let domain = key.split('/').next().unwrap_or("");
    let in_domain = |d: &str| domain == d || domain.ends_with(&format!(".{d}"));
    in_domain("kcp.io")
        || in_domain("canopy.dev")
        || key.contains("kcp.io")
        || key.starts_with("authentication.kubernetes.io/")
}

fn is_superuser(u: &UserInfo) -> bool {
    SUPERUSER_GROUPS.iter().any(|g| u.in_group(g))
}

/// What an `Impersonate-*` request asks to become.
#[derive(Clone, Debug, PartialEq)]
pub struct Request<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub extra: &'a std::collections::BTreeMap<String, Vec<String>>,
}

/// Why the gatekeeper refused an impersonation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("impersonating group {0:?} requires being a member of it")]
    Group(String),
    #[error("impersonating user {0:?} requires being a superuser")]
    User(String),
    #[error("impersonating user extra {0:?} is reserved for the system")]
    Extra(String),
    #[error("impersonating the scopes of an identity already confined to {0:?} is not allowed")]
    Scoped(String),
}

/// The gatekeeper: refuses an impersonation that would raise `requester`'s privileges
/// whatever RBAC in the target workspace says. Superusers may impersonate anyone.
pub fn gatekeeper(requester: &UserInfo, req: &Request<'_>) -> Result<(), Refused> {
    if is_superuser(requester) {
        return Ok(());
    }
    // an identity that is itself confined may not impersonate at all: it would shed
    // its scope (kcp: a scoped user cannot impersonate)
    if let Some(scopes) = requester.extra.get(SCOPES_EXTRA) {
        return Err(Refused::Scoped(scopes.join(",")));
    }
    if is_privileged_user(req.user) {
        return Err(Refused::User(req.user.to_string()));
    }
    for g in req.groups {
        if is_privileged_group(g) && !requester.in_group(g) {
            return Err(Refused::Group(g.clone()));
        }
    }
    for k in req.extra.keys() {
        if is_reserved_extra(k) {
            return Err(Refused::Extra(k.clone()));
        }
    }
    Ok(())
}

/// `user` confined to logical cluster `cluster` (kcp's `cluster:<name>` scope). A scope
/// already present is kept: scopes only ever narrow.
pub fn scoped(mut user: UserInfo, cluster: &str) -> UserInfo {
    let scope = format!("cluster:{cluster}");
    let entry = user.extra.entry(SCOPES_EXTRA.to_string()).or_default();
    if entry.is_empty() {
        entry.push(scope);
    }
    user
}

/// Whether `user` may act in logical cluster `cluster` (`None`: outside every logical
/// cluster, e.g. `/clusters/*` or the token service). Unscoped identities are in scope
/// everywhere; a scoped one only in the clusters it names, and never cluster-wide.
pub fn in_scope(user: &UserInfo, cluster: Option<&str>) -> bool {
    let Some(scopes) = user.extra.get(SCOPES_EXTRA) else {
        return true;
    };
    let Some(cluster) = cluster else {
        return false;
    };
    // every value is a comma-separated list; each entry must allow the cluster (kcp:
    // scopes from several sources intersect)
    !scopes.is_empty()
        && scopes.iter().all(|v| {
            v.split(',')
                .map(str::trim)
                .any(|s| s.strip_prefix("cluster:") == Some(cluster))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            ..Default::default()
        }
    }

    fn req<'a>(
        u: &'a str,
        groups: &'a [String],
        extra: &'a BTreeMap<String, Vec<String>>,
    ) -> Request<'a> {
        Request {
            user: u,
            groups,
            extra,
        }
    }

    #[test]
    fn privileged_groups() {
        for g in [
            "system:masters",
            "system:kcp:admin",
            "system:kcp:logical-cluster-admin",
            "system:shards",
            "system:cache:shards",
            "system:serviceaccounts:",
            "system:serviceaccounts:a:b",
            "system:nodes",
        ] {
            assert!(is_privileged_group(g), "{g}");
        }
        for g in [
            "system:authenticated",
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "team-a",
            "masters",
        ] {
            assert!(!is_privileged_group(g), "{g}");
        }
    }

    #[test]
    fn gatekeeper_refuses_privilege_raising() {
        let alice = user("alice", &["system:authenticated", "team-a"]);
        let none = BTreeMap::new();
        let masters = vec!["system:masters".to_string()];
        assert_eq!(
            gatekeeper(&alice, &req("x", &masters, &none)),
            Err(Refused::Group("system:masters".into()))
        );
        let admin = vec!["system:kcp:admin".to_string()];
        assert!(gatekeeper(&alice, &req("x", &admin, &none)).is_err());
        assert_eq!(
            gatekeeper(&alice, &req("system:shard:root", &[], &none)),
            Err(Refused::User("system:shard:root".into()))
        );
        assert!(gatekeeper(&alice, &req("system:front-proxy", &[], &none)).is_err());
        let mut scopes = BTreeMap::new();
        scopes.insert(SCOPES_EXTRA.to_string(), vec!["cluster:root".to_string()]);
        assert!(matches!(
            gatekeeper(&alice, &req("bob", &[], &scopes)),
            Err(Refused::Extra(_))
        ));
        let mut cred = BTreeMap::new();
        cred.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec!["JTI=x".to_string()],
        );
        assert!(gatekeeper(&alice, &req("bob", &[], &cred)).is_err());
        // what ordinary users may do (RBAC permitting)
        let team = vec!["team-a".to_string(), "system:authenticated".to_string()];
        assert_eq!(gatekeeper(&alice, &req("bob", &team, &none)), Ok(()));
        assert_eq!(
            gatekeeper(
                &alice,
                &req("system:serviceaccount:default:builder", &[], &none)
            ),
            Ok(())
        );
        let mut plain = BTreeMap::new();
        plain.insert("example.com/team".to_string(), vec!["a".to_string()]);
        assert_eq!(gatekeeper(&alice, &req("bob", &[], &plain)), Ok(()));
        // a group the requester already holds
        let member = user("m", &["system:kcp:logical-cluster-admin"]);
        let lca = vec!["system:kcp:logical-cluster-admin".to_string()];
        assert_eq!(gatekeeper(&member, &req("x", &lca, &none)), Ok(()));
        // superusers may do anything
        let root = user("admin", &["system:masters"]);
        assert_eq!(
            gatekeeper(&root, &req("system:shard:x", &masters, &scopes)),
            Ok(())
        );
    }

    #[test]
    fn scoped_identities_cannot_impersonate_again() {
        let s = scoped(user("bob", &["system:authenticated"]), "c1");
        let none = BTreeMap::new();
        assert!(matches!(
            gatekeeper(&s, &req("carol", &[], &none)),
            Err(Refused::Scoped(_))
        ));
    }

    #[test]
    fn scope_confines() {
        let u = scoped(user("bob", &[]), "c1");
        assert!(in_scope(&u, Some("c1")));
        assert!(!in_scope(&u, Some("c2")));
        assert!(!in_scope(&u, Some("root")));
        assert!(!in_scope(&u, None));
        // scoping again keeps the first (narrowest) scope
        let again = scoped(u, "c2");
        assert!(in_scope(&again, Some("c1")));
        assert!(!in_scope(&again, Some("c2")));
        let free = user("bob", &[]);
        assert!(in_scope(&free, Some("anything")));
        assert!(in_scope(&free, None));
        // an empty scope list allows nothing
        let mut empty = user("x", &[]);
        empty.extra.insert(SCOPES_EXTRA.into(), vec![]);
        assert!(!in_scope(&empty, Some("c1")));
    }

    proptest! {
        /// A non-superuser never ends up holding a privileged group it did not hold.
        #[test]
        fn never_gains_privileged_groups(
            held in proptest::collection::vec("(system:)?[a-z:]{1,12}", 0..4),
            asked in proptest::collection::vec("(system:)?[a-z:]{1,12}", 0..4),
        ) {
            let held: Vec<String> = held.into_iter().filter(|g| !SUPERUSER_GROUPS.contains(&g.as_str())).collect();
            let requester = UserInfo { name: "u".into(), groups: held.clone(), ..Default::default() };
            let none = BTreeMap::new();
            if gatekeeper(&requester, &req("target", &asked, &none)).is_ok() {
                for g in &asked {
                    prop_assert!(!is_privileged_group(g) || held.contains(g));
                }
            }
        }

        /// A scoped identity is in scope exactly in its own cluster.
        #[test]
        fn scope_is_exact(a in "[a-z0-9]{1,16}", b in "[a-z0-9]{1,16}") {
            let u = scoped(UserInfo::default(), &a);
            prop_assert!(in_scope(&u, Some(&a)));
            prop_assert_eq!(in_scope(&u, Some(&b)), a == b);
        }
    }
}
