//! Schedule runs: each run moves queued → running → finished, machine by machine.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ReadModel, State, stream_id, stream_row_key};
use crate::catalogue::{EventData, RunStatus, RunTrigger};
use crate::envelope::RecordedEvent;

/// A run on one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineRun {
    /// `running`, then `succeeded`, `failed`, `cancelled` or `timed_out`.
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub exit_code: Option<i64>,
    pub duration_ms: Option<u64>,
    pub error: Option<String>,
    pub session: Option<String>,
    pub degraded: bool,
}

/// One run of a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: String,
    pub schedule: String,
    pub workspace: String,
    pub trigger: RunTrigger,
    /// The actor id that triggered it.
    pub triggered_by: String,
    /// The machines the trigger named, when it named them.
    pub targets: Option<Vec<String>>,
    pub queued_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// `queued`, `running`, or once every machine finished the worst of their outcomes:
    /// `failed`, `timed_out`, `cancelled`, `succeeded`.
    pub status: String,
    /// A running machine stopped answering.
    pub degraded: bool,
    pub cancel_requested: bool,
    pub machines: BTreeMap<String, MachineRun>,
}

impl Run {
    /// Returns the run a `schedule.run_triggered` event queues.
    pub(crate) fn queued(event: &RecordedEvent, data: &EventData) -> Option<Run> {
        let EventData::ScheduleRunTriggered(triggered) = data else {
            return None;
        };
        Some(Run {
            run_id: triggered.run_id.as_str().to_owned(),
            schedule: stream_id(event).to_owned(),
            workspace: event.workspace.clone().unwrap_or_default(),
            trigger: triggered.trigger,
            triggered_by: event.actor.id.clone(),
            targets: triggered
                .machines
                .as_ref()
                .map(|machines| machines.iter().map(|m| m.as_str().to_owned()).collect()),
            queued_at: event.occurred_at.clone(),
            started_at: None,
            finished_at: None,
            status: "queued".into(),
            degraded: false,
            cancel_requested: false,
            machines: BTreeMap::new(),
        })
    }

    /// Applies a run event (other than the trigger) to this run.
    pub(crate) fn apply(&mut self, event: &RecordedEvent, data: &EventData) {
        match data {
            EventData::ScheduleRunStarted(started) => {
                self.started_at
                    .get_or_insert_with(|| event.occurred_at.clone());
                self.machines.insert(
                    started.machine.as_str().to_owned(),
                    MachineRun {
                        status: "running".into(),
                        started_at: event.occurred_at.clone(),
                        finished_at: None,
                        exit_code: None,
                        duration_ms: None,
                        error: None,
                        session: started.session.as_ref().map(|s| s.as_str().to_owned()),
                        degraded: false,
                    },
                );
            }
            EventData::ScheduleRunFinished(finished) => {
                let machine = self
                    .machines
                    .entry(finished.machine.as_str().to_owned())
                    .or_insert_with(|| MachineRun {
                        status: "running".into(),
                        started_at: event.occurred_at.clone(),
                        finished_at: None,
                        exit_code: None,
                        duration_ms: None,
                        error: None,
                        session: None,
                        degraded: false,
                    });
                machine.status = status_name(finished.status).to_owned();
                machine.finished_at = Some(event.occurred_at.clone());
                machine.exit_code = finished.exit_code;
                machine.duration_ms = Some(finished.duration_ms);
                machine.error = finished.error.clone();
                self.started_at
                    .get_or_insert_with(|| event.occurred_at.clone());
            }
            EventData::ScheduleRunDegraded(degraded) => {
                if let Some(machine) = self.machines.get_mut(degraded.machine.as_str()) {
                    machine.degraded = true;
                }
            }
            EventData::ScheduleRunCancelRequested(_) => self.cancel_requested = true,
            _ => return,
        }
        self.settle(&event.occurred_at);
    }

    /// Derives the run's status from its machines.
    fn settle(&mut self, now: &str) {
        self.degraded = self
            .machines
            .values()
            .any(|machine| machine.degraded && machine.finished_at.is_none());
        let all_started = self.targets.as_ref().is_none_or(|targets| {
            targets
                .iter()
                .all(|target| self.machines.contains_key(target))
        });
        let all_finished = self
            .machines
            .values()
            .all(|machine| machine.finished_at.is_some());
        self.status = if self.machines.is_empty() {
            "queued".into()
        } else if !(all_started && all_finished) {
            "running".into()
        } else {
            ["failed", "timed_out", "cancelled", "succeeded"]
                .into_iter()
                .find(|outcome| self.machines.values().any(|m| m.status == *outcome))
                .unwrap_or("succeeded")
                .into()
        };
        self.finished_at =
            (self.status != "queued" && self.status != "running").then(|| now.to_owned());
    }
}

fn status_name(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
        RunStatus::Cancelled => "cancelled",
        RunStatus::TimedOut => "timed_out",
    }
}

/// Returns the run id a run event names.
pub(crate) fn run_id(data: &EventData) -> Option<&str> {
    Some(match data {
        EventData::ScheduleRunTriggered(event) => event.run_id.as_str(),
        EventData::ScheduleRunStarted(event) => event.run_id.as_str(),
        EventData::ScheduleRunFinished(event) => event.run_id.as_str(),
        EventData::ScheduleRunCancelRequested(event) => event.run_id.as_str(),
        EventData::ScheduleRunDegraded(event) => event.run_id.as_str(),
        _ => return None,
    })
}

/// Every run of every schedule, keyed `schedule/run_id`.
#[derive(Debug)]
pub struct Runs;

impl ReadModel for Runs {
    const NAME: &'static str = "runs";
    type Row = Run;

    fn keys(event: &RecordedEvent, data: &EventData) -> Vec<String> {
        run_id(data)
            .map(|run| vec![format!("{}/{run}", stream_row_key(event))])
            .unwrap_or_default()
    }

    fn apply(rows: &mut State<Run>, event: &RecordedEvent, data: &EventData) {
        let Some(run) = run_id(data) else {
            return;
        };
        let key = format!("{}/{run}", stream_row_key(event));
        if let Some(queued) = Run::queued(event, data) {
            rows.insert(key, queued);
        } else if let Some(existing) = rows.get_mut(&key) {
            existing.apply(event, data);
        }
    }

    fn workspace(row: &Run) -> &str {
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
    fn a_run_moves_from_queued_to_running_to_finished() {
        let e = |position, event_type: &str, data| {
            event(position, "schedule-sch_1", event_type, "ws_1", data)
        };
        let mut events = vec![e(
            1,
            "schedule.run_triggered",
            json!({"run_id": "r1", "trigger": "manual", "machines": ["m1", "m2"]}),
        )];
        let status =
            |events: &[RecordedEvent]| fold::<Runs>(events)["ws_1/sch_1/r1"].status.clone();
        assert_eq!(status(&events), "queued");
        events.push(e(
            2,
            "schedule.run_started",
            json!({"run_id": "r1", "machine": "m1"}),
        ));
        assert_eq!(status(&events), "running");
        events.push(e(
            3,
            "schedule.run_finished",
            json!({"run_id": "r1", "machine": "m1", "status": "succeeded", "duration_ms": 5}),
        ));
        // m2 has not started yet: the run is still running.
        assert_eq!(status(&events), "running");
        events.push(e(
            4,
            "schedule.run_started",
            json!({"run_id": "r1", "machine": "m2"}),
        ));
        events.push(e(
            5,
            "schedule.run_degraded",
            json!({"run_id": "r1", "machine": "m2"}),
        ));
        assert!(fold::<Runs>(&events)["ws_1/sch_1/r1"].degraded);
        events.push(e(
            6,
            "schedule.run_finished",
            json!({"run_id": "r1", "machine": "m2", "status": "timed_out", "duration_ms": 9}),
        ));
        let run = &fold::<Runs>(&events)["ws_1/sch_1/r1"];
        assert_eq!(run.status, "timed_out");
        assert!(!run.degraded);
        assert_eq!(
            run.finished_at.as_deref(),
            Some(events[5].occurred_at.as_str())
        );
    }
}
