//! Audit search: indexing throughput and query latency of Chronicle's tantivy index beside
//! SQLite FTS5, both building their index from the same log and answering the same questions
//! (the newest 50 hits of one workspace, with the total).
//!
//! Both builds read the log through `Store::read_all` in pages of 2,000 and index what
//! `chronicle_search::terms::EventTerms` extracts from each event; FTS5 gets one column per
//! field (the contract's CIDR `ip:` has no FTS5 equivalent and is left out of the comparison).
//! Query latencies are sampled 300 times each after a warm-up and reported as p50/p99, then
//! criterion measures the same queries.
//!
//! Run: `CHRONICLE_BENCH_EVENTS=1000000 CHRONICLE_BENCH_DIR=/tmp/chronicle-bench cargo bench -p
//! chronicle-benches --bench search` (the store of N events is built once and kept in
//! CHRONICLE_BENCH_DIR; each run builds both indexes afresh beside it). With
//! `CHRONICLE_BENCH_INDEX_THREADS=N` the tantivy writer has N threads of 20 MiB each instead of
//! the server's default (BENCHMARKS.md, run J).

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chronicle_benches::{EventPool, IdKind};
use chronicle_search::terms::EventTerms;
use chronicle_search::{AuditQuery, FacetRequest, SearchConfig, SearchIndex, SearchRequest};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig};
use criterion::{Criterion, criterion_group, criterion_main};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite, SqliteConnection};

const APPEND_BATCH: usize = 5_000;
const READ_PAGE: u32 = 2_000;
const SAMPLES: usize = 300;
const PAGE: usize = 50;

/// One question, as Chronicle's query and as an FTS5 MATCH expression.
struct Question {
    name: String,
    broad: bool,
    chronicle: String,
    fts5: String,
}

fn search(c: &mut Criterion) {
    let events: u64 = std::env::var("CHRONICLE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let temporary = tempfile::tempdir().unwrap();
    let directory: std::path::PathBuf = std::env::var("CHRONICLE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| temporary.path().to_owned());
    std::fs::create_dir_all(&directory).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(log_of(&directory, events));

    // What both builds share: reading the log and extracting each event's terms.
    let started = Instant::now();
    let read = runtime.block_on(read_log(&store));
    let reading = started.elapsed();
    assert_eq!(read, events);

    // Both indexes, built from the same log.
    let index_directory = directory.join(format!("search-index-{events}"));
    let _ = std::fs::remove_dir_all(&index_directory);
    let mut config = SearchConfig {
        directory: Some(index_directory.clone()),
        ..SearchConfig::default()
    };
    if let Ok(threads) = std::env::var("CHRONICLE_BENCH_INDEX_THREADS") {
        let threads: usize = threads
            .parse()
            .expect("CHRONICLE_BENCH_INDEX_THREADS is a number of threads");
        config.writer_threads = threads;
        config.writer_memory_bytes = threads * 20 * 1024 * 1024;
    }
    let started = Instant::now();
    let index = runtime.block_on(async {
        let index = SearchIndex::open(store.clone(), config).await.unwrap();
        index
            .wait_for(events, Duration::from_secs(24 * 3600))
            .await
            .unwrap();
        index
    });
    let chronicle_build = started.elapsed();

    let fts5_path = directory.join(format!("fts5-{events}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", fts5_path.display()));
    }
    let started = Instant::now();
    let mut fts5 = runtime.block_on(build_fts5(&store, &fts5_path));
    let fts5_build = started.elapsed();
    let rate = |elapsed: Duration| events as f64 / elapsed.as_secs_f64();
    eprintln!(
        "reading {events} events and extracting their terms, no index: {:.1}s = {:.0} events/s",
        reading.as_secs_f64(),
        rate(reading)
    );
    eprintln!(
        "indexing {events} events: chronicle (tantivy) {:.1}s = {:.0} events/s; SQLite FTS5 {:.1}s = {:.0} events/s; ratio {:.2}",
        chronicle_build.as_secs_f64(),
        rate(chronicle_build),
        fts5_build.as_secs_f64(),
        rate(fts5_build),
        rate(chronicle_build) / rate(fts5_build),
    );

    let (workspace, questions) = runtime.block_on(questions(&store, events));
    eprintln!("questions over workspace {workspace} (newest {PAGE}, with the total):");
    for question in &questions {
        let chronicle = percentiles(|| {
            runtime.block_on(chronicle_answer(&index, &workspace, &question.chronicle))
        });
        let sqlite =
            percentiles(|| runtime.block_on(fts5_answer(&mut fts5, &workspace, &question.fts5)));
        eprintln!(
            "  {:<28} {:<6} chronicle p50 {:>8.3} ms p99 {:>8.3} ms ({} hits) | fts5 p50 {:>8.3} ms p99 {:>8.3} ms ({} hits)",
            question.name,
            if question.broad { "broad" } else { "select" },
            chronicle.0,
            chronicle.1,
            chronicle.2,
            sqlite.0,
            sqlite.1,
            sqlite.2,
        );
    }

    let mut group = c.benchmark_group(format!("audit_search_{events}"));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for question in &questions {
        group.bench_function(format!("chronicle/{}", question.name), |b| {
            b.iter(|| runtime.block_on(chronicle_answer(&index, &workspace, &question.chronicle)))
        });
        group.bench_function(format!("fts5/{}", question.name), |b| {
            b.iter(|| runtime.block_on(fts5_answer(&mut fts5, &workspace, &question.fts5)))
        });
    }
    group.finish();
    runtime.block_on(async {
        index.shutdown().await;
        store.shutdown().await;
    });
}

/// Opens (and fills, the first time) a store of `events` realistic events.
async fn log_of(directory: &std::path::Path, events: u64) -> Store {
    let (signer, _) =
        load_or_create_key_file(&directory.join("signing-key"), "chronicle.bench").unwrap();
    let store = Store::open(StoreConfig::new(
        directory.join(format!("search-{events}.db")),
        signer,
    ))
    .await
    .unwrap();
    let mut position = store.head().position;
    if position < events {
        let mut pool = EventPool::new(200_000, IdKind::TimeOrdered);
        let started = Instant::now();
        while position < events {
            let batch = pool.next_batch(APPEND_BATCH.min((events - position) as usize));
            position = store.append(batch).await.unwrap().last().unwrap().position;
        }
        eprintln!(
            "built a log of {events} events in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    store
}

/// Reads the whole log as both builds do and extracts each event's terms; answers the count.
async fn read_log(store: &Store) -> u64 {
    let mut after = 0;
    let mut count = 0;
    loop {
        let events = store.read_all(after, READ_PAGE).await.unwrap();
        let Some(last) = events.last() else {
            return count;
        };
        after = last.position;
        for event in &events {
            std::hint::black_box(EventTerms::from_event(event));
        }
        count += events.len() as u64;
    }
}

/// Builds an FTS5 index of the log: one row per event, rowid = position, one column per field.
async fn build_fts5(store: &Store, path: &std::path::Path) -> SqliteConnection {
    let mut connection = SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .pragma("cache_size", "-65536")
        .connect()
        .await
        .unwrap();
    sqlx::query(
        "CREATE VIRTUAL TABLE audit USING fts5(workspace, type, actor, machine, session, \
         schedule, stream, request, words)",
    )
    .execute(&mut connection)
    .await
    .unwrap();
    let mut after = 0;
    loop {
        let events = store.read_all(after, READ_PAGE).await.unwrap();
        let Some(last) = events.last() else {
            break;
        };
        after = last.position;
        let mut transaction = connection.begin().await.unwrap();
        for chunk in events.chunks(500) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO audit (rowid, workspace, type, actor, machine, session, schedule, \
                 stream, request, words) ",
            );
            insert.push_values(chunk, |mut row, event| {
                let terms = EventTerms::from_event(event);
                row.push_bind(terms.position as i64)
                    .push_bind(workspace_token(
                        terms.workspace.as_deref().unwrap_or_default(),
                    ))
                    .push_bind(terms.types[0].clone())
                    .push_bind(terms.actors.join(" "))
                    .push_bind(terms.machines.join(" "))
                    .push_bind(terms.sessions.join(" "))
                    .push_bind(terms.schedules.join(" "))
                    .push_bind(terms.stream)
                    .push_bind(terms.request.unwrap_or_default())
                    .push_bind(terms.words.join("\n"));
            });
            insert.build().execute(&mut *transaction).await.unwrap();
        }
        transaction.commit().await.unwrap();
    }
    connection
}

/// Picks the busiest workspace and, in it, values to ask about, from the first pool of events.
async fn questions(store: &Store, events: u64) -> (String, Vec<Question>) {
    let mut per_workspace: HashMap<String, usize> = HashMap::new();
    let mut seen = Vec::new();
    let mut after = 0;
    while after < events.min(200_000) {
        let page = store.read_all(after, READ_PAGE).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.position;
        for event in page {
            if let Some(workspace) = &event.workspace {
                *per_workspace.entry(workspace.clone()).or_default() += 1;
            }
            seen.push(EventTerms::from_event(&event));
        }
    }
    let workspace = per_workspace
        .into_iter()
        .max_by_key(|(name, count)| (*count, name.clone()))
        .unwrap()
        .0;
    let mine: Vec<&EventTerms> = seen
        .iter()
        .filter(|terms| terms.workspace.as_deref() == Some(workspace.as_str()))
        .collect();
    let median = |values: Vec<String>| {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for value in values {
            *counts.entry(value).or_default() += 1;
        }
        let mut counts: Vec<(String, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        counts[counts.len() / 2].0.clone()
    };
    let actor = median(mine.iter().map(|terms| terms.actors[0].clone()).collect());
    let machine = median(
        mine.iter()
            .flat_map(|terms| terms.machines.clone())
            .collect(),
    );
    let request = mine
        .iter()
        .rev()
        .find_map(|terms| terms.request.clone())
        .unwrap();
    let command = median(
        mine.iter()
            .filter(|terms| terms.types[0] == "session.input_sent")
            .flat_map(|terms| terms.words.first().cloned())
            .filter(|words| words.split_whitespace().count() >= 2 && !words.contains('"'))
            .collect(),
    );
    let fts5_phrase = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let questions = vec![
        Question {
            name: "actor (id)".into(),
            broad: false,
            chronicle: format!("actor:{actor}"),
            fts5: format!("actor : {}", fts5_phrase(&actor)),
        },
        Question {
            name: "machine".into(),
            broad: false,
            chronicle: format!("machine:{machine}"),
            fts5: format!("machine : {}", fts5_phrase(&machine)),
        },
        Question {
            name: "request id".into(),
            broad: false,
            chronicle: format!("request:{request}"),
            fts5: format!("request : {}", fts5_phrase(&request)),
        },
        Question {
            name: "command phrase".into(),
            broad: false,
            chronicle: format!("\"{command}\""),
            fts5: format!("words : {}", fts5_phrase(&command)),
        },
        Question {
            name: "type:machine.*".into(),
            broad: true,
            chronicle: "type:machine.*".into(),
            fts5: "type : ^machine".into(),
        },
        Question {
            name: "type:session.*".into(),
            broad: true,
            chronicle: "type:session.*".into(),
            fts5: "type : ^session".into(),
        },
        Question {
            name: "session.* and not input".into(),
            broad: true,
            chronicle: "type:session.* -type:session.input_sent".into(),
            fts5: "type : ^session NOT type : \"session.input_sent\"".into(),
        },
    ];
    (workspace, questions)
}

/// Chronicle's answer: the newest page and the total (hits are not read back from the store,
/// for either engine).
async fn chronicle_answer(index: &SearchIndex, workspace: &str, query: &str) -> u64 {
    let results = index
        .search(SearchRequest {
            workspace: workspace.to_owned(),
            query: AuditQuery::parse(query).unwrap(),
            from: None,
            to: None,
            limit: PAGE,
            cursor: None,
            facets: FacetRequest::default(),
        })
        .await
        .unwrap();
    assert!(results.positions.len() <= PAGE);
    results.total
}

/// FTS5's answer to the same question: the newest page by rowid, and the count.
async fn fts5_answer(connection: &mut SqliteConnection, workspace: &str, matching: &str) -> u64 {
    let expression = format!(
        "workspace : {} AND ({matching})",
        workspace_token(workspace)
    );
    let page: Vec<i64> = sqlx::query_scalar(
        "SELECT rowid FROM audit WHERE audit MATCH ? ORDER BY rowid DESC LIMIT ?",
    )
    .bind(&expression)
    .bind(PAGE as i64)
    .fetch_all(&mut *connection)
    .await
    .unwrap();
    assert!(page.len() <= PAGE);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit WHERE audit MATCH ?")
        .bind(&expression)
        .fetch_one(&mut *connection)
        .await
        .unwrap();
    total as u64
}

/// A workspace as one FTS5 token: its letters and digits, so `ws_a` never matches `ws_a_2`.
fn workspace_token(workspace: &str) -> String {
    workspace
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect()
}

/// Runs `answer` a few times to warm up, then SAMPLES times: p50 and p99 in ms, and the hits.
fn percentiles(mut answer: impl FnMut() -> u64) -> (f64, f64, u64) {
    let mut hits = 0;
    for _ in 0..10 {
        hits = answer();
    }
    let mut samples: Vec<Duration> = (0..SAMPLES)
        .map(|_| {
            let started = Instant::now();
            answer();
            started.elapsed()
        })
        .collect();
    samples.sort();
    let at = |quantile: f64| {
        samples[((samples.len() as f64 * quantile) as usize).min(samples.len() - 1)].as_secs_f64()
            * 1_000.0
    };
    (at(0.50), at(0.99), hits)
}

criterion_group!(benches, search);
criterion_main!(benches);
