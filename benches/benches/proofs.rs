//! Inclusion proofs at scale: a store of N events built through the real append path, then
//! `inclusion_proof` of random leaves in the full log tree, beside the floor of one indexed read:
//! fetching one event by position from the same store.
//!
//! Run: `CHRONICLE_BENCH_EVENTS=1000000 cargo bench -p chronicle-benches --bench proofs`.
//! `CHRONICLE_BENCH_DIR=/some/dir` keeps the built store there, so a 10M-event store is built once.

use std::time::{Duration, Instant};

use chronicle_benches::{EventPool, IdKind};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig, TreeId};
use criterion::{Criterion, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};

const BATCH: usize = 5_000;

fn proofs(c: &mut Criterion) {
    let events: u64 = std::env::var("CHRONICLE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let temporary = tempfile::tempdir().unwrap();
    let directory = std::env::var("CHRONICLE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| temporary.path().to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (signer, _) =
        load_or_create_key_file(&directory.join("signing-key"), "chronicle.bench").unwrap();
    let store = runtime
        .block_on(Store::open(StoreConfig::new(
            directory.join(format!("proofs-{events}.db")),
            signer,
        )))
        .unwrap();

    let have = store.head().position;
    if have < events {
        let mut pool = EventPool::new(200_000, IdKind::from_env());
        let started = Instant::now();
        let mut position = have;
        while position < events {
            let batch = pool.next_batch(BATCH.min((events - position) as usize));
            position = runtime
                .block_on(store.append(batch))
                .unwrap()
                .last()
                .unwrap()
                .position;
        }
        eprintln!(
            "built {events} events in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }

    let mut random = rand::rngs::StdRng::seed_from_u64(9);
    let mut group = c.benchmark_group(format!("inclusion_proof_{events}"));
    group
        .sample_size(50)
        .measurement_time(Duration::from_secs(10));
    group.bench_function("log_tree_inclusion_proof", |b| {
        b.iter(|| {
            let leaf = random.gen_range(0..events);
            runtime
                .block_on(store.inclusion_proof(TreeId::Log, leaf, Some(events)))
                .unwrap()
        })
    });
    group.bench_function("one_event_by_position_floor", |b| {
        b.iter(|| {
            let after = random.gen_range(0..events);
            runtime.block_on(store.read_all(after, 1)).unwrap()
        })
    });
    group.finish();
    runtime.block_on(store.shutdown());
}

criterion_group!(benches, proofs);
criterion_main!(benches);
