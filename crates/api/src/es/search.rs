//! `_search`, `_count` and `_msearch`: the request body (`query`, `from`, `size`, `_source`, …)
//! read into Sluice's query tree, run on each target index (under its alias filters, see
//! `targets.rs`), and the hits merged by score.

use std::time::Instant;

use serde_json::{Value, json};
use sluice_search::sort::compare_sort_values;
use sluice_search::{Query, SearchPage, SortKey};

use super::documents::SourceFilter;
use super::hit_fields::{FieldPattern, hit_fields, hit_highlight, parse_highlight, parse_patterns};
use super::sort::{parse_sort, parse_sort_param};
use super::targets::{Target, indices_options, options_from, resolve_targets};
use super::{
    EsApi, EsError, EsResult, RawSources, blocking, bool_param, int_param, ok, parse_json_body,
};
use crate::http::Request;
use crate::roles::Grants;
use sluice_node::Node;
use sluice_search::IndicesOptions;
use sluice_search::highlight::HighlightField;

/// Hits counted exactly before `total.relation` becomes `gte` (Elasticsearch's default).
pub const TRACK_TOTAL_HITS_DEFAULT: u64 = 10_000;

/// The Query DSL reader (`query_dsl.rs`), here where the search handlers have always found it.
pub(crate) use super::query_dsl::parse_query;

/// How many hits `hits.total` counts (`track_total_hits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TrackTotalHits {
    /// `false` or `-1`: no `hits.total` at all.
    Disabled,
    /// Count exactly up to this many, then say `gte`.
    UpTo(u64),
    /// `true`: count every hit.
    Accurate,
}

impl TrackTotalHits {
    /// Elasticsearch keeps the limit in a Java int: `-1` disables, `i32::MAX` is "accurate".
    fn from_number(number: i64) -> Result<TrackTotalHits, EsError> {
        match number {
            -1 => Ok(TrackTotalHits::Disabled),
            n if n < -1 => Err(EsError::illegal_argument(format!(
                "[track_total_hits] parameter must be positive or equals to -1, got {n}"
            ))),
            n if n >= i64::from(i32::MAX) => Ok(TrackTotalHits::Accurate),
            n => Ok(TrackTotalHits::UpTo(n as u64)),
        }
    }
}

pub(super) struct SearchRequest {
    query: Query,
    from: usize,
    size: usize,
    /// `_source` as the request states it (URL parameters over the body), `None` if it says
    /// nothing.
    source: Option<SourceFilter>,
    /// `stored_fields`, which turns the implicit `_source` off unless it names `_source`.
    stored_fields: Option<Vec<String>>,
    /// `None` when the request says nothing (10,000, or accurate with `rest_total_hits_as_int`).
    track_total_hits: Option<TrackTotalHits>,
    version: bool,
    seq_no_primary_term: bool,
    /// `rest_total_hits_as_int`: `hits.total` as a number, as Elasticsearch 6 showed it.
    total_as_int: bool,
    aggs: Option<super::aggs::SearchAggs>,
    /// Empty: by score.
    sort: Vec<SortKey>,
    /// Compute scores and `max_score` even when sorting by fields.
    track_scores: bool,
    /// Only hits after these sort values.
    search_after: Option<Vec<Value>>,
    /// `pit`: the point in time read, and the keep-alive it renews.
    pub(super) pit: Option<PitRef>,
    min_score: Option<f32>,
    /// Documents each index collects at most (`terminated_early`).
    terminate_after: Option<u64>,
    /// `timeout`: collection stops then, with partial results and `timed_out: true`.
    timeout_ms: Option<u64>,
    explain: bool,
    fields: Vec<FieldPattern>,
    docvalue_fields: Vec<FieldPattern>,
    /// Filters the hits after aggregations ran on the query's matches.
    post_filter: Option<Query>,
    highlight: Vec<HighlightField>,
    /// `collapse`: one hit per value of a field, with its `inner_hits`.
    collapse: Option<CollapseRequest>,
}

/// `inner_hits` one `collapse` may ask for; beyond it the request is refused (each runs one
/// search per hit shown).
pub const INNER_HITS_MAX: usize = 16;
/// `from + size` of one `inner_hits` at most (Elasticsearch's `index.max_inner_result_window`
/// default); beyond it the request is refused.
pub const INNER_RESULT_WINDOW_MAX: usize = 100;

/// The body's `collapse`.
#[derive(Debug, Clone)]
pub(super) struct CollapseRequest {
    field: String,
    inner_hits: Vec<InnerHitsRequest>,
}

/// One `inner_hits` of a `collapse`: the best documents of each group.
#[derive(Debug, Clone)]
struct InnerHitsRequest {
    name: String,
    from: usize,
    size: usize,
    sort: Vec<SortKey>,
    source: Option<SourceFilter>,
}

fn parse_collapse(value: &Value) -> Result<CollapseRequest, EsError> {
    let Value::Object(object) = value else {
        return Err(EsError::parse("[collapse] must be an object"));
    };
    let mut field = None;
    let mut inner_hits = Vec::new();
    for (key, value) in object {
        match key.as_str() {
            "field" => {
                field = Some(
                    value
                        .as_str()
                        .ok_or_else(|| EsError::parse("[collapse] [field] must be a string"))?
                        .to_string(),
                )
            }
            "inner_hits" => match value {
                Value::Array(items) => inner_hits.extend(items),
                other => inner_hits.push(other),
            },
            "max_concurrent_group_searches" => {
                // Accepted; Sluice runs the group searches one after another.
                if integer(value, key)? < 1 {
                    return Err(EsError::illegal_argument(
                        "maxConcurrentGroupRequests must be positive",
                    ));
                }
            }
            other => {
                return Err(EsError::parse(format!(
                    "[collapse] unknown field [{other}]"
                )));
            }
        }
    }
    let field = field.ok_or_else(|| EsError::parse("[collapse] requires a [field]"))?;
    if inner_hits.len() > INNER_HITS_MAX {
        return Err(EsError::illegal_argument(format!(
            "a [collapse] may have at most [{INNER_HITS_MAX}] inner_hits, got [{}]",
            inner_hits.len()
        )));
    }
    let inner_hits = inner_hits
        .into_iter()
        .map(|spec| parse_inner_hits(spec, &field))
        .collect::<Result<Vec<_>, _>>()?;
    let mut names = std::collections::HashSet::new();
    for inner in &inner_hits {
        if !names.insert(inner.name.as_str()) {
            return Err(EsError::illegal_argument(format!(
                "[inner_hits] already contains an entry for key [{}]",
                inner.name
            )));
        }
    }
    Ok(CollapseRequest { field, inner_hits })
}

fn parse_inner_hits(value: &Value, field: &str) -> Result<InnerHitsRequest, EsError> {
    let Value::Object(object) = value else {
        return Err(EsError::parse("[inner_hits] must be an object"));
    };
    let mut inner = InnerHitsRequest {
        name: field.to_string(),
        from: 0,
        size: 3,
        sort: Vec::new(),
        source: None,
    };
    for (key, value) in object {
        match key.as_str() {
            "name" => {
                inner.name = value
                    .as_str()
                    .ok_or_else(|| EsError::parse("[inner_hits] [name] must be a string"))?
                    .to_string()
            }
            "from" => inner.from = from_value(integer(value, key)?)?,
            "size" => inner.size = size_value(integer(value, key)?)?,
            "sort" => inner.sort = parse_sort(value)?,
            "_source" => inner.source = Some(SourceFilter::from_json(value)?),
            other => {
                return Err(EsError::illegal_argument(format!(
                    "[{other}] of [inner_hits] is not supported by Sluice"
                )));
            }
        }
    }
    let window = inner.from.saturating_add(inner.size);
    if window > INNER_RESULT_WINDOW_MAX {
        return Err(EsError::illegal_argument(format!(
            "Inner result window is too large, the inner hit definition's [{}]'s from + size must be less than or equal to: [{INNER_RESULT_WINDOW_MAX}] but was [{window}]. This limit can be set by changing the [index.max_inner_result_window] index level setting.",
            inner.name
        )));
    }
    Ok(inner)
}

/// The body's `pit`.
#[derive(Debug, Clone)]
pub(super) struct PitRef {
    pub id: String,
    pub keep_alive_ms: Option<u64>,
}

/// A keep-alive (`1m`) in milliseconds, as `scroll` and `keep_alive` give it.
pub(super) fn keep_alive_ms(text: &str, name: &str) -> Result<u64, EsError> {
    match sluice_search::settings::parse_time_value(text) {
        Some(Some(duration)) => Ok(duration.as_millis() as u64),
        _ => Err(EsError::parse(format!(
            "failed to parse setting [{name}] with value [{text}] as a time value: unit is missing or unrecognized"
        ))),
    }
}

fn parse_pit(value: &Value) -> Result<PitRef, EsError> {
    let Value::Object(object) = value else {
        return Err(EsError::parse("[pit] must be an object"));
    };
    let mut id = None;
    let mut keep_alive = None;
    for (key, value) in object {
        match (key.as_str(), value) {
            ("id", Value::String(text)) => id = Some(text.clone()),
            ("keep_alive", Value::String(text)) => keep_alive = Some(keep_alive_ms(text, key)?),
            (other, _) => {
                return Err(EsError::parse(format!("[pit] unknown field [{other}]")));
            }
        }
    }
    let id = id.ok_or_else(|| EsError::parse("[pit] requires an [id]"))?;
    Ok(PitRef {
        id,
        keep_alive_ms: keep_alive,
    })
}

impl SearchRequest {
    /// The `_source` each hit shows, or `None` for none (Elasticsearch's rule: an explicit
    /// `_source` wins; otherwise `stored_fields` turns it off unless it lists `_source`).
    fn source_filter(&self) -> Option<SourceFilter> {
        stored_fields_source(self.source.clone(), self.stored_fields.as_deref())
    }
}

/// Which `_source` to show given the request's `_source` and `stored_fields`, as Elasticsearch
/// decides for GET and search alike; `None` shows no `_source`.
pub(crate) fn stored_fields_source(
    source: Option<SourceFilter>,
    stored_fields: Option<&[String]>,
) -> Option<SourceFilter> {
    match stored_fields {
        Some(fields) if fields.iter().any(|f| f == "_none_") => None,
        Some(fields) => match source {
            Some(filter) => Some(filter),
            None if fields.iter().any(|f| f == "_source") => Some(SourceFilter::default()),
            None => None,
        },
        None => Some(source.unwrap_or_default()),
    }
    .filter(|filter| filter.enabled)
}

fn string_list(value: &Value, what: &str) -> Result<Vec<String>, EsError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| EsError::parse(format!("[{what}] must hold strings")))
            })
            .collect(),
        _ => Err(EsError::parse(format!(
            "[{what}] must be a string or an array of strings"
        ))),
    }
}

fn param_list(request: &Request, name: &str) -> Option<Vec<String>> {
    request.param(name).map(|list| {
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    })
}

/// A hit's `inner_hits` in Elasticsearch's shape: by name, each a `hits` section whose hits
/// carry `_nested`, the nested object as `_source` and the named clauses they match.
fn inner_hits_json(
    index: &str,
    id: &str,
    query: &Query,
    found: &[(String, sluice_search::InnerHitsResult)],
) -> Value {
    let nested_queries = query.inner_hits();
    let mut sections = serde_json::Map::new();
    for (name, result) in found {
        let spec = nested_queries.iter().find_map(|nested| {
            nested
                .inner_hits
                .as_ref()
                .filter(|spec| &spec.name == name)
                .map(|spec| (nested.path.as_str(), spec))
        });
        // Patterns may name the object's fields by full path or relative to the object.
        let relative = |patterns: &[String], path: &str| -> Vec<String> {
            patterns
                .iter()
                .map(|pattern| {
                    pattern
                        .strip_prefix(path)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .unwrap_or(pattern)
                        .to_string()
                })
                .collect()
        };
        let filter = match spec {
            Some((path, spec)) => SourceFilter {
                enabled: spec.source_enabled,
                includes: relative(&spec.source_includes, path),
                excludes: relative(&spec.source_excludes, path),
            },
            None => SourceFilter::default(),
        };
        let hits: Vec<Value> = result
            .hits
            .iter()
            .map(|hit| {
                let mut json =
                    json!({"_index": index, "_id": id, "_nested": hit.nested, "_score": hit.score});
                if let Some(source) = &hit.source
                    && let Some(filtered) = filter.apply(source.to_string().as_bytes())
                {
                    json["_source"] = filtered;
                }
                if !hit.matched_queries.is_empty() {
                    json["matched_queries"] = json!(hit.matched_queries);
                }
                json
            })
            .collect();
        sections.insert(
            name.clone(),
            json!({"hits": {"total": {"value": result.total, "relation": "eq"}, "max_score": result.max_score, "hits": hits}}),
        );
    }
    Value::Object(sections)
}

/// A negative `terminate_after` is refused; a positive one is accepted but not applied.
fn check_terminate_after(request: &Request) -> Result<(), EsError> {
    if int_param(request, "terminate_after")?.is_some_and(|n| n < 0) {
        return Err(EsError::illegal_argument("terminateAfter must be > 0"));
    }
    Ok(())
}

/// The URL's `q=` query, which replaces the body's `query` as in Elasticsearch.
pub(crate) fn url_query(request: &Request) -> Result<Option<Query>, EsError> {
    super::query_dsl::url_query(|name| request.param(name).map(str::to_string))
}

fn from_value(value: i64) -> Result<usize, EsError> {
    usize::try_from(value).map_err(|_| {
        EsError::illegal_argument(format!(
            "[from] parameter cannot be negative but was [{value}]"
        ))
    })
}

fn size_value(value: i64) -> Result<usize, EsError> {
    usize::try_from(value).map_err(|_| {
        EsError::illegal_argument(format!(
            "[size] parameter cannot be negative, found [{value}]"
        ))
    })
}

fn integer(value: &Value, what: &str) -> Result<i64, EsError> {
    value
        .as_i64()
        .ok_or_else(|| EsError::parse(format!("[{what}] must be an integer, got [{value}]")))
}

fn parse_search(request: &Request) -> Result<SearchRequest, EsError> {
    let total_as_int = bool_param(request, "rest_total_hits_as_int")?.unwrap_or(false);
    let mut search = parse_search_body(&request.body, total_as_int)?;
    super::aggs::apply_typed_keys(request, search.aggs.as_mut());
    apply_search_params(request, &mut search)?;
    check_total_as_int(&search)?;
    check_search_after(&search)?;
    check_terminate_after(request)?;
    if let Some(query) = url_query(request)? {
        search.query = query;
    }
    Ok(search)
}

/// A search body (of `_search`, or one search of `_msearch`).
fn parse_search_body(body: &[u8], total_as_int: bool) -> Result<SearchRequest, EsError> {
    let mut search = SearchRequest {
        query: Query::match_all(),
        from: 0,
        size: 10,
        source: None,
        stored_fields: None,
        track_total_hits: None,
        version: false,
        seq_no_primary_term: false,
        total_as_int,
        aggs: None,
        sort: Vec::new(),
        track_scores: false,
        search_after: None,
        pit: None,
        min_score: None,
        terminate_after: None,
        timeout_ms: None,
        explain: false,
        fields: Vec::new(),
        docvalue_fields: Vec::new(),
        post_filter: None,
        highlight: Vec::new(),
        collapse: None,
    };
    let mut rescore = false;
    if !body.iter().all(u8::is_ascii_whitespace) {
        let body = parse_json_body(body, "parsing_exception")?;
        let Value::Object(body) = body else {
            return Err(EsError::parse("request body must be an object"));
        };
        for (key, value) in &body {
            match key.as_str() {
                "query" => search.query = parse_query(value)?,
                "from" => search.from = from_value(integer(value, key)?)?,
                "size" => search.size = size_value(integer(value, key)?)?,
                "_source" => search.source = Some(SourceFilter::from_json(value)?),
                "stored_fields" => search.stored_fields = Some(string_list(value, key)?),
                "track_total_hits" => {
                    search.track_total_hits = Some(match value {
                        Value::Bool(true) => TrackTotalHits::Accurate,
                        Value::Bool(false) => TrackTotalHits::Disabled,
                        other => TrackTotalHits::from_number(integer(other, key)?)?,
                    })
                }
                "version" => search.version = value.as_bool().unwrap_or(false),
                "seq_no_primary_term" => {
                    search.seq_no_primary_term = value.as_bool().unwrap_or(false)
                }
                "terminate_after" => {
                    let limit = integer(value, key)?;
                    if limit < 0 {
                        return Err(EsError::illegal_argument("terminateAfter must be > 0"));
                    }
                    search.terminate_after = (limit > 0).then_some(limit as u64);
                }
                "timeout" => {
                    let text = value.as_str().ok_or_else(|| {
                        EsError::parse(format!("[timeout] must be a time value, got [{value}]"))
                    })?;
                    search.timeout_ms = Some(keep_alive_ms(text, "timeout")?);
                }
                "explain" => {
                    search.explain = value.as_bool().ok_or_else(|| {
                        EsError::parse(format!("[explain] must be a boolean, got [{value}]"))
                    })?
                }
                "min_score" => {
                    search.min_score = Some(value.as_f64().ok_or_else(|| {
                        EsError::parse(format!("[min_score] must be a number, got [{value}]"))
                    })? as f32)
                }
                "aggs" | "aggregations" => search.aggs = Some(super::aggs::parse(value)?),
                "sort" => search.sort = parse_sort(value)?,
                "track_scores" => {
                    search.track_scores = value.as_bool().ok_or_else(|| {
                        EsError::parse(format!("[track_scores] must be a boolean, got [{value}]"))
                    })?
                }
                "search_after" => match value {
                    Value::Array(values) => search.search_after = Some(values.clone()),
                    other => {
                        return Err(EsError::parse(format!(
                            "[search_after] must be an array, got [{other}]"
                        )));
                    }
                },
                "pit" => search.pit = Some(parse_pit(value)?),
                "fields" => search.fields = parse_patterns(value, key)?,
                "post_filter" => search.post_filter = Some(parse_query(value)?),
                "docvalue_fields" => search.docvalue_fields = parse_patterns(value, key)?,
                "highlight" => search.highlight = parse_highlight(value)?,
                "collapse" => search.collapse = Some(parse_collapse(value)?),
                "rescore" => rescore = true,
                "suggest" | "script_fields" | "runtime_mappings" => {
                    return Err(EsError::illegal_argument(format!(
                        "[{key}] is not supported by Sluice yet"
                    )));
                }
                other => {
                    return Err(EsError::parse(format!(
                        "Unknown key for a START_OBJECT in [{other}]."
                    )));
                }
            }
        }
    }
    if rescore {
        return Err(EsError::illegal_argument(if search.collapse.is_some() {
            "cannot use `collapse` in conjunction with `rescore`"
        } else {
            "[rescore] is not supported by Sluice yet"
        }));
    }
    Ok(search)
}

/// The URL parameters of `_search`, applied after the body: they win over it, as in
/// Elasticsearch; `-1` means "not set" for `from` and `size`.
fn apply_search_params(request: &Request, search: &mut SearchRequest) -> Result<(), EsError> {
    if let Some(from) = int_param(request, "from")?.filter(|n| *n != -1) {
        search.from = from_value(from)?;
    }
    if let Some(size) = int_param(request, "size")?.filter(|n| *n != -1) {
        search.size = size_value(size)?;
    }
    if ["_source", "_source_includes", "_source_excludes"]
        .iter()
        .any(|name| request.param(name).is_some())
    {
        search.source = Some(SourceFilter::from_params(request));
    }
    if let Some(fields) = param_list(request, "stored_fields") {
        search.stored_fields = Some(fields);
    }
    if let Some(version) = bool_param(request, "version")? {
        search.version = version;
    }
    if let Some(sort) = request.param("sort") {
        search.sort = parse_sort_param(sort)?;
    }
    if let Some(limit) = int_param(request, "terminate_after")?.filter(|n| *n > 0) {
        search.terminate_after = Some(limit as u64);
    }
    if let Some(fields) = param_list(request, "docvalue_fields") {
        search.docvalue_fields = parse_patterns(&json!(fields), "docvalue_fields")?;
    }
    if let Some(timeout) = request.param("timeout") {
        search.timeout_ms = Some(keep_alive_ms(timeout, "timeout")?);
    }
    if let Some(explain) = bool_param(request, "explain")? {
        search.explain = explain;
    }
    if let Some(min_score) = request.param("min_score") {
        search.min_score = Some(min_score.parse::<f32>().map_err(|_| {
            EsError::parse(format!("[min_score] must be a number, got [{min_score}]"))
        })?);
    }
    if let Some(track_scores) = bool_param(request, "track_scores")? {
        search.track_scores = track_scores;
    }
    if let Some(seq_no) = bool_param(request, "seq_no_primary_term")? {
        search.seq_no_primary_term = seq_no;
    }
    match request.param("track_total_hits") {
        None => {}
        Some("true") | Some("") => search.track_total_hits = Some(TrackTotalHits::Accurate),
        Some("false") => search.track_total_hits = Some(TrackTotalHits::Disabled),
        Some(_) => {
            let number = int_param(request, "track_total_hits")?.unwrap_or_default();
            search.track_total_hits = Some(TrackTotalHits::from_number(number)?);
        }
    }
    Ok(())
}

/// `search_after` pages from the start of what follows its values; `_shard_doc` needs a point
/// in time.
fn check_search_after(search: &SearchRequest) -> Result<(), EsError> {
    if let Some(collapse) = &search.collapse
        && search.search_after.is_some()
    {
        let same_field = matches!(
            search.sort.as_slice(),
            [SortKey::Field(sort)] if sort.field == collapse.field
        );
        if !same_field {
            return Err(EsError::illegal_argument(
                "collapse field and sort field must be the same when use `collapse` in conjunction with `search_after`",
            ));
        }
    }
    if search.search_after.is_some() && search.from > 0 {
        return Err(EsError::validation(
            "`from` parameter must be set to 0 when `search_after` is used.",
        ));
    }
    if search.pit.is_none()
        && search
            .sort
            .iter()
            .any(|key| matches!(key, SortKey::ShardDoc(_)))
    {
        return Err(EsError::illegal_argument(
            "[_shard_doc] sort field cannot be used without [point in time]",
        ));
    }
    Ok(())
}

/// `rest_total_hits_as_int` needs an exact total.
fn check_total_as_int(search: &SearchRequest) -> Result<(), EsError> {
    if search.total_as_int
        && let Some(TrackTotalHits::UpTo(limit)) = search.track_total_hits
    {
        return Err(EsError::illegal_argument(format!(
            "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got {limit}"
        )));
    }
    Ok(())
}

pub(super) async fn search(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let started = Instant::now();
    let search = parse_search(request)?;
    if let Some(pit) = search.pit.clone() {
        return super::readers::search_pit(api, request, target, search, pit, started).await;
    }
    if let Some(scroll) = request.param("scroll") {
        if search.collapse.is_some() {
            return Err(EsError::illegal_argument(
                "cannot use `collapse` in a scroll context",
            ));
        }
        let keep_alive = keep_alive_ms(scroll, "scroll")?;
        return super::readers::open_scroll(api, request, target, search, keep_alive, started)
            .await;
    }
    let options = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let targets = resolve_targets(api, request, super::access::SEARCH, target, options)?;
    let _slot = api.slot(&api.search_slots, "search")?;
    let pretty = super::is_pretty(request);
    blocking(move || {
        let mut raw = RawSources::default();
        let view = View::live(&search);
        let (body, _) = run_search(&targets, &search, &view, started, &mut raw)?;
        Ok(raw.render(hyper::StatusCode::OK, &body, pretty))
    })
    .await
}

/// What one run of a search reads and how it sorts: the live indices or a reader's snapshots
/// (one per target), the sort it runs (the request's, plus the `_shard_doc` tiebreaker for
/// readers) and where it starts.
pub(super) struct View<'a> {
    pub snapshots: Option<&'a [sluice_search::SearcherSnapshot]>,
    pub sort: Vec<SortKey>,
    pub search_after: Option<&'a [Value]>,
    /// How many of their sort values hits show (a scroll's internal tiebreaker stays hidden).
    pub shown_sort_values: usize,
}

impl<'a> View<'a> {
    pub fn live(search: &'a SearchRequest) -> View<'a> {
        View {
            snapshots: None,
            sort: search.sort.clone(),
            search_after: search.search_after.as_deref(),
            shown_sort_values: search.sort.len(),
        }
    }
}

impl SearchRequest {
    /// The request's sort with Elasticsearch's implicit `_shard_doc` tiebreaker (ascending)
    /// unless it has one; by score when it gives none.
    pub(super) fn sort_with_tiebreaker(&self) -> Vec<SortKey> {
        let mut sort = if self.sort.is_empty() {
            vec![SortKey::Score(sluice_search::SortOrder::Desc)]
        } else {
            self.sort.clone()
        };
        if !sort.iter().any(|key| matches!(key, SortKey::ShardDoc(_))) {
            sort.push(SortKey::ShardDoc(sluice_search::SortOrder::Asc));
        }
        sort
    }

    pub(super) fn from(&self) -> usize {
        self.from
    }

    pub(super) fn search_after(&self) -> Option<&[Value]> {
        self.search_after.as_deref()
    }

    /// How many sort keys the request gives.
    pub(super) fn sort_len(&self) -> usize {
        self.sort.len()
    }

    /// Aggregations run on a scroll's first page only.
    pub(super) fn without_aggs(mut self) -> SearchRequest {
        self.aggs = None;
        self
    }
}

/// Runs one search on its targets; the sources of the hits go through `raw`. Returns the body
/// and the sort values of the last hit shown.
pub(super) fn run_search(
    targets: &[Target],
    search: &SearchRequest,
    view: &View<'_>,
    started: Instant,
    raw: &mut RawSources,
) -> Result<(Value, Option<Vec<Value>>), EsError> {
    let window = search.from.saturating_add(search.size);
    let mut total = 0u64;
    let mut scored = true;
    let mut terminated_early = false;
    let mut timed_out = false;
    let mut max_score: Option<f32> = None;
    let mut hits = Vec::new();
    // Indices that cannot run the sort (a field they do not map): Elasticsearch's shard
    // failures, an error only when no index could run it.
    let mut failures = Vec::new();
    for (position, target) in targets.iter().enumerate() {
        let mut scoped = target.scope(&search.query);
        if let Some(post_filter) = &search.post_filter {
            scoped = scoped.with_alias_filters(Some(vec![post_filter.clone()]));
        }
        let page = SearchPage {
            query: &scoped,
            from: 0,
            size: window,
            sort: &view.sort,
            track_scores: search.track_scores,
            search_after: view.search_after,
            snapshot: view.snapshots.and_then(|snapshots| snapshots.get(position)),
            shard_index: position as u32,
            min_score: search.min_score,
            terminate_after: search.terminate_after,
            deadline: search
                .timeout_ms
                .map(|ms| started + std::time::Duration::from_millis(ms)),
            explain: search.explain,
            collapse: search.collapse.as_ref().map(|c| c.field.as_str()),
        };
        let found = match target.index.search_page(&page) {
            Ok(found) => found,
            Err(error @ sluice_search::SearchError::QueryShard { .. }) if targets.len() > 1 => {
                failures.push((target.index.name().to_string(), EsError::from(error)));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        total += found.total;
        scored &= found.scored;
        terminated_early |= found.terminated_early;
        timed_out |= found.timed_out;
        max_score = match (max_score, found.max_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        hits.extend(
            found
                .hits
                .into_iter()
                .map(|hit| (target.index.clone(), hit)),
        );
    }
    if !targets.is_empty()
        && failures.len() == targets.len()
        && let Some((_, error)) = failures.pop()
    {
        return Err(error);
    }
    let sorted = !view.sort.is_empty() || view.search_after.is_some();
    if sorted {
        // Merge by sort values; a stable sort keeps index order, then document order, on ties.
        let by_score = [SortKey::Score(sluice_search::SortOrder::Desc)];
        let keys = if view.sort.is_empty() {
            &by_score[..]
        } else {
            &view.sort[..]
        };
        hits.sort_by(|(_, a), (_, b)| compare_sort_values(keys, &a.sort, &b.sort));
    } else {
        // Merge the indices' hits by score; ties keep index order, then document order.
        hits.sort_by(|(_, a), (_, b)| b.score.total_cmp(&a.score));
    }
    if search.collapse.is_some() {
        // Each index kept its best hit per group; across indices the first in order wins.
        let mut seen = std::collections::HashSet::new();
        hits.retain(|(_, hit)| seen.insert(hit.collapse.as_ref().map(Value::to_string)));
    }
    let max_score = if scored { max_score } else { None };
    let source_filter = search.source_filter();
    let last_sort = hits
        .iter()
        .skip(search.from)
        .take(search.size)
        .next_back()
        .map(|(_, hit)| hit.sort.iter().map(|v| v.to_json()).collect());
    let page: Vec<Value> = hits
        .into_iter()
        .skip(search.from)
        .take(search.size)
        .map(|(index_ref, hit)| {
            let index = index_ref.name();
            let score = if scored {
                json!(hit.score)
            } else {
                Value::Null
            };
            let mut json = if search.explain {
                json!({"_shard": format!("[{index}][0]"), "_node": "sluice", "_index": index, "_id": hit.id, "_score": score})
            } else {
                json!({"_index": index, "_id": hit.id, "_score": score})
            };
            if search.version {
                json["_version"] = json!(hit.version);
            }
            if search.seq_no_primary_term {
                json["_seq_no"] = json!(hit.seq_no);
                json["_primary_term"] = json!(1);
            }
            if let (Some(filter), Some(stored)) = (&source_filter, &hit.source)
                && let Some(source) = filter.render(stored, raw)
            {
                json["_source"] = source;
            }
            if sorted && view.shown_sort_values > 0 {
                json["sort"] = Value::Array(
                    hit.sort
                        .iter()
                        .take(view.shown_sort_values)
                        .map(|v| v.to_json())
                        .collect(),
                );
            }
            if !hit.matched_queries.is_empty() {
                json["matched_queries"] = json!(hit.matched_queries);
            }
            if !hit.inner_hits.is_empty() {
                json["inner_hits"] = inner_hits_json(index, &hit.id, &search.query, &hit.inner_hits);
            }
            if let Some(source) = &hit.source
                && let Some(fields) = hit_fields(
                    &index_ref,
                    &hit.id,
                    source,
                    &search.fields,
                    &search.docvalue_fields,
                )?
            {
                json["fields"] = fields;
            }
            if let Some(source) = &hit.source
                && let Some(highlight) =
                    hit_highlight(&index_ref, &search.query, source, &search.highlight)
            {
                json["highlight"] = highlight;
            }
            if let Some(explanation) = hit.explanation {
                json["_explanation"] = explanation;
            }
            if let Some(collapse) = &search.collapse {
                let value = hit.collapse.clone().unwrap_or(Value::Null);
                if !json["fields"].is_object() {
                    json["fields"] = json!({});
                }
                json["fields"][&collapse.field] = json!([value]);
                if !collapse.inner_hits.is_empty() {
                    let mut inner = serde_json::Map::new();
                    for spec in &collapse.inner_hits {
                        inner.insert(
                            spec.name.clone(),
                            inner_hits(targets, search, view, &collapse.field, &value, spec, raw)?,
                        );
                    }
                    json["inner_hits"] = Value::Object(inner);
                }
            }
            Ok(json)
        })
        .collect::<Result<_, EsError>>()?;
    let tracking = search.track_total_hits.unwrap_or(if search.total_as_int {
        TrackTotalHits::Accurate
    } else {
        TrackTotalHits::UpTo(TRACK_TOTAL_HITS_DEFAULT)
    });
    let total_json = match tracking {
        TrackTotalHits::Disabled if search.total_as_int => Some(json!(-1)),
        TrackTotalHits::Disabled => None,
        _ if search.total_as_int => Some(json!(total)),
        TrackTotalHits::UpTo(limit) if total > limit => {
            Some(json!({"value": limit, "relation": "gte"}))
        }
        _ => Some(json!({"value": total, "relation": "eq"})),
    };
    let hits_json = match total_json {
        Some(total) => json!({"total": total, "max_score": max_score, "hits": page}),
        None => json!({"max_score": max_score, "hits": page}),
    };
    let shards = targets.len();
    let mut shards_json = json!({"total": shards, "successful": shards - failures.len(), "skipped": 0, "failed": failures.len()});
    if !failures.is_empty() {
        shards_json["failures"] = failures
            .iter()
            .map(|(index, error)| {
                json!({"shard": 0, "index": index, "node": "sluice", "reason": error.error_object()})
            })
            .collect();
    }
    let mut body = json!({
        "took": started.elapsed().as_millis() as u64,
        "timed_out": timed_out,
        "_shards": shards_json,
        "hits": hits_json,
    });
    if terminated_early && let Value::Object(object) = &mut body {
        // Elasticsearch shows it after `timed_out`.
        let mut ordered = serde_json::Map::new();
        for (key, value) in std::mem::take(object) {
            let after_timed_out = key == "timed_out";
            ordered.insert(key, value);
            if after_timed_out {
                ordered.insert("terminated_early".into(), json!(true));
            }
        }
        *object = ordered;
    }
    if let Some(aggs) = &search.aggs {
        body["aggregations"] = super::aggs::run(targets, &search.query, aggs, raw)?;
        body["took"] = json!(started.elapsed().as_millis() as u64);
    }
    Ok((body, last_sort))
}

/// The `inner_hits` of one collapsed group: the search's query restricted to the group's value
/// (or to documents without the field), over every target, as Elasticsearch's expand phase.
fn inner_hits(
    targets: &[Target],
    search: &SearchRequest,
    view: &View<'_>,
    field: &str,
    value: &Value,
    spec: &InnerHitsRequest,
    raw: &mut RawSources,
) -> Result<Value, EsError> {
    use sluice_search::query::Bool;
    let mut group = Bool {
        must: vec![search.query.clone()],
        boost: 1.0,
        ..Bool::default()
    };
    if value.is_null() {
        group.must_not.push(Query::Exists {
            field: field.to_string(),
            boost: 1.0,
        });
    } else {
        group.filter.push(Query::Term {
            field: field.to_string(),
            value: value.clone(),
            case_insensitive: false,
            boost: 1.0,
        });
    }
    let query = Query::Bool(Box::new(group));
    let window = spec.from.saturating_add(spec.size);
    let (mut total, mut max_score, mut scored) = (0u64, None::<f32>, true);
    let mut hits = Vec::new();
    for (position, target) in targets.iter().enumerate() {
        let scoped = target.scope(&query);
        let page = SearchPage {
            sort: &spec.sort,
            snapshot: view.snapshots.and_then(|snapshots| snapshots.get(position)),
            shard_index: position as u32,
            ..SearchPage::new(&scoped, window)
        };
        let found = target.index.search_page(&page)?;
        total += found.total;
        scored &= found.scored;
        max_score = match (max_score, found.max_score) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        hits.extend(
            found
                .hits
                .into_iter()
                .map(|hit| (target.index.clone(), hit)),
        );
    }
    if spec.sort.is_empty() {
        hits.sort_by(|(_, a), (_, b)| b.score.total_cmp(&a.score));
    } else {
        hits.sort_by(|(_, a), (_, b)| compare_sort_values(&spec.sort, &a.sort, &b.sort));
    }
    let filter = spec
        .source
        .clone()
        .or_else(|| search.source_filter())
        .filter(|filter| filter.enabled);
    let rendered: Vec<Value> = hits
        .into_iter()
        .skip(spec.from)
        .take(spec.size)
        .map(|(index, hit)| {
            let score = if scored {
                json!(hit.score)
            } else {
                Value::Null
            };
            let mut json = json!({"_index": index.name(), "_id": hit.id, "_score": score});
            if let (Some(filter), Some(stored)) = (&filter, &hit.source)
                && let Some(source) = filter.render(stored, raw)
            {
                json["_source"] = source;
            }
            if !spec.sort.is_empty() {
                json["sort"] = Value::Array(hit.sort.iter().map(|v| v.to_json()).collect());
            }
            json
        })
        .collect();
    let max_score = if scored { max_score } else { None };
    Ok(json!({"hits": {
        "total": {"value": total, "relation": "eq"},
        "max_score": max_score,
        "hits": rendered,
    }}))
}

/// Searches one `_msearch` request may hold; beyond it, the request is refused.
pub const MSEARCH_SEARCHES_MAX: usize = 1000;

/// One search of `_msearch`: its targets and options from its header line, its body, or the
/// error that fails this search alone.
struct MultiSearchItem {
    expression: Option<String>,
    options: IndicesOptions,
    search: SearchRequest,
}

/// Keys an `_msearch` header line may hold; the others are refused, as Elasticsearch does.
const MSEARCH_HEADER_KEYS: &[&str] = &[
    "index",
    "indices",
    "search_type",
    "preference",
    "routing",
    "request_cache",
    "ignore_unavailable",
    "ignore_throttled",
    "allow_no_indices",
    "expand_wildcards",
    "ccs_minimize_roundtrips",
    "allow_partial_search_results",
];

/// Reads the NDJSON of `_msearch`: header and body lines in pairs. A malformed line fails the
/// whole request (as in Elasticsearch, whose REST layer parses every body first).
fn parse_msearch(
    body: &[u8],
    default_expression: Option<&str>,
    defaults: IndicesOptions,
    total_as_int: bool,
) -> Result<Vec<MultiSearchItem>, EsError> {
    // Blank lines carry nothing (a leading newline, the final one), as in `_bulk`.
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .collect();
    let mut items = Vec::new();
    for (position, pair) in lines.chunks(2).enumerate() {
        if items.len() >= MSEARCH_SEARCHES_MAX {
            return Err(EsError::illegal_argument(format!(
                "an _msearch request may hold at most [{MSEARCH_SEARCHES_MAX}] searches"
            )));
        }
        // The header is read first, so a malformed one is named as such even when alone.
        let (header, body) = match pair {
            [header, body] => (parse_json_body(header, "parsing_exception")?, Some(*body)),
            [header] => (parse_json_body(header, "parsing_exception")?, None),
            _ => break,
        };
        let Some(body) = body else {
            return Err(EsError::illegal_argument(format!(
                "search [{position}] has a header line but no body line"
            )));
        };
        let Value::Object(header) = header else {
            return Err(EsError::illegal_argument(format!(
                "the header of search [{position}] must be an object"
            )));
        };
        for key in header.keys() {
            if !MSEARCH_HEADER_KEYS.contains(&key.as_str()) {
                return Err(EsError::illegal_argument(format!(
                    "key [{key}] is not supported in the metadata section"
                )));
            }
        }
        let text = |v: &Value| -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                Value::Bool(b) => Some(b.to_string()),
                Value::Array(items) => Some(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
                _ => None,
            }
        };
        let fields: std::collections::HashMap<&str, String> = header
            .iter()
            .filter_map(|(k, v)| text(v).map(|t| (k.as_str(), t)))
            .collect();
        let options = options_from(|name| fields.get(name).map(String::as_str), defaults)?;
        let expression = fields
            .get("index")
            .or_else(|| fields.get("indices"))
            .cloned()
            .or_else(|| default_expression.map(str::to_string));
        let search = parse_search_body(body, total_as_int)?;
        check_total_as_int(&search)?;
        check_search_after(&search)?;
        items.push(MultiSearchItem {
            expression,
            options,
            search,
        });
    }
    if items.is_empty() {
        return Err(EsError::validation("no requests added"));
    }
    Ok(items)
}

/// The expression one search of an `_msearch` may read: its own, narrowed to what `grants`
/// allow (`Err`: it names an index explicitly that they do not).
fn authorized_expression(
    node: &Node,
    grants: Option<&Grants>,
    item: &MultiSearchItem,
) -> Result<Option<String>, EsError> {
    let expression = item.expression.clone();
    let Some(grants) = grants else {
        return Ok(expression);
    };
    Ok(super::access::narrow(
        node,
        grants,
        super::access::SEARCH,
        expression.as_deref(),
        item.options,
    )?
    .or(expression))
}

/// `_msearch`: every search answers in `responses`, in order, each with its `status`; a search
/// whose targets or execution fail carries its error there and the others still run.
pub(super) async fn msearch(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let started = Instant::now();
    let defaults = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let total_as_int = bool_param(request, "rest_total_hits_as_int")?.unwrap_or(false);
    let typed_keys = matches!(request.param("typed_keys"), Some("true" | ""));
    let pretty = super::is_pretty(request);
    let _slot = api.slot(&api.search_slots, "msearch")?;
    let body = request.body.clone();
    let target = target.map(str::to_string);
    let node = api.node.clone();
    let grants = request.grants.clone();
    blocking(move || {
        // Parsing a large NDJSON body is CPU work: it runs here, off the async threads.
        let mut items = parse_msearch(&body, target.as_deref(), defaults, total_as_int)?;
        for item in &mut items {
            if let Some(aggs) = item.search.aggs.as_mut() {
                aggs.set_typed_keys(typed_keys);
            }
        }
        let mut raw = RawSources::default();
        let mut responses = Vec::with_capacity(items.len());
        for item in items {
            let one_started = Instant::now();
            let grants = grants.as_deref();
            let answer = authorized_expression(&node, grants, &item)
                .and_then(|expression| {
                    super::targets::resolve_with(
                        &node,
                        grants,
                        super::access::SEARCH,
                        expression.as_deref(),
                        item.options,
                    )
                })
                .and_then(|targets| {
                    if item.search.pit.is_some() {
                        return Err(EsError::illegal_argument(
                            "[pit] in _msearch is not supported by Sluice yet",
                        ));
                    }
                    let view = View::live(&item.search);
                    run_search(&targets, &item.search, &view, one_started, &mut raw)
                        .map(|(body, _)| body)
                });
            responses.push(match answer {
                Ok(mut response) => {
                    response["status"] = json!(200);
                    response
                }
                Err(error) => {
                    json!({"error": error.error_object(), "status": error.status.as_u16()})
                }
            });
        }
        let body = json!({
            "took": started.elapsed().as_millis() as u64,
            "responses": responses,
        });
        Ok(raw.render(hyper::StatusCode::OK, &body, pretty))
    })
    .await
}

pub(super) async fn count(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let mut query = Query::match_all();
    if !request.body.is_empty() {
        let body = parse_json_body(&request.body, "parsing_exception")?;
        let Value::Object(body) = body else {
            return Err(EsError::parse("request body must be an object"));
        };
        for (key, value) in &body {
            match key.as_str() {
                "query" => query = parse_query(value)?,
                other => {
                    return Err(EsError::parse(format!(
                        "request does not support [{other}]"
                    )));
                }
            }
        }
    }
    check_terminate_after(request)?;
    if let Some(url) = url_query(request)? {
        query = url;
    }
    let options = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let targets = resolve_targets(api, request, super::access::SEARCH, target, options)?;
    let _slot = api.slot(&api.search_slots, "count")?;
    let shards = targets.len();
    let count = blocking(move || {
        let mut count = 0;
        for target in &targets {
            count += target.index.count(&target.scope(&query))?;
        }
        Ok(count)
    })
    .await?;
    ok(
        request,
        json!({"count": count, "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msearch_lines_pair_up_and_bad_lines_fail_the_request() {
        let defaults = IndicesOptions::LENIENT_EXPAND_OPEN;
        let items = parse_msearch(
            b"\n{\"index\":\"a\",\"ignore_unavailable\":true}\n{\"size\":1}\r\n{}\n{}\n",
            Some("b"),
            defaults,
            false,
        )
        .unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].expression.as_deref(), Some("a"));
        assert!(items[0].options.ignore_unavailable);
        assert_eq!(items[0].search.size, 1);
        assert_eq!(items[1].expression.as_deref(), Some("b"));
        let reason = |body: &[u8]| match parse_msearch(body, None, defaults, false) {
            Ok(_) => String::new(),
            Err(error) => error.reason,
        };
        assert_eq!(
            reason(b"{}\n"),
            "search [0] has a header line but no body line"
        );
        assert_eq!(
            reason(b"{\"bogus\":1}\n{}\n"),
            "key [bogus] is not supported in the metadata section"
        );
        assert_eq!(
            reason(b"{}\n{\"query\":{\"nope\":{}}}\n"),
            "unknown query [nope]"
        );
        assert!(parse_msearch(b"", None, defaults, false).is_err());
    }
}
