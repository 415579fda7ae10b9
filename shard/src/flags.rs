//! Command-line flags every binary that runs shards shares (`shard`, `canopy start`):
//! body and object size limits and per-organization quotas, with their defaults.

/// `--max-request-body-bytes`, `--max-object-bytes`, `--org-quota-*`.
#[derive(Debug, Clone, clap::Args)]
pub struct SizeAndQuotaFlags {
    /// The largest request body accepted, in bytes (larger: 413).
    #[arg(long, default_value_t = canopy_apiserver::Limits::default().max_request_body_bytes)]
    pub max_request_body_bytes: usize,
    /// The largest object stored, in bytes of JSON (larger results of any write: 413).
    #[arg(long, default_value_t = canopy_apiserver::Limits::default().max_object_bytes)]
    pub max_object_bytes: usize,
    /// Workspaces per organization (inside it, at any depth; 0: no limit). A superuser
    /// overrides it per organization with the annotation `quota.canopy.dev/workspaces`
    /// on its Workspace.
    #[arg(long, default_value_t = canopy_tenancy::quota::DEFAULT_WORKSPACES)]
    pub org_quota_workspaces: u64,
    /// Objects per organization, in all its workspaces (0: no limit; annotation
    /// `quota.canopy.dev/objects`).
    #[arg(long, default_value_t = canopy_tenancy::quota::DEFAULT_OBJECTS)]
    pub org_quota_objects: u64,
    /// Bytes of stored objects (JSON) per organization (0: no limit; annotation
    /// `quota.canopy.dev/bytes`).
    #[arg(long, default_value_t = canopy_tenancy::quota::DEFAULT_BYTES)]
    pub org_quota_bytes: u64,
}

impl SizeAndQuotaFlags {
    /// The server's size limits and quotas these flags give.
    pub fn limits(&self) -> crate::Limits {
        crate::Limits {
            max_request_body_bytes: self.max_request_body_bytes,
            max_object_bytes: self.max_object_bytes,
            quotas: canopy_tenancy::quota::OrgQuotas {
                workspaces: self.org_quota_workspaces,
                objects: self.org_quota_objects,
                bytes: self.org_quota_bytes,
            },
        }
    }
}
