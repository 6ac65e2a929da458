//! Terminal sessions: active and ended, their attached clients, input count and flags.

use serde::{Deserialize, Serialize};

use super::{ReadModel, State, stream_id, stream_row_key};
use crate::catalogue::{ClientKind, EventData, SessionMode};
use crate::envelope::RecordedEvent;

/// A client attached to a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub client_id: String,
    pub client_kind: ClientKind,
    pub mode: SessionMode,
}

/// One terminal session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub workspace: String,
    pub machine: String,
    pub name: Option<String>,
    /// The actor id that opened it.
    pub opened_by: String,
    pub opened_at: String,
    pub closed_at: Option<String>,
    /// `active` until closed, then `ended`.
    pub state: String,
    /// The clients attached now (none once ended).
    pub clients: Vec<Client>,
    pub close_reason: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<u64>,
    pub input_count: u64,
    pub flagged: bool,
    pub flag_reasons: Vec<String>,
}

/// The sessions model.
#[derive(Debug)]
pub struct Sessions;

impl ReadModel for Sessions {
    const NAME: &'static str = "sessions";
    type Row = Session;

    fn keys(event: &RecordedEvent, _data: &EventData) -> Vec<String> {
        if event.event_type.starts_with("session.") {
            vec![stream_row_key(event)]
        } else {
            Vec::new()
        }
    }

    fn apply(rows: &mut State<Session>, event: &RecordedEvent, data: &EventData) {
        let id = stream_id(event);
        let key = stream_row_key(event);
        if let EventData::SessionOpened(opened) = data {
            rows.insert(
                key,
                Session {
                    id: id.to_owned(),
                    workspace: event.workspace.clone().unwrap_or_default(),
                    machine: opened.machine.as_str().to_owned(),
                    name: opened.name.as_ref().map(|name| name.as_str().to_owned()),
                    opened_by: event.actor.id.clone(),
                    opened_at: event.occurred_at.clone(),
                    closed_at: None,
                    state: "active".into(),
                    clients: Vec::new(),
                    close_reason: None,
                    exit_code: None,
                    duration_ms: None,
                    input_count: 0,
                    flagged: false,
                    flag_reasons: Vec::new(),
                },
            );
            return;
        }
        let Some(session) = rows.get_mut(&key) else {
            return;
        };
        match data {
            EventData::SessionAttached(attached) => {
                session
                    .clients
                    .retain(|client| client.client_id != attached.client_id.as_str());
                session.clients.push(Client {
                    client_id: attached.client_id.as_str().to_owned(),
                    client_kind: attached.client_kind,
                    mode: attached.mode,
                });
            }
            EventData::SessionDetached(detached) => session
                .clients
                .retain(|client| client.client_id != detached.client_id.as_str()),
            EventData::SessionInputSent(_) => session.input_count += 1,
            EventData::SessionFlagged(flagged) => {
                session.flagged = true;
                session
                    .flag_reasons
                    .push(flagged.reason.as_str().to_owned());
            }
            EventData::SessionClosed(closed) => {
                session.state = "ended".into();
                session.closed_at = Some(event.occurred_at.clone());
                session.clients.clear();
                session.close_reason = Some(closed.reason.as_str().to_owned());
                session.exit_code = closed.exit_code;
                session.duration_ms = Some(closed.duration_ms);
            }
            _ => {}
        }
    }

    fn workspace(row: &Session) -> &str {
        &row.workspace
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::models::fold;
    use crate::models::test_support::event;

    #[test]
    fn a_session_counts_input_keeps_clients_and_ends() {
        let e = |position, event_type: &str, data| {
            event(position, "session-ses_1", event_type, "ws_1", data)
        };
        let sha = "7d88e721e241c7694a68f07596182386eb3a31bda4f8fdfba489b57a58657f80";
        let mut events = vec![
            e(
                1,
                "session.opened",
                json!({"machine": "mch_9", "client_kind": "cli", "mode": "operator"}),
            ),
            e(
                2,
                "session.attached",
                json!({"client_id": "c1", "client_kind": "desktop", "mode": "observer"}),
            ),
            e(
                3,
                "session.input_sent",
                json!({"seq": 1, "bytes": 3, "sha256": sha}),
            ),
            e(
                4,
                "session.input_sent",
                json!({"seq": 2, "bytes": 3, "sha256": sha}),
            ),
            e(5, "session.flagged", json!({"reason": "web terminal"})),
        ];
        let open = fold::<Sessions>(&events);
        assert_eq!(open["ws_1/ses_1"].state, "active");
        assert_eq!(open["ws_1/ses_1"].clients.len(), 1);
        assert_eq!(open["ws_1/ses_1"].input_count, 2);
        assert!(open["ws_1/ses_1"].flagged);
        events.push(e(6, "session.detached", json!({"client_id": "c1"})));
        events.push(e(
            7,
            "session.closed",
            json!({"reason": "exit", "exit_code": 0, "duration_ms": 360000}),
        ));
        let ended = fold::<Sessions>(&events);
        assert_eq!(ended["ws_1/ses_1"].state, "ended");
        assert!(ended["ws_1/ses_1"].clients.is_empty());
        assert_eq!(ended["ws_1/ses_1"].exit_code, Some(0));
        assert_eq!(ended["ws_1/ses_1"].duration_ms, Some(360000));
    }
}
