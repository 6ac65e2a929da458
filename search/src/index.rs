//! [`SearchIndex`]: the handle readers search through, and the opening of the index.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chronicle_store::Store;
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::indexer::IndexWriterOptions;
use tantivy::{Index, IndexReader, Order, ReloadPolicy, Searcher};
use time::OffsetDateTime;
use tokio::sync::{Mutex, Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::SearchError;
use crate::facets::{FacetCollector, FacetRequest, Facets};
use crate::indexer::{Command, Indexer, Links};
use crate::merges::BoundedMerges;
use crate::query::{AuditQuery, Compiler, Scope};
use crate::schema::{Fields, SCHEMA_VERSION};

/// How the index is kept and how often the indexer commits.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// The index directory (`DATA/index/`); `None` keeps the index in memory, rebuilt from the
    /// log at every start.
    pub directory: Option<PathBuf>,
    /// Indexed events become searchable at least this often.
    pub commit_interval: Duration,
    /// …or as soon as this many events wait for a commit.
    pub commit_every: usize,
    /// Events the indexer reads from the log at a time.
    pub read_batch: u32,
    /// Indexing threads of the tantivy writer.
    pub writer_threads: usize,
    /// Memory the writer may fill before it writes a segment, across its threads (at least
    /// 15 MB a thread).
    pub writer_memory_bytes: usize,
}

impl Default for SearchConfig {
    /// Returns an in-memory index committed every second or 100,000 events, one writer thread
    /// per core up to two, 20 MiB a thread (a commit every second writes its segment long
    /// before that fills at the rates of BENCHMARKS.md; the server's memory budget is 300 MiB).
    fn default() -> SearchConfig {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
        SearchConfig {
            directory: None,
            commit_interval: Duration::from_secs(1),
            commit_every: 100_000,
            read_batch: 2_000,
            writer_threads: threads,
            writer_memory_bytes: threads * 20 * 1024 * 1024,
        }
    }
}

/// What the index has committed: the state readers search.
#[derive(Clone)]
pub(crate) struct Snapshot {
    /// The log position the searcher reflects: every event up to it, none after.
    pub position: u64,
    pub searcher: Searcher,
    /// Why the indexer stopped, once it has.
    pub halted: Option<String>,
}

/// The commit payload: where the index stands in the log, under which schema.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub schema: u32,
    pub position: u64,
    /// The leaf hash of the event at `position`, so an index is never resumed over another log.
    pub leaf_hash: String,
}

impl Payload {
    /// Returns the payload as the commit keeps it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a payload is plain JSON")
    }
}

/// Counters of the index, for operators and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    /// The log position of the committed index.
    pub position: u64,
    /// Documents in the committed index (one per event).
    pub documents: u64,
    /// Events this process has handed to the writer since the index was opened.
    pub indexed_since_open: u64,
}

/// A page of hits, as opaque text: the position below which the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Hits of the next page lie strictly before this position.
    pub before: u64,
}

impl Cursor {
    /// Returns the cursor as the API hands it out.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("p{}", self.before))
    }

    /// Reads a cursor handed out by [`Cursor::encode`].
    pub fn decode(text: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let before = std::str::from_utf8(&bytes).ok()?.strip_prefix('p')?;
        Some(Cursor {
            before: before.parse().ok()?,
        })
    }
}

/// One search: a parsed query within a workspace, a time range and a page.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// The workspace searched; no other workspace's event is ever a hit.
    pub workspace: String,
    /// The parsed query.
    pub query: AuditQuery,
    /// `occurred_at` at or after this time.
    pub from: Option<OffsetDateTime>,
    /// `occurred_at` before this time.
    pub to: Option<OffsetDateTime>,
    /// Hits per page (at least 1).
    pub limit: usize,
    /// The page after the one that handed out this cursor.
    pub cursor: Option<Cursor>,
    /// Which facet counts to compute over every hit.
    pub facets: FacetRequest,
}

/// The answer to a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResults {
    /// Positions of the hits of this page, newest first.
    pub positions: Vec<u64>,
    /// Hits of the whole search, on every page.
    pub total: u64,
    /// The next page, when there is one.
    pub next_cursor: Option<Cursor>,
    /// The log position the answer reflects: every event up to it, none after.
    pub position: u64,
    /// The facet counts asked for, over every hit.
    pub facets: Facets,
}

/// A handle on the search index and its indexer; cheap to clone.
#[derive(Clone)]
pub struct SearchIndex {
    inner: Arc<Inner>,
}

struct Inner {
    fields: Fields,
    snapshots: watch::Receiver<Snapshot>,
    commit_soon: Arc<Notify>,
    commands: mpsc::Sender<Command>,
    indexed_since_open: Arc<AtomicU64>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex")
            .field("position", &self.inner.snapshots.borrow().position)
            .finish_non_exhaustive()
    }
}

impl SearchIndex {
    /// Opens the index (creating it, or rebuilding it when it was built under another schema
    /// version or over another log) and starts the indexer, which follows the log from the
    /// position of the last commit.
    pub async fn open(store: Store, config: SearchConfig) -> Result<SearchIndex, SearchError> {
        let (schema, fields) = Fields::schema();
        let directory = config.directory.clone();
        let (index, payload) =
            tokio::task::spawn_blocking(move || open_index(directory.as_deref(), schema))
                .await
                .map_err(|error| SearchError::Internal(error.to_string()))??;
        let payload = match payload {
            Some(payload) if resumes(&store, &payload).await? => payload,
            Some(payload) => {
                tracing::warn!(
                    position = payload.position,
                    "the search index does not match the log; rebuilding it"
                );
                Payload::default()
            }
            None => Payload::default(),
        };
        let threads = config.writer_threads.max(1);
        let memory = config.writer_memory_bytes.max(threads * 15_000_000);
        let start_empty = payload.position == 0;
        let (writer, reader) = tokio::task::spawn_blocking(
            move || -> Result<(tantivy::IndexWriter, IndexReader), SearchError> {
                // One merge at a time: merges run beside indexing, and concurrent ones would
                // add up their memory.
                let mut writer = index.writer_with_options(
                    IndexWriterOptions::builder()
                        .num_worker_threads(threads)
                        .memory_budget_per_thread(memory / threads)
                        .num_merge_threads(1)
                        .build(),
                )?;
                writer.set_merge_policy(Box::new(BoundedMerges::default()));
                if start_empty {
                    // Whatever is there belongs to another log: start empty, visibly.
                    writer.delete_all_documents()?;
                    let mut prepared = writer.prepare_commit()?;
                    prepared.set_payload(
                        &Payload {
                            schema: SCHEMA_VERSION,
                            ..Payload::default()
                        }
                        .to_json(),
                    );
                    prepared.commit()?;
                }
                let reader = index
                    .reader_builder()
                    .reload_policy(ReloadPolicy::Manual)
                    .try_into()?;
                Ok((writer, reader))
            },
        )
        .await
        .map_err(|error| SearchError::Internal(error.to_string()))??;

        let (snapshot_sender, snapshots) = watch::channel(Snapshot {
            position: payload.position,
            searcher: reader.searcher(),
            halted: None,
        });
        let (commands, command_receiver) = mpsc::channel(8);
        let commit_soon = Arc::new(Notify::new());
        let indexed_since_open = Arc::new(AtomicU64::new(0));
        let indexer = Indexer::new(
            store,
            config,
            fields,
            writer,
            reader,
            payload,
            Links {
                snapshots: snapshot_sender,
                commands: command_receiver,
                commit_soon: commit_soon.clone(),
                indexed_since_open: indexed_since_open.clone(),
            },
        );
        let task = tokio::spawn(indexer.run());
        Ok(SearchIndex {
            inner: Arc::new(Inner {
                fields,
                snapshots,
                commit_soon,
                commands,
                indexed_since_open,
                task: Mutex::new(Some(task)),
            }),
        })
    }

    /// Returns the log position the committed index reflects.
    pub fn position(&self) -> u64 {
        self.inner.snapshots.borrow().position
    }

    /// Returns the index's counters.
    pub fn stats(&self) -> IndexStats {
        let snapshot = self.inner.snapshots.borrow();
        IndexStats {
            position: snapshot.position,
            documents: snapshot.searcher.num_docs(),
            indexed_since_open: self.inner.indexed_since_open.load(Ordering::Relaxed),
        }
    }

    /// Waits until the committed index reflects the log up to `position`, asking the indexer to
    /// commit what it holds rather than wait for its interval; fails after `timeout`.
    pub async fn wait_for(&self, position: u64, timeout: Duration) -> Result<(), SearchError> {
        let mut snapshots = self.inner.snapshots.clone();
        if snapshots.borrow().position >= position {
            return Ok(());
        }
        self.inner.commit_soon.notify_one();
        let _ = tokio::time::timeout(
            timeout,
            snapshots
                .wait_for(|snapshot| snapshot.position >= position || snapshot.halted.is_some()),
        )
        .await;
        let snapshot = snapshots.borrow();
        match &snapshot.halted {
            _ if snapshot.position >= position => Ok(()),
            Some(reason) => Err(SearchError::Unavailable(reason.clone())),
            None => Err(SearchError::NotCaughtUp {
                wanted: position,
                position: snapshot.position,
            }),
        }
    }

    /// Searches the committed index: the newest hits first.
    pub async fn search(&self, request: SearchRequest) -> Result<SearchResults, SearchError> {
        let snapshot = self.inner.snapshots.borrow().clone();
        let fields = self.inner.fields;
        tokio::task::spawn_blocking(move || search(&snapshot, fields, request))
            .await
            .map_err(|error| SearchError::Internal(error.to_string()))?
    }

    /// Rebuilds the index from the whole log. The old index keeps answering until the new one
    /// has caught up with the log, then the new one replaces it in one commit; answers the log
    /// position it then reflects.
    pub async fn rebuild(&self) -> Result<u64, SearchError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Rebuild(reply))
            .await
            .map_err(|_| SearchError::Unavailable("the indexer has stopped".into()))?;
        answer
            .await
            .map_err(|_| SearchError::Unavailable("the indexer stopped before answering".into()))?
    }

    /// Stops the indexer after committing what it has indexed, and waits for it.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self
            .inner
            .commands
            .send(Command::Shutdown(done))
            .await
            .is_ok()
        {
            let _ = finished.await;
        }
        if let Some(task) = self.inner.task.lock().await.take()
            && let Err(error) = task.await
        {
            tracing::error!(error = %error, "the search indexer ended abnormally");
        }
    }
}

/// Opens the index in `directory` (or in memory) and reads its commit payload; an index of
/// another schema version, or one that cannot be opened, is replaced by an empty one.
fn open_index(
    directory: Option<&Path>,
    schema: tantivy::schema::Schema,
) -> Result<(Index, Option<Payload>), SearchError> {
    let Some(directory) = directory else {
        let index = Index::create_in_ram(schema);
        Fields::register_tokenizers(&index);
        return Ok((index, None));
    };
    std::fs::create_dir_all(directory)?;
    if directory.join("meta.json").exists() {
        let opened = Index::open_in_dir(directory)
            .map_err(SearchError::from)
            .and_then(|index| {
                let payload = index
                    .load_metas()?
                    .payload
                    .and_then(|text| serde_json::from_str::<Payload>(&text).ok());
                Ok((index, payload))
            });
        match opened {
            Ok((index, Some(payload)))
                if payload.schema == SCHEMA_VERSION && index.schema() == schema =>
            {
                Fields::register_tokenizers(&index);
                return Ok((index, Some(payload)));
            }
            Ok(_) => tracing::warn!(
                directory = %directory.display(),
                schema = SCHEMA_VERSION,
                "the search index was built under another schema; rebuilding it"
            ),
            Err(error) => tracing::warn!(
                directory = %directory.display(),
                error = %error,
                "the search index cannot be opened; rebuilding it"
            ),
        }
        std::fs::remove_dir_all(directory)?;
        std::fs::create_dir_all(directory)?;
    }
    let index = Index::create_in_dir(directory, schema)?;
    Fields::register_tokenizers(&index);
    Ok((index, None))
}

/// Returns whether the index's last commit is a prefix of this log: the event at its position
/// has the leaf hash it recorded.
async fn resumes(store: &Store, payload: &Payload) -> Result<bool, SearchError> {
    if payload.position == 0 {
        return Ok(true);
    }
    let event = store.read_all(payload.position - 1, 1).await?;
    Ok(event.first().is_some_and(|event| {
        event.position == payload.position && event.leaf_hash == payload.leaf_hash
    }))
}

fn search(
    snapshot: &Snapshot,
    fields: Fields,
    request: SearchRequest,
) -> Result<SearchResults, SearchError> {
    let limit = request.limit.max(1);
    let mut compiler = Compiler::new(fields);
    let mut scope = Scope {
        workspace: &request.workspace,
        from: request.from,
        to: request.to,
        before: None,
    };
    let everything = compiler.compile(&request.query, &scope)?;
    // One more than the page, to know whether another page follows.
    let newest = TopDocs::with_limit(limit + 1).order_by_fast_field::<u64>("position", Order::Desc);
    let facets = request.facets.any().then_some(FacetCollector {
        request: request.facets,
    });
    let searcher = &snapshot.searcher;
    let (hits, total, facets) = match request.cursor {
        None => searcher.search(&*everything, &(newest, Count, facets))?,
        Some(cursor) => {
            let (total, facets) = searcher.search(&*everything, &(Count, facets))?;
            scope.before = Some(cursor.before);
            let page = compiler.compile(&request.query, &scope)?;
            (searcher.search(&*page, &newest)?, total, facets)
        }
    };
    let mut positions: Vec<u64> = hits
        .into_iter()
        .filter_map(|(position, _)| position)
        .collect();
    let next_cursor = if positions.len() > limit {
        positions.truncate(limit);
        positions.last().map(|&before| Cursor { before })
    } else {
        None
    };
    Ok(SearchResults {
        positions,
        total: total as u64,
        next_cursor,
        position: snapshot.position,
        facets: facets.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use tantivy::schema::{STORED, Schema};

    use super::*;

    /// Commits one document with this payload into an index of `schema` in `directory`.
    fn commit_index(directory: &Path, schema: Schema, payload: &Payload) {
        let index = Index::create_in_dir(directory, schema).unwrap();
        Fields::register_tokenizers(&index);
        let mut writer: tantivy::IndexWriter = index.writer(15_000_000).unwrap();
        let field = index.schema().get_field("position").unwrap();
        let mut document = tantivy::TantivyDocument::new();
        document.add_u64(field, 7);
        writer.add_document(document).unwrap();
        let mut prepared = writer.prepare_commit().unwrap();
        prepared.set_payload(&payload.to_json());
        prepared.commit().unwrap();
    }

    fn documents(index: &Index) -> u64 {
        index.reader().unwrap().searcher().num_docs()
    }

    #[test]
    fn an_index_of_another_schema_is_replaced_and_one_of_this_schema_resumes() {
        let current = Payload {
            schema: SCHEMA_VERSION,
            position: 7,
            leaf_hash: "ab".into(),
        };
        // The same schema: the index and its payload are kept.
        let same = tempfile::tempdir().unwrap();
        commit_index(same.path(), Fields::schema().0, &current);
        let (index, payload) = open_index(Some(same.path()), Fields::schema().0).unwrap();
        assert_eq!(payload, Some(current.clone()));
        assert_eq!(documents(&index), 1);

        // An earlier schema version in the payload (an index an earlier release built).
        let older = tempfile::tempdir().unwrap();
        let earlier = Payload {
            schema: SCHEMA_VERSION - 1,
            ..current.clone()
        };
        commit_index(older.path(), Fields::schema().0, &earlier);
        let (index, payload) = open_index(Some(older.path()), Fields::schema().0).unwrap();
        assert_eq!(
            payload, None,
            "an index of schema {} is not resumed",
            earlier.schema
        );
        assert_eq!(documents(&index), 0);

        // The right version but other fields (schema 1 stored `position`).
        let other = tempfile::tempdir().unwrap();
        let mut builder = Schema::builder();
        builder.add_u64_field("position", STORED);
        commit_index(other.path(), builder.build(), &current);
        let (index, payload) = open_index(Some(other.path()), Fields::schema().0).unwrap();
        assert_eq!(payload, None);
        assert_eq!(documents(&index), 0);
        assert_eq!(index.schema(), Fields::schema().0);
    }

    #[test]
    fn cursors_round_trip_and_refuse_anything_else() {
        let cursor = Cursor { before: 1042 };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for text in [
            "",
            "1042",
            "cDEwNDI=",
            "!!",
            &URL_SAFE_NO_PAD.encode("q1042"),
        ] {
            assert_eq!(Cursor::decode(text), None, "{text}");
        }
    }
}
