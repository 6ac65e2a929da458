//! Audit search over real HTTP and a real tantivy index on disk: answers equal a brute-force
//! filter of the log, workspaces stay apart, malformed queries say where, the index resumes
//! after a restart without indexing again and rebuilds to the same answers, and every search is
//! recorded after its answer, never among its own hits.

use chronicle_store::conformance;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use chronicle_domain::{NewEvent, PreparedEvent};
use chronicle_fixtures::{Scale, history};
use chronicle_search::{AuditQuery, FacetRequest, SearchRequest};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support::{TOKEN, TestApp, registered, renamed};

/// Sends `GET /v1/workspaces/WS/audit` with these parameters and the admin token.
async fn audit(app: &TestApp, workspace: &str, parameters: &[(&str, &str)]) -> (StatusCode, Value) {
    let response = app
        .client
        .get(app.url(&format!("/v1/workspaces/{workspace}/audit")))
        .query(parameters)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

/// Appends events in batches through the API and answers the head.
async fn append_all(app: &TestApp, events: &[Value]) -> u64 {
    for batch in events.chunks(500) {
        let (status, answer) = app.append(batch.to_vec()).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    app.head().await
}

/// The log as read through `GET /v1/events`, fetched as far as needed.
#[derive(Default)]
struct Log {
    events: Vec<Value>,
}

impl Log {
    /// Returns every event up to and including `position`.
    async fn up_to(&mut self, app: &TestApp, position: u64) -> &[Value] {
        while (self.events.len() as u64) < position {
            let after = self.events.len();
            let (status, page) = app
                .get(&format!("/v1/events?after={after}&limit=1000"))
                .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            let events = page["events"].as_array().unwrap();
            assert!(!events.is_empty(), "the log ends before {position}");
            self.events.extend(events.iter().cloned());
        }
        &self.events[..position as usize]
    }
}

// ---------------------------------------------------------------------------------------------
// The brute force: what each word of the language means, written again over the JSON events.
// ---------------------------------------------------------------------------------------------

type Predicate = Box<dyn Fn(&Value) -> bool>;

/// One word of a test query and what it means.
struct Word {
    text: String,
    holds: Predicate,
}

fn word(text: impl Into<String>, holds: impl Fn(&Value) -> bool + 'static) -> Word {
    Word {
        text: text.into(),
        holds: Box::new(holds),
    }
}

fn not(inner: Word) -> Word {
    let holds = inner.holds;
    word(format!("-{}", inner.text), move |event| !holds(event))
}

fn lower(value: &Value) -> Option<String> {
    value.as_str().map(str::to_lowercase)
}

fn same(value: &Value, wanted: &str) -> bool {
    lower(value).is_some_and(|value| value == wanted.to_lowercase())
}

fn type_is(event_type: &str) -> Word {
    let wanted = event_type.to_owned();
    word(format!("type:{event_type}"), move |event| {
        event["type"] == wanted.as_str()
    })
}

fn type_starts(text: &str, prefix: &str) -> Word {
    let prefix = prefix.to_owned();
    word(format!("type:{text}"), move |event| {
        event["type"].as_str().unwrap().starts_with(&prefix)
    })
}

fn actor(value: &str) -> Word {
    let wanted = value.to_owned();
    word(format!("actor:{value}"), move |event| {
        same(&event["actor"]["id"], &wanted) || same(&event["actor"]["name"], &wanted)
    })
}

/// `machine:`, `session:`, `schedule:`: the stream of that kind, or the data's fields.
fn target(field: &'static str, value: &str) -> Word {
    let wanted = value.to_lowercase();
    word(format!("{field}:{value}"), move |event| {
        let stream = event["stream"].as_str().unwrap().to_lowercase();
        let data = &event["data"];
        let in_data = match field {
            "machine" => {
                same(&data["machine"], &wanted)
                    || data["machines"]
                        .as_array()
                        .is_some_and(|machines| machines.iter().any(|m| same(m, &wanted)))
            }
            "session" => same(&data["session"], &wanted),
            _ => same(&data["run_id"], &wanted),
        };
        stream == format!("{field}-{wanted}") || in_data
    })
}

fn request(value: &str) -> Word {
    let wanted = value.to_owned();
    word(format!("request:{value}"), move |event| {
        same(&event["context"]["request_id"], &wanted)
    })
}

fn stream(value: &str) -> Word {
    let wanted = value.to_owned();
    word(format!("stream:{value}"), move |event| {
        same(&event["stream"], &wanted)
    })
}

/// `ip:` with an address or a network, IPv4 compared as IPv4-mapped IPv6.
fn ip(value: &str) -> Word {
    let (address, length) = match value.split_once('/') {
        Some((address, length)) => (address, Some(length.parse::<u32>().unwrap())),
        None => (value, None),
    };
    let address: IpAddr = address.parse().unwrap();
    let bits = match address {
        IpAddr::V4(_) => 96 + length.unwrap_or(32),
        IpAddr::V6(_) => length.unwrap_or(128),
    };
    let network = as_u128(address);
    word(format!("ip:{value}"), move |event| {
        event["context"]["source_ip"]
            .as_str()
            .map(|text| as_u128(text.parse().unwrap()))
            .is_some_and(|ip| bits == 0 || (ip ^ network) >> (128 - bits) == 0)
    })
}

fn as_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// Runs of letters and digits, lowercased.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The event's words: each string value of its data, at any depth, and its actor's name.
fn texts(event: &Value) -> Vec<String> {
    fn walk(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::String(text) => into.push(text.clone()),
            Value::Array(items) => items.iter().for_each(|item| walk(item, into)),
            Value::Object(map) => map.values().for_each(|item| walk(item, into)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(&event["data"], &mut found);
    if let Some(name) = event["actor"]["name"].as_str() {
        found.push(name.to_owned());
    }
    found
}

/// Free text: the words in order, within one value. `quoted` writes it as a phrase.
fn text(value: &str, quoted: bool) -> Word {
    let phrase = tokens(value);
    let written = if quoted {
        format!("\"{value}\"")
    } else {
        value.to_owned()
    };
    word(written, move |event| {
        texts(event).iter().any(|text| {
            tokens(text)
                .windows(phrase.len())
                .any(|window| window == phrase.as_slice())
        })
    })
}

/// A query of several words, and its time range.
struct Case {
    words: Vec<Word>,
    from: Option<String>,
    to: Option<String>,
}

impl Case {
    fn of(words: Vec<Word>) -> Case {
        Case {
            words,
            from: None,
            to: None,
        }
    }

    fn query(&self) -> String {
        self.words
            .iter()
            .map(|word| word.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn holds(&self, workspace: &str, event: &Value) -> bool {
        let at = |text: &str| OffsetDateTime::parse(text, &Rfc3339).unwrap();
        let occurred = at(event["occurred_at"].as_str().unwrap());
        event["workspace"] == workspace
            && self.from.as_deref().is_none_or(|from| occurred >= at(from))
            && self.to.as_deref().is_none_or(|to| occurred < at(to))
            && self.words.iter().all(|word| (word.holds)(event))
    }
}

/// Picks values that occur in a workspace's events, so the queries find something.
struct Sample<'a> {
    events: Vec<&'a Value>,
}

impl<'a> Sample<'a> {
    fn of(events: &'a [Value], workspace: &str) -> Sample<'a> {
        Sample {
            events: events
                .iter()
                .filter(|event| event["workspace"] == workspace)
                .collect(),
        }
    }

    /// The most frequent value, over the events that have one.
    fn most_common(&self, pick: impl Fn(&Value) -> Option<String>) -> String {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for event in &self.events {
            if let Some(value) = pick(event) {
                *counts.entry(value).or_default() += 1;
            }
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        counts.first().expect("a value to sample").0.clone()
    }

    fn first(&self, pick: impl Fn(&Value) -> Option<String>) -> String {
        self.events
            .iter()
            .find_map(|event| pick(event))
            .expect("a value to sample")
    }

    fn stream_id(&self, kind: &str) -> String {
        self.most_common(|event| {
            event["stream"]
                .as_str()
                .unwrap()
                .strip_prefix(&format!("{kind}-"))
                .map(str::to_owned)
        })
    }

    fn cases(&self) -> Vec<Case> {
        let string = |value: &Value| value.as_str().map(str::to_owned);
        let actor_id = self.most_common(|event| string(&event["actor"]["id"]));
        let actor_name =
            self.most_common(|event| string(&event["actor"]["name"]).filter(|n| n.contains('@')));
        let machine = self.stream_id("machine");
        let session = self.stream_id("session");
        let schedule = self.stream_id("schedule");
        let run = self.first(|event| string(&event["data"]["run_id"]));
        let request_id = self.first(|event| string(&event["context"]["request_id"]));
        let a_stream = self.most_common(|event| string(&event["stream"]));
        let address = self.most_common(|event| {
            string(&event["context"]["source_ip"]).filter(|ip| ip.contains('.'))
        });
        let network = format!("{}.0/24", address.rsplit_once('.').unwrap().0);
        let command = self.most_common(|event| {
            string(&event["data"]["command"])
                .filter(|command| tokens(command).len() >= 2 && !command.contains(['"', '\\']))
        });
        let command_word = tokens(&command)
            .into_iter()
            .max_by_key(|token| token.len())
            .unwrap();
        let hostname = self.first(|event| string(&event["data"]["hostname"]));
        let times: Vec<&str> = self
            .events
            .iter()
            .map(|event| event["occurred_at"].as_str().unwrap())
            .collect();
        let (early, late) = (times[times.len() / 3], times[2 * times.len() / 3]);

        let mut cases = vec![
            Case::of(vec![]),
            Case::of(vec![type_is("machine.registered")]),
            Case::of(vec![type_starts("machine.*", "machine.")]),
            Case::of(vec![type_starts("session", "session.")]),
            Case::of(vec![type_starts("sched*", "sched")]),
            Case::of(vec![not(type_starts("session.*", "session."))]),
            Case::of(vec![type_is("audit.searched")]),
            Case::of(vec![actor(&actor_id)]),
            Case::of(vec![actor(&actor_name)]),
            Case::of(vec![actor(&actor_name.to_uppercase())]),
            Case::of(vec![target("machine", &machine)]),
            Case::of(vec![
                not(target("machine", &machine)),
                type_starts("machine.*", "machine."),
            ]),
            Case::of(vec![target("session", &session)]),
            Case::of(vec![target("schedule", &schedule)]),
            Case::of(vec![target("schedule", &run)]),
            Case::of(vec![request(&request_id)]),
            Case::of(vec![stream(&a_stream)]),
            Case::of(vec![ip(&address)]),
            Case::of(vec![ip(&network)]),
            Case::of(vec![ip("203.0.113.0/24")]),
            Case::of(vec![ip("198.51.0.0/16"), type_starts("auth.*", "auth.")]),
            Case::of(vec![ip("2001:db8::/32")]),
            Case::of(vec![not(ip(&network)), type_starts("member.*", "member.")]),
            Case::of(vec![text(&command, true)]),
            Case::of(vec![text(&command_word, false)]),
            Case::of(vec![
                text(&command_word.to_uppercase(), false),
                actor(&actor_id),
            ]),
            Case::of(vec![
                not(text(&command_word, false)),
                type_is("session.input_sent"),
            ]),
            Case::of(vec![text(&hostname, false)]),
            Case::of(vec![
                text("succeeded", false),
                type_starts("schedule.*", "schedule."),
            ]),
            Case::of(vec![
                type_starts("session.*", "session."),
                actor(&actor_id),
                not(type_is("session.input_sent")),
            ]),
        ];
        cases.push(Case {
            from: Some(early.to_owned()),
            to: Some(late.to_owned()),
            ..Case::of(vec![type_starts("session.*", "session.")])
        });
        cases.push(Case {
            from: Some(late.to_owned()),
            ..Case::of(vec![])
        });
        cases.push(Case {
            to: Some(early.to_owned()),
            ..Case::of(vec![not(text(&command_word, false))])
        });
        cases
    }
}

/// Every page of one search, `limit` at a time: the hits in order, and the first answer.
async fn every_page(
    app: &TestApp,
    workspace: &str,
    case: &Case,
    limit: usize,
    min_position: u64,
) -> (Vec<Value>, Value) {
    let query = case.query();
    let limit = limit.to_string();
    let min_position = min_position.to_string();
    let mut hits = Vec::new();
    let mut first: Option<Value> = None;
    let mut cursor: Option<String> = None;
    loop {
        let mut parameters = vec![
            ("q", query.as_str()),
            ("limit", limit.as_str()),
            ("min_position", min_position.as_str()),
            ("facets", "type,day"),
        ];
        if let Some(from) = &case.from {
            parameters.push(("from", from.as_str()));
        }
        if let Some(to) = &case.to {
            parameters.push(("to", to.as_str()));
        }
        if let Some(cursor) = &cursor {
            parameters.push(("cursor", cursor.as_str()));
        }
        let (status, answer) = audit(app, workspace, &parameters).await;
        assert_eq!(status, StatusCode::OK, "{query}: {answer}");
        hits.extend(answer["hits"].as_array().unwrap().iter().cloned());
        cursor = answer["next_cursor"].as_str().map(str::to_owned);
        first.get_or_insert(answer);
        if cursor.is_none() {
            return (hits, first.unwrap());
        }
    }
}

conformance! {
#[tokio::test]
async fn answers_equal_a_brute_force_filter_of_the_log() {
    let app = TestApp::spawn().await;
    let events = history(11, Scale::small());
    let head = append_all(&app, &events).await;
    let mut log = Log::default();
    let workspaces: Vec<String> = {
        let mut names: Vec<String> = log
            .up_to(&app, head)
            .await
            .iter()
            .filter_map(|event| event["workspace"].as_str().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        names
    };
    assert!(workspaces.len() >= 3);

    let mut checked = 0;
    let mut nonempty = 0;
    for workspace in &workspaces {
        let recorded = log.up_to(&app, head).await.to_vec();
        let cases = Sample::of(&recorded, workspace).cases();
        for (number, case) in cases.iter().enumerate() {
            // Most searches in one page; some a few hits at a time, to walk the cursor.
            let limit = if number % 5 == 0 { 40 } else { 1_000 };
            let (hits, answer) = every_page(&app, workspace, case, limit, head).await;
            let position = answer["position"].as_u64().unwrap();
            assert!(position >= head);
            let visible = log.up_to(&app, position).await;
            let expected: Vec<&Value> = visible
                .iter()
                .rev()
                .filter(|event| case.holds(workspace, event))
                .collect();
            let query = case.query();
            let got: Vec<u64> = hits
                .iter()
                .map(|hit| hit["position"].as_u64().unwrap())
                .collect();
            let want: Vec<u64> = expected
                .iter()
                .map(|event| event["position"].as_u64().unwrap())
                .collect();
            assert_eq!(
                got, want,
                "{workspace} `{query}` from {:?} to {:?}",
                case.from, case.to
            );
            assert_eq!(answer["total"], want.len(), "{workspace} `{query}`");
            for (hit, event) in hits.iter().zip(&expected) {
                assert_eq!(hit, *event, "hits are the recorded events exactly");
            }
            let mut per_type: BTreeMap<String, u64> = BTreeMap::new();
            let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
            for event in &expected {
                let category = event["type"].as_str().unwrap().split('.').next().unwrap();
                *per_type.entry(category.to_owned()).or_default() += 1;
                *per_day
                    .entry(event["occurred_at"].as_str().unwrap()[..10].to_owned())
                    .or_default() += 1;
            }
            assert_eq!(
                answer["facets"]["type"],
                json!(per_type),
                "{workspace} `{query}`"
            );
            assert_eq!(
                answer["facets"]["day"],
                json!(per_day),
                "{workspace} `{query}`"
            );
            checked += 1;
            nonempty += usize::from(!want.is_empty());
        }
    }
    assert!(checked >= 90, "{checked} searches checked");
    assert!(
        nonempty * 10 >= checked * 8,
        "only {nonempty} of {checked} searches found something"
    );
}
}

conformance! {
#[tokio::test]
async fn a_search_never_sees_another_workspace() {
    let app = TestApp::spawn().await;
    let head = append_all(
        &app,
        &[
            registered("ws_acme", "mch_1"),
            registered("ws_globex", "mch_1"),
            renamed("ws_globex", "mch_1", "acme-lookalike"),
        ],
    )
    .await;
    let head = head.to_string();
    for query in ["", "machine:mch_1", "actor:usr_4", "acme", "type:machine.*"] {
        let (status, answer) =
            audit(&app, "ws_acme", &[("q", query), ("min_position", &head)]).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let hits = answer["hits"].as_array().unwrap();
        assert!(!hits.is_empty(), "`{query}`");
        assert!(
            hits.iter().all(|hit| hit["workspace"] == "ws_acme"),
            "`{query}`: {answer}"
        );
    }
    let (status, answer) = audit(&app, "ws_nobody", &[("q", "machine:mch_1")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");

    // A token bound to one workspace cannot search another.
    let (token, _) = app.token(Some("ws_acme"), &["read"]).await;
    let response = app
        .client
        .get(app.url("/v1/workspaces/ws_globex/audit?q=acme"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
}

conformance! {
#[tokio::test]
async fn malformed_queries_are_refused_with_the_place() {
    let app = TestApp::spawn().await;
    append_all(&app, &[registered("ws_acme", "mch_1")]).await;
    let head = app.head().await;
    for (query, position) in [
        ("type:machine.renamed actr:usr_4", 21),
        ("machine:mch_1 \"rm -rf", 14),
        ("type:machine.exploded", 5),
        ("ip:203.0.113.0/33", 3),
        ("a - b", 2),
        ("web*", 3),
        ("host ///", 5),
        ("session:", 8),
    ] {
        let (status, answer) = audit(&app, "ws_acme", &[("q", query)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_query", "{query}");
        assert_eq!(answer["error"]["position"], position, "{query}: {answer}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    for (parameter, value) in [
        ("from", "yesterday"),
        ("limit", "0"),
        ("limit", "1001"),
        ("cursor", "not-a-cursor"),
        ("facets", "type,colour"),
        ("min_position", "-1"),
    ] {
        let (status, answer) = audit(&app, "ws_acme", &[(parameter, value)]).await;
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{parameter}={value}: {answer}"
        );
        assert_eq!(
            answer["error"]["code"], "invalid_parameter",
            "{parameter}={value}"
        );
    }
    let (status, answer) = audit(
        &app,
        "ws_acme",
        &[
            ("from", "2026-02-01T00:00:00Z"),
            ("to", "2026-01-01T00:00:00Z"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["error"]["parameter"], "to");
    assert_eq!(app.head().await, head, "refused searches record nothing");
}
}

conformance! {
#[tokio::test]
async fn a_position_the_index_does_not_reach_in_time_is_503_not_caught_up() {
    let app = TestApp::spawn().await;
    let head = append_all(&app, &[registered("ws_acme", "mch_1")]).await;
    let beyond = (head + 1_000).to_string();
    let (status, answer) = audit(&app, "ws_acme", &[("min_position", &beyond)]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["error"]["code"], "not_caught_up");
    assert_eq!(answer["error"]["position"], head);
}
}

conformance! {
#[tokio::test]
async fn every_search_is_recorded_after_its_answer_and_never_among_its_hits() {
    let app = TestApp::spawn().await;
    let head = append_all(
        &app,
        &[
            registered("ws_acme", "mch_1"),
            renamed("ws_acme", "mch_1", "web-01"),
        ],
    )
    .await;
    let (token, token_id) = app.token(Some("ws_acme"), &["read"]).await;
    let first = search_as(&app, &token, "type:machine.* web", head, "req-search-1").await;
    assert_eq!(first["total"], 1);
    let (_, stream) = app.get("/v1/workspaces/ws_acme/streams/audit-ws_acme").await;
    let records = stream["events"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{stream}");
    let record = &records[0];
    assert_eq!(record["type"], "audit.searched");
    assert_eq!(record["workspace"], "ws_acme");
    assert_eq!(
        record["data"],
        json!({"query": "type:machine.* web", "from": "2026-10-31T23:00:00.000Z", "hits": 1})
    );
    assert_eq!(
        record["actor"],
        json!({"kind": "api_token", "id": token_id, "name": "test"})
    );
    assert_eq!(record["context"]["request_id"], "req-search-1");
    assert_eq!(record["context"]["source_ip"], "127.0.0.1");
    let recorded_at = record["position"].as_u64().unwrap();
    assert!(recorded_at > first["position"].as_u64().unwrap());

    // A search for searches sees the first record, but not its own.
    let second = search_as(
        &app,
        &token,
        "type:audit.searched",
        recorded_at,
        "req-search-2",
    )
    .await;
    let hits = second["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 1, "{second}");
    assert_eq!(hits[0]["position"], recorded_at);
    let (_, stream) = app.get("/v1/workspaces/ws_acme/streams/audit-ws_acme").await;
    let own = &stream["events"][1];
    assert_eq!(own["context"]["request_id"], "req-search-2");
    assert_eq!(own["data"]["hits"], 1);
    assert!(own["position"].as_u64().unwrap() > second["position"].as_u64().unwrap());
}
}

/// Searches ws_acme (from November 2026 on) with a token and a request id.
async fn search_as(
    app: &TestApp,
    token: &str,
    query: &str,
    min_position: u64,
    request_id: &str,
) -> Value {
    let response = app
        .client
        .get(app.url("/v1/workspaces/ws_acme/audit"))
        .query(&[
            ("q", query),
            ("min_position", &min_position.to_string()),
            ("from", "2026-11-01T00:00:00+01:00"),
        ])
        .header("x-request-id", request_id)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Opens the app's store while the server is stopped, to append as if another process had.
async fn offline_store(app: &TestApp) -> Store {
    let key = app.database().with_file_name("signing-key");
    let (signer, _) = load_or_create_key_file(&key, "chronicle.test").unwrap();
    Store::open(StoreConfig::new(app.database(), signer))
        .await
        .unwrap()
}

#[tokio::test]
async fn the_index_resumes_after_a_restart_without_indexing_again_or_missing_events() {
    let mut app = TestApp::spawn().await;
    let events = history(3, Scale::small());
    let (before, after) = events.split_at(1_500);
    let head = append_all(&app, before).await;
    app.search
        .wait_for(head, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(app.search.stats().indexed_since_open, head);
    app.stop().await;

    // Events appended while no indexer runs.
    let store = offline_store(&app).await;
    let batch = after
        .iter()
        .map(|value| {
            PreparedEvent::new(
                NewEvent::from_json(value, uuid::Uuid::now_v7()).unwrap(),
                "test",
            )
        })
        .collect();
    store.append(batch).await.unwrap();
    let grown = store.head().position;
    store.shutdown().await;

    app.restart().await;
    app.search
        .wait_for(grown, Duration::from_secs(5))
        .await
        .unwrap();
    let stats = app.search.stats();
    assert_eq!(
        stats.indexed_since_open,
        grown - head,
        "only the new events were indexed"
    );
    assert_eq!(stats.documents, grown, "one document per event, none twice");

    // The events appended while it was down are found.
    let (from_end, last) = after
        .iter()
        .rev()
        .enumerate()
        .find(|(_, event)| event["workspace"].is_string())
        .unwrap();
    let workspace = last["workspace"].as_str().unwrap();
    let query = format!("stream:{}", last["stream"].as_str().unwrap());
    let (status, answer) = audit(&app, workspace, &[("q", &query), ("limit", "1")]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        answer["hits"][0]["position"],
        grown - from_end as u64,
        "{answer}"
    );
}

conformance! {
#[tokio::test]
async fn a_rebuild_gives_the_same_answers() {
    let app = TestApp::spawn().await;
    let head = append_all(&app, &history(5, Scale::small())).await;
    app.search
        .wait_for(head, Duration::from_secs(5))
        .await
        .unwrap();
    let workspace = app
        .read_all()
        .await
        .iter()
        .find_map(|event| event["workspace"].as_str().map(str::to_owned))
        .unwrap();
    let before = same_questions(&app, &workspace).await;
    assert!(before.iter().all(|answer| answer.position == head));
    assert!(before.iter().skip(2).any(|answer| answer.total > 0));

    let indexed = app.search.stats().indexed_since_open;
    assert_eq!(app.search.rebuild().await.unwrap(), head);
    let stats = app.search.stats();
    assert_eq!(
        stats.indexed_since_open,
        indexed + head,
        "every event indexed again"
    );
    assert_eq!(stats.documents, head);
    assert_eq!(same_questions(&app, &workspace).await, before);
}
}

/// Asks the index (not the API, so the log does not grow) a fixed set of questions.
async fn same_questions(app: &TestApp, workspace: &str) -> Vec<chronicle_search::SearchResults> {
    let mut answers = Vec::new();
    for query in [
        "",
        "type:machine.*",
        "-type:session.* ip:203.0.113.0/24",
        "type:session.input_sent",
        "succeeded",
    ] {
        for limit in [1_000, 7] {
            let request = SearchRequest {
                workspace: workspace.to_owned(),
                query: AuditQuery::parse(query).unwrap(),
                from: None,
                to: None,
                limit,
                cursor: None,
                facets: FacetRequest {
                    types: true,
                    days: true,
                },
            };
            answers.push(app.search.search(request).await.unwrap());
        }
    }
    answers
}
