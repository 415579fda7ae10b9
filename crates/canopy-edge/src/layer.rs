//! [`LimitsLayer`]: the limits as a `tower::Layer`, and [`PermitBody`], which holds a
//! request's permit until its response body ends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use canopy_core::ApiError;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};

use crate::{Identity, Limits, Permit, RequestKind};

/// Applies [`Limits`] to every request, keyed on the [`Identity`] extension.
///
/// Where it goes: **after** authentication (which inserts the `Identity`; a request
/// without one is limited as `system:anonymous`) and **before** routing, authorization
/// or any storage work, so a refused request costs nothing else. The front-proxy and
/// the shard both stack it this way.
///
/// A refused request is answered by `reject` (the server's own `Status` rendering, 429
/// with `Retry-After`); an admitted one's response body carries the permit
/// ([`PermitBody`]).
#[derive(Clone)]
pub struct LimitsLayer<F> {
    limits: Limits,
    reject: F,
}

impl<F> LimitsLayer<F> {
    pub fn new(limits: Limits, reject: F) -> LimitsLayer<F> {
        LimitsLayer { limits, reject }
    }
}

impl<S, F: Clone> tower::Layer<S> for LimitsLayer<F> {
    type Service = LimitsService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitsService {
            inner,
            limits: self.limits.clone(),
            reject: self.reject.clone(),
        }
    }
}

/// The service [`LimitsLayer`] makes.
#[derive(Clone)]
pub struct LimitsService<S, F> {
    inner: S,
    limits: Limits,
    reject: F,
}

impl<S, F, ReqB, B> tower::Service<Request<ReqB>> for LimitsService<S, F>
where
    S: tower::Service<Request<ReqB>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Fn(ApiError) -> Response<B> + Clone + Send + Sync + 'static,
    ReqB: Send + 'static,
    B: 'static,
{
    type Response = Response<PermitBody<B>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        // the ready service goes with this call; a clone waits for the next
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let limits = self.limits.clone();
        let reject = self.reject.clone();
        Box::pin(async move {
            let who = req
                .extensions()
                .get::<Identity>()
                .cloned()
                .unwrap_or_else(Identity::anonymous);
            // parsed already by the authentication in front, when it left it here
            let kind = match req.extensions().get::<canopy_core::RequestInfo>() {
                Some(info) => RequestKind::of(info),
                None => RequestKind::of_request(
                    req.method().as_str(),
                    req.uri().path(),
                    req.uri().query(),
                ),
            };
            match limits.admit(&who, kind).await {
                Ok(permit) => {
                    let resp = inner.call(req).await?;
                    Ok(resp.map(|b| PermitBody::new(b, Some(permit))))
                }
                Err(e) => Ok(reject(e).map(|b| PermitBody::new(b, None))),
            }
        })
    }
}

pin_project_lite::pin_project! {
    /// A response body holding its request's [`Permit`] until the body ends (or is
    /// dropped: the client went away).
    pub struct PermitBody<B> {
        #[pin]
        inner: B,
        permit: Option<Permit>,
    }
}

impl<B> PermitBody<B> {
    pub fn new(inner: B, permit: Option<Permit>) -> PermitBody<B> {
        PermitBody { inner, permit }
    }
}

impl<B: Body> Body for PermitBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.permit.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::time::Duration;

    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};
    use tower::{Layer, ServiceExt};

    use super::*;
    use crate::LimitsConfig;

    type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

    fn reject(e: ApiError) -> Response<TestBody> {
        let mut r = Response::new(Full::new(Bytes::from(e.message.clone())).boxed());
        *r.status_mut() = http::StatusCode::from_u16(e.code).unwrap();
        r
    }

    #[tokio::test]
    async fn a_watch_holds_its_slot_until_its_body_ends() {
        let limits = Limits::new(
            LimitsConfig {
                max_watches_per_user: 1,
                ..LimitsConfig::unlimited()
            },
            crate::EdgeMetrics::default(),
        );
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(1);
        let rx = std::sync::Arc::new(parking_lot::Mutex::new(Some(rx)));
        let svc = tower::service_fn(move |_req: Request<()>| {
            let rx = rx.lock().take();
            async move {
                let body: TestBody = match rx {
                    Some(rx) => StreamBody::new(tokio_stream_from(rx)).boxed(),
                    None => Full::new(Bytes::from_static(b"done")).boxed(),
                };
                Ok::<_, Infallible>(Response::new(body))
            }
        });
        let svc = LimitsLayer::new(limits.clone(), reject).layer(svc);
        let watch = || {
            let mut r = Request::get("/api/v1/configmaps?watch=true")
                .body(())
                .unwrap();
            r.extensions_mut()
                .insert(Identity::new("alice", &["system:authenticated".into()]));
            r
        };
        let first = svc.clone().oneshot(watch()).await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(limits.open_watches(), 1);
        let second = svc.clone().oneshot(watch()).await.unwrap();
        assert_eq!(second.status(), 429);
        // the stream ends: the slot is free again
        tx.send(Ok(Frame::data(Bytes::from_static(b"event"))))
            .await
            .unwrap();
        drop(tx);
        let body = tokio::time::timeout(Duration::from_secs(5), first.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"event");
        assert_eq!(limits.open_watches(), 0);
        let third = svc.oneshot(watch()).await.unwrap();
        assert_eq!(third.status(), 200);
    }

    fn tokio_stream_from<T: Send + 'static>(
        mut rx: tokio::sync::mpsc::Receiver<T>,
    ) -> impl futures::Stream<Item = T> + Send {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
