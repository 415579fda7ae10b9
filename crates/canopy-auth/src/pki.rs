//! The shard's certificate authority and serving certificate, created on first start and
//! kept in the data directory (`<dir>/ca.crt`, `ca.key`, `serving.crt`, `serving.key`);
//! and [`ClientCa`], a CA for client certificates: the front-proxy's identity towards
//! the shards (shards trust `X-Remote-*` identity headers only from a client whose
//! certificate that CA signed).

use std::fs;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::AuthError;

/// PEM-encoded CA and serving certificate with its key.
#[derive(Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub serving_cert_pem: String,
    pub serving_key_pem: String,
    pub dir: PathBuf,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn ca_params() -> CertificateParams {
    ca_params_named("canopy-ca")
}

fn ca_params_named(common_name: &str) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "Canopy");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let now = time_now();
    p.not_before = now;
    p.not_after = now + std::time::Duration::from_secs(10 * 365 * 86400);
    p
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - std::time::Duration::from_secs(3600)
}

fn write_private(path: &Path, contents: &str) -> Result<(), AuthError> {
    crate::pki_write_private(path, contents)
}

fn read(path: &Path) -> Result<String, AuthError> {
    fs::read_to_string(path).map_err(|e| AuthError::io(path, e))
}

fn write_public(path: &Path, contents: &str) -> Result<(), AuthError> {
    crate::pki_write_public(path, contents)
}

impl Pki {
    /// Loads the PKI from `dir`, creating what is missing. The serving certificate is
    /// re-issued when it does not cover every name in `hosts` (DNS names or IPs).
    pub fn load_or_create(dir: &Path, hosts: &[String]) -> Result<Pki, AuthError> {
        crate::pki_private_dir(dir)?;
        let ca_key_path = dir.join("ca.key");
        let ca_cert_path = dir.join("ca.crt");
        let (ca_key, ca_cert_pem) = if ca_key_path.exists() && ca_cert_path.exists() {
            let key = KeyPair::from_pem(&crate::files::read_private(&ca_key_path)?)
                .map_err(AuthError::pki)?;
            (key, read(&ca_cert_path)?)
        } else {
            let key = KeyPair::generate().map_err(AuthError::pki)?;
            let cert = ca_params().self_signed(&key).map_err(AuthError::pki)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_public(&ca_cert_path, &cert.pem())?;
            (key, cert.pem())
        };

        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for h in hosts {
            if !h.is_empty() && !names.contains(h) && h != "0.0.0.0" && h != "::" {
                names.push(h.clone());
            }
        }
        names.sort();
        let serving_cert_path = dir.join("serving.crt");
        let serving_key_path = dir.join("serving.key");
        let names_path = dir.join("serving.names");
        let current_names = fs::read_to_string(&names_path).unwrap_or_default();
        let wanted_names = names.join("\n");
        if serving_cert_path.exists() && serving_key_path.exists() && current_names == wanted_names
        {
            return Ok(Pki {
                ca_cert_pem,
                serving_cert_pem: read(&serving_cert_path)?,
                serving_key_pem: crate::files::read_private(&serving_key_path)?,
                dir: dir.to_path_buf(),
            });
        }
        let issuer = Issuer::new(ca_params(), ca_key);
        let (cert_pem, key_pem) = issue_leaf(&issuer, "canopy-shard", &[], &names, true)?;
        write_private(&serving_key_path, &key_pem)?;
        write_public(&serving_cert_path, &cert_pem)?;
        write_public(&names_path, &wanted_names)?;
        Ok(Pki {
            ca_cert_pem,
            serving_cert_pem: cert_pem,
            serving_key_pem: key_pem,
            dir: dir.to_path_buf(),
        })
    }
}

/// A CA that signs client certificates, kept as `<dir>/<name>.crt` and `<name>.key`.
pub struct ClientCa {
    pub ca_cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClientCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCa { .. }")
    }
}

impl ClientCa {
    /// Loads `<dir>/<name>.crt` and `.key`, creating them on first use.
    pub fn load_or_create(dir: &Path, name: &str) -> Result<ClientCa, AuthError> {
        crate::pki_private_dir(dir)?;
        let key_path = dir.join(format!("{name}.key"));
        let cert_path = dir.join(format!("{name}.crt"));
        let params = ca_params_named(name);
        let (key, cert_pem) = if key_path.exists() && cert_path.exists() {
            let key = KeyPair::from_pem(&crate::files::read_private(&key_path)?)
                .map_err(AuthError::pki)?;
            (key, read(&cert_path)?)
        } else {
            let key = KeyPair::generate().map_err(AuthError::pki)?;
            let cert = params.clone().self_signed(&key).map_err(AuthError::pki)?;
            write_private(&key_path, &key.serialize_pem())?;
            write_public(&cert_path, &cert.pem())?;
            (key, cert.pem())
        };
        Ok(ClientCa {
            ca_cert_pem: cert_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// Issues a client certificate (PEM certificate, PEM key) for `common_name` with
    /// `organizations` (valid two years).
    pub fn issue_client_cert(
        &self,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), AuthError> {
        issue_leaf(&self.issuer, common_name, organizations, &[], false)
    }

    /// Loads `<dir>/<file>.crt`/`.key` if present, else issues and writes them.
    pub fn load_or_issue_client_cert(
        &self,
        dir: &Path,
        file: &str,
        common_name: &str,
        organizations: &[&str],
    ) -> Result<(String, String), AuthError> {
        crate::pki_private_dir(dir)?;
        let cert_path = dir.join(format!("{file}.crt"));
        let key_path = dir.join(format!("{file}.key"));
        if cert_path.exists() && key_path.exists() {
            return Ok((read(&cert_path)?, crate::files::read_private(&key_path)?));
        }
        let (cert, key) = self.issue_client_cert(common_name, organizations)?;
        write_private(&key_path, &key)?;
        write_public(&cert_path, &cert)?;
        Ok((cert, key))
    }
}

fn issue_leaf(
    issuer: &Issuer<'_, KeyPair>,
    common_name: &str,
    organizations: &[&str],
    names: &[String],
    server: bool,
) -> Result<(String, String), AuthError> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    for o in organizations {
        dn.push(DnType::OrganizationName, *o);
    }
    p.distinguished_name = dn;
    p.subject_alt_names = names
        .iter()
        .map(|n| match n.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => n
                .clone()
                .try_into()
                .map(SanType::DnsName)
                .map_err(AuthError::pki),
        })
        .collect::<Result<_, _>>()?;
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let now = time_now();
    p.not_before = now;
    p.not_after = now + std::time::Duration::from_secs(2 * 365 * 86400);
    let key = KeyPair::generate().map_err(AuthError::pki)?;
    let cert = p.signed_by(&key, issuer).map_err(AuthError::pki)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_reused_and_reissued_for_new_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = Pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        assert!(a.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let b = Pki::load_or_create(dir.path(), &["127.0.0.1".into()]).unwrap();
        assert_eq!(a.serving_cert_pem, b.serving_cert_pem);
        let c = Pki::load_or_create(dir.path(), &["10.1.2.3".into()]).unwrap();
        assert_ne!(a.serving_cert_pem, c.serving_cert_pem);
        assert_eq!(a.ca_cert_pem, c.ca_cert_pem, "the CA is kept");
        let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn client_ca_issues_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ca = ClientCa::load_or_create(dir.path(), "proxy-client-ca").unwrap();
        let (cert, key) = ca
            .load_or_issue_client_cert(dir.path(), "front-proxy-client", "front-proxy", &[])
            .unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY"));
        let again = ClientCa::load_or_create(dir.path(), "proxy-client-ca").unwrap();
        assert_eq!(again.ca_cert_pem, ca.ca_cert_pem);
        let (cert2, _) = again
            .load_or_issue_client_cert(dir.path(), "front-proxy-client", "front-proxy", &[])
            .unwrap();
        assert_eq!(cert, cert2);
    }
}
