//! Audit search: `GET /v1/workspaces/WS/audit`, newest first, with a cursor, the total, facet
//! counts, and the log position the answer reflects.
//!
//! Every answered search is recorded as an `audit.searched` event in the workspace it read. The
//! answer is computed first, from an index that holds nothing after its `position`, so the event
//! that records a search is never among its own hits; it is appended before the answer is sent,
//! so a search whose record cannot be written is not answered (503), and a caller that has its
//! answer can rely on the record being in the log.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chronicle_domain::envelope::{AuthMethod, Transport};
use chronicle_domain::{Actor, ActorKind, Context, RecordedEvent, parse_timestamp};
use chronicle_search::{
    AuditQuery, Cursor, FacetRequest, Facets, SearchError, SearchRecord, SearchRequest,
    record_search,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::events::{min_position, query};
use crate::server::AppState;

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1_000;
/// How long `min_position` waits for the index before answering 503 `not_caught_up`.
pub(crate) const MIN_POSITION_WAIT: Duration = Duration::from_secs(5);

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParameters {
    #[serde(default)]
    q: String,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    min_position: Option<u64>,
    /// `type`, `day` or both, comma-separated.
    facets: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct AuditAnswer {
    hits: Vec<RecordedEvent>,
    total: u64,
    next_cursor: Option<String>,
    position: u64,
    /// Hits per event category (`type`) and per UTC day (`day`), when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    facets: Option<Facets>,
}

/// `GET /v1/workspaces/WS/audit?q=&from=&to=&limit=&cursor=&min_position=&facets=type,day`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/audit", tag = "audit", params(("workspace" = String, Path), AuditParameters),
    description = "Searches the workspace's audit log, newest first; the search is itself recorded as `audit.searched` (scope `read`).",
    responses((status = 200, body = AuditAnswer), (status = 400, description = "invalid_query (with `position`) or invalid_parameter", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up: the index did not reach min_position in 5 s", body = ErrorBody)))]
pub(crate) async fn audit(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    parameters: Result<Query<AuditParameters>, QueryRejection>,
) -> Result<Json<AuditAnswer>, ApiError> {
    let parameters = query(parameters)?;
    check_workspace(&workspace)?;
    let (from, to) = time_range(parameters.from.as_deref(), parameters.to.as_deref())?;
    let limit = match parameters.limit.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => limit as usize,
        _ => {
            return Err(ApiError::invalid_parameter(
                "limit",
                format!("limit is 1 to {MAX_LIMIT}"),
            ));
        }
    };
    let cursor = parameters
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::decode(text).ok_or_else(|| {
                ApiError::invalid_parameter("cursor", "not a cursor this API handed out")
            })
        })
        .transpose()?;
    let facets = facet_request(parameters.facets.as_deref())?;
    let parsed = AuditQuery::parse(&parameters.q).map_err(SearchError::from)?;
    if let Some(position) = min_position(parameters.min_position)? {
        state.search.wait_for(position, MIN_POSITION_WAIT).await?;
    }

    let results = state
        .search
        .search(SearchRequest {
            workspace: workspace.clone(),
            query: parsed,
            from,
            to,
            limit,
            cursor,
            facets,
        })
        .await?;
    let hits = state.store.events_at(&results.positions).await?;

    let (actor, context) = requester(principal, connection, &headers);
    let record = SearchRecord {
        workspace,
        query: parameters.q,
        from,
        to,
        hits: results.total,
        actor,
        context,
    };
    record_search(&state.store, record, OffsetDateTime::now_utc()).await?;

    Ok(Json(AuditAnswer {
        hits,
        total: results.total,
        next_cursor: results.next_cursor.map(Cursor::encode),
        position: results.position,
        facets: facets.any().then_some(results.facets),
    }))
}

/// Who asked for an audited read (the token) and the request behind it, as the record of the
/// read names them.
pub(crate) fn requester(
    principal: Principal,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> (Actor, Context) {
    let context = Context {
        request_id: headers
            .get("x-request-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        source_ip: connection.map(|Extension(ConnectInfo(address))| address.ip()),
        auth_method: Some(AuthMethod::ApiKey),
        transport: Some(Transport::Rest),
        ..Context::default()
    };
    let actor = Actor {
        kind: ActorKind::ApiToken,
        id: principal.token_id,
        name: Some(principal.name),
    };
    (actor, context)
}

/// Reads the `from` and `to` parameters of an `occurred_at` range; `to` may not be before `from`.
pub(crate) fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<OffsetDateTime>, Option<OffsetDateTime>), ApiError> {
    let from = timestamp(from, "from")?;
    let to = timestamp(to, "to")?;
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        return Err(ApiError::invalid_parameter(
            "to",
            "to must not be before from",
        ));
    }
    Ok((from, to))
}

fn timestamp(text: Option<&str>, parameter: &str) -> Result<Option<OffsetDateTime>, ApiError> {
    text.map(|text| {
        parse_timestamp(text).map_err(|_| {
            ApiError::invalid_parameter(
                parameter,
                format!("{parameter} must be an RFC 3339 timestamp"),
            )
        })
    })
    .transpose()
}

fn facet_request(text: Option<&str>) -> Result<FacetRequest, ApiError> {
    let mut request = FacetRequest::default();
    for name in text.unwrap_or_default().split(',').map(str::trim) {
        match name {
            "" => {}
            "type" => request.types = true,
            "day" => request.days = true,
            other => {
                return Err(ApiError::invalid_parameter(
                    "facets",
                    format!("`{other}` is not a facet: use type, day or both"),
                ));
            }
        }
    }
    Ok(request)
}

/// Refuses a workspace name of another form than the log's.
pub(crate) fn check_workspace(workspace: &str) -> Result<(), ApiError> {
    if is_workspace_name(workspace) {
        Ok(())
    } else {
        Err(ApiError::invalid_parameter(
            "workspace",
            "a workspace is 1 to 64 letters, digits, `_` or `-`",
        ))
    }
}

/// The form a workspace has in the log (its audit stream is `audit-<workspace>`).
fn is_workspace_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> ApiError {
        match error {
            SearchError::InvalidQuery(invalid) => {
                ApiError::bad_request("invalid_query", invalid.message)
                    .with("position", invalid.position)
            }
            SearchError::NotCaughtUp { wanted, position } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_caught_up",
                format!("the search index has reached position {position}, not yet {wanted}"),
            )
            .with("position", position)
            .with("min_position", wanted),
            SearchError::Unavailable(reason) => {
                tracing::warn!(reason = %reason, "search unavailable");
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", reason)
            }
            SearchError::Store(error) => ApiError::from(error),
            error => {
                tracing::error!(error = ?error, "search failed");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}
