//! Sorting hits by field values, `_score` and `_doc`, as Elasticsearch's `sort` does, and
//! `search_after`.
//!
//! Sort keys are read from the `_fields` columns (see `schema.rs`), never from stored documents.
//! A per-segment collector turns each matching document's keys into a tuple of `u64` codes whose
//! plain order is the requested order (signs flipped, doubles in their total order, keyword
//! ordinals of the segment's dictionary, descending keys inverted) and keeps the best
//! `from + size` in a bounded heap; only the kept documents are decoded into [`SortValue`]s,
//! which merge across segments and indices with [`compare_sort_values`].
//!
//! Missing values follow Elasticsearch: a numeric key takes a concrete substitute (the type's
//! largest or smallest value, or the `missing` value), which is what the hit's sort values show;
//! a keyword key sorts missing documents first or last and shows `null`.
//!
//! A `_script` sort of type `string` has no code of its own: its strings are not in any
//! dictionary. A sort with such a key orders documents by one byte string instead, the
//! memcomparable encoding of the whole tuple (each code as 8 big-endian bytes, each string
//! escaped and terminated, descending keys inverted), so the comparisons stay plain and a
//! sort without string keys pays nothing for them.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Instant;

use serde_json::Value;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader};

use crate::aggs::format::DateFormat;
use crate::aggs::values::{
    FieldKind, SegmentColumn, VALUE_BATCH, first_values, resolve_field, single_valued,
};
use crate::date;
use crate::error::{Result, SearchError};
use crate::geo::{DistanceType, DistanceUnit, GeoPoint};
use crate::geo_query::open_geo_column;
use crate::mapping::{FieldType, Mappings};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Asc,
    Desc,
}

/// How a multi-valued field gives one sort value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortMode {
    Min,
    Max,
    Sum,
    Avg,
    Median,
}

impl SortMode {
    pub fn name(self) -> &'static str {
        match self {
            SortMode::Min => "min",
            SortMode::Max => "max",
            SortMode::Sum => "sum",
            SortMode::Avg => "avg",
            SortMode::Median => "median",
        }
    }
}

/// Where documents without a value go, or the value they take.
#[derive(Debug, Clone, PartialEq)]
pub enum SortMissing {
    Last,
    First,
    Value(Value),
}

/// One key of a field sort.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSort {
    pub field: String,
    pub order: SortOrder,
    pub missing: SortMissing,
    /// The type an index that does not map the field sorts it as (every document missing);
    /// without it such an index refuses the sort.
    pub unmapped_type: Option<String>,
    /// `None`: `min` ascending, `max` descending.
    pub mode: Option<SortMode>,
    /// A date format the sort values of a date field are shown in (else epoch milliseconds).
    pub format: Option<String>,
}

/// A `_geo_distance` sort key: documents by the distance of their points from `points`.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoDistanceSort {
    pub field: String,
    pub points: Vec<GeoPoint>,
    pub order: SortOrder,
    /// The unit the sort values are shown in (meters by default).
    pub unit: DistanceUnit,
    /// `None`: the shortest distance ascending, the longest descending.
    pub mode: Option<SortMode>,
    pub distance_type: DistanceType,
    /// An index without the field sorts every document as missing instead of failing.
    pub ignore_unmapped: bool,
}

/// What a `_script` sort's script returns, Elasticsearch's `ScriptSortType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptSortType {
    /// A number per document, shown as a double.
    Number,
    /// A string per document, ordered by its UTF-8 bytes as Lucene orders `BytesRef`s.
    String,
}

/// A `_script` sort: the script's result per document, with `doc`, `params` and `_score`
/// bound.
#[derive(Debug, Clone)]
pub struct ScriptSort {
    pub script: Arc<sluice_script::Script>,
    pub params: sluice_script::Value,
    pub order: SortOrder,
    pub kind: ScriptSortType,
}

impl PartialEq for ScriptSort {
    fn eq(&self, other: &Self) -> bool {
        self.script.source() == other.script.source()
            && self.params == other.params
            && self.order == other.order
            && self.kind == other.kind
    }
}

/// One key of a search's sort.
#[derive(Debug, Clone, PartialEq)]
pub enum SortKey {
    Score(SortOrder),
    /// Index order: the document's number in its index's current searcher.
    Doc(SortOrder),
    /// Index order across the indices of a search (Elasticsearch's `_shard_doc`): the index's
    /// position in the search in the high 32 bits, the document's number in the low ones.
    ShardDoc(SortOrder),
    Field(FieldSort),
    GeoDistance(GeoDistanceSort),
    Script(ScriptSort),
}

impl SortKey {
    fn order(&self) -> SortOrder {
        match self {
            SortKey::Score(order) | SortKey::Doc(order) | SortKey::ShardDoc(order) => *order,
            SortKey::Field(field) => field.order,
            SortKey::GeoDistance(geo) => geo.order,
            SortKey::Script(script) => script.order,
        }
    }

    fn missing(&self) -> SortMissing {
        match self {
            SortKey::Field(field) => field.missing.clone(),
            _ => SortMissing::Last,
        }
    }
}

/// Whether a search sorted by `keys` computes scores: only if a key is `_score`.
pub fn sorts_by_score(keys: &[SortKey]) -> bool {
    keys.iter().any(|key| matches!(key, SortKey::Score(_)))
}

/// Whether the collector must score documents: a script may read `_score` (the hits still show
/// none unless the sort or `track_scores` asks, as in Elasticsearch).
pub(crate) fn sort_reads_scores(keys: &[SortKey]) -> bool {
    keys.iter().any(|key| matches!(key, SortKey::Script(_)))
}

/// One sort value of a hit, as Elasticsearch shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum SortValue {
    /// A keyword document without a value.
    Null,
    Long(i64),
    Double(f64),
    /// A score.
    Float(f32),
    Text(String),
    /// An `ip` field's value in its encoded form (`ip.rs`), which orders as addresses do;
    /// shown as the address.
    Ip(String),
}

impl SortValue {
    /// The JSON Elasticsearch renders (infinite doubles as strings, as Jackson writes them).
    pub fn to_json(&self) -> Value {
        match self {
            SortValue::Null => Value::Null,
            SortValue::Long(v) => Value::from(*v),
            SortValue::Double(v) => serde_json::Number::from_f64(*v)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(non_finite(*v))),
            SortValue::Float(v) => serde_json::Number::from_f64(f64::from(*v))
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(non_finite(f64::from(*v)))),
            SortValue::Text(s) => Value::String(s.clone()),
            SortValue::Ip(encoded) => {
                Value::String(crate::ip::decode(encoded).unwrap_or_else(|| encoded.clone()))
            }
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self {
            SortValue::Long(v) => Some(*v as f64),
            SortValue::Double(v) => Some(*v),
            SortValue::Float(v) => Some(f64::from(*v)),
            _ => None,
        }
    }
}

fn non_finite(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "Infinity".into()
    } else {
        "-Infinity".into()
    }
}

/// Compares two hits' sort values under `keys`: the order in which they are shown.
pub fn compare_sort_values(keys: &[SortKey], a: &[SortValue], b: &[SortValue]) -> Ordering {
    for (index, key) in keys.iter().enumerate() {
        let (Some(x), Some(y)) = (a.get(index), b.get(index)) else {
            break;
        };
        let ordering = match (x, y) {
            (SortValue::Null, SortValue::Null) => Ordering::Equal,
            // Missing keywords go first or last whatever the order.
            (SortValue::Null, _) | (_, SortValue::Null) => {
                let null_first = matches!(key.missing(), SortMissing::First);
                let x_null = matches!(x, SortValue::Null);
                match (x_null, null_first) {
                    (true, true) | (false, false) => Ordering::Less,
                    _ => Ordering::Greater,
                }
            }
            _ => {
                let natural = match (x, y) {
                    (SortValue::Long(x), SortValue::Long(y)) => x.cmp(y),
                    (SortValue::Text(x), SortValue::Text(y))
                    | (SortValue::Ip(x), SortValue::Ip(y)) => x.as_bytes().cmp(y.as_bytes()),
                    _ => match (x.as_f64(), y.as_f64()) {
                        (Some(x), Some(y)) => x.total_cmp(&y),
                        // Text against a number (a field mapped differently in two indices):
                        // numbers first, as a fixed rule.
                        (Some(_), None) => Ordering::Less,
                        (None, Some(_)) => Ordering::Greater,
                        (None, None) => Ordering::Equal,
                    },
                };
                match key.order() {
                    SortOrder::Asc => natural,
                    SortOrder::Desc => natural.reverse(),
                }
            }
        };
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

/// How one index reads one sort key.
#[derive(Debug, Clone)]
enum ResolvedKey {
    Score {
        desc: bool,
    },
    Script {
        script: Arc<sluice_script::Script>,
        params: sluice_script::Value,
        desc: bool,
        /// The fields the script reads through `doc`, resolved.
        fields: Vec<(String, FieldKind)>,
        kind: ScriptSortType,
    },
    Doc {
        desc: bool,
        /// `_shard_doc`: the index's position in the search, the code's high 32 bits.
        shard: Option<u32>,
    },
    Field {
        field: String,
        kind: FieldKind,
        desc: bool,
        mode: SortMode,
        /// Keywords: whether missing documents go first.
        missing_first: bool,
        /// Keywords: the value missing documents take instead.
        missing_text: Option<String>,
        /// Numbers: the value missing documents take (`_last`/`_first` resolved to the type's
        /// bounds), encoded.
        missing_code: u64,
        /// Dates: the format the sort values are shown in.
        format: Option<DateFormat>,
    },
    /// Distances in `unit`, as doubles; documents without a point (or in an index without the
    /// field) are infinitely far, as in Elasticsearch.
    GeoDistance {
        field: Option<String>,
        points: Arc<[GeoPoint]>,
        desc: bool,
        mode: SortMode,
        unit: DistanceUnit,
        distance_type: DistanceType,
    },
}

const SIGN_BIT: u64 = 1 << 63;

fn encode_i64(value: i64) -> u64 {
    (value as u64) ^ SIGN_BIT
}

fn decode_i64(code: u64) -> i64 {
    (code ^ SIGN_BIT) as i64
}

fn encode_f64(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits & SIGN_BIT != 0 {
        !bits
    } else {
        bits | SIGN_BIT
    }
}

fn decode_f64(code: u64) -> f64 {
    if code & SIGN_BIT != 0 {
        f64::from_bits(code & !SIGN_BIT)
    } else {
        f64::from_bits(!code)
    }
}

fn directed(code: u64, desc: bool) -> u64 {
    if desc { !code } else { code }
}

/// Keyword codes: `0` and `u64::MAX` are missing documents (first, last); a term of the
/// segment's dictionary is `2 * ord + 2`; a string between terms (a `missing` value or a
/// `search_after` value not in the segment) is `2 * position + 1`.
const KEYWORD_MISSING_FIRST: u64 = 0;
const KEYWORD_MISSING_LAST: u64 = u64::MAX;

fn kind_of_unmapped_type(name: &str) -> Result<FieldKind> {
    Ok(match name {
        "keyword" | "text" | "wildcard" | "constant_keyword" => FieldKind::Keyword,
        "long" | "integer" | "short" | "byte" | "unsigned_long" => FieldKind::Integer,
        "double" | "float" | "half_float" | "scaled_float" => FieldKind::Double,
        "date" | "date_nanos" => FieldKind::Date("strict_date_optional_time||epoch_millis".into()),
        "boolean" => FieldKind::Boolean,
        "ip" => FieldKind::Ip,
        other => {
            return Err(SearchError::illegal(format!(
                "No mapper found for type [{other}]"
            )));
        }
    })
}

/// Resolves `keys` against one index's mapping.
fn resolve_keys(
    keys: &[SortKey],
    mappings: &Mappings,
    index: &str,
    shard: u32,
) -> Result<Vec<ResolvedKey>> {
    keys.iter()
        .map(|key| match key {
            SortKey::Score(order) => Ok(ResolvedKey::Score {
                desc: *order == SortOrder::Desc,
            }),
            SortKey::Doc(order) => Ok(ResolvedKey::Doc {
                desc: *order == SortOrder::Desc,
                shard: None,
            }),
            SortKey::ShardDoc(order) => Ok(ResolvedKey::Doc {
                desc: *order == SortOrder::Desc,
                shard: Some(shard),
            }),
            SortKey::Field(sort) => resolve_field_key(sort, mappings, index),
            SortKey::GeoDistance(sort) => resolve_geo_key(sort, mappings),
            SortKey::Script(sort) => resolve_script_key(sort, mappings, index),
        })
        .collect()
}

fn resolve_geo_key(sort: &GeoDistanceSort, mappings: &Mappings) -> Result<ResolvedKey> {
    let field = match mappings.field(&sort.field) {
        Some(mapping) if mapping.field_type == FieldType::GeoPoint => Some(sort.field.clone()),
        Some(mapping) => {
            return Err(SearchError::illegal(format!(
                "unable to apply geo distance sort to field [{}] of type [{}]",
                sort.field,
                mapping.field_type.name()
            )));
        }
        None if sort.ignore_unmapped => None,
        None => {
            return Err(SearchError::illegal(format!(
                "failed to find mapper for [{}] for geo distance based sort",
                sort.field
            )));
        }
    };
    let desc = sort.order == SortOrder::Desc;
    Ok(ResolvedKey::GeoDistance {
        field,
        points: sort.points.clone().into(),
        desc,
        mode: sort
            .mode
            .unwrap_or(if desc { SortMode::Max } else { SortMode::Min }),
        unit: sort.unit,
        distance_type: sort.distance_type,
    })
}

fn resolve_script_key(sort: &ScriptSort, mappings: &Mappings, index: &str) -> Result<ResolvedKey> {
    let names = sort.script.doc_fields().ok_or_else(|| {
        SearchError::illegal(
            "a sort script must name the fields it reads with literal names, as doc['field']",
        )
    })?;
    let mut fields = Vec::with_capacity(names.len());
    for name in names {
        let kind = resolve_field(mappings, index, &name, "sort")?;
        if kind == FieldKind::Unmapped {
            return Err(SearchError::illegal(format!(
                "No field found for [{name}] in mapping"
            )));
        }
        fields.push((name, kind));
    }
    Ok(ResolvedKey::Script {
        script: sort.script.clone(),
        params: sort.params.clone(),
        desc: sort.order == SortOrder::Desc,
        fields,
        kind: sort.kind,
    })
}

fn resolve_field_key(sort: &FieldSort, mappings: &Mappings, index: &str) -> Result<ResolvedKey> {
    let mut kind = resolve_field(mappings, index, &sort.field, "sort")?;
    if kind == FieldKind::Unmapped {
        match &sort.unmapped_type {
            Some(name) => kind = kind_of_unmapped_type(name)?,
            None => {
                return Err(SearchError::QueryShard {
                    reason: format!("No mapping found for [{}] in order to sort on", sort.field),
                });
            }
        }
    }
    let desc = sort.order == SortOrder::Desc;
    let mode = sort
        .mode
        .unwrap_or(if desc { SortMode::Max } else { SortMode::Min });
    if matches!(kind, FieldKind::Keyword | FieldKind::Ip)
        && !matches!(mode, SortMode::Min | SortMode::Max)
    {
        return Err(SearchError::illegal(format!(
            "[{}] sort mode is not supported on non-numeric field [{}]; use [min] or [max]",
            mode.name(),
            sort.field
        )));
    }
    let format = match (&kind, &sort.format) {
        (FieldKind::Date(_), Some(text)) => {
            Some(DateFormat::parse(text).map_err(SearchError::illegal)?)
        }
        (_, Some(text)) if kind != FieldKind::Keyword => {
            return Err(SearchError::illegal(format!(
                "field [{}] of type [{}] does not support custom formats in sort: [{text}]",
                sort.field,
                kind_name(&kind)
            )));
        }
        _ => None,
    };
    let (missing_first, missing_text, missing_code) = match (&kind, &sort.missing) {
        (FieldKind::Keyword, SortMissing::First) => (true, None, 0),
        (FieldKind::Keyword, SortMissing::Last) => (false, None, 0),
        (FieldKind::Keyword, SortMissing::Value(value)) => {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (false, Some(text), 0)
        }
        (FieldKind::Ip, SortMissing::First) => (true, None, 0),
        (FieldKind::Ip, SortMissing::Last) => (false, None, 0),
        (FieldKind::Ip, SortMissing::Value(value)) => {
            (false, Some(ip_value(value, &sort.field, "missing")?), 0)
        }
        (_, missing) => {
            // `_last` ascending is the type's largest value, descending its smallest; `_first`
            // the other way round (Elasticsearch's substitutes, shown as sort values).
            let largest = matches!(
                (missing, desc),
                (SortMissing::Last, false) | (SortMissing::First, true)
            );
            let code = match (missing, &kind) {
                (SortMissing::Value(value), FieldKind::Double) => {
                    encode_f64(numeric_value(&kind, value, &sort.field, "missing")?)
                }
                (SortMissing::Value(value), _) => {
                    encode_i64(integer_value(&kind, value, &sort.field, "missing")?)
                }
                (_, FieldKind::Double) if largest => encode_f64(f64::INFINITY),
                (_, FieldKind::Double) => encode_f64(f64::NEG_INFINITY),
                _ if largest => encode_i64(i64::MAX),
                _ => encode_i64(i64::MIN),
            };
            (false, None, code)
        }
    };
    Ok(ResolvedKey::Field {
        field: sort.field.clone(),
        kind,
        desc,
        mode,
        missing_first,
        missing_text,
        missing_code,
        format,
    })
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

/// The encoded form of an address given for an `ip` sort (`missing`, `search_after`).
fn ip_value(value: &Value, field: &str, what: &str) -> Result<String> {
    value
        .as_str()
        .and_then(crate::ip::parse)
        .map(crate::ip::encode)
        .ok_or_else(|| {
            SearchError::illegal(format!(
                "failed to parse the [{what}] value [{value}] of sort field [{field}]: '{value}' is not an IP string literal"
            ))
        })
}

fn numeric_value(kind: &FieldKind, value: &Value, field: &str, what: &str) -> Result<f64> {
    let parsed = match (kind, value) {
        (_, Value::Number(n)) => n.as_f64(),
        (FieldKind::Date(format), Value::String(s)) => {
            date::parse_date_str(s, format).map(|ms| ms as f64)
        }
        (FieldKind::Boolean, Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        (FieldKind::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            Some(if s == "true" { 1.0 } else { 0.0 })
        }
        (_, Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        SearchError::illegal(format!(
            "failed to parse the [{what}] value [{value}] of sort field [{field}]"
        ))
    })
}

fn integer_value(kind: &FieldKind, value: &Value, field: &str, what: &str) -> Result<i64> {
    if let Value::Number(n) = value
        && let Some(i) = n.as_i64()
    {
        return Ok(i);
    }
    if let (FieldKind::Date(format), Value::String(s)) = (kind, value)
        && let Some(ms) = date::parse_date_str(s, format)
    {
        return Ok(ms);
    }
    if let Value::String(s) = value
        && let Ok(i) = s.trim().parse::<i64>()
    {
        return Ok(i);
    }
    let number = numeric_value(kind, value, field, what)?;
    if number.fract() == 0.0 && number >= i64::MIN as f64 && number <= i64::MAX as f64 {
        return Ok(number as i64);
    }
    Err(SearchError::illegal(format!(
        "failed to parse the [{what}] value [{value}] of sort field [{field}] as a long"
    )))
}

/// A `search_after` value of one key, checked against the key's type in one index.
#[derive(Debug, Clone)]
enum AfterValue {
    /// Already a code (numbers, scores, documents).
    Code(u64),
    /// A keyword, placed per segment; `None` is a missing document.
    Text(Option<String>),
}

fn resolve_after(keys: &[ResolvedKey], after: &[Value]) -> Result<Vec<AfterValue>> {
    if keys.len() != after.len() {
        return Err(SearchError::illegal(format!(
            "search_after has {} value(s) but sort has {}.",
            after.len(),
            keys.len()
        )));
    }
    keys.iter()
        .zip(after)
        .map(|(key, value)| {
            Ok(match key {
                ResolvedKey::Score { desc } => {
                    let score = value.as_f64().ok_or_else(|| {
                        SearchError::illegal(format!(
                            "Failed to parse search_after value for field [_score]: [{value}]"
                        ))
                    })?;
                    AfterValue::Code(directed(encode_f64(f64::from(score as f32)), *desc))
                }
                ResolvedKey::GeoDistance { desc, .. } => AfterValue::Code(directed(
                    encode_f64(after_double(&FieldKind::Double, value, "_geo_distance")?),
                    *desc,
                )),
                ResolvedKey::Script {
                    kind: ScriptSortType::String,
                    ..
                } => AfterValue::Text(Some(match value {
                    Value::String(s) => s.clone(),
                    Value::Null => {
                        return Err(SearchError::illegal(format!(
                            "Failed to parse search_after value for field [_script]: [{value}]"
                        )));
                    }
                    other => other.to_string(),
                })),
                ResolvedKey::Script { desc, .. } => {
                    let number = match value {
                        Value::String(s) if s == "Infinity" => Some(f64::INFINITY),
                        Value::String(s) if s == "-Infinity" => Some(f64::NEG_INFINITY),
                        other => other.as_f64(),
                    }
                    .ok_or_else(|| {
                        SearchError::illegal(format!(
                            "Failed to parse search_after value for field [_script]: [{value}]"
                        ))
                    })?;
                    AfterValue::Code(directed(encode_f64(number), *desc))
                }
                ResolvedKey::Doc { desc, shard } => {
                    let doc = value.as_u64().ok_or_else(|| {
                        let name = if shard.is_some() {
                            "_shard_doc"
                        } else {
                            "_doc"
                        };
                        SearchError::illegal(format!(
                            "Failed to parse search_after value for field [{name}]: [{value}]"
                        ))
                    })?;
                    AfterValue::Code(directed(doc, *desc))
                }
                ResolvedKey::Field {
                    field, kind, desc, ..
                } => match kind {
                    FieldKind::Keyword | FieldKind::Unmapped => AfterValue::Text(match value {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    }),
                    FieldKind::Ip => AfterValue::Text(match value {
                        Value::Null => None,
                        other => Some(ip_value(other, field, "search_after")?),
                    }),
                    FieldKind::Double => AfterValue::Code(directed(
                        encode_f64(after_double(kind, value, field)?),
                        *desc,
                    )),
                    _ => AfterValue::Code(directed(
                        encode_i64(after_long(kind, value, field)?),
                        *desc,
                    )),
                },
            })
        })
        .collect()
}

fn after_double(kind: &FieldKind, value: &Value, field: &str) -> Result<f64> {
    match value {
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => numeric_value(kind, value, field, "search_after"),
    }
}

fn after_long(kind: &FieldKind, value: &Value, field: &str) -> Result<i64> {
    integer_value(kind, value, field, "search_after")
}

/// The code of `text` among the terms of one segment's dictionary.
fn keyword_code(column: Option<&StrColumn>, text: &str) -> Result<u64> {
    let Some(column) = column else {
        return Ok(1);
    };
    let terms = column.num_terms() as u64;
    let (mut low, mut high) = (0u64, terms);
    let mut term = String::new();
    // The first ordinal whose term is not below `text`.
    while low < high {
        let middle = low + (high - low) / 2;
        term.clear();
        column
            .ord_to_str(middle, &mut term)
            .map_err(|e| SearchError::Corrupt {
                what: "keyword dictionary".into(),
                reason: e.to_string(),
            })?;
        if term.as_bytes() < text.as_bytes() {
            low = middle + 1;
        } else {
            high = middle;
        }
    }
    if low < terms {
        term.clear();
        column
            .ord_to_str(low, &mut term)
            .map_err(|e| SearchError::Corrupt {
                what: "keyword dictionary".into(),
                reason: e.to_string(),
            })?;
        if term == text {
            return Ok(2 * low + 2);
        }
    }
    Ok(2 * low + 1)
}

/// How one segment reads one key.
enum KeyReader {
    Score {
        desc: bool,
    },
    Script {
        script: Arc<sluice_script::Script>,
        params: sluice_script::Value,
        desc: bool,
        columns: Vec<(String, FieldKind, SegmentColumn)>,
        /// The first failure of the script in this segment.
        error: std::cell::RefCell<Option<sluice_script::ScriptError>>,
        /// `String`: the key has no code; [`KeyReader::text`] gives its value.
        kind: ScriptSortType,
    },
    Doc {
        desc: bool,
        /// The first document's code of the segment.
        base: u64,
    },
    Number {
        column: SegmentColumn,
        double: bool,
        desc: bool,
        mode: SortMode,
        missing_code: u64,
    },
    Keyword {
        column: Option<StrColumn>,
        desc: bool,
        max: bool,
        /// The directed code of missing documents.
        missing_code: u64,
    },
    GeoDistance {
        column: Option<Column<i64>>,
        points: Arc<[GeoPoint]>,
        desc: bool,
        mode: SortMode,
        unit: DistanceUnit,
        distance_type: DistanceType,
    },
}

impl KeyReader {
    /// The key's directed code for `doc`.
    #[inline]
    fn code(&self, doc: DocId, score: Score) -> u64 {
        match self {
            KeyReader::Score { desc } => directed(encode_f64(f64::from(score)), *desc),
            KeyReader::Script {
                kind: ScriptSortType::String,
                ..
            } => 0,
            KeyReader::Script {
                script,
                params,
                desc,
                columns,
                error,
                kind: ScriptSortType::Number,
            } => {
                let number = run_sort_script(script, params, columns, doc, score)
                    .and_then(|value| script_number(script, value));
                let number = match number {
                    Ok(number) => number,
                    Err(failure) => {
                        error.borrow_mut().get_or_insert(failure);
                        0.0
                    }
                };
                directed(encode_f64(number), *desc)
            }
            KeyReader::Doc { desc, base } => directed(base + u64::from(doc), *desc),
            KeyReader::GeoDistance {
                column,
                points,
                desc,
                mode,
                unit,
                distance_type,
            } => {
                let mut distances = Vec::new();
                if let Some(column) = column {
                    for packed in column.values_for_doc(doc) {
                        let point = GeoPoint::decode(packed);
                        for origin in points.iter() {
                            distances.push(unit.from_meters(distance_type.meters(*origin, point)));
                        }
                    }
                }
                let distance = reduce_f64(&mut distances, *mode).unwrap_or(f64::INFINITY);
                directed(encode_f64(distance), *desc)
            }
            KeyReader::Number {
                column,
                double,
                desc,
                mode,
                missing_code,
            } => {
                let code = match (*double, *mode) {
                    // The common single-valued cases read without allocating.
                    (true, SortMode::Min | SortMode::Max) => {
                        let max = *mode == SortMode::Max;
                        let mut best: Option<f64> = None;
                        column.for_each_number(doc, |v| {
                            best = Some(match best {
                                Some(b) if max => b.max(v),
                                Some(b) => b.min(v),
                                None => v,
                            })
                        });
                        best.map(encode_f64)
                    }
                    (false, SortMode::Min | SortMode::Max) => {
                        let max = *mode == SortMode::Max;
                        let mut best: Option<i64> = None;
                        column.for_each_i64(doc, |v| {
                            best = Some(match best {
                                Some(b) if max => b.max(v),
                                Some(b) => b.min(v),
                                None => v,
                            })
                        });
                        best.map(encode_i64)
                    }
                    (true, mode) => {
                        let mut values = Vec::new();
                        column.for_each_number(doc, |v| values.push(v));
                        reduce_f64(&mut values, mode).map(encode_f64)
                    }
                    (false, mode) => {
                        let mut values = Vec::new();
                        column.for_each_i64(doc, |v| values.push(v));
                        reduce_i64(&mut values, mode).map(encode_i64)
                    }
                };
                directed(code.unwrap_or(*missing_code), *desc)
            }
            KeyReader::Keyword {
                column,
                desc,
                max,
                missing_code,
            } => {
                let ord = column.as_ref().and_then(|column| {
                    // A document's ordinals come in the order of its values, not sorted.
                    let ords = column.term_ords(doc);
                    if *max { ords.max() } else { ords.min() }
                });
                match ord {
                    Some(ord) => directed(2 * ord + 2, *desc),
                    None => *missing_code,
                }
            }
        }
    }
}

/// Keys a sort reads a block of documents at a time, at most: `@timestamp` then `_doc` is the
/// common pair (Discover's, and `search_after` paging's).
const BLOCK_KEYS_MAX: usize = 2;

/// The codes of one document under a block-read sort; unused keys stay 0.
type BlockCodes = [u64; BLOCK_KEYS_MAX];

impl KeyReader {
    /// Whether [`Self::block_codes`] can read this key: a number, keyword or ip of at most one
    /// value per document in this segment (every mode then gives that value), or `_doc`.
    fn reads_blocks(&self) -> bool {
        match self {
            KeyReader::Doc { .. } => true,
            KeyReader::Number { column, double, .. } => match column {
                SegmentColumn::Empty => true,
                _ if *double => column.single_valued_f64().is_some(),
                _ => column.single_valued_i64().is_some(),
            },
            KeyReader::Keyword { column, .. } => {
                column.as_ref().is_none_or(|c| single_valued(c.ords()))
            }
            _ => false,
        }
    }

    /// The directed codes of `docs` into `out` (as [`Self::code`] gives them), for a key that
    /// [`Self::reads_blocks`].
    fn block_codes(&self, docs: &[DocId], out: &mut [u64]) {
        let mut slots = out.iter_mut();
        let mut put = |code: u64| {
            if let Some(slot) = slots.next() {
                *slot = code;
            }
        };
        match self {
            KeyReader::Doc { desc, base } => {
                for &doc in docs {
                    put(directed(base + u64::from(doc), *desc));
                }
            }
            KeyReader::Number {
                column,
                double,
                desc,
                missing_code,
                ..
            } => {
                let mut put_value =
                    |v: Option<u64>| put(directed(v.unwrap_or(*missing_code), *desc));
                match (
                    *double,
                    column.single_valued_f64(),
                    column.single_valued_i64(),
                ) {
                    (true, Some(values), _) => {
                        first_values(values, docs, |_, v| put_value(v.map(encode_f64)))
                    }
                    (false, _, Some(values)) => {
                        first_values(values, docs, |_, v| put_value(v.map(encode_i64)))
                    }
                    // No column in this segment: every document is missing.
                    _ => docs.iter().for_each(|_| put_value(None)),
                }
            }
            KeyReader::Keyword {
                column,
                desc,
                missing_code,
                ..
            } => match column {
                Some(column) => first_values(column.ords(), docs, |_, ord| {
                    put(ord.map_or(*missing_code, |ord| directed(2 * ord + 2, *desc)))
                }),
                None => docs.iter().for_each(|_| put(*missing_code)),
            },
            _ => docs.iter().for_each(|_| put(0)),
        }
    }
}

/// The best documents of a segment under a block-read sort: candidates that order before the
/// worst kept so far go into a buffer, cut back to the best `limit` whenever it holds twice
/// that, so each document costs a comparison and most are not kept at all.
struct BlockTop {
    buffer: Vec<(BlockCodes, DocId)>,
    /// The codes of the worst document kept at the last cut: a later document with the same
    /// codes comes after it in document order, so only ones strictly before it can be kept.
    threshold: Option<BlockCodes>,
    /// `search_after`: only documents strictly after these codes.
    after: Option<BlockCodes>,
}

impl BlockTop {
    fn offer(&mut self, codes: BlockCodes, doc: DocId, limit: usize) {
        if self.after.is_some_and(|after| codes <= after)
            || self.threshold.is_some_and(|threshold| codes >= threshold)
        {
            return;
        }
        self.buffer.push((codes, doc));
        if self.buffer.len() >= limit.saturating_mul(2).max(limit + 1) {
            self.cut(limit);
        }
    }

    /// Keeps the best `limit` of the buffer, in no particular order.
    fn cut(&mut self, limit: usize) {
        if self.buffer.len() <= limit {
            return;
        }
        let Some(last) = limit.checked_sub(1) else {
            self.buffer.clear();
            return;
        };
        self.buffer.select_nth_unstable(last);
        self.buffer.truncate(limit);
        self.threshold = self.buffer.get(last).map(|(codes, _)| *codes);
    }
}

impl KeyReader {
    /// The value of a string script key for `doc` (`None` for every other key); a failing
    /// script records its error and gives the empty string, as the search fails anyway.
    fn text(&self, doc: DocId, score: Score) -> Option<String> {
        let KeyReader::Script {
            script,
            params,
            columns,
            error,
            kind: ScriptSortType::String,
            ..
        } = self
        else {
            return None;
        };
        let text = run_sort_script(script, params, columns, doc, score)
            .and_then(|value| script_string(script, value));
        Some(match text {
            Ok(text) => text,
            Err(failure) => {
                error.borrow_mut().get_or_insert(failure);
                String::new()
            }
        })
    }

    /// For a key whose values are strings the codes cannot hold, whether it is descending.
    fn text_desc(&self) -> Option<bool> {
        match self {
            KeyReader::Script {
                kind: ScriptSortType::String,
                desc,
                ..
            } => Some(*desc),
            _ => None,
        }
    }
}

/// Appends a code to a memcomparable tuple: 8 big-endian bytes order as the code does.
fn push_code(ordered: &mut Vec<u8>, code: u64) {
    ordered.extend_from_slice(&code.to_be_bytes());
}

/// Appends a string to a memcomparable tuple: its bytes with `0x00` escaped as `0x00 0xFF`,
/// then `0x00 0x01`. That keeps the bytes' order and makes no string's encoding a prefix of
/// another's, so the keys after it compare only between equal strings; inverting every byte
/// of such an encoding reverses the order, which is how a descending key is written.
fn push_text(ordered: &mut Vec<u8>, text: &[u8], desc: bool) {
    let start = ordered.len();
    for &byte in text {
        ordered.push(byte);
        if byte == 0 {
            ordered.push(0xFF);
        }
    }
    ordered.extend_from_slice(&[0x00, 0x01]);
    if desc {
        for byte in ordered.iter_mut().skip(start) {
            *byte = !*byte;
        }
    }
}

/// The order of two collected documents' keys: the memcomparable tuples when the sort has
/// string keys (empty otherwise), then the codes.
fn tuple_cmp(ordered_a: &[u8], codes_a: &[u64], ordered_b: &[u8], codes_b: &[u64]) -> Ordering {
    ordered_a.cmp(ordered_b).then_with(|| codes_a.cmp(codes_b))
}

/// A number sort script's result as the key: Painless's `NumberSortScript` returns a double.
fn script_number(
    script: &sluice_script::Script,
    value: sluice_script::Value,
) -> std::result::Result<f64, sluice_script::ScriptError> {
    use sluice_script::Value as ScriptValue;
    match value {
        ScriptValue::Int(v) => Ok(f64::from(v)),
        ScriptValue::Long(v) => Ok(v as f64),
        ScriptValue::Double(v) => Ok(v),
        other => Err(sluice_script::ScriptError::not_a_number(
            script.source(),
            other.type_name(),
        )),
    }
}

/// A string sort script's result as the key: Painless's `StringSortScript` returns a
/// `String`, and a value of another type fails the cast.
fn script_string(
    script: &sluice_script::Script,
    value: sluice_script::Value,
) -> std::result::Result<String, sluice_script::ScriptError> {
    match value {
        sluice_script::Value::Str(text) => Ok(text),
        other => Err(sluice_script::ScriptError::not_a_string(
            script.source(),
            other.type_name(),
        )),
    }
}

/// Runs a sort script for one document: `doc` holds the values of the fields it reads (sorted,
/// as doc values are), `params` its parameters, `_score` the document's score.
fn run_sort_script(
    script: &sluice_script::Script,
    params: &sluice_script::Value,
    columns: &[(String, FieldKind, SegmentColumn)],
    doc: DocId,
    score: Score,
) -> std::result::Result<sluice_script::Value, sluice_script::ScriptError> {
    use sluice_script::Value as ScriptValue;
    let mut fields = sluice_script::Map::new();
    for (name, kind, column) in columns {
        let mut values = Vec::new();
        match kind {
            FieldKind::Keyword | FieldKind::Ip => {
                let mut ords = Vec::new();
                column.for_each_ord(doc, |ord| ords.push(ord));
                ords.sort_unstable();
                for ord in ords {
                    let term = column.term(ord).unwrap_or_default();
                    values.push(ScriptValue::Str(if *kind == FieldKind::Ip {
                        crate::ip::decode(&term).unwrap_or(term)
                    } else {
                        term
                    }));
                }
            }
            FieldKind::Double => {
                column.for_each_number(doc, |v| values.push(ScriptValue::Double(v)));
            }
            FieldKind::Boolean => {
                column.for_each_i64(doc, |v| values.push(ScriptValue::Bool(v != 0)));
            }
            _ => {
                column.for_each_i64(doc, |v| values.push(ScriptValue::Long(v)));
            }
        }
        if values.len() > 1 {
            values.sort_by(|a, b| match (a, b) {
                (ScriptValue::Double(x), ScriptValue::Double(y)) => x.total_cmp(y),
                (ScriptValue::Long(x), ScriptValue::Long(y)) => x.cmp(y),
                _ => Ordering::Equal,
            });
        }
        fields.insert(name.clone(), ScriptValue::DocValues(values));
    }
    let mut variables = sluice_script::Map::new();
    variables.insert("doc".into(), ScriptValue::Map(fields));
    variables.insert("params".into(), params.clone());
    variables.insert("_score".into(), ScriptValue::Double(f64::from(score)));
    script.execute(&mut variables)
}

fn reduce_i64(values: &mut [i64], mode: SortMode) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    let count = values.len() as i64;
    Some(match mode {
        SortMode::Min => values.iter().copied().min()?,
        SortMode::Max => values.iter().copied().max()?,
        SortMode::Sum => values.iter().fold(0i64, |a, v| a.wrapping_add(*v)),
        SortMode::Avg => {
            let sum = values.iter().fold(0i64, |a, v| a.wrapping_add(*v));
            (sum as f64 / count as f64).round() as i64
        }
        SortMode::Median => {
            values.sort_unstable();
            let middle = values.len() / 2;
            let upper = *values.get(middle)?;
            if values.len().is_multiple_of(2) {
                let lower = *values.get(middle - 1)?;
                ((lower as f64 + upper as f64) / 2.0).round() as i64
            } else {
                upper
            }
        }
    })
}

fn reduce_f64(values: &mut [f64], mode: SortMode) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match mode {
        SortMode::Min => values.iter().copied().reduce(f64::min)?,
        SortMode::Max => values.iter().copied().reduce(f64::max)?,
        SortMode::Sum => values.iter().sum(),
        SortMode::Avg => values.iter().sum::<f64>() / values.len() as f64,
        SortMode::Median => {
            values.sort_unstable_by(f64::total_cmp);
            let middle = values.len() / 2;
            let upper = *values.get(middle)?;
            if values.len().is_multiple_of(2) {
                (values.get(middle - 1)? + upper) / 2.0
            } else {
                upper
            }
        }
    })
}

/// A sort over one index's searcher: its keys resolved against the mapping.
pub(crate) struct IndexSort {
    /// The keys as the request gives them, which order decoded values.
    given: Arc<[SortKey]>,
    keys: Arc<[ResolvedKey]>,
    after: Option<Vec<AfterValue>>,
    /// `collapse`: the field whose values group the hits, and how it reads.
    collapse: Option<(String, FieldKind)>,
}

impl IndexSort {
    pub(crate) fn new(
        keys: &[SortKey],
        after: Option<&[Value]>,
        mappings: &Mappings,
        index: &str,
        shard: u32,
    ) -> Result<IndexSort> {
        let given: Arc<[SortKey]> = keys.into();
        let keys: Arc<[ResolvedKey]> = resolve_keys(keys, mappings, index, shard)?.into();
        let after = after.map(|after| resolve_after(&keys, after)).transpose()?;
        Ok(IndexSort {
            given,
            keys,
            after,
            collapse: None,
        })
    }

    /// Keeps only the best document of each value of `field` (`collapse`), which must be a
    /// keyword, ip or numeric field, as Elasticsearch's `collapse`.
    pub(crate) fn collapse_on(
        mut self,
        field: &str,
        mappings: &Mappings,
        index: &str,
    ) -> Result<IndexSort> {
        let Some(mapping) = mappings.field(field) else {
            return Err(SearchError::QueryShard {
                reason: format!("no mapping found for `{field}` in order to collapse on"),
            });
        };
        let kind = match resolve_field(mappings, index, field, "collapse") {
            Ok(
                kind @ (FieldKind::Keyword
                | FieldKind::Ip
                | FieldKind::Integer
                | FieldKind::Double
                | FieldKind::Date(_)),
            ) => kind,
            _ => {
                return Err(SearchError::illegal(format!(
                    "collapse is not supported for the field [{field}] of the type [{}]",
                    mapping.field_type.name()
                )));
            }
        };
        self.collapse = Some((field.to_string(), kind));
        Ok(self)
    }

    /// A collector of the best `limit` documents by these keys; it also counts matches and
    /// keeps the best score when `scoring`.
    pub(crate) fn collector(
        &self,
        limit: usize,
        scoring: bool,
        segment_bases: Vec<u64>,
        bounds: CollectBounds,
    ) -> SortCollector<'_> {
        SortCollector {
            sort: self,
            limit,
            scoring,
            segment_bases,
            bounds,
            collected: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// Decodes one key's code into the value shown; `column` is the segment's keyword column,
/// `text` the value of a string script key.
fn decode_value(
    key: &ResolvedKey,
    code: u64,
    column: Option<&StrColumn>,
    text: Option<String>,
) -> Result<SortValue> {
    Ok(match key {
        ResolvedKey::Score { desc } => SortValue::Float(decode_f64(directed(code, *desc)) as f32),
        ResolvedKey::Script {
            kind: ScriptSortType::String,
            ..
        } => SortValue::Text(text.unwrap_or_default()),
        ResolvedKey::Script { desc, .. } => SortValue::Double(decode_f64(directed(code, *desc))),
        ResolvedKey::Doc { desc, .. } => SortValue::Long(directed(code, *desc) as i64),
        ResolvedKey::GeoDistance { desc, .. } => {
            SortValue::Double(decode_f64(directed(code, *desc)))
        }
        ResolvedKey::Field {
            field,
            kind,
            desc,
            missing_text,
            format,
            ..
        } => match kind {
            FieldKind::Keyword | FieldKind::Unmapped | FieldKind::Ip => {
                let text_value = |text: String| {
                    if *kind == FieldKind::Ip {
                        SortValue::Ip(text)
                    } else {
                        SortValue::Text(text)
                    }
                };
                if code == KEYWORD_MISSING_FIRST || code == KEYWORD_MISSING_LAST {
                    return Ok(SortValue::Null);
                }
                let code = directed(code, *desc);
                if !code.is_multiple_of(2) {
                    return Ok(missing_text
                        .clone()
                        .map(text_value)
                        .unwrap_or(SortValue::Null));
                }
                let mut term = String::new();
                if let Some(column) = column {
                    column.ord_to_str((code - 2) / 2, &mut term).map_err(|e| {
                        SearchError::Corrupt {
                            what: format!("keyword dictionary of {field}"),
                            reason: e.to_string(),
                        }
                    })?;
                }
                text_value(term)
            }
            FieldKind::Double => SortValue::Double(decode_f64(directed(code, *desc))),
            FieldKind::Date(_) => {
                let millis = decode_i64(directed(code, *desc));
                match format {
                    Some(format) => {
                        SortValue::Text(format.format(millis, &jiff::tz::TimeZone::UTC))
                    }
                    None => SortValue::Long(millis),
                }
            }
            FieldKind::Integer | FieldKind::Boolean => {
                SortValue::Long(decode_i64(directed(code, *desc)))
            }
        },
    })
}

/// A document kept by a [`SortSegmentCollector`], ordered by its keys then its address (the
/// last of equal keys is the worst, as Elasticsearch breaks ties by document order).
#[derive(Debug, Clone)]
struct Kept {
    codes: Vec<u64>,
    /// With string keys: the memcomparable tuple of all keys, which orders first (else empty).
    ordered: Vec<u8>,
    /// With string keys: their values, in key order (else empty).
    texts: Vec<String>,
    address: DocAddress,
    score: Score,
}

impl Kept {
    /// The order of the keys alone.
    fn key_cmp(&self, other: &Kept) -> Ordering {
        tuple_cmp(&self.ordered, &self.codes, &other.ordered, &other.codes)
    }
}

/// A document of the result: its address, score and sort values.
#[derive(Debug, Clone)]
pub(crate) struct SortedDoc {
    pub address: DocAddress,
    pub score: Score,
    pub values: Vec<SortValue>,
    /// `collapse`: the value of the document's group (`null` for documents without one).
    pub group: Option<Value>,
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> Ordering {
        self.key_cmp(other).then_with(|| {
            (self.address.segment_ord, self.address.doc_id)
                .cmp(&(other.address.segment_ord, other.address.doc_id))
        })
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Bounds on what a search collects: `min_score`, `terminate_after` (documents collected per
/// index) and `timeout` (a deadline checked every [`DEADLINE_CHECK_DOCS`] documents).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CollectBounds {
    pub min_score: Option<f32>,
    pub terminate_after: Option<u64>,
    pub deadline: Option<Instant>,
}

impl CollectBounds {
    pub(crate) fn is_set(&self) -> bool {
        self.min_score.is_some() || self.terminate_after.is_some() || self.deadline.is_some()
    }
}

/// Documents collected between two looks at the clock for `timeout`: reading the clock per
/// document would cost more than most queries.
pub const DEADLINE_CHECK_DOCS: u64 = 512;

/// What a sorted search collects: the best documents in order, the number of matches, and the
/// best score (when scoring).
#[derive(Debug, Default)]
pub(crate) struct SortedFruit {
    pub kept: Vec<SortedDoc>,
    pub total: u64,
    pub max_score: Option<Score>,
    /// A segment whose values could not be decoded (a corrupt dictionary).
    error: Option<String>,
    /// `terminate_after` stopped the collection.
    pub terminated_early: bool,
    /// The deadline passed: the results are partial.
    pub timed_out: bool,
    /// `collapse` met a document with several values: Elasticsearch's reason.
    pub collapse_error: Option<String>,
    /// A sort script failed on a document.
    pub script_error: Option<sluice_script::ScriptError>,
}

pub(crate) struct SortCollector<'a> {
    sort: &'a IndexSort,
    limit: usize,
    scoring: bool,
    /// The number of the first document of each segment in the searcher, for `_doc`.
    segment_bases: Vec<u64>,
    bounds: CollectBounds,
    /// Documents collected so far over all segments, for `terminate_after`.
    collected: Arc<AtomicU64>,
}

impl Collector for SortCollector<'_> {
    type Fruit = SortedFruit;
    type Child = SortSegmentCollector;

    fn for_segment(
        &self,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SortSegmentCollector> {
        let readers = self
            .sort
            .keys
            .iter()
            .map(|key| self.reader(key, segment_ord, segment))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?;
        let after = match &self.sort.after {
            None => None,
            Some(after) => Some(
                after
                    .iter()
                    .zip(&readers)
                    .map(|(value, reader)| match (value, reader) {
                        (AfterValue::Code(code), _) => Ok(*code),
                        (AfterValue::Text(None), KeyReader::Keyword { missing_code, .. }) => {
                            Ok(*missing_code)
                        }
                        (AfterValue::Text(Some(text)), KeyReader::Keyword { column, desc, .. }) => {
                            Ok(directed(keyword_code(column.as_ref(), text)?, *desc))
                        }
                        _ => Ok(0),
                    })
                    .collect::<Result<Vec<u64>>>()
                    .map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?,
            ),
        };
        let text_keys = readers.iter().any(|reader| reader.text_desc().is_some());
        let after = after.map(|codes| {
            let mut ordered = Vec::new();
            if text_keys && let Some(values) = &self.sort.after {
                for ((value, reader), code) in values.iter().zip(&readers).zip(&codes) {
                    match (reader.text_desc(), value) {
                        (Some(desc), AfterValue::Text(Some(text))) => {
                            push_text(&mut ordered, text.as_bytes(), desc)
                        }
                        _ => push_code(&mut ordered, *code),
                    }
                }
            }
            (ordered, codes)
        });
        let groups = match &self.sort.collapse {
            None => None,
            Some((field, kind)) => Some(SegmentGroups {
                column: SegmentColumn::open(segment, kind, field)
                    .map_err(|e| tantivy::TantivyError::InternalError(e.to_string()))?,
                kind: kind.clone(),
                best: HashMap::new(),
                order: BTreeMap::new(),
            }),
        };
        let block = (!text_keys
            && groups.is_none()
            && !self.bounds.is_set()
            && readers.len() <= BLOCK_KEYS_MAX
            && readers.iter().all(KeyReader::reads_blocks))
        .then(|| BlockTop {
            buffer: Vec::new(),
            threshold: None,
            after: after.as_ref().map(|(_, codes)| {
                let mut padded = [0; BLOCK_KEYS_MAX];
                for (slot, code) in padded.iter_mut().zip(codes) {
                    *slot = *code;
                }
                padded
            }),
        });
        Ok(SortSegmentCollector {
            block,
            groups,
            collapse_error: None,
            bounds: self.bounds,
            collected: self.collected.clone(),
            seen: 0,
            terminated_early: false,
            timed_out: false,
            keys: self.sort.keys.clone(),
            readers,
            after,
            segment_ord,
            limit: self.limit,
            heap: BinaryHeap::new(),
            codes: Vec::new(),
            text_keys,
            ordered: Vec::new(),
            texts: Vec::new(),
            total: 0,
            max_score: None,
            scoring: self.scoring,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<SortedFruit>) -> tantivy::Result<SortedFruit> {
        let mut merged = SortedFruit::default();
        for fruit in fruits {
            if let Some(error) = fruit.error {
                return Err(tantivy::TantivyError::InternalError(error));
            }
            merged.total += fruit.total;
            merged.collapse_error = merged.collapse_error.or(fruit.collapse_error);
            merged.script_error = merged.script_error.or(fruit.script_error);
            merged.terminated_early |= fruit.terminated_early;
            merged.timed_out |= fruit.timed_out;
            merged.max_score = match (merged.max_score, fruit.max_score) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            merged.kept.extend(fruit.kept);
        }
        // Codes of keywords are ordinals of each segment's dictionary: segments merge by value.
        let given = &self.sort.given;
        merged.kept.sort_by(|a, b| {
            compare_sort_values(given, &a.values, &b.values).then_with(|| {
                (a.address.segment_ord, a.address.doc_id)
                    .cmp(&(b.address.segment_ord, b.address.doc_id))
            })
        });
        if self.sort.collapse.is_some() {
            // A group's best document across segments is its first in this order.
            let mut seen = std::collections::HashSet::new();
            merged
                .kept
                .retain(|doc| seen.insert(doc.group.as_ref().map(Value::to_string)));
        }
        merged.kept.truncate(self.limit);
        Ok(merged)
    }
}

impl SortCollector<'_> {
    fn reader(
        &self,
        key: &ResolvedKey,
        segment_ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> Result<KeyReader> {
        Ok(match key {
            ResolvedKey::Score { desc } => KeyReader::Score { desc: *desc },
            ResolvedKey::Script {
                script,
                params,
                desc,
                fields,
                kind,
            } => KeyReader::Script {
                kind: *kind,
                script: script.clone(),
                params: params.clone(),
                desc: *desc,
                columns: fields
                    .iter()
                    .map(|(name, kind)| {
                        Ok((
                            name.clone(),
                            kind.clone(),
                            SegmentColumn::open(segment, kind, name)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
                error: std::cell::RefCell::new(None),
            },
            ResolvedKey::Doc { desc, shard } => KeyReader::Doc {
                desc: *desc,
                base: (u64::from(shard.unwrap_or(0)) << 32)
                    + self
                        .segment_bases
                        .get(segment_ord as usize)
                        .copied()
                        .unwrap_or(0),
            },
            ResolvedKey::GeoDistance {
                field,
                points,
                desc,
                mode,
                unit,
                distance_type,
            } => KeyReader::GeoDistance {
                column: match field {
                    Some(field) => open_geo_column(segment, field)?,
                    None => None,
                },
                points: points.clone(),
                desc: *desc,
                mode: *mode,
                unit: *unit,
                distance_type: *distance_type,
            },
            ResolvedKey::Field {
                field,
                kind: kind @ (FieldKind::Keyword | FieldKind::Ip),
                desc,
                mode,
                missing_first,
                missing_text,
                ..
            } => {
                let column = match SegmentColumn::open(segment, kind, field)? {
                    SegmentColumn::Str(column) => Some(column),
                    _ => None,
                };
                let missing_code = match missing_text {
                    Some(text) => directed(keyword_code(column.as_ref(), text)?, *desc),
                    None if *missing_first => KEYWORD_MISSING_FIRST,
                    None => KEYWORD_MISSING_LAST,
                };
                KeyReader::Keyword {
                    column,
                    desc: *desc,
                    max: *mode == SortMode::Max,
                    missing_code,
                }
            }
            ResolvedKey::Field {
                field,
                kind,
                desc,
                mode,
                missing_code,
                ..
            } => KeyReader::Number {
                column: SegmentColumn::open(segment, kind, field)?,
                double: *kind == FieldKind::Double,
                desc: *desc,
                mode: *mode,
                missing_code: *missing_code,
            },
        })
    }
}

/// A group of `collapse` within one segment: its term ordinal, or the bits of its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum GroupId {
    Missing,
    Value(u64),
}

/// `collapse` within one segment: the best document of each group among the best `limit`
/// groups (a group's rank is its best document's), as Lucene's first-pass grouping keeps
/// them. A group pushed out can come back with a better document later, so the kept groups
/// are exact.
struct SegmentGroups {
    column: SegmentColumn,
    kind: FieldKind,
    best: HashMap<GroupId, Kept>,
    order: BTreeMap<Kept, GroupId>,
}

impl SegmentGroups {
    /// The group of `doc`, or `Err(())` when it has several values.
    fn group_of(&self, doc: DocId) -> std::result::Result<GroupId, ()> {
        let mut found = None;
        let mut count = 0;
        match self.kind {
            FieldKind::Keyword | FieldKind::Ip => {
                self.column.for_each_ord(doc, |ord| {
                    count += 1;
                    found = Some(ord);
                });
            }
            FieldKind::Double => {
                self.column.for_each_number(doc, |v| {
                    count += 1;
                    found = Some(v.to_bits());
                });
            }
            _ => {
                self.column.for_each_i64(doc, |v| {
                    count += 1;
                    found = Some(v as u64);
                });
            }
        }
        match (count, found) {
            (0, _) | (_, None) => Ok(GroupId::Missing),
            (1, Some(value)) => Ok(GroupId::Value(value)),
            _ => Err(()),
        }
    }

    /// Offers a document to its group; `limit` groups at most are kept.
    fn offer(&mut self, group: GroupId, kept: Kept, limit: usize) {
        if let Some(current) = self.best.get(&group) {
            // Documents come in increasing order: a tie keeps the earlier one.
            if kept.key_cmp(current) != Ordering::Less {
                return;
            }
            self.order.remove(current);
        } else if self.order.len() >= limit {
            match self.order.last_key_value() {
                Some((worst, _)) if kept.key_cmp(worst) == Ordering::Less => {}
                _ => return,
            }
            if let Some((_, pushed_out)) = self.order.pop_last() {
                self.best.remove(&pushed_out);
            }
        }
        self.best.insert(group, kept.clone());
        self.order.insert(kept, group);
    }

    /// The JSON value of a group, as the hit's `fields` show it.
    fn value_of(&self, group: GroupId) -> Result<Value> {
        let GroupId::Value(raw) = group else {
            return Ok(Value::Null);
        };
        Ok(match &self.kind {
            FieldKind::Keyword => Value::String(self.column.term(raw)?),
            FieldKind::Ip => {
                let encoded = self.column.term(raw)?;
                Value::String(crate::ip::decode(&encoded).unwrap_or(encoded))
            }
            FieldKind::Double => {
                serde_json::Number::from_f64(f64::from_bits(raw)).map_or(Value::Null, Value::Number)
            }
            _ => Value::from(raw as i64),
        })
    }
}

pub(crate) struct SortSegmentCollector {
    /// `collapse`: the groups kept instead of `heap`.
    groups: Option<SegmentGroups>,
    collapse_error: Option<String>,
    bounds: CollectBounds,
    collected: Arc<AtomicU64>,
    /// Documents this segment has looked at, for the deadline's checks.
    seen: u64,
    terminated_early: bool,
    timed_out: bool,
    keys: Arc<[ResolvedKey]>,
    readers: Vec<KeyReader>,
    /// `search_after`: the memcomparable tuple (with string keys) and codes of the bound.
    after: Option<(Vec<u8>, Vec<u64>)>,
    segment_ord: SegmentOrdinal,
    limit: usize,
    /// The best documents so far, the worst on top.
    heap: BinaryHeap<Kept>,
    /// The codes of the document being collected (reused).
    codes: Vec<u64>,
    /// Whether a key is a string script's, so documents order by `ordered`.
    text_keys: bool,
    /// With string keys: the memcomparable tuple of the document being collected (reused).
    ordered: Vec<u8>,
    /// With string keys: their values for the document being collected.
    texts: Vec<String>,
    total: u64,
    max_score: Option<Score>,
    scoring: bool,
    /// Set when every key reads blocks and nothing else needs a look at each document (no
    /// string keys, `collapse` or bounds): [`SegmentCollector::collect_block`] then keeps the
    /// best documents here instead of in `heap`.
    block: Option<BlockTop>,
}

impl SegmentCollector for SortSegmentCollector {
    type Fruit = SortedFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.terminated_early || self.timed_out {
            return;
        }
        if let Some(deadline) = self.bounds.deadline {
            // The first document of each segment looks too, so small segments are bounded.
            let look = self.seen.is_multiple_of(DEADLINE_CHECK_DOCS);
            self.seen += 1;
            if look && Instant::now() >= deadline {
                self.timed_out = true;
                return;
            }
        }
        if let Some(min_score) = self.bounds.min_score
            && score < min_score
        {
            return;
        }
        if let Some(limit) = self.bounds.terminate_after
            && self.collected.fetch_add(1, AtomicOrdering::Relaxed) >= limit
        {
            self.terminated_early = true;
            return;
        }
        self.total += 1;
        if self.scoring {
            self.max_score = Some(self.max_score.map_or(score, |best| best.max(score)));
        }
        if self.limit == 0 {
            return;
        }
        self.codes.clear();
        if self.text_keys {
            self.ordered.clear();
            self.texts.clear();
            for reader in &self.readers {
                match (reader.text_desc(), reader.text(doc, score)) {
                    (Some(desc), Some(text)) => {
                        push_text(&mut self.ordered, text.as_bytes(), desc);
                        self.texts.push(text);
                        self.codes.push(0);
                    }
                    _ => {
                        let code = reader.code(doc, score);
                        push_code(&mut self.ordered, code);
                        self.codes.push(code);
                    }
                }
            }
        } else {
            for reader in &self.readers {
                self.codes.push(reader.code(doc, score));
            }
        }
        // `search_after`: only documents strictly after the given values.
        if let Some((after_ordered, after_codes)) = &self.after
            && tuple_cmp(&self.ordered, &self.codes, after_ordered, after_codes)
                != Ordering::Greater
        {
            return;
        }
        if let Some(groups) = self.groups.as_mut() {
            match groups.group_of(doc) {
                Ok(group) => groups.offer(
                    group,
                    Kept {
                        codes: self.codes.clone(),
                        ordered: self.ordered.clone(),
                        texts: self.texts.clone(),
                        address: DocAddress::new(self.segment_ord, doc),
                        score,
                    },
                    self.limit,
                ),
                Err(()) => {
                    self.collapse_error.get_or_insert_with(|| {
                        format!(
                            "failed to collapse {doc}, the collapse field must be single valued"
                        )
                    });
                }
            }
            return;
        }
        if self.heap.len() >= self.limit {
            // Documents come in increasing order: a tie with the worst kept is worse.
            match self.heap.peek() {
                Some(worst)
                    if tuple_cmp(&self.ordered, &self.codes, &worst.ordered, &worst.codes)
                        == Ordering::Less =>
                {
                    self.heap.pop();
                }
                _ => return,
            }
        }
        self.heap.push(Kept {
            codes: self.codes.clone(),
            ordered: self.ordered.clone(),
            texts: self.texts.clone(),
            address: DocAddress::new(self.segment_ord, doc),
            score,
        });
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        let Some(block) = self.block.as_mut() else {
            for &doc in docs {
                self.collect(doc, 0.0);
            }
            return;
        };
        self.total += docs.len() as u64;
        if self.limit == 0 {
            return;
        }
        let mut codes = [[0u64; VALUE_BATCH]; BLOCK_KEYS_MAX];
        for chunk in docs.chunks(VALUE_BATCH) {
            for (reader, out) in self.readers.iter().zip(codes.iter_mut()) {
                reader.block_codes(chunk, out);
            }
            for (i, &doc) in chunk.iter().enumerate() {
                let mut key = [0; BLOCK_KEYS_MAX];
                for (slot, column) in key.iter_mut().zip(&codes).take(self.readers.len()) {
                    *slot = column.get(i).copied().unwrap_or(0);
                }
                block.offer(key, doc, self.limit);
            }
        }
    }

    fn harvest(mut self) -> SortedFruit {
        if let Some(mut block) = self.block.take() {
            block.cut(self.limit);
            for (codes, doc) in block.buffer {
                self.heap.push(Kept {
                    codes: codes.get(..self.readers.len()).unwrap_or(&codes).to_vec(),
                    ordered: Vec::new(),
                    texts: Vec::new(),
                    address: DocAddress::new(self.segment_ord, doc),
                    score: 0.0,
                });
                if self.heap.len() > self.limit {
                    self.heap.pop();
                }
            }
        }
        let script_error = self.readers.iter().find_map(|reader| match reader {
            KeyReader::Script { error, .. } => error.borrow().clone(),
            _ => None,
        });
        let mut kept = Vec::with_capacity(self.heap.len());
        let mut error = None;
        let (docs, groups): (Vec<Kept>, Vec<Option<Value>>) = match &self.groups {
            None => {
                let docs = self.heap.into_sorted_vec();
                let groups = vec![None; docs.len()];
                (docs, groups)
            }
            Some(segment_groups) => {
                let mut docs = Vec::with_capacity(segment_groups.order.len());
                let mut values = Vec::with_capacity(segment_groups.order.len());
                for (doc, group) in &segment_groups.order {
                    match segment_groups.value_of(*group) {
                        Ok(value) => values.push(Some(value)),
                        Err(e) => {
                            error = Some(e.to_string());
                            values.push(Some(Value::Null));
                        }
                    }
                    docs.push(doc.clone());
                }
                (docs, values)
            }
        };
        for (doc, group) in docs.into_iter().zip(groups) {
            let mut texts = doc.texts.into_iter();
            let values = self
                .keys
                .iter()
                .zip(&self.readers)
                .zip(&doc.codes)
                .map(|((key, reader), code)| {
                    let column = match reader {
                        KeyReader::Keyword { column, .. } => column.as_ref(),
                        _ => None,
                    };
                    let text = reader.text_desc().and_then(|_| texts.next());
                    decode_value(key, *code, column, text)
                })
                .collect::<Result<Vec<_>>>();
            match values {
                Ok(values) => kept.push(SortedDoc {
                    address: doc.address,
                    score: doc.score,
                    values,
                    group,
                }),
                Err(e) => error = Some(e.to_string()),
            }
        }
        SortedFruit {
            kept,
            total: self.total,
            max_score: self.max_score,
            error,
            terminated_early: self.terminated_early,
            timed_out: self.timed_out,
            collapse_error: self.collapse_error,
            script_error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_keep_the_order_of_values() {
        let longs = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for pair in longs.windows(2) {
            assert!(encode_i64(pair[0]) < encode_i64(pair[1]));
            assert_eq!(decode_i64(encode_i64(pair[0])), pair[0]);
        }
        let doubles = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-9, 3.0, f64::INFINITY];
        for pair in doubles.windows(2) {
            assert!(encode_f64(pair[0]) < encode_f64(pair[1]), "{pair:?}");
            assert_eq!(decode_f64(encode_f64(pair[1])), pair[1]);
        }
        assert!(directed(encode_i64(3), true) < directed(encode_i64(2), true));
    }

    #[test]
    fn text_encodings_keep_the_order_of_strings_and_reverse_it_descending() {
        let mut strings: Vec<&[u8]> = vec![
            b"",
            b"\x00",
            b"\x00\x00",
            b"\x00\x01",
            b"a",
            b"a\x00",
            b"a\x00b",
            b"a\x01",
            b"ab",
            b"abc",
            b"b",
            b"\xff",
            b"\xff\x00",
        ];
        strings.sort();
        let encode = |text: &[u8], desc: bool, then: u64| {
            let mut ordered = Vec::new();
            push_text(&mut ordered, text, desc);
            push_code(&mut ordered, then);
            ordered
        };
        for (i, a) in strings.iter().enumerate() {
            for (j, b) in strings.iter().enumerate() {
                // The key after the string decides only between equal strings.
                let (x, y) = (encode(a, false, 9), encode(b, false, 1));
                let expected = i.cmp(&j).then(Ordering::Greater);
                assert_eq!(x.cmp(&y), expected, "{a:?} {b:?}");
                let (x, y) = (encode(a, true, 9), encode(b, true, 1));
                let expected = j.cmp(&i).then(Ordering::Greater);
                assert_eq!(x.cmp(&y), expected, "desc {a:?} {b:?}");
            }
        }
    }

    #[test]
    fn sort_values_compare_with_order_and_missing() {
        let asc = |missing| {
            SortKey::Field(FieldSort {
                field: "f".into(),
                order: SortOrder::Asc,
                missing,
                unmapped_type: None,
                mode: None,
                format: None,
            })
        };
        let text = |s: &str| SortValue::Text(s.into());
        let key = [asc(SortMissing::Last)];
        assert_eq!(
            compare_sort_values(&key, &[text("a")], &[text("b")]),
            Ordering::Less
        );
        assert_eq!(
            compare_sort_values(&key, &[SortValue::Null], &[text("b")]),
            Ordering::Greater
        );
        let first = [asc(SortMissing::First)];
        assert_eq!(
            compare_sort_values(&first, &[SortValue::Null], &[text("b")]),
            Ordering::Less
        );
        let desc = [
            SortKey::Score(SortOrder::Desc),
            SortKey::Doc(SortOrder::Asc),
        ];
        assert_eq!(
            compare_sort_values(
                &desc,
                &[SortValue::Float(2.0), SortValue::Long(9)],
                &[SortValue::Float(1.0), SortValue::Long(1)]
            ),
            Ordering::Less
        );
        assert_eq!(
            compare_sort_values(&key, &[SortValue::Long(2)], &[SortValue::Double(2.5)]),
            Ordering::Less
        );
    }

    #[test]
    fn infinite_sort_values_render_as_strings() {
        assert_eq!(
            SortValue::Double(f64::INFINITY).to_json(),
            Value::String("Infinity".into())
        );
        assert_eq!(
            SortValue::Long(i64::MIN).to_json(),
            serde_json::json!(i64::MIN)
        );
    }
}
