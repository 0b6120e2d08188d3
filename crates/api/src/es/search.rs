//! `_search` and `_count`: the request body (`query`, `from`, `size`, `_source`, …) read into
//! Sluice's query tree, run on each target index, and the hits merged by score.

use std::time::Instant;

use serde_json::{Value, json};
use sluice_search::Query;

use super::documents::SourceFilter;
use super::{EsApi, EsError, EsResult, blocking, ok, parse_json_body, u64_param};
use crate::http::Request;

/// Hits counted exactly before `total.relation` becomes `gte` (Elasticsearch's default).
pub const TRACK_TOTAL_HITS_DEFAULT: u64 = 10_000;

fn number(value: &Value, what: &str) -> Result<u64, EsError> {
    value.as_u64().ok_or_else(|| {
        EsError::parse(format!(
            "[{what}] must be a non-negative integer, got [{value}]"
        ))
    })
}

/// The Query DSL reader (`query_dsl.rs`), here where the search handlers have always found it.
pub(crate) use super::query_dsl::parse_query;

struct SearchRequest {
    query: Query,
    from: usize,
    size: usize,
    source: SourceFilter,
    track_total_hits: Option<u64>,
    version: bool,
    seq_no_primary_term: bool,
}

fn parse_search(request: &Request) -> Result<SearchRequest, EsError> {
    let mut search = SearchRequest {
        query: Query::match_all(),
        from: 0,
        size: 10,
        source: SourceFilter::from_params(request),
        track_total_hits: Some(TRACK_TOTAL_HITS_DEFAULT),
        version: false,
        seq_no_primary_term: false,
    };
    if !request.body.is_empty() {
        let body = parse_json_body(&request.body, "parsing_exception")?;
        let Value::Object(body) = body else {
            return Err(EsError::parse("request body must be an object"));
        };
        for (key, value) in &body {
            match key.as_str() {
                "query" => search.query = parse_query(value)?,
                "from" => search.from = number(value, key)? as usize,
                "size" => search.size = number(value, key)? as usize,
                "_source" => search.source = SourceFilter::from_json(value)?,
                "track_total_hits" => {
                    search.track_total_hits = match value {
                        Value::Bool(true) => None,
                        Value::Bool(false) => Some(0),
                        other => Some(number(other, key)?),
                    }
                }
                "version" => search.version = value.as_bool().unwrap_or(false),
                "seq_no_primary_term" => {
                    search.seq_no_primary_term = value.as_bool().unwrap_or(false)
                }
                "timeout" | "stored_fields" | "explain" | "min_score" => {}
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
    if let Some(from) = u64_param(request, "from")? {
        search.from = from as usize;
    }
    if let Some(size) = u64_param(request, "size")? {
        search.size = size as usize;
    }
    match request.param("track_total_hits") {
        None => {}
        Some("true") | Some("") => search.track_total_hits = None,
        Some("false") => search.track_total_hits = Some(0),
        Some(text) => {
            search.track_total_hits = Some(text.parse().map_err(|_| {
                EsError::illegal_argument(format!(
                    "Failed to parse [track_total_hits] with value [{text}]"
                ))
            })?)
        }
    }
    if request.param("q").is_some() {
        return Err(EsError::illegal_argument(
            "[q] query strings are not supported by Sluice yet; send a query body",
        ));
    }
    Ok(search)
}

pub(super) async fn search(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let started = Instant::now();
    let search = parse_search(request)?;
    let indices = api.resolve(target)?;
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
                if let Some(source) = search.source.render(&hit.source, &mut raw) {
                    json["_source"] = source;
                }
                if !hit.matched_queries.is_empty() {
                    json["matched_queries"] = json!(hit.matched_queries);
                }
                json
            })
            .collect();
        let (value, relation) = match search.track_total_hits {
            Some(limit) if total > limit => (limit, "gte"),
            _ => (total, "eq"),
        };
        let hits_json = if search.track_total_hits == Some(0) {
            json!({"max_score": max_score, "hits": page})
        } else {
            json!({"total": {"value": value, "relation": relation}, "max_score": max_score, "hits": page})
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
    let indices = api.resolve(target)?;
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
