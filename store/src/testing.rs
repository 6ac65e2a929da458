//! Test support: a throwaway PostgreSQL server for the conformance suite (feature `testing`).
//!
//! The first call starts one cluster per test process: `initdb` and `pg_ctl` from the machine's
//! PostgreSQL (`CHRONICLE_PG_BIN`, else the newest `/usr/lib/postgresql/*/bin`, else `PATH`),
//! in a temporary directory, on a free loopback port, as the `postgres` (or `nobody`) user when
//! run as root, since PostgreSQL refuses to run as root. Each test then gets a database of its
//! own. A watchdog process stops the cluster and removes its directory when the test process
//! exits, however it exits.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::{ConnectOptions, Connection};

/// A running throwaway PostgreSQL server.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    pg_ctl: PathBuf,
    data: PathBuf,
    log: PathBuf,
    options: String,
    user: Option<String>,
}

static SERVER: OnceLock<Result<PostgresServer, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The process's PostgreSQL server, started on first use; panics, saying why, when it cannot
/// start.
pub fn postgres() -> &'static PostgresServer {
    match SERVER.get_or_init(|| PostgresServer::start(false)) {
        Ok(server) => server,
        Err(error) => panic!("cannot start a throwaway PostgreSQL server: {error}"),
    }
}

impl PostgresServer {
    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://chronicle@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates an empty database and returns its URL.
    pub async fn fresh_database(&self) -> String {
        let name = format!(
            "chronicle_test_{}",
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = self
            .url("postgres")
            .parse::<sqlx::postgres::PgConnectOptions>()
            .expect("a valid URL")
            .connect()
            .await
            .expect("the throwaway server takes connections");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("the throwaway server creates databases");
        admin.close().await.ok();
        self.url(&name)
    }

    /// Starts a new server. Tests want it fast (`durable` false: no fsync, as nothing must
    /// survive a power cut); benchmarks want PostgreSQL's defaults (`durable` true).
    pub fn start(durable: bool) -> Result<PostgresServer, String> {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let bin = binaries()?;
        let directory = std::env::temp_dir().join(format!(
            "chronicle-pg-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&directory);
        std::fs::create_dir_all(&directory).map_err(|error| format!("{error}"))?;
        let runner = Runner::for_this_user(&directory)?;
        let data = directory.join("data");
        runner.run(
            &bin.join("initdb"),
            &[
                "-D",
                path(&data),
                "-U",
                "chronicle",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        let port = free_port()?;
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400",
            path(&directory)
        );
        if !durable {
            options.push_str(" -c fsync=off -c synchronous_commit=off -c full_page_writes=off");
        }
        runner.run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                path(&data),
                "-o",
                &options,
                "-l",
                path(&directory.join("server.log")),
                "-w",
                "start",
            ],
        )?;
        // Stop the server and remove its files when this process exits.
        let stop = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop}; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = runner.command_line(
                &bin.join("pg_ctl"),
                &["-D", path(&data), "-m", "immediate", "stop"]
            ),
            dir = path(&directory),
        );
        Command::new("sh")
            .args(["-c", &stop])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| format!("cannot start the watchdog: {error}"))?;
        Ok(PostgresServer {
            port,
            pg_ctl: bin.join("pg_ctl"),
            log: directory.join("server.log"),
            data,
            options,
            user: runner.user,
        })
    }

    /// Restarts the server (a fast shutdown: open connections are cut), as an operator would
    /// under load; returns once it takes connections again.
    pub fn restart(&self) -> Result<(), String> {
        let runner = Runner {
            user: self.user.clone(),
        };
        runner.run(
            &self.pg_ctl,
            &[
                "-D",
                path(&self.data),
                "-o",
                &self.options,
                "-l",
                path(&self.log),
                "-m",
                "fast",
                "-w",
                "restart",
            ],
        )
    }
}

/// Runs PostgreSQL's programs as an unprivileged user when this process is root.
struct Runner {
    user: Option<String>,
}

impl Runner {
    fn for_this_user(directory: &Path) -> Result<Runner, String> {
        let root = std::fs::metadata("/proc/self")
            .map(|metadata| std::os::unix::fs::MetadataExt::uid(&metadata) == 0)
            .unwrap_or(false);
        if !root {
            return Ok(Runner { user: None });
        }
        let passwd = std::fs::read_to_string("/etc/passwd").map_err(|error| error.to_string())?;
        let (user, uid, gid) = ["postgres", "nobody"]
            .iter()
            .find_map(|name| {
                passwd.lines().find_map(|line| {
                    let fields: Vec<&str> = line.split(':').collect();
                    (fields.first() == Some(name) && fields.len() > 3).then(|| {
                        (
                            name.to_string(),
                            fields[2].parse::<u32>().ok(),
                            fields[3].parse::<u32>().ok(),
                        )
                    })
                })
            })
            .ok_or("running as root and there is no postgres or nobody user")?;
        std::os::unix::fs::chown(directory, uid, gid)
            .map_err(|error| format!("cannot hand {} to {user}: {error}", directory.display()))?;
        Ok(Runner { user: Some(user) })
    }

    fn command_line(&self, program: &Path, arguments: &[&str]) -> String {
        let mut words = Vec::new();
        if let Some(user) = &self.user {
            words.extend(["runuser".to_owned(), "-u".into(), user.clone(), "--".into()]);
        }
        words.push(path(program).to_owned());
        words.extend(arguments.iter().map(|word| word.to_string()));
        words
            .iter()
            .map(|word| format!("'{}'", word.replace('\'', "'\\''")))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn run(&self, program: &Path, arguments: &[&str]) -> Result<(), String> {
        let output = Command::new("sh")
            .args(["-c", &self.command_line(program, arguments)])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run {}: {error}", program.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed: {}{}",
                program.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

/// Where `initdb` and `pg_ctl` are.
fn binaries() -> Result<PathBuf, String> {
    if let Some(bin) = std::env::var_os("CHRONICLE_PG_BIN") {
        return Ok(PathBuf::from(bin));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let found = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    match found {
        Some(initdb) => Ok(PathBuf::from(initdb)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()),
        None => Err(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH; \
             install postgresql or set CHRONICLE_PG_BIN)"
                .into(),
        ),
    }
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|error| error.to_string())?;
    listener
        .local_addr()
        .map(|address| address.port())
        .map_err(|error| error.to_string())
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// Which database a conformance test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

thread_local! {
    static CURRENT: std::cell::Cell<BackendKind> = const { std::cell::Cell::new(BackendKind::Sqlite) };
}

impl BackendKind {
    /// The backend the running conformance test asked for (SQLite outside the suite).
    pub fn current() -> BackendKind {
        CURRENT.with(std::cell::Cell::get)
    }

    /// Makes this the backend of the test running on this thread.
    pub fn install(self) {
        CURRENT.with(|current| current.set(self));
    }

    /// A new, empty database of this kind: a file in `directory`, or a fresh PostgreSQL
    /// database on the process's throwaway server.
    pub async fn fresh(self, directory: &Path) -> crate::Backend {
        match self {
            BackendKind::Sqlite => crate::Backend::Sqlite(directory.join("chronicle.db")),
            BackendKind::Postgres => crate::Backend::Postgres(postgres().fresh_database().await),
        }
    }
}

/// The conformance suite: each test written once and run on both backends, as
/// `NAME::sqlite` and `NAME::postgres`. The body asks [`BackendKind::current`] (or a helper
/// that does) for its database.
#[macro_export]
macro_rules! conformance {
    ($($(#[$attribute:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$attribute])*
            async fn sqlite() {
                $crate::testing::BackendKind::Sqlite.install();
                $body
            }

            $(#[$attribute])*
            async fn postgres() {
                $crate::testing::BackendKind::Postgres.install();
                $body
            }
        }
    )*};
}
