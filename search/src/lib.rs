//! Chronicle's audit search: a tantivy index over every event of the log, the indexer that keeps
//! it following the log, and the query language of `CONTRACT.md`.
//!
//! Layout:
//! - [`SearchIndex`]: opens the index (in the data directory's `index/`, or in memory), starts
//!   the indexer, answers searches newest first with a cursor, total and facet counts, waits
//!   for a log position (`min_position`), rebuilds on demand.
//! - `indexer`: the one task that owns the `IndexWriter`. It follows the log from the position
//!   in its last commit's payload, wakes on the store's head watch, commits every second or
//!   every N documents, and rebuilds from scratch when asked or when [`SCHEMA_VERSION`]
//!   changes.
//! - `schema`: the fields (position, workspace, type and its prefixes, actor id and name,
//!   machine, session, schedule, stream, request id, source IP, `occurred_at`, the event's
//!   words); nothing is stored and nothing is scored: hits are positions, read from the fast
//!   field in log order, and their events are read back from the store.
//! - [`terms`]: what one event contributes to each field, apart from tantivy.
//! - [`query`]: the hand-written parser of the query language ([`AuditQuery`]) and its
//!   compilation into tantivy queries, always within one workspace; errors say where.
//! - `facets`: hits per event category and per day.
//! - [`record_search`]: the `audit.searched` event every answered search appends;
//!   [`record_audit`] appends the records of exports and evidence bundles the same way.
//! - [`SearchError`]: every failure, with the store's [`ErrorKind`](chronicle_store::ErrorKind).
//!
//! Depends on `chronicle-domain` and `chronicle-store`; knows nothing of HTTP.

mod audit;
mod error;
mod facets;
mod index;
mod indexer;
mod merges;
pub mod query;
mod schema;
pub mod terms;

pub use audit::{AuditRecord, SearchRecord, insert_range, record_audit, record_search};
pub use error::SearchError;
pub use facets::{FacetRequest, Facets};
pub use index::{Cursor, IndexStats, SearchConfig, SearchIndex, SearchRequest, SearchResults};
pub use query::{AuditQuery, QueryError};
pub use schema::SCHEMA_VERSION;
