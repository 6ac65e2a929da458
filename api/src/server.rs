//! The router and the server that runs it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, delete, get, post};
use axum::{Json, middleware};
use chronicle_projections::{Projections, ProjectionsConfig};
use chronicle_search::{SearchConfig, SearchIndex};
use chronicle_store::{Scope, Store};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tower_http::catch_panic::CatchPanicLayer;

use crate::admission::{Admission, ReadBounds};
use crate::auth::{
    Limiter, RateLimit, RouteNeeds, authenticate, limiter, require_scope, token_hash,
};
use crate::feed::Feed;
use crate::limits::{HttpLimits, bounded_time, bounded_uri};
use crate::live::LiveConfig;
use crate::webhooks::WebhookConfig;
use crate::{
    error::ApiError, events, export, integrity, limits, live, models, observability, openapi,
    search, tokens, webhooks,
};

/// What the server needs to know; the binary builds it from flags and environment.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// The admin bearer token; only its hash is kept.
    pub admin_token: String,
    pub max_batch_events: usize,
    pub max_batch_bytes: usize,
    /// Requests per second allowed to each token; `None` turns limits off.
    pub rate_limit: Option<RateLimit>,
    /// Live streams (SSE and WebSocket).
    pub live: LiveConfig,
    /// Webhook delivery: retries, timeouts, allowed hosts.
    pub webhooks: WebhookConfig,
    /// Audit search: where the index lives (in memory unless a directory is named) and how
    /// often it commits.
    pub search: SearchConfig,
    /// Read models: batch size and query connections.
    pub projections: ProjectionsConfig,
    /// Connection and request bounds: header read time, header size and count, URL length, time
    /// to an answer.
    pub limits: HttpLimits,
    /// Long-running reads at once, on the server and per token: live streams, exports, `as_of`.
    pub bounds: ReadBounds,
}

impl ApiConfig {
    /// Returns the contract's limits: 10,000 events and 16 MiB a batch.
    pub fn new(listen: SocketAddr, admin_token: impl Into<String>) -> ApiConfig {
        ApiConfig {
            listen,
            admin_token: admin_token.into(),
            max_batch_events: 10_000,
            max_batch_bytes: 16 * 1024 * 1024,
            rate_limit: Some(RateLimit {
                per_second: 2_000,
                burst: 10_000,
            }),
            live: LiveConfig::default(),
            webhooks: WebhookConfig::default(),
            search: SearchConfig::default(),
            projections: ProjectionsConfig::default(),
            limits: HttpLimits::default(),
            bounds: ReadBounds::default(),
        }
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: Store,
    pub(crate) config: Arc<ApiConfig>,
    pub(crate) admin_token_hash: [u8; 32],
    pub(crate) limiter: Limiter,
    /// Turns true when the server starts to shut down: live streams end, webhook delivery stops.
    pub(crate) stopping: watch::Sender<bool>,
    /// Wakes the webhook worker when a webhook is created, deleted or resumed.
    pub(crate) webhooks_changed: Arc<Notify>,
    /// The audit search index and its indexer.
    pub(crate) search: SearchIndex,
    /// The read models and their runner.
    pub(crate) projections: Projections,
    /// Places of open live streams (SSE or WebSocket).
    pub(crate) live_streams: Admission,
    /// Places of exports and evidence bundles being written.
    pub(crate) exports: Admission,
    /// Places of `as_of` answers being folded.
    pub(crate) as_of_folds: Admission,
    /// The newest events, read and encoded once for every live stream.
    pub(crate) feed: Feed,
}

impl AppState {
    pub fn new(
        store: Store,
        search: SearchIndex,
        projections: Projections,
        config: ApiConfig,
    ) -> AppState {
        let admin_token_hash = token_hash(&config.admin_token);
        let limiter = limiter(config.rate_limit);
        let bounds = config.bounds;
        let feed = Feed::new(config.live.recent_events, store.head().position);
        AppState {
            store,
            config: Arc::new(config),
            admin_token_hash,
            limiter,
            stopping: watch::Sender::new(false),
            webhooks_changed: Arc::new(Notify::new()),
            search,
            projections,
            live_streams: Admission::new(bounds.live, "too_many_subscribers", "live streams"),
            exports: Admission::new(bounds.exports, "too_many_exports", "exports"),
            as_of_folds: Admission::new(bounds.as_of, "too_many_as_of", "as_of answers"),
            feed,
        }
    }
}

/// Builds every route of the API. Each `/v1` route names the scope it needs here, in one place.
pub fn router(state: AppState) -> Router {
    use Scope::{Admin, Append, Export, Read};
    // Wraps a route's handlers in the checks they need: path segments, tenancy, scope.
    let scoped = |scope: Scope, route: MethodRouter<AppState>| {
        let needs = RouteNeeds {
            scope,
            store: state.store.clone(),
        };
        route.route_layer(middleware::from_fn_with_state(needs, require_scope))
    };
    let v1 = Router::new()
        .route(
            "/events",
            scoped(Append, post(events::append)).merge(scoped(Admin, get(events::read_log))),
        )
        .route("/events/{id}", scoped(Admin, get(events::read_event)))
        .route("/streams/{stream}", scoped(Admin, get(events::read_stream)))
        .route("/head", scoped(Admin, get(events::head)))
        .route("/checkpoint", scoped(Admin, get(integrity::log_checkpoint)))
        .route("/public-key", get(integrity::public_key))
        .route(
            "/proofs/inclusion",
            scoped(Admin, get(integrity::log_inclusion)),
        )
        .route(
            "/proofs/consistency",
            scoped(Admin, get(integrity::log_consistency)),
        )
        .route(
            "/tokens",
            scoped(Admin, post(tokens::create).get(tokens::list)),
        )
        .route("/tokens/{id}", scoped(Admin, delete(tokens::revoke)))
        .route(
            "/workspaces/{workspace}/events/{id}",
            scoped(Read, get(events::read_workspace_event)),
        )
        .route(
            "/workspaces/{workspace}/streams/{stream}",
            scoped(Read, get(events::read_workspace_stream)),
        )
        .route(
            "/workspaces/{workspace}/checkpoint",
            scoped(Read, get(integrity::workspace_checkpoint)),
        )
        .route(
            "/workspaces/{workspace}/proofs/inclusion",
            scoped(Read, get(integrity::workspace_inclusion)),
        )
        .route(
            "/workspaces/{workspace}/proofs/consistency",
            scoped(Read, get(integrity::workspace_consistency)),
        )
        .route(
            "/workspaces/{workspace}/audit",
            scoped(Read, get(search::audit)),
        )
        .route(
            "/workspaces/{workspace}/webhooks",
            scoped(
                Admin,
                post(webhooks::create_webhook).get(webhooks::list_webhooks),
            ),
        )
        .route(
            "/workspaces/{workspace}/webhooks/{id}",
            scoped(Admin, delete(webhooks::delete_webhook)),
        )
        .route(
            "/workspaces/{workspace}/webhooks/{id}/resume",
            scoped(Admin, post(webhooks::resume_webhook)),
        )
        .route(
            "/workspaces/{workspace}/webhooks/{id}/deliveries",
            scoped(Admin, get(webhooks::list_deliveries)),
        )
        .route(
            "/workspaces/{workspace}/machines",
            scoped(Read, get(models::machines)),
        )
        .route(
            "/workspaces/{workspace}/machines/{id}",
            scoped(Read, get(models::machine)),
        )
        .route(
            "/workspaces/{workspace}/sessions",
            scoped(Read, get(models::sessions)),
        )
        .route(
            "/workspaces/{workspace}/sessions/{id}",
            scoped(Read, get(models::session)),
        )
        .route(
            "/workspaces/{workspace}/schedules",
            scoped(Read, get(models::schedules)),
        )
        .route(
            "/workspaces/{workspace}/schedules/{id}",
            scoped(Read, get(models::schedule)),
        )
        .route(
            "/workspaces/{workspace}/schedules/{id}/runs",
            scoped(Read, get(models::runs)),
        )
        .route(
            "/workspaces/{workspace}/members",
            scoped(Read, get(models::members)),
        )
        // The billing screens are for owners and admins: a product rule, not a token scope.
        .route(
            "/workspaces/{workspace}/billing",
            scoped(Read, get(models::billing)),
        )
        .route(
            "/workspaces/{workspace}/activity",
            scoped(Read, get(models::activity)),
        )
        .fallback(|| async { ApiError::not_found("no such route") })
        // Every route above answers within the request timeout; the long-running ones below
        // (live streams, rebuilds, exports, evidence) are added after it and are not cut off.
        .layer(middleware::from_fn_with_state(
            state.config.limits.request_timeout,
            bounded_time,
        ))
        .route(
            "/workspaces/{workspace}/audit/export",
            scoped(Export, get(export::export)),
        )
        .route(
            "/workspaces/{workspace}/evidence",
            scoped(Export, post(export::evidence)),
        )
        .route("/rebuild", scoped(Admin, post(models::rebuild)))
        .route(
            "/workspaces/{workspace}/live",
            scoped(Read, get(live::server_sent_events)),
        )
        .route(
            "/workspaces/{workspace}/live/ws",
            scoped(Read, get(live::websocket)),
        )
        .layer(middleware::from_fn_with_state(state.clone(), authenticate));
    let router = Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/readyz", get(ready))
        .route("/metrics", get(observability::metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(state.config.max_batch_bytes))
        .layer(middleware::from_fn_with_state(
            state.config.limits.max_uri_bytes,
            bounded_uri,
        ))
        .layer(middleware::from_fn(observability::record_request))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .into_response()
        }))
        .with_state(state);
    observability::with_request_ids(router)
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "`{\"status\": \"ok\"}`", body = Object)))]
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: ready once the store answers reads.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, description = "`{\"status\": \"ready\", \"position\": P}`", body = Object),
        (status = 503, description = "The store does not answer", body = crate::error::ErrorBody)))]
pub(crate) async fn ready(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, ApiError> {
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
    /// Binds the configured address (port 0 picks a free port) and opens the search index,
    /// whose indexer starts following the log at once.
    pub async fn bind(store: Store, config: ApiConfig) -> std::io::Result<Application> {
        let listener = TcpListener::bind(config.listen).await?;
        let search = SearchIndex::open(store.clone(), config.search.clone())
            .await
            .map_err(std::io::Error::other)?;
        let projections = Projections::open(store.clone(), config.projections.clone())
            .await
            .map_err(std::io::Error::other)?;
        observability::publish_starting_values(&store, &search, &projections);
        Ok(Application {
            listener,
            state: AppState::new(store, search, projections, config),
        })
    }

    /// Returns the read models this server answers from.
    pub fn projections(&self) -> Projections {
        self.state.projections.clone()
    }

    /// Returns the audit search index this server answers from.
    pub fn search_index(&self) -> SearchIndex {
        self.state.search.clone()
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
        let search = self.state.search.clone();
        let stopping = self.state.stopping.clone();
        let delivery = tokio::spawn(webhooks::deliver_webhooks(self.state.clone()));
        let projector = tokio::spawn(self.state.projections.clone().run(stopping.subscribe()));
        let feed = tokio::spawn(
            self.state
                .feed
                .clone()
                .run(store.clone(), stopping.subscribe()),
        );
        let limits = self.state.config.limits.clone();
        let app = router(self.state);
        let upkeep = tokio::spawn(observability::upkeep());
        let signal = stopping.clone();
        let served = limits::serve(self.listener, app, &limits, async move {
            shutdown.await;
            // Live streams never end by themselves: tell them to, so in-flight requests finish.
            signal.send_replace(true);
        })
        .await;
        stopping.send_replace(true);
        if let Err(error) = projector.await {
            tracing::error!(error = %error, "projection runner ended abnormally");
        }
        if let Err(error) = delivery.await {
            tracing::error!(error = %error, "webhook delivery ended abnormally");
        }
        upkeep.abort();
        if let Err(error) = feed.await {
            tracing::error!(error = %error, "the live feed ended abnormally");
        }
        search.shutdown().await;
        store.shutdown().await;
        served
    }
}
