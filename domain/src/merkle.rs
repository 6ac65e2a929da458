//! RFC 9162 §2.1 Merkle tree math: tree heads, inclusion and consistency proofs.
//!
//! Two families of functions live here:
//!
//! - **Reference functions** ([`root`], [`inclusion_proof`], [`consistency_proof`]) take every
//!   leaf hash and follow the RFC's recursive definitions (MTH, PATH, SUBPROOF) literally. They
//!   are O(n) and serve tests and `chronicle verify --data`.
//! - **Plans** ([`root_plan`], [`inclusion_plan`], [`consistency_plan`]) say which stored
//!   *complete* nodes ([`NodeId`]) are needed for an answer. The store keeps the hash of every
//!   complete aligned subtree as it is completed ([`completed_nodes`]); each hash of a root or a
//!   proof is then the right fold ([`fold_range`]) of the hashes of one plan entry. Every plan
//!   is O(log n) nodes.
//!
//! Any subtree hash `MTH(D[start:end])` that occurs in a root or a proof has `start` aligned to
//! the largest power of two below `end - start`, so it equals the right fold of the complete
//! aligned subtrees covering `[start, end)`, largest first: `H(c1, H(c2, H(c3, …)))`.
//!
//! [`verify_inclusion`] and [`verify_consistency`] are RFC 9162 §2.1.3.2 and §2.1.4.2.

use sha2::{Digest, Sha256};

/// A SHA-256 hash: a leaf hash, an inner node hash or a tree root.
pub type Hash = [u8; 32];

/// A complete aligned subtree: the node at `level` (0 = leaves) and horizontal `index`, covering
/// leaves `[index << level, (index + 1) << level)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId {
    pub level: u32,
    pub index: u64,
}

impl NodeId {
    /// The node at `level` and `index`.
    pub const fn new(level: u32, index: u64) -> Self {
        Self { level, index }
    }

    /// First leaf index covered by this node.
    pub const fn start(&self) -> u64 {
        self.index << self.level
    }

    /// One past the last leaf index covered by this node.
    pub const fn end(&self) -> u64 {
        (self.index + 1) << self.level
    }
}

/// Why a proof does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The leaf index is not inside the tree.
    #[error("leaf index {index} is out of range for tree size {size}")]
    IndexOutOfRange { index: u64, size: u64 },
    /// The old tree is larger than the new one.
    #[error("invalid tree sizes: old size {old} is larger than new size {new}")]
    InvalidSizes { old: u64, new: u64 },
    /// The proof does not have the number of hashes the sizes call for.
    #[error("wrong proof length: expected {expected} hashes, got {actual}")]
    WrongProofLength { expected: usize, actual: usize },
    /// The root recomputed from the proof is not the expected root.
    #[error("root mismatch: the proof does not lead to the expected root")]
    RootMismatch,
}

/// Leaf hash: SHA-256(0x00 ‖ data).
pub fn hash_leaf(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// Inner node hash: SHA-256(0x01 ‖ left ‖ right).
pub fn hash_children(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Root of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Lower-case hex of a hash.
pub fn to_hex(hash: &Hash) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(64);
    for b in hash {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Parses 64 hex digits (either case) into a hash; `None` for anything else.
pub fn from_hex(s: &str) -> Option<Hash> {
    /// Each byte's value as a hex digit; 0xff for a byte that is not one.
    const NIBBLES: [u8; 256] = {
        let mut table = [0xff; 256];
        let mut digit = 0;
        while digit < 16 {
            let value = digit as u8;
            table[b"0123456789abcdef"[digit] as usize] = value;
            table[b"0123456789ABCDEF"[digit] as usize] = value;
            digit += 1;
        }
        table
    };
    let digits: &[u8; 64] = s.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    // No branch per digit: a stray byte sets high bits in `invalid`, checked once at the end.
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        invalid |= high | low;
        *byte = (high << 4) | low;
    }
    (invalid & 0xf0 == 0).then_some(out)
}

// ---------------------------------------------------------------------------------------------
// Reference implementations over all leaf hashes (RFC 9162 §2.1.1, §2.1.3.1, §2.1.4.1).
// ---------------------------------------------------------------------------------------------

/// The largest power of two strictly smaller than `n` (`n >= 2`).
fn split_point(n: usize) -> usize {
    debug_assert!(n >= 2);
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

fn to_usize(v: u64) -> usize {
    usize::try_from(v).expect("value does not fit in usize")
}

/// MTH(D[n]): the RFC 9162 Merkle Tree Hash of the given leaf hashes ([`empty_root`] for none).
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n);
            hash_children(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `index`, bottom-up as RFC 9162 orders it.
///
/// # Panics
/// If `index >= leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64) -> Vec<Hash> {
    assert!(
        index < leaves.len() as u64,
        "leaf index {index} out of range for tree size {}",
        leaves.len()
    );
    fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
        let n = d.len();
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            path(m, &d[..k], out);
            out.push(root(&d[k..]));
        } else {
            path(m - k, &d[k..], out);
            out.push(root(&d[..k]));
        }
    }
    let mut out = Vec::new();
    path(to_usize(index), leaves, &mut out);
    out
}

/// PROOF(m, D[n]) = SUBPROOF(m, D[n], true): the consistency proof from the tree of the first
/// `old_size` leaves to the tree of all of them. Empty when `old_size` is 0 or `leaves.len()`.
///
/// # Panics
/// If `old_size > leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], old_size: u64) -> Vec<Hash> {
    assert!(
        old_size <= leaves.len() as u64,
        "old size {old_size} is larger than tree size {}",
        leaves.len()
    );
    fn subproof(m: usize, d: &[Hash], b: bool, out: &mut Vec<Hash>) {
        let n = d.len();
        if m == n {
            if !b {
                out.push(root(d));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            subproof(m, &d[..k], b, out);
            out.push(root(&d[k..]));
        } else {
            subproof(m - k, &d[k..], false, out);
            out.push(root(&d[..k]));
        }
    }
    let m = to_usize(old_size);
    let mut out = Vec::new();
    if m != 0 {
        subproof(m, leaves, true, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Plans over stored complete nodes.
// ---------------------------------------------------------------------------------------------

/// The complete aligned subtrees covering `[start, end)`, from left to right, each as large as
/// its alignment and the range allow. When `start` is a multiple of the largest power of two
/// below `end - start` (always so for the subtrees of RFC 9162 roots and proofs; any start for
/// a single leaf) they come largest first and [`fold_range`] of their hashes is
/// `MTH(D[start:end])`. Empty when `start >= end`.
pub fn range_nodes(start: u64, end: u64) -> Vec<NodeId> {
    let mut out = Vec::new();
    let mut pos = start;
    while pos < end {
        let align = if pos == 0 { 63 } else { pos.trailing_zeros() };
        let fit = 63 - (end - pos).leading_zeros(); // floor(log2(end - pos))
        let level = align.min(fit);
        out.push(NodeId::new(level, pos >> level));
        pos += 1 << level;
    }
    out
}

/// The stored nodes whose right fold is the root of the tree of `size` leaves
/// (= `range_nodes(0, size)`; empty for size 0, whose root is [`empty_root`]).
pub fn root_plan(size: u64) -> Vec<NodeId> {
    range_nodes(0, size)
}

/// Sibling subtrees of the path from the node at `from_level` above leaf `index` to the root of
/// a tree of `size` leaves, bottom-up, as leaf ranges. This is PATH of that node, and for
/// `from_level` 0 the inclusion proof of the leaf.
fn path_ranges(index: u64, from_level: u32, size: u64) -> Vec<(u64, u64)> {
    debug_assert!(index < size);
    // Below level `inner`, the path of `index` and the path of the last leaf share no node, so
    // every level has a sibling (possibly an incomplete one on the right). From `inner` up,
    // `index` lies on the right edge and only left siblings (set bits of `index`) remain.
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let mut out = Vec::new();
    for level in from_level..inner {
        let start = ((index >> level) ^ 1) << level;
        let end = start.saturating_add(1 << level).min(size);
        out.push((start, end));
    }
    for level in inner.max(from_level)..u64::BITS {
        if (index >> level) & 1 == 1 {
            let start = ((index >> level) ^ 1) << level;
            out.push((start, start + (1 << level)));
        }
    }
    out
}

/// The stored nodes for each hash of the inclusion proof of leaf `index` in the tree of `size`
/// leaves, in RFC 9162 proof order (bottom-up). Each entry folds with [`fold_range`].
///
/// # Panics
/// If `index >= size`.
pub fn inclusion_plan(index: u64, size: u64) -> Vec<Vec<NodeId>> {
    assert!(
        index < size,
        "leaf index {index} out of range for tree size {size}"
    );
    path_ranges(index, 0, size)
        .into_iter()
        .map(|(s, e)| range_nodes(s, e))
        .collect()
}

/// The stored nodes for each hash of the consistency proof from `old_size` to `new_size`, in
/// RFC 9162 proof order. Empty when `old_size` is 0 or equals `new_size`.
///
/// The proof is the last (smallest) complete subtree of the old tree, unless the old tree is a
/// single complete subtree (a power of two, whose root the verifier already has), followed by
/// that subtree's path to the new root.
///
/// # Panics
/// If `old_size > new_size`.
pub fn consistency_plan(old_size: u64, new_size: u64) -> Vec<Vec<NodeId>> {
    assert!(
        old_size <= new_size,
        "old size {old_size} is larger than new size {new_size}"
    );
    if old_size == 0 || old_size == new_size {
        return Vec::new();
    }
    let level = old_size.trailing_zeros();
    let last = old_size - 1;
    let mut out = Vec::new();
    if !old_size.is_power_of_two() {
        out.push(vec![NodeId::new(level, last >> level)]);
    }
    out.extend(
        path_ranges(last, level, new_size)
            .into_iter()
            .map(|(s, e)| range_nodes(s, e)),
    );
    out
}

/// Right fold of subtree hashes, largest first: `H(h1, H(h2, … H(hn-1, hn)))`. One hash is
/// itself; none is [`empty_root`] (the root of the empty tree, whose plan is empty).
pub fn fold_range(hashes: &[Hash]) -> Hash {
    match hashes.split_last() {
        None => empty_root(),
        Some((last, rest)) => rest
            .iter()
            .rev()
            .fold(*last, |acc, h| hash_children(h, &acc)),
    }
}

/// Nodes that become complete when leaf `index` is appended: (0, index) then each parent while
/// the node is a right child. Their hashes can be computed in this order, each parent from its
/// (already stored) left sibling and the node before it.
pub fn completed_nodes(index: u64) -> Vec<NodeId> {
    let mut out = vec![NodeId::new(0, index)];
    let mut node = NodeId::new(0, index);
    while node.index & 1 == 1 {
        node = NodeId::new(node.level + 1, node.index >> 1);
        out.push(node);
    }
    out
}

/// The right edge of a growing tree: the complete subtrees of [`root_plan`]`(size)` with their
/// hashes, largest first. Appending a leaf needs nothing else, so an appender keeps a tree of any
/// size growing in O(log n) memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    nodes: Vec<(NodeId, Hash)>,
}

impl Frontier {
    /// Rebuilds the frontier of a tree of `size` leaves from the hashes of `root_plan(size)`,
    /// in that order; `None` when the count does not match.
    pub fn from_plan_hashes(size: u64, hashes: Vec<Hash>) -> Option<Frontier> {
        let plan = root_plan(size);
        (plan.len() == hashes.len()).then(|| Frontier {
            size,
            nodes: plan.into_iter().zip(hashes).collect(),
        })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree head: the root hash of the tree of [`Frontier::size`] leaves.
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.nodes.iter().map(|(_, hash)| *hash).collect();
        fold_range(&hashes)
    }

    /// Appends a leaf hash; returns the inner nodes (level ≥ 1) it completed, lowest first.
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut completed = Vec::new();
        self.nodes.push((NodeId::new(0, self.size), leaf));
        self.size += 1;
        while let [.., (left, left_hash), (right, right_hash)] = self.nodes[..] {
            if left.level != right.level {
                break;
            }
            let parent = (
                NodeId::new(left.level + 1, left.index >> 1),
                hash_children(&left_hash, &right_hash),
            );
            self.nodes.truncate(self.nodes.len() - 2);
            self.nodes.push(parent);
            completed.push(parent);
        }
        completed
    }
}

// ---------------------------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2 and §2.1.4.2).
// ---------------------------------------------------------------------------------------------

/// Number of hashes in the inclusion proof of leaf `index` in a tree of `size` leaves.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = u64::BITS - (index ^ (size - 1)).leading_zeros();
    let border = if inner >= u64::BITS {
        0
    } else {
        (index >> inner).count_ones()
    };
    (inner + border) as usize
}

/// Number of hashes in the consistency proof for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    let level = old.trailing_zeros();
    let last = old - 1;
    let inner = u64::BITS - (last ^ (new - 1)).leading_zeros();
    let border = if inner >= u64::BITS {
        0
    } else {
        (last >> inner).count_ones()
    };
    let head = usize::from(!old.is_power_of_two());
    head + (inner - level + border) as usize
}

/// Checks that `proof` proves leaf hash `leaf_hash` at `index` in the tree of `tree_size`
/// leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. leaf_index must be below tree_size.
    if index >= tree_size {
        return Err(ProofError::IndexOutOfRange {
            index,
            size: tree_size,
        });
    }
    // The loop below rejects a proof of the wrong length too; checking first names the fault.
    let expected = inclusion_proof_len(index, tree_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    // 2., 3.
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut r = *leaf_hash;
    // 4.
    for p in proof {
        if sn == 0 {
            return Err(ProofError::WrongProofLength {
                expected,
                actual: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = hash_children(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = hash_children(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    if sn != 0 {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    if r != *root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that `proof` proves the tree of `old_size` leaves with root `old_root` is a prefix of
/// the tree of `new_size` leaves with root `new_root` (RFC 9162 §2.1.4.2 for
/// `0 < old_size < new_size`).
///
/// Edge cases, where the RFC's algorithm does not apply: `old_size > new_size` is
/// [`ProofError::InvalidSizes`]; the proof must be empty when `old_size` is 0 or equal to
/// `new_size`; equal sizes need equal roots; size 0 needs the root [`empty_root`] (the only root
/// a tree of size 0 has), and any new root is consistent with it.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    if old_size > new_size {
        return Err(ProofError::InvalidSizes {
            old: old_size,
            new: new_size,
        });
    }
    if old_size == 0 || old_size == new_size {
        if !proof.is_empty() {
            return Err(ProofError::WrongProofLength {
                expected: 0,
                actual: proof.len(),
            });
        }
        let empty = empty_root();
        if old_size == 0 && *old_root != empty {
            return Err(ProofError::RootMismatch);
        }
        if old_size == new_size && old_root != new_root {
            return Err(ProofError::RootMismatch);
        }
        return Ok(());
    }

    // 0 < old_size < new_size.
    let expected = consistency_proof_len(old_size, new_size);
    if proof.len() != expected {
        return Err(ProofError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let wrong_length = || ProofError::WrongProofLength {
        expected,
        actual: proof.len(),
    };
    // 1. An empty path fails (cannot happen here: expected >= 1).
    if proof.is_empty() {
        return Err(wrong_length());
    }
    // 2. If old_size is a power of two, the path starts with old_root.
    let path: Vec<&Hash> = if old_size.is_power_of_two() {
        std::iter::once(old_root).chain(proof.iter()).collect()
    } else {
        proof.iter().collect()
    };
    // 3.
    let mut fn_ = old_size - 1;
    let mut sn = new_size - 1;
    // 4.
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // 5.
    let mut fr = *path[0];
    let mut sr = *path[0];
    // 6.
    for c in &path[1..] {
        if sn == 0 {
            return Err(wrong_length());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = hash_children(c, &fr);
            sr = hash_children(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = hash_children(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // 7.
    if sn != 0 {
        return Err(wrong_length());
    }
    if fr != *old_root || sr != *new_root {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn h(s: &str) -> Hash {
        from_hex(s).expect("valid hex")
    }

    /// RFC 6962 test leaves, as used by Certificate Transparency implementations.
    fn vector_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|s| {
            let bytes: Vec<u8> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect();
            hash_leaf(&bytes)
        })
        .collect()
    }

    /// Roots for tree sizes 1..=8.
    const VECTOR_ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    /// Complete-subtree hashes of the 8-leaf tree: (level, index, hash).
    const VECTOR_NODES: [(u32, u64, &str); 15] = [
        (
            0,
            0,
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        ),
        (
            0,
            1,
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        ),
        (
            0,
            2,
            "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        ),
        (
            0,
            3,
            "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        ),
        (
            0,
            4,
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
        (
            0,
            5,
            "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        ),
        (
            0,
            6,
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        ),
        (
            0,
            7,
            "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
        ),
        (
            1,
            0,
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        ),
        (
            1,
            1,
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        ),
        (
            1,
            2,
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        ),
        (
            1,
            3,
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        ),
        (
            2,
            0,
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
        (
            2,
            1,
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
        (
            3,
            0,
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ),
    ];

    /// Published inclusion proofs: (leaf index, tree size, proof).
    fn vector_inclusion() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (0, 1, vec![]),
            (
                0,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                5,
                8,
                vec![
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                3,
                vec![h(
                    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
                )],
            ),
            (
                1,
                5,
                vec![
                    h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
        ]
    }

    /// Published consistency proofs: (old size, new size, proof).
    fn vector_consistency() -> Vec<(u64, u64, Vec<Hash>)> {
        vec![
            (1, 1, vec![]),
            (
                1,
                8,
                vec![
                    h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
                ],
            ),
            (
                6,
                8,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
            (
                2,
                5,
                vec![
                    h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
                    h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
                ],
            ),
            (
                6,
                7,
                vec![
                    h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
                    h("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
                    h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
                ],
            ),
        ]
    }

    /// Builds the store's node table the way the store does: leaf by leaf, with
    /// `completed_nodes`.
    fn node_table(leaves: &[Hash]) -> HashMap<NodeId, Hash> {
        let mut table = HashMap::new();
        for (i, leaf) in leaves.iter().enumerate() {
            for id in completed_nodes(i as u64) {
                let hash = if id.level == 0 {
                    *leaf
                } else {
                    let l = table[&NodeId::new(id.level - 1, id.index * 2)];
                    let r = table[&NodeId::new(id.level - 1, id.index * 2 + 1)];
                    hash_children(&l, &r)
                };
                assert!(table.insert(id, hash).is_none(), "{id:?} completed twice");
            }
        }
        table
    }

    fn assemble(table: &HashMap<NodeId, Hash>, plan: &[NodeId]) -> Hash {
        let hashes: Vec<Hash> = plan.iter().map(|id| table[id]).collect();
        fold_range(&hashes)
    }

    fn assemble_proof(table: &HashMap<NodeId, Hash>, plan: &[Vec<NodeId>]) -> Vec<Hash> {
        plan.iter().map(|ids| assemble(table, ids)).collect()
    }

    fn test_leaves(n: u64, seed: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| {
                let mut data = seed.to_le_bytes().to_vec();
                data.extend_from_slice(&i.to_le_bytes());
                hash_leaf(&data)
            })
            .collect()
    }

    fn flip(h: &Hash, byte: usize) -> Hash {
        let mut out = *h;
        out[byte % 32] ^= 0x01;
        out
    }

    fn sha(parts: &[&[u8]]) -> Hash {
        let mut s = Sha256::new();
        for p in parts {
            s.update(p);
        }
        s.finalize().into()
    }

    #[test]
    fn primitives_match_definitions() {
        assert_eq!(
            to_hex(&empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(hash_leaf(b"abc"), sha(&[&[0x00], b"abc"]));
        let (a, b) = (hash_leaf(b"a"), hash_leaf(b"b"));
        assert_eq!(hash_children(&a, &b), sha(&[&[0x01], &a, &b]));
        assert_eq!(root(&[]), empty_root());
        assert_eq!(fold_range(&[]), empty_root());
        assert_eq!(fold_range(&[a]), a);
    }

    #[test]
    fn hex_round_trip() {
        let x = hash_leaf(b"hex");
        assert_eq!(from_hex(&to_hex(&x)), Some(x));
        assert_eq!(from_hex(&to_hex(&x).to_uppercase()), Some(x));
        assert_eq!(from_hex("00"), None);
        assert_eq!(from_hex(&"g".repeat(64)), None);
        assert_eq!(from_hex(&format!("{}0", to_hex(&x))), None);
        // One byte that is not a hex digit, at any place, just outside each range of digits.
        let text = to_hex(&x);
        for place in 0..64 {
            for stray in ["/", ":", "@", "G", "`", "g", " ", "\0"] {
                let mut bad = text.clone();
                bad.replace_range(place..=place, stray);
                assert_eq!(from_hex(&bad), None, "{bad}");
            }
        }
        // 64 bytes that are not 64 characters.
        assert_eq!(from_hex(&format!("é{}", &text[2..])), None);
    }

    #[test]
    fn tiny_trees_by_hand() {
        let (a, b, c) = (b"a".as_slice(), b"b".as_slice(), b"c".as_slice());
        let ha = sha(&[&[0x00], a]);
        let hb = sha(&[&[0x00], b]);
        let hc = sha(&[&[0x00], c]);
        let hab = sha(&[&[0x01], &ha, &hb]);
        let habc = sha(&[&[0x01], &hab, &hc]);

        assert_eq!(root(&[ha]), ha);
        assert_eq!(root(&[ha, hb]), hab);
        assert_eq!(root(&[ha, hb, hc]), habc);

        let leaves = [ha, hb, hc];
        assert_eq!(inclusion_proof(&leaves[..1], 0), Vec::<Hash>::new());
        assert_eq!(inclusion_proof(&leaves[..2], 0), vec![hb]);
        assert_eq!(inclusion_proof(&leaves[..2], 1), vec![ha]);
        assert_eq!(inclusion_proof(&leaves, 0), vec![hb, hc]);
        assert_eq!(inclusion_proof(&leaves, 1), vec![ha, hc]);
        assert_eq!(inclusion_proof(&leaves, 2), vec![hab]);

        assert_eq!(consistency_proof(&leaves, 0), Vec::<Hash>::new());
        assert_eq!(consistency_proof(&leaves, 1), vec![hb, hc]);
        assert_eq!(consistency_proof(&leaves, 2), vec![hc]);
        assert_eq!(consistency_proof(&leaves, 3), Vec::<Hash>::new());
        assert_eq!(consistency_proof(&leaves[..2], 1), vec![hb]);

        verify_inclusion(&hc, 2, 3, &[hab], &habc).unwrap();
        verify_inclusion(&hb, 1, 3, &[ha, hc], &habc).unwrap();
        verify_consistency(1, 3, &ha, &habc, &[hb, hc]).unwrap();
        verify_consistency(2, 3, &hab, &habc, &[hc]).unwrap();
        verify_consistency(1, 2, &ha, &hab, &[hb]).unwrap();
    }

    #[test]
    fn vector_roots() {
        let leaves = vector_leaves();
        for (i, want) in VECTOR_ROOTS.iter().enumerate() {
            let size = i + 1;
            assert_eq!(to_hex(&root(&leaves[..size])), *want, "size {size}");
        }
        let table = node_table(&leaves);
        for size in 1..=8u64 {
            assert_eq!(
                to_hex(&assemble(&table, &root_plan(size))),
                VECTOR_ROOTS[size as usize - 1],
                "plan, size {size}"
            );
        }
    }

    #[test]
    fn vector_nodes_match_completed_nodes() {
        let table = node_table(&vector_leaves());
        assert_eq!(table.len(), VECTOR_NODES.len());
        for (level, index, want) in VECTOR_NODES {
            assert_eq!(to_hex(&table[&NodeId::new(level, index)]), want);
        }
    }

    #[test]
    fn vector_inclusion_proofs() {
        let leaves = vector_leaves();
        let table = node_table(&leaves);
        for (index, size, want) in vector_inclusion() {
            let n = size as usize;
            let root_hash = h(VECTOR_ROOTS[n - 1]);
            assert_eq!(inclusion_proof(&leaves[..n], index), want, "{index}/{size}");
            assert_eq!(
                assemble_proof(&table, &inclusion_plan(index, size)),
                want,
                "plan {index}/{size}"
            );
            verify_inclusion(&leaves[index as usize], index, size, &want, &root_hash).unwrap();

            // Corruptions from the well-known CT test suite.
            let leaf = leaves[index as usize];
            let bad = |i: u64, s: u64, l: &Hash, p: &[Hash], r: &Hash| {
                verify_inclusion(l, i, s, p, r).is_err()
            };
            assert!(bad(index.wrapping_sub(1), size, &leaf, &want, &root_hash));
            assert!(bad(index + 1, size, &leaf, &want, &root_hash));
            assert!(bad(index ^ 2, size, &leaf, &want, &root_hash));
            assert!(bad(index, size * 2, &leaf, &want, &root_hash));
            assert!(bad(index, size / 2, &leaf, &want, &root_hash));
            assert!(bad(index, size, &hash_leaf(b"x"), &want, &root_hash));
            assert!(bad(index, size, &leaf, &want, &empty_root()));
            let mut longer = want.clone();
            longer.push(root_hash);
            assert!(bad(index, size, &leaf, &longer, &root_hash));
            let mut front = vec![root_hash];
            front.extend_from_slice(&want);
            assert!(bad(index, size, &leaf, &front, &root_hash));
            if !want.is_empty() {
                assert!(bad(index, size, &leaf, &want[..want.len() - 1], &root_hash));
            }
            for i in 0..want.len() {
                let mut p = want.clone();
                p[i][0] ^= 8;
                assert!(bad(index, size, &leaf, &p, &root_hash));
            }
        }
    }

    #[test]
    fn vector_consistency_proofs() {
        let leaves = vector_leaves();
        let table = node_table(&leaves);
        for (old, new, want) in vector_consistency() {
            let r1 = h(VECTOR_ROOTS[old as usize - 1]);
            let r2 = h(VECTOR_ROOTS[new as usize - 1]);
            assert_eq!(
                consistency_proof(&leaves[..new as usize], old),
                want,
                "{old}->{new}"
            );
            assert_eq!(
                assemble_proof(&table, &consistency_plan(old, new)),
                want,
                "plan {old}->{new}"
            );
            verify_consistency(old, new, &r1, &r2, &want).unwrap();
            if want.is_empty() {
                continue;
            }
            let bad = |m: u64, n: u64, a: &Hash, b: &Hash, p: &[Hash]| {
                verify_consistency(m, n, a, b, p).is_err()
            };
            assert!(bad(old - 1, new, &r1, &r2, &want));
            assert!(bad(old + 1, new, &r1, &r2, &want));
            assert!(bad(old ^ 2, new, &r1, &r2, &want));
            assert!(bad(old, new * 2, &r1, &r2, &want));
            assert!(bad(old, new / 2, &r1, &r2, &want));
            assert!(bad(old, new, &hash_leaf(b"x"), &r2, &want));
            assert!(bad(old, new, &r1, &hash_leaf(b"x"), &want));
            assert!(bad(old, new, &r2, &r1, &want));
            assert!(bad(old, new, &r1, &r2, &[]));
            for extra in [r1, r2, want[0]] {
                let mut longer = want.clone();
                longer.push(extra);
                assert!(bad(old, new, &r1, &r2, &longer));
                let mut front = vec![extra];
                front.extend_from_slice(&want);
                assert!(bad(old, new, &r1, &r2, &front));
            }
            assert!(bad(old, new, &r1, &r2, &want[..want.len() - 1]));
            for i in 0..want.len() {
                let mut p = want.clone();
                p[i][0] ^= 16;
                assert!(bad(old, new, &r1, &r2, &p));
            }
        }
    }

    #[test]
    fn consistency_edge_cases() {
        let a = hash_leaf(b"a");
        let b = hash_leaf(b"b");
        let e = empty_root();
        // Equal sizes: empty proof and equal roots.
        verify_consistency(0, 0, &e, &e, &[]).unwrap();
        verify_consistency(1, 1, &a, &a, &[]).unwrap();
        verify_consistency(5, 5, &b, &b, &[]).unwrap();
        assert_eq!(
            verify_consistency(1, 1, &a, &b, &[]),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_consistency(1, 1, &a, &a, &[e]),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        // From the empty tree: anything, with an empty proof.
        verify_consistency(0, 7, &e, &a, &[]).unwrap();
        assert!(verify_consistency(0, 7, &e, &a, &[e]).is_err());
        assert_eq!(
            verify_consistency(0, 7, &a, &a, &[]),
            Err(ProofError::RootMismatch)
        );
        // Time travel.
        assert_eq!(
            verify_consistency(2, 1, &a, &b, &[]),
            Err(ProofError::InvalidSizes { old: 2, new: 1 })
        );
        // A growing tree needs a proof.
        assert!(verify_consistency(1, 2, &a, &b, &[]).is_err());
    }

    #[test]
    fn inclusion_edge_cases() {
        let a = hash_leaf(b"a");
        verify_inclusion(&a, 0, 1, &[], &a).unwrap();
        assert_eq!(
            verify_inclusion(&a, 0, 0, &[], &empty_root()),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
        );
        assert_eq!(
            verify_inclusion(&a, 2, 1, &[], &a),
            Err(ProofError::IndexOutOfRange { index: 2, size: 1 })
        );
        assert_eq!(
            verify_inclusion(&a, 0, 1, &[], &hash_leaf(b"b")),
            Err(ProofError::RootMismatch)
        );
        assert_eq!(
            verify_inclusion(&a, 0, 1, &[a], &a),
            Err(ProofError::WrongProofLength {
                expected: 0,
                actual: 1
            })
        );
        // Sizes near the top of the u64 range do not overflow.
        let p = vec![a; 64];
        assert!(verify_inclusion(&a, u64::MAX - 1, u64::MAX, &p, &a).is_err());
        assert!(verify_inclusion(&a, 0, u64::MAX, &p, &a).is_err());
        assert!(verify_consistency(u64::MAX - 1, u64::MAX, &a, &a, &p).is_err());
        assert_eq!(inclusion_plan(u64::MAX - 1, u64::MAX).len(), 63);
        assert_eq!(inclusion_plan(0, u64::MAX).len(), 64);
        assert_eq!(root_plan(u64::MAX).len(), 64);
    }

    #[test]
    fn range_nodes_examples() {
        let n = |level, index| NodeId::new(level, index);
        assert_eq!(range_nodes(0, 0), vec![]);
        assert_eq!(range_nodes(3, 3), vec![]);
        assert_eq!(range_nodes(0, 1), vec![n(0, 0)]);
        assert_eq!(range_nodes(0, 7), vec![n(2, 0), n(1, 2), n(0, 6)]);
        assert_eq!(range_nodes(0, 8), vec![n(3, 0)]);
        assert_eq!(range_nodes(8, 13), vec![n(2, 2), n(0, 12)]);
        assert_eq!(range_nodes(4, 6), vec![n(1, 2)]);
        // Unaligned start: left to right, each as large as alignment allows.
        assert_eq!(range_nodes(1, 8), vec![n(0, 1), n(1, 1), n(2, 1)]);
        assert_eq!(root_plan(13), range_nodes(0, 13));
    }

    #[test]
    fn completed_nodes_examples() {
        let n = |level, index| NodeId::new(level, index);
        assert_eq!(completed_nodes(0), vec![n(0, 0)]);
        assert_eq!(completed_nodes(1), vec![n(0, 1), n(1, 0)]);
        assert_eq!(completed_nodes(6), vec![n(0, 6)]);
        assert_eq!(completed_nodes(7), vec![n(0, 7), n(1, 3), n(2, 1), n(3, 0)]);
    }

    /// The complete aligned subtrees of a tree of `size` leaves, by definition.
    fn complete_subtrees(size: u64) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut level = 0;
        while (1u64 << level) <= size {
            for index in 0..(size >> level) {
                out.push(NodeId::new(level, index));
            }
            level += 1;
        }
        out.sort();
        out
    }

    #[test]
    fn completed_nodes_build_every_complete_subtree() {
        let mut all = Vec::new();
        for size in 0..=300u64 {
            let mut sorted = all.clone();
            sorted.sort();
            assert_eq!(sorted, complete_subtrees(size), "size {size}");
            assert_eq!(
                sorted.len() as u64,
                2 * size - u64::from(size.count_ones()),
                "size {size}"
            );
            all.extend(completed_nodes(size));
        }
    }

    #[test]
    fn exhaustive_small_trees() {
        let leaves = test_leaves(64, 7);
        let table = node_table(&leaves);
        for size in 1..=64u64 {
            let d = &leaves[..size as usize];
            let r = root(d);
            assert_eq!(assemble(&table, &root_plan(size)), r);
            for index in 0..size {
                let p = inclusion_proof(d, index);
                let plan = inclusion_plan(index, size);
                assert_eq!(assemble_proof(&table, &plan), p, "{index}/{size}");
                assert!(plan.iter().flatten().all(|id| id.end() <= size));
                verify_inclusion(&d[index as usize], index, size, &p, &r).unwrap();
            }
            for old in 0..=size {
                let p = consistency_proof(d, old);
                let plan = consistency_plan(old, size);
                assert_eq!(assemble_proof(&table, &plan), p, "{old}->{size}");
                assert!(plan.iter().flatten().all(|id| id.end() <= size));
                verify_consistency(old, size, &root(&d[..old as usize]), &r, &p).unwrap();
            }
        }
    }

    /// Left/right pattern of an inclusion proof: for each hash, whether its subtree lies to the
    /// left of the leaf. The verifier's result depends only on this pattern and the hashes.
    fn shape(index: u64, size: u64) -> Vec<bool> {
        inclusion_plan(index, size)
            .iter()
            .map(|ids| ids[0].start() < index)
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn proofs_plans_and_verification(
            size in 1u64..=300,
            index_seed in any::<u64>(),
            old_seed in any::<u64>(),
            other_seed in any::<u64>(),
            byte in 0usize..32,
            which in any::<usize>(),
            seed in any::<u64>(),
        ) {
            let leaves = test_leaves(size, seed);
            let table = node_table(&leaves);
            let r = root(&leaves);
            prop_assert_eq!(assemble(&table, &root_plan(size)), r);

            // Inclusion.
            let index = index_seed % size;
            let leaf = leaves[index as usize];
            let p = inclusion_proof(&leaves, index);
            prop_assert_eq!(assemble_proof(&table, &inclusion_plan(index, size)), p.clone());
            prop_assert_eq!(verify_inclusion(&leaf, index, size, &p, &r), Ok(()));
            prop_assert!(verify_inclusion(&flip(&leaf, byte), index, size, &p, &r).is_err());
            prop_assert!(verify_inclusion(&leaf, index, size, &p, &flip(&r, byte)).is_err());
            for i in 0..p.len() {
                let mut bad = p.clone();
                bad[i] = flip(&bad[i], byte.wrapping_add(which));
                prop_assert!(verify_inclusion(&leaf, index, size, &bad, &r).is_err());
            }
            if !p.is_empty() {
                prop_assert!(verify_inclusion(&leaf, index, size, &p[1..], &r).is_err());
            }
            let mut longer = p.clone();
            longer.push(r);
            prop_assert!(verify_inclusion(&leaf, index, size, &longer, &r).is_err());
            // Wrong index: fails whether we claim our leaf or the other leaf sits there.
            let other = other_seed % size;
            if other != index {
                prop_assert!(verify_inclusion(&leaf, other, size, &p, &r).is_err());
                let other_leaf = leaves[other as usize];
                prop_assert!(verify_inclusion(&other_leaf, other, size, &p, &r).is_err());
            }
            // Wrong size: fails against that size's own root. Against the true root it fails
            // exactly when the proof's left/right pattern differs (a proof does not carry the
            // size; the signed tree head binds size and root together).
            let other_size = 1 + other_seed % 300;
            if other_size != size && index < other_size {
                let all = test_leaves(other_size.max(size), seed);
                let other_root = root(&all[..other_size as usize]);
                prop_assert!(
                    verify_inclusion(&leaf, index, other_size, &p, &other_root).is_err()
                );
                let same_shape = shape(index, other_size) == shape(index, size);
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, other_size, &p, &r).is_ok(),
                    same_shape
                );
            }

            // Consistency.
            let old = old_seed % (size + 1);
            let old_root = root(&leaves[..old as usize]);
            let c = consistency_proof(&leaves, old);
            prop_assert_eq!(assemble_proof(&table, &consistency_plan(old, size)), c.clone());
            prop_assert_eq!(verify_consistency(old, size, &old_root, &r, &c), Ok(()));
            for i in 0..c.len() {
                let mut bad = c.clone();
                bad[i] = flip(&bad[i], byte.wrapping_add(which));
                prop_assert!(verify_consistency(old, size, &old_root, &r, &bad).is_err());
            }
            prop_assert!(
                verify_consistency(old, size, &flip(&old_root, byte), &r, &c).is_err()
            );
            if old > 0 {
                prop_assert!(
                    verify_consistency(old, size, &old_root, &flip(&r, byte), &c).is_err()
                );
            }
            if !c.is_empty() {
                prop_assert!(
                    verify_consistency(old, size, &old_root, &r, &c[..c.len() - 1]).is_err()
                );
            }
            let mut longer = c.clone();
            longer.push(r);
            prop_assert!(verify_consistency(old, size, &old_root, &r, &longer).is_err());
            // Wrong sizes, each with its own correct root.
            let other_old = other_seed % (size + 1);
            if other_old != old && !c.is_empty() {
                let other_root = root(&leaves[..other_old as usize]);
                prop_assert!(
                    verify_consistency(other_old, size, &other_root, &r, &c).is_err()
                );
            }
            let other_new = old.max(1) + other_seed % 300;
            if other_new != size && !c.is_empty() {
                let all = test_leaves(other_new.max(size), seed);
                let other_root = root(&all[..other_new as usize]);
                prop_assert!(
                    verify_consistency(old, other_new, &old_root, &other_root, &c).is_err()
                );
            }
        }

        #[test]
        fn fold_of_range_nodes_is_subtree_hash(
            size in 1u64..=200,
            seed in any::<u64>(),
            split in any::<u64>(),
        ) {
            // For every aligned start (as in RFC 9162's recursion), the fold of range_nodes
            // equals MTH of the range.
            let leaves = test_leaves(size, seed);
            let table = node_table(&leaves);
            let start = split % size;
            let len = size - start;
            let k = if len >= 2 { 1u64 << (63 - (len - 1).leading_zeros()) } else { 1 };
            if start % k == 0 {
                prop_assert_eq!(
                    assemble(&table, &range_nodes(start, size)),
                    root(&leaves[start as usize..])
                );
            }
        }
    }

    #[test]
    fn frontier_tracks_root_plan_and_completed_nodes() {
        let leaves: Vec<Hash> = (0u32..200).map(|i| hash_leaf(&i.to_be_bytes())).collect();
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), empty_root());
        for (index, leaf) in leaves.iter().enumerate() {
            let completed = frontier.push(*leaf);
            let expected: Vec<NodeId> = completed_nodes(index as u64).into_iter().skip(1).collect();
            assert_eq!(
                completed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
                expected
            );
            for (id, hash) in &completed {
                assert_eq!(*hash, root(&leaves[id.start() as usize..id.end() as usize]));
            }
            let size = index as u64 + 1;
            assert_eq!(frontier.root(), root(&leaves[..=index]));
            let hashes: Vec<Hash> = root_plan(size)
                .iter()
                .map(|id| root(&leaves[id.start() as usize..id.end() as usize]))
                .collect();
            assert_eq!(
                Frontier::from_plan_hashes(size, hashes),
                Some(frontier.clone())
            );
        }
    }
}
