//! The API over real HTTP on loopback, against a real SQLite file in a temporary directory.

mod append;
mod integrity;
mod read;
mod support;
