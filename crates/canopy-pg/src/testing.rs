//! Test support: one private cluster per test binary, a fresh database per test.
//!
//! With `CANOPY_TEST_DATABASE_URL` set (a URL of a server's maintenance database, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), databases are created on that server
//! instead.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::OnceCell;

use crate::{PgCluster, PgError, PgOptions};

/// A database for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: String,
    pub name: String,
}

static CLUSTER: OnceCell<Result<(PgCluster, String), String>> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The admin URL of the server tests use, starting the private cluster on first use.
async fn admin_url() -> Result<String, PgError> {
    if let Ok(url) = std::env::var("CANOPY_TEST_DATABASE_URL") {
        return Ok(url);
    }
    let started = CLUSTER
        .get_or_init(|| async {
            remove_stale_dirs();
            let dir = std::env::temp_dir().join(format!("canopy-test-pg-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            // The cluster outlives any one test's runtime; it is stopped by the death
            // signal when the test binary exits. Its password is kept in the same
            // directory (0600), removed with it.
            let mut o = PgOptions::new(dir.join("data"));
            o.password_file = Some(dir.join("password"));
            let c = PgCluster::start(o).await.map_err(|e| e.to_string())?;
            let url = c.url("postgres");
            Ok((c, url))
        })
        .await;
    match started {
        Ok((_, url)) => Ok(url.clone()),
        Err(e) => Err(PgError::Start(e.clone())),
    }
}

/// Data directories of test binaries that have exited.
fn remove_stale_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("canopy-test-pg-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !crate::pid_alive(pid) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// A freshly created, uniquely named database.
pub async fn test_database() -> Result<TestDatabase, PgError> {
    let admin = admin_url().await?;
    let name = format!(
        "test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    );
    crate::create_database(&admin, &name).await?;
    let url = replace_database(&admin, &name);
    Ok(TestDatabase { url, name })
}

/// `admin` with its database path replaced by `name` (query string kept).
fn replace_database(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin, None),
    };
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::replace_database;

    #[test]
    fn database_urls() {
        assert_eq!(
            replace_database("postgres://u@h:1/postgres", "x"),
            "postgres://u@h:1/x"
        );
        assert_eq!(
            replace_database("postgres://u@localhost:5432/postgres?host=/tmp/s", "x"),
            "postgres://u@localhost:5432/x?host=/tmp/s"
        );
        assert_eq!(replace_database("postgres://u@h", "x"), "postgres://u@h/x");
    }
}
