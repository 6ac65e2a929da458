//! Latency from append to Server-Sent-Events receipt: a real server on loopback, N subscribers
//! following one workspace live, and a producer appending at a fixed rate in small batches.
//! Each subscriber notes when each event arrives; the latency of an event is its arrival time
//! minus the moment its append request was sent. Reports p50/p99 over every (subscriber, event).
//!
//! Run: `cargo run --release -p chronicle-benches --bin live_latency -- [SUBSCRIBERS] [EVENTS_PER_SECOND] [SECONDS]`
//! (defaults 100, 10000, 5).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chronicle_api::{ApiConfig, Application};
use chronicle_benches::{EventPool, IdKind};
use chronicle_store::checkpoint::NoteSigner;
use chronicle_store::{Store, StoreConfig};
use futures::StreamExt;
use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token-0123456789";
const WORKSPACE: &str = "ws_bench";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let subscribers = *arguments.first().unwrap_or(&100) as usize;
    let rate = *arguments.get(1).unwrap_or(&10_000);
    let seconds = *arguments.get(2).unwrap_or(&5);

    let directory = tempfile::tempdir()?;
    let store = Store::open(StoreConfig::new(
        directory.path().join("live.db"),
        NoteSigner::generate("chronicle.bench"),
    ))
    .await?;
    let mut config = ApiConfig::new("127.0.0.1:0".parse()?, TOKEN);
    config.rate_limit = None;
    config.search.directory = Some(directory.path().join("index"));
    let application = Application::bind(store, config).await?;
    let base = format!("http://{}", application.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));

    // Every event goes to one workspace, so every subscriber receives every event.
    let mut pool = EventPool::new(50_000, IdKind::TimeOrdered);
    let total = (rate * seconds) as usize;
    let batch = (rate / 100).max(1) as usize; // one request every 10 ms
    let events: Vec<Vec<Value>> = (0..total.div_ceil(batch))
        .map(|_| {
            pool.raw_batch(batch)
                .into_iter()
                .map(|mut event| {
                    event["workspace"] = json!(WORKSPACE);
                    event["stream"] =
                        json!(format!("machine-{}", event["id"].as_str().unwrap_or("x")));
                    event["type"] = json!("machine.presence_changed");
                    event["data"] = json!({"status": "online"});
                    event
                })
                .collect()
        })
        .collect();

    let client = reqwest::Client::new();
    let arrivals: Arc<Mutex<Vec<(u64, Instant)>>> =
        Arc::new(Mutex::new(Vec::with_capacity(total * subscribers)));
    let mut readers = Vec::new();
    for _ in 0..subscribers {
        let response = client
            .get(format!("{base}/v1/workspaces/{WORKSPACE}/live?after=0"))
            .bearer_auth(TOKEN)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "subscribe: {}",
            response.status()
        );
        let arrivals = arrivals.clone();
        readers.push(tokio::spawn(async move {
            let mut stream = response.bytes_stream();
            // The client shares the two cores with the server it measures, so it reads as
            // little as it can: each message's leading `id:` line, found with SIMD, and copies
            // bytes only for a message split across chunks.
            let ends = memchr::memmem::Finder::new(b"\n\n");
            let mut partial: Vec<u8> = Vec::new();
            let mut seen = 0;
            while let Some(Ok(chunk)) = stream.next().await {
                let now = Instant::now();
                let bytes: &[u8] = if partial.is_empty() {
                    &chunk
                } else {
                    partial.extend_from_slice(&chunk);
                    &partial
                };
                let mut mine = Vec::new();
                let mut start = 0;
                for end in ends.find_iter(bytes) {
                    if let Some(id) = bytes[start..end].strip_prefix(b"id: ") {
                        let digits = id.iter().take_while(|byte| byte.is_ascii_digit());
                        let position = digits.fold(0, |n, digit| n * 10 + u64::from(digit - b'0'));
                        mine.push((position, now));
                        seen += 1;
                    }
                    start = end + 2;
                }
                partial = bytes[start..].to_vec();
                arrivals.lock().unwrap().extend(mine);
                if seen >= total {
                    break;
                }
            }
        }));
    }

    // The producer: one batch every 10 ms; remembers when each position's request was sent.
    let mut sent: HashMap<u64, Instant> = HashMap::with_capacity(total);
    let mut ticks = tokio::time::interval(Duration::from_millis(10));
    let started = Instant::now();
    for batch in events {
        ticks.tick().await;
        let at = Instant::now();
        let answer: Value = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(TOKEN)
            .json(&json!({ "events": batch }))
            .send()
            .await?
            .json()
            .await?;
        for appended in answer["events"].as_array().into_iter().flatten() {
            sent.insert(appended["position"].as_u64().unwrap_or(0), at);
        }
    }
    let producing = started.elapsed();
    for reader in readers {
        tokio::time::timeout(Duration::from_secs(120), reader).await??;
    }
    let _ = stop.send(());
    server.await??;

    let mut latencies: Vec<Duration> = arrivals
        .lock()
        .unwrap()
        .iter()
        .filter_map(|(position, at)| {
            sent.get(position)
                .map(|sent| at.saturating_duration_since(*sent))
        })
        .collect();
    latencies.sort();
    let percentile =
        |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{subscribers} subscribers, {total} events at {:.0} events/s offered: {} deliveries, p50 {:?}, p99 {:?}, max {:?}",
        total as f64 / producing.as_secs_f64(),
        latencies.len(),
        percentile(0.50),
        percentile(0.99),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}
