//! `chronicle rebuild [MODEL]`: rebuilds read models from the log and swaps them in.

use std::time::Instant;

use anyhow::{Context, anyhow};
use chronicle_projections::{Model, Projections, ProjectionsConfig};
use indicatif::{ProgressBar, ProgressStyle};

use crate::RebuildArgs;
use crate::data_dir::DataDir;

pub async fn rebuild(args: RebuildArgs) -> anyhow::Result<()> {
    let models = match &args.model {
        Some(name) => vec![Model::from_name(name).ok_or_else(|| {
            let names: Vec<&str> = Model::ALL.iter().map(|model| model.name()).collect();
            anyhow!(
                "`{name}` is not a read model: use one of {}",
                names.join(", ")
            )
        })?],
        None => Model::ALL.to_vec(),
    };
    if let Some(url) = &args.remote.url {
        return rebuild_remotely(url, args.remote.token.as_deref(), &models).await;
    }
    let data = DataDir::open(&args.storage.data, args.storage.database_url.as_deref())?;
    let store = data.open_store(&args.storage).await?;
    let projections = Projections::open(store.clone(), ProjectionsConfig::default())
        .await
        .context("opening the read models")?;
    let names: Vec<&str> = models.iter().map(|model| model.name()).collect();
    let progress = ProgressBar::new(store.head().position).with_style(
        ProgressStyle::with_template("rebuilding {msg} {bar:40} {pos}/{len} events {per_sec}")
            .expect("a valid progress template"),
    );
    progress.set_message(names.join(", "));
    let started = Instant::now();
    let result = projections
        .rebuild(&models, |applied| progress.set_position(applied))
        .await;
    progress.finish_and_clear();
    let position = result.context("rebuilding the read models")?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "rebuilt {} up to position {position} in {seconds:.1} s ({:.0} events/s)",
        names.join(", "),
        position as f64 / seconds.max(f64::EPSILON)
    );
    store.shutdown().await;
    Ok(())
}

/// Asks a running server to rebuild: it fills fresh tables while the old ones answer, then
/// swaps them in, and answers once the new ones serve.
async fn rebuild_remotely(url: &str, token: Option<&str>, models: &[Model]) -> anyhow::Result<()> {
    let token = token.context("--url needs an admin token: pass --token or set CHRONICLE_TOKEN")?;
    let names: Vec<&str> = models.iter().map(|model| model.name()).collect();
    let started = Instant::now();
    let response = reqwest::Client::new()
        .post(format!("{}/v1/rebuild", url.trim_end_matches('/')))
        .bearer_auth(token)
        .json(&serde_json::json!({ "models": names }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let message = answer["error"]["message"].as_str().unwrap_or("no message");
        return Err(anyhow!("{message} ({status})"));
    }
    eprintln!(
        "{url} rebuilt {} up to position {} in {:.1} s, serving throughout",
        names.join(", "),
        answer["position"],
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
