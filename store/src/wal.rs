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
            if let Err(error) = checkpoint(&mut connection, RESTART_FRAMES).await {
                tracing::warn!(error = %error, "WAL checkpoint failed; the next one tries again");
            }
        }
    }))
}

/// One passive checkpoint, and a restarting one when the WAL holds more than `restart_frames`.
/// Answers whether the WAL was copied whole and will start over (false when a reader or
/// another checkpoint held it back, or no restart was due).
async fn checkpoint(
    connection: &mut AnyConnection,
    restart_frames: i64,
) -> Result<bool, StoreError> {
    let passive = run(connection, "PASSIVE").await?;
    metrics::gauge!("chronicle_wal_frames").set(passive.frames as f64);
    if passive.frames <= restart_frames {
        return Ok(false);
    }
    Ok(!run(connection, "RESTART").await?.busy)
}

/// What `PRAGMA wal_checkpoint` answers.
struct Outcome {
    /// It could not finish: a reader, a writer or another checkpoint was in the way.
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
}

async fn run(connection: &mut AnyConnection, mode: &str) -> Result<Outcome, StoreError> {
    let statement = format!("PRAGMA wal_checkpoint({mode})");
    let row = sqlx::query(&statement).fetch_one(connection).await?;
    Ok(Outcome {
        busy: row.try_get::<i64, _>(0)? != 0,
        frames: row.try_get(1)?,
    })
}

#[cfg(test)]
mod tests {
    use chronicle_domain::{NewEvent, PreparedEvent};
    use chronicle_fixtures::{Scale, history};

    use super::*;
    use crate::checkpoint::NoteSigner;
    use crate::{Store, StoreConfig};

    const ROUNDS: usize = 8;

    /// Under appends the WAL file is reused from its start once copied back, rather than
    /// growing with the log; every event stays readable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_starts_over_once_copied_instead_of_growing_with_the_log() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("store.db");
        let wal = directory.path().join("store.db-wal");
        let signer = NoteSigner::generate("chronicle.test");
        let store = Store::open(StoreConfig::new(&path, signer)).await.unwrap();
        let mut connection = Backend::Sqlite(path.clone())
            .connect(Access::ReadWrite)
            .await
            .unwrap();
        let events = history(3, Scale::small());
        let per_round = events.len() / ROUNDS;
        let mut wal_sizes = Vec::new();
        for round in events.chunks(per_round).take(ROUNDS) {
            let batch = round
                .iter()
                .map(|value| {
                    PreparedEvent::new(
                        NewEvent::from_json(value, uuid::Uuid::now_v7()).unwrap(),
                        "test",
                    )
                })
                .collect();
            store.append(batch).await.unwrap();
            // The store's own checkpointer may hold the checkpoint lock a moment.
            let mut attempts = 0;
            while !checkpoint(&mut connection, 0).await.unwrap() {
                attempts += 1;
                assert!(attempts < 1_000, "the RESTART checkpoint never completed");
            }
            wal_sizes.push(std::fs::metadata(&wal).unwrap().len());
        }
        let first = wal_sizes[0];
        assert!(
            wal_sizes.iter().all(|size| *size <= first * 2),
            "the WAL grew with the log: {wal_sizes:?} bytes after each of {ROUNDS} rounds"
        );
        let database = std::fs::metadata(&path).unwrap().len();
        assert!(
            database > first * 4,
            "the events were not copied into the database file ({database} bytes; WAL {first})"
        );
        let appended = (per_round * ROUNDS) as u64;
        assert_eq!(store.head().position, appended);
        assert_eq!(
            store.read_all(0, 100_000).await.unwrap().len() as u64,
            appended
        );
        store.shutdown().await;
    }
}
