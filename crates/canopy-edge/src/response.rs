//! The one rendering of an [`ApiError`] as an HTTP response, shared by the shard and
//! the front-proxy so a client sees the same bytes and headers from either.

use canopy_core::ApiError;
use http::{header, HeaderValue, Response, StatusCode};

/// A kube `Status` failure response: the error's code, `application/json`, a
/// `Retry-After` header when the error carries a hint (429s), and
/// `WWW-Authenticate: Bearer` on 401s. `body` wraps the serialized bytes in the
/// server's body type.
pub fn error_response<B>(e: &ApiError, body: impl FnOnce(Vec<u8>) -> B) -> Response<B> {
    let bytes = serde_json::to_vec(&e.to_status()).unwrap_or_else(|_| b"{}".to_vec());
    let mut r = Response::new(body(bytes));
    *r.status_mut() = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(secs) = e.retry_after_seconds {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if e.code == 401 {
        h.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"canopy\""),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_with_kube_headers() {
        let r = error_response(&ApiError::too_many_requests("slow down", 3), |b| b);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[header::RETRY_AFTER], "3");
        let v: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
        assert_eq!(v["kind"], "Status");
        assert_eq!(v["code"], 429);
        let r = error_response(&ApiError::unauthorized(), |b| b);
        assert_eq!(r.status(), 401);
        assert!(r.headers().contains_key(header::WWW_AUTHENTICATE));
    }
}
