//! A private PostgreSQL cluster run from the machine's PostgreSQL server binaries.
//!
//! The all-in-one `canopy start` keeps its database in `<root-directory>/postgres`, and
//! integration tests start one cluster per test binary ([`testing`]). Both need the same
//! care:
//!
//! - **Root.** PostgreSQL refuses to run as root. When this process is root, `initdb`
//!   and `postgres` run as the `postgres` system user, and the data directory is owned
//!   by it. If that user cannot reach the data directory (e.g. it is under `/root`, mode
//!   0700), the cluster lives in `/var/lib/canopy/pg-<hash of the path>` and the data
//!   directory becomes a symlink to it; the user's own directories keep their
//!   permissions.
//! - **Sockets.** The cluster listens only on a Unix socket (plus 127.0.0.1 when a port
//!   is asked for), in a directory of mode 0700 owned by the user PostgreSQL runs as
//!   (root, who runs Canopy then, passes anyway), never in a directory others can
//!   write to: `<data>/run`, or — socket paths are limited to ~107 bytes — for a long
//!   data directory `/run/canopy/pg-<hash>` when root (`/run/canopy` is root's, 0755),
//!   `$XDG_RUNTIME_DIR/canopy-pg-<hash>` otherwise; when neither fits, no socket at all
//!   and TCP on 127.0.0.1 only, at a free port. The socket itself is 0700.
//! - **Passwords.** Every connection authenticates with SCRAM-SHA-256, also on the
//!   socket ([`auth`]): a random password made at first start is kept in
//!   [`PgOptions::password_file`] (0600) and is part of [`PgCluster::url`] (in memory;
//!   never logged, never on a command line). Clusters of older versions, which trusted
//!   every local connection, are switched to passwords on start.
//! - **Lifetime.** The postmaster gets `PR_SET_PDEATHSIG` (SIGINT, PostgreSQL's fast
//!   shutdown): when this process dies, however it dies, PostgreSQL stops too. The child
//!   is spawned from a dedicated thread that lives as long as the child, because the
//!   signal fires when the *spawning thread* exits.
//! - **Crashes.** A `postmaster.pid` left by a crashed run whose process is gone is
//!   removed before starting.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::Connection;

mod auth;
#[cfg(feature = "testing")]
pub mod testing;

#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql) or set CANOPY_PG_BIN to the directory holding initdb and postgres")]
    BinariesNotFound,
    #[error(
        "{path} has no {tool}: set CANOPY_PG_BIN to the directory holding initdb and postgres"
    )]
    MissingTool { path: String, tool: String },
    #[error("running as root needs a 'postgres' system user, since PostgreSQL refuses to run as root: create it (useradd --system postgres) or run as another user")]
    NoPostgresUser,
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("initdb failed: {0}")]
    InitDb(String),
    #[error("PostgreSQL is already running on {0} (another Canopy using the same root directory?); stop it first")]
    AlreadyRunning(String),
    #[error("PostgreSQL did not start: {0}")]
    Start(String),
    #[error("PostgreSQL query failed: {0}")]
    Query(String),
}

pub(crate) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> PgError + 'a {
    move |source| PgError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

/// How to run a cluster.
#[derive(Debug, Clone)]
pub struct PgOptions {
    pub data_dir: PathBuf,
    /// Directory of `initdb` and `postgres`; found with [`find_bin_dir`] when `None`.
    pub bin_dir: Option<PathBuf>,
    /// Also listen on 127.0.0.1 at this port; `None`: the Unix socket only.
    pub port: Option<u16>,
    /// Stop PostgreSQL when this process exits, even without `stop` or `Drop`.
    pub die_with_parent: bool,
    /// Where the password of the `postgres` user is kept (mode 0600; made at first
    /// start). `None`: next to the data directory, `<data_dir>.password`.
    pub password_file: Option<PathBuf>,
}

impl PgOptions {
    /// Options for a cluster in `data_dir` with defaults: binaries found, the Unix
    /// socket only, stopped with this process, the password next to the data directory.
    pub fn new(data_dir: PathBuf) -> PgOptions {
        PgOptions {
            data_dir,
            bin_dir: None,
            port: None,
            die_with_parent: true,
            password_file: None,
        }
    }

    /// The password file (see [`password_file`](Self::password_file)).
    pub fn password_path(&self) -> PathBuf {
        self.password_file.clone().unwrap_or_else(|| {
            let name = self
                .data_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "postgres".into());
            self.data_dir.with_file_name(format!("{name}.password"))
        })
    }
}

/// Finds the PostgreSQL server binaries: `$CANOPY_PG_BIN`, `pg_config --bindir`, the
/// newest `/usr/lib/postgresql/*/bin`, then `PATH`.
pub fn find_bin_dir() -> Result<PathBuf, PgError> {
    find_bin_dir_from(std::env::var("CANOPY_PG_BIN").ok())
}

fn find_bin_dir_from(explicit: Option<String>) -> Result<PathBuf, PgError> {
    let has_tools = |d: &Path| d.join("initdb").exists() && d.join("postgres").exists();
    if let Some(d) = explicit {
        let d = PathBuf::from(d);
        for tool in ["initdb", "postgres"] {
            if !d.join(tool).exists() {
                return Err(PgError::MissingTool {
                    path: d.display().to_string(),
                    tool: tool.into(),
                });
            }
        }
        return Ok(d);
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        if out.status.success() {
            let d = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if has_tools(&d) {
                return Ok(d);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/usr/lib/postgresql") {
        let mut versions: Vec<(u32, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let v: u32 = e.file_name().to_str()?.parse().ok()?;
                Some((v, e.path().join("bin")))
            })
            .filter(|(_, d)| has_tools(d))
            .collect();
        versions.sort();
        if let Some((_, d)) = versions.pop() {
            return Ok(d);
        }
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let d = PathBuf::from(dir);
        if has_tools(&d) {
            return Ok(d);
        }
    }
    Err(PgError::BinariesNotFound)
}

/// The user PostgreSQL runs as when we are root.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    uid: u32,
    gid: u32,
}

fn run_as() -> Result<Option<RunAs>, PgError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let name = std::ffi::CString::new("postgres").map_err(|_| PgError::NoPostgresUser)?;
    // SAFETY: getpwnam returns a pointer to static storage or null; we copy the fields out
    // immediately and never keep the pointer.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return Err(PgError::NoPostgresUser);
    }
    // SAFETY: pw is non-null and points to a valid passwd entry (see above).
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok(Some(RunAs { uid, gid }))
}

fn short_hash(p: &Path) -> String {
    let d = Sha256::digest(p.as_os_str().as_encoded_bytes());
    d.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// Whether `user` can traverse every ancestor of `dir`.
fn reachable_by(dir: &Path, user: RunAs) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if let Ok(m) = std::fs::metadata(d) {
            let mode = m.mode();
            let ok = if m.uid() == user.uid {
                mode & 0o100 != 0
            } else if m.gid() == user.gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !ok {
                return false;
            }
        }
        cur = d.parent();
    }
    true
}

pub(crate) fn chown(path: &Path, user: RunAs) -> Result<(), PgError> {
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid)).map_err(io("cannot chown", path))
}

/// Resolves where the cluster's files live (see the module docs about root).
fn resolve_data_dir(data_dir: &Path, user: Option<RunAs>) -> Result<PathBuf, PgError> {
    if let Ok(target) = std::fs::read_link(data_dir) {
        return Ok(target);
    }
    let parent = data_dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    let abs_parent = std::fs::canonicalize(parent).map_err(io("cannot resolve", parent))?;
    let abs = abs_parent.join(data_dir.file_name().unwrap_or_default());
    match user {
        Some(u) if !reachable_by(&abs_parent, u) => {
            let elsewhere =
                PathBuf::from("/var/lib/canopy").join(format!("pg-{}", short_hash(&abs)));
            std::fs::create_dir_all(&elsewhere).map_err(io("cannot create", &elsewhere))?;
            if !abs.exists() {
                std::os::unix::fs::symlink(&elsewhere, &abs).map_err(io("cannot link", &abs))?;
            }
            tracing::info!(data = %elsewhere.display(), link = %abs.display(), "the postgres user cannot reach the root directory; keeping PostgreSQL's files elsewhere");
            Ok(elsewhere)
        }
        _ => Ok(abs),
    }
}

/// Drops root for the child: supplementary groups, then gid, then uid (the order
/// matters: after setuid the others are no longer permitted). Called between fork and
/// exec, so it uses only async-signal-safe calls.
pub(crate) fn drop_privileges(user: Option<RunAs>) -> std::io::Result<()> {
    if let Some(u) = user {
        // SAFETY: async-signal-safe libc calls on plain integers.
        unsafe {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(u.gid) != 0
                || libc::setuid(u.uid) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

fn run_tool(cmd: &mut Command, user: Option<RunAs>) -> std::io::Result<std::process::Output> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure only makes async-signal-safe calls (see drop_privileges).
    unsafe {
        cmd.pre_exec(move || drop_privileges(user));
    }
    cmd.stdin(Stdio::null()).output()
}

fn log_tail(log: &Path) -> String {
    let Ok(mut f) = std::fs::File::open(log) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(2000)));
    let mut s = String::new();
    let _ = f.read_to_string(&mut s);
    s.lines()
        .rev()
        .take(8)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}

/// Removes a `postmaster.pid` whose process is gone; errors if PostgreSQL still runs.
fn clear_stale_pid(dir: &Path) -> Result<(), PgError> {
    let pidfile = dir.join("postmaster.pid");
    let Ok(text) = std::fs::read_to_string(&pidfile) else {
        return Ok(());
    };
    let pid: i32 = text
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let is_postgres = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("postgres"))
        .unwrap_or(false);
    if pid_alive(pid) && is_postgres {
        // It may be shutting down (its parent just died): give it a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if pid_alive(pid) {
            return Err(PgError::AlreadyRunning(dir.display().to_string()));
        }
        if !pidfile.exists() {
            return Ok(());
        }
    }
    std::fs::remove_file(&pidfile).map_err(io("cannot remove stale", &pidfile))
}

/// Socket paths (`<dir>/.s.PGSQL.<port>`) must fit in `sun_path` (108 bytes with its
/// NUL); this leaves room for the file name.
fn socket_fits(dir: &Path) -> bool {
    dir.as_os_str().len() + 20 <= 100
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Creates `dir` for the socket: mode 0700, owned by the user PostgreSQL runs as. An
/// existing one must be a directory (not a link) of that user or of ours.
fn private_socket_dir(dir: &Path, user: Option<RunAs>) -> Result<(), PgError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let m = std::fs::symlink_metadata(dir).map_err(io("cannot inspect", dir))?;
            let ours = m.uid() == euid() || user.is_some_and(|u| u.uid == m.uid());
            if !m.is_dir() || !ours {
                return Err(PgError::Start(format!(
                    "{} is not a directory of this user or of postgres; remove it",
                    dir.display()
                )));
            }
        }
        Err(e) => return Err(io("cannot create", dir)(e)),
    }
    if let Some(u) = user {
        std::os::unix::fs::lchown(dir, Some(u.uid), Some(u.gid))
            .map_err(io("cannot chown", dir))?;
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io("cannot chmod", dir))
}

/// `/run/canopy`: root's, not writable by others (created 0755 when missing).
fn root_run_dir(base: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o755).create(base) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e.to_string()),
    }
    let m = std::fs::symlink_metadata(base).map_err(|e| e.to_string())?;
    if !m.is_dir() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err("not a directory of root's that only root may write to".into());
    }
    Ok(())
}

/// Where the socket goes (see the module docs); `None`: no socket, TCP on loopback.
fn choose_socket_dir(data: &Path, user: Option<RunAs>) -> Result<Option<PathBuf>, PgError> {
    use std::os::unix::fs::MetadataExt;
    let inside = data.join("run");
    if socket_fits(&inside) {
        private_socket_dir(&inside, user)?;
        return Ok(Some(inside));
    }
    let name = format!("pg-{}", short_hash(data));
    if user.is_some() || euid() == 0 {
        let base = Path::new("/run/canopy");
        let d = base.join(&name);
        if Path::new("/run").is_dir() && socket_fits(&d) {
            match root_run_dir(base) {
                Ok(()) => {
                    private_socket_dir(&d, user)?;
                    return Ok(Some(d));
                }
                Err(e) => {
                    tracing::warn!(dir = %base.display(), error = %e, "cannot keep PostgreSQL's socket there; using TCP on 127.0.0.1")
                }
            }
        }
    } else if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR") {
        let base = PathBuf::from(x);
        let d = base.join(format!("canopy-{name}"));
        let private = std::fs::symlink_metadata(&base)
            .is_ok_and(|m| m.is_dir() && m.uid() == euid() && m.mode() & 0o077 == 0);
        if private && socket_fits(&d) {
            private_socket_dir(&d, None)?;
            return Ok(Some(d));
        }
    }
    Ok(None)
}

fn free_port() -> Result<u16, PgError> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| PgError::Start(format!("no free port on 127.0.0.1: {e}")))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| PgError::Start(e.to_string()))
}

/// A running private PostgreSQL cluster.
#[derive(Debug)]
pub struct PgCluster {
    data_dir: PathBuf,
    /// `None`: TCP on 127.0.0.1 only.
    socket_dir: Option<PathBuf>,
    port: u16,
    password: auth::Secret,
    password_file: PathBuf,
    pid: i32,
    exited: Option<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl PgCluster {
    /// Initializes the cluster on first use, starts it and waits until it accepts
    /// connections.
    pub async fn start(opts: PgOptions) -> Result<PgCluster, PgError> {
        tokio::task::spawn_blocking(move || Self::start_blocking(opts))
            .await
            .map_err(|e| PgError::Start(e.to_string()))?
    }

    fn start_blocking(opts: PgOptions) -> Result<PgCluster, PgError> {
        let bin = match &opts.bin_dir {
            Some(b) => b.clone(),
            None => find_bin_dir()?,
        };
        let user = run_as()?;
        let dir = resolve_data_dir(&opts.data_dir, user)?;
        std::fs::create_dir_all(&dir).map_err(io("cannot create", &dir))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io("cannot chmod", &dir))?;
        }
        if let Some(u) = user {
            chown(&dir, u)?;
        }
        if !dir.join("PG_VERSION").exists() {
            // `trust` only until the lines below replace it, before the server ever runs
            let out = run_tool(
                Command::new(bin.join("initdb")).arg("-D").arg(&dir).args([
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ]),
                user,
            )
            .map_err(io("cannot run", &bin.join("initdb")))?;
            if !out.status.success() {
                return Err(PgError::InitDb(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ));
            }
        }
        clear_stale_pid(&dir)?;

        // password authentication, also for clusters older versions made with `trust`
        let password_file = opts.password_path();
        let (password, made) = auth::load_or_create_password(&password_file)?;
        let trusts = auth::hba_trusts(&dir)?;
        if made || trusts {
            auth::set_password(&bin, &dir, user, &password)?;
        }
        if trusts {
            auth::write_hba(&dir, user)?;
            tracing::info!(data = %dir.display(), "PostgreSQL switched from trust to password authentication");
        }

        let socket_dir = choose_socket_dir(&dir, user)?;
        let port = match (opts.port, &socket_dir) {
            (Some(p), _) => p,
            (None, Some(_)) => 5432,
            (None, None) => free_port()?,
        };
        let log = dir.join("postgres.log");
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(io("cannot open", &log))?;
        if let Some(u) = user {
            chown(&log, u)?;
        }
        let listen = if opts.port.is_some() || socket_dir.is_none() {
            "127.0.0.1"
        } else {
            ""
        };
        let mut cmd = Command::new(bin.join("postgres"));
        cmd.arg("-D").arg(&dir).arg("-c");
        match &socket_dir {
            Some(d) => cmd.arg(format!("unix_socket_directories={}", d.display())),
            None => cmd.arg("unix_socket_directories="),
        };
        cmd.args(["-c", "unix_socket_permissions=0700"])
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={listen}"))
            .args([
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
                "-c",
                "fsync=on",
            ])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(io("cannot open", &log))?)
            .stderr(log_file);
        let die = opts.die_with_parent;
        let (pid_tx, pid_rx) = std::sync::mpsc::channel::<Result<i32, String>>();
        let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || {
                use std::os::unix::process::CommandExt;
                // SAFETY: only async-signal-safe calls between fork and exec. The death
                // signal is set after the credential change, which would clear it.
                unsafe {
                    cmd.pre_exec(move || {
                        drop_privileges(user)?;
                        if die && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                match cmd.spawn() {
                    Ok(mut child) => {
                        let _ = pid_tx.send(Ok(child.id() as i32));
                        let _ = child.wait();
                        let _ = exit_tx.send(());
                    }
                    Err(e) => {
                        let _ = pid_tx.send(Err(e.to_string()));
                    }
                }
            })
            .map_err(|e| PgError::Start(e.to_string()))?;
        let pid = pid_rx
            .recv()
            .map_err(|e| PgError::Start(e.to_string()))?
            .map_err(PgError::Start)?;
        let cluster = PgCluster {
            data_dir: dir,
            socket_dir,
            port,
            password,
            password_file,
            pid,
            exited: Some(std::sync::Mutex::new(exit_rx)),
        };
        cluster.wait_ready(&log)?;
        Ok(cluster)
    }

    fn wait_ready(&self, log: &Path) -> Result<(), PgError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| PgError::Start(e.to_string()))?;
        let url = self.url("postgres");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(rx) = &self.exited {
                if rx.lock().map(|r| r.try_recv().is_ok()).unwrap_or(false) {
                    return Err(PgError::Start(format!(
                        "postgres exited; its log says:\n{}",
                        log_tail(log)
                    )));
                }
            }
            let r = rt.block_on(async {
                match sqlx::PgConnection::connect(&url).await {
                    Ok(c) => {
                        let _ = c.close().await;
                        Ok(true)
                    }
                    Err(e) => {
                        let code = e
                            .as_database_error()
                            .and_then(|d| d.code().map(|c| c.into_owned()));
                        match code.as_deref() {
                            // invalid_password, invalid_authorization_specification
                            Some("28P01") | Some("28000") => Err(e.to_string()),
                            _ => Ok(false),
                        }
                    }
                }
            });
            match r {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => {
                    return Err(PgError::Start(format!(
                        "{e}: the password in {} does not let Canopy in; if it was changed or lost, delete it and start again (a new one is set)",
                        self.password_file.display()
                    )))
                }
            }
            if std::time::Instant::now() > deadline {
                return Err(PgError::Start(format!(
                    "not accepting connections after 60 s; its log says:\n{}",
                    log_tail(log)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The directory holding the cluster's files (after resolving a symlink).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The directory of the Unix socket (mode 0700); `None` when the cluster listens on
    /// TCP at 127.0.0.1 only.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.socket_dir.as_deref()
    }

    /// The TCP port (also the number in the socket's name).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where the password of `postgres` is kept (mode 0600).
    pub fn password_file(&self) -> &Path {
        &self.password_file
    }

    /// A connection URL for `database` as `postgres`, with the password: over the Unix
    /// socket, or TCP on 127.0.0.1 when there is none. Keep it in memory: never log it
    /// or pass it on a command line.
    pub fn url(&self, database: &str) -> String {
        let pw = &self.password.0;
        match &self.socket_dir {
            Some(s) => format!(
                "postgres://postgres:{pw}@localhost:{}/{database}?host={}",
                self.port,
                s.display()
            ),
            None => format!(
                "postgres://postgres:{pw}@127.0.0.1:{}/{database}",
                self.port
            ),
        }
    }

    /// Creates `name` unless it exists.
    pub async fn create_database(&self, name: &str) -> Result<(), PgError> {
        create_database(&self.url("postgres"), name).await
    }

    /// Fast shutdown; waits for the server to exit.
    pub async fn stop(mut self) -> Result<(), PgError> {
        let rx = self.exited.take().and_then(|m| m.into_inner().ok());
        let pid = self.pid;
        let outside = self.outside_socket_dir();
        tokio::task::spawn_blocking(move || {
            shutdown(pid, rx);
            remove_socket_dir(outside);
        })
        .await
        .map_err(|e| PgError::Start(e.to_string()))
    }

    /// The socket directory when it is not inside the data directory (removed, empty,
    /// once the server stopped).
    fn outside_socket_dir(&self) -> Option<PathBuf> {
        self.socket_dir
            .clone()
            .filter(|d| !d.starts_with(&self.data_dir))
    }
}

fn remove_socket_dir(dir: Option<PathBuf>) {
    if let Some(d) = dir {
        // only when empty: the server removes its socket and lock file when it stops
        let _ = std::fs::remove_dir(d);
    }
}

fn shutdown(pid: i32, exited: Option<std::sync::mpsc::Receiver<()>>) {
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
    let Some(rx) = exited else { return };
    if rx.recv_timeout(Duration::from_secs(30)).is_err() {
        // SAFETY: as above; immediate shutdown as a last resort.
        unsafe {
            libc::kill(pid, libc::SIGQUIT);
        }
        let _ = rx.recv_timeout(Duration::from_secs(10));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Some(rx) = self.exited.take().and_then(|m| m.into_inner().ok()) {
            shutdown(self.pid, Some(rx));
            remove_socket_dir(self.outside_socket_dir());
        }
    }
}

/// Creates a database on the server at `admin_url` unless it exists.
pub async fn create_database(admin_url: &str, name: &str) -> Result<(), PgError> {
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(PgError::Query(format!("invalid database name {name:?}")));
    }
    let mut c = sqlx::PgConnection::connect(admin_url)
        .await
        .map_err(|e| PgError::Query(e.to_string()))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut c)
            .await
            .map_err(|e| PgError::Query(e.to_string()))?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut c)
            .await
            .map_err(|e| PgError::Query(e.to_string()))?;
    }
    let _ = c.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> PgOptions {
        PgOptions::new(dir.to_path_buf())
    }

    async fn count(url: &str) -> i64 {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar("SELECT count(*) FROM t")
            .fetch_one(&mut c)
            .await
            .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn start_stop_restart_keeps_data_and_clusters_run_side_by_side() {
        let tmp = tempfile::tempdir().unwrap();
        let a = PgCluster::start(opts(&tmp.path().join("a"))).await.unwrap();
        let b = PgCluster::start(opts(&tmp.path().join("b"))).await.unwrap();
        a.create_database("canopy").await.unwrap();
        a.create_database("canopy").await.unwrap(); // idempotent
        b.create_database("canopy").await.unwrap();
        {
            let mut c = sqlx::PgConnection::connect(&a.url("canopy")).await.unwrap();
            sqlx::query("CREATE TABLE t (x int)")
                .execute(&mut c)
                .await
                .unwrap();
            sqlx::query("INSERT INTO t VALUES (1), (2)")
                .execute(&mut c)
                .await
                .unwrap();
        }
        assert_eq!(count(&a.url("canopy")).await, 2);
        assert!(sqlx::PgConnection::connect(&b.url("canopy"))
            .await
            .unwrap()
            .close()
            .await
            .is_ok());
        a.stop().await.unwrap();
        b.stop().await.unwrap();
        let a = PgCluster::start(opts(&tmp.path().join("a"))).await.unwrap();
        assert_eq!(count(&a.url("canopy")).await, 2);
        a.stop().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stale_pid_file_does_not_block_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let a = PgCluster::start(opts(&tmp.path().join("a"))).await.unwrap();
        let dir = a.data_dir().to_path_buf();
        a.stop().await.unwrap();
        // a crash leaves postmaster.pid naming a process that no longer exists
        std::fs::write(dir.join("postmaster.pid"), "999999\n").unwrap();
        let a = PgCluster::start(opts(&tmp.path().join("a"))).await.unwrap();
        a.stop().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn unreachable_directory_as_root() {
        if run_as().unwrap().is_none() {
            eprintln!("not running as root: the root-only case does not arise here");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("private");
        std::fs::create_dir(&private).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let data = private.join("state").join("postgres");
        let a = PgCluster::start(opts(&data)).await.unwrap();
        assert!(std::fs::symlink_metadata(&data)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o700,
            "permissions untouched"
        );
        a.create_database("x").await.unwrap();
        a.stop().await.unwrap();
        // a restart follows the link
        let a = PgCluster::start(opts(&data)).await.unwrap();
        let elsewhere = a.data_dir().to_path_buf();
        assert!(elsewhere.starts_with("/var/lib/canopy"));
        a.stop().await.unwrap();
        std::fs::remove_dir_all(elsewhere).unwrap();
    }

    #[test]
    fn bad_bin_dir_is_actionable() {
        let tmp = tempfile::tempdir().unwrap();
        let e = find_bin_dir_from(Some(tmp.path().display().to_string())).unwrap_err();
        assert!(e.to_string().contains("set CANOPY_PG_BIN"), "{e}");
    }
}
