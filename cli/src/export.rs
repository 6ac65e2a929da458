//! `chronicle export`: an audit export (NDJSON, CSV, Parquet) or an evidence bundle, fetched
//! from a running server into a file, with a progress bar in bytes.

use std::path::Path;

use anyhow::{Context as _, bail};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::RequestBuilder;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::ExportArgs;

pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let url = args
        .remote
        .url
        .as_deref()
        .context("export talks to a running server: pass --url (or set CHRONICLE_URL)")?
        .trim_end_matches('/');
    let token = args
        .remote
        .token
        .as_deref()
        .context("--url needs --token (or CHRONICLE_TOKEN): a token with the export scope")?;
    let client = reqwest::Client::new();
    let request = if args.evidence {
        let (Some(from), Some(to)) = (&args.from, &args.to) else {
            bail!("an evidence bundle needs --from and --to (the recorded_at range)");
        };
        if !args.query.is_empty() {
            bail!("an evidence bundle holds every event of the range: drop the query");
        }
        client
            .post(format!("{url}/v1/workspaces/{}/evidence", args.workspace))
            .json(&json!({"from": from, "to": to}))
    } else {
        let mut parameters = vec![("q", args.query.clone()), ("format", args.format.clone())];
        parameters.extend(args.from.clone().map(|from| ("from", from)));
        parameters.extend(args.to.clone().map(|to| ("to", to)));
        parameters.extend(
            args.min_position
                .map(|position| ("min_position", position.to_string())),
        );
        client
            .get(format!(
                "{url}/v1/workspaces/{}/audit/export",
                args.workspace
            ))
            .query(&parameters)
    };
    let written = download(request.bearer_auth(token), &args.output).await?;
    eprintln!("wrote {written} bytes to {}", args.output.display());
    Ok(())
}

/// Streams the answer into `output`; a failed or cut-short answer leaves no file behind.
async fn download(request: RequestBuilder, output: &Path) -> anyhow::Result<u64> {
    let mut response = request.send().await.context("cannot reach the server")?;
    let status = response.status();
    if !status.is_success() {
        let body: Value = response.json().await.unwrap_or(Value::Null);
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        bail!("the server answered {status}: {message}");
    }
    let progress = ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("exporting {bytes} {bytes_per_sec} {elapsed}")
            .expect("a valid progress template"),
    );
    let partial = output.with_extension("partial");
    let mut file = tokio::fs::File::create(&partial)
        .await
        .with_context(|| format!("cannot create {}", partial.display()))?;
    let mut written = 0u64;
    let outcome: anyhow::Result<()> = async {
        while let Some(chunk) = response
            .chunk()
            .await
            .context("the server cut the export short")?
        {
            file.write_all(&chunk).await?;
            written += chunk.len() as u64;
            progress.set_position(written);
        }
        file.flush().await?;
        Ok(())
    }
    .await;
    progress.finish_and_clear();
    if let Err(error) = outcome {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(error);
    }
    tokio::fs::rename(&partial, output)
        .await
        .with_context(|| format!("cannot write {}", output.display()))?;
    Ok(written)
}
