//! Zero-downtime rebuild: fresh tables filled from the log while the old ones serve, then one
//! swap.

use std::collections::VecDeque;

use chronicle_store::db;
use chronicle_store::{Dialect, StoreError};
use sqlx::{AnyConnection, Row};

use crate::error::ProjectionError;
use crate::runner::Projections;
use crate::tables::{Model, with_model};
use crate::writer::{Parsed, apply_events, parse_batch};

const SHADOW_SUFFIX: &str = "__rebuild";
/// Batches read ahead of the one being applied.
const READ_AHEAD: usize = 2;
/// Index names alternate between `NAME` and `NAME__b` from one rebuild to the next: SQLite
/// cannot rename an index, and the swapped-in table keeps its copy's index names.
const INDEX_SUFFIX: &str = "__b";

impl Projections {
    /// Rebuilds `models` from the whole log into fresh tables while the current ones keep
    /// answering, then swaps each in (with its checkpoint) in one transaction. `progress` hears
    /// the number of events applied so far. Returns the position the new tables reflect.
    pub async fn rebuild(
        &self,
        models: &[Model],
        mut progress: impl FnMut(u64),
    ) -> Result<u64, ProjectionError> {
        // The writer's one connection is taken per step, so the runner keeps the live tables
        // moving between the rebuild's batches.
        let mut indexes = Vec::new();
        for &model in models {
            indexes.extend(
                create_shadow(&mut *self.writer.acquire().await?, self.dialect, model).await?,
            );
        }
        let mut applied = 0;
        // Positions are gap-free, so the batches up to the head are known ranges: the next
        // READ_AHEAD are read, decoded and parsed on other tasks while one is applied.
        let target = self.store.head().position;
        let batch_size = u64::from(self.rebuild_batch_size);
        let read_range = |after: u64, limit: u64| {
            let store = self.store.clone();
            tokio::spawn(async move {
                let events = store.read_all(after, limit as u32).await?;
                Ok::<_, StoreError>(parse_batch(events))
            })
        };
        let mut reads = VecDeque::new();
        let mut next_read = 0;
        loop {
            while reads.len() < READ_AHEAD && next_read < target {
                let limit = (target - next_read).min(batch_size);
                reads.push_back(read_range(next_read, limit));
                next_read += limit;
            }
            let Some(read) = reads.pop_front() else { break };
            let parsed = read.await.map_err(|error| {
                ProjectionError::Store(StoreError::Unavailable(format!("reading the log: {error}")))
            })??;
            applied += parsed.len() as u64;
            let mut connection = self.writer.acquire().await?;
            let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
            apply_to_shadows(&mut transaction, models, &parsed).await?;
            transaction.commit().await?;
            progress(applied);
        }
        // Then what was appended meanwhile, still without holding the write lock.
        let mut position = target;
        loop {
            let events = self
                .store
                .read_all(position, self.rebuild_batch_size)
                .await?;
            let Some(last) = events.last() else { break };
            position = last.position;
            applied += events.len() as u64;
            let mut connection = self.writer.acquire().await?;
            let mut transaction = sqlx::Connection::begin(&mut *connection).await?;
            apply_to_shadows(&mut transaction, models, &parse_batch(events)).await?;
            transaction.commit().await?;
            progress(applied);
        }
        for statement in &indexes {
            sqlx::query(statement)
                .execute(&mut *self.writer.acquire().await?)
                .await?;
        }
        // The swap: under the write lock no event can commit, so catching up to the head here
        // is finite, and the new tables go live exactly at their checkpoint.
        let mut connection = self.writer.acquire().await?;
        self.begin_write(&mut connection).await?;
        let swapped = self.swap(&mut connection, models, position).await;
        drop(connection);
        let (position, caught_up) = swapped?;
        applied += caught_up;
        progress(applied);
        self.reload_positions().await?;
        Ok(position)
    }
}

impl Projections {
    /// In the open write transaction: applies what the log gained since `position` to the
    /// copies, swaps them in with their checkpoints, and commits (or rolls back). Returns the
    /// position the new tables reflect and the events applied here.
    async fn swap(
        &self,
        connection: &mut AnyConnection,
        models: &[Model],
        mut position: u64,
    ) -> Result<(u64, u64), ProjectionError> {
        let mut applied = 0;
        let swapped: Result<(), ProjectionError> = async {
            loop {
                let events = self
                    .store
                    .read_all(position, self.rebuild_batch_size)
                    .await?;
                let Some(last) = events.last() else { break };
                position = last.position;
                applied += events.len() as u64;
                apply_to_shadows(connection, models, &parse_batch(events)).await?;
            }
            for &model in models {
                let table = model.name();
                sqlx::query(&format!("DROP TABLE {table}"))
                    .execute(&mut *connection)
                    .await?;
                sqlx::query(&format!(
                    "ALTER TABLE {table}{SHADOW_SUFFIX} RENAME TO {table}"
                ))
                .execute(&mut *connection)
                .await?;
                sqlx::query("UPDATE projection_checkpoints SET position = $1 WHERE model = $2")
                    .bind(position as i64)
                    .bind(table)
                    .execute(&mut *connection)
                    .await?;
            }
            sqlx::query("COMMIT").execute(&mut *connection).await?;
            Ok(())
        }
        .await;
        if swapped.is_err() {
            db::rollback(connection).await;
        }
        swapped.map(|()| (position, applied))
    }
}

async fn apply_to_shadows(
    connection: &mut AnyConnection,
    models: &[Model],
    parsed: &[Parsed],
) -> Result<(), ProjectionError> {
    let batch: Vec<&Parsed> = parsed.iter().collect();
    for &model in models {
        let table = format!("{}{SHADOW_SUFFIX}", model.name());
        with_model!(model, M => apply_events::<M>(connection, &table, &batch).await?);
    }
    Ok(())
}

/// Creates an empty copy of the model's table (a leftover one of a broken rebuild is dropped)
/// and returns the statements that index it like the live table, to run once it is filled.
async fn create_shadow(
    connection: &mut AnyConnection,
    dialect: Dialect,
    model: Model,
) -> Result<Vec<String>, ProjectionError> {
    let table = model.name();
    let shadow = format!("{table}{SHADOW_SUFFIX}");
    sqlx::query(&format!("DROP TABLE IF EXISTS {shadow}"))
        .execute(&mut *connection)
        .await?;
    if dialect == Dialect::Postgres {
        // PostgreSQL copies the definition, keys and indexes (named afresh) in one statement.
        sqlx::query(&format!(
            "CREATE TABLE {shadow} (LIKE {table} INCLUDING ALL)"
        ))
        .execute(&mut *connection)
        .await?;
        return Ok(Vec::new());
    }
    let rows = sqlx::query(
        "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = $1 AND sql IS NOT NULL",
    )
    .bind(table)
    .fetch_all(&mut *connection)
    .await?;
    let mut indexes = Vec::new();
    for row in rows {
        let kind: &str = row.try_get(0)?;
        let name: &str = row.try_get(1)?;
        let sql: &str = row.try_get(2)?;
        // Everything from the column list on is kept; the head names the new table or index.
        let columns = &sql[sql.find('(').unwrap_or(sql.len())..];
        if kind == "table" {
            sqlx::query(&format!("CREATE TABLE {shadow} {columns}"))
                .execute(&mut *connection)
                .await?;
        } else {
            let index = match name.strip_suffix(INDEX_SUFFIX) {
                Some(original) => original.to_owned(),
                None => format!("{name}{INDEX_SUFFIX}"),
            };
            indexes.push(format!("CREATE INDEX {index} ON {shadow} {columns}"));
        }
    }
    Ok(indexes)
}
