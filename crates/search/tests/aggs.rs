//! Aggregations against straightforward reference implementations.
//!
//! The property: for random documents with random timestamps, many of them close to the
//! daylight-saving transitions of Europe/London, America/New_York, Australia/Lord_Howe (a
//! half-hour shift) and Asia/Kolkata (a half-hour offset, no transitions), spread over two indices
//! of two segments each, every date histogram's keys, `key_as_string` and counts equal those of a
//! sorted scan written from the documented rules, and terms, metrics, cardinality and
//! percentiles equal an exact computation (percentiles within the t-digest's error).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use proptest::prelude::*;
use serde_json::json;
use sluice_search::aggs::{
    self, AggKind, AggResult, AggValue, Aggregation, AggregationLimits, BucketKey, CalendarUnit,
    Composite, CompositeSource, CompositeSourceKind, DateHistogram, Direction, Interval,
    MultiTerms, RareTerms, Rounding, Significance, SignificantTerms, Terms, ValueSource,
};
use sluice_search::{Index, Mappings, Query, SearchError};

const ZONES: [&str; 4] = [
    "Europe/London",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];
const UNITS: [CalendarUnit; 6] = [
    CalendarUnit::Hour,
    CalendarUnit::Day,
    CalendarUnit::Week,
    CalendarUnit::Month,
    CalendarUnit::Quarter,
    CalendarUnit::Year,
];
const FIXED_MINUTES: [i64; 4] = [30, 120, 180, 1440];
const KEYS: [&str; 5] = ["aapl", "amzn", "goog", "msft", "tsla"];

/// Instants around which timestamps cluster: the 2025 and 2026 transitions of the zones.
fn transition_instants() -> Vec<i64> {
    let mut instants = Vec::new();
    for zone in ZONES {
        let tz = TimeZone::get(zone).unwrap();
        let start: Timestamp = "2025-01-01T00:00:00Z".parse().unwrap();
        for transition in tz.following(start).take(4) {
            instants.push(transition.timestamp().as_millisecond());
        }
    }
    instants.push(
        Timestamp::from_second(1_767_225_600)
            .unwrap()
            .as_millisecond(),
    ); // 2026-01-01
    instants
}

#[derive(Debug, Clone)]
struct Doc {
    t: i64,
    key: usize,
    value: i64,
}

fn docs() -> impl Strategy<Value = Vec<Doc>> {
    let anchors = transition_instants();
    let anchors_len = anchors.len();
    prop::collection::vec(
        (
            0..anchors_len,
            -3 * 86_400_000i64..3 * 86_400_000,
            0..KEYS.len(),
            -500i64..500,
        ),
        1..120,
    )
    .prop_map(move |raw| {
        raw.into_iter()
            .map(|(anchor, delta, key, value)| Doc {
                t: anchors[anchor] + delta,
                key,
                value,
            })
            .collect()
    })
}

fn mappings() -> Mappings {
    Mappings::from_json(&json!({"properties": {
        "t": {"type": "date"},
        "k": {"type": "keyword"},
        "v": {"type": "long"},
        "msg": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}
    }}))
    .unwrap()
}

/// Two indices, each written in two refreshed batches (two segments).
fn indices(dir: &std::path::Path, docs: &[Doc]) -> Vec<Arc<Index>> {
    let documents: Vec<_> = docs
        .iter()
        .map(|d| json!({"t": d.t, "k": KEYS[d.key], "v": d.value, "msg": "hello world"}))
        .collect();
    common::split_indices(dir, mappings, &documents)
}

fn everything(indices: &[Arc<Index>]) -> Vec<(Arc<Index>, Query)> {
    indices
        .iter()
        .map(|i| (i.clone(), Query::match_all()))
        .collect()
}

fn run(indices: &[Arc<Index>], aggs: Vec<Aggregation>) -> Result<Vec<AggResult>, SearchError> {
    aggs::aggregate(&everything(indices), &aggs, AggregationLimits::default())
}

fn agg(name: &str, kind: AggKind) -> Aggregation {
    Aggregation {
        name: name.into(),
        kind,
        subs: Vec::new(),
    }
}

/// `terms` as Elasticsearch's defaults: the ten largest counts.
fn top_ten(field: &str) -> Terms {
    Terms {
        source: ValueSource::field(field),
        size: 10,
        shard_size: None,
        min_doc_count: 1,
        shard_min_doc_count: 0,
        order: Vec::new(),
        include: None,
        exclude: None,
        show_term_doc_count_error: false,
    }
}

fn date_histogram(interval: Interval, zone: &str) -> AggKind {
    AggKind::DateHistogram(DateHistogram {
        source: ValueSource::field("t"),
        rounding: Rounding::new(interval, TimeZone::get(zone).unwrap(), 0),
        min_doc_count: 1,
        extended_bounds: None,
        hard_bounds: None,
        order: Vec::new(),
        keyed: false,
    })
}

/// The reference key of a timestamp: the documented rules, written the plain way.
fn reference_key(t: i64, interval: Interval, tz: &TimeZone) -> i64 {
    const MINUTE: i64 = 60_000;
    let offset_ms = |k: i64| {
        i64::from(
            tz.to_offset(Timestamp::from_millisecond(k).unwrap())
                .seconds(),
        ) * 1000
    };
    let local = |k: i64| tz.to_datetime(Timestamp::from_millisecond(k).unwrap());
    let first_instant = |date: jiff::civil::Date| -> i64 {
        // The first instant of a local date: midnight, or when the day began if midnight fell in a gap.
        tz.to_ambiguous_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
            .compatible()
            .unwrap()
            .as_millisecond()
    };
    match interval {
        Interval::Calendar(unit) if unit >= CalendarUnit::Day => {
            let date = local(t).date();
            let start = match unit {
                CalendarUnit::Day => date,
                CalendarUnit::Week => date
                    .checked_sub((date.weekday().to_monday_zero_offset() as i64).days())
                    .unwrap(),
                CalendarUnit::Month => date.first_of_month(),
                CalendarUnit::Quarter => {
                    jiff::civil::date(date.year(), (date.month() - 1) / 3 * 3 + 1, 1)
                }
                _ => jiff::civil::date(date.year(), 1, 1),
            };
            first_instant(start)
        }
        Interval::Calendar(unit) => {
            // The latest minute at or before t whose local time starts the unit.
            let mut k = t.div_euclid(MINUTE) * MINUTE;
            loop {
                let l = local(k);
                if unit == CalendarUnit::Minute || l.minute() == 0 {
                    return k;
                }
                k -= MINUTE;
            }
        }
        Interval::Fixed(size) => {
            // The latest minute at or before t whose local time is a multiple of the interval,
            // or a transition whose skipped local times hold such a multiple.
            let mut k = t.div_euclid(MINUTE) * MINUTE;
            loop {
                let local_ms = k + offset_ms(k);
                if local_ms.rem_euclid(size) == 0 {
                    return k;
                }
                let (before, after) = (offset_ms(k - 1), offset_ms(k));
                if after > before {
                    let (gap_start, gap_end) = (k + before, k + after);
                    let first_multiple = gap_start.div_euclid(size) * size
                        + if gap_start.rem_euclid(size) == 0 {
                            0
                        } else {
                            size
                        };
                    if first_multiple < gap_end {
                        return k;
                    }
                }
                k -= MINUTE;
            }
        }
    }
}

/// `auto_date_histogram` as documented: the finest rounding whose keys fit the target (times its
/// largest inner interval) in number and span, the gaps filled (coarser again while too many),
/// then consecutive buckets merged by the smallest inner interval that meets the target.
fn reference_auto_date(times: &[i64], target: usize, tz: &TimeZone) -> (String, Vec<(i64, u64)>) {
    let infos = &aggs::AUTO_DATE_ROUNDINGS;
    let rounding =
        |level: usize| Rounding::new(Interval::Calendar(infos[level].unit), tz.clone(), 0);
    let max = |level: usize| target * infos[level].inner_intervals.last().unwrap();
    let keys_at = |level: usize| {
        let r = rounding(level);
        let mut keys: BTreeMap<i64, u64> = BTreeMap::new();
        for t in times {
            *keys.entry(r.round(*t)).or_default() += 1;
        }
        keys
    };
    let mut level = 0;
    loop {
        let keys = keys_at(level);
        let span = keys.keys().last().unwrap() - keys.keys().next().unwrap();
        if level == infos.len() - 1
            || (keys.len() <= max(level) && span <= max(level) as i64 * infos[level].rough_ms)
        {
            break;
        }
        level += 1;
    }
    let filled = loop {
        let keys = keys_at(level);
        let r = rounding(level);
        let (first, last) = (*keys.keys().next().unwrap(), *keys.keys().last().unwrap());
        let mut filled = Vec::new();
        let mut key = first;
        while key <= last {
            filled.push((key, keys.get(&key).copied().unwrap_or(0)));
            key = r.next(key);
        }
        if level == infos.len() - 1 || filled.len() <= max(level) {
            break filled;
        }
        level += 1;
    };
    let mut inner = 1;
    let mut buckets = filled.clone();
    if filled.len() > target
        && let Some(&i) = infos[level]
            .inner_intervals
            .iter()
            .find(|&&i| filled.len().div_ceil(i) <= target)
    {
        inner = i;
        buckets = filled
            .chunks(i)
            .map(|chunk| (chunk[0].0, chunk.iter().map(|(_, c)| c).sum()))
            .collect();
    }
    (format!("{inner}{}", infos[level].abbreviation), buckets)
}

fn reference_key_as_string(key: i64, tz: &TimeZone) -> String {
    let zoned = Timestamp::from_millisecond(key)
        .unwrap()
        .to_zoned_datetime(tz.clone());
    let text = zoned.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string();
    text.replace("+00:00", "Z")
}

fn buckets(result: &AggResult) -> Vec<(BucketKey, Option<String>, u64, &Vec<AggResult>)> {
    match &result.value {
        AggValue::Buckets(b) => b
            .buckets
            .iter()
            .map(|b| (b.key.clone(), b.key_as_string.clone(), b.doc_count, &b.subs))
            .collect(),
        other => panic!("not buckets: {other:?}"),
    }
}

fn value(result: &AggResult) -> Option<f64> {
    result.value.single_value()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn aggregations_equal_the_reference(docs in docs()) {
        let dir = tempfile::tempdir().unwrap();
        let indices = indices(dir.path(), &docs);

        // Date histograms: every zone, every calendar unit, some fixed intervals.
        let mut requests = Vec::new();
        for zone in ZONES {
            for unit in UNITS {
                requests.push((zone, Interval::Calendar(unit)));
            }
            for minutes in FIXED_MINUTES {
                requests.push((zone, Interval::Fixed(minutes * 60_000)));
            }
        }
        let aggs: Vec<Aggregation> = requests
            .iter()
            .enumerate()
            .map(|(i, (zone, interval))| agg(&format!("h{i}"), date_histogram(*interval, zone)))
            .collect();
        let results = run(&indices, aggs).unwrap();
        for ((zone, interval), result) in requests.iter().zip(&results) {
            let tz = TimeZone::get(zone).unwrap();
            let mut want: BTreeMap<i64, u64> = BTreeMap::new();
            for doc in &docs {
                *want.entry(reference_key(doc.t, *interval, &tz)).or_default() += 1;
            }
            let got: Vec<(i64, String, u64)> = buckets(result)
                .into_iter()
                .map(|(key, text, count, _)| match key {
                    BucketKey::Long(k) => (k, text.unwrap_or_default(), count),
                    other => panic!("date key {other:?}"),
                })
                .collect();
            let want: Vec<(i64, String, u64)> = want
                .into_iter()
                .map(|(k, c)| (k, reference_key_as_string(k, &tz), c))
                .collect();
            prop_assert_eq!(got, want, "{} {:?}", zone, interval);
        }

        // Terms with metrics beneath, and metrics over everything.
        let mut terms = agg("by_key", AggKind::Terms(top_ten("k")));
        terms.subs = vec![
            agg("avg", AggKind::Avg(ValueSource::field("v"))),
            agg("min", AggKind::Min(ValueSource::field("v"))),
            agg("max", AggKind::Max(ValueSource::field("v"))),
            agg("sum", AggKind::Sum(ValueSource::field("v"))),
        ];
        let metrics = vec![
            terms,
            agg("sum", AggKind::Sum(ValueSource::field("v"))),
            agg("min", AggKind::Min(ValueSource::field("v"))),
            agg("max", AggKind::Max(ValueSource::field("v"))),
            agg("count", AggKind::ValueCount(ValueSource::field("v"))),
            agg("distinct", AggKind::Cardinality { source: ValueSource::field("v"), precision_threshold: 3000 }),
            agg("pct", AggKind::Percentiles {
                source: ValueSource::field("v"),
                percents: vec![50.0],
                compression: 100.0,
                keyed: true,
            }),
        ];
        let results = run(&indices, metrics).unwrap();
        let values: Vec<i64> = docs.iter().map(|d| d.value).collect();
        let mut per_key: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
        for doc in &docs {
            per_key.entry(KEYS[doc.key]).or_default().push(doc.value);
        }
        let mut want_terms: Vec<(&str, u64, f64)> = per_key
            .iter()
            .map(|(k, v)| (*k, v.len() as u64, v.iter().sum::<i64>() as f64 / v.len() as f64))
            .collect();
        want_terms.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let got_terms: Vec<(String, u64, f64)> = buckets(&results[0])
            .into_iter()
            .map(|(key, _, count, subs)| match key {
                BucketKey::Str(k) => (k, count, value(&subs[0]).unwrap()),
                other => panic!("terms key {other:?}"),
            })
            .collect();
        prop_assert_eq!(got_terms.len(), want_terms.len());
        for ((k, c, a), (wk, wc, wa)) in got_terms.iter().zip(&want_terms) {
            prop_assert_eq!(k.as_str(), *wk);
            prop_assert_eq!(c, wc);
            prop_assert!((a - wa).abs() < 1e-9);
        }
        for (key, _, _, subs) in buckets(&results[0]) {
            let BucketKey::Str(key) = key else {
                panic!("terms key {key:?}");
            };
            let values = &per_key[key.as_str()];
            prop_assert_eq!(value(&subs[1]), values.iter().min().map(|v| *v as f64));
            prop_assert_eq!(value(&subs[2]), values.iter().max().map(|v| *v as f64));
            prop_assert_eq!(value(&subs[3]), Some(values.iter().sum::<i64>() as f64));
        }
        prop_assert_eq!(value(&results[1]), Some(values.iter().sum::<i64>() as f64));
        prop_assert_eq!(value(&results[2]), values.iter().min().map(|v| *v as f64));
        prop_assert_eq!(value(&results[3]), values.iter().max().map(|v| *v as f64));
        prop_assert_eq!(value(&results[4]), Some(values.len() as f64));
        let mut distinct = values.clone();
        distinct.sort_unstable();
        distinct.dedup();
        prop_assert_eq!(value(&results[5]), Some(distinct.len() as f64));
        let AggValue::Percentiles { values: pct, .. } = &results[6].value else {
            panic!("percentiles");
        };
        let median = pct[0].1.unwrap();
        let mut sorted = values.clone();
        sorted.sort_unstable();
        // Within the digest's documented error: the median's rank is within 2% (or one value).
        let below = sorted.iter().filter(|v| (**v as f64) < median).count() as f64;
        let at_or_below = sorted.iter().filter(|v| (**v as f64) <= median).count() as f64;
        let n = sorted.len() as f64;
        prop_assert!(below <= n * 0.52 + 1.0 && at_or_below >= n * 0.48 - 1.0, "median {} of {:?}", median, sorted);

        // Multi terms: every (key, value) pair, by count then key, cut to a size across indices.
        let size = 7;
        let multi = agg("pairs", AggKind::MultiTerms(MultiTerms {
            sources: vec![ValueSource::field("k"), ValueSource::field("v")],
            size,
            shard_size: Some(1_000),
            min_doc_count: 1,
            shard_min_doc_count: 0,
            order: Vec::new(),
            show_term_doc_count_error: false,
        }));
        let results = run(&indices, vec![multi]).unwrap();
        let mut pairs: BTreeMap<(&str, i64), u64> = BTreeMap::new();
        for doc in &docs {
            *pairs.entry((KEYS[doc.key], doc.value)).or_default() += 1;
        }
        // Ties by key: the key string first, then the number (not its text).
        let mut ordered: Vec<((&str, i64), u64)> = pairs.into_iter().collect();
        ordered.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let want_pairs: Vec<(String, u64)> = ordered
            .into_iter()
            .take(size)
            .map(|((k, v), c)| (format!("{k}|{v}"), c))
            .collect();
        let got_pairs: Vec<(String, u64)> = buckets(&results[0])
            .into_iter()
            .map(|(key, text, count, _)| {
                assert!(matches!(key, BucketKey::Multi(_)), "multi key {key:?}");
                (text.unwrap_or_default(), count)
            })
            .collect();
        prop_assert_eq!(got_pairs, want_pairs);

        // Rare terms: exact over both indices, least frequent first, then by key.
        let rare = agg("rare", AggKind::RareTerms(RareTerms {
            source: ValueSource::field("k"),
            max_doc_count: 3,
            include: None,
            exclude: None,
        }));
        let results = run(&indices, vec![rare]).unwrap();
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        for doc in &docs {
            *counts.entry(KEYS[doc.key]).or_default() += 1;
        }
        let mut want_rare: Vec<(String, u64)> = counts
            .into_iter()
            .filter(|(_, c)| *c <= 3)
            .map(|(k, c)| (k.to_string(), c))
            .collect();
        want_rare.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
        let got_rare: Vec<(String, u64)> = buckets(&results[0])
            .into_iter()
            .map(|(key, _, count, _)| (key.as_text(), count))
            .collect();
        prop_assert_eq!(got_rare, want_rare);

        // Significant terms of the documents of two keys against both whole indices.
        let subset_keys = ["aapl", "amzn"];
        let subset_query = Query::Terms {
            field: "k".into(),
            values: subset_keys.iter().map(|k| json!(k)).collect(),
            boost: 1.0,
        };
        let significant = agg("sig", AggKind::SignificantTerms(SignificantTerms {
            source: ValueSource::field("k"),
            size: 10,
            min_doc_count: 1,
            shard_min_doc_count: 0,
            include: None,
            exclude: None,
            background_filter: None,
            significance: Significance::Jlh,
        }));
        let targets: Vec<(Arc<Index>, Query)> = indices
            .iter()
            .map(|i| (i.clone(), subset_query.clone()))
            .collect();
        let results = aggs::aggregate(&targets, &[significant], AggregationLimits::default()).unwrap();
        let superset_size = docs.len() as u64;
        let subset_size = docs.iter().filter(|d| subset_keys.contains(&KEYS[d.key])).count() as u64;
        let mut want_sig: Vec<(String, u64, f64)> = subset_keys
            .iter()
            .filter_map(|k| {
                let freq = docs.iter().filter(|d| KEYS[d.key] == *k).count() as u64;
                let score = Significance::Jlh.score(freq, subset_size, freq, superset_size).unwrap();
                (freq > 0 && score > 0.0).then(|| (k.to_string(), freq, score))
            })
            .collect();
        want_sig.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
        let AggValue::Buckets(sig) = &results[0].value else {
            panic!("buckets");
        };
        let got_sig: Vec<(String, u64, f64)> = sig
            .buckets
            .iter()
            .map(|b| {
                let (score, bg_count) = b.significance.unwrap();
                assert_eq!(bg_count, b.doc_count);
                (b.key.as_text(), b.doc_count, score)
            })
            .collect();
        prop_assert_eq!(got_sig, want_sig);
        prop_assert_eq!(
            &sig.kind,
            &aggs::BucketsKind::Significant { doc_count: subset_size, bg_count: superset_size }
        );

        // Auto date histograms in every zone against the documented rules, over a sorted scan.
        for zone in ZONES {
            let tz = TimeZone::get(zone).unwrap();
            for target in [3usize, 10] {
                let spec = aggs::AutoDateHistogram::new(ValueSource::field("t"), target, 0, tz.clone());
                let results = run(&indices, vec![agg("auto", AggKind::AutoDateHistogram(spec))]).unwrap();
                let AggValue::Buckets(auto) = &results[0].value else {
                    panic!("buckets");
                };
                let aggs::BucketsKind::AutoDate { interval } = &auto.kind else {
                    panic!("no interval");
                };
                let got: Vec<(i64, u64)> = auto
                    .buckets
                    .iter()
                    .map(|b| match b.key {
                        BucketKey::Long(k) => (k, b.doc_count),
                        ref other => panic!("date key {other:?}"),
                    })
                    .collect();
                let times: Vec<i64> = docs.iter().map(|d| d.t).collect();
                let (want_interval, want) = reference_auto_date(&times, target, &tz);
                prop_assert_eq!((interval.clone(), got), (want_interval, want), "{} {}", zone, target);
            }
        }

        // Composite paged to the end, keys ascending then values descending, equals every
        // distinct (key, value) pair in that order.
        let mut after = None;
        let mut paged: Vec<(String, i64, u64)> = Vec::new();
        for _ in 0..docs.len() + 2 {
            let composite = agg("pairs", AggKind::Composite(Composite {
                sources: vec![
                    CompositeSource {
                        name: "k".into(),
                        source: ValueSource::field("k"),
                        kind: CompositeSourceKind::Terms,
                        direction: Direction::Asc,
                        missing_bucket: false,
                    },
                    CompositeSource {
                        name: "v".into(),
                        source: ValueSource::field("v"),
                        kind: CompositeSourceKind::Terms,
                        direction: Direction::Desc,
                        missing_bucket: false,
                    },
                ],
                size: 3,
                after: after.clone(),
            }));
            let results = run(&indices, vec![composite]).unwrap();
            let AggValue::Buckets(page) = &results[0].value else {
                panic!("buckets");
            };
            if page.buckets.is_empty() {
                break;
            }
            for bucket in &page.buckets {
                let BucketKey::Composite(parts) = &bucket.key else {
                    panic!("composite key {:?}", bucket.key);
                };
                let k = parts[0].1.as_str().unwrap().to_string();
                let v = parts[1].1.as_i64().unwrap();
                paged.push((k, v, bucket.doc_count));
            }
            let aggs::BucketsKind::Composite { after_key: Some(key) } = &page.kind else {
                panic!("no after_key");
            };
            after = Some(key.iter().map(|(_, v)| Some(v.clone())).collect());
        }
        let mut pairs: BTreeMap<(&str, std::cmp::Reverse<i64>), u64> = BTreeMap::new();
        for doc in &docs {
            *pairs.entry((KEYS[doc.key], std::cmp::Reverse(doc.value))).or_default() += 1;
        }
        let want_paged: Vec<(String, i64, u64)> = pairs
            .into_iter()
            .map(|((k, v), c)| (k.to_string(), v.0, c))
            .collect();
        prop_assert_eq!(paged, want_paged);
    }
}

#[test]
fn limits_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Doc> = (0..50)
        .map(|i| Doc {
            t: 1_767_225_600_000 + i * 1000,
            key: (i % 5) as usize,
            value: i,
        })
        .collect();
    let indices = indices(dir.path(), &docs);

    // One-second buckets over two days: more than search.max_buckets.
    let mut histogram = date_histogram(Interval::Fixed(1000), "UTC");
    if let AggKind::DateHistogram(h) = &mut histogram {
        h.min_doc_count = 0;
        h.extended_bounds = Some((1_767_225_600_000, 1_767_225_600_000 + 2 * 86_400_000));
    }
    let error = run(&indices, vec![agg("h", histogram)]).unwrap_err();
    assert!(
        matches!(error, SearchError::TooManyBuckets { max: 65_536, .. }),
        "{error}"
    );

    // A request over its memory limit trips the breaker.
    let limits = AggregationLimits {
        max_buckets: aggs::MAX_BUCKETS_DEFAULT,
        memory_bytes_max: 64,
    };
    let error = aggs::aggregate(
        &everything(&indices),
        &[agg(
            "c",
            AggKind::Cardinality {
                source: ValueSource::field("k"),
                precision_threshold: 100,
            },
        )],
        limits,
    )
    .unwrap_err();
    assert!(
        matches!(error, SearchError::CircuitBreaking { .. }),
        "{error}"
    );

    // Text without fielddata: Elasticsearch's reason and the keyword sub-field.
    let error = run(&indices, vec![agg("t", AggKind::Terms(top_ten("msg")))]).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("Fielddata is disabled on [msg] in [example-0]."),
        "{text}"
    );
    assert!(text.contains("[msg.keyword]"), "{text}");

    // Unmapped fields give empty results, not errors.
    let results = run(
        &indices,
        vec![
            agg("a", AggKind::Avg(ValueSource::field("nope"))),
            agg("s", AggKind::Sum(ValueSource::field("nope"))),
        ],
    )
    .unwrap();
    assert_eq!(value(&results[0]), None);
    assert_eq!(value(&results[1]), Some(0.0));
}

/// Each index cuts `terms` to its `shard_size` by the requested order (by default the largest
/// counts), so a frequent key past the others in key order survives the cut.
#[test]
fn terms_cut_per_index_keep_the_largest_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs: Vec<Doc> = (0..10)
        .map(|i| Doc {
            t: 1_767_225_600_000 + i,
            key: 4,
            value: i,
        })
        .collect();
    docs.extend((0..4).map(|key| Doc {
        t: 1_767_225_600_000,
        key,
        value: 0,
    }));
    let indices = indices(dir.path(), &docs);
    let results = run(
        &indices,
        vec![agg(
            "top",
            AggKind::Terms(Terms {
                size: 1,
                shard_size: Some(2),
                show_term_doc_count_error: true,
                ..top_ten("k")
            }),
        )],
    )
    .unwrap();
    let AggValue::Buckets(top) = &results[0].value else {
        panic!("buckets");
    };
    let got: Vec<(BucketKey, u64)> = top
        .buckets
        .iter()
        .map(|b| (b.key.clone(), b.doc_count))
        .collect();
    assert_eq!(got, vec![(BucketKey::Str("tsla".into()), 10)]);
    assert_eq!(
        top.kind,
        aggs::BucketsKind::Terms {
            // Each index cut buckets of one document beyond the one it kept.
            doc_count_error_upper_bound: 2,
            sum_other_doc_count: 4,
        }
    );
}

/// Samplers keep `shard_size` documents per index, diversified ones at most
/// `max_docs_per_value` per value, and refuse to run below the top level.
#[test]
fn samplers_keep_shard_size_per_index() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Doc> = (0..40)
        .map(|i| Doc {
            t: 1_767_225_600_000 + i,
            key: (i % 5) as usize,
            value: i,
        })
        .collect();
    let indices = indices(dir.path(), &docs);
    let single_count = |result: &AggResult| match &result.value {
        AggValue::SingleBucket { doc_count, .. } => *doc_count,
        other => panic!("not a single bucket: {other:?}"),
    };
    let mut plain = agg(
        "plain",
        AggKind::Sampler(aggs::Sampler {
            shard_size: 3,
            diversify: None,
        }),
    );
    plain.subs = vec![agg("n", AggKind::ValueCount(ValueSource::field("v")))];
    let diverse = agg(
        "diverse",
        AggKind::Sampler(aggs::Sampler {
            shard_size: 100,
            diversify: Some((ValueSource::field("k"), 2)),
        }),
    );
    let results = run(&indices, vec![plain, diverse]).unwrap();
    assert_eq!(single_count(&results[0]), 6);
    let AggValue::SingleBucket { subs, .. } = &results[0].value else {
        unreachable!()
    };
    assert_eq!(value(&subs[0]), Some(6.0));
    // Each index holds every key: two documents per key per index.
    assert_eq!(single_count(&results[1]), 2 * 5 * 2);

    let mut nested = agg("by_key", AggKind::Global);
    nested.subs = vec![agg(
        "s",
        AggKind::Sampler(aggs::Sampler {
            shard_size: 3,
            diversify: None,
        }),
    )];
    assert!(run(&indices, vec![nested]).is_err());
}

/// Indices that chose different roundings merge at the coarser one; the gaps fill, then
/// consecutive buckets merge by the smallest inner interval that meets the target.
#[test]
fn auto_date_histograms_merge_indices_at_the_coarser_rounding() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000;
    let jan1 = 1_767_225_600_000;
    // Even positions go to the first index (five documents within five seconds), odd ones to
    // the second (four documents over four days).
    let seconds = (0..5).map(|s| jan1 + s * 1000);
    let days = [jan1, jan1 + day, jan1 + 2 * day, jan1 + 4 * day].into_iter();
    let mut docs = Vec::new();
    let mut days = days.peekable();
    for t in seconds {
        docs.push(Doc {
            t,
            key: 0,
            value: 1,
        });
        if let Some(t) = days.next() {
            docs.push(Doc {
                t,
                key: 1,
                value: 1,
            });
        }
    }
    let indices = indices(dir.path(), &docs);
    let spec = aggs::AutoDateHistogram::new(ValueSource::field("t"), 10, 0, TimeZone::UTC);
    let results = run(
        &indices,
        vec![agg("auto", AggKind::AutoDateHistogram(spec))],
    )
    .unwrap();
    let AggValue::Buckets(auto) = &results[0].value else {
        panic!("buckets");
    };
    assert_eq!(
        auto.kind,
        aggs::BucketsKind::AutoDate {
            interval: "12h".into()
        }
    );
    let got: Vec<(BucketKey, u64)> = auto
        .buckets
        .iter()
        .map(|b| (b.key.clone(), b.doc_count))
        .collect();
    let want: Vec<(BucketKey, u64)> = [6, 0, 1, 0, 1, 0, 0, 0, 1]
        .into_iter()
        .enumerate()
        .map(|(i, count)| (BucketKey::Long(jan1 + i as i64 * day / 2), count))
        .collect();
    assert_eq!(got, want);
}

/// The heuristics against values computed by hand: a term in all 5 documents of the subset and
/// in no other of the 21 of the index.
#[test]
fn significance_heuristics_score_as_elasticsearch() {
    let score = |s: Significance| s.score(5, 5, 5, 21).unwrap();
    let nxy = |include_negatives| (include_negatives, true);
    let (include_negatives, background_is_superset) = nxy(false);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(score(Significance::Jlh), (1.0 - 5.0 / 21.0) * 4.2));
    assert!(close(score(Significance::Percentage), 1.0));
    assert!(close(
        score(Significance::ChiSquare {
            include_negatives,
            background_is_superset
        }),
        21.0
    ));
    // The entropy of 5 in 21, in bits: the term tells the subset apart completely.
    let p: f64 = 5.0 / 21.0;
    let entropy = -(p * p.log2() + (1.0 - p) * (1.0 - p).log2());
    assert!(close(
        score(Significance::MutualInformation {
            include_negatives,
            background_is_superset
        }),
        entropy
    ));
    assert!(close(
        score(Significance::Gnd {
            background_is_superset
        }),
        1.0
    ));
    // A term rarer in the subset than outside it is not significant unless negatives count.
    let rare = |s: Significance| s.score(1, 10, 50, 100).unwrap();
    assert_eq!(
        rare(Significance::ChiSquare {
            include_negatives: false,
            background_is_superset: true
        }),
        f64::NEG_INFINITY
    );
    assert!(
        rare(Significance::ChiSquare {
            include_negatives: true,
            background_is_superset: true
        }) > 0.0
    );
    // A background said to hold the subset that does not.
    assert_eq!(
        Significance::ChiSquare {
            include_negatives: false,
            background_is_superset: true
        }
        .score(5, 5, 2, 21),
        None
    );
}

/// Composite pages over more distinct keys per segment than it holds at once (it prunes to
/// its page and skips what lies past the page) still list every key once, in order.
#[test]
fn composite_pages_over_many_keys_list_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let docs: Vec<Doc> = (0..6000)
        .map(|i| Doc {
            t: 1_767_225_600_000 + i,
            key: (i * 7 % 5) as usize,
            value: (i * 7919) % 4001 - 2000,
        })
        .collect();
    let indices = indices(dir.path(), &docs);
    let mut after = None;
    let mut paged: Vec<(i64, u64)> = Vec::new();
    loop {
        let composite = agg(
            "values",
            AggKind::Composite(Composite {
                sources: vec![CompositeSource {
                    name: "v".into(),
                    source: ValueSource::field("v"),
                    kind: CompositeSourceKind::Terms,
                    direction: Direction::Desc,
                    missing_bucket: false,
                }],
                size: 200,
                after: after.clone(),
            }),
        );
        let results = run(&indices, vec![composite]).unwrap();
        let AggValue::Buckets(page) = &results[0].value else {
            panic!("buckets");
        };
        if page.buckets.is_empty() {
            break;
        }
        for bucket in &page.buckets {
            let BucketKey::Composite(parts) = &bucket.key else {
                panic!("composite key");
            };
            paged.push((parts[0].1.as_i64().unwrap(), bucket.doc_count));
        }
        let aggs::BucketsKind::Composite {
            after_key: Some(key),
        } = &page.kind
        else {
            panic!("no after_key");
        };
        after = Some(key.iter().map(|(_, v)| Some(v.clone())).collect());
    }
    let mut counts: BTreeMap<std::cmp::Reverse<i64>, u64> = BTreeMap::new();
    for doc in &docs {
        *counts.entry(std::cmp::Reverse(doc.value)).or_default() += 1;
    }
    let want: Vec<(i64, u64)> = counts.into_iter().map(|(v, c)| (v.0, c)).collect();
    assert_eq!(paged.len(), want.len());
    assert_eq!(paged, want);
}

/// Of the inner intervals that meet the target, the smallest: 25 hours in buckets of 3 hours
/// (9 buckets) rather than 12.
#[test]
fn auto_date_histograms_take_the_smallest_inner_interval() {
    let dir = tempfile::tempdir().unwrap();
    let hour = 3_600_000;
    let jan1 = 1_767_225_600_000;
    let docs: Vec<Doc> = (0..25)
        .map(|h| Doc {
            t: jan1 + h * hour,
            key: 0,
            value: h,
        })
        .collect();
    let indices = indices(dir.path(), &docs);
    let spec = aggs::AutoDateHistogram::new(ValueSource::field("t"), 10, 0, TimeZone::UTC);
    let results = run(
        &indices,
        vec![agg("auto", AggKind::AutoDateHistogram(spec))],
    )
    .unwrap();
    let AggValue::Buckets(auto) = &results[0].value else {
        panic!("buckets");
    };
    assert_eq!(
        auto.kind,
        aggs::BucketsKind::AutoDate {
            interval: "3h".into()
        }
    );
    let counts: Vec<u64> = auto.buckets.iter().map(|b| b.doc_count).collect();
    assert_eq!(counts, vec![3, 3, 3, 3, 3, 3, 3, 3, 1]);
}

/// A `terms` whose field has no value in a segment (a keyword field all of the segment's
/// documents lack, or an unmapped field) puts those documents in the `missing` bucket under its
/// string key. It once keyed them `0`, a number, as for a numeric field: with the default
/// indexing threads a segment of one document without the field was enough, so the test below
/// failed now and then on a loaded machine.
#[test]
fn terms_missing_in_a_segment_without_the_field_keeps_its_string_key() {
    let dir = tempfile::tempdir().unwrap();
    // The second index holds no `k` at all, so its segments have no column for it.
    let documents: Vec<serde_json::Value> = (0..40i64)
        .map(|i| {
            if i % 2 == 0 {
                json!({"k": "aapl"})
            } else {
                json!({"g": "a"})
            }
        })
        .collect();
    let indices = common::split_indices(dir.path(), metric_mappings, &documents);
    let targets: Vec<_> = indices
        .iter()
        .map(|i| (i.clone(), Query::match_all()))
        .collect();
    for field in ["k", "nothing"] {
        let terms = agg(
            "by_key",
            AggKind::Terms(Terms {
                source: ValueSource {
                    missing: Some(json!("none")),
                    ..ValueSource::field(field)
                },
                ..top_ten(field)
            }),
        );
        let result = aggs::aggregate(&targets, &[terms], AggregationLimits::default()).unwrap();
        let keys: Vec<(BucketKey, u64)> = buckets(&result[0])
            .into_iter()
            .map(|bucket| (bucket.0, bucket.2))
            .collect();
        let expected = match field {
            "k" => vec![
                (BucketKey::Str("aapl".into()), 20),
                (BucketKey::Str("none".into()), 20),
            ],
            _ => vec![(BucketKey::Str("none".into()), 40)],
        };
        assert_eq!(keys, expected, "terms of {field}");
    }
}

fn metric_mappings() -> Mappings {
    Mappings::from_json(&json!({"properties": {
        "k": {"type": "keyword"},
        "g": {"type": "keyword"},
        "v": {"type": "long"},
        "d": {"type": "double"}
    }}))
    .unwrap()
}

/// `terms` over a small dictionary with metrics beneath is collected in one pass (no document
/// list per bucket); its buckets must equal, to the bit, those of the general path, which an
/// extra `value_count` beneath forces, and the exact sums. Buckets get more values than one
/// batch, documents lack the term, the integer or the double, and `missing` stands in for some.
#[test]
fn terms_with_metrics_equal_the_general_path() {
    let dir = tempfile::tempdir().unwrap();
    let documents: Vec<serde_json::Value> = (0..3000i64)
        .map(|i| {
            let mut doc = json!({"g": if i % 3 == 0 { "a" } else { "b" }});
            if i % 7 != 0 {
                doc["k"] = json!(KEYS[(i % 4) as usize]);
            }
            if i % 5 != 0 {
                doc["v"] = json!(i * 37 % 1001 - 500);
            }
            if i % 11 != 0 {
                doc["d"] = json!(i as f64 * 0.1 + 1e-3);
            }
            doc
        })
        .collect();
    let indices = common::split_indices(dir.path(), metric_mappings, &documents);
    let missing_v = ValueSource {
        missing: Some(json!(1000)),
        ..ValueSource::field("v")
    };
    let terms = |subs: Vec<Aggregation>| Aggregation {
        subs,
        ..agg(
            "by_key",
            AggKind::Terms(Terms {
                source: ValueSource {
                    missing: Some(json!("none")),
                    ..ValueSource::field("k")
                },
                ..top_ten("k")
            }),
        )
    };
    let metrics = vec![
        agg("avg_v", AggKind::Avg(missing_v.clone())),
        agg("sum_d", AggKind::Sum(ValueSource::field("d"))),
        agg("stats_d", AggKind::Stats(ValueSource::field("d"))),
        agg(
            "ext_v",
            AggKind::ExtendedStats {
                source: ValueSource::field("v"),
                sigma: 2.0,
            },
        ),
        agg("min_d", AggKind::Min(ValueSource::field("d"))),
        agg("max_v", AggKind::Max(ValueSource::field("v"))),
        agg("avg_unmapped", AggKind::Avg(ValueSource::field("nothing"))),
    ];
    let mut general = metrics.clone();
    general.push(agg("count_v", AggKind::ValueCount(ValueSource::field("v"))));
    let sparse = Query::Term {
        field: "g".into(),
        value: json!("a"),
        case_insensitive: false,
        boost: 1.0,
    };
    for query in [Query::match_all(), sparse] {
        let targets: Vec<_> = indices.iter().map(|i| (i.clone(), query.clone())).collect();
        let limits = AggregationLimits::default;
        let fused = aggs::aggregate(&targets, &[terms(metrics.clone())], limits()).unwrap();
        let slow = aggs::aggregate(&targets, &[terms(general.clone())], limits()).unwrap();
        let fused = buckets(&fused[0]);
        let slow = buckets(&slow[0]);
        let keys = |buckets: &[(BucketKey, Option<String>, u64, &Vec<AggResult>)]| {
            buckets
                .iter()
                .map(|bucket| (bucket.0.clone(), bucket.2))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            fused.len(),
            5,
            "four keys and the missing one: {:?}, the general path {:?}",
            keys(&fused),
            keys(&slow)
        );
        assert_eq!(fused.len(), slow.len());
        for (f, s) in fused.iter().zip(&slow) {
            assert_eq!((&f.0, f.2), (&s.0, s.2));
            assert_eq!(f.3[..], s.3[..metrics.len()], "bucket {:?}", f.0);
        }
        // The exact values, from the documents.
        let only_a = matches!(query, Query::Term { .. });
        for (key, _, count, subs) in &fused {
            let BucketKey::Str(key) = key else {
                panic!("terms key {key:?}");
            };
            let mine: Vec<&serde_json::Value> = documents
                .iter()
                .filter(|d| !only_a || d["g"] == "a")
                .filter(|d| d["k"].as_str().unwrap_or("none") == key)
                .collect();
            assert_eq!(*count, mine.len() as u64, "{key}");
            let v_sum: i64 = mine.iter().map(|d| d["v"].as_i64().unwrap_or(1000)).sum();
            let avg = value(&subs[0]).unwrap();
            assert!(
                (avg - v_sum as f64 / mine.len() as f64).abs() < 1e-9,
                "{key}"
            );
            let d_sum: f64 = mine.iter().filter_map(|d| d["d"].as_f64()).sum();
            assert!((value(&subs[1]).unwrap() - d_sum).abs() < 1e-6, "{key}");
            let v_max = mine.iter().filter_map(|d| d["v"].as_i64()).max();
            assert_eq!(value(&subs[5]), v_max.map(|v| v as f64), "{key}");
            assert_eq!(value(&subs[6]), None, "{key}");
        }
    }
}
