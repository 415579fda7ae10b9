//! `canopy token …` and `canopy kubeconfig …`: clients of the token service
//! (`/services/tokens` on the server of the current kubeconfig context, see
//! `canopy_tokens`). They act as whoever that context's credentials name:
//! the admin for anyone, other users for themselves.

use std::path::Path;
use std::time::Duration;

use kubectl_ws::kubeconfig::{self, Target};
use kubectl_ws::Client;
use serde_json::{json, Value};

/// Where the token API lives on the server.
pub const TOKENS: &str = "/services/tokens/apis/tokens.canopy.dev/v1alpha1/tokens";

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Server(String),
    #[error("invalid --ttl {0:?}: use a duration such as 720h, 90m or 3600s")]
    Ttl(String),
}

impl From<kubectl_ws::WsError> for CliError {
    fn from(e: kubectl_ws::WsError) -> Self {
        CliError::Config(e.to_string())
    }
}

/// A duration as kubectl and Go print them: `720h`, `1h30m`, `90s`, `1.5h`.
pub fn parse_duration(s: &str) -> Result<Duration, CliError> {
    let bad = || CliError::Ttl(s.to_string());
    let mut total = 0f64;
    let mut rest = s.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..n_end].parse().map_err(|_| bad())?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..u_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "d" => 86400.0,
            _ => return Err(bad()),
        };
        total += n * unit;
        rest = &rest[u_end..];
    }
    if total < 1.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total as u64))
}

/// Where the current context points, and a client of that server with its credentials.
fn connect(kubeconfig: Option<&Path>) -> Result<(Target, Client), CliError> {
    let kc = kubeconfig::load_current(kubeconfig)?;
    let ctx = kc
        .current_context()
        .ok_or_else(|| CliError::Config("no current context in the kubeconfig".into()))?
        .to_string();
    let t = kc.target(&ctx)?;
    let client = Client::new(&t)?;
    Ok((t, client))
}

fn failure(code: u16, v: &Value) -> CliError {
    let msg = v
        .get("message")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| format!("the server answered {code}"));
    CliError::Server(format!("Error from server: {msg}"))
}

/// A token the server issued: its id and the token itself.
pub struct Issued {
    pub id: String,
    pub token: String,
    pub expires: String,
}

/// Asks the server of `kubeconfig`'s current context for a token.
pub async fn create_token(
    kubeconfig: Option<&Path>,
    user: &str,
    groups: &[String],
    ttl: Duration,
) -> Result<Issued, CliError> {
    let (_, client) = connect(kubeconfig)?;
    issue(&client, user, groups, ttl).await
}

async fn issue(
    client: &Client,
    user: &str,
    groups: &[String],
    ttl: Duration,
) -> Result<Issued, CliError> {
    let body = json!({
        "apiVersion": "tokens.canopy.dev/v1alpha1",
        "kind": "Token",
        "spec": {"user": user, "groups": groups, "expirationSeconds": ttl.as_secs()},
    });
    let (code, v) = client
        .send(reqwest::Method::POST, TOKENS, Some(&body))
        .await?;
    if code != 201 {
        return Err(failure(code, &v));
    }
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(Issued {
        id: s("/metadata/name"),
        token: s("/status/token"),
        expires: s("/status/expirationTimestamp"),
    })
}

/// The live tokens the caller may see, as a table.
pub async fn list_tokens(kubeconfig: Option<&Path>) -> Result<String, CliError> {
    let (_, client) = connect(kubeconfig)?;
    let (code, v) = client.send(reqwest::Method::GET, TOKENS, None).await?;
    if code != 200 {
        return Err(failure(code, &v));
    }
    let mut rows = vec![[
        "ID".to_string(),
        "USER".to_string(),
        "GROUPS".to_string(),
        "EXPIRES".to_string(),
    ]];
    for i in v
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let s = |p: &str| {
            i.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let groups: Vec<&str> = i
            .pointer("/spec/groups")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        rows.push([
            s("/metadata/name"),
            s("/spec/user"),
            if groups.is_empty() {
                "<none>".into()
            } else {
                groups.join(",")
            },
            s("/status/expirationTimestamp"),
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let line: Vec<String> = (0..4)
            .map(|c| format!("{:w$}", r[c], w = widths[c]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Revokes token `id`.
pub async fn revoke_token(kubeconfig: Option<&Path>, id: &str) -> Result<(), CliError> {
    let (_, client) = connect(kubeconfig)?;
    let (code, v) = client
        .send(reqwest::Method::DELETE, &format!("{TOKENS}/{id}"), None)
        .await?;
    match code {
        200 => Ok(()),
        _ => Err(failure(code, &v)),
    }
}

/// Rotates the signing key (admin only); returns the new key id.
pub async fn rotate_key(kubeconfig: Option<&Path>) -> Result<String, CliError> {
    let (_, client) = connect(kubeconfig)?;
    let (code, v) = client
        .send(reqwest::Method::POST, "/services/tokens/rotate", None)
        .await?;
    if code != 200 {
        return Err(failure(code, &v));
    }
    Ok(v.get("kid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string())
}

/// A kubeconfig for `user` in `workspace`, with a freshly issued token; the server and
/// its CA are those of the current context.
pub async fn user_kubeconfig(
    kubeconfig: Option<&Path>,
    user: &str,
    groups: &[String],
    workspace: &str,
    ttl: Duration,
) -> Result<String, CliError> {
    let (t, client) = connect(kubeconfig)?;
    let issued = issue(&client, user, groups, ttl).await?;
    let cluster = |server: String| {
        let mut c = serde_yaml::Mapping::new();
        if let Some(ca) = &t.ca_pem {
            c.insert(
                "certificate-authority-data".into(),
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ca).into(),
            );
        }
        if t.insecure {
            c.insert("insecure-skip-tls-verify".into(), true.into());
        }
        c.insert("server".into(), server.into());
        c
    };
    let mut root = serde_yaml::Mapping::new();
    root.insert("apiVersion".into(), "v1".into());
    root.insert("kind".into(), "Config".into());
    let entry = |name: &str, key: &str, v: serde_yaml::Value| {
        let mut m = serde_yaml::Mapping::new();
        m.insert("name".into(), name.into());
        m.insert(key.into(), v);
        serde_yaml::Value::Mapping(m)
    };
    let ctx = |cluster: &str| {
        let mut m = serde_yaml::Mapping::new();
        m.insert("cluster".into(), cluster.into());
        m.insert("user".into(), user.into());
        serde_yaml::Value::Mapping(m)
    };
    root.insert(
        "clusters".into(),
        serde_yaml::Value::Sequence(vec![
            entry(
                workspace,
                "cluster",
                cluster(format!("{}/clusters/{workspace}", t.base)).into(),
            ),
            entry("base", "cluster", cluster(t.base.clone()).into()),
        ]),
    );
    root.insert(
        "contexts".into(),
        serde_yaml::Value::Sequence(vec![
            entry(workspace, "context", ctx(workspace)),
            entry("base", "context", ctx("base")),
        ]),
    );
    root.insert("current-context".into(), workspace.into());
    let mut u = serde_yaml::Mapping::new();
    u.insert("token".into(), issued.token.into());
    root.insert(
        "users".into(),
        serde_yaml::Value::Sequence(vec![entry(user, "user", serde_yaml::Value::Mapping(u))]),
    );
    serde_yaml::to_string(&serde_yaml::Value::Mapping(root))
        .map_err(|e| CliError::Config(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("720h").unwrap(),
            Duration::from_secs(720 * 3600)
        );
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172800));
        for bad in ["", "h", "10", "10x", "0s", "-1h", "1h-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
