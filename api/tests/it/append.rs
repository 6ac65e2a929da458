//! `POST /v1/events`: atomic batches, positions, expected versions, idempotency, refusals.

use chronicle_store::conformance;
use std::collections::{BTreeMap, HashSet};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, registered, renamed};

conformance! {
#[tokio::test]
async fn concurrent_appends_get_gap_free_positions() {
    let app = TestApp::spawn().await;
    let producers = 24;
    let batches_per_producer = 10;
    let mut tasks = Vec::new();
    for producer in 0..producers {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        tasks.push(tokio::spawn(async move {
            let mut positions = Vec::new();
            for batch in 0..batches_per_producer {
                let size = 1 + (producer + batch) % 4;
                let workspace = format!("ws_{}", producer % 3);
                let events: Vec<Value> = (0..size)
                    .map(|i| renamed(&workspace, &format!("mch_{producer}_{}", i % 2), "web-02"))
                    .collect();
                let response = client
                    .post(&url)
                    .bearer_auth(crate::support::TOKEN)
                    .json(&json!({ "events": events }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                let answer: Value = response.json().await.unwrap();
                let answered: Vec<u64> = answer["events"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["position"].as_u64().unwrap())
                    .collect();
                assert_eq!(answered.len(), size);
                // A batch is placed contiguously, in order.
                assert!(
                    answered.windows(2).all(|w| w[1] == w[0] + 1),
                    "{answered:?}"
                );
                positions.extend(answered);
            }
            positions
        }));
    }
    let mut answered = Vec::new();
    for task in tasks {
        answered.extend(task.await.unwrap());
    }
    let events = app.read_all().await;
    let positions: Vec<u64> = events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "positions are gap-free from 1"
    );
    answered.sort_unstable();
    assert_eq!(
        answered, positions,
        "every answered position is in the log exactly once"
    );

    // workspace_seq is gap-free per workspace, stream_version per stream, both in position order.
    let mut workspace_seqs: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut stream_versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for event in &events {
        workspace_seqs
            .entry(event["workspace"].as_str().unwrap().into())
            .or_default()
            .push(event["workspace_seq"].as_u64().unwrap());
        stream_versions
            .entry(event["stream"].as_str().unwrap().into())
            .or_default()
            .push(event["stream_version"].as_u64().unwrap());
    }
    for seqs in workspace_seqs.values().chain(stream_versions.values()) {
        assert_eq!(*seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    }
    assert_eq!(app.head().await, events.len() as u64);
}
}

conformance! {
#[tokio::test]
async fn exactly_one_producer_wins_a_race_on_the_same_expected_version() {
    let app = TestApp::spawn().await;
    let (status, _) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK);
    let mut tasks = Vec::new();
    for racer in 0..16 {
        let client = app.client.clone();
        let url = app.url("/v1/events");
        let mut event = renamed("ws_acme", "mch_1", &format!("racer-{racer}"));
        event["expected_version"] = json!(1);
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(&url)
                .bearer_auth(crate::support::TOKEN)
                .json(&json!({"events": [event]}))
                .send()
                .await
                .unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::OK => winners += 1,
            StatusCode::CONFLICT => {
                let error = &body["error"];
                assert_eq!(error["code"], "wrong_expected_version");
                assert_eq!(error["stream"], "machine-mch_1");
                assert_eq!(error["expected"], 1);
                assert_eq!(error["actual"], 2);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(app.head().await, 2);
}
}

conformance! {
#[tokio::test]
async fn expected_version_forms() {
    let app = TestApp::spawn().await;
    let with = |mut event: Value, expected: Value| {
        event["expected_version"] = expected;
        event
    };
    let cases = [
        (
            with(registered("ws_a", "mch_1"), json!("exists")),
            StatusCode::CONFLICT,
        ),
        (
            with(registered("ws_a", "mch_1"), json!("no_stream")),
            StatusCode::OK,
        ),
        (
            with(renamed("ws_a", "mch_1", "b"), json!("no_stream")),
            StatusCode::CONFLICT,
        ),
        (
            with(renamed("ws_a", "mch_1", "b"), json!("exists")),
            StatusCode::OK,
        ),
        (
            with(renamed("ws_a", "mch_1", "c"), json!(1)),
            StatusCode::CONFLICT,
        ),
        (
            with(renamed("ws_a", "mch_1", "c"), json!(2)),
            StatusCode::OK,
        ),
        (
            with(renamed("ws_a", "mch_1", "d"), json!("any")),
            StatusCode::OK,
        ),
    ];
    for (index, (event, expected)) in cases.into_iter().enumerate() {
        let (status, body) = app.append(vec![event]).await;
        assert_eq!(status, expected, "case {index}: {body}");
    }
    // Within one batch each expectation sees the events before it.
    let batch = vec![
        with(renamed("ws_a", "mch_2", "x"), json!(0)),
        with(renamed("ws_a", "mch_2", "y"), json!(1)),
    ];
    let (status, body) = app.append(batch).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"][1]["stream_version"], 2);
}
}

conformance! {
#[tokio::test]
async fn a_batch_with_one_bad_event_appends_nothing_and_names_it() {
    let app = TestApp::spawn().await;
    let mut bad = registered("ws_acme", "mch_2");
    bad["data"].as_object_mut().unwrap().remove("hostname");
    let (status, body) = app
        .append(vec![
            registered("ws_acme", "mch_1"),
            bad,
            registered("ws_acme", "mch_3"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_event");
    assert_eq!(body["error"]["index"], 1);
    assert_eq!(body["error"]["field"], "data.hostname");
    assert_eq!(app.head().await, 0);

    // A conflict late in a batch also leaves nothing of it behind.
    let mut late = renamed("ws_acme", "mch_9", "x");
    late["expected_version"] = json!(5);
    let (status, body) = app.append(vec![registered("ws_acme", "mch_1"), late]).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["index"], 1);
    assert_eq!(app.head().await, 0);
    assert!(app.read_all().await.is_empty());
}
}

conformance! {
#[tokio::test]
async fn a_retried_batch_appends_nothing_twice() {
    let app = TestApp::spawn().await;
    let mut events = vec![
        registered("ws_acme", "mch_1"),
        renamed("ws_acme", "mch_1", "web-02"),
    ];
    events[0]["id"] = json!("0193a1b2-0000-7000-8000-000000000001");
    events[1]["id"] = json!("0193a1b2-0000-7000-8000-000000000002");
    let (status, first) = app.append(events.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .append(vec![renamed("ws_acme", "mch_1", "web-03")])
        .await;
    assert_eq!(status, StatusCode::OK);

    // Same ids, same content (keys reordered): the first places again, nothing appended.
    let reordered: Vec<Value> = events
        .iter()
        .map(|e| serde_json::from_str(&e.to_string()).unwrap())
        .collect();
    let (status, again) = app.append(reordered).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(app.head().await, 3);

    // Same id, other content: a conflict naming the id, still nothing appended.
    let mut changed = events[1].clone();
    changed["data"]["to"] = json!("web-99");
    let (status, body) = app.append(vec![changed]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "duplicate_event_id");
    assert_eq!(body["error"]["id"], "0193a1b2-0000-7000-8000-000000000002");
    assert_eq!(app.head().await, 3);

    // One id twice in one batch with other content is refused too.
    let mut twin = renamed("ws_acme", "mch_1", "a");
    twin["id"] = json!("0193a1b2-0000-7000-8000-000000000009");
    let mut other = twin.clone();
    other["data"]["to"] = json!("b");
    let (status, _) = app.append(vec![twin, other]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(app.head().await, 3);
}
}

conformance! {
#[tokio::test]
async fn a_restart_keeps_every_event_and_continues_the_positions() {
    let mut app = TestApp::spawn().await;
    let events: Vec<Value> = (0..50)
        .map(|i| renamed("ws_acme", &format!("mch_{}", i % 5), "x"))
        .collect();
    let (status, _) = app.append(events).await;
    assert_eq!(status, StatusCode::OK);
    let before = app.read_all().await;

    app.restart().await;
    assert_eq!(app.read_all().await, before);
    let (status, body) = app
        .append(vec![
            renamed("ws_acme", "mch_0", "y"),
            renamed("ws_new", "mch_77", "z"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer = &body["events"];
    assert_eq!(answer[0]["position"], 51);
    assert_eq!(answer[0]["stream_version"], 11);
    assert_eq!(answer[0]["workspace_seq"], 51);
    assert_eq!(answer[1]["position"], 52);
    assert_eq!(answer[1]["workspace_seq"], 1);
    // Recorded times never go backwards across the restart.
    let all = app.read_all().await;
    let times: Vec<&str> = all
        .iter()
        .map(|e| e["recorded_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}
}

conformance! {
#[tokio::test]
async fn refusals_of_bad_input() {
    let app = TestApp::spawn().await;
    let mut secret = registered("ws_acme", "mch_1");
    secret["data"]["password"] = json!("hunter2");
    let (status, body) = app.append(vec![secret]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "data.password");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("secret")
    );

    let (status, body) = app.append(vec![]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_batch"))
    );

    let too_many: Vec<Value> = (0..10_001)
        .map(|_| renamed("ws_acme", "mch_1", "x"))
        .collect();
    let (status, body) = app.append(too_many).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("batch_too_large"))
    );

    let mut huge = registered("ws_acme", "mch_1");
    huge["data"]["notes"] = json!("x".repeat(17 * 1024 * 1024));
    let (status, body) = app.append(vec![huge]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("batch_too_large"))
    );

    let response = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(crate::support::TOKEN)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_body");

    let (status, body) = app
        .append(vec![json!({"type": "machine.registered"})])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["index"], 0);

    // Nothing of the above reached the log, and the token is required.
    assert_eq!(app.head().await, 0);
    let response = app
        .client
        .post(app.url("/v1/events"))
        .json(&json!({"events": [registered("ws_acme", "mch_1")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = app
        .client
        .get(app.url("/v1/head"))
        .bearer_auth("wrong-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        response.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    assert_eq!(app.head().await, 0);
}
}

conformance! {
#[tokio::test]
async fn a_generated_history_appends_whole_and_reads_back_identically() {
    let app = TestApp::spawn().await;
    let history = chronicle_fixtures::history(3, chronicle_fixtures::Scale::small());
    for batch in history.chunks(500) {
        let (status, body) = app.append(batch.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let events = app.read_all().await;
    assert_eq!(events.len(), history.len());
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), history.len());
    for (sent, recorded) in history.iter().zip(&events) {
        for field in ["id", "stream", "type", "workspace", "actor", "data"] {
            assert_eq!(sent[field], recorded[field], "{field} of {sent}");
        }
    }
}
}
