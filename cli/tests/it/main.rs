//! The `chronicle` binary end to end: serve, demo, ingest, verify, checkpoint, as a user runs them,
//! killed with SIGKILL under load (`crash`), and on a full, damaged or read-only disk (`faults`).

mod commands;
mod crash;
mod faults;
mod postgres;
mod readme;
