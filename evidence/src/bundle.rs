//! Evidence bundles: every event of a workspace recorded in a time range, with what an auditor
//! needs to check them offline (see [`crate::verify_bundle`]).
//!
//! The range is found without scanning the workspace: `recorded_at` grows with the log
//! position, so a binary search over positions (each probe one `read_workspace(…, 1)`, itself
//! O(log n)) finds the first event at or after `from`. Events are then read forward, page by
//! page, up to `to` and never past the signed checkpoint's tree size, each with its inclusion
//! proof at that size. A writer thread spools the NDJSON, Parquet and proofs to temporary files
//! as the pages come, then writes the zip to the sink in one stream.

use std::io::{BufWriter, Read, Seek, SeekFrom, Write};

use chronicle_domain::merkle::to_hex;
use chronicle_domain::{RecordedEvent, format_timestamp, parse_timestamp};
use chronicle_store::{InclusionProof, Store, TreeId};
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use crate::columnar::ParquetWriter;
use crate::error::EvidenceError;
use crate::export::Worker;
use crate::ndjson::NdjsonWriter;

/// The files of a bundle, in the order they are written (the manifest last).
pub const EVENTS_NDJSON: &str = "events.ndjson";
pub const EVENTS_PARQUET: &str = "events.parquet";
pub const PROOFS_JSON: &str = "proofs.json";
pub const CHECKPOINT: &str = "checkpoint";
pub const PUBLIC_KEY: &str = "public-key";
pub const README: &str = "README.txt";
pub const MANIFEST: &str = "manifest.json";
/// The `format` the manifest names.
pub const BUNDLE_FORMAT: &str = "chronicle-evidence/1";

/// Events read from the log at a time.
const PAGE: u32 = 1_000;

/// One bundle to build: the workspace's events with `recorded_at` in `[from, to)`.
#[derive(Debug, Clone)]
pub struct BundleRequest {
    pub workspace: String,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// What a built bundle holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BundleSummary {
    /// Events in the range.
    pub count: u64,
    /// The size of the workspace tree at the signed checkpoint every proof leads to.
    pub tree_size: u64,
}

/// An event with its inclusion proof in the workspace tree.
#[derive(Debug, Clone, Serialize)]
struct Proven {
    event: RecordedEvent,
    proof: InclusionProof,
}

/// What the writer thread is handed.
enum Part {
    /// The next events of the range.
    Events(Vec<Proven>),
    /// The workspace's events just before and just after the range, when they exist.
    Boundaries {
        before: Option<Box<Proven>>,
        after: Option<Box<Proven>>,
    },
}

/// A bundle whose range and signed tree are fixed: what it will hold is known before a byte
/// of it is written, so the read can be recorded first.
pub struct BundlePlan {
    header: Header,
    /// The range's events are the workspace's first ones after this log position.
    start: u64,
    /// The workspace's event just before the range, when there is one.
    before: Option<Box<Proven>>,
    summary: BundleSummary,
}

impl BundlePlan {
    /// What the bundle will hold.
    pub fn summary(&self) -> BundleSummary {
        self.summary
    }
}

/// Signs the workspace's tree and finds the range of `request` in it (two binary searches,
/// never a scan), counting its events.
pub async fn plan_bundle(
    store: &Store,
    request: &BundleRequest,
) -> Result<BundlePlan, EvidenceError> {
    if request.to < request.from {
        return Err(EvidenceError::InvalidInput(
            "to must not be before from".into(),
        ));
    }
    let workspace = request.workspace.as_str();
    let checkpoint = store.checkpoint(TreeId::Workspace(workspace)).await?;
    let tree_size = checkpoint.size;
    let head = store.head().position;
    let in_tree = |event: &RecordedEvent| event.workspace_seq.is_some_and(|seq| seq <= tree_size);
    let start = first_position_from(store, workspace, head, |event| {
        Ok(!in_tree(event) || recorded_at(event)? >= request.from)
    })
    .await?;
    let end = first_position_from(store, workspace, head, |event| {
        Ok(!in_tree(event) || recorded_at(event)? >= request.to)
    })
    .await?;
    // The sequence number of the first event of the tree after a position, or one past the tree.
    let next_seq = async |position: u64| -> Result<u64, EvidenceError> {
        let next = first_after(store, workspace, position).await?;
        Ok(next
            .and_then(|event| event.workspace_seq)
            .map_or(tree_size + 1, |seq| seq.min(tree_size + 1)))
    };
    let count = next_seq(end).await?.saturating_sub(next_seq(start).await?);
    let before = match start {
        0 => None,
        start => first_after(store, workspace, start - 1)
            .await?
            .filter(in_tree),
    };
    let before = match before {
        Some(event) => Some(Box::new(prove(store, workspace, tree_size, event).await?)),
        None => None,
    };
    let header = Header {
        workspace: workspace.to_owned(),
        from: format_timestamp(request.from),
        to: format_timestamp(request.to),
        tree_size,
        root: to_hex(&checkpoint.root),
        checkpoint: checkpoint.note,
        public_key: store.verifier_key().to_owned(),
        to_time: request.to,
        count,
    };
    Ok(BundlePlan {
        header,
        start,
        before,
        summary: BundleSummary { count, tree_size },
    })
}

/// Writes the planned bundle as a zip into `sink`; answers the sink. Fails when the range
/// read does not hold the events the plan counted.
pub async fn write_bundle<W: Write + Send + 'static>(
    store: &Store,
    plan: BundlePlan,
    sink: W,
) -> Result<W, EvidenceError> {
    let BundlePlan {
        header,
        start,
        before,
        summary,
    } = plan;
    let workspace = header.workspace.clone();
    let to = header.to_time;
    let tree_size = summary.tree_size;
    let worker = Worker::spawn(move |parts| write_zip(header, parts, sink));
    let in_tree = |event: &RecordedEvent| event.workspace_seq.is_some_and(|seq| seq <= tree_size);
    let mut after = None;
    let mut position = start;
    'pages: loop {
        let events = store.read_workspace(&workspace, position, PAGE).await?;
        let Some(last) = events.last() else { break };
        position = last.position;
        let mut page = Vec::with_capacity(events.len());
        for event in events {
            if !in_tree(&event) {
                break;
            }
            if recorded_at(&event)? >= to {
                after = Some(Box::new(prove(store, &workspace, tree_size, event).await?));
                break;
            }
            page.push(prove(store, &workspace, tree_size, event).await?);
        }
        let full = page.len() == PAGE as usize;
        if !page.is_empty() && !worker.send(Part::Events(page)).await {
            break 'pages;
        }
        if !full {
            break;
        }
    }
    // A stopped worker ignores this; its error comes out of `finish`.
    worker.send(Part::Boundaries { before, after }).await;
    worker.finish().await
}

fn recorded_at(event: &RecordedEvent) -> Result<OffsetDateTime, EvidenceError> {
    parse_timestamp(&event.recorded_at).map_err(|_| EvidenceError::Unexportable {
        position: event.position,
        reason: "recorded_at is not a time".into(),
    })
}

async fn first_after(
    store: &Store,
    workspace: &str,
    position: u64,
) -> Result<Option<RecordedEvent>, EvidenceError> {
    Ok(store.read_workspace(workspace, position, 1).await?.pop())
}

/// Returns the smallest log position `p` (at most `head`) such that the workspace's first event
/// after `p` is `reached`, or there is none. `reached` must be monotonic in the log position.
async fn first_position_from(
    store: &Store,
    workspace: &str,
    head: u64,
    reached: impl Fn(&RecordedEvent) -> Result<bool, EvidenceError>,
) -> Result<u64, EvidenceError> {
    let holds = async |position: u64| -> Result<bool, EvidenceError> {
        match first_after(store, workspace, position).await? {
            None => Ok(true),
            Some(event) => reached(&event),
        }
    };
    if holds(0).await? {
        return Ok(0);
    }
    // Invariant: `low` does not hold; `high` holds (`head` by definition: nothing of the signed
    // tree lies past it).
    let (mut low, mut high) = (0, head.max(1));
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if holds(middle).await? {
            high = middle;
        } else {
            low = middle;
        }
    }
    Ok(high)
}

async fn prove(
    store: &Store,
    workspace: &str,
    tree_size: u64,
    event: RecordedEvent,
) -> Result<Proven, EvidenceError> {
    let seq = event.workspace_seq.unwrap_or_default();
    let proof = store
        .inclusion_proof(TreeId::Workspace(workspace), seq - 1, Some(tree_size))
        .await?;
    Ok(Proven { event, proof })
}

/// What the writer thread knows from the start.
struct Header {
    workspace: String,
    from: String,
    to: String,
    tree_size: u64,
    root: String,
    checkpoint: String,
    public_key: String,
    /// `to`, as a time.
    to_time: OffsetDateTime,
    /// The events the range holds, counted before reading them.
    count: u64,
}

/// Spools the parts to temporary files, then writes the zip.
fn write_zip<W: Write + Send>(
    header: Header,
    mut parts: mpsc::Receiver<Part>,
    sink: W,
) -> Result<W, EvidenceError> {
    let mut ndjson = NdjsonWriter::new(tempfile::tempfile()?);
    let mut parquet = ParquetWriter::new(BufWriter::new(tempfile::tempfile()?))?;
    let mut proofs = BufWriter::new(tempfile::tempfile()?);
    write!(
        proofs,
        "{{\"workspace\":{},\"tree_size\":{},\"root\":\"{}\",\"proofs\":[",
        json!(header.workspace),
        header.tree_size,
        header.root
    )?;
    let (mut count, mut first_seq, mut last_seq) = (0u64, None, None);
    let mut boundaries = (None, None);
    while let Some(part) = parts.blocking_recv() {
        match part {
            Part::Events(page) => {
                let events: Vec<RecordedEvent> =
                    page.iter().map(|proven| proven.event.clone()).collect();
                ndjson.write_page(&events)?;
                parquet.write_page(&events)?;
                for proven in &page {
                    if count > 0 {
                        proofs.write_all(b",")?;
                    }
                    serde_json::to_writer(&mut proofs, &proven.proof)
                        .map_err(std::io::Error::from)?;
                    count += 1;
                    first_seq = first_seq.or(proven.event.workspace_seq);
                    last_seq = proven.event.workspace_seq;
                }
            }
            Part::Boundaries { before, after } => boundaries = (before, after),
        }
    }
    if count != header.count {
        // Nothing of the zip has been written.
        return Err(EvidenceError::Internal(format!(
            "the range held {count} events, not the {} counted",
            header.count
        )));
    }
    write!(
        proofs,
        "],\"before\":{},\"after\":{}}}",
        json!(boundaries.0),
        json!(boundaries.1)
    )?;

    let mut zip = ZipWriter::new_stream(sink);
    let mut files = serde_json::Map::new();
    let spooled = [
        (EVENTS_NDJSON, ndjson.finish()?),
        (
            EVENTS_PARQUET,
            parquet
                .finish()?
                .into_inner()
                .map_err(|error| error.into_error())?,
        ),
        (
            PROOFS_JSON,
            proofs.into_inner().map_err(|error| error.into_error())?,
        ),
    ];
    for (name, mut file) in spooled {
        file.seek(SeekFrom::Start(0))?;
        let entry = add_entry(&mut zip, name, &mut file)?;
        files.insert(name.into(), entry);
    }
    let readme = readme(&header);
    for (name, text) in [
        (CHECKPOINT, header.checkpoint.as_str()),
        (PUBLIC_KEY, &format!("{}\n", header.public_key)),
        (README, &readme),
    ] {
        let entry = add_entry(&mut zip, name, &mut text.as_bytes())?;
        files.insert(name.into(), entry);
    }
    let manifest = json!({
        "format": BUNDLE_FORMAT,
        "workspace": header.workspace,
        "from": header.from,
        "to": header.to,
        "events": count,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "tree_size": header.tree_size,
        "root": header.root,
        "files": files,
    });
    let manifest = serde_json::to_vec_pretty(&manifest).map_err(std::io::Error::from)?;
    add_entry(&mut zip, MANIFEST, &mut manifest.as_slice())?;
    Ok(zip.finish()?.into_inner())
}

/// Copies `content` into a new entry while hashing it; answers `{"sha256", "bytes"}`.
fn add_entry<W: Write>(
    zip: &mut ZipWriter<zip::write::StreamWriter<W>>,
    name: &str,
    content: &mut impl Read,
) -> Result<serde_json::Value, EvidenceError> {
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(name, options)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        let read = content.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
        zip.write_all(&buffer[..read])?;
        bytes += read as u64;
    }
    Ok(json!({"sha256": to_hex(&hasher.finalize().into()), "bytes": bytes}))
}

fn readme(header: &Header) -> String {
    format!(
        "Chronicle evidence bundle
=========================

Workspace {workspace}: every event recorded from {from} (inclusive) to {to} (exclusive),
proven against the workspace tree's signed checkpoint at tree size {size}.

Files
- {EVENTS_NDJSON}: the events, one JSON object a line, exactly as Chronicle's API returns them.
- {EVENTS_PARQUET}: the same rows as Parquet (ZSTD), `data` as a JSON string column, `id` as a
  UUID and `leaf_hash` as its 32 bytes.
- {PROOFS_JSON}: for each event, in order, its RFC 9162 inclusion proof in the workspace tree
  (`leaf_index` = workspace_seq - 1, `tree_size`, `leaf_hash`, `hashes`), then `before` and
  `after`: the workspace's events just before and just after the range, with their proofs.
- {CHECKPOINT}: the workspace tree's C2SP tlog-checkpoint, signed as a C2SP signed note (Ed25519).
- {PUBLIC_KEY}: the signer's note verifier key, NAME+KEYID+BASE64.
- {MANIFEST}: the workspace, the range, the counts and the SHA-256 of every other file.

Check it with Chronicle
    chronicle verify BUNDLE.zip --key TRUSTED-PUBLIC-KEY
(--key names the key you obtained from the log's operator; without it the bundle's own key is
used and only the bundle's internal consistency is shown.)

Check it by hand
1. SHA-256 of each file equals its entry in {MANIFEST}.
2. The checkpoint's signature verifies with the public key (c2sp.org/signed-note; the key id is
   the first 4 bytes of SHA-256(name || 0x0A || 0x01 || public key)), and that key is the one
   you trust. Its body is origin, tree size, base64 root hash.
3. For each line of {EVENTS_NDJSON}: remove `leaf_hash`, encode the rest as RFC 8785 canonical
   JSON (JCS), and check SHA-256(0x00 || JCS) equals `leaf_hash` and the proof's `leaf_hash`.
4. Each proof leads from its leaf hash to the checkpoint's root (RFC 9162 section 2.1.3.2,
   inner node = SHA-256(0x01 || left || right)).
5. Completeness: workspace_seq is gap-free and recorded_at never decreases along it, so the
   events are consecutive in workspace_seq, the `before` event (if any) has the sequence number
   just below the first and was recorded before {from}, and the `after` event (if any) has the
   one just above the last and was recorded at or after {to}. Without `before` the range starts
   at workspace_seq 1; without `after` it ends at the tree size.
6. Every event's `workspace` is {workspace}, and the Parquet rows equal the NDJSON events.
",
        workspace = header.workspace,
        from = header.from,
        to = header.to,
        size = header.tree_size,
    )
}
