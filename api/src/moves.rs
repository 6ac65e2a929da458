//! `machine.moved`: recorded in both workspaces, and only by a token allowed to append in both.
//!
//! The producer sends the move from the workspace the machine leaves. Chronicle adds, at the end
//! of the same atomic batch, the move's copy in the workspace the machine joins, carrying the
//! machine's attributes as its stream in the source shows them, so each workspace's history is
//! complete and proves itself alone.

use chronicle_domain::models::machines::{Machine, Machines};
use chronicle_domain::models::{State, apply, row_key};
use chronicle_domain::{NewEvent, Place, PreparedEvent, RecordedEvent};
use chronicle_store::{Direction, Store, StoreError};

use crate::auth::Principal;
use crate::error::ApiError;

/// Events read at once while folding a machine's stream.
const FOLD_PAGE: u32 = 1_000;

/// Where the events of an expanded batch came from: the first `sent` are the batch as sent,
/// each one after them the arrival of the move at `arrivals_of[i]`.
pub(crate) struct SentIndex {
    pub sent: usize,
    arrivals_of: Vec<usize>,
}

impl SentIndex {
    /// The index in the batch as sent of the event at `index` of the expanded batch.
    fn of(&self, index: usize) -> usize {
        index
            .checked_sub(self.sent)
            .map_or(index, |arrival| self.arrivals_of[arrival])
    }

    /// Renumbers an error about the expanded batch to name the event as sent.
    pub fn renumber(&self, mut error: StoreError) -> StoreError {
        if let StoreError::WrongExpectedVersion { index, .. }
        | StoreError::DuplicateEventId { index, .. }
        | StoreError::EventTooLarge { index, .. } = &mut error
        {
            *index = self.of(*index);
        }
        error
    }
}

/// Adds the arrival of every `machine.moved` of the batch. A destination the token may not
/// append in is the same 404 as any other workspace it cannot see.
pub(crate) async fn with_arrivals(
    store: &Store,
    principal: &Principal,
    mut events: Vec<PreparedEvent>,
) -> Result<(Vec<PreparedEvent>, SentIndex), ApiError> {
    let sent = events.len();
    let mut arrivals = Vec::new();
    let mut arrivals_of = Vec::new();
    for (index, prepared) in events.iter().enumerate() {
        let event = &prepared.event;
        if event.event_type != "machine.moved" {
            continue;
        }
        let destination = event.data["to_workspace"].as_str().unwrap_or_default();
        if !principal.may_see(Some(destination)) {
            return Err(
                ApiError::not_found(format!("event {index}: no workspace {destination}"))
                    .with("index", index),
            );
        }
        let earlier = events[..index]
            .iter()
            .filter(|earlier| earlier.stream_key == prepared.stream_key);
        let machine = current_machine(store, event, earlier).await?;
        let arrival = event
            .arrival(machine.and_then(|machine| machine.attributes()))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_event",
                    format!("event {index}: a move needs a valid to_workspace"),
                )
                .with("index", index)
                .with("field", "data.to_workspace")
            })?;
        arrivals.push(PreparedEvent::new(arrival, &principal.token_id));
        arrivals_of.push(index);
    }
    events.extend(arrivals);
    Ok((events, SentIndex { sent, arrivals_of }))
}

/// Folds the moved machine's stream in the workspace it leaves into its row, page by page, then
/// the events of the batch before the move on the same stream. The move itself, already
/// recorded when this is a retry, is left out: a retry finds the machine as the first try did.
async fn current_machine(
    store: &Store,
    moved: &NewEvent,
    earlier_in_batch: impl Iterator<Item = &PreparedEvent>,
) -> Result<Option<Machine>, ApiError> {
    let workspace = moved.workspace.as_deref().unwrap_or_default();
    let stream = moved.stream.as_str();
    let mut state = State::new();
    let mut from_version = 1;
    loop {
        let page: Vec<RecordedEvent> = store
            .read_stream(
                Some(workspace),
                stream,
                Some(from_version),
                FOLD_PAGE,
                Direction::Forward,
            )
            .await?;
        for event in page.iter().filter(|event| event.id != moved.id) {
            apply::<Machines>(&mut state, event);
        }
        match page.last() {
            Some(last) if page.len() == FOLD_PAGE as usize => {
                from_version = last.stream_version + 1
            }
            _ => break,
        }
    }
    for earlier in earlier_in_batch {
        let unplaced = Place {
            position: 0,
            stream_version: 0,
            workspace_seq: None,
        };
        apply::<Machines>(
            &mut state,
            &earlier.event.record(unplaced, &earlier.event.occurred_at),
        );
    }
    let id = stream.split_once('-').map_or(stream, |(_, id)| id);
    Ok(state.remove(&row_key(workspace, id)))
}
