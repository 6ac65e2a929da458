//! Reads of the log, on the pool of read-only connections.

use chronicle_domain::{RecordedEvent, stream_key};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use uuid::Uuid;

use crate::db::Sql;
use crate::error::StoreError;
use crate::store::Direction;

/// Decodes a row of `position, body, leaf_hash`.
pub(crate) fn decode_row(row: &AnyRow) -> Result<RecordedEvent, StoreError> {
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

fn decode_rows(rows: &[AnyRow]) -> Result<Vec<RecordedEvent>, StoreError> {
    rows.iter().map(decode_row).collect()
}

pub(crate) async fn read_all(
    pool: &AnyPool,
    after: u64,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(
        "SELECT position, body, leaf_hash FROM events WHERE position > $1 ORDER BY position LIMIT $2",
    )
    .bind(after.min(i64::MAX as u64) as i64)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    decode_rows(&rows)
}

pub(crate) async fn read_stream(
    pool: &AnyPool,
    workspace: Option<&str>,
    stream: &str,
    from_version: Option<u64>,
    limit: u32,
    direction: Direction,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let stream_id: Option<i64> =
        sqlx::query_scalar("SELECT stream_id FROM streams WHERE name = $1")
            .bind(stream_key(workspace, stream))
            .fetch_optional(pool)
            .await?;
    let Some(stream_id) = stream_id else {
        return Ok(Vec::new());
    };
    // The entries in stream_index, then the events of the tail not merged into it yet (fewer
    // than `StoreConfig::stream_merge_events`, scanned by position); the tail's versions all
    // follow the merged ones.
    let query = match direction {
        Direction::Forward => {
            "SELECT position, body, leaf_hash FROM events WHERE position IN (\
             SELECT position FROM (SELECT position FROM stream_index WHERE stream_id = $1 \
             AND stream_version >= $2 ORDER BY stream_version LIMIT $3) AS merged \
             UNION ALL SELECT position FROM events \
             WHERE position > (SELECT merged_through FROM stream_index_state) \
             AND stream_id = $1 AND stream_version >= $2) \
             ORDER BY stream_version LIMIT $3"
        }
        Direction::Backward => {
            "SELECT position, body, leaf_hash FROM events WHERE position IN (\
             SELECT position FROM (SELECT position FROM stream_index WHERE stream_id = $1 \
             AND stream_version <= $2 ORDER BY stream_version DESC LIMIT $3) AS merged \
             UNION ALL SELECT position FROM events \
             WHERE position > (SELECT merged_through FROM stream_index_state) \
             AND stream_id = $1 AND stream_version <= $2) \
             ORDER BY stream_version DESC LIMIT $3"
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

/// Returns the events at these positions, in the order asked; positions past the log are
/// skipped.
pub(crate) async fn events_at(
    pool: &AnyPool,
    positions: &[u64],
) -> Result<Vec<RecordedEvent>, StoreError> {
    if positions.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = Sql::new("SELECT position, body, leaf_hash FROM events WHERE position IN ");
    query.bind_list(
        positions
            .iter()
            .map(|&position| position.min(i64::MAX as u64) as i64),
    );
    let rows = query.fetch_all(&mut *pool.acquire().await?).await?;
    let mut found: std::collections::HashMap<u64, RecordedEvent> = decode_rows(&rows)?
        .into_iter()
        .map(|event| (event.position, event))
        .collect();
    Ok(positions
        .iter()
        .filter_map(|position| found.remove(position))
        .collect())
}

/// Returns the event of this id in this workspace (`None`: the events of no workspace).
pub(crate) async fn event_by_id(
    pool: &AnyPool,
    workspace: Option<&str>,
    id: Uuid,
) -> Result<Option<RecordedEvent>, StoreError> {
    let row = sqlx::query(
        "SELECT position, body, leaf_hash FROM events WHERE id = $1 \
         AND COALESCE(workspace_id, 0) = COALESCE((SELECT workspace_id FROM workspaces \
         WHERE name = $2), 0)",
    )
    .bind(id.as_bytes().to_vec())
    .bind(workspace.unwrap_or(""))
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(decode_row).transpose()
}

/// True when an event was ever appended in this workspace.
pub(crate) async fn workspace_exists(pool: &AnyPool, workspace: &str) -> Result<bool, StoreError> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT workspace_id FROM workspaces WHERE name = $1")
            .bind(workspace)
            .fetch_optional(pool)
            .await?;
    Ok(found.is_some())
}

/// Returns at most `limit` events of one workspace after log position `after`, in order.
///
/// The `(workspace_id, workspace_seq)` index finds them: positions grow with the workspace
/// sequence, so the first sequence number past `after` is found by searching over it, each probe
/// one indexed lookup, never a scan of the workspace.
pub(crate) async fn read_workspace(
    pool: &AnyPool,
    workspace: &str,
    after: u64,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut connection = pool.acquire().await?;
    let Some((workspace_id, last_seq)) = workspace_row(&mut connection, workspace).await? else {
        return Ok(Vec::new());
    };
    let Some(first_seq) = first_seq_after(&mut connection, workspace_id, last_seq, after).await?
    else {
        return Ok(Vec::new());
    };
    let rows = sqlx::query(
        "SELECT position, body, leaf_hash FROM events WHERE workspace_id = $1 AND workspace_seq >= $2 \
         ORDER BY workspace_seq LIMIT $3",
    )
    .bind(workspace_id)
    .bind(first_seq as i64)
    .bind(i64::from(limit))
    .fetch_all(&mut *connection)
    .await?;
    decode_rows(&rows)
}

/// Returns a workspace's id and its newest sequence number, `None` when it has no events.
async fn workspace_row(
    connection: &mut AnyConnection,
    workspace: &str,
) -> Result<Option<(i64, u64)>, StoreError> {
    let row = sqlx::query("SELECT workspace_id, seq FROM workspaces WHERE name = $1")
        .bind(workspace)
        .fetch_optional(&mut *connection)
        .await?;
    row.map(|row| Ok((row.try_get(0)?, row.try_get::<i64, _>(1)? as u64)))
        .transpose()
}

/// Returns how many of the workspace's events lie after log position `after`, in O(log n)
/// indexed lookups.
pub(crate) async fn count_workspace_after(
    pool: &AnyPool,
    workspace: &str,
    after: u64,
) -> Result<u64, StoreError> {
    let mut connection = pool.acquire().await?;
    let Some((workspace_id, last_seq)) = workspace_row(&mut connection, workspace).await? else {
        return Ok(0);
    };
    let first = first_seq_after(&mut connection, workspace_id, last_seq, after).await?;
    Ok(first.map_or(0, |first| last_seq - first + 1))
}

/// Returns the first workspace sequence number (up to `last_seq`) whose event lies after
/// position `after`, or `None` when there is none.
///
/// Followers (live streams, webhooks) ask for what is near the newest event, so the search
/// gallops back from `last_seq` (1, 2, 4 … sequence numbers) to bracket the answer, then halves
/// the bracket: O(log k) probes for k events after `after`, O(log n) at worst.
async fn first_seq_after(
    connection: &mut AnyConnection,
    workspace_id: i64,
    last_seq: u64,
    after: u64,
) -> Result<Option<u64>, StoreError> {
    if last_seq == 0 || position_at_seq(connection, workspace_id, last_seq).await? <= after {
        return Ok(None);
    }
    if after == 0 {
        return Ok(Some(1));
    }
    // Invariant: the event at `high` lies after `after`; the one at `low` does not (seq 0 stands
    // for "before the first event").
    let mut high = last_seq;
    let mut low = 0;
    let mut step = 1;
    while step < high {
        let probe = high - step;
        if position_at_seq(connection, workspace_id, probe).await? <= after {
            low = probe;
            break;
        }
        high = probe;
        step *= 2;
    }
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if position_at_seq(connection, workspace_id, middle).await? > after {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(Some(high))
}

async fn position_at_seq(
    connection: &mut AnyConnection,
    workspace_id: i64,
    seq: u64,
) -> Result<u64, StoreError> {
    let position: i64 = sqlx::query_scalar(
        "SELECT position FROM events WHERE workspace_id = $1 AND workspace_seq = $2",
    )
    .bind(workspace_id)
    .bind(seq as i64)
    .fetch_one(connection)
    .await?;
    Ok(position as u64)
}
