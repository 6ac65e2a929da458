//! Applies events to a model's table: load the rows a batch touches, fold, write them back.

use std::collections::{BTreeMap, BTreeSet};

use chronicle_domain::RecordedEvent;
use chronicle_domain::catalogue::{EventData, parse_data};
use chronicle_domain::models::State;
use chronicle_store::db::Sql;
use sqlx::{AnyConnection, Row};

use crate::error::ProjectionError;
use crate::tables::{Column, SqlModel};

/// Keys per `IN (…)` lookup and rows per multi-row `INSERT`, well under SQLite's bind limit.
const CHUNK: usize = 400;

/// An event with its typed data, parsed once for every model.
pub(crate) type Parsed = (RecordedEvent, EventData);

/// Parses each event's data once for every model; an event the catalogue cannot read (never
/// one the store accepted) is left out.
pub(crate) fn parse_batch(events: Vec<RecordedEvent>) -> Vec<Parsed> {
    events
        .into_iter()
        .filter_map(|event| {
            let data = parse_data(&event.event_type, &event.data).ok()?;
            Some((event, data))
        })
        .collect()
}

/// Applies `events` (in position order) to `table`, the table of model `M` or its rebuild copy.
pub(crate) async fn apply_events<M: SqlModel>(
    connection: &mut AnyConnection,
    table: &str,
    events: &[&Parsed],
) -> Result<(), ProjectionError> {
    let keys: BTreeSet<String> = events
        .iter()
        .flat_map(|(event, data)| M::keys(event, data))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let mut rows = if M::APPEND_ONLY {
        State::new()
    } else {
        load::<M>(connection, table, &keys).await?
    };
    for (event, data) in events {
        M::apply(&mut rows, event, data);
    }
    let gone: Vec<&String> = keys.iter().filter(|key| !rows.contains_key(*key)).collect();
    for key in gone {
        sqlx::query(&format!("DELETE FROM {table} WHERE key = $1"))
            .bind(key)
            .execute(&mut *connection)
            .await?;
    }
    write::<M>(connection, table, &rows).await
}

/// Loads the existing rows of these keys.
async fn load<M: SqlModel>(
    connection: &mut AnyConnection,
    table: &str,
    keys: &BTreeSet<String>,
) -> Result<State<M::Row>, ProjectionError> {
    let keys: Vec<&String> = keys.iter().collect();
    let mut rows = BTreeMap::new();
    for chunk in keys.chunks(CHUNK) {
        let mut query = Sql::new(format!("SELECT key, doc FROM {table} WHERE key IN "));
        query.bind_list(chunk.iter().map(|key| key.as_str()));
        for row in query.fetch_all(&mut *connection).await? {
            let key: String = row.try_get(0)?;
            let doc: &str = row.try_get(1)?;
            let value = serde_json::from_str(doc).map_err(|source| ProjectionError::Corrupt {
                model: M::NAME,
                source,
            })?;
            rows.insert(key, value);
        }
    }
    Ok(rows)
}

/// Inserts or replaces these rows.
pub(crate) async fn write<M: SqlModel>(
    connection: &mut AnyConnection,
    table: &str,
    rows: &State<M::Row>,
) -> Result<(), ProjectionError> {
    let rows: Vec<(&String, &M::Row)> = rows.iter().collect();
    let columns: Vec<&str> = ["workspace", "sort", "doc"]
        .into_iter()
        .chain(M::COLUMNS.iter().copied())
        .collect();
    let head = format!("INSERT INTO {table} (key, {}) ", columns.join(", "));
    let updates: Vec<String> = columns
        .iter()
        .map(|column| format!("{column} = excluded.{column}"))
        .collect();
    let tail = format!(" ON CONFLICT (key) DO UPDATE SET {}", updates.join(", "));
    for chunk in rows.chunks(CHUNK) {
        let mut query = Sql::new(head.as_str());
        let mut failure = None;
        query.values(chunk, |mut values, (key, row)| {
            let doc = serde_json::to_string(row).unwrap_or_else(|error| {
                failure = Some(error);
                String::new()
            });
            values
                .bind(key.as_str())
                .bind(M::workspace(row).to_owned())
                .bind(M::sort_key(key, row))
                .bind(doc);
            for column in M::columns(row) {
                match column {
                    Column::Text(text) => values.bind(text),
                    Column::Integer(number) => values.bind(number),
                };
            }
        });
        query.push(&tail);
        if let Some(source) = failure {
            return Err(ProjectionError::Corrupt {
                model: M::NAME,
                source,
            });
        }
        query.execute(&mut *connection).await?;
    }
    Ok(())
}
