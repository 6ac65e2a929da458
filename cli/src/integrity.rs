//! `chronicle verify` and `chronicle checkpoint`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, anyhow, bail};
use chronicle_domain::merkle::{self, Frontier, Hash};
use chronicle_domain::{canonical_json, leaf_hash};
use chronicle_store::checkpoint::{NoteSigner, NoteVerifier, open_signed_checkpoint};
use chronicle_store::{Backend, TreeId, verify_database};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::data_dir::DataDir;
use crate::{CheckpointArgs, VerifyArgs};

fn progress_bar(total: u64) -> ProgressBar {
    ProgressBar::new(total).with_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events {per_sec} eta {eta}")
            .expect("a valid progress template"),
    )
}

/// The verifier key: the one in `--key` (the `NAME+KEYID+BASE64` text `/v1/public-key` serves),
/// else the one of the data directory's signing key.
fn verifier(key: Option<&Path>, data: Option<&Path>) -> anyhow::Result<NoteVerifier> {
    let text = match (key, data) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the key {}", path.display()))?,
        (None, Some(data)) => {
            let path = data.join("signing-key");
            let private = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "cannot read {}: pass the public key with --key",
                    path.display()
                )
            })?;
            NoteSigner::from_private_key_text(&private)
                .with_context(|| format!("cannot read the signing key {}", path.display()))?
                .verifier_key()
        }
        (None, None) => {
            bail!("pass the log's public key with --key (the text GET /v1/public-key answers)")
        }
    };
    NoteVerifier::parse(text.trim())
        .map_err(|error| anyhow!("the public key is not a note verifier key: {error}"))
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(bundle) = &args.bundle {
        return verify_bundle_file(bundle, args.key.as_deref());
    }
    let problems = match (&args.data, &args.remote.url) {
        (Some(data), None) => {
            verify_data(data, args.database_url.as_deref(), args.key.as_deref()).await?
        }
        (None, Some(url)) => {
            let token = args
                .remote
                .token
                .as_deref()
                .context("--url needs a token: pass --token or set CHRONICLE_TOKEN")?;
            verify_url(url, token, args.key.as_deref()).await?
        }
        _ => bail!(
            "say what to verify: --data DIR (a data directory) or --url URL (a running server)"
        ),
    };
    if problems.is_empty() {
        return Ok(());
    }
    for problem in &problems {
        outln!("NOT OK  {problem}");
    }
    bail!(
        "{} problem(s) found: this log does not verify",
        problems.len()
    )
}

/// The exit code of `chronicle verify BUNDLE` when every check holds but no trusted key was
/// given: the bundle agrees with itself, and nothing says the log signed it.
pub const UNTRUSTED_EXIT_CODE: i32 = 3;

/// Checks an evidence bundle offline and prints each check in plain words. A bundle that holds
/// but was checked without `--key` ends the process with [`UNTRUSTED_EXIT_CODE`].
fn verify_bundle_file(bundle: &Path, key: Option<&Path>) -> anyhow::Result<()> {
    let size = std::fs::metadata(bundle)
        .with_context(|| format!("cannot read {}", bundle.display()))?
        .len();
    if size > chronicle_evidence::MAX_UNPACKED_BYTES {
        bail!(
            "{}: {size} bytes is larger than any bundle this verifier reads",
            bundle.display()
        );
    }
    let bytes =
        std::fs::read(bundle).with_context(|| format!("cannot read {}", bundle.display()))?;
    let trusted = key
        .map(|path| {
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the key {}", path.display()))
        })
        .transpose()?;
    let report = chronicle_evidence::verify_bundle(&bytes, trusted.as_deref());
    out!("{report}");
    let failed = report.failures().count();
    if failed > 0 {
        bail!(
            "{failed} check(s) failed: {} does not verify",
            bundle.display()
        );
    }
    if !report.trusted_signer {
        outln!(
            "{} is consistent, but {}",
            bundle.display(),
            chronicle_evidence::BundleReport::UNTRUSTED_SIGNER
        );
        let _ = std::io::Write::flush(&mut std::io::stdout());
        eprintln!(
            "error: {}: {}",
            bundle.display(),
            chronicle_evidence::BundleReport::UNTRUSTED_SIGNER
        );
        std::process::exit(UNTRUSTED_EXIT_CODE);
    }
    outln!("{} verifies", bundle.display());
    Ok(())
}

async fn verify_data(
    data: &Path,
    database_url: Option<&str>,
    key: Option<&Path>,
) -> anyhow::Result<Vec<String>> {
    let verifier = verifier(key, Some(data))?;
    let database = Backend::from_url_or_path(database_url, &data.join("chronicle.db"))?;
    let bar = progress_bar(0);
    let report = verify_database(&database, &verifier, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await
    .with_context(|| format!("cannot read {}", database.describe()))?;
    bar.finish_and_clear();
    outln!(
        "checked {} events, {} trees, {} signed checkpoints in {}",
        report.events,
        report.trees,
        report.checkpoints,
        data.display()
    );
    if let Some(root) = report.log_root {
        outln!(
            "log tree: {} leaves, root {}",
            report.events,
            merkle::to_hex(&root)
        );
    }
    if report.is_clean() {
        outln!("OK      every leaf hash, every tree node and every last signed checkpoint holds");
    }
    Ok(report.problems)
}

/// Reads a running server's whole log, recomputes every leaf hash from the events as served,
/// rebuilds the log tree and each workspace tree, and checks them against the signed
/// checkpoints fetched before the read.
async fn verify_url(url: &str, token: &str, key: Option<&Path>) -> anyhow::Result<Vec<String>> {
    let client = Client {
        http: reqwest::Client::new(),
        url: url.trim_end_matches('/').to_owned(),
        token: token.to_owned(),
    };
    let verifier =
        match key {
            Some(_) => verifier(key, None)?,
            None => NoteVerifier::parse(client.text("/v1/public-key").await?.trim()).map_err(
                |error| anyhow!("the server's public key is not a note verifier key: {error}"),
            )?,
        };
    let mut problems = Vec::new();
    let log_note = client.text("/v1/checkpoint").await?;
    let log_checkpoint = open_signed_checkpoint(&log_note, &verifier)
        .context("the log's signed checkpoint does not verify")?;
    // The key's name is the log's origin (the server refuses a key named otherwise).
    if log_checkpoint.origin != verifier.name {
        problems.push(format!(
            "the log's checkpoint is of `{}`, not of the log `{}` the key names",
            log_checkpoint.origin, verifier.name
        ));
    }

    let bar = progress_bar(log_checkpoint.size);
    let mut log = Frontier::default();
    let mut workspaces: BTreeMap<String, Frontier> = BTreeMap::new();
    let mut after = 0u64;
    while log.size() < log_checkpoint.size {
        let page: Value = client
            .json(&format!("/v1/events?after={after}&limit=1000"))
            .await?;
        let events = page["events"]
            .as_array()
            .context("the server's /v1/events answer has no events list")?;
        if events.is_empty() {
            break;
        }
        for event in events {
            if log.size() == log_checkpoint.size {
                break;
            }
            let position = event["position"].as_u64().unwrap_or(0);
            if position != log.size() + 1 {
                problems.push(format!(
                    "position {}: missing (the log jumps to {position})",
                    log.size() + 1
                ));
            }
            let leaf = recomputed_leaf(event);
            if event["leaf_hash"].as_str() != Some(merkle::to_hex(&leaf).as_str()) {
                problems.push(format!(
                    "position {position}: the event does not match its leaf hash"
                ));
            }
            log.push(leaf);
            if let Some(workspace) = event["workspace"].as_str() {
                workspaces
                    .entry(workspace.to_owned())
                    .or_default()
                    .push(leaf);
            }
            after = position;
        }
        bar.set_position(log.size());
    }
    bar.finish_and_clear();
    compare_root(
        "log",
        &log,
        log_checkpoint.size,
        &log_checkpoint.root,
        &mut problems,
    );
    for (workspace, frontier) in &workspaces {
        let note = client
            .text(&format!("/v1/workspaces/{workspace}/checkpoint"))
            .await?;
        let expected_origin = format!("{}/workspaces/{workspace}", verifier.name);
        match open_signed_checkpoint(&note, &verifier) {
            Ok(checkpoint) if checkpoint.origin != expected_origin => problems.push(format!(
                "workspace {workspace}: the signed checkpoint is of `{}`, not `{expected_origin}`",
                checkpoint.origin
            )),
            Ok(checkpoint) if checkpoint.size <= frontier.size() => {
                // The workspace checkpoint was signed after the log one; leaves past the log
                // checkpoint were not read, so only an equal size can be compared.
                if checkpoint.size == frontier.size() {
                    compare_root(
                        &format!("workspace {workspace}"),
                        frontier,
                        checkpoint.size,
                        &checkpoint.root,
                        &mut problems,
                    );
                }
            }
            Ok(_) => {}
            Err(error) => problems.push(format!(
                "workspace {workspace}: the signed checkpoint does not verify: {error}"
            )),
        }
    }
    outln!(
        "checked {} events and {} workspace trees at {url}",
        log.size(),
        workspaces.len()
    );
    if problems.is_empty() {
        outln!("OK      every leaf hash holds and the rebuilt roots match the signed checkpoints");
    }
    Ok(problems)
}

fn recomputed_leaf(event: &Value) -> Hash {
    let mut body = event.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("leaf_hash");
    }
    leaf_hash(&canonical_json(&body).unwrap_or_default())
}

fn compare_root(
    name: &str,
    frontier: &Frontier,
    size: u64,
    root: &Hash,
    problems: &mut Vec<String>,
) {
    if frontier.size() < size {
        problems.push(format!(
            "{name} tree: the signed checkpoint covers {size} leaves but only {} events could be read",
            frontier.size()
        ));
    } else if frontier.root() != *root {
        problems.push(format!(
            "{name} tree: the root rebuilt from the events ({}) differs from the signed checkpoint's ({})",
            merkle::to_hex(&frontier.root()),
            merkle::to_hex(root)
        ));
    }
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Client {
    async fn get(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let response = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.url))?;
        if !response.status().is_success() {
            bail!("{path}: the server answered {}", response.status());
        }
        Ok(response)
    }

    async fn text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self.get(path).await?.text().await?)
    }

    async fn json(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self.get(path).await?.json().await?)
    }
}

pub async fn checkpoint(args: CheckpointArgs) -> anyhow::Result<()> {
    match &args.remote.url {
        Some(url) => {
            let token = args
                .remote
                .token
                .clone()
                .context("--url needs a token: pass --token or set CHRONICLE_TOKEN")?;
            let client = Client {
                http: reqwest::Client::new(),
                url: url.trim_end_matches('/').to_owned(),
                token,
            };
            out!("{}", client.text("/v1/checkpoint").await?);
            for workspace in &args.workspace {
                outln!();
                out!(
                    "{}",
                    client
                        .text(&format!("/v1/workspaces/{workspace}/checkpoint"))
                        .await?
                );
            }
        }
        None => {
            let data = DataDir::open(&args.storage.data, args.storage.database_url.as_deref())?;
            let store = data.open_store(&args.storage).await?;
            out!("{}", store.checkpoint(TreeId::Log).await?.note);
            for workspace in &args.workspace {
                outln!();
                out!(
                    "{}",
                    store.checkpoint(TreeId::Workspace(workspace)).await?.note
                );
            }
            store.shutdown().await;
        }
    }
    Ok(())
}
