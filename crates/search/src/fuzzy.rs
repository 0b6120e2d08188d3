//! Fuzzy terms as Lucene's `FuzzyQuery` finds and scores them, which Elasticsearch's `fuzzy`
//! query and `match` with `fuzziness` use: the terms of the field within the allowed edits
//! (transpositions counting as one when asked) that start with the exact prefix, the best
//! `max_expansions` of them by similarity, each scored by BM25 times its similarity
//! (`1 - edits / min(term length, query length)`), all with the largest document frequency
//! among them ("blended" frequencies, so that a rare misspelling does not outrank the word).
//!
//! tantivy's own `FuzzyTermQuery` gives every match a constant score and cannot bound the
//! expansions; here the term dictionary of each segment is walked with tantivy's Levenshtein
//! automaton (behind the key prefix of a JSON path for fields in `_fields` and `_text`) and the
//! chosen terms become an ordinary boolean query of term queries.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, EnableScoring,
    FuzzyTermQuery, Occur, Query, TermQuery, Weight,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{Searcher, Term};
use tantivy_fst::Automaton;

use crate::error::Result;
use crate::query::QUERY_CLAUSES_MAX;

/// The most edits a fuzzy term allows (Lucene's `LevenshteinAutomata.MAXIMUM_SUPPORTED_DISTANCE`);
/// more are read as this many.
pub const FUZZY_EDITS_MAX: u8 = 2;

/// How one fuzzy term is expanded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FuzzyOptions {
    pub edits: u8,
    pub transpositions: bool,
    /// Leading characters that must match exactly.
    pub prefix_length: u32,
    /// Terms kept, the most similar first; never more than `QUERY_CLAUSES_MAX`.
    pub max_expansions: u32,
}

/// The query of the terms near `term`, whose value bytes end with `value` (the text the user
/// gave, normalized as the field's terms are). Text terms score BM25; a keyword field (no
/// length norms, one value per term) passes `keyword_score`, its score for a document
/// frequency.
pub(crate) fn fuzzy_query(
    searcher: &Searcher,
    term: &Term,
    value: &str,
    options: FuzzyOptions,
    keyword_score: Option<&dyn Fn(u64) -> f32>,
) -> Result<Box<dyn Query>> {
    let terms = expand(searcher, term, value, options)?;
    if terms.is_empty() {
        return Ok(Box::new(EmptyQuery));
    }
    let mut max_doc_freq = 0;
    for (term, _) in &terms {
        max_doc_freq = max_doc_freq.max(searcher.doc_freq(term)?);
    }
    if let Some(score) = keyword_score {
        let score = score(max_doc_freq);
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .into_iter()
            .map(|(term, boost)| {
                let query: Box<dyn Query> = Box::new(ConstScoreQuery::new(
                    Box::new(TermQuery::new(term, IndexRecordOption::Basic)),
                    score * boost,
                ));
                (Occur::Should, query)
            })
            .collect();
        return Ok(Box::new(BooleanQuery::new(clauses)));
    }
    let single = terms.len() == 1;
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = terms
        .into_iter()
        .map(|(term, boost)| {
            let query: Box<dyn Query> =
                Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
            let clause: Box<dyn Query> = if boost == 1.0 {
                query
            } else {
                Box::new(BoostQuery::new(query, boost))
            };
            (Occur::Should, clause)
        })
        .collect();
    if single {
        // One term keeps its own statistics, as in Lucene (nothing to blend).
        return Ok(clauses
            .pop()
            .map(|(_, query)| query)
            .unwrap_or_else(|| Box::new(EmptyQuery)));
    }
    Ok(Box::new(BlendedQuery {
        inner: Arc::new(BooleanQuery::new(clauses)),
        doc_freq: max_doc_freq,
    }))
}

/// The terms within `options.edits` of `value`, with their similarity boosts, best first.
fn expand(
    searcher: &Searcher,
    term: &Term,
    value: &str,
    options: FuzzyOptions,
) -> Result<Vec<(Term, f32)>> {
    let bytes = term.serialized_value_bytes();
    let Some(key_prefix) = bytes.strip_suffix(value.as_bytes()) else {
        return Ok(Vec::new());
    };
    let exact: String = value.chars().take(options.prefix_length as usize).collect();
    let mut lower = key_prefix.to_vec();
    lower.extend_from_slice(exact.as_bytes());
    let edits = options.edits.min(FUZZY_EDITS_MAX);
    let dfa = FuzzyTermQuery::new(
        Term::from_field_text(term.field(), value),
        edits,
        options.transpositions,
    )
    .automaton()?;
    let automaton = Prefixed {
        prefix: key_prefix,
        inner: &dfa,
    };
    let wanted: Vec<char> = value.chars().collect();
    let keep = (options.max_expansions as usize).clamp(1, QUERY_CLAUSES_MAX);
    // Candidates by key; pruned to the best `keep` whenever they double, so memory stays bounded
    // however many terms are near (a one-letter term with two edits matches most short ones).
    let mut candidates: HashMap<Vec<u8>, f32> = HashMap::new();
    for segment in searcher.segment_readers() {
        let inverted = segment.inverted_index(term.field())?;
        let mut stream = inverted
            .terms()
            .search(&automaton)
            .ge(&lower)
            .into_stream()
            .map_err(tantivy::TantivyError::from)?;
        while stream.advance() {
            let key = stream.key();
            if !key.starts_with(&lower) {
                // Keys are sorted: past the exact prefix, nothing more can match.
                break;
            }
            if candidates.contains_key(key) {
                continue;
            }
            let Some(found) = key
                .get(key_prefix.len()..)
                .and_then(|v| std::str::from_utf8(v).ok())
            else {
                continue;
            };
            let found: Vec<char> = found.chars().collect();
            let distance = edit_distance(&wanted, &found, options.transpositions);
            if distance > usize::from(edits) {
                continue;
            }
            candidates.insert(key.to_vec(), similarity(distance, &wanted, &found));
            if candidates.len() >= keep * 2 {
                prune(&mut candidates, keep);
            }
        }
    }
    prune(&mut candidates, keep);
    let mut best: Vec<(Vec<u8>, f32)> = candidates.into_iter().collect();
    best.sort_by(by_boost_then_key);
    Ok(best
        .into_iter()
        .map(|(key, boost)| {
            let mut found = term.clone();
            found.set_bytes(&key);
            (found, boost)
        })
        .collect())
}

/// Lucene's `FuzzyTermsEnum` boost: 1 for the term itself, else one minus the edits over the
/// shorter length (never below zero).
fn similarity(distance: usize, wanted: &[char], found: &[char]) -> f32 {
    if distance == 0 {
        return 1.0;
    }
    let shorter = wanted.len().min(found.len());
    if shorter == 0 {
        return 0.0;
    }
    (1.0 - distance as f32 / shorter as f32).max(0.0)
}

fn by_boost_then_key(a: &(Vec<u8>, f32), b: &(Vec<u8>, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0))
}

/// Keeps the `keep` most similar candidates (ties: the smaller term, as Lucene's queue does).
fn prune(candidates: &mut HashMap<Vec<u8>, f32>, keep: usize) {
    if candidates.len() <= keep {
        return;
    }
    let mut all: Vec<(Vec<u8>, f32)> = candidates.drain().collect();
    all.sort_by(by_boost_then_key);
    all.truncate(keep);
    candidates.extend(all);
}

/// Levenshtein distance, or the optimal string alignment distance (adjacent transpositions
/// count as one edit) with `transpositions`, over characters.
fn edit_distance(a: &[char], b: &[char], transpositions: bool) -> usize {
    // Three rows: two back for transpositions, the previous, the current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current: Vec<usize> = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            let mut best = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
            if transpositions
                && i > 0
                && j > 0
                && a.get(i - 1) == Some(cb)
                && b.get(j - 1) == Some(ca)
            {
                best = best.min(before[j - 1] + 1);
            }
            current[j + 1] = best;
        }
        std::mem::swap(&mut before, &mut previous);
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

/// An automaton that first reads `prefix` exactly (a JSON path's key prefix), then `inner`.
struct Prefixed<'a, A> {
    prefix: &'a [u8],
    inner: &'a A,
}

#[derive(Clone)]
enum PrefixedState<S> {
    /// This many bytes of the prefix read.
    Prefix(usize),
    Inner(S),
    Dead,
}

impl<A: Automaton> Automaton for Prefixed<'_, A>
where
    A::State: Clone,
{
    type State = PrefixedState<A::State>;

    fn start(&self) -> Self::State {
        if self.prefix.is_empty() {
            PrefixedState::Inner(self.inner.start())
        } else {
            PrefixedState::Prefix(0)
        }
    }

    fn is_match(&self, state: &Self::State) -> bool {
        match state {
            PrefixedState::Inner(inner) => self.inner.is_match(inner),
            _ => false,
        }
    }

    fn can_match(&self, state: &Self::State) -> bool {
        match state {
            PrefixedState::Prefix(_) => true,
            PrefixedState::Inner(inner) => self.inner.can_match(inner),
            PrefixedState::Dead => false,
        }
    }

    fn accept(&self, state: &Self::State, byte: u8) -> Self::State {
        match state {
            PrefixedState::Prefix(read) => match self.prefix.get(*read) {
                Some(expected) if *expected == byte => {
                    if read + 1 == self.prefix.len() {
                        PrefixedState::Inner(self.inner.start())
                    } else {
                        PrefixedState::Prefix(read + 1)
                    }
                }
                _ => PrefixedState::Dead,
            },
            PrefixedState::Inner(inner) => PrefixedState::Inner(self.inner.accept(inner, byte)),
            PrefixedState::Dead => PrefixedState::Dead,
        }
    }
}

/// Scores `inner` as if each of its terms had `doc_freq` documents.
#[derive(Clone)]
struct BlendedQuery {
    inner: Arc<dyn Query>,
    doc_freq: u64,
}

impl std::fmt::Debug for BlendedQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blended(df={}, {:?})", self.doc_freq, self.inner)
    }
}

struct BlendedStatistics<'a> {
    outer: &'a dyn Bm25StatisticsProvider,
    doc_freq: u64,
}

impl Bm25StatisticsProvider for BlendedStatistics<'_> {
    fn total_num_tokens(&self, field: tantivy::schema::Field) -> tantivy::Result<u64> {
        self.outer.total_num_tokens(field)
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        self.outer.total_num_docs()
    }

    fn doc_freq(&self, _term: &Term) -> tantivy::Result<u64> {
        Ok(self.doc_freq)
    }
}

impl Query for BlendedQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        match enable_scoring {
            EnableScoring::Enabled {
                searcher,
                statistics_provider,
            } => {
                let statistics = BlendedStatistics {
                    outer: statistics_provider,
                    doc_freq: self.doc_freq,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: &str, b: &str, transpositions: bool) -> usize {
        let a: Vec<char> = a.chars().collect();
        let b: Vec<char> = b.chars().collect();
        edit_distance(&a, &b, transpositions)
    }

    #[test]
    fn edit_distances_count_transpositions_when_asked() {
        assert_eq!(distance("quick", "quick", true), 0);
        assert_eq!(distance("quikc", "quick", true), 1);
        assert_eq!(distance("quikc", "quick", false), 2);
        assert_eq!(distance("", "ab", true), 2);
        assert_eq!(distance("kitten", "sitting", false), 3);
        assert_eq!(distance("café", "cafe", false), 1);
    }

    #[test]
    fn similarity_is_lucenes_boost() {
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(similarity(0, &chars("ab"), &chars("ab")), 1.0);
        assert!((similarity(1, &chars("quikc"), &chars("quick")) - 0.8).abs() < 1e-6);
        assert!((similarity(2, &chars("abc"), &chars("abcde")) - (1.0 / 3.0)).abs() < 1e-6);
        assert_eq!(similarity(2, &chars("a"), &chars("abc")), 0.0);
    }
}
