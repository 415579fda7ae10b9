//! The `cache-server` binary: its help, and tokens it issues that a server started on
//! the same root directory accepts.

use std::process::Command;
use std::time::Duration;

use canopy_cache::wire::{Key, Op, Upsert};
use canopy_cache::{CacheClient, CacheClientConfig, Credentials};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cache-server"))
}

#[test]
fn help_describes_the_server_and_its_flags() {
    let out = bin().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for s in [
        "--root-directory",
        "--secure-port",
        "--bind-address",
        "--history-events",
        "issue-token",
        "in memory",
    ] {
        assert!(help.contains(s), "{s} missing from:\n{help}");
    }
    let out = bin().args(["issue-token", "--help"]).output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--shard") && help.contains("--reader"),
        "{help}"
    );
    // neither --shard nor --reader
    let out = bin().args(["issue-token"]).output().unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn issued_tokens_work_against_a_server_on_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let out = bin()
        .args(["issue-token", "--root-directory", root, "--shard", "alpha"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let server = cache_server::CacheServer::start(cache_server::ServerOptions {
        root_directory: dir.path().to_path_buf(),
        secure_port: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let ca = std::fs::read_to_string(dir.path().join("pki/ca.crt")).unwrap();
    assert_eq!(ca, server.ca_cert_pem);
    let token_file = dir.path().join("alpha.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let client = CacheClient::new(&CacheClientConfig {
        url: server.url.clone(),
        ca_cert_pem: ca,
        credentials: Credentials::TokenFile(token_file),
    })
    .unwrap();
    let op = Op::Upsert(Upsert {
        key: Key::new("tenancy.kcp.io/workspacetypes", "root", "", "t"),
        source_resource_version: 1,
        object: serde_json::json!({"metadata": {"name": "t"}}),
    });
    client.write("alpha", vec![op.clone()]).await.unwrap();
    let err = client.write("beta", vec![op]).await.unwrap_err();
    assert_eq!(err.code(), Some(403));
    let _ = tokio::time::timeout(Duration::from_secs(10), server.stop()).await;
}
