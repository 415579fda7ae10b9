//! OpenAPI documents of the resources a logical cluster serves, shaped as kube-apiserver
//! serves them, so that unmodified clients work against Canopy:
//!
//! - `/openapi/v3` — an index of group-versions, each pointing at
//!   `/openapi/v3/<api|apis/group>/<version>?hash=<H>`;
//! - the per-group-version OpenAPI 3.0 documents: paths with kube's operation ids, tags,
//!   `x-kubernetes-action` and `x-kubernetes-group-version-kind`, PATCH request bodies whose
//!   media types tell kubectl whether strategic merge patch is accepted, and
//!   `components.schemas` whose kinds carry `x-kubernetes-group-version-kind` and whose
//!   fields carry descriptions (`kubectl explain`) and kube's list/map/patch extensions;
//! - `/openapi/v2` — one Swagger 2.0 JSON document of everything (terraform's
//!   `kubernetes_manifest` and helm read its `definitions`), also as gnostic protobuf for
//!   kubectl ≤ 1.28.
//!
//! Schemas of built-in kinds are generated from the `k8s-openapi` crate (its schemars
//! support carries kube's definition names, types and descriptions); the struct-tag
//! extensions it lacks are added from a table. Custom resources bring their CRD version's
//! `openAPIV3Schema`, completed with `apiVersion`, `kind` and `metadata` as kube does.
//!
//! Documents are serialized and hashed once: the v3 documents when built (per-group-version
//! documents are shared, through a cache, between builders cloned from one another, so a
//! logical cluster that adds a custom resource only renders that group-version anew), the
//! v2 document on first use.

mod builtins;
mod paths;
mod v2proto;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

pub use builtins::builtin_resources;
pub use paths::{APPLY_PATCH, JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH};

use builtins::META;

/// One served resource, as discovery knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    /// "status", "scale", "finalize".
    pub subresources: Vec<String>,
    /// Built-ins accept strategic merge patch; custom resources do not.
    pub strategic_merge_patch: bool,
}

impl ResourceInfo {
    /// The key of its group-version document: `api/v1` or `apis/<group>/<version>`.
    pub fn gv_key(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }

    fn gvr(&self) -> String {
        format!("{}/{}/{}", self.group, self.version, self.plural)
    }

    fn check(&self) -> Result<(), OpenApiError> {
        let bad = |what: &str| OpenApiError::InvalidResource(format!("{what} ({})", self.gvr()));
        if self.version.is_empty() || self.kind.is_empty() || self.plural.is_empty() {
            return Err(bad("version, kind and plural must not be empty"));
        }
        let plain = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        };
        if !plain(&self.group) || !plain(&self.version) || !plain(&self.plural) {
            return Err(bad("group, version and plural must be DNS-like names"));
        }
        if !self.kind.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(bad("kind must be alphanumeric"));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("invalid schema for {kind}: {reason}")]
    InvalidSchema { kind: String, reason: String },
    #[error("no built-in schema for {0}")]
    UnknownKind(String),
    #[error("invalid resource: {0}")]
    InvalidResource(String),
    #[error("definition {definition} of {resource} is already used by {owner}")]
    Conflict {
        definition: String,
        resource: String,
        owner: String,
    },
}

/// A resource added to a builder. Immutable; its `id` is unique in the process, so a
/// group-version's document is determined by the ids of its entries (see [`DocCache`]).
struct Entry {
    id: u64,
    info: ResourceInfo,
    /// Definition name of its kind.
    def: String,
    /// Built-ins are served as protobuf too.
    builtin: bool,
    /// The kind's schema as Swagger 2.0 wants it, where it differs (custom resources:
    /// value validations and nullable stripped, as kube publishes CRDs in v2).
    v2_def: Option<Arc<Value>>,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

type Rendered = (Arc<[u8]>, String);
/// Rendered group-version documents, keyed by group-version and entry ids; shared by
/// builders cloned from one another. Bounded: cleared when it reaches `CACHE_LIMIT`.
type DocCache = Arc<Mutex<HashMap<(String, Vec<u64>), Rendered>>>;
const CACHE_LIMIT: usize = 512;

/// A set of served group-versions and their schemas; cheap to clone (everything is behind
/// `Arc`s, copied on write), immutable once built.
#[derive(Clone)]
pub struct OpenApiBuilder {
    entries: Arc<Vec<Arc<Entry>>>,
    /// All definitions, with `$ref`s of the form `#/components/schemas/<name>`. A
    /// definition never changes once inserted, except the kind and list definitions of a
    /// resource that is replaced (under a new entry id).
    defs: Arc<BTreeMap<String, Arc<Value>>>,
    /// Kind and list definition → the resource (group/version/plural) that owns it.
    owners: Arc<BTreeMap<String, String>>,
    cache: DocCache,
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "kind": kind, "version": version}])
}

/// `<reversed group>.<version>.<Kind>`, kube's name for a custom resource's definition.
fn custom_def_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// A definition from `k8s-openapi`, made to look as kube publishes it: struct-tag
/// extensions added, and `metadata` not required (k8s-openapi marks it required because its
/// Rust field is not optional; kube does not).
fn normalize_builtin(name: &str, mut def: Value) -> Value {
    builtins::decorate(name, &mut def);
    if let Value::Object(m) = &mut def {
        let top_level = m
            .get("properties")
            .is_some_and(|p| p.get("apiVersion").is_some() && p.get("metadata").is_some());
        if top_level {
            if let Some(Value::Array(req)) = m.get_mut("required") {
                req.retain(|r| r != "metadata");
                if req.is_empty() {
                    m.remove("required");
                }
            }
        }
    }
    def
}

/// Does `v` contain a `$ref` anywhere? (CRD schemas may not.)
fn has_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.get("$ref").is_some_and(Value::is_string) || m.values().any(has_ref),
        Value::Array(a) => a.iter().any(has_ref),
        _ => false,
    }
}

/// kube's Swagger 2.0 form of a CRD schema: value validations (`format`, bounds, `pattern`,
/// `enum`, `required`, `allOf`/`oneOf`/`anyOf`/`not`, …), CEL rules and `nullable` stripped,
/// and a nullable field's type dropped, so that v2 clients don't reject what the server
/// accepts.
fn strip_for_v2(v: &Value) -> Value {
    const STRIPPED: &[&str] = &[
        "format",
        "maximum",
        "exclusiveMaximum",
        "minimum",
        "exclusiveMinimum",
        "maxLength",
        "minLength",
        "pattern",
        "maxItems",
        "minItems",
        "uniqueItems",
        "multipleOf",
        "enum",
        "maxProperties",
        "minProperties",
        "required",
        "allOf",
        "oneOf",
        "anyOf",
        "not",
        "nullable",
        "x-kubernetes-validations",
    ];
    let Value::Object(m) = v else {
        return v.clone();
    };
    let nullable = m.get("nullable") == Some(&Value::Bool(true));
    let mut out = Map::new();
    for (k, x) in m {
        if STRIPPED.contains(&k.as_str()) || (nullable && k == "type") {
            continue;
        }
        let x = match k.as_str() {
            "properties" | "patternProperties" | "definitions" => match x {
                Value::Object(props) => Value::Object(
                    props
                        .iter()
                        .map(|(n, s)| (n.clone(), strip_for_v2(s)))
                        .collect(),
                ),
                other => other.clone(),
            },
            "items" | "additionalProperties" | "additionalItems" => match x {
                Value::Array(a) => Value::Array(a.iter().map(strip_for_v2).collect()),
                other => strip_for_v2(other),
            },
            _ => x.clone(),
        };
        out.insert(k.clone(), x);
    }
    Value::Object(out)
}

/// A custom resource's schema with `apiVersion`, `kind` and `metadata` filled in as kube
/// does for CRDs.
fn complete_custom_schema(info: &ResourceInfo, mut s: Map<String, Value>) -> Value {
    let props = s
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(p) = props {
        p.insert(
            "apiVersion".into(),
            json!({"description": API_VERSION_DESCRIPTION, "type": "string"}),
        );
        p.insert(
            "kind".into(),
            json!({"description": KIND_DESCRIPTION, "type": "string"}),
        );
        p.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("#/components/schemas/{META}.ObjectMeta")}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}),
        );
    }
    s.insert("type".into(), json!("object"));
    s.insert(
        "x-kubernetes-group-version-kind".into(),
        gvk(&info.group, &info.version, &info.kind),
    );
    Value::Object(s)
}

impl OpenApiBuilder {
    /// A builder with the meta definitions and no resources.
    pub fn new() -> Self {
        let mut defs = BTreeMap::new();
        for (name, def) in builtins::meta_defs() {
            let mut def = normalize_builtin(&name, def);
            let short = name.strip_prefix(&format!("{META}.")).unwrap_or("");
            if ["Status", "APIResourceList", "DeleteOptions", "WatchEvent"].contains(&short) {
                if let Value::Object(m) = &mut def {
                    m.insert(
                        "x-kubernetes-group-version-kind".into(),
                        gvk("", "v1", short),
                    );
                }
            }
            defs.insert(name, Arc::new(def));
        }
        OpenApiBuilder {
            entries: Arc::new(Vec::new()),
            defs: Arc::new(defs),
            owners: Arc::new(BTreeMap::new()),
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// All built-in kinds ([`builtin_resources`]) with their real schemas.
    pub fn with_builtins() -> Self {
        let mut b = Self::new();
        for info in builtin_resources() {
            // Every built-in has a k8s-openapi type (a unit test checks it), so this
            // cannot fail; a failure would only leave the kind out.
            let _ = b.add_builtin(info);
        }
        b
    }

    /// The resources added so far.
    pub fn resources(&self) -> impl Iterator<Item = &ResourceInfo> {
        self.entries.iter().map(|e| &e.info)
    }

    /// Adds (or replaces) a built-in resource, its schema from `k8s-openapi`.
    pub fn add_builtin(&mut self, info: ResourceInfo) -> Result<(), OpenApiError> {
        info.check()?;
        let defs =
            builtins::builtin_defs(&info.group, &info.version, &info.kind).ok_or_else(|| {
                OpenApiError::UnknownKind(format!("{}/{} {}", info.group, info.version, info.kind))
            })?;
        let name = builtins::builtin_def_name(&info.group, &info.version, &info.kind);
        self.claim(&info, &name, true)?;
        let all = Arc::make_mut(&mut self.defs);
        for (k, v) in defs {
            if k == name || !all.contains_key(&k) {
                let mut v = normalize_builtin(&k, v);
                if k == name {
                    if let Value::Object(m) = &mut v {
                        m.insert(
                            "x-kubernetes-group-version-kind".into(),
                            gvk(&info.group, &info.version, &info.kind),
                        );
                    }
                }
                all.insert(k, Arc::new(v));
            }
        }
        self.push(info, name, true, None);
        Ok(())
    }

    /// Adds (or replaces) a custom resource: `schema` is the CRD version's
    /// `openAPIV3Schema`. Its definition is `<reversed group>.<version>.<Kind>` (e.g.
    /// `io.cert-manager.v1.Certificate`), with `apiVersion`, `kind` and `metadata` filled in
    /// as kube does; PATCH consumes JSON patch, merge patch and apply patch only, whatever
    /// `info.strategic_merge_patch` says.
    pub fn add_custom_resource(
        &mut self,
        mut info: ResourceInfo,
        schema: &Value,
    ) -> Result<(), OpenApiError> {
        info.strategic_merge_patch = false;
        self.add_resource(info, schema)
    }

    /// Adds (or replaces) a resource whose schema is given (a custom resource, or a kind
    /// without a `k8s-openapi` type such as kcp's), completed as for custom resources but
    /// keeping `info.strategic_merge_patch`.
    pub fn add_resource(&mut self, info: ResourceInfo, schema: &Value) -> Result<(), OpenApiError> {
        info.check()?;
        let invalid = |reason: &str| OpenApiError::InvalidSchema {
            kind: info.kind.clone(),
            reason: reason.to_string(),
        };
        let Value::Object(s) = schema else {
            return Err(invalid("not a JSON object"));
        };
        if s.get("properties").is_some_and(|p| !p.is_object()) {
            return Err(invalid("properties is not an object"));
        }
        if has_ref(schema) {
            return Err(invalid("$ref is not allowed"));
        }
        let name = custom_def_name(&info.group, &info.version, &info.kind);
        self.claim(&info, &name, false)?;
        let v3 = complete_custom_schema(&info, s.clone());
        let v2 = match strip_for_v2(schema) {
            Value::Object(stripped) => complete_custom_schema(&info, stripped),
            _ => v3.clone(),
        };
        Arc::make_mut(&mut self.defs).insert(name.clone(), Arc::new(v3));
        self.push(info, name, false, Some(Arc::new(v2)));
        Ok(())
    }

    /// Checks that `info`'s kind and list definitions are free (or its own), and removes
    /// the resource it replaces, if any.
    fn claim(
        &mut self,
        info: &ResourceInfo,
        name: &str,
        builtin: bool,
    ) -> Result<(), OpenApiError> {
        let gvr = info.gvr();
        let list = format!("{name}List");
        for def in [name, list.as_str()] {
            match self.owners.get(def) {
                Some(owner) if *owner != gvr => {
                    return Err(OpenApiError::Conflict {
                        definition: def.to_string(),
                        resource: gvr,
                        owner: owner.clone(),
                    })
                }
                Some(_) => {}
                // A definition that is no kind's (ObjectMeta, a part of a built-in) cannot
                // be taken; a built-in kind's own may already be there.
                None if self.defs.contains_key(def) && !(builtin && def == name) => {
                    return Err(OpenApiError::Conflict {
                        definition: def.to_string(),
                        resource: gvr,
                        owner: "a built-in definition".into(),
                    })
                }
                None => {}
            }
        }
        if self.entries.iter().any(|e| e.info.gvr() == gvr) {
            let entries = Arc::make_mut(&mut self.entries);
            let owners = Arc::make_mut(&mut self.owners);
            let defs = Arc::make_mut(&mut self.defs);
            for e in entries.iter().filter(|e| e.info.gvr() == gvr) {
                for d in [e.def.clone(), format!("{}List", e.def)] {
                    owners.remove(&d);
                    defs.remove(&d);
                }
            }
            entries.retain(|e| e.info.gvr() != gvr);
        }
        Ok(())
    }

    fn push(&mut self, info: ResourceInfo, def: String, builtin: bool, v2_def: Option<Arc<Value>>) {
        let list = format!("{def}List");
        let list_def = json!({
            "description": format!("{}List is a list of {}", info.kind, info.kind),
            "properties": {
                "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
                "items": {"description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", info.plural), "items": {"$ref": format!("#/components/schemas/{def}")}, "type": "array"},
                "kind": {"description": KIND_DESCRIPTION, "type": "string"},
                "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{META}.ListMeta")}], "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"},
            },
            "required": ["items"],
            "type": "object",
            "x-kubernetes-group-version-kind": gvk(&info.group, &info.version, &format!("{}List", info.kind)),
        });
        let owners = Arc::make_mut(&mut self.owners);
        owners.insert(def.clone(), info.gvr());
        owners.insert(list.clone(), info.gvr());
        let defs = Arc::make_mut(&mut self.defs);
        defs.insert(list, Arc::new(list_def));
        if info.subresources.iter().any(|s| s == "scale") {
            for (k, v) in builtins::scale_defs() {
                if let std::collections::btree_map::Entry::Vacant(slot) = defs.entry(k) {
                    let v = normalize_builtin(slot.key(), v);
                    slot.insert(Arc::new(v));
                }
            }
        }
        Arc::make_mut(&mut self.entries).push(Arc::new(Entry {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            info,
            def,
            builtin,
            v2_def,
        }));
    }

    /// Renders the v3 documents (reusing ones rendered before for the same resources);
    /// the v2 document is rendered on first use.
    pub fn build(self) -> OpenApiDocs {
        let mut v3 = BTreeMap::new();
        for (key, entries) in by_gv(&self.entries) {
            let cache_key = (
                key.clone(),
                entries.iter().map(|e| e.id).collect::<Vec<_>>(),
            );
            let cached = self
                .cache
                .lock()
                .ok()
                .and_then(|c| c.get(&cache_key).cloned());
            let rendered = match cached {
                Some(r) => r,
                None => {
                    let r = render(&v3_doc(&entries, &self.defs));
                    if let Ok(mut c) = self.cache.lock() {
                        if c.len() >= CACHE_LIMIT {
                            c.clear();
                        }
                        c.insert(cache_key, r.clone());
                    }
                    r
                }
            };
            v3.insert(key, rendered);
        }
        OpenApiDocs {
            inner: Arc::new(Docs {
                v3,
                entries: self.entries,
                defs: self.defs,
                v2: OnceLock::new(),
                v2_pb: OnceLock::new(),
            }),
        }
    }
}

impl Default for OpenApiBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn by_gv(entries: &[Arc<Entry>]) -> BTreeMap<String, Vec<Arc<Entry>>> {
    let mut by_gv: BTreeMap<String, Vec<Arc<Entry>>> = BTreeMap::new();
    for e in entries {
        by_gv.entry(e.info.gv_key()).or_default().push(e.clone());
    }
    by_gv
}

fn render(doc: &Value) -> Rendered {
    let bytes: Arc<[u8]> = serde_json::to_vec(doc).unwrap_or_default().into();
    let hash = hash(&bytes);
    (bytes, hash)
}

/// Uppercase hex SHA-512, as kube's OpenAPI hashes and ETags.
fn hash(b: &[u8]) -> String {
    use std::fmt::Write;
    Sha512::digest(b)
        .iter()
        .fold(String::with_capacity(128), |mut s, x| {
            let _ = write!(s, "{x:02X}");
            s
        })
}

/// Every definition reachable from `roots` (following `$ref`s), sorted by name.
fn closure(
    roots: impl IntoIterator<Item = String>,
    defs: &BTreeMap<String, Arc<Value>>,
) -> BTreeMap<String, &Value> {
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    if let Some(name) = r.rsplit('/').next() {
                        out.push(name.to_string());
                    }
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let mut seen = BTreeMap::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(n) = todo.pop() {
        if seen.contains_key(&n) {
            continue;
        }
        if let Some(d) = defs.get(&n) {
            refs(d, &mut todo);
            seen.insert(n, d.as_ref());
        }
    }
    seen
}

/// The paths of a group-version's resources, sorted by path, and its tag.
fn gv_paths(entries: &[Arc<Entry>]) -> (BTreeMap<String, paths::PathItem>, String) {
    let mut items = BTreeMap::new();
    let mut tag = String::new();
    if let Some(first) = entries.first() {
        let i = paths::resources_path(&first.info.group, &first.info.version);
        items.insert(i.path.clone(), i);
        tag = paths::tag(&first.info.group, &first.info.version);
    }
    for e in entries {
        for i in paths::resource_paths(&e.info, &e.def, e.builtin) {
            items.insert(i.path.clone(), i);
        }
    }
    (items, tag)
}

/// The definitions a group-version's document starts from.
fn roots(entries: &[Arc<Entry>], items: &BTreeMap<String, paths::PathItem>) -> Vec<String> {
    let mut roots: Vec<String> = items
        .values()
        .flat_map(|i| i.refs().map(str::to_string))
        .collect();
    for e in entries {
        roots.push(e.def.clone());
        roots.push(format!("{}List", e.def));
    }
    roots
}

const SECURITY_DESCRIPTION: &str = "Bearer Token authentication";

fn v3_doc(entries: &[Arc<Entry>], defs: &BTreeMap<String, Arc<Value>>) -> Value {
    let (items, tag) = gv_paths(entries);
    let schemas: Map<String, Value> = closure(roots(entries, &items), defs)
        .into_iter()
        .map(|(k, v)| (k, v.clone()))
        .collect();
    let paths: Map<String, Value> = items
        .iter()
        .map(|(p, i)| (p.clone(), i.to_v3(&tag)))
        .collect();
    json!({
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"description": SECURITY_DESCRIPTION, "in": "header", "name": "authorization", "type": "apiKey"}},
        },
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "openapi": "3.0.0",
        "paths": paths,
        "security": [{"BearerToken": []}],
    })
}

/// Rewrites OpenAPI 3 `$ref`s and `allOf: [ref]` wrappers into Swagger 2.0 form, and drops
/// what Swagger 2.0 lacks (`nullable`).
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(all)) = m.get("allOf") {
                if all.len() == 1 && all.first().is_some_and(|r| r.get("$ref").is_some()) {
                    let mut out: Map<String, Value> = m
                        .iter()
                        .filter(|(k, _)| *k != "allOf" && *k != "nullable")
                        .map(|(k, v)| (k.clone(), to_v2(v)))
                        .collect();
                    if let Some(Value::Object(r)) = all.first().map(to_v2) {
                        out.extend(r);
                    }
                    return Value::Object(out);
                }
            }
            Value::Object(
                m.iter()
                    .filter(|(k, _)| *k != "nullable")
                    .map(|(k, v)| match (k.as_str(), v) {
                        ("$ref", Value::String(s)) => (
                            k.clone(),
                            Value::String(s.replace("#/components/schemas/", "#/definitions/")),
                        ),
                        _ => (k.clone(), to_v2(v)),
                    })
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

fn v2_doc(entries: &[Arc<Entry>], defs: &BTreeMap<String, Arc<Value>>) -> Value {
    let mut paths = BTreeMap::new();
    let mut all_roots = Vec::new();
    for gv_entries in by_gv(entries).values() {
        let (items, tag) = gv_paths(gv_entries);
        all_roots.extend(roots(gv_entries, &items));
        for (p, i) in &items {
            paths.insert(p.clone(), i.to_v2(&tag));
        }
    }
    let overrides: HashMap<&str, &Value> = entries
        .iter()
        .filter_map(|e| e.v2_def.as_deref().map(|d| (e.def.as_str(), d)))
        .collect();
    let definitions: Map<String, Value> = closure(all_roots, defs)
        .into_iter()
        .map(|(k, v)| {
            let v = overrides.get(k.as_str()).copied().unwrap_or(v);
            let v2 = to_v2(v);
            (k, v2)
        })
        .collect();
    let paths: Map<String, Value> = paths.into_iter().collect();
    json!({
        "definitions": definitions,
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "security": [{"BearerToken": []}],
        "securityDefinitions": {"BearerToken": {"description": SECURITY_DESCRIPTION, "in": "header", "name": "authorization", "type": "apiKey"}},
        "swagger": "2.0",
    })
}

struct Docs {
    v3: BTreeMap<String, Rendered>,
    entries: Arc<Vec<Arc<Entry>>>,
    defs: Arc<BTreeMap<String, Arc<Value>>>,
    v2: OnceLock<Rendered>,
    v2_pb: OnceLock<Rendered>,
}

/// Built documents; cheap to clone, immutable.
#[derive(Clone)]
pub struct OpenApiDocs {
    inner: Arc<Docs>,
}

impl OpenApiDocs {
    /// The `GET /openapi/v3` index: `{"paths": {"api/v1": {"serverRelativeURL":
    /// "<url_prefix>/openapi/v3/api/v1?hash=<HASH>"}, ...}}`; `url_prefix` (e.g.
    /// `/clusters/root`) is prepended to each `serverRelativeURL`.
    pub fn v3_index(&self, url_prefix: &str) -> Value {
        let paths: Map<String, Value> = self
            .inner
            .v3
            .iter()
            .map(|(k, (_, h))| {
                (
                    k.clone(),
                    json!({"serverRelativeURL": format!("{url_prefix}/openapi/v3/{k}?hash={h}")}),
                )
            })
            .collect();
        json!({"paths": paths})
    }

    /// The keys of the group-version documents (`api/v1`, `apis/<group>/<version>`).
    pub fn v3_keys(&self) -> impl Iterator<Item = &str> {
        self.inner.v3.keys().map(String::as_str)
    }

    /// A group-version document (key `api/v1` or `apis/<group>/<version>`): JSON bytes and
    /// hash (uppercase hex SHA-512 of the bytes), computed once and shared.
    pub fn v3_document(&self, key: &str) -> Option<(Arc<[u8]>, String)> {
        self.inner.v3.get(key).cloned()
    }

    /// The Swagger 2.0 document of everything: JSON bytes and hash (for the ETag), rendered
    /// on first use and shared.
    pub fn v2_document(&self) -> (Arc<[u8]>, String) {
        self.inner
            .v2
            .get_or_init(|| render(&v2_doc(&self.inner.entries, &self.inner.defs)))
            .clone()
    }

    /// The Swagger 2.0 document as gnostic protobuf (what kubectl ≤ 1.28 downloads), rendered
    /// on first use.
    pub fn v2_protobuf(&self) -> (Arc<[u8]>, String) {
        self.inner
            .v2_pb
            .get_or_init(|| {
                let (json, _) = self.v2_document();
                let doc: Value = serde_json::from_slice(&json).unwrap_or(Value::Null);
                let pb: Arc<[u8]> = v2proto::encode(&doc).into();
                let h = hash(&pb);
                (pb, h)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests;
