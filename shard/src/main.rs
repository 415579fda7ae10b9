//! `shard`: serve logical clusters from a PostgreSQL database.

use canopy_tenancy::TenancyExt;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "shard",
    version,
    about = "A Canopy shard: serves logical clusters from one PostgreSQL database"
)]
struct Args {
    /// Directory for the shard's certificates and keys, in <dir>/pki (mode 0700, keys
    /// 0600): its CA (ca.crt, ca.key; generated when missing, or one you put there, whose
    /// subject must be CN=canopy-ca, O=Canopy), the serving certificate it issues from
    /// that CA, and, on the shard holding root only, the token-signing key
    /// (token-signing.key; token-signing.pub is its public key for front-proxies and the
    /// other shards).
    #[arg(long, default_value = ".canopy")]
    root_directory: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// PostgreSQL URL of this shard's database (postgres://user@host/db).
    #[arg(long, env = "CANOPY_DATABASE_URL", hide_env_values = true)]
    database_url: String,
    /// Host name clients use to reach this shard (for certificates and URLs); behind a
    /// front-proxy, the host of this shard's URL in the proxy's --shard and in the other
    /// shards' --root-shard-url.
    #[arg(long)]
    external_hostname: Option<String>,
    /// The URL clients reach workspaces at when it is not this shard's (behind a
    /// front-proxy: the proxy's https://host:port), for Workspace spec.URL.
    #[arg(long)]
    external_url: Option<String>,
    /// CA certificate (PEM) of the front-proxy's client certificates. Requests on
    /// connections presenting a certificate it signed are authenticated by their
    /// X-Remote-User/-Uid/-Group/-Extra-* headers; everyone else's such headers are
    /// ignored.
    #[arg(long)]
    proxy_client_ca_file: Option<PathBuf>,
    /// Do not create the root logical cluster (every shard but one behind a
    /// front-proxy).
    #[arg(long)]
    no_root: bool,
    /// This shard's name (its Shard object in root, its identity at the cache server).
    #[arg(long, default_value = "root")]
    shard_name: String,
    /// URL of the cache server (https://host:port) to replicate WorkspaceTypes and other
    /// global objects to, and read every shard's from. Unset: no replication.
    #[arg(long, requires_all = ["cache_server_ca", "cache_server_token_file"])]
    cache_server_url: Option<String>,
    /// PEM file of the CA of the cache server's certificate (its <root>/pki/ca.crt).
    #[arg(long)]
    cache_server_ca: Option<PathBuf>,
    /// File holding this shard's bearer token for the cache server (`cache-server
    /// issue-token --shard <shard-name>`); re-read on every request.
    #[arg(long)]
    cache_server_token_file: Option<PathBuf>,
    /// CA certificates (PEM bundle) of the other shards' serving certificates.
    #[arg(long, requires_all = ["peer_client_cert_file", "peer_client_key_file"])]
    peer_ca_file: Option<PathBuf>,
    /// Client certificate (PEM, signed by the proxy client CA) for calls to other shards.
    #[arg(long)]
    peer_client_cert_file: Option<PathBuf>,
    /// Its key (PEM).
    #[arg(long)]
    peer_client_key_file: Option<PathBuf>,
    /// URL of the shard holding root (for shards started with --no-root).
    #[arg(long)]
    root_shard_url: Option<String>,
    /// Public key(s) (PEM) of the token service (root's shard's
    /// <root>/pki/token-signing.pub), for a shard started with --no-root: tokens are
    /// verified with them until root's token state arrives (then with the keys root
    /// publishes, so rotations need no restart). Without it such a shard accepts no
    /// token until then. Repeatable. A shard without root never holds a private key.
    #[arg(long = "token-public-key-file", value_name = "FILE")]
    token_public_key_files: Vec<PathBuf>,
    #[command(flatten)]
    limits: canopy_edge::flags::LimitFlags,
    #[command(flatten)]
    sizes: shard::flags::SizeAndQuotaFlags,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    canopy_https::init_logging();
    canopy_https::raise_fd_limit_logged();
    let a = Args::parse();
    let limits = canopy_apiserver::ServerLimits {
        connections: a.limits.connection_limits(1)?,
        requests: a.limits.request_limits(1)?,
    };
    tracing::info!(
        max_connections = limits.connections.max_connections,
        max_watches = limits.requests.max_watches,
        "connection and request limits"
    );
    let proxy_client_ca_pem = match &a.proxy_client_ca_file {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .map_err(|e| anyhow::anyhow!("--proxy-client-ca-file {}: {e}", p.display()))?,
        ),
        None => None,
    };
    let cache_server = match (
        a.cache_server_url.clone(),
        a.cache_server_ca.clone(),
        a.cache_server_token_file.clone(),
    ) {
        (Some(url), Some(ca), Some(token)) => {
            let ca = std::fs::read_to_string(&ca)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", ca.display()))?;
            Some(shard::CacheServerOptions::new(
                &url,
                &ca,
                shard::CacheCredentials::TokenFile(token),
            ))
        }
        _ => None,
    };
    let mut token_verifier = canopy_auth::TokenVerifier::default();
    for f in &a.token_public_key_files {
        let pem = std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("--token-public-key-file {}: {e}", f.display()))?;
        token_verifier
            .add_public_key_pem(&pem)
            .map_err(|e| anyhow::anyhow!("--token-public-key-file {}: {e}", f.display()))?;
    }
    let shard = shard::Shard::start(shard::ShardOptions {
        root_directory: a.root_directory,
        bind_address: a.bind_address,
        secure_port: a.secure_port,
        database_url: a.database_url,
        external_hostname: a.external_hostname,
        external_url: a.external_url,
        store: Default::default(),
        proxy_client_ca_pem,
        root: !a.no_root,
        shard_name: a.shard_name.clone(),
        cache_server,
        token_verifier,
        limits,
        size_limits: a.sizes.limits(),
    })
    .await?;
    if let (Some(ca), Some(cert), Some(key)) = (
        &a.peer_ca_file,
        &a.peer_client_cert_file,
        &a.peer_client_key_file,
    ) {
        let read = |p: &PathBuf| {
            std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))
        };
        shard.api.set_peers(&canopy_tenancy::peers::PeerConfig {
            ca_bundle_pem: read(ca)?,
            client_cert_pem: read(cert)?,
            client_key_pem: read(key)?,
            root_shard_url: a.root_shard_url.clone(),
        })?;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    shard.stop().await;
    Ok(())
}
