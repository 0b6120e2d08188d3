//! The final step: the indices' partials merged, then turned into results with Elasticsearch's
//! rules — bucket order and `size`, `min_doc_count`, empty buckets between bounds, keys printed
//! in their format and time zone, nulls over empty sets, pipelines, and `search.max_buckets`.

use std::cmp::Ordering;

use serde_json::Value;

use super::collect::{compare_composite, histogram_key};
use super::format::ValueFormat;
use super::partial::{
    BucketAcc, IndexPartials, Key, Partial, StatsAcc, empty_all, merge_all, merge_bucket,
};
use super::pipeline;
use super::result::{
    AggResult, AggValue, Bucket, BucketKey, Buckets, BucketsKind, ExtendedStats, RangeBounds,
    Stats, TopMetricsRow, java_double,
};
use super::tdigest::TDigest;
use super::{AggKind, Aggregation, AggregationLimits, BucketOrder, Direction, TermsCut};
use crate::error::{Result, SearchError};

/// Counts the buckets of a response against `search.max_buckets`.
pub(crate) struct BucketCounter {
    count: usize,
    max: usize,
}

impl BucketCounter {
    pub(crate) fn add(&mut self, buckets: usize) -> Result<()> {
        self.count += buckets;
        if self.count > self.max {
            return Err(SearchError::TooManyBuckets {
                max: self.max,
                count: self.count,
            });
        }
        Ok(())
    }
}

pub(crate) fn reduce(
    aggs: &[Aggregation],
    shards: Vec<IndexPartials>,
    limits: AggregationLimits,
) -> Result<Vec<AggResult>> {
    let single_index = shards.len() == 1;
    let mut merged = empty_all(aggs);
    for shard in shards {
        merge_all(&mut merged, shard.partials, aggs);
    }
    if single_index {
        // One index is one shard: nothing was cut that another could have counted, so terms
        // report no error, as Elasticsearch does for a single shard's answer.
        clear_term_errors(&mut merged);
    }
    let mut counter = BucketCounter {
        count: 0,
        max: limits.max_buckets,
    };
    finalize_level(aggs, merged, &mut counter)
}

fn clear_term_errors(partials: &mut [Partial]) {
    for partial in partials {
        match partial {
            Partial::Buckets(acc) => {
                acc.error = 0;
                for bucket in acc.buckets.values_mut() {
                    bucket.error = 0;
                    clear_term_errors(&mut bucket.subs);
                }
            }
            Partial::Composite(acc) => {
                for bucket in acc.buckets.values_mut() {
                    clear_term_errors(&mut bucket.subs);
                }
            }
            Partial::Significant(acc) => {
                for bucket in acc.subset.buckets.values_mut() {
                    clear_term_errors(&mut bucket.subs);
                }
            }
            Partial::AutoDate(acc) => {
                for bucket in acc.buckets.buckets.values_mut() {
                    clear_term_errors(&mut bucket.subs);
                }
            }
            Partial::Single { subs, .. } => clear_term_errors(subs),
            _ => {}
        }
    }
}

/// `shard_size` of a terms aggregation: as given, else `size * 1.5 + 10`, never below `size`.
pub(crate) fn shard_size(terms: &TermsCut<'_>) -> usize {
    let default = (terms.size as f64 * 1.5 + 10.0) as usize;
    terms.shard_size.unwrap_or(default).max(terms.size)
}

fn finalize_level(
    aggs: &[Aggregation],
    partials: Vec<Partial>,
    counter: &mut BucketCounter,
) -> Result<Vec<AggResult>> {
    let mut results = Vec::with_capacity(aggs.len());
    for (agg, partial) in aggs.iter().zip(partials) {
        results.push(AggResult {
            name: agg.name.clone(),
            value: finalize(agg, partial, counter)?,
        });
    }
    pipeline::apply_siblings(aggs, &mut results)?;
    Ok(results)
}

fn empty_results(aggs: &[Aggregation], counter: &mut BucketCounter) -> Result<Vec<AggResult>> {
    finalize_level(aggs, empty_all(aggs), counter)
}

fn value(value: Option<f64>, format: &ValueFormat) -> AggValue {
    AggValue::Value {
        value,
        as_string: value.and_then(|v| format.print(v)),
    }
}

fn stats_of(acc: &StatsAcc) -> Stats {
    let empty = acc.count == 0;
    let min = (!empty).then_some(acc.min);
    let max = (!empty).then_some(acc.max);
    let avg = (!empty).then(|| acc.sum() / acc.count as f64);
    let as_strings = (acc.format != ValueFormat::Raw && !empty).then(|| {
        [
            min.and_then(|v| acc.format.print(v)),
            max.and_then(|v| acc.format.print(v)),
            avg.and_then(|v| acc.format.print(v)),
            acc.format.print(acc.sum()),
        ]
    });
    Stats {
        count: acc.count,
        min,
        max,
        avg,
        sum: acc.sum(),
        as_strings,
    }
}

fn extended_stats_of(acc: &StatsAcc, sigma: f64) -> ExtendedStats {
    let stats = stats_of(acc);
    if acc.count == 0 {
        return ExtendedStats {
            stats,
            sum_of_squares: None,
            variance: None,
            variance_population: None,
            variance_sampling: None,
            std_deviation: None,
            std_deviation_population: None,
            std_deviation_sampling: None,
            bounds: [None; 6],
        };
    }
    let count = acc.count as f64;
    let mean = acc.sum() / count;
    let population = ((acc.sum_of_squares() - acc.sum() * acc.sum() / count) / count).max(0.0);
    let sampling = if acc.count > 1 {
        ((acc.sum_of_squares() - acc.sum() * acc.sum() / count) / (count - 1.0)).max(0.0)
    } else {
        f64::NAN
    };
    let (std_population, std_sampling) = (population.sqrt(), sampling.sqrt());
    let finite = |v: f64| v.is_finite().then_some(v);
    ExtendedStats {
        stats,
        sum_of_squares: Some(acc.sum_of_squares()),
        variance: Some(population),
        variance_population: Some(population),
        variance_sampling: finite(sampling),
        std_deviation: Some(std_population),
        std_deviation_population: Some(std_population),
        std_deviation_sampling: finite(std_sampling),
        bounds: [
            Some(mean + sigma * std_population),
            Some(mean - sigma * std_population),
            Some(mean + sigma * std_population),
            Some(mean - sigma * std_population),
            finite(mean + sigma * std_sampling),
            finite(mean - sigma * std_sampling),
        ],
    }
}

/// The median absolute deviation from a digest: the median of the distances of the centroids
/// to the median, as Elasticsearch computes it.
fn median_absolute_deviation(digest: &TDigest, compression: f64) -> Option<f64> {
    let median = digest.quantile(0.5)?;
    let mut deviations = TDigest::new(compression);
    for (mean, weight) in digest.centroids() {
        deviations.add_weighted((mean - median).abs(), weight);
    }
    deviations.quantile(0.5)
}

/// The value a bucket path reads from a partial: a single-value metric, a named value of a
/// multi-value metric, a percentile, or a single bucket's `doc_count`.
pub(crate) fn partial_value(agg: &Aggregation, partial: &Partial, metric: Option<&str>) -> f64 {
    match (partial, &agg.kind) {
        (Partial::Stats(acc), kind) => {
            let count = acc.count as f64;
            let name = match (kind, metric) {
                (_, Some(name)) => name,
                (AggKind::Avg(_), None) => "avg",
                (AggKind::Sum(_), None) => "sum",
                (AggKind::Min(_), None) => "min",
                (AggKind::Max(_), None) => "max",
                (AggKind::ValueCount(_), None) => "count",
                _ => "",
            };
            let empty = acc.count == 0;
            // Avg and sum do not collect the extremes (`collect_one`).
            let extremes = !matches!(kind, AggKind::Avg(_) | AggKind::Sum(_));
            match name {
                "avg" if !empty => acc.sum() / count,
                "sum" => acc.sum(),
                "min" if !empty && extremes => acc.min,
                "max" if !empty && extremes => acc.max,
                "count" | "value" if matches!(kind, AggKind::ValueCount(_)) => count,
                "count" => count,
                "sum_of_squares" if !empty => acc.sum_of_squares(),
                "variance" | "variance_population" if !empty => {
                    ((acc.sum_of_squares() - acc.sum() * acc.sum() / count) / count).max(0.0)
                }
                "std_deviation" | "std_deviation_population" if !empty => {
                    ((acc.sum_of_squares() - acc.sum() * acc.sum() / count) / count)
                        .max(0.0)
                        .sqrt()
                }
                _ => f64::NAN,
            }
        }
        (Partial::Cardinality(sketch), _) => sketch.estimate() as f64,
        (Partial::Digest(digest, _), AggKind::MedianAbsoluteDeviation { compression, .. }) => {
            median_absolute_deviation(digest, *compression).unwrap_or(f64::NAN)
        }
        (Partial::Digest(digest, _), AggKind::PercentileRanks { values, .. }) => {
            let at = metric
                .and_then(|m| m.parse::<f64>().ok())
                .or_else(|| values.first().copied())
                .unwrap_or(f64::NAN);
            digest.cdf(at).map_or(f64::NAN, |r| r * 100.0)
        }
        (Partial::Digest(digest, _), _) => {
            let percent = metric.and_then(|m| m.parse::<f64>().ok()).unwrap_or(50.0);
            digest.quantile(percent / 100.0).unwrap_or(f64::NAN)
        }
        (Partial::Weighted { sum, weight }, _) if *weight != 0.0 => sum / weight,
        (Partial::Single { doc_count, .. }, _) => *doc_count as f64,
        _ => f64::NAN,
    }
}

/// Follows `aggs>path.metric` from a bucket's sub-aggregations.
fn path_value(
    bucket: &BucketAcc,
    subs: &[Aggregation],
    path: &[String],
    metric: Option<&str>,
) -> f64 {
    let mut level_aggs = subs;
    let mut level_partials = &bucket.subs;
    let mut remaining = path;
    while let Some((name, rest)) = remaining.split_first() {
        let Some(position) = level_aggs.iter().position(|a| &a.name == name) else {
            return f64::NAN;
        };
        let (Some(agg), Some(partial)) = (level_aggs.get(position), level_partials.get(position))
        else {
            return f64::NAN;
        };
        if rest.is_empty() {
            return partial_value(agg, partial, metric);
        }
        match partial {
            Partial::Single { subs, .. } => {
                level_aggs = &agg.subs;
                level_partials = subs;
                remaining = rest;
            }
            _ => return f64::NAN,
        }
    }
    bucket.doc_count as f64
}

/// Orders buckets by `order`, then by key ascending, as Elasticsearch's compound order.
pub(crate) fn compare_buckets(
    a: (&Key, &BucketAcc),
    b: (&Key, &BucketAcc),
    order: &[BucketOrder],
    subs: &[Aggregation],
) -> Ordering {
    let directed = |ordering: Ordering, direction: Direction| match direction {
        Direction::Asc => ordering,
        Direction::Desc => ordering.reverse(),
    };
    for entry in order {
        let ordering = match entry {
            BucketOrder::Count(direction) => {
                directed(a.1.doc_count.cmp(&b.1.doc_count), *direction)
            }
            BucketOrder::Key(direction) => directed(a.0.cmp(b.0), *direction),
            BucketOrder::Path {
                aggs,
                metric,
                direction,
            } => {
                let x = path_value(a.1, subs, aggs, metric.as_deref());
                let y = path_value(b.1, subs, aggs, metric.as_deref());
                // Java's Double.compare: NaN above everything.
                directed(x.total_cmp(&y), *direction)
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    a.0.cmp(b.0)
}

fn bucket_key(key: &Key, format: &ValueFormat) -> (BucketKey, Option<String>) {
    match key {
        Key::Str(s) => (BucketKey::Str(format.print_str(s)), None),
        Key::Long(v) => (BucketKey::Long(*v), format.print(*v as f64)),
        Key::Double(v) => (BucketKey::Double(*v), format.print(*v)),
        Key::Tuple(parts) => multi_key(parts, &[]),
    }
}

/// A `multi_terms` key as Elasticsearch prints it: each part in its format (dates as strings,
/// booleans as booleans, plain numbers as numbers), and all parts joined by `|`.
fn multi_key(parts: &[Key], formats: &[ValueFormat]) -> (BucketKey, Option<String>) {
    let mut values = Vec::with_capacity(parts.len());
    let mut texts = Vec::with_capacity(parts.len());
    for (i, part) in parts.iter().enumerate() {
        let format = formats.get(i).unwrap_or(&ValueFormat::Raw);
        let (value, text) = match part {
            Key::Str(s) => {
                let text = format.print_str(s);
                (Value::String(text.clone()), text)
            }
            Key::Long(v) => match format.print(*v as f64) {
                Some(text) if *format == ValueFormat::Boolean => (Value::Bool(*v != 0), text),
                Some(text) => (Value::String(text.clone()), text),
                None => (Value::from(*v), v.to_string()),
            },
            Key::Double(v) => match format.print(*v) {
                Some(text) => (Value::String(text.clone()), text),
                None => (number_json(*v), java_double(*v)),
            },
            Key::Tuple(inner) => {
                let (_, text) = multi_key(inner, &[]);
                let text = text.unwrap_or_default();
                (Value::String(text.clone()), text)
            }
        };
        values.push(value);
        texts.push(text);
    }
    (BucketKey::Multi(values), Some(texts.join("|")))
}

fn finalize_bucket(
    agg: &Aggregation,
    key: BucketKey,
    key_as_string: Option<String>,
    bucket: BucketAcc,
    counter: &mut BucketCounter,
) -> Result<Bucket> {
    let subs = if bucket.subs.is_empty() {
        empty_results(&agg.subs, counter)?
    } else {
        finalize_level(&agg.subs, bucket.subs, counter)?
    };
    Ok(Bucket {
        key,
        key_as_string,
        doc_count: bucket.doc_count,
        doc_count_error: None,
        significance: None,
        range: None,
        subs,
    })
}

fn empty_bucket(agg: &Aggregation) -> BucketAcc {
    BucketAcc {
        doc_count: 0,
        error: 0,
        subs: empty_all(&agg.subs),
    }
}

fn finalize(agg: &Aggregation, partial: Partial, counter: &mut BucketCounter) -> Result<AggValue> {
    Ok(match (&agg.kind, partial) {
        (AggKind::Avg(_), Partial::Stats(acc)) => value(
            (acc.count > 0).then(|| acc.sum() / acc.count as f64),
            &acc.format,
        ),
        (AggKind::Sum(_), Partial::Stats(acc)) => value(Some(acc.sum()), &acc.format),
        (AggKind::Min(_), Partial::Stats(acc)) => {
            value((acc.count > 0).then_some(acc.min), &acc.format)
        }
        (AggKind::Max(_), Partial::Stats(acc)) => {
            value((acc.count > 0).then_some(acc.max), &acc.format)
        }
        (AggKind::ValueCount(_), Partial::Stats(acc)) => AggValue::Count(acc.count),
        (AggKind::Stats(_), Partial::Stats(acc)) => AggValue::Stats(stats_of(&acc)),
        (AggKind::ExtendedStats { sigma, .. }, Partial::Stats(acc)) => {
            AggValue::ExtendedStats(Box::new(extended_stats_of(&acc, *sigma)))
        }
        (AggKind::Cardinality { .. }, Partial::Cardinality(sketch)) => {
            AggValue::Count(sketch.estimate())
        }
        (
            AggKind::Percentiles {
                percents, keyed, ..
            },
            Partial::Digest(digest, format),
        ) => AggValue::Percentiles {
            keyed: *keyed,
            values: percents
                .iter()
                .map(|&p| {
                    let v = digest.quantile(p / 100.0);
                    (p, v, v.and_then(|v| format.print(v)))
                })
                .collect(),
        },
        (AggKind::PercentileRanks { values, keyed, .. }, Partial::Digest(digest, _)) => {
            AggValue::Percentiles {
                keyed: *keyed,
                values: values
                    .iter()
                    .map(|&v| (v, digest.cdf(v).map(|r| r * 100.0), None))
                    .collect(),
            }
        }
        (AggKind::MedianAbsoluteDeviation { compression, .. }, Partial::Digest(digest, format)) => {
            value(median_absolute_deviation(&digest, *compression), &format)
        }
        (AggKind::WeightedAvg { .. }, Partial::Weighted { sum, weight }) => AggValue::Value {
            value: (weight != 0.0).then(|| sum / weight),
            as_string: None,
        },
        (AggKind::TopHits(top), Partial::TopHits(acc)) => AggValue::TopHits {
            total: acc.total,
            max_score: acc.max_score,
            hits: acc
                .hits
                .into_iter()
                .skip(top.from)
                .take(top.size)
                .map(|(_, hit)| hit)
                .collect(),
        },
        (AggKind::TopMetrics(top), Partial::TopMetrics(acc)) => AggValue::TopMetrics(
            acc.rows
                .into_iter()
                .map(|(sort, metrics)| TopMetricsRow {
                    sort: vec![sort_json(&sort, &acc.sort_format)],
                    metrics: top
                        .metrics
                        .iter()
                        .zip(metrics)
                        .zip(&acc.formats)
                        .map(|((name, v), format)| {
                            let json = match (v, format) {
                                (Some(v), ValueFormat::Date(..)) => {
                                    format.print(v).map_or(Value::Null, Value::String)
                                }
                                (Some(v), _) => number_json(v),
                                (None, _) => Value::Null,
                            };
                            (name.clone(), json)
                        })
                        .collect(),
                })
                .collect(),
        ),
        (AggKind::Terms(terms), Partial::Buckets(acc)) => {
            finalize_terms(agg, &terms.cut(), acc, counter)?
        }
        (AggKind::MultiTerms(terms), Partial::Buckets(acc)) => {
            finalize_terms(agg, &terms.cut(), acc, counter)?
        }
        (AggKind::AutoDateHistogram(spec), Partial::AutoDate(acc)) => {
            finalize_auto_date(agg, spec, acc, counter)?
        }
        (AggKind::SignificantTerms(significant), Partial::Significant(acc)) => {
            finalize_significant(agg, significant, acc, counter)?
        }
        (AggKind::RareTerms(rare), Partial::Buckets(acc)) => {
            let mut entries: Vec<(Key, BucketAcc)> = acc
                .buckets
                .into_iter()
                .filter(|(_, b)| b.doc_count <= rare.max_doc_count)
                .collect();
            let order = [
                BucketOrder::Count(Direction::Asc),
                BucketOrder::Key(Direction::Asc),
            ];
            entries.sort_by(|a, b| compare_buckets((&a.0, &a.1), (&b.0, &b.1), &order, &agg.subs));
            multi_buckets(agg, entries, &acc.format, false, counter)?
        }
        (AggKind::Histogram(histogram), Partial::Buckets(acc)) => {
            let mut entries: Vec<(Key, BucketAcc)> = acc.buckets.into_iter().collect();
            if let Some((min, max)) = histogram.hard_bounds {
                entries.retain(|(k, _)| {
                    let v = k.as_f64().unwrap_or(0.0);
                    min.is_none_or(|m| v >= histogram_key(m, histogram.interval, histogram.offset))
                        && max.is_none_or(|m| v <= m)
                });
            }
            entries.retain(|(_, b)| {
                b.doc_count >= histogram.min_doc_count.max(1) || histogram.min_doc_count == 0
            });
            if histogram.min_doc_count == 0 {
                fill_histogram(agg, histogram, &mut entries, counter)?;
            }
            entries.sort_by(|a, b| {
                compare_buckets(
                    (&a.0, &a.1),
                    (&b.0, &b.1),
                    &order_or_key(&histogram.order),
                    &agg.subs,
                )
            });
            let format = acc.format;
            multi_buckets(agg, entries, &format, histogram.keyed, counter)?
        }
        (AggKind::DateHistogram(histogram), Partial::Buckets(acc)) => {
            let mut entries: Vec<(Key, BucketAcc)> = acc.buckets.into_iter().collect();
            if let Some((min, max)) = histogram.hard_bounds {
                entries.retain(|(k, _)| {
                    let v = match k {
                        Key::Long(v) => *v,
                        _ => 0,
                    };
                    min.is_none_or(|m| v >= histogram.rounding.round(m))
                        && max.is_none_or(|m| v <= m)
                });
            }
            if histogram.min_doc_count > 0 {
                entries.retain(|(_, b)| b.doc_count >= histogram.min_doc_count);
            } else {
                fill_date_histogram(agg, histogram, &mut entries, counter)?;
            }
            entries.sort_by(|a, b| {
                compare_buckets(
                    (&a.0, &a.1),
                    (&b.0, &b.1),
                    &order_or_key(&histogram.order),
                    &agg.subs,
                )
            });
            let format = match acc.format {
                ValueFormat::Date(format, _) => {
                    ValueFormat::Date(format, histogram.rounding.time_zone.clone())
                }
                ValueFormat::Raw => ValueFormat::Date(
                    super::format::DateFormat::parse(
                        histogram
                            .source
                            .format
                            .as_deref()
                            .unwrap_or(crate::date::DEFAULT_DATE_FORMAT),
                    )
                    .map_err(SearchError::illegal)?,
                    histogram.rounding.time_zone.clone(),
                ),
                other => other,
            };
            multi_buckets(agg, entries, &format, histogram.keyed, counter)?
        }
        (AggKind::IpRange(range), Partial::Buckets(mut acc)) => {
            counter.add(range.ranges.len())?;
            let mut buckets = Vec::with_capacity(range.ranges.len());
            for (i, spec) in range.ranges.iter().enumerate() {
                let bucket = acc
                    .buckets
                    .remove(&Key::Long(i as i64))
                    .unwrap_or_else(|| empty_bucket(agg));
                let print = |bound: &Option<String>| {
                    bound
                        .as_deref()
                        .map(|encoded| ValueFormat::Ip.print_str(encoded))
                };
                let (from_text, to_text) = (print(&spec.from), print(&spec.to));
                let key = spec.key.clone().unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        from_text.as_deref().unwrap_or("*"),
                        to_text.as_deref().unwrap_or("*")
                    )
                });
                let mut done = finalize_bucket(agg, BucketKey::Str(key), None, bucket, counter)?;
                done.range = Some(RangeBounds {
                    from: None,
                    to: None,
                    from_as_string: from_text,
                    to_as_string: to_text,
                    addresses: true,
                });
                buckets.push(done);
            }
            pipeline::apply_parents(agg, &mut buckets)?;
            AggValue::Buckets(Buckets {
                keyed: range.keyed,
                buckets,
                kind: BucketsKind::Plain,
            })
        }
        (AggKind::Range(range), Partial::Buckets(mut acc)) => {
            counter.add(range.ranges.len())?;
            let format = match (&acc.format, &range.date_zone) {
                (ValueFormat::Date(format, _), Some(zone)) => {
                    ValueFormat::Date(format.clone(), zone.clone())
                }
                (ValueFormat::Raw, Some(zone)) => ValueFormat::Date(
                    super::format::DateFormat::parse(
                        range
                            .source
                            .format
                            .as_deref()
                            .unwrap_or(crate::date::DEFAULT_DATE_FORMAT),
                    )
                    .map_err(SearchError::illegal)?,
                    zone.clone(),
                ),
                (format, _) => format.clone(),
            };
            let mut buckets = Vec::with_capacity(range.ranges.len());
            for (i, spec) in range.ranges.iter().enumerate() {
                let bucket = acc
                    .buckets
                    .remove(&Key::Long(i as i64))
                    .unwrap_or_else(|| empty_bucket(agg));
                let print = |v: Option<f64>| v.and_then(|v| format.print(v));
                let (from_text, to_text) = (print(spec.from), print(spec.to));
                let show = |v: Option<f64>, text: &Option<String>| match (v, text) {
                    (None, _) => "*".to_string(),
                    (Some(_), Some(text)) => text.clone(),
                    (Some(v), None) => java_double(v),
                };
                let key = spec.key.clone().unwrap_or_else(|| {
                    format!(
                        "{}-{}",
                        show(spec.from, &from_text),
                        show(spec.to, &to_text)
                    )
                });
                let mut done = finalize_bucket(agg, BucketKey::Str(key), None, bucket, counter)?;
                done.range = Some(RangeBounds {
                    from: spec.from,
                    to: spec.to,
                    from_as_string: from_text,
                    to_as_string: to_text,
                    addresses: false,
                });
                buckets.push(done);
            }
            pipeline::apply_parents(agg, &mut buckets)?;
            AggValue::Buckets(Buckets {
                keyed: range.keyed,
                buckets,
                kind: BucketsKind::Plain,
            })
        }
        (AggKind::Filters(filters), Partial::Buckets(mut acc)) => {
            let mut named: Vec<(usize, Option<String>)> = filters
                .filters
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (i, name.clone()))
                .collect();
            if filters.keyed {
                named.sort_by(|a, b| a.1.cmp(&b.1));
            }
            if let Some(other) = &filters.other_bucket_key {
                let anonymous = filters.filters.iter().all(|(name, _)| name.is_none());
                named.push((filters.filters.len(), (!anonymous).then(|| other.clone())));
            }
            counter.add(named.len())?;
            let mut buckets = Vec::with_capacity(named.len());
            for (i, name) in named {
                let bucket = acc
                    .buckets
                    .remove(&Key::Long(i as i64))
                    .unwrap_or_else(|| empty_bucket(agg));
                buckets.push(finalize_bucket(
                    agg,
                    name.map_or(BucketKey::Anonymous, BucketKey::Str),
                    None,
                    bucket,
                    counter,
                )?);
            }
            pipeline::apply_parents(agg, &mut buckets)?;
            AggValue::Buckets(Buckets {
                keyed: filters.keyed,
                buckets,
                kind: BucketsKind::Plain,
            })
        }
        (
            AggKind::Filter(_)
            | AggKind::Missing(_)
            | AggKind::Global
            | AggKind::Nested(_)
            | AggKind::ReverseNested(_)
            | AggKind::Sampler(_),
            Partial::Single { doc_count, subs },
        ) => AggValue::SingleBucket {
            doc_count,
            subs: finalize_level(&agg.subs, subs, counter)?,
        },
        (AggKind::Composite(composite), Partial::Composite(acc)) => {
            let mut entries: Vec<(Vec<Option<Key>>, BucketAcc)> = acc.buckets.into_iter().collect();
            entries.sort_by(|a, b| compare_composite(&a.0, &b.0, composite));
            entries.truncate(composite.size);
            counter.add(entries.len())?;
            let key_json = |key: &[Option<Key>]| -> Vec<(String, Value)> {
                composite
                    .sources
                    .iter()
                    .zip(key)
                    .zip(&acc.formats)
                    .map(|((source, part), format)| {
                        let json = match part {
                            None => Value::Null,
                            Some(Key::Str(s)) => Value::String(format.print_str(s)),
                            Some(Key::Long(v)) => match format {
                                ValueFormat::Raw => Value::from(*v),
                                ValueFormat::Geotile => Value::String(crate::geo::geotile_text(*v)),
                                _ => format
                                    .print(*v as f64)
                                    .map_or(Value::from(*v), Value::String),
                            },
                            Some(Key::Double(v)) => number_json_double(*v),
                            // Composite sources hold single keys, never tuples.
                            Some(Key::Tuple(_)) => Value::Null,
                        };
                        (source.name.clone(), json)
                    })
                    .collect()
            };
            let after_key = entries.last().map(|(key, _)| key_json(key));
            let mut buckets = Vec::with_capacity(entries.len());
            for (key, bucket) in entries {
                buckets.push(finalize_bucket(
                    agg,
                    BucketKey::Composite(key_json(&key)),
                    None,
                    bucket,
                    counter,
                )?);
            }
            pipeline::apply_parents(agg, &mut buckets)?;
            AggValue::Buckets(Buckets {
                keyed: false,
                buckets,
                kind: BucketsKind::Composite { after_key },
            })
        }
        (AggKind::GeoGrid(grid), Partial::Buckets(acc)) => {
            let mut entries: Vec<(Key, BucketAcc)> = acc.buckets.into_iter().collect();
            // The fullest cells first, ties by cell, as Elasticsearch's queue orders them.
            entries.sort_by(|a, b| {
                b.1.doc_count
                    .cmp(&a.1.doc_count)
                    .then_with(|| a.0.cmp(&b.0))
            });
            entries.truncate(grid.size);
            counter.add(entries.len())?;
            let mut buckets = Vec::with_capacity(entries.len());
            for (key, bucket) in entries {
                let cell = match key {
                    Key::Long(cell) => cell as u64,
                    _ => 0,
                };
                let text = match grid.cells {
                    super::GeoCells::Geohash { precision } => {
                        crate::geo::geohash_text(cell, precision)
                    }
                    super::GeoCells::Geotile { zoom } => {
                        format!("{zoom}/{}/{}", cell >> 32, cell & 0xffff_ffff)
                    }
                };
                buckets.push(finalize_bucket(
                    agg,
                    BucketKey::Str(text),
                    None,
                    bucket,
                    counter,
                )?);
            }
            pipeline::apply_parents(agg, &mut buckets)?;
            AggValue::Buckets(Buckets {
                keyed: false,
                buckets,
                kind: BucketsKind::Plain,
            })
        }
        (AggKind::GeoBounds { wrap_longitude, .. }, Partial::GeoBounds(acc)) => {
            AggValue::GeoBounds(acc.bounds(*wrap_longitude))
        }
        (AggKind::GeoCentroid { .. }, Partial::GeoCentroid { lat, lon, count }) => {
            AggValue::GeoCentroid {
                location: (count > 0)
                    .then(|| crate::geo::GeoPoint::new(lat / count as f64, lon / count as f64)),
                count,
            }
        }
        (AggKind::Pipeline(_), _) => AggValue::Value {
            value: None,
            as_string: None,
        },
        (kind, _) => {
            return Err(SearchError::AggregationExecution {
                reason: format!(
                    "partial result of the wrong shape for [{}] of type [{}]",
                    agg.name,
                    kind.type_name()
                ),
            });
        }
    })
}

fn order_or_key(order: &[BucketOrder]) -> Vec<BucketOrder> {
    if order.is_empty() {
        vec![BucketOrder::Key(Direction::Asc)]
    } else {
        order.to_vec()
    }
}

fn number_json(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn number_json_double(v: f64) -> Value {
    number_json(v)
}

fn sort_json(value: &super::partial::SortValue, format: &ValueFormat) -> Value {
    match value {
        super::partial::SortValue::Missing => Value::Null,
        super::partial::SortValue::Number(v) => match format {
            ValueFormat::Date(..) => format.print(*v).map_or(Value::Null, Value::String),
            _ => number_json(*v),
        },
        super::partial::SortValue::Str(s) => Value::String(format.print_str(s)),
    }
}

fn multi_buckets(
    agg: &Aggregation,
    entries: Vec<(Key, BucketAcc)>,
    format: &ValueFormat,
    keyed: bool,
    counter: &mut BucketCounter,
) -> Result<AggValue> {
    counter.add(entries.len())?;
    let mut buckets = Vec::with_capacity(entries.len());
    for (key, bucket) in entries {
        let (key, key_as_string) = bucket_key(&key, format);
        buckets.push(finalize_bucket(agg, key, key_as_string, bucket, counter)?);
    }
    pipeline::apply_parents(agg, &mut buckets)?;
    Ok(AggValue::Buckets(Buckets {
        keyed,
        buckets,
        kind: BucketsKind::Plain,
    }))
}

/// Elasticsearch's final steps: coarser roundings while the buckets (or, to keep the filling
/// bounded, their span) exceed the target, empty buckets between the first and the last, then
/// consecutive buckets merged by the smallest inner interval that meets the target.
fn finalize_auto_date(
    agg: &Aggregation,
    spec: &super::AutoDateHistogram,
    mut acc: super::partial::AutoDateAcc,
    counter: &mut BucketCounter,
) -> Result<AggValue> {
    let levels = super::AUTO_DATE_ROUNDINGS.len();
    while acc.level + 1 < levels && !spec.fits(acc.level, acc.buckets.buckets.len(), acc.span()) {
        let next = acc.level + 1;
        acc.coarsen(next, spec, &agg.subs);
    }
    let mut entries: Vec<(i64, BucketAcc)> = acc
        .buckets
        .buckets
        .into_iter()
        .filter_map(|(key, bucket)| match key {
            Key::Long(v) => Some((v, bucket)),
            _ => None,
        })
        .collect();
    entries.sort_by_key(|(key, _)| *key);
    let mut level = acc.level;
    // Empty buckets between the first and the last, at each level tried.
    while let Some(rounding) = spec.rounding(level) {
        let mut filled: Vec<(i64, BucketAcc)> = Vec::with_capacity(entries.len());
        let mut present = entries.into_iter().peekable();
        while let Some((key, bucket)) = present.next() {
            filled.push((key, bucket));
            if let Some((following, _)) = present.peek() {
                let mut next = rounding.next(key);
                while next < *following && next > key {
                    filled.push((next, empty_bucket(agg)));
                    if filled.len() > counter.max {
                        return Err(SearchError::TooManyBuckets {
                            max: counter.max,
                            count: filled.len(),
                        });
                    }
                    next = rounding.next(next);
                }
            }
        }
        entries = filled;
        if level + 1 >= levels || spec.fits(level, entries.len(), 0) {
            break;
        }
        level += 1;
        let Some(coarser) = spec.rounding(level) else {
            break;
        };
        let mut merged: Vec<(i64, BucketAcc)> = Vec::new();
        for (key, bucket) in entries {
            let key = coarser.round(key);
            match merged.last_mut() {
                Some((last, existing)) if *last == key => merge_bucket(existing, bucket, &agg.subs),
                _ => merged.push((key, bucket)),
            }
        }
        entries = merged;
    }
    let info = super::AUTO_DATE_ROUNDINGS
        .get(level)
        .unwrap_or(&super::AUTO_DATE_ROUNDINGS[0]);
    let mut inner = 1;
    if entries.len() > spec.buckets
        && let Some(&interval) = info
            .inner_intervals
            .iter()
            .find(|&&i| entries.len().div_ceil(i) <= spec.buckets)
    {
        inner = interval;
        let mut merged: Vec<(i64, BucketAcc)> = Vec::with_capacity(entries.len() / inner + 1);
        for (i, (key, bucket)) in entries.into_iter().enumerate() {
            match merged.last_mut() {
                Some((_, existing)) if i % inner != 0 => merge_bucket(existing, bucket, &agg.subs),
                _ => merged.push((key, bucket)),
            }
        }
        entries = merged;
    }
    let format = match acc.buckets.format {
        ValueFormat::Date(format, _) => ValueFormat::Date(format, spec.time_zone.clone()),
        ValueFormat::Raw => ValueFormat::Date(
            super::format::DateFormat::parse(
                spec.source
                    .format
                    .as_deref()
                    .unwrap_or(crate::date::DEFAULT_DATE_FORMAT),
            )
            .map_err(SearchError::illegal)?,
            spec.time_zone.clone(),
        ),
        other => other,
    };
    let entries = entries
        .into_iter()
        .map(|(key, bucket)| (Key::Long(key), bucket))
        .collect();
    let mut value = multi_buckets(agg, entries, &format, false, counter)?;
    if let AggValue::Buckets(buckets) = &mut value {
        buckets.kind = BucketsKind::AutoDate {
            interval: format!("{inner}{}", info.abbreviation),
        };
    }
    Ok(value)
}

fn finalize_significant(
    agg: &Aggregation,
    significant: &super::SignificantTerms,
    acc: super::partial::SignificantAcc,
    counter: &mut BucketCounter,
) -> Result<AggValue> {
    let superset_size: u64 = acc.backgrounds.iter().map(|b| b.size).sum();
    let subset_size = acc.subset_size;
    let mut scored: Vec<(Key, BucketAcc, f64, u64)> = Vec::new();
    for (key, bucket) in acc.subset.buckets {
        let bg_count: u64 = acc
            .backgrounds
            .iter()
            .map(|b| b.counts.get(&key).copied().unwrap_or(0))
            .sum();
        let Some(score) =
            significant
                .significance
                .score(bucket.doc_count, subset_size, bg_count, superset_size)
        else {
            return Err(SearchError::illegal(
                "subsetFreq > supersetFreq, do you have background_is_superset set to true but your background_filter does not include all of the subset documents?",
            ));
        };
        if score > 0.0 && bucket.doc_count >= significant.min_doc_count {
            scored.push((key, bucket, score, bg_count));
        }
    }
    // The most significant first; ties by key, so answers are stable.
    scored.sort_by(|a, b| b.2.total_cmp(&a.2).then_with(|| a.0.cmp(&b.0)));
    scored.truncate(significant.size);
    counter.add(scored.len())?;
    let mut buckets = Vec::with_capacity(scored.len());
    for (key, bucket, score, bg_count) in scored {
        let (key, key_as_string) = bucket_key(&key, &acc.subset.format);
        let mut done = finalize_bucket(agg, key, key_as_string, bucket, counter)?;
        done.significance = Some((score, bg_count));
        buckets.push(done);
    }
    pipeline::apply_parents(agg, &mut buckets)?;
    Ok(AggValue::Buckets(Buckets {
        keyed: false,
        buckets,
        kind: BucketsKind::Significant {
            doc_count: subset_size,
            bg_count: superset_size,
        },
    }))
}

fn finalize_terms(
    agg: &Aggregation,
    terms: &TermsCut<'_>,
    acc: super::partial::BucketsAcc,
    counter: &mut BucketCounter,
) -> Result<AggValue> {
    let order = terms.order;
    let mut entries: Vec<(Key, BucketAcc)> = acc.buckets.into_iter().collect();
    entries.sort_by(|a, b| compare_buckets((&a.0, &a.1), (&b.0, &b.1), order, &agg.subs));
    let mut other = acc.other_doc_count;
    let mut kept = Vec::with_capacity(terms.size.min(entries.len()));
    for (key, bucket) in entries {
        if kept.len() < terms.size && bucket.doc_count >= terms.min_doc_count {
            kept.push((key, bucket));
        } else {
            other += bucket.doc_count;
        }
    }
    let key_order = matches!(order.first(), Some(BucketOrder::Key(_)));
    let error = if key_order { 0 } else { acc.error };
    counter.add(kept.len())?;
    let mut buckets = Vec::with_capacity(kept.len());
    for (key, bucket) in kept {
        let bucket_error = if key_order { 0 } else { bucket.error };
        let (key, key_as_string) = match &key {
            Key::Tuple(parts) => multi_key(parts, &acc.part_formats),
            _ => bucket_key(&key, &acc.format),
        };
        let mut done = finalize_bucket(agg, key, key_as_string, bucket, counter)?;
        if terms.show_term_doc_count_error {
            done.doc_count_error = Some(bucket_error);
        }
        buckets.push(done);
    }
    pipeline::apply_parents(agg, &mut buckets)?;
    Ok(AggValue::Buckets(Buckets {
        keyed: false,
        buckets,
        kind: BucketsKind::Terms {
            doc_count_error_upper_bound: error,
            sum_other_doc_count: other,
        },
    }))
}

fn fill_histogram(
    agg: &Aggregation,
    histogram: &super::Histogram,
    entries: &mut Vec<(Key, BucketAcc)>,
    counter: &BucketCounter,
) -> Result<()> {
    let interval = histogram.interval;
    let offset = histogram.offset;
    let index_of = |v: f64| ((v - offset) / interval).floor();
    let mut low = entries
        .iter()
        .filter_map(|(k, _)| k.as_f64())
        .map(index_of)
        .reduce(f64::min);
    let mut high = entries
        .iter()
        .filter_map(|(k, _)| k.as_f64())
        .map(index_of)
        .reduce(f64::max);
    if let Some((min, max)) = histogram.extended_bounds {
        let (min, max) = match histogram.hard_bounds {
            Some((hard_min, hard_max)) => (
                hard_min.map_or(min, |h| min.max(h)),
                hard_max.map_or(max, |h| max.min(h)),
            ),
            None => (min, max),
        };
        low = Some(low.map_or(index_of(min), |l| l.min(index_of(min))));
        high = Some(high.map_or(index_of(max), |h| h.max(index_of(max))));
    }
    let (Some(low), Some(high)) = (low, high) else {
        return Ok(());
    };
    let count = (high - low + 1.0).max(0.0);
    if count > (counter.max - counter.count.min(counter.max)) as f64 {
        return Err(SearchError::TooManyBuckets {
            max: counter.max,
            count: counter.count + count.min(usize::MAX as f64) as usize,
        });
    }
    let existing: std::collections::HashSet<u64> = entries
        .iter()
        .filter_map(|(k, _)| k.as_f64())
        .map(|v| index_of(v).to_bits())
        .collect();
    let mut i = low;
    while i <= high {
        if !existing.contains(&i.to_bits()) {
            entries.push((Key::Double(i * interval + offset), empty_bucket(agg)));
        }
        i += 1.0;
    }
    Ok(())
}

fn fill_date_histogram(
    agg: &Aggregation,
    histogram: &super::DateHistogram,
    entries: &mut Vec<(Key, BucketAcc)>,
    counter: &BucketCounter,
) -> Result<()> {
    let rounding = &histogram.rounding;
    let keys = entries.iter().filter_map(|(k, _)| match k {
        Key::Long(v) => Some(*v),
        _ => None,
    });
    let mut low = keys.clone().min();
    let mut high = keys.max();
    if let Some((min, max)) = histogram.extended_bounds {
        let (min, max) = match histogram.hard_bounds {
            Some((hard_min, hard_max)) => (
                hard_min.map_or(min, |h| min.max(h)),
                hard_max.map_or(max, |h| max.min(h)),
            ),
            None => (min, max),
        };
        if min <= max {
            let (min, max) = (rounding.round(min), rounding.round(max));
            low = Some(low.map_or(min, |l| l.min(min)));
            high = Some(high.map_or(max, |h| h.max(max)));
        }
    }
    let (Some(low), Some(high)) = (low, high) else {
        return Ok(());
    };
    let existing: std::collections::HashSet<i64> = entries
        .iter()
        .filter_map(|(k, _)| match k {
            Key::Long(v) => Some(*v),
            _ => None,
        })
        .collect();
    let room = counter.max.saturating_sub(counter.count);
    let mut key = low;
    let mut total = 0usize;
    while key <= high {
        total += 1;
        if total > room {
            return Err(SearchError::TooManyBuckets {
                max: counter.max,
                count: counter.count + total,
            });
        }
        if !existing.contains(&key) {
            entries.push((Key::Long(key), empty_bucket(agg)));
        }
        let next = rounding.next(key);
        if next <= key {
            break;
        }
        key = next;
    }
    Ok(())
}
