//! What clients ask about fields and names before they search — Kibana's data views and
//! Grafana's data source among them: `_field_caps` (types and capabilities of fields across
//! indices, `include_unmapped`, `filters`, `types`, `index_filter`), `GET
//! /{index}/_mapping/field/{fields}`, and `_resolve/index/{expression}` (the indices and aliases
//! an expression names). All three read the mapping in its Elasticsearch JSON shape.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};
use sluice_search::pattern::simple_match;
use sluice_search::{IndicesOptions, Query};

use super::search::parse_query;
use super::targets::{indices_options, resolve_targets};
use super::{EsApi, EsError, EsResult, bool_param, ok, parse_json_body};
use crate::http::Request;

/// Fields one `_field_caps` request may name; beyond it, 400.
pub const FIELD_CAPS_PATTERNS_MAX: usize = 1024;

/// How a mapped path is mapped.
#[derive(Debug, Clone, PartialEq)]
enum FieldKind {
    Object,
    Leaf,
    /// A multi-field (`title.keyword`) under a leaf.
    MultiField,
}

/// One mapped path with its definition, as the mapping's JSON holds it.
#[derive(Debug, Clone)]
struct MappedField {
    path: String,
    /// The last segment of the path: how `_mapping/field` names the definition.
    leaf_name: String,
    field_type: String,
    kind: FieldKind,
    definition: Value,
}

/// Every path of a mapping (`{"properties": {...}}`), objects included, in depth-first order.
fn mapped_fields(mapping: &Value) -> Vec<MappedField> {
    let mut out = Vec::new();
    if let Some(properties) = mapping.get("properties").and_then(Value::as_object) {
        walk(properties, "", &mut out);
    }
    out
}

fn walk(properties: &Map<String, Value>, prefix: &str, out: &mut Vec<MappedField>) {
    for (name, definition) in properties {
        let path = format!("{prefix}{name}");
        let field_type = definition
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("object")
            .to_string();
        let is_object = field_type == "object" || field_type == "nested";
        out.push(MappedField {
            path: path.clone(),
            leaf_name: name.clone(),
            field_type,
            kind: if is_object {
                FieldKind::Object
            } else {
                FieldKind::Leaf
            },
            definition: definition.clone(),
        });
        if is_object {
            if let Some(children) = definition.get("properties").and_then(Value::as_object) {
                walk(children, &format!("{path}."), out);
            }
            continue;
        }
        for (sub, sub_definition) in definition
            .get("fields")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.push(MappedField {
                path: format!("{path}.{sub}"),
                leaf_name: sub.clone(),
                field_type: sub_definition
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("keyword")
                    .to_string(),
                kind: FieldKind::MultiField,
                definition: sub_definition.clone(),
            });
        }
    }
}

fn matches_any(patterns: &[String], path: &str) -> bool {
    patterns.iter().any(|p| simple_match(p, path))
}

fn comma_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET /_mapping/field/{fields}` and `GET /{index}/_mapping/field/{fields}`.
pub(super) fn get_field_mapping(
    api: &EsApi,
    request: &Request,
    target: Option<&str>,
    fields: &str,
) -> EsResult {
    let patterns = comma_list(fields);
    let options = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let mut body = Map::new();
    for resolved in api.node.indices().resolve(target, options)? {
        let restrictions = super::targets::restrictions_of(
            &api.node,
            request.grants.as_deref(),
            "indices:admin/mappings/fields/get",
            resolved.index.name(),
        )?;
        let mapping = restrictions.mappings(&resolved.index).to_json();
        let mut found = Map::new();
        for field in mapped_fields(&mapping) {
            if field.kind != FieldKind::Object && matches_any(&patterns, &field.path) {
                let mut definition = field.definition.clone();
                if let Some(object) = definition.as_object_mut() {
                    // A leaf's multi-fields are fields of their own here.
                    object.remove("fields");
                }
                found.insert(
                    field.path.clone(),
                    json!({"full_name": field.path, "mapping": {field.leaf_name: definition}}),
                );
            }
        }
        body.insert(
            resolved.index.name().to_string(),
            json!({ "mappings": found }),
        );
    }
    ok(request, Value::Object(body))
}

/// Metadata fields as `_field_caps` lists them: `(name, searchable, aggregatable)`.
const METADATA_FIELDS: &[(&str, bool, bool)] = &[
    ("_id", true, false),
    ("_index", true, true),
    ("_source", false, false),
    ("_version", false, true),
    ("_seq_no", true, true),
    ("_routing", true, false),
    ("_ignored", true, false),
    ("_field_names", true, false),
    ("_doc_count", false, false),
    ("_feature", false, false),
    ("_data_stream_timestamp", false, false),
    ("_nested_path", false, false),
    ("_tier", true, true),
];

/// One type of one field in one index.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Capability {
    searchable: bool,
    aggregatable: bool,
    metadata: bool,
}

fn capability(field: &MappedField) -> Capability {
    let parameter = |name: &str| field.definition.get(name).and_then(Value::as_bool);
    let (searchable, aggregatable) = match (&field.kind, field.field_type.as_str()) {
        (FieldKind::Object, _) => (false, false),
        (_, "text") => (
            parameter("index") != Some(false),
            parameter("fielddata") == Some(true),
        ),
        _ => {
            let doc_values = parameter("doc_values") != Some(false);
            // Fields with doc values stay searchable without an index (Elasticsearch 8.1+).
            (parameter("index") != Some(false) || doc_values, doc_values)
        }
    };
    Capability {
        searchable,
        aggregatable,
        metadata: false,
    }
}

/// The `filters` parameter of `_field_caps`.
#[derive(Debug, Default)]
struct CapsFilters {
    only_metadata: bool,
    no_metadata: bool,
    no_nested: bool,
    no_multifield: bool,
    no_parent: bool,
}

fn caps_filters(text: Option<&str>) -> Result<CapsFilters, EsError> {
    let mut filters = CapsFilters::default();
    for filter in text.map(comma_list).unwrap_or_default() {
        match filter.as_str() {
            "+metadata" => filters.only_metadata = true,
            "-metadata" => filters.no_metadata = true,
            "-nested" => filters.no_nested = true,
            "-multifield" => filters.no_multifield = true,
            "-parent" => filters.no_parent = true,
            other => {
                return Err(EsError::illegal_argument(format!(
                    "[{other}] is not a valid filter, valid filters are [+metadata, -metadata, -nested, -multifield, -parent]"
                )));
            }
        }
    }
    Ok(filters)
}

/// The parts of a `_field_caps` body.
struct CapsBody {
    fields: Vec<String>,
    index_filter: Option<Query>,
}

fn caps_body(request: &Request) -> Result<CapsBody, EsError> {
    let mut body = CapsBody {
        fields: request.param("fields").map(comma_list).unwrap_or_default(),
        index_filter: None,
    };
    if request.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(body);
    }
    let Value::Object(json) = parse_json_body(&request.body, "parsing_exception")? else {
        return Err(EsError::parse("request body must be an object"));
    };
    for (key, value) in &json {
        match key.as_str() {
            "fields" => {
                let listed = match value {
                    Value::String(text) => comma_list(text),
                    Value::Array(items) => items
                        .iter()
                        .map(|item| {
                            item.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| EsError::parse("[fields] must hold strings"))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(EsError::parse("[fields] must be a string or an array")),
                };
                body.fields.extend(listed);
            }
            "index_filter" => body.index_filter = Some(parse_query(value)?),
            "runtime_mappings" if value.as_object().is_some_and(Map::is_empty) => {}
            "runtime_mappings" => {
                return Err(EsError::illegal_argument(
                    "[runtime_mappings] are not supported by Sluice yet",
                ));
            }
            // Serverless cross-project routing: one project here.
            "project_routing" => {}
            other => {
                return Err(EsError::parse(format!(
                    "request does not support [{other}]"
                )));
            }
        }
    }
    Ok(body)
}

/// `_field_caps`: for each field the patterns select, its type(s) across the target indices and
/// whether each is searchable and aggregatable, as Elasticsearch 8 answers.
pub(super) fn field_caps(api: &EsApi, request: &Request, target: Option<&str>) -> EsResult {
    let body = caps_body(request)?;
    if body.fields.is_empty() {
        return Err(EsError::validation(
            "specified fields can't be null or empty",
        ));
    }
    if body.fields.len() > FIELD_CAPS_PATTERNS_MAX {
        return Err(EsError::illegal_argument(format!(
            "a field capabilities request may name at most [{FIELD_CAPS_PATTERNS_MAX}] fields"
        )));
    }
    let include_unmapped = bool_param(request, "include_unmapped")?.unwrap_or(false);
    let filters = caps_filters(request.param("filters"))?;
    let types: Option<Vec<String>> = request.param("types").map(comma_list);
    let options = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let mut targets = resolve_targets(
        api,
        request,
        "indices:data/read/field_caps",
        target,
        options,
    )?;
    if let Some(filter) = &body.index_filter
        && !matches!(filter, Query::MatchAll { .. })
    {
        // Elasticsearch leaves out the indices where the filter can match nothing.
        let mut kept = Vec::with_capacity(targets.len());
        for target in targets {
            if target.index.count(&target.scope(filter))? > 0 {
                kept.push(target);
            }
        }
        targets = kept;
    }
    // field → type → (capability, indices holding it that way)
    let mut found: BTreeMap<String, BTreeMap<String, Vec<(String, Capability)>>> = BTreeMap::new();
    let index_names: Vec<String> = targets.iter().map(|t| t.index.name().to_string()).collect();
    for target in &targets {
        let index = target.index.name().to_string();
        let mapping = target.restrictions.mappings(&target.index).to_json();
        let fields = mapped_fields(&mapping);
        let mut selected: BTreeSet<String> = BTreeSet::new();
        for field in &fields {
            if matches_any(&body.fields, &field.path) {
                selected.insert(field.path.clone());
                // The parents of a selected field come with it.
                let mut parent = field.path.as_str();
                while let Some((above, _)) = parent.rsplit_once('.') {
                    selected.insert(above.to_string());
                    parent = above;
                }
            }
        }
        for field in &fields {
            if !selected.contains(&field.path) {
                continue;
            }
            let skip = filters.only_metadata
                || (filters.no_multifield && field.kind == FieldKind::MultiField)
                || (filters.no_parent && field.kind == FieldKind::Object)
                || (filters.no_nested && field.field_type == "nested");
            if skip {
                continue;
            }
            found
                .entry(field.path.clone())
                .or_default()
                .entry(field.field_type.clone())
                .or_default()
                .push((index.clone(), capability(field)));
        }
        if !filters.no_metadata {
            for (name, searchable, aggregatable) in METADATA_FIELDS {
                if matches_any(&body.fields, name) {
                    found
                        .entry(name.to_string())
                        .or_default()
                        .entry(name.to_string())
                        .or_default()
                        .push((
                            index.clone(),
                            Capability {
                                searchable: *searchable,
                                aggregatable: *aggregatable,
                                metadata: true,
                            },
                        ));
                }
            }
        }
    }
    let mut fields_json = Map::new();
    for (field, by_type) in found {
        let mut by_type: BTreeMap<String, Vec<(String, Capability)>> = by_type;
        if include_unmapped {
            let mapped: BTreeSet<&String> =
                by_type.values().flatten().map(|(index, _)| index).collect();
            let unmapped: Vec<(String, Capability)> = index_names
                .iter()
                .filter(|index| !mapped.contains(index))
                .map(|index| {
                    (
                        index.clone(),
                        Capability {
                            searchable: false,
                            aggregatable: false,
                            metadata: false,
                        },
                    )
                })
                .collect();
            if !unmapped.is_empty() {
                by_type.insert("unmapped".into(), unmapped);
            }
        }
        if let Some(types) = &types
            && !by_type.keys().any(|t| types.contains(t))
        {
            continue;
        }
        let several_types = by_type.len() > 1;
        let mut types_json = Map::new();
        for (field_type, holders) in by_type {
            let metadata = holders.iter().any(|(_, c)| c.metadata);
            let searchable = holders.iter().all(|(_, c)| c.searchable);
            let aggregatable = holders.iter().all(|(_, c)| c.aggregatable);
            let mut entry = json!({
                "type": field_type,
                "metadata_field": metadata,
                "searchable": searchable,
                "aggregatable": aggregatable,
            });
            if several_types {
                entry["indices"] = json!(holders.iter().map(|(i, _)| i).collect::<Vec<_>>());
            }
            let not_searchable: Vec<&String> = holders
                .iter()
                .filter(|(_, c)| !c.searchable)
                .map(|(i, _)| i)
                .collect();
            if !searchable && not_searchable.len() < holders.len() {
                entry["non_searchable_indices"] = json!(not_searchable);
            }
            let not_aggregatable: Vec<&String> = holders
                .iter()
                .filter(|(_, c)| !c.aggregatable)
                .map(|(i, _)| i)
                .collect();
            if !aggregatable && not_aggregatable.len() < holders.len() {
                entry["non_aggregatable_indices"] = json!(not_aggregatable);
            }
            types_json.insert(field_type, entry);
        }
        fields_json.insert(field, Value::Object(types_json));
    }
    ok(
        request,
        json!({"indices": index_names, "fields": fields_json}),
    )
}

/// `GET /_resolve/index/{expression}`: the indices and aliases the expression names, each
/// index with its aliases and attributes, each alias with its indices (Sluice has no data
/// streams).
pub(super) fn resolve_index(api: &EsApi, request: &Request, expression: &str) -> EsResult {
    // Clients of 9.x POST it, with at most the serverless `project_routing` (one project here).
    if !request.body.iter().all(u8::is_ascii_whitespace) {
        let body = parse_json_body(&request.body, "parsing_exception")?;
        let Some(body) = body.as_object() else {
            return Err(EsError::parse("request body must be an object"));
        };
        if let Some(other) = body.keys().find(|k| k.as_str() != "project_routing") {
            return Err(EsError::parse(format!(
                "request does not support [{other}]"
            )));
        }
    }
    let options = indices_options(request, IndicesOptions::LENIENT_EXPAND_OPEN)?;
    let indices = api.node.indices();
    let catalog = indices.catalog();
    let all = indices.list();
    let mut index_names: BTreeSet<String> = BTreeSet::new();
    let mut alias_names: BTreeSet<String> = BTreeSet::new();
    let mut after_wildcard = false;
    for part in comma_list(expression) {
        if after_wildcard && let Some(excluded) = part.strip_prefix('-') {
            index_names.retain(|n| !simple_match(excluded, n));
            alias_names.retain(|n| !simple_match(excluded, n));
            continue;
        }
        if part == "_all" || part.contains('*') {
            after_wildcard = true;
            let pattern = if part == "_all" { "*" } else { part.as_str() };
            if !options.expand_open {
                continue;
            }
            for index in &all {
                let hidden = index.settings().is_hidden()
                    || (index.name().starts_with('.') && !pattern.starts_with('.'));
                if simple_match(pattern, index.name()) && (!hidden || options.expand_hidden) {
                    index_names.insert(index.name().to_string());
                }
            }
            for alias in catalog.alias_names() {
                let hidden = catalog.alias_is_hidden(alias)
                    || (alias.starts_with('.') && !pattern.starts_with('.'));
                if simple_match(pattern, alias) && (!hidden || options.expand_hidden) {
                    alias_names.insert(alias.to_string());
                }
            }
        } else if indices.exists(&part) {
            index_names.insert(part);
        } else if catalog.alias_exists(&part) {
            alias_names.insert(part);
        } else if !options.ignore_unavailable {
            return Err(sluice_search::SearchError::IndexNotFound { index: part }.into());
        }
    }
    let indices_json: Vec<Value> = index_names
        .iter()
        .filter_map(|name| indices.get(name).ok())
        .map(|index| {
            let mut entry = json!({"name": index.name()});
            let aliases: Vec<&String> = catalog
                .aliases_of(index.name())
                .into_iter()
                .flat_map(|aliases| aliases.keys())
                .collect();
            if !aliases.is_empty() {
                entry["aliases"] = json!(aliases);
            }
            let mut attributes = vec!["open"];
            if index.settings().is_hidden() {
                attributes.insert(0, "hidden");
            }
            entry["attributes"] = json!(attributes);
            entry
        })
        .collect();
    let aliases_json: Vec<Value> = alias_names
        .iter()
        .map(|alias| {
            let members: Vec<&str> = catalog
                .alias_indices(alias)
                .into_iter()
                .map(|(index, _)| index)
                .collect();
            json!({"name": alias, "indices": members})
        })
        .collect();
    ok(
        request,
        json!({"indices": indices_json, "aliases": aliases_json, "data_streams": []}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_a_mapping() {
        let mapping = json!({"properties": {
            "title": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
            "user": {"properties": {"id": {"type": "long"}}},
        }});
        let fields = mapped_fields(&mapping);
        let paths: Vec<(&str, &str)> = fields
            .iter()
            .map(|f| (f.path.as_str(), f.field_type.as_str()))
            .collect();
        assert_eq!(
            paths,
            [
                ("title", "text"),
                ("title.keyword", "keyword"),
                ("user", "object"),
                ("user.id", "long")
            ]
        );
        assert_eq!(fields[1].leaf_name, "keyword");
        let title = capability(&fields[0]);
        assert!(title.searchable && !title.aggregatable);
        assert!(capability(&fields[1]).aggregatable);
        assert!(!capability(&fields[2]).searchable);
    }

    #[test]
    fn filters_are_elasticsearch_s() {
        assert!(caps_filters(Some("-metadata,-parent")).unwrap().no_parent);
        assert!(
            caps_filters(Some("-bogus"))
                .unwrap_err()
                .reason
                .contains("is not a valid filter")
        );
    }
}
