//! `canopy`: the all-in-one Canopy.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "canopy",
    version,
    about = "Canopy: a multi-tenant, Kubernetes-like control plane"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start Canopy: a shard serving the `root` workspace, with an embedded PostgreSQL
    /// unless --database-url is given. Writes <root-directory>/admin.kubeconfig.
    Start {
        /// Directory for all state (PostgreSQL data, certificates, kubeconfig).
        #[arg(long, default_value = ".canopy")]
        root_directory: PathBuf,
        /// HTTPS port.
        #[arg(long, default_value_t = 6443)]
        secure_port: u16,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind_address: IpAddr,
        /// Use this PostgreSQL database instead of the embedded one (postgres://user@host/db).
        #[arg(long)]
        database_url: Option<String>,
        /// Run this many shards (each with its own database in the embedded PostgreSQL)
        /// behind a front-proxy on the HTTPS port.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
        shards: u16,
        #[command(flatten)]
        limits: canopy_edge::flags::LimitFlags,
        #[command(flatten)]
        sizes: shard::flags::SizeAndQuotaFlags,
    },
    /// Issue, list and revoke tokens (through the server of the current kubeconfig
    /// context, as its user: the admin for anyone, other users for themselves).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Write a kubeconfig for a user and workspace, with a freshly issued token, that
    /// works with plain kubectl (server and CA from the current kubeconfig context).
    Kubeconfig {
        /// The user the token names.
        #[arg(long)]
        user: String,
        /// A group of the user (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// The workspace the kubeconfig points at.
        #[arg(long, default_value = "root")]
        workspace: String,
        /// How long the token is valid.
        #[arg(long, default_value = "720h")]
        ttl: String,
        /// Write here instead of to standard output.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// The kubeconfig to use (default: $KUBECONFIG, then ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Issue a token and print it.
    Create {
        /// The user the token names.
        #[arg(long)]
        user: String,
        /// A group of the user (repeatable).
        #[arg(long = "group")]
        groups: Vec<String>,
        /// How long the token is valid (at most 366 days).
        #[arg(long, default_value = "720h")]
        ttl: String,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// List the live tokens you may see (all of them for the admin).
    List {
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Revoke a token by its id (`canopy token list` shows them): within 2 seconds
    /// every front-proxy and shard refuses it.
    Revoke {
        id: String,
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
    /// Replace the signing key (admin only); tokens signed by the old key stay valid.
    RotateKey {
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

fn fail(e: impl std::fmt::Display) -> ! {
    eprintln!("canopy: {e}");
    std::process::exit(1);
}

async fn run_client(cmd: Command) {
    use canopy::cli;
    match cmd {
        Command::Start { .. } => unreachable!("handled by main"),
        Command::Token { command } => match command {
            TokenCommand::Create {
                user,
                groups,
                ttl,
                kubeconfig,
            } => {
                let ttl = cli::parse_duration(&ttl).unwrap_or_else(|e| fail(e));
                match cli::create_token(kubeconfig.as_deref(), &user, &groups, ttl).await {
                    Ok(t) => println!("{}", t.token),
                    Err(e) => fail(e),
                }
            }
            TokenCommand::List { kubeconfig } => {
                match cli::list_tokens(kubeconfig.as_deref()).await {
                    Ok(t) => print!("{t}"),
                    Err(e) => fail(e),
                }
            }
            TokenCommand::Revoke { id, kubeconfig } => {
                match cli::revoke_token(kubeconfig.as_deref(), &id).await {
                    Ok(()) => println!("token \"{id}\" revoked"),
                    Err(e) => fail(e),
                }
            }
            TokenCommand::RotateKey { kubeconfig } => {
                match cli::rotate_key(kubeconfig.as_deref()).await {
                    Ok(kid) => println!("signing key rotated; new key id {kid}"),
                    Err(e) => fail(e),
                }
            }
        },
        Command::Kubeconfig {
            user,
            groups,
            workspace,
            ttl,
            output,
            kubeconfig,
        } => {
            let ttl = cli::parse_duration(&ttl).unwrap_or_else(|e| fail(e));
            let text = cli::user_kubeconfig(kubeconfig.as_deref(), &user, &groups, &workspace, ttl)
                .await
                .unwrap_or_else(|e| fail(e));
            match output {
                Some(p) => {
                    if let Err(e) = canopy::write_private(&p, &text) {
                        fail(format!("writing {}: {e}", p.display()));
                    }
                }
                None => print!("{text}"),
            }
        }
    }
}

#[tokio::main]
async fn main() {
    canopy_https::init_logging();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Start { .. }) {
        return run_client(cli.command).await;
    }
    let Command::Start {
        root_directory,
        secure_port,
        bind_address,
        database_url,
        shards,
        limits,
        sizes,
    } = cli.command
    else {
        unreachable!("checked above")
    };
    canopy_https::raise_fd_limit_logged();
    // With --shards N one process holds the proxy's client connections, its connections
    // to the shards and the shards' ends of them: the default caps take a third each.
    let ways = if shards > 1 { 3 } else { 1 };
    let limits = match (limits.connection_limits(ways), limits.request_limits(ways)) {
        (Ok(connections), Ok(requests)) => canopy_edge::ServerLimits {
            connections,
            requests,
        },
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("canopy: {e}");
            std::process::exit(2);
        }
    };
    let running = match canopy::start(canopy::StartOptions {
        root_directory,
        secure_port,
        bind_address,
        database_url,
        shards: shards as usize,
        limits,
        size_limits: sizes.limits(),
    })
    .await
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("canopy: {e}");
            std::process::exit(1);
        }
    };
    let url = running
        .proxy
        .as_ref()
        .map_or(running.shard.url.clone(), |p| p.url.clone());
    println!("Canopy is serving {url}/clusters/root");
    println!(
        "Use it with: export KUBECONFIG={}",
        running.kubeconfig.display()
    );
    wait_for_shutdown_signal().await;
    println!("Stopping Canopy...");
    running.stop().await;
}

/// Ctrl-C (SIGINT) or SIGTERM (what service managers send).
async fn wait_for_shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("canopy: cannot listen for SIGTERM: {e}");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
