//! Calls to other shards (placing, reading and deleting logical clusters; registering
//! and listing `Shard`s on root's shard). A shard authenticates to its peers like the
//! front-proxy does: a client certificate of the proxy client CA, with its system
//! identity (`system:shard:<name>` in `system:masters`) in `X-Remote-*` headers; it
//! trusts the peers' serving certificates through a CA bundle.

use std::sync::Arc;
use std::time::Duration;

use canopy_tenancy_api::{self as tapi, LogicalCluster, Shard};
use serde_json::Value;

use crate::internal::PlaceRequest;

/// A list answer: its items, whatever their kind (a missing or `null` list is empty).
#[derive(serde::Deserialize)]
struct List {
    #[serde(default, deserialize_with = "items")]
    items: Vec<Value>,
}

fn items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Value>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Vec<Value>>::deserialize(d)?.unwrap_or_default())
}

/// How a shard reaches its peers.
#[derive(Clone)]
pub struct PeerConfig {
    /// CA certificates (PEM) of the peers' serving certificates.
    pub ca_bundle_pem: String,
    /// A client certificate and key (PEM) of the proxy client CA.
    pub client_cert_pem: String,
    pub client_key_pem: String,
    /// Where root's shard is (for `Shard` objects), when this shard does not hold root.
    pub root_shard_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("peer TLS configuration: {0}")]
    Tls(String),
    #[error("calling {url}: {message}")]
    Call { url: String, message: String },
}

/// A client of the other shards.
#[derive(Clone)]
pub struct Peers {
    http: reqwest::Client,
    identity: String,
    pub root_shard_url: Option<String>,
}

impl Peers {
    pub fn new(cfg: &PeerConfig, shard_name: &str) -> Result<Peers, PeerError> {
        use tokio_rustls::rustls;
        let tls = |e: &dyn std::fmt::Display| PeerError::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut cfg.ca_bundle_pem.as_bytes()) {
            roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
        }
        let chain: Vec<_> = rustls_pemfile::certs(&mut cfg.client_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| tls(&e))?;
        let key = rustls_pemfile::private_key(&mut cfg.client_key_pem.as_bytes())
            .map_err(|e| tls(&e))?
            .ok_or_else(|| PeerError::Tls("no private key".into()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls_cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| tls(&e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| tls(&e))?;
        tls_cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_cfg)
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| tls(&e))?;
        Ok(Peers {
            http,
            identity: format!("system:shard:{shard_name}"),
            root_shard_url: cfg.root_shard_url.clone(),
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .header(canopy_auth::requestheader::USER, &self.identity)
            .header(canopy_auth::requestheader::GROUP, "system:masters")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<Value>,
    ) -> Result<(u16, Value), PeerError> {
        self.call_with(method, url, body.map(|b| ("application/json", b)))
            .await
    }

    /// A call with a body of the given content type.
    async fn call_with(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<(&str, Value)>,
    ) -> Result<(u16, Value), PeerError> {
        let mut r = self.request(method, &url);
        if let Some((content_type, b)) = body {
            r = r.header("content-type", content_type).body(b.to_string());
        }
        let err = |e: &dyn std::fmt::Display| PeerError::Call {
            url: url.clone(),
            message: e.to_string(),
        };
        let resp = r.send().await.map_err(|e| err(&e))?;
        let code = resp.status().as_u16();
        let bytes = resp.bytes().await.map_err(|e| err(&e))?;
        Ok((code, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    fn unexpected(url: &str, code: u16, body: &Value) -> PeerError {
        PeerError::Call {
            url: url.to_string(),
            message: format!(
                "answered {code}: {}",
                body.get("message").and_then(Value::as_str).unwrap_or("")
            ),
        }
    }

    /// A peer's answer read as `T`.
    fn decode<T: serde::de::DeserializeOwned>(url: &str, v: &Value) -> Result<T, PeerError> {
        tapi::from_value(v).map_err(|e| PeerError::Call {
            url: url.to_string(),
            message: format!("unexpected answer: {e}"),
        })
    }

    /// Places a logical cluster on the shard at `base_url`; returns its LogicalCluster.
    pub async fn place(
        &self,
        base_url: &str,
        req: &PlaceRequest,
    ) -> Result<LogicalCluster, PeerError> {
        let url = format!("{base_url}/internal/logicalclusters");
        let body = serde_json::to_value(req).unwrap_or(Value::Null);
        match self
            .call(reqwest::Method::POST, url.clone(), Some(body))
            .await?
        {
            (201, lc) => Self::decode(&url, &lc),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }

    /// The LogicalCluster of `name` on the shard at `base_url`, `None` if it has none.
    pub(crate) async fn logical_cluster(
        &self,
        base_url: &str,
        name: &str,
    ) -> Result<Option<LogicalCluster>, PeerError> {
        let url = format!("{base_url}/internal/logicalclusters/{name}");
        match self.call(reqwest::Method::GET, url.clone(), None).await? {
            (200, lc) => Self::decode(&url, &lc).map(Some),
            (404, _) => Ok(None),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }

    /// Deletes logical cluster `name` on the shard at `base_url`: `true` once it is
    /// gone, `false` while its deletion is under way.
    /// Deletes logical cluster `name` on another shard for the Workspace `owner`
    /// (its logical cluster and uid): that shard refuses (409) when its LogicalCluster
    /// names another owner.
    pub async fn delete_logical_cluster(
        &self,
        base_url: &str,
        name: &str,
        owner: (&str, &str),
    ) -> Result<bool, PeerError> {
        const Q: &percent_encoding::AsciiSet = percent_encoding::NON_ALPHANUMERIC;
        let url = format!(
            "{base_url}/internal/logicalclusters/{name}?ownerCluster={}&ownerUID={}",
            percent_encoding::utf8_percent_encode(owner.0, Q),
            percent_encoding::utf8_percent_encode(owner.1, Q),
        );
        match self
            .call(reqwest::Method::DELETE, url.clone(), None)
            .await?
        {
            (200, _) | (404, _) => Ok(true),
            (202, _) => Ok(false),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }

    /// The `Shard` objects on root's shard (any item that is not a Shard left out).
    pub async fn shards(&self) -> Result<Vec<Shard>, PeerError> {
        let Some(root) = &self.root_shard_url else {
            return Ok(Vec::new());
        };
        let url = format!("{root}/clusters/root/apis/core.kcp.io/v1alpha1/shards");
        match self.call(reqwest::Method::GET, url.clone(), None).await? {
            (200, list) => Ok(Self::decode::<List>(&url, &list)?
                .items
                .iter()
                .filter_map(|s| tapi::from_value(s).ok())
                .collect()),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }

    /// Root's `WorkspaceType`s.
    pub(crate) async fn workspace_types(&self) -> Result<Vec<Value>, PeerError> {
        let Some(root) = &self.root_shard_url else {
            return Ok(Vec::new());
        };
        let url = format!("{root}/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspacetypes");
        match self.call(reqwest::Method::GET, url.clone(), None).await? {
            (200, list) => Ok(Self::decode::<List>(&url, &list)?.items),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }

    /// Root's token state (keys and revocations), long-polled: answered when it differs
    /// from version `after` or after `timeout_secs`.
    pub async fn token_state(
        &self,
        after: &str,
        timeout_secs: u64,
    ) -> Result<canopy_auth::TokenState, PeerError> {
        let Some(root) = &self.root_shard_url else {
            return Err(PeerError::Call {
                url: String::new(),
                message: "no root shard configured".into(),
            });
        };
        let url = format!(
            "{root}{}",
            canopy_auth::revocation::state_path(after, timeout_secs)
        );
        let err = |m: String| PeerError::Call {
            url: url.clone(),
            message: m,
        };
        let resp = self
            .request(reqwest::Method::GET, &url)
            .timeout(Duration::from_secs(timeout_secs + 10))
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if resp.status().as_u16() != 200 {
            return Err(err(format!("answered {}", resp.status())));
        }
        resp.json().await.map_err(|e| err(e.to_string()))
    }

    /// Sends this shard's usage per organization to root's shard; returns the other
    /// shards' (`crate::quota`).
    pub(crate) async fn report_usage(
        &self,
        report: &crate::quota::UsageReport,
    ) -> Result<crate::quota::UsageTotals, PeerError> {
        let Some(root) = &self.root_shard_url else {
            return Ok(Default::default());
        };
        let url = format!("{root}/internal/usage");
        let body = serde_json::to_value(report).unwrap_or(Value::Null);
        match self
            .call(reqwest::Method::POST, url.clone(), Some(body))
            .await?
        {
            (200, totals) => serde_json::from_value(totals).map_err(|e| PeerError::Call {
                url,
                message: format!("invalid usage totals: {e}"),
            }),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }

    /// Creates or updates (server-side apply) this shard's `Shard` object on root's shard.
    pub async fn register(&self, shard: &Shard) -> Result<(), PeerError> {
        let Some(root) = &self.root_shard_url else {
            return Ok(());
        };
        let name = shard.name();
        let url = format!(
            "{root}/clusters/root/apis/core.kcp.io/v1alpha1/shards/{name}?fieldManager=canopy-shard&force=true"
        );
        let body = Some(("application/apply-patch+yaml", tapi::to_value(shard)));
        match self
            .call_with(reqwest::Method::PATCH, url.clone(), body)
            .await?
        {
            (200 | 201, _) => Ok(()),
            (code, b) => Err(Self::unexpected(&url, code, &b)),
        }
    }
}
