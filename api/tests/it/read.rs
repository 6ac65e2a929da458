//! Reading the log: pages, streams, single events, the head, and the leaf hash of what is read.

use chronicle_store::conformance;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::{TestApp, registered, renamed};

async fn app_with_one_machine(renames: usize) -> TestApp {
    let app = TestApp::spawn().await;
    let mut events = vec![registered("ws_acme", "mch_1")];
    events.extend((0..renames).map(|i| renamed("ws_acme", "mch_1", &format!("web-{i}"))));
    let (status, body) = app.append(events).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app
}

conformance! {
#[tokio::test]
async fn pages_of_the_log_cover_it_once() {
    let app = app_with_one_machine(9).await;
    let (status, page) = app.get("/v1/events?after=0&limit=4").await;
    assert_eq!(status, StatusCode::OK);
    let positions: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![1, 2, 3, 4]);
    assert_eq!(page["next"], 4);
    let (_, page) = app.get("/v1/events?after=8&limit=4").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 10);
    let (_, page) = app.get("/v1/events?after=10").await;
    assert_eq!(page, json!({"events": [], "next": 10}));

    for bad in [
        "/v1/events?limit=1001",
        "/v1/events?limit=0",
        "/v1/events?after=-1",
        "/v1/events?after=x",
    ] {
        let (status, body) = app.get(bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["error"]["code"], "invalid_parameter", "{bad}");
    }
}
}

conformance! {
#[tokio::test]
async fn streams_read_forward_and_backward() {
    let app = app_with_one_machine(5).await;
    let versions = |page: &Value| -> Vec<u64> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["stream_version"].as_u64().unwrap())
            .collect()
    };
    let (status, page) = app.get("/v1/workspaces/ws_acme/streams/machine-mch_1?limit=4").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions(&page), vec![1, 2, 3, 4]);
    assert_eq!(page["next_version"], 5);
    let (_, page) = app.get("/v1/streams/machine-mch_1?workspace=ws_acme&from_version=5").await;
    assert_eq!(versions(&page), vec![5, 6]);
    assert_eq!(page["next_version"], Value::Null);
    let (_, page) = app
        .get("/v1/workspaces/ws_acme/streams/machine-mch_1?direction=backward&limit=4")
        .await;
    assert_eq!(versions(&page), vec![6, 5, 4, 3]);
    assert_eq!(page["next_version"], 2);
    let (_, page) = app
        .get("/v1/workspaces/ws_acme/streams/machine-mch_1?direction=backward&from_version=2")
        .await;
    assert_eq!(versions(&page), vec![2, 1]);

    let (status, body) = app.get("/v1/workspaces/ws_acme/streams/machine-nope").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = app
        .get("/v1/workspaces/ws_acme/streams/machine-mch_1?direction=sideways")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
}

conformance! {
#[tokio::test]
async fn one_event_by_id_and_the_head() {
    let app = app_with_one_machine(2).await;
    let all = app.read_all().await;
    let last = all.last().unwrap();
    let (status, event) = app
        .get(&format!(
            "/v1/workspaces/ws_acme/events/{}",
            last["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&event, last);

    let (status, head) = app.get("/v1/head").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(head["position"], 3);
    assert_eq!(head["recorded_at"], last["recorded_at"]);

    let (status, _) = app
        .get("/v1/workspaces/ws_acme/events/0193a1b2-0000-7000-8000-00000000ffff")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app.get("/v1/events/not-a-uuid").await;
    assert_eq!(
        (status, body["error"]["parameter"].as_str()),
        (StatusCode::BAD_REQUEST, Some("id"))
    );

    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
}

conformance! {
/// The contract's leaf hash, computed here without Chronicle's code: SHA-256(0x00 ‖ JCS(event
/// without leaf_hash)), with the JCS crate, over the event exactly as the API returned it.
#[tokio::test]
async fn every_returned_event_carries_its_leaf_hash() {
    let app = app_with_one_machine(3).await;
    let mut unicode = renamed("ws_acme", "mch_1", "wëb-ü €");
    unicode["data"]["note"] = json!({"z": 1.5, "a": [true, null, 1e3]});
    let (status, _) = app.append(vec![unicode]).await;
    assert_eq!(status, StatusCode::OK);
    for event in app.read_all().await {
        let mut body = event.clone();
        let claimed = body.as_object_mut().unwrap().remove("leaf_hash").unwrap();
        let mut hasher = Sha256::new();
        hasher.update([0u8]);
        hasher.update(serde_json_canonicalizer::to_vec(&body).unwrap());
        let computed: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(claimed, computed, "leaf hash of {event}");
        assert!(event["recorded_at"].as_str().unwrap().ends_with('Z'));
    }
}
}
