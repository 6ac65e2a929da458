//! NDJSON: one recorded event a line, exactly as the API returns it.

use std::io::{BufWriter, Write};

use chronicle_domain::RecordedEvent;

use crate::error::EvidenceError;

/// Writes events as NDJSON, page by page.
pub struct NdjsonWriter<W: Write> {
    out: BufWriter<W>,
}

impl<W: Write> NdjsonWriter<W> {
    /// Starts an NDJSON export into `sink`.
    pub fn new(sink: W) -> NdjsonWriter<W> {
        NdjsonWriter {
            out: BufWriter::with_capacity(64 * 1024, sink),
        }
    }

    /// Writes one page of events, a line each.
    pub fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), EvidenceError> {
        for event in events {
            serde_json::to_writer(&mut self.out, event).map_err(std::io::Error::from)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes what is buffered and returns the sink.
    pub fn finish(self) -> Result<W, EvidenceError> {
        self.out
            .into_inner()
            .map_err(|error| EvidenceError::Io(error.into_error()))
    }
}
