//! `chronicle serve` and `chronicle demo`.

use anyhow::Context;
use chronicle_api::{ApiConfig, Application};
use chronicle_domain::{NewEvent, PreparedEvent, SUBMITTED_BY_CHRONICLE};
use chronicle_fixtures::{HistoryGenerator, Scale};
use chronicle_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use crate::data_dir::DataDir;
use crate::database_check::check_integrity;
use crate::{DemoArgs, ServeArgs};

/// Events per batch when the demo fills the store.
const DEMO_BATCH: usize = 1_000;

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let data = DataDir::open(&args.storage.data, args.storage.database_url.as_deref())?;
    if args.check_integrity {
        check_integrity(&data.backend()?).await?;
    }
    let store = data.open_store(&args.storage).await?;
    run(&data, store, &args).await
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let data = DataDir::open(
        &args.serve.storage.data,
        args.serve.storage.database_url.as_deref(),
    )?;
    let store = data.open_store(&args.serve.storage).await?;
    if store.head().position > 0 {
        eprintln!(
            "{} already holds {} events: serving them without generating more",
            data.root().display(),
            store.head().position
        );
    } else {
        fill_with_history(&store, args.seed, args.events).await?;
    }
    let mut serve = args.serve;
    // The documentation domain (RFC 2606) is never a real host: the README's webhook example
    // works against the demo as written, and a delivery to it only fails to resolve.
    serve.webhook_allow.push(DOCUMENTATION_HOSTS.into());
    run(&data, store, &serve).await
}

/// The hosts `demo` lets webhooks name without looking them up.
const DOCUMENTATION_HOSTS: &str = "*.example.com";

/// Appends a generated history through the same append path producers use.
async fn fill_with_history(store: &Store, seed: u64, events: usize) -> anyhow::Result<()> {
    let scale = if events == Scale::demo().events_target {
        Scale::demo()
    } else {
        Scale::with_events(events)
    };
    let progress = ProgressBar::new(scale.events_target as u64).with_style(
        ProgressStyle::with_template("generating history {bar:40} {pos}/{len} events {per_sec}")
            .expect("a valid progress template"),
    );
    let mut generator = HistoryGenerator::new(seed, scale).peekable();
    while generator.peek().is_some() {
        let batch: Vec<PreparedEvent> = generator
            .by_ref()
            .take(DEMO_BATCH)
            .map(|value| {
                NewEvent::from_json(&value, Uuid::now_v7())
                    .map(|event| PreparedEvent::new(event, SUBMITTED_BY_CHRONICLE))
            })
            .collect::<Result<_, _>>()
            .context("the generated history holds an invalid event")?;
        let count = batch.len() as u64;
        store
            .append(batch)
            .await
            .context("appending the generated history")?;
        progress.inc(count);
    }
    progress.finish_and_clear();
    eprintln!("generated {} events (seed {seed})", store.head().position);
    Ok(())
}

async fn run(data: &DataDir, store: Store, args: &ServeArgs) -> anyhow::Result<()> {
    let token = data.admin_token(args.admin_token.as_deref())?;
    let shutdown = shutdown_signal().context("installing the Ctrl-C and SIGTERM handlers")?;
    let mut config = ApiConfig::new(args.listen, token.value.clone());
    config.search.directory = Some(data.index_path());
    config.webhooks.allowed_hosts = args.webhook_allow.clone();
    let application = Application::bind(store, config)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = application.address();
    eprintln!(
        "chronicle listening on http://{address} with data in {}",
        data.root().display()
    );
    if token.created {
        eprintln!(
            "admin token (shown once, also saved to {}): {}",
            data.root().join("admin-token").display(),
            token.value
        );
    } else if args.admin_token.is_none() {
        eprintln!(
            "admin token: in {}",
            data.root().join("admin-token").display()
        );
    }
    application
        .run_until(shutdown)
        .await
        .context("serving the API")?;
    eprintln!("chronicle stopped; every accepted event is committed");
    Ok(())
}

/// Installs the Ctrl-C and SIGTERM handlers at once and returns a future that resolves on
/// either. Installed before the server says it listens, so a signal sent right after that line
/// still stops it cleanly instead of killing it.
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down: finishing requests in flight");
    })
}
