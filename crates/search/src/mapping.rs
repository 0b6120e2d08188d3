//! Mappings as Elasticsearch defines them: field types, multi-fields, dynamic mapping, and the
//! parsing of a JSON document into the typed values the index stores.
//!
//! A mapping is kept in Elasticsearch's own JSON shape on disk and on the wire, so this module
//! reads and writes that shape. Parsing a document never changes the mapping in place: it returns
//! the entries to index and, when dynamic mapping found new fields, the mapping to adopt, so that
//! a rejected document leaves no trace.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::analysis::Analyzer;
use crate::date;
use crate::error::{Result, SearchError};

/// Fields an index may map in all (`index.mapping.total_fields.limit`).
pub const TOTAL_FIELDS_MAX: usize = 1000;
/// How deep objects may nest (`index.mapping.depth.limit`).
pub const DEPTH_MAX: usize = 20;
/// `nested` fields one mapping may hold (`index.mapping.nested_fields.limit`); a mapping with
/// more is refused (400 `illegal_argument_exception`), as in Elasticsearch.
pub const NESTED_FIELDS_MAX: usize = 50;
/// Nested objects one document may hold across all its `nested` fields, by default
/// (`index.mapping.nested_objects.limit`); a document with more is refused whole (400), so one
/// document cannot become an unbounded number of hidden documents.
pub const NESTED_OBJECTS_MAX_DEFAULT: usize = 10_000;
/// Fields Elasticsearch reserves: a document may not hold them at its root.
const METADATA_FIELDS: &[&str] = &[
    "_id",
    "_index",
    "_source",
    "_version",
    "_seq_no",
    "_primary_term",
    "_routing",
    "_ignored",
    "_field_names",
    "_doc_count",
    "_tier",
    "_data_stream_timestamp",
    "_nested_path",
    "_feature",
];
/// Longest keyword value, in UTF-8 bytes: Lucene's longest term. A document with a longer keyword
/// (not skipped by `ignore_above`) is refused whole, as in Elasticsearch.
pub const KEYWORD_TERM_BYTES_MAX: usize = 32_766;
/// `ignore_above` of the `.keyword` sub-field that dynamic mapping adds to strings.
pub const DYNAMIC_KEYWORD_IGNORE_ABOVE: u64 = 256;

/// What a key under a `flattened` field (`labels.team`) is: a keyword.
static FLATTENED_KEY: std::sync::LazyLock<FieldMapping> =
    std::sync::LazyLock::new(|| FieldMapping::leaf(FieldType::Keyword));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Text,
    Keyword,
    /// A keyword built for `wildcard` and `regexp` queries over long values (Elasticsearch's
    /// `wildcard`); stored and matched as a keyword here, but its terms score a constant 1.
    Wildcard,
    /// A whole JSON object indexed as keywords: each leaf value under `field` and under
    /// `field.key` (dotted key path), as Elasticsearch's `flattened` does.
    Flattened,
    Long,
    Integer,
    Short,
    Byte,
    Double,
    Float,
    /// A decimal stored as `round(value * scaling_factor)`, seen everywhere as that long divided
    /// by the factor (Elasticsearch's `scaled_float`).
    ScaledFloat,
    Boolean,
    Date,
    /// An IPv4 or IPv6 address, indexed as a keyword in the sortable form of `ip.rs`.
    Ip,
    /// A latitude/longitude pair, stored in the packed form of `geo.rs`.
    GeoPoint,
    Object,
    /// An object whose each value is indexed as a hidden document of its own beside its
    /// parent, so that queries can match the fields of one object together (`nested.rs`).
    Nested,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Text => "text",
            FieldType::Keyword => "keyword",
            FieldType::Wildcard => "wildcard",
            FieldType::Flattened => "flattened",
            FieldType::Long => "long",
            FieldType::Integer => "integer",
            FieldType::Short => "short",
            FieldType::Byte => "byte",
            FieldType::Double => "double",
            FieldType::Float => "float",
            FieldType::ScaledFloat => "scaled_float",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::Ip => "ip",
            FieldType::GeoPoint => "geo_point",
            FieldType::Object => "object",
            FieldType::Nested => "nested",
        }
    }

    fn from_name(name: &str) -> Option<FieldType> {
        Some(match name {
            "text" => FieldType::Text,
            "keyword" => FieldType::Keyword,
            "wildcard" => FieldType::Wildcard,
            "flattened" => FieldType::Flattened,
            "long" => FieldType::Long,
            "integer" => FieldType::Integer,
            "short" => FieldType::Short,
            "byte" => FieldType::Byte,
            "double" => FieldType::Double,
            "float" => FieldType::Float,
            "scaled_float" => FieldType::ScaledFloat,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "ip" => FieldType::Ip,
            "geo_point" => FieldType::GeoPoint,
            "object" => FieldType::Object,
            "nested" => FieldType::Nested,
            _ => return None,
        })
    }

    /// Keyword-like types: one exact string per value, matched by term, prefix, wildcard,
    /// regexp and fuzzy queries, sorted and aggregated as strings.
    pub fn is_keyword_like(self) -> bool {
        matches!(
            self,
            FieldType::Keyword | FieldType::Wildcard | FieldType::Flattened
        )
    }

    /// Types whose values are objects with `properties`: `object` and `nested`.
    pub fn is_object_like(self) -> bool {
        matches!(self, FieldType::Object | FieldType::Nested)
    }

    fn integer_range(self) -> Option<(i64, i64)> {
        match self {
            FieldType::Long => Some((i64::MIN, i64::MAX)),
            FieldType::Integer => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
            FieldType::Short => Some((i64::from(i16::MIN), i64::from(i16::MAX))),
            FieldType::Byte => Some((i64::from(i8::MIN), i64::from(i8::MAX))),
            _ => None,
        }
    }

    /// Parameters a field of this type accepts besides `type`, `fields` and `properties`.
    /// Those Sluice does not act on yet are kept so that a mapping round-trips unchanged.
    fn accepts_parameter(self, name: &str) -> bool {
        const COMMON: &[&str] = &["index", "store", "doc_values", "meta", "copy_to", "boost"];
        let specific: &[&str] = match self {
            FieldType::Text => &[
                "analyzer",
                "search_analyzer",
                "search_quote_analyzer",
                "norms",
                "fielddata",
                "fielddata_frequency_filter",
                "index_options",
                "index_phrases",
                "index_prefixes",
                "position_increment_gap",
                "similarity",
                "term_vector",
                "eager_global_ordinals",
            ],
            FieldType::Keyword => &[
                "ignore_above",
                "normalizer",
                "norms",
                "null_value",
                "similarity",
                "index_options",
                "eager_global_ordinals",
                "split_queries_on_whitespace",
            ],
            FieldType::Wildcard => &["ignore_above", "null_value"],
            FieldType::Flattened => &[
                "ignore_above",
                "null_value",
                "depth_limit",
                "eager_global_ordinals",
                "index_options",
                "similarity",
                "split_queries_on_whitespace",
            ],
            FieldType::Long
            | FieldType::Integer
            | FieldType::Short
            | FieldType::Byte
            | FieldType::Double
            | FieldType::Float => &["coerce", "ignore_malformed", "null_value"],
            FieldType::ScaledFloat => {
                &["coerce", "ignore_malformed", "null_value", "scaling_factor"]
            }
            FieldType::Boolean => &["null_value"],
            FieldType::Ip => &["ignore_malformed", "null_value"],
            FieldType::GeoPoint => &[
                "ignore_malformed",
                "ignore_z_value",
                "null_value",
                "script",
                "on_script_error",
            ],
            FieldType::Date => &["format", "locale", "ignore_malformed", "null_value"],
            FieldType::Object => &["dynamic", "enabled", "subobjects"],
            FieldType::Nested => &["dynamic", "include_in_parent", "include_in_root"],
        };
        (!self.is_object_like() && COMMON.contains(&name)) || specific.contains(&name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dynamic {
    True,
    False,
    Strict,
}

impl Dynamic {
    fn parse(value: &Value) -> Option<Dynamic> {
        match value {
            Value::Bool(true) => Some(Dynamic::True),
            Value::Bool(false) => Some(Dynamic::False),
            Value::String(s) if s == "true" => Some(Dynamic::True),
            Value::String(s) if s == "false" => Some(Dynamic::False),
            Value::String(s) if s == "strict" => Some(Dynamic::Strict),
            _ => None,
        }
    }

    fn to_json(self) -> Value {
        match self {
            Dynamic::True => Value::String("true".into()),
            Dynamic::False => Value::String("false".into()),
            Dynamic::Strict => Value::String("strict".into()),
        }
    }
}

/// One mapped field: a leaf with its type, or an object with properties.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMapping {
    pub field_type: FieldType,
    pub properties: BTreeMap<String, FieldMapping>,
    /// Multi-fields: the same value indexed again under `name.sub`.
    pub fields: BTreeMap<String, FieldMapping>,
    pub dynamic: Option<Dynamic>,
    /// Other accepted parameters, kept as given (`format`, `ignore_above`, `analyzer`, …).
    pub parameters: Map<String, Value>,
}

impl FieldMapping {
    fn leaf(field_type: FieldType) -> FieldMapping {
        FieldMapping {
            field_type,
            properties: BTreeMap::new(),
            fields: BTreeMap::new(),
            dynamic: None,
            parameters: Map::new(),
        }
    }

    fn is_indexed(&self) -> bool {
        !matches!(self.parameters.get("index"), Some(Value::Bool(false)))
    }

    fn has_doc_values(&self) -> bool {
        !matches!(self.parameters.get("doc_values"), Some(Value::Bool(false)))
    }

    fn is_enabled(&self) -> bool {
        !matches!(self.parameters.get("enabled"), Some(Value::Bool(false)))
    }

    pub fn date_format(&self) -> &str {
        self.parameters
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or(date::DEFAULT_DATE_FORMAT)
    }

    fn analyzer_parameter(&self, name: &str) -> Option<Analyzer> {
        self.parameters
            .get(name)
            .and_then(Value::as_str)
            .and_then(Analyzer::from_name)
    }

    /// The analyzer of a `text` field's values at index time (`standard` unless mapped).
    pub fn analyzer(&self) -> Analyzer {
        self.analyzer_parameter("analyzer")
            .unwrap_or(Analyzer::Standard)
    }

    /// The analyzer of query text searching this field: `search_analyzer`, else `analyzer`.
    pub fn search_analyzer(&self) -> Analyzer {
        self.analyzer_parameter("search_analyzer")
            .unwrap_or_else(|| self.analyzer())
    }

    /// The analyzer of phrases searching this field (`search_quote_analyzer`).
    pub fn search_quote_analyzer(&self) -> Analyzer {
        self.analyzer_parameter("search_quote_analyzer")
            .unwrap_or_else(|| self.search_analyzer())
    }

    fn ignore_above(&self) -> Option<u64> {
        self.parameters.get("ignore_above").and_then(Value::as_u64)
    }

    fn coerce(&self) -> bool {
        !matches!(self.parameters.get("coerce"), Some(Value::Bool(false)))
    }

    /// `ignore_malformed: true`: a value that does not fit is skipped (the document is kept,
    /// the value stays in `_source` but is not indexed). Objects still fail, as in
    /// Elasticsearch.
    fn ignore_malformed(&self) -> bool {
        matches!(
            self.parameters.get("ignore_malformed"),
            Some(Value::Bool(true))
        )
    }

    fn parse(path: &str, body: &Value, depth: usize) -> Result<FieldMapping> {
        let Value::Object(body) = body else {
            return Err(mapper(format!(
                "Expected map for property [fields] on field [{path}] but got a {}",
                json_kind(body)
            )));
        };
        if depth > DEPTH_MAX {
            return Err(SearchError::illegal(format!(
                "Limit of mapping depth [{DEPTH_MAX}] has been exceeded"
            )));
        }
        let field_type = match body.get("type") {
            None => FieldType::Object,
            Some(Value::String(name)) => FieldType::from_name(name).ok_or_else(|| {
                mapper(format!(
                    "No handler for type [{name}] declared on field [{path}]"
                ))
            })?,
            Some(other) => {
                return Err(mapper(format!(
                    "No handler for type [{other}] declared on field [{path}]"
                )));
            }
        };
        let mut field = FieldMapping::leaf(field_type);
        for (key, value) in body {
            match key.as_str() {
                "type" => {}
                "properties" if field_type.is_object_like() => {
                    field.properties = parse_properties(path, value, depth + 1)?;
                }
                "fields" if !field_type.is_object_like() => {
                    let Value::Object(subfields) = value else {
                        return Err(mapper(format!(
                            "Expected map for property [fields] on field [{path}]"
                        )));
                    };
                    for (name, sub) in subfields {
                        let sub_path = format!("{path}.{name}");
                        let sub_mapping = FieldMapping::parse(&sub_path, sub, depth + 1)?;
                        if sub_mapping.field_type.is_object_like() {
                            return Err(mapper(format!(
                                "Type [{}] cannot be used in multi field [{sub_path}]",
                                sub_mapping.field_type.name()
                            )));
                        }
                        field.fields.insert(name.clone(), sub_mapping);
                    }
                }
                "dynamic" if field_type.is_object_like() => {
                    field.dynamic = Some(Dynamic::parse(value).ok_or_else(|| {
                        mapper(format!(
                            "Could not convert [dynamic] to boolean or [strict] on field [{path}]"
                        ))
                    })?);
                }
                name if field_type.accepts_parameter(name) => {
                    field.validate_parameter(path, name, value)?;
                    field.parameters.insert(name.to_string(), value.clone());
                }
                name => {
                    return Err(mapper(format!(
                        "unknown parameter [{name}] on mapper [{path}] of type [{}]",
                        field_type.name()
                    )));
                }
            }
        }
        if field_type == FieldType::ScaledFloat && field.scaling_factor().is_none() {
            return Err(mapper(format!(
                "Failed to parse mapping: Field [scaling_factor] is required on field [{path}]"
            )));
        }
        Ok(field)
    }

    /// A `scaled_float`'s factor: always there (and positive, finite) once the mapping parsed.
    pub fn scaling_factor(&self) -> Option<f64> {
        self.parameters
            .get("scaling_factor")
            .and_then(Value::as_f64)
            .filter(|f| f.is_finite() && *f > 0.0)
    }

    fn validate_parameter(&self, path: &str, name: &str, value: &Value) -> Result<()> {
        let valid = match name {
            "ignore_above" => value.as_u64().is_some(),
            "scaling_factor" => {
                if !value.as_f64().is_some_and(|f| f.is_finite() && f > 0.0) {
                    return Err(mapper(format!(
                        "Failed to parse mapping: [scaling_factor] must be a positive number, got [{value}] on field [{path}]"
                    )));
                }
                true
            }
            "format" => value.as_str().is_some_and(|f| !f.is_empty()),
            "index" | "store" | "doc_values" | "coerce" | "enabled" | "norms"
            | "include_in_parent" | "include_in_root" => value.is_boolean(),
            "analyzer" | "search_analyzer" | "search_quote_analyzer" => {
                let name = value.as_str().unwrap_or_default();
                if Analyzer::from_name(name).is_none() {
                    return Err(mapper(format!(
                        "Failed to parse mapping: analyzer [{}] has not been configured in mappings",
                        value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_string)
                    )));
                }
                true
            }
            _ => true,
        };
        if valid {
            Ok(())
        } else {
            Err(mapper(format!(
                "Failed to parse mapping: invalid value [{value}] for parameter [{name}] on field [{path}]"
            )))
        }
    }

    fn to_json(&self) -> Value {
        let mut body = Map::new();
        if self.field_type != FieldType::Object {
            body.insert("type".into(), Value::String(self.field_type.name().into()));
        }
        if let Some(dynamic) = self.dynamic {
            body.insert("dynamic".into(), dynamic.to_json());
        }
        for (key, value) in &self.parameters {
            body.insert(key.clone(), value.clone());
        }
        if !self.fields.is_empty() {
            let fields = self
                .fields
                .iter()
                .map(|(name, sub)| (name.clone(), sub.to_json()))
                .collect();
            body.insert("fields".into(), Value::Object(fields));
        }
        if !self.properties.is_empty() {
            body.insert("properties".into(), properties_to_json(&self.properties));
        }
        Value::Object(body)
    }

    /// Adds what `other` has that `self` lacks; a field that would change type is refused.
    fn merge(&mut self, path: &str, other: &FieldMapping) -> Result<()> {
        if self.field_type != other.field_type {
            return Err(SearchError::illegal(format!(
                "mapper [{path}] cannot be changed from type [{}] to [{}]",
                self.field_type.name(),
                other.field_type.name()
            )));
        }
        if let (Some(mine), Some(theirs)) = (
            self.parameters.get("analyzer"),
            other.parameters.get("analyzer"),
        ) && mine != theirs
        {
            return Err(SearchError::illegal(format!(
                "Mapper for [{path}] conflicts with existing mapper:\n\tCannot update parameter [analyzer] from [{}] to [{}]",
                mine.as_str().unwrap_or_default(),
                theirs.as_str().unwrap_or_default()
            )));
        }
        for (key, value) in &other.parameters {
            self.parameters.insert(key.clone(), value.clone());
        }
        if other.dynamic.is_some() {
            self.dynamic = other.dynamic;
        }
        merge_maps(path, &mut self.properties, &other.properties)?;
        merge_maps(path, &mut self.fields, &other.fields)
    }

    fn count_fields(&self) -> usize {
        1 + self.fields.len()
            + self
                .properties
                .values()
                .map(FieldMapping::count_fields)
                .sum::<usize>()
    }
}

fn merge_maps(
    path: &str,
    mine: &mut BTreeMap<String, FieldMapping>,
    theirs: &BTreeMap<String, FieldMapping>,
) -> Result<()> {
    for (name, field) in theirs {
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match mine.get_mut(name) {
            Some(existing) => existing.merge(&child_path, field)?,
            None => {
                mine.insert(name.clone(), field.clone());
            }
        }
    }
    Ok(())
}

fn mapper(reason: String) -> SearchError {
    SearchError::MapperParsing {
        reason,
        cause: None,
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn parse_properties(
    path: &str,
    value: &Value,
    depth: usize,
) -> Result<BTreeMap<String, FieldMapping>> {
    let Value::Object(properties) = value else {
        return Err(mapper(format!(
            "Expected map for property [properties] on field [{path}] but got a {}",
            json_kind(value)
        )));
    };
    let mut parsed = BTreeMap::new();
    for (name, body) in properties {
        if name.is_empty() {
            let rule = "field name cannot be an empty string".to_string();
            return Err(SearchError::MapperParsing {
                reason: rule.clone(),
                cause: Some(rule),
            });
        }
        let child_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        // A dotted name in a mapping is a path of objects, as in Elasticsearch.
        let mut segments = name.split('.').rev();
        let leaf_name = segments.next().unwrap_or(name);
        let mut field = FieldMapping::parse(&child_path, body, depth)?;
        let mut key = leaf_name.to_string();
        for parent in segments {
            let mut object = FieldMapping::leaf(FieldType::Object);
            object.properties.insert(key, field);
            field = object;
            key = parent.to_string();
        }
        match parsed.get_mut(&key) {
            Some(existing) => FieldMapping::merge(existing, &child_path, &field)?,
            None => {
                parsed.insert(key, field);
            }
        }
    }
    Ok(parsed)
}

fn properties_to_json(properties: &BTreeMap<String, FieldMapping>) -> Value {
    Value::Object(
        properties
            .iter()
            .map(|(name, field)| (name.clone(), field.to_json()))
            .collect(),
    )
}

/// An index's mapping: the root object.
#[derive(Debug, Clone, PartialEq)]
pub struct Mappings {
    pub dynamic: Dynamic,
    pub date_detection: bool,
    pub numeric_detection: bool,
    pub properties: BTreeMap<String, FieldMapping>,
    /// Root parameters kept as given (`_source`, `_meta`, `dynamic_templates`, …).
    pub parameters: Map<String, Value>,
    /// The text slot of each `text` field path that has one (see `schema.rs`). Not part of the
    /// Elasticsearch shape: the index persists it beside the mapping.
    pub text_slots: BTreeMap<String, usize>,
}

impl Default for Mappings {
    fn default() -> Self {
        Mappings {
            dynamic: Dynamic::True,
            date_detection: true,
            numeric_detection: false,
            properties: BTreeMap::new(),
            parameters: Map::new(),
            text_slots: BTreeMap::new(),
        }
    }
}

/// A typed value as the index stores it.
#[derive(Debug, Clone, PartialEq)]
pub enum IndexValue {
    /// Analyzed text, searched by its tokens.
    Text(String),
    /// An exact string.
    Keyword(String),
    Long(i64),
    Double(f64),
    Boolean(bool),
    /// Epoch milliseconds.
    Date(i64),
    /// A point as the document gives it; the index keeps it quantized
    /// ([`crate::geo::GeoPoint::encode`]).
    GeoPoint(crate::geo::GeoPoint),
}

/// One object of a `nested` field, indexed as a hidden document of its own (`nested.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct NestedDocument {
    /// The full dotted path of its nested field (`comments`, `comments.votes`).
    pub path: String,
    /// Where it sits in the source, outermost first: each level's field (relative to the
    /// enclosing nested object) and its offset among that field's objects, as `_nested` in
    /// inner hits shows it.
    pub identity: Vec<(String, usize)>,
    /// Its own values, by full dotted path (`comments.author`).
    pub entries: Vec<(String, IndexValue)>,
}

/// What a document contributes to the index: `(field path, value)` pairs.
#[derive(Debug, Default, PartialEq)]
pub struct ParsedDocument {
    pub entries: Vec<(String, IndexValue)>,
    /// Its nested objects in block order: each object after its own nested objects, all of
    /// them before the document itself, as they must be written (`nested.rs`).
    pub nested: Vec<NestedDocument>,
    /// The mapping to adopt when the document introduced new fields.
    pub mapping_update: Option<Mappings>,
}

impl Mappings {
    /// Reads the body of `mappings` in `PUT /index` or `PUT /index/_mapping`.
    pub fn from_json(value: &Value) -> Result<Mappings> {
        let Value::Object(body) = value else {
            return Err(mapper(format!(
                "Failed to parse mapping: expected an object, got a {}",
                json_kind(value)
            )));
        };
        // A type name wrapping the mapping (`{"_doc": {...}}`) is refused by the API, which knows
        // the words Elasticsearch uses for each request; here it is an unknown root parameter.
        let mut mappings = Mappings::default();
        for (key, value) in body {
            match key.as_str() {
                "properties" => mappings.properties = parse_properties("", value, 1)?,
                "dynamic" => {
                    mappings.dynamic = Dynamic::parse(value).ok_or_else(|| {
                        mapper("Could not convert [dynamic] to boolean or [strict]".into())
                    })?;
                }
                "date_detection" => mappings.date_detection = parse_bool(key, value)?,
                "numeric_detection" => mappings.numeric_detection = parse_bool(key, value)?,
                "_source" => {
                    validate_source_mapping(value)?;
                    mappings.parameters.insert(key.clone(), value.clone());
                }
                "_meta"
                | "_routing"
                | "dynamic_templates"
                | "dynamic_date_formats"
                | "_field_names" => {
                    mappings.parameters.insert(key.clone(), value.clone());
                }
                other => {
                    return Err(mapper(format!(
                        "Root mapping definition has unsupported parameters:  [{other} : {value}]"
                    )));
                }
            }
        }
        mappings.check_total_fields()?;
        Ok(mappings)
    }

    pub fn to_json(&self) -> Value {
        let mut body = Map::new();
        if self.dynamic != Dynamic::True {
            body.insert("dynamic".into(), self.dynamic.to_json());
        }
        if !self.date_detection {
            body.insert("date_detection".into(), Value::Bool(false));
        }
        if self.numeric_detection {
            body.insert("numeric_detection".into(), Value::Bool(true));
        }
        for (key, value) in &self.parameters {
            body.insert(key.clone(), value.clone());
        }
        if !self.properties.is_empty() {
            body.insert("properties".into(), properties_to_json(&self.properties));
        }
        Value::Object(body)
    }

    /// Whether nothing was ever mapped: no fields and no root parameters.
    fn is_empty(&self) -> bool {
        self.properties.is_empty() && self.parameters.is_empty()
    }

    /// Whether documents keep their `_source` (`"_source": {"enabled": false}` or
    /// `{"mode": "disabled"}` turn it off): without it GET and search show no `_source` and
    /// updates have nothing to merge into.
    pub fn source_enabled(&self) -> bool {
        source_enabled(self.parameters.get("_source"))
    }

    /// `PUT /index/_mapping`: adds new fields and parameters; changing a field's type is refused.
    pub fn merged_with(&self, update: &Mappings) -> Result<Mappings> {
        let mut merged = self.clone();
        merged.dynamic = update.dynamic;
        merged.date_detection = update.date_detection;
        merged.numeric_detection = update.numeric_detection;
        for (key, value) in &update.parameters {
            match (key.as_str(), merged.parameters.get_mut(key), value) {
                // `_source` merges parameter by parameter; whether it is stored never changes.
                ("_source", Some(Value::Object(existing)), Value::Object(incoming)) => {
                    let was_enabled = source_enabled(Some(&Value::Object(existing.clone())));
                    let mut next = existing.clone();
                    for (name, parameter) in incoming {
                        next.insert(name.clone(), parameter.clone());
                    }
                    if source_enabled(Some(&Value::Object(next.clone()))) != was_enabled {
                        return Err(source_conflict(existing, incoming));
                    }
                    *existing = next;
                }
                // A mapping that was never set may still choose; after that, `_source` is fixed.
                ("_source", None, incoming)
                    if !source_enabled(Some(incoming)) && !self.is_empty() =>
                {
                    return Err(source_conflict(
                        &Map::new(),
                        incoming.as_object().unwrap_or(&Map::new()),
                    ));
                }
                _ => {
                    merged.parameters.insert(key.clone(), value.clone());
                }
            }
        }
        merge_maps("", &mut merged.properties, &update.properties)?;
        merged.check_total_fields()?;
        Ok(merged)
    }

    fn check_total_fields(&self) -> Result<()> {
        let total: usize = self
            .properties
            .values()
            .map(FieldMapping::count_fields)
            .sum();
        if total > TOTAL_FIELDS_MAX {
            return Err(SearchError::illegal(format!(
                "Limit of total fields [{TOTAL_FIELDS_MAX}] has been exceeded"
            )));
        }
        if self.nested_paths().len() > NESTED_FIELDS_MAX {
            return Err(SearchError::illegal(format!(
                "Limit of nested fields [{NESTED_FIELDS_MAX}] has been exceeded"
            )));
        }
        Ok(())
    }

    /// The dotted path of every `nested` field, in path order (outer ones before theirs).
    pub fn nested_paths(&self) -> Vec<String> {
        fn walk(prefix: &str, properties: &BTreeMap<String, FieldMapping>, out: &mut Vec<String>) {
            for (name, field) in properties {
                let path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}.{name}")
                };
                if field.field_type == FieldType::Nested {
                    out.push(path.clone());
                }
                if field.field_type.is_object_like() {
                    walk(&path, &field.properties, out);
                }
            }
        }
        let mut paths = Vec::new();
        walk("", &self.properties, &mut paths);
        paths
    }

    /// The nearest `nested` field that holds `path` (the path itself when it is one), or
    /// `None` when `path` lies in the root document.
    pub fn nested_scope(&self, path: &str) -> Option<String> {
        let mut scope = None;
        let mut current: Option<&FieldMapping> = None;
        let mut prefix = String::new();
        for segment in path.split('.') {
            let next = match current {
                None => self.properties.get(segment),
                Some(field) => field.properties.get(segment),
            }?;
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(segment);
            if next.field_type == FieldType::Nested {
                scope = Some(prefix.clone());
            }
            if !next.field_type.is_object_like() {
                break;
            }
            current = Some(next);
        }
        scope
    }

    /// Gives each `text` field without a slot the lowest free one below `capacity`, in path
    /// order. Slots are never taken back: a field keeps its slot for the life of the index.
    pub fn assign_text_slots(&mut self, capacity: usize) {
        let mut text_paths = Vec::new();
        for_each_leaf("", &self.properties, &mut |path, field| {
            if field.field_type == FieldType::Text {
                text_paths.push(path.to_string());
            }
        });
        let mut used: Vec<bool> = vec![false; capacity];
        for slot in self.text_slots.values() {
            if let Some(flag) = used.get_mut(*slot) {
                *flag = true;
            }
        }
        let mut free = (0..capacity).filter(|slot| !used.get(*slot).copied().unwrap_or(true));
        for path in text_paths {
            if self.text_slots.contains_key(&path) {
                continue;
            }
            let Some(slot) = free.next() else { break };
            self.text_slots.insert(path, slot);
        }
    }

    /// Every mapped leaf field (multi-fields included) by dotted path, in path order.
    pub fn leaf_fields(&self) -> Vec<(String, &FieldMapping)> {
        let mut leaves = Vec::new();
        for_each_leaf("", &self.properties, &mut |path, field| {
            leaves.push((path.to_string(), field))
        });
        leaves
    }

    /// The mapping of a dotted path, following objects and multi-fields.
    pub fn field(&self, path: &str) -> Option<&FieldMapping> {
        let mut segments = path.split('.');
        let mut current = self.properties.get(segments.next()?)?;
        for segment in segments {
            if current.field_type == FieldType::Flattened {
                // Any key under a flattened field is one of its keyword leaves.
                return Some(&FLATTENED_KEY);
            }
            current = current
                .properties
                .get(segment)
                .or_else(|| current.fields.get(segment))?;
        }
        Some(current)
    }

    /// Parses `source` (the document with id `id`) into index entries under this mapping, with
    /// the default limit of nested objects.
    pub fn parse_document(&self, id: &str, source: &Value) -> Result<ParsedDocument> {
        self.parse_document_limited(id, source, NESTED_OBJECTS_MAX_DEFAULT)
    }

    /// [`Mappings::parse_document`] allowing at most `nested_objects_max` nested objects.
    pub fn parse_document_limited(
        &self,
        id: &str,
        source: &Value,
        nested_objects_max: usize,
    ) -> Result<ParsedDocument> {
        let Value::Object(object) = source else {
            return Err(SearchError::parsing(format!(
                "failed to parse: the document with id '{id}' must be a JSON object, got a {}",
                json_kind(source)
            )));
        };
        if let Some(field) = object
            .keys()
            .find(|key| METADATA_FIELDS.contains(&key.as_str()))
        {
            return Err(SearchError::parsing(format!(
                "Field [{field}] is a metadata field and cannot be added inside a document. Use the index API request parameters."
            )));
        }
        let mut parser = DocumentParser {
            id,
            new_fields: Vec::new(),
            entries: Vec::new(),
            root: self,
            nested: Vec::new(),
            frames: Vec::new(),
            root_offsets: BTreeMap::new(),
            nested_objects_max,
        };
        parser.parse_object("", &self.properties, self.dynamic, object, 1)?;
        let mapping_update = if parser.new_fields.is_empty() {
            None
        } else {
            let mut updated = self.clone();
            for (path, field) in parser.new_fields {
                updated.insert_path(&path, field);
            }
            updated.check_total_fields()?;
            Some(updated)
        };
        Ok(ParsedDocument {
            entries: parser.entries,
            nested: parser.nested,
            mapping_update,
        })
    }

    fn insert_path(&mut self, path: &str, field: FieldMapping) {
        let mut segments: Vec<&str> = path.split('.').collect();
        let Some(leaf) = segments.pop() else { return };
        let mut properties = &mut self.properties;
        for segment in segments {
            let entry = properties
                .entry(segment.to_string())
                .or_insert_with(|| FieldMapping::leaf(FieldType::Object));
            properties = &mut entry.properties;
        }
        properties.entry(leaf.to_string()).or_insert(field);
    }
}

fn for_each_leaf<'a>(
    prefix: &str,
    properties: &'a BTreeMap<String, FieldMapping>,
    visit: &mut dyn FnMut(&str, &'a FieldMapping),
) {
    for (name, field) in properties {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if field.field_type.is_object_like() {
            for_each_leaf(&path, &field.properties, visit);
            continue;
        }
        visit(&path, field);
        for (sub_name, sub) in &field.fields {
            visit(&format!("{path}.{sub_name}"), sub);
        }
    }
}

/// Whether a root `_source` mapping parameter keeps sources.
fn source_enabled(parameter: Option<&Value>) -> bool {
    let Some(Value::Object(source)) = parameter else {
        return true;
    };
    let enabled = !matches!(source.get("enabled"), Some(Value::Bool(false)));
    let disabled_mode = source.get("mode").and_then(Value::as_str) == Some("disabled");
    enabled && !disabled_mode
}

/// Checks the root `_source` parameter: `enabled`, `mode`, `includes`, `excludes`.
fn validate_source_mapping(value: &Value) -> Result<()> {
    let Value::Object(source) = value else {
        return Err(mapper(format!(
            "Failed to parse mapping: [_source] must be an object, got a {}",
            json_kind(value)
        )));
    };
    for (name, parameter) in source {
        let valid = match name.as_str() {
            "enabled" => parameter.is_boolean(),
            "mode" => matches!(
                parameter.as_str(),
                Some("stored" | "synthetic" | "disabled")
            ),
            "includes" | "excludes" => parameter
                .as_array()
                .is_some_and(|items| items.iter().all(Value::is_string)),
            _ => {
                return Err(mapper(format!(
                    "unknown parameter [{name}] on mapper [_source] of type [_source]"
                )));
            }
        };
        if !valid {
            return Err(mapper(format!(
                "Failed to parse mapping: invalid value [{parameter}] for parameter [{name}] on field [_source]"
            )));
        }
    }
    Ok(())
}

/// Elasticsearch's words for a mapping update that would turn `_source` on or off.
fn source_conflict(existing: &Map<String, Value>, incoming: &Map<String, Value>) -> SearchError {
    let (name, from, to) = if incoming.contains_key("mode") {
        let shown = |source: &Map<String, Value>| {
            source
                .get("mode")
                .and_then(Value::as_str)
                .unwrap_or("stored")
                .to_string()
        };
        ("mode", shown(existing), shown(incoming))
    } else {
        let shown = |source: &Map<String, Value>| {
            source
                .get("enabled")
                .and_then(Value::as_bool)
                .unwrap_or(true)
                .to_string()
        };
        ("enabled", shown(existing), shown(incoming))
    };
    SearchError::illegal(format!(
        "Mapper for [_source] conflicts with existing mapper:\n\tCannot update parameter [{name}] from [{from}] to [{to}]"
    ))
}

fn parse_bool(key: &str, value: &Value) -> Result<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err(mapper(format!(
            "Failed to parse mapping: [{key}] must be a boolean, got [{value}]"
        ))),
    }
}

struct DocumentParser<'a> {
    id: &'a str,
    root: &'a Mappings,
    /// Fields introduced by this document, in the order met, with their full paths.
    new_fields: Vec<(String, FieldMapping)>,
    /// The values of the object being parsed: the document's, or a nested object's.
    entries: Vec<(String, IndexValue)>,
    /// Finished nested objects, in block order.
    nested: Vec<NestedDocument>,
    /// The nested objects being parsed, outermost first.
    frames: Vec<NestedFrame>,
    /// How many objects each nested field of the root document has had so far.
    root_offsets: BTreeMap<String, usize>,
    nested_objects_max: usize,
}

/// A nested object being parsed: the values of its parent wait in `saved`.
struct NestedFrame {
    path: String,
    identity: Vec<(String, usize)>,
    offsets: BTreeMap<String, usize>,
    saved: Vec<(String, IndexValue)>,
}

impl DocumentParser<'_> {
    fn new_field(&self, path: &str) -> Option<&FieldMapping> {
        self.new_fields
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, f)| f)
    }

    fn parse_object(
        &mut self,
        path: &str,
        properties: &BTreeMap<String, FieldMapping>,
        dynamic: Dynamic,
        object: &Map<String, Value>,
        depth: usize,
    ) -> Result<()> {
        if depth > DEPTH_MAX {
            return Err(SearchError::parsing(format!(
                "Limit of mapping depth [{DEPTH_MAX}] has been exceeded"
            )));
        }
        for (key, value) in object {
            let parts = field_name_parts(path, key)?;
            // `{"a.b": 1}` is `{"a": {"b": 1}}`.
            if let [head, tail @ ..] = parts.as_slice()
                && !tail.is_empty()
            {
                let mut nested = value.clone();
                for part in tail.iter().rev() {
                    let mut inner = Map::new();
                    inner.insert((*part).to_string(), nested);
                    nested = Value::Object(inner);
                }
                let mut outer = Map::new();
                outer.insert((*head).to_string(), nested);
                self.parse_object(path, properties, dynamic, &outer, depth)?;
                continue;
            }
            // `"a."` is `"a"`: Elasticsearch's split drops trailing empty parts.
            let key = parts.first().copied().unwrap_or(key.as_str());
            let field_path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            self.parse_value(&field_path, properties.get(key), dynamic, value, depth)?;
        }
        Ok(())
    }

    fn parse_value<'p>(
        &mut self,
        path: &str,
        mapped: Option<&'p FieldMapping>,
        dynamic: Dynamic,
        value: &Value,
        depth: usize,
    ) -> Result<()> {
        let geo_coordinates = matches!(value, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_number))
            && mapped
                .or_else(|| self.new_field(path))
                .is_some_and(|field| field.field_type == FieldType::GeoPoint);
        if let Value::Array(items) = value
            && !geo_coordinates
        {
            for item in items {
                // A field the array's first item introduced is mapped for the items after it.
                let new_field = match mapped {
                    Some(_) => None,
                    None => self.new_field(path).cloned(),
                };
                self.parse_value(path, mapped.or(new_field.as_ref()), dynamic, item, depth)?;
            }
            return Ok(());
        }
        if value.is_null() {
            return Ok(());
        }
        // Mapped fields are borrowed from the mapping: only fields this document introduces are
        // owned (a clone per value was a tenth of bulk loading's mapping work).
        let known = match mapped {
            Some(field) => Some(Cow::Borrowed(field)),
            None => self.new_field(path).cloned().map(Cow::Owned),
        };
        let field: Cow<'p, FieldMapping> = match known {
            Some(field) => field,
            None => match dynamic {
                Dynamic::False => return Ok(()),
                Dynamic::Strict => {
                    let (parent, leaf) = path.rsplit_once('.').unwrap_or(("_doc", path));
                    return Err(SearchError::StrictDynamicMapping {
                        reason: format!(
                            "[{parent}] mapping set to strict, dynamic introduction of [{leaf}] within [{parent}] is not allowed"
                        ),
                    });
                }
                Dynamic::True => {
                    let field = self.infer(value);
                    self.new_fields.push((path.to_string(), field.clone()));
                    Cow::Owned(field)
                }
            },
        };
        if field.field_type == FieldType::Flattened {
            return self.parse_flattened(path, &field, "", value);
        }
        if field.field_type == FieldType::Nested {
            return self.parse_nested(path, &field, dynamic, value, depth);
        }
        if field.field_type == FieldType::Object {
            let Value::Object(object) = value else {
                return Err(SearchError::parsing(format!(
                    "object mapping for [{path}] tried to parse field [{}] as object, but found a concrete value",
                    path.rsplit('.').next().unwrap_or(path)
                )));
            };
            if !field.is_enabled() {
                return Ok(());
            }
            let dynamic = field.dynamic.unwrap_or(dynamic);
            // Properties the document adds to this object are looked up among the new fields.
            return self.parse_object(path, &field.properties, dynamic, object, depth + 1);
        }
        self.parse_leaf(path, &field, value)?;
        for (name, sub) in &field.fields {
            self.parse_leaf(&format!("{path}.{name}"), sub, value)?;
        }
        Ok(())
    }

    /// Parses one object of a nested field into a hidden document of its own, after the
    /// hidden documents of its own nested objects.
    fn parse_nested(
        &mut self,
        path: &str,
        field: &FieldMapping,
        dynamic: Dynamic,
        value: &Value,
        depth: usize,
    ) -> Result<()> {
        let Value::Object(object) = value else {
            return Err(SearchError::parsing(format!(
                "object mapping for [{path}] tried to parse field [{}] as object, but found a concrete value",
                path.rsplit('.').next().unwrap_or(path)
            )));
        };
        if self.nested.len() + self.frames.len() >= self.nested_objects_max {
            return Err(SearchError::illegal(format!(
                "The number of nested documents has exceeded the allowed limit of [{}]. This limit can be set by changing the [index.mapping.nested_objects.limit] index level setting.",
                self.nested_objects_max
            )));
        }
        let (relative, mut identity, offsets) = match self.frames.last_mut() {
            Some(frame) => (
                path.strip_prefix(frame.path.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .unwrap_or(path)
                    .to_string(),
                frame.identity.clone(),
                &mut frame.offsets,
            ),
            None => (path.to_string(), Vec::new(), &mut self.root_offsets),
        };
        let offset = offsets.entry(path.to_string()).or_insert(0);
        identity.push((relative, *offset));
        *offset += 1;
        self.frames.push(NestedFrame {
            path: path.to_string(),
            identity: identity.clone(),
            offsets: BTreeMap::new(),
            saved: std::mem::take(&mut self.entries),
        });
        let dynamic = field.dynamic.unwrap_or(dynamic);
        let parsed = self.parse_object(path, &field.properties, dynamic, object, depth + 1);
        let Some(frame) = self.frames.pop() else {
            return parsed;
        };
        let entries = std::mem::replace(&mut self.entries, frame.saved);
        parsed?;
        let flag = |name: &str| matches!(field.parameters.get(name), Some(Value::Bool(true)));
        if flag("include_in_parent") {
            self.entries.extend(entries.iter().cloned());
        } else if flag("include_in_root") {
            match self.frames.first_mut() {
                Some(root_child) => root_child.saved.extend(entries.iter().cloned()),
                None => self.entries.extend(entries.iter().cloned()),
            }
        }
        self.nested.push(NestedDocument {
            path: path.to_string(),
            identity,
            entries,
        });
        Ok(())
    }

    /// Indexes every leaf of a flattened field's value as a keyword under the field itself and
    /// under `path.key` (`key` the dotted path inside the value).
    fn parse_flattened(
        &mut self,
        path: &str,
        field: &FieldMapping,
        key: &str,
        value: &Value,
    ) -> Result<()> {
        let depth_limit = field
            .parameters
            .get("depth_limit")
            .and_then(Value::as_u64)
            .map_or(DEPTH_MAX, |limit| {
                usize::try_from(limit).unwrap_or(DEPTH_MAX)
            });
        match value {
            Value::Null => Ok(()),
            Value::Array(items) => items
                .iter()
                .try_for_each(|item| self.parse_flattened(path, field, key, item)),
            Value::Object(object) => {
                if key.split('.').filter(|k| !k.is_empty()).count() >= depth_limit {
                    return Err(SearchError::parsing(format!(
                        "the provided [flattened] field [{path}] exceeds the maximum depth limit of [{depth_limit}]"
                    )));
                }
                for (name, inner) in object {
                    let inner_key = if key.is_empty() {
                        name.clone()
                    } else {
                        format!("{key}.{name}")
                    };
                    self.parse_flattened(path, field, &inner_key, inner)?;
                }
                Ok(())
            }
            scalar => {
                self.parse_leaf(path, field, scalar)?;
                if key.is_empty() {
                    Ok(())
                } else {
                    self.parse_leaf(&format!("{path}.{key}"), field, scalar)
                }
            }
        }
    }

    fn infer(&self, value: &Value) -> FieldMapping {
        match value {
            Value::Bool(_) => FieldMapping::leaf(FieldType::Boolean),
            Value::Number(n) if n.is_i64() || n.is_u64() => FieldMapping::leaf(FieldType::Long),
            Value::Number(_) => FieldMapping::leaf(FieldType::Float),
            Value::String(s) if self.root.date_detection && date::detect_date(s).is_some() => {
                let mut field = FieldMapping::leaf(FieldType::Date);
                if let Some(Some(format)) = date::detect_date(s) {
                    field
                        .parameters
                        .insert("format".into(), Value::String(format.into()));
                }
                field
            }
            Value::String(s) if self.root.numeric_detection && s.parse::<i64>().is_ok() => {
                FieldMapping::leaf(FieldType::Long)
            }
            Value::String(s) if self.root.numeric_detection && s.parse::<f64>().is_ok() => {
                FieldMapping::leaf(FieldType::Float)
            }
            Value::String(_) => {
                let mut keyword = FieldMapping::leaf(FieldType::Keyword);
                keyword.parameters.insert(
                    "ignore_above".into(),
                    Value::from(DYNAMIC_KEYWORD_IGNORE_ABOVE),
                );
                let mut text = FieldMapping::leaf(FieldType::Text);
                text.fields.insert("keyword".into(), keyword);
                text
            }
            Value::Object(_) | Value::Array(_) | Value::Null => {
                FieldMapping::leaf(FieldType::Object)
            }
        }
    }

    /// A `geo_point` value in any of its forms; out-of-range coordinates are refused unless
    /// `ignore_malformed`, which skips the value (objects included, as Elasticsearch does).
    fn parse_geo_point(&mut self, path: &str, field: &FieldMapping, value: &Value) -> Result<()> {
        let parsed = crate::geo::parse_point(value)
            .and_then(|point| point.validate(path))
            .map_err(|cause| {
                (
                    format!(
                        "failed to parse field [{path}] of type [geo_point] in document with id '{}'. Preview of field's value: '{}'",
                        self.id,
                        preview(value)
                    ),
                    cause,
                )
            });
        match parsed {
            Ok(point) => {
                if field.is_indexed() || field.has_doc_values() {
                    self.entries
                        .push((path.to_string(), IndexValue::GeoPoint(point)));
                }
                Ok(())
            }
            Err(_) if field.ignore_malformed() => Ok(()),
            Err((reason, cause)) => Err(SearchError::DocumentParsing {
                reason,
                cause: Some(cause),
            }),
        }
    }

    fn parse_leaf(&mut self, path: &str, field: &FieldMapping, value: &Value) -> Result<()> {
        if field.field_type == FieldType::GeoPoint {
            return self.parse_geo_point(path, field, value);
        }
        let converted = convert(field, value);
        if converted.is_none() && field.ignore_malformed() && !value.is_object() {
            return Ok(());
        }
        let indexed = converted.ok_or_else(|| {
            SearchError::parsing(format!(
                "failed to parse field [{path}] of type [{}] in document with id '{}'. Preview of field's value: '{}'",
                field.field_type.name(),
                self.id,
                preview(value)
            ))
        })?;
        let Some(indexed) = indexed else {
            return Ok(());
        };
        if let IndexValue::Keyword(text) = &indexed
            && text.len() > KEYWORD_TERM_BYTES_MAX
        {
            return Err(SearchError::parsing_rule(immense_term(path, text)));
        }
        if field.is_indexed() {
            self.entries.push((path.to_string(), indexed));
        }
        Ok(())
    }
}

/// Splits a field name of a document on dots and checks it, with Elasticsearch's rules and
/// words: Java's `split`, which Elasticsearch uses, drops trailing empty parts, so `"a."` is `a`.
fn field_name_parts<'k>(path: &str, key: &'k str) -> Result<Vec<&'k str>> {
    if key.is_empty() {
        return Err(SearchError::parsing_rule(
            "field name cannot be an empty string",
        ));
    }
    if !key.contains('.') {
        if key.trim().is_empty() {
            let full = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            return Err(SearchError::parsing(format!(
                "Field name cannot contain only whitespace: [{full}]"
            )));
        }
        return Ok(vec![key]);
    }
    let mut parts: Vec<&str> = key.split('.').collect();
    while parts.last().is_some_and(|part| part.is_empty()) {
        parts.pop();
    }
    if parts.is_empty() {
        return Err(SearchError::parsing_rule(
            "field name cannot contain only dots",
        ));
    }
    for part in &parts {
        if part.is_empty() {
            return Err(SearchError::parsing_rule(format!(
                "object field cannot contain only whitespace: ['{key}']"
            )));
        }
        if part.trim().is_empty() {
            return Err(SearchError::parsing_rule(format!(
                "object field starting or ending with a [.] makes object resolution ambiguous: [{key}]"
            )));
        }
    }
    Ok(parts)
}

/// Elasticsearch's refusal of a keyword longer than Lucene's longest term, with the first bytes
/// of the value as Java prints them (signed).
fn immense_term(path: &str, text: &str) -> String {
    const PREFIX_BYTES: usize = 30;
    let prefix: Vec<String> = text
        .as_bytes()
        .iter()
        .take(PREFIX_BYTES)
        .map(|byte| (*byte as i8).to_string())
        .collect();
    format!(
        "Document contains at least one immense term in field=\"{path}\" (whose UTF8 encoding is longer than the max length {KEYWORD_TERM_BYTES_MAX}), all of which were skipped. Please correct the analyzer to not produce such terms. The prefix of the first immense term is: '[{}]...'",
        prefix.join(", ")
    )
}

/// Converts one JSON value to the field's type. `None` when it does not fit; `Some(None)` when it
/// fits but is not indexed (a keyword longer than `ignore_above`).
fn convert(field: &FieldMapping, value: &Value) -> Option<Option<IndexValue>> {
    let converted = match field.field_type {
        FieldType::Text => IndexValue::Text(scalar_string(value)?),
        FieldType::Keyword | FieldType::Wildcard | FieldType::Flattened => {
            let text = scalar_string(value)?;
            if field
                .ignore_above()
                .is_some_and(|limit| text.chars().count() as u64 > limit)
            {
                return Some(None);
            }
            IndexValue::Keyword(text)
        }
        FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte => {
            let (min, max) = field.field_type.integer_range()?;
            let number = match value {
                Value::Number(n) => match n.as_i64() {
                    Some(i) => i,
                    None if field.coerce() => float_to_integer(n.as_f64()?)?,
                    None => return None,
                },
                Value::String(s) if field.coerce() => match s.trim().parse::<i64>() {
                    Ok(i) => i,
                    Err(_) => float_to_integer(s.trim().parse::<f64>().ok()?)?,
                },
                _ => return None,
            };
            if number < min || number > max {
                return None;
            }
            IndexValue::Long(number)
        }
        FieldType::Double | FieldType::Float => {
            let number = match value {
                Value::Number(n) => n.as_f64()?,
                Value::String(s) if field.coerce() => s.trim().parse::<f64>().ok()?,
                _ => return None,
            };
            if !number.is_finite() {
                return None;
            }
            if field.field_type == FieldType::Float {
                let single = number as f32;
                if !single.is_finite() {
                    return None;
                }
                IndexValue::Double(f64::from(single))
            } else {
                IndexValue::Double(number)
            }
        }
        FieldType::ScaledFloat => {
            let number = match value {
                Value::Number(n) => n.as_f64()?,
                Value::String(s) if field.coerce() => s.trim().parse::<f64>().ok()?,
                _ => return None,
            };
            IndexValue::Double(scale(number, field.scaling_factor()?)?)
        }
        FieldType::Ip => IndexValue::Keyword(crate::ip::encode(crate::ip::parse(value.as_str()?)?)),
        FieldType::Boolean => IndexValue::Boolean(match value {
            Value::Bool(b) => *b,
            Value::String(s) if s == "true" => true,
            Value::String(s) if s == "false" || s.is_empty() => false,
            _ => return None,
        }),
        FieldType::Date => IndexValue::Date(match value {
            Value::String(s) => date::parse_date_str(s, field.date_format())?,
            Value::Number(n) => date::parse_date_number(n.as_f64()?, field.date_format())?,
            _ => return None,
        }),
        FieldType::GeoPoint => IndexValue::GeoPoint(
            crate::geo::parse_point(value)
                .ok()?
                .validate("geo_point")
                .ok()?,
        ),
        FieldType::Object | FieldType::Nested => return None,
    };
    Some(Some(converted))
}

/// A `scaled_float` value as Elasticsearch keeps it: `value * factor` rounded half up (Java's
/// `Math.round`) to a long, then seen as that long divided by the factor. `None` when the
/// value is not finite or its scaled form does not fit a long.
pub fn scale(value: f64, factor: f64) -> Option<f64> {
    let scaled = (value * factor + 0.5).floor();
    float_to_integer(scaled)?;
    Some(scaled / factor)
}

fn float_to_integer(value: f64) -> Option<i64> {
    // 2^63 is exactly representable; anything at or past it does not fit a long.
    (value.is_finite() && value > -9.223_372_036_854_776e18 && value < 9.223_372_036_854_776e18)
        .then(|| value.trunc() as i64)
}

fn scalar_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Elasticsearch shows the start of a rejected value in its error message.
fn preview(value: &Value) -> String {
    const PREVIEW_CHARS_MAX: usize = 20;
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{k}={}", preview(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    };
    if text.chars().count() > PREVIEW_CHARS_MAX {
        let cut: String = text.chars().take(PREVIEW_CHARS_MAX).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// Converts a query value for `field` the same way a document value would be, for term queries.
pub fn query_value(field: &FieldMapping, value: &Value) -> Option<IndexValue> {
    let mut field = field.clone();
    // A term query may look for values longer than ignore_above: they simply match nothing.
    field.parameters.remove("ignore_above");
    convert(&field, value).flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn dynamic_mapping_follows_elasticsearch_defaults() {
        let mappings = Mappings::default();
        let doc = json!({"message": "hello", "count": 3, "ratio": 0.5, "ok": true,
                         "at": "2016-02-25T13:00:00Z", "user": {"name": "a"}, "tags": ["x", "y"], "none": null, "empty": []});
        let parsed = mappings.parse_document("1", &doc).unwrap();
        let updated = parsed.mapping_update.unwrap();
        assert_eq!(
            updated.to_json(),
            json!({"properties": {
                "at": {"type": "date"},
                "count": {"type": "long"},
                "message": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "ok": {"type": "boolean"},
                "ratio": {"type": "float"},
                "tags": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}},
                "user": {"properties": {"name": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}}}
            }})
        );
        assert!(parsed.entries.contains(&(
            "message.keyword".into(),
            IndexValue::Keyword("hello".into())
        )));
        assert!(
            parsed
                .entries
                .contains(&("tags".into(), IndexValue::Text("y".into())))
        );
        assert!(
            parsed
                .entries
                .contains(&("at".into(), IndexValue::Date(1_456_405_200_000)))
        );
        assert!(
            parsed
                .entries
                .contains(&("user.name".into(), IndexValue::Text("a".into())))
        );
    }

    #[test]
    fn dotted_keys_are_objects() {
        let parsed = Mappings::default()
            .parse_document("1", &json!({"a.b": 1}))
            .unwrap();
        assert_eq!(
            parsed.mapping_update.unwrap().to_json(),
            json!({"properties": {"a": {"properties": {"b": {"type": "long"}}}}})
        );
    }

    #[test]
    fn values_that_do_not_fit_are_rejected() {
        let mappings = Mappings::from_json(&json!({"properties": {"n": {"type": "integer"}, "o": {"properties": {"x": {"type": "keyword"}}}}})).unwrap();
        let err = mappings
            .parse_document("7", &json!({"n": "abc"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed to parse field [n] of type [integer] in document with id '7'. Preview of field's value: 'abc'"
        );
        assert!(
            mappings
                .parse_document("7", &json!({"n": 3_000_000_000_i64}))
                .is_err()
        );
        assert!(
            mappings
                .parse_document("7", &json!({"o": 5}))
                .unwrap_err()
                .to_string()
                .contains("object mapping for [o]")
        );
        assert_eq!(
            mappings
                .parse_document("7", &json!({"n": "12"}))
                .unwrap()
                .entries,
            vec![("n".into(), IndexValue::Long(12))]
        );
        assert_eq!(
            mappings
                .parse_document("7", &json!({"n": 12.7}))
                .unwrap()
                .entries,
            vec![("n".into(), IndexValue::Long(12))]
        );
    }

    #[test]
    fn strict_and_false() {
        let strict = Mappings::from_json(
            &json!({"dynamic": "strict", "properties": {"a": {"type": "long"}}}),
        )
        .unwrap();
        let err = strict.parse_document("1", &json!({"b": 1})).unwrap_err();
        assert!(matches!(err, SearchError::StrictDynamicMapping { .. }));
        assert_eq!(
            err.to_string(),
            "[_doc] mapping set to strict, dynamic introduction of [b] within [_doc] is not allowed"
        );
        let off = Mappings::from_json(&json!({"dynamic": false})).unwrap();
        let parsed = off.parse_document("1", &json!({"b": 1})).unwrap();
        assert!(parsed.entries.is_empty() && parsed.mapping_update.is_none());
    }

    #[test]
    fn mapping_definitions_are_validated_and_round_trip() {
        let body = json!({"properties": {"t": {"type": "date", "format": "yyyy-MM-dd"}, "k": {"type": "keyword", "ignore_above": 10}}});
        assert_eq!(Mappings::from_json(&body).unwrap().to_json(), body);
        assert!(
            Mappings::from_json(&json!({"properties": {"x": {"type": "nope"}}}))
                .unwrap_err()
                .to_string()
                .contains("No handler for type [nope]")
        );
        assert!(
            Mappings::from_json(&json!({"properties": {"x": {"type": "long", "bogus": 1}}}))
                .is_err()
        );
        let base = Mappings::from_json(&json!({"properties": {"x": {"type": "long"}}})).unwrap();
        let change = Mappings::from_json(&json!({"properties": {"x": {"type": "text"}}})).unwrap();
        assert_eq!(
            base.merged_with(&change).unwrap_err().to_string(),
            "mapper [x] cannot be changed from type [long] to [text]"
        );
    }

    #[test]
    fn field_names_follow_elasticsearchs_rules() {
        let mappings = Mappings::default();
        let refusal = |doc: Value| match mappings.parse_document("1", &doc).unwrap_err() {
            SearchError::DocumentParsing { reason, cause } => (reason, cause),
            other => panic!("unexpected {other}"),
        };
        assert_eq!(
            refusal(json!({"": 1})),
            (
                "failed to parse: field name cannot be an empty string".to_string(),
                Some("field name cannot be an empty string".to_string())
            )
        );
        assert_eq!(
            refusal(json!({"a": {"  ": 1}})).0,
            "Field name cannot contain only whitespace: [a.  ]"
        );
        assert_eq!(
            refusal(json!({"a..b": 1})).0,
            "failed to parse: object field cannot contain only whitespace: ['a..b']"
        );
        assert_eq!(
            refusal(json!({".a": 1})).0,
            "failed to parse: object field cannot contain only whitespace: ['.a']"
        );
        assert_eq!(
            refusal(json!({"...": 1})).0,
            "failed to parse: field name cannot contain only dots"
        );
        assert_eq!(
            refusal(json!({"a. ": 1})).0,
            "failed to parse: object field starting or ending with a [.] makes object resolution ambiguous: [a. ]"
        );
        // A trailing dot is dropped, as Java's split drops it; deeper paths are objects.
        let parsed = mappings
            .parse_document("1", &json!({"a.": 1, "b.c.d": true}))
            .unwrap();
        assert_eq!(
            parsed.mapping_update.unwrap().to_json(),
            json!({"properties": {"a": {"type": "long"}, "b": {"properties": {"c": {"properties": {"d": {"type": "boolean"}}}}}}})
        );
    }

    #[test]
    fn root_source_and_type_wrappers() {
        // The `_doc` wrapper of Elasticsearch 6 is an unknown root parameter here; the API
        // refuses it first, in Elasticsearch's words.
        let wrapped = Mappings::from_json(&json!({"_doc": {"properties": {}}})).unwrap_err();
        assert!(
            wrapped
                .to_string()
                .starts_with("Root mapping definition has unsupported parameters:  [_doc")
        );
        assert!(Mappings::from_json(&json!({"_source": {"enabled": "no"}})).is_err());
        assert!(Mappings::from_json(&json!({"_source": {"bogus": 1}})).is_err());
        assert!(
            !Mappings::from_json(&json!({"_source": {"mode": "disabled"}}))
                .unwrap()
                .source_enabled()
        );
        let stored = Mappings::from_json(&json!({"_source": {"includes": ["a"]}})).unwrap();
        assert!(stored.source_enabled());
        // A mapping that was never set may still turn `_source` off; after that it is fixed.
        let off = Mappings::from_json(&json!({"_source": {"enabled": false}})).unwrap();
        assert!(
            !Mappings::default()
                .merged_with(&off)
                .unwrap()
                .source_enabled()
        );
        let with_fields =
            Mappings::from_json(&json!({"properties": {"a": {"type": "long"}}})).unwrap();
        assert!(with_fields.merged_with(&off).is_err());
        let merged = off.merged_with(&with_fields).unwrap();
        assert!(
            !merged.source_enabled(),
            "an update without `_source` keeps it off"
        );
        let empty_name =
            Mappings::from_json(&json!({"properties": {"": {"type": "keyword"}}})).unwrap_err();
        assert!(matches!(
            empty_name,
            SearchError::MapperParsing { cause: Some(_), .. }
        ));
    }

    #[test]
    fn ignore_malformed_skips_values_that_do_not_fit_but_not_objects() {
        let mappings = Mappings::from_json(&json!({"properties": {
            "n": {"type": "long", "ignore_malformed": true},
            "d": {"type": "date", "ignore_malformed": true}
        }}))
        .unwrap();
        let parsed = mappings
            .parse_document("1", &json!({"n": ["garbage", 7], "d": "not a date"}))
            .unwrap();
        assert_eq!(parsed.entries, vec![("n".into(), IndexValue::Long(7))]);
        let object = mappings
            .parse_document("4", &json!({"n": {"object": "wow"}}))
            .unwrap_err();
        assert_eq!(
            object.to_string(),
            "failed to parse field [n] of type [long] in document with id '4'. Preview of field's value: '{object=wow}'"
        );
    }

    #[test]
    fn keyword_ignore_above_skips_long_values() {
        let mappings = Mappings::from_json(
            &json!({"properties": {"k": {"type": "keyword", "ignore_above": 3}}}),
        )
        .unwrap();
        assert!(
            mappings
                .parse_document("1", &json!({"k": "long value"}))
                .unwrap()
                .entries
                .is_empty()
        );
    }
}
