//! Who is calling and what they may do.
//!
//! - [`files`]: secrets on disk: written atomically, 0600 from creation, in 0700
//!   directories.
//! - [`pki`]: the shard's CA and serving certificate, created on first start.
//! - [`token`]: bearer tokens Canopy issues (ES256 JWTs) and their verification, also
//!   with public keys only ([`TokenVerifier`], what the front-proxy uses).
//! - [`revocation`]: an [`Authenticator`] that also knows rotated keys and revoked
//!   tokens, fed by the root shard's token state.
//! - [`requestheader`]: identity forwarded by the front-proxy in `X-Remote-*` headers.
//! - [`rbac`]: RBAC rule evaluation over one logical cluster's Roles and bindings (pure).
//!
//! Nothing here knows about HTTP or storage; the API server wires it in.

pub mod files;
pub mod impersonation;
pub mod pki;
pub mod rbac;
pub mod requestheader;
pub mod revocation;
pub mod token;

use std::collections::BTreeMap;
use std::path::Path;

/// An authenticated caller, as kube's `user.Info`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }
}

/// Groups whose members may do anything in every logical cluster.
pub const SUPERUSER_GROUPS: [&str; 2] = ["system:masters", "system:kcp:admin"];

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("certificate or key error: {0}")]
    Pki(String),
    #[error("token signing error: {0}")]
    Jwt(String),
    #[error("invalid bearer token")]
    InvalidToken,
    #[error("this server holds no token-signing key (only the shard holding root issues tokens)")]
    NoSigningKey,
}

impl AuthError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        AuthError::Io {
            path: path.display().to_string(),
            source,
        }
    }
    pub(crate) fn pki(e: impl std::fmt::Display) -> Self {
        AuthError::Pki(e.to_string())
    }
    pub(crate) fn jwt(e: impl std::fmt::Display) -> Self {
        AuthError::Jwt(e.to_string())
    }
}

pub(crate) fn pki_write_private(path: &Path, contents: &str) -> Result<(), AuthError> {
    files::write_private(path, contents.as_bytes()).map_err(|e| AuthError::io(path, e))
}

pub(crate) fn pki_write_public(path: &Path, contents: &str) -> Result<(), AuthError> {
    files::write_public(path, contents.as_bytes()).map_err(|e| AuthError::io(path, e))
}

pub(crate) fn pki_private_dir(dir: &Path) -> Result<(), AuthError> {
    files::private_dir(dir).map_err(|e| AuthError::io(dir, e))
}

pub(crate) fn meta_name(v: &serde_json::Value) -> &str {
    v.get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .unwrap_or("")
}

pub use pki::{ClientCa, Pki};
pub use revocation::{Authenticator, Revoked, TokenState};
pub use token::{TokenIssuer, TokenVerifier, MAX_TOKEN_TTL};
