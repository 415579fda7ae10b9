//! RBAC evaluation, as k8s.io/kubernetes' `rbac` authorizer does it, over Roles and
//! bindings given as JSON (pure: the caller supplies the objects of one logical cluster).

use serde_json::Value;

use crate::UserInfo;

/// One `rules[]` entry of a Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl PolicyRule {
    pub fn from_json(v: &Value) -> PolicyRule {
        PolicyRule {
            verbs: strings(v.get("verbs")),
            api_groups: strings(v.get("apiGroups")),
            resources: strings(v.get("resources")),
            resource_names: strings(v.get("resourceNames")),
            non_resource_urls: strings(v.get("nonResourceURLs")),
        }
    }

    /// Rules of a Role/ClusterRole object.
    pub fn from_role(role: &Value) -> Vec<PolicyRule> {
        role.get("rules")
            .and_then(Value::as_array)
            .map(|rs| rs.iter().map(PolicyRule::from_json).collect())
            .unwrap_or_default()
    }

    pub fn to_json(&self) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("verbs".into(), self.verbs.clone().into());
        if !self.api_groups.is_empty() {
            m.insert("apiGroups".into(), self.api_groups.clone().into());
        }
        if !self.resources.is_empty() {
            m.insert("resources".into(), self.resources.clone().into());
        }
        if !self.resource_names.is_empty() {
            m.insert("resourceNames".into(), self.resource_names.clone().into());
        }
        if !self.non_resource_urls.is_empty() {
            m.insert(
                "nonResourceURLs".into(),
                self.non_resource_urls.clone().into(),
            );
        }
        Value::Object(m)
    }

    fn verb_matches(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == "*" || v == verb)
    }

    fn group_matches(&self, group: &str) -> bool {
        self.api_groups.iter().any(|g| g == "*" || g == group)
    }

    fn resource_matches(&self, resource: &str, subresource: &str) -> bool {
        let combined = if subresource.is_empty() {
            resource.to_string()
        } else {
            format!("{resource}/{subresource}")
        };
        self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!subresource.is_empty() && *r == format!("*/{subresource}"))
        })
    }

    fn name_matches(&self, name: &str) -> bool {
        self.resource_names.is_empty() || self.resource_names.iter().any(|n| n == name)
    }

    fn url_matches(&self, path: &str) -> bool {
        self.non_resource_urls.iter().any(|u| {
            u == "*" || u == path || (u.ends_with('*') && path.starts_with(&u[..u.len() - 1]))
        })
    }

    /// Whether this rule allows the request.
    pub fn allows(&self, a: &Attributes<'_>) -> bool {
        if !self.verb_matches(a.verb) {
            return false;
        }
        if a.is_resource_request {
            self.group_matches(a.api_group)
                && self.resource_matches(a.resource, a.subresource)
                && self.name_matches(a.name)
        } else {
            self.url_matches(a.path)
        }
    }
}

/// What is being asked, by whom.
#[derive(Debug, Clone)]
pub struct Attributes<'a> {
    pub user: &'a UserInfo,
    pub verb: &'a str,
    pub is_resource_request: bool,
    pub namespace: &'a str,
    pub api_group: &'a str,
    pub resource: &'a str,
    pub subresource: &'a str,
    pub name: &'a str,
    /// For non-resource requests.
    pub path: &'a str,
}

/// The RBAC objects of one logical cluster.
pub trait RbacObjects {
    /// Calls `f` with every ClusterRoleBinding.
    fn cluster_role_bindings(&self, f: &mut dyn FnMut(&Value));
    /// Calls `f` with every RoleBinding of `namespace`.
    fn role_bindings(&self, namespace: &str, f: &mut dyn FnMut(&Value));
    /// The ClusterRole named `name`, if any, to `f`.
    fn cluster_role(&self, name: &str, f: &mut dyn FnMut(&Value));
    /// The Role `namespace/name`, if any, to `f`.
    fn role(&self, namespace: &str, name: &str, f: &mut dyn FnMut(&Value));
}

/// Whether a binding's `subjects` include the user. `binding_ns` defaults service
/// account subjects' namespace for RoleBindings.
pub fn subjects_match(binding: &Value, user: &UserInfo, binding_ns: &str) -> bool {
    let Some(subjects) = binding.get("subjects").and_then(Value::as_array) else {
        return false;
    };
    subjects.iter().any(|s| {
        let kind = s.get("kind").and_then(Value::as_str).unwrap_or("");
        let name = s.get("name").and_then(Value::as_str).unwrap_or("");
        match kind {
            "User" => user.name == name,
            "Group" => user.groups.iter().any(|g| g == name),
            "ServiceAccount" => {
                let ns = s
                    .get("namespace")
                    .and_then(Value::as_str)
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_ns);
                user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn role_ref(binding: &Value) -> (&str, &str) {
    let r = binding.get("roleRef");
    let kind = r
        .and_then(|r| r.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = r
        .and_then(|r| r.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("");
    (kind, name)
}

/// The rules that apply to `user` in `namespace` (cluster-wide rules when empty), with a
/// description of the binding that grants each (for reasons).
pub fn rules_for(
    src: &dyn RbacObjects,
    user: &UserInfo,
    namespace: &str,
) -> Vec<(String, PolicyRule)> {
    let mut out = Vec::new();
    src.cluster_role_bindings(&mut |b| {
        if !subjects_match(b, user, "") {
            return;
        }
        let (kind, name) = role_ref(b);
        if kind != "ClusterRole" {
            return;
        }
        let why = format!(
            "RBAC: allowed by ClusterRoleBinding {:?} of ClusterRole {:?} to User {:?}",
            crate::meta_name(b),
            name,
            user.name
        );
        src.cluster_role(name, &mut |role| {
            for r in PolicyRule::from_role(role) {
                out.push((why.clone(), r));
            }
        });
    });
    if !namespace.is_empty() {
        src.role_bindings(namespace, &mut |b| {
            if !subjects_match(b, user, namespace) {
                return;
            }
            let (kind, name) = role_ref(b);
            let why = format!(
                "RBAC: allowed by RoleBinding \"{}/{}\" of {kind} {:?} to User {:?}",
                crate::meta_name(b),
                namespace,
                name,
                user.name
            );
            let mut add = |role: &Value| {
                for r in PolicyRule::from_role(role) {
                    out.push((why.clone(), r));
                }
            };
            match kind {
                "ClusterRole" => src.cluster_role(name, &mut add),
                "Role" => src.role(namespace, name, &mut add),
                _ => {}
            }
        });
    }
    out
}

/// The parts of `servant` (the rules a Role grants) that `owner` (the rules a user
/// holds) does not cover, as k8s.io/component-helpers' `rbac/validation.Covers`: each
/// servant rule is broken into single (verb, group, resource, name) or (verb, URL)
/// atoms and each atom must be allowed by one owner rule. Empty: fully covered.
pub fn uncovered(owner: &[PolicyRule], servant: &[PolicyRule]) -> Vec<PolicyRule> {
    let mut missing = Vec::new();
    for rule in servant {
        for atom in atoms(rule) {
            if !owner.iter().any(|o| rule_covers(o, &atom)) {
                missing.push(atom);
            }
        }
    }
    missing
}

/// A rule broken into rules of one verb, group, resource and name each (or one verb and
/// one URL).
fn atoms(r: &PolicyRule) -> Vec<PolicyRule> {
    let one = |s: &String| vec![s.clone()];
    let mut out = Vec::new();
    for verb in &r.verbs {
        for group in &r.api_groups {
            for resource in &r.resources {
                if r.resource_names.is_empty() {
                    out.push(PolicyRule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        ..Default::default()
                    });
                }
                for name in &r.resource_names {
                    out.push(PolicyRule {
                        verbs: one(verb),
                        api_groups: one(group),
                        resources: one(resource),
                        resource_names: one(name),
                        ..Default::default()
                    });
                }
            }
        }
        for url in &r.non_resource_urls {
            out.push(PolicyRule {
                verbs: one(verb),
                non_resource_urls: one(url),
                ..Default::default()
            });
        }
    }
    out
}

fn has(list: &[String], s: &str) -> bool {
    list.iter().any(|x| x == s)
}

/// kube's `ruleCovers` for one atom.
fn rule_covers(owner: &PolicyRule, atom: &PolicyRule) -> bool {
    let verbs = has(&owner.verbs, "*") || atom.verbs.iter().all(|v| has(&owner.verbs, v));
    if !verbs {
        return false;
    }
    if !atom.non_resource_urls.is_empty() {
        return atom.non_resource_urls.iter().all(|u| {
            owner.non_resource_urls.iter().any(|o| {
                o == "*" || o == u || (o.ends_with('*') && u.starts_with(&o[..o.len() - 1]))
            })
        });
    }
    let groups =
        has(&owner.api_groups, "*") || atom.api_groups.iter().all(|g| has(&owner.api_groups, g));
    let resources = has(&owner.resources, "*")
        || atom.resources.iter().all(|r| {
            has(&owner.resources, r)
                || r.split_once('/')
                    .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")))
        });
    let names = owner.resource_names.is_empty()
        || (!atom.resource_names.is_empty()
            && atom
                .resource_names
                .iter()
                .all(|n| has(&owner.resource_names, n)));
    groups && resources && names
}

/// A rule as kube prints it in escalation errors (`rbacv1helpers.CompactString`).
pub fn compact(r: &PolicyRule) -> String {
    let list = |l: &[String]| {
        l.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut parts = Vec::new();
    if !r.api_groups.is_empty() || r.non_resource_urls.is_empty() {
        parts.push(format!("APIGroups:[{}]", list(&r.api_groups)));
    }
    if !r.resources.is_empty() {
        parts.push(format!("Resources:[{}]", list(&r.resources)));
    }
    if !r.resource_names.is_empty() {
        parts.push(format!("ResourceNames:[{}]", list(&r.resource_names)));
    }
    if !r.non_resource_urls.is_empty() {
        parts.push(format!("NonResourceURLs:[{}]", list(&r.non_resource_urls)));
    }
    parts.push(format!("Verbs:[{}]", list(&r.verbs)));
    format!("{{{}}}", parts.join(", "))
}

/// Evaluates a request: `Some(reason)` when allowed.
pub fn authorize(src: &dyn RbacObjects, a: &Attributes<'_>) -> Option<String> {
    rules_for(src, a.user, a.namespace)
        .into_iter()
        .find(|(_, r)| r.allows(a))
        .map(|(why, _)| why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Default)]
    struct Objs {
        crbs: Vec<Value>,
        rbs: Vec<(String, Value)>,
        crs: Vec<Value>,
        roles: Vec<(String, Value)>,
    }
    impl RbacObjects for Objs {
        fn cluster_role_bindings(&self, f: &mut dyn FnMut(&Value)) {
            self.crbs.iter().for_each(f);
        }
        fn role_bindings(&self, ns: &str, f: &mut dyn FnMut(&Value)) {
            self.rbs
                .iter()
                .filter(|(n, _)| n == ns)
                .for_each(|(_, b)| f(b));
        }
        fn cluster_role(&self, name: &str, f: &mut dyn FnMut(&Value)) {
            self.crs
                .iter()
                .filter(|r| r["metadata"]["name"] == name)
                .for_each(f);
        }
        fn role(&self, ns: &str, name: &str, f: &mut dyn FnMut(&Value)) {
            self.roles
                .iter()
                .filter(|(n, r)| n == ns && r["metadata"]["name"] == name)
                .for_each(|(_, r)| f(r));
        }
    }

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
            extra: Default::default(),
        }
    }

    fn attrs<'a>(
        u: &'a UserInfo,
        verb: &'a str,
        ns: &'a str,
        res: &'a str,
        name: &'a str,
    ) -> Attributes<'a> {
        Attributes {
            user: u,
            verb,
            is_resource_request: true,
            namespace: ns,
            api_group: "",
            resource: res,
            subresource: "",
            name,
            path: "",
        }
    }

    fn objs() -> Objs {
        Objs {
            crs: vec![
                json!({"metadata": {"name": "reader"}, "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}]}),
                json!({"metadata": {"name": "access"}, "rules": [{"verbs": ["access"], "nonResourceURLs": ["/"]}, {"verbs": ["get"], "nonResourceURLs": ["/openapi/*"]}]}),
            ],
            crbs: vec![
                json!({"metadata": {"name": "devs-access"}, "roleRef": {"kind": "ClusterRole", "name": "access"}, "subjects": [{"kind": "Group", "name": "devs"}]}),
            ],
            roles: vec![(
                "team".into(),
                json!({"metadata": {"name": "cm-one"}, "rules": [{"verbs": ["update"], "apiGroups": [""], "resources": ["configmaps", "secrets/status"], "resourceNames": ["one"]}]}),
            )],
            rbs: vec![
                (
                    "team".into(),
                    json!({"metadata": {"name": "alice-reader"}, "roleRef": {"kind": "ClusterRole", "name": "reader"}, "subjects": [{"kind": "User", "name": "alice"}]}),
                ),
                (
                    "team".into(),
                    json!({"metadata": {"name": "alice-one"}, "roleRef": {"kind": "Role", "name": "cm-one"}, "subjects": [{"kind": "User", "name": "alice"}, {"kind": "ServiceAccount", "name": "bot"}]}),
                ),
            ],
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        PolicyRule {
            verbs: v(verbs),
            api_groups: v(groups),
            resources: v(resources),
            resource_names: v(names),
            non_resource_urls: vec![],
        }
    }

    #[test]
    fn covers_as_kube() {
        let admin = vec![rule(&["*"], &["*"], &["*"], &[])];
        let cm = vec![rule(&["get", "list"], &[""], &["configmaps"], &[])];
        let secrets = vec![rule(&["get"], &[""], &["secrets"], &[])];
        assert!(uncovered(&admin, &secrets).is_empty());
        assert!(uncovered(&cm, &cm).is_empty());
        let missing = uncovered(&cm, &secrets);
        assert_eq!(missing.len(), 1);
        assert_eq!(
            compact(&missing[0]),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}"#
        );
        // a name-restricted grant does not cover an unrestricted one, and vice versa
        let named = vec![rule(&["get"], &[""], &["configmaps"], &["a"])];
        assert!(!uncovered(&named, &cm).is_empty());
        assert!(uncovered(&cm, &[rule(&["get"], &[""], &["configmaps"], &["a"])]).is_empty());
        assert!(uncovered(&named, &named).is_empty());
        // subresource wildcards
        let status = vec![rule(&["update"], &["apps"], &["*/status"], &[])];
        assert!(uncovered(
            &status,
            &[rule(&["update"], &["apps"], &["deployments/status"], &[])]
        )
        .is_empty());
        assert!(!uncovered(
            &status,
            &[rule(&["update"], &["apps"], &["deployments"], &[])]
        )
        .is_empty());
        // wildcards asked for must be held as wildcards
        assert!(!uncovered(&cm, &[rule(&["*"], &[""], &["configmaps"], &[])]).is_empty());
        // non-resource URLs
        let urls = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz/*".into()],
            ..Default::default()
        };
        let mut asked = urls.clone();
        asked.non_resource_urls = vec!["/healthz/etcd".into()];
        assert!(uncovered(std::slice::from_ref(&urls), std::slice::from_ref(&asked)).is_empty());
        asked.non_resource_urls = vec!["/metrics".into()];
        assert!(!uncovered(&[urls], &[asked]).is_empty());
    }

    proptest::proptest! {
        /// Whatever `uncovered` reports as covered is allowed by the owner for every
        /// concrete request the servant rule allows.
        #[test]
        fn covered_means_allowed(
            ov in proptest::sample::subsequence(vec!["get", "list", "*"], 1..3),
            og in proptest::sample::subsequence(vec!["", "apps", "*"], 1..3),
            or in proptest::sample::subsequence(vec!["configmaps", "secrets", "*", "*/status"], 1..4),
            on in proptest::sample::subsequence(vec!["a", "b"], 0..2),
            sv in proptest::sample::subsequence(vec!["get", "list"], 1..3),
            sg in proptest::sample::subsequence(vec!["", "apps"], 1..3),
            sr in proptest::sample::subsequence(vec!["configmaps", "secrets", "deployments/status"], 1..3),
            sn in proptest::sample::subsequence(vec!["a", "b"], 0..2),
        ) {
            let owner = rule(&ov, &og, &or, &on);
            let servant = rule(&sv, &sg, &sr, &sn);
            if uncovered(std::slice::from_ref(&owner), std::slice::from_ref(&servant)).is_empty() {
                let u = user("u", &[]);
                for v in &sv { for g in &sg { for r in &sr {
                    let (res, sub) = r.split_once('/').unwrap_or((r, ""));
                    let names: Vec<&str> = if sn.is_empty() { vec!["a", "b", "zzz"] } else { sn.clone() };
                    for n in names {
                        let a = Attributes { user: &u, verb: v, is_resource_request: true, namespace: "",
                            api_group: g, resource: res, subresource: sub, name: n, path: "" };
                        proptest::prop_assert!(owner.allows(&a), "{:?} should allow {v} {g} {r} {n}", owner);
                    }
                }}}
            }
        }
    }

    #[test]
    fn role_bindings_are_namespaced() {
        let o = objs();
        let alice = user("alice", &[]);
        assert!(authorize(&o, &attrs(&alice, "list", "team", "configmaps", "")).is_some());
        assert!(authorize(&o, &attrs(&alice, "list", "other", "configmaps", "")).is_none());
        assert!(authorize(&o, &attrs(&alice, "list", "", "configmaps", "")).is_none());
        assert!(authorize(&o, &attrs(&alice, "delete", "team", "configmaps", "x")).is_none());
    }

    #[test]
    fn resource_names_and_subresources() {
        let o = objs();
        let alice = user("alice", &[]);
        assert!(authorize(&o, &attrs(&alice, "update", "team", "configmaps", "one")).is_some());
        assert!(authorize(&o, &attrs(&alice, "update", "team", "configmaps", "two")).is_none());
        let mut a = attrs(&alice, "update", "team", "secrets", "one");
        assert!(authorize(&o, &a).is_none());
        a.subresource = "status";
        assert!(authorize(&o, &a).is_some());
    }

    #[test]
    fn service_accounts_default_to_the_binding_namespace() {
        let o = objs();
        let bot = user("system:serviceaccount:team:bot", &[]);
        assert!(authorize(&o, &attrs(&bot, "update", "team", "configmaps", "one")).is_some());
        let other = user("system:serviceaccount:other:bot", &[]);
        assert!(authorize(&o, &attrs(&other, "update", "team", "configmaps", "one")).is_none());
    }

    #[test]
    fn non_resource_urls_and_groups() {
        let o = objs();
        let dev = user("bob", &["devs"]);
        let mut a = attrs(&dev, "access", "", "", "");
        a.is_resource_request = false;
        a.path = "/";
        assert!(authorize(&o, &a).is_some());
        a.verb = "get";
        a.path = "/openapi/v3/api/v1";
        assert!(authorize(&o, &a).is_some());
        a.path = "/version";
        assert!(authorize(&o, &a).is_none());
        let stranger = user("eve", &["others"]);
        let mut b = a.clone();
        b.user = &stranger;
        b.verb = "access";
        b.path = "/";
        assert!(authorize(&o, &b).is_none());
    }
}
