//! The runner: follows the log and keeps every model's table and checkpoint in step.

use std::sync::Arc;
use std::time::Duration;

use chronicle_domain::models::ReadModel;
use chronicle_store::db::{self, Access, Durability};
use chronicle_store::{Dialect, Store};
use sqlx::{AnyConnection, AnyPool, Row};
use tokio::sync::watch;

use crate::error::ProjectionError;
use crate::tables::{Model, with_model};
use crate::writer::{Parsed, apply_events, parse_batch};

/// Each model's position, in the order of [`Model::ALL`].
pub type Positions = [u64; Model::ALL.len()];

/// How the runner works.
#[derive(Debug, Clone)]
pub struct ProjectionsConfig {
    /// Events read and applied per transaction while following the log.
    pub batch_size: u32,
    /// Events read and applied per transaction by a rebuild. Larger batches load and rewrite
    /// each touched row fewer times; a rebuild holds three batches at once (one applied, two
    /// read ahead).
    pub rebuild_batch_size: u32,
    /// Read-only connections for queries.
    pub reader_connections: u32,
}

impl Default for ProjectionsConfig {
    /// Returns batches of 5,000 events while following the log (the server's memory budget
    /// holds while the models catch up with a fast ingest) and of 10,000 in a rebuild
    /// (BENCHMARKS.md: 133,000–150,000 events/s against 121,000–124,000 with 5,000; 20,000 gave
    /// 149,000–152,000 in one run, for twice the memory), and four readers.
    fn default() -> Self {
        ProjectionsConfig {
            batch_size: 5_000,
            rebuild_batch_size: 10_000,
            reader_connections: 4,
        }
    }
}

/// A handle on the read models: queries, the runner, rebuilds. Cheap to clone.
#[derive(Clone)]
pub struct Projections {
    pub(crate) store: Store,
    /// One connection: the runner's and the rebuild's writes.
    pub(crate) writer: AnyPool,
    pub(crate) readers: AnyPool,
    pub(crate) dialect: Dialect,
    positions: Arc<watch::Sender<Positions>>,
    pub(crate) batch_size: u32,
    pub(crate) rebuild_batch_size: u32,
}

impl std::fmt::Debug for Projections {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Projections")
            .field("positions", &*self.positions.borrow())
            .finish_non_exhaustive()
    }
}

impl Projections {
    /// Opens the read models in the store's database (the store's migrations made the tables).
    pub async fn open(
        store: Store,
        config: ProjectionsConfig,
    ) -> Result<Projections, ProjectionError> {
        let backend = store.backend();
        // Read models are rebuilt from the log, so losing the last commits to a power cut costs
        // a replay, not data: SQLite skips the fsync of every commit.
        let writer = backend
            .pool(Access::ReadWrite, 1, Durability::Relaxed)
            .await?;
        let readers = backend
            .pool(
                Access::ReadOnly,
                config.reader_connections,
                Durability::Relaxed,
            )
            .await?;
        let positions = read_checkpoints(&mut *writer.acquire().await?).await?;
        Ok(Projections {
            dialect: backend.dialect(),
            store,
            writer,
            readers,
            positions: Arc::new(watch::Sender::new(positions)),
            batch_size: config.batch_size.max(1),
            rebuild_batch_size: config.rebuild_batch_size.max(1),
        })
    }

    /// Returns the position each model has applied the log up to.
    pub fn positions(&self) -> Positions {
        *self.positions.borrow()
    }

    /// Returns the position `model` has applied the log up to.
    pub fn position(&self, model: Model) -> u64 {
        self.positions()[model.index()]
    }

    /// Returns a watch of [`Self::positions`], changed after each committed batch.
    pub fn subscribe(&self) -> watch::Receiver<Positions> {
        self.positions.subscribe()
    }

    /// Waits until `model` has applied the log up to `position`; false after `timeout`.
    pub async fn wait_for(&self, model: Model, position: u64, timeout: Duration) -> bool {
        let mut positions = self.subscribe();
        let reached = positions.wait_for(|positions| positions[model.index()] >= position);
        matches!(tokio::time::timeout(timeout, reached).await, Ok(Ok(_)))
    }

    /// Follows the log until `stop` turns true: catches up, then applies each new commit as
    /// the head watch announces it. A failed batch is logged and tried again.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut head = self.store.subscribe_head();
        loop {
            if *stop.borrow() {
                return;
            }
            head.borrow_and_update();
            match self.catch_up().await {
                Ok(()) => {
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        _ = stop.changed() => {}
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error, "projection batch failed; retrying");
                    // Back off before trying the same batch again, unless told to stop.
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = stop.changed() => {}
                    }
                }
            }
        }
    }

    /// Applies the log until a read finds nothing new.
    pub async fn catch_up(&self) -> Result<(), ProjectionError> {
        while self.step().await? {}
        Ok(())
    }

    /// Applies one batch; answers whether there was anything to apply.
    async fn step(&self) -> Result<bool, ProjectionError> {
        let after = self.positions().into_iter().min().unwrap_or(0);
        let events = self.store.read_all(after, self.batch_size).await?;
        if events.is_empty() {
            self.report_lag();
            return Ok(false);
        }
        let last = events.last().map_or(after, |event| event.position);
        let parsed = parse_batch(events);
        let mut connection = self.writer.acquire().await?;
        self.begin_write(&mut connection).await?;
        let applied = apply_batch(&mut connection, &parsed, last).await;
        let positions = match applied {
            Ok(positions) => positions,
            Err(error) => {
                db::rollback(&mut connection).await;
                return Err(error);
            }
        };
        self.positions.send_replace(positions);
        self.report_lag();
        Ok(true)
    }

    /// Begins a transaction that writes read models: one writer at a time, across every
    /// process on a PostgreSQL database.
    pub(crate) async fn begin_write(
        &self,
        connection: &mut AnyConnection,
    ) -> Result<(), ProjectionError> {
        self.dialect
            .begin_write(connection, db::lock_key("chronicle projections"))
            .await?;
        Ok(())
    }

    /// Publishes positions read back from the database (after a rebuild swapped tables in).
    pub(crate) async fn reload_positions(&self) -> Result<(), ProjectionError> {
        let positions = read_checkpoints(&mut *self.writer.acquire().await?).await?;
        self.positions.send_replace(positions);
        Ok(())
    }

    fn report_lag(&self) {
        let head = self.store.head().position;
        for model in Model::ALL {
            let lag = head.saturating_sub(self.positions()[model.index()]);
            metrics::gauge!("chronicle_projection_lag_events", "model" => model.name())
                .set(lag as f64);
        }
    }
}

/// Applies a batch ending at `last` to every model behind it, in the open transaction, and
/// commits. A rebuild, or another process's runner, may have moved a model on since the batch
/// was read: the checkpoints are read again under the write lock.
async fn apply_batch(
    connection: &mut AnyConnection,
    parsed: &[Parsed],
    last: u64,
) -> Result<Positions, ProjectionError> {
    let mut positions = read_checkpoints(connection).await?;
    for model in Model::ALL {
        let from = positions[model.index()];
        if from >= last {
            continue;
        }
        let batch: Vec<&Parsed> = parsed
            .iter()
            .filter(|(event, _)| event.position > from)
            .collect();
        with_model!(model, M => apply_events::<M>(connection, M::NAME, &batch).await?);
        sqlx::query("UPDATE projection_checkpoints SET position = $1 WHERE model = $2")
            .bind(last as i64)
            .bind(model.name())
            .execute(&mut *connection)
            .await?;
        positions[model.index()] = last;
    }
    sqlx::query("COMMIT").execute(&mut *connection).await?;
    Ok(positions)
}

/// Reads every model's checkpoint.
pub(crate) async fn read_checkpoints(
    connection: &mut AnyConnection,
) -> Result<Positions, ProjectionError> {
    let mut positions = [0; Model::ALL.len()];
    for row in sqlx::query("SELECT model, position FROM projection_checkpoints")
        .fetch_all(connection)
        .await?
    {
        let name: &str = row.try_get(0)?;
        if let Some(model) = Model::from_name(name) {
            positions[model.index()] = row.try_get::<i64, _>(1)? as u64;
        }
    }
    Ok(positions)
}
