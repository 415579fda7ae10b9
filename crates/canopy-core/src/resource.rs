//! Descriptors of served resources: what discovery shows and what the registry needs to
//! know about a resource before it looks at any object.

/// How object names of a resource are validated (kube's `ValidateNameFunc`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain (most resources).
    DnsSubdomain,
    /// RFC 1123 label (namespaces).
    DnsLabel,
    /// Anything that is a valid path segment (RBAC objects).
    PathSegment,
}

/// A resource served at `/api(s)/<group>/<version>/<plural>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceDescriptor {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub list_kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub verbs: Vec<String>,
    /// "status", "finalize", "scale".
    pub subresources: Vec<String>,
    pub name_rule: NameRule,
    /// Create-only virtual resources (reviews): never stored.
    pub virtual_create_only: bool,
    /// Another resource's storage this one shares (events.k8s.io/v1 Events are stored as
    /// core/v1 Events and converted by the strategy).
    pub shared_storage: Option<String>,
}

impl ResourceDescriptor {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key of the resource: `<group>/<plural>` (core group empty).
    pub fn storage_key(&self) -> String {
        match &self.shared_storage {
            Some(k) => k.clone(),
            None => format!("{}/{}", self.group, self.plural),
        }
    }

    pub fn has_subresource(&self, s: &str) -> bool {
        self.subresources.iter().any(|x| x == s)
    }

    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// `configmaps` or `roles.rbac.authorization.k8s.io`.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }
}

/// The full verb set of a stored resource.
pub const STORED_VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The descriptor of a stored kind with every verb of the generic store (for the
/// built-ins here and the kinds plug-ins register).
#[allow(clippy::too_many_arguments)]
pub fn stored(
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
    namespaced: bool,
    short: &[&str],
    subresources: &[&str],
    name_rule: NameRule,
) -> ResourceDescriptor {
    ResourceDescriptor {
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        categories: Vec::new(),
        verbs: STORED_VERBS.iter().map(|s| s.to_string()).collect(),
        subresources: subresources.iter().map(|s| s.to_string()).collect(),
        name_rule,
        virtual_create_only: false,
        shared_storage: None,
    }
}

fn review(group: &str, kind: &str, plural: &str, namespaced: bool) -> ResourceDescriptor {
    ResourceDescriptor {
        group: group.into(),
        version: "v1".into(),
        kind: kind.into(),
        list_kind: format!("{kind}List"),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        namespaced,
        short_names: Vec::new(),
        categories: Vec::new(),
        verbs: vec!["create".into()],
        subresources: Vec::new(),
        name_rule: NameRule::DnsSubdomain,
        virtual_create_only: true,
        shared_storage: None,
    }
}

pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
pub const KCP_CORE_GROUP: &str = "core.kcp.io";
pub const APIEXTENSIONS_GROUP: &str = "apiextensions.k8s.io";
pub const TENANCY_GROUP: &str = "tenancy.kcp.io";

/// Every built-in resource a logical cluster serves.
pub fn builtin_resources() -> Vec<ResourceDescriptor> {
    use NameRule::*;
    let mut v = vec![
        ResourceDescriptor {
            // kube serves no deletecollection of namespaces
            verbs: STORED_VERBS
                .iter()
                .filter(|v| **v != "deletecollection")
                .map(|v| v.to_string())
                .collect(),
            ..stored(
                "",
                "v1",
                "Namespace",
                "namespaces",
                false,
                &["ns"],
                &["status", "finalize"],
                DnsLabel,
            )
        },
        stored(
            "",
            "v1",
            "ConfigMap",
            "configmaps",
            true,
            &["cm"],
            &[],
            DnsSubdomain,
        ),
        stored("", "v1", "Secret", "secrets", true, &[], &[], DnsSubdomain),
        stored(
            "",
            "v1",
            "ServiceAccount",
            "serviceaccounts",
            true,
            &["sa"],
            &[],
            DnsSubdomain,
        ),
        stored(
            "",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            &[],
            DnsSubdomain,
        ),
        stored(
            "events.k8s.io",
            "v1",
            "Event",
            "events",
            true,
            &["ev"],
            &[],
            DnsSubdomain,
        ),
        stored(
            "coordination.k8s.io",
            "v1",
            "Lease",
            "leases",
            true,
            &[],
            &[],
            DnsSubdomain,
        ),
        stored(
            RBAC_GROUP,
            "v1",
            "Role",
            "roles",
            true,
            &[],
            &[],
            PathSegment,
        ),
        stored(
            RBAC_GROUP,
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
            &[],
            &[],
            PathSegment,
        ),
        stored(
            RBAC_GROUP,
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
            &[],
            &[],
            PathSegment,
        ),
        stored(
            RBAC_GROUP,
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
            &[],
            &[],
            PathSegment,
        ),
        stored(
            APIEXTENSIONS_GROUP,
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
            &["crd", "crds"],
            &["status"],
            DnsSubdomain,
        ),
        review(
            "authentication.k8s.io",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
        ),
        review(
            "authentication.k8s.io",
            "TokenReview",
            "tokenreviews",
            false,
        ),
        review(
            "authorization.k8s.io",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
        ),
        review(
            "authorization.k8s.io",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
        ),
        review(
            "authorization.k8s.io",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
        ),
        review(
            "authorization.k8s.io",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
        ),
    ];
    // Events are not in the "all" category; nothing else here is either (kube puts
    // only workload kinds there).
    for d in v.iter_mut() {
        if d.group == "events.k8s.io" {
            d.shared_storage = Some("/events".into());
        }
        if d.kind == "CustomResourceDefinition" {
            d.categories = vec!["api-extensions".into()];
        }
    }
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn home_names_are_distinct_and_valid() {
        use super::home_workspace_name as h;
        let names = [
            "bob.smith",
            "Bob-Smith",
            "bob-smith",
            "BOB.SMITH",
            "bob@smith",
            "ü",
            "",
            &"x".repeat(300),
        ];
        let homes: Vec<String> = names.iter().map(|n| h(n)).collect();
        for (i, a) in homes.iter().enumerate() {
            assert!(a.len() <= 63 && !a.is_empty(), "{a}");
            assert!(
                a.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
                "{a}"
            );
            assert!(!a.starts_with('-') && !a.ends_with('-'), "{a}");
            for b in &homes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(h("bob.smith"), h("bob.smith"));
        assert!(h("bob.smith").starts_with("bob-smith-"));
    }
    use super::*;

    #[test]
    fn builtins_are_unique_per_group_resource() {
        let all = builtin_resources();
        let mut seen = std::collections::HashSet::new();
        for d in &all {
            assert!(
                seen.insert((d.group.clone(), d.plural.clone())),
                "duplicate {}",
                d.qualified()
            );
        }
        let ns = all.iter().find(|d| d.plural == "namespaces").unwrap();
        assert!(!ns.namespaced);
        assert!(!ns.verbs.iter().any(|v| v == "deletecollection"));
        assert!(ns.has_subresource("finalize"));
        assert_eq!(ns.api_version(), "v1");
        let role = all.iter().find(|d| d.plural == "roles").unwrap();
        assert_eq!(role.api_version(), "rbac.authorization.k8s.io/v1");
        assert_eq!(role.storage_key(), "rbac.authorization.k8s.io/roles");
    }
}

/// The discovery priority of an API group, as kube-apiserver's aggregator assigns it
/// (`GroupPriorityMinimum` of the built-in APIServices); every other group (CRDs, kcp's
/// groups) gets a CRD's 1000. Groups are listed by priority, highest first.
pub fn group_priority(group: &str) -> u32 {
    match group {
        "" => 18000,
        "apiregistration.k8s.io" | "apps" => 17800,
        "events.k8s.io" => 17750,
        "authentication.k8s.io" => 17700,
        "authorization.k8s.io" => 17600,
        "autoscaling" => 17500,
        "batch" => 17400,
        "certificates.k8s.io" => 17300,
        "networking.k8s.io" => 17200,
        "policy" => 17100,
        "rbac.authorization.k8s.io" => 17000,
        "storage.k8s.io" => 16800,
        "apiextensions.k8s.io" | "admissionregistration.k8s.io" => 16700,
        "scheduling.k8s.io" => 16600,
        "coordination.k8s.io" => 16500,
        "node.k8s.io" => 16300,
        "discovery.k8s.io" | "resource.k8s.io" => 16200,
        "flowcontrol.apiserver.k8s.io" => 16100,
        "internal.apiserver.k8s.io" | "storagemigration.k8s.io" => 30,
        _ => 1000,
    }
}

/// kube's order of API groups in discovery (kube-aggregator sorts APIServices by
/// `GroupPriorityMinimum`, highest first, then by APIService name `<version>.<group>`,
/// and lists each group where its first APIService falls): `versions` are the group's
/// served versions.
pub fn group_order_key<'a>(
    group: &str,
    versions: impl IntoIterator<Item = &'a str>,
) -> (std::cmp::Reverse<u32>, String) {
    let first = versions
        .into_iter()
        .map(|v| format!("{v}.{group}"))
        .min()
        .unwrap_or_else(|| group.to_string());
    (std::cmp::Reverse(group_priority(group)), first)
}

/// Parses a Kubernetes-like version (`v1`, `v2beta1`, `v1alpha3`) into a sort key:
/// (stability: GA 2, beta 1, alpha 0; major; minor).
fn kube_version_key(v: &str) -> Option<(u8, u64, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 || rest.starts_with('0') {
        return None;
    }
    let major: u64 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (stability, num) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        return None;
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit()) || num.starts_with('0') {
        return None;
    }
    Some((stability, major, num.parse().ok()?))
}

/// kube's `CompareKubeAwareVersionStrings`, as an ordering where the preferred version
/// comes first: GA before beta before alpha, higher numbers first, then versions that
/// are not Kubernetes-like, alphabetically.
pub fn kube_version_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (kube_version_key(a), kube_version_key(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

#[cfg(test)]
mod version_order_tests {
    use super::{group_order_key, kube_version_order};

    #[test]
    fn groups_by_priority_then_apiservice_name() {
        let mut g = [
            ("test.com", vec!["v1"]),
            ("rbac.authorization.k8s.io", vec!["v1"]),
            ("bar.com", vec!["v1"]),
            ("tenancy.kcp.io", vec!["v1alpha1"]),
            ("apps", vec!["v1"]),
            ("zeta.io", vec!["v1", "v1beta1"]),
        ];
        g.sort_by_key(|(n, vs)| group_order_key(n, vs.iter().copied()));
        let names: Vec<&str> = g.iter().map(|(n, _)| *n).collect();
        // built-ins by priority; then CRD-level groups (1000) by "<version>.<group>":
        // "v1.bar.com" < "v1.test.com" < "v1.zeta.io" < "v1alpha1.tenancy.kcp.io"
        assert_eq!(
            names,
            vec![
                "apps",
                "rbac.authorization.k8s.io",
                "bar.com",
                "test.com",
                "zeta.io",
                "tenancy.kcp.io"
            ]
        );
    }

    #[test]
    fn kube_aware_order() {
        let mut v = vec![
            "foo1",
            "v1alpha1",
            "v10",
            "v2beta1",
            "v1",
            "v11alpha2",
            "v12alpha1",
            "v2",
            "v10beta3",
            "v3beta1",
            "foo10",
            "v1beta2",
        ];
        v.sort_by(|a, b| kube_version_order(a, b));
        assert_eq!(
            v,
            vec![
                "v10",
                "v2",
                "v1",
                "v10beta3",
                "v3beta1",
                "v2beta1",
                "v1beta2",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "foo1",
                "foo10"
            ]
        );
    }
}

/// kcp's short hash of a shard name, as stored in a Workspace's
/// `internal.tenancy.kcp.io/shard` annotation: the first 8 characters of the lower-case
/// base36 form of the name's SHA-224.
/// The name of a user's home workspace under `root:users`: a readable prefix of the user
/// name (lower-case, other characters as `-`, at most 40 characters) and 12 base36
/// characters of the SHA-224 of the exact user name, so distinct users always get
/// distinct homes (`bob.smith` and `Bob-Smith` differ in their hash) and the mapping is
/// the same on every shard and after every restart.
pub fn home_workspace_name(user: &str) -> String {
    let readable: String = user
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    let readable = readable.trim_matches('-');
    let hash: String = shard_hash(user).chars().take(12).collect();
    if readable.is_empty() {
        format!("u-{hash}")
    } else {
        format!("{readable}-{hash}")
    }
}

pub fn shard_hash(shard_name: &str) -> String {
    use sha2::{Digest, Sha224};
    let digest = Sha224::digest(shard_name.as_bytes());
    // base36 of the digest as one big-endian integer, by repeated division
    let mut num: Vec<u8> = digest.iter().copied().skip_while(|b| *b == 0).collect();
    let mut digits = Vec::new();
    while !num.is_empty() {
        let mut rem: u32 = 0;
        let mut next = Vec::with_capacity(num.len());
        for b in &num {
            let acc = (rem << 8) | u32::from(*b);
            let q = acc / 36;
            rem = acc % 36;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        // rem < 36: always a digit of the alphabet
        digits.extend(char::from_digit(rem, 36).map(|c| c as u8));
        num = next;
    }
    digits.reverse();
    String::from_utf8(digits)
        .unwrap_or_default()
        .chars()
        .take(8)
        .collect()
}

#[cfg(test)]
mod shard_hash_tests {
    use super::shard_hash;

    #[test]
    fn base36_of_sha224() {
        // expected values computed independently (Python: int.from_bytes(sha224(name),
        // "big") written in base 36), which is what Go's big.Int.Text(36) gives
        assert_eq!(shard_hash("root"), "1pfxsevk");
        assert_eq!(shard_hash("shard-1"), "2e1tfbst");
    }
}
