//! Who a request is from, as the limits see it; and the one place client-sent identity
//! headers are removed.

/// Removes every `X-Remote-*` header a client sent, in any case: only the front-proxy
/// (on its mTLS connection, after authenticating the caller) may name an identity in
/// them, so the proxy strips them before adding its own and the shard strips them on
/// every connection it does not trust.
pub fn strip_identity_headers(headers: &mut http::HeaderMap) {
    let names: Vec<http::HeaderName> = headers
        .keys()
        .filter(|k| canopy_auth::requestheader::is_identity_header(k.as_str()))
        .cloned()
        .collect();
    for n in names {
        headers.remove(n);
    }
}

/// The authenticated caller: a request extension the authenticating code inserts (the
/// front-proxy's authentication; the shard's `AuthenticateLayer`).
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

#[cfg(test)]
mod strip_tests {
    use super::strip_identity_headers;

    #[test]
    fn strips_every_identity_header_in_any_case() {
        let mut h = http::HeaderMap::new();
        h.insert("X-Remote-User", "admin".parse().unwrap());
        h.append("x-remote-group", "system:masters".parse().unwrap());
        h.append("x-remote-group", "x".parse().unwrap());
        h.insert("X-REMOTE-EXTRA-scopes", "y".parse().unwrap());
        h.insert("x-remotely", "kept".parse().unwrap());
        h.insert("authorization", "Bearer t".parse().unwrap());
        strip_identity_headers(&mut h);
        let left: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(h.len(), 2, "{left:?}");
        assert!(h.contains_key("x-remotely") && h.contains_key("authorization"));
    }
}
