//! Lucene query syntax, as Elasticsearch's `query_string` (and `q=`) reads it, and the simpler
//! syntax of `simple_query_string`, parsed into Sluice's query tree.
//!
//! `query_string` follows Lucene's classic parser: clauses with `+`/`-`/`!`/`NOT` prefixes and
//! `AND`/`OR` (`&&`/`||`) between them get their occurrence by the classic parser's rules (so
//! `a AND b OR c` is `+a +b c`), `field:`, `field.*:`, `_exists_:field`, phrases with `~slop`,
//! `term~fuzziness`, `term^boost`, wildcards, `/regex/`, ranges `[a TO b]`, `{a TO *}` and
//! `>=10`, and parentheses nested at most [`QUERY_DEPTH_MAX`] deep. Terms without a field go to
//! the default fields; the mapping later decides what each field makes of them. A syntax error
//! is reported with its position. `simple_query_string` never fails: what it cannot read is
//! taken as text.

use std::fmt;

use serde_json::Value;

use crate::analysis::Analyzer;
use crate::query::{
    Bool, FieldPattern, Fields, Fuzziness, MAX_EXPANSIONS_DEFAULT, Match, MatchKind,
    MinimumShouldMatch, Operator, QUERY_CLAUSES_MAX, QUERY_DEPTH_MAX, Query, Range, RangeBound,
};

/// Longest query string parsed, in bytes; longer ones are refused.
pub const QUERY_STRING_BYTES_MAX: usize = 32 * 1024;

/// The options of `query_string` and `simple_query_string` (and `q=`, `df`, `default_operator`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryStringOptions {
    /// Fields of terms written without one; empty: the index's default (`*`).
    pub fields: Vec<FieldPattern>,
    pub default_operator: Operator,
    pub analyzer: Option<Analyzer>,
    pub quote_analyzer: Option<Analyzer>,
    /// Quoted phrases search `<field><suffix>` where the mapping has it (`quote_field_suffix`).
    pub quote_field_suffix: Option<String>,
    pub allow_leading_wildcard: bool,
    pub fuzziness: Fuzziness,
    pub fuzzy_prefix_length: u32,
    pub fuzzy_max_expansions: u32,
    pub fuzzy_transpositions: bool,
    pub phrase_slop: u32,
    pub analyze_wildcard: bool,
    pub lenient: bool,
    pub minimum_should_match: Option<MinimumShouldMatch>,
    pub time_zone: Option<String>,
    pub tie_breaker: f32,
}

impl Default for QueryStringOptions {
    fn default() -> Self {
        QueryStringOptions {
            fields: Vec::new(),
            default_operator: Operator::Or,
            analyzer: None,
            quote_analyzer: None,
            quote_field_suffix: None,
            allow_leading_wildcard: true,
            fuzziness: Fuzziness::AUTO,
            fuzzy_prefix_length: 0,
            fuzzy_max_expansions: MAX_EXPANSIONS_DEFAULT,
            fuzzy_transpositions: true,
            phrase_slop: 0,
            analyze_wildcard: false,
            lenient: false,
            minimum_should_match: None,
            time_zone: None,
            tie_breaker: 0.0,
        }
    }
}

/// A query string that does not parse: what was expected, and where (in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryStringError {
    pub query: String,
    pub position: usize,
    pub message: String,
}

impl fmt::Display for QueryStringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Cannot parse '{}': {} at position {}",
            self.query, self.message, self.position
        )
    }
}

impl std::error::Error for QueryStringError {}

/// Parses `text` in Lucene syntax.
pub fn parse(text: &str, options: &QueryStringOptions) -> Result<Query, QueryStringError> {
    if text.len() > QUERY_STRING_BYTES_MAX {
        return Err(QueryStringError {
            query: text.chars().take(64).collect(),
            position: QUERY_STRING_BYTES_MAX,
            message: format!("query is longer than {QUERY_STRING_BYTES_MAX} bytes"),
        });
    }
    let mut parser = ClassicParser {
        chars: text.chars().collect(),
        position: 0,
        text,
        options,
        clauses: 0,
    };
    let query = parser.query(0, true)?;
    parser.skip_whitespace();
    if parser.position < parser.chars.len() {
        return Err(parser.error("unexpected ')'"));
    }
    Ok(query)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conjunction {
    None,
    And,
    Or,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    None,
    Required,
    Prohibited,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Occur {
    Must,
    Should,
    MustNot,
}

struct ClassicParser<'a> {
    chars: Vec<char>,
    position: usize,
    text: &'a str,
    options: &'a QueryStringOptions,
    clauses: usize,
}

/// Characters that end a bare term.
fn is_term_end(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '(' | ')' | ':' | '^' | '~' | '"' | '[' | ']' | '{' | '}' | '/'
        )
}

/// A bare term as written: its text with escapes resolved, and whether it holds an unescaped
/// wildcard (`*`, `?`).
struct RawTerm {
    text: String,
    /// The pattern with escapes kept, for wildcard queries.
    pattern: String,
    wildcard: bool,
}

impl<'a> ClassicParser<'a> {
    fn error(&self, message: &str) -> QueryStringError {
        QueryStringError {
            query: self.text.to_string(),
            position: self.position,
            message: message.to_string(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.position + offset).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    /// Whether the next characters are `word` followed by a term end.
    fn at_keyword(&self, word: &str) -> bool {
        let n = word.chars().count();
        word.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
            && self
                .peek_at(n)
                .is_none_or(|c| c.is_whitespace() || c == '(' || c == '"')
    }

    fn count_clause(&mut self) -> Result<(), QueryStringError> {
        self.clauses += 1;
        if self.clauses > QUERY_CLAUSES_MAX {
            return Err(self.error(&format!(
                "too many clauses; maxClauseCount is set to {QUERY_CLAUSES_MAX}"
            )));
        }
        Ok(())
    }

    /// A sequence of clauses up to `)` or the end.
    fn query(&mut self, depth: usize, top: bool) -> Result<Query, QueryStringError> {
        if depth > QUERY_DEPTH_MAX {
            return Err(self.error(&format!("parentheses nest deeper than {QUERY_DEPTH_MAX}")));
        }
        let mut clauses: Vec<(Occur, Query)> = Vec::new();
        loop {
            self.skip_whitespace();
            match self.peek() {
                None | Some(')') => break,
                _ => {}
            }
            let mut conjunction = Conjunction::None;
            if self.at_keyword("AND") {
                self.position += 3;
                conjunction = Conjunction::And;
            } else if self.peek() == Some('&') && self.peek_at(1) == Some('&') {
                self.position += 2;
                conjunction = Conjunction::And;
            } else if self.at_keyword("OR")
                || (self.peek() == Some('|') && self.peek_at(1) == Some('|'))
            {
                self.position += 2;
                conjunction = Conjunction::Or;
            }
            if conjunction != Conjunction::None {
                if clauses.is_empty() {
                    return Err(self.error("an operator needs a clause before it"));
                }
                self.skip_whitespace();
            }
            let mut modifier = Modifier::None;
            match self.peek() {
                Some('+') => {
                    self.position += 1;
                    modifier = Modifier::Required;
                }
                Some('-') | Some('!') => {
                    self.position += 1;
                    modifier = Modifier::Prohibited;
                }
                _ if self.at_keyword("NOT") => {
                    self.position += 3;
                    modifier = Modifier::Prohibited;
                }
                _ => {}
            }
            self.skip_whitespace();
            if matches!(self.peek(), None | Some(')')) {
                return Err(self.error("a clause was expected"));
            }
            let clause = self.clause(depth, None)?;
            self.count_clause()?;
            self.add_clause(&mut clauses, conjunction, modifier, clause);
        }
        Ok(self.combine(clauses, top))
    }

    /// Lucene's `QueryParserBase.addClause`.
    fn add_clause(
        &self,
        clauses: &mut Vec<(Occur, Query)>,
        conjunction: Conjunction,
        modifier: Modifier,
        query: Query,
    ) {
        let and_default = self.options.default_operator == Operator::And;
        if let Some((occur, _)) = clauses.last_mut() {
            if conjunction == Conjunction::And && *occur != Occur::MustNot {
                *occur = Occur::Must;
            }
            if and_default && conjunction == Conjunction::Or && *occur != Occur::MustNot {
                *occur = Occur::Should;
            }
        }
        let prohibited = modifier == Modifier::Prohibited;
        let required = if and_default {
            !prohibited && conjunction != Conjunction::Or
        } else {
            modifier == Modifier::Required || (conjunction == Conjunction::And && !prohibited)
        };
        let occur = match (required, prohibited) {
            (_, true) => Occur::MustNot,
            (true, false) => Occur::Must,
            (false, false) => Occur::Should,
        };
        clauses.push((occur, query));
    }

    fn combine(&self, clauses: Vec<(Occur, Query)>, top: bool) -> Query {
        let minimum = if top {
            self.options.minimum_should_match.clone()
        } else {
            None
        };
        combine_clauses(clauses, minimum)
    }

    /// One clause: a group, a field-prefixed clause or a term, phrase or range, with `^boost`.
    fn clause(&mut self, depth: usize, field: Option<&str>) -> Result<Query, QueryStringError> {
        let query = match self.peek() {
            Some('(') => {
                self.position += 1;
                let inner = match field {
                    Some(field) => self.fielded_group(depth + 1, field)?,
                    None => self.query(depth + 1, false)?,
                };
                self.skip_whitespace();
                if self.peek() != Some(')') {
                    return Err(self.error("')' expected"));
                }
                self.position += 1;
                inner
            }
            Some('"') => self.phrase(field)?,
            Some('[') | Some('{') => self.range(field)?,
            Some('/') => self.regex(field)?,
            Some('>') | Some('<') if field.is_some() => self.comparison(field)?,
            Some(_) => {
                let raw = self.term()?;
                if field.is_none() && self.peek() == Some(':') {
                    self.position += 1;
                    self.skip_whitespace();
                    let name = raw.text;
                    if name == "_exists_" {
                        let target = self.term()?;
                        let query = Query::Exists {
                            field: target.text,
                            boost: 1.0,
                        };
                        return self.boost(query);
                    }
                    if self.peek().is_none() {
                        return Err(self.error("a value was expected after ':'"));
                    }
                    return self.clause(depth, Some(&name));
                }
                self.term_query(field, raw)?
            }
            None => return Err(self.error("a clause was expected")),
        };
        self.boost(query)
    }

    /// `field:(a b)`: the group's terms go to `field`.
    fn fielded_group(&mut self, depth: usize, field: &str) -> Result<Query, QueryStringError> {
        if depth > QUERY_DEPTH_MAX {
            return Err(self.error(&format!("parentheses nest deeper than {QUERY_DEPTH_MAX}")));
        }
        let mut clauses: Vec<(Occur, Query)> = Vec::new();
        loop {
            self.skip_whitespace();
            if matches!(self.peek(), None | Some(')')) {
                break;
            }
            let mut conjunction = Conjunction::None;
            if self.at_keyword("AND") {
                self.position += 3;
                conjunction = Conjunction::And;
            } else if self.at_keyword("OR") {
                self.position += 2;
                conjunction = Conjunction::Or;
            }
            self.skip_whitespace();
            let mut modifier = Modifier::None;
            match self.peek() {
                Some('+') => {
                    self.position += 1;
                    modifier = Modifier::Required;
                }
                Some('-') | Some('!') => {
                    self.position += 1;
                    modifier = Modifier::Prohibited;
                }
                _ if self.at_keyword("NOT") => {
                    self.position += 3;
                    modifier = Modifier::Prohibited;
                }
                _ => {}
            }
            self.skip_whitespace();
            if matches!(self.peek(), None | Some(')')) {
                return Err(self.error("a clause was expected"));
            }
            let clause = self.clause(depth, Some(field))?;
            self.count_clause()?;
            self.add_clause(&mut clauses, conjunction, modifier, clause);
        }
        Ok(combine_clauses(clauses, None))
    }

    fn boost(&mut self, query: Query) -> Result<Query, QueryStringError> {
        if self.peek() != Some('^') {
            return Ok(query);
        }
        self.position += 1;
        let number = self.number();
        let boost: f32 = number
            .parse()
            .ok()
            .filter(|b: &f32| b.is_finite() && *b >= 0.0)
            .ok_or_else(|| self.error("a boost must be a non-negative number"))?;
        Ok(Query::Bool(Box::new(Bool {
            must: vec![query],
            boost,
            ..Bool::default()
        })))
    }

    fn number(&mut self) -> String {
        let mut number = String::new();
        while let Some(c) = self.peek().filter(|c| c.is_ascii_digit() || *c == '.') {
            number.push(c);
            self.position += 1;
        }
        number
    }

    fn term(&mut self) -> Result<RawTerm, QueryStringError> {
        let mut raw = RawTerm {
            text: String::new(),
            pattern: String::new(),
            wildcard: false,
        };
        while let Some(c) = self.peek() {
            if c == '\\' {
                let Some(escaped) = self.peek_at(1) else {
                    return Err(self.error("a character was expected after '\\'"));
                };
                raw.text.push(escaped);
                raw.pattern.push('\\');
                raw.pattern.push(escaped);
                self.position += 2;
                continue;
            }
            if is_term_end(c) {
                break;
            }
            if c == '*' || c == '?' {
                raw.wildcard = true;
            }
            raw.text.push(c);
            raw.pattern.push(c);
            self.position += 1;
        }
        if raw.text.is_empty() {
            return Err(self.error("a term was expected"));
        }
        Ok(raw)
    }

    fn term_query(&mut self, field: Option<&str>, raw: RawTerm) -> Result<Query, QueryStringError> {
        if raw.wildcard && raw.pattern == "*" {
            return Ok(match field {
                None | Some("*") => Query::match_all(),
                Some(field) => self.for_field(
                    Some(field),
                    Query::Exists {
                        field: String::new(),
                        boost: 1.0,
                    },
                ),
            });
        }
        if self.peek() == Some('~') {
            self.position += 1;
            let number = self.number();
            let fuzziness = if number.is_empty() {
                self.options.fuzziness
            } else {
                number
                    .parse::<f32>()
                    .ok()
                    .map(|n| Fuzziness::Edits(n.min(2.0) as u8))
                    .ok_or_else(|| self.error("a fuzziness must be a number"))?
            };
            let template = Query::Fuzzy {
                field: String::new(),
                value: raw.text,
                fuzziness,
                prefix_length: self.options.fuzzy_prefix_length,
                max_expansions: self.options.fuzzy_max_expansions,
                transpositions: self.options.fuzzy_transpositions,
                boost: 1.0,
            };
            return Ok(self.for_field(field, template));
        }
        if raw.wildcard {
            let leading = raw.pattern.starts_with(['*', '?']);
            if leading && !self.options.allow_leading_wildcard {
                return Err(
                    self.error("'*' or '?' not allowed as first character in WildcardQuery")
                );
            }
            let body = raw.pattern.strip_suffix('*').unwrap_or_default();
            let template = if !body.is_empty() && !body.contains(['*', '?']) {
                Query::Prefix {
                    field: String::new(),
                    value: unescape(body),
                    case_insensitive: false,
                    boost: 1.0,
                }
            } else {
                Query::Wildcard {
                    field: String::new(),
                    pattern: raw.pattern,
                    case_insensitive: false,
                    boost: 1.0,
                }
            };
            return Ok(self.for_field(field, template));
        }
        let mut template = Match::new("", &raw.text);
        template.operator = self.options.default_operator;
        template.analyzer = self.options.analyzer;
        template.lenient = self.options.lenient;
        Ok(self.for_field(field, Query::Match(Box::new(template))))
    }

    fn phrase(&mut self, field: Option<&str>) -> Result<Query, QueryStringError> {
        self.position += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("'\"' expected to close the phrase")),
                Some('"') => {
                    self.position += 1;
                    break;
                }
                Some('\\') => {
                    if let Some(escaped) = self.peek_at(1) {
                        text.push(escaped);
                    }
                    self.position += 2;
                }
                Some(c) => {
                    text.push(c);
                    self.position += 1;
                }
            }
        }
        let mut slop = self.options.phrase_slop;
        if self.peek() == Some('~') {
            self.position += 1;
            let number = self.number();
            slop = number
                .parse::<f32>()
                .map(|n| n as u32)
                .map_err(|_| self.error("a phrase slop must be a number"))?;
        }
        let mut template = Match::new("", &text);
        template.kind = MatchKind::Phrase { slop };
        template.analyzer = self.options.quote_analyzer.or(self.options.analyzer);
        template.lenient = self.options.lenient;
        Ok(quoted_for_fields(
            field,
            Query::Match(Box::new(template)),
            self.options,
        ))
    }

    fn regex(&mut self, field: Option<&str>) -> Result<Query, QueryStringError> {
        self.position += 1;
        let mut pattern = String::new();
        loop {
            match self.peek() {
                None => return Err(self.error("'/' expected to close the regular expression")),
                Some('/') => {
                    self.position += 1;
                    break;
                }
                Some('\\') if self.peek_at(1) == Some('/') => {
                    pattern.push('/');
                    self.position += 2;
                }
                Some(c) => {
                    pattern.push(c);
                    self.position += 1;
                }
            }
        }
        Ok(self.for_field(
            field,
            Query::Regexp {
                field: String::new(),
                pattern,
                case_insensitive: false,
                boost: 1.0,
            },
        ))
    }

    fn range_value(&mut self) -> Result<String, QueryStringError> {
        self.skip_whitespace();
        if self.peek() == Some('"') {
            self.position += 1;
            let mut value = String::new();
            loop {
                match self.peek() {
                    None => return Err(self.error("'\"' expected")),
                    Some('"') => {
                        self.position += 1;
                        return Ok(value);
                    }
                    Some(c) => {
                        value.push(c);
                        self.position += 1;
                    }
                }
            }
        }
        let mut value = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, ']' | '}') {
                break;
            }
            if c == '\\' {
                if let Some(escaped) = self.peek_at(1) {
                    value.push(escaped);
                }
                self.position += 2;
                continue;
            }
            value.push(c);
            self.position += 1;
        }
        if value.is_empty() {
            return Err(self.error("a range bound was expected"));
        }
        Ok(value)
    }

    fn range(&mut self, field: Option<&str>) -> Result<Query, QueryStringError> {
        let inclusive_lower = self.peek() == Some('[');
        self.position += 1;
        let lower = self.range_value()?;
        self.skip_whitespace();
        if !self.at_keyword("TO") {
            return Err(self.error("'TO' expected in a range"));
        }
        self.position += 2;
        let upper = self.range_value()?;
        self.skip_whitespace();
        let inclusive_upper = match self.peek() {
            Some(']') => true,
            Some('}') => false,
            _ => return Err(self.error("']' or '}' expected to close the range")),
        };
        self.position += 1;
        let bound = |value: String, inclusive: bool| {
            if value == "*" {
                RangeBound::Unbounded
            } else if inclusive {
                RangeBound::Included(Value::String(value))
            } else {
                RangeBound::Excluded(Value::String(value))
            }
        };
        Ok(self.range_query(
            field,
            bound(lower, inclusive_lower),
            bound(upper, inclusive_upper),
        ))
    }

    fn comparison(&mut self, field: Option<&str>) -> Result<Query, QueryStringError> {
        let greater = self.peek() == Some('>');
        self.position += 1;
        let inclusive = self.peek() == Some('=');
        if inclusive {
            self.position += 1;
        }
        let value = self.range_value()?;
        let bound = if inclusive {
            RangeBound::Included(Value::String(value))
        } else {
            RangeBound::Excluded(Value::String(value))
        };
        Ok(if greater {
            self.range_query(field, bound, RangeBound::Unbounded)
        } else {
            self.range_query(field, RangeBound::Unbounded, bound)
        })
    }

    fn range_query(&self, field: Option<&str>, lower: RangeBound, upper: RangeBound) -> Query {
        self.for_field(
            field,
            Query::Range(Box::new(Range {
                field: String::new(),
                lower,
                upper,
                format: None,
                time_zone: self.options.time_zone.clone(),
                boost: 1.0,
            })),
        )
    }

    /// A template for `field`: that field, a pattern of fields, or the default fields.
    fn for_field(&self, field: Option<&str>, template: Query) -> Query {
        for_fields(field, template, self.options)
    }
}

fn for_fields(field: Option<&str>, template: Query, options: &QueryStringOptions) -> Query {
    match field {
        Some(field) if !field.contains('*') => template.with_field(field),
        Some(pattern) => Query::Fields(Box::new(Fields {
            fields: vec![FieldPattern {
                pattern: pattern.to_string(),
                boost: 1.0,
            }],
            query: template,
            tie_breaker: options.tie_breaker,
            lenient: true,
            boost: 1.0,
            quote_field_suffix: None,
        })),
        None => match options.fields.as_slice() {
            [single] if !single.pattern.contains('*') && single.boost == 1.0 => {
                template.with_field(&single.pattern)
            }
            fields => Query::Fields(Box::new(Fields {
                fields: fields.to_vec(),
                query: template,
                tie_breaker: options.tie_breaker,
                lenient: options.lenient,
                boost: 1.0,
                quote_field_suffix: None,
            })),
        },
    }
}

/// [`for_fields`] of a quoted phrase: with a `quote_field_suffix`, always over a
/// [`Fields`] that carries it, so the compiler can pick `<field><suffix>` per field.
fn quoted_for_fields(field: Option<&str>, template: Query, options: &QueryStringOptions) -> Query {
    let Some(suffix) = &options.quote_field_suffix else {
        return for_fields(field, template, options);
    };
    let (fields, lenient) = match field {
        Some(field) => (
            vec![FieldPattern {
                pattern: field.to_string(),
                boost: 1.0,
            }],
            field.contains('*'),
        ),
        None => (options.fields.clone(), options.lenient),
    };
    Query::Fields(Box::new(Fields {
        fields,
        query: template,
        tie_breaker: options.tie_breaker,
        lenient,
        boost: 1.0,
        quote_field_suffix: Some(suffix.clone()),
    }))
}

fn unescape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Clauses with their occurrences as one query: a single required or optional clause stands
/// alone; clauses that only exclude get "everything else" (Elasticsearch's pure negative rule).
fn combine_clauses(clauses: Vec<(Occur, Query)>, minimum: Option<MinimumShouldMatch>) -> Query {
    let mut clauses = clauses;
    if clauses.len() == 1
        && minimum.is_none()
        && clauses
            .first()
            .is_some_and(|(occur, _)| *occur != Occur::MustNot)
        && let Some((_, query)) = clauses.pop()
    {
        return query;
    }
    let mut bool_query = Bool {
        boost: 1.0,
        minimum_should_match: minimum,
        ..Bool::default()
    };
    for (occur, query) in clauses {
        match occur {
            Occur::Must => bool_query.must.push(query),
            Occur::Should => bool_query.should.push(query),
            Occur::MustNot => bool_query.must_not.push(query),
        }
    }
    if bool_query.must.is_empty() && bool_query.should.is_empty() && !bool_query.must_not.is_empty()
    {
        bool_query.must.push(Query::match_all());
    }
    Query::Bool(Box::new(bool_query))
}

/// Parses `text` in `simple_query_string` syntax: `+` (and), `|` (or), `-` (not), `"phrases"`
/// with `~slop`, `prefix*`, `fuzzy~N`, parentheses; whitespace is the default operator. Nothing
/// is a syntax error; only nesting deeper than `QUERY_DEPTH_MAX` or more than
/// `QUERY_CLAUSES_MAX` clauses fail.
pub fn parse_simple(text: &str, options: &QueryStringOptions) -> Result<Query, QueryStringError> {
    if text.len() > QUERY_STRING_BYTES_MAX {
        return Err(QueryStringError {
            query: text.chars().take(64).collect(),
            position: QUERY_STRING_BYTES_MAX,
            message: format!("query is longer than {QUERY_STRING_BYTES_MAX} bytes"),
        });
    }
    let mut parser = SimpleParser {
        chars: text.chars().collect(),
        position: 0,
        options,
        clauses: 0,
        limit: None,
    };
    let query = parser.sequence(0);
    if let Some(message) = parser.limit {
        // The one thing that fails a simple query string: a limit, never its syntax.
        return Err(QueryStringError {
            query: text.to_string(),
            position: parser.position,
            message,
        });
    }
    let query = match &options.minimum_should_match {
        Some(msm) => match query {
            Query::Bool(mut bool_query) if bool_query.must.is_empty() => {
                bool_query.minimum_should_match = Some(msm.clone());
                Query::Bool(bool_query)
            }
            other => other,
        },
        None => query,
    };
    Ok(query)
}

struct SimpleParser<'a> {
    chars: Vec<char>,
    position: usize,
    options: &'a QueryStringOptions,
    clauses: usize,
    /// The limit the text went past (depth or clauses), which ends parsing and fails it.
    limit: Option<String>,
}

impl SimpleParser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    /// Terms joined by operators up to `)` or the end, folded left to right.
    fn sequence(&mut self, depth: usize) -> Query {
        let mut result: Option<Query> = None;
        let mut pending = self.options.default_operator;
        loop {
            let mut explicit = None;
            loop {
                match self.peek() {
                    Some(c) if c.is_whitespace() => self.position += 1,
                    Some('+') => {
                        explicit = Some(Operator::And);
                        self.position += 1;
                    }
                    Some('|') => {
                        explicit = Some(Operator::Or);
                        self.position += 1;
                    }
                    _ => break,
                }
            }
            if let Some(operator) = explicit {
                pending = operator;
            }
            let Some(c) = self.peek() else { break };
            if c == ')' {
                if depth > 0 {
                    break;
                }
                // An unmatched ')' is ignored.
                self.position += 1;
                continue;
            }
            let mut negated = false;
            while self.peek() == Some('-') {
                negated = !negated;
                self.position += 1;
            }
            let Some(mut clause) = self.operand(depth) else {
                continue;
            };
            self.clauses += 1;
            if self.clauses > QUERY_CLAUSES_MAX {
                self.limit = Some(format!(
                    "too many clauses; maxClauseCount is set to {QUERY_CLAUSES_MAX}"
                ));
                self.position = self.chars.len();
                break;
            }
            if negated {
                clause = Query::Bool(Box::new(Bool {
                    must: vec![Query::match_all()],
                    must_not: vec![clause],
                    boost: 1.0,
                    ..Bool::default()
                }));
            }
            result = Some(match result {
                None => clause,
                Some(previous) => join(previous, clause, pending),
            });
            pending = self.options.default_operator;
        }
        result.unwrap_or(Query::MatchNone)
    }

    fn operand(&mut self, depth: usize) -> Option<Query> {
        match self.peek()? {
            '(' => {
                self.position += 1;
                if depth >= QUERY_DEPTH_MAX {
                    self.limit = Some(format!("parentheses nest deeper than {QUERY_DEPTH_MAX}"));
                    self.position = self.chars.len();
                    return None;
                }
                let inner = self.sequence(depth + 1);
                if self.peek() == Some(')') {
                    self.position += 1;
                }
                Some(inner)
            }
            '"' => {
                self.position += 1;
                let mut text = String::new();
                while let Some(c) = self.peek() {
                    self.position += 1;
                    if c == '"' {
                        break;
                    }
                    text.push(c);
                }
                let slop = self.suffix_number('~').unwrap_or(0);
                let mut template = Match::new("", &text);
                template.kind = MatchKind::Phrase { slop };
                template.analyzer = self.options.quote_analyzer.or(self.options.analyzer);
                template.lenient = true;
                Some(quoted_for_fields(
                    None,
                    Query::Match(Box::new(template)),
                    self.options,
                ))
            }
            _ => {
                let mut text = String::new();
                while let Some(c) = self.peek() {
                    if c.is_whitespace() || matches!(c, '(' | ')' | '|' | '+' | '"') {
                        break;
                    }
                    if c == '\\' {
                        self.position += 1;
                        if let Some(escaped) = self.peek() {
                            text.push(escaped);
                            self.position += 1;
                        }
                        continue;
                    }
                    if c == '~' {
                        break;
                    }
                    text.push(c);
                    self.position += 1;
                }
                if let Some(edits) = self.suffix_number('~') {
                    return Some(for_fields(
                        None,
                        Query::Fuzzy {
                            field: String::new(),
                            value: text,
                            fuzziness: Fuzziness::Edits(edits.min(2) as u8),
                            prefix_length: self.options.fuzzy_prefix_length,
                            max_expansions: self.options.fuzzy_max_expansions,
                            transpositions: self.options.fuzzy_transpositions,
                            boost: 1.0,
                        },
                        self.options,
                    ));
                }
                if text.is_empty() {
                    return None;
                }
                if let Some(prefix) = text.strip_suffix('*').filter(|p| !p.is_empty()) {
                    return Some(for_fields(
                        None,
                        Query::Prefix {
                            field: String::new(),
                            value: prefix.to_string(),
                            case_insensitive: false,
                            boost: 1.0,
                        },
                        self.options,
                    ));
                }
                let mut template = Match::new("", &text);
                template.operator = self.options.default_operator;
                template.analyzer = self.options.analyzer;
                template.lenient = true;
                Some(for_fields(
                    None,
                    Query::Match(Box::new(template)),
                    self.options,
                ))
            }
        }
    }

    /// `~N` after a term or phrase: `N` (or 2 alone for fuzziness, as Lucene's simple parser).
    fn suffix_number(&mut self, marker: char) -> Option<u32> {
        if self.peek() != Some(marker) {
            return None;
        }
        self.position += 1;
        let mut digits = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            digits.push(c);
            self.position += 1;
        }
        Some(digits.parse().unwrap_or(2))
    }
}

fn join(left: Query, right: Query, operator: Operator) -> Query {
    let mut bool_query = Bool {
        boost: 1.0,
        ..Bool::default()
    };
    match operator {
        Operator::And => bool_query.must = vec![left, right],
        Operator::Or => bool_query.should = vec![left, right],
    }
    Query::Bool(Box::new(bool_query))
}
