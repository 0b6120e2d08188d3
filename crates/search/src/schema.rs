//! The tantivy schema behind every index, and the conversion of mapped values into it.
//!
//! Elasticsearch mappings grow at run time but a tantivy schema is fixed when the index is
//! created. Exact values — keywords, numbers, booleans and dates as epoch milliseconds — live in
//! one JSON field, `_fields`, keyed by dotted path, indexed and columnar (fast) for sorting and
//! aggregations. Text needs more: BM25 as Elasticsearch computes it takes its length norm and
//! statistics per field, and tantivy keeps one norm per tantivy field. So the schema holds a
//! fixed pool of [`TEXT_SLOTS`] text fields (`_t0`, `_t1`, …), and the mapping gives each `text`
//! field a slot of its own (persisted with the mapping, never reused). Text fields mapped after
//! the pool is used up go to the shared JSON field `_text`, where they are searchable with one
//! norm shared between them; format 1 indices, which predate the pool, keep all their text there.
//! Format 3 adds `_nested`, the path of a nested object's hidden document (`nested.rs`).

use tantivy::Term;
use tantivy::columnar::NumericalValue;
use tantivy::schema::OwnedValue;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, JsonObjectOptions, NumericOptions, STORED, STRING,
    Schema, TextFieldIndexing, TextOptions,
};

use crate::analysis::Analyzer;
use crate::mapping::IndexValue;

/// Text fields with a length norm of their own per index. Each costs one byte per document in
/// every segment whether used or not; text fields mapped beyond it share the `_text` field's norm.
pub const TEXT_SLOTS: usize = 64;
/// Name of the tokenizer format 1 indices used for `_text` (tantivy's simple tokenizer,
/// lowercased, tokens longer than 40 bytes dropped).
pub const LEGACY_TEXT_TOKENIZER: &str = "default";

#[derive(Debug, Clone)]
pub struct SchemaFields {
    pub id: Field,
    pub source: Field,
    pub version: Field,
    pub seq_no: Field,
    /// Set on tombstones, which every query excludes.
    pub deleted: Field,
    /// Text fields beyond the slots (and all text of format 1 indices), by dotted path.
    pub text: Field,
    pub exact: Field,
    /// The text slots `_t0`, `_t1`, … (none in format 1 indices).
    pub text_slots: Vec<Field>,
    /// The nested path of hidden documents (`nested.rs`); `None` in indices of formats 1 and 2,
    /// which cannot map `nested` fields.
    pub nested: Option<Field>,
    /// Whether `_text` holds text tokenized by tantivy's default tokenizer (format 1) rather than
    /// by the fields' own analyzers.
    pub legacy_text: bool,
}

fn slot_name(slot: usize) -> String {
    format!("_t{slot}")
}

/// The schema of a new index.
pub fn build_schema() -> Schema {
    let mut builder = Schema::builder();
    add_common_fields(&mut builder, crate::analysis::TOKENIZER_NAME);
    builder.add_text_field("_nested", STRING);
    for slot in 0..TEXT_SLOTS {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(crate::analysis::TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(true);
        builder.add_text_field(
            &slot_name(slot),
            TextOptions::default().set_indexing_options(indexing),
        );
    }
    builder.build()
}

/// The schema of format 2 indices (no `_nested`), kept to test that they still open.
#[cfg(test)]
pub(crate) fn build_format_2_schema() -> Schema {
    let mut builder = Schema::builder();
    add_common_fields(&mut builder, crate::analysis::TOKENIZER_NAME);
    for slot in 0..TEXT_SLOTS {
        let indexing = TextFieldIndexing::default()
            .set_tokenizer(crate::analysis::TOKENIZER_NAME)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions)
            .set_fieldnorms(true);
        builder.add_text_field(
            &slot_name(slot),
            TextOptions::default().set_indexing_options(indexing),
        );
    }
    builder.build()
}

/// The schema of format 1 indices, kept to test that they still open.
#[cfg(test)]
pub(crate) fn build_legacy_schema() -> Schema {
    let mut builder = Schema::builder();
    add_common_fields(&mut builder, LEGACY_TEXT_TOKENIZER);
    builder.build()
}

/// The fields of an opened index's schema, of format 1 or 2.
pub fn schema_fields(schema: &Schema) -> crate::Result<SchemaFields> {
    let field = |name: &str| {
        schema
            .get_field(name)
            .map_err(|_| crate::SearchError::Corrupt {
                what: "tantivy schema".into(),
                reason: format!("missing field {name}"),
            })
    };
    let text = field("_text")?;
    let legacy_text = match schema.get_field_entry(text).field_type() {
        tantivy::schema::FieldType::JsonObject(options) => options
            .get_text_indexing_options()
            .is_some_and(|indexing| indexing.tokenizer() == LEGACY_TEXT_TOKENIZER),
        _ => false,
    };
    let mut text_slots = Vec::new();
    while let Ok(slot) = schema.get_field(&slot_name(text_slots.len())) {
        text_slots.push(slot);
    }
    Ok(SchemaFields {
        id: field("_id")?,
        source: field("_source")?,
        version: field("_version")?,
        seq_no: field("_seq_no")?,
        deleted: field("_deleted")?,
        text,
        exact: field("_fields")?,
        text_slots,
        nested: schema.get_field("_nested").ok(),
        legacy_text,
    })
}

fn add_common_fields(builder: &mut tantivy::schema::SchemaBuilder, text_tokenizer: &str) {
    builder.add_text_field("_id", STRING | STORED | FAST);
    builder.add_bytes_field("_source", STORED);
    builder.add_u64_field("_version", NumericOptions::default() | STORED | FAST);
    builder.add_u64_field("_seq_no", NumericOptions::default() | STORED | FAST);
    builder.add_bool_field("_deleted", INDEXED | FAST);
    let text_indexing = TextFieldIndexing::default()
        .set_tokenizer(text_tokenizer)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    builder.add_json_field(
        "_text",
        JsonObjectOptions::default()
            .set_indexing_options(text_indexing)
            .set_expand_dots_enabled(),
    );
    let exact_indexing = TextFieldIndexing::default()
        .set_tokenizer("raw")
        .set_index_option(IndexRecordOption::Basic);
    builder.add_json_field(
        "_fields",
        JsonObjectOptions::default()
            .set_indexing_options(exact_indexing)
            .set_fast("raw")
            .set_expand_dots_enabled(),
    );
}

/// The entries of one JSON object field, by dotted path.
pub type JsonEntries = Vec<(String, OwnedValue)>;

/// Where the index keeps one `text` field and how it analyzes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextPlace {
    /// Its own tantivy field, or `None` for the shared `_text` field.
    pub slot: Option<Field>,
    /// The analyzer of its values at index time.
    pub analyzer: Analyzer,
}

/// What one document adds to tantivy besides its metadata.
#[derive(Debug, Default)]
pub struct DocumentValues {
    /// Text values in their own fields, marked with their analyzer.
    pub slotted: Vec<(Field, String)>,
    /// The `_text` object (text fields beyond the slots).
    pub shared_text: JsonEntries,
    /// The `_fields` object.
    pub exact: JsonEntries,
}

/// Sorts a document's parsed entries into the fields that hold them; `place` says where each
/// text path goes.
pub fn document_values(
    fields: &SchemaFields,
    entries: Vec<(String, IndexValue)>,
    place: &dyn Fn(&str) -> TextPlace,
) -> DocumentValues {
    let mut values = DocumentValues::default();
    // Slots that already received a value of this document: later values continue the field.
    let mut slots_seen: Vec<Field> = Vec::new();
    for (path, value) in entries {
        let (target, owned) = match value {
            IndexValue::Text(s) => {
                let TextPlace { slot, analyzer } = place(&path);
                match slot {
                    Some(slot) => {
                        let first = !slots_seen.contains(&slot);
                        if first {
                            slots_seen.push(slot);
                        }
                        values.slotted.push((slot, analyzer.marked(&s, first)));
                        continue;
                    }
                    None if fields.legacy_text => (&mut values.shared_text, OwnedValue::Str(s)),
                    None => (
                        &mut values.shared_text,
                        OwnedValue::Str(analyzer.marked(&s, true)),
                    ),
                }
            }
            IndexValue::Keyword(s) => (&mut values.exact, OwnedValue::Str(s)),
            IndexValue::Long(i) | IndexValue::Date(i) => (&mut values.exact, OwnedValue::I64(i)),
            IndexValue::GeoPoint(point) => (&mut values.exact, OwnedValue::I64(point.encode())),
            IndexValue::Double(f) => (&mut values.exact, OwnedValue::F64(f)),
            IndexValue::Boolean(b) => (&mut values.exact, OwnedValue::Bool(b)),
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
    values
}

/// The term of one analyzed token of a text field.
pub fn text_term(fields: &SchemaFields, path: &str, slot: Option<Field>, token: &str) -> Term {
    match slot {
        Some(slot) => Term::from_field_text(slot, token),
        None => {
            let mut term = Term::from_field_json_path(fields.text, path, true);
            term.append_type_and_str(token);
            term
        }
    }
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
        IndexValue::GeoPoint(point) => term.append_type_and_fast_value(point.encode()),
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
