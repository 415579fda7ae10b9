//! Background controllers of a shard, driven by the store's event stream:
//!
//! - **namespace**: every active namespace has a `default` ServiceAccount and the
//!   `kube-root-ca.crt` ConfigMap; a namespace being deleted loses its content, then its
//!   `kubernetes` finalizer, then goes away.
//! - **garbage collector**: dependents whose owners (by `ownerReferences` uid) are all
//!   gone are deleted; `foregroundDeletion` owners wait for their dependents; `orphan`
//!   owners release them first.
//! - **ClusterRole aggregation**: an aggregated ClusterRole's rules are the union of the
//!   rules of the ClusterRoles its selectors match.
//!
//! Each controller reconciles from current state (read from the watch cache), so a
//! missed or repeated event only costs a redundant check; after falling behind the event
//! stream they resync everything.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use canopy_core::meta;
use canopy_storage::{EventType, ObjectKey, StoredObject, WatchEvent};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::registry::Resource;
use crate::{rest, ApiServer};

const NAMESPACES: &str = "/namespaces";
const CLUSTER_ROLES: &str = "rbac.authorization.k8s.io/clusterroles";

/// Sets `path` in an object a controller is about to write; `None` (the object is left
/// as it is, with a warning) when a level of the path holds something else than an
/// object, which validation keeps from being stored.
pub(crate) fn set(obj: &mut Value, path: &[&str], value: Value) -> Option<()> {
    match meta::set_path(obj, path, value) {
        Ok(()) => Some(()),
        Err(e) => {
            tracing::warn!(error = %e, "not updating an object of an unexpected shape");
            None
        }
    }
}

/// Sets a status condition, keeping lastTransitionTime when the status is unchanged.
fn set_condition(obj: &mut Value, type_: &str, status: &str, reason: &str, message: &str) {
    let status_obj = meta::ensure_object(
        meta::ensure_object(obj)
            .entry("status")
            .or_insert(Value::Null),
    );
    let conds = status_obj.entry("conditions").or_insert_with(|| json!([]));
    let Value::Array(conds) = conds else {
        return;
    };
    let now = meta::now();
    match conds
        .iter_mut()
        .filter_map(Value::as_object_mut)
        .find(|c| c.get("type").and_then(Value::as_str) == Some(type_))
    {
        Some(c) => {
            if c.get("status").and_then(Value::as_str) != Some(status) {
                c.insert("lastTransitionTime".into(), json!(now));
            }
            c.insert("status".into(), json!(status));
            c.insert("reason".into(), json!(reason));
            c.insert("message".into(), json!(message));
        }
        None => conds.push(json!({"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message})),
    }
}

/// Running controllers; aborted on drop.
pub struct Controllers {
    task: tokio::task::JoinHandle<()>,
    shard_report: tokio::task::JoinHandle<()>,
    /// Root's shard: token revocations and expiry; other shards: following root's
    /// token state.
    tokens: tokio::task::JoinHandle<()>,
    /// The path index ([`crate::workspaces::maintain_paths`]).
    paths: tokio::task::JoinHandle<()>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.task.abort();
        self.shard_report.abort();
        self.tokens.abort();
        self.paths.abort();
    }
}

impl Controllers {
    pub fn start(api: ApiServer) -> Controllers {
        let loop_api = api.clone();
        let tokens = tokio::spawn(crate::tokens::run(api.clone()));
        let paths = tokio::spawn(crate::workspaces::maintain_paths(api.clone()));
        let task = tokio::spawn(async move {
            let mut c = Loop::new(loop_api);
            c.run().await;
        });
        // The shard's load (logical clusters held) on its Shard object, for the
        // scheduler; written only when it changed.
        let shard_report = tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            loop {
                tick.tick().await;
                if let Err(e) = crate::workspaces::register_shard(&api).await {
                    tracing::debug!(error = %e, "reporting shard load");
                }
                crate::workspaces::refresh_type_mirror(&api).await;
            }
        });
        Controllers {
            task,
            shard_report,
            tokens,
            paths,
        }
    }
}

struct Loop {
    api: ApiServer,
    /// owner uid → dependents
    dependents: HashMap<String, HashSet<ObjectKey>>,
    /// every live uid → its key (to tell whether an owner still exists)
    uids: HashMap<String, ObjectKey>,
    /// workspaces are reconciled concurrently, off this loop
    workspaces: Arc<crate::workspaces::WorkspaceQueue>,
}

impl Loop {
    fn new(api: ApiServer) -> Loop {
        Loop {
            workspaces: crate::workspaces::WorkspaceQueue::new(api.clone()),
            api,
            dependents: HashMap::new(),
            uids: HashMap::new(),
        }
    }

    fn resources(&self) -> Vec<Resource> {
        self.api
            .inner
            .registry
            .all()
            .iter()
            .filter(|r| !r.desc.virtual_create_only)
            .cloned()
            .collect()
    }

    fn list(
        &self,
        resource: &str,
        cluster: Option<&str>,
        namespace: Option<&str>,
    ) -> Vec<Arc<StoredObject>> {
        self.api.inner.store.list_all(resource, cluster, namespace)
    }

    async fn run(&mut self) {
        loop {
            let (_, mut rx) = self.api.inner.store.subscribe_all();
            self.resync().await;
            loop {
                match rx.recv().await {
                    Ok(ev) => self.handle(&ev).await,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }

    async fn resync(&mut self) {
        self.dependents.clear();
        self.uids.clear();
        let mut objects = Vec::new();
        for r in self.resources() {
            objects.extend(self.list(&r.desc.storage_key(), None, None));
        }
        for o in &objects {
            self.index(o);
        }
        for o in &objects {
            self.reconcile_guarded(o, EventType::Added).await;
        }
    }

    /// Reconciles one object; a panic (a bug, or a stored object of a shape nobody
    /// expected) is logged with the object's key and skips that object, so one object can
    /// never stop the controllers of every tenant on the shard.
    async fn reconcile_guarded(&mut self, o: &StoredObject, kind: EventType) {
        use futures::FutureExt;
        let key = o.key.clone();
        let run = std::panic::AssertUnwindSafe(self.reconcile(o, kind));
        if run.catch_unwind().await.is_err() {
            tracing::error!(
                resource = %key.resource,
                cluster = %key.cluster,
                namespace = %key.namespace,
                name = %key.name,
                "controller panicked reconciling an object; it is skipped"
            );
        }
    }

    fn index(&mut self, o: &StoredObject) {
        let uid = meta::uid(&o.value);
        if !uid.is_empty() {
            self.uids.insert(uid.to_string(), o.key.clone());
        }
        for r in meta::owner_references(&o.value) {
            if let Some(owner) = r.get("uid").and_then(Value::as_str) {
                self.dependents
                    .entry(owner.to_string())
                    .or_default()
                    .insert(o.key.clone());
            }
        }
    }

    fn unindex(&mut self, o: &StoredObject) {
        let uid = meta::uid(&o.value);
        if self.uids.get(uid) == Some(&o.key) {
            self.uids.remove(uid);
        }
        for r in meta::owner_references(&o.value) {
            if let Some(owner) = r.get("uid").and_then(Value::as_str) {
                if let Some(set) = self.dependents.get_mut(owner) {
                    set.remove(&o.key);
                    if set.is_empty() {
                        self.dependents.remove(owner);
                    }
                }
            }
        }
    }

    async fn handle(&mut self, ev: &WatchEvent) {
        if let Some(prev) = &ev.prev {
            self.unindex(prev);
        }
        match ev.kind {
            EventType::Deleted => self.unindex(&ev.object),
            _ => self.index(&ev.object),
        }
        self.reconcile_guarded(&ev.object, ev.kind).await;
    }

    async fn reconcile(&mut self, o: &StoredObject, kind: EventType) {
        let key = &o.key;
        if &*key.resource == NAMESPACES {
            self.namespace(o, kind).await;
        } else if kind == EventType::Deleted
            && ((&*key.resource == "/serviceaccounts" && key.name == "default")
                || (&*key.resource == "/configmaps" && key.name == "kube-root-ca.crt"))
        {
            // recreate defaults removed from an active namespace
            let ns_key = ObjectKey::new(NAMESPACES, &key.cluster, "", &key.namespace);
            if let Some(ns) = self.api.inner.store.get(&ns_key) {
                self.namespace(&ns, EventType::Modified).await;
            }
        }
        if &*key.resource == CLUSTER_ROLES {
            self.aggregate(&key.cluster).await;
        }
        if &*key.resource == crate::registry::tenancy::WORKSPACES {
            if kind != EventType::Deleted {
                self.workspaces.enqueue(o.key.clone());
            } else if let Some(parent) =
                crate::workspaces::parent_workspace(&self.api.inner.store, &key.cluster)
            {
                // a child workspace went away: its deleting parent may continue
                if meta::is_deleting(&parent.value) {
                    self.workspaces.enqueue(parent.key.clone());
                }
            }
        }
        if &*key.resource == crate::workspaces::SHARDS && kind != EventType::Deleted {
            // a shard appeared or changed labels: unschedulable workspaces may now fit
            let waiting: Vec<_> = self
                .api
                .inner
                .store
                .list_all(crate::registry::tenancy::WORKSPACES, None, None)
                .into_iter()
                .filter(|w| {
                    w.value.pointer("/status/phase").and_then(Value::as_str) == Some("Scheduling")
                })
                .collect();
            for w in waiting {
                self.workspaces.enqueue(w.key.clone());
            }
        }
        if &*key.resource == crate::bootstrap::LOGICAL_CLUSTER_RESOURCE
            && kind == EventType::Modified
        {
            crate::workspaces::logical_cluster_changed(&self.api, o).await;
        }
        if &*key.resource == crate::apis::CRD_RESOURCE {
            self.crd(o, kind).await;
        } else if kind == EventType::Deleted {
            // the last custom resource of a CRD being deleted lets the CRD go
            if let Some((group, plural)) = key.resource.split_once('/') {
                if group.contains('.') {
                    let crd_key = ObjectKey::new(
                        crate::apis::CRD_RESOURCE,
                        &key.cluster,
                        "",
                        &format!("{plural}.{group}"),
                    );
                    if let Some(c) = self.api.inner.store.get(&crd_key) {
                        if meta::is_deleting(&c.value) {
                            Box::pin(self.crd(&c, EventType::Modified)).await;
                        }
                    }
                }
            }
        }
        self.garbage_collect(o, kind).await;
    }

    // --- namespaces -------------------------------------------------------------------

    async fn namespace(&mut self, ns: &StoredObject, kind: EventType) {
        if kind == EventType::Deleted {
            return;
        }
        let cluster = ns.key.cluster.to_string();
        let name = ns.key.name.clone();
        if !meta::is_deleting(&ns.value) {
            self.ensure_defaults(&cluster, &name).await;
            return;
        }
        // Terminating: remove the content, then the finalizer.
        let mut remaining = 0;
        for r in self.resources() {
            if !r.desc.namespaced {
                continue;
            }
            for o in self.list(&r.desc.storage_key(), Some(&cluster), Some(&name)) {
                remaining += 1;
                if !meta::is_deleting(&o.value) {
                    if let Err(e) = rest::delete_system(&self.api, &o.key, "Background").await {
                        tracing::warn!(error = %e, key = %o.key, "namespace cleanup failed");
                    }
                }
            }
        }
        if remaining > 0 {
            // content deletions produce events that bring us back here
            return;
        }
        let res = rest::update_system(&self.api, &ns.key, |v| {
            let fins = v
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !fins.iter().any(|f| f == "kubernetes") {
                return None;
            }
            let mut new = v.clone();
            let fins = json!(fins
                .into_iter()
                .filter(|f| f != "kubernetes")
                .collect::<Vec<_>>());
            set(&mut new, &["spec", "finalizers"], fins)?;
            Some(new)
        })
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, namespace = %name, "finalizing namespace failed");
        }
    }

    async fn ensure_defaults(&self, cluster: &str, ns: &str) {
        let store = &self.api.inner.store;
        for (res, obj) in default_namespace_objects(&self.api, ns) {
            let key = rest::key_for(&res, cluster, ns, canopy_core::meta::name(&obj));
            if store.get(&key).is_some() {
                continue;
            }
            if let Err(e) = rest::create_system(&self.api, cluster, &res, obj).await {
                tracing::debug!(error = %e, namespace = ns, "creating namespace defaults");
            }
        }
    }

    // --- garbage collection -----------------------------------------------------------

    fn owner_alive(&self, uid: &str) -> bool {
        self.uids
            .get(uid)
            .and_then(|k| self.api.inner.store.get(k))
            .is_some_and(|o| meta::uid(&o.value) == uid)
    }

    async fn garbage_collect(&mut self, o: &StoredObject, kind: EventType) {
        let uid = meta::uid(&o.value).to_string();
        let deps: Vec<ObjectKey> = self
            .dependents
            .get(&uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        let fins = meta::finalizers(&o.value);
        let deleting = kind != EventType::Deleted && meta::is_deleting(&o.value);

        if deleting && fins.iter().any(|f| f == "orphan") {
            for d in &deps {
                let _ = rest::update_system(&self.api, d, |v| {
                    let refs = meta::owner_references(v);
                    if !refs
                        .iter()
                        .any(|r| r.get("uid").and_then(Value::as_str) == Some(uid.as_str()))
                    {
                        return None;
                    }
                    let kept: Vec<Value> = refs
                        .iter()
                        .filter(|r| r.get("uid").and_then(Value::as_str) != Some(uid.as_str()))
                        .cloned()
                        .collect();
                    let mut new = v.clone();
                    if kept.is_empty() {
                        meta::remove_meta(&mut new, "ownerReferences");
                    } else {
                        meta::set_meta(&mut new, "ownerReferences", json!(kept));
                    }
                    Some(new)
                })
                .await;
            }
            self.remove_finalizer(&o.key, "orphan").await;
            return;
        }
        if deleting && fins.iter().any(|f| f == "foregroundDeletion") {
            let live: Vec<&ObjectKey> = deps
                .iter()
                .filter(|d| self.api.inner.store.get(d).is_some())
                .collect();
            if live.is_empty() {
                self.remove_finalizer(&o.key, "foregroundDeletion").await;
            } else {
                for d in live {
                    let _ = rest::delete_system(&self.api, d, "Foreground").await;
                }
            }
            return;
        }
        if kind == EventType::Deleted {
            for d in deps {
                let Some(dep) = self.api.inner.store.get(&d) else {
                    continue;
                };
                let owners: Vec<String> = meta::owner_references(&dep.value)
                    .iter()
                    .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                    .collect();
                if owners.iter().all(|u| !self.owner_alive(u)) {
                    if let Err(e) = rest::delete_system(&self.api, &d, "Background").await {
                        tracing::warn!(error = %e, key = %d, "garbage collection failed");
                    }
                }
            }
        } else if !meta::owner_references(&o.value).is_empty() && !meta::is_deleting(&o.value) {
            // a dependent created after its owners were deleted
            let owners: Vec<String> = meta::owner_references(&o.value)
                .iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect();
            if kind == EventType::Added && owners.iter().all(|u| !self.owner_alive(u)) {
                let _ = rest::delete_system(&self.api, &o.key, "Background").await;
            }
        }
        // a dependent that went away may release a foreground owner
        if kind == EventType::Deleted {
            for r in meta::owner_references(&o.value) {
                if let Some(owner_uid) = r.get("uid").and_then(Value::as_str) {
                    if let Some(owner_key) = self.uids.get(owner_uid).cloned() {
                        if let Some(owner) = self.api.inner.store.get(&owner_key) {
                            if meta::is_deleting(&owner.value)
                                && meta::finalizers(&owner.value)
                                    .iter()
                                    .any(|f| f == "foregroundDeletion")
                            {
                                let owner = owner.clone();
                                Box::pin(self.garbage_collect(&owner, EventType::Modified)).await;
                            }
                        }
                    }
                }
            }
        }
    }

    async fn remove_finalizer(&self, key: &ObjectKey, finalizer: &str) {
        let _ = rest::update_system(&self.api, key, |v| {
            let fins = meta::finalizers(v);
            if !fins.iter().any(|f| f == finalizer) {
                return None;
            }
            let mut new = v.clone();
            let kept: Vec<String> = fins.into_iter().filter(|f| f != finalizer).collect();
            meta::set_meta(&mut new, "finalizers", json!(kept));
            Some(new)
        })
        .await;
    }

    // --- CustomResourceDefinitions ------------------------------------------------------

    async fn crd(&mut self, o: &StoredObject, kind: EventType) {
        use crate::registry::crd::CLEANUP_FINALIZER;
        if kind == EventType::Deleted {
            return;
        }
        let cluster = o.key.cluster.to_string();
        let v = &o.value;
        let group = v
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let plural = v
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if meta::is_deleting(v) {
            let crs = self.list(&format!("{group}/{plural}"), Some(&cluster), None);
            if crs.is_empty() {
                self.remove_finalizer(&o.key, CLEANUP_FINALIZER).await;
            } else {
                for cr in crs {
                    if !meta::is_deleting(&cr.value) {
                        let _ = rest::delete_system(&self.api, &cr.key, "Background").await;
                    }
                }
                let _ = rest::update_system(&self.api, &o.key, |cur| {
                    let mut new = cur.clone();
                    set_condition(
                        &mut new,
                        "Terminating",
                        "True",
                        "InstanceDeletionInProgress",
                        "CustomResource deletion is in progress",
                    );
                    (new != *cur).then_some(new)
                })
                .await;
            }
            return;
        }
        // Names: a kind, plural, singular or short name already accepted for another CRD
        // of the same group in this logical cluster is a conflict.
        let names = v.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let mut conflict = None;
        for other in self.list(crate::apis::CRD_RESOURCE, Some(&cluster), None) {
            if other.key.name == o.key.name
                || other.value.pointer("/spec/group").and_then(Value::as_str)
                    != Some(group.as_str())
            {
                continue;
            }
            let theirs = other
                .value
                .pointer("/status/acceptedNames")
                .cloned()
                .unwrap_or(json!({}));
            if theirs.get("kind").is_some() && theirs.get("kind") == names.get("kind") {
                conflict = Some((
                    "KindConflict",
                    format!(
                        "{:?} is already in use",
                        names.get("kind").and_then(Value::as_str).unwrap_or("")
                    ),
                ));
            }
            let short = |n: &Value| -> Vec<String> {
                n.get("shortNames")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default()
            };
            if short(&names).iter().any(|s| short(&theirs).contains(s)) {
                conflict = Some((
                    "ShortNamesConflict",
                    "a short name is already in use".to_string(),
                ));
            }
        }
        let storage = v
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| {
                vs.iter()
                    .find(|x| x.get("storage").and_then(Value::as_bool) == Some(true))
            })
            .and_then(|x| x.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let _ = rest::update_system(&self.api, &o.key, |cur| {
            let mut new = cur.clone();
            match &conflict {
                Some((reason, msg)) => {
                    set_condition(&mut new, "NamesAccepted", "False", reason, msg);
                    if !crate::registry::crd::condition_true(cur, "Established") {
                        set_condition(
                            &mut new,
                            "Established",
                            "False",
                            "NotAccepted",
                            "not all names are accepted",
                        );
                    }
                }
                None => {
                    let mut accepted = names.clone();
                    let kind = accepted
                        .get("kind")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    if accepted
                        .get("singular")
                        .is_none_or(|s| s.as_str() == Some(""))
                    {
                        set(
                            &mut accepted,
                            &["singular"],
                            json!(kind.to_ascii_lowercase()),
                        )?;
                    }
                    if accepted
                        .get("listKind")
                        .is_none_or(|s| s.as_str() == Some(""))
                    {
                        set(&mut accepted, &["listKind"], json!(format!("{kind}List")))?;
                    }
                    set(&mut new, &["status", "acceptedNames"], accepted)?;
                    set_condition(
                        &mut new,
                        "NamesAccepted",
                        "True",
                        "NoConflicts",
                        "no conflicts found",
                    );
                    set_condition(
                        &mut new,
                        "Established",
                        "True",
                        "InitialNamesAccepted",
                        "the initial names have been accepted",
                    );
                }
            }
            let stored = new
                .pointer("/status/storedVersions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !storage.is_empty() && !stored.iter().any(|s| s == storage.as_str()) {
                let mut stored = stored;
                stored.push(json!(storage));
                set(&mut new, &["status", "storedVersions"], json!(stored))?;
            }
            (new != *cur).then_some(new)
        })
        .await;
    }

    // --- ClusterRole aggregation ---------------------------------------------------------

    async fn aggregate(&self, cluster: &str) {
        let roles = self.list(CLUSTER_ROLES, Some(cluster), None);
        for agg in roles
            .iter()
            .filter(|r| r.value.get("aggregationRule").is_some_and(|a| !a.is_null()))
        {
            let selectors: Vec<canopy_selectors::label::Selector> = agg
                .value
                .pointer("/aggregationRule/clusterRoleSelectors")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|s| {
                            canopy_selectors::label::Selector::from_label_selector_json(s).ok()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let mut rules: Vec<Value> = Vec::new();
            let mut sources: Vec<&Arc<StoredObject>> = roles
                .iter()
                .filter(|r| {
                    r.key != agg.key && selectors.iter().any(|s| s.matches(meta::labels(&r.value)))
                })
                .collect();
            sources.sort_by(|a, b| a.key.name.cmp(&b.key.name));
            for s in sources {
                for rule in s
                    .value
                    .get("rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if !rules.contains(rule) {
                        rules.push(rule.clone());
                    }
                }
            }
            if agg.value.get("rules") == Some(&json!(rules)) {
                continue;
            }
            let rules = json!(rules);
            let _ = rest::update_system(&self.api, &agg.key, |v| {
                if v.get("rules") == Some(&rules) {
                    return None;
                }
                let mut new = v.clone();
                set(&mut new, &["rules"], rules.clone())?;
                Some(new)
            })
            .await;
        }
    }
}

/// What every active namespace has: the `default` ServiceAccount and the
/// `kube-root-ca.crt` ConfigMap.
pub fn default_namespace_objects(
    api: &ApiServer,
    ns: &str,
) -> Vec<(crate::registry::Resource, Value)> {
    let reg = &api.inner.registry;
    let mut out = Vec::new();
    if let Some(sa) = reg.get("", "v1", "serviceaccounts") {
        out.push((
            sa.clone(),
            json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}}),
        ));
    }
    if let Some(cm) = reg.get("", "v1", "configmaps") {
        out.push((cm.clone(), json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
            "data": {"ca.crt": api.inner.config.ca_cert_pem},
        })));
    }
    out
}
