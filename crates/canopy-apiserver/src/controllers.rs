//! The controllers of a shard, each a [`canopy_runtime::Controller`] with its own queue,
//! workers and task, fed by one [`EventFeed`] from the store's event stream
//! (`Store::subscribe_all`):
//!
//! | controller | key | concurrency | what it does |
//! | --- | --- | --- | --- |
//! | `namespace` | a Namespace | 8 | every active namespace has a `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap; a namespace being deleted loses its content, then its `kubernetes` finalizer, then goes away |
//! | `garbagecollector` | any object | 8 | dependents whose owners (by `ownerReferences` uid, in the same logical cluster) are all gone are deleted; `foregroundDeletion` owners wait for their dependents; `orphan` owners release them first |
//! | `clusterrole-aggregation` | a logical cluster | 2 | an aggregated ClusterRole's rules are the union of the rules of the ClusterRoles its selectors match |
//! | `crd` | a CustomResourceDefinition | 4 | names (conflicts within a group), `NamesAccepted`/`Established`, `storedVersions`; a CRD being deleted loses its custom resources, then its cleanup finalizer |
//!
//! Each reconciles from current state (read from the watch cache) by key, so a missed or
//! repeated event only costs a redundant reconcile; after the feed falls behind the event
//! stream every key is enqueued again. A failing reconcile returns its error: the
//! runtime logs it with the key, counts it (`controller_runtime_reconcile_errors_total`)
//! and retries it with back-off, through the queue.
//!
//! Plug-ins add their controllers and periodic tasks ([`crate::plugin::Background`])
//! through a [`Starter`]: the same feed, metrics and lifetime. Periodic tasks report
//! their failures to a [`canopy_runtime::TaskErrors`] (counted in
//! `canopy_background_task_errors_total{name}` and logged).

use std::sync::Arc;

use canopy_core::meta;
use canopy_runtime::{Action, Controller, EventFeed, OwnerIndex, Queue, Running};
use canopy_storage::{EventType, ObjectKey, StoredObject, WatchEvent};
use serde_json::{json, Value};

use crate::registry::Resource;
use crate::{rest, ApiServer};

const NAMESPACES: &str = "/namespaces";
const CLUSTER_ROLES: &str = "rbac.authorization.k8s.io/clusterroles";

/// Why a reconcile failed; the runtime logs it with the key and retries with back-off.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Api(#[from] canopy_core::ApiError),
    #[error(transparent)]
    Storage(#[from] canopy_storage::StorageError),
}

type Result<T = Action> = std::result::Result<T, ReconcileError>;

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

/// A uid within one logical cluster: owner references only ever name an owner in the
/// dependent's own logical cluster.
type Uid = (Arc<str>, String);

/// The garbage collector's index: every object's uid and the uids of its owners.
type Owners = OwnerIndex<ObjectKey, Uid>;

/// Running controllers and periodic tasks; aborted on drop.
pub struct Controllers {
    _namespace: Running<ObjectKey>,
    _garbage_collector: Running<ObjectKey>,
    _aggregation: Running<String>,
    _crd: Running<ObjectKey>,
    /// The plug-ins' controllers.
    _plugins: Vec<Box<dyn std::any::Any + Send>>,
    /// Feeds the controllers' queues from the store's event stream.
    feed: tokio::task::JoinHandle<()>,
    /// The plug-ins' periodic tasks.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controllers {
    fn drop(&mut self) {
        self.feed.abort();
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A store event as the controllers' feed delivers it.
pub type Event = Arc<WatchEvent>;

/// What a plug-in's [`crate::plugin::Background`] starts its controllers and tasks
/// with: the controllers' metrics, the event feed their queues are fed from, and a
/// place to keep what must run as long as the server's controllers.
pub struct Starter {
    metrics: canopy_runtime::Metrics,
    feed: EventFeed<Event>,
    keep: Vec<Box<dyn std::any::Any + Send>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Starter {
    /// The controller runtime's metrics (`Controller::new`, `TaskErrors`).
    pub fn metrics(&self) -> &canopy_runtime::Metrics {
        &self.metrics
    }

    /// Adds to the event feed (`watches`, `resync`, ...).
    pub fn feed(&mut self, f: impl FnOnce(EventFeed<Event>) -> EventFeed<Event>) {
        self.feed = f(std::mem::take(&mut self.feed));
    }

    /// Keeps `v` (a running controller) until the controllers stop.
    pub fn keep(&mut self, v: impl std::any::Any + Send) {
        self.keep.push(Box::new(v));
    }

    /// Runs a periodic task until the controllers stop.
    pub fn spawn(&mut self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        self.tasks.push(tokio::spawn(f));
    }
}

/// Makes a reconcile function of the runtime from `f(api, key)`.
macro_rules! reconciler {
    ($api:expr, $f:expr, $key:ty) => {{
        let api = $api.clone();
        move |key: $key| {
            let api = api.clone();
            async move { $f(&api, &key).await }
        }
    }};
}

impl Controllers {
    pub fn start(api: ApiServer) -> Controllers {
        let metrics = canopy_runtime::Metrics::new(api.inner.metrics.registry());
        let owners: Arc<Owners> = Arc::default();

        let namespace = Controller::new(
            "namespace",
            &metrics,
            reconciler!(api, namespace, ObjectKey),
        )
        .concurrency(8)
        .start();
        let gc_owners = owners.clone();
        let gc_api = api.clone();
        let garbage_collector =
            Controller::new("garbagecollector", &metrics, move |key: ObjectKey| {
                let (api, owners) = (gc_api.clone(), gc_owners.clone());
                async move { garbage_collect(&api, &owners, &key).await }
            })
            .concurrency(8)
            .start();
        let aggregation = Controller::new(
            "clusterrole-aggregation",
            &metrics,
            reconciler!(api, aggregate, String),
        )
        .concurrency(2)
        .start();
        let crd = Controller::new("crd", &metrics, reconciler!(api, crd, ObjectKey))
            .concurrency(4)
            .start();
        let feed = feed(
            &api,
            &owners,
            namespace.queue(),
            garbage_collector.queue(),
            aggregation.queue(),
            crd.queue(),
        );
        let mut starter = Starter {
            metrics,
            feed,
            keep: Vec::new(),
            tasks: Vec::new(),
        };
        for b in &api.inner.plugins.background {
            b.start(&api, &mut starter);
        }
        let feed_api = api.clone();
        let feed = tokio::spawn(
            starter
                .feed
                .run(move || feed_api.inner.store.subscribe_all().1),
        );
        Controllers {
            _namespace: namespace,
            _garbage_collector: garbage_collector,
            _aggregation: aggregation,
            _crd: crd,
            _plugins: starter.keep,
            feed,
            tasks: starter.tasks,
        }
    }
}

/// Which keys of which controller each event concerns. Mappers run for every event on
/// the feed's task: lookups only, no scans.
fn feed(
    api: &ApiServer,
    owners: &Arc<Owners>,
    namespace: &Queue<ObjectKey>,
    garbage_collector: &Queue<ObjectKey>,
    aggregation: &Queue<String>,
    crd: &Queue<ObjectKey>,
) -> EventFeed<Event> {
    let (index_owners, rebuild_owners, rebuild_api) = (owners.clone(), owners.clone(), api.clone());
    let a = |api: &ApiServer| api.clone();
    let (ns_api, ns_all) = (a(api), a(api));
    let (gc_api, gc_owners, gc_all) = (a(api), owners.clone(), a(api));
    let agg_all = a(api);
    let (crd_api, crd_all) = (a(api), a(api));
    EventFeed::new()
        .index(
            move |ev: &Event| match ev.kind {
                EventType::Deleted => index_owners.remove(&ev.object.key),
                _ => {
                    let (k, id, o) = owner_entry(&ev.object);
                    index_owners.upsert(k, id, o)
                }
            },
            move || rebuild_owners.replace_all(all_objects(&rebuild_api).iter().map(owner_entry)),
        )
        .watches(namespace, move |ev: &Event| namespace_keys(&ns_api, ev))
        .resync(namespace, move || keys_of(&ns_all, NAMESPACES))
        .watches(garbage_collector, move |ev: &Event| {
            gc_keys(&gc_api, &gc_owners, ev)
        })
        .resync(garbage_collector, move || {
            all_objects(&gc_all)
                .into_iter()
                .filter(|o| gc_relevant(&o.value))
                .map(|o| o.key.clone())
                .collect::<Vec<_>>()
        })
        .watches(aggregation, |ev: &Event| {
            (&*ev.object.key.resource == CLUSTER_ROLES).then(|| ev.object.key.cluster.to_string())
        })
        .resync(aggregation, move || {
            list(&agg_all, CLUSTER_ROLES, None, None)
                .iter()
                .map(|o| o.key.cluster.to_string())
                .collect::<std::collections::BTreeSet<_>>()
        })
        .watches(crd, move |ev: &Event| crd_keys(&crd_api, ev))
        .resync(crd, move || keys_of(&crd_all, crate::apis::CRD_RESOURCE))
}

fn resources(api: &ApiServer) -> Vec<Resource> {
    api.inner
        .registry
        .all()
        .iter()
        .filter(|r| !r.desc.virtual_create_only)
        .cloned()
        .collect()
}

fn list(
    api: &ApiServer,
    resource: &str,
    cluster: Option<&str>,
    namespace: Option<&str>,
) -> Vec<Arc<StoredObject>> {
    api.inner.store.list_all(resource, cluster, namespace)
}

/// The keys of every object of `resource` (a controller's resync).
pub fn keys_of(api: &ApiServer, resource: &str) -> Vec<ObjectKey> {
    list(api, resource, None, None)
        .iter()
        .map(|o| o.key.clone())
        .collect()
}

fn all_objects(api: &ApiServer) -> Vec<Arc<StoredObject>> {
    resources(api)
        .iter()
        .flat_map(|r| list(api, &r.desc.storage_key(), None, None))
        .collect()
}

async fn remove_finalizer(api: &ApiServer, key: &ObjectKey, finalizer: &str) -> Result<()> {
    rest::update_system(api, key, |v| {
        let fins = meta::finalizers(v);
        if !fins.iter().any(|f| f == finalizer) {
            return None;
        }
        let mut new = v.clone();
        let kept: Vec<String> = fins.into_iter().filter(|f| f != finalizer).collect();
        meta::set_meta(&mut new, "finalizers", json!(kept));
        Some(new)
    })
    .await?;
    Ok(())
}

// --- namespaces -------------------------------------------------------------------------

fn is_namespace_default(key: &ObjectKey) -> bool {
    (&*key.resource == "/serviceaccounts" && key.name == "default")
        || (&*key.resource == "/configmaps" && key.name == "kube-root-ca.crt")
}

fn namespace_keys(api: &ApiServer, ev: &WatchEvent) -> Option<ObjectKey> {
    let key = &ev.object.key;
    if &*key.resource == NAMESPACES {
        return (ev.kind != EventType::Deleted).then(|| key.clone());
    }
    if ev.kind != EventType::Deleted || key.namespace.is_empty() {
        return None;
    }
    // a default removed from an active namespace is recreated; a Terminating namespace
    // goes on once its content is gone
    let ns_key = ObjectKey::new(NAMESPACES, &key.cluster, "", &key.namespace);
    let ns = api.inner.store.get(&ns_key)?;
    (is_namespace_default(key) || meta::is_deleting(&ns.value)).then_some(ns_key)
}

async fn namespace(api: &ApiServer, key: &ObjectKey) -> Result {
    let Some(ns) = api.inner.store.get(key) else {
        return Ok(Action::await_change());
    };
    let cluster = &*key.cluster;
    let name = &key.name;
    if !meta::is_deleting(&ns.value) {
        ensure_defaults(api, cluster, name).await?;
        return Ok(Action::await_change());
    }
    // Terminating: remove the content (of every resource the cluster serves: built-ins,
    // custom resources, what plug-ins serve there), then the finalizer.
    let mut remaining = 0;
    let mut failed = None;
    let apis = api.inner.apis.get(api, Some(cluster));
    let mut storage_keys: Vec<String> = apis
        .registry
        .all()
        .iter()
        .filter(|r| r.desc.namespaced && !r.desc.virtual_create_only)
        .map(|r| r.desc.storage_key())
        .collect();
    storage_keys.sort();
    storage_keys.dedup();
    for storage_key in storage_keys {
        for o in list(api, &storage_key, Some(cluster), Some(name)) {
            remaining += 1;
            if !meta::is_deleting(&o.value) {
                if let Err(e) = rest::delete_system(api, &o.key, "Background").await {
                    failed.get_or_insert(e);
                }
            }
        }
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    if remaining > 0 {
        // the content's deletions bring it back
        return Ok(Action::await_change());
    }
    rest::update_system(api, key, |v| {
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
    .await?;
    Ok(Action::await_change())
}

async fn ensure_defaults(api: &ApiServer, cluster: &str, ns: &str) -> Result<()> {
    let store = &api.inner.store;
    for (res, obj) in default_namespace_objects(api, ns) {
        let key = rest::key_for(&res, cluster, ns, canopy_core::meta::name(&obj));
        if store.get(&key).is_some() {
            continue;
        }
        // one created meanwhile is fine (`Ok(None)`)
        rest::create_system(api, cluster, &res, obj).await?;
    }
    Ok(())
}

// --- garbage collection -----------------------------------------------------------------

fn owner_uids(o: &StoredObject) -> Vec<Uid> {
    meta::owner_references(&o.value)
        .iter()
        .filter_map(|r| r.get("uid").and_then(Value::as_str))
        .map(|u| (o.key.cluster.clone(), u.to_string()))
        .collect()
}

fn owner_entry(o: &Arc<StoredObject>) -> (ObjectKey, Option<Uid>, Vec<Uid>) {
    let uid = meta::uid(&o.value);
    let id = (!uid.is_empty()).then(|| (o.key.cluster.clone(), uid.to_string()));
    (o.key.clone(), id, owner_uids(o))
}

/// Whether the garbage collector has anything to do with an object that exists: it has
/// owners, or waits for its dependents.
fn gc_relevant(v: &Value) -> bool {
    !meta::owner_references(v).is_empty()
        || meta::finalizers(v)
            .iter()
            .any(|f| f == "orphan" || f == "foregroundDeletion")
}

fn gc_keys(api: &ApiServer, owners: &Owners, ev: &WatchEvent) -> Vec<ObjectKey> {
    let o = &ev.object;
    let mut keys = Vec::new();
    let released: Vec<Uid> = if ev.kind == EventType::Deleted {
        // its dependents may have no owner left
        let uid = meta::uid(&o.value);
        if !uid.is_empty() {
            keys.extend(owners.dependents(&(o.key.cluster.clone(), uid.to_string())));
        }
        owner_uids(o)
    } else {
        if gc_relevant(&o.value) {
            keys.push(o.key.clone());
        }
        // owners it no longer names
        let now = owner_uids(o);
        ev.prev
            .as_deref()
            .map(owner_uids)
            .unwrap_or_default()
            .into_iter()
            .filter(|u| !now.contains(u))
            .collect()
    };
    // a dependent that went away (or let go) may release an owner deleted in the
    // foreground
    for u in released {
        if let Some(k) = owners.key_of(&u) {
            if api
                .inner
                .store
                .get(&k)
                .is_some_and(|owner| meta::is_deleting(&owner.value))
            {
                keys.push(k);
            }
        }
    }
    keys
}

fn owner_alive(api: &ApiServer, owners: &Owners, uid: &Uid) -> bool {
    owners
        .key_of(uid)
        .and_then(|k| api.inner.store.get(&k))
        .is_some_and(|o| meta::uid(&o.value) == uid.1)
}

async fn garbage_collect(api: &ApiServer, owners: &Owners, key: &ObjectKey) -> Result {
    let store = &api.inner.store;
    let Some(o) = store.get(key) else {
        return Ok(Action::await_change());
    };
    let uid = meta::uid(&o.value).to_string();
    let fins = meta::finalizers(&o.value);
    if meta::is_deleting(&o.value) {
        let deps = if uid.is_empty() {
            Vec::new()
        } else {
            owners.dependents(&(key.cluster.clone(), uid.clone()))
        };
        if fins.iter().any(|f| f == "orphan") {
            for d in &deps {
                rest::update_system(api, d, |v| {
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
                .await?;
            }
            remove_finalizer(api, key, "orphan").await?;
        } else if fins.iter().any(|f| f == "foregroundDeletion") {
            let live: Vec<&ObjectKey> = deps.iter().filter(|d| store.get(d).is_some()).collect();
            if live.is_empty() {
                remove_finalizer(api, key, "foregroundDeletion").await?;
            } else {
                // their deletions bring it back
                for d in live {
                    rest::delete_system(api, d, "Foreground").await?;
                }
            }
        }
        return Ok(Action::await_change());
    }
    // a dependent whose owners are all gone (deleted before it, or meanwhile)
    let refs = owner_uids(&o);
    if !refs.is_empty() && refs.iter().all(|u| !owner_alive(api, owners, u)) {
        rest::delete_system(api, key, "Background").await?;
    }
    Ok(Action::await_change())
}

// --- CustomResourceDefinitions ----------------------------------------------------------

fn crd_keys(api: &ApiServer, ev: &WatchEvent) -> Option<ObjectKey> {
    let key = &ev.object.key;
    if &*key.resource == crate::apis::CRD_RESOURCE {
        return (ev.kind != EventType::Deleted).then(|| key.clone());
    }
    if ev.kind != EventType::Deleted {
        return None;
    }
    // the last custom resource of a CRD being deleted lets the CRD go
    let (group, plural) = key.resource.split_once('/')?;
    if !group.contains('.') {
        return None;
    }
    let crd_key = ObjectKey::new(
        crate::apis::CRD_RESOURCE,
        &key.cluster,
        "",
        &format!("{plural}.{group}"),
    );
    let c = api.inner.store.get(&crd_key)?;
    meta::is_deleting(&c.value).then_some(crd_key)
}

async fn crd(api: &ApiServer, key: &ObjectKey) -> Result {
    use crate::registry::crd::CLEANUP_FINALIZER;
    let Some(o) = api.inner.store.get(key) else {
        return Ok(Action::await_change());
    };
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
        let crs = list(api, &format!("{group}/{plural}"), Some(&cluster), None);
        if crs.is_empty() {
            remove_finalizer(api, &o.key, CLEANUP_FINALIZER).await?;
        } else {
            let mut failed = None;
            for cr in crs {
                if !meta::is_deleting(&cr.value) {
                    if let Err(e) = rest::delete_system(api, &cr.key, "Background").await {
                        failed.get_or_insert(e);
                    }
                }
            }
            rest::update_system(api, &o.key, |cur| {
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
            .await?;
            if let Some(e) = failed {
                return Err(e.into());
            }
        }
        // the custom resources' deletions bring it back
        return Ok(Action::await_change());
    }
    // Names: a kind, plural, singular or short name already accepted for another CRD
    // of the same group in this logical cluster is a conflict.
    let names = v.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let mut conflict = None;
    for other in list(api, crate::apis::CRD_RESOURCE, Some(&cluster), None) {
        if other.key.name == o.key.name
            || other.value.pointer("/spec/group").and_then(Value::as_str) != Some(group.as_str())
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
    rest::update_system(api, &o.key, |cur| {
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
    .await?;
    Ok(Action::await_change())
}

// --- ClusterRole aggregation ------------------------------------------------------------

async fn aggregate(api: &ApiServer, cluster: &str) -> Result {
    let roles = list(api, CLUSTER_ROLES, Some(cluster), None);
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
        rest::update_system(api, &agg.key, |v| {
            if v.get("rules") == Some(&rules) {
                return None;
            }
            let mut new = v.clone();
            set(&mut new, &["rules"], rules.clone())?;
            Some(new)
        })
        .await?;
    }
    Ok(Action::await_change())
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
