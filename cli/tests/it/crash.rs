//! Crash safety: the real `chronicle serve`, with many producers appending over HTTP, killed
//! with SIGKILL at random moments and restarted, round after round.
//!
//! After every kill the harness checks what an auditor relies on: every event whose append was
//! answered 200 is in the log at the position it was given, with the same leaf hash (recomputed
//! here from the event itself); a batch whose answer never came is all there or not there at all;
//! positions are gap-free 1..N; `chronicle verify --data` passes on the crashed directory; and
//! after the restart the read models and the audit search index catch up to exactly the log.
//!
//! `CHRONICLE_CRASH_ROUNDS=N` runs N rounds (default 5); `CHRONICLE_CRASH_SEED=S` replays a seed.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chronicle_domain::{canonical_json, leaf_hash, merkle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::commands::{Server, admin_token, run, text};

const WORKSPACES: [&str; 3] = ["ws_crash_a", "ws_crash_b", "ws_crash_c"];
const PRODUCERS: usize = 8;
/// The longest any wait for the server may take before the harness calls it a failure.
const DEADLINE: Duration = Duration::from_secs(30);

/// One append request as a producer sent it.
#[derive(Debug, Clone)]
struct Batch {
    events: Vec<Value>,
}

impl Batch {
    fn ids(&self) -> impl Iterator<Item = &str> {
        self.events
            .iter()
            .map(|event| event["id"].as_str().unwrap())
    }
}

/// What the producers know: every acknowledged event, and every batch whose answer was lost.
#[derive(Debug, Default)]
struct Ledger {
    /// Event id → the position its 200 answer gave, and the event as sent.
    acknowledged: HashMap<String, (u64, Value)>,
    /// Batches sent without a 200 answer (the connection died, or a 429/503): each must turn up
    /// whole or not at all.
    in_doubt: Vec<Batch>,
    /// Acknowledgements this round, which the kill waits for.
    acknowledged_this_round: usize,
    idempotent_retries: usize,
}

struct Shared {
    ledger: Mutex<Ledger>,
    progress: Condvar,
    stop: AtomicBool,
}

/// Figures of one run, printed at the end.
#[derive(Debug, Default)]
struct Tally {
    rounds: usize,
    batches_in_doubt_committed: usize,
    batches_in_doubt_absent: usize,
}

fn rounds() -> usize {
    std::env::var("CHRONICLE_CRASH_ROUNDS")
        .ok()
        .map(|text| text.parse().expect("CHRONICLE_CRASH_ROUNDS is a number"))
        .unwrap_or(5)
}

fn seed() -> u64 {
    std::env::var("CHRONICLE_CRASH_SEED")
        .ok()
        .map(|text| text.parse().expect("CHRONICLE_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// A `machine.registered` event for a machine of its own, so the machines read model must hold
/// exactly one row per such event in the log.
fn registration(rng: &mut StdRng) -> Value {
    let id = uuid::Builder::from_random_bytes(rng.r#gen()).into_uuid();
    let machine = format!("mch_{}", id.simple());
    json!({
        "id": id.to_string(),
        "stream": format!("machine-{machine}"),
        "type": "machine.registered",
        "workspace": WORKSPACES[rng.gen_range(0..WORKSPACES.len())],
        "occurred_at": "2026-11-24T03:50:26.123Z",
        "actor": {"kind": "agent", "id": "agt_crash", "name": "crash harness"},
        "data": {"name": machine, "hostname": format!("{machine}.crash.test"), "os": "linux",
                 "os_version": "6.8", "arch": "x86_64", "agent_version": "1.4.2"}
    })
}

/// Posts a batch; answers the positions of a 200, or `None` for any other outcome.
fn post(client: &Client, url: &str, token: &str, batch: &Batch) -> Option<Vec<u64>> {
    let response = client
        .post(format!("{url}/v1/events"))
        .bearer_auth(token)
        .json(&json!({"events": batch.events}))
        .send()
        .ok()?;
    let status = response.status().as_u16();
    assert!(
        matches!(status, 200 | 429 | 503),
        "an append answered {status}: {}",
        response.text().unwrap_or_default()
    );
    if status != 200 {
        return None;
    }
    let body: Value = response.json().ok()?;
    Some(
        body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|appended| appended["position"].as_u64().unwrap())
            .collect(),
    )
}

/// Appends single events and batches until told to stop; now and then sends an acknowledged
/// batch again, which must answer the first positions.
fn produce(shared: &Shared, url: &str, token: &str, mut rng: StdRng) {
    let client = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    while !shared.stop.load(Ordering::Acquire) {
        let size = if rng.gen_bool(0.5) {
            1
        } else {
            rng.gen_range(2..=40)
        };
        let batch = Batch {
            events: (0..size).map(|_| registration(&mut rng)).collect(),
        };
        let Some(positions) = post(&client, url, token, &batch) else {
            shared.ledger.lock().unwrap().in_doubt.push(batch);
            continue;
        };
        let mut ledger = shared.ledger.lock().unwrap();
        for (event, position) in batch.events.iter().zip(&positions) {
            let id = event["id"].as_str().unwrap().to_owned();
            ledger.acknowledged.insert(id, (*position, event.clone()));
        }
        ledger.acknowledged_this_round += positions.len();
        drop(ledger);
        shared.progress.notify_all();
        if rng.gen_bool(0.1)
            && let Some(again) = post(&client, url, token, &batch)
        {
            assert_eq!(again, positions, "an idempotent retry moved the events");
            shared.ledger.lock().unwrap().idempotent_retries += 1;
        }
    }
}

/// Polls `/readyz` until it answers 200, within the deadline.
fn wait_ready(client: &Client, url: &str) {
    let started = Instant::now();
    loop {
        if let Ok(response) = client.get(format!("{url}/readyz")).send()
            && response.status() == 200
        {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "{url} was not ready within {DEADLINE:?}"
        );
        std::thread::yield_now();
    }
}

fn get(client: &Client, url: &str, token: &str, path: &str) -> Value {
    let response = client
        .get(format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .unwrap();
    let status = response.status();
    let body: Value = response.json().unwrap();
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

/// Reads the whole log, page by page.
fn read_log(client: &Client, url: &str, token: &str) -> Vec<Value> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = get(
            client,
            url,
            token,
            &format!("/v1/events?after={after}&limit=1000"),
        );
        let batch = page["events"].as_array().unwrap();
        if batch.is_empty() {
            return events;
        }
        after = page["next"].as_u64().unwrap();
        events.extend(batch.iter().cloned());
    }
}

/// Returns the leaf hash of a recorded event as CONTRACT.md defines it, in hex.
fn recomputed_leaf_hash(event: &Value) -> String {
    let mut without = event.clone();
    without.as_object_mut().unwrap().remove("leaf_hash");
    merkle::to_hex(&leaf_hash(&canonical_json(&without).unwrap()))
}

/// Checks the log against the ledger after a crash and answers the log by event id. Batches in
/// doubt are settled: each must be whole or absent, and is then sent again and acknowledged.
fn check_log(
    client: &Client,
    url: &str,
    token: &str,
    shared: &Shared,
    tally: &mut Tally,
) -> Vec<Value> {
    let log = read_log(client, url, token);
    for (index, event) in log.iter().enumerate() {
        assert_eq!(
            event["position"],
            index as u64 + 1,
            "positions are not gap-free"
        );
        assert_eq!(
            event["leaf_hash"].as_str().unwrap(),
            recomputed_leaf_hash(event),
            "position {}: the leaf hash does not match the event",
            index + 1
        );
    }
    let by_id: HashMap<&str, &Value> = log
        .iter()
        .map(|event| (event["id"].as_str().unwrap(), event))
        .collect();
    let mut ledger = shared.ledger.lock().unwrap();
    for (id, (position, sent)) in &ledger.acknowledged {
        let recorded = by_id
            .get(id.as_str())
            .unwrap_or_else(|| panic!("acknowledged event {id} (position {position}) was lost"));
        assert_eq!(
            recorded["position"], *position,
            "acknowledged event {id} moved"
        );
        for field in ["stream", "type", "workspace", "data", "actor"] {
            assert_eq!(recorded[field], sent[field], "event {id}: {field} changed");
        }
    }
    let in_doubt = std::mem::take(&mut ledger.in_doubt);
    drop(ledger);
    for batch in in_doubt {
        let present: Vec<&Value> = batch
            .ids()
            .filter_map(|id| by_id.get(id).copied())
            .collect();
        assert!(
            present.is_empty() || present.len() == batch.events.len(),
            "an unacknowledged batch is half-present: {} of {} events",
            present.len(),
            batch.events.len()
        );
        let positions = post(client, url, token, &batch).expect("a retry after the restart");
        if present.is_empty() {
            tally.batches_in_doubt_absent += 1;
        } else {
            tally.batches_in_doubt_committed += 1;
            let recorded: Vec<u64> = present
                .iter()
                .map(|event| event["position"].as_u64().unwrap())
                .collect();
            assert_eq!(
                positions, recorded,
                "the retry of a committed batch answered other positions"
            );
        }
        let mut ledger = shared.ledger.lock().unwrap();
        for (event, position) in batch.events.iter().zip(positions) {
            let id = event["id"].as_str().unwrap().to_owned();
            ledger.acknowledged.insert(id, (position, event.clone()));
        }
    }
    let ledger = shared.ledger.lock().unwrap();
    let settled = read_log(client, url, token);
    for event in &settled {
        let id = event["id"].as_str().unwrap();
        assert!(
            ledger.acknowledged.contains_key(id) || event["type"] == "audit.searched",
            "position {} holds event {id}, which no producer sent",
            event["position"]
        );
    }
    settled
}

/// Checks that the machines read model and the audit search index of every workspace reflect
/// exactly the log of `log.len()` events.
fn check_derived(client: &Client, url: &str, token: &str, log: &[Value]) {
    let head = log.len() as u64;
    for workspace in WORKSPACES {
        let in_workspace: Vec<&Value> = log
            .iter()
            .filter(|event| event["workspace"] == workspace)
            .collect();
        let expected: HashSet<&str> = in_workspace
            .iter()
            .filter(|event| event["type"] == "machine.registered")
            .map(|event| event["data"]["name"].as_str().unwrap())
            .collect();
        let mut machines = HashSet::new();
        let mut cursor = String::new();
        loop {
            let page = get(
                client,
                url,
                token,
                &format!(
                    "/v1/workspaces/{workspace}/machines?min_position={head}&limit=1000{cursor}"
                ),
            );
            assert!(page["position"].as_u64().unwrap() >= head, "{page}");
            for item in page["items"].as_array().unwrap() {
                machines.insert(item["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => break,
            }
        }
        let machines: HashSet<&str> = machines.iter().map(String::as_str).collect();
        assert_eq!(
            machines, expected,
            "{workspace}: the machines read model differs from the log"
        );

        let answer = get(
            client,
            url,
            token,
            &format!("/v1/workspaces/{workspace}/audit?q=&limit=1&min_position={head}"),
        );
        assert!(answer["position"].as_u64().unwrap() >= head, "{answer}");
        assert_eq!(
            answer["total"],
            in_workspace.len(),
            "{workspace}: the search index differs from the log"
        );
    }
}

/// Runs producers against a fresh server until `threshold` events are acknowledged this round,
/// then kills the server with SIGKILL while they are still appending.
fn crash_round(data: &Path, shared: &Arc<Shared>, rng: &mut StdRng, threshold: usize) {
    let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
    let token = admin_token(data);
    wait_ready(&Client::new(), &server.url);
    {
        let mut ledger = shared.ledger.lock().unwrap();
        ledger.acknowledged_this_round = 0;
    }
    shared.stop.store(false, Ordering::Release);
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let shared = Arc::clone(shared);
            let url = server.url.clone();
            let token = token.clone();
            let producer_rng = StdRng::seed_from_u64(rng.r#gen());
            std::thread::spawn(move || produce(&shared, &url, &token, producer_rng))
        })
        .collect();
    let ledger = shared.ledger.lock().unwrap();
    let (ledger, timeout) = shared
        .progress
        .wait_timeout_while(ledger, DEADLINE, |ledger| {
            ledger.acknowledged_this_round < threshold
        })
        .unwrap();
    assert!(
        !timeout.timed_out(),
        "only {} of {threshold} events were acknowledged within {DEADLINE:?}",
        ledger.acknowledged_this_round
    );
    drop(ledger);
    server.kill();
    shared.stop.store(true, Ordering::Release);
    for producer in producers {
        producer.join().expect("a producer failed");
    }
}

#[test]
fn acknowledged_events_survive_sigkill_and_the_log_stays_whole() {
    let seed = seed();
    let rounds = rounds();
    eprintln!(
        "crash harness: seed {seed} (CHRONICLE_CRASH_SEED={seed} replays it), {rounds} rounds"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let client = Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let shared = Arc::new(Shared {
        ledger: Mutex::new(Ledger::default()),
        progress: Condvar::new(),
        stop: AtomicBool::new(false),
    });
    let mut tally = Tally::default();
    let mut log = Vec::new();
    for _ in 0..rounds {
        let threshold = rng.gen_range(20..=400);
        crash_round(&data, &shared, &mut rng, threshold);

        // The directory as the crash left it, before any restart recovers it.
        let output = run(&["verify", "--data", data.to_str().unwrap()]);
        assert!(
            output.status.success(),
            "verify --data after a crash: {}",
            text(&output)
        );

        let server = Server::start(&["serve", "--data", data.to_str().unwrap()]);
        wait_ready(&client, &server.url);
        let token = admin_token(&data);
        log = check_log(&client, &server.url, &token, &shared, &mut tally);
        check_derived(&client, &server.url, &token, &log);
        tally.rounds += 1;
        assert!(server.stop().success(), "SIGTERM stops the server cleanly");
    }
    let ledger = shared.ledger.lock().unwrap();
    eprintln!(
        "crash harness: {} rounds survived; {} acknowledged events checked in a log of {}; \
         {} batches in doubt ({} committed whole, {} absent); {} idempotent retries",
        tally.rounds,
        ledger.acknowledged.len(),
        log.len(),
        tally.batches_in_doubt_committed + tally.batches_in_doubt_absent,
        tally.batches_in_doubt_committed,
        tally.batches_in_doubt_absent,
        ledger.idempotent_retries
    );
    assert!(
        ledger.acknowledged.len() >= rounds * 20,
        "the producers appended too little to prove anything"
    );
}
