//! Token keys and revocations, followed from root's shard.
//!
//! The token service runs on the shard holding `root` (see
//! `canopy_tokens`). Each proxy long-polls its
//! `/internal/tokens/state` and applies every answer to its
//! [`Authenticator`]: a revocation or a key rotation reaches every proxy replica within
//! milliseconds of being made, and within the poll's reconnect delay (0.5 s) after a
//! connection to root's shard broke. Root's shard is the one durable source (its
//! PostgreSQL).
//!
//! With Redis (`--redis-url`), replicas also share what they learn — **revocations
//! only, and only as root's shard signed them**. Every state root's shard serves
//! carries [`TokenState::signed`]: its revocations and version, signed (ES256 JWS) with
//! the token service's active key. A replica publishes that signed document, exactly as
//! received, on the channel [`CHANNEL`] and keeps it under [`STATE_KEY`]; every replica
//! subscribes, verifies each document with the keys *it already trusts* (its configured
//! public keys and what root's shard sent it over TLS) and merges the revocations
//! (a union: a relayed state may be older than the last one from root, and revocations
//! only end by expiry, so replaying an old document can only re-add genuine
//! revocations). Anything else — unsigned JSON, a document signed by a key it does not
//! trust, a bad signature — is dropped, counted in
//! `canopy_front_proxy_token_states_rejected_total{reason}` and logged at warn (without
//! its content). **Keys never come from Redis**: whoever can publish there can neither
//! add a key nor forge a revocation. So a replica whose own link to root's shard is
//! broken still learns every revocation through Redis, and a replica starting while
//! root's shard is unreachable starts from the shared revocations; what it cannot learn
//! there is a new key: after a rotation it accepts the new key's tokens (and the
//! revocations signed with it) only once it reaches root's shard again.
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
use crate::redisconn::RedisSettings;

const POLL_SECONDS: u64 = 30;
const RETRY: Duration = Duration::from_millis(500);

/// The shard that serves tokens: the one named `root`, else the first.
pub fn root_shard(backends: &Backends) -> usize {
    (0..backends.len())
        .find(|i| backends.shard(*i).name == "root")
        .unwrap_or(0)
}

/// Redis key holding the last signed state a replica got from root's shard.
pub const STATE_KEY: &str = "canopy:tokens:signed-state";
/// Redis channel on which replicas publish the signed states they get from root's
/// shard.
pub const CHANNEL: &str = "canopy:tokens:signed";

/// How often at most a dropped Redis message is logged (each is counted).
const WARN_EVERY: Duration = Duration::from_secs(10);
/// Larger messages are dropped unread (a signed state of 100,000 revocations is about
/// 10 MB; anyone who can publish on Redis could otherwise make replicas parse anything).
const MAX_MESSAGE_BYTES: usize = 16 << 20;

/// Signed token states shared between replicas through Redis.
#[derive(Clone)]
pub struct RedisShare {
    client: redis::Client,
    conn: redis::aio::ConnectionManager,
}

impl RedisShare {
    pub async fn connect(settings: &RedisSettings) -> Result<RedisShare, crate::ProxyError> {
        let (client, conn) = crate::redisconn::connect(settings, Duration::from_secs(1))
            .await
            .map_err(crate::ProxyError::Redis)?;
        Ok(RedisShare { client, conn })
    }

    /// Shares the signed part of a state from root's shard with the other replicas.
    async fn publish(&self, state: &TokenState) {
        let Some(signed) = &state.signed else {
            return;
        };
        let mut conn = self.conn.clone();
        let r: redis::RedisResult<()> = redis::pipe()
            .set_ex(STATE_KEY, signed, 366 * 86400)
            .ignore()
            .publish(CHANNEL, signed)
            .ignore()
            .query_async(&mut conn)
            .await;
        if let Err(e) = r {
            tracing::debug!(error = %e, "sharing the token state through Redis");
        }
    }

    /// Merges the revocations of every correctly signed state other replicas share
    /// into `state.auth`, forever (re-subscribing after Redis connection losses).
    pub(crate) async fn follow(self, state: Arc<crate::State>) {
        use futures::StreamExt;
        let mut last_warn: Option<std::time::Instant> = None;
        let mut dropped_since_warn = 0u64;
        let mut merge = |payload: &[u8]| {
            let outcome = if payload.len() > MAX_MESSAGE_BYTES {
                Err(canopy_auth::token::DocumentError::Malformed)
            } else {
                std::str::from_utf8(payload)
                    .map_err(|_| canopy_auth::token::DocumentError::Malformed)
                    .and_then(|jws| state.auth.merge_signed(jws.trim()))
            };
            match outcome {
                Ok(_) => {
                    state.metrics.token_state_merged();
                    state.tokens_synced.store(true, Ordering::Release);
                }
                Err(e) => {
                    state.metrics.token_state_rejected(e.reason());
                    dropped_since_warn += 1;
                    if last_warn.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
                        // never the content: it is whatever someone published
                        tracing::warn!(reason = e.reason(), dropped = dropped_since_warn, bytes = payload.len(), "dropped a token state from Redis that root's shard did not sign (only signed revocations are taken from Redis)");
                        last_warn = Some(std::time::Instant::now());
                        dropped_since_warn = 0;
                    }
                }
            }
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
