//! Building HTTP responses: JSON objects, pre-serialized bytes, `Status` errors and
//! streamed bodies.

use std::convert::Infallible;

use bytes::Bytes;
use canopy_core::ApiError;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use serde_json::Value;

/// The response body type of every handler: full or streamed.
pub type Body = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn bytes(code: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

pub fn json(code: u16, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    bytes(code, "application/json", body)
}

pub fn raw_json(code: u16, body: Bytes) -> Response<Body> {
    bytes(code, "application/json", body)
}

pub fn text(code: u16, s: &str) -> Response<Body> {
    bytes(code, "text/plain; charset=utf-8", s.to_string())
}

/// A `Status` failure response (`canopy_edge::error_response`: `Retry-After` when the
/// error carries a hint, `WWW-Authenticate` on 401).
pub fn error(e: &ApiError) -> Response<Body> {
    canopy_edge::error_response(e, full)
}

/// Adds `Warning: 299 - "<text>"` headers (kubectl prints them).
pub fn with_warnings(mut r: Response<Body>, warnings: &[String]) -> Response<Body> {
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            r.headers_mut().append(header::WARNING, v);
        }
    }
    r
}
