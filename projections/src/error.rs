//! The projections' errors.

use chronicle_store::{ErrorKind, StoreError};

/// A failure of a read model query, the runner or a rebuild.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    /// A query parameter the model cannot use.
    #[error("{message}")]
    InvalidParameter {
        parameter: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A row of a read model could not be read back.
    #[error("unreadable row of {model}: {source}")]
    Corrupt {
        model: &'static str,
        source: serde_json::Error,
    },
}

impl ProjectionError {
    pub(crate) fn invalid(parameter: &'static str, message: impl Into<String>) -> Self {
        ProjectionError::InvalidParameter {
            parameter,
            message: message.into(),
        }
    }

    /// Returns the kind of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ProjectionError::InvalidParameter { .. } => ErrorKind::InvalidInput,
            ProjectionError::Store(error) => error.kind(),
            ProjectionError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => ErrorKind::Unavailable,
            ProjectionError::Database(_) | ProjectionError::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}
