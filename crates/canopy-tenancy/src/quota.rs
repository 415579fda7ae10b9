//! Per-organization quotas: workspaces, objects and stored bytes.
//!
//! **Organizations.** Every logical cluster records the logical cluster name of its
//! organization in the annotation [`ORGANIZATION_ANNOTATION`] of its `LogicalCluster`
//! object, written by the system when the logical cluster is created
//! (`bootstrap::ensure_logical_cluster_at`, carried by `POST /internal/logicalclusters`
//! for remote placements) and never writable by tenants (`canopy.dev` keys are refused
//! by `admission.rs`). It is inherited from the parent; a logical cluster whose parent
//! has no organization starts one of its own — a workspace directly under `root`, and
//! each home workspace under `root:users`. `root` and `root:users` (type `homeroot`)
//! belong to no organization and have no quota. Logical clusters made by older
//! versions, without the annotation, get their organization from their path once,
//! when this shard first sees them: the logical cluster at `root:<org>` (or
//! `root:users:<home>`) when it is on this shard, else their own.
//!
//! **Accounting.** The store counts objects and serialized bytes per logical cluster
//! exactly after every commit (`canopy_storage::Store::cluster_usage`). An
//! organization's usage on this shard is the sum over its logical clusters here (an
//! index kept from a watch of `LogicalCluster` objects); workspaces are the `Workspace`
//! objects stored in its logical clusters (its own Workspace, in `root`, is not one of
//! them). Every [`REPORT_INTERVAL`] each shard sends its per-organization usage to
//! root's shard (`POST /internal/usage`, shard peers only) and gets back the sum of
//! every other shard's last report; root's shard keeps the reports.
//!
//! **Enforcement.** A user's create (or update growing an object) in a logical cluster
//! of an organization is admitted when this shard's exact usage, plus what other
//! requests admitted here have not committed yet (reservations), plus the other shards'
//! last reported usage, plus the request stays within the organization's limits; else
//! 403 in the words of kube's ResourceQuota admission. A new Workspace also reserves
//! what its logical cluster's bootstrap will store. Deletes, updates that do not grow
//! and writes of the system (controllers, bootstrap) are never refused, so nothing
//! wedges; they are counted all the same. Superusers raise or lower an organization's
//! limits with the annotations [`QUOTA_WORKSPACES`], [`QUOTA_OBJECTS`],
//! [`QUOTA_BYTES`] on its `Workspace` (in `root`).
//!
//! Within one shard the limit is exact. Across shards an organization can overshoot by
//! what its other shards admitted since their last report (at most one
//! [`REPORT_INTERVAL`] and a round trip of writes per other shard), see `SECURITY.md`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use canopy_core::{meta, ApiError};
use canopy_storage::{ObjectKey, StoredObject};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::logicalcluster::LOGICAL_CLUSTER_RESOURCE;
use crate::registry::WORKSPACES;
use canopy_apiserver::pipeline::Ctx;
use canopy_apiserver::registry::Resource;
use canopy_apiserver::ApiServer;

/// The logical cluster name of a logical cluster's organization (on its
/// `LogicalCluster` object; set by the system only).
pub(crate) const ORGANIZATION_ANNOTATION: &str = "canopy.dev/organization";
/// Overrides of an organization's limits, on its `Workspace` (superusers only).
pub(crate) const QUOTA_WORKSPACES: &str = "quota.canopy.dev/workspaces";
pub(crate) const QUOTA_OBJECTS: &str = "quota.canopy.dev/objects";
pub(crate) const QUOTA_BYTES: &str = "quota.canopy.dev/bytes";

/// How the quotas are named in messages: kcp's (and kube's object-count) name for
/// workspaces, kube's object-count form for all objects, and a Canopy-specific name for
/// stored bytes (kube has no such quota).
pub(crate) const WORKSPACES_NAME: &str = "count/workspaces.tenancy.kcp.io";
pub(crate) const OBJECTS_NAME: &str = "count/objects";
pub(crate) const BYTES_NAME: &str = "canopy.dev/stored-bytes";

pub const DEFAULT_WORKSPACES: u64 = 1_000;
pub const DEFAULT_OBJECTS: u64 = 100_000;
pub const DEFAULT_BYTES: u64 = 256 << 20;

/// How often each shard reports its usage to root's shard.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// The limits of one organization; 0: no limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrgQuotas {
    /// Workspaces inside the organization (at any depth).
    pub workspaces: u64,
    /// Objects stored in all its logical clusters (the system's too).
    pub objects: u64,
    /// Bytes those objects take, serialized as stored.
    pub bytes: u64,
}

impl Default for OrgQuotas {
    fn default() -> Self {
        OrgQuotas {
            workspaces: DEFAULT_WORKSPACES,
            objects: DEFAULT_OBJECTS,
            bytes: DEFAULT_BYTES,
        }
    }
}

impl OrgQuotas {
    /// No limits at all.
    pub fn unlimited() -> Self {
        OrgQuotas {
            workspaces: 0,
            objects: 0,
            bytes: 0,
        }
    }
}

/// What an organization uses (on one shard, or on several).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct OrgUsage {
    #[serde(default)]
    pub workspaces: u64,
    #[serde(default)]
    pub objects: u64,
    #[serde(default)]
    pub bytes: u64,
}

impl std::ops::Add for OrgUsage {
    type Output = OrgUsage;
    fn add(self, o: OrgUsage) -> OrgUsage {
        OrgUsage {
            workspaces: self.workspaces.saturating_add(o.workspaces),
            objects: self.objects.saturating_add(o.objects),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }
}

impl OrgUsage {
    fn minus(self, o: OrgUsage) -> OrgUsage {
        OrgUsage {
            workspaces: self.workspaces.saturating_sub(o.workspaces),
            objects: self.objects.saturating_sub(o.objects),
            bytes: self.bytes.saturating_sub(o.bytes),
        }
    }
    fn is_zero(&self) -> bool {
        *self == OrgUsage::default()
    }
}

/// Limits a superuser set on an organization's Workspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Overrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspaces: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl Overrides {
    fn of(ws: &Value) -> Option<Overrides> {
        let num = |k: &str| meta::annotation(ws, k).and_then(|v| v.trim().parse::<u64>().ok());
        let o = Overrides {
            workspaces: num(QUOTA_WORKSPACES),
            objects: num(QUOTA_OBJECTS),
            bytes: num(QUOTA_BYTES),
        };
        (o != Overrides::default()).then_some(o)
    }
    fn apply(self, q: OrgQuotas) -> OrgQuotas {
        OrgQuotas {
            workspaces: self.workspaces.unwrap_or(q.workspaces),
            objects: self.objects.unwrap_or(q.objects),
            bytes: self.bytes.unwrap_or(q.bytes),
        }
    }
}

/// What a shard sends root's shard.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UsageReport {
    pub shard: String,
    /// Organization (logical cluster name) → its usage on the reporting shard.
    #[serde(default)]
    pub organizations: BTreeMap<String, OrgUsage>,
    /// Limits set on organizations' Workspaces held by the reporting shard.
    #[serde(default)]
    pub overrides: BTreeMap<String, Overrides>,
}

/// What root's shard answers: every other shard's usage, summed per organization, and
/// every override known.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct UsageTotals {
    #[serde(default)]
    pub organizations: BTreeMap<String, OrgUsage>,
    #[serde(default)]
    pub overrides: BTreeMap<String, Overrides>,
}

/// The quota state of a shard ([`crate::Tenancy::quota`]).
#[derive(Default)]
pub(crate) struct QuotaState {
    index: RwLock<Index>,
    /// Admitted, not yet committed, per organization.
    reserved: Mutex<HashMap<String, OrgUsage>>,
    /// The other shards' usage as of the last report.
    remote: RwLock<HashMap<String, OrgUsage>>,
    /// Overrides known from the last report round (this shard's and the others').
    overrides: RwLock<HashMap<String, Overrides>>,
    /// This shard's usage per organization as of the last report round.
    own: RwLock<BTreeMap<String, OrgUsage>>,
    /// Root's shard: the last report of every other shard.
    reports: Mutex<HashMap<String, UsageReport>>,
    bootstrap: std::sync::OnceLock<OrgUsage>,
}

#[derive(Default)]
struct Index {
    /// Logical cluster → its organization (`None`: none).
    org_of: HashMap<String, Option<String>>,
    /// Organization → its logical clusters on this shard.
    clusters: HashMap<String, HashSet<String>>,
}

impl Index {
    fn set(&mut self, cluster: &str, org: Option<String>) {
        self.remove(cluster);
        if let Some(o) = &org {
            self.clusters
                .entry(o.clone())
                .or_default()
                .insert(cluster.to_string());
        }
        self.org_of.insert(cluster.to_string(), org);
    }
    fn remove(&mut self, cluster: &str) {
        if let Some(Some(old)) = self.org_of.remove(cluster) {
            if let Some(set) = self.clusters.get_mut(&old) {
                set.remove(cluster);
                if set.is_empty() {
                    self.clusters.remove(&old);
                }
            }
        }
    }
}

fn logical_cluster(api: &ApiServer, cluster: &str) -> Option<Arc<StoredObject>> {
    api.store().get(&ObjectKey::new(
        LOGICAL_CLUSTER_RESOURCE,
        cluster,
        "",
        "cluster",
    ))
}

/// The organization of a child logical cluster being created below `parent`: the
/// parent's, else (the parent has none: `root`, `root:users`) the child itself unless
/// it is of a system type (`homeroot`).
pub(crate) fn organization_for_child(
    api: &ApiServer,
    parent: &str,
    child_type: &str,
    child: &str,
) -> Option<String> {
    organization(api, parent).or_else(|| (child_type != "root:homeroot").then(|| child.to_string()))
}

/// The organization of a logical cluster held here (`None`: none, or not here).
pub fn organization(api: &ApiServer, cluster: &str) -> Option<String> {
    if let Some(o) = crate::tenancy(api).quota.index.read().org_of.get(cluster) {
        return o.clone();
    }
    let lc = logical_cluster(api, cluster)?;
    let org = organization_of(api, &lc);
    // remembered until the watch ([`run`]) sees the object
    crate::tenancy(api)
        .quota
        .index
        .write()
        .set(cluster, org.clone());
    org
}

/// What a `LogicalCluster` object says its organization is; for objects of older
/// versions without the record, derived from the path (see the module docs).
fn organization_of(api: &ApiServer, lc: &StoredObject) -> Option<String> {
    if lc.key.name != "cluster" {
        return None;
    }
    if let Some(o) = meta::annotation(&lc.value, ORGANIZATION_ANNOTATION) {
        return (!o.is_empty()).then(|| o.to_string());
    }
    let cluster = &*lc.key.cluster;
    let path = meta::annotation(&lc.value, crate::registry::PATH_ANNOTATION).unwrap_or(cluster);
    let ty = meta::annotation(&lc.value, crate::workspaces::TYPE_ANNOTATION).unwrap_or("");
    if cluster == "root" || path == "root" || ty == "root:homeroot" {
        return None;
    }
    let segments: Vec<&str> = path.split(':').collect();
    let depth = if path.starts_with("root:users:") {
        3
    } else {
        2
    };
    if segments.len() <= depth {
        return Some(cluster.to_string());
    }
    let org_path = segments.get(..depth).map(|s| s.join(":"))?;
    Some(crate::workspaces::resolve(api.store(), &org_path).unwrap_or_else(|| cluster.to_string()))
}

/// How an organization is named in messages: its workspace path, from the path of one
/// of its logical clusters.
fn display_name(api: &ApiServer, cluster: &str) -> String {
    let path = crate::workspaces::path_of(api.store(), cluster);
    let depth = if path.starts_with("root:users:") {
        3
    } else {
        2
    };
    path.split(':').take(depth).collect::<Vec<_>>().join(":")
}

/// This shard's exact usage of an organization (workspaces only when asked: they cost
/// a look at every logical cluster's per-resource counts).
fn local_usage(api: &ApiServer, org: &str, with_workspaces: bool) -> OrgUsage {
    let index = crate::tenancy(api).quota.index.read();
    let Some(clusters) = index.clusters.get(org) else {
        return OrgUsage::default();
    };
    let store = api.store();
    let c = store.usage_of_clusters(clusters.iter().map(String::as_str));
    let workspaces = if with_workspaces {
        clusters
            .iter()
            .map(|cl| store.cluster_usage(cl).resource(WORKSPACES).objects)
            .sum()
    } else {
        0
    };
    OrgUsage {
        workspaces,
        objects: c.objects,
        bytes: c.bytes,
    }
}

/// The limits of an organization: the defaults, overridden on its Workspace.
pub fn limits(api: &ApiServer, org: &str) -> OrgQuotas {
    let defaults = crate::tenancy(api).config.quotas;
    // the Workspace, when it is here (its overrides apply at once)
    if let Some(ws) = crate::workspaces::parent_workspace(api.store(), org) {
        if let Some(o) = Overrides::of(&ws.value) {
            return o.apply(defaults);
        }
    }
    match crate::tenancy(api).quota.overrides.read().get(org) {
        Some(o) => o.apply(defaults),
        None => defaults,
    }
}

/// What an admitted request may still add until it commits; released on drop.
pub struct Reservation {
    api: ApiServer,
    org: String,
    amount: OrgUsage,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut r = crate::tenancy(&self.api).quota.reserved.lock();
        if let Some(v) = r.get_mut(&self.org) {
            *v = v.minus(self.amount);
            if v.is_zero() {
                r.remove(&self.org);
            }
        }
    }
}

/// What a new logical cluster's bootstrap stores (an estimate, computed once: the
/// default roles, bindings, namespaces and their objects, the LogicalCluster).
fn bootstrap_cost(api: &ApiServer) -> OrgUsage {
    *crate::tenancy(api).quota.bootstrap.get_or_init(|| {
        // metadata the store adds (uid, creationTimestamp, resourceVersion, ...)
        const PER_OBJECT: u64 = 200;
        let mut objects: Vec<Value> = canopy_apiserver::bootstrap::default_cluster_roles();
        objects.extend(canopy_apiserver::bootstrap::default_cluster_role_bindings());
        for n in canopy_apiserver::bootstrap::DEFAULT_NAMESPACES {
            objects.push(serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}));
            objects.extend(
                canopy_apiserver::controllers::default_namespace_objects(api, n)
                    .into_iter()
                    .map(|(_, v)| v),
            );
        }
        // the workspace-admin binding and the LogicalCluster
        let extra = 2u64;
        let bytes: u64 = objects
            .iter()
            .map(|o| canopy_apiserver::codec::json_size(o) as u64 + PER_OBJECT)
            .sum::<u64>()
            + extra * 1024;
        OrgUsage {
            workspaces: 0,
            objects: objects.len() as u64 + extra,
            bytes,
        }
    })
}

/// A quota a request would exceed.
struct Exceeded {
    name: &'static str,
    requested: u64,
    used: u64,
    limited: u64,
}

fn check(
    api: &ApiServer,
    cluster: &str,
    res: &Resource,
    name: &str,
    want: OrgUsage,
) -> Result<Option<Reservation>, ApiError> {
    let Some(org) = organization(api, cluster) else {
        return Ok(None);
    };
    let limit = limits(api, &org);
    let state = &crate::tenancy(api).quota;
    let mut reserved = state.reserved.lock();
    let used = local_usage(api, &org, want.workspaces > 0)
        + state.remote.read().get(&org).copied().unwrap_or_default()
        + reserved.get(&org).copied().unwrap_or_default();
    let mut failed: Vec<Exceeded> = Vec::new();
    for (quota, want, used, limit) in [
        (
            WORKSPACES_NAME,
            want.workspaces,
            used.workspaces,
            limit.workspaces,
        ),
        (OBJECTS_NAME, want.objects, used.objects, limit.objects),
        (BYTES_NAME, want.bytes, used.bytes, limit.bytes),
    ] {
        if want > 0 && limit > 0 && used.saturating_add(want) > limit {
            failed.push(Exceeded {
                name: quota,
                requested: want,
                used,
                limited: limit,
            });
        }
    }
    if !failed.is_empty() {
        drop(reserved);
        // kube's ResourceQuota admission: the exceeded resources, sorted by name
        failed.sort_by(|a, b| a.name.cmp(b.name));
        let list = |f: fn(&Exceeded) -> u64| {
            failed
                .iter()
                .map(|e| format!("{}={}", e.name, f(e)))
                .collect::<Vec<_>>()
                .join(",")
        };
        let reason = format!(
            "exceeded quota: organization {:?}, requested: {}, used: {}, limited: {}",
            display_name(api, cluster),
            list(|e| e.requested),
            list(|e| e.used),
            list(|e| e.limited),
        );
        return Err(ApiError::admission_forbidden(
            canopy_apiserver::rest::subject(res, name),
            &reason,
        ));
    }
    let r = reserved.entry(org.clone()).or_default();
    *r = *r + want;
    Ok(Some(Reservation {
        api: api.clone(),
        org,
        amount: want,
    }))
}

/// Admits a user's create of `obj` in the request's logical cluster: one object of its
/// size; a Workspace also counts one workspace and its logical cluster's bootstrap.
pub(crate) fn admit_create(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    obj: &Value,
) -> Result<Option<Reservation>, ApiError> {
    let Some(cluster) = ctx.cluster.as_deref() else {
        return Ok(None);
    };
    let mut want = OrgUsage {
        workspaces: 0,
        objects: 1,
        bytes: canopy_apiserver::codec::json_size(obj) as u64,
    };
    if res.desc.group == canopy_core::resource::TENANCY_GROUP && res.desc.plural == "workspaces" {
        want = want
            + OrgUsage {
                workspaces: 1,
                ..bootstrap_cost(api)
            };
    }
    check(api, cluster, res, meta::name(obj), want)
}

/// Admits a user's update from `cur` to `new`: only what it grows the stored bytes by
/// is checked; updates of objects being deleted pass.
pub(crate) fn admit_update(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    cur: &StoredObject,
    new: &Value,
) -> Result<Option<Reservation>, ApiError> {
    let Some(cluster) = ctx.cluster.as_deref() else {
        return Ok(None);
    };
    if meta::is_deleting(new) {
        return Ok(None);
    }
    let grow =
        (canopy_apiserver::codec::json_size(new) as u64).saturating_sub(cur.json.len() as u64);
    if grow == 0 {
        return Ok(None);
    }
    check(
        api,
        cluster,
        res,
        meta::name(new),
        OrgUsage {
            bytes: grow,
            ..Default::default()
        },
    )
}

/// This shard's usage of every organization with logical clusters here.
pub(crate) fn shard_usage(api: &ApiServer) -> BTreeMap<String, OrgUsage> {
    let orgs: Vec<String> = crate::tenancy(api)
        .quota
        .index
        .read()
        .clusters
        .keys()
        .cloned()
        .collect();
    orgs.into_iter()
        .map(|o| {
            let u = local_usage(api, &o, true);
            (o, u)
        })
        .filter(|(_, u)| !u.is_zero())
        .collect()
}

/// Overrides on the Workspaces of organizations held here (the Workspaces in
/// logical clusters without an organization: `root`, `root:users`).
fn local_overrides(api: &ApiServer) -> BTreeMap<String, Overrides> {
    let parents: Vec<String> = crate::tenancy(api)
        .quota
        .index
        .read()
        .org_of
        .iter()
        .filter(|(_, o)| o.is_none())
        .map(|(c, _)| c.clone())
        .collect();
    let mut out = BTreeMap::new();
    for p in parents {
        for ws in api.store().list_all(WORKSPACES, Some(&p), None) {
            let child = ws
                .value
                .pointer("/spec/cluster")
                .and_then(Value::as_str)
                .unwrap_or("");
            if child.is_empty() {
                continue;
            }
            if let Some(o) = Overrides::of(&ws.value) {
                out.insert(child.to_string(), o);
            }
        }
    }
    out
}

/// Root's shard: records a shard's report; answers every other shard's usage and
/// every override.
pub(crate) fn receive_report(api: &ApiServer, report: UsageReport) -> UsageTotals {
    let state = &crate::tenancy(api).quota;
    let mut reports = state.reports.lock();
    let from = report.shard.clone();
    reports.insert(from.clone(), report);
    let mut totals = UsageTotals {
        organizations: state.own.read().clone(),
        overrides: local_overrides(api),
    };
    for (shard, r) in reports.iter() {
        for (o, ov) in &r.overrides {
            totals.overrides.insert(o.clone(), *ov);
        }
        if *shard == from {
            continue;
        }
        for (o, u) in &r.organizations {
            let t = totals.organizations.entry(o.clone()).or_default();
            *t = *t + *u;
        }
    }
    totals
}

/// `POST /internal/usage` (shard peers only, see `pipeline.rs`).
pub(crate) fn serve_report(
    api: &ApiServer,
    body: &[u8],
) -> Result<http::Response<canopy_apiserver::response::Body>, ApiError> {
    let report: UsageReport = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid usage report: {e}")))?;
    if !crate::logicalcluster::logical_cluster_exists(api.store(), "root") {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let totals = serde_json::to_value(receive_report(api, report))
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(canopy_apiserver::response::json(200, &totals))
}

/// One report round: this shard's usage and overrides, exchanged with root's shard.
pub async fn report(api: &ApiServer) {
    let state = &crate::tenancy(api).quota;
    let own = shard_usage(api);
    *state.own.write() = own.clone();
    let mine = local_overrides(api);
    let totals = if crate::logicalcluster::logical_cluster_exists(api.store(), "root") {
        let reports = state.reports.lock();
        let mut t = UsageTotals {
            organizations: BTreeMap::new(),
            overrides: mine.clone(),
        };
        for r in reports.values() {
            for (o, u) in &r.organizations {
                let e = t.organizations.entry(o.clone()).or_default();
                *e = *e + *u;
            }
            for (o, ov) in &r.overrides {
                t.overrides.entry(o.clone()).or_insert(*ov);
            }
        }
        t
    } else {
        let peers = crate::tenancy(api).peers.read().clone();
        let Some(p) = peers else {
            return;
        };
        let report = UsageReport {
            shard: crate::tenancy(api).config.shard_name.clone(),
            organizations: own,
            overrides: mine,
        };
        match p.report_usage(&report).await {
            Ok(t) => t,
            Err(e) => {
                // the last totals stay in force
                tracing::debug!(error = %e, "reporting usage to root's shard");
                return;
            }
        }
    };
    *state.remote.write() = totals.organizations.into_iter().collect();
    *state.overrides.write() = totals.overrides.into_iter().collect();
}

/// Keeps the organization index current from the controllers' event feed (an index
/// over `LogicalCluster` objects, rebuilt whenever the feed resubscribes) and reports
/// usage every [`REPORT_INTERVAL`]; both stop with the server's controllers.
pub(crate) fn start(api: &ApiServer, run: &mut canopy_apiserver::controllers::Starter) {
    let reporter = api.downgrade();
    run.spawn(async move {
        let mut tick = tokio::time::interval(REPORT_INTERVAL);
        loop {
            tick.tick().await;
            let Some(api) = reporter.upgrade() else {
                return;
            };
            if api.is_shutting_down() {
                return;
            }
            report(&api).await;
        }
    });
    let (on_event, rebuild) = (api.clone(), api.clone());
    run.feed(move |f| {
        f.index(
            move |ev: &canopy_apiserver::controllers::Event| {
                let key = &ev.object.key;
                if &*key.resource != LOGICAL_CLUSTER_RESOURCE || key.name != "cluster" {
                    return;
                }
                let mut index = crate::tenancy(&on_event).quota.index.write();
                if ev.kind == canopy_storage::EventType::Deleted {
                    index.remove(&key.cluster);
                } else {
                    let org = organization_of(&on_event, &ev.object);
                    index.set(&key.cluster, org);
                }
            },
            move || {
                let orgs: Vec<(String, Option<String>)> = rebuild
                    .store()
                    .list_all(LOGICAL_CLUSTER_RESOURCE, None, None)
                    .iter()
                    .filter(|o| o.key.name == "cluster")
                    .map(|o| (o.key.cluster.to_string(), organization_of(&rebuild, o)))
                    .collect();
                let mut index = crate::tenancy(&rebuild).quota.index.write();
                *index = Index::default();
                for (c, o) in orgs {
                    index.set(&c, o);
                }
            },
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_read_from_annotations() {
        let ws = serde_json::json!({"metadata": {"annotations": {
            QUOTA_OBJECTS: "10", QUOTA_BYTES: " 2048 ", QUOTA_WORKSPACES: "lots"}}});
        let o = Overrides::of(&ws).unwrap();
        assert_eq!(
            o,
            Overrides {
                workspaces: None,
                objects: Some(10),
                bytes: Some(2048)
            }
        );
        let q = o.apply(OrgQuotas::default());
        assert_eq!(q.objects, 10);
        assert_eq!(q.workspaces, DEFAULT_WORKSPACES);
        assert!(Overrides::of(&serde_json::json!({"metadata": {}})).is_none());
    }

    #[test]
    fn report_wire_form() {
        let r: UsageReport = serde_json::from_value(serde_json::json!({
            "shard": "s1", "organizations": {"abc": {"objects": 3, "bytes": 10}}
        }))
        .unwrap();
        assert_eq!(
            r.organizations["abc"],
            OrgUsage {
                workspaces: 0,
                objects: 3,
                bytes: 10
            }
        );
        assert!(r.overrides.is_empty());
    }

    #[test]
    fn index_moves_clusters_between_organizations() {
        let mut i = Index::default();
        i.set("a", Some("o1".into()));
        i.set("b", Some("o1".into()));
        i.set("a", Some("o2".into()));
        assert_eq!(i.clusters["o1"].len(), 1);
        assert_eq!(i.clusters["o2"].len(), 1);
        i.remove("b");
        assert!(!i.clusters.contains_key("o1"));
        i.set("root", None);
        assert_eq!(i.org_of["root"], None);
    }
}
