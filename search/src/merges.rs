//! How the index merges its segments: tantivy's log-sized merges, bounded in documents.

use std::collections::HashMap;

use tantivy::SegmentMeta;
use tantivy::index::SegmentId;
use tantivy::indexer::{LogMergePolicy, MergeCandidate, MergePolicy};

/// The most documents one merge takes in, so the largest segment a merge makes. A merge reads
/// every page of the segments it merges through their mappings and holds per-document buffers
/// for the one it writes, so this bounds the memory merging takes (about 30 MB of index); an
/// index of 10M events settles at about 30 segments, most of 250,000–500,000 documents, which
/// every query visits. A bound of 1M documents took the server past its 300 MiB budget
/// (BENCHMARKS.md, "Server memory").
pub(crate) const MERGE_MAX_DOCS: u32 = 500_000;

/// Merges segments of about the same size, up to eight at a time as tantivy's
/// [`LogMergePolicy`] picks them, split so that no merge takes in more than
/// [`MERGE_MAX_DOCS`] documents. Segments past half the bound are merged no further.
#[derive(Debug)]
pub(crate) struct BoundedMerges {
    levels: LogMergePolicy,
}

impl Default for BoundedMerges {
    fn default() -> BoundedMerges {
        let mut levels = LogMergePolicy::default();
        // Two segments past half the bound would make one past it.
        levels.set_max_docs_before_merge(MERGE_MAX_DOCS as usize / 2);
        BoundedMerges { levels }
    }
}

impl MergePolicy for BoundedMerges {
    fn compute_merge_candidates(&self, segments: &[SegmentMeta]) -> Vec<MergeCandidate> {
        let docs: HashMap<SegmentId, u64> = segments
            .iter()
            .map(|segment| (segment.id(), u64::from(segment.num_docs())))
            .collect();
        let mut merges = Vec::new();
        for MergeCandidate(level) in self.levels.compute_merge_candidates(segments) {
            // The level's segments in the order given (largest first), in runs within the bound.
            let mut run = Vec::new();
            let mut run_docs = 0;
            for id in level {
                let size = docs.get(&id).copied().unwrap_or_default();
                if run_docs + size > u64::from(MERGE_MAX_DOCS) {
                    merges.push(std::mem::take(&mut run));
                    run_docs = 0;
                }
                run.push(id);
                run_docs += size;
            }
            merges.push(run);
        }
        merges
            .into_iter()
            .filter(|run| run.len() > 1)
            .map(MergeCandidate)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use tantivy::Index;

    use super::*;
    use crate::schema::Fields;

    /// The merges picked among eight segments of `docs` documents each: their sizes in segments.
    fn merges_of_eight(docs: u32) -> Vec<usize> {
        let index = Index::create_in_ram(Fields::schema().0);
        let segments: Vec<SegmentMeta> = (0..8)
            .map(|_| index.new_segment_meta(SegmentId::generate_random(), docs))
            .collect();
        let merges = BoundedMerges::default().compute_merge_candidates(&segments);
        for MergeCandidate(merge) in &merges {
            assert!(u64::from(docs) * merge.len() as u64 <= u64::from(MERGE_MAX_DOCS));
        }
        merges.iter().map(|merge| merge.0.len()).collect()
    }

    #[test]
    fn merges_eight_alike_segments_within_the_bound_and_big_ones_never() {
        assert_eq!(merges_of_eight(MERGE_MAX_DOCS / 8), vec![8]);
        assert_eq!(merges_of_eight(MERGE_MAX_DOCS / 3), vec![3, 3, 2]);
        assert_eq!(merges_of_eight(MERGE_MAX_DOCS / 2), vec![2, 2, 2, 2]);
        assert_eq!(merges_of_eight(MERGE_MAX_DOCS / 2 + 1), Vec::<usize>::new());
        assert_eq!(merges_of_eight(10_000), vec![8]);
    }
}
