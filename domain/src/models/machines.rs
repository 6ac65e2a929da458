//! Machine inventory: every machine a workspace registered, deregistered ones included.

use serde::{Deserialize, Serialize};

use super::{ReadModel, State, stream_id};
use crate::catalogue::{EventData, PresenceStatus};
use crate::envelope::RecordedEvent;

/// One machine of the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub id: String,
    /// The workspace it is in now; a move takes it out of the workspace it left.
    pub workspace: String,
    pub name: String,
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub arch: String,
    pub agent_version: String,
    /// Sorted, without repeats.
    pub tags: Vec<String>,
    /// `online`, `degraded`, `starting`, `offline`, or `deregistered` once deregistered.
    pub status: String,
    pub registered_at: String,
    /// The actor id that registered it.
    pub registered_by: String,
    /// When its agent last reported it up (online, degraded or starting).
    pub last_seen_at: Option<String>,
    pub deregistered: bool,
    pub deregistered_at: Option<String>,
}

/// The machine inventory model.
#[derive(Debug)]
pub struct Machines;

impl ReadModel for Machines {
    const NAME: &'static str = "machines";
    type Row = Machine;

    fn keys(event: &RecordedEvent, _data: &EventData) -> Vec<String> {
        if event.event_type.starts_with("machine.") {
            vec![stream_id(event).to_owned()]
        } else {
            Vec::new()
        }
    }

    fn apply(rows: &mut State<Machine>, event: &RecordedEvent, data: &EventData) {
        let id = stream_id(event);
        if let EventData::MachineRegistered(registered) = data {
            let mut tags: Vec<String> = registered
                .tags
                .iter()
                .flatten()
                .map(|tag| tag.as_str().to_owned())
                .collect();
            tags.sort();
            tags.dedup();
            rows.insert(
                id.to_owned(),
                Machine {
                    id: id.to_owned(),
                    workspace: event.workspace.clone().unwrap_or_default(),
                    name: registered.name.as_str().to_owned(),
                    hostname: registered.hostname.as_str().to_owned(),
                    os: registered.os.as_str().to_owned(),
                    os_version: registered.os_version.as_str().to_owned(),
                    arch: registered.arch.as_str().to_owned(),
                    agent_version: registered.agent_version.as_str().to_owned(),
                    tags,
                    status: "offline".into(),
                    registered_at: event.occurred_at.clone(),
                    registered_by: event.actor.id.clone(),
                    last_seen_at: None,
                    deregistered: false,
                    deregistered_at: None,
                },
            );
            return;
        }
        let Some(machine) = rows.get_mut(id) else {
            return;
        };
        match data {
            EventData::MachineRenamed(renamed) => machine.name = renamed.to.as_str().to_owned(),
            EventData::MachineRetagged(retagged) => {
                machine
                    .tags
                    .retain(|tag| !retagged.removed.iter().any(|gone| gone.as_str() == tag));
                machine
                    .tags
                    .extend(retagged.added.iter().map(|tag| tag.as_str().to_owned()));
                machine.tags.sort();
                machine.tags.dedup();
            }
            EventData::MachineMoved(moved) => {
                machine.workspace = moved.to_workspace.as_str().to_owned();
            }
            EventData::MachinePresenceChanged(presence) if !machine.deregistered => {
                machine.status = presence_name(presence.status).to_owned();
                if presence.status != PresenceStatus::Offline {
                    machine.last_seen_at = Some(event.occurred_at.clone());
                }
            }
            EventData::MachineAgentUpdated(updated) => {
                machine.agent_version = updated.to.as_str().to_owned();
            }
            EventData::MachineDeregistered(_) => {
                machine.deregistered = true;
                machine.deregistered_at = Some(event.occurred_at.clone());
                machine.status = "deregistered".into();
            }
            _ => {}
        }
    }

    fn workspace(row: &Machine) -> &str {
        &row.workspace
    }
}

fn presence_name(status: PresenceStatus) -> &'static str {
    match status {
        PresenceStatus::Online => "online",
        PresenceStatus::Degraded => "degraded",
        PresenceStatus::Starting => "starting",
        PresenceStatus::Offline => "offline",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::catalogue::minimal_example;
    use crate::models::fold;
    use crate::models::test_support::event;

    fn machine_event(
        position: u64,
        event_type: &str,
        workspace: &str,
        data: serde_json::Value,
    ) -> RecordedEvent {
        event(position, "machine-mch_9", event_type, workspace, data)
    }

    #[test]
    fn a_deregistered_machine_stays_listed_as_deregistered() {
        let events = [
            machine_event(
                1,
                "machine.registered",
                "ws_1",
                minimal_example("machine.registered").unwrap(),
            ),
            machine_event(
                2,
                "machine.presence_changed",
                "ws_1",
                json!({"status": "online"}),
            ),
            machine_event(
                3,
                "machine.renamed",
                "ws_1",
                json!({"from": "build-01", "to": "ci-01"}),
            ),
            machine_event(
                4,
                "machine.retagged",
                "ws_1",
                json!({"added": ["ci", "eu"], "removed": []}),
            ),
            machine_event(
                5,
                "machine.retagged",
                "ws_1",
                json!({"added": [], "removed": ["eu"]}),
            ),
            machine_event(6, "machine.deregistered", "ws_1", json!({})),
            machine_event(
                7,
                "machine.presence_changed",
                "ws_1",
                json!({"status": "online"}),
            ),
        ];
        let state = fold::<Machines>(&events);
        let machine = &state["mch_9"];
        assert_eq!(machine.name, "ci-01");
        assert_eq!(machine.tags, ["ci"]);
        assert!(machine.deregistered);
        assert_eq!(machine.status, "deregistered");
        assert_eq!(
            machine.last_seen_at.as_deref(),
            Some(events[1].occurred_at.as_str())
        );
    }

    #[test]
    fn a_move_takes_the_machine_to_its_new_workspace() {
        let events = [
            machine_event(
                1,
                "machine.registered",
                "ws_1",
                minimal_example("machine.registered").unwrap(),
            ),
            machine_event(
                2,
                "machine.moved",
                "ws_1",
                json!({"from_workspace": "ws_1", "to_workspace": "ws_2"}),
            ),
            machine_event(
                3,
                "machine.agent_updated",
                "ws_2",
                json!({"from": "2.4.1", "to": "2.5.0"}),
            ),
        ];
        let state = fold::<Machines>(&events);
        assert_eq!(state["mch_9"].workspace, "ws_2");
        assert_eq!(state["mch_9"].agent_version, "2.5.0");
    }
}
