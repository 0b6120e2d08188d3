//! `_search` and `_count`: the request body (`query`, `from`, `size`, `_source`, …) read into
//! Sluice's query tree, run on each target index, and the hits merged by score.

use std::time::Instant;

use serde_json::{Value, json};
use sluice_search::Query;

use super::documents::SourceFilter;
use super::{
    EsApi, EsError, EsResult, IndicesOptions, blocking, bool_param, int_param, ok, parse_json_body,
};
use crate::http::Request;

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

struct SearchRequest {
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

/// A negative `terminate_after` is refused; a positive one is accepted but not applied.
fn check_terminate_after(request: &Request) -> Result<(), EsError> {
    if int_param(request, "terminate_after")?.is_some_and(|n| n < 0) {
        return Err(EsError::illegal_argument("terminateAfter must be > 0"));
    }
    Ok(())
}

fn refuse_query_string(request: &Request) -> Result<(), EsError> {
    if request.param("q").is_some() {
        return Err(EsError::illegal_argument(
            "[q] query strings are not supported by Sluice yet; send a query body",
        ));
    }
    Ok(())
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
    let mut search = SearchRequest {
        query: Query::match_all(),
        from: 0,
        size: 10,
        source: None,
        stored_fields: None,
        track_total_hits: None,
        version: false,
        seq_no_primary_term: false,
        total_as_int: bool_param(request, "rest_total_hits_as_int")?.unwrap_or(false),
    };
    if !request.body.is_empty() {
        let body = parse_json_body(&request.body, "parsing_exception")?;
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
                "terminate_after" if integer(value, key)? < 0 => {
                    return Err(EsError::illegal_argument("terminateAfter must be > 0"));
                }
                "timeout" | "explain" | "min_score" | "terminate_after" => {}
                "sort" | "aggs" | "aggregations" | "highlight" | "search_after" | "collapse"
                | "post_filter" | "suggest" | "fields" | "script_fields" | "docvalue_fields"
                | "pit" | "runtime_mappings" | "rescore" => {
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
    // URL parameters are applied after the body and win over it, as in Elasticsearch; `-1`
    // means "not set" for `from` and `size`.
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
    if search.total_as_int
        && let Some(TrackTotalHits::UpTo(limit)) = search.track_total_hits
    {
        return Err(EsError::illegal_argument(format!(
            "[rest_total_hits_as_int] cannot be used if the tracking of total hits is not accurate, got {limit}"
        )));
    }
    check_terminate_after(request)?;
    refuse_query_string(request)?;
    Ok(search)
}

pub(super) async fn search(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let started = Instant::now();
    let search = parse_search(request)?;
    let indices = api.resolve_with(target, IndicesOptions::from_request(request)?)?;
    let _slot = api.slot(&api.search_slots, "search")?;
    let pretty = super::is_pretty(request);
    blocking(move || {
        let mut raw = super::RawSources::default();
        let window = search.from + search.size;
        let mut total = 0u64;
        let mut hits = Vec::new();
        for index in &indices {
            let found = index.search(&search.query, 0, window)?;
            total += found.total;
            hits.extend(
                found
                    .hits
                    .into_iter()
                    .map(|hit| (index.name().to_string(), hit)),
            );
        }
        // Merge the indices' hits by score; ties keep index order, then document order.
        hits.sort_by(|(_, a), (_, b)| b.score.total_cmp(&a.score));
        let max_score = hits.first().map(|(_, h)| h.score);
        let source_filter = search.source_filter();
        let page: Vec<Value> = hits
            .into_iter()
            .skip(search.from)
            .take(search.size)
            .map(|(index, hit)| {
                let mut json = json!({"_index": index, "_id": hit.id, "_score": hit.score});
                if search.version {
                    json["_version"] = json!(hit.version);
                }
                if search.seq_no_primary_term {
                    json["_seq_no"] = json!(hit.seq_no);
                    json["_primary_term"] = json!(1);
                }
                if let (Some(filter), Some(stored)) = (&source_filter, &hit.source)
                    && let Some(source) = filter.render(stored, &mut raw)
                {
                    json["_source"] = source;
                }
                if !hit.matched_queries.is_empty() {
                    json["matched_queries"] = json!(hit.matched_queries);
                }
                json
            })
            .collect();
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
        let shards = indices.len();
        let body = json!({
            "took": started.elapsed().as_millis() as u64,
            "timed_out": false,
            "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0},
            "hits": hits_json,
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
    refuse_query_string(request)?;
    let indices = api.resolve_with(target, IndicesOptions::from_request(request)?)?;
    let _slot = api.slot(&api.search_slots, "count")?;
    let shards = indices.len();
    let count = blocking(move || {
        let mut count = 0;
        for index in &indices {
            count += index.count(&query)?;
        }
        Ok(count)
    })
    .await?;
    ok(
        request,
        json!({"count": count, "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0}}),
    )
}
