//! CSV: one row an event, for spreadsheets. The envelope's fields are columns; the targets the
//! event names are gathered into one; `data` is its JSON.

use std::io::Write;

use chronicle_domain::RecordedEvent;
use serde_json::Value;

use crate::error::EvidenceError;

/// The header row.
pub const CSV_COLUMNS: [&str; 15] = [
    "position",
    "recorded_at",
    "occurred_at",
    "type",
    "actor",
    "actor_name",
    "targets",
    "ip",
    "request_id",
    "workspace",
    "stream",
    "stream_version",
    "workspace_seq",
    "id",
    "data",
];

/// Writes events as CSV (RFC 4180 quoting through the `csv` crate), page by page.
pub struct CsvWriter<W: Write> {
    out: csv::Writer<W>,
}

impl<W: Write> CsvWriter<W> {
    /// Starts a CSV export into `sink` with its header row.
    pub fn new(sink: W) -> Result<CsvWriter<W>, EvidenceError> {
        let mut out = csv::WriterBuilder::new()
            .buffer_capacity(64 * 1024)
            .from_writer(sink);
        out.write_record(
            CSV_COLUMNS
                .map(spreadsheet_safe)
                .iter()
                .map(|cell| cell.as_bytes()),
        )?;
        Ok(CsvWriter { out })
    }

    /// Writes one page of events, a row each; every cell goes through [`spreadsheet_safe`].
    pub fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), EvidenceError> {
        for event in events {
            let optional = |value: Option<u64>| value.map(|n| n.to_string()).unwrap_or_default();
            // One statement: the cells borrow temporaries that live until its end.
            self.out.write_record(
                [
                    event.position.to_string().as_str(),
                    &event.recorded_at,
                    &event.occurred_at,
                    &event.event_type,
                    &event.actor.id,
                    event.actor.name.as_deref().unwrap_or_default(),
                    &targets(event),
                    &event
                        .context
                        .source_ip
                        .map(|ip| ip.to_string())
                        .unwrap_or_default(),
                    event.context.request_id.as_deref().unwrap_or_default(),
                    event.workspace.as_deref().unwrap_or_default(),
                    &event.stream,
                    &event.stream_version.to_string(),
                    &optional(event.workspace_seq),
                    &event.id.to_string(),
                    &event.data.to_string(),
                ]
                .map(spreadsheet_safe)
                .iter()
                .map(|cell| cell.as_bytes()),
            )?;
        }
        Ok(())
    }

    /// Flushes what is buffered and returns the sink.
    pub fn finish(self) -> Result<W, EvidenceError> {
        self.out
            .into_inner()
            .map_err(|error| EvidenceError::Io(error.into_error()))
    }
}

/// A cell a spreadsheet will not read as a formula: one that starts with `=`, `+`, `-`, `@`, a
/// tab or a carriage return gets a `'` in front (so `-5` is written `'-5`), as OWASP advises
/// against CSV injection. Every cell of a row, the header's included, passes through here.
fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The machines, sessions and schedules an event is about, as `kind:id` words: the one its
/// stream names, then the ones its data names (`machine`, `machines`, `session`, `schedule`).
fn targets(event: &RecordedEvent) -> String {
    let mut targets = Vec::new();
    if let Some((kind, id)) = event.stream.split_once('-')
        && matches!(kind, "machine" | "session" | "schedule")
    {
        targets.push(format!("{kind}:{id}"));
    }
    if let Some(data) = event.data.as_object() {
        for (field, kind) in [
            ("machine", "machine"),
            ("machines", "machine"),
            ("session", "session"),
            ("schedule", "schedule"),
        ] {
            let ids: Vec<&str> = match data.get(field) {
                Some(Value::String(id)) => vec![id],
                Some(Value::Array(ids)) => ids.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for id in ids {
                let target = format!("{kind}:{id}");
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
    }
    targets.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(stream: &str, data: Value) -> RecordedEvent {
        serde_json::from_value(json!({
            "position": 7, "workspace_seq": 3, "id": "0193a1b2-0000-7000-8000-000000000001",
            "stream": stream, "stream_version": 2, "type": "session.opened",
            "workspace": "ws_acme", "occurred_at": "2026-11-24T03:50:26.123Z",
            "recorded_at": "2026-11-24T03:50:26.131Z",
            "actor": {"kind": "member", "id": "usr_4", "name": "alice@acme.test"},
            "context": {}, "data": data, "leaf_hash": ""
        }))
        .unwrap()
    }

    #[test]
    fn targets_name_the_stream_then_the_data_once_each() {
        assert_eq!(
            targets(&event(
                "session-ses_3",
                json!({"machine": "mch_9", "machines": ["mch_9", "mch_2"], "session": "ses_3"})
            )),
            "session:ses_3 machine:mch_9 machine:mch_2"
        );
        assert_eq!(targets(&event("billing-ws_1", json!({}))), "");
    }

    #[test]
    fn cells_that_a_spreadsheet_would_run_get_a_quote_in_front() {
        let starts = ["=", "+", "-", "@", "\t", "\r"];
        let events: Vec<RecordedEvent> = starts
            .iter()
            .map(|start| {
                let mut event = event("session-ses_3", json!({"machine": "mch_9"}));
                event.actor.name = Some(format!("{start}cmd|' /C calc'!A0"));
                event
            })
            .collect();
        let mut writer = CsvWriter::new(Vec::new()).unwrap();
        writer.write_page(&events).unwrap();
        let bytes = writer.finish().unwrap();
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), starts.len());
        for (row, start) in rows.iter().zip(starts) {
            assert_eq!(row[5], format!("'{start}cmd|' /C calc'!A0"));
            for cell in row {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{cell:?}"
                );
            }
        }
        assert_eq!(spreadsheet_safe("-5"), "'-5");
        assert_eq!(spreadsheet_safe("5"), "5");
        assert_eq!(spreadsheet_safe(""), "");
        assert_eq!(spreadsheet_safe("a=b"), "a=b");
    }
}
