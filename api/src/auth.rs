//! The one authorization layer every `/v1` route goes through.
//!
//! [`authenticate`] turns the bearer token into a [`Principal`] (the bootstrap admin token, or a
//! token of the `tokens` table that is neither expired nor revoked) and applies the per-token
//! rate limit; any other token is 401, the same answer whichever check failed, after the same
//! work. [`require_scope`] then checks one route's needs: a token bound to another workspace
//! gets 404 (no existence leaks), a token without the scope 403.
//!
//! Only a SHA-256 of each token is held and compared, so the time a comparison takes says
//! nothing about how much of a guessed token was right.

use std::num::NonZeroU32;
use std::sync::Arc;

use axum::extract::{RawPathParams, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chronicle_domain::{SUBMITTED_BY_ADMIN, is_stream_name, is_workspace_name, parse_timestamp};
use chronicle_store::{Scope, Store, TokenRecord};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::server::AppState;

/// Who is asking: the token behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's id (`admin` for the bootstrap admin token).
    pub token_id: String,
    pub name: String,
    /// The one workspace the token is bound to, or `None` for all.
    pub workspace: Option<String>,
    pub scopes: Vec<Scope>,
}

impl Principal {
    fn bootstrap_admin() -> Principal {
        Principal {
            token_id: SUBMITTED_BY_ADMIN.into(),
            name: "bootstrap admin token".into(),
            workspace: None,
            scopes: Scope::ALL.to_vec(),
        }
    }

    /// True when the token may act on `workspace`.
    pub fn may_see(&self, workspace: Option<&str>) -> bool {
        match &self.workspace {
            None => true,
            Some(bound) => workspace == Some(bound.as_str()),
        }
    }

    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

impl From<TokenRecord> for Principal {
    fn from(token: TokenRecord) -> Principal {
        Principal {
            token_id: token.id,
            name: token.name,
            workspace: token.workspace,
            scopes: token.scopes,
        }
    }
}

/// The SHA-256 of a token.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares two hashes in time independent of where they differ.
fn hashes_equal(left: &[u8; 32], right: &[u8; 32]) -> bool {
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Requests per second and burst allowed to each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: u32,
    pub burst: u32,
}

/// The per-token limiter; `None` when limits are off.
pub(crate) type Limiter = Option<Arc<DefaultKeyedRateLimiter<String>>>;

pub(crate) fn limiter(limit: Option<RateLimit>) -> Limiter {
    let limit = limit?;
    let per_second = NonZeroU32::new(limit.per_second.max(1)).expect("at least one");
    let burst = NonZeroU32::new(limit.burst.max(1)).expect("at least one");
    Some(Arc::new(RateLimiter::keyed(
        Quota::per_second(per_second).allow_burst(burst),
    )))
}

fn is_live(token: &TokenRecord, now: OffsetDateTime) -> bool {
    let expired = token
        .expires_at
        .as_deref()
        .is_some_and(|at| parse_timestamp(at).map_or(true, |at| at <= now));
    token.revoked_at.is_none() && !expired
}

/// Resolves the bearer token to a [`Principal`] in the request's extensions, or answers 401
/// (or 429 past the token's rate).
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(ApiError::unauthorized)?;
    let hash = token_hash(presented);
    // The table is read whatever the token, so a bootstrap token and an unknown one take the
    // same path through the database.
    let stored = state.store.token_by_hash(&hash).await?;
    let principal = if hashes_equal(&hash, &state.admin_token_hash) {
        Principal::bootstrap_admin()
    } else {
        match stored {
            Some(token) if is_live(&token, OffsetDateTime::now_utc()) => Principal::from(token),
            _ => return Err(ApiError::unauthorized()),
        }
    };
    if let Some(limiter) = &state.limiter
        && let Err(not_until) = limiter.check_key(&principal.token_id)
    {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests for this token",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        return Ok(response);
    }
    request.extensions_mut().insert(principal);
    Ok(next.run(request).await)
}

/// What one route needs: a scope, and the store to find whether its workspace exists.
#[derive(Clone)]
pub(crate) struct RouteNeeds {
    pub scope: Scope,
    pub store: Store,
}

/// The longest id a path may carry (a machine, session, schedule, event, token or webhook id).
const MAX_PATH_ID_BYTES: usize = 128;

/// Validates every segment a route's path captured before anything else reads it: a workspace
/// name (1–64 of `[A-Za-z0-9_.-]`), a stream name (1–200 printable ASCII, no `/`), an id (1–128
/// printable ASCII). A bad segment is 400 naming the parameter, never echoing its value.
/// Returns the workspace, when the route names one.
fn validated_workspace(parameters: &RawPathParams) -> Result<Option<&str>, ApiError> {
    let mut workspace = None;
    for (name, value) in parameters.iter() {
        let valid = match name {
            "workspace" => is_workspace_name(value),
            "stream" => is_stream_name(value),
            _ => {
                (1..=MAX_PATH_ID_BYTES).contains(&value.len())
                    && value.bytes().all(|b| b.is_ascii_graphic())
            }
        };
        if !valid {
            let rule = match name {
                "workspace" => "1 to 64 letters, digits, `_`, `.` or `-`",
                "stream" => "1 to 200 printable ASCII characters without `/`",
                _ => "1 to 128 printable ASCII characters",
            };
            return Err(ApiError::invalid_parameter(
                name,
                format!("the path's {name} must be {rule}"),
            ));
        }
        if name == "workspace" {
            workspace = Some(value);
        }
    }
    Ok(workspace)
}

/// Checks one route's needs: valid path segments, the workspace in its path (if any) and the
/// scope. A token bound to another workspace gets the same 404 as a workspace that does not
/// exist; only an admin route (webhooks) may name a workspace with no events yet.
pub(crate) async fn require_scope(
    State(needs): State<RouteNeeds>,
    parameters: RawPathParams,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let scope = needs.scope;
    let workspace = validated_workspace(&parameters)?;
    let principal = request
        .extensions()
        .get::<Principal>()
        .ok_or_else(ApiError::unauthorized)?;
    match workspace {
        Some(workspace) if !principal.may_see(Some(workspace)) => {
            return Err(ApiError::not_found(format!("no workspace {workspace}")));
        }
        // Routes over the whole log are for tokens bound to no workspace.
        None if principal.workspace.is_some() && scope == Scope::Admin => {
            return Err(ApiError::forbidden(
                "a token bound to one workspace cannot use this route",
            ));
        }
        _ => {}
    }
    if !principal.has(scope) {
        return Err(ApiError::forbidden(format!(
            "this token lacks the `{}` scope",
            scope.name()
        )));
    }
    if let Some(workspace) = workspace
        && scope != Scope::Admin
    {
        needs.store.require_workspace(workspace).await?;
    }
    Ok(next.run(request).await)
}
