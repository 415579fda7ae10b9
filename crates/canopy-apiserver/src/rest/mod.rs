//! The generic REST store: every verb of every stored resource, parameterized by the
//! resource's descriptor and [`Strategy`](crate::registry::Strategy).
//!
//! Writes follow kube's `GuaranteedUpdate`: read the latest object from the watch cache,
//! compute the new object (patch, strategy, validation) outside the store's writer, and
//! commit with the read resourceVersion as precondition; on a conflict the computation
//! is retried unless the client pinned a resourceVersion itself.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use canopy_core::{meta, ApiError, Cause, Subject};
use canopy_storage::{ListOptions, Mutation, ObjectKey, StorageError, StoredObject};
use http::{header, Response};
use serde_json::{json, Value};

use crate::codec::{self, Form};
use crate::pipeline::Ctx;
use crate::registry::{invalid_if_any, table, Resource};
use crate::response::{self, Body};
use crate::ApiServer;

const MAX_CONFLICT_RETRIES: usize = 16;

pub async fn dispatch(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let sub = ctx.info.subresource.as_str();
    if !sub.is_empty() && !res.desc.has_subresource(sub) {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    let verb = ctx.info.verb.as_str();
    let subject = Subject {
        group: &res.desc.group,
        resource: &res.desc.plural,
        name: &ctx.info.name,
    };
    let allowed = match sub {
        "" => res.desc.supports(verb),
        "status" | "scale" => matches!(verb, "get" | "update" | "patch"),
        "finalize" => verb == "update",
        _ => false,
    };
    if !allowed {
        return Err(ApiError::method_not_supported(subject, verb));
    }
    if ctx.cluster.is_none() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::bad_request(format!(
            "{verb} requires a logical cluster: use /clusters/<name>/..."
        )));
    }
    if res.desc.namespaced && ctx.info.namespace.is_empty() && !matches!(verb, "list" | "watch") {
        return Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        ));
    }
    check_dry_run(ctx)?;
    if sub == "scale" {
        return crate::scale::serve(api, ctx, res, &body).await;
    }
    match verb {
        "get" => get(api, ctx, res),
        "list" => list(api, ctx, res),
        "watch" => crate::watch::serve(api, ctx, res),
        "create" => create(api, ctx, res, &body).await,
        "update" => update(api, ctx, res, &body).await,
        "patch" => patch(api, ctx, res, &body).await,
        "delete" => delete(api, ctx, res, &body).await,
        "deletecollection" => delete_collection(api, ctx, res, &body).await,
        _ => Err(ApiError::method_not_supported(subject, verb)),
    }
}

/// How large a YAML or protobuf body may grow when decoded.
pub fn max_decoded(api: &ApiServer) -> usize {
    api.inner.config.limits.max_decoded_bytes()
}

fn check_dry_run(ctx: &Ctx) -> Result<(), ApiError> {
    match ctx.query.get("dryRun").map(String::as_str) {
        None | Some("") | Some("All") => Ok(()),
        Some(other) => Err(ApiError::bad_request(format!(
            "Invalid dryRun value: {other:?}: supported values: \"All\""
        ))),
    }
}

fn dry_run(ctx: &Ctx) -> bool {
    ctx.q("dryRun") == Some("All")
}

pub fn subject<'a>(res: &'a Resource, name: &'a str) -> Subject<'a> {
    Subject {
        group: &res.desc.group,
        resource: &res.desc.plural,
        name,
    }
}

pub fn key_for(res: &Resource, cluster: &str, namespace: &str, name: &str) -> ObjectKey {
    let ns = if res.desc.namespaced { namespace } else { "" };
    ObjectKey::new(&res.desc.storage_key(), cluster, ns, name)
}

fn ctx_key(ctx: &Ctx, res: &Resource) -> ObjectKey {
    key_for(
        res,
        ctx.cluster.as_deref().unwrap_or(""),
        &ctx.info.namespace,
        &ctx.info.name,
    )
}

/// Maps storage failures to kube errors.
pub fn storage_error(res: &Resource, name: &str, e: StorageError) -> ApiError {
    match e {
        StorageError::AlreadyExists(_) => ApiError::already_exists(subject(res, name)),
        StorageError::NotFound(_) => ApiError::not_found(subject(res, name)),
        StorageError::Conflict { .. } => ApiError::stale(subject(res, name)),
        StorageError::Expired { requested, oldest } => {
            ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
        }
        e @ StorageError::WatcherBehind { .. } => ApiError::expired(e.to_string()),
        StorageError::TooNew { requested, current } => ApiError::timeout(format!(
            "Too large resource version: {requested}, current: {current}"
        ))
        .with_causes(vec![Cause::new(
            "ResourceVersionTooLarge",
            "",
            "Too large resource version",
        )])
        .with_retry_after(1),
        StorageError::TooLarge { size, limit, .. } => object_too_large(res, name, size, limit),
        StorageError::InvalidObject(m) => ApiError::internal(m),
        StorageError::Unavailable(m) | StorageError::Config(m) => {
            tracing::error!(error = %m, "storage failure");
            ApiError::service_unavailable("storage is unavailable, try again", 1)
        }
    }
}

/// 413 for an object that would be stored larger than the limit (etcd answers such a
/// write with "etcdserver: request is too large", which kube-apiserver passes on as a
/// 500; the client's request is what is wrong, so Canopy answers as for a body over the
/// limit).
fn object_too_large(res: &Resource, name: &str, size: usize, limit: usize) -> ApiError {
    let s = subject(res, name);
    ApiError::too_large(format!(
        "Request entity too large: {} {:?} would be {size} bytes when stored, limit is {limit}",
        s.qualified(),
        s.name
    ))
}

/// Dry runs never reach the store: they are held to its size limit here.
fn check_dry_run_size(api: &ApiServer, res: &Resource, obj: &Value) -> Result<(), ApiError> {
    let limit = api.inner.config.limits.max_object_bytes;
    let size = codec::json_size(obj);
    if limit > 0 && size > limit {
        return Err(object_too_large(res, meta::name(obj), size, limit));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Reads

/// The current object `name` as this resource's version sees it.
pub fn current_view(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    name: &str,
) -> Result<Value, ApiError> {
    let obj = api
        .inner
        .store
        .get(&ctx_key_named(ctx, res, name))
        .ok_or_else(|| ApiError::not_found(subject(res, name)))?;
    Ok(res
        .strategy
        .from_storage(&obj.value)
        .unwrap_or_else(|| obj.value.clone()))
}

fn get(api: &ApiServer, ctx: &Ctx, res: &Resource) -> Result<Response<Body>, ApiError> {
    let key = ctx_key(ctx, res);
    let obj = api
        .inner
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(subject(res, &ctx.info.name)))?;
    respond_object(ctx, res, 200, &obj)
}

/// Writes one object in the form the client asked for.
pub fn respond_object(
    ctx: &Ctx,
    res: &Resource,
    code: u16,
    obj: &StoredObject,
) -> Result<Response<Body>, ApiError> {
    match res.strategy.from_storage(&obj.value) {
        Some(v) => respond_value(ctx, res, code, &v, None),
        None => respond_value(ctx, res, code, &obj.value, Some(&obj.json)),
    }
}

fn respond_value(
    ctx: &Ctx,
    res: &Resource,
    code: u16,
    value: &Value,
    raw: Option<&Bytes>,
) -> Result<Response<Body>, ApiError> {
    match codec::negotiate(ctx.header(header::ACCEPT))? {
        Form::Json => Ok(match raw {
            Some(b) => response::raw_json(code, b.clone()),
            None => response::json(code, value),
        }),
        Form::Table => {
            let cols = res.strategy.columns();
            let meta = json!({"resourceVersion": value.pointer("/metadata/resourceVersion").cloned().unwrap_or(json!(""))});
            Ok(response::json(
                code,
                &table::table(&[value], &cols, meta, include_object(ctx), true),
            ))
        }
        Form::PartialObjectMetadata | Form::PartialObjectMetadataList => {
            Ok(response::json(code, &table::partial_metadata(value)))
        }
    }
}

fn include_object(ctx: &Ctx) -> &str {
    ctx.q("includeObject").unwrap_or("Metadata")
}

/// Label and field selectors of a list or watch, checked against what the resource supports.
pub struct Selectors {
    pub labels: canopy_selectors::label::Selector,
    pub fields: canopy_selectors::field::Selector,
}

impl Selectors {
    pub fn from_ctx(ctx: &Ctx, res: &Resource) -> Result<Selectors, ApiError> {
        let labels =
            canopy_selectors::label::parse(ctx.q("labelSelector").unwrap_or("")).map_err(|e| {
                ApiError::bad_request(format!("unable to parse requirement: {e}"))
                    .with_reason_invalid_selector()
            })?;
        let fields = canopy_selectors::field::parse(ctx.q("fieldSelector").unwrap_or(""))
            .map_err(|e| ApiError::bad_request(format!("invalid field selector: {e}")))?;
        let extra = res.strategy.selectable_fields();
        let mut allowed: Vec<&str> = vec!["metadata.name", "metadata.namespace"];
        allowed.extend(extra.iter().map(String::as_str));
        fields
            .check_supported(&allowed)
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(Selectors { labels, fields })
    }

    pub fn matches(&self, res: &Resource, obj: &Value) -> bool {
        if let Some(v) = res.strategy.from_storage(obj) {
            return self.matches_served(res, &v);
        }
        self.matches_served(res, obj)
    }

    fn matches_served(&self, res: &Resource, obj: &Value) -> bool {
        if !self.labels.is_empty() && !self.labels.matches(meta::labels(obj)) {
            return false;
        }
        if !self.fields.is_empty() {
            let ok = self.fields.matches(|f| match f {
                "metadata.name" => Some(meta::name(obj).to_string()),
                "metadata.namespace" => Some(meta::namespace(obj).to_string()),
                other => res.strategy.field_value(obj, other),
            });
            if !ok {
                return false;
            }
        }
        true
    }
}

trait InvalidSelector {
    fn with_reason_invalid_selector(self) -> Self;
}
impl InvalidSelector for ApiError {
    fn with_reason_invalid_selector(self) -> Self {
        self
    }
}

fn list(api: &ApiServer, ctx: &Ctx, res: &Resource) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::from_ctx(ctx, res)?;
    let limit: usize = match ctx.q("limit") {
        Some(l) => l
            .parse::<i64>()
            .map(|v| v.max(0) as usize)
            .map_err(|_| ApiError::bad_request(format!("invalid limit {l:?}")))?,
        None => 0,
    };
    validate_list_rv(ctx)?;
    let store = &api.inner.store;
    let storage_key = res.desc.storage_key();
    let scope = crate::continue_token::Scope {
        cluster: ctx.cluster.as_deref(),
        resource: &storage_key,
        namespace: &ctx.info.namespace,
    };
    let (continue_after, list_rv) = match ctx.q("continue") {
        Some(tok) => {
            if ctx.q("resourceVersion").is_some_and(|v| v != "0") {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (rv, start) = api.inner.continue_keys.decode(&scope, tok)?;
            if rv < store.oldest_rv() {
                return Err(ApiError::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue value from the response.")
                    .with_reason_expired_continue());
            }
            (Some(start), Some(rv))
        }
        None => (None, None),
    };
    let name_pin = sel.fields.exact_match("metadata.name").map(str::to_string);
    let ns_pin = sel
        .fields
        .exact_match("metadata.namespace")
        .map(str::to_string);
    let namespace = if res.desc.namespaced {
        if ctx.info.namespace.is_empty() {
            ns_pin.as_deref()
        } else {
            Some(ctx.info.namespace.as_str())
        }
    } else {
        None
    };
    let filter = |o: &StoredObject| sel.matches(res, &o.value);
    let opts = ListOptions {
        resource: &storage_key,
        cluster: ctx.cluster.as_deref(),
        namespace,
        name: name_pin.as_deref(),
        continue_after: continue_after.as_deref(),
        limit,
        filter: &filter,
    };
    let result = store.list(&opts).map_err(|e| storage_error(res, "", e))?;
    let rv = list_rv.unwrap_or(result.rv);
    let cont = result
        .continue_key
        .as_deref()
        .map(|k| api.inner.continue_keys.encode(&scope, rv, k));
    let mut list_meta = serde_json::Map::new();
    list_meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if let Some(c) = &cont {
        list_meta.insert("continue".into(), json!(c));
    }
    let list_meta = Value::Object(list_meta);
    // Items stored in another version than the one served (shared storage) are
    // converted; the raw stored JSON is used only when none needs it.
    let converted: Option<Vec<Value>> = result
        .items
        .iter()
        .any(|o| res.strategy.from_storage(&o.value).is_some())
        .then(|| {
            result
                .items
                .iter()
                .map(|o| {
                    res.strategy
                        .from_storage(&o.value)
                        .unwrap_or_else(|| o.value.clone())
                })
                .collect()
        });
    if let Some(items) = &converted {
        if codec::negotiate(ctx.header(header::ACCEPT))? == Form::Json {
            return Ok(response::json(
                200,
                &json!({
                    "kind": res.desc.list_kind,
                    "apiVersion": res.desc.api_version(),
                    "metadata": list_meta,
                    "items": items,
                }),
            ));
        }
    }
    let views: Vec<&Value> = match &converted {
        Some(items) => items.iter().collect(),
        None => result.items.iter().map(|o| &o.value).collect(),
    };
    match codec::negotiate(ctx.header(header::ACCEPT))? {
        Form::Json => {
            // Assemble from the stored bytes: no per-object re-serialization.
            let head = json!({
                "kind": res.desc.list_kind,
                "apiVersion": res.desc.api_version(),
                "metadata": list_meta,
            });
            let head = serde_json::to_vec(&head).map_err(|e| ApiError::internal(e.to_string()))?;
            let size: usize = result.items.iter().map(|o| o.json.len() + 1).sum();
            let mut buf = BytesMut::with_capacity(head.len() + size + 16);
            // the head without its closing brace
            buf.put_slice(head.split_last().map_or(&[][..], |(_, h)| h));
            buf.put_slice(b",\"items\":[");
            for (i, o) in result.items.iter().enumerate() {
                if i > 0 {
                    buf.put_u8(b',');
                }
                buf.put_slice(&o.json);
            }
            buf.put_slice(b"]}");
            Ok(response::raw_json(200, buf.freeze()))
        }
        Form::Table => {
            let cols = res.strategy.columns();
            let values: Vec<&Value> = views.clone();
            Ok(response::json(
                200,
                &table::table(&values, &cols, list_meta, include_object(ctx), true),
            ))
        }
        Form::PartialObjectMetadata | Form::PartialObjectMetadataList => {
            let items: Vec<Value> = views.iter().map(|v| table::partial_metadata(v)).collect();
            Ok(response::json(
                200,
                &json!({
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": list_meta,
                    "items": items,
                }),
            ))
        }
    }
}

trait ExpiredContinue {
    fn with_reason_expired_continue(self) -> Self;
}
impl ExpiredContinue for ApiError {
    fn with_reason_expired_continue(mut self) -> Self {
        self.causes = vec![Cause::new(
            "ResourceVersionTooOld",
            "",
            "continue token expired",
        )];
        self
    }
}

/// `resourceVersion` / `resourceVersionMatch` rules of kube for lists.
fn validate_list_rv(ctx: &Ctx) -> Result<(), ApiError> {
    let rv = ctx.q("resourceVersion");
    if let Some(v) = rv {
        if v.parse::<u64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "invalid resource version {v:?}"
            )));
        }
    }
    match ctx.q("resourceVersionMatch") {
        None => Ok(()),
        Some("NotOlderThan") | Some("Exact") if rv.is_none() => Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![Cause::forbidden(
                "resourceVersionMatch",
                "resourceVersionMatch is forbidden unless resourceVersion is provided",
            )],
        )),
        Some("NotOlderThan") => Ok(()),
        Some("Exact") => {
            if rv == Some("0") {
                return Err(ApiError::invalid(
                    "ListOptions",
                    "meta.k8s.io",
                    "",
                    vec![Cause::forbidden(
                        "resourceVersionMatch",
                        "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                    )],
                ));
            }
            Ok(())
        }
        Some(other) => Err(ApiError::invalid(
            "ListOptions",
            "meta.k8s.io",
            "",
            vec![Cause::not_supported(
                "resourceVersionMatch",
                &json!(other),
                &["Exact", "NotOlderThan", ""],
            )],
        )),
    }
}

// ---------------------------------------------------------------------------------------
// Writes

/// Decodes a body into an object of this resource, canonicalized; returns warnings for
/// dropped fields (or fails with `fieldValidation=Strict`).
fn decode_object(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<(Value, Vec<String>), ApiError> {
    let mut obj = codec::decode_body(ctx.header(header::CONTENT_TYPE), body, max_decoded(api))?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    check_type(res, &mut obj)?;
    let is_json = ctx
        .header(header::CONTENT_TYPE)
        .is_none_or(|c| c.trim_start().starts_with("application/json"));
    let duplicates = if is_json {
        codec::duplicate_fields(body)
    } else {
        Vec::new()
    };
    let (obj, dropped) = res.strategy.canonicalize(obj)?;
    let warnings = field_validation(ctx, &dropped, &duplicates)?;
    Ok((obj, warnings))
}

/// Checks (or fills in) apiVersion and kind.
fn check_type(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    let want_av = res.desc.api_version();
    // a patch may turn the whole object into something else
    let Value::Object(fields) = obj else {
        return Err(ApiError::bad_request(format!(
            "the object must be a JSON object, not {}",
            meta::json_type(obj)
        )));
    };
    for f in ["apiVersion", "kind"] {
        if let Some(v) = fields.get(f).filter(|v| !v.is_null() && !v.is_string()) {
            return Err(ApiError::bad_request(format!(
                "error decoding request body: {f}: expected a string, found {}",
                meta::json_type(v)
            )));
        }
    }
    let av = fields
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let kind = fields
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if av.is_empty() {
        fields.insert("apiVersion".into(), json!(want_av));
    } else if av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if kind.is_empty() {
        fields.insert("kind".into(), json!(res.desc.kind));
    } else if kind != res.desc.kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({})",
            res.desc.kind
        )));
    }
    match fields.get("metadata") {
        None | Some(Value::Null) => {
            fields.insert("metadata".into(), json!({}));
        }
        Some(m) => {
            // every field of ObjectMeta has its type, whatever the kind (as kube's
            // decoder requires): labels a map of strings, finalizers a list, ...
            use serde::Deserialize;
            if let Err(e) =
                k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta::deserialize(m)
            {
                return Err(ApiError::bad_request(format!(
                    "{kind} in version {:?} cannot be handled as a {kind}: metadata: {e}",
                    res.desc.version,
                    kind = res.desc.kind
                )));
            }
        }
    }
    Ok(())
}

fn field_validation(
    ctx: &Ctx,
    dropped: &[String],
    duplicates: &[String],
) -> Result<Vec<String>, ApiError> {
    if dropped.is_empty() && duplicates.is_empty() {
        return Ok(Vec::new());
    }
    let msgs: Vec<String> = duplicates
        .iter()
        .map(|f| format!("duplicate field {f:?}"))
        .chain(dropped.iter().map(|f| format!("unknown field {f:?}")))
        .collect();
    match ctx.q("fieldValidation").unwrap_or("Warn") {
        "Strict" => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            msgs.join(", ")
        ))),
        "Ignore" => Ok(Vec::new()),
        "Warn" => Ok(msgs),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of \"Ignore\", \"Warn\" or \"Strict\", got {other:?}"
        ))),
    }
}

/// Checks that a namespaced object may be created in its namespace.
fn check_namespace(api: &ApiServer, ctx: &Ctx, res: &Resource, ns: &str) -> Result<(), ApiError> {
    if !res.desc.namespaced {
        return Ok(());
    }
    let cluster = ctx.cluster.as_deref().unwrap_or("");
    match api.inner.store.get(&ObjectKey::new("/namespaces", cluster, "", ns)) {
        None => Err(ApiError::not_found(Subject { group: "", resource: "namespaces", name: ns })),
        Some(n) if meta::is_deleting(&n.value) => Err(ApiError::forbidden_message(format!(
            "{} {:?} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
            res.desc.qualified(),
            ctx.info.name
        ))
        .with_causes(vec![Cause::new("NamespaceTerminating", "metadata.namespace", format!("namespace {ns} is being terminated"))])),
        Some(_) => Ok(()),
    }
}

const GENERATE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// kube's `SimpleNameGenerator`: the base cut to 58 bytes (at a character boundary, so
/// a multi-byte character there is dropped whole; validation then judges the name)
/// and 5 random characters.
fn generate_name(base: &str) -> String {
    use rand::seq::IndexedRandom;
    let mut end = base.len().min(MAX_GENERATED_BASE);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    let base = base.get(..end).unwrap_or_default();
    let mut rng = rand::rng();
    let suffix: String = (0..5)
        .filter_map(|_| GENERATE_ALPHABET.choose(&mut rng).map(|b| char::from(*b)))
        .collect();
    format!("{base}{suffix}")
}

const MAX_GENERATED_BASE: usize = 58;

fn validate_all(res: &Resource, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    canopy_core::validation::validate_object_meta(
        obj.get("metadata").unwrap_or(&Value::Null),
        res.desc.name_rule,
        res.desc.namespaced,
        &mut causes,
    );
    res.strategy.validate_object(obj, old, &mut causes);
    invalid_if_any(&res.desc, meta::name(obj), causes)
}

/// Sets the system-owned metadata of a new object.
fn prepare_new(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    let m = meta::metadata_mut(obj);
    m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    m.insert("creationTimestamp".into(), json!(meta::now()));
    m.remove("deletionTimestamp");
    m.remove("deletionGracePeriodSeconds");
    m.remove("resourceVersion");
    m.remove("selfLink");
    if res.strategy.tracks_generation() {
        m.insert("generation".into(), json!(1));
    } else {
        m.remove("generation");
    }
    res.strategy.prepare_for_create(obj)
}

async fn create(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (mut obj, warnings) = decode_object(api, ctx, res, body)?;
    let ns = ctx.info.namespace.clone();
    if res.desc.namespaced {
        let body_ns = meta::namespace(&obj).to_string();
        if !body_ns.is_empty() && body_ns != ns {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        meta::set_meta(&mut obj, "namespace", json!(ns));
    } else if !meta::namespace(&obj).is_empty() {
        meta::remove_meta(&mut obj, "namespace");
    }
    if !meta::meta_str(&obj, "resourceVersion")
        .unwrap_or("")
        .is_empty()
    {
        return Err(ApiError::bad_request(
            "resourceVersion should not be set on objects to be created",
        ));
    }
    admit(api, ctx, res, &mut obj)?;
    let stored = create_object(api, ctx, res, obj).await?;
    let resp = match stored {
        Created::Stored(o) => respond_object(ctx, res, 201, &o)?,
        Created::DryRun(v) => respond_value(ctx, res, 201, &v, None)?,
    };
    Ok(response::with_warnings(resp, &warnings))
}

/// Runs the validating admission chain ([`crate::admission`]) on a user's write.
fn validate_admission(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    op: crate::admission::Operation<'_>,
) -> Result<(), ApiError> {
    crate::admission::validate(
        &api.inner.plugins.validating,
        &crate::admission::Request {
            user: &ctx.user,
            store: &api.inner.store,
            cluster: ctx.cluster.as_deref().unwrap_or(""),
            resource: res,
            subresource: &ctx.info.subresource,
            namespace: &ctx.info.namespace,
            op,
        },
    )
}

/// Runs the admission chain, then the resource's own admission, for a user's create
/// request.
fn admit(api: &ApiServer, ctx: &Ctx, res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
    validate_admission(api, ctx, res, crate::admission::Operation::Create(obj))?;
    let actx = crate::registry::AdmissionContext {
        user: &ctx.user,
        store: &api.inner.store,
        api,
        cluster: ctx.cluster.as_deref().unwrap_or(""),
    };
    res.strategy.admit(obj, &actx)
}

pub enum Created {
    Stored(Arc<StoredObject>),
    DryRun(Value),
}

/// The create path shared by POST, PUT-creates and apply-creates: generateName, system
/// metadata, validation, namespace admission, commit.
pub async fn create_object(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    mut obj: Value,
) -> Result<Created, ApiError> {
    let ns = meta::namespace(&obj).to_string();
    prepare_new(res, &mut obj)?;
    let generate = meta::meta_str(&obj, "generateName")
        .unwrap_or("")
        .to_string();
    let explicit = meta::name(&obj).to_string();
    if explicit.is_empty() && !generate.is_empty() {
        meta::set_meta(&mut obj, "name", json!(generate_name(&generate)));
    }
    let obj = crate::fieldmanager::track_update(ctx, res, None, obj)?;
    validate_all(res, &obj, None)?;
    check_namespace(api, ctx, res, &ns)?;
    // what plug-ins reserve for it (quotas), held until the commit below is answered
    let _reserved =
        api.inner
            .plugins
            .admit_write(api, ctx, res, crate::plugin::Write::Create { obj: &obj })?;
    if dry_run(ctx) {
        check_dry_run_size(api, res, &obj)?;
        return Ok(Created::DryRun(obj));
    }
    let cluster = ctx.cluster.clone().unwrap_or_default();
    let retry_names = explicit.is_empty() && !generate.is_empty();
    let mut obj = res.strategy.to_storage(obj);
    for attempt in 0..8 {
        let name = meta::name(&obj).to_string();
        let key = key_for(res, &cluster, &ns, &name);
        // kept for another attempt only when a generated name may collide
        let value = if retry_names {
            obj.clone()
        } else {
            std::mem::take(&mut obj)
        };
        match api.inner.store.apply(Mutation::Create { key, value }).await {
            Ok(o) => return Ok(Created::Stored(o)),
            Err(StorageError::AlreadyExists(_)) if retry_names && attempt < 7 => {
                meta::set_meta(&mut obj, "name", json!(generate_name(&generate)));
            }
            Err(e) => return Err(storage_error(res, &name, e)),
        }
    }
    Err(ApiError::internal("could not generate a unique name"))
}

/// How an update computes the new object from the current one.
pub enum Change<'a> {
    /// A full object (PUT).
    Replace(Value),
    /// A patch of the given content type.
    Patch {
        content_type: &'a str,
        patch: &'a Value,
    },
}

async fn update(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let (obj, warnings) = decode_object(api, ctx, res, body)?;
    let name = meta::name(&obj);
    if name != ctx.info.name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({name}) does not match the name on the URL ({})",
            ctx.info.name
        )));
    }
    if res.desc.namespaced {
        let ns = meta::namespace(&obj);
        if !ns.is_empty() && ns != ctx.info.namespace {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
    }
    let user_rv = meta::resource_version(&obj).map_err(ApiError::bad_request)?;
    let out = update_object(
        api,
        ctx,
        res,
        &ctx.info.name,
        Change::Replace(obj),
        (user_rv > 0).then_some(user_rv),
    )
    .await?;
    Ok(response::with_warnings(
        out.into_response(ctx, res)?,
        &warnings,
    ))
}

pub enum Updated {
    Stored(Arc<StoredObject>, u16),
    Deleted(Arc<StoredObject>),
    DryRun(Value),
}

impl Updated {
    fn into_response(self, ctx: &Ctx, res: &Resource) -> Result<Response<Body>, ApiError> {
        match self {
            Updated::Stored(o, code) => respond_object(ctx, res, code, &o),
            Updated::Deleted(o) => respond_object(ctx, res, 200, &o),
            Updated::DryRun(v) => respond_value(ctx, res, 200, &v, None),
        }
    }
}

/// Applies a change to the current object with retries on conflict.
pub async fn update_object(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    name: &str,
    change: Change<'_>,
    user_rv: Option<u64>,
) -> Result<Updated, ApiError> {
    let key = ctx_key_named(ctx, res, name);
    let store = &api.inner.store;
    for _ in 0..MAX_CONFLICT_RETRIES {
        let Some(cur) = store.get(&key) else {
            return Err(ApiError::not_found(subject(res, name)));
        };
        // the current object as this resource's version sees it
        let cur_view: std::borrow::Cow<'_, Value> = match res.strategy.from_storage(&cur.value) {
            Some(v) => std::borrow::Cow::Owned(v),
            None => std::borrow::Cow::Borrowed(&cur.value),
        };
        let mut new = match &change {
            Change::Replace(v) => v.clone(),
            Change::Patch {
                content_type,
                patch,
            } if content_type.starts_with("application/apply-patch") => {
                let mut applied = crate::fieldmanager::apply(ctx, res, Some(&*cur_view), patch)?;
                check_type(res, &mut applied)?;
                let (canon, _) = res.strategy.canonicalize(applied)?;
                canon
            }
            Change::Patch {
                content_type,
                patch,
            } => {
                let mut patched = apply_patch(res, content_type, &cur_view, patch)?;
                check_type(res, &mut patched)?;
                let (canon, _) = res.strategy.canonicalize(patched)?;
                canon
            }
        };
        let pinned = match &change {
            Change::Replace(_) => user_rv,
            Change::Patch { .. } => {
                let rv = meta::resource_version(&new).map_err(ApiError::bad_request)?;
                (rv > 0).then_some(rv)
            }
        };
        if let Some(rv) = pinned {
            if rv != cur.rv {
                return Err(ApiError::stale(subject(res, name)));
            }
        }
        if meta::name(&new) != name {
            return Err(ApiError::invalid(
                &res.desc.kind,
                &res.desc.group,
                name,
                vec![Cause::invalid(
                    "metadata.name",
                    &json!(meta::name(&new)),
                    "field is immutable",
                )],
            ));
        }
        carry_system_metadata(res, &mut new, &cur_view);
        match ctx.info.subresource.as_str() {
            "status" => {
                let mut merged = cur_view.clone().into_owned();
                let m = meta::object_at(&mut merged, &[])?;
                match new.get("status") {
                    Some(s) if !s.is_null() => m.insert("status".into(), s.clone()),
                    _ => m.remove("status"),
                };
                new = merged;
            }
            "finalize" => {
                let mut merged = cur_view.clone().into_owned();
                let fins = new
                    .pointer("/spec/finalizers")
                    .cloned()
                    .unwrap_or(json!([]));
                meta::set_path(&mut merged, &["spec", "finalizers"], fins)?;
                new = merged;
            }
            _ => {
                res.strategy.prepare_for_update(&mut new, &cur_view)?;
                if res.desc.has_subresource("status") {
                    let m = meta::object_at(&mut new, &[])?;
                    match cur_view.get("status") {
                        Some(s) => m.insert("status".into(), s.clone()),
                        None => m.remove("status"),
                    };
                }
            }
        }
        let mut new = crate::fieldmanager::track_update(ctx, res, Some(&*cur_view), new)?;
        if res.strategy.tracks_generation() && spec_changed(&new, &cur_view) {
            let g = cur_view
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            meta::set_meta(&mut new, "generation", json!(g.saturating_add(1)));
        }
        validate_all(res, &new, Some(&*cur_view))?;
        validate_admission(
            api,
            ctx,
            res,
            crate::admission::Operation::Update {
                new: &new,
                old: &cur_view,
            },
        )?;
        // An update that changes nothing is not written (no new resourceVersion).
        let mut cmp = new.clone();
        meta::set_meta(&mut cmp, "resourceVersion", json!(cur.rv.to_string()));
        if cmp == *cur_view {
            return Ok(Updated::Stored(cur, 200));
        }
        let finalize_now = meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && !has_spec_finalizers(&new);
        // what plug-ins reserve for it (growing an object counts against quotas)
        let _reserved = match finalize_now {
            true => Vec::new(),
            false => api.inner.plugins.admit_write(
                api,
                ctx,
                res,
                crate::plugin::Write::Update {
                    cur: &cur,
                    new: &cmp,
                },
            )?,
        };
        if dry_run(ctx) {
            check_dry_run_size(api, res, &cmp)?;
            return Ok(Updated::DryRun(cmp));
        }
        let mutation = if finalize_now {
            Mutation::Delete {
                key: key.clone(),
                expected_rv: Some(cur.rv),
            }
        } else {
            Mutation::Update {
                key: key.clone(),
                expected_rv: Some(cur.rv),
                value: res.strategy.to_storage(new),
            }
        };
        match store.apply(mutation).await {
            Ok(o) if finalize_now => return Ok(Updated::Deleted(o)),
            Ok(o) => return Ok(Updated::Stored(o, 200)),
            Err(StorageError::Conflict { .. }) | Err(StorageError::NotFound(_))
                if pinned.is_none() =>
            {
                continue
            }
            Err(e) => return Err(storage_error(res, name, e)),
        }
    }
    Err(ApiError::stale(subject(res, name)))
}

fn ctx_key_named(ctx: &Ctx, res: &Resource, name: &str) -> ObjectKey {
    key_for(
        res,
        ctx.cluster.as_deref().unwrap_or(""),
        &ctx.info.namespace,
        name,
    )
}

/// Namespaces keep `spec.finalizers`, which hold deletion like metadata finalizers.
fn has_spec_finalizers(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Namespace")
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

fn spec_changed(new: &Value, old: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(m) = v.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        v
    };
    strip(new) != strip(old)
}

/// Keeps what clients cannot change: uid, creationTimestamp, deletion fields, generation.
fn carry_system_metadata(res: &Resource, new: &mut Value, old: &Value) {
    let old_meta = old.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let m = meta::metadata_mut(new);
    for f in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(f) {
            Some(v) => {
                m.insert(f.into(), v.clone());
            }
            None => {
                m.remove(f);
            }
        }
    }
    m.remove("selfLink");
    if res.desc.namespaced {
        m.insert(
            "namespace".into(),
            old_meta.get("namespace").cloned().unwrap_or(json!("")),
        );
    } else {
        m.remove("namespace");
    }
}

/// kube's answer to a patch that cannot be applied (`handlers/patch.go`): a list that
/// is not a JSON patch 400, too many operations 413, an operation that fails 422 with
/// kube's generic message, a merge patch that is not an object 400 ("Invalid JSON
/// Patch"); a result over the size limit 413, as an oversized body.
pub(crate) fn patch_error(e: canopy_patch::PatchError) -> ApiError {
    use canopy_patch::PatchError as E;
    match e {
        E::InvalidJsonPatch(m) => ApiError::bad_request(m),
        E::InvalidMergePatch => ApiError::bad_request(e.to_string()),
        E::TooManyOperations { .. } => {
            ApiError::too_large(format!("Request entity too large: {e}"))
        }
        E::ResultTooLarge { limit } => {
            ApiError::too_large(format!("Request entity too large: limit is {limit}"))
        }
        E::JsonPatch(_) | E::CopySizeExceeded { .. } => ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        ),
        E::TooDeep { .. } | E::TooComplex { .. } | E::Strategic(_) => {
            ApiError::new(422, "Invalid", e.to_string())
        }
    }
}

/// The limits patches are applied under. `max_result_bytes` is kube's request body
/// limit (3 MiB) until the storage's object size limit is passed here. The patched
/// object (managedFields aside) nests no deeper than a body may
/// ([`codec::MAX_BODY_NESTING`], checked by [`check_patched`]).
pub(crate) fn patch_limits() -> canopy_patch::Limits {
    canopy_patch::Limits::with_max_result_bytes(
        crate::Limits::default().max_request_body_bytes as u64,
    )
}

/// A patched object nesting deeper than a body may is refused (422).
pub(crate) fn check_patched(obj: Value) -> Result<Value, ApiError> {
    if codec::nesting(&obj) > codec::MAX_BODY_NESTING {
        return Err(patch_error(canopy_patch::PatchError::TooDeep {
            limit: codec::MAX_BODY_NESTING,
        }));
    }
    Ok(obj)
}

fn apply_patch(
    res: &Resource,
    content_type: &str,
    current: &Value,
    patch: &Value,
) -> Result<Value, ApiError> {
    let invalid = patch_error;
    let limits = patch_limits();
    let patched = match content_type {
        "application/json-patch+json" => {
            canopy_patch::apply_json_patch_with(current, patch, &limits).map_err(invalid)
        }
        "application/merge-patch+json" => {
            canopy_patch::apply_merge_patch_with(current, patch, &limits).map_err(invalid)
        }
        "application/strategic-merge-patch+json" => {
            let schema = canopy_patch::strategic::builtin_schema(
                &res.desc.group,
                &res.desc.version,
                &res.desc.kind,
            )
            .ok_or_else(|| ApiError::unsupported_media_type(content_type))?;
            canopy_patch::strategic::apply_with(current, patch, &schema, &limits).map_err(invalid)
        }
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
            // Until server-side apply's field ownership lands (see ARCHITECTURE.md), an
            // apply merges the applied configuration into the live object.
            canopy_patch::apply_merge_patch_with(current, patch, &limits).map_err(invalid)
        }
        other => Err(ApiError::unsupported_media_type(other)),
    };
    check_patched(patched?)
}

async fn patch(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let ct = ctx
        .header(header::CONTENT_TYPE)
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let patch: Value = match ct.as_str() {
        "application/apply-patch+yaml" => codec::decode_yaml(body, max_decoded(api))?,
        "application/json-patch+json"
        | "application/merge-patch+json"
        | "application/strategic-merge-patch+json" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    codec::check_nesting(&patch)?;
    if ct == "application/apply-patch+yaml" {
        if ctx.q("fieldManager").is_none() {
            return Err(ApiError::bad_request(
                "PATCH requests of type apply require a fieldManager query parameter",
            ));
        }
        let key = ctx_key(ctx, res);
        if api.inner.store.get(&key).is_none() {
            // apply creates
            let mut obj = crate::fieldmanager::apply(ctx, res, None, &patch)?;
            check_type(res, &mut obj)?;
            let (mut obj, dropped) = res.strategy.canonicalize(obj)?;
            let warnings = field_validation(ctx, &dropped, &[])?;
            if meta::name(&obj).is_empty() {
                meta::set_meta(&mut obj, "name", json!(ctx.info.name));
            }
            if res.desc.namespaced {
                meta::set_meta(&mut obj, "namespace", json!(ctx.info.namespace));
            }
            admit(api, ctx, res, &mut obj)?;
            return match create_object(api, ctx, res, obj).await? {
                Created::Stored(o) => Ok(response::with_warnings(
                    respond_object(ctx, res, 201, &o)?,
                    &warnings,
                )),
                Created::DryRun(v) => respond_value(ctx, res, 201, &v, None),
            };
        }
    }
    let out = update_object(
        api,
        ctx,
        res,
        &ctx.info.name,
        Change::Patch {
            content_type: &ct,
            patch: &patch,
        },
        None,
    )
    .await?;
    out.into_response(ctx, res)
}

/// DeleteOptions from the body or the query.
pub struct DeleteOptions {
    pub propagation: String,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<u64>,
}

fn delete_options(api: &ApiServer, ctx: &Ctx, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        codec::decode_body(ctx.header(header::CONTENT_TYPE), body, max_decoded(api))?
    };
    let mut propagation = v
        .get("propagationPolicy")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| ctx.q("propagationPolicy").map(str::to_string))
        .unwrap_or_default();
    let orphan = v
        .get("orphanDependents")
        .and_then(Value::as_bool)
        .or_else(|| ctx.q("orphanDependents").map(|s| s == "true"));
    if orphan == Some(true) && propagation.is_empty() {
        propagation = "Orphan".into();
    }
    if !propagation.is_empty()
        && !["Orphan", "Background", "Foreground"].contains(&propagation.as_str())
    {
        return Err(ApiError::invalid(
            "DeleteOptions",
            "meta.k8s.io",
            "",
            vec![Cause::not_supported(
                "propagationPolicy",
                &json!(propagation),
                &["Foreground", "Background", "Orphan", "nil"],
            )],
        ));
    }
    if let Some(d) = v.get("dryRun").and_then(Value::as_array) {
        if d.iter().any(|x| x != "All") {
            return Err(ApiError::bad_request(
                "Invalid dryRun value: supported values: \"All\"",
            ));
        }
    }
    let pre = v.get("preconditions");
    Ok(DeleteOptions {
        propagation,
        precondition_uid: pre
            .and_then(|p| p.get("uid"))
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: pre
            .and_then(|p| p.get("resourceVersion"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    })
}

async fn delete(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let opts = delete_options(api, ctx, body)?;
    let dry = dry_run(ctx) || body_dry_run(body);
    let (code, obj, immediate) = delete_object(
        api,
        ctx,
        res,
        &ctx.info.namespace,
        &ctx.info.name,
        &opts,
        dry,
    )
    .await?;
    if immediate && res.desc.plural != "namespaces" {
        let uid = meta::uid(&obj.value).to_string();
        return Ok(response::json(
            200,
            &canopy_core::error::success_status(subject(res, &ctx.info.name), Some(&uid)),
        ));
    }
    respond_object(ctx, res, code, &obj)
}

fn body_dry_run(body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("dryRun")
                .and_then(Value::as_array)
                .map(|a| a.iter().any(|x| x == "All"))
        })
        .unwrap_or(false)
}

/// Deletes (or starts deleting) one object. Returns the HTTP code, the object, and
/// whether it is gone now.
pub async fn delete_object(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    namespace: &str,
    name: &str,
    opts: &DeleteOptions,
    dry: bool,
) -> Result<(u16, Arc<StoredObject>, bool), ApiError> {
    if res.desc.plural == "namespaces"
        && ctx.cluster.is_some()
        && ["default", "kube-system", "kube-public"].contains(&name)
    {
        return Err(ApiError::forbidden_message(format!(
            "namespaces {name:?} is forbidden: this namespace may not be deleted"
        )));
    }
    let key = key_for(res, ctx.cluster.as_deref().unwrap_or(""), namespace, name);
    let store = &api.inner.store;
    for _ in 0..MAX_CONFLICT_RETRIES {
        let Some(cur) = store.get(&key) else {
            return Err(ApiError::not_found(subject(res, name)));
        };
        if let Some(uid) = &opts.precondition_uid {
            if uid != meta::uid(&cur.value) {
                return Err(ApiError::conflict(
                    subject(res, name),
                    &format!(
                        "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                        meta::uid(&cur.value)
                    ),
                ));
            }
        }
        if let Some(rv) = opts.precondition_rv {
            if rv != cur.rv {
                return Err(ApiError::conflict(
                    subject(res, name),
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", cur.rv),
                ));
            }
        }
        validate_admission(
            api,
            ctx,
            res,
            crate::admission::Operation::Delete(&cur.value),
        )?;
        let mut fins = meta::finalizers(&cur.value);
        let deleting = meta::is_deleting(&cur.value);
        match opts.propagation.as_str() {
            "Foreground" if !fins.iter().any(|f| f == "foregroundDeletion") => {
                fins.push("foregroundDeletion".into())
            }
            "Orphan" if !fins.iter().any(|f| f == "orphan") => fins.push("orphan".into()),
            _ => {}
        }
        let graceful = !fins.is_empty() || has_spec_finalizers(&cur.value);
        if !graceful {
            if dry {
                return Ok((200, cur, true));
            }
            match store
                .apply(Mutation::Delete {
                    key: key.clone(),
                    expected_rv: Some(cur.rv),
                })
                .await
            {
                Ok(o) => return Ok((200, o, true)),
                Err(StorageError::Conflict { .. }) => continue,
                Err(StorageError::NotFound(_)) => {
                    return Err(ApiError::not_found(subject(res, name)))
                }
                Err(e) => return Err(storage_error(res, name, e)),
            }
        }
        let mut new = cur.value.clone();
        if !deleting {
            meta::set_meta(&mut new, "deletionTimestamp", json!(meta::now()));
            meta::set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
        }
        meta::set_meta(&mut new, "finalizers", json!(fins));
        if res.desc.plural == "namespaces" {
            meta::set_path(&mut new, &["status", "phase"], json!("Terminating"))?;
        }
        if new == cur.value {
            return Ok((202, cur, false));
        }
        if dry {
            return Ok((202, cur, false));
        }
        match store
            .apply(Mutation::Update {
                key: key.clone(),
                expected_rv: Some(cur.rv),
                value: new,
            })
            .await
        {
            Ok(o) => {
                return Ok((
                    if res.desc.plural == "namespaces" {
                        200
                    } else {
                        202
                    },
                    o,
                    false,
                ))
            }
            Err(StorageError::Conflict { .. }) => continue,
            Err(e) => return Err(storage_error(res, name, e)),
        }
    }
    Err(ApiError::stale(subject(res, name)))
}

async fn delete_collection(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let opts = delete_options(api, ctx, body)?;
    let sel = Selectors::from_ctx(ctx, res)?;
    let filter = |o: &StoredObject| sel.matches(res, &o.value);
    let storage_key = res.desc.storage_key();
    let namespace = (res.desc.namespaced && !ctx.info.namespace.is_empty())
        .then_some(ctx.info.namespace.as_str());
    let list = api
        .inner
        .store
        .list(&ListOptions {
            resource: &storage_key,
            cluster: ctx.cluster.as_deref(),
            namespace,
            name: None,
            continue_after: None,
            limit: 0,
            filter: &filter,
        })
        .map_err(|e| storage_error(res, "", e))?;
    let dry = dry_run(ctx) || body_dry_run(body);
    let mut deleted = Vec::new();
    for o in &list.items {
        match delete_object(api, ctx, res, &o.key.namespace, &o.key.name, &opts, dry).await {
            Ok((_, obj, _)) => deleted.push(
                res.strategy
                    .from_storage(&obj.value)
                    .unwrap_or_else(|| obj.value.clone()),
            ),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(response::json(
        200,
        &json!({
            "kind": res.desc.list_kind,
            "apiVersion": res.desc.api_version(),
            "metadata": {"resourceVersion": api.inner.store.current_rv().to_string()},
            "items": deleted,
        }),
    ))
}

// ---------------------------------------------------------------------------------------
// Writes by the system itself (bootstrap, controllers): no request, no authorization.

/// Creates an object as the system; `Ok(None)` if it already exists.
pub async fn create_system(
    api: &ApiServer,
    cluster: &str,
    res: &Resource,
    mut obj: Value,
) -> Result<Option<Arc<StoredObject>>, ApiError> {
    check_type(res, &mut obj)?;
    let (mut obj, _) = res.strategy.canonicalize(obj)?;
    prepare_new(res, &mut obj)?;
    validate_all(res, &obj, None)?;
    let key = key_for(res, cluster, meta::namespace(&obj), meta::name(&obj));
    match api
        .inner
        .store
        .apply(Mutation::Create { key, value: obj })
        .await
    {
        Ok(o) => Ok(Some(o)),
        Err(StorageError::AlreadyExists(_)) => Ok(None),
        Err(e) => Err(storage_error(res, "", e)),
    }
}

/// Creates several objects as the system in one atomic commit, skipping those that
/// already exist; if another writer creates one meanwhile, falls back to one commit per
/// object.
pub async fn create_system_batch(
    api: &ApiServer,
    cluster: &str,
    items: Vec<(Resource, Value)>,
) -> Result<(), ApiError> {
    let store = &api.inner.store;
    let mut muts = Vec::with_capacity(items.len());
    let mut prepared = Vec::with_capacity(items.len());
    for (res, mut obj) in items {
        check_type(&res, &mut obj)?;
        let (mut obj, _) = res.strategy.canonicalize(obj)?;
        prepare_new(&res, &mut obj)?;
        validate_all(&res, &obj, None)?;
        let key = key_for(&res, cluster, meta::namespace(&obj), meta::name(&obj));
        if store.get(&key).is_some() {
            continue;
        }
        muts.push(Mutation::Create {
            key,
            value: obj.clone(),
        });
        prepared.push((res, obj));
    }
    match store.commit(muts).await {
        Ok(_) => Ok(()),
        Err(StorageError::AlreadyExists(_)) => {
            for (res, obj) in prepared {
                create_system(api, cluster, &res, obj).await?;
            }
            Ok(())
        }
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Updates an object as the system with `f` (None: leave unchanged), retrying on
/// conflicts; `Ok(None)` if the object is gone. Removing the last finalizer of an
/// object being deleted deletes it.
pub async fn update_system(
    api: &ApiServer,
    key: &ObjectKey,
    mut f: impl FnMut(&Value) -> Option<Value>,
) -> Result<Option<Arc<StoredObject>>, StorageError> {
    let store = &api.inner.store;
    for _ in 0..MAX_CONFLICT_RETRIES {
        let Some(cur) = store.get(key) else {
            return Ok(None);
        };
        let Some(new) = f(&cur.value) else {
            return Ok(Some(cur));
        };
        let m = if meta::is_deleting(&new)
            && meta::finalizers(&new).is_empty()
            && !has_spec_finalizers(&new)
        {
            Mutation::Delete {
                key: key.clone(),
                expected_rv: Some(cur.rv),
            }
        } else {
            Mutation::Update {
                key: key.clone(),
                expected_rv: Some(cur.rv),
                value: new,
            }
        };
        match store.apply(m).await {
            Ok(o) => return Ok(Some(o)),
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Unavailable(format!(
        "{key}: too many conflicts"
    )))
}

/// Deletes an object as the system, honouring finalizers (sets deletionTimestamp when
/// there are any). `Ok(false)` if it was already gone.
pub async fn delete_system(
    api: &ApiServer,
    key: &ObjectKey,
    propagation: &str,
) -> Result<bool, StorageError> {
    let store = &api.inner.store;
    for _ in 0..MAX_CONFLICT_RETRIES {
        let Some(cur) = store.get(key) else {
            return Ok(false);
        };
        let mut fins = meta::finalizers(&cur.value);
        if propagation == "Foreground" && !fins.iter().any(|f| f == "foregroundDeletion") {
            fins.push("foregroundDeletion".into());
        }
        let m = if fins.is_empty() && !has_spec_finalizers(&cur.value) {
            Mutation::Delete {
                key: key.clone(),
                expected_rv: Some(cur.rv),
            }
        } else if meta::is_deleting(&cur.value) && fins == meta::finalizers(&cur.value) {
            return Ok(true);
        } else {
            let mut new = cur.value.clone();
            if !meta::is_deleting(&new) {
                meta::set_meta(&mut new, "deletionTimestamp", json!(meta::now()));
                meta::set_meta(&mut new, "deletionGracePeriodSeconds", json!(0));
            }
            meta::set_meta(&mut new, "finalizers", json!(fins));
            if new.get("kind").and_then(Value::as_str) == Some("Namespace") {
                meta::set_path(&mut new, &["status", "phase"], json!("Terminating"))
                    .map_err(|e| StorageError::InvalidObject(format!("{key}: {e}")))?;
            }
            Mutation::Update {
                key: key.clone(),
                expected_rv: Some(cur.rv),
                value: new,
            }
        };
        match store.apply(m).await {
            Ok(_) => return Ok(true),
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Err(StorageError::Unavailable(format!(
        "{key}: too many conflicts"
    )))
}
