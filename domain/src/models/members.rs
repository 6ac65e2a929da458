//! Members and roles. A removed member keeps their row (and so their history); the generator
//! and the cabinet keep at least one owner per workspace, which the fold never invents.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ReadModel, State, stream_id};
use crate::catalogue::{AccessLevel, EventData, Role};
use crate::envelope::RecordedEvent;

/// One member of a workspace, past members included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub workspace: String,
    pub user: String,
    pub email: String,
    pub role: Role,
    /// `invited`, `active`, `suspended` or `removed` (a revoked invitation too).
    pub status: String,
    pub invited_at: Option<String>,
    pub invited_by: Option<String>,
    pub joined_at: Option<String>,
    pub removed_at: Option<String>,
    /// Per-machine access set for this member, by machine id.
    pub machine_access: BTreeMap<String, AccessLevel>,
}

/// The members model, keyed `workspace:user` like the member streams.
#[derive(Debug)]
pub struct Members;

impl ReadModel for Members {
    const NAME: &'static str = "members";
    type Row = Member;

    fn keys(event: &RecordedEvent, _data: &EventData) -> Vec<String> {
        if event.event_type.starts_with("member.") || event.event_type.starts_with("permission.") {
            vec![stream_id(event).to_owned()]
        } else {
            Vec::new()
        }
    }

    fn apply(rows: &mut State<Member>, event: &RecordedEvent, data: &EventData) {
        let key = stream_id(event);
        let fresh = |email: &str, role: Role| Member {
            workspace: event.workspace.clone().unwrap_or_default(),
            user: key.split_once(':').map_or(key, |(_, user)| user).to_owned(),
            email: email.to_owned(),
            role,
            status: "invited".into(),
            invited_at: None,
            invited_by: None,
            joined_at: None,
            removed_at: None,
            machine_access: BTreeMap::new(),
        };
        match data {
            EventData::MemberInvited(invited) => {
                let member = rows
                    .entry(key.to_owned())
                    .or_insert_with(|| fresh(invited.email.as_str(), invited.role));
                member.email = invited.email.as_str().to_owned();
                member.role = invited.role;
                member.status = "invited".into();
                member.invited_at = Some(event.occurred_at.clone());
                member.invited_by = Some(event.actor.id.clone());
                member.removed_at = None;
                return;
            }
            EventData::MemberJoined(joined) => {
                let member = rows
                    .entry(key.to_owned())
                    .or_insert_with(|| fresh(joined.email.as_str(), joined.role));
                member.email = joined.email.as_str().to_owned();
                member.role = joined.role;
                member.status = "active".into();
                member.joined_at = Some(event.occurred_at.clone());
                member.removed_at = None;
                return;
            }
            _ => {}
        }
        let Some(member) = rows.get_mut(key) else {
            return;
        };
        match data {
            EventData::MemberRoleChanged(changed) => member.role = changed.to,
            EventData::MemberSuspended(_) => member.status = "suspended".into(),
            EventData::MemberRemoved(_) | EventData::MemberInvitationRevoked(_) => {
                member.status = "removed".into();
                member.removed_at = Some(event.occurred_at.clone());
            }
            EventData::PermissionMachineAccessSet(access) => {
                member
                    .machine_access
                    .insert(access.machine.as_str().to_owned(), access.level);
            }
            _ => {}
        }
    }

    fn workspace(row: &Member) -> &str {
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
    fn a_removed_member_keeps_their_row() {
        let e = |position, event_type: &str, data| {
            event(position, "member-ws_1:usr_4", event_type, "ws_1", data)
        };
        let events = [
            e(
                1,
                "member.invited",
                json!({"email": "d@a.test", "role": "admin", "expires_at": "2026-09-08T00:00:00Z"}),
            ),
            e(
                2,
                "member.joined",
                json!({"email": "d@a.test", "role": "admin"}),
            ),
            e(
                3,
                "member.role_changed",
                json!({"from": "admin", "to": "owner"}),
            ),
            e(
                4,
                "permission.machine_access_set",
                json!({"member": "usr_4", "machine": "mch_9", "level": "view"}),
            ),
            e(5, "member.removed", json!({})),
        ];
        let member = &fold::<Members>(&events)["ws_1:usr_4"];
        assert_eq!(member.user, "usr_4");
        assert_eq!(member.role, Role::Owner);
        assert_eq!(member.status, "removed");
        assert_eq!(member.invited_by.as_deref(), Some("usr_1"));
        assert_eq!(member.machine_access["mch_9"], AccessLevel::View);
    }
}
