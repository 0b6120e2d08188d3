//! tantivy queries that tantivy does not have and Elasticsearch's scoring needs: per-field BM25
//! statistics, `exists` on a text slot, `boosting`, and `function_score`.
//!
//! tantivy's BM25 already is Lucene's (k1 1.2, b 0.75, the same one-byte length norms, and the
//! `(k1 + 1)` factor Elasticsearch keeps), except for one statistic: it divides by every document
//! of the index where Lucene divides by the documents that have the field (`docCount`), both in
//! the IDF and in the average field length. [`FieldStatsQuery`] runs a query over one text slot
//! with that field's `docCount`, counted from its length norms (a document has the field when it
//! has at least one token in it, as in Lucene) and cached per segment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::columnar::Column;
use tantivy::index::SegmentId;
use tantivy::query::{Bm25StatisticsProvider, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::Field;
use tantivy::{DocId, DocSet, Score, Searcher, SegmentReader, TERMINATED, Term};

use crate::query::{BoostMode, DecayShape, Modifier, ScoreMode};

/// Per-segment statistics, each computed once per segment (segments never change but for
/// deletes, which Lucene's statistics ignore as well): the documents with a length norm in a
/// text slot, and the document frequency of each term looked up for BM25 (a term dictionary
/// lookup per segment, which a query otherwise makes twice: for the statistics and the scorer).
#[derive(Debug, Default)]
pub(crate) struct NormDocCounts {
    counts: Mutex<HashMap<(SegmentId, Field), u64>>,
    doc_freqs: Mutex<HashMap<(SegmentId, Term), u32>>,
}

/// Terms' document frequencies kept at most; the cache starts over beyond it.
const DOC_FREQS_MAX: usize = 65_536;

impl NormDocCounts {
    /// `docCount` of a slot over the searcher's segments.
    pub(crate) fn doc_count(&self, searcher: &Searcher, field: Field) -> tantivy::Result<u64> {
        let mut total = 0;
        for segment in searcher.segment_readers() {
            let key = (segment.segment_id(), field);
            let cached = self
                .counts
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .copied();
            let count = match cached {
                Some(count) => count,
                None => {
                    let norms = segment.get_fieldnorms_reader(field)?;
                    let count = (0..segment.max_doc())
                        .filter(|doc| norms.fieldnorm_id(*doc) != 0)
                        .count() as u64;
                    self.counts
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(key, count);
                    count
                }
            };
            total += count;
        }
        Ok(total)
    }

    /// `doc_freq` of `term` over the searcher's segments.
    fn doc_freq(&self, searcher: &Searcher, term: &Term) -> tantivy::Result<u64> {
        let segments = searcher.segment_readers();
        let mut cached = Vec::with_capacity(segments.len());
        {
            let freqs = self.doc_freqs.lock().unwrap_or_else(|p| p.into_inner());
            for segment in segments {
                cached.push(freqs.get(&(segment.segment_id(), term.clone())).copied());
            }
        }
        let mut total = 0;
        let mut found = Vec::new();
        for (segment, cached) in segments.iter().zip(cached) {
            let freq = match cached {
                Some(freq) => freq,
                None => {
                    let freq = segment.inverted_index(term.field())?.doc_freq(term)?;
                    found.push(((segment.segment_id(), term.clone()), freq));
                    freq
                }
            };
            total += u64::from(freq);
        }
        if !found.is_empty() {
            let mut freqs = self.doc_freqs.lock().unwrap_or_else(|p| p.into_inner());
            if freqs.len() + found.len() > DOC_FREQS_MAX {
                freqs.clear();
            }
            freqs.extend(found);
        }
        Ok(total)
    }

    /// Forgets segments the searcher no longer has (merged away).
    pub(crate) fn retain(&self, searcher: &Searcher) {
        let live: Vec<SegmentId> = searcher
            .segment_readers()
            .iter()
            .map(|s| s.segment_id())
            .collect();
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(segment, _), _| live.contains(segment));
        self.doc_freqs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(segment, _), _| live.contains(segment));
    }
}

struct FieldStatistics<'a> {
    searcher: &'a Searcher,
    doc_count: u64,
    cache: &'a NormDocCounts,
}

impl Bm25StatisticsProvider for FieldStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        Bm25StatisticsProvider::total_num_tokens(self.searcher, field)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        // Never below 1, so that an empty field's average length stays finite.
        Ok(self.doc_count.max(1))
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        self.cache.doc_freq(self.searcher, term)
    }
}

/// Scores `inner` — whose terms are all in the text slot `field` — with that field's `docCount`.
#[derive(Clone)]
pub(crate) struct FieldStatsQuery {
    pub inner: Arc<dyn Query>,
    pub field: Field,
    pub doc_counts: Arc<NormDocCounts>,
}

impl std::fmt::Debug for FieldStatsQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FieldStats({:?}, {:?})", self.field, self.inner)
    }
}

impl Query for FieldStatsQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        match enable_scoring {
            EnableScoring::Enabled { searcher, .. } => {
                let statistics = FieldStatistics {
                    searcher,
                    doc_count: self.doc_counts.doc_count(searcher, self.field)?,
                    cache: &self.doc_counts,
                };
                self.inner
                    .weight(EnableScoring::enabled_from_statistics_provider(
                        &statistics,
                        searcher,
                    ))
            }
            disabled => self.inner.weight(disabled),
        }
    }
}

/// Documents with at least one token in a text slot, each scored 1.
#[derive(Debug, Clone)]
pub(crate) struct NormExistsQuery {
    pub field: Field,
}

impl Query for NormExistsQuery {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(NormExistsWeight { field: self.field }))
    }
}

struct NormExistsWeight {
    field: Field,
}

impl Weight for NormExistsWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let norms = reader.get_fieldnorms_reader(self.field)?;
        let mut docs = tantivy::BitSet::with_max_value(reader.max_doc());
        for doc in 0..reader.max_doc() {
            if norms.fieldnorm_id(doc) != 0 {
                docs.insert(doc);
            }
        }
        Ok(Box::new(tantivy::query::ConstScorer::new(
            tantivy::query::BitSetDocSet::from(docs),
            boost,
        )))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        explain_by_scorer(self, reader, doc, "exists")
    }
}

fn explain_by_scorer(
    weight: &dyn Weight,
    reader: &SegmentReader,
    doc: DocId,
    what: &str,
) -> tantivy::Result<Explanation> {
    let mut scorer = weight.scorer(reader, 1.0)?;
    if scorer.seek(doc) != doc {
        return Err(tantivy::TantivyError::InvalidArgument(format!(
            "document does not match {what}"
        )));
    }
    Ok(Explanation::new_with_string(
        what.to_string(),
        scorer.score(),
    ))
}

/// Whether a named or filter query matches a document: its scorer, advanced in doc order.
pub(crate) struct Matcher {
    scorer: Box<dyn Scorer>,
}

impl Matcher {
    pub(crate) fn new(weight: &dyn Weight, reader: &SegmentReader) -> tantivy::Result<Matcher> {
        Ok(Matcher {
            scorer: weight.scorer(reader, 1.0)?,
        })
    }

    /// Whether `doc` matches; calls must come in increasing `doc` order.
    pub(crate) fn matches(&mut self, doc: DocId) -> bool {
        if self.scorer.doc() > doc {
            return false;
        }
        self.scorer.doc() == doc || self.scorer.seek(doc) == doc
    }
}

/// `boosting`: documents of `positive`, scores multiplied by `negative_boost` where `negative`
/// matches.
#[derive(Debug, Clone)]
pub(crate) struct BoostingQuery {
    pub positive: Arc<dyn Query>,
    pub negative: Arc<dyn Query>,
    pub negative_boost: f32,
}

impl Query for BoostingQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(BoostingWeight {
            positive: self.positive.weight(enable_scoring)?,
            negative: self.negative.weight(disabled(enable_scoring))?,
            negative_boost: self.negative_boost,
        }))
    }
}

fn disabled(enable_scoring: EnableScoring<'_>) -> EnableScoring<'_> {
    match enable_scoring {
        EnableScoring::Enabled { searcher, .. } => EnableScoring::Disabled {
            schema: searcher.schema(),
            searcher_opt: Some(searcher),
        },
        disabled => disabled,
    }
}

struct BoostingWeight {
    positive: Box<dyn Weight>,
    negative: Box<dyn Weight>,
    negative_boost: f32,
}

impl Weight for BoostingWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(BoostingScorer {
            positive: self.positive.scorer(reader, boost)?,
            negative: Matcher::new(self.negative.as_ref(), reader)?,
            negative_boost: self.negative_boost,
        }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        explain_by_scorer(self, reader, doc, "boosting")
    }
}

struct BoostingScorer {
    positive: Box<dyn Scorer>,
    negative: Matcher,
    negative_boost: f32,
}

impl DocSet for BoostingScorer {
    fn advance(&mut self) -> DocId {
        self.positive.advance()
    }
    fn seek(&mut self, target: DocId) -> DocId {
        self.positive.seek(target)
    }
    fn doc(&self) -> DocId {
        self.positive.doc()
    }
    fn size_hint(&self) -> u32 {
        self.positive.size_hint()
    }
}

impl Scorer for BoostingScorer {
    fn score(&mut self) -> Score {
        let doc = self.positive.doc();
        let score = self.positive.score();
        if doc != TERMINATED && self.negative.matches(doc) {
            score * self.negative_boost
        } else {
            score
        }
    }
}

/// A numeric column of `_fields` at one path, whatever numeric type tantivy gave it.
pub(crate) enum NumericColumn {
    I64(Column<i64>),
    U64(Column<u64>),
    F64(Column<f64>),
    Missing,
}

impl NumericColumn {
    pub(crate) fn open(reader: &SegmentReader, path: &str) -> tantivy::Result<NumericColumn> {
        let name = format!("_fields.{path}");
        let fast = reader.fast_fields();
        if let Some(column) = fast.column_opt::<i64>(&name)? {
            return Ok(NumericColumn::I64(column));
        }
        if let Some(column) = fast.column_opt::<f64>(&name)? {
            return Ok(NumericColumn::F64(column));
        }
        if let Some(column) = fast.column_opt::<u64>(&name)? {
            return Ok(NumericColumn::U64(column));
        }
        Ok(NumericColumn::Missing)
    }

    pub(crate) fn first(&self, doc: DocId) -> Option<f64> {
        match self {
            NumericColumn::I64(column) => column.first(doc).map(|v| v as f64),
            NumericColumn::U64(column) => column.first(doc).map(|v| v as f64),
            NumericColumn::F64(column) => column.first(doc),
            NumericColumn::Missing => None,
        }
    }
}

/// One function of a `function_score`, ready to evaluate on a field's numbers.
#[derive(Debug, Clone)]
pub(crate) enum ScoreFn {
    Weight,
    FieldValueFactor {
        path: String,
        factor: f64,
        modifier: Modifier,
        missing: Option<f64>,
    },
    /// Distances in the field's own unit (milliseconds for dates).
    Decay {
        shape: DecayShape,
        path: String,
        origin: f64,
        scale: f64,
        offset: f64,
        decay: f64,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct CompiledFunction {
    pub filter: Option<Arc<dyn Query>>,
    pub weight: f32,
    pub function: ScoreFn,
}

#[derive(Debug, Clone)]
pub(crate) struct FunctionScoreQuery {
    pub query: Arc<dyn Query>,
    pub functions: Vec<CompiledFunction>,
    pub score_mode: ScoreMode,
    pub boost_mode: BoostMode,
    pub max_boost: f32,
    pub min_score: Option<f32>,
}

impl Query for FunctionScoreQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let mut filters = Vec::with_capacity(self.functions.len());
        for function in &self.functions {
            filters.push(match &function.filter {
                Some(filter) => Some(filter.weight(disabled(enable_scoring))?),
                None => None,
            });
        }
        Ok(Box::new(FunctionScoreWeight {
            query: self.query.weight(enable_scoring)?,
            filters,
            spec: self.clone(),
        }))
    }
}

struct FunctionScoreWeight {
    query: Box<dyn Weight>,
    filters: Vec<Option<Box<dyn Weight>>>,
    spec: FunctionScoreQuery,
}

impl Weight for FunctionScoreWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let mut functions = Vec::with_capacity(self.spec.functions.len());
        for (function, filter) in self.spec.functions.iter().zip(&self.filters) {
            let filter = match filter {
                Some(weight) => Some(Matcher::new(weight.as_ref(), reader)?),
                None => None,
            };
            let column = match &function.function {
                ScoreFn::Weight => NumericColumn::Missing,
                ScoreFn::FieldValueFactor { path, .. } | ScoreFn::Decay { path, .. } => {
                    NumericColumn::open(reader, path)?
                }
            };
            functions.push((filter, column, function.clone()));
        }
        let scorer = FunctionScoreScorer {
            query: self.query.scorer(reader, 1.0)?,
            functions,
            score_mode: self.spec.score_mode,
            boost_mode: self.spec.boost_mode,
            max_boost: self.spec.max_boost,
            boost,
            current: 0.0,
            min_score: self.spec.min_score,
        };
        let mut scorer = scorer;
        scorer.settle();
        Ok(Box::new(scorer))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        explain_by_scorer(self, reader, doc, "function score")
    }
}

struct FunctionScoreScorer {
    query: Box<dyn Scorer>,
    functions: Vec<(Option<Matcher>, NumericColumn, CompiledFunction)>,
    score_mode: ScoreMode,
    boost_mode: BoostMode,
    max_boost: f32,
    boost: Score,
    /// The score of the current document, computed once when it is reached.
    current: Score,
    min_score: Option<f32>,
}

impl FunctionScoreScorer {
    /// Computes the current document's score; with `min_score`, moves on past documents below it.
    fn settle(&mut self) {
        loop {
            let doc = self.query.doc();
            if doc == TERMINATED {
                return;
            }
            self.current = self.compute(doc);
            match self.min_score {
                Some(min) if self.current < min => {
                    self.query.advance();
                }
                _ => return,
            }
        }
    }

    fn compute(&mut self, doc: DocId) -> Score {
        let query_score = self.query.score();
        let mut values: Vec<f64> = Vec::new();
        let mut weights_sum = 0.0f64;
        for (filter, column, function) in &mut self.functions {
            if let Some(filter) = filter
                && !filter.matches(doc)
            {
                continue;
            }
            let value = match &function.function {
                ScoreFn::Weight => 1.0,
                ScoreFn::FieldValueFactor {
                    factor,
                    modifier,
                    missing,
                    ..
                } => {
                    // Elasticsearch fails the request on a missing value without `missing`;
                    // Sluice leaves such a document's score alone (factor 1).
                    match column.first(doc).or(*missing) {
                        Some(value) => apply_modifier(*modifier, value * factor),
                        None => 1.0,
                    }
                }
                ScoreFn::Decay {
                    shape,
                    origin,
                    scale,
                    offset,
                    decay,
                    ..
                } => match column.first(doc) {
                    Some(value) => decay_value(*shape, value, *origin, *scale, *offset, *decay),
                    None => 1.0,
                },
            };
            let weight = f64::from(function.weight);
            weights_sum += weight;
            values.push(value * weight);
            if self.score_mode == ScoreMode::First {
                break;
            }
        }
        let function_score = if values.is_empty() {
            1.0
        } else {
            match self.score_mode {
                ScoreMode::Multiply => values.iter().product(),
                ScoreMode::Sum => values.iter().sum(),
                ScoreMode::Avg => values.iter().sum::<f64>() / weights_sum.max(f64::MIN_POSITIVE),
                ScoreMode::First => values.first().copied().unwrap_or(1.0),
                ScoreMode::Max => values.iter().copied().fold(f64::MIN, f64::max),
                ScoreMode::Min => values.iter().copied().fold(f64::MAX, f64::min),
            }
        };
        let function_score = (function_score as f32).min(self.max_boost);
        let combined = match self.boost_mode {
            BoostMode::Multiply => query_score * function_score,
            BoostMode::Replace => function_score,
            BoostMode::Sum => query_score + function_score,
            BoostMode::Avg => (query_score + function_score) / 2.0,
            BoostMode::Max => query_score.max(function_score),
            BoostMode::Min => query_score.min(function_score),
        };
        combined * self.boost
    }
}

fn apply_modifier(modifier: Modifier, value: f64) -> f64 {
    match modifier {
        Modifier::None => value,
        Modifier::Log => value.log10(),
        Modifier::Log1p => (value + 1.0).log10(),
        Modifier::Log2p => (value + 2.0).log10(),
        Modifier::Ln => value.ln(),
        Modifier::Ln1p => (value + 1.0).ln(),
        Modifier::Ln2p => (value + 2.0).ln(),
        Modifier::Square => value * value,
        Modifier::Sqrt => value.sqrt(),
        Modifier::Reciprocal => 1.0 / value,
    }
}

/// Elasticsearch's decay functions: 1 within `offset` of `origin`, `decay` at `scale` beyond it.
pub(crate) fn decay_value(
    shape: DecayShape,
    value: f64,
    origin: f64,
    scale: f64,
    offset: f64,
    decay: f64,
) -> f64 {
    let distance = ((value - origin).abs() - offset).max(0.0);
    match shape {
        DecayShape::Gauss => {
            let sigma_squared = -(scale * scale) / (2.0 * decay.ln());
            (-(distance * distance) / (2.0 * sigma_squared)).exp()
        }
        DecayShape::Exp => {
            let lambda = decay.ln() / scale;
            (lambda * distance).exp()
        }
        DecayShape::Linear => {
            let s = scale / (1.0 - decay);
            ((s - distance) / s).max(0.0)
        }
    }
}

impl DocSet for FunctionScoreScorer {
    fn advance(&mut self) -> DocId {
        self.query.advance();
        self.settle();
        self.query.doc()
    }
    fn seek(&mut self, target: DocId) -> DocId {
        self.query.seek(target);
        self.settle();
        self.query.doc()
    }
    fn doc(&self) -> DocId {
        self.query.doc()
    }
    fn size_hint(&self) -> u32 {
        self.query.size_hint()
    }
}

impl Scorer for FunctionScoreScorer {
    fn score(&mut self) -> Score {
        self.current
    }
}

/// Whether `weight` matches `doc` of `reader` (for `matched_queries`).
pub(crate) fn weight_matches(
    weight: &dyn Weight,
    reader: &SegmentReader,
    doc: DocId,
) -> tantivy::Result<bool> {
    Ok(Matcher::new(weight, reader)?.matches(doc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_functions_give_decay_at_scale() {
        for shape in [DecayShape::Gauss, DecayShape::Exp, DecayShape::Linear] {
            let at_origin = decay_value(shape, 10.0, 10.0, 5.0, 0.0, 0.5);
            let at_scale = decay_value(shape, 15.0, 10.0, 5.0, 0.0, 0.5);
            let in_offset = decay_value(shape, 12.0, 10.0, 5.0, 3.0, 0.5);
            assert!((at_origin - 1.0).abs() < 1e-9, "{shape:?}");
            assert!((at_scale - 0.5).abs() < 1e-9, "{shape:?}");
            assert!((in_offset - 1.0).abs() < 1e-9, "{shape:?}");
        }
    }
}
