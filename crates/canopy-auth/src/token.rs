//! Bearer tokens that Canopy issues: ES256-signed JWTs carrying the user name and groups.
//!
//! The signing key is created on first start and kept at `<dir>/token-signing.key`; its key
//! id (`kid`) is derived from the public key, so tokens name the key that signed them and
//! rotation (issue 5) can keep old keys for verification.

use std::fs;
use std::path::Path;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{AuthError, UserInfo};

pub const ISSUER: &str = "canopy";

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

/// Signs and verifies Canopy tokens.
pub struct TokenIssuer {
    kid: String,
    encoding: EncodingKey,
    public_pem: String,
    verifier: TokenVerifier,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
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

impl TokenIssuer {
    /// Loads the signing key from `dir`, creating it on first use. The public key is
    /// (re)written next to it as `token-signing.pub` for verifiers such as the
    /// front-proxy.
    pub fn load_or_create(dir: &Path) -> Result<TokenIssuer, AuthError> {
        fs::create_dir_all(dir).map_err(|e| AuthError::io(dir, e))?;
        let path = dir.join("token-signing.key");
        let key = if path.exists() {
            let pem = fs::read_to_string(&path).map_err(|e| AuthError::io(&path, e))?;
            rcgen::KeyPair::from_pem(&pem).map_err(AuthError::pki)?
        } else {
            let key = rcgen::KeyPair::generate().map_err(AuthError::pki)?;
            crate::pki_write_private(&path, &key.serialize_pem())?;
            key
        };
        let private_pem = key.serialize_pem();
        let public_pem = key.public_key_pem();
        let pub_path = dir.join("token-signing.pub");
        if fs::read_to_string(&pub_path).ok().as_deref() != Some(public_pem.as_str()) {
            fs::write(&pub_path, &public_pem).map_err(|e| AuthError::io(&pub_path, e))?;
        }
        let kid = key_id(key.public_key_raw());
        Ok(TokenIssuer {
            kid,
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(AuthError::jwt)?,
            verifier: TokenVerifier::from_public_key_pem(&public_pem)?,
            public_pem,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// The verification key, PEM (`PUBLIC KEY`, P-256).
    pub fn public_key_pem(&self) -> &str {
        &self.public_pem
    }

    /// The verification key as a JWKS document (`{"keys": [...]}`).
    pub fn jwks(&self) -> serde_json::Value {
        self.verifier.jwks()
    }

    /// A verifier for this issuer's tokens that cannot sign.
    pub fn verifier(&self) -> TokenVerifier {
        self.verifier.clone()
    }

    /// Issues a token for `user` valid for `ttl`.
    pub fn issue(
        &self,
        user: &str,
        groups: &[String],
        ttl: std::time::Duration,
    ) -> Result<String, AuthError> {
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user.into(),
            groups: groups.to_vec(),
            uid: uuid::Uuid::new_v4().to_string(),
            iat: now,
            exp: now + ttl.as_secs() as i64,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.encoding).map_err(AuthError::jwt)
    }

    /// Signs `claims` as they are (tests use it for expired or odd tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String, AuthError> {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(AuthError::jwt)
    }

    /// Verifies signature, issuer and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        self.verifier.verify(token)
    }

    /// Verifies a token and returns who it authenticates.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, AuthError> {
        self.verifier.authenticate(token)
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
            let (x, y) = (s("x"), s("y"));
            let dec = |c: &str| {
                base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, c)
                    .map_err(AuthError::jwt)
            };
            let mut point = vec![4u8];
            point.extend(dec(x)?);
            point.extend(dec(y)?);
            if point.len() != P256_POINT_LEN {
                return Err(AuthError::Jwt("bad P-256 coordinates in JWKS".into()));
            }
            v.keys.push(VerificationKey {
                kid: if s("kid").is_empty() {
                    key_id(&point)
                } else {
                    s("kid").to_string()
                },
                x: x.to_string(),
                y: y.to_string(),
                key: DecodingKey::from_ec_components(x, y).map_err(AuthError::jwt)?,
            });
        }
        if v.keys.is_empty() {
            return Err(AuthError::Jwt("no EC P-256 key in JWKS".into()));
        }
        Ok(v)
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
        v.leeway = 5;
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| AuthError::InvalidToken)?
            .kid;
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

    /// Verifies a token and returns who it authenticates.
    pub fn authenticate(&self, token: &str) -> Result<UserInfo, AuthError> {
        let c = self.verify(token)?;
        let mut groups = c.groups;
        if !groups.iter().any(|g| g == "system:authenticated") {
            groups.push("system:authenticated".into());
        }
        Ok(UserInfo {
            name: c.sub,
            uid: c.uid,
            groups,
            extra: Default::default(),
        })
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
            jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims, &t.encoding).unwrap()
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
        assert_eq!(v.key_ids(), vec![t.key_id()]);
        assert_eq!(v.authenticate(&tok).unwrap().name, "bob");
        let j = TokenVerifier::from_jwks(&t.jwks()).unwrap();
        assert_eq!(j.key_ids(), vec![t.key_id()]);
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
}
