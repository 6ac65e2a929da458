//! Overload and hostile clients over real TCP: every queue and every wait is bounded, and a
//! client that hogs a connection is cut off while others are served.

use std::time::{Duration, Instant};

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::bulk_reads::{large_history, request_whole_bundle};
use crate::support::{TOKEN, TestApp, registered};

/// Sends raw bytes as one request and answers the status line and the rest of the answer.
async fn raw_request(app: &TestApp, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    // The server closes the connection after an error answer; `Connection: close` does it for
    // the rest.
    let _ = stream.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (status_line, rest) = answer.split_once("\r\n").unwrap_or((&answer, ""));
    (status_line.to_owned(), rest.to_owned())
}

#[tokio::test]
async fn a_full_append_queue_answers_503_with_retry_after_and_loses_nothing_acknowledged() {
    // One request waits at most, and the appender takes one request a commit.
    let app = TestApp::spawn_with_store(
        |store| {
            store.queue_capacity = 1;
            store.max_group_events = 1;
        },
        |config| config.rate_limit = None,
    )
    .await;
    let requests = (0..48).map(|producer| {
        let events: Vec<Value> = (0..50)
            .map(|machine| registered("ws_acme", &format!("mch_{producer}_{machine}")))
            .collect();
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({ "events": events }))
            .send()
    });
    let mut accepted = 0;
    let mut refused = 0;
    for response in join_all(requests).await {
        let response = response.unwrap();
        match response.status() {
            StatusCode::OK => accepted += 50,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(response.headers()["retry-after"], "1");
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                assert!(
                    body["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("the append queue is full"),
                    "{body}"
                );
                refused += 1;
            }
            status => panic!("an append answered {status}"),
        }
    }
    assert!(
        refused > 0,
        "48 concurrent batches never filled a queue of 1"
    );
    assert!(accepted > 0, "the appender served nothing");
    assert_eq!(
        app.head().await,
        accepted,
        "exactly the acknowledged events are in the log"
    );
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let app = TestApp::spawn_with(|config| {
        config.limits.header_read_timeout = Duration::from_secs(1);
    })
    .await;
    let stream = TcpStream::connect(app.address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    // The server's only answer to a head that never completes is to close the connection.
    let closed = tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        started.elapsed()
    });
    let head = b"GET /healthz HTTP/1.1\r\nHost: chronicle\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    for byte in head {
        if closed.is_finished() || writer.write_all(&[*byte]).await.is_err() {
            break;
        }
        sent += 1;
        // Meanwhile an ordinary client is answered at once.
        let (status, body) = app.send(reqwest::Method::GET, "/healthz", None, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // The slowloris pace: well under the timeout per byte, so only the total trips it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lasted = tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the slow connection was never closed")
        .unwrap();
    assert!(sent < head.len(), "the whole slow head was accepted");
    assert!(
        lasted >= Duration::from_millis(900) && lasted < Duration::from_secs(4),
        "the slow connection lasted {lasted:?}, not about the 1 s header read timeout"
    );
}

#[tokio::test]
async fn long_urls_and_oversized_heads_are_refused_with_clear_statuses() {
    let app = TestApp::spawn().await;

    let long = format!("/v1/events?after=0&pad={}", "x".repeat(9_000));
    let (status, body) = app.get(&long).await;
    assert_eq!(status, StatusCode::URI_TOO_LONG, "{body}");
    assert_eq!(body["error"]["code"], "uri_too_long", "{body}");
    assert_eq!(body["error"]["limit"], 8_192, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 8192"),
        "{body}"
    );

    let many_headers: String = (0..150).map(|n| format!("X-Filler-{n}: {n}\r\n")).collect();
    let (status_line, _) = raw_request(
        &app,
        format!("GET /healthz HTTP/1.1\r\nHost: chronicle\r\n{many_headers}\r\n").as_bytes(),
    )
    .await;
    assert!(status_line.contains(" 431 "), "{status_line}");

    let huge = "y".repeat(100 * 1024);
    let (status_line, _) = raw_request(
        &app,
        format!("GET /healthz HTTP/1.1\r\nHost: chronicle\r\nX-Huge: {huge}\r\n\r\n").as_bytes(),
    )
    .await;
    assert!(status_line.contains(" 431 "), "{status_line}");

    // Within the limits the same server answers.
    let (status_line, _) = raw_request(
        &app,
        b"GET /healthz HTTP/1.1\r\nHost: chronicle\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line.contains(" 200 "), "{status_line}");
}

#[tokio::test]
async fn a_slow_request_is_cut_off_but_a_live_stream_outlives_the_timeout() {
    let app = TestApp::spawn_with(|config| {
        config.limits.request_timeout = Duration::from_millis(500);
    })
    .await;
    let (status, body) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut live = app
        .client
        .get(app.url("/v1/workspaces/ws_acme/live"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), StatusCode::OK);

    // A read model asked to wait for a position that never comes would wait 5 s.
    let started = Instant::now();
    let (status, body) = app
        .get("/v1/workspaces/ws_acme/machines?min_position=1000000")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // The stream opened before is still served past the timeout.
    let (status, body) = app.append(vec![registered("ws_acme", "mch_late")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut received = String::new();
    while !received.contains("mch_late") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), live.chunk())
            .await
            .expect("the live stream went quiet")
            .unwrap()
            .expect("the live stream ended");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test]
async fn live_streams_are_capped_and_a_closed_one_frees_its_place() {
    let app = TestApp::spawn_with(|config| {
        config.bounds.live.server = 2;
        // Keep-alives make the server notice a closed client promptly.
        config.live.keep_alive = Duration::from_millis(50);
    })
    .await;
    let (status, body) = app.append(vec![registered("ws_acme", "mch_1")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let open = || {
        app.client
            .get(app.url("/v1/workspaces/ws_acme/live"))
            .bearer_auth(TOKEN)
            .send()
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);
    let third = open().await.unwrap();
    assert_eq!(third.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(third.headers()["retry-after"], "1");
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_subscribers", "{body}");

    // Other routes are not affected by the cap.
    let (status, _) = app.get("/v1/head").await;
    assert_eq!(status, StatusCode::OK);

    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let again = open().await.unwrap();
        if again.status() == StatusCode::OK {
            break;
        }
        assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            Instant::now() < deadline,
            "the closed stream's place was never freed"
        );
        tokio::task::yield_now().await;
    }
    drop(second);
}

#[tokio::test]
async fn a_token_past_its_share_of_long_reads_is_429_while_other_tokens_are_served() {
    let app = TestApp::spawn_with(|config| {
        config.bounds.live.per_token = 1;
        config.bounds.exports.per_token = 1;
        config.bounds.as_of.per_token = 0;
    })
    .await;
    let head = large_history(&app).await;
    let (other, _) = app.token(Some("ws_acme"), &["read", "export"]).await;
    let get =
        |path: String, token: String| app.client.get(app.url(&path)).bearer_auth(token).send();
    let refusal = async |response: reqwest::Response, code: &str| {
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["limit"].is_u64(), "{body}");
    };

    let live = "/v1/workspaces/ws_acme/live".to_owned();
    let first = get(live.clone(), TOKEN.into()).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    refusal(
        get(live.clone(), TOKEN.into()).await.unwrap(),
        "too_many_subscribers",
    )
    .await;
    let elsewhere = get(live, other.clone()).await.unwrap();
    assert_eq!(
        elsewhere.status(),
        StatusCode::OK,
        "another token has its own share"
    );

    // An export far larger than every buffer stays open while its body is unread.
    let export = format!("/v1/workspaces/ws_acme/audit/export?min_position={head}");
    let open_export = get(export.clone(), TOKEN.into()).await.unwrap();
    assert_eq!(open_export.status(), StatusCode::OK);
    refusal(
        get(export.clone(), TOKEN.into()).await.unwrap(),
        "too_many_exports",
    )
    .await;
    refusal(request_whole_bundle(&app).await, "too_many_exports").await;
    let elsewhere = get(export, other).await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::OK);

    let as_of = get(
        "/v1/workspaces/ws_acme/machines?as_of=1".into(),
        TOKEN.into(),
    )
    .await
    .unwrap();
    refusal(as_of, "too_many_as_of").await;
    let (status, _) = app.get("/v1/workspaces/ws_acme/machines").await;
    assert_eq!(status, StatusCode::OK, "an answer of now takes no fold");
    drop((first, open_export));
}
