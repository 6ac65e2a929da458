//! Writes a realistic history as NDJSON, one event a line as a producer sends it (the pool the
//! benches append, each event with a fresh time-ordered id): the corpus the peers in
//! `benches/peers/` index, line N being the event at position N.
//!
//! Run: `cargo run --release -p chronicle-benches --bin corpus -- EVENTS > events.ndjson`.

use std::io::Write;

use anyhow::Context;
use chronicle_benches::{EventPool, IdKind};

/// Distinct events generated; a larger corpus repeats them with fresh ids, as the search bench does.
const POOL: usize = 200_000;

fn main() -> anyhow::Result<()> {
    let events: usize = std::env::args()
        .nth(1)
        .context("usage: corpus EVENTS")?
        .parse()
        .context("EVENTS is a number")?;
    let mut pool = EventPool::new(events.min(POOL), IdKind::TimeOrdered);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut written = 0;
    while written < events {
        let count = (events - written).min(10_000);
        for event in pool.raw_batch(count) {
            serde_json::to_writer(&mut out, &event)?;
            out.write_all(b"\n")?;
        }
        written += count;
    }
    out.flush()?;
    Ok(())
}
