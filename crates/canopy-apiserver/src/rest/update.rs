//! Update (PUT, also of the `status` and `finalize` subresources), and
//! [`update_object`], the `GuaranteedUpdate` loop that patches and `scale` run through too.

use std::sync::Arc;

use canopy_core::{meta, ApiError, Cause};
use canopy_storage::{Mutation, StorageError, StoredObject};
use http::Response;
use serde_json::{json, Value};

use super::decode::{check_type, decode_object};
use super::patch::apply_patch;
use super::{
    check_dry_run_size, ctx_key_named, dry_run, has_spec_finalizers, respond_object, respond_value,
    storage_error, subject, validate_admission, validate_all, MAX_CONFLICT_RETRIES,
};
use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::response::{self, Body};
use crate::ApiServer;

pub(super) async fn update(
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

pub enum Updated {
    Stored(Arc<StoredObject>, u16),
    Deleted(Arc<StoredObject>),
    DryRun(Value),
}

impl Updated {
    pub(super) fn into_response(
        self,
        ctx: &Ctx,
        res: &Resource,
    ) -> Result<Response<Body>, ApiError> {
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
