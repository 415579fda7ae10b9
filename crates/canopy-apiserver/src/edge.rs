//! The shard's edge as a tower stack, the same shape as the front-proxy's, each layer
//! with its reason:
//!
//! ```text
//! canopy_https (TLS, connection caps, timeouts, panic → 500)
//!   → AuthenticateLayer   who is calling; 401 here for bad or missing credentials, so
//!                         nothing else runs for them; client-sent X-Remote-* never
//!                         survive it
//!   → canopy_edge::LimitsLayer   rate, in-flight seats with fair queuing, watches, per
//!                         authenticated user (429); the permit rides on the body
//!   → Pipeline            impersonation, plug-in paths, logical cluster, authorization,
//!                         dispatch (`pipeline.rs`)
//! ```
//!
//! Authentication comes first because the limits key on the authenticated user (a
//! tenant cannot get a fresh bucket per forged name) and because an unauthenticated
//! caller must cost as little as possible.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use canopy_auth::UserInfo;
use canopy_core::RequestInfo;
use http::{Request, Response};

use crate::response::Body;
use crate::ApiServer;

/// Request extension: the caller, as [`AuthenticateLayer`] established it.
#[derive(Debug, Clone)]
pub struct Authenticated(pub UserInfo);

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Authenticates every request (see the module docs); a refused one is answered by
/// `reject` (the server's `Status` rendering in its body type).
#[derive(Clone)]
pub struct AuthenticateLayer<F> {
    api: ApiServer,
    reject: F,
}

impl<F> AuthenticateLayer<F> {
    pub fn new(api: ApiServer, reject: F) -> AuthenticateLayer<F> {
        AuthenticateLayer { api, reject }
    }
}

impl<S, F: Clone> tower::Layer<S> for AuthenticateLayer<F> {
    type Service = Authenticate<S, F>;

    fn layer(&self, inner: S) -> Authenticate<S, F> {
        Authenticate {
            api: self.api.clone(),
            reject: self.reject.clone(),
            inner,
        }
    }
}

/// The service [`AuthenticateLayer`] makes.
#[derive(Clone)]
pub struct Authenticate<S, F> {
    api: ApiServer,
    reject: F,
    inner: S,
}

impl<S, F, ReqB, B> tower::Service<Request<ReqB>> for Authenticate<S, F>
where
    S: tower::Service<Request<ReqB>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    F: Fn(canopy_core::ApiError) -> Response<B> + Clone + Send + Sync + 'static,
    ReqB: Send + 'static,
    B: 'static,
{
    type Response = Response<B>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<B>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let api = self.api.clone();
        let reject = self.reject.clone();
        Box::pin(async move {
            // A path that does not parse is the pipeline's to answer (400/404); it is
            // still authenticated first, as anything else.
            let info =
                RequestInfo::parse(req.method().as_str(), req.uri().path(), req.uri().query()).ok();
            let from_proxy = req.extensions().get::<crate::FrontProxyPeer>().is_some();
            let forwarded = from_proxy
                .then(|| crate::pipeline::forwarded_user(req.headers()))
                .flatten();
            canopy_edge::strip_identity_headers(req.headers_mut());
            if let Some(info) = info {
                match crate::pipeline::authenticate(&api, req.headers(), forwarded, &info) {
                    Ok(user) => {
                        req.extensions_mut()
                            .insert(canopy_edge::Identity::new(user.name.clone(), &user.groups));
                        req.extensions_mut().insert(Authenticated(user));
                        // parsed once: the limits and the pipeline read it from here
                        req.extensions_mut().insert(info);
                    }
                    Err(e) => return Ok(reject(e)),
                }
            }
            inner.call(req).await
        })
    }
}

/// The pipeline as the innermost service.
#[derive(Clone)]
pub struct Pipeline(pub ApiServer);

impl<ReqB> tower::Service<Request<ReqB>> for Pipeline
where
    ReqB: http_body::Body<Data = Bytes> + Send + 'static,
    ReqB::Error: std::error::Error + Send + Sync + 'static,
{
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Response<Body>, std::convert::Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let api = self.0.clone();
        Box::pin(async move { Ok(crate::pipeline::handle(api, req).await) })
    }
}
