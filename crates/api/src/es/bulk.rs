//! `_bulk`: newline-delimited actions (`index`, `create`, `update`, `delete`) with their sources.
//! Items are grouped by index and applied in order within each index, with one translog fsync per
//! index for the whole request; every item gets its own status, and one bad item never fails the
//! others. A malformed action line fails the request as a whole, as in Elasticsearch.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value, json};
use sluice_search::{Index, SearchError, WriteOutcome, WriteRequest, WriteResult};

use super::documents::{
    SourceFilter, apply_refresh, check_pipeline, condition, outcome_status, parse_update,
    token_name, update_fetch_source, update_get_json,
};
use super::{
    EsApi, EsError, EsResult, RawSources, blocking, is_pretty, json_response, refresh_param,
};
use crate::http::{Request, Response};
use crate::json;
use hyper::StatusCode;

/// Items one bulk request may hold.
pub const BULK_ITEMS_MAX: usize = 100_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Index,
    Create,
    Update,
    Delete,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// One parsed item: where it goes, and the write, or the error that stops it before the engine.
struct Item {
    action: Action,
    index: String,
    id: Option<String>,
    write: Result<WriteRequest, EsError>,
    /// For an `update` that asked for `_source`: which part to show under `get`.
    fetch_source: Option<SourceFilter>,
}

fn lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .map(|(n, line)| (n + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
}

fn malformed(line: usize, reason: impl std::fmt::Display) -> EsError {
    EsError::illegal_argument(format!("Malformed action/metadata line [{line}], {reason}"))
}

/// What the URL sets for every item unless its action line says otherwise.
#[derive(Default)]
struct BulkDefaults {
    index: Option<String>,
    fetch_source: Option<SourceFilter>,
    require_alias: bool,
    pipeline: Option<String>,
    /// The aliases there are, for `require_alias`.
    aliases: BTreeSet<String>,
}

fn parse_items(body: &[u8], defaults: &BulkDefaults) -> Result<Vec<Item>, EsError> {
    let default_index = defaults.index.as_deref();
    let default_fetch_source = defaults.fetch_source.as_ref();
    let mut items = Vec::new();
    let mut lines = lines(body);
    while let Some((number, line)) = lines.next() {
        if items.len() >= BULK_ITEMS_MAX {
            return Err(EsError::illegal_argument(format!(
                "a bulk request may hold at most {BULK_ITEMS_MAX} items"
            )));
        }
        let action_line = match json::parse(line, json::Duplicates::KeepLast) {
            Ok(value) => value,
            Err(error @ json::JsonError::TooDeep { column, .. }) => {
                return Err(EsError::bad_request(
                    "x_content_parse_exception",
                    format!("[{number}:{column}] failed to parse: {error}"),
                ));
            }
            Err(error) => return Err(malformed(number, format!("expected START_OBJECT: {error}"))),
        };
        let Value::Object(action_object) = action_line else {
            return Err(malformed(
                number,
                format!(
                    "expected START_OBJECT but found [{}]",
                    token_name(&action_line)
                ),
            ));
        };
        let mut entries = action_object.into_iter();
        let (name, meta) = match (entries.next(), entries.next()) {
            (Some(entry), None) => entry,
            (None, _) => {
                return Err(malformed(
                    number,
                    "expected FIELD_NAME but found [END_OBJECT]",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(malformed(
                    number,
                    "expected END_OBJECT but found [FIELD_NAME]",
                ));
            }
        };
        let action = match name.as_str() {
            "index" => Action::Index,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            other => {
                return Err(malformed(
                    number,
                    format!(
                        "expected field [create], [delete], [index] or [update] but found [{other}]"
                    ),
                ));
            }
        };
        let Value::Object(meta) = meta else {
            return Err(malformed(
                number,
                format!(
                    "expected START_OBJECT or END_OBJECT but found [{}]",
                    token_name(&meta)
                ),
            ));
        };
        let text = |meta: &Map<String, Value>, key: &str| -> Option<String> {
            meta.get(key).and_then(|v| {
                v.as_str()
                    .map(str::to_string)
                    .or_else(|| v.as_u64().map(|n| n.to_string()))
            })
        };
        for key in meta.keys() {
            if !matches!(
                key.as_str(),
                "_index"
                    | "_id"
                    | "routing"
                    | "version"
                    | "version_type"
                    | "if_seq_no"
                    | "if_primary_term"
                    | "retry_on_conflict"
                    | "pipeline"
                    | "require_alias"
                    | "_source"
                    | "dynamic_templates"
                    | "op_type"
                    | "require_data_stream"
                    | "list_executed_pipelines"
            ) {
                return Err(EsError::illegal_argument(format!(
                    "Action/metadata line [{number}] contains an unknown parameter [{key}]"
                )));
            }
        }
        let Some(index) = text(&meta, "_index").or(default_index.map(str::to_string)) else {
            return Err(EsError::validation("index is missing"));
        };
        let id = text(&meta, "_id");
        let number_of = |key: &str| -> Result<Option<u64>, EsError> {
            match meta.get(key) {
                None => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    malformed(number, format!("[{key}] must be a non-negative number"))
                }),
            }
        };
        let create =
            action == Action::Create || text(&meta, "op_type").as_deref() == Some("create");
        // An `index` action with `op_type: create` is a create, and is reported as one.
        let action = if create { Action::Create } else { action };
        let meta_fetch_source = match meta.get("_source") {
            Some(spec) => Some(SourceFilter::from_json(spec)?),
            None => None,
        };
        let mut fetch_source = None;
        let write_condition = condition(
            number_of("version")?,
            meta.get("version_type").and_then(Value::as_str),
            number_of("if_seq_no")?,
            number_of("if_primary_term")?,
            create,
        );
        let source = if action == Action::Delete {
            None
        } else {
            let Some((_, source)) = lines.next() else {
                return Err(EsError::illegal_argument(format!(
                    "The bulk request must be terminated by a newline [\\n]; action on line [{number}] has no source"
                )));
            };
            Some(source)
        };
        let require_alias = match meta.get("require_alias") {
            Some(Value::Bool(flag)) => *flag,
            Some(other) => {
                return Err(malformed(
                    number,
                    format!("[require_alias] must be a boolean, got [{other}]"),
                ));
            }
            None => defaults.require_alias,
        };
        let pipeline = text(&meta, "pipeline").or(defaults.pipeline.clone());
        let write_condition =
            if require_alias && action != Action::Delete && !defaults.aliases.contains(&index) {
                Err(super::documents::require_alias_error(&index))
            } else if matches!(action, Action::Index | Action::Create) {
                check_pipeline(pipeline.as_deref()).and(write_condition)
            } else {
                write_condition
            };
        let write = write_condition.and_then(|write_condition| match (action, source) {
            (Action::Delete, _) => match &id {
                Some(id) => Ok(WriteRequest::Delete {
                    id: id.clone(),
                    condition: write_condition,
                }),
                None => Err(EsError::validation("id is missing")),
            },
            (Action::Update, Some(source)) => {
                let Some(id) = &id else {
                    return Err(EsError::validation("id is missing"));
                };
                let body = super::parse_json_body(source, "x_content_parse_exception")?;
                // The body's `_source` wins over the action line's, which wins over the URL's.
                fetch_source = match body.get("_source") {
                    Some(spec) => Some(SourceFilter::from_json(spec)?),
                    None => meta_fetch_source.clone().or(default_fetch_source.cloned()),
                }
                .filter(|filter| filter.enabled);
                Ok(WriteRequest::Update(parse_update(
                    id,
                    &body,
                    write_condition,
                )?))
            }
            (_, Some(_)) if id.as_deref() == Some("") => Err(EsError::illegal_argument(
                "if _id is specified it must not be empty",
            )),
            (_, Some(source)) => {
                let document = super::parse_json_body(source, "document_parsing_exception")?;
                Ok(WriteRequest::Index {
                    id: id.clone(),
                    source: Arc::from(source),
                    document,
                    condition: write_condition,
                })
            }
            (_, None) => Err(EsError::validation("source is missing")),
        });
        items.push(Item {
            action,
            index,
            id,
            write,
            fetch_source,
        });
    }
    if items.is_empty() {
        return Err(EsError::validation("no requests added"));
    }
    Ok(items)
}

/// Fails, with Elasticsearch's 403, each item whose action `grants` do not allow on its index
/// (or alias), or whose index does not exist yet and may not be created; the indices refused,
/// with how many items each.
fn authorize_items(
    node: &sluice_node::Node,
    grants: &crate::roles::Grants,
    items: &mut [Item],
) -> BTreeMap<String, usize> {
    use super::access::{CREATE_INDEX, DELETE, INDEX, UPDATE, allowed, index_refusal};
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for item in items.iter_mut().filter(|item| item.write.is_ok()) {
        let action = match item.action {
            Action::Index | Action::Create => INDEX,
            Action::Update => UPDATE,
            Action::Delete => DELETE,
        };
        let index = item.index.as_str();
        let refused = if !allowed(node, grants, action, index) {
            Some(action)
        } else if item.action != Action::Delete
            && !node.indices().exists(index)
            && node.indices().catalog().alias_indices(index).is_empty()
            && !grants.index_allows(CREATE_INDEX, index)
        {
            Some(CREATE_INDEX)
        } else {
            None
        };
        if let Some(action) = refused {
            *refusals.entry(index.to_owned()).or_default() += 1;
            item.write = Err(index_refusal(grants, action, &[index]));
        }
    }
    refusals
}

/// A failed item, with its fields in Elasticsearch's order: `_index`, `_id`, `status`, `error`.
fn item_error_json(action: Action, index: &str, id: Option<&str>, error: &EsError) -> Value {
    let mut body = Map::new();
    body.insert("_index".into(), Value::String(index.to_string()));
    if let Some(id) = id {
        body.insert("_id".into(), Value::String(id.to_string()));
    }
    body.insert("status".into(), json!(error.status.as_u16()));
    body.insert("error".into(), error.item_error());
    json!({ action.name(): body })
}

pub(super) async fn bulk(api: &EsApi, request: &Request, default_index: Option<&str>) -> EsResult {
    let started = Instant::now();
    let refresh = refresh_param(request)?;
    let _slot = api.slot(&api.write_slots, "bulk")?;
    if !request.body.is_empty() && !request.body.ends_with(b"\n") {
        return Err(EsError::illegal_argument(
            "The bulk request must be terminated by a newline [\\n]",
        ));
    }
    let defaults = BulkDefaults {
        index: default_index.map(str::to_string),
        fetch_source: update_fetch_source(None, request)?,
        require_alias: super::bool_param(request, "require_alias")?.unwrap_or(false),
        pipeline: request.param("pipeline").map(str::to_string),
        aliases: api
            .node
            .indices()
            .catalog()
            .alias_names()
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    let indices = api.node.indices().clone();
    let pretty = is_pretty(request);
    let body = request.body.clone();
    let node = api.node.clone();
    let grants = request.grants.clone();
    let authenticator = api.authenticator.clone();
    let raw_path = request.raw_path.clone();
    blocking(move || {
        // Parsing up to 100 MB of NDJSON is CPU work: it runs here, off the async threads.
        let mut items = parse_items(&body, &defaults)?;
        if let (Some(grants), Some(authenticator)) = (&grants, &authenticator) {
            let refusals = authorize_items(&node, grants, &mut items);
            // One audit event per request, however many of its items were refused.
            if !refusals.is_empty() {
                let listed: Vec<String> = refusals
                    .iter()
                    .map(|(index, n)| format!("{index} ({n})"))
                    .collect();
                authenticator.audit().record(crate::audit::AuditEvent {
                    category: crate::audit::Category::PermissionDenied,
                    port: "search",
                    principal: Some(grants.user.clone()),
                    action: "indices:data/write/bulk[s]".to_owned(),
                    resource: listed.join(","),
                    status: 403,
                    reason: format!(
                        "{} items of {raw_path} refused on indices [{}]",
                        refusals.values().sum::<usize>(),
                        listed.join(", ")
                    ),
                });
            }
        }
        // Each item's response, serialised as it completes.
        let mut results: Vec<Option<String>> = vec![None; items.len()];
        let mut errors = false;
        // Group the writes by index, keeping their order within each index.
        let mut groups: BTreeMap<String, Vec<(usize, WriteRequest)>> = BTreeMap::new();
        let actions: Vec<(Action, String, Option<String>)> = items
            .iter()
            .map(|i| (i.action, i.index.clone(), i.id.clone()))
            .collect();
        let fetch_sources: Vec<Option<SourceFilter>> =
            items.iter().map(|i| i.fetch_source.clone()).collect();
        for (position, item) in items.into_iter().enumerate() {
            match item.write {
                Ok(write) => groups
                    .entry(item.index)
                    .or_default()
                    .push((position, write)),
                Err(error) => {
                    errors = true;
                    results[position] = Some(
                        item_error_json(item.action, &item.index, item.id.as_deref(), &error)
                            .to_string(),
                    );
                }
            }
        }
        let mut touched: Vec<(Arc<Index>, u64)> = Vec::new();
        for (index_name, writes) in groups {
            let index = match indices.get_or_create(&index_name) {
                Ok(index) => index,
                Err(error) => {
                    let error = EsError::from(error);
                    for (position, _) in writes {
                        errors = true;
                        let (action, _, id) = &actions[position];
                        results[position] = Some(
                            item_error_json(*action, &index_name, id.as_deref(), &error)
                                .to_string(),
                        );
                    }
                    continue;
                }
            };
            let (positions, requests): (Vec<usize>, Vec<WriteRequest>) = writes.into_iter().unzip();
            let outcomes = index.write(requests);
            // Through an alias, items name the index written.
            let index_json = Value::String(index.name().to_string()).to_string();
            let shards_total = 1 + index.settings().number_of_replicas;
            let mut max_seq_no = None;
            // What an update that shows its document may show, worked out once per index.
            let mut restrictions = None;
            for (position, outcome) in positions.into_iter().zip(outcomes) {
                let (action, _, id) = &actions[position];
                results[position] = Some(match outcome {
                    Ok(outcome) => {
                        max_seq_no = max_seq_no.max(Some(outcome.seq_no));
                        let get = fetch_sources
                            .get(position)
                            .and_then(Option::as_ref)
                            .and_then(|filter| {
                                let restrictions = restrictions.get_or_insert_with(|| {
                                    super::targets::restrictions_of(
                                        &node,
                                        grants.as_deref(),
                                        super::access::UPDATE,
                                        index.name(),
                                    )
                                    // Restrictions that cannot be read show nothing.
                                    .unwrap_or_else(|_| super::targets::Restrictions::nothing())
                                });
                                let mut raw = RawSources::default();
                                let get =
                                    update_get_json(&outcome, filter, restrictions, &mut raw)?;
                                Some(raw.render_text(&get))
                            });
                        outcome_item_json(*action, &index_json, shards_total, &outcome, get)
                    }
                    Err(error) => {
                        errors = true;
                        let id = match &error {
                            SearchError::VersionConflict { id, .. }
                            | SearchError::DocumentMissing { id, .. } => Some(id.clone()),
                            _ => id.clone(),
                        };
                        item_error_json(*action, &index_name, id.as_deref(), &EsError::from(error))
                            .to_string()
                    }
                });
            }
            if let Some(seq_no) = max_seq_no {
                touched.push((index, seq_no));
            }
        }
        for (index, seq_no) in touched {
            apply_refresh(&index, refresh, Some(seq_no))?;
        }
        let mut body = format!(
            "{{\"errors\":{errors},\"took\":{},\"items\":[",
            started.elapsed().as_millis()
        );
        for (n, item) in results.into_iter().enumerate() {
            if n > 0 {
                body.push(',');
            }
            body.push_str(item.as_deref().unwrap_or("null"));
        }
        body.push_str("]}");
        if pretty {
            let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            return Ok(json_response(StatusCode::OK, &value, true));
        }
        Ok(Response::new(StatusCode::OK, "application/json", body))
    })
    .await
}

/// A successful item of the bulk response, written straight to text: building a JSON tree per
/// item and serialising it was a measurable share of a bulk request's CPU.
fn outcome_item_json(
    action: Action,
    index_json: &str,
    shards_total: u64,
    outcome: &WriteOutcome,
    get: Option<String>,
) -> String {
    let (shards_total, shards_successful) = if outcome.result == WriteResult::Noop {
        (0, 0)
    } else {
        (shards_total, 1)
    };
    let get = get.map(|get| format!(",\"get\":{get}")).unwrap_or_default();
    format!(
        "{{\"{}\":{{\"_index\":{index_json},\"_id\":{},\"_version\":{},\"result\":\"{}\",\"_shards\":{{\"total\":{shards_total},\"successful\":{shards_successful},\"failed\":0}},\"_seq_no\":{},\"_primary_term\":{}{get},\"status\":{}}}}}",
        action.name(),
        Value::String(outcome.id.clone()),
        outcome.version,
        outcome.result.name(),
        outcome.seq_no,
        outcome.primary_term,
        outcome_status(outcome).as_u16(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_actions_and_sources() {
        let body = b"{\"index\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"x\":1}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"2\"}}\n\n{\"create\":{\"_id\":\"3\"}}\r\n{\"y\":2}\n";
        let items = parse_items(
            body,
            &BulkDefaults {
                index: Some("b".into()),
                ..BulkDefaults::default()
            },
        )
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[2].index, "b");
        assert!(items.iter().all(|i| i.write.is_ok()));
    }

    #[test]
    fn bad_sources_fail_their_item_only_and_bad_actions_fail_the_request() {
        let items = parse_items(
            b"{\"index\":{\"_index\":\"a\"}}\n{not json\n{\"index\":{\"_index\":\"a\"}}\n{}\n",
            &BulkDefaults::default(),
        )
        .unwrap();
        assert!(items[0].write.is_err() && items[1].write.is_ok());
        assert!(parse_items(b"{\"explode\":{}}\n", &BulkDefaults::default()).is_err());
        assert!(parse_items(b"[1]\n", &BulkDefaults::default()).is_err());
        assert!(parse_items(b"{\"index\":{}}\n{}\n", &BulkDefaults::default()).is_err());
    }

    #[test]
    fn require_alias_refuses_writes_but_not_deletes() {
        let defaults = BulkDefaults {
            require_alias: true,
            ..BulkDefaults::default()
        };
        let items = parse_items(
            b"{\"index\":{\"_index\":\"a\"}}\n{}\n{\"index\":{\"_index\":\"a\",\"require_alias\":false}}\n{}\n{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n",
            &defaults,
        )
        .unwrap();
        let refused = items[0].write.as_ref().unwrap_err();
        assert_eq!(refused.status, hyper::StatusCode::NOT_FOUND);
        assert_eq!(
            refused.reason,
            "no such index [a] and [require_alias] request flag is [true] and [a] is not an alias"
        );
        assert!(items[1].write.is_ok() && items[2].write.is_ok());
    }

    fn nested(depth: usize) -> String {
        format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn deep_action_lines_fail_the_request_and_deep_sources_their_item() {
        let deep = 10 * json::JSON_DEPTH_MAX;
        let body = format!(
            "{{\"index\":{{\"_index\":\"a\"}}}}\n{{}}\n{}\n",
            nested(deep)
        );
        let Err(error) = parse_items(body.as_bytes(), &BulkDefaults::default()) else {
            panic!("a deep action line is refused");
        };
        assert_eq!(error.kind, "x_content_parse_exception");
        assert!(
            error
                .reason
                .starts_with("[3:101] failed to parse: nesting depth"),
            "{}",
            error.reason
        );

        let body = format!(
            "{{\"index\":{{\"_index\":\"a\"}}}}\n{{\"x\":{}}}\n{{\"update\":{{\"_index\":\"a\",\"_id\":\"1\"}}}}\n{{\"doc\":{}}}\n{{\"create\":{{\"_index\":\"a\"}}}}\n{{}}\n",
            nested(deep),
            nested(deep)
        );
        let items = parse_items(body.as_bytes(), &BulkDefaults::default()).unwrap();
        let kinds: Vec<Option<&str>> = items
            .iter()
            .map(|item| item.write.as_ref().err().map(|error| error.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                Some("document_parsing_exception"),
                Some("x_content_parse_exception"),
                None
            ]
        );
    }

    use proptest::prelude::*;

    /// NDJSON lines chosen to reach every branch: actions, sources, broken and deep lines.
    fn line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(r#"{"index":{"_index":"a","_id":"1"}}"#.to_owned()),
            Just(r#"{"create":{"_index":"a"}}"#.to_owned()),
            Just(r#"{"update":{"_index":"a","_id":"1"}}"#.to_owned()),
            Just(r#"{"delete":{"_index":"a","_id":"1"}}"#.to_owned()),
            Just(r#"{"doc":{"x":1}}"#.to_owned()),
            Just(r#"{"x":[1,{"y":2}]}"#.to_owned()),
            Just("{".to_owned()),
            Just(String::new()),
            (0..(2 * json::JSON_DEPTH_MAX)).prop_map(nested),
            (0..(2 * json::JSON_DEPTH_MAX))
                .prop_map(|depth| format!("{{\"index\":{}}}", nested(depth))),
            "[\\[\\]{}\":,a1 ]{0,40}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1_000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = parse_items(
                &bytes,
                &BulkDefaults {
                    index: Some("default".into()),
                    ..BulkDefaults::default()
                },
            );
        }

        #[test]
        fn line_soup_never_panics_and_bounds_every_document(
            lines in prop::collection::vec(line(), 0..12),
        ) {
            let body = lines.join("\n") + "\n";
            if let Ok(items) = parse_items(body.as_bytes(), &BulkDefaults::default()) {
                for item in items {
                    match item.write {
                        Ok(WriteRequest::Index { document, .. }) => {
                            prop_assert!(json::depth(&document) <= json::JSON_DEPTH_MAX);
                        }
                        Ok(WriteRequest::Update(update)) => {
                            let doc = update.doc.unwrap_or_default();
                            prop_assert!(json::depth(&doc) <= json::JSON_DEPTH_MAX);
                        }
                        Ok(WriteRequest::Delete { .. }) | Err(_) => {}
                    }
                }
            }
        }
    }
}
