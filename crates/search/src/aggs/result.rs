//! Final aggregation results, as the `api` crate renders them in Elasticsearch's shapes.

use std::sync::Arc;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub struct AggResult {
    pub name: String,
    pub value: AggValue,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub sum: f64,
    /// `min_as_string`, `max_as_string`, `avg_as_string`, `sum_as_string` (dates, formats).
    pub as_strings: Option<[Option<String>; 4]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedStats {
    pub stats: Stats,
    pub sum_of_squares: Option<f64>,
    pub variance: Option<f64>,
    pub variance_population: Option<f64>,
    pub variance_sampling: Option<f64>,
    pub std_deviation: Option<f64>,
    pub std_deviation_population: Option<f64>,
    pub std_deviation_sampling: Option<f64>,
    /// `upper`, `lower`, `upper_population`, `lower_population`, `upper_sampling`,
    /// `lower_sampling`.
    pub bounds: [Option<f64>; 6],
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopHit {
    pub index: String,
    pub id: String,
    pub score: Option<f32>,
    /// The document's source, or for a nested object (a hit inside a `nested` aggregation)
    /// the object itself.
    pub source: Arc<[u8]>,
    /// Where a nested object sits in its document (`_nested`: `{field, offset, _nested}`).
    pub nested: Option<Value>,
    pub sort: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopMetricsRow {
    pub sort: Vec<Value>,
    pub metrics: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BucketKey {
    Str(String),
    Long(i64),
    Double(f64),
    /// A composite key: one value per source (null for a missing bucket).
    Composite(Vec<(String, Value)>),
    /// A `multi_terms` key: one value per source, as printed in its format.
    Multi(Vec<Value>),
    /// The bucket of an anonymous filter, which Elasticsearch shows without a key.
    Anonymous,
}

impl BucketKey {
    /// The key as a JSON object key of keyed buckets (Java's `Double.toString` for doubles).
    pub fn as_text(&self) -> String {
        match self {
            BucketKey::Str(s) => s.clone(),
            BucketKey::Long(v) => v.to_string(),
            BucketKey::Double(v) => java_double(*v),
            BucketKey::Composite(parts) => parts
                .iter()
                .map(|(_, v)| v.to_string())
                .collect::<Vec<_>>()
                .join("|"),
            BucketKey::Multi(parts) => parts
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join("|"),
            BucketKey::Anonymous => String::new(),
        }
    }
}

/// A double as Java prints it: `1.0`, `0.5`, `1.0E10`.
pub fn java_double(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e7 {
        format!("{value:.1}")
    } else if value.is_finite() && (value.abs() >= 1e7 || (value != 0.0 && value.abs() < 1e-3)) {
        let text = format!("{value:E}");
        match text.split_once('E') {
            Some((mantissa, exponent)) if !mantissa.contains('.') => {
                format!("{mantissa}.0E{exponent}")
            }
            _ => text,
        }
    } else {
        format!("{value}")
    }
}

/// `from`/`to` of a range bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeBounds {
    pub from: Option<f64>,
    pub to: Option<f64>,
    pub from_as_string: Option<String>,
    pub to_as_string: Option<String>,
    /// `ip_range`: the bounds are addresses, shown as `from` and `to` strings (the
    /// `*_as_string` fields hold them; the numbers are `None`).
    pub addresses: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    pub key: BucketKey,
    pub key_as_string: Option<String>,
    pub doc_count: u64,
    /// `doc_count_error_upper_bound` of a terms bucket, when asked for.
    pub doc_count_error: Option<i64>,
    /// `score` and `bg_count` of a `significant_terms` bucket.
    pub significance: Option<(f64, u64)>,
    pub range: Option<RangeBounds>,
    pub subs: Vec<AggResult>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BucketsKind {
    Plain,
    Terms {
        doc_count_error_upper_bound: i64,
        sum_other_doc_count: u64,
    },
    Composite {
        after_key: Option<Vec<(String, Value)>>,
    },
    /// `auto_date_histogram`: the interval it chose, such as `7d` or `1M`.
    AutoDate {
        interval: String,
    },
    /// `significant_terms`: the subset's and the superset's sizes.
    Significant {
        doc_count: u64,
        bg_count: u64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Buckets {
    /// Buckets as an object keyed by their key, instead of a list.
    pub keyed: bool,
    pub buckets: Vec<Bucket>,
    pub kind: BucketsKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum AggValue {
    /// `avg`, `min`, `max`, `sum`, `weighted_avg`, `median_absolute_deviation` and the
    /// single-value pipelines: `{"value": …}`, null over an empty set.
    Value {
        value: Option<f64>,
        as_string: Option<String>,
    },
    /// `max_bucket`, `min_bucket`: the value and the keys of the buckets that hold it.
    BucketValue {
        value: Option<f64>,
        as_string: Option<String>,
        keys: Vec<String>,
    },
    /// A `derivative` with a `unit`: the gradient and the gradient per unit.
    Derivative {
        value: f64,
        normalized_value: f64,
    },
    /// `value_count`, `cardinality`: an integer.
    Count(u64),
    Stats(Stats),
    ExtendedStats(Box<ExtendedStats>),
    /// `percentiles`, `percentile_ranks`, `percentiles_bucket`: `(key, value, value_as_string)`.
    Percentiles {
        keyed: bool,
        values: Vec<(f64, Option<f64>, Option<String>)>,
    },
    TopHits {
        total: u64,
        max_score: Option<f32>,
        hits: Vec<TopHit>,
    },
    TopMetrics(Vec<TopMetricsRow>),
    Buckets(Buckets),
    /// `geo_bounds`: the box, `None` without points.
    GeoBounds(Option<crate::geo::GeoBox>),
    /// `geo_centroid`: the mean point, `None` without points.
    GeoCentroid {
        location: Option<crate::geo::GeoPoint>,
        count: u64,
    },
    /// `filter`, `missing`, `global`.
    SingleBucket {
        doc_count: u64,
        subs: Vec<AggResult>,
    },
}

impl AggValue {
    /// The single value of a metric, for pipelines and bucket paths.
    pub fn single_value(&self) -> Option<f64> {
        match self {
            AggValue::Value { value, .. } | AggValue::BucketValue { value, .. } => *value,
            AggValue::Count(count) => Some(*count as f64),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_print_as_java_does() {
        assert_eq!(java_double(1.0), "1.0");
        assert_eq!(java_double(99.9), "99.9");
        assert_eq!(java_double(-25.0), "-25.0");
        assert_eq!(java_double(1.5e12), "1.5E12");
        assert_eq!(java_double(1e10), "1.0E10");
    }
}
