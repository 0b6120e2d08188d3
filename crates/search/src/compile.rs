//! The query tree compiled into tantivy queries under an index's mapping and schema.
//!
//! The mapping decides what each clause means for a field: analyzed terms in the field's own text
//! slot (scored with the field's statistics, `scoring.rs`), exact values in `_fields` (keywords,
//! numbers, dates, booleans), or nothing at all for unmapped fields (they match no document, as
//! in Elasticsearch). Scores follow Elasticsearch: BM25 for text (fuzzy terms with Lucene's
//! blended frequencies, `fuzzy.rs`), constant scores for ranges, prefixes, wildcards, regular
//! expressions and `exists`, the IDF for keyword terms.

use std::ops::Bound;
use std::sync::Arc;

use serde_json::Value;
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, EmptyQuery,
    EnableScoring, ExistsQuery, Occur, PhrasePrefixQuery, PhraseQuery, RangeQuery, TermQuery,
    TermSetQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{Searcher, Term};
use tantivy_fst::{Automaton, Regex};

use crate::analysis::Analyzer;
use crate::date;
use crate::date_math;
use crate::error::{Result, SearchError};
use crate::fuzzy::{FuzzyOptions, fuzzy_query};
use crate::geo_query::GeoShapeQuery;
use crate::mapping::{FieldMapping, FieldType, IndexValue, Mappings, query_value};
use crate::nested::NestedQuery;
use crate::query::{
    Bool, DecayShape, FieldPattern, Fields, FunctionKind, FunctionScore, Geo, Match, MatchKind,
    Nested, Operator, QUERY_CLAUSES_MAX, QUERY_DEPTH_MAX, Query, Range, RangeBound, ZeroTermsQuery,
};
use crate::schema::{SchemaFields, text_term, value_term};
use crate::scoring::{
    BoostingQuery, CompiledFunction, FieldStatsQuery, FunctionScoreQuery, NormDocCounts,
    NormExistsQuery, ScoreFn,
};

pub(crate) type TantivyQuery = Box<dyn tantivy::query::Query>;

/// What the index needs to compile a query against one searcher.
pub(crate) struct Compiler<'a> {
    pub fields: &'a SchemaFields,
    pub mappings: &'a Mappings,
    pub searcher: &'a Searcher,
    pub doc_counts: &'a Arc<NormDocCounts>,
    /// The tantivy analyzer of format 1 indices' `_text`.
    pub legacy_analyzer: Option<&'a tantivy::tokenizer::TextAnalyzer>,
    pub now_ms: i64,
    /// The path of the `nested` query being compiled inside, `None` at the top: its documents
    /// are the parents of nested queries inside it.
    pub nested_scope: Option<&'a str>,
}

/// Where a field's values are and how they are searched.
enum Target<'m> {
    Id,
    Unmapped,
    Object(String),
    Text {
        path: String,
        slot: Option<Field>,
        mapping: &'m FieldMapping,
    },
    Exact {
        path: String,
        mapping: &'m FieldMapping,
    },
}

fn boosted(query: TantivyQuery, boost: f32) -> TantivyQuery {
    if (boost - 1.0).abs() < f32::EPSILON {
        query
    } else {
        Box::new(BoostQuery::new(query, boost))
    }
}

fn illegal(reason: impl Into<String>) -> SearchError {
    SearchError::illegal(reason)
}

/// A regular expression for tantivy's term dictionary from a pattern that is already Rust
/// regex syntax, optionally case-insensitive.
fn term_regex(prefix: &[u8], pattern: &str, case_insensitive: bool) -> Result<Regex> {
    let mut full = String::new();
    for byte_char in String::from_utf8_lossy(prefix).chars() {
        push_escaped(&mut full, byte_char);
    }
    if case_insensitive {
        full.push_str("(?i:");
        full.push_str(pattern);
        full.push(')');
    } else {
        full.push_str(pattern);
    }
    Regex::new(&full).map_err(|e| illegal(format!("invalid regular expression [{pattern}]: {e}")))
}

fn push_escaped(out: &mut String, c: char) {
    if c.is_alphanumeric() {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:x}}}", c as u32));
    }
}

/// A literal as a regex.
fn escape_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// The text every match of a wildcard pattern starts with: its characters before the first
/// unescaped `*` or `?`, escapes resolved.
fn wildcard_literal_prefix(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' | '?' => break,
            '\\' => out.push(chars.next().unwrap_or('\\')),
            other => out.push(other),
        }
    }
    out
}

/// Elasticsearch's wildcard syntax (`*`, `?`, `\` escapes) as a regex.
pub fn wildcard_to_regex(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str("(?s:.)*"),
            '?' => out.push_str("(?s:.)"),
            '\\' => match chars.next() {
                Some(next) => push_escaped(&mut out, next),
                None => push_escaped(&mut out, '\\'),
            },
            other => push_escaped(&mut out, other),
        }
    }
    out
}

/// Lucene's regular expression syntax as a Rust regex, refusing the operators Sluice does not
/// support (`&` intersection, `~` complement, `<n-m>` intervals).
pub fn lucene_regex_to_rust(pattern: &str) -> Result<String> {
    let unsupported = |what: &str| {
        illegal(format!(
            "regular expression [{pattern}] uses the {what} operator, which Sluice does not support"
        ))
    };
    let mut out = String::new();
    let mut chars = pattern.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        if in_class {
            match c {
                ']' => {
                    in_class = false;
                    out.push(']');
                }
                '\\' => match chars.next() {
                    Some(next) => push_escaped(&mut out, next),
                    None => return Err(illegal(format!("invalid regular expression [{pattern}]"))),
                },
                '[' | '&' | '~' => push_escaped(&mut out, c),
                other => out.push(other),
            }
            continue;
        }
        match c {
            '.' => out.push_str("(?s:.)"),
            '[' => {
                in_class = true;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    chars.next();
                    out.push('^');
                }
            }
            '(' | ')' | '|' | '*' | '+' | '?' | '{' | '}' | ',' => out.push(c),
            '\\' => match chars.next() {
                Some(class @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                    out.push('\\');
                    out.push(class);
                }
                Some(next) => push_escaped(&mut out, next),
                None => return Err(illegal(format!("invalid regular expression [{pattern}]"))),
            },
            '"' => {
                for quoted in chars.by_ref() {
                    if quoted == '"' {
                        break;
                    }
                    push_escaped(&mut out, quoted);
                }
            }
            '@' => out.push_str("(?s:.)*"),
            '#' => out.push_str("[^\\s\\S]"),
            '&' => return Err(unsupported("intersection (&)")),
            '~' => return Err(unsupported("complement (~)")),
            '<' => return Err(unsupported("interval (<n-m>)")),
            other => push_escaped(&mut out, other),
        }
    }
    if in_class {
        return Err(illegal(format!(
            "invalid regular expression [{pattern}]: unclosed character class"
        )));
    }
    Ok(out)
}

/// `*`-patterns of field names.
pub fn field_pattern_matches(pattern: &str, path: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == path,
        Some((head, tail)) => {
            let Some(rest) = path.strip_prefix(head) else {
                return false;
            };
            if !tail.contains('*') {
                return rest.ends_with(tail);
            }
            (0..=rest.len())
                .filter(|i| rest.is_char_boundary(*i))
                .any(|i| {
                    rest.get(i..)
                        .is_some_and(|r| field_pattern_matches(tail, r))
                })
        }
    }
}

impl Compiler<'_> {
    pub fn compile(&self, query: &Query) -> Result<TantivyQuery> {
        self.compile_at(query, 0)
    }

    fn target(&self, field: &str) -> Target<'_> {
        if field == "_id" {
            return Target::Id;
        }
        let Some(mapping) = self.mappings.field(field) else {
            return Target::Unmapped;
        };
        match mapping.field_type {
            FieldType::Object | FieldType::Nested => Target::Object(field.to_string()),
            FieldType::Text => Target::Text {
                path: field.to_string(),
                slot: self
                    .mappings
                    .text_slots
                    .get(field)
                    .and_then(|slot| self.fields.text_slots.get(*slot).copied()),
                mapping,
            },
            _ => Target::Exact {
                path: field.to_string(),
                mapping,
            },
        }
    }

    /// Scores a query over one text field with that field's statistics.
    fn with_field_stats(&self, slot: Option<Field>, query: TantivyQuery) -> TantivyQuery {
        match slot {
            Some(field) => Box::new(FieldStatsQuery {
                inner: Arc::from(query),
                field,
                doc_counts: self.doc_counts.clone(),
            }),
            None => query,
        }
    }

    /// The tokens (with positions) of query text for a text field.
    fn analyze(
        &self,
        slot: Option<Field>,
        analyzer: Analyzer,
        text: &str,
    ) -> Result<Vec<(usize, String)>> {
        let mut tokens = Vec::new();
        match (slot, self.fields.legacy_text, self.legacy_analyzer) {
            (None, true, Some(legacy)) => {
                let mut legacy = legacy.clone();
                let mut stream = legacy.token_stream(text);
                while let Some(token) = stream.next() {
                    tokens.push((token.position, token.text.clone()));
                }
            }
            _ => analyzer.for_each_token(text, &mut |token, _, _, position, _| {
                tokens.push((position, token.to_string()))
            }),
        }
        if tokens.len() > QUERY_CLAUSES_MAX {
            return Err(too_many_clauses());
        }
        Ok(tokens)
    }

    fn exact_term(&self, path: &str, mapping: &FieldMapping, value: &Value) -> Result<Term> {
        let indexed = query_value(mapping, value).ok_or_else(|| {
            illegal(format!(
                "failed to create query: [{}] is not a valid value for field [{path}] of type [{}]",
                display_value(value),
                mapping.field_type.name()
            ))
        })?;
        Ok(value_term(self.fields, path, &indexed))
    }

    /// The key prefix of a `_fields` or `_text` path's string terms in the term dictionary,
    /// and the JSON path bytes that bound the dictionary scan.
    fn json_string_prefix(&self, field: Field, path: &str) -> (Vec<u8>, Vec<u8>) {
        let mut term = Term::from_field_json_path(field, path, true);
        term.append_type_and_str("");
        let key = term.serialized_value_bytes().to_vec();
        let path_bytes = key
            .get(..key.len().saturating_sub(1))
            .unwrap_or_default()
            .to_vec();
        (key, path_bytes)
    }

    /// Terms of a field matched by a regex (already Rust syntax), scored `boost`.
    /// `literal` is the text every match starts with (a prefix query's value, a wildcard's text
    /// before its first `*` or `?`), when known: the terms are then read from that key range of
    /// the dictionary instead of testing the regex against every block of the field.
    fn regex_query(
        &self,
        field: &str,
        pattern: &str,
        literal: Option<&str>,
        case_insensitive: bool,
        boost: f32,
    ) -> Result<TantivyQuery> {
        let (tantivy_field, key_prefix, path_bytes) = match self.target(field) {
            Target::Text {
                slot: Some(slot), ..
            } => (slot, Vec::new(), None),
            Target::Text {
                path, slot: None, ..
            } => {
                let (key, path_bytes) = self.json_string_prefix(self.fields.text, &path);
                (self.fields.text, key, Some(path_bytes))
            }
            Target::Exact { path, mapping } => {
                if !mapping.field_type.is_keyword_like() {
                    return Err(illegal(format!(
                        "Can only use regexp, wildcard and prefix queries on keyword and text fields - not on [{field}] which is of type [{}]",
                        mapping.field_type.name()
                    )));
                }
                let (key, path_bytes) = self.json_string_prefix(self.fields.exact, &path);
                (self.fields.exact, key, Some(path_bytes))
            }
            Target::Id => {
                return Err(illegal(format!(
                    "Can only use regexp, wildcard and prefix queries on keyword and text fields - not on [{field}]"
                )));
            }
            Target::Unmapped | Target::Object(_) => return Ok(Box::new(EmptyQuery)),
        };
        let regex = term_regex(&key_prefix, pattern, case_insensitive)?;
        let literal_key = literal
            .filter(|literal| !literal.is_empty() && !case_insensitive)
            .map(|literal| [key_prefix.as_slice(), literal.as_bytes()].concat());
        Ok(Box::new(ConstScoreQuery::new(
            Box::new(AutomatonQuery {
                field: tantivy_field,
                regex: Arc::new(regex),
                json_path_bytes: path_bytes,
                literal_key,
            }),
            boost,
        )))
    }

    /// A wildcard, prefix or fuzzy term as it must be looked up in `field`: lowercased for text
    /// fields whose analyzer lowercases, as Elasticsearch normalizes such terms.
    fn normalized(&self, field: &str, text: &str) -> String {
        match self.target(field) {
            Target::Text { mapping, .. } if mapping.search_analyzer().lowercases() => {
                text.to_lowercase()
            }
            _ => text.to_string(),
        }
    }

    fn compile_at(&self, query: &Query, depth: usize) -> Result<TantivyQuery> {
        if depth > QUERY_DEPTH_MAX {
            return Err(too_deep());
        }
        let next = depth + 1;
        match query {
            Query::Term { field, .. } | Query::Terms { field, .. } => self.refuse_geo(field)?,
            Query::Range(range) => self.refuse_geo(&range.field)?,
            _ => {}
        }
        Ok(match query {
            // Never a bare `AllQuery`: tantivy drops its scorer from a boolean intersection,
            // score and all, and `match_all` inside a `bool` must add its 1.0 as in Lucene.
            Query::MatchAll { boost } => Box::new(ConstScoreQuery::new(Box::new(AllQuery), *boost)),
            Query::MatchNone => Box::new(EmptyQuery),
            Query::Term {
                field,
                value,
                case_insensitive,
                boost,
            } => self.term(field, value, *case_insensitive, *boost)?,
            Query::Terms {
                field,
                values,
                boost,
            } => self.terms(field, values, *boost)?,
            Query::Ids { values, boost } => {
                let terms = values
                    .iter()
                    .map(|id| Term::from_field_text(self.fields.id, id));
                Box::new(ConstScoreQuery::new(
                    Box::new(TermSetQuery::new(terms)),
                    *boost,
                ))
            }
            Query::Match(query) => self.match_query(query)?,
            Query::Fields(fields) => self.fields_query(fields, next)?,
            Query::CrossFields(fields) => self.cross_fields(fields)?,
            Query::Range(range) => self.range(range)?,
            Query::Exists { field, boost } => boosted(self.exists(field)?, *boost),
            Query::Prefix {
                field,
                value,
                case_insensitive,
                boost,
            } => {
                if let Target::Id = self.target(field) {
                    return Err(illegal(
                        "prefix queries on [_id] are not supported by Sluice",
                    ));
                }
                let value = self.normalized(field, value);
                self.regex_query(
                    field,
                    &format!("{}(?s:.)*", escape_literal(&value)),
                    Some(&value),
                    *case_insensitive,
                    *boost,
                )?
            }
            Query::Wildcard {
                field,
                pattern,
                case_insensitive,
                boost,
            } => {
                let pattern = self.normalized(field, pattern);
                self.regex_query(
                    field,
                    &wildcard_to_regex(&pattern),
                    Some(&wildcard_literal_prefix(&pattern)),
                    *case_insensitive,
                    *boost,
                )?
            }
            Query::Regexp {
                field,
                pattern,
                case_insensitive,
                boost,
            } => self.regex_query(
                field,
                &lucene_regex_to_rust(pattern)?,
                None,
                *case_insensitive,
                *boost,
            )?,
            Query::Fuzzy {
                field,
                value,
                fuzziness,
                prefix_length,
                max_expansions,
                transpositions,
                boost,
            } => {
                let value = &self.normalized(field, value);
                let edits = fuzziness.edits(value);
                let term = match self.target(field) {
                    Target::Text { path, slot, .. } => text_term(self.fields, &path, slot, value),
                    Target::Exact { path, mapping } if mapping.field_type.is_keyword_like() => {
                        value_term(self.fields, &path, &IndexValue::Keyword(value.clone()))
                    }
                    Target::Exact { mapping, .. } => {
                        return Err(illegal(format!(
                            "Can only use fuzzy queries on keyword and text fields - not on [{field}] which is of type [{}]",
                            mapping.field_type.name()
                        )));
                    }
                    Target::Id | Target::Unmapped | Target::Object(_) => {
                        return Ok(Box::new(EmptyQuery));
                    }
                };
                let options = FuzzyOptions {
                    edits,
                    transpositions: *transpositions,
                    prefix_length: *prefix_length,
                    max_expansions: *max_expansions,
                };
                let keyword = matches!(self.target(field), Target::Exact { .. });
                let query = self.fuzzy_term(term, value, options, keyword, *boost)?;
                match self.target(field) {
                    Target::Text { slot, .. } => self.with_field_stats(slot, query),
                    _ => query,
                }
            }
            Query::Bool(bool_query) => self.bool_query(bool_query, next)?,
            Query::ConstantScore { filter, boost } => {
                Box::new(ConstScoreQuery::new(self.compile_at(filter, next)?, *boost))
            }
            Query::Boosting {
                positive,
                negative,
                negative_boost,
                boost,
            } => boosted(
                Box::new(BoostingQuery {
                    positive: Arc::from(self.compile_at(positive, next)?),
                    negative: Arc::from(self.compile_at(negative, next)?),
                    negative_boost: *negative_boost,
                }),
                *boost,
            ),
            Query::DisMax {
                queries,
                tie_breaker,
                boost,
            } => {
                let mut compiled = Vec::with_capacity(queries.len());
                for query in queries {
                    compiled.push(self.compile_at(query, next)?);
                }
                boosted(
                    Box::new(DisjunctionMaxQuery::with_tie_breaker(
                        compiled,
                        *tie_breaker,
                    )),
                    *boost,
                )
            }
            Query::FunctionScore(function_score) => self.function_score(function_score, next)?,
            Query::Named { query, .. } => self.compile_at(query, next)?,
            // The read compiles everything under the restricted mapping (`Index::read_mappings`).
            Query::Restricted(restricted) => self.compile_at(&restricted.query, next)?,
            Query::Geo(geo) => self.geo(geo)?,
            Query::Nested(nested) => self.nested(nested, next)?,
        })
    }

    /// A phrase whose last term is a prefix, matched with `slop`: the prefix expands to the
    /// first `max_expansions` terms of the index (in term order, over every segment) that start
    /// with it, and a document matches when one of the sloppy phrases ending in them does.
    fn sloppy_phrase_prefix(
        &self,
        mut terms: Vec<(usize, Term)>,
        slop: u32,
        max_expansions: u32,
    ) -> Result<TantivyQuery> {
        let Some((position, prefix)) = terms.pop() else {
            return Ok(Box::new(EmptyQuery));
        };
        let wanted = max_expansions.max(1) as usize;
        let start = prefix.serialized_value_bytes().to_vec();
        let mut expanded: std::collections::BTreeSet<Vec<u8>> = std::collections::BTreeSet::new();
        for segment in self.searcher.segment_readers() {
            let inverted = segment.inverted_index(prefix.field())?;
            let mut stream = inverted
                .terms()
                .range()
                .ge(&start)
                .into_stream()
                .map_err(tantivy::TantivyError::from)?;
            let mut taken = 0;
            while taken < wanted && stream.advance() {
                if !stream.key().starts_with(&start) {
                    break;
                }
                expanded.insert(stream.key().to_vec());
                taken += 1;
            }
        }
        let phrases: Vec<(Occur, TantivyQuery)> = expanded
            .into_iter()
            .take(wanted)
            .map(|bytes| {
                let mut term = prefix.clone();
                term.truncate_value_bytes(0);
                term.append_bytes(&bytes);
                let mut phrase_terms = terms.clone();
                phrase_terms.push((position, term));
                let phrase: TantivyQuery =
                    Box::new(PhraseQuery::new_with_offset_and_slop(phrase_terms, slop));
                (Occur::Should, phrase)
            })
            .collect();
        if phrases.is_empty() {
            return Ok(Box::new(EmptyQuery));
        }
        Ok(Box::new(BooleanQuery::new(phrases)))
    }

    /// The `nested` query: `nested.query` runs on the hidden documents of `nested.path` and
    /// their matches become their parents, the documents of the scope (`nested.rs`).
    fn nested(&self, nested: &Nested, depth: usize) -> Result<TantivyQuery> {
        let path = nested.path.as_str();
        match self.mappings.field(path) {
            None if nested.ignore_unmapped => return Ok(Box::new(EmptyQuery)),
            None => {
                return Err(SearchError::QueryShard {
                    reason: format!("[nested] failed to find nested object under path [{path}]"),
                });
            }
            Some(mapping) if mapping.field_type != FieldType::Nested => {
                return Err(SearchError::QueryShard {
                    reason: format!(
                        "[nested] nested object under path [{path}] is not of nested type"
                    ),
                });
            }
            Some(_) => {}
        }
        if let Some(scope) = self.nested_scope
            && !path
                .strip_prefix(scope)
                .is_some_and(|rest| rest.starts_with('.'))
        {
            return Err(SearchError::QueryShard {
                reason: format!(
                    "[nested] nested path [{path}] is not a child of the enclosing nested path [{scope}]"
                ),
            });
        }
        // Mappings of formats 1 and 2 never hold nested fields (`Index::put_mapping`).
        let Some(nested_field) = self.fields.nested else {
            return Ok(Box::new(EmptyQuery));
        };
        let inner = Compiler {
            fields: self.fields,
            mappings: self.mappings,
            searcher: self.searcher,
            doc_counts: self.doc_counts,
            legacy_analyzer: self.legacy_analyzer,
            now_ms: self.now_ms,
            nested_scope: Some(path),
        };
        let child = inner.compile_at(&nested.query, depth)?;
        Ok(boosted(
            Box::new(NestedQuery {
                child: Arc::from(child),
                nested_field,
                path: path.to_string(),
                parent_level: self.nested_scope.map(str::to_string),
                score_mode: nested.score_mode,
            }),
            nested.boost,
        ))
    }

    /// A fuzzy term as Lucene's `FuzzyQuery` expands and scores it (`fuzzy.rs`): `term` is
    /// `value` as the field's terms are stored.
    fn fuzzy_term(
        &self,
        term: Term,
        value: &str,
        options: FuzzyOptions,
        keyword: bool,
        boost: f32,
    ) -> Result<TantivyQuery> {
        let keyword_score = |doc_freq: u64| self.keyword_idf_of(doc_freq);
        let query = fuzzy_query(
            self.searcher,
            &term,
            value,
            options,
            keyword.then_some(&keyword_score as &dyn Fn(u64) -> f32),
        )?;
        Ok(boosted(query, boost))
    }

    fn term(
        &self,
        field: &str,
        value: &Value,
        case_insensitive: bool,
        boost: f32,
    ) -> Result<TantivyQuery> {
        match self.target(field) {
            Target::Id => match id_text(value) {
                Some(id) => Ok(Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(
                        Term::from_field_text(self.fields.id, &id),
                        IndexRecordOption::Basic,
                    )),
                    boost,
                ))),
                None => Ok(Box::new(EmptyQuery)),
            },
            Target::Unmapped | Target::Object(_) => Ok(Box::new(EmptyQuery)),
            Target::Text { path, slot, .. } => {
                let text = scalar_text(value);
                if case_insensitive {
                    return self.regex_query(field, &escape_literal(&text), None, true, boost);
                }
                let term = text_term(self.fields, &path, slot, &text);
                Ok(boosted(
                    self.with_field_stats(
                        slot,
                        Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
                    ),
                    boost,
                ))
            }
            Target::Exact { path, mapping } => {
                if case_insensitive && mapping.field_type.is_keyword_like() {
                    return self.regex_query(
                        field,
                        &escape_literal(&scalar_text(value)),
                        None,
                        true,
                        boost,
                    );
                }
                if mapping.field_type == FieldType::Ip
                    && let Some(block) = value.as_str().filter(|v| v.contains('/'))
                {
                    // A CIDR block matches every address inside it, as in Elasticsearch.
                    let (first, last) = crate::ip::cidr_bounds(block).ok_or_else(|| {
                        illegal(format!(
                            "failed to create query: Expected [ip/prefix] but was [{block}]"
                        ))
                    })?;
                    let term =
                        |encoded| value_term(self.fields, &path, &IndexValue::Keyword(encoded));
                    return Ok(Box::new(ConstScoreQuery::new(
                        Box::new(RangeQuery::new(
                            Bound::Included(term(first)),
                            Bound::Included(term(last)),
                        )),
                        boost,
                    )));
                }
                let term = self.exact_term(&path, mapping, value)?;
                let score = if mapping.field_type == FieldType::Keyword {
                    boost * self.keyword_idf(&term)?
                } else {
                    boost
                };
                Ok(Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    score,
                )))
            }
        }
    }

    /// A keyword term scores its IDF, as BM25 without length norms gives it.
    fn keyword_idf(&self, term: &Term) -> Result<f32> {
        Ok(self.keyword_idf_of(self.searcher.doc_freq(term)?))
    }

    /// The IDF of a keyword term found in `doc_freq` documents.
    fn keyword_idf_of(&self, doc_freq: u64) -> f32 {
        let doc_count: u64 = self
            .searcher
            .segment_readers()
            .iter()
            .map(|s| u64::from(s.num_docs()))
            .sum::<u64>()
            .max(doc_freq);
        let x = ((doc_count - doc_freq) as f32 + 0.5) / (doc_freq as f32 + 0.5);
        (1.0 + x).ln()
    }

    fn terms(&self, field: &str, values: &[Value], boost: f32) -> Result<TantivyQuery> {
        if values.len() > QUERY_CLAUSES_MAX {
            return Err(too_many_clauses());
        }
        let mut terms = Vec::with_capacity(values.len());
        match self.target(field) {
            Target::Id => terms.extend(
                values
                    .iter()
                    .filter_map(id_text)
                    .map(|id| Term::from_field_text(self.fields.id, &id)),
            ),
            Target::Unmapped | Target::Object(_) => return Ok(Box::new(EmptyQuery)),
            Target::Text { path, slot, .. } => terms.extend(
                values
                    .iter()
                    .map(|v| text_term(self.fields, &path, slot, &scalar_text(v))),
            ),
            Target::Exact { path, mapping } => {
                for value in values {
                    terms.push(self.exact_term(&path, mapping, value)?);
                }
            }
        }
        Ok(Box::new(ConstScoreQuery::new(
            Box::new(TermSetQuery::new(terms)),
            boost,
        )))
    }

    fn zero_terms(&self, query: &Match) -> TantivyQuery {
        match query.zero_terms_query {
            ZeroTermsQuery::None => Box::new(EmptyQuery),
            ZeroTermsQuery::All => boosted(Box::new(AllQuery), query.boost),
        }
    }

    fn match_query(&self, query: &Match) -> Result<TantivyQuery> {
        let (path, slot, mapping) = match self.target(&query.field) {
            Target::Text {
                path,
                slot,
                mapping,
            } => (path, slot, mapping),
            Target::Unmapped | Target::Object(_) => return Ok(Box::new(EmptyQuery)),
            Target::Id => {
                return self.term(
                    &query.field,
                    &Value::String(query.text.clone()),
                    false,
                    query.boost,
                );
            }
            Target::Exact { path, mapping } => {
                // Keywords, numbers, dates and booleans match the whole text as one value.
                if let (Some(fuzziness), true) =
                    (query.fuzziness, mapping.field_type.is_keyword_like())
                {
                    let term =
                        value_term(self.fields, &path, &IndexValue::Keyword(query.text.clone()));
                    let options = FuzzyOptions {
                        edits: fuzziness.edits(&query.text),
                        transpositions: query.fuzzy_transpositions,
                        prefix_length: query.prefix_length,
                        max_expansions: query.max_expansions,
                    };
                    return self.fuzzy_term(term, &query.text, options, true, query.boost);
                }
                let value = Value::String(query.text.clone());
                return match self.term(&path, &value, false, query.boost) {
                    Err(_) if query.lenient => Ok(Box::new(EmptyQuery)),
                    Err(SearchError::IllegalArgument { .. })
                        if !mapping.field_type.is_keyword_like() =>
                    {
                        Err(illegal(format!(
                            "failed to create query: For input string: \"{}\" on field [{path}] of type [{}]",
                            query.text,
                            mapping.field_type.name()
                        )))
                    }
                    other => other,
                };
            }
        };
        let phrase = matches!(
            query.kind,
            MatchKind::Phrase { .. } | MatchKind::PhrasePrefix { .. }
        );
        let analyzer = query.analyzer.unwrap_or_else(|| {
            if phrase {
                mapping.search_quote_analyzer()
            } else {
                mapping.search_analyzer()
            }
        });
        let tokens = self.analyze(slot, analyzer, &query.text)?;
        if tokens.is_empty() {
            return Ok(self.zero_terms(query));
        }
        let term_of = |token: &str| text_term(self.fields, &path, slot, token);
        let compiled: TantivyQuery = match query.kind {
            MatchKind::Phrase { slop } => {
                if tokens.len() == 1 {
                    Box::new(TermQuery::new(
                        term_of(&tokens[0].1),
                        IndexRecordOption::WithFreqs,
                    ))
                } else {
                    let terms = tokens.iter().map(|(p, t)| (*p, term_of(t))).collect();
                    Box::new(PhraseQuery::new_with_offset_and_slop(terms, slop))
                }
            }
            MatchKind::PhrasePrefix {
                slop,
                max_expansions,
            } => {
                if tokens.len() == 1 {
                    return self.regex_query(
                        &query.field,
                        &format!("{}(?s:.)*", escape_literal(&tokens[0].1)),
                        Some(&tokens[0].1),
                        false,
                        query.boost,
                    );
                }
                let terms: Vec<(usize, Term)> =
                    tokens.iter().map(|(p, t)| (*p, term_of(t))).collect();
                if slop > 0 {
                    // Lucene's sloppy MultiPhraseQuery: the last term stands for the first
                    // `max_expansions` terms it is a prefix of, each a sloppy phrase.
                    self.sloppy_phrase_prefix(terms, slop, max_expansions)?
                } else {
                    let mut phrase = PhrasePrefixQuery::new_with_offset(terms);
                    phrase.set_max_expansions(max_expansions);
                    Box::new(phrase)
                }
            }
            MatchKind::Boolean | MatchKind::BoolPrefix => {
                let occur = match query.operator {
                    Operator::And => Occur::Must,
                    Operator::Or => Occur::Should,
                };
                let last = tokens.len() - 1;
                let mut clauses: Vec<(Occur, TantivyQuery)> = Vec::with_capacity(tokens.len());
                for (index, (_, token)) in tokens.iter().enumerate() {
                    let clause: TantivyQuery =
                        if query.kind == MatchKind::BoolPrefix && index == last {
                            self.regex_query(
                                &query.field,
                                &format!("{}(?s:.)*", escape_literal(token)),
                                Some(token),
                                false,
                                1.0,
                            )?
                        } else if let Some(fuzziness) = query.fuzziness {
                            self.fuzzy_term(
                                term_of(token),
                                token,
                                FuzzyOptions {
                                    edits: fuzziness.edits(token),
                                    transpositions: query.fuzzy_transpositions,
                                    prefix_length: query.prefix_length,
                                    max_expansions: query.max_expansions,
                                },
                                false,
                                1.0,
                            )?
                        } else {
                            Box::new(TermQuery::new(term_of(token), IndexRecordOption::WithFreqs))
                        };
                    clauses.push((occur, clause));
                }
                let required = match (&query.minimum_should_match, query.operator) {
                    (Some(msm), Operator::Or) => msm.required(clauses.len()),
                    _ => 0,
                };
                if clauses.len() == 1 && required <= 1 {
                    clauses
                        .pop()
                        .map(|(_, q)| q)
                        .unwrap_or_else(|| Box::new(EmptyQuery))
                } else if required > 1 {
                    Box::new(BooleanQuery::with_minimum_required_clauses(
                        clauses, required,
                    ))
                } else {
                    Box::new(BooleanQuery::new(clauses))
                }
            }
        };
        Ok(boosted(self.with_field_stats(slot, compiled), query.boost))
    }

    /// The mapped fields a list of patterns names, with their boosts.
    fn expand_fields(&self, patterns: &[FieldPattern]) -> Vec<(String, f32)> {
        let default = [FieldPattern {
            pattern: "*".to_string(),
            boost: 1.0,
        }];
        let patterns = if patterns.is_empty() {
            &default[..]
        } else {
            patterns
        };
        let leaves = self.mappings.leaf_fields();
        let mut expanded: Vec<(String, f32)> = Vec::new();
        for pattern in patterns {
            if !pattern.pattern.contains('*') {
                if !expanded.iter().any(|(f, _)| *f == pattern.pattern) {
                    expanded.push((pattern.pattern.clone(), pattern.boost));
                }
                continue;
            }
            for (path, _) in &leaves {
                if field_pattern_matches(&pattern.pattern, path)
                    && !expanded.iter().any(|(f, _)| f == path)
                {
                    expanded.push((path.clone(), pattern.boost));
                }
            }
        }
        expanded
    }

    fn fields_query(&self, fields: &Fields, depth: usize) -> Result<TantivyQuery> {
        let expanded = self.expand_fields(&fields.fields);
        if expanded.len() > QUERY_CLAUSES_MAX {
            return Err(too_many_clauses());
        }
        let lenient = fields.lenient
            || fields.fields.iter().any(|f| f.pattern.contains('*'))
            || fields.fields.is_empty();
        let mut disjuncts = Vec::with_capacity(expanded.len());
        for (path, boost) in expanded {
            let path = match &fields.quote_field_suffix {
                Some(suffix) if self.mappings.field(&format!("{path}{suffix}")).is_some() => {
                    format!("{path}{suffix}")
                }
                _ => path,
            };
            let template = fields.query.with_field(&path);
            match self.compile_at(&template, depth) {
                Ok(query) => disjuncts.push(boosted(query, boost)),
                Err(SearchError::IllegalArgument { .. }) if lenient => {}
                Err(error) => return Err(error),
            }
        }
        let combined: TantivyQuery = match disjuncts.len() {
            0 => Box::new(EmptyQuery),
            1 => disjuncts.pop().unwrap_or_else(|| Box::new(EmptyQuery)),
            _ => Box::new(DisjunctionMaxQuery::with_tie_breaker(
                disjuncts,
                fields.tie_breaker,
            )),
        };
        Ok(boosted(combined, fields.boost))
    }

    /// `cross_fields`: every term looked up in every text field as if they were one field, the
    /// best field's score counting per term.
    fn cross_fields(&self, fields: &Fields) -> Result<TantivyQuery> {
        let Query::Match(template) = &fields.query else {
            return Err(illegal("cross_fields needs a match query"));
        };
        let mut text_fields = Vec::new();
        for (path, boost) in self.expand_fields(&fields.fields) {
            if let Target::Text {
                path,
                slot,
                mapping,
            } = self.target(&path)
            {
                text_fields.push((path, slot, mapping, boost));
            }
        }
        let Some((_, first_slot, first_mapping, _)) = text_fields.first() else {
            return Ok(Box::new(EmptyQuery));
        };
        let analyzer = template
            .analyzer
            .unwrap_or_else(|| first_mapping.search_analyzer());
        let tokens = self.analyze(*first_slot, analyzer, &template.text)?;
        if tokens.is_empty() {
            return Ok(self.zero_terms(template));
        }
        let occur = match template.operator {
            Operator::And => Occur::Must,
            Operator::Or => Occur::Should,
        };
        let mut clauses = Vec::with_capacity(tokens.len());
        for (_, token) in &tokens {
            let per_field: Vec<TantivyQuery> = text_fields
                .iter()
                .map(|(path, slot, _, boost)| {
                    let term = text_term(self.fields, path, *slot, token);
                    boosted(
                        self.with_field_stats(
                            *slot,
                            Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
                        ),
                        *boost,
                    )
                })
                .collect();
            clauses.push((
                occur,
                Box::new(DisjunctionMaxQuery::with_tie_breaker(
                    per_field,
                    fields.tie_breaker,
                )) as TantivyQuery,
            ));
        }
        let required = match (&template.minimum_should_match, template.operator) {
            (Some(msm), Operator::Or) => msm.required(clauses.len()),
            _ => 0,
        };
        let query: TantivyQuery = if required > 1 {
            Box::new(BooleanQuery::with_minimum_required_clauses(
                clauses, required,
            ))
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        Ok(boosted(query, fields.boost * template.boost))
    }

    /// Exact-value queries on a `geo_point` field fail as in Elasticsearch: points are searched
    /// with geo queries.
    fn refuse_geo(&self, field: &str) -> Result<()> {
        match self.mappings.field(field) {
            Some(mapping) if mapping.field_type == FieldType::GeoPoint => {
                Err(SearchError::QueryShard {
                    reason: format!(
                        "Geometry fields do not support exact searching, use dedicated geometry queries instead: [{field}]"
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// A geo query on a `geo_point` field; on an unmapped field it fails unless
    /// `ignore_unmapped`, and on any other type it fails, as in Elasticsearch.
    fn geo(&self, geo: &Geo) -> Result<TantivyQuery> {
        match self.mappings.field(&geo.field) {
            None if geo.ignore_unmapped => Ok(Box::new(EmptyQuery)),
            None => Err(SearchError::QueryShard {
                reason: format!("failed to find geo field [{}]", geo.field),
            }),
            Some(mapping) if mapping.field_type == FieldType::GeoPoint => Ok(boosted(
                Box::new(ConstScoreQuery::new(
                    Box::new(GeoShapeQuery {
                        path: geo.field.clone(),
                        shape: geo.shape,
                    }),
                    1.0,
                )),
                geo.boost,
            )),
            Some(mapping) => Err(SearchError::QueryShard {
                reason: format!(
                    "Field [{}] is of unsupported type [{}] for [{}] query",
                    geo.field,
                    mapping.field_type.name(),
                    geo.kind
                ),
            }),
        }
    }

    fn exists(&self, field: &str) -> Result<TantivyQuery> {
        Ok(match self.target(field) {
            Target::Id => Box::new(AllQuery),
            Target::Unmapped => Box::new(EmptyQuery),
            Target::Text {
                slot: Some(slot), ..
            } => Box::new(NormExistsQuery { field: slot }),
            Target::Text { slot: None, .. } => {
                self.regex_query(field, "(?s:.)*", None, false, 1.0)?
            }
            Target::Exact { path, .. } => Box::new(ConstScoreQuery::new(
                Box::new(ExistsQuery::new(format!("_fields.{path}"), false)),
                1.0,
            )),
            Target::Object(path) => {
                let prefix = format!("{path}.");
                let mut clauses: Vec<(Occur, TantivyQuery)> = Vec::new();
                for (leaf, _) in self.mappings.leaf_fields() {
                    if leaf.starts_with(&prefix) {
                        clauses.push((Occur::Should, self.exists(&leaf)?));
                    }
                }
                if clauses.is_empty() {
                    Box::new(EmptyQuery)
                } else {
                    Box::new(ConstScoreQuery::new(
                        Box::new(BooleanQuery::new(clauses)),
                        1.0,
                    ))
                }
            }
        })
    }

    fn range(&self, range: &Range) -> Result<TantivyQuery> {
        let (path, mapping) = match self.target(&range.field) {
            Target::Exact { path, mapping } => (path, mapping),
            Target::Unmapped | Target::Object(_) => return Ok(Box::new(EmptyQuery)),
            Target::Id => {
                return Err(illegal(
                    "range queries on [_id] are not supported by Sluice",
                ));
            }
            // Elasticsearch compares the bounds, as written, with the terms the field indexed.
            Target::Text {
                slot: Some(slot), ..
            } => {
                let bound = |b: &RangeBound| match b {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => {
                        Bound::Included(Term::from_field_text(slot, &scalar_text(v)))
                    }
                    RangeBound::Excluded(v) => {
                        Bound::Excluded(Term::from_field_text(slot, &scalar_text(v)))
                    }
                };
                let query: TantivyQuery = match (bound(&range.lower), bound(&range.upper)) {
                    (Bound::Unbounded, Bound::Unbounded) => self.exists(&range.field)?,
                    (lower, upper) => Box::new(RangeQuery::new(lower, upper)),
                };
                return Ok(Box::new(ConstScoreQuery::new(query, range.boost)));
            }
            Target::Text { slot: None, .. } => {
                return Err(illegal(format!(
                    "range queries on text field [{}] of an index made before Sluice gave text fields their own terms (index format 1) are not supported; use its keyword sub-field",
                    range.field
                )));
            }
        };
        let make_term = |value: IndexValue| value_term(self.fields, &path, &value);
        let (lower, upper) = match mapping.field_type {
            FieldType::Date => {
                let format = range
                    .format
                    .as_deref()
                    .unwrap_or_else(|| mapping.date_format());
                let zone = match &range.time_zone {
                    Some(zone) => date_math::parse_time_zone(zone)
                        .ok_or_else(|| illegal(format!("Unknown time-zone ID: {zone}")))?,
                    None => jiff::tz::TimeZone::UTC,
                };
                let resolve = |value: &Value, round_up: bool| -> Result<i64> {
                    match value {
                        Value::String(text) => {
                            date_math::resolve(text, self.now_ms, format, &zone, round_up)
                                .map_err(illegal)
                        }
                        Value::Number(number) => number
                            .as_f64()
                            .and_then(|n| date::parse_date_number(n, format))
                            .ok_or_else(|| {
                                illegal(format!(
                                    "failed to parse date field [{number}] with format [{format}]"
                                ))
                            }),
                        other => Err(illegal(format!(
                            "failed to parse date field [{other}] with format [{format}]"
                        ))),
                    }
                };
                let lower = match &range.lower {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => {
                        Bound::Included(make_term(IndexValue::Date(resolve(v, false)?)))
                    }
                    RangeBound::Excluded(v) => {
                        Bound::Excluded(make_term(IndexValue::Date(resolve(v, true)?)))
                    }
                };
                let upper = match &range.upper {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => {
                        Bound::Included(make_term(IndexValue::Date(resolve(v, true)?)))
                    }
                    RangeBound::Excluded(v) => {
                        Bound::Excluded(make_term(IndexValue::Date(resolve(v, false)?)))
                    }
                };
                (lower, upper)
            }
            FieldType::Long | FieldType::Integer | FieldType::Short | FieldType::Byte => {
                let number = |v: &Value| numeric_bound(v, &range.field, mapping);
                // Fractional bounds on integer fields round as Elasticsearch does.
                let lower = match &range.lower {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => Bound::Included(number(v)?.ceil()),
                    RangeBound::Excluded(v) => Bound::Included(number(v)?.floor() + 1.0),
                };
                let upper = match &range.upper {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => Bound::Included(number(v)?.floor()),
                    RangeBound::Excluded(v) => Bound::Included(number(v)?.ceil() - 1.0),
                };
                let to_term = |bound: Bound<f64>| match bound {
                    Bound::Included(n) => {
                        Bound::Included(make_term(IndexValue::Long(clamp_to_i64(n))))
                    }
                    Bound::Excluded(n) => {
                        Bound::Excluded(make_term(IndexValue::Long(clamp_to_i64(n))))
                    }
                    Bound::Unbounded => Bound::Unbounded,
                };
                (to_term(lower), to_term(upper))
            }
            FieldType::ScaledFloat => {
                // Bounds move to the nearest stored (scaled) values inside them, as
                // Elasticsearch's scaled_float range query does, so a document matches
                // exactly when its rounded value is in range.
                let factor = mapping.scaling_factor().unwrap_or(1.0);
                let number = |v: &Value| numeric_bound(v, &range.field, mapping);
                let stored = |scaled: f64| {
                    float_term(self.fields, &path, clamp_to_i64(scaled) as f64 / factor)
                };
                let lower = match &range.lower {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => {
                        Bound::Included(stored((number(v)? * factor).ceil()))
                    }
                    RangeBound::Excluded(v) => {
                        Bound::Included(stored((number(v)? * factor).floor() + 1.0))
                    }
                };
                let upper = match &range.upper {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => {
                        Bound::Included(stored((number(v)? * factor).floor()))
                    }
                    RangeBound::Excluded(v) => {
                        Bound::Included(stored((number(v)? * factor).ceil() - 1.0))
                    }
                };
                (lower, upper)
            }
            FieldType::Double | FieldType::Float => {
                let bound = |b: &RangeBound| -> Result<Bound<Term>> {
                    Ok(match b {
                        RangeBound::Unbounded => Bound::Unbounded,
                        RangeBound::Included(v) => Bound::Included(float_term(
                            self.fields,
                            &path,
                            numeric_bound(v, &range.field, mapping)?,
                        )),
                        RangeBound::Excluded(v) => Bound::Excluded(float_term(
                            self.fields,
                            &path,
                            numeric_bound(v, &range.field, mapping)?,
                        )),
                    })
                };
                (bound(&range.lower)?, bound(&range.upper)?)
            }
            FieldType::Ip => {
                let address = |v: &Value| -> Result<Term> {
                    let text = scalar_text(v);
                    let address = crate::ip::parse(&text)
                        .ok_or_else(|| illegal(format!("'{text}' is not an IP string literal.")))?;
                    Ok(make_term(IndexValue::Keyword(crate::ip::encode(address))))
                };
                let bound = |b: &RangeBound| -> Result<Bound<Term>> {
                    Ok(match b {
                        RangeBound::Unbounded => Bound::Unbounded,
                        RangeBound::Included(v) => Bound::Included(address(v)?),
                        RangeBound::Excluded(v) => Bound::Excluded(address(v)?),
                    })
                };
                (bound(&range.lower)?, bound(&range.upper)?)
            }
            FieldType::Keyword | FieldType::Wildcard | FieldType::Flattened => {
                let bound = |b: &RangeBound| match b {
                    RangeBound::Unbounded => Bound::Unbounded,
                    RangeBound::Included(v) => {
                        Bound::Included(make_term(IndexValue::Keyword(scalar_text(v))))
                    }
                    RangeBound::Excluded(v) => {
                        Bound::Excluded(make_term(IndexValue::Keyword(scalar_text(v))))
                    }
                };
                (bound(&range.lower), bound(&range.upper))
            }
            FieldType::Boolean
            | FieldType::Text
            | FieldType::Object
            | FieldType::GeoPoint
            | FieldType::Nested => {
                return Err(illegal(format!(
                    "range queries on field [{}] of type [{}] are not supported by Sluice",
                    range.field,
                    mapping.field_type.name()
                )));
            }
        };
        let query: TantivyQuery = match (&lower, &upper) {
            (Bound::Unbounded, Bound::Unbounded) => self.exists(&range.field)?,
            _ => Box::new(RangeQuery::new(lower, upper)),
        };
        Ok(Box::new(ConstScoreQuery::new(query, range.boost)))
    }

    fn bool_query(&self, query: &Bool, depth: usize) -> Result<TantivyQuery> {
        let clause_count =
            query.must.len() + query.should.len() + query.must_not.len() + query.filter.len();
        if clause_count > QUERY_CLAUSES_MAX {
            return Err(too_many_clauses());
        }
        let mut clauses: Vec<(Occur, TantivyQuery)> = Vec::with_capacity(clause_count + 1);
        for clause in &query.must {
            clauses.push((Occur::Must, self.compile_at(clause, depth)?));
        }
        for clause in &query.filter {
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(self.compile_at(clause, depth)?, 0.0)),
            ));
        }
        for clause in &query.must_not {
            clauses.push((Occur::MustNot, self.compile_at(clause, depth)?));
        }
        let mut should = Vec::with_capacity(query.should.len());
        for clause in &query.should {
            should.push(self.compile_at(clause, depth)?);
        }
        let required_only = query.must.is_empty() && query.filter.is_empty();
        let minimum = match &query.minimum_should_match {
            Some(msm) => msm.required(should.len()),
            None if required_only && !should.is_empty() => 1,
            None => 0,
        };
        let should_count = should.len();
        clauses.extend(should.into_iter().map(|q| (Occur::Should, q)));
        if required_only && should_count == 0 {
            // Only `must_not` (or nothing): every other document, each scored 0… or 1 when empty.
            let score = if query.must_not.is_empty() { 1.0 } else { 0.0 };
            clauses.push((
                Occur::Must,
                Box::new(ConstScoreQuery::new(Box::new(AllQuery), score)),
            ));
        }
        if minimum > should_count {
            return Ok(Box::new(EmptyQuery));
        }
        let compiled: TantivyQuery = if minimum >= 1 && !required_only {
            // tantivy counts should clauses towards the minimum only without required clauses:
            // put the optional ones in a nested query that needs `minimum` of them.
            let (required, optional): (Vec<_>, Vec<_>) = clauses
                .into_iter()
                .partition(|(occur, _)| *occur != Occur::Should);
            let mut nested = required;
            nested.push((
                Occur::Must,
                Box::new(BooleanQuery::with_minimum_required_clauses(
                    optional, minimum,
                )),
            ));
            Box::new(BooleanQuery::new(nested))
        } else if minimum > 1 {
            Box::new(BooleanQuery::with_minimum_required_clauses(
                clauses, minimum,
            ))
        } else {
            Box::new(BooleanQuery::new(clauses))
        };
        Ok(boosted(compiled, query.boost))
    }

    fn function_score(&self, query: &FunctionScore, depth: usize) -> Result<TantivyQuery> {
        let mut functions = Vec::with_capacity(query.functions.len());
        for function in &query.functions {
            let filter = match &function.filter {
                Some(filter) => Some(Arc::from(self.compile_at(filter, depth)?)),
                None => None,
            };
            let compiled = match &function.kind {
                FunctionKind::Weight => ScoreFn::Weight,
                FunctionKind::FieldValueFactor {
                    field,
                    factor,
                    modifier,
                    missing,
                } => {
                    self.numeric_field(field, "field_value_factor")?;
                    ScoreFn::FieldValueFactor {
                        path: field.clone(),
                        factor: *factor,
                        modifier: *modifier,
                        missing: *missing,
                    }
                }
                FunctionKind::Decay {
                    shape,
                    field,
                    origin,
                    scale,
                    offset,
                    decay,
                } => self.decay(
                    *shape,
                    field,
                    origin.as_ref(),
                    scale,
                    offset.as_ref(),
                    *decay,
                )?,
            };
            functions.push(CompiledFunction {
                filter,
                weight: function.weight.unwrap_or(1.0),
                function: compiled,
            });
        }
        let compiled: TantivyQuery = Box::new(FunctionScoreQuery {
            query: Arc::from(self.compile_at(&query.query, depth)?),
            functions,
            score_mode: query.score_mode,
            boost_mode: query.boost_mode,
            max_boost: query.max_boost,
            min_score: query.min_score,
        });
        Ok(boosted(compiled, query.boost))
    }

    fn numeric_field(&self, field: &str, what: &str) -> Result<&FieldMapping> {
        match self.target(field) {
            Target::Exact { mapping, .. }
                if !(mapping.field_type.is_keyword_like()
                    || matches!(mapping.field_type, FieldType::Boolean | FieldType::Ip)) =>
            {
                Ok(mapping)
            }
            Target::Unmapped => Err(illegal(format!("unknown field [{field}] in {what}"))),
            _ => Err(illegal(format!(
                "field [{field}] of {what} must be a numeric or date field"
            ))),
        }
    }

    fn decay(
        &self,
        shape: DecayShape,
        field: &str,
        origin: Option<&Value>,
        scale: &Value,
        offset: Option<&Value>,
        decay: f64,
    ) -> Result<ScoreFn> {
        let mapping = self.numeric_field(field, "a decay function")?;
        let bad = |what: &str, value: &Value| {
            illegal(format!(
                "[{what}] of the decay function on [{field}] is not valid: [{value}]"
            ))
        };
        let (origin, scale, offset) = if mapping.field_type == FieldType::Date {
            let format = mapping.date_format();
            let origin = match origin {
                None => self.now_ms,
                Some(Value::String(text)) => {
                    date_math::resolve(text, self.now_ms, format, &jiff::tz::TimeZone::UTC, false)
                        .map_err(|_| bad("origin", &Value::String(text.clone())))?
                }
                Some(Value::Number(n)) => n
                    .as_f64()
                    .and_then(|n| date::parse_date_number(n, format))
                    .ok_or_else(|| bad("origin", &Value::Number(n.clone())))?,
                Some(other) => return Err(bad("origin", other)),
            };
            let duration = |value: &Value, what: &str| -> Result<f64> {
                match value {
                    Value::String(text) => crate::settings::parse_time_value(text)
                        .flatten()
                        .map(|d| d.as_millis() as f64)
                        .ok_or_else(|| bad(what, value)),
                    Value::Number(n) => n.as_f64().ok_or_else(|| bad(what, value)),
                    other => Err(bad(what, other)),
                }
            };
            (
                origin as f64,
                duration(scale, "scale")?,
                offset
                    .map(|o| duration(o, "offset"))
                    .transpose()?
                    .unwrap_or(0.0),
            )
        } else {
            let number = |value: &Value, what: &str| -> Result<f64> {
                match value {
                    Value::Number(n) => n.as_f64().ok_or_else(|| bad(what, value)),
                    Value::String(s) => s.trim().parse().map_err(|_| bad(what, value)),
                    other => Err(bad(what, other)),
                }
            };
            let origin = origin.ok_or_else(|| {
                illegal(format!(
                    "[origin] is required for a decay function on numeric field [{field}]"
                ))
            })?;
            (
                number(origin, "origin")?,
                number(scale, "scale")?,
                offset
                    .map(|o| number(o, "offset"))
                    .transpose()?
                    .unwrap_or(0.0),
            )
        };
        if scale <= 0.0 || !(decay > 0.0 && decay < 1.0) {
            return Err(illegal(format!(
                "a decay function on [{field}] needs a positive scale and a decay between 0 and 1"
            )));
        }
        Ok(ScoreFn::Decay {
            shape,
            path: field.to_string(),
            origin,
            scale,
            offset,
            decay,
        })
    }
}

fn too_deep() -> SearchError {
    illegal(format!(
        "The nested depth of the query exceeds the maximum nested depth for queries set in [indices.query.max_nested_depth] ({QUERY_DEPTH_MAX})"
    ))
}

fn too_many_clauses() -> SearchError {
    illegal(format!(
        "Query contains too many nested clauses; maxClauseCount is set to {QUERY_CLAUSES_MAX}"
    ))
}

fn id_text(value: &Value) -> Option<String> {
    value
        .as_str()
        .map(str::to_string)
        .or_else(|| value.as_i64().map(|i| i.to_string()))
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn display_value(value: &Value) -> String {
    scalar_text(value)
}

fn numeric_bound(value: &Value, field: &str, mapping: &FieldMapping) -> Result<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    number.filter(|n| n.is_finite()).ok_or_else(|| {
        illegal(format!(
            "failed to create query: For input string: \"{}\" on field [{field}] of type [{}]",
            scalar_text(value),
            mapping.field_type.name()
        ))
    })
}

fn clamp_to_i64(number: f64) -> i64 {
    if number >= 9.223_372_036_854_776e18 {
        i64::MAX
    } else if number <= -9.223_372_036_854_776e18 {
        i64::MIN
    } else {
        number as i64
    }
}

fn float_term(fields: &SchemaFields, path: &str, number: f64) -> Term {
    let mut term = Term::from_field_json_path(fields.exact, path, true);
    term.append_type_and_fast_value(number);
    term
}

/// Terms of one field (or one JSON path) accepted by a regex automaton, each scored 1.
#[derive(Debug, Clone)]
struct AutomatonQuery {
    field: Field,
    regex: Arc<Regex>,
    json_path_bytes: Option<Vec<u8>>,
    /// The key bytes every accepted term starts with, when the pattern has a literal prefix.
    literal_key: Option<Vec<u8>>,
}

impl tantivy::query::Query for AutomatonQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn tantivy::query::Weight>> {
        if let Some(literal_key) = &self.literal_key {
            return Ok(Box::new(KeyRangeAutomatonWeight {
                field: self.field,
                regex: self.regex.clone(),
                start: literal_key.clone(),
                end: prefix_end(literal_key),
            }));
        }
        Ok(match &self.json_path_bytes {
            Some(path) => Box::new(tantivy::query::AutomatonWeight::<Regex>::new_for_json_path(
                self.field,
                self.regex.clone(),
                path,
            )),
            None => Box::new(tantivy::query::AutomatonWeight::<Regex>::new(
                self.field,
                self.regex.clone(),
            )),
        })
    }
}

/// The smallest key above every key that starts with `prefix`: `None` when there is none (all
/// bytes 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// Whether `regex` accepts the whole of `key`.
fn regex_accepts(regex: &Regex, key: &[u8]) -> bool {
    let mut state = regex.start();
    for &byte in key {
        state = regex.accept(&state, byte);
        if !regex.can_match(&state) {
            return false;
        }
    }
    regex.is_match(&state)
}

/// An [`AutomatonQuery`] whose matches all start with a literal key: it reads only the
/// dictionary's key range `start..end` and tests each term there against the regex. tantivy's
/// own automaton search walks the block index of the whole field, which for Sluice's `_fields`
/// JSON field (every keyword value of every path) costs far more than the matching terms
/// (a `u-12*` wildcard over 1 M documents spent half its time there).
struct KeyRangeAutomatonWeight {
    field: Field,
    regex: Arc<Regex>,
    start: Vec<u8>,
    end: Option<Vec<u8>>,
}

impl tantivy::query::Weight for KeyRangeAutomatonWeight {
    fn scorer(
        &self,
        reader: &tantivy::SegmentReader,
        boost: tantivy::Score,
    ) -> tantivy::Result<Box<dyn tantivy::query::Scorer>> {
        let inverted_index = reader.inverted_index(self.field)?;
        let mut range = inverted_index.terms().range().ge(&self.start);
        if let Some(end) = &self.end {
            range = range.lt(end);
        }
        let mut terms = range.into_stream()?;
        let mut docs = tantivy::BitSet::with_max_value(reader.max_doc());
        while terms.advance() {
            if !regex_accepts(&self.regex, terms.key()) {
                continue;
            }
            let mut postings = inverted_index
                .read_block_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)?;
            loop {
                let block = postings.docs();
                if block.is_empty() {
                    break;
                }
                for &doc in block {
                    docs.insert(doc);
                }
                postings.advance();
            }
        }
        Ok(Box::new(tantivy::query::ConstScorer::new(
            tantivy::query::BitSetDocSet::from(docs),
            boost,
        )))
    }

    fn explain(
        &self,
        reader: &tantivy::SegmentReader,
        doc: tantivy::DocId,
    ) -> tantivy::Result<tantivy::query::Explanation> {
        let mut scorer = self.scorer(reader, 1.0)?;
        if scorer.seek(doc) == doc {
            Ok(tantivy::query::Explanation::new("AutomatonScorer", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(
                "Document does not exist".to_string(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_and_lucene_regexes_become_rust_regexes() {
        assert_eq!(wildcard_to_regex("ab*c?"), "ab(?s:.)*c(?s:.)");
        assert_eq!(wildcard_to_regex(r"a\*"), r"a\x{2a}");
        assert_eq!(
            lucene_regex_to_rust("ab.*[0-9]+").unwrap(),
            "ab(?s:.)*[0-9]+"
        );
        assert_eq!(
            lucene_regex_to_rust("\"a.b\"@").unwrap(),
            r"a\x{2e}b(?s:.)*"
        );
        assert!(
            lucene_regex_to_rust("a&b")
                .unwrap_err()
                .to_string()
                .contains("intersection")
        );
        assert!(lucene_regex_to_rust("[ab").is_err());
    }

    #[test]
    fn wildcard_literal_prefixes_stop_at_the_first_wildcard() {
        assert_eq!(wildcard_literal_prefix("u-12*"), "u-12");
        assert_eq!(wildcard_literal_prefix("ab?c*"), "ab");
        assert_eq!(wildcard_literal_prefix(r"a\*b*"), "a*b");
        assert_eq!(wildcard_literal_prefix("*x"), "");
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xFF]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xFF, 0xFF]), None);
        let regex = term_regex(b"", &wildcard_to_regex("u-1?3*"), false).unwrap();
        assert!(regex_accepts(&regex, b"u-123"));
        assert!(regex_accepts(&regex, b"u-1x3yz"));
        assert!(!regex_accepts(&regex, b"u-12"));
        assert!(!regex_accepts(&regex, b"v-123"));
    }

    #[test]
    fn field_patterns() {
        assert!(field_pattern_matches("*", "a.b"));
        assert!(field_pattern_matches("user.*", "user.name"));
        assert!(!field_pattern_matches("user.*", "username"));
        assert!(field_pattern_matches("*name", "user.name"));
        assert!(field_pattern_matches("a*c*e", "abcde"));
        assert!(!field_pattern_matches("a*c*e", "abcd"));
    }
}
