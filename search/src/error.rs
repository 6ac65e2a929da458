//! The search crate's errors.

use chronicle_store::{ErrorKind, StoreError};

use crate::query::QueryError;

/// A failure of audit search.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The query does not parse; the error says where.
    #[error("{0}")]
    InvalidQuery(#[from] QueryError),
    /// The index did not reach the wanted log position in time.
    #[error("the search index is at position {position}, not yet at {wanted}")]
    NotCaughtUp { wanted: u64, position: u64 },
    /// The indexer has stopped (shutdown, or a failure it logged).
    #[error("the search index is unavailable: {0}")]
    Unavailable(String),
    /// The index could not be opened, written or read.
    #[error("search index: {0}")]
    Index(#[from] tantivy::TantivyError),
    /// The index directory could not be prepared.
    #[error("search index directory: {0}")]
    Io(#[from] std::io::Error),
    /// Reading the log or appending to it failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Chronicle built something it must not have: a bug.
    #[error("internal: {0}")]
    Internal(String),
}

impl SearchError {
    /// Returns the kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            SearchError::InvalidQuery(_) => ErrorKind::InvalidInput,
            SearchError::NotCaughtUp { .. } | SearchError::Unavailable(_) => ErrorKind::Unavailable,
            SearchError::Store(error) => error.kind(),
            SearchError::Index(_) | SearchError::Io(_) | SearchError::Internal(_) => {
                ErrorKind::Internal
            }
        }
    }
}
