//! The Elasticsearch Query DSL: the JSON shape of `query` read into Sluice's query tree.
//!
//! Each clause's options are read into a private serde type that refuses unknown fields, so a
//! misspelt or unsupported option answers 400 naming it (`[match] query does not support
//! [foo]`) instead of being ignored. Options Elasticsearch accepts but that change nothing in
//! Sluice (`rewrite`, `auto_generate_synonyms_phrase_query`, …) are accepted. Nesting is bounded
//! by [`QUERY_DEPTH_MAX`], so a deeply nested body is refused before anything recurses on it.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sluice_search::Analyzer;
use sluice_search::geo_query::GeoShape;
use sluice_search::nested::NestedScoreMode;
use sluice_search::query::{
    Bool, BoostMode, DecayShape, FieldPattern, Fields, FunctionKind, FunctionScore, Fuzziness, Geo,
    INNER_RESULT_WINDOW_MAX, InnerHits, MAX_EXPANSIONS_DEFAULT, Match, MatchKind,
    MinimumShouldMatch, Modifier, Nested, Operator, QUERY_DEPTH_MAX, Query, Range, RangeBound,
    ScoreFunction, ScoreMode, ZeroTermsQuery,
};
use sluice_search::query_string::{self, QueryStringOptions};

use super::EsError;

/// Reads one Query DSL clause (the value of `query`) into the query tree.
pub(crate) fn parse_query(value: &Value) -> Result<Query, EsError> {
    Parser.clause(value, 0)
}

/// `validation_method` of geo queries: refuse coordinates off the globe, wrap them onto it, or
/// take them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GeoValidation {
    Strict,
    Coerce,
    IgnoreMalformed,
}

/// Reads the options every geo query shares from `body`, leaving the field's own entry.
struct GeoCommon {
    field: Option<(String, Value)>,
    validation: GeoValidation,
    ignore_unmapped: bool,
    boost: f32,
    name: Option<String>,
}

fn geo_common(
    kind: &str,
    body: &Value,
    own: &[&str],
) -> Result<(GeoCommon, serde_json::Map<String, Value>), EsError> {
    let Value::Object(object) = body else {
        return Err(parse_error(format!(
            "[{kind}] query malformed, no start_object after query name"
        )));
    };
    let mut common = GeoCommon {
        field: None,
        validation: GeoValidation::Strict,
        ignore_unmapped: false,
        boost: 1.0,
        name: None,
    };
    let mut rest = serde_json::Map::new();
    for (key, value) in object {
        match key.as_str() {
            "validation_method" => {
                common.validation = match value.as_str().map(str::to_ascii_uppercase).as_deref() {
                    Some("STRICT") => GeoValidation::Strict,
                    Some("COERCE") => GeoValidation::Coerce,
                    Some("IGNORE_MALFORMED") => GeoValidation::IgnoreMalformed,
                    _ => {
                        return Err(EsError::illegal_argument(format!(
                            "No enum constant org.elasticsearch.index.query.GeoValidationMethod.{}",
                            value.as_str().unwrap_or_default()
                        )));
                    }
                };
            }
            "ignore_unmapped" => {
                common.ignore_unmapped = value.as_bool().ok_or_else(|| {
                    parse_error(format!("[{kind}] failed to parse field [ignore_unmapped]"))
                })?;
            }
            "boost" => {
                let number: Option<Number> = serde_json::from_value(value.clone()).ok();
                common.boost = boost(&number)?;
            }
            "_name" => {
                common.name = Some(
                    value
                        .as_str()
                        .ok_or_else(|| parse_error(format!("[{kind}] [_name] must be a string")))?
                        .to_string(),
                );
            }
            // Options of Elasticsearch 7 that change nothing.
            "type" if kind == "geo_bounding_box" => {}
            key if own.contains(&key) => {
                rest.insert(key.to_string(), value.clone());
            }
            field => {
                if let Some((first, _)) = &common.field {
                    return Err(parse_error(format!(
                        "[{kind}] query doesn't support multiple fields, found [{first}] and [{field}]"
                    )));
                }
                common.field = Some((field.to_string(), value.clone()));
            }
        }
    }
    Ok((common, rest))
}

/// A query point checked as `validation_method` says (`what` names the query in errors).
fn checked_point(
    point: sluice_search::geo::GeoPoint,
    validation: GeoValidation,
    what: &str,
) -> Result<sluice_search::geo::GeoPoint, EsError> {
    match validation {
        GeoValidation::Strict => point
            .validate(&format!("[{what}]"))
            .map_err(|reason| EsError::bad_request("query_shard_exception", reason)),
        GeoValidation::Coerce => Ok(point.normalized()),
        GeoValidation::IgnoreMalformed => Ok(point),
    }
}

fn geo_distance(body: &Value) -> Result<Query, EsError> {
    use sluice_search::geo::{DistanceType, DistanceUnit, parse_distance, parse_point};
    let kind = "geo_distance";
    let (common, rest) = geo_common(kind, body, &["distance", "distance_type", "unit"])?;
    let Some((field, point)) = common.field else {
        return Err(parse_error(
            "failed to parse [geo_distance] query. missing geo field",
        ));
    };
    let unit = match rest.get("unit") {
        None => DistanceUnit::METERS,
        Some(value) => value
            .as_str()
            .and_then(DistanceUnit::parse)
            .ok_or_else(|| {
                EsError::illegal_argument(format!(
                    "No distance unit match [{}]",
                    value.as_str().unwrap_or_default()
                ))
            })?,
    };
    let distance = rest.get("distance").ok_or_else(|| {
        EsError::illegal_argument("geo_distance requires 'distance' to be specified")
    })?;
    let meters = parse_distance(distance, unit).map_err(EsError::illegal_argument)?;
    if meters <= 0.0 {
        return Err(EsError::illegal_argument(
            "distance must be greater than zero",
        ));
    }
    let distance_type = match rest.get("distance_type") {
        None => DistanceType::Arc,
        Some(value) => value
            .as_str()
            .and_then(DistanceType::parse)
            .ok_or_else(|| {
                EsError::illegal_argument(format!(
                    "No geo distance for [{}]",
                    value.as_str().unwrap_or_default()
                ))
            })?,
    };
    let center = parse_point(&point)
        .map_err(|reason| parse_error(format!("[geo_distance] failed to parse point: {reason}")))?;
    let center = checked_point(center, common.validation, kind)?;
    Ok(named(
        Query::Geo(Box::new(Geo {
            field,
            shape: GeoShape::Distance {
                center,
                meters,
                distance_type,
            },
            kind: "geo_distance",
            ignore_unmapped: common.ignore_unmapped,
            boost: common.boost,
        })),
        common.name,
    ))
}

fn geo_bounding_box(body: &Value) -> Result<Query, EsError> {
    use sluice_search::geo::{GeoPoint, parse_bounding_box};
    let kind = "geo_bounding_box";
    let (common, _) = geo_common(kind, body, &[])?;
    let Some((field, spec)) = common.field else {
        return Err(parse_error(
            "failed to parse [geo_bounding_box] query. missing geo field",
        ));
    };
    let Value::Object(spec) = spec else {
        return Err(parse_error(format!(
            "failed to parse [geo_bounding_box] query. expected an object for field [{field}]"
        )));
    };
    let mut bounds = parse_bounding_box(&spec).map_err(|reason| {
        parse_error(format!(
            "failed to parse [geo_bounding_box] query. {reason}"
        ))
    })?;
    if common.validation == GeoValidation::Strict {
        for point in [
            GeoPoint::new(bounds.top, bounds.left),
            GeoPoint::new(bounds.bottom, bounds.right),
        ] {
            checked_point(point, common.validation, kind)?;
        }
    } else if common.validation == GeoValidation::Coerce {
        let top_left = GeoPoint::new(bounds.top, bounds.left).normalized();
        let bottom_right = GeoPoint::new(bounds.bottom, bounds.right).normalized();
        bounds.top = top_left.lat;
        bounds.left = top_left.lon;
        bounds.bottom = bottom_right.lat;
        bounds.right = bottom_right.lon;
    }
    Ok(named(
        Query::Geo(Box::new(Geo {
            field,
            shape: GeoShape::BoundingBox(bounds),
            kind: "geo_bounding_box",
            ignore_unmapped: common.ignore_unmapped,
            boost: common.boost,
        })),
        common.name,
    ))
}

fn parse_error(reason: impl Into<String>) -> EsError {
    EsError::parse(reason)
}

fn x_content(reason: impl Into<String>) -> EsError {
    EsError::bad_request("x_content_parse_exception", reason)
}

/// Reads a clause body into its options type, naming the clause in errors.
fn options<T: DeserializeOwned>(kind: &str, value: &Value) -> Result<T, EsError> {
    serde_json::from_value(value.clone()).map_err(|error| {
        let message = error.to_string();
        if let Some(rest) = message.strip_prefix("unknown field `") {
            let field = rest.split('`').next().unwrap_or_default();
            return parse_error(format!("[{kind}] query does not support [{field}]"));
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or_default();
            return parse_error(format!("[{kind}] requires [{field}]"));
        }
        x_content(format!("[{kind}] failed to parse: {message}"))
    })
}

/// A number or a numeric string, as Elasticsearch accepts for most numeric options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Number {
    Float(f64),
    Text(String),
}

impl Number {
    fn value(&self, name: &str) -> Result<f64, EsError> {
        match self {
            Number::Float(f) => Ok(*f),
            Number::Text(text) => text
                .trim()
                .parse()
                .map_err(|_| x_content(format!("[{name}] must be a number, got [{text}]"))),
        }
    }
}

fn boost(value: &Option<Number>) -> Result<f32, EsError> {
    match value {
        None => Ok(1.0),
        Some(number) => {
            let boost = number.value("boost")?;
            if boost < 0.0 || !boost.is_finite() {
                return Err(EsError::illegal_argument(format!(
                    "negative [boost] are not allowed in [{boost}]"
                )));
            }
            Ok(boost as f32)
        }
    }
}

fn named(query: Query, name: Option<String>) -> Query {
    match name {
        Some(name) => Query::Named {
            name,
            query: Box::new(query),
        },
        None => query,
    }
}

fn operator(value: &Option<String>) -> Result<Operator, EsError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("or") => Ok(Operator::Or),
        Some("and") => Ok(Operator::And),
        Some(other) => Err(EsError::illegal_argument(format!(
            "No enum constant org.elasticsearch.index.query.Operator.{}",
            other.to_ascii_uppercase()
        ))),
    }
}

fn zero_terms(value: &Option<String>) -> Result<ZeroTermsQuery, EsError> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("none") => Ok(ZeroTermsQuery::None),
        Some("all") => Ok(ZeroTermsQuery::All),
        Some(other) => Err(parse_error(format!(
            "Unsupported zero_terms_query value [{other}]"
        ))),
    }
}

fn analyzer(value: &Option<String>) -> Result<Option<Analyzer>, EsError> {
    match value {
        None => Ok(None),
        Some(name) => Analyzer::from_name(name).map(Some).ok_or_else(|| {
            EsError::illegal_argument(format!(
                "analyzer [{name}] has not been configured in mappings"
            ))
        }),
    }
}

fn minimum_should_match(value: &Option<Value>) -> Result<Option<MinimumShouldMatch>, EsError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        other => {
            return Err(x_content(format!(
                "[minimum_should_match] must be a string or a number, got [{other}]"
            )));
        }
    };
    MinimumShouldMatch::parse(&text).map(Some).ok_or_else(|| {
        EsError::illegal_argument(format!("invalid [minimum_should_match] value [{text}]"))
    })
}

fn fuzziness(value: &Option<Value>) -> Result<Option<Fuzziness>, EsError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(x_content(format!("[fuzziness] malformed, got [{other}]"))),
    };
    Fuzziness::parse(&text)
        .map(Some)
        .ok_or_else(|| EsError::illegal_argument(format!("invalid fuzziness value: [{text}]")))
}

/// The query text of full-text clauses: strings, numbers and booleans.
fn query_text(kind: &str, value: &Value) -> Result<String, EsError> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(parse_error(format!(
            "[{kind}] unknown token [{}] after [query]",
            json_token(other)
        ))),
    }
}

fn json_token(value: &Value) -> &'static str {
    match value {
        Value::Object(_) => "START_OBJECT",
        Value::Array(_) => "START_ARRAY",
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
    }
}

fn reject_flag(kind: &str, name: &str, present: bool) -> Result<(), EsError> {
    if present {
        return Err(parse_error(format!(
            "[{kind}] option [{name}] is not supported by Sluice"
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchAllOptions {
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchNoneOptions {
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchOptions {
    query: Value,
    operator: Option<String>,
    minimum_should_match: Option<Value>,
    fuzziness: Option<Value>,
    prefix_length: Option<u32>,
    max_expansions: Option<u32>,
    fuzzy_transpositions: Option<bool>,
    fuzzy_rewrite: Option<String>,
    lenient: Option<bool>,
    zero_terms_query: Option<String>,
    analyzer: Option<String>,
    auto_generate_synonyms_phrase_query: Option<bool>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatchPhraseOptions {
    query: Value,
    analyzer: Option<String>,
    slop: Option<u32>,
    max_expansions: Option<u32>,
    zero_terms_query: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MultiMatchOptions {
    query: Value,
    fields: Option<FieldList>,
    #[serde(rename = "type")]
    kind: Option<String>,
    operator: Option<String>,
    minimum_should_match: Option<Value>,
    fuzziness: Option<Value>,
    prefix_length: Option<u32>,
    max_expansions: Option<u32>,
    fuzzy_transpositions: Option<bool>,
    fuzzy_rewrite: Option<String>,
    lenient: Option<bool>,
    zero_terms_query: Option<String>,
    analyzer: Option<String>,
    tie_breaker: Option<Number>,
    slop: Option<u32>,
    auto_generate_synonyms_phrase_query: Option<bool>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

/// `fields`: one pattern or a list.
#[derive(Deserialize)]
#[serde(untagged)]
enum FieldList {
    One(String),
    Many(Vec<String>),
}

impl FieldList {
    fn patterns(&self) -> Result<Vec<FieldPattern>, EsError> {
        let names: Vec<&String> = match self {
            FieldList::One(name) => vec![name],
            FieldList::Many(names) => names.iter().collect(),
        };
        names
            .into_iter()
            .map(|name| {
                FieldPattern::parse(name).ok_or_else(|| {
                    EsError::illegal_argument(format!("invalid boost in field [{name}]"))
                })
            })
            .collect()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TermOptions {
    value: Value,
    case_insensitive: Option<bool>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeOptions {
    gt: Option<Value>,
    gte: Option<Value>,
    lt: Option<Value>,
    lte: Option<Value>,
    from: Option<Value>,
    to: Option<Value>,
    include_lower: Option<bool>,
    include_upper: Option<bool>,
    format: Option<String>,
    time_zone: Option<String>,
    relation: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExistsOptions {
    field: String,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixOptions {
    value: Value,
    case_insensitive: Option<bool>,
    rewrite: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WildcardOptions {
    value: Option<Value>,
    wildcard: Option<Value>,
    case_insensitive: Option<bool>,
    /// Accepted; it changes only how Lucene rewrites, not what matches.
    #[serde(rename = "rewrite")]
    _rewrite: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegexpOptions {
    value: Value,
    flags: Option<String>,
    flags_value: Option<i64>,
    case_insensitive: Option<bool>,
    /// Accepted: Sluice's automata are bounded by tantivy, not by this setting.
    #[serde(rename = "max_determinized_states")]
    _max_determinized_states: Option<u32>,
    #[serde(rename = "rewrite")]
    _rewrite: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FuzzyOptions {
    value: Value,
    fuzziness: Option<Value>,
    prefix_length: Option<u32>,
    max_expansions: Option<u32>,
    transpositions: Option<bool>,
    #[serde(rename = "rewrite")]
    _rewrite: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdsOptions {
    values: Vec<Value>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoolOptions {
    must: Option<Value>,
    should: Option<Value>,
    must_not: Option<Value>,
    filter: Option<Value>,
    minimum_should_match: Option<Value>,
    adjust_pure_negative: Option<bool>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NestedOptions {
    path: String,
    query: Value,
    score_mode: Option<String>,
    ignore_unmapped: Option<bool>,
    inner_hits: Option<Value>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InnerHitsOptions {
    name: Option<String>,
    from: Option<i64>,
    size: Option<i64>,
    #[serde(rename = "_source")]
    source: Option<Value>,
    sort: Option<Value>,
}

/// Elasticsearch's `size` of inner hits.
const INNER_HITS_SIZE_DEFAULT: usize = 3;

/// `inner_hits` of a `nested` query: sorted by score only.
fn inner_hits(spec: &Value, path: &str) -> Result<InnerHits, EsError> {
    let o: InnerHitsOptions = options("inner_hits", spec)?;
    let name = o.name.unwrap_or_else(|| path.to_string());
    let count = |value: Option<i64>, what: &str, default: usize| -> Result<usize, EsError> {
        match value {
            None => Ok(default),
            Some(n) => usize::try_from(n).map_err(|_| {
                EsError::illegal_argument(format!(
                    "[inner_hits] [{what}] must be non-negative, got [{n}]"
                ))
            }),
        }
    };
    let from = count(o.from, "from", 0)?;
    let size = count(o.size, "size", INNER_HITS_SIZE_DEFAULT)?;
    if from.saturating_add(size) > INNER_RESULT_WINDOW_MAX {
        return Err(EsError::illegal_argument(format!(
            "Inner result window is too large, the inner hit definition's [{name}]'s from + size must be less than or equal to: [{INNER_RESULT_WINDOW_MAX}] but was [{}]. This limit can be set by changing the [index.max_inner_result_window] index level setting.",
            from.saturating_add(size)
        )));
    }
    if let Some(sort) = &o.sort {
        let keys: Vec<&Value> = match sort {
            Value::Array(keys) => keys.iter().collect(),
            other => vec![other],
        };
        for key in keys {
            let by_score_desc = match key {
                Value::String(field) => field == "_score",
                Value::Object(map) => {
                    map.len() == 1
                        && map.get("_score").is_some_and(|order| {
                            let order = order.get("order").unwrap_or(order);
                            order.as_str() == Some("desc")
                        })
                }
                _ => false,
            };
            if !by_score_desc {
                return Err(EsError::illegal_argument(format!(
                    "[inner_hits] sort [{key}] is not supported by Sluice; inner hits sort by [_score] descending only"
                )));
            }
        }
    }
    let source = match &o.source {
        None => super::documents::SourceFilter::default(),
        Some(value) => super::documents::SourceFilter::from_json(value)?,
    };
    Ok(InnerHits {
        name,
        from,
        size,
        source_enabled: source.enabled,
        source_includes: source.includes,
        source_excludes: source.excludes,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConstantScoreOptions {
    filter: Value,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BoostingOptions {
    positive: Value,
    negative: Value,
    negative_boost: Number,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DisMaxOptions {
    queries: Vec<Value>,
    tie_breaker: Option<Number>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FunctionScoreOptions {
    query: Option<Value>,
    functions: Option<Vec<Value>>,
    weight: Option<Number>,
    field_value_factor: Option<Value>,
    gauss: Option<Value>,
    exp: Option<Value>,
    linear: Option<Value>,
    random_score: Option<Value>,
    script_score: Option<Value>,
    score_mode: Option<String>,
    boost_mode: Option<String>,
    max_boost: Option<Number>,
    min_score: Option<Number>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldValueFactorOptions {
    field: String,
    factor: Option<Number>,
    modifier: Option<String>,
    missing: Option<Number>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecayOptions {
    origin: Option<Value>,
    scale: Value,
    offset: Option<Value>,
    decay: Option<Number>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryStringBody {
    query: Value,
    default_field: Option<String>,
    fields: Option<FieldList>,
    default_operator: Option<String>,
    analyzer: Option<String>,
    quote_analyzer: Option<String>,
    allow_leading_wildcard: Option<bool>,
    enable_position_increments: Option<bool>,
    fuzzy_max_expansions: Option<u32>,
    fuzziness: Option<Value>,
    fuzzy_prefix_length: Option<u32>,
    fuzzy_transpositions: Option<bool>,
    fuzzy_rewrite: Option<String>,
    phrase_slop: Option<u32>,
    analyze_wildcard: Option<bool>,
    lenient: Option<bool>,
    minimum_should_match: Option<Value>,
    quote_field_suffix: Option<String>,
    rewrite: Option<String>,
    time_zone: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    tie_breaker: Option<Number>,
    auto_generate_synonyms_phrase_query: Option<bool>,
    max_determinized_states: Option<u32>,
    escape: Option<bool>,
    flags: Option<String>,
    boost: Option<Number>,
    #[serde(rename = "_name")]
    name: Option<String>,
}

struct Parser;

impl Parser {
    fn clause(&self, value: &Value, depth: usize) -> Result<Query, EsError> {
        if depth > QUERY_DEPTH_MAX {
            return Err(parse_error(format!(
                "The nested depth of the query exceeds the maximum nested depth for queries set in [indices.query.max_nested_depth] ({QUERY_DEPTH_MAX})"
            )));
        }
        let Value::Object(clause) = value else {
            return Err(parse_error("query malformed, must start with start_object"));
        };
        let mut entries = clause.iter();
        let (kind, body) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            (None, _) => {
                return Err(parse_error("query malformed, empty clause found"));
            }
            (Some((first, _)), Some(_)) => {
                return Err(parse_error(format!(
                    "[{first}] malformed query, expected [END_OBJECT] but found [FIELD_NAME]"
                )));
            }
        };
        let kind = kind.as_str();
        let next = depth + 1;
        match kind {
            "match_all" => {
                let o: MatchAllOptions = options(kind, body)?;
                Ok(named(
                    Query::MatchAll {
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "match_none" => {
                let o: MatchNoneOptions = options(kind, body)?;
                Ok(named(Query::MatchNone, o.name))
            }
            "match" => self.match_query(kind, body, MatchKind::Boolean),
            "match_phrase" => self.match_query(kind, body, MatchKind::Phrase { slop: 0 }),
            "match_phrase_prefix" => self.match_query(
                kind,
                body,
                MatchKind::PhrasePrefix {
                    slop: 0,
                    max_expansions: MAX_EXPANSIONS_DEFAULT,
                },
            ),
            "match_bool_prefix" => self.match_query(kind, body, MatchKind::BoolPrefix),
            "multi_match" => self.multi_match(body),
            "term" => {
                let (field, spec) = single_field(kind, body)?;
                let o = match spec {
                    Value::Object(_) => options::<TermOptions>(kind, spec)?,
                    Value::Array(_) => {
                        return Err(parse_error("[term] query does not support array of values"));
                    }
                    scalar => TermOptions {
                        value: scalar.clone(),
                        case_insensitive: None,
                        boost: None,
                        name: None,
                    },
                };
                check_scalar(kind, &o.value)?;
                Ok(named(
                    Query::Term {
                        field,
                        value: o.value,
                        case_insensitive: o.case_insensitive.unwrap_or(false),
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "terms" => {
                let Value::Object(o) = body else {
                    return Err(parse_error(
                        "[terms] query malformed, no start_object after query name",
                    ));
                };
                let mut field = None;
                let mut query_boost = None;
                let mut name = None;
                for (key, value) in o {
                    match key.as_str() {
                        "boost" => {
                            query_boost = Some(
                                serde_json::from_value::<Number>(value.clone())
                                    .map_err(|_| x_content("[terms] [boost] must be a number"))?,
                            )
                        }
                        "_name" => name = value.as_str().map(str::to_string),
                        _ if field.is_some() => {
                            return Err(parse_error(
                                "[terms] query does not support multiple fields",
                            ));
                        }
                        _ => field = Some((key.clone(), value)),
                    }
                }
                let Some((field, values)) = field else {
                    return Err(parse_error("[terms] query requires a field"));
                };
                let Value::Array(values) = values else {
                    if values.is_object() {
                        return Err(parse_error(
                            "[terms] query does not support terms lookup (index/id/path) in Sluice",
                        ));
                    }
                    return Err(parse_error(format!(
                        "[terms] query does not support [{field}]"
                    )));
                };
                for value in values {
                    check_scalar(kind, value)?;
                }
                Ok(named(
                    Query::Terms {
                        field,
                        values: values.clone(),
                        boost: boost(&query_boost)?,
                    },
                    name,
                ))
            }
            "ids" => {
                let o: IdsOptions = options(kind, body)?;
                let values = o
                    .values
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.clone()),
                        Value::Number(n) => Ok(n.to_string()),
                        _ => Err(x_content("[ids] failed to parse field [values]")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(named(
                    Query::Ids {
                        values,
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "range" => {
                let (field, spec) = single_field(kind, body)?;
                let o: RangeOptions = options(kind, spec)?;
                if let Some(relation) = &o.relation
                    && !relation.eq_ignore_ascii_case("intersects")
                {
                    return Err(parse_error(format!(
                        "[range] query option [relation] value [{relation}] is only meaningful on range fields, which Sluice does not support"
                    )));
                }
                // A bound is a value: an object or an array is refused, as Elasticsearch does.
                for (name, bound) in [
                    ("gt", &o.gt),
                    ("gte", &o.gte),
                    ("lt", &o.lt),
                    ("lte", &o.lte),
                    ("from", &o.from),
                    ("to", &o.to),
                ] {
                    if matches!(bound, Some(Value::Object(_) | Value::Array(_))) {
                        return Err(parse_error(format!(
                            "[range] query does not support [{name}]"
                        )));
                    }
                }
                let include_lower = o.include_lower.unwrap_or(true);
                let include_upper = o.include_upper.unwrap_or(true);
                let lower = match (o.gt, o.gte, o.from) {
                    (Some(v), _, _) if !v.is_null() => RangeBound::Excluded(v),
                    (_, Some(v), _) if !v.is_null() => RangeBound::Included(v),
                    (_, _, Some(v)) if !v.is_null() => {
                        if include_lower {
                            RangeBound::Included(v)
                        } else {
                            RangeBound::Excluded(v)
                        }
                    }
                    _ => RangeBound::Unbounded,
                };
                let upper = match (o.lt, o.lte, o.to) {
                    (Some(v), _, _) if !v.is_null() => RangeBound::Excluded(v),
                    (_, Some(v), _) if !v.is_null() => RangeBound::Included(v),
                    (_, _, Some(v)) if !v.is_null() => {
                        if include_upper {
                            RangeBound::Included(v)
                        } else {
                            RangeBound::Excluded(v)
                        }
                    }
                    _ => RangeBound::Unbounded,
                };
                Ok(named(
                    Query::Range(Box::new(Range {
                        field,
                        lower,
                        upper,
                        format: o.format,
                        time_zone: o.time_zone,
                        boost: boost(&o.boost)?,
                    })),
                    o.name,
                ))
            }
            "exists" => {
                let o: ExistsOptions = options(kind, body)?;
                Ok(named(
                    Query::Exists {
                        field: o.field,
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "prefix" => {
                let (field, spec) = single_field(kind, body)?;
                let o = match spec {
                    Value::Object(_) => options::<PrefixOptions>(kind, spec)?,
                    scalar => PrefixOptions {
                        value: scalar.clone(),
                        case_insensitive: None,
                        rewrite: None,
                        boost: None,
                        name: None,
                    },
                };
                let _ = o.rewrite;
                Ok(named(
                    Query::Prefix {
                        field,
                        value: scalar_string(kind, &o.value)?,
                        case_insensitive: o.case_insensitive.unwrap_or(false),
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "wildcard" => {
                let (field, spec) = single_field(kind, body)?;
                let o = match spec {
                    Value::Object(_) => options::<WildcardOptions>(kind, spec)?,
                    scalar => WildcardOptions {
                        value: Some(scalar.clone()),
                        wildcard: None,
                        case_insensitive: None,
                        _rewrite: None,
                        boost: None,
                        name: None,
                    },
                };
                let Some(pattern) = o.value.as_ref().or(o.wildcard.as_ref()) else {
                    return Err(parse_error("[wildcard] requires [value]"));
                };
                Ok(named(
                    Query::Wildcard {
                        field,
                        pattern: scalar_string(kind, pattern)?,
                        case_insensitive: o.case_insensitive.unwrap_or(false),
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "regexp" => {
                let (field, spec) = single_field(kind, body)?;
                let o = match spec {
                    Value::Object(_) => options::<RegexpOptions>(kind, spec)?,
                    scalar => RegexpOptions {
                        value: scalar.clone(),
                        flags: None,
                        flags_value: None,
                        case_insensitive: None,
                        _max_determinized_states: None,
                        _rewrite: None,
                        boost: None,
                        name: None,
                    },
                };
                if let Some(flags) = &o.flags
                    && !matches!(flags.to_ascii_uppercase().as_str(), "ALL" | "")
                {
                    return Err(parse_error(format!(
                        "[regexp] flags [{flags}] are not supported by Sluice; only ALL"
                    )));
                }
                reject_flag(
                    kind,
                    "flags_value",
                    o.flags_value.is_some_and(|f| f != -1 && f != 0xffff),
                )?;
                Ok(named(
                    Query::Regexp {
                        field,
                        pattern: scalar_string(kind, &o.value)?,
                        case_insensitive: o.case_insensitive.unwrap_or(false),
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "fuzzy" => {
                let (field, spec) = single_field(kind, body)?;
                let o = match spec {
                    Value::Object(_) => options::<FuzzyOptions>(kind, spec)?,
                    scalar => FuzzyOptions {
                        value: scalar.clone(),
                        fuzziness: None,
                        prefix_length: None,
                        max_expansions: None,
                        transpositions: None,
                        _rewrite: None,
                        boost: None,
                        name: None,
                    },
                };
                Ok(named(
                    Query::Fuzzy {
                        field,
                        value: scalar_string(kind, &o.value)?,
                        fuzziness: fuzziness(&o.fuzziness)?.unwrap_or(Fuzziness::AUTO),
                        prefix_length: o.prefix_length.unwrap_or(0),
                        max_expansions: o.max_expansions.unwrap_or(MAX_EXPANSIONS_DEFAULT),
                        transpositions: o.transpositions.unwrap_or(true),
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "bool" => {
                let o: BoolOptions = options(kind, body)?;
                let clauses = |name: &str, value: &Option<Value>| -> Result<Vec<Query>, EsError> {
                    match value {
                        None => Ok(Vec::new()),
                        Some(Value::Array(items)) => {
                            items.iter().map(|item| self.clause(item, next)).collect()
                        }
                        Some(object @ Value::Object(_)) => Ok(vec![self.clause(object, next)?]),
                        Some(_) => Err(parse_error(format!(
                            "[bool] failed to parse field [{name}]"
                        ))),
                    }
                };
                if o.adjust_pure_negative == Some(false) {
                    return Err(parse_error(
                        "[bool] option [adjust_pure_negative] false is not supported by Sluice",
                    ));
                }
                Ok(named(
                    Query::Bool(Box::new(Bool {
                        must: clauses("must", &o.must)?,
                        should: clauses("should", &o.should)?,
                        must_not: clauses("must_not", &o.must_not)?,
                        filter: clauses("filter", &o.filter)?,
                        minimum_should_match: minimum_should_match(&o.minimum_should_match)?,
                        boost: boost(&o.boost)?,
                    })),
                    o.name,
                ))
            }
            "constant_score" => {
                let o: ConstantScoreOptions = options(kind, body)?;
                Ok(named(
                    Query::ConstantScore {
                        filter: Box::new(self.clause(&o.filter, next)?),
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "boosting" => {
                let o: BoostingOptions = options(kind, body)?;
                let negative_boost = o.negative_boost.value("negative_boost")?;
                if negative_boost < 0.0 {
                    return Err(EsError::illegal_argument(
                        "[boosting] query requires [negative_boost] to be non-negative",
                    ));
                }
                Ok(named(
                    Query::Boosting {
                        positive: Box::new(self.clause(&o.positive, next)?),
                        negative: Box::new(self.clause(&o.negative, next)?),
                        negative_boost: negative_boost as f32,
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "dis_max" => {
                let o: DisMaxOptions = options(kind, body)?;
                let queries = o
                    .queries
                    .iter()
                    .map(|q| self.clause(q, next))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(named(
                    Query::DisMax {
                        queries,
                        tie_breaker: o
                            .tie_breaker
                            .as_ref()
                            .map(|t| t.value("tie_breaker"))
                            .transpose()?
                            .unwrap_or(0.0) as f32,
                        boost: boost(&o.boost)?,
                    },
                    o.name,
                ))
            }
            "function_score" => self.function_score(body, next),
            "query_string" => self.query_string(body, false),
            "simple_query_string" => self.query_string(body, true),
            "geo_distance" => geo_distance(body),
            "geo_bounding_box" => geo_bounding_box(body),
            "geo_polygon" => Err(parse_error(
                "unknown query [geo_polygon]: it was removed in Elasticsearch 8, use [geo_shape] (not supported by Sluice yet) or [geo_bounding_box]",
            )),
            "nested" => self.nested(body, next),
            "has_child" | "has_parent" | "geo_shape" | "script" | "script_score" | "percolate"
            | "more_like_this" | "intervals" | "span_term" | "span_near" | "span_or"
            | "span_not" | "span_first" | "span_multi" | "span_containing" | "span_within"
            | "field_masking_span" | "distance_feature" | "rank_feature" | "wrapper" | "pinned"
            | "combined_fields" | "knn" | "terms_set" | "parent_id" | "semantic"
            | "sparse_vector" | "text_expansion" | "weighted_tokens" | "rule" => Err(parse_error(
                format!("[{kind}] query is not supported by Sluice yet"),
            )),
            other => Err(parse_error(format!("unknown query [{other}]"))),
        }
    }

    fn nested(&self, body: &Value, next: usize) -> Result<Query, EsError> {
        let o: NestedOptions = options("nested", body)?;
        let score_mode = match &o.score_mode {
            None => NestedScoreMode::Avg,
            Some(name) => NestedScoreMode::parse(name).ok_or_else(|| {
                EsError::illegal_argument(format!("No score mode for child query [{name}] found"))
            })?,
        };
        let inner_hits = o
            .inner_hits
            .as_ref()
            .map(|spec| inner_hits(spec, &o.path))
            .transpose()?;
        Ok(named(
            Query::Nested(Box::new(Nested {
                query: self.clause(&o.query, next)?,
                path: o.path,
                score_mode,
                ignore_unmapped: o.ignore_unmapped.unwrap_or(false),
                inner_hits,
                boost: boost(&o.boost)?,
            })),
            o.name,
        ))
    }

    fn match_query(
        &self,
        kind: &str,
        body: &Value,
        match_kind: MatchKind,
    ) -> Result<Query, EsError> {
        let (field, spec) = single_field(kind, body)?;
        let mut query = Match::new(&field, "");
        query.kind = match_kind;
        let name = match spec {
            Value::Object(_)
                if matches!(match_kind, MatchKind::Boolean | MatchKind::BoolPrefix) =>
            {
                let o: MatchOptions = options(kind, spec)?;
                query.text = query_text(kind, &o.query)?;
                query.operator = operator(&o.operator)?;
                query.minimum_should_match = minimum_should_match(&o.minimum_should_match)?;
                query.fuzziness = fuzziness(&o.fuzziness)?;
                query.prefix_length = o.prefix_length.unwrap_or(0);
                query.max_expansions = o.max_expansions.unwrap_or(MAX_EXPANSIONS_DEFAULT);
                query.fuzzy_transpositions = o.fuzzy_transpositions.unwrap_or(true);
                query.lenient = o.lenient.unwrap_or(false);
                query.zero_terms_query = zero_terms(&o.zero_terms_query)?;
                query.analyzer = analyzer(&o.analyzer)?;
                query.boost = boost(&o.boost)?;
                let _ = (o.fuzzy_rewrite, o.auto_generate_synonyms_phrase_query);
                if match_kind == MatchKind::BoolPrefix {
                    reject_flag(kind, "lenient", o.lenient.is_some())?;
                    reject_flag(kind, "zero_terms_query", o.zero_terms_query.is_some())?;
                }
                o.name
            }
            Value::Object(_) => {
                let o: MatchPhraseOptions = options(kind, spec)?;
                query.text = query_text(kind, &o.query)?;
                query.analyzer = analyzer(&o.analyzer)?;
                query.zero_terms_query = zero_terms(&o.zero_terms_query)?;
                query.boost = boost(&o.boost)?;
                query.kind = match match_kind {
                    MatchKind::Phrase { .. } => {
                        reject_flag(kind, "max_expansions", o.max_expansions.is_some())?;
                        MatchKind::Phrase {
                            slop: o.slop.unwrap_or(0),
                        }
                    }
                    _ => MatchKind::PhrasePrefix {
                        slop: o.slop.unwrap_or(0),
                        max_expansions: o.max_expansions.unwrap_or(MAX_EXPANSIONS_DEFAULT),
                    },
                };
                o.name
            }
            scalar => {
                query.text = query_text(kind, scalar)?;
                None
            }
        };
        Ok(named(Query::Match(Box::new(query)), name))
    }

    fn multi_match(&self, body: &Value) -> Result<Query, EsError> {
        let kind = "multi_match";
        let o: MultiMatchOptions = options(kind, body)?;
        let text = query_text(kind, &o.query)?;
        let fields = match &o.fields {
            Some(list) => list.patterns()?,
            None => Vec::new(),
        };
        let mut template = Match::new("", &text);
        template.operator = operator(&o.operator)?;
        template.minimum_should_match = minimum_should_match(&o.minimum_should_match)?;
        template.fuzziness = fuzziness(&o.fuzziness)?;
        template.prefix_length = o.prefix_length.unwrap_or(0);
        template.max_expansions = o.max_expansions.unwrap_or(MAX_EXPANSIONS_DEFAULT);
        template.fuzzy_transpositions = o.fuzzy_transpositions.unwrap_or(true);
        template.lenient = o.lenient.unwrap_or(false);
        template.zero_terms_query = zero_terms(&o.zero_terms_query)?;
        template.analyzer = analyzer(&o.analyzer)?;
        let _ = (o.fuzzy_rewrite, o.auto_generate_synonyms_phrase_query);
        let slop = o.slop.unwrap_or(0);
        let multi_type = o.kind.as_deref().unwrap_or("best_fields");
        let explicit_tie = o
            .tie_breaker
            .as_ref()
            .map(|t| t.value("tie_breaker"))
            .transpose()?
            .map(|t| t as f32);
        let (match_kind, tie_breaker, cross) = match multi_type {
            "best_fields" => (MatchKind::Boolean, explicit_tie.unwrap_or(0.0), false),
            "most_fields" => (MatchKind::Boolean, explicit_tie.unwrap_or(1.0), false),
            "cross_fields" => (MatchKind::Boolean, explicit_tie.unwrap_or(0.0), true),
            "phrase" => (
                MatchKind::Phrase { slop },
                explicit_tie.unwrap_or(0.0),
                false,
            ),
            "phrase_prefix" => (
                MatchKind::PhrasePrefix {
                    slop,
                    max_expansions: template.max_expansions,
                },
                explicit_tie.unwrap_or(0.0),
                false,
            ),
            "bool_prefix" => (MatchKind::BoolPrefix, explicit_tie.unwrap_or(1.0), false),
            other => {
                return Err(parse_error(format!(
                    "failed to parse [multi_match] query type [{other}]. unknown type."
                )));
            }
        };
        if slop > 0
            && !matches!(
                match_kind,
                MatchKind::Phrase { .. } | MatchKind::PhrasePrefix { .. }
            )
        {
            return Err(parse_error(format!(
                "[multi_match] query type [{multi_type}] does not support [slop]"
            )));
        }
        template.kind = match_kind;
        let spec = Fields {
            fields,
            query: Query::Match(Box::new(template)),
            tie_breaker,
            lenient: o.lenient.unwrap_or(false),
            boost: boost(&o.boost)?,
            quote_field_suffix: None,
        };
        let query = if cross {
            Query::CrossFields(Box::new(spec))
        } else {
            Query::Fields(Box::new(spec))
        };
        Ok(named(query, o.name))
    }

    fn function_score(&self, body: &Value, next: usize) -> Result<Query, EsError> {
        let kind = "function_score";
        let o: FunctionScoreOptions = options(kind, body)?;
        reject_flag(kind, "random_score", o.random_score.is_some())?;
        reject_flag(kind, "script_score", o.script_score.is_some())?;
        let query = match &o.query {
            Some(query) => self.clause(query, next)?,
            None => Query::match_all(),
        };
        let mut functions = Vec::new();
        // The single-function form: the function's keys beside `query`.
        let single = ScoreFunctionBody {
            filter: None,
            weight: o.weight.clone(),
            field_value_factor: o.field_value_factor.clone(),
            gauss: o.gauss.clone(),
            exp: o.exp.clone(),
            linear: o.linear.clone(),
        };
        if single.weight.is_some()
            || single.field_value_factor.is_some()
            || single.gauss.is_some()
            || single.exp.is_some()
            || single.linear.is_some()
        {
            if o.functions.is_some() {
                return Err(parse_error(
                    "failed to parse [function_score] query. already found [functions] array, now encountering [a function].",
                ));
            }
            functions.push(self.score_function(single, next)?);
        }
        for function in o.functions.iter().flatten() {
            let body: ScoreFunctionBody = options(kind, function)?;
            functions.push(self.score_function(body, next)?);
        }
        let score_mode = match o.score_mode.as_deref().unwrap_or("multiply") {
            "multiply" => ScoreMode::Multiply,
            "sum" => ScoreMode::Sum,
            "avg" => ScoreMode::Avg,
            "first" => ScoreMode::First,
            "max" => ScoreMode::Max,
            "min" => ScoreMode::Min,
            other => {
                return Err(EsError::illegal_argument(format!(
                    "illegal score_mode [{other}]"
                )));
            }
        };
        let boost_mode = match o.boost_mode.as_deref().unwrap_or("multiply") {
            "multiply" => BoostMode::Multiply,
            "replace" => BoostMode::Replace,
            "sum" => BoostMode::Sum,
            "avg" => BoostMode::Avg,
            "max" => BoostMode::Max,
            "min" => BoostMode::Min,
            other => {
                return Err(EsError::illegal_argument(format!(
                    "illegal boost_mode [{other}]"
                )));
            }
        };
        Ok(named(
            Query::FunctionScore(Box::new(FunctionScore {
                query,
                functions,
                score_mode,
                boost_mode,
                max_boost: o
                    .max_boost
                    .as_ref()
                    .map(|m| m.value("max_boost"))
                    .transpose()?
                    .map_or(f32::MAX, |m| m as f32),
                min_score: o
                    .min_score
                    .as_ref()
                    .map(|m| m.value("min_score"))
                    .transpose()?
                    .map(|m| m as f32),
                boost: boost(&o.boost)?,
            })),
            o.name,
        ))
    }

    fn score_function(
        &self,
        body: ScoreFunctionBody,
        next: usize,
    ) -> Result<ScoreFunction, EsError> {
        let filter = match &body.filter {
            Some(filter) => Some(self.clause(filter, next)?),
            None => None,
        };
        let weight = body
            .weight
            .as_ref()
            .map(|w| w.value("weight"))
            .transpose()?
            .map(|w| w as f32);
        let decays = [
            (DecayShape::Gauss, &body.gauss),
            (DecayShape::Exp, &body.exp),
            (DecayShape::Linear, &body.linear),
        ];
        let mut kinds = Vec::new();
        if let Some(factor) = &body.field_value_factor {
            let o: FieldValueFactorOptions = options("field_value_factor", factor)?;
            let modifier = match o.modifier.as_deref().unwrap_or("none") {
                "none" => Modifier::None,
                "log" => Modifier::Log,
                "log1p" => Modifier::Log1p,
                "log2p" => Modifier::Log2p,
                "ln" => Modifier::Ln,
                "ln1p" => Modifier::Ln1p,
                "ln2p" => Modifier::Ln2p,
                "square" => Modifier::Square,
                "sqrt" => Modifier::Sqrt,
                "reciprocal" => Modifier::Reciprocal,
                other => {
                    return Err(EsError::illegal_argument(format!(
                        "Illegal modifier: {other}"
                    )));
                }
            };
            kinds.push(FunctionKind::FieldValueFactor {
                field: o.field,
                factor: o
                    .factor
                    .as_ref()
                    .map(|f| f.value("factor"))
                    .transpose()?
                    .unwrap_or(1.0),
                modifier,
                missing: o.missing.as_ref().map(|m| m.value("missing")).transpose()?,
            });
        }
        for (shape, spec) in decays {
            let Some(spec) = spec else { continue };
            let Value::Object(fields) = spec else {
                return Err(parse_error("malformed score function [decay]"));
            };
            let mut field = None;
            for (key, value) in fields {
                match key.as_str() {
                    "multi_value_mode" => {
                        if value.as_str() != Some("min") {
                            return Err(parse_error(
                                "[multi_value_mode] other than min is not supported by Sluice",
                            ));
                        }
                    }
                    _ if field.is_some() => {
                        return Err(parse_error("[decay] function supports only one field"));
                    }
                    _ => field = Some((key.clone(), value)),
                }
            }
            let Some((field, value)) = field else {
                return Err(parse_error("[decay] function needs a field"));
            };
            let o: DecayOptions = options("decay", value)?;
            kinds.push(FunctionKind::Decay {
                shape,
                field,
                origin: o.origin,
                scale: o.scale,
                offset: o.offset,
                decay: o
                    .decay
                    .as_ref()
                    .map(|d| d.value("decay"))
                    .transpose()?
                    .unwrap_or(0.5),
            });
        }
        let kind = match kinds.len() {
            0 if weight.is_some() => FunctionKind::Weight,
            0 => {
                return Err(parse_error(
                    "failed to parse [function_score] query. function is missing",
                ));
            }
            1 => kinds.pop().unwrap_or(FunctionKind::Weight),
            _ => {
                return Err(parse_error(
                    "failed to parse [function_score] query. a function may only hold one score function",
                ));
            }
        };
        Ok(ScoreFunction {
            filter,
            weight,
            kind,
        })
    }

    fn query_string(&self, body: &Value, simple: bool) -> Result<Query, EsError> {
        let kind = if simple {
            "simple_query_string"
        } else {
            "query_string"
        };
        let o: QueryStringBody = options(kind, body)?;
        let text = query_text(kind, &o.query)?;
        let mut fields = match &o.fields {
            Some(list) => list.patterns()?,
            None => Vec::new(),
        };
        if let Some(default_field) = &o.default_field {
            if o.fields.is_some() {
                return Err(EsError::illegal_argument(format!(
                    "[{kind}] cannot use [fields] parameter in conjunction with [default_field]"
                )));
            }
            fields.push(FieldPattern::parse(default_field).ok_or_else(|| {
                EsError::illegal_argument(format!("invalid field [{default_field}]"))
            })?);
        }
        if simple {
            for (name, present) in [
                ("default_field", o.default_field.is_some()),
                ("quote_analyzer", o.quote_analyzer.is_some()),
                ("allow_leading_wildcard", o.allow_leading_wildcard.is_some()),
                ("phrase_slop", o.phrase_slop.is_some()),
                ("time_zone", o.time_zone.is_some()),
                ("type", o.kind.is_some()),
                ("tie_breaker", o.tie_breaker.is_some()),
                ("escape", o.escape.is_some()),
                ("fuzziness", o.fuzziness.is_some()),
                (
                    "enable_position_increments",
                    o.enable_position_increments.is_some(),
                ),
            ] {
                if present {
                    return Err(parse_error(format!("[{kind}] unsupported field [{name}]")));
                }
            }
            if let Some(flags) = &o.flags
                && !flags.eq_ignore_ascii_case("ALL")
            {
                return Err(parse_error(format!(
                    "[{kind}] flags [{flags}] are not supported by Sluice; only ALL"
                )));
            }
        } else if o.flags.is_some() {
            return Err(parse_error(format!(
                "[{kind}] query does not support [flags]"
            )));
        }
        let tie_breaker = o
            .tie_breaker
            .as_ref()
            .map(|t| t.value("tie_breaker"))
            .transpose()?
            .map(|t| t as f32);
        let tie_breaker = match o.kind.as_deref().unwrap_or("best_fields") {
            "best_fields" | "phrase" | "phrase_prefix" => tie_breaker.unwrap_or(0.0),
            "most_fields" | "bool_prefix" => tie_breaker.unwrap_or(1.0),
            other => {
                return Err(parse_error(format!(
                    "[{kind}] type [{other}] is not supported by Sluice"
                )));
            }
        };
        let _ = (
            o.rewrite,
            o.fuzzy_rewrite,
            o.auto_generate_synonyms_phrase_query,
            o.max_determinized_states,
            o.enable_position_increments,
        );
        let options = QueryStringOptions {
            fields,
            default_operator: operator(&o.default_operator)?,
            analyzer: analyzer(&o.analyzer)?,
            quote_analyzer: analyzer(&o.quote_analyzer)?,
            quote_field_suffix: o
                .quote_field_suffix
                .clone()
                .filter(|suffix| !suffix.is_empty()),
            allow_leading_wildcard: o.allow_leading_wildcard.unwrap_or(true),
            fuzziness: fuzziness(&o.fuzziness)?.unwrap_or(Fuzziness::AUTO),
            fuzzy_prefix_length: o.fuzzy_prefix_length.unwrap_or(0),
            fuzzy_max_expansions: o.fuzzy_max_expansions.unwrap_or(MAX_EXPANSIONS_DEFAULT),
            fuzzy_transpositions: o.fuzzy_transpositions.unwrap_or(true),
            phrase_slop: o.phrase_slop.unwrap_or(0),
            analyze_wildcard: o.analyze_wildcard.unwrap_or(false),
            lenient: o.lenient.unwrap_or(false),
            minimum_should_match: minimum_should_match(&o.minimum_should_match)?,
            time_zone: o.time_zone,
            tie_breaker,
        };
        let parsed = if simple {
            query_string::parse_simple(&text, &options)
        } else {
            query_string::parse(&text, &options)
        }
        .map_err(|error| query_string_error(&text, error))?;
        let query = match boost(&o.boost)? {
            b if (b - 1.0).abs() < f32::EPSILON => parsed,
            b => Query::Bool(Box::new(Bool {
                must: vec![parsed],
                boost: b,
                ..Bool::default()
            })),
        };
        Ok(named(query, o.name))
    }
}

/// A query string that does not parse, as Elasticsearch reports it.
fn query_string_error(text: &str, error: query_string::QueryStringError) -> EsError {
    EsError::bad_request(
        "query_shard_exception",
        format!("Failed to parse query [{text}]"),
    )
    .with(
        "caused_by",
        serde_json::json!({"type": "parse_exception", "reason": error.to_string()}),
    )
}

/// The URL's `q=` (Lucene syntax) with `df`, `default_operator`, `analyzer`,
/// `analyze_wildcard` and `lenient`, read as a `query_string` query; `None` without `q`.
pub(crate) fn url_query(param: impl Fn(&str) -> Option<String>) -> Result<Option<Query>, EsError> {
    let Some(text) = param("q") else {
        return Ok(None);
    };
    let flag = |name: &str| -> Result<Option<bool>, EsError> {
        match param(name).as_deref() {
            None => Ok(None),
            Some("" | "true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(other) => Err(EsError::illegal_argument(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            ))),
        }
    };
    let mut fields = Vec::new();
    if let Some(df) = param("df") {
        fields.push(
            FieldPattern::parse(&df)
                .ok_or_else(|| EsError::illegal_argument(format!("invalid field [{df}]")))?,
        );
    }
    let options = QueryStringOptions {
        fields,
        default_operator: operator(&param("default_operator"))?,
        analyzer: analyzer(&param("analyzer"))?,
        analyze_wildcard: flag("analyze_wildcard")?.unwrap_or(false),
        lenient: flag("lenient")?.unwrap_or(false),
        ..QueryStringOptions::default()
    };
    query_string::parse(&text, &options)
        .map(Some)
        .map_err(|error| query_string_error(&text, error))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreFunctionBody {
    filter: Option<Value>,
    weight: Option<Number>,
    field_value_factor: Option<Value>,
    gauss: Option<Value>,
    exp: Option<Value>,
    linear: Option<Value>,
}

fn check_scalar(kind: &str, value: &Value) -> Result<(), EsError> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(()),
        other => Err(parse_error(format!(
            "[{kind}] query does not support [{}] values",
            json_token(other)
        ))),
    }
}

fn scalar_string(kind: &str, value: &Value) -> Result<String, EsError> {
    check_scalar(kind, value)?;
    Ok(match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    })
}

fn single_field<'a>(kind: &str, body: &'a Value) -> Result<(String, &'a Value), EsError> {
    let Value::Object(fields) = body else {
        return Err(parse_error(format!(
            "[{kind}] query malformed, no start_object after query name"
        )));
    };
    let fields: Vec<(&String, &Value)> = fields.iter().collect();
    match fields.as_slice() {
        [(field, spec)] => Ok(((*field).clone(), spec)),
        [] => Err(parse_error(format!("[{kind}] query malformed, no field"))),
        _ => Err(parse_error(format!(
            "[{kind}] query doesn't support multiple fields, found [{}] and [{}]",
            fields.first().map(|f| f.0.as_str()).unwrap_or_default(),
            fields.get(1).map(|f| f.0.as_str()).unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
#[path = "query_dsl_tests.rs"]
mod tests;
