//! The read models the cabinet queries, each a pure fold over recorded events.
//!
//! Every model keeps its rows in a [`State`]: a map from a row key (`WORKSPACE/ID` for a machine,
//! session or schedule, `workspace:user` for a member …) to the row, and every row names its workspace. A model says
//! which rows an event may change ([`ReadModel::keys`]) before it changes them
//! ([`ReadModel::apply`]): the SQL writer of `chronicle-projections` loads just those rows,
//! applies the same rules and writes them back, so incremental updates, full rebuilds and
//! as-of answers share one definition of the rules.
//!
//! Models: [`machines`], [`sessions`], [`schedules`] (with [`runs`]), [`members`], [`billing`]
//! and [`activity`]. Folds never fail: the log is fact, so an event that does not fit (a rename
//! of a machine never registered, say) changes what it can and nothing else.

pub mod activity;
pub mod billing;
pub mod machines;
pub mod members;
pub mod runs;
pub mod schedules;
pub mod sessions;

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::catalogue::{EventData, parse_data};
use crate::envelope::{RecordedEvent, parse_timestamp};

/// The rows of one model, by key.
pub type State<R> = BTreeMap<String, R>;

/// One read model: which rows an event touches, and how it changes them.
pub trait ReadModel {
    /// The model's name, as `chronicle rebuild MODEL` and the metrics call it.
    const NAME: &'static str;
    /// One row of the model, as the API answers it.
    type Row: Clone + Debug + PartialEq + Serialize + DeserializeOwned + Send + Sync;

    /// Returns the keys of the rows `event` may change; empty when the model ignores it.
    fn keys(event: &RecordedEvent, data: &EventData) -> Vec<String>;

    /// Applies `event` to `rows`, which holds every existing row of [`Self::keys`]. A row that
    /// disappears from `rows` is deleted.
    fn apply(rows: &mut State<Self::Row>, event: &RecordedEvent, data: &EventData);

    /// Returns the workspace a row belongs to.
    fn workspace(row: &Self::Row) -> &str;
}

/// Applies one recorded event to a model's state; events the catalogue cannot read (never the
/// case for events the store accepted) change nothing.
pub fn apply<M: ReadModel>(state: &mut State<M::Row>, event: &RecordedEvent) {
    if let Ok(data) = parse_data(&event.event_type, &event.data) {
        M::apply(state, event, &data);
    }
}

/// Folds events, in position order, into a fresh state.
pub fn fold<'a, M: ReadModel>(
    events: impl IntoIterator<Item = &'a RecordedEvent>,
) -> State<M::Row> {
    let mut state = State::new();
    for event in events {
        apply::<M>(&mut state, event);
    }
    state
}

/// Returns the id part of the event's stream (`mch_9` of `machine-mch_9`).
pub(crate) fn stream_id(event: &RecordedEvent) -> &str {
    event
        .stream
        .split_once('-')
        .map_or(event.stream.as_str(), |(_, id)| id)
}

/// Returns the key of a row about one thing of a workspace: `WORKSPACE/ID`. Keys start with the
/// workspace, so one workspace's events never fold into another's rows.
pub fn row_key(workspace: &str, id: &str) -> String {
    format!("{workspace}/{id}")
}

/// Returns the key of the row the event's stream is about (`ws_acme/mch_9` of `machine-mch_9`).
pub(crate) fn stream_row_key(event: &RecordedEvent) -> String {
    row_key(event.workspace.as_deref().unwrap_or(""), stream_id(event))
}

/// Returns the time as nanoseconds since the Unix epoch, for ordering and time-range filters;
/// 0 for a time that does not parse (never the case for recorded times).
pub fn unix_nanos(time: &str) -> i64 {
    parse_timestamp(time).map_or(0, |time| {
        i64::try_from(time.unix_timestamp_nanos()).unwrap_or(i64::MAX)
    })
}

#[cfg(test)]
pub(crate) mod test_support {
    use serde_json::Value;
    use uuid::Uuid;

    use crate::envelope::{Actor, ActorKind, Context, RecordedEvent};

    /// A recorded event at `position`, `minutes` after a fixed start, by member `usr_1`.
    pub fn event(
        position: u64,
        stream: &str,
        event_type: &str,
        workspace: &str,
        data: Value,
    ) -> RecordedEvent {
        let time = format!(
            "2026-09-01T{:02}:{:02}:00.000Z",
            (position / 60) % 24,
            position % 60
        );
        RecordedEvent {
            position,
            workspace_seq: Some(position),
            id: Uuid::from_u128(u128::from(position)),
            stream: stream.to_owned(),
            stream_version: 1,
            event_type: event_type.to_owned(),
            workspace: Some(workspace.to_owned()),
            occurred_at: time.clone(),
            recorded_at: time,
            actor: Actor {
                kind: ActorKind::Member,
                id: "usr_1".into(),
                name: Some("alice@acme.test".into()),
            },
            context: Context::default(),
            data,
            submitted_by: Some("tok_1".into()),
            leaf_hash: String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::catalogue::minimal_example;
    use crate::models::activity::ActivityFeed;
    use crate::models::billing::BillingModel;
    use crate::models::machines::Machines;
    use crate::models::members::Members;
    use crate::models::runs::Runs;
    use crate::models::schedules::Schedules;
    use crate::models::sessions::Sessions;
    use crate::models::test_support::event;

    /// Event types the models read, with the stream kind they go in.
    const TYPES: &[&str] = &[
        "machine.registered",
        "machine.renamed",
        "machine.retagged",
        "machine.presence_changed",
        "machine.deregistered",
        "machine.moved",
        "session.opened",
        "session.attached",
        "session.input_sent",
        "session.closed",
        "session.flagged",
        "schedule.created",
        "schedule.paused",
        "schedule.run_triggered",
        "schedule.run_started",
        "schedule.run_finished",
        "schedule.deleted",
        "member.invited",
        "member.joined",
        "member.role_changed",
        "member.removed",
        "billing.invoice_issued",
        "billing.payment_succeeded",
        "billing.usage_recorded",
        "billing.plan_changed",
        "workspace.created",
    ];

    fn arbitrary_event(position: u64, type_index: usize, entity: u8) -> RecordedEvent {
        let event_type = TYPES[type_index % TYPES.len()];
        let workspace = format!("ws_{}", entity % 2);
        let mut data: Value = minimal_example(event_type).unwrap();
        let stream = match crate::catalogue::stream_kind(event_type).unwrap() {
            "member" => format!("member-{workspace}:usr_{entity}"),
            "billing" | "workspace" => format!("billing-{workspace}"),
            kind => format!("{kind}-x_{entity}"),
        };
        if data.get("run_id").is_some() {
            data["run_id"] = json!(format!("run_{}", entity % 3));
        }
        if data.get("to_workspace").is_some() {
            data["to_workspace"] = json!("ws_9");
        }
        event(position, &stream, event_type, &workspace, data)
    }

    /// Applies `events` the way the SQL writer does: load the rows the batch touches, apply
    /// the batch to them alone, write them back (deleting rows that went away).
    fn apply_batch<M: ReadModel>(state: &mut State<M::Row>, events: &[RecordedEvent]) {
        let parsed: Vec<_> = events
            .iter()
            .map(|event| (event, parse_data(&event.event_type, &event.data).unwrap()))
            .collect();
        let keys: std::collections::BTreeSet<String> = parsed
            .iter()
            .flat_map(|(event, data)| M::keys(event, data))
            .collect();
        let mut touched: State<M::Row> = keys
            .iter()
            .filter_map(|key| state.get(key).map(|row| (key.clone(), row.clone())))
            .collect();
        for (event, data) in &parsed {
            M::apply(&mut touched, event, data);
        }
        for key in keys {
            match touched.remove(&key) {
                Some(row) => state.insert(key, row),
                None => state.remove(&key),
            };
        }
    }

    fn check_model<M: ReadModel>(events: &[RecordedEvent], splits: &[usize]) {
        let whole = fold::<M>(events);
        let mut incremental = State::new();
        let mut start = 0;
        for &split in splits.iter().chain(std::iter::once(&events.len())) {
            let end = split.clamp(start, events.len());
            apply_batch::<M>(&mut incremental, &events[start..end]);
            start = end;
        }
        assert_eq!(whole, incremental, "{}", M::NAME);
    }

    proptest! {
        #[test]
        fn replay_in_one_go_equals_applying_in_batches(
            picks in prop::collection::vec((0..TYPES.len(), 0u8..4), 1..120),
            mut splits in prop::collection::vec(0usize..120, 0..8),
        ) {
            let events: Vec<RecordedEvent> = picks
                .iter()
                .enumerate()
                .map(|(index, (type_index, entity))| arbitrary_event(index as u64 + 1, *type_index, *entity))
                .collect();
            splits.sort_unstable();
            check_model::<Machines>(&events, &splits);
            check_model::<Sessions>(&events, &splits);
            check_model::<Schedules>(&events, &splits);
            check_model::<Runs>(&events, &splits);
            check_model::<Members>(&events, &splits);
            check_model::<BillingModel>(&events, &splits);
            check_model::<ActivityFeed>(&events, &splits);
        }
    }
}
