//! Index templates on the wire: composable (`/_index_template/{name}`) and legacy
//! (`/_template/{name}`) — put, get, exists, delete — read into `sluice-search`'s template types,
//! whose settings and mappings the index code checks. Component templates are not built:
//! `composed_of` naming one answers as Elasticsearch does for a missing one, and
//! `/_component_template` says that Sluice has none.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde_json::{Map, Value, json};
use sluice_search::templates::{IndexTemplate, LegacyTemplate, TemplateBody};
use sluice_search::{AliasMetadata, SearchError};

use super::aliases::alias_metadata;
use super::parse_json_body;
use super::{EsApi, EsError, EsResult, blocking, bool_param, is_pretty, json_response, ok};
use crate::http::{Request, Response};

fn unknown(context: &str, key: &str) -> EsError {
    EsError::bad_request(
        "x_content_parse_exception",
        format!("[{context}] unknown field [{key}]"),
    )
}

fn patterns(value: &Value) -> Result<Vec<String>, EsError> {
    let one = |v: &Value| {
        v.as_str().map(str::to_string).ok_or_else(|| {
            EsError::bad_request(
                "x_content_parse_exception",
                "[index_patterns] must hold strings",
            )
        })
    };
    match value {
        Value::Array(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

fn number(key: &str, value: &Value) -> Result<u64, EsError> {
    value.as_u64().ok_or_else(|| {
        EsError::bad_request(
            "x_content_parse_exception",
            format!("[{key}] must be a non-negative integer, got [{value}]"),
        )
    })
}

/// `aliases` of a template or of `PUT /{index}`: `{name: {filter, routing, …}}`.
pub(crate) fn parse_aliases(value: &Value) -> Result<BTreeMap<String, AliasMetadata>, EsError> {
    let Some(aliases) = value.as_object() else {
        return Err(EsError::bad_request(
            "x_content_parse_exception",
            "[aliases] must be an object",
        ));
    };
    let mut parsed = BTreeMap::new();
    for (name, body) in aliases {
        let empty = Map::new();
        let body = match body {
            Value::Object(body) => body,
            Value::Null => &empty,
            _ => {
                return Err(EsError::bad_request(
                    "x_content_parse_exception",
                    format!("[aliases] alias [{name}] must be an object"),
                ));
            }
        };
        let metadata = alias_metadata(name, body, |key, _| Err(unknown("alias", key)))?;
        parsed.insert(name.clone(), metadata);
    }
    Ok(parsed)
}

/// The `template` part of a composable template, or the body of a legacy one.
fn template_body(
    settings: Option<&Value>,
    mappings: Option<&Value>,
    aliases: Option<&Value>,
) -> Result<TemplateBody, EsError> {
    let aliases = match aliases {
        Some(value) => parse_aliases(value)?,
        None => BTreeMap::new(),
    };
    Ok(TemplateBody::new(settings, mappings, aliases)?)
}

fn parse_index_template(name: &str, body: &Value) -> Result<IndexTemplate, EsError> {
    let Some(body) = body.as_object() else {
        return Err(EsError::parse("request body must be an object"));
    };
    let mut template = IndexTemplate::default();
    let mut composed_of: Vec<String> = Vec::new();
    let mut ignore_missing: Vec<String> = Vec::new();
    for (key, value) in body {
        match key.as_str() {
            "index_patterns" => template.index_patterns = patterns(value)?,
            "template" => {
                let Some(inner) = value.as_object() else {
                    return Err(EsError::bad_request(
                        "x_content_parse_exception",
                        "[template] must be an object",
                    ));
                };
                for key in inner.keys() {
                    if !matches!(key.as_str(), "settings" | "mappings" | "aliases") {
                        if key == "lifecycle" || key == "data_stream_options" {
                            return Err(EsError::illegal_argument(format!(
                                "[template.{key}] is not supported by Sluice: it has no data streams"
                            )));
                        }
                        return Err(unknown("template", key));
                    }
                }
                template.template = template_body(
                    inner.get("settings"),
                    inner.get("mappings"),
                    inner.get("aliases"),
                )?;
            }
            "priority" => template.priority = Some(number(key, value)?),
            "version" => template.version = Some(number(key, value)?),
            "_meta" => template.meta = Some(value.clone()),
            "allow_auto_create" => {
                template.allow_auto_create = Some(value.as_bool().ok_or_else(|| {
                    EsError::bad_request(
                        "x_content_parse_exception",
                        "[allow_auto_create] must be a boolean",
                    )
                })?)
            }
            "composed_of" => composed_of = patterns(value)?,
            "ignore_missing_component_templates" => ignore_missing = patterns(value)?,
            "deprecated" => {}
            "data_stream" => {
                return Err(EsError::illegal_argument(format!(
                    "index template [{name}] has [data_stream], which Sluice does not support: it has no data streams"
                )));
            }
            other => return Err(unknown("index_template", other)),
        }
    }
    // Sluice has no component templates, so every one named is missing, as Elasticsearch
    // reports a missing one, unless the template says it may be.
    let missing: Vec<&String> = composed_of
        .iter()
        .filter(|c| !ignore_missing.contains(c))
        .collect();
    if !missing.is_empty() {
        return Err(EsError::illegal_argument(format!(
            "index template [{name}] specifies component templates [{}] that do not exist",
            missing
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(template)
}

fn parse_legacy_template(body: &Value) -> Result<LegacyTemplate, EsError> {
    let Some(body) = body.as_object() else {
        return Err(EsError::parse("request body must be an object"));
    };
    let mut template = LegacyTemplate::default();
    for (key, value) in body {
        match key.as_str() {
            "index_patterns" => template.index_patterns = patterns(value)?,
            // Elasticsearch 5's single pattern.
            "template" if value.is_string() => template.index_patterns = patterns(value)?,
            "order" => {
                template.order = value.as_i64().ok_or_else(|| {
                    EsError::bad_request("x_content_parse_exception", "[order] must be an integer")
                })?
            }
            "version" => template.version = Some(number(key, value)?),
            "settings" | "mappings" | "aliases" => {}
            other => return Err(unknown("template", other)),
        }
    }
    template.template = template_body(
        body.get("settings"),
        body.get("mappings"),
        body.get("aliases"),
    )?;
    Ok(template)
}

fn body_of(request: &Request) -> Result<Value, EsError> {
    if request.body.is_empty() {
        return Err(EsError::validation("index patterns are missing"));
    }
    parse_json_body(&request.body, "x_content_parse_exception")
}

/// `PUT|POST /_index_template/{name}`.
pub(super) async fn put_index_template(api: &EsApi, request: &Request, name: &str) -> EsResult {
    let template = parse_index_template(name, &body_of(request)?)?;
    let create = bool_param(request, "create")?.unwrap_or(false);
    let indices = api.node.indices().clone();
    let name = name.to_string();
    blocking(move || Ok(indices.put_index_template(&name, template, create)?)).await?;
    ok(request, json!({"acknowledged": true}))
}

/// `PUT|POST /_template/{name}`.
pub(super) async fn put_legacy_template(api: &EsApi, request: &Request, name: &str) -> EsResult {
    let mut template = parse_legacy_template(&body_of(request)?)?;
    if let Some(order) = request.param("order") {
        template.order = order.parse().map_err(|_| {
            EsError::illegal_argument(format!(
                "Failed to parse int parameter [order] with value [{order}]"
            ))
        })?;
    }
    let create = bool_param(request, "create")?.unwrap_or(false);
    let indices = api.node.indices().clone();
    let name = name.to_string();
    blocking(move || Ok(indices.put_legacy_template(&name, template, create)?)).await?;
    ok(request, json!({"acknowledged": true}))
}

fn template_json(body: &TemplateBody) -> Value {
    let mut json = Map::new();
    if !body.settings.is_empty() {
        json.insert("settings".into(), body.settings_json());
    }
    if let Some(mappings) = &body.mappings {
        json.insert("mappings".into(), mappings.clone());
    }
    if !body.aliases.is_empty() {
        json.insert(
            "aliases".into(),
            sluice_search::templates::aliases_json(&body.aliases),
        );
    }
    Value::Object(json)
}

/// The names of `templates` that `names` (a comma list of names or patterns, or none) selects;
/// `Err` holds the first plain name that matches nothing.
fn selected<'a, T>(
    templates: &'a BTreeMap<String, T>,
    names: Option<&str>,
) -> Result<Vec<(&'a String, &'a T)>, String> {
    let Some(names) = names.filter(|n| !matches!(*n, "" | "*" | "_all")) else {
        return Ok(templates.iter().collect());
    };
    let parts: Vec<&str> = names.split(',').filter(|p| !p.is_empty()).collect();
    for part in &parts {
        if !part.contains('*') && !templates.contains_key(*part) {
            return Err(part.to_string());
        }
    }
    Ok(templates
        .iter()
        .filter(|(name, _)| {
            parts
                .iter()
                .any(|p| sluice_search::pattern::simple_match(p, name))
        })
        .collect())
}

/// `GET|HEAD /_index_template[/{names}]`.
pub(super) fn get_index_templates(
    api: &EsApi,
    request: &Request,
    names: Option<&str>,
    head: bool,
) -> EsResult {
    let catalog = api.node.indices().catalog();
    let found = selected(&catalog.index_templates, names);
    if head {
        let status = match &found {
            Ok(list) if !list.is_empty() => StatusCode::OK,
            _ => StatusCode::NOT_FOUND,
        };
        return Ok(Response::new(status, "application/json", ""));
    }
    let found = found.map_err(|name| {
        EsError::from(SearchError::ResourceNotFound {
            reason: format!("index template matching [{name}] not found"),
        })
    })?;
    let templates: Vec<Value> = found
        .into_iter()
        .map(|(name, template)| {
            let mut body = Map::new();
            body.insert("index_patterns".into(), json!(template.index_patterns));
            body.insert("template".into(), template_json(&template.template));
            body.insert("composed_of".into(), json!([]));
            if let Some(priority) = template.priority {
                body.insert("priority".into(), json!(priority));
            }
            if let Some(version) = template.version {
                body.insert("version".into(), json!(version));
            }
            if let Some(meta) = &template.meta {
                body.insert("_meta".into(), meta.clone());
            }
            if let Some(allow) = template.allow_auto_create {
                body.insert("allow_auto_create".into(), json!(allow));
            }
            json!({"name": name, "index_template": body})
        })
        .collect();
    ok(request, json!({ "index_templates": templates }))
}

/// `GET|HEAD /_template[/{names}]`: an unknown name answers 404 with `{}`, as Elasticsearch.
pub(super) fn get_legacy_templates(
    api: &EsApi,
    request: &Request,
    names: Option<&str>,
    head: bool,
) -> EsResult {
    let catalog = api.node.indices().catalog();
    let found = match selected(&catalog.legacy_templates, names) {
        Ok(found) => found,
        Err(_) => {
            let body = if head { "" } else { "{}" };
            return Ok(Response::new(
                StatusCode::NOT_FOUND,
                "application/json",
                body,
            ));
        }
    };
    let status = if found.is_empty() && names.is_some() {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    if head {
        return Ok(Response::new(status, "application/json", ""));
    }
    let mut body = Map::new();
    for (name, template) in found {
        let mut json = Map::new();
        json.insert("order".into(), json!(template.order));
        if let Some(version) = template.version {
            json.insert("version".into(), json!(version));
        }
        json.insert("index_patterns".into(), json!(template.index_patterns));
        json.insert("settings".into(), template.template.settings_json());
        json.insert(
            "mappings".into(),
            template
                .template
                .mappings
                .clone()
                .unwrap_or_else(|| json!({})),
        );
        json.insert(
            "aliases".into(),
            sluice_search::templates::aliases_json(&template.template.aliases),
        );
        body.insert(name.clone(), Value::Object(json));
    }
    Ok(json_response(
        status,
        &Value::Object(body),
        is_pretty(request),
    ))
}

/// `DELETE /_index_template/{names}` and `DELETE /_template/{names}`.
pub(super) async fn delete_templates(
    api: &EsApi,
    request: &Request,
    names: &str,
    legacy: bool,
) -> EsResult {
    let indices = api.node.indices().clone();
    let names = names.to_string();
    blocking(move || Ok(indices.delete_templates(&names, legacy)?)).await?;
    ok(request, json!({"acknowledged": true}))
}

/// `/_component_template…`: Sluice builds none; say so instead of "no handler" (after reading
/// the body, so that a malformed one gets the error every body gets).
pub(super) fn component_templates(request: &Request) -> EsResult {
    if !request.body.is_empty() {
        parse_json_body(&request.body, "x_content_parse_exception")?;
    }
    Err(EsError::illegal_argument(
        "component templates are not supported by Sluice; put settings, mappings and aliases in the index template's [template]",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composable_templates_in_elasticsearch_shape() {
        let template = parse_index_template(
            "t",
            &json!({
                "index_patterns": "example-*",
                "priority": 7,
                "version": 2,
                "_meta": {"owner": "pipeline"},
                "template": {
                    "settings": {"number_of_replicas": 0},
                    "mappings": {"properties": {"ticker": {"type": "keyword"}}},
                    "aliases": {"example": {}, "{index}-own": {"is_write_index": true}}
                }
            }),
        )
        .unwrap();
        assert_eq!(template.index_patterns, ["example-*"]);
        assert_eq!(template.priority, Some(7));
        assert_eq!(template.template.aliases.len(), 2);
        assert_eq!(
            template_json(&template.template)["settings"],
            json!({"index": {"number_of_replicas": "0"}})
        );
    }

    #[test]
    fn unsupported_template_parts_are_named() {
        let reason = |body: Value| parse_index_template("t", &body).unwrap_err().reason;
        assert_eq!(
            reason(json!({"index_patterns": ["a*"], "composed_of": ["base"]})),
            "index template [t] specifies component templates [base] that do not exist"
        );
        assert!(
            parse_index_template(
                "t",
                &json!({"index_patterns": ["a*"], "composed_of": ["base"], "ignore_missing_component_templates": ["base"]})
            )
            .is_ok()
        );
        assert!(
            reason(json!({"index_patterns": ["a*"], "data_stream": {}})).contains("data_stream")
        );
        assert_eq!(
            reason(json!({"index_patterns": ["a*"], "bogus": 1})),
            "[index_template] unknown field [bogus]"
        );
        assert!(reason(json!({"index_patterns": ["a*"], "template": {"mappings": {"properties": {"a": {"type": "nope"}}}}})).contains("No handler for type [nope]"));
    }

    #[test]
    fn legacy_templates_in_elasticsearch_shape() {
        let template = parse_legacy_template(&json!({
            "index_patterns": ["logs-*"],
            "order": 2,
            "settings": {"index": {"number_of_shards": 1}},
            "mappings": {"properties": {"message": {"type": "text"}}},
            "aliases": {"logs": {}}
        }))
        .unwrap();
        assert_eq!(template.order, 2);
        assert_eq!(template.template.aliases.len(), 1);
        assert!(parse_legacy_template(&json!({"index_patterns": ["a"], "x": 1})).is_err());
    }
}
