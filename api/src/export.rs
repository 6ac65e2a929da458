//! Exports and evidence: `GET /v1/workspaces/WS/audit/export` streams every hit of an audit
//! query as NDJSON, CSV or Parquet; `POST /v1/workspaces/WS/evidence` answers a verifiable
//! evidence bundle (zip).
//!
//! Both are recorded before their first byte leaves (`audit.exported` with the count of hits
//! about to be sent, `evidence.exported` with the bundle's count and tree size): a read whose
//! record cannot be written is refused, and a client that hangs up halfway has been recorded.
//! Both then stream their body: a writer thread of `chronicle-evidence` encodes pages as they
//! are read and hands the bytes to the response in chunks, so memory stays flat however large
//! the answer. A writing that fails ends the body in an error, never complete-looking.

use std::io::Write;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chronicle_domain::catalogue::ReplayTransport;
use chronicle_domain::{Actor, Context, parse_timestamp};
use chronicle_evidence::{
    BundleRequest, EvidenceError, ExportTask, content_type, format_name, parse_format, plan_bundle,
    write_bundle,
};
use chronicle_search::{
    AuditQuery, AuditRecord, FacetRequest, SearchError, SearchRequest, SearchResults, insert_range,
    record_audit,
};
use serde::Deserialize;
use serde_json::{Map, json};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::events::{min_position, query};
use crate::search::{MIN_POSITION_WAIT, check_workspace, requester, time_range};
use crate::server::AppState;

/// Hits read from the index and the log at a time.
const EXPORT_PAGE: usize = 5_000;
/// Bytes handed to the response at a time.
const CHUNK: usize = 64 * 1024;

type Chunk = Result<Vec<u8>, std::io::Error>;

/// A `Write` into the response: full chunks go out as they fill; the last stays in hand until
/// [`ResponseSink::into_tail`] takes it.
struct ResponseSink {
    chunks: mpsc::Sender<Chunk>,
    buffer: Vec<u8>,
}

impl ResponseSink {
    fn new(chunks: mpsc::Sender<Chunk>) -> ResponseSink {
        ResponseSink {
            chunks,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    /// Returns what has not been sent yet.
    fn into_tail(self) -> Vec<u8> {
        self.buffer
    }
}

impl Write for ResponseSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            let full = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
            // Runs on the writer thread, never on an async worker.
            self.chunks.blocking_send(Ok(full)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")
            })?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The response body fed by `chunks`, with its media type and file name.
fn streamed(chunks: mpsc::Receiver<Chunk>, media_type: &'static str, file_name: &str) -> Response {
    let stream = futures::stream::unfold(chunks, |mut chunks| async move {
        chunks.recv().await.map(|chunk| (chunk, chunks))
    });
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{file_name}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    response
}

/// Ends a streamed answer: sends the held-back tail, or, when the writing failed, ends the
/// body in an error so the client sees a broken transfer rather than a complete-looking one.
async fn conclude(chunks: mpsc::Sender<Chunk>, written: Result<ResponseSink, EvidenceError>) {
    let outcome = written.map(ResponseSink::into_tail).map_err(|error| {
        tracing::warn!(error = %error, "export failed; the answer is cut short");
        std::io::Error::other(error.to_string())
    });
    let _ = chunks.send(outcome).await;
}

/// Records a bulk read before its first byte leaves; a read that cannot be recorded is refused.
pub(crate) async fn record_read(state: &AppState, record: AuditRecord) -> Result<(), ApiError> {
    record_audit(&state.store, record, OffsetDateTime::now_utc())
        .await
        .map(|_| ())
        .map_err(|error| {
            tracing::error!(error = %error, "cannot record a bulk read; it is refused");
            ApiError::from(error)
        })
}

/// A live stream or webhook that reads more than this many past events is recorded.
pub(crate) const REPLAY_RECORDED_ABOVE: u64 = 1_000;

/// One replay of a workspace's history to a follower.
pub(crate) struct Replay<'a> {
    pub(crate) workspace: &'a str,
    /// The position it starts after.
    pub(crate) after: u64,
    /// The type patterns asked for.
    pub(crate) types: Vec<String>,
    pub(crate) transport: ReplayTransport,
}

/// Records `audit.replayed` when the replay is about to read more than
/// [`REPLAY_RECORDED_ABOVE`] past events; a replay that cannot be recorded is refused.
pub(crate) async fn record_replay(
    state: &AppState,
    replay: Replay<'_>,
    (actor, context): (Actor, Context),
) -> Result<(), ApiError> {
    let count = state
        .store
        .count_workspace_after(replay.workspace, replay.after)
        .await?;
    if count <= REPLAY_RECORDED_ABOVE {
        return Ok(());
    }
    let mut data = Map::new();
    data.insert("after".into(), json!(replay.after));
    data.insert("types".into(), json!(replay.types));
    data.insert("count".into(), json!(count));
    data.insert("transport".into(), json!(replay.transport));
    let record = AuditRecord {
        workspace: replay.workspace.to_owned(),
        event_type: "audit.replayed",
        data,
        actor,
        context,
    };
    record_read(state, record).await
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportParameters {
    /// The audit query (as for `/audit`); empty for every event of the workspace.
    #[serde(default)]
    q: String,
    from: Option<String>,
    to: Option<String>,
    /// `ndjson` (default), `csv` or `parquet`.
    format: Option<String>,
    /// Wait (up to 5 s) until the index has reached this log position.
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    min_position: Option<u64>,
}

/// `GET /v1/workspaces/WS/audit/export?q=&from=&to=&format=ndjson|csv|parquet`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/audit/export", tag = "audit", params(("workspace" = String, Path), ExportParameters),
    description = "Streams every hit of an audit query (newest first, as `/audit` orders them) as NDJSON (each line a recorded event), CSV or Parquet; the export is recorded as `audit.exported`, with the count of hits it is about to send, before its first byte (scope `export`).",
    responses((status = 200, description = "The export", content((String = "application/x-ndjson"), (String = "text/csv"), (Vec<u8> = "application/vnd.apache.parquet"))), (status = 400, description = "invalid_query (with `position`) or invalid_parameter", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up: the index did not reach min_position in 5 s", body = ErrorBody)))]
pub(crate) async fn export(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    parameters: Result<Query<ExportParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let parameters = query(parameters)?;
    check_workspace(&workspace)?;
    let (from, to) = time_range(parameters.from.as_deref(), parameters.to.as_deref())?;
    let format = match parameters.format.as_deref() {
        None => chronicle_evidence::Format::Ndjson,
        Some(name) => parse_format(name).ok_or_else(|| {
            ApiError::invalid_parameter("format", "format is ndjson, csv or parquet")
        })?,
    };
    let parsed = AuditQuery::parse(&parameters.q).map_err(SearchError::from)?;
    let place = state.exports.admit(&principal.token_id)?;
    if let Some(position) = min_position(parameters.min_position)? {
        state.search.wait_for(position, MIN_POSITION_WAIT).await?;
    }
    let request = SearchRequest {
        workspace: workspace.clone(),
        query: parsed,
        from,
        to,
        limit: EXPORT_PAGE,
        cursor: None,
        facets: FacetRequest::default(),
    };
    // The first page is read before answering, so a query the index refuses is a 400, and its
    // total is the count the record announces.
    let first = state.search.search(request.clone()).await?;
    let (actor, context) = requester(principal, connection, &headers);
    let mut data = Map::new();
    data.insert("query".into(), json!(parameters.q));
    data.insert("format".into(), json!(format_name(format)));
    insert_range(&mut data, from, to);
    data.insert("count".into(), json!(first.total));
    let record = AuditRecord {
        workspace,
        event_type: "audit.exported",
        data,
        actor,
        context,
    };
    record_read(&state, record).await?;

    let (chunks, body) = mpsc::channel(4);
    let task = ExportTask::spawn(format, ResponseSink::new(chunks.clone()));
    tokio::spawn(async move {
        let fed = feed_export(&state, &task, request, first).await;
        let written = task.finish().await;
        let written = match (fed, written) {
            (Err(error), _) => Err(error),
            (Ok(()), written) => written,
        };
        conclude(chunks, written.map(|(_, sink)| sink)).await;
        drop(place);
    });
    let file_name = format!("audit-export.{}", format_name(format));
    Ok(streamed(body, content_type(format), &file_name))
}

/// Reads every page of the search after `first` and hands the events to the writer, in order.
async fn feed_export(
    state: &AppState,
    task: &ExportTask<ResponseSink>,
    mut request: SearchRequest,
    first: SearchResults,
) -> Result<(), EvidenceError> {
    let mut results = first;
    loop {
        let events = state.store.events_at(&results.positions).await?;
        if !events.is_empty() && !task.write(events).await {
            // The writer stopped; its error comes out of `finish`.
            return Ok(());
        }
        let Some(cursor) = results.next_cursor else {
            return Ok(());
        };
        request.cursor = Some(cursor);
        results = state
            .search
            .search(request.clone())
            .await
            .map_err(|error| EvidenceError::Internal(format!("search: {error}")))?;
    }
}

/// The body of `POST /v1/workspaces/WS/evidence`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct EvidenceBody {
    /// The start of the `recorded_at` range (inclusive), RFC 3339.
    from: String,
    /// The end of the `recorded_at` range (exclusive), RFC 3339.
    to: String,
}

/// `POST /v1/workspaces/WS/evidence` with `{"from", "to"}`.
#[utoipa::path(post, path = "/v1/workspaces/{workspace}/evidence", tag = "audit", params(("workspace" = String, Path)), request_body = EvidenceBody,
    description = "Answers an evidence bundle (zip): every event of the workspace recorded in [from, to) as NDJSON and Parquet, each event's inclusion proof in the workspace tree, the boundary events that show the range is complete, the signed checkpoint, the public key and a manifest of SHA-256 hashes. `chronicle verify BUNDLE` checks it offline. Recorded as `evidence.exported`, with its count and tree size, before its first byte (scope `export`).",
    responses((status = 200, description = "The bundle", content_type = "application/zip", body = Vec<u8>), (status = 400, description = "invalid_body or invalid_parameter", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn evidence(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<EvidenceBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|rejection| {
        ApiError::new(rejection.status(), "invalid_body", rejection.body_text())
    })?;
    check_workspace(&workspace)?;
    let time = |text: &str, field: &str| {
        parse_timestamp(text).map_err(|_| {
            ApiError::bad_request(
                "invalid_body",
                format!("{field} must be an RFC 3339 timestamp"),
            )
            .with("field", field)
        })
    };
    let (from, to) = (time(&body.from, "from")?, time(&body.to, "to")?);
    if to < from {
        return Err(
            ApiError::bad_request("invalid_body", "to must not be before from").with("field", "to"),
        );
    }
    let request = BundleRequest {
        workspace: workspace.clone(),
        from,
        to,
    };
    let place = state.exports.admit(&principal.token_id)?;
    let plan = plan_bundle(&state.store, &request).await?;
    let summary = plan.summary();
    let (actor, context): (Actor, Context) = requester(principal, connection, &headers);
    let mut data = Map::new();
    insert_range(&mut data, Some(from), Some(to));
    data.insert("count".into(), json!(summary.count));
    data.insert("tree_size".into(), json!(summary.tree_size));
    let file_name = format!("evidence-{workspace}.zip");
    let record = AuditRecord {
        workspace,
        event_type: "evidence.exported",
        data,
        actor,
        context,
    };
    record_read(&state, record).await?;

    let (chunks, answer) = mpsc::channel(4);
    tokio::spawn(async move {
        let written = write_bundle(&state.store, plan, ResponseSink::new(chunks.clone())).await;
        conclude(chunks, written).await;
        drop(place);
    });
    Ok(streamed(answer, "application/zip", &file_name))
}
