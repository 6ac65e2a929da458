//! Schedules: what runs where and when, and how its last run went.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::runs::{Run, run_id};
use super::{ReadModel, State, stream_id, stream_row_key};
use crate::catalogue::{EventData, ScheduleTarget};
use crate::envelope::RecordedEvent;

/// One schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: String,
    pub workspace: String,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub command: String,
    pub target: ScheduleTarget,
    pub machines: Option<Vec<String>>,
    pub enabled: bool,
    pub timeout_s: Option<u64>,
    pub deleted: bool,
    /// The actor id that created it.
    pub owner: String,
    pub created_at: String,
    /// The newest run, as the run history shows it.
    pub last_run: Option<Run>,
    /// The newest run's status (`queued`, `running`, or how it finished); `none` before any.
    pub last_status: String,
}

/// The schedules model.
#[derive(Debug)]
pub struct Schedules;

impl ReadModel for Schedules {
    const NAME: &'static str = "schedules";
    type Row = Schedule;

    fn keys(event: &RecordedEvent, _data: &EventData) -> Vec<String> {
        if event.event_type.starts_with("schedule.") {
            vec![stream_row_key(event)]
        } else {
            Vec::new()
        }
    }

    fn apply(rows: &mut State<Schedule>, event: &RecordedEvent, data: &EventData) {
        let id = stream_id(event);
        let key = stream_row_key(event);
        if let EventData::ScheduleCreated(created) = data {
            rows.insert(
                key,
                Schedule {
                    id: id.to_owned(),
                    workspace: event.workspace.clone().unwrap_or_default(),
                    name: created.name.as_str().to_owned(),
                    cron: created.cron.as_str().to_owned(),
                    timezone: created.timezone.as_str().to_owned(),
                    command: created.command.as_str().to_owned(),
                    target: created.target,
                    machines: created
                        .machines
                        .as_ref()
                        .map(|machines| machines.iter().map(|m| m.as_str().to_owned()).collect()),
                    enabled: created.enabled,
                    timeout_s: created.timeout_s,
                    deleted: false,
                    owner: event.actor.id.clone(),
                    created_at: event.occurred_at.clone(),
                    last_run: None,
                    last_status: "none".into(),
                },
            );
            return;
        }
        let Some(schedule) = rows.get_mut(&key) else {
            return;
        };
        match data {
            EventData::ScheduleUpdated(updated) => {
                for (field, change) in updated.changes.iter() {
                    schedule.edit(field, &change.to);
                }
            }
            EventData::SchedulePaused(_) => schedule.enabled = false,
            EventData::ScheduleResumed(_) => schedule.enabled = true,
            EventData::ScheduleDeleted(_) => {
                schedule.deleted = true;
                schedule.enabled = false;
            }
            _ => {
                if let Some(queued) = Run::queued(event, data) {
                    schedule.last_run = Some(queued);
                } else if let (Some(run), Some(last)) = (run_id(data), schedule.last_run.as_mut())
                    && last.run_id == run
                {
                    last.apply(event, data);
                }
                if let Some(last) = &schedule.last_run {
                    schedule.last_status = last.status.clone();
                }
            }
        }
    }

    fn workspace(row: &Schedule) -> &str {
        &row.workspace
    }
}

impl Schedule {
    /// Applies one edited field; fields the model does not keep, or values of the wrong shape,
    /// change nothing.
    fn edit(&mut self, field: &str, to: &Value) {
        let text = || to.as_str().map(str::to_owned);
        match field {
            "name" => self.name = text().unwrap_or_else(|| self.name.clone()),
            "cron" => self.cron = text().unwrap_or_else(|| self.cron.clone()),
            "timezone" => self.timezone = text().unwrap_or_else(|| self.timezone.clone()),
            "command" => self.command = text().unwrap_or_else(|| self.command.clone()),
            "enabled" => self.enabled = to.as_bool().unwrap_or(self.enabled),
            "timeout_s" => self.timeout_s = to.as_u64(),
            "target" => {
                if let Ok(target) = serde_json::from_value(to.clone()) {
                    self.target = target;
                }
            }
            "machines" => {
                self.machines = serde_json::from_value(to.clone()).unwrap_or(None);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::minimal_example;
    use crate::models::fold;
    use crate::models::test_support::event;

    #[test]
    fn a_schedule_follows_edits_and_its_last_run() {
        let e = |position, event_type: &str, data| {
            event(position, "schedule-sch_1", event_type, "ws_1", data)
        };
        let events = [
            e(
                1,
                "schedule.created",
                minimal_example("schedule.created").unwrap(),
            ),
            e(
                2,
                "schedule.updated",
                json!({"changes": {"cron": {"from": "0 3 * * *", "to": "30 2 * * *"}}}),
            ),
            e(3, "schedule.paused", json!({})),
            e(
                4,
                "schedule.run_triggered",
                json!({"run_id": "r1", "trigger": "manual"}),
            ),
            e(
                5,
                "schedule.run_started",
                json!({"run_id": "r1", "machine": "m1"}),
            ),
            e(
                6,
                "schedule.run_finished",
                json!({"run_id": "r1", "machine": "m1", "status": "failed", "duration_ms": 5}),
            ),
            e(7, "schedule.deleted", json!({})),
        ];
        let schedule = &fold::<Schedules>(&events)["ws_1/sch_1"];
        assert_eq!(schedule.cron, "30 2 * * *");
        assert!(!schedule.enabled);
        assert!(schedule.deleted);
        assert_eq!(schedule.last_status, "failed");
        assert_eq!(schedule.owner, "usr_1");
    }
}
