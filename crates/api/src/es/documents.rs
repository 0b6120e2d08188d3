//! Single-document APIs: index, create, get, `_source`, delete, update and `_mget`.

use std::sync::Arc;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_search::version::{Condition, VersionType};
use sluice_search::{
    Index, Query, SearchError, StoredDocument, UpdateRequest, WriteOutcome, WriteRequest,
    WriteResult,
};

use super::search::stored_fields_source;
use super::targets::Restrictions;
use super::{
    EsApi, EsError, EsResult, RawSources, Refresh, blocking, bool_param, is_pretty, json_response,
    parse_json_body, refresh_param, shards_json, u64_param, wildcard_match,
};
use crate::http::Request;

/// Builds a write condition from the version parameters of a request or a bulk item.
pub(crate) fn condition(
    version: Option<u64>,
    version_type: Option<&str>,
    if_seq_no: Option<u64>,
    if_primary_term: Option<u64>,
    create: bool,
) -> Result<Condition, EsError> {
    let version_type =
        match version_type {
            None => None,
            Some(name) => Some(VersionType::parse(name).ok_or_else(|| {
                EsError::illegal_argument(format!("No version type match [{name}]"))
            })?),
        };
    Condition::from_parameters(version, version_type, if_seq_no, if_primary_term, create)
        .map_err(EsError::validation)
}

fn request_condition(request: &Request, create: bool) -> Result<Condition, EsError> {
    let create = create || request.param("op_type") == Some("create");
    if let Some(op_type) = request.param("op_type")
        && op_type != "create"
        && op_type != "index"
    {
        return Err(EsError::illegal_argument(format!(
            "opType must be 'create' or 'index', found: [{op_type}]"
        )));
    }
    condition(
        u64_param(request, "version")?,
        request.param("version_type"),
        u64_param(request, "if_seq_no")?,
        u64_param(request, "if_primary_term")?,
        create,
    )
}

/// The `get` of an update's response (`_update` or a bulk `update` asked for `_source`): the
/// document as the update left it, without the fields the reader's field-level security
/// (`restrictions`) hides.
pub(crate) fn update_get_json(
    outcome: &WriteOutcome,
    filter: &SourceFilter,
    restrictions: &Restrictions,
    raw: &mut RawSources,
) -> Option<Value> {
    let source = restrictions.source(outcome.source.clone())?;
    let mut get =
        json!({"_seq_no": outcome.seq_no, "_primary_term": outcome.primary_term, "found": true});
    if let Some(source) = filter.render(&source, raw) {
        get["_source"] = source;
    }
    Some(get)
}

/// The `_source` an update asks to see: the body's `_source`, else the URL parameters; `None`
/// when it asks for none.
pub(crate) fn update_fetch_source(
    body_source: Option<&Value>,
    request: &Request,
) -> Result<Option<SourceFilter>, EsError> {
    let filter = match body_source {
        Some(spec) => Some(SourceFilter::from_json(spec)?),
        None if request.param("_source").is_some()
            || request.param("_source_includes").is_some()
            || request.param("_source_excludes").is_some() =>
        {
            Some(SourceFilter::from_params(request))
        }
        None => None,
    };
    Ok(filter.filter(|filter| filter.enabled))
}

/// The JSON of a write's result, as single-document APIs and bulk items show it.
pub(crate) fn outcome_json(index: &Index, outcome: &WriteOutcome) -> Value {
    let shards = if outcome.result == WriteResult::Noop {
        json!({"total": 0, "successful": 0, "failed": 0})
    } else {
        shards_json(index)
    };
    json!({
        "_index": index.name(),
        "_id": outcome.id,
        "_version": outcome.version,
        "result": outcome.result.name(),
        "_shards": shards,
        "_seq_no": outcome.seq_no,
        "_primary_term": outcome.primary_term,
    })
}

pub(crate) fn outcome_status(outcome: &WriteOutcome) -> StatusCode {
    match outcome.result {
        WriteResult::Created => StatusCode::CREATED,
        WriteResult::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::OK,
    }
}

/// Makes a completed write visible as the `refresh` parameter asks.
pub(crate) fn apply_refresh(
    index: &Index,
    refresh: Refresh,
    max_seq_no: Option<u64>,
) -> Result<(), SearchError> {
    match (refresh, max_seq_no) {
        (Refresh::Immediate, _) => index.refresh(),
        (Refresh::WaitFor, Some(seq_no)) => index.wait_for_refresh(seq_no),
        _ => Ok(()),
    }
}

async fn write_one(
    api: &EsApi,
    request: &Request,
    index: Arc<Index>,
    write: WriteRequest,
    fetch_source: Option<SourceFilter>,
) -> EsResult {
    let refresh = refresh_param(request)?;
    let restrictions = match &fetch_source {
        Some(_) => super::targets::restrictions_of(
            &api.node,
            request.grants.as_deref(),
            super::access::UPDATE,
            index.name(),
        )?,
        None => Restrictions::default(),
    };
    let _slot = api.slot(&api.write_slots, "write")?;
    let pretty = is_pretty(request);
    blocking(move || {
        let outcome = index.write(vec![write]).pop().unwrap_or_else(|| {
            Err(SearchError::IllegalArgument {
                reason: "empty write".into(),
            })
        })?;
        if outcome.result != WriteResult::Noop {
            apply_refresh(&index, refresh, Some(outcome.seq_no))?;
        }
        let mut body = outcome_json(&index, &outcome);
        if refresh == Refresh::Immediate && outcome.result != WriteResult::Noop {
            body["forced_refresh"] = Value::Bool(true);
        }
        let mut raw = RawSources::default();
        // `_update` with `_source`: the document as the update left it, under `get`.
        if let Some(filter) = fetch_source
            && let Some(get) = update_get_json(&outcome, &filter, &restrictions, &mut raw)
        {
            body["get"] = get;
        }
        let mut response = raw.render(outcome_status(&outcome), &body, pretty);
        if outcome.result == WriteResult::Created {
            response
                .headers
                .push(("location", format!("/{}/_doc/{}", index.name(), outcome.id)));
        }
        Ok(response)
    })
    .await
}

/// Elasticsearch's refusal of a write with `require_alias=true` to a name that is not an alias,
/// so that a typo never creates an index.
pub(crate) fn require_alias_error(index: &str) -> EsError {
    EsError::new(
        StatusCode::NOT_FOUND,
        "index_not_found_exception",
        format!(
            "no such index [{index}] and [require_alias] request flag is [true] and [{index}] is not an alias"
        ),
    )
    .with("index_uuid", "_na_")
    .with("index", index.to_string())
}

/// Sluice has no ingest pipelines: a document sent through one is refused as Elasticsearch
/// refuses an unknown pipeline, rather than indexed untransformed. `_none` means no pipeline.
pub(crate) fn check_pipeline(pipeline: Option<&str>) -> Result<(), EsError> {
    match pipeline {
        None | Some("_none") => Ok(()),
        Some(name) => Err(EsError::illegal_argument(format!(
            "pipeline with id [{name}] does not exist"
        ))),
    }
}

fn check_require_alias(api: &EsApi, request: &Request, index: &str) -> Result<(), EsError> {
    if bool_param(request, "require_alias")?.unwrap_or(false)
        && !api.node.indices().catalog().alias_exists(index)
    {
        return Err(require_alias_error(index));
    }
    Ok(())
}

pub(super) async fn index(
    api: &EsApi,
    request: &Request,
    index: &str,
    id: Option<&str>,
    create: bool,
) -> EsResult {
    let condition = request_condition(request, create)?;
    check_require_alias(api, request, index)?;
    check_pipeline(request.param("pipeline"))?;
    if request.body.is_empty() {
        return Err(EsError::bad_request(
            "parse_exception",
            "request body is required",
        ));
    }
    let document = parse_json_body(&request.body, "document_parsing_exception")?;
    let index = super::write_target(api, index).await?;
    let write = WriteRequest::Index {
        id: id.map(str::to_string),
        source: Arc::from(&request.body[..]),
        document,
        condition,
    };
    write_one(api, request, index, write, None).await
}

pub(super) async fn delete(api: &EsApi, request: &Request, index: &str, id: &str) -> EsResult {
    let condition = request_condition(request, false)?;
    let index = api.node.indices().write_index(index)?;
    write_one(
        api,
        request,
        index,
        WriteRequest::Delete {
            id: id.to_string(),
            condition,
        },
        None,
    )
    .await
}

pub(super) async fn update(api: &EsApi, request: &Request, index: &str, id: &str) -> EsResult {
    if request.param("version").is_some() {
        return Err(EsError::validation(
            "internal versioning can not be used for optimistic concurrency control. Please use `if_seq_no` and `if_primary_term` instead",
        ));
    }
    let condition = condition(
        None,
        None,
        u64_param(request, "if_seq_no")?,
        u64_param(request, "if_primary_term")?,
        false,
    )?;
    let body = parse_json_body(&request.body, "x_content_parse_exception")?;
    let update = parse_update(id, &body, condition)?;
    let fetch_source = update_fetch_source(body.get("_source"), request)?;
    check_require_alias(api, request, index)?;
    let index = super::write_target(api, index).await?;
    write_one(
        api,
        request,
        index,
        WriteRequest::Update(update),
        fetch_source,
    )
    .await
}

/// Reads the body of `_update` (or of a bulk `update` item).
pub(crate) fn parse_update(
    id: &str,
    body: &Value,
    condition: Condition,
) -> Result<UpdateRequest, EsError> {
    let Value::Object(body) = body else {
        return Err(EsError::parse("request body must be an object"));
    };
    let mut update = UpdateRequest {
        id: id.to_string(),
        detect_noop: true,
        condition,
        ..UpdateRequest::default()
    };
    let mut script = None;
    let mut scripted_upsert = false;
    for (key, value) in body {
        match key.as_str() {
            "doc" => update.doc = Some(object_or_error(key, value)?),
            "upsert" => update.upsert = Some(object_or_error(key, value)?),
            "doc_as_upsert" => {
                update.doc_as_upsert = value
                    .as_bool()
                    .ok_or_else(|| EsError::parse("[doc_as_upsert] must be a boolean"))?
            }
            "detect_noop" => {
                update.detect_noop = value
                    .as_bool()
                    .ok_or_else(|| EsError::parse("[detect_noop] must be a boolean"))?
            }
            "_source" => {}
            "scripted_upsert" => {
                scripted_upsert = value
                    .as_bool()
                    .ok_or_else(|| EsError::parse("[scripted_upsert] must be a boolean"))?
            }
            "script" => script = Some(value),
            other => {
                return Err(EsError::bad_request(
                    "x_content_parse_exception",
                    unknown_field("UpdateRequest", other, UPDATE_FIELDS),
                ));
            }
        }
    }
    if let Some(script) = script {
        update.script = Some(super::scripts::parse_script(script, scripted_upsert)?);
    }
    match (&update.doc, &update.script) {
        (None, None) => return Err(EsError::validation("script or doc is missing")),
        (Some(_), Some(_)) => return Err(EsError::validation("can't provide both script and doc")),
        (None, Some(_)) if update.doc_as_upsert => {
            return Err(EsError::validation(
                "doc must be specified if doc_as_upsert is enabled",
            ));
        }
        _ => {}
    }
    if let Condition::IfSeqNo { .. } = update.condition {
        if update.upsert.is_some() {
            return Err(EsError::validation(
                "upsert requests don't support `if_seq_no` and `if_primary_term`",
            ));
        }
        if update.doc_as_upsert {
            return Err(EsError::validation(
                "doc_as_upsert is not supported in combination with `if_seq_no` and `if_primary_term`",
            ));
        }
    }
    Ok(update)
}

/// The fields of an `_update` body, for "did you mean" suggestions.
const UPDATE_FIELDS: &[&str] = &[
    "script",
    "scripted_upsert",
    "upsert",
    "doc",
    "doc_as_upsert",
    "detect_noop",
    "_source",
];

/// Elasticsearch's words for an unknown field of an object it parses, with its "did you mean"
/// suggestions: known fields whose Levenshtein similarity (1 - edits / longer length) is above
/// one half, most similar first.
pub(crate) fn unknown_field(parser: &str, field: &str, known: &[&str]) -> String {
    let mut scored: Vec<(f32, &str)> = known
        .iter()
        .map(|candidate| (similarity(field, candidate), *candidate))
        .filter(|(score, _)| *score > 0.5)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut message = format!("[{parser}] unknown field [{field}]");
    match scored.as_slice() {
        [] => {}
        [(_, only)] => message.push_str(&format!(" did you mean [{only}]?")),
        many => {
            let names: Vec<&str> = many.iter().map(|(_, name)| *name).collect();
            message.push_str(&format!(" did you mean any of [{}]?", names.join(", ")));
        }
    }
    message
}

/// Lucene's `LevenshteinDistance`: 1 minus the edit distance over the longer length.
fn similarity(a: &str, b: &str) -> f32 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let longest = a.len().max(b.len());
    if longest == 0 {
        return 1.0;
    }
    // One row of the edit-distance table at a time: `previous[j]` is the distance between the
    // first i characters of `a` and the first j of `b`.
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut left = i + 1;
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(left);
        for ((cb, diagonal), up) in b.iter().zip(&previous).zip(previous.iter().skip(1)) {
            left = (diagonal + usize::from(ca != cb)).min(up + 1).min(left + 1);
            current.push(left);
        }
        previous = current;
    }
    let distance = previous.last().copied().unwrap_or(longest);
    1.0 - distance as f32 / longest as f32
}

fn object_or_error(key: &str, value: &Value) -> Result<Value, EsError> {
    if value.is_object() {
        Ok(value.clone())
    } else {
        Err(EsError::parse(format!("[{key}] must be an object")))
    }
}

/// Which parts of `_source` to return.
#[derive(Debug, Clone)]
pub(crate) struct SourceFilter {
    pub enabled: bool,
    pub includes: Vec<String>,
    pub excludes: Vec<String>,
}

impl Default for SourceFilter {
    fn default() -> Self {
        SourceFilter {
            enabled: true,
            includes: Vec::new(),
            excludes: Vec::new(),
        }
    }
}

fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl SourceFilter {
    pub fn from_params(request: &Request) -> SourceFilter {
        let mut filter = SourceFilter::default();
        match request.param("_source") {
            Some("false") => filter.enabled = false,
            Some("true") | Some("") | None => {}
            Some(list) => filter.includes = split_list(list),
        }
        if let Some(list) = request.param("_source_includes") {
            filter.includes = split_list(list);
        }
        if let Some(list) = request.param("_source_excludes") {
            filter.excludes = split_list(list);
        }
        filter
    }

    pub fn from_json(value: &Value) -> Result<SourceFilter, EsError> {
        let strings = |value: &Value| -> Result<Vec<String>, EsError> {
            match value {
                Value::String(s) => Ok(vec![s.clone()]),
                Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| EsError::parse("[_source] entries must be strings"))
                    })
                    .collect(),
                _ => Err(EsError::parse(
                    "[_source] must be a boolean, a string, an array or an object",
                )),
            }
        };
        let mut filter = SourceFilter::default();
        match value {
            Value::Bool(enabled) => filter.enabled = *enabled,
            Value::Object(map) => {
                for (key, value) in map {
                    match key.as_str() {
                        "includes" | "include" => filter.includes = strings(value)?,
                        "excludes" | "exclude" => filter.excludes = strings(value)?,
                        other => {
                            return Err(EsError::parse(format!(
                                "Unknown key for a START_ARRAY in [{other}]."
                            )));
                        }
                    }
                }
            }
            other => filter.includes = strings(other)?,
        }
        Ok(filter)
    }

    /// The source for a response: the stored bytes themselves when nothing is filtered out
    /// (through `raw`), the filtered tree otherwise, `None` when the source is not wanted.
    pub fn render(&self, source: &Arc<[u8]>, raw: &mut super::RawSources) -> Option<Value> {
        if self.enabled && self.includes.is_empty() && self.excludes.is_empty() {
            return Some(raw.placeholder(source.clone()));
        }
        self.apply(source)
    }

    /// The filtered source, or `None` when the source is not wanted.
    pub fn apply(&self, source: &[u8]) -> Option<Value> {
        if !self.enabled {
            return None;
        }
        let value: Value = serde_json::from_slice(source).unwrap_or(Value::Null);
        if self.includes.is_empty() && self.excludes.is_empty() {
            return Some(value);
        }
        Some(self.filter_value(&value, "", self.includes.is_empty()))
    }

    fn filter_value(&self, value: &Value, path: &str, included: bool) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = Map::new();
                for (key, child) in map {
                    let child_path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    if self.excludes.iter().any(|p| covers(p, &child_path)) {
                        continue;
                    }
                    let child_included =
                        included || self.includes.iter().any(|p| covers(p, &child_path));
                    if !child.is_object() && !child.is_array() {
                        // A scalar is kept only when selected: a wildcard that might select
                        // paths below an object selects nothing below a scalar.
                        if child_included {
                            out.insert(key.clone(), child.clone());
                        }
                        continue;
                    }
                    let may_descend = child_included
                        || self
                            .includes
                            .iter()
                            .any(|p| p.contains('*') || p.starts_with(&format!("{child_path}.")));
                    if !may_descend {
                        continue;
                    }
                    let filtered = self.filter_value(child, &child_path, child_included);
                    let empty = matches!(&filtered, Value::Object(m) if m.is_empty())
                        || matches!(&filtered, Value::Array(a) if a.is_empty());
                    if child_included || !empty {
                        out.insert(key.clone(), filtered);
                    }
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .filter_map(|item| match item {
                        Value::Object(_) | Value::Array(_) => {
                            Some(self.filter_value(item, path, included))
                        }
                        scalar if included => Some(scalar.clone()),
                        _ => None,
                    })
                    .collect(),
            ),
            scalar => scalar.clone(),
        }
    }
}

/// Whether a source filter pattern selects `path` (or an object above it).
fn covers(pattern: &str, path: &str) -> bool {
    wildcard_match(pattern, path) || path.starts_with(&format!("{pattern}."))
}

/// The `_source` a GET shows (`None` for none), from `_source*` and `stored_fields`.
fn get_source_filter(request: &Request) -> Option<SourceFilter> {
    let explicit = ["_source", "_source_includes", "_source_excludes"]
        .iter()
        .any(|name| request.param(name).is_some())
        .then(|| SourceFilter::from_params(request));
    let stored_fields: Option<Vec<String>> = request.param("stored_fields").map(split_list);
    stored_fields_source(explicit, stored_fields.as_deref())
}

/// Whether a reader with `restrictions` may see document `id`: under DLS it must match one of
/// the queries as the index was last refreshed, so a document written since is not visible to
/// a GET until the next refresh.
fn visible(index: &Index, id: &str, restrictions: &Restrictions) -> Result<bool, SearchError> {
    let Some(dls) = &restrictions.dls else {
        return Ok(true);
    };
    let only = Query::Ids {
        values: vec![id.to_owned()],
        boost: 1.0,
    };
    let scoped = restrictions.restrict(only.with_alias_filters(Some(dls.clone())), index);
    Ok(index.count(&scoped)? > 0)
}

/// Reads one document as a reader with `restrictions` may see it: not at all when its DLS
/// hides it, without the fields its field-level security hides.
fn read_visible(
    index: &Index,
    id: &str,
    realtime: bool,
    refresh: bool,
    restrictions: &Restrictions,
) -> Result<Option<StoredDocument>, SearchError> {
    Ok(match read_document(index, id, realtime, refresh)? {
        Some(document) if visible(index, id, restrictions)? => Some(StoredDocument {
            source: restrictions.source(document.source.clone()),
            ..document
        }),
        _ => None,
    })
}

/// Reads one document as GET sees it: from the last refresh when `realtime` is false, after a
/// refresh when `refresh` asks for one.
fn read_document(
    index: &Index,
    id: &str,
    realtime: bool,
    refresh: bool,
) -> Result<Option<StoredDocument>, SearchError> {
    if refresh {
        index.refresh()?;
    }
    if realtime {
        index.get(id)
    } else {
        index.get_refreshed(id)
    }
}

pub(super) async fn get(
    api: &EsApi,
    request: &Request,
    index_name: &str,
    id: &str,
    source_only: bool,
) -> EsResult {
    let filter = if source_only {
        let filter = SourceFilter::from_params(request);
        if !filter.enabled {
            return Err(EsError::validation("fetching source can not be disabled"));
        }
        Some(filter)
    } else {
        get_source_filter(request)
    };
    let refresh = bool_param(request, "refresh")?.unwrap_or(false);
    let realtime = bool_param(request, "realtime")?.unwrap_or(true);
    let wanted_version = u64_param(request, "version")?;
    if let Some(name) = request.param("version_type")
        && VersionType::parse(name).is_none()
    {
        return Err(EsError::illegal_argument(format!(
            "No version type match [{name}]"
        )));
    }
    let index = api.node.indices().single_index(index_name)?;
    let restrictions = super::targets::restrictions_of(
        &api.node,
        request.grants.as_deref(),
        super::access::GET,
        index.name(),
    )?;
    let pretty = is_pretty(request);
    let id = id.to_string();
    blocking(move || {
        let document = read_visible(&index, &id, realtime, refresh, &restrictions)?;
        // A read's version check is an equality for every version type.
        if let (Some(document), Some(wanted)) = (&document, wanted_version)
            && document.version != wanted
        {
            return Err(EsError::from(SearchError::VersionConflict {
                index: index.name().to_string(),
                id: id.clone(),
                reason: format!(
                    "[{id}]: version conflict, current version [{}] is different than the one provided [{wanted}]",
                    document.version
                ),
            }));
        }
        let not_found = |what: &str| {
            let error = EsError::new(
                StatusCode::NOT_FOUND,
                "resource_not_found_exception",
                format!("{what} not found [{}]/[{id}]", index.name()),
            );
            json_response(error.status, &error.body(), pretty)
        };
        Ok(match (document, source_only) {
            (Some(document), false) => {
                let mut raw = RawSources::default();
                let mut body = json!({
                    "_index": index.name(), "_id": id, "_version": document.version,
                    "_seq_no": document.seq_no, "_primary_term": document.primary_term, "found": true,
                });
                if let (Some(filter), Some(stored)) = (&filter, &document.source)
                    && let Some(source) = filter.render(stored, &mut raw)
                {
                    body["_source"] = source;
                }
                raw.render(StatusCode::OK, &body, pretty)
            }
            (Some(document), true) => match (&filter, &document.source) {
                (Some(filter), Some(stored)) => {
                    let mut raw = RawSources::default();
                    let source = filter.render(stored, &mut raw).unwrap_or(Value::Null);
                    raw.render(StatusCode::OK, &source, pretty)
                }
                _ => not_found("Source"),
            },
            (None, false) => json_response(
                StatusCode::NOT_FOUND,
                &json!({"_index": index.name(), "_id": id, "found": false}),
                pretty,
            ),
            (None, true) => not_found("Document"),
        })
    })
    .await
}

/// The JSON name of a value's first token, as Elasticsearch's parser errors name it.
pub(crate) fn token_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "VALUE_NULL",
        Value::Bool(_) => "VALUE_BOOLEAN",
        Value::Number(_) => "VALUE_NUMBER",
        Value::String(_) => "VALUE_STRING",
        Value::Array(_) => "START_ARRAY",
        Value::Object(_) => "START_OBJECT",
    }
}

fn id_text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::to_string)
        .or_else(|| value.as_i64().map(|i| i.to_string()))
}

pub(super) async fn mget(api: &EsApi, request: &Request, default_index: Option<&str>) -> EsResult {
    let body = parse_json_body(&request.body, "x_content_parse_exception")?;
    let default_filter = get_source_filter(request);
    let default_stored_fields: Option<Vec<String>> = request.param("stored_fields").map(split_list);
    let refresh = bool_param(request, "refresh")?.unwrap_or(false);
    let realtime = bool_param(request, "realtime")?.unwrap_or(true);
    let mut wanted: Vec<(Option<String>, String, Option<SourceFilter>)> = Vec::new();
    match (body.get("docs"), body.get("ids")) {
        (Some(Value::Array(docs)), _) => {
            for (position, doc) in docs.iter().enumerate() {
                let Value::Object(fields) = doc else {
                    return Err(EsError::parse(format!(
                        "docs array element should include an object, got [{}]",
                        token_name(doc)
                    )));
                };
                let mut source = None;
                let mut stored_fields = None;
                for (key, value) in fields {
                    match key.as_str() {
                        "_index" | "_id" | "routing" | "version" | "version_type" => {}
                        "_source" => source = Some(SourceFilter::from_json(value)?),
                        "stored_fields" => {
                            stored_fields = Some(match value {
                                Value::String(list) => split_list(list),
                                Value::Array(items) => items
                                    .iter()
                                    .filter_map(Value::as_str)
                                    .map(str::to_string)
                                    .collect(),
                                other => {
                                    return Err(EsError::parse(format!(
                                        "Unknown key for a {} in [{key}].",
                                        token_name(other)
                                    )));
                                }
                            })
                        }
                        other => {
                            return Err(EsError::parse(format!(
                                "Unknown key for a {} in [{other}].",
                                token_name(value)
                            )));
                        }
                    }
                }
                let index = fields
                    .get("_index")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or(default_index.map(str::to_string));
                let Some(id) = fields.get("_id").and_then(id_text) else {
                    return Err(EsError::validation(format!(
                        "id is missing for doc {position}"
                    )));
                };
                if index.is_none() {
                    return Err(EsError::validation(format!(
                        "index is missing for doc {position}"
                    )));
                }
                let filter = match (source, stored_fields) {
                    (None, None) => default_filter.clone(),
                    (source, stored_fields) => stored_fields_source(
                        source,
                        stored_fields.or(default_stored_fields.clone()).as_deref(),
                    ),
                };
                wanted.push((index, id, filter));
            }
        }
        (_, Some(Value::Array(ids))) => {
            for id in ids {
                let Some(id) = id_text(id) else {
                    return Err(EsError::parse("[ids] must hold strings"));
                };
                let Some(index) = default_index else {
                    return Err(EsError::validation(format!(
                        "index is missing for doc {}",
                        wanted.len()
                    )));
                };
                wanted.push((Some(index.to_string()), id, default_filter.clone()));
            }
        }
        _ => {}
    }
    if wanted.is_empty() {
        return Err(EsError::validation("no documents to get"));
    }
    let indices = api.node.indices().clone();
    let node = api.node.clone();
    let grants = request.grants.clone();
    let pretty = is_pretty(request);
    blocking(move || {
        let mut raw = RawSources::default();
        let mut docs = Vec::with_capacity(wanted.len());
        let mut refreshed: Vec<String> = Vec::new();
        for (index_name, id, filter) in wanted {
            let index_name = index_name.unwrap_or_default();
            if let Some(grants) = &grants
                && !super::access::allowed(&node, grants, super::access::MGET, &index_name)
            {
                let error =
                    super::access::index_refusal(grants, super::access::MGET, &[&index_name]);
                docs.push(json!({"_index": index_name, "_id": id, "error": error.item_error()}));
                continue;
            }
            let index = indices.single_index(&index_name);
            // Through an alias, a document names the index that holds it.
            let index_name = index.as_ref().map_or(index_name, |i| i.name().to_string());
            let found = index.map_err(EsError::from).and_then(|index| {
                // `refresh` refreshes each index once, before its first document is read.
                let refresh_now = refresh && !refreshed.contains(&index_name);
                if refresh_now {
                    refreshed.push(index_name.clone());
                }
                let restrictions = super::targets::restrictions_of(
                    &node,
                    grants.as_deref(),
                    super::access::MGET,
                    index.name(),
                )?;
                Ok(read_visible(&index, &id, realtime, refresh_now, &restrictions)?)
            });
            let doc = match found {
                Ok(Some(document)) => {
                    let mut doc = json!({"_index": index_name, "_id": id, "_version": document.version,
                        "_seq_no": document.seq_no, "_primary_term": document.primary_term, "found": true});
                    if let (Some(filter), Some(stored)) = (&filter, &document.source)
                        && let Some(source) = filter.render(stored, &mut raw)
                    {
                        doc["_source"] = source;
                    }
                    doc
                }
                Ok(None) => json!({"_index": index_name, "_id": id, "found": false}),
                Err(error) => json!({"_index": index_name, "_id": id, "error": error.item_error()}),
            };
            docs.push(doc);
        }
        Ok(raw.render(StatusCode::OK, &json!({ "docs": docs }), pretty))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_get_elasticsearchs_suggestions() {
        assert_eq!(
            unknown_field("UpdateRequest", "dac", UPDATE_FIELDS),
            "[UpdateRequest] unknown field [dac] did you mean [doc]?"
        );
        assert_eq!(
            unknown_field("UpdateRequest", "upsrt", UPDATE_FIELDS),
            "[UpdateRequest] unknown field [upsrt] did you mean [upsert]?"
        );
        assert_eq!(
            unknown_field("UpdateRequest", "surprise", UPDATE_FIELDS),
            "[UpdateRequest] unknown field [surprise]"
        );
        assert_eq!(
            unknown_field("P", "abc", &["abe", "abd", "ab", "zz"]),
            "[P] unknown field [abc] did you mean any of [ab, abd, abe]?"
        );
        assert!((similarity("kitten", "sitting") - (1.0 - 3.0 / 7.0)).abs() < 1e-6);
        assert_eq!(similarity("", ""), 1.0);
    }

    #[test]
    fn upserts_cannot_be_conditioned_on_a_sequence_number() {
        let condition = Condition::IfSeqNo {
            seq_no: 0,
            primary_term: 1,
        };
        let upsert = parse_update("1", &json!({"doc": {}, "upsert": {}}), condition).unwrap_err();
        assert_eq!(
            upsert.reason,
            "Validation Failed: 1: upsert requests don't support `if_seq_no` and `if_primary_term`;"
        );
        let doc_as_upsert =
            parse_update("1", &json!({"doc": {}, "doc_as_upsert": true}), condition).unwrap_err();
        assert_eq!(doc_as_upsert.kind, "action_request_validation_exception");
        assert!(parse_update("1", &json!({"doc": {}}), condition).is_ok());
    }
}
