//! Highlighting: the values of a hit's fields with the query's matching terms wrapped in tags,
//! cut into fragments, as Elasticsearch's `highlight` shows them.
//!
//! A plain highlighter: the query tree gives the terms each field is searched for (a clause
//! over several fields, or a `query_string` without fields, gives terms for any field); each
//! value of a highlighted `text` or `keyword` field is analyzed with the field's analyzer, and
//! tokens equal to a term (or starting with a prefix, or matching a wildcard) are wrapped.
//! Fragments are consecutive runs of tokens of at most `fragment_size` characters, in document
//! order; `number_of_fragments: 0` shows whole values.

use serde_json::Value;

use crate::analysis::Analyzer;
use crate::mapping::{FieldType, Mappings};
use crate::pattern::simple_match;
use crate::query::Query;

/// Fragments one field shows at most, whatever the request asks; more are cut.
pub const FRAGMENTS_MAX: usize = 1000;

/// What to highlight in one field pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct HighlightField {
    pub pattern: String,
    pub pre_tag: String,
    pub post_tag: String,
    /// Characters per fragment.
    pub fragment_size: usize,
    /// `0`: the whole value.
    pub number_of_fragments: usize,
    /// Only terms of clauses on this very field.
    pub require_field_match: bool,
}

/// How a token may match a term of the query.
#[derive(Debug, Clone)]
enum TermMatch {
    Exact(String),
    Prefix(String),
    Wildcard(String),
}

impl TermMatch {
    fn matches(&self, token: &str) -> bool {
        match self {
            TermMatch::Exact(term) => token == term,
            TermMatch::Prefix(prefix) => token.starts_with(prefix.as_str()),
            TermMatch::Wildcard(pattern) => simple_match(pattern, token),
        }
    }
}

/// The terms of a query with the field each searches (`None`: any field).
fn query_terms(query: &Query, mappings: &Mappings) -> Vec<(Option<String>, TermMatch)> {
    let mut terms = Vec::new();
    let field_of = |field: &str| (!field.is_empty()).then(|| field.to_string());
    let analyzer_of = |field: &str| {
        mappings
            .field(field)
            .map(|mapping| mapping.search_analyzer())
            .unwrap_or(Analyzer::Standard)
    };
    query.visit(&mut |clause| match clause {
        Query::Term { field, value, .. } => {
            let text = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            terms.push((field_of(field), TermMatch::Exact(text)));
        }
        Query::Terms { field, values, .. } => {
            for value in values {
                let text = match value {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                terms.push((field_of(field), TermMatch::Exact(text)));
            }
        }
        Query::Match(matching) => {
            let analyzer = matching
                .analyzer
                .unwrap_or_else(|| analyzer_of(&matching.field));
            for term in analyzer.terms(&matching.text) {
                terms.push((field_of(&matching.field), TermMatch::Exact(term)));
            }
        }
        Query::Prefix { field, value, .. } => {
            terms.push((field_of(field), TermMatch::Prefix(value.to_lowercase())))
        }
        Query::Wildcard { field, pattern, .. } => {
            terms.push((field_of(field), TermMatch::Wildcard(pattern.to_lowercase())))
        }
        Query::Fuzzy { field, value, .. } => {
            terms.push((field_of(field), TermMatch::Exact(value.to_lowercase())))
        }
        _ => {}
    });
    terms
}

/// The highlighted fragments of each field `fields` selects in `source`, by field path.
pub fn highlight(
    mappings: &Mappings,
    query: &Query,
    source: &Value,
    fields: &[HighlightField],
) -> Vec<(String, Vec<String>)> {
    let terms = query_terms(query, mappings);
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for request in fields {
        for (path, mapping) in mappings.leaf_fields() {
            if !simple_match(&request.pattern, &path)
                || !(mapping.field_type == FieldType::Text || mapping.field_type.is_keyword_like())
                || out.iter().any(|(done, _)| *done == path)
            {
                continue;
            }
            let wanted: Vec<&TermMatch> = terms
                .iter()
                .filter(|(field, _)| match field {
                    Some(field) => field == &path || !request.require_field_match,
                    None => true,
                })
                .map(|(_, term)| term)
                .collect();
            if wanted.is_empty() {
                continue;
            }
            let analyzer = match mapping.field_type {
                FieldType::Text => mapping.analyzer(),
                _ => Analyzer::Keyword,
            };
            let mut fragments = Vec::new();
            for value in values_at(source, &path) {
                fragments.extend(fragments_of(&value, analyzer, &wanted, request));
                if fragments.len() >= FRAGMENTS_MAX {
                    break;
                }
            }
            if request.number_of_fragments > 0 {
                fragments.truncate(request.number_of_fragments.min(FRAGMENTS_MAX));
            }
            if !fragments.is_empty() {
                out.push((path, fragments));
            }
        }
    }
    out
}

/// The string values at a dotted path of a source (multi-fields read their parent's).
fn values_at(source: &Value, path: &str) -> Vec<String> {
    fn walk(value: &Value, segments: &[&str], out: &mut Vec<String>) {
        match (value, segments.split_first()) {
            (Value::Array(items), _) => {
                for item in items {
                    walk(item, segments, out);
                }
            }
            (Value::String(s), None) => out.push(s.clone()),
            (Value::Number(_) | Value::Bool(_), None) => out.push(value.to_string()),
            (Value::Object(object), Some((first, rest))) => {
                if let Some(child) = object.get(*first) {
                    walk(child, rest, out);
                }
            }
            // A multi-field (`title.keyword`) reads the value of its parent.
            (Value::String(_), Some(_)) => walk(value, &[], out),
            _ => {}
        }
    }
    let segments: Vec<&str> = path.split('.').collect();
    let mut out = Vec::new();
    walk(source, &segments, &mut out);
    out
}

/// One value's fragments with matching tokens tagged; none when nothing matches.
fn fragments_of(
    value: &str,
    analyzer: Analyzer,
    wanted: &[&TermMatch],
    request: &HighlightField,
) -> Vec<String> {
    let tokens = analyzer.analyze(value);
    let hits: Vec<(usize, usize)> = tokens
        .iter()
        .filter(|token| wanted.iter().any(|term| term.matches(&token.text)))
        .map(|token| (token.start, token.end))
        .filter(|(start, end)| start < end && *end <= value.len())
        .collect();
    if hits.is_empty() {
        return Vec::new();
    }
    let tag = |from: usize, to: usize| -> String {
        let mut out = String::new();
        let mut at = from;
        for (start, end) in hits.iter().filter(|(s, e)| *s >= from && *e <= to) {
            out.push_str(value.get(at..*start).unwrap_or_default());
            out.push_str(&request.pre_tag);
            out.push_str(value.get(*start..*end).unwrap_or_default());
            out.push_str(&request.post_tag);
            at = *end;
        }
        out.push_str(value.get(at..to).unwrap_or_default());
        out
    };
    if request.number_of_fragments == 0 || value.chars().count() <= request.fragment_size {
        return vec![tag(0, value.len())];
    }
    // Consecutive runs of whole tokens of at most `fragment_size` characters.
    let mut fragments = Vec::new();
    let mut start = 0usize;
    let mut end = 0usize;
    for token in &tokens {
        let length = value
            .get(start..token.end)
            .map_or(0, |text| text.chars().count());
        if length > request.fragment_size && end > start {
            if hits.iter().any(|(s, e)| *s >= start && *e <= end) {
                fragments.push(tag(start, end));
            }
            start = token.start;
        }
        end = token.end;
    }
    if end > start && hits.iter().any(|(s, e)| *s >= start && *e <= end) {
        fragments.push(tag(start, end));
    }
    fragments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::Match;
    use serde_json::json;

    fn field(pattern: &str, fragment_size: usize, number_of_fragments: usize) -> HighlightField {
        HighlightField {
            pattern: pattern.into(),
            pre_tag: "<em>".into(),
            post_tag: "</em>".into(),
            fragment_size,
            number_of_fragments,
            require_field_match: true,
        }
    }

    #[test]
    fn matching_tokens_are_tagged_in_fragments() {
        let mappings = Mappings::from_json(&json!({"properties": {
            "body": {"type": "text"}, "title": {"type": "text"}, "tag": {"type": "keyword"}
        }}))
        .unwrap();
        let query = Query::Match(Box::new(Match::new("body", "Quick FOX")));
        let source =
            json!({"body": "The quick brown fox jumps over the lazy dog", "title": "quick"});
        let found = highlight(&mappings, &query, &source, &[field("*", 100, 5)]);
        assert_eq!(
            found,
            vec![(
                "body".to_string(),
                vec!["The <em>quick</em> brown <em>fox</em> jumps over the lazy dog".to_string()]
            )]
        );
        // Small fragments: only those with a match, at most the number asked.
        let found = highlight(&mappings, &query, &source, &[field("body", 10, 5)]);
        assert_eq!(found[0].1, vec!["The <em>quick</em>", "brown <em>fox</em>"]);
        let found = highlight(&mappings, &query, &source, &[field("body", 10, 1)]);
        assert_eq!(found[0].1.len(), 1);
        // Without require_field_match, terms of other fields count too.
        let mut any = field("title", 100, 5);
        any.require_field_match = false;
        let found = highlight(&mappings, &query, &source, &[any]);
        assert_eq!(found[0].1, vec!["<em>quick</em>"]);
    }
}
