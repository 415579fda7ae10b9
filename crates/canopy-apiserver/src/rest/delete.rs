//! Delete and deletecollection: DeleteOptions (propagation, preconditions, dry run) and
//! finalizers (a graceful delete sets deletionTimestamp).

use std::sync::Arc;

use canopy_core::{meta, ApiError, Cause};
use canopy_storage::{ListOptions, Mutation, StorageError, StoredObject};
use http::{header, Response};
use serde_json::{json, Value};

use super::{
    dry_run, has_spec_finalizers, key_for, max_decoded, respond_object, storage_error, subject,
    validate_admission, Selectors, MAX_CONFLICT_RETRIES,
};
use crate::codec;
use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::response::{self, Body};
use crate::ApiServer;

pub(super) async fn delete(
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

pub(super) async fn delete_collection(
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
