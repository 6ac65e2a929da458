//! Chronicle's HTTP API: the axum router over the store, and the server that runs it.
//!
//! Layout:
//! - [`router`] builds every route over an [`AppState`]; [`Application`] binds a listener (port 0
//!   in tests), reports its address and serves until a shutdown future resolves, then lets the
//!   store finish every append already accepted.
//! - `error`: [`ApiError`], the one error shape of the contract, `{"error": {"code", "message",
//!   …details}}`, and the mapping from store error kinds to statuses.
//! - `auth`: the one authorization layer: bearer token to [`Principal`], per-token rate limit,
//!   and each route's scope and workspace binding (404 for another workspace, 403 without the
//!   scope, 401 for an unknown, expired or revoked token).
//! - `tokens`: creating, listing and revoking tokens.
//! - `observability`: request ids, Prometheus `/metrics`.
//! - `limits`: [`HttpLimits`] and the HTTP/1 server loop: header read timeout (slowloris), header
//!   size and count, URL length, time to an answer.
//! - `events`: appending and reading the log.
//! - `integrity`: signed checkpoints, the public key, inclusion and consistency proofs.
//! - `integrity`: signed checkpoints, the public key, inclusion and consistency proofs.
//! - `search`: audit search over the `chronicle-search` index, each answered search recorded as
//!   an `audit.searched` event.
//! - `export`: audit exports (NDJSON, CSV, Parquet) and evidence bundles over
//!   `chronicle-evidence`, streamed, each recorded as `audit.exported` or `evidence.exported`.
//! - `live`: a workspace's events live, as Server-Sent Events and over WebSocket.
//! - `models`: the read models (machines, sessions, schedules and runs, members, billing,
//!   activity) over `chronicle-projections`, with filters, cursors, `min_position` and `as_of`.
//! - `webhooks`: managing webhooks, and the worker that delivers events to them, signed, in
//!   order, at least once.
//!
//! It reads no environment and no files: the binary hands it an [`ApiConfig`].

mod admission;
mod auth;
mod error;
mod events;
mod export;
mod feed;
mod integrity;
mod limits;
mod live;
mod models;
mod moves;
mod observability;
mod openapi;
mod search;
mod server;
mod tokens;
mod webhooks;

pub use admission::{Concurrency, ReadBounds};
pub use auth::{Principal, RateLimit};
pub use error::ApiError;
pub use limits::HttpLimits;
pub use live::LiveConfig;
pub use server::{ApiConfig, AppState, Application, router};
pub use tokens::{generate_token_value, new_token};
pub use webhooks::{SIGNATURE_HEADER, WebhookConfig};
