//! Request bodies of writes: decoding into an object of the resource, apiVersion/kind and
//! ObjectMeta type checks, `fieldValidation`.

use canopy_core::{meta, ApiError};
use http::header;
use serde_json::{json, Value};

use super::max_decoded;
use crate::codec;
use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::ApiServer;

/// Decodes a body into an object of this resource, canonicalized; returns warnings for
/// dropped fields (or fails with `fieldValidation=Strict`).
pub(super) fn decode_object(
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
pub(super) fn check_type(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
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

pub(super) fn field_validation(
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
