//! Bulk reads are recorded before their first byte leaves: exports (`audit.exported`), evidence
//! bundles (`evidence.exported`) and live streams or webhooks that replay more than 1,000 past
//! events (`audit.replayed`). A client that hangs up after the headers has been recorded.

use chronicle_store::conformance;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::support::{TOKEN, TestApp, registered};

/// Events of the large history: together far more than the server and the socket buffer.
const LARGE_EVENTS: usize = 160;

/// Appends [`LARGE_EVENTS`] machines to ws_acme, each with a 60,000-character hostname that
/// does not compress (about 10 MB); answers the head.
pub(crate) async fn large_history(app: &TestApp) -> u64 {
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut noise = move || {
        (0..60_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[(seed % 36) as usize])
            })
            .collect::<String>()
    };
    for batch in 0..LARGE_EVENTS / 20 {
        let events = (0..20)
            .map(|i| {
                let mut event = registered("ws_acme", &format!("mch_{batch}_{i}"));
                event["data"]["hostname"] = json!(noise());
                event
            })
            .collect();
        let (status, answer) = app.append(events).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    app.head().await
}

/// Asks for an evidence bundle of all of ws_acme with the admin token; the body is left unread.
pub(crate) async fn request_whole_bundle(app: &TestApp) -> reqwest::Response {
    app.client
        .post(app.url("/v1/workspaces/ws_acme/evidence"))
        .bearer_auth(TOKEN)
        .json(&json!({"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap()
}

/// The recorded events of one type, read from the store itself.
async fn recorded(app: &TestApp, event_type: &str) -> Vec<Value> {
    let mut found = Vec::new();
    let mut after = 0;
    loop {
        let page = app.store.read_all(after, 1_000).await.unwrap();
        let Some(last) = page.last() else {
            return found;
        };
        after = last.position;
        found.extend(
            page.iter()
                .filter(|event| event.event_type == event_type)
                .map(|event| serde_json::to_value(event).unwrap()),
        );
    }
}

conformance! {
#[tokio::test]
async fn an_export_is_recorded_with_its_count_before_its_first_byte() {
    let app = TestApp::spawn().await;
    let head = large_history(&app).await;
    let response = app
        .client
        .get(app.url(&format!(
            "/v1/workspaces/ws_acme/audit/export?q=type:machine.registered&min_position={head}"
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    // Only the headers have arrived; the body is far larger than every buffer on its way.
    let records = recorded(&app, "audit.exported").await;
    assert_eq!(records.len(), 1, "recorded before the body was read");
    assert_eq!(records[0]["data"]["count"], LARGE_EVENTS);
    assert_eq!(records[0]["data"]["query"], "type:machine.registered");
    // The client hangs up halfway: the record stays, and nothing else is recorded.
    drop(response);
    assert_eq!(recorded(&app, "audit.exported").await, records);
}
}

conformance! {
#[tokio::test]
async fn an_evidence_bundle_is_recorded_with_its_count_before_its_first_byte() {
    let app = TestApp::spawn().await;
    let head = large_history(&app).await;
    let response = request_whole_bundle(&app).await;
    assert_eq!(response.status(), StatusCode::OK);
    let records = recorded(&app, "evidence.exported").await;
    assert_eq!(records.len(), 1, "recorded before the body was read");
    assert_eq!(records[0]["data"]["count"], LARGE_EVENTS);
    assert_eq!(records[0]["data"]["tree_size"], head);
    drop(response);
    assert_eq!(recorded(&app, "evidence.exported").await, records);
}
}

/// Appends 1,200 small events to ws_acme; answers the head.
async fn long_history(app: &TestApp) -> u64 {
    for batch in 0..2 {
        let events = (0..600)
            .map(|i| registered("ws_acme", &format!("mch_{batch}_{i}")))
            .collect();
        let (status, answer) = app.append(events).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    app.head().await
}

/// Opens an SSE stream of ws_acme from `after` and answers its status, leaving the body unread.
async fn open_sse(app: &TestApp, after: u64) -> reqwest::Response {
    app.client
        .get(app.url(&format!(
            "/v1/workspaces/ws_acme/live?after={after}&types=machine.*,session.opened"
        )))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

conformance! {
#[tokio::test]
async fn a_live_stream_replaying_more_than_a_thousand_events_is_recorded_first() {
    let app = TestApp::spawn().await;
    let head = long_history(&app).await;
    let stream = open_sse(&app, 0).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let records = recorded(&app, "audit.replayed").await;
    assert_eq!(records.len(), 1, "recorded before the first event was sent");
    let record = &records[0];
    assert_eq!(record["stream"], "audit-ws_acme");
    assert_eq!(record["actor"]["id"], "admin");
    assert_eq!(
        record["data"],
        json!({"after": 0, "types": ["machine.*", "session.opened"], "count": head, "transport": "sse"})
    );
    drop(stream);

    // A replay of at most 1,000 events is not a bulk read.
    let near = open_sse(&app, head + 1 - 1_000).await;
    assert_eq!(near.status(), StatusCode::OK);
    assert_eq!(recorded(&app, "audit.replayed").await.len(), 1);
    drop(near);

    let url = format!("ws://{}/v1/workspaces/ws_acme/live/ws?after=200", app.address);
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {TOKEN}")).unwrap(),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let records = recorded(&app, "audit.replayed").await;
    assert_eq!(records.len(), 2);
    assert_eq!(
        records[1]["data"],
        json!({"after": 200, "types": [], "count": head - 200 + 1, "transport": "websocket"}),
        "the count includes the first record, which the replay reads too"
    );
    drop(socket);
}
}

conformance! {
#[tokio::test]
async fn a_webhook_created_to_replay_history_is_recorded() {
    let app = TestApp::spawn().await;
    let head = long_history(&app).await;
    let webhook = |after: Option<u64>| {
        let mut body = json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef",
                              "types": ["machine.*"]});
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        body
    };
    // From the newest event (the default): nothing replayed, nothing recorded.
    let (status, answer) = app
        .post_json("/v1/workspaces/ws_acme/webhooks", &webhook(None))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert!(recorded(&app, "audit.replayed").await.is_empty());

    let (status, answer) = app
        .post_json("/v1/workspaces/ws_acme/webhooks", &webhook(Some(0)))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    let records = recorded(&app, "audit.replayed").await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0]["data"],
        json!({"after": 0, "types": ["machine.*"], "count": head, "transport": "webhook"})
    );
}
}
