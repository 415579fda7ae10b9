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
use canopy_storage::{EventType, ListOptions, ObjectKey, StoredObject, WatchEvent};
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;

use crate::registry::Resource;
use crate::{rest, ApiServer};

const NAMESPACES: &str = "/namespaces";
const CLUSTER_ROLES: &str = "rbac.authorization.k8s.io/clusterroles";

/// Running controllers; aborted on drop.
pub struct Controllers {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Controllers {
    pub fn start(api: ApiServer) -> Controllers {
        let task = tokio::spawn(async move {
            let mut c = Loop::new(api);
            c.run().await;
        });
        Controllers { task }
    }
}

struct Loop {
    api: ApiServer,
    /// owner uid → dependents
    dependents: HashMap<String, HashSet<ObjectKey>>,
    /// every live uid → its key (to tell whether an owner still exists)
    uids: HashMap<String, ObjectKey>,
}

fn all(_: &StoredObject) -> bool {
    true
}

impl Loop {
    fn new(api: ApiServer) -> Loop {
        Loop {
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
        self.api
            .inner
            .store
            .list(&ListOptions {
                resource,
                cluster,
                namespace,
                name: None,
                continue_after: None,
                limit: 0,
                filter: &all,
            })
            .map(|l| l.items)
            .unwrap_or_default()
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
            self.reconcile(o, EventType::Added).await;
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
        self.reconcile(&ev.object, ev.kind).await;
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
            new["spec"]["finalizers"] = json!(fins
                .into_iter()
                .filter(|f| f != "kubernetes")
                .collect::<Vec<_>>());
            Some(new)
        })
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, namespace = %name, "finalizing namespace failed");
        }
    }

    async fn ensure_defaults(&self, cluster: &str, ns: &str) {
        let store = &self.api.inner.store;
        let reg = &self.api.inner.registry;
        if store
            .get(&ObjectKey::new("/serviceaccounts", cluster, ns, "default"))
            .is_none()
        {
            if let Some(sa) = reg.get("", "v1", "serviceaccounts") {
                let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
                if let Err(e) = rest::create_system(&self.api, cluster, sa, obj).await {
                    tracing::debug!(error = %e, "creating default service account");
                }
            }
        }
        if store
            .get(&ObjectKey::new(
                "/configmaps",
                cluster,
                ns,
                "kube-root-ca.crt",
            ))
            .is_none()
        {
            if let Some(cm) = reg.get("", "v1", "configmaps") {
                let obj = json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "kube-root-ca.crt", "namespace": ns, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                    "data": {"ca.crt": self.api.inner.config.ca_cert_pem},
                });
                if let Err(e) = rest::create_system(&self.api, cluster, cm, obj).await {
                    tracing::debug!(error = %e, "creating kube-root-ca.crt");
                }
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
                new["rules"] = rules.clone();
                Some(new)
            })
            .await;
        }
    }
}
