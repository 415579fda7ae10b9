//! `kubectl-ws`: kubectl runs it for `kubectl ws ...` when it is on PATH.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "kubectl ws",
    version,
    about = "Manage workspaces: show the current one, enter one, create one, show the tree",
    long_about = "Manage workspaces.\n\nExamples:\n  kubectl ws current              show the current workspace\n  kubectl ws use my-org           enter a child workspace (also: kubectl ws my-org)\n  kubectl ws ..                   go to the parent workspace\n  kubectl ws :root:org:team       go to an absolute path\n  kubectl ws -                    go back to the previous workspace\n  kubectl ws ~                    go to your home workspace\n  kubectl ws create team --enter  create a child workspace and enter it\n  kubectl ws tree                 show the workspaces below the current one",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Path to the kubeconfig file to use.
    #[arg(long, global = true)]
    kubeconfig: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
    /// A workspace to enter (same as `use`).
    target: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Print the current workspace.
    Current,
    /// Enter a workspace: a child name, `..`, `-`, `~`, or an absolute path (`:root:org`).
    Use { target: String },
    /// Create a child workspace of the current one.
    Create {
        name: String,
        /// Workspace type (`organization`, `team`, `universal`, or `path:name`).
        #[arg(long = "type")]
        ty: Option<String>,
        /// Enter the workspace after creating it.
        #[arg(long)]
        enter: bool,
        /// Succeed if the workspace exists already (with the same type).
        #[arg(long)]
        ignore_existing: bool,
        /// Label selector over shards (accepted for compatibility with kcp).
        #[arg(long)]
        location_selector: Option<String>,
    },
    /// Show the tree of workspaces below the current one.
    Tree,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    let cmd = match (cli.command, cli.target) {
        (Some(Cmd::Current), _) | (None, None) => kubectl_ws::Command::Current,
        (Some(Cmd::Use { target }), _) | (None, Some(target)) => kubectl_ws::Command::Use(target),
        (
            Some(Cmd::Create {
                name,
                ty,
                enter,
                ignore_existing,
                ..
            }),
            _,
        ) => kubectl_ws::Command::Create {
            name,
            ty,
            enter,
            ignore_existing,
        },
        (Some(Cmd::Tree), _) => kubectl_ws::Command::Tree,
    };
    match kubectl_ws::run(cmd, cli.kubeconfig).await {
        Ok(out) => println!("{out}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
