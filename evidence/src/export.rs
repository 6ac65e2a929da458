//! Exports: the three formats behind one writer, and the thread that writes them while the
//! caller reads the next page.

use std::io::Write;

use chronicle_domain::RecordedEvent;
/// An export format: the catalogue's, as `audit.exported` records it.
pub use chronicle_domain::catalogue::ExportFormat as Format;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::columnar::ParquetWriter;
use crate::error::EvidenceError;
use crate::ndjson::NdjsonWriter;
use crate::table::CsvWriter;

/// Returns the format named `ndjson`, `csv` or `parquet`.
pub fn parse_format(name: &str) -> Option<Format> {
    [Format::Ndjson, Format::Csv, Format::Parquet]
        .into_iter()
        .find(|format| format_name(*format) == name)
}

/// Returns the name the API, the command line and `audit.exported` use.
pub fn format_name(format: Format) -> &'static str {
    match format {
        Format::Ndjson => "ndjson",
        Format::Csv => "csv",
        Format::Parquet => "parquet",
    }
}

/// Returns the media type of an export in this format.
pub fn content_type(format: Format) -> &'static str {
    match format {
        Format::Ndjson => "application/x-ndjson",
        Format::Csv => "text/csv; charset=utf-8",
        Format::Parquet => "application/vnd.apache.parquet",
    }
}

/// A writer of one export format.
pub enum ExportWriter<W: Write + Send> {
    Ndjson(NdjsonWriter<W>),
    Csv(Box<CsvWriter<W>>),
    Parquet(Box<ParquetWriter<W>>),
}

impl<W: Write + Send> ExportWriter<W> {
    /// Starts an export in `format` into `sink`.
    pub fn new(format: Format, sink: W) -> Result<ExportWriter<W>, EvidenceError> {
        Ok(match format {
            Format::Ndjson => ExportWriter::Ndjson(NdjsonWriter::new(sink)),
            Format::Csv => ExportWriter::Csv(Box::new(CsvWriter::new(sink)?)),
            Format::Parquet => ExportWriter::Parquet(Box::new(ParquetWriter::new(sink)?)),
        })
    }

    /// Writes one page of events.
    pub fn write_page(&mut self, events: &[RecordedEvent]) -> Result<(), EvidenceError> {
        match self {
            ExportWriter::Ndjson(writer) => writer.write_page(events),
            ExportWriter::Csv(writer) => writer.write_page(events),
            ExportWriter::Parquet(writer) => writer.write_page(events),
        }
    }

    /// Finishes the export and returns the sink.
    pub fn finish(self) -> Result<W, EvidenceError> {
        match self {
            ExportWriter::Ndjson(writer) => writer.finish(),
            ExportWriter::Csv(writer) => writer.finish(),
            ExportWriter::Parquet(writer) => writer.finish(),
        }
    }
}

/// Work done on a blocking thread of its own, fed over a small bounded channel, so encoding
/// and compressing never run on the async workers and at most a few pages wait in memory.
pub(crate) struct Worker<T, R> {
    sender: mpsc::Sender<T>,
    task: JoinHandle<Result<R, EvidenceError>>,
}

impl<T: Send + 'static, R: Send + 'static> Worker<T, R> {
    /// Starts `work` on a blocking thread; it receives what [`Worker::send`] sends.
    pub(crate) fn spawn(
        work: impl FnOnce(mpsc::Receiver<T>) -> Result<R, EvidenceError> + Send + 'static,
    ) -> Worker<T, R> {
        let (sender, receiver) = mpsc::channel(2);
        let task = tokio::task::spawn_blocking(move || work(receiver));
        Worker { sender, task }
    }

    /// Hands the worker one more item; `false` when the worker has stopped (its error comes out
    /// of [`Worker::finish`]).
    pub(crate) async fn send(&self, item: T) -> bool {
        self.sender.send(item).await.is_ok()
    }

    /// Tells the worker nothing more comes, and waits for its answer.
    pub(crate) async fn finish(self) -> Result<R, EvidenceError> {
        drop(self.sender);
        self.task.await.map_err(|error| {
            EvidenceError::Internal(format!("the writer thread failed: {error}"))
        })?
    }
}

/// An export written on a thread of its own while the caller reads the next page.
pub struct ExportTask<W> {
    worker: Worker<Vec<RecordedEvent>, (u64, W)>,
}

impl<W: Write + Send + 'static> ExportTask<W> {
    /// Starts an export in `format` into `sink`.
    pub fn spawn(format: Format, sink: W) -> ExportTask<W> {
        let worker = Worker::spawn(move |mut pages: mpsc::Receiver<Vec<RecordedEvent>>| {
            let mut writer = ExportWriter::new(format, sink)?;
            let mut count = 0u64;
            while let Some(page) = pages.blocking_recv() {
                writer.write_page(&page)?;
                count += page.len() as u64;
            }
            Ok((count, writer.finish()?))
        });
        ExportTask { worker }
    }

    /// Hands the writer one page; `false` when it has stopped (its error comes out of
    /// [`ExportTask::finish`]).
    pub async fn write(&self, page: Vec<RecordedEvent>) -> bool {
        self.worker.send(page).await
    }

    /// Finishes the export: answers how many events it holds, and the sink.
    pub async fn finish(self) -> Result<(u64, W), EvidenceError> {
        self.worker.finish().await
    }
}
