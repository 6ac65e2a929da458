//! The appender: the one task that writes the log.
//!
//! It takes every request waiting on its channel (up to a budget of events), places them one
//! request at a time against what is committed plus what earlier requests of the same group
//! placed, writes every placed row in one transaction, commits once, and only then answers the
//! requests and publishes the new head. One fsync carries the whole group; positions are
//! gap-free in commit order because only this task assigns them.

use std::collections::HashMap;
use std::sync::Arc;

use chronicle_domain::merkle::{Frontier, Hash, NodeId, root_plan};
use chronicle_domain::{NewEvent, Place, PreparedEvent, RecordedEvent, format_timestamp};
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

use crate::checkpoint::{Checkpoint, NoteSigner};
use crate::db::{self, APPEND_LOCK, Access, Backend, Dialect, Script, Sql};
use crate::error::StoreError;
use crate::follow;
use crate::store::{Appended, Head, SignedCheckpoint};
use crate::trees::{self, StoredTree};

/// Rows per multi-row statement: 9 columns each stays well under SQLite's 32,766 variables.
const ROWS_PER_STATEMENT: usize = 1_000;
/// Streams kept in memory between groups; past this the cache starts over, once the stream tail
/// is merged (every stream of the tail must stay in it).
const STREAM_CACHE_LIMIT: usize = 200_000;
/// Events appended by other processes that the appender replays into its state; past this it
/// rereads the state instead.
const CATCH_UP_LIMIT: u64 = 100_000;

pub(crate) enum Command {
    Append(Request),
    /// Signs the current head of a tree ('' for the log, else a workspace) and keeps the note.
    Checkpoint {
        tree: String,
        reply: oneshot::Sender<Result<SignedCheckpoint, StoreError>>,
    },
    Shutdown(oneshot::Sender<()>),
}

pub(crate) struct Request {
    /// Shared with the producer, which frees them (see [`Appender::commit_group`]).
    pub events: Arc<Vec<PreparedEvent>>,
    pub reply: oneshot::Sender<Result<Vec<Appended>, StoreError>>,
}

#[derive(Debug, Clone, Copy)]
struct StreamState {
    stream_id: i64,
    version: u64,
}

#[derive(Debug, Clone, Copy)]
struct WorkspaceState {
    workspace_id: i64,
    seq: u64,
}

/// What the appender knows of a group's event ids before it writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// Assumed new: the unique index on ids refuses the group if one is recorded.
    New,
    /// Looked up: the recorded ones are answered as retries.
    LookedUp,
}

/// One event placed in the current group, waiting for the commit.
struct PlacedRow<'a> {
    event: &'a NewEvent,
    prepared: &'a PreparedEvent,
    place: Place,
    stream_id: i64,
    workspace_id: Option<i64>,
}

/// An event id as the store judges it: unique within its workspace (`None`: no workspace).
type EventKey<'a> = (Uuid, Option<&'a str>);

/// The recorded events among a group's, by id and workspace.
type Recorded = HashMap<(Uuid, Option<String>), RecordedEvent>;

/// What the group has placed so far, over the committed state.
#[derive(Default)]
struct GroupState<'a> {
    /// By stream key (`WORKSPACE/STREAM`, see [`chronicle_domain::stream_key`]).
    streams: HashMap<String, StreamState>,
    workspaces: HashMap<String, WorkspaceState>,
    /// Event ids placed in this group: index into `rows`.
    placed_ids: HashMap<EventKey<'a>, usize>,
}

/// How the appender signs checkpoints.
#[derive(Clone)]
pub(crate) struct Signing {
    pub signer: NoteSigner,
    /// The log's origin line; a workspace tree's is `ORIGIN/workspaces/WS`.
    pub origin: String,
}

pub(crate) struct Appender {
    connection: AnyConnection,
    /// The database, to connect again after the connection is lost (a PostgreSQL restart).
    backend: Backend,
    dialect: Dialect,
    signing: Signing,
    /// The last note signed per tree, while its tree has not grown.
    notes: HashMap<String, SignedCheckpoint>,
    log: Frontier,
    workspace_frontiers: HashMap<i64, Frontier>,
    max_group_events: usize,
    /// Events whose stream entries wait in the tail before a commit moves them into
    /// `stream_index` in one bulk insert (SQLite; see migrations/sqlite/0006).
    stream_merge_events: u64,
    next_position: u64,
    next_stream_id: i64,
    next_workspace_id: i64,
    /// `next_stream_id` and `next_workspace_id` as the current group's placing found them.
    unplaced_ids: (i64, i64),
    last_recorded_at: OffsetDateTime,
    head: Head,
    /// Events up to this position have their entries in `stream_index`; the streams of every
    /// event after it (the tail) are all in `streams`.
    merged_through: u64,
    /// By stream key (`WORKSPACE/STREAM`).
    streams: HashMap<String, StreamState>,
    workspaces: HashMap<String, WorkspaceState>,
}

impl Appender {
    /// Reads what the appender must know of the committed log.
    pub async fn load(
        connection: AnyConnection,
        backend: Backend,
        max_group_events: usize,
        stream_merge_events: u64,
        signing: Signing,
    ) -> Result<Appender, StoreError> {
        let mut appender = Appender {
            connection,
            dialect: backend.dialect(),
            backend,
            signing,
            notes: HashMap::new(),
            log: Frontier::default(),
            workspace_frontiers: HashMap::new(),
            max_group_events: max_group_events.max(1),
            stream_merge_events: stream_merge_events.max(1),
            next_position: 1,
            next_stream_id: 1,
            next_workspace_id: 1,
            unplaced_ids: (1, 1),
            last_recorded_at: OffsetDateTime::UNIX_EPOCH,
            head: Head::default(),
            merged_through: 0,
            streams: HashMap::new(),
            workspaces: HashMap::new(),
        };
        appender.reload().await?;
        Ok(appender)
    }

    pub fn head(&self) -> Head {
        self.head.clone()
    }

    /// Rereads the committed state, after start or after a commit that may not have landed.
    async fn reload(&mut self) -> Result<(), StoreError> {
        let last =
            sqlx::query("SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1")
                .fetch_optional(&mut self.connection)
                .await?;
        self.head = match last {
            Some(row) => Head {
                position: row.get::<i64, _>(0) as u64,
                recorded_at: Some(row.get(1)),
            },
            None => Head::default(),
        };
        self.next_position = self.head.position + 1;
        self.last_recorded_at = self
            .head
            .recorded_at
            .as_deref()
            .and_then(|text| chronicle_domain::parse_timestamp(text).ok())
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        self.next_stream_id =
            sqlx::query_scalar::<_, i64>("SELECT COALESCE(MAX(stream_id), 0) + 1 FROM streams")
                .fetch_one(&mut self.connection)
                .await?;
        self.streams.clear();
        self.load_stream_tail().await?;
        self.workspaces.clear();
        let rows = sqlx::query("SELECT workspace_id, name, seq FROM workspaces")
            .fetch_all(&mut self.connection)
            .await?;
        for row in rows {
            let state = WorkspaceState {
                workspace_id: row.get(0),
                seq: row.get::<i64, _>(2) as u64,
            };
            self.workspaces.insert(row.get(1), state);
        }
        self.next_workspace_id = self
            .workspaces
            .values()
            .map(|w| w.workspace_id)
            .max()
            .unwrap_or(0)
            + 1;

        self.log = self
            .load_frontier(StoredTree::Log, self.head.position)
            .await?;
        self.workspace_frontiers.clear();
        let workspaces: Vec<WorkspaceState> = self.workspaces.values().copied().collect();
        for workspace in workspaces {
            let tree = StoredTree::Workspace(workspace.workspace_id);
            let frontier = self.load_frontier(tree, workspace.seq).await?;
            self.workspace_frontiers
                .insert(workspace.workspace_id, frontier);
        }
        self.notes.clear();
        Ok(())
    }

    /// Rereads the committed state after a failed group, on a new connection when the old one
    /// is gone (a database restarted under load): the next group starts from what committed.
    async fn recover(&mut self) -> Result<(), StoreError> {
        if self.reload().await.is_ok() {
            return Ok(());
        }
        self.connection = self.backend.connect(Access::ReadWrite).await?;
        self.reload().await
    }

    /// Replays into the committed state what other processes appended since (PostgreSQL, under
    /// the append lock): leaves into the frontiers, stream versions, workspace sequences, ids.
    async fn catch_up(&mut self) -> Result<(), StoreError> {
        let newest: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut self.connection)
            .await?;
        let newest = newest as u64;
        if newest == self.head.position {
            return Ok(());
        }
        if newest < self.head.position || newest - self.head.position > CATCH_UP_LIMIT {
            return self.reload().await;
        }
        let rows = sqlx::query(
            "SELECT e.position, e.stream_id, s.name, e.stream_version, e.workspace_id, w.name, \
             e.workspace_seq, e.leaf_hash, e.recorded_at FROM events e \
             JOIN streams s ON s.stream_id = e.stream_id \
             LEFT JOIN workspaces w ON w.workspace_id = e.workspace_id \
             WHERE e.position > $1 ORDER BY e.position",
        )
        .bind(self.head.position as i64)
        .fetch_all(&mut self.connection)
        .await?;
        for row in rows {
            let position = row.try_get::<i64, _>(0)? as u64;
            let leaf = trees::to_hash(row.try_get(7)?, 0, position - 1)?;
            self.log.push(leaf);
            let stream_id: i64 = row.try_get(1)?;
            let stream = StreamState {
                stream_id,
                version: row.try_get::<i64, _>(3)? as u64,
            };
            self.streams.insert(row.try_get(2)?, stream);
            self.next_stream_id = self.next_stream_id.max(stream_id + 1);
            if let Some(workspace_id) = row.try_get::<Option<i64>, _>(4)? {
                let workspace = WorkspaceState {
                    workspace_id,
                    seq: row.try_get::<i64, _>(6)? as u64,
                };
                self.workspaces.insert(row.try_get(5)?, workspace);
                self.workspace_frontiers
                    .entry(workspace_id)
                    .or_default()
                    .push(leaf);
                self.next_workspace_id = self.next_workspace_id.max(workspace_id + 1);
            }
            self.head = Head {
                position,
                recorded_at: Some(row.try_get(8)?),
            };
        }
        self.next_position = self.head.position + 1;
        if let Some(recorded_at) = self.head.recorded_at.as_deref()
            && let Ok(time) = chronicle_domain::parse_timestamp(recorded_at)
        {
            self.last_recorded_at = self.last_recorded_at.max(time);
        }
        Ok(())
    }

    /// Reads how far `stream_index` reaches, and brings the streams of the events after it into
    /// the cache: their versions are not in `stream_index` yet.
    async fn load_stream_tail(&mut self) -> Result<(), StoreError> {
        let merged_through: i64 =
            sqlx::query_scalar("SELECT merged_through FROM stream_index_state")
                .fetch_one(&mut self.connection)
                .await?;
        self.merged_through = merged_through as u64;
        let rows = sqlx::query(
            "SELECT s.stream_id, s.name, MAX(e.stream_version) FROM events e \
             JOIN streams s ON s.stream_id = e.stream_id WHERE e.position > $1 \
             GROUP BY s.stream_id, s.name",
        )
        .bind(merged_through)
        .fetch_all(&mut self.connection)
        .await?;
        for row in rows {
            let state = StreamState {
                stream_id: row.try_get(0)?,
                version: row.try_get::<i64, _>(2)? as u64,
            };
            self.streams.insert(row.try_get(1)?, state);
        }
        Ok(())
    }

    async fn load_frontier(&mut self, tree: StoredTree, size: u64) -> Result<Frontier, StoreError> {
        let hashes = trees::node_hashes(&mut self.connection, tree, &root_plan(size)).await?;
        Frontier::from_plan_hashes(size, hashes).ok_or(StoreError::MissingNode {
            level: 0,
            index: size,
        })
    }

    /// Serves commands until a shutdown arrives and every append queued before it is done.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        head: Arc<watch::Sender<Head>>,
    ) {
        let mut shutdown_waiters = Vec::new();
        while let Some(command) = commands.recv().await {
            let mut group = Vec::new();
            let mut events = 0;
            let mut next = Some(command);
            while let Some(command) = next.take() {
                match command {
                    Command::Append(request) => {
                        events += request.events.len();
                        group.push(request);
                    }
                    Command::Checkpoint { tree, reply } => {
                        // Sign after the appends taken so far, so the note covers them.
                        if !group.is_empty() {
                            self.commit_group(std::mem::take(&mut group), &head).await;
                            events = 0;
                        }
                        let _ = reply.send(self.checkpoint(&tree).await);
                    }
                    Command::Shutdown(waiter) => {
                        // Refuse new appends; those already queued are still served.
                        commands.close();
                        shutdown_waiters.push(waiter);
                    }
                }
                if events < self.max_group_events {
                    next = commands.try_recv().ok();
                }
            }
            if !group.is_empty() {
                self.commit_group(group, &head).await;
            }
        }
        for waiter in shutdown_waiters {
            let _ = waiter.send(());
        }
        tracing::info!(position = self.head.position, "appender stopped");
    }

    async fn commit_group(&mut self, group: Vec<Request>, head: &watch::Sender<Head>) {
        let mut outcomes: Vec<Option<Result<Vec<Appended>, StoreError>>> =
            Vec::with_capacity(group.len());
        let result = self.write_group(&group, &mut outcomes).await;
        // Every request is answered, also when the group failed before placing all of them.
        outcomes.resize_with(group.len(), || None);
        match result {
            Ok(()) => follow::advance(head, self.head.clone()),
            Err(error) => {
                tracing::error!(error = %error, "group commit failed; the appender rereads the committed state");
                for outcome in outcomes.iter_mut() {
                    if matches!(outcome, None | Some(Ok(_))) {
                        // The cause (a full disk, a lost connection) says when to retry.
                        *outcome = Some(Err(StoreError::Unavailable(format!(
                            "the database could not commit the batch: {error}"
                        ))));
                    }
                }
                if let Err(error) = self.recover().await {
                    tracing::error!(error = %error, "rereading the committed state failed; the next group tries again");
                }
            }
        }
        for (Request { events, reply }, outcome) in group.into_iter().zip(outcomes) {
            let outcome = outcome
                .unwrap_or_else(|| Err(StoreError::Unavailable("the batch was not placed".into())));
            // Let go first: the producer, holding the other share until answered, frees them.
            drop(events);
            let _ = reply.send(outcome);
        }
    }

    /// Writes the group on the bet that none of its event ids is recorded yet, which holds
    /// unless a producer retries: the unique index on ids then refuses the group, which is
    /// rolled back and written again after looking its ids up (one lookup less per group, and
    /// the index probes it would repeat, in the common case).
    async fn write_group(
        &mut self,
        group: &[Request],
        outcomes: &mut Vec<Option<Result<Vec<Appended>, StoreError>>>,
    ) -> Result<(), StoreError> {
        match self.write_group_once(group, outcomes, Ids::New).await {
            Err(StoreError::Database(sqlx::Error::Database(error)))
                if error.is_unique_violation() =>
            {
                metrics::counter!("chronicle_append_id_rechecks_total").increment(1);
                outcomes.clear();
                // Give back the ids the refused placing took; those caught up from other
                // processes stay taken.
                (self.next_stream_id, self.next_workspace_id) = self.unplaced_ids;
                self.write_group_once(group, outcomes, Ids::LookedUp).await
            }
            result => result,
        }
    }

    /// Takes the write lock, places and writes the group, commits; rolls back on failure.
    async fn write_group_once(
        &mut self,
        group: &[Request],
        outcomes: &mut Vec<Option<Result<Vec<Appended>, StoreError>>>,
        ids: Ids,
    ) -> Result<(), StoreError> {
        self.dialect
            .begin_write(&mut self.connection, APPEND_LOCK)
            .await?;
        let result = self.place_and_write(group, outcomes, ids).await;
        if result.is_err() {
            db::rollback(&mut self.connection).await;
        }
        result
    }

    /// Places every request of the group, writes the placed rows, commits, then advances the
    /// committed state. `outcomes` gets one entry per request as it is placed.
    async fn place_and_write(
        &mut self,
        group: &[Request],
        outcomes: &mut Vec<Option<Result<Vec<Appended>, StoreError>>>,
        ids: Ids,
    ) -> Result<(), StoreError> {
        if self.dialect == Dialect::Postgres {
            self.catch_up().await?;
        }
        self.unplaced_ids = (self.next_stream_id, self.next_workspace_id);
        let recorded = match ids {
            Ids::New => HashMap::new(),
            Ids::LookedUp => self.recorded_by_id(group).await?,
        };
        let names: Vec<&str> = group
            .iter()
            .flat_map(|r| r.events.iter().map(|p| p.stream_key.as_str()))
            .filter(|name| !self.streams.contains_key(*name))
            .collect();
        self.load_streams(&names).await?;

        let first_new_stream_id = self.next_stream_id;
        let (mut state, mut rows) = self.place_group(group, &recorded, outcomes);
        let refused_on_version = outcomes
            .iter()
            .any(|outcome| matches!(outcome, Some(Err(StoreError::WrongExpectedVersion { .. }))));
        if ids == Ids::New && refused_on_version {
            // A retry's events were placed as new and its expected versions no longer hold:
            // place the group again knowing which events are recorded (nothing is written yet).
            metrics::counter!("chronicle_append_id_rechecks_total").increment(1);
            (self.next_stream_id, self.next_workspace_id) = self.unplaced_ids;
            outcomes.clear();
            let recorded = self.recorded_by_id(group).await?;
            (state, rows) = self.place_group(group, &recorded, outcomes);
        }
        if rows.is_empty() {
            sqlx::query("COMMIT").execute(&mut self.connection).await?;
            return Ok(());
        }

        let recorded_at = self.next_recorded_at();
        let recorded_at_text = format_timestamp(recorded_at);
        let (bodies, leaves): (Vec<Vec<u8>>, Vec<Hash>) = rows
            .iter()
            .map(|row| row.prepared.seal(row.place, &recorded_at_text))
            .unzip();

        // Grow the log tree and each workspace tree by the new leaves, in position order.
        let mut log = self.log.clone();
        let mut log_nodes: Vec<(NodeId, Hash)> = Vec::new();
        let mut workspace_frontiers: HashMap<i64, Frontier> = HashMap::new();
        let mut workspace_nodes: Vec<(i64, NodeId, Hash)> = Vec::new();
        for (row, leaf) in rows.iter().zip(&leaves) {
            debug_assert_eq!(log.size() + 1, row.place.position);
            log_nodes.extend(
                log.push(*leaf)
                    .into_iter()
                    .filter(|(id, _)| trees::is_stored(*id)),
            );
            if let Some(workspace_id) = row.workspace_id {
                let frontier = workspace_frontiers.entry(workspace_id).or_insert_with(|| {
                    self.workspace_frontiers
                        .get(&workspace_id)
                        .cloned()
                        .unwrap_or_default()
                });
                let completed = frontier.push(*leaf);
                workspace_nodes.extend(
                    completed
                        .into_iter()
                        .filter(|(id, _)| trees::is_stored(*id))
                        .map(|(id, hash)| (workspace_id, id, hash)),
                );
            }
        }

        let last_position = rows
            .iter()
            .map(|row| row.place.position)
            .max()
            .unwrap_or(self.head.position);
        // PostgreSQL's stream_index is its index on the events table: nothing waits to merge.
        let merge_streams = self.dialect == Dialect::Postgres
            || last_position - self.merged_through >= self.stream_merge_events;

        let commit_started = std::time::Instant::now();
        let mut script = Script::new(self.dialect);
        // Bodies are bound as they are, not borrowed: the driver copies what it borrows.
        let mut bodies = bodies.into_iter();
        for (chunk, leaves) in rows
            .chunks(ROWS_PER_STATEMENT)
            .zip(leaves.chunks(ROWS_PER_STATEMENT))
        {
            chunk_statement(
                &mut script,
                chunk.len(),
                "INSERT INTO events (position, id, stream_id, stream_version, workspace_id, \
                 workspace_seq, recorded_at, body, leaf_hash) ",
            )
            .values(
                chunk.iter().zip(bodies.by_ref()).zip(leaves),
                |mut values, ((row, body), hash)| {
                    values
                        .bind(row.place.position as i64)
                        .bind(row.event.id.as_bytes().as_slice())
                        .bind(row.stream_id)
                        .bind(row.place.stream_version as i64)
                        .bind(row.workspace_id)
                        .bind(row.place.workspace_seq.map(|seq| seq as i64))
                        .bind(recorded_at_text.as_str())
                        .bind(body)
                        .bind(hash.as_slice());
                },
            );
        }
        if merge_streams && self.dialect == Dialect::Sqlite {
            // In stream order, so each page of the index is written once for the whole tail.
            script
                .statement(
                    "INSERT INTO stream_index (stream_id, stream_version, position) \
                     SELECT stream_id, stream_version, position FROM events WHERE position > ",
                )
                .bind(self.merged_through as i64)
                .push(" ORDER BY stream_id, stream_version");
            script
                .statement("UPDATE stream_index_state SET merged_through = ")
                .bind(last_position as i64);
        }
        for chunk in log_nodes.chunks(ROWS_PER_STATEMENT) {
            chunk_statement(
                &mut script,
                chunk.len(),
                "INSERT INTO log_nodes (leaf_end, level, hash) ",
            )
            .values(chunk, |mut values, (id, hash)| {
                values
                    .bind(id.end() as i64)
                    .bind(i64::from(id.level))
                    .bind(hash.as_slice());
            });
        }
        for chunk in workspace_nodes.chunks(ROWS_PER_STATEMENT) {
            chunk_statement(
                &mut script,
                chunk.len(),
                "INSERT INTO workspace_nodes (workspace_id, leaf_end, level, hash) ",
            )
            .values(chunk, |mut values, (workspace_id, id, hash)| {
                values
                    .bind(*workspace_id)
                    .bind(id.end() as i64)
                    .bind(i64::from(id.level))
                    .bind(hash.as_slice());
            });
        }
        // Only new streams get a row; a stream's version is read from its events.
        let new_streams: Vec<(&String, &StreamState)> = state
            .streams
            .iter()
            .filter(|(_, stream)| stream.stream_id >= first_new_stream_id)
            .collect();
        for chunk in new_streams.chunks(ROWS_PER_STATEMENT) {
            chunk_statement(
                &mut script,
                chunk.len(),
                "INSERT INTO streams (stream_id, name) ",
            )
            .values(chunk, |mut values, (name, stream)| {
                values.bind(stream.stream_id).bind(name.as_str());
            });
        }
        let workspaces: Vec<(&String, &WorkspaceState)> = state.workspaces.iter().collect();
        for chunk in workspaces.chunks(ROWS_PER_STATEMENT) {
            chunk_statement(
                &mut script,
                chunk.len(),
                "INSERT INTO workspaces (workspace_id, name, seq) ",
            )
            .values(chunk, |mut values, (name, workspace)| {
                values
                    .bind(workspace.workspace_id)
                    .bind(name.as_str())
                    .bind(workspace.seq as i64);
            })
            .push(" ON CONFLICT (workspace_id) DO UPDATE SET seq = excluded.seq");
        }
        let new_head = Head {
            position: last_position,
            recorded_at: Some(recorded_at_text.clone()),
        };
        if self.dialect == Dialect::Postgres {
            // Delivered to the other processes when, and only if, the commit lands.
            script
                .statement("SELECT pg_notify(")
                .bind(follow::CHANNEL)
                .push(", ")
                .bind(follow::payload(&new_head))
                .push(")");
        }
        script.commit(&mut self.connection).await?;
        metrics::histogram!("chronicle_commit_duration_seconds")
            .record(commit_started.elapsed().as_secs_f64());
        metrics::histogram!("chronicle_group_commit_events").record(rows.len() as f64);
        metrics::counter!("chronicle_appended_events_total").increment(rows.len() as u64);

        // Committed: the group's state becomes the committed state.
        metrics::gauge!("chronicle_log_position").set(last_position as f64);
        self.next_position = last_position + 1;
        self.last_recorded_at = recorded_at;
        self.head = new_head;
        if merge_streams {
            self.merged_through = last_position;
            if self.streams.len() + state.streams.len() > STREAM_CACHE_LIMIT {
                self.streams.clear();
            }
        }
        self.streams.extend(state.streams);
        self.workspaces.extend(state.workspaces);
        self.log = log;
        self.workspace_frontiers.extend(workspace_frontiers);
        Ok(())
    }

    /// Signs the current head of a tree; a tree that has not grown gets its last note again.
    async fn checkpoint(&mut self, tree: &str) -> Result<SignedCheckpoint, StoreError> {
        if self.dialect == Dialect::Postgres {
            // Cover what other processes appended too.
            self.dialect
                .begin_write(&mut self.connection, APPEND_LOCK)
                .await?;
            let caught_up = self.catch_up().await;
            db::rollback(&mut self.connection).await;
            caught_up?;
        }
        // Only a tree that exists is signed: the log, or a workspace with events, whose name
        // (validated when its first event was) makes the origin one line.
        let (origin, frontier) = if tree.is_empty() {
            (self.signing.origin.clone(), self.log.clone())
        } else {
            let frontier = self
                .workspaces
                .get(tree)
                .and_then(|workspace| self.workspace_frontiers.get(&workspace.workspace_id))
                .cloned()
                .ok_or_else(|| StoreError::NoWorkspace(tree.to_owned()))?;
            (
                format!("{}/workspaces/{tree}", self.signing.origin),
                frontier,
            )
        };
        if let Some(note) = self.notes.get(tree)
            && note.size == frontier.size()
        {
            return Ok(note.clone());
        }
        let checkpoint = Checkpoint {
            origin,
            size: frontier.size(),
            root: frontier.root(),
        };
        let note = self.signing.signer.sign(&checkpoint);
        let signed = SignedCheckpoint {
            note,
            size: checkpoint.size,
            root: checkpoint.root,
        };
        // A tree size signed before keeps its note; a signature by another key (after a key
        // rotation) is added to it, so the stored note verifies under the old key and the new.
        let signature_line = signed
            .note
            .rsplit_once("\n\n")
            .map_or("", |(_, signatures)| signatures);
        sqlx::query(
            "INSERT INTO checkpoints (tree, size, root, note, signed_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (tree, size) DO UPDATE SET note = checkpoints.note || $6, signed_at = $5 \
             WHERE checkpoints.note NOT LIKE '%' || $6 || '%'",
        )
            .bind(tree)
            .bind(signed.size as i64)
            .bind(signed.root.as_slice())
            .bind(&signed.note)
            .bind(format_timestamp(OffsetDateTime::now_utc()))
            .bind(signature_line)
            .execute(&mut self.connection)
            .await?;
        self.notes.insert(tree.to_owned(), signed.clone());
        Ok(signed)
    }

    /// Places every request of the group in turn; `outcomes` gets one entry per request.
    fn place_group<'a>(
        &mut self,
        group: &'a [Request],
        recorded: &Recorded,
        outcomes: &mut Vec<Option<Result<Vec<Appended>, StoreError>>>,
    ) -> (GroupState<'a>, Vec<PlacedRow<'a>>) {
        let mut state = GroupState::default();
        let mut rows = Vec::new();
        for request in group {
            let outcome = self.place_request(request, recorded, &mut state, &mut rows);
            outcomes.push(Some(outcome));
        }
        (state, rows)
    }

    /// Places one atomic request over the group so far; on refusal the group is unchanged.
    fn place_request<'a>(
        &mut self,
        request: &'a Request,
        recorded: &Recorded,
        group: &mut GroupState<'a>,
        rows: &mut Vec<PlacedRow<'a>>,
    ) -> Result<Vec<Appended>, StoreError> {
        let first_row = rows.len();
        let mut streams: HashMap<&str, StreamState> = HashMap::new();
        let mut workspaces: HashMap<&str, WorkspaceState> = HashMap::new();
        let mut answers = Vec::with_capacity(request.events.len());
        // Ids this request placed: index into `rows`.
        let mut placed_ids: HashMap<EventKey<'a>, usize> = HashMap::new();
        let mut next_position = self.next_position + first_row as u64;
        let next_stream_id = self.next_stream_id;
        let next_workspace_id = self.next_workspace_id;

        let refuse = |appender: &mut Appender, rows: &mut Vec<PlacedRow<'a>>, error: StoreError| {
            rows.truncate(first_row);
            appender.next_stream_id = next_stream_id;
            appender.next_workspace_id = next_workspace_id;
            Err(error)
        };

        for (index, prepared) in request.events.iter().enumerate() {
            let event = &prepared.event;
            let key: EventKey<'a> = (event.id, event.workspace.as_deref());
            let existing = if recorded.is_empty() {
                None
            } else {
                recorded.get(&(event.id, event.workspace.clone()))
            };
            if let Some(existing) = existing {
                if event.content() != existing.content() {
                    return refuse(
                        self,
                        rows,
                        StoreError::DuplicateEventId {
                            index,
                            id: event.id,
                        },
                    );
                }
                answers.push(Appended {
                    id: existing.id,
                    position: existing.position,
                    stream: existing.stream.clone(),
                    stream_version: existing.stream_version,
                    workspace_seq: existing.workspace_seq,
                });
                continue;
            }
            let placed_before = group
                .placed_ids
                .get(&key)
                .or_else(|| placed_ids.get(&key))
                .copied();
            if let Some(row_index) = placed_before {
                let row = &rows[row_index];
                if event.content() != row.event.content() {
                    return refuse(
                        self,
                        rows,
                        StoreError::DuplicateEventId {
                            index,
                            id: event.id,
                        },
                    );
                }
                answers.push(appended(row));
                continue;
            }

            let stream = match streams.get(prepared.stream_key.as_str()) {
                Some(stream) => Some(*stream),
                None => group
                    .streams
                    .get(&prepared.stream_key)
                    .or_else(|| self.streams.get(&prepared.stream_key))
                    .copied(),
            };
            let current = stream.map_or(0, |stream| stream.version);
            if !event.expected_version.admits(current) {
                let error = StoreError::WrongExpectedVersion {
                    index,
                    stream: event.stream.clone(),
                    expected: event.expected_version,
                    actual: current,
                };
                return refuse(self, rows, error);
            }
            let stream = stream.unwrap_or_else(|| {
                let stream_id = self.next_stream_id;
                self.next_stream_id += 1;
                StreamState {
                    stream_id,
                    version: 0,
                }
            });
            let stream = StreamState {
                version: stream.version + 1,
                ..stream
            };
            streams.insert(prepared.stream_key.as_str(), stream);

            let workspace = match event.workspace.as_deref() {
                None => None,
                Some(name) => {
                    let known = match workspaces.get(name) {
                        Some(workspace) => Some(*workspace),
                        None => group
                            .workspaces
                            .get(name)
                            .or_else(|| self.workspaces.get(name))
                            .copied(),
                    };
                    let workspace = known.unwrap_or_else(|| {
                        let workspace_id = self.next_workspace_id;
                        self.next_workspace_id += 1;
                        WorkspaceState {
                            workspace_id,
                            seq: 0,
                        }
                    });
                    let workspace = WorkspaceState {
                        seq: workspace.seq + 1,
                        ..workspace
                    };
                    workspaces.insert(name, workspace);
                    Some(workspace)
                }
            };

            let place = Place {
                position: next_position,
                stream_version: stream.version,
                workspace_seq: workspace.map(|w| w.seq),
            };
            next_position += 1;
            placed_ids.insert(key, rows.len());
            rows.push(PlacedRow {
                event,
                prepared,
                place,
                stream_id: stream.stream_id,
                workspace_id: workspace.map(|w| w.workspace_id),
            });
            answers.push(appended(rows.last().expect("just pushed")));
        }

        // The whole request is placed: it joins the group.
        group.placed_ids.extend(placed_ids);
        group.streams.extend(
            streams
                .into_iter()
                .map(|(name, state)| (name.to_owned(), state)),
        );
        group.workspaces.extend(
            workspaces
                .into_iter()
                .map(|(name, state)| (name.to_owned(), state)),
        );
        Ok(answers)
    }

    /// The time every event of the next group is recorded at: now, to the millisecond, and never
    /// before the previous group, so time order and position order agree.
    fn next_recorded_at(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_millisecond(now.millisecond()).unwrap_or(now);
        now.max(self.last_recorded_at)
    }

    /// Returns the recorded events among the group's.
    async fn recorded_by_id(&mut self, group: &[Request]) -> Result<Recorded, StoreError> {
        let ids: Vec<Uuid> = group
            .iter()
            .flat_map(|r| r.events.iter().map(|p| p.event.id))
            .collect();
        let mut found = HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut query = Sql::new("SELECT position, body, leaf_hash FROM events WHERE id IN ");
            query.bind_list(chunk.iter().map(|id| id.as_bytes().as_slice()));
            // Other workspaces' events of these ids come back too: ids are judged per workspace.
            for row in query.fetch_all(&mut self.connection).await? {
                let event = crate::reads::decode_row(&row)?;
                found.insert((event.id, event.workspace.clone()), event);
            }
        }
        Ok(found)
    }

    /// Brings the committed state of these streams (by key) into the cache; absent streams stay
    /// absent.
    /// A stream missing from the cache has no event in the tail, so `stream_index` has its
    /// version.
    async fn load_streams(&mut self, names: &[&str]) -> Result<(), StoreError> {
        for chunk in names.chunks(ROWS_PER_STATEMENT) {
            let mut query = Sql::new(
                "SELECT s.stream_id, s.name, (SELECT COALESCE(MAX(i.stream_version), 0) \
                 FROM stream_index i WHERE i.stream_id = s.stream_id) FROM streams s WHERE s.name IN ",
            );
            query.bind_list(chunk.iter().copied());
            for row in query.fetch_all(&mut self.connection).await? {
                let state = StreamState {
                    stream_id: row.get(0),
                    version: row.get::<i64, _>(2) as u64,
                };
                self.streams.insert(row.get(1), state);
            }
        }
        Ok(())
    }
}

/// Starts the statement of a chunk of rows: a full chunk's text recurs from group to group.
fn chunk_statement<'s, 'q>(script: &'s mut Script<'q>, rows: usize, text: &str) -> &'s mut Sql<'q> {
    if rows == ROWS_PER_STATEMENT {
        script.recurring_statement(text)
    } else {
        script.statement(text)
    }
}

fn appended(row: &PlacedRow<'_>) -> Appended {
    Appended {
        id: row.event.id,
        position: row.place.position,
        stream: row.event.stream.clone(),
        stream_version: row.place.stream_version,
        workspace_seq: row.place.workspace_seq,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use chronicle_domain::{NewEvent, PreparedEvent};
    use chronicle_fixtures::{Scale, history};
    use serde_json::Value;
    use sqlx::Connection;

    use crate::checkpoint::NoteSigner;
    use crate::{Direction, Store, StoreConfig, StoreError};

    fn prepared(value: &Value) -> PreparedEvent {
        PreparedEvent::new(
            NewEvent::from_json(value, uuid::Uuid::now_v7()).unwrap(),
            "test",
        )
    }

    /// A retried batch, a batch reusing a recorded id with other content and new batches, all
    /// in one group: the group is refused by the id index, written again after looking its ids
    /// up, and each producer gets the answer it would have got alone.
    #[tokio::test]
    async fn a_retry_in_a_group_of_new_events_is_answered_and_the_rest_appended_once() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(StoreConfig::new(
            directory.path().join("store.db"),
            NoteSigner::generate("chronicle.test"),
        ))
        .await
        .unwrap();
        let mut events: Vec<Value> = history(7, Scale::small()).into_iter().take(6).collect();
        for event in &mut events {
            event["id"] = Value::String(uuid::Uuid::now_v7().to_string());
        }
        // The first event opens its stream: retried, its demand no longer holds.
        events[0]["expected_version"] = Value::String("no_stream".into());
        let first = store
            .append(events[..2].iter().map(prepared).collect())
            .await
            .unwrap();
        let mut changed = events[1].clone();
        changed["occurred_at"] = Value::String("2020-01-01T00:00:00Z".into());

        // One task, no await between the sends: the appender takes all four as one group.
        let (retried, new, refused, newer) = tokio::join!(
            store.append(events[..2].iter().map(prepared).collect()),
            store.append(events[2..4].iter().map(prepared).collect()),
            store.append(vec![prepared(&changed)]),
            store.append(events[4..].iter().map(prepared).collect()),
        );
        assert_eq!(retried.unwrap(), first);
        // Alone, too, a retry is answered, also one whose demand no longer holds.
        assert_eq!(
            store
                .append(events[..1].iter().map(prepared).collect())
                .await
                .unwrap(),
            first[..1]
        );
        let positions = |answer: Result<Vec<crate::Appended>, StoreError>| -> Vec<u64> {
            answer.unwrap().iter().map(|a| a.position).collect()
        };
        assert_eq!(positions(new), [3, 4]);
        assert!(
            matches!(refused, Err(StoreError::DuplicateEventId { index: 0, id }) if id.to_string() == events[1]["id"]),
            "{refused:?}"
        );
        assert_eq!(positions(newer), [5, 6]);

        let recorded = store.read_all(0, 100).await.unwrap();
        let ids: Vec<String> = recorded.iter().map(|e| e.id.to_string()).collect();
        let sent: Vec<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
        assert_eq!(ids, sent);
        assert_eq!(store.head().position, 6);
        // Stream versions continue from the committed ones, counted once.
        for event in &recorded {
            let stream = store
                .read_stream(
                    event.workspace.as_deref(),
                    &event.stream,
                    None,
                    100,
                    Direction::Forward,
                )
                .await
                .unwrap();
            let versions: Vec<u64> = stream.iter().map(|e| e.stream_version).collect();
            assert_eq!(versions, (1..=stream.len() as u64).collect::<Vec<_>>());
        }
    }

    /// A store whose stream entries are merged into `stream_index` every `merge` events.
    async fn store_merging_every(path: &Path, merge: u64) -> Store {
        let mut config = StoreConfig::new(path, NoteSigner::generate("chronicle.test"));
        config.stream_merge_events = merge;
        Store::open(config).await.unwrap()
    }

    /// Reads every stream of the log whole, in pages from each version forward and backward,
    /// and checks each page against the log read by position.
    async fn check_streams(store: &Store) {
        // (workspace, stream) → (stream version, position) of each of its events.
        type Streams = BTreeMap<(Option<String>, String), Vec<(u64, u64)>>;
        let mut expected = Streams::new();
        for event in store.read_all(0, 100_000).await.unwrap() {
            expected
                .entry((event.workspace.clone(), event.stream.clone()))
                .or_default()
                .push((event.stream_version, event.position));
        }
        let read = |(workspace, stream): (Option<String>, String),
                    from: Option<u64>,
                    limit: u32,
                    direction: Direction| async move {
            store
                .read_stream(workspace.as_deref(), &stream, from, limit, direction)
                .await
                .unwrap()
                .iter()
                .map(|e| (e.stream_version, e.position))
                .collect::<Vec<_>>()
        };
        for (stream, events) in &expected {
            let versions: Vec<u64> = events.iter().map(|(version, _)| *version).collect();
            assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>());
            assert_eq!(
                read(stream.clone(), None, 1_000, Direction::Forward).await,
                *events
            );
            for from in 1..=events.len() {
                let forward = read(stream.clone(), Some(from as u64), 3, Direction::Forward).await;
                assert_eq!(
                    forward,
                    events[from - 1..(from + 2).min(events.len())],
                    "{stream:?} from {from}"
                );
                let backward =
                    read(stream.clone(), Some(from as u64), 2, Direction::Backward).await;
                let mut newest_first: Vec<(u64, u64)> =
                    events[from.saturating_sub(2)..from].to_vec();
                newest_first.reverse();
                assert_eq!(backward, newest_first, "{stream:?} back from {from}");
            }
        }
    }

    /// (events merged into stream_index, rows in it, events in the log), read from the file.
    async fn merge_state(path: &Path) -> (i64, i64, i64) {
        let mut connection = sqlx::sqlite::SqliteConnection::connect(&format!(
            "sqlite://{}?mode=ro",
            path.display()
        ))
        .await
        .unwrap();
        sqlx::query_as(
            "SELECT (SELECT merged_through FROM stream_index_state), \
             (SELECT COUNT(*) FROM stream_index), (SELECT COUNT(*) FROM events)",
        )
        .fetch_one(&mut connection)
        .await
        .unwrap()
    }

    /// With a merge every 7 events, stream entries move into stream_index in bulk while the
    /// newest wait in the tail: every stream reads the same across the two, before and after the
    /// store reopens, and after reopening versions continue from the tail's.
    #[tokio::test]
    async fn streams_read_the_same_across_the_merged_index_and_its_tail_and_after_reopening() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("store.db");
        let mut events: Vec<Value> = history(11, Scale::small()).into_iter().take(400).collect();
        for event in &mut events {
            event["id"] = Value::String(uuid::Uuid::now_v7().to_string());
        }
        let (first, second) = events.split_at(190);
        let append_in_batches = |store: Store, events: Vec<Value>| async move {
            let mut rest = &events[..];
            for size in [1, 4, 9, 2, 16, 3].into_iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (batch, after) = rest.split_at(size.min(rest.len()));
                store
                    .append(batch.iter().map(prepared).collect())
                    .await
                    .unwrap();
                rest = after;
            }
            store
        };

        let store = append_in_batches(store_merging_every(&path, 7).await, first.to_vec()).await;
        check_streams(&store).await;
        let (merged, indexed, logged) = merge_state(&path).await;
        assert_eq!(indexed, merged, "one entry per merged event");
        assert!(
            0 < merged && merged < logged && logged - merged < 7,
            "{merged} of {logged}"
        );
        store.shutdown().await;

        // Reopened: the tail's streams are known at their versions.
        let store = store_merging_every(&path, 7).await;
        check_streams(&store).await;
        let last = store
            .read_all(logged as u64 - 1, 1)
            .await
            .unwrap()
            .remove(0);
        assert!(
            last.position as i64 > merged,
            "the last event waits in the tail"
        );
        let mut next = first[189].clone();
        next["id"] = Value::String(uuid::Uuid::now_v7().to_string());
        next["expected_version"] = Value::from(last.stream_version - 1);
        assert!(
            matches!(
                store.append(vec![prepared(&next)]).await,
                Err(StoreError::WrongExpectedVersion { actual, .. }) if actual == last.stream_version
            ),
            "the stream's version is the tail's"
        );
        next["expected_version"] = Value::from(last.stream_version);
        let appended = store.append(vec![prepared(&next)]).await.unwrap();
        assert_eq!(appended[0].stream_version, last.stream_version + 1);

        let store = append_in_batches(store, second.to_vec()).await;
        check_streams(&store).await;
        let (merged, indexed, logged) = merge_state(&path).await;
        assert_eq!((indexed, logged), (merged, 401));
        assert!(logged - merged < 7, "{merged} of {logged}");
        store.shutdown().await;
    }
}
