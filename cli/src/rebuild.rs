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
