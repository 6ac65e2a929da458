//! Chronicle's event store: the append-only log, its single appender with group commit, and
//! reads.
//!
//! Layout:
//! - [`Store`]: opens the database, runs migrations, starts the appender task, and answers
//!   reads from a separate pool of read-only connections.
//! - `appender`: the one task that writes. It takes every waiting request (up to a budget),
//!   checks idempotency and expected versions, assigns gap-free positions, stream versions and
//!   workspace sequence numbers, writes the rows in one transaction, commits, and only then
//!   answers and publishes the new [`Head`] on a `tokio::sync::watch`.
//! - [`StoreError`]: every failure, with an [`ErrorKind`] the API maps to a status.
//!
//! Depends on `chronicle-domain` for the events themselves; knows nothing of HTTP.

mod appender;
mod error;
mod reads;
mod store;

pub use error::{ErrorKind, StoreError};
pub use store::{Appended, Direction, Head, Store, StoreConfig};
