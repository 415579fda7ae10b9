//! `tenancy.kcp.io/v1alpha1`: `Workspace` and `WorkspaceType`, field for field as kcp's
//! Go types (sdk/apis/tenancy/v1alpha1/types_workspace.go, types_workspacetype.go).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::conditions::{Condition, Phase};
use crate::null_default;

pub const GROUP: &str = "tenancy.kcp.io";
pub const API_VERSION: &str = "tenancy.kcp.io/v1alpha1";

/// A fully qualified reference to a workspace type: `path:name` (`root:organization`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceTypeReference {
    /// The WorkspaceType's name (lower-case).
    #[serde(default)]
    pub name: String,
    /// The workspace holding the type, `root:org:ws`; empty: resolved at admission.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceTypeReference {
    pub fn new(path: impl Into<String>, name: impl Into<String>) -> WorkspaceTypeReference {
        WorkspaceTypeReference {
            name: name.into(),
            path: path.into(),
            extra: BTreeMap::new(),
        }
    }

    /// `path:name` (kcp's `String()`: the name alone when there is no path).
    pub fn qualified(&self) -> String {
        if self.path.is_empty() {
            self.name.clone()
        } else {
            format!("{}:{}", self.path, self.name)
        }
    }

    /// Parses `path:name` at its last colon; a bare `name` is a type of `root`.
    pub fn parse_qualified(s: &str) -> WorkspaceTypeReference {
        match s.rsplit_once(':') {
            Some((p, n)) => WorkspaceTypeReference::new(p, n),
            None => WorkspaceTypeReference::new("root", s),
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Workspace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: WorkspaceSpec,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "WorkspaceStatus::is_empty"
    )]
    pub status: WorkspaceStatus,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceSpec {
    /// The workspace's type; defaulted and resolved at admission, immutable.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<WorkspaceTypeReference>,
    /// Constraints on where the workspace may be scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<WorkspaceLocation>,
    /// The logical cluster the workspace is stored under; set by the system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Where the workspace is served; set by the system.
    #[serde(rename = "URL", default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Fields this version does not model (`mount`, …), kept as written.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceLocation {
    /// Selects the `Shard`s the workspace may be scheduled onto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<Phase>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    /// Initializers that must finish before the workspace is Ready.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub initializers: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceStatus {
    pub fn is_empty(&self) -> bool {
        *self == WorkspaceStatus::default()
    }
}

impl Workspace {
    /// A new Workspace named `name` of type `type_` (no type: the parent's default).
    pub fn new(name: &str, type_: Option<WorkspaceTypeReference>) -> Workspace {
        Workspace {
            api_version: Some(API_VERSION.into()),
            kind: Some("Workspace".into()),
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: WorkspaceSpec {
                type_,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// `metadata.name`, or empty.
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or("")
    }

    /// `spec.cluster` when set (and not empty).
    pub fn cluster(&self) -> Option<&str> {
        self.spec.cluster.as_deref().filter(|c| !c.is_empty())
    }

    /// The phase, when set.
    pub fn phase(&self) -> Option<&Phase> {
        self.status.phase.as_ref()
    }

    pub fn is_phase(&self, p: Phase) -> bool {
        self.status.phase.as_ref() == Some(&p)
    }

    /// `spec.type` as `path:name`, with kcp's defaults (`root`, `universal`) for what is
    /// unset.
    pub fn type_or_default(&self) -> WorkspaceTypeReference {
        let t = self.spec.type_.as_ref();
        let path = t.map(|t| t.path.as_str()).filter(|p| !p.is_empty());
        let name = t.map(|t| t.name.as_str()).filter(|n| !n.is_empty());
        WorkspaceTypeReference::new(path.unwrap_or("root"), name.unwrap_or("universal"))
    }

    /// An annotation's value.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        annotation(&self.metadata, key)
    }
}

/// An annotation of `meta`, if set.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

/// Sets an annotation of `meta`.
pub fn set_annotation(meta: &mut ObjectMeta, key: &str, value: impl Into<String>) {
    meta.annotations
        .get_or_insert_with(Default::default)
        .insert(key.into(), value.into());
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: WorkspaceTypeSpec,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "WorkspaceTypeStatus::is_empty"
    )]
    pub status: WorkspaceTypeStatus,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceType {
    pub fn new(name: &str, spec: WorkspaceTypeSpec) -> WorkspaceType {
        WorkspaceType {
            api_version: Some(API_VERSION.into()),
            kind: Some("WorkspaceType".into()),
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
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTypeSpec {
    /// Workspaces of this type start with the initializer `<cluster>:<type name>`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub initializer: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminator: bool,
    /// Types whose initializers and limits this type inherits (and stands for).
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "WorkspaceTypeExtension::is_empty"
    )]
    pub extend: WorkspaceTypeExtension,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub additional_workspace_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_child_workspace_type: Option<WorkspaceTypeReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_children: Option<WorkspaceTypeSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_allowed_parents: Option<WorkspaceTypeSelector>,
    #[serde(
        rename = "defaultAPIBindings",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub default_api_bindings: Vec<APIExportReference>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceTypeExtension {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub with: Vec<WorkspaceTypeReference>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceTypeExtension {
    pub fn is_empty(&self) -> bool {
        self.with.is_empty() && self.extra.is_empty()
    }
}

/// A set of types: none, or those listed (an empty list: all).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceTypeSelector {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub none: bool,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub types: Vec<WorkspaceTypeReference>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceTypeSelector {
    pub fn none() -> WorkspaceTypeSelector {
        WorkspaceTypeSelector {
            none: true,
            ..Default::default()
        }
    }

    pub fn types(types: Vec<WorkspaceTypeReference>) -> WorkspaceTypeSelector {
        WorkspaceTypeSelector {
            types,
            ..Default::default()
        }
    }
}

/// An APIExport to bind in new workspaces of a type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct APIExportReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default)]
    pub export: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceTypeStatus {
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<Condition>,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub virtual_workspaces: Vec<VirtualWorkspace>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceTypeStatus {
    pub fn is_empty(&self) -> bool {
        *self == WorkspaceTypeStatus::default()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VirtualWorkspace {
    #[serde(default)]
    pub url: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The creator of a workspace, as kcp records it in the
/// `experimental.tenancy.kcp.io/owner` annotation (a JSON-encoded user info).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceOwner {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default, deserialize_with = "null_default")]
    pub groups: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl WorkspaceOwner {
    /// The annotation's value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses the annotation's value (`None` when it is not a user info).
    pub fn from_annotation(s: &str) -> Option<WorkspaceOwner> {
        serde_json::from_str(s).ok()
    }
}

/// A Workspace's spec and status without its metadata: what resolving a path reads for
/// every segment, without decoding `metadata` (managed fields and all).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
pub struct WorkspaceState {
    #[serde(default, deserialize_with = "null_default")]
    pub spec: WorkspaceSpec,
    #[serde(default, deserialize_with = "null_default")]
    pub status: WorkspaceStatus,
}

impl WorkspaceState {
    /// `spec.cluster` when set (and not empty).
    pub fn cluster(&self) -> Option<&str> {
        self.spec.cluster.as_deref().filter(|c| !c.is_empty())
    }

    pub fn is_phase(&self, p: Phase) -> bool {
        self.status.phase.as_ref() == Some(&p)
    }
}
