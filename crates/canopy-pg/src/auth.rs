//! Password authentication of the private cluster.
//!
//! Every connection authenticates with SCRAM-SHA-256 as `postgres`, with a random
//! password made at first start and kept (mode 0600, written atomically) in the
//! cluster's password file, which only the user running Canopy can read. The password
//! lives in memory in connection URLs and is never logged, put on a command line or
//! sent to the server in clear text: the server is given the SCRAM verifier (salted
//! hash, RFC 5803 format) computed here, in single-user mode, before it ever listens.
//!
//! Clusters made by older versions (`initdb -A trust`) are upgraded on start: when
//! `pg_hba.conf` has a `trust` line, the password is set (single-user mode, so nothing
//! can connect meanwhile) and `pg_hba.conf` is replaced with SCRAM-only rules. A crash
//! half-way leaves `trust` in place, so the next start does it again.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::{io, PgError, RunAs};

/// A secret string whose `Debug` does not show it.
#[derive(Clone)]
pub(crate) struct Secret(pub(crate) String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Iterations of PBKDF2 in the SCRAM verifier (PostgreSQL's default).
const SCRAM_ITERATIONS: u32 = 4096;

/// The `pg_hba.conf` Canopy writes: password (SCRAM) authentication for every
/// connection, local socket and loopback TCP alike; nothing from elsewhere.
pub(crate) const HBA: &str = "\
# Written by Canopy (canopy-pg): every connection authenticates with a password
# (SCRAM-SHA-256). The password is in the cluster's password file (mode 0600).
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
";

fn random_bytes<const N: usize>() -> Result<[u8; N], PgError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| PgError::Start(format!("no randomness: {e}")))?;
    Ok(b)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Reads the password from `path`, or makes a new random one and writes it there
/// (0600, atomically: a temporary file created with that mode, then renamed). Returns
/// it and whether it was made now. A password file others may read is tightened.
pub(crate) fn load_or_create_password(path: &Path) -> Result<(Secret, bool), PgError> {
    match std::fs::read_to_string(path) {
        Ok(s) => {
            use std::os::unix::fs::MetadataExt;
            let mode = std::fs::metadata(path)
                .map_err(io("cannot read", path))?
                .mode();
            if mode & 0o077 != 0 {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(io("cannot chmod", path))?;
                tracing::warn!(file = %path.display(), "the PostgreSQL password file was readable by others; now 0600");
            }
            let pw = s.trim().to_string();
            if pw.is_empty() {
                return Err(PgError::Start(format!(
                    "{} is empty: delete it to have a new password set",
                    path.display()
                )));
            }
            Ok((Secret(pw), false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let pw = hex(&random_bytes::<24>()?);
            write_private(path, pw.as_bytes())?;
            Ok((Secret(pw), true))
        }
        Err(e) => Err(io("cannot read", path)(e)),
    }
}

/// Writes `contents` to `path` atomically with mode 0600 from creation on.
pub(crate) fn write_private(path: &Path, contents: &[u8]) -> Result<(), PgError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", hex(&random_bytes::<6>()?)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io("cannot write", path))
}

/// The SCRAM-SHA-256 verifier of `password` (what PostgreSQL stores in `pg_authid`):
/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (RFC 5802/5803).
pub(crate) fn scram_verifier(password: &str) -> Result<String, PgError> {
    scram_verifier_with(password, &random_bytes::<16>()?, SCRAM_ITERATIONS)
}

fn scram_verifier_with(password: &str, salt: &[u8], iterations: u32) -> Result<String, PgError> {
    let b64 = |b: &[u8]| base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b);
    let mut salted = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut salted);
    let hmac = |key: &[u8], msg: &[u8]| -> Result<Vec<u8>, PgError> {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key)
            .map_err(|e| PgError::Start(e.to_string()))?;
        m.update(msg);
        Ok(m.finalize().into_bytes().to_vec())
    };
    let client_key = hmac(&salted, b"Client Key")?;
    let stored_key = Sha256::digest(&client_key);
    let server_key = hmac(&salted, b"Server Key")?;
    Ok(format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        b64(salt),
        b64(&stored_key),
        b64(&server_key)
    ))
}

/// Whether `pg_hba.conf` of `dir` lets anyone in without a password (`trust`), as
/// clusters of older versions did.
pub(crate) fn hba_trusts(dir: &Path) -> Result<bool, PgError> {
    let path = dir.join("pg_hba.conf");
    let text = std::fs::read_to_string(&path).map_err(io("cannot read", &path))?;
    Ok(text.lines().any(|l| {
        let l = l.split('#').next().unwrap_or("");
        l.split_whitespace()
            .any(|w| w.eq_ignore_ascii_case("trust"))
    }))
}

/// Replaces `pg_hba.conf` of `dir` with [`HBA`] (atomically, 0600, owned by `user`).
pub(crate) fn write_hba(dir: &Path, user: Option<RunAs>) -> Result<(), PgError> {
    let path = dir.join("pg_hba.conf");
    write_private(&path, HBA.as_bytes())?;
    if let Some(u) = user {
        crate::chown(&path, u)?;
    }
    Ok(())
}

/// Sets the password of `postgres` with the server stopped (single-user mode: nothing
/// can connect meanwhile). Only the SCRAM verifier reaches PostgreSQL, through stdin.
pub(crate) fn set_password(
    bin: &Path,
    dir: &Path,
    user: Option<RunAs>,
    password: &Secret,
) -> Result<(), PgError> {
    let verifier = scram_verifier(&password.0)?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("--single")
        .arg("-D")
        .arg(dir)
        .args([
            "-c",
            "log_statement=none",
            "-c",
            "log_min_error_statement=panic",
        ])
        .arg("postgres")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: only async-signal-safe calls between fork and exec (drop_privileges).
        unsafe {
            cmd.pre_exec(move || crate::drop_privileges(user));
        }
    }
    let mut child = cmd
        .spawn()
        .map_err(io("cannot run", &bin.join("postgres")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let sql = format!("ALTER ROLE postgres WITH PASSWORD '{verifier}';\n");
        stdin
            .write_all(sql.as_bytes())
            .map_err(io("cannot write to", &bin.join("postgres")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(io("cannot run", &bin.join("postgres")))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() || said.contains("ERROR") || said.contains("FATAL") {
        // the verifier is not the password, but keep it out of messages all the same
        let said = said.replace(&verifier, "<verifier>");
        let tail: Vec<&str> = said.lines().rev().take(8).collect();
        return Err(PgError::Start(format!(
            "setting the PostgreSQL password (single-user mode) failed: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifier_matches_rfc7677() {
        // RFC 7677's example password and salt; the expected verifier was computed
        // independently (Python's hashlib.pbkdf2_hmac and hmac), and the integration
        // tests log in with sqlx's SCRAM client against the verifier set here
        let salt = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
        )
        .unwrap();
        let v = scram_verifier_with("pencil", &salt, 4096).unwrap();
        assert_eq!(
            v,
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        let a = scram_verifier("x").unwrap();
        let b = scram_verifier("x").unwrap();
        assert_ne!(a, b, "a fresh salt every time");
    }

    #[test]
    fn hba_trust_is_detected() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("pg_hba.conf"),
            "# trust in a comment\nlocal all all trust\n",
        )
        .unwrap();
        assert!(hba_trusts(d.path()).unwrap());
        write_hba(d.path(), None).unwrap();
        assert!(!hba_trusts(d.path()).unwrap());
        let (p, made) = load_or_create_password(&d.path().join("pw")).unwrap();
        assert!(made && p.0.len() == 48);
        let (q, made) = load_or_create_password(&d.path().join("pw")).unwrap();
        assert!(!made && q.0 == p.0);
        assert!(!format!("{p:?}").contains(&p.0));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(d.path().join("pw")).unwrap().mode() & 0o777,
            0o600
        );
    }
}
