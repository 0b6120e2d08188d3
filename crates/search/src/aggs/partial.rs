//! Partial results: what one segment or index knows of an aggregation, in a form that merges
//! exactly with the partials of other segments and indices.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::format::ValueFormat;
use super::hll::Cardinality;
use super::result::TopHit;
use super::tdigest::TDigest;
use super::{AggKind, Aggregation, AutoDateHistogram, Direction, SortSpec};

/// A bucket key inside one aggregation: every key of one field has the same variant.
#[derive(Debug, Clone)]
pub(crate) enum Key {
    Long(i64),
    Double(f64),
    Str(String),
    /// A `multi_terms` key: one key per source, compared in turn.
    Tuple(Vec<Key>),
}

impl Key {
    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Key::Long(v) => Some(*v as f64),
            Key::Double(v) => Some(*v),
            Key::Str(_) | Key::Tuple(_) => None,
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Key::Long(_) | Key::Double(_) => 0,
            Key::Str(_) => 1,
            Key::Tuple(_) => 2,
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        match (self, other) {
            (Key::Long(a), Key::Long(b)) => a.cmp(b),
            (Key::Str(a), Key::Str(b)) => a.cmp(b),
            (Key::Tuple(a), Key::Tuple(b)) => a.cmp(b),
            (Key::Long(_) | Key::Double(_), Key::Long(_) | Key::Double(_)) => {
                let (a, b) = (self.as_f64().unwrap_or(0.0), other.as_f64().unwrap_or(0.0));
                a.total_cmp(&b)
            }
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            // Equal numbers hash alike whatever their variant.
            Key::Long(v) => (*v as f64).to_bits().hash(state),
            Key::Double(v) => (if *v == 0.0 { 0.0 } else { *v }).to_bits().hash(state),
            Key::Str(s) => s.hash(state),
            Key::Tuple(parts) => parts.hash(state),
        }
    }
}

/// A value of a sort of `top_hits` or `top_metrics`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SortValue {
    Missing,
    Number(f64),
    Str(String),
}

/// Compares two documents' sort values; missing values sort last in either direction.
pub(crate) fn compare_sort(a: &[SortValue], b: &[SortValue], sort: &[SortSpec]) -> Ordering {
    for (i, spec) in sort.iter().enumerate() {
        let direction = match spec {
            SortSpec::Score(d) | SortSpec::Field { direction: d, .. } => *d,
        };
        let ordering = match (a.get(i), b.get(i)) {
            (Some(SortValue::Missing), Some(SortValue::Missing)) => Ordering::Equal,
            (Some(SortValue::Missing), _) => return Ordering::Greater,
            (_, Some(SortValue::Missing)) => return Ordering::Less,
            (Some(SortValue::Number(x)), Some(SortValue::Number(y))) => x.total_cmp(y),
            (Some(SortValue::Str(x)), Some(SortValue::Str(y))) => x.cmp(y),
            (Some(SortValue::Number(_)), Some(SortValue::Str(_))) => Ordering::Less,
            (Some(SortValue::Str(_)), Some(SortValue::Number(_))) => Ordering::Greater,
            _ => Ordering::Equal,
        };
        let ordering = if direction == Direction::Desc {
            ordering.reverse()
        } else {
            ordering
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// Count, sum, extremes and sum of squares, with Kahan-compensated sums as Elasticsearch's.
#[derive(Debug, Clone)]
pub(crate) struct StatsAcc {
    pub count: u64,
    sum: f64,
    sum_compensation: f64,
    squares: f64,
    squares_compensation: f64,
    pub min: f64,
    pub max: f64,
    pub format: ValueFormat,
}

/// Adds `term` of each of `values` into a compensated sum: four compensated sums run side by
/// side in registers (so that the additions do not wait on each other), each as precise as
/// one, and are then added in.
fn add_compensated(
    sum: &mut f64,
    compensation: &mut f64,
    values: &[f64],
    term: impl Fn(f64) -> f64,
) {
    let mut sums = [0.0f64; 4];
    let mut compensations = [0.0f64; 4];
    let (quads, rest) = values.as_chunks::<4>();
    for quad in quads {
        for lane in 0..4 {
            kahan_add(&mut sums[lane], &mut compensations[lane], term(quad[lane]));
        }
    }
    for &value in rest {
        kahan_add(&mut sums[0], &mut compensations[0], term(value));
    }
    for lane in 0..4 {
        kahan_add(sum, compensation, sums[lane]);
        kahan_add(sum, compensation, -compensations[lane]);
    }
}

fn kahan_add(sum: &mut f64, compensation: &mut f64, value: f64) {
    if !value.is_finite() {
        *sum += value;
        return;
    }
    let corrected = value - *compensation;
    let next = *sum + corrected;
    *compensation = (next - *sum) - corrected;
    *sum = next;
}

impl StatsAcc {
    pub(crate) fn new(format: ValueFormat) -> StatsAcc {
        StatsAcc {
            count: 0,
            sum: 0.0,
            sum_compensation: 0.0,
            squares: 0.0,
            squares_compensation: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            format,
        }
    }

    #[inline]
    pub(crate) fn add(&mut self, value: f64) {
        self.count += 1;
        kahan_add(&mut self.sum, &mut self.sum_compensation, value);
        kahan_add(
            &mut self.squares,
            &mut self.squares_compensation,
            value * value,
        );
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// [`Self::add`] for each of `values`, the sum of squares only `with_squares` (the
    /// single-value metrics do not read it), the minimum and maximum only `with_extremes`
    /// (avg and sum do not read them).
    pub(crate) fn add_values(&mut self, values: &[f64], with_squares: bool, with_extremes: bool) {
        add_compensated(&mut self.sum, &mut self.sum_compensation, values, |v| v);
        if with_squares {
            add_compensated(
                &mut self.squares,
                &mut self.squares_compensation,
                values,
                |v| v * v,
            );
        }
        self.count += values.len() as u64;
        if with_extremes {
            self.min = values.iter().copied().fold(self.min, f64::min);
            self.max = values.iter().copied().fold(self.max, f64::max);
        }
    }

    pub(crate) fn sum(&self) -> f64 {
        self.sum
    }

    pub(crate) fn sum_of_squares(&self) -> f64 {
        self.squares
    }

    fn merge(&mut self, other: &StatsAcc) {
        self.count += other.count;
        kahan_add(&mut self.sum, &mut self.sum_compensation, other.sum);
        kahan_add(
            &mut self.squares,
            &mut self.squares_compensation,
            other.squares,
        );
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if self.format == ValueFormat::Raw {
            self.format = other.format.clone();
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct BucketAcc {
    pub doc_count: u64,
    /// Terms: the upper bound of this bucket's count error, from indices that cut it.
    pub error: i64,
    pub subs: Vec<Partial>,
}

/// Maps keyed by integers (term ordinals, numbers, packed composite keys) and bucket keys hash
/// them with FxHash (tantivy's own hasher, already in the tree): a multiply and a rotate per word
/// instead of SipHash's rounds. Keys come from the index's columns, and every map is bounded by
/// the request's memory budget, so a poor spread costs time, never memory.
pub(crate) type FastMap<K, V> = HashMap<K, V, rustc_hash::FxBuildHasher>;

/// The buckets of `terms`, `histogram`, `date_histogram`, `range` (keyed by range index) and
/// `filters` (keyed by filter index).
#[derive(Debug, Clone)]
pub(crate) struct BucketsAcc {
    pub buckets: FastMap<Key, BucketAcc>,
    pub format: ValueFormat,
    /// Multi terms: the format of each part of the keys.
    pub part_formats: Vec<ValueFormat>,
    /// Terms: documents of buckets cut at the index level.
    pub other_doc_count: u64,
    /// Terms: the sum of the indices' count errors (-1: unknown).
    pub error: i64,
}

impl BucketsAcc {
    pub(crate) fn new(format: ValueFormat) -> BucketsAcc {
        BucketsAcc {
            buckets: FastMap::default(),
            format,
            part_formats: Vec::new(),
            other_doc_count: 0,
            error: 0,
        }
    }
}

/// The buckets of an `auto_date_histogram` at the rounding it has chosen so far.
#[derive(Debug, Clone)]
pub(crate) struct AutoDateAcc {
    /// Index into `AUTO_DATE_ROUNDINGS`.
    pub level: usize,
    pub buckets: BucketsAcc,
}

impl AutoDateAcc {
    /// Re-keys the buckets by the coarser rounding at `level`, merging those that meet.
    pub(crate) fn coarsen(&mut self, level: usize, spec: &AutoDateHistogram, subs: &[Aggregation]) {
        if level <= self.level {
            return;
        }
        self.level = level;
        let Some(rounding) = spec.rounding(level) else {
            return;
        };
        let old = std::mem::take(&mut self.buckets.buckets);
        for (key, bucket) in old {
            let key = match key {
                Key::Long(v) => Key::Long(rounding.round(v)),
                other => other,
            };
            match self.buckets.buckets.get_mut(&key) {
                Some(existing) => merge_bucket(existing, bucket, subs),
                None => {
                    self.buckets.buckets.insert(key, bucket);
                }
            }
        }
    }

    /// The span of the keys, in milliseconds.
    pub(crate) fn span(&self) -> i64 {
        let keys = self.buckets.buckets.keys().filter_map(|k| match k {
            Key::Long(v) => Some(*v),
            _ => None,
        });
        match (keys.clone().min(), keys.max()) {
            (Some(min), Some(max)) => max.saturating_sub(min),
            _ => 0,
        }
    }
}

/// The superset counts of one index for a `significant_terms`: shared by every segment's and
/// bucket's partial of that index, summed once per index when partials merge.
#[derive(Debug)]
pub(crate) struct Background {
    pub size: u64,
    pub counts: HashMap<Key, u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct SignificantAcc {
    pub subset: BucketsAcc,
    pub subset_size: u64,
    pub backgrounds: Vec<std::sync::Arc<Background>>,
}

#[derive(Debug, Clone)]
pub(crate) struct CompositeAcc {
    pub buckets: FastMap<Vec<Option<Key>>, BucketAcc>,
    pub formats: Vec<ValueFormat>,
}

#[derive(Debug, Clone)]
pub(crate) struct TopHitsAcc {
    pub total: u64,
    pub max_score: Option<f32>,
    pub hits: Vec<(Vec<SortValue>, TopHit)>,
}

#[derive(Debug, Clone)]
pub(crate) struct TopMetricsAcc {
    pub rows: Vec<(SortValue, Vec<Option<f64>>)>,
    pub formats: Vec<ValueFormat>,
    pub sort_format: ValueFormat,
}

#[derive(Debug, Clone)]
pub(crate) enum Partial {
    Stats(StatsAcc),
    Cardinality(Cardinality),
    Digest(TDigest, ValueFormat),
    Weighted {
        sum: f64,
        weight: f64,
    },
    TopHits(TopHitsAcc),
    TopMetrics(TopMetricsAcc),
    Buckets(BucketsAcc),
    AutoDate(AutoDateAcc),
    Significant(SignificantAcc),
    Composite(CompositeAcc),
    Single {
        doc_count: u64,
        subs: Vec<Partial>,
    },
    GeoBounds(crate::geo::BoundsAcc),
    /// Sums of latitudes and longitudes, and the number of points.
    GeoCentroid {
        lat: f64,
        lon: f64,
        count: u64,
    },
    Nothing,
}

impl Partial {
    /// The partial of an aggregation over no documents.
    pub(crate) fn empty(agg: &Aggregation) -> Partial {
        match &agg.kind {
            AggKind::Avg(_)
            | AggKind::Sum(_)
            | AggKind::Min(_)
            | AggKind::Max(_)
            | AggKind::ValueCount(_)
            | AggKind::Stats(_)
            | AggKind::ExtendedStats { .. } => Partial::Stats(StatsAcc::new(ValueFormat::Raw)),
            AggKind::Cardinality {
                precision_threshold,
                ..
            } => Partial::Cardinality(Cardinality::new(*precision_threshold)),
            AggKind::Percentiles { compression, .. }
            | AggKind::PercentileRanks { compression, .. }
            | AggKind::MedianAbsoluteDeviation { compression, .. } => {
                Partial::Digest(TDigest::new(*compression), ValueFormat::Raw)
            }
            AggKind::WeightedAvg { .. } => Partial::Weighted {
                sum: 0.0,
                weight: 0.0,
            },
            AggKind::TopHits(_) => Partial::TopHits(TopHitsAcc {
                total: 0,
                max_score: None,
                hits: Vec::new(),
            }),
            AggKind::TopMetrics(top) => Partial::TopMetrics(TopMetricsAcc {
                rows: Vec::new(),
                formats: vec![ValueFormat::Raw; top.metrics.len()],
                sort_format: ValueFormat::Raw,
            }),
            AggKind::Terms(_)
            | AggKind::MultiTerms(_)
            | AggKind::RareTerms(_)
            | AggKind::Histogram(_)
            | AggKind::DateHistogram(_)
            | AggKind::Range(_)
            | AggKind::GeoGrid(_)
            | AggKind::IpRange(_)
            | AggKind::Filters(_) => Partial::Buckets(BucketsAcc::new(ValueFormat::Raw)),
            AggKind::GeoBounds { .. } => Partial::GeoBounds(crate::geo::BoundsAcc::default()),
            AggKind::GeoCentroid { .. } => Partial::GeoCentroid {
                lat: 0.0,
                lon: 0.0,
                count: 0,
            },
            AggKind::AutoDateHistogram(spec) => Partial::AutoDate(AutoDateAcc {
                level: spec.minimum,
                buckets: BucketsAcc::new(ValueFormat::Raw),
            }),
            AggKind::SignificantTerms(_) => Partial::Significant(SignificantAcc {
                subset: BucketsAcc::new(ValueFormat::Raw),
                subset_size: 0,
                backgrounds: Vec::new(),
            }),
            AggKind::Composite(composite) => Partial::Composite(CompositeAcc {
                buckets: FastMap::default(),
                formats: composite
                    .sources
                    .iter()
                    .map(|source| match source.kind {
                        super::CompositeSourceKind::Geotile { .. } => ValueFormat::Geotile,
                        _ => ValueFormat::Raw,
                    })
                    .collect(),
            }),
            AggKind::Filter(_)
            | AggKind::Missing(_)
            | AggKind::Global
            | AggKind::Nested(_)
            | AggKind::ReverseNested(_)
            | AggKind::Sampler(_) => Partial::Single {
                doc_count: 0,
                subs: empty_all(&agg.subs),
            },
            AggKind::Pipeline(_) => Partial::Nothing,
        }
    }

    /// Merges `other`, a partial of the same aggregation from another segment or index.
    pub(crate) fn merge(&mut self, other: Partial, agg: &Aggregation) {
        match (self, other) {
            (Partial::Stats(a), Partial::Stats(b)) => a.merge(&b),
            (Partial::Cardinality(a), Partial::Cardinality(b)) => a.merge(&b),
            (Partial::Digest(a, format), Partial::Digest(b, other_format)) => {
                a.merge(&b);
                if *format == ValueFormat::Raw {
                    *format = other_format;
                }
            }
            (
                Partial::Weighted { sum, weight },
                Partial::Weighted {
                    sum: other_sum,
                    weight: other_weight,
                },
            ) => {
                *sum += other_sum;
                *weight += other_weight;
            }
            (Partial::TopHits(a), Partial::TopHits(b)) => {
                a.total += b.total;
                a.max_score = match (a.max_score, b.max_score) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
                a.hits.extend(b.hits);
                if let AggKind::TopHits(spec) = &agg.kind {
                    let sort = effective_sort(&spec.sort);
                    a.hits.sort_by(|x, y| compare_sort(&x.0, &y.0, &sort));
                    a.hits.truncate(spec.from + spec.size);
                }
            }
            (Partial::TopMetrics(a), Partial::TopMetrics(b)) => {
                a.rows.extend(b.rows);
                if let AggKind::TopMetrics(spec) = &agg.kind {
                    let sort = [spec.sort.clone()];
                    a.rows.sort_by(|x, y| {
                        compare_sort(
                            std::slice::from_ref(&x.0),
                            std::slice::from_ref(&y.0),
                            &sort,
                        )
                    });
                    a.rows.truncate(spec.size);
                }
                for (mine, theirs) in a.formats.iter_mut().zip(b.formats) {
                    if *mine == ValueFormat::Raw {
                        *mine = theirs;
                    }
                }
                if a.sort_format == ValueFormat::Raw {
                    a.sort_format = b.sort_format;
                }
            }
            (Partial::Buckets(a), Partial::Buckets(b)) => merge_buckets(a, b, agg),
            (Partial::GeoBounds(a), Partial::GeoBounds(b)) => a.merge(&b),
            (
                Partial::GeoCentroid { lat, lon, count },
                Partial::GeoCentroid {
                    lat: other_lat,
                    lon: other_lon,
                    count: other_count,
                },
            ) => {
                *lat += other_lat;
                *lon += other_lon;
                *count += other_count;
            }
            (Partial::AutoDate(a), Partial::AutoDate(mut b)) => {
                if let AggKind::AutoDateHistogram(spec) = &agg.kind {
                    // Both at the coarser of their roundings, then coarser still while there
                    // are too many buckets, as Elasticsearch's reduce does.
                    let level = a.level.max(b.level);
                    a.coarsen(level, spec, &agg.subs);
                    b.coarsen(level, spec, &agg.subs);
                    merge_buckets(&mut a.buckets, b.buckets, agg);
                    let mut level = a.level;
                    while !spec.fits(level, a.buckets.buckets.len(), 0)
                        && level + 1 < super::AUTO_DATE_ROUNDINGS.len()
                    {
                        level += 1;
                        a.coarsen(level, spec, &agg.subs);
                    }
                }
            }
            (Partial::Significant(a), Partial::Significant(b)) => {
                merge_buckets(&mut a.subset, b.subset, agg);
                a.subset_size += b.subset_size;
                for background in b.backgrounds {
                    if !a
                        .backgrounds
                        .iter()
                        .any(|mine| std::sync::Arc::ptr_eq(mine, &background))
                    {
                        a.backgrounds.push(background);
                    }
                }
            }
            (Partial::Composite(a), Partial::Composite(b)) => {
                for (key, bucket) in b.buckets {
                    match a.buckets.get_mut(&key) {
                        Some(existing) => merge_bucket(existing, bucket, &agg.subs),
                        None => {
                            a.buckets.insert(key, bucket);
                        }
                    }
                }
                for (mine, theirs) in a.formats.iter_mut().zip(b.formats) {
                    if *mine == ValueFormat::Raw {
                        *mine = theirs;
                    }
                }
                if let AggKind::Composite(spec) = &agg.kind {
                    super::collect::prune_composite(a, spec);
                }
            }
            (
                Partial::Single { doc_count, subs },
                Partial::Single {
                    doc_count: other_count,
                    subs: other_subs,
                },
            ) => {
                *doc_count += other_count;
                merge_all(subs, other_subs, &agg.subs);
            }
            (this @ Partial::Nothing, other) => *this = other,
            _ => {}
        }
    }
}

pub(crate) fn empty_all(aggs: &[Aggregation]) -> Vec<Partial> {
    aggs.iter().map(Partial::empty).collect()
}

pub(crate) fn merge_all(mine: &mut [Partial], theirs: Vec<Partial>, aggs: &[Aggregation]) {
    for ((partial, other), agg) in mine.iter_mut().zip(theirs).zip(aggs) {
        partial.merge(other, agg);
    }
}

pub(crate) fn merge_bucket(mine: &mut BucketAcc, theirs: BucketAcc, subs: &[Aggregation]) {
    mine.doc_count += theirs.doc_count;
    mine.error += theirs.error;
    merge_all(&mut mine.subs, theirs.subs, subs);
}

fn merge_buckets(a: &mut BucketsAcc, b: BucketsAcc, agg: &Aggregation) {
    let is_terms = matches!(agg.kind, AggKind::Terms(_) | AggKind::MultiTerms(_));
    if is_terms {
        // A bucket one side cut may have up to that side's error more documents.
        if b.error != 0 {
            for (key, bucket) in a.buckets.iter_mut() {
                if !b.buckets.contains_key(key) {
                    bucket.error = combine_error(bucket.error, b.error);
                }
            }
        }
    }
    let a_error = a.error;
    for (key, mut bucket) in b.buckets {
        match a.buckets.get_mut(&key) {
            Some(existing) => merge_bucket(existing, bucket, &agg.subs),
            None => {
                if is_terms {
                    bucket.error = combine_error(bucket.error, a_error);
                }
                a.buckets.insert(key, bucket);
            }
        }
    }
    a.other_doc_count += b.other_doc_count;
    a.error = combine_error(a.error, b.error);
    if a.format == ValueFormat::Raw {
        a.format = b.format;
    }
    if a.part_formats.is_empty() {
        a.part_formats = b.part_formats;
    } else {
        for (mine, theirs) in a.part_formats.iter_mut().zip(b.part_formats) {
            if *mine == ValueFormat::Raw {
                *mine = theirs;
            }
        }
    }
}

fn combine_error(a: i64, b: i64) -> i64 {
    if a < 0 || b < 0 { -1 } else { a + b }
}

/// `top_hits` sorts by score, descending, unless told otherwise.
pub(crate) fn effective_sort(sort: &[SortSpec]) -> Vec<SortSpec> {
    if sort.is_empty() {
        vec![SortSpec::Score(Direction::Desc)]
    } else {
        sort.to_vec()
    }
}

/// Everything one index knows of a request's aggregations.
#[derive(Debug)]
pub(crate) struct IndexPartials {
    pub partials: Vec<Partial>,
}

#[cfg(test)]
mod tests {
    use super::StatsAcc;
    use crate::aggs::format::ValueFormat;

    #[test]
    fn values_added_a_slice_at_a_time_sum_as_one_by_one() {
        // Magnitudes far apart: after the first value, an uncompensated sum would lose every
        // one of the small values (each below half the spacing of doubles near 1e16).
        let values: Vec<f64> = std::iter::once(1e16)
            .chain((0..1003).map(|k| 0.25 + (k % 5) as f64 / 8.0))
            .collect();
        let mut one_by_one = StatsAcc::new(ValueFormat::Raw);
        for &value in &values {
            one_by_one.add(value);
        }
        let mut sliced = StatsAcc::new(ValueFormat::Raw);
        for chunk in values.chunks(128) {
            sliced.add_values(chunk, true, true);
        }
        let small: f64 = values[1..].iter().sum();
        let exact = 1e16 + small;
        let plain: f64 = values.iter().sum();
        assert!((plain - exact).abs() > 100.0, "the data needs compensation");
        assert_eq!(sliced.count, one_by_one.count);
        assert_eq!((sliced.min, sliced.max), (one_by_one.min, one_by_one.max));
        assert!(
            (sliced.sum() - exact).abs() <= 4.0,
            "{} vs {exact}",
            sliced.sum()
        );
        assert!((one_by_one.sum() - exact).abs() <= 4.0);
        let relative = (sliced.sum_of_squares() - one_by_one.sum_of_squares()).abs()
            / one_by_one.sum_of_squares();
        assert!(relative < 1e-12);
        let mut no_squares = StatsAcc::new(ValueFormat::Raw);
        no_squares.add_values(&values, false, false);
        assert_eq!(no_squares.sum_of_squares(), 0.0);
        assert!((no_squares.sum() - exact).abs() <= 4.0);
    }
}
