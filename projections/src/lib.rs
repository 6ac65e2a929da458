//! Chronicle's projections: the read models the cabinet queries, kept in SQL tables beside the
//! log, and the runner that keeps them up to date.
//!
//! Layout:
//! - [`Model`]: the read models (machines, sessions, schedules, runs, members, billing,
//!   activity). Their rules are the pure folds of `chronicle_domain::models`; `tables` maps each
//!   to its SQL table: the filter columns, the list order, the filters the API offers.
//! - `writer`: applies a batch of events to a model's table: it loads the rows the batch
//!   touches, applies the domain fold to them, and writes them back.
//! - `runner`: [`Projections::run`] reads the log after the models' checkpoints in batches and
//!   applies each batch and the new checkpoints in one transaction, so a crash replays nothing
//!   twice and loses nothing; it catches up on start, then wakes on the store's head watch. Each
//!   model's position is published on a watch ([`Projections::wait_for`] serves
//!   `min_position`) and its lag as the `chronicle_projection_lag_events` gauge.
//! - `query`: lists with filters and cursors, details by key, each with the position it
//!   reflects; `as_of` answers fold one workspace's events in memory up to a position or a time
//!   and run the same queries over an in-memory copy of the tables.
//! - `rebuild`: [`Projections::rebuild`] fills fresh `TABLE__rebuild` tables from the log while
//!   the old ones serve, then swaps them in one transaction.
//!
//! Writes go through a connection of its own (SQLite serialises it with the appender's
//! commits); reads through a pool of read-only connections. Depends on `chronicle-domain` and
//! `chronicle-store`; knows nothing of HTTP.

mod error;
mod query;
mod rebuild;
mod runner;
mod tables;
mod writer;

pub use error::ProjectionError;
pub use query::{AsOf, Filters, Page, PageRequest};
pub use runner::{Positions, Projections, ProjectionsConfig};
pub use tables::Model;
