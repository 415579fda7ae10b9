//! Authentication of Canopy tokens where keys rotate and tokens get revoked.
//!
//! An [`Authenticator`] holds the verification keys (a JWKS) and the ids (`jti`) of
//! revoked, not yet expired tokens. Both arrive as one [`TokenState`] document: the
//! root shard computes it from its token records and serves it (long-polled) to
//! front-proxies and the other shards, which apply it here; the root shard applies its
//! own. A token is accepted when its signature verifies with one of the keys, it has
//! not expired, and its id is not revoked.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::{AuthError, TokenVerifier, UserInfo};

/// One revoked token: its id and when it would have expired (after which it need not
/// be remembered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    pub jti: String,
    pub exp: i64,
}

/// What verifiers need to know, as the root shard serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenState {
    /// The root shard's resourceVersion this state is consistent with; ask again with
    /// `after=<this>` to wait for the next change.
    pub resource_version: String,
    /// The verification keys (`{"keys": [...]}`).
    pub jwks: serde_json::Value,
    pub revoked: Vec<Revoked>,
}

/// The root shard's path answering a [`TokenState`] (long poll): at once when its
/// version differs from `after`, else on the next change or after `timeout_secs`.
pub fn state_path(after: &str, timeout_secs: u64) -> String {
    // versions are `<hex>.<number>`: anything else is dropped, nothing needs escaping
    let after: String = after
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    format!("/internal/tokens/state?after={after}&timeoutSeconds={timeout_secs}")
}

/// Verifies tokens against the current keys and revocations. Cheap to share (`Arc`).
///
/// A token whose signature verified is remembered (by the SHA-256 of the token) with its
/// claims, so the next request with it skips the ES256 check (some 300 µs of CPU);
/// expiry and revocation are still checked on every request. The memory is dropped
/// whenever a verification key goes away, and when it holds [`VERIFIED_CACHE_SIZE`]
/// tokens.
#[derive(Debug, Default)]
pub struct Authenticator {
    verifier: RwLock<TokenVerifier>,
    revoked: RwLock<HashMap<String, i64>>,
    verified: RwLock<HashMap<[u8; 32], crate::token::Claims>>,
}

/// Most verified tokens remembered at once.
pub const VERIFIED_CACHE_SIZE: usize = 65_536;

impl Authenticator {
    /// Starts with `verifier`'s keys and nothing revoked.
    pub fn new(verifier: TokenVerifier) -> Authenticator {
        Authenticator {
            verifier: RwLock::new(verifier),
            revoked: Default::default(),
            verified: Default::default(),
        }
    }

    /// Verifies `token` and returns who it authenticates.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, AuthError> {
        use sha2::Digest;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let cached = self
            .verified
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&digest)
            .cloned();
        let claims = match cached {
            Some(c) => {
                if c.exp + crate::token::LEEWAY_SECONDS < chrono::Utc::now().timestamp() {
                    return Err(AuthError::InvalidToken);
                }
                c
            }
            None => {
                let c = self
                    .verifier
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .verify(token)?;
                let mut verified = self.verified.write().unwrap_or_else(|e| e.into_inner());
                if verified.len() >= VERIFIED_CACHE_SIZE {
                    verified.clear();
                }
                verified.insert(digest, c.clone());
                c
            }
        };
        if self
            .revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&claims.jti)
        {
            return Err(AuthError::InvalidToken);
        }
        Ok(crate::token::user_of(claims))
    }

    /// Whether the token id `jti` is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(jti)
    }

    /// The current keys.
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the keys (an empty set is refused: it would lock everyone out).
    pub fn set_keys(&self, v: TokenVerifier) {
        if v.key_ids().is_empty() {
            return;
        }
        let mut cur = self.verifier.write().unwrap_or_else(|e| e.into_inner());
        let new: std::collections::HashSet<&str> = v.key_ids().into_iter().collect();
        if cur.key_ids().iter().any(|k| !new.contains(k)) {
            // tokens of a key that went away must fail from now on
            self.verified
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
        *cur = v;
    }

    /// Replaces the revocations.
    pub fn set_revoked(&self, revoked: &[Revoked]) {
        let map = revoked.iter().map(|r| (r.jti.clone(), r.exp)).collect();
        *self.revoked.write().unwrap_or_else(|e| e.into_inner()) = map;
    }

    /// Applies a state from the root shard: its keys and its revocations.
    pub fn apply(&self, state: &TokenState) -> Result<(), AuthError> {
        let v = TokenVerifier::from_jwks(&state.jwks)?;
        self.set_keys(v);
        self.set_revoked(&state.revoked);
        Ok(())
    }

    /// Adds what `state` knows to what is known here: its keys and its revocations
    /// (dropping revocations of tokens expired by now). For states relayed by other
    /// verifiers (Redis), which may be older than the one applied last: revocations
    /// only ever end by expiry, so a union never accepts a token either side refuses.
    pub fn merge(&self, state: &TokenState) -> Result<(), AuthError> {
        let incoming = TokenVerifier::from_jwks(&state.jwks)?;
        self.verifier
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .merge(&incoming);
        let now = chrono::Utc::now().timestamp();
        let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp >= now);
        for r in &state.revoked {
            if r.exp >= now {
                revoked.insert(r.jti.clone(), r.exp);
            }
        }
        Ok(())
    }

    /// Revoked ids remembered (expired ones are dropped on the next [`apply`](Self::apply)).
    pub fn revoked_len(&self) -> usize {
        self.revoked.read().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TokenIssuer;
    use std::time::Duration;

    #[test]
    fn revoked_tokens_and_rotated_keys() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(dir.path()).unwrap();
        let auth = Authenticator::new(issuer.verifier());
        let (a, ca) = issuer
            .issue_claims("alice", &["dev".into()], Duration::from_secs(60), "t-a")
            .unwrap();
        let (b, _) = issuer
            .issue_claims("bob", &[], Duration::from_secs(60), "t-b")
            .unwrap();
        assert_eq!(auth.authenticate(&a).unwrap().name, "alice");
        assert!(auth
            .authenticate(&a)
            .unwrap()
            .groups
            .contains(&"system:authenticated".to_string()));
        let state = TokenState {
            resource_version: "7".into(),
            jwks: issuer.jwks(),
            revoked: vec![Revoked {
                jti: "t-a".into(),
                exp: ca.exp,
            }],
        };
        auth.apply(&state).unwrap();
        assert!(auth.is_revoked("t-a"));
        assert!(auth.authenticate(&a).is_err());
        assert_eq!(auth.authenticate(&b).unwrap().name, "bob");

        // a token of a key this authenticator has not heard of yet fails until the
        // state with the new key arrives; the old key's tokens keep working after it
        issuer.rotate().unwrap();
        let c = issuer.issue("carol", &[], Duration::from_secs(60)).unwrap();
        assert!(auth.authenticate(&c).is_err());
        let state = TokenState {
            jwks: issuer.jwks(),
            revoked: vec![],
            ..state
        };
        auth.apply(&state).unwrap();
        assert_eq!(auth.authenticate(&c).unwrap().name, "carol");
        assert_eq!(auth.authenticate(&a).unwrap().name, "alice");

        // a state without keys is refused, keeping the ones known
        let bad = TokenState {
            jwks: serde_json::json!({"keys": []}),
            ..state
        };
        assert!(auth.apply(&bad).is_err());
        assert!(auth.authenticate(&c).is_ok());

        // merging adds: a relayed older state keeps the newer key and its revocations,
        // and adds its own; expired revocations are dropped
        let fresh = Authenticator::new(TokenVerifier::default());
        fresh
            .merge(&TokenState {
                resource_version: "1".into(),
                jwks: issuer.jwks(),
                revoked: vec![
                    Revoked {
                        jti: "t-b".into(),
                        exp: i64::MAX,
                    },
                    Revoked {
                        jti: "gone".into(),
                        exp: 0,
                    },
                ],
            })
            .unwrap();
        assert!(fresh.authenticate(&b).is_err() && fresh.is_revoked("t-b"));
        assert!(!fresh.is_revoked("gone"));
        assert_eq!(fresh.authenticate(&c).unwrap().name, "carol");
        let other = crate::TokenIssuer::load_or_create(&dir.path().join("other")).unwrap();
        fresh
            .merge(&TokenState {
                resource_version: "0".into(),
                jwks: other.jwks(),
                revoked: vec![],
            })
            .unwrap();
        assert!(
            fresh.is_revoked("t-b"),
            "a union never forgets a revocation"
        );
        assert_eq!(fresh.authenticate(&c).unwrap().name, "carol");
        let d = other.issue("dave", &[], Duration::from_secs(60)).unwrap();
        assert_eq!(fresh.authenticate(&d).unwrap().name, "dave");
        let json = serde_json::to_value(&bad).unwrap();
        assert!(json.get("resourceVersion").is_some());
    }

    #[test]
    fn remembered_tokens_still_expire_and_lose_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let issuer = TokenIssuer::load_or_create(dir.path()).unwrap();
        let auth = Authenticator::new(issuer.verifier());
        let now = chrono::Utc::now().timestamp();
        let short = issuer
            .sign(&crate::token::Claims {
                iss: crate::token::ISSUER.into(),
                sub: "eve".into(),
                groups: vec![],
                uid: "u".into(),
                iat: now,
                exp: now,
                jti: "short".into(),
            })
            .unwrap();
        // verified once (remembered), then refused once past its expiry and leeway
        assert_eq!(auth.authenticate(&short).unwrap().name, "eve");
        assert_eq!(auth.authenticate(&short).unwrap().name, "eve");
        std::thread::sleep(Duration::from_millis(2100));
        assert!(auth.authenticate(&short).is_err());

        // a remembered token of a key that goes away is refused
        let long = issuer.issue("frank", &[], Duration::from_secs(60)).unwrap();
        assert!(auth.authenticate(&long).is_ok());
        let other = TokenIssuer::load_or_create(&dir.path().join("other")).unwrap();
        auth.set_keys(other.verifier());
        assert!(auth.authenticate(&long).is_err());
        // adding keys keeps what was remembered
        let mut both = other.verifier();
        both.merge(&issuer.verifier());
        auth.set_keys(both.clone());
        assert!(auth.authenticate(&long).is_ok());
        let mut more = both;
        more.merge(
            &TokenIssuer::load_or_create(&dir.path().join("third"))
                .unwrap()
                .verifier(),
        );
        auth.set_keys(more);
        assert!(auth.authenticate(&long).is_ok());
        // and a forged token never gets in by its digest
        let mut parts: Vec<&str> = long.split('.').collect();
        parts[2] = "AAAA";
        assert!(auth.authenticate(&parts.join(".")).is_err());
    }
}
