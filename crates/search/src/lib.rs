//! The search engine: Elasticsearch-compatible indices on tantivy.
//!
//! An [`Indices`] catalog owns a directory of [`Index`]es. Each index keeps documents with
//! Elasticsearch's versioning rules and durable tombstones, a translog that makes every
//! acknowledged write durable, dynamic mappings, and refresh. This crate knows nothing about
//! HTTP or the wire shape of requests: the `api` crate turns requests into the types here.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod aggs;
pub mod aliases;
pub mod analysis;
mod catalog;
mod compile;
pub mod date;
pub mod date_math;
mod error;
pub mod field_security;
mod fuzzy;
pub mod geo;
pub mod geo_query;
pub mod highlight;
mod id_filter;
mod ids;
mod index;
mod indices;
pub mod ip;
pub mod mapping;
pub mod nested;
pub mod pattern;
pub mod query;
pub mod query_string;
pub mod resolve;
mod schema;
mod scoring;
pub mod settings;
pub mod snapshots;
pub mod sort;
pub mod templates;
mod translog;
pub mod version;

pub use aliases::{AliasAction, AliasActionResult, AliasMetadata};
pub use analysis::Analyzer;
pub use catalog::Catalog;
pub use error::{Result, SearchError};
pub use ids::new_document_id;
pub use index::{
    Hit, ID_BYTES_MAX, Index, InnerHit, InnerHitsResult, Scan, ScriptOutcome, SearchHits,
    SearchPage, StoredDocument, UpdateRequest, UpdateScript, WriteOutcome, WriteRequest,
    WriteResult,
};
pub use indices::{CreateIndex, Indices, ResolvedIndex, validate_index_name};
pub use mapping::Mappings;
pub use query::Query;
pub use resolve::{IndicesOptions, ResolvedName};
pub use settings::IndexSettings;
pub use snapshots::{SearcherSnapshot, Snapshots};
pub use sort::{
    FieldSort, GeoDistanceSort, ScriptSort, ScriptSortType, SortKey, SortMissing, SortMode,
    SortOrder, SortValue,
};
