//! Alias APIs: `POST /_aliases` (add, remove, remove_index, atomically), `PUT|DELETE
//! /{index}/_alias/{name}`, `GET|HEAD /_alias[/{name}]` and `GET|HEAD /{index}/_alias[/{name}]`.
//! A filter is checked with the search parser before it is stored, as Elasticsearch does.

use std::collections::BTreeSet;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_search::{AliasAction, AliasMetadata, IndicesOptions};

use super::targets::indices_options;
use super::{EsApi, EsError, EsResult, blocking, is_pretty, json_response, ok, parse_json_body};
use crate::http::{Request, Response};

/// Actions one `POST /_aliases` may hold; beyond it, 400.
pub const ALIAS_ACTIONS_MAX: usize = 1000;

/// A string or an array of strings, as `index`/`indices` and `alias`/`aliases` are given.
fn strings(key: &str, value: &Value) -> Result<Vec<String>, EsError> {
    let one = |v: &Value| -> Result<String, EsError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(EsError::bad_request(
                "x_content_parse_exception",
                format!("[{key}] must be a string or an array of strings"),
            )),
        }
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn routing(key: &str, value: &Value) -> Result<String, EsError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(EsError::bad_request(
            "x_content_parse_exception",
            format!("[{key}] must be a string"),
        )),
    }
}

fn boolean(key: &str, value: &Value) -> Result<bool, EsError> {
    value.as_bool().ok_or_else(|| {
        EsError::bad_request(
            "x_content_parse_exception",
            format!("[{key}] must be a boolean"),
        )
    })
}

/// Checks a filter the way a search would read it; a filter that cannot run is refused now
/// rather than at every search through the alias.
fn checked_filter(alias: &str, filter: &Value) -> Result<Value, EsError> {
    if !filter.is_object() {
        return Err(EsError::illegal_argument(format!(
            "failed to parse filter for alias [{alias}]: the filter must be an object"
        )));
    }
    super::search::parse_query(filter).map_err(|error| {
        EsError::illegal_argument(format!(
            "failed to parse filter for alias [{alias}]: {}",
            error.reason
        ))
    })?;
    Ok(filter.clone())
}

/// Reads the alias properties of an `add` action, a `PUT /{index}/_alias/{name}` body or a
/// template's alias; `other` sees every key that is not one of them.
pub(crate) fn alias_metadata(
    alias_for_errors: &str,
    body: &Map<String, Value>,
    mut other: impl FnMut(&str, &Value) -> Result<(), EsError>,
) -> Result<AliasMetadata, EsError> {
    let mut metadata = AliasMetadata::default();
    for (key, value) in body {
        match key.as_str() {
            "filter" => metadata.filter = Some(checked_filter(alias_for_errors, value)?),
            "routing" => {
                let routing = routing(key, value)?;
                metadata.index_routing = Some(routing.clone());
                metadata.search_routing = Some(routing);
            }
            "index_routing" => metadata.index_routing = Some(routing(key, value)?),
            "search_routing" => metadata.search_routing = Some(routing(key, value)?),
            "is_write_index" => metadata.is_write_index = Some(boolean(key, value)?),
            "is_hidden" => metadata.is_hidden = Some(boolean(key, value)?),
            other_key => other(other_key, value)?,
        }
    }
    Ok(metadata)
}

/// One element of `actions`, with the index and alias expressions as given (for the results).
struct ParsedAction {
    action: AliasAction,
    indices: Vec<String>,
    aliases: Vec<String>,
}

fn parse_action(value: &Value) -> Result<ParsedAction, EsError> {
    let Some(object) = value.as_object() else {
        return Err(EsError::parse("[aliases] each action must be an object"));
    };
    let mut entries = object.iter();
    let (Some((kind, body)), None) = (entries.next(), entries.next()) else {
        return Err(EsError::bad_request(
            "x_content_parse_exception",
            "[aliases] each action holds exactly one of [add], [remove] or [remove_index]",
        ));
    };
    if !matches!(kind.as_str(), "add" | "remove" | "remove_index") {
        return Err(EsError::bad_request(
            "x_content_parse_exception",
            format!("[aliases] unknown field [{kind}]"),
        ));
    }
    let Some(body) = body.as_object() else {
        return Err(EsError::bad_request(
            "x_content_parse_exception",
            format!("[{kind}] must be an object"),
        ));
    };
    let mut indices: Option<Vec<String>> = None;
    let mut aliases: Option<Vec<String>> = None;
    let mut must_exist: Option<bool> = None;
    let alias_for_errors = body
        .get("alias")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let metadata = alias_metadata(&alias_for_errors, body, |key, value| {
        match key {
            "index" | "indices" => {
                if indices.is_some() {
                    return Err(EsError::illegal_argument(
                        "Only one of [index] and [indices] is supported",
                    ));
                }
                indices = Some(strings(key, value)?);
            }
            "alias" | "aliases" => {
                if aliases.is_some() {
                    return Err(EsError::illegal_argument(
                        "Only one of [alias] and [aliases] is supported",
                    ));
                }
                aliases = Some(strings(key, value)?);
            }
            "must_exist" => must_exist = Some(boolean(key, value)?),
            other => {
                return Err(EsError::bad_request(
                    "x_content_parse_exception",
                    format!("[{kind}] unknown field [{other}]"),
                ));
            }
        }
        Ok(())
    })?;
    let indices = indices
        .filter(|i| !i.is_empty())
        .ok_or_else(|| EsError::validation("One of [index] or [indices] is required"))?;
    let action = match kind.as_str() {
        "add" if must_exist.is_some() => {
            return Err(EsError::illegal_argument(
                "[must_exist] is unsupported for [ADD]",
            ));
        }
        "remove_index" => {
            if must_exist.is_some() {
                return Err(EsError::illegal_argument(
                    "[must_exist] is unsupported for [REMOVE_INDEX]",
                ));
            }
            if aliases.is_some() || metadata != AliasMetadata::default() {
                return Err(EsError::illegal_argument(
                    "[remove_index] takes only [index] or [indices]",
                ));
            }
            AliasAction::RemoveIndex {
                indices: indices.clone(),
            }
        }
        _ => {
            let aliases = aliases
                .clone()
                .filter(|a| !a.is_empty())
                .ok_or_else(|| EsError::validation("One of [alias] or [aliases] is required"))?;
            if kind == "add" {
                if aliases.iter().any(|a| a.contains('*')) {
                    return Err(EsError::bad_request(
                        "invalid_alias_name_exception",
                        format!(
                            "Invalid alias name [{}]: must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]",
                            aliases.join(",")
                        ),
                    ));
                }
                AliasAction::Add {
                    indices: indices.clone(),
                    aliases,
                    metadata,
                }
            } else {
                if metadata != AliasMetadata::default() {
                    return Err(EsError::illegal_argument(
                        "[remove] takes only [index], [indices], [alias], [aliases] and [must_exist]",
                    ));
                }
                AliasAction::Remove {
                    indices: indices.clone(),
                    aliases,
                    must_exist,
                }
            }
        }
    };
    Ok(ParsedAction {
        action,
        indices,
        aliases: aliases.unwrap_or_default(),
    })
}

fn parse_actions(body: &Value) -> Result<Vec<ParsedAction>, EsError> {
    let Some(body) = body.as_object() else {
        return Err(EsError::parse("request body must be an object"));
    };
    for key in body.keys() {
        if key != "actions" {
            return Err(EsError::bad_request(
                "x_content_parse_exception",
                format!("[aliases] unknown field [{key}]"),
            ));
        }
    }
    let actions = match body.get("actions") {
        Some(Value::Array(actions)) => actions,
        Some(single @ Value::Object(_)) => std::slice::from_ref(single),
        _ => return Err(EsError::validation("no actions specified")),
    };
    if actions.is_empty() {
        return Err(EsError::validation("no actions specified"));
    }
    if actions.len() > ALIAS_ACTIONS_MAX {
        return Err(EsError::illegal_argument(format!(
            "a request may hold at most [{ALIAS_ACTIONS_MAX}] alias actions"
        )));
    }
    actions.iter().map(parse_action).collect()
}

/// Runs alias actions and answers as Elasticsearch 8.14+: `errors`, and `action_results` when
/// some action failed alone.
async fn run_actions(api: &EsApi, request: &Request, parsed: Vec<ParsedAction>) -> EsResult {
    let actions: Vec<AliasAction> = parsed.iter().map(|p| p.action.clone()).collect();
    let indices = api.node.indices().clone();
    let results = blocking(move || Ok(indices.update_aliases(&actions)?)).await?;
    let errors = results.iter().any(|r| r.outcome.is_err());
    let mut body = json!({"acknowledged": true, "errors": errors});
    if errors {
        let action_results: Vec<Value> = parsed
            .iter()
            .zip(results)
            .map(|(parsed, result)| {
                let mut item = json!({
                    "action": {
                        "type": parsed.action.kind(),
                        "indices": parsed.indices,
                        "aliases": parsed.aliases,
                    },
                    "status": 200,
                });
                if let Err(error) = result.outcome {
                    let error = EsError::from(error);
                    item["status"] = json!(error.status.as_u16());
                    item["error"] = error.item_error();
                }
                item
            })
            .collect();
        body["action_results"] = Value::Array(action_results);
    }
    ok(request, body)
}

/// `POST /_aliases`.
pub(super) async fn update_aliases(api: &EsApi, request: &Request) -> EsResult {
    let body = parse_json_body(&request.body, "x_content_parse_exception")?;
    let parsed = parse_actions(&body)?;
    if let Some(grants) = request.grants.as_deref() {
        authorize_actions(api, grants, &parsed)?;
    }
    run_actions(api, request, parsed).await
}

/// Refuses the whole request, as Elasticsearch does, when one of its actions touches an index
/// or alias the sender may not: `indices:admin/aliases` on every index and alias of an add or
/// remove, `indices:admin/delete` on every index of a `remove_index`. A wildcard is allowed
/// only when a permission's pattern covers the wildcard itself.
fn authorize_actions(
    api: &EsApi,
    grants: &crate::roles::Grants,
    parsed: &[ParsedAction],
) -> Result<(), EsError> {
    use super::access::{ALIASES, allowed, index_refusal};
    for action in parsed {
        let (verb, names): (&str, Vec<&String>) = match action.action {
            AliasAction::RemoveIndex { .. } => {
                ("indices:admin/delete", action.indices.iter().collect())
            }
            _ => (
                ALIASES,
                action.indices.iter().chain(action.aliases.iter()).collect(),
            ),
        };
        if let Some(name) = names
            .into_iter()
            .find(|name| !allowed(&api.node, grants, verb, name))
        {
            return Err(index_refusal(grants, verb, &[name]));
        }
    }
    Ok(())
}

/// `PUT|POST /{index}/_alias/{name}`.
pub(super) async fn put_alias(api: &EsApi, request: &Request, index: &str, name: &str) -> EsResult {
    let body = if request.body.is_empty() {
        json!({})
    } else {
        parse_json_body(&request.body, "x_content_parse_exception")?
    };
    let Some(body) = body.as_object() else {
        return Err(EsError::parse("request body must be an object"));
    };
    let metadata = alias_metadata(name, body, |key, _| match key {
        // The path says which; Elasticsearch accepts them in the body too.
        "index" | "alias" => Ok(()),
        other => Err(EsError::bad_request(
            "x_content_parse_exception",
            format!("[alias] unknown field [{other}]"),
        )),
    })?;
    let indices: Vec<String> = index.split(',').map(str::to_string).collect();
    let parsed = ParsedAction {
        action: AliasAction::Add {
            indices: indices.clone(),
            aliases: vec![name.to_string()],
            metadata,
        },
        indices,
        aliases: vec![name.to_string()],
    };
    if name.contains('*') || name.contains(',') {
        return Err(EsError::bad_request(
            "invalid_alias_name_exception",
            format!(
                "Invalid alias name [{name}]: must not contain the following characters [ , \", *, \\, <, |, ,, >, /, ?]"
            ),
        ));
    }
    let indices = api.node.indices().clone();
    let action = parsed.action;
    blocking(move || Ok(indices.update_aliases(&[action])?)).await?;
    ok(request, json!({"acknowledged": true}))
}

/// `DELETE /{index}/_alias/{names}`: names may be a comma list, hold wildcards or be `_all`.
pub(super) async fn delete_alias(
    api: &EsApi,
    request: &Request,
    index: &str,
    names: &str,
) -> EsResult {
    let action = AliasAction::Remove {
        indices: index.split(',').map(str::to_string).collect(),
        aliases: names.split(',').map(str::to_string).collect(),
        must_exist: None,
    };
    let indices = api.node.indices().clone();
    blocking(move || Ok(indices.update_aliases(&[action])?)).await?;
    ok(request, json!({"acknowledged": true, "errors": false}))
}

/// `GET|HEAD /_alias`, `/_alias/{name}`, `/{index}/_alias`, `/{index}/_alias/{name}` (and
/// `/_aliases`): each index with its aliases that match the names. Names that match nothing
/// make the answer 404, with what was found and an `error` saying which are missing.
pub(super) fn get_aliases(
    api: &EsApi,
    request: &Request,
    index: Option<&str>,
    names: Option<&str>,
    head: bool,
) -> EsResult {
    // Elasticsearch lists hidden indices here too.
    let defaults = IndicesOptions {
        expand_hidden: true,
        ..IndicesOptions::LENIENT_EXPAND_OPEN
    };
    let options = indices_options(request, defaults)?;
    let indices = api.node.indices().resolve(index, options)?;
    let catalog = api.node.indices().catalog();
    let patterns: Option<Vec<&str>> = names
        .filter(|n| !matches!(*n, "_all" | "*" | ""))
        .map(|n| n.split(',').filter(|p| !p.is_empty()).collect());
    let mut body = Map::new();
    let mut found: BTreeSet<String> = BTreeSet::new();
    for resolved in &indices {
        let name = resolved.index.name();
        let mut aliases = Map::new();
        for (alias, metadata) in catalog.aliases_of(name).into_iter().flatten() {
            let wanted = match &patterns {
                None => true,
                Some(patterns) => patterns
                    .iter()
                    .any(|p| sluice_search::pattern::simple_match(p, alias)),
            };
            if wanted {
                found.insert(alias.clone());
                aliases.insert(alias.clone(), metadata.to_json());
            }
        }
        if names.is_none() || !aliases.is_empty() {
            body.insert(name.to_string(), json!({ "aliases": aliases }));
        }
    }
    let missing: Vec<&str> = patterns
        .iter()
        .flatten()
        .filter(|p| !p.contains('*') && !found.contains(**p))
        .copied()
        .collect();
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::NOT_FOUND
    };
    if head {
        return Ok(Response::new(status, "application/json", ""));
    }
    if !missing.is_empty() {
        let noun = if missing.len() == 1 {
            "alias"
        } else {
            "aliases"
        };
        body.insert(
            "error".into(),
            Value::String(format!("{noun} [{}] missing", missing.join(","))),
        );
        body.insert("status".into(), json!(404));
    }
    Ok(json_response(
        status,
        &Value::Object(body),
        is_pretty(request),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(value: Value) -> Result<AliasAction, EsError> {
        parse_action(&value).map(|p| p.action)
    }

    #[test]
    fn actions_in_elasticsearch_shapes() {
        assert_eq!(
            action(
                json!({"add": {"index": "a", "alias": "x", "routing": 1, "is_write_index": true}})
            )
            .unwrap(),
            AliasAction::Add {
                indices: vec!["a".into()],
                aliases: vec!["x".into()],
                metadata: AliasMetadata {
                    index_routing: Some("1".into()),
                    search_routing: Some("1".into()),
                    is_write_index: Some(true),
                    ..AliasMetadata::default()
                }
            }
        );
        assert_eq!(
            action(json!({"remove": {"indices": ["a", "b*"], "aliases": "x", "must_exist": true}}))
                .unwrap(),
            AliasAction::Remove {
                indices: vec!["a".into(), "b*".into()],
                aliases: vec!["x".into()],
                must_exist: Some(true)
            }
        );
        assert_eq!(
            action(json!({"remove_index": {"index": "a"}})).unwrap(),
            AliasAction::RemoveIndex {
                indices: vec!["a".into()]
            }
        );
    }

    #[test]
    fn bad_actions_are_refused_with_reasons() {
        let reason = |value: Value| action(value).unwrap_err().reason;
        assert_eq!(
            reason(json!({"add": {"alias": "x"}})),
            "Validation Failed: 1: One of [index] or [indices] is required;"
        );
        assert_eq!(
            reason(json!({"add": {"index": "a"}})),
            "Validation Failed: 1: One of [alias] or [aliases] is required;"
        );
        assert_eq!(
            reason(json!({"add": {"index": "a", "alias": "x", "must_exist": true}})),
            "[must_exist] is unsupported for [ADD]"
        );
        assert_eq!(
            reason(json!({"remove_index": {"index": "a", "must_exist": true}})),
            "[must_exist] is unsupported for [REMOVE_INDEX]"
        );
        assert_eq!(
            reason(json!({"add": {"index": "a", "alias": "x", "bogus": 1}})),
            "[add] unknown field [bogus]"
        );
        assert!(reason(json!({"explode": {}})).contains("unknown field [explode]"));
        assert!(
            reason(json!({"add": {"index": "a", "alias": "x", "filter": {"bogus": {}}}}))
                .starts_with("failed to parse filter for alias [x]")
        );
        assert!(
            reason(json!({"add": {"index": "a", "alias": "x*"}})).contains("Invalid alias name")
        );
        assert!(parse_actions(&json!({"actions": []})).is_err());
    }
}
