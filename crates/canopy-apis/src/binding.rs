//! APIBindings (kcp's `apibinding` admission and controller, one shard):
//!
//! - the strategy ([`BindingStrategy`]): v1alpha1 and v1alpha2 served, v1alpha2 stored;
//!   `spec.reference` immutable; on a user's create, the bind check ([`check_bind`]:
//!   verb `bind` on the export, in the export's logical cluster, or kcp's 403), the
//!   label `internal.apis.kcp.io/export` and the finalizer;
//! - the binding controller ([`BindingControllers`]), keyed by logical cluster so that
//!   "first come wins" is decided in one place: bindings are taken Bound first, then by
//!   age; each gets its export's resources bound (`status.boundResources`, phase
//!   `Bound`, kcp's conditions) unless a local CRD, a built-in or an older binding already
//!   serves one of them (`NamingConflicts`, re-checked whenever a CRD or binding of the
//!   cluster changes or goes away, kcp #1822); a binding being deleted loses its
//!   instances, then its finalizer;
//! - the bound APIs ([`BoundApis`], the generic server's [`ApiSource`]): every resource in
//!   a binding's `boundResources` is served in its logical cluster from the schema, as a
//!   CRD would be, with objects stored under `<group>/<plural>:<identityHash>`;
//! - the CRD check ([`NoOverlappingCrds`]): a local CRD for a bound resource is refused
//!   with kcp's message;
//! - the status guard ([`BindingStatusGuard`]): only the system writes what a binding
//!   serves (`status.boundResources`, `status.apiExportClusterName`).
//!
//! Exports are found on this shard only ([`find_export`]); the cache server comes later.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use canopy_apis_api::{self as api, Condition};
use canopy_apiserver::admission::{Operation, Request, Validating};
use canopy_apiserver::controllers::{Event, ReconcileError, Starter};
use canopy_apiserver::plugin::{ApiSource, Background, SourcedCrd};
use canopy_apiserver::registry::table::{age_column, Column};
use canopy_apiserver::registry::{AdmissionContext, Strategy};
use canopy_apiserver::{rest, ApiServer};
use canopy_core::{meta, ApiError, Cause, Subject};
use canopy_runtime::{Action, Controller};
use canopy_storage::{EventType, ObjectKey, StoredObject};
use serde_json::{json, Value};

use crate::{EXPORTS, SCHEMAS};

/// Storage key of APIBindings (both versions share it; stored as v1alpha2).
pub const BINDINGS: &str = "apis.kcp.io/apibindings";
const CRDS: &str = "apiextensions.k8s.io/customresourcedefinitions";
/// The finalizer kcp's admission puts on every binding.
pub const FINALIZER: &str = "apis.kcp.io/apibinding-finalizer";
/// The label naming a binding's export: base62(sha224(`<exportCluster>:<exportName>`)).
pub const EXPORT_LABEL: &str = "internal.apis.kcp.io/export";

pub const APIEXPORT_VALID: &str = "APIExportValid";
pub const INITIAL_BINDING_COMPLETED: &str = "InitialBindingCompleted";
pub const BINDING_UP_TO_DATE: &str = "BindingUpToDate";
pub const READY: &str = "Ready";
pub const DELETE_SUCCESS: &str = "BindingResourceDeleteSuccess";

/// At most this many objects of a bound resource are deleted per unbind reconcile (the
/// rest on the next), so one reconcile's work is bounded.
const UNBIND_BATCH: usize = 500;

// --- names --------------------------------------------------------------------------------

/// Go's `big.Int.Text(62)` of a big-endian number (kcp's `toBase62`).
fn base62(bytes: &[u8]) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut n: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    let mut out = Vec::new();
    while !n.is_empty() {
        let mut rem: u32 = 0;
        let mut next = Vec::with_capacity(n.len());
        for b in &n {
            let cur = rem * 256 + u32::from(*b);
            let q = cur / 62;
            rem = cur % 62;
            if !(next.is_empty() && q == 0) {
                next.push(q as u8);
            }
        }
        out.push(DIGITS.get(rem as usize).copied().unwrap_or(b'0'));
        n = next;
    }
    if out.is_empty() {
        out.push(b'0');
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The value of [`EXPORT_LABEL`] for export `name` in logical cluster `cluster`.
pub fn export_label(cluster: &str, name: &str) -> String {
    use sha2::Digest;
    base62(&sha2::Sha224::digest(
        format!("{cluster}:{name}").as_bytes(),
    ))
}

fn s<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or("")
}

/// The export a binding refers to: (path, name); an empty path is the binding's own
/// workspace.
fn reference(b: &Value) -> (&str, &str) {
    (
        s(b, "/spec/reference/export/path"),
        s(b, "/spec/reference/export/name"),
    )
}

/// Finds export `name` at workspace `path` (empty: logical cluster `own`), on this shard:
/// its logical cluster and object. The one place exports are looked up, so that the
/// cache server's copies can be added here.
pub fn find_export(
    api: &ApiServer,
    own: &str,
    path: &str,
    name: &str,
) -> Option<(String, Arc<StoredObject>)> {
    let cluster = if path.is_empty() {
        own.to_string()
    } else {
        api.resolve_cluster(path)
    };
    let o = api
        .store()
        .get(&ObjectKey::new(EXPORTS, &cluster, "", name))?;
    Some((cluster, o))
}

/// The path kcp's messages name an export by: `<path>:<name>` (the binding's own
/// workspace path when the reference has none).
fn export_display(api: &ApiServer, own: &str, path: &str, name: &str) -> String {
    let path = if path.is_empty() {
        crate::identity::path_of(api, own)
    } else {
        path.to_string()
    };
    format!("{path}:{name}")
}

/// kcp's bind check: `user` needs verb `bind` on `apis.kcp.io` `apiexports` named `name`
/// in the export's logical cluster. Any failure, a missing export included, is the same
/// 403, so a binding reveals nothing about exports its creator may not bind. Returns the
/// export's logical cluster.
pub fn check_bind(
    api: &ApiServer,
    user: &canopy_auth::UserInfo,
    own: &str,
    binding_name: &str,
    path: &str,
    name: &str,
) -> Result<String, ApiError> {
    let refuse = || {
        ApiError::admission_forbidden(
            Subject {
                group: api::GROUP,
                resource: "apibindings",
                name: binding_name,
            },
            &format!(
                "unable to create APIBinding: no permission to bind to export {}",
                export_display(api, own, path, name)
            ),
        )
    };
    if name.is_empty() {
        return Err(refuse());
    }
    let Some((cluster, _)) = find_export(api, own, path, name) else {
        return Err(refuse());
    };
    let attrs = canopy_auth::rbac::Attributes {
        user,
        verb: "bind",
        is_resource_request: true,
        namespace: "",
        api_group: api::GROUP,
        resource: "apiexports",
        subresource: "",
        name,
        path: "",
    };
    match canopy_apiserver::authz::allowed(api.store(), &cluster, &attrs) {
        Some(_) => Ok(cluster),
        None => Err(refuse()),
    }
}

// --- strategy -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingVersion {
    V1alpha1,
    V1alpha2,
}

/// APIBinding, as served in `version` (stored as v1alpha2).
pub struct BindingStrategy {
    pub version: BindingVersion,
    pub max_permission_claims: usize,
}

/// A v1alpha1 binding as v1alpha2: claims' `all: true` is `selector.matchAll`, and a
/// v1alpha1 claim allows every verb.
fn to_v1alpha2(mut b: Value) -> Value {
    if let Some(m) = b.as_object_mut() {
        m.insert("apiVersion".into(), json!(api::V1ALPHA2));
    }
    if let Some(claims) = b
        .pointer_mut("/spec/permissionClaims")
        .and_then(Value::as_array_mut)
    {
        for c in claims.iter_mut().filter_map(Value::as_object_mut) {
            let all = c.remove("all").and_then(|a| a.as_bool()).unwrap_or(false);
            c.remove("resourceSelector");
            if all {
                c.insert("selector".into(), json!({"matchAll": true}));
            }
            c.entry("verbs").or_insert_with(|| json!(["*"]));
        }
    }
    b
}

/// A stored (v1alpha2) binding as v1alpha1.
fn to_v1alpha1(b: &Value) -> Value {
    let mut b = b.clone();
    if let Some(m) = b.as_object_mut() {
        m.insert("apiVersion".into(), json!(api::V1ALPHA1));
    }
    if let Some(claims) = b
        .pointer_mut("/spec/permissionClaims")
        .and_then(Value::as_array_mut)
    {
        for c in claims.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("verbs");
            let all = c
                .remove("selector")
                .is_some_and(|sel| sel.get("matchAll") == Some(&json!(true)));
            if all {
                c.insert("all".into(), json!(true));
            }
        }
    }
    b
}

impl Strategy for BindingStrategy {
    fn canonicalize(&self, obj: Value) -> Result<(Value, Vec<String>), ApiError> {
        let (version, kind) = match self.version {
            BindingVersion::V1alpha1 => ("v1alpha1", "APIBinding"),
            BindingVersion::V1alpha2 => ("v1alpha2", "APIBinding"),
        };
        let bad = |what: &str| {
            ApiError::bad_request(format!(
                "{kind} in version \"{version}\" cannot be handled as a {kind}: {what}"
            ))
        };
        for (p, what) in [
            ("/spec", "spec must be an object"),
            ("/spec/reference", "spec.reference must be an object"),
            (
                "/spec/reference/export",
                "spec.reference.export must be an object",
            ),
        ] {
            if obj
                .pointer(p)
                .is_some_and(|v| !v.is_object() && !v.is_null())
            {
                return Err(bad(what));
            }
        }
        for p in ["/spec/reference/export/path", "/spec/reference/export/name"] {
            if obj
                .pointer(p)
                .is_some_and(|v| !v.is_string() && !v.is_null())
            {
                return Err(bad(&format!(
                    "{} must be a string",
                    &p[1..].replace('/', ".")
                )));
            }
        }
        if obj
            .pointer("/spec/permissionClaims")
            .is_some_and(|v| !v.is_array() && !v.is_null())
        {
            return Err(bad("spec.permissionClaims must be an array"));
        }
        Ok((obj, Vec::new()))
    }

    /// kcp's `apibinding` admission: the bind check, then the export label and the
    /// finalizer.
    fn admit(&self, obj: &mut Value, ctx: &AdmissionContext<'_>) -> Result<(), ApiError> {
        let (path, name) = reference(obj);
        let (path, name) = (path.to_string(), name.to_string());
        let cluster = check_bind(
            ctx.api,
            ctx.user,
            ctx.cluster,
            meta::name(obj),
            &path,
            &name,
        )?;
        let labels = meta::metadata_mut(obj)
            .entry("labels")
            .or_insert_with(|| json!({}));
        if let Some(l) = labels.as_object_mut() {
            l.insert(EXPORT_LABEL.into(), json!(export_label(&cluster, &name)));
        }
        Ok(())
    }

    fn to_storage(&self, obj: Value) -> Value {
        match self.version {
            BindingVersion::V1alpha2 => obj,
            BindingVersion::V1alpha1 => to_v1alpha2(obj),
        }
    }

    fn from_storage(&self, obj: &Value) -> Option<Value> {
        match self.version {
            BindingVersion::V1alpha2 => None,
            BindingVersion::V1alpha1 => Some(to_v1alpha1(obj)),
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) -> Result<(), ApiError> {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        let fins = meta::metadata_mut(obj)
            .entry("finalizers")
            .or_insert_with(|| json!([]));
        if let Some(a) = fins.as_array_mut() {
            if !a.iter().any(|f| f == FINALIZER) {
                a.push(json!(FINALIZER));
            }
        }
        Ok(())
    }

    fn validate(&self, obj: &Value, causes: &mut Vec<Cause>) {
        let (_, name) = reference(obj);
        if name.is_empty() {
            causes.push(Cause::required("spec.reference.export.name", ""));
        }
        let claims = obj
            .pointer("/spec/permissionClaims")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        if claims > self.max_permission_claims {
            causes.push(crate::registry::too_many(
                "spec.permissionClaims",
                claims,
                self.max_permission_claims,
            ));
        }
    }

    fn validate_update(&self, new: &Value, old: &Value, causes: &mut Vec<Cause>) {
        if new.pointer("/spec/reference") != old.pointer("/spec/reference") {
            causes.push(Cause::invalid(
                "spec.reference",
                new.pointer("/spec/reference").unwrap_or(&Value::Null),
                "APIExport reference must not be changed",
            ));
        }
    }

    fn columns(&self) -> Vec<Column> {
        vec![age_column()]
    }
}

// --- bound APIs -----------------------------------------------------------------------------

/// The bound resources of the logical clusters of this shard, served as CRDs would be.
pub(crate) struct BoundApis;

/// The bindings of `cluster` whose resources are served: not being deleted (a binding
/// being deleted stops serving, so nothing new is created while its instances go).
fn serving(api: &ApiServer, cluster: &str) -> Vec<Arc<StoredObject>> {
    api.store()
        .list_all(BINDINGS, Some(cluster), None)
        .into_iter()
        .filter(|b| !meta::is_deleting(&b.value) && !bound_resources(&b.value).is_empty())
        .collect()
}

fn bound_resources(b: &Value) -> &[Value] {
    b.pointer("/status/boundResources")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The CRD-shaped definition of `schema` (an APIResourceSchema). A schema version's
/// `schema` is the OpenAPI v3 schema itself (a CRD's `schema.openAPIV3Schema`).
fn crd_of(schema: &Value) -> Value {
    let spec = schema.get("spec").cloned().unwrap_or(json!({}));
    let versions: Vec<Value> = spec
        .get("versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|v| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                let s = m.remove("schema").unwrap_or(json!({"type": "object"}));
                m.insert("schema".into(), json!({ "openAPIV3Schema": s }));
            }
            v
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", s(&spec, "/names/plural"), s(&spec, "/group")),
            // the schema's spec is immutable: its uid keys the compiled schema
            "uid": s(schema, "/metadata/uid"),
            "generation": 1,
        },
        "spec": {
            "group": spec.get("group").cloned().unwrap_or(json!("")),
            "names": spec.get("names").cloned().unwrap_or(json!({})),
            "scope": spec.get("scope").cloned().unwrap_or(json!("Namespaced")),
            "versions": versions,
        },
    })
}

impl ApiSource for BoundApis {
    fn fingerprint(&self, api: &ApiServer, cluster: &str) -> u64 {
        use std::hash::{Hash, Hasher};
        let bindings = serving(api, cluster);
        if bindings.is_empty() {
            return 0;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for b in &bindings {
            b.key.name.hash(&mut h);
            b.rv.hash(&mut h);
        }
        h.finish() | 1
    }

    fn crds(&self, api: &ApiServer, cluster: &str) -> Vec<SourcedCrd> {
        let mut out = Vec::new();
        for b in serving(api, cluster) {
            let export_cluster = s(&b.value, "/status/apiExportClusterName");
            for br in bound_resources(&b.value) {
                let hash = s(br, "/schema/identityHash");
                let key = ObjectKey::new(SCHEMAS, export_cluster, "", s(br, "/schema/name"));
                let Some(schema) = api.store().get(&key) else {
                    continue;
                };
                // a schema replaced under the same name is not the one bound
                if hash.is_empty() || s(&schema.value, "/metadata/uid") != s(br, "/schema/UID") {
                    continue;
                }
                out.push(SourcedCrd {
                    crd: Arc::new(crd_of(&schema.value)),
                    storage_suffix: hash.to_string(),
                });
            }
        }
        out
    }
}

/// Where the objects of a bound resource are stored.
fn storage_of(group: &str, resource: &str, identity_hash: &str) -> String {
    format!("{group}/{resource}:{identity_hash}")
}

// --- CRD admission --------------------------------------------------------------------------

/// kcp's `crdnooverlappinggvr`: a CRD may not define a resource a binding of its logical
/// cluster has bound.
pub(crate) struct NoOverlappingCrds;

impl Validating for NoOverlappingCrds {
    fn validate(&self, req: &Request<'_>) -> Result<(), ApiError> {
        if !req.is("apiextensions.k8s.io", "customresourcedefinitions") {
            return Ok(());
        }
        let Operation::Create(obj) = req.op else {
            return Ok(());
        };
        let (group, plural) = (s(obj, "/spec/group"), s(obj, "/spec/names/plural"));
        for b in req.store.list_all(BINDINGS, Some(req.cluster), None) {
            if bound_resources(&b.value)
                .iter()
                .any(|br| s(br, "/group") == group && s(br, "/resource") == plural)
            {
                return Err(ApiError::admission_forbidden(
                    req.subject(),
                    &format!(
                        "cannot create because resource is bound by APIBinding {:?}",
                        b.key.name
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// What a binding's status says is served, and from where, is the binding controller's
/// to write: a user's write (a workspace admin may hold `apibindings/status`) may not
/// change `status.boundResources` or `status.apiExportClusterName`, else a tenant could
/// serve itself another export's resources (its identity, its schema) that it was never
/// allowed to bind.
pub(crate) struct BindingStatusGuard;

impl Validating for BindingStatusGuard {
    fn validate(&self, req: &Request<'_>) -> Result<(), ApiError> {
        if !req.is(api::GROUP, "apibindings") {
            return Ok(());
        }
        let Operation::Update { new, old } = req.op else {
            return Ok(());
        };
        for field in ["boundResources", "apiExportClusterName"] {
            let ptr = format!("/status/{field}");
            if new.pointer(&ptr) != old.pointer(&ptr) {
                return Err(ApiError::admission_forbidden(
                    req.subject(),
                    &format!("status.{field} is set by the system only"),
                ));
            }
        }
        Ok(())
    }
}

// --- controller -----------------------------------------------------------------------------

pub(crate) struct BindingControllers;

impl Background for BindingControllers {
    fn start(&self, api: &ApiServer, run: &mut Starter) {
        let a = api.clone();
        let c = Controller::new("apibinding", run.metrics(), move |cluster: String| {
            let api = a.clone();
            async move { reconcile(&api, &cluster).await }
        })
        .concurrency(4)
        .start();
        let queue = c.queue().clone();
        let (fa, ra) = (api.clone(), api.clone());
        run.feed(move |f| {
            f.watches(&queue, move |ev: &Event| cluster_of(&fa, ev))
                .resync(&queue, move || clusters_with_bindings(&ra))
        });
        run.keep(c);
    }
}

fn clusters_with_bindings(api: &ApiServer) -> Vec<String> {
    let mut out: Vec<String> = api
        .store()
        .list_all(BINDINGS, None, None)
        .iter()
        .map(|b| b.key.cluster.to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The logical cluster an event concerns: a binding's; a CRD's, or a bound object's
/// deletion, where bindings are.
fn cluster_of(api: &ApiServer, ev: &Event) -> Option<String> {
    let key = &ev.object.key;
    let has_bindings = || {
        !api.store()
            .list_all(BINDINGS, Some(&key.cluster), None)
            .is_empty()
    };
    match &*key.resource {
        BINDINGS => Some(key.cluster.to_string()),
        CRDS if has_bindings() => Some(key.cluster.to_string()),
        r if ev.kind == EventType::Deleted && r.contains(':') && has_bindings() => {
            Some(key.cluster.to_string())
        }
        _ => None,
    }
}

fn condition(type_: &str, ok: Result<(), (&str, String)>) -> Condition {
    match ok {
        Ok(()) => Condition {
            type_: type_.into(),
            status: "True".into(),
            ..Default::default()
        },
        Err((reason, message)) => Condition {
            type_: type_.into(),
            status: "False".into(),
            severity: if reason == "WaitingForEstablished" {
                "Info".into()
            } else {
                "Error".into()
            },
            reason: reason.into(),
            message,
            ..Default::default()
        },
    }
}

/// Who serves a group/resource in a logical cluster, for conflict messages.
#[derive(Clone)]
struct Holder {
    /// kcp's words for the rival: `CustomResourceDefinition "x"` or
    /// `APIBinding "x" bound to APIExport p:e`.
    who: String,
    /// The identity hash of a binding's export (a CRD has none).
    identity: String,
    kind: String,
    singular: String,
    /// A set: short names are bounded only by the object's size, and every candidate's
    /// are looked up here.
    short: HashSet<String>,
}

type Taken = HashMap<(String, String), Holder>;

fn names_of(names: &Value) -> (String, String, Vec<String>) {
    (
        s(names, "/kind").to_string(),
        s(names, "/singular").to_string(),
        names
            .get("shortNames")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    )
}

/// The first conflict of resource `group`/`plural` (with `names`) against what is
/// taken: kcp's "naming conflict with ..." message.
fn conflict(
    taken: &Taken,
    group: &str,
    plural: &str,
    names: &Value,
    identity: &str,
) -> Option<String> {
    let (kind, singular, short) = names_of(names);
    for ((g, p), h) in taken {
        if g != group {
            continue;
        }
        if p == plural {
            if !identity.is_empty() && h.identity == identity {
                // the same export's resource, bound twice: shared, as kcp does
                continue;
            }
            return Some(format!(
                "naming conflict with {}: spec.names.plural={plural} is forbidden",
                h.who
            ));
        }
        if !kind.is_empty() && h.kind == kind {
            return Some(format!(
                "naming conflict with {}: spec.names.kind={kind} is forbidden",
                h.who
            ));
        }
        if !singular.is_empty() && h.singular == singular {
            return Some(format!(
                "naming conflict with {}: spec.names.singular={singular} is forbidden",
                h.who
            ));
        }
        if let Some(x) = short.iter().find(|x| h.short.contains(x.as_str())) {
            return Some(format!(
                "naming conflict with {}: spec.names.shortNames={x} is forbidden",
                h.who
            ));
        }
    }
    None
}

/// Reconciles every binding of `cluster`, Bound ones first, then oldest first: "first
/// come wins" in one place.
async fn reconcile(api: &ApiServer, cluster: &str) -> Result<Action, ReconcileError> {
    let store = api.store();
    let mut bindings = store.list_all(BINDINGS, Some(cluster), None);
    bindings.sort_by_key(|b| {
        (
            s(&b.value, "/status/phase") != "Bound",
            s(&b.value, "/metadata/creationTimestamp").to_string(),
            b.key.name.clone(),
        )
    });
    let mut taken: Taken = HashMap::new();
    for c in store.list_all(CRDS, Some(cluster), None) {
        let (kind, singular, short) =
            names_of(c.value.pointer("/spec/names").unwrap_or(&Value::Null));
        taken.insert(
            (
                s(&c.value, "/spec/group").to_string(),
                s(&c.value, "/spec/names/plural").to_string(),
            ),
            Holder {
                who: format!("CustomResourceDefinition {:?}", c.key.name),
                identity: String::new(),
                kind,
                singular,
                short: short.into_iter().collect(),
            },
        );
    }
    let mut again: Option<Duration> = None;
    let mut first_err = None;
    for b in bindings {
        let next = if meta::is_deleting(&b.value) {
            unbind(api, &b).await
        } else {
            bind(api, &b, &mut taken).await
        };
        match next {
            Ok(Some(d)) => again = Some(again.map_or(d, |a| a.min(d))),
            Ok(None) => {}
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(again.map_or_else(Action::await_change, Action::requeue))
}

/// Deletes the instances of a binding being deleted, then its finalizer.
async fn unbind(api: &ApiServer, b: &StoredObject) -> Result<Option<Duration>, ReconcileError> {
    if !meta::finalizers(&b.value).iter().any(|f| f == FINALIZER) {
        return Ok(None);
    }
    let mut remain = 0usize;
    for br in bound_resources(&b.value) {
        let res = storage_of(
            s(br, "/group"),
            s(br, "/resource"),
            s(br, "/schema/identityHash"),
        );
        let objs = api.store().list_all(&res, Some(&b.key.cluster), None);
        remain += objs.len();
        for o in objs
            .iter()
            .filter(|o| !meta::is_deleting(&o.value))
            .take(UNBIND_BATCH)
        {
            rest::delete_system(api, &o.key, "Background").await?;
        }
    }
    if remain > 0 {
        let now = meta::now();
        rest::update_system(api, &b.key, |cur| {
            let mut new = cur.clone();
            let changed = set_conditions(
                &mut new,
                &[condition(
                    DELETE_SUCCESS,
                    Err((
                        "SomeResourcesRemain",
                        format!("some resources remain: {remain}"),
                    )),
                )],
                &now,
            );
            changed.then_some(new)
        })
        .await?;
        return Ok(Some(Duration::from_secs(1)));
    }
    rest::update_system(api, &b.key, |cur| {
        let mut new = cur.clone();
        let fins: Vec<Value> = meta::finalizers(cur)
            .into_iter()
            .filter(|f| f != FINALIZER)
            .map(Value::String)
            .collect();
        meta::metadata_mut(&mut new).insert("finalizers".into(), json!(fins));
        Some(new)
    })
    .await?;
    Ok(None)
}

/// Sets `conds` on a binding value; whether anything changed.
fn set_conditions(b: &mut Value, conds: &[Condition], now: &str) -> bool {
    let mut list: Vec<Condition> = b
        .pointer("/status/conditions")
        .cloned()
        .and_then(|c| serde_json::from_value(c).ok())
        .unwrap_or_default();
    let before = list.clone();
    for c in conds {
        api::set_condition(&mut list, c.clone(), now);
    }
    if list == before {
        return false;
    }
    let status = meta::ensure_object(
        meta::ensure_object(b)
            .entry("status")
            .or_insert_with(|| json!({})),
    );
    status.insert(
        "conditions".into(),
        serde_json::to_value(list).unwrap_or(json!([])),
    );
    true
}

/// What binding one binding came to.
struct Outcome {
    export_valid: Result<(), (&'static str, String)>,
    /// `Ok` with the bound resources, or why not (reason, message).
    bound: Option<Result<Vec<Value>, (&'static str, String)>>,
    export_cluster: Option<String>,
}

/// Binds one binding: its export, its schemas, the conflicts; writes its status.
async fn bind(
    api: &ApiServer,
    b: &StoredObject,
    taken: &mut Taken,
) -> Result<Option<Duration>, ReconcileError> {
    let cluster = &*b.key.cluster;
    let (path, name) = reference(&b.value);
    let display = export_display(api, cluster, path, name);
    let mut retry = None;
    let outcome = match find_export(api, cluster, path, name) {
        None => {
            retry = Some(Duration::from_secs(5));
            Outcome {
                export_valid: Err((
                    "APIExportNotFound",
                    format!("APIExport {display} not found"),
                )),
                bound: None,
                export_cluster: None,
            }
        }
        Some((export_cluster, export)) => {
            let hash = s(&export.value, "/status/identityHash").to_string();
            if hash.is_empty() {
                retry = Some(Duration::from_secs(1));
                Outcome {
                    export_valid: Err((
                        "MissingIdentityHash",
                        format!("APIExport {display} is missing status.identityHash"),
                    )),
                    bound: None,
                    export_cluster: Some(export_cluster),
                }
            } else {
                let bound = bind_resources(
                    api,
                    b,
                    &export_cluster,
                    &export.value,
                    &hash,
                    &display,
                    taken,
                );
                if bound.is_err() {
                    retry = Some(Duration::from_secs(5));
                }
                Outcome {
                    export_valid: Ok(()),
                    bound: Some(bound),
                    export_cluster: Some(export_cluster),
                }
            }
        }
    };
    let now = meta::now();
    rest::update_system(api, &b.key, |cur| {
        let mut new = cur.clone();
        let phase = s(cur, "/status/phase").to_string();
        let initial_done = cur
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == INITIAL_BINDING_COMPLETED && c["status"] == "True")
            });
        let mut conds = vec![condition(APIEXPORT_VALID, outcome.export_valid.clone())];
        let st = meta::ensure_object(
            meta::ensure_object(&mut new)
                .entry("status")
                .or_insert_with(|| json!({})),
        );
        if let Some(c) = &outcome.export_cluster {
            st.insert("apiExportClusterName".into(), json!(c));
        }
        match &outcome.bound {
            Some(Ok(resources)) => {
                st.insert("boundResources".into(), json!(resources));
                st.insert("phase".into(), json!("Bound"));
                conds.push(condition(INITIAL_BINDING_COMPLETED, Ok(())));
                conds.push(condition(BINDING_UP_TO_DATE, Ok(())));
                conds.push(condition(READY, Ok(())));
            }
            Some(Err((reason, msg))) => {
                if phase.is_empty() {
                    st.insert("phase".into(), json!("Binding"));
                }
                if !initial_done {
                    conds.push(condition(
                        INITIAL_BINDING_COMPLETED,
                        Err((reason, msg.clone())),
                    ));
                    conds.push(condition(READY, Err((reason, msg.clone()))));
                }
                conds.push(condition(BINDING_UP_TO_DATE, Err((reason, msg.clone()))));
            }
            None => {
                if phase.is_empty() {
                    st.insert("phase".into(), json!("Binding"));
                }
            }
        }
        set_conditions(&mut new, &conds, &now);
        (new != *cur).then_some(new)
    })
    .await?;
    Ok(retry)
}

/// The bound resources of binding `b` of `export`, claiming each in `taken`; or the
/// first reason it cannot be bound (schema missing or invalid, naming conflict). A
/// binding that stays unbound claims nothing.
fn bind_resources(
    api: &ApiServer,
    b: &StoredObject,
    export_cluster: &str,
    export: &Value,
    hash: &str,
    display: &str,
    taken: &mut Taken,
) -> Result<Vec<Value>, (&'static str, String)> {
    let e: api::APIExport = api::from_value(export).map_err(|err| {
        (
            "InternalError",
            format!("APIExport {display} cannot be read: {err}"),
        )
    })?;
    let previous = bound_resources(&b.value);
    let mut out = Vec::new();
    let mut claims: Vec<((String, String), Holder)> = Vec::new();
    for r in &e.spec.resources {
        let key = ObjectKey::new(SCHEMAS, export_cluster, "", &r.schema);
        let Some(schema) = api.store().get(&key) else {
            return Err((
                "APIResourceSchemaInvalid",
                format!(
                    "APIResourceSchema {}|{} not found",
                    export_cluster, r.schema
                ),
            ));
        };
        let sv = &schema.value;
        let group = s(sv, "/spec/group").to_string();
        let plural = s(sv, "/spec/names/plural").to_string();
        if group != r.group || plural != r.name {
            return Err((
                "APIResourceSchemaInvalid",
                format!(
                    "APIResourceSchema {}|{} does not define resource {}.{}",
                    export_cluster, r.schema, r.name, r.group
                ),
            ));
        }
        let names = sv.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let builtin = api
            .registry()
            .all()
            .iter()
            .any(|x| x.desc.group == group && x.desc.plural == plural);
        if builtin {
            return Err((
                "NamingConflicts",
                format!(
                    "naming conflict with a built-in API: spec.names.plural={plural} is forbidden"
                ),
            ));
        }
        let mine = |h: &Holder| h.who.starts_with(&format!("APIBinding {:?} ", b.key.name));
        let others: Taken = taken
            .iter()
            .filter(|(_, h)| !mine(h))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(msg) = conflict(&others, &group, &plural, &names, hash) {
            return Err(("NamingConflicts", msg));
        }
        let storage = sv
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .and_then(|vs| vs.iter().find(|v| v["storage"] == true))
            .map(|v| s(v, "/name").to_string())
            .unwrap_or_default();
        let mut storage_versions: Vec<Value> = previous
            .iter()
            .find(|p| s(p, "/group") == group && s(p, "/resource") == plural)
            .and_then(|p| p.get("storageVersions").and_then(Value::as_array).cloned())
            .unwrap_or_default();
        if !storage.is_empty() && !storage_versions.iter().any(|v| v == storage.as_str()) {
            storage_versions.push(json!(storage));
        }
        out.push(json!({
            "group": group,
            "resource": plural,
            "schema": {"name": r.schema, "UID": s(sv, "/metadata/uid"), "identityHash": hash},
            "storageVersions": storage_versions,
        }));
        let (kind, singular, short) = names_of(&names);
        claims.push((
            (group, plural),
            Holder {
                who: format!("APIBinding {:?} bound to APIExport {display}", b.key.name),
                identity: hash.to_string(),
                kind,
                singular,
                short: short.into_iter().collect(),
            },
        ));
    }
    taken.extend(claims);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base62_is_go_big_int_text_62() {
        assert_eq!(base62(&[0]), "0");
        assert_eq!(base62(&[61]), "Z");
        assert_eq!(base62(&[62]), "10");
        assert_eq!(base62(&[1, 0]), "48"); // 256 = 4*62 + 8
                                           // Python: base62 of int.from_bytes(sha224(b"root:cowboys"), "big")
        assert_eq!(
            export_label("root", "cowboys"),
            "63byciHIbQQYlPkixQKr7vwnf06IcmpEZDwEPH"
        );
    }

    #[test]
    fn v1alpha1_claims_convert_both_ways() {
        let v1 = json!({"apiVersion": api::V1ALPHA1, "spec": {"permissionClaims": [
            {"group": "", "resource": "configmaps", "all": true, "state": "Accepted"}]}});
        let v2 = to_v1alpha2(v1.clone());
        assert_eq!(v2["apiVersion"], api::V1ALPHA2);
        assert_eq!(
            v2["spec"]["permissionClaims"][0]["selector"],
            json!({"matchAll": true})
        );
        assert_eq!(v2["spec"]["permissionClaims"][0]["verbs"], json!(["*"]));
        assert_eq!(to_v1alpha1(&v2), v1);
    }

    #[test]
    fn conflicts_name_the_rival_as_kcp_does() {
        let mut taken = Taken::new();
        taken.insert(
            ("wildwest.dev".into(), "cowboys".into()),
            Holder {
                who: "CustomResourceDefinition \"cowboys.wildwest.dev\"".into(),
                identity: String::new(),
                kind: "Cowboy".into(),
                singular: "cowboy".into(),
                short: HashSet::new(),
            },
        );
        let names = json!({"plural": "cowboys", "kind": "Cowboy"});
        assert_eq!(
            conflict(&taken, "wildwest.dev", "cowboys", &names, "h").as_deref(),
            Some("naming conflict with CustomResourceDefinition \"cowboys.wildwest.dev\": spec.names.plural=cowboys is forbidden")
        );
        assert!(conflict(&taken, "other.dev", "cowboys", &names, "h").is_none());
        let kind_only = json!({"plural": "cowpokes", "kind": "Cowboy"});
        assert!(
            conflict(&taken, "wildwest.dev", "cowpokes", &kind_only, "h")
                .is_some_and(|m| m.contains("spec.names.kind=Cowboy"))
        );
    }
}
