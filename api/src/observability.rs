//! Request ids, request tracing and Prometheus metrics.
//!
//! Every request carries an `X-Request-Id`: the caller's, or a new UUID; it is on the request's
//! tracing span and echoed in the answer. HTTP metrics are labelled by the route's template
//! (`/v1/events/{id}`), never by the raw path, so no id or token value reaches `/metrics`.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chronicle_projections::{Model, Projections};
use chronicle_search::SearchIndex;
use chronicle_store::Store;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Seconds buckets for latencies, from 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];
/// Events per group commit.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1_000.0, 5_000.0, 10_000.0, 20_000.0,
];

/// The process-wide Prometheus recorder, installed on first use.
pub(crate) fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|builder| {
                builder.set_buckets_for_metric(Matcher::Suffix("_events".into()), BATCH_BUCKETS)
            })
            .expect("valid buckets")
            .install_recorder()
            .inspect(|_| describe_metrics())
            .expect("no other metrics recorder is installed")
    })
}

/// Gives every metric family its `# HELP` text and unit.
fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "chronicle_http_requests_total",
        Unit::Count,
        "HTTP requests answered, by route, method and status"
    );
    describe_histogram!(
        "chronicle_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request's head, by route, method and status"
    );
    describe_counter!(
        "chronicle_appended_events_total",
        Unit::Count,
        "Events appended to the log"
    );
    describe_counter!(
        "chronicle_append_id_rechecks_total",
        Unit::Count,
        "Appends whose event ids were checked again against the log after a conflict"
    );
    describe_histogram!(
        "chronicle_commit_duration_seconds",
        Unit::Seconds,
        "Time to commit one group of appends"
    );
    describe_histogram!(
        "chronicle_group_commit_events",
        Unit::Count,
        "Events per group commit"
    );
    describe_gauge!(
        "chronicle_log_position",
        Unit::Count,
        "The position of the newest committed event"
    );
    describe_gauge!(
        "chronicle_index_position",
        Unit::Count,
        "The log position the audit search index has reached"
    );
    describe_gauge!(
        "chronicle_index_lag_events",
        Unit::Count,
        "Events committed to the log and not yet in the audit search index"
    );
    describe_gauge!(
        "chronicle_projection_lag_events",
        Unit::Count,
        "Events committed to the log and not yet applied to a read model, by model"
    );
    describe_gauge!(
        "chronicle_wal_frames",
        Unit::Count,
        "Frames in SQLite's write-ahead log at its last checkpoint (0 on PostgreSQL)"
    );
}

/// Sets every gauge and counter from the state at start, so an idle server shows each family
/// (an alert on `absent()` stays quiet) before its first append.
pub(crate) fn publish_starting_values(
    store: &Store,
    search: &SearchIndex,
    projections: &Projections,
) {
    prometheus();
    let head = store.head().position;
    metrics::gauge!("chronicle_log_position").set(head as f64);
    let indexed = search.position();
    metrics::gauge!("chronicle_index_position").set(indexed as f64);
    metrics::gauge!("chronicle_index_lag_events").set(head.saturating_sub(indexed) as f64);
    for model in Model::ALL {
        let lag = head.saturating_sub(projections.position(model));
        metrics::gauge!("chronicle_projection_lag_events", "model" => model.name()).set(lag as f64);
    }
    metrics::gauge!("chronicle_wal_frames").increment(0.0);
    metrics::counter!("chronicle_appended_events_total").increment(0);
    metrics::counter!("chronicle_append_id_rechecks_total").increment(0);
}

/// Drains histogram samples now and then, so memory stays flat between scrapes.
pub(crate) async fn upkeep() {
    let handle = prometheus();
    let mut ticks = tokio::time::interval(Duration::from_secs(5));
    loop {
        ticks.tick().await;
        handle.run_upkeep();
    }
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
pub(crate) async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus().render(),
    )
}

/// Counts every request and its latency by method, route template and status.
pub(crate) async fn record_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("chronicle_http_requests_total", &labels).increment(1);
    metrics::histogram!("chronicle_http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The `method` label of a request: one of a fixed set, so no caller can add label values.
fn method_label(method: &Method) -> &'static str {
    const KNOWN: [Method; 7] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    KNOWN
        .iter()
        .find(|known| *known == method)
        .map_or("other", Method::as_str)
}

/// The longest request id a caller may choose; a longer one is replaced by a fresh UUID.
const MAX_REQUEST_ID_BYTES: usize = 128;

/// Drops a caller's `X-Request-Id` that is too long or not printable ASCII, so a fresh one is
/// made in its place: what is echoed and traced is always short and plain.
async fn drop_unfit_request_id(mut request: Request, next: Next) -> Response {
    let fit = |id: &HeaderValue| {
        (1..=MAX_REQUEST_ID_BYTES).contains(&id.len())
            && id.as_bytes().iter().all(u8::is_ascii_graphic)
    };
    if request.headers().get_all(&REQUEST_ID).iter().count() > 1
        || request
            .headers()
            .get(&REQUEST_ID)
            .is_some_and(|id| !fit(id))
    {
        request.headers_mut().remove(&REQUEST_ID);
    }
    next.run(request).await
}

/// Sets (or keeps) `X-Request-Id`, traces the request under it, and echoes it in the answer.
pub(crate) fn with_request_ids(router: Router) -> Router {
    router
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(MakeSpan)
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        )
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(axum::middleware::from_fn(drop_unfit_request_id))
}

/// A request's span: method, route template and request id; no query string, no headers.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MakeSpan;

impl<B> tower_http::trace::MakeSpan<B> for MakeSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> tracing::Span {
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|id| id.to_str().ok())
            .unwrap_or("");
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("", |path| path.as_str());
        tracing::info_span!("request", method = %request.method(), route, request_id)
    }
}
