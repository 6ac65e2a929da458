//! The two databases behind one code path: SQLite (embedded, the default) and PostgreSQL.
//!
//! Every query goes through sqlx's `Any` driver and is written once, with `$N` placeholders,
//! which both dialects take. The few places where the dialects differ ask [`Dialect`]: how a
//! writing transaction starts (SQLite's `BEGIN IMMEDIATE`; PostgreSQL's `BEGIN` and a
//! transaction-scoped advisory lock), the schema (`migrations/sqlite`, `migrations/postgres`),
//! and the catalogue a rebuild copies a table's definition from.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Once;
use std::time::Duration;

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions, AnyQueryResult, AnyRow};
use sqlx::{
    Any, AnyConnection, AnyPool, Arguments, ConnectOptions, Connection, Encode, Executor, Type,
};

use crate::error::StoreError;

/// Where the log lives.
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite database file, created with its folder when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its `postgres://` URL.
    Postgres(String),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What a connection is for: SQLite opens readers read-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

/// Whether a commit waits for the disk (SQLite's `synchronous`; PostgreSQL always does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Every commit is on disk when it returns: the log.
    Full,
    /// A power cut may lose the last commits: tables rebuilt from the log (the read models).
    Relaxed,
}

/// The key of the transaction-scoped advisory lock that serialises appenders on PostgreSQL.
pub(crate) const APPEND_LOCK: i64 = 0x6368_726f_6e69_636c; // "chronicl"

/// Settings every SQLite connection gets: WAL, full fsync at commit, patience with the writer,
/// and no checkpoint inside a commit (the store's own task checkpoints: see `wal`).
const SQLITE_SETTINGS: &str = "PRAGMA busy_timeout = 10000; PRAGMA synchronous = FULL; \
     PRAGMA temp_store = MEMORY; PRAGMA wal_autocheckpoint = 0;";

/// Each SQLite connection's page cache, in KiB, by role: the caches are private to their
/// connection and fill up on a large database, so together they are most of the server's memory
/// (DESIGN.md: 300 MiB at 10M events). Writers keep the index pages they touch on every
/// commit (16 MiB); readers little (2 MiB). Pages past these come from the kernel's page cache,
/// shared by every connection, at the cost of a copy.
fn cache_kib(access: Access) -> u32 {
    match access {
        Access::ReadWrite => 16_384,
        Access::ReadOnly => 2_048,
    }
}

impl Backend {
    /// Chooses PostgreSQL for a `postgres://` or `postgresql://` URL, else SQLite at `path`.
    pub fn from_url_or_path(url: Option<&str>, path: &Path) -> Result<Backend, StoreError> {
        match url {
            None => Ok(Backend::Sqlite(path.to_owned())),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Backend::Postgres(url.to_owned()))
            }
            Some(url) => Err(StoreError::Unavailable(format!(
                "unsupported database URL {:?}: expected postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                redact(url)
            ))),
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The file or the URL without its password, for messages and logs.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(path) => path.display().to_string(),
            Backend::Postgres(url) => redact(url),
        }
    }

    /// Creates the SQLite file's folder, and brings the schema up to date.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Backend::Sqlite(path) => {
                if let Some(folder) = path.parent()
                    && !folder.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(folder).map_err(|error| {
                        StoreError::Unavailable(format!(
                            "cannot create {}: {error}",
                            folder.display()
                        ))
                    })?;
                }
                let mut connection = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .connect()
                    .await?;
                sqlx::migrate!("../migrations/sqlite")
                    .run(&mut connection)
                    .await?;
                connection.close().await?;
            }
            Backend::Postgres(url) => {
                let mut connection = sqlx::postgres::PgConnectOptions::from_str(url)?
                    .log_statements(tracing::log::LevelFilter::Trace)
                    .connect()
                    .await?;
                // The migrator holds an advisory lock: nodes starting together migrate once.
                sqlx::migrate!("../migrations/postgres")
                    .run(&mut connection)
                    .await?;
                connection.close().await?;
            }
        }
        Ok(())
    }

    /// Refuses a database whose schema is not the one this binary's migrations build, naming
    /// both versions: a reader that does not migrate (`verify`) would otherwise fail on the
    /// first table that changed.
    pub async fn check_schema(&self, connection: &mut AnyConnection) -> Result<(), StoreError> {
        let migrator = match self {
            Backend::Sqlite(_) => sqlx::migrate!("../migrations/sqlite"),
            Backend::Postgres(_) => sqlx::migrate!("../migrations/postgres"),
        };
        let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let found: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(connection)
        .await?;
        match found.cmp(&expected) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(StoreError::Unavailable(format!(
                "{} has schema version {found}, this chronicle reads version {expected}: \
                 open it once with `chronicle serve` or `chronicle ingest`, which upgrade it",
                self.describe()
            ))),
            std::cmp::Ordering::Greater => Err(StoreError::Unavailable(format!(
                "{} has schema version {found}, newer than this chronicle's {expected}: \
                 use the chronicle that wrote it",
                self.describe()
            ))),
        }
    }

    fn options(&self, access: Access) -> Result<AnyConnectOptions, StoreError> {
        install_drivers();
        let url = match self {
            // A private in-memory database (the copies `as_of` answers are built in).
            Backend::Sqlite(path) if path.as_os_str() == ":memory:" => "sqlite::memory:".into(),
            Backend::Sqlite(path) => {
                let mode = match access {
                    Access::ReadWrite => "rwc",
                    Access::ReadOnly => "ro",
                };
                format!("sqlite://{}?mode={mode}", encode_path(path))
            }
            Backend::Postgres(url) => url.clone(),
        };
        Ok(AnyConnectOptions::from_str(&url)?.log_statements(tracing::log::LevelFilter::Trace))
    }

    /// Opens one connection (the appender's).
    pub async fn connect(&self, access: Access) -> Result<AnyConnection, StoreError> {
        let mut connection = self.options(access)?.connect().await?;
        if self.dialect() == Dialect::Sqlite {
            configure_sqlite(&mut connection, access, Durability::Full).await?;
        }
        Ok(connection)
    }

    /// Opens a pool of up to `size` connections.
    pub async fn pool(
        &self,
        access: Access,
        size: u32,
        durability: Durability,
    ) -> Result<AnyPool, StoreError> {
        let dialect = self.dialect();
        let pool = AnyPoolOptions::new()
            .max_connections(size.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        configure_sqlite(connection, access, durability).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(self.options(access)?)
            .await?;
        Ok(pool)
    }
}

/// Applies the settings of a SQLite connection in its role.
async fn configure_sqlite(
    connection: &mut AnyConnection,
    access: Access,
    durability: Durability,
) -> Result<(), sqlx::Error> {
    connection.execute(SQLITE_SETTINGS).await?;
    let cache = format!("PRAGMA cache_size = -{}", cache_kib(access));
    connection.execute(cache.as_str()).await?;
    if durability == Durability::Relaxed {
        connection.execute("PRAGMA synchronous = NORMAL").await?;
    }
    Ok(())
}

impl Dialect {
    /// The dialect an open connection speaks.
    pub fn of(connection: &AnyConnection) -> Dialect {
        if connection.backend_name() == <sqlx::Postgres as sqlx::Database>::NAME {
            Dialect::Postgres
        } else {
            Dialect::Sqlite
        }
    }

    /// Starts a transaction that writes: on SQLite it takes the write lock at once, so reads
    /// inside it see what the write will build on; on PostgreSQL `lock` names the advisory lock
    /// that serialises this kind of writer across every process on the database.
    pub async fn begin_write(
        self,
        connection: &mut AnyConnection,
        lock: i64,
    ) -> Result<(), sqlx::Error> {
        match self {
            Dialect::Sqlite => {
                sqlx::query("BEGIN IMMEDIATE").execute(connection).await?;
            }
            Dialect::Postgres => {
                sqlx::query("BEGIN").execute(&mut *connection).await?;
                let locked = sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(lock)
                    .execute(&mut *connection)
                    .await;
                if let Err(error) = locked {
                    rollback(connection).await;
                    return Err(error);
                }
            }
        }
        Ok(())
    }
}

/// Ends a transaction begun with [`Dialect::begin_write`] by rolling it back; used on failure,
/// where the rollback's own error would hide the first one.
pub async fn rollback(connection: &mut AnyConnection) {
    if let Err(error) = sqlx::query("ROLLBACK").execute(connection).await {
        tracing::warn!(error = %error, "rollback failed");
    }
}

/// A 64-bit advisory-lock key for a name (FNV-1a), the same in every process.
pub fn lock_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

fn install_drivers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(sqlx::any::install_default_drivers);
}

/// The URL path form of a file path: `%`, `?` and `#` escaped.
fn encode_path(path: &Path) -> String {
    let mut encoded = String::new();
    for character in path.to_string_lossy().chars() {
        match character {
            '%' | '?' | '#' | ' ' => {
                let mut buffer = [0; 4];
                for byte in character.encode_utf8(&mut buffer).bytes() {
                    let _ = write!(encoded, "%{byte:02X}");
                }
            }
            other => encoded.push(other),
        }
    }
    encoded
}

/// A URL with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// A statement built piece by piece, its placeholders written for the connection it runs on:
/// `$N` for PostgreSQL, plain `?` for SQLite (sqlx's `QueryBuilder` writes `?` for `Any`, which
/// PostgreSQL refuses; and binding SQLite's numbered parameters costs time quadratic in their
/// number, which a 9,000-value `INSERT` feels).
#[derive(Default)]
pub struct Sql<'q> {
    text: String,
    /// Where in `text` each placeholder goes, in binding order.
    marks: Vec<usize>,
    arguments: AnyArguments<'q>,
}

impl<'q> Sql<'q> {
    pub fn new(text: impl Into<String>) -> Sql<'q> {
        Sql {
            text: text.into(),
            ..Sql::default()
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder for `value`.
    pub fn bind<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        self.marks.push(self.text.len());
        self.arguments
            .add(value)
            .expect("Any encodes every value it has a type for");
        self
    }

    /// Appends `(v1, v2, …)`, one placeholder per value.
    pub fn bind_list<T: 'q + Encode<'q, Any> + Type<Any>>(
        &mut self,
        values: impl IntoIterator<Item = T>,
    ) -> &mut Self {
        self.text.push('(');
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.bind(value);
        }
        self.text.push(')');
        self
    }

    /// Appends `VALUES (…), (…)`: `row` binds each item's columns through a [`Row`].
    pub fn values<I>(
        &mut self,
        items: impl IntoIterator<Item = I>,
        mut row: impl FnMut(Row<'_, 'q>, I),
    ) -> &mut Self {
        self.text.push_str("VALUES ");
        for (index, item) in items.into_iter().enumerate() {
            if index > 0 {
                self.text.push_str(", ");
            }
            self.text.push('(');
            row(
                Row {
                    sql: self,
                    first: true,
                },
                item,
            );
            self.text.push(')');
        }
        self
    }

    /// The statement's text with placeholders in `dialect`'s form.
    pub fn render(&self, dialect: Dialect) -> String {
        let mut rendered = String::with_capacity(self.text.len() + 6 * self.marks.len());
        let mut from = 0;
        for (index, &mark) in self.marks.iter().enumerate() {
            rendered.push_str(&self.text[from..mark]);
            match dialect {
                Dialect::Sqlite => rendered.push('?'),
                Dialect::Postgres => {
                    let _ = write!(rendered, "${}", index + 1);
                }
            }
            from = mark;
        }
        rendered.push_str(&self.text[from..]);
        rendered
    }

    pub async fn execute(
        self,
        connection: &mut AnyConnection,
    ) -> Result<AnyQueryResult, sqlx::Error> {
        let text = self.render(Dialect::of(connection));
        sqlx::query_with(&text, self.arguments)
            .execute(connection)
            .await
    }

    pub async fn fetch_all(
        self,
        connection: &mut AnyConnection,
    ) -> Result<Vec<AnyRow>, sqlx::Error> {
        let text = self.render(Dialect::of(connection));
        sqlx::query_with(&text, self.arguments)
            .fetch_all(connection)
            .await
    }
}

/// Statements that run one after another in a transaction, ended by `COMMIT`. On SQLite
/// consecutive statements go to its worker thread as one multi-statement call (SQLite binds each
/// statement's `?` from the arguments in order), so a group commit costs one trip there instead
/// of one per statement; on PostgreSQL, whose extended protocol takes one statement per call,
/// each is a call of its own.
pub struct Script<'q> {
    dialect: Dialect,
    /// Each call, and whether its text recurs (kept prepared) or is used once.
    calls: Vec<(Sql<'q>, bool)>,
    /// Whether the last call takes further statements.
    open: bool,
}

impl<'q> Script<'q> {
    pub fn new(dialect: Dialect) -> Script<'q> {
        Script {
            dialect,
            calls: Vec::new(),
            open: false,
        }
    }

    /// Starts the next statement with `text`; returns it to be completed.
    pub fn statement(&mut self, text: &str) -> &mut Sql<'q> {
        self.start(text, false)
    }

    /// Starts a statement whose text recurs from script to script (a full chunk of rows) as a
    /// call of its own, so the driver's cache keeps it prepared: preparing a thousand-row
    /// `INSERT` again for every group costs more than the trip saved. Other calls are not
    /// cached: a script's text seldom comes again.
    pub fn recurring_statement(&mut self, text: &str) -> &mut Sql<'q> {
        self.start(text, true)
    }

    fn start(&mut self, text: &str, alone: bool) -> &mut Sql<'q> {
        let join = self.dialect == Dialect::Sqlite && self.open && !alone;
        if !join {
            self.calls.push((Sql::default(), alone));
        }
        self.open = !alone;
        let (call, _) = self.calls.last_mut().expect("a call was just pushed");
        if join {
            call.push("; ");
        }
        call.push(text)
    }

    /// Runs the statements in order and commits; on an error nothing after it runs and the
    /// transaction is left to the caller to roll back.
    pub async fn commit(mut self, connection: &mut AnyConnection) -> Result<(), sqlx::Error> {
        self.statement("COMMIT");
        for (call, recurring) in self.calls {
            let text = call.render(self.dialect);
            sqlx::query_with(&text, call.arguments)
                .persistent(recurring)
                .execute(&mut *connection)
                .await?;
        }
        Ok(())
    }
}

/// One row of a multi-row `VALUES`.
pub struct Row<'s, 'q> {
    sql: &'s mut Sql<'q>,
    first: bool,
}

impl<'q> Row<'_, 'q> {
    /// Binds the next column.
    pub fn bind<T: 'q + Encode<'q, Any> + Type<Any>>(&mut self, value: T) -> &mut Self {
        if !self.first {
            self.sql.text.push_str(", ");
        }
        self.first = false;
        self.sql.bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A script's statements share one call on SQLite, each binding its own values in order; a
    /// recurring statement is a call of its own; a failing statement stops the script before its
    /// `COMMIT`, and the rollback leaves nothing of it.
    #[tokio::test]
    async fn a_script_binds_each_statement_in_order_and_commits_all_or_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let mut connection = Backend::Sqlite(directory.path().join("script.db"))
            .connect(Access::ReadWrite)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE a (x INTEGER PRIMARY KEY, y TEXT)")
            .execute(&mut connection)
            .await
            .unwrap();
        sqlx::query("CREATE TABLE b (x INTEGER PRIMARY KEY)")
            .execute(&mut connection)
            .await
            .unwrap();
        let script = |rows: &[(i64, &'static str)], b: i64| {
            let mut script = Script::new(Dialect::Sqlite);
            script
                .recurring_statement("INSERT INTO b (x) ")
                .values([b], |mut row, x| {
                    row.bind(x);
                });
            script
                .statement("INSERT INTO a (x, y) ")
                .values(rows.to_vec(), |mut row, (x, y)| {
                    row.bind(x).bind(y);
                });
            script
                .statement("UPDATE a SET y = y || ")
                .bind("!")
                .push(" WHERE x = ")
                .bind(rows[0].0);
            script
        };
        let first = script(&[(1, "one"), (2, "two")], 10);
        assert_eq!(
            first
                .calls
                .iter()
                .map(|(call, _)| call.render(Dialect::Sqlite))
                .collect::<Vec<_>>(),
            [
                "INSERT INTO b (x) VALUES (?)",
                "INSERT INTO a (x, y) VALUES (?, ?), (?, ?); UPDATE a SET y = y || ? WHERE x = ?",
            ]
        );
        Dialect::Sqlite
            .begin_write(&mut connection, APPEND_LOCK)
            .await
            .unwrap();
        first.commit(&mut connection).await.unwrap();

        // The second script's second call collides on `a`: its first call's `b` row goes too.
        Dialect::Sqlite
            .begin_write(&mut connection, APPEND_LOCK)
            .await
            .unwrap();
        let error = script(&[(3, "three"), (2, "again")], 11)
            .commit(&mut connection)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("UNIQUE"), "{error}");
        rollback(&mut connection).await;

        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT x, y FROM a ORDER BY x")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        assert_eq!(rows, [(1, "one!".to_owned()), (2, "two".to_owned())]);
        let b: Vec<i64> = sqlx::query_scalar("SELECT x FROM b")
            .fetch_all(&mut connection)
            .await
            .unwrap();
        assert_eq!(b, [10]);
    }

    #[test]
    fn values_and_lists_number_their_placeholders_in_order() {
        let mut sql = Sql::new("INSERT INTO t (a, b) ");
        sql.values([(1_i64, "x"), (2, "y")], |mut row, (a, b)| {
            row.bind(a).bind(b);
        });
        sql.push(" WHERE c IN ").bind_list([7_i64, 8]);
        assert_eq!(
            sql.render(Dialect::Postgres),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4) WHERE c IN ($5, $6)"
        );
        assert_eq!(
            sql.render(Dialect::Sqlite),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) WHERE c IN (?, ?)"
        );
    }

    #[test]
    fn a_url_password_is_never_shown() {
        assert_eq!(
            redact("postgres://chronicle:s3cret@db.internal:5432/log"),
            "postgres://chronicle:***@db.internal:5432/log"
        );
        assert_eq!(redact("postgres://db/log"), "postgres://db/log");
    }

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        assert_eq!(lock_key("machines"), lock_key("machines"));
        assert_ne!(lock_key("machines"), lock_key("sessions"));
    }
}
