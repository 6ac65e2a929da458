//! Ingest on PostgreSQL: 1,000-event batches and single events from 64 concurrent producers
//! through the store (group commit under the cross-process append lock, idempotency and
//! version checks, three indexes, both Merkle trees, the head notification), beside the
//! ceiling: the same rows `COPY`ed into a plain table with no index, 1,000 a transaction.
//!
//! The server is a throwaway cluster with PostgreSQL's default durability (fsync on,
//! synchronous commit), started by the bench from the machine's `initdb`/`pg_ctl`.
//!
//! Run: `cargo bench -p chronicle-benches --bench append_postgres`; `BENCHMARKS.md` records
//! the ratios.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use chronicle_benches::{EventPool, IdKind};
use chronicle_domain::Place;
use chronicle_store::checkpoint::NoteSigner;
use chronicle_store::testing::PostgresServer;
use chronicle_store::{Backend, Store, StoreConfig};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sqlx::{ConnectOptions, Connection};

const BATCH: usize = 1_000;
const PRODUCERS: usize = 64;
const SINGLES_PER_PRODUCER: usize = 20;
const RECORDED_AT: &str = "2026-11-24T03:50:26.123Z";

fn hex(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(2 + bytes.len() * 2);
    text.push_str("\\x");
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = PostgresServer::start(true).unwrap();
    let mut pool = EventPool::new(200_000, IdKind::from_env());

    let url = runtime.block_on(server.fresh_database());
    let store = runtime
        .block_on(Store::open(StoreConfig::with_backend(
            Backend::Postgres(url),
            NoteSigner::generate("chronicle.bench"),
        )))
        .unwrap();

    let mut group = c.benchmark_group("postgres_append_batch_1000");
    group.throughput(Throughput::Elements(BATCH as u64));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
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

    let ceiling_url = runtime.block_on(server.fresh_database());
    let mut bare = runtime.block_on(async {
        let mut connection = ceiling_url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE events (position BIGINT, id BYTEA, stream_id BIGINT, stream_version BIGINT, \
             workspace_id BIGINT, workspace_seq BIGINT, recorded_at TEXT, body BYTEA, leaf_hash BYTEA)",
        )
        .execute(&mut connection)
        .await
        .unwrap();
        connection
    });
    let mut position = 0u64;
    group.bench_function("postgres_copy_ceiling", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let mut csv = String::new();
                for prepared in pool.next_batch(BATCH) {
                    position += 1;
                    let place = Place {
                        position,
                        stream_version: 1,
                        workspace_seq: Some(position),
                    };
                    let (body, hash) = prepared.seal(place, RECORDED_AT);
                    let _ = writeln!(
                        csv,
                        "{position},{},{position},1,1,{position},{RECORDED_AT},{},{}",
                        hex(prepared.event.id.as_bytes()),
                        hex(&body),
                        hex(&hash)
                    );
                }
                let started = Instant::now();
                runtime.block_on(async {
                    let mut transaction = bare.begin().await.unwrap();
                    let mut copy = transaction
                        .copy_in_raw("COPY events FROM STDIN (FORMAT csv)")
                        .await
                        .unwrap();
                    copy.send(csv.as_bytes()).await.unwrap();
                    copy.finish().await.unwrap();
                    transaction.commit().await.unwrap();
                });
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    group.finish();

    // Single-event appends from 64 producers at once: group commit carries many per commit.
    let mut singles = c.benchmark_group("postgres_append_single_64_producers");
    singles.throughput(Throughput::Elements(
        (PRODUCERS * SINGLES_PER_PRODUCER) as u64,
    ));
    singles
        .sample_size(20)
        .measurement_time(Duration::from_secs(15));
    singles.bench_function("chronicle_store", |b| {
        b.iter_custom(|iterations| {
            let mut elapsed = Duration::ZERO;
            for _ in 0..iterations {
                let producers: Vec<_> = (0..PRODUCERS)
                    .map(|_| pool.next_batch(SINGLES_PER_PRODUCER))
                    .collect();
                let started = Instant::now();
                runtime.block_on(async {
                    let tasks: Vec<_> = producers
                        .into_iter()
                        .map(|events| {
                            let store = store.clone();
                            tokio::spawn(async move {
                                for event in events {
                                    store.append(vec![event]).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                });
                elapsed += started.elapsed();
            }
            elapsed
        })
    });
    singles.finish();
    runtime.block_on(store.shutdown());
}

criterion_group!(benches, appends);
criterion_main!(benches);
