//! The `sort` of a search: its JSON shapes (a field name, `{"f": "desc"}`, `{"f": {"order",
//! "missing", "unmapped_type", "mode", "format"}}`, `_score`, `_doc`, an array of them) and the
//! URL's `sort=f:desc,g`, read into `search`'s [`SortKey`]s (`_shard_doc` too; the search
//! checks it has a point in time), `_geo_distance` with its points, and `_script` sorts of type
//! `number` or `string`. Options Sluice does not implement (`nested`, `numeric_type`) are
//! refused by name.

use serde_json::Value;
use sluice_search::{
    FieldSort, GeoDistanceSort, ScriptSort, ScriptSortType, SortKey, SortMissing, SortMode,
    SortOrder,
};

use super::EsError;

/// Sort keys one search may give; beyond it the request is refused (each key costs a column
/// read per matching document).
pub const SORT_KEYS_MAX: usize = 64;

/// Reads the body's `sort`.
pub(crate) fn parse_sort(value: &Value) -> Result<Vec<SortKey>, EsError> {
    let keys = match value {
        Value::Array(items) => items.iter().map(parse_one).collect::<Result<Vec<_>, _>>()?,
        other => vec![parse_one(other)?],
    };
    check_count(keys)
}

fn check_count(keys: Vec<SortKey>) -> Result<Vec<SortKey>, EsError> {
    if keys.len() > SORT_KEYS_MAX {
        return Err(EsError::illegal_argument(format!(
            "a search may sort by at most [{SORT_KEYS_MAX}] keys, got [{}]",
            keys.len()
        )));
    }
    Ok(keys)
}

/// Reads the URL's `sort=field:order,field`.
pub(crate) fn parse_sort_param(param: &str) -> Result<Vec<SortKey>, EsError> {
    let keys = param
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (field, order) = match item.rsplit_once(':') {
                Some((field, order)) => (field, Some(parse_order(&Value::from(order))?)),
                None => (item, None),
            };
            Ok(key_with(field, order))
        })
        .collect::<Result<Vec<_>, EsError>>()?;
    check_count(keys)
}

fn default_order(field: &str) -> SortOrder {
    if field == "_score" {
        SortOrder::Desc
    } else {
        SortOrder::Asc
    }
}

fn key_with(field: &str, order: Option<SortOrder>) -> SortKey {
    let order = order.unwrap_or_else(|| default_order(field));
    match field {
        "_score" => SortKey::Score(order),
        "_doc" => SortKey::Doc(order),
        "_shard_doc" => SortKey::ShardDoc(order),
        _ => SortKey::Field(FieldSort {
            field: field.to_string(),
            order,
            missing: SortMissing::Last,
            unmapped_type: None,
            mode: None,
            format: None,
        }),
    }
}

fn parse_order(value: &Value) -> Result<SortOrder, EsError> {
    match value.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("asc") => Ok(SortOrder::Asc),
        Some("desc") => Ok(SortOrder::Desc),
        _ => Err(EsError::illegal_argument(format!(
            "No enum constant org.elasticsearch.search.sort.SortOrder.{}",
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_uppercase)
        ))),
    }
}

fn parse_mode(value: &Value) -> Result<SortMode, EsError> {
    match value.as_str() {
        Some("min") => Ok(SortMode::Min),
        Some("max") => Ok(SortMode::Max),
        Some("sum") => Ok(SortMode::Sum),
        Some("avg") => Ok(SortMode::Avg),
        Some("median") => Ok(SortMode::Median),
        _ => Err(EsError::illegal_argument(format!(
            "Unknown MultiValueMode [{}]",
            value
                .as_str()
                .map_or_else(|| value.to_string(), str::to_string)
        ))),
    }
}

fn parse_one(value: &Value) -> Result<SortKey, EsError> {
    match value {
        Value::String(field) => Ok(key_with(field, None)),
        Value::Object(object) => {
            let mut entries = object.iter();
            let (Some((field, options)), None) = (entries.next(), entries.next()) else {
                return Err(EsError::parse(format!(
                    "expected a single field name in [sort] but found [{}]",
                    object.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            };
            if matches!(field.as_str(), "_geo_distance" | "_geoDistance") {
                return parse_geo_distance(options);
            }
            if field == "_script" {
                return parse_script_sort(options);
            }
            match options {
                Value::String(_) => Ok(key_with(field, Some(parse_order(options)?))),
                Value::Object(options) => parse_options(field, options),
                other => Err(EsError::parse(format!(
                    "[sort] of [{field}] must be an order or an object, got [{other}]"
                ))),
            }
        }
        other => Err(EsError::parse(format!(
            "[sort] must hold field names or objects, got [{other}]"
        ))),
    }
}

/// `{"_geo_distance": {"<field>": points, "order", "unit", "mode", "distance_type",
/// "ignore_unmapped"}}`; the points are one point in any form or an array of them.
fn parse_geo_distance(options: &Value) -> Result<SortKey, EsError> {
    use sluice_search::geo::{DistanceType, DistanceUnit, parse_point};
    let Value::Object(options) = options else {
        return Err(EsError::parse("[_geo_distance] sort must be an object"));
    };
    let mut field: Option<(String, &Value)> = None;
    let mut order = SortOrder::Asc;
    let mut unit = DistanceUnit::METERS;
    let mut mode = None;
    let mut distance_type = DistanceType::Arc;
    let mut ignore_unmapped = false;
    for (name, value) in options {
        match name.as_str() {
            "order" => order = parse_order(value)?,
            "unit" => {
                unit = value
                    .as_str()
                    .and_then(DistanceUnit::parse)
                    .ok_or_else(|| {
                        EsError::illegal_argument(format!(
                            "No distance unit match [{}]",
                            value.as_str().unwrap_or_default()
                        ))
                    })?;
            }
            "mode" => {
                let parsed = parse_mode(value)?;
                if parsed == SortMode::Sum {
                    return Err(EsError::illegal_argument(
                        "sort_mode [sum] isn't supported for sorting by geo distance",
                    ));
                }
                mode = Some(parsed);
            }
            "distance_type" => {
                distance_type = value
                    .as_str()
                    .and_then(DistanceType::parse)
                    .ok_or_else(|| {
                        EsError::illegal_argument(format!(
                            "No geo distance for [{}]",
                            value.as_str().unwrap_or_default()
                        ))
                    })?;
            }
            "ignore_unmapped" => {
                ignore_unmapped = value
                    .as_bool()
                    .ok_or_else(|| EsError::parse("[ignore_unmapped] must be a boolean"))?;
            }
            "validation_method" => {}
            "nested" | "nested_path" | "nested_filter" => {
                return Err(EsError::illegal_argument(format!(
                    "[{name}] of a geo distance sort is not supported by Sluice yet"
                )));
            }
            other => {
                if let Some((first, _)) = &field {
                    return Err(EsError::parse(format!(
                        "[_geo_distance] sort takes one field, found [{first}] and [{other}]"
                    )));
                }
                field = Some((other.to_string(), value));
            }
        }
    }
    let Some((field, points)) = field else {
        return Err(EsError::parse(
            "[_geo_distance] sort requires a field with points",
        ));
    };
    let bad_point =
        |reason: String| EsError::parse(format!("[_geo_distance] failed to parse point: {reason}"));
    // An array of numbers is one `[lon, lat]` point; any other array is a list of points.
    let points = match points {
        Value::Array(items) if !items.iter().all(Value::is_number) => items
            .iter()
            .map(|item| parse_point(item).map_err(bad_point))
            .collect::<Result<Vec<_>, _>>()?,
        single => vec![parse_point(single).map_err(bad_point)?],
    };
    if points.is_empty() {
        return Err(EsError::parse(
            "[_geo_distance] sort requires at least one point",
        ));
    }
    for point in &points {
        point
            .validate("[_geo_distance] sort")
            .map_err(EsError::illegal_argument)?;
    }
    Ok(SortKey::GeoDistance(GeoDistanceSort {
        field,
        points,
        order,
        unit,
        mode,
        distance_type,
        ignore_unmapped,
    }))
}

/// `{"_script": {"type": "number"|"string", "script": …, "order": …, "mode": …}}`: the
/// script's number or string per document (the Painless subset of `sluice-script`, with
/// `doc`, `params` and `_score`).
fn parse_script_sort(options: &Value) -> Result<SortKey, EsError> {
    let Value::Object(options) = options else {
        return Err(EsError::parse("[_script] sort must be an object"));
    };
    let mut script = None;
    let mut order = SortOrder::Asc;
    let mut kind = None;
    let mut mode = None;
    for (name, value) in options {
        match name.as_str() {
            "script" => script = Some(super::scripts::parse_script(value, false)?),
            "type" => {
                kind = Some(match value.as_str() {
                    Some("number") => ScriptSortType::Number,
                    Some("string") => ScriptSortType::String,
                    _ => {
                        return Err(EsError::illegal_argument(format!(
                            "Unknown ScriptSortType [{}]",
                            value
                                .as_str()
                                .map_or_else(|| value.to_string(), str::to_string)
                        )));
                    }
                })
            }
            "order" => order = parse_order(value)?,
            "mode" => {
                // A script gives one value per document: every mode keeps it, but a string
                // script refuses the modes that need numbers, as Elasticsearch does.
                mode = Some(parse_mode(value)?);
            }
            "nested" => {
                return Err(EsError::illegal_argument(
                    "[nested] of a script sort is not supported by Sluice yet",
                ));
            }
            other => {
                return Err(EsError::parse(format!("[_script] unknown field [{other}]")));
            }
        }
    }
    let script = script.ok_or_else(|| EsError::parse("[_script] requires a [script]"))?;
    let kind = kind.ok_or_else(|| EsError::parse("[_script] requires a [type]"))?;
    if let Some(mode @ (SortMode::Sum | SortMode::Avg | SortMode::Median)) = mode
        && kind == ScriptSortType::String
    {
        return Err(EsError::illegal_argument(format!(
            "script sort of type [string] doesn't support mode [{}]",
            mode.name()
        )));
    }
    Ok(SortKey::Script(ScriptSort {
        script: script.script,
        params: script.params,
        order,
        kind,
    }))
}

fn parse_options(
    field: &str,
    options: &serde_json::Map<String, Value>,
) -> Result<SortKey, EsError> {
    let mut order = None;
    let mut missing = SortMissing::Last;
    let mut unmapped_type = None;
    let mut mode = None;
    let mut format = None;
    for (name, value) in options {
        match name.as_str() {
            "order" => order = Some(parse_order(value)?),
            "missing" => {
                missing = match value {
                    Value::String(s) if s == "_last" => SortMissing::Last,
                    Value::String(s) if s == "_first" => SortMissing::First,
                    Value::Null => SortMissing::Last,
                    other => SortMissing::Value(other.clone()),
                }
            }
            "unmapped_type" => {
                unmapped_type = Some(
                    value
                        .as_str()
                        .ok_or_else(|| EsError::parse("[unmapped_type] must be a string"))?
                        .to_string(),
                )
            }
            "mode" => mode = Some(parse_mode(value)?),
            "format" => {
                format = Some(
                    value
                        .as_str()
                        .ok_or_else(|| EsError::parse("[format] must be a string"))?
                        .to_string(),
                )
            }
            "nested" | "nested_path" | "nested_filter" | "numeric_type" => {
                return Err(EsError::illegal_argument(format!(
                    "[{name}] of a field sort is not supported by Sluice yet"
                )));
            }
            other => {
                return Err(EsError::parse(format!(
                    "[field_sort] unknown field [{other}]"
                )));
            }
        }
    }
    if matches!(field, "_score" | "_doc" | "_shard_doc") {
        if let Some(mode) = mode {
            return Err(EsError::parse(format!(
                "[{field}] sort does not take a [mode], got [{}]",
                mode.name()
            )));
        }
        return Ok(key_with(field, order));
    }
    Ok(SortKey::Field(FieldSort {
        field: field.to_string(),
        order: order.unwrap_or(SortOrder::Asc),
        missing,
        unmapped_type,
        mode,
        format,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(value: Value) -> String {
        match parse_sort(&value) {
            Ok(keys) => format!("ok {keys:?}"),
            Err(error) => error.reason,
        }
    }

    #[test]
    fn sort_shapes_read_into_keys() {
        let keys = parse_sort(&json!([
            "a",
            {"b": "desc"},
            {"c": {"order": "desc", "missing": "_first", "unmapped_type": "long", "mode": "avg"}},
            "_score",
            {"_doc": {"order": "desc"}}
        ]))
        .unwrap();
        assert_eq!(keys.len(), 5);
        assert_eq!(keys[3], SortKey::Score(SortOrder::Desc));
        assert_eq!(keys[4], SortKey::Doc(SortOrder::Desc));
        let SortKey::Field(c) = &keys[2] else {
            panic!("{keys:?}")
        };
        assert_eq!(c.order, SortOrder::Desc);
        assert_eq!(c.missing, SortMissing::First);
        assert_eq!(c.unmapped_type.as_deref(), Some("long"));
        assert_eq!(c.mode, Some(SortMode::Avg));
        assert_eq!(
            parse_sort(&json!("_score")).unwrap(),
            vec![SortKey::Score(SortOrder::Desc)]
        );
        assert_eq!(
            parse_sort_param("t:desc,_doc").unwrap(),
            vec![
                key_with("t", Some(SortOrder::Desc)),
                SortKey::Doc(SortOrder::Asc)
            ]
        );
    }

    #[test]
    fn unsupported_sorts_are_refused_by_name() {
        assert_eq!(
            reason(json!({"_script": {"type": "string", "mode": "avg", "script": "'a'"}})),
            "script sort of type [string] doesn't support mode [avg]"
        );
        assert_eq!(
            reason(json!({"_script": {"type": "text", "script": "'a'"}})),
            "Unknown ScriptSortType [text]"
        );
        assert_eq!(
            reason(json!({"a": {"nested": {"path": "x"}}})),
            "[nested] of a field sort is not supported by Sluice yet"
        );
        assert_eq!(
            reason(json!({"a": {"bogus": 1}})),
            "[field_sort] unknown field [bogus]"
        );
        assert_eq!(
            reason(json!({"a": "sideways"})),
            "No enum constant org.elasticsearch.search.sort.SortOrder.SIDEWAYS"
        );
        assert_eq!(
            reason(json!({"a": {"mode": "most"}})),
            "Unknown MultiValueMode [most]"
        );
        assert_eq!(
            reason(json!({"a": "asc", "b": "desc"})),
            "expected a single field name in [sort] but found [a, b]"
        );
    }
}
