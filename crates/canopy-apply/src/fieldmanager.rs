//! The field manager: server-side apply and managedFields bookkeeping for every write, as
//! k8s.io/apimachinery's `managedfields` stack and structured-merge-diff's `merge.Updater`
//! do them.
//!
//! [`FieldManager::apply`] runs, outermost first:
//! - the version check (the applied object's `apiVersion`/`kind` must be the resource's);
//! - last-applied updating and conflict allowance for the `kubectl` manager upgrading from
//!   client-side apply (`lastappliedupdater`, `lastappliedmanager`);
//! - `before-first-apply`: an object without managedFields first has its current fields
//!   recorded as owned by `before-first-apply` (`skipnonapplied`);
//! - the applier's entry (`Apply`, no API version in its identity, `subresource`), its time
//!   set when the object changed (`managedfieldsupdater`), metadata stripped from its set
//!   (`stripmeta`);
//! - structured-merge-diff's apply: merge the configuration into the live object, take the
//!   configuration's field set as the applier's, prune what the applier applied before and
//!   no longer applies unless someone else owns it, then fail on fields changed that other
//!   managers own (unless forced, in which case they lose them).
//!
//! [`FieldManager::update`] runs the same stack for non-apply writes: managedFields sent by
//! the client are used when they decode (else the live object's are kept; `[]` or `[{}]`
//! resets them), the writer gets the fields it added or changed (merged into its previous
//! `Update` entry for the same API version), everyone else loses the fields changed or
//! removed, empty entries disappear, and past 10 `Update` entries the oldest are merged
//! into `ancient-changes` (`capmanagers`). An existing object without managedFields stays
//! untracked until its first apply.
//!
//! Objects of other API versions are not converted: field paths are taken to be the same
//! in every version of a resource.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::conflict::{Conflict, Conflicts};
use crate::managed::{
    decode_managed_fields, format_time, is_reset_managed_fields, managed_fields_of,
    remove_managed_fields, set_managed_fields, Managed, ManagerId, Operation, VersionedSet,
};
use crate::path::Path;
use crate::schema::{Schema, TypeRef};
use crate::set::FieldSet;
use crate::typed::{format_errors, Comparison, Typer};
use crate::value::{equals, go_json};
use crate::{ApplyError, UpdateError};

/// The annotation client-side apply keeps its last applied configuration in.
pub const LAST_APPLIED_CONFIG_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The manager that owns an object's fields from before its first apply.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The manager old `Update` entries are merged into.
pub const ANCIENT_CHANGES: &str = "ancient-changes";
/// kube's default cap on `Update` entries.
pub const DEFAULT_MAX_UPDATE_MANAGERS: usize = 10;
/// The manager kubectl's client-side apply writes as.
pub const KUBECTL_CLIENT_SIDE_APPLY: &str = "kubectl-client-side-apply";
/// kube's limit on the total size of an object's annotations.
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

type Managers = BTreeMap<ManagerId, VersionedSet>;

/// Fields never recorded in a manager's set (kube's `stripmeta`, plus the deletion fields,
/// which kube sets outside the field manager).
pub fn stripped_fields() -> FieldSet {
    let mut paths = vec![
        Path::fields(&["apiVersion"]),
        Path::fields(&["kind"]),
        Path::fields(&["metadata"]),
    ];
    for f in [
        "name",
        "namespace",
        "creationTimestamp",
        "selfLink",
        "uid",
        "clusterName",
        "generation",
        "managedFields",
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    ] {
        paths.push(Path::fields(&["metadata", f]));
    }
    FieldSet::from_paths(paths)
}

/// Applies and tracks field ownership for one resource (or one of its subresources).
/// Cheap to clone; build once per resource and reuse.
#[derive(Debug, Clone)]
pub struct FieldManager {
    schema: Schema,
    group_version: String,
    kind: String,
    subresource: String,
    /// Reset fields given by the caller.
    reset: FieldSet,
    /// The resource has a status subresource.
    status_subresource: bool,
    /// `reset` plus what the status subresource implies.
    ignored: FieldSet,
    strip: FieldSet,
    max_update_managers: usize,
    lenient: bool,
    upgrade_last_applied: bool,
    /// The caller validated the new object of non-apply writes against the same type.
    trusted_updates: bool,
}

fn gvk_string(api_version: &str, kind: &str) -> String {
    // Go's GroupVersionKind.String(): "apps/v1, Kind=Deployment", "/v1, Kind=ConfigMap".
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    format!("{group}/{version}, Kind={kind}")
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn object_gvknn(obj: &Value) -> String {
    format!(
        "{}/{}; {}",
        str_at(obj, "/metadata/namespace"),
        str_at(obj, "/metadata/name"),
        gvk_string(str_at(obj, "/apiVersion"), str_at(obj, "/kind"))
    )
}

fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    remove_managed_fields(&mut v);
    v
}

impl FieldManager {
    /// A field manager for the main resource of `kind` in `api_version` (`apps/v1`, `v1`).
    pub fn new(schema: Schema, api_version: &str, kind: &str) -> Self {
        FieldManager {
            schema,
            group_version: api_version.to_string(),
            kind: kind.to_string(),
            subresource: String::new(),
            reset: FieldSet::new(),
            status_subresource: false,
            ignored: FieldSet::new(),
            strip: stripped_fields(),
            max_update_managers: DEFAULT_MAX_UPDATE_MANAGERS,
            lenient: false,
            trusted_updates: false,
            upgrade_last_applied: false,
        }
    }

    /// For writes through a subresource (`status`, `scale`): entries carry it.
    pub fn with_subresource(mut self, subresource: &str) -> Self {
        self.subresource = subresource.to_string();
        self.recompute_ignored();
        self
    }

    /// Fields the strategy resets on this endpoint (kube's `GetResetFields`): never owned,
    /// never a conflict.
    pub fn with_ignored_fields(mut self, fields: FieldSet) -> Self {
        self.reset = fields;
        self.recompute_ignored();
        self
    }

    /// The resource has a status subresource: the main resource ignores `status`, the
    /// `status` subresource ignores `spec` (as kube's strategies and custom resources do).
    pub fn with_status_subresource(mut self) -> Self {
        self.status_subresource = true;
        self.recompute_ignored();
        self
    }

    fn recompute_ignored(&mut self) {
        let mut ignored = self.reset.clone();
        if self.status_subresource {
            let field = match self.subresource.as_str() {
                "status" => "spec",
                "" => "status",
                _ => "",
            };
            if !field.is_empty() {
                ignored.insert(&Path::fields(&[field]).0);
            }
        }
        self.ignored = ignored;
    }

    /// The fields this endpoint neither owns nor conflicts on.
    pub fn ignored_fields(&self) -> &FieldSet {
        &self.ignored
    }

    /// Caps `Update` entries (default 10).
    pub fn with_max_update_managers(mut self, n: usize) -> Self {
        self.max_update_managers = n;
        self
    }

    /// Treat keys a struct does not declare as deduced instead of failing (kube fails).
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// For servers that validate every written object against the same type themselves:
    /// non-apply writes skip the typed check of the new and live objects (one walk of
    /// each fewer); ownership is computed the same way.
    pub fn trusted_updates(mut self, trusted: bool) -> Self {
        self.trusted_updates = trusted;
        self
    }

    /// Opt-in: an applier without an entry on an object carrying the last-applied
    /// annotation first takes over `kubectl-client-side-apply`'s fields, as kubectl does
    /// before `apply --server-side` (so fields dropped from the configuration are removed).
    pub fn with_last_applied_upgrade(mut self, upgrade: bool) -> Self {
        self.upgrade_last_applied = upgrade;
        self
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    fn typer(&self) -> Typer<'_> {
        Typer {
            schema: &self.schema.inner,
            lenient: self.lenient,
        }
    }

    fn root(&self) -> TypeRef {
        self.schema.root
    }

    fn check(&self, v: &Value, allow_duplicates: bool) -> Result<(), String> {
        let errs = self.typer().validate(v, self.root(), allow_duplicates);
        if errs.is_empty() {
            Ok(())
        } else {
            Err(format_errors(&errs))
        }
    }

    // ------------------------------------------------------------ apply

    /// Server-side apply of `applied` by `manager` onto `live` (`None` to create). Returns
    /// the object to store, with its managedFields.
    pub fn apply(
        &self,
        live: Option<&Value>,
        applied: &Value,
        manager: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Value, ApplyError> {
        // everything below recurses on the objects: refuse the deepest first
        for v in std::iter::once(applied).chain(live) {
            if crate::nesting(v) > crate::MAX_NESTING {
                return Err(ApplyError::BadRequest(format!(
                    "the object nests more than {} levels of objects and arrays",
                    crate::MAX_NESTING
                )));
            }
        }
        let mut live = live.cloned().unwrap_or_else(|| json!({}));
        if !applied.is_object() {
            return Err(ApplyError::BadRequest(
                "the applied configuration is not a JSON object".into(),
            ));
        }
        if self.upgrade_last_applied
            && last_applied_of(&live).is_some()
            && !has_apply_entry(&live, manager)
        {
            upgrade_client_side_apply(&mut live, KUBECTL_CLIENT_SIDE_APPLY, manager);
        }
        let managed = decode_managed_fields(&live)
            .map_err(|e| ApplyError::Internal(format!("failed to decode managed fields: {e}")))?;
        // versioncheck
        let (av, kind) = (str_at(applied, "/apiVersion"), str_at(applied, "/kind"));
        if av != self.group_version || kind != self.kind {
            return Err(ApplyError::BadRequest(format!(
                "invalid object type: {}",
                gvk_string(av, kind)
            )));
        }
        // lastappliedmanager
        let result =
            match self.apply_untracked(&live, applied, managed.clone(), manager, force, now) {
                Err(ApplyError::Conflicts(conflicts)) if manager == "kubectl" => {
                    match self.allowed_conflicts_from_last_applied(&live) {
                        Some(allowed) => {
                            let remaining: Vec<Conflict> = conflicts
                                .0
                                .into_iter()
                                .filter(|c| !allowed.has(&c.path.0))
                                .collect();
                            if remaining.is_empty() {
                                self.apply_untracked(&live, applied, managed, manager, true, now)
                            } else {
                                Err(ApplyError::Conflicts(Conflicts(remaining)))
                            }
                        }
                        None => Err(ApplyError::Conflicts(conflicts)),
                    }
                }
                other => other,
            };
        let (mut obj, managed) = result?;
        // lastappliedupdater
        if manager == "kubectl" && last_applied_of(&obj).is_some() {
            set_last_applied(&mut obj, &build_last_applied(applied));
        }
        set_managed_fields(&mut obj, &managed);
        Ok(obj)
    }

    /// `skipnonapplied` and below.
    fn apply_untracked(
        &self,
        live: &Value,
        applied: &Value,
        mut managed: Managed,
        manager: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<(Value, Managed), ApplyError> {
        let live = without_managed_fields(live);
        if managed.is_empty() {
            managed = self
                .update_tracked(&json!({}), &live, managed, BEFORE_FIRST_APPLY, now)
                .map_err(|e| {
                    ApplyError::Internal(format!(
                        "failed to create manager for existing fields: {e}"
                    ))
                })?;
        }
        let id = ManagerId::apply(manager, &self.subresource);
        let (obj, mut fields) =
            self.structured_apply(&live, applied, managed.fields, &id, force)?;
        self.strip_manager(&mut fields, &id);
        managed.fields = fields;
        let obj = match obj {
            Some(o) => {
                managed.times.insert(id, format_time(now));
                o
            }
            None => live,
        };
        Ok((obj, managed))
    }

    fn structured_apply(
        &self,
        live: &Value,
        applied: &Value,
        mut managers: Managers,
        id: &ManagerId,
        force: bool,
    ) -> Result<(Option<Value>, Managers), ApplyError> {
        if matches!(managed_fields_of(applied), Some(Value::Array(_))) {
            return Err(ApplyError::BadRequest(
                "metadata.managedFields must be nil".into(),
            ));
        }
        let patch_version = str_at(applied, "/apiVersion");
        if patch_version != self.group_version {
            return Err(ApplyError::BadRequest(format!(
                "Incorrect version specified in apply patch. Specified patch version: {patch_version}, expected: {}",
                self.group_version
            )));
        }
        self.check(applied, false).map_err(|e| {
            ApplyError::InvalidObject(format!(
                "failed to create typed patch object ({}): {e}",
                object_gvknn(applied)
            ))
        })?;
        self.check(live, true).map_err(|e| {
            ApplyError::InvalidObject(format!(
                "failed to create typed live object ({}): {e}",
                object_gvknn(live)
            ))
        })?;
        let new = self.smd_apply(live, applied, &mut managers, id, force)?;
        Ok((new, managers))
    }

    /// structured-merge-diff's `Updater.Apply`.
    fn smd_apply(
        &self,
        live: &Value,
        config: &Value,
        managers: &mut Managers,
        manager: &ManagerId,
        force: bool,
    ) -> Result<Option<Value>, ApplyError> {
        let t = self.typer();
        let root = self.root();
        self.reconcile(managers);
        let merged = t.merge(live, config, root).map_err(|errs| {
            ApplyError::Internal(format!("failed to merge config: {}", format_errors(&errs)))
        })?;
        let last = managers.get(manager).cloned();
        let set = t
            .field_set_of(config, root)
            .recursive_difference(&self.ignored);
        managers.insert(
            manager.clone(),
            VersionedSet {
                set,
                api_version: self.group_version.clone(),
                applied: true,
            },
        );
        let new = self.prune(merged, managers, last.as_ref());
        self.smd_update(live, &new, managers, Some(manager), force)
            .map_err(ApplyError::Conflicts)?;
        if equals(live, &new) {
            Ok(None)
        } else {
            Ok(Some(new))
        }
    }

    fn remove(&self, v: &Value, set: &FieldSet) -> Value {
        self.typer()
            .remove_items(v, set, self.root())
            .unwrap_or_else(|| Value::Object(Map::new()))
    }

    /// Removes what the applier applied last time and not this time, unless someone
    /// (including the applier's new configuration) owns it (`Updater.prune`).
    fn prune(&self, merged: Value, managers: &Managers, last: Option<&VersionedSet>) -> Value {
        let Some(last) = last.filter(|l| !l.set.is_empty()) else {
            return merged;
        };
        let t = self.typer();
        let root = self.root();
        let named = |s: &FieldSet| t.ensure_named_fields_are_members(s, root);
        let last_named = named(&last.set);
        let pruned = self.remove(&merged, &last_named);
        // addBackOwnedItems
        let mut managed = FieldSet::new();
        for vs in managers.values() {
            managed.union_in_place(&vs.set);
        }
        let merged_set = named(&t.field_set_of(&merged, root));
        let pruned_set = named(&t.field_set_of(&pruned, root));
        let pruned = self.remove(
            &merged,
            &merged_set.difference(&pruned_set.union(&named(&managed))),
        );
        // addBackDanglingItems
        let pruned_set = named(&t.field_set_of(&pruned, root));
        self.remove(
            &merged,
            &merged_set.difference(&pruned_set).intersection(&last_named),
        )
    }

    /// `reconcileManagedFieldsWithSchemaChanges`.
    fn reconcile(&self, managers: &mut Managers) {
        let t = self.typer();
        for vs in managers.values_mut() {
            if let Some(r) = t.reconcile(&vs.set, self.root()) {
                vs.set = r;
            }
        }
    }

    /// structured-merge-diff's `Updater.update`: managers other than `workflow` lose what
    /// changed (or it is a conflict, unless forced) and what was removed.
    fn smd_update(
        &self,
        old: &Value,
        new: &Value,
        managers: &mut Managers,
        workflow: Option<&ManagerId>,
        force: bool,
    ) -> Result<Comparison, Conflicts> {
        let mut cmp = self.typer().compare(old, new, self.root());
        cmp.exclude(&self.ignored);
        let changed = cmp.modified.union(&cmp.added);
        let mut conflicts: Vec<(ManagerId, FieldSet)> = Vec::new();
        for (id, vs) in managers.iter() {
            if Some(id) == workflow {
                continue;
            }
            let c = vs.set.intersection(&changed);
            if !c.is_empty() {
                conflicts.push((id.clone(), c));
            }
        }
        if !force && !conflicts.is_empty() {
            conflicts.sort_by_key(|(id, _)| id.identifier());
            let list = conflicts
                .into_iter()
                .flat_map(|(id, set)| {
                    set.paths().into_iter().map(move |path| Conflict {
                        manager: id.clone(),
                        path,
                    })
                })
                .collect();
            return Err(Conflicts(list));
        }
        for (id, c) in conflicts {
            if let Some(vs) = managers.get_mut(&id) {
                vs.set = vs.set.difference(&c);
            }
        }
        if !cmp.removed.is_empty() {
            for (id, vs) in managers.iter_mut() {
                if Some(id) != workflow {
                    vs.set = vs.set.difference(&cmp.removed);
                }
            }
        }
        managers.retain(|_, vs| !vs.set.is_empty());
        Ok(cmp)
    }

    fn strip_manager(&self, managers: &mut Managers, id: &ManagerId) {
        if let Some(vs) = managers.get_mut(id) {
            vs.set = vs.set.difference(&self.strip);
            if vs.set.is_empty() {
                managers.remove(id);
            }
        }
    }

    fn allowed_conflicts_from_last_applied(&self, live: &Value) -> Option<FieldSet> {
        let text = last_applied_of(live)?;
        let last: Value = serde_json::from_str(text).ok()?;
        if !last.is_object() || str_at(&last, "/apiVersion") != self.group_version {
            return None;
        }
        self.check(&last, false).ok()?;
        let live = without_managed_fields(live);
        let t = self.typer();
        let set = t.field_set_of(&last, self.root());
        let cmp = t.compare(&last, &live, self.root());
        Some(
            set.difference(&cmp.modified)
                .difference(&cmp.added)
                .difference(&cmp.removed),
        )
    }

    // ------------------------------------------------------------ update

    /// Records a non-apply write (create, update, patch) of `new` over `old` (`None` to
    /// create) by `manager`, returning `new` with its managedFields. Never fails: if the
    /// objects do not fit the schema, `new` keeps the live object's managedFields
    /// (kube's `UpdateNoErrors`).
    pub fn update(
        &self,
        old: Option<&Value>,
        new: &Value,
        manager: &str,
        now: DateTime<Utc>,
    ) -> Value {
        self.update_owned(old, new.clone(), manager, now)
    }

    /// [`FieldManager::update`] of an object the caller gives away (no copy of it is
    /// made: large custom resources are written without cloning them).
    pub fn update_owned(
        &self,
        old: Option<&Value>,
        new: Value,
        manager: &str,
        now: DateTime<Utc>,
    ) -> Value {
        match self.try_update_owned(old, new, manager, now) {
            Ok(v) => v,
            Err((_, mut out)) => {
                match old.and_then(managed_fields_of) {
                    Some(mf) => {
                        let mf = mf.clone();
                        if let Value::Object(o) = &mut out {
                            let meta = o
                                .entry("metadata")
                                .or_insert_with(|| Value::Object(Map::new()));
                            if let Value::Object(meta) = meta {
                                meta.insert("managedFields".into(), mf);
                            }
                        }
                    }
                    None => remove_managed_fields(&mut out),
                }
                out
            }
        }
    }

    /// [`FieldManager::update`], reporting objects that do not fit the schema.
    pub fn try_update(
        &self,
        old: Option<&Value>,
        new: &Value,
        manager: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, UpdateError> {
        self.try_update_owned(old, new.clone(), manager, now)
            .map_err(|(e, _)| e)
    }

    /// [`FieldManager::try_update`] of an owned object; on failure the object comes
    /// back (without managedFields) with the error.
    fn try_update_owned(
        &self,
        old: Option<&Value>,
        mut new: Value,
        manager: &str,
        now: DateTime<Utc>,
    ) -> Result<Value, (UpdateError, Value)> {
        let empty = json!({});
        let live = old.unwrap_or(&empty);
        let managed = self.decode_live_or_new(live, &new);
        remove_managed_fields(&mut new);
        // skipnonapplied: an existing object without managedFields stays untracked.
        if managed.is_empty() && !str_at(live, "/metadata/uid").is_empty() {
            return Ok(new);
        }
        let stripped;
        let live = if managed_fields_of(live).is_some() {
            stripped = without_managed_fields(live);
            &stripped
        } else {
            live
        };
        match self.update_tracked(live, &new, managed, manager, now) {
            Ok(managed) => {
                set_managed_fields(&mut new, &managed);
                Ok(new)
            }
            Err(e) => Err((e, new)),
        }
    }

    fn decode_live_or_new(&self, live: &Value, new: &Value) -> Managed {
        let from_live = || decode_managed_fields(live).unwrap_or_default();
        if !self.subresource.is_empty() {
            return from_live();
        }
        if is_reset_managed_fields(new) {
            return Managed::default();
        }
        match decode_managed_fields(new) {
            Ok(m) if !m.is_empty() => m,
            _ => from_live(),
        }
    }

    /// `capmanagers` / `buildmanagerinfo` / `managedfieldsupdater` / `stripmeta` /
    /// structured-merge-diff's `Update`.
    fn update_tracked(
        &self,
        live: &Value,
        new: &Value,
        mut managed: Managed,
        manager: &str,
        now: DateTime<Utc>,
    ) -> Result<Managed, UpdateError> {
        let manager = if manager.is_empty() {
            "unknown"
        } else {
            manager
        };
        let id = ManagerId::update(manager, &self.group_version, &self.subresource);
        if !self.trusted_updates {
            self.check(new, true).map_err(|e| {
                UpdateError::InvalidObject(format!(
                    "failed to convert new object ({}) to smd typed: {e}",
                    object_gvknn(new)
                ))
            })?;
            self.check(live, true).map_err(|e| {
                UpdateError::InvalidObject(format!(
                    "failed to convert live object ({}) to smd typed: {e}",
                    object_gvknn(live)
                ))
            })?;
        }
        self.reconcile(&mut managed.fields);
        // The current operation is tracked apart ("current-operation"), then merged into
        // the manager's previous entry if it took any field.
        let cmp = match self.smd_update(live, new, &mut managed.fields, None, true) {
            Ok(c) => c,
            Err(_) => unreachable!("forced updates have no conflicts"),
        };
        let current = cmp
            .modified
            .union(&cmp.added)
            .recursive_difference(&self.ignored)
            .difference(&self.strip);
        if !current.is_empty() {
            let set = match managed.fields.get(&id) {
                Some(prev) => current.union(&prev.set),
                None => current,
            };
            managed.fields.insert(
                id.clone(),
                VersionedSet {
                    set,
                    api_version: self.group_version.clone(),
                    applied: false,
                },
            );
            managed.times.insert(id, format_time(now));
        }
        self.cap_update_managers(&mut managed);
        Ok(managed)
    }

    /// Merges the oldest `Update` entries into per-version `ancient-changes` entries until
    /// at most `max_update_managers` remain.
    fn cap_update_managers(&self, managed: &mut Managed) {
        let mut updaters: Vec<ManagerId> = managed
            .fields
            .iter()
            .filter(|(_, vs)| !vs.applied)
            .map(|(id, _)| id.clone())
            .collect();
        if updaters.len() <= self.max_update_managers {
            return;
        }
        let seconds = |id: &ManagerId| {
            managed
                .times
                .get(id)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp())
                .unwrap_or(0)
        };
        updaters.sort_by(|a, b| {
            seconds(a)
                .cmp(&seconds(b))
                .then_with(|| a.identifier().cmp(&b.identifier()))
        });
        let mut first_of_version: HashMap<String, ManagerId> = HashMap::new();
        let mut length = updaters.len();
        for id in updaters {
            if length <= self.max_update_managers {
                break;
            }
            let Some(vs) = managed.fields.get(&id).cloned() else {
                continue;
            };
            let time = managed.times.get(&id).cloned();
            let version = vs.api_version.clone();
            let bucket = ManagerId::update(ANCIENT_CHANGES, &version, "");
            match first_of_version.get(&version) {
                Some(first) => {
                    if !managed.fields.contains_key(&bucket) {
                        if let Some(s) = managed.fields.remove(first) {
                            managed.times.remove(first);
                            managed.fields.insert(bucket.clone(), s);
                        }
                    }
                    let mut set = vs.set.clone();
                    if let Some(b) = managed.fields.get(&bucket) {
                        set.union_in_place(&b.set);
                    }
                    managed.fields.insert(
                        bucket.clone(),
                        VersionedSet {
                            set,
                            api_version: vs.api_version.clone(),
                            applied: vs.applied,
                        },
                    );
                    managed.fields.remove(&id);
                    managed.times.remove(&id);
                    length -= 1;
                    match time {
                        Some(t) => {
                            managed.times.insert(bucket, t);
                        }
                        None => {
                            managed.times.remove(&bucket);
                        }
                    }
                }
                None => {
                    first_of_version.insert(version, id);
                }
            }
        }
    }

    /// The field set of `obj` under the schema (what an applier of `obj` would own),
    /// metadata stripped as in managedFields.
    pub fn field_set(&self, obj: &Value) -> Result<FieldSet, String> {
        self.check(obj, true)?;
        Ok(self
            .typer()
            .field_set_of(&without_managed_fields(obj), self.root())
            .recursive_difference(&self.ignored)
            .difference(&self.strip))
    }
}

fn last_applied_of(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/annotations")?
        .get(LAST_APPLIED_CONFIG_ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn has_apply_entry(obj: &Value, manager: &str) -> bool {
    let Some(Value::Array(entries)) = managed_fields_of(obj) else {
        return false;
    };
    entries.iter().any(|e| {
        str_at(e, "/manager") == manager
            && str_at(e, "/operation") == "Apply"
            && str_at(e, "/subresource").is_empty()
    })
}

/// The last-applied annotation value for an applied configuration: the configuration
/// without the annotation, as Go encodes it (sorted keys, trailing newline).
fn build_last_applied(applied: &Value) -> String {
    let mut obj = applied.clone();
    if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
        ann.remove(LAST_APPLIED_CONFIG_ANNOTATION);
    }
    let mut s = go_json(&obj);
    s.push('\n');
    s
}

/// Sets the last-applied annotation, dropping it if the annotations would exceed kube's
/// size limit.
fn set_last_applied(obj: &mut Value, value: &str) {
    let Value::Object(o) = obj else { return };
    let meta = o
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    let ann = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(ann) = ann else { return };
    ann.insert(
        LAST_APPLIED_CONFIG_ANNOTATION.into(),
        Value::String(value.to_string()),
    );
    let total: usize = ann
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        ann.remove(LAST_APPLIED_CONFIG_ANNOTATION);
    }
}

/// Moves the fields of `csa_manager`'s `Update` entries into `ssa_manager`'s `Apply` entry
/// (converting the most recent `Update` entry if there is no `Apply` entry), as kubectl's
/// `csaupgrade.UpgradeManagedFields` does before a server-side apply. Returns whether
/// anything changed; entries that do not decode are left alone.
pub fn upgrade_client_side_apply(obj: &mut Value, csa_manager: &str, ssa_manager: &str) -> bool {
    let Some(Value::Array(entries)) = managed_fields_of(obj) else {
        return false;
    };
    let original = entries.clone();
    let mut entries = entries.clone();
    let is = |e: &Value, manager: &str, op: Operation| {
        str_at(e, "/manager") == manager
            && str_at(e, "/operation") == op.as_str()
            && str_at(e, "/subresource").is_empty()
    };
    let target = match entries
        .iter()
        .position(|e| is(e, ssa_manager, Operation::Apply))
    {
        Some(i) => i,
        None => {
            let Some(i) = entries
                .iter()
                .position(|e| is(e, csa_manager, Operation::Update))
            else {
                return false;
            };
            if let Value::Object(e) = &mut entries[i] {
                e.insert("operation".into(), "Apply".into());
                e.insert("manager".into(), Value::String(ssa_manager.to_string()));
            }
            i
        }
    };
    let target_version = str_at(&entries[target], "/apiVersion").to_string();
    let decode = |e: &Value| match e.get("fieldsV1") {
        None | Some(Value::Null) => Some(FieldSet::new()),
        Some(f) => FieldSet::from_fields_v1(f).ok(),
    };
    let Some(mut combined) = decode(&entries[target]) else {
        return false;
    };
    if let Some(csa) = entries.iter().find(|e| {
        is(e, csa_manager, Operation::Update) && str_at(e, "/apiVersion") == target_version
    }) {
        let Some(s) = decode(csa) else { return false };
        combined.union_in_place(&s);
    }
    if let Value::Object(e) = &mut entries[target] {
        e.insert("fieldsV1".into(), combined.to_fields_v1());
        e.insert("fieldsType".into(), "FieldsV1".into());
    }
    entries.retain(|e| !is(e, csa_manager, Operation::Update));
    if entries == original {
        return false;
    }
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        if entries.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(entries));
        }
    }
    true
}

/// Server-side apply of `applied` by `manager` onto `live` (`None` to create) for the
/// resource named by `applied`'s `apiVersion` and `kind`, main resource (see
/// [`FieldManager`] for subresources and reset fields).
pub fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    schema: &Schema,
    now: DateTime<Utc>,
) -> Result<Value, ApplyError> {
    let (api_version, kind) = (str_at(applied, "/apiVersion"), str_at(applied, "/kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(ApplyError::BadRequest(
            "the applied configuration must set apiVersion and kind".into(),
        ));
    }
    FieldManager::new(schema.clone(), api_version, kind).apply(live, applied, manager, force, now)
}

/// Records a non-apply write of `new` over `old` (`None` to create) by `manager`, through
/// `subresource` if any (see [`FieldManager::update`]).
pub fn update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    subresource: Option<&str>,
    schema: &Schema,
    now: DateTime<Utc>,
) -> Value {
    let mut fm = FieldManager::new(
        schema.clone(),
        str_at(new, "/apiVersion"),
        str_at(new, "/kind"),
    );
    if let Some(s) = subresource {
        fm = fm.with_subresource(s);
    }
    fm.update(old, new, manager, now)
}
