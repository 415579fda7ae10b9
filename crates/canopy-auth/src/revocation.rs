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
    /// The revocations and version of this state signed by the token service's active
    /// key ([`sign_state`]): what verifiers relay to each other through channels that
    /// are not authenticated (Redis), where only the signature vouches for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signed: Option<String>,
}

/// What the token service signs of a [`TokenState`] for relaying (the payload of
/// [`TokenState::signed`], a compact JWS of the active signing key, see
/// [`crate::TokenIssuer::sign_document`]).
///
/// **Only revocations travel this way, never keys**: a receiver verifies the signature
/// with the keys it already trusts (from files it was configured with, or from root's
/// shard over authenticated TLS) and then adds the revocations; nothing here can make
/// it accept a token it would not accept before. **Replay** of an old signed state is
/// harmless: receivers take the *union* of revocations (they only end by the token's
/// expiry, after which the token is refused anyway), so an old state can only re-add
/// revocations that were genuinely made, never remove one. The version
/// (`<boot id>.<change counter>` of root's shard) and the signing time say which state
/// it was, for logs and debugging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedState {
    /// Always [`SIGNED_STATE_KIND`]: what the signed document is.
    pub kind: String,
    /// The state's version (`<boot id>.<change counter>`).
    pub resource_version: String,
    /// When root's shard signed it (Unix seconds).
    pub signed_at: i64,
    pub revoked: Vec<Revoked>,
}

/// [`SignedState::kind`].
pub const SIGNED_STATE_KIND: &str = "TokenRevocations";

/// Signs the revocations and version of `state` with the issuer's active key.
pub fn sign_state(issuer: &crate::TokenIssuer, state: &TokenState) -> Result<String, AuthError> {
    issuer.sign_document(&SignedState {
        kind: SIGNED_STATE_KIND.into(),
        resource_version: state.resource_version.clone(),
        signed_at: chrono::Utc::now().timestamp(),
        revoked: state.revoked.clone(),
    })
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

    /// Verifies a signed state relayed by another verifier ([`TokenState::signed`],
    /// e.g. through Redis) with the keys trusted here, then adds its revocations (see
    /// [`merge_revoked`](Self::merge_revoked)). Keys are never learned this way.
    pub fn merge_signed(&self, jws: &str) -> Result<SignedState, crate::token::DocumentError> {
        let state: SignedState = self
            .verifier
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .verify_document(jws)?;
        if state.kind != SIGNED_STATE_KIND {
            return Err(crate::token::DocumentError::Malformed);
        }
        self.merge_revoked(&state.revoked);
        Ok(state)
    }

    /// Adds revocations to those known here (dropping those of tokens expired by now).
    /// For states relayed by other verifiers, which may be older than the one applied
    /// last: revocations only ever end by expiry, so a union never accepts a token
    /// either side refuses.
    pub fn merge_revoked(&self, incoming: &[Revoked]) {
        let now = chrono::Utc::now().timestamp();
        let mut revoked = self.revoked.write().unwrap_or_else(|e| e.into_inner());
        revoked.retain(|_, exp| *exp >= now);
        for r in incoming {
            if r.exp >= now {
                revoked.insert(r.jti.clone(), r.exp);
            }
        }
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
            signed: None,
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

        // relayed states: only signed revocations are merged, with the keys trusted
        // here; keys never come this way
        let fresh = Authenticator::new(issuer.verifier());
        let relayed = TokenState {
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
            signed: None,
        };
        let jws = sign_state(&issuer, &relayed).unwrap();
        let got = fresh.merge_signed(&jws).unwrap();
        assert_eq!(got.resource_version, "1");
        assert!(fresh.authenticate(&b).is_err() && fresh.is_revoked("t-b"));
        assert!(!fresh.is_revoked("gone"), "expired revocations are dropped");
        assert_eq!(fresh.authenticate(&c).unwrap().name, "carol");
        // an older state relayed later (a replay) adds nothing and removes nothing
        let older = sign_state(
            &issuer,
            &TokenState {
                resource_version: "0".into(),
                revoked: vec![],
                ..relayed.clone()
            },
        )
        .unwrap();
        fresh.merge_signed(&older).unwrap();
        assert!(
            fresh.is_revoked("t-b"),
            "a union never forgets a revocation"
        );
        // another issuer's signed state (an attacker's key) is refused, adding neither
        // its revocations nor its key
        let other = crate::TokenIssuer::load_or_create(&dir.path().join("other")).unwrap();
        let forged = sign_state(
            &other,
            &TokenState {
                revoked: vec![Revoked {
                    jti: "t-c".into(),
                    exp: i64::MAX,
                }],
                ..relayed.clone()
            },
        )
        .unwrap();
        assert_eq!(
            fresh.merge_signed(&forged).unwrap_err(),
            crate::token::DocumentError::UnknownKey
        );
        assert!(!fresh.is_revoked("t-c"));
        let d = other.issue("dave", &[], Duration::from_secs(60)).unwrap();
        assert!(fresh.authenticate(&d).is_err());
        // the attacker names a trusted key id: the signature does not verify
        let mut parts: Vec<String> = forged.split('.').map(str::to_string).collect();
        let mut header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, &parts[0])
                .unwrap(),
        )
        .unwrap();
        header["kid"] = issuer.key_id().into();
        parts[0] = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            header.to_string(),
        );
        assert_eq!(
            fresh.merge_signed(&parts.join(".")).unwrap_err(),
            crate::token::DocumentError::BadSignature
        );
        // unsigned JSON, a bearer token, garbage: refused
        let plain = serde_json::to_string(&relayed).unwrap();
        assert!(fresh.merge_signed(&plain).is_err());
        assert!(fresh.merge_signed(&c).is_err());
        assert!(fresh.merge_signed("").is_err());
        // and a signed state is never a bearer token
        assert!(fresh.authenticate(&jws).is_err());
        assert!(issuer.verify(&jws).is_err());
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
