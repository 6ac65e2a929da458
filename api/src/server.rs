//! The router and the server that runs it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, middleware};
use chronicle_store::Store;
use serde_json::json;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::auth::{require_token, token_hash};
use crate::{error::ApiError, events, integrity};

/// What the server needs to know; the binary builds it from flags and environment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// The admin bearer token; only its hash is kept.
    pub admin_token: String,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
}

impl ApiConfig {
    /// Returns the contract's limits: 10,000 events and 16 MiB a batch.
    pub fn new(listen: SocketAddr, admin_token: impl Into<String>) -> ApiConfig {
        ApiConfig {
            listen,
            admin_token: admin_token.into(),
            max_batch_events: 10_000,
            max_batch_bytes: 16 * 1024 * 1024,
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) admin_token_hash: [u8; 32],
}

impl AppState {
    pub fn new(store: Store, config: ApiConfig) -> AppState {
        let admin_token_hash = token_hash(&config.admin_token);
        AppState {
            store,
            config: Arc::new(config),
            admin_token_hash,
        }
    }
}

/// Builds every route of the API.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/events", post(events::append).get(events::read_log))
        .route("/events/{id}", get(events::read_event))
        .route("/streams/{stream}", get(events::read_stream))
        .route("/head", get(events::head))
        .route("/checkpoint", get(integrity::log_checkpoint))
        .route("/public-key", get(integrity::public_key))
        .route("/proofs/inclusion", get(integrity::log_inclusion))
        .route("/proofs/consistency", get(integrity::log_consistency))
        .route(
            "/workspaces/{workspace}/checkpoint",
            get(integrity::workspace_checkpoint),
        )
        .route(
            "/workspaces/{workspace}/proofs/inclusion",
            get(integrity::workspace_inclusion),
        )
        .route(
            "/workspaces/{workspace}/proofs/consistency",
            get(integrity::workspace_consistency),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .fallback(|| async { ApiError::not_found("no such route") });
    Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(state.config.max_batch_bytes))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response()
        }))
        .with_state(state)
}

/// Ready once the store answers reads.
async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    state.store.read_all(0, 1).await?;
    Ok(Json(
        json!({"status": "ready", "position": state.store.head().position}),
    ))
}

/// A bound server, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("address", &self.listener.local_addr().ok())
            .finish()
    }
}

impl Application {
    /// Binds the configured address (port 0 picks a free port).
    pub async fn bind(store: Store, config: ApiConfig) -> std::io::Result<Application> {
        let listener = TcpListener::bind(config.listen).await?;
        Ok(Application {
            listener,
            state: AppState::new(store, config),
        })
    }

    /// Returns the address the server listens on.
    pub fn address(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves, then finishes the requests in flight and every append
    /// the store already accepted.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let app = router(self.state);
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        store.shutdown().await;
        Ok(())
    }
}
