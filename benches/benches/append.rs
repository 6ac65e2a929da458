//! Batched appends: 1,000 realistic events a batch through the store (validation excluded;
//! group commit, idempotency and version checks, three indexes, both Merkle trees, fsync),
//! beside the ceiling: the same rows inserted into a bare SQLite table with no index, 1,000 a
//! transaction, WAL, `synchronous=FULL`, through the same driver.
//!
//! Run: `cargo bench -p chronicle-benches --bench append` (add `CHRONICLE_BENCH_IDS=v4` for
//! random producer ids instead of time-ordered ones); criterion prints each side's
//! throughput in elements (events) per second; `BENCHMARKS.md` records the ratio. A third group
//! times 64 producers appending one event per call through group commit.

use std::str::FromStr;
use std::time::{Duration, Instant};

use chronicle_benches::{EventPool, IdKind};
use chronicle_domain::Place;
use chronicle_store::checkpoint::NoteSigner;
use chronicle_store::{Store, StoreConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};

const BATCH: usize = 1_000;

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut pool = EventPool::new(200_000, IdKind::from_env());
    let directory = tempfile::tempdir().unwrap();

    let mut group = c.benchmark_group("append_batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(15));

    let signer = NoteSigner::generate("chronicle.bench");
    let store = runtime
        .block_on(Store::open(StoreConfig::new(
            directory.path().join("store.db"),
            signer,
        )))
        .unwrap();
    group.bench_function("chronicle_store", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let batch = pool.next_batch(BATCH);
                let started = Instant::now();
                runtime.block_on(store.append(batch)).unwrap();
                elapsed += started.elapsed();
            }
            elapsed
        })
    });

    let mut bare = runtime.block_on(async {
        let mut connection = SqliteConnectOptions::from_str("sqlite://")
            .unwrap()
            .filename(directory.path().join("bare.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .pragma("cache_size", "-65536")
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE events (position INTEGER, id BLOB, stream_id INTEGER, stream_version INTEGER, \
             workspace_id INTEGER, workspace_seq INTEGER, recorded_at TEXT, body BLOB, leaf_hash BLOB)",
        )
        .execute(&mut connection)
        .await
        .unwrap();
        connection
    });
    let mut position = 0u64;
    group.bench_function("sqlite_bare_table_ceiling", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let rows: Vec<_> = pool
                    .next_batch(BATCH)
                    .into_iter()
                    .map(|prepared| {
                        position += 1;
                        let place = Place { position, stream_version: 1, workspace_seq: Some(position) };
                        let (body, hash) = prepared.seal(place, "2026-11-24T03:50:26.123Z");
                        (position as i64, prepared.event.id.as_bytes().to_vec(), body, hash.to_vec())
                    })
                    .collect();
                let started = Instant::now();
                runtime.block_on(async {
                    let mut transaction = bare.begin().await.unwrap();
                    let mut insert = QueryBuilder::<Sqlite>::new(
                        "INSERT INTO events (position, id, stream_id, stream_version, workspace_id, workspace_seq, \
                         recorded_at, body, leaf_hash) ",
                    );
                    insert.push_values(&rows, |mut values, (position, id, body, hash)| {
                        values
                            .push_bind(*position)
                            .push_bind(id.clone())
                            .push_bind(*position)
                            .push_bind(1_i64)
                            .push_bind(1_i64)
                            .push_bind(*position)
                            .push_bind("2026-11-24T03:50:26.123Z")
                            .push_bind(body.clone())
                            .push_bind(hash.clone());
                    });
                    insert.build().execute(&mut *transaction).await.unwrap();
                    transaction.commit().await.unwrap();
                });
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    group.finish();

    // Four producers, each sending 1,000-event batches: group commit carries several per fsync.
    let producers = 4;
    let mut grouped = c.benchmark_group("append_batch_1000_4_producers");
    grouped.throughput(Throughput::Elements((BATCH * producers) as u64));
    grouped
        .sample_size(30)
        .measurement_time(Duration::from_secs(15));
    grouped.bench_function("chronicle_store", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let batches: Vec<_> = (0..producers).map(|_| pool.next_batch(BATCH)).collect();
                let started = Instant::now();
                runtime.block_on(async {
                    let appends = batches.into_iter().map(|batch| {
                        let store = store.clone();
                        tokio::spawn(async move { store.append(batch).await.unwrap() })
                    });
                    for append in appends.collect::<Vec<_>>() {
                        append.await.unwrap();
                    }
                });
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    grouped.finish();

    // Sixty-four producers, each appending one event per call, one call after another: group
    // commit gathers whatever is waiting into each fsync.
    let producers = 64;
    let calls = 16;
    let mut single = c.benchmark_group("append_single_64_producers");
    single.throughput(Throughput::Elements((producers * calls) as u64));
    single
        .sample_size(30)
        .measurement_time(Duration::from_secs(15));
    single.bench_function("chronicle_store", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let events: Vec<Vec<_>> = (0..producers)
                    .map(|_| pool.next_batch(calls).into_iter().collect())
                    .collect();
                let started = Instant::now();
                runtime.block_on(async {
                    let producers = events.into_iter().map(|events| {
                        let store = store.clone();
                        tokio::spawn(async move {
                            for event in events {
                                store.append(vec![event]).await.unwrap();
                            }
                        })
                    });
                    for producer in producers.collect::<Vec<_>>() {
                        producer.await.unwrap();
                    }
                });
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    single.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
