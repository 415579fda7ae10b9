//! The HTTP API (see `canopy_cache::wire` for the endpoints): routing, authentication
//! (bearer tokens the cache server issued), authorization (a shard writes only its own
//! objects; shards and readers read), handlers, and NDJSON watch streams. Every error is
//! a kube `Status`.

// Handlers answer `Err(Status)`, turned into the response right away.
#![allow(clippy::result_large_err)]

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canopy_auth::TokenIssuer;
use canopy_cache::wire::{
    EventType, Key, Op, Status, SyncRequest, SyncResponse, WriteRequest, WriteResponse, API_PREFIX,
    READER_GROUP, SHARD_GROUP, SHARD_USER_PREFIX,
};
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

use crate::metrics::Metrics;
use crate::store::{event_line, Filter, MemStore, StoreError};

pub type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted.
const MAX_BODY: usize = 256 << 20;

/// Everything a request needs.
pub struct App {
    pub store: MemStore,
    pub tokens: Arc<TokenIssuer>,
    pub metrics: Metrics,
    pub bookmark_interval: Duration,
    /// Becomes true when the server stops: open watches end.
    pub shutdown: watch::Receiver<bool>,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Caller {
    Shard(String),
    Reader(String),
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn json<T: Serialize>(code: u16, v: &T) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn text(code: u16, content_type: &'static str, s: String) -> Response<Body> {
    let mut r = Response::new(full(s));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

fn error(s: &Status) -> Response<Body> {
    let mut r = json(s.code, s);
    if s.code == 401 {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"canopy-cache\""),
        );
    }
    r
}

impl App {
    fn authenticate(&self, req: &Request<Incoming>) -> Result<Caller, Status> {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(Status::unauthorized)?;
        let user = self
            .tokens
            .authenticate(token)
            .map_err(|_| Status::unauthorized())?;
        if user.in_group(SHARD_GROUP) {
            if let Some(shard) = user.name.strip_prefix(SHARD_USER_PREFIX) {
                return Ok(Caller::Shard(shard.to_string()));
            }
        }
        if user.in_group(READER_GROUP) {
            return Ok(Caller::Reader(user.name));
        }
        Err(Status::forbidden(format!(
            "user {:?} may not access the cache server",
            user.name
        )))
    }
}

fn may_write(caller: &Caller, shard: &str) -> Result<(), Status> {
    match caller {
        Caller::Shard(s) if s == shard => Ok(()),
        Caller::Shard(s) => Err(Status::forbidden(format!(
            "shard {s:?} may not write objects of shard {shard:?}"
        ))),
        Caller::Reader(name) => Err(Status::forbidden(format!(
            "user {name:?} may only read from the cache server"
        ))),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(req: Request<Incoming>) -> Result<T, Status> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| Status::failure(413, "RequestEntityTooLarge", e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&body)
        .map_err(|e| Status::bad_request(format!("invalid request body: {e}")))
}

fn store_error(e: StoreError) -> Status {
    match e {
        StoreError::Invalid(m) => Status::failure(422, "Invalid", m),
        e @ StoreError::Gone { .. } => Status::gone(e.to_string()),
    }
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// Handles one request.
pub async fn handle(app: Arc<App>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match path.as_str() {
        "/healthz" | "/livez" | "/readyz" => return text(200, "text/plain", "ok".into()),
        _ => {}
    }
    let (verb, resp) = route(&app, req, &path).await;
    let resp = resp.unwrap_or_else(|s| error(&s));
    app.metrics.request(verb, resp.status().as_u16());
    resp
}

async fn route(
    app: &Arc<App>,
    req: Request<Incoming>,
    path: &str,
) -> (&'static str, Result<Response<Body>, Status>) {
    let caller = match app.authenticate(&req) {
        Ok(c) => c,
        Err(s) => return ("unauthenticated", Err(s)),
    };
    if path == "/metrics" {
        return ("metrics", metrics(app));
    }
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return (
            "unknown",
            Err(Status::not_found(format!("no such path {path:?}"))),
        );
    };
    let segments: Vec<String> = rest
        .split('/')
        .skip(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let method = req.method().clone();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (segs.as_slice(), &method) {
        (["objects"], &Method::GET) => {
            let q = query(&req);
            if q.iter()
                .any(|(k, v)| k == "watch" && (v == "true" || v == "1"))
            {
                ("watch", watch_objects(app, &q))
            } else {
                ("list", list(app, &q))
            }
        }
        (["shards", shard], &Method::GET) => {
            ("status", Ok(json(200, &app.store.shard_status(shard))))
        }
        (["shards", shard, "objects"], &Method::POST) => {
            let shard = shard.to_string();
            ("write", write(app, &caller, &shard, req).await)
        }
        (["shards", shard, "sync"], &Method::PUT) => {
            let shard = shard.to_string();
            ("sync", sync(app, &caller, &shard, req).await)
        }
        (["objects"], _) | (["shards", _], _) | (["shards", _, "objects" | "sync"], _) => (
            "unknown",
            Err(Status::failure(
                405,
                "MethodNotAllowed",
                format!("{method} is not allowed on {path}"),
            )),
        ),
        _ => (
            "unknown",
            Err(Status::not_found(format!("no such path {path:?}"))),
        ),
    }
}

fn metrics(app: &App) -> Result<Response<Body>, Status> {
    Ok(text(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        app.metrics.encode(),
    ))
}

fn observe(app: &App) {
    app.metrics.objects.set(app.store.len() as f64);
    app.metrics
        .resource_version
        .set(app.store.current_rv() as f64);
    app.metrics
        .synced_shards
        .set(app.store.synced_shards().len() as f64);
}

async fn write(
    app: &App,
    caller: &Caller,
    shard: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Status> {
    may_write(caller, shard)?;
    let body: WriteRequest = read_json(req).await?;
    let ops: Vec<Op> = body.ops;
    let rv = app.store.write(shard, ops).map_err(store_error)?;
    observe(app);
    Ok(json(
        200,
        &WriteResponse {
            instance: app.store.instance().to_string(),
            resource_version: rv,
        },
    ))
}

async fn sync(
    app: &App,
    caller: &Caller,
    shard: &str,
    req: Request<Incoming>,
) -> Result<Response<Body>, Status> {
    may_write(caller, shard)?;
    let body: SyncRequest = read_json(req).await?;
    let keys: Vec<Key> = body.keys;
    let (rv, deleted) = app.store.sync(shard, keys).map_err(store_error)?;
    observe(app);
    tracing::info!(shard, deleted, "shard synced");
    Ok(json(
        200,
        &SyncResponse {
            instance: app.store.instance().to_string(),
            resource_version: rv,
            deleted,
        },
    ))
}

fn filter(q: &[(String, String)]) -> Filter {
    let one = |k: &str| {
        q.iter()
            .find(|(n, v)| n == k && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Filter {
        resources: q
            .iter()
            .filter(|(k, v)| k == "resource" && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect(),
        shard: one("shard"),
        cluster: one("cluster"),
    }
}

fn list(app: &App, q: &[(String, String)]) -> Result<Response<Body>, Status> {
    Ok(json(200, &app.store.list(&filter(q))))
}

fn watch_objects(app: &Arc<App>, q: &[(String, String)]) -> Result<Response<Body>, Status> {
    let f = filter(q);
    let from: u64 = match q.iter().find(|(k, _)| k == "resourceVersion") {
        Some((_, v)) => v
            .parse()
            .map_err(|_| Status::bad_request(format!("invalid resourceVersion {v:?}")))?,
        None => {
            return Err(Status::bad_request(
                "a watch needs a resourceVersion (from a list)",
            ))
        }
    };
    let (initial, rx) = app.store.watch(from).map_err(store_error)?;
    let (tx, body_rx) = mpsc::channel::<Bytes>(256);
    let task = WatchTask {
        app: app.clone(),
        filter: f,
        last_rv: from,
    };
    tokio::spawn(task.run(initial, rx, tx));
    let stream = tokio_stream::wrappers::ReceiverStream::new(body_rx);
    let body = StreamBody::new(futures::StreamExt::map(stream, |b| {
        Ok::<_, Infallible>(Frame::data(b))
    }));
    let mut resp = Response::new(body.boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(app.store.instance()) {
        resp.headers_mut()
            .insert(canopy_cache::wire::INSTANCE_HEADER, v);
    }
    Ok(resp)
}

struct WatchTask {
    app: Arc<App>,
    filter: Filter,
    /// Every event up to here has been delivered or filtered out.
    last_rv: u64,
}

impl WatchTask {
    async fn run(
        mut self,
        initial: Vec<Arc<crate::store::Event>>,
        mut rx: broadcast::Receiver<Arc<crate::store::Event>>,
        tx: mpsc::Sender<Bytes>,
    ) {
        self.app.metrics.watchers.increment(1.0);
        self.stream(initial, &mut rx, &tx).await;
        self.app.metrics.watchers.decrement(1.0);
    }

    async fn stream(
        &mut self,
        initial: Vec<Arc<crate::store::Event>>,
        rx: &mut broadcast::Receiver<Arc<crate::store::Event>>,
        tx: &mpsc::Sender<Bytes>,
    ) {
        for ev in initial {
            self.last_rv = ev.rv;
            if self.filter.matches(&ev) && tx.send(ev.line.clone()).await.is_err() {
                return;
            }
        }
        let mut shutdown = self.app.shutdown.clone();
        let mut tick = tokio::time::interval(self.app.bookmark_interval);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
                _ = tx.closed() => return,
                _ = tick.tick() => {
                    let line = event_line(EventType::Bookmark, self.last_rv, None, None);
                    if tx.send(line).await.is_err() {
                        return;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.rv <= self.last_rv {
                            continue; // already in the initial events
                        }
                        self.last_rv = ev.rv;
                        if self.filter.matches(&ev) && tx.send(ev.line.clone()).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let status = Status::gone("the watch fell too far behind; list again");
                        let line = serde_json::json!({"type": "ERROR", "resourceVersion": self.last_rv.to_string(), "status": status});
                        let mut b = serde_json::to_vec(&line).unwrap_or_default();
                        b.push(b'\n');
                        let _ = tx.send(Bytes::from(b)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canopy_cache::wire::reader_user;

    #[test]
    fn only_a_shard_writes_its_own_objects() {
        assert!(may_write(&Caller::Shard("a".into()), "a").is_ok());
        let e = may_write(&Caller::Shard("b".into()), "a").unwrap_err();
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "shard \"b\" may not write objects of shard \"a\""
        );
        assert_eq!(
            may_write(&Caller::Reader(reader_user("fp")), "a")
                .unwrap_err()
                .code,
            403
        );
    }
}
