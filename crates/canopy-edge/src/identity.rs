//! Who a request is from, as the limits see it.

/// The authenticated caller: a request extension the authenticating code inserts (the
/// front-proxy's authentication; the shard passes it to [`crate::AdmissionSlot`]).
/// Limits key on the *authenticated* user, before impersonation: a tenant allowed to
/// impersonate others in its own workspace must not get a fresh quota per name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Groups whose members no limit applies to, as kube's API Priority and Fairness
/// exempts `system:masters`: the admin, and Canopy's own components (shard peers, the
/// front-proxy's index watches, controllers), which must keep working while tenants are
/// limited.
pub const EXEMPT_GROUPS: [&str; 2] = ["system:masters", "system:kcp:admin"];

impl Identity {
    pub fn new(user: impl Into<String>, groups: &[String]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.to_vec(),
        }
    }

    /// An unauthenticated caller.
    pub fn anonymous() -> Identity {
        Identity {
            user: "system:anonymous".into(),
            groups: vec!["system:unauthenticated".into()],
        }
    }

    /// Whether no limit applies (member of one of [`EXEMPT_GROUPS`]).
    pub fn is_exempt(&self) -> bool {
        self.groups
            .iter()
            .any(|g| EXEMPT_GROUPS.contains(&g.as_str()))
    }
}
