//! `GET /v1/workspaces/WS/live` (SSE) and `…/live/ws` (WebSocket): catch-up, live, resume,
//! filters, isolation between workspaces, slow clients, shutdown.

use chronicle_store::conformance;
use std::pin::Pin;
use std::time::Duration;

use axum::body::Bytes;
use futures::{Stream, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};

use crate::support::{TOKEN, TestApp, registered, renamed};

/// How long any one wait may take before the test fails: a guard, never a pace.
const GUARD: Duration = Duration::from_secs(20);

/// A `member.suspended` event: a type outside `machine.*`.
fn suspended(workspace: &str, member: &str) -> Value {
    json!({
        "stream": format!("member-{workspace}:{member}"),
        "type": "member.suspended",
        "workspace": workspace,
        "occurred_at": "2026-11-24T03:50:26.123Z",
        "actor": {"kind": "member", "id": "usr_4", "name": "alice@acme.test"},
        "data": {}
    })
}

/// One SSE message.
#[derive(Debug)]
struct SseMessage {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// What a blank line ends in an SSE stream.
enum Block {
    Message(SseMessage),
    /// A keep-alive comment (`:`).
    Comment,
}

/// A small SSE reader over a response body.
struct SseReader {
    body: ByteStream,
    buffer: String,
}

impl SseReader {
    async fn open(app: &TestApp, path: &str, last_event_id: Option<u64>) -> SseReader {
        let mut request = app.client.get(app.url(path)).bearer_auth(TOKEN);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseReader {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// Returns the next message or keep-alive comment, or `None` when the server ended the
    /// stream.
    async fn next_block(&mut self) -> Option<Block> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.starts_with(':') {
                    return Some(Block::Comment);
                }
                let mut message = SseMessage {
                    id: None,
                    event: None,
                    data: String::new(),
                };
                for line in block.lines().filter(|line| !line.is_empty()) {
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match name {
                        "id" => message.id = Some(value.to_owned()),
                        "event" => message.event = Some(value.to_owned()),
                        "data" => message.data.push_str(value),
                        other => panic!("unexpected SSE field {other:?} in {block:?}"),
                    }
                }
                return Some(Block::Message(message));
            }
            let chunk = timeout(GUARD, self.body.next())
                .await
                .expect("no SSE data in time")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// Returns the next message, skipping keep-alive comments; `None` when the stream ended.
    async fn next_message(&mut self) -> Option<SseMessage> {
        loop {
            match self.next_block().await? {
                Block::Message(message) => return Some(message),
                Block::Comment => continue,
            }
        }
    }

    /// Returns the next event, checking that id and event agree with the recorded event.
    async fn next_event(&mut self) -> Value {
        let message = self.next_message().await.expect("the stream ended");
        let event: Value = serde_json::from_str(&message.data).unwrap();
        assert_eq!(message.id.unwrap(), event["position"].to_string());
        assert_eq!(message.event.as_deref(), event["type"].as_str());
        event
    }

    /// Reads `count` events.
    async fn take(&mut self, count: usize) -> Vec<Value> {
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            events.push(self.next_event().await);
        }
        events
    }
}

/// Appends one event and returns it as recorded.
async fn append_one(app: &TestApp, event: Value) -> Value {
    let workspace = event["workspace"].as_str().unwrap().to_owned();
    let (status, answer) = app.append(vec![event]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let id = answer["events"][0]["id"].as_str().unwrap().to_owned();
    app.get(&format!("/v1/workspaces/{workspace}/events/{id}"))
        .await
        .1
}

/// Events of the log in `workspace` after `after`, optionally of types passing `keep`.
fn expected(log: &[Value], workspace: &str, after: u64, keep: impl Fn(&str) -> bool) -> Vec<Value> {
    log.iter()
        .filter(|event| event["workspace"] == workspace)
        .filter(|event| event["position"].as_u64().unwrap() > after)
        .filter(|event| keep(event["type"].as_str().unwrap()))
        .cloned()
        .collect()
}

/// Appends an interleaved history over two workspaces and three types.
async fn interleaved_history(app: &TestApp, rounds: usize) {
    for round in 0..rounds {
        let events = vec![
            registered("ws_a", &format!("mch_{round}")),
            renamed("ws_b", &format!("mch_{round}"), "web-02"),
            suspended("ws_a", &format!("usr_{round}")),
            renamed("ws_a", &format!("mch_{round}"), "web-03"),
        ];
        let (status, answer) = app.append(events).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
}

conformance! {
#[tokio::test]
async fn catch_up_from_any_position_then_live_events_of_the_workspace_only() {
    catch_up_then_live(TestApp::spawn().await).await;
}
}

conformance! {
/// With a feed of only four events, streams from older positions read the log, newer ones the
/// feed, and each crosses from one to the other without losing or repeating an event.
#[tokio::test]
async fn streams_cross_from_the_log_to_the_shared_feed_without_a_gap() {
    catch_up_then_live(TestApp::spawn_with(|config| config.live.recent_events = 4).await).await;
}
}

/// From every position: exactly the workspace's events after it, then the next live one.
async fn catch_up_then_live(app: TestApp) {
    interleaved_history(&app, 15).await;
    let head = app.head().await;
    for after in [0, 1, 2, 3, 7, 30, head - 2, head - 1, head] {
        let log = app.read_all().await;
        let mut reader = SseReader::open(
            &app,
            &format!("/v1/workspaces/ws_a/live?after={after}"),
            None,
        )
        .await;
        let catch_up = expected(&log, "ws_a", after, |_| true);
        assert_eq!(reader.take(catch_up.len()).await, catch_up, "after {after}");

        let other = append_one(&app, renamed("ws_b", "mch_x", "live")).await;
        let live = append_one(&app, renamed("ws_a", "mch_x", "live")).await;
        let next = reader.next_event().await;
        assert_eq!(
            next, live,
            "after {after}: the next event is the live one, not {other}"
        );
    }
}

conformance! {
#[tokio::test]
async fn last_event_id_resumes_with_nothing_lost_or_repeated() {
    let app = TestApp::spawn().await;
    interleaved_history(&app, 5).await;
    let mut reader = SseReader::open(&app, "/v1/workspaces/ws_a/live", None).await;
    let first = reader.take(6).await;
    let last_seen = first.last().unwrap()["position"].as_u64().unwrap();
    drop(reader);

    interleaved_history(&app, 3).await;
    let log = app.read_all().await;
    // Last-Event-ID wins over `after`.
    let mut reader =
        SseReader::open(&app, "/v1/workspaces/ws_a/live?after=0", Some(last_seen)).await;
    let missed = expected(&log, "ws_a", last_seen, |_| true);
    assert_eq!(reader.take(missed.len()).await, missed);
    let sentinel = append_one(&app, renamed("ws_a", "mch_s", "sentinel")).await;
    assert_eq!(
        reader.next_event().await,
        sentinel,
        "nothing is repeated before the sentinel"
    );

    let mut all: Vec<Value> = first;
    all.extend(missed);
    all.push(sentinel);
    let log = app.read_all().await;
    assert_eq!(all, expected(&log, "ws_a", 0, |_| true));
}
}

conformance! {
#[tokio::test]
async fn types_filter_by_exact_type_and_prefix() {
    let app = TestApp::spawn().await;
    interleaved_history(&app, 6).await;
    let log = app.read_all().await;

    let mut machines =
        SseReader::open(&app, "/v1/workspaces/ws_a/live?types=machine.*", None).await;
    let wanted = expected(&log, "ws_a", 0, |kind| kind.starts_with("machine."));
    assert_eq!(machines.take(wanted.len()).await, wanted);

    let mut two = SseReader::open(
        &app,
        "/v1/workspaces/ws_a/live?types=member.suspended,%20machine.registered",
        None,
    )
    .await;
    let wanted = expected(&log, "ws_a", 0, |kind| {
        kind == "member.suspended" || kind == "machine.registered"
    });
    assert_eq!(two.take(wanted.len()).await, wanted);

    // Live: the filtered-out event never shows; the next matching one does.
    append_one(&app, suspended("ws_a", "usr_live")).await;
    let live = append_one(&app, renamed("ws_a", "mch_live", "web-09")).await;
    assert_eq!(machines.next_event().await, live);
}
}

conformance! {
#[tokio::test]
async fn bad_parameters_are_refused_in_the_contract_shape() {
    let app = TestApp::spawn().await;
    append_one(&app, registered("ws_a", "mch_0")).await;
    for (query, parameter) in [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("types=machine*", "types"),
        ("types=Machine.renamed", "types"),
    ] {
        let (status, body) = app.get(&format!("/v1/workspaces/ws_a/live?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{body}");
        assert_eq!(body["error"]["parameter"], parameter, "{body}");
    }
    let response = app
        .client
        .get(app.url("/v1/workspaces/ws_a/live"))
        .bearer_auth(TOKEN)
        .header("Last-Event-ID", "not-a-position")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["parameter"], "Last-Event-ID", "{body}");

    let (status, body) = app.get("/v1/workspaces/ws_a/live/ws").await;
    assert_eq!(status.as_u16() / 100, 4, "{body}");
    assert_eq!(body["error"]["code"], "websocket_required", "{body}");
}
}

conformance! {
#[tokio::test]
async fn an_unknown_workspace_is_404_until_its_first_event_then_streams() {
    let app =
        TestApp::spawn_with(|config| config.live.keep_alive = Duration::from_millis(20)).await;
    interleaved_history(&app, 2).await;
    let (status, body) = app.get("/v1/workspaces/ws_new/live").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    append_one(&app, renamed("ws_a", "mch_1", "web-09")).await;
    let first = append_one(&app, registered("ws_new", "mch_1")).await;
    let mut reader = SseReader::open(&app, "/v1/workspaces/ws_new/live", None).await;
    assert_eq!(reader.next_event().await, first);
    // While idle, keep-alive comments flow.
    assert!(matches!(reader.next_block().await, Some(Block::Comment)));
}
}

conformance! {
#[tokio::test]
async fn a_client_that_stops_reading_slows_neither_appends_nor_others() {
    let app = TestApp::spawn_with(|config| config.live.page_size = 50).await;
    let first = append_one(&app, registered("ws_a", "mch_0")).await;
    let mut stalled = SseReader::open(&app, "/v1/workspaces/ws_a/live", None).await;
    assert_eq!(stalled.next_event().await, first);
    let mut reading = SseReader::open(&app, "/v1/workspaces/ws_a/live?after=1", None).await;

    // Far more than socket buffers hold, while `stalled` reads nothing.
    let batches = 40;
    let per_batch = 500;
    let appends = async {
        for batch in 0..batches {
            let events = (0..per_batch)
                .map(|i| {
                    renamed(
                        "ws_a",
                        &format!("mch_{}", i % 7),
                        &format!("web-{batch}-{i}"),
                    )
                })
                .collect();
            let (status, answer) = app.append(events).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    let readers = async {
        let events = reading.take(batches * per_batch).await;
        assert!(
            events
                .windows(2)
                .all(|w| w[1]["position"].as_u64() > w[0]["position"].as_u64())
        );
    };
    // 20,000 events through an unoptimised test build take seconds; the guard only stops a hang.
    timeout(GUARD * 3, async { tokio::join!(appends, readers) })
        .await
        .expect("appends and the reading client finish while one client stalls");

    // The stalled client still gets everything, in order.
    let log = app.read_all().await;
    let rest = expected(&log, "ws_a", 1, |_| true);
    assert_eq!(rest.len(), batches * per_batch);
    assert_eq!(stalled.take(rest.len()).await, rest);
}
}

conformance! {
#[tokio::test]
async fn shutdown_ends_open_streams() {
    let mut app = TestApp::spawn().await;
    interleaved_history(&app, 1).await;
    let mut reader = SseReader::open(&app, "/v1/workspaces/ws_a/live", None).await;
    reader.take(3).await;
    timeout(GUARD, app.stop())
        .await
        .expect("the server stops with a stream open");
    assert!(reader.next_message().await.is_none());
}
}

conformance! {
#[tokio::test]
async fn websocket_sends_the_same_catch_up_and_live_events() {
    let app = TestApp::spawn().await;
    interleaved_history(&app, 4).await;
    let log = app.read_all().await;

    let url = format!(
        "ws://{}/v1/workspaces/ws_a/live/ws?after=3&types=machine.*",
        app.address
    );
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut next = async || loop {
        match timeout(GUARD, socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            Message::Text(text) => return serde_json::from_str::<Value>(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected message {other:?}"),
        }
    };
    let catch_up = expected(&log, "ws_a", 3, |kind| kind.starts_with("machine."));
    for wanted in &catch_up {
        assert_eq!(&next().await, wanted);
    }
    append_one(&app, renamed("ws_b", "mch_x", "live")).await;
    append_one(&app, suspended("ws_a", "usr_x")).await;
    let live = append_one(&app, renamed("ws_a", "mch_x", "live")).await;
    assert_eq!(next().await, live);
    socket.close(None).await.unwrap();
}
}

#[tokio::test]
async fn a_websocket_client_sending_a_large_message_is_cut_off() {
    use futures::SinkExt;
    let app = TestApp::spawn().await;
    append_one(&app, registered("ws_a", "mch_0")).await;
    let url = format!("ws://{}/v1/workspaces/ws_a/live/ws", app.address);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let first = timeout(GUARD, socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(first, Message::Text(_)), "{first:?}");
    socket
        .send(Message::Text("x".repeat(64 * 1024).into()))
        .await
        .unwrap();
    // The server ends the socket: a close or an error, and nothing more after it.
    loop {
        match timeout(GUARD, socket.next()).await.unwrap() {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("the socket went on: {other:?}"),
        }
    }
}
