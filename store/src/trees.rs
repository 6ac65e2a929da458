//! Reading the stored RFC 9162 trees: tree heads and proofs at any size in O(log n) node reads.
//!
//! Leaves (level 0) are `events.leaf_hash`; every complete subtree above them is a row of
//! `log_nodes` or `workspace_nodes`, written by the appender in the same transaction as its
//! events. A row is keyed by the leaf its subtree ends before (`leaf_end`, [`NodeId::end`]), then
//! its level, so the nodes a commit completes go to the end of the table. The plans of `chronicle_domain::merkle` name the complete subtrees a head or proof is
//! made of; one query fetches them all.

use std::collections::HashMap;

use chronicle_domain::merkle::{self, Hash, NodeId};
use serde::Serialize;
use sqlx::{AnyConnection, Row};

use crate::db::Sql;
use crate::error::StoreError;

/// The lowest level of inner nodes kept as rows. A node below it covers at most 8 leaves and is
/// recomputed from them when a head or proof needs it: this keeps about one node row per 8
/// events per tree instead of one per event, for at most 15 more leaf reads per proof.
pub(crate) const LOWEST_STORED_LEVEL: u32 = 4;

/// True for the nodes kept as rows.
pub(crate) fn is_stored(id: NodeId) -> bool {
    id.level >= LOWEST_STORED_LEVEL
}

/// The node at `level` whose subtree ends before leaf `leaf_end`, as a stored row keys it.
pub(crate) fn node_ending_at(level: u32, leaf_end: u64) -> NodeId {
    NodeId::new(level, (leaf_end >> level).saturating_sub(1))
}

/// Which tree: the whole log, or one workspace's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TreeId<'a> {
    Log,
    Workspace(&'a str),
}

impl TreeId<'_> {
    /// The name the checkpoints table keeps: '' for the log, else the workspace.
    pub(crate) fn key(&self) -> &str {
        match self {
            TreeId::Log => "",
            TreeId::Workspace(name) => name,
        }
    }
}

/// A resolved tree: its storage key and its committed size.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StoredTree {
    Log,
    Workspace(i64),
}

/// The root of a tree at a size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TreeHead {
    pub size: u64,
    #[serde(serialize_with = "hex")]
    pub root: Hash,
}

/// `{"leaf_index", "tree_size", "leaf_hash", "hashes"}` as the contract answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub tree_size: u64,
    #[serde(serialize_with = "hex")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9a-f]{64}$"))]
    pub leaf_hash: Hash,
    #[serde(serialize_with = "hex_list")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub hashes: Vec<Hash>,
}

/// `{"from", "to", "hashes"}` as the contract answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    pub from: u64,
    pub to: u64,
    #[serde(serialize_with = "hex_list")]
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub hashes: Vec<Hash>,
}

fn hex<S: serde::Serializer>(hash: &Hash, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&merkle::to_hex(hash))
}

fn hex_list<S: serde::Serializer>(hashes: &[Hash], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(hashes.iter().map(merkle::to_hex))
}

/// Resolves a tree to its storage and committed size; an unknown workspace is an empty tree.
pub(crate) async fn resolve(
    connection: &mut AnyConnection,
    tree: TreeId<'_>,
) -> Result<(Option<StoredTree>, u64), StoreError> {
    match tree {
        TreeId::Log => {
            let size: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
                .fetch_one(&mut *connection)
                .await?;
            Ok((Some(StoredTree::Log), size as u64))
        }
        TreeId::Workspace(name) => {
            let row = sqlx::query("SELECT workspace_id, seq FROM workspaces WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *connection)
                .await?;
            Ok(match row {
                Some(row) => (
                    Some(StoredTree::Workspace(row.get(0))),
                    row.get::<i64, _>(1) as u64,
                ),
                None => (None, 0),
            })
        }
    }
}

/// Fetches the hashes of `ids`, in the order given.
pub(crate) async fn node_hashes(
    connection: &mut AnyConnection,
    tree: StoredTree,
    ids: &[NodeId],
) -> Result<Vec<Hash>, StoreError> {
    let mut found: HashMap<NodeId, Hash> = HashMap::with_capacity(ids.len());
    // Leaves, and the leaves under each node too low to be stored.
    let mut leaves: Vec<u64> = ids
        .iter()
        .filter(|id| !is_stored(**id))
        .flat_map(|id| id.start()..id.end())
        .collect();
    leaves.sort_unstable();
    leaves.dedup();
    let inner: Vec<NodeId> = ids.iter().filter(|id| is_stored(**id)).copied().collect();
    if !leaves.is_empty() {
        let mut query = match tree {
            StoredTree::Log => {
                Sql::new("SELECT position, leaf_hash FROM events WHERE position IN ")
            }
            StoredTree::Workspace(workspace_id) => {
                let mut query =
                    Sql::new("SELECT workspace_seq, leaf_hash FROM events WHERE workspace_id = ");
                query.bind(workspace_id).push(" AND workspace_seq IN ");
                query
            }
        };
        query.bind_list(leaves.iter().map(|index| (index + 1) as i64));
        for row in query.fetch_all(&mut *connection).await? {
            let index = row.get::<i64, _>(0) as u64 - 1;
            found.insert(NodeId::new(0, index), to_hash(row.get(1), 0, index)?);
        }
    }
    if !inner.is_empty() {
        let mut query = match tree {
            StoredTree::Log => {
                Sql::new("SELECT level, leaf_end, hash FROM log_nodes WHERE (leaf_end, level) IN (")
            }
            StoredTree::Workspace(workspace_id) => {
                let mut query = Sql::new(
                    "SELECT level, leaf_end, hash FROM workspace_nodes WHERE workspace_id = ",
                );
                query.bind(workspace_id).push(" AND (leaf_end, level) IN (");
                query
            }
        };
        query.values(&inner, |mut values, id| {
            values.bind(id.end() as i64).bind(i64::from(id.level));
        });
        query.push(")");
        for row in query.fetch_all(&mut *connection).await? {
            let id = node_ending_at(row.get::<i64, _>(0) as u32, row.get::<i64, _>(1) as u64);
            found.insert(id, to_hash(row.get(2), id.level, id.index)?);
        }
    }
    ids.iter()
        .map(|id| {
            let missing = StoreError::MissingNode {
                level: id.level,
                index: id.index,
            };
            if is_stored(*id) || id.level == 0 {
                return found.get(id).copied().ok_or(missing);
            }
            let under: Option<Vec<Hash>> = (id.start()..id.end())
                .map(|leaf| found.get(&NodeId::new(0, leaf)).copied())
                .collect();
            under.map(|leaves| merkle::root(&leaves)).ok_or(missing)
        })
        .collect()
}

pub(crate) fn to_hash(bytes: &[u8], level: u32, index: u64) -> Result<Hash, StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::MissingNode { level, index })
}

/// Fetches the nodes of several plans at once and folds each plan into its hash.
async fn fold_plans(
    connection: &mut AnyConnection,
    tree: StoredTree,
    plans: &[Vec<NodeId>],
) -> Result<Vec<Hash>, StoreError> {
    let ids: Vec<NodeId> = plans.iter().flatten().copied().collect();
    let hashes = node_hashes(connection, tree, &ids).await?;
    let mut offset = 0;
    Ok(plans
        .iter()
        .map(|plan| {
            let folded = merkle::fold_range(&hashes[offset..offset + plan.len()]);
            offset += plan.len();
            folded
        })
        .collect())
}

fn out_of_range(message: String) -> StoreError {
    StoreError::OutOfRange(message)
}

/// The tree head at `size` (the committed size when `None`).
pub(crate) async fn tree_head(
    connection: &mut AnyConnection,
    tree: TreeId<'_>,
    size: Option<u64>,
) -> Result<TreeHead, StoreError> {
    let (stored, current) = resolve(connection, tree).await?;
    let size = size.unwrap_or(current);
    if size > current {
        return Err(out_of_range(format!(
            "tree size {size} is past the tree, which has {current} leaves"
        )));
    }
    let root = match stored {
        Some(stored) if size > 0 => {
            fold_plans(connection, stored, &[merkle::root_plan(size)]).await?[0]
        }
        _ => merkle::empty_root(),
    };
    Ok(TreeHead { size, root })
}

/// The inclusion proof of leaf `leaf_index` in the tree of `tree_size` leaves (the committed
/// size when `None`).
pub(crate) async fn inclusion_proof(
    connection: &mut AnyConnection,
    tree: TreeId<'_>,
    leaf_index: u64,
    tree_size: Option<u64>,
) -> Result<InclusionProof, StoreError> {
    let (stored, current) = resolve(connection, tree).await?;
    let tree_size = tree_size.unwrap_or(current);
    if tree_size > current {
        return Err(out_of_range(format!(
            "tree size {tree_size} is past the tree, which has {current} leaves"
        )));
    }
    if leaf_index >= tree_size {
        return Err(out_of_range(format!(
            "leaf {} is not in a tree of {tree_size} leaves",
            leaf_index + 1
        )));
    }
    let stored = stored.expect("a tree with leaves is stored");
    let mut plans = merkle::inclusion_plan(leaf_index, tree_size);
    plans.push(vec![NodeId::new(0, leaf_index)]);
    let mut hashes = fold_plans(connection, stored, &plans).await?;
    let leaf_hash = hashes.pop().expect("the leaf was planned");
    Ok(InclusionProof {
        leaf_index,
        tree_size,
        leaf_hash,
        hashes,
    })
}

/// The consistency proof between the trees of `from` and `to` leaves.
pub(crate) async fn consistency_proof(
    connection: &mut AnyConnection,
    tree: TreeId<'_>,
    from: u64,
    to: u64,
) -> Result<ConsistencyProof, StoreError> {
    let (stored, current) = resolve(connection, tree).await?;
    if to > current {
        return Err(out_of_range(format!(
            "tree size {to} is past the tree, which has {current} leaves"
        )));
    }
    if from > to {
        return Err(out_of_range(format!(
            "from ({from}) must not be larger than to ({to})"
        )));
    }
    let hashes = match stored {
        Some(stored) if from > 0 && from < to => {
            fold_plans(connection, stored, &merkle::consistency_plan(from, to)).await?
        }
        _ => Vec::new(),
    };
    Ok(ConsistencyProof { from, to, hashes })
}
