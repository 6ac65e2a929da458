//! SQLite's write-ahead log is copied back into the database file (checkpointed) by a task of
//! its own, on a connection of its own, so the appender's commits never pay for it.
//!
//! Every connection is opened with `wal_autocheckpoint = 0`; left on, the commit that pushes the
//! WAL past the limit copies it all back before it returns, which took a third of the writer's
//! time under sustained appends. Here, after the log moves (at most every [`PACE`]), a PASSIVE
//! checkpoint copies what it can without holding anyone back, on the other core.
//!
//! SQLite starts the WAL file over only once every frame in it is copied, which a passive
//! checkpoint racing continuous commits never achieves; so once the WAL holds more than
//! [`RESTART_FRAMES`], a RESTART checkpoint follows: it holds off the next commit while it copies
//! the few frames the passive one left and waits for readers to leave the old WAL, then the
//! next commit writes from the start of the file again. Its busy timeout is short: behind a long
//! reader it gives up and tries again later, rather than stalling the appender.

use std::time::Duration;

use sqlx::{AnyConnection, Executor, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::{Access, Backend};
use crate::error::StoreError;
use crate::store::Head;

/// The least time between two checkpoints: frames rewritten meanwhile are copied once.
const PACE: Duration = Duration::from_millis(250);
/// WAL frames (4 KiB pages with a small header: 128 MiB) past which the WAL starts over.
const RESTART_FRAMES: i64 = 32_768;

/// Starts the checkpointer of a SQLite store; it ends when the head watch's sender does.
pub(crate) async fn spawn(
    backend: &Backend,
    mut head: watch::Receiver<Head>,
) -> Result<JoinHandle<()>, StoreError> {
    let mut connection = backend.connect(Access::ReadWrite).await?;
    connection.execute("PRAGMA busy_timeout = 200").await?;
    Ok(tokio::spawn(async move {
        let mut pace = tokio::time::interval(PACE);
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while head.changed().await.is_ok() {
            pace.tick().await;
            if let Err(error) = checkpoint(&mut connection).await {
                tracing::warn!(error = %error, "WAL checkpoint failed; the next one tries again");
            }
        }
    }))
}

/// One passive checkpoint, and a restarting one when the WAL has grown long.
async fn checkpoint(connection: &mut AnyConnection) -> Result<(), StoreError> {
    let frames = run(connection, "PASSIVE").await?;
    metrics::gauge!("chronicle_wal_frames").set(frames as f64);
    if frames > RESTART_FRAMES {
        run(connection, "RESTART").await?;
    }
    Ok(())
}

/// Runs `PRAGMA wal_checkpoint(MODE)`; returns the frames the WAL held.
async fn run(connection: &mut AnyConnection, mode: &str) -> Result<i64, StoreError> {
    let statement = format!("PRAGMA wal_checkpoint({mode})");
    let row = sqlx::query(&statement).fetch_one(connection).await?;
    Ok(row.try_get(1)?)
}
