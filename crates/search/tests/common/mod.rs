//! Helpers the search crate's integration tests share: an index in a temporary directory
//! filled with documents, the ids a query matches, and a `term` query. Each test file uses its
//! own part of them.
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

/// A new index with `mapping` holding `documents`, refreshed.
pub fn index_with(mapping: Value, documents: &[(&str, Value)]) -> TestIndex {
    let dir = tempfile::tempdir().unwrap();
    let index = Index::create(
        &dir.path().join("index"),
        "test",
        IndexSettings::default(),
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
