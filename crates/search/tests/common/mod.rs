//! Helpers the search crate's integration tests share: an index in a temporary directory
//! filled with documents (with settings, deleted from, closed and reopened), the ids a query
//! matches, and a `term` query. Each test file uses its own part of them.
#![allow(dead_code)]

use std::sync::Arc;

use serde_json::Value;
use sluice_search::query::Query;
use sluice_search::{Index, IndexSettings, Mappings, SearchError, WriteRequest};

/// An index and the temporary directory it lives in (removed when dropped).
pub struct TestIndex {
    pub _dir: tempfile::TempDir,
    pub index: Arc<Index>,
}

/// A test index is used as the index it holds.
impl std::ops::Deref for TestIndex {
    type Target = Index;

    fn deref(&self) -> &Index {
        &self.index
    }
}

/// Writes `documents` (id, source) into `index`; the first refusal is the error.
pub fn write(index: &Index, documents: &[(&str, Value)]) -> Result<(), SearchError> {
    let requests = documents
        .iter()
        .map(|(id, document)| WriteRequest::Index {
            id: Some(id.to_string()),
            source: Arc::from(document.to_string().as_bytes()),
            document: document.clone(),
            condition: Default::default(),
        })
        .collect();
    for outcome in index.write(requests) {
        outcome?;
    }
    Ok(())
}

/// Deletes the document `id` from `index`.
pub fn delete(index: &Index, id: &str) -> Result<(), SearchError> {
    for outcome in index.write(vec![WriteRequest::Delete {
        id: id.to_string(),
        condition: Default::default(),
    }]) {
        outcome?;
    }
    Ok(())
}

/// A new index with `mapping` holding `documents`, refreshed.
pub fn index_with(mapping: Value, documents: &[(&str, Value)]) -> TestIndex {
    index_with_settings(mapping, serde_json::json!({}), documents)
}

/// A new index with `mapping` and index `settings` (as the settings API reads them) holding
/// `documents`, refreshed.
pub fn index_with_settings(
    mapping: Value,
    settings: Value,
    documents: &[(&str, Value)],
) -> TestIndex {
    let dir = tempfile::tempdir().unwrap();
    let mut index_settings = IndexSettings::default();
    index_settings.update(&settings, true).unwrap();
    let index = Index::create(
        &dir.path().join("index"),
        "test",
        index_settings,
        Mappings::from_json(&mapping).unwrap(),
    )
    .unwrap();
    write(&index, documents).unwrap();
    index.refresh().unwrap();
    TestIndex {
        _dir: dir,
        index: Arc::new(index),
    }
}

impl TestIndex {
    /// Closes the index without a last commit, as a crash leaves it (writes since the last
    /// refresh only in the translog), and opens it again from its directory.
    pub fn reopen(self) -> TestIndex {
        self.index.close(false).unwrap();
        drop(self.index);
        let index = Index::open(&self._dir.path().join("index")).unwrap();
        TestIndex {
            _dir: self._dir,
            index: Arc::new(index),
        }
    }

    /// The ids a query matches (the first 100), sorted.
    pub fn ids(&self, query: &Query) -> Vec<String> {
        let mut ids: Vec<String> = self
            .index
            .search(query, 0, 100)
            .unwrap()
            .hits
            .into_iter()
            .map(|hit| hit.id)
            .collect();
        ids.sort();
        ids
    }
}

pub fn term(field: &str, value: Value) -> Query {
    Query::Term {
        field: field.into(),
        value,
        case_insensitive: false,
        boost: 1.0,
    }
}

/// `documents` split over two indices (`example-0`, `example-1`, every other document), each
/// written in two refreshed batches, so two segments: what a merge across indices and segments
/// is tested on.
pub fn split_indices(
    dir: &std::path::Path,
    mappings: fn() -> Mappings,
    documents: &[Value],
) -> Vec<Arc<Index>> {
    let mut out = Vec::new();
    for part in 0..2 {
        let index = Index::create(
            &dir.join(format!("i{part}")),
            &format!("example-{part}"),
            IndexSettings::default(),
            mappings(),
        )
        .unwrap();
        let mine: Vec<&Value> = documents.iter().skip(part).step_by(2).collect();
        for chunk in mine.chunks(mine.len().div_ceil(2).max(1)) {
            let requests = chunk
                .iter()
                .map(|document| WriteRequest::Index {
                    id: None,
                    source: Arc::from(document.to_string().as_bytes()),
                    document: (*document).clone(),
                    condition: Default::default(),
                })
                .collect();
            for outcome in index.write(requests) {
                outcome.unwrap();
            }
            index.refresh().unwrap();
        }
        out.push(Arc::new(index));
    }
    out
}
