//! Chronicle's evidence: exports of the audit log and verifiable evidence bundles.
//!
//! Layout:
//! - [`Format`] and [`ExportWriter`]: NDJSON (each line the recorded event exactly as the API
//!   returns it), CSV (`csv` crate quoting) and Parquet (`arrow` + `parquet`, ZSTD, typed
//!   columns), each written page by page so memory stays flat however large the export.
//!   [`ExportTask`] runs one on a blocking thread while the caller reads the next page.
//! - [`write_bundle`]: an evidence bundle (zip) of a workspace's events recorded in a range,
//!   with their inclusion proofs in the workspace tree, the boundary events that show the range
//!   is complete, the signed checkpoint, the public key and a manifest of SHA-256 hashes.
//! - [`verify_bundle`]: the offline verifier, pure over the zip's bytes, saying in plain words
//!   what holds and what does not.
//! - [`read_parquet`]: Parquet rows back into recorded events.
//!
//! Depends on `chronicle-domain` (JCS, Merkle proof checking) and `chronicle-store` (reads,
//! proofs, checkpoints); knows nothing of HTTP or of the search index: callers hand exports
//! their pages.

mod bundle;
mod columnar;
mod error;
mod export;
mod ndjson;
mod table;
mod verify;

pub use bundle::{
    BundlePlan, BundleRequest, BundleSummary, CHECKPOINT, EVENTS_NDJSON, EVENTS_PARQUET, MANIFEST,
    PROOFS_JSON, PUBLIC_KEY, README, plan_bundle, write_bundle,
};
pub use columnar::{ROW_GROUP_ROWS, parquet_schema, read_parquet};
pub use error::EvidenceError;
pub use export::{ExportTask, ExportWriter, Format, content_type, format_name, parse_format};
pub use table::CSV_COLUMNS;
pub use verify::{BundleReport, Check, MAX_ENTRIES, MAX_UNPACKED_BYTES, verify_bundle};
