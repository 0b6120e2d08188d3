//! Points in time (`POST /{index}/_pit`, `pit` in a search body, `DELETE /_pit`) and scrolls
//! (`scroll=1m`, `_search/scroll`, `DELETE _search/scroll`): searches that page through one
//! unchanging view of their indices.
//!
//! Both are readers in the node's registry (`sluice_search::Snapshots`, bounded by
//! `OPEN_SNAPSHOTS_MAX`, each expiring after its keep-alive on the wall clock): the resolved
//! targets with one `SearcherSnapshot` each. A point in time is paged by the client with
//! `search_after`; every search on it sorts with Elasticsearch's implicit `_shard_doc`
//! tiebreaker, whose values its hits show. A scroll keeps its request and where it stopped,
//! and each `_search/scroll` continues with `search_after` on the same sort plus tiebreaker
//! (hidden unless the request sorted).

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::{Value, json};
use sluice_search::{IndicesOptions, SearcherSnapshot};

use super::search::{PitRef, SearchRequest, View, keep_alive_ms, run_search};
use super::targets::{Target, indices_options, resolve_targets};
use super::{EsApi, EsError, EsResult, RawSources, blocking, json_response, parse_json_body};
use crate::http::Request;

/// The node's clock for keep-alives, in milliseconds since the epoch.
pub(super) fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// The indices a reader reads, each as of when it was opened.
pub(crate) struct Snapshot {
    targets: Vec<Target>,
    snapshots: Vec<SearcherSnapshot>,
}

impl Snapshot {
    fn take(targets: Vec<Target>) -> Result<Snapshot, EsError> {
        let snapshots = targets
            .iter()
            .map(|target| target.index.searcher_snapshot())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Snapshot { targets, snapshots })
    }
}

/// Where a scroll stopped.
struct Cursor {
    /// The sort values of the last hit returned.
    after: Option<Vec<Value>>,
    /// No hits are left.
    done: bool,
}

pub(crate) struct Scroll {
    snapshot: Snapshot,
    search: SearchRequest,
    /// Held while a page runs, so two calls on one scroll take turns.
    cursor: Mutex<Cursor>,
}

/// An open reader.
pub(crate) enum Reader {
    PointInTime(Snapshot),
    Scroll(Box<Scroll>),
}

fn context_missing(id: &str) -> EsError {
    EsError::new(
        StatusCode::NOT_FOUND,
        "search_context_missing_exception",
        format!("No search context found for id [{id}]"),
    )
}

fn shards(count: usize) -> Value {
    json!({"total": count, "successful": count, "skipped": 0, "failed": 0})
}

/// `POST /{index}/_pit?keep_alive=1m`.
pub(super) async fn open_pit(api: &EsApi, request: &Request, target: &str) -> EsResult {
    // The body may only be empty or `{}`: `index_filter` is not supported, and says so.
    if !request.body.iter().all(u8::is_ascii_whitespace) {
        let body = parse_json_body(&request.body, "parsing_exception")?;
        let Value::Object(body) = body else {
            return Err(EsError::parse("request body must be an object"));
        };
        if let Some(key) = body.keys().next() {
            return Err(EsError::illegal_argument(format!(
                "[{key}] is not supported when opening a point in time"
            )));
        }
    }
    let keep_alive = match request.param("keep_alive") {
        Some(text) => keep_alive_ms(text, "keep_alive")?,
        None => return Err(EsError::validation("[keep_alive] is not specified")),
    };
    let options = indices_options(request, IndicesOptions::STRICT_EXPAND_OPEN)?;
    let targets = resolve_targets(
        api,
        request,
        "indices:data/read/open_point_in_time",
        Some(target),
        options,
    )?;
    let count = targets.len();
    let readers = api.readers.clone();
    let pretty = super::is_pretty(request);
    blocking(move || {
        let id = readers.open(Reader::PointInTime(Snapshot::take(targets)?), keep_alive)?;
        Ok(json_response(
            StatusCode::OK,
            &json!({"id": id, "_shards": shards(count)}),
            pretty,
        ))
    })
    .await
}

/// The ids a close request names: its body's field (a string or a list), else the URL's.
fn ids_of(request: &Request, field: &str, path: Option<&str>) -> Result<Vec<String>, EsError> {
    let mut ids = Vec::new();
    if let Some(path) = path {
        ids.extend(path.split(',').map(str::to_string));
    }
    if let Some(param) = request.param(field) {
        ids.extend(param.split(',').map(str::to_string));
    }
    if !request.body.iter().all(u8::is_ascii_whitespace) {
        let body = parse_json_body(&request.body, "parsing_exception")?;
        let Value::Object(body) = body else {
            return Err(EsError::parse("request body must be an object"));
        };
        for (key, value) in &body {
            match (key == field, value) {
                (true, Value::String(id)) => ids.push(id.clone()),
                (true, Value::Array(items)) => {
                    for item in items {
                        let id = item.as_str().ok_or_else(|| {
                            EsError::parse(format!("[{field}] must hold strings"))
                        })?;
                        ids.push(id.to_string());
                    }
                }
                // `scroll` may come along with a continuation's `scroll_id`.
                (false, _) if key == "scroll" => {}
                _ => {
                    return Err(EsError::parse(format!(
                        "Unknown parameter [{key}] in request body"
                    )));
                }
            }
        }
    }
    ids.retain(|id| !id.is_empty());
    Ok(ids)
}

fn freed(request: &Request, count: usize) -> EsResult {
    let status = if count == 0 {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    Ok(json_response(
        status,
        &json!({"succeeded": true, "num_freed": count}),
        super::is_pretty(request),
    ))
}

/// `DELETE /_pit` with `{"id": …}`.
pub(super) fn close_pit(api: &EsApi, request: &Request) -> EsResult {
    let ids = ids_of(request, "id", None)?;
    if ids.is_empty() {
        return Err(EsError::validation("point in time id must be specified"));
    }
    let count = ids.iter().filter(|id| api.readers.close(id)).count();
    freed(request, count)
}

/// A search with `pit` in its body.
pub(super) async fn search_pit(
    api: &EsApi,
    request: &Request,
    target: Option<&str>,
    search: SearchRequest,
    pit: PitRef,
    started: Instant,
) -> EsResult {
    if target.is_some() {
        return Err(EsError::validation(
            "[indices] cannot be used with point in time. Do not specify any index with point in time.",
        ));
    }
    if request.param("scroll").is_some() {
        return Err(EsError::validation(
            "using [point in time] is not allowed in a scroll context",
        ));
    }
    let reader = api
        .readers
        .get(&pit.id, pit.keep_alive_ms)?
        .ok_or_else(|| context_missing(&pit.id))?;
    let _slot = api.slot(&api.search_slots, "search")?;
    let pretty = super::is_pretty(request);
    blocking(move || {
        let Reader::PointInTime(snapshot) = reader.as_ref() else {
            return Err(context_missing(&pit.id));
        };
        let sort = search.sort_with_tiebreaker();
        let view = View {
            snapshots: Some(&snapshot.snapshots),
            shown_sort_values: sort.len(),
            sort,
            search_after: search.search_after(),
        };
        let mut raw = RawSources::default();
        let (mut body, _) = run_search(&snapshot.targets, &search, &view, started, &mut raw)?;
        body["pit_id"] = json!(pit.id);
        Ok(raw.render(StatusCode::OK, &body, pretty))
    })
    .await
}

/// A search with `scroll=…`: its first page, and a scroll that continues it.
pub(super) async fn open_scroll(
    api: &EsApi,
    request: &Request,
    target: Option<&str>,
    search: SearchRequest,
    keep_alive: u64,
    started: Instant,
) -> EsResult {
    if search.from() > 0 {
        return Err(EsError::validation(
            "using [from] is not allowed in a scroll context",
        ));
    }
    if search.search_after().is_some() {
        return Err(EsError::validation(
            "[search_after] cannot be used in a scroll context",
        ));
    }
    let options = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let targets = resolve_targets(api, request, super::access::SEARCH, target, options)?;
    let _slot = api.slot(&api.search_slots, "search")?;
    let readers = api.readers.clone();
    let pretty = super::is_pretty(request);
    blocking(move || {
        let snapshot = Snapshot::take(targets)?;
        let view = View {
            snapshots: Some(&snapshot.snapshots),
            sort: search.sort_with_tiebreaker(),
            search_after: None,
            shown_sort_values: search.sort_len(),
        };
        let mut raw = RawSources::default();
        let (mut body, last) = run_search(&snapshot.targets, &search, &view, started, &mut raw)?;
        let cursor = Cursor {
            done: last.is_none(),
            after: last,
        };
        let scroll = Scroll {
            snapshot,
            search: search.without_aggs(),
            cursor: Mutex::new(cursor),
        };
        let id = readers.open(Reader::Scroll(Box::new(scroll)), keep_alive)?;
        body["_scroll_id"] = json!(id);
        Ok(raw.render(StatusCode::OK, &body, pretty))
    })
    .await
}

/// `POST /_search/scroll`: the next page of a scroll.
pub(super) async fn scroll(api: &EsApi, request: &Request) -> EsResult {
    let started = Instant::now();
    let path_id = request.segments.get(2).cloned();
    let mut keep_alive = request
        .param("scroll")
        .map(|text| keep_alive_ms(text, "scroll"))
        .transpose()?;
    if let Some(Value::Object(body)) = (!request.body.iter().all(u8::is_ascii_whitespace))
        .then(|| parse_json_body(&request.body, "parsing_exception"))
        .transpose()?
        && let Some(Value::String(text)) = body.get("scroll")
    {
        keep_alive = Some(keep_alive_ms(text, "scroll")?);
    }
    let ids = ids_of(request, "scroll_id", path_id.as_deref())?;
    let [id] = ids.as_slice() else {
        return Err(EsError::validation("scrollId is missing"));
    };
    let id = id.clone();
    let reader = api
        .readers
        .get(&id, keep_alive)?
        .ok_or_else(|| context_missing(&id))?;
    let _slot = api.slot(&api.search_slots, "scroll")?;
    let pretty = super::is_pretty(request);
    blocking(move || {
        let Reader::Scroll(scroll) = reader.as_ref() else {
            return Err(context_missing(&id));
        };
        let mut cursor = scroll
            .cursor
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut raw = RawSources::default();
        let sort = scroll.search.sort_with_tiebreaker();
        let (mut body, last) = match (&cursor.after, cursor.done) {
            (Some(after), false) => {
                let view = View {
                    snapshots: Some(&scroll.snapshot.snapshots),
                    sort,
                    search_after: Some(after),
                    shown_sort_values: scroll.search.sort_len(),
                };
                run_search(
                    &scroll.snapshot.targets,
                    &scroll.search,
                    &view,
                    started,
                    &mut raw,
                )?
            }
            // Exhausted: an empty page with the same total.
            _ => {
                let view = View {
                    snapshots: Some(&scroll.snapshot.snapshots),
                    sort,
                    search_after: None,
                    shown_sort_values: 0,
                };
                let (mut body, _) = run_search(
                    &scroll.snapshot.targets,
                    &scroll.search,
                    &view,
                    started,
                    &mut raw,
                )?;
                body["hits"]["hits"] = json!([]);
                (body, None)
            }
        };
        match last {
            Some(last) => cursor.after = Some(last),
            None => cursor.done = true,
        }
        body["_scroll_id"] = json!(id);
        Ok(raw.render(StatusCode::OK, &body, pretty))
    })
    .await
}

/// `DELETE /_search/scroll` (`scroll_id` in the body, the URL or the path; `_all` for all).
pub(super) fn clear_scroll(api: &EsApi, request: &Request) -> EsResult {
    let path_id = request.segments.get(2).cloned();
    let ids = ids_of(request, "scroll_id", path_id.as_deref())?;
    if ids.iter().any(|id| id == "_all") {
        let count = api
            .readers
            .close_where(|reader| matches!(reader, Reader::Scroll(_)));
        return freed(request, count);
    }
    if ids.is_empty() {
        return Err(EsError::validation("no scroll ids specified"));
    }
    let mut count = 0;
    for id in &ids {
        // Only scrolls: a point in time's id does not close here.
        if let Ok(Some(reader)) = api.readers.get(id, None)
            && matches!(reader.as_ref(), Reader::Scroll(_))
            && api.readers.close(id)
        {
            count += 1;
        }
    }
    freed(request, count)
}
