//! The generic REST store: every verb of every stored resource, parameterized by the
//! resource's descriptor and [`Strategy`](crate::registry::Strategy).
//!
//! Writes follow kube's `GuaranteedUpdate`: read the latest object from the watch cache,
//! compute the new object (patch, strategy, validation) outside the store's writer, and
//! commit with the read resourceVersion as precondition; on a conflict the computation
//! is retried unless the client pinned a resourceVersion itself.
//!
//! One file per verb or verb family, as kube's `endpoints/handlers`: `get.rs` (get, list),
//! `create.rs`, `update.rs` (also the `GuaranteedUpdate` loop of patches), `patch.rs`,
//! `delete.rs` (delete, deletecollection); `decode.rs` decodes and type-checks request
//! bodies, `selectors.rs` holds label and field selectors, `system.rs` the writes of the
//! system itself. This file dispatches a request to its verb and holds what the verbs
//! share: keys, storage errors, responses, dry runs, validation and admission. Watches
//! are `crate::watch`'s, the `scale` subresource is `crate::scale`'s.

mod create;
mod decode;
mod delete;
mod get;
mod patch;
mod selectors;
mod system;
mod update;

use bytes::Bytes;
use canopy_core::{meta, ApiError, Cause, Subject};
use canopy_storage::{ObjectKey, StorageError, StoredObject};
use http::{header, Response};
use serde_json::{json, Value};

use crate::codec::{self, Form};
use crate::pipeline::Ctx;
use crate::registry::{invalid_if_any, table, Resource};
use crate::response::{self, Body};
use crate::ApiServer;

pub use create::{create_object, Created};
pub use delete::{delete_object, DeleteOptions};
pub use get::current_view;
pub(crate) use patch::{patch_error, patch_limits};
pub use selectors::Selectors;
pub use system::{create_system, create_system_batch, delete_system, update_system};
pub use update::{update_object, Change, Updated};

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
        "get" => get::get(api, ctx, res),
        "list" => get::list(api, ctx, res),
        "watch" => crate::watch::serve(api, ctx, res),
        "create" => create::create(api, ctx, res, &body).await,
        "update" => update::update(api, ctx, res, &body).await,
        "patch" => patch::patch(api, ctx, res, &body).await,
        "delete" => delete::delete(api, ctx, res, &body).await,
        "deletecollection" => delete::delete_collection(api, ctx, res, &body).await,
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

fn ctx_key_named(ctx: &Ctx, res: &Resource, name: &str) -> ObjectKey {
    key_for(
        res,
        ctx.cluster.as_deref().unwrap_or(""),
        &ctx.info.namespace,
        name,
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

/// Namespaces keep `spec.finalizers`, which hold deletion like metadata finalizers.
fn has_spec_finalizers(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Namespace")
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}
