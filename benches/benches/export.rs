//! Parquet export: Chronicle's Parquet writer beside DuckDB converting the same NDJSON to ZSTD
//! Parquet, measured in the same run: time, size as a share of the NDJSON, peak memory.
//!
//! Chronicle is measured twice, both through the export's writer thread (`ExportTask`): from
//! the NDJSON file (the very input DuckDB reads: each line parsed on the bench's thread, pages
//! handed to the writer) and from the store (the real export path: pages read from SQLite and
//! handed to the writer). Peak memory is the rise of the process's VmHWM above its
//! resident memory when the export starts (reset through /proc/self/clear_refs); DuckDB's is its
//! own process's ru_maxrss. Criterion then measures
//! writing 10,000 events to Parquet in memory.
//!
//! Run: `CHRONICLE_BENCH_EVENTS=1000000 CHRONICLE_BENCH_DIR=/tmp/chronicle-bench cargo bench -p
//! chronicle-benches --bench export` (the store of N events and its NDJSON are built once and
//! kept in CHRONICLE_BENCH_DIR; `benches/peers/duckdb_export.sh` installs DuckDB with pip into
//! target/duckdb-venv on first use).

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::time::Instant;

use chronicle_benches::{EventPool, IdKind};
use chronicle_domain::RecordedEvent;
use chronicle_evidence::{ExportTask, ExportWriter, Format};
use chronicle_store::checkpoint::load_or_create_key_file;
use chronicle_store::{Store, StoreConfig};
use criterion::{Criterion, criterion_group, criterion_main};

const APPEND_BATCH: usize = 5_000;
const READ_PAGE: u32 = 5_000;

fn export(c: &mut Criterion) {
    let events: u64 = std::env::var("CHRONICLE_BENCH_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let temporary = tempfile::tempdir().unwrap();
    let directory: PathBuf = std::env::var("CHRONICLE_BENCH_DIR")
        .map(Into::into)
        .unwrap_or_else(|_| temporary.path().to_owned());
    std::fs::create_dir_all(&directory).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime.block_on(log_of(&directory, events));
    let ndjson = directory.join(format!("export-{events}.ndjson"));
    if !ndjson.exists() {
        runtime.block_on(write_from_store(&store, Format::Ndjson, &ndjson));
    }
    let ndjson_bytes = std::fs::metadata(&ndjson).unwrap().len();

    let from_file = directory.join(format!("export-{events}-from-ndjson.parquet"));
    let baseline = reset_peak_memory();
    let started = Instant::now();
    runtime.block_on(parquet_from_ndjson(&ndjson, &from_file));
    let from_file_seconds = started.elapsed().as_secs_f64();
    let from_file_peak = memory_kib("VmHWM:") - baseline;

    let from_store = directory.join(format!("export-{events}-from-store.parquet"));
    let baseline = reset_peak_memory();
    let started = Instant::now();
    runtime.block_on(write_from_store(&store, Format::Parquet, &from_store));
    let from_store_seconds = started.elapsed().as_secs_f64();
    let from_store_peak = memory_kib("VmHWM:") - baseline;

    let duckdb_file = directory.join(format!("export-{events}-duckdb.parquet"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("peers/duckdb_export.sh");
    let output = std::process::Command::new(script)
        .arg(&ndjson)
        .arg(&duckdb_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let duckdb = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> f64 {
        duckdb
            .split_whitespace()
            .find_map(|word| word.strip_prefix(&format!("{name}=")))
            .and_then(|value| value.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let (duckdb_seconds, duckdb_bytes, duckdb_peak) =
        (field("seconds"), field("bytes"), field("peak_kib"));

    let share = |bytes: f64| 100.0 * bytes / ndjson_bytes as f64;
    let size = |path: &Path| std::fs::metadata(path).unwrap().len() as f64;
    eprintln!("Parquet export of {events} events; NDJSON {ndjson_bytes} bytes");
    eprintln!(
        "  chronicle from NDJSON: {from_file_seconds:.2} s, {:.1}% of the NDJSON, peak +{} MiB",
        share(size(&from_file)),
        from_file_peak / 1024
    );
    eprintln!(
        "  chronicle from store:  {from_store_seconds:.2} s, {:.1}% of the NDJSON, peak +{} MiB",
        share(size(&from_store)),
        from_store_peak / 1024
    );
    eprintln!(
        "  duckdb from NDJSON:    {duckdb_seconds:.2} s, {:.1}% of the NDJSON, peak {:.0} MiB",
        share(duckdb_bytes),
        duckdb_peak / 1024.0
    );
    eprintln!(
        "  ratios (chronicle from NDJSON / duckdb): time {:.2}, size {:.2}",
        from_file_seconds / duckdb_seconds,
        size(&from_file) / duckdb_bytes
    );

    let sample: Vec<RecordedEvent> = BufReader::new(File::open(&ndjson).unwrap())
        .lines()
        .take(10_000)
        .map(|line| serde_json::from_str(&line.unwrap()).unwrap())
        .collect();
    c.bench_function("parquet_10k_events_in_memory", |b| {
        b.iter(|| {
            let mut writer = ExportWriter::new(Format::Parquet, Vec::new()).unwrap();
            writer.write_page(&sample).unwrap();
            std::hint::black_box(writer.finish().unwrap().len())
        })
    });
}

/// Parses the NDJSON a page at a time on this thread and hands each page to the export's
/// writer thread, as the API hands it pages read from the store.
async fn parquet_from_ndjson(ndjson: &Path, output: &Path) {
    let task = ExportTask::spawn(
        Format::Parquet,
        BufWriter::new(File::create(output).unwrap()),
    );
    let mut page = Vec::with_capacity(READ_PAGE as usize);
    for line in BufReader::new(File::open(ndjson).unwrap()).lines() {
        page.push(serde_json::from_str::<RecordedEvent>(&line.unwrap()).unwrap());
        if page.len() == READ_PAGE as usize {
            let full = std::mem::replace(&mut page, Vec::with_capacity(READ_PAGE as usize));
            assert!(task.write(full).await, "the writer stopped");
        }
    }
    assert!(task.write(page).await, "the writer stopped");
    task.finish().await.unwrap();
}

/// Reads the whole log in pages and exports it through the writer thread, as the API does.
async fn write_from_store(store: &Store, format: Format, output: &Path) {
    let task = ExportTask::spawn(format, BufWriter::new(File::create(output).unwrap()));
    let mut after = 0;
    loop {
        let events = store.read_all(after, READ_PAGE).await.unwrap();
        let Some(last) = events.last() else { break };
        after = last.position;
        assert!(task.write(events).await, "the writer stopped");
    }
    task.finish().await.unwrap();
}

async fn log_of(directory: &Path, events: u64) -> Store {
    let (signer, _) =
        load_or_create_key_file(&directory.join("signing-key"), "chronicle.bench").unwrap();
    let store = Store::open(StoreConfig::new(
        directory.join(format!("export-{events}.db")),
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

/// Resets the process's peak resident memory to what it holds now (Linux: writing 5 to
/// /proc/self/clear_refs) and answers that, in KiB: an export's peak is counted above it.
fn reset_peak_memory() -> u64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    memory_kib("VmRSS:")
}

/// A line of /proc/self/status in KiB: `VmHWM:` (peak resident since the last reset) or
/// `VmRSS:` (resident now).
fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = export
}
criterion_main!(benches);
