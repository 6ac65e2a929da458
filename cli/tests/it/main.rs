//! The `chronicle` binary end to end: serve, demo, ingest, verify, checkpoint, as a user runs them.

mod commands;
