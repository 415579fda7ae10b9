//! `shard`: serve logical clusters from a PostgreSQL database.

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
    /// Directory for the shard's certificates and keys.
    #[arg(long, default_value = ".canopy")]
    root_directory: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// PostgreSQL URL of this shard's database (postgres://user@host/db).
    #[arg(long, env = "CANOPY_DATABASE_URL")]
    database_url: String,
    /// Host name clients use to reach this shard (for certificates and URLs).
    #[arg(long)]
    external_hostname: Option<String>,
    /// This shard's name: its identity at the cache server.
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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let a = Args::parse();
    let cache_server = match (
        a.cache_server_url,
        a.cache_server_ca,
        a.cache_server_token_file,
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
    let shard = shard::Shard::start(shard::ShardOptions {
        root_directory: a.root_directory,
        bind_address: a.bind_address,
        secure_port: a.secure_port,
        database_url: a.database_url,
        external_hostname: a.external_hostname,
        store: Default::default(),
        shard_name: a.shard_name,
        cache_server,
    })
    .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    shard.stop().await;
    Ok(())
}
