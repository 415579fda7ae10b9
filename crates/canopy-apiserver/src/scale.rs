//! The `scale` subresource of custom resources: an `autoscaling/v1` `Scale` view of the
//! object, read from and written to the paths the CRD names (`specReplicasPath`,
//! `statusReplicasPath`, `labelSelectorPath`), as kube-apiserver serves it.

use canopy_core::{meta, ApiError, Cause};
use http::Response;
use serde_json::{json, Value};

use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::response::{self, Body};
use crate::rest::{self, Change, Updated};
use crate::ApiServer;

/// The JSON paths of a CRD version's scale subresource (`.spec.replicas`).
#[derive(Clone, Debug, Default)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

impl ScalePaths {
    pub fn from_crd_version(v: &Value) -> Option<ScalePaths> {
        let s = v.pointer("/subresources/scale")?;
        let get = |k: &str| s.get(k).and_then(Value::as_str).map(str::to_string);
        Some(ScalePaths {
            spec_replicas: get("specReplicasPath").unwrap_or_else(|| ".spec.replicas".into()),
            status_replicas: get("statusReplicasPath").unwrap_or_else(|| ".status.replicas".into()),
            label_selector: get("labelSelectorPath"),
        })
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
}

fn read<'a>(obj: &'a Value, path: &str) -> Option<&'a Value> {
    segments(path).try_fold(obj, |v, seg| v.get(seg))
}

fn write(obj: &mut Value, path: &str, value: Value) {
    let segs: Vec<&str> = segments(path).collect();
    let Some((last, parents)) = segs.split_last() else {
        return;
    };
    let mut cur = obj;
    for seg in parents {
        cur = canopy_core::meta::ensure_object(cur)
            .entry((*seg).to_string())
            .or_insert(Value::Null);
    }
    canopy_core::meta::ensure_object(cur).insert((*last).to_string(), value);
}

/// The Scale of `obj`.
pub fn scale_of(obj: &Value, paths: &ScalePaths) -> Value {
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = serde_json::Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            meta.insert(k.to_string(), v.clone());
        }
    }
    let spec_replicas = read(obj, &paths.spec_replicas)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let mut status =
        json!({"replicas": read(obj, &paths.status_replicas).and_then(Value::as_i64).unwrap_or(0)});
    if let Some(sel) = paths
        .label_selector
        .as_deref()
        .and_then(|p| read(obj, p))
        .and_then(Value::as_str)
    {
        canopy_core::meta::ensure_object(&mut status).insert("selector".into(), json!(sel));
    }
    json!({
        "kind": "Scale", "apiVersion": "autoscaling/v1",
        "metadata": meta,
        "spec": {"replicas": spec_replicas},
        "status": status,
    })
}

fn paths(res: &Resource) -> Result<ScalePaths, ApiError> {
    res.strategy.scale_paths().ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    })
}

fn respond(code: u16, scale: &Value) -> Response<Body> {
    response::json(code, scale)
}

/// GET, PUT and PATCH of `<resource>/<name>/scale`.
pub async fn serve(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let paths = paths(res)?;
    let name = ctx.info.name.clone();
    let current = rest::current_view(api, ctx, res, &name)?;
    let verb = ctx.info.verb.as_str();
    if verb == "get" {
        return Ok(respond(200, &scale_of(&current, &paths)));
    }
    let cur_scale = scale_of(&current, &paths);
    let new_scale: Value = match verb {
        "update" => crate::codec::decode_body(
            ctx.header(http::header::CONTENT_TYPE),
            body,
            rest::max_decoded(api),
        )?,
        "patch" => {
            let ct = ctx
                .header(http::header::CONTENT_TYPE)
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            let patch: Value = if ct == "application/apply-patch+yaml" {
                crate::codec::decode_yaml(body, rest::max_decoded(api))?
            } else {
                serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?
            };
            crate::codec::check_nesting(&patch)?;
            let invalid = rest::patch_error;
            let limits = rest::patch_limits();
            match ct.as_str() {
                "application/json-patch+json" => {
                    canopy_patch::apply_json_patch_with(&cur_scale, &patch, &limits)
                        .map_err(invalid)?
                }
                "application/merge-patch+json"
                | "application/strategic-merge-patch+json"
                | "application/apply-patch+yaml" => {
                    canopy_patch::apply_merge_patch_with(&cur_scale, &patch, &limits)
                        .map_err(invalid)?
                }
                other => return Err(ApiError::unsupported_media_type(other)),
            }
        }
        _ => {
            return Err(ApiError::method_not_supported(
                rest::subject(res, &name),
                verb,
            ));
        }
    };
    let replicas = new_scale.pointer("/spec/replicas");
    let replicas = match replicas.and_then(Value::as_i64) {
        Some(r) if r >= 0 && r <= i32::MAX as i64 => r,
        Some(r) => {
            return Err(ApiError::invalid(
                "Scale",
                "autoscaling",
                &name,
                vec![Cause::invalid(
                    "spec.replicas",
                    &json!(r),
                    "must be greater than or equal to 0",
                )],
            ))
        }
        None if replicas.is_none() => 0,
        None => return Err(ApiError::bad_request("spec.replicas: must be an integer")),
    };
    // a resourceVersion in the Scale is a precondition on the object
    let user_rv = meta::resource_version(&new_scale).map_err(ApiError::bad_request)?;
    let mut obj = current.clone();
    write(&mut obj, &paths.spec_replicas, json!(replicas));
    if user_rv > 0 {
        meta::set_meta(&mut obj, "resourceVersion", json!(user_rv.to_string()));
    }
    let out = rest::update_object(
        api,
        ctx,
        res,
        &name,
        Change::Replace(obj),
        (user_rv > 0).then_some(user_rv),
    )
    .await?;
    match out {
        Updated::Stored(o, _) | Updated::Deleted(o) => {
            let v = res
                .strategy
                .from_storage(&o.value)
                .unwrap_or_else(|| o.value.clone());
            Ok(respond(200, &scale_of(&v, &paths)))
        }
        Updated::DryRun(v) => Ok(respond(200, &scale_of(&v, &paths))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_reads_and_writes_nested_paths() {
        let paths = ScalePaths {
            spec_replicas: ".spec.size".into(),
            status_replicas: ".status.ready.count".into(),
            label_selector: Some(".status.selector".into()),
        };
        let mut obj = json!({"metadata": {"name": "a", "namespace": "d", "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"size": 3}, "status": {"ready": {"count": 2}, "selector": "app=a"}});
        let s = scale_of(&obj, &paths);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=a"}));
        assert_eq!(
            s["metadata"],
            json!({"name": "a", "namespace": "d", "resourceVersion": "7"})
        );
        write(&mut obj, ".spec.size", json!(5));
        assert_eq!(obj["spec"]["size"], 5);
        let mut empty = json!({"metadata": {}});
        write(&mut empty, ".spec.deep.replicas", json!(1));
        assert_eq!(empty["spec"]["deep"]["replicas"], 1);
        assert_eq!(scale_of(&json!({}), &paths)["spec"]["replicas"], 0);
    }
}
