//! A `terms` aggregation in one pass, when its field holds at most one term per document in a
//! small dictionary and its sub-aggregations are all metrics that [`StatsAcc`] serves (`avg`,
//! `sum`, `min`, `max`, `stats`, `extended_stats`) on fields of at most one value per document:
//! the dashboards' "average price per ticker".
//!
//! The general path splits the documents into a list per bucket and then reads each metric's
//! values for a bucket's list, scattered over the column. Here a batch of documents' ordinals
//! and the same batch of each metric's values are read side by side (a `match_all`'s
//! consecutive documents as ranges of the columns), and each value goes into a small buffer of
//! its bucket, added in [`VALUE_BATCH`] at a time. A bucket so adds the same values in the same
//! batches as the general path, so its sums are those of the general path to the bit.

use tantivy::DocId;
use tantivy::columnar::Column;

use super::{FastMap, Segment, numeric_source, stats_metric};
use crate::aggs::Aggregation;
use crate::aggs::format::ValueFormat;
use crate::aggs::partial::{Partial, StatsAcc};
use crate::aggs::values::{SegmentColumn, VALUE_BATCH, first_values, value_format};
use crate::error::Result;

/// Buckets (terms, and one for documents without a term) the pass serves: each has a buffer of
/// [`VALUE_BATCH`] values (1 KiB) per metric. Larger dictionaries take the general path.
const SLOTS_MAX: usize = 256;

/// A bucket's key and document count, with the partials of its sub-aggregations.
pub(super) type Counted = (u64, Vec<Partial>);

/// The buckets of the terms aggregation `agg` over `docs` of `segment`, keyed by term ordinal
/// (and `missing_key` for documents without a term, when `missing` is given), with the
/// partials of its metrics; `None` when the aggregation's shape needs the general path.
pub(super) fn collect(
    agg: &Aggregation,
    segment: &Segment<'_>,
    docs: &[DocId],
    column: &SegmentColumn,
    missing_key: Option<u64>,
) -> Result<Option<FastMap<u64, Counted>>> {
    let (SegmentColumn::Str(strings), Some(ords)) = (column, column.single_valued_ords()) else {
        return Ok(None);
    };
    let slots = strings.num_terms() + 1;
    if slots > SLOTS_MAX || agg.subs.is_empty() {
        return Ok(None);
    }
    let mut metrics = Vec::with_capacity(agg.subs.len());
    for sub in &agg.subs {
        match Metric::open(sub, segment, slots) {
            Some(metric) => metrics.push(metric),
            None => return Ok(None),
        }
    }
    segment.index.budget.reserve(
        metrics.len() * slots * std::mem::size_of::<Buffer>(),
        &agg.name,
    )?;
    let missing_slot = missing_key.map(|_| slots - 1);
    let mut counts = vec![0u64; slots];
    // The bucket of each document of a batch; `usize::MAX` for none.
    let mut batch_slots = [usize::MAX; VALUE_BATCH];
    for chunk in docs.chunks(VALUE_BATCH) {
        let mut in_batch = batch_slots.iter_mut();
        first_values(ords, chunk, |_, ord| {
            let slot = match ord {
                Some(ord) => ord as usize,
                None => missing_slot.unwrap_or(usize::MAX),
            };
            if let Some(count) = counts.get_mut(slot) {
                *count += 1;
            }
            if let Some(entry) = in_batch.next() {
                *entry = slot;
            }
        });
        let chunk_slots = &batch_slots[..chunk.len()];
        for metric in &mut metrics {
            metric.add(chunk, chunk_slots);
        }
    }
    let mut stats: Vec<_> = metrics.into_iter().map(Metric::finish).collect();
    let mut groups = FastMap::default();
    for (slot, &count) in counts.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let key = match missing_key {
            Some(key) if Some(slot) == missing_slot => key,
            _ => slot as u64,
        };
        let partials = stats
            .iter_mut()
            .map(|(by_slot, format)| {
                let mut acc = by_slot
                    .get_mut(slot)
                    .map(|acc| std::mem::replace(acc, StatsAcc::new(ValueFormat::Raw)))
                    .unwrap_or_else(|| StatsAcc::new(ValueFormat::Raw));
                acc.format = format.clone();
                Partial::Stats(acc)
            })
            .collect();
        groups.insert(key, (count, partials));
    }
    Ok(Some(groups))
}

type Buffer = [f64; VALUE_BATCH];

/// The values of a metric's field: a column of at most one value per document, or none.
enum Values<'a> {
    I64(&'a Column<i64>),
    F64(&'a Column<f64>),
    Empty,
}

/// `None` for a column of several values per document (or of booleans).
fn values_of(column: &SegmentColumn) -> Option<Values<'_>> {
    match column {
        SegmentColumn::Empty => Some(Values::Empty),
        column => column
            .single_valued_i64()
            .map(Values::I64)
            .or_else(|| column.single_valued_f64().map(Values::F64)),
    }
}

/// One metric sub-aggregation: its column, and per bucket its accumulator and the values not
/// yet added to it.
struct Metric {
    column: SegmentColumn,
    missing: Option<f64>,
    format: ValueFormat,
    buckets: Buckets,
}

struct Buckets {
    with_squares: bool,
    with_extremes: bool,
    stats: Vec<StatsAcc>,
    buffers: Vec<Buffer>,
    lens: Vec<usize>,
}

impl Metric {
    /// `None` for any aggregation or field the pass does not serve, and for any error, which the
    /// general path then reports as it always does.
    fn open(sub: &Aggregation, segment: &Segment<'_>, slots: usize) -> Option<Metric> {
        let (source, with_squares, with_extremes) = stats_metric(sub)?;
        if !sub.subs.is_empty() {
            return None;
        }
        let (kind, column, missing) = numeric_source(segment, source, sub).ok()?;
        let format = value_format(&kind, source.format.as_deref()).ok()?;
        let metric = Metric {
            column,
            missing,
            format,
            buckets: Buckets {
                with_squares,
                with_extremes,
                stats: vec![StatsAcc::new(ValueFormat::Raw); slots],
                buffers: vec![[0.0; VALUE_BATCH]; slots],
                lens: vec![0; slots],
            },
        };
        values_of(&metric.column)?;
        Some(metric)
    }

    /// Adds the values of the documents `chunk`, each into the bucket of the same position in
    /// `slots`.
    fn add(&mut self, chunk: &[DocId], slots: &[usize]) {
        let missing = self.missing;
        let Some(values) = values_of(&self.column) else {
            return;
        };
        let buckets = &mut self.buckets;
        let mut slots = slots.iter();
        let mut put = |value: Option<f64>| {
            if let (Some(&slot), Some(value)) = (slots.next(), value.or(missing)) {
                buckets.push(slot, value);
            }
        };
        match values {
            Values::I64(column) => first_values(column, chunk, |_, v| put(v.map(|v| v as f64))),
            Values::F64(column) => first_values(column, chunk, |_, v| put(v)),
            Values::Empty => chunk.iter().for_each(|_| put(None)),
        }
    }

    /// The accumulators by bucket, every value added, and their format.
    fn finish(mut self) -> (Vec<StatsAcc>, ValueFormat) {
        let buckets = &mut self.buckets;
        for ((stats, buffer), len) in buckets
            .stats
            .iter_mut()
            .zip(&buckets.buffers)
            .zip(&buckets.lens)
        {
            if let Some(values) = buffer.get(..*len) {
                stats.add_values(values, buckets.with_squares, buckets.with_extremes);
            }
        }
        (std::mem::take(&mut buckets.stats), self.format)
    }
}

impl Buckets {
    #[inline]
    fn push(&mut self, slot: usize, value: f64) {
        let (Some(buffer), Some(len), Some(stats)) = (
            self.buffers.get_mut(slot),
            self.lens.get_mut(slot),
            self.stats.get_mut(slot),
        ) else {
            return;
        };
        if let Some(entry) = buffer.get_mut(*len) {
            *entry = value;
            *len += 1;
        }
        if *len == VALUE_BATCH {
            stats.add_values(buffer, self.with_squares, self.with_extremes);
            *len = 0;
        }
    }
}
