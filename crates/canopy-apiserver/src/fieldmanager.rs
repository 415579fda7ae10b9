//! Server-side apply and `managedFields` for every resource, as kube-apiserver's field
//! manager does them, on top of the pure `canopy-apply` crate.
//!
//! Every write a client makes records its field ownership: creates, updates and
//! non-apply patches as `Update` operations of the request's manager (the
//! `fieldManager` parameter, else the User-Agent up to its first `/`), apply patches as
//! `Apply` with conflict detection. Type information comes from the published OpenAPI v3
//! documents for built-in kinds and from the CRD schema for custom resources; both are
//! converted once and cached. Writes the system makes (controllers) keep managedFields
//! as they are.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use canopy_apply::{ApplyError, FieldManager, Schema};
use canopy_core::{ApiError, Cause};
use serde_json::Value;

use crate::pipeline::Ctx;
use crate::registry::Resource;

/// The structured-merge type of a built-in kind, from Canopy's OpenAPI v3 documents.
fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<Schema> {
    static DOCS: OnceLock<canopy_openapi::OpenApiDocs> = OnceLock::new();
    static SCHEMAS: OnceLock<Mutex<HashMap<String, Option<Schema>>>> = OnceLock::new();
    let key = format!("{group}/{version}/{kind}");
    let cache = SCHEMAS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(s) = cache.lock().ok().and_then(|m| m.get(&key).cloned()) {
        return s;
    }
    let docs = DOCS.get_or_init(|| canopy_openapi::OpenApiBuilder::with_builtins().build());
    let gv_key = if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    };
    let schema = docs
        .v3_document(&gv_key)
        .and_then(|(bytes, _)| serde_json::from_slice::<Value>(&bytes).ok())
        .and_then(|doc| Schema::from_openapi_v3_document(&doc, group, version, kind).ok());
    if let Ok(mut m) = cache.lock() {
        m.insert(key, schema.clone());
    }
    schema
}

/// The field manager for writes to `res` (and its `subresource`), when its type is known.
pub fn manager_for(res: &Resource, subresource: &str) -> Option<FieldManager> {
    let d = &res.desc;
    let schema = match res.strategy.apply_schema() {
        Some(s) => s,
        None => builtin_schema(&d.group, &d.version, &d.kind)?,
    };
    // every object a client writes is validated against the same type by the strategy
    // (typed built-ins, CRD schemas), so updates skip the apply crate's own typed check
    let fm = FieldManager::new(schema, &d.api_version(), &d.kind)
        .lenient(true)
        .trusted_updates(true);
    Some(match subresource {
        "" if d.has_subresource("status") => fm.with_status_subresource(),
        "" => fm,
        sub => fm.with_subresource(sub),
    })
}

/// The manager of a request: `fieldManager`, else the client's User-Agent up to its first
/// `/` (kube's default), at most 128 characters.
pub fn manager_name(ctx: &Ctx) -> Result<String, ApiError> {
    if let Some(m) = ctx.q("fieldManager") {
        if m.chars().count() > 128 {
            return Err(ApiError::invalid(
                "",
                "",
                "",
                vec![Cause::too_long("fieldManager", 128)],
            ));
        }
        if m.chars().any(|c| !c.is_ascii_graphic() && c != ' ') {
            return Err(ApiError::invalid(
                "",
                "",
                "",
                vec![Cause::invalid(
                    "fieldManager",
                    &Value::String(m.to_string()),
                    "must consist of printable characters",
                )],
            ));
        }
        return Ok(m.to_string());
    }
    let ua = ctx.header(http::header::USER_AGENT).unwrap_or("");
    let name: String = ua
        .split('/')
        .next()
        .unwrap_or("")
        .chars()
        .take(128)
        .collect();
    Ok(name)
}

/// Records a non-apply write by the request's manager. Unknown types keep what the
/// object had.
pub fn track_update(
    ctx: &Ctx,
    res: &Resource,
    old: Option<&Value>,
    new: Value,
) -> Result<Value, ApiError> {
    if is_apply(ctx) {
        return Ok(new); // an apply records its own ownership
    }
    let Some(fm) = manager_for(res, &ctx.info.subresource) else {
        return Ok(new);
    };
    let manager = manager_name(ctx)?;
    Ok(fm.update_owned(old, new, &manager, chrono::Utc::now()))
}

/// Whether the request is a server-side apply patch.
pub fn is_apply(ctx: &Ctx) -> bool {
    ctx.method == http::Method::PATCH
        && ctx
            .header(http::header::CONTENT_TYPE)
            .is_some_and(|c| c.trim_start().starts_with("application/apply-patch"))
}

/// A server-side apply of `applied` onto `live` (`None` creates).
pub fn apply(
    ctx: &Ctx,
    res: &Resource,
    live: Option<&Value>,
    applied: &Value,
) -> Result<Value, ApiError> {
    let manager = ctx
        .q("fieldManager")
        .ok_or_else(|| {
            ApiError::bad_request(
                "PATCH requests of type apply require a fieldManager query parameter",
            )
        })?
        .to_string();
    manager_name(ctx)?;
    let force = match ctx.q("force") {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid boolean value for force: {other:?}"
            )))
        }
    };
    let fm = manager_for(res, &ctx.info.subresource).unwrap_or_else(|| {
        let d = &res.desc;
        FieldManager::new(Schema::deduced(), &d.api_version(), &d.kind)
    });
    fm.apply(live, applied, &manager, force, chrono::Utc::now())
        .map_err(apply_error)
}

fn apply_error(e: ApplyError) -> ApiError {
    match &e {
        ApplyError::Conflicts(c) => {
            let causes = c
                .causes()
                .into_iter()
                .map(|v| {
                    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    Cause::new(s("reason"), s("field"), s("message"))
                })
                .collect();
            ApiError::new(409, "Conflict", c.message()).with_causes(causes)
        }
        ApplyError::BadRequest(m) => ApiError::bad_request(m.clone()),
        ApplyError::InvalidObject(m) | ApplyError::Internal(m) => ApiError::internal(m.clone()),
    }
}
