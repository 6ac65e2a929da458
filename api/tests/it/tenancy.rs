//! A hostile tenant: a token of one workspace tries to read, change or probe another's data,
//! and a hostile reader tries to make Chronicle sign what it never recorded.

use std::collections::BTreeMap;

use chronicle_domain::catalogue;
use chronicle_fixtures::Scale;
use chronicle_store::conformance;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TOKEN, TestApp, registered, renamed};

/// A workspace segment that smuggles a tree size and a root into the signed note's body.
const FORGED_ORIGIN: &str = "ws_acme%0A3%0AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%3D";

conformance! {
#[tokio::test]
async fn a_checkpoint_is_signed_only_for_a_real_workspace_under_a_one_line_origin() {
    let app = TestApp::spawn().await;
    let (status, _) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK);
    let (reader, _) = app.token(None, &["read"]).await;

    let (status, body) =
        app.get_text(&format!("/v1/workspaces/{FORGED_ORIGIN}/checkpoint"), &reader).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let error: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["error"]["code"], "invalid_parameter");
    assert_eq!(error["error"]["parameter"], "workspace");
    assert!(!body.contains("AAAA"), "the bad segment is never echoed: {body}");

    let head = app.head().await;
    let (status, body) = app.get_text("/v1/workspaces/ws_nobody/checkpoint", &reader).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(app.head().await, head, "asking for it recorded nothing");

    let (status, note) = app.get_text("/v1/workspaces/ws_acme/checkpoint", &reader).await;
    assert_eq!(status, StatusCode::OK);
    let (checkpoint, _signatures) = note.split_once("\n\n").unwrap();
    let lines: Vec<&str> = checkpoint.lines().collect();
    assert_eq!(lines.len(), 3, "origin, size, root and nothing else: {note}");
    assert_eq!(lines[0], "chronicle.test/workspaces/ws_acme");
    assert_eq!(lines[1], "1");
}
}

conformance! {
#[tokio::test]
async fn a_stream_of_another_workspace_cannot_be_reached_by_its_name() {
    let app = TestApp::spawn().await;
    let (status, acme) = app.append(vec![registered("ws_acme", "mch_13")]).await;
    assert_eq!(status, StatusCode::OK);
    let acme_id = acme["events"][0]["id"].as_str().unwrap().to_owned();
    let (evil, _) = app.token(Some("ws_evil"), &["append", "read"]).await;

    // The same stream name in ws_evil is ws_evil's own stream, starting at version 1.
    let mut rename = renamed("ws_evil", "mch_13", "pwned");
    rename["expected_version"] = json!(1);
    let (status, answer) = app
        .send(Method::POST, "/v1/events", Some(&evil), Some(&json!({"events": [rename]})))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(answer["error"]["code"], "wrong_expected_version");
    assert_eq!(answer["error"]["actual"], 0, "ws_acme's stream length is not told");

    // Reusing ws_acme's event id in ws_evil is a new event of ws_evil, not a duplicate.
    let mut reused = registered("ws_evil", "mch_13");
    reused["id"] = json!(acme_id);
    let (status, answer) = app
        .send(Method::POST, "/v1/events", Some(&evil), Some(&json!({"events": [reused]})))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["events"][0]["stream_version"], 1);
    let (status, answer) = app
        .send(
            Method::POST,
            "/v1/events",
            Some(&evil),
            Some(&json!({"events": [renamed("ws_evil", "mch_13", "pwned")]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // ws_acme's machine, stream and event are untouched.
    let (status, machine) = app.get("/v1/workspaces/ws_acme/machines/mch_13?min_position=3").await;
    assert_eq!(status, StatusCode::OK, "{machine}");
    assert_eq!(machine["name"], "mch_13");
    assert_eq!(machine["workspace"], "ws_acme");
    let (status, stream) = app.get("/v1/workspaces/ws_acme/streams/machine-mch_13").await;
    assert_eq!(status, StatusCode::OK, "{stream}");
    assert_eq!(stream["events"].as_array().unwrap().len(), 1);
    let (status, event) = app.get(&format!("/v1/workspaces/ws_acme/events/{acme_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["workspace"], "ws_acme");
    let (status, event) = app.get(&format!("/v1/workspaces/ws_evil/events/{acme_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(event["workspace"], "ws_evil");
    let (status, evil_machine) = app.get("/v1/workspaces/ws_evil/machines/mch_13").await;
    assert_eq!(status, StatusCode::OK, "{evil_machine}");
    assert_eq!(evil_machine["name"], "pwned");

    // ws_evil's token reaches none of it.
    for path in [
        "/v1/workspaces/ws_acme/machines/mch_13".to_owned(),
        "/v1/workspaces/ws_acme/streams/machine-mch_13".to_owned(),
        format!("/v1/workspaces/ws_acme/events/{acme_id}"),
        "/v1/workspaces/ws_acme/audit?q=mch_13".to_owned(),
    ] {
        let (status, answer) = app.send(Method::GET, &path, Some(&evil), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
}
}

conformance! {
#[tokio::test]
async fn reading_a_workspace_that_does_not_exist_is_404_and_records_nothing() {
    let app = TestApp::spawn().await;
    let (status, _) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK);
    let (reader, _) = app.token(None, &["read", "export"]).await;
    let head = app.head().await;
    for path in [
        "/v1/workspaces/ws_ghost/machines",
        "/v1/workspaces/ws_ghost/audit?q=x",
        "/v1/workspaces/ws_ghost/audit/export?q=x",
        "/v1/workspaces/ws_ghost/checkpoint",
        "/v1/workspaces/ws_ghost/streams/machine-mch_1",
    ] {
        let (status, answer) = app.send(Method::GET, path, Some(&reader), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "not_found");
    }
    assert_eq!(app.head().await, head, "nothing was recorded");
}
}

conformance! {
#[tokio::test]
async fn a_bad_path_segment_is_refused_by_name_before_any_handler_runs() {
    let app = TestApp::spawn().await;
    let (status, _) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK);
    let long_id = "m".repeat(129);
    for (path, parameter) in [
        ("/v1/workspaces/ws%20acme/machines".to_owned(), "workspace"),
        (format!("/v1/workspaces/{}/machines", "w".repeat(65)), "workspace"),
        ("/v1/workspaces/ws_acme/streams/machine%0Amch_1".to_owned(), "stream"),
        (format!("/v1/workspaces/ws_acme/machines/{long_id}"), "id"),
        ("/v1/workspaces/ws_acme/events/%00".to_owned(), "id"),
    ] {
        let (status, answer) = app.get(&path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["parameter"], parameter, "{path}: {answer}");
    }
}
}

/// A `machine.moved` as its producer sends it, from the workspace the machine leaves.
fn moved(from: &str, to: &str, machine: &str) -> Value {
    json!({
        "id": "0193a1b2-0000-7000-8000-00000000aa01",
        "stream": format!("machine-{machine}"),
        "type": "machine.moved",
        "workspace": from,
        "occurred_at": "2026-11-25T08:00:00Z",
        "actor": {"kind": "member", "id": "usr_4"},
        "data": {"from_workspace": from, "to_workspace": to}
    })
}

conformance! {
#[tokio::test]
async fn a_machine_moves_only_with_a_token_of_both_workspaces_and_is_recorded_in_both() {
    let app = TestApp::spawn().await;
    let events = vec![registered("ws_acme", "mch_13"), renamed("ws_acme", "mch_13", "ci-01"),
                      registered("ws_globex", "mch_1")];
    let (status, _) = app.append(events).await;
    assert_eq!(status, StatusCode::OK);
    let batch = json!({"events": [moved("ws_acme", "ws_globex", "mch_13")]});

    for (workspace, want) in [(Some("ws_acme"), StatusCode::NOT_FOUND), (Some("ws_globex"), StatusCode::NOT_FOUND)] {
        let (bound, _) = app.token(workspace, &["append"]).await;
        let (status, answer) = app.send(Method::POST, "/v1/events", Some(&bound), Some(&batch)).await;
        assert_eq!(status, want, "a token bound to {workspace:?}: {answer}");
    }
    let mut sideways = moved("ws_acme", "ws_globex", "mch_13");
    sideways["data"]["from_workspace"] = json!("ws_globex");
    let (status, answer) = app.append(vec![sideways]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "data.from_workspace");
    let mut forged = moved("ws_acme", "ws_globex", "mch_13");
    forged["data"]["machine"] = json!({"name": "x"});
    let (status, answer) = app.append(vec![forged]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["field"], "data.machine");
    assert_eq!(app.head().await, 3, "no refused move left anything");

    let (mover, mover_id) = app.token(None, &["append"]).await;
    let (status, answer) = app.send(Method::POST, "/v1/events", Some(&mover), Some(&batch)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["events"].as_array().unwrap().len(), 1, "the answer is about the event sent");
    assert_eq!(answer["events"][0]["position"], 4);
    let log = app.read_all().await;
    assert_eq!(log.len(), 5);
    let (left, arrived) = (&log[3], &log[4]);
    assert_eq!(left["workspace"], "ws_acme");
    assert_eq!(arrived["workspace"], "ws_globex");
    assert_eq!(arrived["stream"], "machine-mch_13");
    assert_eq!(arrived["stream_version"], 1);
    assert_eq!(arrived["data"]["machine"]["name"], "ci-01");
    assert_eq!(arrived["data"]["machine"]["hostname"], "mch_13.acme.test");
    assert_eq!(arrived["submitted_by"], mover_id.as_str());

    let (status, machine) = app.get("/v1/workspaces/ws_globex/machines/mch_13?min_position=5").await;
    assert_eq!(status, StatusCode::OK, "{machine}");
    assert_eq!(machine["name"], "ci-01");
    let (_, acme) = app.get("/v1/workspaces/ws_acme/machines?min_position=5").await;
    assert!(acme["items"].as_array().unwrap().iter().all(|m| m["id"] != "mch_13"), "{acme}");
    let (_, globex) = app.get("/v1/workspaces/ws_globex/machines").await;
    assert_eq!(globex["items"].as_array().unwrap().len(), 2, "{globex}");

    // Sent again, the move is the same move: nothing new, the first place answered.
    let (status, again) = app.send(Method::POST, "/v1/events", Some(&mover), Some(&batch)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["events"][0]["position"], 4);
    assert_eq!(app.head().await, 5);
}
}

/// What a workspace shows its readers once the views reach `position`: its tree's size, each
/// read model, every stream named in `streams`, and the audit search of all but Chronicle's own
/// records (the search itself records one). Answers are kept without the log position they were
/// read at.
async fn what_a_workspace_shows(
    app: &TestApp,
    workspace: &str,
    streams: &BTreeMap<&str, String>,
    position: u64,
) -> (u64, Vec<Value>) {
    let checkpoint = format!("/v1/workspaces/{workspace}/checkpoint");
    let note = app.get_text(&checkpoint, TOKEN).await.1;
    let size = note.lines().nth(1).unwrap().parse().unwrap();
    let mut paths = Vec::new();
    for model in [
        "machines",
        "sessions",
        "schedules",
        "members",
        "billing",
        "activity",
    ] {
        paths.push(format!(
            "/v1/workspaces/{workspace}/{model}?limit=1000&min_position={position}"
        ));
    }
    for stream in streams.values() {
        paths.push(format!("/v1/workspaces/{workspace}/streams/{stream}"));
    }
    paths.push(format!(
        "/v1/workspaces/{workspace}/audit?q=-type:audit.*&limit=1000&min_position={position}"
    ));
    let mut shown = Vec::new();
    for path in paths {
        let (status, mut answer) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        answer.as_object_mut().unwrap().remove("position");
        shown.push(answer);
    }
    (size, shown)
}

/// An example event of `event_type` for `workspace`, in `stream`.
fn example(event_type: &str, workspace: &str, stream: &str, victim: &str) -> Value {
    let mut data = catalogue::minimal_example(event_type).unwrap();
    if event_type == "machine.moved" {
        data = json!({"from_workspace": workspace, "to_workspace": victim});
    }
    json!({
        "stream": stream,
        "type": event_type,
        "workspace": workspace,
        "occurred_at": "2026-11-24T03:50:26.123Z",
        "actor": {"kind": "member", "id": "usr_1", "name": "mallory@evil.test"},
        "data": data,
    })
}

conformance! {
#[tokio::test]
async fn no_event_of_any_type_sent_into_another_workspaces_streams_changes_what_it_shows() {
    let app = TestApp::spawn().await;
    let history = chronicle_fixtures::history(7, Scale::small());
    for batch in history.chunks(500) {
        let (status, answer) = app.append(batch.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let victim = history
        .iter()
        .find_map(|event| event["workspace"].as_str())
        .unwrap()
        .to_owned();
    // One of the victim's own streams of each kind, by name.
    let mut streams: BTreeMap<&str, String> = BTreeMap::new();
    for event in history.iter().filter(|event| event["workspace"] == victim.as_str()) {
        let kind = catalogue::stream_kind(event["type"].as_str().unwrap()).unwrap();
        streams
            .entry(kind)
            .or_insert_with(|| event["stream"].as_str().unwrap().to_owned());
    }
    let before = what_a_workspace_shows(&app, &victim, &streams, app.head().await).await;
    for shown in &before.1 {
        let rows = ["items", "events", "hits"].iter().find_map(|list| shown[list].as_array());
        assert!(rows.is_none_or(|rows| !rows.is_empty()), "{shown}");
    }

    let (evil, _) = app.token(Some("ws_evil"), &["append"]).await;
    let mut sent = 0;
    let mut versions: BTreeMap<&str, u64> = BTreeMap::new();
    for event_type in catalogue::EVENT_TYPES {
        let kind = catalogue::stream_kind(event_type).unwrap();
        let Some(stream) = streams.get(kind) else {
            continue;
        };
        let event = example(event_type, "ws_evil", stream, &victim);
        let (status, answer) = app
            .send(Method::POST, "/v1/events", Some(&evil), Some(&json!({"events": [event]})))
            .await;
        // A stream whose name holds a workspace (workspace-, billing-, member-) is that
        // workspace's alone, and a reserved type is Chronicle's own.
        let expected = if catalogue::is_reserved(event_type) || stream.contains(&victim) {
            StatusCode::BAD_REQUEST
        } else if *event_type == "machine.moved" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "{event_type} into {stream}: {answer}");
        if status == StatusCode::OK {
            let version = versions.entry(stream).or_default();
            *version += 1;
            assert_eq!(
                answer["events"][0]["stream_version"], *version,
                "{event_type}: ws_evil's {stream} is a stream of its own"
            );
            sent += 1;
        }
    }
    assert!(sent > 30, "{sent} events of the catalogue's types were sent");

    let after = what_a_workspace_shows(&app, &victim, &streams, app.head().await).await;
    assert_eq!(after.0, before.0 + 1, "only the first look's audit.searched joined its tree");
    assert_eq!(before.1.len(), after.1.len());
    for (before, after) in before.1.iter().zip(&after.1) {
        assert_eq!(before, after);
    }
}
}

conformance! {
#[tokio::test]
async fn another_workspace_and_one_that_does_not_exist_are_refused_alike_before_any_read() {
    let app = TestApp::spawn().await;
    let (status, _) = app.append(vec![registered("ws_acme", "mch_13")]).await;
    assert_eq!(status, StatusCode::OK);
    let (evil, _) = app.token(Some("ws_evil"), &["read", "export", "admin"]).await;
    let routes = [
        (Method::GET, "machines"),
        (Method::GET, "machines/mch_13"),
        (Method::GET, "streams/machine-mch_13"),
        (Method::GET, "audit?q=mch_13"),
        (Method::GET, "audit/export?q=mch_13&format=csv"),
        (Method::GET, "checkpoint"),
        (Method::GET, "proofs/inclusion?seq=1"),
        (Method::GET, "live?after=0"),
        (Method::GET, "webhooks"),
        (Method::POST, "evidence"),
    ];
    for (method, route) in routes {
        let body = json!({"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"});
        let mut answers = Vec::new();
        for workspace in ["ws_acme", "ws_nowhere"] {
            let path = format!("/v1/workspaces/{workspace}/{route}");
            let (status, answer) = app
                .send(method.clone(), &path, Some(&evil), Some(&body))
                .await;
            answers.push((status, answer.to_string().replace(workspace, "WS")));
        }
        assert_eq!(answers[0].0, StatusCode::NOT_FOUND, "{route}: {}", answers[0].1);
        assert_eq!(answers[0], answers[1], "{route}");
    }
    // Neither was looked up: nothing was recorded in ws_acme.
    let (_, stream) = app.get("/v1/workspaces/ws_acme/streams/audit-ws_acme").await;
    assert_eq!(stream["events"].as_array().map_or(0, Vec::len), 0, "{stream}");
}
}
