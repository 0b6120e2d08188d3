//! `sluice-tables`: DynamoDB-like tables and their streams. It owns typed attribute values
//! ([`AttributeValue`], `N` as an exact 38-digit [`Number`]), items and their limits, primary
//! keys and their order-preserving encoding, and durable storage ([`Tables`]) in which every
//! acknowledged change and its stream record are one fsynced write-ahead log record. Wire shapes (DynamoDB's
//! JSON, base64, error bodies) belong to the API; this crate's errors carry DynamoDB's texts.
//!
//! Entry points: [`Tables::open`], then [`Tables::create_table`], [`Tables::write`] (put or
//! delete with an optional [`Check`]), [`Tables::get_item`]; a table's changes are followed
//! with [`Tables::read_stream`] from a remembered sequence number. The on-disk format is
//! specified in `docs/tables-format.md`.
//!
//! Every call is blocking (writes wait for an fsync): async callers use `spawn_blocking`.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod applier;
mod codec;
mod error;
pub mod expression;
mod index;
mod number;
mod pending;
mod schema;
mod store;
mod stream;
mod value;
mod wal;

#[cfg(test)]
mod index_tests;
#[cfg(test)]
mod tests;

pub use crate::{
    codec::{decode_item, encode_item, encode_key},
    error::{CancellationReason, Result, TablesError},
    index::{
        GLOBAL_INDEXES_MAX, IndexRequest, LOCAL_INDEXES_MAX, PROJECTED_ATTRIBUTES_MAX, Projection,
        ProjectionType, SecondaryIndex,
    },
    number::{NUMBER_DIGITS_MAX, NUMBER_EXPONENT_MAX, NUMBER_EXPONENT_MIN, Number},
    schema::{
        CreateTable, KeyAttribute, KeySchema, PARTITION_KEY_BYTES_MAX, SEARCH_INDEX_TAG,
        SORT_KEY_BYTES_MAX, StreamInfo, StreamViewType, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX,
        TAGS_MAX, TTL_ATTRIBUTE_BYTES_MAX, TTL_PAST_SECONDS_MAX, TableDefinition, TableDescription,
        ttl_expired, validate_table_name,
    },
    store::{
        Change, Check, Deliver, FORMAT_VERSION, GROUP_WRITES_MAX, IndexUpdate,
        LIST_TABLES_PAGE_MAX, PAGE_BYTES_MAX, PAGE_ITEMS_MAX, QueryRequest, SCAN_SEGMENTS_MAX,
        STREAM_READ_MAX, ScanPage, ScanRequest, Submitted, TABLES_MAX, TTL_EXPIRE_GROUP_MAX,
        Tables, Write, WriteOutcome,
    },
    stream::{EventName, STREAM_RETENTION_MS, StreamRecord, StreamSummary},
    value::{
        AttributeValue, ITEM_BYTES_MAX, Item, NESTING_DEPTH_MAX, ScalarType, check_item_limits,
        item_size_bytes,
    },
};
