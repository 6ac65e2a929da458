//! Machine inventory: every machine a workspace registered, deregistered ones included.

use serde::{Deserialize, Serialize};

use super::{ReadModel, State, row_key, stream_id, stream_row_key};
use crate::catalogue::{EventData, MachineMoved, MachineRegistered, PresenceStatus};
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

    fn keys(event: &RecordedEvent, data: &EventData) -> Vec<String> {
        if !event.event_type.starts_with("machine.") {
            return Vec::new();
        }
        let mut keys = vec![stream_row_key(event)];
        keys.extend(
            move_before_v2(event, data).map(|to_workspace| row_key(to_workspace, stream_id(event))),
        );
        keys
    }

    fn apply(rows: &mut State<Machine>, event: &RecordedEvent, data: &EventData) {
        let key = stream_row_key(event);
        if let Some(registered) = registration(event, data) {
            rows.insert(key, registered_row(event, registered));
            return;
        }
        if let EventData::MachineMoved(_) = data {
            // It left: the workspace it joined records its arrival in its own history, except
            // for a move recorded before v2, which was recorded once and carries the machine.
            let left = rows.remove(&key);
            if let (Some(mut machine), Some(to_workspace)) = (left, move_before_v2(event, data)) {
                machine.workspace = to_workspace.to_owned();
                rows.insert(row_key(to_workspace, stream_id(event)), machine);
            }
            return;
        }
        let Some(machine) = rows.get_mut(&key) else {
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

/// Returns the workspace a move recorded before v2 took the machine to. Such a move (its event
/// has no `submitted_by`) was recorded only in the workspace it left, with no arrival.
fn move_before_v2<'a>(event: &RecordedEvent, data: &'a EventData) -> Option<&'a str> {
    match data {
        EventData::MachineMoved(MachineMoved { to_workspace, .. })
            if event.submitted_by.is_none()
                && event.workspace.as_deref() != Some(to_workspace.as_str()) =>
        {
            Some(to_workspace.as_str())
        }
        _ => None,
    }
}

/// The attributes a row starts from: a registration, or a move into the event's workspace.
fn registration<'a>(event: &RecordedEvent, data: &'a EventData) -> Option<&'a MachineRegistered> {
    match data {
        EventData::MachineRegistered(registered) => Some(registered),
        EventData::MachineMoved(MachineMoved {
            to_workspace,
            machine: Some(machine),
            ..
        }) if event.workspace.as_deref() == Some(to_workspace.as_str()) => Some(machine),
        _ => None,
    }
}

/// A machine's row as it joins the inventory, offline until its agent reports.
fn registered_row(event: &RecordedEvent, registered: &MachineRegistered) -> Machine {
    let mut tags: Vec<String> = registered
        .tags
        .iter()
        .flatten()
        .map(|tag| tag.as_str().to_owned())
        .collect();
    tags.sort();
    tags.dedup();
    Machine {
        id: stream_id(event).to_owned(),
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
    }
}

impl Machine {
    /// What a workspace the machine moves into needs to know of it: its attributes now.
    pub fn attributes(&self) -> Option<MachineRegistered> {
        serde_json::from_value(serde_json::json!({
            "name": self.name, "hostname": self.hostname, "os": self.os,
            "os_version": self.os_version, "arch": self.arch,
            "agent_version": self.agent_version, "tags": self.tags,
        }))
        .ok()
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
        let machine = &state["ws_1/mch_9"];
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
    fn a_move_leaves_one_inventory_and_joins_the_other_with_the_machines_attributes() {
        let registered = minimal_example("machine.registered").unwrap();
        let leaves = json!({"from_workspace": "ws_1", "to_workspace": "ws_2"});
        let mut state = fold::<Machines>(&[
            machine_event(1, "machine.registered", "ws_1", registered),
            machine_event(
                2,
                "machine.renamed",
                "ws_1",
                json!({"from": "a", "to": "ci-01"}),
            ),
        ]);
        let left = state["ws_1/mch_9"].clone();
        crate::models::apply::<Machines>(
            &mut state,
            &machine_event(3, "machine.moved", "ws_1", leaves.clone()),
        );
        assert!(
            !state.contains_key("ws_1/mch_9"),
            "it left ws_1's inventory"
        );

        let mut arrives = leaves;
        arrives["machine"] = serde_json::to_value(left.attributes().unwrap()).unwrap();
        for later in [
            machine_event(4, "machine.moved", "ws_2", arrives),
            machine_event(
                5,
                "machine.agent_updated",
                "ws_2",
                json!({"from": "2.4.1", "to": "2.5.0"}),
            ),
        ] {
            crate::models::apply::<Machines>(&mut state, &later);
        }
        let joined = &state["ws_2/mch_9"];
        assert_eq!(joined.workspace, "ws_2");
        assert_eq!(
            joined.name, "ci-01",
            "the destination knows the machine as it left"
        );
        assert_eq!(joined.hostname, left.hostname);
        assert_eq!(joined.agent_version, "2.5.0");
        assert_eq!(
            joined.registered_at, "2026-09-01T00:04:00.000Z",
            "it joined when it moved"
        );
    }

    #[test]
    fn a_move_recorded_before_v2_takes_the_machine_to_the_workspace_it_joined() {
        let registered = minimal_example("machine.registered").unwrap();
        let mut moved = machine_event(
            2,
            "machine.moved",
            "ws_1",
            json!({"from_workspace": "ws_1", "to_workspace": "ws_2"}),
        );
        moved.submitted_by = None;
        let renamed_there = machine_event(
            3,
            "machine.renamed",
            "ws_2",
            json!({"from": "a", "to": "ci-02"}),
        );
        let state = fold::<Machines>(&[
            machine_event(1, "machine.registered", "ws_1", registered),
            moved,
            renamed_there,
        ]);
        assert!(!state.contains_key("ws_1/mch_9"), "it left ws_1");
        let joined = &state["ws_2/mch_9"];
        assert_eq!(joined.workspace, "ws_2");
        assert_eq!(joined.name, "ci-02", "ws_2's later events apply to it");
    }

    #[test]
    fn a_move_into_the_events_own_workspace_without_attributes_creates_nothing() {
        let state = fold::<Machines>(&[machine_event(
            1,
            "machine.moved",
            "ws_2",
            json!({"from_workspace": "ws_1", "to_workspace": "ws_2"}),
        )]);
        assert!(state.is_empty());
    }
}
