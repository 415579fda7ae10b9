//! Patch: decodes JSON, merge, strategic merge and apply patches and applies the first
//! three under `canopy_patch` limits, with kube's error codes. Server-side apply is
//! `fieldmanager.rs`'s, run from [`update_object`]; an apply to a missing object creates
//! it through [`create_object`].

use canopy_core::{meta, ApiError};
use http::{header, Response};
use serde_json::{json, Value};

use super::create::admit;
use super::decode::{check_type, field_validation};
use super::{
    create_object, ctx_key, max_decoded, respond_object, respond_value, update_object, Change,
    Created,
};
use crate::codec;
use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::response::{self, Body};
use crate::ApiServer;

pub(super) async fn patch(
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

pub(super) fn apply_patch(
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
