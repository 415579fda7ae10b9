//! `canopy start`: the all-in-one Canopy. Runs a shard serving the `root` logical cluster
//! and, unless given `--database-url`, a private PostgreSQL cluster under
//! `<root-directory>/postgres`; writes `<root-directory>/admin.kubeconfig`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `canopy start`.
#[derive(Debug, Clone)]
pub struct StartOptions {
    pub root_directory: PathBuf,
    pub secure_port: u16,
    pub bind_address: IpAddr,
    pub database_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create root directory {path}: {source}")]
    RootDirectory {
        path: String,
        source: std::io::Error,
    },
    #[error("embedded PostgreSQL: {0}")]
    Postgres(#[from] canopy_pg::PgError),
    #[error("{0}")]
    Shard(String),
    #[error("writing {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
}

/// A running all-in-one Canopy.
pub struct Running {
    pub shard: shard::Shard,
    pub kubeconfig: PathBuf,
    postgres: Option<canopy_pg::PgCluster>,
}

impl Running {
    /// Stops the shard, then the embedded PostgreSQL.
    pub async fn stop(mut self) {
        self.shard.stop().await;
        if let Some(pg) = self.postgres.take() {
            if let Err(e) = pg.stop().await {
                tracing::warn!(error = %e, "stopping embedded PostgreSQL");
            }
        }
    }
}

const ADMIN_TOKEN_TTL: Duration = Duration::from_secs(365 * 86400);

/// Starts everything and writes the admin kubeconfig.
pub async fn start(opts: StartOptions) -> Result<Running, StartError> {
    std::fs::create_dir_all(&opts.root_directory).map_err(|source| StartError::RootDirectory {
        path: opts.root_directory.display().to_string(),
        source,
    })?;
    let root = std::fs::canonicalize(&opts.root_directory).map_err(|source| {
        StartError::RootDirectory {
            path: opts.root_directory.display().to_string(),
            source,
        }
    })?;
    let (database_url, postgres) = match &opts.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let pg = canopy_pg::PgCluster::start(canopy_pg::PgOptions {
                data_dir: root.join("postgres"),
                bin_dir: None,
                port: None,
                die_with_parent: true,
            })
            .await?;
            pg.create_database("canopy").await?;
            (pg.url("canopy"), Some(pg))
        }
    };
    let shard = shard::Shard::start(shard::ShardOptions {
        root_directory: root.clone(),
        bind_address: opts.bind_address,
        secure_port: opts.secure_port,
        database_url,
        external_hostname: None,
        external_url: None,
        store: Default::default(),
        proxy_client_ca_pem: None,
        root: true,
        shard_name: "root".into(),
        cache_server: None,
    })
    .await;
    let shard = match shard {
        Ok(s) => s,
        Err(e) => {
            if let Some(pg) = postgres {
                let _ = pg.stop().await;
            }
            return Err(match (&e, &opts.database_url) {
                (shard::ShardError::Storage(canopy_storage::StorageError::Unavailable(m)), Some(url)) => StartError::Shard(format!(
                    "cannot use the database at {}: {}; check --database-url, or leave it out to use the embedded PostgreSQL",
                    redact(url),
                    redact_text(m, url)
                )),
                _ => StartError::Shard(e.to_string()),
            });
        }
    };
    let token = admin_token(&root, &shard)?;
    let kubeconfig = root.join("admin.kubeconfig");
    let text = shard::kubeconfig(&shard.url, &shard.ca_cert_pem, "root", &token);
    write_private(&kubeconfig, &text).map_err(|source| StartError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        source,
    })?;
    Ok(Running {
        shard,
        kubeconfig,
        postgres,
    })
}

/// Reuses the admin token kept in `<root>/admin.token` while it is valid, so kubeconfigs
/// copied elsewhere keep working across restarts.
fn admin_token(root: &Path, shard: &shard::Shard) -> Result<String, StartError> {
    let path = root.join("admin.token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_string();
        if let Ok(c) = shard.tokens.verify(&t) {
            let remaining = c.exp - now();
            if remaining > 30 * 86400 {
                return Ok(t);
            }
        }
    }
    let t = shard
        .admin_token(ADMIN_TOKEN_TTL)
        .map_err(|e| StartError::Shard(e.to_string()))?;
    write_private(&path, &t).map_err(|source| StartError::Kubeconfig {
        path: path.display().to_string(),
        source,
    })?;
    Ok(t)
}

/// A database URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

fn redact_text(text: &str, url: &str) -> String {
    text.replace(url, &redact(url))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
    }
}
