//! The request pipeline: parse → authenticate → impersonate → resolve the logical
//! cluster → authorize → dispatch, with metrics around all of it.
//!
//! Authentication: on a connection from the front-proxy (client certificate signed by
//! the proxy client CA, see [`crate::server::FrontProxyPeer`]) the caller is whoever the
//! `X-Remote-*` headers name; otherwise those headers are stripped and ignored, and the
//! caller is whoever the bearer token names.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use canopy_auth::UserInfo;
use canopy_core::{ApiError, ClusterSelector, RequestInfo};
use http::{header, HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;

use crate::registry::Resource;
use crate::response::{self, Body};
use crate::{authz, discovery, rest, reviews, ApiServer};

/// What a handler knows about a request once it has been let through.
pub struct Ctx {
    pub info: RequestInfo,
    /// The logical cluster; `None` for wildcard (`/clusters/*`) requests.
    pub cluster: Option<String>,
    /// The path prefix clients use for this logical cluster (`/clusters/<name>`), for
    /// URLs the server hands out.
    pub prefix: String,
    pub user: UserInfo,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub method: Method,
}

impl Ctx {
    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
    pub fn header(&self, k: header::HeaderName) -> Option<&str> {
        self.headers.get(k).and_then(|v| v.to_str().ok())
    }
}

/// Endpoints anyone may call, even without a token (load balancer probes, `/version`).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz"
            | "/livez"
            | "/readyz"
            | "/version"
            | "/openid/v1/jwks"
            | "/.well-known/openid-configuration"
    ) || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// Whether a request to `/internal/...` comes from a shard peer (or, for the token
/// state only, a front-proxy): the connection presented a client certificate of the
/// proxy client CA, the identity it forwards is a system identity in `system:masters`,
/// and nobody asked to impersonate.
fn is_peer(from_proxy: bool, user: &UserInfo, headers: &HeaderMap, path: &str) -> bool {
    if !from_proxy || !user.in_group("system:masters") {
        return false;
    }
    if headers
        .keys()
        .any(|k| k.as_str().starts_with("impersonate-"))
    {
        return false;
    }
    if user.name.starts_with("system:shard:") {
        return true;
    }
    user.name == "system:front-proxy" && path.starts_with("/internal/tokens/state")
}

/// Paths of services that live outside every logical cluster.
fn is_service_path(path: &str) -> bool {
    path == crate::tokens::PREFIX || path.starts_with(&format!("{}/", crate::tokens::PREFIX))
}

/// Handles one request.
pub async fn handle<B>(api: ApiServer, req: Request<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let start = Instant::now();
    let method = req.method().clone();
    let (verb, resource, resp) = match handle_inner(&api, req).await {
        Ok((info, r)) => (info.0, info.1, r),
        Err((info, e)) => (info.0, info.1, response::error(&e)),
    };
    api.inner
        .metrics
        .observe(&verb, &resource, resp.status().as_u16(), start.elapsed());
    tracing::debug!(%method, verb, resource, code = resp.status().as_u16(), elapsed_ms = start.elapsed().as_secs_f64() * 1000.0, "request");
    resp
}

type Labels = (String, String);

async fn handle_inner<B>(
    api: &ApiServer,
    req: Request<B>,
) -> Result<(Labels, Response<Body>), (Labels, ApiError)>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let (mut parts, body) = req.into_parts();
    let from_proxy = parts.extensions.get::<crate::FrontProxyPeer>().is_some();
    let forwarded_user = if from_proxy {
        canopy_auth::requestheader::decode(
            parts
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
        )
    } else {
        None
    };
    strip_identity_headers(&mut parts.headers);
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query();
    let info = RequestInfo::parse(parts.method.as_str(), &path, raw_query)
        .map_err(|e| (("unknown".to_string(), String::new()), e))?;
    let labels: Labels = (
        if info.is_resource_request {
            info.verb.clone()
        } else {
            parts.method.as_str().to_ascii_uppercase()
        },
        if info.is_resource_request {
            if info.subresource.is_empty() {
                info.resource.clone()
            } else {
                format!("{}/{}", info.resource, info.subresource)
            }
        } else {
            String::new()
        },
    );
    let fail = |e: ApiError| (labels.clone(), e);
    let query = canopy_core::request::parse_query(raw_query);

    // Authentication.
    let token = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let user = match (forwarded_user, token) {
        (Some(u), _) => u,
        (None, Some(t)) => api
            .inner
            .auth
            .authenticate(t)
            .map_err(|_| fail(ApiError::unauthorized()))?,
        (None, None) if is_public(&info.path) && info.cluster == ClusterSelector::None => {
            UserInfo {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
                ..Default::default()
            }
        }
        (None, None) => return Err(fail(ApiError::unauthorized())),
    };

    // Request limits (canopy_edge: rate, in-flight seats with fair queuing per user,
    // watches per user), keyed on the authenticated user, before any other work; the
    // serving loop (server.rs) holds the permit until the response body ends.
    if let Some(slot) = parts.extensions.get::<canopy_edge::AdmissionSlot>() {
        let who = canopy_edge::Identity::new(user.name.clone(), &user.groups);
        let kind = canopy_edge::RequestKind::of(&info);
        slot.admit(&who, kind).await.map_err(fail)?;
    }

    // Logical cluster: a path (`root:a:b`) or a logical cluster name.
    let (cluster, prefix) = match &info.cluster {
        ClusterSelector::None => (Some("root".to_string()), String::new()),
        ClusterSelector::Wildcard => (None, "/clusters/*".to_string()),
        ClusterSelector::Named(n) => (
            Some(crate::workspaces::resolve_in(api, n).unwrap_or_else(|| n.clone())),
            format!("/clusters/{n}"),
        ),
    };

    // Shard-to-shard calls (placing logical clusters, token state) live outside every
    // logical cluster and answer only peers: a connection with a client certificate of
    // the proxy client CA whose forwarded identity is a shard's or the front-proxy's own
    // (the front-proxy never forwards `/internal/` for its clients). No bearer token and
    // no impersonation reaches them, and inside a workspace the path does not exist.
    if info.path == "/internal" || info.path.starts_with("/internal/") {
        if info.cluster != ClusterSelector::None
            || !is_peer(from_proxy, &user, &parts.headers, &info.path)
        {
            return Err(fail(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )));
        }
        if info.path.starts_with("/internal/tokens/") {
            return crate::tokens::serve_internal(api, &parts.method, &info.path, &query)
                .await
                .map(|r| (labels.clone(), r))
                .map_err(fail);
        }
        let method = parts.method.clone();
        let body = read_body(api, body).await.map_err(fail)?;
        return crate::internal::serve(api, &method, &info.path, body)
            .await
            .map(|r| (labels.clone(), r))
            .map_err(fail);
    }

    // Impersonation (checked in the target logical cluster; the identity it yields is
    // confined to that logical cluster).
    let user = authz::impersonate(api, cluster.as_deref(), &parts.headers, user).map_err(fail)?;

    // An identity confined to one logical cluster (impersonated) acts nowhere else: not
    // across logical clusters, not in the token service.
    let scope_cluster = match info.cluster {
        ClusterSelector::Wildcard => None,
        _ if is_service_path(&info.path) => None,
        _ => cluster.as_deref(),
    };
    if !canopy_auth::impersonation::in_scope(&user, scope_cluster) && !is_public(&info.path) {
        return Err(fail(authz::forbidden_for(&user, &info)));
    }

    // Unauthenticated public endpoints need no logical cluster.
    if is_public(&info.path) && !info.is_resource_request {
        return Ok((labels, public(api, &info.path)));
    }

    // The token service (a virtual API of its own, outside every logical cluster).
    if info.cluster == ClusterSelector::None
        && (info.path == crate::tokens::PREFIX
            || info
                .path
                .starts_with(&format!("{}/", crate::tokens::PREFIX)))
    {
        let method = parts.method.clone();
        let body = read_body(api, body).await.map_err(fail)?;
        return crate::tokens::serve(api, &method, &info.path, &query, &user, body)
            .await
            .map(|r| (labels.clone(), r))
            .map_err(fail);
    }

    match &cluster {
        None => {
            if !authz::is_superuser(&user) {
                return Err(fail(ApiError::forbidden_message(format!(
                    "forbidden: User {:?} cannot {} across all logical clusters",
                    user.name, info.verb
                ))));
            }
        }
        Some(c) => {
            // Existence is revealed only to callers who may enter: an unknown logical
            // cluster and one without access get the same answer.
            if !api.logical_cluster_exists(c) || !authz::has_access(&api.inner.store, c, &user) {
                return Err(fail(authz::forbidden_for(&user, &info)));
            }
        }
    }
    let home = info.is_resource_request
        && info.verb == "get"
        && info.resource == "workspaces"
        && info.name == "~"
        && cluster.as_deref() == Some("root");
    if !home {
        authz::authorize(api, cluster.as_deref(), &user, &info).map_err(fail)?;
    }

    let mut ctx = Ctx {
        info,
        cluster,
        prefix,
        user,
        query,
        headers: parts.headers,
        method: parts.method,
    };

    if !ctx.info.is_resource_request {
        return discovery::non_resource(api, &ctx)
            .map(|r| (labels.clone(), r))
            .map_err(fail);
    }

    let Some(res) = resolve(api, ctx.cluster.as_deref(), &ctx.info) else {
        return Err(fail(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )));
    };
    if !ctx.info.namespace.is_empty() && !res.desc.namespaced && ctx.info.resource != "namespaces" {
        return Err(fail(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )));
    }
    if ctx.info.resource == "namespaces" {
        // `/api/v1/namespaces/x` names the namespace object itself.
        ctx.info.namespace.clear();
    }

    let body = match ctx.method {
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            read_body(api, body).await.map_err(fail)?
        }
        _ => Bytes::new(),
    };

    let result = if res.desc.virtual_create_only {
        reviews::handle(api, &ctx, &res, &body).await
    } else {
        rest::dispatch(api, &ctx, &res, body).await
    };
    result.map(|r| (labels.clone(), r)).map_err(fail)
}

/// Removes `X-Remote-*` headers so no handler ever sees a client-supplied identity.
fn strip_identity_headers(headers: &mut HeaderMap) {
    let names: Vec<header::HeaderName> = headers
        .keys()
        .filter(|k| canopy_auth::requestheader::is_identity_header(k.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

fn resolve(api: &ApiServer, cluster: Option<&str>, info: &RequestInfo) -> Option<Resource> {
    let group = if info.api_prefix == "api" {
        ""
    } else {
        info.group.as_str()
    };
    if info.api_prefix == "api" && !info.group.is_empty() {
        return None;
    }
    if let Some(r) = api.inner.registry.get(group, &info.version, &info.resource) {
        return Some(r.clone());
    }
    api.inner
        .apis
        .get(&api.inner.store, cluster)
        .registry
        .get(group, &info.version, &info.resource)
        .cloned()
}

async fn read_body<B>(api: &ApiServer, body: B) -> Result<Bytes, ApiError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let limit = api.inner.config.limits.max_request_body_bytes;
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(crate::codec::body_too_large(limit))
            } else {
                Err(ApiError::bad_request(format!("reading request body: {e}")))
            }
        }
    }
}

fn public(api: &ApiServer, path: &str) -> Response<Body> {
    if path == "/version" {
        return response::json(200, &discovery::version(api));
    }
    if path == "/openid/v1/jwks" {
        return crate::tokens::jwks(api);
    }
    if path == "/.well-known/openid-configuration" {
        return response::json(
            200,
            &serde_json::json!({
                "issuer": canopy_auth::token::ISSUER,
                "jwks_uri": format!("{}/openid/v1/jwks", api.inner.config.external_url),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
            }),
        );
    }
    if path.starts_with("/readyz") {
        // ready once the store is open (it is, or we would not be serving)
        return response::text(200, "ok");
    }
    response::text(200, "ok")
}
