//! The evidence crate's errors.

use chronicle_store::{ErrorKind, StoreError};

/// A failure to write an export or an evidence bundle.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The caller asked for something that cannot be answered (a range that ends before it
    /// starts, a format Chronicle does not write).
    #[error("{0}")]
    InvalidInput(String),
    /// An event cannot be written in the format asked for (a time Parquet cannot hold).
    #[error("cannot export the event at position {position}: {reason}")]
    Unexportable { position: u64, reason: String },
    /// Writing to the sink or to a spool file failed (the reader went away, a full disk).
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the log, its proofs or its checkpoint failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer thread stopped before it finished: a bug or a panic it reported.
    #[error("internal: {0}")]
    Internal(String),
}

impl EvidenceError {
    /// Returns the kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EvidenceError::InvalidInput(_) => ErrorKind::InvalidInput,
            EvidenceError::Store(error) => error.kind(),
            EvidenceError::Io(_) => ErrorKind::Unavailable,
            EvidenceError::Unexportable { .. } | EvidenceError::Internal(_) => ErrorKind::Internal,
        }
    }
}

impl From<parquet::errors::ParquetError> for EvidenceError {
    fn from(error: parquet::errors::ParquetError) -> EvidenceError {
        match error {
            parquet::errors::ParquetError::External(inner) => {
                match inner.downcast::<std::io::Error>() {
                    Ok(io) => EvidenceError::Io(*io),
                    Err(other) => EvidenceError::Internal(format!("parquet: {other}")),
                }
            }
            other => EvidenceError::Internal(format!("parquet: {other}")),
        }
    }
}

impl From<arrow::error::ArrowError> for EvidenceError {
    fn from(error: arrow::error::ArrowError) -> EvidenceError {
        EvidenceError::Internal(format!("arrow: {error}"))
    }
}

impl From<csv::Error> for EvidenceError {
    fn from(error: csv::Error) -> EvidenceError {
        match error.into_kind() {
            csv::ErrorKind::Io(io) => EvidenceError::Io(io),
            other => EvidenceError::Internal(format!("csv: {other:?}")),
        }
    }
}

impl From<zip::result::ZipError> for EvidenceError {
    fn from(error: zip::result::ZipError) -> EvidenceError {
        match error {
            zip::result::ZipError::Io(io) => EvidenceError::Io(io),
            other => EvidenceError::Internal(format!("zip: {other}")),
        }
    }
}
