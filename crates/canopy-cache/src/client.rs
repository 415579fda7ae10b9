//! An HTTPS client of the cache server: TLS trusting a given CA (rustls), a bearer token
//! read from memory or from a file (re-read on every request, so a rotated token file is
//! picked up without a restart), and one method per endpoint of [`crate::wire`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::wire::{
    Key, ObjectList, Op, ShardStatus, Status, SyncRequest, SyncResponse, WatchEvent, WriteRequest,
    WriteResponse, API_PREFIX,
};
use crate::CacheError;

/// How a client proves who it is.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (every request but health checks is answered 401).
    None,
    /// A bearer token issued by the cache server (`cache-server issue-token`).
    Token(String),
    /// A file holding the bearer token, re-read on every request.
    TokenFile(PathBuf),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("None"),
            Credentials::Token(_) => f.write_str("Token(..)"),
            Credentials::TokenFile(p) => write!(f, "TokenFile({})", p.display()),
        }
    }
}

/// Where the cache server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct CacheClientConfig {
    /// `https://host:port` (no trailing slash needed).
    pub url: String,
    /// PEM of the CA that signed the cache server's serving certificate.
    pub ca_cert_pem: String,
    pub credentials: Credentials,
}

/// A client of one cache server. Cheap to clone.
#[derive(Clone)]
pub struct CacheClient {
    base: Arc<str>,
    credentials: Credentials,
    http: reqwest::Client,
}

impl std::fmt::Debug for CacheClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// What to list or watch.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Resources (`group/plural`); empty means every resource.
    pub resources: Vec<String>,
    pub shard: Option<String>,
    pub cluster: Option<String>,
}

impl Query {
    pub fn resources(resources: &[String]) -> Query {
        Query {
            resources: resources.to_vec(),
            ..Default::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q: Vec<(&'static str, String)> = self
            .resources
            .iter()
            .map(|r| ("resource", r.clone()))
            .collect();
        if let Some(s) = &self.shard {
            q.push(("shard", s.clone()));
        }
        if let Some(c) = &self.cluster {
            q.push(("cluster", c.clone()));
        }
        q
    }
}

/// Time allowed for one non-watch request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl CacheClient {
    pub fn new(config: &CacheClientConfig) -> Result<CacheClient, CacheError> {
        use tokio_rustls::rustls;
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut config.ca_cert_pem.as_bytes()) {
            let c = c.map_err(|e| CacheError::Config(format!("CA certificate: {e}")))?;
            roots
                .add(c)
                .map_err(|e| CacheError::Config(format!("CA certificate: {e}")))?;
        }
        if roots.is_empty() {
            return Err(CacheError::Config(
                "no CA certificate found for the cache server".into(),
            ));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CacheError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .connect_timeout(Duration::from_secs(5))
            // a dead peer is noticed on idle connections too
            .tcp_keepalive(Duration::from_secs(15))
            .http2_keep_alive_interval(Duration::from_secs(15))
            .http2_keep_alive_timeout(Duration::from_secs(10))
            .http2_keep_alive_while_idle(true)
            .build()
            .map_err(|e| CacheError::Config(e.to_string()))?;
        Ok(CacheClient {
            base: config.url.trim_end_matches('/').into(),
            credentials: config.credentials.clone(),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    fn token(&self) -> Result<Option<String>, CacheError> {
        match &self.credentials {
            Credentials::None => Ok(None),
            Credentials::Token(t) => Ok(Some(t.clone())),
            Credentials::TokenFile(p) => std::fs::read_to_string(p)
                .map(|t| Some(t.trim().to_string()))
                .map_err(|e| CacheError::Config(format!("reading {}: {e}", p.display()))),
        }
    }

    fn request(
        &self,
        method: reqwest::Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, CacheError> {
        let mut r = self
            .http
            .request(method, format!("{}{API_PREFIX}{path}", self.base));
        if let Some(t) = self.token()? {
            r = r.bearer_auth(t);
        }
        Ok(r)
    }

    async fn send<T: DeserializeOwned>(&self, r: reqwest::RequestBuilder) -> Result<T, CacheError> {
        let resp = r
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|e| CacheError::Unavailable(error_chain(&e)))?;
        let code = resp.status().as_u16();
        let body = resp
            .bytes()
            .await
            .map_err(|e| CacheError::Unavailable(error_chain(&e)))?;
        if !(200..300).contains(&code) {
            return Err(CacheError::Status(Box::new(status_of(code, &body))));
        }
        serde_json::from_slice(&body).map_err(|e| CacheError::Decode(e.to_string()))
    }

    async fn send_json<B: Serialize, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &B,
    ) -> Result<T, CacheError> {
        let body = serde_json::to_vec(body).map_err(|e| CacheError::Decode(e.to_string()))?;
        let r = self
            .request(method, path)?
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        self.send(r).await
    }

    /// Applies `ops` to `shard`'s objects, in order.
    pub async fn write(&self, shard: &str, ops: Vec<Op>) -> Result<WriteResponse, CacheError> {
        self.send_json(
            reqwest::Method::POST,
            &format!("/shards/{}/objects", enc(shard)),
            &WriteRequest { ops },
        )
        .await
    }

    /// Declares the complete key set of `shard`: everything else of it is deleted.
    pub async fn sync(&self, shard: &str, keys: Vec<Key>) -> Result<SyncResponse, CacheError> {
        self.send_json(
            reqwest::Method::PUT,
            &format!("/shards/{}/sync", enc(shard)),
            &SyncRequest { keys },
        )
        .await
    }

    pub async fn shard_status(&self, shard: &str) -> Result<ShardStatus, CacheError> {
        let r = self.request(reqwest::Method::GET, &format!("/shards/{}", enc(shard)))?;
        self.send(r).await
    }

    pub async fn list(&self, q: &Query) -> Result<ObjectList, CacheError> {
        let r = self.request(
            reqwest::Method::GET,
            &format!("/objects?{}", encode_query(&q.pairs())),
        )?;
        self.send(r).await
    }

    /// Watches from resourceVersion `from` (exclusive). A `from` that is no longer
    /// retained fails with a 410 [`CacheError::Status`] ([`CacheError::is_gone`]), and so
    /// does a watch served by another cache-server instance than `instance` (when given:
    /// the instance `from` came from).
    pub async fn watch(
        &self,
        q: &Query,
        from: u64,
        instance: Option<&str>,
    ) -> Result<impl Stream<Item = Result<WatchEvent, CacheError>> + Send + 'static, CacheError>
    {
        let mut pairs = q.pairs();
        pairs.push(("watch", "true".into()));
        pairs.push(("resourceVersion", from.to_string()));
        let resp = self
            .request(
                reqwest::Method::GET,
                &format!("/objects?{}", encode_query(&pairs)),
            )?
            .send()
            .await
            .map_err(|e| CacheError::Unavailable(error_chain(&e)))?;
        let code = resp.status().as_u16();
        if code != 200 {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(CacheError::Status(Box::new(status_of(code, &body))));
        }
        if let Some(want) = instance {
            let got = resp
                .headers()
                .get(crate::wire::INSTANCE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if got != want {
                return Err(CacheError::Status(Box::new(Status::gone(format!(
                    "the cache server restarted (instance {got:?}, expected {want:?})"
                )))));
            }
        }
        Ok(ndjson(resp.bytes_stream()))
    }
}

/// Splits a byte stream into JSON lines.
fn ndjson<S, E>(body: S) -> impl Stream<Item = Result<WatchEvent, CacheError>> + Send + 'static
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + 'static,
    E: std::error::Error,
{
    let state = (Box::pin(body), BytesMut::new(), false);
    futures::stream::unfold(state, |(mut body, mut buf, done)| async move {
        if done {
            return None;
        }
        loop {
            if let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line = buf.split_to(i + 1);
                let line = &line[..i];
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let ev = serde_json::from_slice::<WatchEvent>(line)
                    .map_err(|e| CacheError::Decode(format!("watch event: {e}")));
                let failed = ev.is_err();
                return Some((ev, (body, buf, failed)));
            }
            match body.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(chunk.chunk()),
                Some(Err(e)) => {
                    return Some((
                        Err(CacheError::Unavailable(error_chain(&e))),
                        (body, buf, true),
                    ))
                }
                None => return None,
            }
        }
    })
}

fn encode_query(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn enc(segment: &str) -> String {
    let mut s = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn status_of(code: u16, body: &[u8]) -> Status {
    serde_json::from_slice::<Status>(body).unwrap_or_else(|_| {
        Status::failure(
            code,
            "Unknown",
            String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned(),
        )
    })
}

/// An error with its sources (reqwest's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn ndjson_splits_lines_across_chunks() {
        let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
            Ok(bytes::Bytes::from_static(b"{\"type\":\"BOOKMARK\",\"resour")),
            Ok(bytes::Bytes::from_static(
                b"ceVersion\":\"5\"}\n\n{\"type\":\"SYNCED\",\"resourceVersion\":\"6\",\"shard\":\"a\"}\n",
            )),
        ];
        let evs: Vec<_> = ndjson(futures::stream::iter(chunks)).collect().await;
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[0].as_ref().unwrap().resource_version, 5);
        assert_eq!(evs[1].as_ref().unwrap().shard.as_deref(), Some("a"));
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(enc("shard-1"), "shard-1");
        assert_eq!(enc("a/b c"), "a%2Fb%20c");
    }
}
