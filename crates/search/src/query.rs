//! Sluice's own query tree, which the API builds from the Elasticsearch Query DSL (and from
//! Lucene query syntax through `query_string.rs`) and the index compiles into tantivy queries
//! under its mapping (`compile.rs`).
//!
//! The tree says what to match and how to score, in Elasticsearch's terms, with no wire shape:
//! values that depend on a field's type (a term, range bounds) stay `serde_json::Value` scalars
//! until the mapping decides what they mean. Every clause can carry a name (`Query::Named`),
//! which is how hits report `matched_queries`; later features (sort, highlight, by-query
//! operations) walk the same tree.

use std::fmt;

use serde_json::Value;

use crate::analysis::Analyzer;

/// How deeply compound queries (bool, dis_max, constant_score, boosting, function_score,
/// parenthesised query strings) may nest; deeper requests are refused, so no parser or compiler
/// recursion can exhaust the stack (Elasticsearch's `indices.query.bool.max_nested_depth`).
pub const QUERY_DEPTH_MAX: usize = 30;
/// Clauses one query may expand to (terms of a match, fields of a pattern, values of `terms`):
/// Elasticsearch's `indices.query.bool.max_clause_count` for a small heap.
pub const QUERY_CLAUSES_MAX: usize = 4096;
/// Terms a fuzzy or prefix match expands to per term by default (`max_expansions`).
pub const MAX_EXPANSIONS_DEFAULT: u32 = 50;

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    MatchAll {
        boost: f32,
    },
    MatchNone,
    /// An exact value of a field (for `text`, one token as indexed).
    Term {
        field: String,
        value: Value,
        case_insensitive: bool,
        boost: f32,
    },
    /// Any of several exact values.
    Terms {
        field: String,
        values: Vec<Value>,
        boost: f32,
    },
    /// Documents by `_id`.
    Ids {
        values: Vec<String>,
        boost: f32,
    },
    /// Analyzed full text: `match`, `match_phrase`, `match_phrase_prefix`, `match_bool_prefix`.
    Match(Box<Match>),
    /// One query template run over several fields (`multi_match`, `query_string` over
    /// `fields`/`default_field`, `field.*:value`): the template's empty field names are replaced
    /// by each field the patterns name, and the results combined as `dis_max` with the tie
    /// breaker (1.0 sums them, as `most_fields` does).
    Fields(Box<Fields>),
    /// `multi_match` of type `cross_fields`: each term searched in every field, the fields
    /// treated as one.
    CrossFields(Box<Fields>),
    Range(Box<Range>),
    /// Documents with a value in the field.
    Exists {
        field: String,
        boost: f32,
    },
    Prefix {
        field: String,
        value: String,
        case_insensitive: bool,
        boost: f32,
    },
    /// `?` one character, `*` any run.
    Wildcard {
        field: String,
        pattern: String,
        case_insensitive: bool,
        boost: f32,
    },
    /// Lucene regular expression syntax, anchored at both ends.
    Regexp {
        field: String,
        pattern: String,
        case_insensitive: bool,
        boost: f32,
    },
    Fuzzy {
        field: String,
        value: String,
        fuzziness: Fuzziness,
        prefix_length: u32,
        max_expansions: u32,
        transpositions: bool,
        boost: f32,
    },
    Bool(Box<Bool>),
    /// Matches what `filter` matches, each with the score `boost`.
    ConstantScore {
        filter: Box<Query>,
        boost: f32,
    },
    /// `positive`, with the score of documents also matching `negative` multiplied by
    /// `negative_boost`.
    Boosting {
        positive: Box<Query>,
        negative: Box<Query>,
        negative_boost: f32,
        boost: f32,
    },
    /// The best score of its clauses, plus `tie_breaker` times the others'.
    DisMax {
        queries: Vec<Query>,
        tie_breaker: f32,
        boost: f32,
    },
    FunctionScore(Box<FunctionScore>),
    /// Documents with a point of a `geo_point` field in a region (`geo_distance`,
    /// `geo_bounding_box`), each scored `boost`.
    Geo(Box<Geo>),
    /// Documents with objects of a `nested` field that `query` matches one at a time.
    Nested(Box<Nested>),
    /// A clause with `_name`: hits it matches list the name in `matched_queries`.
    Named {
        name: String,
        query: Box<Query>,
    },
    /// A query under a reader's field-level security: the whole read it is part of sees only
    /// the fields the filter shows (`field_security.rs`). Never parsed from a request.
    Restricted(Box<crate::field_security::Restricted>),
}

/// A geo query: its field, the region, and whether an unmapped field matches nothing instead
/// of failing (`ignore_unmapped`).
#[derive(Debug, Clone, PartialEq)]
pub struct Geo {
    pub field: String,
    pub shape: crate::geo_query::GeoShape,
    /// The query's name in errors (`geo_distance`, `geo_bounding_box`).
    pub kind: &'static str,
    pub ignore_unmapped: bool,
    pub boost: f32,
}

impl Query {
    pub fn match_all() -> Query {
        Query::MatchAll { boost: 1.0 }
    }

    /// `query` restricted to documents matching any of the alias `filters` (`None`: no filter),
    /// scored by `query` alone, as Elasticsearch adds an alias's filter as a `bool` filter.
    pub fn with_alias_filters(self, filters: Option<Vec<Query>>) -> Query {
        let Some(filters) = filters else {
            return self;
        };
        let any = Query::Bool(Box::new(Bool {
            should: filters,
            boost: 1.0,
            ..Bool::default()
        }));
        Query::Bool(Box::new(Bool {
            must: vec![self],
            filter: vec![any],
            boost: 1.0,
            ..Bool::default()
        }))
    }

    /// Every named clause of the tree, in tree order, as a query of the level the tree runs
    /// at: a name inside `nested` queries is its clause wrapped in those `nested` queries
    /// (scoring nothing), so a document matches it when one of its objects does, as Lucene's
    /// block join reports its children's matches and Elasticsearch lists them on the hit.
    pub fn names(&self) -> Vec<(&str, Query)> {
        fn walk<'a>(
            query: &'a Query,
            scope: &mut Vec<&'a Nested>,
            out: &mut Vec<(&'a str, Query)>,
        ) {
            match query {
                Query::Named {
                    name,
                    query: clause,
                } => {
                    let wrapped =
                        scope
                            .iter()
                            .rev()
                            .fold(clause.as_ref().clone(), |inner, nested| {
                                Query::Nested(Box::new(Nested {
                                    path: nested.path.clone(),
                                    query: inner,
                                    score_mode: crate::nested::NestedScoreMode::None,
                                    ignore_unmapped: nested.ignore_unmapped,
                                    inner_hits: None,
                                    boost: 1.0,
                                }))
                            });
                    out.push((name.as_str(), wrapped));
                }
                Query::Nested(nested) => {
                    scope.push(nested);
                    walk(&nested.query, scope, out);
                    scope.pop();
                    return;
                }
                _ => {}
            }
            query.for_each_child(&mut |child| walk(child, scope, out));
        }
        let mut names = Vec::new();
        walk(self, &mut Vec::new(), &mut names);
        names
    }

    /// Calls `visit` on this query and every query inside it, parents first.
    pub fn visit<'a>(&'a self, visit: &mut dyn FnMut(&'a Query)) {
        visit(self);
        self.for_each_child(&mut |child| child.visit(visit));
    }

    /// Calls `visit` on each query directly inside this one, in tree order.
    fn for_each_child<'a>(&'a self, visit: &mut dyn FnMut(&'a Query)) {
        match self {
            Query::Fields(fields) | Query::CrossFields(fields) => visit(&fields.query),
            Query::Bool(bool_query) => {
                for clause in bool_query
                    .must
                    .iter()
                    .chain(&bool_query.should)
                    .chain(&bool_query.must_not)
                    .chain(&bool_query.filter)
                {
                    visit(clause);
                }
            }
            Query::ConstantScore { filter, .. } => visit(filter),
            Query::Boosting {
                positive, negative, ..
            } => {
                visit(positive);
                visit(negative);
            }
            Query::DisMax { queries, .. } => {
                for query in queries {
                    visit(query);
                }
            }
            Query::FunctionScore(function_score) => {
                visit(&function_score.query);
                for function in &function_score.functions {
                    if let Some(filter) = &function.filter {
                        visit(filter);
                    }
                }
            }
            Query::Named { query, .. } => visit(query),
            Query::Nested(nested) => visit(&nested.query),
            Query::Restricted(restricted) => visit(&restricted.query),
            _ => {}
        }
    }

    /// The field-level security this query runs under, wherever in the tree it was put.
    pub fn restriction(&self) -> Option<&crate::field_security::Restricted> {
        let mut found = None;
        self.visit(&mut |query| {
            if let (None, Query::Restricted(restricted)) = (&found, query) {
                found = Some(restricted.as_ref());
            }
        });
        found
    }

    /// The top-level `nested` queries of the tree (not those inside other `nested` queries)
    /// that ask for inner hits, in tree order.
    pub fn inner_hits(&self) -> Vec<&Nested> {
        fn walk<'a>(query: &'a Query, out: &mut Vec<&'a Nested>) {
            let mut children: Vec<&'a Query> = Vec::new();
            match query {
                Query::Nested(nested) => {
                    if nested.inner_hits.is_some() {
                        out.push(nested);
                    }
                    return;
                }
                Query::Bool(bool_query) => children.extend(
                    bool_query
                        .must
                        .iter()
                        .chain(&bool_query.should)
                        .chain(&bool_query.filter),
                ),
                Query::ConstantScore { filter, .. } => children.push(filter),
                Query::Boosting { positive, .. } => children.push(positive),
                Query::DisMax { queries, .. } => children.extend(queries),
                Query::FunctionScore(function_score) => children.push(&function_score.query),
                Query::Named { query, .. } => children.push(query),
                Query::Restricted(restricted) => children.push(&restricted.query),
                _ => {}
            }
            for child in children {
                walk(child, out);
            }
        }
        let mut found = Vec::new();
        walk(self, &mut found);
        found
    }

    /// A copy with every empty field name (a `Fields` template's) replaced by `field`.
    pub fn with_field(&self, field: &str) -> Query {
        let mut query = self.clone();
        query.set_field(field);
        query
    }

    fn set_field(&mut self, new_field: &str) {
        let replace = |field: &mut String| {
            if field.is_empty() {
                *field = new_field.to_string();
            }
        };
        match self {
            Query::Term { field, .. }
            | Query::Terms { field, .. }
            | Query::Exists { field, .. }
            | Query::Prefix { field, .. }
            | Query::Wildcard { field, .. }
            | Query::Regexp { field, .. }
            | Query::Fuzzy { field, .. } => replace(field),
            Query::Match(query) => replace(&mut query.field),
            Query::Range(range) => replace(&mut range.field),
            Query::Bool(bool_query) => {
                for clause in bool_query
                    .must
                    .iter_mut()
                    .chain(&mut bool_query.should)
                    .chain(&mut bool_query.must_not)
                    .chain(&mut bool_query.filter)
                {
                    clause.set_field(new_field);
                }
            }
            Query::ConstantScore { filter, .. } => filter.set_field(new_field),
            Query::DisMax { queries, .. } => {
                for query in queries {
                    query.set_field(new_field);
                }
            }
            Query::Named { query, .. } => query.set_field(new_field),
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Or,
    And,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZeroTermsQuery {
    None,
    All,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MatchKind {
    /// Each analyzed term a clause of a boolean query.
    Boolean,
    /// The terms in order, at most `slop` moves apart.
    Phrase { slop: u32 },
    /// A phrase whose last term is a prefix.
    PhrasePrefix { slop: u32, max_expansions: u32 },
    /// A boolean query whose last term is a prefix.
    BoolPrefix,
}

/// `fuzziness`: a fixed number of edits, or `AUTO` by term length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fuzziness {
    Edits(u8),
    /// No edit below `low` characters, one below `high`, two from `high` on (`AUTO` is 3, 6).
    Auto {
        low: u32,
        high: u32,
    },
}

impl Fuzziness {
    pub const AUTO: Fuzziness = Fuzziness::Auto { low: 3, high: 6 };

    /// The edits allowed for a term.
    pub fn edits(self, term: &str) -> u8 {
        match self {
            Fuzziness::Edits(edits) => edits.min(2),
            Fuzziness::Auto { low, high } => {
                let length = term.chars().count() as u32;
                if length < low {
                    0
                } else if length < high {
                    1
                } else {
                    2
                }
            }
        }
    }

    /// Reads `0`, `1`, `2`, `AUTO` or `AUTO:low,high`.
    pub fn parse(text: &str) -> Option<Fuzziness> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("auto") {
            return Some(Fuzziness::AUTO);
        }
        if let Some(bounds) = text
            .get(..5)
            .filter(|head| head.eq_ignore_ascii_case("auto:"))
            .and_then(|_| text.get(5..))
        {
            let (low, high) = bounds.split_once(',')?;
            let (low, high) = (low.trim().parse().ok()?, high.trim().parse().ok()?);
            return (low <= high).then_some(Fuzziness::Auto { low, high });
        }
        let edits: f64 = text.parse().ok()?;
        (edits >= 0.0 && edits.fract() == 0.0 && edits <= 2.0)
            .then_some(Fuzziness::Edits(edits as u8))
    }
}

/// `minimum_should_match`: how many optional clauses must match.
#[derive(Debug, Clone, PartialEq)]
pub enum MinimumShouldMatch {
    /// A count; negative means "all but".
    Count(i64),
    /// A percentage of the clauses, rounded down; negative means "all but".
    Percent(i64),
    /// `n<spec`: all clauses when there are at most `n`, else `spec`; several are tried from the
    /// largest `n` down.
    Conditional(Vec<(u64, MinimumShouldMatch)>),
}

impl MinimumShouldMatch {
    /// Reads Elasticsearch's syntax: `3`, `-2`, `75%`, `-25%`, `3<90%`, `2<-25% 9<-3`.
    pub fn parse(text: &str) -> Option<MinimumShouldMatch> {
        let text = text.trim();
        if text.contains('<') {
            let mut conditions = Vec::new();
            for part in text.split_whitespace() {
                let (count, spec) = part.split_once('<')?;
                let spec = MinimumShouldMatch::parse(spec)?;
                if matches!(spec, MinimumShouldMatch::Conditional(_)) {
                    return None;
                }
                conditions.push((count.trim().parse().ok()?, spec));
            }
            conditions.sort_by_key(|(count, _)| *count);
            return Some(MinimumShouldMatch::Conditional(conditions));
        }
        if let Some(percent) = text.strip_suffix('%') {
            return percent.trim().parse().ok().map(MinimumShouldMatch::Percent);
        }
        text.parse().ok().map(MinimumShouldMatch::Count)
    }

    /// The clauses that must match out of `optional` ones (never more than `optional`).
    pub fn required(&self, optional: usize) -> usize {
        let total = optional as i64;
        let required = match self {
            MinimumShouldMatch::Count(count) if *count < 0 => total + count,
            MinimumShouldMatch::Count(count) => *count,
            MinimumShouldMatch::Percent(percent) if *percent < 0 => {
                total - (total * -percent / 100)
            }
            MinimumShouldMatch::Percent(percent) => total * percent / 100,
            MinimumShouldMatch::Conditional(conditions) => {
                match conditions
                    .iter()
                    .rev()
                    .find(|(count, _)| total as u64 > *count)
                {
                    Some((_, spec)) => spec.required(optional) as i64,
                    None => total,
                }
            }
        };
        required.clamp(0, total) as usize
    }
}

/// A full-text query on one field (an empty field is a `Fields` template's).
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    pub field: String,
    pub text: String,
    pub kind: MatchKind,
    pub operator: Operator,
    pub minimum_should_match: Option<MinimumShouldMatch>,
    pub fuzziness: Option<Fuzziness>,
    pub prefix_length: u32,
    pub max_expansions: u32,
    pub fuzzy_transpositions: bool,
    /// Text that does not fit a numeric, date or boolean field matches nothing instead of failing.
    pub lenient: bool,
    pub zero_terms_query: ZeroTermsQuery,
    /// The analyzer to use instead of the field's search analyzer.
    pub analyzer: Option<Analyzer>,
    pub boost: f32,
}

impl Match {
    /// A `match` query with Elasticsearch's defaults.
    pub fn new(field: &str, text: &str) -> Match {
        Match {
            field: field.to_string(),
            text: text.to_string(),
            kind: MatchKind::Boolean,
            operator: Operator::Or,
            minimum_should_match: None,
            fuzziness: None,
            prefix_length: 0,
            max_expansions: MAX_EXPANSIONS_DEFAULT,
            fuzzy_transpositions: true,
            lenient: false,
            zero_terms_query: ZeroTermsQuery::None,
            analyzer: None,
            boost: 1.0,
        }
    }
}

/// A field name or pattern (`*` wildcards) with its boost (`title^3`).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPattern {
    pub pattern: String,
    pub boost: f32,
}

impl FieldPattern {
    /// Reads `name` or `name^boost`.
    pub fn parse(text: &str) -> Option<FieldPattern> {
        match text.rsplit_once('^') {
            Some((pattern, boost)) => Some(FieldPattern {
                pattern: pattern.to_string(),
                boost: boost
                    .parse()
                    .ok()
                    .filter(|b: &f32| b.is_finite() && *b >= 0.0)?,
            }),
            None => Some(FieldPattern {
                pattern: text.to_string(),
                boost: 1.0,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fields {
    /// Empty: every field the index's default field (`*`) names.
    pub fields: Vec<FieldPattern>,
    /// The template, with empty field names.
    pub query: Query,
    pub tie_breaker: f32,
    /// Fields where the template's value does not fit their type are skipped instead of
    /// failing (as Elasticsearch does for patterns).
    pub lenient: bool,
    pub boost: f32,
    /// `quote_field_suffix` of a quoted phrase in a query string: each field is searched as
    /// `<field><suffix>` when the mapping has that field, else as itself.
    pub quote_field_suffix: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RangeBound {
    Unbounded,
    Included(Value),
    Excluded(Value),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub field: String,
    pub lower: RangeBound,
    pub upper: RangeBound,
    /// Date format of the bounds (default: the field's).
    pub format: Option<String>,
    /// `+01:00`-style offset for dates without one and for date math rounding.
    pub time_zone: Option<String>,
    pub boost: f32,
}

/// The `nested` query.
#[derive(Debug, Clone, PartialEq)]
pub struct Nested {
    /// The full dotted path of the nested field.
    pub path: String,
    /// Run on each nested object of `path`, with full field paths (`comments.author`).
    pub query: Query,
    pub score_mode: crate::nested::NestedScoreMode,
    /// An unmapped `path` matches nothing instead of failing.
    pub ignore_unmapped: bool,
    pub inner_hits: Option<InnerHits>,
    pub boost: f32,
}

/// `inner_hits` of a `nested` query: the matching nested objects of each hit, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct InnerHits {
    /// The key in the hit's `inner_hits` (the path unless named).
    pub name: String,
    pub from: usize,
    pub size: usize,
    /// Whether inner hits show the object's source, and its include and exclude patterns.
    pub source_enabled: bool,
    pub source_includes: Vec<String>,
    pub source_excludes: Vec<String>,
}

/// Nested objects one inner hits section may reach (`from + size`), Elasticsearch's
/// `index.max_inner_result_window`; more is refused (400).
pub const INNER_RESULT_WINDOW_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Bool {
    pub must: Vec<Query>,
    pub should: Vec<Query>,
    pub must_not: Vec<Query>,
    pub filter: Vec<Query>,
    pub minimum_should_match: Option<MinimumShouldMatch>,
    pub boost: f32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreMode {
    Multiply,
    Sum,
    Avg,
    First,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoostMode {
    Multiply,
    Replace,
    Sum,
    Avg,
    Max,
    Min,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modifier {
    None,
    Log,
    Log1p,
    Log2p,
    Ln,
    Ln1p,
    Ln2p,
    Square,
    Sqrt,
    Reciprocal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecayShape {
    Gauss,
    Exp,
    Linear,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FunctionKind {
    /// Only the function's `weight`.
    Weight,
    FieldValueFactor {
        field: String,
        factor: f64,
        modifier: Modifier,
        missing: Option<f64>,
    },
    /// A decay by the distance of a numeric or date field's value from `origin`.
    Decay {
        shape: DecayShape,
        field: String,
        /// A number, or for dates a date (or `now`) in the field's format.
        origin: Option<Value>,
        /// A number, or for dates a time value (`10d`).
        scale: Value,
        offset: Option<Value>,
        decay: f64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScoreFunction {
    pub filter: Option<Query>,
    pub weight: Option<f32>,
    pub kind: FunctionKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FunctionScore {
    pub query: Query,
    pub functions: Vec<ScoreFunction>,
    pub score_mode: ScoreMode,
    pub boost_mode: BoostMode,
    pub max_boost: f32,
    pub min_score: Option<f32>,
    pub boost: f32,
}

/// The tree as a one-line S-expression, for snapshot tests and logs: `(match title "a b" or)`.
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let boost = |f: &mut fmt::Formatter<'_>, boost: f32| {
            if (boost - 1.0).abs() < f32::EPSILON {
                Ok(())
            } else {
                write!(f, " ^{boost}")
            }
        };
        let list = |f: &mut fmt::Formatter<'_>, name: &str, queries: &[Query]| {
            if queries.is_empty() {
                return Ok(());
            }
            write!(f, " ({name}")?;
            for query in queries {
                write!(f, " {query}")?;
            }
            write!(f, ")")
        };
        match self {
            Query::MatchAll { boost: b } => {
                write!(f, "(match_all")?;
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::MatchNone => write!(f, "(match_none)"),
            Query::Term {
                field,
                value,
                case_insensitive,
                boost: b,
            } => {
                write!(f, "(term {field} {value}")?;
                if *case_insensitive {
                    write!(f, " case_insensitive")?;
                }
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Terms {
                field,
                values,
                boost: b,
            } => {
                write!(f, "(terms {field}")?;
                for value in values {
                    write!(f, " {value}")?;
                }
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Ids { values, boost: b } => {
                write!(f, "(ids {}", values.join(" "))?;
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Match(m) => {
                let kind = match m.kind {
                    MatchKind::Boolean => "match".to_string(),
                    MatchKind::Phrase { slop } => format!("match_phrase slop={slop}"),
                    MatchKind::PhrasePrefix {
                        slop,
                        max_expansions,
                    } => format!("match_phrase_prefix slop={slop} max_expansions={max_expansions}"),
                    MatchKind::BoolPrefix => "match_bool_prefix".to_string(),
                };
                let field = if m.field.is_empty() { "_" } else { &m.field };
                write!(f, "({kind} {field} {:?}", m.text)?;
                if m.operator == Operator::And {
                    write!(f, " and")?;
                }
                if let Some(msm) = &m.minimum_should_match {
                    write!(f, " msm={msm:?}")?;
                }
                if let Some(fuzziness) = m.fuzziness {
                    write!(
                        f,
                        " fuzziness={fuzziness:?} prefix_length={}",
                        m.prefix_length
                    )?;
                }
                if m.lenient {
                    write!(f, " lenient")?;
                }
                if m.zero_terms_query == ZeroTermsQuery::All {
                    write!(f, " zero_terms=all")?;
                }
                if let Some(analyzer) = m.analyzer {
                    write!(f, " analyzer={}", analyzer.name())?;
                }
                boost(f, m.boost)?;
                write!(f, ")")
            }
            Query::Fields(spec) | Query::CrossFields(spec) => {
                let name = if matches!(self, Query::Fields(_)) {
                    "fields"
                } else {
                    "cross_fields"
                };
                write!(f, "({name} [")?;
                for (i, field) in spec.fields.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{}", field.pattern)?;
                    if (field.boost - 1.0).abs() >= f32::EPSILON {
                        write!(f, "^{}", field.boost)?;
                    }
                }
                write!(f, "] tie={}", spec.tie_breaker)?;
                if spec.lenient {
                    write!(f, " lenient")?;
                }
                if let Some(suffix) = &spec.quote_field_suffix {
                    write!(f, " quote_field_suffix={suffix}")?;
                }
                write!(f, " {}", spec.query)?;
                boost(f, spec.boost)?;
                write!(f, ")")
            }
            Query::Range(range) => {
                let bound = |b: &RangeBound, open: &str, close: &str| match b {
                    RangeBound::Unbounded => "*".to_string(),
                    RangeBound::Included(v) => format!("{open}{v}"),
                    RangeBound::Excluded(v) => format!("{close}{v}"),
                };
                let field = if range.field.is_empty() {
                    "_"
                } else {
                    &range.field
                };
                write!(
                    f,
                    "(range {field} {} {}",
                    bound(&range.lower, "gte=", "gt="),
                    bound(&range.upper, "lte=", "lt=")
                )?;
                if let Some(format) = &range.format {
                    write!(f, " format={format:?}")?;
                }
                if let Some(zone) = &range.time_zone {
                    write!(f, " time_zone={zone:?}")?;
                }
                boost(f, range.boost)?;
                write!(f, ")")
            }
            Query::Exists { field, boost: b } => {
                let field = if field.is_empty() { "_" } else { field };
                write!(f, "(exists {field}")?;
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Prefix {
                field,
                value,
                case_insensitive,
                boost: b,
            }
            | Query::Wildcard {
                field,
                pattern: value,
                case_insensitive,
                boost: b,
            }
            | Query::Regexp {
                field,
                pattern: value,
                case_insensitive,
                boost: b,
            } => {
                let name = match self {
                    Query::Prefix { .. } => "prefix",
                    Query::Wildcard { .. } => "wildcard",
                    _ => "regexp",
                };
                let field = if field.is_empty() { "_" } else { field };
                write!(f, "({name} {field} {value:?}")?;
                if *case_insensitive {
                    write!(f, " case_insensitive")?;
                }
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Fuzzy {
                field,
                value,
                fuzziness,
                prefix_length,
                max_expansions,
                transpositions,
                boost: b,
            } => {
                let field = if field.is_empty() { "_" } else { field };
                write!(
                    f,
                    "(fuzzy {field} {value:?} {fuzziness:?} prefix_length={prefix_length} max_expansions={max_expansions}"
                )?;
                if !transpositions {
                    write!(f, " no_transpositions")?;
                }
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Bool(b) => {
                write!(f, "(bool")?;
                list(f, "must", &b.must)?;
                list(f, "should", &b.should)?;
                list(f, "must_not", &b.must_not)?;
                list(f, "filter", &b.filter)?;
                if let Some(msm) = &b.minimum_should_match {
                    write!(f, " msm={msm:?}")?;
                }
                boost(f, b.boost)?;
                write!(f, ")")
            }
            Query::ConstantScore { filter, boost: b } => {
                write!(f, "(constant_score {filter}")?;
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::Boosting {
                positive,
                negative,
                negative_boost,
                boost: b,
            } => {
                write!(
                    f,
                    "(boosting {positive} {negative} negative_boost={negative_boost}"
                )?;
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::DisMax {
                queries,
                tie_breaker,
                boost: b,
            } => {
                write!(f, "(dis_max tie={tie_breaker}")?;
                for query in queries {
                    write!(f, " {query}")?;
                }
                boost(f, *b)?;
                write!(f, ")")
            }
            Query::FunctionScore(fs) => {
                write!(
                    f,
                    "(function_score {} score_mode={:?} boost_mode={:?}",
                    fs.query, fs.score_mode, fs.boost_mode
                )?;
                for function in &fs.functions {
                    write!(f, " (function {:?}", function.kind)?;
                    if let Some(weight) = function.weight {
                        write!(f, " weight={weight}")?;
                    }
                    if let Some(filter) = &function.filter {
                        write!(f, " filter={filter}")?;
                    }
                    write!(f, ")")?;
                }
                if fs.max_boost < f32::MAX {
                    write!(f, " max_boost={}", fs.max_boost)?;
                }
                if let Some(min_score) = fs.min_score {
                    write!(f, " min_score={min_score}")?;
                }
                boost(f, fs.boost)?;
                write!(f, ")")
            }
            Query::Named { name, query } => write!(f, "(named {name:?} {query})"),
            Query::Restricted(restricted) => write!(f, "(restricted {})", restricted.query),
            Query::Geo(geo) => {
                write!(f, "({} {} {:?}", geo.kind, geo.field, geo.shape)?;
                if geo.ignore_unmapped {
                    write!(f, " ignore_unmapped")?;
                }
                boost(f, geo.boost)?;
                write!(f, ")")
            }
            Query::Nested(nested) => {
                write!(
                    f,
                    "(nested {} {} score_mode={:?}",
                    nested.path, nested.query, nested.score_mode
                )?;
                if nested.ignore_unmapped {
                    write!(f, " ignore_unmapped")?;
                }
                if let Some(inner) = &nested.inner_hits {
                    write!(
                        f,
                        " (inner_hits {:?} from={} size={}",
                        inner.name, inner.from, inner.size
                    )?;
                    if !inner.source_enabled {
                        write!(f, " no_source")?;
                    }
                    for include in &inner.source_includes {
                        write!(f, " include={include:?}")?;
                    }
                    for exclude in &inner.source_excludes {
                        write!(f, " exclude={exclude:?}")?;
                    }
                    write!(f, ")")?;
                }
                boost(f, nested.boost)?;
                write!(f, ")")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzziness_auto_follows_term_length() {
        let auto = Fuzziness::parse("AUTO").unwrap();
        assert_eq!(
            ["ab", "abc", "abcde", "abcdef"].map(|t| auto.edits(t)),
            [0, 1, 1, 2]
        );
        assert_eq!(
            Fuzziness::parse("auto:2,4"),
            Some(Fuzziness::Auto { low: 2, high: 4 })
        );
        assert_eq!(Fuzziness::parse("1"), Some(Fuzziness::Edits(1)));
        assert_eq!(Fuzziness::parse("3"), None);
        assert_eq!(Fuzziness::parse("bogus"), None);
    }

    #[test]
    fn minimum_should_match_as_elasticsearch_computes_it() {
        let required = |spec: &str, n| MinimumShouldMatch::parse(spec).unwrap().required(n);
        assert_eq!(required("2", 5), 2);
        assert_eq!(required("-2", 5), 3);
        assert_eq!(required("75%", 5), 3);
        assert_eq!(required("-25%", 5), 4);
        assert_eq!(required("3<90%", 3), 3);
        assert_eq!(required("3<90%", 10), 9);
        assert_eq!(required("2<-25% 9<-3", 2), 2);
        assert_eq!(required("2<-25% 9<-3", 8), 6);
        assert_eq!(required("2<-25% 9<-3", 12), 9);
        assert_eq!(required("7", 3), 3);
        assert!(MinimumShouldMatch::parse("x%").is_none());
    }
}
