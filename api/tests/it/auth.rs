//! Tokens and tenancy: every route, every scope, both kinds of binding, and the tokens that must
//! not work (unknown, expired, revoked).

use chronicle_store::Scope;
use chronicle_store::conformance;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TOKEN, TestApp, registered};

/// What a route needs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Needs {
    /// Any valid token.
    AnyToken,
    /// This scope, on a route of the whole log (tokens bound to a workspace are refused).
    Log(Scope),
    /// This scope, on a route of the workspace in its path.
    Workspace(Scope),
    /// This scope, then the workspace named in the body (the scope is the token's own, so a
    /// 403 for it tells nothing of the other workspace).
    Body(Scope),
}

struct Route {
    method: Method,
    /// `{ws}` stands for the workspace, `{event}` for a recorded event id, `{victim}` for a
    /// token made for the request to revoke.
    path: &'static str,
    needs: Needs,
    body: Option<Value>,
}

fn routes() -> Vec<Route> {
    use Needs::*;
    use Scope::*;
    let route = |method: Method, path: &'static str, needs: Needs, body: Option<Value>| Route {
        method,
        path,
        needs,
        body,
    };
    vec![
        route(
            Method::POST,
            "/v1/events",
            Body(Append),
            Some(json!({"events": [registered("{ws}", "mch_new")]})),
        ),
        route(Method::GET, "/v1/events?after=0", Log(Admin), None),
        route(
            Method::GET,
            "/v1/events/{event}?workspace=ws_acme",
            Log(Admin),
            None,
        ),
        route(
            Method::GET,
            "/v1/streams/machine-mch_1?workspace=ws_acme",
            Log(Admin),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/streams/machine-mch_1",
            Workspace(Read),
            None,
        ),
        route(Method::GET, "/v1/head", Log(Admin), None),
        route(Method::GET, "/v1/checkpoint", Log(Admin), None),
        route(Method::GET, "/v1/public-key", AnyToken, None),
        route(
            Method::GET,
            "/v1/proofs/inclusion?position=1",
            Log(Admin),
            None,
        ),
        route(
            Method::GET,
            "/v1/proofs/consistency?from=1&to=2",
            Log(Admin),
            None,
        ),
        route(
            Method::POST,
            "/v1/tokens",
            Log(Admin),
            Some(json!({"name": "n", "scopes": ["read"]})),
        ),
        route(Method::GET, "/v1/tokens", Log(Admin), None),
        route(Method::DELETE, "/v1/tokens/{victim}", Log(Admin), None),
        route(
            Method::POST,
            "/v1/rebuild",
            Log(Admin),
            Some(json!({"models": ["activity"]})),
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/checkpoint",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/audit?q=type:machine.*",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/audit/export?q=type:machine.*&format=csv",
            Workspace(Export),
            None,
        ),
        route(
            Method::POST,
            "/v1/workspaces/{ws}/evidence",
            Workspace(Export),
            Some(json!({"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"})),
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/proofs/inclusion?seq=1",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/proofs/consistency?from=1&to=2",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/live?after=0",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/live/ws",
            Workspace(Read),
            None,
        ),
        route(
            Method::POST,
            "/v1/workspaces/{ws}/webhooks",
            Workspace(Admin),
            Some(
                json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef", "types": ["machine.*"]}),
            ),
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/webhooks",
            Workspace(Admin),
            None,
        ),
        route(
            Method::DELETE,
            "/v1/workspaces/{ws}/webhooks/{hook}",
            Workspace(Admin),
            None,
        ),
        route(
            Method::POST,
            "/v1/workspaces/{ws}/webhooks/{hook}/resume",
            Workspace(Admin),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/webhooks/{hook}/deliveries",
            Workspace(Admin),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/machines",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/sessions",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/schedules",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/schedules/sch_1/runs",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/members",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/billing",
            Workspace(Read),
            None,
        ),
        route(
            Method::GET,
            "/v1/workspaces/{ws}/activity",
            Workspace(Read),
            None,
        ),
    ]
}

/// A token of the matrix: its binding and its one scope.
struct Caller {
    value: String,
    workspace: Option<&'static str>,
    scope: Scope,
}

/// The status the contract gives `caller` on `route` when the route names `workspace`.
fn expected(route: &Route, caller: &Caller, workspace: &str) -> StatusCode {
    match route.needs {
        Needs::AnyToken => StatusCode::OK,
        Needs::Log(_) if caller.workspace.is_some() => StatusCode::FORBIDDEN,
        Needs::Workspace(_) if caller.workspace.is_some_and(|bound| bound != workspace) => {
            StatusCode::NOT_FOUND
        }
        Needs::Log(scope) | Needs::Workspace(scope) | Needs::Body(scope)
            if scope != caller.scope =>
        {
            StatusCode::FORBIDDEN
        }
        Needs::Body(_) if caller.workspace.is_some_and(|bound| bound != workspace) => {
            StatusCode::NOT_FOUND
        }
        _ if route.method == Method::POST && route.path.ends_with("/tokens") => StatusCode::CREATED,
        _ if route.method == Method::POST && route.path.ends_with("/webhooks") => {
            StatusCode::CREATED
        }
        _ if route.method == Method::DELETE && route.path.contains("/webhooks/") => {
            StatusCode::NO_CONTENT
        }
        // A plain GET passes every check, then is told it is not a WebSocket handshake.
        _ if route.path.ends_with("/live/ws") => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

async fn prepared_app() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    let events = vec![
        registered("ws_acme", "mch_1"),
        registered("ws_globex", "mch_2"),
        registered("ws_acme", "mch_3"),
        registered("ws_globex", "mch_1"),
    ];
    let (status, answer) = app.append(events).await;
    assert_eq!(status, StatusCode::OK);
    let event = answer["events"][0]["id"].as_str().unwrap().to_owned();
    (app, event)
}

conformance! {
#[tokio::test]
async fn every_route_answers_each_scope_and_binding_as_the_contract_says() {
    let (app, event) = prepared_app().await;
    let mut callers = Vec::new();
    for workspace in [None, Some("ws_acme")] {
        for scope in Scope::ALL {
            let (value, _) = app.token(workspace, &[scope.name()]).await;
            callers.push(Caller {
                value,
                workspace,
                scope,
            });
        }
    }
    let mut checked = 0;
    for route in routes() {
        for target in ["ws_acme", "ws_globex"] {
            if !matches!(route.needs, Needs::Workspace(_) | Needs::Body(_)) && target == "ws_globex"
            {
                continue;
            }
            for caller in &callers {
                let (_, victim) = app.token(None, &["read"]).await;
                let hook = app.webhook(target).await;
                let path = route
                    .path
                    .replace("{ws}", target)
                    .replace("{event}", &event)
                    .replace("{victim}", &victim)
                    .replace("{hook}", &hook);
                let body = route.body.as_ref().map(|body| {
                    serde_json::from_str(&body.to_string().replace("{ws}", target)).unwrap()
                });
                let (status, answer) = if path.contains("/live?") {
                    // A stream: its status is enough, and the body never ends.
                    let response = app
                        .client
                        .get(app.url(&path))
                        .bearer_auth(&caller.value)
                        .send()
                        .await
                        .unwrap();
                    let status = response.status();
                    let body = if status.is_success() {
                        Value::Null
                    } else {
                        response.json().await.unwrap()
                    };
                    (status, body)
                } else {
                    app.send(
                        route.method.clone(),
                        &path,
                        Some(&caller.value),
                        body.as_ref(),
                    )
                    .await
                };
                let want = expected(&route, caller, target);
                assert_eq!(
                    status, want,
                    "{} {path} with a {:?} token bound to {:?}: {answer}",
                    route.method, caller.scope, caller.workspace
                );
                if !status.is_success() && status != StatusCode::BAD_REQUEST {
                    let code = answer["error"]["code"].as_str().unwrap();
                    assert_eq!(
                        code,
                        if status == StatusCode::NOT_FOUND {
                            "not_found"
                        } else {
                            "forbidden"
                        }
                    );
                }
                checked += 1;
            }
            // No token, and a token nobody issued: 401 on every route.
            let path = route
                .path
                .replace("{ws}", target)
                .replace("{event}", &event)
                .replace("{victim}", "tok_x")
                .replace("{hook}", "0193a1b2-0000-7000-8000-000000000001");
            for token in [None, Some("chr_not_a_token")] {
                let (status, answer) = app
                    .send(route.method.clone(), &path, token, route.body.as_ref())
                    .await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{} {path}: {answer}",
                    route.method
                );
                assert_eq!(answer["error"]["code"], "unauthorized");
            }
        }
    }
    assert!(checked > 100);
}
}

conformance! {
#[tokio::test]
async fn a_bound_append_token_cannot_write_into_another_workspace() {
    let (app, _) = prepared_app().await;
    let (value, _) = app.token(Some("ws_acme"), &["append"]).await;
    let body =
        json!({"events": [registered("ws_acme", "mch_9"), registered("ws_globex", "mch_9")]});
    let (status, answer) = app
        .send(Method::POST, "/v1/events", Some(&value), Some(&body))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    assert_eq!(answer["error"]["index"], 1);
    assert_eq!(app.head().await, 4, "nothing of the batch was appended");
}
}

conformance! {
#[tokio::test]
async fn a_revoked_token_stops_working_at_once() {
    let (app, _) = prepared_app().await;
    let (value, id) = app.token(Some("ws_acme"), &["read"]).await;
    let path = "/v1/workspaces/ws_acme/checkpoint";
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, revoked) = app
        .send(
            Method::DELETE,
            &format!("/v1/tokens/{id}"),
            Some(TOKEN),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(revoked["revoked_at"].is_string());
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);

    let (status, _) = app
        .send(Method::DELETE, "/v1/tokens/tok_nope", Some(TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
}

conformance! {
#[tokio::test]
async fn an_expired_token_is_refused_like_an_unknown_one() {
    let (app, _) = prepared_app().await;
    let now = time::OffsetDateTime::now_utc();
    let (mut token, value) =
        chronicle_api::new_token("old", None, vec![Scope::Admin], None, now).unwrap();
    token.expires_at = Some(chronicle_domain::format_timestamp(
        now - time::Duration::seconds(1),
    ));
    app.store.create_token(token).await.unwrap();
    let (status, answer) = app.send(Method::GET, "/v1/head", Some(&value), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, unknown) = app
        .send(Method::GET, "/v1/head", Some("chr_0000"), None)
        .await;
    assert_eq!(
        answer, unknown,
        "expired and unknown tokens get the same answer"
    );
}
}

conformance! {
#[tokio::test]
async fn tokens_are_shown_once_and_kept_only_as_hashes() {
    let (app, _) = prepared_app().await;
    let body = json!({"name": "ci", "workspace": "ws_acme", "scopes": ["read", "append", "read"],
                      "expires_at": "2099-01-01T00:00:00+01:00"});
    let (status, created) = app.post_json("/v1/tokens", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let value = created["token"].as_str().unwrap().to_owned();
    assert!(value.starts_with("chr_") && value.len() == 68);
    assert_eq!(created["scopes"], json!(["append", "read"]));
    assert_eq!(created["expires_at"], "2098-12-31T23:00:00.000Z");
    assert_eq!(created["prefix"], value[..12]);

    let (status, list) = app.get("/v1/tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert!(list["items"][0].get("token").is_none());
    assert!(!list.to_string().contains(&value));

    // Use it, so it passes through the logs and the metrics, then look everywhere for it.
    let response = app
        .client
        .get(app.url("/v1/workspaces/ws_acme/checkpoint"))
        .bearer_auth(&value)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let metrics = app.metrics().await;
    assert!(metrics.contains("chronicle_http_requests_total"));
    assert!(metrics.contains("chronicle_appended_events_total"));
    assert!(!metrics.contains(&value) && !metrics.contains(TOKEN));
    for entry in walk(app.data_directory()) {
        // The search index writes and deletes temporary files as it goes.
        let Ok(bytes) = std::fs::read(&entry) else {
            continue;
        };
        assert!(
            !contains(&bytes, value.as_bytes()),
            "{} holds the token",
            entry.display()
        );
        assert!(
            !contains(&bytes, &value.as_bytes()[4..]),
            "{} holds the token",
            entry.display()
        );
    }

    for (body, field) in [
        (json!({"name": "", "scopes": ["read"]}), "name"),
        (json!({"name": "x", "scopes": []}), "scopes"),
        (
            json!({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "x", "scopes": ["read"], "workspace": "a b"}),
            "workspace",
        ),
    ] {
        let (status, answer) = app.post_json("/v1/tokens", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, answer) = app
        .post_json("/v1/tokens", &json!({"name": "x", "scopes": ["root"]}))
        .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_body"))
    );
}
}

conformance! {
#[tokio::test]
async fn a_token_past_its_rate_gets_429_with_retry_after() {
    let app = TestApp::spawn_with(|config| {
        config.rate_limit = Some(chronicle_api::RateLimit {
            per_second: 1,
            burst: 3,
        });
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = app
            .client
            .get(app.url("/v1/public-key"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry: u64 = response.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "rate_limited");
        }
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3]);
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS);
}
}

conformance! {
#[tokio::test]
async fn request_ids_are_kept_or_made() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get(app.url("/healthz"))
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-123");
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        response.headers()["x-request-id"].to_str().unwrap().len(),
        36
    );
}
}

fn walk(directory: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(directory) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path))
        } else {
            files.push(path)
        }
    }
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}
