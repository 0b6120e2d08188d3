//! The search engine: Elasticsearch-compatible indices on tantivy.
//!
//! An [`Indices`] catalog owns a directory of [`Index`]es. Each index keeps documents with
//! Elasticsearch's versioning rules and durable tombstones, a translog that makes every
//! acknowledged write durable, dynamic mappings, and refresh. This crate knows nothing about
//! HTTP or the wire shape of requests: the `api` crate turns requests into the types here.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod analysis;
mod compile;
pub mod date;
pub mod date_math;
mod error;
mod ids;
mod index;
mod indices;
pub mod mapping;
pub mod query;
pub mod query_string;
mod schema;
mod scoring;
pub mod settings;
mod translog;
pub mod version;

pub use analysis::Analyzer;
pub use error::{Result, SearchError};
pub use ids::new_document_id;
pub use index::{
    Hit, ID_BYTES_MAX, Index, SearchHits, StoredDocument, UpdateRequest, WriteOutcome,
    WriteRequest, WriteResult,
};
pub use indices::{Indices, validate_index_name};
pub use mapping::Mappings;
pub use query::Query;
pub use settings::IndexSettings;
