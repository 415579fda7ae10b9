//! The token service: Canopy issues, lists and revokes the bearer tokens kubectl uses,
//! and publishes what verifiers need (keys and revocations). It runs on the shard that
//! holds `root`; the front-proxy routes paths without `/clusters/` there.
//!
//! **API** (Kubernetes-shaped, served like a kcp virtual workspace under
//! `/services/tokens`, so `kubectl --server https://<proxy>/services/tokens get tokens`
//! works): `tokens.canopy.dev/v1alpha1` `Token`, cluster-scoped, verbs create, get,
//! list, delete.
//! - `POST .../tokens` with `spec.user`, `spec.groups`, `spec.expirationSeconds`
//!   (default 720h, at most [`MAX_TOKEN_TTL`]) answers `201` with the token in
//!   `status.token`; only this response ever holds it (records keep the id, `jti`).
//! - `GET .../tokens[/<id>]` lists or reads records; `DELETE .../tokens/<id>` revokes.
//! - Who may: superusers (`system:masters`, `system:kcp:admin`) for anyone; everyone
//!   else only for themselves, with a subset of their own groups, and at most
//!   [`MAX_TOKENS_PER_USER`] live ones. Another user's token is answered as not found.
//!
//! **Verifiers.** `GET /openid/v1/jwks` (public) serves the verification keys.
//! `GET /internal/tokens/state?after=<v>&timeoutSeconds=<n>` (superusers: the
//! front-proxies and other shards) answers a [`TokenState`] — keys and revoked, not yet
//! expired token ids — at once when its version differs from `after`, otherwise when
//! something changes or the timeout passes: a long poll that carries a revocation to
//! every verifier within milliseconds. `POST /services/tokens/rotate` (superusers) rotates the
//! signing key (old tokens stay valid, see [`canopy_auth::TokenIssuer::rotate`]).
//!
//! **Durable state.** Records are objects of resource `tokens.canopy.dev/tokens` in the
//! store's hidden cluster `system:tokens` (never a logical cluster, so no client path
//! reaches it); a revoked record keeps `status.revokedAt` until it expires, then the
//! collector deletes it. Signing keys are files of the shard's PKI directory.

// Request-path code: bad input is an ApiError, never a panic (tests may unwrap).
#![cfg_attr(
    not(test),
    warn(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]
#![allow(clippy::result_large_err)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canopy_auth::{Revoked, TokenIssuer, TokenState, UserInfo, MAX_TOKEN_TTL};
use canopy_core::{ApiError, Cause, Subject};
use canopy_storage::{ListOptions, Mutation, ObjectKey, StorageError, StoredObject};
use http::{Method, Response};
use serde_json::{json, Value};

use canopy_apiserver::authz::is_superuser;
use canopy_apiserver::response::{self, Body};
use canopy_apiserver::ApiServer;

pub const GROUP: &str = "tokens.canopy.dev";
pub const VERSION: &str = "v1alpha1";
/// The store resource of token records.
pub(crate) const RESOURCE: &str = "tokens.canopy.dev/tokens";
/// The store's cluster for token records (not a logical cluster).
pub(crate) const SYSTEM_CLUSTER: &str = "system:tokens";
/// Where the API is served.
pub(crate) const PREFIX: &str = "/services/tokens";
/// Lifetime of a token when the request names none (720h, like `canopy token create`).
pub(crate) const DEFAULT_TTL: Duration = Duration::from_secs(30 * 86400);
/// Most live tokens a user who is not an admin may hold (each is a stored record).
pub(crate) const MAX_TOKENS_PER_USER: usize = 100;
/// How often expired records are collected.
const COLLECT_EVERY: Duration = Duration::from_secs(60);

fn subject(name: &str) -> Subject<'_> {
    Subject {
        group: GROUP,
        resource: "tokens",
        name,
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn rfc3339(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn parse_time(v: Option<&Value>) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(v?.as_str()?)
        .ok()
        .map(|t| t.timestamp())
}

fn expiry(obj: &Value) -> i64 {
    parse_time(obj.pointer("/status/expirationTimestamp")).unwrap_or(0)
}

fn is_revoked(obj: &Value) -> bool {
    obj.pointer("/status/revokedAt").is_some()
}

fn owner(obj: &Value) -> &str {
    obj.pointer("/spec/user")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn key(name: &str) -> ObjectKey {
    ObjectKey::new(RESOURCE, SYSTEM_CLUSTER, "", name)
}

/// A record as clients see it (resourceVersion from the store).
fn present(o: &StoredObject) -> Value {
    let mut v = o.value.clone();
    canopy_core::meta::set_meta(&mut v, "resourceVersion", json!(o.rv.to_string()));
    v
}

/// Token records for which `keep` holds.
fn records(
    api: &ApiServer,
    keep: &dyn Fn(&StoredObject) -> bool,
) -> Vec<std::sync::Arc<StoredObject>> {
    api.store()
        .list(&ListOptions {
            resource: RESOURCE,
            cluster: Some(SYSTEM_CLUSTER),
            namespace: None,
            name: None,
            continue_after: None,
            limit: 0,
            filter: keep,
        })
        .map(|l| l.items)
        .unwrap_or_default()
}

/// Records of the token service, live (not revoked, not expired) only.
fn live_records(api: &ApiServer) -> Vec<std::sync::Arc<StoredObject>> {
    let t = now();
    records(api, &|o| !is_revoked(&o.value) && expiry(&o.value) > t)
}

/// Issues a token and records it; returns the record (with `status.token`) and the
/// token. `issued_by` is who asked.
pub async fn issue(
    api: &ApiServer,
    user: &str,
    groups: &[String],
    ttl: Duration,
    issued_by: &str,
) -> Result<(Value, String), ApiError> {
    let name = format!("tok-{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let (token, claims) = issuer(api)?
        .issue_claims(user, groups, ttl, &name)
        .map_err(|e| ApiError::internal(format!("signing the token: {e}")))?;
    let record = json!({
        "apiVersion": format!("{GROUP}/{VERSION}"),
        "kind": "Token",
        "metadata": {
            "name": name,
            "uid": uuid::Uuid::new_v4().to_string(),
            "creationTimestamp": rfc3339(claims.iat),
        },
        "spec": {
            "user": user,
            "groups": groups,
            "expirationSeconds": ttl.as_secs(),
        },
        "status": {
            "expirationTimestamp": rfc3339(claims.exp),
            "issuedBy": issued_by,
        },
    });
    let stored = api
        .store()
        .apply(Mutation::Create {
            key: key(&name),
            value: record,
        })
        .await
        .map_err(storage_error)?;
    let mut out = present(&stored);
    canopy_core::meta::set_path(&mut out, &["status", "token"], json!(token))?;
    Ok((out, token))
}

/// Records that `record` was issued with token `parent` (revoked with it).
async fn set_parent(api: &ApiServer, mut record: Value, parent: &str) -> Result<Value, ApiError> {
    let name = record
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let token = record
        .pointer_mut("/status/token")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let Some(cur) = api.store().get(&key(&name)) else {
        return Err(ApiError::internal("token record vanished"));
    };
    let mut v = cur.value.clone();
    canopy_core::meta::set_path(&mut v, &["status", "issuedWith"], json!(parent))?;
    let stored = api
        .store()
        .apply(Mutation::Update {
            key: key(&name),
            expected_rv: Some(cur.rv),
            value: v,
        })
        .await
        .map_err(storage_error)?;
    record = present(&stored);
    canopy_core::meta::set_path(&mut record, &["status", "token"], token)?;
    Ok(record)
}

fn storage_error(e: StorageError) -> ApiError {
    ApiError::internal(format!("token records: {e}"))
}

/// Revokes token `name` and every live token issued with it (transitively); `None` if
/// there is no such live token.
pub async fn revoke(api: &ApiServer, name: &str) -> Result<Option<Value>, ApiError> {
    let first = revoke_one(api, name).await?;
    if first.is_some() {
        let mut queue = vec![name.to_string()];
        while let Some(parent) = queue.pop() {
            let t = now();
            let children = records(api, &|o| {
                !is_revoked(&o.value)
                    && expiry(&o.value) > t
                    && o.value
                        .pointer("/status/issuedWith")
                        .and_then(Value::as_str)
                        == Some(parent.as_str())
            });
            for c in children {
                if revoke_one(api, &c.key.name).await?.is_some() {
                    queue.push(c.key.name.clone());
                }
            }
        }
    }
    Ok(first)
}

async fn revoke_one(api: &ApiServer, name: &str) -> Result<Option<Value>, ApiError> {
    loop {
        let Some(cur) = api.store().get(&key(name)) else {
            return Ok(None);
        };
        if is_revoked(&cur.value) {
            return Ok(None);
        }
        let mut v = cur.value.clone();
        canopy_core::meta::set_path(&mut v, &["status", "revokedAt"], json!(rfc3339(now())))?;
        match api
            .store()
            .apply(Mutation::Update {
                key: key(name),
                expected_rv: Some(cur.rv),
                value: v,
            })
            .await
        {
            Ok(o) => {
                changed(api);
                return Ok(Some(present(&o)));
            }
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(storage_error(e)),
        }
    }
}

/// Rotates the signing key; returns the new key id.
pub fn rotate(api: &ApiServer) -> Result<String, ApiError> {
    let kid = issuer(api)?
        .rotate()
        .map_err(|e| ApiError::internal(format!("rotating the signing key: {e}")))?;
    changed(api);
    tracing::info!(kid, "token signing key rotated");
    Ok(kid)
}

/// The keys and revocations verifiers need, as of now.
pub fn state(api: &ApiServer) -> TokenState {
    let t = now();
    let revoked = records(api, &|o| is_revoked(&o.value) && expiry(&o.value) > t)
        .iter()
        .map(|o| Revoked {
            jti: o.key.name.clone(),
            exp: expiry(&o.value),
        })
        .collect();
    let mut s = TokenState {
        resource_version: version(api),
        jwks: match &tokens(api).issuer {
            Some(t) => t.jwks(),
            None => api.authenticator().verifier().jwks(),
        },
        revoked,
        signed: None,
    };
    // signed for relaying through unauthenticated channels (Redis)
    if let Some(t) = &tokens(api).issuer {
        match canopy_auth::revocation::sign_state(t, &s) {
            Ok(jws) => s.signed = Some(jws),
            Err(e) => tracing::warn!(error = %e, "signing the token state"),
        }
    }
    s
}

/// The signing key: only the shard holding root has one.
fn issuer(api: &ApiServer) -> Result<&canopy_auth::TokenIssuer, ApiError> {
    tokens(api).issuer.as_deref().ok_or_else(|| {
        ApiError::new(
            404,
            "NotFound",
            "the token service runs on the shard holding root",
        )
    })
}

fn version(api: &ApiServer) -> String {
    format!("{}.{}", tokens(api).boot_id, *tokens(api).changes.borrow())
}

/// Applies the stored token state to this shard's authenticator (root's shard, before
/// it serves: no revoked token is accepted, not even for a moment after a restart).
pub fn load(api: &ApiServer) {
    changed(api)
}

/// Something verifiers care about changed: apply it here and wake the long polls.
fn changed(api: &ApiServer) {
    tokens(api).changes.send_modify(|n| *n += 1);
    if let Err(e) = api.authenticator().apply(&state(api)) {
        tracing::warn!(error = %e, "applying the token state");
    }
}

/// Keeps this shard's authenticator current: on root's shard from its own records
/// ([`run_root`]), elsewhere by long-polling root's shard once peers are configured.
/// Failures are reported to `errors` (counted, and logged once per run of failures).
pub async fn run(api: ApiServer, errors: canopy_runtime::TaskErrors) {
    if api.logical_cluster_exists("root") {
        return run_root(api, errors).await;
    }
    let mut after = String::new();
    let mut shutdown = api.shutdown_signal();
    loop {
        let peers = canopy_tenancy::tenancy(&api).peers.read().clone();
        let result = match &peers {
            Some(p) if p.root_shard_url.is_some() => Some(p.token_state(&after, 30).await),
            _ => None,
        };
        let wait = match result {
            Some(Ok(state)) => {
                errors.report(api.authenticator().apply(&state));
                after = state.resource_version;
                Duration::ZERO
            }
            Some(Err(e)) => {
                errors.failed(&e);
                Duration::from_millis(500)
            }
            None => Duration::from_millis(500),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// On the root shard: applies the stored revocations to this shard's authenticator and
/// collects expired records every minute. Runs until the server shuts down.
pub(crate) async fn run_root(api: ApiServer, errors: canopy_runtime::TaskErrors) {
    changed(&api);
    let mut shutdown = api.shutdown_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(COLLECT_EVERY) => {}
            _ = shutdown.changed() => return,
        }
        let t = now();
        let expired = records(&api, &|o| expiry(&o.value) <= t);
        if expired.is_empty() {
            continue;
        }
        let muts = expired
            .iter()
            .map(|o| Mutation::Delete {
                key: o.key.clone(),
                expected_rv: Some(o.rv),
            })
            .collect();
        match api.store().commit(muts).await {
            Ok(_) => {
                tracing::debug!(records = expired.len(), "expired token records collected");
                errors.ok();
                changed(&api);
            }
            Err(e) => errors.failed(&e),
        }
    }
}

/// The token service answers only on the shard holding root.
fn require_root(api: &ApiServer) -> Result<(), ApiError> {
    if api.logical_cluster_exists("root") {
        Ok(())
    } else {
        Err(ApiError::new(
            404,
            "NotFound",
            "the token service runs on the shard holding root",
        ))
    }
}

/// `GET /internal/tokens/state` (shard peers and front-proxies only).
pub(crate) async fn serve_internal(
    api: &ApiServer,
    method: &Method,
    path: &str,
    query: &std::collections::HashMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    require_root(api)?;
    match (method, path) {
        (&Method::GET, "/internal/tokens/state") => {
            let after = query.get("after").map(String::as_str).unwrap_or("");
            let timeout = query
                .get("timeoutSeconds")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(30)
                .min(300);
            let mut changes = tokens(api).changes.subscribe();
            let mut shutdown = api.shutdown_signal();
            if version(api) == after {
                tokio::select! {
                    _ = changes.changed() => {}
                    _ = shutdown.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(timeout)) => {}
                }
            }
            let s = serde_json::to_value(state(api)).unwrap_or(Value::Null);
            Ok(response::json(200, &s))
        }
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

/// `GET /openid/v1/jwks`: the verification keys (public).
pub fn jwks(api: &ApiServer) -> Response<Body> {
    let v = api.authenticator().verifier().jwks();
    response::bytes(200, "application/jwk-set+json", v.to_string())
}

/// Discovery and the `tokens` resource under [`PREFIX`].
pub async fn serve(
    api: &ApiServer,
    method: &Method,
    path: &str,
    query: &std::collections::HashMap<String, String>,
    user: &UserInfo,
    body: Bytes,
) -> Result<Response<Body>, ApiError> {
    let rest = path
        .strip_prefix(PREFIX)
        .unwrap_or("")
        .trim_end_matches('/');
    let gv = format!("/apis/{GROUP}/{VERSION}");
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    match rest {
        "/api" => {
            return Ok(response::json(
                200,
                &json!({"kind": "APIVersions", "versions": []}),
            ))
        }
        "/apis" => {
            return Ok(response::json(
                200,
                &json!({
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [group()],
                }),
            ))
        }
        r if r == format!("/apis/{GROUP}") => {
            return Ok(response::json(200, &{
                let mut g = group();
                canopy_core::meta::ensure_object(&mut g).insert("kind".into(), json!("APIGroup"));
                canopy_core::meta::ensure_object(&mut g).insert("apiVersion".into(), json!("v1"));
                g
            }))
        }
        r if r == gv => {
            return Ok(response::json(
                200,
                &json!({
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": format!("{GROUP}/{VERSION}"),
                    "resources": [{
                        "name": "tokens",
                        "singularName": "token",
                        "namespaced": false,
                        "kind": "Token",
                        "verbs": ["create", "delete", "get", "list"],
                    }],
                }),
            ))
        }
        // key rotation: superusers only (`canopy token rotate-key`)
        "/rotate" if method == Method::POST => {
            require_root(api)?;
            if !is_superuser(user) {
                return Err(ApiError::forbidden_message(format!(
                    "forbidden: User {:?} cannot rotate the token signing key",
                    user.name
                )));
            }
            let kid = rotate(api)?;
            return Ok(response::json(200, &json!({ "kid": kid })));
        }
        _ => {}
    }
    let Some(tail) = rest.strip_prefix(&format!("{gv}/tokens")) else {
        return Err(not_found());
    };
    require_root(api)?;
    let name = tail.strip_prefix('/').unwrap_or(tail);
    if !tail.is_empty() && (!tail.starts_with('/') || name.contains('/')) {
        return Err(not_found());
    }
    let admin = is_superuser(user);
    match (method, name.is_empty()) {
        (&Method::POST, true) => create(api, user, admin, &body).await,
        (&Method::GET, true) => {
            let wanted = query
                .get("fieldSelector")
                .and_then(|s| s.strip_prefix("spec.user="))
                .map(str::to_string);
            let items: Vec<Value> = live_records(api)
                .iter()
                .filter(|o| admin || owner(&o.value) == user.name)
                .filter(|o| wanted.as_deref().is_none_or(|w| owner(&o.value) == w))
                .map(|o| present(o))
                .collect();
            Ok(response::json(
                200,
                &json!({
                    "apiVersion": format!("{GROUP}/{VERSION}"),
                    "kind": "TokenList",
                    "metadata": {"resourceVersion": api.store().current_rv().to_string()},
                    "items": items,
                }),
            ))
        }
        (&Method::GET, false) => {
            let o = api
                .store()
                .get(&key(name))
                .filter(|o| !is_revoked(&o.value) && expiry(&o.value) > now())
                .filter(|o| admin || owner(&o.value) == user.name)
                .ok_or_else(|| ApiError::not_found(subject(name)))?;
            Ok(response::json(200, &present(&o)))
        }
        (&Method::DELETE, false) => {
            let visible = api
                .store()
                .get(&key(name))
                .is_some_and(|o| admin || owner(&o.value) == user.name);
            if !visible {
                return Err(ApiError::not_found(subject(name)));
            }
            match revoke(api, name).await? {
                Some(o) => {
                    tracing::info!(token = name, by = %user.name, "token revoked");
                    let uid = o.pointer("/metadata/uid").and_then(Value::as_str);
                    Ok(response::json(
                        200,
                        &canopy_core::error::success_status(subject(name), uid),
                    ))
                }
                None => Err(ApiError::not_found(subject(name))),
            }
        }
        (m, _) => Err(ApiError::method_not_supported(
            subject(name),
            &m.as_str().to_ascii_lowercase(),
        )),
    }
}

fn group() -> Value {
    json!({
        "name": GROUP,
        "versions": [{"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION}],
        "preferredVersion": {"groupVersion": format!("{GROUP}/{VERSION}"), "version": VERSION},
    })
}

async fn create(
    api: &ApiServer,
    user: &UserInfo,
    admin: bool,
    body: &[u8],
) -> Result<Response<Body>, ApiError> {
    let obj: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not a Token: {e}")))?;
    if obj
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k != "Token")
    {
        return Err(ApiError::bad_request("the request body is not a Token"));
    }
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let mut causes = Vec::new();
    let for_user = match spec.get("user") {
        None | Some(Value::Null) => user.name.clone(),
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(_) => {
            causes.push(Cause::required("spec.user", ""));
            String::new()
        }
    };
    let mut groups: Vec<String> = Vec::new();
    match spec.get("groups") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, g) in a.iter().enumerate() {
                match g.as_str() {
                    Some(s) if !s.is_empty() => {
                        if !groups.iter().any(|x| x == s) {
                            groups.push(s.to_string());
                        }
                    }
                    _ => causes.push(Cause::invalid(
                        format!("spec.groups[{i}]"),
                        g,
                        "must be a non-empty string",
                    )),
                }
            }
        }
        Some(v) => causes.push(Cause::invalid(
            "spec.groups",
            v,
            "must be a list of group names",
        )),
    }
    let max = MAX_TOKEN_TTL.as_secs();
    let ttl = match spec.get("expirationSeconds") {
        None | Some(Value::Null) => DEFAULT_TTL.as_secs(),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) if n > max => {
                causes.push(Cause::invalid(
                    "spec.expirationSeconds",
                    v,
                    &format!("may not be greater than {max} (366 days)"),
                ));
                0
            }
            _ => {
                causes.push(Cause::invalid(
                    "spec.expirationSeconds",
                    v,
                    "must be a positive number of seconds",
                ));
                0
            }
        },
    };
    if !causes.is_empty() {
        return Err(ApiError::invalid("Token", GROUP, "", causes));
    }
    if !admin {
        if for_user != user.name {
            return Err(ApiError::forbidden_message(format!(
                "tokens.{GROUP} is forbidden: User {:?} cannot create tokens for user {for_user:?}",
                user.name
            )));
        }
        let own: BTreeSet<&str> = user.groups.iter().map(String::as_str).collect();
        if let Some(g) = groups.iter().find(|g| !own.contains(g.as_str())) {
            return Err(ApiError::forbidden_message(format!(
                "tokens.{GROUP} is forbidden: User {:?} cannot create tokens with group {g:?}, which it is not a member of",
                user.name
            )));
        }
        let held = live_records(api)
            .iter()
            .filter(|o| owner(&o.value) == for_user)
            .count();
        if held >= MAX_TOKENS_PER_USER {
            return Err(ApiError::forbidden_message(format!(
                "tokens.{GROUP} is forbidden: User {:?} already holds {held} live tokens, the most a user may hold; revoke some first",
                user.name
            )));
        }
    }
    // every holder is system:authenticated anyway
    groups.retain(|g| g != "system:authenticated");
    // A token issued with a token may neither outlive it nor survive its revocation.
    let parent = user
        .extra
        .get(canopy_auth::token::CREDENTIAL_ID_EXTRA)
        .and_then(|v| v.first())
        .and_then(|v| v.strip_prefix("JTI="))
        .map(str::to_string);
    let parent_expiry = user
        .extra
        .get(canopy_auth::token::CREDENTIAL_EXPIRY_EXTRA)
        .and_then(|v| v.first())
        .and_then(|v| v.parse::<i64>().ok());
    let mut ttl = ttl;
    if let (false, Some(exp)) = (admin, parent_expiry) {
        ttl = ttl.min(exp.saturating_sub(now()).max(1) as u64);
    }
    let (mut record, _) = issue(
        api,
        &for_user,
        &groups,
        Duration::from_secs(ttl),
        &user.name,
    )
    .await?;
    if let (false, Some(p)) = (admin, parent) {
        record = set_parent(api, record, &p).await?;
    }
    let id = record
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    tracing::info!(token = id, user = %for_user, by = %user.name, "token issued");
    Ok(response::json(201, &record))
}

/// What the token service keeps on the server ([`ApiServer::state`], read with
/// [`tokens`]).
pub(crate) struct Tokens {
    /// The token service's signing key: only on the shard holding root; every other
    /// shard verifies with public keys only ([`ApiServer::authenticator`]).
    pub issuer: Option<Arc<TokenIssuer>>,
    /// Identifies this process in token state versions (a restart is a change).
    pub boot_id: String,
    /// Bumped whenever token keys or revocations change (wakes long polls).
    pub changes: tokio::sync::watch::Sender<u64>,
}

impl Tokens {
    fn new(issuer: Option<Arc<TokenIssuer>>) -> Tokens {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Tokens {
            issuer,
            boot_id: id.get(..8).unwrap_or(&id).to_string(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

/// The token service's state on `api` (one without a signing key on a server without
/// the plug-in).
pub(crate) fn tokens(api: &ApiServer) -> &Tokens {
    static NONE: std::sync::LazyLock<Tokens> = std::sync::LazyLock::new(|| Tokens::new(None));
    api.state::<Tokens>().unwrap_or(&NONE)
}

/// The token service plugged into the generic server ([`canopy_apiserver::plugin`]), with the
/// signing key on the shard holding root (`None` on the others).
pub struct TokenService(pub Option<Arc<TokenIssuer>>);

impl canopy_apiserver::plugin::Plugin for TokenService {
    fn register(
        self,
        plugins: canopy_apiserver::plugin::Plugins,
    ) -> canopy_apiserver::plugin::Plugins {
        plugins
            .with_state(Tokens::new(self.0))
            .with_path_handler(TokenPaths)
            .with_background(TokenTasks)
    }
}

/// Keeps the authenticator current ([`run`]).
struct TokenTasks;

impl canopy_apiserver::plugin::Background for TokenTasks {
    fn start(&self, api: &ApiServer, run: &mut canopy_apiserver::controllers::Starter) {
        let errors = run.metrics().task("tokens");
        run.spawn(self::run(api.clone(), errors));
    }
}

/// `/services/tokens/...` for users, the public keys (`/openid/v1/jwks`, OpenID
/// discovery) for anyone, and the token state (`/internal/tokens/state`) for shard
/// peers and the front-proxy.
struct TokenPaths;

impl canopy_apiserver::plugin::PathHandler for TokenPaths {
    fn name(&self) -> &'static str {
        "tokens"
    }

    fn route(&self, path: &str) -> Option<canopy_apiserver::plugin::Audience> {
        use canopy_apiserver::plugin::Audience;
        if path == PREFIX
            || path
                .strip_prefix(PREFIX)
                .is_some_and(|r| r.starts_with('/'))
        {
            Some(Audience::Users)
        } else if path == "/openid/v1/jwks" || path == "/.well-known/openid-configuration" {
            Some(Audience::Public)
        } else if path.starts_with("/internal/tokens/") {
            Some(Audience::Peers)
        } else {
            None
        }
    }

    fn peer_allowed(&self, user: &UserInfo, path: &str) -> bool {
        user.name.starts_with("system:shard:")
            || (user.name == "system:front-proxy" && path.starts_with("/internal/tokens/state"))
    }

    fn handle<'a>(
        &'a self,
        api: &'a ApiServer,
        req: canopy_apiserver::plugin::PathRequest<'a>,
    ) -> canopy_apiserver::plugin::HandlerFuture<'a> {
        Box::pin(async move {
            match req.path {
                "/openid/v1/jwks" => Ok(jwks(api)),
                "/.well-known/openid-configuration" => Ok(response::json(
                    200,
                    &json!({
                        "issuer": canopy_auth::token::ISSUER,
                        "jwks_uri": format!("{}/openid/v1/jwks", api.config().external_url),
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["ES256"],
                    }),
                )),
                p if p.starts_with("/internal/") => {
                    serve_internal(api, req.method, p, req.query).await
                }
                p => serve(api, req.method, p, req.query, req.user, req.body).await,
            }
        })
    }
}
