//! `front-proxy`: one address for clients in front of many shards.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use front_proxy::{CertAndKey, FrontProxy, FrontProxyOptions, ShardTarget};

#[derive(Parser, Debug)]
#[command(
    name = "front-proxy",
    version,
    about = "Canopy's front-proxy: authenticates clients and routes /clusters/<path> to the shard holding that workspace"
)]
struct Args {
    /// A shard behind the proxy, as NAME=https://host:port (repeat for each shard).
    #[arg(long = "shard", value_name = "NAME=URL", required = true)]
    shards: Vec<String>,
    /// CA certificate(s) (PEM) that sign the shards' serving certificates (repeatable).
    #[arg(long = "shard-ca-file", value_name = "FILE", required = true)]
    shard_ca_files: Vec<PathBuf>,
    /// Public key(s) (PEM) of the token issuer, used until the current keys and
    /// revocations arrive from the shard named `root` (followed from then on, so key
    /// rotations and revocations need no restart). Repeatable; a shard writes its key
    /// as <root>/pki/token-signing.pub.
    #[arg(
        long = "token-public-key-file",
        value_name = "FILE",
        required_unless_present = "token_jwks_file"
    )]
    token_public_key_files: Vec<PathBuf>,
    /// The token issuer's keys as a JWKS document, instead of or besides PEM keys.
    #[arg(long, value_name = "FILE")]
    token_jwks_file: Option<PathBuf>,
    /// Client certificate (PEM) the proxy presents to shards; its CA is what shards
    /// get as --proxy-client-ca-file. Default: issued from a CA generated in
    /// <root-directory>/pki/proxy-client-ca.crt.
    #[arg(long, value_name = "FILE", requires = "proxy_client_key_file")]
    proxy_client_cert_file: Option<PathBuf>,
    /// Key of --proxy-client-cert-file.
    #[arg(long, value_name = "FILE", requires = "proxy_client_cert_file")]
    proxy_client_key_file: Option<PathBuf>,
    /// Serving certificate (PEM) for clients. Default: generated in
    /// <root-directory>/pki (CA in ca.crt).
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Key of --tls-cert-file.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
    /// Directory for generated certificates.
    #[arg(long, default_value = ".canopy-front-proxy")]
    root_directory: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// HTTPS port.
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Host name clients use to reach the proxy (for the generated certificate).
    #[arg(long)]
    external_hostname: Option<String>,
    /// Redis shared by proxy replicas: rate-limit buckets and the revocations each
    /// replica gets from the root shard (signed by it; keys never come from Redis).
    /// redis://[user][:password@]host:port/[db], or rediss://... for TLS. Prefer the
    /// environment variable (a password in the command line shows in `ps`); the
    /// password is never printed.
    #[arg(
        long = "redis-url",
        alias = "rate-limit-redis-url",
        value_name = "URL",
        env = "CANOPY_REDIS_URL",
        hide_env_values = true
    )]
    rate_limit_redis_url: Option<String>,
    /// CA certificate(s) (PEM) of the Redis server's TLS certificate (rediss:// URLs);
    /// default: the system's roots.
    #[arg(long, value_name = "FILE", requires = "rate_limit_redis_url")]
    redis_ca_file: Option<PathBuf>,
    /// Connect timeout (TCP and TLS) towards shards, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    shard_connect_timeout_ms: u64,
    /// How long an unreachable shard is answered for with 503 before it is tried again,
    /// in milliseconds.
    #[arg(long, default_value_t = 1000)]
    shard_down_ms: u64,
    #[command(flatten)]
    limits: canopy_edge::flags::LimitFlags,
}

fn read(p: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))
}

fn pair(cert: &Option<PathBuf>, key: &Option<PathBuf>) -> anyhow::Result<Option<CertAndKey>> {
    Ok(match (cert, key) {
        (Some(c), Some(k)) => Some(CertAndKey {
            cert_pem: read(c)?,
            key_pem: read(k)?,
        }),
        _ => None,
    })
}

fn options(a: Args) -> anyhow::Result<FrontProxyOptions> {
    let mut shards = Vec::new();
    for s in &a.shards {
        let Some((name, url)) = s.split_once('=') else {
            bail!("--shard {s:?}: expected NAME=https://host:port");
        };
        shards.push(ShardTarget {
            name: name.to_string(),
            url: url.trim_end_matches('/').to_string(),
        });
    }
    let mut shard_ca_pem = String::new();
    for f in &a.shard_ca_files {
        shard_ca_pem.push_str(&read(f)?);
        shard_ca_pem.push('\n');
    }
    let mut verifier = canopy_auth::TokenVerifier::default();
    for f in &a.token_public_key_files {
        verifier
            .add_public_key_pem(&read(f)?)
            .with_context(|| format!("--token-public-key-file {}", f.display()))?;
    }
    if let Some(f) = &a.token_jwks_file {
        let jwks: serde_json::Value = serde_json::from_str(&read(f)?)
            .with_context(|| format!("--token-jwks-file {}", f.display()))?;
        let from_jwks = canopy_auth::TokenVerifier::from_jwks(&jwks)
            .with_context(|| format!("--token-jwks-file {}", f.display()))?;
        verifier.extend(from_jwks);
    }
    let mut o = FrontProxyOptions::new(a.root_directory, shards, shard_ca_pem, verifier);
    o.bind_address = a.bind_address;
    o.secure_port = a.secure_port;
    o.external_hostname = a.external_hostname;
    o.serving_cert = pair(&a.tls_cert_file, &a.tls_private_key_file)?;
    o.client_cert = pair(&a.proxy_client_cert_file, &a.proxy_client_key_file)?;
    // each proxied watch holds a connection to a shard too: the default caps take half
    // of the open-files limit each
    o.limits = canopy_edge::ServerLimits {
        connections: a.limits.connection_limits(2)?,
        requests: a.limits.request_limits(2)?,
    };
    o.redis_url = a.rate_limit_redis_url;
    o.redis_ca_pem = match &a.redis_ca_file {
        Some(f) => Some(read(f)?),
        None => None,
    };
    o.connect_timeout = Duration::from_millis(a.shard_connect_timeout_ms.max(1));
    o.shard_down_for = Duration::from_millis(a.shard_down_ms);
    Ok(o)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    canopy_https::init_logging();
    canopy_https::raise_fd_limit_logged();
    let opts = options(Args::parse())?;
    tracing::info!(
        max_connections = opts.limits.connections.max_connections,
        max_watches = opts.limits.requests.max_watches,
        "connection and request limits"
    );
    let pki = opts.root_directory.join("pki");
    let proxy = FrontProxy::start(opts).await?;
    if proxy.client_ca_pem.is_some() {
        tracing::info!(
            "shards must be started with --proxy-client-ca-file {}",
            pki.join("proxy-client-ca.crt").display()
        );
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    proxy.stop().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> anyhow::Result<FrontProxyOptions> {
        let dir = std::env::temp_dir();
        let key = dir.join(format!("fp-test-{}.pub", std::process::id()));
        let issuer_dir = dir.join(format!("fp-test-issuer-{}", std::process::id()));
        let issuer = canopy_auth::TokenIssuer::load_or_create(&issuer_dir).unwrap();
        std::fs::write(&key, issuer.public_key_pem()).unwrap();
        let ca = issuer_dir.join("token-signing.pub"); // any readable PEM file will do here
        let mut args = vec![
            "front-proxy".to_string(),
            "--shard-ca-file".into(),
            ca.display().to_string(),
            "--token-public-key-file".into(),
            key.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        options(Args::try_parse_from(args)?)
    }

    #[test]
    fn flags() {
        let o = parse(&[
            "--shard",
            "a=https://127.0.0.1:6443/",
            "--shard",
            "b=https://127.0.0.1:6444",
            "--rate-limit-qps",
            "5",
            "--rate-limit-burst",
            "10",
            "--shard-connect-timeout-ms",
            "250",
        ])
        .unwrap();
        assert_eq!(o.shards.len(), 2);
        assert_eq!(o.shards[0].url, "https://127.0.0.1:6443");
        assert_eq!(o.limits.requests.rate_limit_qps, 5.0);
        assert_eq!(o.limits.requests.rate_limit_burst, 10);
        assert_eq!(o.connect_timeout, Duration::from_millis(250));
        assert_eq!(o.token_verifier.key_ids().len(), 1);
        assert!(parse(&["--shard", "no-equals-sign"]).is_err());
        assert!(parse(&["--shard", "a=https://x:1", "--rate-limit-qps=-1"]).is_err());
        // the limits are on by default
        let d = parse(&["--shard", "a=https://x:1"]).unwrap();
        assert_eq!(d.limits.requests.rate_limit_qps, 50.0);
        assert_eq!(d.limits.requests.max_watches_per_user, 100);
        assert_eq!(d.limits.connections.max_connections_per_ip, 1000);
        assert!(parse(&[]).is_err(), "--shard is required");
    }
}
