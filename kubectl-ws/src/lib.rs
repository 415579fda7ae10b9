//! `kubectl ws`: create, enter and leave workspaces of a Canopy (or kcp) server.
//!
//! The commands and their output follow kcp's plugin as the kcp-101 article shows it:
//! `Current workspace is "root".`, `Workspace "blog-example" (type root:organization)
//! created.`, `Current workspace is "root:blog-example" (type "root:organization").`
//! Errors are one line.

pub mod kubeconfig;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use canopy_tenancy_api::{self as tapi, Phase, Workspace, WorkspacePath, WorkspaceTypeReference};
use serde_json::Value;

use kubeconfig::{Target, PREVIOUS};

#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    NotWorkspace(String),
    #[error("{0}")]
    Server(String),
    #[error("workspace {0:?} not found")]
    NotFound(String),
    #[error("access to workspace {0:?} denied")]
    Forbidden(String),
    #[error("{0}")]
    Usage(String),
}

/// What to do.
#[derive(Debug, Clone)]
pub enum Command {
    Current,
    Use(String),
    Create {
        name: String,
        ty: Option<String>,
        enter: bool,
        ignore_existing: bool,
    },
    Tree,
}

/// An HTTPS client of the server a kubeconfig context points at (its CA, its token).
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    pub fn new(t: &Target) -> Result<Client, WsError> {
        use tokio_rustls::rustls;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| WsError::Config(e.to_string()))?;
        let mut roots = rustls::RootCertStore::empty();
        if let Some(pem) = &t.ca_pem {
            for c in rustls_pemfile::certs(&mut pem.as_slice()) {
                let c = c.map_err(|e| WsError::Config(format!("certificate authority: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| WsError::Config(format!("certificate authority: {e}")))?;
            }
        }
        let cfg = builder.with_root_certificates(roots).with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(cfg)
            .danger_accept_invalid_certs(t.insecure)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| WsError::Config(e.to_string()))?;
        Ok(Client {
            http,
            base: t.base.clone(),
            token: t.token.clone(),
        })
    }

    /// Sends a request to `path` (below the server's base URL); returns the status
    /// code and the JSON body (`null` when it is not JSON).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), WsError> {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().await.map_err(|e| {
            WsError::Server(format!("cannot reach {}: {}", self.base, root_cause(&e)))
        })?;
        let code = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| WsError::Server(e.to_string()))?;
        Ok((code, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    async fn get_workspace(&self, parent: &str, name: &str) -> Result<Workspace, WsError> {
        let (code, v) = self
            .send(
                reqwest::Method::GET,
                &format!("/clusters/{parent}/apis/tenancy.kcp.io/v1alpha1/workspaces/{name}"),
                None,
            )
            .await?;
        match code {
            200 => decode(&v),
            404 => Err(WsError::NotFound(format!("{parent}:{name}"))),
            401 => Err(WsError::Server(
                "Unauthorized: the kubeconfig's credentials were refused".into(),
            )),
            403 => Err(WsError::Forbidden(format!("{parent}:{name}"))),
            _ => Err(server_error(&v, code)),
        }
    }

    async fn list_workspaces(&self, path: &str) -> Result<Vec<Workspace>, WsError> {
        let (code, v) = self
            .send(
                reqwest::Method::GET,
                &format!("/clusters/{path}/apis/tenancy.kcp.io/v1alpha1/workspaces"),
                None,
            )
            .await?;
        match code {
            200 => Ok(decode::<WorkspaceList>(&v)?.items),
            404 => Err(WsError::NotWorkspace(format!(
                "the server at {} does not serve workspaces (not a kcp/Canopy server?)",
                self.base
            ))),
            403 => Err(WsError::Forbidden(path.to_string())),
            _ => Err(server_error(&v, code)),
        }
    }

    /// Checks that `path` can be entered.
    async fn check_access(&self, path: &str) -> Result<(), WsError> {
        let (code, v) = self
            .send(
                reqwest::Method::GET,
                &format!("/clusters/{path}/version"),
                None,
            )
            .await?;
        match code {
            200 => Ok(()),
            403 => Err(WsError::Forbidden(path.to_string())),
            404 => Err(WsError::NotFound(path.to_string())),
            _ => Err(server_error(&v, code)),
        }
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(s) = cur.source() {
        cur = s;
    }
    cur.to_string()
}

fn server_error(v: &Value, code: u16) -> WsError {
    WsError::Server(
        v.get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("the server answered {code}")),
    )
}

/// A server's answer read as `T`.
fn decode<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, WsError> {
    tapi::from_value(v).map_err(|e| WsError::Server(format!("unexpected answer: {e}")))
}

/// A list of Workspaces (`items` missing or `null`: none).
#[derive(serde::Deserialize)]
struct WorkspaceList {
    #[serde(default, deserialize_with = "null_as_empty")]
    items: Vec<Workspace>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Workspace>, D::Error> {
    use serde::Deserialize;
    Ok(Option::<Vec<Workspace>>::deserialize(d)?.unwrap_or_default())
}

/// A workspace path given on the command line or found in the kubeconfig.
fn path(s: &str) -> Result<WorkspacePath, WsError> {
    WorkspacePath::new(s).map_err(|e| WsError::Usage(e.to_string()))
}

/// The child `name` of `parent`.
fn join(parent: &str, name: &str) -> Result<WorkspacePath, WsError> {
    path(parent)?
        .join(name)
        .map_err(|e| WsError::Usage(e.to_string()))
}

/// `path:name` of a workspace's type (`root` when the path is unset).
fn type_of(ws: &Workspace) -> String {
    let t = ws.spec.type_.clone().unwrap_or_default();
    let path = if t.path.is_empty() { "root" } else { &t.path };
    format!("{path}:{}", t.name)
}

/// The type of the workspace at `path` (none for `root`).
async fn workspace_type(c: &Client, p: &str) -> Result<Option<String>, WsError> {
    match path(p)?.split() {
        Some((parent, name)) => Ok(Some(type_of(
            &c.get_workspace(parent.as_str(), name).await?,
        ))),
        None => Ok(None),
    }
}

fn current_line(path: &str, ty: Option<&str>) -> String {
    match ty {
        Some(t) => format!("Current workspace is {path:?} (type {t:?})."),
        None => format!("Current workspace is {path:?}."),
    }
}

/// Runs a command; returns what to print on stdout.
pub async fn run(cmd: Command, kubeconfig: Option<PathBuf>) -> Result<String, WsError> {
    let mut kc = kubeconfig::load_current(kubeconfig.as_deref())?;
    let ctx = kc.current_context().unwrap_or("").to_string();
    let t = kc.target(&ctx)?;
    let c = Client::new(&t)?;
    match cmd {
        Command::Current => {
            let ty = workspace_type(&c, &t.path).await.ok().flatten();
            Ok(current_line(&t.path, ty.as_deref()))
        }
        Command::Use(target) => {
            let path = match target.as_str() {
                "-" => {
                    let prev = kc
                        .target(PREVIOUS)
                        .map_err(|_| WsError::Usage("no previous workspace".into()))?;
                    prev.path
                }
                ".." => match path(&t.path)?.parent() {
                    Some(p) => p.to_string(),
                    None => {
                        return Err(WsError::Usage(format!(
                            "workspace {:?} has no parent",
                            t.path
                        )))
                    }
                },
                "~" => {
                    let (code, v) = c
                        .send(
                            reqwest::Method::GET,
                            "/clusters/root/apis/tenancy.kcp.io/v1alpha1/workspaces/~",
                            None,
                        )
                        .await?;
                    if code != 200 {
                        return Err(server_error(&v, code));
                    }
                    let home: Workspace = decode(&v)?;
                    let url = home.spec.url.unwrap_or_default();
                    url.split("/clusters/").nth(1).unwrap_or("").to_string()
                }
                t2 if t2.starts_with(':') => t2.trim_start_matches(':').to_string(),
                t2 if t2 == "root" || t2.starts_with("root:") => t2.to_string(),
                name => join(&t.path, name)?.to_string(),
            };
            let ty = match self::path(&path)?.split() {
                Some((parent, name)) => {
                    Some(type_of(&c.get_workspace(parent.as_str(), name).await?))
                }
                None => {
                    c.check_access(&path).await?;
                    None
                }
            };
            kc.switch(&t, &path)?;
            kc.save()?;
            Ok(current_line(&path, ty.as_deref()))
        }
        Command::Create {
            name,
            ty,
            enter,
            ignore_existing,
        } => {
            let body = tapi::to_value(&Workspace::new(
                &name,
                ty.as_deref().map(WorkspaceTypeReference::parse_qualified),
            ));
            let (code, v) = c
                .send(
                    reqwest::Method::POST,
                    &format!(
                        "/clusters/{}/apis/tenancy.kcp.io/v1alpha1/workspaces",
                        t.path
                    ),
                    Some(&body),
                )
                .await?;
            let mut out = String::new();
            match code {
                201 => {}
                409 if ignore_existing => {
                    let existing = c.get_workspace(&t.path, &name).await?;
                    if let Some(ty) = &ty {
                        let want = WorkspaceTypeReference::parse_qualified(ty).qualified();
                        if type_of(&existing) != want {
                            return Err(WsError::Usage(format!(
                                "workspace {name:?} cannot be created with type {want}, it already exists with different type {}",
                                type_of(&existing)
                            )));
                        }
                    }
                }
                403 => {
                    return Err(WsError::Server(
                        v.get("message")
                            .and_then(Value::as_str)
                            .unwrap_or("forbidden")
                            .to_string(),
                    ))
                }
                _ => return Err(server_error(&v, code)),
            }
            // wait until it is ready
            let mut ws = Workspace::default();
            for _ in 0..600 {
                ws = c.get_workspace(&t.path, &name).await?;
                if ws.is_phase(Phase::Ready) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if !ws.is_phase(Phase::Ready) {
                return Err(WsError::Server(format!(
                    "workspace {name:?} did not become ready"
                )));
            }
            if code == 201 {
                out.push_str(&format!(
                    "Workspace {name:?} (type {}) created.",
                    type_of(&ws)
                ));
            } else {
                out.push_str(&format!(
                    "Workspace {name:?} (type {}) already exists.",
                    type_of(&ws)
                ));
            }
            if enter {
                let path = join(&t.path, &name)?.to_string();
                kc.switch(&t, &path)?;
                kc.save()?;
                out.push('\n');
                out.push_str(&current_line(&path, Some(&type_of(&ws))));
            }
            Ok(out)
        }
        Command::Tree => {
            let mut lines = vec![".".to_string(), format!("└── {}", t.path)];
            tree(&c, &t.path, "    ", &mut lines).await?;
            Ok(lines.join("\n"))
        }
    }
}

async fn tree(c: &Client, path: &str, indent: &str, out: &mut Vec<String>) -> Result<(), WsError> {
    let mut children = match c.list_workspaces(path).await {
        Ok(v) => v,
        Err(WsError::Forbidden(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    children.sort_by(|a, b| a.name().cmp(b.name()));
    let n = children.len();
    for (i, ch) in children.iter().enumerate() {
        let name = ch.name();
        let last = i + 1 == n;
        out.push(format!("{indent}{}── {name}", if last { "└" } else { "├" }));
        if ch.is_phase(Phase::Ready) {
            let next = format!("{indent}{}   ", if last { " " } else { "│" });
            Box::pin(tree(c, join(path, name)?.as_str(), &next, out)).await?;
        }
    }
    Ok(())
}
