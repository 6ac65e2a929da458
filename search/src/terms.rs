//! What one recorded event contributes to the index: the values each field of the schema gets.
//!
//! Kept apart from tantivy so the same extraction feeds the index and, in the benches, SQLite
//! FTS5 building the same index from the same events.

use std::net::IpAddr;

use chronicle_domain::{RecordedEvent, parse_timestamp};
use serde_json::Value;
use time::OffsetDateTime;

/// The searchable values of one event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventTerms {
    /// The event's log position, the one value the index stores.
    pub position: u64,
    /// The tenant; every search is filtered by it (events of no workspace are never found).
    pub workspace: Option<String>,
    /// The type and each of its prefixes as `prefix.*`: `machine.renamed`, `machine.*`.
    pub types: Vec<String>,
    /// The part of the type before the first dot: `machine`.
    pub category: String,
    /// The actor's id and name, as [`keyword`]s.
    pub actors: Vec<String>,
    /// Machine ids: from a `machine-…` stream, and the data's `machine` and `machines`.
    pub machines: Vec<String>,
    /// Session ids: from a `session-…` stream, and the data's `session`.
    pub sessions: Vec<String>,
    /// Schedule ids from a `schedule-…` stream, and run ids (the data's `run_id`).
    pub schedules: Vec<String>,
    /// The stream's name, as a [`keyword`].
    pub stream: String,
    /// The context's request id, as a [`keyword`].
    pub request: Option<String>,
    /// The context's source address.
    pub source_ip: Option<IpAddr>,
    /// `None` only for a time that does not parse, which the log never holds.
    pub occurred_at: Option<OffsetDateTime>,
    /// Free text: every string value of the data (at any depth), then the actor's name. Each is
    /// indexed as its own value, so a phrase never spans two of them.
    pub words: Vec<String>,
}

/// Normalises an identifier for exact matching: ids, names and request ids match whatever their
/// case.
pub fn keyword(value: &str) -> String {
    value.to_lowercase()
}

/// Returns the type's prefixes as the index holds them: `a.b.c` gives `a.*` and `a.b.*`.
pub fn type_prefixes(event_type: &str) -> impl Iterator<Item = String> + '_ {
    event_type
        .match_indices('.')
        .map(|(at, _)| format!("{}*", &event_type[..=at]))
}

impl EventTerms {
    /// Extracts the searchable values of a recorded event.
    pub fn from_event(event: &RecordedEvent) -> EventTerms {
        let mut types = vec![event.event_type.clone()];
        types.extend(type_prefixes(&event.event_type));
        let category = event
            .event_type
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();

        let mut actors = vec![keyword(&event.actor.id)];
        if let Some(name) = &event.actor.name {
            actors.push(keyword(name));
        }

        let mut machines = Vec::new();
        let mut sessions = Vec::new();
        let mut schedules = Vec::new();
        if let Some((kind, id)) = event.stream.split_once('-') {
            match kind {
                "machine" => machines.push(keyword(id)),
                "session" => sessions.push(keyword(id)),
                "schedule" => schedules.push(keyword(id)),
                _ => {}
            }
        }
        if let Some(data) = event.data.as_object() {
            if let Some(Value::String(machine)) = data.get("machine") {
                machines.push(keyword(machine));
            }
            if let Some(Value::Array(listed)) = data.get("machines") {
                machines.extend(listed.iter().filter_map(Value::as_str).map(keyword));
            }
            if let Some(Value::String(session)) = data.get("session") {
                sessions.push(keyword(session));
            }
            if let Some(Value::String(run)) = data.get("run_id") {
                schedules.push(keyword(run));
            }
        }
        for list in [&mut actors, &mut machines, &mut sessions, &mut schedules] {
            list.sort_unstable();
            list.dedup();
        }

        let mut words = Vec::new();
        string_values(&event.data, &mut words);
        if let Some(name) = &event.actor.name {
            words.push(name.clone());
        }

        EventTerms {
            position: event.position,
            workspace: event.workspace.clone(),
            types,
            category,
            actors,
            machines,
            sessions,
            schedules,
            stream: keyword(&event.stream),
            request: event.context.request_id.as_deref().map(keyword),
            source_ip: event.context.source_ip,
            occurred_at: parse_timestamp(&event.occurred_at).ok(),
            words,
        }
    }
}

/// Collects every string value of a JSON value, depth first.
fn string_values(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| string_values(item, into)),
        Value::Object(map) => map.values().for_each(|item| string_values(item, into)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronicle_domain::{Actor, ActorKind, Context};
    use serde_json::json;

    fn event(stream: &str, event_type: &str, data: Value) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            workspace_seq: Some(3),
            id: uuid::Uuid::nil(),
            stream: stream.into(),
            stream_version: 1,
            event_type: event_type.into(),
            workspace: Some("ws_acme".into()),
            occurred_at: "2026-11-24T03:50:26.123Z".into(),
            recorded_at: "2026-11-24T03:50:26.200Z".into(),
            actor: Actor {
                kind: ActorKind::Member,
                id: "usr_4".into(),
                name: Some("Alice@Acme.test".into()),
            },
            context: Context {
                request_id: Some("REQ_1".into()),
                source_ip: Some("203.0.113.7".parse().unwrap()),
                ..Context::default()
            },
            data,
            submitted_by: None,
            leaf_hash: String::new(),
        }
    }

    #[test]
    fn takes_targets_from_the_stream_and_the_data() {
        let terms = EventTerms::from_event(&event(
            "schedule-sch_2",
            "schedule.run_started",
            json!({"run_id": "run_9", "machine": "MCH_1", "session": "ses_3"}),
        ));
        assert_eq!(terms.types, ["schedule.run_started", "schedule.*"]);
        assert_eq!(terms.category, "schedule");
        assert_eq!(terms.schedules, ["run_9", "sch_2"]);
        assert_eq!(terms.machines, ["mch_1"]);
        assert_eq!(terms.sessions, ["ses_3"]);
        assert_eq!(terms.actors, ["alice@acme.test", "usr_4"]);
        assert_eq!(terms.request.as_deref(), Some("req_1"));

        let terms = EventTerms::from_event(&event(
            "schedule-sch_2",
            "schedule.created",
            json!({"name": "nightly", "command": "rm -rf /tmp/x", "machines": ["mch_1", "mch_2"],
                   "changes": {"cron": {"from": "0 1 * * *", "to": "0 2 * * *"}}}),
        ));
        assert_eq!(terms.machines, ["mch_1", "mch_2"]);
        let mut words = terms.words.clone();
        words.sort();
        assert_eq!(
            words,
            [
                "0 1 * * *",
                "0 2 * * *",
                "Alice@Acme.test",
                "mch_1",
                "mch_2",
                "nightly",
                "rm -rf /tmp/x",
            ]
        );
    }

    #[test]
    fn prefixes_cover_every_dot() {
        assert_eq!(type_prefixes("a.b.c").collect::<Vec<_>>(), ["a.*", "a.b.*"]);
        assert_eq!(type_prefixes("plain").count(), 0);
    }
}
