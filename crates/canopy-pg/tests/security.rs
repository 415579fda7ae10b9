//! The private PostgreSQL cluster is not open to other users of the host: its socket is
//! in a directory only its owner can enter (never a world-writable place such as
//! `/tmp`), every connection needs the password (kept 0600, never on a command line or
//! in the log), and clusters made by older versions (`initdb -A trust`) are switched to
//! passwords on start.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use canopy_pg::{PgCluster, PgOptions};
use sqlx::Connection;

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

/// The uid PostgreSQL runs as: `postgres` when we are root, else ourselves.
fn server_uid() -> u32 {
    // SAFETY: plain libc lookups; the passwd entry is copied out at once.
    unsafe {
        if libc::geteuid() != 0 {
            return libc::geteuid();
        }
        let name = std::ffi::CString::new("postgres").unwrap();
        let pw = libc::getpwnam(name.as_ptr());
        assert!(!pw.is_null(), "running as root needs a postgres user");
        (*pw).pw_uid
    }
}

fn server_gid() -> u32 {
    // SAFETY: as above.
    unsafe {
        if libc::geteuid() != 0 {
            return libc::getegid();
        }
        let name = std::ffi::CString::new("postgres").unwrap();
        (*libc::getpwnam(name.as_ptr())).pw_gid
    }
}

/// `url` without its password.
fn without_password(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, host) = rest.split_once('@').unwrap();
    let user = userinfo.split(':').next().unwrap();
    format!("{scheme}://{user}@{host}")
}

/// The password in `url`.
fn password_of(url: &str) -> String {
    let rest = url.split_once("://").unwrap().1;
    let userinfo = rest.split_once('@').unwrap().0;
    userinfo.split_once(':').unwrap().1.to_string()
}

async fn can_connect(url: &str) -> Result<(), String> {
    match sqlx::PgConnection::connect(url).await {
        Ok(c) => {
            let _ = c.close().await;
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Connecting without the password is refused, with it works.
async fn password_required(pg: &PgCluster) {
    let url = pg.url("postgres");
    let e = can_connect(&without_password(&url))
        .await
        .expect_err("a connection without the password must be refused");
    assert!(e.contains("password"), "{e}");
    let wrong = url.replace(&password_of(&url), "not-the-password");
    let e = can_connect(&wrong)
        .await
        .expect_err("a wrong password must be refused");
    assert!(e.contains("password authentication failed"), "{e}");
    can_connect(&url).await.expect("the password lets in");
}

/// No process on the host shows the password on its command line.
fn not_in_any_command_line(password: &str) {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&cmd).contains(password),
                "the password is on the command line of process {:?}",
                e.file_name()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_root_directory_keeps_the_socket_private_and_needs_a_password() {
    let tmp = tempfile::tempdir().unwrap();
    let long: PathBuf = tmp
        .path()
        .join("a-rather-long-root-directory-name-for-canopy")
        .join("that-goes-on-and-on-beyond-the-socket-path-limit-of-unix")
        .join("postgres");
    assert!(long.join("run").as_os_str().len() > 100, "a long path");
    let pg = PgCluster::start(PgOptions::new(long.clone()))
        .await
        .expect("start");

    match pg.socket_dir() {
        Some(dir) => {
            // 0700, owned by the user running PostgreSQL, and no directory above it
            // lets others create or replace entries (as /tmp would)
            assert_eq!(mode(dir), 0o700, "{}", dir.display());
            assert_eq!(std::fs::metadata(dir).unwrap().uid(), server_uid());
            assert!(!dir.starts_with(std::env::temp_dir()), "{}", dir.display());
            let mut cur = dir.parent();
            while let Some(d) = cur {
                assert_eq!(
                    mode(d) & 0o002,
                    0,
                    "{} above the socket is world-writable",
                    d.display()
                );
                cur = d.parent();
            }
            let sock = dir.join(format!(".s.PGSQL.{}", pg.port()));
            assert_eq!(mode(&sock) & 0o777, 0o700, "the socket itself");
        }
        None => {
            // TCP, on loopback only
            let mut c = sqlx::PgConnection::connect(&pg.url("postgres"))
                .await
                .unwrap();
            let listen: String = sqlx::query_scalar("SHOW listen_addresses")
                .fetch_one(&mut c)
                .await
                .unwrap();
            assert_eq!(listen, "127.0.0.1");
        }
    }

    password_required(&pg).await;
    let pw_file = pg.password_file().to_path_buf();
    assert_eq!(pw_file, long.with_file_name("postgres.password"));
    assert_eq!(mode(&pw_file), 0o600);
    let password = password_of(&pg.url("postgres"));
    assert_eq!(std::fs::read_to_string(&pw_file).unwrap().trim(), password);
    not_in_any_command_line(&password);
    let log = std::fs::read_to_string(pg.data_dir().join("postgres.log")).unwrap();
    assert!(!log.contains(&password), "the password is in the log");
    // the cluster does not trust anyone
    let hba = std::fs::read_to_string(pg.data_dir().join("pg_hba.conf")).unwrap();
    assert!(
        !hba.lines()
            .any(|l| !l.starts_with('#') && l.contains("trust")),
        "{hba}"
    );
    pg.stop().await.unwrap();

    // a restart keeps the password
    let pg = PgCluster::start(PgOptions::new(long))
        .await
        .expect("restart");
    assert_eq!(password_of(&pg.url("postgres")), password);
    password_required(&pg).await;
    pg.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_of_an_older_version_is_switched_from_trust_to_passwords() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("postgres");
    // what older versions made: initdb -A trust, no password, run as postgres when root
    {
        use std::os::unix::fs::PermissionsExt;
        use std::os::unix::process::CommandExt;
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::chown(&data, Some(server_uid()), Some(server_gid())).unwrap();
        let bin = canopy_pg::find_bin_dir().unwrap();
        let mut cmd = std::process::Command::new(bin.join("initdb"));
        cmd.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ]);
        // SAFETY: getuid has no preconditions
        if unsafe { libc::geteuid() } == 0 {
            cmd.uid(server_uid()).gid(server_gid());
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
        assert!(hba.contains("trust"), "the old cluster trusts: {hba}");
    }

    let pg = PgCluster::start(PgOptions::new(data.clone()))
        .await
        .expect("an old cluster starts");
    password_required(&pg).await;
    let hba = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
    assert!(
        !hba.lines()
            .any(|l| !l.starts_with('#') && l.contains("trust")),
        "{hba}"
    );
    assert_eq!(mode(&data.join("pg_hba.conf")) & 0o077, 0);
    assert_eq!(
        std::fs::metadata(data.join("pg_hba.conf")).unwrap().uid(),
        server_uid()
    );
    let first = password_of(&pg.url("postgres"));
    pg.create_database("kept").await.unwrap();
    pg.stop().await.unwrap();

    // a lost password file: a new password is set on start, the data stays
    std::fs::remove_file(tmp.path().join("postgres.password")).unwrap();
    let pg = PgCluster::start(PgOptions::new(data.clone()))
        .await
        .expect("a start without the password file sets a new one");
    let second = password_of(&pg.url("postgres"));
    assert_ne!(first, second);
    password_required(&pg).await;
    can_connect(&pg.url("kept")).await.expect("data kept");
    pg.stop().await.unwrap();

    // a wrong password file: a clear error naming the file, the password not printed
    std::fs::write(tmp.path().join("postgres.password"), "wrong\n").unwrap();
    let e = PgCluster::start(PgOptions::new(data))
        .await
        .expect_err("a wrong password cannot connect");
    let e = e.to_string();
    assert!(e.contains("postgres.password"), "{e}");
    assert!(!e.contains(&second), "{e}");
}
