//! `core.kcp.io/v1alpha1`: `LogicalCluster` (the object named `cluster` inside every
//! logical cluster) and `Shard`, field for field as kcp's Go types
//! (sdk/apis/core/v1alpha1/logicalcluster_types.go, shard_types.go).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conditions::{Condition, Phase};
use crate::null_default;

pub const GROUP: &str = "core.kcp.io";
pub const API_VERSION: &str = "core.kcp.io/v1alpha1";
/// The name of the one `LogicalCluster` object in each logical cluster.
pub const LOGICAL_CLUSTER_NAME: &str = "cluster";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalCluster {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: LogicalClusterSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: LogicalClusterStatus,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl LogicalCluster {
    /// A new `LogicalCluster/cluster`.
    pub fn new(spec: LogicalClusterSpec, status: LogicalClusterStatus) -> LogicalCluster {
        LogicalCluster {
            api_version: Some(API_VERSION.into()),
            kind: Some("LogicalCluster".into()),
            metadata: ObjectMeta {
                name: Some(LOGICAL_CLUSTER_NAME.into()),
                ..Default::default()
            },
            spec,
            status,
            extra: BTreeMap::new(),
        }
    }

    pub fn is_phase(&self, p: Phase) -> bool {
        self.status.phase.as_ref() == Some(&p)
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        crate::tenancy::annotation(&self.metadata, key)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalClusterSpec {
    /// Whether a user may delete the LogicalCluster object directly.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub directly_deletable: bool,
    /// The object (a Workspace) that owns this logical cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<LogicalClusterOwner>,
    /// Initializers that must finish before the logical cluster is Ready.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub initializers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub terminators: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// kcp's `LogicalClusterOwner`: which object owns a logical cluster.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalClusterOwner {
    #[serde(default, deserialize_with = "null_default")]
    pub api_version: String,
    #[serde(default, deserialize_with = "null_default")]
    pub resource: String,
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    /// The logical cluster the owner lives in.
    #[serde(default, deserialize_with = "null_default")]
    pub cluster: String,
    #[serde(default, deserialize_with = "null_default")]
    pub uid: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LogicalClusterStatus {
    /// Where the logical cluster is served.
    #[serde(rename = "URL", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// Initializers still to finish; each removes itself.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub initializers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub terminators: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shard {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: ShardSpec,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "ShardStatus::is_empty"
    )]
    pub status: ShardStatus,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Shard {
    pub fn new(name: &str, spec: ShardSpec) -> Shard {
        Shard {
            api_version: Some(API_VERSION.into()),
            kind: Some("Shard".into()),
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec,
            ..Default::default()
        }
    }

    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        crate::tenancy::annotation(&self.metadata, key)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardSpec {
    /// How other shards reach this one.
    #[serde(rename = "baseURL", default)]
    pub base_url: String,
    /// The front door clients use.
    #[serde(
        rename = "externalURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub external_url: String,
    #[serde(
        rename = "virtualWorkspaceURL",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub virtual_workspace_url: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ShardStatus {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// `capacity` and anything else, kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ShardStatus {
    pub fn is_empty(&self) -> bool {
        *self == ShardStatus::default()
    }
}
