//! Watch: newline-delimited JSON `WatchEvent`s streamed from the watch cache, with
//! bookmarks and watch-list (`sendInitialEvents`) as kube-apiserver does them.
//!
//! Selector semantics follow kube's watch cache: an object that stops matching a
//! selector is delivered as `DELETED`, one that starts matching as `ADDED`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use canopy_core::{ApiError, Cause};
use canopy_storage::{EventType, StorageError, WatchEvent, WatchStart};
use http::{header, HeaderValue, Response};
use http_body_util::BodyExt;
use hyper::body::Frame;
use serde_json::{json, Value};

use crate::codec::{self, Form};
use crate::pipeline::Ctx;
use crate::registry::{table, Resource};
use crate::response::Body;
use crate::rest::{storage_error, Selectors};
use crate::ApiServer;

const BOOKMARK_EVERY: Duration = Duration::from_secs(60);
/// A deadline for watches whose `timeoutSeconds` overflows the clock (about 30 years).
const FAR_FUTURE: Duration = Duration::from_secs(1 << 30);

fn invalid(causes: Vec<Cause>) -> ApiError {
    ApiError::invalid("ListOptions", "meta.k8s.io", "", causes)
}

pub fn serve(api: &ApiServer, ctx: &Ctx, res: &Resource) -> Result<Response<Body>, ApiError> {
    let sel = Selectors::from_ctx(ctx, res)?;
    let form = codec::negotiate(ctx.header(header::ACCEPT))?;
    let bookmarks = ctx.q("allowWatchBookmarks") == Some("true");
    let rv_param = ctx.q("resourceVersion");
    let rv_match = ctx.q("resourceVersionMatch");
    let send_initial = match ctx.q("sendInitialEvents") {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid sendInitialEvents {other:?}"
            )))
        }
    };
    if let Some(rv) = rv_param {
        if rv.parse::<u64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "invalid resource version {rv:?}"
            )));
        }
    }
    let mut causes = Vec::new();
    if send_initial.is_some() {
        if rv_match != Some("NotOlderThan") {
            causes.push(Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !bookmarks {
            causes.push(Cause::forbidden(
                "allowWatchBookmarks",
                "sendInitialEvents requires setting allowWatchBookmarks to true",
            ));
        }
    } else if rv_match.is_some() {
        causes.push(Cause::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    if !causes.is_empty() {
        return Err(invalid(causes));
    }
    let timeout = match ctx.q("timeoutSeconds") {
        // kube's ListOptions.timeoutSeconds is an int64
        Some(t) => match t.parse::<i64>().ok().and_then(|v| u64::try_from(v).ok()) {
            Some(secs) => Duration::from_secs(secs),
            None => {
                return Err(ApiError::bad_request(format!(
                    "invalid timeoutSeconds {t:?}"
                )))
            }
        },
        None => Duration::from_secs(1800 + rand::random::<u64>() % 1800),
    };

    let store = &api.inner.store;
    let storage_key = res.desc.storage_key();
    let start = match (send_initial, rv_param) {
        (Some(true), _) => WatchStart::WithInitialState,
        (Some(false), None) | (Some(false), Some("0")) => WatchStart::After(store.current_rv()),
        (_, None) | (_, Some("0")) => WatchStart::WithInitialState,
        (_, Some(rv)) => WatchStart::After(rv.parse().unwrap_or(0)),
    };
    let namespace =
        (res.desc.namespaced && !ctx.info.namespace.is_empty()).then(|| ctx.info.namespace.clone());
    let name_pin = (!ctx.info.name.is_empty()).then(|| ctx.info.name.clone());
    // registered where only events of this cluster and namespace reach it
    let watcher = match store.watch_scoped(
        &storage_key,
        ctx.cluster.as_deref(),
        namespace.as_deref(),
        start,
    ) {
        Ok(w) => Ok(w),
        // kube answers 200 and an ERROR event for a too-old resourceVersion
        Err(e @ StorageError::Expired { .. }) => Err(frame(
            "ERROR",
            &serde_json::to_vec(&storage_error(res, "", e).to_status()).unwrap_or_default(),
        )),
        Err(e) => return Err(storage_error(res, "", e)),
    };
    let enc = Encoder {
        form,
        res: res.clone(),
        include_object: ctx.q("includeObject").unwrap_or("Metadata").to_string(),
        first: true,
        api_version: res.desc.api_version(),
    };
    // every event this watch writes is counted (kube's `apiserver_watch_events_total`)
    let events = api
        .inner
        .metrics
        .watch_events(&res.desc.group, &res.desc.version, &res.desc.kind);
    let body = match watcher {
        Ok(w) => {
            let filter = WatchFilter {
                sel,
                res: res.clone(),
                name_pin,
                bookmarks,
                initial_end: send_initial == Some(true),
                enc,
            };
            WatchBody::new(filter.frames(w, timeout, api.inner.shutdown.subscribe(), events))
        }
        Err(error) => WatchBody::new(futures::stream::once(async move {
            events.increment(1);
            error
        })),
    };
    let mut resp = Response::new(body.boxed());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

fn frame(kind: &str, object: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(object.len() + 32);
    put_frame(&mut b, kind, object);
    b.freeze()
}

/// Appends one newline-delimited `WatchEvent` to `b`.
fn put_frame(b: &mut BytesMut, kind: &str, object: &[u8]) {
    b.put_slice(b"{\"type\":\"");
    b.put_slice(kind.as_bytes());
    b.put_slice(b"\",\"object\":");
    b.put_slice(object);
    b.put_slice(b"}\n");
}

/// The Status of a watch ended for falling behind: 410 Expired, as kube-apiserver ends a
/// watch it cannot keep up (so client-go and kube-rs re-list), with the resourceVersion
/// the watcher has every event up to in `metadata.resourceVersion`: a client that
/// watches again from there misses nothing and sees nothing twice.
fn behind_status(res: &Resource, e: StorageError) -> Value {
    let resume = match &e {
        StorageError::WatcherBehind { resume_rv, .. } => Some(*resume_rv),
        _ => None,
    };
    let mut status = storage_error(res, "", e).to_status();
    if let (Some(rv), Some(meta)) = (resume, status.get_mut("metadata")) {
        if let Some(m) = meta.as_object_mut() {
            m.insert("resourceVersion".into(), Value::String(rv.to_string()));
        }
    }
    status
}

struct Encoder {
    form: Form,
    res: Resource,
    include_object: String,
    first: bool,
    api_version: String,
}

impl Encoder {
    fn object(&mut self, ev_obj: &canopy_storage::StoredObject) -> Bytes {
        let converted = self.res.strategy.from_storage(&ev_obj.value);
        let value = converted.as_ref().unwrap_or(&ev_obj.value);
        match self.form {
            Form::Json if converted.is_none() => ev_obj.json.clone(),
            Form::Json => Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
            Form::Table => {
                let cols = self.res.strategy.columns();
                let meta = json!({"resourceVersion": ev_obj.rv.to_string()});
                let t = table::table(&[value], &cols, meta, &self.include_object, self.first);
                self.first = false;
                Bytes::from(serde_json::to_vec(&t).unwrap_or_default())
            }
            Form::PartialObjectMetadata | Form::PartialObjectMetadataList => {
                Bytes::from(serde_json::to_vec(&table::partial_metadata(value)).unwrap_or_default())
            }
        }
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let mut meta = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            canopy_core::meta::ensure_object(&mut meta).insert(
                "annotations".into(),
                json!({"k8s.io/initial-events-end": "true"}),
            );
        }
        let obj: Value = match self.form {
            Form::Json => {
                json!({"kind": self.res.desc.kind, "apiVersion": self.api_version, "metadata": meta})
            }
            Form::Table => {
                json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": rv.to_string()}, "columnDefinitions": [], "rows": []})
            }
            _ => {
                json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
            }
        };
        frame("BOOKMARK", &serde_json::to_vec(&obj).unwrap_or_default())
    }
}

/// What one watch delivers and how: its selectors, name, bookmarks and encoding.
struct WatchFilter {
    sel: Selectors,
    res: Resource,
    name_pin: Option<String>,
    bookmarks: bool,
    initial_end: bool,
    enc: Encoder,
}

impl WatchFilter {
    fn matches(&self, obj: &canopy_storage::StoredObject) -> bool {
        if let Some(n) = &self.name_pin {
            if &obj.key.name != n {
                return false;
            }
        }
        self.sel.matches(&self.res, &obj.value)
    }

    /// The event type to deliver for a change, or None to skip it.
    fn classify(&self, ev: &WatchEvent) -> Option<&'static str> {
        let now = self.matches(&ev.object);
        match ev.kind {
            EventType::Added => now.then_some("ADDED"),
            EventType::Deleted => {
                let before = ev.prev.as_ref().map(|p| self.matches(p)).unwrap_or(now);
                before.then_some("DELETED")
            }
            EventType::Modified => {
                let before = ev.prev.as_ref().map(|p| self.matches(p));
                match (before, now) {
                    (Some(true), true) | (None, true) => Some("MODIFIED"),
                    (Some(false), true) => Some("ADDED"),
                    (Some(true), false) => Some("DELETED"),
                    _ => None,
                }
            }
        }
    }

    /// The watch's response body as a stream of chunks, produced only when the
    /// connection asks for more (no task and no channel of its own per watch: a
    /// connection's writer polls it directly, so an event for 10,000 watches costs
    /// 10,000 polls, not 10,000 task wake-ups plus 10,000 channel hand-offs). It ends
    /// at the client's `timeoutSeconds`, at shutdown, or after an ERROR event; dropping
    /// it (the client went away) unregisters the watcher.
    fn frames(
        self,
        mut w: canopy_storage::Watcher,
        timeout: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
        events: canopy_metrics::Counter,
    ) -> impl futures::Stream<Item = Bytes> + Send + 'static {
        // `timeoutSeconds` is the client's: far beyond any instant the clock can hold
        // (i64::MAX seconds) means "no deadline of its own"
        let now = tokio::time::Instant::now();
        let deadline = now.checked_add(timeout).unwrap_or_else(|| now + FAR_FUTURE);
        let mut tick = tokio::time::interval_at(now + BOOKMARK_EVERY, BOOKMARK_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let frames = Frames {
            last_rv: w.start_rv,
            initial: std::mem::take(&mut w.initial).into_iter(),
            initial_done: false,
            w,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            shutdown: Box::pin(async move {
                let _ = shutdown.wait_for(|down| *down).await;
            }),
            tick,
            finished: false,
            filter: self,
            events,
        };
        futures::stream::unfold(frames, |mut f| async move {
            let chunk = f.next_chunk().await?;
            Some((chunk, f))
        })
    }
}

/// Initial events are sent in chunks of about this many bytes.
const INITIAL_CHUNK: usize = 64 * 1024;

/// The state of one watch's body between polls.
struct Frames {
    filter: WatchFilter,
    w: canopy_storage::Watcher,
    initial: std::vec::IntoIter<Arc<WatchEvent>>,
    initial_done: bool,
    /// The resourceVersion every event up to which was delivered or skipped.
    last_rv: u64,
    /// Created once: re-arming a timer for every event would cost a timer-wheel
    /// insertion and removal per event and watch.
    deadline: Pin<Box<tokio::time::Sleep>>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    tick: tokio::time::Interval,
    finished: bool,
    /// Counts the events written (objects, bookmarks, errors), as kube-apiserver does.
    events: canopy_metrics::Counter,
}

impl Frames {
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        if !self.initial_done {
            let mut buf = BytesMut::new();
            let mut n = 0;
            for ev in self.initial.by_ref() {
                if let Some(kind) = self.filter.classify(&ev) {
                    let obj = self.filter.enc.object(&ev.object);
                    put_frame(&mut buf, kind, &obj);
                    n += 1;
                    if buf.len() >= INITIAL_CHUNK {
                        self.events.increment(n);
                        return Some(buf.freeze());
                    }
                }
            }
            self.initial_done = true;
            if self.filter.initial_end {
                buf.put_slice(&self.filter.enc.bookmark(self.last_rv, true));
                n += 1;
            }
            if !buf.is_empty() {
                self.events.increment(n);
                return Some(buf.freeze());
            }
        }
        loop {
            tokio::select! {
                _ = &mut self.deadline => break,
                _ = &mut self.shutdown => break,
                _ = self.tick.tick(), if self.filter.bookmarks => {
                    self.events.increment(1);
                    return Some(self.filter.enc.bookmark(self.last_rv, false));
                }
                next = self.w.next() => match next {
                    Ok(Some(ev)) => {
                        self.last_rv = ev.rv;
                        if let Some(kind) = self.filter.classify(&ev) {
                            let obj = self.filter.enc.object(&ev.object);
                            self.events.increment(1);
                            return Some(frame(kind, &obj));
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        self.finished = true;
                        self.events.increment(1);
                        let status = behind_status(&self.filter.res, e);
                        return Some(frame("ERROR", &serde_json::to_vec(&status).unwrap_or_default()));
                    }
                }
            }
        }
        self.finished = true;
        None
    }
}

/// A watch's response body: the chunks of a [`WatchFilter::frames`] stream.
struct WatchBody {
    // the response body type is `Sync`; the stream is only ever polled through `&mut`
    frames: sync_wrapper::SyncWrapper<Pin<Box<dyn futures::Stream<Item = Bytes> + Send>>>,
}

impl WatchBody {
    fn new(frames: impl futures::Stream<Item = Bytes> + Send + 'static) -> WatchBody {
        WatchBody {
            frames: sync_wrapper::SyncWrapper::new(Box::pin(frames)),
        }
    }
}

impl http_body::Body for WatchBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .frames
            .get_mut()
            .as_mut()
            .poll_next(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}
