//! Webhooks: managing them under `/v1/workspaces/WS/webhooks`, and the worker that delivers.
//!
//! The log is the outbox. Each webhook keeps a cursor in the database; [`deliver_webhooks`]
//! runs one task per active webhook that reads the workspace's events after its cursor, keeps
//! those of the wanted types, and POSTs each, signed, until the receiver answers 2xx; only then
//! does it move the cursor (in the transaction that records the attempt) and go on to the next
//! event. So delivery is in order per webhook and at least once, survives restarts, and runs
//! concurrently across webhooks. Every attempt is recorded; an event that keeps failing pauses
//! its webhook until someone resumes it.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chronicle_domain::catalogue::ReplayTransport;
use chronicle_domain::{RecordedEvent, format_timestamp};
use chronicle_store::{DeliveryAttempt, NewWebhook, Store, StoreError, Webhook, WebhookSecret};
use hmac::{Hmac, Mac};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use time::OffsetDateTime;
use tokio::task::{AbortHandle, JoinSet};
use uuid::Uuid;

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::events::query;
use crate::export::{Replay, record_replay};
use crate::live::TypeFilter;
use crate::search::requester;
use crate::server::AppState;

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "X-Chronicle-Signature";

/// The shortest secret a webhook may have.
const MIN_SECRET_CHARS: usize = 16;
/// Events one webhook's task reads from the log at a time.
const PAGE_SIZE: u32 = 500;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The wait before the second attempt at an event; each later wait doubles, with jitter.
    pub retry_base: Duration,
    /// No wait between attempts is longer than this.
    pub retry_cap: Duration,
    /// Attempts at one event before its webhook is paused.
    pub max_attempts: u32,
    /// How long one delivery may take, connecting included.
    pub request_timeout: Duration,
    /// Hosts exempt from the network check: exact names (`hooks.internal`, `127.0.0.1`) or every
    /// subdomain of one (`*.example.com`). Every other host is refused if it resolves to one of
    /// the server's own networks (see [`is_internal`]); public destinations need no entry.
    pub allowed_hosts: Vec<String>,
}

impl Default for WebhookConfig {
    /// Returns retries from 1 s doubling up to 5 min, pausing after 24 attempts (about an hour),
    /// 10 s a request, and no host exempt from the network check.
    fn default() -> WebhookConfig {
        WebhookConfig {
            retry_base: Duration::from_secs(1),
            retry_cap: Duration::from_secs(300),
            max_attempts: 24,
            request_timeout: Duration::from_secs(10),
            allowed_hosts: Vec::new(),
        }
    }
}

impl WebhookConfig {
    /// Returns the wait after the `attempt`-th failure: `retry_base · 2^(attempt−1)` capped at
    /// `retry_cap`, of which a random half is taken away (`jitter` in [0, 1]) so that receivers
    /// coming back are not hit by every webhook at once.
    fn retry_delay(&self, attempt: u32, jitter: f64) -> Duration {
        let doubling = 2u32.saturating_pow(attempt.saturating_sub(1).min(31));
        let delay = self.retry_base.saturating_mul(doubling).min(self.retry_cap);
        delay.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }

    fn next_retry_delay(&self, attempt: u32) -> Duration {
        self.retry_delay(attempt, rand::thread_rng().r#gen::<f64>())
    }

    /// Whether the operator exempted `host` (an IPv6 literal with or without brackets).
    fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowed_hosts.iter().any(|pattern| {
            let pattern = pattern.trim_matches(['[', ']']).to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(domain) => host
                    .strip_suffix(domain)
                    .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                None => host == pattern,
            }
        })
    }

    /// Resolves `host` for a delivery: every address it has, refused if any of them is internal
    /// and the operator did not allow the host.
    async fn resolve(&self, host: &str) -> Result<Vec<SocketAddr>, Refusal> {
        let host = host.trim_matches(['[', ']']);
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, 0))
            .await
            .map_err(|_| Refusal::Unresolved)?
            .collect();
        if addresses.is_empty() {
            return Err(Refusal::Unresolved);
        }
        if !self.allows_host(host) && addresses.iter().any(|address| is_internal(address.ip())) {
            return Err(Refusal::Forbidden);
        }
        Ok(addresses)
    }
}

/// Whether `ip` is on one of the server's own networks, which webhooks may not reach: loopback,
/// private, link-local, CGNAT, benchmarking, IETF protocol, multicast, reserved, broadcast and
/// unspecified IPv4 addresses; loopback, unspecified, link-local, unique-local and multicast
/// IPv6 ones. An IPv6 address that embeds an IPv4 one (`::ffff:a.b.c.d`, `::a.b.c.d`, which
/// covers `::1` and `::`) is judged as that IPv4 address.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, c, _] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || a == 0
                || a >= 224
                || (a == 100 && (64..128).contains(&b))
                || (a, b, c) == (192, 0, 0)
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(ip) => match ip.to_ipv4() {
            Some(ipv4) => is_internal(IpAddr::V4(ipv4)),
            None => ip.is_multicast() || ip.is_unicast_link_local() || ip.is_unique_local(),
        },
    }
}

/// Why a delivery may not go to a host.
#[derive(Debug)]
enum Refusal {
    Forbidden,
    Unresolved,
}

impl Refusal {
    /// The attempt's outcome: one of [`OUTCOMES`].
    fn outcome(&self) -> &'static str {
        match self {
            Refusal::Forbidden => "forbidden destination",
            Refusal::Unresolved => "dns failure",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.outcome())
    }
}

impl std::error::Error for Refusal {}

/// The delivery client's resolver: it answers only addresses [`WebhookConfig::resolve`]
/// checked, and reqwest connects to those, so a name cannot resolve to a public address for the
/// check and to an internal one for the connection.
struct CheckedResolver(WebhookConfig);

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let config = self.0.clone();
        Box::pin(async move {
            let addresses = config.resolve(name.as_str()).await?;
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// A webhook as answered: never its secret.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookAnswer {
    #[serde(flatten)]
    webhook: Webhook,
    /// `active`, or `paused` after an event kept failing.
    status: &'static str,
}

impl From<Webhook> for WebhookAnswer {
    fn from(webhook: Webhook) -> WebhookAnswer {
        let status = if webhook.paused_at.is_some() {
            "paused"
        } else {
            "active"
        };
        WebhookAnswer { webhook, status }
    }
}

fn invalid_webhook(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_webhook", message).with("field", field)
}

/// What a valid create body holds.
struct WebhookRequest {
    url: String,
    host: String,
    secret: WebhookSecret,
    types: Vec<String>,
    after: Option<u64>,
}

/// Reads `{"url", "secret", "types", "after"?}`; the first bad field is named.
fn parse_webhook_request(body: &[u8]) -> Result<WebhookRequest, ApiError> {
    let body: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request("invalid_body", format!("expected a JSON object: {error}"))
    })?;
    let Value::Object(body) = body else {
        return Err(ApiError::bad_request(
            "invalid_body",
            "expected a JSON object with url, secret and types",
        ));
    };

    let url = body
        .get("url")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid_webhook("url", "url is a string: an http or https URL"))?;
    let parsed = reqwest::Url::parse(url)
        .map_err(|error| invalid_webhook("url", format!("url is not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid_webhook("url", "url must be http or https"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| invalid_webhook("url", "url has no host"))?
        .to_owned();

    let secret = body
        .get("secret")
        .and_then(Value::as_str)
        .filter(|secret| secret.chars().count() >= MIN_SECRET_CHARS)
        .ok_or_else(|| {
            invalid_webhook(
                "secret",
                format!("secret is a string of at least {MIN_SECRET_CHARS} characters"),
            )
        })?;

    let types: Vec<String> = body
        .get("types")
        .and_then(Value::as_array)
        .and_then(|types| {
            types
                .iter()
                .map(|pattern| pattern.as_str().map(str::to_owned))
                .collect::<Option<Vec<String>>>()
        })
        .filter(|types| !types.is_empty())
        .ok_or_else(|| {
            invalid_webhook(
                "types",
                "types is a non-empty list of event types or `prefix.*` patterns",
            )
        })?;
    TypeFilter::parse(types.iter().map(String::as_str))
        .map_err(|message| invalid_webhook("types", message))?;

    let after = match body.get("after") {
        None | Some(Value::Null) => None,
        Some(after) => Some(after.as_u64().ok_or_else(|| {
            invalid_webhook("after", "after is a log position: a non-negative number")
        })?),
    };
    Ok(WebhookRequest {
        url: url.to_owned(),
        host,
        secret: WebhookSecret::new(secret),
        types,
        after,
    })
}

/// Refuses, with 400 `forbidden_destination`, a host that resolves to any address on one of
/// the server's own networks, unless the operator allowed it. A name that does not resolve now
/// is refused too (400 `invalid_webhook`): it is most likely a typo, and delivery could not
/// check it either. Each delivery checks again (see [`CheckedResolver`]).
async fn check_destination(host: &str, config: &WebhookConfig) -> Result<(), ApiError> {
    if config.allows_host(host) {
        return Ok(());
    }
    match config.resolve(host).await {
        Ok(_) => Ok(()),
        Err(Refusal::Forbidden) => Err(ApiError::bad_request(
            "forbidden_destination",
            format!(
                "deliveries may not go to {host}: it is on one of this server's own networks \
                 (loopback, private, link-local, CGNAT, multicast …); the operator can allow it \
                 with --webhook-allow"
            ),
        )
        .with("field", "url")),
        Err(Refusal::Unresolved) => Err(invalid_webhook(
            "url",
            format!("{host} does not resolve to any address"),
        )),
    }
}

/// `POST /v1/workspaces/WS/webhooks` with `{"url", "secret", "types", "after"?}`: delivery
/// starts after position `after`, by default after the newest event.
#[utoipa::path(post, path = "/v1/workspaces/{workspace}/webhooks", tag = "webhooks", params(("workspace" = String, Path)), request_body = Object,
    description = "Creates a webhook `{\"url\", \"secret\", \"types\", \"after\"?}` (scope `admin`). A URL whose host is, or resolves to, an address on the server's own networks (loopback, private, link-local, unique-local, CGNAT, multicast, unspecified) is refused with 400 `forbidden_destination`, unless the operator allowed the host (`--webhook-allow`); a host that does not resolve is refused with 400 `invalid_webhook`.",
    responses((status = 201, body = WebhookAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
    Extension(principal): Extension<Principal>,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookAnswer>), ApiError> {
    let body = body.map_err(|rejection| {
        ApiError::new(rejection.status(), "invalid_body", rejection.body_text())
    })?;
    let request = parse_webhook_request(&body)?;
    check_destination(&request.host, &state.config.webhooks).await?;
    if let Some(after) = request.after {
        let replay = Replay {
            workspace: &workspace,
            after,
            types: request.types.clone(),
            transport: ReplayTransport::Webhook,
        };
        record_replay(&state, replay, requester(principal, connection, &headers)).await?;
    }
    let webhook = state
        .store
        .create_webhook(NewWebhook {
            id: Uuid::now_v7(),
            workspace,
            url: request.url,
            secret: request.secret,
            types: request.types,
            created_at: format_timestamp(OffsetDateTime::now_utc()),
            cursor: request.after.unwrap_or_else(|| state.store.head().position),
        })
        .await?;
    tracing::info!(webhook = %webhook.id, workspace = %webhook.workspace, "webhook created");
    state.webhooks_changed.notify_one();
    Ok((StatusCode::CREATED, Json(webhook.into())))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct WebhookList {
    items: Vec<WebhookAnswer>,
}

/// `GET /v1/workspaces/WS/webhooks`.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/webhooks", tag = "webhooks", params(("workspace" = String, Path)),
    description = "The workspace's webhooks, never their secrets (scope `admin`).",
    responses((status = 200, body = WebhookList), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    Path(workspace): Path<String>,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.store.list_webhooks(&workspace).await?;
    Ok(Json(WebhookList {
        items: webhooks.into_iter().map(WebhookAnswer::from).collect(),
    }))
}

fn webhook_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid_parameter("id", "a webhook id is a UUID"))
}

fn no_webhook(id: Uuid) -> ApiError {
    ApiError::not_found(format!("no webhook has id {id} in this workspace"))
}

/// `DELETE /v1/workspaces/WS/webhooks/ID`: nothing is delivered to it any more.
#[utoipa::path(delete, path = "/v1/workspaces/{workspace}/webhooks/{id}", tag = "webhooks", params(("workspace" = String, Path), ("id" = String, Path)),
    description = "Deletes a webhook (scope `admin`).",
    responses((status = 204, description = "Deleted"), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = webhook_id(&id)?;
    let at = format_timestamp(OffsetDateTime::now_utc());
    if !state.store.delete_webhook(&workspace, id, &at).await? {
        return Err(no_webhook(id));
    }
    tracing::info!(webhook = %id, workspace = %workspace, "webhook deleted");
    state.webhooks_changed.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/workspaces/WS/webhooks/ID/resume`: delivery to a paused webhook starts again with
/// the event it stopped at.
#[utoipa::path(post, path = "/v1/workspaces/{workspace}/webhooks/{id}/resume", tag = "webhooks", params(("workspace" = String, Path), ("id" = String, Path)),
    description = "Resumes a paused webhook (scope `admin`).",
    responses((status = 200, body = WebhookAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn resume_webhook(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
) -> Result<Json<WebhookAnswer>, ApiError> {
    let id = webhook_id(&id)?;
    let webhook = state
        .store
        .resume_webhook(&workspace, id)
        .await?
        .ok_or_else(|| no_webhook(id))?;
    state.webhooks_changed.notify_one();
    Ok(Json(webhook.into()))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveriesPage {
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct DeliveriesAnswer {
    items: Vec<DeliveryAttempt>,
    /// The `cursor` of the next (older) page, or null at the end.
    next_cursor: Option<String>,
}

const DEFAULT_DELIVERIES: u32 = 100;
const MAX_DELIVERIES: u32 = 1_000;

/// `GET /v1/workspaces/WS/webhooks/ID/deliveries?limit=N&cursor=C`: every attempt, newest
/// first.
#[utoipa::path(get, path = "/v1/workspaces/{workspace}/webhooks/{id}/deliveries", tag = "webhooks", params(("workspace" = String, Path), ("id" = String, Path), DeliveriesPage),
    description = "Every delivery attempt, newest first (scope `admin`). A failed attempt shows the receiver's `status_code` (redirects are not followed), or, when no answer came, an `error` that is one of `timeout`, `connection refused`, `forbidden destination` (the host resolved to one of the server's own networks at delivery), `dns failure`, `connection failed` and `request failed`.",
    responses((status = 200, body = DeliveriesAnswer), (status = 400, description = "Bad input", body = ErrorBody), (status = 401, description = "No valid token", body = ErrorBody), (status = 403, description = "The token lacks the scope", body = ErrorBody), (status = 404, description = "Not found, or another workspace", body = ErrorBody), (status = 429, description = "Past the token's rate", body = ErrorBody)))]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    Path((workspace, id)): Path<(String, String)>,
    page: Result<Query<DeliveriesPage>, QueryRejection>,
) -> Result<Json<DeliveriesAnswer>, ApiError> {
    let id = webhook_id(&id)?;
    let page = query(page)?;
    let limit = page.limit.unwrap_or(DEFAULT_DELIVERIES);
    if !(1..=MAX_DELIVERIES).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            format!("limit is between 1 and {MAX_DELIVERIES}"),
        ));
    }
    let before = page
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor
                .split_once('.')
                .and_then(|(position, attempt)| {
                    Some((position.parse().ok()?, attempt.parse().ok()?))
                })
                .ok_or_else(|| {
                    ApiError::invalid_parameter(
                        "cursor",
                        "cursor is a next_cursor this endpoint answered",
                    )
                })
        })
        .transpose()?;
    if state.store.webhook(&workspace, id).await?.is_none() {
        return Err(no_webhook(id));
    }
    let mut items = state.store.delivery_attempts(id, before, limit).await?;
    // Attempts recorded by older releases kept the whole error chain.
    for item in &mut items {
        if item
            .error
            .as_deref()
            .is_some_and(|error| !OUTCOMES.contains(&error))
        {
            item.error = Some("request failed".to_owned());
        }
    }
    let next_cursor = match items.last() {
        Some(last) if items.len() == limit as usize => {
            Some(format!("{}.{}", last.position, last.attempt))
        }
        _ => None,
    };
    Ok(Json(DeliveriesAnswer { items, next_cursor }))
}

/// Returns `t=UNIX,v1=HEX`, HEX being the lowercase hex HMAC-SHA256 of `UNIX.BODY` under the
/// secret.
fn signature(secret: &str, unix_time: i64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(unix_time.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    format!(
        "t={unix_time},v1={}",
        chronicle_domain::merkle::to_hex(&digest)
    )
}

/// How often, on a shared PostgreSQL database, the delivering process lists webhooks again.
const RELIST_OTHER_NODES: std::time::Duration = std::time::Duration::from_secs(2);

/// Delivers to every active webhook until the server stops: one task per webhook, started
/// and stopped as webhooks are created, deleted, paused and resumed.
pub(crate) async fn deliver_webhooks(state: AppState) {
    let config = &state.config.webhooks;
    let client = match reqwest::Client::builder()
        .timeout(config.request_timeout)
        // A redirect is an answer that is not 2xx, not a new target.
        .redirect(reqwest::redirect::Policy::none())
        // Every name is resolved, checked and connected to here, never by a proxy.
        .no_proxy()
        .dns_resolver(Arc::new(CheckedResolver(config.clone())))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %error, "webhook delivery cannot start: no HTTP client");
            return;
        }
    };
    let mut stopping = state.stopping.subscribe();
    // With several processes on one PostgreSQL database, one of them delivers.
    let _leadership = tokio::select! {
        leadership = state.store.lead("chronicle webhooks") => match leadership {
            Ok(leadership) => leadership,
            Err(error) => {
                tracing::error!(error = %error, "webhook delivery cannot start: no leadership");
                return;
            }
        },
        _ = stopping.wait_for(|stopping| *stopping) => return,
    };
    // Webhooks created through another process are noticed by listing again now and then.
    let relist_every = match state.store.backend().dialect() {
        chronicle_store::Dialect::Sqlite => None,
        chronicle_store::Dialect::Postgres => Some(RELIST_OTHER_NODES),
    };
    let mut tasks = JoinSet::new();
    let mut running: HashMap<Uuid, AbortHandle> = HashMap::new();
    let mut failed_listings = 0;
    // Checked before each wait: a shutdown may come before this task first runs.
    while !*stopping.borrow_and_update() {
        let relist_after = match state.store.active_webhook_ids().await {
            Ok(active) => {
                failed_listings = 0;
                let active: HashSet<Uuid> = active.into_iter().collect();
                running.retain(|id, task| {
                    let keep = active.contains(id);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                for id in active {
                    running.entry(id).or_insert_with(|| {
                        let delivery = WebhookDelivery {
                            store: state.store.clone(),
                            config: state.config.webhooks.clone(),
                            client: client.clone(),
                            id,
                        };
                        tasks.spawn(delivery.run())
                    });
                }
                None
            }
            Err(error) => {
                failed_listings += 1;
                tracing::warn!(error = %error, "cannot list webhooks; trying again");
                Some(config.next_retry_delay(failed_listings))
            }
        };
        tokio::select! {
            _ = state.webhooks_changed.notified() => {}
            Some(ended) = tasks.join_next_with_id() => {
                let task = match ended {
                    Ok((task, ())) => task,
                    Err(error) => {
                        if error.is_panic() {
                            tracing::error!(error = %error, "a webhook delivery task panicked");
                        }
                        error.id()
                    }
                };
                running.retain(|_, handle| handle.id() != task);
            }
            _ = tokio::time::sleep(relist_after.unwrap_or_default()), if relist_after.is_some() => {}
            _ = tokio::time::sleep(relist_every.unwrap_or_default()), if relist_every.is_some() => {}
            changed = stopping.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    // An attempt cut short here is made again after the restart: at least once.
    tasks.shutdown().await;
    tracing::info!("webhook delivery stopped");
}

/// Delivery to one webhook.
struct WebhookDelivery {
    store: Store,
    config: WebhookConfig,
    client: reqwest::Client,
    id: Uuid,
}

/// How delivering one event ended.
enum Outcome {
    Delivered,
    /// The webhook was deleted or paused: its task ends.
    Stopped,
}

impl WebhookDelivery {
    /// Delivers until the webhook is deleted or paused; a store failure is retried with
    /// backoff from the last acknowledged event.
    async fn run(self) {
        let mut failures = 0;
        loop {
            match self.follow().await {
                Ok(()) => return,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(webhook = %self.id, error = %error, "webhook delivery failed; trying again");
                    tokio::time::sleep(self.config.next_retry_delay(failures)).await;
                }
            }
        }
    }

    /// Reads the workspace's events after the cursor page by page, delivering the wanted ones,
    /// and waits on the head watch when caught up. Returns when the webhook is gone or paused.
    async fn follow(&self) -> Result<(), StoreError> {
        let Some(target) = self.store.delivery_target(self.id).await? else {
            return Ok(());
        };
        let workspace = target.webhook.workspace;
        let types = TypeFilter::parse(target.webhook.types.iter().map(String::as_str))
            .map_err(StoreError::Unreadable)?;
        let mut head = self.store.subscribe_head();
        // Every event of the workspace up to here is delivered or unwanted.
        let mut scanned = target.webhook.cursor;
        loop {
            // Each commit after this marks the watch changed, so none is missed while reading.
            let seen = head.borrow_and_update().position;
            if seen > scanned {
                let events = self
                    .store
                    .read_workspace(&workspace, scanned, PAGE_SIZE)
                    .await?;
                let full_page = events.len() == PAGE_SIZE as usize;
                let mut skipped = None;
                for event in &events {
                    if types.matches(&event.event_type) {
                        if let Outcome::Stopped = self.deliver(event).await? {
                            return Ok(());
                        }
                        skipped = None;
                    } else {
                        skipped = Some(event.position);
                    }
                    scanned = event.position;
                }
                if let Some(position) = skipped {
                    self.store.advance_webhook_cursor(self.id, position).await?;
                }
                if full_page {
                    continue;
                }
                // A short page holds every event of the workspace up to `seen`.
                scanned = scanned.max(seen);
            }
            if head.changed().await.is_err() {
                return Ok(());
            }
        }
    }

    /// Whether `url`'s host is an internal IP literal the operator did not allow: reqwest
    /// connects to a literal without asking [`CheckedResolver`], so it is checked here.
    fn forbidden_literal(&self, url: &str) -> bool {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
            .unwrap_or_default();
        host.trim_matches(['[', ']'])
            .parse()
            .is_ok_and(|ip| is_internal(ip) && !self.config.allows_host(&host))
    }

    /// Delivers one event until the receiver acknowledges it with a 2xx, recording every
    /// attempt; pauses the webhook after `max_attempts`.
    async fn deliver(&self, event: &RecordedEvent) -> Result<Outcome, StoreError> {
        // The recorded event exactly as `GET /v1/events/ID` answers it.
        let body = Bytes::from(serde_json::to_vec(event).expect("a recorded event serialises"));
        let mut attempt = self
            .store
            .last_delivery_attempt(self.id, event.position)
            .await?
            + 1;
        loop {
            // Read before every attempt, so nothing is sent once the webhook is deleted.
            let Some(target) = self.store.delivery_target(self.id).await? else {
                return Ok(Outcome::Stopped);
            };
            let started_at = OffsetDateTime::now_utc();
            let started = Instant::now();
            let answer = if self.forbidden_literal(&target.webhook.url) {
                Err(Refusal::Forbidden.outcome().to_owned())
            } else {
                self.client
                    .post(&target.webhook.url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(
                        SIGNATURE_HEADER,
                        signature(target.secret.expose(), started_at.unix_timestamp(), &body),
                    )
                    .body(body.clone())
                    .send()
                    .await
                    .map_err(|error| outcome(&error).to_owned())
            };
            let duration_ms = started.elapsed().as_millis() as u64;
            let (status_code, error) = match answer {
                Ok(response) => (Some(response.status().as_u16()), None),
                Err(outcome) => (None, Some(outcome)),
            };
            let delivered = status_code.is_some_and(|code| (200..300).contains(&code));
            let paused = !delivered && attempt >= self.config.max_attempts;
            let retry_after =
                (!delivered && !paused).then(|| self.config.next_retry_delay(attempt));
            let record = DeliveryAttempt {
                position: event.position,
                attempt,
                at: format_timestamp(started_at),
                status_code,
                error,
                duration_ms,
                next_attempt_at: retry_after
                    .map(|delay| format_timestamp(OffsetDateTime::now_utc() + delay)),
            };
            self.store
                .record_delivery_attempt(self.id, &record, delivered)
                .await?;
            if delivered {
                return Ok(Outcome::Delivered);
            }
            if paused {
                let at = format_timestamp(OffsetDateTime::now_utc());
                self.store.pause_webhook(self.id, &at).await?;
                tracing::warn!(
                    webhook = %self.id,
                    position = event.position,
                    attempts = attempt,
                    "webhook paused: the receiver kept failing"
                );
                return Ok(Outcome::Stopped);
            }
            tracing::debug!(webhook = %self.id, position = event.position, attempt, status_code, "delivery failed; retrying");
            tokio::time::sleep(retry_after.unwrap_or_default()).await;
            attempt += 1;
        }
    }
}

/// What an attempt that got no answer shows: one of [`OUTCOMES`], never the error chain, which
/// can name internal addresses and the server's own setup.
fn outcome(error: &reqwest::Error) -> &'static str {
    if error.is_timeout() {
        return "timeout";
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(refusal) = cause.downcast_ref::<Refusal>() {
            return refusal.outcome();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => return "connection refused",
                std::io::ErrorKind::TimedOut => return "timeout",
                _ => {}
            }
        }
        source = cause.source();
    }
    if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    }
}

/// Every `error` an attempt may show.
const OUTCOMES: [&str; 6] = [
    "timeout",
    "connection refused",
    "forbidden destination",
    "dns failure",
    "connection failed",
    "request failed",
];

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{OUTCOMES, Refusal, WebhookConfig, is_internal, signature};

    #[test]
    fn retry_delays_double_with_jitter_up_to_the_cap() {
        let config = WebhookConfig {
            retry_base: Duration::from_millis(100),
            retry_cap: Duration::from_secs(1),
            ..WebhookConfig::default()
        };
        assert_eq!(config.retry_delay(1, 1.0), Duration::from_millis(100));
        assert_eq!(config.retry_delay(1, 0.0), Duration::from_millis(50));
        assert_eq!(config.retry_delay(3, 1.0), Duration::from_millis(400));
        assert_eq!(config.retry_delay(5, 1.0), Duration::from_secs(1));
        assert_eq!(
            config.retry_delay(u32::MAX, 0.0),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn allow_lists_match_hosts_and_subdomains() {
        let config = WebhookConfig {
            allowed_hosts: vec![
                "siem.example.com".into(),
                "*.hooks.test".into(),
                "[::1]".into(),
            ],
            ..WebhookConfig::default()
        };
        assert!(config.allows_host("siem.example.com"));
        assert!(config.allows_host("SIEM.example.com"));
        assert!(config.allows_host("a.hooks.test"));
        assert!(config.allows_host("[::1]"));
        assert!(config.allows_host("::1"));
        assert!(!config.allows_host("hooks.test"));
        assert!(!config.allows_host("evilhooks.test"));
        assert!(!config.allows_host("example.com"));
        assert!(!WebhookConfig::default().allows_host("10.0.0.1"));
    }

    #[test]
    fn the_servers_own_networks_are_internal() {
        let internal = [
            "127.0.0.1",
            "127.255.0.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "192.0.0.8",
            "198.18.0.1",
            "198.19.255.255",
            "::1",
            "::",
            "fe80::1",
            "febf::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
        ];
        for ip in internal {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        let public = [
            "8.8.8.8",
            "1.1.1.1",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.2.1",
            "198.20.0.1",
            "203.0.113.7",
            "2001:db8::1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ];
        for ip in public {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn refusals_are_outcomes() {
        for refusal in [Refusal::Forbidden, Refusal::Unresolved] {
            assert!(OUTCOMES.contains(&refusal.outcome()));
            assert_eq!(refusal.to_string(), refusal.outcome());
        }
    }

    #[test]
    fn signatures_are_hmac_sha256_of_time_dot_body() {
        // HMAC-SHA256 of "1700000000.{}" under "a-secret-of-16-chars", computed independently.
        assert_eq!(
            signature("a-secret-of-16-chars", 1_700_000_000, b"{}"),
            "t=1700000000,v1=00f65c9cbace71d62f0d6d0b3f2f1d97febd1ee13637b07b6a76c1d5b9370288"
        );
    }
}
