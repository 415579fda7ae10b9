//! What wraps every response body the serving loop sends: it keeps the connection's
//! request counted as open until the body ends (a watch keeps its connection from being
//! idle), and turns a panic while producing the body into an error of that one
//! response (an HTTP/2 stream reset) instead of the end of the connection task and
//! every request multiplexed on it.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::Mutex;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Open requests of one connection and since when it has had none.
pub(crate) struct Activity {
    active: AtomicUsize,
    idle_since: Mutex<Instant>,
    served_any: AtomicBool,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            active: AtomicUsize::new(0),
            idle_since: Mutex::new(Instant::now()),
            served_any: AtomicBool::new(false),
        })
    }

    /// A request began; it counts until the returned guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> Active {
        self.served_any.store(true, Ordering::Release);
        self.active.fetch_add(1, Ordering::AcqRel);
        Active(self.clone())
    }

    /// `None` while a request is open; else since when none has been.
    pub(crate) fn idle_since(&self) -> Option<Instant> {
        let since = *self.idle_since.lock();
        (self.active.load(Ordering::Acquire) == 0).then_some(since)
    }

    pub(crate) fn served_any(&self) -> bool {
        self.served_any.load(Ordering::Acquire)
    }
}

/// One open request.
pub(crate) struct Active(Arc<Activity>);

impl Drop for Active {
    fn drop(&mut self) {
        let mut since = self.0.idle_since.lock();
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            *since = Instant::now();
        }
    }
}

/// A response body as served: see the module documentation.
pub struct ServedBody<B> {
    inner: Pin<Box<B>>,
    active: Option<Active>,
    panicked: bool,
}

impl<B> ServedBody<B> {
    pub(crate) fn new(inner: B, active: Active) -> Self {
        ServedBody {
            inner: Box::pin(inner),
            active: Some(active),
            panicked: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the response body panicked")]
struct BodyPanicked;

impl<B> Body for ServedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.panicked {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let inner = this.inner.as_mut();
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll_frame(cx)));
        match polled {
            Ok(Poll::Ready(None)) => {
                this.active.take();
                Poll::Ready(None)
            }
            Ok(Poll::Ready(Some(Err(e)))) => {
                this.active.take();
                Poll::Ready(Some(Err(e.into())))
            }
            Ok(other) => other.map(|o| o.map(|r| r.map_err(Into::into))),
            Err(_) => {
                tracing::error!("a response body panicked; ending that response");
                this.panicked = true;
                this.active.take();
                Poll::Ready(Some(Err(Box::new(BodyPanicked))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.panicked || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.panicked {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}
