//! Projections: rebuild throughput of every read model over a generated history (beside the
//! floor of reading and decoding the same log), and the latency of the machine-inventory list
//! with filters at 10,000 machines (beside the same list unfiltered).
//!
//! Run: `CHRONICLE_BENCH_EVENTS=1000000 CHRONICLE_BENCH_DIR=/tmp/chronicle-bench cargo bench -p
//! chronicle-benches --bench projections`. The directory keeps the built stores between runs.

use std::path::Path;
use std::time::{Duration, Instant};

// Linked for the server's allocator, which it sets (see `chronicle_benches`).
use chronicle_benches as _;
use chronicle_domain::{NewEvent, PreparedEvent};
use chronicle_fixtures::{HistoryGenerator, Scale};
use chronicle_projections::{Filters, Model, PageRequest, Projections, ProjectionsConfig};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use tokio::runtime::Runtime;
use uuid::Uuid;

const BATCH: usize = 5_000;
const MACHINES: usize = 10_000;

async fn open_store(directory: &Path, name: &str) -> Store {
    let (signer, _) =
        load_or_create_key_file(&directory.join("signing-key"), "chronicle.bench").unwrap();
    Store::open(StoreConfig::new(directory.join(name), signer))
        .await
        .unwrap()
}

async fn append_all(store: &Store, events: impl Iterator<Item = Value>) {
    let mut events = events.peekable();
    while events.peek().is_some() {
        let batch: Vec<PreparedEvent> = events
            .by_ref()
            .take(BATCH)
            .map(|value| {
                PreparedEvent::new(
                    NewEvent::from_json(&value, Uuid::now_v7()).unwrap(),
                    "bench",
                )
            })
            .collect();
        store.append(batch).await.unwrap();
    }
}

/// Rebuilds every model from the whole log, and reads and decodes the same log (the floor).
fn rebuild(runtime: &Runtime, directory: &Path, events: usize) {
    let store = runtime.block_on(open_store(directory, &format!("projections-{events}.db")));
    if store.head().position == 0 {
        let started = Instant::now();
        runtime.block_on(append_all(
            &store,
            HistoryGenerator::new(3, Scale::with_events(events)),
        ));
        eprintln!(
            "built {} events in {:.1}s",
            store.head().position,
            started.elapsed().as_secs_f64()
        );
    }
    let head = store.head().position;
    let projections = runtime
        .block_on(Projections::open(
            store.clone(),
            ProjectionsConfig::default(),
        ))
        .unwrap();
    for round in 1..=2 {
        let started = Instant::now();
        let mut after = 0;
        while let Some(last) = runtime
            .block_on(store.read_all(after, BATCH as u32))
            .unwrap()
            .last()
        {
            after = last.position;
        }
        let floor = started.elapsed().as_secs_f64();
        let started = Instant::now();
        runtime
            .block_on(projections.rebuild(&Model::ALL, |_| {}))
            .unwrap();
        let rebuild = started.elapsed().as_secs_f64();
        eprintln!(
            "round {round}: rebuild of all models over {head} events: {rebuild:.2}s = {:.0} events/s; \
             reading and decoding the log alone: {floor:.2}s = {:.0} events/s; ratio {:.1}×",
            head as f64 / rebuild,
            head as f64 / floor,
            rebuild / floor
        );
    }
    runtime.block_on(store.shutdown());
}

/// 10,000 machines in one workspace: registered with a spread of os, tags and presence.
fn inventory() -> impl Iterator<Item = Value> {
    let statuses = ["online", "offline", "degraded", "starting"];
    let systems = ["linux", "windows", "macos"];
    let tags = ["prod", "staging", "ci", "eu", "us", "gpu", "db", "web"];
    (0..MACHINES).flat_map(move |n| {
        let machine = format!("mch_{n:05}");
        let envelope = |event_type: &str, data: Value| {
            json!({
                "stream": format!("machine-{machine}"), "type": event_type, "workspace": "ws_big",
                "occurred_at": "2026-11-24T03:50:26.123Z",
                "actor": {"kind": "member", "id": format!("usr_{}", n % 40)}, "data": data
            })
        };
        [
            envelope(
                "machine.registered",
                json!({"name": format!("host-{n}"), "hostname": format!("host-{n}.big.test"),
                       "os": systems[n % 3], "os_version": "1", "arch": "x86_64",
                       "agent_version": "2.4.1",
                       "tags": [tags[n % 8], tags[(n / 8) % 8]]}),
            ),
            envelope(
                "machine.presence_changed",
                json!({"status": statuses[(n / 3) % 4]}),
            ),
        ]
    })
}

fn list_latency(c: &mut Criterion, runtime: &Runtime, directory: &Path) {
    let store = runtime.block_on(open_store(directory, "inventory-10k.db"));
    if store.head().position == 0 {
        runtime.block_on(append_all(&store, inventory()));
    }
    let projections = runtime
        .block_on(Projections::open(
            store.clone(),
            ProjectionsConfig::default(),
        ))
        .unwrap();
    runtime.block_on(projections.catch_up()).unwrap();
    let page = PageRequest {
        limit: 50,
        cursor: None,
    };
    let cases = [
        ("unfiltered (floor)", Filters::default()),
        (
            "status=online",
            Filters {
                status: Some("online".into()),
                ..Filters::default()
            },
        ),
        (
            "os=linux&tag=gpu",
            Filters {
                os: Some("linux".into()),
                tag: Some("gpu".into()),
                ..Filters::default()
            },
        ),
        (
            "status=degraded&q=host-99",
            Filters {
                status: Some("degraded".into()),
                q: Some("host-99".into()),
                ..Filters::default()
            },
        ),
    ];
    let mut group = c.benchmark_group("machine_inventory_10k");
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(5));
    for (name, filters) in &cases {
        let mut times: Vec<Duration> = (0..2_000)
            .map(|_| {
                let started = Instant::now();
                runtime
                    .block_on(projections.list(Model::Machines, "ws_big", filters, &page, None))
                    .unwrap();
                started.elapsed()
            })
            .collect();
        times.sort();
        eprintln!(
            "machines list {name}: p50 {:?}, p99 {:?}",
            times[times.len() / 2],
            times[times.len() * 99 / 100]
        );
        group.bench_function(*name, |b| {
            b.iter(|| {
                runtime
                    .block_on(projections.list(Model::Machines, "ws_big", filters, &page, None))
                    .unwrap()
            })
        });
    }
    group.finish();
    runtime.block_on(store.shutdown());
}

fn projections(c: &mut Criterion) {
    let events: usize = std::env::var("CHRONICLE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let temporary = tempfile::tempdir().unwrap();
    let directory = std::env::var("CHRONICLE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| temporary.path().to_owned());
    std::fs::create_dir_all(&directory).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    list_latency(c, &runtime, &directory);
    rebuild(&runtime, &directory, events);
}

criterion_group!(benches, projections);
criterion_main!(benches);
