//! Non-resource endpoints: `/version`, discovery (`/api`, `/apis`, aggregated v2 and
//! legacy), OpenAPI, `/metrics` and health.

use canopy_core::ApiError;
use http::{header, HeaderValue, Response};
use serde_json::{json, Value};

use crate::codec;
use crate::pipeline::Ctx;
use crate::registry::{Registry, Resource};
use crate::response::{self, Body};
use crate::ApiServer;

pub fn version(api: &ApiServer) -> Value {
    let v = &api.inner.config.version;
    json!({
        "major": v.major,
        "minor": v.minor,
        "gitVersion": v.git_version,
        "gitCommit": "canopy",
        "gitTreeState": "clean",
        "buildDate": "2026-11-24T00:00:00Z",
        "goVersion": "go1.25.0",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// Serves non-resource requests inside a logical cluster.
pub fn non_resource(api: &ApiServer, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    let path = ctx.info.path.trim_end_matches('/');
    let path = if path.is_empty() { "/" } else { path };
    let accept = ctx.header(header::ACCEPT);
    let apis = api.inner.apis.get(api, ctx.cluster.as_deref());
    let registry = &apis.registry;
    match path {
        "/version" => Ok(response::json(200, &version(api))),
        "/healthz" | "/livez" | "/readyz" => Ok(response::text(200, "ok")),
        // the whole shard's metrics (every tenant's resources): at the server's root
        // only (RBAC in root, so superusers), never inside a workspace
        "/metrics" if ctx.info.cluster == canopy_core::ClusterSelector::None => {
            Ok(response::bytes(
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                api.inner.metrics.render(),
            ))
        }
        "/api" => Ok(match codec::wants_aggregated_discovery(accept) {
            Some(v) => aggregated(v, &aggregated_groups(registry, true)),
            None => response::json(
                200,
                &json!({
                    "kind": "APIVersions",
                    "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address(api)}],
                }),
            ),
        }),
        "/apis" => Ok(match codec::wants_aggregated_discovery(accept) {
            Some(v) => aggregated(v, &aggregated_groups(registry, false)),
            None => response::json(200, &api_group_list(registry)),
        }),
        "/openapi/v2" => apis.openapi.v2(ctx),
        "/openapi/v3" => apis.openapi.v3_index(ctx),
        p if p.starts_with("/openapi/v3/") => {
            apis.openapi.v3_document(ctx, &p["/openapi/v3/".len()..])
        }
        "/api/v1" => Ok(response::json(200, &resource_list(registry, "", "v1"))),
        p if p.starts_with("/apis/") => {
            let rest: Vec<&str> = p["/apis/".len()..].split('/').collect();
            match rest.as_slice() {
                [group] => match api_group(registry, group) {
                    Some(g) => Ok(response::json(200, &g)),
                    None => Err(not_found()),
                },
                [group, version] => {
                    if registry
                        .group_versions()
                        .iter()
                        .any(|(g, v)| g == group && v == version)
                    {
                        Ok(response::json(
                            200,
                            &resource_list(registry, group, version),
                        ))
                    } else {
                        Err(not_found())
                    }
                }
                _ => Err(not_found()),
            }
        }
        "/" => Ok(response::json(200, &json!({"paths": root_paths(registry)}))),
        _ => Err(not_found()),
    }
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn server_address(api: &ApiServer) -> String {
    api.inner
        .config
        .external_url
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

fn root_paths(registry: &Registry) -> Vec<String> {
    let mut paths = vec![
        "/api".to_string(),
        "/api/v1".to_string(),
        "/apis".to_string(),
    ];
    for (g, v) in registry.group_versions() {
        if !g.is_empty() {
            paths.push(format!("/apis/{g}"));
            paths.push(format!("/apis/{g}/{v}"));
        }
    }
    paths.extend(
        [
            "/healthz",
            "/livez",
            "/readyz",
            "/metrics",
            "/openapi/v2",
            "/openapi/v3",
            "/version",
        ]
        .map(String::from),
    );
    paths
}

fn groups(registry: &Registry) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for (g, v) in registry.group_versions() {
        if g.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, vs)) => vs.push(v),
            None => out.push((g, vec![v])),
        }
    }
    out
}

fn group_json(name: &str, versions: &[String]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": vs,
        "preferredVersion": vs.first().cloned().unwrap_or(Value::Null),
    })
}

fn api_group_list(registry: &Registry) -> Value {
    let gs: Vec<Value> = groups(registry)
        .iter()
        .map(|(n, v)| group_json(n, v))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs})
}

fn api_group(registry: &Registry, group: &str) -> Option<Value> {
    groups(registry)
        .iter()
        .find(|(n, _)| n == group)
        .map(|(n, v)| {
            let mut g = group_json(n, v);
            canopy_core::meta::ensure_object(&mut g).insert("kind".into(), json!("APIGroup"));
            canopy_core::meta::ensure_object(&mut g).insert("apiVersion".into(), json!("v1"));
            g
        })
}

fn resources_of<'a>(
    registry: &'a Registry,
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'a Resource> + 'a {
    registry
        .all()
        .iter()
        .filter(move |r| r.desc.group == group && r.desc.version == version)
}

fn resource_list(registry: &Registry, group: &str, version: &str) -> Value {
    let mut resources = Vec::new();
    for r in resources_of(registry, group, version) {
        let d = &r.desc;
        let mut entry = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs,
        });
        if !d.short_names.is_empty() {
            canopy_core::meta::ensure_object(&mut entry)
                .insert("shortNames".into(), json!(d.short_names));
        }
        if !d.categories.is_empty() {
            canopy_core::meta::ensure_object(&mut entry)
                .insert("categories".into(), json!(d.categories));
        }
        resources.push(entry);
        for sub in &d.subresources {
            let verbs: Vec<&str> = match sub.as_str() {
                "status" => vec!["get", "patch", "update"],
                "finalize" => vec!["update"],
                "scale" => vec!["get", "patch", "update"],
                _ => vec![],
            };
            resources.push(json!({
                "name": format!("{}/{}", d.plural, sub),
                "singularName": "",
                "namespaced": d.namespaced,
                "kind": if sub == "scale" { "Scale" } else { d.kind.as_str() },
                "verbs": verbs,
            }));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources})
}

/// `apidiscovery.k8s.io` entries: for `/api` (core only) or `/apis` (every named group).
fn aggregated_groups(registry: &Registry, core: bool) -> Vec<Value> {
    let mut out = Vec::new();
    let names: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(registry)
    };
    for (group, versions) in names {
        let mut vs = Vec::new();
        for v in &versions {
            let mut resources = Vec::new();
            for r in resources_of(registry, &group, v) {
                let d = &r.desc;
                let mut e = json!({
                    "resource": d.plural,
                    "responseKind": {"group": d.group, "version": d.version, "kind": d.kind},
                    "scope": if d.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": d.singular,
                    "verbs": d.verbs,
                });
                if !d.short_names.is_empty() {
                    canopy_core::meta::ensure_object(&mut e)
                        .insert("shortNames".into(), json!(d.short_names));
                }
                if !d.categories.is_empty() {
                    canopy_core::meta::ensure_object(&mut e)
                        .insert("categories".into(), json!(d.categories));
                }
                let subs: Vec<Value> = d
                    .subresources
                    .iter()
                    .map(|s| {
                        let verbs: Vec<&str> = match s.as_str() {
                            "finalize" => vec!["update"],
                            _ => vec!["get", "patch", "update"],
                        };
                        let kind = if s == "scale" {
                            json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
                        } else {
                            json!({"group": d.group, "version": d.version, "kind": d.kind})
                        };
                        json!({"subresource": s, "responseKind": kind, "verbs": verbs})
                    })
                    .collect();
                if !subs.is_empty() {
                    canopy_core::meta::ensure_object(&mut e)
                        .insert("subresources".into(), json!(subs));
                }
                resources.push(e);
            }
            vs.push(json!({"version": v, "resources": resources, "freshness": "Current"}));
        }
        out.push(json!({"metadata": {"name": group, "creationTimestamp": null}, "versions": vs}));
    }
    out
}

fn aggregated(version: &str, items: &[Value]) -> Response<Body> {
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    });
    let mut r = response::json(200, &body);
    let ct = format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList");
    if let Ok(v) = HeaderValue::from_str(&ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

/// How OpenAPI describes a served resource.
pub fn openapi_info(
    d: &canopy_core::ResourceDescriptor,
    strategic_merge_patch: bool,
) -> canopy_openapi::ResourceInfo {
    canopy_openapi::ResourceInfo {
        group: d.group.clone(),
        version: d.version.clone(),
        kind: d.kind.clone(),
        plural: d.plural.clone(),
        namespaced: d.namespaced,
        verbs: d.verbs.clone(),
        subresources: d.subresources.clone(),
        strategic_merge_patch,
    }
}

/// OpenAPI documents of the served resources.
pub struct OpenApi {
    docs: canopy_openapi::OpenApiDocs,
}

impl OpenApi {
    /// A builder holding every resource of `registry`.
    pub fn builder(registry: &Registry) -> canopy_openapi::OpenApiBuilder {
        let mut builder = canopy_openapi::OpenApiBuilder::new();
        for r in registry.all() {
            let d = &r.desc;
            let info = openapi_info(
                d,
                canopy_patch::strategic::builtin_schema(&d.group, &d.version, &d.kind).is_some(),
            );
            let added = match builder.add_builtin(info.clone()) {
                Ok(()) => Ok(()),
                Err(_) => builder.add_resource(info, &plugin_schema(r)),
            };
            if let Err(e) = added {
                tracing::warn!(error = %e, kind = %d.kind, "no OpenAPI schema");
            }
        }
        builder
    }

    pub fn from_builder(builder: canopy_openapi::OpenApiBuilder) -> OpenApi {
        OpenApi {
            docs: builder.build(),
        }
    }

    fn v2(&self, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
        const PROTO: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
        let wants_proto = codec::parse_accept(ctx.header(header::ACCEPT))
            .first()
            .is_some_and(|r| r.mime == PROTO);
        if wants_proto {
            let (bytes, hash) = self.docs.v2_protobuf();
            let mut r = cached(ctx, bytes.to_vec(), &hash, false);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            return Ok(r);
        }
        let (bytes, hash) = self.docs.v2_document();
        Ok(cached(ctx, bytes.to_vec(), &hash, false))
    }

    fn v3_index(&self, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
        Ok(response::json(200, &self.docs.v3_index(&ctx.prefix)))
    }

    fn v3_document(&self, ctx: &Ctx, key: &str) -> Result<Response<Body>, ApiError> {
        let (bytes, hash) = self.docs.v3_document(key).ok_or_else(not_found)?;
        let immutable = ctx.q("hash") == Some(hash.as_str());
        Ok(cached(ctx, bytes.to_vec(), &hash, immutable))
    }
}

/// The schema of a kind without a `k8s-openapi` type: its strategy's, else any object.
fn plugin_schema(r: &crate::registry::Resource) -> Value {
    r.strategy
        .openapi_schema()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}))
}

fn cached(ctx: &Ctx, body: Vec<u8>, hash: &str, immutable: bool) -> Response<Body> {
    let etag = format!("\"{hash}\"");
    if ctx.header(header::IF_NONE_MATCH) == Some(etag.as_str()) {
        let mut r = response::bytes(304, "application/json", Vec::new());
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return r;
    }
    let mut r = response::bytes(200, "application/json", body);
    if let Ok(v) = HeaderValue::from_str(&etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
    let cc = if immutable {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cc));
    r
}
