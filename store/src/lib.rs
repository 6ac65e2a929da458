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
//! - `trees`: tree heads and inclusion and consistency proofs over the stored RFC 9162 trees
//!   (the log's, and each workspace's), in O(log n) node reads at any size.
//! - [`checkpoint`]: C2SP signed checkpoints, signed with the store's Ed25519 key.
//! - [`verify_database`]: checks a whole store without trusting it: every leaf hash, every
//!   tree node, the last signed checkpoint of each tree.
//! - `webhooks`: webhooks, their delivery cursors and the log of every delivery attempt.
//! - [`StoreError`]: every failure, with an [`ErrorKind`] the API maps to a status.
//!
//! Depends on `chronicle-domain` for the events themselves; knows nothing of HTTP.

mod appender;
pub mod checkpoint;
pub mod db;
mod error;
mod follow;
mod reads;
mod store;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod trees;
mod verify;
mod wal;
mod webhooks;

pub use db::{Access, Backend, Dialect, Durability};
pub use error::{ErrorKind, StoreError};
pub use store::{Appended, Direction, Head, Leadership, SignedCheckpoint, Store, StoreConfig};
pub use tokens::{NewToken, Scope, TokenRecord};
pub use trees::{ConsistencyProof, InclusionProof, TreeHead, TreeId};
pub use verify::{VerifyReport, verify_database};
pub use webhooks::{DeliveryAttempt, DeliveryTarget, NewWebhook, Webhook, WebhookSecret};
