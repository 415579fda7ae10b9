//! kcp API sharing (`apis.kcp.io`), a plug-in of the generic API server
//! (`canopy-apiserver`), plugged in only through its extension points
//! ([`canopy_apiserver::plugin`]; [`KcpApis`] registers every part). This is the
//! "publish" step of API sharing:
//!
//! - kinds and their strategies ([`registry`]), cluster-scoped in every logical cluster:
//!   `APIResourceSchema` (validated names, immutable spec), `APIExport` served as
//!   v1alpha1 and v1alpha2 and stored as v1alpha2 (converted by the v1alpha1 strategy's
//!   `to_storage`/`from_storage`, [`canopy_apis_api::convert`]), `APIExportEndpointSlice`;
//! - the identity controller ([`identity`]): each export's identity secret,
//!   `status.identityHash`, condition `IdentityValid`, and its endpoint slice.
//!
//! - binding ([`binding`]): APIBinding (v1alpha1 and v1alpha2, stored v1alpha2) with
//!   kcp's bind check, the binding controller (bound resources, conflicts, unbind), the
//!   bound resources served in the binding's logical cluster as CRDs would be
//!   ([`canopy_apiserver::plugin::ApiSource`]), and the refusal of CRDs for bound
//!   resources. Exports are found on the binding's shard only for now.
//!
//! The export's virtual workspace, permission-claim enforcement and replication through
//! the cache server come later.

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

pub mod binding;
pub mod identity;
pub mod registry;

use canopy_apiserver::plugin::{Plugin, Plugins};

/// Storage key of APIExports (both versions share it; stored as v1alpha2).
pub const EXPORTS: &str = "apis.kcp.io/apiexports";
/// Storage key of APIExportEndpointSlices.
pub const ENDPOINT_SLICES: &str = "apis.kcp.io/apiexportendpointslices";
/// Storage key of APIResourceSchemas.
pub const SCHEMAS: &str = "apis.kcp.io/apiresourceschemas";

/// kcp annotations users set on API-sharing objects themselves (exempt from reserved
/// metadata admission): skipping an export's endpoint slice, and the `extra.apis.kcp.io/*`
/// annotations an export hands to its bindings.
pub const USER_ANNOTATIONS: &[&str] = &[
    canopy_apis_api::SKIP_ENDPOINT_SLICE_ANNOTATION,
    "extra.apis.kcp.io/*",
];

/// Limits on what one APIExport may list, so that one object cannot make every
/// reconcile, conversion and (later) binding of it arbitrarily expensive.
#[derive(Clone, Copy, Debug)]
pub struct ApisConfig {
    /// At most this many `spec.resources` (v1alpha1: `latestResourceSchemas`).
    pub max_export_resources: usize,
    /// At most this many `spec.permissionClaims` (of an export, and of a binding).
    pub max_permission_claims: usize,
}

impl Default for ApisConfig {
    fn default() -> Self {
        ApisConfig {
            max_export_resources: 100,
            max_permission_claims: 100,
        }
    }
}

/// The kcp API-sharing plug-in: publishing (schemas, exports and their identities,
/// endpoint slices) and binding on one shard (APIBindings and the resources they bind).
#[derive(Default)]
pub struct KcpApis(pub ApisConfig);

impl Plugin for KcpApis {
    fn register(self, plugins: Plugins) -> Plugins {
        use canopy_apis_api::GROUP;
        use canopy_core::resource::{stored, NameRule::DnsSubdomain};
        use registry::{ExportStrategy, ExportVersion, SchemaStrategy, SliceStrategy};
        let kind = |version, kind, plural, status: bool| {
            let sub: &[&str] = if status { &["status"] } else { &[] };
            let mut d = stored(GROUP, version, kind, plural, false, &[], sub, DnsSubdomain);
            d.categories = vec!["kcp".into()];
            d
        };
        let limits = self.0;
        plugins
            .with_resource(
                kind("v1alpha1", "APIResourceSchema", "apiresourceschemas", false),
                SchemaStrategy,
            )
            .with_resource(
                kind("v1alpha2", "APIExport", "apiexports", true),
                ExportStrategy {
                    version: ExportVersion::V1alpha2,
                    limits,
                },
            )
            .with_resource(
                kind("v1alpha1", "APIExport", "apiexports", true),
                ExportStrategy {
                    version: ExportVersion::V1alpha1,
                    limits,
                },
            )
            .with_resource(
                kind(
                    "v1alpha1",
                    "APIExportEndpointSlice",
                    "apiexportendpointslices",
                    true,
                ),
                SliceStrategy,
            )
            .with_resource(
                kind("v1alpha2", "APIBinding", "apibindings", true),
                binding::BindingStrategy {
                    version: binding::BindingVersion::V1alpha2,
                    max_permission_claims: limits.max_permission_claims,
                },
            )
            .with_resource(
                kind("v1alpha1", "APIBinding", "apibindings", true),
                binding::BindingStrategy {
                    version: binding::BindingVersion::V1alpha1,
                    max_permission_claims: limits.max_permission_claims,
                },
            )
            .with_api_source(binding::BoundApis)
            .with_validating(binding::NoOverlappingCrds)
            .with_validating(binding::BindingStatusGuard)
            .with_background(identity::IdentityControllers)
            .with_background(binding::BindingControllers)
    }
}
