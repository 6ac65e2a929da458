//! Live updates: one workspace's events as Server-Sent Events (`GET …/live`) and over WebSocket
//! (`GET …/live/ws`).
//!
//! Every connection is a [`Follower`] with its own position. Near the head it takes its events
//! from the shared [`Feed`] (read from the log and encoded once for every stream); further
//! behind it reads the log itself in pages. Nothing is pushed into a connection's buffer, so a
//! slow client only falls behind on its own position and never slows the appender or other
//! clients; it holds at most one page of events in memory.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use chronicle_domain::catalogue::ReplayTransport;
use chronicle_domain::{Actor, Context};
use chronicle_store::{Store, StoreError};
use futures::StreamExt;
use serde::Deserialize;
use tokio::sync::watch;

use crate::admission::Admitted;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::events::query;
use crate::export::{Replay, record_replay};
use crate::feed::{Feed, Listener, LiveEvent, Read};
use crate::search::requester;
use crate::server::AppState;

/// How live streams behave.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// How often an idle SSE stream sends a keep-alive comment.
    pub keep_alive: Duration,
    /// Events one connection reads from the log at a time: its memory bound.
    pub page_size: u32,
    /// The newest events kept, encoded, for every stream to share.
    pub recent_events: usize,
}

impl Default for LiveConfig {
    /// Returns a keep-alive every 15 s, pages of 500 events, at most 1,000 live streams and the
    /// newest 20,000 events shared.
    fn default() -> LiveConfig {
        LiveConfig {
            keep_alive: Duration::from_secs(15),
            page_size: 500,
            recent_events: 20_000,
        }
    }
}

/// Event types to keep: exact types and `prefix.*` patterns; `*` alone keeps every type.
#[derive(Debug, Clone, Default)]
pub(crate) struct TypeFilter {
    exact: Vec<String>,
    /// Prefixes with their trailing dot (`machine.` for `machine.*`).
    prefixes: Vec<String>,
    everything: bool,
}

impl TypeFilter {
    /// Parses patterns; the error names the first one that is not a type or a `prefix.*`.
    pub(crate) fn parse<'a>(
        patterns: impl IntoIterator<Item = &'a str>,
    ) -> Result<TypeFilter, String> {
        let mut filter = TypeFilter::default();
        for pattern in patterns {
            if pattern == "*" {
                filter.everything = true;
            } else if let Some(prefix) = pattern.strip_suffix(".*")
                && is_type_name(prefix)
            {
                filter.prefixes.push(format!("{prefix}."));
            } else if is_type_name(pattern) {
                filter.exact.push(pattern.to_owned());
            } else {
                return Err(format!(
                    "`{pattern}` is neither an event type nor a `prefix.*` pattern"
                ));
            }
        }
        Ok(filter)
    }

    /// Returns whether nothing was asked for.
    pub(crate) fn is_empty(&self) -> bool {
        !self.everything && self.exact.is_empty() && self.prefixes.is_empty()
    }

    /// Returns whether an event of this type passes; an empty filter passes every type.
    pub(crate) fn matches(&self, event_type: &str) -> bool {
        self.is_empty()
            || self.everything
            || self.exact.iter().any(|exact| exact == event_type)
            || self
                .prefixes
                .iter()
                .any(|prefix| event_type.starts_with(prefix.as_str()))
    }
}

/// Dot-separated words of lowercase letters, digits and underscores, as in `machine.renamed`.
fn is_type_name(text: &str) -> bool {
    !text.is_empty()
        && text.split('.').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Follows one workspace's events, filtered by type, from a position.
pub(crate) struct Follower {
    store: Store,
    workspace: String,
    filter: TypeFilter,
    /// Every event of the workspace up to here has been read (returned or filtered out).
    position: u64,
    page: VecDeque<Arc<LiveEvent>>,
    page_size: u32,
    feed: Feed,
    /// Keeps the feed following the log while this stream lives.
    fed: Listener,
    stopping: watch::Receiver<bool>,
    /// A live stream's place (`ApiConfig::bounds`), given back when the stream ends.
    slot: Option<Admitted>,
}

impl Follower {
    pub(crate) fn new(
        state: &AppState,
        workspace: String,
        filter: TypeFilter,
        after: u64,
        page_size: u32,
    ) -> Follower {
        Follower {
            store: state.store.clone(),
            workspace,
            filter,
            position: after,
            page: VecDeque::new(),
            page_size: page_size.max(1),
            feed: state.feed.clone(),
            fed: state.feed.listen(),
            stopping: state.stopping.subscribe(),
            slot: None,
        }
    }

    /// Returns the next matching event, waiting for one to commit; `None` once the server is
    /// stopping. Cancel-safe: state changes only between awaits, so a dropped call loses nothing.
    pub(crate) async fn next(&mut self) -> Result<Option<Arc<LiveEvent>>, StoreError> {
        loop {
            if let Some(event) = self.page.pop_front() {
                return Ok(Some(event));
            }
            if *self.stopping.borrow() {
                return Ok(None);
            }
            // Every event up to the position seen here is committed and in the feed (or older
            // than it) before the reads below; a later fill marks the watch changed.
            let head = *self.fed.filled.borrow_and_update();
            if head > self.position {
                let read = self.feed.read(
                    &self.workspace,
                    &self.filter,
                    self.position,
                    self.page_size as usize,
                );
                if let Read::Events(events, reached) = read {
                    self.position = reached;
                    self.page.extend(events);
                    continue;
                }
                // Further behind than the feed holds: read the log.
                let events = self
                    .store
                    .read_workspace(&self.workspace, self.position, self.page_size)
                    .await?;
                let full_page = events.len() == self.page_size as usize;
                let last = events.last().map_or(self.position, |event| event.position);
                // A short page holds every event of the workspace up to `head` (and perhaps some
                // committed since).
                self.position = if full_page { last } else { last.max(head) };
                let filter = &self.filter;
                self.page.extend(
                    events
                        .iter()
                        .filter(|event| filter.matches(&event.event_type))
                        .map(|event| Arc::new(LiveEvent::new(event))),
                );
                continue;
            }
            // Either watch closing means the server is going away.
            let changed = tokio::select! {
                changed = self.fed.filled.changed() => changed,
                changed = self.stopping.changed() => changed,
            };
            if changed.is_err() {
                return Ok(None);
            }
        }
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LiveQuery {
    after: Option<String>,
    types: Option<String>,
}

/// What a live request asks for and who asks.
struct LiveRequest {
    workspace: String,
    headers: HeaderMap,
    live: Result<Query<LiveQuery>, QueryRejection>,
    requester: (Actor, Context),
    /// The id of the token that asks, which the stream's place is counted against.
    token_id: String,
    transport: ReplayTransport,
}

impl LiveRequest {
    fn new(
        workspace: String,
        principal: Principal,
        connection: Option<Extension<ConnectInfo<SocketAddr>>>,
        headers: HeaderMap,
        live: Result<Query<LiveQuery>, QueryRejection>,
        transport: ReplayTransport,
    ) -> LiveRequest {
        LiveRequest {
            workspace,
            token_id: principal.token_id.clone(),
            requester: requester(principal, connection, &headers),
            headers,
            live,
            transport,
        }
    }
}

/// Builds the follower a live request asks for: from `Last-Event-ID` when present, else
/// `after`, else the start of the workspace. A replay of more than
/// [`REPLAY_RECORDED_ABOVE`](crate::export::REPLAY_RECORDED_ABOVE) past events is recorded
/// first.
async fn follower(state: &AppState, request: LiveRequest) -> Result<Follower, ApiError> {
    let live = query(request.live)?;
    let last_event_id = request
        .headers
        .get("last-event-id")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "Last-Event-ID",
                        "Last-Event-ID is the position of the last event received",
                    )
                })
        })
        .transpose()?;
    let after = live
        .after
        .as_deref()
        .map(|text| {
            text.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid_parameter("after", "after is a log position: a number")
            })
        })
        .transpose()?;
    let patterns: Vec<String> = live
        .types
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|pattern| !pattern.is_empty())
        .map(str::to_owned)
        .collect();
    let filter = TypeFilter::parse(patterns.iter().map(String::as_str))
        .map_err(|message| ApiError::invalid_parameter("types", message))?;
    let after = last_event_id.or(after).unwrap_or(0);
    let slot = state.live_streams.admit(&request.token_id)?;
    let replay = Replay {
        workspace: &request.workspace,
        after,
        types: patterns,
        transport: request.transport,
    };
    record_replay(state, replay, request.requester).await?;
    let page_size = state.config.live.page_size;
    let mut follower = Follower::new(state, request.workspace, filter, after, page_size);
    follower.slot = Some(slot);
    Ok(follower)
}

/// `GET /v1/workspaces/WS/live?after=P&types=…`: the workspace's events as Server-Sent Events.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/live", tag = "live", params(("workspace" = String, Path), LiveQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this position; wins over `after`")),
    description = "The workspace's events as Server-Sent Events: catch-up, then live (scope `read`). A catch-up of more than 1,000 past events is recorded as `audit.replayed` before the first.",
    responses((status = 200, description = "`id: POSITION`, `event: TYPE`, `data: <recorded event>` per message", content_type = "text/event-stream", body = String), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "too_many_subscribers: every live stream slot is taken", body = ErrorBody)))]
pub(crate) async fn server_sent_events(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    live: Result<Query<LiveQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let request = LiveRequest::new(
        workspace,
        principal,
        connection,
        headers,
        live,
        ReplayTransport::Sse,
    );
    let follower = follower(&state, request).await?;
    let frames = Box::pin(futures::stream::unfold(
        follower,
        |mut follower| async move {
            match follower.next().await {
                Ok(Some(event)) => Some((frame(&event, &mut follower), follower)),
                Ok(None) => None,
                Err(error) => {
                    // The client reconnects with Last-Event-ID and loses nothing.
                    tracing::warn!(error = %error, workspace = %follower.workspace, "live stream ended");
                    None
                }
            }
        },
    ));
    // Keep-alives go beside the frames: the frames' stream keeps a read of the log in flight
    // across a keep-alive (dropping `Follower::next` there would start it over).
    let keep_alive = state.config.live.keep_alive;
    let idle = Box::pin(tokio::time::sleep(keep_alive));
    let messages =
        futures::stream::unfold((frames, idle), move |(mut frames, mut idle)| async move {
            let message = tokio::select! {
                frame = frames.next() => frame?,
                () = &mut idle => Bytes::from_static(KEEP_ALIVE),
            };
            idle.as_mut()
                .reset(tokio::time::Instant::now() + keep_alive);
            Some((Ok::<_, Infallible>(message), (frames, idle)))
        });
    Ok((
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(messages),
    )
        .into_response())
}

/// The comment an idle SSE stream sends every `keep_alive`.
const KEEP_ALIVE: &[u8] = b": \n\n";

/// A frame past this many bytes takes no further event.
const FRAME_BYTES: usize = 64 * 1024;

/// One HTTP frame: the event's SSE message, as the feed encoded it once for every stream, and
/// the messages the page already holds after it, up to [`FRAME_BYTES`] (a frame per event held
/// 100 subscribers at 7,400–8,300 events/s; one write for what is ready keeps them at 10,000).
fn frame(event: &LiveEvent, follower: &mut Follower) -> Bytes {
    if follower.page.is_empty() {
        return event.sse();
    }
    let mut frame = event.sse().to_vec();
    while frame.len() < FRAME_BYTES
        && let Some(event) = follower.page.pop_front()
    {
        frame.extend_from_slice(&event.sse());
    }
    Bytes::from(frame)
}

/// `GET /v1/workspaces/WS/live/ws?after=P&types=…`: the same events as WebSocket text messages.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/live/ws", tag = "live", params(("workspace" = String, Path), LiveQuery),
    description = "The same events as WebSocket text messages (scope `read`); a catch-up of more than 1,000 past events is recorded as `audit.replayed` first.",
    responses((status = 101, description = "Switching to WebSocket"), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "too_many_subscribers: every live stream slot is taken", body = ErrorBody)))]
pub(crate) async fn websocket(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    live: Result<Query<LiveQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            "websocket_required",
            rejection.body_text(),
        )
    })?;
    let request = LiveRequest::new(
        workspace,
        principal,
        connection,
        headers,
        live,
        ReplayTransport::Websocket,
    );
    let follower = follower(&state, request).await?;
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(|socket| follow_over_websocket(socket, follower))
        .into_response())
}

/// The largest message a live WebSocket client may send: it only closes and pings, so a larger
/// one ends the socket before it is buffered.
const MAX_CLIENT_MESSAGE_BYTES: usize = 4 * 1024;

async fn follow_over_websocket(mut socket: WebSocket, mut follower: Follower) {
    loop {
        tokio::select! {
            next = follower.next() => match next {
                Ok(Some(event)) => {
                    if socket.send(Message::Text(event.json().into())).await.is_err() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(error = %error, workspace = %follower.workspace, "live websocket ended");
                    break;
                }
            },
            // The client only closes; pings are answered by the socket itself.
            incoming = socket.recv() => {
                if matches!(incoming, None | Some(Err(_)) | Some(Ok(Message::Close(_)))) {
                    return;
                }
            }
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}

#[cfg(test)]
mod tests {
    use super::TypeFilter;

    #[test]
    fn type_filters_match_exact_types_and_prefixes() {
        let filter = TypeFilter::parse(["machine.*", "session.started"]).unwrap();
        assert!(filter.matches("machine.renamed"));
        assert!(filter.matches("machine.registered"));
        assert!(filter.matches("session.started"));
        assert!(!filter.matches("session.ended"));
        assert!(!filter.matches("machines.renamed"));
        assert!(!filter.matches("machine"));
        assert!(TypeFilter::parse([]).unwrap().matches("anything.at_all"));
        assert!(TypeFilter::parse(["*"]).unwrap().matches("billing.charged"));
    }

    #[test]
    fn type_filters_refuse_other_patterns() {
        for pattern in [
            "",
            "machine*",
            "*.renamed",
            "machine.",
            "Machine.renamed",
            "a b",
            ".*",
        ] {
            assert!(TypeFilter::parse([pattern]).is_err(), "{pattern:?}");
        }
    }
}
