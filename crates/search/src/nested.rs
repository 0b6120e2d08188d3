//! Nested documents, kept as Lucene's block join keeps them.
//!
//! Each object of a `nested` field is indexed as a hidden document of its own, written in the
//! same tantivy operation group as its document and just before it: tantivy gives one group
//! consecutive document ids in one segment (`IndexWriter::run` sends the group to one indexing
//! thread as one batch, and a segment is flushed only between batches), and merges keep the
//! order of documents. So a segment holds blocks: a document's nested objects, each after its
//! own nested objects, then the document itself. A hidden document carries the path of its
//! nested field in the `_nested` field, the `_id` of its document (so that deleting or
//! replacing the document deletes the block) and, as its stored `_source`, where it sits in the
//! document's source (`_nested` of inner hits); it has no `_version`, which is how id lookups
//! tell it from its document.
//!
//! A *level* is the root (documents without `_nested`) or one nested path. The parent of a
//! hidden document at some level above it is the first document of that level after it; the
//! children of a document are the documents of the child path between the previous document
//! of the document's level and the document itself. Top-level queries exclude hidden documents
//! (`Index::without_tombstones`); the `nested` query ([`NestedQuery`]) maps matching children to
//! their parents, and aggregations move between levels with [`children_of`] and [`parents_of`].

use std::sync::Arc;

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

use crate::error::{Result, SearchError};

/// Where a nested object sits in its document's source, as inner hits show it in `_nested`:
/// `{"field", "offset", "_nested": {…}}`, outermost first.
pub fn identity_json(identity: &[(String, usize)]) -> serde_json::Value {
    identity
        .iter()
        .rev()
        .fold(serde_json::Value::Null, |inner, (field, offset)| {
            let mut level = serde_json::json!({"field": field, "offset": offset});
            if !inner.is_null() {
                level["_nested"] = inner;
            }
            level
        })
}

/// The nested object that `identity` (as [`identity_json`] writes it) names in `source`.
pub fn object_at(
    source: &serde_json::Value,
    identity: &serde_json::Value,
) -> Option<serde_json::Value> {
    let mut current = source;
    let mut level = identity;
    // Bounded by the identity's depth, which the mapping depth bounds.
    loop {
        let field = level.get("field")?.as_str()?;
        let offset = usize::try_from(level.get("offset")?.as_u64()?).ok()?;
        let value = field_value(current, field)?;
        let mut objects = Vec::new();
        flatten_objects(value, &mut objects, 0);
        current = objects.into_iter().nth(offset)?;
        match level.get("_nested") {
            Some(inner) => level = inner,
            None => return Some(current.clone()),
        }
    }
}

/// The value at a dotted `field` of `object`, whether the source spells it as nested objects
/// or with dots in keys.
fn field_value<'v>(object: &'v serde_json::Value, field: &str) -> Option<&'v serde_json::Value> {
    let map = object.as_object()?;
    if let Some(value) = map.get(field) {
        return Some(value);
    }
    let mut split = field.char_indices().filter(|(_, c)| *c == '.');
    split.find_map(|(at, _)| {
        let head = field.get(..at)?;
        let tail = field.get(at + 1..)?;
        field_value(map.get(head)?, tail)
    })
}

/// The objects of a nested field's value in the order parsing met them: arrays flattened,
/// nulls skipped.
fn flatten_objects<'v>(
    value: &'v serde_json::Value,
    out: &mut Vec<&'v serde_json::Value>,
    depth: usize,
) {
    match value {
        serde_json::Value::Object(_) => out.push(value),
        serde_json::Value::Array(items) if depth < crate::mapping::DEPTH_MAX => {
            for item in items {
                flatten_objects(item, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// How the scores of a parent's matching children become the parent's (`score_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NestedScoreMode {
    Avg,
    Max,
    Min,
    Sum,
    /// The parent scores 0.
    None,
}

impl NestedScoreMode {
    pub fn parse(name: &str) -> Option<NestedScoreMode> {
        Some(match name {
            "avg" => NestedScoreMode::Avg,
            "max" => NestedScoreMode::Max,
            "min" => NestedScoreMode::Min,
            "sum" | "total" => NestedScoreMode::Sum,
            "none" => NestedScoreMode::None,
            _ => return None,
        })
    }
}

/// A set of a segment's document ids, with the neighbour searches block joins need.
#[derive(Debug, Clone)]
pub(crate) struct DocBits {
    words: Vec<u64>,
}

impl DocBits {
    fn empty(max_doc: DocId) -> DocBits {
        DocBits {
            words: vec![0; (max_doc as usize).div_ceil(64)],
        }
    }

    fn full(max_doc: DocId) -> DocBits {
        let mut bits = DocBits::empty(max_doc);
        for doc in 0..max_doc {
            bits.insert(doc);
        }
        bits
    }

    fn insert(&mut self, doc: DocId) {
        if let Some(word) = self.words.get_mut(doc as usize / 64) {
            *word |= 1 << (doc % 64);
        }
    }

    fn remove(&mut self, doc: DocId) {
        if let Some(word) = self.words.get_mut(doc as usize / 64) {
            *word &= !(1 << (doc % 64));
        }
    }

    pub(crate) fn contains(&self, doc: DocId) -> bool {
        self.words
            .get(doc as usize / 64)
            .is_some_and(|word| word & (1 << (doc % 64)) != 0)
    }

    /// The first member at or after `from`.
    pub(crate) fn next_from(&self, from: DocId) -> Option<DocId> {
        let mut index = from as usize / 64;
        let mut word = self.words.get(index)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some((index * 64) as DocId + word.trailing_zeros());
            }
            index += 1;
            word = *self.words.get(index)?;
        }
    }

    /// The last member before `before`.
    pub(crate) fn previous_before(&self, before: DocId) -> Option<DocId> {
        if before == 0 {
            return None;
        }
        let last = before - 1;
        let mut index = last as usize / 64;
        let shift = 63 - (last % 64);
        let mut word = self.words.get(index).copied().unwrap_or(0) & (u64::MAX >> shift);
        loop {
            if word != 0 {
                return Some((index * 64) as DocId + 63 - word.leading_zeros());
            }
            index = index.checked_sub(1)?;
            word = self.words.get(index).copied().unwrap_or(0);
        }
    }
}

fn for_each_posting(
    reader: &SegmentReader,
    field: Field,
    term: Option<&Term>,
    visit: &mut dyn FnMut(DocId),
) -> Result<()> {
    let inverted = reader.inverted_index(field)?;
    let corrupt = |e: std::io::Error| SearchError::Corrupt {
        what: "_nested postings".into(),
        reason: e.to_string(),
    };
    let mut walk = |mut postings: tantivy::postings::SegmentPostings| {
        let mut doc = postings.doc();
        while doc != TERMINATED {
            visit(doc);
            doc = postings.advance();
        }
    };
    match term {
        Some(term) => {
            if let Some(postings) = inverted
                .read_postings(term, IndexRecordOption::Basic)
                .map_err(corrupt)?
            {
                walk(postings);
            }
        }
        None => {
            let mut stream = inverted.terms().stream().map_err(corrupt)?;
            while stream.advance() {
                let postings = inverted
                    .read_postings_from_terminfo(stream.value(), IndexRecordOption::Basic)
                    .map_err(corrupt)?;
                walk(postings);
            }
        }
    }
    Ok(())
}

/// The documents of a segment at one level: hidden documents of nested path `level`, or the
/// root documents when `level` is `None`.
pub(crate) fn level_bits(
    reader: &SegmentReader,
    nested_field: Field,
    level: Option<&str>,
) -> Result<DocBits> {
    let max_doc = reader.max_doc();
    Ok(match level {
        Some(path) => {
            let mut bits = DocBits::empty(max_doc);
            let term = Term::from_field_text(nested_field, path);
            for_each_posting(reader, nested_field, Some(&term), &mut |doc| {
                bits.insert(doc)
            })?;
            bits
        }
        None => {
            let mut bits = DocBits::full(max_doc);
            for_each_posting(reader, nested_field, None, &mut |doc| bits.remove(doc))?;
            bits
        }
    })
}

/// The documents of `children` (a level's bits) under each document of `parents` (sorted), in
/// order; `parent_level` is the level of `parents`.
pub(crate) fn children_of(
    parents: &[DocId],
    parent_level: &DocBits,
    children: &DocBits,
) -> Vec<DocId> {
    let mut found = Vec::new();
    for &parent in parents {
        let start = parent_level.previous_before(parent).map_or(0, |p| p + 1);
        let mut doc = start;
        while let Some(child) = children.next_from(doc).filter(|child| *child < parent) {
            found.push(child);
            doc = child + 1;
        }
    }
    found
}

/// The document of level `parent_level` that holds each of `children` (sorted), each once, in
/// order.
pub(crate) fn parents_of(children: &[DocId], parent_level: &DocBits) -> Vec<DocId> {
    let mut found: Vec<DocId> = Vec::new();
    for &child in children {
        if let Some(parent) = parent_level.next_from(child + 1)
            && found.last() != Some(&parent)
        {
            found.push(parent);
        }
    }
    found
}

/// The `nested` query: the documents of `parent_level` with children of `path` that `child`
/// matches, scored from those children by `score_mode`.
#[derive(Debug, Clone)]
pub(crate) struct NestedQuery {
    pub child: Arc<dyn Query>,
    pub nested_field: Field,
    pub path: String,
    pub parent_level: Option<String>,
    pub score_mode: NestedScoreMode,
}

impl Query for NestedQuery {
    fn weight(&self, enable_scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(NestedWeight {
            child: self.child.weight(enable_scoring)?,
            nested_field: self.nested_field,
            path: self.path.clone(),
            parent_level: self.parent_level.clone(),
            score_mode: self.score_mode,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.child.query_terms(visitor);
    }
}

struct NestedWeight {
    child: Box<dyn Weight>,
    nested_field: Field,
    path: String,
    parent_level: Option<String>,
    score_mode: NestedScoreMode,
}

fn tantivy_error(error: SearchError) -> tantivy::TantivyError {
    match error {
        SearchError::Tantivy(error) => error,
        other => tantivy::TantivyError::InternalError(other.to_string()),
    }
}

impl NestedWeight {
    /// Every parent of the segment with its score, in document order.
    fn parents(
        &self,
        reader: &SegmentReader,
        boost: Score,
    ) -> tantivy::Result<Vec<(DocId, Score)>> {
        let children =
            level_bits(reader, self.nested_field, Some(&self.path)).map_err(tantivy_error)?;
        let parents = level_bits(reader, self.nested_field, self.parent_level.as_deref())
            .map_err(tantivy_error)?;
        let mut scorer = self.child.scorer(reader, boost)?;
        let mut found: Vec<(DocId, Score)> = Vec::new();
        // The parent being gathered: its id, its children's score total, extreme, and count.
        let mut current: Option<(DocId, Score, Score, u32)> = None;
        let finish = |entry: (DocId, Score, Score, u32), found: &mut Vec<(DocId, Score)>| {
            let (parent, total, extreme, count) = entry;
            let score = match self.score_mode {
                NestedScoreMode::Avg => total / count.max(1) as Score,
                NestedScoreMode::Sum => total,
                NestedScoreMode::Max | NestedScoreMode::Min => extreme,
                NestedScoreMode::None => 0.0,
            };
            found.push((parent, score));
        };
        let mut doc = scorer.doc();
        while doc != TERMINATED {
            if children.contains(doc)
                && let Some(parent) = parents.next_from(doc + 1)
            {
                let score = scorer.score();
                current = match current {
                    Some((p, total, extreme, count)) if p == parent => {
                        let extreme = match self.score_mode {
                            NestedScoreMode::Min => extreme.min(score),
                            _ => extreme.max(score),
                        };
                        Some((p, total + score, extreme, count + 1))
                    }
                    previous => {
                        if let Some(previous) = previous {
                            finish(previous, &mut found);
                        }
                        Some((parent, score, score, 1))
                    }
                };
            }
            doc = scorer.advance();
        }
        if let Some(last) = current {
            finish(last, &mut found);
        }
        Ok(found)
    }
}

impl Weight for NestedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(ScoredDocs {
            docs: self.parents(reader, boost)?,
            position: 0,
        }))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let parents = self.parents(reader, 1.0)?;
        match parents.iter().find(|(parent, _)| *parent == doc) {
            Some((_, score)) => Ok(Explanation::new_with_string(
                format!(
                    "score mode {:?} of the matching nested objects of [{}]",
                    self.score_mode, self.path
                ),
                *score,
            )),
            None => Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            ))),
        }
    }
}

/// Documents with scores, decided ahead, as a scorer.
struct ScoredDocs {
    docs: Vec<(DocId, Score)>,
    position: usize,
}

impl DocSet for ScoredDocs {
    fn advance(&mut self) -> DocId {
        self.position += 1;
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs
            .get(self.position)
            .map_or(TERMINATED, |(doc, _)| *doc)
    }

    fn size_hint(&self) -> u32 {
        self.docs.len().saturating_sub(self.position) as u32
    }
}

impl Scorer for ScoredDocs {
    fn score(&mut self) -> Score {
        self.docs
            .get(self.position)
            .map_or(0.0, |(_, score)| *score)
    }
}

/// The children of `parent` (at `parent_level`) under `path` that `child` matches, with their
/// scores, in document order: the hits of inner hits.
pub(crate) fn matching_children(
    reader: &SegmentReader,
    child: &dyn Weight,
    nested_field: Field,
    path: &str,
    parent_level: Option<&str>,
    parent: DocId,
) -> Result<Vec<(DocId, Score)>> {
    let children = level_bits(reader, nested_field, Some(path))?;
    let parents = level_bits(reader, nested_field, parent_level)?;
    let start = parents.previous_before(parent).map_or(0, |p| p + 1);
    let mut scorer = child.scorer(reader, 1.0)?;
    let mut found = Vec::new();
    let mut doc = scorer.doc();
    if doc < start {
        doc = scorer.seek(start);
    }
    while doc != TERMINATED && doc < parent {
        if children.contains(doc) {
            found.push((doc, scorer.score()));
        }
        doc = scorer.advance();
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(max_doc: DocId, members: &[DocId]) -> DocBits {
        let mut bits = DocBits::empty(max_doc);
        for doc in members {
            bits.insert(*doc);
        }
        bits
    }

    #[test]
    fn neighbours_across_words() {
        let set = bits(200, &[3, 64, 130, 199]);
        assert_eq!(set.next_from(0), Some(3));
        assert_eq!(set.next_from(4), Some(64));
        assert_eq!(set.next_from(65), Some(130));
        assert_eq!(set.next_from(199), Some(199));
        assert_eq!(set.next_from(200), None);
        assert_eq!(set.previous_before(0), None);
        assert_eq!(set.previous_before(3), None);
        assert_eq!(set.previous_before(4), Some(3));
        assert_eq!(set.previous_before(130), Some(64));
        assert_eq!(set.previous_before(200), Some(199));
        assert!(set.contains(64) && !set.contains(65));
    }

    #[test]
    fn blocks_map_children_and_parents() {
        // Two documents: [a0, a1, root0], [a2, root1], with a root without children, root2.
        let roots = bits(6, &[2, 4, 5]);
        let children = bits(6, &[0, 1, 3]);
        assert_eq!(children_of(&[2, 4, 5], &roots, &children), vec![0, 1, 3]);
        assert_eq!(children_of(&[4], &roots, &children), vec![3]);
        assert_eq!(children_of(&[5], &roots, &children), Vec::<DocId>::new());
        assert_eq!(parents_of(&[0, 1, 3], &roots), vec![2, 4]);
        assert_eq!(parents_of(&[1], &roots), vec![2]);
    }
}
