//! Reads: get and list (kube's `handlers/get.go`), with continue tokens, `resourceVersion`
//! rules and the response forms of lists (JSON from the stored bytes, Table,
//! PartialObjectMetadataList).

use bytes::{BufMut, BytesMut};
use canopy_core::{ApiError, Cause};
use canopy_storage::{ListOptions, StoredObject};
use http::{header, Response};
use serde_json::{json, Value};

use super::{
    ctx_key, ctx_key_named, include_object, respond_object, storage_error, subject, Selectors,
};
use crate::codec::{self, Form};
use crate::pipeline::Ctx;
use crate::registry::{table, Resource};
use crate::response::{self, Body};
use crate::ApiServer;

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

pub(super) fn get(api: &ApiServer, ctx: &Ctx, res: &Resource) -> Result<Response<Body>, ApiError> {
    let key = ctx_key(ctx, res);
    let obj = api
        .inner
        .store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(subject(res, &ctx.info.name)))?;
    respond_object(ctx, res, 200, &obj)
}

pub(super) fn list(api: &ApiServer, ctx: &Ctx, res: &Resource) -> Result<Response<Body>, ApiError> {
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
