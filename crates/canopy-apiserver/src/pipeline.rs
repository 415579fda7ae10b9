//! The request pipeline, in named stages, with metrics around all of it:
//!
//! 1. [`authenticate`]: on a connection from the front-proxy (client certificate signed
//!    by the proxy client CA, see [`crate::server::FrontProxyPeer`]) the caller is
//!    whoever the `X-Remote-*` headers name; otherwise those headers are stripped and
//!    ignored, and the caller is whoever the bearer token names (anonymous only for the
//!    public endpoints at the top).
//! 2. request limits of the authenticated user (`canopy_edge`). When served, stages 1
//!    and 2 are the tower layers of [`crate::edge`] in front of the pipeline.
//! 3. plug-in paths outside every logical cluster ([`crate::plugin::PathHandler`]):
//!    `/internal/...` only for peers ([`is_peer`], then the handler's own check; 404
//!    for everyone else), public documents for anyone.
//! 4. the logical cluster the path means ([`crate::plugin::ClusterResolver`]).
//! 5. impersonation (`authz::impersonate`), the identity confined to that cluster.
//! 6. plug-in services for users (`/services/...`).
//! 7. [`enter`] the logical cluster (existence revealed only to who may enter), then
//!    authorization inside it (`authz::authorize`).
//! 8. dispatch: non-resource paths ([`crate::discovery`]) or the resource's handler
//!    ([`crate::rest`], [`crate::reviews`]).
//!
//! The pipeline names no plug-in: tenancy and the token service come in through
//! [`crate::plugin::Plugins`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use canopy_auth::UserInfo;
use canopy_core::{ApiError, ClusterSelector, RequestInfo};
use http::{header, HeaderMap, Method, Request, Response};
use http_body_util::BodyExt;

use crate::plugin::{Audience, PathHandler, PathRequest};
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
    matches!(path, "/healthz" | "/livez" | "/readyz" | "/version")
        || path.starts_with("/healthz/")
        || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
}

/// Whether a request comes from a peer: the connection presented a client certificate
/// of the proxy client CA, the identity it forwards is a system identity in
/// `system:masters`, and nobody asked to impersonate. Which peers may call which path
/// is the handler's to say ([`PathHandler::peer_allowed`]).
fn is_peer(from_proxy: bool, user: &UserInfo, headers: &HeaderMap) -> bool {
    from_proxy
        && user.in_group("system:masters")
        && user.name.starts_with("system:")
        && !headers
            .keys()
            .any(|k| k.as_str().starts_with("impersonate-"))
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
    // Authenticated by the edge (`edge.rs`) when served; called directly (tests,
    // benches), the pipeline authenticates itself.
    let authenticated = parts.extensions.remove::<crate::edge::Authenticated>();
    let forwarded_user = if from_proxy && authenticated.is_none() {
        forwarded_user(&parts.headers)
    } else {
        None
    };
    canopy_edge::strip_identity_headers(&mut parts.headers);
    let path = parts.uri.path().to_string();
    let raw_query = parts.uri.query();
    let info = match parts.extensions.remove::<RequestInfo>() {
        Some(info) => info,
        None => RequestInfo::parse(parts.method.as_str(), &path, raw_query)
            .map_err(|e| (("unknown".to_string(), String::new()), e))?,
    };
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

    // 1. Authentication (and 2. request limits, keyed on the authenticated user): done
    // by the edge layers when served (`edge.rs`).
    let user = match authenticated {
        Some(crate::edge::Authenticated(u)) => u,
        None => authenticate(api, &parts.headers, forwarded_user, &info).map_err(fail)?,
    };

    // 3. Plug-in paths outside every logical cluster (`/internal/...` for peers,
    // `/services/...` for users, public documents), each behind its audience.
    let route = match info.cluster {
        ClusterSelector::None => api.inner.plugins.route(&info.path),
        _ => None,
    };
    let peer_path = info.path == "/internal" || info.path.starts_with("/internal/");
    if peer_path || matches!(route, Some((_, Audience::Peers))) {
        // Peer calls answer only peers: a connection with a client certificate of the
        // proxy client CA whose forwarded identity the handler accepts. No bearer token
        // and no impersonation reaches them; inside a workspace the path does not exist.
        let Some((handler, Audience::Peers)) = route else {
            return Err(fail(not_found()));
        };
        if !is_peer(from_proxy, &user, &parts.headers) || !handler.peer_allowed(&user, &info.path) {
            return Err(fail(not_found()));
        }
        let body = read_body(api, body).await.map_err(fail)?;
        return call(api, handler, &parts.method, &info.path, &query, &user, body)
            .await
            .map(|r| (labels.clone(), r))
            .map_err(fail);
    }
    if let Some((handler, Audience::Public)) = route {
        return call(
            api,
            handler,
            &parts.method,
            &info.path,
            &query,
            &user,
            Bytes::new(),
        )
        .await
        .map(|r| (labels.clone(), r))
        .map_err(fail);
    }

    // 4. The logical cluster: a path (`root:a:b`, through the resolver) or a logical
    // cluster name.
    let (cluster, prefix) = match &info.cluster {
        ClusterSelector::None => (Some("root".to_string()), String::new()),
        ClusterSelector::Wildcard => (None, "/clusters/*".to_string()),
        ClusterSelector::Named(n) => (
            Some(
                api.inner
                    .plugins
                    .resolver
                    .as_ref()
                    .and_then(|r| r.resolve(api, n))
                    .unwrap_or_else(|| n.clone()),
            ),
            format!("/clusters/{n}"),
        ),
    };

    // 5. Impersonation (checked in the target logical cluster; the identity it yields is
    // confined to that logical cluster, and acts nowhere else: not across logical
    // clusters, not in a plug-in's service).
    let user = authz::impersonate(api, cluster.as_deref(), &parts.headers, user).map_err(fail)?;
    let scope_cluster = match (&info.cluster, &route) {
        (ClusterSelector::Wildcard, _) | (_, Some(_)) => None,
        _ => cluster.as_deref(),
    };
    if !canopy_auth::impersonation::in_scope(&user, scope_cluster) && !is_public(&info.path) {
        return Err(fail(authz::forbidden_for(&user, &info)));
    }

    // Unauthenticated public endpoints need no logical cluster.
    if is_public(&info.path) && !info.is_resource_request {
        return Ok((labels, public(api, &info.path)));
    }

    // 6. A plug-in's service for users (its own authorization inside).
    if let Some((handler, _)) = route {
        let body = read_body(api, body).await.map_err(fail)?;
        return call(api, handler, &parts.method, &info.path, &query, &user, body)
            .await
            .map(|r| (labels.clone(), r))
            .map_err(fail);
    }

    // 7. Entering the logical cluster, then authorization inside it.
    enter(api, cluster.as_deref(), &user, &info).map_err(fail)?;
    // A plug-in answering the request itself authorizes it itself.
    let claimed = info
        .is_resource_request
        .then(|| api.inner.plugins.claim(&info, cluster.as_deref()))
        .flatten();
    if claimed.is_none() {
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

    let result = if let Some(handler) = claimed {
        handler.handle(api, &ctx, &res).await
    } else if res.desc.virtual_create_only {
        reviews::handle(api, &ctx, &res, &body).await
    } else {
        rest::dispatch(api, &ctx, &res, body).await
    };
    result.map(|r| (labels.clone(), r)).map_err(fail)
}

/// The identity the front-proxy forwards in `X-Remote-*` headers (believe it only on a
/// [`crate::FrontProxyPeer`] connection).
pub(crate) fn forwarded_user(headers: &HeaderMap) -> Option<UserInfo> {
    canopy_auth::requestheader::decode(
        headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))),
    )
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// Stage 1: who is calling. The front-proxy's forwarded identity on its mTLS
/// connections, else a bearer token, else anonymous for the public endpoints at the top.
pub(crate) fn authenticate(
    api: &ApiServer,
    headers: &HeaderMap,
    forwarded: Option<UserInfo>,
    info: &RequestInfo,
) -> Result<UserInfo, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match (forwarded, token) {
        (Some(u), _) => Ok(u),
        (None, Some(t)) => api
            .inner
            .auth
            .authenticate(t)
            .map_err(|_| ApiError::unauthorized()),
        (None, None)
            if info.cluster == ClusterSelector::None
                && (is_public(&info.path) || api.inner.plugins.is_public(&info.path)) =>
        {
            Ok(UserInfo {
                name: "system:anonymous".into(),
                groups: vec!["system:unauthenticated".into()],
                ..Default::default()
            })
        }
        (None, None) => Err(ApiError::unauthorized()),
    }
}

/// Stage 7a: may `user` enter `cluster` at all? Existence is revealed only to callers
/// who may enter: an unknown logical cluster and one without access get the same
/// answer. Across all logical clusters (`/clusters/*`): superusers only.
fn enter(
    api: &ApiServer,
    cluster: Option<&str>,
    user: &UserInfo,
    info: &RequestInfo,
) -> Result<(), ApiError> {
    match cluster {
        None if authz::is_superuser(user) => Ok(()),
        None => Err(ApiError::forbidden_message(format!(
            "forbidden: User {:?} cannot {} across all logical clusters",
            user.name, info.verb
        ))),
        Some(c) => {
            if api.logical_cluster_exists(c) && authz::has_access(&api.inner.store, c, user) {
                Ok(())
            } else {
                Err(authz::forbidden_for(user, info))
            }
        }
    }
}

/// Calls a plug-in's path handler.
async fn call(
    api: &ApiServer,
    handler: &Arc<dyn PathHandler>,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    user: &UserInfo,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    handler
        .handle(
            api,
            PathRequest {
                method,
                path,
                query,
                user,
                body,
            },
        )
        .await
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
        .get(api, cluster)
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
    if path.starts_with("/readyz") {
        // ready once the store is open (it is, or we would not be serving)
        return response::text(200, "ok");
    }
    response::text(200, "ok")
}
