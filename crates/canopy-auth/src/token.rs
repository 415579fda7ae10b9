//! Bearer tokens that Canopy issues: ES256-signed JWTs carrying the user name and groups.
//!
//! The signing key is created on first start and kept at `<dir>/token-signing.key`; its key
//! id (`kid`) is derived from the public key, so tokens name the key that signed them and
//! rotation (issue 5) can keep old keys for verification.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuthError, UserInfo};

pub const ISSUER: &str = "canopy";
/// Seconds a token is still accepted after its `exp`.
pub const LEEWAY_SECONDS: i64 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    pub uid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// Longest lifetime of a token Canopy issues. A retired signing key is kept for
/// verification this long after its retirement, so rotation never invalidates an
/// unexpired token.
pub const MAX_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(366 * 86400);

/// The active signing key (private, 0600) in an issuer's directory. Only the token
/// service (root's shard) has one; every other verifier has public keys only.
pub const ACTIVE_KEY_FILE: &str = "token-signing.key";
/// The active key's public part, for verifiers given a file.
pub const PUBLIC_KEY_FILE: &str = "token-signing.pub";
/// The JWS `typ` of documents the issuer signs that are not bearer tokens (signed token
/// states, [`crate::revocation::SignedState`]). A bearer token is never accepted as
/// such a document, and such a document never as a bearer token.
pub const DOCUMENT_TYP: &str = "canopy-signed+jwt";
const RETIRED_KEYS_FILE: &str = "token-signing-retired.json";

/// A public key that no longer signs but still verifies, and since when.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct RetiredKey {
    kid: String,
    x: String,
    y: String,
    retired_at: i64,
}

struct Signing {
    kid: String,
    encoding: EncodingKey,
    public_pem: String,
    /// The active key's public part plus the retired keys still in their grace period.
    verifier: TokenVerifier,
}

/// Signs and verifies Canopy tokens; rotates its signing key.
///
/// Files in its directory: `token-signing.key` (the active private key),
/// `token-signing.pub` (its public key, for verifiers given a file), and
/// `token-signing-retired.json` (public keys of retired keys with their retirement time;
/// each is dropped [`MAX_TOKEN_TTL`] after retirement, when no token it signed can still
/// be valid).
pub struct TokenIssuer {
    dir: PathBuf,
    signing: RwLock<Signing>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.key_id())
            .finish_non_exhaustive()
    }
}

/// The key id of a P-256 public key: the first 16 bytes of the SHA-256 of its raw
/// (uncompressed point) encoding, base64url.
fn key_id(raw_point: &[u8]) -> String {
    let digest = Sha256::digest(raw_point);
    base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &digest[..16],
    )
}

fn read_retired(path: &Path) -> Result<Vec<RetiredKey>, AuthError> {
    match fs::read_to_string(path) {
        Ok(s) => {
            serde_json::from_str(&s).map_err(|e| AuthError::Jwt(format!("{}: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(AuthError::io(path, e)),
    }
}

fn write_atomic(path: &Path, contents: &str, private: bool) -> Result<(), AuthError> {
    if private {
        crate::pki_write_private(path, contents)
    } else {
        crate::pki_write_public(path, contents)
    }
}

impl TokenIssuer {
    /// Loads the signing key from `dir`, creating it on first use. The public key is
    /// (re)written next to it as `token-signing.pub` for verifiers such as the
    /// front-proxy.
    pub fn load_or_create(dir: &Path) -> Result<TokenIssuer, AuthError> {
        crate::pki_private_dir(dir)?;
        let path = dir.join(ACTIVE_KEY_FILE);
        let key = if path.exists() {
            let pem = crate::files::read_private(&path)?;
            rcgen::KeyPair::from_pem(&pem).map_err(AuthError::pki)?
        } else {
            let key = rcgen::KeyPair::generate().map_err(AuthError::pki)?;
            crate::pki_write_private(&path, &key.serialize_pem())?;
            key
        };
        let signing = Self::signing(dir, &key)?;
        Ok(TokenIssuer {
            dir: dir.to_path_buf(),
            signing: RwLock::new(signing),
        })
    }

    fn signing(dir: &Path, key: &rcgen::KeyPair) -> Result<Signing, AuthError> {
        let private_pem = key.serialize_pem();
        let public_pem = key.public_key_pem();
        let pub_path = dir.join(PUBLIC_KEY_FILE);
        if fs::read_to_string(&pub_path).ok().as_deref() != Some(public_pem.as_str()) {
            write_atomic(&pub_path, &public_pem, false)?;
        }
        let kid = key_id(key.public_key_raw());
        let mut verifier = TokenVerifier::from_public_key_pem(&public_pem)?;
        let cutoff = chrono::Utc::now().timestamp() - MAX_TOKEN_TTL.as_secs() as i64;
        for r in read_retired(&dir.join(RETIRED_KEYS_FILE))? {
            if r.retired_at >= cutoff && r.kid != kid {
                verifier.add_jwk(&r.kid, &r.x, &r.y)?;
            }
        }
        Ok(Signing {
            kid,
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(AuthError::jwt)?,
            public_pem,
            verifier,
        })
    }

    /// Replaces the signing key with a new one. The old key keeps verifying the tokens
    /// it signed (until [`MAX_TOKEN_TTL`] after now); new tokens name the new key.
    /// Returns the new key id.
    pub fn rotate(&self) -> Result<String, AuthError> {
        let mut signing = self.signing.write().unwrap_or_else(|e| e.into_inner());
        let key = rcgen::KeyPair::generate().map_err(AuthError::pki)?;
        let retired_path = self.dir.join(RETIRED_KEYS_FILE);
        let now = chrono::Utc::now().timestamp();
        let cutoff = now - MAX_TOKEN_TTL.as_secs() as i64;
        let mut retired: Vec<RetiredKey> = read_retired(&retired_path)?
            .into_iter()
            .filter(|r| r.retired_at >= cutoff)
            .collect();
        if let Some(k) = signing.verifier.keys.iter().find(|k| k.kid == signing.kid) {
            retired.push(RetiredKey {
                kid: k.kid.clone(),
                x: k.x.clone(),
                y: k.y.clone(),
                retired_at: now,
            });
        }
        let json = serde_json::to_string_pretty(&retired).map_err(AuthError::jwt)?;
        // the retired list first: a crash in between leaves the old key active and
        // listed as retired too, which verifies the same tokens
        write_atomic(&retired_path, &json, false)?;
        write_atomic(&self.dir.join(ACTIVE_KEY_FILE), &key.serialize_pem(), true)?;
        *signing = Self::signing(&self.dir, &key)?;
        Ok(signing.kid.clone())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Signing> {
        self.signing.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of the key that signs new tokens.
    pub fn key_id(&self) -> String {
        self.read().kid.clone()
    }

    /// The active verification key, PEM (`PUBLIC KEY`, P-256).
    pub fn public_key_pem(&self) -> String {
        self.read().public_pem.clone()
    }

    /// The verification keys (active and retired) as a JWKS document (`{"keys": [...]}`).
    pub fn jwks(&self) -> serde_json::Value {
        self.read().verifier.jwks()
    }

    /// A verifier for this issuer's tokens (as of now) that cannot sign.
    pub fn verifier(&self) -> TokenVerifier {
        self.read().verifier.clone()
    }

    /// Issues a token for `user` valid for `ttl`.
    pub fn issue(
        &self,
        user: &str,
        groups: &[String],
        ttl: std::time::Duration,
    ) -> Result<String, AuthError> {
        self.issue_claims(user, groups, ttl, &uuid::Uuid::new_v4().to_string())
            .map(|(t, _)| t)
    }

    /// Issues a token for `user` valid for `ttl` with token id `jti`; returns it and its
    /// claims.
    pub fn issue_claims(
        &self,
        user: &str,
        groups: &[String],
        ttl: std::time::Duration,
        jti: &str,
    ) -> Result<(String, Claims), AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user.into(),
            groups: groups.to_vec(),
            uid: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: now + ttl.as_secs() as i64,
            jti: jti.into(),
        };
        Ok((self.sign(&claims)?, claims))
    }

    /// Signs `payload` as a compact JWS (ES256, the active key's id as `kid`, `typ`
    /// [`DOCUMENT_TYP`]): the signature covers the exact bytes of the payload, so no
    /// canonical re-encoding is needed to verify it. Verified with
    /// [`TokenVerifier::verify_document`].
    pub fn sign_document<T: Serialize>(&self, payload: &T) -> Result<String, AuthError> {
        let s = self.read();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(s.kid.clone());
        header.typ = Some(DOCUMENT_TYP.into());
        jsonwebtoken::encode(&header, payload, &s.encoding).map_err(AuthError::jwt)
    }

    /// Signs `claims` as they are (tests use it for expired or odd tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let s = self.read();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(s.kid.clone());
        jsonwebtoken::encode(&header, claims, &s.encoding).map_err(AuthError::jwt)
    }

    /// Verifies signature, issuer and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.read().verifier.verify(token)
    }

    /// Verifies a token and returns who it authenticates.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, AuthError> {
        self.read().verifier.authenticate(token)
    }
}

/// One verification key.
#[derive(Clone)]
struct VerificationKey {
    kid: String,
    /// base64url of the affine coordinates, for JWKS.
    x: String,
    y: String,
    key: DecodingKey,
}

/// Verifies Canopy tokens with public keys only: what a shard uses for its own tokens
/// and what the front-proxy is given (`token-signing.pub` or a JWKS) to authenticate
/// requests before routing them. Holds any number of keys (rotation): a token naming a
/// key id is checked against that key, one without a key id against each.
#[derive(Clone, Default)]
pub struct TokenVerifier {
    keys: Vec<VerificationKey>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field(
                "kids",
                &self.keys.iter().map(|k| &k.kid).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// DER of a P-256 `SubjectPublicKeyInfo` ends with the 65-byte uncompressed point.
const P256_POINT_LEN: usize = 65;

fn b64url(b: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
}

impl TokenVerifier {
    /// A verifier for every `PUBLIC KEY` block in `pem` (P-256 keys, as Canopy issues).
    pub fn from_public_key_pem(pem: &str) -> Result<TokenVerifier, AuthError> {
        let mut v = TokenVerifier::default();
        v.add_public_key_pem(pem)?;
        Ok(v)
    }

    /// Adds every `PUBLIC KEY` block of `pem`.
    pub fn add_public_key_pem(&mut self, pem: &str) -> Result<(), AuthError> {
        const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
        const END: &str = "-----END PUBLIC KEY-----";
        let mut rest = pem;
        let mut found = false;
        while let Some(start) = rest.find(BEGIN) {
            let after = &rest[start + BEGIN.len()..];
            let end = after
                .find(END)
                .ok_or_else(|| AuthError::Jwt("unterminated PUBLIC KEY block".into()))?;
            let body: String = after[..end].split_whitespace().collect();
            let der = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body)
                .map_err(AuthError::jwt)?;
            if der.len() < P256_POINT_LEN || der[der.len() - P256_POINT_LEN] != 4 {
                return Err(AuthError::Jwt(
                    "not an uncompressed P-256 public key (Canopy signs with ES256)".into(),
                ));
            }
            let point = &der[der.len() - P256_POINT_LEN..];
            let block = &rest[start..start + BEGIN.len() + end + END.len()];
            self.keys.push(VerificationKey {
                kid: key_id(point),
                x: b64url(&point[1..33]),
                y: b64url(&point[33..]),
                key: DecodingKey::from_ec_pem(block.as_bytes()).map_err(AuthError::jwt)?,
            });
            found = true;
            rest = &after[end + END.len()..];
        }
        if !found {
            return Err(AuthError::Jwt("no PUBLIC KEY block found".into()));
        }
        Ok(())
    }

    /// A verifier for the EC P-256 keys of a JWKS document (`{"keys": [...]}`).
    pub fn from_jwks(jwks: &serde_json::Value) -> Result<TokenVerifier, AuthError> {
        let mut v = TokenVerifier::default();
        let keys = jwks
            .get("keys")
            .and_then(serde_json::Value::as_array)
            .ok_or_else(|| AuthError::Jwt("a JWKS has a \"keys\" array".into()))?;
        for k in keys {
            let s = |f: &str| k.get(f).and_then(serde_json::Value::as_str).unwrap_or("");
            if s("kty") != "EC" || s("crv") != "P-256" {
                continue;
            }
            v.add_jwk(s("kid"), s("x"), s("y"))?;
        }
        if v.keys.is_empty() {
            return Err(AuthError::Jwt("no EC P-256 key in JWKS".into()));
        }
        Ok(v)
    }

    /// Adds an EC P-256 key given as JWK coordinates (base64url `x`, `y`).
    pub fn add_jwk(&mut self, kid: &str, x: &str, y: &str) -> Result<(), AuthError> {
        let dec = |c: &str| {
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, c)
                .map_err(AuthError::jwt)
        };
        let mut point = vec![4u8];
        point.extend(dec(x)?);
        point.extend(dec(y)?);
        if point.len() != P256_POINT_LEN {
            return Err(AuthError::Jwt("bad P-256 coordinates".into()));
        }
        let kid = if kid.is_empty() {
            key_id(&point)
        } else {
            kid.to_string()
        };
        if self.keys.iter().any(|k| k.kid == kid) {
            return Ok(());
        }
        self.keys.push(VerificationKey {
            kid,
            x: x.to_string(),
            y: y.to_string(),
            key: DecodingKey::from_ec_components(x, y).map_err(AuthError::jwt)?,
        });
        Ok(())
    }

    /// Adds the keys of `other` this verifier does not have yet (by key id).
    pub fn merge(&mut self, other: &TokenVerifier) {
        for k in &other.keys {
            if !self.keys.iter().any(|m| m.kid == k.kid) {
                self.keys.push(k.clone());
            }
        }
    }

    /// Adds the keys of `other`.
    pub fn extend(&mut self, other: TokenVerifier) {
        self.keys.extend(other.keys);
    }

    /// Key ids this verifier accepts.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }

    /// The keys as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys
            .iter()
            .map(|k| {
                serde_json::json!({
                    "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig",
                    "kid": k.kid, "x": k.x, "y": k.y,
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }

    /// Verifies signature, issuer and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        // clocks of issuer and verifiers are synchronized (one service): an expired
        // token is refused within 2 s of its expiry everywhere
        v.leeway = LEEWAY_SECONDS as u64;
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if header.typ.as_deref() == Some(DOCUMENT_TYP) {
            return Err(AuthError::InvalidToken);
        }
        let kid = header.kid;
        let candidates = self
            .keys
            .iter()
            .filter(|k| kid.as_deref().is_none_or(|id| id == k.kid));
        for k in candidates {
            if let Ok(data) = jsonwebtoken::decode::<Claims>(token, &k.key, &v) {
                return Ok(data.claims);
            }
        }
        Err(AuthError::InvalidToken)
    }

    /// Verifies a compact JWS of [`TokenIssuer::sign_document`]: `typ` must be
    /// [`DOCUMENT_TYP`] and `kid` must name one of these keys, whose signature must
    /// verify. Returns the payload. Nothing else is checked (no expiry): what the
    /// payload means is the caller's business.
    pub fn verify_document<T: serde::de::DeserializeOwned>(
        &self,
        jws: &str,
    ) -> Result<T, DocumentError> {
        let header = jsonwebtoken::decode_header(jws).map_err(|_| DocumentError::Malformed)?;
        if header.typ.as_deref() != Some(DOCUMENT_TYP) || header.alg != Algorithm::ES256 {
            return Err(DocumentError::Malformed);
        }
        let kid = header.kid.ok_or(DocumentError::UnknownKey)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(DocumentError::UnknownKey)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        v.validate_nbf = false;
        v.validate_aud = false;
        match jsonwebtoken::decode::<T>(jws, &key.key, &v) {
            Ok(data) => Ok(data.claims),
            Err(e) => match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    Err(DocumentError::BadSignature)
                }
                _ => Err(DocumentError::Malformed),
            },
        }
    }

    /// Verifies a token and returns who it authenticates.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, AuthError> {
        self.verify(token).map(user_of)
    }
}

/// Why a signed document was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("not a signed Canopy document")]
    Malformed,
    #[error("signed by a key this verifier does not trust")]
    UnknownKey,
    #[error("bad signature")]
    BadSignature,
}

impl DocumentError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            DocumentError::Malformed => "malformed",
            DocumentError::UnknownKey => "unknown_key",
            DocumentError::BadSignature => "bad_signature",
        }
    }
}

/// The user extra naming the token a request was made with, as kube names bound
/// service-account tokens: `JTI=<token id>`.
pub const CREDENTIAL_ID_EXTRA: &str = "authentication.kubernetes.io/credential-id";
/// The user extra holding when that token expires (Unix seconds).
pub const CREDENTIAL_EXPIRY_EXTRA: &str = "authentication.canopy.dev/credential-expires-at";

/// Who a token's claims name (every token holder is also `system:authenticated`), with
/// the token's id and expiry as extras (the token service uses them: a token a user
/// issues for themselves may not outlive, nor survive the revocation of, the one used).
pub(crate) fn user_of(c: Claims) -> UserInfo {
    let mut groups = c.groups;
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    let mut extra = std::collections::BTreeMap::new();
    if !c.jti.is_empty() {
        extra.insert(
            CREDENTIAL_ID_EXTRA.to_string(),
            vec![format!("JTI={}", c.jti)],
        );
        extra.insert(CREDENTIAL_EXPIRY_EXTRA.to_string(), vec![c.exp.to_string()]);
    }
    UserInfo {
        name: c.sub,
        uid: c.uid,
        groups,
        extra,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn issue_verify_and_reject() {
        let dir = tempfile::tempdir().unwrap();
        let t = TokenIssuer::load_or_create(dir.path()).unwrap();
        let tok = t
            .issue("alice", &["dev".into()], Duration::from_secs(60))
            .unwrap();
        let u = t.authenticate(&tok).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(
            u.groups,
            vec!["dev".to_string(), "system:authenticated".to_string()]
        );

        // the same key after a reload verifies old tokens
        let t2 = TokenIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(t2.key_id(), t.key_id());
        assert!(t2.verify(&tok).is_ok());

        // another key does not
        let other = tempfile::tempdir().unwrap();
        let t3 = TokenIssuer::load_or_create(other.path()).unwrap();
        assert!(matches!(t3.verify(&tok), Err(AuthError::InvalidToken)));

        // tampering and expiry
        let mut parts: Vec<&str> = tok.split('.').collect();
        let forged = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"iss":"canopy","sub":"root","uid":"x","iat":0,"exp":99999999999,"jti":"x"}"#,
        );
        parts[1] = &forged;
        assert!(t.verify(&parts.join(".")).is_err());
        let expired = {
            let now = chrono::Utc::now().timestamp();
            let claims = Claims {
                iss: ISSUER.into(),
                sub: "a".into(),
                groups: vec![],
                uid: "u".into(),
                iat: now - 100,
                exp: now - 60,
                jti: "j".into(),
            };
            t.sign(&claims).unwrap()
        };
        assert!(t.verify(&expired).is_err());
        assert!(t.verify("garbage").is_err());
    }

    #[test]
    fn verifier_from_public_key_and_jwks() {
        let dir = tempfile::tempdir().unwrap();
        let t = TokenIssuer::load_or_create(dir.path()).unwrap();
        let tok = t.issue("bob", &[], Duration::from_secs(60)).unwrap();
        let pem = std::fs::read_to_string(dir.path().join("token-signing.pub")).unwrap();
        assert_eq!(pem, t.public_key_pem());
        let v = TokenVerifier::from_public_key_pem(&pem).unwrap();
        assert_eq!(v.key_ids(), vec![t.key_id().as_str()]);
        assert_eq!(v.authenticate(&tok).unwrap().name, "bob");
        let j = TokenVerifier::from_jwks(&t.jwks()).unwrap();
        assert_eq!(j.key_ids(), vec![t.key_id().as_str()]);
        assert_eq!(j.authenticate(&tok).unwrap().name, "bob");

        // a bundle of two keys verifies tokens of both issuers
        let other = tempfile::tempdir().unwrap();
        let t2 = TokenIssuer::load_or_create(other.path()).unwrap();
        let tok2 = t2.issue("carol", &[], Duration::from_secs(60)).unwrap();
        assert!(v.verify(&tok2).is_err());
        let both =
            TokenVerifier::from_public_key_pem(&format!("{pem}{}", t2.public_key_pem())).unwrap();
        assert!(both.verify(&tok).is_ok() && both.verify(&tok2).is_ok());
        assert!(TokenVerifier::from_public_key_pem("nothing").is_err());
    }

    #[test]
    fn rotation_keeps_old_tokens_valid() {
        let dir = tempfile::tempdir().unwrap();
        let t = TokenIssuer::load_or_create(dir.path()).unwrap();
        let old = t.issue("alice", &[], Duration::from_secs(600)).unwrap();
        let old_kid = t.key_id();
        let new_kid = t.rotate().unwrap();
        assert_ne!(old_kid, new_kid);
        // the private key is 0600 in a 0700 directory, before and after rotation
        use std::os::unix::fs::MetadataExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o777;
        assert_eq!(mode(&dir.path().join(ACTIVE_KEY_FILE)), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join(PUBLIC_KEY_FILE)), 0o644);
        let new = t.issue("bob", &[], Duration::from_secs(600)).unwrap();
        let header = jsonwebtoken::decode_header(&new).unwrap();
        assert_eq!(header.kid.as_deref(), Some(new_kid.as_str()));
        assert_eq!(t.authenticate(&old).unwrap().name, "alice");
        assert_eq!(t.authenticate(&new).unwrap().name, "bob");
        // the JWKS names both keys, the active one first
        let jwks = TokenVerifier::from_jwks(&t.jwks()).unwrap();
        assert_eq!(jwks.key_ids(), vec![new_kid.as_str(), old_kid.as_str()]);
        assert!(jwks.verify(&old).is_ok() && jwks.verify(&new).is_ok());
        // a restart keeps both
        let t2 = TokenIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(t2.key_id(), new_kid);
        assert!(t2.verify(&old).is_ok() && t2.verify(&new).is_ok());
        // the public key file names the new key only
        let pem = std::fs::read_to_string(dir.path().join("token-signing.pub")).unwrap();
        assert!(TokenVerifier::from_public_key_pem(&pem)
            .unwrap()
            .verify(&old)
            .is_err());
        // a retirement older than the longest token lifetime is dropped
        let path = dir.path().join(RETIRED_KEYS_FILE);
        let mut retired = read_retired(&path).unwrap();
        retired[0].retired_at -= MAX_TOKEN_TTL.as_secs() as i64 + 10;
        std::fs::write(&path, serde_json::to_string(&retired).unwrap()).unwrap();
        let t3 = TokenIssuer::load_or_create(dir.path()).unwrap();
        assert!(t3.verify(&old).is_err());
        assert!(t3.verify(&new).is_ok());
    }
}
