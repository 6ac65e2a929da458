//! The audit of the audit: every search, export and evidence bundle is itself recorded, as an
//! `audit.searched`, `audit.exported` or `evidence.exported` event in the workspace it read
//! (stream `audit-<workspace>`).
//!
//! Producers may not send these types (the domain refuses them), so Chronicle builds the event
//! itself, after checking its data against the catalogue like any other.

use chronicle_domain::catalogue::parse_data;
use chronicle_domain::{
    Actor, Context, ExpectedVersion, NewEvent, PreparedEvent, SUBMITTED_BY_CHRONICLE,
    format_timestamp,
};
use chronicle_store::{Appended, Store};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::SearchError;

/// One answered search, to record.
#[derive(Debug, Clone)]
pub struct SearchRecord {
    /// The workspace searched: the record goes to its `audit-<workspace>` stream.
    pub workspace: String,
    /// The query as the caller wrote it.
    pub query: String,
    /// The start of the `occurred_at` range searched, if any.
    pub from: Option<OffsetDateTime>,
    /// The end of the `occurred_at` range searched, if any.
    pub to: Option<OffsetDateTime>,
    /// How many events the search matched.
    pub hits: u64,
    /// Who asked: the token, or the operator's command line.
    pub actor: Actor,
    /// The request behind the search: its id and source address when known.
    pub context: Context,
}

/// One event of the audit of the audit (`audit.searched`, `audit.exported`,
/// `evidence.exported`), to append to the workspace it read.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// The workspace read: the record goes to its `audit-<workspace>` stream.
    pub workspace: String,
    /// The catalogue type of the record.
    pub event_type: &'static str,
    /// The type's data, checked against the catalogue before it is appended.
    pub data: Map<String, Value>,
    /// Who asked: the token, or the operator's command line.
    pub actor: Actor,
    /// The request behind the read: its id and source address when known.
    pub context: Context,
}

/// Adds the optional `from` and `to` of a range read to a record's data.
pub fn insert_range(
    data: &mut Map<String, Value>,
    from: Option<OffsetDateTime>,
    to: Option<OffsetDateTime>,
) {
    if let Some(from) = from {
        data.insert("from".into(), json!(format_timestamp(from)));
    }
    if let Some(to) = to {
        data.insert("to".into(), json!(format_timestamp(to)));
    }
}

/// Appends the `audit.searched` event of a search that has been answered.
pub async fn record_search(
    store: &Store,
    record: SearchRecord,
    now: OffsetDateTime,
) -> Result<Appended, SearchError> {
    let mut data = Map::new();
    data.insert("query".into(), json!(record.query));
    insert_range(&mut data, record.from, record.to);
    data.insert("hits".into(), json!(record.hits));
    let record = AuditRecord {
        workspace: record.workspace,
        event_type: "audit.searched",
        data,
        actor: record.actor,
        context: record.context,
    };
    record_audit(store, record, now).await
}

/// Appends one event of the audit of the audit, after checking its data against the catalogue.
pub async fn record_audit(
    store: &Store,
    record: AuditRecord,
    now: OffsetDateTime,
) -> Result<Appended, SearchError> {
    let data = Value::Object(record.data);
    parse_data(record.event_type, &data)
        .map_err(|error| SearchError::Internal(format!("{} data: {error}", record.event_type)))?;
    let event = NewEvent {
        id: Uuid::now_v7(),
        stream: format!("audit-{}", record.workspace),
        event_type: record.event_type.into(),
        workspace: Some(record.workspace),
        occurred_at: format_timestamp(now),
        actor: record.actor,
        context: record.context,
        data,
        expected_version: ExpectedVersion::Any,
        submitted_by: None,
    };
    let mut appended = store
        .append(vec![PreparedEvent::new(event, SUBMITTED_BY_CHRONICLE)])
        .await?;
    appended
        .pop()
        .ok_or_else(|| SearchError::Internal("the store answered no place".into()))
}
