//! Reads of the log, on the pool of read-only connections.

use chronicle_domain::RecordedEvent;
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::Direction;

/// Decodes a row of `position, body, leaf_hash`.
pub(crate) fn decode_row(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let position = row.try_get::<i64, _>(0)? as u64;
    let body: &[u8] = row.try_get(1)?;
    let hash: &[u8] = row.try_get(2)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| StoreError::Corrupt {
        position,
        source: serde::de::Error::custom("leaf hash is not 32 bytes"),
    })?;
    RecordedEvent::from_stored(body, &hash)
        .map_err(|source| StoreError::Corrupt { position, source })
}

fn decode_rows(rows: &[SqliteRow]) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter().map(decode_row).collect()
}

pub(crate) async fn read_all(
    pool: &SqlitePool,
    after: u64,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT position, body, leaf_hash FROM events WHERE position > ? ORDER BY position LIMIT ?",
    )
    .bind(after.min(i64::MAX as u64) as i64)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    decode_rows(&rows)
}

pub(crate) async fn read_stream(
    pool: &SqlitePool,
    stream: &str,
    from_version: Option<u64>,
    limit: u32,
    direction: Direction,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let stream_id: Option<i64> = sqlx::query_scalar("SELECT stream_id FROM streams WHERE name = ?")
        .bind(stream)
        .fetch_optional(pool)
        .await?;
    let Some(stream_id) = stream_id else {
        return Ok(Vec::new());
    };
    let query = match direction {
        Direction::Forward => {
            "SELECT position, body, leaf_hash FROM events WHERE stream_id = ? AND stream_version >= ? \
             ORDER BY stream_version LIMIT ?"
        }
        Direction::Backward => {
            "SELECT position, body, leaf_hash FROM events WHERE stream_id = ? AND stream_version <= ? \
             ORDER BY stream_version DESC LIMIT ?"
        }
    };
    let from = match (direction, from_version) {
        (_, Some(version)) => version.min(i64::MAX as u64) as i64,
        (Direction::Forward, None) => 0,
        (Direction::Backward, None) => i64::MAX,
    };
    let rows = sqlx::query(query)
        .bind(stream_id)
        .bind(from)
        .bind(i64::from(limit))
        .fetch_all(pool)
        .await?;
    decode_rows(&rows)
}

pub(crate) async fn event_by_id(
    pool: &SqlitePool,
    id: Uuid,
) -> Result<Option<RecordedEvent>, StoreError> {
    let row = sqlx::query("SELECT position, body, leaf_hash FROM events WHERE id = ?")
        .bind(id.as_bytes().to_vec())
        .fetch_optional(pool)
        .await?;
    row.as_ref().map(decode_row).transpose()
}
