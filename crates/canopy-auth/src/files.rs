//! Writing files that hold secrets (private keys, tokens, kubeconfigs with credentials)
//! and the directories that hold them.
//!
//! - A secret is written **atomically with its final mode**: a temporary file in the
//!   same directory, created exclusively with mode 0600 (never world-readable, not even
//!   for a moment), written, synced, then renamed over the target. A reader sees the old
//!   contents or the new, never a partial file, and a crash leaves at most a stray
//!   temporary file.
//! - Directories holding secrets are made 0700; existing ones that group or others may
//!   write to are tightened (a directory others can write to lets them replace a key).
//! - A secret found readable by group or others (written by an older version) is
//!   tightened to 0600 when it is loaded, with a warning.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::AuthError;

/// Mode of files holding secrets.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of directories holding secrets.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    path.with_file_name(format!(".{name}.{}.tmp", &suffix[..12]))
}

fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // the mode given to open is masked by the umask; set it exactly
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes a secret: atomically, mode 0600 from its creation on.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_atomic(path, contents, PRIVATE_FILE_MODE)
}

/// Writes a file anyone may read (certificates, public keys), atomically.
pub fn write_public(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_atomic(path, contents, 0o644)
}

/// Creates `dir` (and missing parents) for secrets: mode 0700. An existing `dir` is
/// tightened to 0700 when group or others may write to it or enter it. Refuses a
/// symbolic link or a non-directory.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => {
            fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
            return Ok(());
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let m = fs::symlink_metadata(dir)?;
    if !m.is_dir() {
        return Err(std::io::Error::other(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    if m.mode() & 0o077 != 0 && owned_by_me(&m) {
        fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
    }
    Ok(())
}

fn owned_by_me(m: &fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions.
    m.uid() == unsafe { libc::geteuid() }
}

/// Reads a secret; if group or others may read or write it (an older version wrote it
/// so), it is tightened to 0600 first, with a warning naming the file (never its
/// contents).
pub fn read_private(path: &Path) -> Result<String, AuthError> {
    tighten(path)?;
    fs::read_to_string(path).map_err(|e| AuthError::io(path, e))
}

/// Makes `path` 0600 if group or others have any access to it.
pub fn tighten(path: &Path) -> Result<(), AuthError> {
    let m = fs::metadata(path).map_err(|e| AuthError::io(path, e))?;
    if m.mode() & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_FILE_MODE))
            .map_err(|e| AuthError::io(path, e))?;
        tracing::warn!(file = %path.display(), was = format!("{:o}", m.mode() & 0o777), "a private key or token file was readable by others; now 0600 (rotate it if others may have read it)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().mode() & 0o777
    }

    #[test]
    fn secrets_are_0600_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b/pki");
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);
        let f = d.join("k.key");
        write_private(&f, b"one").unwrap();
        assert_eq!(mode(&f), 0o600);
        write_private(&f, b"two").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "two");
        assert_eq!(mode(&f), 0o600);
        // no temporary file is left behind
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        write_public(&d.join("c.crt"), b"cert").unwrap();
        assert_eq!(mode(&d.join("c.crt")), 0o644);

        // an older version's world-readable key and open directory are tightened
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert_eq!(read_private(&f).unwrap(), "two");
        assert_eq!(mode(&f), 0o600);
        private_dir(&d).unwrap();
        assert_eq!(mode(&d), 0o700);

        // a symbolic link is not taken for the directory
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(private_dir(&link).is_err());
    }
}
