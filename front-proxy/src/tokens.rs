//! Token keys and revocations, followed from root's shard.
//!
//! The token service runs on the shard holding `root` (see
//! `canopy_apiserver::tokens`). Each proxy long-polls its
//! `/internal/tokens/state` and applies every answer to its
//! [`Authenticator`]: a revocation or a key rotation reaches every proxy replica within
//! milliseconds of being made, and within the poll's reconnect delay (0.5 s) after a
//! connection to root's shard broke. Replicas need nothing shared for this: root's
//! shard is the one durable source (its PostgreSQL), where Redis would be a second copy
//! that can lose a revocation.
//!
//! Until the first state has arrived the proxy knows no revocations, so it reports not
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

/// Keeps `auth` current, forever (aborted when the proxy stops).
pub async fn follow(auth: Arc<Authenticator>, backends: Arc<Backends>, synced: Arc<AtomicBool>) {
    let shard = root_shard(&backends);
    let mut after = String::new();
    loop {
        match fetch(&backends, shard, &after).await {
            Ok(state) => {
                match auth.apply(&state) {
                    Ok(()) => synced.store(true, Ordering::Release),
                    Err(e) => tracing::warn!(error = %e, "root's token state"),
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
    let after: String = after
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let path = format!("/internal/tokens/state?after={after}&timeoutSeconds={POLL_SECONDS}");
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
