//! Execution in one index: the matching documents of each segment, grouped per bucket, read
//! from columns into partial results; then the index-level cut of `terms` to `shard_size`.
//!
//! Documents travel as sorted lists of segment document ids: a bucket aggregation splits its
//! list into one list per bucket (documents keep their order) and runs its sub-aggregations on
//! each. Every list and bucket is reserved in the request's [`MemoryBudget`] first.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;

use serde_json::Value;
use tantivy::query::{EnableScoring, Weight};
use tantivy::schema::{IndexRecordOption, Term, Value as _};
use tantivy::{DocAddress, DocId, DocSet, Searcher, SegmentReader, TERMINATED, TantivyDocument};

use super::format::ValueFormat;
use super::hll::{Cardinality, hash_bytes, mix64};
use super::partial::{
    AutoDateAcc, Background, BucketAcc, BucketsAcc, CompositeAcc, FastMap, IndexPartials, Key,
    Partial, SignificantAcc, SortValue, StatsAcc, TopHitsAcc, TopMetricsAcc, compare_sort,
    effective_sort, empty_all, merge_all,
};
use super::reduce::{compare_buckets, shard_size};
use super::result::TopHit;
use super::tdigest::TDigest;
use super::values::{
    FieldKind, SegmentColumn, VALUE_BATCH, first_values, missing_number, resolve_field,
    value_format,
};
use super::{
    AggKind, Aggregation, BucketOrder, Composite, CompositeSourceKind, Direction, GeoCells,
    MemoryBudget, MultiTerms, SortSpec, TermsCut, ValueSource,
};
use crate::error::{Result, SearchError};
use crate::geo::GeoPoint;
use crate::geo_query::open_geo_column;
use crate::mapping::{FieldType, Mappings};
use crate::nested;
use crate::query::Query;
use crate::schema::SchemaFields;

mod fused;

/// Bytes reserved per bucket beside its documents: map entry, key, counts, sub-partials.
const BUCKET_BYTES: usize = 128;
/// Bytes reserved per document id held in a bucket's list.
const DOC_BYTES: usize = std::mem::size_of::<DocId>();

/// The documents of one key: how many, and which when sub-aggregations need them.
type DocGroup = (u64, Vec<DocId>);

/// Turns a query of Sluice's tree into tantivy's, under the index's mapping.
pub(crate) type Compile<'a> = dyn Fn(&Query) -> Result<Box<dyn tantivy::query::Query>> + 'a;

/// What every segment of one index shares while aggregating.
pub(crate) struct IndexContext<'a> {
    pub searcher: &'a Searcher,
    pub fields: &'a SchemaFields,
    pub mappings: &'a Mappings,
    /// The reader's field-level security: `top_hits` sources lose what it hides.
    pub restriction: Option<&'a dyn crate::field_security::FieldFilter>,
    pub index_name: &'a str,
    pub compile: &'a Compile<'a>,
    /// Every live document (for `global`).
    pub all: &'a dyn tantivy::query::Query,
    pub budget: &'a MemoryBudget,
    /// Weights of filter queries, compiled once per request and index.
    weights: RefCell<HashMap<*const Query, Arc<dyn Weight>>>,
    /// The documents each top-level sampler chose, per segment, sorted.
    samples: RefCell<HashMap<*const Aggregation, Vec<Vec<DocId>>>>,
    /// The superset counts of each `significant_terms`, read once per request and index.
    backgrounds: RefCell<HashMap<*const Aggregation, Arc<Background>>>,
}

struct Segment<'a> {
    index: &'a IndexContext<'a>,
    reader: &'a SegmentReader,
    ord: u32,
    /// Scores by document id, when some `top_hits` sorts by score.
    scores: Option<Vec<f32>>,
    /// The levels (`nested.rs`) that `nested` and `reverse_nested` aggregations moved the
    /// documents to, innermost last; empty at the root.
    levels: RefCell<Vec<Option<String>>>,
}

impl Segment<'_> {
    /// The level of the documents being aggregated: a nested path, or `None` for the root.
    fn level(&self) -> Option<String> {
        self.levels.borrow().last().cloned().flatten()
    }

    /// Runs `agg`'s sub-aggregations as one bucket over `docs`, documents of `level`.
    fn single_at(&self, agg: &Aggregation, level: Option<&str>, docs: &[DocId]) -> Result<Partial> {
        self.levels.borrow_mut().push(level.map(str::to_string));
        let result = single(agg, self, docs);
        self.levels.borrow_mut().pop();
        result
    }
}

fn tree_needs_scores(aggs: &[Aggregation]) -> bool {
    aggs.iter().any(|agg| {
        let here = match &agg.kind {
            AggKind::TopHits(top) => effective_sort(&top.sort)
                .iter()
                .any(|s| matches!(s, SortSpec::Score(_))),
            AggKind::TopMetrics(top) => matches!(top.sort, SortSpec::Score(_)),
            AggKind::Sampler(_) => true,
            _ => false,
        };
        here || tree_needs_scores(&agg.subs)
    })
}

/// Runs `aggs` over the documents of `main` in one index.
#[allow(clippy::too_many_arguments)]
pub(crate) fn collect_index(
    searcher: &Searcher,
    fields: &SchemaFields,
    mappings: &Mappings,
    restriction: Option<&dyn crate::field_security::FieldFilter>,
    index_name: &str,
    main: &dyn tantivy::query::Query,
    all: &dyn tantivy::query::Query,
    compile: &Compile<'_>,
    aggs: &[Aggregation],
    budget: &MemoryBudget,
) -> Result<IndexPartials> {
    let context = IndexContext {
        searcher,
        fields,
        mappings,
        restriction,
        index_name,
        compile,
        all,
        budget,
        weights: RefCell::new(HashMap::new()),
        samples: RefCell::new(HashMap::new()),
        backgrounds: RefCell::new(HashMap::new()),
    };
    let needs_scores = tree_needs_scores(aggs);
    let scoring = if needs_scores {
        EnableScoring::enabled_from_searcher(searcher)
    } else {
        EnableScoring::disabled_from_searcher(searcher)
    };
    let weight = main.weight(scoring)?;
    let mut matched = Vec::with_capacity(searcher.segment_readers().len());
    for reader in searcher.segment_readers() {
        let (docs, scores) = matching_docs(weight.as_ref(), reader, needs_scores)?;
        budget.reserve(
            docs.len() * DOC_BYTES + scores.as_ref().map_or(0, |s| s.len() * 4),
            aggs.first().map_or("", |a| a.name.as_str()),
        )?;
        matched.push((docs, scores));
    }
    for agg in aggs {
        if let AggKind::Sampler(sampler) = &agg.kind {
            let chosen = sample(&context, agg, sampler, &matched)?;
            context
                .samples
                .borrow_mut()
                .insert(agg as *const Aggregation, chosen);
        }
    }
    let mut partials = empty_all(aggs);
    for (ord, (reader, (docs, scores))) in
        searcher.segment_readers().iter().zip(matched).enumerate()
    {
        let segment = Segment {
            index: &context,
            reader,
            ord: ord as u32,
            scores,
            levels: RefCell::new(Vec::new()),
        };
        let found = collect_level(aggs, &segment, &docs)?;
        merge_all(&mut partials, found, aggs);
    }
    prune_for_shard(aggs, &mut partials);
    Ok(IndexPartials { partials })
}

/// The documents a top-level sampler keeps in each segment: the best `shard_size` by score
/// (ties in index order), at most `max_docs_per_value` per value when diversified.
fn sample(
    context: &IndexContext<'_>,
    agg: &Aggregation,
    sampler: &super::Sampler,
    matched: &[(Vec<DocId>, Option<Vec<f32>>)],
) -> Result<Vec<Vec<DocId>>> {
    let total: usize = matched.iter().map(|(docs, _)| docs.len()).sum();
    context
        .budget
        .reserve(total * std::mem::size_of::<(f32, u32, DocId)>(), &agg.name)?;
    let mut candidates: Vec<(f32, u32, DocId)> = Vec::with_capacity(total);
    for (ord, (docs, scores)) in matched.iter().enumerate() {
        for &doc in docs {
            let score = scores
                .as_ref()
                .and_then(|s| s.get(doc as usize).copied())
                .unwrap_or(1.0);
            candidates.push((score, ord as u32, doc));
        }
    }
    let best_first = |a: &(f32, u32, DocId), b: &(f32, u32, DocId)| {
        b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2))
    };
    let mut chosen: Vec<Vec<DocId>> = vec![Vec::new(); matched.len()];
    match &sampler.diversify {
        None => {
            if candidates.len() > sampler.shard_size {
                candidates.select_nth_unstable_by(sampler.shard_size, best_first);
                candidates.truncate(sampler.shard_size);
            }
            for (_, ord, doc) in candidates {
                if let Some(list) = chosen.get_mut(ord as usize) {
                    list.push(doc);
                }
            }
        }
        Some((source, max_per_value)) => {
            candidates.sort_unstable_by(best_first);
            let readers = context.searcher.segment_readers();
            let mut columns = Vec::with_capacity(readers.len());
            for (ord, reader) in readers.iter().enumerate() {
                let segment = Segment {
                    index: context,
                    reader,
                    ord: ord as u32,
                    scores: None,
                    levels: RefCell::new(Vec::new()),
                };
                columns.push(field_of(&segment, source, agg)?);
            }
            let mut caches: Vec<HashMap<u64, String>> = vec![HashMap::new(); readers.len()];
            let mut per_value: HashMap<Option<Key>, usize> = HashMap::new();
            let mut keys = Vec::new();
            let mut taken = 0;
            for (_, ord, doc) in candidates {
                if taken >= sampler.shard_size {
                    break;
                }
                let (Some((kind, column)), Some(cache)) =
                    (columns.get(ord as usize), caches.get_mut(ord as usize))
                else {
                    continue;
                };
                multi_terms_keys(kind, column, None, doc, cache, &mut keys)?;
                if keys.len() > 1 {
                    return Err(SearchError::AggregationExecution {
                        reason: "Sample diversifying key must be a single valued-field".into(),
                    });
                }
                let seen = per_value.entry(keys.pop()).or_insert(0);
                if *seen < *max_per_value {
                    *seen += 1;
                    taken += 1;
                    if let Some(list) = chosen.get_mut(ord as usize) {
                        list.push(doc);
                    }
                }
            }
        }
    }
    for list in &mut chosen {
        list.sort_unstable();
    }
    Ok(chosen)
}

/// The superset of a `significant_terms` in this index: how many live documents (matching its
/// `background_filter`, if any) hold each value of the field, counted once per document.
fn background(
    context: &IndexContext<'_>,
    agg: &Aggregation,
    significant: &super::SignificantTerms,
) -> Result<Arc<Background>> {
    let key = agg as *const Aggregation;
    if let Some(found) = context.backgrounds.borrow().get(&key) {
        return Ok(found.clone());
    }
    let weight = match &significant.background_filter {
        Some(query) => (context.compile)(query)?,
        None => Box::new(tantivy::query::AllQuery) as Box<dyn tantivy::query::Query>,
    }
    .weight(EnableScoring::disabled_from_searcher(context.searcher))?;
    let mut size = 0u64;
    let mut counts: HashMap<Key, u64> = HashMap::new();
    for (ord, reader) in context.searcher.segment_readers().iter().enumerate() {
        let (docs, _) = matching_docs(weight.as_ref(), reader, false)?;
        size += docs.len() as u64;
        let segment = Segment {
            index: context,
            reader,
            ord: ord as u32,
            scores: None,
            levels: RefCell::new(Vec::new()),
        };
        let (kind, column) = field_of(&segment, &significant.source, agg)?;
        let mut keys = Vec::new();
        match &column {
            SegmentColumn::Str(strings) => {
                let mut per_ord = vec![0u64; strings.num_terms()];
                for &doc in &docs {
                    keys.clear();
                    column.for_each_ord(doc, |o| keys.push(o));
                    keys.sort_unstable();
                    keys.dedup();
                    for &o in &keys {
                        if let Some(count) = per_ord.get_mut(o as usize) {
                            *count += 1;
                        }
                    }
                }
                let ords: Vec<u64> = (0..per_ord.len() as u64)
                    .filter(|&o| per_ord.get(o as usize).is_some_and(|c| *c > 0))
                    .collect();
                context
                    .budget
                    .reserve(ords.len() * BUCKET_BYTES, &agg.name)?;
                for (o, term) in ords.iter().zip(column.terms(&ords)?) {
                    let count = per_ord.get(*o as usize).copied().unwrap_or(0);
                    *counts.entry(Key::Str(term)).or_default() += count;
                }
            }
            _ => {
                let double = kind == FieldKind::Double;
                let groups = group_docs(&docs, false, |doc, keys: &mut Vec<u64>| {
                    if double {
                        column.for_each_number(doc, |v| keys.push(v.to_bits()));
                    } else {
                        column.for_each_i64(doc, |v| keys.push(v as u64));
                    }
                });
                context
                    .budget
                    .reserve(groups.len() * BUCKET_BYTES, &agg.name)?;
                for (bits, (count, _)) in groups {
                    let key = if double {
                        Key::Double(f64::from_bits(bits))
                    } else {
                        Key::Long(bits as i64)
                    };
                    *counts.entry(key).or_default() += count;
                }
            }
        }
    }
    let background = Arc::new(Background { size, counts });
    context
        .backgrounds
        .borrow_mut()
        .insert(key, background.clone());
    Ok(background)
}

fn matching_docs(
    weight: &dyn Weight,
    reader: &SegmentReader,
    with_scores: bool,
) -> Result<(Vec<DocId>, Option<Vec<f32>>)> {
    let mut scorer = weight.scorer(reader, 1.0)?;
    let alive = reader.alive_bitset();
    // The scorer's estimate (exact for `match_all` and a term), so that a million documents
    // are not copied over and over as the list doubles.
    let mut docs = Vec::with_capacity(scorer.size_hint().min(reader.max_doc()) as usize);
    if !with_scores {
        // Without scores the documents come a block at a time (`match_all` fills a block
        // without stepping through it).
        let mut block = [0 as DocId; tantivy::COLLECT_BLOCK_BUFFER_LEN];
        loop {
            let filled = scorer.fill_buffer(&mut block);
            if filled == 0 {
                break;
            }
            let block = &block[..filled];
            match alive {
                None => docs.extend_from_slice(block),
                Some(bits) => docs.extend(block.iter().filter(|&&doc| bits.is_alive(doc))),
            }
        }
        return Ok((docs, None));
    }
    let mut scores = vec![0f32; reader.max_doc() as usize];
    let mut doc = scorer.doc();
    while doc != TERMINATED {
        if alive.is_none_or(|bits| bits.is_alive(doc)) {
            docs.push(doc);
            if let Some(slot) = scores.get_mut(doc as usize) {
                *slot = scorer.score();
            }
        }
        doc = scorer.advance();
    }
    Ok((docs, Some(scores)))
}

fn collect_level(
    aggs: &[Aggregation],
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Vec<Partial>> {
    let mut partials = Vec::with_capacity(aggs.len());
    for agg in aggs {
        partials.push(collect_one(agg, segment, docs)?);
    }
    Ok(partials)
}

/// The packed points of a `geo_point` field in this segment; `None` when the index does not
/// map the field (it reads as empty) or the segment has no points.
fn geo_column_of(
    segment: &Segment<'_>,
    field: &str,
    agg: &Aggregation,
) -> Result<Option<tantivy::columnar::Column<i64>>> {
    match segment.index.mappings.field(field) {
        None => Ok(None),
        Some(mapping) if mapping.field_type == FieldType::GeoPoint => {
            Ok(open_geo_column(segment.reader, field)?)
        }
        Some(mapping) => Err(SearchError::illegal(format!(
            "Field [{field}] of type [{}] is not supported for aggregation [{}]",
            mapping.field_type.name(),
            agg.kind.type_name()
        ))),
    }
}

fn field_of<'a>(
    segment: &Segment<'a>,
    source: &ValueSource,
    agg: &Aggregation,
) -> Result<(FieldKind, SegmentColumn)> {
    let kind = resolve_field(
        segment.index.mappings,
        segment.index.index_name,
        &source.field,
        agg.kind.type_name(),
    )?;
    let column = SegmentColumn::open(segment.reader, &kind, &source.field)?;
    Ok((kind, column))
}

/// Calls `f` with the numeric values of the documents a slice at a time, with `missing` for
/// documents without one.
fn number_batches(
    segment: &Segment<'_>,
    source: &ValueSource,
    agg: &Aggregation,
    docs: &[DocId],
    f: impl FnMut(&[f64]),
) -> Result<FieldKind> {
    let (kind, column, missing) = numeric_source(segment, source, agg)?;
    column.number_batches(docs, missing, f);
    Ok(kind)
}

/// The column of a numeric metric's field and its `missing` value; keywords are refused.
fn numeric_source(
    segment: &Segment<'_>,
    source: &ValueSource,
    agg: &Aggregation,
) -> Result<(FieldKind, SegmentColumn, Option<f64>)> {
    let (kind, column) = field_of(segment, source, agg)?;
    if matches!(kind, FieldKind::Keyword | FieldKind::Ip) {
        return Err(SearchError::illegal(format!(
            "Field [{}] of type [{}] is not supported for aggregation [{}]",
            source.field,
            kind_name(&kind),
            agg.kind.type_name()
        )));
    }
    let missing = match &source.missing {
        Some(value) => Some(missing_number(
            if kind == FieldKind::Unmapped {
                &FieldKind::Double
            } else {
                &kind
            },
            value,
        )?),
        None => None,
    };
    Ok((kind, column, missing))
}

/// The accumulator of a metric that [`StatsAcc`] serves, with what it reads: the sum of
/// squares for `stats` and `extended_stats`, the extremes for all but `avg` and `sum` (whose
/// folds are then a chain per value); `None` for other aggregations.
fn stats_metric(agg: &Aggregation) -> Option<(&ValueSource, bool, bool)> {
    let (source, with_squares, with_extremes) = match &agg.kind {
        AggKind::Avg(source) | AggKind::Sum(source) => (source, false, false),
        AggKind::Min(source) | AggKind::Max(source) => (source, false, true),
        AggKind::Stats(source) | AggKind::ExtendedStats { source, .. } => (source, true, true),
        _ => return None,
    };
    Some((source, with_squares, with_extremes))
}

fn collect_one(agg: &Aggregation, segment: &Segment<'_>, docs: &[DocId]) -> Result<Partial> {
    Ok(match &agg.kind {
        AggKind::Avg(source)
        | AggKind::Sum(source)
        | AggKind::Min(source)
        | AggKind::Max(source)
        | AggKind::Stats(source)
        | AggKind::ExtendedStats { source, .. } => {
            let mut stats = StatsAcc::new(ValueFormat::Raw);
            let (with_squares, with_extremes) = stats_metric(agg)
                .map_or((true, true), |(_, squares, extremes)| (squares, extremes));
            let kind = number_batches(segment, source, agg, docs, |values| {
                stats.add_values(values, with_squares, with_extremes)
            })?;
            stats.format = value_format(&kind, source.format.as_deref())?;
            Partial::Stats(stats)
        }
        AggKind::ValueCount(source) => {
            let (kind, column) = field_of(segment, source, agg)?;
            let mut stats = StatsAcc::new(ValueFormat::Raw);
            for &doc in docs {
                let mut count = 0u64;
                match &column {
                    SegmentColumn::Str(_) => {
                        column.for_each_ord(doc, |_| count += 1);
                    }
                    _ => {
                        column.for_each_number(doc, |_| count += 1);
                    }
                }
                if count == 0 && source.missing.is_some() {
                    count = 1;
                }
                for _ in 0..count {
                    stats.add(0.0);
                }
            }
            let _ = kind;
            Partial::Stats(stats)
        }
        AggKind::Cardinality {
            source,
            precision_threshold,
        } => {
            let mut sketch = Cardinality::new(*precision_threshold);
            collect_hashes(segment, source, agg, docs, &mut sketch)?;
            segment
                .index
                .budget
                .reserve(sketch.memory_bytes(), &agg.name)?;
            Partial::Cardinality(sketch)
        }
        AggKind::Percentiles {
            source,
            compression,
            ..
        }
        | AggKind::PercentileRanks {
            source,
            compression,
            ..
        }
        | AggKind::MedianAbsoluteDeviation {
            source,
            compression,
        } => {
            let mut digest = TDigest::new(*compression);
            let kind = number_batches(segment, source, agg, docs, |values| {
                digest.add_values(values)
            })?;
            digest.compress();
            segment
                .index
                .budget
                .reserve(digest.memory_bytes(), &agg.name)?;
            Partial::Digest(digest, value_format(&kind, source.format.as_deref())?)
        }
        AggKind::WeightedAvg { value, weight, .. } => {
            let (_, values) = field_of(segment, value, agg)?;
            let (_, weights) = field_of(segment, weight, agg)?;
            let value_missing = value
                .missing
                .as_ref()
                .map(|m| missing_number(&FieldKind::Double, m))
                .transpose()?;
            let weight_missing = weight
                .missing
                .as_ref()
                .map(|m| missing_number(&FieldKind::Double, m))
                .transpose()?;
            let (mut sum, mut total_weight) = (0.0, 0.0);
            for &doc in docs {
                let mut doc_weights = 0;
                let mut w = 0.0;
                weights.for_each_number(doc, |x| {
                    doc_weights += 1;
                    w = x;
                });
                if doc_weights > 1 {
                    return Err(SearchError::AggregationExecution {
                        reason: "Encountered more than one weight for a single document. Use a script to combine multiple weights-per-doc into a single value.".into(),
                    });
                }
                if doc_weights == 0 {
                    match weight_missing {
                        Some(m) => w = m,
                        None => continue,
                    }
                }
                let any = values.for_each_number(doc, |x| {
                    sum += x * w;
                    total_weight += w;
                });
                if !any && let Some(m) = value_missing {
                    sum += m * w;
                    total_weight += w;
                }
            }
            Partial::Weighted {
                sum,
                weight: total_weight,
            }
        }
        AggKind::TopHits(top) => collect_top_hits(agg, top, segment, docs)?,
        AggKind::TopMetrics(top) => collect_top_metrics(agg, top, segment, docs)?,
        AggKind::Terms(terms) => collect_terms(agg, terms, segment, docs)?,
        AggKind::MultiTerms(terms) => collect_multi_terms(agg, terms, segment, docs)?,
        AggKind::SignificantTerms(significant) => {
            let background = background(segment.index, agg, significant)?;
            let subset = match collect_terms(agg, &significant.as_terms(), segment, docs)? {
                Partial::Buckets(acc) => acc,
                _ => BucketsAcc::new(ValueFormat::Raw),
            };
            Partial::Significant(SignificantAcc {
                subset,
                subset_size: docs.len() as u64,
                backgrounds: vec![background],
            })
        }
        AggKind::RareTerms(rare) => {
            let (kind, _) = field_of(segment, &rare.source, agg)?;
            if kind == FieldKind::Double {
                return Err(SearchError::AggregationExecution {
                    reason: "RareTerms aggregation does not support floating point fields.".into(),
                });
            }
            collect_terms(agg, &rare.as_terms(), segment, docs)?
        }
        AggKind::Histogram(histogram) => {
            let (kind, column) = field_of(segment, &histogram.source, agg)?;
            let missing = missing_of(&kind, &histogram.source)?;
            let key = |v: f64| histogram_key(v, histogram.interval, histogram.offset).to_bits();
            let keep_docs = !agg.subs.is_empty();
            let missing_key = missing.map(key);
            let groups = if let Some(values) = column.single_valued_f64() {
                group_single(docs, keep_docs, values, missing_key, key)
            } else if let Some(values) = column.single_valued_i64() {
                group_single(docs, keep_docs, values, missing_key, |v| key(v as f64))
            } else {
                group_docs(docs, keep_docs, |doc, keys: &mut Vec<u64>| {
                    let any = column.for_each_number(doc, |v| keys.push(key(v)));
                    if !any && let Some(key) = missing_key {
                        keys.push(key);
                    }
                })
            };
            let format = value_format(&kind, histogram.source.format.as_deref())?;
            Partial::Buckets(buckets_from_groups(agg, segment, groups, format, |bits| {
                Ok(Some(Key::Double(f64::from_bits(bits))))
            })?)
        }
        AggKind::DateHistogram(histogram) => {
            let (kind, column) = field_of(segment, &histogram.source, agg)?;
            if !matches!(
                kind,
                FieldKind::Date(_) | FieldKind::Integer | FieldKind::Unmapped | FieldKind::Double
            ) {
                return Err(SearchError::illegal(format!(
                    "Field [{}] of type [{}] is not supported for aggregation [date_histogram]",
                    histogram.source.field,
                    kind_name(&kind)
                )));
            }
            let missing = missing_of(&kind, &histogram.source)?.map(|m| m as i64);
            let rounding = &histogram.rounding;
            let prepared = match column.min_max_i64() {
                Some((min, max)) => rounding.prepare(min, max, docs.len() / 4),
                None => rounding.prepare(1, 0, 0),
            };
            let keep_docs = !agg.subs.is_empty();
            let groups = match column.single_valued_i64() {
                Some(values) => group_single(
                    docs,
                    keep_docs,
                    values,
                    missing.map(|m| rounding.round(m)),
                    |v| prepared.round(v),
                ),
                None => group_docs(docs, keep_docs, |doc, keys: &mut Vec<i64>| {
                    let any = column.for_each_i64(doc, |v| keys.push(prepared.round(v)));
                    if !any && let Some(m) = missing {
                        keys.push(rounding.round(m));
                    }
                }),
            };
            let format = value_format(&date_kind(kind), histogram.source.format.as_deref())?;
            Partial::Buckets(buckets_from_groups(agg, segment, groups, format, |key| {
                Ok(Some(Key::Long(key)))
            })?)
        }
        AggKind::AutoDateHistogram(spec) => collect_auto_date(agg, spec, segment, docs)?,
        AggKind::Range(range) if range.geo.is_some() => {
            let origin = range.geo.unwrap_or(super::GeoOrigin {
                origin: GeoPoint::new(0.0, 0.0),
                unit: crate::geo::DistanceUnit::METERS,
                distance_type: crate::geo::DistanceType::Arc,
            });
            let column = geo_column_of(segment, &range.source.field, agg)?;
            let ranges = &range.ranges;
            let mut groups =
                group_docs(docs, !agg.subs.is_empty(), |doc, keys: &mut Vec<usize>| {
                    let Some(column) = &column else {
                        return;
                    };
                    for packed in column.values_for_doc(doc) {
                        let distance = origin.unit.from_meters(
                            origin
                                .distance_type
                                .meters(origin.origin, GeoPoint::decode(packed)),
                        );
                        for (i, spec) in ranges.iter().enumerate() {
                            if spec.from.is_none_or(|from| distance >= from)
                                && spec.to.is_none_or(|to| distance < to)
                            {
                                keys.push(i);
                            }
                        }
                    }
                });
            for i in 0..ranges.len() {
                groups.entry(i).or_insert_with(|| (0, Vec::new()));
            }
            Partial::Buckets(buckets_from_groups(
                agg,
                segment,
                groups,
                ValueFormat::Raw,
                |i| Ok(Some(Key::Long(i as i64))),
            )?)
        }
        AggKind::GeoGrid(grid) => {
            let column = geo_column_of(segment, &grid.field, agg)?;
            let groups = group_docs(docs, !agg.subs.is_empty(), |doc, keys: &mut Vec<u64>| {
                let Some(column) = &column else {
                    return;
                };
                for packed in column.values_for_doc(doc) {
                    let point = GeoPoint::decode(packed);
                    if grid.bounds.is_some_and(|bounds| !bounds.contains(point)) {
                        continue;
                    }
                    keys.push(match grid.cells {
                        GeoCells::Geohash { precision } => crate::geo::geohash_id(point, precision),
                        GeoCells::Geotile { zoom } => {
                            let (_, x, y) = crate::geo::geotile(point, zoom);
                            (u64::from(x) << 32) | u64::from(y)
                        }
                    });
                }
            });
            Partial::Buckets(buckets_from_groups(
                agg,
                segment,
                groups,
                ValueFormat::Raw,
                |cell| Ok(Some(Key::Long(cell as i64))),
            )?)
        }
        AggKind::GeoBounds { field, .. } => {
            let mut acc = crate::geo::BoundsAcc::default();
            if let Some(column) = geo_column_of(segment, field, agg)? {
                for &doc in docs {
                    for packed in column.values_for_doc(doc) {
                        acc.add(GeoPoint::decode(packed));
                    }
                }
            }
            Partial::GeoBounds(acc)
        }
        AggKind::GeoCentroid { field } => {
            let (mut lat, mut lon, mut count) = (0.0, 0.0, 0u64);
            if let Some(column) = geo_column_of(segment, field, agg)? {
                for &doc in docs {
                    for packed in column.values_for_doc(doc) {
                        let point = GeoPoint::decode(packed);
                        lat += point.lat;
                        lon += point.lon;
                        count += 1;
                    }
                }
            }
            Partial::GeoCentroid { lat, lon, count }
        }
        AggKind::Range(range) => {
            let (kind, column) = field_of(segment, &range.source, agg)?;
            let missing = missing_of(&kind, &range.source)?;
            let ranges = &range.ranges;
            let mut groups =
                group_docs(docs, !agg.subs.is_empty(), |doc, keys: &mut Vec<usize>| {
                    let mut check = |v: f64| {
                        for (i, spec) in ranges.iter().enumerate() {
                            if spec.from.is_none_or(|from| v >= from)
                                && spec.to.is_none_or(|to| v < to)
                            {
                                keys.push(i);
                            }
                        }
                    };
                    let any = column.for_each_number(doc, &mut check);
                    if !any && let Some(m) = missing {
                        check(m);
                    }
                });
            for i in 0..ranges.len() {
                groups.entry(i).or_insert_with(|| (0, Vec::new()));
            }
            let format = if range.date_zone.is_some() {
                value_format(&date_kind(kind), range.source.format.as_deref())?
            } else {
                value_format(&kind, range.source.format.as_deref())?
            };
            Partial::Buckets(buckets_from_groups(agg, segment, groups, format, |i| {
                Ok(Some(Key::Long(i as i64)))
            })?)
        }
        AggKind::IpRange(range) => collect_ip_range(agg, range, segment, docs)?,
        AggKind::Filter(query) => {
            let matched = filter_docs(segment, query, docs)?;
            single(agg, segment, &matched)?
        }
        AggKind::Filters(filters) => {
            let mut acc = BucketsAcc::new(ValueFormat::Raw);
            let mut in_any = filters
                .other_bucket_key
                .as_ref()
                .map(|_| vec![false; docs.len()]);
            for (i, (_, query)) in filters.filters.iter().enumerate() {
                let matched = filter_docs(segment, query, docs)?;
                if let Some(flags) = in_any.as_mut() {
                    let mut j = 0;
                    for (k, doc) in docs.iter().enumerate() {
                        while matched.get(j).is_some_and(|m| m < doc) {
                            j += 1;
                        }
                        if matched.get(j) == Some(doc)
                            && let Some(flag) = flags.get_mut(k)
                        {
                            *flag = true;
                        }
                    }
                }
                acc.buckets
                    .insert(Key::Long(i as i64), bucket(agg, segment, &matched)?);
            }
            if let Some(flags) = in_any {
                let other: Vec<DocId> = docs
                    .iter()
                    .zip(flags)
                    .filter(|(_, matched)| !matched)
                    .map(|(doc, _)| *doc)
                    .collect();
                acc.buckets.insert(
                    Key::Long(filters.filters.len() as i64),
                    bucket(agg, segment, &other)?,
                );
            }
            Partial::Buckets(acc)
        }
        AggKind::Missing(source) => {
            let (_, column) = field_of(segment, source, agg)?;
            let without: Vec<DocId> = docs
                .iter()
                .copied()
                .filter(|&doc| !column.has_value(doc))
                .collect();
            single(agg, segment, &without)?
        }
        AggKind::Sampler(_) => {
            // Chosen for the whole index before the segments run (samplers are top level).
            let sampled = segment
                .index
                .samples
                .borrow()
                .get(&(agg as *const Aggregation))
                .and_then(|per_segment| per_segment.get(segment.ord as usize))
                .cloned()
                .unwrap_or_default();
            single(agg, segment, &sampled)?
        }
        AggKind::Global => {
            let weight = segment
                .index
                .all
                .weight(EnableScoring::disabled_from_searcher(
                    segment.index.searcher,
                ))?;
            let (all, _) = matching_docs(weight.as_ref(), segment.reader, false)?;
            segment
                .index
                .budget
                .reserve(all.len() * DOC_BYTES, &agg.name)?;
            single(agg, segment, &all)?
        }
        AggKind::Composite(composite) => collect_composite(agg, composite, segment, docs)?,
        AggKind::Nested(path) => {
            let index = segment.index;
            let field = match index.mappings.field(path) {
                // An unmapped path has no nested objects, as in Elasticsearch.
                None => return single(agg, segment, &[]),
                Some(field) => field,
            };
            if field.field_type != FieldType::Nested {
                return Err(SearchError::illegal(format!(
                    "[nested] nested path [{path}] is not nested"
                )));
            }
            let Some(nested_field) = index.fields.nested else {
                return single(agg, segment, &[]);
            };
            let level = segment.level();
            let parents = nested::level_bits(segment.reader, nested_field, level.as_deref())?;
            let children = nested::level_bits(segment.reader, nested_field, Some(path))?;
            let objects = nested::children_of(docs, &parents, &children);
            index.budget.reserve(objects.len() * DOC_BYTES, &agg.name)?;
            segment.single_at(agg, Some(path), &objects)?
        }
        AggKind::ReverseNested(path) => {
            let index = segment.index;
            let Some(level) = segment.level() else {
                return Err(SearchError::illegal(format!(
                    "Reverse nested aggregation [{}] can only be used inside a [nested] aggregation",
                    agg.name
                )));
            };
            if let Some(path) = path {
                let is_nested = index
                    .mappings
                    .field(path)
                    .is_some_and(|field| field.field_type == FieldType::Nested);
                let encloses = level
                    .strip_prefix(path.as_str())
                    .is_some_and(|rest| rest.starts_with('.'));
                if !is_nested || !encloses {
                    return Err(SearchError::illegal(format!(
                        "[reverse_nested] nested path [{path}] is not a parent of the current nested path [{level}]"
                    )));
                }
            }
            let Some(nested_field) = index.fields.nested else {
                return single(agg, segment, &[]);
            };
            let parents = nested::level_bits(segment.reader, nested_field, path.as_deref())?;
            let found = nested::parents_of(docs, &parents);
            index.budget.reserve(found.len() * DOC_BYTES, &agg.name)?;
            segment.single_at(agg, path.as_deref(), &found)?
        }
        AggKind::Pipeline(_) => Partial::Nothing,
    })
}

/// The documents of one segment at the finest rounding (from `minimum` on) whose buckets fit
/// the target in number and span, as Elasticsearch's shard-level collector settles.
fn collect_auto_date(
    agg: &Aggregation,
    spec: &super::AutoDateHistogram,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let (kind, column) = field_of(segment, &spec.source, agg)?;
    if !matches!(
        kind,
        FieldKind::Date(_) | FieldKind::Integer | FieldKind::Unmapped | FieldKind::Double
    ) {
        return Err(SearchError::illegal(format!(
            "Field [{}] of type [{}] is not supported for aggregation [auto_date_histogram]",
            spec.source.field,
            kind_name(&kind)
        )));
    }
    let missing = missing_of(&kind, &spec.source)?.map(|m| m as i64);
    let (mut min, mut max) = (i64::MAX, i64::MIN);
    for &doc in docs {
        let any = column.for_each_i64(doc, |v| {
            min = min.min(v);
            max = max.max(v);
        });
        if !any && let Some(m) = missing {
            min = min.min(m);
            max = max.max(m);
        }
    }
    let format = value_format(&date_kind(kind), spec.source.format.as_deref())?;
    let mut level = spec.minimum;
    while let Some(rounding) = spec.rounding(level) {
        let last = level + 1 >= super::AUTO_DATE_ROUNDINGS.len();
        let span = if min <= max {
            rounding.round(max).saturating_sub(rounding.round(min))
        } else {
            0
        };
        if !last && !spec.fits(level, 0, span) {
            level += 1;
            continue;
        }
        let groups = group_docs(docs, !agg.subs.is_empty(), |doc, keys: &mut Vec<i64>| {
            let any = column.for_each_i64(doc, |v| keys.push(rounding.round(v)));
            if !any && let Some(m) = missing {
                keys.push(rounding.round(m));
            }
        });
        if !last && !spec.fits(level, groups.len(), span) {
            level += 1;
            continue;
        }
        let buckets =
            buckets_from_groups(agg, segment, groups, format, |key| Ok(Some(Key::Long(key))))?;
        return Ok(Partial::AutoDate(AutoDateAcc { level, buckets }));
    }
    Ok(Partial::empty(agg))
}

/// `ip_range`: each document counts once in every range one of its addresses falls in. The
/// ranges are compared with each distinct term of the segment once (encoded addresses order
/// as addresses).
fn collect_ip_range(
    agg: &Aggregation,
    range: &super::IpRangeAgg,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let (kind, column) = field_of(segment, &range.source, agg)?;
    if !matches!(kind, FieldKind::Ip | FieldKind::Unmapped) {
        return Err(SearchError::illegal(format!(
            "Field [{}] of type [{}] is not supported for aggregation [ip_range]",
            range.source.field,
            kind_name(&kind)
        )));
    }
    let missing = range
        .source
        .missing
        .as_ref()
        .map(|m| ip_key(&range.source.field, m))
        .transpose()?;
    let ranges = &range.ranges;
    let in_range = |address: &str, keys: &mut Vec<usize>| {
        for (i, spec) in ranges.iter().enumerate() {
            if spec.from.as_deref().is_none_or(|from| address >= from)
                && spec.to.as_deref().is_none_or(|to| address < to)
            {
                keys.push(i);
            }
        }
    };
    // The ranges of each term of the segment that the documents hold, computed once.
    let mut ords = Vec::new();
    for &doc in docs {
        column.for_each_ord(doc, |ord| ords.push(ord));
    }
    ords.sort_unstable();
    ords.dedup();
    segment
        .index
        .budget
        .reserve(ords.len() * BUCKET_BYTES, &agg.name)?;
    let mut ranges_of: HashMap<u64, Vec<usize>> = HashMap::with_capacity(ords.len());
    for (ord, term) in ords.iter().zip(column.terms(&ords)?) {
        let mut keys = Vec::new();
        in_range(&term, &mut keys);
        ranges_of.insert(*ord, keys);
    }
    let mut missing_ranges = Vec::new();
    if let Some(address) = &missing {
        in_range(address, &mut missing_ranges);
    }
    let mut groups = group_docs(docs, !agg.subs.is_empty(), |doc, keys: &mut Vec<usize>| {
        let any = column.for_each_ord(doc, |ord| {
            if let Some(found) = ranges_of.get(&ord) {
                keys.extend_from_slice(found);
            }
        });
        if !any {
            keys.extend_from_slice(&missing_ranges);
        }
    });
    for i in 0..ranges.len() {
        groups.entry(i).or_insert_with(|| (0, Vec::new()));
    }
    Ok(Partial::Buckets(buckets_from_groups(
        agg,
        segment,
        groups,
        ValueFormat::Ip,
        |i| Ok(Some(Key::Long(i as i64))),
    )?))
}

fn kind_name(kind: &FieldKind) -> &'static str {
    match kind {
        FieldKind::Unmapped => "unmapped",
        FieldKind::Keyword => "keyword",
        FieldKind::Ip => "ip",
        FieldKind::Integer => "long",
        FieldKind::Double => "double",
        FieldKind::Date(_) => "date",
        FieldKind::Boolean => "boolean",
    }
}

/// A numeric field read by a date aggregation prints as a date, as in Elasticsearch.
fn date_kind(kind: FieldKind) -> FieldKind {
    match kind {
        FieldKind::Date(_) => kind,
        _ => FieldKind::Date(crate::date::DEFAULT_DATE_FORMAT.to_string()),
    }
}

fn missing_of(kind: &FieldKind, source: &ValueSource) -> Result<Option<f64>> {
    source
        .missing
        .as_ref()
        .map(|m| {
            missing_number(
                if *kind == FieldKind::Unmapped {
                    &FieldKind::Double
                } else {
                    kind
                },
                m,
            )
        })
        .transpose()
}

pub(crate) fn histogram_key(value: f64, interval: f64, offset: f64) -> f64 {
    ((value - offset) / interval).floor() * interval + offset
}

fn single(agg: &Aggregation, segment: &Segment<'_>, docs: &[DocId]) -> Result<Partial> {
    Ok(Partial::Single {
        doc_count: docs.len() as u64,
        subs: collect_level(&agg.subs, segment, docs)?,
    })
}

fn bucket(agg: &Aggregation, segment: &Segment<'_>, docs: &[DocId]) -> Result<BucketAcc> {
    segment
        .index
        .budget
        .reserve(BUCKET_BYTES + docs.len() * DOC_BYTES, &agg.name)?;
    Ok(BucketAcc {
        doc_count: docs.len() as u64,
        error: 0,
        subs: if agg.subs.is_empty() {
            Vec::new()
        } else {
            collect_level(&agg.subs, segment, docs)?
        },
    })
}

/// The documents of `docs` that `query` matches.
fn filter_docs(segment: &Segment<'_>, query: &Query, docs: &[DocId]) -> Result<Vec<DocId>> {
    let context = segment.index;
    let key = query as *const Query;
    let cached = context.weights.borrow().get(&key).cloned();
    let weight = match cached {
        Some(weight) => weight,
        None => {
            let compiled = (context.compile)(query)?;
            let weight: Arc<dyn Weight> = Arc::from(
                compiled.weight(EnableScoring::disabled_from_searcher(context.searcher))?,
            );
            context.weights.borrow_mut().insert(key, weight.clone());
            weight
        }
    };
    let scorer = weight.scorer(segment.reader, 1.0)?;
    let matched = intersect(scorer, docs);
    context
        .budget
        .reserve(matched.len() * DOC_BYTES, "filter")?;
    Ok(matched)
}

/// The documents of `docs` (sorted, distinct) that `scorer` matches. Whichever side is behind
/// leaps to the other: the scorer seeks, the list gallops, so that a filter with few hits in a
/// long list costs about its hits, and a list of every document in a range (a top-level
/// `match_all`) is not walked at all: the scorer's documents in the range are the answer.
fn intersect(mut scorer: impl DocSet, docs: &[DocId]) -> Vec<DocId> {
    let mut matched = Vec::new();
    let (Some(&first), Some(&last)) = (docs.first(), docs.last()) else {
        return matched;
    };
    if (last - first) as usize + 1 == docs.len() {
        let mut block = [0 as DocId; tantivy::COLLECT_BLOCK_BUFFER_LEN];
        if scorer.doc() < first {
            scorer.seek(first);
        }
        loop {
            let filled = scorer.fill_buffer(&mut block);
            let block = &block[..filled];
            let within = block.partition_point(|&doc| doc <= last);
            matched.extend_from_slice(&block[..within]);
            if within < block.len() || filled == 0 {
                return matched;
            }
        }
    }
    let mut at = 0;
    let mut current = scorer.doc();
    while current != TERMINATED && at < docs.len() {
        let doc = docs[at];
        if current < doc {
            current = scorer.seek(doc);
        } else if current > doc {
            at = gallop(docs, at, current);
        } else {
            matched.push(doc);
            at += 1;
            current = scorer.advance();
        }
    }
    matched
}

/// The first position at or after `from` whose document is at least `target`, in a sorted list:
/// steps of doubling length, then a binary search within the last one.
fn gallop(docs: &[DocId], from: usize, target: DocId) -> usize {
    let mut step = 1;
    let mut low = from;
    let mut high = from + step;
    while high < docs.len() && docs[high] < target {
        low = high;
        step *= 2;
        high = low + step;
    }
    let high = high.min(docs.len());
    low + docs[low..high].partition_point(|&doc| doc < target)
}

/// Groups documents by their keys (a document counts once per distinct key): each key's count,
/// and its documents when sub-aggregations need them.
fn group_docs<K: Hash + Eq + Ord + Copy>(
    docs: &[DocId],
    keep_docs: bool,
    mut keys_of: impl FnMut(DocId, &mut Vec<K>),
) -> FastMap<K, DocGroup> {
    let mut groups: FastMap<K, DocGroup> = FastMap::default();
    let mut keys = Vec::new();
    for &doc in docs {
        keys.clear();
        keys_of(doc, &mut keys);
        if keys.len() > 1 {
            keys.sort_unstable();
            keys.dedup();
        }
        for &key in &keys {
            let entry = groups.entry(key).or_insert_with(|| (0, Vec::new()));
            entry.0 += 1;
            if keep_docs {
                entry.1.push(doc);
            }
        }
    }
    groups
}

/// [`group_docs`] for a column of at most one value per document, read in batches with
/// [`first_values`]: each document's key is `key_of` its value, or `missing`. A document with
/// the key of the one before it (runs of them are what time-ordered data gives a date
/// histogram) finds its group without hashing.
fn group_single<T, K>(
    docs: &[DocId],
    keep_docs: bool,
    column: &tantivy::columnar::Column<T>,
    missing: Option<K>,
    mut key_of: impl FnMut(T) -> K,
) -> FastMap<K, DocGroup>
where
    T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static,
    K: Hash + Eq + Copy,
{
    let mut groups: Vec<(K, DocGroup)> = Vec::new();
    let mut slots: FastMap<K, usize> = FastMap::default();
    let mut last: Option<(K, usize)> = None;
    first_values(column, docs, |doc, value| {
        let Some(key) = value.map(&mut key_of).or(missing) else {
            return;
        };
        let slot = match last {
            Some((last_key, slot)) if last_key == key => slot,
            _ => {
                let slot = *slots.entry(key).or_insert_with(|| {
                    groups.push((key, (0, Vec::new())));
                    groups.len() - 1
                });
                last = Some((key, slot));
                slot
            }
        };
        if let Some((_, (count, list))) = groups.get_mut(slot) {
            *count += 1;
            if keep_docs {
                list.push(doc);
            }
        }
    });
    groups.into_iter().collect()
}

/// Term ordinals a segment's column may have for [`group_ords`] to count them in a table
/// indexed by ordinal (8 bytes a slot, 32 with document lists, freed when grouped); a column
/// with more, or with more than twice as many terms as documents to group (so that the table
/// stays within a small multiple of the document list the budget already holds), is grouped
/// in a hash map.
const DENSE_ORDS_MAX: u64 = 1 << 20;
/// Below this many terms a table is used however few the documents.
const DENSE_ORDS_SMALL: u64 = 64;

/// [`group_docs`] for the term ordinals of a string column (and `missing`, for documents
/// without one, when given): counted in a table indexed by ordinal when the dictionary is small
/// enough, without hashing.
fn group_ords(
    docs: &[DocId],
    keep_docs: bool,
    column: &SegmentColumn,
    missing: Option<u64>,
) -> FastMap<u64, DocGroup> {
    let num_terms = match column {
        SegmentColumn::Str(strings) => strings.num_terms() as u64,
        _ => 0,
    };
    let dense_max = (docs.len() as u64)
        .saturating_mul(2)
        .clamp(DENSE_ORDS_SMALL, DENSE_ORDS_MAX);
    if num_terms > dense_max {
        return group_docs(docs, keep_docs, |doc, keys: &mut Vec<u64>| {
            let any = column.for_each_ord(doc, |ord| keys.push(ord));
            if !any && let Some(missing) = missing {
                keys.push(missing);
            }
        });
    }
    // One slot per ordinal, then one for the missing value.
    let mut counts = vec![0u64; num_terms as usize + 1];
    let mut lists: Vec<Vec<DocId>> = if keep_docs {
        vec![Vec::new(); counts.len()]
    } else {
        Vec::new()
    };
    if let Some(single) = column.single_valued_ords() {
        let missing_ord = missing.is_some().then_some(num_terms);
        super::values::first_values(single, docs, |doc, ord| {
            let Some(ord) = ord.or(missing_ord) else {
                return;
            };
            if let Some(count) = counts.get_mut(ord as usize) {
                *count += 1;
            }
            if let Some(list) = lists.get_mut(ord as usize) {
                list.push(doc);
            }
        });
    } else {
        let mut ords = Vec::new();
        for &doc in docs {
            ords.clear();
            column.for_each_ord(doc, |ord| ords.push(ord));
            if ords.len() > 1 {
                ords.sort_unstable();
                ords.dedup();
            }
            if ords.is_empty() && missing.is_some() {
                ords.push(num_terms);
            }
            for &ord in &ords {
                if let Some(count) = counts.get_mut(ord as usize) {
                    *count += 1;
                }
                if let Some(list) = lists.get_mut(ord as usize) {
                    list.push(doc);
                }
            }
        }
    }
    let mut lists = lists.into_iter();
    let mut groups = FastMap::default();
    for (ord, count) in counts.into_iter().enumerate() {
        let list = lists.next().unwrap_or_default();
        if count > 0 {
            let key = if ord as u64 == num_terms {
                missing.unwrap_or(u64::MAX)
            } else {
                ord as u64
            };
            groups.insert(key, (count, list));
        }
    }
    groups
}

fn buckets_from_groups<K>(
    agg: &Aggregation,
    segment: &Segment<'_>,
    groups: FastMap<K, DocGroup>,
    format: ValueFormat,
    mut key_of: impl FnMut(K) -> Result<Option<Key>>,
) -> Result<BucketsAcc> {
    let mut acc = BucketsAcc::new(format);
    segment.index.budget.reserve(
        groups.len() * BUCKET_BYTES
            + groups
                .values()
                .map(|(_, d)| d.len() * DOC_BYTES)
                .sum::<usize>(),
        &agg.name,
    )?;
    for (raw, (count, docs)) in groups {
        let Some(key) = key_of(raw)? else {
            continue;
        };
        let subs = if agg.subs.is_empty() {
            Vec::new()
        } else {
            collect_level(&agg.subs, segment, &docs)?
        };
        acc.buckets.insert(
            key,
            BucketAcc {
                doc_count: count,
                error: 0,
                subs,
            },
        );
    }
    Ok(acc)
}

/// [`buckets_from_groups`] for buckets whose sub-aggregations were collected with them.
fn buckets_from_partials<K>(
    agg: &Aggregation,
    segment: &Segment<'_>,
    groups: FastMap<K, fused::Counted>,
    format: ValueFormat,
    mut key_of: impl FnMut(K) -> Result<Option<Key>>,
) -> Result<BucketsAcc> {
    let mut acc = BucketsAcc::new(format);
    segment
        .index
        .budget
        .reserve(groups.len() * BUCKET_BYTES, &agg.name)?;
    for (raw, (doc_count, subs)) in groups {
        if let Some(key) = key_of(raw)? {
            let bucket = BucketAcc {
                doc_count,
                error: 0,
                subs,
            };
            acc.buckets.insert(key, bucket);
        }
    }
    Ok(acc)
}

/// The encoded form of an address that a request gives for an `ip` field (`missing`, `after`).
fn ip_key(field: &str, value: &Value) -> Result<String> {
    value
        .as_str()
        .and_then(crate::ip::parse)
        .map(crate::ip::encode)
        .ok_or_else(|| {
            SearchError::illegal(format!(
                "'{value}' is not an IP string literal for [{field}]"
            ))
        })
}

/// The key a `missing` value stands for in a `terms` of a field of this kind.
fn missing_key(field: &str, kind: &FieldKind, missing: &Value) -> Result<Key> {
    Ok(match kind {
        FieldKind::Ip => Key::Str(ip_key(field, missing)?),
        FieldKind::Keyword | FieldKind::Unmapped => match missing {
            Value::String(s) => Key::Str(s.clone()),
            other => Key::Str(other.to_string()),
        },
        FieldKind::Double => Key::Double(missing_number(kind, missing)?),
        _ => Key::Long(missing_number(kind, missing)? as i64),
    })
}

fn key_text(key: &Key) -> String {
    match key {
        Key::Str(s) => s.clone(),
        Key::Long(v) => v.to_string(),
        Key::Double(v) => v.to_string(),
        Key::Tuple(parts) => parts.iter().map(key_text).collect::<Vec<_>>().join("|"),
    }
}

fn collect_terms(
    agg: &Aggregation,
    terms: &super::Terms,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let (kind, column) = field_of(segment, &terms.source, agg)?;
    let format = value_format(&kind, terms.source.format.as_deref())?;
    let missing = terms
        .source
        .missing
        .as_ref()
        .map(|m| missing_key(&terms.source.field, &kind, m))
        .transpose()?;
    let keep_docs = !agg.subs.is_empty();
    let accepted = |key: &Key| {
        // Addresses match `include`/`exclude` as they print.
        let text = match key {
            Key::Str(s) => format.print_str(s),
            other => key_text(other),
        };
        terms.include.as_ref().is_none_or(|f| f.matches(&text))
            && terms.exclude.as_ref().is_none_or(|f| !f.matches(&text))
    };
    // Keys: term ordinals for strings, numbers otherwise; `u64::MAX` is the missing bucket.
    const MISSING: u64 = u64::MAX;
    let mut acc = match &column {
        SegmentColumn::Str(_) => {
            let missing_key = missing.is_some().then_some(MISSING);
            let names_of = |keys: Vec<u64>| -> Result<HashMap<u64, String>> {
                let mut ords: Vec<u64> = keys.into_iter().filter(|&o| o != MISSING).collect();
                ords.sort_unstable();
                let names = column.terms(&ords)?;
                Ok(ords.into_iter().zip(names).collect())
            };
            let key_of = |names: &mut HashMap<u64, String>, ord: u64| {
                let key = if ord == MISSING {
                    missing.clone().unwrap_or(Key::Str(String::new()))
                } else {
                    Key::Str(names.remove(&ord).unwrap_or_default())
                };
                Ok(accepted(&key).then_some(key))
            };
            let mut acc = match fused::collect(agg, segment, docs, &column, missing_key)? {
                Some(groups) => {
                    let mut names = names_of(groups.keys().copied().collect())?;
                    buckets_from_partials(agg, segment, groups, format.clone(), |ord| {
                        key_of(&mut names, ord)
                    })?
                }
                None => {
                    let groups = group_ords(docs, keep_docs, &column, missing_key);
                    let mut names = names_of(groups.keys().copied().collect())?;
                    buckets_from_groups(agg, segment, groups, format.clone(), |ord| {
                        key_of(&mut names, ord)
                    })?
                }
            };
            if terms.min_doc_count == 0
                && let SegmentColumn::Str(strings) = &column
            {
                let total = strings.num_terms() as u64;
                segment
                    .index
                    .budget
                    .reserve(total as usize * BUCKET_BYTES, &agg.name)?;
                let every: Vec<u64> = (0..total).collect();
                for term in column.terms(&every)? {
                    let key = Key::Str(term);
                    if accepted(&key) && !acc.buckets.contains_key(&key) {
                        acc.buckets.insert(
                            key,
                            BucketAcc {
                                doc_count: 0,
                                error: 0,
                                subs: empty_all(&agg.subs),
                            },
                        );
                    }
                }
            }
            acc
        }
        SegmentColumn::Empty if matches!(missing, Some(Key::Str(_))) => {
            // No value of the field in this segment (a keyword field all its documents lack,
            // or an unmapped one): every document is in the `missing` bucket, under the same
            // key the other segments give it.
            let groups = group_docs(docs, keep_docs, |_, keys: &mut Vec<u64>| keys.push(0));
            buckets_from_groups(agg, segment, groups, format.clone(), |_| {
                Ok(missing.clone().filter(|key| accepted(key)))
            })?
        }
        _ => {
            let double = kind == FieldKind::Double;
            let missing_bits = missing.as_ref().map(|k| match k {
                Key::Double(v) => v.to_bits(),
                Key::Long(v) => *v as u64,
                Key::Str(_) | Key::Tuple(_) => 0,
            });
            let groups = group_docs(docs, keep_docs, |doc, keys: &mut Vec<u64>| {
                let any = if double {
                    column.for_each_number(doc, |v| keys.push(v.to_bits()))
                } else {
                    column.for_each_i64(doc, |v| keys.push(v as u64))
                };
                if !any && let Some(bits) = missing_bits {
                    keys.push(bits);
                }
            });
            let mut acc = buckets_from_groups(agg, segment, groups, format.clone(), |bits| {
                let key = if double {
                    Key::Double(f64::from_bits(bits))
                } else {
                    Key::Long(bits as i64)
                };
                Ok(accepted(&key).then_some(key))
            })?;
            if terms.min_doc_count == 0 && kind.is_numeric() {
                // Every value of the field in the segment gets a bucket, as Elasticsearch's.
                let every: Vec<DocId> = (0..segment.reader.max_doc()).collect();
                let all = group_docs(&every, false, |doc, keys: &mut Vec<u64>| {
                    if double {
                        column.for_each_number(doc, |v| keys.push(v.to_bits()));
                    } else {
                        column.for_each_i64(doc, |v| keys.push(v as u64));
                    }
                });
                for bits in all.into_keys() {
                    let key = if double {
                        Key::Double(f64::from_bits(bits))
                    } else {
                        Key::Long(bits as i64)
                    };
                    if accepted(&key) && !acc.buckets.contains_key(&key) {
                        acc.buckets.insert(
                            key,
                            BucketAcc {
                                doc_count: 0,
                                error: 0,
                                subs: empty_all(&agg.subs),
                            },
                        );
                    }
                }
            }
            acc
        }
    };
    acc.format = format;
    Ok(Partial::Buckets(acc))
}

fn collect_hashes(
    segment: &Segment<'_>,
    source: &ValueSource,
    agg: &Aggregation,
    docs: &[DocId],
    sketch: &mut Cardinality,
) -> Result<()> {
    let (kind, column) = field_of(segment, source, agg)?;
    let missing_hash = source.missing.as_ref().map(|m| match (&kind, m) {
        (FieldKind::Ip, _) => ip_key(&source.field, m).map(|key| hash_bytes(key.as_bytes())),
        (FieldKind::Keyword | FieldKind::Unmapped, Value::String(s)) => {
            Ok(hash_bytes(s.as_bytes()))
        }
        (FieldKind::Double, _) => missing_number(&kind, m).map(|v| mix64(v.to_bits())),
        _ => missing_number(&kind, m).map(|v| mix64(v as i64 as u64)),
    });
    let missing_hash = missing_hash.transpose()?;
    // A document without a value adds the `missing` hash, once for all: a set ignores repeats.
    let mut any_missing = false;
    match &column {
        SegmentColumn::Str(strings) => {
            // Distinct ordinals first, so each term is read and hashed once per segment.
            let mut seen = vec![false; strings.num_terms()];
            segment.index.budget.reserve(seen.len(), &agg.name)?;
            let mut see = |ord: u64| {
                if let Some(flag) = seen.get_mut(ord as usize) {
                    *flag = true;
                }
            };
            if let Some(ords) = column.single_valued_ords() {
                first_values(ords, docs, |_, ord| match ord {
                    Some(ord) => see(ord),
                    None => any_missing = true,
                });
            } else {
                for &doc in docs {
                    any_missing |= !column.for_each_ord(doc, &mut see);
                }
            }
            let ords: Vec<u64> = seen
                .iter()
                .enumerate()
                .filter(|(_, s)| **s)
                .map(|(ord, _)| ord as u64)
                .collect();
            column.for_each_term(&ords, |term| sketch.add_hash(hash_bytes(term)))?;
        }
        _ if kind == FieldKind::Double => {
            column.for_each_number_of(docs, |value| match value {
                Some(v) => sketch.add_hash(mix64(v.to_bits())),
                None => any_missing = true,
            });
        }
        _ => {
            if let Some(values) = column.single_valued_i64() {
                first_values(values, docs, |_, value| match value {
                    Some(v) => sketch.add_hash(mix64(v as u64)),
                    None => any_missing = true,
                });
            } else {
                for &doc in docs {
                    any_missing |= !column.for_each_i64(doc, |v| sketch.add_hash(mix64(v as u64)));
                }
            }
        }
    }
    if any_missing && let Some(hash) = missing_hash {
        sketch.add_hash(hash);
    }
    Ok(())
}

/// The sort value of a document for one sort: the smallest value ascending, the largest
/// descending, as Elasticsearch's default `mode`.
fn sort_value(
    segment: &Segment<'_>,
    spec: &SortSpec,
    column: Option<&SegmentColumn>,
    doc: DocId,
) -> Result<SortValue> {
    Ok(match spec {
        SortSpec::Score(_) => SortValue::Number(f64::from(
            segment
                .scores
                .as_ref()
                .and_then(|s| s.get(doc as usize))
                .copied()
                .unwrap_or(1.0),
        )),
        SortSpec::Field { direction, .. } => {
            let Some(column) = column else {
                return Ok(SortValue::Missing);
            };
            let pick = |best: Option<f64>, v: f64| match (best, direction) {
                (None, _) => Some(v),
                (Some(b), Direction::Asc) => Some(b.min(v)),
                (Some(b), Direction::Desc) => Some(b.max(v)),
            };
            match column {
                SegmentColumn::Str(_) => {
                    let mut best: Option<u64> = None;
                    column.for_each_ord(doc, |ord| {
                        best = Some(match (best, direction) {
                            (None, _) => ord,
                            (Some(b), Direction::Asc) => b.min(ord),
                            (Some(b), Direction::Desc) => b.max(ord),
                        })
                    });
                    match best {
                        Some(ord) => SortValue::Str(column.term(ord)?),
                        None => SortValue::Missing,
                    }
                }
                _ => {
                    let mut best = None;
                    column.for_each_number(doc, |v| best = pick(best, v));
                    best.map_or(SortValue::Missing, SortValue::Number)
                }
            }
        }
    })
}

fn sort_columns(
    segment: &Segment<'_>,
    agg: &Aggregation,
    sort: &[SortSpec],
) -> Result<Vec<Option<SegmentColumn>>> {
    sort.iter()
        .map(|spec| match spec {
            SortSpec::Score(_) => Ok(None),
            SortSpec::Field { field, .. } => {
                let (_, column) = field_of(segment, &ValueSource::field(field.clone()), agg)?;
                Ok(Some(column))
            }
        })
        .collect()
}

fn collect_top_hits(
    agg: &Aggregation,
    top: &super::TopHits,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let sort = effective_sort(&top.sort);
    let columns = sort_columns(segment, agg, &sort)?;
    let keep = top.from + top.size;
    let mut candidates: Vec<(Vec<SortValue>, DocId)> =
        Vec::with_capacity(docs.len().min(keep * 4 + 16));
    for &doc in docs {
        let mut values = Vec::with_capacity(sort.len());
        for (spec, column) in sort.iter().zip(&columns) {
            values.push(sort_value(segment, spec, column.as_ref(), doc)?);
        }
        candidates.push((values, doc));
        if candidates.len() >= keep.max(1) * 8 {
            candidates.sort_by(|a, b| compare_sort(&a.0, &b.0, &sort));
            candidates.truncate(keep);
        }
    }
    candidates.sort_by(|a, b| compare_sort(&a.0, &b.0, &sort));
    candidates.truncate(keep);
    let max_score = segment.scores.as_ref().and_then(|scores| {
        docs.iter()
            .filter_map(|&d| scores.get(d as usize).copied())
            .reduce(f32::max)
    });
    let fields = segment.index.fields;
    // Sort values of `ip` fields show as addresses.
    let ip_keys: Vec<bool> = sort
        .iter()
        .map(|spec| match spec {
            SortSpec::Field { field, .. } => matches!(
                resolve_field(
                    segment.index.mappings,
                    segment.index.index_name,
                    field,
                    "top_hits"
                ),
                Ok(FieldKind::Ip)
            ),
            SortSpec::Score(_) => false,
        })
        .collect();
    // Inside a `nested` aggregation the hits are nested objects: hidden documents whose stored
    // source says where the object sits in its root document (`nested.rs`).
    let roots = match (segment.level(), fields.nested, candidates.is_empty()) {
        (Some(_), Some(nested_field), false) => {
            Some(nested::level_bits(segment.reader, nested_field, None)?)
        }
        _ => None,
    };
    // `filtered`: a document's source, which field-level security filters; a nested object's
    // own stored source is where it sits in its document, which it does not.
    let stored_source = |doc: DocId, filtered: bool| -> Result<(String, Option<Arc<[u8]>>)> {
        let document: TantivyDocument = segment
            .index
            .searcher
            .doc(DocAddress::new(segment.ord, doc))?;
        let id = document
            .get_first(fields.id)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let source: Option<Arc<[u8]>> = document
            .get_first(fields.source)
            .and_then(|v| v.as_bytes())
            .map(Arc::from);
        let source = match (segment.index.restriction, source) {
            // A nested object's own stored source is its identity, not document fields.
            (Some(filter), Some(bytes)) if filtered => {
                crate::field_security::filter_source(&bytes, filter)
            }
            (_, source) => source,
        };
        Ok((id, source))
    };
    let mut hits = Vec::with_capacity(candidates.len());
    for (values, doc) in candidates {
        let (id, source) = stored_source(doc, roots.is_none())?;
        let mut source: Arc<[u8]> = source.unwrap_or_else(|| Arc::from(&b"{}"[..]));
        let mut nested_identity = None;
        if let Some(root) = roots.as_ref().and_then(|roots| roots.next_from(doc)) {
            let identity: Value = serde_json::from_slice(&source).unwrap_or(Value::Null);
            let (_, root_source) = stored_source(root, true)?;
            let object = root_source
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .and_then(|root| nested::object_at(&root, &identity))
                .unwrap_or(Value::Null);
            source = Arc::from(object.to_string().into_bytes());
            nested_identity = Some(identity);
        }
        segment
            .index
            .budget
            .reserve(source.len() + 128, &agg.name)?;
        let score = segment
            .scores
            .as_ref()
            .and_then(|s| s.get(doc as usize).copied());
        let sort_json = if top.sort.is_empty() {
            Vec::new()
        } else {
            values
                .iter()
                .zip(ip_keys.iter().chain(std::iter::repeat(&false)))
                .map(|(v, ip)| match v {
                    SortValue::Missing => Value::Null,
                    SortValue::Str(s) if *ip => Value::String(ValueFormat::Ip.print_str(s)),
                    SortValue::Number(n) => {
                        serde_json::Number::from_f64(*n).map_or(Value::Null, |n| {
                            if n.as_f64()
                                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9e15)
                            {
                                Value::from(n.as_f64().unwrap_or(0.0) as i64)
                            } else {
                                Value::Number(n)
                            }
                        })
                    }
                    SortValue::Str(s) => Value::String(s.clone()),
                })
                .collect()
        };
        hits.push((
            values,
            TopHit {
                index: segment.index.index_name.to_string(),
                id,
                score: if top.sort.is_empty() { score } else { None },
                source,
                nested: nested_identity,
                sort: sort_json,
            },
        ));
    }
    Ok(Partial::TopHits(TopHitsAcc {
        total: docs.len() as u64,
        max_score: if top.sort.is_empty() { max_score } else { None },
        hits,
    }))
}

fn collect_top_metrics(
    agg: &Aggregation,
    top: &super::TopMetrics,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let sort = [top.sort.clone()];
    let columns = sort_columns(segment, agg, &sort)?;
    let sort_column = columns.into_iter().next().flatten();
    let mut metric_columns = Vec::with_capacity(top.metrics.len());
    let mut formats = Vec::with_capacity(top.metrics.len());
    for field in &top.metrics {
        let (kind, column) = field_of(segment, &ValueSource::field(field.clone()), agg)?;
        formats.push(value_format(&kind, None)?);
        metric_columns.push(column);
    }
    let sort_format = match &top.sort {
        SortSpec::Field { field, .. } => {
            let kind = resolve_field(
                segment.index.mappings,
                segment.index.index_name,
                field,
                "top_metrics",
            )?;
            value_format(&kind, None)?
        }
        SortSpec::Score(_) => ValueFormat::Raw,
    };
    let mut rows: Vec<(SortValue, DocId)> = Vec::new();
    for &doc in docs {
        let value = sort_value(segment, &top.sort, sort_column.as_ref(), doc)?;
        if value == SortValue::Missing {
            continue;
        }
        rows.push((value, doc));
        if rows.len() >= top.size.max(1).saturating_mul(8) {
            rows.sort_by(|a, b| {
                compare_sort(
                    std::slice::from_ref(&a.0),
                    std::slice::from_ref(&b.0),
                    &sort,
                )
            });
            rows.truncate(top.size);
        }
    }
    rows.sort_by(|a, b| {
        compare_sort(
            std::slice::from_ref(&a.0),
            std::slice::from_ref(&b.0),
            &sort,
        )
    });
    rows.truncate(top.size);
    let rows = rows
        .into_iter()
        .map(|(value, doc)| {
            let metrics = metric_columns
                .iter()
                .map(|column| {
                    let mut first = None;
                    column.for_each_number(doc, |v| {
                        if first.is_none() {
                            first = Some(v)
                        }
                    });
                    first
                })
                .collect();
            (value, metrics)
        })
        .collect();
    Ok(Partial::TopMetrics(TopMetricsAcc {
        rows,
        formats,
        sort_format,
    }))
}

/// The distinct keys of one `multi_terms` source for one document (its `missing` when it has
/// none); strings are read from the dictionary once per segment through `terms`.
fn multi_terms_keys(
    kind: &FieldKind,
    column: &SegmentColumn,
    missing: Option<&Key>,
    doc: DocId,
    terms: &mut HashMap<u64, String>,
    out: &mut Vec<Key>,
) -> Result<()> {
    out.clear();
    match column {
        SegmentColumn::Str(_) => {
            let mut ords = Vec::new();
            column.for_each_ord(doc, |ord| ords.push(ord));
            for ord in ords {
                let term = match terms.get(&ord) {
                    Some(term) => term.clone(),
                    None => {
                        let term = column.term(ord)?;
                        terms.insert(ord, term.clone());
                        term
                    }
                };
                out.push(Key::Str(term));
            }
        }
        _ if *kind == FieldKind::Double => {
            column.for_each_number(doc, |v| out.push(Key::Double(v)));
        }
        _ => {
            column.for_each_i64(doc, |v| out.push(Key::Long(v)));
        }
    }
    if out.len() > 1 {
        out.sort();
        out.dedup();
    }
    if out.is_empty()
        && let Some(missing) = missing
    {
        out.push(missing.clone());
    }
    Ok(())
}

fn collect_multi_terms(
    agg: &Aggregation,
    multi: &MultiTerms,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let count = multi.sources.len();
    let mut kinds = Vec::with_capacity(count);
    let mut columns = Vec::with_capacity(count);
    let mut formats = Vec::with_capacity(count);
    let mut missings = Vec::with_capacity(count);
    for source in &multi.sources {
        let (kind, column) = field_of(segment, source, agg)?;
        formats.push(value_format(&kind, source.format.as_deref())?);
        missings.push(
            source
                .missing
                .as_ref()
                .map(|m| missing_key(&source.field, &kind, m))
                .transpose()?,
        );
        kinds.push(kind);
        columns.push(column);
    }
    let keep_docs = !agg.subs.is_empty();
    // Keys are grouped raw (term ordinals, number bits; `None` for `missing`) and turned into
    // terms and numbers once per segment at the end.
    let mut groups: HashMap<Vec<Option<u64>>, (u64, Vec<DocId>)> = HashMap::new();
    let mut per_source: Vec<Vec<Option<u64>>> = vec![Vec::new(); count];
    let mut indexes = vec![0usize; count];
    let mut combination: Vec<Option<u64>> = Vec::with_capacity(count);
    for &doc in docs {
        let mut empty = false;
        for (((kind, column), missing), keys) in kinds
            .iter()
            .zip(&columns)
            .zip(&missings)
            .zip(per_source.iter_mut())
        {
            keys.clear();
            match column {
                SegmentColumn::Str(_) => {
                    column.for_each_ord(doc, |o| keys.push(Some(o)));
                }
                _ if *kind == FieldKind::Double => {
                    column.for_each_number(doc, |v| keys.push(Some(v.to_bits())));
                }
                _ => {
                    column.for_each_i64(doc, |v| keys.push(Some(v as u64)));
                }
            }
            if keys.len() > 1 {
                keys.sort_unstable();
                keys.dedup();
            }
            if keys.is_empty() && missing.is_some() {
                keys.push(None);
            }
            empty |= keys.is_empty();
        }
        if empty {
            continue;
        }
        // Every combination of the sources' keys, odometer style; each source's keys are
        // distinct, so each combination is too.
        indexes.iter_mut().for_each(|i| *i = 0);
        loop {
            combination.clear();
            combination.extend(
                per_source
                    .iter()
                    .zip(&indexes)
                    .filter_map(|(keys, &i)| keys.get(i).copied()),
            );
            let entry = match groups.get_mut(combination.as_slice()) {
                Some(entry) => entry,
                None => {
                    segment.index.budget.reserve(BUCKET_BYTES, &agg.name)?;
                    groups
                        .entry(combination.clone())
                        .or_insert_with(|| (0, Vec::new()))
                }
            };
            entry.0 += 1;
            if keep_docs {
                entry.1.push(doc);
            }
            if !next_combination(&mut indexes, &per_source) {
                break;
            }
        }
    }
    // Each source's ordinals read from its dictionary in one pass.
    let mut names: Vec<HashMap<u64, String>> = Vec::with_capacity(count);
    for (i, column) in columns.iter().enumerate() {
        let mut map = HashMap::new();
        if let SegmentColumn::Str(_) = column {
            let mut ords: Vec<u64> = groups
                .keys()
                .filter_map(|key| key.get(i).copied().flatten())
                .collect();
            ords.sort_unstable();
            ords.dedup();
            let terms = column.terms(&ords)?;
            map = ords.into_iter().zip(terms).collect();
        }
        names.push(map);
    }
    let to_key = |i: usize, raw: Option<u64>| -> Key {
        match raw {
            None => missings
                .get(i)
                .cloned()
                .flatten()
                .unwrap_or(Key::Str(String::new())),
            Some(raw) => match (columns.get(i), kinds.get(i)) {
                (Some(SegmentColumn::Str(_)), _) => Key::Str(
                    names
                        .get(i)
                        .and_then(|n| n.get(&raw))
                        .cloned()
                        .unwrap_or_default(),
                ),
                (_, Some(FieldKind::Double)) => Key::Double(f64::from_bits(raw)),
                _ => Key::Long(raw as i64),
            },
        }
    };
    segment.index.budget.reserve(
        groups.values().map(|(_, d)| d.len() * DOC_BYTES).sum(),
        &agg.name,
    )?;
    let mut acc = BucketsAcc::new(ValueFormat::Raw);
    acc.part_formats = formats;
    for (raw, (doc_count, bucket_docs)) in groups {
        let subs = if keep_docs {
            collect_level(&agg.subs, segment, &bucket_docs)?
        } else {
            Vec::new()
        };
        let key = raw
            .into_iter()
            .enumerate()
            .map(|(i, part)| to_key(i, part))
            .collect();
        acc.buckets.insert(
            Key::Tuple(key),
            BucketAcc {
                doc_count,
                error: 0,
                subs,
            },
        );
    }
    Ok(Partial::Buckets(acc))
}

/// Orders composite keys by each source's direction; a missing value sorts first ascending.
pub(crate) fn compare_composite(
    a: &[Option<Key>],
    b: &[Option<Key>],
    composite: &Composite,
) -> Ordering {
    for ((x, y), source) in a.iter().zip(b).zip(&composite.sources) {
        let ordering = x.cmp(y);
        let ordering = if source.direction == Direction::Desc {
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

/// Keeps the `size` smallest keys: what any level may need to answer one page.
pub(crate) fn prune_composite(acc: &mut CompositeAcc, composite: &Composite) {
    if acc.buckets.len() <= composite.size {
        return;
    }
    let mut keys: Vec<Vec<Option<Key>>> = acc.buckets.keys().cloned().collect();
    keys.sort_by(|a, b| compare_composite(a, b, composite));
    for key in keys.into_iter().skip(composite.size) {
        acc.buckets.remove(&key);
    }
}

/// The `after` key in this index's types, per source.
fn after_key(composite: &Composite, kinds: &[FieldKind]) -> Result<Option<Vec<Option<Key>>>> {
    let Some(after) = &composite.after else {
        return Ok(None);
    };
    let mut key = Vec::with_capacity(after.len());
    for ((value, source), kind) in after.iter().zip(&composite.sources).zip(kinds) {
        let Some(value) = value else {
            key.push(None);
            continue;
        };
        let converted = match (&source.kind, kind) {
            (CompositeSourceKind::Geotile { .. }, _) => {
                let tile = value.as_str().and_then(crate::geo::geotile_parse);
                Key::Long(tile.ok_or_else(|| {
                    SearchError::illegal(format!(
                        "Invalid geotile_grid hash string of {}. Must be three integers in a form \"zoom/x/y\".",
                        value.as_str().map_or_else(|| value.to_string(), str::to_string)
                    ))
                })?)
            }
            (CompositeSourceKind::Terms, FieldKind::Ip) => {
                Key::Str(ip_key(&source.source.field, value)?)
            }
            (CompositeSourceKind::Terms, FieldKind::Keyword | FieldKind::Unmapped) => match value {
                Value::String(s) => Key::Str(s.clone()),
                other => Key::Str(other.to_string()),
            },
            (CompositeSourceKind::Histogram { .. }, _) | (_, FieldKind::Double) => {
                Key::Double(missing_number(&FieldKind::Double, value)?)
            }
            (CompositeSourceKind::DateHistogram { .. }, _) => {
                Key::Long(missing_number(&date_kind(kind.clone()), value)? as i64)
            }
            (_, kind) => Key::Long(missing_number(kind, value)? as i64),
        };
        key.push(Some(converted));
    }
    Ok(Some(key))
}

/// One part of a packed composite key. `0` is the missing bucket; a value is `PRESENT | u` with
/// `u` an unsigned integer that orders as the value does: a term ordinal as `2 * ord + 1` (so
/// that an `after` term absent from the segment's dictionary sits at the even position between
/// its neighbours), an integer (or a double's ordered bits, or an encoded tile) with its sign
/// bit flipped. A descending source stores the complement, so the plain integer order of keys
/// is the composite's order, and a missing value sorts first ascending, last descending.
type Part = u128;
const PRESENT: Part = 1 << 127;
const SIGN: u64 = 1 << 63;
/// Composite sources whose keys are fixed arrays (no allocation per key); more use boxed keys.
const PACKED_SOURCES_MAX: usize = 4;

/// A double as an integer that orders as `f64::total_cmp` does.
fn ordered_double(value: f64) -> i64 {
    let bits = value.to_bits() as i64;
    if bits < 0 { bits ^ i64::MAX } else { bits }
}

fn double_from_ordered(ordered: i64) -> f64 {
    let bits = if ordered < 0 {
        ordered ^ i64::MAX
    } else {
        ordered
    };
    f64::from_bits(bits as u64)
}

fn part_of_i64(value: i64) -> Part {
    PRESENT | Part::from((value as u64) ^ SIGN)
}

fn part_of_ord(ord: u64) -> Part {
    PRESENT | (2 * Part::from(ord) + 1)
}

/// A composite key of packed parts that hashes and compares as its slice of parts, so that
/// maps of keys are searched with the slice a document builds, without building a key.
trait PackedKey: Eq + Hash + Ord + std::borrow::Borrow<[Part]> {
    fn from_parts(parts: &[Part]) -> Self;
}

impl<const N: usize> PackedKey for [Part; N] {
    fn from_parts(parts: &[Part]) -> Self {
        let mut key = [0; N];
        for (slot, part) in key.iter_mut().zip(parts) {
            *slot = *part;
        }
        key
    }
}

impl PackedKey for Box<[Part]> {
    fn from_parts(parts: &[Part]) -> Self {
        parts.into()
    }
}

/// How one composite source reads its parts in one segment.
enum PartReader<'a> {
    Ords(&'a SegmentColumn),
    Integers(&'a SegmentColumn),
    Doubles(&'a SegmentColumn),
    Histogram(&'a SegmentColumn, f64),
    Dates(&'a SegmentColumn, super::rounding::PreparedRounding<'a>),
    Geotile(
        Option<&'a tantivy::columnar::Column<i64>>,
        u32,
        Option<crate::geo::GeoBox>,
    ),
}

impl PartReader<'_> {
    /// The distinct parts of `doc`, in the composite's order, or the missing bucket; empty when
    /// the document has no value and the source no missing bucket.
    #[inline]
    fn read(&self, doc: DocId, descending: bool, missing_bucket: bool, out: &mut Vec<Part>) {
        out.clear();
        match self {
            PartReader::Ords(column) => {
                column.for_each_ord(doc, |ord| out.push(part_of_ord(ord)));
            }
            PartReader::Integers(column) => {
                column.for_each_i64(doc, |v| out.push(part_of_i64(v)));
            }
            PartReader::Doubles(column) => {
                column.for_each_number(doc, |v| out.push(part_of_i64(ordered_double(v))));
            }
            PartReader::Histogram(column, interval) => {
                column.for_each_number(doc, |v| {
                    out.push(part_of_i64(ordered_double(histogram_key(
                        v, *interval, 0.0,
                    ))))
                });
            }
            PartReader::Dates(column, rounding) => {
                column.for_each_i64(doc, |v| out.push(part_of_i64(rounding.round(v))));
            }
            PartReader::Geotile(column, zoom, bounds) => {
                if let Some(column) = column {
                    for packed in column.values_for_doc(doc) {
                        let point = GeoPoint::decode(packed);
                        if bounds.is_some_and(|bounds| !bounds.contains(point)) {
                            continue;
                        }
                        let (zoom, x, y) = crate::geo::geotile(point, *zoom);
                        out.push(part_of_i64(crate::geo::geotile_encode(zoom, x, y)));
                    }
                }
            }
        }
        if out.is_empty() {
            if missing_bucket {
                out.push(if descending { !0 } else { 0 });
            }
        } else if descending {
            out.iter_mut().for_each(|part| *part = !*part);
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
    }
}

/// A composite source of at most one value per document, read a batch of documents at a time.
enum BatchReader<'a> {
    Ords(&'a tantivy::columnar::Column<u64>),
    Integers(&'a tantivy::columnar::Column<i64>),
    Dates(
        &'a tantivy::columnar::Column<i64>,
        &'a super::rounding::PreparedRounding<'a>,
    ),
}

impl<'a> PartReader<'a> {
    /// This source as a batched reader, when its column holds at most one value per document.
    fn batched(&'a self) -> Option<BatchReader<'a>> {
        match self {
            PartReader::Ords(column) => column.single_valued_ords().map(BatchReader::Ords),
            PartReader::Integers(column) => column.single_valued_i64().map(BatchReader::Integers),
            PartReader::Dates(column, rounding) => column
                .single_valued_i64()
                .map(|column| BatchReader::Dates(column, rounding)),
            _ => None,
        }
    }
}

impl BatchReader<'_> {
    /// The part of each document of `docs` into `out` (as [`PartReader::read`] gives it: the
    /// missing bucket for no value when the source has one, `None` when it has not).
    fn read(
        &self,
        docs: &[DocId],
        descending: bool,
        missing_bucket: bool,
        out: &mut [Option<Part>],
    ) {
        let missing = missing_bucket.then_some(if descending { !0 } else { 0 });
        let mut slots = out.iter_mut();
        let mut put = |part: Option<Part>| {
            if let Some(slot) = slots.next() {
                *slot = match part {
                    Some(part) if descending => Some(!part),
                    Some(part) => Some(part),
                    None => missing,
                };
            }
        };
        match self {
            BatchReader::Ords(column) => {
                first_values(column, docs, |_, ord| put(ord.map(part_of_ord)))
            }
            BatchReader::Integers(column) => {
                first_values(column, docs, |_, v| put(v.map(part_of_i64)))
            }
            BatchReader::Dates(column, rounding) => first_values(column, docs, |_, v| {
                put(v.map(|v| part_of_i64(rounding.round(v))))
            }),
        }
    }
}

/// The `after` key in this segment's packed parts: a term the dictionary lacks takes the even
/// position just below the next term's.
fn packed_after(
    after: &[Option<Key>],
    composite: &Composite,
    columns: &[SegmentColumn],
) -> Result<Vec<Part>> {
    let mut packed = Vec::with_capacity(after.len());
    for ((part, column), source) in after.iter().zip(columns).zip(&composite.sources) {
        let part = match (part, column) {
            (None, _) => 0,
            (Some(Key::Str(term)), SegmentColumn::Str(strings)) => {
                let hit = strings
                    .dictionary()
                    .term_ord_or_next(term.as_bytes())
                    .map_err(|e| SearchError::Corrupt {
                        what: "term dictionary".into(),
                        reason: e.to_string(),
                    })?;
                match hit {
                    tantivy::columnar::TermOrdHit::Exact(ord) => part_of_ord(ord),
                    tantivy::columnar::TermOrdHit::Next(ord) => PRESENT | (2 * Part::from(ord)),
                }
            }
            (Some(Key::Double(v)), _) => part_of_i64(ordered_double(*v)),
            (Some(Key::Long(v)), _) => part_of_i64(*v),
            // Terms of a column holding none: only the missing bucket compares with them.
            (Some(_), _) => PRESENT,
        };
        packed.push(if source.direction == Direction::Desc {
            !part
        } else {
            part
        });
    }
    Ok(packed)
}

/// Keeps the `size` smallest keys and answers the largest of them: any key past it can be
/// skipped from now on.
fn prune_packed<K: PackedKey + Clone>(groups: &mut FastMap<K, DocGroup>, size: usize) -> Option<K> {
    let last = size.checked_sub(1)?;
    if groups.len() <= last {
        return None;
    }
    let mut keys: Vec<K> = groups.keys().cloned().collect();
    keys.select_nth_unstable(last);
    let largest = keys.get(last).cloned();
    for key in keys.iter().skip(size) {
        groups.remove(key.borrow());
    }
    largest
}

fn collect_composite(
    agg: &Aggregation,
    composite: &Composite,
    segment: &Segment<'_>,
    docs: &[DocId],
) -> Result<Partial> {
    let mut kinds = Vec::with_capacity(composite.sources.len());
    let mut columns = Vec::with_capacity(composite.sources.len());
    let mut geo_columns = Vec::with_capacity(composite.sources.len());
    let mut formats = Vec::with_capacity(composite.sources.len());
    for source in &composite.sources {
        if let CompositeSourceKind::Geotile { .. } = source.kind {
            geo_columns.push(geo_column_of(segment, &source.source.field, agg)?);
            kinds.push(FieldKind::Integer);
            columns.push(SegmentColumn::Empty);
            formats.push(ValueFormat::Geotile);
            continue;
        }
        let (kind, column) = field_of(segment, &source.source, agg)?;
        let format = match &source.kind {
            CompositeSourceKind::DateHistogram { rounding } => {
                match value_format(&date_kind(kind.clone()), source.source.format.as_deref())? {
                    ValueFormat::Date(format, _) if source.source.format.is_some() => {
                        ValueFormat::Date(format, rounding.time_zone.clone())
                    }
                    _ => ValueFormat::Raw,
                }
            }
            _ if kind == FieldKind::Boolean => ValueFormat::Boolean,
            _ if kind == FieldKind::Ip => ValueFormat::Ip,
            _ => ValueFormat::Raw,
        };
        formats.push(format);
        kinds.push(kind);
        columns.push(column);
        geo_columns.push(None);
    }
    let after_key = after_key(composite, &kinds)?;
    let after = after_key
        .as_ref()
        .map(|key| packed_after(key, composite, &columns))
        .transpose()?;
    let mut readers = Vec::with_capacity(composite.sources.len());
    for (((source, kind), column), geo) in composite
        .sources
        .iter()
        .zip(&kinds)
        .zip(&columns)
        .zip(&geo_columns)
    {
        readers.push(match &source.kind {
            CompositeSourceKind::Terms => match column {
                SegmentColumn::Str(_) => PartReader::Ords(column),
                _ if *kind == FieldKind::Double => PartReader::Doubles(column),
                _ => PartReader::Integers(column),
            },
            CompositeSourceKind::Histogram { interval } => PartReader::Histogram(column, *interval),
            CompositeSourceKind::DateHistogram { rounding } => {
                let prepared = match column.min_max_i64() {
                    Some((min, max)) => rounding.prepare(min, max, docs.len() / 4),
                    None => rounding.prepare(1, 0, 0),
                };
                PartReader::Dates(column, prepared)
            }
            CompositeSourceKind::Geotile { zoom, bounds } => {
                PartReader::Geotile(geo.as_ref(), *zoom, *bounds)
            }
        });
    }
    let scan = CompositeScan {
        composite,
        readers: &readers,
        after: after.as_deref(),
        keep_docs: !agg.subs.is_empty(),
    };
    // A leading keyword walked by its terms, when the page's documents are a large enough
    // share of the segment's for its postings to be mostly theirs.
    let by_terms: Option<ByTerms<'_>> = match (composite.sources.first(), columns.first()) {
        (Some(source), Some(SegmentColumn::Str(strings)))
            if matches!(source.kind, CompositeSourceKind::Terms)
                && source.direction == Direction::Asc
                && docs.len().saturating_mul(4) >= segment.reader.max_doc() as usize =>
        {
            let after_term = match after_key.as_ref().and_then(|key| key.first()) {
                Some(Some(Key::Str(term))) => Some(Some(term.as_str())),
                // The missing bucket sorts first: past a present `after`, none is on the page.
                Some(Some(_)) => None,
                Some(None) | None if source.missing_bucket => None,
                Some(None) | None => Some(None),
            };
            after_term.map(|after_term| (source.source.field.as_str(), strings, after_term))
        }
        _ => None,
    };
    let groups = match composite.sources.len() {
        1 => scan.page::<[Part; 1]>(segment, by_terms, docs)?,
        2 => scan.page::<[Part; 2]>(segment, by_terms, docs)?,
        3 => scan.page::<[Part; 3]>(segment, by_terms, docs)?,
        PACKED_SOURCES_MAX => scan.page::<[Part; PACKED_SOURCES_MAX]>(segment, by_terms, docs)?,
        _ => scan.page::<Box<[Part]>>(segment, by_terms, docs)?,
    };
    segment
        .index
        .budget
        .reserve(groups.len() * BUCKET_BYTES, &agg.name)?;
    // Each source's ordinals read from its dictionary in one pass.
    let ascending = |i: usize, part: Part| -> Part {
        match composite.sources.get(i) {
            Some(source) if source.direction == Direction::Desc => !part,
            _ => part,
        }
    };
    let mut names: Vec<HashMap<u64, String>> = Vec::with_capacity(columns.len());
    for (i, column) in columns.iter().enumerate() {
        let mut map = HashMap::new();
        if let SegmentColumn::Str(_) = column {
            let mut ords: Vec<u64> = groups
                .iter()
                .filter_map(|(key, _)| key.get(i).map(|&part| ascending(i, part)))
                .filter(|&part| part != 0)
                .map(|part| ((part & !PRESENT) / 2) as u64)
                .collect();
            ords.sort_unstable();
            ords.dedup();
            let terms = column.terms(&ords)?;
            map = ords.into_iter().zip(terms).collect();
        }
        names.push(map);
    }
    let to_key = |i: usize, part: Part| -> Option<Key> {
        let part = ascending(i, part);
        if part == 0 {
            return None;
        }
        let value = part & !PRESENT;
        let number = ((value as u64) ^ SIGN) as i64;
        let source = composite.sources.get(i)?;
        Some(match (columns.get(i), &source.kind, kinds.get(i)) {
            (Some(SegmentColumn::Str(_)), CompositeSourceKind::Terms, _) => Key::Str(
                names
                    .get(i)
                    .and_then(|n| n.get(&((value / 2) as u64)))
                    .cloned()
                    .unwrap_or_default(),
            ),
            (_, CompositeSourceKind::Histogram { .. }, _)
            | (_, CompositeSourceKind::Terms, Some(FieldKind::Double)) => {
                Key::Double(double_from_ordered(number))
            }
            _ => Key::Long(number),
        })
    };
    let mut acc = CompositeAcc {
        buckets: FastMap::default(),
        formats,
    };
    for (packed, (count, bucket_docs)) in groups {
        let key = packed
            .into_iter()
            .enumerate()
            .map(|(i, part)| to_key(i, part))
            .collect();
        let subs = if scan.keep_docs {
            collect_level(&agg.subs, segment, &bucket_docs)?
        } else {
            Vec::new()
        };
        acc.buckets.insert(
            key,
            BucketAcc {
                doc_count: count,
                error: 0,
                subs,
            },
        );
    }
    Ok(Partial::Composite(acc))
}

/// The first part of the largest key held: past it no key can be on the page.
fn first_high<K: PackedKey>(threshold: &Option<K>) -> Option<Part> {
    threshold.as_ref().and_then(|t| t.borrow().first().copied())
}

/// Whether a first part lies within the page's bounds on the first source.
fn first_within(part: Part, low: Option<Part>, high: Option<Part>) -> bool {
    low.is_none_or(|low| part >= low) && high.is_none_or(|high| part <= high)
}

/// A segment's keys of one page, as parts, with their documents.
type PageGroups = Vec<(Vec<Part>, DocGroup)>;

/// One segment's pass of a composite: the keys of one page, grouped raw.
struct CompositeScan<'a> {
    composite: &'a Composite,
    readers: &'a [PartReader<'a>],
    /// The `after` key in this segment's parts: only keys past it count.
    after: Option<&'a [Part]>,
    keep_docs: bool,
}

/// A leading keyword a page may walk by its terms: its field, its column, and `after`'s term.
type ByTerms<'a> = (&'a str, &'a tantivy::columnar::StrColumn, Option<&'a str>);

impl CompositeScan<'_> {
    /// The page's groups: by the first source's terms when given and the walk pays, else by a
    /// scan.
    fn page<K: PackedKey + Clone>(
        &self,
        segment: &Segment<'_>,
        by_terms: Option<ByTerms<'_>>,
        docs: &[DocId],
    ) -> Result<PageGroups> {
        if let Some((field, strings, after_term)) = by_terms
            && let Some(groups) =
                self.run_by_terms::<K>(segment, field, strings, after_term, docs)?
        {
            return Ok(groups);
        }
        Ok(self.run::<K>(docs))
    }

    /// Groups the documents by key, keeping only keys that can be on the page: past `after`
    /// and, once more than a page is held, not past the largest of the `size` smallest held.
    /// Answers at most `size` groups with their keys' parts.
    fn run<K: PackedKey + Clone>(&self, docs: &[DocId]) -> PageGroups {
        let sources = &self.composite.sources;
        let mut page = PageKeys::<K>::new(sources.len(), self.composite.size);
        let mut per_source: Vec<Vec<Part>> = vec![Vec::new(); sources.len()];
        // The first source's bounds: a document none of whose first parts lies within them
        // cannot have a key on this page, whatever its other sources hold.
        let first_low = self.after.and_then(|after| after.first().copied());
        // A first source of one value per document is read a batch at a time, and most
        // documents of a later page end there, their first part outside the bounds.
        let batched = self.readers.first().and_then(PartReader::batched);
        let mut firsts = [None; VALUE_BATCH];
        for chunk in docs.chunks(VALUE_BATCH) {
            if let (Some(batched), Some(source)) = (&batched, sources.first()) {
                batched.read(
                    chunk,
                    source.direction == Direction::Desc,
                    source.missing_bucket,
                    &mut firsts,
                );
                // Those outside the first source's bounds (as they stand at the start of the
                // batch: the key's own check below sees any later cut) are dropped here, in
                // one tight pass.
                let high = first_high(&page.threshold);
                for first in firsts.iter_mut().take(chunk.len()) {
                    if first.is_some_and(|part| !first_within(part, first_low, high)) {
                        *first = None;
                    }
                }
            }
            for (&doc, &first) in chunk.iter().zip(&firsts) {
                if batched.is_some() {
                    let (Some(first), Some(parts)) = (first, per_source.first_mut()) else {
                        continue;
                    };
                    parts.clear();
                    parts.push(first);
                } else if let Some(parts) = per_source.first_mut() {
                    self.read_source(0, doc, parts);
                    let high = first_high(&page.threshold);
                    parts.retain(|&part| first_within(part, first_low, high));
                }
                if self.read_rest(doc, &mut per_source) {
                    self.add(&mut page, doc, &per_source);
                }
            }
        }
        page.finish()
    }

    /// The page by the first source's terms (a keyword, ascending, with no missing-value
    /// bucket that could be on the page): the field's terms are walked in order from `after`'s
    /// and each one's documents read from the inverted index, as Elasticsearch's composite
    /// does for a leading indexed field. The page is complete once it holds `size` keys when a
    /// term is done, since every later term's keys sort after them, so a page costs about its
    /// own documents instead of a pass over the segment's. `None` (the caller scans instead)
    /// when the terms visited have too few matching documents for the walk to beat a scan.
    fn run_by_terms<K: PackedKey + Clone>(
        &self,
        segment: &Segment<'_>,
        field: &str,
        strings: &tantivy::columnar::StrColumn,
        after_term: Option<&str>,
        docs: &[DocId],
    ) -> Result<Option<PageGroups>> {
        let corrupt = |e: std::io::Error| SearchError::Corrupt {
            what: format!("terms of {field}"),
            reason: e.to_string(),
        };
        let inverted = segment.reader.inverted_index(segment.index.fields.exact)?;
        // The field's string terms: a key range of the index's dictionary, read in order
        // (a lookup per term would decode a block of the dictionary each), beside the
        // column's dictionary of the same strings, whose ordinals the keys use.
        let mut prefix = Term::from_field_json_path(segment.index.fields.exact, field, true);
        prefix.append_type_and_str("");
        let low = prefix.serialized_value_bytes().to_vec();
        let mut high = low.clone();
        if let Some(type_code) = high.last_mut() {
            *type_code += 1;
        }
        let from = [low.as_slice(), after_term.unwrap_or_default().as_bytes()].concat();
        let mut postings_of = inverted
            .terms()
            .range()
            .ge(&from)
            .lt(&high)
            .into_stream()
            .map_err(corrupt)?;
        let mut terms = strings
            .dictionary()
            .range()
            .ge(after_term.unwrap_or_default().as_bytes())
            .into_stream()
            .map_err(corrupt)?;
        let mut page = PageKeys::<K>::new(self.composite.sources.len(), self.composite.size);
        let mut per_source: Vec<Vec<Part>> = vec![Vec::new(); self.composite.sources.len()];
        let mut dense = DenseSecond::new(self);
        // What a scan would cost, in documents (and a few terms' worth more, which is
        // nothing beside a scan worth avoiding); each term's postings count as many.
        let mut budget = docs.len() + TERM_LOOKUP_DOCS * TERMS_FREE;
        while postings_of.advance() {
            budget = match budget.checked_sub(TERM_LOOKUP_DOCS) {
                Some(left) => left,
                None => return Ok(None),
            };
            // Both dictionaries hold the strings of the field's values; should they ever
            // differ, the scan answers.
            let text = postings_of.key().get(low.len()..).unwrap_or_default();
            if !terms.advance() || terms.key() != text {
                return Ok(None);
            }
            let postings = inverted
                .read_postings_from_terminfo(postings_of.value(), IndexRecordOption::Basic)
                .map_err(corrupt)?;
            let matched = intersect(postings, docs);
            budget = budget.saturating_sub(matched.len());
            let first = part_of_ord(terms.term_ord());
            if let Some(counts) = dense.as_mut() {
                counts.add_term(self, &mut page, first, &matched);
                if page.groups.len() >= self.composite.size {
                    break;
                }
                continue;
            }
            for doc in matched {
                if let Some(parts) = per_source.first_mut() {
                    parts.clear();
                    parts.push(first);
                }
                if self.read_rest(doc, &mut per_source) {
                    self.add(&mut page, doc, &per_source);
                }
            }
            if page.groups.len() >= self.composite.size {
                break;
            }
        }
        Ok(Some(page.finish()))
    }

    /// Source `i`'s parts of `doc`.
    #[inline]
    fn read_source(&self, i: usize, doc: DocId, parts: &mut Vec<Part>) {
        if let (Some(reader), Some(source)) = (self.readers.get(i), self.composite.sources.get(i)) {
            reader.read(
                doc,
                source.direction == Direction::Desc,
                source.missing_bucket,
                parts,
            );
        }
    }

    /// Reads the parts of every source after the first; whether each source (the first, as
    /// given, included) has some, so that the document has keys.
    #[inline]
    fn read_rest(&self, doc: DocId, per_source: &mut [Vec<Part>]) -> bool {
        if per_source.first().is_none_or(Vec::is_empty) {
            return false;
        }
        for (i, parts) in per_source.iter_mut().enumerate().skip(1) {
            self.read_source(i, doc, parts);
            if parts.is_empty() {
                return false;
            }
        }
        true
    }

    /// Counts `doc` under every combination of the sources' parts (a cartesian product for
    /// multi-valued fields, each distinct since each source's parts are) that can be on the page.
    #[inline]
    fn add<K: PackedKey + Clone>(
        &self,
        page: &mut PageKeys<K>,
        doc: DocId,
        per_source: &[Vec<Part>],
    ) {
        page.indexes.iter_mut().for_each(|i| *i = 0);
        loop {
            for ((slot, parts), &i) in page
                .combination
                .iter_mut()
                .zip(per_source)
                .zip(&page.indexes)
            {
                *slot = parts.get(i).copied().unwrap_or(0);
            }
            let keep_docs = self.keep_docs;
            page.with_group(self.after, None, |group| {
                group.0 += 1;
                if keep_docs {
                    group.1.push(doc);
                }
            });
            if !next_combination(&mut page.indexes, per_source) {
                break;
            }
        }
        page.prune_when_due();
    }
}

/// A composite of two sources whose second is a keyword with at most one term per document,
/// in a walk of the first source's terms: within a term every key shares its first part, so
/// the term's documents are counted in a table indexed by the second source's ordinal (read a
/// batch at a time), and only the distinct keys meet the page's map. Without sub-aggregations
/// (which need each key's documents).
struct DenseSecond<'a> {
    ords: &'a tantivy::columnar::Column<u64>,
    descending: bool,
    missing_bucket: bool,
    /// By ordinal, then one slot for documents without a term.
    counts: Vec<u64>,
    touched: Vec<usize>,
}

/// Terms the second source may have for [`DenseSecond`]'s table.
const DENSE_SECOND_TERMS_MAX: usize = 1 << 16;

impl<'a> DenseSecond<'a> {
    fn new(scan: &CompositeScan<'a>) -> Option<DenseSecond<'a>> {
        let ([_, source], [_, PartReader::Ords(column)]) =
            (&scan.composite.sources[..], scan.readers)
        else {
            return None;
        };
        let SegmentColumn::Str(strings) = column else {
            return None;
        };
        let ords = column.single_valued_ords()?;
        let terms = strings.num_terms();
        if scan.keep_docs || terms > DENSE_SECOND_TERMS_MAX {
            return None;
        }
        Some(DenseSecond {
            ords,
            descending: source.direction == Direction::Desc,
            missing_bucket: source.missing_bucket,
            counts: vec![0; terms + 1],
            touched: Vec::new(),
        })
    }

    /// Counts the documents of the term whose part is `first` under their keys.
    fn add_term<K: PackedKey + Clone>(
        &mut self,
        scan: &CompositeScan<'_>,
        page: &mut PageKeys<K>,
        first: Part,
        docs: &[DocId],
    ) {
        let missing_slot = self.counts.len() - 1;
        first_values(self.ords, docs, |_, ord| {
            let slot = ord.map_or(missing_slot, |ord| ord as usize);
            if let Some(count) = self.counts.get_mut(slot) {
                if *count == 0 {
                    self.touched.push(slot);
                }
                *count += 1;
            }
        });
        for slot in self.touched.drain(..) {
            let Some(count) = self.counts.get_mut(slot) else {
                continue;
            };
            let n = std::mem::take(count);
            let second = if slot == missing_slot {
                if !self.missing_bucket {
                    continue;
                }
                0
            } else {
                part_of_ord(slot as u64)
            };
            let second = if self.descending { !second } else { second };
            page.with_group(scan.after, Some(&[first, second]), |group| group.0 += n);
        }
        page.prune_when_due();
    }
}

/// A term's dictionary lookup in a composite's walk of terms, counted as this many documents
/// of a scan.
const TERM_LOOKUP_DOCS: usize = 64;
/// Terms a composite's walk may visit beyond a scan's cost before it gives way to the scan.
const TERMS_FREE: usize = 64;

/// The keys one segment's pass holds: those that can be on the page, and the largest of them
/// once the held keys were cut to a page.
struct PageKeys<K> {
    groups: FastMap<K, DocGroup>,
    threshold: Option<K>,
    size: usize,
    /// Pruning to the page costs a selection over the held keys, so it waits for another page
    /// of them; until the first cut, every key past `after` is held.
    prune_at: usize,
    combination: Vec<Part>,
    indexes: Vec<usize>,
}

impl<K: PackedKey + Clone> PageKeys<K> {
    fn new(sources: usize, size: usize) -> Self {
        PageKeys {
            groups: FastMap::default(),
            threshold: None,
            size,
            prune_at: size.saturating_mul(2).max(256),
            combination: vec![0; sources],
            indexes: vec![0; sources],
        }
    }

    /// Calls `f` with the group of `key` (else of the combination built in place) when the
    /// key can be on the page: past `after`, and not past the largest held key once they were
    /// cut.
    #[inline]
    fn with_group(
        &mut self,
        after: Option<&[Part]>,
        key: Option<&[Part]>,
        f: impl FnOnce(&mut DocGroup),
    ) {
        let key = key.unwrap_or(self.combination.as_slice());
        let past_after = after.is_none_or(|after| key > after);
        let within = self
            .threshold
            .as_ref()
            .is_none_or(|largest| key <= largest.borrow());
        if !(past_after && within) {
            return;
        }
        // Looked up by the slice first, so that a held key is found without building one.
        match self.groups.get_mut(key) {
            Some(group) => f(group),
            None => f(self
                .groups
                .entry(K::from_parts(key))
                .or_insert_with(|| (0, Vec::new()))),
        }
    }

    /// Cuts the held keys to the page once another page of them has gathered.
    fn prune_when_due(&mut self) {
        if self.groups.len() > self.prune_at {
            self.threshold = prune_packed(&mut self.groups, self.size).or(self.threshold.take());
        }
    }

    /// At most `size` groups, the smallest keys, with their parts.
    fn finish(mut self) -> PageGroups {
        prune_packed(&mut self.groups, self.size);
        self.groups
            .into_iter()
            .map(|(key, group)| (key.borrow().to_vec(), group))
            .collect()
    }
}

/// The index-level ("shard") step: `terms` keep their best `shard_size` buckets, and remember
/// the documents and the error bound of what they cut.
fn prune_for_shard(aggs: &[Aggregation], partials: &mut [Partial]) {
    for (agg, partial) in aggs.iter().zip(partials.iter_mut()) {
        match partial {
            Partial::Buckets(acc) => {
                match &agg.kind {
                    AggKind::Terms(terms) => prune_terms(agg, &terms.cut(), acc),
                    AggKind::MultiTerms(terms) => prune_terms(agg, &terms.cut(), acc),
                    AggKind::GeoGrid(grid) => prune_cells(acc, grid.shard_size),
                    AggKind::RareTerms(rare) => {
                        // A term too frequent here is too frequent overall: its count must
                        // stay to keep it out, its sub-aggregations need not.
                        for bucket in acc.buckets.values_mut() {
                            if bucket.doc_count > rare.max_doc_count {
                                bucket.subs.clear();
                            }
                        }
                    }
                    _ => {}
                }
                for bucket in acc.buckets.values_mut() {
                    prune_for_shard(&agg.subs, &mut bucket.subs);
                }
            }
            Partial::Composite(acc) => {
                for bucket in acc.buckets.values_mut() {
                    prune_for_shard(&agg.subs, &mut bucket.subs);
                }
            }
            Partial::Significant(acc) => {
                for bucket in acc.subset.buckets.values_mut() {
                    prune_for_shard(&agg.subs, &mut bucket.subs);
                }
            }
            Partial::AutoDate(acc) => {
                for bucket in acc.buckets.buckets.values_mut() {
                    prune_for_shard(&agg.subs, &mut bucket.subs);
                }
            }
            Partial::Single { subs, .. } => prune_for_shard(&agg.subs, subs),
            _ => {}
        }
    }
}

/// Keeps the fullest `limit` cells of a grid (ties by cell, as Elasticsearch's queue).
fn prune_cells(acc: &mut BucketsAcc, limit: usize) {
    if acc.buckets.len() <= limit {
        return;
    }
    let mut entries: Vec<(Key, BucketAcc)> = acc.buckets.drain().collect();
    entries.sort_by(|a, b| {
        b.1.doc_count
            .cmp(&a.1.doc_count)
            .then_with(|| a.0.cmp(&b.0))
    });
    entries.truncate(limit);
    acc.buckets = entries.into_iter().collect();
}

fn prune_terms(agg: &Aggregation, terms: &TermsCut<'_>, acc: &mut BucketsAcc) {
    if terms.shard_min_doc_count > 0 {
        acc.buckets
            .retain(|_, b| b.doc_count >= terms.shard_min_doc_count);
    }
    let limit = shard_size(terms);
    if acc.buckets.len() < limit {
        acc.error = 0;
        return;
    }
    let mut entries: Vec<(Key, BucketAcc)> = acc.buckets.drain().collect();
    entries.sort_by(|a, b| compare_buckets((&a.0, &a.1), (&b.0, &b.1), terms.order, &agg.subs));
    let cut: Vec<(Key, BucketAcc)> = entries.split_off(limit.min(entries.len()));
    acc.other_doc_count += cut.iter().map(|(_, b)| b.doc_count).sum::<u64>();
    let key_order = matches!(terms.order.first(), Some(BucketOrder::Key(_)));
    let count_desc = matches!(
        terms.order.first(),
        Some(BucketOrder::Count(Direction::Desc))
    );
    acc.error = if key_order {
        0
    } else if count_desc {
        entries.last().map_or(0, |(_, b)| b.doc_count as i64)
    } else {
        -1
    };
    acc.buckets = entries.into_iter().collect();
}

/// Moves `indexes` to the next combination of one key per source (odometer style: the first
/// source turns fastest); false once every combination was visited.
fn next_combination<T>(indexes: &mut [usize], per_source: &[Vec<T>]) -> bool {
    for (slot, keys) in indexes.iter_mut().zip(per_source) {
        *slot += 1;
        if *slot < keys.len() {
            return true;
        }
        *slot = 0;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::{gallop, intersect};
    use tantivy::query::Scorer;
    use tantivy::{DocId, DocSet, TERMINATED};

    /// A scorer over a sorted list of documents.
    struct Listed {
        docs: Vec<DocId>,
        at: usize,
    }

    impl DocSet for Listed {
        fn advance(&mut self) -> DocId {
            self.at += 1;
            self.doc()
        }
        fn doc(&self) -> DocId {
            self.docs.get(self.at).copied().unwrap_or(TERMINATED)
        }
        fn size_hint(&self) -> u32 {
            self.docs.len() as u32
        }
    }

    impl Scorer for Listed {
        fn score(&mut self) -> f32 {
            1.0
        }
    }

    fn scorer(docs: &[DocId]) -> Box<dyn Scorer> {
        Box::new(Listed {
            docs: docs.to_vec(),
            at: 0,
        })
    }

    /// What a merge of the two sorted lists finds.
    fn expected(a: &[DocId], b: &[DocId]) -> Vec<DocId> {
        a.iter().copied().filter(|doc| b.contains(doc)).collect()
    }

    #[test]
    fn intersections_equal_a_plain_merge() {
        let hits: Vec<DocId> = (0..3000).filter(|d| d % 7 == 0 || d % 11 == 3).collect();
        let lists: Vec<Vec<DocId>> = vec![
            vec![],
            (0..3000).collect(),
            (100..2000).collect(),
            (1..2).collect(),
            (0..3000).filter(|d| d % 3 != 0).collect(),
            (0..3000).filter(|d| d % 500 == 0).collect(),
            vec![2999],
            vec![5000, 5001],
        ];
        for list in &lists {
            assert_eq!(intersect(scorer(&hits), list), expected(&hits, list));
            assert_eq!(intersect(scorer(&[]), list), Vec::<DocId>::new());
        }
        // A filter with hits past a contiguous list's end stops at its end.
        let near: Vec<DocId> = vec![5, 6, 9, 10, 200];
        assert_eq!(intersect(scorer(&near), &[6, 7, 8, 9]), vec![6, 9]);
    }

    #[test]
    fn gallop_finds_the_first_document_at_least_the_target() {
        let docs: Vec<DocId> = (0..100).map(|d| d * 2).collect();
        for from in [0, 3, 50] {
            for target in 0..210 {
                let want = docs[from..]
                    .iter()
                    .position(|&d| d >= target)
                    .map_or(docs.len(), |p| from + p);
                assert_eq!(
                    gallop(&docs, from, target),
                    want,
                    "from {from} target {target}"
                );
            }
        }
    }
}
