//! Aggregations: Sluice's own aggregation tree, its execution over the matching documents of
//! each index, and the exact merge of per-index results.
//!
//! The `api` crate reads the Elasticsearch `aggs` JSON into [`Aggregation`]s. Execution runs in
//! three steps, as Elasticsearch's shards and coordinating node do:
//! 1. per segment (`collect.rs`): the matching documents of a segment are gathered, then each
//!    aggregation reads the columnar values of its field (the `_fields` fast field, keyed by the
//!    mapped path) for those documents into a mergeable partial result (`partial.rs`); bucket
//!    aggregations group the documents per bucket and run their sub-aggregations on each group;
//! 2. per index (one index is one "shard"): segment partials merge exactly, then terms are cut to
//!    their `shard_size`, remembering what was cut for `doc_count_error_upper_bound` and
//!    `sum_other_doc_count`;
//! 3. across the indices of a pattern (`reduce.rs`): partials merge (sums, sketch unions,
//!    digest merges, bucket unions), then the final results are built: ordering, `size`,
//!    `min_doc_count`, empty buckets, pipelines, and the `search.max_buckets` check.
//!
//! Memory is bounded per request by a [`MemoryBudget`] (a circuit breaker); bucket counts by
//! [`MAX_BUCKETS_DEFAULT`].

mod collect;
pub mod format;
mod hll;
mod partial;
mod pipeline;
mod reduce;
mod result;
pub mod rounding;
mod tdigest;
pub(crate) mod values;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use crate::error::{Result, SearchError};
use crate::index::Index;
use crate::query::Query;

pub use hll::{PRECISION_THRESHOLD_DEFAULT, PRECISION_THRESHOLD_MAX};
pub use jiff::tz::TimeZone;
pub use pipeline::{
    BucketsPath, GapPolicy, MovingFunction, Pipeline, PipelineKind, ScriptExpr, script_params,
};
pub use result::{
    AggResult, AggValue, Bucket, BucketKey, Buckets, BucketsKind, ExtendedStats, RangeBounds,
    Stats, TopHit, TopMetricsRow, java_double,
};
pub use rounding::{CalendarUnit, Interval, Rounding};
pub use tdigest::{COMPRESSION_DEFAULT, COMPRESSION_MAX};

/// `search.max_buckets`: buckets one response may hold, counted over every level; more is a
/// `too_many_buckets_exception` (400), as in Elasticsearch.
pub const MAX_BUCKETS_DEFAULT: usize = 65_536;
/// Memory one aggregation request may hold while it runs (documents grouped per bucket, bucket
/// maps, sketches, digests, hits). Past it the request fails with `circuit_breaking_exception`
/// (429) instead of taking the server's memory.
pub const REQUEST_MEMORY_BYTES_MAX: usize = 512 * 1024 * 1024;
/// How deep aggregations may nest; deeper requests are refused (400) before anything runs.
pub const AGGREGATION_DEPTH_MAX: usize = 16;
/// Elasticsearch's default `size` of `terms`, `composite` and `top_metrics`-like lists.
pub const TERMS_SIZE_DEFAULT: usize = 10;

/// One named aggregation and its sub-aggregations.
#[derive(Debug, Clone)]
pub struct Aggregation {
    pub name: String,
    pub kind: AggKind,
    pub subs: Vec<Aggregation>,
}

/// Where a metric or bucket aggregation reads its values.
#[derive(Debug, Clone, PartialEq)]
pub struct ValueSource {
    pub field: String,
    /// The value used for documents without one (`missing`).
    pub missing: Option<Value>,
    /// `format` of keys and values printed as strings.
    pub format: Option<String>,
}

impl ValueSource {
    pub fn field(field: impl Into<String>) -> ValueSource {
        ValueSource {
            field: field.into(),
            missing: None,
            format: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

/// How buckets are ordered: `_count`, `_key`, or a path into sub-aggregations (`avg_price`,
/// `stats.max`, `filtered>avg`).
#[derive(Debug, Clone, PartialEq)]
pub enum BucketOrder {
    Count(Direction),
    Key(Direction),
    Path {
        /// Aggregation names, outermost first (`a>b` is `["a", "b"]`).
        aggs: Vec<String>,
        /// The value of a multi-value metric (`stats.max`), or a percentile (`p.99`).
        metric: Option<String>,
        direction: Direction,
    },
}

/// `include`/`exclude` of `terms`.
#[derive(Debug, Clone)]
pub enum TermFilter {
    /// Anchored, as Lucene's regular expressions are.
    Regex(regex::Regex),
    Values(Vec<String>),
}

impl TermFilter {
    /// A regular expression matched against the whole term, as Lucene's are.
    pub fn regex(pattern: &str) -> std::result::Result<TermFilter, String> {
        regex::Regex::new(&format!("^(?:{pattern})$"))
            .map(TermFilter::Regex)
            .map_err(|e| e.to_string())
    }

    fn matches(&self, key: &str) -> bool {
        match self {
            TermFilter::Regex(regex) => regex.is_match(key),
            TermFilter::Values(values) => values.iter().any(|v| v == key),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Terms {
    pub source: ValueSource,
    pub size: usize,
    /// `None`: Elasticsearch's default, `size * 1.5 + 10`.
    pub shard_size: Option<usize>,
    pub min_doc_count: u64,
    pub shard_min_doc_count: u64,
    /// The order, then `_key` ascending to break ties.
    pub order: Vec<BucketOrder>,
    pub include: Option<TermFilter>,
    pub exclude: Option<TermFilter>,
    pub show_term_doc_count_error: bool,
}

/// How `significant_terms` scores a term from its counts in the subset (the documents of the
/// bucket) and the superset (the index, or its documents matching `background_filter`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Significance {
    /// Elasticsearch's default: the absolute change in probability times the relative change.
    Jlh,
    /// The subset count over the superset count.
    Percentage,
    /// Mutual information between the term and the subset, in bits.
    MutualInformation {
        include_negatives: bool,
        background_is_superset: bool,
    },
    ChiSquare {
        include_negatives: bool,
        background_is_superset: bool,
    },
    /// Google normalized distance, inverted so that related terms score high.
    Gnd { background_is_superset: bool },
}

/// The four cells of a term's contingency table (in the subset or not, with the term or not)
/// and their margins, as Elasticsearch's NXY heuristics count them.
struct Frequencies {
    n00: f64,
    n01: f64,
    n10: f64,
    n11: f64,
    n0_: f64,
    n1_: f64,
    n_0: f64,
    n_1: f64,
    n: f64,
}

impl Frequencies {
    /// `None` when the counts cannot hold together (a background that is said to contain the
    /// subset but does not).
    fn new(
        subset_freq: u64,
        subset_size: u64,
        superset_freq: u64,
        superset_size: u64,
        background_is_superset: bool,
    ) -> Option<Frequencies> {
        let (sf, ss, bf, bs) = (
            subset_freq as f64,
            subset_size as f64,
            superset_freq as f64,
            superset_size as f64,
        );
        if background_is_superset {
            if subset_freq > superset_freq
                || subset_size > superset_size
                || superset_freq - subset_freq > superset_size - subset_size
            {
                return None;
            }
            Some(Frequencies {
                n00: bs - bf - (ss - sf),
                n01: ss - sf,
                n10: bf - sf,
                n11: sf,
                n0_: bs - bf,
                n1_: bf,
                n_0: bs - ss,
                n_1: ss,
                n: bs,
            })
        } else {
            Some(Frequencies {
                n00: bs - bf,
                n01: ss - sf,
                n10: bf,
                n11: sf,
                n0_: bs - bf + ss - sf,
                n1_: bf + sf,
                n_0: bs,
                n_1: ss,
                n: bs + ss,
            })
        }
    }

    /// Whether the term is rarer in the subset than outside it.
    fn negative(&self) -> bool {
        self.n11 / self.n_1 < self.n10 / self.n_0
    }
}

/// One term of mutual information, with 0·log(0) taken as 0.
fn mi_term(nxy: f64, nx_: f64, n_y: f64, n: f64) -> f64 {
    let numerator = (n * nxy).abs();
    let denominator = (nx_ * n_y).abs();
    let factor = (nxy / n).abs();
    if numerator < 1e-7 && factor < 1e-7 {
        0.0
    } else {
        factor * (numerator / denominator).ln()
    }
}

impl Significance {
    /// The score as Elasticsearch computes it (0 or less: "not significant"), or `None` when
    /// the background was said to contain the subset and does not.
    pub fn score(
        self,
        subset_freq: u64,
        subset_size: u64,
        superset_freq: u64,
        superset_size: u64,
    ) -> Option<f64> {
        let nxy = |background_is_superset| {
            Frequencies::new(
                subset_freq,
                subset_size,
                superset_freq,
                superset_size,
                background_is_superset,
            )
        };
        Some(match self {
            Significance::Jlh => {
                if subset_size == 0 || superset_size == 0 {
                    return Some(0.0);
                }
                let superset_freq = superset_freq.max(1);
                let subset_probability = subset_freq as f64 / subset_size as f64;
                let superset_probability = superset_freq as f64 / superset_size as f64;
                let absolute_change = subset_probability - superset_probability;
                if absolute_change <= 0.0 {
                    return Some(0.0);
                }
                absolute_change * (subset_probability / superset_probability)
            }
            Significance::Percentage => {
                if superset_freq == 0 {
                    return Some(0.0);
                }
                subset_freq as f64 / superset_freq as f64
            }
            Significance::MutualInformation {
                include_negatives,
                background_is_superset,
            } => {
                let f = nxy(background_is_superset)?;
                let score = (mi_term(f.n00, f.n0_, f.n_0, f.n)
                    + mi_term(f.n01, f.n0_, f.n_1, f.n)
                    + mi_term(f.n10, f.n1_, f.n_0, f.n)
                    + mi_term(f.n11, f.n1_, f.n_1, f.n))
                    / std::f64::consts::LN_2;
                if score.is_nan() || (!include_negatives && f.negative()) {
                    f64::NEG_INFINITY
                } else {
                    score
                }
            }
            Significance::ChiSquare {
                include_negatives,
                background_is_superset,
            } => {
                let f = nxy(background_is_superset)?;
                if !include_negatives && f.negative() {
                    return Some(f64::NEG_INFINITY);
                }
                f.n * (f.n11 * f.n00 - f.n01 * f.n10).powi(2) / (f.n_1 * f.n1_ * f.n0_ * f.n_0)
            }
            Significance::Gnd {
                background_is_superset,
            } => {
                let f = nxy(background_is_superset)?;
                let (fx, fy, fxy) = (f.n1_, f.n_1, f.n11);
                if fxy == 0.0 {
                    return Some(0.0);
                }
                if fx == fy && fx == fxy {
                    return Some(1.0);
                }
                let score = (fx.ln().max(fy.ln()) - fxy.ln()) / (f.n.ln() - fx.ln().min(fy.ln()));
                (-score).exp()
            }
        })
    }
}

/// `significant_terms`: the terms whose frequency in the bucket's documents stands out from
/// their frequency in the index. Exact across indices: no index cuts its candidates, and the
/// background counts of every index are summed.
#[derive(Debug, Clone)]
pub struct SignificantTerms {
    pub source: ValueSource,
    pub size: usize,
    pub min_doc_count: u64,
    pub shard_min_doc_count: u64,
    pub include: Option<TermFilter>,
    pub exclude: Option<TermFilter>,
    /// The superset: every live document of each index when `None`.
    pub background_filter: Option<Query>,
    pub significance: Significance,
}

/// Elasticsearch's default `min_doc_count` of `significant_terms`.
pub const SIGNIFICANT_MIN_DOC_COUNT_DEFAULT: u64 = 3;

impl SignificantTerms {
    /// The terms collection that gathers the subset's candidates.
    pub(crate) fn as_terms(&self) -> Terms {
        Terms {
            source: self.source.clone(),
            size: usize::MAX,
            shard_size: None,
            min_doc_count: 1,
            shard_min_doc_count: self.shard_min_doc_count,
            order: Vec::new(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            show_term_doc_count_error: false,
        }
    }
}

/// `sampler` and `diversified_sampler`: sub-aggregations over the best-scoring `shard_size`
/// matching documents of each index (ties by index order), top level only.
#[derive(Debug, Clone)]
pub struct Sampler {
    pub shard_size: usize,
    /// `diversified_sampler`: at most this many sampled documents per value of the field (a
    /// single-valued field; documents without a value share one value).
    pub diversify: Option<(ValueSource, usize)>,
}

/// Elasticsearch's default `shard_size` of `sampler` and `diversified_sampler`.
pub const SAMPLER_SHARD_SIZE_DEFAULT: usize = 100;

/// `rare_terms`: the terms of at most `max_doc_count` documents over every index, least frequent
/// first. Exact: no index cuts its terms, so a term frequent in one index and rare in another is
/// never reported rare.
#[derive(Debug, Clone)]
pub struct RareTerms {
    pub source: ValueSource,
    pub max_doc_count: u64,
    pub include: Option<TermFilter>,
    pub exclude: Option<TermFilter>,
}

/// Elasticsearch's largest `max_doc_count` of `rare_terms`; more is refused (400).
pub const RARE_TERMS_MAX_DOC_COUNT_MAX: u64 = 100;

impl RareTerms {
    /// The terms collection that gathers every term with its count.
    pub(crate) fn as_terms(&self) -> Terms {
        Terms {
            source: self.source.clone(),
            size: usize::MAX,
            shard_size: None,
            min_doc_count: 1,
            shard_min_doc_count: 0,
            order: Vec::new(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            show_term_doc_count_error: false,
        }
    }
}

/// `multi_terms`: buckets keyed by one value of each source, ordered, sized and cut as `terms`.
/// A document without a value for some source (and no `missing`) is counted in no bucket;
/// multi-valued fields count a document once per combination of values.
#[derive(Debug, Clone)]
pub struct MultiTerms {
    pub sources: Vec<ValueSource>,
    pub size: usize,
    /// `None`: Elasticsearch's default, `size * 1.5 + 10`.
    pub shard_size: Option<usize>,
    pub min_doc_count: u64,
    pub shard_min_doc_count: u64,
    /// The order, then the key ascending to break ties.
    pub order: Vec<BucketOrder>,
    pub show_term_doc_count_error: bool,
}

/// What `terms` and `multi_terms` share: how buckets are ordered (never empty: the default is
/// spelt out), sized and cut per index.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TermsCut<'a> {
    pub size: usize,
    pub shard_size: Option<usize>,
    pub min_doc_count: u64,
    pub shard_min_doc_count: u64,
    pub order: &'a [BucketOrder],
    pub show_term_doc_count_error: bool,
}

/// The order of `terms` and `multi_terms` that give none: the largest counts first.
const TERMS_ORDER_DEFAULT: &[BucketOrder] = &[BucketOrder::Count(Direction::Desc)];

fn terms_order(order: &[BucketOrder]) -> &[BucketOrder] {
    if order.is_empty() {
        TERMS_ORDER_DEFAULT
    } else {
        order
    }
}

impl Terms {
    pub(crate) fn cut(&self) -> TermsCut<'_> {
        TermsCut {
            size: self.size,
            shard_size: self.shard_size,
            min_doc_count: self.min_doc_count,
            shard_min_doc_count: self.shard_min_doc_count,
            order: terms_order(&self.order),
            show_term_doc_count_error: self.show_term_doc_count_error,
        }
    }
}

impl MultiTerms {
    pub(crate) fn cut(&self) -> TermsCut<'_> {
        TermsCut {
            size: self.size,
            shard_size: self.shard_size,
            min_doc_count: self.min_doc_count,
            shard_min_doc_count: self.shard_min_doc_count,
            order: terms_order(&self.order),
            show_term_doc_count_error: self.show_term_doc_count_error,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Histogram {
    pub source: ValueSource,
    pub interval: f64,
    pub offset: f64,
    pub min_doc_count: u64,
    pub extended_bounds: Option<(f64, f64)>,
    pub hard_bounds: Option<(Option<f64>, Option<f64>)>,
    pub order: Vec<BucketOrder>,
    pub keyed: bool,
}

#[derive(Debug, Clone)]
pub struct DateHistogram {
    pub source: ValueSource,
    pub rounding: Rounding,
    pub min_doc_count: u64,
    /// Epoch milliseconds.
    pub extended_bounds: Option<(i64, i64)>,
    pub hard_bounds: Option<(Option<i64>, Option<i64>)>,
    pub order: Vec<BucketOrder>,
    pub keyed: bool,
}

/// One rounding `auto_date_histogram` may choose: a calendar unit, how its intervals are
/// written, a rough length, and the multiples of it buckets may merge into.
#[derive(Debug)]
pub struct AutoRounding {
    pub unit: CalendarUnit,
    pub abbreviation: &'static str,
    pub rough_ms: i64,
    pub inner_intervals: &'static [usize],
}

impl AutoRounding {
    pub(crate) fn max_inner(&self) -> usize {
        self.inner_intervals.last().copied().unwrap_or(1)
    }
}

/// Elasticsearch's roundings of `auto_date_histogram`, finest first.
pub const AUTO_DATE_ROUNDINGS: [AutoRounding; 6] = [
    AutoRounding {
        unit: CalendarUnit::Second,
        abbreviation: "s",
        rough_ms: 1_000,
        inner_intervals: &[1, 5, 10, 30],
    },
    AutoRounding {
        unit: CalendarUnit::Minute,
        abbreviation: "m",
        rough_ms: 60_000,
        inner_intervals: &[1, 5, 10, 30],
    },
    AutoRounding {
        unit: CalendarUnit::Hour,
        abbreviation: "h",
        rough_ms: 3_600_000,
        inner_intervals: &[1, 3, 12],
    },
    AutoRounding {
        unit: CalendarUnit::Day,
        abbreviation: "d",
        rough_ms: 86_400_000,
        inner_intervals: &[1, 7],
    },
    AutoRounding {
        unit: CalendarUnit::Month,
        abbreviation: "M",
        rough_ms: 30 * 86_400_000,
        inner_intervals: &[1, 3],
    },
    AutoRounding {
        unit: CalendarUnit::Year,
        abbreviation: "y",
        rough_ms: 365 * 86_400_000,
        inner_intervals: &[1, 5, 10, 20, 50, 100],
    },
];

/// Elasticsearch's default target of `auto_date_histogram`.
pub const AUTO_DATE_BUCKETS_DEFAULT: usize = 10;

/// `auto_date_histogram`: the finest of [`AUTO_DATE_ROUNDINGS`] (from `minimum` on) that keeps
/// the buckets at most `buckets`, merging consecutive buckets by an inner interval when needed,
/// as Elasticsearch chooses.
#[derive(Debug, Clone)]
pub struct AutoDateHistogram {
    pub source: ValueSource,
    pub buckets: usize,
    /// Index into [`AUTO_DATE_ROUNDINGS`] of the finest rounding allowed (`minimum_interval`).
    pub minimum: usize,
    pub time_zone: jiff::tz::TimeZone,
    /// One rounding per entry of [`AUTO_DATE_ROUNDINGS`], in the time zone.
    pub(crate) roundings: Vec<Rounding>,
}

impl AutoDateHistogram {
    pub fn new(
        source: ValueSource,
        buckets: usize,
        minimum: usize,
        time_zone: jiff::tz::TimeZone,
    ) -> AutoDateHistogram {
        let roundings = AUTO_DATE_ROUNDINGS
            .iter()
            .map(|r| Rounding::new(Interval::Calendar(r.unit), time_zone.clone(), 0))
            .collect();
        AutoDateHistogram {
            source,
            buckets: buckets.max(1),
            minimum: minimum.min(AUTO_DATE_ROUNDINGS.len() - 1),
            time_zone,
            roundings,
        }
    }

    pub(crate) fn rounding(&self, level: usize) -> Option<&Rounding> {
        self.roundings.get(level)
    }

    /// Whether `count` buckets spanning `span` milliseconds fit the rounding at `level`.
    pub(crate) fn fits(&self, level: usize, count: usize, span: i64) -> bool {
        let Some(info) = AUTO_DATE_ROUNDINGS.get(level) else {
            return true;
        };
        let max = self.buckets.saturating_mul(info.max_inner());
        count <= max && span <= (max as i64).saturating_mul(info.rough_ms)
    }
}

/// One range of `range` or `date_range`: `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSpec {
    pub key: Option<String>,
    pub from: Option<f64>,
    pub to: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct RangeAgg {
    pub source: ValueSource,
    pub ranges: Vec<RangeSpec>,
    pub keyed: bool,
    /// `date_range`: bounds print as dates in this zone.
    pub date_zone: Option<jiff::tz::TimeZone>,
    /// `geo_distance`: the ranges are distances of the field's points from an origin.
    pub geo: Option<GeoOrigin>,
}

/// Where a `geo_distance` aggregation measures from, and how.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoOrigin {
    pub origin: crate::geo::GeoPoint,
    pub unit: crate::geo::DistanceUnit,
    pub distance_type: crate::geo::DistanceType,
}

/// The cells of a grid aggregation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeoCells {
    /// `geohash_grid`: geohashes of `precision` characters (1 to 12).
    Geohash { precision: usize },
    /// `geotile_grid`: map tiles at `zoom` (0 to 29), keyed `zoom/x/y`.
    Geotile { zoom: u32 },
}

/// `geohash_grid` and `geotile_grid`: documents by the cells holding their points, the
/// fullest `size` cells first.
#[derive(Debug, Clone)]
pub struct GeoGrid {
    pub field: String,
    pub cells: GeoCells,
    pub size: usize,
    /// Cells each index keeps before the merge.
    pub shard_size: usize,
    /// Only points inside count.
    pub bounds: Option<crate::geo::GeoBox>,
}

/// One range of `ip_range`: `[from, to)` as encoded addresses (`ip.rs`), from `from`/`to` or a
/// CIDR `mask`.
#[derive(Debug, Clone, PartialEq)]
pub struct IpRangeSpec {
    pub key: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl IpRangeSpec {
    /// A range of `from`/`to` addresses as the request gives them; `None` if one is not an
    /// address.
    pub fn from_addresses(
        key: Option<String>,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Option<IpRangeSpec> {
        let encode = |text: Option<&str>| -> Option<Option<String>> {
            match text {
                None => Some(None),
                Some(text) => crate::ip::parse(text).map(|a| Some(crate::ip::encode(a))),
            }
        };
        Some(IpRangeSpec {
            key,
            from: encode(from)?,
            to: encode(to)?,
        })
    }

    /// The range of a CIDR block, as Elasticsearch makes it: its first address (unbounded if
    /// that is `::`) up to the address after its last (unbounded past the last address); the
    /// key defaults to the mask. `None` if `mask` is not a CIDR block.
    pub fn from_mask(key: Option<String>, mask: &str) -> Option<IpRangeSpec> {
        let (first, last) = crate::ip::cidr_bounds(mask)?;
        let lowest = "0".repeat(32);
        Some(IpRangeSpec {
            key: Some(key.unwrap_or_else(|| mask.to_string())),
            from: (first != lowest).then_some(first),
            to: crate::ip::next_up(&last),
        })
    }
}

/// `ip_range`: its ranges in Elasticsearch's order (by `from`, unbounded first, then by `to`,
/// unbounded last), which is the order of its buckets.
#[derive(Debug, Clone)]
pub struct IpRangeAgg {
    pub source: ValueSource,
    pub ranges: Vec<IpRangeSpec>,
    pub keyed: bool,
}

impl IpRangeAgg {
    pub fn new(source: ValueSource, mut ranges: Vec<IpRangeSpec>, keyed: bool) -> IpRangeAgg {
        ranges.sort_by(|a, b| {
            let from = match (&a.from, &b.from) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Less,
                (Some(_), None) => std::cmp::Ordering::Greater,
                (Some(x), Some(y)) => x.cmp(y),
            };
            from.then_with(|| match (&a.to, &b.to) {
                (None, None) => std::cmp::Ordering::Equal,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(_), None) => std::cmp::Ordering::Less,
                (Some(x), Some(y)) => x.cmp(y),
            })
        });
        IpRangeAgg {
            source,
            ranges,
            keyed,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Filters {
    /// Named filters keep their names; anonymous ones (a JSON array) have none.
    pub filters: Vec<(Option<String>, Query)>,
    pub other_bucket_key: Option<String>,
    pub keyed: bool,
}

#[derive(Debug, Clone)]
pub enum CompositeSourceKind {
    Terms,
    Histogram {
        interval: f64,
    },
    DateHistogram {
        rounding: Rounding,
    },
    /// The map tiles at `zoom` holding a `geo_point` field's points (only those inside
    /// `bounds`), keyed `zoom/x/y` and ordered by tile (`x`, then `y`) as Elasticsearch's.
    Geotile {
        zoom: u32,
        bounds: Option<crate::geo::GeoBox>,
    },
}

#[derive(Debug, Clone)]
pub struct CompositeSource {
    pub name: String,
    pub source: ValueSource,
    pub kind: CompositeSourceKind,
    pub direction: Direction,
    pub missing_bucket: bool,
}

/// One value of a composite key; `None` is the `missing_bucket` (JSON null).
pub type CompositeValue = Option<Value>;

#[derive(Debug, Clone)]
pub struct Composite {
    pub sources: Vec<CompositeSource>,
    pub size: usize,
    /// `after`: the key to page after, one value per source.
    pub after: Option<Vec<CompositeValue>>,
}

/// A sort of `top_hits` and `top_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub enum SortSpec {
    Score(Direction),
    Field { field: String, direction: Direction },
}

#[derive(Debug, Clone)]
pub struct TopHits {
    pub from: usize,
    pub size: usize,
    /// Empty: by score, descending.
    pub sort: Vec<SortSpec>,
}

#[derive(Debug, Clone)]
pub struct TopMetrics {
    pub metrics: Vec<String>,
    pub sort: SortSpec,
    pub size: usize,
}

#[derive(Debug, Clone)]
pub enum AggKind {
    Avg(ValueSource),
    Sum(ValueSource),
    Min(ValueSource),
    Max(ValueSource),
    ValueCount(ValueSource),
    Stats(ValueSource),
    ExtendedStats {
        source: ValueSource,
        sigma: f64,
    },
    Cardinality {
        source: ValueSource,
        precision_threshold: u64,
    },
    Percentiles {
        source: ValueSource,
        percents: Vec<f64>,
        compression: f64,
        keyed: bool,
    },
    PercentileRanks {
        source: ValueSource,
        values: Vec<f64>,
        compression: f64,
        keyed: bool,
    },
    MedianAbsoluteDeviation {
        source: ValueSource,
        compression: f64,
    },
    WeightedAvg {
        value: ValueSource,
        weight: ValueSource,
        format: Option<String>,
    },
    TopHits(TopHits),
    TopMetrics(TopMetrics),
    Terms(Terms),
    MultiTerms(MultiTerms),
    RareTerms(RareTerms),
    SignificantTerms(SignificantTerms),
    Histogram(Histogram),
    DateHistogram(DateHistogram),
    AutoDateHistogram(AutoDateHistogram),
    Range(RangeAgg),
    IpRange(IpRangeAgg),
    Filter(Query),
    Filters(Filters),
    Missing(ValueSource),
    /// All documents of the index, whatever the query (top level only).
    Global,
    /// The objects of a `nested` field (by full path) of the bucket's documents.
    Nested(String),
    /// From nested objects back to the documents holding them: the root's, or those of an
    /// enclosing nested path.
    ReverseNested(Option<String>),
    Sampler(Sampler),
    Composite(Composite),
    GeoGrid(GeoGrid),
    /// The box around a `geo_point` field's points (`wrap_longitude`: it may cross the
    /// antimeridian).
    GeoBounds {
        field: String,
        wrap_longitude: bool,
    },
    /// The mean of a `geo_point` field's points.
    GeoCentroid {
        field: String,
    },
    Pipeline(Pipeline),
}

impl AggKind {
    /// Elasticsearch's name of the aggregation, as errors and `typed_keys` show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            AggKind::Avg(_) => "avg",
            AggKind::Sum(_) => "sum",
            AggKind::Min(_) => "min",
            AggKind::Max(_) => "max",
            AggKind::ValueCount(_) => "value_count",
            AggKind::Stats(_) => "stats",
            AggKind::ExtendedStats { .. } => "extended_stats",
            AggKind::Cardinality { .. } => "cardinality",
            AggKind::Percentiles { .. } => "percentiles",
            AggKind::PercentileRanks { .. } => "percentile_ranks",
            AggKind::MedianAbsoluteDeviation { .. } => "median_absolute_deviation",
            AggKind::WeightedAvg { .. } => "weighted_avg",
            AggKind::TopHits(_) => "top_hits",
            AggKind::TopMetrics(_) => "top_metrics",
            AggKind::Terms(_) => "terms",
            AggKind::MultiTerms(_) => "multi_terms",
            AggKind::RareTerms(_) => "rare_terms",
            AggKind::SignificantTerms(_) => "significant_terms",
            AggKind::Histogram(_) => "histogram",
            AggKind::DateHistogram(_) => "date_histogram",
            AggKind::AutoDateHistogram(_) => "auto_date_histogram",
            AggKind::Range(range) if range.date_zone.is_some() => "date_range",
            AggKind::Range(range) if range.geo.is_some() => "geo_distance",
            AggKind::Range(_) => "range",
            AggKind::IpRange(_) => "ip_range",
            AggKind::Filter(_) => "filter",
            AggKind::Filters(_) => "filters",
            AggKind::Missing(_) => "missing",
            AggKind::Global => "global",
            AggKind::Nested(_) => "nested",
            AggKind::ReverseNested(_) => "reverse_nested",
            AggKind::Sampler(sampler) if sampler.diversify.is_some() => "diversified_sampler",
            AggKind::Sampler(_) => "sampler",
            AggKind::Composite(_) => "composite",
            AggKind::GeoGrid(grid) => match grid.cells {
                GeoCells::Geohash { .. } => "geohash_grid",
                GeoCells::Geotile { .. } => "geotile_grid",
            },
            AggKind::GeoBounds { .. } => "geo_bounds",
            AggKind::GeoCentroid { .. } => "geo_centroid",
            AggKind::Pipeline(pipeline) => pipeline.kind.type_name(),
        }
    }

    fn is_multi_bucket(&self) -> bool {
        matches!(
            self,
            AggKind::Terms(_)
                | AggKind::MultiTerms(_)
                | AggKind::RareTerms(_)
                | AggKind::SignificantTerms(_)
                | AggKind::Histogram(_)
                | AggKind::DateHistogram(_)
                | AggKind::AutoDateHistogram(_)
                | AggKind::Range(_)
                | AggKind::IpRange(_)
                | AggKind::Filters(_)
                | AggKind::Composite(_)
                | AggKind::GeoGrid(_)
        )
    }
}

/// The memory one request may hold while it aggregates: a circuit breaker. Reservations are
/// never returned before the request ends, so the figure is a high-water mark.
#[derive(Debug)]
pub struct MemoryBudget {
    used: AtomicUsize,
    limit: usize,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> MemoryBudget {
        MemoryBudget {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` for the aggregation `name`, or trips the breaker.
    pub(crate) fn reserve(&self, bytes: usize, name: &str) -> Result<()> {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if used > self.limit {
            return Err(SearchError::CircuitBreaking {
                reason: format!(
                    "[request] Data too large, data for [<agg [{name}]>] would be [{used}/{}], which is larger than the limit of [{}/{}]",
                    human_bytes(used),
                    self.limit,
                    human_bytes(self.limit)
                ),
                bytes_wanted: used as u64,
                bytes_limit: self.limit as u64,
            });
        }
        Ok(())
    }
}

fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["b", "kb", "mb", "gb"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let name = UNITS.get(unit).copied().unwrap_or("b");
    if unit == 0 {
        format!("{bytes}{name}")
    } else {
        format!("{value:.1}{name}")
    }
}

/// Limits of one aggregation request.
#[derive(Debug, Clone, Copy)]
pub struct AggregationLimits {
    pub max_buckets: usize,
    pub memory_bytes_max: usize,
}

impl Default for AggregationLimits {
    fn default() -> Self {
        AggregationLimits {
            max_buckets: MAX_BUCKETS_DEFAULT,
            memory_bytes_max: REQUEST_MEMORY_BYTES_MAX,
        }
    }
}

/// Checks what can be checked before anything runs: depth, where `global` and pipelines may
/// stand, and that every ordering path names a sub-aggregation.
pub fn validate(aggs: &[Aggregation]) -> Result<()> {
    validate_level(aggs, 1, None)
}

fn validate_level(aggs: &[Aggregation], depth: usize, parent: Option<&AggKind>) -> Result<()> {
    if depth > AGGREGATION_DEPTH_MAX {
        return Err(SearchError::illegal(format!(
            "aggregations are nested deeper than [{AGGREGATION_DEPTH_MAX}] levels"
        )));
    }
    for agg in aggs {
        match &agg.kind {
            AggKind::Global if depth > 1 => {
                return Err(SearchError::AggregationInitialization {
                    reason: format!(
                        "Aggregation [{}] of type [global] must be a top level aggregation",
                        agg.name
                    ),
                });
            }
            AggKind::Sampler(_) if depth > 1 => {
                return Err(SearchError::illegal(format!(
                    "aggregation [{}] of type [{}] must be a top level aggregation in Sluice",
                    agg.name,
                    agg.kind.type_name()
                )));
            }
            AggKind::Pipeline(pipeline) => {
                pipeline::validate(agg, pipeline, aggs, parent)?;
            }
            AggKind::Terms(terms) => check_order_paths(agg, &terms.order)?,
            AggKind::MultiTerms(terms) => check_order_paths(agg, &terms.order)?,
            AggKind::Histogram(histogram) => check_order_paths(agg, &histogram.order)?,
            AggKind::DateHistogram(histogram) => check_order_paths(agg, &histogram.order)?,
            _ => {}
        }
        let is_metric = matches!(
            agg.kind,
            AggKind::Avg(_)
                | AggKind::Sum(_)
                | AggKind::Min(_)
                | AggKind::Max(_)
                | AggKind::ValueCount(_)
                | AggKind::Stats(_)
                | AggKind::ExtendedStats { .. }
                | AggKind::Cardinality { .. }
                | AggKind::Percentiles { .. }
                | AggKind::PercentileRanks { .. }
                | AggKind::MedianAbsoluteDeviation { .. }
                | AggKind::WeightedAvg { .. }
                | AggKind::TopHits(_)
                | AggKind::TopMetrics(_)
                | AggKind::Pipeline(_)
        );
        if is_metric && !agg.subs.is_empty() {
            return Err(SearchError::AggregationInitialization {
                reason: format!(
                    "Aggregator [{}] of type [{}] cannot accept sub-aggregations",
                    agg.name,
                    agg.kind.type_name()
                ),
            });
        }
        validate_level(&agg.subs, depth + 1, Some(&agg.kind))?;
    }
    Ok(())
}

fn check_order_paths(agg: &Aggregation, order: &[BucketOrder]) -> Result<()> {
    for entry in order {
        if let BucketOrder::Path { aggs, .. } = entry {
            let mut level = &agg.subs;
            for name in aggs {
                let Some(found) = level.iter().find(|a| &a.name == name) else {
                    return Err(SearchError::AggregationExecution {
                        reason: format!(
                            "Invalid aggregator order path [{}]. The provided aggregation [{name}] either does not exist, or is a pipeline aggregation and cannot be used to sort the buckets.",
                            aggs.join(">")
                        ),
                    });
                };
                level = &found.subs;
            }
        }
    }
    Ok(())
}

/// Runs `aggs` over the documents of each index that match its query (one query per index, so
/// that alias filters can scope each) and merges the results.
pub fn aggregate(
    targets: &[(Arc<Index>, Query)],
    aggs: &[Aggregation],
    limits: AggregationLimits,
) -> Result<Vec<AggResult>> {
    validate(aggs)?;
    let budget = MemoryBudget::new(limits.memory_bytes_max);
    let mut shards = Vec::with_capacity(targets.len());
    for (index, query) in targets {
        shards.push(index.aggregate_partials(query, aggs, &budget)?);
    }
    reduce::reduce(aggs, shards, limits)
}

pub(crate) use collect::collect_index;
pub(crate) use partial::IndexPartials;
