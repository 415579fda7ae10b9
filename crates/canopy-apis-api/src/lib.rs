//! kcp's API-sharing kinds (`apis.kcp.io`) as typed structs, free of I/O (as `k8s-openapi`
//! is for kube's), field for field as kcp's Go types (sdk/apis/apis/v1alpha1, v1alpha2):
//!
//! - [`APIResourceSchema`] (v1alpha1 only): a CRD-like, immutable description of one
//!   resource, published in the provider's workspace;
//! - [`APIExport`] (v1alpha2, the stored version) and [`v1alpha1::APIExport`], with the
//!   conversion both ways ([`convert`]);
//! - [`APIExportEndpointSlice`] (v1alpha1 only).
//!
//! Every struct keeps the fields it does not model (`extra`); read and write them with
//! [`canopy_tenancy_api::from_value`], [`canopy_tenancy_api::to_value`] and
//! [`canopy_tenancy_api::edit`] so that a read-modify-write never drops what kcp or a
//! newer client wrote.

pub mod convert;
pub mod v1alpha1;

use std::collections::BTreeMap;

use canopy_tenancy_api::null_default;
pub use canopy_tenancy_api::{edit, from_value, to_value, DecodeError, ObjectMeta};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const GROUP: &str = "apis.kcp.io";
pub const V1ALPHA1: &str = "apis.kcp.io/v1alpha1";
pub const V1ALPHA2: &str = "apis.kcp.io/v1alpha2";

/// Presence of this annotation on an APIExport keeps kcp (and Canopy) from creating its
/// APIExportEndpointSlice.
pub const SKIP_ENDPOINT_SLICE_ANNOTATION: &str = "apiexports.apis.kcp.io/skip-endpointslice";
/// The namespace holding generated identity secrets.
pub const IDENTITY_NAMESPACE: &str = "kcp-system";
/// The key of an identity secret's data holding the identity.
pub const IDENTITY_KEY: &str = "key";
/// Condition type: the export's identity secret exists and matches `status.identityHash`.
pub const IDENTITY_VALID: &str = "IdentityValid";
pub const IDENTITY_VERIFICATION_FAILED: &str = "IdentityVerificationFailed";
pub const IDENTITY_GENERATION_FAILED: &str = "IdentityGenerationFailed";

/// A condition of kcp's `conditionsv1alpha1` kind (type, status, severity, reason,
/// message, lastTransitionTime).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type", default)]
    pub type_: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub severity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Sets condition `c` in `conds`, keeping its lastTransitionTime when the status did not
/// change (`now` otherwise).
pub fn set_condition(conds: &mut Vec<Condition>, mut c: Condition, now: &str) {
    match conds.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => {
            if x.status != c.status || x.last_transition_time.is_none() {
                x.last_transition_time = Some(now.to_string());
            }
            x.status = c.status;
            x.severity = c.severity;
            x.reason = c.reason;
            x.message = c.message;
        }
        None => {
            c.last_transition_time = Some(now.to_string());
            conds.push(c);
        }
    }
}

// --- APIResourceSchema ----------------------------------------------------------------------

/// `apis.kcp.io/v1alpha1` APIResourceSchema: one resource's names, scope and versions,
/// as a CRD has them; named `<prefix>.<plural>.<group|core>`; spec immutable.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIResourceSchema {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: APIResourceSchemaSpec,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIResourceSchemaSpec {
    /// The API group (`""` for the core group; `core` itself is refused).
    #[serde(default)]
    pub group: String,
    #[serde(default, deserialize_with = "null_default")]
    pub names: Names,
    /// `Cluster` or `Namespaced`.
    #[serde(default)]
    pub scope: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversion: Option<Conversion>,
    #[serde(default, deserialize_with = "null_default")]
    pub versions: Vec<APIResourceVersion>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A CRD's `names`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Names {
    #[serde(default)]
    pub plural: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub singular: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub list_kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// `spec.conversion`: `None` or `Webhook` (with its webhook settings, kept as written).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Conversion {
    #[serde(default)]
    pub strategy: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One version of an APIResourceSchema (a CRD version; `schema` is the OpenAPI v3 schema
/// itself, not wrapped in `openAPIV3Schema`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIResourceVersion {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub served: bool,
    #[serde(default)]
    pub storage: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deprecated: bool,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub schema: Value,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

// --- APIExport v1alpha2 ---------------------------------------------------------------------

/// `apis.kcp.io/v1alpha2` APIExport, the stored version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIExport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: APIExportSpec,
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "APIExportStatus::is_empty"
    )]
    pub status: APIExportStatus,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl APIExport {
    pub fn name(&self) -> &str {
        self.metadata.name.as_deref().unwrap_or_default()
    }

    pub fn has_annotation(&self, key: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(key))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIExportSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceSchema>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximal_permission_policy: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permission_claims: Vec<PermissionClaim>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An exported resource: `schema` names an APIResourceSchema of the export's workspace.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceSchema {
    /// The resource (plural).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub schema: String,
    #[serde(default, deserialize_with = "null_default")]
    pub storage: ResourceSchemaStorage,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where an exported resource's objects live: `crd: {}` or `virtual: {...}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceSchemaStorage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crd: Option<Value>,
    #[serde(rename = "virtual", default, skip_serializing_if = "Option::is_none")]
    pub virtual_: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ResourceSchemaStorage {
    pub fn crd() -> ResourceSchemaStorage {
        ResourceSchemaStorage {
            crd: Some(Value::Object(Default::default())),
            ..Default::default()
        }
    }
}

/// `spec.identity`: the secret holding the export's identity (in the export's own
/// logical cluster; none: kcp generates `kcp-system/<export>`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SecretRef {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A v1alpha2 permission claim: a resource of another API the provider asks access to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionClaim {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_hash: String,
    #[serde(default, deserialize_with = "null_default")]
    pub verbs: Vec<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIExportStatus {
    /// Hex SHA-256 of the identity key; set once by the system, immutable.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_hash: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl APIExportStatus {
    pub fn is_empty(&self) -> bool {
        self.identity_hash.is_empty() && self.conditions.is_empty() && self.extra.is_empty()
    }
}

// --- APIExportEndpointSlice ------------------------------------------------------------------

/// `apis.kcp.io/v1alpha1` APIExportEndpointSlice: where the virtual workspace of an
/// export is served.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct APIExportEndpointSlice {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub metadata: ObjectMeta,
    #[serde(default, deserialize_with = "null_default")]
    pub spec: APIExportEndpointSliceSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct APIExportEndpointSliceSpec {
    #[serde(default, deserialize_with = "null_default")]
    pub export: ExportReference,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An export by workspace path (empty: the referring object's own workspace) and name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportReference {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub path: String,
    #[serde(default)]
    pub name: String,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl APIExportEndpointSlice {
    /// The slice kcp creates for an export at `path`.
    pub fn for_export(path: &str, name: &str) -> APIExportEndpointSlice {
        APIExportEndpointSlice {
            api_version: Some(V1ALPHA1.into()),
            kind: Some("APIExportEndpointSlice".into()),
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: APIExportEndpointSliceSpec {
                export: ExportReference {
                    path: path.into(),
                    name: name.into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ..Default::default()
        }
    }
}
