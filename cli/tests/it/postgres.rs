//! Two `chronicle serve` processes on one PostgreSQL database, as two API nodes: producers race
//! on both, a follower streams one workspace live from the second node, and afterwards the log
//! is 1..N with no gap or duplicate, both nodes read it whole, and every node's machine
//! inventory equals the fold of the log.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::sync::mpsc;

use chronicle_domain::RecordedEvent;
use chronicle_domain::models::fold;
use chronicle_domain::models::machines::Machines;
use serde_json::{Value, json};

use crate::commands::{Server, admin_token, small_history};

const PRODUCERS: usize = 8;
const FOLLOWED: &str = "ws_acme";

fn read_log(client: &reqwest::blocking::Client, url: &str, token: &str) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page: Value = client
            .get(format!("{url}/v1/events?after={after}&limit=1000"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let batch: Vec<RecordedEvent> = serde_json::from_value(page["events"].clone()).unwrap();
        let Some(last) = batch.last() else {
            return events;
        };
        after = last.position;
        events.extend(batch);
    }
}

#[test]
fn two_processes_on_one_postgres_database_stay_gap_free_and_project_exactly() {
    let server = chronicle_store::testing::postgres();
    let database = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(server.fresh_database());
    let directory = tempfile::tempdir().unwrap();
    let key = directory.path().join("signing-key");
    let nodes: Vec<(Server, String)> = ["a", "b"]
        .iter()
        .map(|name| {
            let data = directory.path().join(name);
            let node = Server::start(&[
                "serve",
                "--data",
                data.to_str().unwrap(),
                "--database-url",
                &database,
                "--signing-key",
                key.to_str().unwrap(),
            ]);
            (node, admin_token(&data))
        })
        .collect();
    let client = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();

    let events = small_history();
    // A move is recorded twice: in the workspace it leaves, and as its arrival where it goes.
    let arrivals = |into: Option<&str>| {
        events
            .iter()
            .filter(|event| event["type"] == "machine.moved")
            .filter(|event| into.is_none_or(|into| event["data"]["to_workspace"] == into))
            .count() as u64
    };
    let followed_total = events
        .iter()
        .filter(|event| event["workspace"] == FOLLOWED)
        .count() as u64
        + arrivals(Some(FOLLOWED));
    assert!(followed_total > 100);

    // The followed workspace exists once its first event is in: everything up to it goes first.
    let first_followed = events
        .iter()
        .position(|event| event["workspace"] == FOLLOWED)
        .unwrap();
    let (prelude, events_after) = events.split_at(first_followed + 1);
    let response = client
        .post(format!("{}/v1/events", nodes[0].0.url))
        .bearer_auth(&nodes[0].1)
        .json(&json!({ "events": prelude }))
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().unwrap());

    // The follower: node b's live stream of one workspace, from the start.
    let (seen_sender, seen) = mpsc::channel();
    let follower = {
        let response = client
            .get(format!(
                "{}/v1/workspaces/{FOLLOWED}/live?after=0",
                nodes[1].0.url
            ))
            .bearer_auth(&nodes[1].1)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        std::thread::spawn(move || {
            let mut last_seq = 0;
            for line in BufReader::new(response).lines() {
                let line = line.expect("the stream stays open");
                let Some(data) = line.strip_prefix("data: ") else {
                    continue;
                };
                let event: Value = serde_json::from_str(data).unwrap();
                let seq = event["workspace_seq"].as_u64().unwrap();
                assert_eq!(seq, last_seq + 1, "the live follower skipped or repeated");
                last_seq = seq;
                if seq == followed_total {
                    break;
                }
            }
            seen_sender.send(last_seq).unwrap();
        })
    };

    std::thread::scope(|scope| {
        for producer in 0..PRODUCERS {
            let mine: Vec<Value> = events_after
                .iter()
                .skip(producer)
                .step_by(PRODUCERS)
                .cloned()
                .collect();
            let (nodes, client) = (&nodes, &client);
            scope.spawn(move || {
                for (index, batch) in mine.chunks(1 + producer % 5).enumerate() {
                    let (node, token) = &nodes[(producer + index) % 2];
                    let response = client
                        .post(format!("{}/v1/events", node.url))
                        .bearer_auth(token)
                        .json(&json!({ "events": batch }))
                        .send()
                        .unwrap();
                    assert_eq!(response.status(), 200, "{}", response.text().unwrap());
                }
            });
        }
    });
    assert_eq!(seen.recv().unwrap(), followed_total);
    follower.join().unwrap();

    let total = events.len() as u64 + arrivals(None);
    let log = read_log(&client, &nodes[0].0.url, &nodes[0].1);
    let positions: Vec<u64> = log.iter().map(|event| event.position).collect();
    assert_eq!(positions, (1..=total).collect::<Vec<_>>());
    assert_eq!(read_log(&client, &nodes[1].0.url, &nodes[1].1), log);

    let expected: BTreeMap<String, Value> = fold::<Machines>(&log)
        .into_values()
        .map(|row| serde_json::to_value(row).unwrap())
        .filter(|row| row["workspace"] == FOLLOWED)
        .map(|row| (row["id"].as_str().unwrap().to_owned(), row))
        .collect();
    assert!(!expected.is_empty());
    for (node, token) in &nodes {
        let answer: Value = client
            .get(format!(
                "{}/v1/workspaces/{FOLLOWED}/machines?min_position={total}&limit=1000",
                node.url
            ))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let machines: BTreeMap<String, Value> = answer["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| (row["id"].as_str().unwrap().to_owned(), row.clone()))
            .collect();
        assert!(
            machines == expected,
            "node {} differs from the fold",
            node.url
        );
    }
}
