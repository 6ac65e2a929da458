//! Webhooks: create, list, delete, resume, the delivery log, and delivery itself to a receiver
//! that checks every signature on its own: in order, at least once, through failures, pauses
//! and restarts.

use chronicle_store::conformance;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::routing::post;
use hmac::{Hmac, Mac};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::{Mutex, mpsc};
use tokio::time::timeout;

use crate::support::{TestApp, registered, renamed};

const GUARD: Duration = Duration::from_secs(20);
const SECRET: &str = "whsec-0123456789abcdef";

/// What reached the receiver.
#[derive(Debug, Clone)]
struct Arrival {
    event: Value,
    /// Whether the receiver answered 2xx.
    accepted: bool,
}

struct ReceiverState {
    secret: String,
    /// How many requests to answer 500 before answering 200.
    failures_left: AtomicUsize,
    arrivals: mpsc::UnboundedSender<Arrival>,
    /// Every request whose signature did not verify, with why.
    bad_signatures: Mutex<Vec<String>>,
}

/// A webhook receiver on port 0 that verifies each signature with its own HMAC.
struct Receiver {
    address: SocketAddr,
    state: Arc<ReceiverState>,
    arrivals: mpsc::UnboundedReceiver<Arrival>,
}

impl Receiver {
    async fn start(secret: &str, failures: usize) -> Receiver {
        let (sender, arrivals) = mpsc::unbounded_channel();
        let state = Arc::new(ReceiverState {
            secret: secret.to_owned(),
            failures_left: AtomicUsize::new(failures),
            arrivals: sender,
            bad_signatures: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/hook", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            address,
            state,
            arrivals,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.address)
    }

    fn fail_next(&self, failures: usize) {
        self.state.failures_left.store(failures, Ordering::SeqCst);
    }

    async fn next(&mut self) -> Arrival {
        timeout(GUARD, self.arrivals.recv())
            .await
            .expect("no delivery in time")
            .unwrap()
    }

    /// Returns the next `count` accepted events, in arrival order.
    async fn accepted(&mut self, count: usize) -> Vec<Value> {
        let mut events = Vec::new();
        while events.len() < count {
            let arrival = self.next().await;
            if arrival.accepted {
                events.push(arrival.event);
            }
        }
        events
    }

    async fn assert_signatures_verified(&self) {
        let bad = self.state.bad_signatures.lock().await;
        assert!(bad.is_empty(), "{bad:?}");
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> AxumStatus {
    if let Err(why) = verify(&state.secret, &headers, &body) {
        state.bad_signatures.lock().await.push(why);
    }
    let accepted = state
        .failures_left
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
            left.checked_sub(1)
        })
        .is_err();
    let event = serde_json::from_slice(&body).unwrap();
    let _ = state.arrivals.send(Arrival { event, accepted });
    if accepted {
        AxumStatus::NO_CONTENT
    } else {
        AxumStatus::INTERNAL_SERVER_ERROR
    }
}

/// Checks `X-Chronicle-Signature: t=UNIX,v1=HEX` against HMAC-SHA256(secret, "UNIX.BODY").
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    if content_type != Some("application/json") {
        return Err(format!("content type {content_type:?}"));
    }
    let header = headers
        .get("x-chronicle-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or("no signature header")?;
    let (time, hex) = header
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
        .ok_or_else(|| format!("malformed signature {header}"))?;
    let time: i64 = time.parse().map_err(|_| format!("bad time in {header}"))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    if (now - time).abs() > 300 {
        return Err(format!("signature time {time} is far from now {now}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{time}.").as_bytes());
    mac.update(body);
    let expected: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    if expected != hex {
        return Err(format!("signature {hex} is not {expected}"));
    }
    Ok(())
}

/// A server whose retries take milliseconds.
async fn fast_retries(max_attempts: u32) -> TestApp {
    TestApp::spawn_with(|config| {
        config.webhooks.retry_base = Duration::from_millis(2);
        config.webhooks.retry_cap = Duration::from_millis(20);
        config.webhooks.max_attempts = max_attempts;
    })
    .await
}

async fn create(app: &TestApp, workspace: &str, body: Value) -> Value {
    let (status, webhook) = app
        .post_json(&format!("/v1/workspaces/{workspace}/webhooks"), &body)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    webhook
}

async fn deliveries(app: &TestApp, workspace: &str, id: &str) -> Vec<Value> {
    let (status, answer) = app
        .get(&format!(
            "/v1/workspaces/{workspace}/webhooks/{id}/deliveries?limit=1000"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer["items"].as_array().unwrap().clone()
}

/// Appends events and returns them as recorded.
async fn append(app: &TestApp, events: Vec<Value>) -> Vec<Value> {
    let (status, answer) = app.append(events.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let mut recorded = Vec::new();
    for (appended, sent) in answer["events"].as_array().unwrap().iter().zip(&events) {
        let id = appended["id"].as_str().unwrap();
        let workspace = sent["workspace"].as_str().unwrap();
        recorded.push(
            app.get(&format!("/v1/workspaces/{workspace}/events/{id}"))
                .await
                .1,
        );
    }
    recorded
}

conformance! {
#[tokio::test]
async fn webhooks_are_created_listed_and_deleted_without_their_secret() {
    // The name does not resolve here: allowed, it is not looked up.
    let app = TestApp::spawn_with(|config| {
        config.webhooks.allowed_hosts = vec!["siem.example.test".into()];
    })
    .await;
    let created = create(
        &app,
        "ws_a",
        json!({"url": "https://siem.example.test/in", "secret": SECRET, "types": ["machine.*"]}),
    )
    .await;
    assert!(!created.to_string().contains(SECRET), "{created}");
    assert_eq!(created["url"], "https://siem.example.test/in");
    assert_eq!(created["types"], json!(["machine.*"]));
    assert_eq!(created["workspace"], "ws_a");
    assert_eq!(created["status"], "active");
    assert_eq!(created["cursor"], 0);
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, list) = app.get("/v1/workspaces/ws_a/webhooks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"], json!([created]));
    assert!(!list.to_string().contains(SECRET));
    let (_, other) = app.get("/v1/workspaces/ws_b/webhooks").await;
    assert_eq!(other["items"], json!([]));

    // Another workspace's id is not found, and stays in place.
    let path_b = format!("/v1/workspaces/ws_b/webhooks/{id}");
    let (status, body) = app
        .send(Method::DELETE, &path_b, Some(crate::support::TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, _) = app.get(&format!("{path_b}/deliveries")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let path_a = format!("/v1/workspaces/ws_a/webhooks/{id}");
    let (status, _) = app
        .send(Method::DELETE, &path_a, Some(crate::support::TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get("/v1/workspaces/ws_a/webhooks").await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = app
        .send(Method::DELETE, &path_a, Some(crate::support::TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .send(
            Method::DELETE,
            "/v1/workspaces/ws_a/webhooks/nope",
            Some(crate::support::TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}
}

conformance! {
#[tokio::test]
async fn invalid_create_bodies_are_refused_naming_the_field() {
    let app = TestApp::spawn_with(|config| {
        config.webhooks.allowed_hosts = vec!["*.example.test".into()];
    })
    .await;
    let good = json!({"url": "https://siem.example.test/in", "secret": SECRET, "types": ["machine.renamed"]});
    let cases: Vec<(&str, Value)> = vec![
        ("url", json!(null)),
        ("url", json!("not a url")),
        ("url", json!("ftp://siem.example.test/in")),
        // `.invalid` never resolves: refused at creation rather than failing every delivery.
        ("url", json!("http://hooks.invalid/in")),
        ("secret", json!(null)),
        ("secret", json!("")),
        ("secret", json!("fifteen-chars!!")),
        ("types", json!(null)),
        ("types", json!([])),
        ("types", json!("machine.*")),
        ("types", json!(["machine*"])),
        ("types", json!(["machine.renamed", 3])),
        ("after", json!(-1)),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        if value.is_null() {
            body.as_object_mut().unwrap().remove(field);
        } else {
            body[field] = value.clone();
        }
        let (status, answer) = app.post_json("/v1/workspaces/ws_a/webhooks", &body).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{field} = {value}: {answer}"
        );
        assert_eq!(answer["error"]["code"], "invalid_webhook", "{answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
        assert!(!answer.to_string().contains(SECRET));
    }
    let response = app
        .client
        .post(app.url("/v1/workspaces/ws_a/webhooks"))
        .bearer_auth(crate::support::TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_body");

    let (_, list) = app.get("/v1/workspaces/ws_a/webhooks").await;
    assert_eq!(list["items"], json!([]));
    create(&app, "ws_a", good).await;
}
}

conformance! {
#[tokio::test]
async fn deliveries_are_signed_in_order_once_each_and_survive_a_failing_receiver() {
    let app = fast_retries(50).await;
    let mut receiver = Receiver::start(SECRET, 3).await;
    // Events before the webhook exists are not delivered.
    append(&app, vec![registered("ws_a", "mch_old")]).await;
    let webhook = create(
        &app,
        "ws_a",
        json!({"url": receiver.url(), "secret": SECRET, "types": ["machine.*"]}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap();

    let mut wanted = Vec::new();
    let mut last_in_workspace = Value::Null;
    for round in 0..10 {
        let recorded = append(
            &app,
            vec![
                renamed("ws_a", &format!("mch_{round}"), "web-02"),
                renamed("ws_b", &format!("mch_{round}"), "web-02"),
                json!({
                    "stream": format!("member-ws_a:usr_{round}"), "type": "member.suspended",
                    "workspace": "ws_a", "occurred_at": "2026-11-24T03:50:26.123Z",
                    "actor": {"kind": "member", "id": "usr_4", "name": "alice@acme.test"},
                    "data": {}
                }),
            ],
        )
        .await;
        wanted.push(recorded[0].clone());
        last_in_workspace = recorded[2].clone();
    }

    // The first event is refused three times, then each arrives once, in order, as recorded.
    let mut arrivals = Vec::new();
    while arrivals.iter().filter(|a: &&Arrival| a.accepted).count() < wanted.len() {
        arrivals.push(receiver.next().await);
    }
    let accepted: Vec<Value> = arrivals
        .iter()
        .filter(|a| a.accepted)
        .map(|a| a.event.clone())
        .collect();
    assert_eq!(accepted, wanted);
    let refused: Vec<&Value> = arrivals
        .iter()
        .filter(|a| !a.accepted)
        .map(|a| &a.event)
        .collect();
    assert_eq!(
        refused,
        vec![&wanted[0]; 3],
        "only the first event was retried"
    );
    assert!(
        arrivals[..4].iter().all(|a| a.event == wanted[0]),
        "nothing overtook the retried event"
    );
    receiver.assert_signatures_verified().await;

    // The cursor passes the unwanted events too; the delivery log shows every attempt, newest
    // first.
    let webhook = wait_for_cursor(&app, "ws_a", &last_in_workspace).await;
    assert_eq!(webhook["cursor"], last_in_workspace["position"]);
    let log = deliveries(&app, "ws_a", id).await;
    assert_eq!(log.len(), wanted.len() + 3);
    let first_position = &wanted[0]["position"];
    let first: Vec<&Value> = log
        .iter()
        .filter(|d| &d["position"] == first_position)
        .collect();
    let attempts: Vec<(u64, Option<u64>)> = first
        .iter()
        .map(|d| (d["attempt"].as_u64().unwrap(), d["status_code"].as_u64()))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (4, Some(204)),
            (3, Some(500)),
            (2, Some(500)),
            (1, Some(500))
        ]
    );
    assert!(first[0]["next_attempt_at"].is_null());
    assert!(
        first[1..]
            .iter()
            .all(|d| d["next_attempt_at"].is_string() && d["error"].is_null())
    );
    assert!(
        log.iter()
            .all(|d| d["at"].is_string() && d["duration_ms"].is_u64())
    );
    let positions: Vec<&Value> = log
        .iter()
        .filter(|d| d["attempt"] == 1)
        .map(|d| &d["position"])
        .rev()
        .collect();
    assert_eq!(
        positions,
        wanted.iter().map(|e| &e["position"]).collect::<Vec<_>>()
    );

    // Paging through the log gives the same attempts.
    let (_, page) = app
        .get(&format!(
            "/v1/workspaces/ws_a/webhooks/{id}/deliveries?limit=5"
        ))
        .await;
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get(&format!(
            "/v1/workspaces/ws_a/webhooks/{id}/deliveries?limit=1000&cursor={cursor}"
        ))
        .await;
    let mut paged = page["items"].as_array().unwrap().clone();
    paged.extend(rest["items"].as_array().unwrap().iter().cloned());
    assert_eq!(paged, log);
    assert!(rest["next_cursor"].is_null());

    let (_, list) = app.get("/v1/workspaces/ws_a/webhooks").await;
    assert!(!list.to_string().contains(SECRET));
}
}

conformance! {
#[tokio::test]
async fn an_unreachable_receiver_is_recorded_as_an_error() {
    let app = fast_retries(2).await;
    // A port nothing listens on: bind one, then free it.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let webhook = create(
        &app,
        "ws_a",
        json!({"url": format!("http://{address}/hook"), "secret": SECRET, "types": ["*"]}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap();
    append(&app, vec![registered("ws_a", "mch_1")]).await;
    let paused = wait_for_status(&app, "ws_a", "paused").await;
    assert!(paused["paused_at"].is_string());
    let log = deliveries(&app, "ws_a", id).await;
    assert_eq!(log.len(), 2, "{log:?}");
    for attempt in &log {
        assert!(attempt["status_code"].is_null(), "{attempt}");
        // A fixed phrase, not the error chain with the address it could not reach.
        assert_eq!(attempt["error"], "connection refused", "{attempt}");
    }
    assert!(!json!(log).to_string().contains("127.0.0.1"), "{log:?}");
}
}

/// Reads the workspace's first webhook until `done` holds for it. The receiver sees an attempt
/// before Chronicle records its outcome, so tests that read the record wait for it here; each
/// read is a real request, bounded by the guard.
async fn wait_for(app: &TestApp, workspace: &str, done: impl Fn(&Value) -> bool) -> Value {
    timeout(GUARD, async {
        loop {
            let (_, list) = app
                .get(&format!("/v1/workspaces/{workspace}/webhooks"))
                .await;
            if done(&list["items"][0]) {
                return list["items"][0].clone();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the webhook never got there")
}

async fn wait_for_status(app: &TestApp, workspace: &str, status: &str) -> Value {
    wait_for(app, workspace, |webhook| webhook["status"] == status).await
}

/// Waits until the webhook's cursor reached this event: its successful attempt is recorded.
async fn wait_for_cursor(app: &TestApp, workspace: &str, event: &Value) -> Value {
    let position = event["position"].as_u64().unwrap();
    wait_for(app, workspace, |webhook| {
        webhook["cursor"].as_u64() >= Some(position)
    })
    .await
}

conformance! {
#[tokio::test]
async fn a_webhook_that_keeps_failing_is_paused_until_resumed() {
    let app = fast_retries(3).await;
    let mut receiver = Receiver::start(SECRET, usize::MAX).await;
    let webhook = create(
        &app,
        "ws_a",
        json!({"url": receiver.url(), "secret": SECRET, "types": ["machine.renamed"]}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap();
    let first = append(&app, vec![renamed("ws_a", "mch_1", "web-02")]).await;
    for _ in 0..3 {
        assert!(!receiver.next().await.accepted);
    }
    let paused = wait_for_status(&app, "ws_a", "paused").await;
    assert!(paused["paused_at"].is_string());
    let log = deliveries(&app, "ws_a", id).await;
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|d| d["next_attempt_at"].is_null() == (d["attempt"] == 3)),
        "{log:?}"
    );

    // Events appended while paused wait; resuming delivers from the event that failed.
    let second = append(&app, vec![renamed("ws_a", "mch_2", "web-02")]).await;
    receiver.fail_next(0);
    let (status, resumed) = app
        .post_json(
            &format!("/v1/workspaces/ws_a/webhooks/{id}/resume"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "active");
    assert_eq!(
        receiver.accepted(2).await,
        vec![first[0].clone(), second[0].clone()]
    );
    wait_for_cursor(&app, "ws_a", &second[0]).await;
    let log = deliveries(&app, "ws_a", id).await;
    assert_eq!(
        log[1]["attempt"], 4,
        "attempts count on after a pause: {log:?}"
    );
    receiver.assert_signatures_verified().await;
}
}

conformance! {
#[tokio::test]
async fn a_deleted_webhook_receives_nothing_more() {
    let app = fast_retries(50).await;
    let mut old = Receiver::start(SECRET, 0).await;
    let mut new = Receiver::start(SECRET, 0).await;
    let webhook = create(
        &app,
        "ws_a",
        json!({"url": old.url(), "secret": SECRET, "types": ["*"]}),
    )
    .await;
    let before = append(&app, vec![registered("ws_a", "mch_1")]).await;
    assert_eq!(old.accepted(1).await, before);

    let path = format!(
        "/v1/workspaces/ws_a/webhooks/{}",
        webhook["id"].as_str().unwrap()
    );
    let (status, _) = app
        .send(Method::DELETE, &path, Some(crate::support::TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    create(
        &app,
        "ws_a",
        json!({"url": new.url(), "secret": SECRET, "types": ["*"]}),
    )
    .await;
    let after = append(&app, vec![renamed("ws_a", "mch_1", "web-02")]).await;
    assert_eq!(new.accepted(1).await, after);
    assert!(
        old.arrivals.try_recv().is_err(),
        "the deleted webhook got an event"
    );
}
}

conformance! {
#[tokio::test]
async fn a_restart_mid_delivery_loses_nothing() {
    let mut app = fast_retries(1_000).await;
    let mut receiver = Receiver::start(SECRET, usize::MAX).await;
    let webhook = create(
        &app,
        "ws_a",
        json!({"url": receiver.url(), "secret": SECRET, "types": ["machine.*"], "after": 0}),
    )
    .await;
    let id = webhook["id"].as_str().unwrap().to_owned();
    let mut wanted = append(
        &app,
        (0..5)
            .map(|i| renamed("ws_a", &format!("mch_{i}"), "web-02"))
            .collect(),
    )
    .await;
    // The receiver is down for a while: at least two refused attempts, then a restart.
    assert!(!receiver.next().await.accepted);
    assert!(!receiver.next().await.accepted);
    app.restart().await;
    wanted.extend(append(&app, vec![registered("ws_a", "mch_9")]).await);
    receiver.fail_next(0);

    let mut accepted = receiver.accepted(wanted.len()).await;
    // At least once: a refused attempt cut short by the restart may come again, never out of order.
    accepted.dedup();
    assert_eq!(accepted, wanted);
    receiver.assert_signatures_verified().await;

    wait_for_cursor(&app, "ws_a", wanted.last().unwrap()).await;
    let log = deliveries(&app, "ws_a", &id).await;
    let first_position = &wanted[0]["position"];
    let attempts: Vec<u64> = log
        .iter()
        .filter(|d| &d["position"] == first_position)
        .map(|d| d["attempt"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (1..=attempts.len() as u64).rev().collect();
    assert_eq!(
        attempts, expected,
        "attempt numbers go on across the restart"
    );
}
}

/// A server with no host exempt from the network check, whose retries take milliseconds.
async fn without_allow_list(max_attempts: u32) -> TestApp {
    TestApp::spawn_with(|config| {
        config.webhooks.allowed_hosts.clear();
        config.webhooks.retry_base = Duration::from_millis(2);
        config.webhooks.retry_cap = Duration::from_millis(20);
        config.webhooks.max_attempts = max_attempts;
    })
    .await
}

conformance! {
#[tokio::test]
async fn webhook_urls_on_the_servers_own_networks_are_refused() {
    let app = without_allow_list(1).await;
    let receiver = Receiver::start(SECRET, 0).await;
    let port = receiver.address.port();
    let cases = [
        (format!("http://127.0.0.1:{port}/hook"), "127.0.0.1"),
        (format!("http://localhost:{port}/hook"), "localhost"),
        ("http://[::1]/".to_owned(), "[::1]"),
        ("http://10.1.2.3/".to_owned(), "10.1.2.3"),
        ("http://169.254.169.254/latest/meta-data".to_owned(), "169.254.169.254"),
        ("http://100.64.0.1/".to_owned(), "100.64.0.1"),
        ("http://[fd00::1]/".to_owned(), "[fd00::1]"),
        // The URL parser writes the host as [::ffff:7f00:1]; it is judged as 127.0.0.1.
        ("http://[::ffff:127.0.0.1]/".to_owned(), "[::ffff:7f00:1]"),
    ];
    for (url, host) in &cases {
        let body = json!({"url": url, "secret": SECRET, "types": ["*"]});
        let (status, answer) = app.post_json("/v1/workspaces/ws_a/webhooks", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden_destination", "{url}: {answer}");
        assert_eq!(answer["error"]["field"], "url", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(host), "{url}: {message}");
    }
    let (_, list) = app.get("/v1/workspaces/ws_a/webhooks").await;
    assert_eq!(list["items"], json!([]));

    // A public destination needs no entry in the allow list.
    create(
        &app,
        "ws_a",
        json!({"url": "http://203.0.113.7/in", "secret": SECRET, "types": ["*"]}),
    )
    .await;
}
}

conformance! {
#[tokio::test]
async fn each_delivery_checks_the_destination_again() {
    let app = without_allow_list(2).await;
    let mut receiver = Receiver::start(SECRET, 0).await;
    let port = receiver.address.port();
    // Stored as if the check had passed at creation (a name that resolved publicly then, a
    // host allowed then): a name goes through the client's resolver, a literal is checked
    // before the request.
    let urls = [
        ("ws_name", format!("http://localhost:{port}/hook")),
        ("ws_literal", format!("http://127.0.0.1:{port}/hook")),
    ];
    for (workspace, url) in &urls {
        let webhook = app
            .store
            .create_webhook(chronicle_store::NewWebhook {
                id: uuid::Uuid::now_v7(),
                workspace: (*workspace).to_owned(),
                url: url.clone(),
                secret: chronicle_store::WebhookSecret::new(SECRET),
                types: vec!["*".to_owned()],
                created_at: "2026-11-24T03:50:26.123Z".to_owned(),
                cursor: app.head().await,
            })
            .await
            .unwrap();
        // Resuming tells the delivery worker the webhook is there.
        let (status, _) = app
            .post_json(
                &format!("/v1/workspaces/{workspace}/webhooks/{}/resume", webhook.id),
                &json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        append(&app, vec![registered(workspace, "mch_1")]).await;
    }
    for (workspace, _) in &urls {
        let paused = wait_for_status(&app, workspace, "paused").await;
        let log = deliveries(&app, workspace, paused["id"].as_str().unwrap()).await;
        assert_eq!(log.len(), 2, "{log:?}");
        for attempt in &log {
            assert!(attempt["status_code"].is_null(), "{attempt}");
            assert_eq!(attempt["error"], "forbidden destination", "{attempt}");
        }
    }
    assert!(
        receiver.arrivals.try_recv().is_err(),
        "a delivery reached loopback"
    );
}
}

conformance! {
#[tokio::test]
async fn a_redirect_is_an_answer_not_a_new_target() {
    let app = fast_retries(1).await;
    let (sender, mut followed) = mpsc::unbounded_channel::<()>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let elsewhere = format!("http://{address}/elsewhere");
    let router = axum::Router::new()
        .route(
            "/hook",
            post(move || async move {
                (AxumStatus::FOUND, [(axum::http::header::LOCATION, elsewhere)])
            }),
        )
        .route(
            "/elsewhere",
            axum::routing::any(move || async move {
                let _ = sender.send(());
                AxumStatus::NO_CONTENT
            }),
        );
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let webhook = create(
        &app,
        "ws_a",
        json!({"url": format!("http://{address}/hook"), "secret": SECRET, "types": ["*"]}),
    )
    .await;
    append(&app, vec![registered("ws_a", "mch_1")]).await;
    wait_for_status(&app, "ws_a", "paused").await;
    let log = deliveries(&app, "ws_a", webhook["id"].as_str().unwrap()).await;
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(log[0]["status_code"], 302, "{log:?}");
    assert!(log[0]["error"].is_null(), "{log:?}");
    assert!(followed.try_recv().is_err(), "the redirect was followed");
}
}
