//! Appending to the log and reading it back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use chronicle_domain::{NewEvent, PreparedEvent, RecordedEvent, is_workspace_name};
use chronicle_store::{Appended, Direction, Head};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::moves;
use crate::server::AppState;

/// Bodies larger than this are parsed and validated off the async workers.
const INLINE_VALIDATION_BYTES: usize = 64 * 1024;

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AppendAnswer {
    events: Vec<Appended>,
}

/// `POST /v1/events`: appends one atomic batch.
#[utoipa::path(post, path = "/v1/events", tag = "log", request_body = Object,
    description = "Appends one atomic batch of at most 10,000 events and 16 MiB (scope `append`).",
    responses((status = 200, description = "Where each event landed, in order", body = AppendAnswer),
        (status = 409, description = "wrong_expected_version or duplicate_event_id", body = ErrorBody),
        (status = 413, description = "batch_too_large, or event_too_large (an event past 65,535 bytes of leaf data)", body = ErrorBody),
        (status = 503, description = "The store cannot take writes now", body = ErrorBody), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn append(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<AppendAnswer>, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            batch_too_large(&state)
        } else {
            ApiError::bad_request("invalid_body", rejection.body_text())
        }
    })?;
    let max_events = state.config.max_batch_events;
    let events = if body.len() <= INLINE_VALIDATION_BYTES {
        prepare_batch(&body, max_events, &principal.token_id)?
    } else {
        let submitter = principal.token_id.clone();
        tokio::task::spawn_blocking(move || prepare_batch(&body, max_events, &submitter))
            .await
            .map_err(|_| ApiError::bad_request("invalid_body", "could not read the batch"))??
    };
    // A token bound to one workspace sees no other: an event of another is "not found".
    if let Some(index) = events
        .iter()
        .position(|prepared| !principal.may_see(prepared.event.workspace.as_deref()))
    {
        let workspace = events[index].event.workspace.as_deref().unwrap_or("(none)");
        return Err(
            ApiError::not_found(format!("event {index}: no workspace {workspace}"))
                .with("index", index),
        );
    }
    let (events, sent) = moves::with_arrivals(&state.store, &principal, events).await?;
    let mut events = state
        .store
        .append(events)
        .await
        .map_err(|error| sent.renumber(error))?;
    events.truncate(sent.sent);
    Ok(Json(AppendAnswer { events }))
}

fn batch_too_large(state: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "batch_too_large",
        format!(
            "a batch holds at most {} events and {} bytes",
            state.config.max_batch_events, state.config.max_batch_bytes
        ),
    )
    .with("max_events", state.config.max_batch_events)
    .with("max_bytes", state.config.max_batch_bytes)
}

/// Parses and validates a batch submitted by the token `submitter`; the first bad event is named
/// by index and field.
fn prepare_batch(
    body: &[u8],
    max_events: usize,
    submitter: &str,
) -> Result<Vec<PreparedEvent>, ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Batch {
        events: Vec<Value>,
    }
    let batch: Batch = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(
            "invalid_body",
            format!("expected {{\"events\": [EVENT, …]}}: {error}"),
        )
    })?;
    if batch.events.is_empty() {
        return Err(ApiError::bad_request(
            "empty_batch",
            "a batch holds at least one event",
        ));
    }
    if batch.events.len() > max_events {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a batch holds at most {max_events} events; this one has {}",
                batch.events.len()
            ),
        )
        .with("max_events", max_events));
    }
    // Each parsed event is dropped once validated, so a batch is held parsed and prepared at
    // once only one event at a time.
    batch
        .events
        .into_iter()
        .enumerate()
        .map(|(index, value)| {
            NewEvent::from_json(&value, Uuid::now_v7())
                .map(|event| PreparedEvent::new(event, submitter))
                .map_err(|invalid| {
                    ApiError::bad_request("invalid_event", format!("event {index}: {invalid}"))
                        .with("index", index)
                        .with("field", invalid.field.as_str())
                })
        })
        .collect()
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogPage {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LogAnswer {
    events: Vec<RecordedEvent>,
    next: u64,
}

const MAX_PAGE: u32 = 1_000;
const DEFAULT_PAGE: u32 = 100;

fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(ApiError::invalid_parameter(
            "limit",
            "limit must be at least 1",
        )),
        n if n > MAX_PAGE => Err(ApiError::invalid_parameter(
            "limit",
            format!("limit must be at most {MAX_PAGE}"),
        )),
        n => Ok(n),
    }
}

pub(crate) fn query<T>(query: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    query
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::bad_request("invalid_parameter", rejection.body_text()))
}

/// The largest log position there can be: positions are stored as signed 64-bit integers.
pub(crate) const MAX_POSITION: u64 = i64::MAX as u64;

/// Refuses a position parameter no log can reach (`min_position`, `after`), before anything
/// waits for it or reads past it.
pub(crate) fn log_position(
    parameter: &'static str,
    value: Option<u64>,
) -> Result<Option<u64>, ApiError> {
    match value {
        Some(position) if position > MAX_POSITION => Err(ApiError::invalid_parameter(
            parameter,
            format!("{parameter} is a log position, at most {MAX_POSITION}"),
        )),
        other => Ok(other),
    }
}

/// [`log_position`] of `min_position`.
pub(crate) fn min_position(value: Option<u64>) -> Result<Option<u64>, ApiError> {
    log_position("min_position", value)
}

/// `GET /v1/events?after=P&limit=N`: the log after P.
#[utoipa::path(get, path = "/v1/events", tag = "log", params(LogPage),
    description = "The log after a position (scope `admin`).",
    responses((status = 200, body = LogAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn read_log(
    State(state): State<AppState>,
    page: Result<Query<LogPage>, QueryRejection>,
) -> Result<Json<LogAnswer>, ApiError> {
    let page = query(page)?;
    let limit = page_limit(page.limit)?;
    log_position("after", Some(page.after))?;
    let events = state.store.read_all(page.after, limit).await?;
    let next = events.last().map_or(page.after, |event| event.position);
    Ok(Json(LogAnswer { events, next }))
}

/// `?workspace=WS` of the admin's global forms: the workspace an event id or stream lives in
/// (none: the account and token streams of no workspace).
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct InWorkspace {
    workspace: Option<String>,
}

impl InWorkspace {
    fn validated(self) -> Result<Option<String>, ApiError> {
        match self.workspace {
            Some(name) if !is_workspace_name(&name) => Err(ApiError::invalid_parameter(
                "workspace",
                "workspace must be 1 to 64 letters, digits, `_`, `.` or `-`",
            )),
            workspace => Ok(workspace),
        }
    }
}

/// `GET /v1/events/ID?workspace=WS`.
#[utoipa::path(get, path = "/v1/events/{id}", tag = "log", params(("id" = String, Path, description = "The event id (UUID)"), InWorkspace),
    description = "One recorded event of a workspace (`workspace`; none for the events of no workspace), for the admin (scope `admin`).",
    responses((status = 200, body = RecordedEvent), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn read_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
    workspace: Result<Query<InWorkspace>, QueryRejection>,
) -> Result<Json<RecordedEvent>, ApiError> {
    let workspace = query(workspace)?.validated()?;
    event_answer(&state, workspace.as_deref(), &id).await
}

/// `GET /v1/workspaces/WS/events/ID`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/events/{id}", tag = "log", params(("workspace" = String, Path), ("id" = String, Path, description = "The event id (UUID)")),
    description = "One recorded event of the workspace (scope `read`).",
    responses((status = 200, body = RecordedEvent), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn read_workspace_event(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
) -> Result<Json<RecordedEvent>, ApiError> {
    event_answer(&state, Some(&workspace), &id).await
}

async fn event_answer(
    state: &AppState,
    workspace: Option<&str>,
    id: &str,
) -> Result<Json<RecordedEvent>, ApiError> {
    let id = Uuid::parse_str(id)
        .map_err(|_| ApiError::invalid_parameter("id", "an event id is a UUID"))?;
    let event = state.store.event_by_id(workspace, id).await?;
    event
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no event has id {id}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamPage {
    from_version: Option<u64>,
    limit: Option<u32>,
    #[serde(default)]
    #[param(inline)]
    direction: StreamDirection,
}

#[derive(Deserialize, Default, Clone, Copy, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum StreamDirection {
    #[default]
    Forward,
    Backward,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct StreamAnswer {
    stream: String,
    events: Vec<RecordedEvent>,
    /// The `from_version` of the next page, or null at the end.
    next_version: Option<u64>,
}

/// `GET /v1/streams/STREAM?workspace=WS&from_version=V&limit=N&direction=forward|backward`.
#[utoipa::path(get, path = "/v1/streams/{stream}", tag = "log", params(("stream" = String, Path), InWorkspace, StreamPage),
    description = "One stream of a workspace (`workspace`; none for the streams of no workspace) forward or backward, for the admin (scope `admin`).",
    responses((status = 200, body = StreamAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn read_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    workspace: Result<Query<InWorkspace>, QueryRejection>,
    page: Result<Query<StreamPage>, QueryRejection>,
) -> Result<Json<StreamAnswer>, ApiError> {
    let workspace = query(workspace)?.validated()?;
    stream_answer(&state, workspace.as_deref(), stream, query(page)?).await
}

/// `GET /v1/workspaces/WS/streams/STREAM?from_version=V&limit=N&direction=forward|backward`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/streams/{stream}", tag = "log", params(("workspace" = String, Path), ("stream" = String, Path), StreamPage),
    description = "One stream of the workspace forward or backward (scope `read`).",
    responses((status = 200, body = StreamAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn read_workspace_stream(
    State(state): State<AppState>,
    Path((workspace, stream)): Path<(String, String)>,
    page: Result<Query<StreamPage>, QueryRejection>,
) -> Result<Json<StreamAnswer>, ApiError> {
    stream_answer(&state, Some(&workspace), stream, query(page)?).await
}

async fn stream_answer(
    state: &AppState,
    workspace: Option<&str>,
    stream: String,
    page: StreamPage,
) -> Result<Json<StreamAnswer>, ApiError> {
    let limit = page_limit(page.limit)?;
    let direction = match page.direction {
        StreamDirection::Forward => Direction::Forward,
        StreamDirection::Backward => Direction::Backward,
    };
    let store = &state.store;
    let events = store
        .read_stream(workspace, &stream, page.from_version, limit, direction)
        .await?;
    if events.is_empty()
        && store
            .read_stream(workspace, &stream, None, 1, Direction::Backward)
            .await?
            .is_empty()
    {
        return Err(ApiError::not_found(format!(
            "stream {stream} has no events"
        )));
    }
    let full_page = events.len() == limit as usize;
    let next_version = match (direction, events.last()) {
        (Direction::Forward, Some(last)) if full_page => Some(last.stream_version + 1),
        (Direction::Backward, Some(last)) if full_page && last.stream_version > 1 => {
            Some(last.stream_version - 1)
        }
        _ => None,
    };
    Ok(Json(StreamAnswer {
        stream,
        events,
        next_version,
    }))
}

/// `GET /v1/head`.
#[utoipa::path(get, path = "/v1/head", tag = "log", description = "The newest event's position and time (scope `admin`).",
    responses((status = 200, body = Head), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn head(State(state): State<AppState>) -> Json<Head> {
    Json(state.store.head())
}
