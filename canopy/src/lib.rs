//! `canopy start`: the all-in-one Canopy. Runs a shard serving the `root` logical cluster
//! and, unless given `--database-url`, a private PostgreSQL cluster under
//! `<root-directory>/postgres`; writes `<root-directory>/admin.kubeconfig`.
//!
//! With `--shards N` (N > 1) it runs N shards, each with its own database in the embedded
//! PostgreSQL, behind a front-proxy on the public port, and a cache server (on a free
//! local port) to which every shard replicates its shared objects and from which it
//! reads everyone's (its global view). Only root's shard holds the token-signing key
//! (`<root>/pki/token-signing.key`, 0600 in a 0700 directory); the other shards and the
//! proxy verify tokens with its public keys and follow its token state. The shards trust
//! the proxy's client CA and reach each other as peers. The admin kubeconfig then
//! points at the proxy.
//!
//! Files holding secrets (`admin.kubeconfig`, `admin.token`, every private key, the
//! embedded PostgreSQL's password) are written atomically with mode 0600; the root
//! directory is created 0700 and refused when it is world-writable.
//!
//! [`cli`] holds the client commands (`canopy token …`, `canopy kubeconfig`).

pub mod cli;

use canopy_tenancy::TenancyExt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Options of `canopy start` (its `Debug` never shows a database password).
#[derive(Clone)]
pub struct StartOptions {
    pub root_directory: PathBuf,
    pub secure_port: u16,
    pub bind_address: IpAddr,
    pub database_url: Option<String>,
    /// How many shards (1: a single shard serves clients directly).
    pub shards: usize,
    /// Connection and request limits of whatever serves clients (the shard, or with
    /// `--shards N` the front-proxy; shards behind it keep the same limits but leave the
    /// per-user rate limit to the proxy). On by default (`ServerLimits::default()`).
    pub limits: canopy_edge::ServerLimits,
    /// Request body and object size limits.
    pub size_limits: shard::Limits,
}

impl std::fmt::Debug for StartOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StartOptions")
            .field("root_directory", &self.root_directory)
            .field("secure_port", &self.secure_port)
            .field("bind_address", &self.bind_address)
            .field("database_url", &self.database_url.as_deref().map(redact))
            .field("shards", &self.shards)
            .field("size_limits", &self.size_limits)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create root directory {path}: {source}")]
    RootDirectory {
        path: String,
        source: std::io::Error,
    },
    #[error("root directory {path} is writable by every user (mode {mode:o}): they could replace keys or credentials in it; use a directory others cannot write to (chmod o-w)")]
    RootDirectoryOpen { path: String, mode: u32 },
    #[error("embedded PostgreSQL: {0}")]
    Postgres(#[from] canopy_pg::PgError),
    #[error("{0}")]
    Shard(String),
    #[error("{0}")]
    Sharding(String),
    #[error("writing {path}: {source}")]
    Kubeconfig {
        path: String,
        source: std::io::Error,
    },
}

/// A running all-in-one Canopy.
pub struct Running {
    /// The shard holding root.
    pub shard: shard::Shard,
    /// The other shards (`--shards N`).
    pub more_shards: Vec<shard::Shard>,
    /// The front-proxy clients use (`--shards N`).
    pub proxy: Option<front_proxy::RunningProxy>,
    /// The cache server that gives every shard the global view (`--shards N`).
    pub cache: Option<cache_server::CacheServer>,
    pub kubeconfig: PathBuf,
    postgres: Option<canopy_pg::PgCluster>,
}

impl Running {
    /// Stops the shard, then the embedded PostgreSQL.
    pub async fn stop(mut self) {
        if let Some(p) = self.proxy.take() {
            p.stop().await;
        }
        for s in self.more_shards.drain(..) {
            s.stop().await;
        }
        self.shard.stop().await;
        if let Some(c) = self.cache.take() {
            c.stop().await;
        }
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
    let root = root_directory(&opts.root_directory)?;
    let (database_url, postgres) = match &opts.database_url {
        Some(url) => (url.clone(), None),
        None => {
            // its password is kept in <root>/postgres.password (0600)
            let pg = canopy_pg::PgCluster::start(canopy_pg::PgOptions::new(root.join("postgres")))
                .await?;
            pg.create_database("canopy").await?;
            (pg.url("canopy"), Some(pg))
        }
    };
    if opts.shards > 1 {
        return match start_sharded(&opts, &root, database_url, postgres.as_ref()).await {
            Ok(Sharded {
                shard,
                more_shards,
                proxy,
                cache,
                kubeconfig,
            }) => Ok(Running {
                shard,
                more_shards,
                proxy: Some(proxy),
                cache: Some(cache),
                kubeconfig,
                postgres,
            }),
            Err(e) => {
                if let Some(pg) = postgres {
                    let _ = pg.stop().await;
                }
                Err(e)
            }
        };
    }
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
        token_verifier: Default::default(),
        limits: opts.limits.clone(),
        size_limits: opts.size_limits,
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
    let token = admin_token(&root, &shard).await?;
    let kubeconfig = root.join("admin.kubeconfig");
    let text = shard::kubeconfig(&shard.url, &shard.ca_cert_pem, "root", &token);
    write_private(&kubeconfig, &text).map_err(|source| StartError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        source,
    })?;
    Ok(Running {
        shard,
        more_shards: Vec::new(),
        proxy: None,
        cache: None,
        kubeconfig,
        postgres,
    })
}

struct Sharded {
    shard: shard::Shard,
    more_shards: Vec<shard::Shard>,
    proxy: front_proxy::RunningProxy,
    cache: cache_server::CacheServer,
    kubeconfig: PathBuf,
}

/// `--shards N`: a cache server and N shards (root's first) on free ports behind a
/// front-proxy on the public port.
async fn start_sharded(
    opts: &StartOptions,
    root: &Path,
    root_database_url: String,
    pg: Option<&canopy_pg::PgCluster>,
) -> Result<Sharded, StartError> {
    let err = |e: &dyn std::fmt::Display| StartError::Sharding(e.to_string());
    let Some(pg) = pg else {
        return Err(StartError::Sharding(
            "--shards needs the embedded PostgreSQL (one database per shard); leave out --database-url".into(),
        ));
    };
    let client_ca =
        canopy_auth::ClientCa::load_or_create(&root.join("proxy-client-ca"), "proxy-client-ca")
            .map_err(|e| err(&e))?;
    // the public port first, so that shards hand out the proxy's URLs
    let listener = tokio::net::TcpListener::bind((opts.bind_address, opts.secure_port))
        .await
        .map_err(|e| {
            err(&format!(
                "cannot listen on {}:{}: {e}",
                opts.bind_address, opts.secure_port
            ))
        })?;
    let port = listener.local_addr().map_err(|e| err(&e))?.port();
    let host = if opts.bind_address.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        opts.bind_address.to_string()
    };
    let proxy_url = format!("https://{host}:{port}");
    let cache = cache_server::CacheServer::start(cache_server::ServerOptions {
        root_directory: root.join("cache-server"),
        bind_address: "127.0.0.1".parse().expect("an address"),
        secure_port: 0,
        ..Default::default()
    })
    .await
    .map_err(|e| err(&e))?;
    let mut shards = Vec::new();
    let mut root_keys: Option<canopy_auth::TokenVerifier> = None;
    for i in 0..opts.shards {
        let name = if i == 0 {
            "root".to_string()
        } else {
            format!("shard-{i}")
        };
        let (dir, db) = if i == 0 {
            (root.to_path_buf(), root_database_url.clone())
        } else {
            let db = format!("canopy_{}", name.replace('-', "_"));
            pg.create_database(&db).await?;
            (root.join("shards").join(&name), pg.url(&db))
        };
        let mut o = shard::ShardOptions::new(dir.clone(), db);
        if let Some(v) = &root_keys {
            // public keys only: tokens verify from the start, root's token state
            // (rotations, revocations) follows once peers are set
            o.token_verifier = v.clone();
        }
        o.bind_address = opts.bind_address;
        o.external_url = Some(proxy_url.clone());
        o.proxy_client_ca_pem = Some(client_ca.ca_cert_pem.clone());
        o.root = i == 0;
        // the proxy rate-limits each user once; shards keep the other limits
        o.limits = opts.limits.clone();
        o.limits.requests.rate_limit_qps = 0.0;
        o.size_limits = opts.size_limits;
        let cache_token = cache
            .token(
                &cache_server::TokenSubject::Shard(name.clone()),
                ADMIN_TOKEN_TTL,
            )
            .map_err(|e| err(&e))?;
        o.cache_server = Some(shard::CacheServerOptions::new(
            &cache.url,
            &cache.ca_cert_pem,
            shard::CacheCredentials::Token(cache_token),
        ));
        o.shard_name = name;
        let s = shard::Shard::start(o).await.map_err(|e| err(&e))?;
        if i == 0 {
            root_keys = s.tokens.as_ref().map(|t| t.verifier());
        }
        shards.push(s);
    }
    let ca_bundle = shards
        .iter()
        .map(|s| s.ca_cert_pem.clone())
        .collect::<Vec<_>>()
        .join("\n");
    for s in &shards {
        let (cert, key) = client_ca
            .issue_client_cert(
                &format!(
                    "system:shard:{}",
                    canopy_tenancy::tenancy(&s.api).config.shard_name
                ),
                &[],
            )
            .map_err(|e| err(&e))?;
        s.api
            .set_peers(&canopy_tenancy::peers::PeerConfig {
                ca_bundle_pem: ca_bundle.clone(),
                client_cert_pem: cert,
                client_key_pem: key,
                root_shard_url: Some(shards[0].url.clone())
                    .filter(|_| canopy_tenancy::tenancy(&s.api).config.shard_name != "root"),
            })
            .map_err(|e| err(&e))?;
    }
    let (cert_pem, key_pem) = client_ca
        .issue_client_cert("system:front-proxy", &[])
        .map_err(|e| err(&e))?;
    let targets = shards
        .iter()
        .map(|s| front_proxy::ShardTarget {
            name: canopy_tenancy::tenancy(&s.api).config.shard_name.clone(),
            url: s.url.clone(),
        })
        .collect();
    let mut po = front_proxy::FrontProxyOptions::new(
        root.join("front-proxy"),
        targets,
        ca_bundle,
        shards[0]
            .tokens
            .as_ref()
            .map(|t| t.verifier())
            .unwrap_or_default(),
    );
    po.bind_address = opts.bind_address;
    po.limits = opts.limits.clone();
    po.client_cert = Some(front_proxy::CertAndKey { cert_pem, key_pem });
    let proxy = front_proxy::FrontProxy::start_on(listener, po)
        .await
        .map_err(|e| err(&e))?;
    proxy.wait_ready(Duration::from_secs(30)).await;
    let root_shard = shards.remove(0);
    let token = admin_token(root, &root_shard).await?;
    let kubeconfig = root.join("admin.kubeconfig");
    let ca = proxy.ca_cert_pem.clone().unwrap_or_default();
    let text = shard::kubeconfig(&proxy.url, &ca, "root", &token);
    write_private(&kubeconfig, &text).map_err(|source| StartError::Kubeconfig {
        path: kubeconfig.display().to_string(),
        source,
    })?;
    Ok(Sharded {
        shard: root_shard,
        more_shards: shards,
        proxy,
        cache,
        kubeconfig,
    })
}

/// Reuses the admin token kept in `<root>/admin.token` while it is valid, so kubeconfigs
/// copied elsewhere keep working across restarts.
async fn admin_token(root: &Path, shard: &shard::Shard) -> Result<String, StartError> {
    let path = root.join("admin.token");
    if let Ok(t) = canopy_auth::files::read_private(&path) {
        let t = t.trim().to_string();
        if let (Some(Ok(c)), Ok(_)) = (
            shard.tokens.as_ref().map(|k| k.verify(&t)),
            shard.api.authenticator().authenticate(&t),
        ) {
            let remaining = c.exp - now();
            if remaining > 30 * 86400 {
                return Ok(t);
            }
        }
    }
    let t = shard
        .issue_token("admin", &["system:masters".to_string()], ADMIN_TOKEN_TTL)
        .await
        .map_err(|e| StartError::Shard(e.message.clone()))?;
    write_private(&path, &t).map_err(|source| StartError::Kubeconfig {
        path: path.display().to_string(),
        source,
    })?;
    Ok(t)
}

/// A database URL with its password replaced, for messages (the shard's redaction).
pub use shard::redact_url as redact;

fn redact_text(text: &str, url: &str) -> String {
    text.replace(url, &redact(url))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Writes `text` to `path`, readable by its owner only: atomically (a temporary file
/// in the same directory, mode 0600 from its creation, renamed over `path`). A `path`
/// that is not a regular file (`-o /dev/stdout`, a pipe) is written to as it is.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    // a link is followed: the file it names is replaced, the link kept
    let target = match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path)?,
        _ => path.to_path_buf(),
    };
    match std::fs::metadata(&target) {
        Ok(m) if !m.is_file() && !m.is_dir() => {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().write(true).open(&target)?;
            f.write_all(text.as_bytes())
        }
        _ => canopy_auth::files::write_private(&target, text.as_bytes()),
    }
}

/// Creates the root directory (mode 0700) or checks an existing one: it holds keys and
/// credentials, so it must not be world-writable.
fn root_directory(dir: &Path) -> Result<PathBuf, StartError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let fail = |source| StartError::RootDirectory {
        path: dir.display().to_string(),
        source,
    };
    if !dir.exists() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(fail)?;
        }
        match std::fs::DirBuilder::new().mode(0o700).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
    }
    let root = std::fs::canonicalize(dir).map_err(fail)?;
    let mode = std::fs::metadata(&root).map_err(fail)?.mode();
    if mode & 0o002 != 0 {
        return Err(StartError::RootDirectoryOpen {
            path: root.display().to_string(),
            mode: mode & 0o7777,
        });
    }
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn private_files_are_0600_links_are_kept_and_devices_written_to() {
        use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("admin.kubeconfig");
        std::fs::write(&f, "old").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        super::write_private(&f, "new").unwrap();
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "new");
        assert_eq!(std::fs::metadata(&f).unwrap().mode() & 0o777, 0o600);
        // a link to the file: the file is replaced, the link stays
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        super::write_private(&link, "via link").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_to_string(&f).unwrap(), "via link");
        // `-o /dev/null` writes to the device, never replaces it
        super::write_private(std::path::Path::new("/dev/null"), "x").unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
    }

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
