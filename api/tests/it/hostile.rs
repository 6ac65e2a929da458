//! Hostile input: every bound explicit, every refusal clear, nothing recorded lost.

use chronicle_store::conformance;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{TOKEN, TestApp, registered};

conformance! {
#[tokio::test]
async fn an_event_past_65535_bytes_of_leaf_data_is_413_and_nothing_of_its_batch_lands() {
    let app = TestApp::spawn().await;
    let mut large = registered("ws_acme", "mch_2");
    let fits = registered("ws_acme", "mch_1");
    large["data"]["hostname"] = json!("h".repeat(65_535));
    let (status, answer) = app.append(vec![fits.clone(), large]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(answer["error"]["code"], "event_too_large");
    assert_eq!(answer["error"]["index"], 1);
    assert_eq!(answer["error"]["max_bytes"], 65_535);

    // Just under the bound lands, and its recorded form is within it.
    let mut near = registered("ws_acme", "mch_3");
    near["data"]["hostname"] = json!("h".repeat(64_000));
    let (status, answer) = app.append(vec![fits, near]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let events = app.read_all().await;
    assert_eq!(events.len(), 2, "the refused batch left nothing");
    let mut recorded = events[1].clone();
    recorded.as_object_mut().unwrap().remove("leaf_hash");
    assert!(serde_json::to_vec(&recorded).unwrap().len() <= 65_535);
}
}

conformance! {
#[tokio::test]
async fn every_recorded_event_names_the_token_that_submitted_it() {
    let app = TestApp::spawn().await;
    let (appender, token_id) = app.token(Some("ws_acme"), &["append", "read"]).await;
    let (status, answer) = app
        .send(
            Method::POST,
            "/v1/events",
            Some(&appender),
            Some(&json!({"events": [registered("ws_acme", "mch_1")]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, _) = app.append(vec![registered("ws_acme", "mch_2")]).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .send(Method::GET, "/v1/workspaces/ws_acme/audit?q=mch_1", Some(&appender), None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let events = app.read_all().await;
    let submitters: Vec<&str> = events
        .iter()
        .map(|event| event["submitted_by"].as_str().unwrap())
        .collect();
    // The search's own `audit.searched` may still be on its way; the first two are fixed.
    assert_eq!(submitters[..2], [token_id.as_str(), "admin"]);
    let (status, page) = app
        .get("/v1/workspaces/ws_acme/audit?q=type:audit.searched&min_position=3")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["hits"][0]["submitted_by"], "chronicle");
}
}

#[tokio::test]
async fn a_caller_cannot_choose_a_long_request_id_or_a_new_metrics_label() {
    let app = TestApp::spawn().await;
    let long = "r".repeat(129);
    let response = app
        .client
        .get(app.url("/v1/head"))
        .bearer_auth(TOKEN)
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    let echoed = response.headers()["x-request-id"].to_str().unwrap();
    assert_ne!(echoed, long);
    assert_eq!(echoed.len(), 36, "a fresh UUID stands in: {echoed}");

    let invented = Method::from_bytes(b"BREWCOFFEE").unwrap();
    let response = app
        .client
        .request(invented, app.url("/v1/head"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_client_error());
    let metrics = app.metrics().await;
    assert!(!metrics.contains("BREWCOFFEE"), "{metrics}");
    assert!(metrics.contains("method=\"other\""));
}

#[tokio::test]
async fn an_idle_server_shows_every_gauge_and_counter_with_its_help() {
    // nextest runs each test in a process of its own: nothing has been appended here.
    let app = TestApp::spawn().await;
    let metrics = app.metrics().await;
    for family in [
        "chronicle_log_position",
        "chronicle_index_position",
        "chronicle_index_lag_events",
        "chronicle_projection_lag_events",
        "chronicle_wal_frames",
        "chronicle_appended_events_total",
        "chronicle_append_id_rechecks_total",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {family} ")),
            "{family} has no HELP line:\n{metrics}"
        );
        assert!(
            metrics
                .lines()
                .any(|line| line.starts_with(family) && !line.starts_with('#')),
            "{family} is absent on an idle server:\n{metrics}"
        );
    }
    for model in [
        "machines",
        "sessions",
        "schedules",
        "runs",
        "members",
        "billing",
        "activity",
    ] {
        assert!(
            metrics.contains(&format!(
                "chronicle_projection_lag_events{{model=\"{model}\"}}"
            )),
            "{model}:\n{metrics}"
        );
    }
    // Every family that appears has its HELP line.
    let helped: Vec<&str> = metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# HELP "))
        .filter_map(|line| line.split_whitespace().next())
        .collect();
    let (status, _) = app.get("/v1/head").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = app.metrics().await;
    for line in metrics
        .lines()
        .filter(|line| line.starts_with("chronicle_"))
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        assert!(
            helped.contains(&family) || metrics.contains(&format!("# HELP {family} ")),
            "{family} has no HELP line"
        );
    }
}

#[tokio::test]
async fn a_min_position_no_log_can_reach_is_refused_at_once() {
    let app = TestApp::spawn().await;
    let (status, _) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/workspaces/ws_acme/machines",
        "/v1/workspaces/ws_acme/machines/mch_1",
        "/v1/workspaces/ws_acme/audit",
        "/v1/workspaces/ws_acme/audit/export",
    ] {
        for position in [
            "9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
        ] {
            // A wait would end in 503 `not_caught_up` after 5 s; the refusal is 400 at once.
            let (status, answer) = app.get(&format!("{path}?min_position={position}")).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path} {position}: {answer}"
            );
            assert_eq!(answer["error"]["code"], "invalid_parameter", "{answer}");
        }
    }
}

#[tokio::test]
async fn a_rebuild_body_that_is_not_json_is_a_json_400_and_after_past_any_log_is_refused() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post(app.url("/v1/rebuild"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("\u{0}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_body", "{answer}");
    let (status, answer) = app.get("/v1/events?after=9223372036854775808").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["parameter"], "after");
}
