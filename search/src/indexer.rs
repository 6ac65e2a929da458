//! The indexer: the one task that owns the `IndexWriter`. It follows the log from the position of
//! the index's last commit, wakes on the store's head watch, and commits every
//! `commit_interval` or `commit_every` documents, whichever comes first, with its log position in
//! the commit payload. Writing and committing run on the blocking pool; the writer moves there
//! and back, so it is never shared.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chronicle_domain::RecordedEvent;
use chronicle_store::{Head, Store, StoreError};
use tantivy::{IndexReader, IndexWriter, Searcher};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::error::SearchError;
use crate::index::{Payload, SearchConfig, Snapshot};
use crate::schema::{Fields, SCHEMA_VERSION};
use crate::terms::EventTerms;

/// What the index handle asks of the indexer.
pub(crate) enum Command {
    /// Rebuild from the whole log; answer the position once the rebuilt index is committed.
    Rebuild(oneshot::Sender<Result<u64, SearchError>>),
    /// Commit what is indexed and stop.
    Shutdown(oneshot::Sender<()>),
}

/// Why the indexer woke from waiting.
enum Wake {
    Command(Option<Command>),
    /// The log grew; false when the store has stopped.
    Head(bool),
    /// Time to commit: the interval passed, or a reader waits for a position.
    Commit,
}

/// A page of the log read ahead while the previous one is indexed; dropped, it stops reading.
struct Prefetch {
    after: u64,
    task: JoinHandle<Result<Vec<RecordedEvent>, StoreError>>,
}

impl Prefetch {
    fn start(store: &Store, after: u64, limit: u32) -> Prefetch {
        let store = store.clone();
        Prefetch {
            after,
            task: tokio::spawn(async move { store.read_all(after, limit).await }),
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The longest wait between retries after the log could not be read.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

/// How the indexer and the index handle reach each other.
pub(crate) struct Links {
    /// Where each commit is shown to readers.
    pub snapshots: watch::Sender<Snapshot>,
    pub commands: mpsc::Receiver<Command>,
    /// Notified by a reader waiting for a position: commit what is indexed without waiting.
    pub commit_soon: Arc<Notify>,
    pub indexed_since_open: Arc<AtomicU64>,
}

pub(crate) struct Indexer {
    store: Store,
    head: watch::Receiver<Head>,
    config: SearchConfig,
    fields: Fields,
    /// `None` only while it is away on the blocking pool.
    writer: Option<IndexWriter>,
    reader: IndexReader,
    /// The last event handed to the writer.
    indexed: Payload,
    uncommitted: usize,
    oldest_uncommitted: Option<Instant>,
    /// Callers of a rebuild in progress; while any wait, nothing is committed until the new
    /// index has caught up with the log, so readers keep the old one.
    rebuild_waiters: Vec<oneshot::Sender<Result<u64, SearchError>>>,
    snapshots: watch::Sender<Snapshot>,
    commands: mpsc::Receiver<Command>,
    commit_soon: Arc<Notify>,
    indexed_since_open: Arc<AtomicU64>,
}

impl Indexer {
    pub fn new(
        store: Store,
        config: SearchConfig,
        fields: Fields,
        writer: IndexWriter,
        reader: IndexReader,
        committed: Payload,
        links: Links,
    ) -> Indexer {
        Indexer {
            head: store.subscribe_head(),
            store,
            config,
            fields,
            writer: Some(writer),
            reader,
            indexed: committed,
            uncommitted: 0,
            oldest_uncommitted: None,
            rebuild_waiters: Vec::new(),
            snapshots: links.snapshots,
            commands: links.commands,
            commit_soon: links.commit_soon,
            indexed_since_open: links.indexed_since_open,
        }
    }

    /// Follows the log until told to stop or until the index cannot be written; then tells
    /// readers the index has halted.
    pub async fn run(mut self) {
        let reason = match self.follow().await {
            Ok(()) => "the indexer has stopped".to_owned(),
            Err(error) => {
                tracing::error!(error = %error, "the search indexer failed and stopped");
                format!("the indexer failed: {error}")
            }
        };
        for waiter in self.rebuild_waiters.drain(..) {
            let _ = waiter.send(Err(SearchError::Unavailable(reason.clone())));
        }
        self.snapshots
            .send_modify(|snapshot| snapshot.halted = Some(reason));
        if let Some(writer) = self.writer.take() {
            let merged = tokio::task::spawn_blocking(move || writer.wait_merging_threads()).await;
            if let Ok(Err(error)) = merged {
                tracing::warn!(error = %error, "search index merges did not finish");
            }
        }
    }

    async fn follow(&mut self) -> Result<(), SearchError> {
        let mut failures = 0u32;
        let mut prefetched: Option<Prefetch> = None;
        loop {
            while let Ok(command) = self.commands.try_recv() {
                if !self.obey(Some(command)).await? {
                    return Ok(());
                }
            }
            let after = self.indexed.position;
            let read = match prefetched.take() {
                Some(mut prefetch) if prefetch.after == after => (&mut prefetch.task)
                    .await
                    .map_err(|error| SearchError::Internal(error.to_string()))?,
                // A rebuild moved the indexer back: what was read ahead is of no use.
                _ => self.store.read_all(after, self.config.read_batch).await,
            };
            let events = match read {
                Ok(events) => {
                    failures = 0;
                    events
                }
                Err(error) => {
                    failures += 1;
                    let wait = Duration::from_millis(100)
                        .saturating_mul(1 << failures.min(10))
                        .min(MAX_RETRY_WAIT);
                    tracing::warn!(error = %error, retry_in_ms = wait.as_millis() as u64, "the search indexer cannot read the log");
                    tokio::select! {
                        command = self.commands.recv() => if !self.obey(command).await? {
                            return Ok(());
                        },
                        () = tokio::time::sleep(wait) => {}
                    }
                    continue;
                }
            };
            let full_page = events.len() == self.config.read_batch as usize;
            if full_page && let Some(last) = events.last() {
                // More is waiting: read the next page while this one is indexed.
                prefetched = Some(Prefetch::start(
                    &self.store,
                    last.position,
                    self.config.read_batch,
                ));
            }
            if !events.is_empty() {
                self.add(events).await?;
            }
            if self.uncommitted >= self.config.commit_every && self.rebuild_waiters.is_empty() {
                self.commit().await?;
            }
            if full_page {
                continue;
            }
            // Caught up with the log as it stood at the read.
            if !self.rebuild_waiters.is_empty() {
                self.commit().await?;
                let position = self.indexed.position;
                for waiter in self.rebuild_waiters.drain(..) {
                    let _ = waiter.send(Ok(position));
                }
                tracing::info!(position, "search index rebuilt");
            }
            match self.wait().await {
                Wake::Command(command) => {
                    if !self.obey(command).await? {
                        return Ok(());
                    }
                }
                Wake::Head(true) => {}
                Wake::Head(false) => {
                    return Err(SearchError::Unavailable(
                        "the event store has stopped".into(),
                    ));
                }
                Wake::Commit => self.commit().await?,
            }
        }
    }

    /// Waits for a command, a longer log, or the time to commit what waits.
    async fn wait(&mut self) -> Wake {
        let position = self.indexed.position;
        let pending = self.uncommitted > 0;
        let deadline = self
            .oldest_uncommitted
            .map(|oldest| oldest + self.config.commit_interval);
        tokio::select! {
            command = self.commands.recv() => Wake::Command(command),
            grown = self.head.wait_for(|head| head.position > position) => Wake::Head(grown.is_ok()),
            () = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => Wake::Commit,
            () = self.commit_soon.notified(), if pending => Wake::Commit,
        }
    }

    /// Carries out a command; returns false when the indexer must stop.
    async fn obey(&mut self, command: Option<Command>) -> Result<bool, SearchError> {
        match command {
            Some(Command::Rebuild(reply)) => {
                if self.rebuild_waiters.is_empty() {
                    self.start_rebuild().await?;
                }
                self.rebuild_waiters.push(reply);
                Ok(true)
            }
            Some(Command::Shutdown(done)) => {
                self.stop().await?;
                let _ = done.send(());
                Ok(false)
            }
            // Every handle is gone: nobody will search again.
            None => {
                self.stop().await?;
                Ok(false)
            }
        }
    }

    /// Commits what is indexed, unless a rebuild is under way: the old index stays.
    async fn stop(&mut self) -> Result<(), SearchError> {
        if self.uncommitted > 0 && self.rebuild_waiters.is_empty() {
            self.commit().await?;
        }
        Ok(())
    }

    /// Drops what is not committed and every document, in the writer only: readers keep the
    /// committed index until the rebuilt one is committed.
    async fn start_rebuild(&mut self) -> Result<(), SearchError> {
        tracing::info!(
            position = self.indexed.position,
            "rebuilding the search index"
        );
        self.on_blocking_pool(|writer| {
            writer.rollback()?;
            writer.delete_all_documents()?;
            Ok(())
        })
        .await?;
        self.indexed = Payload {
            schema: SCHEMA_VERSION,
            ..Payload::default()
        };
        self.uncommitted = 0;
        self.oldest_uncommitted = None;
        Ok(())
    }

    async fn add(&mut self, events: Vec<RecordedEvent>) -> Result<(), SearchError> {
        let Some(last) = events.last() else {
            return Ok(());
        };
        let last = Payload {
            schema: SCHEMA_VERSION,
            position: last.position,
            leaf_hash: last.leaf_hash.clone(),
        };
        let count = events.len();
        let fields = self.fields;
        self.on_blocking_pool(move |writer| {
            for event in &events {
                writer.add_document(fields.document(&EventTerms::from_event(event)))?;
            }
            Ok(())
        })
        .await?;
        self.indexed = last;
        self.uncommitted += count;
        self.oldest_uncommitted.get_or_insert_with(Instant::now);
        self.indexed_since_open
            .fetch_add(count as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Commits with the indexed position in the payload, then shows readers the new index.
    async fn commit(&mut self) -> Result<(), SearchError> {
        let payload = self.indexed.to_json();
        let reader = self.reader.clone();
        let searcher: Searcher = self
            .on_blocking_pool(move |writer| {
                let mut prepared = writer.prepare_commit()?;
                prepared.set_payload(&payload);
                prepared.commit()?;
                reader.reload()?;
                Ok(reader.searcher())
            })
            .await?;
        self.uncommitted = 0;
        self.oldest_uncommitted = None;
        let position = self.indexed.position;
        self.snapshots.send_replace(Snapshot {
            position,
            searcher,
            halted: None,
        });
        let lag = self.store.head().position.saturating_sub(position);
        metrics::gauge!("chronicle_index_lag_events").set(lag as f64);
        metrics::gauge!("chronicle_index_position").set(position as f64);
        tracing::debug!(position, "search index committed");
        Ok(())
    }

    /// Runs `work` on the writer on the blocking pool and takes the writer back.
    async fn on_blocking_pool<T: Send + 'static>(
        &mut self,
        work: impl FnOnce(&mut IndexWriter) -> tantivy::Result<T> + Send + 'static,
    ) -> Result<T, SearchError> {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| SearchError::Internal("the index writer is missing".into()))?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let result = work(&mut writer);
            (writer, result)
        })
        .await
        .map_err(|error| SearchError::Internal(error.to_string()))?;
        self.writer = Some(writer);
        Ok(result?)
    }
}
