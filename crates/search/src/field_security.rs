//! Field-level security as the engine sees it: a reader may see only some fields of an index.
//!
//! A read carries the reader's [`FieldFilter`] in its query ([`Restricted`], which
//! `Query::restriction` finds anywhere in the tree). The whole read then runs under the mapping
//! restricted to the fields the filter shows ([`Mappings::restricted_to`]): a query clause, sort,
//! aggregation or `_name` on a hidden field sees an unmapped field and matches nothing, as the
//! security plugin's filtered reader does, and field patterns (`multi_match` over `*`,
//! `query_string`) expand to visible fields only. The sources a read returns (hits, inner hits,
//! `top_hits`) lose their hidden fields ([`filter_source`]). The rules themselves (include and
//! exclude patterns, several roles) belong to whoever builds the filter.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::mapping::{FieldMapping, FieldType, Mappings};
use crate::query::Query;

/// Which fields a reader may see, by dotted path (`customer.name`, `title.keyword`).
pub trait FieldFilter: Send + Sync + fmt::Debug {
    /// Whether the reader sees the field at `path` and its values.
    fn shows(&self, path: &str) -> bool;
    /// Whether the reader sees every field beneath `path` too (a `flattened` field's keys are
    /// not in the mapping, so it stays only when all of them are visible).
    fn shows_all_beneath(&self, path: &str) -> bool;
}

/// A query run under a reader's field filter (see the module docs).
#[derive(Debug, Clone)]
pub struct Restricted {
    pub query: Query,
    pub fields: Arc<dyn FieldFilter>,
    /// The index's mapping restricted to what `fields` shows, taken when the read was scoped:
    /// a field mapped later is hidden from this read.
    pub mappings: Arc<Mappings>,
}

impl PartialEq for Restricted {
    fn eq(&self, other: &Restricted) -> bool {
        self.query == other.query
            && std::ptr::addr_eq(Arc::as_ptr(&self.fields), Arc::as_ptr(&other.fields))
            && self.mappings == other.mappings
    }
}

impl Restricted {
    /// `query` as `fields` lets it run on an index mapped by `mappings`.
    pub fn new(query: Query, fields: Arc<dyn FieldFilter>, mappings: &Mappings) -> Restricted {
        let mappings = Arc::new(mappings.restricted_to(fields.as_ref()));
        Restricted {
            query,
            fields,
            mappings,
        }
    }
}

impl Mappings {
    /// This mapping with only the fields `filter` shows: leaves and multi-fields it hides are
    /// gone, objects left without fields too, and a `flattened` field stays only when every key
    /// under it is visible.
    pub fn restricted_to(&self, filter: &dyn FieldFilter) -> Mappings {
        Mappings {
            properties: restrict_properties("", &self.properties, filter),
            ..self.clone()
        }
    }
}

fn restrict_properties(
    prefix: &str,
    properties: &BTreeMap<String, FieldMapping>,
    filter: &dyn FieldFilter,
) -> BTreeMap<String, FieldMapping> {
    let mut kept = BTreeMap::new();
    for (name, field) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if field.field_type.is_object_like() {
            let properties = restrict_properties(&path, &field.properties, filter);
            if !properties.is_empty() || (field.properties.is_empty() && filter.shows(&path)) {
                kept.insert(
                    name.clone(),
                    FieldMapping {
                        properties,
                        ..field.clone()
                    },
                );
            }
            continue;
        }
        let visible = if field.field_type == FieldType::Flattened {
            filter.shows_all_beneath(&path)
        } else {
            filter.shows(&path)
        };
        let fields: BTreeMap<String, FieldMapping> = field
            .fields
            .iter()
            .filter(|(sub, _)| filter.shows(&format!("{path}.{sub}")))
            .map(|(sub, mapping)| (sub.clone(), mapping.clone()))
            .collect();
        if visible {
            kept.insert(
                name.clone(),
                FieldMapping {
                    fields,
                    ..field.clone()
                },
            );
        }
    }
    kept
}

/// `source` without the fields `filter` hides: an object keeps the members it shows (and is
/// dropped when none is left of a non-empty one), an array filters each element at its own
/// path. `None` when `source` is not JSON (nothing of it is shown then).
pub fn filter_source(source: &[u8], filter: &dyn FieldFilter) -> Option<Arc<[u8]>> {
    let mut value: Value = serde_json::from_slice(source).ok()?;
    filter_value("", &mut value, filter);
    serde_json::to_vec(&value).ok().map(Arc::from)
}

/// Removes from the document (or object) `value`, found at `prefix`, what `filter` hides.
pub fn filter_value(prefix: &str, value: &mut Value, filter: &dyn FieldFilter) {
    if let Value::Object(object) = value {
        let taken = std::mem::take(object);
        *object = filter_object(prefix, taken, filter);
    }
}

fn filter_object(
    prefix: &str,
    object: Map<String, Value>,
    filter: &dyn FieldFilter,
) -> Map<String, Value> {
    let mut kept = Map::new();
    for (key, value) in object {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let Some(value) = filter_member(&path, value, filter) {
            kept.insert(key, value);
        }
    }
    kept
}

fn filter_member(path: &str, value: Value, filter: &dyn FieldFilter) -> Option<Value> {
    match value {
        Value::Object(object) if !object.is_empty() => {
            let kept = filter_object(path, object, filter);
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(items) => {
            let had = !items.is_empty();
            let kept: Vec<Value> = items
                .into_iter()
                .filter_map(|item| filter_member(path, item, filter))
                .collect();
            (!kept.is_empty() || (!had && filter.shows(path))).then_some(Value::Array(kept))
        }
        other => filter.shows(path).then_some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shows paths under any of its prefixes.
    #[derive(Debug)]
    struct Only(Vec<&'static str>);

    impl FieldFilter for Only {
        fn shows(&self, path: &str) -> bool {
            self.0
                .iter()
                .any(|p| path == *p || path.starts_with(&format!("{p}.")))
        }
        fn shows_all_beneath(&self, path: &str) -> bool {
            self.shows(path)
        }
    }

    #[test]
    fn sources_keep_only_what_is_shown() {
        let source = json!({
            "title": "Rush", "year": 2013,
            "cast": {"lead": "Hemsworth", "fee": 10},
            "crew": [{"name": "Howard", "fee": 5}, {"fee": 1}],
            "tags": [], "empty": {}
        });
        let filtered = filter_source(
            source.to_string().as_bytes(),
            &Only(vec!["title", "cast.lead", "crew.name", "tags"]),
        )
        .unwrap();
        let filtered: Value = serde_json::from_slice(&filtered).unwrap();
        assert_eq!(
            filtered,
            json!({"title": "Rush", "cast": {"lead": "Hemsworth"}, "crew": [{"name": "Howard"}], "tags": []})
        );
    }

    #[test]
    fn mappings_lose_hidden_fields_and_emptied_objects() {
        let mappings: Mappings = Mappings::from_json(&json!({"properties": {
            "title": {"type": "text", "fields": {"keyword": {"type": "keyword"}}},
            "ssn": {"type": "keyword"},
            "cast": {"properties": {"fee": {"type": "long"}}},
            "labels": {"type": "flattened"}
        }}))
        .unwrap();
        let restricted = mappings.restricted_to(&Only(vec!["title"]));
        assert!(restricted.field("title").is_some());
        assert!(restricted.field("title.keyword").is_some());
        assert!(restricted.field("ssn").is_none());
        assert!(restricted.field("cast").is_none());
        assert!(restricted.field("labels.x").is_none());
        let keyword_hidden = mappings.restricted_to(&Only(vec!["title.x", "labels"]));
        assert!(keyword_hidden.field("title").is_none());
        assert!(keyword_hidden.field("labels.x").is_some());
    }

    #[test]
    fn a_restriction_is_found_wherever_it_sits() {
        let mappings = Mappings::default();
        let restricted = Query::Restricted(Box::new(Restricted::new(
            Query::match_all(),
            Arc::new(Only(vec!["a"])),
            &mappings,
        )));
        assert!(restricted.restriction().is_some());
        let wrapped = restricted.with_alias_filters(Some(vec![Query::MatchNone]));
        assert!(wrapped.restriction().is_some());
        assert!(Query::match_all().restriction().is_none());
    }
}
