//! Connecting to Redis, shared by the rate limiter ([`crate::ratelimit`]) and the token
//! states replicas relay ([`crate::tokens`]).
//!
//! - **URLs**: `redis://[user][:password@]host[:port][/db]`; the password (Redis
//!   `AUTH`, or an ACL user's with `user:password`) is sent when connecting.
//!   `rediss://…` speaks TLS (rustls): the server's certificate is checked against the
//!   CA given with `--redis-ca-file`, else against the system's roots.
//! - **Secrets stay secret**: the URL is printed only through [`redact`] (password
//!   replaced by `***`), in logs and in errors alike, and error texts from the Redis
//!   client are scrubbed of the password too ([`scrub`]). `FrontProxyOptions`'s `Debug`
//!   does the same, and the binary takes the URL from `CANOPY_REDIS_URL` as well (so it
//!   need not appear in `ps`), never echoing its value in `--help`.

use std::time::Duration;

/// How to reach Redis.
#[derive(Clone, Default)]
pub struct RedisSettings {
    /// `redis://…` or `rediss://…`.
    pub url: String,
    /// CA certificate(s) (PEM) the server's certificate must chain to (`rediss://`);
    /// `None`: the system's roots.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &redact(&self.url))
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| ".."))
            .finish()
    }
}

/// `url` with its password (user info or a `pass=` query parameter) replaced by `***`.
pub fn redact(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map(|i| rest_start + i)
            .unwrap_or(out.len());
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let at = rest_start + at;
            if let Some(colon) = out[rest_start..at].find(':') {
                let colon = rest_start + colon;
                out.replace_range(colon + 1..at, "***");
            }
        }
    }
    if let Some(q) = out.find('?') {
        let (base, query) = out.split_at(q + 1);
        let query: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("pass" | "password", _)) => {
                    format!("{}=***", kv.split('=').next().unwrap_or(""))
                }
                _ => kv.to_string(),
            })
            .collect();
        out = format!("{base}{}", query.join("&"));
    }
    out
}

/// The password in `url`, if any (as written and percent-decoded).
fn passwords(url: &str) -> Vec<String> {
    let Ok(info) = redis::IntoConnectionInfo::into_connection_info(url) else {
        // not parseable: fall back to the raw user info
        let mut found = Vec::new();
        if let Some(s) = url.find("://") {
            let rest = &url[s + 3..];
            let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
            if let Some((userinfo, _)) = auth.rsplit_once('@') {
                if let Some((_, pw)) = userinfo.split_once(':') {
                    found.push(pw.to_string());
                }
            }
        }
        return found;
    };
    let mut found = Vec::new();
    if let Some(pw) = info.redis_settings().password() {
        found.push(pw.to_string());
    }
    // the raw (percent-encoded) form as well
    if let Some(s) = url.find("://") {
        let rest = &url[s + 3..];
        let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = auth.rsplit_once('@') {
            if let Some((_, pw)) = userinfo.split_once(':') {
                found.push(pw.to_string());
            }
        }
    }
    found.retain(|p| !p.is_empty());
    found
}

/// `text` (an error message) with `url` redacted and its password removed wherever it
/// appears.
pub fn scrub(text: &str, url: &str) -> String {
    let mut out = text.replace(url, &redact(url));
    for pw in passwords(url) {
        out = out.replace(&pw, "***");
    }
    out
}

/// A Redis client for `settings` (not connected yet).
pub fn client(settings: &RedisSettings) -> Result<redis::Client, String> {
    let url = &settings.url;
    let fail =
        |e: &dyn std::fmt::Display| format!("{}: {}", redact(url), scrub(&e.to_string(), url));
    let tls = url.starts_with("rediss://") || url.starts_with("valkeys://");
    if !tls && settings.ca_pem.is_some() {
        return Err(format!(
            "{}: a CA file is given, but the URL does not use TLS (rediss://)",
            redact(url)
        ));
    }
    match (&settings.ca_pem, tls) {
        (Some(ca), true) => redis::Client::build_with_tls(
            url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.as_bytes().to_vec()),
            },
        )
        .map_err(|e| fail(&e)),
        _ => redis::Client::open(url.as_str()).map_err(|e| fail(&e)),
    }
}

/// A managed connection (reconnects by itself) to `settings`, made now: a wrong
/// password, an untrusted certificate or an unreachable server fail here, with the URL
/// redacted.
pub async fn connect(
    settings: &RedisSettings,
    response_timeout: Duration,
) -> Result<(redis::Client, redis::aio::ConnectionManager), String> {
    let c = client(settings)?;
    let cfg = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(1)))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(1);
    let fail = |e: redis::RedisError| {
        let hint = match e.kind() {
            redis::ErrorKind::AuthenticationFailed => {
                " (Redis refused the password: give the right one in the URL, redis://:PASSWORD@host:port/)"
            }
            _ if e.code() == Some("NOAUTH") => {
                " (Redis wants a password: put it in the URL, redis://:PASSWORD@host:port/)"
            }
            _ => "",
        };
        format!(
            "{}: {}{hint}",
            redact(&settings.url),
            scrub(&e.to_string(), &settings.url)
        )
    };
    let mut conn = redis::aio::ConnectionManager::new_with_config(c.clone(), cfg)
        .await
        .map_err(fail)?;
    // a wrong or missing password shows here, at start, rather than on every request
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(fail)?;
    Ok((c, conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("redis://:s3cret@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("rediss://alice:p%40ss@redis.example:6380/"),
            "rediss://alice:***@redis.example:6380/"
        );
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        assert_eq!(redact("redis://alice@h/"), "redis://alice@h/");
        assert_eq!(
            redact("redis+unix:///run/redis.sock?db=1&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=1&pass=***"
        );
        let url = "redis://:p%40ss@h:1/";
        assert_eq!(
            scrub(&format!("failed on {url}: p@ss and p%40ss"), url),
            "failed on redis://:***@h:1/: *** and ***"
        );
        let s = RedisSettings {
            url: "redis://:s3cret@h/".into(),
            ca_pem: None,
        };
        assert!(!format!("{s:?}").contains("s3cret"));
        let e = client(&RedisSettings {
            url: "redis://:s3cret@h/".into(),
            ca_pem: Some("x".into()),
        })
        .unwrap_err();
        assert!(!e.contains("s3cret") && e.contains("rediss://"), "{e}");
        let e = client(&RedisSettings {
            url: "nonsense://:s3cret@h/".into(),
            ca_pem: None,
        })
        .unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
