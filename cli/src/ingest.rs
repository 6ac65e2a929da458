//! `chronicle ingest FILE.ndjson`: appends a file's events in atomic batches, into the data
//! directory or through a running server, with a progress bar. A bad line stops the ingest
//! before its batch; every batch before it stays appended, and the message says how far it got.

use std::fs::File;
use std::io::{BufRead, BufReader};

use anyhow::{Context, anyhow, bail};
use chronicle_domain::{NewEvent, PreparedEvent, SUBMITTED_BY_ADMIN};
use chronicle_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use uuid::Uuid;

use crate::IngestArgs;
use crate::data_dir::DataDir;

/// Where batches go.
enum Sink {
    Local(Store),
    Remote {
        client: reqwest::Client,
        url: String,
        token: String,
    },
}

impl Sink {
    /// Appends one batch; `first_line` numbers the batch's first line for error messages.
    async fn append(&self, batch: Vec<Value>, first_line: usize) -> anyhow::Result<()> {
        match self {
            Sink::Local(store) => {
                let events = batch
                    .iter()
                    .enumerate()
                    .map(|(offset, value)| {
                        NewEvent::from_json(value, Uuid::now_v7())
                            .map(|event| PreparedEvent::new(event, SUBMITTED_BY_ADMIN))
                            .map_err(|invalid| anyhow!("line {}: {invalid}", first_line + offset))
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                store
                    .append(events)
                    .await
                    .map_err(|error| anyhow!("lines {first_line}…: {error}"))?;
            }
            Sink::Remote { client, url, token } => {
                let response = client
                    .post(format!("{}/v1/events", url.trim_end_matches('/')))
                    .bearer_auth(token)
                    .json(&serde_json::json!({ "events": batch }))
                    .send()
                    .await
                    .with_context(|| format!("cannot reach {url}"))?;
                if !response.status().is_success() {
                    let status = response.status();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let error = &body["error"];
                    let line = error["index"]
                        .as_u64()
                        .map(|index| first_line + index as usize);
                    let message = error["message"].as_str().unwrap_or("no message");
                    match line {
                        Some(line) => bail!("line {line}: {message} ({status})"),
                        None => bail!("lines {first_line}…: {message} ({status})"),
                    }
                }
            }
        }
        Ok(())
    }
}

pub async fn ingest(args: IngestArgs) -> anyhow::Result<()> {
    let file =
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let (sink, _data) = match &args.remote.url {
        Some(url) => {
            let token = args
                .remote
                .token
                .clone()
                .context("--url needs a token: pass --token or set CHRONICLE_TOKEN")?;
            (
                Sink::Remote {
                    client: reqwest::Client::new(),
                    url: url.clone(),
                    token,
                },
                None,
            )
        }
        None => {
            let data = DataDir::open(&args.storage.data, args.storage.database_url.as_deref())?;
            let store = data.open_store(&args.storage).await?;
            (Sink::Local(store), Some(data))
        }
    };

    let progress = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("ingesting {bar:40} {bytes}/{total_bytes} {msg}")
            .expect("a valid progress template"),
    );
    let started = std::time::Instant::now();
    let mut reader = BufReader::new(file);
    let mut batch = Vec::with_capacity(args.batch as usize);
    let mut batch_first_line = 1;
    let mut line_number = 0;
    let mut appended = 0usize;
    let mut line = String::new();
    let outcome: anyhow::Result<()> = async {
        loop {
            line.clear();
            let read = reader
                .read_line(&mut line)
                .with_context(|| format!("cannot read {}", args.file.display()))?;
            if read == 0 {
                break;
            }
            line_number += 1;
            progress.inc(read as u64);
            if line.trim().is_empty() {
                continue;
            }
            if batch.is_empty() {
                batch_first_line = line_number;
            }
            let value: Value = serde_json::from_str(&line)
                .map_err(|error| anyhow!("line {line_number}: not JSON: {error}"))?;
            batch.push(value);
            if batch.len() == args.batch as usize {
                let count = batch.len();
                sink.append(std::mem::take(&mut batch), batch_first_line)
                    .await?;
                appended += count;
                let rate = appended as f64 / started.elapsed().as_secs_f64().max(1e-9);
                progress.set_message(format!("{appended} events, {rate:.0}/s"));
            }
        }
        if !batch.is_empty() {
            let count = batch.len();
            sink.append(std::mem::take(&mut batch), batch_first_line)
                .await?;
            appended += count;
        }
        Ok(())
    }
    .await;
    progress.finish_and_clear();
    if let Sink::Local(store) = &sink {
        store.shutdown().await;
    }
    match outcome {
        Ok(()) => {
            eprintln!(
                "ingested {appended} events from {} in {:.1}s",
                args.file.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(error) => Err(error.context(format!(
            "stopped: the {appended} events before line {batch_first_line} are appended, nothing from that line on"
        ))),
    }
}
