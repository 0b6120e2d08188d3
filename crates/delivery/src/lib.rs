//! `sluice-delivery`: delivery streams, the Firehose-like stage between a durable log and a
//! destination. A [`DeliveryStream`] reads its source (its own DirectPut log stream, or an
//! existing Kinesis-like stream) with a durable consumer checkpoint, buffers records by size and
//! interval, runs them through Lambda-style processors (a [`Transformer`]), writes them into a
//! search index (with rotation, document ids from log positions, retries for a bounded
//! duration; Sluice's own index, or an external Elasticsearch/OpenSearch cluster through
//! `sluice-cluster`'s bulk client) or into S3 (the local directory `data_dir/s3` by default, real S3 through
//! `sluice-objects` when configured), backs up all or failed documents, and only then
//! moves its checkpoint. A crash at any point redelivers, and ids derived from log positions make
//! the redelivery idempotent.
//!
//! [`DeliveryStreams`] is the catalog (persisted under the data directory) and runs one worker
//! thread per stream. This crate knows nothing about HTTP or AWS wire shapes, nor how functions
//! run: the node adapts the function host to [`Transformer`]. Time comes only from the
//! [`sluice_log::Clock`] it is given, so tests move buffering intervals, rotation and retries.

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

mod backup;
mod config;
mod error;
mod ids;
pub mod limits;
mod manager;
mod metrics;
mod rotation;
mod stream;
mod transform;

#[cfg(test)]
mod tests;

pub use crate::{
    backup::{object_key, object_uuid},
    config::{
        BackupMode, BufferingHints, DeliveryStreamConfig, Destination, DocumentIdOption,
        LOCAL_ACCOUNT_ID, LambdaProcessor, S3Destination, S3Location, SearchDestination,
        SearchFlavor, Source, bucket_name_from_arn, is_local_domain_arn, stream_arn_parts,
        stream_name_from_arn,
    },
    error::{DeliveryError, Result},
    ids::document_id,
    manager::{DeliveryStreams, DeliveryStreamsOptions, IndexAuthorizer, StartFailure, StartPhase},
    metrics::{Metrics, MetricsSnapshot, OTHER_SERIES},
    rotation::{IndexRotation, rotated_index_name, week_of_year},
    stream::{
        DeliveryFailure, DeliveryStream, Pause, ProcessingFailure, PumpOutcome, PutOutcome,
        lambda_function_name, log_stream_name,
    },
    transform::{
        NoFunctions, TransformFailure, TransformInput, TransformOutput, TransformResult,
        Transformer,
    },
};
