//! List `continue` tokens: opaque to clients and tamper-evident.
//!
//! A token carries the list's resourceVersion and where the next page starts (the last
//! key returned, relative to the logical cluster), and an HMAC-SHA256 under a secret of
//! the shard over those *and* the scope the token was issued for: the logical cluster
//! (`*` for wildcard lists), the stored resource and the namespace of the request. So a
//! token can only continue the list it came from: a changed byte, a token of another
//! shard, or one replayed in another logical cluster, resource or namespace is answered
//! with kube's 400 (`invalid continue token: continue key is not valid`), never with
//! another scope's rows. A token whose resourceVersion left the retained history gets
//! kube's 410 (see `rest::get::list`).
//!
//! The secret lives in `<root>/pki/continue-token.key` (32 random bytes, mode 0600,
//! made on first start), so tokens survive a restart of the shard.

use std::path::Path;

use base64::Engine;
use canopy_core::ApiError;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
const VERSION: &str = "canopy/v2";
const SECRET_LEN: usize = 32;

/// What a token is valid for: it is bound to these, not carried in it.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The logical cluster listed, `None` for a wildcard list.
    pub cluster: Option<&'a str>,
    /// The stored resource (`<group>/<plural>`).
    pub resource: &'a str,
    /// The namespace of the request (empty: all namespaces, or cluster-scoped).
    pub namespace: &'a str,
}

/// The visible part of a token.
#[derive(Serialize, Deserialize)]
struct Payload {
    v: String,
    rv: u64,
    /// The last key returned: `namespace \0 name` inside the logical cluster (the whole
    /// storage key for wildcard lists).
    start: String,
}

/// Issues and checks continue tokens with one shard's secret.
#[derive(Clone)]
pub struct ContinueKeys {
    secret: [u8; SECRET_LEN],
}

impl std::fmt::Debug for ContinueKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ContinueKeys(..)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: expected {SECRET_LEN} bytes, found {found}")]
    Length { path: String, found: usize },
}

impl ContinueKeys {
    pub fn new(secret: [u8; SECRET_LEN]) -> ContinueKeys {
        ContinueKeys { secret }
    }

    /// A fresh random secret (tokens then do not outlive the process).
    pub fn random() -> ContinueKeys {
        ContinueKeys::new(rand::random())
    }

    /// Reads the secret at `path`, or creates it (mode 0600, never overwritten).
    pub fn load_or_create(path: &Path) -> Result<ContinueKeys, SecretError> {
        let io = |source| SecretError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(path) {
            Ok(bytes) => {
                let secret: [u8; SECRET_LEN] =
                    bytes
                        .as_slice()
                        .try_into()
                        .map_err(|_| SecretError::Length {
                            path: path.display().to_string(),
                            found: bytes.len(),
                        })?;
                Ok(ContinueKeys::new(secret))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let secret: [u8; SECRET_LEN] = rand::random();
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(io)?;
                f.write_all(&secret).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(ContinueKeys::new(secret))
            }
            Err(e) => Err(io(e)),
        }
    }

    fn mac(&self, scope: &Scope<'_>, rv: u64, start: &str) -> Hmac<Sha256> {
        // HMAC pads keys shorter than the block with zeros: the same MAC as with the
        // 32-byte secret, through the constructor that cannot fail
        let mut key = [0u8; 64];
        for (k, s) in key.iter_mut().zip(self.secret) {
            *k = s;
        }
        let mut m = <Hmac<Sha256> as hmac::digest::KeyInit>::new(&key.into());
        // length-prefixed fields: no two scopes encode alike
        for part in [
            VERSION.as_bytes(),
            scope.cluster.map_or(b"*".as_slice(), str::as_bytes),
            scope.resource.as_bytes(),
            scope.namespace.as_bytes(),
            &rv.to_be_bytes(),
            start.as_bytes(),
        ] {
            m.update(&(part.len() as u64).to_be_bytes());
            m.update(part);
        }
        // wildcard and named lists never share tokens
        m.update(&[u8::from(scope.cluster.is_some())]);
        m
    }

    /// A token for the page after `last_key` (a storage key as the store returns it) of
    /// a list at `rv`.
    pub fn encode(&self, scope: &Scope<'_>, rv: u64, last_key: &str) -> String {
        let start = match scope.cluster {
            Some(c) => last_key
                .strip_prefix(c)
                .and_then(|k| k.strip_prefix('\0'))
                .unwrap_or(last_key),
            None => last_key,
        };
        let payload = Payload {
            v: VERSION.to_string(),
            rv,
            start: start.to_string(),
        };
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let tag = self.mac(scope, rv, start).finalize().into_bytes();
        format!("{}.{}", B64.encode(json), B64.encode(tag))
    }

    /// Checks a token against the scope of this request; returns the list's
    /// resourceVersion and the storage key to continue after.
    pub fn decode(&self, scope: &Scope<'_>, token: &str) -> Result<(u64, String), ApiError> {
        let (body, tag) = token.split_once('.').ok_or_else(invalid)?;
        let json = B64.decode(body).map_err(|_| invalid())?;
        let tag = B64.decode(tag).map_err(|_| invalid())?;
        let p: Payload = serde_json::from_slice(&json).map_err(|_| invalid())?;
        if p.v != VERSION {
            return Err(invalid_because(
                "server does not recognize this encoded version",
            ));
        }
        self.mac(scope, p.rv, &p.start)
            .verify_slice(&tag)
            .map_err(|_| invalid())?;
        if p.rv == 0 {
            return Err(invalid_because(
                "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            ));
        }
        if p.start.is_empty() {
            return Err(invalid_because(
                "encoded start key empty (version meta.k8s.io/v1)",
            ));
        }
        let key = match scope.cluster {
            Some(c) => format!("{c}\0{}", p.start),
            None => p.start,
        };
        Ok((p.rv, key))
    }
}

/// kube's answer to a continue token it cannot use.
fn invalid() -> ApiError {
    ApiError::bad_request("invalid continue token: continue key is not valid")
}

fn invalid_because(why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "invalid continue token: continue key is not valid: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Scope<'static> = Scope {
        cluster: Some("aaaa"),
        resource: "/configmaps",
        namespace: "default",
    };

    #[test]
    fn round_trip_relative_to_the_cluster() {
        let k = ContinueKeys::random();
        let t = k.encode(&A, 42, "aaaa\0default\0cm-2");
        assert!(
            !t.contains("aaaa"),
            "the cluster is bound, not carried: {t}"
        );
        assert_eq!(
            k.decode(&A, &t).unwrap(),
            (42, "aaaa\0default\0cm-2".to_string())
        );
        let wild = Scope { cluster: None, ..A };
        let t = k.encode(&wild, 7, "bbbb\0default\0x");
        assert_eq!(k.decode(&wild, &t).unwrap().1, "bbbb\0default\0x");
        // wildcard tokens do not continue a named list and the other way round
        assert_eq!(k.decode(&A, &t).unwrap_err().code, 400);
    }

    #[test]
    fn tokens_are_bound_to_their_scope_and_secret() {
        let k = ContinueKeys::random();
        let t = k.encode(&A, 42, "aaaa\0default\0cm-2");
        for other in [
            Scope {
                cluster: Some("bbbb"),
                ..A
            },
            Scope {
                resource: "/secrets",
                ..A
            },
            Scope {
                namespace: "kube-system",
                ..A
            },
        ] {
            let e = k.decode(&other, &t).unwrap_err();
            assert_eq!(e.code, 400);
            assert_eq!(
                e.message,
                "invalid continue token: continue key is not valid"
            );
        }
        assert_eq!(ContinueKeys::random().decode(&A, &t).unwrap_err().code, 400);
    }

    #[test]
    fn tampering_is_detected() {
        let k = ContinueKeys::random();
        let t = k.encode(&A, 42, "aaaa\0default\0cm-2");
        let (body, tag) = t.split_once('.').unwrap();
        // a payload with another start key or resourceVersion, the old tag
        for (rv, start) in [
            (42, "kube-system\0x"),
            (41, "default\0cm-2"),
            (u64::MAX, ""),
        ] {
            let forged = serde_json::json!({"v": VERSION, "rv": rv, "start": start});
            let f = format!("{}.{tag}", B64.encode(forged.to_string()));
            assert_eq!(k.decode(&A, &f).unwrap_err().code, 400);
        }
        // every single-character change
        let chars: Vec<char> = t.chars().collect();
        for i in 0..chars.len() {
            let mut c = chars.clone();
            c[i] = if c[i] == 'A' { 'B' } else { 'A' };
            let s: String = c.into_iter().collect();
            if s != t {
                assert_eq!(k.decode(&A, &s).unwrap_err().code, 400, "{s}");
            }
        }
        // garbage and the old unauthenticated form
        let old = B64.encode(r#"{"v":"canopy/v1","rv":1,"start":"aaaa\u0000default\u0000x"}"#);
        for g in [
            "",
            ".",
            "x.y",
            "%%%",
            body,
            old.as_str(),
            &"A".repeat(10_000),
        ] {
            assert_eq!(k.decode(&A, g).unwrap_err().code, 400, "{g}");
        }
    }

    #[test]
    fn the_secret_file_is_private_and_kept() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("continue-token.key");
        let k1 = ContinueKeys::load_or_create(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let k2 = ContinueKeys::load_or_create(&p).unwrap();
        let t = k1.encode(&A, 3, "aaaa\0default\0x");
        assert!(k2.decode(&A, &t).is_ok());
        std::fs::write(&p, b"short").unwrap();
        assert!(ContinueKeys::load_or_create(&p).is_err());
    }
}
