//! OpenAPI documents of the resources a logical cluster serves, shaped as kube-apiserver
//! serves them:
//!
//! - `/openapi/v3` — an index of group-versions, each pointing at
//!   `/openapi/v3/<api|apis/group>/<version>?hash=<H>`;
//! - the per-group-version OpenAPI 3.0 documents (paths with kube's operation extensions,
//!   `components.schemas` with `x-kubernetes-group-version-kind`) that `kubectl explain`,
//!   kubectl's field-validation and patch-type decisions read;
//! - `/openapi/v2` — one Swagger 2.0 JSON document (`definitions`), which terraform's
//!   `kubernetes_manifest` requires.
//!
//! Schemas of built-in kinds come from the `k8s-openapi` crate (its schemars support
//! carries the real descriptions and types); custom resources bring their own
//! `openAPIV3Schema`. Documents are serialized and hashed once, when built.

mod v2proto;

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha512};

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
    fn gv_key(&self) -> String {
        if self.group.is_empty() {
            format!("api/{}", self.version)
        } else {
            format!("apis/{}/{}", self.group, self.version)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OpenApiError {
    #[error("the schema of {0} is not an object")]
    InvalidSchema(String),
    #[error("no built-in schema for {0}")]
    UnknownKind(String),
}

const META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1";

/// Collects resources and schemas, then builds [`OpenApiDocs`].
#[derive(Clone)]
pub struct OpenApiBuilder {
    resources: Vec<ResourceInfo>,
    /// Definition name of each resource's kind, in `resources` order.
    kind_defs: Vec<String>,
    /// All definitions, with `$ref`s of the form `#/components/schemas/<name>`.
    defs: BTreeMap<String, Value>,
}

fn generator() -> SchemaGenerator {
    SchemaSettings::openapi3().into_generator()
}

/// Definitions of `T` and everything it references.
fn defs_of<T: JsonSchema>() -> Map<String, Value> {
    let mut g = generator();
    g.subschema_for::<T>();
    g.take_definitions(true)
}

/// The definitions every document needs besides its kinds.
fn meta_defs() -> Map<String, Value> {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
    let mut g = generator();
    g.subschema_for::<meta::Status>();
    g.subschema_for::<meta::DeleteOptions>();
    g.subschema_for::<meta::WatchEvent<k8s_openapi::apimachinery::pkg::runtime::RawExtension>>();
    g.subschema_for::<meta::APIResourceList>();
    let mut defs = g.take_definitions(true);
    defs.insert(
        format!("{META}.Patch"),
        json!({"type": "object", "description": "Patch is provided to give a concrete name and type to the Kubernetes PATCH request body."}),
    );
    defs
}

/// Schemas of the built-in kinds (group, version, kind) → (kind definitions, list kind definitions).
fn builtin(group: &str, version: &str, kind: &str) -> Option<Map<String, Value>> {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    match (group, version, kind) {
        ("", "v1", "Namespace") => Some(defs_of::<core::v1::Namespace>()),
        ("", "v1", "ConfigMap") => Some(defs_of::<core::v1::ConfigMap>()),
        ("", "v1", "Secret") => Some(defs_of::<core::v1::Secret>()),
        ("", "v1", "ServiceAccount") => Some(defs_of::<core::v1::ServiceAccount>()),
        ("", "v1", "Event") => Some(defs_of::<core::v1::Event>()),
        ("events.k8s.io", "v1", "Event") => Some(defs_of::<events::v1::Event>()),
        ("coordination.k8s.io", "v1", "Lease") => Some(defs_of::<coordination::v1::Lease>()),
        ("rbac.authorization.k8s.io", "v1", "Role") => Some(defs_of::<rbac::v1::Role>()),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => {
            Some(defs_of::<rbac::v1::ClusterRole>())
        }
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => {
            Some(defs_of::<rbac::v1::RoleBinding>())
        }
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => {
            Some(defs_of::<rbac::v1::ClusterRoleBinding>())
        }
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => {
            Some(defs_of::<authentication::v1::SelfSubjectReview>())
        }
        ("authentication.k8s.io", "v1", "TokenReview") => {
            Some(defs_of::<authentication::v1::TokenReview>())
        }
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => {
            Some(defs_of::<authorization::v1::SelfSubjectAccessReview>())
        }
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => {
            Some(defs_of::<authorization::v1::SelfSubjectRulesReview>())
        }
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => {
            Some(defs_of::<authorization::v1::SubjectAccessReview>())
        }
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => {
            Some(defs_of::<authorization::v1::LocalSubjectAccessReview>())
        }
        ("apiextensions.k8s.io", "v1", "CustomResourceDefinition") => {
            Some(defs_of::<apiext::CustomResourceDefinition>())
        }
        _ => None,
    }
}

/// The definition name kube gives a kind: `io.k8s.api.<group prefix>.<version>.<Kind>`
/// for built-ins, `<reversed group>.<version>.<Kind>` for custom resources.
fn builtin_def_name(group: &str, version: &str, kind: &str) -> String {
    match group {
        "" => format!("io.k8s.api.core.{version}.{kind}"),
        "apiextensions.k8s.io" => {
            format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.{version}.{kind}")
        }
        g => {
            let first = g.split('.').next().unwrap_or(g);
            format!("io.k8s.api.{first}.{version}.{kind}")
        }
    }
}

fn custom_def_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "version": version, "kind": kind}])
}

impl OpenApiBuilder {
    /// Every built-in kind with its real schema. Kinds without a `k8s-openapi` type
    /// (kcp's) are added with [`OpenApiBuilder::add_resource`].
    pub fn new() -> Self {
        let mut defs = BTreeMap::new();
        for (k, v) in meta_defs() {
            defs.insert(k, v);
        }
        let mut b = OpenApiBuilder {
            resources: Vec::new(),
            kind_defs: Vec::new(),
            defs,
        };
        b.add_patch_extensions();
        b
    }

    /// Adds a built-in resource (its schema from `k8s-openapi`).
    pub fn add_builtin(&mut self, info: ResourceInfo) -> Result<(), OpenApiError> {
        let defs = builtin(&info.group, &info.version, &info.kind).ok_or_else(|| {
            OpenApiError::UnknownKind(format!("{}/{} {}", info.group, info.version, info.kind))
        })?;
        for (k, v) in defs {
            self.defs.entry(k).or_insert(v);
        }
        self.add_patch_extensions();
        let name = builtin_def_name(&info.group, &info.version, &info.kind);
        if let Some(Value::Object(d)) = self.defs.get_mut(&name) {
            d.insert(
                "x-kubernetes-group-version-kind".into(),
                gvk(&info.group, &info.version, &info.kind),
            );
        }
        if info.verbs.iter().any(|v| v == "list") {
            self.add_list_def(&name, &info);
        }
        self.kind_defs.push(name);
        self.resources.push(info);
        Ok(())
    }

    /// Adds a resource whose schema is given (a kind without a `k8s-openapi` type, or a
    /// custom resource's `openAPIV3Schema`): apiVersion, kind and metadata are filled in as
    /// kube does for CRDs.
    pub fn add_resource(&mut self, info: ResourceInfo, schema: &Value) -> Result<(), OpenApiError> {
        let Value::Object(s) = schema.clone() else {
            return Err(OpenApiError::InvalidSchema(info.kind.clone()));
        };
        let mut s = s;
        let props = s.entry("properties").or_insert_with(|| json!({}));
        if let Value::Object(p) = props {
            p.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
            p.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
            p.insert("metadata".into(), json!({"allOf": [{"$ref": format!("#/components/schemas/{META}.ObjectMeta")}], "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}));
        }
        s.entry("type").or_insert_with(|| json!("object"));
        s.insert(
            "x-kubernetes-group-version-kind".into(),
            gvk(&info.group, &info.version, &info.kind),
        );
        if !self.defs.contains_key(&format!("{META}.ObjectMeta")) {
            for (k, v) in defs_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>() {
                self.defs.entry(k).or_insert(v);
            }
            self.add_patch_extensions();
        }
        let name = custom_def_name(&info.group, &info.version, &info.kind);
        self.defs.insert(name.clone(), Value::Object(s));
        self.add_list_def(&name, &info);
        self.kind_defs.push(name);
        self.resources.push(info);
        Ok(())
    }

    /// `<Kind>List`, as kube defines every list type.
    fn add_list_def(&mut self, name: &str, info: &ResourceInfo) {
        self.defs.insert(
            format!("{name}List"),
            json!({
                "type": "object",
                "description": format!("{}List is a list of {} objects.", info.kind, info.kind),
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                    "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                    "items": {"type": "array", "description": format!("List of {}.", info.plural), "items": {"$ref": format!("#/components/schemas/{name}")}},
                    "metadata": {"allOf": [{"$ref": format!("#/components/schemas/{META}.ListMeta")}], "description": "Standard list metadata."},
                },
                "x-kubernetes-group-version-kind": gvk(&info.group, &info.version, &format!("{}List", info.kind)),
            }),
        );
        if !self.defs.contains_key(&format!("{META}.ListMeta")) {
            for (k, v) in defs_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta>() {
                self.defs.entry(k).or_insert(v);
            }
        }
    }

    /// kube's patch-strategy extensions on the metadata fields that have them (the
    /// `k8s-openapi` schemas do not carry them).
    fn add_patch_extensions(&mut self) {
        let set = |defs: &mut BTreeMap<String, Value>, def: &str, field: &str, ext: Value| {
            if let Some(p) = defs
                .get_mut(def)
                .and_then(|d| d.get_mut("properties"))
                .and_then(|p| p.get_mut(field))
            {
                if let (Value::Object(m), Value::Object(e)) = (p, ext) {
                    m.extend(e);
                }
            }
        };
        set(
            &mut self.defs,
            &format!("{META}.ObjectMeta"),
            "finalizers",
            json!({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-list-type": "set"}),
        );
        set(
            &mut self.defs,
            &format!("{META}.ObjectMeta"),
            "ownerReferences",
            json!({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "uid"}),
        );
        set(
            &mut self.defs,
            "io.k8s.api.core.v1.ServiceAccount",
            "secrets",
            json!({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"}),
        );
        set(
            &mut self.defs,
            "io.k8s.api.core.v1.NamespaceStatus",
            "conditions",
            json!({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "type"}),
        );
    }

    pub fn build(self) -> OpenApiDocs {
        let mut by_gv: BTreeMap<String, Vec<(ResourceInfo, String)>> = BTreeMap::new();
        for (r, d) in self.resources.iter().zip(self.kind_defs.iter()) {
            by_gv
                .entry(r.gv_key())
                .or_default()
                .push((r.clone(), d.clone()));
        }
        let mut v3 = BTreeMap::new();
        for (key, resources) in &by_gv {
            let doc = v3_doc(key, resources, &self.defs);
            let bytes: Arc<[u8]> = serde_json::to_vec(&doc).unwrap_or_default().into();
            let hash = hash(&bytes);
            v3.insert(key.clone(), (bytes, hash));
        }
        let v2 = v2_doc(&by_gv, &self.defs);
        let v2_bytes: Arc<[u8]> = serde_json::to_vec(&v2).unwrap_or_default().into();
        let v2_hash = hash(&v2_bytes);
        let v2_pb: Arc<[u8]> = v2proto::encode(&v2).into();
        let v2_pb_hash = hash(&v2_pb);
        OpenApiDocs {
            inner: Arc::new(Docs {
                v3,
                v2: (v2_bytes, v2_hash),
                v2_pb: (v2_pb, v2_pb_hash),
            }),
        }
    }
}

impl Default for OpenApiBuilder {
    fn default() -> Self {
        Self::new()
    }
}

fn hash(b: &[u8]) -> String {
    Sha512::digest(b)
        .iter()
        .map(|x| format!("{x:02X}"))
        .collect()
}

/// Every definition reachable from `roots` (following `$ref`s).
fn closure(roots: &[String], defs: &BTreeMap<String, Value>) -> BTreeMap<String, Value> {
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
    let mut todo: Vec<String> = roots.to_vec();
    while let Some(n) = todo.pop() {
        if seen.contains_key(&n) {
            continue;
        }
        if let Some(d) = defs.get(&n) {
            let mut r = Vec::new();
            refs(d, &mut r);
            todo.extend(r);
            seen.insert(n, d.clone());
        }
    }
    seen
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn query(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params() -> Vec<Value> {
    vec![
        query("dryRun", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        query("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        query("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict"),
    ]
}

fn list_params() -> Vec<Value> {
    [
        "allowWatchBookmarks",
        "continue",
        "fieldSelector",
        "labelSelector",
        "limit",
        "resourceVersion",
        "resourceVersionMatch",
        "sendInitialEvents",
        "timeoutSeconds",
        "watch",
    ]
    .iter()
    .map(|n| query(n, ""))
    .collect()
}

fn op(action: &str, id: &str, info: &ResourceInfo, response: Value) -> Value {
    json!({
        "operationId": id,
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": response}}}, "401": {"description": "Unauthorized"}},
    })
}

fn v3_doc(
    key: &str,
    resources: &[(ResourceInfo, String)],
    defs: &BTreeMap<String, Value>,
) -> Value {
    let mut paths = Map::new();
    let mut roots: Vec<String> = vec![
        format!("{META}.Status"),
        format!("{META}.DeleteOptions"),
        format!("{META}.Patch"),
        format!("{META}.WatchEvent"),
    ];
    for (info, def) in resources {
        roots.push(def.clone());
        let list_def = format!("{def}List");
        if defs.contains_key(&list_def) {
            roots.push(list_def.clone());
        }
        let base = format!("/{key}");
        let collection = if info.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", info.plural)
        } else {
            format!("{base}/{}", info.plural)
        };
        let item = format!("{collection}/{{name}}");
        let id = |verb: &str| {
            format!(
                "{verb}{}{}{}",
                cap(&info.group),
                cap(&info.version),
                info.kind
            )
        };
        let verbs = |v: &str| info.verbs.iter().any(|x| x == v);
        let body = |ct: &[&str]| {
            let content: Map<String, Value> = ct
                .iter()
                .map(|c| (c.to_string(), json!({"schema": schema_ref(def)})))
                .collect();
            json!({"content": content, "required": true})
        };
        let mut coll = Map::new();
        if verbs("list") {
            let mut o = op("list", &id("list"), info, schema_ref(&list_def));
            o["parameters"] = json!(list_params());
            coll.insert("get".into(), o);
        }
        if verbs("create") {
            let mut o = op("post", &id("create"), info, schema_ref(def));
            o["parameters"] = json!(write_params());
            o["requestBody"] = body(&["*/*"]);
            coll.insert("post".into(), o);
        }
        if verbs("deletecollection") {
            coll.insert(
                "delete".into(),
                op(
                    "deletecollection",
                    &id("deletecollection"),
                    info,
                    schema_ref(&format!("{META}.Status")),
                ),
            );
        }
        if info.namespaced {
            coll.insert("parameters".into(), json!([{"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}]));
        }
        if coll.keys().any(|k| k != "parameters") {
            paths.insert(collection.clone(), Value::Object(coll));
        }
        let mut patch_types = vec![
            "application/apply-patch+yaml",
            "application/json-patch+json",
            "application/merge-patch+json",
        ];
        if info.strategic_merge_patch {
            patch_types.push("application/strategic-merge-patch+json");
        }
        let item_ops = |sub: &str| {
            let mut m = Map::new();
            if verbs("get") {
                m.insert(
                    "get".into(),
                    op("get", &id(&format!("read{sub}")), info, schema_ref(def)),
                );
            }
            if verbs("update") {
                let mut o = op("put", &id(&format!("replace{sub}")), info, schema_ref(def));
                o["parameters"] = json!(write_params());
                o["requestBody"] = body(&["*/*"]);
                m.insert("put".into(), o);
            }
            if verbs("patch") {
                let mut o = op("patch", &id(&format!("patch{sub}")), info, schema_ref(def));
                let mut params = write_params();
                params.push(query(
                    "force",
                    "Force is going to \"force\" Apply requests.",
                ));
                o["parameters"] = json!(params);
                let content: Map<String, Value> = patch_types
                    .iter()
                    .map(|c| {
                        (
                            c.to_string(),
                            json!({"schema": schema_ref(&format!("{META}.Patch"))}),
                        )
                    })
                    .collect();
                o["requestBody"] = json!({"content": content, "required": true});
                m.insert("patch".into(), o);
            }
            let mut params = vec![
                json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}),
            ];
            if info.namespaced {
                params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
            }
            m.insert("parameters".into(), json!(params));
            m
        };
        if verbs("get") || verbs("update") || verbs("patch") || verbs("delete") {
            let mut m = item_ops("");
            if verbs("delete") {
                m.insert(
                    "delete".into(),
                    op(
                        "delete",
                        &id("delete"),
                        info,
                        schema_ref(&format!("{META}.Status")),
                    ),
                );
            }
            paths.insert(item.clone(), Value::Object(m));
        }
        for sub in &info.subresources {
            if sub == "status" {
                paths.insert(format!("{item}/status"), Value::Object(item_ops("Status")));
            }
        }
    }
    let schemas: Map<String, Value> = closure(&roots, defs).into_iter().collect();
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header", "description": "Bearer Token authentication"}}},
    })
}

fn cap(s: &str) -> String {
    s.split(['.', '-'])
        .next()
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
                None => String::new(),
            }
        })
        .unwrap_or_default()
}

/// Rewrites OpenAPI 3 `$ref`s and `allOf: [ref]` wrappers into Swagger 2.0 form.
fn to_v2(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(all)) = m.get("allOf") {
                if all.len() == 1 {
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
                    .map(|(k, v)| {
                        if k == "$ref" {
                            if let Value::String(s) = v {
                                return (
                                    k.clone(),
                                    Value::String(
                                        s.replace("#/components/schemas/", "#/definitions/"),
                                    ),
                                );
                            }
                        }
                        (k.clone(), to_v2(v))
                    })
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

fn v2_doc(
    by_gv: &BTreeMap<String, Vec<(ResourceInfo, String)>>,
    defs: &BTreeMap<String, Value>,
) -> Value {
    let mut roots: Vec<String> = vec![
        format!("{META}.Status"),
        format!("{META}.DeleteOptions"),
        format!("{META}.Patch"),
    ];
    let mut paths = Map::new();
    for (key, resources) in by_gv {
        for (info, def) in resources {
            roots.push(def.clone());
            roots.push(format!("{def}List"));
            let collection = if info.namespaced {
                format!("/{key}/namespaces/{{namespace}}/{}", info.plural)
            } else {
                format!("/{key}/{}", info.plural)
            };
            paths.insert(
                collection,
                json!({"get": {
                    "operationId": format!("list{}", info.kind),
                    "produces": ["application/json"],
                    "x-kubernetes-action": "list",
                    "x-kubernetes-group-version-kind": {"group": info.group, "version": info.version, "kind": info.kind},
                    "responses": {"200": {"description": "OK", "schema": {"$ref": format!("#/definitions/{def}List")}}},
                }}),
            );
        }
    }
    let definitions: Map<String, Value> = closure(&roots, defs)
        .iter()
        .map(|(k, v)| (k.clone(), to_v2(v)))
        .collect();
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    })
}

struct Docs {
    v3: BTreeMap<String, (Arc<[u8]>, String)>,
    v2: (Arc<[u8]>, String),
    v2_pb: (Arc<[u8]>, String),
}

/// Built documents; cheap to clone.
#[derive(Clone)]
pub struct OpenApiDocs {
    inner: Arc<Docs>,
}

impl OpenApiDocs {
    /// The `/openapi/v3` index; `url_prefix` (e.g. `/clusters/root`) is prepended to each
    /// `serverRelativeURL`.
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

    /// A group-version document (`api/v1`, `apis/<group>/<version>`): bytes and hash.
    pub fn v3_document(&self, key: &str) -> Option<(Arc<[u8]>, String)> {
        self.inner.v3.get(key).cloned()
    }

    /// The Swagger 2.0 document: bytes and hash.
    pub fn v2_document(&self) -> (Arc<[u8]>, String) {
        self.inner.v2.clone()
    }

    /// The Swagger 2.0 document as gnostic protobuf (what kubectl ≤ 1.28 downloads).
    pub fn v2_protobuf(&self) -> (Arc<[u8]>, String) {
        self.inner.v2_pb.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        smp: bool,
    ) -> ResourceInfo {
        ResourceInfo {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            verbs: [
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch",
            ]
            .map(String::from)
            .to_vec(),
            subresources: vec![],
            strategic_merge_patch: smp,
        }
    }

    fn docs() -> OpenApiDocs {
        let mut b = OpenApiBuilder::new();
        b.add_builtin(info("", "v1", "ConfigMap", "configmaps", true, true))
            .unwrap();
        b.add_builtin(info(
            "rbac.authorization.k8s.io",
            "v1",
            "Role",
            "roles",
            true,
            true,
        ))
        .unwrap();
        b.add_resource(
            info("example.com", "v1", "Widget", "widgets", true, false),
            &json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}),
        )
        .unwrap();
        b.build()
    }

    fn all_refs_resolve(doc: &Value, prefix: &str, defs: &Value) {
        match doc {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    let name = r
                        .strip_prefix(prefix)
                        .unwrap_or_else(|| panic!("bad ref {r}"));
                    assert!(defs.get(name).is_some(), "unresolved {r}");
                }
                m.values().for_each(|v| all_refs_resolve(v, prefix, defs));
            }
            Value::Array(a) => a.iter().for_each(|v| all_refs_resolve(v, prefix, defs)),
            _ => {}
        }
    }

    #[test]
    fn v3_documents() {
        let d = docs();
        let index = d.v3_index("/clusters/root");
        let keys: Vec<&String> = index["paths"].as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            vec![
                "api/v1",
                "apis/example.com/v1",
                "apis/rbac.authorization.k8s.io/v1"
            ]
        );
        let (bytes, hash) = d.v3_document("api/v1").unwrap();
        assert!(index["paths"]["api/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .ends_with(&format!("?hash={hash}")));
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        let schemas = &doc["components"]["schemas"];
        all_refs_resolve(&doc, "#/components/schemas/", schemas);
        let cm = &schemas["io.k8s.api.core.v1.ConfigMap"];
        assert!(cm["properties"]["data"]["description"]
            .as_str()
            .unwrap()
            .contains("configuration data"));
        assert_eq!(
            cm["x-kubernetes-group-version-kind"][0]["kind"],
            "ConfigMap"
        );
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
            ["requestBody"]["content"];
        assert!(patch
            .get("application/strategic-merge-patch+json")
            .is_some());
        let params = doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"]
            ["parameters"]
            .to_string();
        assert!(params.contains("fieldValidation"));
        assert_eq!(
            schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]
                ["ownerReferences"]["x-kubernetes-patch-merge-key"],
            "uid"
        );

        let (cr, _) = d.v3_document("apis/example.com/v1").unwrap();
        let cr: Value = serde_json::from_slice(&cr).unwrap();
        all_refs_resolve(&cr, "#/components/schemas/", &cr["components"]["schemas"]);
        let content = &cr["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]
            ["patch"]["requestBody"]["content"];
        assert!(content.get("application/merge-patch+json").is_some());
        assert!(content
            .get("application/strategic-merge-patch+json")
            .is_none());
        assert_eq!(
            cr["components"]["schemas"]["com.example.v1.Widget"]["x-kubernetes-group-version-kind"]
                [0]["group"],
            "example.com"
        );
    }

    #[test]
    fn v2_document_and_hashes() {
        let d = docs();
        let (bytes, hash) = d.v2_document();
        let doc: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["swagger"], "2.0");
        all_refs_resolve(&doc, "#/definitions/", &doc["definitions"]);
        assert_eq!(
            doc["definitions"]["com.example.v1.Widget"]["x-kubernetes-group-version-kind"][0]
                ["kind"],
            "Widget"
        );
        assert!(doc["definitions"]["io.k8s.api.core.v1.ConfigMap"].is_object());
        // same content, same hash; different content, different hash
        assert_eq!(docs().v2_document().1, hash);
        let mut b = OpenApiBuilder::new();
        b.add_builtin(info("", "v1", "ConfigMap", "configmaps", true, true))
            .unwrap();
        assert_ne!(b.build().v2_document().1, hash);
        assert_eq!(hash.len(), 128);
    }

    #[test]
    fn every_builtin_kind_has_a_schema() {
        for (g, v, k) in [
            ("", "v1", "Namespace"),
            ("", "v1", "Secret"),
            ("", "v1", "ServiceAccount"),
            ("", "v1", "Event"),
            ("events.k8s.io", "v1", "Event"),
            ("coordination.k8s.io", "v1", "Lease"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRole"),
            ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
            ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding"),
            ("authentication.k8s.io", "v1", "SelfSubjectReview"),
            ("authentication.k8s.io", "v1", "TokenReview"),
            ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
            ("authorization.k8s.io", "v1", "SelfSubjectRulesReview"),
            ("authorization.k8s.io", "v1", "SubjectAccessReview"),
            ("authorization.k8s.io", "v1", "LocalSubjectAccessReview"),
            ("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
        ] {
            let defs = builtin(g, v, k).unwrap_or_else(|| panic!("{g} {k}"));
            assert!(
                defs.contains_key(&builtin_def_name(g, v, k)),
                "{} not among {:?}",
                builtin_def_name(g, v, k),
                defs.keys().collect::<Vec<_>>()
            );
        }
    }
}
