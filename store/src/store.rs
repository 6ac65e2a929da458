//! The [`Store`] handle: opening, appending through the appender, reading, the head watch.

use std::path::PathBuf;
use std::sync::Arc;

use chronicle_domain::{
    Actor, ActorKind, Context, ExpectedVersion, MAX_LEAF_DATA_BYTES, NewEvent, PreparedEvent,
    RecordedEvent, SUBMITTED_BY_CHRONICLE, format_timestamp,
};
use serde::Serialize;
use sqlx::AnyPool;
use time::OffsetDateTime;
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::appender::{Appender, Command, Request, Signing};
use crate::checkpoint::{NoteSigner, NoteVerifier, open_signed_checkpoint};
use crate::db::{Access, Backend, Durability};
use crate::error::StoreError;
use crate::reads;
use crate::trees::{self, ConsistencyProof, InclusionProof, TreeHead, TreeId};

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The database: a SQLite file (created with its folder when missing) or PostgreSQL.
    pub backend: Backend,
    /// The most events one group commit carries.
    pub max_group_events: usize,
    /// SQLite: how many events' stream entries wait before a commit moves them into the index
    /// by stream in one bulk insert; reading a stream scans at most this many recent events.
    pub stream_merge_events: u64,
    /// How many append requests may wait for the appender before callers are told to retry.
    pub queue_capacity: usize,
    /// Read-only connections for readers.
    pub reader_connections: u32,
    /// The key that signs checkpoints.
    pub signer: NoteSigner,
    /// The origin line of the log's checkpoints (workspace trees add `/workspaces/WS`).
    pub origin: String,
    /// Sign with `signer` even though the newest stored checkpoint was signed by another key
    /// (a key replaced on purpose). Without it such a store is refused at open.
    pub rotate_signing_key: bool,
}

impl StoreConfig {
    /// Returns the defaults for a database at `database_path` whose checkpoints `signer` signs,
    /// with the signer's name as the origin.
    pub fn new(database_path: impl Into<PathBuf>, signer: NoteSigner) -> StoreConfig {
        StoreConfig::with_backend(Backend::Sqlite(database_path.into()), signer)
    }

    /// Returns the defaults for any backend.
    pub fn with_backend(backend: Backend, signer: NoteSigner) -> StoreConfig {
        StoreConfig {
            backend,
            max_group_events: 20_000,
            stream_merge_events: 20_000,
            queue_capacity: 4_096,
            reader_connections: 4,
            origin: signer.name().to_owned(),
            signer,
            rotate_signing_key: false,
        }
    }
}

/// The newest committed event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Head {
    pub position: u64,
    pub recorded_at: Option<String>,
}

/// Where one appended event landed, as `POST /v1/events` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Appended {
    pub id: Uuid,
    pub position: u64,
    pub stream: String,
    pub stream_version: u64,
    pub workspace_seq: Option<u64>,
}

/// A signed checkpoint: the C2SP signed note and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub note: String,
    pub size: u64,
    pub root: chronicle_domain::merkle::Hash,
}

/// The role [`Store::lead`] gave; ends when dropped (the lock's connection closes).
pub struct Leadership {
    /// Held, never used: the lock lives as long as its session.
    _connection: Option<sqlx::AnyConnection>,
}

impl std::fmt::Debug for Leadership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leadership").finish_non_exhaustive()
    }
}

/// Which way to read a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    #[default]
    Forward,
    Backward,
}

/// A handle on the event store; cheap to clone.
#[derive(Clone)]
pub struct Store {
    commands: mpsc::Sender<Command>,
    pub(crate) readers: AnyPool,
    pub(crate) side_writer: AnyPool,
    head: watch::Receiver<Head>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    verifier_key: Arc<str>,
    backend: Arc<Backend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("head", &*self.head.borrow())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store, runs migrations and starts the appender.
    pub async fn open(config: StoreConfig) -> Result<Store, StoreError> {
        let backend = config.backend;
        backend.migrate().await?;
        let writer = backend.connect(Access::ReadWrite).await?;
        // Tables beside the log (tokens, webhooks and their cursors) are written through one
        // more connection; SQLite serialises it with the appender's commits.
        let side_writer = backend.pool(Access::ReadWrite, 1, Durability::Full).await?;
        let readers = backend
            .pool(
                Access::ReadOnly,
                config.reader_connections,
                Durability::Full,
            )
            .await?;

        let rotated =
            check_signing_key(&readers, &config.signer, config.rotate_signing_key).await?;
        let verifier_key = Arc::from(config.signer.verifier_key());
        let signing = Signing {
            signer: config.signer,
            origin: config.origin,
        };
        let appender = Appender::load(
            writer,
            backend.clone(),
            config.max_group_events,
            config.stream_merge_events,
            signing,
        )
        .await?;
        let (head_sender, head) = watch::channel(appender.head());
        let head_sender = Arc::new(head_sender);
        let (commands, receiver) = mpsc::channel(config.queue_capacity.max(1));
        let mut tasks = vec![tokio::spawn(appender.run(receiver, head_sender.clone()))];
        match &backend {
            // Other processes append to the same database: follow their commits too.
            Backend::Postgres(url) => {
                tasks.push(crate::follow::spawn(url.clone(), readers.clone(), head_sender).await?)
            }
            Backend::Sqlite(_) => tasks.push(crate::wal::spawn(&backend, head.clone()).await?),
        }
        let store = Store {
            commands,
            readers,
            side_writer,
            head,
            tasks: Arc::new(Mutex::new(tasks)),
            verifier_key,
            backend: Arc::new(backend),
        };
        if rotated {
            record_rotation(&store).await?;
        }
        Ok(store)
    }

    /// Appends one atomic batch: every event or none. Events repeated with the same id and
    /// content append nothing and answer with their first places.
    pub async fn append(&self, events: Vec<PreparedEvent>) -> Result<Vec<Appended>, StoreError> {
        if let Some((index, bytes)) = events
            .iter()
            .map(PreparedEvent::largest_leaf_data)
            .enumerate()
            .find(|(_, bytes)| *bytes > MAX_LEAF_DATA_BYTES)
        {
            return Err(StoreError::EventTooLarge { index, bytes });
        }
        let (reply, answer) = oneshot::channel();
        // The appender lets go of its share before it answers, so the events are freed here,
        // on the producer's task, and not on the appender's, whose time every producer waits on.
        let events = Arc::new(events);
        let request = Command::Append(Request {
            events: events.clone(),
            reply,
        });
        self.commands
            .try_send(request)
            .map_err(|error| match error {
                mpsc::error::TrySendError::Full(_) => {
                    StoreError::Unavailable("the append queue is full".into())
                }
                mpsc::error::TrySendError::Closed(_) => {
                    StoreError::Unavailable("the store is shutting down".into())
                }
            })?;
        let answer = answer
            .await
            .map_err(|_| StoreError::Unavailable("the appender stopped before answering".into()))?;
        drop(events);
        answer
    }

    /// Returns the newest committed event's position and time.
    pub fn head(&self) -> Head {
        self.head.borrow().clone()
    }

    /// Returns a watch that changes each time a group commit lands.
    pub fn subscribe_head(&self) -> watch::Receiver<Head> {
        self.head.clone()
    }

    /// Returns at most `limit` events after `after`, in position order.
    pub async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        reads::read_all(&self.readers, after, limit).await
    }

    /// Returns at most `limit` events of one workspace after log position `after`, in order;
    /// none for a workspace that has no events yet. Costs O(log n) indexed lookups to find the
    /// first one, never a scan of the workspace.
    pub async fn read_workspace(
        &self,
        workspace: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        reads::read_workspace(&self.readers, workspace, after, limit).await
    }

    /// Returns how many of the workspace's events lie after log position `after` (0 for a
    /// workspace with none); O(log n) indexed lookups, never a scan.
    pub async fn count_workspace_after(
        &self,
        workspace: &str,
        after: u64,
    ) -> Result<u64, StoreError> {
        reads::count_workspace_after(&self.readers, workspace, after).await
    }

    /// Returns at most `limit` events of one workspace's stream (`None`: a stream of no
    /// workspace) starting at `from_version` (inclusive); backward from the newest when
    /// `from_version` is `None`.
    pub async fn read_stream(
        &self,
        workspace: Option<&str>,
        stream: &str,
        from_version: Option<u64>,
        limit: u32,
        direction: Direction,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        reads::read_stream(
            &self.readers,
            workspace,
            stream,
            from_version,
            limit,
            direction,
        )
        .await
    }

    /// Returns the events at these log positions, in the order asked (at most a few thousand
    /// at a time); positions past the log are skipped.
    pub async fn events_at(&self, positions: &[u64]) -> Result<Vec<RecordedEvent>, StoreError> {
        reads::events_at(&self.readers, positions).await
    }

    /// Returns the event with this id in this workspace (`None`: of no workspace), if it is
    /// recorded.
    pub async fn event_by_id(
        &self,
        workspace: Option<&str>,
        id: Uuid,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        reads::event_by_id(&self.readers, workspace, id).await
    }

    /// Fails with [`StoreError::NoWorkspace`] unless an event was ever appended in `workspace`.
    pub async fn require_workspace(&self, workspace: &str) -> Result<(), StoreError> {
        if reads::workspace_exists(&self.readers, workspace).await? {
            Ok(())
        } else {
            Err(StoreError::NoWorkspace(workspace.to_owned()))
        }
    }

    /// Returns the root of a tree at `size` (the committed size when `None`).
    pub async fn tree_head(
        &self,
        tree: TreeId<'_>,
        size: Option<u64>,
    ) -> Result<TreeHead, StoreError> {
        trees::tree_head(&mut *self.readers.acquire().await?, tree, size).await
    }

    /// Returns the inclusion proof of leaf `leaf_index` (0-based) in the tree of `tree_size`
    /// leaves (the committed size when `None`).
    pub async fn inclusion_proof(
        &self,
        tree: TreeId<'_>,
        leaf_index: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, StoreError> {
        trees::inclusion_proof(
            &mut *self.readers.acquire().await?,
            tree,
            leaf_index,
            tree_size,
        )
        .await
    }

    /// Returns the consistency proof between the trees of `from` and `to` leaves.
    pub async fn consistency_proof(
        &self,
        tree: TreeId<'_>,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, StoreError> {
        trees::consistency_proof(&mut *self.readers.acquire().await?, tree, from, to).await
    }

    /// Signs the current head of a tree (after every append already queued) and keeps the note.
    pub async fn checkpoint(&self, tree: TreeId<'_>) -> Result<SignedCheckpoint, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::Checkpoint {
                tree: tree.key().to_owned(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Unavailable("the store is shutting down".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the appender stopped before answering".into()))?
    }

    /// Returns the note verifier key of the checkpoint signer: `NAME+KEYID+BASE64`.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// Returns the database, for the tables kept beside the log by other crates (the read
    /// models) through connections of their own.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Waits until this process is the one that does `work` among every process on the
    /// database, and holds that role while the answer lives. On SQLite one process owns the
    /// database, so it leads at once; on PostgreSQL a session advisory lock on a connection of
    /// its own decides, and a process that dies lets the next one in.
    pub async fn lead(&self, work: &str) -> Result<Leadership, StoreError> {
        match self.backend.dialect() {
            crate::Dialect::Sqlite => Ok(Leadership { _connection: None }),
            crate::Dialect::Postgres => {
                let mut connection = self.backend.connect(Access::ReadWrite).await?;
                sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(crate::db::lock_key(work))
                    .execute(&mut connection)
                    .await?;
                Ok(Leadership {
                    _connection: Some(connection),
                })
            }
        }
    }

    /// Stops taking appends, finishes every append already queued, and waits for the appender.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.commands.send(Command::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for (index, task) in tasks.into_iter().enumerate() {
            // The appender (first) ends on its own; the follower of other processes' commits
            // is stopped.
            if index > 0 {
                task.abort();
            }
            let _ = task.await;
        }
        self.readers.close().await;
        self.side_writer.close().await;
    }
}

/// Refuses a signer that did not sign the newest stored checkpoint: a signing key lost or
/// replaced by mistake would otherwise sign on unnoticed, and every checkpoint an auditor kept
/// would stop verifying against the key served. `rotate` accepts the change, logged as a warning.
async fn check_signing_key(
    readers: &AnyPool,
    signer: &NoteSigner,
    rotate: bool,
) -> Result<bool, StoreError> {
    let newest: Option<String> =
        sqlx::query_scalar("SELECT note FROM checkpoints ORDER BY signed_at DESC LIMIT 1")
            .fetch_optional(readers)
            .await?;
    let Some(note) = newest else {
        return Ok(false);
    };
    let verifier = NoteVerifier::parse(&signer.verifier_key())
        .map_err(|error| StoreError::Checkpoint(error.to_string()))?;
    if open_signed_checkpoint(&note, &verifier).is_ok() {
        return Ok(false);
    }
    if rotate {
        tracing::warn!(
            key = %signer.verifier_key(),
            "the signing key changed: checkpoints are signed with the new key from now on"
        );
        return Ok(true);
    }
    Err(StoreError::SigningKeyChanged(signer.verifier_key()))
}

/// Records a signing key rotation as `audit.signing_key_rotated` in the audit stream of every
/// workspace, so each workspace's reviewers see why its checkpoints verify with another key.
async fn record_rotation(store: &Store) -> Result<(), StoreError> {
    let workspaces: Vec<String> = sqlx::query_scalar("SELECT name FROM workspaces ORDER BY name")
        .fetch_all(&store.readers)
        .await?;
    let occurred_at = format_timestamp(OffsetDateTime::now_utc());
    let rotations = workspaces
        .into_iter()
        .map(|workspace| {
            let event = NewEvent {
                id: Uuid::now_v7(),
                stream: format!("audit-{workspace}"),
                event_type: "audit.signing_key_rotated".into(),
                workspace: Some(workspace),
                occurred_at: occurred_at.clone(),
                actor: Actor {
                    kind: ActorKind::System,
                    id: SUBMITTED_BY_CHRONICLE.into(),
                    name: Some("checkpoint signer".into()),
                },
                context: Context::default(),
                data: serde_json::json!({"key": store.verifier_key()}),
                expected_version: ExpectedVersion::Any,
                submitted_by: None,
            };
            PreparedEvent::new(event, SUBMITTED_BY_CHRONICLE)
        })
        .collect::<Vec<_>>();
    if !rotations.is_empty() {
        store.append(rotations).await?;
    }
    Ok(())
}
