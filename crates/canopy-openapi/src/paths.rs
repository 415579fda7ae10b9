//! The REST paths and operations kube-apiserver 1.35 publishes for a resource, modelled
//! once and rendered both as OpenAPI 3.0 (`/openapi/v3/...`) and Swagger 2.0
//! (`/openapi/v2`): operation ids (`listCoreV1NamespacedConfigMap`), tags (`core_v1`),
//! `x-kubernetes-action`, `x-kubernetes-group-version-kind`, parameters, request bodies and
//! responses with the media types kube serves.

use serde_json::{json, Map, Value};

use crate::builtins::META;
use crate::ResourceInfo;

pub const APPLY_PATCH: &str = "application/apply-patch+yaml";
pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// One query or path parameter.
#[derive(Clone)]
pub(crate) struct Param {
    name: &'static str,
    location: &'static str,
    ty: &'static str,
    description: String,
    required: bool,
}

fn query(name: &'static str) -> Param {
    let (ty, description) = match name {
        "pretty" => ("string", "If 'true', then the output is pretty printed."),
        "allowWatchBookmarks" => ("boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\". Servers that do not implement bookmarks may ignore this flag and bookmarks are sent at the server's discretion. Clients should not assume bookmarks are returned at any specific interval, nor may they assume the server will send any BOOKMARK event during a session. If this is not a watch, this field is ignored."),
        "continue" => ("string", "The continue option should be set when retrieving more results from the server. Since this value is server defined, clients may only use the continue value from a previous query result with identical query parameters (except for the value of continue) and the server may reject a continue value it does not recognize."),
        "fieldSelector" => ("string", "A selector to restrict the list of returned objects by their fields. Defaults to everything."),
        "labelSelector" => ("string", "A selector to restrict the list of returned objects by their labels. Defaults to everything."),
        "limit" => ("integer", "limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata to a value that can be used with the same initial query to retrieve the next set of results."),
        "resourceVersion" => ("string", "resourceVersion sets a constraint on what resource versions a request may be served from. See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        "resourceVersionMatch" => ("string", "resourceVersionMatch determines how resourceVersion is applied to list calls. It is highly recommended that resourceVersionMatch be set for list calls where resourceVersion is set See https://kubernetes.io/docs/reference/using-api/api-concepts/#resource-versions for details.\n\nDefaults to unset"),
        "sendInitialEvents" => ("boolean", "`sendInitialEvents=true` may be set together with `watch=true`. In that case, the watch stream will begin with synthetic events to produce the current state of objects in the collection. Once all such events have been sent, a synthetic \"Bookmark\" event  will be sent."),
        "timeoutSeconds" => ("integer", "Timeout for the list/watch call. This limits the duration of the call, regardless of any activity or inactivity."),
        "watch" => ("boolean", "Watch for changes to the described resources and return them as a stream of add, update, and remove notifications. Specify resourceVersion."),
        "dryRun" => ("string", "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed"),
        "fieldManager" => ("string", "fieldManager is a name associated with the actor or entity that is making these changes. The value must be less than or 128 characters long, and only contain printable characters, as defined by https://golang.org/pkg/unicode/#IsPrint."),
        "fieldValidation" => ("string", "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore: This will ignore any unknown fields that are silently dropped from the object, and will ignore all but the last duplicate field that the decoder encounters. - Warn: This will send a warning via the standard warning response header for each unknown field that is dropped from the object, and for each duplicate field that is encountered. - Strict: This will fail the request with a BadRequest error if any unknown fields would be dropped from the object, or if any duplicate fields are present. The error returned from the server will contain all unknown and duplicate fields encountered."),
        "force" => ("boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests."),
        "gracePeriodSeconds" => ("integer", "The duration in seconds before the object should be deleted. Value must be non-negative integer. The value zero indicates delete immediately. If this value is nil, the default grace period for the specified type will be used. Defaults to a per object value if not specified. zero means delete immediately."),
        "ignoreStoreReadErrorWithClusterBreakingPotential" => ("boolean", "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow fails with a corrupt object error."),
        "orphanDependents" => ("boolean", "Deprecated: please use the PropagationPolicy, this field will be deprecated in 1.7. Should the dependent objects be orphaned. If true/false, the \"orphan\" finalizer will be added to/removed from the object's finalizers list. Either this field or PropagationPolicy may be set, but not both."),
        "propagationPolicy" => ("string", "Whether and how garbage collection will be performed. Either this field or OrphanDependents may be set, but not both. The default policy is decided by the existing finalizer set in the metadata.finalizers and the resource-specific default policy. Acceptable values are: 'Orphan' - orphan the dependents; 'Background' - allow the garbage collector to delete the dependents in the background; 'Foreground' - a cascading policy that deletes all dependents in the foreground."),
        _ => ("string", ""),
    };
    Param {
        name,
        location: "query",
        ty,
        description: description.to_string(),
        required: false,
    }
}

fn path_param(name: &'static str, description: String) -> Param {
    Param {
        name,
        location: "path",
        ty: "string",
        description,
        required: true,
    }
}

const LIST_PARAMS: &[&str] = &[
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
];
const WRITE_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation"];
const PATCH_PARAMS: &[&str] = &["dryRun", "fieldManager", "fieldValidation", "force"];
const DELETE_PARAMS: &[&str] = &[
    "dryRun",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "orphanDependents",
    "propagationPolicy",
];
const DELETECOLLECTION_PARAMS: &[&str] = &[
    "continue",
    "dryRun",
    "fieldSelector",
    "gracePeriodSeconds",
    "ignoreStoreReadErrorWithClusterBreakingPotential",
    "labelSelector",
    "limit",
    "orphanDependents",
    "propagationPolicy",
    "resourceVersion",
    "resourceVersionMatch",
    "sendInitialEvents",
    "timeoutSeconds",
];

fn params(names: &[&'static str]) -> Vec<Param> {
    names.iter().map(|n| query(n)).collect()
}

/// A response: status code, description, schema definition name.
struct Resp {
    code: &'static str,
    description: &'static str,
    def: String,
}

type Gvk = (String, String, String);

/// One operation on a path.
pub(crate) struct Op {
    method: &'static str,
    id: String,
    description: String,
    /// `x-kubernetes-action`; empty for operations on no kind (`getCoreV1APIResources`).
    action: &'static str,
    gvk: Gvk,
    params: Vec<Param>,
    /// Request body: definition name and media types.
    body: Option<(String, Vec<&'static str>)>,
    responses: Vec<Resp>,
    /// Response media types.
    produces: Vec<&'static str>,
}

/// A path with its path-level parameters and operations.
pub(crate) struct PathItem {
    pub(crate) path: String,
    params: Vec<Param>,
    ops: Vec<Op>,
}

/// kube's `ToValidOperationID`: letters (and non-leading digits) kept, other characters
/// dropped and the next letter capitalized.
fn operation_word(s: &str, capitalize_first: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut capitalize = capitalize_first;
    for (i, c) in s.chars().enumerate() {
        if c.is_alphabetic() || c == '_' || (i != 0 && c.is_ascii_digit()) {
            if capitalize {
                out.extend(c.to_uppercase());
                capitalize = false;
            } else {
                out.push(c);
            }
        } else {
            capitalize = true;
        }
    }
    out
}

fn group_word(group: &str) -> &str {
    if group.is_empty() {
        "core"
    } else {
        group.strip_suffix(".k8s.io").unwrap_or(group)
    }
}

/// The tag kube gives a group-version's operations: `core_v1`, `rbacAuthorization_v1`.
pub(crate) fn tag(group: &str, version: &str) -> String {
    format!("{}_{version}", operation_word(group_word(group), false))
}

/// `/api/v1` or `/apis/<group>/<version>`.
pub(crate) fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    }
}

fn media(protobuf: bool) -> Vec<&'static str> {
    let mut m = vec!["application/json", "application/yaml"];
    if protobuf {
        m.push("application/vnd.kubernetes.protobuf");
    }
    m
}

fn stream_media(protobuf: bool) -> Vec<&'static str> {
    let mut m = vec![
        "application/json",
        "application/json;stream=watch",
        "application/yaml",
    ];
    if protobuf {
        m.push("application/vnd.kubernetes.protobuf");
        m.push("application/vnd.kubernetes.protobuf;stream=watch");
    }
    m
}

fn ok(def: &str) -> Resp {
    Resp {
        code: "200",
        description: "OK",
        def: def.to_string(),
    }
}
fn created(def: &str) -> Resp {
    Resp {
        code: "201",
        description: "Created",
        def: def.to_string(),
    }
}
fn accepted(def: &str) -> Resp {
    Resp {
        code: "202",
        description: "Accepted",
        def: def.to_string(),
    }
}

/// The `GET /<gv>/` operation listing a group-version's resources.
pub(crate) fn resources_path(group: &str, version: &str) -> PathItem {
    PathItem {
        path: format!("{}/", gv_path(group, version)),
        params: vec![],
        ops: vec![Op {
            method: "get",
            id: format!(
                "get{}{}APIResources",
                operation_word(group_word(group), true),
                operation_word(version, true)
            ),
            description: "get available resources".into(),
            action: "",
            gvk: Gvk::default(),
            params: vec![],
            body: None,
            responses: vec![ok(&format!("{META}.APIResourceList"))],
            produces: media(true),
        }],
    }
}

/// Builds the operations of one resource.
struct OpMaker<'a> {
    info: &'a ResourceInfo,
    prefix: String,
    protobuf: bool,
}

impl OpMaker<'_> {
    #[allow(clippy::too_many_arguments)]
    fn op(
        &self,
        method: &'static str,
        verb: &str,
        suffix: &str,
        action: &'static str,
        description: String,
        params: Vec<Param>,
        body: Option<(String, Vec<&'static str>)>,
        responses: Vec<Resp>,
        stream: bool,
    ) -> Op {
        Op {
            method,
            id: format!("{verb}{}{suffix}", self.prefix),
            description,
            action,
            gvk: (
                self.info.group.clone(),
                self.info.version.clone(),
                self.info.kind.clone(),
            ),
            params,
            body,
            responses,
            produces: if stream {
                stream_media(self.protobuf)
            } else {
                media(self.protobuf)
            },
        }
    }
}

/// Every path and operation kube publishes for `info`, whose kind is definition `def`.
/// `protobuf`: whether the resource is served as protobuf (built-ins are, custom
/// resources are not).
pub(crate) fn resource_paths(info: &ResourceInfo, def: &str, protobuf: bool) -> Vec<PathItem> {
    let has = |v: &str| info.verbs.iter().any(|x| x == v);
    let m = OpMaker {
        info,
        prefix: format!(
            "{}{}",
            operation_word(group_word(&info.group), true),
            operation_word(&info.version, true)
        ),
        protobuf,
    };
    let base = gv_path(&info.group, &info.version);
    let ns = if info.namespaced { "Namespaced" } else { "" };
    let kind = &info.kind;
    let list_def = format!("{def}List");
    let status = format!("{META}.Status");
    let watch_event = format!("{META}.WatchEvent");
    let patch_def = format!("{META}.Patch");
    let delete_options = format!("{META}.DeleteOptions");
    let json_only = || vec!["application/json"];
    let (collection, watch_collection) = if info.namespaced {
        (
            format!("{base}/namespaces/{{namespace}}/{}", info.plural),
            format!("{base}/watch/namespaces/{{namespace}}/{}", info.plural),
        )
    } else {
        (
            format!("{base}/{}", info.plural),
            format!("{base}/watch/{}", info.plural),
        )
    };
    let item = format!("{collection}/{{name}}");
    let namespace_param = || {
        path_param(
            "namespace",
            "object name and auth scope, such as for teams and projects".into(),
        )
    };
    let name_param = || path_param("name", format!("name of the {kind}"));
    let ns_params = || {
        if info.namespaced {
            vec![namespace_param()]
        } else {
            vec![]
        }
    };
    let scope_params = || {
        let mut p = ns_params();
        p.push(query("pretty"));
        p
    };
    let item_params = || {
        let mut p = vec![name_param()];
        p.extend(ns_params());
        p.push(query("pretty"));
        p
    };
    let mut patch_types = vec![APPLY_PATCH, JSON_PATCH, MERGE_PATCH];
    if info.strategic_merge_patch {
        patch_types.push(STRATEGIC_MERGE_PATCH);
    }
    let mut out = Vec::new();

    // The collection: list, create, deletecollection.
    let mut ops = Vec::new();
    if has("list") {
        ops.push(m.op(
            "get",
            "list",
            &format!("{ns}{kind}"),
            "list",
            format!("list or watch objects of kind {kind}"),
            params(LIST_PARAMS),
            None,
            vec![ok(&list_def)],
            true,
        ));
    }
    if has("create") {
        let mut responses = vec![ok(def), created(def), accepted(def)];
        if info.verbs.len() == 1 {
            // Review kinds are create-only and answer 200 or 201.
            responses.truncate(2);
        }
        ops.push(m.op(
            "post",
            "create",
            &format!("{ns}{kind}"),
            "post",
            format!("create a {kind}"),
            params(WRITE_PARAMS),
            Some((def.to_string(), json_only())),
            responses,
            false,
        ));
    }
    if has("deletecollection") {
        ops.push(m.op(
            "delete",
            "delete",
            &format!("Collection{ns}{kind}"),
            "deletecollection",
            format!("delete collection of {kind}"),
            params(DELETECOLLECTION_PARAMS),
            Some((delete_options.clone(), json_only())),
            vec![ok(&status)],
            false,
        ));
    }
    if !ops.is_empty() {
        out.push(PathItem {
            path: collection.clone(),
            params: scope_params(),
            ops,
        });
    }

    // The object: read, replace, patch, delete.
    let suffix = format!("{ns}{kind}");
    let mut ops = Vec::new();
    if has("get") {
        ops.push(m.op(
            "get",
            "read",
            &suffix,
            "get",
            format!("read the specified {kind}"),
            vec![],
            None,
            vec![ok(def)],
            false,
        ));
    }
    if has("update") {
        ops.push(m.op(
            "put",
            "replace",
            &suffix,
            "put",
            format!("replace the specified {kind}"),
            params(WRITE_PARAMS),
            Some((def.to_string(), json_only())),
            vec![ok(def), created(def)],
            false,
        ));
    }
    if has("patch") {
        ops.push(m.op(
            "patch",
            "patch",
            &suffix,
            "patch",
            format!("partially update the specified {kind}"),
            params(PATCH_PARAMS),
            Some((patch_def.clone(), patch_types.clone())),
            vec![ok(def), created(def)],
            false,
        ));
    }
    if has("delete") {
        ops.push(m.op(
            "delete",
            "delete",
            &suffix,
            "delete",
            format!("delete a {kind}"),
            params(DELETE_PARAMS),
            Some((delete_options.clone(), json_only())),
            vec![ok(&status), accepted(&status)],
            false,
        ));
    }
    if !ops.is_empty() {
        out.push(PathItem {
            path: item.clone(),
            params: item_params(),
            ops,
        });
    }

    // Namespaced kinds listed across all namespaces.
    if info.namespaced && has("list") {
        let mut p = params(LIST_PARAMS);
        p.push(query("pretty"));
        out.push(PathItem {
            path: format!("{base}/{}", info.plural),
            params: p,
            ops: vec![m.op(
                "get",
                "list",
                &format!("{kind}ForAllNamespaces"),
                "list",
                format!("list or watch objects of kind {kind}"),
                vec![],
                None,
                vec![ok(&list_def)],
                true,
            )],
        });
    }

    // The deprecated watch paths, still published by kube.
    if has("watch") {
        let with_watch_params = |mut front: Vec<Param>| {
            front.extend(params(LIST_PARAMS));
            front.push(query("pretty"));
            front
        };
        out.push(PathItem {
            path: watch_collection.clone(),
            params: with_watch_params(ns_params()),
            ops: vec![m.op(
                "get",
                "watch",
                &format!("{ns}{kind}List"),
                "watchlist",
                format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                vec![],
                None,
                vec![ok(&watch_event)],
                true,
            )],
        });
        let mut front = vec![name_param()];
        front.extend(ns_params());
        out.push(PathItem {
            path: format!("{watch_collection}/{{name}}"),
            params: with_watch_params(front),
            ops: vec![m.op(
                "get",
                "watch",
                &suffix,
                "watch",
                format!("watch changes to an object of kind {kind}. deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
                vec![],
                None,
                vec![ok(&watch_event)],
                true,
            )],
        });
        if info.namespaced && has("list") {
            out.push(PathItem {
                path: format!("{base}/watch/{}", info.plural),
                params: with_watch_params(vec![]),
                ops: vec![m.op(
                    "get",
                    "watch",
                    &format!("{kind}ListForAllNamespaces"),
                    "watchlist",
                    format!("watch individual changes to a list of {kind}. deprecated: use the 'watch' parameter with a list operation instead."),
                    vec![],
                    None,
                    vec![ok(&watch_event)],
                    true,
                )],
            });
        }
    }

    // Subresources.
    for sub in &info.subresources {
        match sub.as_str() {
            "status" | "scale" => {
                let (word, body_def) = if sub == "status" {
                    ("Status", def.to_string())
                } else {
                    ("Scale", "io.k8s.api.autoscaling.v1.Scale".to_string())
                };
                let suffix = format!("{ns}{kind}{word}");
                let mut ops = vec![
                    m.op(
                        "get",
                        "read",
                        &suffix,
                        "get",
                        format!("read {sub} of the specified {kind}"),
                        vec![],
                        None,
                        vec![ok(&body_def)],
                        false,
                    ),
                    m.op(
                        "put",
                        "replace",
                        &suffix,
                        "put",
                        format!("replace {sub} of the specified {kind}"),
                        params(WRITE_PARAMS),
                        Some((body_def.clone(), json_only())),
                        vec![ok(&body_def), created(&body_def)],
                        false,
                    ),
                    m.op(
                        "patch",
                        "patch",
                        &suffix,
                        "patch",
                        format!("partially update {sub} of the specified {kind}"),
                        params(PATCH_PARAMS),
                        Some((patch_def.clone(), patch_types.clone())),
                        vec![ok(&body_def), created(&body_def)],
                        false,
                    ),
                ];
                if sub == "scale" {
                    for o in &mut ops {
                        o.gvk = ("autoscaling".into(), "v1".into(), "Scale".into());
                    }
                }
                out.push(PathItem {
                    path: format!("{item}/{sub}"),
                    params: item_params(),
                    ops,
                });
            }
            "finalize" => out.push(PathItem {
                path: format!("{item}/finalize"),
                params: item_params(),
                ops: vec![m.op(
                    "put",
                    "replace",
                    &format!("{ns}{kind}Finalize"),
                    "put",
                    format!("replace finalize of the specified {kind}"),
                    params(WRITE_PARAMS),
                    Some((def.to_string(), json_only())),
                    vec![ok(def), created(def)],
                    false,
                )],
            }),
            _ => {}
        }
    }
    out
}

fn v3_ref(def: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{def}")})
}

fn v2_ref(def: &str) -> Value {
    json!({"$ref": format!("#/definitions/{def}")})
}

fn param_json(p: &Param, v3: bool) -> Value {
    let mut m = Map::new();
    if !p.description.is_empty() {
        m.insert("description".into(), json!(p.description));
    }
    m.insert("in".into(), json!(p.location));
    m.insert("name".into(), json!(p.name));
    if p.required {
        m.insert("required".into(), json!(true));
    }
    if v3 {
        m.insert("schema".into(), json!({"type": p.ty, "uniqueItems": true}));
    } else {
        m.insert("type".into(), json!(p.ty));
        m.insert("uniqueItems".into(), json!(true));
    }
    Value::Object(m)
}

fn gvk_ext(gvk: &Gvk) -> Value {
    json!({"group": gvk.0, "kind": gvk.2, "version": gvk.1})
}

impl PathItem {
    /// Definitions the operations refer to.
    pub(crate) fn refs(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().flat_map(|o| {
            o.responses
                .iter()
                .map(|r| r.def.as_str())
                .chain(o.body.iter().map(|b| b.0.as_str()))
        })
    }

    /// The path item in OpenAPI 3.0 form.
    pub(crate) fn to_v3(&self, tag: &str) -> Value {
        let mut item = Map::new();
        for o in &self.ops {
            let mut m = Map::new();
            m.insert("description".into(), json!(o.description));
            m.insert("operationId".into(), json!(o.id));
            if !o.params.is_empty() {
                m.insert(
                    "parameters".into(),
                    Value::Array(o.params.iter().map(|p| param_json(p, true)).collect()),
                );
            }
            if let Some((def, types)) = &o.body {
                let content: Map<String, Value> = types
                    .iter()
                    .map(|t| (t.to_string(), json!({"schema": v3_ref(def)})))
                    .collect();
                let mut body = Map::new();
                body.insert("content".into(), Value::Object(content));
                if o.method != "delete" {
                    body.insert("required".into(), json!(true));
                }
                m.insert("requestBody".into(), Value::Object(body));
            }
            let mut responses = Map::new();
            for r in &o.responses {
                let content: Map<String, Value> = o
                    .produces
                    .iter()
                    .map(|t| (t.to_string(), json!({"schema": v3_ref(&r.def)})))
                    .collect();
                responses.insert(
                    r.code.into(),
                    json!({"content": content, "description": r.description}),
                );
            }
            m.insert("responses".into(), Value::Object(responses));
            m.insert("tags".into(), json!([tag]));
            if !o.action.is_empty() {
                m.insert("x-kubernetes-action".into(), json!(o.action));
                m.insert("x-kubernetes-group-version-kind".into(), gvk_ext(&o.gvk));
            }
            item.insert(o.method.into(), Value::Object(m));
        }
        if !self.params.is_empty() {
            item.insert(
                "parameters".into(),
                Value::Array(self.params.iter().map(|p| param_json(p, true)).collect()),
            );
        }
        Value::Object(item)
    }

    /// The path item in Swagger 2.0 form.
    pub(crate) fn to_v2(&self, tag: &str) -> Value {
        let mut item = Map::new();
        for o in &self.ops {
            let mut m = Map::new();
            let consumes: Vec<&str> = match &o.body {
                Some((_, types)) if o.method == "patch" => types.clone(),
                _ => vec!["*/*"],
            };
            m.insert("consumes".into(), json!(consumes));
            m.insert("description".into(), json!(o.description));
            m.insert("operationId".into(), json!(o.id));
            let mut params: Vec<Value> = Vec::new();
            if let Some((def, _)) = &o.body {
                let mut b = Map::new();
                b.insert("in".into(), json!("body"));
                b.insert("name".into(), json!("body"));
                if o.method != "delete" {
                    b.insert("required".into(), json!(true));
                }
                b.insert("schema".into(), v2_ref(def));
                params.push(Value::Object(b));
            }
            params.extend(o.params.iter().map(|p| param_json(p, false)));
            if !params.is_empty() {
                m.insert("parameters".into(), Value::Array(params));
            }
            m.insert("produces".into(), json!(o.produces));
            let mut responses = Map::new();
            for r in &o.responses {
                responses.insert(
                    r.code.into(),
                    json!({"description": r.description, "schema": v2_ref(&r.def)}),
                );
            }
            m.insert("responses".into(), Value::Object(responses));
            m.insert("schemes".into(), json!(["https"]));
            m.insert("tags".into(), json!([tag]));
            if !o.action.is_empty() {
                m.insert("x-kubernetes-action".into(), json!(o.action));
                m.insert("x-kubernetes-group-version-kind".into(), gvk_ext(&o.gvk));
            }
            item.insert(o.method.into(), Value::Object(m));
        }
        if !self.params.is_empty() {
            item.insert(
                "parameters".into(),
                Value::Array(self.params.iter().map(|p| param_json(p, false)).collect()),
            );
        }
        Value::Object(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_words_as_kube() {
        assert_eq!(tag("", "v1"), "core_v1");
        assert_eq!(
            tag("rbac.authorization.k8s.io", "v1"),
            "rbacAuthorization_v1"
        );
        assert_eq!(tag("cert-manager.io", "v1"), "certManagerIo_v1");
        assert_eq!(
            operation_word(group_word("stable.example.com"), true),
            "StableExampleCom"
        );
        assert_eq!(operation_word("v1beta1", true), "V1beta1");
        assert_eq!(operation_word("", true), "");
    }
}
