//! The `aggs`/`aggregations` of a search: Elasticsearch's JSON read into Sluice's aggregation
//! tree (`sluice_search::aggs`), and the results rendered back in Elasticsearch's shapes.
//!
//! Each aggregation body is read into a private serde type that rejects unknown fields, so a
//! misspelt or unsupported option answers 400 naming it instead of being ignored. Aggregation
//! types Elasticsearch has but Sluice does not answer 400 `illegal_argument_exception` naming
//! them. `meta` and `top_hits`' `_source` filtering stay here: they only shape the response.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use sluice_search::aggs::{
    self, AggKind, AggResult, AggValue, Aggregation, AutoDateHistogram, Bucket, BucketKey,
    BucketOrder, BucketsKind, BucketsPath, CalendarUnit, Composite, CompositeSource,
    CompositeSourceKind, DateHistogram, Direction, ExtendedStats, Filters, GapPolicy, Histogram,
    Interval, IpRangeAgg, IpRangeSpec, MovingFunction, MultiTerms, Pipeline, PipelineKind,
    RangeAgg, RangeSpec, RareTerms, Rounding, Sampler, ScriptExpr, Significance, SignificantTerms,
    SortSpec, Stats, TermFilter, Terms, TopHits, TopMetrics, ValueSource,
};

use super::documents::SourceFilter;
use super::search::parse_query;
use super::{EsError, RawSources};
use crate::http::Request;

/// Aggregation types of Elasticsearch that Sluice does not run yet: asked for, they answer 400
/// naming the type rather than "unknown".
const NOT_YET_SUPPORTED: &[&str] = &[
    "significant_text",
    "variable_width_histogram",
    "ip_prefix",
    "random_sampler",
    "adjacency_matrix",
    "scripted_metric",
    "geohex_grid",
    "matrix_stats",
    "rate",
    "t_test",
    "boxplot",
    "string_stats",
    "moving_avg",
    "moving_percentiles",
    "normalize",
    "cumulative_cardinality",
    "inference",
    "categorize_text",
    "frequent_item_sets",
    "time_series",
    "children",
    "parent",
    "geo_line",
    "change_point",
];

/// Elasticsearch's default `index.top_metrics_max_size`: `top_metrics` asking for more rows
/// answers 400.
const TOP_METRICS_SIZE_MAX: usize = 10;

/// What rendering needs beside the results: `meta`, and `top_hits`' source filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct RenderNode {
    name: String,
    /// The aggregation's type, for `typed_keys`.
    type_name: String,
    meta: Option<Value>,
    source: Option<SourceFilter>,
    version: bool,
    subs: Vec<RenderNode>,
}

/// A parsed `aggs` object.
#[derive(Debug, Clone)]
pub(crate) struct SearchAggs {
    pub aggs: Vec<Aggregation>,
    render: Vec<RenderNode>,
    /// `typed_keys`: names as `type#name`, which typed clients (the Java client) need.
    typed_keys: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `typed_keys` of the request, for aggregations parsed from its body.
pub(crate) fn apply_typed_keys(request: &Request, aggs: Option<&mut SearchAggs>) {
    if let Some(aggs) = aggs {
        aggs.set_typed_keys(matches!(request.param("typed_keys"), Some("true" | "")));
    }
}

impl SearchAggs {
    pub(crate) fn set_typed_keys(&mut self, typed_keys: bool) {
        self.typed_keys = typed_keys;
    }
}

/// Reads the `aggs` (or `aggregations`) object of a search body.
pub(crate) fn parse(value: &Value) -> Result<SearchAggs, EsError> {
    let now = now_ms();
    let (aggs, render) = parse_level(value, 1, now)?;
    aggs::validate(&aggs).map_err(EsError::from)?;
    Ok(SearchAggs {
        aggs,
        render,
        typed_keys: false,
    })
}

fn parse_level(
    value: &Value,
    depth: usize,
    now: i64,
) -> Result<(Vec<Aggregation>, Vec<RenderNode>), EsError> {
    let Value::Object(entries) = value else {
        return Err(EsError::parse(
            "Expected [START_OBJECT] under [aggs], but got a value",
        ));
    };
    if depth > aggs::AGGREGATION_DEPTH_MAX {
        return Err(EsError::illegal_argument(format!(
            "aggregations are nested deeper than [{}] levels",
            aggs::AGGREGATION_DEPTH_MAX
        )));
    }
    let mut aggs = Vec::with_capacity(entries.len());
    let mut render = Vec::with_capacity(entries.len());
    for (name, body) in entries {
        if name.is_empty() || name.contains(['[', ']', '>']) {
            return Err(EsError::parse(format!(
                "Invalid aggregation name [{name}]. Aggregation names can contain any character except '[', ']', and '>'"
            )));
        }
        let Value::Object(body) = body else {
            return Err(EsError::parse(format!(
                "Expected [START_OBJECT] under [{name}], but got a value"
            )));
        };
        let mut kind: Option<(&str, &Value)> = None;
        let mut subs = (Vec::new(), Vec::new());
        let mut meta = None;
        for (key, inner) in body {
            match key.as_str() {
                "aggs" | "aggregations" => subs = parse_level(inner, depth + 1, now)?,
                "meta" => {
                    if !inner.is_object() {
                        return Err(EsError::parse(format!(
                            "[meta] of [{name}] must be an object"
                        )));
                    }
                    meta = Some(inner.clone());
                }
                other => {
                    if let Some((first, _)) = kind {
                        return Err(EsError::parse(format!(
                            "Found two aggregation type definitions in [{name}]: [{first}] and [{other}]"
                        )));
                    }
                    kind = Some((other, inner));
                }
            }
        }
        let Some((type_name, spec)) = kind else {
            return Err(EsError::parse(format!(
                "Missing definition for aggregation [{name}]"
            )));
        };
        let mut node = RenderNode {
            name: name.clone(),
            type_name: type_name.to_string(),
            meta,
            subs: subs.1,
            ..RenderNode::default()
        };
        let kind = parse_kind(name, type_name, spec, now, &mut node)?;
        aggs.push(Aggregation {
            name: name.clone(),
            kind,
            subs: subs.0,
        });
        render.push(node);
    }
    Ok((aggs, render))
}

/// Reads an aggregation body into its serde type, with Elasticsearch's reasons for bad input.
fn body<T: DeserializeOwned>(type_name: &str, value: &Value) -> Result<T, EsError> {
    T::deserialize(value).map_err(|error| {
        let text = error.to_string();
        let reason = match text.strip_prefix("unknown field `") {
            Some(rest) => {
                let field = rest.split('`').next().unwrap_or(rest);
                format!("[{type_name}] unknown field [{field}]")
            }
            None => format!("[{type_name}] failed to parse: {text}"),
        };
        EsError::bad_request("x_content_parse_exception", reason)
    })
}

fn illegal(reason: impl Into<String>) -> EsError {
    EsError::illegal_argument(reason)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MetricBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    value_type: Option<String>,
}

fn source_of(
    type_name: &str,
    name: &str,
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: &Option<Value>,
) -> Result<ValueSource, EsError> {
    if script.is_some() {
        return Err(illegal(format!(
            "[script] in aggregation [{name}] of type [{type_name}] is not supported by Sluice; aggregate a mapped field"
        )));
    }
    let Some(field) = field else {
        return Err(illegal(format!(
            "Required one of fields [field, script], but none were specified. for aggregation [{name}] of type [{type_name}]"
        )));
    };
    Ok(ValueSource {
        field,
        missing,
        format,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtendedStatsBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    sigma: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CardinalityBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    precision_threshold: Option<u64>,
    execution_hint: Option<String>,
    rehash: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TDigestBody {
    compression: Option<f64>,
    /// Accepted and ignored: a speed hint that changes no result.
    #[allow(dead_code)]
    execution_hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PercentilesBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    percents: Option<Vec<f64>>,
    values: Option<Vec<f64>>,
    keyed: Option<bool>,
    tdigest: Option<TDigestBody>,
    hdr: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MadBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    compression: Option<f64>,
    execution_hint: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightedSource {
    field: Option<String>,
    missing: Option<Value>,
    script: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightedAvgBody {
    value: WeightedSource,
    weight: WeightedSource,
    format: Option<String>,
    value_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopHitsBody {
    from: Option<usize>,
    size: Option<usize>,
    sort: Option<Value>,
    #[serde(rename = "_source")]
    source: Option<Value>,
    version: Option<bool>,
    track_scores: Option<bool>,
    seq_no_primary_term: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopMetricsBody {
    metrics: Value,
    sort: Option<Value>,
    size: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermsBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    size: Option<i64>,
    shard_size: Option<i64>,
    min_doc_count: Option<u64>,
    shard_min_doc_count: Option<u64>,
    order: Option<Value>,
    include: Option<Value>,
    exclude: Option<Value>,
    show_term_doc_count_error: Option<bool>,
    execution_hint: Option<String>,
    collect_mode: Option<String>,
    value_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RareTermsBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    max_doc_count: Option<i64>,
    precision: Option<f64>,
    include: Option<Value>,
    exclude: Option<Value>,
    value_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignificantTermsBody {
    field: Option<String>,
    script: Option<Value>,
    format: Option<String>,
    size: Option<i64>,
    shard_size: Option<i64>,
    min_doc_count: Option<u64>,
    shard_min_doc_count: Option<u64>,
    include: Option<Value>,
    exclude: Option<Value>,
    background_filter: Option<Value>,
    execution_hint: Option<String>,
    value_type: Option<String>,
    jlh: Option<EmptyBody>,
    percentage: Option<EmptyBody>,
    mutual_information: Option<NxyBody>,
    chi_square: Option<NxyBody>,
    gnd: Option<GndBody>,
    script_heuristic: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NxyBody {
    include_negatives: Option<bool>,
    background_is_superset: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GndBody {
    background_is_superset: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyBody {}

/// One source of `multi_terms`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiTermsSource {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiTermsBody {
    terms: Option<Vec<MultiTermsSource>>,
    size: Option<i64>,
    shard_size: Option<i64>,
    min_doc_count: Option<u64>,
    shard_min_doc_count: Option<u64>,
    order: Option<Value>,
    show_term_doc_count_error: Option<bool>,
    collect_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Bounds {
    min: Option<Value>,
    max: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistogramBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    interval: Option<f64>,
    offset: Option<f64>,
    min_doc_count: Option<u64>,
    extended_bounds: Option<Bounds>,
    hard_bounds: Option<Bounds>,
    order: Option<Value>,
    keyed: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DateHistogramBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    calendar_interval: Option<String>,
    fixed_interval: Option<String>,
    interval: Option<String>,
    time_zone: Option<String>,
    offset: Option<Value>,
    min_doc_count: Option<u64>,
    extended_bounds: Option<Bounds>,
    hard_bounds: Option<Bounds>,
    order: Option<Value>,
    keyed: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AutoDateHistogramBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    buckets: Option<i64>,
    time_zone: Option<String>,
    minimum_interval: Option<String>,
}

/// `minimum_interval` of `auto_date_histogram`, as an index into its roundings.
const AUTO_DATE_MINIMUM_INTERVALS: [(&str, usize); 6] = [
    ("second", 0),
    ("minute", 1),
    ("hour", 2),
    ("day", 3),
    ("month", 4),
    ("year", 5),
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeEntry {
    key: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeBody {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    ranges: Vec<RangeEntry>,
    keyed: Option<bool>,
    time_zone: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpRangeEntry {
    key: Option<String>,
    from: Option<Value>,
    to: Option<Value>,
    mask: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IpRangeBody {
    field: Option<String>,
    missing: Option<Value>,
    script: Option<Value>,
    ranges: Vec<IpRangeEntry>,
    keyed: Option<bool>,
}

/// Reads `ip_range`: `from`/`to` addresses or a CIDR `mask` per range, as Elasticsearch.
fn parse_ip_range(name: &str, spec: &Value) -> Result<AggKind, EsError> {
    let b: IpRangeBody = body("ip_range", spec)?;
    if b.script.is_some() {
        return Err(illegal("[ip_range] does not support scripts"));
    }
    if b.ranges.is_empty() {
        return Err(illegal(format!(
            "No [ranges] specified for the [{name}] aggregation"
        )));
    }
    let mut ranges = Vec::with_capacity(b.ranges.len());
    for entry in b.ranges {
        let bound = |value: &Option<Value>| -> Result<Option<String>, EsError> {
            match value {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(other) => Err(illegal(format!("'{other}' is not an IP string literal."))),
            }
        };
        let range = match &entry.mask {
            Some(mask) => IpRangeSpec::from_mask(entry.key.clone(), mask)
                .ok_or_else(|| illegal(format!("Expected [ip/prefix] but was [{mask}]")))?,
            None => {
                let (from, to) = (bound(&entry.from)?, bound(&entry.to)?);
                IpRangeSpec::from_addresses(entry.key.clone(), from.as_deref(), to.as_deref())
                    .ok_or_else(|| {
                        let bad = [from, to]
                            .into_iter()
                            .flatten()
                            .find(|text| sluice_search::ip::parse(text).is_none())
                            .unwrap_or_default();
                        illegal(format!("'{bad}' is not an IP string literal."))
                    })?
            }
        };
        ranges.push(range);
    }
    Ok(AggKind::IpRange(IpRangeAgg::new(
        source_of("ip_range", name, b.field, b.missing, None, &None)?,
        ranges,
        b.keyed.unwrap_or(false),
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FiltersBody {
    filters: Value,
    other_bucket: Option<bool>,
    other_bucket_key: Option<String>,
    keyed: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MissingBody {
    field: Option<String>,
    script: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlobalBody {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NestedBody {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReverseNestedBody {
    path: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplerBody {
    shard_size: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiversifiedSamplerBody {
    field: Option<String>,
    script: Option<Value>,
    shard_size: Option<i64>,
    max_docs_per_value: Option<i64>,
    execution_hint: Option<String>,
}

fn sampler_shard_size(name: &str, shard_size: Option<i64>) -> Result<usize, EsError> {
    match shard_size {
        None => Ok(aggs::SAMPLER_SHARD_SIZE_DEFAULT),
        Some(size) if size > 0 => Ok(size as usize),
        Some(size) => Err(illegal(format!(
            "[shard_size] must be greater than 0. Found [{size}] in [{name}]"
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompositeBody {
    sources: Vec<BTreeMap<String, BTreeMap<String, CompositeSourceBody>>>,
    size: Option<usize>,
    after: Option<Map<String, Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompositeSourceBody {
    field: Option<String>,
    script: Option<Value>,
    order: Option<String>,
    missing_bucket: Option<bool>,
    missing_order: Option<String>,
    value_type: Option<String>,
    interval: Option<Value>,
    calendar_interval: Option<String>,
    fixed_interval: Option<String>,
    time_zone: Option<String>,
    offset: Option<Value>,
    format: Option<String>,
    /// `geotile_grid` sources: the zoom, and the box outside of which points do not count.
    precision: Option<Value>,
    bounds: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineBody {
    buckets_path: Option<Value>,
    gap_policy: Option<String>,
    format: Option<String>,
    script: Option<Value>,
    sigma: Option<f64>,
    percents: Option<Vec<f64>>,
    keyed: Option<bool>,
    unit: Option<String>,
    window: Option<usize>,
    shift: Option<i64>,
    lag: Option<usize>,
    sort: Option<Value>,
    from: Option<usize>,
    size: Option<usize>,
}

fn direction(text: &str, what: &str) -> Result<Direction, EsError> {
    match text.to_ascii_lowercase().as_str() {
        "asc" => Ok(Direction::Asc),
        "desc" => Ok(Direction::Desc),
        _ => Err(EsError::parse(format!(
            "Unknown {what} order direction [{text}]"
        ))),
    }
}

/// Reads `order` of a bucket aggregation: `{"_count": "desc"}`, `[{…}, {…}]`, `{"avg": "asc"}`.
/// `size` and `shard_size` of `terms` and `multi_terms`, both above 0.
fn terms_sizes(
    name: &str,
    size: Option<i64>,
    shard_size: Option<i64>,
) -> Result<(usize, Option<usize>), EsError> {
    let size = size.unwrap_or(aggs::TERMS_SIZE_DEFAULT as i64);
    if size <= 0 {
        return Err(illegal(format!(
            "[size] must be greater than 0. Found [{size}] in [{name}]"
        )));
    }
    let shard_size = match shard_size {
        Some(s) if s <= 0 => {
            return Err(illegal(format!(
                "[shardSize] must be greater than 0. Found [{s}] in [{name}]"
            )));
        }
        other => other.map(|s| s as usize),
    };
    Ok((size as usize, shard_size))
}

fn parse_order(value: &Value) -> Result<Vec<BucketOrder>, EsError> {
    let entries: Vec<&Map<String, Value>> = match value {
        Value::Object(map) => vec![map],
        Value::Array(items) => items
            .iter()
            .map(|i| {
                i.as_object()
                    .ok_or_else(|| EsError::parse("[order] entries must be objects"))
            })
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(EsError::parse(
                "[order] must be an object or an array of objects",
            ));
        }
    };
    let mut order = Vec::new();
    for map in entries {
        for (key, dir) in map {
            let dir = direction(dir.as_str().unwrap_or_default(), "bucket")?;
            order.push(match key.as_str() {
                "_count" => BucketOrder::Count(dir),
                "_key" | "_term" | "_time" => BucketOrder::Key(dir),
                path => {
                    let parsed = BucketsPath::parse(path).map_err(EsError::from)?;
                    BucketOrder::Path {
                        aggs: parsed.aggs,
                        metric: parsed.metric,
                        direction: dir,
                    }
                }
            });
        }
    }
    Ok(order)
}

fn parse_term_filter(value: &Value, what: &str) -> Result<TermFilter, EsError> {
    match value {
        Value::String(pattern) => TermFilter::regex(pattern)
            .map_err(|e| illegal(format!("[{what}] is not a valid regular expression: {e}"))),
        Value::Array(items) => Ok(TermFilter::Values(
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect(),
        )),
        Value::Object(_) => Err(illegal(format!(
            "[{what}] partitions are not supported by Sluice"
        ))),
        _ => Err(EsError::parse(format!(
            "[{what}] must be a string or an array"
        ))),
    }
}

fn number_bound(value: &Option<Value>, what: &str) -> Result<Option<f64>, EsError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .map(Some)
            .map_err(|_| EsError::parse(format!("[{what}] must be a number, got [{s}]"))),
        Some(other) => Err(EsError::parse(format!(
            "[{what}] must be a number, got [{other}]"
        ))),
    }
}

fn date_bound(
    value: &Option<Value>,
    what: &str,
    now: i64,
    format: &str,
    zone: &aggs::TimeZone,
) -> Result<Option<i64>, EsError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|v| v as i64)),
        Some(Value::String(s)) => sluice_search::date_math::resolve(s, now, format, zone, false)
            .map(Some)
            .map_err(|reason| EsError::parse(format!("[{what}] {reason}"))),
        Some(other) => Err(EsError::parse(format!(
            "[{what}] must be a date, got [{other}]"
        ))),
    }
}

fn time_zone(text: Option<&str>, type_name: &str) -> Result<aggs::TimeZone, EsError> {
    match text {
        None => Ok(aggs::TimeZone::UTC),
        Some(text) => aggs::rounding::parse_time_zone(text).ok_or_else(|| {
            EsError::bad_request(
                "x_content_parse_exception",
                format!(
                    "[{type_name}] failed to parse field [time_zone]: Unknown time-zone ID: {text}"
                ),
            )
        }),
    }
}

fn date_offset(value: &Option<Value>) -> Result<i64, EsError> {
    match value {
        None => Ok(0),
        Some(Value::Number(n)) => Ok(n.as_i64().unwrap_or(0)),
        Some(Value::String(s)) => {
            let s = s.trim();
            let (negative, rest) = match s.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, s.strip_prefix('+').unwrap_or(s)),
            };
            let millis = aggs::rounding::parse_fixed_millis(rest).ok_or_else(|| {
                illegal(format!("failed to parse setting [date_histogram.offset] with value [{s}] as a time value"))
            })?;
            Ok(if negative { -millis } else { millis })
        }
        Some(other) => Err(illegal(format!(
            "[offset] must be a time value, got [{other}]"
        ))),
    }
}

fn date_interval(
    calendar: Option<&str>,
    fixed: Option<&str>,
    legacy: Option<&str>,
    name: &str,
) -> Result<Interval, EsError> {
    match (calendar, fixed, legacy) {
        (Some(text), None, None) => CalendarUnit::parse(text)
            .map(Interval::Calendar)
            .ok_or_else(|| {
                illegal(format!(
                    "The supplied interval [{text}] could not be parsed as a calendar interval."
                ))
            }),
        (None, Some(text), None) => match aggs::rounding::parse_fixed_millis(text) {
            Some(ms) if ms > 0 => Ok(Interval::Fixed(ms)),
            _ => Err(illegal(format!(
                "failed to parse setting [date_histogram.fixedInterval] with value [{text}] as a time value: unit is missing or unrecognized"
            ))),
        },
        // The pre-7.2 `interval`, which OpenSearch and older dashboards still send.
        (None, None, Some(text)) => match CalendarUnit::parse(text) {
            Some(unit) => Ok(Interval::Calendar(unit)),
            None => match aggs::rounding::parse_fixed_millis(text) {
                Some(ms) if ms > 0 => Ok(Interval::Fixed(ms)),
                _ => Err(illegal(format!("Unable to parse interval [{text}]"))),
            },
        },
        (None, None, None) => Err(illegal(format!(
            "Invalid interval specified, must be non-null and non-empty for aggregation [{name}]"
        ))),
        _ => Err(illegal(
            "Cannot use more than one of [calendar_interval], [fixed_interval] and [interval] in the same date_histogram",
        )),
    }
}

fn parse_sort(value: &Option<Value>) -> Result<Vec<SortSpec>, EsError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut sort = Vec::new();
    for item in items {
        let (field, dir) = match item {
            Value::String(field) => (field.clone(), None),
            Value::Object(map) => {
                let Some((field, spec)) = map.iter().next() else {
                    continue;
                };
                let dir = match spec {
                    Value::String(d) => Some(direction(d, "sort")?),
                    Value::Object(options) => match options.get("order").and_then(Value::as_str) {
                        Some(d) => Some(direction(d, "sort")?),
                        None => None,
                    },
                    _ => None,
                };
                (field.clone(), dir)
            }
            _ => return Err(EsError::parse("[sort] entries must be strings or objects")),
        };
        sort.push(if field == "_score" {
            SortSpec::Score(dir.unwrap_or(Direction::Desc))
        } else {
            SortSpec::Field {
                field,
                direction: dir.unwrap_or(Direction::Asc),
            }
        });
    }
    Ok(sort)
}

fn parse_kind(
    name: &str,
    type_name: &str,
    spec: &Value,
    now: i64,
    node: &mut RenderNode,
) -> Result<AggKind, EsError> {
    let metric = |spec: &Value| -> Result<ValueSource, EsError> {
        let b: MetricBody = body(type_name, spec)?;
        let _ = b.value_type;
        source_of(type_name, name, b.field, b.missing, b.format, &b.script)
    };
    Ok(match type_name {
        "avg" => AggKind::Avg(metric(spec)?),
        "sum" => AggKind::Sum(metric(spec)?),
        "min" => AggKind::Min(metric(spec)?),
        "max" => AggKind::Max(metric(spec)?),
        "value_count" => AggKind::ValueCount(metric(spec)?),
        "stats" => AggKind::Stats(metric(spec)?),
        "extended_stats" => {
            let b: ExtendedStatsBody = body(type_name, spec)?;
            let sigma = b.sigma.unwrap_or(2.0);
            if sigma < 0.0 {
                return Err(illegal(format!(
                    "[sigma] must be greater than or equal to 0. Found [{sigma}] in [{name}]"
                )));
            }
            AggKind::ExtendedStats {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                sigma,
            }
        }
        "cardinality" => {
            let b: CardinalityBody = body(type_name, spec)?;
            let _ = (b.execution_hint, b.rehash);
            AggKind::Cardinality {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                precision_threshold: b
                    .precision_threshold
                    .unwrap_or(aggs::PRECISION_THRESHOLD_DEFAULT)
                    .min(aggs::PRECISION_THRESHOLD_MAX),
            }
        }
        "percentiles" | "percentile_ranks" => {
            let b: PercentilesBody = body(type_name, spec)?;
            if b.hdr.is_some() {
                return Err(illegal(format!(
                    "[hdr] percentiles of aggregation [{name}] are not supported by Sluice; use the default tdigest"
                )));
            }
            let compression = match b.tdigest.as_ref().and_then(|t| t.compression) {
                Some(c) if !(0.0..=aggs::COMPRESSION_MAX).contains(&c) || c == 0.0 => {
                    return Err(illegal(format!(
                        "[compression] must be greater than 0 and at most {} in [{name}]",
                        aggs::COMPRESSION_MAX
                    )));
                }
                Some(c) => c,
                None => aggs::COMPRESSION_DEFAULT,
            };
            let source = source_of(type_name, name, b.field, b.missing, b.format, &b.script)?;
            let keyed = b.keyed.unwrap_or(true);
            if type_name == "percentiles" {
                if b.values.is_some() {
                    return Err(body::<PercentilesBodyNoValues>(type_name, spec)
                        .err()
                        .unwrap_or_else(|| illegal("[percentiles] unknown field [values]")));
                }
                let percents = b
                    .percents
                    .unwrap_or_else(|| vec![1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0]);
                if let Some(bad) = percents.iter().find(|p| !(0.0..=100.0).contains(*p)) {
                    return Err(illegal(format!(
                        "percent must be in [0,100], got [{bad}]: [{name}]"
                    )));
                }
                AggKind::Percentiles {
                    source,
                    percents,
                    compression,
                    keyed,
                }
            } else {
                let Some(values) = b.values else {
                    return Err(illegal(format!("[values] must not be null: [{name}]")));
                };
                AggKind::PercentileRanks {
                    source,
                    values,
                    compression,
                    keyed,
                }
            }
        }
        "median_absolute_deviation" => {
            let b: MadBody = body(type_name, spec)?;
            let _ = b.execution_hint;
            AggKind::MedianAbsoluteDeviation {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                compression: b
                    .compression
                    .unwrap_or(1000.0)
                    .clamp(1.0, aggs::COMPRESSION_MAX),
            }
        }
        "weighted_avg" => {
            let b: WeightedAvgBody = body(type_name, spec)?;
            let _ = b.value_type;
            AggKind::WeightedAvg {
                value: source_of(
                    type_name,
                    name,
                    b.value.field,
                    b.value.missing,
                    None,
                    &b.value.script,
                )?,
                weight: source_of(
                    type_name,
                    name,
                    b.weight.field,
                    b.weight.missing,
                    None,
                    &b.weight.script,
                )?,
                format: b.format,
            }
        }
        "top_hits" => {
            let b: TopHitsBody = body(type_name, spec)?;
            let _ = (b.track_scores, b.seq_no_primary_term);
            node.source = Some(match &b.source {
                Some(value) => SourceFilter::from_json(value)?,
                None => SourceFilter::default(),
            });
            node.version = b.version.unwrap_or(false);
            let size = b.size.unwrap_or(3);
            let from = b.from.unwrap_or(0);
            if from + size > 100 {
                return Err(illegal(format!(
                    "Top hits result window is too large, the top hits aggregator [{name}]'s from + size must be less than or equal to: [100] but was [{}]. This limit can be set by changing the [index.max_inner_result_window] index level setting.",
                    from + size
                )));
            }
            AggKind::TopHits(TopHits {
                from,
                size,
                sort: parse_sort(&b.sort)?,
            })
        }
        "top_metrics" => {
            let b: TopMetricsBody = body(type_name, spec)?;
            let fields: Vec<&Value> = match &b.metrics {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let metrics = fields
                .into_iter()
                .map(|m| {
                    m.get("field")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .ok_or_else(|| {
                            EsError::parse("[top_metrics] [metrics] entries need a [field]")
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let sort = parse_sort(&b.sort)?;
            let Some(sort) = sort.into_iter().next() else {
                return Err(illegal("[top_metrics] requires a [sort]"));
            };
            let size = b.size.unwrap_or(1);
            if size > TOP_METRICS_SIZE_MAX {
                return Err(illegal(format!(
                    "[top_metrics.size] must not be more than [{TOP_METRICS_SIZE_MAX}] but was [{size}]. This limit can be set by changing the [index.top_metrics_max_size] index level setting."
                )));
            }
            AggKind::TopMetrics(TopMetrics {
                metrics,
                sort,
                size,
            })
        }
        "terms" => {
            let b: TermsBody = body(type_name, spec)?;
            let _ = (b.execution_hint, b.collect_mode, b.value_type);
            let (size, shard_size) = terms_sizes(name, b.size, b.shard_size)?;
            AggKind::Terms(Terms {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                size,
                shard_size,
                min_doc_count: b.min_doc_count.unwrap_or(1),
                shard_min_doc_count: b.shard_min_doc_count.unwrap_or(0),
                order: match &b.order {
                    Some(order) => parse_order(order)?,
                    None => Vec::new(),
                },
                include: b
                    .include
                    .as_ref()
                    .map(|v| parse_term_filter(v, "include"))
                    .transpose()?,
                exclude: b
                    .exclude
                    .as_ref()
                    .map(|v| parse_term_filter(v, "exclude"))
                    .transpose()?,
                show_term_doc_count_error: b.show_term_doc_count_error.unwrap_or(false),
            })
        }
        "auto_date_histogram" => {
            let b: AutoDateHistogramBody = body(type_name, spec)?;
            let buckets = b.buckets.unwrap_or(aggs::AUTO_DATE_BUCKETS_DEFAULT as i64);
            if buckets <= 0 {
                return Err(illegal(format!(
                    "[buckets] must be greater than 0. Found [{buckets}] in [{name}]"
                )));
            }
            let minimum = match b.minimum_interval.as_deref() {
                None => 0,
                Some(text) => AUTO_DATE_MINIMUM_INTERVALS
                    .iter()
                    .find(|(n, _)| *n == text)
                    .map(|(_, level)| *level)
                    .ok_or_else(|| {
                        illegal(format!(
                            "minimum_interval must be one of [second, minute, hour, day, month, year], not [{text}]"
                        ))
                    })?,
            };
            let zone = time_zone(b.time_zone.as_deref(), type_name)?;
            AggKind::AutoDateHistogram(AutoDateHistogram::new(
                source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                buckets as usize,
                minimum,
                zone,
            ))
        }
        "significant_terms" => {
            let b: SignificantTermsBody = body(type_name, spec)?;
            let _ = (b.execution_hint, b.value_type);
            if b.script_heuristic.is_some() {
                return Err(illegal(format!(
                    "significance heuristic [script_heuristic] of aggregation [{name}] is not supported: Sluice runs no scripts"
                )));
            }
            let nxy = |body: &NxyBody| {
                (
                    body.include_negatives.unwrap_or(false),
                    body.background_is_superset.unwrap_or(true),
                )
            };
            let mut heuristics = Vec::new();
            if b.jlh.is_some() {
                heuristics.push(Significance::Jlh);
            }
            if b.percentage.is_some() {
                heuristics.push(Significance::Percentage);
            }
            if let Some(body) = &b.mutual_information {
                let (include_negatives, background_is_superset) = nxy(body);
                heuristics.push(Significance::MutualInformation {
                    include_negatives,
                    background_is_superset,
                });
            }
            if let Some(body) = &b.chi_square {
                let (include_negatives, background_is_superset) = nxy(body);
                heuristics.push(Significance::ChiSquare {
                    include_negatives,
                    background_is_superset,
                });
            }
            if let Some(body) = &b.gnd {
                heuristics.push(Significance::Gnd {
                    background_is_superset: body.background_is_superset.unwrap_or(true),
                });
            }
            if heuristics.len() > 1 {
                return Err(EsError::bad_request(
                    "parsing_exception",
                    "Only one significance heuristic can be specified",
                ));
            }
            let significance = heuristics.pop().unwrap_or(Significance::Jlh);
            // Sluice merges every candidate exactly, so `shard_size` is only checked.
            let (size, _) = terms_sizes(name, b.size, b.shard_size)?;
            AggKind::SignificantTerms(SignificantTerms {
                source: source_of(type_name, name, b.field, None, b.format, &b.script)?,
                size,
                min_doc_count: b
                    .min_doc_count
                    .unwrap_or(aggs::SIGNIFICANT_MIN_DOC_COUNT_DEFAULT),
                shard_min_doc_count: b.shard_min_doc_count.unwrap_or(0),
                include: b
                    .include
                    .as_ref()
                    .map(|v| parse_term_filter(v, "include"))
                    .transpose()?,
                exclude: b
                    .exclude
                    .as_ref()
                    .map(|v| parse_term_filter(v, "exclude"))
                    .transpose()?,
                background_filter: b.background_filter.as_ref().map(parse_query).transpose()?,
                significance,
            })
        }
        "rare_terms" => {
            let b: RareTermsBody = body(type_name, spec)?;
            let _ = b.value_type;
            let max_doc_count = b.max_doc_count.unwrap_or(1);
            if max_doc_count <= 0 {
                return Err(illegal(format!(
                    "[max_doc_count] must be greater than 0. Found [{max_doc_count}] in [{name}]"
                )));
            }
            if max_doc_count as u64 > aggs::RARE_TERMS_MAX_DOC_COUNT_MAX {
                return Err(illegal(format!(
                    "[max_doc_count] must be smaller than {} in [{name}]",
                    aggs::RARE_TERMS_MAX_DOC_COUNT_MAX
                )));
            }
            // The precision of Elasticsearch's cuckoo filters: Sluice's rare terms are exact,
            // so it is only checked.
            if b.precision.is_some_and(|p| p < 0.00001) {
                return Err(illegal("[precision] must be greater than 0.00001"));
            }
            AggKind::RareTerms(RareTerms {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                max_doc_count: max_doc_count as u64,
                include: b
                    .include
                    .as_ref()
                    .map(|v| parse_term_filter(v, "include"))
                    .transpose()?,
                exclude: b
                    .exclude
                    .as_ref()
                    .map(|v| parse_term_filter(v, "exclude"))
                    .transpose()?,
            })
        }
        "multi_terms" => {
            let b: MultiTermsBody = body(type_name, spec)?;
            let _ = b.collect_mode;
            let configs = b.terms.unwrap_or_default();
            if configs.len() < 2 {
                return Err(illegal(format!(
                    "The [terms] parameter in the aggregation [{name}] must be present and have at least 2 fields or scripts."
                )));
            }
            let sources = configs
                .into_iter()
                .map(|c| source_of(type_name, name, c.field, c.missing, c.format, &c.script))
                .collect::<Result<Vec<_>, _>>()?;
            let (size, shard_size) = terms_sizes(name, b.size, b.shard_size)?;
            AggKind::MultiTerms(MultiTerms {
                sources,
                size,
                shard_size,
                min_doc_count: b.min_doc_count.unwrap_or(1),
                shard_min_doc_count: b.shard_min_doc_count.unwrap_or(0),
                order: match &b.order {
                    Some(order) => parse_order(order)?,
                    None => Vec::new(),
                },
                show_term_doc_count_error: b.show_term_doc_count_error.unwrap_or(false),
            })
        }
        "histogram" => {
            let b: HistogramBody = body(type_name, spec)?;
            let Some(interval) = b.interval.filter(|i| *i > 0.0) else {
                return Err(illegal(format!(
                    "[interval] must be >0 for histogram aggregation [{name}]"
                )));
            };
            let extended = match &b.extended_bounds {
                Some(bounds) => match (
                    number_bound(&bounds.min, "min")?,
                    number_bound(&bounds.max, "max")?,
                ) {
                    (Some(min), Some(max)) if min <= max => Some((min, max)),
                    (Some(min), Some(max)) => {
                        return Err(illegal(format!(
                            "[extended_bounds.min][{min}] cannot be greater than [extended_bounds.max][{max}] for histogram aggregation [{name}]"
                        )));
                    }
                    _ => None,
                },
                None => None,
            };
            let hard = match &b.hard_bounds {
                Some(bounds) => Some((
                    number_bound(&bounds.min, "min")?,
                    number_bound(&bounds.max, "max")?,
                )),
                None => None,
            };
            AggKind::Histogram(Histogram {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                interval,
                offset: b.offset.unwrap_or(0.0),
                min_doc_count: b.min_doc_count.unwrap_or(0),
                extended_bounds: extended,
                hard_bounds: hard,
                order: match &b.order {
                    Some(order) => parse_order(order)?,
                    None => Vec::new(),
                },
                keyed: b.keyed.unwrap_or(false),
            })
        }
        "date_histogram" => {
            let b: DateHistogramBody = body(type_name, spec)?;
            let interval = date_interval(
                b.calendar_interval.as_deref(),
                b.fixed_interval.as_deref(),
                b.interval.as_deref(),
                name,
            )?;
            let zone = time_zone(b.time_zone.as_deref(), type_name)?;
            let offset = date_offset(&b.offset)?;
            let format = b
                .format
                .clone()
                .unwrap_or_else(|| sluice_search::date::DEFAULT_DATE_FORMAT.to_string());
            if let Some(text) = &b.format {
                aggs::format::DateFormat::parse(text).map_err(illegal)?;
            }
            let rounding = Rounding::new(interval, zone.clone(), offset);
            let extended = match &b.extended_bounds {
                Some(bounds) => match (
                    date_bound(&bounds.min, "extended_bounds.min", now, &format, &zone)?,
                    date_bound(&bounds.max, "extended_bounds.max", now, &format, &zone)?,
                ) {
                    (Some(min), Some(max)) if min <= max => Some((min, max)),
                    (Some(min), Some(max)) => {
                        return Err(illegal(format!(
                            "[extended_bounds.min][{min}] cannot be greater than [extended_bounds.max][{max}] for histogram aggregation [{name}]"
                        )));
                    }
                    _ => None,
                },
                None => None,
            };
            let hard = match &b.hard_bounds {
                Some(bounds) => Some((
                    date_bound(&bounds.min, "hard_bounds.min", now, &format, &zone)?,
                    date_bound(&bounds.max, "hard_bounds.max", now, &format, &zone)?,
                )),
                None => None,
            };
            AggKind::DateHistogram(DateHistogram {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                rounding,
                min_doc_count: b.min_doc_count.unwrap_or(0),
                extended_bounds: extended,
                hard_bounds: hard,
                order: match &b.order {
                    Some(order) => parse_order(order)?,
                    None => Vec::new(),
                },
                keyed: b.keyed.unwrap_or(false),
            })
        }
        "range" | "date_range" => {
            let b: RangeBody = body(type_name, spec)?;
            let is_date = type_name == "date_range";
            if !is_date && b.time_zone.is_some() {
                return Err(body::<RangeBodyNoZone>(type_name, spec)
                    .err()
                    .unwrap_or_else(|| illegal("[range] unknown field [time_zone]")));
            }
            if b.ranges.is_empty() {
                return Err(illegal(format!(
                    "No [ranges] specified for the [{name}] aggregation"
                )));
            }
            let zone = time_zone(b.time_zone.as_deref(), type_name)?;
            let format = b
                .format
                .clone()
                .unwrap_or_else(|| sluice_search::date::DEFAULT_DATE_FORMAT.to_string());
            let mut ranges = Vec::with_capacity(b.ranges.len());
            for entry in &b.ranges {
                let (from, to) = if is_date {
                    (
                        date_bound(&entry.from, "from", now, &format, &zone)?.map(|v| v as f64),
                        date_bound(&entry.to, "to", now, &format, &zone)?.map(|v| v as f64),
                    )
                } else {
                    (
                        number_bound(&entry.from, "from")?,
                        number_bound(&entry.to, "to")?,
                    )
                };
                ranges.push(RangeSpec {
                    key: entry.key.clone(),
                    from,
                    to,
                });
            }
            AggKind::Range(RangeAgg {
                source: source_of(type_name, name, b.field, b.missing, b.format, &b.script)?,
                ranges,
                keyed: b.keyed.unwrap_or(false),
                date_zone: is_date.then_some(zone),
                geo: None,
            })
        }
        "geohash_grid" | "geotile_grid" => parse_geo_grid(type_name, spec)?,
        "geo_bounds" => {
            let b: GeoBoundsBody = body(type_name, spec)?;
            AggKind::GeoBounds {
                field: geo_field(type_name, b.field)?,
                wrap_longitude: b.wrap_longitude.unwrap_or(true),
            }
        }
        "geo_centroid" => {
            let b: GeoCentroidBody = body(type_name, spec)?;
            AggKind::GeoCentroid {
                field: geo_field(type_name, b.field)?,
            }
        }
        "geo_distance" => parse_geo_distance(name, spec)?,
        "ip_range" => parse_ip_range(name, spec)?,
        "filter" => AggKind::Filter(parse_query(spec)?),
        "filters" => {
            let b: FiltersBody = body(type_name, spec)?;
            let (filters, named) = match &b.filters {
                Value::Object(map) => (
                    map.iter()
                        .map(|(key, q)| Ok((Some(key.clone()), parse_query(q)?)))
                        .collect::<Result<Vec<_>, EsError>>()?,
                    true,
                ),
                Value::Array(items) => (
                    items
                        .iter()
                        .map(|q| Ok((None, parse_query(q)?)))
                        .collect::<Result<Vec<_>, EsError>>()?,
                    false,
                ),
                _ => return Err(EsError::parse("[filters] must be an object or an array")),
            };
            let other = b.other_bucket.unwrap_or(b.other_bucket_key.is_some());
            AggKind::Filters(Filters {
                filters,
                other_bucket_key: other
                    .then(|| b.other_bucket_key.unwrap_or_else(|| "_other_".to_string())),
                keyed: b.keyed.unwrap_or(named) && named,
            })
        }
        "missing" => {
            let b: MissingBody = body(type_name, spec)?;
            AggKind::Missing(source_of(type_name, name, b.field, None, None, &b.script)?)
        }
        "global" => {
            let _: GlobalBody = body(type_name, spec)?;
            AggKind::Global
        }
        "nested" => {
            let b: NestedBody = body(type_name, spec)?;
            AggKind::Nested(b.path)
        }
        "reverse_nested" => {
            let b: ReverseNestedBody = body(type_name, spec)?;
            AggKind::ReverseNested(b.path)
        }
        "sampler" => {
            let b: SamplerBody = body(type_name, spec)?;
            AggKind::Sampler(Sampler {
                shard_size: sampler_shard_size(name, b.shard_size)?,
                diversify: None,
            })
        }
        "diversified_sampler" => {
            let b: DiversifiedSamplerBody = body(type_name, spec)?;
            let _ = b.execution_hint;
            let max_docs_per_value = match b.max_docs_per_value {
                None => 1,
                Some(max) if max > 0 => max as usize,
                Some(max) => {
                    return Err(illegal(format!(
                        "[max_docs_per_value] must be greater than 0. Found [{max}] in [{name}]"
                    )));
                }
            };
            AggKind::Sampler(Sampler {
                shard_size: sampler_shard_size(name, b.shard_size)?,
                diversify: Some((
                    source_of(type_name, name, b.field, None, None, &b.script)?,
                    max_docs_per_value,
                )),
            })
        }
        "composite" => parse_composite(name, spec, now)?,
        "avg_bucket"
        | "max_bucket"
        | "min_bucket"
        | "sum_bucket"
        | "stats_bucket"
        | "extended_stats_bucket"
        | "percentiles_bucket"
        | "derivative"
        | "cumulative_sum"
        | "moving_fn"
        | "serial_diff"
        | "bucket_script"
        | "bucket_selector"
        | "bucket_sort" => AggKind::Pipeline(parse_pipeline(name, type_name, spec)?),
        other if NOT_YET_SUPPORTED.contains(&other) => {
            return Err(illegal(format!(
                "aggregation [{name}] of type [{other}] is not supported by Sluice yet"
            )));
        }
        other => {
            return Err(EsError::parse(format!(
                "Unknown aggregation type [{other}]"
            )));
        }
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PercentilesBodyNoValues {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    percents: Option<Vec<f64>>,
    keyed: Option<bool>,
    tdigest: Option<Value>,
    hdr: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct RangeBodyNoZone {
    field: Option<String>,
    missing: Option<Value>,
    format: Option<String>,
    script: Option<Value>,
    ranges: Value,
    keyed: Option<bool>,
}

/// Cells each index keeps of a grid asking for `size`, as Elasticsearch's
/// `BucketUtils.suggestShardSideQueueSize`: half as many again plus ten.
fn geo_grid_shard_size(size: usize) -> usize {
    size.saturating_add(size / 2).saturating_add(10)
}

/// `size` of `geohash_grid` and `geotile_grid` when the request gives none.
const GEO_GRID_SIZE_DEFAULT: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoGridBody {
    field: Option<String>,
    precision: Option<Value>,
    size: Option<i64>,
    shard_size: Option<i64>,
    bounds: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoBoundsBody {
    field: Option<String>,
    wrap_longitude: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoCentroidBody {
    field: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GeoDistanceBody {
    field: Option<String>,
    origin: Option<Value>,
    unit: Option<String>,
    distance_type: Option<String>,
    ranges: Vec<RangeEntry>,
    keyed: Option<bool>,
}

fn geo_field(type_name: &str, field: Option<String>) -> Result<String, EsError> {
    field.ok_or_else(|| {
        illegal(format!(
            "Required one of fields [field, script], but none were specified. in [{type_name}]"
        ))
    })
}

fn parse_geo_grid(type_name: &str, spec: &Value) -> Result<AggKind, EsError> {
    use sluice_search::aggs::{GeoCells, GeoGrid};
    use sluice_search::geo::{self, DistanceUnit};
    let b: GeoGridBody = body(type_name, spec)?;
    let field = geo_field(type_name, b.field)?;
    let is_hash = type_name == "geohash_grid";
    let cells = match (&b.precision, is_hash) {
        (None, true) => GeoCells::Geohash { precision: 5 },
        (None, false) => GeoCells::Geotile { zoom: 7 },
        (Some(Value::String(text)), true) if text.trim().parse::<i64>().is_err() => {
            let meters = geo::parse_distance(&Value::String(text.clone()), DistanceUnit::METERS)
                .map_err(illegal)?;
            GeoCells::Geohash {
                precision: geo::geohash_precision_for_distance(meters),
            }
        }
        (Some(value), _) => {
            let number = match value {
                Value::Number(n) => n.as_i64(),
                Value::String(text) => text.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| {
                EsError::parse(format!("[{type_name}] failed to parse field [precision]"))
            })?;
            if is_hash {
                if !(1..=geo::GEOHASH_PRECISION_MAX as i64).contains(&number) {
                    return Err(illegal(format!(
                        "Invalid geohash aggregation precision of {number}. Must be between 1 and {}.",
                        geo::GEOHASH_PRECISION_MAX
                    )));
                }
                GeoCells::Geohash {
                    precision: number as usize,
                }
            } else {
                if !(0..=i64::from(geo::GEOTILE_ZOOM_MAX)).contains(&number) {
                    return Err(illegal(format!(
                        "Invalid geotile_grid precision of {number}. Must be between 0 and {}.",
                        geo::GEOTILE_ZOOM_MAX
                    )));
                }
                GeoCells::Geotile {
                    zoom: number as u32,
                }
            }
        }
    };
    let size = match b.size {
        None => GEO_GRID_SIZE_DEFAULT,
        Some(size) if size > 0 => size as usize,
        Some(_) => {
            return Err(illegal(format!(
                "[size] must be greater than 0. Found [{}] in [{type_name}]",
                b.size.unwrap_or(0)
            )));
        }
    };
    let shard_size = match b.shard_size {
        None | Some(-1) => geo_grid_shard_size(size),
        Some(shard) if shard > 0 => (shard as usize).max(size),
        Some(shard) => {
            return Err(illegal(format!(
                "[shardSize] must be greater than 0. Found [{shard}] in [{type_name}]"
            )));
        }
    };
    let bounds = match &b.bounds {
        None => None,
        Some(Value::Object(object)) => Some(geo::parse_bounding_box(object).map_err(|reason| {
            EsError::parse(format!(
                "[{type_name}] failed to parse field [bounds]: {reason}"
            ))
        })?),
        Some(_) => {
            return Err(EsError::parse(format!(
                "[{type_name}] [bounds] must be an object"
            )));
        }
    };
    Ok(AggKind::GeoGrid(GeoGrid {
        field,
        cells,
        size,
        shard_size,
        bounds,
    }))
}

fn parse_geo_distance(name: &str, spec: &Value) -> Result<AggKind, EsError> {
    use sluice_search::aggs::GeoOrigin;
    use sluice_search::geo::{DistanceType, DistanceUnit, parse_point};
    let type_name = "geo_distance";
    let b: GeoDistanceBody = body(type_name, spec)?;
    let field = geo_field(type_name, b.field)?;
    let origin = b.origin.as_ref().ok_or_else(|| {
        illegal(format!(
            "Missing [origin] in geo_distance aggregator [{name}]"
        ))
    })?;
    let origin = parse_point(origin)
        .and_then(|point| point.validate("[origin]"))
        .map_err(|reason| {
            EsError::parse(format!("[geo_distance] failed to parse [origin]: {reason}"))
        })?;
    let unit = match b.unit.as_deref() {
        None => DistanceUnit::METERS,
        Some(text) => DistanceUnit::parse(text)
            .ok_or_else(|| illegal(format!("No distance unit match [{text}]")))?,
    };
    let distance_type = match b.distance_type.as_deref() {
        None => DistanceType::Arc,
        Some(text) => DistanceType::parse(text)
            .ok_or_else(|| illegal(format!("No geo distance for [{text}]")))?,
    };
    if b.ranges.is_empty() {
        return Err(illegal(format!(
            "No [ranges] specified for the [{name}] aggregation"
        )));
    }
    let mut ranges = Vec::with_capacity(b.ranges.len());
    for entry in &b.ranges {
        ranges.push(RangeSpec {
            key: entry.key.clone(),
            from: number_bound(&entry.from, "from")?,
            to: number_bound(&entry.to, "to")?,
        });
    }
    Ok(AggKind::Range(RangeAgg {
        source: ValueSource {
            field,
            missing: None,
            format: None,
        },
        ranges,
        keyed: b.keyed.unwrap_or(false),
        date_zone: None,
        geo: Some(GeoOrigin {
            origin,
            unit,
            distance_type,
        }),
    }))
}

fn parse_composite(name: &str, spec: &Value, now: i64) -> Result<AggKind, EsError> {
    let _ = now;
    let b: CompositeBody = body("composite", spec)?;
    if b.sources.is_empty() {
        return Err(illegal(format!(
            "Composite [sources] cannot be null or empty: [{name}]"
        )));
    }
    let mut sources = Vec::with_capacity(b.sources.len());
    for entry in b.sources {
        for (source_name, kinds) in entry {
            for (kind_name, s) in kinds {
                if s.script.is_some() {
                    return Err(illegal(format!(
                        "[script] in composite source [{source_name}] is not supported by Sluice"
                    )));
                }
                let _ = (s.value_type, s.missing_order);
                let Some(field) = s.field else {
                    return Err(illegal(format!(
                        "Required one of fields [field, script], but none were specified. for source [{source_name}]"
                    )));
                };
                let kind = match kind_name.as_str() {
                    "terms" => CompositeSourceKind::Terms,
                    "histogram" => {
                        let interval = match &s.interval {
                            Some(Value::Number(n)) => n.as_f64().unwrap_or(0.0),
                            _ => 0.0,
                        };
                        if interval <= 0.0 {
                            return Err(illegal(format!(
                                "[interval] must be greater than 0 for [histogram] source [{source_name}]"
                            )));
                        }
                        CompositeSourceKind::Histogram { interval }
                    }
                    "date_histogram" => {
                        let legacy = s.interval.as_ref().and_then(Value::as_str);
                        let interval = date_interval(
                            s.calendar_interval.as_deref(),
                            s.fixed_interval.as_deref(),
                            legacy,
                            &source_name,
                        )?;
                        let zone = time_zone(s.time_zone.as_deref(), "date_histogram")?;
                        CompositeSourceKind::DateHistogram {
                            rounding: Rounding::new(interval, zone, date_offset(&s.offset)?),
                        }
                    }
                    "geotile_grid" => {
                        // The same precision and bounds as the `geotile_grid` aggregation.
                        let mut grid = json!({"field": field});
                        if let Some(precision) = &s.precision {
                            grid["precision"] = precision.clone();
                        }
                        if let Some(bounds) = &s.bounds {
                            grid["bounds"] = bounds.clone();
                        }
                        match parse_geo_grid("geotile_grid", &grid)? {
                            AggKind::GeoGrid(sluice_search::aggs::GeoGrid {
                                cells: sluice_search::aggs::GeoCells::Geotile { zoom },
                                bounds,
                                ..
                            }) => CompositeSourceKind::Geotile { zoom, bounds },
                            _ => {
                                return Err(illegal(format!(
                                    "[precision] of geotile_grid source [{source_name}] is not a zoom"
                                )));
                            }
                        }
                    }
                    other => {
                        return Err(EsError::parse(format!("Invalid source type: {other}")));
                    }
                };
                sources.push(CompositeSource {
                    name: source_name.clone(),
                    source: ValueSource {
                        field,
                        missing: None,
                        format: s.format.clone(),
                    },
                    kind,
                    direction: direction(s.order.as_deref().unwrap_or("asc"), "composite")?,
                    missing_bucket: s.missing_bucket.unwrap_or(false),
                });
            }
        }
    }
    let after = match b.after {
        None => None,
        Some(map) => {
            let mut values = Vec::with_capacity(sources.len());
            for source in &sources {
                let value = map.get(&source.name).ok_or_else(|| {
                    illegal(format!(
                        "[after] has [{}] values but [sources] has [{}]",
                        map.len(),
                        sources.len()
                    ))
                })?;
                values.push((!value.is_null()).then(|| value.clone()));
            }
            if map.len() != sources.len() {
                return Err(illegal(format!(
                    "[after] has [{}] values but [sources] has [{}]",
                    map.len(),
                    sources.len()
                )));
            }
            Some(values)
        }
    };
    Ok(AggKind::Composite(Composite {
        sources,
        size: b.size.unwrap_or(aggs::TERMS_SIZE_DEFAULT),
        after,
    }))
}

fn parse_pipeline(name: &str, type_name: &str, spec: &Value) -> Result<Pipeline, EsError> {
    let b: PipelineBody = body(type_name, spec)?;
    let gap_policy = match b.gap_policy.as_deref() {
        None | Some("skip") => GapPolicy::Skip,
        Some("insert_zeros") => GapPolicy::InsertZeros,
        Some("keep_values") => GapPolicy::KeepValues,
        Some(other) => {
            return Err(EsError::parse(format!(
                "Invalid gap policy: [{other}], accepted values: [skip, insert_zeros, keep_values]"
            )));
        }
    };
    let format = b
        .format
        .as_deref()
        .map(aggs::format::DecimalFormat::parse)
        .transpose()
        .map_err(illegal)?;
    let single_path = || -> Result<BucketsPath, EsError> {
        match &b.buckets_path {
            Some(Value::String(path)) => BucketsPath::parse(path).map_err(EsError::from),
            Some(Value::Array(items)) if items.len() == 1 => items
                .first()
                .and_then(Value::as_str)
                .ok_or_else(|| illegal("[buckets_path] must be a string"))
                .and_then(|p| BucketsPath::parse(p).map_err(EsError::from)),
            _ => Err(illegal(format!(
                "[buckets_path] must be set for aggregation [{name}]"
            ))),
        }
    };
    let script_vars = || -> Result<(Vec<(String, BucketsPath)>, ScriptExpr), EsError> {
        let vars = match &b.buckets_path {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(var, path)| {
                    let path = path
                        .as_str()
                        .ok_or_else(|| illegal("[buckets_path] values must be strings"))?;
                    Ok((
                        var.clone(),
                        BucketsPath::parse(path).map_err(EsError::from)?,
                    ))
                })
                .collect::<Result<Vec<_>, EsError>>()?,
            Some(Value::String(path)) => vec![(
                "_value".to_string(),
                BucketsPath::parse(path).map_err(EsError::from)?,
            )],
            _ => {
                return Err(illegal(format!(
                    "[buckets_path] must be set for aggregation [{name}]"
                )));
            }
        };
        let source = match &b.script {
            Some(Value::String(source)) => source.clone(),
            Some(Value::Object(map)) => {
                if map
                    .get("lang")
                    .and_then(Value::as_str)
                    .is_some_and(|l| l != "painless" && l != "expression")
                {
                    return Err(illegal(
                        "only painless-like expression scripts are supported by Sluice",
                    ));
                }
                map.get("source")
                    .or_else(|| map.get("inline"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| illegal("[script] needs a [source]"))?
            }
            _ => {
                return Err(illegal(format!(
                    "[script] must be set for aggregation [{name}]"
                )));
            }
        };
        // The script's own `params` (numbers) are constants; `buckets_path` names win.
        let constants: Map<String, Value> = match &b.script {
            Some(Value::Object(map)) => match map.get("params") {
                Some(Value::Object(params)) => params.clone(),
                None | Some(Value::Null) => Map::new(),
                Some(_) => {
                    return Err(EsError::parse(
                        "[script] failed to parse field [params]: expected an object",
                    ));
                }
            },
            _ => Map::new(),
        };
        let script = ScriptExpr::parse(&source).map_err(EsError::from)?;
        for param in aggs::script_params(&script) {
            if vars.iter().any(|(v, _)| *v == param) {
                continue;
            }
            match constants.get(&param) {
                Some(Value::Number(_)) | None => {}
                Some(other) => {
                    return Err(illegal(format!(
                        "script of [{name}] uses [params.{param}], which is [{other}]: Sluice's bucket scripts compute with numbers only"
                    )));
                }
            }
        }
        let script = script.with_constants(&|param: &str| {
            if vars.iter().any(|(v, _)| v == param) {
                return None;
            }
            constants.get(param).and_then(Value::as_f64)
        });
        for param in aggs::script_params(&script) {
            if !vars.iter().any(|(v, _)| *v == param) {
                return Err(illegal(format!(
                    "script of [{name}] uses [params.{param}], which [buckets_path] does not define"
                )));
            }
        }
        Ok((vars, script))
    };
    let kind = match type_name {
        "avg_bucket" => PipelineKind::AvgBucket,
        "max_bucket" => PipelineKind::MaxBucket,
        "min_bucket" => PipelineKind::MinBucket,
        "sum_bucket" => PipelineKind::SumBucket,
        "stats_bucket" => PipelineKind::StatsBucket,
        "extended_stats_bucket" => PipelineKind::ExtendedStatsBucket {
            sigma: b.sigma.unwrap_or(2.0),
        },
        "percentiles_bucket" => {
            let percents = b
                .percents
                .clone()
                .unwrap_or_else(|| vec![1.0, 5.0, 25.0, 50.0, 75.0, 95.0, 99.0]);
            if percents.iter().any(|p| !(0.0..=100.0).contains(p)) {
                return Err(illegal(
                    "[percents] must only contain non-null doubles from 0.0-100.0 inclusive",
                ));
            }
            PipelineKind::PercentilesBucket {
                percents,
                keyed: b.keyed.unwrap_or(true),
            }
        }
        "derivative" => PipelineKind::Derivative {
            unit_ms: match b.unit.as_deref() {
                None => None,
                Some(unit) => Some(
                    CalendarUnit::parse(unit)
                        .and_then(CalendarUnit::fixed_millis)
                        .or_else(|| aggs::rounding::parse_fixed_millis(unit))
                        .ok_or_else(|| illegal(format!("Unable to parse [unit] [{unit}]")))?,
                ),
            },
        },
        "cumulative_sum" => PipelineKind::CumulativeSum,
        "moving_fn" => {
            let Some(window) = b.window.filter(|w| *w > 0) else {
                return Err(illegal(format!(
                    "[window] must be a positive, non-zero integer for aggregation [{name}]"
                )));
            };
            let source = match &b.script {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Object(map)) => map
                    .get("source")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                _ => {
                    return Err(illegal(format!(
                        "[script] must be set for aggregation [{name}]"
                    )));
                }
            };
            PipelineKind::MovingFn {
                window,
                shift: b.shift.unwrap_or(0),
                function: MovingFunction::parse(&source).map_err(EsError::from)?,
            }
        }
        "serial_diff" => PipelineKind::SerialDiff {
            lag: b.lag.unwrap_or(1).max(1),
        },
        "bucket_script" => {
            let (vars, script) = script_vars()?;
            PipelineKind::BucketScript { vars, script }
        }
        "bucket_selector" => {
            let (vars, script) = script_vars()?;
            PipelineKind::BucketSelector { vars, script }
        }
        "bucket_sort" => {
            let sort = parse_sort(&b.sort)?
                .into_iter()
                .map(|spec| match spec {
                    SortSpec::Field { field, direction } => Ok((
                        BucketsPath::parse(&field).map_err(EsError::from)?,
                        direction,
                    )),
                    SortSpec::Score(_) => Err(illegal("[bucket_sort] cannot sort by [_score]")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            PipelineKind::BucketSort {
                sort,
                from: b.from.unwrap_or(0),
                size: b.size,
            }
        }
        _ => {
            return Err(EsError::parse(format!(
                "Unknown aggregation type [{type_name}]"
            )));
        }
    };
    let buckets_path = match &kind {
        PipelineKind::BucketScript { .. }
        | PipelineKind::BucketSelector { .. }
        | PipelineKind::BucketSort { .. } => None,
        _ => Some(single_path()?),
    };
    Ok(Pipeline {
        kind,
        buckets_path,
        gap_policy,
        format,
    })
}

/// Runs the parsed aggregations over the search's targets (each index with its query, scoped by
/// alias filters) and renders them as the `aggregations` object.
pub(crate) fn run(
    targets: &[super::targets::Target],
    query: &sluice_search::Query,
    parsed: &SearchAggs,
    raw: &mut RawSources,
) -> Result<Value, EsError> {
    let scoped: Vec<(std::sync::Arc<sluice_search::Index>, sluice_search::Query)> = targets
        .iter()
        .map(|target| (target.index.clone(), target.scope(query)))
        .collect();
    let results = aggs::aggregate(&scoped, &parsed.aggs, aggs::AggregationLimits::default())?;
    Ok(render(&results, parsed, raw))
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn number(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

fn optional(v: Option<f64>) -> Value {
    v.map_or(Value::Null, number)
}

/// Renders the results of one level into `out`, by name.
pub(crate) fn render(results: &[AggResult], parsed: &SearchAggs, raw: &mut RawSources) -> Value {
    let mut out = Map::new();
    render_level(results, &parsed.render, raw, &mut out, parsed.typed_keys);
    Value::Object(out)
}

/// The name of a result's type as `typed_keys` shows it (Elasticsearch's `getWriteableName`).
fn typed_name(node: &RenderNode, value: &AggValue) -> String {
    match node.type_name.as_str() {
        "percentiles" => "tdigest_percentiles".into(),
        "percentile_ranks" => "tdigest_percentile_ranks".into(),
        "terms" => match value {
            AggValue::Buckets(buckets) => match buckets.buckets.first().map(|b| &b.key) {
                Some(BucketKey::Long(_)) => "lterms".into(),
                Some(BucketKey::Double(_)) => "dterms".into(),
                _ => "sterms".into(),
            },
            _ => "sterms".into(),
        },
        "significant_terms" => match value {
            AggValue::Buckets(buckets) => match buckets.buckets.first().map(|b| &b.key) {
                Some(BucketKey::Long(_) | BucketKey::Double(_)) => "siglterms".into(),
                _ => "sigsterms".into(),
            },
            _ => "sigsterms".into(),
        },
        // Both samplers answer Elasticsearch's one sampler result.
        "diversified_sampler" => "sampler".into(),
        "rare_terms" => match value {
            AggValue::Buckets(buckets) => match buckets.buckets.first().map(|b| &b.key) {
                Some(BucketKey::Long(_)) => "lrareterms".into(),
                _ => "srareterms".into(),
            },
            _ => "srareterms".into(),
        },
        "avg_bucket" | "sum_bucket" | "cumulative_sum" | "moving_fn" | "serial_diff"
        | "bucket_script" => "simple_value".into(),
        "max_bucket" | "min_bucket" => "bucket_metric_value".into(),
        other => other.to_string(),
    }
}

fn render_level(
    results: &[AggResult],
    nodes: &[RenderNode],
    raw: &mut RawSources,
    out: &mut Map<String, Value>,
    typed: bool,
) {
    for result in results {
        let node = nodes.iter().find(|n| n.name == result.name);
        let empty = RenderNode::default();
        let node = node.unwrap_or(&empty);
        let mut object = render_value(&result.value, node, raw, typed);
        if let (Some(meta), Value::Object(map)) = (&node.meta, &mut object) {
            let mut with_meta = Map::new();
            with_meta.insert("meta".into(), meta.clone());
            with_meta.append(map);
            object = Value::Object(with_meta);
        }
        let name = if typed {
            format!("{}#{}", typed_name(node, &result.value), result.name)
        } else {
            result.name.clone()
        };
        out.insert(name, object);
    }
}

fn stats_json(stats: &Stats) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("count".into(), json!(stats.count));
    map.insert("min".into(), optional(stats.min));
    map.insert("max".into(), optional(stats.max));
    map.insert("avg".into(), optional(stats.avg));
    map.insert("sum".into(), number(stats.sum));
    if let Some([min, max, avg, sum]) = &stats.as_strings {
        for (key, value) in [
            ("min_as_string", min),
            ("max_as_string", max),
            ("avg_as_string", avg),
            ("sum_as_string", sum),
        ] {
            if let Some(text) = value {
                map.insert(key.into(), Value::String(text.clone()));
            }
        }
    }
    map
}

fn extended_json(extended: &ExtendedStats) -> Map<String, Value> {
    let mut map = stats_json(&extended.stats);
    for (key, value) in [
        ("sum_of_squares", extended.sum_of_squares),
        ("variance", extended.variance),
        ("variance_population", extended.variance_population),
        ("variance_sampling", extended.variance_sampling),
        ("std_deviation", extended.std_deviation),
        (
            "std_deviation_population",
            extended.std_deviation_population,
        ),
        ("std_deviation_sampling", extended.std_deviation_sampling),
    ] {
        map.insert(key.into(), optional(value));
    }
    let [
        upper,
        lower,
        upper_population,
        lower_population,
        upper_sampling,
        lower_sampling,
    ] = extended.bounds;
    map.insert(
        "std_deviation_bounds".into(),
        json!({
            "upper": optional(upper),
            "lower": optional(lower),
            "upper_population": optional(upper_population),
            "lower_population": optional(lower_population),
            "upper_sampling": optional(upper_sampling),
            "lower_sampling": optional(lower_sampling),
        }),
    );
    map
}

/// `filter` with the patterns that name the fields of the nested object at `identity` (`_nested`:
/// `{field, offset, _nested}`) by their full path made relative to the object.
fn nested_filter(filter: &SourceFilter, identity: &Value) -> SourceFilter {
    let mut path = String::new();
    let mut level = Some(identity);
    while let Some(field) = level.and_then(|l| l.get("field")).and_then(Value::as_str) {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(field);
        level = level.and_then(|l| l.get("_nested"));
    }
    let relative = |patterns: &[String]| -> Vec<String> {
        patterns
            .iter()
            .map(|pattern| {
                pattern
                    .strip_prefix(path.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .unwrap_or(pattern)
                    .to_string()
            })
            .collect()
    };
    SourceFilter {
        enabled: filter.enabled,
        includes: relative(&filter.includes),
        excludes: relative(&filter.excludes),
    }
}

fn render_value(value: &AggValue, node: &RenderNode, raw: &mut RawSources, typed: bool) -> Value {
    match value {
        AggValue::Value { value, as_string } => {
            let mut map = Map::new();
            map.insert("value".into(), optional(*value));
            if let Some(text) = as_string {
                map.insert("value_as_string".into(), Value::String(text.clone()));
            }
            Value::Object(map)
        }
        AggValue::BucketValue {
            value,
            as_string,
            keys,
        } => {
            let mut map = Map::new();
            map.insert("value".into(), optional(*value));
            if let Some(text) = as_string {
                map.insert("value_as_string".into(), Value::String(text.clone()));
            }
            map.insert("keys".into(), json!(keys));
            Value::Object(map)
        }
        AggValue::Derivative {
            value,
            normalized_value,
        } => {
            json!({"value": number(*value), "normalized_value": number(*normalized_value)})
        }
        AggValue::Count(count) => json!({ "value": count }),
        AggValue::Stats(stats) => Value::Object(stats_json(stats)),
        AggValue::ExtendedStats(extended) => Value::Object(extended_json(extended)),
        AggValue::Percentiles { keyed, values } => {
            if *keyed {
                let mut map = Map::new();
                for (key, v, text) in values {
                    let name = aggs::java_double(*key);
                    map.insert(name.clone(), optional(*v));
                    if let (Some(text), Some(_)) = (text, v) {
                        map.insert(format!("{name}_as_string"), Value::String(text.clone()));
                    }
                }
                json!({ "values": map })
            } else {
                let list: Vec<Value> = values
                    .iter()
                    .map(|(key, v, text)| {
                        let mut entry = json!({"key": number(*key), "value": optional(*v)});
                        if let (Some(text), Some(_)) = (text, v) {
                            entry["value_as_string"] = Value::String(text.clone());
                        }
                        entry
                    })
                    .collect();
                json!({ "values": list })
            }
        }
        AggValue::TopHits {
            total,
            max_score,
            hits,
        } => {
            let filter = node.source.clone().unwrap_or_default();
            let hits: Vec<Value> = hits
                .iter()
                .map(|hit| {
                    let mut entry = Map::new();
                    entry.insert("_index".into(), Value::String(hit.index.clone()));
                    entry.insert("_id".into(), Value::String(hit.id.clone()));
                    if let Some(nested) = &hit.nested {
                        entry.insert("_nested".into(), nested.clone());
                    }
                    entry.insert(
                        "_score".into(),
                        hit.score.map_or(Value::Null, |s| number(f64::from(s))),
                    );
                    let source = match &hit.nested {
                        // A nested object's fields may be named by full path, as in
                        // Elasticsearch, or relative to the object.
                        Some(identity) => nested_filter(&filter, identity).apply(&hit.source),
                        None => filter.render(&hit.source, raw),
                    };
                    if let Some(source) = source {
                        entry.insert("_source".into(), source);
                    }
                    if !hit.sort.is_empty() {
                        entry.insert("sort".into(), Value::Array(hit.sort.clone()));
                    }
                    Value::Object(entry)
                })
                .collect();
            json!({"hits": {
                "total": {"value": total, "relation": "eq"},
                "max_score": max_score.map_or(Value::Null, |s| number(f64::from(s))),
                "hits": hits,
            }})
        }
        AggValue::TopMetrics(rows) => {
            let top: Vec<Value> = rows
                .iter()
                .map(|row| {
                    let metrics: Map<String, Value> = row.metrics.iter().cloned().collect();
                    json!({"sort": row.sort, "metrics": metrics})
                })
                .collect();
            json!({ "top": top })
        }
        AggValue::GeoBounds(bounds) => match bounds {
            Some(bounds) => json!({"bounds": {
                "top_left": {"lat": number(bounds.top), "lon": number(bounds.left)},
                "bottom_right": {"lat": number(bounds.bottom), "lon": number(bounds.right)},
            }}),
            None => json!({}),
        },
        AggValue::GeoCentroid { location, count } => match location {
            Some(point) => json!({
                "location": {"lat": number(point.lat), "lon": number(point.lon)},
                "count": count,
            }),
            None => json!({ "count": count }),
        },
        AggValue::SingleBucket { doc_count, subs } => {
            let mut map = Map::new();
            map.insert("doc_count".into(), json!(doc_count));
            render_level(subs, &node.subs, raw, &mut map, typed);
            Value::Object(map)
        }
        AggValue::Buckets(buckets) => {
            let mut map = Map::new();
            match &buckets.kind {
                BucketsKind::Terms {
                    doc_count_error_upper_bound,
                    sum_other_doc_count,
                } => {
                    map.insert(
                        "doc_count_error_upper_bound".into(),
                        json!(doc_count_error_upper_bound),
                    );
                    map.insert("sum_other_doc_count".into(), json!(sum_other_doc_count));
                }
                BucketsKind::Significant {
                    doc_count,
                    bg_count,
                } => {
                    map.insert("doc_count".into(), json!(doc_count));
                    map.insert("bg_count".into(), json!(bg_count));
                }
                BucketsKind::AutoDate { .. } => {}
                BucketsKind::Composite {
                    after_key: Some(after),
                } => {
                    map.insert(
                        "after_key".into(),
                        Value::Object(after.iter().cloned().collect()),
                    );
                }
                _ => {}
            }
            let rendered: Vec<(String, Value)> = buckets
                .buckets
                .iter()
                .map(|b| {
                    (
                        b.key_as_string.clone().unwrap_or_else(|| b.key.as_text()),
                        render_bucket(b, node, raw, buckets.keyed, typed),
                    )
                })
                .collect();
            if buckets.keyed {
                map.insert(
                    "buckets".into(),
                    Value::Object(rendered.into_iter().collect()),
                );
            } else {
                map.insert(
                    "buckets".into(),
                    Value::Array(rendered.into_iter().map(|(_, v)| v).collect()),
                );
            }
            if let BucketsKind::AutoDate { interval } = &buckets.kind {
                map.insert("interval".into(), Value::String(interval.clone()));
            }
            Value::Object(map)
        }
    }
}

fn render_bucket(
    bucket: &Bucket,
    node: &RenderNode,
    raw: &mut RawSources,
    keyed: bool,
    typed: bool,
) -> Value {
    let mut map = Map::new();
    let key = match &bucket.key {
        BucketKey::Str(s) => Value::String(s.clone()),
        BucketKey::Long(v) => json!(v),
        BucketKey::Double(v) => number(*v),
        BucketKey::Composite(parts) => Value::Object(parts.iter().cloned().collect()),
        BucketKey::Multi(parts) => Value::Array(parts.clone()),
        BucketKey::Anonymous => Value::Null,
    };
    // Keyed filters and ranges name their buckets by the object key only; anonymous filters
    // have no key at all.
    let is_named = keyed && matches!(bucket.key, BucketKey::Str(_));
    if !is_named && bucket.key != BucketKey::Anonymous {
        map.insert("key".into(), key);
    }
    if let Some(range) = bucket.range.as_ref().filter(|range| range.addresses) {
        if let Some(from) = &range.from_as_string {
            map.insert("from".into(), Value::String(from.clone()));
        }
        if let Some(to) = &range.to_as_string {
            map.insert("to".into(), Value::String(to.clone()));
        }
    } else if let Some(range) = &bucket.range {
        if let Some(from) = range.from {
            map.insert("from".into(), number(from));
        }
        if let Some(text) = &range.from_as_string {
            map.insert("from_as_string".into(), Value::String(text.clone()));
        }
        if let Some(to) = range.to {
            map.insert("to".into(), number(to));
        }
        if let Some(text) = &range.to_as_string {
            map.insert("to_as_string".into(), Value::String(text.clone()));
        }
    }
    if let Some(text) = &bucket.key_as_string {
        map.insert("key_as_string".into(), Value::String(text.clone()));
    }
    map.insert("doc_count".into(), json!(bucket.doc_count));
    if let Some(error) = bucket.doc_count_error {
        map.insert("doc_count_error_upper_bound".into(), json!(error));
    }
    if let Some((score, bg_count)) = bucket.significance {
        map.insert("score".into(), number(score));
        map.insert("bg_count".into(), json!(bg_count));
    }
    render_level(&bucket.subs, &node.subs, raw, &mut map, typed);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(value: Value) -> String {
        parse(&value).unwrap_err().reason
    }

    #[test]
    fn unknown_fields_and_types_are_named() {
        assert_eq!(
            reason(json!({"a": {"terms": {"field": "x", "sizee": 3}}})),
            "[terms] unknown field [sizee]"
        );
        assert_eq!(
            reason(json!({"a": {"bogus": {}}})),
            "Unknown aggregation type [bogus]"
        );
        assert!(
            reason(json!({"a": {"adjacency_matrix": {"filters": {}}}}))
                .contains("not supported by Sluice")
        );
        assert!(
            reason(json!({"a": {"date_histogram": {"field": "t", "calendar_interval": "2d"}}}))
                .contains("could not be parsed as a calendar interval")
        );
        assert!(reason(json!({"a": {"date_histogram": {"field": "t", "fixed_interval": "1d", "time_zone": "Mars/Base"}}})).contains("Unknown time-zone ID"));
        assert!(
            reason(json!({"a>b": {"avg": {"field": "x"}}})).starts_with("Invalid aggregation name")
        );
        assert!(
            reason(json!({"a": {"avg": {"field": "x"}, "aggs": {"b": {"avg": {"field": "y"}}}}}))
                .contains("cannot accept sub-aggregations")
        );
        assert!(
            reason(json!({"a": {"terms": {"field": "x"}, "aggs": {"g": {"global": {}}}}}))
                .contains("top level")
        );
    }

    #[test]
    fn depth_is_bounded() {
        let mut value = json!({"leaf": {"avg": {"field": "x"}}});
        for i in 0..aggs::AGGREGATION_DEPTH_MAX + 1 {
            value = json!({format!("l{i}"): {"terms": {"field": "k"}, "aggs": value}});
        }
        assert!(reason(value).contains("nested deeper"));
    }

    #[test]
    fn kibana_shapes_parse() {
        let parsed = parse(&json!({
            "2": {"date_histogram": {"field": "timestamp", "fixed_interval": "30s", "time_zone": "Europe/London",
                  "min_doc_count": 0, "extended_bounds": {"min": 1_700_000_000_000i64, "max": 1_700_000_900_000i64}, "format": "epoch_millis"},
                  "aggs": {"3": {"terms": {"field": "ticker_symbol.keyword", "order": {"1": "desc"}, "size": 5},
                           "aggs": {"1": {"avg": {"field": "price"}}}}}},
            "f": {"filters": {"filters": {"bye": {"term": {"message": "bye"}}}, "other_bucket_key": "rest"}},
            "p": {"max_bucket": {"buckets_path": "2>_count"}}
        }))
        .unwrap();
        assert_eq!(parsed.aggs.len(), 3);
    }
}
