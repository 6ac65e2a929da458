//! Bounds on what one connection or one request may take, and the HTTP/1 server loop that
//! enforces the connection-level ones.
//!
//! `axum::serve` sets no timer, so hyper's header read timeout never fires there and a client
//! sending its headers a byte a second (slowloris) holds a connection and a task forever. This
//! loop builds hyper's HTTP/1 connections itself with a timer, a header read timeout, and caps
//! on header bytes and count (hyper answers 431 past them); the middlewares here bound the URL
//! (414) and the time to an answer (503).

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt;

use crate::error::ApiError;

/// Connection and request bounds.
#[derive(Debug, Clone)]
pub struct HttpLimits {
    /// A client must send a request's whole head (request line and headers) within this time,
    /// or its connection is closed.
    pub header_read_timeout: Duration,
    /// The most bytes of a request head; past it hyper answers 431.
    pub max_header_bytes: usize,
    /// The most headers a request may carry; past it hyper answers 431.
    pub max_headers: usize,
    /// The longest path and query; past it the answer is 414 `uri_too_long`.
    pub max_uri_bytes: usize,
    /// The longest time to an answer's head for every route but the long-running ones (live
    /// streams, rebuilds); past it the answer is 503 `timeout`.
    pub request_timeout: Duration,
}

impl Default for HttpLimits {
    /// Returns 10 s to send a head of at most 64 KiB and 100 headers, URLs of at most 8 KiB, and
    /// 30 s to an answer (more than the 5 s a `min_position` read may wait).
    fn default() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Answers 414 `uri_too_long` for a path and query longer than `max_uri_bytes`.
pub(crate) async fn bounded_uri(
    State(max_uri_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let uri = request.uri();
    let length = uri.path().len() + uri.query().map_or(0, |query| query.len() + 1);
    if length > max_uri_bytes {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the path and query are {length} bytes; at most {max_uri_bytes} are accepted"),
        )
        .with("limit", max_uri_bytes)
        .into_response();
    }
    next.run(request).await
}

/// Answers 503 `timeout` when the handler has not answered within the limit. Only the answer's
/// head is bounded: a streamed body goes on. An append cut off here may still commit; the
/// producer's idempotent retry (same ids) settles it.
pub(crate) async fn bounded_time(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(limit_ms = limit.as_millis() as u64, "request timed out");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                format!(
                    "the request was not answered within {} ms",
                    limit.as_millis()
                ),
            )
            .into_response()
        }
    }
}

/// Serves `app` over HTTP/1 (with upgrades, for WebSocket) until `shutdown` resolves, then stops
/// accepting, lets every connection finish the request in flight, and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: &HttpLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers);
    // Each connection holds a receiver; the loop waits for all of them to be dropped.
    let (connections_done, connection_alive) = watch::channel(());
    let (closing, _) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(remote));
                request
            });
        let connection = builder
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut closing = closing.subscribe();
        let alive = connection_alive.clone();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            let mut told = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::debug!(error = %error, remote = %remote, "connection ended");
                        }
                        break;
                    }
                    _ = closing.changed(), if !told => {
                        told = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(alive);
        });
    }
    drop(listener);
    closing.send_replace(true);
    drop(connection_alive);
    connections_done.closed().await;
    Ok(())
}

/// Logs a failed accept; waits a little when the process is out of file descriptors or memory,
/// rather than spinning on the same error.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %error, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
