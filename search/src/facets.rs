//! Facet counts of a search: hits per event category and per day (UTC) of `occurred_at`, read
//! from the fast columns of the matching documents.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DateTime, DocId, Score, SegmentOrdinal, SegmentReader};
use time::OffsetDateTime;

const SECONDS_PER_DAY: i64 = 86_400;

/// Which facet counts to compute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FacetRequest {
    /// Hits per event category (the part of the type before the first dot).
    pub types: bool,
    /// Hits per day of `occurred_at`, UTC, as `YYYY-MM-DD`.
    pub days: bool,
}

impl FacetRequest {
    /// Returns whether any count is asked for.
    pub fn any(self) -> bool {
        self.types || self.days
    }
}

/// Facet counts over every hit of a search (not only the page returned).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facets {
    /// Hits per event category, when asked for.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub types: Option<BTreeMap<String, u64>>,
    /// Hits per day (`YYYY-MM-DD`, UTC), when asked for.
    #[serde(rename = "day", skip_serializing_if = "Option::is_none")]
    pub days: Option<BTreeMap<String, u64>>,
}

/// Counts hits per category and per day.
pub(crate) struct FacetCollector {
    pub request: FacetRequest,
}

pub(crate) struct SegmentFacets {
    categories: Option<StrColumn>,
    per_category_ordinal: Vec<u64>,
    occurred_at: Option<Column<DateTime>>,
    per_day: HashMap<i64, u64>,
}

/// One segment's counts, categories already named.
pub(crate) struct SegmentCounts {
    types: HashMap<String, u64>,
    days: HashMap<i64, u64>,
}

impl Collector for FacetCollector {
    type Fruit = Facets;
    type Child = SegmentFacets;

    fn for_segment(
        &self,
        _segment_local_id: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentFacets> {
        let categories = if self.request.types {
            segment.fast_fields().str("category")?
        } else {
            None
        };
        let occurred_at = if self.request.days {
            Some(segment.fast_fields().date("occurred_at")?)
        } else {
            None
        };
        Ok(SegmentFacets {
            per_category_ordinal: vec![
                0;
                categories
                    .as_ref()
                    .map_or(0, |column| column.dictionary().num_terms())
            ],
            categories,
            occurred_at,
            per_day: HashMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<SegmentCounts>) -> tantivy::Result<Facets> {
        let mut types = BTreeMap::new();
        let mut days = BTreeMap::new();
        for segment in segments {
            for (category, count) in segment.types {
                *types.entry(category).or_insert(0) += count;
            }
            for (day, count) in segment.days {
                *days.entry(day).or_insert(0) += count;
            }
        }
        Ok(Facets {
            types: self.request.types.then_some(types),
            days: self.request.days.then(|| {
                days.into_iter()
                    .map(|(day, count)| (day_name(day), count))
                    .collect()
            }),
        })
    }
}

impl SegmentCollector for SegmentFacets {
    type Fruit = SegmentCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(ordinal) = self
            .categories
            .as_ref()
            .and_then(|column| column.ords().first(doc))
        {
            self.per_category_ordinal[ordinal as usize] += 1;
        }
        if let Some(time) = self
            .occurred_at
            .as_ref()
            .and_then(|column| column.first(doc))
        {
            let day = time.into_timestamp_secs().div_euclid(SECONDS_PER_DAY);
            *self.per_day.entry(day).or_insert(0) += 1;
        }
    }

    fn harvest(self) -> SegmentCounts {
        let mut types = HashMap::new();
        if let Some(column) = &self.categories {
            let mut name = String::new();
            for (ordinal, &count) in self.per_category_ordinal.iter().enumerate() {
                if count > 0
                    && column
                        .ord_to_str(ordinal as u64, &mut name)
                        .unwrap_or(false)
                {
                    types.insert(name.clone(), count);
                }
            }
        }
        SegmentCounts {
            types,
            days: self.per_day,
        }
    }
}

/// Names a day counted from the Unix epoch: `2026-11-24`.
fn day_name(day: i64) -> String {
    OffsetDateTime::from_unix_timestamp(day * SECONDS_PER_DAY)
        .map(|time| time.date().to_string())
        .unwrap_or_else(|_| day.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_days_in_utc() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(20_781), "2026-11-24");
        assert_eq!(day_name(-1), "1969-12-31");
    }
}
