//! Parquet: typed columns for the envelope, `data` as a JSON string column, ZSTD (but for the
//! incompressible leaf hash), row groups of about 128k rows, dictionary encoding on the columns
//! with few distinct values, delta encoding on the counters and times that grow row by row, and
//! the id and leaf hash as their raw 16 and 32 bytes (a UUID column and a binary one), not text.
//!
//! Every field of the recorded event has its column, so a row reads back into the very event
//! ([`read_parquet`]): the bundle verifier compares the Parquet file with the NDJSON that way.

use std::fmt::Write as _;
use std::io::Write;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, FixedSizeBinaryArray, FixedSizeBinaryBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampNanosecondArray, TimestampNanosecondBuilder, UInt16Array,
    UInt16Builder, UInt64Array, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_schema::extension::Uuid as UuidExtension;
use chronicle_domain::merkle::{from_hex, to_hex};
use chronicle_domain::{Actor, Context, RecordedEvent, format_timestamp, parse_timestamp};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::error::EvidenceError;

/// Rows a row group holds at most.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// The columns with few distinct values, dictionary-encoded.
const DICTIONARY_COLUMNS: [&str; 12] = [
    "stream",
    "type",
    "workspace",
    "actor_kind",
    "actor_id",
    "actor_name",
    "source_ip",
    "user_agent",
    "auth_method",
    "transport",
    "response_code",
    "submitted_by",
];

/// The columns that grow (or mostly grow) row by row, delta-encoded without a dictionary.
const DELTA_COLUMNS: [&str; 5] = [
    "position",
    "workspace_seq",
    "stream_version",
    "occurred_at",
    "recorded_at",
];

/// Returns the Arrow schema of an export: one column per field of the recorded event.
pub fn parquet_schema() -> SchemaRef {
    let time = || DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("position", DataType::UInt64, false),
        Field::new("workspace_seq", DataType::UInt64, true),
        Field::new("id", DataType::FixedSizeBinary(16), false).with_extension_type(UuidExtension),
        Field::new("stream", DataType::Utf8, false),
        Field::new("stream_version", DataType::UInt64, false),
        Field::new("type", DataType::Utf8, false),
        Field::new("workspace", DataType::Utf8, true),
        Field::new("occurred_at", time(), false),
        Field::new("recorded_at", time(), false),
        Field::new("actor_kind", DataType::Utf8, false),
        Field::new("actor_id", DataType::Utf8, false),
        Field::new("actor_name", DataType::Utf8, true),
        Field::new("request_id", DataType::Utf8, true),
        Field::new("source_ip", DataType::Utf8, true),
        Field::new("user_agent", DataType::Utf8, true),
        Field::new("auth_method", DataType::Utf8, true),
        Field::new("transport", DataType::Utf8, true),
        Field::new("response_code", DataType::UInt16, true),
        Field::new("duration_ms", DataType::UInt64, true),
        Field::new("data", DataType::Utf8, false),
        Field::new("submitted_by", DataType::Utf8, true),
        Field::new("leaf_hash", DataType::FixedSizeBinary(32), true),
    ]))
}

/// Writes events as Parquet, page by page; rows are buffered up to a row group at most.
pub struct ParquetWriter<W: Write + Send> {
    out: ArrowWriter<W>,
    schema: SchemaRef,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// Starts a Parquet export into `sink`.
    pub fn new(sink: W) -> Result<ParquetWriter<W>, EvidenceError> {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
            .set_dictionary_enabled(false)
            .set_created_by("chronicle".into());
        for column in DICTIONARY_COLUMNS {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(column), true);
        }
        for column in DELTA_COLUMNS {
            properties = properties
                .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
        }
        // SHA-256 output does not compress: ZSTD would only spend time on it.
        properties = properties
            .set_column_compression(ColumnPath::from("leaf_hash"), Compression::UNCOMPRESSED);
        let schema = parquet_schema();
        let out = ArrowWriter::try_new(sink, schema.clone(), Some(properties.build()))?;
        Ok(ParquetWriter { out, schema })
    }

    /// Writes one page of events.
    pub fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), EvidenceError> {
        if events.is_empty() {
            return Ok(());
        }
        let batch = record_batch(&self.schema, events)?;
        self.out.write(&batch)?;
        Ok(())
    }

    /// Writes the last row group and the footer, and returns the sink.
    pub fn finish(self) -> Result<W, EvidenceError> {
        Ok(self.out.into_inner()?)
    }
}

/// Builds the columns of one page.
fn record_batch(
    schema: &SchemaRef,
    events: &[RecordedEvent],
) -> Result<RecordBatch, EvidenceError> {
    let rows = events.len();
    let strings = || StringBuilder::with_capacity(rows, rows * 16);
    let mut position = UInt64Builder::with_capacity(rows);
    let mut workspace_seq = UInt64Builder::with_capacity(rows);
    let mut id = FixedSizeBinaryBuilder::with_capacity(rows, 16);
    let mut stream = strings();
    let mut stream_version = UInt64Builder::with_capacity(rows);
    let mut event_type = strings();
    let mut workspace = strings();
    let mut occurred_at = TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut recorded_at = TimestampNanosecondBuilder::with_capacity(rows).with_timezone("UTC");
    let mut actor_kind = strings();
    let mut actor_id = strings();
    let mut actor_name = strings();
    let mut request_id = strings();
    let mut source_ip = strings();
    let mut user_agent = strings();
    let mut auth_method = strings();
    let mut transport = strings();
    let mut response_code = UInt16Builder::with_capacity(rows);
    let mut duration_ms = UInt64Builder::with_capacity(rows);
    let mut data = StringBuilder::with_capacity(rows, rows * 128);
    let mut submitted_by = strings();
    let mut leaf_hash = FixedSizeBinaryBuilder::with_capacity(rows, 32);
    // Each event's JSON is written here, then copied into its column: no string per event.
    let mut scratch = Vec::with_capacity(1024);
    for event in events {
        position.append_value(event.position);
        workspace_seq.append_option(event.workspace_seq);
        id.append_value(event.id.as_bytes())?;
        stream.append_value(&event.stream);
        stream_version.append_value(event.stream_version);
        event_type.append_value(&event.event_type);
        workspace.append_option(event.workspace.as_deref());
        occurred_at.append_value(nanoseconds(event, "occurred_at", &event.occurred_at)?);
        recorded_at.append_value(nanoseconds(event, "recorded_at", &event.recorded_at)?);
        actor_kind.append_value(enum_name(&event.actor.kind, &mut scratch)?);
        actor_id.append_value(&event.actor.id);
        actor_name.append_option(event.actor.name.as_deref());
        let context = &event.context;
        request_id.append_option(context.request_id.as_deref());
        match context.source_ip {
            Some(ip) => {
                write!(source_ip, "{ip}").map_err(|_| unwritable(event, "source_ip"))?;
                source_ip.append_value("");
            }
            None => source_ip.append_null(),
        }
        user_agent.append_option(context.user_agent.as_deref());
        match &context.auth_method {
            Some(method) => auth_method.append_value(enum_name(method, &mut scratch)?),
            None => auth_method.append_null(),
        }
        match &context.transport {
            Some(channel) => transport.append_value(enum_name(channel, &mut scratch)?),
            None => transport.append_null(),
        }
        response_code.append_option(context.response_code);
        duration_ms.append_option(context.duration_ms);
        data.append_value(
            json(&event.data, &mut scratch).ok_or_else(|| unwritable(event, "data"))?,
        );
        submitted_by.append_option(event.submitted_by.as_deref());
        match hash_bytes(event)? {
            Some(hash) => leaf_hash.append_value(hash)?,
            None => leaf_hash.append_null(),
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(position.finish()),
        Arc::new(workspace_seq.finish()),
        Arc::new(id.finish()),
        Arc::new(stream.finish()),
        Arc::new(stream_version.finish()),
        Arc::new(event_type.finish()),
        Arc::new(workspace.finish()),
        Arc::new(occurred_at.finish()),
        Arc::new(recorded_at.finish()),
        Arc::new(actor_kind.finish()),
        Arc::new(actor_id.finish()),
        Arc::new(actor_name.finish()),
        Arc::new(request_id.finish()),
        Arc::new(source_ip.finish()),
        Arc::new(user_agent.finish()),
        Arc::new(auth_method.finish()),
        Arc::new(transport.finish()),
        Arc::new(response_code.finish()),
        Arc::new(duration_ms.finish()),
        Arc::new(data.finish()),
        Arc::new(submitted_by.finish()),
        Arc::new(leaf_hash.finish()),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The 32 bytes of the event's leaf hash, none for an event not sealed yet (an empty hash).
///
/// Only the lowercase hex the store writes is taken, so the bytes read back into the very text.
fn hash_bytes(event: &RecordedEvent) -> Result<Option<[u8; 32]>, EvidenceError> {
    let text = &event.leaf_hash;
    if text.is_empty() {
        return Ok(None);
    }
    match from_hex(text) {
        Some(hash) if !text.bytes().any(|byte| byte.is_ascii_uppercase()) => Ok(Some(hash)),
        _ => Err(EvidenceError::Unexportable {
            position: event.position,
            reason: format!("leaf_hash {text} is not 64 lowercase hex digits"),
        }),
    }
}

/// Nanoseconds since the epoch; Parquet's timestamps hold the years 1677 to 2262.
fn nanoseconds(event: &RecordedEvent, field: &str, text: &str) -> Result<i64, EvidenceError> {
    parse_timestamp(text)
        .ok()
        .and_then(|time| i64::try_from(time.unix_timestamp_nanos()).ok())
        .ok_or_else(|| EvidenceError::Unexportable {
            position: event.position,
            reason: format!("{field} {text} is outside the years a Parquet timestamp holds"),
        })
}

/// `value` as JSON text, written over what `scratch` held.
fn json<'a, T: Serialize>(value: &T, scratch: &'a mut Vec<u8>) -> Option<&'a str> {
    scratch.clear();
    serde_json::to_writer(&mut *scratch, value).ok()?;
    std::str::from_utf8(scratch).ok()
}

/// The snake_case name an enum of the envelope has in JSON (`api_token`, `oauth`), written
/// over what `scratch` held.
fn enum_name<'a, T: Serialize>(
    value: &T,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a str, EvidenceError> {
    json(value, scratch)
        .and_then(|text| text.strip_prefix('"')?.strip_suffix('"'))
        .ok_or_else(|| EvidenceError::Internal("an enum of the envelope is not a name".into()))
}

/// The error for a field of `event` that could not be written as text.
fn unwritable(event: &RecordedEvent, field: &str) -> EvidenceError {
    EvidenceError::Unexportable {
        position: event.position,
        reason: format!("{field} could not be written as text"),
    }
}

/// Reads the events back from the Parquet bytes of an export: every row, in order.
///
/// Fails, saying why, on a file that is not such an export.
pub fn read_parquet(bytes: bytes::Bytes) -> Result<Vec<RecordedEvent>, String> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
        .map_err(|error| format!("not a Parquet file: {error}"))?
        .with_batch_size(8 * 1024)
        .build()
        .map_err(|error| format!("cannot read the Parquet file: {error}"))?;
    let mut events = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|error| format!("cannot read the Parquet file: {error}"))?;
        let columns = Columns::of(&batch)?;
        for row in 0..batch.num_rows() {
            events.push(columns.event(row)?);
        }
    }
    Ok(events)
}

/// The typed columns of one record batch.
struct Columns<'a> {
    position: &'a UInt64Array,
    workspace_seq: &'a UInt64Array,
    id: &'a FixedSizeBinaryArray,
    stream: &'a StringArray,
    stream_version: &'a UInt64Array,
    event_type: &'a StringArray,
    workspace: &'a StringArray,
    occurred_at: &'a TimestampNanosecondArray,
    recorded_at: &'a TimestampNanosecondArray,
    actor_kind: &'a StringArray,
    actor_id: &'a StringArray,
    actor_name: &'a StringArray,
    request_id: &'a StringArray,
    source_ip: &'a StringArray,
    user_agent: &'a StringArray,
    auth_method: &'a StringArray,
    transport: &'a StringArray,
    response_code: &'a UInt16Array,
    duration_ms: &'a UInt64Array,
    data: &'a StringArray,
    submitted_by: &'a StringArray,
    leaf_hash: &'a FixedSizeBinaryArray,
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    batch
        .column_by_name(name)
        .and_then(|column| column.as_any().downcast_ref::<T>())
        .ok_or_else(|| format!("the Parquet file has no column `{name}` of the export's type"))
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Columns<'a>, String> {
        Ok(Columns {
            position: column(batch, "position")?,
            workspace_seq: column(batch, "workspace_seq")?,
            id: column(batch, "id")?,
            stream: column(batch, "stream")?,
            stream_version: column(batch, "stream_version")?,
            event_type: column(batch, "type")?,
            workspace: column(batch, "workspace")?,
            occurred_at: column(batch, "occurred_at")?,
            recorded_at: column(batch, "recorded_at")?,
            actor_kind: column(batch, "actor_kind")?,
            actor_id: column(batch, "actor_id")?,
            actor_name: column(batch, "actor_name")?,
            request_id: column(batch, "request_id")?,
            source_ip: column(batch, "source_ip")?,
            user_agent: column(batch, "user_agent")?,
            auth_method: column(batch, "auth_method")?,
            transport: column(batch, "transport")?,
            response_code: column(batch, "response_code")?,
            duration_ms: column(batch, "duration_ms")?,
            data: column(batch, "data")?,
            submitted_by: column(batch, "submitted_by")?,
            leaf_hash: column(batch, "leaf_hash")?,
        })
    }

    fn event(&self, row: usize) -> Result<RecordedEvent, String> {
        let text = |array: &StringArray| array.is_valid(row).then(|| array.value(row).to_owned());
        let number = |array: &UInt64Array| array.is_valid(row).then(|| array.value(row));
        let required = |array: &StringArray, name: &str| {
            text(array).ok_or_else(|| format!("row {row}: `{name}` is empty"))
        };
        let time = |array: &TimestampNanosecondArray, name: &str| {
            array
                .is_valid(row)
                .then(|| OffsetDateTime::from_unix_timestamp_nanos(i128::from(array.value(row))))
                .and_then(Result::ok)
                .map(format_timestamp)
                .ok_or_else(|| format!("row {row}: `{name}` is not a time"))
        };
        let data = required(self.data, "data")?;
        let id = uuid::Uuid::from_slice(self.id.value(row))
            .map_err(|_| format!("row {row}: `id` is not 16 bytes"))?;
        let leaf_hash = match self.leaf_hash.is_valid(row) {
            true => to_hex(
                self.leaf_hash
                    .value(row)
                    .try_into()
                    .map_err(|_| format!("row {row}: `leaf_hash` is not 32 bytes"))?,
            ),
            false => String::new(),
        };
        Ok(RecordedEvent {
            position: self.position.value(row),
            workspace_seq: number(self.workspace_seq),
            id,
            stream: required(self.stream, "stream")?,
            stream_version: self.stream_version.value(row),
            event_type: required(self.event_type, "type")?,
            workspace: text(self.workspace),
            occurred_at: time(self.occurred_at, "occurred_at")?,
            recorded_at: time(self.recorded_at, "recorded_at")?,
            actor: Actor {
                kind: decode(&required(self.actor_kind, "actor_kind")?, row, "actor_kind")?,
                id: required(self.actor_id, "actor_id")?,
                name: text(self.actor_name),
            },
            context: Context {
                request_id: text(self.request_id),
                source_ip: text(self.source_ip)
                    .map(|ip| ip.parse())
                    .transpose()
                    .map_err(|_| format!("row {row}: `source_ip` is not an address"))?,
                user_agent: text(self.user_agent),
                auth_method: text(self.auth_method)
                    .map(|name| decode(&name, row, "auth_method"))
                    .transpose()?,
                transport: text(self.transport)
                    .map(|name| decode(&name, row, "transport"))
                    .transpose()?,
                response_code: self
                    .response_code
                    .is_valid(row)
                    .then(|| self.response_code.value(row)),
                duration_ms: number(self.duration_ms),
            },
            data: serde_json::from_str(&data)
                .map_err(|error| format!("row {row}: `data` is not JSON: {error}"))?,
            submitted_by: text(self.submitted_by),
            leaf_hash,
        })
    }
}

fn decode<T: DeserializeOwned>(name: &str, row: usize, column: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("row {row}: `{column}` holds `{name}`, not a known value"))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// An event with every enum value of the envelope somewhere, both kinds of address, and
    /// text that must be escaped in JSON.
    fn event(position: u64, kind: &str, method: Option<&str>, transport: Option<&str>) -> Value {
        let address = match position % 3 {
            0 => Value::Null,
            1 => json!("203.0.113.40"),
            _ => json!("2001:db8::7"),
        };
        let mut context = json!({"request_id": format!("req_{position}"), "response_code": 200});
        for (field, value) in [
            ("source_ip", address),
            ("auth_method", json!(method)),
            ("transport", json!(transport)),
        ] {
            if !value.is_null() {
                context[field] = value;
            }
        }
        let workspaced = position.is_multiple_of(2);
        json!({
            "position": position,
            "workspace_seq": workspaced.then_some(position),
            "workspace": workspaced.then_some("ws_acme"),
            "id": uuid::Uuid::from_u128(u128::from(position)).to_string(),
            "stream": format!("machine-m{position}"),
            "stream_version": 1,
            "type": "machine.renamed",
            "occurred_at": "2026-09-01T00:02:40.879Z",
            "recorded_at": "2026-11-24T23:03:45.613123Z",
            "actor": {"kind": kind, "id": "usr_1"},
            "context": context,
            "data": {"from": "web,\"01\"\nsecond line", "to": "café ☃", "n": -1.5},
            "leaf_hash": if position == 1 { String::new() } else { to_hex(&[position as u8; 32]) },
        })
    }

    #[test]
    fn every_enum_value_address_and_escaped_text_reads_back_as_written() {
        let kinds = ["member", "api_token", "system", "share_link", "agent"];
        let methods = [
            None,
            Some("password"),
            Some("oauth"),
            Some("sso"),
            Some("api_key"),
        ];
        let more_methods = [Some("share_link"), Some("agent_key")];
        let transports = [
            None,
            Some("rest"),
            Some("websocket"),
            Some("grpc"),
            Some("cli"),
        ];
        let mut expected = Vec::new();
        for (index, method) in methods.iter().chain(&more_methods).enumerate() {
            let kind = kinds[index % kinds.len()];
            let transport = transports[index % transports.len()];
            expected.push(event(index as u64 + 1, kind, *method, transport));
        }
        let events: Vec<RecordedEvent> = expected
            .iter()
            .map(|value| serde_json::from_value(value.clone()).unwrap())
            .collect();
        let mut writer = ParquetWriter::new(Vec::new()).unwrap();
        writer.write_page(&events[..3]).unwrap();
        writer.write_page(&events[3..]).unwrap();
        let bytes = writer.finish().unwrap();
        let read: Vec<Value> = read_parquet(bytes.into())
            .unwrap()
            .iter()
            .map(|event| serde_json::to_value(event).unwrap())
            .collect();
        assert_eq!(read, expected);
    }

    #[test]
    fn a_leaf_hash_in_capitals_is_refused_naming_the_event() {
        let mut value = event(7, "member", None, None);
        value["leaf_hash"] = json!(to_hex(&[0xab; 32]).to_uppercase());
        let event: RecordedEvent = serde_json::from_value(value).unwrap();
        let mut writer = ParquetWriter::new(Vec::new()).unwrap();
        match writer.write_page(&[event]) {
            Err(EvidenceError::Unexportable {
                position: 7,
                reason,
            }) => {
                assert!(reason.contains("leaf_hash"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
    }
}
