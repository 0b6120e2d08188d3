//! `_search` and `_count`: the request body (`query`, `from`, `size`, `_source`, …) read into
//! Sluice's query tree, run on each target index, and the hits merged by score.

use std::time::Instant;

use serde_json::{Map, Value, json};
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

fn boost_of(body: &Map<String, Value>) -> Result<f32, EsError> {
    match body.get("boost") {
        None => Ok(1.0),
        Some(value) => value
            .as_f64()
            .map(|b| b as f32)
            .ok_or_else(|| EsError::parse("[boost] must be a number")),
    }
}

/// Reads one Query DSL clause into the query tree.
pub(crate) fn parse_query(value: &Value) -> Result<Query, EsError> {
    let Value::Object(clause) = value else {
        return Err(EsError::parse(
            "query malformed, must start with start_object",
        ));
    };
    let mut entries = clause.iter();
    let (Some((kind, body)), None) = (entries.next(), entries.next()) else {
        return Err(EsError::parse(
            "query malformed, expected exactly one query clause",
        ));
    };
    let empty = Map::new();
    match kind.as_str() {
        "match_all" => Ok(Query::MatchAll {
            boost: boost_of(body.as_object().unwrap_or(&empty))?,
        }),
        "match_none" => Ok(Query::MatchNone),
        "term" => {
            let (field, spec) = single_field(kind, body)?;
            let (value, boost) = match spec {
                Value::Object(options) => {
                    let value = options.get("value").cloned().ok_or_else(|| {
                        EsError::parse("[term] query does not support [value] missing")
                    })?;
                    for key in options.keys() {
                        if !matches!(
                            key.as_str(),
                            "value" | "boost" | "case_insensitive" | "_name"
                        ) {
                            return Err(EsError::parse(format!(
                                "[term] query does not support [{key}]"
                            )));
                        }
                    }
                    (value, boost_of(options)?)
                }
                Value::Array(_) => {
                    return Err(EsError::parse(
                        "[term] query does not support array of values",
                    ));
                }
                scalar => (scalar.clone(), 1.0),
            };
            Ok(Query::Term {
                field,
                value,
                boost,
            })
        }
        "terms" => {
            let Value::Object(options) = body else {
                return Err(EsError::parse(
                    "[terms] query malformed, no start_object after query name",
                ));
            };
            let boost = boost_of(options)?;
            let mut fields = options
                .iter()
                .filter(|(k, _)| k.as_str() != "boost" && k.as_str() != "_name");
            let (Some((field, values)), None) = (fields.next(), fields.next()) else {
                return Err(EsError::parse("[terms] query requires exactly one field"));
            };
            let Value::Array(values) = values else {
                return Err(EsError::parse(format!(
                    "[terms] query does not support [{field}] without an array of values"
                )));
            };
            Ok(Query::Terms {
                field: field.clone(),
                values: values.clone(),
                boost,
            })
        }
        "ids" => {
            let Value::Object(options) = body else {
                return Err(EsError::parse(
                    "[ids] query malformed, no start_object after query name",
                ));
            };
            let values = match options.get("values") {
                Some(Value::Array(values)) => values
                    .iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.as_i64().map(|i| i.to_string()))
                            .ok_or_else(|| EsError::parse("[ids] values must be strings"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                _ => return Err(EsError::parse("[ids] query requires an array of [values]")),
            };
            Ok(Query::Ids {
                values,
                boost: boost_of(options)?,
            })
        }
        other => Err(EsError::parse(format!("unknown query [{other}]"))),
    }
}

fn single_field<'a>(kind: &str, body: &'a Value) -> Result<(String, &'a Value), EsError> {
    let Value::Object(fields) = body else {
        return Err(EsError::parse(format!(
            "[{kind}] query malformed, no start_object after query name"
        )));
    };
    let mut entries = fields.iter();
    match (entries.next(), entries.next()) {
        (Some((field, spec)), None) => Ok((field.clone(), spec)),
        _ => Err(EsError::parse(format!(
            "[{kind}] query doesn't support multiple fields, found [{}]",
            fields.keys().cloned().collect::<Vec<_>>().join("] and [")
        ))),
    }
}

struct SearchRequest {
    query: Query,
    from: usize,
    size: usize,
    source: SourceFilter,
    track_total_hits: Option<u64>,
    version: bool,
    seq_no_primary_term: bool,
    aggs: Option<super::aggs::SearchAggs>,
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
        aggs: None,
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
                "aggs" | "aggregations" => search.aggs = Some(super::aggs::parse(value)?),
                "sort" | "highlight" | "search_after" | "collapse" | "post_filter" | "suggest"
                | "fields" | "script_fields" | "docvalue_fields" | "pit" | "runtime_mappings"
                | "rescore" => {
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
        let mut body = json!({
            "took": started.elapsed().as_millis() as u64,
            "timed_out": false,
            "_shards": {"total": shards, "successful": shards, "skipped": 0, "failed": 0},
            "hits": hits_json,
        });
        if let Some(aggs) = &search.aggs {
            body["aggregations"] = super::aggs::run(&indices, &search.query, aggs, &mut raw)?;
            body["took"] = json!(started.elapsed().as_millis() as u64);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_dsl_subset() {
        assert_eq!(
            parse_query(&json!({"match_all": {}})).unwrap(),
            Query::match_all()
        );
        assert_eq!(
            parse_query(&json!({"term": {"user": {"value": "kimchy", "boost": 2.0}}})).unwrap(),
            Query::Term {
                field: "user".into(),
                value: json!("kimchy"),
                boost: 2.0
            }
        );
        assert_eq!(
            parse_query(&json!({"ids": {"values": ["1", 2]}})).unwrap(),
            Query::Ids {
                values: vec!["1".into(), "2".into()],
                boost: 1.0
            }
        );
        assert_eq!(
            parse_query(&json!({"bogus": {}})).unwrap_err().reason,
            "unknown query [bogus]"
        );
        assert!(parse_query(&json!({"term": {"a": 1, "b": 2}})).is_err());
    }
}
