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
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Loads the signing key from `dir`, creating it on first use.
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
        let kid = {
            let digest = Sha256::digest(key.public_key_raw());
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                &digest[..16],
            )
        };
        Ok(TokenIssuer {
            kid,
            encoding: EncodingKey::from_ec_pem(private_pem.as_bytes()).map_err(AuthError::jwt)?,
            decoding: DecodingKey::from_ec_pem(public_pem.as_bytes()).map_err(AuthError::jwt)?,
        })
    }

    pub fn key_id(&self) -> &str {
        &self.kid
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

    /// Verifies signature, issuer and expiry; returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut v = Validation::new(Algorithm::ES256);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "iss", "sub"]);
        v.leeway = 5;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map_err(|_| AuthError::InvalidToken)?;
        Ok(data.claims)
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
}
