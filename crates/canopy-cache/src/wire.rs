//! The cache server's HTTP API as types shared by the server and its clients.
//!
//! | method and path | who | body → answer |
//! | --- | --- | --- |
//! | `POST /v1/shards/{shard}/objects` | that shard | [`WriteRequest`] → [`WriteResponse`]: upserts and deletes, applied in order, atomically |
//! | `PUT /v1/shards/{shard}/sync` | that shard | [`SyncRequest`] → [`SyncResponse`]: every object of the shard not in `keys` is deleted; the shard is now *synced* |
//! | `GET /v1/shards/{shard}` | shards, readers | → [`ShardStatus`] (the replicator's heartbeat: notices a restarted cache server) |
//! | `GET /v1/objects?resource=..&shard=..&cluster=..` | shards, readers | → [`ObjectList`] |
//! | `GET /v1/objects?watch=true&resourceVersion=N&resource=..` | shards, readers | → NDJSON [`WatchEvent`]s after `N`; `410 Gone` when `N` is no longer retained |
//!
//! `resource` may be repeated (several resources in one list or watch); without it, every
//! resource. Every error is a kube-style [`Status`]. Resource versions are decimal strings
//! on the wire, as in kube.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Path prefix of the API.
pub const API_PREFIX: &str = "/v1";
/// Group of every shard's identity: may write its own objects and read everything.
pub const SHARD_GROUP: &str = "system:cache:shards";
/// Group of read-only clients (front-proxies).
pub const READER_GROUP: &str = "system:cache:readers";
/// Response header of a watch naming the cache-server instance that serves it.
pub const INSTANCE_HEADER: &str = "cache-server-instance";
/// A shard authenticates as `system:shard:<shard name>`.
pub const SHARD_USER_PREFIX: &str = "system:shard:";
/// A reader authenticates as `system:cache-reader:<name>`.
pub const READER_USER_PREFIX: &str = "system:cache-reader:";

/// The user name of shard `shard`.
pub fn shard_user(shard: &str) -> String {
    format!("{SHARD_USER_PREFIX}{shard}")
}

/// The user name of reader `name`.
pub fn reader_user(name: &str) -> String {
    format!("{READER_USER_PREFIX}{name}")
}

/// `u64` as a decimal string (kube's resourceVersion encoding).
pub mod rv_string {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s
                .parse()
                .map_err(|_| D::Error::custom(format!("invalid resourceVersion {s:?}"))),
            Either::N(n) => Ok(n),
        }
    }
}

/// Identifies an object within one shard: resource (`group/plural`, core resources as
/// `/plural`), logical cluster, namespace (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Key {
    pub resource: String,
    pub cluster: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(resource: &str, cluster: &str, namespace: &str, name: &str) -> Key {
        Key {
            resource: resource.into(),
            cluster: cluster.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// Why this key is not acceptable, if it is not.
    pub fn invalid(&self) -> Option<String> {
        if self.resource.is_empty() || !self.resource.contains('/') {
            return Some(format!(
                "resource {:?} must be <group>/<plural>",
                self.resource
            ));
        }
        if self.cluster.is_empty() {
            return Some("cluster must not be empty".into());
        }
        if self.name.is_empty() {
            return Some("name must not be empty".into());
        }
        None
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}|{}|", self.resource, self.cluster)?;
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        f.write_str(&self.name)
    }
}

/// One object as the cache server holds it: whose it is (`shard` + key), the full JSON,
/// the source shard's resourceVersion, and the cache server's resourceVersion of its
/// last change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicatedObject {
    pub shard: String,
    #[serde(flatten)]
    pub key: Key,
    #[serde(with = "rv_string")]
    pub source_resource_version: u64,
    #[serde(with = "rv_string")]
    pub resource_version: u64,
    pub object: Value,
}

impl ReplicatedObject {
    /// `metadata.uid` of the object.
    pub fn uid(&self) -> Option<&str> {
        object_uid(&self.object)
    }
}

/// `metadata.uid` of an object.
pub fn object_uid(v: &Value) -> Option<&str> {
    v.get("metadata")?.get("uid")?.as_str()
}

/// One change a shard sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    Upsert(Upsert),
    Delete(Key),
}

impl Op {
    pub fn key(&self) -> &Key {
        match self {
            Op::Upsert(u) => &u.key,
            Op::Delete(k) => k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Upsert {
    #[serde(flatten)]
    pub key: Key,
    #[serde(with = "rv_string")]
    pub source_resource_version: u64,
    pub object: Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WriteRequest {
    pub ops: Vec<Op>,
}

/// `instance` identifies one run of the cache server: a different value means it
/// restarted (and lost everything).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteResponse {
    pub instance: String,
    #[serde(with = "rv_string")]
    pub resource_version: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyncRequest {
    pub keys: Vec<Key>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncResponse {
    pub instance: String,
    #[serde(with = "rv_string")]
    pub resource_version: u64,
    /// How many objects of the shard the sync deleted.
    pub deleted: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    pub shard: String,
    pub instance: String,
    /// Whether the shard completed a sync with this instance.
    pub synced: bool,
    pub objects: u64,
    #[serde(with = "rv_string")]
    pub resource_version: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectList {
    pub instance: String,
    #[serde(with = "rv_string")]
    pub resource_version: u64,
    /// Shards that completed a sync with this instance: their objects in the cache are
    /// complete. (After a cache-server restart, a shard's objects are partial until it
    /// appears here.)
    #[serde(default)]
    pub synced_shards: Vec<String>,
    pub items: Vec<ReplicatedObject>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    /// `shard` completed a sync: its objects are now complete.
    Synced,
    /// No change; the stream is current up to `resourceVersion`.
    Bookmark,
    /// The watch ends; `status` says why (410: re-list).
    Error,
}

/// One line of a watch stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WatchEvent {
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "rv_string")]
    pub resource_version: u64,
    /// ADDED, MODIFIED, DELETED (its last state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<ReplicatedObject>,
    /// SYNCED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// ERROR.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// A kube `meta/v1 Status` (failures only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub kind: String,
    pub api_version: String,
    #[serde(default)]
    pub metadata: Value,
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub reason: String,
    pub code: u16,
}

impl Status {
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Status {
        Status {
            kind: "Status".into(),
            api_version: "v1".into(),
            metadata: Value::Object(Default::default()),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            code,
        }
    }

    pub fn unauthorized() -> Status {
        Status::failure(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Status {
        Status::failure(403, "Forbidden", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Status {
        Status::failure(400, "BadRequest", message)
    }

    pub fn not_found(message: impl Into<String>) -> Status {
        Status::failure(404, "NotFound", message)
    }

    pub fn gone(message: impl Into<String>) -> Status {
        Status::failure(410, "Expired", message)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ops_round_trip_with_flattened_keys() {
        let ops = WriteRequest {
            ops: vec![
                Op::Upsert(Upsert {
                    key: Key::new("tenancy.kcp.io/workspacetypes", "root", "", "team"),
                    source_resource_version: 42,
                    object: json!({"metadata": {"name": "team"}}),
                }),
                Op::Delete(Key::new("/configmaps", "abc", "default", "x")),
            ],
        };
        let v = serde_json::to_value(&ops).unwrap();
        assert_eq!(
            v,
            json!({"ops": [
                {"op": "upsert", "resource": "tenancy.kcp.io/workspacetypes", "cluster": "root", "name": "team", "sourceResourceVersion": "42", "object": {"metadata": {"name": "team"}}},
                {"op": "delete", "resource": "/configmaps", "cluster": "abc", "namespace": "default", "name": "x"}
            ]})
        );
        let back: WriteRequest = serde_json::from_value(v).unwrap();
        assert_eq!(back, ops);
    }

    #[test]
    fn watch_events_round_trip() {
        let ev = WatchEvent {
            kind: EventType::Synced,
            resource_version: 7,
            object: None,
            shard: Some("a".into()),
            status: None,
        };
        let s = serde_json::to_string(&ev).unwrap();
        assert_eq!(s, r#"{"type":"SYNCED","resourceVersion":"7","shard":"a"}"#);
        assert_eq!(serde_json::from_str::<WatchEvent>(&s).unwrap(), ev);
        let obj = ReplicatedObject {
            shard: "a".into(),
            key: Key::new("g/r", "c", "", "n"),
            source_resource_version: 3,
            resource_version: 9,
            object: json!({"metadata": {"name": "n", "uid": "u1"}}),
        };
        assert_eq!(obj.uid(), Some("u1"));
        let s = serde_json::to_string(&obj).unwrap();
        assert_eq!(serde_json::from_str::<ReplicatedObject>(&s).unwrap(), obj);
    }

    #[test]
    fn keys_are_validated() {
        assert!(Key::new("g/r", "c", "", "n").invalid().is_none());
        assert!(Key::new("r", "c", "", "n").invalid().is_some());
        assert!(Key::new("g/r", "", "", "n").invalid().is_some());
        assert!(Key::new("g/r", "c", "", "").invalid().is_some());
    }
}
