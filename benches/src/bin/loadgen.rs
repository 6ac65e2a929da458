//! A mixed load against a running Chronicle server over HTTP: producers of batches, producers of
//! single events, readers of a read-model list and searchers of the audit trail, all at once for
//! a fixed duration. Reports, per class, throughput and latency percentiles as a plain table.
//!
//! Without `--url` it starts its own server on loopback over a temporary data directory (in the
//! same process, so the clients share its cores, as in `live_latency`).
//!
//! Run: `cargo run --release -p chronicle-benches --bin loadgen -- --duration 20`
//! or, against a server: `… --bin loadgen -- --url http://host:8080 --token TOKEN --workspace ws_acme`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chronicle_api::{ApiConfig, Application};
use chronicle_benches::{EventPool, IdKind};
use chronicle_store::checkpoint::NoteSigner;
use chronicle_store::{Store, StoreConfig};
use clap::Parser;
use serde_json::{Value, json};

/// The admin token of the server loadgen starts itself.
const OWN_TOKEN: &str = "loadgen-admin-token-0123456789";

#[derive(Debug, Parser)]
#[command(about = "Drives a Chronicle server with producers, readers and searchers at once")]
struct Arguments {
    /// The server's base URL; without it, loadgen starts a server on a temporary directory.
    #[arg(long, requires = "token")]
    url: Option<String>,
    /// A bearer token with the append and read scopes.
    #[arg(long)]
    token: Option<String>,
    /// The workspace readers and searchers query; by default the busiest one of the events sent.
    #[arg(long)]
    workspace: Option<String>,
    /// Producers each sending batches of `--batch-size` events, one request after another.
    #[arg(long, default_value_t = 2)]
    batch_producers: usize,
    /// Events per batch request.
    #[arg(long, default_value_t = 1_000)]
    batch_size: usize,
    /// Producers each sending one event per request.
    #[arg(long, default_value_t = 16)]
    single_producers: usize,
    /// Readers listing the workspace's machines (`GET /v1/workspaces/WS/machines`).
    #[arg(long, default_value_t = 2)]
    readers: usize,
    /// Searchers asking `GET /v1/workspaces/WS/audit?q=…`.
    #[arg(long, default_value_t = 2)]
    searchers: usize,
    /// The searchers' query.
    #[arg(long, default_value = "type:machine.*")]
    query: String,
    /// Seconds of load.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Stop once the producers have sent this many events (or at `--duration`, if sooner).
    #[arg(long)]
    events: Option<u64>,
    /// Distinct realistic events generated up front (sent again and again with fresh ids).
    #[arg(long, default_value_t = 100_000)]
    pool: usize,
}

/// What one class of client does in a loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    BatchProducer,
    SingleProducer,
    Reader,
    Searcher,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::BatchProducer => "batch producers",
            Class::SingleProducer => "single-event producers",
            Class::Reader => "readers (machines list)",
            Class::Searcher => "searchers (audit)",
        }
    }
}

/// What the clients of one class measured.
#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    events: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.events += other.events;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

/// Everything a client needs to send its requests.
#[derive(Debug, Clone)]
struct Target {
    client: reqwest::Client,
    base: String,
    token: String,
    workspace: String,
    query: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments = Arguments::parse();
    let mut pool = EventPool::new(arguments.pool, IdKind::TimeOrdered);
    let workspace = match &arguments.workspace {
        Some(workspace) => workspace.clone(),
        None => busiest_workspace(&pool.raw_batch(arguments.pool))?,
    };

    let directory = tempfile::tempdir()?;
    let (base, token, server) = match (&arguments.url, &arguments.token) {
        (Some(url), Some(token)) => (url.trim_end_matches('/').to_owned(), token.clone(), None),
        _ => {
            let (base, stop, server) = own_server(directory.path()).await?;
            (base, OWN_TOKEN.to_owned(), Some((stop, server)))
        }
    };
    let target = Target {
        client: reqwest::Client::new(),
        base,
        token,
        workspace,
        query: arguments.query.clone(),
    };
    // One append first, so a server that refuses events fails loudly before the clock starts.
    let warm_up = pool.raw_batch(1);
    send_events(&target, &warm_up)
        .await
        .context("the first append failed")?;

    let pool = Arc::new(Mutex::new(pool));
    let duration = Duration::from_secs(arguments.duration);
    let stop = Stop {
        deadline: Instant::now() + duration,
        events_left: Arc::new(AtomicU64::new(arguments.events.unwrap_or(u64::MAX))),
    };
    let mut clients = Vec::new();
    for (class, count) in [
        (Class::BatchProducer, arguments.batch_producers),
        (Class::SingleProducer, arguments.single_producers),
        (Class::Reader, arguments.readers),
        (Class::Searcher, arguments.searchers),
    ] {
        for _ in 0..count {
            let target = target.clone();
            let pool = pool.clone();
            let batch = match class {
                Class::BatchProducer => arguments.batch_size,
                _ => 1,
            };
            clients.push((
                class,
                tokio::spawn(run_client(class, target, pool, batch, stop.clone())),
            ));
        }
    }
    let started = Instant::now();
    let mut tallies: Vec<(Class, usize, Tally)> = Vec::new();
    for (class, client) in clients {
        let tally = client.await?;
        match tallies.iter_mut().find(|(c, _, _)| *c == class) {
            Some((_, workers, total)) => {
                *workers += 1;
                total.merge(tally);
            }
            None => tallies.push((class, 1, tally)),
        }
    }
    let elapsed = match arguments.events {
        Some(_) => started.elapsed(),
        None => started.elapsed().max(duration),
    };
    if let Some((stop, server)) = server {
        let _ = stop.send(());
        server.await??;
    }

    println!(
        "loadgen: {} s against {} (workspace {}, query {:?}, batches of {})",
        elapsed.as_secs_f64().round(),
        target.base,
        target.workspace,
        target.query,
        arguments.batch_size
    );
    println!(
        "| class | clients | requests | errors | events/s | requests/s | p50 ms | p90 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (class, workers, mut tally) in tallies {
        tally.latencies.sort();
        let seconds = elapsed.as_secs_f64();
        let events = match class {
            Class::BatchProducer | Class::SingleProducer => {
                format!("{:.0}", tally.events as f64 / seconds)
            }
            Class::Reader | Class::Searcher => "".to_owned(),
        };
        println!(
            "| {} | {workers} | {} | {} | {events} | {:.0} | {} | {} | {} | {} |",
            class.name(),
            tally.latencies.len(),
            tally.errors,
            tally.latencies.len() as f64 / seconds,
            milliseconds(percentile(&tally.latencies, 0.50)),
            milliseconds(percentile(&tally.latencies, 0.90)),
            milliseconds(percentile(&tally.latencies, 0.99)),
            milliseconds(tally.latencies.last().copied()),
        );
        if let Some(error) = tally.first_error {
            eprintln!("{}: first error: {error}", class.name());
        }
    }
    Ok(())
}

/// Starts a server on loopback over `directory`, with no rate limit; answers its base URL, the
/// sender that stops it and its task.
async fn own_server(
    directory: &std::path::Path,
) -> anyhow::Result<(
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
)> {
    let store = Store::open(StoreConfig::new(
        directory.join("loadgen.db"),
        NoteSigner::generate("chronicle.loadgen"),
    ))
    .await?;
    let mut config = ApiConfig::new("127.0.0.1:0".parse()?, OWN_TOKEN);
    config.rate_limit = None;
    config.search.directory = Some(directory.join("index"));
    let application = Application::bind(store, config).await?;
    let base = format!("http://{}", application.address());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    Ok((base, stop, server))
}

/// The workspace most of `events` belong to.
fn busiest_workspace(events: &[Value]) -> anyhow::Result<String> {
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for event in events {
        if let Some(workspace) = event["workspace"].as_str() {
            *counts.entry(workspace).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(_, count)| *count)
        .map(|(workspace, _)| workspace.to_owned())
        .context("the generated events name no workspace")
}

/// When the clients stop: at the deadline, or once the producers have taken every event.
#[derive(Debug, Clone)]
struct Stop {
    deadline: Instant,
    events_left: Arc<AtomicU64>,
}

impl Stop {
    fn reached(&self) -> bool {
        Instant::now() >= self.deadline || self.events_left.load(Ordering::Relaxed) == 0
    }

    /// Takes up to `wanted` events from what is left; zero once nothing is.
    fn take(&self, wanted: usize) -> usize {
        let taken = self
            .events_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(wanted as u64))
            })
            .expect("the update always answers");
        taken.min(wanted as u64) as usize
    }
}

/// One client: sends its class's request again and again until `stop`, timing each.
async fn run_client(
    class: Class,
    target: Target,
    pool: Arc<Mutex<EventPool>>,
    batch: usize,
    stop: Stop,
) -> Tally {
    let mut tally = Tally::default();
    while !stop.reached() {
        let events = match class {
            Class::BatchProducer | Class::SingleProducer => match stop.take(batch) {
                0 => break,
                count => pool.lock().expect("no client panics").raw_batch(count),
            },
            Class::Reader | Class::Searcher => Vec::new(),
        };
        let started = Instant::now();
        let outcome = match class {
            Class::BatchProducer | Class::SingleProducer => send_events(&target, &events).await,
            Class::Reader => get(&target, "machines", &[]).await,
            Class::Searcher => get(&target, "audit", &[("q", &target.query)]).await,
        };
        let latency = started.elapsed();
        match outcome {
            Ok(()) => {
                tally.latencies.push(latency);
                tally.events += events.len() as u64;
            }
            Err(error) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(format!("{error:#}"));
            }
        }
    }
    tally
}

/// Appends `events` in one request; an answer other than 2xx is an error naming it.
async fn send_events(target: &Target, events: &[Value]) -> anyhow::Result<()> {
    let response = target
        .client
        .post(format!("{}/v1/events", target.base))
        .bearer_auth(&target.token)
        .json(&json!({ "events": events }))
        .send()
        .await?;
    answer(response).await
}

/// Sends a GET to the workspace's `resource` with `query` and reads the whole answer.
async fn get(target: &Target, resource: &str, query: &[(&str, &str)]) -> anyhow::Result<()> {
    let response = target
        .client
        .get(format!(
            "{}/v1/workspaces/{}/{resource}",
            target.base, target.workspace
        ))
        .query(query)
        .bearer_auth(&target.token)
        .send()
        .await?;
    answer(response).await
}

/// Reads the whole body (as a client would before using it); a non-2xx status is an error.
async fn answer(response: reqwest::Response) -> anyhow::Result<()> {
    let status = response.status();
    let body = response.bytes().await?;
    anyhow::ensure!(
        status.is_success(),
        "{status}: {}",
        String::from_utf8_lossy(&body[..body.len().min(300)])
    );
    Ok(())
}

/// The `p` quantile of sorted `latencies`, if any.
fn percentile(latencies: &[Duration], p: f64) -> Option<Duration> {
    let last = latencies.len().checked_sub(1)?;
    latencies
        .get(((latencies.len() as f64 * p) as usize).min(last))
        .copied()
}

/// A latency in milliseconds with two decimals, or a dash when nothing was measured.
fn milliseconds(latency: Option<Duration>) -> String {
    latency.map_or_else(
        || "-".to_owned(),
        |latency| format!("{:.2}", latency.as_secs_f64() * 1e3),
    )
}
