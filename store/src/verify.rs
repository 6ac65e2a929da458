//! Verification of a whole store, trusting nothing it holds: every leaf hash is recomputed from
//! the stored event, both kinds of tree are rebuilt from those leaves and compared node by node
//! with the stored ones, and the last signed checkpoint of each tree is checked against the
//! rebuilt root and the signer's key. Every mismatch is reported in plain words, by position.

use std::collections::{HashMap, VecDeque};

use chronicle_domain::merkle::{self, Frontier, Hash, NodeId};
use chronicle_domain::{RecordedEvent, canonical_json, leaf_hash};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::checkpoint::{Checkpoint, NoteVerifier, open_signed_checkpoint};
use crate::db::{Access, Backend};
use crate::error::StoreError;
use crate::trees::{LOWEST_STORED_LEVEL, is_stored};

/// Events read per query.
const PAGE: i64 = 10_000;
/// Stored nodes read per query for one level of one tree.
const NODE_PAGE: i64 = 1_024;

/// What a verification found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Events read.
    pub events: u64,
    /// Trees rebuilt: the log's and each workspace's.
    pub trees: u64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// Each thing that does not hold, in plain words.
    pub problems: Vec<String>,
    /// The rebuilt root of the log tree.
    pub log_root: Option<Hash>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The stored nodes of one tree, read a page at a time in key order, `(leaf_end, level)`: the
/// order the rebuilt frontier completes them in.
#[derive(Default)]
struct NodeCursor {
    buffer: VecDeque<((u64, u32), Hash)>,
    exhausted: bool,
}

/// One tree being rebuilt: its frontier and its stored nodes, read in order.
struct TreeCheck {
    name: String,
    workspace_id: Option<i64>,
    frontier: Frontier,
    stored: NodeCursor,
    nodes_checked: u64,
    /// The last signed checkpoint of this tree: (size, note).
    checkpoint: Option<(u64, String)>,
}

impl TreeCheck {
    fn new(
        name: String,
        workspace_id: Option<i64>,
        checkpoint: Option<(u64, String)>,
    ) -> TreeCheck {
        TreeCheck {
            name,
            workspace_id,
            frontier: Frontier::default(),
            stored: NodeCursor::default(),
            nodes_checked: 0,
            checkpoint,
        }
    }

    /// Returns the stored hash of `node`, reading the next page from it when needed. Nodes are
    /// asked for in key order, so what the cursor holds below `node` is never asked for again.
    async fn stored_hash(
        &mut self,
        connection: &mut AnyConnection,
        node: NodeId,
    ) -> Result<Option<Hash>, StoreError> {
        let key = (node.end(), node.level);
        let NodeCursor { buffer, exhausted } = &mut self.stored;
        while buffer.front().is_some_and(|(stored, _)| *stored < key) {
            buffer.pop_front();
        }
        if buffer.is_empty() && !*exhausted {
            let (leaf_end, level) = (key.0 as i64, i64::from(key.1));
            let rows: Vec<AnyRow> = match self.workspace_id {
                None => {
                    sqlx::query(
                        "SELECT leaf_end, level, hash FROM log_nodes WHERE (leaf_end, level) >= ($1, $2) \
                         ORDER BY leaf_end, level LIMIT $3",
                    )
                    .bind(leaf_end)
                    .bind(level)
                    .bind(NODE_PAGE)
                    .fetch_all(&mut *connection)
                    .await?
                }
                Some(workspace_id) => {
                    sqlx::query(
                        "SELECT leaf_end, level, hash FROM workspace_nodes WHERE workspace_id = $1 \
                         AND (leaf_end, level) >= ($2, $3) ORDER BY leaf_end, level LIMIT $4",
                    )
                    .bind(workspace_id)
                    .bind(leaf_end)
                    .bind(level)
                    .bind(NODE_PAGE)
                    .fetch_all(&mut *connection)
                    .await?
                }
            };
            *exhausted = (rows.len() as i64) < NODE_PAGE;
            for row in rows {
                let stored = (row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u32);
                let bytes: &[u8] = row.get(2);
                let hash: Hash = bytes.try_into().unwrap_or([0; 32]);
                buffer.push_back((stored, hash));
            }
        }
        Ok(match buffer.front() {
            Some((stored, hash)) if *stored == key => Some(*hash),
            _ => None,
        })
    }

    /// Adds a recomputed leaf; compares every node it completes with the stored one.
    async fn push(
        &mut self,
        connection: &mut AnyConnection,
        leaf: Hash,
        problems: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        // Nodes below the stored levels are rebuilt from leaves whenever they are used; only
        // the stored ones can disagree.
        for (node, hash) in self
            .frontier
            .push(leaf)
            .into_iter()
            .filter(|(node, _)| is_stored(*node))
        {
            self.nodes_checked += 1;
            let (first, last) = (node.start() + 1, node.end());
            match self.stored_hash(connection, node).await? {
                Some(stored) if stored == hash => {}
                Some(_) => problems.push(format!(
                    "{} tree: the stored node over leaves {first}–{last} (level {}, index {}) differs from the one rebuilt from the events",
                    self.name, node.level, node.index
                )),
                None => problems.push(format!(
                    "{} tree: the node over leaves {first}–{last} (level {}, index {}) is missing",
                    self.name, node.level, node.index
                )),
            }
        }
        if let Some((size, note)) = &self.checkpoint
            && *size == self.frontier.size()
        {
            let root = self.frontier.root();
            check_checkpoint(&self.name, note, *size, &root, problems);
        }
        Ok(())
    }
}

/// Checks what one signed checkpoint says against a rebuilt root (its signature is checked
/// once, up front).
fn check_checkpoint(name: &str, note: &str, size: u64, root: &Hash, problems: &mut Vec<String>) {
    let body = note
        .split_once("\n\n")
        .map_or(note.to_owned(), |(body, _)| format!("{body}\n"));
    match Checkpoint::parse_body(&body) {
        Ok(checkpoint) if checkpoint.size == size && checkpoint.root == *root => {}
        Ok(checkpoint) => problems.push(format!(
            "{name} tree: the last signed checkpoint (size {}) says root {}, but the tree rebuilt from the events has {} at that size",
            checkpoint.size,
            merkle::to_hex(&checkpoint.root),
            merkle::to_hex(root)
        )),
        Err(error) => problems.push(format!("{name} tree: the last signed checkpoint (size {size}) does not hold: {error}")),
    }
}

/// Verifies the store in `backend`, read-only. `progress` hears (events read, events in the
/// log) as it goes.
pub async fn verify_database(
    backend: &Backend,
    verifier: &NoteVerifier,
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifyReport, StoreError> {
    if let Backend::Sqlite(path) = backend
        && !path.exists()
    {
        return Err(StoreError::Unavailable(format!(
            "there is no event log at {}",
            path.display()
        )));
    }
    let mut connection = backend.connect(Access::ReadOnly).await?;
    backend.check_schema(&mut connection).await?;
    let mut report = VerifyReport::default();
    let total: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
        .fetch_one(&mut connection)
        .await?;

    let mut last_checkpoints: HashMap<String, (u64, String)> = HashMap::new();
    for row in sqlx::query(
        "SELECT c.tree, c.size, c.note FROM checkpoints c \
         WHERE c.size = (SELECT MAX(size) FROM checkpoints d WHERE d.tree = c.tree)",
    )
    .fetch_all(&mut connection)
    .await?
    {
        last_checkpoints.insert(row.get(0), (row.get::<i64, _>(1) as u64, row.get(2)));
    }
    // Signatures first: a checkpoint whose signature fails is reported once, here.
    for (tree, (size, note)) in &last_checkpoints {
        report.checkpoints += 1;
        if let Err(error) = open_signed_checkpoint(note, verifier) {
            let name = if tree.is_empty() {
                "log".to_owned()
            } else {
                format!("workspace {tree}")
            };
            report.problems.push(format!(
                "{name} tree: the last signed checkpoint (size {size}) does not verify: {error}"
            ));
        }
    }

    let mut log = TreeCheck::new("log".into(), None, last_checkpoints.remove(""));
    let mut workspaces: HashMap<i64, (TreeCheck, u64)> = HashMap::new();
    for row in sqlx::query("SELECT workspace_id, name FROM workspaces")
        .fetch_all(&mut connection)
        .await?
    {
        let (workspace_id, name): (i64, String) = (row.get(0), row.get(1));
        let checkpoint = last_checkpoints.remove(&name);
        workspaces.insert(
            workspace_id,
            (
                TreeCheck::new(format!("workspace {name}"), Some(workspace_id), checkpoint),
                0,
            ),
        );
    }
    let mut stream_versions: HashMap<i64, u64> = HashMap::new();
    let mut expected_position = 1u64;
    let mut after = 0i64;
    loop {
        let rows = sqlx::query(
            "SELECT position, id, stream_id, stream_version, workspace_id, workspace_seq, body, leaf_hash \
             FROM events WHERE position > $1 ORDER BY position LIMIT $2",
        )
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut connection)
        .await?;
        let Some(last) = rows.last() else { break };
        after = last.get(0);
        for row in &rows {
            let position = row.get::<i64, _>(0) as u64;
            if position != expected_position {
                report.problems.push(format!(
                    "positions {expected_position}–{}: missing (the log jumps from {} to {position})",
                    position - 1,
                    expected_position - 1
                ));
            }
            expected_position = position + 1;
            let leaf = check_event(row, position, &mut stream_versions, &mut report.problems);
            log.push(&mut connection, leaf, &mut report.problems)
                .await?;
            if let Some(workspace_id) = row.get::<Option<i64>, _>(4) {
                let seq = row.get::<Option<i64>, _>(5).unwrap_or(0) as u64;
                match workspaces.get_mut(&workspace_id) {
                    Some((tree, last_seq)) => {
                        if seq != *last_seq + 1 {
                            report.problems.push(format!(
                                "position {position}: {} sequence number {seq} follows {}",
                                tree.name, last_seq
                            ));
                        }
                        *last_seq = seq;
                        tree.push(&mut connection, leaf, &mut report.problems)
                            .await?;
                    }
                    None => report.problems.push(format!(
                        "position {position}: belongs to an unknown workspace"
                    )),
                }
            }
            report.events += 1;
        }
        progress(report.events, total as u64);
    }

    let expected_nodes: u64 = (LOWEST_STORED_LEVEL..64)
        .map(|level| report.events >> level)
        .sum();
    let stored_nodes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_nodes")
        .fetch_one(&mut connection)
        .await?;
    if stored_nodes as u64 > expected_nodes {
        report.problems.push(format!(
            "log tree: {} stored nodes lie beyond the {} events of the log",
            stored_nodes as u64 - expected_nodes,
            report.events
        ));
    }
    let mut trees = vec![log];
    trees.extend(workspaces.into_values().map(|(tree, _)| tree));
    for tree in &trees {
        if let Some((size, _)) = &tree.checkpoint
            && *size > tree.frontier.size()
        {
            report.problems.push(format!(
                "{} tree: the last signed checkpoint covers {size} leaves but the log holds only {}: events were removed",
                tree.name,
                tree.frontier.size()
            ));
        }
    }
    report.trees = trees.len() as u64;
    report.log_root = Some(trees[0].frontier.root());
    for tree in last_checkpoints.keys() {
        report.problems.push(format!(
            "workspace {tree}: has a signed checkpoint but no events in the log"
        ));
    }
    Ok(report)
}

/// Checks one stored event against itself; returns the leaf hash recomputed from its body.
fn check_event(
    row: &AnyRow,
    position: u64,
    stream_versions: &mut HashMap<i64, u64>,
    problems: &mut Vec<String>,
) -> Hash {
    let body: &[u8] = row.get(6);
    let stored: &[u8] = row.get(7);
    let leaf = leaf_hash(body);
    if stored != leaf.as_slice() {
        problems.push(format!(
            "position {position}: the stored event does not match its leaf hash (stored {}, recomputed {})",
            stored.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            merkle::to_hex(&leaf)
        ));
    }
    match serde_json::from_slice::<RecordedEvent>(body) {
        Err(error) => problems.push(format!(
            "position {position}: the stored event is not a readable event: {error}"
        )),
        Ok(event) => {
            let canonical = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| canonical_json(&v).ok());
            if canonical.as_deref() != Some(body) {
                problems.push(format!(
                    "position {position}: the stored event is not in RFC 8785 canonical form"
                ));
            }
            let id: &[u8] = row.get(1);
            let workspace_seq = row.get::<Option<i64>, _>(5).map(|seq| seq as u64);
            let stream_version = row.get::<i64, _>(3) as u64;
            if event.position != position
                || event.id.as_bytes().as_slice() != id
                || event.workspace_seq != workspace_seq
                || event.stream_version != stream_version
            {
                problems.push(format!(
                    "position {position}: the event's own position, id, stream version or workspace sequence differ from where it is stored"
                ));
            }
            let last = stream_versions.entry(row.get::<i64, _>(2)).or_insert(0);
            if stream_version != *last + 1 {
                problems.push(format!(
                    "position {position}: stream {} version {stream_version} follows version {last}",
                    event.stream
                ));
            }
            *last = stream_version;
        }
    }
    leaf
}
