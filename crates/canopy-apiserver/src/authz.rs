//! Authorization: superuser groups, then RBAC evaluated inside the logical cluster over
//! its own Roles and bindings (read from the watch cache); impersonation.

use canopy_auth::rbac::{self, Attributes, PolicyRule, RbacObjects};
use canopy_auth::{impersonation, UserInfo, SUPERUSER_GROUPS};
use canopy_core::{ApiError, RequestInfo, Subject};
use canopy_storage::{ObjectKey, Store};
use http::HeaderMap;
use serde_json::Value;

use crate::ApiServer;

pub fn is_superuser(user: &UserInfo) -> bool {
    SUPERUSER_GROUPS.iter().any(|g| user.in_group(g))
}

/// RBAC objects of one logical cluster, read from the store.
pub struct StoreRbac<'a> {
    pub store: &'a Store,
    pub cluster: &'a str,
}

impl StoreRbac<'_> {
    fn each(&self, resource: &str, namespace: Option<&str>, f: &mut dyn FnMut(&Value)) {
        for o in self.store.list_all(resource, Some(self.cluster), namespace) {
            f(&o.value);
        }
    }
    fn one(&self, resource: &str, namespace: &str, name: &str, f: &mut dyn FnMut(&Value)) {
        if let Some(o) = self
            .store
            .get(&ObjectKey::new(resource, self.cluster, namespace, name))
        {
            f(&o.value);
        }
    }
}

const CRB: &str = "rbac.authorization.k8s.io/clusterrolebindings";
const RB: &str = "rbac.authorization.k8s.io/rolebindings";
const CR: &str = "rbac.authorization.k8s.io/clusterroles";
const ROLE: &str = "rbac.authorization.k8s.io/roles";

impl RbacObjects for StoreRbac<'_> {
    fn cluster_role_bindings(&self, f: &mut dyn FnMut(&Value)) {
        self.each(CRB, None, f)
    }
    fn role_bindings(&self, namespace: &str, f: &mut dyn FnMut(&Value)) {
        self.each(RB, Some(namespace), f)
    }
    fn cluster_role(&self, name: &str, f: &mut dyn FnMut(&Value)) {
        self.one(CR, "", name, f)
    }
    fn role(&self, namespace: &str, name: &str, f: &mut dyn FnMut(&Value)) {
        self.one(ROLE, namespace, name, f)
    }
}

/// Whether `user` may do what `attrs` describe in `cluster`. An identity confined to
/// other logical clusters (an impersonated one, see [`impersonation::in_scope`]) may do
/// nothing here, whatever its groups.
pub fn allowed(store: &Store, cluster: &str, attrs: &Attributes<'_>) -> Option<String> {
    if !impersonation::in_scope(attrs.user, Some(cluster)) {
        return None;
    }
    if is_superuser(attrs.user) {
        return Some("superuser".into());
    }
    rbac::authorize(&StoreRbac { store, cluster }, attrs)
}

/// The rules that apply to `user` in `cluster` and `namespace`.
pub fn rules(store: &Store, cluster: &str, user: &UserInfo, namespace: &str) -> Vec<PolicyRule> {
    if !impersonation::in_scope(user, Some(cluster)) {
        return Vec::new();
    }
    if is_superuser(user) {
        return vec![
            PolicyRule {
                verbs: vec!["*".into()],
                api_groups: vec!["*".into()],
                resources: vec!["*".into()],
                ..Default::default()
            },
            PolicyRule {
                verbs: vec!["*".into()],
                non_resource_urls: vec!["*".into()],
                ..Default::default()
            },
        ];
    }
    rbac::rules_for(&StoreRbac { store, cluster }, user, namespace)
        .into_iter()
        .map(|(_, r)| r)
        .collect()
}

fn attributes<'a>(user: &'a UserInfo, info: &'a RequestInfo) -> Attributes<'a> {
    let group = if info.api_prefix == "api" {
        ""
    } else {
        info.group.as_str()
    };
    Attributes {
        user,
        verb: &info.verb,
        is_resource_request: info.is_resource_request,
        namespace: &info.namespace,
        api_group: group,
        resource: &info.resource,
        subresource: &info.subresource,
        name: &info.name,
        path: &info.path,
    }
}

/// The 403 kube's RBAC authorizer returns for this request.
pub fn forbidden_for(user: &UserInfo, info: &RequestInfo) -> ApiError {
    info.forbidden(&user.name)
}

/// Whether `user` may enter logical cluster `cluster` at all: kcp's model, the
/// non-resource verb `access` on `/` granted by RBAC inside that logical cluster (so the
/// check needs nothing from the parent, wherever it lives).
pub fn has_access(store: &Store, cluster: &str, user: &UserInfo) -> bool {
    if !impersonation::in_scope(user, Some(cluster)) {
        return false;
    }
    if is_superuser(user) {
        return true;
    }
    let attrs = Attributes {
        user,
        verb: "access",
        is_resource_request: false,
        namespace: "",
        api_group: "",
        resource: "",
        subresource: "",
        name: "",
        path: "/",
    };
    rbac::authorize(&StoreRbac { store, cluster }, &attrs).is_some()
}

/// Authorizes a request that has passed authentication and cluster resolution.
pub fn authorize(
    api: &ApiServer,
    cluster: Option<&str>,
    user: &UserInfo,
    info: &RequestInfo,
) -> Result<(), ApiError> {
    if !impersonation::in_scope(user, cluster) {
        return Err(forbidden_for(user, info));
    }
    if is_superuser(user) {
        return Ok(());
    }
    let Some(cluster) = cluster else {
        return Err(forbidden_for(user, info));
    };
    let mut attrs = attributes(user, info);
    // RBAC checks the namespace object itself at cluster scope.
    let ns_copy;
    if info.resource == "namespaces" && info.is_resource_request {
        ns_copy = String::new();
        attrs.namespace = &ns_copy;
    }
    let verb_owned;
    if !info.is_resource_request {
        verb_owned = info.verb.clone();
        attrs.verb = &verb_owned;
    }
    match allowed(&api.inner.store, cluster, &attrs) {
        Some(_) => Ok(()),
        None => Err(forbidden_for(user, info)),
    }
}

/// Applies `Impersonate-*` headers: the gatekeeper first (no privileged group, system
/// user or reserved extra the caller does not hold, [`impersonation::gatekeeper`]), then
/// RBAC: the caller must be allowed to `impersonate` the user, each group, the uid and
/// each extra value, in the target logical cluster. The identity it yields is confined to
/// that logical cluster (kcp's `authentication.kcp.io/scopes: cluster:<name>`).
pub fn impersonate(
    api: &ApiServer,
    cluster: Option<&str>,
    headers: &HeaderMap,
    user: UserInfo,
) -> Result<UserInfo, ApiError> {
    let name = headers
        .get("impersonate-user")
        .and_then(|v| v.to_str().ok());
    let groups: Vec<String> = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    let uid = headers.get("impersonate-uid").and_then(|v| v.to_str().ok());
    let mut extra = std::collections::BTreeMap::<String, Vec<String>>::new();
    for (k, v) in headers.iter() {
        if let Some(key) = k.as_str().strip_prefix("impersonate-extra-") {
            if let Ok(v) = v.to_str() {
                let key = percent_decode(key);
                extra.entry(key).or_default().push(v.to_string());
            }
        }
    }
    let Some(name) = name else {
        if !groups.is_empty() || uid.is_some() || !extra.is_empty() {
            return Err(ApiError::bad_request(
                "requested impersonation of groups, uid or extra without impersonating a user",
            ));
        }
        return Ok(user);
    };
    impersonation::gatekeeper(
        &user,
        &impersonation::Request {
            user: name,
            groups: &groups,
            extra: &extra,
        },
    )
    .map_err(|e| ApiError::forbidden_message(format!("forbidden: {e}")))?;
    let cluster = cluster.unwrap_or("root");
    if !impersonation::in_scope(&user, Some(cluster)) {
        return Err(ApiError::forbidden_message(format!(
            "forbidden: User {:?} cannot impersonate outside its scope",
            user.name
        )));
    }
    let check = |verb: &str,
                 group: &str,
                 resource: &str,
                 rname: &str,
                 namespace: &str|
     -> Result<(), ApiError> {
        let attrs = Attributes {
            user: &user,
            verb,
            is_resource_request: true,
            namespace,
            api_group: group,
            resource,
            subresource: "",
            name: rname,
            path: "",
        };
        if allowed(&api.inner.store, cluster, &attrs).is_some() {
            Ok(())
        } else {
            let kind = if resource == "serviceaccounts" {
                "serviceaccounts"
            } else {
                resource
            };
            Err(ApiError::forbidden(
                &user.name,
                "impersonate",
                Subject {
                    group,
                    resource: kind,
                    name: rname,
                },
                if namespace.is_empty() {
                    " at the cluster scope"
                } else {
                    ""
                },
                None,
            ))
        }
    };
    if let Some(rest) = name.strip_prefix("system:serviceaccount:") {
        let (ns, sa) = rest.split_once(':').unwrap_or(("", rest));
        check("impersonate", "", "serviceaccounts", sa, ns)?;
    } else {
        check("impersonate", "", "users", name, "")?;
    }
    for g in &groups {
        check("impersonate", "", "groups", g, "")?;
    }
    if let Some(u) = uid {
        check("impersonate", "authentication.k8s.io", "uids", u, "")?;
    }
    for (k, vals) in &extra {
        for v in vals {
            check(
                "impersonate",
                "authentication.k8s.io",
                &format!("userextras/{k}"),
                v,
                "",
            )?;
        }
    }
    let mut groups = groups;
    if name.starts_with("system:serviceaccount:") {
        let ns = name
            .trim_start_matches("system:serviceaccount:")
            .split(':')
            .next()
            .unwrap_or("");
        groups.push("system:serviceaccounts".into());
        groups.push(format!("system:serviceaccounts:{ns}"));
    }
    if name != "system:anonymous" && !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    tracing::debug!(by = %user.name, as_user = name, cluster, "impersonating");
    Ok(impersonation::scoped(
        UserInfo {
            name: name.to_string(),
            uid: uid.unwrap_or("").to_string(),
            groups,
            extra,
        },
        cluster,
    ))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&c) = bytes.get(i) {
        if c == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
