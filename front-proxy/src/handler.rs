//! One request through the proxy: its own endpoints, then authenticate → limits
//! (`canopy_edge::LimitsLayer`: rate, in-flight with fair queuing, watches) → route →
//! forward (see the crate documentation for why in this order).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use canopy_auth::{UserInfo, SUPERUSER_GROUPS};
use canopy_core::{ApiError, ClusterSelector, RequestInfo};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::backend::{self, BackendError, BoxError, ProxyBody};
use crate::index;
use crate::State;
use canopy_edge::{Identity, LimitsLayer};
use tower::{Layer, Service};

/// Handles one client request.
pub(crate) async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<ProxyBody> {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (resp, shard) = handle_inner(&state, req).await;
    let elapsed = start.elapsed();
    let code = resp.status().as_u16();
    state.metrics.observe(code, shard.as_deref(), elapsed);
    tracing::debug!(%method, path, code, shard = shard.as_deref().unwrap_or(""), elapsed_ms = elapsed.as_secs_f64() * 1000.0, "request");
    resp
}

/// A `Status` failure response, as a shard renders it.
pub fn status(e: &ApiError) -> Response<ProxyBody> {
    canopy_edge::error_response(e, backend::full)
}

fn text(code: u16, s: impl Into<String>) -> Response<ProxyBody> {
    let mut r = Response::new(backend::full(s.into()));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn is_health(path: &str, name: &str) -> bool {
    path == name || path.strip_prefix(name).is_some_and(|r| r.starts_with('/'))
}

/// Paths a shard answers without a token (forwarded anonymously).
fn is_public(path: &str) -> bool {
    path == "/version"
        || path == "/openid/v1/jwks"
        || path == "/.well-known/openid-configuration"
        || is_health(path, "/healthz")
        || is_health(path, "/livez")
        || is_health(path, "/readyz")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
}

fn is_superuser(u: &UserInfo) -> bool {
    SUPERUSER_GROUPS.iter().any(|g| u.in_group(g))
}

async fn handle_inner(
    state: &Arc<State>,
    req: Request<Incoming>,
) -> (Response<ProxyBody>, Option<String>) {
    let path = req.uri().path().to_string();

    // The proxy's own health endpoints: for load balancers, no token needed.
    if path == "/healthz" || path == "/livez" {
        return (text(200, "ok"), None);
    }
    if path == "/readyz" {
        if !state
            .tokens_synced
            .load(std::sync::atomic::Ordering::Acquire)
        {
            return (
                text(
                    503,
                    "token keys and revocations not received from root's shard yet",
                ),
                None,
            );
        }
        return if state.index.is_synced() {
            (text(200, "ok"), None)
        } else {
            let waiting: Vec<String> = (0..state.backends.len())
                .filter(|i| !state.index.is_shard_synced(*i))
                .map(|i| state.backends.shard(i).name.clone())
                .collect();
            (
                text(
                    503,
                    format!("index not synced yet with: {}", waiting.join(", ")),
                ),
                None,
            )
        };
    }

    // Authentication.
    let user = match bearer(req.headers()) {
        Some(t) => match state.auth.authenticate(t) {
            Ok(u) => Some(u),
            Err(_) => return (status(&ApiError::unauthorized()), None),
        },
        None => None,
    };
    if path == "/metrics" {
        return match &user {
            Some(u) if is_superuser(u) => {
                let backends = &state.backends;
                let body = state
                    .metrics
                    .render(state.index.len(), |i| backends.is_down(i));
                let mut r = text(200, body);
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                (r, None)
            }
            Some(u) => (
                status(&ApiError::forbidden_message(format!(
                    "forbidden: User {:?} cannot get path \"/metrics\"",
                    u.name
                ))),
                None,
            ),
            None => (status(&ApiError::unauthorized()), None),
        };
    }
    if user.is_none() && !is_public(&path) {
        return (status(&ApiError::unauthorized()), None);
    }
    // Shard-to-shard endpoints are never reachable through the proxy, whoever asks.
    if path == "/internal" || path.starts_with("/internal/") {
        return (
            status(&ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )),
            None,
        );
    }

    // Request limits (canopy_edge, the same as a shard's: rate, in-flight requests with
    // fair queuing per user, watches per user), as a tower layer keyed on the
    // authenticated user; they run before routing, whose misses cost a request to every
    // shard. The permit rides on the response body until it ends.
    let mut req = req;
    req.extensions_mut().insert(match &user {
        Some(u) => Identity::new(u.name.clone(), &u.groups),
        None => Identity::anonymous(),
    });
    // parsed once: the limits classify by it, forwarding picks the watch path by it
    if let Ok(info) = RequestInfo::parse(req.method().as_str(), req.uri().path(), req.uri().query())
    {
        req.extensions_mut().insert(info);
    }
    let routed = Route {
        state: state.clone(),
        user,
    };
    let reject = |e: ApiError| status(&e);
    // `Route` is always ready, so is the layer around it: no `poll_ready` needed (and
    // the future is a boxed `Send` one, nothing of the service is held across it)
    let fut = LimitsLayer::new(state.limits.clone(), reject)
        .layer(routed)
        .call(req);
    let resp = match fut.await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let shard = resp.extensions().get::<RoutedTo>().map(|r| r.0.clone());
    (resp.map(|b| b.boxed()), shard)
}

/// Routing and forwarding as the service the limits wrap.
#[derive(Clone)]
struct Route {
    state: Arc<State>,
    user: Option<UserInfo>,
}

type RouteFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>,
>;

impl tower::Service<Request<Incoming>> for Route {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = RouteFuture;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> RouteFuture {
        let state = self.state.clone();
        let user = self.user.clone();
        Box::pin(async move { Ok(route(&state, req, user).await) })
    }
}

/// Response extension: the shard a request was forwarded to (for metrics).
#[derive(Clone)]
struct RoutedTo(String);

/// Routes a request to the shard holding its logical cluster and forwards it.
async fn route(
    state: &State,
    req: Request<Incoming>,
    user: Option<UserInfo>,
) -> Response<ProxyBody> {
    let path = req.uri().path().to_string();
    let selector = match canopy_core::request::split_cluster(&path) {
        Ok((sel, _)) => sel,
        // a path the shards reject: let root's shard word the error
        Err(_) => ClusterSelector::None,
    };
    let key = match &selector {
        ClusterSelector::None | ClusterSelector::Wildcard => "root",
        ClusterSelector::Named(n) => n.as_str(),
    };
    let shard = match find(state, key).await {
        Ok(Some(shard)) => shard,
        Ok(None) if key != "root" => {
            // Unknown: answered by root's shard, which words it exactly as it does
            // for a workspace the caller may not enter.
            match find(state, "root").await {
                Ok(Some(root)) if !state.backends.is_down(root) => root,
                _ => return unknown_forbidden(&req, user.as_ref()),
            }
        }
        Ok(None) => {
            return status(&ApiError::service_unavailable(
                "no shard holds the root logical cluster yet",
                1,
            ))
        }
        Err(e) => {
            return status(&ApiError::service_unavailable(
                format!("{e}; try again later"),
                1,
            ))
        }
    };
    let shard_name = state.backends.shard(shard).name.clone();
    let mut resp = forward(state, shard, req, user.as_ref()).await;
    resp.extensions_mut().insert(RoutedTo(shard_name));
    resp
}

/// The shard holding `key` (a path or a logical cluster name): from the index, else
/// from asking the shards.
async fn find(state: &State, key: &str) -> Result<Option<usize>, index::Unsettled> {
    if let Some(r) = state.index.lookup(key) {
        return Ok(Some(r.shard));
    }
    if state.index.recently_missing(key) {
        return Ok(None);
    }
    let found = index::recheck(&state.index, &state.backends, key)
        .await?
        .map(|r| r.shard);
    state.metrics.recheck(found.is_some());
    Ok(found)
}

/// The 403 for an unknown workspace when root's shard cannot word it.
fn unknown_forbidden(req: &Request<Incoming>, user: Option<&UserInfo>) -> Response<ProxyBody> {
    let name = user.map_or("system:anonymous", |u| u.name.as_str());
    match RequestInfo::parse(req.method().as_str(), req.uri().path(), req.uri().query()) {
        Ok(info) => status(&info.forbidden(name)),
        Err(e) => status(&e),
    }
}

/// Hop-by-hop headers (RFC 9110 §7.6.1), never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

fn strip_hop_by_hop(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        h.remove(n);
    }
}

/// The most header bytes (HPACK's accounting: name + value + 32 per field) a watch may
/// carry over a shared HTTP/2 connection; a shard's HTTP/2 server accepts 16 KiB, and
/// more would end the connection. Larger ones go over HTTP/1.1.
const SHARED_HEADERS_MAX: usize = 8 * 1024;

fn header_list_size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 32)
        .sum()
}

/// Forwards a request to shard `shard`: same method, path and query; the caller's
/// identity in `X-Remote-*` headers instead of its credentials.
async fn forward(
    state: &State,
    shard: usize,
    req: Request<Incoming>,
    user: Option<&UserInfo>,
) -> Response<ProxyBody> {
    let (parts, body) = req.into_parts();
    let pq = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let uri = match state.backends.uri(shard, pq) {
        Ok(u) => u,
        Err(e) => return status(&ApiError::bad_request(e.to_string())),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    // the proxy already answered the client's 100-continue; the body streams on
    headers.remove(header::EXPECT);
    canopy_edge::strip_identity_headers(&mut headers);
    if let Some(u) = user {
        for (k, v) in canopy_auth::requestheader::encode(u) {
            match (
                HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                (Ok(k), Ok(v)) => {
                    headers.append(k, v);
                }
                _ => {
                    return status(&ApiError::bad_request(
                        "the user's name, groups or extra values cannot be sent in headers",
                    ))
                }
            }
        }
    }
    // a watch goes over its user's shared HTTP/2 connection: without a body (kube reads
    // none) and only with headers far below what the shard's HTTP/2 server accepts, so
    // that nothing in the request can end the connection ([`crate::streams`])
    let is_watch = parts
        .extensions
        .get::<RequestInfo>()
        .is_some_and(|info| info.verb == "watch");
    let shared = is_watch && header_list_size(&headers) <= SHARED_HEADERS_MAX;
    let body = if shared {
        crate::backend::empty()
    } else {
        body.map_err(|e| Box::new(e) as BoxError).boxed()
    };
    let mut out = Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.version_mut() = Version::HTTP_11;
    *out.headers_mut() = headers;
    let sent = if shared {
        let owner = user.map(|u| u.name.as_str()).unwrap_or("");
        state.backends.send_watch(shard, owner, out).await
    } else {
        state
            .backends
            .send(shard, out, false)
            .await
            .map(|r| r.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed()))
    };
    match sent {
        Ok(resp) => {
            let (mut p, b) = resp.into_parts();
            strip_hop_by_hop(&mut p.headers);
            Response::from_parts(p, b)
        }
        Err(e) => {
            let name = match &e {
                BackendError::Down(n)
                | BackendError::Connect(n, _)
                | BackendError::Failed(n, _) => n.clone(),
            };
            tracing::debug!(error = %e, "forwarding failed");
            status(&ApiError::service_unavailable(
                format!("shard {name} is unavailable; try again later"),
                1,
            ))
        }
    }
}
