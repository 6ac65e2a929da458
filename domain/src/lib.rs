//! Chronicle's domain: what an event is, which events exist, and the pure rules over them.
//!
//! Layout:
//! - [`envelope`]: the event as a producer sends it ([`NewEvent`], validated from JSON) and as
//!   Chronicle records it ([`RecordedEvent`]), with actor, context and expected version.
//! - [`catalogue`]: every event type of the catalogue as a typed struct, and the parsing of an
//!   event's `data` into them.
//! - [`canonical`]: RFC 8785 (JCS) canonical encoding and the RFC 9162 leaf hash.
//! - [`merkle`]: RFC 9162 Merkle tree math and proof checking.
//! - [`models`]: the read models the cabinet queries, each a pure fold over recorded events.
//!
//! This crate does no IO, reads no clock and knows nothing of tokio, sqlx, axum, tantivy or
//! arrow: callers hand it times and ids. CI checks that with `cargo tree`.

pub mod canonical;
pub mod catalogue;
pub mod envelope;
pub mod merkle;
pub mod models;

pub use canonical::{LeafHash, canonical_json, leaf_hash};
pub use envelope::{
    Actor, ActorKind, Context, ExpectedVersion, InvalidEvent, MAX_LEAF_DATA_BYTES, NewEvent, Place,
    PreparedEvent, RecordedEvent, SUBMITTED_BY_ADMIN, SUBMITTED_BY_CHRONICLE, format_timestamp,
    is_stream_name, is_workspace_name, parse_timestamp, stream_key,
};
