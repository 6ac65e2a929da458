//! The offline verifier of evidence bundles: pure over the zip's bytes, so it can be fuzzed, and
//! written for hostile input (bounded sizes, only the bundle's own file names, no panics).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{Cursor, Read};

use chronicle_domain::merkle::{Hash, from_hex, to_hex, verify_inclusion};
use chronicle_domain::{RecordedEvent, canonical_json, leaf_hash, parse_timestamp};
use chronicle_store::checkpoint::{CheckpointError, NoteVerifier, open_signed_checkpoint};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::bundle::{
    BUNDLE_FORMAT, CHECKPOINT, EVENTS_NDJSON, EVENTS_PARQUET, MANIFEST, PROOFS_JSON, PUBLIC_KEY,
    README,
};
use crate::columnar::read_parquet;

/// The most bytes a bundle may unpack to, all files together.
pub const MAX_UNPACKED_BYTES: u64 = 1 << 30;
/// The most entries a bundle's zip may hold.
pub const MAX_ENTRIES: usize = 16;

/// Every file a bundle holds.
const FILES: [&str; 7] = [
    EVENTS_NDJSON,
    EVENTS_PARQUET,
    PROOFS_JSON,
    CHECKPOINT,
    PUBLIC_KEY,
    README,
    MANIFEST,
];

/// One check of a bundle and its outcome, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub passed: bool,
    pub message: String,
}

/// What the verifier found: every check it made, in order, and whether the checkpoint's signer
/// is one the caller trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    pub checks: Vec<Check>,
    /// True only when a trusted key was given and the bundle's key is that key. Without one the
    /// checks prove the bundle is consistent with itself, not that the log signed it: anyone
    /// can make a key, sign a checkpoint and put both in a bundle.
    pub trusted_signer: bool,
}

impl BundleReport {
    /// Why the signer is not trusted, in plain words, when it is not.
    pub const UNTRUSTED_SIGNER: &str =
        "the checkpoint's signer is not trusted: pass --key KEYFILE with the public key you trust";

    /// True when every check passed (whether or not the signer is trusted: see
    /// [`BundleReport::trusted_signer`]).
    pub fn is_valid(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|check| check.passed)
    }

    /// Returns the checks that failed.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| !check.passed)
    }

    fn pass(&mut self, message: impl Into<String>) {
        self.checks.push(Check {
            passed: true,
            message: message.into(),
        });
    }

    fn fail(&mut self, message: impl Into<String>) {
        self.checks.push(Check {
            passed: false,
            message: message.into(),
        });
    }

    /// Records one check: `Ok` is its passing message, `Err` why it failed.
    fn check(&mut self, outcome: Result<String, String>) -> bool {
        match outcome {
            Ok(message) => {
                self.pass(message);
                true
            }
            Err(message) => {
                self.fail(message);
                false
            }
        }
    }
}

impl fmt::Display for BundleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            let mark = if check.passed { "OK    " } else { "FAILED" };
            writeln!(f, "{mark}  {}", check.message)?;
        }
        if !self.trusted_signer {
            writeln!(f, "NOT TRUSTED  {}", BundleReport::UNTRUSTED_SIGNER)?;
        }
        Ok(())
    }
}

/// Checks an evidence bundle: each file against the manifest, each event's leaf hash, each
/// inclusion proof against the signed checkpoint, the signature (and, when `trusted_key` is
/// given, that the bundle's key is that one), that the checkpoint is exactly the workspace tree
/// of the key's log (origin `KEY NAME/workspaces/WS`, no extension lines), the workspace of
/// every event, the completeness of the range, and that the Parquet rows equal the NDJSON
/// events. Without `trusted_key` the report's signer is untrusted, however valid it is.
pub fn verify_bundle(zip_bytes: &[u8], trusted_key: Option<&str>) -> BundleReport {
    let mut report = BundleReport::default();
    // The checks below never index unchecked; this turns a bug into a failed check, not a crash.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        verify_into(zip_bytes, trusted_key, &mut report)
    }));
    if outcome.is_err() {
        report.fail("the verifier stopped on input it could not handle: the bundle is malformed");
    }
    report
}

/// The manifest, as far as the verifier reads it.
#[derive(Deserialize)]
struct Manifest {
    format: String,
    workspace: String,
    from: String,
    to: String,
    events: u64,
    tree_size: u64,
    files: BTreeMap<String, ManifestFile>,
}

#[derive(Deserialize)]
struct ManifestFile {
    sha256: String,
}

/// `proofs.json`.
#[derive(Deserialize)]
struct Proofs {
    proofs: Vec<Proof>,
    before: Option<Boundary>,
    after: Option<Boundary>,
}

#[derive(Deserialize)]
struct Proof {
    leaf_index: u64,
    tree_size: u64,
    leaf_hash: String,
    hashes: Vec<String>,
}

#[derive(Deserialize)]
struct Boundary {
    event: Value,
    proof: Proof,
}

/// An event as the bundle holds it: its JSON, the leaf hash recomputed from it, and its fields.
struct BundledEvent {
    leaf: Hash,
    event: RecordedEvent,
    recorded_at: OffsetDateTime,
}

fn verify_into(zip_bytes: &[u8], trusted_key: Option<&str>, report: &mut BundleReport) {
    let Some(files) = unpack(zip_bytes, report) else {
        return;
    };
    let file = |name: &str| files.get(name).map(Vec::as_slice).unwrap_or_default();

    // The manifest and the files it lists.
    let manifest: Manifest = match serde_json::from_slice(file(MANIFEST)) {
        Ok(manifest) => manifest,
        Err(error) => return report.fail(format!("{MANIFEST} is not a bundle manifest: {error}")),
    };
    if manifest.format != BUNDLE_FORMAT {
        report.fail(format!(
            "{MANIFEST} names format `{}`, not `{BUNDLE_FORMAT}`",
            manifest.format
        ));
    }
    let mut mismatched = Vec::new();
    for name in FILES.iter().filter(|name| **name != MANIFEST) {
        let digest = to_hex(&Sha256::digest(file(name)).into());
        match manifest.files.get(*name) {
            Some(listed) if listed.sha256.eq_ignore_ascii_case(&digest) => {}
            Some(_) => {
                mismatched.push(format!("{name} does not match its SHA-256 in the manifest"))
            }
            None => mismatched.push(format!("{name} is not listed in the manifest")),
        }
    }
    report.check(if mismatched.is_empty() {
        Ok(format!("every file matches its SHA-256 in {MANIFEST}"))
    } else {
        Err(mismatched.join("; "))
    });
    let (Ok(from), Ok(to)) = (
        parse_timestamp(&manifest.from),
        parse_timestamp(&manifest.to),
    ) else {
        return report.fail(format!("{MANIFEST}: the range's from or to is not a time"));
    };
    let workspace = manifest.workspace.as_str();

    // The key and the signed checkpoint.
    let key_text = String::from_utf8_lossy(file(PUBLIC_KEY)).trim().to_owned();
    let verifier = match NoteVerifier::parse(&key_text) {
        Ok(verifier) => verifier,
        Err(error) => {
            return report.fail(format!("{PUBLIC_KEY} is not a note verifier key: {error}"));
        }
    };
    if let Some(trusted) = trusted_key {
        report.trusted_signer = report.check(if trusted.trim() == key_text {
            Ok(format!(
                "the bundle's public key is the trusted key ({})",
                verifier.name
            ))
        } else {
            Err(format!(
                "the bundle's public key ({key_text}) is not the trusted key ({})",
                trusted.trim()
            ))
        });
    }
    let note = String::from_utf8_lossy(file(CHECKPOINT));
    let checkpoint = match open_signed_checkpoint(&note, &verifier) {
        Ok(checkpoint) => checkpoint,
        Err(error @ CheckpointError::Malformed(_)) => {
            return report.fail(format!(
                "the checkpoint is not one this verifier accepts: {error}"
            ));
        }
        Err(error) => {
            return report.fail(format!(
                "the checkpoint's signature does not verify with the bundle's public key: {error}"
            ));
        }
    };
    report.pass(format!(
        "the checkpoint is signed by {} ({key_text}): tree size {}, root {}",
        verifier.name,
        checkpoint.size,
        to_hex(&checkpoint.root)
    ));
    // The key's name is the log's origin (the server refuses a key named otherwise), so the
    // checkpoint must name exactly that log's tree of this workspace.
    let expected_origin = format!("{}/workspaces/{workspace}", verifier.name);
    report.check(if checkpoint.origin != expected_origin {
        Err(format!(
            "the checkpoint is of `{}`, not of workspace {workspace} of the log {} (`{expected_origin}` expected)",
            checkpoint.origin, verifier.name
        ))
    } else if checkpoint.size != manifest.tree_size {
        Err(format!(
            "the checkpoint is of workspace {workspace}'s tree at size {}, not at the manifest's size {}",
            checkpoint.size, manifest.tree_size
        ))
    } else {
        Ok(format!(
            "the checkpoint is workspace {workspace}'s tree (`{expected_origin}`) at the manifest's size"
        ))
    });

    // The events and their leaf hashes.
    let Some(events) = read_events(file(EVENTS_NDJSON), report) else {
        return;
    };
    report.check(if events.len() as u64 == manifest.events {
        Ok(format!(
            "{EVENTS_NDJSON} holds the {} events the manifest counts",
            events.len()
        ))
    } else {
        Err(format!(
            "{EVENTS_NDJSON} holds {} events, the manifest counts {}",
            events.len(),
            manifest.events
        ))
    });
    let foreign: Vec<String> = events
        .iter()
        .filter(|bundled| bundled.event.workspace.as_deref() != Some(workspace))
        .map(|bundled| describe(&bundled.event))
        .collect();
    report.check(if foreign.is_empty() {
        Ok(format!("every event belongs to workspace {workspace}"))
    } else {
        Err(format!(
            "events of another workspace than {workspace}: {}",
            list(&foreign)
        ))
    });
    let outside: Vec<String> = events
        .iter()
        .filter(|bundled| bundled.recorded_at < from || bundled.recorded_at >= to)
        .map(|bundled| describe(&bundled.event))
        .collect();
    report.check(if outside.is_empty() {
        Ok(format!(
            "every event was recorded in [{}, {})",
            manifest.from, manifest.to
        ))
    } else {
        Err(format!(
            "events recorded outside [{}, {}): {}",
            manifest.from,
            manifest.to,
            list(&outside)
        ))
    });

    // The inclusion proofs.
    let proofs: Proofs = match serde_json::from_slice(file(PROOFS_JSON)) {
        Ok(proofs) => proofs,
        Err(error) => return report.fail(format!("{PROOFS_JSON} cannot be read: {error}")),
    };
    let mut unproven = Vec::new();
    if proofs.proofs.len() != events.len() {
        unproven.push(format!(
            "{PROOFS_JSON} holds {} proofs for {} events",
            proofs.proofs.len(),
            events.len()
        ));
    }
    for (bundled, proof) in events.iter().zip(&proofs.proofs) {
        if let Err(problem) = check_proof(bundled, proof, &checkpoint.root, checkpoint.size) {
            unproven.push(format!("{}: {problem}", describe(&bundled.event)));
        }
    }
    report.check(if unproven.is_empty() {
        Ok(format!(
            "every event's inclusion proof leads to the signed root at tree size {}",
            checkpoint.size
        ))
    } else {
        Err(format!("inclusion proofs that fail: {}", list(&unproven)))
    });

    // Completeness of the range.
    let before = boundary(
        proofs.before.as_ref(),
        "before",
        &checkpoint,
        workspace,
        report,
    );
    let after = boundary(
        proofs.after.as_ref(),
        "after",
        &checkpoint,
        workspace,
        report,
    );
    let (Some(before), Some(after)) = (before, after) else {
        return;
    };
    report.check(completeness(
        &events,
        before.as_ref(),
        after.as_ref(),
        from,
        to,
        checkpoint.size,
    ));

    // The Parquet rows.
    let recorded: Vec<&RecordedEvent> = events.iter().map(|bundled| &bundled.event).collect();
    report.check(
        match read_parquet(bytes::Bytes::copy_from_slice(file(EVENTS_PARQUET))) {
            Err(problem) => Err(format!("{EVENTS_PARQUET}: {problem}")),
            Ok(rows) if rows.len() != recorded.len() => Err(format!(
                "{EVENTS_PARQUET} holds {} rows, {EVENTS_NDJSON} {} events",
                rows.len(),
                recorded.len()
            )),
            Ok(rows) => match rows
                .iter()
                .zip(&recorded)
                .position(|(row, event)| row != *event)
            {
                Some(index) => Err(format!(
                    "{EVENTS_PARQUET} row {} differs from {EVENTS_NDJSON} line {}",
                    index + 1,
                    index + 1
                )),
                None => Ok(format!(
                    "the {} Parquet rows equal the NDJSON events",
                    rows.len()
                )),
            },
        },
    );
}

/// Reads the zip's entries: only the bundle's own names, each once, within the size limits.
fn unpack(zip_bytes: &[u8], report: &mut BundleReport) -> Option<BTreeMap<String, Vec<u8>>> {
    let mut archive = match zip::ZipArchive::new(Cursor::new(zip_bytes)) {
        Ok(archive) => archive,
        Err(error) => {
            report.fail(format!("the bundle is not a zip archive: {error}"));
            return None;
        }
    };
    if archive.len() > MAX_ENTRIES {
        report.fail(format!(
            "the bundle holds {} entries; a bundle has {}",
            archive.len(),
            FILES.len()
        ));
        return None;
    }
    let mut files = BTreeMap::new();
    let mut budget = MAX_UNPACKED_BYTES;
    let mut problems = Vec::new();
    for index in 0..archive.len() {
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(error) => {
                problems.push(format!("entry {index} cannot be read: {error}"));
                continue;
            }
        };
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if !FILES.contains(&name.as_str()) {
            problems.push(format!(
                "unexpected file `{}` (not read)",
                name.escape_debug()
            ));
            continue;
        }
        if files.contains_key(&name) {
            problems.push(format!("{name} appears twice"));
            continue;
        }
        let mut content = Vec::new();
        match (&mut entry).take(budget + 1).read_to_end(&mut content) {
            Ok(read) if read as u64 > budget => {
                report.fail(format!(
                    "the bundle unpacks to more than {MAX_UNPACKED_BYTES} bytes; refused"
                ));
                return None;
            }
            Ok(read) => budget -= read as u64,
            Err(error) => {
                problems.push(format!("{name} cannot be unpacked: {error}"));
                continue;
            }
        }
        files.insert(name, content);
    }
    let missing: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|name| !files.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("missing: {}", missing.join(", ")));
    }
    if problems.is_empty() {
        report.pass(format!(
            "the bundle holds its {} files and nothing else",
            FILES.len()
        ));
        Some(files)
    } else {
        report.fail(format!("the bundle's files: {}", problems.join("; ")));
        missing.is_empty().then_some(files)
    }
}

/// Reads `events.ndjson` and recomputes each event's leaf hash from its JSON.
fn read_events(ndjson: &[u8], report: &mut BundleReport) -> Option<Vec<BundledEvent>> {
    let Ok(text) = std::str::from_utf8(ndjson) else {
        report.fail(format!("{EVENTS_NDJSON} is not UTF-8"));
        return None;
    };
    let mut events = Vec::new();
    let mut unreadable = Vec::new();
    let mut mismatched = Vec::new();
    for (index, line) in text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.is_empty())
    {
        let line_number = index + 1;
        let value: Value = match serde_json::from_str(line) {
            Ok(value) => value,
            Err(error) => {
                unreadable.push(format!("line {line_number}: not JSON ({error})"));
                continue;
            }
        };
        let leaf = recomputed_leaf(&value);
        let event: RecordedEvent = match serde_json::from_value(value) {
            Ok(event) => event,
            Err(error) => {
                unreadable.push(format!(
                    "line {line_number}: not a recorded event ({error})"
                ));
                continue;
            }
        };
        let Ok(recorded_at) = parse_timestamp(&event.recorded_at) else {
            unreadable.push(format!("line {line_number}: recorded_at is not a time"));
            continue;
        };
        if !event.leaf_hash.eq_ignore_ascii_case(&to_hex(&leaf)) {
            mismatched.push(format!("line {line_number} ({})", describe(&event)));
        }
        events.push(BundledEvent {
            leaf,
            event,
            recorded_at,
        });
    }
    if !unreadable.is_empty() {
        report.fail(format!("{EVENTS_NDJSON}: {}", list(&unreadable)));
        return None;
    }
    report.check(if mismatched.is_empty() {
        Ok(format!(
            "every event's leaf hash equals SHA-256(0x00 || JCS(event)) ({} events)",
            events.len()
        ))
    } else {
        Err(format!(
            "events whose content does not match their leaf hash: {}",
            list(&mismatched)
        ))
    });
    Some(events)
}

/// The RFC 9162 leaf hash of an event as JSON: SHA-256(0x00 ‖ JCS(event without `leaf_hash`)).
pub fn recomputed_leaf(event: &Value) -> Hash {
    let mut body = event.clone();
    if let Some(object) = body.as_object_mut() {
        object.remove("leaf_hash");
    }
    leaf_hash(&canonical_json(&body).unwrap_or_default())
}

fn check_proof(
    bundled: &BundledEvent,
    proof: &Proof,
    root: &Hash,
    tree_size: u64,
) -> Result<(), String> {
    let seq = bundled.event.workspace_seq.unwrap_or_default();
    if seq == 0 || proof.leaf_index != seq - 1 {
        return Err(format!(
            "the proof is for leaf {}, the event is workspace_seq {seq}",
            proof.leaf_index
        ));
    }
    if proof.tree_size != tree_size {
        return Err(format!(
            "the proof is at tree size {}, the checkpoint at {tree_size}",
            proof.tree_size
        ));
    }
    if from_hex(&proof.leaf_hash) != Some(bundled.leaf) {
        return Err("the proof's leaf hash is not the event's".into());
    }
    let hashes: Option<Vec<Hash>> = proof.hashes.iter().map(|hash| from_hex(hash)).collect();
    let hashes = hashes.ok_or("the proof holds a hash that is not 64 hex digits")?;
    verify_inclusion(&bundled.leaf, proof.leaf_index, tree_size, &hashes, root)
        .map_err(|error| error.to_string())
}

/// Checks a boundary event and its proof; `Some(None)` when there is none, `None` when it fails.
fn boundary(
    entry: Option<&Boundary>,
    side: &str,
    checkpoint: &chronicle_store::checkpoint::Checkpoint,
    workspace: &str,
    report: &mut BundleReport,
) -> Option<Option<BundledEvent>> {
    let Some(entry) = entry else {
        return Some(None);
    };
    let outcome = (|| {
        let leaf = recomputed_leaf(&entry.event);
        let event: RecordedEvent = serde_json::from_value(entry.event.clone())
            .map_err(|error| format!("not a recorded event ({error})"))?;
        let recorded_at =
            parse_timestamp(&event.recorded_at).map_err(|_| "recorded_at is not a time")?;
        if event.workspace.as_deref() != Some(workspace) {
            return Err(format!("{} belongs to another workspace", describe(&event)));
        }
        let bundled = BundledEvent {
            leaf,
            event,
            recorded_at,
        };
        check_proof(&bundled, &entry.proof, &checkpoint.root, checkpoint.size)
            .map_err(|problem| format!("{}: {problem}", describe(&bundled.event)))?;
        Ok(bundled)
    })();
    match outcome {
        Ok(bundled) => {
            report.pass(format!(
                "the boundary event {side} the range ({}) is proven in the signed tree",
                describe(&bundled.event)
            ));
            Some(Some(bundled))
        }
        Err(problem) => {
            report.fail(format!("the boundary event {side} the range: {problem}"));
            None
        }
    }
}

/// Gap-free workspace_seq from the `before` boundary (or 1) to the `after` boundary (or the tree
/// size), with the boundaries recorded outside the range.
fn completeness(
    events: &[BundledEvent],
    before: Option<&BundledEvent>,
    after: Option<&BundledEvent>,
    from: OffsetDateTime,
    to: OffsetDateTime,
    tree_size: u64,
) -> Result<String, String> {
    let seq = |bundled: &BundledEvent| bundled.event.workspace_seq.unwrap_or_default();
    let mut expected = match before {
        Some(before) if before.recorded_at >= from => {
            return Err(format!(
                "the event before the range ({}) was recorded at {}, not before the range",
                describe(&before.event),
                before.event.recorded_at
            ));
        }
        Some(before) => seq(before).saturating_add(1),
        None => 1,
    };
    for bundled in events {
        if seq(bundled) != expected {
            return Err(format!(
                "the range is not complete: workspace_seq {expected} is expected where {} stands",
                describe(&bundled.event)
            ));
        }
        expected = expected.saturating_add(1);
    }
    match after {
        Some(after) if after.recorded_at < to => Err(format!(
            "the event after the range ({}) was recorded at {}, inside the range",
            describe(&after.event),
            after.event.recorded_at
        )),
        Some(after) if seq(after) != expected => Err(format!(
            "the range is not complete: the event after it is workspace_seq {}, {expected} is expected",
            seq(after)
        )),
        None if expected - 1 != tree_size => Err(format!(
            "the range is not complete: it ends at workspace_seq {} with no event after it, but the tree holds {tree_size}",
            expected - 1
        )),
        _ => Ok(format!(
            "the range is complete: workspace_seq runs without a gap from {} to {}, bounded by {} and {}",
            expected - events.len() as u64,
            expected - 1,
            before.map_or("the workspace's start".to_owned(), |event| describe(
                &event.event
            )),
            after.map_or("the signed tree's end".to_owned(), |event| describe(
                &event.event
            )),
        )),
    }
}

fn describe(event: &RecordedEvent) -> String {
    match event.workspace_seq {
        Some(seq) => format!("position {} (workspace_seq {seq})", event.position),
        None => format!("position {}", event.position),
    }
}

/// At most ten items, then how many more.
fn list(items: &[String]) -> String {
    let shown: Vec<&str> = items.iter().take(10).map(String::as_str).collect();
    match items.len() {
        n if n > 10 => format!("{} and {} more", shown.join(", "), n - 10),
        _ => shown.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;

    use super::*;

    /// A zip of the bundle's file names holding `content` each.
    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, content) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    #[test]
    fn names_outside_the_bundle_are_refused_unread() {
        let mut entries: Vec<(&str, &[u8])> =
            FILES.iter().map(|name| (*name, &b"{}"[..])).collect();
        entries.push(("../../etc/passwd", b"root"));
        let report = verify_bundle(&zip_of(&entries), None);
        assert!(!report.is_valid());
        assert!(
            report
                .to_string()
                .contains("unexpected file `../../etc/passwd` (not read)"),
            "{report}"
        );
    }

    #[test]
    fn a_file_that_is_not_a_zip_fails_one_check() {
        let report = verify_bundle(b"not a zip", None);
        assert_eq!(report.checks.len(), 1);
        assert!(report.to_string().contains("not a zip archive"), "{report}");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_verify_nor_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
            prop_assert!(!verify_bundle(&bytes, None).is_valid());
        }

        #[test]
        fn damaged_bundles_never_verify_nor_panic(
            contents in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 7),
            flip in any::<prop::sample::Index>(),
        ) {
            let entries: Vec<(&str, &[u8])> = FILES
                .iter()
                .zip(&contents)
                .map(|(name, content)| (*name, content.as_slice()))
                .collect();
            let mut bytes = zip_of(&entries);
            let at = flip.index(bytes.len());
            bytes[at] ^= 0x5a;
            prop_assert!(!verify_bundle(&bytes, None).is_valid());
        }
    }
}
