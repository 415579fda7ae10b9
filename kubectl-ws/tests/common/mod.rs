//! A kubectl session for the plugin's tests: real kubectl with its own kubeconfig and
//! discovery cache, and this crate's `kubectl-ws` first on PATH.

use std::path::PathBuf;

use canopy_test_harness::kubectl_binary;

pub struct Session {
    pub kubeconfig: PathBuf,
    pub cache: PathBuf,
    pub path: String,
}

impl Session {
    /// A session with `kubeconfig`, caching discovery under `scratch/<name>-cache`.
    pub fn new(scratch: &std::path::Path, name: &str, kubeconfig: PathBuf) -> Session {
        let plugin = PathBuf::from(env!("CARGO_BIN_EXE_kubectl-ws"));
        Session {
            kubeconfig,
            cache: scratch.join(format!("{name}-cache")),
            path: format!(
                "{}:{}",
                plugin.parent().unwrap().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        }
    }

    /// Runs kubectl: (success, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = tokio::process::Command::new(kubectl_binary())
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", &self.cache)
            .env("PATH", &self.path)
            .output()
            .await
            .expect("run kubectl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs kubectl and returns stdout; panics with the output if it failed.
    pub async fn ok(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args).await;
        assert!(ok, "kubectl {args:?} failed: {out}{err}");
        out
    }
}
