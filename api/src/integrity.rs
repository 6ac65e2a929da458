//! Signed checkpoints, the public key, inclusion and consistency proofs.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chronicle_store::{ConsistencyProof, InclusionProof, TreeId};
use serde::Deserialize;

use crate::error::{ApiError, ErrorBody};
use crate::events::query;
use crate::server::AppState;

/// A signed note is text: `text/plain; charset=utf-8`, as C2SP tools expect.
fn note_response(note: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note)
}

/// `GET /v1/checkpoint`: the log tree's signed checkpoint.
#[utoipa::path(get, path = "/v1/checkpoint", tag = "integrity",
    description = "The log tree's C2SP signed checkpoint (scope `admin`).",
    responses((status = 200, description = "A C2SP signed note", content_type = "text/plain", body = String), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn log_checkpoint(
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(note_response(
        state.store.checkpoint(TreeId::Log).await?.note,
    ))
}

/// `GET /v1/workspaces/WS/checkpoint`: one workspace tree's signed checkpoint.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/checkpoint", tag = "integrity", params(("workspace" = String, Path)),
    description = "One workspace tree's C2SP signed checkpoint (scope `read`).",
    responses((status = 200, description = "A C2SP signed note", content_type = "text/plain", body = String), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn workspace_checkpoint(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(note_response(
        state
            .store
            .checkpoint(TreeId::Workspace(&workspace))
            .await?
            .note,
    ))
}

/// `GET /v1/public-key`: the note verifier key, `NAME+KEYID+BASE64`.
#[utoipa::path(get, path = "/v1/public-key", tag = "integrity",
    description = "The checkpoint signer's note verifier key `NAME+KEYID+BASE64` (any valid token).",
    responses((status = 200, content_type = "text/plain", body = String), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn public_key(State(state): State<AppState>) -> impl IntoResponse {
    note_response(format!("{}\n", state.store.verifier_key()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LogInclusion {
    position: Option<u64>,
    tree_size: Option<u64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WorkspaceInclusion {
    seq: Option<u64>,
    tree_size: Option<u64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct Consistency {
    from: Option<u64>,
    to: Option<u64>,
}

/// Turns a 1-based position or sequence number into a 0-based leaf index.
fn leaf_index(value: Option<u64>, parameter: &str) -> Result<u64, ApiError> {
    match value {
        Some(number) if number >= 1 => Ok(number - 1),
        Some(_) => Err(ApiError::invalid_parameter(
            parameter,
            format!("{parameter} starts at 1"),
        )),
        None => Err(ApiError::invalid_parameter(
            parameter,
            format!("{parameter} is required"),
        )),
    }
}

fn required(value: Option<u64>, parameter: &str) -> Result<u64, ApiError> {
    value.ok_or_else(|| ApiError::invalid_parameter(parameter, format!("{parameter} is required")))
}

/// `GET /v1/proofs/inclusion?position=P&tree_size=N`.
#[utoipa::path(get, path = "/v1/proofs/inclusion", tag = "integrity", params(LogInclusion),
    description = "The inclusion proof of the event at `position` in the log tree of `tree_size` leaves (scope `admin`).",
    responses((status = 200, body = InclusionProof), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn log_inclusion(
    State(state): State<AppState>,
    parameters: Result<Query<LogInclusion>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let parameters = query(parameters)?;
    let index = leaf_index(parameters.position, "position")?;
    Ok(Json(
        state
            .store
            .inclusion_proof(TreeId::Log, index, parameters.tree_size)
            .await?,
    ))
}

/// `GET /v1/workspaces/WS/proofs/inclusion?seq=S&tree_size=N`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/proofs/inclusion", tag = "integrity", params(("workspace" = String, Path), WorkspaceInclusion),
    description = "The inclusion proof of the workspace's event `seq` in its tree of `tree_size` leaves (scope `read`).",
    responses((status = 200, body = InclusionProof), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn workspace_inclusion(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    parameters: Result<Query<WorkspaceInclusion>, QueryRejection>,
) -> Result<Json<InclusionProof>, ApiError> {
    let parameters = query(parameters)?;
    let index = leaf_index(parameters.seq, "seq")?;
    Ok(Json(
        state
            .store
            .inclusion_proof(TreeId::Workspace(&workspace), index, parameters.tree_size)
            .await?,
    ))
}

/// `GET /v1/proofs/consistency?from=M&to=N`.
#[utoipa::path(get, path = "/v1/proofs/consistency", tag = "integrity", params(Consistency),
    description = "The consistency proof between the log trees of `from` and `to` leaves (scope `admin`).",
    responses((status = 200, body = ConsistencyProof), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn log_consistency(
    State(state): State<AppState>,
    parameters: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let parameters = query(parameters)?;
    let (from, to) = (
        required(parameters.from, "from")?,
        required(parameters.to, "to")?,
    );
    Ok(Json(
        state.store.consistency_proof(TreeId::Log, from, to).await?,
    ))
}

/// `GET /v1/workspaces/WS/proofs/consistency?from=M&to=N`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/proofs/consistency", tag = "integrity", params(("workspace" = String, Path), Consistency),
    description = "The consistency proof between two sizes of the workspace's tree (scope `read`).",
    responses((status = 200, body = ConsistencyProof), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn workspace_consistency(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    parameters: Result<Query<Consistency>, QueryRejection>,
) -> Result<Json<ConsistencyProof>, ApiError> {
    let parameters = query(parameters)?;
    let (from, to) = (
        required(parameters.from, "from")?,
        required(parameters.to, "to")?,
    );
    Ok(Json(
        state
            .store
            .consistency_proof(TreeId::Workspace(&workspace), from, to)
            .await?,
    ))
}
