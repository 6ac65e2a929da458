//! The activity feed: the human-level admin events of a workspace, newest first.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ReadModel, State};
use crate::catalogue::EventData;
use crate::envelope::{Actor, RecordedEvent};

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub position: u64,
    pub workspace: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: Actor,
    pub occurred_at: String,
    pub stream: String,
    pub data: Value,
}

/// The activity feed model, keyed by the event's position (zero-padded, so keys sort by it).
#[derive(Debug)]
pub struct ActivityFeed;

/// Returns whether the feed shows events of this type: members, billing, machines, schedules,
/// tokens and workspace settings; not presence, sessions, runs, sign-ins, usage or the audit of
/// the audit.
pub fn is_activity(event_type: &str) -> bool {
    let (kind, _) = event_type.split_once('.').unwrap_or((event_type, ""));
    match kind {
        "workspace" | "member" | "permission" | "token" => true,
        "machine" => event_type != "machine.presence_changed",
        "schedule" => !event_type.starts_with("schedule.run_"),
        "billing" => event_type != "billing.usage_recorded",
        _ => false,
    }
}

/// Returns the key of the feed entry at `position`.
pub fn activity_key(position: u64) -> String {
    format!("{position:020}")
}

impl ReadModel for ActivityFeed {
    const NAME: &'static str = "activity";
    type Row = Activity;

    fn keys(event: &RecordedEvent, _data: &EventData) -> Vec<String> {
        if event.workspace.is_some() && is_activity(&event.event_type) {
            vec![activity_key(event.position)]
        } else {
            Vec::new()
        }
    }

    fn apply(rows: &mut State<Activity>, event: &RecordedEvent, _data: &EventData) {
        let Some(workspace) = &event.workspace else {
            return;
        };
        if !is_activity(&event.event_type) {
            return;
        }
        rows.insert(
            activity_key(event.position),
            Activity {
                position: event.position,
                workspace: workspace.clone(),
                event_type: event.event_type.clone(),
                actor: event.actor.clone(),
                occurred_at: event.occurred_at.clone(),
                stream: event.stream.clone(),
                data: event.data.clone(),
            },
        );
    }

    fn workspace(row: &Activity) -> &str {
        &row.workspace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_shows_admin_events_only() {
        assert!(is_activity("machine.renamed") && is_activity("billing.plan_changed"));
        assert!(is_activity("token.issued") && is_activity("schedule.paused"));
        assert!(!is_activity("machine.presence_changed") && !is_activity("session.opened"));
        assert!(!is_activity("schedule.run_started") && !is_activity("auth.login_succeeded"));
    }
}
