//! The values an aggregation reads: a field resolved against the index's mapping, and its
//! column in one segment's `_fields` fast field.
//!
//! The mapping decides the type: keywords are dictionary-encoded string columns, integers and
//! dates `i64` columns (dates in epoch milliseconds), doubles `f64` columns (tantivy may store a
//! segment whose doubles are all whole as integers, so columns are coerced), booleans `bool`
//! columns, `ip`s string columns of their encoded form (`ip.rs`). Unmapped fields read as empty; `text` without `fielddata` is refused as in
//! Elasticsearch.

use serde_json::Value;
use tantivy::DocId;
use tantivy::SegmentReader;
use tantivy::columnar::{
    Cardinality, Column, ColumnIndex, DynamicColumn, NumericalType, StrColumn,
};

use super::format::{DateFormat, DecimalFormat, ValueFormat};
use crate::date;
use crate::error::{Result, SearchError};
use crate::mapping::{FieldType, Mappings};

/// Name of the JSON fast field that holds exact values (see `schema.rs`).
const EXACT_FIELD: &str = "_fields";

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldKind {
    Unmapped,
    Keyword,
    /// An `ip`: a keyword column of encoded addresses (`ip.rs`), printed as addresses.
    Ip,
    Integer,
    Double,
    /// With the field's date format.
    Date(String),
    Boolean,
}

impl FieldKind {
    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self,
            FieldKind::Integer | FieldKind::Double | FieldKind::Date(_) | FieldKind::Boolean
        )
    }
}

/// Resolves `field` for aggregation `agg_type` in index `index`.
pub(crate) fn resolve_field(
    mappings: &Mappings,
    index: &str,
    field: &str,
    agg_type: &str,
) -> Result<FieldKind> {
    let Some(mapping) = mappings.field(field) else {
        return Ok(FieldKind::Unmapped);
    };
    Ok(match mapping.field_type {
        FieldType::Keyword | FieldType::Wildcard | FieldType::Flattened => FieldKind::Keyword,
        FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte => {
            FieldKind::Integer
        }
        FieldType::Double | FieldType::Float | FieldType::ScaledFloat => FieldKind::Double,
        FieldType::Date => FieldKind::Date(mapping.date_format().to_string()),
        FieldType::Boolean => FieldKind::Boolean,
        FieldType::Text => {
            let hint = match mapping
                .fields
                .iter()
                .find(|(_, sub)| sub.field_type == FieldType::Keyword)
            {
                Some((name, _)) => format!(
                    " Use the [{field}.{name}] keyword field to aggregate on the exact values."
                ),
                None => String::new(),
            };
            let fielddata = matches!(mapping.parameters.get("fielddata"), Some(Value::Bool(true)));
            if fielddata {
                return Err(SearchError::illegal(format!(
                    "[{agg_type}] on text field [{field}] with fielddata=true is not supported by Sluice.{hint}"
                )));
            }
            return Err(SearchError::illegal(format!(
                "Fielddata is disabled on [{field}] in [{index}]. Text fields are not optimised for operations that require per-document field data like aggregations and sorting, so these operations are disabled by default. Please use a keyword field instead. Alternatively, set fielddata=true on [{field}] in order to load field data by uninverting the inverted index. Note that this can use significant memory.{hint}"
            )));
        }
        FieldType::Ip => FieldKind::Ip,
        FieldType::GeoPoint if agg_type == "sort" => {
            return Err(SearchError::illegal(format!(
                "can't sort on geo_point field without using specific sorting feature, like geo_distance: [{field}]"
            )));
        }
        FieldType::GeoPoint => {
            return Err(SearchError::illegal(format!(
                "Field [{field}] of type [geo_point] is not supported for aggregation [{agg_type}]"
            )));
        }
        FieldType::Object | FieldType::Nested => {
            return Err(SearchError::illegal(format!(
                "Field [{field}] of type [{}] is not supported for aggregation [{agg_type}]",
                mapping.field_type.name()
            )));
        }
    })
}

/// How values of a field print when the aggregation gives no `format`, or with the one it gives.
pub(crate) fn value_format(kind: &FieldKind, format: Option<&str>) -> Result<ValueFormat> {
    match (kind, format) {
        (FieldKind::Date(field_format), requested) => {
            let text = requested.unwrap_or(field_format);
            let parsed = DateFormat::parse(text).map_err(SearchError::illegal)?;
            Ok(ValueFormat::Date(parsed, jiff::tz::TimeZone::UTC))
        }
        (FieldKind::Boolean, _) => Ok(ValueFormat::Boolean),
        (FieldKind::Ip, _) => Ok(ValueFormat::Ip),
        (FieldKind::Integer | FieldKind::Double, Some(pattern)) => Ok(ValueFormat::Decimal(
            DecimalFormat::parse(pattern).map_err(SearchError::illegal)?,
        )),
        _ => Ok(ValueFormat::Raw),
    }
}

/// Converts a `missing` value to a number for a numeric field.
pub(crate) fn missing_number(kind: &FieldKind, missing: &Value) -> Result<f64> {
    let parsed = match (kind, missing) {
        (_, Value::Number(n)) => n.as_f64(),
        (FieldKind::Date(format), Value::String(s)) => {
            date::parse_date_str(s, format).map(|ms| ms as f64)
        }
        (FieldKind::Boolean, Value::Bool(b)) => Some(if *b { 1.0 } else { 0.0 }),
        (FieldKind::Boolean, Value::String(s)) if s == "true" || s == "false" => {
            Some(if s == "true" { 1.0 } else { 0.0 })
        }
        (_, Value::String(s)) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        SearchError::illegal(format!("failed to parse the [missing] value [{missing}]"))
    })
}

/// Documents whose values [`first_values`] reads with one call into the column.
pub(crate) const VALUE_BATCH: usize = 128;

/// Whether a column holds at most one value per document.
pub(crate) fn single_valued<T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static>(
    column: &Column<T>,
) -> bool {
    column.get_cardinality() != Cardinality::Multivalued
}

/// Calls `f(doc, value)` for each document of `docs` (strictly increasing) in order, with its
/// value or `None`: a column's values read [`VALUE_BATCH`] documents at a time (one dynamic
/// call per batch for a column with a value in every document, instead of an iterator per
/// document; a run of consecutive documents, as a `match_all` gives, is unpacked as a range).
/// Only the first value of a document is read: meant for [`single_valued`] columns.
pub(crate) fn first_values<T: PartialOrd + Copy + std::fmt::Debug + Send + Sync + 'static>(
    column: &Column<T>,
    docs: &[DocId],
    mut f: impl FnMut(DocId, Option<T>),
) {
    debug_assert!(docs.windows(2).all(|pair| pair[0] < pair[1]));
    let mut values = [None; VALUE_BATCH];
    // With a value in every document, row and document are one: a consecutive run of documents
    // is a range of rows.
    let mut range =
        matches!(column.index, ColumnIndex::Full).then(|| [column.values.min_value(); VALUE_BATCH]);
    for chunk in docs.chunks(VALUE_BATCH) {
        if let (Some(range), Some(&first), Some(&last)) =
            (range.as_mut(), chunk.first(), chunk.last())
            && (last - first) as usize + 1 == chunk.len()
        {
            let out = &mut range[..chunk.len()];
            column.values.get_range(u64::from(first), out);
            for (&doc, &value) in chunk.iter().zip(out.iter()) {
                f(doc, Some(value));
            }
            continue;
        }
        let out = &mut values[..chunk.len()];
        out.fill(None);
        column.first_vals(chunk, out);
        for (&doc, &value) in chunk.iter().zip(out.iter()) {
            f(doc, value);
        }
    }
}

/// One segment's column of a field.
pub(crate) enum SegmentColumn {
    Empty,
    Str(StrColumn),
    I64(Column<i64>),
    F64(Column<f64>),
    Bool(Column<bool>),
}

impl SegmentColumn {
    pub(crate) fn open(
        reader: &SegmentReader,
        kind: &FieldKind,
        field: &str,
    ) -> Result<SegmentColumn> {
        if *kind == FieldKind::Unmapped {
            return Ok(SegmentColumn::Empty);
        }
        let path = format!("{EXACT_FIELD}.{field}");
        let handles = reader.fast_fields().dynamic_column_handles(&path)?;
        for handle in handles {
            let column = handle.open().map_err(|e| SearchError::Corrupt {
                what: format!("column {field}"),
                reason: e.to_string(),
            })?;
            let opened = match (kind, column) {
                (FieldKind::Keyword | FieldKind::Ip, DynamicColumn::Str(column)) => {
                    SegmentColumn::Str(column)
                }
                (FieldKind::Boolean, DynamicColumn::Bool(column)) => SegmentColumn::Bool(column),
                (FieldKind::Double, column) if column.is_numerical() => {
                    match column.coerce_numerical(NumericalType::F64) {
                        Some(DynamicColumn::F64(column)) => SegmentColumn::F64(column),
                        _ => continue,
                    }
                }
                (FieldKind::Integer | FieldKind::Date(_), column) if column.is_numerical() => {
                    match column.coerce_numerical(NumericalType::I64) {
                        Some(DynamicColumn::I64(column)) => SegmentColumn::I64(column),
                        _ => continue,
                    }
                }
                _ => continue,
            };
            return Ok(opened);
        }
        Ok(SegmentColumn::Empty)
    }

    /// Calls `f` with each numeric value of `doc`; returns whether it had any.
    #[inline]
    pub(crate) fn for_each_number(&self, doc: u32, mut f: impl FnMut(f64)) -> bool {
        let mut any = false;
        match self {
            SegmentColumn::Empty | SegmentColumn::Str(_) => {}
            SegmentColumn::I64(column) => {
                for v in column.values_for_doc(doc) {
                    any = true;
                    f(v as f64);
                }
            }
            SegmentColumn::F64(column) => {
                for v in column.values_for_doc(doc) {
                    any = true;
                    f(v);
                }
            }
            SegmentColumn::Bool(column) => {
                for v in column.values_for_doc(doc) {
                    any = true;
                    f(if v { 1.0 } else { 0.0 });
                }
            }
        }
        any
    }

    /// Calls `f` with `Some` of each numeric value of the documents `docs`, in order, and with
    /// `None` for each document without one: [`Self::for_each_number`] over a list, reading a
    /// column of at most one value per document in batches.
    #[inline]
    pub(crate) fn for_each_number_of(&self, docs: &[DocId], mut f: impl FnMut(Option<f64>)) {
        match self {
            SegmentColumn::I64(column) if single_valued(column) => {
                first_values(column, docs, |_, v| f(v.map(|v| v as f64)));
            }
            SegmentColumn::F64(column) if single_valued(column) => {
                first_values(column, docs, |_, v| f(v));
            }
            _ => {
                for &doc in docs {
                    if !self.for_each_number(doc, |v| f(Some(v))) {
                        f(None);
                    }
                }
            }
        }
    }

    /// Calls `f` with the numeric values of the documents `docs` in slices of at most
    /// [`VALUE_BATCH`], `missing` standing for each document without one when given: for
    /// accumulators that keep their state in registers over a slice.
    pub(crate) fn number_batches(
        &self,
        docs: &[DocId],
        missing: Option<f64>,
        mut f: impl FnMut(&[f64]),
    ) {
        let mut batch = [0f64; VALUE_BATCH];
        let mut len = 0;
        self.for_each_number_of(docs, |value| {
            if let Some(value) = value.or(missing) {
                batch[len] = value;
                len += 1;
                if len == VALUE_BATCH {
                    f(&batch);
                    len = 0;
                }
            }
        });
        if len > 0 {
            f(&batch[..len]);
        }
    }

    /// The ordinals of a string column that holds at most one term per document, for reading
    /// with [`first_values`].
    pub(crate) fn single_valued_ords(&self) -> Option<&Column<u64>> {
        match self {
            SegmentColumn::Str(column) if single_valued(column.ords()) => Some(column.ords()),
            _ => None,
        }
    }

    /// The column of a double field that holds at most one value per document, for reading
    /// with [`first_values`].
    pub(crate) fn single_valued_f64(&self) -> Option<&Column<f64>> {
        match self {
            SegmentColumn::F64(column) if single_valued(column) => Some(column),
            _ => None,
        }
    }

    /// The column of an integer or date field that holds at most one value per document, for
    /// reading with [`first_values`].
    pub(crate) fn single_valued_i64(&self) -> Option<&Column<i64>> {
        match self {
            SegmentColumn::I64(column) if single_valued(column) => Some(column),
            _ => None,
        }
    }

    /// Calls `f` with each `i64` value of `doc` (integers, dates, booleans as 0/1).
    #[inline]
    pub(crate) fn for_each_i64(&self, doc: u32, mut f: impl FnMut(i64)) -> bool {
        let mut any = false;
        match self {
            SegmentColumn::I64(column) => {
                for v in column.values_for_doc(doc) {
                    any = true;
                    f(v);
                }
            }
            SegmentColumn::Bool(column) => {
                for v in column.values_for_doc(doc) {
                    any = true;
                    f(i64::from(v));
                }
            }
            SegmentColumn::F64(column) => {
                for v in column.values_for_doc(doc) {
                    any = true;
                    f(v as i64);
                }
            }
            SegmentColumn::Empty | SegmentColumn::Str(_) => {}
        }
        any
    }

    /// Calls `f` with each term ordinal of `doc` (string columns only).
    #[inline]
    pub(crate) fn for_each_ord(&self, doc: u32, mut f: impl FnMut(u64)) -> bool {
        let mut any = false;
        if let SegmentColumn::Str(column) = self {
            for ord in column.term_ords(doc) {
                any = true;
                f(ord);
            }
        }
        any
    }

    pub(crate) fn has_value(&self, doc: u32) -> bool {
        match self {
            SegmentColumn::Empty => false,
            SegmentColumn::Str(column) => column.ords().index.has_value(doc),
            SegmentColumn::I64(column) => column.index.has_value(doc),
            SegmentColumn::F64(column) => column.index.has_value(doc),
            SegmentColumn::Bool(column) => column.index.has_value(doc),
        }
    }

    pub(crate) fn term(&self, ord: u64) -> Result<String> {
        let mut text = String::new();
        if let SegmentColumn::Str(column) = self {
            column
                .ord_to_str(ord, &mut text)
                .map_err(|e| SearchError::Corrupt {
                    what: "term dictionary".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(text)
    }

    /// The terms of sorted, distinct ordinals, in one pass over the dictionary (looking each up
    /// alone would decode a dictionary block per term).
    pub(crate) fn terms(&self, sorted_ords: &[u64]) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(sorted_ords.len());
        self.for_each_term(sorted_ords, |bytes| {
            out.push(String::from_utf8_lossy(bytes).into_owned())
        })?;
        Ok(out)
    }

    /// Calls `f` with the bytes of the term of each of the sorted, distinct ordinals, in one
    /// pass over the dictionary and without a copy: for callers that only hash or compare them.
    pub(crate) fn for_each_term(&self, sorted_ords: &[u64], f: impl FnMut(&[u8])) -> Result<()> {
        if let SegmentColumn::Str(column) = self {
            if !sorted_ords.is_sorted() {
                return Err(SearchError::Corrupt {
                    what: "term ordinals".into(),
                    reason: "not sorted".into(),
                });
            }
            column
                .dictionary()
                .sorted_ords_to_term_cb(sorted_ords, f)
                .map_err(|e| SearchError::Corrupt {
                    what: "term dictionary".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// Smallest and largest numeric values of the segment, if numeric and not empty.
    pub(crate) fn min_max_i64(&self) -> Option<(i64, i64)> {
        match self {
            SegmentColumn::I64(column) if column.values.num_vals() > 0 => {
                Some((column.min_value(), column.max_value()))
            }
            _ => None,
        }
    }
}
