//! The read models of the cabinet: lists with filters and cursors, details by id, each with the
//! log position it reflects, `min_position` waiting and `as_of` answers.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use chronicle_domain::models::billing::Billing;
use chronicle_projections::{AsOf, Filters, Model, PageRequest, ProjectionError};
use chronicle_store::ErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::admission::Admitted;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::events::query;
use crate::server::AppState;

/// How long `min_position` waits for a model to catch up.
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 1_000;

/// The query parameters of a list; each list takes the filters DOMAIN.md names for it and
/// answers 400 `invalid_parameter` for the others.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Machines: `online`, `degraded`, `starting`, `offline`, `deregistered`; schedules and
    /// runs: `queued`, `running`, `succeeded`, `failed`, `cancelled`, `timed_out`; members:
    /// `invited`, `active`, `suspended`, `removed`.
    status: Option<String>,
    /// Machines: operating system.
    os: Option<String>,
    /// Machines: one tag.
    tag: Option<String>,
    /// Machines: text in the id, name or hostname.
    q: Option<String>,
    /// Sessions and runs: a machine id.
    machine: Option<String>,
    /// Sessions (who opened it) and activity: an actor id.
    actor: Option<String>,
    /// Sessions: `active` or `ended`.
    state: Option<String>,
    /// Sessions, runs, activity: from this time (RFC 3339, inclusive).
    from: Option<String>,
    /// Sessions, runs, activity: before this time (RFC 3339, exclusive).
    to: Option<String>,
    /// At most this many items (1 to 1000, default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Wait (up to 5 s) until the model reflects this log position.
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    min_position: Option<u64>,
    /// Answer as the model stood at a log position or an RFC 3339 time.
    as_of: Option<String>,
}

/// The query parameters of one item.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ItemParams {
    /// Wait (up to 5 s) until the model reflects this log position.
    #[param(maximum = 9_223_372_036_854_775_807_u64)]
    min_position: Option<u64>,
    /// Answer as the model stood at a log position or an RFC 3339 time.
    as_of: Option<String>,
}

/// One page of a read model.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ListAnswer {
    /// The rows, in the list's order.
    #[schema(value_type = Vec<Object>)]
    items: Vec<Value>,
    /// The `cursor` of the next page, or null on the last.
    next_cursor: Option<String>,
    /// The log position this answer reflects.
    position: u64,
}

impl From<ProjectionError> for ApiError {
    fn from(error: ProjectionError) -> ApiError {
        match error {
            ProjectionError::InvalidParameter { parameter, message } => {
                ApiError::invalid_parameter(parameter, message)
            }
            ProjectionError::Store(error) => ApiError::from(error),
            error if error.kind() == ErrorKind::Unavailable => {
                tracing::warn!(error = %error, "read models unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the read models are unavailable",
                )
            }
            error => {
                tracing::error!(error = ?error, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        }
    }
}

/// Parses `as_of` and takes a place among the `as_of` folds for the answer's time, or waits for
/// `min_position` (an `as_of` answer is read from the log itself).
async fn moment(
    state: &AppState,
    principal: &Principal,
    model: Model,
    (min_position, as_of): (Option<u64>, Option<&str>),
) -> Result<(Option<AsOf>, Option<Admitted>), ApiError> {
    if let Some(as_of) = as_of {
        let as_of = AsOf::parse(as_of)?;
        let place = state.as_of_folds.admit(&principal.token_id)?;
        return Ok((Some(as_of), Some(place)));
    }
    if let Some(position) = crate::events::min_position(min_position)?
        && !state
            .projections
            .wait_for(model, position, CATCH_UP_WAIT)
            .await
    {
        let reached = state.projections.position(model);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_caught_up",
            format!("{} has not reached position {position} yet", model.name()),
        )
        .with("min_position", position)
        .with("position", reached));
    }
    Ok((None, None))
}

async fn list(
    state: &AppState,
    principal: &Principal,
    model: Model,
    workspace: &str,
    params: Result<Query<ListParams>, QueryRejection>,
    schedule: Option<String>,
) -> Result<Json<ListAnswer>, ApiError> {
    let params = query(params)?;
    let limit = match params.limit.unwrap_or(DEFAULT_LIMIT) {
        limit @ 1..=MAX_LIMIT => limit,
        _ => {
            return Err(ApiError::invalid_parameter(
                "limit",
                format!("limit must be from 1 to {MAX_LIMIT}"),
            ));
        }
    };
    let (as_of, _place) = moment(
        state,
        principal,
        model,
        (params.min_position, params.as_of.as_deref()),
    )
    .await?;
    let filters = Filters {
        status: params.status,
        os: params.os,
        tag: params.tag,
        q: params.q,
        machine: params.machine,
        actor: params.actor,
        state: params.state,
        from: params.from,
        to: params.to,
        schedule,
    };
    let page = PageRequest {
        limit,
        cursor: params.cursor,
    };
    let page = state
        .projections
        .list(model, workspace, &filters, &page, as_of)
        .await?;
    Ok(Json(ListAnswer {
        items: page.items,
        next_cursor: page.next_cursor,
        position: page.position,
    }))
}

async fn item(
    state: &AppState,
    principal: &Principal,
    model: Model,
    workspace: &str,
    id: &str,
    params: Result<Query<ItemParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(params)?;
    let (as_of, _place) = moment(
        state,
        principal,
        model,
        (params.min_position, params.as_of.as_deref()),
    )
    .await?;
    let (row, position) = state
        .projections
        .detail(model, workspace, id, as_of)
        .await?;
    let mut row = match (row, model) {
        (Some(row), _) => row,
        (None, Model::Billing) => {
            serde_json::to_value(Billing::empty(workspace)).map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            })?
        }
        (None, _) => {
            let kind = model.name().trim_end_matches('s');
            return Err(ApiError::not_found(format!(
                "no {kind} {id} in workspace {workspace}"
            )));
        }
    };
    if let Value::Object(fields) = &mut row {
        fields.insert("position".into(), position.into());
    }
    Ok(Json(row))
}

/// `GET /v1/workspaces/WS/machines`: the machine inventory, by id.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/machines", tag = "read models",
    params(("workspace" = String, Path), ListParams),
    description = "The machine inventory, deregistered machines included (scope `read`). Filters: status, os, tag, q.",
    responses((status = 200, body = ListAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn machines(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    list(
        &state,
        &principal,
        Model::Machines,
        &workspace,
        params,
        None,
    )
    .await
}

/// `GET /v1/workspaces/WS/machines/ID`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/machines/{id}", tag = "read models",
    params(("workspace" = String, Path), ("id" = String, Path), ItemParams),
    description = "One machine, with the log position it reflects (scope `read`).",
    responses((status = 200, body = Object), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn machine(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ItemParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    item(&state, &principal, Model::Machines, &workspace, &id, params).await
}

/// `GET /v1/workspaces/WS/sessions`: sessions, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/sessions", tag = "read models",
    params(("workspace" = String, Path), ListParams),
    description = "Terminal sessions, newest first (scope `read`). Filters: machine, actor, state, from, to.",
    responses((status = 200, body = ListAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn sessions(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    list(
        &state,
        &principal,
        Model::Sessions,
        &workspace,
        params,
        None,
    )
    .await
}

/// `GET /v1/workspaces/WS/sessions/ID`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/sessions/{id}", tag = "read models",
    params(("workspace" = String, Path), ("id" = String, Path), ItemParams),
    description = "One session, with the log position it reflects (scope `read`).",
    responses((status = 200, body = Object), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn session(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ItemParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    item(&state, &principal, Model::Sessions, &workspace, &id, params).await
}

/// `GET /v1/workspaces/WS/schedules`: schedules, by id.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/schedules", tag = "read models",
    params(("workspace" = String, Path), ListParams),
    description = "Schedules with their last run (scope `read`). Filter: status (of the last run).",
    responses((status = 200, body = ListAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn schedules(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    list(
        &state,
        &principal,
        Model::Schedules,
        &workspace,
        params,
        None,
    )
    .await
}

/// `GET /v1/workspaces/WS/schedules/ID`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/schedules/{id}", tag = "read models",
    params(("workspace" = String, Path), ("id" = String, Path), ItemParams),
    description = "One schedule, with the log position it reflects (scope `read`).",
    responses((status = 200, body = Object), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn schedule(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ItemParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    item(
        &state,
        &principal,
        Model::Schedules,
        &workspace,
        &id,
        params,
    )
    .await
}

/// `GET /v1/workspaces/WS/schedules/ID/runs`: a schedule's runs, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/schedules/{id}/runs", tag = "read models",
    params(("workspace" = String, Path), ("id" = String, Path), ListParams),
    description = "A schedule's run history, newest first (scope `read`). Filters: status, machine, from, to.",
    responses((status = 200, body = ListAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn runs(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    list(
        &state,
        &principal,
        Model::Runs,
        &workspace,
        params,
        Some(id),
    )
    .await
}

/// `GET /v1/workspaces/WS/members`: members and roles, past members included.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/members", tag = "read models",
    params(("workspace" = String, Path), ListParams),
    description = "Members and roles, removed members included (scope `read`). Filter: status.",
    responses((status = 200, body = ListAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn members(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    list(&state, &principal, Model::Members, &workspace, params, None).await
}

/// `GET /v1/workspaces/WS/billing`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/billing", tag = "read models",
    params(("workspace" = String, Path), ItemParams),
    description = "Plan, seats, payment methods, invoices, usage and quota alerts, with the log position they reflect (scope `read`).",
    responses((status = 200, body = Object), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn billing(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ItemParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    item(
        &state,
        &principal,
        Model::Billing,
        &workspace,
        &workspace,
        params,
    )
    .await
}

/// `GET /v1/workspaces/WS/activity`: the admin activity feed, newest first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/activity", tag = "read models",
    params(("workspace" = String, Path), ListParams),
    description = "Human-level admin events, newest first (scope `read`). Filters: actor, from, to.",
    responses((status = 200, body = ListAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody), (status = 503, description = "not_caught_up", body = ErrorBody)))]
pub(crate) async fn activity(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<ListAnswer>, ApiError> {
    list(
        &state,
        &principal,
        Model::Activity,
        &workspace,
        params,
        None,
    )
    .await
}

/// A rebuild request: the models to rebuild, all of them when empty or absent.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RebuildRequest {
    #[serde(default)]
    models: Vec<String>,
}

/// What a rebuild did.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct RebuildAnswer {
    models: Vec<&'static str>,
    /// The log position the rebuilt models reflect.
    position: u64,
}

/// `POST /v1/rebuild` (admin): rebuilds read models from the log into fresh tables while the
/// old ones keep answering, then swaps them in; answers once the new tables serve.
#[utoipa::path(post, path = "/v1/rebuild", tag = "read models",
    request_body(content = Option<RebuildRequest>, description = "The models to rebuild; no body rebuilds every one"),
    description = "Rebuilds read models from the log with no downtime (scope `admin`, bound to no workspace). A body that is not a `RebuildRequest` is 400 `invalid_body`.",
    responses((status = 200, body = RebuildAnswer),
        (status = 400, description = "invalid_body, or invalid_model: an unknown model", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks the scope", body = ErrorBody),
        (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn rebuild(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<RebuildAnswer>, ApiError> {
    let request: RebuildRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RebuildRequest::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::bad_request(
                "invalid_body",
                format!("expected {{\"models\": [NAME, …]}}: {error}"),
            )
        })?
    };
    let models = if request.models.is_empty() {
        Model::ALL.to_vec()
    } else {
        request
            .models
            .iter()
            .map(|name| {
                Model::from_name(name).ok_or_else(|| {
                    let names: Vec<&str> = Model::ALL.iter().map(|model| model.name()).collect();
                    ApiError::bad_request(
                        "invalid_model",
                        format!(
                            "`{name}` is not a read model: use one of {}",
                            names.join(", ")
                        ),
                    )
                    .with("field", "models")
                })
            })
            .collect::<Result<Vec<_>, _>>()?
    };
    let position = state.projections.rebuild(&models, |_| {}).await?;
    tracing::info!(position, models = ?models.iter().map(|model| model.name()).collect::<Vec<_>>(), "read models rebuilt");
    Ok(Json(RebuildAnswer {
        models: models.iter().map(|model| model.name()).collect(),
        position,
    }))
}
