//! `/openapi.json` covers every route, and real answers of every route match its schemas.

use std::collections::BTreeSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TOKEN, TestApp, registered, renamed};

/// Every route the server serves: (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/events"),
    ("get", "/v1/events"),
    ("get", "/v1/events/{id}"),
    ("get", "/v1/streams/{stream}"),
    ("get", "/v1/workspaces/{workspace}/events/{id}"),
    ("get", "/v1/workspaces/{workspace}/streams/{stream}"),
    ("get", "/v1/head"),
    ("get", "/v1/checkpoint"),
    ("get", "/v1/public-key"),
    ("get", "/v1/proofs/inclusion"),
    ("get", "/v1/proofs/consistency"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{id}"),
    ("post", "/v1/rebuild"),
    ("get", "/v1/workspaces/{workspace}/checkpoint"),
    ("get", "/v1/workspaces/{workspace}/proofs/inclusion"),
    ("get", "/v1/workspaces/{workspace}/proofs/consistency"),
    ("get", "/v1/workspaces/{workspace}/live"),
    ("get", "/v1/workspaces/{workspace}/live/ws"),
    ("post", "/v1/workspaces/{workspace}/webhooks"),
    ("get", "/v1/workspaces/{workspace}/webhooks"),
    ("delete", "/v1/workspaces/{workspace}/webhooks/{id}"),
    ("post", "/v1/workspaces/{workspace}/webhooks/{id}/resume"),
    ("get", "/v1/workspaces/{workspace}/webhooks/{id}/deliveries"),
    ("get", "/v1/workspaces/{workspace}/machines"),
    ("get", "/v1/workspaces/{workspace}/machines/{id}"),
    ("get", "/v1/workspaces/{workspace}/sessions"),
    ("get", "/v1/workspaces/{workspace}/sessions/{id}"),
    ("get", "/v1/workspaces/{workspace}/schedules"),
    ("get", "/v1/workspaces/{workspace}/schedules/{id}"),
    ("get", "/v1/workspaces/{workspace}/schedules/{id}/runs"),
    ("get", "/v1/workspaces/{workspace}/members"),
    ("get", "/v1/workspaces/{workspace}/billing"),
    ("get", "/v1/workspaces/{workspace}/activity"),
    ("get", "/v1/workspaces/{workspace}/audit"),
    ("get", "/v1/workspaces/{workspace}/audit/export"),
    ("post", "/v1/workspaces/{workspace}/evidence"),
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
];

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_lists_every_route_and_nothing_else() {
    let app = TestApp::spawn().await;
    let openapi = document(&app).await;
    let documented: BTreeSet<(String, String)> = openapi["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(method, path)| (method.to_string(), path.to_string()))
        .collect();
    assert_eq!(documented, served);
    // Every served route answers something other than the router's own 404 or 405.
    for (method, path) in ROUTES {
        let concrete = path
            .replace("{workspace}", "ws_acme")
            .replace("{id}", "x")
            .replace("{stream}", "machine-x");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let response = app
            .client
            .request(method, app.url(&concrete))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_ne!(
                body["error"]["message"], "no such route",
                "{path} is not served"
            );
        }
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
    }
}

/// Checks `body` against the schema documented for `method path` answering `status`.
fn check(openapi: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let responses = &openapi["paths"][path][method]["responses"];
    let response = &responses[status.as_str()];
    assert!(
        response.is_object(),
        "{method} {path} does not document status {status}"
    );
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} {status} documents no JSON schema"
    );
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": openapi["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|error| format!("{error} at {}", error.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status}: {errors:?}\n{body}"
    );
}

#[tokio::test]
async fn real_answers_of_every_json_route_match_the_document() {
    let app = TestApp::spawn().await;
    let openapi = document(&app).await;
    let mut events = vec![
        registered("ws_acme", "mch_1"),
        renamed("ws_acme", "mch_1", "web-02"),
    ];
    events[1]["context"] =
        json!({"source_ip": "2001:db8::7", "transport": "rest", "response_code": 200});
    let (status, appended) = app.append(events).await;
    assert_eq!(status, StatusCode::OK);
    check(&openapi, "post", "/v1/events", status, &appended);
    let id = appended["events"][0]["id"].as_str().unwrap().to_owned();

    let (status, created) = app
        .post_json("/v1/workspaces/ws_acme/webhooks", &json!({"url": "http://127.0.0.1:9/hook", "secret": "0123456789abcdef", "types": ["machine.*"]}))
        .await;
    check(
        &openapi,
        "post",
        "/v1/workspaces/{workspace}/webhooks",
        status,
        &created,
    );
    let webhook = created["id"].as_str().unwrap().to_owned();
    let (status, token) = app
        .post_json(
            "/v1/tokens",
            &json!({"name": "n", "workspace": "ws_acme", "scopes": ["read"]}),
        )
        .await;
    check(&openapi, "post", "/v1/tokens", status, &token);
    let token_id = token["id"].as_str().unwrap().to_owned();

    let gets = [
        ("/v1/events", "/v1/events?after=0".to_owned()),
        (
            "/v1/events/{id}",
            format!("/v1/events/{id}?workspace=ws_acme"),
        ),
        (
            "/v1/streams/{stream}",
            "/v1/streams/machine-mch_1?workspace=ws_acme".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/events/{id}",
            format!("/v1/workspaces/ws_acme/events/{id}"),
        ),
        (
            "/v1/workspaces/{workspace}/streams/{stream}",
            "/v1/workspaces/ws_acme/streams/machine-mch_1".to_owned(),
        ),
        ("/v1/head", "/v1/head".to_owned()),
        (
            "/v1/proofs/inclusion",
            "/v1/proofs/inclusion?position=1&tree_size=2".to_owned(),
        ),
        (
            "/v1/proofs/consistency",
            "/v1/proofs/consistency?from=1&to=2".to_owned(),
        ),
        ("/v1/tokens", "/v1/tokens".to_owned()),
        (
            "/v1/workspaces/{workspace}/proofs/inclusion",
            "/v1/workspaces/ws_acme/proofs/inclusion?seq=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/proofs/consistency",
            "/v1/workspaces/ws_acme/proofs/consistency?from=1&to=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/webhooks",
            "/v1/workspaces/ws_acme/webhooks".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/webhooks/{id}/deliveries",
            format!("/v1/workspaces/ws_acme/webhooks/{webhook}/deliveries"),
        ),
        (
            "/v1/workspaces/{workspace}/audit",
            "/v1/workspaces/ws_acme/audit?q=type:machine.*&facets=type,day&min_position=2"
                .to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/machines",
            "/v1/workspaces/ws_acme/machines?min_position=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/machines/{id}",
            "/v1/workspaces/ws_acme/machines/mch_1?min_position=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/sessions",
            "/v1/workspaces/ws_acme/sessions?min_position=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/schedules",
            "/v1/workspaces/ws_acme/schedules?min_position=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/members",
            "/v1/workspaces/ws_acme/members?min_position=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/billing",
            "/v1/workspaces/ws_acme/billing?min_position=2".to_owned(),
        ),
        (
            "/v1/workspaces/{workspace}/activity",
            "/v1/workspaces/ws_acme/activity?min_position=2&as_of=2".to_owned(),
        ),
        ("/healthz", "/healthz".to_owned()),
        ("/readyz", "/readyz".to_owned()),
    ];
    for (template, path) in gets {
        let (status, body) = app.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        check(&openapi, "get", template, status, &body);
    }
    let (status, body) = app
        .send(
            Method::DELETE,
            &format!("/v1/tokens/{token_id}"),
            Some(TOKEN),
            None,
        )
        .await;
    check(&openapi, "delete", "/v1/tokens/{id}", status, &body);

    // A rebuild answers once the rebuilt tables serve; an unknown model is named.
    let rebuild = json!({"models": ["machines"]});
    let (status, body) = app
        .send(Method::POST, "/v1/rebuild", Some(TOKEN), Some(&rebuild))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["position"], app.head().await);
    check(&openapi, "post", "/v1/rebuild", status, &body);
    let unknown = json!({"models": ["nope"]});
    let (status, body) = app
        .send(Method::POST, "/v1/rebuild", Some(TOKEN), Some(&unknown))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["field"], "models");
    check(&openapi, "post", "/v1/rebuild", status, &body);

    // The check is not vacuous: a wrong answer fails it.
    let wrong = std::panic::catch_unwind(|| {
        check(
            &openapi,
            "get",
            "/v1/events",
            StatusCode::OK,
            &json!({"events": [{"position": "one"}], "next": 1}),
        )
    });
    assert!(
        wrong.is_err(),
        "a malformed event passed the documented schema"
    );

    // Errors have the documented shape too.
    let (status, body) = app.send(Method::GET, "/v1/head", None, None).await;
    check(&openapi, "get", "/v1/head", status, &body);
    let (status, body) = app.get("/v1/proofs/inclusion?position=9").await;
    check(&openapi, "get", "/v1/proofs/inclusion", status, &body);
    let mut conflict = renamed("ws_acme", "mch_1", "x");
    conflict["expected_version"] = json!(9);
    let (status, body) = app.append(vec![conflict]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    check(&openapi, "post", "/v1/events", status, &body);
}

/// Collects every `$ref` of a JSON value.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(object) => {
            if let Some(Value::String(target)) = object.get("$ref") {
                found.push(target);
            }
            object.values().for_each(|inner| references(inner, found));
        }
        Value::Array(items) => items.iter().for_each(|inner| references(inner, found)),
        _ => {}
    }
}

#[tokio::test]
async fn every_reference_of_the_document_resolves() {
    let app = TestApp::spawn().await;
    let openapi = document(&app).await;
    let mut found = Vec::new();
    references(&openapi, &mut found);
    assert!(!found.is_empty());
    let dangling: BTreeSet<&str> = found
        .into_iter()
        .filter(|target| {
            let pointer = target.strip_prefix('#').unwrap_or(target);
            openapi.pointer(pointer).is_none()
        })
        .collect();
    assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
}

#[tokio::test]
async fn each_list_documents_the_filters_it_takes_and_segments_their_rule() {
    let app = TestApp::spawn().await;
    let openapi = document(&app).await;
    let names = |path: &str| -> Vec<String> {
        openapi["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|parameter| parameter["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let sessions = names("/v1/workspaces/{workspace}/sessions");
    assert!(
        sessions.contains(&"machine".to_owned()) && !sessions.contains(&"os".to_owned()),
        "{sessions:?}"
    );
    let machines = names("/v1/workspaces/{workspace}/machines");
    assert!(
        machines.contains(&"os".to_owned()) && !machines.contains(&"actor".to_owned()),
        "{machines:?}"
    );
    // An unlisted filter is refused, a listed one taken.
    let (status, _) = app.get("/v1/workspaces/ws_acme/sessions?os=linux").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "ws_acme has no events yet");
    app.append(vec![registered("ws_acme", "mch_1")]).await;
    let (status, answer) = app.get("/v1/workspaces/ws_acme/sessions?os=linux").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, _) = app
        .get("/v1/workspaces/ws_acme/sessions?machine=mch_1")
        .await;
    assert_eq!(status, StatusCode::OK);
    let workspace = &openapi["paths"]["/v1/workspaces/{workspace}/machines"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "workspace")
        .unwrap()["schema"];
    assert_eq!(workspace["maxLength"], 64, "{workspace}");
}

#[tokio::test]
async fn the_append_body_is_described_so_a_client_can_be_generated_from_it() {
    let app = TestApp::spawn().await;
    let openapi = document(&app).await;
    let schema = &openapi["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": openapi["components"],
        "allOf": [schema],
    });
    let validator = jsonschema::validator_for(&root).unwrap();
    let batch =
        json!({"events": [registered("ws_acme", "mch_1"), renamed("ws_acme", "mch_1", "web-02")]});
    let errors: Vec<String> = validator
        .iter_errors(&batch)
        .map(|error| error.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    let (status, answer) = app
        .append(batch["events"].as_array().unwrap().clone())
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the described body is what the server takes: {answer}"
    );
    for refused in [
        json!({"events": []}),
        json!({"events": [{"stream": "machine-mch_1"}]}),
        json!({"events": [registered("ws_acme", "mch_2")], "extra": 1}),
        {
            let mut event = registered("ws_acme", "mch_2");
            event["type"] = json!("audit.searched");
            json!({"events": [event]})
        },
    ] {
        assert!(
            !validator.is_valid(&refused),
            "described as valid: {refused}"
        );
        let (status, _) = app.post_json("/v1/events", &refused).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "the server refuses it too: {refused}"
        );
    }
}
