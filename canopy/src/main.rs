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
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let Command::Start {
        root_directory,
        secure_port,
        bind_address,
        database_url,
        shards,
    } = cli.command;
    let running = match canopy::start(canopy::StartOptions {
        root_directory,
        secure_port,
        bind_address,
        database_url,
        shards: shards as usize,
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
