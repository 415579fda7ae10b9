//! Reading and rewriting kubeconfig files the way kcp's `kubectl ws` does: the current
//! context's cluster server URL carries the workspace path
//! (`https://host:6443/clusters/root:org`); switching workspaces writes a context
//! `workspace.kcp.io/current` (and remembers the last one as `workspace.kcp.io/previous`
//! for `kubectl ws -`), in the file that holds the current context, keeping everything
//! else in that file untouched.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use crate::WsError;

pub const CURRENT: &str = "workspace.kcp.io/current";
pub const PREVIOUS: &str = "workspace.kcp.io/previous";

/// One kubeconfig file, parsed.
pub struct KubeConfig {
    pub path: PathBuf,
    pub doc: Value,
}

/// Where a context points: server base URL, workspace path, credentials.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://host:port` (no `/clusters/...`).
    pub base: String,
    /// `root:org`.
    pub path: String,
    pub ca_pem: Option<Vec<u8>>,
    pub insecure: bool,
    pub token: Option<String>,
    pub user: String,
    pub cluster_entry: Value,
}

fn s<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(Value::as_str)
}

fn named<'a>(doc: &'a Value, list: &str, name: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_sequence()?
        .iter()
        .find(|e| s(e, "name") == Some(name))
}

/// The kubeconfig files in use: `--kubeconfig`, else `$KUBECONFIG` (a list), else
/// `~/.kube/config`.
pub fn files(explicit: Option<&Path>) -> Vec<PathBuf> {
    if let Some(p) = explicit {
        return vec![p.to_path_buf()];
    }
    if let Ok(list) = std::env::var("KUBECONFIG") {
        let v: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !v.is_empty() {
            return v;
        }
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    vec![PathBuf::from(home).join(".kube").join("config")]
}

fn load(path: &Path) -> Result<Value, WsError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| WsError::Config(format!("cannot read {}: {e}", path.display())))?;
    serde_yaml::from_str(&text)
        .map_err(|e| WsError::Config(format!("cannot parse {}: {e}", path.display())))
}

/// Loads the file that holds the current context (the first that names one).
pub fn load_current(explicit: Option<&Path>) -> Result<KubeConfig, WsError> {
    let files = files(explicit);
    let mut current = None;
    let mut docs = Vec::new();
    for f in &files {
        if !f.exists() {
            continue;
        }
        let d = load(f)?;
        if current.is_none() {
            current = s(&d, "current-context")
                .filter(|c| !c.is_empty())
                .map(str::to_string);
        }
        docs.push((f.clone(), d));
    }
    let current =
        current.ok_or_else(|| WsError::Config("no current context in the kubeconfig".into()))?;
    for (path, doc) in docs {
        if named(&doc, "contexts", &current).is_some() {
            return Ok(KubeConfig { path, doc });
        }
    }
    Err(WsError::Config(format!(
        "current context {current:?} is not defined in the kubeconfig"
    )))
}

impl KubeConfig {
    pub fn current_context(&self) -> Option<&str> {
        s(&self.doc, "current-context")
    }

    /// Where a context points.
    pub fn target(&self, context: &str) -> Result<Target, WsError> {
        let ctx = named(&self.doc, "contexts", context)
            .ok_or_else(|| WsError::Config(format!("context {context:?} not found")))?;
        let ctx = ctx.get("context").cloned().unwrap_or(Value::Null);
        let cluster_name = s(&ctx, "cluster").unwrap_or("");
        let user_name = s(&ctx, "user").unwrap_or("").to_string();
        let cluster = named(&self.doc, "clusters", cluster_name)
            .and_then(|c| c.get("cluster"))
            .cloned()
            .ok_or_else(|| {
                WsError::Config(format!(
                    "cluster {cluster_name:?} of context {context:?} not found"
                ))
            })?;
        let server = s(&cluster, "server")
            .unwrap_or("")
            .trim_end_matches('/')
            .to_string();
        let (base, path) = match server.find("/clusters/") {
            Some(i) => (
                server[..i].to_string(),
                server[i + "/clusters/".len()..].to_string(),
            ),
            None => {
                return Err(WsError::NotWorkspace(format!(
                    "current config context {context:?} is not pointing to a workspace: {server}"
                )))
            }
        };
        let ca_pem = match (
            s(&cluster, "certificate-authority-data"),
            s(&cluster, "certificate-authority"),
        ) {
            (Some(d), _) => Some(
                base64::Engine::decode(&base64::engine::general_purpose::STANDARD, d)
                    .map_err(|e| WsError::Config(format!("certificate-authority-data: {e}")))?,
            ),
            (None, Some(f)) => Some(
                std::fs::read(f).map_err(|e| WsError::Config(format!("cannot read {f}: {e}")))?,
            ),
            _ => None,
        };
        let user = named(&self.doc, "users", &user_name)
            .and_then(|u| u.get("user"))
            .cloned()
            .unwrap_or(Value::Null);
        let token = match (s(&user, "token"), s(&user, "tokenFile")) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .map_err(|e| WsError::Config(format!("cannot read {f}: {e}")))?
                    .trim()
                    .to_string(),
            ),
            _ => None,
        };
        Ok(Target {
            base,
            path,
            ca_pem,
            insecure: cluster
                .get("insecure-skip-tls-verify")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            token,
            user: user_name,
            cluster_entry: cluster,
        })
    }

    fn upsert(&mut self, list: &str, name: &str, key: &str, value: Value) {
        let doc = self.doc.as_mapping_mut().expect("kubeconfig is a mapping");
        let seq = doc
            .entry(Value::from(list))
            .or_insert_with(|| Value::Sequence(vec![]));
        if !seq.is_sequence() {
            *seq = Value::Sequence(vec![]);
        }
        let seq = seq.as_sequence_mut().expect("sequence");
        let mut entry = Mapping::new();
        entry.insert(Value::from("name"), Value::from(name));
        entry.insert(Value::from(key), value);
        match seq.iter_mut().find(|e| s(e, "name") == Some(name)) {
            Some(e) => *e = Value::Mapping(entry),
            None => seq.push(Value::Mapping(entry)),
        }
    }

    /// Points the current context at workspace `path` (as kcp's plugin does), remembering
    /// where it pointed before as `workspace.kcp.io/previous`.
    pub fn switch(&mut self, from: &Target, path: &str) -> Result<(), WsError> {
        let current = self.current_context().unwrap_or("").to_string();
        // remember where we are
        let mut prev_cluster = from.cluster_entry.clone();
        if let Some(m) = prev_cluster.as_mapping_mut() {
            m.insert(
                Value::from("server"),
                Value::from(format!("{}/clusters/{}", from.base, from.path)),
            );
        }
        if current != PREVIOUS {
            self.upsert("clusters", PREVIOUS, "cluster", prev_cluster);
            let mut ctx = Mapping::new();
            ctx.insert(Value::from("cluster"), Value::from(PREVIOUS));
            ctx.insert(Value::from("user"), Value::from(from.user.clone()));
            self.upsert("contexts", PREVIOUS, "context", Value::Mapping(ctx));
        }
        let mut cluster = from.cluster_entry.clone();
        if let Some(m) = cluster.as_mapping_mut() {
            m.insert(
                Value::from("server"),
                Value::from(format!("{}/clusters/{path}", from.base)),
            );
        }
        self.upsert("clusters", CURRENT, "cluster", cluster);
        let mut ctx = Mapping::new();
        ctx.insert(Value::from("cluster"), Value::from(CURRENT));
        ctx.insert(Value::from("user"), Value::from(from.user.clone()));
        self.upsert("contexts", CURRENT, "context", Value::Mapping(ctx));
        if let Some(m) = self.doc.as_mapping_mut() {
            m.insert(Value::from("current-context"), Value::from(CURRENT));
        }
        Ok(())
    }

    pub fn save(&self) -> Result<(), WsError> {
        let text = serde_yaml::to_string(&self.doc).map_err(|e| WsError::Config(e.to_string()))?;
        // a kubeconfig holds credentials: the replacement is 0600 from its creation on
        // (as kubectl writes them), then renamed over the old one
        let tmp = self.path.with_extension("ws-tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let _ = std::fs::remove_file(&tmp);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| WsError::Config(format!("cannot write {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| WsError::Config(format!("cannot write {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "apiVersion: v1
kind: Config
clusters:
- name: root
  cluster:
    certificate-authority-data: Zm9v
    server: https://127.0.0.1:6443/clusters/root
- name: unrelated
  cluster:
    server: https://example.com
contexts:
- name: root
  context:
    cluster: root
    user: admin
current-context: root
preferences: {}
users:
- name: admin
  user:
    token: abc
extensions-kept: true
";

    #[test]
    fn switch_keeps_unrelated_content_and_remembers_previous() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(&p, CFG).unwrap();
        let mut kc = load_current(Some(&p)).unwrap();
        let t = kc.target("root").unwrap();
        assert_eq!(
            (t.base.as_str(), t.path.as_str()),
            ("https://127.0.0.1:6443", "root")
        );
        assert_eq!(t.token.as_deref(), Some("abc"));
        assert_eq!(t.ca_pem.as_deref(), Some(&b"foo"[..]));
        kc.switch(&t, "root:org").unwrap();
        kc.save().unwrap();
        let kc = load_current(Some(&p)).unwrap();
        assert_eq!(kc.current_context(), Some(CURRENT));
        assert_eq!(kc.target(CURRENT).unwrap().path, "root:org");
        assert_eq!(kc.target(PREVIOUS).unwrap().path, "root");
        assert_eq!(kc.target(CURRENT).unwrap().token.as_deref(), Some("abc"));
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("extensions-kept: true") && text.contains("https://example.com"),
            "{text}"
        );
        assert!(kc.target("root").is_ok(), "the original context is kept");
        // it holds a token: never readable by others, whatever the umask
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn servers_without_a_workspace_path_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(
            &p,
            CFG.replace(
                "server: https://127.0.0.1:6443/clusters/root",
                "server: https://127.0.0.1:6443",
            ),
        )
        .unwrap();
        let kc = load_current(Some(&p)).unwrap();
        assert!(matches!(kc.target("root"), Err(WsError::NotWorkspace(_))));
    }
}
