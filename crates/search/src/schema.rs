//! The fixed tantivy schema behind every index, and the conversion of mapped values into it.
//!
//! Elasticsearch mappings grow at run time but a tantivy schema is fixed when the index is
//! created, so mapped fields live inside two JSON fields keyed by their dotted path: `_text`
//! holds analyzed text (with positions, for phrase queries), `_fields` holds exact values —
//! keywords, numbers, booleans and dates as epoch milliseconds — indexed and columnar (fast) for
//! sorting and aggregations. The mapping, not tantivy, decides which path holds which type.

use tantivy::Term;
use tantivy::columnar::NumericalValue;
use tantivy::schema::OwnedValue;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, NumericOptions, STORED, STRING,
    Schema, TextFieldIndexing,
};

use crate::mapping::IndexValue;

/// Name of the tokenizer of `text` fields: Unicode-ish word splitting and lowercasing, as
/// Elasticsearch's `standard` analyzer does for the languages that split on spaces.
pub const TEXT_TOKENIZER: &str = "default";

#[derive(Debug, Clone, Copy)]
pub struct SchemaFields {
    pub id: Field,
    pub source: Field,
    pub version: Field,
    pub seq_no: Field,
    /// Set on tombstones, which every query excludes.
    pub deleted: Field,
    pub text: Field,
    pub exact: Field,
}

pub fn build_schema() -> (Schema, SchemaFields) {
    let mut builder = Schema::builder();
    let id = builder.add_text_field("_id", STRING | STORED | FAST);
    let source = builder.add_bytes_field("_source", STORED);
    let version = builder.add_u64_field("_version", NumericOptions::default() | STORED | FAST);
    let seq_no = builder.add_u64_field("_seq_no", NumericOptions::default() | STORED | FAST);
    let deleted = builder.add_bool_field("_deleted", INDEXED | FAST);
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(TEXT_TOKENIZER)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    let text = builder.add_json_field(
        "_text",
        JsonObjectOptions::default()
            .set_indexing_options(text_indexing)
            .set_expand_dots_enabled(),
    );
    let exact_indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic);
    let exact = builder.add_json_field(
        "_fields",
        JsonObjectOptions::default()
            .set_indexing_options(exact_indexing)
            .set_fast("raw")
            .set_expand_dots_enabled(),
    );
    let fields = SchemaFields {
        id,
        source,
        version,
        seq_no,
        deleted,
        text,
        exact,
    };
    (builder.build(), fields)
}

/// The entries of one JSON object field, by dotted path.
pub type JsonEntries = Vec<(String, OwnedValue)>;

/// Builds the two JSON objects of a document (`_text`, `_fields`) from its parsed entries.
pub fn json_objects(entries: Vec<(String, IndexValue)>) -> (JsonEntries, JsonEntries) {
    let mut text: Vec<(String, OwnedValue)> = Vec::new();
    let mut exact: Vec<(String, OwnedValue)> = Vec::new();
    for (path, value) in entries {
        let (target, owned) = match value {
            IndexValue::Text(s) => (&mut text, OwnedValue::Str(s)),
            IndexValue::Keyword(s) => (&mut exact, OwnedValue::Str(s)),
            IndexValue::Long(i) | IndexValue::Date(i) => (&mut exact, OwnedValue::I64(i)),
            IndexValue::Double(f) => (&mut exact, OwnedValue::F64(f)),
            IndexValue::Boolean(b) => (&mut exact, OwnedValue::Bool(b)),
        };
        // Repeated paths (arrays) become one array value.
        match target.iter_mut().find(|(p, _)| *p == path) {
            Some((_, OwnedValue::Array(items))) => items.push(owned),
            Some((_, existing)) => {
                let first = std::mem::replace(existing, OwnedValue::Null);
                *existing = OwnedValue::Array(vec![first, owned]);
            }
            None => target.push((path, owned)),
        }
    }
    (text, exact)
}

/// The term a query looks for: `value` at `path` of the field that holds its type.
pub fn value_term(fields: &SchemaFields, path: &str, value: &IndexValue) -> Term {
    let field = if matches!(value, IndexValue::Text(_)) {
        fields.text
    } else {
        fields.exact
    };
    let mut term = Term::from_field_json_path(field, path, true);
    match value {
        IndexValue::Text(s) | IndexValue::Keyword(s) => term.append_type_and_str(s),
        IndexValue::Long(i) | IndexValue::Date(i) => term.append_type_and_fast_value(*i),
        IndexValue::Boolean(b) => term.append_type_and_fast_value(*b),
        // Numbers are indexed in their canonical form (2.0 as the integer 2); look them up alike.
        IndexValue::Double(f) => match NumericalValue::F64(*f).normalize() {
            NumericalValue::I64(i) => term.append_type_and_fast_value(i),
            NumericalValue::U64(u) => term.append_type_and_fast_value(u),
            NumericalValue::F64(f) => term.append_type_and_fast_value(f),
        },
    }
    term
}
