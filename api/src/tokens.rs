//! `POST /v1/tokens`, `GET /v1/tokens`, `DELETE /v1/tokens/ID`: tokens whose value is shown
//! once and never kept.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chronicle_domain::{format_timestamp, parse_timestamp};
use chronicle_store::{NewToken, Scope, TokenRecord};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::auth::token_hash;
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;

/// Characters of the value kept to recognise a token in lists.
const PREFIX_LENGTH: usize = 12;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    name: String,
    #[serde(default)]
    workspace: Option<String>,
    scopes: Vec<Scope>,
    #[serde(default)]
    expires_at: Option<String>,
}

/// The answer to a creation: the record and, this once, the value.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct CreatedToken {
    #[serde(flatten)]
    record: TokenRecord,
    token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct TokenList {
    items: Vec<TokenRecord>,
}

/// Returns a new token value: `chr_` and 64 hex digits of randomness.
pub fn generate_token_value() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "chr_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// Checks a creation request and turns it into the record to keep, with a fresh value.
pub fn new_token(
    name: &str,
    workspace: Option<String>,
    mut scopes: Vec<Scope>,
    expires_at: Option<&str>,
    now: OffsetDateTime,
) -> Result<(NewToken, String), ApiError> {
    let invalid = |field: &str, message: &str| {
        ApiError::bad_request("invalid_token", message.to_owned()).with("field", field)
    };
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(invalid(
            "name",
            "a token needs a name of 1 to 100 characters",
        ));
    }
    if let Some(workspace) = &workspace
        && (workspace.is_empty()
            || workspace.len() > 64
            || !workspace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
    {
        return Err(invalid(
            "workspace",
            "a workspace is 1 to 64 letters, digits, `_` or `-`",
        ));
    }
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(invalid(
            "scopes",
            "a token needs at least one of append, read, export, admin",
        ));
    }
    let expires_at = match expires_at {
        None => None,
        Some(text) => {
            let at = parse_timestamp(text)
                .map_err(|_| invalid("expires_at", "must be an RFC 3339 timestamp"))?;
            if at <= now {
                return Err(invalid("expires_at", "must be in the future"));
            }
            Some(format_timestamp(at))
        }
    };
    let value = generate_token_value();
    let mut id_bytes = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut id_bytes);
    let token = NewToken {
        id: format!(
            "tok_{}",
            id_bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        ),
        name: name.to_owned(),
        workspace,
        scopes,
        hash: token_hash(&value),
        prefix: value[..PREFIX_LENGTH].to_owned(),
        created_at: format_timestamp(now),
        expires_at,
    };
    Ok((token, value))
}

/// `POST /v1/tokens` (admin): answers the token once.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    description = "Creates a token; its value is in this answer only (scope `admin`, bound to no workspace).",
    responses((status = 201, body = CreatedToken), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let Json(body) =
        body.map_err(|rejection| ApiError::bad_request("invalid_body", rejection.body_text()))?;
    let (token, value) = new_token(
        &body.name,
        body.workspace,
        body.scopes,
        body.expires_at.as_deref(),
        OffsetDateTime::now_utc(),
    )?;
    let record = state.store.create_token(token).await?;
    tracing::info!(token = %record.id, workspace = ?record.workspace, "token created");
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            record,
            token: value,
        }),
    ))
}

/// `GET /v1/tokens` (admin): every token, without values.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", description = "Every token, never their values (scope `admin`).",
    responses((status = 200, body = TokenList), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    Ok(Json(TokenList {
        items: state.store.list_tokens().await?,
    }))
}

/// `DELETE /v1/tokens/ID` (admin): revokes at once; answers the revoked record.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    description = "Revokes a token at once (scope `admin`).",
    responses((status = 200, body = TokenRecord), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<TokenRecord>, ApiError> {
    let now = format_timestamp(OffsetDateTime::now_utc());
    let record = state.store.revoke_token(&id, &now).await?;
    let record = record.ok_or_else(|| ApiError::not_found(format!("no token {id}")))?;
    tracing::info!(token = %record.id, "token revoked");
    Ok(Json(record))
}
