//! Token keys and revocations, followed from root's shard.
//!
//! The token service runs on the shard holding `root` (see
//! `canopy_apiserver::tokens`). Each proxy long-polls its
//! `/internal/tokens/state` and applies every answer to its
//! [`Authenticator`]: a revocation or a key rotation reaches every proxy replica within
//! milliseconds of being made, and within the poll's reconnect delay (0.5 s) after a
//! connection to root's shard broke. Root's shard is the one durable source (its
//! PostgreSQL).
//!
//! With Redis (`--redis-url`), replicas also share what they learn: every state a
//! replica gets from root's shard is published on the channel `canopy:tokens` and kept
//! under the key `canopy:tokens:state`; every replica subscribes and *merges* what it
//! hears (keys and revocations are added, never removed: a relayed state may be older
//! than the last one from root, and revocations only end by expiry). So a replica whose
//! own link to root's shard is broken still learns every revocation through Redis, and
//! a replica starting while root's shard is unreachable starts from the shared state.
//!
//! Until a first state has arrived the proxy knows no revocations, so it reports not
//! ready (`/readyz` 503) and load balancers keep clients away.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use canopy_auth::{Authenticator, TokenState};
use http::StatusCode;
use http_body_util::BodyExt;

use crate::backend::Backends;

const POLL_SECONDS: u64 = 30;
const RETRY: Duration = Duration::from_millis(500);

/// The shard that serves tokens: the one named `root`, else the first.
pub fn root_shard(backends: &Backends) -> usize {
    (0..backends.len())
        .find(|i| backends.shard(*i).name == "root")
        .unwrap_or(0)
}

/// Redis key holding the last state a replica got from root's shard.
pub const STATE_KEY: &str = "canopy:tokens:state";
/// Redis channel on which replicas publish the states they get from root's shard.
pub const CHANNEL: &str = "canopy:tokens";

/// Token states shared between replicas through Redis.
#[derive(Clone)]
pub struct RedisShare {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
}

impl RedisShare {
    pub async fn connect(url: &str) -> Result<RedisShare, crate::ProxyError> {
        let err = |e: &dyn std::fmt::Display| crate::ProxyError::Redis(format!("{url}: {e}"));
        let client = redis::Client::open(url).map_err(|e| err(&e))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = redis::aio::ConnectionManager::new_with_config(client.clone(), cfg)
            .await
            .map_err(|e| err(&e))?;
        Ok(RedisShare { client, conn })
    }

    /// Shares a state from root's shard with the other replicas.
    async fn publish(&self, state: &TokenState) {
        let Ok(json) = serde_json::to_string(state) else {
            return;
        };
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<()> = redis::pipe()
            .set_ex(STATE_KEY, &json, 366 * 86400)
            .ignore()
            .publish(CHANNEL, &json)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "sharing the token state through Redis");
        }
    }

    /// Merges every state other replicas share into `auth`, forever (re-subscribing
    /// after Redis connection losses).
    pub async fn follow(self, auth: Arc<Authenticator>, synced: Arc<AtomicBool>) {
        use futures::StreamExt;
        let merge = |payload: &[u8]| match serde_json::from_slice::<TokenState>(payload) {
            Ok(s) => match auth.merge(&s) {
                Ok(()) => synced.store(true, Ordering::Release),
                Err(e) => tracing::debug!(error = %e, "a token state from Redis"),
            },
            Err(e) => tracing::debug!(error = %e, "a token state from Redis"),
        };
        loop {
            let mut pubsub = match self.client.get_async_pubsub().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::debug!(error = %e, "subscribing to token states in Redis");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            if let Err(e) = pubsub.subscribe(CHANNEL).await {
                tracing::debug!(error = %e, "subscribing to token states in Redis");
                tokio::time::sleep(RETRY).await;
                continue;
            }
            // what was shared before this subscription
            let mut conn = self.conn.clone();
            let last: redis::RedisResult<Option<Vec<u8>>> = redis::cmd("GET")
                .arg(STATE_KEY)
                .query_async(&mut conn)
                .await;
            if let Ok(Some(bytes)) = last {
                merge(&bytes);
            }
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                merge(msg.get_payload_bytes());
            }
            tokio::time::sleep(RETRY).await;
        }
    }
}

/// Keeps `auth` current, forever (aborted when the proxy stops); with `share`, passes
/// every state on to the other replicas.
pub async fn follow(
    auth: Arc<Authenticator>,
    backends: Arc<Backends>,
    synced: Arc<AtomicBool>,
    share: Option<RedisShare>,
) {
    let shard = root_shard(&backends);
    let mut after = String::new();
    loop {
        match fetch(&backends, shard, &after).await {
            Ok(state) => {
                match auth.apply(&state) {
                    Ok(()) => synced.store(true, Ordering::Release),
                    Err(e) => tracing::warn!(error = %e, "root's token state"),
                }
                if let Some(s) = &share {
                    s.publish(&state).await;
                }
                after = state.resource_version;
            }
            Err(e) => {
                tracing::debug!(error = %e, "following root's token state");
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

async fn fetch(backends: &Backends, shard: usize, after: &str) -> Result<TokenState, String> {
    let path = canopy_auth::revocation::state_path(after, POLL_SECONDS);
    let req = crate::index::own_request(backends, shard, &path).map_err(|e| e.to_string())?;
    let call = async {
        let resp = backends
            .send(shard, req, true)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!(
                "token state: {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("token state: {e}"))
    };
    tokio::time::timeout(Duration::from_secs(POLL_SECONDS + 10), call)
        .await
        .map_err(|_| "token state: no answer in time".to_string())?
}
