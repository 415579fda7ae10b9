//! Review resources, answered without storage: who am I (`SelfSubjectReview`), may I
//! (`SelfSubjectAccessReview`, `SelfSubjectRulesReview`), may they
//! (`SubjectAccessReview`, `LocalSubjectAccessReview`), and is this token valid
//! (`TokenReview`).

use bytes::Bytes;
use canopy_auth::rbac::Attributes;
use canopy_auth::UserInfo;
use canopy_core::{ApiError, Cause};
use http::{header, Response};
use serde_json::{json, Value};

use crate::pipeline::Ctx;
use crate::registry::Resource;
use crate::response::{self, Body};
use crate::{authz, codec, ApiServer};

pub async fn handle(
    api: &ApiServer,
    ctx: &Ctx,
    res: &Resource,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    if ctx.info.verb != "create" || !ctx.info.name.is_empty() {
        return Err(ApiError::method_not_supported(
            crate::rest::subject(res, &ctx.info.name),
            &ctx.info.verb,
        ));
    }
    let mut obj = codec::decode_body(
        ctx.header(header::CONTENT_TYPE),
        body,
        crate::rest::max_decoded(api),
    )?;
    if !obj.is_object() {
        return Err(ApiError::bad_request("the request body must be an object"));
    }
    canopy_core::meta::ensure_object(&mut obj)
        .insert("apiVersion".into(), json!(res.desc.api_version()));
    canopy_core::meta::ensure_object(&mut obj).insert("kind".into(), json!(res.desc.kind));
    if !obj.get("metadata").is_some_and(Value::is_object) {
        canopy_core::meta::ensure_object(&mut obj).insert("metadata".into(), json!({}));
    }
    let cluster = ctx.cluster.as_deref().unwrap_or("root");
    let status = match res.desc.kind.as_str() {
        "SelfSubjectReview" => json!({"userInfo": user_info_json(&ctx.user)}),
        "TokenReview" => {
            let token = obj
                .pointer("/spec/token")
                .and_then(Value::as_str)
                .unwrap_or("");
            match api.inner.auth.authenticate(token) {
                Ok(u) => {
                    json!({"authenticated": true, "user": user_info_json(&u), "audiences": obj.pointer("/spec/audiences").cloned().unwrap_or(json!([]))})
                }
                Err(_) => {
                    json!({"authenticated": false, "error": "invalid bearer token", "user": {}})
                }
            }
        }
        "SelfSubjectAccessReview" => access_status(api, cluster, &ctx.user, obj.get("spec"), None)?,
        "SubjectAccessReview" => {
            let u = spec_user(obj.get("spec"))?;
            access_status(api, cluster, &u, obj.get("spec"), None)?
        }
        "LocalSubjectAccessReview" => {
            let u = spec_user(obj.get("spec"))?;
            let ns = obj
                .pointer("/spec/resourceAttributes/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            if ns != ctx.info.namespace {
                return Err(ApiError::invalid(
                    &res.desc.kind,
                    &res.desc.group,
                    "",
                    vec![Cause::invalid(
                        "spec.resourceAttributes.namespace",
                        &json!(ns),
                        "must match metadata.namespace",
                    )],
                ));
            }
            access_status(api, cluster, &u, obj.get("spec"), Some(&ctx.info.namespace))?
        }
        "SelfSubjectRulesReview" => {
            let ns = obj
                .pointer("/spec/namespace")
                .and_then(Value::as_str)
                .unwrap_or("");
            let rules = authz::rules(&api.inner.store, cluster, &ctx.user, ns);
            let (res_rules, nr_rules): (Vec<_>, Vec<_>) =
                rules.iter().partition(|r| r.non_resource_urls.is_empty());
            json!({
                "resourceRules": res_rules.iter().map(|r| json!({
                    "verbs": r.verbs, "apiGroups": r.api_groups, "resources": r.resources, "resourceNames": r.resource_names,
                })).collect::<Vec<_>>(),
                "nonResourceRules": nr_rules.iter().map(|r| json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls})).collect::<Vec<_>>(),
                "incomplete": false,
            })
        }
        other => return Err(ApiError::internal(format!("no review handler for {other}"))),
    };
    canopy_core::meta::ensure_object(&mut obj).insert("status".into(), status);
    Ok(response::json(201, &obj))
}

fn user_info_json(u: &UserInfo) -> Value {
    let mut v = json!({"username": u.name, "groups": u.groups});
    if !u.uid.is_empty() {
        canopy_core::meta::ensure_object(&mut v).insert("uid".into(), json!(u.uid));
    }
    if !u.extra.is_empty() {
        canopy_core::meta::ensure_object(&mut v).insert("extra".into(), json!(u.extra));
    }
    v
}

fn spec_user(spec: Option<&Value>) -> Result<UserInfo, ApiError> {
    let spec = spec.ok_or_else(|| {
        ApiError::invalid(
            "SubjectAccessReview",
            "authorization.k8s.io",
            "",
            vec![Cause::required("spec", "")],
        )
    })?;
    let name = spec
        .get("user")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if name.is_empty() && groups.is_empty() {
        return Err(ApiError::invalid(
            "SubjectAccessReview",
            "authorization.k8s.io",
            "",
            vec![Cause::invalid(
                "spec.user",
                &json!(""),
                "at least one of user or group must be specified",
            )],
        ));
    }
    Ok(UserInfo {
        name,
        uid: spec
            .get("uid")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        groups,
        extra: Default::default(),
    })
}

fn access_status(
    api: &ApiServer,
    cluster: &str,
    user: &UserInfo,
    spec: Option<&Value>,
    namespace: Option<&str>,
) -> Result<Value, ApiError> {
    let spec = spec.cloned().unwrap_or(json!({}));
    let s = |v: Option<&Value>, k: &str| {
        v.and_then(|o| o.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ra = spec.get("resourceAttributes");
    let nra = spec.get("nonResourceAttributes");
    let allowed = match (ra, nra) {
        (Some(ra), None) => {
            let ns = namespace
                .map(str::to_string)
                .unwrap_or_else(|| s(Some(ra), "namespace"));
            let (verb, group, resource, sub, name) = (
                s(Some(ra), "verb"),
                s(Some(ra), "group"),
                s(Some(ra), "resource"),
                s(Some(ra), "subresource"),
                s(Some(ra), "name"),
            );
            authz::allowed(
                &api.inner.store,
                cluster,
                &Attributes {
                    user,
                    verb: &verb,
                    is_resource_request: true,
                    namespace: &ns,
                    api_group: &group,
                    resource: &resource,
                    subresource: &sub,
                    name: &name,
                    path: "",
                },
            )
        }
        (None, Some(nra)) => {
            let (verb, path) = (s(Some(nra), "verb"), s(Some(nra), "path"));
            authz::allowed(
                &api.inner.store,
                cluster,
                &Attributes {
                    user,
                    verb: &verb,
                    is_resource_request: false,
                    namespace: "",
                    api_group: "",
                    resource: "",
                    subresource: "",
                    name: "",
                    path: &path,
                },
            )
        }
        _ => {
            return Err(ApiError::invalid(
                "SelfSubjectAccessReview",
                "authorization.k8s.io",
                "",
                vec![Cause::invalid(
                    "spec.resourceAttributes",
                    &Value::Null,
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )],
            ))
        }
    };
    Ok(match allowed {
        Some(reason) => json!({"allowed": true, "reason": reason}),
        None => json!({"allowed": false}),
    })
}
