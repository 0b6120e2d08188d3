//! `fields` and `docvalue_fields` of a search: the values of each hit's fields as the index
//! holds them, under `fields` in the hit.
//!
//! Both are read by parsing the hit's `_source` against its index's mapping, which yields
//! exactly the values the index stored for the document (keywords, numbers, booleans, dates in
//! epoch milliseconds, text): dates print in the request's `format` or the field's own, points
//! of `fields` as GeoJSON or WKT (`format`), other types refuse a `format`, and
//! `docvalue_fields` refuses `text` fields as Elasticsearch does. A mapping without `_source`
//! shows no values. `fields` may include unmapped leaves of the source (`include_unmapped`).

use serde_json::{Map, Value};
use sluice_search::aggs::format::{DateFormat, DecimalFormat};
use sluice_search::geo::GeometryFormat;
use sluice_search::highlight::HighlightField;
use sluice_search::mapping::{FieldType, IndexValue};
use sluice_search::{Index, Mappings};

use super::{EsError, wildcard_match};

/// Patterns one search may ask `fields`/`docvalue_fields` for; beyond it the request is refused.
pub const FIELD_PATTERNS_MAX: usize = 256;

/// One requested pattern.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldPattern {
    pub pattern: String,
    pub format: Option<String>,
    pub include_unmapped: bool,
}

/// Reads `fields` or `docvalue_fields` (`what`): strings or `{"field", "format",
/// "include_unmapped"}` objects.
pub(crate) fn parse_patterns(value: &Value, what: &str) -> Result<Vec<FieldPattern>, EsError> {
    let items = match value {
        Value::Array(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    if items.len() > FIELD_PATTERNS_MAX {
        return Err(EsError::illegal_argument(format!(
            "[{what}] may name at most [{FIELD_PATTERNS_MAX}] fields"
        )));
    }
    items
        .iter()
        .map(|item| match item {
            Value::String(pattern) => Ok(FieldPattern {
                pattern: pattern.clone(),
                format: None,
                include_unmapped: false,
            }),
            Value::Object(object) => {
                let mut pattern = None;
                let mut format = None;
                let mut include_unmapped = false;
                for (key, value) in object {
                    match (key.as_str(), value) {
                        ("field", Value::String(text)) => pattern = Some(text.clone()),
                        ("format", Value::String(text)) => format = Some(text.clone()),
                        ("include_unmapped", Value::Bool(flag)) if what == "fields" => {
                            include_unmapped = *flag
                        }
                        (other, _) => {
                            return Err(EsError::parse(format!(
                                "[{what}] unknown field [{other}]"
                            )));
                        }
                    }
                }
                Ok(FieldPattern {
                    pattern: pattern
                        .ok_or_else(|| EsError::parse(format!("[{what}] requires [field]")))?,
                    format,
                    include_unmapped,
                })
            }
            other => Err(EsError::parse(format!(
                "[{what}] must hold strings or objects, got [{other}]"
            ))),
        })
        .collect()
}

fn date_value(millis: i64, format: &str) -> Result<Value, EsError> {
    DateFormat::format_utc(format, millis)
        .map(Value::String)
        .map_err(EsError::illegal_argument)
}

/// The `fields` of one hit of `index` whose stored source is `source`, or `None` for none.
pub(crate) fn hit_fields(
    index: &Index,
    id: &str,
    source: &[u8],
    fields: &[FieldPattern],
    docvalue_fields: &[FieldPattern],
) -> Result<Option<Value>, EsError> {
    if fields.is_empty() && docvalue_fields.is_empty() {
        return Ok(None);
    }
    let Ok(document) = serde_json::from_slice::<Value>(source) else {
        return Ok(None);
    };
    let mappings = index.mappings();
    let entries = mappings
        .parse_document(id, &document)
        .map(|parsed| parsed.entries)
        .unwrap_or_default();
    let mut out = Map::new();
    let leaves = mappings.leaf_fields();
    for request in docvalue_fields {
        for (path, mapping) in &leaves {
            if !wildcard_match(&request.pattern, path) {
                continue;
            }
            if mapping.field_type == FieldType::Text {
                // Only a field named exactly is an error; a pattern skips text fields.
                if request.pattern == *path {
                    return Err(EsError::illegal_argument(format!(
                        "Fielddata is disabled on [{path}] in [{}]. Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{path}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.",
                        index.name()
                    )));
                }
                continue;
            }
            let values = values_of(&entries, path, mapping.field_type, &mappings, request, true)?;
            if !values.is_empty() {
                out.insert(path.clone(), Value::Array(values));
            }
        }
    }
    for request in fields {
        for (path, mapping) in &leaves {
            if wildcard_match(&request.pattern, path) && !out.contains_key(path) {
                let values = values_of(
                    &entries,
                    path,
                    mapping.field_type,
                    &mappings,
                    request,
                    false,
                )?;
                if !values.is_empty() {
                    out.insert(path.clone(), Value::Array(values));
                }
            }
        }
        if request.include_unmapped {
            let mut unmapped = Vec::new();
            source_leaves("", &document, &mut unmapped);
            for (path, value) in unmapped {
                if mappings.field(&path).is_none() && wildcard_match(&request.pattern, &path) {
                    let values = out.entry(path).or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(values) = values {
                        values.push(value);
                    }
                }
            }
        }
    }
    Ok((!out.is_empty()).then_some(Value::Object(out)))
}

/// The values of `path` among a document's index entries, as `fields` (source order) or
/// `docvalue_fields` (sorted, keywords deduplicated) show them.
fn values_of(
    entries: &[(String, IndexValue)],
    path: &str,
    field_type: FieldType,
    mappings: &Mappings,
    request: &FieldPattern,
    doc_values: bool,
) -> Result<Vec<Value>, EsError> {
    let mut values: Vec<&IndexValue> = entries
        .iter()
        .filter(|(entry, _)| entry == path)
        .map(|(_, value)| value)
        .collect();
    if doc_values {
        values.sort_by(|a, b| match (a, b) {
            (IndexValue::Keyword(a), IndexValue::Keyword(b)) => a.cmp(b),
            (
                IndexValue::Long(a) | IndexValue::Date(a),
                IndexValue::Long(b) | IndexValue::Date(b),
            ) => a.cmp(b),
            (IndexValue::Double(a), IndexValue::Double(b)) => a.total_cmp(b),
            (IndexValue::Boolean(a), IndexValue::Boolean(b)) => a.cmp(b),
            _ => std::cmp::Ordering::Equal,
        });
        if field_type.is_keyword_like() {
            values.dedup();
        }
    }
    let field_format = mappings
        .field(path)
        .map(|mapping| mapping.date_format().to_string());
    let numeric = matches!(
        field_type,
        FieldType::Long
            | FieldType::Integer
            | FieldType::Short
            | FieldType::Byte
            | FieldType::Double
            | FieldType::Float
            | FieldType::ScaledFloat
    );
    // `docvalue_fields` print numbers with a `java.text.DecimalFormat` pattern, as
    // Elasticsearch does (`{"field": "price", "format": "0.00"}` shows "12.30").
    let mut number_format = None;
    let geometry_format = match (field_type, request.format.as_deref()) {
        (FieldType::GeoPoint, format) if !doc_values => {
            GeometryFormat::parse(format).map_err(EsError::illegal_argument)?
        }
        (FieldType::Date, _) | (_, None) => GeometryFormat::GeoJson,
        (_, Some(pattern)) if doc_values && numeric => {
            number_format = Some(DecimalFormat::parse(pattern).map_err(EsError::illegal_argument)?);
            GeometryFormat::GeoJson
        }
        // A geo point's docvalue shows its stored coordinates whatever the format.
        (FieldType::GeoPoint, Some(_)) if doc_values => GeometryFormat::GeoJson,
        (_, Some(_)) => {
            return Err(EsError::illegal_argument(format!(
                "Field [{path}] of type [{}] doesn't support formats.",
                field_type.name()
            )));
        }
    };
    values
        .into_iter()
        .map(|value| {
            Ok(match value {
                IndexValue::Keyword(s) if field_type == FieldType::Ip => {
                    Value::String(sluice_search::ip::decode(s).unwrap_or_else(|| s.clone()))
                }
                IndexValue::Text(s) | IndexValue::Keyword(s) => Value::String(s.clone()),
                // `fields` shows the point as GeoJSON, `docvalue_fields` the stored
                // (quantized) coordinates, as Elasticsearch does.
                IndexValue::GeoPoint(point) if doc_values => {
                    let stored = point.quantized();
                    serde_json::json!({"lat": stored.lat, "lon": stored.lon})
                }
                IndexValue::GeoPoint(point) => point.formatted(geometry_format),
                IndexValue::Long(n) => match &number_format {
                    Some(format) => Value::String(format.format(*n as f64)),
                    None => Value::from(*n),
                },
                IndexValue::Double(f) => match &number_format {
                    Some(format) => Value::String(format.format(*f)),
                    None => serde_json::Number::from_f64(*f)
                        .map(Value::Number)
                        .unwrap_or(Value::Null),
                },
                IndexValue::Boolean(b) => Value::Bool(*b),
                IndexValue::Date(ms) => {
                    let format = request
                        .format
                        .as_deref()
                        .or(field_format.as_deref())
                        .unwrap_or("strict_date_optional_time");
                    date_value(*ms, format)?
                }
            })
        })
        .collect()
}

/// Every leaf of a source by dotted path (array elements under their array's path).
fn source_leaves(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(object) => {
            for (key, child) in object {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                source_leaves(&path, child, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                source_leaves(prefix, item, out);
            }
        }
        Value::Null => {}
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// Reads `highlight` into the fields to highlight, with the top level's options as defaults.
pub(crate) fn parse_highlight(value: &Value) -> Result<Vec<HighlightField>, EsError> {
    let Value::Object(object) = value else {
        return Err(EsError::parse("[highlight] must be an object"));
    };
    let defaults = HighlightField {
        pattern: String::new(),
        pre_tag: "<em>".into(),
        post_tag: "</em>".into(),
        fragment_size: 100,
        number_of_fragments: 5,
        require_field_match: true,
    };
    let defaults = highlight_options(object, defaults, true)?;
    let mut fields = Vec::new();
    let mut add = |name: &str, options: &Value| -> Result<(), EsError> {
        let Value::Object(options) = options else {
            return Err(EsError::parse(format!(
                "[highlight] options of [{name}] must be an object"
            )));
        };
        let mut field = highlight_options(options, defaults.clone(), false)?;
        field.pattern = name.to_string();
        fields.push(field);
        Ok(())
    };
    match object.get("fields") {
        Some(Value::Object(map)) => {
            for (name, options) in map {
                add(name, options)?;
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let Value::Object(map) = item else {
                    return Err(EsError::parse("[highlight] fields must hold objects"));
                };
                for (name, options) in map {
                    add(name, options)?;
                }
            }
        }
        _ => return Err(EsError::parse("[highlight] requires [fields]")),
    }
    Ok(fields)
}

fn highlight_options(
    object: &Map<String, Value>,
    mut field: HighlightField,
    top: bool,
) -> Result<HighlightField, EsError> {
    let first_tag = |value: &Value, name: &str| -> Result<String, EsError> {
        value
            .as_array()
            .and_then(|tags| tags.first())
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                EsError::parse(format!("[highlight] [{name}] must be a list of strings"))
            })
    };
    let size = |value: &Value, name: &str| -> Result<usize, EsError> {
        value
            .as_u64()
            .map(|n| n.min(usize::MAX as u64) as usize)
            .ok_or_else(|| {
                EsError::parse(format!(
                    "[highlight] [{name}] must be a non-negative integer"
                ))
            })
    };
    for (key, value) in object {
        match key.as_str() {
            "fields" if top => {}
            "pre_tags" => field.pre_tag = first_tag(value, key)?,
            "post_tags" => field.post_tag = first_tag(value, key)?,
            "fragment_size" => field.fragment_size = size(value, key)?,
            "number_of_fragments" => field.number_of_fragments = size(value, key)?,
            "require_field_match" => {
                field.require_field_match = value.as_bool().ok_or_else(|| {
                    EsError::parse("[highlight] [require_field_match] must be a boolean")
                })?
            }
            // The unified, plain and fvh highlighters all answer with this one; `order: score`
            // is accepted, fragments come in document order.
            "type" | "order" | "max_analyzed_offset" => {}
            other => {
                return Err(EsError::illegal_argument(format!(
                    "[highlight] option [{other}] is not supported by Sluice yet"
                )));
            }
        }
    }
    Ok(field)
}

/// The `highlight` of one hit, or `None` when nothing matched.
pub(crate) fn hit_highlight(
    index: &Index,
    query: &sluice_search::Query,
    source: &[u8],
    fields: &[HighlightField],
) -> Option<Value> {
    if fields.is_empty() {
        return None;
    }
    let document = serde_json::from_slice::<Value>(source).ok()?;
    let found = sluice_search::highlight::highlight(&index.mappings(), query, &document, fields);
    let map: Map<String, Value> = found
        .into_iter()
        .map(|(path, fragments)| {
            (
                path,
                Value::Array(fragments.into_iter().map(Value::String).collect()),
            )
        })
        .collect();
    (!map.is_empty()).then_some(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patterns_read_strings_and_objects() {
        let patterns = parse_patterns(
            &json!(["a", {"field": "*", "include_unmapped": true}, {"field": "t", "format": "date_time"}]),
            "fields",
        )
        .unwrap();
        assert_eq!(patterns.len(), 3);
        assert!(patterns[1].include_unmapped);
        assert_eq!(patterns[2].format.as_deref(), Some("date_time"));
        let error = parse_patterns(
            &json!([{"field": "a", "include_unmapped": true}]),
            "docvalue_fields",
        )
        .unwrap_err();
        assert_eq!(
            error.reason,
            "[docvalue_fields] unknown field [include_unmapped]"
        );
    }
}
