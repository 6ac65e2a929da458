//! Signed checkpoints, the public key, inclusion and consistency proofs.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use chronicle_store::{ConsistencyProof, InclusionProof, TreeId};
use serde::Deserialize;

use crate::error::ApiError;
use crate::events::query;
use crate::server::AppState;

/// A signed note is text: `text/plain; charset=utf-8`, as C2SP tools expect.
fn note_response(note: String) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note)
}

/// `GET /v1/checkpoint`: the log tree's signed checkpoint.
pub(crate) async fn log_checkpoint(
    State(state): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(note_response(
        state.store.checkpoint(TreeId::Log).await?.note,
    ))
}

/// `GET /v1/workspaces/WS/checkpoint`: one workspace tree's signed checkpoint.
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
pub(crate) async fn public_key(State(state): State<AppState>) -> impl IntoResponse {
    note_response(format!("{}\n", state.store.verifier_key()))
}

#[derive(Deserialize)]
pub(crate) struct LogInclusion {
    position: Option<u64>,
    tree_size: Option<u64>,
}

#[derive(Deserialize)]
pub(crate) struct WorkspaceInclusion {
    seq: Option<u64>,
    tree_size: Option<u64>,
}

#[derive(Deserialize)]
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
