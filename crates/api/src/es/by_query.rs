//! By-query operations — `_delete_by_query`, `_update_by_query`, `_reindex` — and the task
//! registry behind `wait_for_completion=false` (`GET /_tasks/{id}`, `POST /_tasks/{id}/_cancel`).
//!
//! Each operation reads its targets through `Index::scan` (one point in time per index, in
//! batches of `scroll_size`, 1000 by default as in Elasticsearch) with the query parsed by the
//! same Query DSL parser as `_search`, and writes each document back with `if_seq_no` of the
//! snapshot it was read at, so a document changed meanwhile is a version conflict: counted and
//! skipped under `conflicts: proceed`, else the operation stops and reports it in `failures`
//! (409). Scripts run per document through `sluice-script`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_node::Node;
use sluice_search::version::{Condition, PRIMARY_TERM};
use sluice_search::{
    Hit, Index, IndicesOptions, Query, ScriptOutcome, SearchError, UpdateScript, WriteRequest,
    WriteResult,
};

use super::documents::apply_refresh;
use super::search::{parse_query, url_query};
use super::targets::{Target, indices_options, resolve_with};
use super::{
    EsApi, EsError, EsResult, Refresh, blocking, is_pretty, json_response, parse_json_body,
    refresh_param, u64_param,
};
use crate::http::Request;

/// Documents read and written per batch unless `scroll_size` (or `source.size`) says
/// otherwise, as Elasticsearch's scroll size for these operations.
pub const BATCH_DOCS_DEFAULT: usize = 1000;
/// Largest batch a request may ask for; beyond it, 400 (a batch's sources are held in memory).
pub const BATCH_DOCS_MAX: usize = 10_000;
/// Tasks kept in the registry, running or finished. When it is full the oldest finished task
/// is forgotten; when every kept task is still running, a new one is refused with 429.
pub const TASKS_MAX: usize = 1000;
/// The node name in task ids (`sluice:7`), as Elasticsearch prefixes them with a node id.
const NODE_ID: &str = "sluice";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    DeleteByQuery,
    UpdateByQuery,
    Reindex,
}

impl Kind {
    fn action(self) -> &'static str {
        match self {
            Kind::DeleteByQuery => "indices:data/write/delete/byquery",
            Kind::UpdateByQuery => "indices:data/write/update/byquery",
            Kind::Reindex => "indices:data/write/reindex",
        }
    }
}

/// Where a reindex writes.
struct Dest {
    index: String,
    create: bool,
    external: bool,
}

/// One parsed by-query request.
struct Operation {
    kind: Kind,
    query: Query,
    max_docs: Option<u64>,
    proceed_on_conflict: bool,
    script: Option<UpdateScript>,
    batch_docs: usize,
    refresh: bool,
    /// `_reindex`'s `source._source`: the fields to copy (all when `None`).
    source_fields: Option<Vec<String>>,
    dest: Option<Dest>,
    description: String,
}

/// The counters of a running operation, which `GET /_tasks/{id}` shows as `status`.
#[derive(Debug, Default)]
struct Progress {
    total: AtomicU64,
    updated: AtomicU64,
    created: AtomicU64,
    deleted: AtomicU64,
    batches: AtomicU64,
    version_conflicts: AtomicU64,
    noops: AtomicU64,
    cancelled: AtomicBool,
}

impl Progress {
    fn processed(&self) -> u64 {
        self.updated.load(Ordering::Relaxed)
            + self.created.load(Ordering::Relaxed)
            + self.deleted.load(Ordering::Relaxed)
            + self.noops.load(Ordering::Relaxed)
    }

    fn status(&self) -> Value {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        json!({
            "total": load(&self.total),
            "updated": load(&self.updated),
            "created": load(&self.created),
            "deleted": load(&self.deleted),
            "batches": load(&self.batches),
            "version_conflicts": load(&self.version_conflicts),
            "noops": load(&self.noops),
            "retries": {"bulk": 0, "search": 0},
            "throttled_millis": 0,
            "requests_per_second": -1.0,
            "throttled_until_millis": 0,
        })
    }
}

fn parse_conflicts(value: &str) -> Result<bool, EsError> {
    match value {
        "proceed" => Ok(true),
        "abort" => Ok(false),
        other => Err(EsError::illegal_argument(format!(
            "conflicts may only be \"proceed\" or \"abort\" but was [{other}]"
        ))),
    }
}

fn max_docs_value(value: &Value) -> Result<u64, EsError> {
    match value.as_i64() {
        Some(n) if n > 0 => Ok(n as u64),
        _ => Err(EsError::validation(format!(
            "maxDocs should be greater than 0 if the request is limited to some number of documents or -1 if it isn't but it was [{value}]"
        ))),
    }
}

/// `slices` may be 1 or `auto` (Sluice's indices are one shard, so `auto` is 1).
fn check_slices(request: &Request) -> Result<(), EsError> {
    match request.param("slices") {
        None | Some("1") | Some("auto") => Ok(()),
        Some(other) => Err(EsError::illegal_argument(format!(
            "slices [{other}] is not supported by Sluice: its indices have one shard, use [1] or [auto]"
        ))),
    }
}

fn batch_docs(value: Option<u64>) -> Result<usize, EsError> {
    match value {
        None => Ok(BATCH_DOCS_DEFAULT),
        Some(n) if n >= 1 && n as usize <= BATCH_DOCS_MAX => Ok(n as usize),
        Some(n) => Err(EsError::illegal_argument(format!(
            "scroll size [{n}] must be between 1 and [{BATCH_DOCS_MAX}]"
        ))),
    }
}

/// Reads `_delete_by_query` and `_update_by_query`: URL parameters, then the body's `query`,
/// `max_docs`, `conflicts`, `script`.
fn parse_by_query(request: &Request, kind: Kind, target: &str) -> Result<Operation, EsError> {
    check_slices(request)?;
    let mut operation = Operation {
        kind,
        query: Query::match_all(),
        max_docs: u64_param(request, "max_docs")?,
        proceed_on_conflict: match request.param("conflicts") {
            Some(value) => parse_conflicts(value)?,
            None => false,
        },
        script: None,
        batch_docs: batch_docs(u64_param(request, "scroll_size")?)?,
        refresh: refresh_param(request)? != Refresh::No,
        source_fields: None,
        dest: None,
        description: String::new(),
    };
    if let Some(query) = url_query(request)? {
        operation.query = query;
    }
    if !request.body.is_empty() {
        let body = parse_json_body(&request.body, "parsing_exception")?;
        let Value::Object(body) = body else {
            return Err(EsError::parse("request body must be an object"));
        };
        for (key, value) in &body {
            match key.as_str() {
                "query" => operation.query = parse_query(value)?,
                "max_docs" | "size" => operation.max_docs = Some(max_docs_value(value)?),
                "conflicts" => {
                    operation.proceed_on_conflict =
                        parse_conflicts(value.as_str().unwrap_or_default())?
                }
                "script" if kind == Kind::UpdateByQuery => {
                    operation.script = Some(super::scripts::parse_script(value, false)?)
                }
                "slice" => {
                    return Err(EsError::illegal_argument(
                        "manual [slice] is not supported by Sluice: its indices have one shard",
                    ));
                }
                other => {
                    return Err(EsError::parse(format!(
                        "[{}] unknown field [{other}]",
                        match kind {
                            Kind::DeleteByQuery => "delete_by_query",
                            _ => "update_by_query",
                        }
                    )));
                }
            }
        }
    }
    operation.description = match kind {
        Kind::DeleteByQuery => format!("delete-by-query [{target}]"),
        _ => format!("update-by-query [{target}]"),
    };
    Ok(operation)
}

/// Reads `_reindex`'s body: `source` (`index`, `query`, `_source`, `size`), `dest` (`index`,
/// `op_type`, `version_type`), `script`, `max_docs`, `conflicts`.
fn parse_reindex(request: &Request) -> Result<(Operation, String), EsError> {
    check_slices(request)?;
    let body = parse_json_body(&request.body, "parsing_exception")?;
    let Value::Object(body) = body else {
        return Err(EsError::parse("request body must be an object"));
    };
    let mut operation = Operation {
        kind: Kind::Reindex,
        query: Query::match_all(),
        max_docs: u64_param(request, "max_docs")?,
        proceed_on_conflict: false,
        script: None,
        batch_docs: BATCH_DOCS_DEFAULT,
        refresh: refresh_param(request)? != Refresh::No,
        source_fields: None,
        dest: None,
        description: String::new(),
    };
    let mut source_indices = None;
    for (key, value) in &body {
        match key.as_str() {
            "source" => {
                let Value::Object(source) = value else {
                    return Err(EsError::parse("[source] must be an object"));
                };
                for (key, value) in source {
                    match key.as_str() {
                        "index" => {
                            source_indices = Some(match value {
                                Value::String(s) => s.clone(),
                                Value::Array(items) => items
                                    .iter()
                                    .map(|v| v.as_str().map(str::to_owned))
                                    .collect::<Option<Vec<_>>>()
                                    .ok_or_else(|| {
                                        EsError::parse("[source.index] must be strings")
                                    })?
                                    .join(","),
                                _ => {
                                    return Err(EsError::parse(
                                        "[source.index] must be a string or an array",
                                    ));
                                }
                            })
                        }
                        "query" => operation.query = parse_query(value)?,
                        "size" => operation.batch_docs = batch_docs(value.as_u64())?,
                        "_source" => {
                            operation.source_fields = match value {
                                Value::Bool(true) => None,
                                Value::String(s) => Some(vec![s.clone()]),
                                Value::Array(items) => Some(
                                    items
                                        .iter()
                                        .map(|v| v.as_str().map(str::to_owned))
                                        .collect::<Option<Vec<_>>>()
                                        .ok_or_else(|| {
                                            EsError::parse("[source._source] must be strings")
                                        })?,
                                ),
                                _ => {
                                    return Err(EsError::parse(
                                        "[source._source] must be true, a field or a list of fields",
                                    ));
                                }
                            }
                        }
                        "remote" => {
                            return Err(EsError::illegal_argument(
                                "reindex from a remote cluster is not supported by Sluice",
                            ));
                        }
                        other => {
                            return Err(EsError::parse(format!(
                                "[source] unknown field [{other}]"
                            )));
                        }
                    }
                }
            }
            "dest" => {
                let Value::Object(dest) = value else {
                    return Err(EsError::parse("[dest] must be an object"));
                };
                let mut parsed = Dest {
                    index: String::new(),
                    create: false,
                    external: false,
                };
                for (key, value) in dest {
                    match (key.as_str(), value.as_str()) {
                        ("index", Some(index)) => parsed.index = index.to_owned(),
                        ("op_type", Some("create")) => parsed.create = true,
                        ("op_type", Some("index")) => parsed.create = false,
                        ("version_type", Some("internal")) => parsed.external = false,
                        ("version_type", Some("external")) => parsed.external = true,
                        ("op_type" | "version_type", Some(other)) => {
                            return Err(EsError::illegal_argument(format!(
                                "[dest.{key}] [{other}] is not supported by Sluice"
                            )));
                        }
                        (other, _) => {
                            return Err(EsError::parse(format!("[dest] unknown field [{other}]")));
                        }
                    }
                }
                operation.dest = Some(parsed);
            }
            "script" => operation.script = Some(super::scripts::parse_script(value, false)?),
            "max_docs" | "size" => operation.max_docs = Some(max_docs_value(value)?),
            "conflicts" => {
                operation.proceed_on_conflict = parse_conflicts(value.as_str().unwrap_or_default())?
            }
            other => return Err(EsError::parse(format!("[reindex] unknown field [{other}]"))),
        }
    }
    let Some(source) = source_indices else {
        return Err(EsError::validation(
            "use _all if you really want to copy from all existing indexes",
        ));
    };
    match &operation.dest {
        Some(dest) if !dest.index.is_empty() => {}
        _ => return Err(EsError::validation("index must be specified")),
    }
    operation.description = format!(
        "reindex from [{source}] to [{}]",
        operation.dest.as_ref().map_or("", |d| d.index.as_str())
    );
    Ok((operation, source))
}

/// Runs an operation over its targets, counting into `progress`. Returns the response body
/// and its status (409 when a conflict stopped it).
fn execute(
    node: &Node,
    targets: &[Target],
    operation: &Operation,
    progress: &Progress,
    started: Instant,
) -> Result<(StatusCode, Value), EsError> {
    let mut failures = Vec::new();
    let mut total = 0u64;
    for target in targets {
        total += target.index.count(&target.scope(&operation.query))?;
    }
    if let Some(max) = operation.max_docs {
        total = total.min(max);
    }
    progress.total.store(total, Ordering::Relaxed);
    let dest = match &operation.dest {
        Some(dest) => Some(node.indices().get_or_create(&dest.index)?),
        None => None,
    };
    let mut touched: Vec<Arc<Index>> = Vec::new();
    'targets: for target in targets {
        let mut scan = target.index.scan(&target.scope(&operation.query))?;
        let written = dest.clone().unwrap_or_else(|| target.index.clone());
        loop {
            if progress.cancelled.load(Ordering::Relaxed) {
                break 'targets;
            }
            let remaining = operation.max_docs.map_or(usize::MAX, |max| {
                max.saturating_sub(progress.processed()) as usize
            });
            if remaining == 0 {
                break 'targets;
            }
            let mut hits = scan.next_batch(operation.batch_docs.min(remaining))?;
            if hits.is_empty() {
                break;
            }
            if operation.dest.is_some() {
                // A reindex copies what its reader may see; by-query updates rewrite documents
                // whole, which field-level security does not restrict (it restricts reads).
                for hit in &mut hits {
                    hit.source = target.restrictions.source(hit.source.take());
                }
            }
            progress.batches.fetch_add(1, Ordering::Relaxed);
            let mut writes = Vec::with_capacity(hits.len());
            let mut ids = Vec::with_capacity(hits.len());
            for hit in &hits {
                match plan(&target.index, hit, operation)? {
                    Some(write) => {
                        writes.push(write);
                        ids.push(hit.id.clone());
                    }
                    None => {
                        progress.noops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            let outcomes = written.write(writes);
            for (outcome, id) in outcomes.into_iter().zip(ids) {
                match outcome {
                    Ok(outcome) => {
                        let counter = match outcome.result {
                            WriteResult::Created => &progress.created,
                            WriteResult::Updated => &progress.updated,
                            WriteResult::Deleted => &progress.deleted,
                            WriteResult::Noop | WriteResult::NotFound => &progress.noops,
                        };
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(SearchError::VersionConflict { reason, index, .. }) => {
                        progress.version_conflicts.fetch_add(1, Ordering::Relaxed);
                        if !operation.proceed_on_conflict {
                            failures.push(json!({
                                "index": index,
                                "id": id,
                                "cause": {
                                    "type": "version_conflict_engine_exception",
                                    "reason": reason,
                                    "index_uuid": written.uuid(),
                                    "shard": "0",
                                    "index": index,
                                },
                                "status": 409,
                            }));
                        }
                    }
                    Err(error) => {
                        let error = EsError::from(error);
                        failures.push(json!({
                            "index": written.name(),
                            "id": id,
                            "cause": error.item_error(),
                            "status": error.status.as_u16(),
                        }));
                    }
                }
            }
            if !touched.iter().any(|i| Arc::ptr_eq(i, &written)) {
                touched.push(written.clone());
            }
            if !failures.is_empty() {
                break 'targets;
            }
        }
    }
    if operation.refresh {
        for index in &touched {
            apply_refresh(index, Refresh::Immediate, None)?;
        }
    }
    let mut body = Map::new();
    body.insert("took".into(), json!(started.elapsed().as_millis() as u64));
    body.insert("timed_out".into(), json!(false));
    if let Value::Object(status) = progress.status() {
        body.extend(status);
    }
    if operation.kind == Kind::DeleteByQuery {
        body.remove("updated");
        body.remove("created");
    }
    if operation.kind == Kind::UpdateByQuery {
        body.remove("created");
    }
    if progress.cancelled.load(Ordering::Relaxed) {
        body.insert("canceled".into(), json!("by user request"));
    }
    let status = if failures.iter().any(|f| f["status"] == 409) {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    body.insert("failures".into(), Value::Array(failures));
    Ok((status, Value::Object(body)))
}

/// The write one hit turns into, or `None` for a noop.
fn plan(
    source_index: &Index,
    hit: &Hit,
    operation: &Operation,
) -> Result<Option<WriteRequest>, EsError> {
    let read_at = Condition::IfSeqNo {
        seq_no: hit.seq_no,
        primary_term: PRIMARY_TERM,
    };
    if operation.kind == Kind::DeleteByQuery {
        return Ok(Some(WriteRequest::Delete {
            id: hit.id.clone(),
            condition: read_at,
        }));
    }
    let Some(bytes) = &hit.source else {
        return Err(EsError::from(SearchError::DocumentSourceMissing {
            index: source_index.name().to_owned(),
            id: hit.id.clone(),
        }));
    };
    let mut document: Value = serde_json::from_slice(bytes).map_err(|e| {
        EsError::illegal_argument(format!("unreadable _source of [{}]: {e}", hit.id))
    })?;
    if let Some(fields) = &operation.source_fields {
        document = keep_fields(&document, fields);
    }
    let outcome = match &operation.script {
        Some(script) => script
            .run(
                source_index.name(),
                &hit.id,
                Some(hit.version),
                &document,
                "index",
            )
            .map_err(EsError::from)?,
        None => ScriptOutcome::Index(document),
    };
    let condition = match &operation.dest {
        None => read_at,
        Some(dest) if dest.external => Condition::External {
            version: hit.version,
            gte: false,
        },
        Some(dest) if dest.create => Condition::Create,
        Some(_) => Condition::None,
    };
    Ok(match outcome {
        ScriptOutcome::Noop => None,
        ScriptOutcome::Delete => Some(WriteRequest::Delete {
            id: hit.id.clone(),
            condition,
        }),
        ScriptOutcome::Index(document) => {
            let source = serde_json::to_vec(&document)
                .map_err(|e| EsError::illegal_argument(e.to_string()))?;
            Some(WriteRequest::Index {
                id: Some(hit.id.clone()),
                source: source.into(),
                document,
                condition,
            })
        }
    })
}

/// The fields of `document` that `fields` name (dotted paths, `*` wildcards), as `_source`
/// filtering keeps them.
fn keep_fields(document: &Value, fields: &[String]) -> Value {
    fn walk(value: &Value, prefix: &str, fields: &[String]) -> Option<Value> {
        match value {
            Value::Object(map) => {
                let mut kept = Map::new();
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    if fields.iter().any(|f| super::wildcard_match(f, &path)) {
                        kept.insert(key.clone(), child.clone());
                    } else if fields
                        .iter()
                        .any(|f| f.starts_with(&format!("{path}.")) || f.contains('*'))
                        && let Some(inner) = walk(child, &path, fields)
                    {
                        kept.insert(key.clone(), inner);
                    }
                }
                if kept.is_empty() && !prefix.is_empty() {
                    None
                } else {
                    Some(Value::Object(kept))
                }
            }
            _ => None,
        }
    }
    walk(document, "", fields).unwrap_or_else(|| Value::Object(Map::new()))
}

/// Tasks of `wait_for_completion=false`, bounded by [`TASKS_MAX`].
#[derive(Default)]
pub struct Tasks {
    inner: Mutex<TasksInner>,
}

#[derive(Default)]
struct TasksInner {
    next_id: u64,
    tasks: HashMap<u64, Arc<Task>>,
    /// Ids in the order they started, to forget the oldest finished first.
    order: VecDeque<u64>,
}

#[derive(Debug)]
struct Task {
    id: u64,
    action: &'static str,
    description: String,
    start_time_ms: u64,
    started: Instant,
    progress: Arc<Progress>,
    /// The response (or error) once done.
    result: Mutex<Option<Result<Value, Value>>>,
    /// Signalled when `result` is set, for `GET /_tasks/{id}?wait_for_completion=true`.
    finished: Condvar,
}

impl Task {
    fn info(&self) -> Value {
        json!({
            "node": NODE_ID,
            "id": self.id,
            "type": "transport",
            "action": self.action,
            "status": self.progress.status(),
            "description": self.description,
            "start_time_in_millis": self.start_time_ms,
            "running_time_in_nanos": self.started.elapsed().as_nanos() as u64,
            "cancellable": true,
            "cancelled": self.progress.cancelled.load(Ordering::Relaxed),
            "headers": {},
        })
    }

    fn done(&self) -> bool {
        self.result.lock().map(|r| r.is_some()).unwrap_or(true)
    }
}

impl Tasks {
    fn register(
        &self,
        action: &'static str,
        description: String,
        progress: Arc<Progress>,
    ) -> Result<Arc<Task>, EsError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.tasks.len() >= TASKS_MAX {
            let oldest_done = inner
                .order
                .iter()
                .position(|id| inner.tasks.get(id).is_some_and(|t| t.done()));
            match oldest_done {
                Some(position) => {
                    if let Some(id) = inner.order.remove(position) {
                        inner.tasks.remove(&id);
                    }
                }
                None => {
                    return Err(EsError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "es_rejected_execution_exception",
                        format!("rejected execution of task: [{TASKS_MAX}] tasks are running"),
                    ));
                }
            }
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let start_time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let task = Arc::new(Task {
            id,
            action,
            description,
            start_time_ms,
            started: Instant::now(),
            progress,
            result: Mutex::new(None),
            finished: Condvar::new(),
        });
        inner.tasks.insert(id, task.clone());
        inner.order.push_back(id);
        Ok(task)
    }

    fn find(&self, task_id: &str) -> Result<Arc<Task>, EsError> {
        let not_found = || {
            EsError::new(
                StatusCode::NOT_FOUND,
                "resource_not_found_exception",
                format!("task [{task_id}] isn't running and hasn't stored its results"),
            )
        };
        let Some((node, number)) = task_id.split_once(':') else {
            return Err(EsError::illegal_argument(format!(
                "malformed task id {task_id}"
            )));
        };
        let number: u64 = number
            .parse()
            .map_err(|_| EsError::illegal_argument(format!("malformed task id {task_id}")))?;
        if node != NODE_ID {
            return Err(not_found());
        }
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.tasks.get(&number).cloned().ok_or_else(not_found)
    }
}

async fn run(
    api: &EsApi,
    request: &Request,
    targets: Vec<Target>,
    operation: Operation,
) -> EsResult {
    let pretty = is_pretty(request);
    let wait = match request.param("wait_for_completion") {
        None | Some("true") | Some("") => true,
        Some("false") => false,
        Some(other) => {
            return Err(EsError::illegal_argument(format!(
                "Failed to parse value [{other}] as only [true] or [false] are allowed."
            )));
        }
    };
    let node = api.node.clone();
    let progress = Arc::new(Progress::default());
    let task = api.tasks.register(
        operation.kind.action(),
        operation.description.clone(),
        progress.clone(),
    )?;
    let started = Instant::now();
    let work = {
        let task = task.clone();
        move || {
            let result = execute(&node, &targets, &operation, &progress, started);
            let stored = match &result {
                Ok((_, body)) => Ok(body.clone()),
                Err(error) => Err(error.error_object()),
            };
            *task.result.lock().unwrap_or_else(|p| p.into_inner()) = Some(stored);
            task.finished.notify_all();
            result
        }
    };
    if wait {
        let _slot = api.slot(&api.write_slots, "by-query")?;
        let (status, body) = blocking(work).await?;
        Ok(json_response(status, &body, pretty))
    } else {
        tokio::task::spawn_blocking(work);
        Ok(json_response(
            StatusCode::OK,
            &json!({"task": format!("{NODE_ID}:{}", task.id)}),
            pretty,
        ))
    }
}

pub(super) async fn delete_by_query(api: &EsApi, request: &Request, target: &str) -> EsResult {
    let operation = parse_by_query(request, Kind::DeleteByQuery, target)?;
    let options = indices_options(request, IndicesOptions::STRICT_EXPAND_OPEN)?;
    let targets = resolve_with(
        &api.node,
        request.grants.as_deref(),
        "indices:data/write/delete/byquery",
        Some(target),
        options,
    )?;
    run(api, request, targets, operation).await
}

pub(super) async fn update_by_query(api: &EsApi, request: &Request, target: &str) -> EsResult {
    let operation = parse_by_query(request, Kind::UpdateByQuery, target)?;
    let options = indices_options(request, IndicesOptions::STRICT_EXPAND_OPEN)?;
    let targets = resolve_with(
        &api.node,
        request.grants.as_deref(),
        "indices:data/write/update/byquery",
        Some(target),
        options,
    )?;
    run(api, request, targets, operation).await
}

pub(super) async fn reindex(api: &EsApi, request: &Request) -> EsResult {
    let (operation, source) = parse_reindex(request)?;
    let grants = request.grants.as_deref();
    let mut source = source;
    if let Some(grants) = grants {
        // Reading the source is a search of it; writing the destination, indexing into it.
        let options = IndicesOptions::STRICT_EXPAND_OPEN;
        if let Some(narrowed) = super::access::narrow(
            &api.node,
            grants,
            super::access::SEARCH,
            Some(&source),
            options,
        )? {
            source = narrowed;
        }
        if let Some(dest) = &operation.dest {
            let name = dest.index.as_str();
            if !super::access::allowed(&api.node, grants, super::access::INDEX, name) {
                return Err(super::access::index_refusal(
                    grants,
                    super::access::INDEX,
                    &[name],
                ));
            }
            if !api.node.indices().exists(name)
                && !grants.index_allows(super::access::CREATE_INDEX, name)
            {
                return Err(super::access::index_refusal(
                    grants,
                    super::access::CREATE_INDEX,
                    &[name],
                ));
            }
        }
    }
    let targets = resolve_with(
        &api.node,
        grants,
        super::access::SEARCH,
        Some(&source),
        IndicesOptions::STRICT_EXPAND_OPEN,
    )?;
    if let Some(dest) = &operation.dest
        && targets.iter().any(|t| t.index.name() == dest.index)
    {
        return Err(EsError::validation(format!(
            "reindex cannot write into an index its reading from [{}]",
            dest.index
        )));
    }
    run(api, request, targets, operation).await
}

/// How long `GET /_tasks/{id}?wait_for_completion=true` waits unless `timeout` says, as
/// Elasticsearch's default; then it answers 408.
const TASK_WAIT_DEFAULT: Duration = Duration::from_secs(30);

pub(super) async fn get_task(api: &EsApi, request: &Request, task_id: &str) -> EsResult {
    let task = api.tasks.find(task_id)?;
    let wait = super::bool_param(request, "wait_for_completion")?.unwrap_or(false);
    let timeout = match request.param("timeout") {
        None => TASK_WAIT_DEFAULT,
        Some(text) => match sluice_search::settings::parse_time_value(text) {
            Some(Some(duration)) => duration,
            // `-1`: wait as long as the default allows.
            Some(None) => TASK_WAIT_DEFAULT,
            None => {
                return Err(EsError::illegal_argument(format!(
                    "failed to parse setting [timeout] with value [{text}] as a time value"
                )));
            }
        },
    };
    let pretty = is_pretty(request);
    blocking(move || {
        let mut result = task.result.lock().unwrap_or_else(|p| p.into_inner());
        if wait && result.is_none() {
            let (guard, waited) = task
                .finished
                .wait_timeout_while(result, timeout, |r| r.is_none())
                .unwrap_or_else(|p| p.into_inner());
            result = guard;
            if waited.timed_out() {
                return Err(EsError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "elasticsearch_timeout_exception",
                    format!(
                        "Timed out waiting for completion of task [{NODE_ID}:{}]",
                        task.id
                    ),
                ));
            }
        }
        let result = result.clone();
        let mut body = json!({"completed": result.is_some(), "task": task.info()});
        match result {
            Some(Ok(response)) => body["response"] = response,
            Some(Err(error)) => body["error"] = error,
            None => {}
        }
        Ok(json_response(StatusCode::OK, &body, pretty))
    })
    .await
}

pub(super) fn cancel_task(api: &EsApi, request: &Request, task_id: &str) -> EsResult {
    let task = api.tasks.find(task_id)?;
    if !task.done() {
        task.progress.cancelled.store(true, Ordering::Relaxed);
    }
    let mut tasks = Map::new();
    tasks.insert(format!("{NODE_ID}:{}", task.id), task.info());
    let body = json!({"nodes": {NODE_ID: {"name": NODE_ID, "tasks": tasks}}});
    Ok(json_response(StatusCode::OK, &body, is_pretty(request)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindex_source_filtering_keeps_named_fields() {
        let document = json!({"a": 1, "b": {"c": 2, "d": 3}, "e": 4});
        assert_eq!(
            keep_fields(&document, &["a".into(), "b.c".into()]),
            json!({"a": 1, "b": {"c": 2}})
        );
        assert_eq!(
            keep_fields(&document, &["b.*".into()]),
            json!({"b": {"c": 2, "d": 3}})
        );
    }

    #[test]
    fn the_registry_forgets_finished_tasks_first_and_refuses_when_all_run() {
        let tasks = Tasks::default();
        let mut first = None;
        for _ in 0..TASKS_MAX {
            let task = tasks
                .register("a", String::new(), Arc::new(Progress::default()))
                .unwrap();
            first.get_or_insert(task);
        }
        assert_eq!(
            tasks
                .register("a", String::new(), Arc::new(Progress::default()))
                .unwrap_err()
                .status,
            StatusCode::TOO_MANY_REQUESTS
        );
        let first = first.unwrap();
        *first.result.lock().unwrap() = Some(Ok(json!({})));
        assert!(
            tasks
                .register("a", String::new(), Arc::new(Progress::default()))
                .is_ok()
        );
        assert_eq!(
            tasks
                .find(&format!("sluice:{}", first.id))
                .unwrap_err()
                .status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            tasks.find("nonsense").unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
