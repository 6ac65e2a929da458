//! `serve --check-integrity`: SQLite's own `PRAGMA integrity_check` over the embedded database
//! before the server opens it, so a damaged file stops the start with a plain message instead of
//! failing later on whichever page a request happens to touch.

use std::path::Path;

use anyhow::{Context, bail};
use chronicle_store::Backend;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The most problems SQLite is asked to list.
const MAX_PROBLEMS: u32 = 20;

/// Checks the embedded database of `backend`, read-only; a missing file (a fresh directory)
/// and a PostgreSQL backend (which checks its own pages) pass.
pub async fn check_integrity(backend: &Backend) -> anyhow::Result<()> {
    let Backend::Sqlite(path) = backend else {
        eprintln!("--check-integrity: PostgreSQL checks its own pages; nothing to do");
        return Ok(());
    };
    if !path.exists() {
        return Ok(());
    }
    let problems = integrity_problems(path)
        .await
        .with_context(|| format!("the database {} cannot be checked", path.display()))?;
    if problems != ["ok"] {
        bail!(
            "the database {} is damaged; SQLite's integrity check reports:\n  {}\nrestore it from a backup (then run `chronicle verify --data`), or move it aside to start empty",
            path.display(),
            problems.join("\n  ")
        );
    }
    eprintln!("integrity check of {}: ok", path.display());
    Ok(())
}

async fn integrity_problems(path: &Path) -> anyhow::Result<Vec<String>> {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await?;
    let problems = sqlx::query_scalar(&format!("PRAGMA integrity_check({MAX_PROBLEMS})"))
        .fetch_all(&mut connection)
        .await?;
    connection.close().await?;
    Ok(problems)
}
