//! The store's errors.

use chronicle_domain::{ExpectedVersion, MAX_LEAF_DATA_BYTES};
use uuid::Uuid;

/// What kind of failure an error is, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidInput,
    NotFound,
    Conflict,
    Unavailable,
    Internal,
}

/// A failure of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The stream's version did not meet the producer's demand; nothing of the batch was appended.
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    WrongExpectedVersion {
        index: usize,
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    /// An event id that is already recorded (or repeated in the batch) with other content.
    #[error("event id {id} is already recorded with other content")]
    DuplicateEventId { index: usize, id: Uuid },
    /// An event whose leaf data would pass [`MAX_LEAF_DATA_BYTES`]; nothing of the batch was
    /// appended.
    #[error(
        "event {index} would have up to {bytes} bytes of leaf data, more than {MAX_LEAF_DATA_BYTES}"
    )]
    EventTooLarge { index: usize, bytes: usize },
    /// The store is shutting down or cannot take writes now (a full disk, a busy database).
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be read back.
    #[error("stored event at position {position} is unreadable: {source}")]
    Corrupt {
        position: u64,
        source: serde_json::Error,
    },
    /// A workspace in which no event was ever appended.
    #[error("no workspace {0}")]
    NoWorkspace(String),
    /// A tree size, leaf or range past what the log holds.
    #[error("{0}")]
    OutOfRange(String),
    /// A tree node the log should hold is missing: the store is damaged.
    #[error("tree node at level {level}, index {index} is missing or damaged")]
    MissingNode { level: u32, index: u64 },
    /// A row beside the log could not be read back.
    #[error("unreadable row: {0}")]
    Unreadable(String),
    /// The newest stored checkpoint was signed by another key than the one given.
    #[error(
        "the stored checkpoints were signed by another key than {0}: restore the signing key they were signed with, or start with --rotate-signing-key to sign with this one from now on"
    )]
    SigningKeyChanged(String),
    /// Signing a checkpoint failed.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration error: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Returns the kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StoreError::WrongExpectedVersion { .. } | StoreError::DuplicateEventId { .. } => {
                ErrorKind::Conflict
            }
            StoreError::Unavailable(_) => ErrorKind::Unavailable,
            StoreError::NoWorkspace(_) => ErrorKind::NotFound,
            StoreError::OutOfRange(_) | StoreError::EventTooLarge { .. } => ErrorKind::InvalidInput,
            StoreError::Database(error) if is_unavailable(error) => ErrorKind::Unavailable,
            StoreError::Corrupt { .. }
            | StoreError::MissingNode { .. }
            | StoreError::Checkpoint(_)
            | StoreError::SigningKeyChanged(_)
            | StoreError::Unreadable(_)
            | StoreError::Database(_)
            | StoreError::Migration(_) => ErrorKind::Internal,
        }
    }
}

/// A full disk, a locked or busy database, or an exhausted pool: worth retrying later.
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => {
            // SQLite primary codes: 5 BUSY, 6 LOCKED, 13 FULL, 10 IOERR.
            matches!(
                db.code()
                    .as_deref()
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| c & 0xff),
                Some(5 | 6 | 10 | 13)
            )
        }
        _ => false,
    }
}
