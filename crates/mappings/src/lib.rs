//! Event-source mappings: Lambda's consumers of Kinesis-like streams and table streams.
//!
//! [`EventSourceMappings`] keeps the mappings of a node in a versioned catalog and runs one
//! worker thread per mapping and source shard. A worker reads its [`EventSource`] in order,
//! builds batches (`BatchSize`, `MaximumBatchingWindowInSeconds`, up to
//! `ParallelizationFactor` of them at once in lanes by partition key), drops what the
//! `FilterCriteria` patterns do not match ([`filter`]), invokes the function through the
//! [`Invoker`] trait with events in Lambda's shapes, and moves the source's checkpoint only past
//! records that are done: the function succeeded on them, they were filtered out, or they were
//! given up on (retries or age exhausted) and described on the OnFailure stream. A crash
//! therefore redelivers and never skips.
//!
//! This crate knows nothing of HTTP, of Lambda's API shapes, or of how functions run: `node`
//! adapts the function host to [`Invoker`], the API resolves ARNs into [`SourceSpec`]s.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod config;
mod error;
pub mod filter;
mod limits;
mod manager;
mod source;
mod worker;

#[cfg(test)]
mod tests;

pub use config::{MappingConfig, SourceSpec, StartingPosition};
pub use error::{MappingError, Result};
pub use limits::*;
pub use manager::{CATALOG_FORMAT_VERSION, EventSourceMappings, MappingDescription};
pub use source::{EventSource, SourceRecord, consumer_name};
pub use worker::{InvokeFailure, Invoker};

/// The account named in ARNs of events.
pub const ACCOUNT_ID: &str = "000000000000";
