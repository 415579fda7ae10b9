//! `canopy start` limits tenants by default (issue 13, item 7): the real binary, with
//! no limit flags, answers an ordinary user's burst beyond the per-user rate limit with
//! 429 while the admin is served, and runs with its open-files limit raised.

use std::process::Stdio;
use std::time::Duration;

use canopy_test_harness::Client;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canopy_start_rate_limits_users_by_default_and_raises_its_fd_limit() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state");
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -Sn 512 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_canopy"))
        .args(["start", "--secure-port", "0", "--root-directory"])
        .arg(&root)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if let Some(rest) = l.strip_prefix("Canopy is serving ") {
                return rest.trim_end_matches("/clusters/root").to_string();
            }
        }
        panic!("canopy start ended without serving");
    })
    .await
    .expect("canopy start serves within 120 s");

    // the open-files limit was raised from 512 to the hard limit
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let f: Vec<&str> = line["Max open files".len()..].split_whitespace().collect();
    assert_eq!(f[0], f[1], "soft limit raised to the hard limit: {line}");

    let ca = std::fs::read_to_string(root.join("pki/ca.crt")).unwrap();
    let admin_token = std::fs::read_to_string(root.join("admin.token")).unwrap();
    let kubeconfig = root.join("admin.kubeconfig");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_canopy"))
        .args(["token", "create", "--user", "alice", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let alice_token = String::from_utf8(out.stdout).unwrap().trim().to_string();

    // a burst well beyond the default bucket (100, refilled at 50/s)
    let alice = Client::new(&url, &ca, Some(&alice_token));
    let codes = futures::future::join_all((0..300).map(|_| {
        let alice = alice.clone();
        async move { alice.get("/version").await.0 }
    }))
    .await;
    let limited = codes.iter().filter(|c| **c == 429).count();
    assert!(limited > 0, "no 429 in a burst of 300: {codes:?}");
    assert!(codes.iter().all(|c| *c == 200 || *c == 429), "{codes:?}");
    // the admin is not limited
    let admin = Client::new(&url, &ca, Some(admin_token.trim()));
    let codes = futures::future::join_all((0..300).map(|_| {
        let admin = admin.clone();
        async move { admin.get("/version").await.0 }
    }))
    .await;
    assert!(codes.iter().all(|c| *c == 200), "{codes:?}");

    // a clean stop (the embedded PostgreSQL with it)
    let _ = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await;
    if tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .is_err()
    {
        child.kill().await.unwrap();
    }
}
