//! `cache-server`: holds the globally visible objects every shard replicates, in memory.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "cache-server",
    version,
    about = "The Canopy cache server: shards replicate their globally visible objects \
             (WorkspaceTypes, Shards, ...) into it and read every shard's copies back",
    long_about = "The Canopy cache server: shards replicate their globally visible objects \
                  (WorkspaceTypes, Shards, ...) into it and read every shard's copies back.\n\n\
                  State is kept in memory only: a restarted cache server starts empty, every \
                  shard notices within its heartbeat and re-sends its objects (full sync), and \
                  readers re-list. Clients authenticate with bearer tokens this server signs: \
                  `cache-server issue-token --shard <name>` for a shard (writes its own \
                  objects, reads all), `--reader <name>` for a front-proxy (reads). Clients \
                  trust <root-directory>/pki/ca.crt.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Directory for the cache server's CA, serving certificate and token-signing key
    /// (in <dir>/pki).
    #[arg(long, default_value = ".canopy-cache")]
    root_directory: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6444)]
    secure_port: u16,
    /// Host name clients use to reach this server (for its certificate and URL).
    #[arg(long)]
    external_hostname: Option<String>,
    /// Changes kept for watches that resume; older resourceVersions are answered 410.
    #[arg(long, default_value_t = 10_000)]
    history_events: usize,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a bearer token for a shard or a reader, signed with the key in
    /// <root-directory>/pki (created when missing).
    IssueToken {
        /// The cache server's --root-directory (the token-signing key is
        /// <dir>/pki/token-signing.key).
        #[arg(long, default_value = ".canopy-cache")]
        root_directory: PathBuf,
        /// The shard this token is for (may write only its own objects).
        #[arg(long, conflicts_with = "reader", required_unless_present = "reader")]
        shard: Option<String>,
        /// A read-only client (a front-proxy).
        #[arg(long)]
        reader: Option<String>,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        ttl_days: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    canopy_https::init_logging();
    canopy_https::raise_fd_limit_logged();
    let cli = Cli::parse();
    if let Some(Command::IssueToken {
        root_directory,
        shard,
        reader,
        ttl_days,
    }) = cli.command
    {
        let subject = match (shard, reader) {
            (Some(s), _) => cache_server::TokenSubject::Shard(s),
            (None, Some(r)) => cache_server::TokenSubject::Reader(r),
            (None, None) => anyhow::bail!("--shard or --reader is required"),
        };
        let token = cache_server::issue_token(
            &root_directory,
            &subject,
            Duration::from_secs(ttl_days * 86_400),
        )?;
        println!("{token}");
        return Ok(());
    }
    let a = cli.serve;
    let server = cache_server::CacheServer::start(cache_server::ServerOptions {
        root_directory: a.root_directory,
        bind_address: a.bind_address,
        secure_port: a.secure_port,
        external_hostname: a.external_hostname,
        history_events: a.history_events,
        ..Default::default()
    })
    .await?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    server.stop().await;
    Ok(())
}
