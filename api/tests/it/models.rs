//! The read models over HTTP against a generated history: every model's answer equals the fold
//! of the same events done here, every filter, cursors, `as_of`, `min_position`, and a rebuild
//! while queries run.

use chronicle_store::conformance;
use std::collections::BTreeSet;

use chronicle_domain::RecordedEvent;
use chronicle_domain::models::activity::ActivityFeed;
use chronicle_domain::models::billing::{Billing, BillingModel};
use chronicle_domain::models::machines::Machines;
use chronicle_domain::models::members::Members;
use chronicle_domain::models::runs::Runs;
use chronicle_domain::models::schedules::Schedules;
use chronicle_domain::models::sessions::Sessions;
use chronicle_domain::models::{ReadModel, fold, unix_nanos};
use chronicle_fixtures::{Scale, history};
use chronicle_projections::Model;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, registered};

/// A served history: the app, its recorded events, and the head.
async fn served_history() -> (TestApp, Vec<RecordedEvent>, u64) {
    let app = TestApp::spawn().await;
    for chunk in history(5, Scale::small()).chunks(500) {
        let (status, answer) = app.append(chunk.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let events: Vec<RecordedEvent> = app
        .read_all()
        .await
        .into_iter()
        .map(|event| serde_json::from_value(event).unwrap())
        .collect();
    let head = events.last().unwrap().position;
    (app, events, head)
}

fn workspaces(events: &[RecordedEvent]) -> BTreeSet<String> {
    events
        .iter()
        .filter_map(|event| event.workspace.clone())
        .collect()
}

/// The rows of `M` in `workspace` after `events`, in the list's order, as JSON.
fn expected<M: ReadModel>(
    events: &[RecordedEvent],
    workspace: &str,
    keep: impl Fn(&M::Row) -> bool,
) -> Vec<Value> {
    let mut rows: Vec<(String, M::Row)> = fold::<M>(events)
        .into_iter()
        .filter(|(_, row)| M::workspace(row) == workspace && keep(row))
        .collect();
    let json = |rows: Vec<(String, M::Row)>| {
        rows.into_iter()
            .map(|(_, row)| serde_json::to_value(row).unwrap())
            .collect::<Vec<Value>>()
    };
    match M::NAME {
        "sessions" => {
            let mut rows = json(rows);
            rows.sort_by(|a, b| {
                let key = |row: &Value| {
                    (
                        unix_nanos(row["opened_at"].as_str().unwrap()),
                        row["id"].as_str().unwrap().to_owned(),
                    )
                };
                key(b).cmp(&key(a))
            });
            rows
        }
        "runs" => {
            let mut rows = json(rows);
            rows.sort_by(|a, b| {
                let key = |row: &Value| {
                    (
                        unix_nanos(row["queued_at"].as_str().unwrap()),
                        row["run_id"].as_str().unwrap().to_owned(),
                    )
                };
                key(b).cmp(&key(a))
            });
            rows
        }
        "activity" => {
            rows.reverse();
            json(rows)
        }
        _ => json(rows),
    }
}

/// Reads a whole list `limit` items a page, following cursors; answers the items and the
/// position of the first page.
async fn list_all(app: &TestApp, path: &str, limit: u32) -> (Vec<Value>, u64) {
    let separator = if path.contains('?') { '&' } else { '?' };
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let mut position = None;
    loop {
        let mut url = format!("{path}{separator}limit={limit}");
        if let Some(cursor) = &cursor {
            url.push_str(&format!("&cursor={cursor}"));
        }
        let (status, page) = app.get(&url).await;
        assert_eq!(status, StatusCode::OK, "{url}: {page}");
        let batch = page["items"].as_array().unwrap();
        assert!(batch.len() <= limit as usize);
        items.extend(batch.iter().cloned());
        position.get_or_insert(page["position"].as_u64().unwrap());
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, position.unwrap()),
        }
    }
}

conformance! {
#[tokio::test]
async fn every_model_answers_the_fold_of_its_events_and_cursors_cover_each_row_once() {
    let (app, events, head) = served_history().await;
    let base = |ws: &str, model: &str| format!("/v1/workspaces/{ws}/{model}?min_position={head}");
    let mut runs_checked = 0;
    for ws in workspaces(&events) {
        let (machines, position) = list_all(&app, &base(&ws, "machines"), 2).await;
        assert_eq!(position, head);
        assert_eq!(machines, expected::<Machines>(&events, &ws, |_| true));
        assert!(!machines.is_empty());
        let (sessions, _) = list_all(&app, &base(&ws, "sessions"), 7).await;
        assert_eq!(sessions, expected::<Sessions>(&events, &ws, |_| true));
        assert!(sessions.len() > 7, "a long list spans pages");
        let (schedules, _) = list_all(&app, &base(&ws, "schedules"), 3).await;
        assert_eq!(schedules, expected::<Schedules>(&events, &ws, |_| true));
        let (members, _) = list_all(&app, &base(&ws, "members"), 3).await;
        assert_eq!(members, expected::<Members>(&events, &ws, |_| true));
        // A workspace always has an owner; removed members keep their rows.
        assert!(
            members
                .iter()
                .any(|m| m["role"] == "owner" && m["status"] == "active"),
            "{ws}"
        );
        let (activity, _) = list_all(&app, &base(&ws, "activity"), 50).await;
        assert_eq!(activity, expected::<ActivityFeed>(&events, &ws, |_| true));

        for schedule in &schedules {
            let id = schedule["id"].as_str().unwrap();
            let (runs, _) =
                list_all(&app, &format!("/v1/workspaces/{ws}/schedules/{id}/runs"), 4).await;
            assert_eq!(
                runs,
                expected::<Runs>(&events, &ws, |run| run.schedule == id)
            );
            runs_checked += runs.len();
            let (status, detail) = app
                .get(&format!("/v1/workspaces/{ws}/schedules/{id}"))
                .await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(without_position(detail), *schedule);
        }
        for (model, rows) in [("machines", &machines), ("sessions", &sessions)] {
            for row in rows.iter().take(5) {
                let id = row["id"].as_str().unwrap();
                let (status, detail) = app.get(&format!("/v1/workspaces/{ws}/{model}/{id}")).await;
                assert_eq!(status, StatusCode::OK);
                assert_eq!(detail["position"], head);
                assert_eq!(without_position(detail), *row);
            }
        }
        let (status, billing) = app.get(&format!("/v1/workspaces/{ws}/billing")).await;
        assert_eq!(status, StatusCode::OK);
        let folded = fold::<BillingModel>(&events)
            .remove(&ws)
            .unwrap_or_else(|| Billing::empty(&ws));
        assert_eq!(
            without_position(billing),
            serde_json::to_value(folded).unwrap()
        );
    }
    assert!(runs_checked > 0);
    let (status, missing) = app.get("/v1/workspaces/ws_none/machines/mch_none").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"]["code"], "not_found");
}
}

/// Reads a whole list of `ws` in one page.
async fn list_in(app: &TestApp, ws: &str, path: String) -> Vec<Value> {
    list_all(app, &format!("/v1/workspaces/{ws}/{path}"), 1000)
        .await
        .0
}

fn without_position(mut row: Value) -> Value {
    row.as_object_mut().unwrap().remove("position");
    row
}

conformance! {
#[tokio::test]
async fn every_filter_selects_what_the_fold_says() {
    let (app, events, head) = served_history().await;
    let ws = workspaces(&events).into_iter().next().unwrap();
    let machines = fold::<Machines>(&events);
    let sessions = fold::<Sessions>(&events);
    let _ = list_in(&app, &ws, format!("machines?min_position={head}")).await;

    let some_machine = machines
        .values()
        .find(|m| m.workspace == ws && !m.tags.is_empty())
        .unwrap();
    let tag = some_machine.tags[0].clone();
    let statuses: BTreeSet<String> = machines.values().map(|m| m.status.clone()).collect();
    for status in &statuses {
        assert_eq!(
            list_in(&app, &ws, format!("machines?status={status}")).await,
            expected::<Machines>(&events, &ws, |m| &m.status == status)
        );
    }
    assert_eq!(
        list_in(&app, &ws, format!("machines?os={}", some_machine.os)).await,
        expected::<Machines>(&events, &ws, |m| m.os == some_machine.os)
    );
    assert_eq!(
        list_in(&app, &ws, format!("machines?tag={tag}")).await,
        expected::<Machines>(&events, &ws, |m| m.tags.contains(&tag))
    );
    let fragment = some_machine.hostname[..4].to_uppercase();
    let q = expected::<Machines>(&events, &ws, |m| {
        format!("{} {} {}", m.id, m.name, m.hostname)
            .to_lowercase()
            .contains(&fragment.to_lowercase())
    });
    assert!(!q.is_empty());
    assert_eq!(
        list_in(&app, &ws, format!("machines?q={fragment}")).await,
        q
    );

    let session = sessions.values().find(|s| s.workspace == ws).unwrap();
    for (filter, keep) in [
        (
            format!("machine={}", session.machine),
            Box::new(|s: &chronicle_domain::models::sessions::Session| s.machine == session.machine)
                as Box<dyn Fn(&_) -> bool>,
        ),
        (
            format!("actor={}", session.opened_by),
            Box::new(|s: &chronicle_domain::models::sessions::Session| {
                s.opened_by == session.opened_by
            }),
        ),
        (
            "state=active".to_owned(),
            Box::new(|s: &chronicle_domain::models::sessions::Session| s.state == "active"),
        ),
        (
            "state=ended".to_owned(),
            Box::new(|s: &chronicle_domain::models::sessions::Session| s.state == "ended"),
        ),
    ] {
        assert_eq!(
            list_in(&app, &ws, format!("sessions?{filter}")).await,
            expected::<Sessions>(&events, &ws, keep),
            "{filter}"
        );
    }
    // A time range: [from, to) on opened_at.
    let middle = &events[events.len() / 2].occurred_at;
    let late = &events[events.len() * 3 / 4].occurred_at;
    let in_range =
        |time: &str| unix_nanos(time) >= unix_nanos(middle) && unix_nanos(time) < unix_nanos(late);
    let ranged = expected::<Sessions>(&events, &ws, |s| in_range(&s.opened_at));
    assert!(!ranged.is_empty());
    assert_eq!(
        list_in(&app, &ws, format!("sessions?from={middle}&to={late}")).await,
        ranged
    );
    assert_eq!(
        list_in(&app, &ws, format!("activity?from={middle}&to={late}")).await,
        expected::<ActivityFeed>(&events, &ws, |a| in_range(&a.occurred_at))
    );
    assert_eq!(
        list_in(&app, &ws, format!("activity?actor={}", session.opened_by)).await,
        expected::<ActivityFeed>(&events, &ws, |a| a.actor.id == session.opened_by)
    );
    for status in ["active", "removed", "invited"] {
        assert_eq!(
            list_in(&app, &ws, format!("members?status={status}")).await,
            expected::<Members>(&events, &ws, |m| m.status == status)
        );
    }
    let runs = fold::<Runs>(&events);
    let run = runs
        .values()
        .find(|r| r.workspace == ws && !r.machines.is_empty())
        .unwrap();
    let machine = run.machines.keys().next().unwrap();
    let path = format!("schedules/{}/runs", run.schedule);
    for (filter, keep) in [
        (
            format!("status={}", run.status),
            Box::new(|r: &chronicle_domain::models::runs::Run| r.status == run.status)
                as Box<dyn Fn(&_) -> bool>,
        ),
        (
            format!("machine={machine}"),
            Box::new(|r: &chronicle_domain::models::runs::Run| r.machines.contains_key(machine)),
        ),
        (
            format!("from={middle}"),
            Box::new(|r: &chronicle_domain::models::runs::Run| {
                unix_nanos(&r.queued_at) >= unix_nanos(middle)
            }),
        ),
    ] {
        let want = expected::<Runs>(&events, &ws, |r| r.schedule == run.schedule && keep(r));
        assert_eq!(
            list_in(&app, &ws, format!("{path}?{filter}")).await,
            want,
            "{filter}"
        );
    }
    assert_eq!(
        list_in(&app, &ws, format!("schedules?status={}", run.status)).await,
        expected::<Schedules>(&events, &ws, |s| s.last_status == run.status)
    );

    // Filters a list does not take, bad times and bad cursors are 400 in the contract's shape.
    for path in [
        "machines?state=active",
        "sessions?os=linux",
        "sessions?from=yesterday",
        "machines?cursor=zz",
        "machines?limit=0",
        "machines?as_of=soon",
    ] {
        let (status, answer) = app.get(&format!("/v1/workspaces/{ws}/{path}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_parameter", "{path}");
    }
}
}

conformance! {
#[tokio::test]
async fn as_of_a_middle_position_or_time_equals_the_fold_up_to_there() {
    let (app, events, head) = served_history().await;
    let middle = head / 2;
    let before = &events[..middle as usize];
    let first = workspaces(&events).into_iter().next().unwrap();
    let _ = list_all(
        &app,
        &format!("/v1/workspaces/{first}/machines?min_position={head}"),
        10,
    )
    .await;
    for ws in workspaces(&events) {
        let at = |model: &str| format!("/v1/workspaces/{ws}/{model}?as_of={middle}");
        let (machines, position) = list_all(&app, &at("machines"), 3).await;
        assert_eq!(position, middle);
        assert_eq!(machines, expected::<Machines>(before, &ws, |_| true));
        assert_ne!(
            machines,
            expected::<Machines>(&events, &ws, |_| true),
            "the past differs from now"
        );
        assert_eq!(
            list_all(&app, &at("sessions"), 9).await.0,
            expected::<Sessions>(before, &ws, |_| true)
        );
        assert_eq!(
            list_all(&app, &at("members"), 9).await.0,
            expected::<Members>(before, &ws, |_| true)
        );
        assert_eq!(
            list_all(&app, &at("activity"), 90).await.0,
            expected::<ActivityFeed>(before, &ws, |_| true)
        );
        assert_eq!(
            list_all(&app, &at("schedules"), 9).await.0,
            expected::<Schedules>(before, &ws, |_| true)
        );
        let (status, billing) = app.get(&at("billing")).await;
        assert_eq!(status, StatusCode::OK);
        let folded = fold::<BillingModel>(before)
            .remove(&ws)
            .unwrap_or_else(|| Billing::empty(&ws));
        assert_eq!(
            without_position(billing),
            serde_json::to_value(folded).unwrap()
        );

        // A time: every event recorded at or before it (a group commit shares one time).
        let time = &events[middle as usize - 1].recorded_at;
        let until: Vec<RecordedEvent> = events
            .iter()
            .filter(|e| unix_nanos(&e.recorded_at) <= unix_nanos(time))
            .cloned()
            .collect();
        let (machines, _) = list_all(
            &app,
            &format!("/v1/workspaces/{ws}/machines?as_of={time}"),
            50,
        )
        .await;
        assert_eq!(machines, expected::<Machines>(&until, &ws, |_| true));
    }
}
}

conformance! {
#[tokio::test]
async fn min_position_reads_your_writes_and_says_when_it_cannot() {
    let app = TestApp::spawn().await;
    for round in 0..20 {
        let machine = format!("mch_{round}");
        let (status, answer) = app.append(vec![registered("ws_acme", &machine)]).await;
        assert_eq!(status, StatusCode::OK);
        let position = answer["events"][0]["position"].as_u64().unwrap();
        let (status, row) = app
            .get(&format!(
                "/v1/workspaces/ws_acme/machines/{machine}?min_position={position}"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{row}");
        assert_eq!(row["name"], machine.as_str());
        assert!(row["position"].as_u64().unwrap() >= position);
    }
    let (status, answer) = app
        .get("/v1/workspaces/ws_acme/machines?min_position=1000")
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer["error"]["code"], "not_caught_up");
    assert_eq!(answer["error"]["min_position"], json!(1000));
}
}

conformance! {
#[tokio::test]
async fn a_rebuild_while_queries_run_never_answers_an_error_or_a_half_built_model() {
    let (app, events, head) = served_history().await;
    let ws = workspaces(&events).into_iter().next().unwrap();
    let machines_path = format!("/v1/workspaces/{ws}/machines?limit=1000&min_position={head}");
    let sessions_path = format!("/v1/workspaces/{ws}/sessions?limit=1000&min_position={head}");
    let want_machines = expected::<Machines>(&events, &ws, |_| true);
    let want_sessions = expected::<Sessions>(&events, &ws, |_| true);
    assert_eq!(
        app.get(&machines_path).await.1["items"],
        json!(want_machines)
    );

    // Through the admin route: the server rebuilds into fresh tables while it keeps answering.
    let (client, url) = (app.client.clone(), app.url("/v1/rebuild"));
    let rebuild = tokio::spawn(async move {
        let response = client
            .post(url)
            .bearer_auth(crate::support::TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()
    });
    let mut answers = 0;
    while !rebuild.is_finished() || answers < 10 {
        for (path, want) in [
            (&machines_path, &want_machines),
            (&sessions_path, &want_sessions),
        ] {
            let (status, page) = app.get(path).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert_eq!(page["items"], json!(want));
            answers += 1;
        }
    }
    let answer = rebuild.await.unwrap();
    assert_eq!(answer["position"], head);
    assert_eq!(answer["models"].as_array().unwrap().len(), Model::ALL.len());
    let (_, page) = app.get(&machines_path).await;
    assert_eq!(page["items"], json!(want_machines));
    assert_eq!(page["position"], head);
}
}
